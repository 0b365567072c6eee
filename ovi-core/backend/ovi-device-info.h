/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: what a GPU backend module says about the machine's GPUs.
 *
 * The CUDA module (kernels/ovi-cuda-devices.c) fills an OviDeviceProbe
 * through its exported entry point
 *   gboolean ovi_cuda_probe_devices (OviDeviceProbe *probe, guint abi);
 * (abi: OVI_DEVICE_PROBE_ABI; the module refuses another), and
 *   gboolean ovi_cuda_free_memory (int device, guint64 *free_bytes);
 * the free memory of a probed device now (the GPU manager probes once per
 * process and reads this for every report). The GPU manager
 * (placement/ovi-gpu-manager.h) reads it; tests build probes by hand to
 * check the selection logic against devices this machine does not have.
 *
 * Versions are CUDA's encoding: 1000 * major + 10 * minor (13000 = 13.0).
 * Architectures are 10 * major + minor (90 = sm_90, 121 = sm_121).
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define OVI_DEVICE_PROBE_ABI 1
#define OVI_DEVICE_MAX_ARCHS 16

typedef enum {
  OVI_DEVICE_PROBE_OK,         /* driver and at least one device */
  OVI_DEVICE_PROBE_NO_MODULE,  /* no GPU backend module found/loadable */
  OVI_DEVICE_PROBE_NO_DRIVER,  /* no NVIDIA driver (driver version 0) */
  OVI_DEVICE_PROBE_DRIVER_OLD, /* driver older than the module's runtime */
  OVI_DEVICE_PROBE_NO_DEVICE,  /* a driver, but no device */
  OVI_DEVICE_PROBE_FAILED,     /* any other runtime failure (message) */
} OviDeviceProbeStatus;

/* how the module's kernels reach a device */
typedef enum {
  OVI_DEVICE_IMAGE_NATIVE,  /* an sm_XY cubin the device runs */
  OVI_DEVICE_IMAGE_PTX_JIT, /* only PTX: the driver compiles it at start */
  OVI_DEVICE_IMAGE_NONE,    /* neither: the kernels cannot run */
} OviDeviceImage;

typedef struct {
  int index; /* CUDA runtime ordinal */
  char name[256];
  int cc_major, cc_minor;
  int multiprocessors;
  guint64 total_bytes;
  guint64 free_bytes; /* cudaMemGetInfo (device's own view) */
  /* cudaDevAttrIntegrated: the GPU shares the host's memory (Jetson, GB10) */
  gboolean integrated;
  /* cudaDevAttrPageableMemoryAccess: kernels read pageable host memory
   * (an mmap'ed weight file) coherently, without registering it */
  gboolean pageable_memory_access;
  /* cudaDevAttrPageableMemoryAccessUsesHostPageTables: that access is the
   * hardware's (ATS: Grace Hopper / Blackwell), not HMM page migration */
  gboolean pageable_uses_host_page_tables;
  /* cudaDevAttrConcurrentManagedAccess */
  gboolean concurrent_managed_access;
  /* which image of the module the device gets, as the module's build flags
   * say (ovi_device_image_for) and, with a device, as the runtime reports
   * for a kernel (loaded_binary_arch: the cubin's or JIT'd arch, 0 when the
   * runtime found no image) */
  OviDeviceImage image;
  int loaded_binary_arch, loaded_ptx_arch;
} OviDeviceInfo;

typedef struct {
  OviDeviceProbeStatus status;
  int driver_version;  /* 0: no driver */
  int runtime_version; /* the runtime the module was built with */
  /* the architectures the module holds cubins for, and its PTX (0: none) */
  int archs[OVI_DEVICE_MAX_ARCHS];
  int n_archs;
  int ptx_arch;
  char message[512]; /* the runtime's words when status is not OK */
  int n_devices;
  OviDeviceInfo *devices; /* g_new0'd by the filler; ovi_device_probe_clear */
} OviDeviceProbe;

void ovi_device_probe_clear (OviDeviceProbe *probe);

/* The image a device of compute capability major.minor gets from a module
 * holding cubins for `archs` and PTX for `ptx_arch`: a cubin runs on its
 * own major at the same or a higher minor; PTX is compiled for any device
 * at or above its architecture. */
OviDeviceImage ovi_device_image_for (const int *archs, int n_archs,
                                     int ptx_arch, int major, int minor);
const char *ovi_device_image_name (OviDeviceImage image);
const char *ovi_device_probe_status_name (OviDeviceProbeStatus status);

/* "13.0" for 13000 (a static buffer per call site is not needed: g_free) */
char *ovi_cuda_version_string (int version);

G_END_DECLS
