/* SPDX-License-Identifier: LGPL-2.1-or-later */
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
 * The timestep takes at most two values per branch (t, and 0 for the
 * clean first latent frame), so the time embedding and the modulation are
 * computed for 2 rows per branch and each run of tokens reads its row by a
 * stride-0 view.
 *
 * Several branches (the CFG passes of a step) run as one forward: their
 * tokens are stacked along the rows of every activation (OviFusionWork's
 * batch), so each matmul reads its weight once for all of them, while
 * attention, RoPE tables and modulation rows stay per branch. A branch that
 * skips a block (skip-layer guidance) leaves it to the others, which run it
 * on a view of their rows.
 *
 * Sequence parallelism (Ulysses, as the official code computes it; see
 * ovi_fusion_work_new_parallel): each tower's tokens are padded to a
 * multiple of the P ranks and each rank keeps one slice of every branch
 * (with its timestep rows). Per-token work (modulation, projections, FFN)
 * runs on the slice; for attention q, k, v go through an all-to-all to
 * every token times H/P heads, RoPE is applied there on the full
 * positions, padded keys are masked, and the result comes back by the
 * inverse all-to-all. The text K/V are computed from the whole text and
 * cut to the local heads; the other tower's fusion K/V are projected on
 * its slice and all-to-all'd. The head output is all-gathered. The
 * collectives are ordered on the backend's stream like any op: nothing
 * waits on the host between them. */
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

static int64_t
head_dim (Fwd *f)
{
  return f->d->dim / f->d->num_heads;
}

/* [B * n, h * hd] (rows may be strided) as [B, n, h, hd] (attention) */
static OviTensor *
heads4 (Fwd *f, OviTensor *t)
{
  int64_t hd = head_dim (f), B = f->w->batch, n = t->shape[0] / B;
  int64_t shape[4] = { B, n, t->shape[1] / hd, hd };
  int64_t stride[4] = { n * t->stride[0], t->stride[0], hd, 1 };
  return ovi_tensor_view (t, 4, shape, stride, 0);
}

/* [n, h * hd] as [n, h, hd] (RoPE) */
static OviTensor *
heads3 (Fwd *f, OviTensor *t)
{
  int64_t hd = head_dim (f);
  int64_t shape[3] = { t->shape[0], t->shape[1] / hd, hd };
  return ovi_tensor_reshape (t, 3, shape);
}

/* the columns of this rank's heads of a [rows, dim] tensor */
static OviTensor *
local_heads (Fwd *f, OviTensor *t)
{
  int64_t width = t->shape[1] / f->w->ranks;
  return ovi_tensor_narrow (t, 1, f->w->rank * width, width);
}

/* ---- sequence parallelism (no-ops with one rank) ---- */

static void
seq_to_heads (Fwd *f, OviTensor *full, OviTensor *local)
{
  if (f->w->comm)
    ovi_comm_seq_to_heads (f->w->comm, full, local, f->w->batch, f->w->a2a);
}

static void
heads_to_seq (Fwd *f, OviTensor *local, OviTensor *full)
{
  if (f->w->comm)
    ovi_comm_heads_to_seq (f->w->comm, local, full, f->w->batch, f->w->a2a);
}

static void
gather_tokens (Fwd *f, OviTensor *full, OviTensor *local)
{
  if (f->w->comm)
    ovi_comm_all_gather (f->w->comm, full, local);
}

/* keys past the real tokens are padding (one length per branch) */
static const int64_t *
key_lens (Fwd *f, OviFusionTowerWork *tw, int64_t lens[2])
{
  if (tw->n_pad == tw->n)
    return NULL;
  for (int b = 0; b < f->w->batch; b++)
    lens[b] = tw->n;
  return lens;
}

/* ---- per-token-run helpers ---- */

/* segment s of branch b: its first token row and its timestep row */
static int64_t
seg_start (OviFusionTowerWork *tw, int b, int s)
{
  return b * tw->n_loc + tw->seg_start[s];
}

static int
seg_row (OviFusionTowerWork *tw, int b, int s)
{
  return 2 * b + tw->seg_row[s];
}

