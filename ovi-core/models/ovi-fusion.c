/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: fusion DiT weights, dims, activation plan and memory estimate.
 * The forward pass is in ovi-fusion-forward.c. */
#include "ovi-fusion-private.h"
#include "ovi-rope.h"

#include <stdarg.h>
#include <string.h>

static const char *const tower_prefix[OVI_N_TOWERS]
    = { "video_model", "audio_model" };

void
ovi_fusion_dims_release (OviFusionDims *d)
{
  *d = (OviFusionDims){
    .dim = 3072,
    .ffn_dim = 14336,
    .freq_dim = 256,
    .text_dim = 4096,
    .num_layers = 30,
    .video_in = 48,
    .video_out = 48,
    .patch = { 1, 2, 2 },
    .audio_in = 20,
    .audio_out = 20,
    .audio_hidden = 8192,
    .audio_kernel = 7,
    .num_heads = 24,
    .text_len = 512,
    .eps = 1e-6,
    .audio_rope_scale = 0.19676,
  };
}

/* ---- dims from shapes ---- */

static gboolean
probe (OviWeightFile *wf, const char *name, int ndim, int64_t *shape,
       GError **error)
{
  int64_t any[OVI_MAX_DIMS] = { -1, -1, -1, -1, -1, -1, -1, -1 };
  g_autoptr (OviTensor) t
      = ovi_weight_file_get_shaped (wf, name, ndim, any, error);

  if (t == NULL)
    return FALSE;
  memcpy (shape, t->shape, sizeof (int64_t) * ndim);
  return TRUE;
}

static gboolean
check_preset (const OviFusionDims *d, const char *path, GError **error)
{
  if (d->num_heads <= 0 || d->dim % d->num_heads != 0
      || (d->dim / d->num_heads) % 2 != 0 || d->dim / d->num_heads < 6) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                 "%s: dim %d does not split into %d heads of an even size >= 6",
                 path, d->dim, d->num_heads);
    return FALSE;
  }
  if (d->text_len <= 0 || d->eps <= 0) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "%s: text_len %d / eps %g must be positive", path, d->text_len,
                 d->eps);
    return FALSE;
  }
  return TRUE;
}

gboolean
ovi_fusion_read_dims (OviWeightFile *wf, const OviFusionDims *preset,
                      OviFusionDims *d, GError **error)
{
  const char *path = ovi_weight_file_path (wf);
  int64_t s[5];

  *d = *preset;
  if (!probe (wf, "video_model.patch_embedding.weight", 5, s, error))
    return FALSE;
  d->dim = s[0];
  d->video_in = s[1];
  d->patch[0] = s[2];
  d->patch[1] = s[3];
  d->patch[2] = s[4];
  if (!probe (wf, "video_model.blocks.0.ffn.0.weight", 2, s, error))
    return FALSE;
  d->ffn_dim = s[0];
  if (!probe (wf, "video_model.text_embedding.0.weight", 2, s, error))
    return FALSE;
  d->text_dim = s[1];
  if (!probe (wf, "video_model.time_embedding.0.weight", 2, s, error))
    return FALSE;
  d->freq_dim = s[1];
  if (!probe (wf, "video_model.head.head.weight", 2, s, error))
    return FALSE;
  d->video_out = s[0] / ((int64_t) d->patch[0] * d->patch[1] * d->patch[2]);
  if (!probe (wf, "audio_model.patch_embedding.0.weight", 3, s, error))
    return FALSE;
  d->audio_in = s[1];
  d->audio_kernel = s[2];
  if (!probe (wf, "audio_model.patch_embedding.2.w1.weight", 3, s, error))
    return FALSE;
  d->audio_hidden = s[0];
  if (!probe (wf, "audio_model.head.head.weight", 2, s, error))
    return FALSE;
  d->audio_out = s[0];
  d->num_layers = 0;
  for (;;) {
    g_autofree char *name = g_strdup_printf (
        "video_model.blocks.%d.modulation.modulation", d->num_layers);
    if (!ovi_weight_file_contains (wf, name))
      break;
    d->num_layers++;
  }
  if (d->freq_dim % 2 != 0 || d->audio_kernel % 2 != 1) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                 "%s: freq_dim %d must be even and the audio kernel %d odd",
                 path, d->freq_dim, d->audio_kernel);
    return FALSE;
  }
  return check_preset (d, path, error);
}

/* ---- loading ---- */

typedef struct {
  OviWeightFile *wf;
  OviBackend *be;
  GPtrArray *keep;
  GError *error;
  const char *prefix;
  OviWeightFilter filter; /* nullable: quantise / place weights */
  gpointer filter_data;
} Loader;

