/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the denoiser stage on the golden tiny fusion model: progress
 * callback, cancellation between steps, seeded noise, Euler, i2v paste and
 * the errors a caller can cause. */
#include <math.h>
#include <string.h>

#include <glib/gstdio.h>

#include "golden-fixture.h"

static void
request (Fixture *f, OviDenoiseRequest *req)
{
  ovi_test_golden_request (&f->golden, req);
  req->steps = 3;
}

typedef struct {
  int calls, last, steps;
  GCancellable *cancel_after_first;
} Progress;

static void
on_step (int step, int steps, gpointer user_data)
{
  Progress *p = user_data;

  p->calls++;
  g_assert_cmpint (step, ==, p->last + 1);
  p->last = step;
  p->steps = steps;
  if (p->cancel_after_first)
    g_cancellable_cancel (p->cancel_after_first);
}

static gboolean
all_finite (const OviTensor *t)
{
  const float *d = ovi_tensor_data (t);
  for (int64_t i = 0; i < ovi_tensor_numel (t); i++)
    if (!isfinite (d[i]))
      return FALSE;
  return TRUE;
}

static void
test_progress_and_seed (Fixture *f, gconstpointer data)
{
  OviDenoiseRequest req;
  Progress p = { 0 };
  g_autoptr (GError) error = NULL;
  g_autoptr (OviTensor) v1 = NULL;
  g_autoptr (OviTensor) a1 = NULL;
  g_autoptr (OviTensor) v2 = NULL;
  g_autoptr (OviTensor) a2 = NULL;

  request (f, &req);
  req.seed = 7;
  g_assert_true (
      ovi_denoiser_run (f->d, &req, on_step, &p, NULL, &v1, &a1, &error));
  g_assert_no_error (error);
  g_assert_cmpint (p.calls, ==, 3);
  g_assert_cmpint (p.steps, ==, 3);
  g_assert_cmpint (v1->shape[0], ==, 48);
  g_assert_cmpint (v1->shape[1], ==, 3);
  g_assert_cmpint (v1->shape[2], ==, 4);
  g_assert_cmpint (v1->shape[3], ==, 6);
  g_assert_cmpint (a1->shape[0], ==, 12);
  g_assert_cmpint (a1->shape[1], ==, 20);
  g_assert_true (all_finite (v1) && all_finite (a1));
  /* same seed, same result; another seed, another result */
  g_assert_true (
      ovi_denoiser_run (f->d, &req, NULL, NULL, NULL, &v2, &a2, &error));
  g_assert_cmpmem (ovi_tensor_data (v1), ovi_tensor_nbytes (v1),
                   ovi_tensor_data (v2), ovi_tensor_nbytes (v2));
  g_clear_pointer (&v2, ovi_tensor_unref);
  g_clear_pointer (&a2, ovi_tensor_unref);
  req.seed = 8;
  g_assert_true (
      ovi_denoiser_run (f->d, &req, NULL, NULL, NULL, &v2, &a2, &error));
  g_assert_true (memcmp (ovi_tensor_data (v1), ovi_tensor_data (v2),
                         ovi_tensor_nbytes (v1))
                 != 0);
}

