/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the CPU backend (activations in F32, multi-threaded).
 *
 * Row ops (norms, softmax, elementwise, rope, ...) run over the rows of the
 * contiguous output in parallel; inputs are read through a "source" that maps
 * an output row to the input's elements with numpy broadcasting (size-1 or
 * stride-0 dims), converting non-F32 inputs to f32 rows in per-thread
 * scratch. Statistics (norms, softmax sums, means) are taken in double.
 */
#include "ovi-cpu-private.h"

#include <math.h>
#include <string.h>

void ovi_cpu_attention (OviBackend *be, OviTensor *out, const OviTensor *q,
                        const OviTensor *k, const OviTensor *v,
                        const OviTensor *bias, const int64_t *kv_lens,
                        float scale);
void ovi_cpu_register_conv_ops (OviBackendOps *ops);
void ovi_cpu_register_stream_ops (OviBackendOps *ops);

/* ---- scratch ---- */

void *
ovi_cpu_scratch (OviBackend *be, int tid, int slot, gsize size)
{
  OviCpuPriv *priv = ovi_cpu_priv (be);
  OviCpuScratch *s = &priv->scratch[tid * OVI_CPU_N_SCRATCH + slot];

  if (s->size < size) {
    void *p = NULL;
    gsize want = MAX (size, s->size + s->size / 2);

    want = (want + 63) & ~(gsize) 63;
    free (s->data);
    s->data = NULL;
    s->size = 0;
    if (posix_memalign (&p, 64, want) != 0)
      return NULL;
    s->data = p;
    s->size = want;
  }
  return s->data;
}

void *
ovi_cpu_shared_scratch (OviBackend *be, gsize size)
{
  /* the slot after the last thread's */
  return ovi_cpu_scratch (be, ovi_cpu_priv (be)->n_threads, 0, size);
}

/* ---- element conversion ---- */

static void
store_from_f32 (void *dst, OviDType dtype, const float *src, int64_t n)
{
  switch (dtype) {
    case OVI_DTYPE_F32:
      memcpy (dst, src, sizeof (float) * n);
      break;
    case OVI_DTYPE_BF16:
      for (int64_t i = 0; i < n; i++)
        ((uint16_t *) dst)[i] = ovi_f32_to_bf16 (src[i]);
      break;
    case OVI_DTYPE_F16:
      for (int64_t i = 0; i < n; i++)
        ((uint16_t *) dst)[i] = ovi_f32_to_f16 (src[i]);
      break;
    case OVI_DTYPE_F8_E4M3:
      for (int64_t i = 0; i < n; i++)
        ((uint8_t *) dst)[i] = ovi_f32_to_f8e4m3 (src[i]);
      break;
    case OVI_DTYPE_I8:
      /* quantisation: round to nearest, saturate; NaN -> 0 */
      for (int64_t i = 0; i < n; i++) {
        float v = src[i];
        v = isnan (v) ? 0.0f : rintf (fminf (fmaxf (v, -128.0f), 127.0f));
        ((int8_t *) dst)[i] = (int8_t) v;
      }
      break;
    case OVI_DTYPE_F64:
      for (int64_t i = 0; i < n; i++)
        ((double *) dst)[i] = src[i];
      break;
    case OVI_DTYPE_I64:
      for (int64_t i = 0; i < n; i++)
        ((int64_t *) dst)[i] = isfinite (src[i]) ? (int64_t) src[i] : 0;
      break;
    case OVI_DTYPE_I32:
      for (int64_t i = 0; i < n; i++)
        ((int32_t *) dst)[i] = isfinite (src[i]) ? (int32_t) src[i] : 0;
      break;
    case OVI_DTYPE_U8:
      for (int64_t i = 0; i < n; i++)
        ((uint8_t *) dst)[i] = isfinite (src[i]) ? (uint8_t) (int) src[i] : 0;
      break;
    case OVI_DTYPE_BOOL:
      for (int64_t i = 0; i < n; i++)
        ((uint8_t *) dst)[i] = src[i] != 0.0f;
      break;
    default:
      break;
  }
}

/* scale of a quantised tensor for dim-0 index i (1 when it has none) */
static float
scale_at (const OviTensor *t, int64_t i)
{
  const OviTensor *s = t->scale;
  float v;

  if (s == NULL)
    return 1.0f;
  if (ovi_tensor_numel (s) == 1)
    i = 0;
  ovi_cpu_load_f32 (&v,
                    (const char *) ovi_tensor_data (s)
                        + i * (s->ndim ? s->stride[0] : 0)
                              * ovi_dtype_size (s->dtype),
                    s->dtype, 1, 1);
  return v;
}