static OviTensor *
keep (Loader *ld, OviTensor *t)
{
  g_ptr_array_add (ld->keep, t);
  return t;
}

/* `to_act`: small tensors (biases, gains, modulation tables) are converted to
 * the backend's activation dtype; matmul weights stay as stored. `flat`:
 * conv weights [out, in, k...] are flattened to [out, in*k...]. */
static OviTensor *load (Loader *ld, gboolean to_act, gboolean flat, int ndim,
                        const int64_t *shape, const char *format, ...)
    G_GNUC_PRINTF (6, 7);

static OviTensor *
load (Loader *ld, gboolean to_act, gboolean flat, int ndim,
      const int64_t *shape, const char *format, ...)
{
  g_autofree char *tail = NULL, *name = NULL;
  g_autoptr (OviTensor) raw = NULL;
  va_list args;

  if (ld->error)
    return NULL;
  va_start (args, format);
  tail = g_strdup_vprintf (format, args);
  va_end (args);
  name = g_strconcat (ld->prefix, ".", tail, NULL);
  raw = ovi_weight_file_get_shaped (ld->wf, name, ndim, shape, &ld->error);
  if (raw == NULL)
    return NULL;
  if (!to_act && ld->filter) {
    OviTensor *f = ld->filter (name, raw, ld->filter_data, &ld->error);
    if (f == NULL)
      return NULL;
    ovi_tensor_unref (raw);
    raw = f;
  }
  if (flat) {
    int64_t fs[2] = { shape[0], ovi_tensor_numel (raw) / shape[0] };
    OviTensor *v = ovi_tensor_reshape (raw, 2, fs);
    ovi_tensor_unref (raw);
    raw = v;
  }
  if (!to_act) /* with a filter, the filter places the weight */
    return keep (ld, ld->filter
                         ? ovi_tensor_ref (raw)
                         : ovi_backend_upload_weight (ld->be, raw, NULL));
  OviTensor *t = ovi_backend_new_act (ld->be, raw->ndim, raw->shape);
  if (t == NULL) {
    g_set_error (&ld->error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                 "out of memory loading %s", name);
    return NULL;
  }
  ovi_op_copy (ld->be, t, raw);
  return keep (ld, t);
}

static void
load_linear (Loader *ld, OviLinear *l, int64_t out, int64_t in, gboolean bias,
             const char *name)
{
  int64_t ws[2] = { out, in }, bs[1] = { out };

  l->w = load (ld, FALSE, FALSE, 2, ws, "%s.weight", name);
  l->b = bias ? load (ld, TRUE, FALSE, 1, bs, "%s.bias", name) : NULL;
}

static OviTensor *
load_gain (Loader *ld, int64_t dim, const char *name)
{
  int64_t s[1] = { dim };
  return load (ld, TRUE, FALSE, 1, s, "%s", name);
}

