/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the CPU backend's GEMM: C = act (A . B^T + bias).
 *
 * A is f32 rows; B is a weight in PyTorch Linear layout [N, K] of any
 * supported dtype. B is packed to f32 panels of NB rows x KB columns (one
 * conversion per element per call), laid out [NB / NR][KB][NR] so that the
 * MR x NR micro-kernel is a sequence of broadcast-multiply-adds gcc
 * vectorises. Each C element is the sum over K-blocks (in order) of the
 * in-register partial sums over KB: the order depends only on K, never on
 * the tiling of M or N or on threads.
 */
#include "ovi-cpu-private.h"

#include <math.h>
#include <string.h>

#define MR 6
#define NR 16
#define KB 256
#define NB 128

gsize
ovi_cpu_gemm_pack_size (void)
{
  return sizeof (float) * ((gsize) NB * KB + (gsize) MR * KB);
}

float *
ovi_cpu_pack_scratch (OviBackend *be, int tid, const char *op)
{
  float *pack = ovi_cpu_scratch (be, tid, 0, ovi_cpu_gemm_pack_size ());

  if (pack == NULL)
    ovi_backend_set_error (be, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                           "%s: out of memory for scratch", op);
  return pack;
}

float
ovi_cpu_activate (float x, OviActivation act)
{
  switch (act) {
    case OVI_ACT_GELU_TANH:
      /* 0.5 x (1 + tanh u) written as x / (1 + exp (-2u)): the same
       * function without the cancellation of 1 + tanh u for x < 0 */
      return x
             / (1.0f
                + expf (-2.0f * 0.7978845608028654f
                        * (x + 0.044715f * x * x * x)));
    case OVI_ACT_GELU_ERF:
      /* 0.5 x (1 + erf (x / sqrt 2)) = 0.5 x erfc (-x / sqrt 2) */
      return 0.5f * x * erfcf (-x * 0.7071067811865476f);
    case OVI_ACT_SILU:
      return x / (1.0f + expf (-x));
    case OVI_ACT_TANH:
      return tanhf (x);
    case OVI_ACT_RELU:
      return x > 0.0f ? x : 0.0f;
    case OVI_ACT_NONE:
    default:
      return x;
  }
}

void
ovi_cpu_load_f32 (float *dst, const void *src, OviDType dtype, int64_t n,
                  int64_t stride)
{
  switch (dtype) {
    case OVI_DTYPE_F32: {
      const float *s = src;
      if (stride == 1)
        memcpy (dst, s, sizeof (float) * n);
      else
        for (int64_t i = 0; i < n; i++)
          dst[i] = s[i * stride];
      break;
    }
    case OVI_DTYPE_BF16: {
      const uint16_t *s = src;
      int64_t i0 = 0;
      if (stride == 1) {
        /* 16 at a time with vector extensions: bits << 16 */
        typedef uint16_t v16u16 __attribute__ ((vector_size (32)));
        typedef uint32_t v16u32 __attribute__ ((vector_size (64)));
        for (; i0 + 16 <= n; i0 += 16) {
          v16u16 h;
          v16u32 w;
          memcpy (&h, s + i0, sizeof (h));
          w = __builtin_convertvector(h, v16u32) << 16;
          memcpy (dst + i0, &w, sizeof (w));
        }
      }
      for (int64_t i = i0; i < n; i++) {
        uint32_t u = (uint32_t) s[i * stride] << 16;
        memcpy (dst + i, &u, 4);
      }
      break;
    }
    case OVI_DTYPE_F16: {
      const uint16_t *s = src;
      for (int64_t i = 0; i < n; i++)
        dst[i] = ovi_f16_to_f32 (s[i * stride]);
      break;
    }
    case OVI_DTYPE_F8_E4M3: {
      static float table[256];
      static gsize table_init = 0;
      const uint8_t *s = src;
      if (g_once_init_enter (&table_init)) {
        for (int v = 0; v < 256; v++)
          table[v] = ovi_f8e4m3_to_f32 ((uint8_t) v);
        g_once_init_leave (&table_init, 1);
      }
      for (int64_t i = 0; i < n; i++)
        dst[i] = table[s[i * stride]];
      break;
    }
    case OVI_DTYPE_I8: {
      const int8_t *s = src;
      for (int64_t i = 0; i < n; i++)
        dst[i] = s[i * stride];
      break;
    }
    case OVI_DTYPE_F64: {
      const double *s = src;
      for (int64_t i = 0; i < n; i++)
        dst[i] = (float) s[i * stride];
      break;
    }
    case OVI_DTYPE_I64: {
      const int64_t *s = src;
      for (int64_t i = 0; i < n; i++)
        dst[i] = (float) s[i * stride];
      break;
    }
    case OVI_DTYPE_I32: {
      const int32_t *s = src;
      for (int64_t i = 0; i < n; i++)
        dst[i] = (float) s[i * stride];
      break;
    }
    case OVI_DTYPE_U8:
    case OVI_DTYPE_BOOL: {
      const uint8_t *s = src;
      for (int64_t i = 0; i < n; i++)
        dst[i] = s[i * stride];
      break;
    }
    default:
      for (int64_t i = 0; i < n; i++)
        dst[i] = NAN;
      break;
  }
}

