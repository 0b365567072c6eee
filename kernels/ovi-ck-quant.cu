/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: activation quantisation for the fp8 tensor-core GEMMs: each row
 * of a contiguous bf16 matrix to F8_E4M3 with its own scale (amax / 448),
 * so cuBLASLt multiplies the scales back per row (OUTER_VEC_32F). One block
 * per row; loads of 8 bf16 (16 bytes) where the row allows. */
#include "ovi-ck-common.cuh"

#define QT 256

static __global__ void
__launch_bounds__ (QT) k_quant_rows_f8 (uint8_t *q, float *scales,
                                        const __nv_bfloat16 *x, int64_t K)
{
  __shared__ float sh[33];
  const int64_t row = blockIdx.x;
  const __nv_bfloat16 *xr = x + row * K;
  uint8_t *qr = q + row * K;
  const bool vec = K % 8 == 0;
  float amax = 0.0f, scale, inv;

  if (vec) {
    for (int64_t i = (int64_t) threadIdx.x * 8; i < K; i += QT * 8) {
      uint4 raw = *(const uint4 *) (xr + i);
      const __nv_bfloat16 *v = (const __nv_bfloat16 *) &raw;
#pragma unroll
      for (int j = 0; j < 8; j++)
        amax = fmaxf (amax, fabsf (__bfloat162float (v[j])));
    }
  } else {
    for (int64_t i = threadIdx.x; i < K; i += QT)
      amax = fmaxf (amax, fabsf (__bfloat162float (xr[i])));
  }
  amax = ck_block_max (amax, sh);
  scale = amax > 0.0f ? amax / 448.0f : 1.0f;
  inv = 1.0f / scale;
  if (threadIdx.x == 0)
    scales[row] = scale;
  if (vec) {
    for (int64_t i = (int64_t) threadIdx.x * 8; i < K; i += QT * 8) {
      uint4 raw = *(const uint4 *) (xr + i);
      const __nv_bfloat16 *v = (const __nv_bfloat16 *) &raw;
      uint2 out;
      uint8_t *o = (uint8_t *) &out;
#pragma unroll
      for (int j = 0; j < 8; j++)
        o[j] = (uint8_t) __nv_cvt_float_to_fp8 (__bfloat162float (v[j]) * inv,
                                                __NV_SATFINITE, __NV_E4M3);
      *(uint2 *) (qr + i) = out;
    }
  } else {
    for (int64_t i = threadIdx.x; i < K; i += QT)
      qr[i] = (uint8_t) __nv_cvt_float_to_fp8 (__bfloat162float (xr[i]) * inv,
                                               __NV_SATFINITE, __NV_E4M3);
  }
}

extern "C" cudaError_t
ovi_ck_quant_rows_f8 (cudaStream_t stream, void *q, float *scales,
                      const void *x, int64_t rows, int64_t K)
{
  if (rows <= 0 || K <= 0)
    return cudaSuccess;
  if (rows > 0x7fffffffLL || (uintptr_t) x % 16 || (uintptr_t) q % 8)
    return cudaErrorInvalidValue;
  k_quant_rows_f8<<<(unsigned) rows, QT, 0, stream>>> (
      (uint8_t *) q, scales, (const __nv_bfloat16 *) x, K);
  return cudaGetLastError ();
}
