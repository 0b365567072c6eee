/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: device discovery of the CUDA module: driver and runtime
 * versions, each device's name, compute capability, memory, unified-memory
 * attributes and the image of this module it gets (ovi-device-info.h).
 *
 * The architecture list comes from the build (kernels/meson.build passes
 * the -gencode list as OVI_CUDA_ARCH_LIST and the PTX one as
 * OVI_CUDA_PTX_ARCH), so `ovi devices` can say, without a device, which
 * GPUs get native code and which depend on the driver's PTX JIT. */
#include "ovi-ck-probe.h"
#include "ovi-cuda-private.h"
#include "ovi-device-info.h"

#include <cuda_runtime_api.h>
#include <gmodule.h>
#include <stdio.h>
#include <string.h>

#ifndef OVI_CUDA_ARCH_LIST
#error "OVI_CUDA_ARCH_LIST (the -gencode architectures) must be defined"
#endif
#ifndef OVI_CUDA_PTX_ARCH
#define OVI_CUDA_PTX_ARCH 0
#endif

G_MODULE_EXPORT gboolean ovi_cuda_probe_devices (OviDeviceProbe *probe,
                                                 guint abi);
G_MODULE_EXPORT gboolean ovi_cuda_free_memory (int device,
                                               guint64 *free_bytes);

static void
read_arch_list (OviDeviceProbe *probe)
{
  g_auto (GStrv) parts = g_strsplit (OVI_CUDA_ARCH_LIST, ",", -1);

  for (int i = 0; parts[i] && probe->n_archs < OVI_DEVICE_MAX_ARCHS; i++) {
    int arch = (int) g_ascii_strtoll (g_strstrip (parts[i]), NULL, 10);
    if (arch > 0)
      probe->archs[probe->n_archs++] = arch;
  }
  probe->ptx_arch = OVI_CUDA_PTX_ARCH;
}

int
ovi_cuda_attribute (enum cudaDeviceAttr attr, int device)
{
  int v = 0;

  if (cudaDeviceGetAttribute (&v, attr, device) != cudaSuccess) {
    cudaGetLastError ();
    return 0;
  }
  return v;
}

static void
describe_device (const OviDeviceProbe *probe, int i, OviDeviceInfo *d)
{
  struct cudaDeviceProp prop;
  size_t free_b = 0, total_b = 0;

  d->index = i;
  if (cudaGetDeviceProperties (&prop, i) == cudaSuccess) {
    g_strlcpy (d->name, prop.name, sizeof d->name);
    d->cc_major = prop.major;
    d->cc_minor = prop.minor;
    d->multiprocessors = prop.multiProcessorCount;
    d->total_bytes = prop.totalGlobalMem;
  } else {
    cudaGetLastError ();
    g_strlcpy (d->name, "(no properties)", sizeof d->name);
  }
  d->integrated = ovi_cuda_attribute (cudaDevAttrIntegrated, i) != 0;
  d->pageable_memory_access
      = ovi_cuda_attribute (cudaDevAttrPageableMemoryAccess, i) != 0;
  d->pageable_uses_host_page_tables
      = ovi_cuda_attribute (cudaDevAttrPageableMemoryAccessUsesHostPageTables, i) != 0;
  d->concurrent_managed_access
      = ovi_cuda_attribute (cudaDevAttrConcurrentManagedAccess, i) != 0;
  /* free memory needs the device's primary context (the runtime makes it) */
  if (cudaSetDevice (i) == cudaSuccess
      && cudaMemGetInfo (&free_b, &total_b) == cudaSuccess) {
    d->free_bytes = free_b;
    if (d->total_bytes == 0)
      d->total_bytes = total_b;
  } else {
    cudaGetLastError ();
  }
  d->image = ovi_device_image_for (probe->archs, probe->n_archs,
                                   probe->ptx_arch, d->cc_major, d->cc_minor);
  ovi_ck_probe_image (i, &d->loaded_binary_arch, &d->loaded_ptx_arch);
}

static OviDeviceProbeStatus
status_of (cudaError_t e, int driver)
{
  switch (e) {
    case cudaSuccess:
      return OVI_DEVICE_PROBE_OK;
    case cudaErrorInsufficientDriver:
      return driver == 0 ? OVI_DEVICE_PROBE_NO_DRIVER
                         : OVI_DEVICE_PROBE_DRIVER_OLD;
    case cudaErrorCallRequiresNewerDriver:
      return OVI_DEVICE_PROBE_DRIVER_OLD;
    case cudaErrorNoDevice:
      return OVI_DEVICE_PROBE_NO_DEVICE;
    default:
      return driver == 0 ? OVI_DEVICE_PROBE_NO_DRIVER
                         : OVI_DEVICE_PROBE_FAILED;
  }
}

gboolean
ovi_cuda_probe_devices (OviDeviceProbe *probe, guint abi)
{
  int count = 0;
  cudaError_t e;

  if (abi != OVI_DEVICE_PROBE_ABI)
    return FALSE;
  memset (probe, 0, sizeof *probe);
  read_arch_list (probe);
  cudaRuntimeGetVersion (&probe->runtime_version);
  /* 0, with success, when no driver is installed */
  if (cudaDriverGetVersion (&probe->driver_version) != cudaSuccess)
    probe->driver_version = 0;
  e = cudaGetDeviceCount (&count);
  if (e == cudaSuccess && count == 0)
    e = cudaErrorNoDevice;
  probe->status = status_of (e, probe->driver_version);
  if (e != cudaSuccess) {
    cudaGetLastError ();
    snprintf (probe->message, sizeof probe->message, "%s (%s)",
              cudaGetErrorString (e), cudaGetErrorName (e));
    return TRUE;
  }
  probe->devices = g_new0 (OviDeviceInfo, count);
  probe->n_devices = count;
  for (int i = 0; i < count; i++)
    describe_device (probe, i, &probe->devices[i]);
  return TRUE;
}

/* the device's free memory now (its context exists after the probe, so
 * this is cheap), the calling thread's current device left as it was */
gboolean
ovi_cuda_free_memory (int device, guint64 *free_bytes)
{
  size_t free_b = 0, total_b = 0;
  int current = 0;
  gboolean ok;

  if (cudaGetDevice (&current) != cudaSuccess)
    current = -1;
  ok = cudaSetDevice (device) == cudaSuccess
       && cudaMemGetInfo (&free_b, &total_b) == cudaSuccess;
  if (ok)
    *free_bytes = free_b;
  else
    cudaGetLastError ();
  if (current >= 0)
    cudaSetDevice (current);
  return ok;
}