static void
load_attn (Loader *ld, OviFusionAttn *a, int64_t D, int layer, const char *kind)
{
  char n[128];

#define LIN(field)                                                             \
  g_snprintf (n, sizeof n, "blocks.%d.%s." #field, layer, kind);               \
  load_linear (ld, &a->field, D, D, TRUE, n)
  LIN (q);
  LIN (k);
  LIN (v);
  LIN (o);
#undef LIN
  g_snprintf (n, sizeof n, "blocks.%d.%s.norm_q.weight", layer, kind);
  a->norm_q = load_gain (ld, D, n);
  g_snprintf (n, sizeof n, "blocks.%d.%s.norm_k.weight", layer, kind);
  a->norm_k = load_gain (ld, D, n);
}

static void
load_block (Loader *ld, OviFusionBlock *b, const OviFusionDims *d, int i)
{
  int64_t D = d->dim, ms[3] = { 1, 6, D };
  char n[128];

  load_attn (ld, &b->sa, D, i, "self_attn");
  load_attn (ld, &b->ca, D, i, "cross_attn");
  g_snprintf (n, sizeof n, "blocks.%d.cross_attn.k_fusion", i);
  load_linear (ld, &b->k_fusion, D, D, TRUE, n);
  g_snprintf (n, sizeof n, "blocks.%d.cross_attn.v_fusion", i);
  load_linear (ld, &b->v_fusion, D, D, TRUE, n);
  g_snprintf (n, sizeof n, "blocks.%d.cross_attn.pre_attn_norm_fusion.weight",
              i);
  b->pre_norm_w = load_gain (ld, D, n);
  g_snprintf (n, sizeof n, "blocks.%d.cross_attn.pre_attn_norm_fusion.bias", i);
  b->pre_norm_b = load_gain (ld, D, n);
  g_snprintf (n, sizeof n, "blocks.%d.cross_attn.norm_k_fusion.weight", i);
  b->norm_k_fusion = load_gain (ld, D, n);
  g_snprintf (n, sizeof n, "blocks.%d.norm3.weight", i);
  b->norm3_w = load_gain (ld, D, n);
  g_snprintf (n, sizeof n, "blocks.%d.norm3.bias", i);
  b->norm3_b = load_gain (ld, D, n);
  g_snprintf (n, sizeof n, "blocks.%d.ffn.0", i);
  load_linear (ld, &b->ffn0, d->ffn_dim, D, TRUE, n);
  g_snprintf (n, sizeof n, "blocks.%d.ffn.2", i);
  load_linear (ld, &b->ffn2, D, d->ffn_dim, TRUE, n);
  b->modulation
      = load (ld, TRUE, FALSE, 3, ms, "blocks.%d.modulation.modulation", i);
}

static void
load_patch (Loader *ld, OviFusionTower *t, const OviFusionDims *d,
            OviTower which)
{
  int64_t D = d->dim, K = d->audio_kernel, H = d->audio_hidden;
  int64_t bs[1] = { D };

  if (which == OVI_TOWER_VIDEO) {
    int64_t ws[5] = { D, d->video_in, d->patch[0], d->patch[1], d->patch[2] };
    t->patch.w = load (ld, FALSE, TRUE, 5, ws, "patch_embedding.weight");
    t->patch.b = load (ld, TRUE, FALSE, 1, bs, "patch_embedding.bias");
    return;
  }
  int64_t w0[3] = { D, d->audio_in, K }, w1[3] = { H, D, K },
          w2[3] = { D, H, K };
  t->patch.w = load (ld, FALSE, TRUE, 3, w0, "patch_embedding.0.weight");
  t->patch.b = load (ld, TRUE, FALSE, 1, bs, "patch_embedding.0.bias");
  t->w1 = load (ld, FALSE, TRUE, 3, w1, "patch_embedding.2.w1.weight");
  t->w2 = load (ld, FALSE, TRUE, 3, w2, "patch_embedding.2.w2.weight");
  t->w3 = load (ld, FALSE, TRUE, 3, w1, "patch_embedding.2.w3.weight");
}

static int64_t
head_width (const OviFusionDims *d, OviTower which)
{
  if (which == OVI_TOWER_AUDIO)
    return d->audio_out;
  return (int64_t) d->video_out * d->patch[0] * d->patch[1] * d->patch[2];
}

static void
load_tower (Loader *ld, OviFusionTower *t, const OviFusionDims *d,
            OviTower which)
{
  int64_t D = d->dim, hm[3] = { 1, 2, D };

  ld->prefix = tower_prefix[which];
  load_patch (ld, t, d, which);
  load_linear (ld, &t->text0, D, d->text_dim, TRUE, "text_embedding.0");
  load_linear (ld, &t->text2, D, D, TRUE, "text_embedding.2");
  load_linear (ld, &t->time0, D, d->freq_dim, TRUE, "time_embedding.0");
  load_linear (ld, &t->time2, D, D, TRUE, "time_embedding.2");
  load_linear (ld, &t->proj, 6 * D, D, TRUE, "time_projection.1");
  load_linear (ld, &t->head, head_width (d, which), D, TRUE, "head.head");
  t->head_mod = load (ld, TRUE, FALSE, 3, hm, "head.modulation");
  t->blocks = g_new0 (OviFusionBlock, d->num_layers);
  for (int i = 0; i < d->num_layers && ld->error == NULL; i++)
    load_block (ld, &t->blocks[i], d, i);
}

OviFusion *
ovi_fusion_new (OviWeightFile *wf, const OviFusionDims *preset,
                OviBackend *backend, GError **error)
{
  return ovi_fusion_new_filtered (wf, preset, backend, NULL, NULL, error);
}

OviFusion *
ovi_fusion_new_filtered (OviWeightFile *wf, const OviFusionDims *preset,
                         OviBackend *backend, OviWeightFilter filter,
                         gpointer filter_data, GError **error)
{
  g_autoptr (OviFusion) m = g_new0 (OviFusion, 1);
  Loader ld = {
    .wf = wf, .be = backend, .filter = filter, .filter_data = filter_data
  };

  m->be = backend;
  m->keep = g_ptr_array_new_with_free_func ((GDestroyNotify) ovi_tensor_unref);
  if (!ovi_fusion_read_dims (wf, preset, &m->dims, error))
    return NULL;
  if (m->dims.num_layers == 0) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_MISSING_TENSOR,
                 "%s: no tensor video_model.blocks.0.modulation.modulation",
                 ovi_weight_file_path (wf));
    return NULL;
  }
  ld.keep = m->keep;
  for (int w = 0; w < OVI_N_TOWERS; w++)
    load_tower (&ld, &m->towers[w], &m->dims, w);
  if (ld.error == NULL)
    ovi_backend_sync (backend, &ld.error);
  /* block weights the filter left off the backend's device are streamed */
  if (ld.error == NULL) {
    const OviTensor *w0 = m->towers[OVI_TOWER_VIDEO].blocks[0].ffn0.w;
    m->stream
        = w0->storage->device.type != ovi_backend_get_device (backend).type
          || (ovi_backend_get_device (backend).type != OVI_DEVICE_CPU
              && w0->storage->device.index
                     != ovi_backend_get_device (backend).index);
  }
  if (ld.error) {
    g_propagate_error (error, ld.error);
    return NULL;
  }
  return g_steal_pointer (&m);
}

