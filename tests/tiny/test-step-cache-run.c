/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tests: step caching through the denoiser on the tiny model (CPU).
 *
 * Threshold 0 gives the uncached latents bit for bit; skipped forwards
 * never fall as the threshold grows; a threshold that skips at least 30 %
 * of 20 steps changes the latents by a bounded amount (the tiny model's
 * random weights say nothing about quality); counts cover every forward
 * (two branches, or one with guidance 1); block streaming gives the same
 * cached result; a calibrated MagCache table drives mag; bad input fails
 * before any step runs. */
#include "ovi-backend.h"
#include "ovi-engine.h"
#include "ovi-fusion.h"
#include "ovi-noise.h"
#include "ovi-presets.h"
#include "ovi-step-cache.h"
#include "ovi-test-util.h"

#include <math.h>
#include <string.h>

#define STEPS 20

static char *tiny_dir;
static OviBackend *be;
static OviDenoiser *den;
static const OviModelPreset *preset;
static OviTensor *texts[3];

typedef struct {
  OviTensor *video, *audio;
  OviDenoiseStats stats;
  int steps_seen;
} Result;

static void
result_clear (Result *r)
{
  g_clear_pointer (&r->video, ovi_tensor_unref);
  g_clear_pointer (&r->audio, ovi_tensor_unref);
}

static void
count_step (int step, int steps, gpointer user_data)
{
  ((Result *) user_data)->steps_seen = step;
}

static void
request_init (OviDenoiseRequest *req, const char *cache, double threshold)
{
  ovi_denoise_request_init (req);
  req->text_pos = texts[0];
  req->text_video_neg = texts[1];
  req->text_audio_neg = texts[2];
  req->seed = 103;
  req->steps = STEPS;
  req->slg_layer = preset->slg_layer;
  req->height = preset->default_height;
  req->width = preset->default_width;
  req->cache = cache;
  req->cache_threshold = threshold;
}

static gboolean
run (OviDenoiseRequest *req, Result *r, GError **error)
{
  memset (r, 0, sizeof *r);
  req->stats = &r->stats;
  return ovi_denoiser_run (den, req, count_step, r, NULL, &r->video, &r->audio,
                           error);
}

static void
run_ok (OviDenoiseRequest *req, Result *r)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (run (req, r, &error));
  g_assert_no_error (error);
  g_assert_cmpint (r->steps_seen, ==, req->steps);
}

static Result
run_cache (const char *cache, double threshold)
{
  OviDenoiseRequest req;
  Result r;

  request_init (&req, cache, threshold);
  run_ok (&req, &r);
  return r;
}

static double
rel_l2 (const Result *a, const Result *ref)
{
  return MAX (ovi_test_rel_l2 (a->video, ref->video),
              ovi_test_rel_l2 (a->audio, ref->audio));
}

/* a MagCache table for the tiny model at STEPS, measured as `ovi
 * calibrate-cache` does */
static OviCacheTable *
calibrate (void)
{
  OviDenoiseRequest req;
  OviCacheTable *table = NULL;
  Result r;

  request_init (&req, NULL, 0);
  req.cache_calibration = &table;
  run_ok (&req, &r);
  result_clear (&r);
  g_assert_nonnull (table);
  return table;
}

static void
test_threshold_zero (void)
{
  Result off = run_cache (NULL, 0), easy = run_cache ("easy", 0);
  g_autoptr (OviCacheTable) table = calibrate ();
  g_autofree char *dir = ovi_test_make_tmp_dir ("ovi-cache-run-XXXXXX");
  g_autofree char *path = g_build_filename (dir, "t.json", NULL);
  g_autoptr (GError) error = NULL;
  OviDenoiseRequest req;
  Result mag;

  g_assert_true (ovi_cache_table_save (table, path, NULL, &error));
  request_init (&req, "mag", 0);
  req.cache_table = path;
  run_ok (&req, &mag);

  g_assert_cmpint (off.stats.forwards_computed, ==, 2 * STEPS);
  g_assert_cmpint (off.stats.forwards_skipped, ==, 0);
  for (int i = 0; i < 2; i++) {
    const Result *r = i ? &mag : &easy;
    g_assert_true (ovi_test_same_bits (r->video, off.video));
    g_assert_true (ovi_test_same_bits (r->audio, off.audio));
    g_assert_cmpint (r->stats.forwards_skipped, ==, 0);
  }
  result_clear (&off);
  result_clear (&easy);
  result_clear (&mag);
  ovi_test_remove_tree (dir);
}