/* acc[MR][NR] = sum_k a[r * lda + k] * b[k * NR + j] for k < kb.
 *
 * Written with GCC vector extensions so that the accumulators stay in
 * registers: 6 rows x 16 floats are 6 zmm (AVX-512) or 12 ymm (AVX2). Each
 * element is the same chain of fused multiply-adds in every variant with
 * FMA, so AVX-512 and AVX2 machines give identical results. */
typedef float v16f __attribute__ ((vector_size (64)));
typedef float v8f __attribute__ ((vector_size (32)));

#define KERNEL_BODY_16                                                         \
  {                                                                            \
    v16f c0 = { 0 }, c1 = { 0 }, c2 = { 0 }, c3 = { 0 }, c4 = { 0 };           \
    v16f c5 = { 0 };                                                           \
    for (int64_t k = 0; k < kb; k++) {                                         \
      v16f bv;                                                                 \
      memcpy (&bv, b + k * NR, sizeof (bv));                                   \
      c0 += a[k] * bv;                                                         \
      c1 += a[lda + k] * bv;                                                   \
      c2 += a[2 * lda + k] * bv;                                               \
      c3 += a[3 * lda + k] * bv;                                               \
      c4 += a[4 * lda + k] * bv;                                               \
      c5 += a[5 * lda + k] * bv;                                               \
    }                                                                          \
    memcpy (acc, &c0, 64);                                                     \
    memcpy (acc + 16, &c1, 64);                                                \
    memcpy (acc + 32, &c2, 64);                                                \
    memcpy (acc + 48, &c3, 64);                                                \
    memcpy (acc + 64, &c4, 64);                                                \
    memcpy (acc + 80, &c5, 64);                                                \
  }

#define KERNEL_BODY_8                                                          \
  {                                                                            \
    v8f c0 = { 0 }, c1 = { 0 }, c2 = { 0 }, c3 = { 0 }, c4 = { 0 };            \
    v8f c5 = { 0 }, d0 = { 0 }, d1 = { 0 }, d2 = { 0 }, d3 = { 0 };            \
    v8f d4 = { 0 }, d5 = { 0 };                                                \
    for (int64_t k = 0; k < kb; k++) {                                         \
      v8f b0, b1;                                                              \
      float x;                                                                 \
      memcpy (&b0, b + k * NR, sizeof (b0));                                   \
      memcpy (&b1, b + k * NR + 8, sizeof (b1));                               \
      x = a[k];                                                                \
      c0 += x * b0;                                                            \
      d0 += x * b1;                                                            \
      x = a[lda + k];                                                          \
      c1 += x * b0;                                                            \
      d1 += x * b1;                                                            \
      x = a[2 * lda + k];                                                      \
      c2 += x * b0;                                                            \
      d2 += x * b1;                                                            \
      x = a[3 * lda + k];                                                      \
      c3 += x * b0;                                                            \
      d3 += x * b1;                                                            \
      x = a[4 * lda + k];                                                      \
      c4 += x * b0;                                                            \
      d4 += x * b1;                                                            \
      x = a[5 * lda + k];                                                      \
      c5 += x * b0;                                                            \
      d5 += x * b1;                                                            \
    }                                                                          \
    memcpy (acc, &c0, 32);                                                     \
    memcpy (acc + 8, &d0, 32);                                                 \
    memcpy (acc + 16, &c1, 32);                                                \
    memcpy (acc + 24, &d1, 32);                                                \
    memcpy (acc + 32, &c2, 32);                                                \
    memcpy (acc + 40, &d2, 32);                                                \
    memcpy (acc + 48, &c3, 32);                                                \
    memcpy (acc + 56, &d3, 32);                                                \
    memcpy (acc + 64, &c4, 32);                                                \
    memcpy (acc + 72, &d4, 32);                                                \
    memcpy (acc + 80, &c5, 32);                                                \
    memcpy (acc + 88, &d5, 32);                                                \
  }

