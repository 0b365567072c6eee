/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the GPU manager (see ovi-gpu-manager.h). */
#include "ovi-gpu-manager.h"

#include "ovi-backend-module.h"
#include "ovi-error.h"
#include "ovi-mem-account.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>

#define GIB ((double) (G_GUINT64_CONSTANT (1) << 30))

typedef gboolean (*ProbeFunc) (OviDeviceProbe *probe, guint abi);
typedef gboolean (*FreeMemoryFunc) (int device, guint64 *free_bytes);

void
ovi_gpu_report_clear (OviGpuReport *r)
{
  ovi_device_probe_clear (&r->probe);
  g_clear_pointer (&r->module_path, g_free);
}

static guint64
host_mem_available (void)
{
  g_autofree char *text = NULL;
  const char *line;

  if (!g_file_get_contents ("/proc/meminfo", &text, NULL, NULL))
    return 0;
  line = strstr (text, "MemAvailable:");
  return line ? g_ascii_strtoull (line + 13, NULL, 10) * 1024 : 0;
}

static gboolean
nvidia_driver_installed (void)
{
  GModule *cuda;

  if (g_file_test ("/proc/driver/nvidia/version", G_FILE_TEST_EXISTS))
    return TRUE;
  /* Tegra (Jetson, DGX Spark) drivers have no /proc entry */
  cuda = g_module_open ("libcuda.so.1", G_MODULE_BIND_LAZY);
  if (cuda)
    g_module_close (cuda);
  return cuda != NULL;
}

static void
probe_module (OviGpuReport *r, FreeMemoryFunc *free_memory)
{
  GError *error = NULL;
  GModule *module = ovi_backend_module_open ("libovi-cuda.so", &error);
  ProbeFunc probe = NULL;

  if (module == NULL) {
    r->probe.status = OVI_DEVICE_PROBE_NO_MODULE;
    g_strlcpy (r->probe.message, error->message, sizeof r->probe.message);
    g_error_free (error);
    return;
  }
  r->module_path = g_strdup (g_module_name (module));
  if (!g_module_symbol (module, "ovi_cuda_probe_devices", (gpointer *) &probe)
      || !probe (&r->probe, OVI_DEVICE_PROBE_ABI)) {
    r->probe.status = OVI_DEVICE_PROBE_NO_MODULE;
    g_snprintf (r->probe.message, sizeof r->probe.message,
                "the CUDA module %s is of another version (no "
                "ovi_cuda_probe_devices of ABI %d)",
                r->module_path, OVI_DEVICE_PROBE_ABI);
  }
  if (!g_module_symbol (module, "ovi_cuda_free_memory",
                        (gpointer *) free_memory))
    *free_memory = NULL;
}

/* The module's probe, made once per process: loading the CUDA runtime and
 * making each device's context costs far more than a plan, and neither
 * the devices nor their properties change while it runs (hot-plug is not
 * handled). What does change, the free memory of each device and the
 * host's, is read again for every report. A description file
 * ($OVI_DEVICE_PROBE_FILE) is read every time and never cached, so a test
 * may point the variable elsewhere, or unset it, between cases. */
static struct {
  GMutex lock;
  gboolean done;
  OviGpuReport report;
  FreeMemoryFunc free_memory; /* NULL: the module has none */
  guint probes;
} module_cache;

static void
copy_report (OviGpuReport *dst, const OviGpuReport *src)
{
  *dst = *src;
  dst->probe.devices = g_memdup2 (
      src->probe.devices, sizeof (OviDeviceInfo) * src->probe.n_devices);
  dst->module_path = g_strdup (src->module_path);
}

static void
report_from_module (OviGpuReport *r)
{
  g_mutex_lock (&module_cache.lock);
  if (!module_cache.done) {
    OviGpuReport *c = &module_cache.report;
    probe_module (c, &module_cache.free_memory);
    c->nvidia_driver
        = c->probe.driver_version > 0 || nvidia_driver_installed ();
    module_cache.probes++;
    module_cache.done = TRUE;
  }
  copy_report (r, &module_cache.report);
  for (int i = 0; module_cache.free_memory && i < r->probe.n_devices; i++)
    module_cache.free_memory (i, &r->probe.devices[i].free_bytes);
  g_mutex_unlock (&module_cache.lock);
  r->host_available = host_mem_available ();
}

guint
ovi_gpu_report_module_probes (void)
{
  guint n;

  g_mutex_lock (&module_cache.lock);
  n = module_cache.probes;
  g_mutex_unlock (&module_cache.lock);
  return n;
}

