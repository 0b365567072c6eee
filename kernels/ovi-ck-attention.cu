/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: fused attention with an online softmax; no score matrix is
 * materialised.
 *
 * Each warp owns one query row of one (batch, head). Tiled kernel (head dims
 * D, Dv <= 128): the block (8 warps = 8 consecutive queries of the same
 * (b, h)) stages KT = 32 keys of K and V in shared memory (fp32); lane j
 * scores key j against the whole query (q in shared memory, pre-scaled),
 * the warp takes max and sum, and each lane accumulates Dv / 32 output dims
 * over the 32 probabilities (shuffled from their lanes). Fallback kernel
 * (D or Dv up to 1024, e.g. the single-head VAE attention): one key at a
 * time straight from global memory with a warp-reduced dot product.
 * Keys >= kv_lens[b] are skipped; a query with every key masked (or every
 * score -inf) gets 0, as the CPU backend.
 */
#include "ovi-ck-common.cuh"

#define WARPS 8
#define KT    32

template <int DPL>
static __global__ void
__launch_bounds__ (WARPS * 32) k_attn_tiled (OviCkAttention p)
{
  extern __shared__ float sm[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t b = blockIdx.z, h = blockIdx.y;
  const int64_t qi = (int64_t) blockIdx.x * WARPS + warp;
  const bool valid = qi < p.Lq;
  const int D = (int) p.D, Dv = (int) p.Dv;
  float *qs = sm + warp * D;
  float *ks = sm + WARPS * D;    /* [KT][D + 1] */
  float *vs = ks + KT * (D + 1); /* [KT][Dv] */
  const int64_t klen = p.kv_lens ? p.kv_lens[b] : p.Lk;
  float acc[DPL];
  float m = -INFINITY, l = 0.0f;

  if (valid)
    for (int d = lane; d < D; d += 32)
      qs[d] = ck_ld (p.q, p.qdt, b * p.qs0 + qi * p.qs1 + h * p.qs2 + d)
              * p.scale;
#pragma unroll
  for (int i = 0; i < DPL; i++)
    acc[i] = 0.0f;

  for (int64_t t0 = 0; t0 < klen; t0 += KT) {
    __syncthreads (); /* the previous tile is consumed; qs is visible */
    for (int idx = threadIdx.x; idx < KT * D; idx += blockDim.x) {
      int j = idx / D, d = idx - j * D;
      int64_t kk = t0 + j;
      ks[j * (D + 1) + d]
          = kk < klen
                ? ck_ld (p.k, p.kdt, b * p.ks0 + kk * p.ks1 + h * p.ks2 + d)
                : 0.0f;
    }
    for (int idx = threadIdx.x; idx < KT * Dv; idx += blockDim.x) {
      int j = idx / Dv, d = idx - j * Dv;
      int64_t kk = t0 + j;
      vs[j * Dv + d]
          = kk < klen
                ? ck_ld (p.v, p.vdt, b * p.vs0 + kk * p.vs1 + h * p.vs2 + d)
                : 0.0f;
    }
    __syncthreads ();
    if (valid) { /* warp-uniform */
      const int64_t kk = t0 + lane;
      float s = -INFINITY, mt, mn;

      if (kk < klen) {
        const float *kr = ks + lane * (D + 1);
        float dot = 0.0f;
        for (int d = 0; d < D; d++)
          dot += qs[d] * kr[d];
        if (p.bias)
          dot += ck_ld (p.bias, p.bdt,
                        b * p.bs0 + h * p.bs1 + qi * p.bs2 + kk * p.bs3);
        s = dot;
      }
      mt = ck_warp_max (s);
      mn = fmaxf (m, mt);
      if (mn != -INFINITY) { /* warp-uniform: m and mt are */
        float corr = expf (m - mn);
        float pj = s == -INFINITY ? 0.0f : expf (s - mn);
        l = l * corr + ck_warp_sum (pj);
#pragma unroll
        for (int i = 0; i < DPL; i++)
          acc[i] *= corr;
        for (int j = 0; j < KT; j++) {
          float pb = __shfl_sync (0xffffffffu, pj, j);
#pragma unroll
          for (int i = 0; i < DPL; i++) {
            int d = lane + 32 * i;
            if (d < Dv)
              acc[i] += pb * vs[j * Dv + d];
          }
        }
        m = mn;
      }
    }
  }
  if (valid) {
    float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
    for (int i = 0; i < DPL; i++) {
      int d = lane + 32 * i;
      if (d < Dv)
        ck_st (p.out, p.odt, ((b * p.Lq + qi) * p.H + h) * p.Dv + d,
               acc[i] * inv);
    }
  }
}

/* the query lives in shared memory (one row of D floats per warp), not in
 * registers: with DPL = 32 a register copy next to the accumulators
 * spilled (312 bytes per thread, ptxas -v) */
template <int DPL>
static __global__ void
__launch_bounds__ (WARPS * 32) k_attn_rowwise (OviCkAttention p)
{
  extern __shared__ float sm[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t b = blockIdx.z, h = blockIdx.y;
  const int64_t qi = (int64_t) blockIdx.x * WARPS + warp;
  const int D = (int) p.D, Dv = (int) p.Dv;
  float *qs = sm + warp * D;
  float acc[DPL];
  float m = -INFINITY, l = 0.0f, inv;
  int64_t klen;

  if (qi >= p.Lq) /* whole warp; no block barrier in this kernel */
    return;
  klen = p.kv_lens ? p.kv_lens[b] : p.Lk;
  for (int d = lane; d < D; d += 32)
    qs[d] = ck_ld (p.q, p.qdt, b * p.qs0 + qi * p.qs1 + h * p.qs2 + d)
            * p.scale;
  __syncwarp ();
#pragma unroll
  for (int i = 0; i < DPL; i++)
    acc[i] = 0.0f;
  for (int64_t kk = 0; kk < klen; kk++) {
    float part = 0.0f, s, mn, corr, pj;
    for (int d = lane; d < D; d += 32)
      part += qs[d] * ck_ld (p.k, p.kdt, b * p.ks0 + kk * p.ks1 + h * p.ks2 + d);
    s = ck_warp_sum (part);
    if (p.bias)
      s += ck_ld (p.bias, p.bdt,
                  b * p.bs0 + h * p.bs1 + qi * p.bs2 + kk * p.bs3);
    mn = fmaxf (m, s);
    if (mn == -INFINITY)
      continue;
    corr = expf (m - mn);
    pj = expf (s - mn);
    l = l * corr + pj;
#pragma unroll
    for (int i = 0; i < DPL; i++) {
      int d = lane + 32 * i;
      acc[i] *= corr;
      if (d < Dv)
        acc[i]
            += pj * ck_ld (p.v, p.vdt, b * p.vs0 + kk * p.vs1 + h * p.vs2 + d);
    }
    m = mn;
  }
  inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
  for (int i = 0; i < DPL; i++) {
    int d = lane + 32 * i;
    if (d < Dv)
      ck_st (p.out, p.odt, ((b * p.Lq + qi) * p.H + h) * p.Dv + d,
             acc[i] * inv);
  }
}

extern "C" cudaError_t
ovi_ck_attention (cudaStream_t stream, const OviCkAttention *p)
{
  int64_t maxd = p->D > p->Dv ? p->D : p->Dv;
  int64_t gx = (p->Lq + WARPS - 1) / WARPS;
  dim3 grid, block (WARPS * 32);
  size_t smem = sizeof (float) * (WARPS * p->D + KT * (p->D + 1) + KT * p->Dv);
  size_t smem_q = sizeof (float) * WARPS * p->D;

  if (p->B <= 0 || p->Lq <= 0 || p->H <= 0 || p->Dv <= 0)
    return cudaSuccess;
  if (maxd > 1024 || p->H > 65535 || p->B > 65535 || gx > 0x7fffffffLL)
    return cudaErrorInvalidValue;
  grid = dim3 ((unsigned) gx, (unsigned) p->H, (unsigned) p->B);
  if (maxd <= 32)
    k_attn_tiled<1><<<grid, block, smem, stream>>> (*p);
  else if (maxd <= 64)
    k_attn_tiled<2><<<grid, block, smem, stream>>> (*p);
  else if (maxd <= 128)
    k_attn_tiled<4><<<grid, block, smem, stream>>> (*p);
  else if (maxd <= 256)
    k_attn_rowwise<8><<<grid, block, smem_q, stream>>> (*p);
  else if (maxd <= 512)
    k_attn_rowwise<16><<<grid, block, smem_q, stream>>> (*p);
  else
    k_attn_rowwise<32><<<grid, block, smem_q, stream>>> (*p);
  return cudaGetLastError ();
}
