/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the MMAudio 16 kHz VAE decoder, written against the op table.
 *
 * Structure as ovi/modules/mmaudio/ext/autoencoder (Decoder1D), see
 * research/ovi-architecture.md section 3.2.
 */
#include "ovi-mmaudio-vae.h"

#include <math.h>
#include <string.h>

#define MP_SILU_SCALE (1.0f / 0.596f)
#define MP_SUM_T      0.3
#define CLIP_ACT      256.0f

typedef struct {
  OviTensor *w; /* folded [cout, cin, k] */
  int cin, cout, k;
} MPConv;

typedef struct {
  int cin, cout;
  MPConv conv1, conv2;
  gboolean has_nin;
  MPConv nin;
} MPRes;

typedef struct {
  int c;
  MPConv qkv, proj;
} MPAttn;

typedef struct {
  int n_blocks;
  MPRes *blocks;
  MPAttn *attn; /* n_blocks entries or NULL */
  gboolean has_upsample;
  MPConv upsample;
} UpLevel;

struct _OviMMAudioVae {
  OviBackend *be;
  int embed_dim, data_dim;
  MPConv conv_in, conv_out;
  MPRes mid1, mid2;
  MPAttn mid_attn;
  int n_levels;
  UpLevel *up;
  OviTensor *data_mean, *data_std; /* [data_dim, 1] */
  GPtrArray *weights;
  OviAudioDebugFunc debug;
  gpointer debug_data;
};

/* MPConv1D.remove_weight_norm: each output row divided by
 * (1e-4 + |row| / sqrt(fan_in)), then by sqrt(fan_in); times `gain`. */
static gboolean
load_mpconv (OviMMAudioVae *v, OviWeightFile *wf, MPConv *c, const char *name,
             int cin, int k, float gain, GError **error)
{
  g_autoptr (OviTensor) raw = ovi_weight_file_get (wf, name, error);
  g_autoptr (OviTensor) f = NULL;

  if (raw == NULL)
    return FALSE;
  if (raw->ndim != 3 || (cin >= 0 && raw->shape[1] != cin)
      || (k >= 0 && raw->shape[2] != k)) {
    g_autofree char *s = ovi_shape_to_string (raw->ndim, raw->shape);
    g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                 "%s: tensor %s has shape %s, expected [out, %d, %d]",
                 ovi_weight_file_path (wf), name, s, cin, k);
    return FALSE;
  }
  f = ovi_tensor_to_f32 (raw, error);
  if (f == NULL)
    return FALSE;
  c->cout = f->shape[0];
  c->cin = f->shape[1];
  c->k = f->shape[2];
  {
    float *d = ovi_tensor_data (f);
    int64_t fan = (int64_t) c->cin * c->k;
    float sq = sqrtf ((float) fan);
    for (int o = 0; o < c->cout; o++) {
      float *row = d + o * fan;
      double acc = 0;
      for (int64_t i = 0; i < fan; i++)
        acc += (double) row[i] * row[i];
      float norm = (float) sqrt (acc);
      float den = 1e-4f + norm * (1.0f / sq);
      for (int64_t i = 0; i < fan; i++)
        row[i] = row[i] / den / sq * gain;
    }
  }
  c->w = ovi_backend_upload_weight (v->be, f, NULL);
  g_ptr_array_add (v->weights, c->w);
  return TRUE;
}

static gboolean
load_res (OviMMAudioVae *v, OviWeightFile *wf, MPRes *r, const char *prefix,
          int cin, GError **error)
{
  g_autofree char *c1 = g_strdup_printf ("%s.conv1.weight", prefix);
  g_autofree char *c2 = g_strdup_printf ("%s.conv2.weight", prefix);
  g_autofree char *nin = g_strdup_printf ("%s.nin_shortcut.weight", prefix);

  if (!load_mpconv (v, wf, &r->conv1, c1, cin, -1, 1.0f, error))
    return FALSE;
  r->cin = cin;
  r->cout = r->conv1.cout;
  if (!load_mpconv (v, wf, &r->conv2, c2, r->cout, -1, 1.0f, error))
    return FALSE;
  r->has_nin = r->cin != r->cout;
  if (r->has_nin && !load_mpconv (v, wf, &r->nin, nin, r->cin, 1, 1.0f, error))
    return FALSE;
  return TRUE;
}

