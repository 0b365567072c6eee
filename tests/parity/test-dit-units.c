/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: unit checks of the DiT / sampler pieces that need no golden
 * file: the memory estimate and token counts at the release dims, the
 * release parameter count, the UniPC timestep list, the RoPE band split and
 * the seeded noise. */
#include <math.h>

#include "ovi-fusion.h"
#include "ovi-noise.h"
#include "ovi-presets.h"
#include "ovi-rope.h"
#include "ovi-scheduler.h"

static void
estimate (int64_t F, int64_t h, int64_t w, int64_t L, OviFusionEstimate *est)
{
  OviFusionDims d;
  g_autoptr (GError) error = NULL;

  ovi_fusion_dims_release (&d);
  g_assert_true (ovi_fusion_estimate (&d, F, h, w, L, 2, 2, est, &error));
  g_assert_no_error (error);
}

static void
test_tokens (void)
{
  OviFusionEstimate e;

  /* 720x720_5s runs at 704x704: latent [48, 31, 44, 44] */
  estimate (31, 44, 44, 157, &e);
  g_assert_cmpint (e.tokens_video, ==, 15004);
  g_assert_cmpint (e.tokens_audio, ==, 157);
  /* 960x960_10s: latent [48, 61, 60, 60], 314 audio latents */
  estimate (61, 60, 60, 314, &e);
  g_assert_cmpint (e.tokens_video, ==, 54900);
  g_assert_cmpint (e.tokens_audio, ==, 314);
  /* 704x1280 on the 720 model: 544x960 */
  estimate (31, 34, 60, 157, &e);
  g_assert_cmpint (e.tokens_video, ==, 15810);
}

static void
test_params (void)
{
  OviFusionEstimate e;

  estimate (31, 44, 44, 157, &e);
  g_assert_cmpuint (e.n_params, ==, G_GUINT64_CONSTANT (11660753108));
  g_assert_cmpuint (e.weight_bytes, ==, 2 * G_GUINT64_CONSTANT (11660753108));
  /* at least the residual streams and one FFN hidden of each tower, in bf16 */
  g_assert_cmpuint (e.activation_bytes, >,
                    (guint64) (15004 + 157) * (3072 + 14336) * 2);
  /* and it grows with the token count */
  OviFusionEstimate big;
  estimate (61, 60, 60, 314, &big);
  g_assert_cmpuint (big.activation_bytes, >, 3 * e.activation_bytes);
}

/* the DiT dims a models.json variant implies (the rest is fixed by the
 * architecture: patch 1x2x2, ConvMLP hidden = 2/3 of 4 dim rounded up to a
 * multiple of 256, kernel 7) */
static void
dims_of_preset (const OviModelPreset *m, OviFusionDims *d)
{
  int hidden = (2 * 4 * m->dim) / 3;

  *d = (OviFusionDims){
    .dim = m->dim,
    .ffn_dim = m->ffn_dim,
    .freq_dim = m->freq_dim,
    .text_dim = m->text_dim,
    .num_layers = m->num_layers,
    .video_in = m->video_channels,
    .video_out = m->video_channels,
    .patch = { 1, 2, 2 },
    .audio_in = m->audio_channels,
    .audio_out = m->audio_channels,
    .audio_hidden = 256 * ((hidden + 255) / 256),
    .audio_kernel = 7,
    .num_heads = m->num_heads,
    .text_len = m->text_len,
    .eps = m->eps,
    .audio_rope_scale = m->audio_rope_scale,
  };
}

static void
test_presets (void)
{
  static const struct {
    const char *name;
    int64_t tokens_video, tokens_audio;
  } cases[] = {
    { "720x720_5s", 15004, 157 },
    { "960x960_5s", 27900, 157 },
    { "960x960_10s", 54900, 314 },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr (GError) error = NULL;
    const OviModelPreset *m = ovi_model_preset_lookup (cases[i].name, &error);
    OviFusionDims d;
    OviFusionEstimate e;
    int h, w;

    g_assert_no_error (error);
    dims_of_preset (m, &d);
    g_assert_true (ovi_snap_hw_t2v (m->default_height, m->default_width,
                                    m->target_area, &h, &w, &error));
    g_assert_true (ovi_fusion_estimate (&d, m->video_latent_frames, h / 16,
                                        w / 16, m->audio_latent_length, 2, 2,
                                        &e, &error));
    g_assert_no_error (error);
    g_assert_cmpint (e.tokens_video, ==, cases[i].tokens_video);
    g_assert_cmpint (e.tokens_audio, ==, cases[i].tokens_audio);
    g_assert_cmpuint (e.n_params, ==, G_GUINT64_CONSTANT (11660753108));
  }
}