static void
modulate (Fwd *f, OviFusionTowerWork *tw, OviTensor *out, OviTensor *x,
          OviTensor *table, int c_shift, int c_scale)
{
  for (int b = 0; b < f->w->batch; b++)
    for (int s = 0; s < tw->nseg; s++) {
      int64_t st = seg_start (tw, b, s), len = tw->seg_len[s];
      int row = seg_row (tw, b, s);
      g_autoptr (OviTensor) o = rows (out, st, len);
      g_autoptr (OviTensor) xi = rows (x, st, len);
      g_autoptr (OviTensor) sh = chunk_rows (table, row, c_shift, len);
      g_autoptr (OviTensor) sc = chunk_rows (table, row, c_scale, len);
      ovi_op_modulate (f->be, o, xi, sh, sc, f->d->eps);
    }
}

static void
gate_add (Fwd *f, OviFusionTowerWork *tw, OviTensor *x, OviTensor *y,
          OviTensor *table, int c_gate)
{
  for (int b = 0; b < f->w->batch; b++)
    for (int s = 0; s < tw->nseg; s++) {
      int64_t st = seg_start (tw, b, s), len = tw->seg_len[s];
      g_autoptr (OviTensor) xi = rows (x, st, len);
      g_autoptr (OviTensor) yi = rows (y, st, len);
      g_autoptr (OviTensor) g
          = chunk_rows (table, seg_row (tw, b, s), c_gate, len);
      ovi_op_gate_add (f->be, xi, yi, g);
    }
}

static void
linear (Fwd *f, OviTensor *out, OviTensor *x, const OviLinear *l,
        OviActivation act)
{
  if (l->lora) {
    ovi_fusion_lora_linear (f->m, out, x, l, act);
    return;
  }
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
  g_autoptr (OviTensor) o = heads3 (f, out);
  g_autoptr (OviTensor) xi = heads3 (f, x);
  ovi_op_rope (f->be, o, xi, pos->cos, pos->sin);
}

/* per branch: branch b's queries attend to branch b's keys */
static void
attention (Fwd *f, OviTensor *out, OviTensor *q, OviTensor *k, OviTensor *v,
           const int64_t *kv_lens)
{
  g_autoptr (OviTensor) o = heads4 (f, out);
  g_autoptr (OviTensor) q4 = heads4 (f, q);
  g_autoptr (OviTensor) k4 = heads4 (f, k);
  g_autoptr (OviTensor) v4 = heads4 (f, v);
  ovi_op_attention (f->be, o, q4, k4, v4, NULL, kv_lens,
                    1.0f / sqrtf ((float) head_dim (f)));
}

/* a batched tensor of this rank's tokens, reported for all tokens (every
 * rank calls it: the ranks gather their slices) */
static void
debug (Fwd *f, OviFusionTowerWork *tw, const char *name, OviTensor *local)
{
  int64_t shape[3] = { f->w->ranks, local->shape[0], local->shape[1] };
  int64_t B = f->w->batch, n = tw->n_loc, C = local->shape[1];
  g_autoptr (OviTensor) all = NULL;

  if (f->m->debug == NULL)
    return;
  if (f->w->comm == NULL) {
    f->m->debug (name, local, f->m->debug_data);
    return;
  }
  /* all[r, b * n + i] is token r * n + i of branch b */
  all = ovi_backend_new_act (f->be, 3, shape);
  if (all == NULL)
    return;
  gather_tokens (f, all, local);
  int64_t tok[4] = { B, f->w->ranks, n, C };
  int64_t tst[4] = { n * C, B * n * C, C, 1 };
  int64_t os[3] = { B, f->w->ranks * n, C };
  g_autoptr (OviTensor) by_token = ovi_tensor_view (all, 4, tok, tst, 0);
  g_autoptr (OviTensor) ordered = ovi_backend_new_act (f->be, 3, os);
  if (ordered == NULL)
    return;
  g_autoptr (OviTensor) dst = ovi_tensor_reshape (ordered, 4, tok);
  g_autoptr (OviTensor) real = ovi_tensor_narrow (ordered, 1, 0, tw->n);
  ovi_op_copy (f->be, dst, by_token);
  f->m->debug (name, real, f->m->debug_data);
}

