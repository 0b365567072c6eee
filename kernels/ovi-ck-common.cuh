/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: device helpers shared by the kernels (loads, stores, offsets,
 * activations, reductions). */
#pragma once

#include "ovi-cuda-kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <math.h>
#include <stdint.h>

#define OVI_CK_THREADS 256

static __device__ __forceinline__ float
ck_f8_to_f32 (uint8_t v)
{
  int s = v >> 7, e = (v >> 3) & 15, m = v & 7;
  float r;

  if (e == 15 && m == 7)
    r = __int_as_float (0x7fc00000);
  else if (e == 0)
    r = ldexpf ((float) m, -9); /* m / 8 * 2^-6 */
  else
    r = ldexpf (1.0f + (float) m * 0.125f, e - 7);
  return s ? -r : r;
}

static __device__ __forceinline__ float
ck_ld (const void *p, int dt, int64_t o)
{
  switch (dt) {
    case OVI_CK_F32:
      return ((const float *) p)[o];
    case OVI_CK_BF16:
      return __uint_as_float (((unsigned) ((const uint16_t *) p)[o]) << 16);
    case OVI_CK_F16:
      return __half2float (((const __half *) p)[o]);
    case OVI_CK_F8_E4M3:
      return ck_f8_to_f32 (((const uint8_t *) p)[o]);
    case OVI_CK_I8:
      return (float) ((const int8_t *) p)[o];
    case OVI_CK_F64:
      return (float) ((const double *) p)[o];
    case OVI_CK_I64:
      return (float) ((const long long *) p)[o];
    case OVI_CK_I32:
      return (float) ((const int *) p)[o];
    case OVI_CK_U8:
      return (float) ((const uint8_t *) p)[o];
    case OVI_CK_BOOL:
      return ((const uint8_t *) p)[o] ? 1.0f : 0.0f;
    default:
      return 0.0f;
  }
}

static __device__ __forceinline__ void
ck_st (void *p, int dt, int64_t o, float v)
{
  switch (dt) {
    case OVI_CK_F32:
      ((float *) p)[o] = v;
      break;
    case OVI_CK_BF16:
      ((__nv_bfloat16 *) p)[o] = __float2bfloat16_rn (v);
      break;
    case OVI_CK_F16:
      ((__half *) p)[o] = __float2half_rn (v);
      break;
    case OVI_CK_F8_E4M3:
      ((uint8_t *) p)[o]
          = (uint8_t) __nv_cvt_float_to_fp8 (v, __NV_SATFINITE, __NV_E4M3);
      break;
    case OVI_CK_I8:
      ((int8_t *) p)[o]
          = (int8_t) (isnan (v) ? 0.0f
                                : rintf (fminf (fmaxf (v, -128.0f), 127.0f)));
      break;
    case OVI_CK_F64:
      ((double *) p)[o] = v;
      break;
    case OVI_CK_I64:
      ((long long *) p)[o] = isfinite (v) ? (long long) v : 0;
      break;
    case OVI_CK_I32:
      ((int *) p)[o] = isfinite (v) ? (int) v : 0;
      break;
    case OVI_CK_U8:
      ((uint8_t *) p)[o] = isfinite (v) ? (uint8_t) (int) v : 0;
      break;
    case OVI_CK_BOOL:
      ((uint8_t *) p)[o] = v != 0.0f;
      break;
    default:
      break;
  }
}

/* Host side, before a launch: d with adjacent dims that are one run in
 * memory merged (stride[k] == stride[k+1] * shape[k+1], broadcast runs of
 * stride 0 included) and size-1 dims dropped, the last `keep` dims left as
 * they are (the row kernels index the last dim apart). The linear index
 * still decomposes the same way, but a contiguous or row-broadcast operand
 * now costs one or two divisions per element instead of one per dim. */
static inline OviCkDesc
ck_collapse (OviCkDesc d, int keep)
{
  OviCkDesc c = d;
  int lead = d.nd - keep, n = 0;

  if (lead < 0)
    return d;
  for (int k = 0; k < lead; k++) {
    if (d.shape[k] == 1)
      continue;
    if (n > 0 && c.stride[n - 1] == d.stride[k] * d.shape[k]) {
      c.shape[n - 1] *= d.shape[k];
      c.stride[n - 1] = d.stride[k];
      continue;
    }
    c.shape[n] = d.shape[k];
    c.stride[n++] = d.stride[k];
  }
  for (int k = lead; k < d.nd; k++, n++) {
    c.shape[n] = d.shape[k];
    c.stride[n] = d.stride[k];
  }
  c.nd = n;
  return c;
}

