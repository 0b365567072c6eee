/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the Wan2.2 video VAE, written against the op table.
 *
 * Layout and caching follow ovi/modules/vae2_2.py (WanVAE_), see
 * research/ovi-architecture.md section 2. Tensors are [C, T, H, W].
 */
#include "ovi-wan-vae.h"

#include <math.h>
#include <string.h>

#define WAN_Z_DIM 48

/* Wan2_2_VAE.scale: the per-channel latent statistics (Appendix A). */
static const float latent_mean[WAN_Z_DIM] = {
  -0.2289f, -0.0052f, -0.1323f, -0.2339f, -0.2799f, 0.0174f,  0.1838f,
  0.1557f,  -0.1382f, 0.0542f,  0.2813f,  0.0891f,  0.1570f,  -0.0098f,
  0.0375f,  -0.1825f, -0.2246f, -0.1207f, -0.0698f, 0.5109f,  0.2665f,
  -0.2108f, -0.2158f, 0.2502f,  -0.2055f, -0.0322f, 0.1109f,  0.1567f,
  -0.0729f, 0.0899f,  -0.2799f, -0.1230f, -0.0313f, -0.1649f, 0.0117f,
  0.0723f,  -0.2839f, -0.2083f, -0.0520f, 0.3748f,  0.0152f,  0.1957f,
  0.1433f,  -0.2944f, 0.3573f,  -0.0548f, -0.1681f, -0.0667f,
};

static const float latent_std[WAN_Z_DIM] = {
  0.4765f, 1.0364f, 0.4514f, 1.1677f, 0.5313f, 0.4990f, 0.4818f, 0.5013f,
  0.8158f, 1.0344f, 0.5894f, 1.0901f, 0.6885f, 0.6165f, 0.8454f, 0.4978f,
  0.5759f, 0.3523f, 0.7135f, 0.6804f, 0.5833f, 1.4146f, 0.8986f, 0.5659f,
  0.7069f, 0.5338f, 0.4889f, 0.4917f, 0.4069f, 0.4999f, 0.6866f, 0.4093f,
  0.5709f, 0.6065f, 0.6415f, 0.4944f, 0.5726f, 1.2042f, 0.5458f, 1.6887f,
  0.3971f, 1.0600f, 0.3943f, 0.5537f, 0.5444f, 0.4089f, 0.7468f, 0.7744f,
};

typedef struct {
  OviTensor *w; /* [Co, Ci, kt, kh, kw]; 2-D convs with kt = 1 */
  OviTensor *b; /* [Co] */
  int cin, cout, kt, kh, kw;
} VaeConv;

/* A causal conv with a temporal kernel: `index` is its slot in a VaeState. */
typedef struct {
  VaeConv conv;
  int index;
  int spatial_pad;
} CausalConv;

typedef struct {
  int cin, cout;
  OviTensor *gamma0, *gamma1; /* residual.0 / residual.3, [C] */
  CausalConv conv0, conv1;    /* residual.2 / residual.6 */
  gboolean has_shortcut;
  VaeConv shortcut; /* 1x1x1 */
} ResBlock;

typedef struct {
  int c;
  OviTensor *gamma;           /* [C] */
  OviTensor *qkv_w, *qkv_b;   /* [3C, C], [3C] */
  OviTensor *proj_w, *proj_b; /* [C, C], [C] */
} AttnBlock;

typedef enum {
  RS_NONE,
  RS_UP2D,
  RS_UP3D,
  RS_DOWN2D,
  RS_DOWN3D,
} ResampleMode;

typedef struct {
  ResampleMode mode;
  VaeConv spatial; /* resample.1 */
  VaeConv time_conv;
  int index; /* state slot of the time conv */
} Resample;

typedef struct {
  int n_res;
  ResBlock *res;
  Resample rs;
  int in_dim, out_dim;
  gboolean has_shortcut; /* DupUp3D (decoder) / AvgDown3D (encoder) */
  int ft, fs;
} Stage;

typedef struct {
  gboolean loaded;
  gboolean is_decoder;
  CausalConv conv1;
  int n_stages;
  Stage *stages;
  ResBlock mid0, mid2;
  AttnBlock attn;
  OviTensor *head_gamma;
  CausalConv head;
  int n_slots; /* state slots */
} Coder;

/* Causal state of one pass (one clip, one tile): a 2-frame input cache per
 * temporal conv, and the first-chunk flag of the temporal resamplers. */
typedef struct {
  int n;
  OviTensor **cache;
  gboolean *started;
} VaeState;

struct _OviWanVae {
  OviBackend *be;
  int z_dim;
  Coder enc, dec;
  VaeConv conv1, conv2; /* top-level 1x1x1 (encoder side / decoder side) */
  gboolean has_encoder;
  OviTensor *mean, *inv_std; /* [z, 1, 1, 1] act */
  GPtrArray *pool;           /* OviStorage*, free when only the pool holds it */
  GPtrArray *weights;        /* OviTensor* owned */
  GMutex pool_lock;          /* decodes and encodes may run concurrently */
  OviWanVaeDebugFunc debug;
  gpointer debug_data;
  int tile, tile_overlap;
};

/* ---------------------------------------------------------------------- */
/* memory */

static OviTensor *
act (OviWanVae *v, int ndim, const int64_t *shape)
{
  OviBackend *be = v->be;
  OviStorage *best = NULL;
  OviTensor *t;
  int64_t numel = 1;
  gsize need;

  for (int i = 0; i < ndim; i++)
    numel *= shape[i];
  need = MAX (1, numel) * ovi_dtype_size (ovi_backend_get_act_dtype (be));
  /* a storage only the pool holds is free; it is taken (ref'd by the new
   * tensor) under the lock, so two threads never get the same one */
  g_mutex_lock (&v->pool_lock);
  for (guint i = 0; i < v->pool->len; i++) {
    OviStorage *s = g_ptr_array_index (v->pool, i);
    if (g_atomic_int_get (&s->ref_count) == 1 && s->size >= need
        && (best == NULL || s->size < best->size))
      best = s;
  }
  if (best == NULL) {
    GError *error = NULL;
    best = ovi_backend_new_storage (be, need, &error);
    if (best == NULL) {
      g_mutex_unlock (&v->pool_lock);
      ovi_backend_set_error (be, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                             "Wan VAE: cannot allocate %" G_GSIZE_FORMAT
                             " bytes: %s",
                             need, error ? error->message : "?");
      g_clear_error (&error);
      return NULL;
    }
    g_ptr_array_add (v->pool, best);
  }
  t = ovi_tensor_new_on_storage (best, 0, ovi_backend_get_act_dtype (be), ndim,
                                 shape, NULL);
  g_mutex_unlock (&v->pool_lock);
  return t;
}

static OviTensor *
act4 (OviWanVae *v, int64_t c, int64_t t, int64_t h, int64_t w)
{
  int64_t shape[4] = { c, t, h, w };
  return act (v, 4, shape);
}

gsize
ovi_wan_vae_pool_bytes (const OviWanVae *v)
{
  OviWanVae *mv = (OviWanVae *) v;
  gsize n = 0;

  g_mutex_lock (&mv->pool_lock);
  for (guint i = 0; i < v->pool->len; i++)
    n += ((OviStorage *) g_ptr_array_index (v->pool, i))->size;
  g_mutex_unlock (&mv->pool_lock);
  return n;
}

/* dst may be a strided view: copies contiguous pieces. */
static void
copy_into (OviBackend *be, OviTensor *dst, OviTensor *src)
{
  if (ovi_tensor_is_contiguous (dst) || dst->ndim == 0) {
    ovi_op_copy (be, dst, src);
    return;
  }
  for (int64_t i = 0; i < dst->shape[0]; i++) {
    g_autoptr (OviTensor) d = ovi_tensor_select (dst, 0, i);
    g_autoptr (OviTensor) s = ovi_tensor_select (src, 0, i);
    copy_into (be, d, s);
  }
}

/* [C, ...] contiguous -> [C, N] */
static OviTensor *
flat2 (OviTensor *t)
{
  int64_t shape[2] = { t->shape[0], ovi_tensor_numel (t) / t->shape[0] };
  return ovi_tensor_reshape (t, 2, shape);
}

/* ---------------------------------------------------------------------- */
/* loading */

typedef struct {
  OviWanVae *v;
  OviWeightFile *wf;
} Loader;

