/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the BigVGAN v1 vocoder (AMPBlock1, anti-aliased SnakeBeta),
 * written against the op table. See research/ovi-architecture.md 3.3.
 */
#include "ovi-bigvgan.h"

#include <math.h>
#include <string.h>

/* bigvgan_vocoder.yml: upsample_rates and resblock_dilation_sizes */
static const int upsample_rates[] = { 4, 4, 2, 2, 2, 2 };
#define N_UPS G_N_ELEMENTS (upsample_rates)
static const int dilations[] = { 1, 3, 5 };
#define N_DIL G_N_ELEMENTS (dilations)

typedef struct {
  OviTensor *w, *b; /* folded weight, bias */
  int cin, cout, k; /* ConvTranspose1d: w [cin, cout, k] */
} WConv;

/* Activation1d(SnakeBeta): up x2 (replicate pad, transposed lowpass),
 * snake, down x2 (replicate pad, strided lowpass) */
typedef struct {
  int c;
  OviTensor *alpha, *beta; /* [C] */
  OviTensor *up_f;         /* [C, 1, K] = 2 * filter (ratio folded) */
  OviTensor *down_f;       /* [C, 1, K] */
  int up_k, down_k;
} AAct;

typedef struct {
  int c, k;
  int n; /* convs per list (3) */
  WConv convs1[N_DIL], convs2[N_DIL];
  AAct acts[2 * N_DIL];
} AMPBlock;

struct _OviBigVGan {
  OviBackend *be;
  int n_mels;
  WConv conv_pre, conv_post;
  WConv ups[N_UPS];
  int n_kernels;
  AMPBlock *blocks; /* N_UPS * n_kernels */
  AAct act_post;
  GPtrArray *weights;
  OviAudioDebugFunc debug;
  gpointer debug_data;
};

static OviTensor *
keep (OviBigVGan *v, OviTensor *host)
{
  OviTensor *u = ovi_backend_upload_weight (v->be, host, NULL);

  g_ptr_array_add (v->weights, u);
  return u;
}

static OviTensor *
get_f32 (OviWeightFile *wf, const char *name, GError **error)
{
  g_autoptr (OviTensor) t = ovi_weight_file_get (wf, name, error);

  return t ? ovi_tensor_to_f32 (t, error) : NULL;
}

/* W = g * v / |v|, norm over every dim but 0; from either key style, or a
 * plain `.weight` when the norm was already removed */
