/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: `ovi parity` runner for the fusion_dit case: one forward of the
 * fusion DiT per pass (pos, neg_slg, pos_slg and, when the case has it,
 * pos_ffc), checked against out.{pass}.vid / out.{pass}.audio, plus the
 * dbg.* intermediates of the positive pass.
 *
 * With --sp N / --cfg-parallel the same passes run on N (x 2) ranks, each
 * with its own backend and model (ovi-ranks.h): the tokens of a pass split
 * over the SP ranks, and with CFG parallelism the positive and the negative
 * pass run at once on the two rank groups, which exchange their outputs.
 * World rank 0 checks everything, the intermediates gathered from the
 * ranks. */
#include "parity-dit.h"
#include "ovi-ranks.h"

#include <string.h>

static JsonObject *
member_object (JsonObject *o, const char *name, const char *where,
               GError **error)
{
  JsonNode *n = o ? json_object_get_member (o, name) : NULL;

  if (n == NULL || !JSON_NODE_HOLDS_OBJECT (n)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT, "%s: no object \"%s\"",
                 where, name);
    return NULL;
  }
  return json_node_get_object (n);
}

static gboolean
member_number (JsonObject *o, const char *name, const char *where,
               double *value, GError **error)
{
  JsonNode *n = json_object_get_member (o, name);

  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n)
      || (json_node_get_value_type (n) != G_TYPE_INT64
          && json_node_get_value_type (n) != G_TYPE_DOUBLE)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT, "%s: no number \"%s\"",
                 where, name);
    return FALSE;
  }
  *value = json_node_get_double (n);
  return TRUE;
}

gboolean
ovi_parity_number (JsonObject *o, const char *name, const char *where,
                   double *value, GError **error)
{
  return member_number (o, name, where, value, error);
}

gboolean
ovi_parity_fusion_preset (JsonObject *config, const char *where,
                          OviFusionDims *preset, GError **error)
{
  JsonObject *v = member_object (config, "video_config", where, error);
  JsonObject *a
      = v ? member_object (config, "audio_config", where, error) : NULL;
  double heads, text_len, eps, scale, aheads;

  if (a == NULL || !member_number (v, "num_heads", where, &heads, error)
      || !member_number (a, "num_heads", where, &aheads, error)
      || !member_number (v, "text_len", where, &text_len, error)
      || !member_number (v, "eps", where, &eps, error)
      || !member_number (a, "temporal_rope_scaling_factor", where, &scale,
                         error))
    return FALSE;
  if (heads != aheads) {
    g_set_error (
        error, OVI_ERROR, OVI_ERROR_FORMAT,
        "%s: the towers have %g and %g heads; the fusion needs equal heads",
        where, heads, aheads);
    return FALSE;
  }
  memset (preset, 0, sizeof *preset);
  preset->num_heads = (int) heads;
  preset->text_len = (int) text_len;
  preset->eps = eps;
  preset->audio_rope_scale = scale;
  return TRUE;
}

typedef struct {
  OviParity *p;
  int rank; /* world rank; 0 checks */
  OviBackend *be;
  OviComm *sp, *cfg, *shard;
  int shard_rank;
  OviFusion *model;
  OviFusionWork *work;
  OviTensor *vid, *audio, *out_vid, *out_audio;
  OviTensor *text[4]; /* video pos, audio pos, video neg, audio neg */
  double t;
  int slg;
} Case;

static void
on_debug (const char *name, OviTensor *tensor, gpointer user_data)
{
  Case *c = user_data;
  g_autofree char *full = g_strconcat ("dbg.", name, NULL);

  if (c->rank == 0 && ovi_weight_file_contains (c->p->io, full))
    ovi_parity_check_io (c->p, full, tensor);
}

static void
case_clear (Case *c)
{
  g_clear_pointer (&c->work, ovi_fusion_work_free);
  g_clear_pointer (&c->model, ovi_fusion_free);
  g_clear_pointer (&c->vid, ovi_tensor_unref);
  g_clear_pointer (&c->audio, ovi_tensor_unref);
  g_clear_pointer (&c->out_vid, ovi_tensor_unref);
  g_clear_pointer (&c->out_audio, ovi_tensor_unref);
  for (int i = 0; i < 4; i++)
    g_clear_pointer (&c->text[i], ovi_tensor_unref);
}