/* the [R, C] rows of `src` expanded to one row per token, for debugging */
static void
debug_per_token (Fwd *f, OviFusionTowerWork *tw, const char *name,
                 OviTensor *src)
{
  int64_t C = ovi_tensor_numel (src) / src->shape[0];
  int64_t shape[2] = { f->w->batch * tw->n_loc, C }, stride[2] = { 0, 1 };
  g_autoptr (OviTensor) all = NULL;

  if (f->m->debug == NULL)
    return;
  all = ovi_backend_new_act (f->be, 2, shape);
  if (all == NULL)
    return;
  for (int b = 0; b < f->w->batch; b++)
    for (int s = 0; s < tw->nseg; s++) {
      g_autoptr (OviTensor) dst
          = rows (all, seg_start (tw, b, s), tw->seg_len[s]);
      shape[0] = tw->seg_len[s];
      g_autoptr (OviTensor) row
          = ovi_tensor_view (src, 2, shape, stride, seg_row (tw, b, s) * C);
      ovi_op_copy (f->be, dst, row);
    }
  debug (f, tw, name, all);
}

/* ---- embeddings ---- */

/* the branches share their latents: this rank's slice of the embedding
 * (all of it with one rank, where `embed` is branch 0's rows) into every
 * branch's rows, padding rows zero */
static void
copy_to_branches (Fwd *f, OviFusionTowerWork *tw)
{
  int64_t real = CLAMP (tw->n - tw->start, 0, tw->n_loc);
  g_autoptr (OviTensor) src = rows (tw->embed, MIN (tw->start, tw->n), real);

  for (int b = f->w->ranks == 1 ? 1 : 0; b < f->w->batch; b++) {
    g_autoptr (OviTensor) dst = rows (tw->x, b * tw->n_loc, real);
    g_autoptr (OviTensor) pad
        = rows (tw->x, b * tw->n_loc + real, tw->n_loc - real);
    ovi_op_copy (f->be, dst, src);
    if (real < tw->n_loc)
      ovi_op_fill (f->be, pad, 0);
  }
}

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
  linear (f, tw->embed, tw->patches, &f->m->towers[OVI_TOWER_VIDEO].patch,
          OVI_ACT_NONE);
  copy_to_branches (f, tw);
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
  conv_tokens (f, tw->embed, tw->h1, tw->pad_h1, tw->patches_h1, t->w2, NULL,
               OVI_ACT_NONE);
  copy_to_branches (f, tw);
}