G_STATIC_ASSERT (NR == OVI_CPU_NR && NB == OVI_CPU_NB);

typedef void (*MicroKernel) (int64_t kb, const float *restrict a, int64_t lda,
                             const float *restrict b, float *restrict acc);

static void
micro_kernel_generic (int64_t kb, const float *restrict a, int64_t lda,
                      const float *restrict b,
                      float *restrict acc) KERNEL_BODY_8

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define OVI_HAVE_X86_KERNELS 1
    __attribute__ ((target ("avx2,fma"))) static void micro_kernel_avx2 (
        int64_t kb, const float *restrict a, int64_t lda,
        const float *restrict b, float *restrict acc) KERNEL_BODY_8

    __attribute__ ((target (
        "avx512f,avx2,"
        "fma"))) static void micro_kernel_avx512 (int64_t kb,
                                                  const float *restrict a,
                                                  int64_t lda,
                                                  const float *restrict b,
                                                  float *restrict acc)
        KERNEL_BODY_16
#endif

    static MicroKernel pick_kernel (void)
{
  static MicroKernel kernel = NULL;
  MicroKernel k = g_atomic_pointer_get (&kernel);

  if (k)
    return k;
  k = micro_kernel_generic;
#ifdef OVI_HAVE_X86_KERNELS
  __builtin_cpu_init ();
  if (__builtin_cpu_supports ("avx2") && __builtin_cpu_supports ("fma"))
    k = micro_kernel_avx2;
  if (k == micro_kernel_avx2 && __builtin_cpu_supports ("avx512f")
      && !g_getenv ("OVI_CPU_NO_AVX512"))
    k = micro_kernel_avx512;
#endif
  g_atomic_pointer_set (&kernel, k);
  return k;
}

/* pack rows [0, nb) cols [k0, k0 + kb) of B into [nb/NR][kb][NR] f32 */
static void
pack_b (float *restrict pack, const void *b, OviDType dtype, int64_t ldb,
        const float *b_scale, int64_t nb, int64_t k0, int64_t kb)
{
  gsize esize = ovi_dtype_size (dtype);
  int64_t nbr = (nb + NR - 1) / NR * NR;
  float row[KB];

  for (int64_t j = 0; j < nbr; j++) {
    float *dst = pack + (j / NR) * NR * kb + (j % NR);
    if (j >= nb) {
      for (int64_t k = 0; k < kb; k++)
        dst[k * NR] = 0.0f;
      continue;
    }
    ovi_cpu_load_f32 (row, (const char *) b + (j * ldb + k0) * esize, dtype, kb,
                      1);
    if (b_scale) {
      float s = b_scale[j];
      for (int64_t k = 0; k < kb; k++)
        dst[k * NR] = row[k] * s;
    } else {
      for (int64_t k = 0; k < kb; k++)
        dst[k * NR] = row[k];
    }
  }
}