void
ovi_fusion_free (OviFusion *m)
{
  if (m == NULL)
    return;
  ovi_fusion_lora_free (m);
  g_clear_pointer (&m->keep, g_ptr_array_unref);
  g_clear_pointer (&m->streamer, ovi_fusion_streamer_free);
  g_clear_pointer (&m->shard_keep, g_ptr_array_unref);
  for (int w = 0; w < OVI_N_TOWERS; w++)
    g_free (m->towers[w].blocks);
  g_free (m);
}

void
ovi_fusion_set_streaming (OviFusion *m, gboolean stream)
{
  m->stream = stream;
}

gboolean
ovi_fusion_get_streaming (const OviFusion *m)
{
  return m->stream;
}

const OviFusionDims *
ovi_fusion_get_dims (const OviFusion *m)
{
  return &m->dims;
}

void
ovi_fusion_set_debug (OviFusion *m, OviFusionDebugFunc func, gpointer user_data)
{
  m->debug = func;
  m->debug_data = user_data;
}

/* ---- activation plan (shared by the allocation and the estimate) ---- */

typedef struct {
  OviBackend *be; /* NULL: only count bytes */
  GPtrArray *keep;
  gsize act_size;
  guint64 bytes;
  gboolean failed;
} Planner;

static OviTensor *
plan (Planner *p, gboolean f32, int64_t d0, int64_t d1, int64_t d2)
{
  int64_t shape[3] = { d0, d1, d2 };
  int ndim = d2 > 0 ? 3 : 2;
  OviTensor *t;

  p->bytes += (guint64) d0 * d1 * MAX (d2, 1) * (f32 ? 4 : p->act_size);
  if (p->be == NULL || p->failed)
    return NULL;
  t = f32 ? ovi_backend_new_tensor (p->be, OVI_DTYPE_F32, ndim, shape)
          : ovi_backend_new_act (p->be, ndim, shape);
  if (t == NULL)
    p->failed = TRUE;
  else
    g_ptr_array_add (p->keep, t);
  return t;
}

static void
plan_audio_embed (Planner *p, OviFusionTowerWork *tw, const OviFusionDims *d)
{
  int64_t n = tw->n, K = d->audio_kernel, D = d->dim, H = d->audio_hidden;

  tw->pad_in = plan (p, FALSE, n + K - 1, d->audio_in, 0);
  tw->patches = plan (p, FALSE, n, d->audio_in * K, 0);
  tw->h0 = plan (p, FALSE, n, D, 0);
  tw->pad_h0 = plan (p, FALSE, n + K - 1, D, 0);
  tw->patches_h0 = plan (p, FALSE, n, D * K, 0);
  tw->h1 = plan (p, FALSE, n, H, 0);
  tw->h3 = plan (p, FALSE, n, H, 0);
  tw->pad_h1 = plan (p, FALSE, n + K - 1, H, 0);
  tw->patches_h1 = plan (p, FALSE, n, H * K, 0);
}

static OviTensor *
alias (Planner *p, OviTensor *t)
{
  if (t == NULL)
    return NULL;
  g_ptr_array_add (p->keep, ovi_tensor_ref (t));
  return t;
}

/* a full-sequence buffer (rows per branch n_pad, width / P columns), or
 * `local` itself with one rank */
static OviTensor *
plan_full (Planner *p, const OviFusionWork *w, OviTensor *local, int64_t n_pad,
           int64_t width)
{
  if (w->ranks == 1)
    return alias (p, local);
  return plan (p, FALSE, w->batch * n_pad, width / w->ranks, 0);
}

