/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: im2col for convolutions as GEMMs (conv1d as a 3d conv with
 * T = H = 1) and the gather of the transposed conv 1d. */
#include "ovi-ck-common.cuh"

static __global__ void
k_im2col (void *cols, const void *x, int dt, OviCkConvGeom g, int64_t n0,
          int64_t nc)
{
  const int64_t kvol = (int64_t) g.kt * g.kh * g.kw;
  const int64_t J = g.C * kvol;
  const int64_t total = nc * J;

  for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (int64_t) gridDim.x * blockDim.x) {
    int64_t nl = i / J, j = i - nl * J;
    int64_t n = n0 + nl;
    int64_t wo = n % g.Wo, ho = (n / g.Wo) % g.Ho, to = n / (g.Wo * g.Ho);
    int64_t c = j / kvol, kr = j - c * kvol;
    int e = (int) (kr % g.kw), b = (int) ((kr / g.kw) % g.kh),
        a = (int) (kr / ((int64_t) g.kw * g.kh));
    int64_t ti = to * g.st - g.pt + (int64_t) a * g.dt;
    int64_t hi = ho * g.sh - g.ph + (int64_t) b * g.dh;
    int64_t wi = wo * g.sw - g.pw + (int64_t) e * g.dw;
    float v = 0.0f;

    if (ti >= 0 && ti < g.T && hi >= 0 && hi < g.H && wi >= 0 && wi < g.W)
      v = ck_ld (x, dt, (((g.c0 + c) * g.T + ti) * g.H + hi) * g.W + wi);
    ck_st (cols, dt, i, v);
  }
}

extern "C" cudaError_t
ovi_ck_im2col (cudaStream_t stream, void *cols, const void *x, int dtype,
               OviCkConvGeom g, int64_t n0, int64_t nc)
{
  int64_t total = nc * g.C * g.kt * g.kh * g.kw;

  if (total <= 0)
    return cudaSuccess;
  k_im2col<<<ck_blocks (total, OVI_CK_THREADS), OVI_CK_THREADS, 0, stream>>> (
      cols, x, dtype, g, n0, nc);
  return cudaGetLastError ();
}

static __global__ void
k_col2im_t1d (void *out, const void *Y, int dt, int64_t Cout_g, int64_t co0,
              int64_t To, int64_t T, int K, int stride, int padding)
{
  const int64_t total = Cout_g * To;

  for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (int64_t) gridDim.x * blockDim.x) {
    int64_t co = i / To, to = i - co * To;
    float s = 0.0f;

    for (int k = 0; k < K; k++) {
      int64_t num = to + padding - k;
      int64_t ti;
      if (num < 0 || num % stride)
        continue;
      ti = num / stride;
      if (ti >= T)
        continue;
      s += ck_ld (Y, dt, (co * K + k) * T + ti);
    }
    ck_st (out, dt, (co0 + co) * To + to, s);
  }
}

extern "C" cudaError_t
ovi_ck_col2im_t1d (cudaStream_t stream, void *out, const void *Y, int dtype,
                   int64_t Cout_g, int64_t co0, int64_t To, int64_t T, int K,
                   int stride, int padding)
{
  int64_t total = Cout_g * To;

  if (total <= 0)
    return cudaSuccess;
  k_col2im_t1d<<<ck_blocks (total, OVI_CK_THREADS), OVI_CK_THREADS, 0,
                 stream>>> (out, Y, dtype, Cout_g, co0, To, T, K, stride,
                              padding);
  return cudaGetLastError ();
}

/* ---- a plain tiled GEMM for shapes cuBLASLt has no algorithm for ---- */

#define GT 16

static __global__ void
k_gemm_fallback (int ta, int tb, int64_t m, int64_t n, int64_t k, const void *A,
                 int64_t lda, const void *B, int64_t ldb, void *D, int64_t ldd,
                 int dt)
{
  __shared__ float As[GT][GT + 1], Bs[GT][GT + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t r = (int64_t) blockIdx.x * GT + tx;
  const int64_t c = (int64_t) blockIdx.y * GT + ty;
  float acc = 0.0f;

  for (int64_t k0 = 0; k0 < k; k0 += GT) {
    /* As[kk][i] = op(A)(row0 + i, k0 + kk); Bs[j][kk] = op(B)(k0 + kk,
     * col0 + j), column-major storage with the given leading dims */
    int64_t ak = k0 + ty, bk = k0 + tx;
    As[ty][tx] = (r < m && ak < k)
                     ? ck_ld (A, dt, ta == 0 ? ak * lda + r : r * lda + ak)
                     : 0.0f;
    Bs[ty][tx] = (bk < k && c < n)
                     ? ck_ld (B, dt, tb == 0 ? c * ldb + bk : bk * ldb + c)
                     : 0.0f;
    __syncthreads ();
#pragma unroll
    for (int kk = 0; kk < GT; kk++)
      acc += As[kk][tx] * Bs[ty][kk];
    __syncthreads ();
  }
  if (r < m && c < n)
    ck_st (D, dt, c * ldd + r, acc);
}

extern "C" cudaError_t
ovi_ck_gemm_fallback (cudaStream_t stream, int ta, int tb, int64_t m, int64_t n,
                      int64_t k, const void *A, int64_t lda, const void *B,
                      int64_t ldb, void *D, int64_t ldd, int dtype)
{
  int64_t gx = (m + GT - 1) / GT, gy = (n + GT - 1) / GT;

  if (m <= 0 || n <= 0)
    return cudaSuccess;
  if (gx > 0x7fffffffLL || gy > 65535)
    return cudaErrorInvalidValue;
  k_gemm_fallback<<<dim3 ((unsigned) gx, (unsigned) gy), dim3 (GT, GT), 0,
                    stream>>> (ta, tb, m, n, k, A, lda, B, ldb, D, ldd,
                                 dtype);
  return cudaGetLastError ();
}
