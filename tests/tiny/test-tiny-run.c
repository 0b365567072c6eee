/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tests: the tiny model through the engine's stages (CPU backend).
 *
 * The folder `ovi make-tiny` writes is resolved as a model folder and runs
 * through the denoiser (fusion DiT, UniPC, CFG, SLG), the Wan2.2 VAE decode
 * and the audio decoder (MMAudio VAE + BigVGAN). The text embeddings are
 * random stand-ins of the right width (the text stage has its own tests).
 * Checks: the shapes the tiny preset promises, finite values, outputs that
 * are neither constant nor saturated (so the initialisation is well
 * conditioned), the seed changes the result, guidance matters, and the
 * outputs of the fixed seed equal the stored reference
 * (reference-seed103.safetensors: both latents, the waveform and every
 * 8th pixel of each decoded frame). The reference is regenerated only on
 * purpose, when the tiny model or the maths changes knowingly:
 *   OVI_TINY_WRITE_REFERENCE=1 build/tests/tiny/test-tiny-run REFERENCE
 */
#include "ovi-backend.h"
#include "ovi-engine.h"
#include "ovi-presets.h"
#include "ovi-test-util.h"
#include "ovi-tiny.h"

#include "ovi-weights.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

static char *tiny_dir;
static const char *reference_path;

/* deterministic N(0,1)-ish values (no dependence on the writer's streams) */
static OviTensor *
random_text (int n, int dim, guint32 seed)
{
  int64_t shape[2] = { n, dim };
  OviTensor *t = ovi_tensor_new_f32 (2, shape);
  float *v = ovi_tensor_data (t);
  guint32 s = seed * 2654435761u + 1;

  for (int64_t i = 0; i < (int64_t) n * dim; i++) {
    float acc = 0;
    for (int k = 0; k < 4; k++) {
      s = s * 1664525u + 1013904223u;
      acc += (float) (s >> 8) / 16777216.0f - 0.5f;
    }
    v[i] = acc * 1.7320508f; /* variance 1 */
  }
  return t;
}

#define PIXEL_STRIDE 8

typedef struct {
  int frames;
  int height, width;
  double sum, sumsq;
  int64_t n, clamped;
  gboolean bad;
  GArray *pixels; /* every PIXEL_STRIDE-th row and column of each frame */
} FrameStats;

static void
keep_pixels (FrameStats *st, const OviTensor *f32)
{
  const float *v = ovi_tensor_data (f32);
  int64_t n = f32->shape[1], h = f32->shape[2], w = f32->shape[3];

  for (int64_t c = 0; c < 3; c++)
    for (int64_t t = 0; t < n; t++)
      for (int64_t y = 0; y < h; y += PIXEL_STRIDE)
        for (int64_t x = 0; x < w; x += PIXEL_STRIDE)
          g_array_append_val (st->pixels, v[((c * n + t) * h + y) * w + x]);
}

static gboolean
on_frames (const OviTensor *frames, int first_frame, gpointer user_data)
{
  FrameStats *st = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (OviTensor) f32 = ovi_tensor_to_f32 (frames, &error);
  const float *v;
  int64_t n;

  g_assert_no_error (error);
  g_assert_cmpint (frames->ndim, ==, 4);
  g_assert_cmpint (frames->shape[0], ==, 3);
  g_assert_cmpint (first_frame, ==, st->frames);
  st->frames += frames->shape[1];
  st->height = frames->shape[2];
  st->width = frames->shape[3];
  v = ovi_tensor_data (f32);
  n = ovi_tensor_numel (f32);
  for (int64_t i = 0; i < n; i++) {
    if (!isfinite (v[i]) || v[i] < -1.0f || v[i] > 1.0f)
      st->bad = TRUE;
    st->clamped += fabsf (v[i]) >= 0.999f;
    st->sum += v[i];
    st->sumsq += (double) v[i] * v[i];
  }
  st->n += n;
  keep_pixels (st, f32);
  return TRUE;
}

typedef struct {
  OviTensor *video, *audio;
} Latents;

static void
latents_clear (Latents *l)
{
  g_clear_pointer (&l->video, ovi_tensor_unref);
  g_clear_pointer (&l->audio, ovi_tensor_unref);
}