static void
test_bad_sizes (void)
{
  OviFusionDims d;
  OviFusionEstimate e;
  g_autoptr (GError) error = NULL;

  ovi_fusion_dims_release (&d);
  g_assert_false (ovi_fusion_estimate (&d, 31, 45, 44, 157, 2, 2, &e, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  d.num_heads = 25;
  g_assert_false (ovi_fusion_estimate (&d, 31, 44, 44, 157, 2, 2, &e, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_SHAPE);
}

static void
test_unipc_timesteps (void)
{
  static const int head[] = { 999, 995, 991, 987, 982, 978, 973, 968 };
  static const int tail[] = { 487, 448, 405, 356, 302, 241, 172, 92 };
  g_autoptr (OviBackend) be = ovi_backend_new_cpu (1);
  g_autoptr (OviScheduler) s
      = ovi_scheduler_new (OVI_SCHEDULER_UNIPC, be, 50, 5.0, NULL);

  for (int i = 0; i < 8; i++) {
    g_assert_cmpfloat (ovi_scheduler_timestep (s, i), ==, head[i]);
    g_assert_cmpfloat (ovi_scheduler_timestep (s, 42 + i), ==, tail[i]);
  }
  g_assert_cmpfloat_with_epsilon (ovi_scheduler_sigma (s, 0), 0.99979985, 1e-7);
  g_assert_cmpfloat (ovi_scheduler_sigma (s, 50), ==, 0.0);
}

/* diffusers' FlowMatchEulerDiscreteScheduler(shift=5), 4 steps: timesteps
 * linspace(1000, 1000 shift(1/1000), 4) / 1000, shifted again, then 0 */
static void
test_euler (void)
{
  g_autoptr (OviBackend) be = ovi_backend_new_cpu (1);
  g_autoptr (OviScheduler) s
      = ovi_scheduler_new (OVI_SCHEDULER_EULER, be, 4, 5.0, NULL);
  double smin = 5.0 * 0.001 / (1.0 + 4.0 * 0.001);
  int64_t shape[1] = { 3 };
  g_autoptr (OviTensor) x = ovi_backend_new_act (be, 1, shape);
  g_autoptr (OviTensor) v = ovi_backend_new_act (be, 1, shape);
  g_autoptr (GError) error = NULL;

  for (int i = 0; i < 4; i++) {
    double t = 1.0 + i * (smin - 1.0) / 3.0;
    double sg = 5.0 * t / (1.0 + 4.0 * t);
    g_assert_cmpfloat_with_epsilon (ovi_scheduler_sigma (s, i), sg, 1e-7);
    g_assert_cmpfloat_with_epsilon (ovi_scheduler_timestep (s, i), sg * 1000,
                                    1e-9);
  }
  g_assert_cmpfloat (ovi_scheduler_sigma (s, 4), ==, 0.0);
  /* x += (sigma_1 - sigma_0) v */
  ovi_op_fill (be, x, 2.0f);
  ovi_op_fill (be, v, 1.0f);
  g_assert_true (ovi_scheduler_step (s, x, v, &error));
  g_assert_no_error (error);
  g_assert_cmpfloat_with_epsilon (
      ((float *) ovi_tensor_data (x))[2],
      2.0 + ovi_scheduler_sigma (s, 1) - ovi_scheduler_sigma (s, 0), 1e-6);
  g_assert_cmpint (ovi_scheduler_step_index (s), ==, 1);
}

static void
test_rope_split (void)
{
  g_assert_cmpint (ovi_rope_first_band_dims (128), ==, 44);
  g_assert_cmpint (ovi_rope_first_band_dims (32), ==, 12);
  g_autoptr (OviTensor) c = NULL;
  g_autoptr (OviTensor) s = NULL;
  ovi_rope_video_tables (32, 2, 3, 4, &c, &s);
  g_assert_cmpint (c->shape[0], ==, 24);
  g_assert_cmpint (c->shape[1], ==, 16);
  /* token (f=1, i=2, j=3): pair 0 turns by f, pair 6 by i, pair 11 by j */
  float *cd = ovi_tensor_data (c);
  int64_t row = (1 * 3 + 2) * 4 + 3;
  g_assert_cmpfloat_with_epsilon (cd[row * 16 + 0], cos (1.0), 1e-6);
  g_assert_cmpfloat_with_epsilon (cd[row * 16 + 6], cos (2.0), 1e-6);
  g_assert_cmpfloat_with_epsilon (cd[row * 16 + 11], cos (3.0), 1e-6);
  g_assert_cmpfloat_with_epsilon (cd[row * 16 + 12],
                                  cos (3.0 * pow (10000.0, -2.0 / 10)), 1e-6);
}

static void
test_noise (void)
{
  int64_t shape[1] = { 200001 };
  g_autoptr (OviTensor) a = ovi_noise_gaussian (42, 1, shape, NULL);
  g_autoptr (OviTensor) b = ovi_noise_gaussian (42, 1, shape, NULL);
  g_autoptr (OviTensor) c = ovi_noise_gaussian (43, 1, shape, NULL);
  const float *ad = ovi_tensor_data (a), *bd = ovi_tensor_data (b),
              *cd = ovi_tensor_data (c);
  double sum = 0, sum2 = 0;
  int64_t same = 0;

  for (int64_t i = 0; i < shape[0]; i++) {
    g_assert_cmpfloat (ad[i], ==, bd[i]);
    same += ad[i] == cd[i];
    sum += ad[i];
    sum2 += (double) ad[i] * ad[i];
  }
  g_assert_cmpint (same, <, 10);
  g_assert_cmpfloat (fabs (sum / shape[0]), <, 0.01);
  g_assert_cmpfloat (fabs (sum2 / shape[0] - 1.0), <, 0.02);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/dit/estimate/tokens", test_tokens);
  g_test_add_func ("/dit/estimate/params", test_params);
  g_test_add_func ("/dit/estimate/bad-sizes", test_bad_sizes);
  g_test_add_func ("/dit/estimate/presets", test_presets);
  g_test_add_func ("/dit/unipc/timesteps", test_unipc_timesteps);
  g_test_add_func ("/dit/rope/split", test_rope_split);
  g_test_add_func ("/dit/euler/schedule", test_euler);
  g_test_add_func ("/dit/noise", test_noise);
  return g_test_run ();
}
