/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the CFG branches of a step batched into one fusion DiT forward
 * (ovi_fusion_forward_branches) give what separate forwards give, on the
 * golden fusion_dit model on the CPU backend in fp32: the positive pass and
 * the negative pass with its skipped block, in either order, one branch in
 * a batch-2 work, i2v with a different timestep per branch; and the errors
 * a caller can cause. */
#include <math.h>
#include <string.h>

#include "ovi-fusion.h"
#include "ovi-test-util.h"
#include "ovi-weights.h"

typedef struct {
  OviBackend *be;
  OviWeightFile *wf, *io;
  OviFusion *m;
  OviTensor *vid, *audio, *text[4]; /* video pos, audio pos, video/audio neg */
  double t;
} Fixture;

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  const char *golden = g_getenv ("OVI_GOLDEN_DIR");
  static const char *const ctx_names[4]
      = { "in.ctx_pos", "in.ctx_pos", "in.ctx_vid_neg", "in.ctx_audio_neg" };
  OviFusionDims preset = {
    .num_heads = 2, .text_len = 32, .eps = 1e-6, .audio_rope_scale = 0.19676
  };
  g_autofree char *wpath = NULL, *iopath = NULL;
  g_autoptr (GError) error = NULL;

  g_assert_nonnull (golden);
  wpath = g_build_filename (golden, "fusion_dit", "weights.safetensors", NULL);
  iopath = g_build_filename (golden, "fusion_dit", "io.safetensors", NULL);
  f->be = ovi_backend_new_cpu (1);
  f->wf = ovi_weight_file_open (wpath, NULL, &error);
  g_assert_no_error (error);
  f->io = ovi_weight_file_open (iopath, NULL, &error);
  g_assert_no_error (error);
  f->m = ovi_fusion_new (f->wf, &preset, f->be, &error);
  g_assert_no_error (error);
  f->vid = ovi_weight_file_get (f->io, "in.vid", &error);
  g_assert_no_error (error);
  f->audio = ovi_weight_file_get (f->io, "in.audio", &error);
  g_assert_no_error (error);
  for (int i = 0; i < 4; i++) {
    g_autoptr (OviTensor) ctx
        = ovi_weight_file_get (f->io, ctx_names[i], &error);
    g_assert_no_error (error);
    f->text[i] = ovi_fusion_embed_text (
        f->m, i % 2 ? OVI_TOWER_AUDIO : OVI_TOWER_VIDEO, ctx, &error);
    g_assert_no_error (error);
  }
  g_autoptr (OviTensor) t = ovi_weight_file_get (f->io, "in.t", &error);
  g_assert_no_error (error);
  f->t = ovi_tensor_get_f64 (t, (int64_t[]){ 0 });
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  for (int i = 0; i < 4; i++)
    ovi_tensor_unref (f->text[i]);
  ovi_tensor_unref (f->vid);
  ovi_tensor_unref (f->audio);
  ovi_fusion_free (f->m);
  ovi_weight_file_free (f->io);
  ovi_weight_file_free (f->wf);
  ovi_backend_free (f->be);
}

static OviFusionWork *
work (Fixture *f, int batch)
{
  g_autoptr (GError) error = NULL;
  OviFusionWork *w = ovi_fusion_work_new_batched (
      f->m, f->vid->shape[1], f->vid->shape[2], f->vid->shape[3],
      f->audio->shape[0], batch, &error);

  g_assert_no_error (error);
  g_assert_cmpint (ovi_fusion_work_batch (w), ==, batch);
  return w;
}

/* the positive (negative = FALSE) or negative branch, outputs allocated */
static OviFusionBranch
branch (Fixture *f, gboolean negative, double t, gboolean clean)
{
  OviFusionBranch b = {
    .pass = {
      .text_video = f->text[negative ? 2 : 0],
      .text_audio = f->text[negative ? 3 : 1],
      .timestep = t,
      .first_frame_clean = clean,
      .slg_layer = negative ? 1 : 0,
    },
    .out_video = ovi_backend_new_act (f->be, 4, f->vid->shape),
    .out_audio = ovi_backend_new_act (f->be, 2, f->audio->shape),
  };
  return b;
}

static void
branch_clear (OviFusionBranch *b)
{
  ovi_tensor_unref (b->out_video);
  ovi_tensor_unref (b->out_audio);
}

static double
max_abs (const OviTensor *a)
{
  const float *x = ovi_tensor_data (a);
  double m = 0;

  for (int64_t i = 0; i < ovi_tensor_numel (a); i++)
    m = MAX (m, fabs ((double) x[i]));
  return m;
}

/* the batched branch equals the same pass run alone, to fp32 rounding (a
 * few ulp of the largest output: matmul blocking follows the row count) */