static void
plan_tower (Planner *p, const OviFusionWork *w, OviFusionTowerWork *tw,
            const OviFusionDims *d, OviTower which)
{
  int batch = w->batch;
  int64_t n = batch * tw->n_loc, nf = batch * tw->n_pad, D = d->dim;
  int64_t T = batch * d->text_len, Dp = D / w->ranks;
  int64_t hd = d->dim / d->num_heads, R = 2 * batch,
          out = head_width (d, which);
  int64_t pairs
      = which == OVI_TOWER_VIDEO ? hd / 2 : ovi_rope_first_band_dims (hd) / 2;

  tw->x = plan (p, FALSE, n, D, 0);
  tw->xm = plan (p, FALSE, n, D, 0);
  tw->proj = plan (p, FALSE, n, D, 0);
  tw->q = plan (p, FALSE, n, D, 0);
  tw->k = plan (p, FALSE, n, D, 0);
  tw->v = plan (p, FALSE, n, D, 0);
  tw->att = plan (p, FALSE, n, D, 0);
  tw->qf = plan_full (p, w, tw->q, tw->n_pad, D);
  tw->kf = plan_full (p, w, tw->k, tw->n_pad, D);
  tw->vf = plan_full (p, w, tw->v, tw->n_pad, D);
  tw->attf = plan_full (p, w, tw->att, tw->n_pad, D);
  tw->qr = plan (p, FALSE, nf, Dp, 0);
  tw->kr = plan (p, FALSE, nf, Dp, 0);
  tw->ffn = plan (p, FALSE, n, d->ffn_dim, 0);
  tw->head = plan (p, FALSE, n, out, 0);
  tw->headf = plan_full (p, w, tw->head, tw->n_pad, out * w->ranks);
  tw->text = plan (p, FALSE, T, D, 0);
  tw->tproj = plan (p, FALSE, T, D, 0);
  tw->tk = plan (p, FALSE, T, D, 0);
  tw->tv = plan (p, FALSE, T, D, 0);
  tw->cos = plan (p, TRUE, nf, pairs, 0);
  tw->sin = plan (p, TRUE, nf, pairs, 0);
  tw->sinus = plan (p, FALSE, R, d->freq_dim, 0);
  tw->e = plan (p, FALSE, R, D, 0);
  tw->es = plan (p, FALSE, R, D, 0);
  tw->e0 = plan (p, FALSE, R, 6 * D, 0);
  tw->mod = plan (p, FALSE, R, 6, D);
  tw->hmod = plan (p, FALSE, R, 2, D);
  if (w->ranks == 1 && tw->x) {
    g_autoptr (OviTensor) first = ovi_tensor_narrow (tw->x, 0, 0, tw->n);
    tw->embed = alias (p, first);
  } else if (w->ranks > 1) {
    tw->embed = plan (p, FALSE, tw->n, D, 0);
  }
  if (which == OVI_TOWER_VIDEO)
    tw->patches = plan (
        p, FALSE, tw->n,
        (int64_t) d->video_in * d->patch[0] * d->patch[1] * d->patch[2], 0);
  else
    plan_audio_embed (p, tw, d);
}

static gboolean
grid_of (const OviFusionDims *d, int64_t frames, int64_t height, int64_t width,
         int64_t audio_length, int64_t grid[3], GError **error)
{
  if (frames <= 0 || height <= 0 || width <= 0 || audio_length <= 0
      || frames % d->patch[0] || height % d->patch[1] || width % d->patch[2]) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "latent size %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
                 "x%" G_GINT64_FORMAT " (audio %" G_GINT64_FORMAT
                 ") does not divide "
                 "into patches %dx%dx%d",
                 frames, height, width, audio_length, d->patch[0], d->patch[1],
                 d->patch[2]);
    return FALSE;
  }
  grid[0] = frames / d->patch[0];
  grid[1] = height / d->patch[1];
  grid[2] = width / d->patch[2];
  return TRUE;
}

/* Buffers that are free while `tw` uses them. The fusion target of a
 * tower (the other tower's tokens) is projected into the other tower's
 * self-attention scratch: audio's cross-attention runs after video's
 * self-attention and before video's cross-attention, and video's
 * cross-attention after audio is done (its post-self-attention state is
 * kept in audio_sa). The second attention output reuses the tower's own
 * key buffer, idle during cross-attention. Across ranks the projected
 * target goes through an all-to-all into buffers of its own. */
static void
share_scratch (Planner *p, const OviFusionWork *w, OviFusionTowerWork *tw,
               OviFusionTowerWork *other, const OviFusionDims *d)
{
  tw->fn = alias (p, other->xm);
  tw->fproj = alias (p, other->proj);
  tw->fk = alias (p, other->q);
  tw->fv = alias (p, other->v);
  tw->fkf = plan_full (p, w, tw->fk, other->n_pad, d->dim);
  tw->fvf = plan_full (p, w, tw->fv, other->n_pad, d->dim);
  tw->fkr = w->ranks == 1 ? alias (p, other->k)
                          : plan_full (p, w, NULL, other->n_pad, d->dim);
  tw->att2 = alias (p, tw->kr);
}