static gboolean
load_attn (OviMMAudioVae *v, OviWeightFile *wf, MPAttn *a, const char *prefix,
           int c, GError **error)
{
  g_autofree char *q = g_strdup_printf ("%s.qkv.weight", prefix);
  g_autofree char *p = g_strdup_printf ("%s.proj_out.weight", prefix);

  a->c = c;
  if (!load_mpconv (v, wf, &a->qkv, q, c, 1, 1.0f, error)
      || !load_mpconv (v, wf, &a->proj, p, c, 1, 1.0f, error))
    return FALSE;
  if (a->qkv.cout != 3 * c || a->proj.cout != c) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                 "%s: %s gives %d channels, expected %d",
                 ovi_weight_file_path (wf), q, a->qkv.cout, 3 * c);
    return FALSE;
  }
  return TRUE;
}

void
ovi_mmaudio_vae_free (OviMMAudioVae *v)
{
  if (v == NULL)
    return;
  for (int i = 0; i < v->n_levels; i++) {
    g_free (v->up[i].blocks);
    g_free (v->up[i].attn);
  }
  g_free (v->up);
  g_ptr_array_unref (v->weights);
  g_free (v);
}

static OviTensor *
load_stat (OviMMAudioVae *v, OviWeightFile *wf, const char *name, int n,
           GError **error)
{
  g_autoptr (OviTensor) t = ovi_weight_file_get (wf, name, error);
  int64_t shape[2] = { n, 1 };

  if (t == NULL)
    return NULL;
  if (ovi_tensor_numel (t) != n) {
    g_autofree char *s = ovi_shape_to_string (t->ndim, t->shape);
    g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                 "%s: tensor %s has shape %s, expected %d values",
                 ovi_weight_file_path (wf), name, s, n);
    return NULL;
  }
  g_autoptr (OviTensor) f = ovi_tensor_to_f32 (t, error);
  if (f == NULL)
    return NULL;
  OviTensor *a = ovi_backend_new_act (v->be, 2, shape);
  if (a == NULL) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                 "audio VAE: cannot allocate %s", name);
    return NULL;
  }
  g_autoptr (OviTensor) f2 = ovi_tensor_reshape (f, 2, shape);
  ovi_op_copy (v->be, a, f2);
  g_ptr_array_add (v->weights, a);
  return a;
}