static OviTensor *
load_tensor (Loader *l, const char *name, int ndim, const int64_t *shape,
             GError **error)
{
  g_autoptr (OviTensor) t = NULL;
  OviTensor *u;

  if (shape)
    t = ovi_weight_file_get_shaped (l->wf, name, ndim, shape, error);
  else
    t = ovi_weight_file_get (l->wf, name, error);
  if (t == NULL)
    return NULL;
  u = ovi_backend_upload_weight (l->v->be, t, NULL);
  if (u == NULL) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND,
                 "%s: cannot upload tensor %s", ovi_weight_file_path (l->wf),
                 name);
    return NULL;
  }
  g_ptr_array_add (l->v->weights, u);
  return u;
}

/* a gain or gamma of any [C, 1, ...] shape as a [C] view */
static OviTensor *
load_vector (Loader *l, const char *name, int64_t c, GError **error)
{
  g_autoptr (OviTensor) t = ovi_weight_file_get (l->wf, name, error);
  OviTensor *u;
  int64_t shape[1] = { c };

  if (t == NULL)
    return NULL;
  if (t->shape[0] != c || ovi_tensor_numel (t) != c
      || !ovi_tensor_is_contiguous (t)) {
    g_autofree char *s = ovi_shape_to_string (t->ndim, t->shape);
    g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                 "%s: tensor %s has shape %s, expected [%" G_GINT64_FORMAT
                 ", 1, ...]",
                 ovi_weight_file_path (l->wf), name, s, c);
    return NULL;
  }
  g_autoptr (OviTensor) flat = ovi_tensor_reshape (t, 1, shape);
  u = ovi_backend_upload_weight (l->v->be, flat, NULL);
  g_ptr_array_add (l->v->weights, u);
  return u;
}

/* `prefix`.weight / .bias; kernel (kt, kh, kw), 2-D when is2d (kt = 1).
 * cin < 0: any. */
static gboolean
load_conv (Loader *l, VaeConv *c, const char *prefix, int kt, int kh, int kw,
           gboolean is2d, int cin, GError **error)
{
  g_autofree char *wname = g_strdup_printf ("%s.weight", prefix);
  g_autofree char *bname = g_strdup_printf ("%s.bias", prefix);
  g_autoptr (OviTensor) w = ovi_weight_file_get (l->wf, wname, error);
  int ndim = is2d ? 4 : 5;

  if (w == NULL)
    return FALSE;
  if (w->ndim != ndim || w->shape[ndim - 1] != kw || w->shape[ndim - 2] != kh
      || (!is2d && w->shape[2] != kt) || (cin >= 0 && w->shape[1] != cin)
      || !ovi_tensor_is_contiguous (w)) {
    g_autofree char *s = ovi_shape_to_string (w->ndim, w->shape);
    g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                 "%s: tensor %s has shape %s, expected [out, %d, %s%d, %d]",
                 ovi_weight_file_path (l->wf), wname, s, cin, is2d ? "" : "3, ",
                 kh, kw);
    return FALSE;
  }
  c->cout = w->shape[0];
  c->cin = w->shape[1];
  c->kt = is2d ? 1 : kt;
  c->kh = kh;
  c->kw = kw;
  int64_t shape5[5] = { c->cout, c->cin, c->kt, kh, kw };
  g_autoptr (OviTensor) w5 = ovi_tensor_reshape (w, 5, shape5);
  /* in the activation dtype once here, not per chunk in every conv */
  c->w = ovi_backend_upload_act (l->v->be, w5);
  g_ptr_array_add (l->v->weights, c->w);
  int64_t bshape[1] = { c->cout };
  c->b = load_tensor (l, bname, 1, bshape, error);
  return c->b != NULL;
}

static gboolean
load_causal (Loader *l, Coder *cd, CausalConv *cc, const char *prefix, int k,
             int cin, GError **error)
{
  if (!load_conv (l, &cc->conv, prefix, k, k, k, FALSE, cin, error))
    return FALSE;
  cc->spatial_pad = k / 2;
  cc->index = cd->n_slots++;
  return TRUE;
}

static gboolean
load_res (Loader *l, Coder *cd, ResBlock *rb, const char *prefix,
          GError **error)
{
  g_autofree char *g0 = g_strdup_printf ("%s.residual.0.gamma", prefix);
  g_autofree char *c0 = g_strdup_printf ("%s.residual.2", prefix);
  g_autofree char *g1 = g_strdup_printf ("%s.residual.3.gamma", prefix);
  g_autofree char *c1 = g_strdup_printf ("%s.residual.6", prefix);
  g_autofree char *sc = g_strdup_printf ("%s.shortcut", prefix);
  g_autofree char *scw = g_strdup_printf ("%s.shortcut.weight", prefix);
  g_autoptr (OviTensor) g0t = ovi_weight_file_get (l->wf, g0, error);

  if (g0t == NULL)
    return FALSE;
  rb->cin = g0t->shape[0];
  if (!(rb->gamma0 = load_vector (l, g0, rb->cin, error)))
    return FALSE;
  if (!load_causal (l, cd, &rb->conv0, c0, 3, rb->cin, error))
    return FALSE;
  rb->cout = rb->conv0.conv.cout;
  if (!(rb->gamma1 = load_vector (l, g1, rb->cout, error)))
    return FALSE;
  if (!load_causal (l, cd, &rb->conv1, c1, 3, rb->cout, error))
    return FALSE;
  rb->has_shortcut = ovi_weight_file_contains (l->wf, scw);
  if (rb->has_shortcut) {
    if (!load_conv (l, &rb->shortcut, sc, 1, 1, 1, FALSE, rb->cin, error))
      return FALSE;
  } else if (rb->cin != rb->cout) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_MISSING_TENSOR,
                 "%s: tensor %s is missing (block %d -> %d channels)",
                 ovi_weight_file_path (l->wf), scw, rb->cin, rb->cout);
    return FALSE;
  }
  return TRUE;
}

static gboolean
load_attn (Loader *l, AttnBlock *a, const char *prefix, int c, GError **error)
{
  g_autofree char *gn = g_strdup_printf ("%s.norm.gamma", prefix);
  g_autofree char *qw = g_strdup_printf ("%s.to_qkv.weight", prefix);
  g_autofree char *qb = g_strdup_printf ("%s.to_qkv.bias", prefix);
  g_autofree char *pw = g_strdup_printf ("%s.proj.weight", prefix);
  g_autofree char *pb = g_strdup_printf ("%s.proj.bias", prefix);
  int64_t qkv_shape[4] = { 3 * c, c, 1, 1 }, proj_shape[4] = { c, c, 1, 1 };
  int64_t b3[1] = { 3 * c }, b1[1] = { c };
  int64_t q2[2] = { 3 * c, c }, p2[2] = { c, c };

  a->c = c;
  if (!(a->gamma = load_vector (l, gn, c, error)))
    return FALSE;
  g_autoptr (OviTensor) qt
      = ovi_weight_file_get_shaped (l->wf, qw, 4, qkv_shape, error);
  if (qt == NULL)
    return FALSE;
  g_autoptr (OviTensor) q2t = ovi_tensor_reshape (qt, 2, q2);
  a->qkv_w = ovi_backend_upload_act (l->v->be, q2t);
  g_ptr_array_add (l->v->weights, a->qkv_w);
  g_autoptr (OviTensor) pt
      = ovi_weight_file_get_shaped (l->wf, pw, 4, proj_shape, error);
  if (pt == NULL)
    return FALSE;
  g_autoptr (OviTensor) p2t = ovi_tensor_reshape (pt, 2, p2);
  a->proj_w = ovi_backend_upload_act (l->v->be, p2t);
  g_ptr_array_add (l->v->weights, a->proj_w);
  if (!(a->qkv_b = load_tensor (l, qb, 1, b3, error)))
    return FALSE;
  if (!(a->proj_b = load_tensor (l, pb, 1, b1, error)))
    return FALSE;
  return TRUE;
}

/* the middle blocks, res - attention - res, of encoder.* or decoder.*
 * (`root`): the decoder's come before its stages, the encoder's after */
static gboolean
load_middle (Loader *l, Coder *cd, const char *root, GError **error)
{
  g_autofree char *m0 = g_strdup_printf ("%s.middle.0", root);
  g_autofree char *m1 = g_strdup_printf ("%s.middle.1", root);
  g_autofree char *m2 = g_strdup_printf ("%s.middle.2", root);

  return load_res (l, cd, &cd->mid0, m0, error)
         && load_attn (l, &cd->attn, m1, cd->mid0.cout, error)
         && load_res (l, cd, &cd->mid2, m2, error);
}