/* C[0:M, 0:nb] (= or +=) A[0:M, 0:kb] . the packed B panel, in MR-row
 * strips; a short last strip is zero-padded in `apad` so the same kernel
 * makes the same sums. C's rows are ldc_m apart, its columns ldc_n. */
static void
gemm_strips (MicroKernel micro_kernel, int64_t M, int64_t nb, int64_t kb,
             const float *A, int64_t lda, const float *pack, float *apad,
             float *C, int64_t ldc_m, int64_t ldc_n, gboolean accumulate)
{
  float acc[MR * NR];

  for (int64_t m0 = 0; m0 < M; m0 += MR) {
    int64_t mr = MIN (MR, M - m0);
    const float *a = A + m0 * lda;
    int64_t la = lda;

    if (mr < MR) {
      for (int r = 0; r < MR; r++) {
        if (r < mr)
          memcpy (apad + r * kb, a + r * lda, sizeof (float) * kb);
        else
          memset (apad + r * kb, 0, sizeof (float) * kb);
      }
      a = apad;
      la = kb;
    }
    for (int64_t jp = 0; jp < nb; jp += NR) {
      int64_t nr = MIN (NR, nb - jp);
      float *c = C + m0 * ldc_m + jp * ldc_n;

      micro_kernel (kb, a, la, pack + jp * kb, acc);
      if (accumulate) {
        for (int64_t r = 0; r < mr; r++)
          for (int64_t j = 0; j < nr; j++)
            c[r * ldc_m + j * ldc_n] += acc[r * NR + j];
      } else if (ldc_n == 1) {
        for (int64_t r = 0; r < mr; r++)
          memcpy (c + r * ldc_m, acc + r * NR, sizeof (float) * nr);
      } else {
        for (int64_t r = 0; r < mr; r++)
          for (int64_t j = 0; j < nr; j++)
            c[r * ldc_m + j * ldc_n] = acc[r * NR + j];
      }
    }
  }
}

void
ovi_cpu_gemm_serial_raw (int64_t M, int64_t N, int64_t K, const float *A,
                         int64_t lda, const void *b, OviDType b_dtype,
                         int64_t ldb, const float *b_scale, const float *bias,
                         float *C, int64_t ldc_m, int64_t ldc_n,
                         OviActivation act, float *pack)
{
  MicroKernel micro_kernel = pick_kernel ();
  float *apad = pack + NB * KB;
  gsize esize = ovi_dtype_size (b_dtype);

  if (K == 0) {
    for (int64_t m = 0; m < M; m++)
      for (int64_t n = 0; n < N; n++)
        C[m * ldc_m + n * ldc_n]
            = ovi_cpu_activate (bias ? bias[n] : 0.0f, act);
    return;
  }
  for (int64_t n0 = 0; n0 < N; n0 += NB) {
    int64_t nb = MIN (NB, N - n0);

    for (int64_t k0 = 0; k0 < K; k0 += KB) {
      int64_t kb = MIN (KB, K - k0);

      pack_b (pack, (const char *) b + n0 * ldb * esize, b_dtype, ldb,
              b_scale ? b_scale + n0 : NULL, nb, k0, kb);
      gemm_strips (micro_kernel, M, nb, kb, A + k0, lda, pack, apad,
                   C + n0 * ldc_n, ldc_m, ldc_n, k0 != 0);
    }
    if (bias || act != OVI_ACT_NONE) {
      for (int64_t m = 0; m < M; m++) {
        float *c = C + m * ldc_m + n0 * ldc_n;
        for (int64_t j = 0; j < nb; j++) {
          float v = c[j * ldc_n] + (bias ? bias[n0 + j] : 0.0f);
          c[j * ldc_n] = ovi_cpu_activate (v, act);
        }
      }
    }
  }
}

