/* gst-ovi: one forward of the fusion DiT (see ovi-fusion.h).
 *
 * Per fused block i (A = audio block i, V = video block i):
 *   a += gate_sa * A.self_attn (modulate (a)); v likewise
 *   a_sa = a
 *   a += A.cross (norm3 (a), text_A, fusion target v)
 *   a += gate_ff * A.ffn (modulate (a))
 *   v += V.cross (norm3 (v), text_V, fusion target a_sa)
 *   v += gate_ff * V.ffn (modulate (v))
 * where cross() attends with one query both to the text (no RoPE, all
 * text_len rows) and, RoPE-rotated, to the other tower; the two results
 * are summed before the shared output projection.
 *
 * The timestep takes at most two values per forward (t, and 0 for the
 * clean first latent frame), so the time embedding and the modulation are
 * computed for 2 rows and each run of tokens reads its row by a stride-0
 * view. */
#include "ovi-fusion-private.h"

#include <math.h>
#include <string.h>

/* eps of the fusion layers (hard-wired in the official model) */
#define FUSION_EPS 1e-6

typedef struct {
  OviFusion *m;
  OviBackend *be;
  OviFusionWork *w;
  const OviFusionDims *d;
} Fwd;

/* ---- views ---- */

static OviTensor *
rows (OviTensor *t, int64_t start, int64_t len)
{
  return ovi_tensor_narrow (t, 0, start, len);
}

/* row `row`, chunk `chunk` of a [R, C, D] table, repeated for len tokens */
static OviTensor *
chunk_rows (OviTensor *table, int row, int chunk, int64_t len)
{
  int64_t D = table->shape[2];
  int64_t shape[2] = { len, D }, stride[2] = { 0, 1 };

  return ovi_tensor_view (table, 2, shape, stride,
                          (row * table->shape[1] + chunk) * D);
}

/* [n, D] as [1, n, H, D/H] (attention) */
static OviTensor *
heads4 (OviTensor *t, int H)
{
  int64_t shape[4] = { 1, t->shape[0], H, t->shape[1] / H };
  return ovi_tensor_reshape (t, 4, shape);
}

/* [n, D] as [n, H, D/H] (RoPE) */
static OviTensor *
heads3 (OviTensor *t, int H)
{
  int64_t shape[3] = { t->shape[0], H, t->shape[1] / H };
  return ovi_tensor_reshape (t, 3, shape);
}

/* ---- per-token-run helpers ---- */

static void
modulate (Fwd *f, OviFusionTowerWork *tw, OviTensor *out, OviTensor *x,
          OviTensor *table, int c_shift, int c_scale)
{
  for (int s = 0; s < tw->nseg; s++) {
    int64_t st = tw->seg_start[s], len = tw->seg_len[s];
    g_autoptr (OviTensor) o = rows (out, st, len);
    g_autoptr (OviTensor) xi = rows (x, st, len);
    g_autoptr (OviTensor) sh = chunk_rows (table, tw->seg_row[s], c_shift, len);
    g_autoptr (OviTensor) sc = chunk_rows (table, tw->seg_row[s], c_scale, len);
    ovi_op_modulate (f->be, o, xi, sh, sc, f->d->eps);
  }
}

static void
gate_add (Fwd *f, OviFusionTowerWork *tw, OviTensor *x, OviTensor *y,
          OviTensor *table, int c_gate)
{
  for (int s = 0; s < tw->nseg; s++) {
    int64_t st = tw->seg_start[s], len = tw->seg_len[s];
    g_autoptr (OviTensor) xi = rows (x, st, len);
    g_autoptr (OviTensor) yi = rows (y, st, len);
    g_autoptr (OviTensor) g = chunk_rows (table, tw->seg_row[s], c_gate, len);
    ovi_op_gate_add (f->be, xi, yi, g);
  }
}

static void
linear (Fwd *f, OviTensor *out, OviTensor *x, const OviLinear *l,
        OviActivation act)
{
  ovi_op_matmul (f->be, out, x, l->w, l->b, act);
}

/* out = rms_norm (x . l) over the full width */
static void
linear_rms (Fwd *f, OviTensor *out, OviTensor *scratch, OviTensor *x,
            const OviLinear *l, OviTensor *gain, double eps)
{
  linear (f, scratch, x, l, OVI_ACT_NONE);
  ovi_op_rms_norm (f->be, out, scratch, gain, eps);
}

