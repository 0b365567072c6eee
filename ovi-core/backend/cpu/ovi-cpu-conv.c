/* gst-ovi: CPU convolutions, padding and nearest upsampling.
 *
 * conv1d and conv3d are im2col per chunk of output positions (bounded
 * per-thread scratch) followed by the GEMM kernel against the weight rows
 * as stored ([Cout, Cin*K...]), so weights of any dtype are converted while
 * packing. conv_transpose1d with groups == 1 is split into `stride` phases,
 * each an ordinary convolution run the same way; grouped ones (the
 * depthwise anti-alias filters) and depthwise conv1d use direct loops.
 * Accumulation is fp32 in a fixed order independent of threads.
 */
#include "ovi-cpu-private.h"

#include <math.h>
#include <string.h>

void ovi_cpu_register_conv_ops(OviBackendOps *ops);

static gboolean
oom(OviBackend *be, const char *op)
{
  ovi_backend_set_error(be, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                        "%s: out of memory for scratch", op);
  return FALSE;
}

/* the weight with contiguous rows of `row` elements, or a f32 copy */
static OviTensor *
weight_rows(OviBackend *be, const OviTensor *w, const char *op)
{
  if (ovi_tensor_is_contiguous(w))
    return ovi_tensor_ref((OviTensor *) w);
  return ovi_cpu_f32_contig(be, w, op);
}

/* positions per im2col chunk: about 2 MiB of columns, at least 64 rows */
static int64_t
chunk_rows(int64_t ck)
{
  return CLAMP((2 << 20) / (4 * MAX(ck, 1)), 64, 1024);
}

/* ---------------- conv1d ---------------- */

typedef struct {
  OviBackend *be;
  const float *x;
  const OviTensor *w;
  const float *w_scale, *bias;
  float *out;
  int64_t Cin, T, Cout, K, To, groups, Cin_g, Cout_g, chunk, n_chunks;
  int stride, pad_left, dilation;
} Conv1dJob;

static void
conv1d_range(gpointer data, int64_t start, int64_t end, int tid)
{
  Conv1dJob *j = data;
  int64_t CK = j->Cin_g * j->K;
  float *pack = ovi_cpu_scratch(j->be, tid, 0, ovi_cpu_gemm_pack_size());
  float *col = ovi_cpu_scratch(j->be, tid, 1, sizeof(float) * j->chunk * CK);
  gsize es = ovi_dtype_size(j->w->dtype);

  if (pack == NULL || col == NULL) {
    oom(j->be, "ovi_op_conv1d");
    return;
  }
  for (int64_t task = start; task < end; task++) {
    int64_t c = task % j->n_chunks, bg = task / j->n_chunks;
    int64_t g = bg % j->groups, b = bg / j->groups;
    int64_t t0 = c * j->chunk, tc = MIN(j->chunk, j->To - t0);
    const float *x = j->x + (b * j->Cin + g * j->Cin_g) * j->T;
    float *out = j->out + (b * j->Cout + g * j->Cout_g) * j->To + t0;

    for (int64_t p = 0; p < tc; p++) {
      float *cr = col + p * CK;
      int64_t base = (t0 + p) * j->stride - j->pad_left;
      for (int64_t ci = 0; ci < j->Cin_g; ci++) {
        const float *xr = x + ci * j->T;
        for (int64_t k = 0; k < j->K; k++) {
          int64_t t = base + k * j->dilation;
          cr[ci * j->K + k] = (t >= 0 && t < j->T) ? xr[t] : 0.0f;
        }
      }
    }
    ovi_cpu_gemm_serial_raw(
        tc, j->Cout_g, CK, col, CK,
        (const char *) ovi_tensor_data(j->w) + g * j->Cout_g * CK * es,
        j->w->dtype, CK, j->w_scale ? j->w_scale + g * j->Cout_g : NULL,
        j->bias ? j->bias + g * j->Cout_g : NULL, out, 1, j->To, OVI_ACT_NONE,
        pack);
  }
}

/* one output channel of a conv with one input channel per output (depthwise
 * or Cin_g == 1): direct loop over the taps */