/* encoder.* or decoder.*: stages discovered from the names present */
static gboolean
load_coder (Loader *l, Coder *cd, gboolean is_decoder, GError **error)
{
  const char *root = is_decoder ? "decoder" : "encoder";
  const char *stages = is_decoder ? "upsamples" : "downsamples";
  g_autofree char *name = NULL;
  int width;

  cd->is_decoder = is_decoder;
  name = g_strdup_printf ("%s.conv1", root);
  if (!load_causal (l, cd, &cd->conv1, name, 3, -1, error))
    return FALSE;
  width = cd->conv1.conv.cout;

  /* decoder: middle first; encoder: stages first (order of the slots is
   * irrelevant, each conv owns its slot) */
  for (;;) {
    g_autofree char *probe = g_strdup_printf (
        "%s.%s.%d.%s.0.residual.0.gamma", root, stages, cd->n_stages, stages);
    if (!ovi_weight_file_contains (l->wf, probe))
      break;
    cd->n_stages++;
  }
  if (cd->n_stages == 0) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_MISSING_TENSOR,
                 "%s: no %s.%s.0.* tensors (not a Wan2.2 VAE checkpoint?)",
                 ovi_weight_file_path (l->wf), root, stages);
    return FALSE;
  }
  cd->stages = g_new0 (Stage, cd->n_stages);

  if (is_decoder) {
    if (!load_middle (l, cd, root, error))
      return FALSE;
    width = cd->mid2.cout;
  }

  for (int s = 0; s < cd->n_stages; s++) {
    Stage *st = &cd->stages[s];
    int j;

    for (j = 0;; j++) {
      g_autofree char *probe = g_strdup_printf (
          "%s.%s.%d.%s.%d.residual.0.gamma", root, stages, s, stages, j);
      if (!ovi_weight_file_contains (l->wf, probe))
        break;
    }
    st->n_res = j;
    st->res = g_new0 (ResBlock, j);
    for (j = 0; j < st->n_res; j++) {
      g_autofree char *p
          = g_strdup_printf ("%s.%s.%d.%s.%d", root, stages, s, stages, j);
      if (!load_res (l, cd, &st->res[j], p, error))
        return FALSE;
    }
    st->in_dim = st->res[0].cin;
    st->out_dim = st->res[st->n_res - 1].cout;
    if (st->in_dim != width) {
      g_set_error (
          error, OVI_ERROR, OVI_ERROR_SHAPE,
          "%s: %s stage %d takes %d channels, the layer before gives %d",
          ovi_weight_file_path (l->wf), root, s, st->in_dim, width);
      return FALSE;
    }
    width = st->out_dim;

    g_autofree char *rs = g_strdup_printf ("%s.%s.%d.%s.%d.resample.1", root,
                                           stages, s, stages, st->n_res);
    g_autofree char *rsw = g_strdup_printf ("%s.weight", rs);
    g_autofree char *tc = g_strdup_printf ("%s.%s.%d.%s.%d.time_conv", root,
                                           stages, s, stages, st->n_res);
    g_autofree char *tcw = g_strdup_printf ("%s.weight", tc);
    st->rs.mode = RS_NONE;
    if (ovi_weight_file_contains (l->wf, rsw)) {
      gboolean t3 = ovi_weight_file_contains (l->wf, tcw);
      if (!load_conv (l, &st->rs.spatial, rs, 1, 3, 3, TRUE, width, error))
        return FALSE;
      if (t3) {
        if (!load_conv (l, &st->rs.time_conv, tc, 3, 1, 1, FALSE, width, error))
          return FALSE;
        if (st->rs.time_conv.cout != (is_decoder ? 2 : 1) * width) {
          g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                       "%s: %s has %d output channels, expected %d",
                       ovi_weight_file_path (l->wf), tcw, st->rs.time_conv.cout,
                       (is_decoder ? 2 : 1) * width);
          return FALSE;
        }
        st->rs.index = cd->n_slots++;
      }
      if (is_decoder)
        st->rs.mode = t3 ? RS_UP3D : RS_UP2D;
      else
        st->rs.mode = t3 ? RS_DOWN3D : RS_DOWN2D;
    }
    st->ft = (st->rs.mode == RS_UP3D || st->rs.mode == RS_DOWN3D) ? 2 : 1;
    st->fs = st->rs.mode != RS_NONE ? 2 : 1;
    /* decoder: DupUp3D only around stages that upsample; encoder: AvgDown3D
     * around every stage */
    st->has_shortcut = is_decoder ? st->rs.mode != RS_NONE : TRUE;
    int factor = st->ft * st->fs * st->fs;
    if (st->has_shortcut
        && (is_decoder ? (st->out_dim * factor) % st->in_dim != 0
                       : (st->in_dim * factor) % st->out_dim != 0)) {
      g_set_error (
          error, OVI_ERROR, OVI_ERROR_SHAPE,
          "%s: %s stage %d: %d -> %d channels cannot use a %s shortcut",
          ovi_weight_file_path (l->wf), root, s, st->in_dim, st->out_dim,
          is_decoder ? "DupUp3D" : "AvgDown3D");
      return FALSE;
    }
  }

  if (!is_decoder) {
    if (!load_middle (l, cd, root, error))
      return FALSE;
    width = cd->mid2.cout;
  }

  g_autofree char *hg = g_strdup_printf ("%s.head.0.gamma", root);
  g_autofree char *hc = g_strdup_printf ("%s.head.2", root);
  if (!(cd->head_gamma = load_vector (l, hg, width, error)))
    return FALSE;
  if (!load_causal (l, cd, &cd->head, hc, 3, width, error))
    return FALSE;
  cd->loaded = TRUE;
  return TRUE;
}

static void
coder_clear (Coder *cd)
{
  for (int s = 0; s < cd->n_stages; s++)
    g_free (cd->stages[s].res);
  g_free (cd->stages);
}

void
ovi_wan_vae_free (OviWanVae *v)
{
  if (v == NULL)
    return;
  coder_clear (&v->enc);
  coder_clear (&v->dec);
  g_clear_pointer (&v->mean, ovi_tensor_unref);
  g_clear_pointer (&v->inv_std, ovi_tensor_unref);
  g_ptr_array_unref (v->weights);
  g_ptr_array_unref (v->pool);
  g_mutex_clear (&v->pool_lock);
  g_free (v);
}

OviWanVae *
ovi_wan_vae_new (OviWeightFile *wf, OviBackend *be, gboolean need_encoder,
                 GError **error)
{
  g_autoptr (OviWanVae) v = g_new0 (OviWanVae, 1);
  Loader l = { v, wf };
  int64_t stat_shape[4] = { WAN_Z_DIM, 1, 1, 1 };
  float inv[WAN_Z_DIM];

  v->be = be;
  v->pool = g_ptr_array_new_with_free_func ((GDestroyNotify) ovi_storage_unref);
  g_mutex_init (&v->pool_lock);
  v->weights
      = g_ptr_array_new_with_free_func ((GDestroyNotify) ovi_tensor_unref);

  if (!load_conv (&l, &v->conv2, "conv2", 1, 1, 1, FALSE, -1, error))
    return NULL;
  v->z_dim = v->conv2.cout;
  if (v->z_dim != WAN_Z_DIM || v->conv2.cin != WAN_Z_DIM) {
    g_set_error (
        error, OVI_ERROR, OVI_ERROR_SHAPE,
        "%s: conv2.weight maps %d -> %d channels; the Wan2.2 VAE latent has "
        "%d (its statistics table has 48 entries)",
        ovi_weight_file_path (wf), v->conv2.cin, v->conv2.cout, WAN_Z_DIM);
    return NULL;
  }
  if (!load_coder (&l, &v->dec, TRUE, error))
    return NULL;
  if (v->dec.conv1.conv.cin != v->z_dim || v->dec.head.conv.cout != 12) {
    g_set_error (
        error, OVI_ERROR, OVI_ERROR_SHAPE,
        "%s: decoder.conv1 takes %d channels (expected %d) and decoder.head.2 "
        "gives %d (expected 12 = 3 x 2 x 2)",
        ovi_weight_file_path (wf), v->dec.conv1.conv.cin, v->z_dim,
        v->dec.head.conv.cout);
    return NULL;
  }
  if (need_encoder && !ovi_wan_vae_load_encoder (v, wf, error))
    return NULL;

  g_autoptr (OviTensor) mean
      = ovi_tensor_new (OVI_DTYPE_F32, 4, stat_shape, error);
  g_autoptr (OviTensor) istd
      = ovi_tensor_new (OVI_DTYPE_F32, 4, stat_shape, error);
  if (mean == NULL || istd == NULL)
    return NULL;
  for (int i = 0; i < WAN_Z_DIM; i++)
    inv[i] = 1.0f / latent_std[i]; /* as torch: 1.0 / std in fp32 */
  memcpy (ovi_tensor_data (mean), latent_mean, sizeof (latent_mean));
  memcpy (ovi_tensor_data (istd), inv, sizeof (inv));
  v->mean = ovi_backend_new_act (be, 4, stat_shape);
  v->inv_std = ovi_backend_new_act (be, 4, stat_shape);
  if (v->mean == NULL || v->inv_std == NULL)
    return NULL;
  ovi_op_copy (be, v->mean, mean);
  ovi_op_copy (be, v->inv_std, istd);
  if (!ovi_backend_sync (be, error))
    return NULL;
  return g_steal_pointer (&v);
}

