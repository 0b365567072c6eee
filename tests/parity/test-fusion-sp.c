/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: Ulysses sequence parallelism of the fusion DiT on CPU ranks
 * (threads, each with its own CPU backend and model, the in-process
 * communicator) gives what one rank gives, fp32 rel_l2 <= 1e-5:
 *  - the golden fusion_dit model (2 heads) on 2 ranks, against the golden
 *    outputs too;
 *  - a tiny model with 12 heads on 2, 3, 4 and 6 ranks, with token counts
 *    that leave padding (42 video tokens: 44 on 4 ranks; 11 audio tokens:
 *    12 on every split), two batched branches (one skipping a block) and
 *    the clean first frame, whose tokens straddle rank boundaries;
 * sharded weights (each rank keeps 1/N of every block's matmul weights,
 * gathered per block) alone, with SP and with fp8 per-row quantisation,
 * against one rank with the whole (quantised) weights;
 * and the errors: ranks that do not divide the heads, and a rank that fails
 * while the others wait in a collective (nothing hangs, the error names the
 * failing rank). */
#include <math.h>
#include <string.h>

#include "ovi-comm.h"
#include "ovi-engine.h"
#include "ovi-fusion.h"
#include "ovi-noise.h"
#include "ovi-quantize.h"
#include "ovi-ranks.h"
#include "ovi-test-util.h"
#include "ovi-tiny.h"
#include "ovi-weights.h"

#define MAX_RANKS 6

typedef struct {
  OviWeightFile *wf;
  OviFusionDims preset;
  OviTensor *vid, *audio, *ctx[3]; /* host inputs shared by the ranks */
  double t;
  gboolean clean;
  int batch; /* 1: the positive pass; 2: positive + negative (slg 1) */
} Case;

typedef struct {
  Case *c;
  int n;
  OviBackend *be[MAX_RANKS];
  OviFusion *m[MAX_RANKS];
  OviComm **comm;
  OviTensor *out[MAX_RANKS][2][2]; /* rank, branch, tower */
  OviTensor *text[MAX_RANKS][4];
  int bad_rank;   /* this rank passes a wrong input (-1: none) */
  gboolean no_sp; /* the ranks do not split the tokens (sharding only) */
} Ranks;

typedef struct {
  gboolean shard;
  gboolean fp8;
} Weights;

static OviTensor *
fp8_filter (const char *name, OviTensor *weight, gpointer data, GError **error)
{
  if (!ovi_quantize_wants (OVI_QUANT_F8_PER_CHANNEL, name, weight->ndim))
    return ovi_tensor_ref (weight);
  return ovi_quantize_tensor (weight, OVI_QUANT_F8_PER_CHANNEL, name, error);
}

static void
ranks_setup_weights (Ranks *rk, Case *c, int n, const Weights *wt)
{
  g_autoptr (GError) error = NULL;
  const OviFusionDims *d;

  memset (rk, 0, sizeof *rk);
  rk->c = c;
  rk->n = n;
  rk->bad_rank = -1;
  for (int r = 0; r < n; r++) {
    OviFusionShardFilter sf = { r, wt && wt->shard ? n : 1,
                                wt && wt->fp8 ? fp8_filter : NULL, NULL };
    rk->be[r] = ovi_backend_new_cpu (1);
    rk->m[r] = ovi_fusion_new_filtered (c->wf, &c->preset, rk->be[r],
                                        ovi_fusion_shard_filter, &sf, &error);
    g_assert_no_error (error);
    for (int i = 0; i < 4; i++) {
      rk->text[r][i] = ovi_fusion_embed_text (
          rk->m[r], i % 2 ? OVI_TOWER_AUDIO : OVI_TOWER_VIDEO,
          c->ctx[i == 0 || i == 1 ? 0 : i - 1], &error);
      g_assert_no_error (error);
    }
    d = ovi_fusion_get_dims (rk->m[r]);
    int64_t vs[4] = { d->video_out, c->vid->shape[1], c->vid->shape[2],
                      c->vid->shape[3] };
    int64_t as[2] = { c->audio->shape[0], d->audio_out };
    for (int b = 0; b < 2; b++) {
      rk->out[r][b][0] = ovi_backend_new_act (rk->be[r], 4, vs);
      rk->out[r][b][1] = ovi_backend_new_act (rk->be[r], 2, as);
    }
  }
  rk->comm = ovi_comm_cpu_group_new (n, rk->be);
  for (int r = 0; wt && wt->shard && r < n; r++)
    ovi_fusion_set_shards (rk->m[r], rk->comm[r]);
}