/* a branch's tokens split over the ranks */
static void
split_tokens (const OviFusionWork *w, OviFusionTowerWork *tw, int64_t n,
              int64_t n_other)
{
  tw->n = n;
  tw->n_other = n_other;
  tw->n_pad = (n + w->ranks - 1) / w->ranks * w->ranks;
  tw->n_loc = tw->n_pad / w->ranks;
  tw->start = w->rank * tw->n_loc;
}

static void
plan_work (Planner *p, OviFusionWork *w, const OviFusionDims *d)
{
  int64_t nv = w->grid[0] * w->grid[1] * w->grid[2], na = w->audio_length;
  OviFusionTowerWork *v = &w->tw[OVI_TOWER_VIDEO], *a = &w->tw[OVI_TOWER_AUDIO];

  split_tokens (w, v, nv, na);
  split_tokens (w, a, na, nv);
  plan_tower (p, w, v, d, OVI_TOWER_VIDEO);
  plan_tower (p, w, a, d, OVI_TOWER_AUDIO);
  w->audio_sa = plan (p, FALSE, w->batch * a->n_loc, d->dim, 0);
  share_scratch (p, w, a, v, d);
  share_scratch (p, w, v, a, d);
  if (w->ranks > 1)
    w->a2a = plan (p, FALSE, 2 * w->batch * MAX (v->n_loc, a->n_loc) * d->dim,
                   1, 0);
}

static guint64
tower_params (const OviFusionDims *d, OviTower which)
{
  guint64 D = d->dim, F = d->ffn_dim, K = d->audio_kernel;
  guint64 lin = D * D + D;
  guint64 block = 4 * lin + 2 * D     /* self-attention */
                  + 2 * D             /* norm3 */
                  + 6 * lin + 5 * D   /* cross-attention + fusion */
                  + 2 * D * F + F + D /* ffn */
                  + 6 * D;            /* modulation */
  guint64 rest = (guint64) d->text_dim * D + D + lin   /* text embedding */
                 + (guint64) d->freq_dim * D + D + lin /* time embedding */
                 + 6 * D * D + 6 * D                   /* time projection */
                 + 2 * D + head_width (d, which) * (D + 1); /* head */

  if (which == OVI_TOWER_VIDEO)
    rest += D * d->video_in * d->patch[0] * d->patch[1] * d->patch[2] + D;
  else
    rest += D * d->audio_in * K + D + 3 * D * d->audio_hidden * K;
  return block * d->num_layers + rest;
}

gboolean
ovi_fusion_estimate (const OviFusionDims *d, int64_t frames, int64_t height,
                     int64_t width, int64_t audio_length, gsize act_dtype_size,
                     gsize weight_dtype_size, OviFusionEstimate *est,
                     GError **error)
{
  return ovi_fusion_estimate_batched (d, frames, height, width, audio_length, 1,
                                      act_dtype_size, weight_dtype_size, est,
                                      error);
}

gboolean
ovi_fusion_estimate_batched (const OviFusionDims *d, int64_t frames,
                             int64_t height, int64_t width,
                             int64_t audio_length, int batch,
                             gsize act_dtype_size, gsize weight_dtype_size,
                             OviFusionEstimate *est, GError **error)
{
  OviFusionWork w
      = { .audio_length = audio_length, .batch = MAX (batch, 1), .ranks = 1 };
  Planner p = { .act_size = act_dtype_size };

  if (!check_preset (d, "estimate", error)
      || !grid_of (d, frames, height, width, audio_length, w.grid, error))
    return FALSE;
  plan_work (&p, &w, d);
  est->tokens_video = w.tw[OVI_TOWER_VIDEO].n;
  est->tokens_audio = w.tw[OVI_TOWER_AUDIO].n;
  est->n_params
      = tower_params (d, OVI_TOWER_VIDEO) + tower_params (d, OVI_TOWER_AUDIO);
  est->weight_bytes = est->n_params * weight_dtype_size;
  est->activation_bytes = p.bytes;
  return TRUE;
}

/* the table once per branch; padding rows (sequence parallelism) are not
 * rotated (cos 1, sin 0), as in the official code */