static gboolean
load_wconv (OviBigVGan *v, OviWeightFile *wf, WConv *c, const char *prefix,
            gboolean transposed, GError **error)
{
  g_autofree char *g_new_name
      = g_strdup_printf ("%s.parametrizations.weight.original0", prefix);
  g_autofree char *v_new_name
      = g_strdup_printf ("%s.parametrizations.weight.original1", prefix);
  g_autofree char *g_old_name = g_strdup_printf ("%s.weight_g", prefix);
  g_autofree char *v_old_name = g_strdup_printf ("%s.weight_v", prefix);
  g_autofree char *w_name = g_strdup_printf ("%s.weight", prefix);
  g_autofree char *b_name = g_strdup_printf ("%s.bias", prefix);
  g_autoptr (OviTensor) g = NULL;
  g_autoptr (OviTensor) w = NULL;

  if (ovi_weight_file_contains (wf, v_new_name)) {
    w = get_f32 (wf, v_new_name, error);
    g = w ? get_f32 (wf, g_new_name, error) : NULL;
  } else if (ovi_weight_file_contains (wf, v_old_name)) {
    w = get_f32 (wf, v_old_name, error);
    g = w ? get_f32 (wf, g_old_name, error) : NULL;
  } else if (ovi_weight_file_contains (wf, w_name)) {
    w = get_f32 (wf, w_name, error);
  } else {
    g_set_error (error, OVI_ERROR, OVI_ERROR_MISSING_TENSOR,
                 "%s: tensor %s is missing (also looked for %s and %s)",
                 ovi_weight_file_path (wf), v_new_name, v_old_name, w_name);
    return FALSE;
  }
  if (w == NULL)
    return FALSE;
  if (w->ndim != 3) {
    g_autofree char *s = ovi_shape_to_string (w->ndim, w->shape);
    g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                 "%s: weight of %s has shape %s, expected 3 dims",
                 ovi_weight_file_path (wf), prefix, s);
    return FALSE;
  }
  if (ovi_weight_file_contains (wf, v_new_name)
      || ovi_weight_file_contains (wf, v_old_name)) {
    if (g == NULL)
      return FALSE;
    if (ovi_tensor_numel (g) != w->shape[0]) {
      g_autofree char *s = ovi_shape_to_string (g->ndim, g->shape);
      g_set_error (
          error, OVI_ERROR, OVI_ERROR_SHAPE,
          "%s: weight-norm g of %s has shape %s, expected [%" G_GINT64_FORMAT
          ", 1, 1]",
          ovi_weight_file_path (wf), prefix, s, w->shape[0]);
      return FALSE;
    }
    float *wd = ovi_tensor_data (w);
    const float *gd = ovi_tensor_data (g);
    int64_t row = w->shape[1] * w->shape[2];
    for (int64_t o = 0; o < w->shape[0]; o++) {
      double acc = 0;
      for (int64_t i = 0; i < row; i++)
        acc += (double) wd[o * row + i] * wd[o * row + i];
      float scale = gd[o] / (float) sqrt (acc);
      for (int64_t i = 0; i < row; i++)
        wd[o * row + i] *= scale;
    }
  }
  c->k = w->shape[2];
  if (transposed) {
    c->cin = w->shape[0];
    c->cout = w->shape[1];
  } else {
    c->cout = w->shape[0];
    c->cin = w->shape[1];
  }
  c->w = keep (v, w);
  {
    /* every conv of the vocoder has a bias */
    int64_t bs[1] = { c->cout };
    g_autoptr (OviTensor) braw
        = ovi_weight_file_get_shaped (wf, b_name, 1, bs, error);
    if (braw == NULL)
      return FALSE;
    c->b = keep (v, braw);
  }
  return TRUE;
}

/* [1, 1, K] filter -> [C, 1, K] times `scale` */
static OviTensor *
expand_filter (OviBigVGan *v, OviWeightFile *wf, const char *name, int c,
               float scale, int *k, GError **error)
{
  g_autoptr (OviTensor) f = get_f32 (wf, name, error);
  g_autoptr (OviTensor) e = NULL;

  if (f == NULL)
    return NULL;
  if (f->ndim != 3 || f->shape[0] != 1 || f->shape[1] != 1) {
    g_autofree char *s = ovi_shape_to_string (f->ndim, f->shape);
    g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                 "%s: tensor %s has shape %s, expected [1, 1, K]",
                 ovi_weight_file_path (wf), name, s);
    return NULL;
  }
  *k = f->shape[2];
  int64_t shape[3] = { c, 1, *k };
  e = ovi_tensor_new (OVI_DTYPE_F32, 3, shape, error);
  if (e == NULL)
    return NULL;
  float *d = ovi_tensor_data (e);
  const float *s = ovi_tensor_data (f);
  for (int i = 0; i < c; i++)
    for (int j = 0; j < *k; j++)
      d[i * *k + j] = s[j] * scale;
  return keep (v, e);
}

static gboolean
load_act (OviBigVGan *v, OviWeightFile *wf, AAct *a, const char *prefix, int c,
          GError **error)
{
  g_autofree char *an = g_strdup_printf ("%s.act.alpha", prefix);
  g_autofree char *bn = g_strdup_printf ("%s.act.beta", prefix);
  g_autofree char *un = g_strdup_printf ("%s.upsample.filter", prefix);
  g_autofree char *dn
      = g_strdup_printf ("%s.downsample.lowpass.filter", prefix);
  int64_t cs[1] = { c };
  g_autoptr (OviTensor) al = ovi_weight_file_get_shaped (wf, an, 1, cs, error);
  g_autoptr (OviTensor) be
      = al ? ovi_weight_file_get_shaped (wf, bn, 1, cs, error) : NULL;

  if (be == NULL)
    return FALSE;
  a->c = c;
  a->alpha = keep (v, al);
  a->beta = keep (v, be);
  /* UpSample1d multiplies by its ratio (2) after the transposed conv */
  a->up_f = expand_filter (v, wf, un, c, 2.0f, &a->up_k, error);
  if (a->up_f == NULL)
    return FALSE;
  a->down_f = expand_filter (v, wf, dn, c, 1.0f, &a->down_k, error);
  return a->down_f != NULL;
}