gboolean
ovi_wan_vae_load_encoder (OviWanVae *v, OviWeightFile *wf, GError **error)
{
  Loader l = { v, wf };

  if (v->has_encoder)
    return TRUE;
  if (!load_conv (&l, &v->conv1, "conv1", 1, 1, 1, FALSE, 2 * v->z_dim, error)
      || !load_coder (&l, &v->enc, FALSE, error))
    goto fail;
  if (v->enc.conv1.conv.cin != 12 || v->enc.head.conv.cout != 2 * v->z_dim
      || v->conv1.cout != 2 * v->z_dim) {
    g_set_error (
        error, OVI_ERROR, OVI_ERROR_SHAPE,
        "%s: encoder.conv1 takes %d channels (expected 12), encoder.head.2 "
        "and conv1 give %d / %d (expected %d)",
        ovi_weight_file_path (wf), v->enc.conv1.conv.cin, v->enc.head.conv.cout,
        v->conv1.cout, 2 * v->z_dim);
    goto fail;
  }
  v->has_encoder = TRUE;
  return TRUE;
fail:
  /* tensors already loaded stay in v->weights until the VAE is freed */
  coder_clear (&v->enc);
  memset (&v->enc, 0, sizeof (v->enc));
  memset (&v->conv1, 0, sizeof (v->conv1));
  return FALSE;
}

int
ovi_wan_vae_z_dim (const OviWanVae *v)
{
  return v->z_dim;
}

const float *
ovi_wan_vae_latent_mean (void)
{
  return latent_mean;
}

const float *
ovi_wan_vae_latent_std (void)
{
  return latent_std;
}

void
ovi_wan_vae_set_debug (OviWanVae *v, OviWanVaeDebugFunc func,
                       gpointer user_data)
{
  v->debug = func;
  v->debug_data = user_data;
}

void
ovi_wan_vae_set_tiling (OviWanVae *v, int tile, int overlap)
{
  v->tile = MAX (0, tile);
  v->tile_overlap = CLAMP (overlap, 0, MAX (0, tile - 1));
}

/* ---------------------------------------------------------------------- */
/* forward */

static VaeState *
state_new (int n)
{
  VaeState *s = g_new0 (VaeState, 1);

  s->n = n;
  s->cache = g_new0 (OviTensor *, n);
  s->started = g_new0 (gboolean, n);
  return s;
}

static void
state_free (VaeState *s)
{
  if (s == NULL)
    return;
  for (int i = 0; i < s->n; i++)
    g_clear_pointer (&s->cache[i], ovi_tensor_unref);
  g_free (s->cache);
  g_free (s->started);
  g_free (s);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VaeState, state_free)

/* out = conv3d(x) with the given stride and padding */
static OviTensor *
conv_run (OviWanVae *v, const VaeConv *c, OviTensor *x, const int stride[3],
          const int pad[6])
{
  int64_t to = (x->shape[1] + pad[0] + pad[1] - c->kt) / stride[0] + 1;
  int64_t ho = (x->shape[2] + pad[2] + pad[3] - c->kh) / stride[1] + 1;
  int64_t wo = (x->shape[3] + pad[4] + pad[5] - c->kw) / stride[2] + 1;
  OviTensor *out = act4 (v, c->cout, to, ho, wo);

  if (out)
    ovi_op_conv3d (v->be, out, x, c->w, c->b, stride, pad);
  return out;
}

static OviTensor *
conv_1x1 (OviWanVae *v, const VaeConv *c, OviTensor *x)
{
  static const int stride[3] = { 1, 1, 1 }, pad[6] = { 0 };
  return conv_run (v, c, x, stride, pad);
}

/* a persistent zeroed [C, n, H, W] cache tensor */
static OviTensor *
cache_get (OviWanVae *v, VaeState *s, int index, int64_t c, int64_t n,
           int64_t h, int64_t w)
{
  int64_t shape[4] = { c, n, h, w };

  if (s->cache[index] && !ovi_tensor_has_shape (s->cache[index], 4, shape))
    g_clear_pointer (&s->cache[index], ovi_tensor_unref);
  if (s->cache[index] == NULL) {
    s->cache[index] = ovi_backend_new_act (v->be, 4, shape);
    if (s->cache[index] == NULL)
      return NULL;
    ovi_op_fill (v->be, s->cache[index], 0.0f);
  }
  return s->cache[index];
}

/* A causal conv with a 3-frame temporal kernel: the 2 cached input frames
 * (zeros before the first chunk) stand in for the front padding; the last 2
 * frames of [cache, x] become the new cache. */
static OviTensor *
causal_run (OviWanVae *v, VaeState *s, const VaeConv *c, int index,
            int spatial_pad, OviTensor *x, gboolean consume)
{
  static const int stride[3] = { 1, 1, 1 };
  int pad[6] = { 0, 0, spatial_pad, spatial_pad, spatial_pad, spatial_pad };
  int64_t C = x->shape[0], T = x->shape[1], H = x->shape[2], W = x->shape[3];
  OviTensor *cache = cache_get (v, s, index, C, 2, H, W);
  g_autoptr (OviTensor) xin = act4 (v, C, T + 2, H, W);

  if (cache == NULL || xin == NULL) {
    if (consume)
      ovi_tensor_unref (x);
    return NULL;
  }
  {
    g_autoptr (OviTensor) head = ovi_tensor_narrow (xin, 1, 0, 2);
    g_autoptr (OviTensor) body = ovi_tensor_narrow (xin, 1, 2, T);
    g_autoptr (OviTensor) tail = ovi_tensor_narrow (xin, 1, T, 2);
    copy_into (v->be, head, cache);
    copy_into (v->be, body, x);
    if (consume) /* the caller handed x over: free it before the conv */
      ovi_tensor_unref (x);
    OviTensor *out = conv_run (v, c, xin, stride, pad);
    ovi_op_copy (v->be, cache, tail);
    return out;
  }
}

static OviTensor *
cconv (OviWanVae *v, VaeState *s, const CausalConv *cc, OviTensor *x)
{
  return causal_run (v, s, &cc->conv, cc->index, cc->spatial_pad, x, FALSE);
}

/* as cconv, taking over the caller's reference to x */
static OviTensor *
cconv_consume (OviWanVae *v, VaeState *s, const CausalConv *cc, OviTensor *x)
{
  return causal_run (v, s, &cc->conv, cc->index, cc->spatial_pad, x, TRUE);
}

/* RMS_norm over channels, then SiLU */
static OviTensor *
norm_silu (OviWanVae *v, OviTensor *x, OviTensor *gamma)
{
  OviTensor *y = act (v, x->ndim, x->shape);

  if (y == NULL)
    return NULL;
  g_autoptr (OviTensor) y2 = flat2 (y);
  g_autoptr (OviTensor) x2 = flat2 (x);
  ovi_op_channel_norm (v->be, y2, x2, gamma, OVI_CHANNEL_NORM_L2_SQRT_C);
  ovi_op_unary (v->be, y, y, OVI_ACT_SILU, 1.0f);
  return y;
}