static void
denoise (OviDenoiser *d, const OviModelPreset *m, guint64 seed,
         double guidance_scale, Latents *out)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviTensor) pos = random_text (7, m->text_dim, 1);
  g_autoptr (OviTensor) vneg = random_text (5, m->text_dim, 2);
  g_autoptr (OviTensor) aneg = random_text (6, m->text_dim, 3);
  OviDenoiseRequest req;

  ovi_test_preset_request (&req, m, pos, vneg, aneg, seed);
  req.video_guidance *= guidance_scale;
  req.audio_guidance *= guidance_scale;
  g_assert_true (ovi_denoiser_run (d, &req, NULL, NULL, NULL, &out->video,
                                   &out->audio, &error));
  g_assert_no_error (error);
}

static void
check_latent (const OviTensor *t, const char *what)
{
  const float *v = ovi_tensor_data (t);
  double sumsq = 0;
  int64_t n = ovi_tensor_numel (t);

  for (int64_t i = 0; i < n; i++) {
    if (!isfinite (v[i]))
      g_error ("%s: non-finite value at %" G_GINT64_FORMAT, what, i);
    sumsq += (double) v[i] * v[i];
  }
  g_test_message ("%s latent rms %.4f", what, sqrt (sumsq / n));
  g_assert_cmpfloat (sqrt (sumsq / n), >, 0.05);
  g_assert_cmpfloat (sqrt (sumsq / n), <, 20.0);
}

static OviTensor *
pixels_tensor (GArray *pixels)
{
  OviTensor *t = ovi_tensor_new_f32 (1, (int64_t[]){ pixels->len });

  memcpy (ovi_tensor_data (t), pixels->data, pixels->len * sizeof (float));
  return t;
}

/* rel_l2 of each output against the stored reference of seed 103 (or, with
 * OVI_TINY_WRITE_REFERENCE set, writes that reference) */
static void
check_reference (const OviNamedTensor *outputs, guint n)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviWeightFile) ref = NULL;

  if (g_getenv ("OVI_TINY_WRITE_REFERENCE")) {
    g_assert_true (
        ovi_safetensors_write (reference_path, outputs, n, NULL, &error));
    g_assert_no_error (error);
    g_test_message ("wrote %s", reference_path);
    return;
  }
  ref = ovi_weight_file_open (reference_path, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (ovi_weight_file_n_tensors (ref), ==, n);
  for (guint i = 0; i < n; i++) {
    g_autoptr (OviTensor) want
        = ovi_weight_file_get (ref, outputs[i].name, &error);
    g_assert_no_error (error);
    g_assert_cmpint (ovi_tensor_numel (want), ==,
                     ovi_tensor_numel (outputs[i].tensor));
    double rel = ovi_test_rel_l2 (outputs[i].tensor, want);
    g_test_message ("%s: rel_l2 %.3e to the reference", outputs[i].name, rel);
    if (!(rel <= 1e-4))
      g_error ("%s differs from %s (rel_l2 %.3e > 1e-4); if the tiny model "
               "or the maths changed on purpose, regenerate it (see the top "
               "of test-tiny-run.c)",
               outputs[i].name, reference_path, rel);
  }
}