/* ---- sources: an input read row by row against the output's shape ---- */

typedef struct {
  const char *base;
  OviDType dtype;
  gsize esize;
  int nd; /* leading dims of the output */
  int64_t shape[OVI_MAX_DIMS];
  int64_t stride[OVI_MAX_DIMS]; /* 0 where broadcast */
  int64_t inc;                  /* stride along the row, 0 if broadcast */
  int64_t n;                    /* row length */
} Src;

static void
src_init (Src *s, const OviTensor *t, int target_ndim,
          const int64_t *target_shape)
{
  memset (s, 0, sizeof (*s));
  s->base = ovi_tensor_data (t);
  s->dtype = t->dtype;
  s->esize = ovi_dtype_size (t->dtype);
  s->nd = MAX (target_ndim - 1, 0);
  s->n = target_ndim ? target_shape[target_ndim - 1] : 1;
  for (int d = 0; d < target_ndim; d++) {
    int td = d - (target_ndim - t->ndim);
    int64_t st = (td >= 0 && t->shape[td] != 1) ? t->stride[td] : 0;
    if (d < target_ndim - 1) {
      s->shape[d] = target_shape[d];
      s->stride[d] = st;
    } else {
      s->inc = st;
    }
  }
}

static inline int64_t
src_offset (const Src *s, int64_t row)
{
  int64_t off = 0;

  for (int d = s->nd - 1; d >= 0 && row; d--) {
    int64_t sh = s->shape[d];
    off += (row % sh) * s->stride[d];
    row /= sh;
  }
  return off;
}

/* a contiguous f32 view of row `row`: the data itself when it already is
 * one, else converted into tmp (n floats) */
static const float *
src_row (const Src *s, int64_t row, float *tmp)
{
  const char *p = s->base + src_offset (s, row) * (int64_t) s->esize;

  if (s->dtype == OVI_DTYPE_F32 && (s->inc == 1 || s->n == 1))
    return (const float *) p;
  if (s->inc == 0) {
    float v;
    ovi_cpu_load_f32 (&v, p, s->dtype, 1, 1);
    for (int64_t i = 0; i < s->n; i++)
      tmp[i] = v;
  } else {
    ovi_cpu_load_f32 (tmp, p, s->dtype, s->n, s->inc);
  }
  return tmp;
}

static void cpu_copy (OviBackend *be, OviTensor *dst, const OviTensor *src);

/* a contiguous f32 version of an input (norm gains, non-f32 operands) */
OviTensor *
ovi_cpu_f32_contig (OviBackend *be, const OviTensor *t, const char *op)
{
  GError *error = NULL;
  OviTensor *r;

  if (t == NULL)
    return NULL;
  if (t->dtype == OVI_DTYPE_F32 && t->scale == NULL
      && ovi_tensor_is_contiguous (t))
    return ovi_tensor_ref ((OviTensor *) t);
  r = ovi_tensor_new (OVI_DTYPE_F32, t->ndim, t->shape, &error);
  if (r == NULL) {
    ovi_backend_set_error (be, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY, "%s: %s", op,
                           error->message);
    g_clear_error (&error);
    return NULL;
  }
  /* the threaded converting copy (scale applied) */
  cpu_copy (be, r, t);
  return r;
}

static inline const float *
pdata (const OviTensor *t)
{
  return t ? (const float *) ovi_tensor_data (t) : NULL;
}

/* ---- the row framework ---- */

typedef struct _RowJob RowJob;
typedef void (*RowKernel) (const RowJob *j, float *out, const float *a,
                           const float *b, const float *c, int64_t row);

struct _RowJob {
  OviBackend *be;
  const char *op;
  RowKernel kernel;
  float *out;
  int64_t out_row; /* floats per output row (n, or 1 for reductions) */
  int64_t n;       /* input row length */
  int n_src;
  Src src[3];
  /* parameters */
  float f0, f1, f2;
  int i0;
  int64_t l0, l1;
  const float *p0, *p1, *p2;
};