static OviTensor *
res_run (OviWanVae *v, VaeState *s, const ResBlock *rb, OviTensor *x)
{
  g_autoptr (OviTensor) h = NULL;
  g_autoptr (OviTensor) a = NULL;
  g_autoptr (OviTensor) b = NULL;
  g_autoptr (OviTensor) c = NULL;
  OviTensor *d;

  h = rb->has_shortcut ? conv_1x1 (v, &rb->shortcut, x) : ovi_tensor_ref (x);
  if (h == NULL || !(a = norm_silu (v, x, rb->gamma0))
      || !(b = cconv_consume (v, s, &rb->conv0, g_steal_pointer (&a))))
    return NULL;
  if (!(c = norm_silu (v, b, rb->gamma1)))
    return NULL;
  g_clear_pointer (&b, ovi_tensor_unref);
  if (!(d = cconv_consume (v, s, &rb->conv1, g_steal_pointer (&c))))
    return NULL;
  ovi_op_binary (v->be, d, d, h, OVI_BINARY_ADD);
  return d;
}

/* single-head attention over the h*w positions of each frame */
static OviTensor *
attn_run (OviWanVae *v, const AttnBlock *a, OviTensor *x)
{
  OviBackend *be = v->be;
  int64_t C = x->shape[0], T = x->shape[1], HW = x->shape[2] * x->shape[3];
  g_autoptr (OviTensor) xn = act (v, x->ndim, x->shape);
  OviTensor *out = NULL;

  if (xn == NULL)
    return NULL;
  {
    g_autoptr (OviTensor) xn2 = flat2 (xn);
    g_autoptr (OviTensor) x2 = flat2 (x);
    ovi_op_channel_norm (be, xn2, x2, a->gamma, OVI_CHANNEL_NORM_L2_SQRT_C);
  }
  out = act (v, x->ndim, x->shape);
  if (out == NULL)
    return NULL;
  for (int64_t t = 0; t < T; t++) {
    int64_t cs[2] = { C, HW }, cst[2] = { T * HW, 1 };
    int64_t tok[2] = { HW, C }, qkv_shape[2] = { HW, 3 * C };
    int64_t three[3] = { 3, HW, C }, qshape[4] = { 1, HW, 1, C };
    int64_t split[3] = { HW, 3, C }, split_st[3] = { 3 * C, C, 1 };
    int perm[3] = { 1, 0, 2 }, tr[2] = { 1, 0 };
    g_autoptr (OviTensor) frame = ovi_tensor_view (xn, 2, cs, cst, t * HW);
    g_autoptr (OviTensor) frame_t = ovi_tensor_permute (frame, tr);
    g_autoptr (OviTensor) tokens = act (v, 2, tok);
    g_autoptr (OviTensor) qkv = act (v, 2, qkv_shape);
    g_autoptr (OviTensor) sep = act (v, 3, three);
    g_autoptr (OviTensor) o = act (v, 4, qshape);
    g_autoptr (OviTensor) p = act (v, 2, tok);
    if (!tokens || !qkv || !sep || !o || !p) {
      g_clear_pointer (&out, ovi_tensor_unref);
      return NULL;
    }
    ovi_op_copy (be, tokens, frame_t);
    ovi_op_matmul (be, qkv, tokens, a->qkv_w, a->qkv_b, OVI_ACT_NONE);
    g_autoptr (OviTensor) qkv3 = ovi_tensor_view (qkv, 3, split, split_st, 0);
    g_autoptr (OviTensor) qkv3p = ovi_tensor_permute (qkv3, perm);
    ovi_op_copy (be, sep, qkv3p);
    g_autoptr (OviTensor) q = ovi_tensor_view (sep, 4, qshape, NULL, 0);
    g_autoptr (OviTensor) k = ovi_tensor_view (sep, 4, qshape, NULL, HW * C);
    g_autoptr (OviTensor) vv
        = ovi_tensor_view (sep, 4, qshape, NULL, 2 * HW * C);
    ovi_op_attention (be, o, q, k, vv, NULL, NULL, 1.0f / sqrtf ((float) C));
    g_autoptr (OviTensor) o2 = ovi_tensor_view (o, 2, tok, NULL, 0);
    ovi_op_matmul (be, p, o2, a->proj_w, a->proj_b, OVI_ACT_NONE);
    g_autoptr (OviTensor) pt = ovi_tensor_permute (p, tr);
    g_autoptr (OviTensor) dst = ovi_tensor_view (out, 2, cs, cst, t * HW);
    copy_into (be, dst, pt);
  }
  ovi_op_binary (be, out, out, x, OVI_BINARY_ADD);
  return out;
}

/* DupUp3D: channels repeated, then depth-to-space/time; first chunk drops
 * the first ft - 1 frames */
static OviTensor *
dupup_run (OviWanVae *v, const Stage *st, OviTensor *x, gboolean first_chunk)
{
  OviBackend *be = v->be;
  int ft = st->ft, fs = st->fs, factor = ft * fs * fs;
  int64_t Cin = x->shape[0], T = x->shape[1], H = x->shape[2], W = x->shape[3];
  int64_t out_c = st->out_dim, r = out_c * factor / Cin;

  /* When r is a place value of the (o, a, b, d) channel digits, input
   * channel (o*factor + a*fs*fs + b*fs + d) / r is a strided view of x: one
   * copy, no repeated intermediate. The first chunk (one frame) keeps only
   * the last of the ft frames. */
  if ((r == 1 || r == fs || r == fs * fs || r == factor)
      && !(first_chunk && ft > 1 && T > 1)) {
    int64_t pv[4] = { factor, fs * fs, fs, 1 }, ds[4], CS = T * H * W;
    gboolean trim = first_chunk && ft > 1;
    int64_t na = trim ? 1 : ft;
    for (int i = 0; i < 4; i++)
      ds[i] = pv[i] >= r ? (pv[i] / r) * CS : 0;
    int64_t vshape[7] = { out_c, T, na, H, fs, W, fs };
    int64_t vstride[7] = { ds[0], H * W, ds[1], W, ds[2], 1, ds[3] };
    g_autoptr (OviTensor) src
        = ovi_tensor_view (x, 7, vshape, vstride, trim ? (ft - 1) * ds[1] : 0);
    OviTensor *out = act4 (v, out_c, T * na, H * fs, W * fs);
    if (out) {
      g_autoptr (OviTensor) out7 = ovi_tensor_view (out, 7, vshape, NULL, 0);
      ovi_op_copy (be, out7, src);
    }
    return out;
  }

  int64_t rs_shape[5] = { Cin, r, T, H, W };
  int64_t rs_stride[5] = { T * H * W, 0, H * W, W, 1 };
  int64_t rep_shape[4] = { Cin * r, T, H, W };
  int64_t split[7] = { out_c, ft, fs, fs, T, H, W };
  int perm[7] = { 0, 4, 1, 5, 2, 6, 3 };
  g_autoptr (OviTensor) bcast = ovi_tensor_view (x, 5, rs_shape, rs_stride, 0);
  g_autoptr (OviTensor) rep = act (v, 4, rep_shape);
  g_autoptr (OviTensor) full = act4 (v, out_c, T * ft, H * fs, W * fs);

  if (rep == NULL || full == NULL)
    return NULL;
  {
    g_autoptr (OviTensor) rep5 = ovi_tensor_view (rep, 5, rs_shape, NULL, 0);
    ovi_op_copy (be, rep5, bcast);
  }
  g_autoptr (OviTensor) rep7 = ovi_tensor_view (rep, 7, split, NULL, 0);
  g_autoptr (OviTensor) perm7 = ovi_tensor_permute (rep7, perm);
  g_autoptr (OviTensor) full7 = NULL;
  {
    int64_t fshape[7] = { out_c, T, ft, H, fs, W, fs };
    full7 = ovi_tensor_view (full, 7, fshape, NULL, 0);
  }
  ovi_op_copy (be, full7, perm7);
  if (first_chunk && ft > 1) {
    g_autoptr (OviTensor) part
        = ovi_tensor_narrow (full, 1, ft - 1, T * ft - (ft - 1));
    OviTensor *out = act4 (v, out_c, T * ft - (ft - 1), H * fs, W * fs);
    if (out)
      ovi_op_copy (be, out, part);
    return out;
  }
  return g_steal_pointer (&full);
}

/* AvgDown3D: zero front pad to a multiple of ft, space/time-to-channel,
 * mean over groups of channels */
