/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: few-step sampling: Euler on explicit sigmas (the Lightning
 * schedule), guidance 1.0 running one forward of one branch per step, and
 * a request's run-time LoRAs changing from one run to the next. */
#include <math.h>
#include <string.h>

#include <glib/gstdio.h>

#include "golden-fixture.h"
#include "ovi-fusion.h"
#include "ovi-scheduler.h"
#include "ovi-weights.h"

static const double lightning[5] = { 1.0, 0.9375, 0.8333, 0.625, 0.0 };

static void
test_schedule (void)
{
  g_autoptr (OviBackend) be = ovi_backend_new_cpu (1);
  g_autoptr (GError) error = NULL;
  g_autoptr (OviScheduler) s
      = ovi_scheduler_new_sigmas (be, lightning, 5, &error);
  g_autoptr (OviScheduler) s4 = NULL;
  g_autofree double *parsed = NULL;
  int n = 0;

  g_assert_no_error (error);
  g_assert_cmpint (ovi_scheduler_steps (s), ==, 4);
  for (int i = 0; i < 4; i++) {
    g_assert_cmpfloat (ovi_scheduler_sigma (s, i), ==, lightning[i]);
    g_assert_cmpfloat (ovi_scheduler_timestep (s, i), ==, lightning[i] * 1000);
  }
  g_assert_cmpfloat (ovi_scheduler_sigma (s, 4), ==, 0.0);
  /* without the final 0, it is appended */
  s4 = ovi_scheduler_new_sigmas (be, lightning, 4, &error);
  g_assert_cmpint (ovi_scheduler_steps (s4), ==, 4);
  g_assert_cmpfloat (ovi_scheduler_sigma (s4, 4), ==, 0.0);

  /* x += (sigma_{i+1} - sigma_i) v, step by step */
  int64_t shape[1] = { 3 };
  g_autoptr (OviTensor) x = ovi_tensor_new_f32 (1, shape);
  g_autoptr (OviTensor) v = ovi_tensor_new_f32 (1, shape);
  float *xd = ovi_tensor_data (x), *vd = ovi_tensor_data (v);
  double ref[3] = { 1, -2, 0.5 };
  for (int k = 0; k < 3; k++) {
    xd[k] = (float) ref[k];
    vd[k] = (float) (0.25 * (k + 1));
  }
  for (int i = 0; i < 4; i++) {
    g_assert_true (ovi_scheduler_step (s, x, v, &error));
    for (int k = 0; k < 3; k++) {
      ref[k] = (float) (ref[k]
                        + (float) (lightning[i + 1] - lightning[i]) * vd[k]);
      g_assert_cmpfloat_with_epsilon (xd[k], ref[k], 1e-6);
    }
  }

  g_assert_true (
      ovi_sigmas_parse (" 1, 0.9375,0.8333 ,0.625,0", &parsed, &n, &error));
  g_assert_cmpint (n, ==, 5);
  g_assert_cmpmem (parsed, sizeof lightning, lightning, sizeof lightning);

  static const char *const bad[]
      = { "", "1,x", "1,1", "0.5,0.6,0", "1.5,0", "nan,0", "0", "1,,0" };
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++) {
    double *out = NULL;
    g_assert_false (ovi_sigmas_parse (bad[i], &out, &n, &error));
    g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
    g_clear_error (&error);
  }
}

static void
request (Fixture *f, OviDenoiseRequest *req)
{
  ovi_test_golden_request (&f->golden, req);
  req->seed = 5;
}

typedef struct {
  int forwards;
  int64_t rows; /* video tokens of the last forward, all branches */
  int steps_seen, steps_total;
} Count;

static void
on_debug (const char *name, OviTensor *t, gpointer user_data)
{
  Count *c = user_data;

  if (strcmp (name, "vid.x_embed") == 0) {
    c->forwards++;
    c->rows = t->shape[0];
  }
}

static void
on_step (int step, int steps, gpointer user_data)
{
  Count *c = user_data;

  c->steps_seen = step;
  c->steps_total = steps;
}

/* video tokens of one branch: 3 latent frames of 4 x 6 latents, 2x2 patches */
#define TOKENS (3 * 2 * 3)