/* element offset of linear index i of the target shape (also on the host,
 * for tests/gpu/test-ck-collapse) */
static __host__ __device__ __forceinline__ int64_t
ck_off (const OviCkDesc &d, int64_t i)
{
  int64_t off = 0;

  if (d.nd == 1) /* collapsed contiguous / strided run: no division */
    return i * d.stride[0];

  for (int k = d.nd - 1; k >= 0; k--) {
    int64_t s = d.shape[k];
    int64_t c = i % s;
    i /= s;
    off += c * d.stride[k];
  }
  return off;
}

/* element offset of the start of row r (dims 0..nd-2) */
static __device__ __forceinline__ int64_t
ck_row_off (const OviCkDesc &d, int64_t r)
{
  int64_t off = 0;

  for (int k = d.nd - 2; k >= 0; k--) {
    int64_t s = d.shape[k];
    int64_t c = r % s;
    r /= s;
    off += c * d.stride[k];
  }
  return off;
}

static __device__ __forceinline__ int64_t
ck_col_stride (const OviCkDesc &d)
{
  return d.nd > 0 ? d.stride[d.nd - 1] : 0;
}

static __device__ __forceinline__ float
ck_scale (const OviCkScale &s, int64_t i)
{
  if (s.data == NULL)
    return 1.0f;
  return ck_ld (s.data, s.dtype, (i / s.div) * s.stride);
}

/* activation codes: OviActivation */
static __device__ __forceinline__ float
ck_act (float x, int act)
{
  switch (act) {
    case 1: /* GELU tanh, written as in the CPU backend */
      return x
             / (1.0f
                + expf (-2.0f * 0.7978845608028654f
                        * (x + 0.044715f * x * x * x)));
    case 2: /* GELU erf */
      return 0.5f * x * erfcf (-x * 0.7071067811865476f);
    case 3: /* SiLU */
      return x / (1.0f + expf (-x));
    case 4:
      return tanhf (x);
    case 5:
      return x > 0.0f ? x : 0.0f;
    default:
      return x;
  }
}

static __device__ __forceinline__ float
ck_warp_sum (float v)
{
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync (0xffffffffu, v, o);
  return v;
}

static __device__ __forceinline__ float
ck_warp_max (float v)
{
  for (int o = 16; o > 0; o >>= 1)
    v = fmaxf (v, __shfl_xor_sync (0xffffffffu, v, o));
  return v;
}

/* block-wide sum / max for blockDim.x a multiple of 32 (<= 1024); every
 * thread gets the result. `sh` holds 33 floats. */
static __device__ __forceinline__ float
ck_block_sum (float v, float *sh)
{
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int nw = blockDim.x >> 5;

  v = ck_warp_sum (v);
  __syncthreads (); /* sh may still be read from a previous reduction */
  if (lane == 0)
    sh[warp] = v;
  __syncthreads ();
  if (warp == 0) {
    float t = lane < nw ? sh[lane] : 0.0f;
    t = ck_warp_sum (t);
    if (lane == 0)
      sh[32] = t;
  }
  __syncthreads ();
  return sh[32];
}

static __device__ __forceinline__ float
ck_block_max (float v, float *sh)
{
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int nw = blockDim.x >> 5;

  v = ck_warp_max (v);
  __syncthreads ();
  if (lane == 0)
    sh[warp] = v;
  __syncthreads ();
  if (warp == 0) {
    float t = lane < nw ? sh[lane] : -INFINITY;
    t = ck_warp_max (t);
    if (lane == 0)
      sh[32] = t;
  }
  __syncthreads ();
  return sh[32];
}

/* blocks for a grid-stride loop over n items */
static inline unsigned
ck_blocks (int64_t n, int threads)
{
  int64_t b = (n + threads - 1) / threads;

  if (b < 1)
    b = 1;
  if (b > 65536 * 8)
    b = 65536 * 8;
  return (unsigned) b;
}