static void
row_range (gpointer data, int64_t start, int64_t end, int tid)
{
  const RowJob *j = data;
  float *tmp[3] = { NULL, NULL, NULL };
  const float *in[3] = { NULL, NULL, NULL };

  for (int s = 0; s < j->n_src; s++) {
    tmp[s]
        = ovi_cpu_scratch (j->be, tid, 1 + s, sizeof (float) * MAX (j->n, 1));
    if (tmp[s] == NULL) {
      ovi_backend_set_error (j->be, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                             "%s: out of memory for scratch", j->op);
      return;
    }
  }
  for (int64_t r = start; r < end; r++) {
    for (int s = 0; s < j->n_src; s++)
      in[s] = src_row (&j->src[s], r, tmp[s]);
    j->kernel (j, j->out + r * j->out_row, in[0], in[1], in[2], r);
  }
}

/* run j->kernel over every row of `shape` (the rows of the first source) */
static void
run_rows (RowJob *j, OviTensor *out, int ndim, const int64_t *shape,
          const OviTensor *a, const OviTensor *b, const OviTensor *c)
{
  const OviTensor *srcs[3] = { a, b, c };
  int64_t rows = 1;

  j->out = ovi_tensor_data (out);
  j->n = ndim ? shape[ndim - 1] : 1;
  if (j->out_row == 0)
    j->out_row = j->n;
  for (int d = 0; d < ndim - 1; d++)
    rows *= shape[d];
  j->n_src = 0;
  for (int s = 0; s < 3 && srcs[s]; s++) {
    src_init (&j->src[s], srcs[s], ndim, shape);
    j->n_src++;
  }
  if (rows == 0)
    return;
  ovi_cpu_pool_parallel_for (ovi_cpu_priv (j->be)->pool, rows,
                             MAX (1, 16384 / MAX (j->n, 1)), row_range, j);
}

/* ---- memory ---- */

static OviStorage *
cpu_new_storage (OviBackend *be, gsize size, GError **error)
{
  return ovi_storage_new_host (size, error);
}

static gboolean
need_host (OviBackend *be, const char *op, const OviTensor *t)
{
  if (t && !ovi_tensor_is_host (t)) {
    ovi_backend_set_error (be, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                           "%s: the cpu backend cannot read device memory", op);
    return FALSE;
  }
  return TRUE;
}

typedef struct {
  OviBackend *be;
  OviTensor *dst;
  const OviTensor *src;
  Src s;
  Src d; /* the destination's own strides (it may be a view) */
  gboolean raw;
  int64_t rows_per_i0; /* rows per dim-0 index (0: ndim <= 1) */
} CopyJob;

static void
copy_range (gpointer data, int64_t start, int64_t end, int tid)
{
  CopyJob *j = data;
  int64_t n = j->s.n;
  gsize de = ovi_dtype_size (j->dst->dtype), se = j->s.esize;
  char *dst = ovi_tensor_data (j->dst);
  float *tmp = NULL;
  gboolean per_elem_scale = j->rows_per_i0 == 0;
  int64_t dinc = j->d.inc;
  char *packed = NULL;

  if (!j->raw) {
    tmp = ovi_cpu_scratch (j->be, tid, 1, sizeof (float) * MAX (n, 1));
    if (dinc != 1 && n > 1)
      packed = ovi_cpu_scratch (j->be, tid, 2, 8 * MAX (n, 1));
    if (tmp == NULL || (dinc != 1 && n > 1 && packed == NULL)) {
      ovi_backend_set_error (j->be, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                             "ovi_op_copy: out of memory for scratch");
      return;
    }
  }
  for (int64_t r = start; r < end; r++) {
    const char *sp = j->s.base + src_offset (&j->s, r) * (int64_t) se;
    char *dp = dst + src_offset (&j->d, r) * (int64_t) de;

    if (j->raw) {
      if (j->s.inc == 1 && (dinc == 1 || n == 1))
        memcpy (dp, sp, n * de);
      else
        for (int64_t i = 0; i < n; i++)
          memcpy (dp + i * dinc * (int64_t) de,
                  sp + i * j->s.inc * (int64_t) se, de);
      continue;
    }
    ovi_cpu_load_f32 (tmp, sp, j->s.dtype, n, j->s.inc);
    if (j->src->scale || j->dst->scale) {
      for (int64_t i = 0; i < n; i++) {
        int64_t i0 = per_elem_scale ? i : r / j->rows_per_i0;
        tmp[i] = tmp[i] * scale_at (j->src, i0) / scale_at (j->dst, i0);
      }
    }
    if (dinc == 1 || n == 1) {
      store_from_f32 (dp, j->dst->dtype, tmp, n);
    } else {
      store_from_f32 (packed, j->dst->dtype, tmp, n);
      for (int64_t i = 0; i < n; i++)
        memcpy (dp + i * dinc * (int64_t) de, packed + i * de, de);
    }
  }
}

