/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi GPU tests: the tiny model through the engine's stages (denoiser
 * with UniPC, CFG and SLG; Wan2.2 VAE decode; audio decoder) on the cuda
 * backend against the cpu backend: rel_l2 of the latents, the decoded
 * frames and the waveform. cuda-fp32 must match to 1e-3 (a whole sampling
 * loop of fp32 arithmetic in another order), cuda (bf16) to 1e-1. Exits 77
 * (skip) when the machine has no CUDA device. */
#include "ovi-backend.h"
#include "ovi-engine.h"
#include "ovi-presets.h"
#include "ovi-test-util.h"
#include "ovi-tiny.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

typedef struct {
  OviTensor *video, *audio, *wav;
  GArray *frames; /* floats of every decoded frame, in order */
} Outputs;

static OviTensor *
random_text (int n, int dim, guint32 seed)
{
  OviTensor *t = ovi_tensor_new_f32 (2, (int64_t[]){ n, dim });
  float *v = ovi_tensor_data (t);
  guint32 s = seed * 2654435761u + 1;

  for (int64_t i = 0; i < (int64_t) n * dim; i++) {
    s = s * 1664525u + 1013904223u;
    v[i] = ((float) (s >> 8) / 16777216.0f - 0.5f) * 3.4641f;
  }
  return t;
}

static gboolean
on_frames (const OviTensor *frames, int first_frame, gpointer user_data)
{
  Outputs *o = user_data;
  g_autoptr (OviTensor) f = ovi_tensor_to_f32 (frames, NULL);

  g_assert_nonnull (f);
  g_array_append_vals (o->frames, ovi_tensor_data (f), ovi_tensor_numel (f));
  return TRUE;
}

static void
run_all (OviBackend *be, const OviModelPaths *paths, const OviModelPreset *m,
         Outputs *o)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviTensor) pos = random_text (7, m->text_dim, 1);
  g_autoptr (OviTensor) vneg = random_text (5, m->text_dim, 2);
  g_autoptr (OviTensor) aneg = random_text (6, m->text_dim, 3);
  OviDenoiseRequest req;
  OviDenoiser *d;
  OviVideoVae *vae;
  OviAudioDecoder *adec;

  ovi_test_preset_request (&req, m, pos, vneg, aneg, 103);
  d = ovi_denoiser_new (paths, be, &error);
  g_assert_no_error (error);
  g_assert_true (ovi_denoiser_run (d, &req, NULL, NULL, NULL, &o->video,
                                   &o->audio, &error));
  g_assert_no_error (error);
  ovi_denoiser_free (d);

  o->frames = g_array_new (FALSE, FALSE, sizeof (float));
  vae = ovi_video_vae_new (paths, be, &error);
  g_assert_no_error (error);
  g_assert_true (
      ovi_video_vae_decode (vae, o->video, on_frames, o, NULL, &error));
  g_assert_no_error (error);
  ovi_video_vae_free (vae);

  adec = ovi_audio_decoder_new (paths, be, &error);
  g_assert_no_error (error);
  o->wav = ovi_audio_decoder_decode (adec, o->audio, NULL, &error);
  g_assert_no_error (error);
  ovi_audio_decoder_free (adec);
}

static double
rel_l2 (const float *a, const float *b, int64_t n)
{
  double num = 0, den = 0;

  for (int64_t i = 0; i < n; i++) {
    num += ((double) a[i] - b[i]) * ((double) a[i] - b[i]);
    den += (double) b[i] * b[i];
  }
  return den > 0 ? sqrt (num / den) : sqrt (num);
}

static void
expect_close (const char *what, const char *mode, OviTensor *got,
              OviTensor *ref, double tol)
{
  g_autoptr (OviTensor) g = ovi_tensor_to_f32 (got, NULL);
  g_autoptr (OviTensor) r = ovi_tensor_to_f32 (ref, NULL);
  double e;

  g_assert_nonnull (g);
  g_assert_nonnull (r);
  g_assert_true (ovi_tensor_has_shape (g, r->ndim, r->shape));
  e = rel_l2 (ovi_tensor_data (g), ovi_tensor_data (r), ovi_tensor_numel (r));
  g_print ("# tiny %-12s %-9s rel_l2 %.3e\n", what, mode, e);
  if (!(e <= tol))
    g_error ("tiny %s on %s: rel_l2 %.3e above %.1e", what, mode, e, tol);
}

static void
outputs_clear (Outputs *o)
{
  g_clear_pointer (&o->video, ovi_tensor_unref);
  g_clear_pointer (&o->audio, ovi_tensor_unref);
  g_clear_pointer (&o->wav, ovi_tensor_unref);
  if (o->frames)
    g_array_unref (o->frames);
  o->frames = NULL;
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = NULL;
  g_autoptr (OviModelPaths) paths = NULL;
  const OviModelPreset *m;
  const char *modes[] = { "cuda-fp32", "cuda" };
  const double tols[] = { 1e-3, 1e-1 };
  OviBackend *probe, *cpu;
  Outputs ref = { 0 };

  g_test_init (&argc, &argv, NULL);
  probe = ovi_backend_new_by_name ("cuda-fp32", 0, &error);
  if (probe == NULL) {
    if (g_str_has_prefix (error->message, "no CUDA device found")) {
      g_print ("SKIP: %s\n", error->message);
      return 77;
    }
    g_printerr ("cannot create the cuda backend: %s\n", error->message);
    return 1;
  }
  ovi_backend_free (probe);

  dir = g_dir_make_tmp ("ovi-gpu-tiny-XXXXXX", &error);
  g_assert_no_error (error);
  g_assert_true (ovi_tiny_write (dir, OVI_TINY_DEFAULT_SEED, &error));
  g_assert_no_error (error);
  paths = ovi_model_paths_resolve (dir, NULL, &error);
  g_assert_no_error (error);
  m = ovi_model_preset_lookup ("tiny", &error);
  g_assert_no_error (error);

  cpu = ovi_backend_new_cpu (0);
  run_all (cpu, paths, m, &ref);
  ovi_backend_free (cpu);
  for (int i = 0; i < 2; i++) {
    OviBackend *be = ovi_backend_new_by_name (modes[i], 0, &error);
    Outputs o = { 0 };
    g_assert_no_error (error);
    run_all (be, paths, m, &o);
    expect_close ("video latent", modes[i], o.video, ref.video, tols[i]);
    expect_close ("audio latent", modes[i], o.audio, ref.audio, tols[i]);
    expect_close ("waveform", modes[i], o.wav, ref.wav, tols[i]);
    g_assert_cmpuint (o.frames->len, ==, ref.frames->len);
    {
      double e = rel_l2 ((float *) o.frames->data, (float *) ref.frames->data,
                         ref.frames->len);
      g_print ("# tiny %-12s %-9s rel_l2 %.3e\n", "frames", modes[i], e);
      if (!(e <= tols[i]))
        g_error ("tiny frames on %s: rel_l2 %.3e", modes[i], e);
    }
    outputs_clear (&o);
    ovi_backend_free (be);
  }
  outputs_clear (&ref);
  {
    /* remove the tiny folder */
    g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", dir);
    (void) system (cmd);
  }
  return 0;
}
