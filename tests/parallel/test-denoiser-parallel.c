/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the denoiser on CPU ranks (ovi_parallel_denoiser) gives the
 * latents one rank gives (fp32 rel_l2 <= 1e-5), on a tiny model with 12
 * heads and token counts that leave padding: sequence parallel 2, 3 and 4,
 * CFG parallel, CFG parallel x SP 2, i2v; cancellation stops every rank
 * at the same step and the next run works; step caching skips the same
 * forwards as on one rank; LoRAs set at run time on the front reach every
 * rank (SP 2, CFG parallel); a layout the heads do not
 * allow fails before loading. */
#include <math.h>
#include <string.h>

#include "ovi-denoiser-parallel.h"
#include "ovi-lora.h"
#include "ovi-noise.h"
#include "ovi-test-util.h"
#include "ovi-tiny.h"

static char *tiny_dir;
static OviModelPaths *paths;

typedef struct {
  OviDenoiseRequest req;
  OviTensor *text[3], *vnoise, *anoise, *image;
} Request;

static void
request_init (Request *r, gboolean i2v)
{
  g_autoptr (GError) error = NULL;

  memset (r, 0, sizeof *r);
  ovi_denoise_request_init (&r->req);
  r->text[0] = ovi_noise_gaussian (3, 2, (int64_t[]){ 5, 64 }, &error);
  r->text[1] = ovi_noise_gaussian (4, 2, (int64_t[]){ 3, 64 }, &error);
  r->text[2] = ovi_noise_gaussian (5, 2, (int64_t[]){ 7, 64 }, &error);
  /* 2 x 2 x 7 = 28 video tokens (32 on 4 ranks, 30 on 3), 11 audio */
  r->vnoise = ovi_noise_gaussian (6, 4, (int64_t[]){ 48, 2, 4, 14 }, &error);
  r->anoise = ovi_noise_gaussian (7, 2, (int64_t[]){ 11, 20 }, &error);
  if (i2v)
    r->image = ovi_noise_gaussian (8, 4, (int64_t[]){ 48, 1, 4, 14 }, &error);
  g_assert_no_error (error);
  r->req.text_pos = r->text[0];
  r->req.text_video_neg = r->text[1];
  r->req.text_audio_neg = r->text[2];
  r->req.video_noise = r->vnoise;
  r->req.audio_noise = r->anoise;
  r->req.image_latent = r->image;
  r->req.steps = 3;
  r->req.slg_layer = 1;
}

static void
request_clear (Request *r)
{
  for (int i = 0; i < 3; i++)
    ovi_tensor_unref (r->text[i]);
  ovi_tensor_unref (r->vnoise);
  ovi_tensor_unref (r->anoise);
  g_clear_pointer (&r->image, ovi_tensor_unref);
}

static OviParallelDenoiser *
parallel_sharded (int sp, gboolean cfg, int shard, GError **error)
{
  OviParallelLayout layout = { .sp = sp, .cfg_parallel = cfg, .shard = shard };
  int n = ovi_parallel_layout_ranks (&layout);
  OviBackend *be[8];

  for (int r = 0; r < n; r++)
    be[r] = ovi_backend_new_cpu (1);
  return ovi_parallel_denoiser_new (paths, be, n, &layout, error);
}

static OviParallelDenoiser *
parallel (int sp, gboolean cfg, GError **error)
{
  return parallel_sharded (sp, cfg, 0, error);
}

static void
single (const Request *r, OviTensor **video, OviTensor **audio)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviBackend) be = ovi_backend_new_cpu (1);
  OviDenoiser *d = ovi_denoiser_new (paths, be, &error);

  g_assert_no_error (error);
  g_assert_true (
      ovi_denoiser_run (d, &r->req, NULL, NULL, NULL, video, audio, &error));
  g_assert_no_error (error);
  ovi_denoiser_free (d);
}

/* one rank with `loras` set at run time (NULL: none) */
static void
single_with (const Request *r, const GPtrArray *loras, OviTensor **video,
             OviTensor **audio)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviBackend) be = ovi_backend_new_cpu (1);
  OviDenoiser *d = ovi_denoiser_new (paths, be, &error);

  g_assert_no_error (error);
  g_assert_true (ovi_denoiser_set_loras (d, loras, &error));
  g_assert_true (
      ovi_denoiser_run (d, &r->req, NULL, NULL, NULL, video, audio, &error));
  g_assert_no_error (error);
  ovi_denoiser_free (d);
}

static void
assert_close (const OviTensor *v, const OviTensor *a, const OviTensor *v1,
              const OviTensor *a1, const char *what)
{
  g_test_message ("%s: video rel_l2 %.3e, audio %.3e", what,
                  ovi_test_rel_l2 (v, v1), ovi_test_rel_l2 (a, a1));
  g_assert_cmpfloat (ovi_test_rel_l2 (v, v1), <=, 1e-5);
  g_assert_cmpfloat (ovi_test_rel_l2 (a, a1), <=, 1e-5);
}

/* LoRAs set at run time on the front reach every rank: the LoRA'd clip is
 * one rank's LoRA'd clip (a set that fails after it changes nothing); a
 * request's own list as well; none again gives the plain clip */