static void
cpu_copy (OviBackend *be, OviTensor *dst, const OviTensor *src)
{
  CopyJob j = { 0 };
  int64_t rows = 1, n;

  if (!need_host (be, "ovi_op_copy", dst) || !need_host (be, "ovi_op_copy", src)
      || !need_host (be, "ovi_op_copy", src->scale)
      || !need_host (be, "ovi_op_copy", dst->scale))
    return;
  j.be = be;
  j.dst = dst;
  j.src = src;
  j.raw = src->dtype == dst->dtype
          && ((src->scale == NULL) == (dst->scale == NULL));
  src_init (&j.s, src, dst->ndim, dst->shape);
  src_init (&j.d, dst, dst->ndim, dst->shape);
  n = j.s.n;
  for (int d = 0; d < dst->ndim - 1; d++)
    rows *= dst->shape[d];
  if (dst->ndim >= 2)
    j.rows_per_i0 = dst->shape[0] ? rows / dst->shape[0] : 1;
  if (rows == 0 || n == 0)
    return;
  ovi_cpu_pool_parallel_for (ovi_cpu_priv (be)->pool, rows, MAX (1, 65536 / n),
                             copy_range, &j);
}

typedef struct {
  char *dst;
  gsize esize;
  uint8_t pattern[8];
} FillJob;

static void
fill_range (gpointer data, int64_t start, int64_t end, int tid)
{
  FillJob *j = data;

  for (int64_t i = start; i < end; i++)
    memcpy (j->dst + i * j->esize, j->pattern, j->esize);
}

static void
cpu_fill (OviBackend *be, OviTensor *dst, float value)
{
  FillJob j;
  int64_t n = ovi_tensor_numel (dst);

  if (!need_host (be, "ovi_op_fill", dst))
    return;
  j.dst = ovi_tensor_data (dst);
  j.esize = ovi_dtype_size (dst->dtype);
  memset (j.pattern, 0, sizeof (j.pattern));
  if (dst->scale) {
    if (ovi_tensor_numel (dst->scale) != 1 || dst->ndim <= 1) {
      /* per-channel scales: one value per dim-0 slice */
      int64_t inner = dst->ndim ? n / MAX (dst->shape[0], 1) : 1;
      for (int64_t i0 = 0; i0 < (dst->ndim ? dst->shape[0] : 1); i0++) {
        float v = value / scale_at (dst, i0);
        store_from_f32 (j.pattern, dst->dtype, &v, 1);
        for (int64_t i = 0; i < inner; i++)
          memcpy (j.dst + (i0 * inner + i) * j.esize, j.pattern, j.esize);
      }
      return;
    }
    value /= scale_at (dst, 0);
  }
  store_from_f32 (j.pattern, dst->dtype, &value, 1);
  ovi_cpu_pool_parallel_for (ovi_cpu_priv (be)->pool, n, 1 << 16, fill_range,
                             &j);
}

static gboolean
cpu_sync (OviBackend *be, GError **error)
{
  return TRUE;
}

static void
cpu_destroy (OviBackend *be)
{
  OviCpuPriv *priv = ovi_cpu_priv (be);

  ovi_cpu_pool_free (priv->pool);
  for (int i = 0; i < (priv->n_threads + 1) * OVI_CPU_N_SCRATCH; i++)
    free (priv->scratch[i].data);
  g_free (priv->scratch);
  g_free (priv);
  g_free (be);
}

/* ---- matmul ---- */

static void
cpu_matmul (OviBackend *be, OviTensor *out, const OviTensor *x,
            const OviTensor *w, const OviTensor *bias, OviActivation act)
{
  if (!need_host (be, "ovi_op_matmul", x) || !need_host (be, "ovi_op_matmul", w)
      || !need_host (be, "ovi_op_matmul", bias))
    return;
  ovi_cpu_matmul (be, out, x, w, bias, act);
}

/* ---- softmax and norms ---- */

static void
k_softmax (const RowJob *j, float *out, const float *x, const float *u1,
           const float *u2, int64_t row)
{
  float m = -INFINITY;
  double sum = 0.0;
  float inv;

  for (int64_t i = 0; i < j->n; i++)
    m = fmaxf (m, x[i]);
  if (m == -INFINITY) {
    /* every entry -inf: torch gives NaN; a fully masked row gives 0 here */
    for (int64_t i = 0; i < j->n; i++)
      out[i] = 0.0f;
    return;
  }
  for (int64_t i = 0; i < j->n; i++) {
    float e = expf (x[i] - m);
    out[i] = e;
    sum += e;
  }
  inv = (float) (1.0 / sum);
  for (int64_t i = 0; i < j->n; i++)
    out[i] *= inv;
}