static void
rope (Fwd *f, OviTensor *out, OviTensor *x, OviFusionTowerWork *pos)
{
  g_autoptr (OviTensor) o = heads3 (out, f->d->num_heads);
  g_autoptr (OviTensor) xi = heads3 (x, f->d->num_heads);
  ovi_op_rope (f->be, o, xi, pos->cos, pos->sin);
}

static void
attention (Fwd *f, OviTensor *out, OviTensor *q, OviTensor *k, OviTensor *v)
{
  int H = f->d->num_heads;
  g_autoptr (OviTensor) o = heads4 (out, H);
  g_autoptr (OviTensor) q4 = heads4 (q, H);
  g_autoptr (OviTensor) k4 = heads4 (k, H);
  g_autoptr (OviTensor) v4 = heads4 (v, H);
  ovi_op_attention (f->be, o, q4, k4, v4, NULL, NULL,
                    1.0f / sqrtf ((float) (f->d->dim / H)));
}

static void
debug (Fwd *f, const char *name, OviTensor *t)
{
  if (f->m->debug)
    f->m->debug (name, t, f->m->debug_data);
}

/* the [R, C] rows of `src` expanded to one row per token, for debugging */
static void
debug_per_token (Fwd *f, OviFusionTowerWork *tw, const char *name,
                 OviTensor *src)
{
  int64_t C = ovi_tensor_numel (src) / src->shape[0];
  int64_t shape[2] = { tw->n, C }, stride[2] = { 0, 1 };
  g_autoptr (OviTensor) all = NULL;

  if (f->m->debug == NULL)
    return;
  all = ovi_backend_new_act (f->be, 2, shape);
  if (all == NULL)
    return;
  for (int s = 0; s < tw->nseg; s++) {
    g_autoptr (OviTensor) dst = rows (all, tw->seg_start[s], tw->seg_len[s]);
    shape[0] = tw->seg_len[s];
    g_autoptr (OviTensor) row
        = ovi_tensor_view (src, 2, shape, stride, tw->seg_row[s] * C);
    ovi_op_copy (f->be, dst, row);
  }
  debug (f, name, all);
}

/* ---- embeddings ---- */

static void
embed_video (Fwd *f, const OviTensor *video)
{
  OviFusionTowerWork *tw = &f->w->tw[OVI_TOWER_VIDEO];
  const int *p = f->d->patch;
  const int64_t *g = f->w->grid;
  int64_t C = video->shape[0], H = video->shape[2], W = video->shape[3];
  /* patches[(f,i,j), (c,a,b,e)] = video[c, f*pt+a, i*ph+b, j*pw+e] */
  int64_t shape[7] = { g[0], g[1], g[2], C, p[0], p[1], p[2] };
  int64_t stride[7]
      = { p[0] * H * W, p[1] * W, p[2], f->w->frames * H * W, H * W, W, 1 };
  g_autoptr (OviTensor) src
      = ovi_tensor_view ((OviTensor *) video, 7, shape, stride, 0);
  g_autoptr (OviTensor) dst = ovi_tensor_reshape (tw->patches, 7, shape);

  ovi_op_copy (f->be, dst, src);
  linear (f, tw->x, tw->patches, &f->m->towers[OVI_TOWER_VIDEO].patch,
          OVI_ACT_NONE);
}

/* "same" 1-D convolution along the tokens of channel-last x[n, Cin] as a
 * matmul over [n, Cin*K] patches; pad[n + K - 1, Cin] has zero margins. */
static void
conv_tokens (Fwd *f, OviTensor *out, OviTensor *x, OviTensor *pad,
             OviTensor *patches, OviTensor *w, OviTensor *bias,
             OviActivation act)
{
  int64_t n = x->shape[0], C = x->shape[1], K = pad->shape[0] - n + 1;
  int64_t shape[3] = { n, C, K }, stride[3] = { C, 1, C };
  g_autoptr (OviTensor) mid = rows (pad, K / 2, n);
  g_autoptr (OviTensor) win = NULL, dst = NULL;

  ovi_op_copy (f->be, mid, x);
  win = ovi_tensor_view (pad, 3, shape, stride, 0);
  dst = ovi_tensor_reshape (patches, 3, shape);
  ovi_op_copy (f->be, dst, win);
  ovi_op_matmul (f->be, out, patches, w, bias, act);
}