static void
check_live_loras (int sp, gboolean cfg, int shard, const char *spec,
                  const Request *r, OviTensor *const one[2],
                  OviTensor *const plain[2])
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) specs = ovi_lora_specs_parse (spec, &error);
  g_autofree char *none = g_build_filename (tiny_dir, "none.safetensors", NULL);
  g_autoptr (GPtrArray) missing = ovi_lora_specs_parse (none, &error);
  g_autoptr (OviParallelDenoiser) pd
      = parallel_sharded (sp, cfg, shard, &error);
  OviDenoiser *front = ovi_parallel_denoiser_get_front (pd);
  OviDenoiseRequest listed = r->req;
  g_autofree char *what
      = g_strdup_printf ("sp%d%s shard%d", sp, cfg ? " x cfg" : "", shard);
  g_autoptr (OviTensor) v = NULL, a = NULL, vl = NULL, al = NULL, v0 = NULL,
                        a0 = NULL;

  g_assert_no_error (error);
  g_assert_true (ovi_denoiser_set_loras (front, specs, &error));
  g_assert_no_error (error);
  /* a set that fails leaves every rank's set as it was */
  g_assert_false (ovi_denoiser_set_loras (front, missing, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_IO);
  g_clear_error (&error);
  g_assert_true (
      ovi_denoiser_run (front, &r->req, NULL, NULL, NULL, &v, &a, &error));
  g_assert_no_error (error);
  assert_close (v, a, one[0], one[1], what);
  g_assert_true (ovi_denoiser_set_loras (front, NULL, &error));
  listed.loras = spec;
  g_assert_true (
      ovi_denoiser_run (front, &listed, NULL, NULL, NULL, &vl, &al, &error));
  g_assert_no_error (error);
  assert_close (vl, al, one[0], one[1], what);
  g_assert_true (
      ovi_denoiser_run (front, &r->req, NULL, NULL, NULL, &v0, &a0, &error));
  g_assert_no_error (error);
  assert_close (v0, a0, plain[0], plain[1], what);
}

static void
test_live_loras (void)
{
  Request r;
  g_autofree char *path = g_build_filename (tiny_dir, "lora.safetensors", NULL);
  g_autofree char *spec = g_strdup_printf ("%s:1:both", path);
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) specs = ovi_lora_specs_parse (spec, &error);
  g_autoptr (OviTensor) v1 = NULL, a1 = NULL, v0 = NULL, a0 = NULL;

  g_assert_no_error (error);
  ovi_test_write_q_lora (paths->fusion_path, 3, 0.1f, FALSE, path);
  request_init (&r, FALSE);
  single_with (&r, specs, &v1, &a1);
  single_with (&r, NULL, &v0, &a0);
  g_test_message ("LoRA effect: video %.3e, audio %.3e",
                  ovi_test_rel_l2 (v1, v0), ovi_test_rel_l2 (a1, a0));
  g_assert_cmpfloat (ovi_test_rel_l2 (v1, v0), >, 1e-3);
  g_assert_cmpfloat (ovi_test_rel_l2 (a1, a0), >, 1e-3);
  check_live_loras (2, FALSE, 0, spec, &r, (OviTensor *[]){ v1, a1 },
                    (OviTensor *[]){ v0, a0 });
  check_live_loras (1, TRUE, 0, spec, &r, (OviTensor *[]){ v1, a1 },
                    (OviTensor *[]){ v0, a0 });
  check_live_loras (2, FALSE, 2, spec, &r, (OviTensor *[]){ v1, a1 },
                    (OviTensor *[]){ v0, a0 });
  request_clear (&r);
}

static void
check_sharded_layout (int sp, gboolean cfg, int shard, gboolean i2v)
{
  Request r;
  g_autoptr (GError) error = NULL;
  g_autoptr (OviTensor) v1 = NULL, a1 = NULL, vn = NULL, an = NULL;
  g_autoptr (OviParallelDenoiser) pd = NULL;

  request_init (&r, i2v);
  single (&r, &v1, &a1);
  pd = parallel_sharded (sp, cfg, shard, &error);
  g_assert_no_error (error);
  g_assert_true (ovi_parallel_denoiser_run (pd, &r.req, NULL, NULL, NULL, &vn,
                                            &an, &error));
  g_assert_no_error (error);
  g_test_message ("sp%d%s shard%d%s: video rel_l2 %.3e, audio %.3e", sp,
                  cfg ? " x cfg" : "", shard, i2v ? " i2v" : "",
                  ovi_test_rel_l2 (vn, v1), ovi_test_rel_l2 (an, a1));
  g_assert_cmpfloat (ovi_test_rel_l2 (vn, v1), <=, 1e-5);
  g_assert_cmpfloat (ovi_test_rel_l2 (an, a1), <=, 1e-5);
  request_clear (&r);
}

static void
check_layout (int sp, gboolean cfg, gboolean i2v)
{
  check_sharded_layout (sp, cfg, 0, i2v);
}