static void
upload_table (OviBackend *be, OviTensor *dst, OviTensor *host, int batch,
              float pad)
{
  int64_t n = host->shape[0], per = dst->shape[0] / batch;

  for (int b = 0; b < batch; b++) {
    g_autoptr (OviTensor) rows = ovi_tensor_narrow (dst, 0, b * per, n);
    g_autoptr (OviTensor) tail
        = ovi_tensor_narrow (dst, 0, b * per + n, per - n);
    ovi_op_copy (be, rows, host);
    if (per > n)
      ovi_op_fill (be, tail, pad);
  }
  ovi_tensor_unref (host);
}

static void
fill_rope (OviFusion *m, OviFusionWork *w)
{
  const OviFusionDims *d = &m->dims;
  int hd = d->dim / d->num_heads;
  OviTensor *c, *s;

  ovi_rope_video_tables (hd, w->grid[0], w->grid[1], w->grid[2], &c, &s);
  upload_table (m->be, w->tw[OVI_TOWER_VIDEO].cos, c, w->batch, 1);
  upload_table (m->be, w->tw[OVI_TOWER_VIDEO].sin, s, w->batch, 0);
  ovi_rope_audio_tables (hd, w->audio_length, d->audio_rope_scale, &c, &s);
  upload_table (m->be, w->tw[OVI_TOWER_AUDIO].cos, c, w->batch, 1);
  upload_table (m->be, w->tw[OVI_TOWER_AUDIO].sin, s, w->batch, 0);
  for (int t = 0; t < OVI_N_TOWERS; t++)
    ovi_op_fill (m->be, w->tw[t].sinus, 0);
  /* the "same" padding rows of the audio convolutions stay zero */
  ovi_op_fill (m->be, w->tw[OVI_TOWER_AUDIO].pad_in, 0);
  ovi_op_fill (m->be, w->tw[OVI_TOWER_AUDIO].pad_h0, 0);
  ovi_op_fill (m->be, w->tw[OVI_TOWER_AUDIO].pad_h1, 0);
}

OviFusionWork *
ovi_fusion_work_new (OviFusion *m, int64_t frames, int64_t height,
                     int64_t width, int64_t audio_length, GError **error)
{
  return ovi_fusion_work_new_batched (m, frames, height, width, audio_length, 1,
                                      error);
}

OviFusionWork *
ovi_fusion_work_new_batched (OviFusion *m, int64_t frames, int64_t height,
                             int64_t width, int64_t audio_length, int batch,
                             GError **error)
{
  return ovi_fusion_work_new_parallel (m, frames, height, width, audio_length,
                                       batch, NULL, error);
}

static gboolean
check_ranks (const OviFusionDims *d, int ranks, GError **error)
{
  if (ranks >= 1 && d->num_heads % ranks == 0)
    return TRUE;
  g_autoptr (GString) ok = g_string_new (NULL);
  for (int r = 1; r <= d->num_heads; r++)
    if (d->num_heads % r == 0)
      g_string_append_printf (ok, "%s%d", ok->len ? ", " : "", r);
  g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
               "sequence parallel over %d ranks: the fusion DiT has %d "
               "attention heads, which %d ranks do not divide (possible: %s)",
               ranks, d->num_heads, ranks, ok->str);
  return FALSE;
}

OviFusionWork *
ovi_fusion_work_new_parallel (OviFusion *m, int64_t frames, int64_t height,
                              int64_t width, int64_t audio_length, int batch,
                              OviComm *comm, GError **error)
{
  g_autoptr (OviFusionWork) w = g_new0 (OviFusionWork, 1);
  Planner p
      = { .be = m->be,
          .act_size = ovi_dtype_size (ovi_backend_get_act_dtype (m->be)) };

  w->comm = comm && comm->size > 1 ? comm : NULL;
  w->rank = w->comm ? comm->rank : 0;
  w->ranks = w->comm ? comm->size : 1;
  if (!check_ranks (&m->dims, w->ranks, error))
    return NULL;
  if (batch < 1) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "fusion DiT activations for %d branches", batch);
    return NULL;
  }
  w->batch = batch;
  w->frames = frames;
  w->height = height;
  w->width = width;
  w->audio_length = audio_length;
  w->keep = g_ptr_array_new_with_free_func ((GDestroyNotify) ovi_tensor_unref);
  if (!grid_of (&m->dims, frames, height, width, audio_length, w->grid, error))
    return NULL;
  p.keep = w->keep;
  plan_work (&p, w, &m->dims);
  if (p.failed) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                 "fusion DiT activations: could not allocate %" G_GUINT64_FORMAT
                 " MiB for %d x (%" G_GINT64_FORMAT " video + %" G_GINT64_FORMAT
                 " audio) tokens",
                 p.bytes >> 20, batch, w->tw[0].n, w->tw[1].n);
    return NULL;
  }
  fill_rope (m, w);
  if (!ovi_backend_sync (m->be, error))
    return NULL;
  return g_steal_pointer (&w);
}