static void
embed_audio (Fwd *f, const OviTensor *audio)
{
  OviFusionTowerWork *tw = &f->w->tw[OVI_TOWER_AUDIO];
  OviFusionTower *t = &f->m->towers[OVI_TOWER_AUDIO];

  conv_tokens (f, tw->h0, (OviTensor *) audio, tw->pad_in, tw->patches,
               t->patch.w, t->patch.b, OVI_ACT_SILU);
  /* ConvMLP: w2 (silu (w1 x) * w3 x) */
  conv_tokens (f, tw->h1, tw->h0, tw->pad_h0, tw->patches_h0, t->w1, NULL,
               OVI_ACT_SILU);
  ovi_op_matmul (f->be, tw->h3, tw->patches_h0, t->w3, NULL, OVI_ACT_NONE);
  ovi_op_binary (f->be, tw->h1, tw->h1, tw->h3, OVI_BINARY_MUL);
  conv_tokens (f, tw->x, tw->h1, tw->pad_h1, tw->patches_h1, t->w2, NULL,
               OVI_ACT_NONE);
}

/* sinusoid of the timestep rows (cos first), float64 then the act dtype */
static gboolean
time_rows (Fwd *f, OviFusionTowerWork *tw, int n_rows, const double *t,
           GError **error)
{
  int half = f->d->freq_dim / 2;
  int64_t shape[2] = { n_rows, 2 * half };
  g_autoptr (OviTensor) host = ovi_tensor_new (OVI_DTYPE_F32, 2, shape, error);
  g_autoptr (OviTensor) dst = NULL;

  if (host == NULL)
    return FALSE;
  float *h = ovi_tensor_data (host);
  for (int r = 0; r < n_rows; r++)
    for (int k = 0; k < half; k++) {
      double a = t[r] * pow (10000.0, -((double) k / half));
      h[r * 2 * half + k] = (float) cos (a);
      h[r * 2 * half + half + k] = (float) sin (a);
    }
  dst = rows (tw->sinus, 0, n_rows);
  ovi_op_copy (f->be, dst, host);
  return TRUE;
}

static gboolean
embed_time (Fwd *f, OviTower which, int n_rows, const double *t, GError **error)
{
  OviFusionTowerWork *tw = &f->w->tw[which];
  OviFusionTower *tower = &f->m->towers[which];

  if (!time_rows (f, tw, n_rows, t, error))
    return FALSE;
  /* e = time_embedding (sinusoid); e0 = time_projection (e) */
  linear (f, tw->es, tw->sinus, &tower->time0, OVI_ACT_SILU);
  linear (f, tw->e, tw->es, &tower->time2, OVI_ACT_NONE);
  ovi_op_unary (f->be, tw->es, tw->e, OVI_ACT_SILU, 1.0f);
  linear (f, tw->e0, tw->es, &tower->proj, OVI_ACT_NONE);
  return TRUE;
}

/* which timestep row each run of tokens uses */
static void
set_segments (OviFusionTowerWork *tw, int64_t clean_tokens)
{
  clean_tokens = MIN (clean_tokens, tw->n);
  tw->nseg = 0;
  if (clean_tokens > 0) {
    tw->seg_start[tw->nseg] = 0;
    tw->seg_len[tw->nseg] = clean_tokens;
    tw->seg_row[tw->nseg++] = 1;
  }
  if (clean_tokens < tw->n) {
    tw->seg_start[tw->nseg] = clean_tokens;
    tw->seg_len[tw->nseg] = tw->n - clean_tokens;
    tw->seg_row[tw->nseg++] = 0;
  }
}

/* ---- blocks ---- */

/* mod[R, 6, D] = block.modulation[1, 6, D] + e0[R, 6, D] */
static void
block_modulation (Fwd *f, OviFusionTowerWork *tw, const OviFusionBlock *b)
{
  int64_t shape[3] = { 2, 6, f->d->dim };
  g_autoptr (OviTensor) e0 = ovi_tensor_reshape (tw->e0, 3, shape);
  ovi_op_binary (f->be, tw->mod, e0, b->modulation, OVI_BINARY_ADD);
}