/* sinusoid of the timestep rows (cos first), float64 then the act dtype */
static gboolean
time_rows (Fwd *f, OviFusionTowerWork *tw, const double *t, GError **error)
{
  int n_rows = 2 * f->w->batch;
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

/* t: 2 rows per branch, its timestep and 0 (the clean first frame) */
static gboolean
embed_time (Fwd *f, OviTower which, const double *t, GError **error)
{
  OviFusionTowerWork *tw = &f->w->tw[which];
  OviFusionTower *tower = &f->m->towers[which];

  if (!time_rows (f, tw, t, error))
    return FALSE;
  /* e = time_embedding (sinusoid); e0 = time_projection (e) */
  linear (f, tw->es, tw->sinus, &tower->time0, OVI_ACT_SILU);
  linear (f, tw->e, tw->es, &tower->time2, OVI_ACT_NONE);
  ovi_op_unary (f->be, tw->es, tw->e, OVI_ACT_SILU, 1.0f);
  linear (f, tw->e0, tw->es, &tower->proj, OVI_ACT_NONE);
  return TRUE;
}

/* which timestep row each run of this rank's tokens uses: the first
 * `clean_tokens` of the sequence row 1, the others (padding too) row 0 */
static void
set_segments (OviFusionTowerWork *tw, int64_t clean_tokens)
{
  int64_t clean = CLAMP (MIN (clean_tokens, tw->n) - tw->start, 0, tw->n_loc);

  tw->nseg = 0;
  if (clean > 0) {
    tw->seg_start[tw->nseg] = 0;
    tw->seg_len[tw->nseg] = clean;
    tw->seg_row[tw->nseg++] = 1;
  }
  if (clean < tw->n_loc) {
    tw->seg_start[tw->nseg] = clean;
    tw->seg_len[tw->nseg] = tw->n_loc - clean;
    tw->seg_row[tw->nseg++] = 0;
  }
}

/* ---- blocks ---- */

/* mod[R, 6, D] = block.modulation[1, 6, D] + e0[R, 6, D] */
static void
block_modulation (Fwd *f, OviFusionTowerWork *tw, const OviFusionBlock *b)
{
  int64_t shape[3] = { 2 * f->w->batch, 6, f->d->dim };
  g_autoptr (OviTensor) e0 = ovi_tensor_reshape (tw->e0, 3, shape);
  ovi_op_binary (f->be, tw->mod, e0, b->modulation, OVI_BINARY_ADD);
}

static void
self_attention (Fwd *f, OviFusionTowerWork *tw, const OviFusionBlock *b)
{
  const OviFusionAttn *a = &b->sa;
  double eps = f->d->eps;
  int64_t lens[2];

  block_modulation (f, tw, b);
  modulate (f, tw, tw->xm, tw->x, tw->mod, 0, 1);
  linear_rms (f, tw->q, tw->proj, tw->xm, &a->q, a->norm_q, eps);
  seq_to_heads (f, tw->qf, tw->q);
  linear_rms (f, tw->k, tw->proj, tw->xm, &a->k, a->norm_k, eps);
  seq_to_heads (f, tw->kf, tw->k);
  linear (f, tw->v, tw->xm, &a->v, OVI_ACT_NONE);
  seq_to_heads (f, tw->vf, tw->v);
  rope (f, tw->qr, tw->qf, tw);
  rope (f, tw->kr, tw->kf, tw);
  attention (f, tw->attf, tw->qr, tw->kr, tw->vf, key_lens (f, tw, lens));
  heads_to_seq (f, tw->att, tw->attf);
  linear (f, tw->proj, tw->att, &a->o, OVI_ACT_NONE);
  gate_add (f, tw, tw->x, tw->proj, tw->mod, 2);
}

/* x += o (text_attn (q) + fusion_attn (rope (q))); `target` is the other
 * tower's state, `target_pos` its RoPE tables */
static void
cross_fusion (Fwd *f, OviFusionTowerWork *tw, const OviFusionBlock *b,
              OviTensor *target, OviFusionTowerWork *target_pos)
{
  const OviFusionAttn *a = &b->ca;
  double eps = f->d->eps;
  int64_t lens[2];
  g_autoptr (OviTensor) tk = NULL, tv = NULL;

  ovi_op_layer_norm (f->be, tw->xm, tw->x, b->norm3_w, b->norm3_b, eps);
  linear_rms (f, tw->q, tw->proj, tw->xm, &a->q, a->norm_q, eps);
  seq_to_heads (f, tw->qf, tw->q);
  linear_rms (f, tw->tk, tw->tproj, tw->text, &a->k, a->norm_k, eps);
  linear (f, tw->tv, tw->text, &a->v, OVI_ACT_NONE);
  tk = local_heads (f, tw->tk);
  tv = local_heads (f, tw->tv);
  attention (f, tw->attf, tw->qf, tk, tv, NULL);

  ovi_op_layer_norm (f->be, tw->fn, target, b->pre_norm_w, b->pre_norm_b,
                     FUSION_EPS);
  linear_rms (f, tw->fk, tw->fproj, tw->fn, &b->k_fusion, b->norm_k_fusion,
              FUSION_EPS);
  seq_to_heads (f, tw->fkf, tw->fk);
  linear (f, tw->fv, tw->fn, &b->v_fusion, OVI_ACT_NONE);
  seq_to_heads (f, tw->fvf, tw->fv);
  rope (f, tw->qr, tw->qf, tw);
  rope (f, tw->fkr, tw->fkf, target_pos);
  attention (f, tw->att2, tw->qr, tw->fkr, tw->fvf,
             key_lens (f, target_pos, lens));

  /* the two attentions share the output projection */
  ovi_op_axpby (f->be, tw->attf, 1.0f, tw->attf, 1.0f, tw->att2);
  heads_to_seq (f, tw->att, tw->attf);
  linear (f, tw->proj, tw->att, &a->o, OVI_ACT_NONE);
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

static void
fused_block (Fwd *f, int i)
{
  OviFusionTowerWork *v = &f->w->tw[OVI_TOWER_VIDEO];
  OviFusionTowerWork *a = &f->w->tw[OVI_TOWER_AUDIO];
  const OviFusionBlock *vb = &f->m->towers[OVI_TOWER_VIDEO].blocks[i];
  const OviFusionBlock *ab = &f->m->towers[OVI_TOWER_AUDIO].blocks[i];

  if (f->m->stream) {
    vb = ovi_fusion_stream_block (f->m, OVI_TOWER_VIDEO);
    ab = ovi_fusion_stream_block (f->m, OVI_TOWER_AUDIO);
  } else if (f->m->shards) {
    vb = ovi_fusion_shard_block (f->m, OVI_TOWER_VIDEO, i);
    ab = ovi_fusion_shard_block (f->m, OVI_TOWER_AUDIO, i);
  }
  if (vb == NULL || ab == NULL)
    return;

  self_attention (f, a, ab);
  self_attention (f, v, vb);
  ovi_op_copy (f->be, f->w->audio_sa, a->x);
  cross_fusion (f, a, ab, v->x, v);
  feed_forward (f, a, ab);
  cross_fusion (f, v, vb, f->w->audio_sa, a);
  feed_forward (f, v, vb);
}

/* ---- head ---- */

static void
head (Fwd *f, OviTower which)
{
  OviFusionTowerWork *tw = &f->w->tw[which];
  OviFusionTower *t = &f->m->towers[which];
  int64_t D = f->d->dim;
  int64_t shape[3] = { 2 * f->w->batch, 2, D }, stride[3] = { D, 0, 1 };
  g_autoptr (OviTensor) e = ovi_tensor_view (tw->e, 3, shape, stride, 0);

  /* shift, scale = head.modulation + e (the time embedding, not e0) */
  ovi_op_copy (f->be, tw->hmod, e);
  ovi_op_binary (f->be, tw->hmod, tw->hmod, t->head_mod, OVI_BINARY_ADD);
  modulate (f, tw, tw->xm, tw->x, tw->hmod, 0, 1);
  linear (f, tw->head, tw->xm, &t->head, OVI_ACT_NONE);
  /* every rank's tokens of branch b into headf's rows of branch b */
  for (int b = 0; f->w->comm && b < f->w->batch; b++) {
    g_autoptr (OviTensor) mine = rows (tw->head, b * tw->n_loc, tw->n_loc);
    g_autoptr (OviTensor) all = rows (tw->headf, b * tw->n_pad, tw->n_pad);
    gather_tokens (f, all, mine);
  }
}

/* head[(f,i,j), (a,b,e,c)] of branch `branch` -> out[c, f*pt+a, i*ph+b,
 * j*pw+e] */
static void
unpatchify (Fwd *f, OviTensor *out, int branch)
{
  OviFusionTowerWork *tw = &f->w->tw[OVI_TOWER_VIDEO];
  const int *p = f->d->patch;
  const int64_t *g = f->w->grid;
  int64_t c = f->d->video_out;
  int64_t hs[7] = { g[0], g[1], g[2], p[0], p[1], p[2], c };
  int64_t os[7] = { c, g[0], p[0], g[1], p[1], g[2], p[2] };
  const int order[7] = { 6, 0, 3, 1, 4, 2, 5 };
  g_autoptr (OviTensor) head = rows (tw->headf, branch * tw->n_pad, tw->n);
  g_autoptr (OviTensor) h7 = ovi_tensor_reshape (head, 7, hs);
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
check_branch (Fwd *f, const OviFusionBranch *br, GError **error)
{
  const OviFusionDims *d = f->d;
  OviFusionWork *w = f->w;
  int64_t vout[4] = { d->video_out, w->frames, w->height, w->width };
  int64_t aout[2] = { w->audio_length, d->audio_out };
  int64_t text[2] = { d->text_len, d->dim };

  return check_io ("video output", br->out_video, 4, vout, error)
         && check_io ("audio output", br->out_audio, 2, aout, error)
         && check_io ("video text embedding", br->pass.text_video, 2, text,
                      error)
         && check_io ("audio text embedding", br->pass.text_audio, 2, text,
                      error);
}

static gboolean
check_args (Fwd *f, const OviTensor *video, const OviTensor *audio,
            const OviFusionBranch *branches, int n, GError **error)
{
  const OviFusionDims *d = f->d;
  OviFusionWork *w = f->w;
  int64_t vin[4] = { d->video_in, w->frames, w->height, w->width };
  int64_t ain[2] = { w->audio_length, d->audio_in };

  if (n < 1 || n > w->batch) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "fusion DiT: %d branches in one forward, the work holds 1 to "
                 "%d",
                 n, w->batch);
    return FALSE;
  }
  for (int b = 0; b < n; b++) {
    if (!check_branch (f, &branches[b], error))
      return FALSE;
    if (branches[b].pass.first_frame_clean
        != branches[0].pass.first_frame_clean) {
      g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                   "fusion DiT: branches %d and 0 disagree on "
                   "first_frame_clean",
                   b);
      return FALSE;
    }
  }
  return check_io ("video input", video, 4, vin, error)
         && check_io ("audio input", audio, 2, ain, error);
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
    debug (f, tw, x, tw->x);
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
  debug (f, &f->w->tw[OVI_TOWER_VIDEO], v, f->w->tw[OVI_TOWER_VIDEO].x);
  debug (f, &f->w->tw[OVI_TOWER_AUDIO], a, f->w->tw[OVI_TOWER_AUDIO].x);
}