static void
ranks_setup (Ranks *rk, Case *c, int n)
{
  ranks_setup_weights (rk, c, n, NULL);
}

static void
ranks_teardown (Ranks *rk)
{
  for (int r = 0; r < rk->n; r++) {
    for (int b = 0; b < 2; b++)
      for (int t = 0; t < 2; t++)
        ovi_tensor_unref (rk->out[r][b][t]);
    for (int i = 0; i < 4; i++)
      ovi_tensor_unref (rk->text[r][i]);
    ovi_comm_free (rk->comm[r]);
    ovi_fusion_free (rk->m[r]);
    ovi_backend_free (rk->be[r]);
  }
  g_free (rk->comm);
}

static gboolean
run_rank (int r, gpointer data, GError **error)
{
  Ranks *rk = data;
  Case *c = rk->c;
  g_autoptr (OviFusionWork) w = NULL;
  g_autoptr (OviTensor) bad = NULL;
  OviFusionBranch br[2];

  w = ovi_fusion_work_new_parallel (
      rk->m[r], c->vid->shape[1], c->vid->shape[2], c->vid->shape[3],
      c->audio->shape[0], c->batch,
      rk->n > 1 && !rk->no_sp ? rk->comm[r] : NULL, error);
  if (w == NULL)
    return FALSE;
  for (int b = 0; b < 2; b++)
    br[b] = (OviFusionBranch){
      .pass = { .text_video = rk->text[r][2 * b],
                .text_audio = rk->text[r][2 * b + 1],
                .timestep = c->t,
                .first_frame_clean = c->clean,
                .slg_layer = b },
      .out_video = rk->out[r][b][0],
      .out_audio = rk->out[r][b][1],
    };
  if (r == rk->bad_rank)
    bad = ovi_tensor_new_f32 (2, (int64_t[]){ 3, 3 });
  return ovi_fusion_forward_branches (rk->m[r], w, c->vid, bad ? bad : c->audio,
                                      br, c->batch, error);
}

static gboolean
run (Ranks *rk, GError **error)
{
  return ovi_ranks_run (rk->n, run_rank, rk, rk->comm, rk->n, error);
}

/* `one` and `many` (set up) run, compared and torn down: every rank of
 * `many`, every branch and tower, within 1e-5 of `one`'s; `what` names the
 * split in the messages */
static void
assert_ranks_match (const Case *c, Ranks *one, Ranks *many, const char *what)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (run (one, &error));
  g_assert_no_error (error);
  g_assert_true (run (many, &error));
  g_assert_no_error (error);
  for (int r = 0; r < many->n; r++)
    for (int b = 0; b < c->batch; b++)
      for (int t = 0; t < 2; t++) {
        double rel = ovi_test_rel_l2 (many->out[r][b][t], one->out[0][b][t]);
        g_test_message ("%s rank %d branch %d tower %d: rel_l2 %.3e", what, r,
                        b, t, rel);
        g_assert_cmpfloat (rel, <=, 1e-5);
      }
  ranks_teardown (one);
  ranks_teardown (many);
}

/* SP n against one rank, every branch and tower */
static void
check_split (Case *c, int n)
{
  g_autofree char *what = g_strdup_printf ("sp%d", n);
  Ranks one, many;

  ranks_setup (&one, c, 1);
  ranks_setup (&many, c, n);
  assert_ranks_match (c, &one, &many, what);
}

/* ---- the golden model ---- */