static void
self_attention (Fwd *f, OviFusionTowerWork *tw, const OviFusionBlock *b)
{
  const OviFusionAttn *a = &b->sa;
  double eps = f->d->eps;

  block_modulation (f, tw, b);
  modulate (f, tw, tw->xm, tw->x, tw->mod, 0, 1);
  linear_rms (f, tw->q, tw->proj, tw->xm, &a->q, a->norm_q, eps);
  linear_rms (f, tw->k, tw->proj, tw->xm, &a->k, a->norm_k, eps);
  linear (f, tw->v, tw->xm, &a->v, OVI_ACT_NONE);
  rope (f, tw->qr, tw->q, tw);
  rope (f, tw->kr, tw->k, tw);
  attention (f, tw->att, tw->qr, tw->kr, tw->v);
  linear (f, tw->proj, tw->att, &a->o, OVI_ACT_NONE);
  gate_add (f, tw, tw->x, tw->proj, tw->mod, 2);
}

/* x += o (text_attn (q) + fusion_attn (rope (q))); `target` is the other
 * tower's state, `target_pos` its RoPE tables */
static void
cross_fusion (Fwd *f, OviFusionTowerWork *tw, const OviFusionBlock *b,
              const OviTensor *text, OviTensor *target,
              OviFusionTowerWork *target_pos)
{
  const OviFusionAttn *a = &b->ca;
  double eps = f->d->eps;

  ovi_op_layer_norm (f->be, tw->xm, tw->x, b->norm3_w, b->norm3_b, eps);
  linear_rms (f, tw->q, tw->proj, tw->xm, &a->q, a->norm_q, eps);
  linear_rms (f, tw->tk, tw->tproj, (OviTensor *) text, &a->k, a->norm_k, eps);
  linear (f, tw->tv, (OviTensor *) text, &a->v, OVI_ACT_NONE);
  attention (f, tw->att, tw->q, tw->tk, tw->tv);

  ovi_op_layer_norm (f->be, tw->fn, target, b->pre_norm_w, b->pre_norm_b,
                     FUSION_EPS);
  linear_rms (f, tw->fk, tw->fproj, tw->fn, &b->k_fusion, b->norm_k_fusion,
              FUSION_EPS);
  linear (f, tw->fv, tw->fn, &b->v_fusion, OVI_ACT_NONE);
  rope (f, tw->qr, tw->q, tw);
  rope (f, tw->fkr, tw->fk, target_pos);
  attention (f, tw->att2, tw->qr, tw->fkr, tw->fv);

  ovi_op_axpby (f->be, tw->xm, 1.0f, tw->att, 1.0f, tw->att2);
  linear (f, tw->proj, tw->xm, &a->o, OVI_ACT_NONE);
  ovi_op_axpby (f->be, tw->x, 1.0f, tw->x, 1.0f, tw->proj);
}

static void
feed_forward (Fwd *f, OviFusionTowerWork *tw, const OviFusionBlock *b)
{
  modulate (f, tw, tw->xm, tw->x, tw->mod, 3, 4);
  linear (f, tw->ffn, tw->xm, &b->ffn0, OVI_ACT_GELU_TANH);
  linear (f, tw->proj, tw->ffn, &b->ffn2, OVI_ACT_NONE);
  gate_add (f, tw, tw->x, tw->proj, tw->mod, 5);
}

/* ---- block streaming (ovi_fusion_set_streaming) ---- */

#define N_STREAMED 12

static void
block_linears (OviFusionBlock *b, OviLinear *l[N_STREAMED])
{
  OviLinear *all[N_STREAMED]
      = { &b->sa.q, &b->sa.k, &b->sa.v,     &b->sa.o,     &b->ca.q, &b->ca.k,
          &b->ca.v, &b->ca.o, &b->k_fusion, &b->v_fusion, &b->ffn0, &b->ffn2 };
  memcpy (l, all, sizeof all);
}

static OviTensor *
slot_like (Fwd *f, const OviTensor *src)
{
  OviTensor *t
      = ovi_backend_new_tensor (f->be, src->dtype, src->ndim, src->shape);
  if (t && src->scale)
    t->scale = ovi_backend_new_tensor (f->be, src->scale->dtype,
                                       src->scale->ndim, src->scale->shape);
  if (t)
    g_ptr_array_add (f->m->slot_keep, t);
  return t && (src->scale == NULL || t->scale) ? t : NULL;
}