void
ovi_bigvgan_free (OviBigVGan *v)
{
  if (v == NULL)
    return;
  g_free (v->blocks);
  g_ptr_array_unref (v->weights);
  g_free (v);
}

OviBigVGan *
ovi_bigvgan_new (OviWeightFile *wf, OviBackend *be, GError **error)
{
  g_autoptr (OviBigVGan) v = g_new0 (OviBigVGan, 1);
  int ch;

  v->be = be;
  v->weights
      = g_ptr_array_new_with_free_func ((GDestroyNotify) ovi_tensor_unref);
  if (!load_wconv (v, wf, &v->conv_pre, "conv_pre", FALSE, error))
    return NULL;
  v->n_mels = v->conv_pre.cin;
  ch = v->conv_pre.cout;
  for (guint i = 0; i < N_UPS; i++) {
    g_autofree char *p = g_strdup_printf ("ups.%u.0", i);
    if (!load_wconv (v, wf, &v->ups[i], p, TRUE, error))
      return NULL;
    if (v->ups[i].cin != ch || (v->ups[i].k - upsample_rates[i]) % 2 != 0) {
      g_set_error (
          error, OVI_ERROR, OVI_ERROR_SHAPE,
          "%s: %s maps %d channels with kernel %d; expected %d input channels "
          "and a kernel fitting rate %d",
          ovi_weight_file_path (wf), p, v->ups[i].cin, v->ups[i].k, ch,
          upsample_rates[i]);
      return NULL;
    }
    ch = v->ups[i].cout;
  }
  {
    g_autofree char *probe = g_strdup_printf ("ups.%u.0.bias", (guint) N_UPS);
    if (ovi_weight_file_contains (wf, probe)) {
      g_set_error (
          error, OVI_ERROR, OVI_ERROR_SHAPE,
          "%s: more than %u up-sampling stages (bigvgan_vocoder.yml has %u)",
          ovi_weight_file_path (wf), (guint) N_UPS, (guint) N_UPS);
      return NULL;
    }
  }
  for (v->n_kernels = 0;; v->n_kernels++) {
    g_autofree char *probe
        = g_strdup_printf ("resblocks.%d.convs1.0.bias", v->n_kernels);
    if (!ovi_weight_file_contains (wf, probe))
      break;
  }
  if (v->n_kernels % N_UPS != 0 || v->n_kernels == 0) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                 "%s: %d resblocks is not a multiple of %u up-sampling stages",
                 ovi_weight_file_path (wf), v->n_kernels, (guint) N_UPS);
    return NULL;
  }
  v->n_kernels /= N_UPS;
  v->blocks = g_new0 (AMPBlock, N_UPS * v->n_kernels);
  for (guint i = 0; i < N_UPS; i++)
    for (int j = 0; j < v->n_kernels; j++) {
      int idx = i * v->n_kernels + j;
      AMPBlock *blk = &v->blocks[idx];
      blk->c = v->ups[i].cout;
      blk->n = N_DIL;
      for (guint m = 0; m < N_DIL; m++) {
        g_autofree char *c1
            = g_strdup_printf ("resblocks.%d.convs1.%u", idx, m);
        g_autofree char *c2
            = g_strdup_printf ("resblocks.%d.convs2.%u", idx, m);
        if (!load_wconv (v, wf, &blk->convs1[m], c1, FALSE, error)
            || !load_wconv (v, wf, &blk->convs2[m], c2, FALSE, error))
          return NULL;
        if (blk->convs1[m].cin != blk->c || blk->convs1[m].cout != blk->c
            || blk->convs2[m].cin != blk->c || blk->convs2[m].cout != blk->c) {
          g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                       "%s: %s is not %d -> %d channels",
                       ovi_weight_file_path (wf), c1, blk->c, blk->c);
          return NULL;
        }
        blk->k = blk->convs1[m].k;
      }
      for (guint m = 0; m < 2 * N_DIL; m++) {
        g_autofree char *p
            = g_strdup_printf ("resblocks.%d.activations.%u", idx, m);
        if (!load_act (v, wf, &blk->acts[m], p, blk->c, error))
          return NULL;
      }
    }
  if (!load_act (v, wf, &v->act_post, "activation_post", ch, error))
    return NULL;
  if (!load_wconv (v, wf, &v->conv_post, "conv_post", FALSE, error))
    return NULL;
  if (v->conv_post.cin != ch || v->conv_post.cout != 1) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                 "%s: conv_post maps %d -> %d channels, expected %d -> 1",
                 ovi_weight_file_path (wf), v->conv_post.cin, v->conv_post.cout,
                 ch);
    return NULL;
  }
  if (!ovi_backend_sync (be, error))
    return NULL;
  return g_steal_pointer (&v);
}