static void
cpu_softmax (OviBackend *be, OviTensor *out, const OviTensor *x)
{
  RowJob j = { .be = be, .op = "ovi_op_softmax", .kernel = k_softmax };

  run_rows (&j, out, x->ndim, x->shape, x, NULL, NULL);
}

static void
k_rms_norm (const RowJob *j, float *out, const float *x, const float *u1,
            const float *u2, int64_t row)
{
  double ss = 0.0;
  float r;

  for (int64_t i = 0; i < j->n; i++)
    ss += (double) x[i] * x[i];
  r = (float) (1.0 / sqrt (ss / j->n + j->f0));
  if (j->p0)
    for (int64_t i = 0; i < j->n; i++)
      out[i] = x[i] * r * j->p0[i];
  else
    for (int64_t i = 0; i < j->n; i++)
      out[i] = x[i] * r;
}

static void
cpu_rms_norm (OviBackend *be, OviTensor *out, const OviTensor *x,
              const OviTensor *weight, float eps)
{
  RowJob j = { .be = be, .op = "ovi_op_rms_norm", .kernel = k_rms_norm };
  g_autoptr (OviTensor) w = ovi_cpu_f32_contig (be, weight, j.op);

  if (weight && !w)
    return;
  j.f0 = eps;
  j.p0 = pdata (w);
  run_rows (&j, out, x->ndim, x->shape, x, NULL, NULL);
}

/* mean and 1/sqrt(var + eps) of a row, in double */
static void
row_stats (const float *x, int64_t n, float eps, float *mean, float *rstd)
{
  double s = 0.0, v = 0.0, m;

  for (int64_t i = 0; i < n; i++)
    s += x[i];
  m = n ? s / n : 0.0;
  for (int64_t i = 0; i < n; i++) {
    double d = x[i] - m;
    v += d * d;
  }
  *mean = (float) m;
  *rstd = (float) (1.0 / sqrt ((n ? v / n : 0.0) + eps));
}

static void
k_layer_norm (const RowJob *j, float *out, const float *x, const float *u1,
              const float *u2, int64_t row)
{
  float m, r;

  row_stats (x, j->n, j->f0, &m, &r);
  for (int64_t i = 0; i < j->n; i++) {
    float v = (x[i] - m) * r;
    if (j->p0)
      v *= j->p0[i];
    if (j->p1)
      v += j->p1[i];
    out[i] = v;
  }
}

static void
cpu_layer_norm (OviBackend *be, OviTensor *out, const OviTensor *x,
                const OviTensor *weight, const OviTensor *bias, float eps)
{
  RowJob j = { .be = be, .op = "ovi_op_layer_norm", .kernel = k_layer_norm };
  g_autoptr (OviTensor) w = ovi_cpu_f32_contig (be, weight, j.op);
  g_autoptr (OviTensor) b = ovi_cpu_f32_contig (be, bias, j.op);

  if ((weight && !w) || (bias && !b))
    return;
  j.f0 = eps;
  j.p0 = pdata (w);
  j.p1 = pdata (b);
  run_rows (&j, out, x->ndim, x->shape, x, NULL, NULL);
}

static void
k_modulate (const RowJob *j, float *out, const float *x, const float *shift,
            const float *scale, int64_t row)
{
  float m, r;

  row_stats (x, j->n, j->f0, &m, &r);
  for (int64_t i = 0; i < j->n; i++)
    out[i] = (x[i] - m) * r * (1.0f + scale[i]) + shift[i];
}

static void
cpu_modulate (OviBackend *be, OviTensor *out, const OviTensor *x,
              const OviTensor *shift, const OviTensor *scale, float eps)
{
  RowJob j = { .be = be, .op = "ovi_op_modulate", .kernel = k_modulate };

  j.f0 = eps;
  run_rows (&j, out, x->ndim, x->shape, x, shift, scale);
}

static void
k_gate_add (const RowJob *j, float *out, const float *x, const float *y,
            const float *gate, int64_t row)
{
  for (int64_t i = 0; i < j->n; i++)
    out[i] = x[i] + y[i] * gate[i];
}