/* block i of `tower` with its matmul weights copied into slot set i % 2 */
static const OviFusionBlock *
stream_block (Fwd *f, OviTower tower, int i)
{
  OviFusionBlock *dst = &f->m->slots[i % 2][tower];
  OviFusionBlock *src = &f->m->towers[tower].blocks[i];
  OviLinear *dl[N_STREAMED], *sl[N_STREAMED];
  OviTensor *w[N_STREAMED];

  if (f->m->slot_keep == NULL)
    f->m->slot_keep
        = g_ptr_array_new_with_free_func ((GDestroyNotify) ovi_tensor_unref);
  block_linears (dst, dl);
  block_linears (src, sl);
  for (int k = 0; k < N_STREAMED; k++) {
    w[k] = dl[k]->w ? dl[k]->w : slot_like (f, sl[k]->w);
    if (w[k] == NULL)
      return NULL; /* the backend holds the error */
  }
  *dst = *src; /* biases, gains, modulation: resident */
  for (int k = 0; k < N_STREAMED; k++) {
    dl[k]->w = w[k];
    if (sl[k]->w->scale)
      ovi_op_copy (f->be, w[k]->scale, sl[k]->w->scale);
    ovi_op_copy (f->be, w[k], sl[k]->w);
  }
  return dst;
}

static void
fused_block (Fwd *f, int i, const OviFusionPass *pass)
{
  OviFusionTowerWork *v = &f->w->tw[OVI_TOWER_VIDEO];
  OviFusionTowerWork *a = &f->w->tw[OVI_TOWER_AUDIO];
  const OviFusionBlock *vb = &f->m->towers[OVI_TOWER_VIDEO].blocks[i];
  const OviFusionBlock *ab = &f->m->towers[OVI_TOWER_AUDIO].blocks[i];

  if (f->m->stream) {
    vb = stream_block (f, OVI_TOWER_VIDEO, i);
    ab = stream_block (f, OVI_TOWER_AUDIO, i);
    if (vb == NULL || ab == NULL)
      return;
  }

  self_attention (f, a, ab);
  self_attention (f, v, vb);
  ovi_op_copy (f->be, f->w->audio_sa, a->x);
  cross_fusion (f, a, ab, pass->text_audio, v->x, v);
  feed_forward (f, a, ab);
  cross_fusion (f, v, vb, pass->text_video, f->w->audio_sa, a);
  feed_forward (f, v, vb);
}

/* ---- head ---- */

static void
head (Fwd *f, OviTower which)
{
  OviFusionTowerWork *tw = &f->w->tw[which];
  OviFusionTower *t = &f->m->towers[which];
  int64_t D = f->d->dim;
  int64_t shape[3] = { 2, 2, D }, stride[3] = { D, 0, 1 };
  g_autoptr (OviTensor) e = ovi_tensor_view (tw->e, 3, shape, stride, 0);

  /* shift, scale = head.modulation + e (the time embedding, not e0) */
  ovi_op_copy (f->be, tw->hmod, e);
  ovi_op_binary (f->be, tw->hmod, tw->hmod, t->head_mod, OVI_BINARY_ADD);
  modulate (f, tw, tw->xm, tw->x, tw->hmod, 0, 1);
  linear (f, tw->head, tw->xm, &t->head, OVI_ACT_NONE);
}

/* head[(f,i,j), (a,b,e,c)] -> out[c, f*pt+a, i*ph+b, j*pw+e] */
static void
unpatchify (Fwd *f, OviTensor *out)
{
  OviFusionTowerWork *tw = &f->w->tw[OVI_TOWER_VIDEO];
  const int *p = f->d->patch;
  const int64_t *g = f->w->grid;
  int64_t c = f->d->video_out;
  int64_t hs[7] = { g[0], g[1], g[2], p[0], p[1], p[2], c };
  int64_t os[7] = { c, g[0], p[0], g[1], p[1], g[2], p[2] };
  const int order[7] = { 6, 0, 3, 1, 4, 2, 5 };
  g_autoptr (OviTensor) h7 = ovi_tensor_reshape (tw->head, 7, hs);
  g_autoptr (OviTensor) src = ovi_tensor_permute (h7, order);
  g_autoptr (OviTensor) dst = ovi_tensor_reshape (out, 7, os);

  ovi_op_copy (f->be, dst, src);
}

/* ---- entry point ---- */