int
ovi_bigvgan_n_mels (const OviBigVGan *v)
{
  return v->n_mels;
}

int
ovi_bigvgan_hop (const OviBigVGan *v)
{
  int hop = 1;

  for (guint i = 0; i < N_UPS; i++)
    hop *= upsample_rates[i];
  return hop;
}

void
ovi_bigvgan_set_debug (OviBigVGan *v, OviAudioDebugFunc func,
                       gpointer user_data)
{
  v->debug = func;
  v->debug_data = user_data;
}

/* ---------------------------------------------------------------------- */

static OviTensor *
conv_run (OviBackend *be, const WConv *c, OviTensor *x, int dilation)
{
  int pad = (c->k * dilation - dilation) / 2;
  OviTensor *out = ovi_backend_new_act_2d (be, c->cout, x->shape[1]);

  if (out)
    ovi_op_conv1d (be, out, x, c->w, c->b, 1, pad, pad, dilation, 1);
  return out;
}

static OviTensor *
aact_run (OviBackend *be, const AAct *a, OviTensor *x)
{
  int64_t C = x->shape[0], T = x->shape[1];
  /* UpSample1d(2, K): pad = K/2 - 1 replicate, transposed conv stride 2,
   * crop pad*2 + (K-2)/2 each side (= the transposed conv's padding) */
  int up_pad = a->up_k / 2 - 1;
  int crop = up_pad * 2 + (a->up_k - 2) / 2;
  int crop_r = up_pad * 2 + (a->up_k - 2 + 1) / 2;
  /* LowPassFilter1d: K/2 - even on the left, K/2 on the right */
  int dl = a->down_k / 2 - (a->down_k % 2 == 0), dr = a->down_k / 2;
  g_autoptr (OviTensor) xp = ovi_backend_new_act_2d (be, C, T + 2 * up_pad);
  g_autoptr (OviTensor) u = ovi_backend_new_act_2d (be, C, 2 * T);
  g_autoptr (OviTensor) up = NULL;
  g_autoptr (OviTensor) sp = NULL;
  OviTensor *out;
  int pads[2] = { up_pad, up_pad };

  if (xp == NULL || u == NULL)
    return NULL;
  ovi_op_pad (be, xp, x, 1, pads, OVI_PAD_REPLICATE);
  if (crop == crop_r) {
    ovi_op_conv_transpose1d (be, u, xp, a->up_f, NULL, 2, crop, C);
  } else {
    int64_t full = (T + 2 * up_pad - 1) * 2 + a->up_k;
    up = ovi_backend_new_act_2d (be, C, full);
    if (up == NULL)
      return NULL;
    ovi_op_conv_transpose1d (be, up, xp, a->up_f, NULL, 2, 0, C);
    g_autoptr (OviTensor) mid = ovi_tensor_narrow (up, 1, crop, 2 * T);
    ovi_op_copy (be, u, mid);
  }
  ovi_op_snake_beta (be, u, u, a->alpha, a->beta, TRUE);
  sp = ovi_backend_new_act_2d (be, C, 2 * T + dl + dr);
  if (sp == NULL)
    return NULL;
  {
    int dpads[2] = { dl, dr };
    ovi_op_pad (be, sp, u, 1, dpads, OVI_PAD_REPLICATE);
  }
  out = ovi_backend_new_act_2d (be, C, (2 * T + dl + dr - a->down_k) / 2 + 1);
  if (out)
    ovi_op_conv1d (be, out, sp, a->down_f, NULL, 2, 0, 0, 1, C);
  return out;
}