static void
test_run (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviModelPaths) paths = NULL;
  g_autoptr (OviBackend) be = ovi_backend_new_cpu (2);
  const OviModelPreset *m;
  OviDenoiser *d;
  OviVideoVae *vae;
  OviAudioDecoder *adec;
  Latents a = { 0 }, b = { 0 }, c = { 0 };
  FrameStats st = { .pixels = g_array_new (FALSE, FALSE, sizeof (float)) };
  g_autoptr (OviTensor) wav = NULL;
  g_autoptr (OviTensor) wav32 = NULL;
  double peak = 0, asq = 0, mean, rms;
  const float *w;
  int64_t ns;

  paths = ovi_model_paths_resolve (tiny_dir, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (paths->variant, ==, "tiny");
  m = ovi_model_preset_lookup ("tiny", &error);
  g_assert_no_error (error);

  d = ovi_denoiser_new (paths, be, &error);
  g_assert_no_error (error);
  denoise (d, m, 103, 1.0, &a);
  denoise (d, m, 104, 1.0, &b);
  denoise (d, m, 103, 0.0, &c);
  ovi_denoiser_free (d);

  /* shapes of the tiny preset: [48, 3, 64/16, 96/16] and [12, 20] */
  g_assert_cmpint (a.video->ndim, ==, 4);
  g_assert_cmpint (a.video->shape[0], ==, 48);
  g_assert_cmpint (a.video->shape[1], ==, m->video_latent_frames);
  g_assert_cmpint (a.video->shape[2], ==, m->default_height / 16);
  g_assert_cmpint (a.video->shape[3], ==, m->default_width / 16);
  g_assert_cmpint (a.audio->ndim, ==, 2);
  g_assert_cmpint (a.audio->shape[0], ==, m->audio_latent_length);
  g_assert_cmpint (a.audio->shape[1], ==, 20);
  check_latent (a.video, "video");
  check_latent (a.audio, "audio");
  /* the seed and the guidance both change the result */
  g_assert_cmpfloat (ovi_test_max_abs_diff (a.video, b.video), >, 1e-2);
  g_assert_cmpfloat (ovi_test_max_abs_diff (a.audio, b.audio), >, 1e-2);
  g_assert_cmpfloat (ovi_test_max_abs_diff (a.video, c.video), >, 1e-3);
  g_assert_cmpfloat (ovi_test_max_abs_diff (a.audio, c.audio), >, 1e-3);

  vae = ovi_video_vae_new (paths, be, &error);
  g_assert_no_error (error);
  g_assert_true (
      ovi_video_vae_decode (vae, a.video, on_frames, &st, NULL, &error));
  g_assert_no_error (error);
  ovi_video_vae_free (vae);
  g_assert_false (st.bad);
  g_assert_cmpint (st.frames, ==, m->pixel_frames);
  g_assert_cmpint (st.height, ==, m->default_height);
  g_assert_cmpint (st.width, ==, m->default_width);
  mean = st.sum / st.n;
  rms = sqrt (st.sumsq / st.n - mean * mean);
  g_test_message ("video: %d frames %dx%d, mean %.4f, std %.4f, %.3f%% at "
                  "the clamp",
                  st.frames, st.width, st.height, mean, rms,
                  100.0 * st.clamped / st.n);
  g_assert_cmpfloat (rms, >, 0.01);
  g_assert_cmpfloat ((double) st.clamped / st.n, <, 0.05);

  adec = ovi_audio_decoder_new (paths, be, &error);
  g_assert_no_error (error);
  wav = ovi_audio_decoder_decode (adec, a.audio, NULL, &error);
  g_assert_no_error (error);
  ovi_audio_decoder_free (adec);
  wav32 = ovi_tensor_to_f32 (wav, &error);
  g_assert_no_error (error);
  ns = ovi_tensor_numel (wav32);
  g_assert_cmpint (ns, ==, m->audio_samples);
  w = ovi_tensor_data (wav32);
  for (int64_t i = 0; i < ns; i++) {
    g_assert_true (isfinite (w[i]));
    peak = MAX (peak, fabs (w[i]));
    asq += (double) w[i] * w[i];
  }
  g_test_message ("audio: %" G_GINT64_FORMAT " samples, rms %.4f, peak %.4f",
                  ns, sqrt (asq / ns), peak);
  g_assert_cmpfloat (sqrt (asq / ns), >, 1e-4);
  g_assert_cmpfloat (peak, <, 0.999);

  g_autoptr (OviTensor) pixels = pixels_tensor (st.pixels);
  const OviNamedTensor outputs[] = {
    { "video_latent", a.video },
    { "audio_latent", a.audio },
    { "pixels", pixels },
    { "wav", wav32 },
  };
  check_reference (outputs, G_N_ELEMENTS (outputs));
  g_array_free (st.pixels, TRUE);

  latents_clear (&a);
  latents_clear (&b);
  latents_clear (&c);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (argc != 2)
    g_error ("usage: %s REFERENCE.safetensors", argv[0]);
  reference_path = argv[1];
  tiny_dir
      = ovi_test_make_tiny_dir ("ovi-tiny-run-XXXXXX", OVI_TINY_DEFAULT_SEED);
  g_test_add_func ("/tiny/run-stages", test_run);
  return ovi_test_run_then_remove (tiny_dir);
}