/* skipped forwards over a threshold sweep; the first threshold skipping
 * >= 30 % is reported with its distance to the uncached latents */
static void
sweep (const char *cache, const char *table_path, const double *thresholds,
       int n)
{
  Result off = run_cache (NULL, 0);
  int last = 0;
  gboolean reported = FALSE;

  for (int i = 0; i < n; i++) {
    OviDenoiseRequest req;
    Result r;
    int total;
    double d;

    request_init (&req, cache, thresholds[i]);
    req.cache_table = table_path;
    run_ok (&req, &r);
    total = r.stats.forwards_computed + r.stats.forwards_skipped;
    d = rel_l2 (&r, &off);
    g_test_message ("%s threshold %.3f: %d computed, %d skipped, rel_l2 %.4g",
                    cache, thresholds[i], r.stats.forwards_computed,
                    r.stats.forwards_skipped, d);
    g_assert_cmpint (total, ==, 2 * STEPS);
    g_assert_cmpint (r.stats.forwards_skipped, >=, last);
    /* skipping changes the result, and only that does */
    g_assert_true (r.stats.forwards_skipped > 0 ? d > 0 : d == 0);
    g_assert_true (isfinite (d));
    if (!reported && r.stats.forwards_skipped * 10 >= 3 * total) {
      g_test_message ("%s: >= 30 %% skipped at threshold %.3f, rel_l2 %.4g",
                      cache, thresholds[i], d);
      g_assert_cmpfloat (d, <, 0.5);
      reported = TRUE;
    }
    last = r.stats.forwards_skipped;
    result_clear (&r);
  }
  g_assert_true (reported);
  result_clear (&off);
}

static void
test_easy_monotonic (void)
{
  static const double thr[] = { 0, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6 };
  sweep ("easy", NULL, thr, G_N_ELEMENTS (thr));
}

static void
test_mag_monotonic (void)
{
  static const double thr[] = { 0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0 };
  g_autoptr (OviCacheTable) table = calibrate ();
  g_autofree char *dir = ovi_test_make_tmp_dir ("ovi-cache-run-XXXXXX");
  g_autofree char *path = g_build_filename (dir, "t.json", NULL);
  g_autoptr (GError) error = NULL;

  g_assert_cmpstr (table->model, ==, "tiny");
  g_assert_cmpint (table->steps, ==, STEPS);
  g_assert_cmpint (table->n_branches, ==, 2);
  for (int b = 0; b < 2; b++)
    for (int t = 0; t < OVI_N_TOWERS; t++) {
      g_assert_cmpfloat (table->ratio[b][t][0], ==, 1.0);
      for (int i = 1; i < STEPS; i++)
        g_assert_true (isfinite (table->ratio[b][t][i])
                       && table->ratio[b][t][i] > 0);
    }
  g_assert_true (ovi_cache_table_save (table, path, NULL, &error));
  if (g_getenv ("OVI_PRINT_TABLE")) {
    g_autofree char *text = NULL;
    g_file_get_contents (path, &text, NULL, NULL);
    g_test_message ("%s", text);
  }
  sweep ("mag", path, thr, G_N_ELEMENTS (thr));
  ovi_test_remove_tree (dir);
}

/* guidance 1 on both towers runs one branch: one forward per step */
static void
test_one_branch (void)
{
  OviDenoiseRequest req;
  Result r;

  request_init (&req, "easy", 1.6);
  req.video_guidance = req.audio_guidance = 1.0;
  run_ok (&req, &r);
  g_assert_cmpint (r.stats.forwards_computed + r.stats.forwards_skipped, ==,
                   STEPS);
  g_assert_cmpint (r.stats.forwards_skipped, >, 0);
  result_clear (&r);
}