static gboolean
embed_texts (Case *c, GError **error)
{
  static const char *const names[4]
      = { "in.ctx_pos", "in.ctx_pos", "in.ctx_vid_neg", "in.ctx_audio_neg" };

  for (int i = 0; i < 4; i++) {
    g_autoptr (OviTensor) ctx = ovi_weight_file_get (c->p->io, names[i], error);
    if (ctx == NULL)
      return FALSE;
    c->text[i] = ovi_fusion_embed_text (
        c->model, i % 2 ? OVI_TOWER_AUDIO : OVI_TOWER_VIDEO, ctx, error);
    if (c->text[i] == NULL)
      return FALSE;
  }
  if (c->rank != 0)
    return TRUE;
  if (ovi_weight_file_contains (c->p->io, "dbg.vid.context"))
    ovi_parity_check_io (c->p, "dbg.vid.context", c->text[0]);
  if (ovi_weight_file_contains (c->p->io, "dbg.audio.context"))
    ovi_parity_check_io (c->p, "dbg.audio.context", c->text[1]);
  return TRUE;
}

static gboolean
load_case (Case *c, GError **error)
{
  OviParity *p = c->p;
  const OviFusionDims *d;
  OviFusionDims preset;
  g_autofree char *weights = ovi_parity_path (p, "weights.safetensors");
  g_autoptr (OviWeightFile) wf = NULL;
  g_autoptr (OviTensor) t = NULL;
  double slg;

  if (!ovi_parity_fusion_preset (p->config, p->case_dir, &preset, error)
      || !ovi_parity_number (p->config, "slg_layer", p->case_dir, &slg, error))
    return FALSE;
  c->slg = (int) slg;
  wf = ovi_weight_file_open (weights, NULL, error);
  if (wf == NULL
      || !(c->model = ovi_fusion_new_filtered (
               wf, &preset, c->be, ovi_fusion_shard_filter,
               &(OviFusionShardFilter){ c->shard_rank,
                                        c->shard ? c->shard->size : 1 },
               error)))
    return FALSE;
  ovi_fusion_set_shards (c->model, c->shard);
  if (!(c->vid = ovi_weight_file_get (p->io, "in.vid", error))
      || !(c->audio = ovi_weight_file_get (p->io, "in.audio", error))
      || !(t = ovi_weight_file_get (p->io, "in.t", error)))
    return FALSE;
  c->t = ovi_tensor_get_f64 (t, (int64_t[]){ 0 });
  if (c->vid->ndim != 4 || c->audio->ndim != 2) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                 "%s: in.vid must be [C,F,H,W] and in.audio [L,C]",
                 p->case_dir);
    return FALSE;
  }
  d = ovi_fusion_get_dims (c->model);
  c->work = ovi_fusion_work_new_parallel (c->model, c->vid->shape[1],
                                          c->vid->shape[2], c->vid->shape[3],
                                          c->audio->shape[0], 1, c->sp, error);
  if (c->work == NULL)
    return FALSE;
  c->out_vid
      = ovi_backend_new_act (c->be, 4,
                             (int64_t[]){ d->video_out, c->vid->shape[1],
                                          c->vid->shape[2], c->vid->shape[3] });
  c->out_audio = ovi_backend_new_act (
      c->be, 2, (int64_t[]){ c->audio->shape[0], d->audio_out });
  if (c->out_vid == NULL || c->out_audio == NULL)
    return ovi_backend_sync (c->be, error);
  return embed_texts (c, error);
}

static gboolean
forward (Case *c, gboolean negative, int slg, gboolean ffc, GError **error)
{
  OviFusionPass fp = {
    .text_video = c->text[negative ? 2 : 0],
    .text_audio = c->text[negative ? 3 : 1],
    .timestep = c->t,
    .first_frame_clean = ffc,
    .slg_layer = slg,
  };

  return ovi_fusion_forward (c->model, c->work, c->vid, c->audio, &fp,
                             c->out_vid, c->out_audio, error);
}

static void
check_pass (Case *c, const char *pass)
{
  g_autofree char *vname = g_strdup_printf ("out.%s.vid", pass);
  g_autofree char *aname = g_strdup_printf ("out.%s.audio", pass);

  if (c->rank != 0)
    return;
  ovi_parity_check_io (c->p, vname, c->out_vid);
  ovi_parity_check_io (c->p, aname, c->out_audio);
}

static gboolean
run_pass (Case *c, const char *pass, gboolean negative, int slg, gboolean ffc,
          GError **error)
{
  if (!forward (c, negative, slg, ffc, error))
    return FALSE;
  check_pass (c, pass);
  return TRUE;
}

