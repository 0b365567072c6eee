/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the GPU manager — which devices there are, how much memory is
 * free on each, which one `auto` uses, and why the CPU is used when it is.
 *
 * Devices are enumerated through the CUDA backend module (found as
 * ovi-backend-module.h says) and its entry point ovi_cuda_probe_devices
 * (ovi-device-info.h). Without the module the report says so, and whether
 * an NVIDIA driver is installed all the same: then the CPU fallback is a
 * warning, not a quiet choice.
 *
 * $OVI_DEVICE_PROBE_FILE names a JSON description of devices read instead
 * of the module's (to try the selection and its messages for machines one
 * does not have, and for the tests):
 *   { "status": "ok" | "no-module" | "no-driver" | "driver-too-old" |
 *               "no-device" | "failed",
 *     "nvidia_driver": true, "driver_version": 13000,
 *     "runtime_version": 13000, "archs": [80, 90], "ptx_arch": 90,
 *     "host_available_gib": 100, "message": "...",
 *     "devices": [ { "name": "...", "cc": "9.0", "total_gib": 80,
 *                    "free_gib": 79, "integrated": false,
 *                    "pageable_memory_access": false,
 *                    "pageable_uses_host_page_tables": false,
 *                    "concurrent_managed_access": true } ] }
 */
#pragma once

#include <glib.h>

#include "ovi-device-info.h"

G_BEGIN_DECLS

typedef struct {
  OviDeviceProbe probe;
  /* an NVIDIA driver is installed (driver version > 0, or the kernel
   * driver's /proc entry, or libcuda.so.1 loads) */
  gboolean nvidia_driver;
  char *module_path;      /* the CUDA module used, NULL when none */
  guint64 host_available; /* MemAvailable of /proc/meminfo, 0 unknown */
} OviGpuReport;

/* Fills `report` from $OVI_DEVICE_PROBE_FILE or the CUDA module (never
 * fails: a machine without GPUs is a report with a status and a reason).
 * A JSON file that cannot be read is an error. The file is read on every
 * call; the module is probed once per process, the free memory of its
 * devices and of the host read again on every call. */
gboolean ovi_gpu_report_probe (OviGpuReport *report, GError **error);
/* How many times this process probed the CUDA module (once: later reports
 * copy that probe with the devices' free memory read again; for tests). */
guint ovi_gpu_report_module_probes (void);
/* the same from a JSON description (see above) */
gboolean ovi_gpu_report_from_json (OviGpuReport *report, const char *json,
                                   GError **error);
void ovi_gpu_report_clear (OviGpuReport *report);

/* One sentence on why no GPU is usable (NULL when one is). */
char *ovi_gpu_report_reason (const OviGpuReport *report);

/* The device's memory is the host's (integrated) or host memory is
 * coherently addressable by the device through the host page tables
 * (ATS): weights are used where they lie, host and device are one pool. */
gboolean ovi_device_is_unified (const OviDeviceInfo *dev);

/* The memory a plan may count on for `dev`: its free device memory; on an
 * integrated device (one physical memory) the larger of that and the
 * host's MemAvailable (the runtime's number leaves out reclaimable page
 * cache); on an ATS device device free + host available (two memories,
 * both addressable). Never the same bytes twice. */
guint64 ovi_gpu_usable_free (const OviDeviceInfo *dev, guint64 host_available);

/* The device for `auto`: a usable image, then the most usable free memory,
 * ties to the lowest index; -1 when none. */
int ovi_gpu_manager_pick (const OviGpuReport *report);
/* the description of device `index`, or NULL */
const OviDeviceInfo *ovi_gpu_report_device (const OviGpuReport *report,
                                            int index);

/* TRUE when the device runs fp8 tensor-core GEMMs (sm_89 and up) */
gboolean ovi_gpu_has_fp8 (const OviDeviceInfo *info);

/* Human-readable lines for `ovi devices`: versions, architectures, one
 * block per device or the reason there is none. */
char *ovi_gpu_report_to_string (const OviGpuReport *report);

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (OviGpuReport, ovi_gpu_report_clear)

G_END_DECLS
