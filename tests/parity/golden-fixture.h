/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tests/parity: the denoiser on the golden fusion_dit weights and the
 * sampler case's text embeddings, as a GTest fixture, for the denoiser
 * tests that run the golden model (test-denoiser.c, test-few-step.c). */
#pragma once

#include "ovi-engine.h"
#include "ovi-weights.h"

typedef struct {
  OviBackend *be;
  OviWeightFile *io;
  OviModelPaths paths;
  OviDenoiser *d;
  OviTensor *text[3];
} Fixture;

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  const char *golden = g_getenv ("OVI_GOLDEN_DIR");
  g_autofree char *io = NULL;
  g_autoptr (GError) error = NULL;
  static const char *const names[3]
      = { "text.pos", "text.vid_neg", "text.audio_neg" };

  g_assert_nonnull (golden);
  io = g_build_filename (golden, "sampler", "io.safetensors", NULL);
  f->be = ovi_backend_new_cpu (1);
  f->io = ovi_weight_file_open (io, NULL, &error);
  g_assert_no_error (error);
  for (int i = 0; i < 3; i++) {
    f->text[i] = ovi_weight_file_get (f->io, names[i], &error);
    g_assert_no_error (error);
  }
  /* the fusion_dit case's dims: 2 heads, text_len 32 */
  f->paths = (OviModelPaths){
    .variant = (char *) "golden",
    .video_latent_frames = 3,
    .audio_latent_length = 12,
    .target_area = 64 * 96,
    .num_heads = 2,
    .text_len = 32,
    .eps = 1e-6,
    .audio_rope_scale = 0.19676,
    .fusion_path
    = g_build_filename (golden, "fusion_dit", "weights.safetensors", NULL),
  };
  f->d = ovi_denoiser_new (&f->paths, f->be, &error);
  g_assert_no_error (error);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  ovi_denoiser_free (f->d);
  for (int i = 0; i < 3; i++)
    ovi_tensor_unref (f->text[i]);
  ovi_weight_file_free (f->io);
  g_free (f->paths.fusion_path);
  ovi_backend_free (f->be);
}

static void
golden_request_init (Fixture *f, OviDenoiseRequest *req)
{
  ovi_denoise_request_init (req);
  req->text_pos = f->text[0];
  req->text_video_neg = f->text[1];
  req->text_audio_neg = f->text[2];
  req->slg_layer = 1;
  req->width = 96;
  req->height = 64;
}