static void
assert_same (Fixture *f, const OviFusionBranch *batched)
{
  g_autoptr (OviFusionWork) w = work (f, 1);
  OviFusionBranch alone = branch (f, FALSE, 0, FALSE);
  g_autoptr (GError) error = NULL;

  alone.pass = batched->pass;
  g_assert_true (ovi_fusion_forward (f->m, w, f->vid, f->audio, &alone.pass,
                                     alone.out_video, alone.out_audio, &error));
  g_assert_no_error (error);
  double dv = ovi_test_max_abs_diff (batched->out_video, alone.out_video);
  double da = ovi_test_max_abs_diff (batched->out_audio, alone.out_audio);
  g_test_message ("slg %d: max |batched - alone| video %.3e audio %.3e",
                  alone.pass.slg_layer, dv, da);
  g_assert_cmpfloat (max_abs (alone.out_video), >, 1e-3);
  g_assert_cmpfloat (dv, <=, 4e-6 * max_abs (alone.out_video));
  g_assert_cmpfloat (da, <=, 4e-6 * max_abs (alone.out_audio));
  branch_clear (&alone);
}

static void
run_batch (Fixture *f, OviFusionWork *w, OviFusionBranch *b, int n)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (
      ovi_fusion_forward_branches (f->m, w, f->vid, f->audio, b, n, &error));
  g_assert_no_error (error);
  for (int i = 0; i < n; i++)
    assert_same (f, &b[i]);
}

static void
test_cfg_pair (Fixture *f, gconstpointer data)
{
  g_autoptr (OviFusionWork) w = work (f, 2);
  OviFusionBranch b[2]
      = { branch (f, FALSE, f->t, FALSE), branch (f, TRUE, f->t, FALSE) };
  g_autoptr (OviTensor) ref
      = ovi_weight_file_get (f->io, "out.neg_slg.vid", NULL);

  run_batch (f, w, b, 2);
  /* and the negative branch is the golden skip-layer pass */
  g_assert_cmpfloat (ovi_test_max_abs_diff (b[1].out_video, ref), <,
                     1e-4 * max_abs (ref));
  for (int i = 0; i < 2; i++)
    branch_clear (&b[i]);
}

/* the skipping branch first: block 1 runs on a view of branch 1 only */
static void
test_negative_first (Fixture *f, gconstpointer data)
{
  g_autoptr (OviFusionWork) w = work (f, 2);
  OviFusionBranch b[2]
      = { branch (f, TRUE, f->t, FALSE), branch (f, FALSE, f->t, FALSE) };

  run_batch (f, w, b, 2);
  for (int i = 0; i < 2; i++)
    branch_clear (&b[i]);
}

/* fewer branches than the work holds; block 1 then runs on none */
static void
test_one_of_two (Fixture *f, gconstpointer data)
{
  g_autoptr (OviFusionWork) w = work (f, 2);
  OviFusionBranch b = branch (f, TRUE, f->t, FALSE);

  run_batch (f, w, &b, 1);
  branch_clear (&b);
}

/* i2v: the clean first frame's rows and a timestep per branch */
static void
test_i2v_timesteps (Fixture *f, gconstpointer data)
{
  g_autoptr (OviFusionWork) w = work (f, 2);
  OviFusionBranch b[2]
      = { branch (f, FALSE, f->t, TRUE), branch (f, TRUE, 500, TRUE) };

  run_batch (f, w, b, 2);
  for (int i = 0; i < 2; i++)
    branch_clear (&b[i]);
}

static void
test_errors (Fixture *f, gconstpointer data)
{
  g_autoptr (OviFusionWork) w = work (f, 2);
  OviFusionBranch b[3]
      = { branch (f, FALSE, f->t, FALSE), branch (f, TRUE, f->t, TRUE),
          branch (f, FALSE, f->t, FALSE) };
  g_autoptr (GError) error = NULL;

  g_assert_false (
      ovi_fusion_forward_branches (f->m, w, f->vid, f->audio, b, 3, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "3 branches"));
  g_clear_error (&error);
  g_assert_false (
      ovi_fusion_forward_branches (f->m, w, f->vid, f->audio, b, 2, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "first_frame_clean"));
  g_clear_error (&error);
  g_assert_null (ovi_fusion_work_new_batched (f->m, 3, 4, 6, 12, 0, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  for (int i = 0; i < 3; i++)
    branch_clear (&b[i]);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(path, fn)                                                          \
  g_test_add ("/fusion-batch/" path, Fixture, NULL, fixture_setup, fn,         \
              fixture_teardown)
  ADD ("cfg-pair", test_cfg_pair);
  ADD ("negative-first", test_negative_first);
  ADD ("one-of-two", test_one_of_two);
  ADD ("i2v-timesteps", test_i2v_timesteps);
  ADD ("errors", test_errors);
  return g_test_run ();
}