static gboolean
check_io (const char *what, const OviTensor *t, int ndim, const int64_t *shape,
          GError **error)
{
  if (ovi_tensor_has_shape (t, ndim, shape) && ovi_tensor_is_contiguous (t))
    return TRUE;
  g_autofree char *got = ovi_shape_to_string (t->ndim, t->shape);
  g_autofree char *want = ovi_shape_to_string (ndim, shape);
  g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
               "fusion DiT %s has shape %s%s, expected %s (contiguous)", what,
               got, ovi_tensor_is_contiguous (t) ? "" : " (strided)", want);
  return FALSE;
}

static gboolean
check_args (Fwd *f, const OviTensor *video, const OviTensor *audio,
            const OviFusionPass *pass, const OviTensor *out_video,
            const OviTensor *out_audio, GError **error)
{
  const OviFusionDims *d = f->d;
  OviFusionWork *w = f->w;
  int64_t vin[4] = { d->video_in, w->frames, w->height, w->width };
  int64_t vout[4] = { d->video_out, w->frames, w->height, w->width };
  int64_t ain[2] = { w->audio_length, d->audio_in };
  int64_t aout[2] = { w->audio_length, d->audio_out };
  int64_t text[2] = { d->text_len, d->dim };

  return check_io ("video input", video, 4, vin, error)
         && check_io ("audio input", audio, 2, ain, error)
         && check_io ("video output", out_video, 4, vout, error)
         && check_io ("audio output", out_audio, 2, aout, error)
         && check_io ("video text embedding", pass->text_video, 2, text, error)
         && check_io ("audio text embedding", pass->text_audio, 2, text, error);
}

static void
debug_embeddings (Fwd *f)
{
  static const char *const name[OVI_N_TOWERS] = { "vid", "audio" };

  if (f->m->debug == NULL)
    return;
  for (int w = 0; w < OVI_N_TOWERS; w++) {
    OviFusionTowerWork *tw = &f->w->tw[w];
    g_autofree char *x = g_strdup_printf ("%s.x_embed", name[w]);
    g_autofree char *e = g_strdup_printf ("%s.e", name[w]);
    g_autofree char *e0 = g_strdup_printf ("%s.e0", name[w]);
    debug (f, x, tw->x);
    debug_per_token (f, tw, e, tw->e);
    debug_per_token (f, tw, e0, tw->e0);
  }
}

static void
debug_block (Fwd *f, int i)
{
  g_autofree char *v = NULL, *a = NULL;

  if (f->m->debug == NULL)
    return;
  v = g_strdup_printf ("block%d.vid_out", i);
  a = g_strdup_printf ("block%d.audio_out", i);
  debug (f, v, f->w->tw[OVI_TOWER_VIDEO].x);
  debug (f, a, f->w->tw[OVI_TOWER_AUDIO].x);
}

gboolean
ovi_fusion_forward (OviFusion *m, OviFusionWork *w, const OviTensor *video,
                    const OviTensor *audio, const OviFusionPass *pass,
                    OviTensor *out_video, OviTensor *out_audio, GError **error)
{
  Fwd f = { .m = m, .be = m->be, .w = w, .d = &m->dims };
  double t[2] = { pass->timestep, 0.0 };
  int video_rows = pass->first_frame_clean ? 2 : 1;

  if (!check_args (&f, video, audio, pass, out_video, out_audio, error))
    return FALSE;
  set_segments (&w->tw[OVI_TOWER_VIDEO],
                pass->first_frame_clean ? w->grid[1] * w->grid[2] : 0);
  set_segments (&w->tw[OVI_TOWER_AUDIO], 0);
  embed_video (&f, video);
  embed_audio (&f, audio);
  if (!embed_time (&f, OVI_TOWER_VIDEO, video_rows, t, error)
      || !embed_time (&f, OVI_TOWER_AUDIO, 1, t, error))
    return FALSE;
  debug_embeddings (&f);
  for (int i = 0; i < m->dims.num_layers; i++) {
    if (pass->slg_layer > 0 && i == pass->slg_layer)
      continue;
    fused_block (&f, i, pass);
    debug_block (&f, i);
  }
  head (&f, OVI_TOWER_VIDEO);
  head (&f, OVI_TOWER_AUDIO);
  unpatchify (&f, out_video);
  ovi_op_copy (m->be, out_audio, w->tw[OVI_TOWER_AUDIO].head);
  return ovi_backend_sync (m->be, error);
}