static OviTensor *
avgdown_run (OviWanVae *v, const Stage *st, OviTensor *x)
{
  OviBackend *be = v->be;
  int ft = st->ft, fs = st->fs, factor = ft * fs * fs;
  int64_t C = x->shape[0], T = x->shape[1], H = x->shape[2], W = x->shape[3];
  int64_t pad_t = (ft - T % ft) % ft;
  int64_t Tp = (T + pad_t) / ft, Hp = H / fs, Wp = W / fs, N = Tp * Hp * Wp;
  int64_t out_c = st->out_dim, group = C * factor / out_c;
  g_autoptr (OviTensor) xp = NULL;

  if (pad_t) {
    int pads[6] = { (int) pad_t, 0, 0, 0, 0, 0 };
    xp = act4 (v, C, T + pad_t, H, W);
    if (xp == NULL)
      return NULL;
    ovi_op_pad (be, xp, x, 3, pads, OVI_PAD_ZERO);
  } else {
    xp = ovi_tensor_ref (x);
  }
  int64_t split[7] = { C, Tp, ft, Hp, fs, Wp, fs };
  int perm[7] = { 0, 2, 4, 6, 1, 3, 5 };
  int64_t yshape[7] = { C, ft, fs, fs, Tp, Hp, Wp };
  g_autoptr (OviTensor) x7 = ovi_tensor_view (xp, 7, split, NULL, 0);
  g_autoptr (OviTensor) x7p = ovi_tensor_permute (x7, perm);
  g_autoptr (OviTensor) y = act (v, 7, yshape);
  int64_t gshape[3] = { out_c, group, N }, zshape[3] = { out_c, N, group };
  int gperm[3] = { 0, 2, 1 };
  g_autoptr (OviTensor) z = act (v, 3, zshape);
  OviTensor *out;

  if (y == NULL || z == NULL)
    return NULL;
  ovi_op_copy (be, y, x7p);
  g_autoptr (OviTensor) y3 = ovi_tensor_view (y, 3, gshape, NULL, 0);
  g_autoptr (OviTensor) y3p = ovi_tensor_permute (y3, gperm);
  ovi_op_copy (be, z, y3p);
  out = act4 (v, out_c, Tp, Hp, Wp);
  if (out) {
    int64_t oshape[2] = { out_c, N };
    g_autoptr (OviTensor) o2 = ovi_tensor_view (out, 2, oshape, NULL, 0);
    ovi_op_mean_last (be, o2, z);
  }
  return out;
}

static OviTensor *
resample_run (OviWanVae *v, VaeState *s, const Resample *rs, OviTensor *x)
{
  OviBackend *be = v->be;
  static const int s1[3] = { 1, 1, 1 }, s2[3] = { 1, 2, 2 };
  static const int pad_up[6] = { 0, 0, 1, 1, 1, 1 };
  static const int pad_down[6] = { 0, 0, 0, 1, 0, 1 };
  int64_t C = x->shape[0], T = x->shape[1], H = x->shape[2], W = x->shape[3];

  switch (rs->mode) {
    case RS_UP3D:
    case RS_UP2D: {
      g_autoptr (OviTensor) y = NULL;
      if (rs->mode == RS_UP3D && s->started[rs->index]) {
        g_autoptr (OviTensor) tc
            = causal_run (v, s, &rs->time_conv, rs->index, 0, x, FALSE);
        if (tc == NULL)
          return NULL;
        /* channels [0:C] -> frame 2t, [C:2C] -> frame 2t + 1 */
        int64_t split[4] = { 2, C, T, H * W };
        int perm[4] = { 1, 2, 0, 3 };
        g_autoptr (OviTensor) tc4 = ovi_tensor_view (tc, 4, split, NULL, 0);
        g_autoptr (OviTensor) tc4p = ovi_tensor_permute (tc4, perm);
        y = act4 (v, C, 2 * T, H, W);
        if (y == NULL)
          return NULL;
        int64_t ishape[4] = { C, T, 2, H * W };
        g_autoptr (OviTensor) y4 = ovi_tensor_view (y, 4, ishape, NULL, 0);
        ovi_op_copy (be, y4, tc4p);
      } else {
        /* first chunk: the time conv is skipped ("Rep") */
        if (rs->mode == RS_UP3D)
          s->started[rs->index] = TRUE;
        y = ovi_tensor_ref (x);
      }
      int factors[2] = { 2, 2 };
      g_autoptr (OviTensor) u = act4 (v, C, y->shape[1], 2 * H, 2 * W);
      if (u == NULL)
        return NULL;
      ovi_op_upsample_nearest (be, u, y, 2, factors);
      g_clear_pointer (&y, ovi_tensor_unref);
      return conv_run (v, &rs->spatial, u, s1, pad_up);
    }
    case RS_DOWN2D:
      return conv_run (v, &rs->spatial, x, s2, pad_down);
    case RS_DOWN3D: {
      g_autoptr (OviTensor) y = conv_run (v, &rs->spatial, x, s2, pad_down);
      if (y == NULL)
        return NULL;
      int64_t Ty = y->shape[1], Hy = y->shape[2], Wy = y->shape[3];
      OviTensor *cache = cache_get (v, s, rs->index, C, 1, Hy, Wy);
      g_autoptr (OviTensor) last = ovi_tensor_narrow (y, 1, Ty - 1, 1);
      if (cache == NULL)
        return NULL;
      if (!s->started[rs->index]) {
        /* first chunk: no time conv, remember the last frame */
        s->started[rs->index] = TRUE;
        ovi_op_copy (be, cache, last);
        return g_steal_pointer (&y);
      }
      g_autoptr (OviTensor) xin = act4 (v, C, Ty + 1, Hy, Wy);
      if (xin == NULL)
        return NULL;
      {
        g_autoptr (OviTensor) head = ovi_tensor_narrow (xin, 1, 0, 1);
        g_autoptr (OviTensor) body = ovi_tensor_narrow (xin, 1, 1, Ty);
        copy_into (be, head, cache);
        copy_into (be, body, y);
      }
      ovi_op_copy (be, cache, last);
      static const int st2[3] = { 2, 1, 1 }, nopad[6] = { 0 };
      return conv_run (v, &rs->time_conv, xin, st2, nopad);
    }
    case RS_NONE:
    default:
      return ovi_tensor_ref (x);
  }
}

static OviTensor *
stage_run (OviWanVae *v, VaeState *s, const Stage *st, OviTensor *x,
           gboolean first_chunk, gboolean is_decoder)
{
  g_autoptr (OviTensor) h = ovi_tensor_ref (x);
  g_autoptr (OviTensor) sc = NULL;

  for (int j = 0; j < st->n_res; j++) {
    OviTensor *n = res_run (v, s, &st->res[j], h);
    g_clear_pointer (&h, ovi_tensor_unref);
    if (n == NULL)
      return NULL;
    h = n;
  }
  if (st->rs.mode != RS_NONE) {
    OviTensor *n = resample_run (v, s, &st->rs, h);
    g_clear_pointer (&h, ovi_tensor_unref);
    if (n == NULL)
      return NULL;
    h = n;
  }
  if (!st->has_shortcut)
    return g_steal_pointer (&h);
  sc = is_decoder ? dupup_run (v, st, x, first_chunk) : avgdown_run (v, st, x);
  if (sc == NULL)
    return NULL;
  if (!ovi_tensor_has_shape (sc, h->ndim, h->shape)) {
    ovi_backend_set_error (
        v->be, OVI_ERROR, OVI_ERROR_SHAPE,
        "Wan VAE: stage shortcut and main path shapes differ");
    return NULL;
  }
  ovi_op_binary (v->be, h, h, sc, OVI_BINARY_ADD);
  return g_steal_pointer (&h);
}

static void
debug_emit (OviWanVae *v, const char *name, int chunk, OviTensor *t)
{
  if (v->debug)
    v->debug (name, chunk, t, v->debug_data);
}

#define STEP(expr)                                                             \
  do {                                                                         \
    OviTensor *n_ = (expr);                                                    \
    g_clear_pointer (&h, ovi_tensor_unref);                                    \
    if (n_ == NULL)                                                            \
      return NULL;                                                             \
    h = n_;                                                                    \
  } while (0)