/* each branch's text into its rows of the towers' text buffers */
static void
load_texts (Fwd *f, const OviFusionBranch *branches)
{
  int64_t T = f->d->text_len;

  for (int b = 0; b < f->w->batch; b++) {
    g_autoptr (OviTensor) tv = rows (f->w->tw[OVI_TOWER_VIDEO].text, b * T, T);
    g_autoptr (OviTensor) ta = rows (f->w->tw[OVI_TOWER_AUDIO].text, b * T, T);
    ovi_op_copy (f->be, tv, branches[b].pass.text_video);
    ovi_op_copy (f->be, ta, branches[b].pass.text_audio);
  }
}

/* skip-layer guidance, or step caching's reuse of a residual (every block) */
static gboolean
skips (const OviFusionBranch *br, int i)
{
  return (br->pass.slg_layer > 0 && br->pass.slg_layer == i)
         || (br->pass.cache && br->pass.cache->reuse);
}

/* step caching, before the blocks: a reusing branch adds its residual to
 * its rows, a computing one keeps its blocks' input */
static void
residuals_in (Fwd *f, const OviFusionBranch *branches)
{
  for (int b = 0; b < f->w->batch; b++) {
    OviFusionResidual *c = branches[b].pass.cache;
    for (int t = 0; c && t < OVI_N_TOWERS; t++) {
      OviFusionTowerWork *tw = &f->w->tw[t];
      g_autoptr (OviTensor) x = rows (tw->x, b * tw->n_loc, tw->n_loc);
      if (c->reuse)
        ovi_op_axpby (f->be, x, 1.0f, x, 1.0f, c->residual[t]);
      else
        ovi_op_copy (f->be, c->residual[t], x);
    }
  }
}