static void
golden_case (Case *c, OviWeightFile **io)
{
  const char *golden = g_getenv ("OVI_GOLDEN_DIR");
  g_autofree char *wpath = NULL, *iopath = NULL;
  g_autoptr (GError) error = NULL;
  static const char *const names[3]
      = { "in.ctx_pos", "in.ctx_vid_neg", "in.ctx_audio_neg" };

  g_assert_nonnull (golden);
  wpath = g_build_filename (golden, "fusion_dit", "weights.safetensors", NULL);
  iopath = g_build_filename (golden, "fusion_dit", "io.safetensors", NULL);
  memset (c, 0, sizeof *c);
  c->preset = (OviFusionDims){
    .num_heads = 2, .text_len = 32, .eps = 1e-6, .audio_rope_scale = 0.19676
  };
  c->wf = ovi_weight_file_open (wpath, NULL, &error);
  g_assert_no_error (error);
  *io = ovi_weight_file_open (iopath, NULL, &error);
  g_assert_no_error (error);
  c->vid = ovi_weight_file_get (*io, "in.vid", &error);
  c->audio = ovi_weight_file_get (*io, "in.audio", &error);
  for (int i = 0; i < 3; i++)
    c->ctx[i] = ovi_weight_file_get (*io, names[i], &error);
  g_assert_no_error (error);
  g_autoptr (OviTensor) t = ovi_weight_file_get (*io, "in.t", &error);
  g_assert_no_error (error);
  c->t = ovi_tensor_get_f64 (t, (int64_t[]){ 0 });
  c->batch = 2;
}

static void
case_clear (Case *c)
{
  ovi_tensor_unref (c->vid);
  ovi_tensor_unref (c->audio);
  for (int i = 0; i < 3; i++)
    ovi_tensor_unref (c->ctx[i]);
  ovi_weight_file_free (c->wf);
}

static void
test_golden_sp2 (void)
{
  Case c;
  OviWeightFile *io;
  Ranks rk;
  g_autoptr (GError) error = NULL;
  static const char *const refs[2][2]
      = { { "out.pos.vid", "out.pos.audio" },
          { "out.neg_slg.vid", "out.neg_slg.audio" } };

  golden_case (&c, &io);
  check_split (&c, 2);
  /* and against the official outputs */
  ranks_setup (&rk, &c, 2);
  g_assert_true (run (&rk, &error));
  for (int b = 0; b < 2; b++)
    for (int t = 0; t < 2; t++) {
      g_autoptr (OviTensor) ref = ovi_weight_file_get (io, refs[b][t], &error);
      g_autoptr (OviTensor) ref32 = ovi_tensor_to_f32 (ref, &error);
      g_assert_no_error (error);
      g_assert_cmpfloat (ovi_test_rel_l2 (rk.out[1][b][t], ref32), <=, 1e-5);
    }
  ranks_teardown (&rk);
  ovi_weight_file_free (io);
  case_clear (&c);
}

/* ---- a tiny model with 12 heads ---- */

static char *tiny_dir;

static void
tiny_case (Case *c)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviModelPaths) paths = NULL;
  OviTinyConfig cfg;

  if (tiny_dir == NULL) {
    tiny_dir = ovi_test_make_tmp_dir ("ovi-sp-XXXXXX");
    ovi_tiny_config_init (&cfg);
    cfg.dit_heads = 12;
    cfg.dit_dim = 96; /* head_dim 8: RoPE bands 2/1/1 */
    cfg.fusion_dtype = OVI_DTYPE_F32;
    g_assert_true (ovi_tiny_write_config (tiny_dir, &cfg, 7, &error));
    g_assert_no_error (error);
  }
  paths = ovi_model_paths_resolve (tiny_dir, "tiny", &error);
  g_assert_no_error (error);
  memset (c, 0, sizeof *c);
  c->preset = (OviFusionDims){ .num_heads = 12,
                               .text_len = paths->text_len,
                               .eps = paths->eps,
                               .audio_rope_scale = paths->audio_rope_scale };
  c->wf = ovi_weight_file_open (paths->fusion_path, NULL, &error);
  g_assert_no_error (error);
  /* 3 x 2 x 7 = 42 video tokens, 11 audio tokens */
  c->vid = ovi_noise_gaussian (1, 4, (int64_t[]){ 48, 3, 4, 14 }, &error);
  c->audio = ovi_noise_gaussian (2, 2, (int64_t[]){ 11, 20 }, &error);
  c->ctx[0] = ovi_noise_gaussian (3, 2, (int64_t[]){ 5, 64 }, &error);
  c->ctx[1] = ovi_noise_gaussian (4, 2, (int64_t[]){ 3, 64 }, &error);
  c->ctx[2] = ovi_noise_gaussian (5, 2, (int64_t[]){ 7, 64 }, &error);
  g_assert_no_error (error);
  c->t = 937;
  c->clean = TRUE;
  c->batch = 2;
}