/* one chunk through encoder3d or decoder3d */
static OviTensor *
coder_run (OviWanVae *v, VaeState *s, const Coder *cd, OviTensor *x, int chunk,
           const char *dbg)
{
  g_autoptr (OviTensor) h = ovi_tensor_ref (x);
  g_autofree char *n_mid = g_strdup_printf ("%s.middle", dbg);
  g_autofree char *n_head = g_strdup_printf ("%s.head", dbg);
  g_autofree char *n_conv1 = g_strdup_printf ("%s.conv1", dbg);

  STEP (cconv (v, s, &cd->conv1, h));
  debug_emit (v, n_conv1, chunk, h);
  if (!cd->is_decoder)
    for (int i = 0; i < cd->n_stages; i++)
      STEP (stage_run (v, s, &cd->stages[i], h, chunk == 0, FALSE));
  STEP (res_run (v, s, &cd->mid0, h));
  STEP (attn_run (v, &cd->attn, h));
  STEP (res_run (v, s, &cd->mid2, h));
  debug_emit (v, n_mid, chunk, h);
  if (cd->is_decoder)
    for (int i = 0; i < cd->n_stages; i++)
      STEP (stage_run (v, s, &cd->stages[i], h, chunk == 0, TRUE));
  STEP (norm_silu (v, h, cd->head_gamma));
  STEP (cconv (v, s, &cd->head, h));
  debug_emit (v, n_head, chunk, h);
  return g_steal_pointer (&h);
}

static gboolean
check_backend (OviWanVae *v, GError **error)
{
  return ovi_backend_sync (v->be, error);
}

/* TRUE when `t` was made and the backend has no pending failure; otherwise
 * the backend's error (an allocation failure is recorded there), or a
 * generic one when the backend recorded none. */
static gboolean
made (OviWanVae *v, const OviTensor *t, GError **error)
{
  if (!check_backend (v, error))
    return FALSE;
  if (t == NULL) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                 "video VAE: could not allocate an activation tensor");
    return FALSE;
  }
  return TRUE;
}

static gboolean
cancelled (GCancellable *cancellable, GError **error)
{
  if (cancellable && g_cancellable_is_cancelled (cancellable)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_CANCELLED, "video VAE: cancelled");
    return TRUE;
  }
  return FALSE;
}

/* ---------------------------------------------------------------------- */
/* decode */

static gboolean
check_latent (OviWanVae *v, const OviTensor *latent, GError **error)
{
  if (latent->ndim != 4 || latent->shape[0] != v->z_dim || latent->shape[1] < 1
      || latent->shape[2] < 1 || latent->shape[3] < 1) {
    g_autofree char *s = ovi_shape_to_string (latent->ndim, latent->shape);
    g_set_error (
        error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
        "video VAE decode: latent has shape %s, expected [%d, F, h, w]", s,
        v->z_dim);
    return FALSE;
  }
  return TRUE;
}

/* z = z_n / inv_std + mean, then conv2; [z, F, h, w] */
static OviTensor *
decode_prepare (OviWanVae *v, const OviTensor *latent)
{
  g_autoptr (OviTensor) z = act (v, 4, latent->shape);

  if (z == NULL)
    return NULL;
  ovi_op_copy (v->be, z, latent);
  ovi_op_binary (v->be, z, z, v->inv_std, OVI_BINARY_DIV);
  ovi_op_binary (v->be, z, z, v->mean, OVI_BINARY_ADD);
  return conv_1x1 (v, &v->conv2, z);
}

/* latent frame i of x (a [z, 1, h', w'] crop at (y0, x0)) through the
 * decoder, unpatchified to [3, n, 16h', 16w'] */
static OviTensor *
decode_chunk (OviWanVae *v, VaeState *s, OviTensor *x, int i, int64_t y0,
              int64_t x0, int64_t th, int64_t tw)
{
  g_autoptr (OviTensor) xi = act4 (v, x->shape[0], 1, th, tw);
  g_autoptr (OviTensor) out = NULL;
  OviTensor *rgb;

  if (xi == NULL)
    return NULL;
  {
    g_autoptr (OviTensor) a = ovi_tensor_narrow (x, 1, i, 1);
    g_autoptr (OviTensor) b = ovi_tensor_narrow (a, 2, y0, th);
    g_autoptr (OviTensor) c = ovi_tensor_narrow (b, 3, x0, tw);
    ovi_op_copy (v->be, xi, c);
  }
  out = coder_run (v, s, &v->dec, xi, i, "dec");
  if (out == NULL)
    return NULL;
  rgb = act4 (v, out->shape[0] / 4, out->shape[1], out->shape[2] * 2,
              out->shape[3] * 2);
  if (rgb == NULL)
    return NULL;
  ovi_op_pixel_shuffle (v->be, rgb, out, 2);
  ovi_op_clamp (v->be, rgb, rgb, -1.0f, 1.0f);
  return rgb;
}

/* tile starts along one axis: stride tile - overlap, last tile flush */
static int
tile_starts (int64_t n, int tile, int overlap, int64_t *starts)
{
  int count = 0;

  if (tile <= 0 || n <= tile) {
    starts[0] = 0;
    return 1;
  }
  for (int64_t s = 0;; s += tile - overlap) {
    if (s + tile >= n) {
      starts[count++] = n - tile;
      break;
    }
    starts[count++] = s;
  }
  return count;
}

/* linear ramp weights of one tile edge pair along an axis of `len` pixels */
static void
ramp (float *w, int64_t len, int64_t ramp_lo, int64_t ramp_hi)
{
  for (int64_t i = 0; i < len; i++) {
    float a = 1.0f, b = 1.0f;
    if (ramp_lo > 0 && i < ramp_lo)
      a = (i + 0.5f) / ramp_lo;
    if (ramp_hi > 0 && len - 1 - i < ramp_hi)
      b = (len - 1 - i + 0.5f) / ramp_hi;
    w[i] = MIN (a, b);
  }
}

/* One decode in progress: the prepared latent, the causal state of each
 * tile (one tile when not tiling) and the next latent frame. */
struct _OviWanVaeDecoding {
  OviWanVae *v;
  OviTensor *x; /* decode_prepare (latent) */
  int ny, nx;   /* tiles; 1 x 1: the whole frame */
  int64_t *ys, *xs, th, tw;
  VaeState **states;
  int64_t next; /* latent frame */
  int first;    /* clip index of its first pixel frame */
};

OviWanVaeDecoding *
ovi_wan_vae_decode_begin (OviWanVae *v, const OviTensor *latent, GError **error)
{
  OviWanVaeDecoding *d;
  int64_t h, w;
  g_autoptr (OviTensor) x = NULL;

  if (!check_latent (v, latent, error))
    return NULL;
  x = decode_prepare (v, latent);
  if (!made (v, x, error))
    return NULL;
  d = g_new0 (OviWanVaeDecoding, 1);
  d->v = v;
  d->x = g_steal_pointer (&x);
  h = d->x->shape[2];
  w = d->x->shape[3];
  d->ys = g_new (int64_t, h + 1);
  d->xs = g_new (int64_t, w + 1);
  if (v->tile > 0 && (h > v->tile || w > v->tile)) {
    d->th = MIN (h, v->tile);
    d->tw = MIN (w, v->tile);
    d->ny = tile_starts (h, v->tile, v->tile_overlap, d->ys);
    d->nx = tile_starts (w, v->tile, v->tile_overlap, d->xs);
  } else {
    d->th = h;
    d->tw = w;
    d->ny = d->nx = 1;
    d->ys[0] = d->xs[0] = 0;
  }
  d->states = g_new0 (VaeState *, d->ny * d->nx);
  for (int t = 0; t < d->ny * d->nx; t++)
    d->states[t] = state_new (v->dec.n_slots);
  return d;
}

void
ovi_wan_vae_decoding_free (OviWanVaeDecoding *d)
{
  if (d == NULL)
    return;
  for (int t = 0; t < d->ny * d->nx; t++)
    state_free (d->states[t]);
  g_free (d->states);
  g_free (d->ys);
  g_free (d->xs);
  ovi_tensor_unref (d->x);
  g_free (d);
}