static void
cpu_gate_add (OviBackend *be, OviTensor *x, const OviTensor *y,
              const OviTensor *gate)
{
  RowJob j = { .be = be, .op = "ovi_op_gate_add", .kernel = k_gate_add };

  run_rows (&j, x, x->ndim, x->shape, x, y, gate);
}

/* channel-first norm: x[C, N], statistics over C per position */
typedef struct {
  const float *x;
  float *out;
  const float *gamma;
  int64_t C, N;
  OviChannelNorm kind;
} ChanJob;

static void
chan_range (gpointer data, int64_t start, int64_t end, int tid)
{
  ChanJob *j = data;
  double ss[256];
  float f[256];

  for (int64_t n0 = start; n0 < end; n0 += 256) {
    int64_t nb = MIN (256, end - n0);

    for (int64_t i = 0; i < nb; i++)
      ss[i] = 0.0;
    for (int64_t c = 0; c < j->C; c++) {
      const float *xr = j->x + c * j->N + n0;
      for (int64_t i = 0; i < nb; i++)
        ss[i] += (double) xr[i] * xr[i];
    }
    for (int64_t i = 0; i < nb; i++) {
      double norm = sqrt (ss[i]);
      if (j->kind == OVI_CHANNEL_NORM_L2_SQRT_C)
        f[i] = (float) (sqrt ((double) j->C) / fmax (norm, 1e-12));
      else
        f[i] = (float) (1.0 / (1e-4 + norm / sqrt ((double) j->C)));
    }
    for (int64_t c = 0; c < j->C; c++) {
      const float *xr = j->x + c * j->N + n0;
      float *o = j->out + c * j->N + n0;
      float g = j->gamma ? j->gamma[c] : 1.0f;
      for (int64_t i = 0; i < nb; i++)
        o[i] = xr[i] * f[i] * g;
    }
  }
}

static void
cpu_channel_norm (OviBackend *be, OviTensor *out, const OviTensor *x,
                  const OviTensor *gamma, OviChannelNorm kind)
{
  const char *op = "ovi_op_channel_norm";
  g_autoptr (OviTensor) xc = ovi_cpu_f32_contig (be, x, op);
  g_autoptr (OviTensor) g = NULL;
  ChanJob j;

  if (xc == NULL)
    return;
  if (kind == OVI_CHANNEL_NORM_L2_SQRT_C) {
    g = ovi_cpu_f32_contig (be, gamma, op);
    if (g == NULL)
      return;
  }
  j.x = ovi_tensor_data (xc);
  j.out = ovi_tensor_data (out);
  j.gamma = pdata (g);
  j.C = x->shape[0];
  j.N = j.C ? ovi_tensor_numel (x) / j.C : 0;
  j.kind = kind;
  ovi_cpu_pool_parallel_for (ovi_cpu_priv (be)->pool, j.N, 256, chan_range, &j);
}

/* ---- rope ---- */

static void
k_rope (const RowJob *j, float *out, const float *x, const float *u1,
        const float *u2, int64_t row)
{
  int64_t l = (row / j->l0) % j->l1, P = j->i0;
  const float *c = j->p0 + l * P, *s = j->p1 + l * P;

  for (int64_t p = 0; p < P; p++) {
    double x0 = x[2 * p], x1 = x[2 * p + 1];
    out[2 * p] = (float) (x0 * c[p] - x1 * s[p]);
    out[2 * p + 1] = (float) (x0 * s[p] + x1 * c[p]);
  }
  for (int64_t i = 2 * P; i < j->n; i++)
    out[i] = x[i];
}

static void
cpu_rope (OviBackend *be, OviTensor *out, const OviTensor *x,
          const OviTensor *cos, const OviTensor *sin)
{
  RowJob j = { .be = be, .op = "ovi_op_rope", .kernel = k_rope };
  g_autoptr (OviTensor) c = ovi_cpu_f32_contig (be, cos, j.op);
  g_autoptr (OviTensor) s = ovi_cpu_f32_contig (be, sin, j.op);

  if (c == NULL || s == NULL)
    return;
  j.l0 = x->shape[x->ndim - 2]; /* H */
  j.l1 = x->shape[x->ndim - 3]; /* L */
  j.i0 = (int) cos->shape[1];
  j.p0 = pdata (c);
  j.p1 = pdata (s);
  run_rows (&j, out, x->ndim, x->shape, x, NULL, NULL);
}

/* ---- elementwise ---- */

