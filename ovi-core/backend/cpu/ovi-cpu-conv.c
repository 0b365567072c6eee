/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: CPU convolutions, padding and nearest upsampling.
 *
 * conv1d, conv3d and (groups == 1) conv_transpose1d are implicit GEMMs:
 * out[Cout, positions] = W[Cout, Cin*taps] . B[positions, Cin*taps]^T with
 * the weight converted to f32 once per call (shared scratch) and B, the
 * receptive fields, gathered straight into the micro-kernel's packed panel
 * layout (16 positions per panel; a 16-float copy when the positions are
 * consecutive input samples). conv_transpose1d runs one such convolution per
 * output phase (out[o] with (o + padding) % stride == phase). Grouped
 * transposed convs (BigVGAN's depthwise anti-alias filters) and depthwise
 * conv1d use direct loops. Every output is an fp32 sum in a fixed order,
 * whatever the threads.
 */
#include "ovi-cpu-private.h"

#include <math.h>
#include <string.h>

#define NR OVI_CPU_NR

void ovi_cpu_register_conv_ops (OviBackendOps *ops);

static gboolean
oom (OviBackend *be, const char *op)
{
  ovi_backend_set_error (be, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                         "%s: out of memory for scratch", op);
  return FALSE;
}

/* the weight with contiguous rows, or a f32 copy */
static OviTensor *
weight_rows (OviBackend *be, const OviTensor *w, const char *op)
{
  if (ovi_tensor_is_contiguous (w))
    return ovi_tensor_ref ((OviTensor *) w);
  return ovi_cpu_f32_contig (be, w, op);
}

/* A convolution's operands as its kernels read them: x and the bias as
 * contiguous f32, the weight with contiguous rows and its per-row
 * dequantisation scales (NULL when it has none). */
typedef struct {
  OviTensor *x, *w, *bias;
  float *scales;
} ConvOperands;

static void
conv_operands_clear (ConvOperands *c)
{
  g_clear_pointer (&c->x, ovi_tensor_unref);
  g_clear_pointer (&c->w, ovi_tensor_unref);
  g_clear_pointer (&c->bias, ovi_tensor_unref);
  g_clear_pointer (&c->scales, g_free);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (ConvOperands, conv_operands_clear)

/* FALSE with the backend error set when one cannot be made */
static gboolean
conv_operands (OviBackend *be, const OviTensor *x, const OviTensor *w,
               const OviTensor *bias, const char *op, ConvOperands *c)
{
  if ((c->x = ovi_cpu_f32_contig (be, x, op)) == NULL
      || (c->w = weight_rows (be, w, op)) == NULL)
    return FALSE;
  if (bias && (c->bias = ovi_cpu_f32_contig (be, bias, op)) == NULL)
    return FALSE;
  return ovi_cpu_weight_scales (be, c->w, op, &c->scales);
}

static const float *
conv_bias_data (const ConvOperands *c)
{
  return c->bias ? ovi_tensor_data (c->bias) : NULL;
}

/* w (contiguous, [rows, ...]) as f32 rows of `cols` with the per-row
 * dequantisation scale applied, in the shared scratch */
static float *
weights_f32 (OviBackend *be, const OviTensor *w, int64_t rows, int64_t cols,
             const float *scales, const char *op)
{
  float *f = ovi_cpu_shared_scratch (be, sizeof (float) * MAX (rows * cols, 1));
  gsize es = ovi_dtype_size (w->dtype);

  if (f == NULL) {
    oom (be, op);
    return NULL;
  }
  for (int64_t r = 0; r < rows; r++) {
    float *d = f + r * cols;
    ovi_cpu_load_f32 (d, (const char *) ovi_tensor_data (w) + r * cols * es,
                      w->dtype, cols, 1);
    if (scales)
      for (int64_t c = 0; c < cols; c++)
        d[c] *= scales[r];
  }
  return f;
}

/* positions per task: a few panels of 128, fewer when there is little */
static int64_t
task_positions (int64_t n, int n_threads, int64_t other_tasks)
{
  int64_t want = (n * other_tasks + 4 * n_threads - 1) / (4 * n_threads);
  int64_t c = (MAX (want, 1) + OVI_CPU_NB - 1) / OVI_CPU_NB * OVI_CPU_NB;

  return CLAMP (c, OVI_CPU_NB, 8 * OVI_CPU_NB);
}

/* One k row of a packed panel: xr[base + l * st] of the row xr (T long)
 * for the `lanes` positions l, 0 outside the row and past them; a 16-float
 * copy when they are consecutive samples inside it. */
static inline void
gather_lanes (float *o, const float *xr, int64_t T, int64_t base, int64_t st,
              int64_t lanes)
{
  if (st == 1 && lanes == NR && base >= 0 && base + NR <= T) {
    memcpy (o, xr + base, sizeof (float) * NR);
    return;
  }
  for (int64_t l = 0; l < NR; l++) {
    int64_t idx = base + l * st;
    o[l] = (l < lanes && idx >= 0 && idx < T) ? xr[idx] : 0.0f;
  }
}

/* ---------------- conv1d ---------------- */

typedef struct {
  OviBackend *be;
  const float *x;
  const OviTensor *w;
  const float *w_scale, *bias;
  const float *wf; /* f32 weights [Cout, Cin_g * K] */
  float *out;
  int64_t Cin, T, Cout, K, To, groups, Cin_g, Cout_g, chunk, n_chunks;
  int stride, pad_left, dilation;
} Conv1dJob;

typedef struct {
  const Conv1dJob *j;
  const float *x; /* this batch and group */
  int64_t t_base;
} Conv1dPack;

static void
pack_conv1d (gpointer data, int64_t n0, int64_t nb, int64_t k0, int64_t kb,
             float *dst)
{
  const Conv1dPack *p = data;
  const Conv1dJob *j = p->j;
  int64_t T = j->T, K = j->K, st = j->stride;

  for (int64_t jp = 0; jp < nb; jp += NR) {
    float *d = dst + jp * kb;
    int64_t lanes = MIN (NR, nb - jp);
    int64_t t0 = p->t_base + n0 + jp;
    int64_t ci = k0 / K, kk = k0 % K;

    for (int64_t k = 0; k < kb; k++) {
      const float *xr = p->x + ci * T;
      int64_t base = t0 * st - j->pad_left + kk * j->dilation;

      gather_lanes (d + k * NR, xr, T, base, st, lanes);
      if (++kk == K) {
        kk = 0;
        ci++;
      }
    }
  }
}

static void
conv1d_range (gpointer data, int64_t start, int64_t end, int tid)
{
  Conv1dJob *j = data;
  int64_t CK = j->Cin_g * j->K;
  float *pack = ovi_cpu_pack_scratch (j->be, tid, "ovi_op_conv1d");

  if (pack == NULL)
    return;
  for (int64_t task = start; task < end; task++) {
    int64_t c = task % j->n_chunks, bg = task / j->n_chunks;
    int64_t g = bg % j->groups, b = bg / j->groups;
    int64_t t0 = c * j->chunk, tc = MIN (j->chunk, j->To - t0);
    Conv1dPack p = { j, j->x + (b * j->Cin + g * j->Cin_g) * j->T, t0 };
    float *out = j->out + (b * j->Cout + g * j->Cout_g) * j->To + t0;

    ovi_cpu_gemm_implicit (
        j->Cout_g, tc, CK, j->wf + g * j->Cout_g * CK, CK, pack_conv1d, &p,
        j->bias ? j->bias + g * j->Cout_g : NULL, out, j->To, 1, pack);
  }
}

static void
conv1d_dw_range (gpointer data, int64_t start, int64_t end, int tid)
{
  Conv1dJob *j = data;
  float *wrow = ovi_cpu_scratch (j->be, tid, 1, sizeof (float) * j->K);
  gsize es = ovi_dtype_size (j->w->dtype);

  if (wrow == NULL) {
    oom (j->be, "ovi_op_conv1d");
    return;
  }
  for (int64_t r = start; r < end; r++) {
    int64_t co = r % j->Cout, b = r / j->Cout;
    int64_t g = co / j->Cout_g;
    const float *x = j->x + (b * j->Cin + g) * j->T;
    float *out = j->out + r * j->To;
    float bv = j->bias ? j->bias[co] : 0.0f;

    ovi_cpu_load_f32 (wrow,
                      (const char *) ovi_tensor_data (j->w) + co * j->K * es,
                      j->w->dtype, j->K, 1);
    if (j->w_scale)
      for (int64_t k = 0; k < j->K; k++)
        wrow[k] *= j->w_scale[co];
    for (int64_t o = 0; o < j->To; o++) {
      int64_t base = o * j->stride - j->pad_left;
      float acc = 0.0f;
      if (base >= 0 && base + (j->K - 1) * j->dilation < j->T) {
        for (int64_t k = 0; k < j->K; k++)
          acc += wrow[k] * x[base + k * j->dilation];
      } else {
        for (int64_t k = 0; k < j->K; k++) {
          int64_t t = base + k * j->dilation;
          if (t >= 0 && t < j->T)
            acc += wrow[k] * x[t];
        }
      }
      out[o] = acc + bv;
    }
  }
}

static void
cpu_conv1d (OviBackend *be, OviTensor *out, const OviTensor *x,
            const OviTensor *w, const OviTensor *bias, int stride, int pad_left,
            int pad_right, int dilation, int groups)
{
  const char *op = "ovi_op_conv1d";
  g_auto (ConvOperands) in = { 0 };
  Conv1dJob j = { 0 };
  int64_t B = x->ndim == 3 ? x->shape[0] : 1;
  int n_threads = ovi_cpu_priv (be)->n_threads;

  if (!conv_operands (be, x, w, bias, op, &in))
    return;
  j.be = be;
  j.x = ovi_tensor_data (in.x);
  j.w = in.w;
  j.w_scale = in.scales;
  j.bias = conv_bias_data (&in);
  j.out = ovi_tensor_data (out);
  j.Cin = x->shape[x->ndim - 2];
  j.T = x->shape[x->ndim - 1];
  j.Cout = w->shape[0];
  j.K = w->shape[2];
  j.To = out->shape[out->ndim - 1];
  j.groups = groups;
  j.Cin_g = j.Cin / groups;
  j.Cout_g = j.Cout / groups;
  j.stride = stride;
  j.pad_left = pad_left;
  j.dilation = dilation;
  if (B * j.Cout * j.To == 0)
    return;
  if (j.Cin_g == 1 && j.Cout_g <= 4) {
    ovi_cpu_pool_parallel_for (ovi_cpu_priv (be)->pool, B * j.Cout,
                               MAX (1, 4096 / (j.To * j.K)), conv1d_dw_range,
                               &j);
    return;
  }
  j.wf = weights_f32 (be, in.w, j.Cout, j.Cin_g * j.K, in.scales, op);
  if (j.wf == NULL)
    return;
  j.chunk = task_positions (j.To, n_threads, B * groups);
  j.n_chunks = (j.To + j.chunk - 1) / j.chunk;
  ovi_cpu_pool_parallel_for (ovi_cpu_priv (be)->pool, B * groups * j.n_chunks,
                             1, conv1d_range, &j);
}

/* ---------------- conv_transpose1d ---------------- */

typedef struct {
  OviBackend *be;
  const float *x;
  const OviTensor *w;
  const float *w_scale, *bias;
  float *out;
  int64_t Cin, T, Cout, K, To, groups, Cin_g, Cout_g;
  int stride, padding;
  /* groups == 1: per phase, weights [Cout][Cin * Kp] f32 */
  float *wp[64];
  int64_t Kp[64];
  int64_t q_lo[64], nq[64];
  int64_t chunk, n_chunks;
} ConvTJob;

static void
convt_direct_range (gpointer data, int64_t start, int64_t end, int tid)
{
  ConvTJob *j = data;
  float *wbuf
      = ovi_cpu_scratch (j->be, tid, 1, sizeof (float) * j->Cin_g * j->K);
  gsize es = ovi_dtype_size (j->w->dtype);

  if (wbuf == NULL) {
    oom (j->be, "ovi_op_conv_transpose1d");
    return;
  }
  for (int64_t r = start; r < end; r++) {
    int64_t co = r % j->Cout, b = r / j->Cout;
    int64_t g = co / j->Cout_g, col = co % j->Cout_g;
    float *out = j->out + r * j->To;
    float bv = j->bias ? j->bias[co] : 0.0f;

    for (int64_t ci = 0; ci < j->Cin_g; ci++) {
      int64_t cin = g * j->Cin_g + ci;
      ovi_cpu_load_f32 (wbuf + ci * j->K,
                        (const char *) ovi_tensor_data (j->w)
                            + ((cin * j->Cout_g) + col) * j->K * es,
                        j->w->dtype, j->K, 1);
      if (j->w_scale)
        for (int64_t k = 0; k < j->K; k++)
          wbuf[ci * j->K + k] *= j->w_scale[cin];
    }
    for (int64_t o = 0; o < j->To; o++) {
      int64_t op = o + j->padding;
      int64_t phase = op % j->stride, q = op / j->stride;
      float acc = 0.0f;
      for (int64_t ci = 0; ci < j->Cin_g; ci++) {
        const float *x = j->x + (b * j->Cin + g * j->Cin_g + ci) * j->T;
        const float *wr = wbuf + ci * j->K;
        for (int64_t k = phase, t = q; k < j->K; k += j->stride, t--)
          if (t >= 0 && t < j->T)
            acc += x[t] * wr[k];
      }
      out[o] = acc + bv;
    }
  }
}

typedef struct {
  const float *x; /* this batch */
  int64_t T, Kp, q_base;
} ConvTPack;

/* B(n, ci * Kp + jj) = x[ci, q - jj] with q = q_base + n */
static void
pack_convt (gpointer data, int64_t n0, int64_t nb, int64_t k0, int64_t kb,
            float *dst)
{
  const ConvTPack *p = data;
  int64_t T = p->T, Kp = p->Kp;

  for (int64_t jp = 0; jp < nb; jp += NR) {
    float *d = dst + jp * kb;
    int64_t lanes = MIN (NR, nb - jp);
    int64_t q0 = p->q_base + n0 + jp;
    int64_t ci = k0 / Kp, jj = k0 % Kp;

    for (int64_t k = 0; k < kb; k++) {
      const float *xr = p->x + ci * T;
      int64_t base = q0 - jj;

      gather_lanes (d + k * NR, xr, T, base, 1, lanes);
      if (++jj == Kp) {
        jj = 0;
        ci++;
      }
    }
  }
}

/* groups == 1, one (batch, phase, chunk of q) per task */
static void
convt_gemm_range (gpointer data, int64_t start, int64_t end, int tid)
{
  ConvTJob *j = data;
  float *pack = ovi_cpu_pack_scratch (j->be, tid, "ovi_op_conv_transpose1d");

  if (pack == NULL)
    return;
  for (int64_t task = start; task < end; task++) {
    int64_t c = task % j->n_chunks, bp = task / j->n_chunks;
    int64_t ph = bp % j->stride, b = bp / j->stride;
    int64_t Kp = j->Kp[ph];
    int64_t q0 = j->q_lo[ph] + c * j->chunk;
    int64_t nq = MIN (j->chunk, j->q_lo[ph] + j->nq[ph] - q0);
    float *out
        = j->out + b * j->Cout * j->To + q0 * j->stride + ph - j->padding;
    ConvTPack p = { j->x + b * j->Cin * j->T, j->T, Kp, q0 };

    if (nq <= 0)
      continue;
    /* Kp == 0 (a phase no tap reaches): K = 0 gives the bias alone */
    ovi_cpu_gemm_implicit (j->Cout, nq, j->Cin * Kp, j->wp[ph], j->Cin * Kp,
                           pack_convt, &p, j->bias, out, j->To, j->stride,
                           pack);
  }
}

static void
cpu_conv_transpose1d (OviBackend *be, OviTensor *out, const OviTensor *x,
                      const OviTensor *w, const OviTensor *bias, int stride,
                      int padding, int groups)
{
  const char *op = "ovi_op_conv_transpose1d";
  g_auto (ConvOperands) in = { 0 };
  ConvTJob j = { 0 };
  int64_t B = x->ndim == 3 ? x->shape[0] : 1;
  int n_threads = ovi_cpu_priv (be)->n_threads;
  int64_t max_nq = 0;

  if (!conv_operands (be, x, w, bias, op, &in))
    return;
  j.be = be;
  j.x = ovi_tensor_data (in.x);
  j.w = in.w;
  j.w_scale = in.scales;
  j.bias = conv_bias_data (&in);
  j.out = ovi_tensor_data (out);
  j.Cin = x->shape[x->ndim - 2];
  j.T = x->shape[x->ndim - 1];
  j.K = w->shape[2];
  j.Cout_g = w->shape[1];
  j.Cout = j.Cout_g * groups;
  j.To = out->shape[out->ndim - 1];
  j.groups = groups;
  j.Cin_g = j.Cin / groups;
  j.stride = stride;
  j.padding = padding;
  if (B * j.Cout * j.To == 0)
    return;
  if (groups > 1 || stride > 64 || j.Cin * j.Cout < 64) {
    ovi_cpu_pool_parallel_for (
        ovi_cpu_priv (be)->pool, B * j.Cout,
        MAX (1, 4096 / MAX (j.To * j.K * j.Cin_g / stride, 1)),
        convt_direct_range, &j);
    return;
  }
  /* per phase: taps k = ph + jj * stride; out[o = q*stride + ph - padding] */
  {
    gsize off = 0;
    gsize es = ovi_dtype_size (in.w->dtype);
    float *wall = ovi_cpu_shared_scratch (
        be, sizeof (float) * MAX (j.Cout * j.Cin * j.K + j.K, 1));
    float *row;

    if (wall == NULL) {
      oom (be, op);
      return;
    }
    row = wall + j.Cout * j.Cin * j.K;
    for (int ph = 0; ph < stride; ph++) {
      int64_t Kp = ph < j.K ? (j.K - ph + stride - 1) / stride : 0;
      int64_t lo = padding - ph, hi = j.To - 1 + padding - ph;
      j.Kp[ph] = Kp;
      j.wp[ph] = wall + off;
      off += (gsize) j.Cout * j.Cin * Kp;
      for (int64_t ci = 0; ci < j.Cin; ci++)
        for (int64_t co = 0; co < j.Cout; co++) {
          ovi_cpu_load_f32 (row,
                            (const char *) ovi_tensor_data (in.w)
                                + (ci * j.Cout + co) * j.K * es,
                            in.w->dtype, j.K, 1);
          for (int64_t jj = 0; jj < Kp; jj++)
            j.wp[ph][co * j.Cin * Kp + ci * Kp + jj]
                = row[ph + jj * stride] * (in.scales ? in.scales[ci] : 1.0f);
        }
      /* q range with 0 <= q*stride + ph - padding < To */
      j.q_lo[ph] = lo <= 0 ? 0 : (lo + stride - 1) / stride;
      j.nq[ph] = hi < 0 ? 0 : MAX (hi / stride - j.q_lo[ph] + 1, 0);
      max_nq = MAX (max_nq, j.nq[ph]);
    }
  }
  j.chunk = task_positions (max_nq, n_threads, B * stride);
  j.n_chunks = MAX (1, (max_nq + j.chunk - 1) / j.chunk);
  ovi_cpu_pool_parallel_for (ovi_cpu_priv (be)->pool, B * stride * j.n_chunks,
                             1, convt_gemm_range, &j);
}

/* ---------------- conv3d ---------------- */

typedef struct {
  OviBackend *be;
  const float *x;
  const float *wf, *bias;
  float *out;
  int64_t Cin, T, H, W, Cout, kt, kh, kw, To, Ho, Wo, P, chunk;
  int st[3], pad[6];
} Conv3dJob;

typedef struct {
  const Conv3dJob *j;
  int64_t p_base;
} Conv3dPack;

static void
pack_conv3d (gpointer data, int64_t n0, int64_t nb, int64_t k0, int64_t kb,
             float *dst)
{
  const Conv3dPack *p = data;
  const Conv3dJob *j = p->j;
  int64_t T = j->T, H = j->H, W = j->W;
  int64_t kt = j->kt, kh = j->kh, kw = j->kw, sw = j->st[2];

  for (int64_t jp = 0; jp < nb; jp += NR) {
    float *d = dst + jp * kb;
    int64_t lanes = MIN (NR, nb - jp);
    int64_t pos0 = p->p_base + n0 + jp;
    int64_t wo0 = pos0 % j->Wo, ho0 = (pos0 / j->Wo) % j->Ho;
    int64_t to0 = pos0 / (j->Wo * j->Ho);
    /* all lanes in one output row: consecutive wo */
    gboolean row = wo0 + lanes <= j->Wo;
    int64_t tl[NR], hl[NR], wl[NR];
    int64_t c = k0 % kw, bb = (k0 / kw) % kh, a = (k0 / (kw * kh)) % kt;
    int64_t ci = k0 / (kw * kh * kt);

    for (int64_t l = 0; l < NR; l++) {
      int64_t pos = pos0 + MIN (l, lanes - 1);
      tl[l] = (pos / (j->Wo * j->Ho)) * j->st[0] - j->pad[0];
      hl[l] = ((pos / j->Wo) % j->Ho) * j->st[1] - j->pad[2];
      wl[l] = (pos % j->Wo) * sw - j->pad[4];
    }
    for (int64_t k = 0; k < kb; k++) {
      float *o = d + k * NR;
      const float *xc = j->x + ci * T * H * W;

      if (row) {
        int64_t t = to0 * j->st[0] - j->pad[0] + a;
        int64_t h = ho0 * j->st[1] - j->pad[2] + bb;
        int64_t w0 = wl[0] + c;
        if (t < 0 || t >= T || h < 0 || h >= H) {
          memset (o, 0, sizeof (float) * NR);
        } else {
          const float *xr = xc + (t * H + h) * W;
          if (sw == 1 && lanes == NR && w0 >= 0 && w0 + NR <= W) {
            memcpy (o, xr + w0, sizeof (float) * NR);
          } else {
            for (int64_t l = 0; l < NR; l++) {
              int64_t ww = w0 + l * sw;
              o[l] = (l < lanes && ww >= 0 && ww < W) ? xr[ww] : 0.0f;
            }
          }
        }
      } else {
        for (int64_t l = 0; l < NR; l++) {
          int64_t t = tl[l] + a, h = hl[l] + bb, ww = wl[l] + c;
          o[l] = (l < lanes && t >= 0 && t < T && h >= 0 && h < H && ww >= 0
                  && ww < W)
                     ? xc[(t * H + h) * W + ww]
                     : 0.0f;
        }
      }
      if (++c == kw) {
        c = 0;
        if (++bb == kh) {
          bb = 0;
          if (++a == kt) {
            a = 0;
            ci++;
          }
        }
      }
    }
  }
}

static void
conv3d_range (gpointer data, int64_t start, int64_t end, int tid)
{
  Conv3dJob *j = data;
  int64_t CK = j->Cin * j->kt * j->kh * j->kw;
  float *pack = ovi_cpu_pack_scratch (j->be, tid, "ovi_op_conv3d");

  if (pack == NULL)
    return;
  for (int64_t c = start; c < end; c++) {
    int64_t p0 = c * j->chunk, np = MIN (j->chunk, j->P - p0);
    Conv3dPack p = { j, p0 };

    ovi_cpu_gemm_implicit (j->Cout, np, CK, j->wf, CK, pack_conv3d, &p, j->bias,
                           j->out + p0, j->P, 1, pack);
  }
}

static void
cpu_conv3d (OviBackend *be, OviTensor *out, const OviTensor *x,
            const OviTensor *w, const OviTensor *bias, const int stride[3],
            const int pad[6])
{
  const char *op = "ovi_op_conv3d";
  g_auto (ConvOperands) in = { 0 };
  Conv3dJob j = { 0 };

  if (!conv_operands (be, x, w, bias, op, &in))
    return;
  j.be = be;
  j.x = ovi_tensor_data (in.x);
  j.bias = conv_bias_data (&in);
  j.out = ovi_tensor_data (out);
  j.Cin = x->shape[0];
  j.T = x->shape[1];
  j.H = x->shape[2];
  j.W = x->shape[3];
  j.Cout = w->shape[0];
  j.kt = w->shape[2];
  j.kh = w->shape[3];
  j.kw = w->shape[4];
  j.To = out->shape[1];
  j.Ho = out->shape[2];
  j.Wo = out->shape[3];
  j.P = j.To * j.Ho * j.Wo;
  memcpy (j.st, stride, sizeof (j.st));
  memcpy (j.pad, pad, sizeof (j.pad));
  if (j.P == 0 || j.Cout == 0)
    return;
  j.wf = weights_f32 (be, in.w, j.Cout, j.Cin * j.kt * j.kh * j.kw, in.scales,
                      op);
  if (j.wf == NULL)
    return;
  j.chunk = task_positions (j.P, ovi_cpu_priv (be)->n_threads, 1);
  ovi_cpu_pool_parallel_for (ovi_cpu_priv (be)->pool,
                             (j.P + j.chunk - 1) / j.chunk, 1, conv3d_range,
                             &j);
}

/* ---------------- pad and upsample ---------------- */

typedef struct {
  OviBackend *be;
  const OviTensor *x;
  float *out;
  int ndim;
  int64_t oshape[OVI_MAX_DIMS];
  int64_t before[OVI_MAX_DIMS]; /* pad: leading pad per dim */
  int64_t factor[OVI_MAX_DIMS]; /* upsample: factor per dim */
  gboolean upsample;
  OviPadMode mode;
} ResizeJob;

/* source index along dim d of output index o; -1 for a zero pad */
static inline int64_t
resize_src (const ResizeJob *j, int d, int64_t o)
{
  int64_t n = j->x->shape[d], s;

  if (j->upsample)
    return o / j->factor[d];
  s = o - j->before[d];
  if (s >= 0 && s < n)
    return s;
  if (j->mode == OVI_PAD_ZERO)
    return -1;
  return s < 0 ? 0 : n - 1;
}

static void
resize_range (gpointer data, int64_t start, int64_t end, int tid)
{
  ResizeJob *j = data;
  int nd = j->ndim;
  int64_t n_out = j->oshape[nd - 1], n_in = j->x->shape[nd - 1];
  gsize es = ovi_dtype_size (j->x->dtype);
  float *row = ovi_cpu_scratch (j->be, tid, 1, sizeof (float) * MAX (n_in, 1));

  if (row == NULL) {
    oom (j->be, j->upsample ? "ovi_op_upsample_nearest" : "ovi_op_pad");
    return;
  }
  for (int64_t r = start; r < end; r++) {
    float *o = j->out + r * n_out;
    int64_t rem = r, off = 0;
    gboolean zero = FALSE;

    for (int d = nd - 2; d >= 0; d--) {
      int64_t idx = rem % j->oshape[d], s;
      rem /= j->oshape[d];
      s = resize_src (j, d, idx);
      if (s < 0)
        zero = TRUE;
      else
        off += s * j->x->stride[d];
    }
    if (zero || n_in == 0) {
      memset (o, 0, sizeof (float) * n_out);
      continue;
    }
    ovi_cpu_load_f32 (
        row, (const char *) ovi_tensor_data (j->x) + off * (int64_t) es,
        j->x->dtype, n_in, j->x->stride[nd - 1]);
    for (int64_t i = 0; i < n_out; i++) {
      int64_t s = resize_src (j, nd - 1, i);
      o[i] = s < 0 ? 0.0f : row[s];
    }
  }
}

static void
run_resize (OviBackend *be, ResizeJob *j, OviTensor *out, const OviTensor *x)
{
  int64_t rows = 1;

  j->be = be;
  j->x = x;
  j->out = ovi_tensor_data (out);
  j->ndim = x->ndim;
  memcpy (j->oshape, out->shape, sizeof (int64_t) * out->ndim);
  for (int d = 0; d < out->ndim - 1; d++)
    rows *= out->shape[d];
  if (rows == 0 || out->shape[out->ndim - 1] == 0)
    return;
  ovi_cpu_pool_parallel_for (ovi_cpu_priv (be)->pool, rows,
                             MAX (1, 16384 / out->shape[out->ndim - 1]),
                             resize_range, j);
}

static void
cpu_pad (OviBackend *be, OviTensor *out, const OviTensor *x, int n,
         const int *pads, OviPadMode mode)
{
  ResizeJob j = { 0 };

  for (int i = 0; i < n; i++)
    j.before[x->ndim - n + i] = pads[2 * i];
  j.mode = mode;
  run_resize (be, &j, out, x);
}

static void
cpu_upsample_nearest (OviBackend *be, OviTensor *out, const OviTensor *x, int n,
                      const int *factors)
{
  ResizeJob j = { 0 };

  for (int d = 0; d < x->ndim; d++)
    j.factor[d] = 1;
  for (int i = 0; i < n; i++)
    j.factor[x->ndim - n + i] = factors[i];
  j.upsample = TRUE;
  run_resize (be, &j, out, x);
}

void
ovi_cpu_register_conv_ops (OviBackendOps *ops)
{
  ops->conv1d = cpu_conv1d;
  ops->conv_transpose1d = cpu_conv_transpose1d;
  ops->conv3d = cpu_conv3d;
  ops->pad = cpu_pad;
  ops->upsample_nearest = cpu_upsample_nearest;
}