gboolean
ovi_gpu_report_probe (OviGpuReport *r, GError **error)
{
  const char *fake = g_getenv ("OVI_DEVICE_PROBE_FILE");

  memset (r, 0, sizeof *r);
  if (fake && *fake) {
    g_autofree char *json = NULL;
    if (!g_file_get_contents (fake, &json, NULL, error))
      return FALSE;
    if (!ovi_gpu_report_from_json (r, json, error)) {
      g_prefix_error (error, "OVI_DEVICE_PROBE_FILE %s: ", fake);
      return FALSE;
    }
    return TRUE;
  }
  report_from_module (r);
  return TRUE;
}

/* ---- the JSON description ---- */

static const char *const status_names[] = {
  [OVI_DEVICE_PROBE_OK] = "ok",
  [OVI_DEVICE_PROBE_NO_MODULE] = "no-module",
  [OVI_DEVICE_PROBE_NO_DRIVER] = "no-driver",
  [OVI_DEVICE_PROBE_DRIVER_OLD] = "driver-too-old",
  [OVI_DEVICE_PROBE_NO_DEVICE] = "no-device",
  [OVI_DEVICE_PROBE_FAILED] = "failed",
};

static guint64
gib_member (JsonObject *o, const char *name)
{
  return (guint64) (json_object_get_double_member_with_default (o, name, 0)
                    * GIB);
}

static gboolean
device_from_json (JsonObject *o, int index, const OviDeviceProbe *probe,
                  OviDeviceInfo *d, GError **error)
{
  const char *cc = json_object_get_string_member_with_default (o, "cc", "");

  d->index = index;
  g_strlcpy (d->name,
             json_object_get_string_member_with_default (o, "name", "GPU"),
             sizeof d->name);
  if (sscanf (cc, "%d.%d", &d->cc_major, &d->cc_minor) != 2) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "device %d: \"cc\" must be \"MAJOR.MINOR\", not \"%s\"", index,
                 cc);
    return FALSE;
  }
  d->total_bytes = gib_member (o, "total_gib");
  d->free_bytes = gib_member (o, "free_gib");
  d->integrated
      = json_object_get_boolean_member_with_default (o, "integrated", FALSE);
  d->pageable_memory_access = json_object_get_boolean_member_with_default (
      o, "pageable_memory_access", d->integrated);
  d->pageable_uses_host_page_tables
      = json_object_get_boolean_member_with_default (
          o, "pageable_uses_host_page_tables", FALSE);
  d->concurrent_managed_access = json_object_get_boolean_member_with_default (
      o, "concurrent_managed_access", !d->integrated);
  d->image = ovi_device_image_for (probe->archs, probe->n_archs,
                                   probe->ptx_arch, d->cc_major, d->cc_minor);
  return TRUE;
}

static gboolean
status_from_name (const char *name, OviDeviceProbeStatus *status,
                  GError **error)
{
  for (guint i = 0; i < G_N_ELEMENTS (status_names); i++)
    if (g_strcmp0 (name, status_names[i]) == 0) {
      *status = i;
      return TRUE;
    }
  g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
               "unknown \"status\" \"%s\" (ok, no-module, no-driver, "
               "driver-too-old, no-device, failed)",
               name);
  return FALSE;
}

gboolean
ovi_gpu_report_from_json (OviGpuReport *r, const char *json, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonObject *o;
  JsonArray *devs = NULL, *archs = NULL;
  OviDeviceProbe *p = &r->probe;

  memset (r, 0, sizeof *r);
  if (!json_parser_load_from_data (parser, json, -1, error))
    return FALSE;
  if (!JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser))) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "a device description is a JSON object");
    return FALSE;
  }
  o = json_node_get_object (json_parser_get_root (parser));
  if (!status_from_name (
          json_object_get_string_member_with_default (o, "status", "ok"),
          &p->status, error))
    return FALSE;
  p->driver_version
      = json_object_get_int_member_with_default (o, "driver_version", 0);
  p->runtime_version
      = json_object_get_int_member_with_default (o, "runtime_version", 13000);
  p->ptx_arch = json_object_get_int_member_with_default (o, "ptx_arch", 0);
  g_strlcpy (p->message,
             json_object_get_string_member_with_default (o, "message", ""),
             sizeof p->message);
  r->nvidia_driver = json_object_get_boolean_member_with_default (
      o, "nvidia_driver", p->driver_version > 0);
  r->host_available = gib_member (o, "host_available_gib");
  if (json_object_has_member (o, "archs"))
    archs = json_object_get_array_member (o, "archs");
  for (guint i = 0; archs && i < json_array_get_length (archs)
                    && p->n_archs < OVI_DEVICE_MAX_ARCHS;
       i++)
    p->archs[p->n_archs++] = (int) json_array_get_int_element (archs, i);
  if (json_object_has_member (o, "devices"))
    devs = json_object_get_array_member (o, "devices");
  p->n_devices = devs ? (int) json_array_get_length (devs) : 0;
  p->devices = g_new0 (OviDeviceInfo, MAX (p->n_devices, 1));
  for (int i = 0; i < p->n_devices; i++)
    if (!device_from_json (json_array_get_object_element (devs, i), i, p,
                           &p->devices[i], error)) {
      ovi_gpu_report_clear (r);
      return FALSE;
    }
  if (p->status == OVI_DEVICE_PROBE_OK && p->n_devices == 0)
    p->status = OVI_DEVICE_PROBE_NO_DEVICE;
  return TRUE;
}