static void
test_lightning_guidance_1 (Fixture *f, gconstpointer data)
{
  OviDenoiseRequest req;
  Count c = { 0 };
  g_autoptr (GError) error = NULL;
  g_autoptr (OviTensor) v = NULL, a = NULL, v2 = NULL, a2 = NULL;

  ovi_fusion_set_debug (ovi_denoiser_get_fusion (f->d), on_debug, &c);
  request (f, &req);
  req.sigmas = lightning;
  req.n_sigmas = 5;
  req.steps = 50; /* unused with sigmas */
  req.video_guidance = 1.0;
  req.audio_guidance = 1.0;
  g_assert_true (
      ovi_denoiser_run (f->d, &req, on_step, &c, NULL, &v, &a, &error));
  g_assert_no_error (error);
  g_assert_cmpint (c.steps_seen, ==, 4);
  g_assert_cmpint (c.steps_total, ==, 4);
  /* one forward per step, of the positive branch only */
  g_assert_cmpint (c.forwards, ==, 4);
  g_assert_cmpint (c.rows, ==, TOKENS);

  /* with guidance, the same 4 steps run both branches */
  c = (Count){ 0 };
  req.video_guidance = 4.0;
  g_assert_true (
      ovi_denoiser_run (f->d, &req, on_step, &c, NULL, &v2, &a2, &error));
  g_assert_cmpint (c.forwards, ==, 4);
  g_assert_cmpint (c.rows, ==, 2 * TOKENS);
  g_assert_true (
      memcmp (ovi_tensor_data (v), ovi_tensor_data (v2), ovi_tensor_nbytes (v))
      != 0);

  /* bad sigmas fail the run */
  static const double up[3] = { 0.5, 0.7, 0 };
  g_clear_pointer (&v2, ovi_tensor_unref);
  g_clear_pointer (&a2, ovi_tensor_unref);
  req.sigmas = up;
  req.n_sigmas = 3;
  g_assert_false (
      ovi_denoiser_run (f->d, &req, NULL, NULL, NULL, &v2, &a2, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  ovi_fusion_set_debug (ovi_denoiser_get_fusion (f->d), NULL, NULL);
}

/* the LoRAs of a request apply to that run; the next request's replace
 * them; a bad one fails its run and leaves the model as it was */
static void
test_request_loras (Fixture *f, gconstpointer data)
{
  OviDenoiseRequest req;
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("ovi-few-step-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "l.safetensors", NULL);
  g_autofree char *full = g_strdup_printf ("%s:1:both", path);
  g_autofree char *half = g_strdup_printf ("%s:0.5:both", path);
  g_autofree char *bad = g_strdup_printf ("%s.missing", path);
  int64_t ds[2] = { 2, 64 }, us[2] = { 64, 2 };
  g_autoptr (OviTensor) down = ovi_tensor_new_f32 (2, ds);
  g_autoptr (OviTensor) up = ovi_tensor_new_f32 (2, us);
  OviTensor *none[2] = { 0 }, *one[2] = { 0 }, *again[2] = { 0 },
            *after[2] = { 0 }, *other[2] = { 0 };

  for (int i = 0; i < 128; i++) {
    ((float *) ovi_tensor_data (down))[i] = 0.01f * ((i * 37) % 23 - 11);
    ((float *) ovi_tensor_data (up))[i] = 0.01f * ((i * 53) % 19 - 9);
  }
  OviNamedTensor nt[2] = {
    { "diffusion_model.blocks.0.self_attn.q.lora_down.weight", down },
    { "diffusion_model.blocks.0.self_attn.q.lora_up.weight", up },
  };
  g_assert_true (ovi_safetensors_write (path, nt, 2, NULL, &error));
  request (f, &req);
  req.steps = 2;
  g_assert_true (ovi_denoiser_run (f->d, &req, NULL, NULL, NULL, &none[0],
                                   &none[1], &error));
  req.loras = full;
  g_assert_true (ovi_denoiser_run (f->d, &req, NULL, NULL, NULL, &one[0],
                                   &one[1], &error));
  g_assert_no_error (error);
  req.loras = half;
  g_assert_true (ovi_denoiser_run (f->d, &req, NULL, NULL, NULL, &other[0],
                                   &other[1], &error));
  req.loras = bad;
  g_assert_false (ovi_denoiser_run (f->d, &req, NULL, NULL, NULL, &after[0],
                                    &after[1], &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_IO);
  g_clear_error (&error);
  req.loras = full;
  g_assert_true (ovi_denoiser_run (f->d, &req, NULL, NULL, NULL, &again[0],
                                   &again[1], &error));
  for (int t = 0; t < 2; t++) {
    gsize n = ovi_tensor_nbytes (none[t]);
    g_assert_true (
        memcmp (ovi_tensor_data (none[t]), ovi_tensor_data (one[t]), n) != 0);
    g_assert_true (
        memcmp (ovi_tensor_data (one[t]), ovi_tensor_data (other[t]), n) != 0);
    g_assert_cmpmem (ovi_tensor_data (one[t]), n, ovi_tensor_data (again[t]),
                     n);
  }
  req.loras = NULL;
  for (int t = 0; t < 2; t++)
    g_clear_pointer (&again[t], ovi_tensor_unref);
  g_assert_true (ovi_denoiser_run (f->d, &req, NULL, NULL, NULL, &again[0],
                                   &again[1], &error));
  for (int t = 0; t < 2; t++) {
    gsize n = ovi_tensor_nbytes (none[t]);
    g_assert_cmpmem (ovi_tensor_data (none[t]), n, ovi_tensor_data (again[t]),
                     n);
  }
  for (int t = 0; t < 2; t++) {
    ovi_tensor_unref (none[t]);
    ovi_tensor_unref (one[t]);
    ovi_tensor_unref (other[t]);
    ovi_tensor_unref (again[t]);
  }
  g_unlink (path);
  g_rmdir (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/few-step/schedule", test_schedule);
  g_test_add ("/few-step/lightning-guidance-1", Fixture, NULL, fixture_setup,
              test_lightning_guidance_1, fixture_teardown);
  g_test_add ("/few-step/request-loras", Fixture, NULL, fixture_setup,
              test_request_loras, fixture_teardown);
  return g_test_run ();
}