/* block streaming (the offloading VRAM modes) moves weights, not results */
static void
test_streaming (void)
{
  OviFusion *model = ovi_denoiser_get_fusion (den);
  Result plain = run_cache ("easy", 1.6), streamed;

  ovi_fusion_set_streaming (model, TRUE);
  streamed = run_cache ("easy", 1.6);
  ovi_fusion_set_streaming (model, FALSE);
  g_assert_cmpint (plain.stats.forwards_skipped, >, 0);
  g_assert_cmpint (streamed.stats.forwards_skipped, ==,
                   plain.stats.forwards_skipped);
  g_assert_true (ovi_test_same_bits (streamed.video, plain.video));
  g_assert_true (ovi_test_same_bits (streamed.audio, plain.audio));
  result_clear (&plain);
  result_clear (&streamed);
}

/* The forward's hook: a residual stored by a computing branch and reused
 * on the same inputs gives that branch's outputs again (up to rounding),
 * and a reusing branch leaves the other branch of a batch untouched. */
static void
test_residual_hook (void)
{
  g_autoptr (GError) error = NULL;
  OviFusion *m = ovi_denoiser_get_fusion (den);
  const OviFusionDims *d = ovi_fusion_get_dims (m);
  int64_t F = preset->video_latent_frames, H = preset->default_height / 16,
          W = preset->default_width / 16, L = preset->audio_latent_length;
  int64_t vs[4] = { d->video_in, F, H, W }, as[2] = { L, d->audio_in };
  g_autoptr (OviFusionWork) work
      = ovi_fusion_work_new_batched (m, F, H, W, L, 2, &error);
  g_autoptr (OviTensor) video = ovi_noise_gaussian (5, 4, vs, &error);
  g_autoptr (OviTensor) audio = ovi_noise_gaussian (6, 2, as, &error);
  g_autoptr (OviTensor) tv
      = ovi_fusion_embed_text (m, OVI_TOWER_VIDEO, texts[0], &error);
  g_autoptr (OviTensor) ta
      = ovi_fusion_embed_text (m, OVI_TOWER_AUDIO, texts[0], &error);
  OviTensor *res[2][OVI_N_TOWERS], *out[4][OVI_N_TOWERS];
  OviFusionResidual hook[2];
  OviFusionBranch br[2];

  g_assert_no_error (error);
  for (int b = 0; b < 2; b++)
    for (int t = 0; t < OVI_N_TOWERS; t++)
      res[b][t] = ovi_fusion_residual_new (m, work, t, &error);
  for (int k = 0; k < 4; k++) {
    out[k][0] = ovi_backend_new_act (be, 4, vs);
    out[k][1] = ovi_backend_new_act (be, 2, as);
  }
  for (int b = 0; b < 2; b++) {
    hook[b] = (OviFusionResidual){ { res[b][0], res[b][1] }, FALSE };
    br[b] = (OviFusionBranch){ { .text_video = tv,
                                 .text_audio = ta,
                                 .timestep = 900 - 100 * b,
                                 .slg_layer = b,
                                 .cache = &hook[b] },
                               out[b][0],
                               out[b][1] };
  }
  /* both branches compute and store; then branch 0 reuses, 1 computes */
  g_assert_true (
      ovi_fusion_forward_branches (m, work, video, audio, br, 2, &error));
  hook[0].reuse = TRUE;
  br[0].out_video = out[2][0];
  br[0].out_audio = out[2][1];
  br[1].out_video = out[3][0];
  br[1].out_audio = out[3][1];
  g_assert_true (
      ovi_fusion_forward_branches (m, work, video, audio, br, 2, &error));
  g_assert_no_error (error);
  for (int t = 0; t < OVI_N_TOWERS; t++) {
    g_autoptr (OviTensor) first
        = ovi_backend_download_f32 (be, out[0][t], NULL);
    g_autoptr (OviTensor) again
        = ovi_backend_download_f32 (be, out[2][t], NULL);
    g_autoptr (OviTensor) other
        = ovi_backend_download_f32 (be, out[1][t], NULL);
    g_autoptr (OviTensor) alone
        = ovi_backend_download_f32 (be, out[3][t], NULL);
    double reuse_err = ovi_test_rel_l2 (again, first);
    g_test_message ("tower %d: reused residual rel_l2 %.3g", t, reuse_err);
    g_assert_cmpfloat (reuse_err, <, 1e-5);
    g_assert_cmpfloat (ovi_test_rel_l2 (alone, other), <, 1e-5);
  }
  for (int k = 0; k < 4; k++)
    for (int t = 0; t < OVI_N_TOWERS; t++)
      ovi_tensor_unref (out[k][t]);
  for (int b = 0; b < 2; b++)
    for (int t = 0; t < OVI_N_TOWERS; t++)
      ovi_tensor_unref (res[b][t]);
}