static void
test_cancel (Fixture *f, gconstpointer data)
{
  OviDenoiseRequest req;
  g_autoptr (GCancellable) c = g_cancellable_new ();
  Progress p = { .cancel_after_first = c };
  g_autoptr (GError) error = NULL;
  OviTensor *v = NULL, *a = NULL;

  request (f, &req);
  g_assert_false (
      ovi_denoiser_run (f->d, &req, on_step, &p, c, &v, &a, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_CANCELLED);
  g_assert_cmpint (p.calls, ==, 1);
  g_assert_null (v);
  g_assert_null (a);
}

static void
test_euler_and_i2v (Fixture *f, gconstpointer data)
{
  OviDenoiseRequest req;
  g_autoptr (GError) error = NULL;
  g_autoptr (OviTensor) image = NULL;
  g_autoptr (OviTensor) v = NULL;
  g_autoptr (OviTensor) a = NULL;

  image = ovi_weight_file_get (f->golden.io, "step0.guided_vid", &error);
  g_autoptr (OviTensor) first = ovi_tensor_narrow (image, 1, 0, 1);
  request (f, &req);
  req.solver = OVI_SOLVER_EULER;
  req.image_latent = first;
  g_assert_true (
      ovi_denoiser_run (f->d, &req, NULL, NULL, NULL, &v, &a, &error));
  g_assert_no_error (error);
  g_assert_true (all_finite (v) && all_finite (a));
  /* latent frame 0 is the image after the loop */
  const float *vd = ovi_tensor_data (v);
  for (int c = 0; c < 48; c++)
    for (int i = 0; i < 24; i++) {
      int64_t idx[4] = { c, 0, i / 6, i % 6 };
      g_assert_cmpfloat (vd[c * 72 + i], ==, ovi_tensor_get_f64 (image, idx));
    }
}

/* guidance 1 on both towers runs the positive branch only: the negative
 * prompts then cannot change a bit of the result, and the result differs
 * from a guided run */
static void
test_guidance_one (Fixture *f, gconstpointer data)
{
  OviDenoiseRequest req;
  g_autoptr (GError) error = NULL;
  g_autoptr (OviTensor) v1 = NULL, a1 = NULL, v2 = NULL, a2 = NULL;
  g_autoptr (OviTensor) v3 = NULL, a3 = NULL;

  request (f, &req);
  req.video_guidance = req.audio_guidance = 1.0;
  g_assert_true (
      ovi_denoiser_run (f->d, &req, NULL, NULL, NULL, &v1, &a1, &error));
  g_assert_no_error (error);
  req.text_video_neg = f->golden.text[2];
  req.text_audio_neg = f->golden.text[1];
  g_assert_true (
      ovi_denoiser_run (f->d, &req, NULL, NULL, NULL, &v2, &a2, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (ovi_tensor_data (v1), ovi_tensor_nbytes (v1),
                   ovi_tensor_data (v2), ovi_tensor_nbytes (v2));
  g_assert_cmpmem (ovi_tensor_data (a1), ovi_tensor_nbytes (a1),
                   ovi_tensor_data (a2), ovi_tensor_nbytes (a2));
  req.audio_guidance = 3.0;
  g_assert_true (
      ovi_denoiser_run (f->d, &req, NULL, NULL, NULL, &v3, &a3, &error));
  g_assert_no_error (error);
  g_assert_true (memcmp (ovi_tensor_data (a1), ovi_tensor_data (a3),
                         ovi_tensor_nbytes (a1))
                 != 0);
}

static void
test_errors (Fixture *f, gconstpointer data)
{
  OviDenoiseRequest req;
  g_autoptr (GError) error = NULL;
  OviTensor *v = NULL, *a = NULL;
  int64_t bad_shape[2] = { 5, 63 };
  g_autoptr (OviTensor) bad = ovi_tensor_new_f32 (2, bad_shape);

  request (f, &req);
  req.width = 100;
  g_assert_false (
      ovi_denoiser_run (f->d, &req, NULL, NULL, NULL, &v, &a, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  request (f, &req);
  req.text_pos = bad;
  g_assert_false (
      ovi_denoiser_run (f->d, &req, NULL, NULL, NULL, &v, &a, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_SHAPE);
  g_assert_nonnull (strstr (error->message, "[5, 63]"));
  g_clear_error (&error);

  /* a weight file without the model */
  OviModelPaths paths = f->golden.paths;
  g_autofree char *golden_t5 = g_build_filename (
      g_getenv ("OVI_GOLDEN_DIR"), "t5", "weights.safetensors", NULL);
  paths.fusion_path = golden_t5;
  g_assert_null (ovi_denoiser_new (&paths, f->golden.be, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_MISSING_TENSOR);
  g_assert_nonnull (strstr (error->message, "video_model.patch_embedding"));
}

static void
test_estimate (Fixture *f, gconstpointer data)
{
  OviDenoiserEstimate est;
  g_autoptr (GError) error = NULL;
  GStatBuf st;

  g_assert_true (
      ovi_denoiser_estimate (&f->golden.paths, 96, 64, 4, &est, &error));
  g_assert_no_error (error);
  g_assert_cmpint (est.tokens_video, ==, 3 * 2 * 3);
  g_assert_cmpint (est.tokens_audio, ==, 12);
  /* every tensor of the file is the model's: all but the header */
  g_assert_cmpint (g_stat (f->golden.paths.fusion_path, &st), ==, 0);
  g_assert_cmpuint (est.weight_bytes, <, (guint64) st.st_size);
  g_assert_cmpuint (est.weight_bytes, >, (guint64) st.st_size - 65536);
  /* at least x, q, k, v of both towers and the FFN hidden, in f32 */
  g_assert_cmpuint (est.activation_bytes, >, (18 + 12) * (4 * 64 + 256) * 4);

  /* width/height 0: the preset's area (64x96 -> a 64x64 square) */
  g_assert_true (
      ovi_denoiser_estimate (&f->golden.paths, 0, 0, 4, &est, &error));
  g_assert_cmpint (est.tokens_video, ==, 3 * 2 * 2);
  g_assert_false (
      ovi_denoiser_estimate (&f->golden.paths, 90, 64, 4, &est, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(path, fn)                                                          \
  g_test_add (path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
  ADD ("/denoiser/progress-seed", test_progress_and_seed);
  ADD ("/denoiser/cancel", test_cancel);
  ADD ("/denoiser/euler-i2v", test_euler_and_i2v);
  ADD ("/denoiser/guidance-one", test_guidance_one);
  ADD ("/denoiser/errors", test_errors);
  ADD ("/denoiser/estimate", test_estimate);
  return g_test_run ();
}