static void
test_sharded (void)
{
  check_sharded_layout (1, FALSE, 2, FALSE);
  check_sharded_layout (2, FALSE, 2, TRUE);
  check_sharded_layout (2, TRUE, 2, FALSE);
}

static void
test_sp (void)
{
  check_layout (2, FALSE, FALSE);
  check_layout (3, FALSE, TRUE);
  check_layout (4, FALSE, FALSE);
}

static void
test_cfg (void)
{
  check_layout (1, TRUE, FALSE);
  check_layout (2, TRUE, TRUE);
}

/* step caching on ranks: every rank of a group decides alike, the CFG
 * groups each for their branch, so the forwards skipped and the latents
 * are those of one rank */
static void
check_cached (int sp, gboolean cfg)
{
  Request r;
  g_autoptr (GError) error = NULL;
  g_autoptr (OviTensor) v1 = NULL, a1 = NULL, vn = NULL, an = NULL;
  g_autoptr (OviParallelDenoiser) pd = NULL;
  OviDenoiseStats one, ranks;

  request_init (&r, FALSE);
  r.req.steps = 8;
  r.req.cache = "easy";
  r.req.cache_threshold = 100;
  r.req.stats = &one;
  single (&r, &v1, &a1);
  pd = parallel (sp, cfg, &error);
  g_assert_no_error (error);
  r.req.stats = &ranks;
  g_assert_true (ovi_parallel_denoiser_run (pd, &r.req, NULL, NULL, NULL, &vn,
                                            &an, &error));
  g_assert_no_error (error);
  g_test_message ("cached sp%d%s: %d/%d forwards skipped, video rel_l2 %.3e, "
                  "audio %.3e",
                  sp, cfg ? " x cfg" : "", ranks.forwards_skipped,
                  ranks.forwards_skipped + ranks.forwards_computed,
                  ovi_test_rel_l2 (vn, v1), ovi_test_rel_l2 (an, a1));
  g_assert_cmpint (one.forwards_skipped, >, 0);
  g_assert_cmpint (ranks.forwards_skipped, ==, one.forwards_skipped);
  g_assert_cmpint (ranks.forwards_computed, ==, one.forwards_computed);
  g_assert_cmpfloat (ovi_test_rel_l2 (vn, v1), <=, 1e-5);
  g_assert_cmpfloat (ovi_test_rel_l2 (an, a1), <=, 1e-5);
  request_clear (&r);
}

static void
test_step_cache (void)
{
  check_cached (2, FALSE);
  check_cached (1, TRUE);
  check_cached (2, TRUE);
}

static void
cancel_after_first (int step, int steps, gpointer data)
{
  if (step == 1)
    g_cancellable_cancel (data);
}

static void
test_cancel (void)
{
  Request r;
  g_autoptr (GError) error = NULL;
  g_autoptr (GCancellable) cancel = g_cancellable_new ();
  g_autoptr (OviParallelDenoiser) pd = parallel (2, TRUE, &error);
  OviTensor *v = NULL, *a = NULL;

  g_assert_no_error (error);
  request_init (&r, FALSE);
  g_assert_false (ovi_parallel_denoiser_run (pd, &r.req, cancel_after_first,
                                             cancel, cancel, &v, &a, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_CANCELLED);
  g_clear_error (&error);
  /* the same ranks run the next request */
  g_assert_true (
      ovi_parallel_denoiser_run (pd, &r.req, NULL, NULL, NULL, &v, &a, &error));
  g_assert_no_error (error);
  ovi_tensor_unref (v);
  ovi_tensor_unref (a);
  request_clear (&r);
}

static void
test_bad_layout (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviParallelDenoiser) pd = parallel (5, FALSE, &error);

  g_assert_null (pd);
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "12 attention heads"));
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  OviTinyConfig cfg;
  int status;

  g_test_init (&argc, &argv, NULL);
  tiny_dir = ovi_test_make_tmp_dir ("ovi-pd-XXXXXX");
  ovi_tiny_config_init (&cfg);
  cfg.dit_heads = 12;
  cfg.dit_dim = 96;
  cfg.fusion_dtype = OVI_DTYPE_F32;
  if (!ovi_tiny_write_config (tiny_dir, &cfg, 11, &error))
    g_error ("%s", error->message);
  paths = ovi_model_paths_resolve (tiny_dir, "tiny", &error);
  g_assert_no_error (error);
  paths->num_heads = 12;
  g_test_add_func ("/denoiser-parallel/sp-2-3-4", test_sp);
  g_test_add_func ("/denoiser-parallel/cfg-and-cfg-x-sp2", test_cfg);
  g_test_add_func ("/denoiser-parallel/step-cache", test_step_cache);
  g_test_add_func ("/denoiser-parallel/sharded-weights", test_sharded);
  g_test_add_func ("/denoiser-parallel/live-loras", test_live_loras);
  g_test_add_func ("/denoiser-parallel/cancel-then-run", test_cancel);
  g_test_add_func ("/denoiser-parallel/heads-not-divisible", test_bad_layout);
  status = g_test_run ();
  ovi_model_paths_free (paths);
  ovi_test_remove_tree (tiny_dir);
  g_free (tiny_dir);
  return status;
}