static void
expect_failure (OviDenoiseRequest *req, const char *named)
{
  g_autoptr (GError) error = NULL;
  Result r;

  g_assert_false (run (req, &r, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, named));
  g_assert_cmpint (r.steps_seen, ==, 0);
  g_assert_null (r.video);
}

static void
test_bad_input (void)
{
  g_autoptr (OviCacheTable) table = calibrate ();
  g_autofree char *dir = ovi_test_make_tmp_dir ("ovi-cache-run-XXXXXX");
  g_autofree char *path = g_build_filename (dir, "t.json", NULL);
  g_autoptr (GError) error = NULL;
  OviDenoiseRequest req;

  request_init (&req, "fast", 0.1);
  expect_failure (&req, "'fast'");
  request_init (&req, "easy", -1);
  expect_failure (&req, "-1");
  request_init (&req, "easy", NAN);
  expect_failure (&req, "nan");
  /* no preset table at 7 steps */
  request_init (&req, "mag", 0.1);
  req.steps = 7;
  expect_failure (&req, "calibrate-cache --steps 7");
  /* a table for 20 steps in a 12-step run, and one for another model */
  g_assert_true (ovi_cache_table_save (table, path, NULL, &error));
  request_init (&req, "mag", 0.1);
  req.cache_table = path;
  req.steps = 12;
  expect_failure (&req, "20 steps");
  g_free (table->model);
  table->model = g_strdup ("720x720_5s");
  g_assert_true (ovi_cache_table_save (table, path, NULL, &error));
  request_init (&req, "mag", 0.1);
  req.cache_table = path;
  expect_failure (&req, "'720x720_5s'");
  ovi_test_remove_tree (dir);
}

static OviTensor *
random_text (guint64 seed, int n)
{
  g_autoptr (GError) error = NULL;
  int64_t shape[2] = { n, preset->text_dim };
  OviTensor *t = ovi_noise_gaussian (seed, 2, shape, &error);

  g_assert_no_error (error);
  return t;
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviModelPaths) paths = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);
  tiny_dir = ovi_test_make_tiny_dir ("ovi-cache-tiny-XXXXXX", 7);
  paths = ovi_model_paths_resolve (tiny_dir, NULL, &error);
  g_assert_no_error (error);
  preset = ovi_model_preset_lookup ("tiny", &error);
  g_assert_no_error (error);
  be = ovi_backend_new_cpu (2);
  den = ovi_denoiser_new (paths, be, &error);
  g_assert_no_error (error);
  texts[0] = random_text (1, 7);
  texts[1] = random_text (2, 5);
  texts[2] = random_text (3, 6);

  g_test_add_func ("/step-cache-run/residual-hook", test_residual_hook);
  g_test_add_func ("/step-cache-run/threshold-zero", test_threshold_zero);
  g_test_add_func ("/step-cache-run/easy-monotonic", test_easy_monotonic);
  g_test_add_func ("/step-cache-run/mag-monotonic", test_mag_monotonic);
  g_test_add_func ("/step-cache-run/one-branch", test_one_branch);
  g_test_add_func ("/step-cache-run/streaming", test_streaming);
  g_test_add_func ("/step-cache-run/bad-input", test_bad_input);
  status = g_test_run ();

  for (int i = 0; i < 3; i++)
    ovi_tensor_unref (texts[i]);
  ovi_denoiser_free (den);
  ovi_backend_free (be);
  ovi_test_remove_tree (tiny_dir);
  g_free (tiny_dir);
  return status;
}