/* after the blocks: residual = output - input */
static void
residuals_out (Fwd *f, const OviFusionBranch *branches)
{
  for (int b = 0; b < f->w->batch; b++) {
    OviFusionResidual *c = branches[b].pass.cache;
    for (int t = 0; c && !c->reuse && t < OVI_N_TOWERS; t++) {
      OviFusionTowerWork *tw = &f->w->tw[t];
      g_autoptr (OviTensor) x = rows (tw->x, b * tw->n_loc, tw->n_loc);
      ovi_op_axpby (f->be, c->residual[t], 1.0f, x, -1.0f, c->residual[t]);
    }
  }
}

/* block i for every run of adjacent branches that do not skip it; a run
 * short of the whole batch works on a view of its rows */
static void
run_block (Fwd *f, int i, const OviFusionBranch *branches, GPtrArray *keep)
{
  int n = f->w->batch;

  for (int first = 0, end; first < n; first = end) {
    if (skips (&branches[first], i)) {
      end = first + 1;
      continue;
    }
    for (end = first; end < n && !skips (&branches[end], i); end++)
      ;
    if (end - first == n) {
      fused_block (f, i);
    } else {
      OviFusionWork view;
      Fwd sub = *f;
      ovi_fusion_work_view (&view, f->w, first, end - first, keep);
      sub.w = &view;
      fused_block (&sub, i);
    }
  }
}

