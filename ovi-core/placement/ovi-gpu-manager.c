/* gst-ovi: the GPU manager (see ovi-gpu-manager.h). */
#include "ovi-gpu-manager.h"

#include "ovi-config.h"

#include <gmodule.h>

typedef int (*CountFunc) (void);
typedef gboolean (*InfoFunc) (int index, OviGpuInfo *info, GError **error);

void
ovi_gpu_info_free (OviGpuInfo *info)
{
  if (info == NULL)
    return;
  g_free (info->name);
  g_free (info);
}

GPtrArray *
ovi_gpu_manager_list (char **reason)
{
  GPtrArray *gpus
      = g_ptr_array_new_with_free_func ((GDestroyNotify) ovi_gpu_info_free);
  const char *env = g_getenv ("OVI_BACKEND_PATH");
  g_autofree char *path = g_build_filename (env && *env ? env : OVI_BACKEND_DIR,
                                            "libovi-cuda.so", NULL);
  GModule *module;
  CountFunc count = NULL;
  InfoFunc info = NULL;
  int n;

  if (reason)
    *reason = NULL;
  if (!g_file_test (path, G_FILE_TEST_EXISTS)) {
    if (reason)
      *reason = g_strdup_printf ("no CUDA backend module (%s): only the CPU "
                                 "backend is available",
                                 path);
    return gpus;
  }
  module = g_module_open (path, G_MODULE_BIND_LAZY);
  if (module == NULL) {
    if (reason)
      *reason = g_strdup_printf ("cannot load the CUDA backend module %s: %s",
                                 path, g_module_error ());
    return gpus;
  }
  if (!g_module_symbol (module, "ovi_cuda_device_count", (gpointer *) &count)
      || !g_module_symbol (module, "ovi_cuda_device_info", (gpointer *) &info)
      || count == NULL || info == NULL) {
    if (reason)
      *reason = g_strdup_printf (
          "the CUDA backend module %s offers no device enumeration "
          "(ovi_cuda_device_count / ovi_cuda_device_info)",
          path);
    g_module_close (module);
    return gpus;
  }
  g_module_make_resident (module);
  n = count ();
  for (int i = 0; i < n; i++) {
    OviGpuInfo *g = g_new0 (OviGpuInfo, 1);
    GError *error = NULL;

    g->index = i;
    if (!info (i, g, &error)) {
      if (reason && *reason == NULL)
        *reason = g_strdup_printf ("device %d: %s", i,
                                   error ? error->message : "no information");
      g_clear_error (&error);
      ovi_gpu_info_free (g);
      continue;
    }
    g_ptr_array_add (gpus, g);
  }
  if (gpus->len == 0 && reason && *reason == NULL)
    *reason = g_strdup ("the CUDA backend reports no devices");
  return gpus;
}

int
ovi_gpu_manager_pick (GPtrArray *gpus)
{
  const OviGpuInfo *best = NULL;

  for (guint i = 0; gpus && i < gpus->len; i++) {
    const OviGpuInfo *g = g_ptr_array_index (gpus, i);
    if (best == NULL || g->free_bytes > best->free_bytes)
      best = g;
  }
  return best ? best->index : -1;
}

gboolean
ovi_gpu_has_fp8 (const OviGpuInfo *info)
{
  return info->cc_major > 8 || (info->cc_major == 8 && info->cc_minor >= 9);
}