static OviTensor *
amp_run (OviBackend *be, const AMPBlock *blk, OviTensor *x_in)
{
  g_autoptr (OviTensor) x = ovi_tensor_ref (x_in);
  gboolean owned = FALSE;

  for (int m = 0; m < blk->n; m++) {
    g_autoptr (OviTensor) a = aact_run (be, &blk->acts[2 * m], x);
    g_autoptr (OviTensor) b
        = a ? conv_run (be, &blk->convs1[m], a, dilations[m]) : NULL;
    g_autoptr (OviTensor) c
        = b ? aact_run (be, &blk->acts[2 * m + 1], b) : NULL;
    OviTensor *d = c ? conv_run (be, &blk->convs2[m], c, 1) : NULL;
    if (d == NULL)
      return NULL;
    ovi_op_binary (be, d, d, x, OVI_BINARY_ADD);
    g_clear_pointer (&x, ovi_tensor_unref);
    x = d;
    owned = TRUE;
  }
  (void) owned;
  return g_steal_pointer (&x);
}

static void
emit (OviBigVGan *v, const char *name, OviTensor *t)
{
  if (v->debug)
    v->debug (name, t, v->debug_data);
}

OviTensor *
ovi_bigvgan_run (OviBigVGan *v, const OviTensor *mel, GError **error)
{
  OviBackend *be = v->be;
  g_autoptr (OviTensor) x = NULL;
  g_autoptr (OviTensor) m = NULL;
  OviTensor *wav = NULL;

  if (mel->ndim != 2 || mel->shape[0] != v->n_mels || mel->shape[1] < 1) {
    g_autofree char *s = ovi_shape_to_string (mel->ndim, mel->shape);
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "vocoder: mel has shape %s, expected [%d, T]", s, v->n_mels);
    return NULL;
  }
  m = ovi_backend_new_act_2d (be, mel->shape[0], mel->shape[1]);
  if (m == NULL)
    goto fail;
  ovi_op_copy (be, m, mel);
  x = conv_run (be, &v->conv_pre, m, 1);
  if (x == NULL)
    goto fail;
  emit (v, "voc.conv_pre", x);
  for (guint i = 0; i < N_UPS; i++) {
    const WConv *u = &v->ups[i];
    int rate = upsample_rates[i], pad = (u->k - rate) / 2;
    int64_t To = (x->shape[1] - 1) * rate - 2 * pad + u->k;
    g_autoptr (OviTensor) y = ovi_backend_new_act_2d (be, u->cout, To);
    g_autoptr (OviTensor) acc = NULL;
    if (y == NULL)
      goto fail;
    ovi_op_conv_transpose1d (be, y, x, u->w, u->b, rate, pad, 1);
    {
      g_autofree char *n = g_strdup_printf ("voc.ups%u", i);
      emit (v, n, y);
    }
    for (int j = 0; j < v->n_kernels; j++) {
      g_autoptr (OviTensor) r
          = amp_run (be, &v->blocks[i * v->n_kernels + j], y);
      if (r == NULL)
        goto fail;
      if (acc == NULL)
        acc = g_steal_pointer (&r);
      else
        ovi_op_binary (be, acc, acc, r, OVI_BINARY_ADD);
    }
    ovi_op_unary (be, acc, acc, OVI_ACT_NONE, 1.0f / v->n_kernels);
    g_clear_pointer (&x, ovi_tensor_unref);
    x = g_steal_pointer (&acc);
  }
  {
    g_autoptr (OviTensor) a = aact_run (be, &v->act_post, x);
    if (a == NULL)
      goto fail;
    emit (v, "voc.activation_post", a);
    wav = conv_run (be, &v->conv_post, a, 1);
    if (wav == NULL)
      goto fail;
    ovi_op_unary (be, wav, wav, OVI_ACT_TANH, 1.0f);
  }
  if (!ovi_backend_sync (be, error)) {
    ovi_tensor_unref (wav);
    return NULL;
  }
  return wav;
fail:
  if (ovi_backend_sync (be, error))
    g_set_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                 "vocoder: out of memory");
  return NULL;
}