static void
write_outputs (Fwd *f, const OviFusionBranch *branches)
{
  OviFusionTowerWork *a = &f->w->tw[OVI_TOWER_AUDIO];

  for (int b = 0; b < f->w->batch; b++) {
    g_autoptr (OviTensor) head = rows (a->headf, b * a->n_pad, a->n);
    unpatchify (f, branches[b].out_video, b);
    ovi_op_copy (f->be, branches[b].out_audio, head);
  }
}

static gboolean
forward (Fwd *f, const OviTensor *video, const OviTensor *audio,
         const OviFusionBranch *branches, GPtrArray *keep, GError **error)
{
  OviFusionWork *w = f->w;
  g_autofree double *t = g_new0 (double, 2 * w->batch);

  for (int b = 0; b < w->batch; b++)
    t[2 * b] = branches[b].pass.timestep;
  set_segments (&w->tw[OVI_TOWER_VIDEO], branches[0].pass.first_frame_clean
                                             ? w->grid[1] * w->grid[2]
                                             : 0);
  set_segments (&w->tw[OVI_TOWER_AUDIO], 0);
  load_texts (f, branches);
  embed_video (f, video);
  embed_audio (f, audio);
  if (!embed_time (f, OVI_TOWER_VIDEO, t, error)
      || !embed_time (f, OVI_TOWER_AUDIO, t, error))
    return FALSE;
  debug_embeddings (f);
  residuals_in (f, branches);
  for (int i = 0; i < f->d->num_layers; i++) {
    if (f->m->stream)
      ovi_fusion_stream_begin (f->m, i);
    run_block (f, i, branches, keep);
    if (f->m->stream)
      ovi_fusion_stream_end (f->m, i);
    debug_block (f, i);
  }
  residuals_out (f, branches);
  head (f, OVI_TOWER_VIDEO);
  head (f, OVI_TOWER_AUDIO);
  write_outputs (f, branches);
  return ovi_backend_sync (f->be, error);
}

gboolean
ovi_fusion_forward_branches (OviFusion *m, OviFusionWork *w,
                             const OviTensor *video, const OviTensor *audio,
                             const OviFusionBranch *branches, int n_branches,
                             GError **error)
{
  Fwd f = { .m = m, .be = m->be, .w = w, .d = &m->dims };
  g_autoptr (GPtrArray) keep
      = g_ptr_array_new_with_free_func ((GDestroyNotify) ovi_tensor_unref);
  OviFusionWork view;

  if (!check_args (&f, video, audio, branches, n_branches, error))
    return FALSE;
  if (n_branches < w->batch) {
    ovi_fusion_work_view (&view, w, 0, n_branches, keep);
    f.w = &view;
  }
  return forward (&f, video, audio, branches, keep, error);
}

gboolean
ovi_fusion_forward (OviFusion *m, OviFusionWork *w, const OviTensor *video,
                    const OviTensor *audio, const OviFusionPass *pass,
                    OviTensor *out_video, OviTensor *out_audio, GError **error)
{
  OviFusionBranch branch
      = { .pass = *pass, .out_video = out_video, .out_audio = out_audio };

  return ovi_fusion_forward_branches (m, w, video, audio, &branch, 1, error);
}
