/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: which image of this module the runtime loads for a device (the
 * cubin of one architecture, or PTX compiled by the driver), read off one
 * trivial kernel. Used by kernels/ovi-cuda-devices.c. */
#include "ovi-ck-probe.h"

static __global__ void
ovi_ck_probe_kernel (int *out)
{
  if (out != NULL)
    *out = 1;
}

extern "C" int
ovi_ck_probe_image (int device, int *binary_arch, int *ptx_arch)
{
  cudaFuncAttributes attr;
  cudaError_t e = cudaSetDevice (device);

  *binary_arch = *ptx_arch = 0;
  if (e == cudaSuccess)
    e = cudaFuncGetAttributes (&attr, ovi_ck_probe_kernel);
  if (e != cudaSuccess) {
    cudaGetLastError (); /* not sticky: clear it for the callers */
    return (int) e;
  }
  *binary_arch = attr.binaryVersion;
  *ptx_arch = attr.ptxVersion;
  return 0;
}