OviMMAudioVae *
ovi_mmaudio_vae_new (OviWeightFile *wf, OviBackend *be, GError **error)
{
  g_autoptr (OviMMAudioVae) v = g_new0 (OviMMAudioVae, 1);
  g_autoptr (OviTensor) gain_t = NULL;
  int width;
  float gain;

  v->be = be;
  v->weights
      = g_ptr_array_new_with_free_func ((GDestroyNotify) ovi_tensor_unref);

  if (!load_mpconv (v, wf, &v->conv_in, "decoder.conv_in.weight", -1, -1, 1.0f,
                    error))
    return NULL;
  v->embed_dim = v->conv_in.cin;
  width = v->conv_in.cout;
  if (!load_res (v, wf, &v->mid1, "decoder.mid.block_1", width, error)
      || !load_attn (v, wf, &v->mid_attn, "decoder.mid.attn_1", v->mid1.cout,
                     error)
      || !load_res (v, wf, &v->mid2, "decoder.mid.block_2", v->mid1.cout,
                    error))
    return NULL;
  width = v->mid2.cout;

  while (TRUE) {
    g_autofree char *probe
        = g_strdup_printf ("decoder.up.%d.block.0.conv1.weight", v->n_levels);
    if (!ovi_weight_file_contains (wf, probe))
      break;
    v->n_levels++;
  }
  if (v->n_levels == 0) {
    g_set_error (
        error, OVI_ERROR, OVI_ERROR_MISSING_TENSOR,
        "%s: tensor decoder.up.0.block.0.conv1.weight is missing (not an "
        "MMAudio VAE checkpoint?)",
        ovi_weight_file_path (wf));
    return NULL;
  }
  v->up = g_new0 (UpLevel, v->n_levels);
  /* run order: highest level first */
  for (int lvl = v->n_levels - 1; lvl >= 0; lvl--) {
    UpLevel *u = &v->up[lvl];
    int j;
    for (j = 0;; j++) {
      g_autofree char *probe
          = g_strdup_printf ("decoder.up.%d.block.%d.conv1.weight", lvl, j);
      if (!ovi_weight_file_contains (wf, probe))
        break;
    }
    u->n_blocks = j;
    u->blocks = g_new0 (MPRes, j);
    {
      g_autofree char *probe
          = g_strdup_printf ("decoder.up.%d.attn.0.qkv.weight", lvl);
      if (ovi_weight_file_contains (wf, probe))
        u->attn = g_new0 (MPAttn, j);
    }
    for (j = 0; j < u->n_blocks; j++) {
      g_autofree char *p = g_strdup_printf ("decoder.up.%d.block.%d", lvl, j);
      if (!load_res (v, wf, &u->blocks[j], p, width, error))
        return NULL;
      width = u->blocks[j].cout;
      if (u->attn) {
        g_autofree char *pa = g_strdup_printf ("decoder.up.%d.attn.%d", lvl, j);
        if (!load_attn (v, wf, &u->attn[j], pa, width, error))
          return NULL;
      }
    }
    g_autofree char *us
        = g_strdup_printf ("decoder.up.%d.upsample.conv.weight", lvl);
    u->has_upsample = ovi_weight_file_contains (wf, us);
    if (u->has_upsample
        && !load_mpconv (v, wf, &u->upsample, us, width, -1, 1.0f, error))
      return NULL;
  }

  gain_t = ovi_weight_file_get (wf, "decoder.learnable_gain", error);
  if (gain_t == NULL)
    return NULL;
  if (ovi_tensor_numel (gain_t) != 1) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                 "%s: decoder.learnable_gain should be a scalar",
                 ovi_weight_file_path (wf));
    return NULL;
  }
  {
    int64_t zero[OVI_MAX_DIMS] = { 0 };
    gain = (float) ovi_tensor_get_f64 (gain_t, zero) + 1.0f;
  }
  if (!load_mpconv (v, wf, &v->conv_out, "decoder.conv_out.weight", width, -1,
                    gain, error))
    return NULL;
  v->data_dim = v->conv_out.cout;
  if (!(v->data_mean = load_stat (v, wf, "data_mean", v->data_dim, error))
      || !(v->data_std = load_stat (v, wf, "data_std", v->data_dim, error)))
    return NULL;
  if (!ovi_backend_sync (be, error))
    return NULL;
  return g_steal_pointer (&v);
}

int
ovi_mmaudio_vae_embed_dim (const OviMMAudioVae *v)
{
  return v->embed_dim;
}

int
ovi_mmaudio_vae_data_dim (const OviMMAudioVae *v)
{
  return v->data_dim;
}

void
ovi_mmaudio_vae_set_debug (OviMMAudioVae *v, OviAudioDebugFunc func,
                           gpointer user_data)
{
  v->debug = func;
  v->debug_data = user_data;
}

/* ---------------------------------------------------------------------- */

static OviTensor *
mpconv_run (OviBackend *be, const MPConv *c, OviTensor *x)
{
  OviTensor *out = ovi_backend_new_act_2d (be, c->cout, x->shape[1]);

  if (out)
    ovi_op_conv1d (be, out, x, c->w, NULL, 1, c->k / 2, c->k / 2, 1, 1);
  return out;
}

static OviTensor *
pixnorm (OviBackend *be, OviTensor *x)
{
  OviTensor *y = ovi_backend_new_act_2d (be, x->shape[0], x->shape[1]);

  if (y)
    ovi_op_channel_norm (be, y, x, NULL, OVI_CHANNEL_NORM_MAGNITUDE);
  return y;
}

