/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the image probe of kernels/ovi-ck-probe.cu. */
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

/* The architectures (10 * major + minor) of the cubin the runtime picked
 * for `device` and of the PTX it was built from; returns the cudaError_t
 * (cudaErrorNoKernelImageForDevice when the module has nothing for it). */
int ovi_ck_probe_image (int device, int *binary_arch, int *ptx_arch);

#ifdef __cplusplus
}
#endif