void
ovi_cpu_gemm_implicit (int64_t M, int64_t N, int64_t K, const float *A,
                       int64_t lda, OviCpuPackB pack_fn, gpointer data,
                       const float *bias, float *C, int64_t ldc, int64_t ldc_n,
                       float *pack)
{
  MicroKernel micro_kernel = pick_kernel ();
  float *apad = pack + NB * KB;

  for (int64_t n0 = 0; n0 < N; n0 += NB) {
    int64_t nb = MIN (NB, N - n0);

    if (K == 0)
      for (int64_t m = 0; m < M; m++)
        for (int64_t j = 0; j < nb; j++)
          C[m * ldc + (n0 + j) * ldc_n] = 0.0f;
    for (int64_t k0 = 0; k0 < K; k0 += KB) {
      int64_t kb = MIN (KB, K - k0);

      pack_fn (data, n0, nb, k0, kb, pack);
      gemm_strips (micro_kernel, M, nb, kb, A + k0, lda, pack, apad,
                   C + n0 * ldc_n, ldc, ldc_n, k0 != 0);
    }
    if (bias)
      for (int64_t m = 0; m < M; m++)
        for (int64_t j = 0; j < nb; j++)
          C[m * ldc + (n0 + j) * ldc_n] += bias[m];
  }
}

/* C[m, n] += sum_k A[m * lda + k] * B[k * ldb + n]: f32 B in [K, N] layout
 * (attention's P . V), same blocking and micro-kernel */
void
ovi_cpu_gemm_f32_kn_acc (int64_t M, int64_t N, int64_t K, const float *A,
                         int64_t lda, const float *B, int64_t ldb, float *C,
                         int64_t ldc, float *pack)
{
  MicroKernel micro_kernel = pick_kernel ();
  float *apad = pack + NB * KB;

  for (int64_t n0 = 0; n0 < N; n0 += NB) {
    int64_t nb = MIN (NB, N - n0);
    int64_t nbr = (nb + NR - 1) / NR * NR;

    for (int64_t k0 = 0; k0 < K; k0 += KB) {
      int64_t kb = MIN (KB, K - k0);

      for (int64_t jp = 0; jp < nbr; jp += NR) {
        int64_t nr = MIN (NR, nb - jp);
        float *dst = pack + jp * kb;
        for (int64_t k = 0; k < kb; k++) {
          const float *src = B + (k0 + k) * ldb + n0 + jp;
          memcpy (dst + k * NR, src, sizeof (float) * nr);
          for (int64_t j = nr; j < NR; j++)
            dst[k * NR + j] = 0.0f;
        }
      }
      gemm_strips (micro_kernel, M, nb, kb, A + k0, lda, pack, apad, C + n0,
                   ldc, 1, TRUE);
    }
  }
}

/* *acc += x[k:k+8] * w[k:k+8] over k < k8 (a multiple of 8) */
#define DOT_BODY                                                               \
  {                                                                            \
    v8f p;                                                                     \
    memcpy (&p, acc, sizeof (p));                                              \
    for (int64_t k = 0; k < k8; k += 8) {                                      \
      v8f xv, wv;                                                              \
      memcpy (&xv, x + k, sizeof (xv));                                        \
      memcpy (&wv, w + k, sizeof (wv));                                        \
      p += xv * wv;                                                            \
    }                                                                          \
    memcpy (acc, &p, sizeof (p));                                              \
  }

typedef void (*DotKernel) (int64_t k8, const float *x, const float *w,
                           v8f *acc);

static void
dot_generic (int64_t k8, const float *x, const float *w, v8f *acc) DOT_BODY

#ifdef OVI_HAVE_X86_KERNELS
    __attribute__ ((target ("avx2,fma"))) static void dot_avx2 (
        int64_t k8, const float *x, const float *w, v8f *acc) DOT_BODY
#endif

    static DotKernel pick_dot (void)
{
#ifdef OVI_HAVE_X86_KERNELS
  if (pick_kernel () != micro_kernel_generic)
    return dot_avx2;
#endif
  return dot_generic;
}

/* the matmul op's operands: C[M, N] = act (A[M, K] . b[N, K]^T * b_scale
 * + bias), b in its own dtype */
typedef struct {
  OviBackend *be;
  int64_t M, N, K;
  const float *A;
  int64_t lda;
  const void *b;
  OviDType b_dtype;
  int64_t ldb;
  const float *b_scale;
  const float *bias;
  float *C;
  OviActivation act;
} GemmOperands;