static OviTensor *
mp_silu (OviBackend *be, OviTensor *x)
{
  OviTensor *y = ovi_backend_new_act_2d (be, x->shape[0], x->shape[1]);

  if (y)
    ovi_op_unary (be, y, x, OVI_ACT_SILU, MP_SILU_SCALE);
  return y;
}

/* mp_sum(a, b, t) = ((1 - t) a + t b) / sqrt((1 - t)^2 + t^2), into a */
static void
mp_sum (OviBackend *be, OviTensor *a, OviTensor *b)
{
  double t = MP_SUM_T, s = sqrt ((1 - t) * (1 - t) + t * t);

  ovi_op_axpby (be, a, (float) ((1 - t) / s), a, (float) (t / s), b);
}

static OviTensor *
res_run (OviBackend *be, const MPRes *r, OviTensor *x)
{
  g_autoptr (OviTensor) xn = pixnorm (be, x);
  g_autoptr (OviTensor) a = NULL;
  g_autoptr (OviTensor) b = NULL;
  g_autoptr (OviTensor) c = NULL;
  g_autoptr (OviTensor) h = NULL;
  OviTensor *out;

  if (!xn || !(a = mp_silu (be, xn)) || !(b = mpconv_run (be, &r->conv1, a))
      || !(c = mp_silu (be, b)) || !(h = mpconv_run (be, &r->conv2, c)))
    return NULL;
  out = r->has_nin ? mpconv_run (be, &r->nin, xn) : ovi_tensor_ref (xn);
  if (out == NULL)
    return NULL;
  mp_sum (be, out, h);
  return out;
}

static OviTensor *
attn_run (OviBackend *be, const MPAttn *a, OviTensor *x)
{
  int64_t C = a->c, L = x->shape[1];
  g_autoptr (OviTensor) y = mpconv_run (be, &a->qkv, x);
  g_autoptr (OviTensor) yn = NULL;
  g_autoptr (OviTensor) qkv = NULL;
  g_autoptr (OviTensor) oc = NULL;
  OviTensor *out;
  int64_t flat[2] = { C, 3 * L };

  if (y == NULL)
    return NULL;
  /* qkv channel index c*3 + j: [C, 3, L], normalised over C */
  {
    int64_t s3[3] = { 2, L, C }, st3[3] = { L, 1, 3 * L }; /* q, k */
    g_autoptr (OviTensor) y2 = ovi_tensor_view (y, 2, flat, NULL, 0);
    yn = ovi_backend_new_act (be, 2, flat);
    qkv = ovi_backend_new_act (be, 3, s3);
    if (yn == NULL || qkv == NULL)
      return NULL;
    ovi_op_channel_norm (be, yn, y2, NULL, OVI_CHANNEL_NORM_MAGNITUDE);
    g_autoptr (OviTensor) ynp = ovi_tensor_view (yn, 3, s3, st3, 0);
    ovi_op_copy (be, qkv, ynp);
  }
  /* softmax(q k^T / sqrt(C)) v as two matmuls: the single head is
   * C = 4 x hidden wide (1536 in the release model), wider than fused
   * attention kernels take, and L (2 x 157 or 314 frames) is short */
  {
    int64_t lc[2] = { L, C }, cl[2] = { C, L }, vst[2] = { 3 * L, 1 };
    int64_t tst[2] = { 1, C };
    g_autoptr (OviTensor) q = ovi_tensor_view (qkv, 2, lc, NULL, 0);
    g_autoptr (OviTensor) k = ovi_tensor_view (qkv, 2, lc, NULL, L * C);
    g_autoptr (OviTensor) vt_src = ovi_tensor_view (yn, 2, cl, vst, 2 * L);
    g_autoptr (OviTensor) scores = ovi_backend_new_act_2d (be, L, L);
    g_autoptr (OviTensor) probs = ovi_backend_new_act_2d (be, L, L);
    g_autoptr (OviTensor) vt = ovi_backend_new_act_2d (be, C, L);
    g_autoptr (OviTensor) ol = ovi_backend_new_act_2d (be, L, C);
    oc = ovi_backend_new_act_2d (be, C, L);
    if (!scores || !probs || !vt || !ol || !oc)
      return NULL;
    ovi_op_matmul (be, scores, q, k, NULL, OVI_ACT_NONE);
    ovi_op_unary (be, scores, scores, OVI_ACT_NONE, 1.0f / sqrtf ((float) C));
    ovi_op_softmax (be, probs, scores);
    ovi_op_copy (be, vt, vt_src);
    ovi_op_matmul (be, ol, probs, vt, NULL, OVI_ACT_NONE);
    g_autoptr (OviTensor) olt = ovi_tensor_view (ol, 2, cl, tst, 0);
    ovi_op_copy (be, oc, olt);
  }
  out = mpconv_run (be, &a->proj, oc);
  if (out == NULL)
    return NULL;
  /* mp_sum(x, h): result into out */
  {
    double t = MP_SUM_T, s = sqrt ((1 - t) * (1 - t) + t * t);
    ovi_op_axpby (be, out, (float) ((1 - t) / s), x, (float) (t / s), out);
  }
  return out;
}