static void
conv1d_dw_range(gpointer data, int64_t start, int64_t end, int tid)
{
  Conv1dJob *j = data;
  float *wrow = ovi_cpu_scratch(j->be, tid, 1, sizeof(float) * j->K);
  gsize es = ovi_dtype_size(j->w->dtype);

  if (wrow == NULL) {
    oom(j->be, "ovi_op_conv1d");
    return;
  }
  for (int64_t r = start; r < end; r++) {
    int64_t co = r % j->Cout, b = r / j->Cout;
    int64_t g = co / j->Cout_g;
    const float *x = j->x + (b * j->Cin + g) * j->T;
    float *out = j->out + r * j->To;
    float bv = j->bias ? j->bias[co] : 0.0f;

    ovi_cpu_load_f32(wrow,
                     (const char *) ovi_tensor_data(j->w) + co * j->K * es,
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
cpu_conv1d(OviBackend *be, OviTensor *out, const OviTensor *x,
           const OviTensor *w, const OviTensor *bias, int stride, int pad_left,
           int pad_right, int dilation, int groups)
{
  const char *op = "ovi_op_conv1d";
  g_autoptr(OviTensor) xc = ovi_cpu_f32_contig(be, x, op);
  g_autoptr(OviTensor) wc = NULL;
  g_autoptr(OviTensor) bc = NULL;
  g_autofree float *scales = NULL;
  Conv1dJob j = { 0 };
  int64_t B = x->ndim == 3 ? x->shape[0] : 1;

  if (xc == NULL || (wc = weight_rows(be, w, op)) == NULL)
    return;
  if (bias && (bc = ovi_cpu_f32_contig(be, bias, op)) == NULL)
    return;
  if (!ovi_cpu_weight_scales(be, wc, op, &scales))
    return;
  j.be = be;
  j.x = ovi_tensor_data(xc);
  j.w = wc;
  j.w_scale = scales;
  j.bias = bc ? ovi_tensor_data(bc) : NULL;
  j.out = ovi_tensor_data(out);
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
    ovi_cpu_pool_parallel_for(ovi_cpu_priv(be)->pool, B * j.Cout,
                              MAX(1, 4096 / (j.To * j.K)), conv1d_dw_range, &j);
    return;
  }
  j.chunk = chunk_rows(j.Cin_g * j.K);
  j.n_chunks = (j.To + j.chunk - 1) / j.chunk;
  ovi_cpu_pool_parallel_for(ovi_cpu_priv(be)->pool, B * groups * j.n_chunks, 1,
                            conv1d_range, &j);
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

/* direct loop, one output channel per row: any groups */
static void
convt_direct_range(gpointer data, int64_t start, int64_t end, int tid)
{
  ConvTJob *j = data;
  float *wbuf = ovi_cpu_scratch(j->be, tid, 1, sizeof(float) * j->Cin_g * j->K);
  gsize es = ovi_dtype_size(j->w->dtype);

  if (wbuf == NULL) {
    oom(j->be, "ovi_op_conv_transpose1d");
    return;
  }
  for (int64_t r = start; r < end; r++) {
    int64_t co = r % j->Cout, b = r / j->Cout;
    int64_t g = co / j->Cout_g, col = co % j->Cout_g;
    float *out = j->out + r * j->To;
    float bv = j->bias ? j->bias[co] : 0.0f;

    for (int64_t ci = 0; ci < j->Cin_g; ci++) {
      int64_t cin = g * j->Cin_g + ci;
      ovi_cpu_load_f32(wbuf + ci * j->K,
                       (const char *) ovi_tensor_data(j->w)
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

/* groups == 1, one (batch, phase, chunk of q) per task */
static void
convt_gemm_range(gpointer data, int64_t start, int64_t end, int tid)
{
  ConvTJob *j = data;
  float *pack = ovi_cpu_scratch(j->be, tid, 0, ovi_cpu_gemm_pack_size());
  int64_t maxkp = (j->K + j->stride - 1) / j->stride;
  float *col = ovi_cpu_scratch(
      j->be, tid, 1, sizeof(float) * j->chunk * j->Cin * MAX(maxkp, 1));

  if (pack == NULL || col == NULL) {
    oom(j->be, "ovi_op_conv_transpose1d");
    return;
  }
  for (int64_t task = start; task < end; task++) {
    int64_t c = task % j->n_chunks, bp = task / j->n_chunks;
    int64_t ph = bp % j->stride, b = bp / j->stride;
    int64_t Kp = j->Kp[ph], CK = j->Cin * Kp;
    int64_t q0 = j->q_lo[ph] + c * j->chunk;
    int64_t nq = MIN(j->chunk, j->q_lo[ph] + j->nq[ph] - q0);
    float *out
        = j->out + b * j->Cout * j->To + q0 * j->stride + ph - j->padding;

    if (nq <= 0)
      continue;
    if (Kp == 0) {
      for (int64_t co = 0; co < j->Cout; co++)
        for (int64_t i = 0; i < nq; i++)
          out[co * j->To + i * j->stride] = j->bias ? j->bias[co] : 0.0f;
      continue;
    }
    for (int64_t i = 0; i < nq; i++) {
      float *cr = col + i * CK;
      int64_t q = q0 + i;
      for (int64_t ci = 0; ci < j->Cin; ci++) {
        const float *x = j->x + (b * j->Cin + ci) * j->T;
        for (int64_t jj = 0; jj < Kp; jj++) {
          int64_t t = q - jj;
          cr[ci * Kp + jj] = (t >= 0 && t < j->T) ? x[t] : 0.0f;
        }
      }
    }
    ovi_cpu_gemm_serial_raw(nq, j->Cout, CK, col, CK, j->wp[ph], OVI_DTYPE_F32,
                            CK, NULL, j->bias, out, j->stride, j->To,
                            OVI_ACT_NONE, pack);
  }
}

static void
cpu_conv_transpose1d(OviBackend *be, OviTensor *out, const OviTensor *x,
                     const OviTensor *w, const OviTensor *bias, int stride,
                     int padding, int groups)
{
  const char *op = "ovi_op_conv_transpose1d";
  g_autoptr(OviTensor) xc = ovi_cpu_f32_contig(be, x, op);
  g_autoptr(OviTensor) wc = NULL;
  g_autoptr(OviTensor) bc = NULL;
  g_autofree float *scales = NULL, *wall = NULL;
  ConvTJob j = { 0 };
  int64_t B = x->ndim == 3 ? x->shape[0] : 1;

  if (xc == NULL || (wc = weight_rows(be, w, op)) == NULL)
    return;
  if (bias && (bc = ovi_cpu_f32_contig(be, bias, op)) == NULL)
    return;
  if (!ovi_cpu_weight_scales(be, wc, op, &scales))
    return;
  j.be = be;
  j.x = ovi_tensor_data(xc);
  j.w = wc;
  j.w_scale = scales;
  j.bias = bc ? ovi_tensor_data(bc) : NULL;
  j.out = ovi_tensor_data(out);
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
    ovi_cpu_pool_parallel_for(
        ovi_cpu_priv(be)->pool, B * j.Cout,
        MAX(1, 4096 / MAX(j.To * j.K * j.Cin_g / stride, 1)),
        convt_direct_range, &j);
    return;
  }
  /* per phase: taps k = ph + jj * stride; out[o = q*stride + ph - padding] */
  {
    gsize total = 0, off = 0;
    gsize es = ovi_dtype_size(wc->dtype);
    float *row = g_new(float, j.K);
    for (int ph = 0; ph < stride; ph++) {
      j.Kp[ph] = ph < j.K ? (j.K - ph + stride - 1) / stride : 0;
      total += (gsize) j.Cout * j.Cin * j.Kp[ph];
    }
    wall = g_try_new(float, MAX(total, 1));
    if (wall == NULL) {
      g_free(row);
      oom(be, op);
      return;
    }
    for (int ph = 0; ph < stride; ph++) {
      int64_t Kp = j.Kp[ph];
      int64_t lo = padding - ph, hi = j.To - 1 + padding - ph;
      j.wp[ph] = wall + off;
      off += (gsize) j.Cout * j.Cin * Kp;
      for (int64_t ci = 0; ci < j.Cin; ci++)
        for (int64_t co = 0; co < j.Cout; co++) {
          ovi_cpu_load_f32(row,
                           (const char *) ovi_tensor_data(wc)
                               + (ci * j.Cout + co) * j.K * es,
                           wc->dtype, j.K, 1);
          for (int64_t jj = 0; jj < Kp; jj++)
            j.wp[ph][co * j.Cin * Kp + ci * Kp + jj]
                = row[ph + jj * stride] * (scales ? scales[ci] : 1.0f);
        }
      /* q range with 0 <= q*stride + ph - padding < To */
      j.q_lo[ph] = lo <= 0 ? 0 : (lo + stride - 1) / stride;
      j.nq[ph] = hi < 0 ? 0 : hi / stride - j.q_lo[ph] + 1;
      j.nq[ph] = MAX(j.nq[ph], 0);
    }
    g_free(row);
  }
  j.chunk = chunk_rows(j.Cin * ((j.K + stride - 1) / stride));
  j.n_chunks = 1;
  for (int ph = 0; ph < stride; ph++)
    j.n_chunks = MAX(j.n_chunks, (j.nq[ph] + j.chunk - 1) / j.chunk);
  ovi_cpu_pool_parallel_for(ovi_cpu_priv(be)->pool, B * stride * j.n_chunks, 1,
                            convt_gemm_range, &j);
}

/* ---------------- conv3d ---------------- */

typedef struct {
  OviBackend *be;
  const float *x;
  const OviTensor *w;
  const float *w_scale, *bias;
  float *out;
  int64_t Cin, T, H, W, Cout, kt, kh, kw, To, Ho, Wo, P, chunk;
  int st[3], pad[6];
} Conv3dJob;

static void
conv3d_range(gpointer data, int64_t start, int64_t end, int tid)
{
  Conv3dJob *j = data;
  int64_t kvol = j->kt * j->kh * j->kw, CK = j->Cin * kvol;
  float *pack = ovi_cpu_scratch(j->be, tid, 0, ovi_cpu_gemm_pack_size());
  float *col = ovi_cpu_scratch(j->be, tid, 1, sizeof(float) * j->chunk * CK);

  if (pack == NULL || col == NULL) {
    oom(j->be, "ovi_op_conv3d");
    return;
  }
  for (int64_t c = start; c < end; c++) {
    int64_t p0 = c * j->chunk, np = MIN(j->chunk, j->P - p0);

    for (int64_t i = 0; i < np; i++) {
      int64_t p = p0 + i;
      int64_t wo = p % j->Wo, ho = (p / j->Wo) % j->Ho,
              to = p / (j->Wo * j->Ho);
      int64_t t0 = to * j->st[0] - j->pad[0];
      int64_t h0 = ho * j->st[1] - j->pad[2];
      int64_t w0 = wo * j->st[2] - j->pad[4];
      float *cr = col + i * CK;

      for (int64_t ci = 0; ci < j->Cin; ci++) {
        const float *xc = j->x + ci * j->T * j->H * j->W;
        for (int64_t a = 0; a < j->kt; a++) {
          int64_t t = t0 + a;
          gboolean tin = t >= 0 && t < j->T;
          for (int64_t bb = 0; bb < j->kh; bb++) {
            int64_t h = h0 + bb;
            gboolean hin = tin && h >= 0 && h < j->H;
            const float *xr = xc + (t * j->H + h) * j->W;
            float *dst = cr + ((ci * j->kt + a) * j->kh + bb) * j->kw;
            for (int64_t cc = 0; cc < j->kw; cc++) {
              int64_t ww = w0 + cc;
              dst[cc] = (hin && ww >= 0 && ww < j->W) ? xr[ww] : 0.0f;
            }
          }
        }
      }
    }
    ovi_cpu_gemm_serial_raw(np, j->Cout, CK, col, CK, ovi_tensor_data(j->w),
                            j->w->dtype, CK, j->w_scale, j->bias, j->out + p0,
                            1, j->P, OVI_ACT_NONE, pack);
  }
}

static void
cpu_conv3d(OviBackend *be, OviTensor *out, const OviTensor *x,
           const OviTensor *w, const OviTensor *bias, const int stride[3],
           const int pad[6])
{
  const char *op = "ovi_op_conv3d";
  g_autoptr(OviTensor) xc = ovi_cpu_f32_contig(be, x, op);
  g_autoptr(OviTensor) wc = NULL;
  g_autoptr(OviTensor) bc = NULL;
  g_autofree float *scales = NULL;
  Conv3dJob j = { 0 };

  if (xc == NULL || (wc = weight_rows(be, w, op)) == NULL)
    return;
  if (bias && (bc = ovi_cpu_f32_contig(be, bias, op)) == NULL)
    return;
  if (!ovi_cpu_weight_scales(be, wc, op, &scales))
    return;
  j.be = be;
  j.x = ovi_tensor_data(xc);
  j.w = wc;
  j.w_scale = scales;
  j.bias = bc ? ovi_tensor_data(bc) : NULL;
  j.out = ovi_tensor_data(out);
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
  memcpy(j.st, stride, sizeof(j.st));
  memcpy(j.pad, pad, sizeof(j.pad));
  j.chunk = chunk_rows(j.Cin * j.kt * j.kh * j.kw);
  if (j.P == 0 || j.Cout == 0)
    return;
  ovi_cpu_pool_parallel_for(ovi_cpu_priv(be)->pool,
                            (j.P + j.chunk - 1) / j.chunk, 1, conv3d_range, &j);
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
resize_src(const ResizeJob *j, int d, int64_t o)
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
resize_range(gpointer data, int64_t start, int64_t end, int tid)
{
  ResizeJob *j = data;
  int nd = j->ndim;
  int64_t n_out = j->oshape[nd - 1], n_in = j->x->shape[nd - 1];
  gsize es = ovi_dtype_size(j->x->dtype);
  float *row = ovi_cpu_scratch(j->be, tid, 1, sizeof(float) * MAX(n_in, 1));

  if (row == NULL) {
    oom(j->be, j->upsample ? "ovi_op_upsample_nearest" : "ovi_op_pad");
    return;
  }
  for (int64_t r = start; r < end; r++) {
    float *o = j->out + r * n_out;
    int64_t rem = r, off = 0;
    gboolean zero = FALSE;

    for (int d = nd - 2; d >= 0; d--) {
      int64_t idx = rem % j->oshape[d], s;
      rem /= j->oshape[d];
      s = resize_src(j, d, idx);
      if (s < 0)
        zero = TRUE;
      else
        off += s * j->x->stride[d];
    }
    if (zero || n_in == 0) {
      memset(o, 0, sizeof(float) * n_out);
      continue;
    }
    ovi_cpu_load_f32(row,
                     (const char *) ovi_tensor_data(j->x) + off * (int64_t) es,
                     j->x->dtype, n_in, j->x->stride[nd - 1]);
    for (int64_t i = 0; i < n_out; i++) {
      int64_t s = resize_src(j, nd - 1, i);
      o[i] = s < 0 ? 0.0f : row[s];
    }
  }
}

static void
run_resize(OviBackend *be, ResizeJob *j, OviTensor *out, const OviTensor *x)
{
  int64_t rows = 1;

  j->be = be;
  j->x = x;
  j->out = ovi_tensor_data(out);
  j->ndim = x->ndim;
  memcpy(j->oshape, out->shape, sizeof(int64_t) * out->ndim);
  for (int d = 0; d < out->ndim - 1; d++)
    rows *= out->shape[d];
  if (rows == 0 || out->shape[out->ndim - 1] == 0)
    return;
  ovi_cpu_pool_parallel_for(ovi_cpu_priv(be)->pool, rows,
                            MAX(1, 16384 / out->shape[out->ndim - 1]),
                            resize_range, j);
}

static void
cpu_pad(OviBackend *be, OviTensor *out, const OviTensor *x, int n,
        const int *pads, OviPadMode mode)
{
  ResizeJob j = { 0 };

  for (int i = 0; i < n; i++)
    j.before[x->ndim - n + i] = pads[2 * i];
  j.mode = mode;
  run_resize(be, &j, out, x);
}

static void
cpu_upsample_nearest(OviBackend *be, OviTensor *out, const OviTensor *x, int n,
                     const int *factors)
{
  ResizeJob j = { 0 };

  for (int d = 0; d < x->ndim; d++)
    j.factor[d] = 1;
  for (int i = 0; i < n; i++)
    j.factor[x->ndim - n + i] = factors[i];
  j.upsample = TRUE;
  run_resize(be, &j, out, x);
}

void
ovi_cpu_register_conv_ops(OviBackendOps *ops)
{
  ops->conv1d = cpu_conv1d;
  ops->conv_transpose1d = cpu_conv_transpose1d;
  ops->conv3d = cpu_conv3d;
  ops->pad = cpu_pad;
  ops->upsample_nearest = cpu_upsample_nearest;
}