void
ovi_fusion_work_free (OviFusionWork *w)
{
  if (w == NULL)
    return;
  g_clear_pointer (&w->keep, g_ptr_array_unref);
  g_free (w);
}

int
ovi_fusion_work_batch (const OviFusionWork *w)
{
  return w->batch;
}

static OviTensor *
branch_rows (OviTensor *t, int batch, int first, int n, GPtrArray *keep)
{
  int64_t per = t->shape[0] / batch;
  OviTensor *v = ovi_tensor_narrow (t, 0, first * per, n * per);

  g_ptr_array_add (keep, v);
  return v;
}

void
ovi_fusion_work_view (OviFusionWork *dst, const OviFusionWork *src, int first,
                      int n, GPtrArray *keep)
{
  *dst = *src;
  dst->batch = n;
  dst->keep = NULL;
  dst->audio_sa = branch_rows (src->audio_sa, src->batch, first, n, keep);
  for (int t = 0; t < OVI_N_TOWERS; t++) {
    OviFusionTowerWork *tw = &dst->tw[t];
    OviTensor **batched[] = {
      &tw->x,    &tw->xm,    &tw->proj, &tw->q,     &tw->k,    &tw->v,
      &tw->qr,   &tw->kr,    &tw->att,  &tw->att2,  &tw->ffn,  &tw->head,
      &tw->text, &tw->tproj, &tw->tk,   &tw->tv,    &tw->fn,   &tw->fproj,
      &tw->fk,   &tw->fkr,   &tw->fv,   &tw->cos,   &tw->sin,  &tw->sinus,
      &tw->e,    &tw->es,    &tw->e0,   &tw->mod,   &tw->hmod, &tw->qf,
      &tw->kf,   &tw->vf,    &tw->attf, &tw->headf, &tw->fkf,  &tw->fvf,
    };
    for (guint i = 0; i < G_N_ELEMENTS (batched); i++)
      *batched[i] = branch_rows (*batched[i], src->batch, first, n, keep);
  }
}

gboolean
ovi_fusion_work_matches (const OviFusionWork *w, int64_t frames, int64_t height,
                         int64_t width, int64_t audio_length)
{
  return w && w->frames == frames && w->height == height && w->width == width
         && w->audio_length == audio_length;
}

OviTensor *
ovi_fusion_residual_new (OviFusion *m, const OviFusionWork *w, OviTower tower,
                         GError **error)
{
  int64_t shape[2] = { w->tw[tower].n_loc, m->dims.dim };
  OviTensor *r = ovi_backend_new_act (m->be, 2, shape);

  if (r == NULL)
    g_set_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                 "fusion DiT: could not allocate a %" G_GINT64_FORMAT
                 " x %" G_GINT64_FORMAT " step-cache residual",
                 shape[0], shape[1]);
  return r;
}

/* ---- text embedding ---- */

OviTensor *
ovi_fusion_embed_text (OviFusion *m, OviTower which, const OviTensor *ctx,
                       GError **error)
{
  const OviFusionDims *d = &m->dims;
  OviFusionTower *t = &m->towers[which];
  int64_t ps[2] = { d->text_len, d->text_dim }, os[2] = { d->text_len, d->dim };
  g_autoptr (OviTensor) padded = NULL, hidden = NULL, rows = NULL;
  g_autoptr (OviTensor) out = NULL;

  if (ctx->ndim != 2 || ctx->shape[1] != d->text_dim
      || ctx->shape[0] > d->text_len || ctx->shape[0] < 1) {
    g_autofree char *s = ovi_shape_to_string (ctx->ndim, ctx->shape);
    g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                 "%s text context has shape %s, expected [n <= %d, %d]",
                 tower_prefix[which], s, d->text_len, d->text_dim);
    return NULL;
  }
  padded = ovi_backend_new_act (m->be, 2, ps);
  hidden = ovi_backend_new_act (m->be, 2, os);
  out = ovi_backend_new_act (m->be, 2, os);
  if (padded == NULL || hidden == NULL || out == NULL) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                 "out of memory embedding the text");
    return NULL;
  }
  ovi_op_fill (m->be, padded, 0);
  rows = ovi_tensor_narrow (padded, 0, 0, ctx->shape[0]);
  ovi_op_copy (m->be, rows, ctx);
  ovi_op_matmul (m->be, hidden, padded, t->text0.w, t->text0.b,
                 OVI_ACT_GELU_TANH);
  ovi_op_matmul (m->be, out, hidden, t->text2.w, t->text2.b, OVI_ACT_NONE);
  if (!ovi_backend_sync (m->be, error))
    return NULL;
  return g_steal_pointer (&out);
}