/* ---- what the report means ---- */

char *
ovi_gpu_report_reason (const OviGpuReport *r)
{
  const OviDeviceProbe *p = &r->probe;
  g_autofree char *drv = ovi_cuda_version_string (p->driver_version);
  g_autofree char *rt = ovi_cuda_version_string (p->runtime_version);

  switch (p->status) {
    case OVI_DEVICE_PROBE_OK:
      if (ovi_gpu_manager_pick (r) >= 0)
        return NULL;
      return g_strdup_printf (
          "the CUDA module has no image for any of the %d device(s) (built "
          "for sm_%d..., PTX compute_%d): rebuild with -Dovi_cuda_archs "
          "naming the device's architecture",
          p->n_devices, p->n_archs ? p->archs[0] : 0, p->ptx_arch);
    case OVI_DEVICE_PROBE_NO_MODULE:
      return g_strdup_printf ("no CUDA backend module: %s", p->message);
    case OVI_DEVICE_PROBE_NO_DRIVER:
      return g_strdup ("no NVIDIA driver is installed (the CUDA runtime "
                       "reports driver version 0)");
    case OVI_DEVICE_PROBE_DRIVER_OLD:
      return g_strdup_printf (
          "the NVIDIA driver supports CUDA %s, older than the CUDA %s runtime "
          "the module was built with: install a driver for CUDA %s (r580 or "
          "newer for CUDA 13)",
          drv, rt, rt);
    case OVI_DEVICE_PROBE_NO_DEVICE:
      return g_strdup_printf ("the NVIDIA driver (CUDA %s) sees no CUDA device"
                              "%s%s",
                              drv, *p->message ? ": " : "", p->message);
    case OVI_DEVICE_PROBE_FAILED:
      return g_strdup_printf ("the CUDA runtime failed: %s", p->message);
  }
  return g_strdup ("?");
}

gboolean
ovi_device_is_unified (const OviDeviceInfo *d)
{
  return d->integrated
         || (d->pageable_memory_access && d->pageable_uses_host_page_tables);
}

guint64
ovi_gpu_usable_free (const OviDeviceInfo *d, guint64 host_available)
{
  if (d->integrated)
    return MAX (d->free_bytes, host_available);
  if (ovi_device_is_unified (d))
    return d->free_bytes + host_available;
  return d->free_bytes;
}

const OviDeviceInfo *
ovi_gpu_report_device (const OviGpuReport *r, int index)
{
  for (int i = 0; i < r->probe.n_devices; i++)
    if (r->probe.devices[i].index == index)
      return &r->probe.devices[i];
  return NULL;
}

int
ovi_gpu_manager_pick (const OviGpuReport *r)
{
  const OviDeviceInfo *best = NULL;
  guint64 best_free = 0;

  if (r->probe.status != OVI_DEVICE_PROBE_OK)
    return -1;
  for (int i = 0; i < r->probe.n_devices; i++) {
    const OviDeviceInfo *d = &r->probe.devices[i];
    guint64 f = ovi_gpu_usable_free (d, r->host_available);
    if (d->image == OVI_DEVICE_IMAGE_NONE)
      continue;
    if (best == NULL || f > best_free) {
      best = d;
      best_free = f;
    }
  }
  return best ? best->index : -1;
}

gboolean
ovi_gpu_has_fp8 (const OviDeviceInfo *info)
{
  return info->cc_major > 8 || (info->cc_major == 8 && info->cc_minor >= 9);
}

/* ---- `ovi devices` ---- */

static void
append_archs (GString *s, const OviDeviceProbe *p)
{
  g_string_append (s, "module images:");
  for (int i = 0; i < p->n_archs; i++)
    g_string_append_printf (s, " sm_%d", p->archs[i]);
  if (p->ptx_arch)
    g_string_append_printf (s, ", PTX compute_%d", p->ptx_arch);
  g_string_append_c (s, '\n');
}