/* latent frame i over all tiles, blended: [3, n, H, W] on the backend */
static OviTensor *
decode_tiled_frame (OviWanVaeDecoding *d, int64_t i, GError **error)
{
  OviWanVae *v = d->v;
  const int scale = 16;
  const int64_t th = d->th, tw = d->tw, ny = d->ny, nx = d->nx;
  int64_t H = d->x->shape[2] * scale, W = d->x->shape[3] * scale;
  int64_t n = i == 0 ? 1 : 4, plane = H * W;
  g_autofree float *num = g_new0 (float, 3 * n * plane);
  g_autofree float *den = g_new0 (float, plane);
  g_autofree float *wy = g_new (float, th *scale);
  g_autofree float *wx = g_new (float, tw *scale);
  const int64_t *ys = d->ys, *xs = d->xs;

  for (int ty = 0; ty < ny; ty++) {
    /* ramps only where a neighbouring tile overlaps */
    int64_t lo = ty > 0 ? (ys[ty - 1] + th - ys[ty]) * scale : 0;
    int64_t hi = ty + 1 < ny ? (ys[ty] + th - ys[ty + 1]) * scale : 0;
    ramp (wy, th * scale, lo, hi);
    for (int tx = 0; tx < nx; tx++) {
      int64_t lo2 = tx > 0 ? (xs[tx - 1] + tw - xs[tx]) * scale : 0;
      int64_t hi2 = tx + 1 < nx ? (xs[tx] + tw - xs[tx + 1]) * scale : 0;
      ramp (wx, tw * scale, lo2, hi2);
      g_autoptr (OviTensor) rgb = decode_chunk (
          v, d->states[ty * nx + tx], d->x, i, ys[ty], xs[tx], th, tw);
      if (!made (v, rgb, error))
        return NULL;
      if (rgb->shape[1] != n) {
        g_set_error (error, OVI_ERROR, OVI_ERROR_FAILED,
                     "video VAE: latent frame %" G_GINT64_FORMAT
                     " gave %" G_GINT64_FORMAT " frames",
                     i, rgb->shape[1]);
        return NULL;
      }
      g_autoptr (OviTensor) host = ovi_backend_download_f32 (v->be, rgb, error);
      if (host == NULL)
        return NULL;
      const float *src = ovi_tensor_data (host);
      int64_t TH = th * scale, TW = tw * scale;
      int64_t oy = ys[ty] * scale, ox = xs[tx] * scale;
      for (int64_t yy = 0; yy < TH; yy++)
        for (int64_t xx = 0; xx < TW; xx++) {
          float wt = wy[yy] * wx[xx];
          int64_t p = (oy + yy) * W + ox + xx;
          den[p] += wt;
          for (int64_t c = 0; c < 3 * n; c++)
            num[c * plane + p] += wt * src[(c * TH + yy) * TW + xx];
        }
    }
  }
  for (int64_t c = 0; c < 3 * n; c++)
    for (int64_t p = 0; p < plane; p++)
      num[c * plane + p] /= den[p];

  int64_t shape[4] = { 3, n, H, W };
  g_autoptr (OviTensor) host = ovi_tensor_new (OVI_DTYPE_F32, 4, shape, error);
  if (host == NULL)
    return NULL;
  memcpy (ovi_tensor_data (host), num, sizeof (float) * 3 * n * plane);
  OviTensor *frames = act (v, 4, shape);
  if (frames != NULL)
    ovi_op_copy (v->be, frames, host);
  if (!made (v, frames, error))
    g_clear_pointer (&frames, ovi_tensor_unref);
  return frames;
}

OviTensor *
ovi_wan_vae_decode_next (OviWanVaeDecoding *d, int *first_frame,
                         GCancellable *cancellable, GError **error)
{
  OviWanVae *v = d->v;
  int64_t i = d->next;
  OviTensor *rgb;

  if (i >= d->x->shape[1] || cancelled (cancellable, error))
    return NULL;
  if (d->ny * d->nx > 1) {
    rgb = decode_tiled_frame (d, i, error);
  } else {
    rgb = decode_chunk (v, d->states[0], d->x, i, 0, 0, d->th, d->tw);
    if (!made (v, rgb, error))
      g_clear_pointer (&rgb, ovi_tensor_unref);
  }
  if (rgb == NULL)
    return NULL;
  if (first_frame)
    *first_frame = d->first;
  d->first += rgb->shape[1];
  d->next++;
  return rgb;
}

gboolean
ovi_wan_vae_decode (OviWanVae *v, const OviTensor *latent,
                    OviWanVaeFramesFunc on_frames, gpointer user_data,
                    GCancellable *cancellable, GError **error)
{
  g_autoptr (OviWanVaeDecoding) d = ovi_wan_vae_decode_begin (v, latent, error);
  GError *err = NULL;
  OviTensor *rgb;
  int first;

  if (d == NULL)
    return FALSE;
  while ((rgb = ovi_wan_vae_decode_next (d, &first, cancellable, &err))) {
    gboolean go_on = on_frames (rgb, first, user_data);
    ovi_tensor_unref (rgb);
    if (!go_on) {
      g_set_error (error, OVI_ERROR, OVI_ERROR_CANCELLED,
                   "video VAE: decoding stopped by the frame consumer");
      return FALSE;
    }
  }
  if (err) {
    g_propagate_error (error, err);
    return FALSE;
  }
  return TRUE;
}

/* ---------------------------------------------------------------------- */
/* encode */

OviTensor *
ovi_wan_vae_encode (OviWanVae *v, const OviTensor *video,
                    GCancellable *cancellable, GError **error)
{
  OviBackend *be = v->be;
  int64_t T, H, W, n_chunks, h, w;
  g_autoptr (OviTensor) vid = NULL;
  g_autoptr (OviTensor) p = NULL;
  g_autoptr (OviTensor) outs = NULL;
  g_autoptr (VaeState) s = NULL;
  OviTensor *res;

  if (!v->has_encoder) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "video VAE: loaded without its encoder");
    return NULL;
  }
  if (video->ndim != 4 || video->shape[0] != 3 || video->shape[1] < 1
      || video->shape[2] % 16 != 0 || video->shape[3] % 16 != 0
      || video->shape[2] < 16 || video->shape[3] < 16) {
    g_autofree char *sh = ovi_shape_to_string (video->ndim, video->shape);
    g_set_error (
        error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
        "video VAE encode: video has shape %s, expected [3, T, H, W] with H "
        "and W multiples of 16",
        sh);
    return NULL;
  }
  T = video->shape[1];
  H = video->shape[2];
  W = video->shape[3];
  n_chunks = 1 + (T - 1) / 4;
  vid = act (v, 4, video->shape);
  p = act4 (v, 12, T, H / 2, W / 2);
  if (vid == NULL || p == NULL)
    goto fail;
  ovi_op_copy (be, vid, video);
  ovi_op_pixel_unshuffle (be, p, vid, 2);
  g_clear_pointer (&vid, ovi_tensor_unref);
  s = state_new (v->enc.n_slots);
  for (int64_t i = 0; i < n_chunks; i++) {
    int64_t start = i == 0 ? 0 : 1 + 4 * (i - 1), len = i == 0 ? 1 : 4;
    g_autoptr (OviTensor) xi = act4 (v, 12, len, H / 2, W / 2);
    g_autoptr (OviTensor) src = ovi_tensor_narrow (p, 1, start, len);
    if (cancelled (cancellable, error))
      return NULL;
    if (xi == NULL)
      goto fail;
    ovi_op_copy (be, xi, src);
    g_autoptr (OviTensor) o = coder_run (v, s, &v->enc, xi, i, "enc_video");
    if (o == NULL)
      goto fail;
    if (outs == NULL) {
      outs = act4 (v, o->shape[0], n_chunks, o->shape[2], o->shape[3]);
      if (outs == NULL)
        goto fail;
    }
    g_autoptr (OviTensor) dst = ovi_tensor_narrow (outs, 1, i, 1);
    copy_into (be, dst, o);
    if (!check_backend (v, error))
      return NULL;
  }
  {
    g_autoptr (OviTensor) ml = conv_1x1 (v, &v->conv1, outs);
    if (ml == NULL)
      goto fail;
    h = ml->shape[2];
    w = ml->shape[3];
    g_autoptr (OviTensor) mu = ovi_tensor_narrow (ml, 0, 0, v->z_dim);
    int64_t shape[4] = { v->z_dim, n_chunks, h, w };
    res = ovi_backend_new_act (be, 4, shape);
    if (res == NULL)
      goto fail;
    ovi_op_binary (be, res, mu, v->mean, OVI_BINARY_SUB);
    ovi_op_binary (be, res, res, v->inv_std, OVI_BINARY_MUL);
  }
  if (!check_backend (v, error)) {
    ovi_tensor_unref (res);
    return NULL;
  }
  return res;
fail:
  check_backend (v, error);
  if (error && *error == NULL)
    g_set_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                 "video VAE encode: out of memory");
  return NULL;
}