static void
k_unary (const RowJob *j, float *out, const float *x, const float *u1,
         const float *u2, int64_t row)
{
  OviActivation act = (OviActivation) j->i0;
  float alpha = j->f0;

  if (act == OVI_ACT_NONE) {
    for (int64_t i = 0; i < j->n; i++)
      out[i] = alpha * x[i];
  } else {
    for (int64_t i = 0; i < j->n; i++)
      out[i] = alpha * ovi_cpu_activate (x[i], act);
  }
}

static void
cpu_unary (OviBackend *be, OviTensor *out, const OviTensor *x,
           OviActivation act, float alpha)
{
  RowJob j = { .be = be, .op = "ovi_op_unary", .kernel = k_unary };

  j.i0 = act;
  j.f0 = alpha;
  run_rows (&j, out, x->ndim, x->shape, x, NULL, NULL);
}

static void
k_binary (const RowJob *j, float *out, const float *a, const float *b,
          const float *u2, int64_t row)
{
  switch ((OviBinaryOp) j->i0) {
    case OVI_BINARY_ADD:
      for (int64_t i = 0; i < j->n; i++)
        out[i] = a[i] + b[i];
      break;
    case OVI_BINARY_SUB:
      for (int64_t i = 0; i < j->n; i++)
        out[i] = a[i] - b[i];
      break;
    case OVI_BINARY_MUL:
      for (int64_t i = 0; i < j->n; i++)
        out[i] = a[i] * b[i];
      break;
    case OVI_BINARY_DIV:
      for (int64_t i = 0; i < j->n; i++)
        out[i] = a[i] / b[i];
      break;
  }
}

static void
cpu_binary (OviBackend *be, OviTensor *out, const OviTensor *a,
            const OviTensor *b, OviBinaryOp op)
{
  RowJob j = { .be = be, .op = "ovi_op_binary", .kernel = k_binary };

  j.i0 = op;
  run_rows (&j, out, a->ndim, a->shape, a, b, NULL);
}

static void
k_axpby (const RowJob *j, float *out, const float *a, const float *b,
         const float *u2, int64_t row)
{
  float alpha = j->f0, beta = j->f1;

  if (b)
    for (int64_t i = 0; i < j->n; i++)
      out[i] = alpha * a[i] + beta * b[i];
  else
    for (int64_t i = 0; i < j->n; i++)
      out[i] = alpha * a[i] + beta;
}

static void
cpu_axpby (OviBackend *be, OviTensor *out, float alpha, const OviTensor *a,
           float beta, const OviTensor *b)
{
  RowJob j = { .be = be, .op = "ovi_op_axpby", .kernel = k_axpby };

  j.f0 = alpha;
  j.f1 = beta;
  run_rows (&j, out, a->ndim, a->shape, a, b, NULL);
}

static void
k_clamp (const RowJob *j, float *out, const float *x, const float *u1,
         const float *u2, int64_t row)
{
  for (int64_t i = 0; i < j->n; i++)
    out[i] = fminf (fmaxf (x[i], j->f0), j->f1);
}

static void
cpu_clamp (OviBackend *be, OviTensor *out, const OviTensor *x, float lo,
           float hi)
{
  RowJob j = { .be = be, .op = "ovi_op_clamp", .kernel = k_clamp };

  j.f0 = lo;
  j.f1 = hi;
  run_rows (&j, out, x->ndim, x->shape, x, NULL, NULL);
}

static void
k_snake (const RowJob *j, float *out, const float *x, const float *u1,
         const float *u2, int64_t row)
{
  int64_t c = row % j->l0;
  float a = j->p0[c], inv_b = j->p1[c];

  for (int64_t i = 0; i < j->n; i++) {
    float s = sinf (x[i] * a);
    out[i] = x[i] + inv_b * (s * s);
  }
}

static void
cpu_snake_beta (OviBackend *be, OviTensor *out, const OviTensor *x,
                const OviTensor *alpha, const OviTensor *beta,
                gboolean logscale)
{
  RowJob j = { .be = be, .op = "ovi_op_snake_beta", .kernel = k_snake };
  g_autoptr (OviTensor) a = ovi_cpu_f32_contig (be, alpha, j.op);
  g_autoptr (OviTensor) b = ovi_cpu_f32_contig (be, beta, j.op);
  g_autofree float *pa = NULL, *pb = NULL;
  int64_t C = x->shape[x->ndim - 2];

  if (a == NULL || b == NULL)
    return;
  pa = g_new (float, MAX (C, 1));
  pb = g_new (float, MAX (C, 1));
  for (int64_t c = 0; c < C; c++) {
    float av = pdata (a)[c], bv = pdata (b)[c];
    if (logscale) {
      av = expf (av);
      bv = expf (bv);
    }
    pa[c] = av;
    pb[c] = 1.0f / (bv + 1e-9f);
  }
  j.l0 = C;
  j.p0 = pa;
  j.p1 = pb;
  run_rows (&j, out, x->ndim, x->shape, x, NULL, NULL);
}