/* few rows (M < 4): no packing; each weight row is converted once and
 * dotted with every x row using 8 interleaved partial sums */
static void
gemv_range (gpointer data, int64_t start, int64_t end, int tid)
{
  GemmOperands *j = data;
  gsize esize = ovi_dtype_size (j->b_dtype);
  float *wrow = ovi_cpu_scratch (j->be, tid, 0, sizeof (float) * KB);

  if (wrow == NULL) {
    ovi_backend_set_error (j->be, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                           "ovi_op_matmul: out of memory for scratch");
    return;
  }
  DotKernel dot = pick_dot ();

  for (int64_t n = start; n < end; n++) {
    double total[4] = { 0, 0, 0, 0 };

    /* 8 lanes of fp32 partial sums per K-block of 256, block sums in
     * double */
    for (int64_t k0 = 0; k0 < j->K; k0 += KB) {
      int64_t kb = MIN (KB, j->K - k0), k8 = kb / 8 * 8;
      ovi_cpu_load_f32 (wrow, (const char *) j->b + (n * j->ldb + k0) * esize,
                        j->b_dtype, kb, 1);
      for (int64_t m = 0; m < j->M; m++) {
        const float *x = j->A + m * j->lda + k0;
        v8f part = { 0 };
        float p[8], tail = 0.0f;
        dot (k8, x, wrow, &part);
        for (int64_t k = k8; k < kb; k++)
          tail += x[k] * wrow[k];
        memcpy (p, &part, sizeof (p));
        total[m] += ((double) p[0] + p[4]) + ((double) p[1] + p[5])
                    + ((double) p[2] + p[6]) + ((double) p[3] + p[7]) + tail;
      }
    }
    for (int64_t m = 0; m < j->M; m++) {
      float v = (float) total[m];
      if (j->b_scale)
        v *= j->b_scale[n];
      if (j->bias)
        v += j->bias[n];
      j->C[m * j->N + n] = ovi_cpu_activate (v, j->act);
    }
  }
}

gboolean
ovi_cpu_weight_scales (OviBackend *be, const OviTensor *w, const char *op,
                       float **scales)
{
  int64_t rows = w->ndim ? w->shape[0] : 1, ns;
  float *s;

  *scales = NULL;
  if (w->scale == NULL)
    return TRUE;
  ns = ovi_tensor_numel (w->scale);
  if (ns != 1 && ns != rows) {
    ovi_backend_set_error (be, OVI_ERROR, OVI_ERROR_SHAPE,
                           "%s: the weight's scale has %" G_GINT64_FORMAT
                           " elements, expected 1 or %" G_GINT64_FORMAT,
                           op, ns, rows);
    return FALSE;
  }
  s = g_new (float, MAX (rows, 1));
  ovi_cpu_load_f32 (s, ovi_tensor_data (w->scale), w->scale->dtype, ns,
                    ovi_tensor_is_contiguous (w->scale) ? 1
                                                        : w->scale->stride[0]);
  for (int64_t n = ns; n < rows; n++)
    s[n] = s[0];
  *scales = s;
  return TRUE;
}

/* ---- the threaded matmul op ---- */

typedef struct {
  GemmOperands g;
  int64_t n_blocks, m_chunk;
} MatmulJob;

static void
matmul_range (gpointer data, int64_t start, int64_t end, int tid)
{
  MatmulJob *j = data;
  const GemmOperands *g = &j->g;
  float *pack = ovi_cpu_pack_scratch (g->be, tid, "ovi_op_matmul");
  gsize esize = ovi_dtype_size (g->b_dtype);

  if (pack == NULL)
    return;
  for (int64_t t = start; t < end; t++) {
    int64_t nblk = t % j->n_blocks, mc = t / j->n_blocks;
    int64_t n0 = nblk * NB, nb = MIN (NB, g->N - n0);
    int64_t m0 = mc * j->m_chunk, mb = MIN (j->m_chunk, g->M - m0);

    ovi_cpu_gemm_serial_raw (
        mb, nb, g->K, g->A + m0 * g->lda, g->lda,
        (const char *) g->b + n0 * g->ldb * esize, g->b_dtype, g->ldb,
        g->b_scale ? g->b_scale + n0 : NULL, g->bias ? g->bias + n0 : NULL,
        g->C + m0 * g->N + n0, g->N, 1, g->act, pack);
  }
}