static void
test_tiny_splits (void)
{
  static const int splits[] = { 2, 3, 4, 6 };
  Case c;

  tiny_case (&c);
  for (guint i = 0; i < G_N_ELEMENTS (splits); i++)
    check_split (&c, splits[i]);
  c.batch = 1;
  c.clean = FALSE;
  check_split (&c, 4);
  case_clear (&c);
}

/* `n` ranks with sharded weights (and SP over the same ranks unless
 * no_sp) against one rank with the whole weights, both fp8 when `fp8` */
static void
check_sharded (Case *c, int n, gboolean no_sp, gboolean fp8)
{
  Weights whole = { FALSE, fp8 }, sharded = { TRUE, fp8 };
  g_autofree char *what = g_strdup_printf (
      "shard%d%s%s", n, no_sp ? "" : " x sp", fp8 ? " fp8" : "");
  Ranks one, many;

  ranks_setup_weights (&one, c, 1, &whole);
  ranks_setup_weights (&many, c, n, &sharded);
  many.no_sp = no_sp;
  assert_ranks_match (c, &one, &many, what);
}

static void
test_sharded (void)
{
  Case c;
  OviWeightFile *io;

  golden_case (&c, &io);
  check_sharded (&c, 2, TRUE, FALSE);
  check_sharded (&c, 2, FALSE, FALSE);
  check_sharded (&c, 2, FALSE, TRUE);
  ovi_weight_file_free (io);
  case_clear (&c);
  tiny_case (&c);
  check_sharded (&c, 4, FALSE, TRUE);
  check_sharded (&c, 2, TRUE, FALSE);
  case_clear (&c);
}

static void
test_heads_not_divisible (void)
{
  Case c;
  Ranks rk;
  g_autoptr (GError) error = NULL;

  tiny_case (&c);
  ranks_setup (&rk, &c, 5);
  g_assert_false (run (&rk, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "12 attention heads"));
  g_assert_nonnull (strstr (error->message, "1, 2, 3, 4, 6, 12"));
  ranks_teardown (&rk);
  case_clear (&c);
}

static void
test_failing_rank (void)
{
  Case c;
  Ranks rk;
  g_autoptr (GError) error = NULL;

  tiny_case (&c);
  ranks_setup (&rk, &c, 4);
  rk.bad_rank = 2;
  g_assert_false (run (&rk, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_SHAPE);
  g_assert_true (g_str_has_prefix (error->message, "rank 2 of 4: "));
  for (int r = 0; r < 4; r++)
    g_assert_true (ovi_comm_aborted (rk.comm[r]));
  ranks_teardown (&rk);
  case_clear (&c);
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/fusion-sp/golden-sp2", test_golden_sp2);
  g_test_add_func ("/fusion-sp/tiny-12-heads-sp2-3-4-6", test_tiny_splits);
  g_test_add_func ("/fusion-sp/sharded-weights", test_sharded);
  g_test_add_func ("/fusion-sp/heads-not-divisible", test_heads_not_divisible);
  g_test_add_func ("/fusion-sp/failing-rank-aborts-the-others",
                   test_failing_rank);
  status = g_test_run ();
  if (tiny_dir)
    ovi_test_remove_tree (tiny_dir);
  g_free (tiny_dir);
  return status;
}