static void
k_mean (const RowJob *j, float *out, const float *x, const float *u1,
        const float *u2, int64_t row)
{
  double s = 0.0;

  for (int64_t i = 0; i < j->n; i++)
    s += x[i];
  out[0] = (float) (j->n ? s / j->n : NAN);
}

static void
cpu_mean_last (OviBackend *be, OviTensor *out, const OviTensor *x)
{
  RowJob j = { .be = be, .op = "ovi_op_mean_last", .kernel = k_mean };

  j.out_row = 1;
  run_rows (&j, out, x->ndim, x->shape, x, NULL, NULL);
}

/* ---- embedding ---- */

typedef struct {
  const OviTensor *table;
  const int64_t *ids;
  float *out;
  int64_t D;
} EmbJob;

static void
emb_range (gpointer data, int64_t start, int64_t end, int tid)
{
  EmbJob *j = data;
  const OviTensor *t = j->table;
  gsize es = ovi_dtype_size (t->dtype);

  for (int64_t n = start; n < end; n++) {
    float *o = j->out + n * j->D;
    int64_t id = j->ids[n];
    ovi_cpu_load_f32 (o,
                      (const char *) ovi_tensor_data (t)
                          + id * t->stride[0] * (int64_t) es,
                      t->dtype, j->D, t->stride[1]);
    if (t->scale) {
      float s = scale_at (t, id);
      for (int64_t i = 0; i < j->D; i++)
        o[i] *= s;
    }
  }
}

static void
cpu_embedding (OviBackend *be, OviTensor *out, const OviTensor *table,
               const int64_t *ids, int64_t n_ids)
{
  EmbJob j = { table, ids, ovi_tensor_data (out), table->shape[1] };

  if (!need_host (be, "ovi_op_embedding", table))
    return;
  ovi_cpu_pool_parallel_for (ovi_cpu_priv (be)->pool, n_ids,
                             MAX (1, 16384 / MAX (j.D, 1)), emb_range, &j);
}

/* ---- the table ---- */

static OviBackendOps cpu_ops = {
  .name = "cpu",
  .new_storage = cpu_new_storage,
  .copy = cpu_copy,
  .fill = cpu_fill,
  .sync = cpu_sync,
  .destroy = cpu_destroy,
  .matmul = cpu_matmul,
  .attention = ovi_cpu_attention,
  .softmax = cpu_softmax,
  .rms_norm = cpu_rms_norm,
  .layer_norm = cpu_layer_norm,
  .channel_norm = cpu_channel_norm,
  .modulate = cpu_modulate,
  .gate_add = cpu_gate_add,
  .rope = cpu_rope,
  .unary = cpu_unary,
  .binary = cpu_binary,
  .axpby = cpu_axpby,
  .clamp = cpu_clamp,
  .snake_beta = cpu_snake_beta,
  .mean_last = cpu_mean_last,
  .embedding = cpu_embedding,
};

OviBackend *ovi_backend_cpu_create (int n_threads);

OviBackend *
ovi_backend_cpu_create (int n_threads)
{
  static gsize ops_init = 0;
  OviBackend *be = g_new0 (OviBackend, 1);
  OviCpuPriv *priv = g_new0 (OviCpuPriv, 1);

  if (g_once_init_enter (&ops_init)) {
    ovi_cpu_register_conv_ops (&cpu_ops);
    ovi_cpu_register_stream_ops (&cpu_ops);
    g_once_init_leave (&ops_init, 1);
  }
  if (n_threads <= 0) {
    const char *env = g_getenv ("OVI_NUM_THREADS");
    n_threads = env ? atoi (env) : 0;
  }
  priv->pool = ovi_cpu_pool_new (n_threads);
  priv->n_threads = ovi_cpu_pool_n_threads (priv->pool);
  priv->scratch
      = g_new0 (OviCpuScratch, (priv->n_threads + 1) * OVI_CPU_N_SCRATCH);
  be->ops = &cpu_ops;
  be->device = (OviDevice){ OVI_DEVICE_CPU, 0 };
  be->act_dtype = OVI_DTYPE_F32;
  be->n_threads = priv->n_threads;
  be->priv = priv;
  return be;
}
