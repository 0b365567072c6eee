/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: internals of the CPU backend shared by its source files. */
#pragma once

#include "ovi-backend-impl.h"
#include "ovi-cpu-threads.h"

G_BEGIN_DECLS

typedef struct {
  void *data;
  gsize size;
} OviCpuScratch;

#define OVI_CPU_N_SCRATCH 4

typedef struct {
  OviCpuPool *pool;
  int n_threads;
  /* per thread, a few growable buffers reused from op to op */
  OviCpuScratch *scratch; /* [n_threads * OVI_CPU_N_SCRATCH] */
} OviCpuPriv;

static inline OviCpuPriv *
ovi_cpu_priv (OviBackend *be)
{
  return (OviCpuPriv *) be->priv;
}

/* a 64-byte aligned buffer of at least `size` bytes owned by thread `tid`
 * (slot 0..OVI_CPU_N_SCRATCH-1); valid until the next call with the same
 * (tid, slot). NULL on out of memory. */
void *ovi_cpu_scratch (OviBackend *be, int tid, int slot, gsize size);

/* thread `tid`'s pack of ovi_cpu_gemm_pack_size() bytes (scratch slot 0);
 * NULL with an out-of-memory error naming `op` set */
float *ovi_cpu_pack_scratch (OviBackend *be, int tid, const char *op);

/* C[m * ldc_m + n * ldc_n] = act (sum_k A[m * lda + k] * B[n, k] + bias[n])
 * for m in [0, M), n in [0, N), run on the calling thread. B is a weight
 * operand of any float dtype, I8 or F8_E4M3 (with b->scale), given as the
 * tensor `b` of shape [N_total, K] (last dim contiguous) of which rows
 * [n0, n0 + N) are used; bias (nullable) likewise indexed n0 + n.
 * `pack` must hold ovi_cpu_gemm_pack_size() bytes. Each C element is a
 * sum over K in a fixed order that does not depend on M, N or n0. */
gsize ovi_cpu_gemm_pack_size (void);
void ovi_cpu_gemm_serial (int64_t M, int64_t N, int64_t K, const float *A,
                          int64_t lda, const OviTensor *b, int64_t n0,
                          const float *bias, float *C, int64_t ldc_m,
                          int64_t ldc_n, OviActivation act, float *pack);

/* B panel rows given as raw pointer + dtype + per-row scales (nullable) */
void ovi_cpu_gemm_serial_raw (int64_t M, int64_t N, int64_t K, const float *A,
                              int64_t lda, const void *b, OviDType b_dtype,
                              int64_t ldb, const float *b_scale,
                              const float *bias, float *C, int64_t ldc_m,
                              int64_t ldc_n, OviActivation act, float *pack);

/* C[m, n] += sum_k A[m * lda + k] * B[k * ldb + n] (f32 B in [K, N]) */
void ovi_cpu_gemm_f32_kn_acc (int64_t M, int64_t N, int64_t K, const float *A,
                              int64_t lda, const float *B, int64_t ldb,
                              float *C, int64_t ldc, float *pack);

/* implicit GEMM for convolutions: C[m * ldc + n * ldc_n] = sum_k A[m * lda + k]
 * * B(n, k) + bias[m] for m < M, n < N, where pack_b (data, n0, nb, k0, kb,
 * dst) writes B(n0 + j, k0 + k) for j < nb, k < kb to
 * dst[(j / OVI_CPU_NR) * kb * OVI_CPU_NR + k * OVI_CPU_NR + j % OVI_CPU_NR]
 * and zeros for j up to nb rounded up to OVI_CPU_NR. nb <= OVI_CPU_NB. */
#define OVI_CPU_NR 16
#define OVI_CPU_NB 128
typedef void (*OviCpuPackB) (gpointer data, int64_t n0, int64_t nb, int64_t k0,
                             int64_t kb, float *dst);
void ovi_cpu_gemm_implicit (int64_t M, int64_t N, int64_t K, const float *A,
                            int64_t lda, OviCpuPackB pack_b, gpointer data,
                            const float *bias, float *C, int64_t ldc,
                            int64_t ldc_n, float *pack);

/* a buffer owned by the calling (non-worker) thread for per-op data shared
 * by the workers, e.g. weights converted to f32; reused from op to op */
void *ovi_cpu_shared_scratch (OviBackend *be, gsize size);

/* the whole-matmul op, threaded */
void ovi_cpu_matmul (OviBackend *be, OviTensor *out, const OviTensor *x,
                     const OviTensor *w, const OviTensor *bias,
                     OviActivation act);

float ovi_cpu_activate (float x, OviActivation act);

/* load n elements of a (dtype, stride) row as f32, no scale */
void ovi_cpu_load_f32 (float *dst, const void *src, OviDType dtype, int64_t n,
                       int64_t stride);

/* t itself (ref'd) when it is a contiguous f32 host tensor without scale,
 * else a converted copy; NULL with the backend error set on failure */
OviTensor *ovi_cpu_f32_contig (OviBackend *be, const OviTensor *t,
                               const char *op);

/* per-row dequantisation scales of a weight ([rows] floats), NULL when it
 * has none; FALSE with the backend error set when the scale is malformed */
gboolean ovi_cpu_weight_scales (OviBackend *be, const OviTensor *w,
                                const char *op, float **scales);

G_END_DECLS
