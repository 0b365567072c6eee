/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tests: small helpers the test programs share (see ovi-test-util.h). */
#include "ovi-test-util.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "ovi-tiny.h"
#include "ovi-weights.h"

void
ovi_test_remove_tree (const char *path)
{
  GDir *d = g_dir_open (path, 0, NULL);
  const char *name;

  if (d) {
    while ((name = g_dir_read_name (d)) != NULL) {
      g_autofree char *child = g_build_filename (path, name, NULL);
      if (g_file_test (child, G_FILE_TEST_IS_DIR)
          && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
        ovi_test_remove_tree (child);
      else
        g_unlink (child);
    }
    g_dir_close (d);
  }
  g_rmdir (path);
}

int
ovi_test_run_then_remove (char *dir)
{
  int status = g_test_run ();

  ovi_test_remove_tree (dir);
  g_free (dir);
  return status;
}

char *
ovi_test_make_tmp_dir (const char *tmpl)
{
  g_autoptr (GError) error = NULL;
  char *d = g_dir_make_tmp (tmpl, &error);

  g_assert_no_error (error);
  return d;
}

char *
ovi_test_make_tiny_dir (const char *tmpl, guint64 seed)
{
  g_autoptr (GError) error = NULL;
  char *d = ovi_test_make_tmp_dir (tmpl);

  if (!ovi_tiny_write (d, seed, &error))
    g_error ("%s", error->message);
  return d;
}

double
ovi_test_rel_l2 (const OviTensor *a, const OviTensor *b)
{
  const float *x = ovi_tensor_data (a), *y = ovi_tensor_data (b);
  double d = 0, r = 0;

  g_assert_cmpint (a->dtype, ==, OVI_DTYPE_F32);
  g_assert_cmpint (b->dtype, ==, OVI_DTYPE_F32);
  g_assert_cmpint (ovi_tensor_numel (a), ==, ovi_tensor_numel (b));
  for (int64_t i = 0; i < ovi_tensor_numel (a); i++) {
    d += ((double) x[i] - y[i]) * ((double) x[i] - y[i]);
    r += (double) y[i] * y[i];
  }
  return sqrt (d / r);
}

double
ovi_test_max_abs_diff (const OviTensor *a, const OviTensor *b)
{
  const float *x = ovi_tensor_data (a), *y = ovi_tensor_data (b);
  double m = 0;

  g_assert_cmpint (ovi_tensor_numel (a), ==, ovi_tensor_numel (b));
  for (int64_t i = 0; i < ovi_tensor_numel (a); i++)
    m = MAX (m, fabs ((double) x[i] - y[i]));
  return m;
}

gboolean
ovi_test_same_bits (const OviTensor *a, const OviTensor *b)
{
  return ovi_tensor_nbytes (a) == ovi_tensor_nbytes (b)
         && memcmp (ovi_tensor_data (a), ovi_tensor_data (b),
                    ovi_tensor_nbytes (a))
                == 0;
}

void
ovi_test_golden_init (OviTestGolden *g)
{
  const char *golden = g_getenv ("OVI_GOLDEN_DIR");
  g_autofree char *io = NULL;
  g_autoptr (GError) error = NULL;
  static const char *const names[3]
      = { "text.pos", "text.vid_neg", "text.audio_neg" };

  g_assert_nonnull (golden);
  io = g_build_filename (golden, "sampler", "io.safetensors", NULL);
  g->be = ovi_backend_new_cpu (1);
  g->io = ovi_weight_file_open (io, NULL, &error);
  g_assert_no_error (error);
  for (int i = 0; i < 3; i++) {
    g->text[i] = ovi_weight_file_get (g->io, names[i], &error);
    g_assert_no_error (error);
  }
  g->paths = (OviModelPaths){
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
}

void
ovi_test_golden_clear (OviTestGolden *g)
{
  for (int i = 0; i < 3; i++)
    ovi_tensor_unref (g->text[i]);
  ovi_weight_file_free (g->io);
  g_free (g->paths.fusion_path);
  ovi_backend_free (g->be);
}

void
ovi_test_golden_request (const OviTestGolden *g, OviDenoiseRequest *req)
{
  ovi_denoise_request_init (req);
  req->text_pos = g->text[0];
  req->text_video_neg = g->text[1];
  req->text_audio_neg = g->text[2];
  req->slg_layer = 1;
  req->width = 96;
  req->height = 64;
}

void
ovi_test_preset_request (OviDenoiseRequest *req, const OviModelPreset *m,
                         OviTensor *pos, OviTensor *video_neg,
                         OviTensor *audio_neg, guint64 seed)
{
  ovi_denoise_request_init (req);
  req->text_pos = pos;
  req->text_video_neg = video_neg;
  req->text_audio_neg = audio_neg;
  req->seed = seed;
  req->steps = m->steps;
  req->shift = m->shift;
  req->video_guidance = m->video_guidance;
  req->audio_guidance = m->audio_guidance;
  req->slg_layer = m->slg_layer;
  req->width = m->default_width;
  req->height = m->default_height;
}

/* [rows, cols] of amp * ((i * mul) % mod - mod / 2) */
static OviTensor *
lora_factor (int64_t rows, int64_t cols, float amp, int mul, int mod)
{
  OviTensor *t = ovi_tensor_new_f32 (2, (int64_t[]){ rows, cols });

  for (int64_t i = 0; i < ovi_tensor_numel (t); i++)
    ((float *) ovi_tensor_data (t))[i]
        = amp * (float) ((i * mul) % mod - mod / 2);
  return t;
}

void
ovi_test_write_q_lora (const char *fusion_path, int n_blocks, float amp,
                       gboolean unmatched, const char *path)
{
  GError *error = NULL;
  g_autoptr (OviWeightFile) wf
      = ovi_weight_file_open (fusion_path, NULL, &error);
  g_autoptr (OviTensor) q = NULL, down = NULL, up = NULL;
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  g_autofree OviNamedTensor *nt = g_new0 (OviNamedTensor, 2 * n_blocks + 1);
  int n = 0;

  g_assert_no_error (error);
  q = ovi_weight_file_get (wf, "video_model.blocks.0.self_attn.q.weight",
                           &error);
  g_assert_no_error (error);
  down = lora_factor (2, q->shape[1], amp, 37, 21);
  up = lora_factor (q->shape[0], 2, amp, 53, 17);
  for (int b = 0; b < n_blocks + !!unmatched; b++) {
    int block = b < n_blocks ? b : 99;
    char *dn = g_strdup_printf (
        "diffusion_model.blocks.%d.self_attn.q.lora_down.weight", block);
    char *un = g_strdup_printf (
        "diffusion_model.blocks.%d.self_attn.q.lora_up.weight", block);
    g_ptr_array_add (names, dn);
    g_ptr_array_add (names, un);
    if (block != 99)
      nt[n++] = (OviNamedTensor){ dn, down };
    nt[n++] = (OviNamedTensor){ un, up };
  }
  g_assert_true (ovi_safetensors_write (path, nt, n, NULL, &error));
  g_assert_no_error (error);
}

OviTensor *
ovi_test_text (int64_t rows, int64_t cols, guint32 seed)
{
  int64_t shape[2] = { rows, cols };
  OviTensor *t = ovi_tensor_new_f32 (2, shape);
  float *v = ovi_tensor_data (t);
  guint32 s = seed * 2654435761u + 1;

  for (int64_t i = 0; i < rows * cols; i++) {
    s = s * 1664525u + 1013904223u;
    v[i] = ((float) (s >> 8) / (float) (1u << 24) - 0.5f) * 0.8f;
  }
  return t;
}

OviBackend *
ovi_test_backend_new (const char *name)
{
  GError *error = NULL;
  OviBackend *be = g_strcmp0 (name, "cpu") == 0
                       ? ovi_backend_new_cpu (2)
                       : ovi_backend_new_by_name (name, 0, &error);

  g_assert_no_error (error);
  return be;
}

void
ovi_test_denoise_tiny (OviBackend *be, OviDenoiser *d, OviTensor **video,
                       OviTensor **audio)
{
  const OviModelPreset *m = ovi_model_preset_lookup ("tiny", NULL);
  g_autoptr (OviTensor) pos = ovi_test_text (7, m->text_dim, 1);
  g_autoptr (OviTensor) vneg = ovi_test_text (5, m->text_dim, 2);
  g_autoptr (OviTensor) aneg = ovi_test_text (6, m->text_dim, 3);
  OviDenoiseRequest req;
  GError *error = NULL;

  /* slg_layer: a batch split around one layer */
  ovi_test_preset_request (&req, m, pos, vneg, aneg, 7);
  g_assert_true (
      ovi_denoiser_run (d, &req, NULL, NULL, NULL, video, audio, &error));
  g_assert_no_error (error);
  for (int i = 0; i < 2; i++) {
    OviTensor **t = i ? audio : video;
    if (!ovi_tensor_is_host (*t)) {
      OviTensor *host = ovi_backend_download_f32 (be, *t, &error);
      g_assert_no_error (error);
      ovi_tensor_unref (*t);
      *t = host;
    }
  }
}

gboolean
ovi_test_backend_from_args (int argc, char **argv, const char **name)
{
  GError *error = NULL;
  OviBackend *be;

  if (argc < 3 || g_strcmp0 (argv[1], "--backend") != 0)
    return TRUE;
  be = ovi_backend_new_by_name (argv[2], 0, &error);
  if (be == NULL) {
    g_print ("SKIP: backend %s: %s\n", argv[2], error->message);
    g_error_free (error);
    return FALSE;
  }
  ovi_backend_free (be);
  *name = argv[2];
  return TRUE;
}