#define STEP(expr)                                                             \
  do {                                                                         \
    OviTensor *n_ = (expr);                                                    \
    g_clear_pointer (&h, ovi_tensor_unref);                                    \
    if (n_ == NULL)                                                            \
      goto fail;                                                               \
    h = n_;                                                                    \
  } while (0)

OviTensor *
ovi_mmaudio_vae_decode (OviMMAudioVae *v, const OviTensor *z, GError **error)
{
  OviBackend *be = v->be;
  g_autoptr (OviTensor) h = NULL;
  OviTensor *mel;

  if (z->ndim != 2 || z->shape[0] != v->embed_dim || z->shape[1] < 1) {
    g_autofree char *s = ovi_shape_to_string (z->ndim, z->shape);
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "audio VAE decode: latent has shape %s, expected [%d, L]", s,
                 v->embed_dim);
    return NULL;
  }
  h = ovi_backend_new_act_2d (be, z->shape[0], z->shape[1]);
  if (h == NULL)
    goto fail;
  ovi_op_copy (be, h, z);
  STEP (mpconv_run (be, &v->conv_in, h));
  STEP (res_run (be, &v->mid1, h));
  STEP (attn_run (be, &v->mid_attn, h));
  STEP (res_run (be, &v->mid2, h));
  ovi_op_clamp (be, h, h, -CLIP_ACT, CLIP_ACT);
  for (int lvl = v->n_levels - 1; lvl >= 0; lvl--) {
    const UpLevel *u = &v->up[lvl];
    for (int j = 0; j < u->n_blocks; j++) {
      STEP (res_run (be, &u->blocks[j], h));
      if (u->attn)
        STEP (attn_run (be, &u->attn[j], h));
      ovi_op_clamp (be, h, h, -CLIP_ACT, CLIP_ACT);
    }
    if (u->has_upsample) {
      int factor = 2;
      OviTensor *up = ovi_backend_new_act_2d (be, h->shape[0], h->shape[1] * 2);
      if (up == NULL)
        goto fail;
      ovi_op_upsample_nearest (be, up, h, 1, &factor);
      g_clear_pointer (&h, ovi_tensor_unref);
      h = up;
      STEP (mpconv_run (be, &u->upsample, h));
    }
  }
  STEP (mp_silu (be, h));
  STEP (mpconv_run (be, &v->conv_out, h));
  if (v->debug)
    v->debug ("decoder_out_normalized", h, v->debug_data);
  mel = ovi_backend_new_act_2d (be, h->shape[0], h->shape[1]);
  if (mel == NULL)
    goto fail;
  ovi_op_binary (be, mel, h, v->data_std, OVI_BINARY_MUL);
  ovi_op_binary (be, mel, mel, v->data_mean, OVI_BINARY_ADD);
  if (!ovi_backend_sync (be, error)) {
    ovi_tensor_unref (mel);
    return NULL;
  }
  return mel;
fail:
  if (ovi_backend_sync (be, error))
    g_set_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                 "audio VAE decode: out of memory");
  return NULL;
}
