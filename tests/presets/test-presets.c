/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tests: presets tables, resolution snapping, model folder resolution. */
#include "ovi-engine.h"
#include "ovi-error.h"
#include "ovi-presets.h"
#include "ovi-test-util.h"
#include "ovi-tiny.h"

#include <glib/gstdio.h>
#include <string.h>

static void
test_models (void)
{
  g_autoptr (GError) error = NULL;
  const OviModelPreset *m;
  g_auto (GStrv) names = ovi_model_preset_names (&error);

  g_assert_no_error (error);
  g_assert_cmpuint (g_strv_length (names), ==, 4);
  g_assert_cmpstr (names[0], ==, "720x720_5s");
  g_assert_cmpstr (names[1], ==, "960x960_5s");
  g_assert_cmpstr (names[2], ==, "960x960_10s");
  g_assert_cmpstr (names[3], ==, "tiny");

  m = ovi_model_preset_lookup ("720x720_5s", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (m->fusion_file, ==, "Ovi/model.safetensors");
  g_assert_cmpstr (m->fp8_file, ==, "Ovi/model_fp8_e4m3fn.safetensors");
  g_assert_cmpint (m->video_latent_frames, ==, 31);
  g_assert_cmpint (m->audio_latent_length, ==, 157);
  g_assert_cmpint (m->pixel_frames, ==, 121);
  g_assert_cmpint (m->audio_samples, ==, 80384);
  g_assert_cmpint (m->target_area, ==, 720 * 720);
  g_assert_true (m->audcap_syntax);
  g_assert_cmpint (m->dim, ==, 3072);
  g_assert_cmpint (m->num_heads, ==, 24);
  g_assert_cmpint (m->ffn_dim, ==, 14336);
  g_assert_cmpint (m->num_layers, ==, 30);
  g_assert_cmpint (m->text_len, ==, 512);
  g_assert_cmpint (m->text_dim, ==, 4096);
  g_assert_cmpint (m->freq_dim, ==, 256);
  g_assert_cmpfloat (m->eps, ==, 1e-6);
  g_assert_cmpfloat (m->audio_rope_scale, ==, 0.19676);
  g_assert_cmpint (m->video_channels, ==, 48);
  g_assert_cmpint (m->audio_channels, ==, 20);
  g_assert_cmpint (m->steps, ==, 50);
  g_assert_cmpstr (m->solver, ==, "unipc");
  g_assert_cmpfloat (m->shift, ==, 5.0);
  g_assert_cmpfloat (m->video_guidance, ==, 4.0);
  g_assert_cmpfloat (m->audio_guidance, ==, 3.0);
  g_assert_cmpint (m->slg_layer, ==, 11);
  g_assert_cmpstr (m->video_negative, ==,
                   "jitter, bad hands, blur, distortion");
  g_assert_cmpstr (m->audio_negative, ==, "robotic, muffled, echo, distorted");
  g_assert_cmpstr (m->t5_file, ==,
                   "Wan2.2-TI2V-5B/models_t5_umt5-xxl-enc-bf16.pth");
  g_assert_cmpstr (m->spiece_file, ==,
                   "Wan2.2-TI2V-5B/google/umt5-xxl/spiece.model");
  g_assert_cmpstr (m->vae_file, ==, "Wan2.2-TI2V-5B/Wan2.2_VAE.pth");
  g_assert_cmpstr (m->audio_vae_file, ==, "MMAudio/ext_weights/v1-16.pth");
  g_assert_cmpstr (m->vocoder_file, ==, "MMAudio/ext_weights/best_netG.pt");

  m = ovi_model_preset_lookup ("960x960_5s", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (m->fusion_file, ==, "Ovi/model_960x960.safetensors");
  g_assert_null (m->fp8_file);
  g_assert_cmpint (m->video_latent_frames, ==, 31);
  g_assert_cmpint (m->audio_latent_length, ==, 157);
  g_assert_cmpint (m->target_area, ==, 960 * 960);
  g_assert_false (m->audcap_syntax);

  m = ovi_model_preset_lookup ("960x960_10s", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (m->fusion_file, ==, "Ovi/model_960x960_10s.safetensors");
  g_assert_cmpint (m->video_latent_frames, ==, 61);
  g_assert_cmpint (m->audio_latent_length, ==, 314);
  g_assert_cmpint (m->pixel_frames, ==, 241);
  g_assert_cmpint (m->audio_samples, ==, 160768);
  g_assert_cmpint (m->target_area, ==, 960 * 960);
  g_assert_false (m->audcap_syntax);
}

/* the tiny preset must describe what ovi_tiny_write() makes */
static void
test_tiny_preset_matches_writer (void)
{
  g_autoptr (GError) error = NULL;
  const OviModelPreset *m = ovi_model_preset_lookup ("tiny", &error);
  OviTinyConfig cfg;
  int h, w;

  g_assert_no_error (error);
  ovi_tiny_config_init (&cfg);
  g_assert_cmpint (m->dim, ==, cfg.dit_dim);
  g_assert_cmpint (m->ffn_dim, ==, cfg.dit_ffn_dim);
  g_assert_cmpint (m->num_heads, ==, cfg.dit_heads);
  g_assert_cmpint (m->num_layers, ==, cfg.dit_layers);
  g_assert_cmpint (m->freq_dim, ==, cfg.dit_freq_dim);
  g_assert_cmpint (m->text_dim, ==, cfg.t5_dim);
  g_assert_cmpint (m->video_channels, ==, 48);
  g_assert_cmpint (m->audio_channels, ==, 20);
  g_assert_cmpint (cfg.video_channels, ==, 48);
  g_assert_cmpint (cfg.audio_channels, ==, 20);
  g_assert_cmpint (cfg.vae_z_dim, ==, 48);
  g_assert_cmpint (cfg.audio_vae_embed, ==, 20);
  g_assert_cmpstr (m->fusion_file, ==,
                   ovi_tiny_file_path (OVI_TINY_FILE_FUSION));
  g_assert_cmpstr (m->t5_file, ==, ovi_tiny_file_path (OVI_TINY_FILE_T5));
  g_assert_cmpstr (m->vae_file, ==, ovi_tiny_file_path (OVI_TINY_FILE_VAE));
  g_assert_cmpstr (m->audio_vae_file, ==,
                   ovi_tiny_file_path (OVI_TINY_FILE_AUDIO_VAE));
  g_assert_cmpstr (m->vocoder_file, ==,
                   ovi_tiny_file_path (OVI_TINY_FILE_VOCODER));
  /* SLG skips a real block that is neither the first nor the last */
  g_assert_cmpint (m->slg_layer, >, 0);
  g_assert_cmpint (m->slg_layer, <, m->num_layers - 1);
  /* the default size is already snapped and gives non-square latents */
  g_assert_true (ovi_snap_hw_t2v (m->default_height, m->default_width,
                                  m->target_area, &h, &w, &error));
  g_assert_cmpint (h, ==, m->default_height);
  g_assert_cmpint (w, ==, m->default_width);
  g_assert_cmpint (h / 16, !=, w / 16);
}

static void
test_unknown (void)
{
  g_autoptr (GError) error = NULL;
  OviVramMode mode;
  OviGpuAllocation alloc;

  g_assert_null (ovi_model_preset_lookup ("1080p", &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_UNKNOWN_PRESET);
  g_assert_nonnull (strstr (error->message, "1080p"));
  g_assert_nonnull (
      strstr (error->message, "720x720_5s, 960x960_5s, 960x960_10s, tiny"));
  g_clear_error (&error);

  g_assert_null (ovi_model_preset_lookup (NULL, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_UNKNOWN_PRESET);
  g_clear_error (&error);

  g_assert_false (ovi_vram_mode_from_string ("fp4", &mode, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_UNKNOWN_PRESET);
  g_assert_nonnull (
      strstr (error->message, "auto, standard, fp8, fp8-offload, ultra-low"));
  g_clear_error (&error);
  g_assert_null (ovi_vram_mode_preset_lookup ("FP8", &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_UNKNOWN_PRESET);
  g_clear_error (&error);

  g_assert_false (ovi_gpu_allocation_from_string ("sp3", &alloc, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_UNKNOWN_PRESET);
  g_assert_nonnull (strstr (
      error->message, "auto, single, sp2, sp4, sp8, cfg-parallel, sharded"));
  g_clear_error (&error);
  g_assert_null (ovi_gpu_allocation_preset_get (OVI_N_GPU_ALLOCATIONS, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_UNKNOWN_PRESET);
}

static void
test_vram_modes (void)
{
  g_autoptr (GError) error = NULL;
  const OviVramModePreset *p;

  for (int i = 0; i < OVI_N_VRAM_MODES; i++) {
    OviVramMode m;
    const char *s = ovi_vram_mode_to_string ((OviVramMode) i);
    g_assert_nonnull (s);
    g_assert_true (ovi_vram_mode_from_string (s, &m, &error));
    g_assert_no_error (error);
    g_assert_cmpint (m, ==, i);
    p = ovi_vram_mode_preset_lookup (s, &error);
    g_assert_no_error (error);
    g_assert_cmpint (p->mode, ==, i);
    g_assert_cmpstr (p->name, ==, s);
    g_assert_nonnull (p->description);
  }
  g_assert_null (ovi_vram_mode_to_string (OVI_N_VRAM_MODES));

  p = ovi_vram_mode_preset_get (OVI_VRAM_MODE_STANDARD, &error);
  g_assert_no_error (error);
  g_assert_cmpint (p->weight_dtype, ==, OVI_DTYPE_BF16);
  g_assert_cmpint (p->residency, ==, OVI_RESIDENCY_GPU);
  g_assert_cmpfloat (p->target_vram_gb, ==, 40);
  p = ovi_vram_mode_preset_get (OVI_VRAM_MODE_FP8, &error);
  g_assert_cmpint (p->weight_dtype, ==, OVI_DTYPE_F8_E4M3);
  g_assert_cmpint (p->residency, ==, OVI_RESIDENCY_GPU);
  g_assert_cmpfloat (p->target_vram_gb, ==, 24);
  p = ovi_vram_mode_preset_get (OVI_VRAM_MODE_FP8_OFFLOAD, &error);
  g_assert_cmpint (p->weight_dtype, ==, OVI_DTYPE_F8_E4M3);
  g_assert_cmpint (p->residency, ==, OVI_RESIDENCY_STREAM);
  g_assert_cmpfloat (p->target_vram_gb, ==, 16);
  p = ovi_vram_mode_preset_get (OVI_VRAM_MODE_ULTRA_LOW, &error);
  g_assert_cmpint (p->weight_dtype, ==, OVI_DTYPE_I8);
  g_assert_cmpint (p->residency, ==, OVI_RESIDENCY_STREAM);
  g_assert_true (p->tiled_vae);
  g_assert_cmpfloat (p->target_vram_gb, ==, 8);
  p = ovi_vram_mode_preset_get (OVI_VRAM_MODE_AUTO, &error);
  g_assert_true (p->weight_dtype_auto);
  g_assert_cmpint (p->residency, ==, OVI_RESIDENCY_AUTO);
  g_assert_no_error (error);
}

static void
test_gpu_allocations (void)
{
  g_autoptr (GError) error = NULL;
  static const struct {
    OviGpuAllocation a;
    const char *name;
    int ranks;
    OviParallelKind kind;
  } want[] = {
    { OVI_GPU_ALLOCATION_AUTO, "auto", 0, OVI_PARALLEL_AUTO },
    { OVI_GPU_ALLOCATION_SINGLE, "single", 1, OVI_PARALLEL_SINGLE },
    { OVI_GPU_ALLOCATION_SP2, "sp2", 2, OVI_PARALLEL_SEQUENCE },
    { OVI_GPU_ALLOCATION_SP4, "sp4", 4, OVI_PARALLEL_SEQUENCE },
    { OVI_GPU_ALLOCATION_SP8, "sp8", 8, OVI_PARALLEL_SEQUENCE },
    { OVI_GPU_ALLOCATION_CFG_PARALLEL, "cfg-parallel", 2, OVI_PARALLEL_CFG },
    { OVI_GPU_ALLOCATION_SHARDED, "sharded", 0, OVI_PARALLEL_SHARDED },
  };

  g_assert_cmpint (G_N_ELEMENTS (want), ==, OVI_N_GPU_ALLOCATIONS);
  for (guint i = 0; i < G_N_ELEMENTS (want); i++) {
    OviGpuAllocation a;
    const OviGpuAllocationPreset *p;

    g_assert_cmpstr (ovi_gpu_allocation_to_string (want[i].a), ==,
                     want[i].name);
    g_assert_true (ovi_gpu_allocation_from_string (want[i].name, &a, &error));
    g_assert_cmpint (a, ==, want[i].a);
    p = ovi_gpu_allocation_preset_lookup (want[i].name, &error);
    g_assert_no_error (error);
    g_assert_cmpint (p->allocation, ==, want[i].a);
    g_assert_cmpint (p->ranks, ==, want[i].ranks);
    g_assert_cmpint (p->kind, ==, want[i].kind);
  }
}

/* §1.3 of the architecture notes; the i2v rows were computed with the
 * official processing_utils.py (_best_hw_for_area) */
static void
test_snap (void)
{
  static const struct {
    int h, w;
    int64_t area;
    int t2v_h, t2v_w, i2v_h, i2v_w;
  } rows[] = {
    { 720, 720, 720 * 720, 704, 704, 704, 704 },
    { 960, 960, 720 * 720, 704, 704, 704, 704 },
    { 720, 720, 960 * 960, 960, 960, 960, 960 },
    { 960, 960, 960 * 960, 960, 960, 960, 960 },
    { 704, 1280, 720 * 720, 544, 960, 544, 960 },
    { 704, 1280, 960 * 960, 704, 1280, 704, 1280 },
    { 1280, 704, 720 * 720, 960, 544, 960, 544 },
    { 1280, 704, 960 * 960, 1280, 704, 1280, 704 },
    { 512, 992, 720 * 720, 512, 992, 512, 992 },
    { 512, 992, 960 * 960, 704, 1344, 704, 1344 },
    { 448, 1120, 720 * 720, 448, 1152, 448, 1152 },
    { 448, 1120, 960 * 960, 608, 1504, 608, 1504 },
    /* where the i2v candidate search differs from the t2v rule */
    { 976, 704, 720 * 720, 832, 608, 864, 608 },
    { 885, 70, 720 * 720, 2560, 192, 2624, 192 },
    { 2991, 462, 720 * 720, 1824, 288, 1792, 288 },
    { 1532, 3, 720 * 720, 16256, 32, 16192, 32 },
    { 2830, 723, 720 * 720, 1408, 352, 1440, 352 },
    /* tiny */
    { 64, 96, 64 * 96, 64, 96, 64, 96 },
    { 903, 1772, 6144, 64, 96, 64, 96 },
    { 402, 1466, 6144, 32, 160, 32, 160 },
  };
  g_autoptr (GError) error = NULL;
  int h, w;

  for (guint i = 0; i < G_N_ELEMENTS (rows); i++) {
    g_assert_true (
        ovi_snap_hw_t2v (rows[i].h, rows[i].w, rows[i].area, &h, &w, &error));
    g_assert_no_error (error);
    if (h != rows[i].t2v_h || w != rows[i].t2v_w)
      g_error ("t2v %dx%d area %" G_GINT64_FORMAT ": got %dx%d, want %dx%d",
               rows[i].h, rows[i].w, rows[i].area, h, w, rows[i].t2v_h,
               rows[i].t2v_w);
    g_assert_true (
        ovi_snap_hw_i2v (rows[i].h, rows[i].w, rows[i].area, &h, &w, &error));
    if (h != rows[i].i2v_h || w != rows[i].i2v_w)
      g_error ("i2v %dx%d area %" G_GINT64_FORMAT ": got %dx%d, want %dx%d",
               rows[i].h, rows[i].w, rows[i].area, h, w, rows[i].i2v_h,
               rows[i].i2v_w);
  }
  /* no area: only the multiple-of-32 snap (banker's rounding: 720/32 =
   * 22.5 -> 22, 752/32 = 23.5 -> 24) */
  g_assert_true (ovi_snap_hw_t2v (720, 752, 0, &h, &w, &error));
  g_assert_cmpint (h, ==, 704);
  g_assert_cmpint (w, ==, 768);
  g_assert_true (ovi_snap_hw_t2v (3, 5, 0, &h, &w, &error));
  g_assert_cmpint (h, ==, 32);
  g_assert_cmpint (w, ==, 32);
  g_assert_true (ovi_snap_hw_i2v (20, 500, 0, &h, &w, &error));
  g_assert_cmpint (h, ==, 32);
  g_assert_cmpint (w, ==, 500);

  g_assert_false (ovi_snap_hw_t2v (0, 720, 720 * 720, &h, &w, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (ovi_snap_hw_i2v (720, -1, 720 * 720, &h, &w, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
}

static void
test_tokens (void)
{
  g_assert_cmpint (ovi_video_tokens (31, 704, 704), ==, 15004);
  g_assert_cmpint (ovi_video_tokens (31, 960, 960), ==, 27900);
  g_assert_cmpint (ovi_video_tokens (61, 960, 960), ==, 54900);
  g_assert_cmpint (ovi_video_tokens (31, 544, 960), ==, 15810);
  g_assert_cmpint (ovi_video_tokens (61, 704, 1280), ==, 53680);
  g_assert_cmpint (ovi_video_tokens (31, 512, 992), ==, 15376);
  g_assert_cmpint (ovi_video_tokens (31, 704, 1344), ==, 28644);
  g_assert_cmpint (ovi_video_tokens (31, 608, 1504), ==, 27683);
  g_assert_cmpint (ovi_video_tokens (61, 608, 1504), ==, 54473);
  g_assert_cmpint (ovi_video_tokens (3, 64, 96), ==, 18);
}

/* ---- model folders ---- */

static void
touch (const char *root, const char *rel)
{
  g_autofree char *path = g_build_filename (root, rel, NULL);
  g_autofree char *dir = g_path_get_dirname (path);

  g_assert_cmpint (g_mkdir_with_parents (dir, 0755), ==, 0);
  g_assert_true (g_file_set_contents (path, "x", 1, NULL));
}

static void
remove_file (const char *root, const char *rel)
{
  g_autofree char *path = g_build_filename (root, rel, NULL);

  g_assert_cmpint (g_unlink (path), ==, 0);
}

static const char *const shared_files[] = {
  "Wan2.2-TI2V-5B/models_t5_umt5-xxl-enc-bf16.pth",
  "Wan2.2-TI2V-5B/google/umt5-xxl/spiece.model",
  "Wan2.2-TI2V-5B/Wan2.2_VAE.pth",
  "MMAudio/ext_weights/v1-16.pth",
  "MMAudio/ext_weights/best_netG.pt",
};

static void
test_model_paths (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *root = g_dir_make_tmp ("ovi-paths-XXXXXX", NULL);
  g_autoptr (OviModelPaths) p = NULL;
  g_autofree char *expect = NULL;

  g_assert_nonnull (root);
  for (guint i = 0; i < G_N_ELEMENTS (shared_files); i++)
    touch (root, shared_files[i]);

  /* no fusion file: the error lists the three official names */
  p = ovi_model_paths_resolve (root, NULL, &error);
  g_assert_null (p);
  g_assert_error (error, OVI_ERROR, OVI_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "Ovi/model.safetensors"));
  g_assert_nonnull (strstr (error->message, "Ovi/model_960x960.safetensors"));
  g_assert_nonnull (
      strstr (error->message, "Ovi/model_960x960_10s.safetensors"));
  g_clear_error (&error);

  /* the 10 s file alone: detected */
  touch (root, "Ovi/model_960x960_10s.safetensors");
  p = ovi_model_paths_resolve (root, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (p->variant, ==, "960x960_10s");
  g_assert_cmpint (p->video_latent_frames, ==, 61);
  g_assert_cmpint (p->audio_latent_length, ==, 314);
  g_assert_cmpint (p->target_area, ==, 960 * 960);
  g_assert_false (p->audcap_syntax);
  g_assert_cmpint (p->num_heads, ==, 24);
  g_assert_cmpint (p->text_len, ==, 512);
  g_assert_cmpfloat (p->eps, ==, 1e-6);
  g_assert_cmpfloat (p->audio_rope_scale, ==, 0.19676);
  g_assert_true (g_path_is_absolute (p->fusion_path));
  g_assert_true (
      g_str_has_suffix (p->fusion_path, "/Ovi/model_960x960_10s.safetensors"));
  g_assert_true (g_str_has_suffix (
      p->t5_path, "/Wan2.2-TI2V-5B/models_t5_umt5-xxl-enc-bf16.pth"));
  g_assert_true (g_str_has_suffix (
      p->spiece_path, "/Wan2.2-TI2V-5B/google/umt5-xxl/spiece.model"));
  g_assert_true (
      g_str_has_suffix (p->vae_path, "/Wan2.2-TI2V-5B/Wan2.2_VAE.pth"));
  g_assert_true (
      g_str_has_suffix (p->audio_vae_path, "/MMAudio/ext_weights/v1-16.pth"));
  g_assert_true (
      g_str_has_suffix (p->vocoder_path, "/MMAudio/ext_weights/best_netG.pt"));
  g_clear_pointer (&p, ovi_model_paths_free);

  /* all three: 720x720_5s wins unless a variant is named */
  touch (root, "Ovi/model.safetensors");
  touch (root, "Ovi/model_960x960.safetensors");
  p = ovi_model_paths_resolve (root, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (p->variant, ==, "720x720_5s");
  g_assert_cmpint (p->video_latent_frames, ==, 31);
  g_assert_true (p->audcap_syntax);
  g_clear_pointer (&p, ovi_model_paths_free);
  p = ovi_model_paths_resolve (root, "960x960_5s", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (p->variant, ==, "960x960_5s");
  g_assert_true (
      g_str_has_suffix (p->fusion_path, "/Ovi/model_960x960.safetensors"));
  g_clear_pointer (&p, ovi_model_paths_free);

  /* unknown variant */
  p = ovi_model_paths_resolve (root, "720p", &error);
  g_assert_null (p);
  g_assert_error (error, OVI_ERROR, OVI_ERROR_UNKNOWN_PRESET);
  g_clear_error (&error);
  /* not a tiny folder */
  p = ovi_model_paths_resolve (root, "tiny", &error);
  g_assert_null (p);
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, OVI_TINY_MARKER));
  g_clear_error (&error);

  /* a missing file is named, with the path expected */
  remove_file (root, "Wan2.2-TI2V-5B/Wan2.2_VAE.pth");
  p = ovi_model_paths_resolve (root, NULL, &error);
  g_assert_null (p);
  g_assert_error (error, OVI_ERROR, OVI_ERROR_IO);
  expect = g_build_filename (root, "Wan2.2-TI2V-5B", "Wan2.2_VAE.pth", NULL);
  g_assert_nonnull (strstr (error->message, expect));
  g_assert_nonnull (strstr (error->message, "720x720_5s"));
  g_clear_error (&error);
  touch (root, "Wan2.2-TI2V-5B/Wan2.2_VAE.pth");

  /* a missing folder */
  p = ovi_model_paths_resolve ("/nonexistent/ovi-models", NULL, &error);
  g_assert_null (p);
  g_assert_error (error, OVI_ERROR, OVI_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "/nonexistent/ovi-models"));
  g_clear_error (&error);

  /* the tiny marker makes it the tiny model; an official name then fails */
  touch (root, OVI_TINY_MARKER);
  p = ovi_model_paths_resolve (root, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (p->variant, ==, "tiny");
  g_assert_cmpint (p->video_latent_frames, ==, 3);
  g_assert_cmpint (p->num_heads, ==, 2);
  g_clear_pointer (&p, ovi_model_paths_free);
  p = ovi_model_paths_resolve (root, "720x720_5s", &error);
  g_assert_null (p);
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  /* no folder and an official variant: a clear error, nothing written */
  p = ovi_model_paths_resolve (NULL, "960x960_10s", &error);
  g_assert_null (p);
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "model-dir"));
  ovi_test_remove_tree (root);
}

static void
test_presets_dir_errors (void)
{
  /* run in a child so the cached tables of this process stay untouched */
  if (g_test_subprocess ()) {
    g_autoptr (GError) error = NULL;
    g_setenv ("OVI_PRESETS_DIR", "/nonexistent/presets", TRUE);
    g_assert_null (ovi_model_preset_lookup ("tiny", &error));
    g_assert_error (error, OVI_ERROR, OVI_ERROR_IO);
    g_assert_nonnull (
        strstr (error->message, "/nonexistent/presets/models.json"));
    g_assert_nonnull (strstr (error->message, "OVI_PRESETS_DIR"));
    /* the C enum side works without the tables */
    g_assert_cmpstr (ovi_vram_mode_to_string (OVI_VRAM_MODE_FP8_OFFLOAD), ==,
                     "fp8-offload");
    return;
  }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

static void
test_bad_table (void)
{
  if (g_test_subprocess ()) {
    g_autoptr (GError) error = NULL;
    g_autofree char *dir = g_dir_make_tmp ("ovi-presets-XXXXXX", NULL);
    g_autofree char *p = g_build_filename (dir, "models.json", NULL);
    const char *text = "{\"models\": [{\"name\": \"x\", "
                       "\"fusion_file\": \"../../etc/passwd\"}]}";
    g_assert_true (g_file_set_contents (p, text, -1, NULL));
    g_setenv ("OVI_PRESETS_DIR", dir, TRUE);
    g_assert_null (ovi_model_preset_lookup ("x", &error));
    g_assert_error (error, OVI_ERROR, OVI_ERROR_FORMAT);
    g_assert_nonnull (strstr (error->message, "models.json"));
    g_assert_nonnull (strstr (error->message, "'x'"));
    ovi_test_remove_tree (dir);
    return;
  }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/presets/models", test_models);
  g_test_add_func ("/presets/tiny-matches-writer",
                   test_tiny_preset_matches_writer);
  g_test_add_func ("/presets/unknown", test_unknown);
  g_test_add_func ("/presets/vram-modes", test_vram_modes);
  g_test_add_func ("/presets/gpu-allocations", test_gpu_allocations);
  g_test_add_func ("/presets/snap", test_snap);
  g_test_add_func ("/presets/tokens", test_tokens);
  g_test_add_func ("/presets/model-paths", test_model_paths);
  g_test_add_func ("/presets/missing-dir", test_presets_dir_errors);
  g_test_add_func ("/presets/bad-table", test_bad_table);
  return g_test_run ();
}