static void
append_device (GString *s, const OviDeviceInfo *d, guint64 host_available,
               int pick)
{
  g_autofree char *tot = ovi_format_bytes (d->total_bytes);
  g_autofree char *fr = ovi_format_bytes (d->free_bytes);

  g_string_append_printf (s, "GPU %d: %s%s\n", d->index, d->name,
                          d->index == pick ? "  (auto picks this one)" : "");
  g_string_append_printf (s, "  compute capability %d.%d (sm_%d%d), ",
                          d->cc_major, d->cc_minor, d->cc_major, d->cc_minor);
  if (d->multiprocessors > 0)
    g_string_append_printf (s, "%d SMs, ", d->multiprocessors);
  g_string_append_printf (s, "memory %s, %s free\n", tot, fr);
  g_string_append_printf (
      s,
      "  integrated %s, pageable memory access %s%s, concurrent managed "
      "access %s\n",
      d->integrated ? "yes" : "no", d->pageable_memory_access ? "yes" : "no",
      d->pageable_uses_host_page_tables ? " (host page tables)" : "",
      d->concurrent_managed_access ? "yes" : "no");
  if (ovi_device_is_unified (d)) {
    g_autofree char *pool
        = ovi_format_bytes (ovi_gpu_usable_free (d, host_available));
    g_string_append_printf (s,
                            "  unified memory: host and device are one pool "
                            "(%s usable); vram-mode standard keeps every "
                            "stage resident, and weights are read in place "
                            "(%s, no second copy)\n",
                            pool,
                            d->pageable_memory_access
                                ? "from the file's mapping"
                                : "from the file's mapping, registered");
  }
  switch (d->image) {
    case OVI_DEVICE_IMAGE_NATIVE:
      g_string_append (s, "  kernels: native image\n");
      break;
    case OVI_DEVICE_IMAGE_PTX_JIT:
      g_string_append_printf (s,
                              "  kernels: no native image for sm_%d%d; the "
                              "driver JIT-compiles the PTX at first start "
                              "(slower start, no tuned code)\n",
                              d->cc_major, d->cc_minor);
      break;
    case OVI_DEVICE_IMAGE_NONE:
      g_string_append_printf (s,
                              "  kernels: NO image for sm_%d%d and no PTX old "
                              "enough to JIT: this GPU cannot run the module "
                              "(rebuild with -Dovi_cuda_archs=...,%d%d)\n",
                              d->cc_major, d->cc_minor, d->cc_major,
                              d->cc_minor);
      break;
  }
  if (d->loaded_binary_arch > 0)
    g_string_append_printf (s, "  runtime loaded: sm_%d cubin (PTX %d)\n",
                            d->loaded_binary_arch, d->loaded_ptx_arch);
  /* the module's fp8 GEMMs scale per channel (cuBLASLt OUTER_VEC_32F),
   * which needs sm_90; Ada's fp8 tensor cores go unused */
  g_string_append_printf (
      s, "  fp8 modes: %s\n",
      d->cc_major >= 9 ? "fp8 tensor-core GEMMs"
      : ovi_gpu_has_fp8 (d)
          ? "weights in fp8, GEMMs in bf16 (fp8 tensor cores, but the "
            "per-channel fp8 GEMM needs sm_90)"
          : "weights in fp8, GEMMs in bf16 (no fp8 tensor cores)");
}

char *
ovi_gpu_report_to_string (const OviGpuReport *r)
{
  const OviDeviceProbe *p = &r->probe;
  GString *s = g_string_new (NULL);
  g_autofree char *reason = ovi_gpu_report_reason (r);
  int pick = ovi_gpu_manager_pick (r);

  if (r->module_path)
    g_string_append_printf (s, "CUDA module: %s\n", r->module_path);
  if (p->status != OVI_DEVICE_PROBE_NO_MODULE) {
    g_autofree char *rt = ovi_cuda_version_string (p->runtime_version);
    g_autofree char *drv = ovi_cuda_version_string (p->driver_version);
    g_string_append_printf (s, "CUDA runtime (built with): %s\n", rt);
    if (p->driver_version > 0)
      g_string_append_printf (s, "NVIDIA driver supports CUDA: %s\n", drv);
    else
      g_string_append (s, "NVIDIA driver: none\n");
    append_archs (s, p);
  }
  for (int i = 0; p->status == OVI_DEVICE_PROBE_OK && i < p->n_devices; i++)
    append_device (s, &p->devices[i], r->host_available, pick);
  if (reason) {
    g_string_append_printf (s, "No usable GPU: %s.\n", reason);
    g_string_append (s, r->nvidia_driver
                            ? "An NVIDIA driver is installed: the elements "
                              "will warn and run on the CPU (slow).\n"
                            : "The elements run on the CPU backend.\n");
  }
  return g_string_free (s, FALSE);
}