/* rows of a tensor whose last dim is contiguous and whose leading dims
 * flatten to one row stride */
static gboolean
row_layout (const OviTensor *t, int64_t *rows, int64_t *row_stride)
{
  int64_t n = 1, s = -1, expect = 0;

  if (t->ndim == 0
      || (t->stride[t->ndim - 1] != 1 && t->shape[t->ndim - 1] > 1))
    return FALSE;
  for (int i = t->ndim - 2; i >= 0; i--) {
    if (t->shape[i] == 1)
      continue;
    if (s < 0) {
      s = t->stride[i];
      expect = s * t->shape[i];
    } else {
      if (t->stride[i] != expect)
        return FALSE;
      expect *= t->shape[i];
    }
    n *= t->shape[i];
  }
  *rows = n;
  *row_stride = s < 0 ? t->shape[t->ndim - 1] : s;
  return TRUE;
}

void
ovi_cpu_matmul (OviBackend *be, OviTensor *out, const OviTensor *x,
                const OviTensor *w, const OviTensor *bias, OviActivation act)
{
  OviCpuPriv *priv = ovi_cpu_priv (be);
  MatmulJob j = { 0 };
  g_autofree float *scales = NULL, *bias_f = NULL;
  g_autoptr (OviTensor) xc = NULL;
  int64_t M, lda, m_chunks, m_blocks;

  j.g.N = w->shape[0];
  j.g.K = w->shape[1];
  if (x->dtype != OVI_DTYPE_F32 || !row_layout (x, &M, &lda)) {
    xc = ovi_cpu_f32_contig (be, x, "ovi_op_matmul");
    if (xc == NULL)
      return;
    x = xc;
    M = ovi_tensor_numel (x) / MAX (j.g.K, 1);
    lda = j.g.K;
  }
  if (w->stride[1] != 1 && j.g.K > 1) {
    ovi_backend_set_error (be, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                           "ovi_op_matmul: w rows must be contiguous");
    return;
  }
  if (!ovi_cpu_weight_scales (be, w, "ovi_op_matmul", &scales))
    return;
  if (bias) {
    bias_f = g_new (float, j.g.N);
    ovi_cpu_load_f32 (bias_f, ovi_tensor_data (bias), bias->dtype, j.g.N,
                      bias->stride[bias->ndim - 1]);
  }
  j.g.be = be;
  j.g.M = M;
  j.g.A = ovi_tensor_data (x);
  j.g.lda = lda;
  j.g.b = ovi_tensor_data (w);
  j.g.b_dtype = w->dtype;
  j.g.ldb = w->stride[0];
  j.g.b_scale = scales;
  j.g.bias = bias_f;
  j.g.C = ovi_tensor_data (out);
  j.g.act = act;
  if (M < 4) {
    if (M > 0)
      ovi_cpu_pool_parallel_for (priv->pool, j.g.N, 16, gemv_range, &j.g);
    return;
  }
  j.n_blocks = (j.g.N + NB - 1) / NB;
  /* split M too when there are few N blocks, in chunks of whole MR rows */
  m_blocks = (M + MR - 1) / MR;
  m_chunks = (priv->n_threads * 4 + j.n_blocks - 1) / j.n_blocks;
  m_chunks = CLAMP (m_chunks, 1, MAX (1, m_blocks / 8));
  if (priv->n_threads == 1)
    m_chunks = 1;
  j.m_chunk = (m_blocks + m_chunks - 1) / m_chunks * MR;
  m_chunks = (M + j.m_chunk - 1) / j.m_chunk;
  if (M == 0 || j.g.N == 0)
    return;
  ovi_cpu_pool_parallel_for (priv->pool, j.n_blocks * m_chunks, 1, matmul_range,
                             &j);
}
