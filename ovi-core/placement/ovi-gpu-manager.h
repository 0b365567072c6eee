/* gst-ovi: the GPU manager — which devices there are, how much memory is
 * free on each, and which one `auto` should use.
 *
 * Devices are enumerated through the CUDA backend module (libovi-cuda.so,
 * found as ovi_backend_new_by_name finds it) when it exports
 *   int      ovi_cuda_device_count (void);
 *   gboolean ovi_cuda_device_info (int index, OviGpuInfo *info,
 *                                  GError **error);
 * (info->name is then a g_strdup'd string). Without the module, or without
 * those entry points, the list is empty and `reason` says why; the caller
 * then plans for the CPU backend. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  int index;
  char *name; /* "NVIDIA H100 80GB HBM3" */
  guint64 total_bytes;
  guint64 free_bytes;
  int cc_major, cc_minor; /* compute capability: fp8 tensor cores >= 8.9 */
} OviGpuInfo;

void ovi_gpu_info_free (OviGpuInfo *info);

/* GPtrArray of OviGpuInfo* (owned); never NULL. When empty, *reason (if
 * non-NULL) gets a sentence saying why (free with g_free). */
GPtrArray *ovi_gpu_manager_list (char **reason);

/* the device for `auto`: the most free memory, ties to the lowest index;
 * -1 when `gpus` is empty */
int ovi_gpu_manager_pick (GPtrArray *gpus);

/* TRUE when the device runs fp8 tensor-core GEMMs (sm_89 and up) */
gboolean ovi_gpu_has_fp8 (const OviGpuInfo *info);

G_END_DECLS