/* the positive pass (with its intermediates) and the negative one */
static gboolean
run_pos_neg (Case *c, GError **error)
{
  ovi_fusion_set_debug (c->model, on_debug, c);
  if (!run_pass (c, "pos", FALSE, 0, FALSE, error))
    return FALSE;
  ovi_fusion_set_debug (c->model, NULL, NULL);
  return run_pass (c, "neg_slg", TRUE, c->slg, FALSE, error);
}

/* CFG parallel: CFG rank 0 runs the positive pass, rank 1 the negative
 * one, at once; the outputs are exchanged for the checks */
static gboolean
run_pos_neg_parallel (Case *c, GError **error)
{
  gboolean negative = c->cfg->rank == 1;

  if (!negative)
    ovi_fusion_set_debug (c->model, on_debug, c);
  if (!forward (c, negative, negative ? c->slg : 0, FALSE, error))
    return FALSE;
  ovi_fusion_set_debug (c->model, NULL, NULL);
  for (int root = 0; root < 2; root++) {
    g_autoptr (OviTensor) v = ovi_backend_new_act (c->be, 4, c->out_vid->shape);
    g_autoptr (OviTensor) a
        = ovi_backend_new_act (c->be, 2, c->out_audio->shape);
    if (v == NULL || a == NULL)
      return ovi_backend_sync (c->be, error);
    if (root == c->cfg->rank) {
      ovi_op_copy (c->be, v, c->out_vid);
      ovi_op_copy (c->be, a, c->out_audio);
    }
    ovi_comm_broadcast (c->cfg, v, root);
    ovi_comm_broadcast (c->cfg, a, root);
    if (!ovi_backend_sync (c->be, error))
      return FALSE;
    if (c->rank == 0) {
      ovi_parity_check_io (c->p, root ? "out.neg_slg.vid" : "out.pos.vid", v);
      ovi_parity_check_io (c->p, root ? "out.neg_slg.audio" : "out.pos.audio",
                           a);
    }
  }
  return TRUE;
}

static gboolean
run_case (Case *c, GError **error)
{
  OviParity *p = c->p;
  gboolean ok = load_case (c, error);

  ok = ok && (c->cfg ? run_pos_neg_parallel (c, error) : run_pos_neg (c, error))
       && run_pass (c, "pos_slg", FALSE, c->slg, FALSE, error);
  if (ok && ovi_weight_file_contains (p->io, "out.pos_ffc.vid"))
    ok = run_pass (c, "pos_ffc", FALSE, 0, TRUE, error);
  case_clear (c);
  return ok;
}

typedef struct {
  OviParity *p;
  OviBackend **be;
  OviRankGroups *groups;
} Ranks;

static gboolean
run_rank (int w, gpointer data, GError **error)
{
  Ranks *r = data;
  OviComm *group = r->groups->sp_comm[w];
  Case c = { .p = r->p,
             .rank = w,
             .be = r->be[w],
             .sp = r->p->sp > 1 ? group : NULL,
             .cfg = r->groups->cfg_comm[w],
             .shard = r->p->shard > 1 ? group : NULL,
             .shard_rank = group ? group->rank : 0 };

  return run_case (&c, error);
}

/* rank 0 on the case's backend, the others on new ones of the same kind
 * (CUDA: device w) */
static gboolean
run_ranks (OviParity *p, GError **error)
{
  int cfg = p->cfg_parallel ? 2 : 1, group = MAX (MAX (p->sp, 1), p->shard);
  int n = group * cfg;
  g_autofree OviBackend **be = g_new0 (OviBackend *, n);
  Ranks r = { p, be, NULL };
  gboolean ok = TRUE;

  be[0] = p->backend;
  for (int w = 1; w < n && ok; w++)
    ok = (be[w] = ovi_backend_new_by_name (ovi_backend_get_name (p->backend), w,
                                           error))
         != NULL;
  if (ok)
    r.groups = ovi_rank_groups_new (be, group, cfg, error);
  ok = r.groups && ovi_rank_groups_run (r.groups, run_rank, &r, error);
  g_clear_pointer (&r.groups, ovi_rank_groups_free);
  for (int w = 1; w < n; w++)
    g_clear_pointer (&be[w], ovi_backend_free);
  return ok;
}

gboolean
ovi_parity_run_fusion_dit (OviParity *p, GError **error)
{
  Case c = { .p = p, .be = p->backend };

  if (p->io == NULL) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                 "%s: the case has no io.safetensors", p->case_dir);
    return FALSE;
  }
  if (p->sp > 1 || p->cfg_parallel || p->shard > 1)
    return run_ranks (p, error);
  return run_case (&c, error);
}
