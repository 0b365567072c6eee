/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: `ovi generate`, text (+ image) -> BASE.y4m + BASE.wav without
 * GStreamer, through the same stage API the elements use (ovi-stage.h).
 *
 * The stages run one after the other, each loaded just before it runs and
 * released after, so the peak memory is that of the largest stage. The
 * result is the pipeline's for the same settings: the request is resolved
 * as ovidenoise does it, the frames become 8-bit RGB as ovivaedec makes
 * them, the audio is the clip's share of the A/V grid as oviaudiodec cuts
 * it. The y4m is 4:4:4 (C444, BT.601 limited range), the wav 32-bit float
 * mono at 16 kHz.
 */
#include "ovi-cli.h"
#include "ovi-config.h"
#include "ovi-engine.h"
#include "ovi-fusion.h"
#include "ovi-image.h"
#include "ovi-stage.h"
#include "ovi-step-cache.h"

#if OVI_HAVE_GDK_PIXBUF
#include <gdk-pixbuf/gdk-pixbuf.h>
#endif
#include <errno.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct {
  char *model_dir, *model, *vram_mode, *backend, *solver, *image, *output;
  char *video_negative, *audio_negative;
  char *cache, *cache_table;
  char *lora, *sigmas; /* docs/lora.md */
  gint64 seed;
  int steps, slg_layer, width, height, cuda_device_id, threads;
  int cache_start;
  double shift, video_guidance, audio_guidance, cache_threshold;
  char **prompt;
} Options;

static void
options_clear (Options *o)
{
  g_free (o->model_dir);
  g_free (o->model);
  g_free (o->vram_mode);
  g_free (o->backend);
  g_free (o->solver);
  g_free (o->image);
  g_free (o->output);
  g_free (o->video_negative);
  g_free (o->audio_negative);
  g_free (o->cache);
  g_free (o->cache_table);
  g_free (o->lora);
  g_free (o->sigmas);
  g_strfreev (o->prompt);
}

/* ---- timing and progress ---- */

typedef struct {
  const char *name;
  double load_s, run_s;
} StageTime;

typedef struct {
  gboolean tty;
  gint64 t0;
} Progress;

static void
on_step (int step, int steps, gpointer user_data)
{
  Progress *p = user_data;
  double per_step = (g_get_monotonic_time () - p->t0) / 1e6 / step;
  char bar[31];
  int filled = 30 * step / steps;

  if (!p->tty)
    return;
  memset (bar, '#', filled);
  memset (bar + filled, '.', 30 - filled);
  bar[30] = '\0';
  fprintf (stderr, "\r  denoise [%s] %d/%d  %.2f s/step", bar, step, steps,
           per_step);
  if (step == steps)
    fputc ('\n', stderr);
  fflush (stderr);
}

static double
seconds_since (gint64 t0)
{
  return (g_get_monotonic_time () - t0) / 1e6;
}

/* ---- stages ---- */

static OviStage *
load (OviStageKind kind, const OviStageConfig *config, StageTime *t,
      GError **error)
{
  OviStage *stage = ovi_stage_load (kind, config, error);

  if (stage) {
    t->load_s = ovi_stage_get_load_seconds (stage);
    fprintf (stderr, "loaded the %s on %s (vram-mode %s) in %.1f s\n",
             ovi_stage_title (kind), ovi_stage_get_device_name (stage),
             ovi_vram_mode_to_string (ovi_stage_get_vram_mode (stage)),
             t->load_s);
  }
  return stage;
}

static gboolean
encode_text (const Options *o, const OviStageConfig *config, OviTensor *emb[3],
             StageTime *t, GError **error)
{
  g_autoptr (OviStage) stage = load (OVI_STAGE_TEXT, config, t, error);
  g_autofree char *prompt = NULL;
  gint64 t0 = g_get_monotonic_time ();
  gboolean ok;

  if (!stage)
    return FALSE;
  prompt = g_strjoinv (" ", o->prompt);
  ok = ovi_text_encoder_encode (ovi_stage_get_text_encoder (stage), prompt,
                                o->video_negative, o->audio_negative, emb, NULL,
                                error);
  t->run_s = seconds_since (t0);
  return ok;
}

/* the image as ovidenoise's image pad takes it: packed RGB (alpha dropped)
 * resized and cropped for the model's area */
static OviTensor *
read_image (const char *path, int64_t area, GError **error)
{
#if OVI_HAVE_GDK_PIXBUF
  g_autoptr (GdkPixbuf) pb = gdk_pixbuf_new_from_file (path, error);
  int w, h, n, stride;
  const guint8 *src;
  g_autofree guint8 *rgb = NULL;

  if (!pb)
    return NULL;
  w = gdk_pixbuf_get_width (pb);
  h = gdk_pixbuf_get_height (pb);
  n = gdk_pixbuf_get_n_channels (pb);
  stride = gdk_pixbuf_get_rowstride (pb);
  if (gdk_pixbuf_get_bits_per_sample (pb) != 8 || n < 3) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                 "%s: %d channels of %d bits; expected 8-bit RGB or RGBA", path,
                 n, gdk_pixbuf_get_bits_per_sample (pb));
    return NULL;
  }
  src = gdk_pixbuf_read_pixels (pb);
  rgb = g_malloc ((gsize) w * h * 3);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      memcpy (rgb + ((gsize) y * w + x) * 3, src + (gsize) y * stride + x * n,
              3);
  return ovi_image_prepare_rgb8 (rgb, h, w, w * 3, area, error);
#else
  g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
               "--image %s: this build of ovi has no image reader "
               "(gdk-pixbuf-2.0 was not found at build time)",
               path);
  return NULL;
#endif
}

/* the i2v first-frame latent, through the video stage's encoder */
static OviTensor *
encode_image (const Options *o, OviStage *video, StageTime *t, GError **error)
{
  gint64 t0 = g_get_monotonic_time ();
  g_autoptr (OviTensor) image
      = read_image (o->image, ovi_stage_get_paths (video)->target_area, error);
  OviTensor *latent;

  if (!image)
    return NULL;
  latent = ovi_video_vae_encode_image (ovi_stage_get_video_vae (video), image,
                                       error);
  t->run_s = seconds_since (t0);
  return latent;
}

/* what the block streamer copied, in the streamed modes */
static void
print_streaming (OviDenoiser *d)
{
  OviFusion *fusion = ovi_denoiser_get_fusion (d);
  OviFusionStreamStats st;

  if (!ovi_fusion_get_streaming (fusion))
    return;
  ovi_fusion_get_stream_stats (fusion, &st);
  printf ("blocks streamed: %" G_GUINT64_FORMAT " copies, %" G_GUINT64_FORMAT
          " bytes pinned, %" G_GUINT64_FORMAT " pageable, %" G_GUINT64_FORMAT
          " mapped\n",
          st.copies, st.pinned_bytes, st.pageable_bytes, st.mapped_bytes);
}

static gboolean
denoise (const Options *o, const OviStageConfig *config, OviTensor *emb[3],
         const OviTensor *image_latent, OviTensor **video, OviTensor **audio,
         StageTime *t, GError **error)
{
  g_autoptr (OviStage) stage = load (OVI_STAGE_DENOISE, config, t, error);
  OviDenoiseRequest req;
  OviDenoiseStats stats = { 0 };
  Progress progress = { isatty (STDERR_FILENO), 0 };
  g_autofree double *sigmas = NULL;
  gboolean ok;

  if (!stage)
    return FALSE;
  ovi_denoise_request_init (&req);
  req.text_pos = emb[0];
  req.text_video_neg = emb[1];
  req.text_audio_neg = emb[2];
  req.image_latent = image_latent;
  req.seed = (guint64) o->seed;
  req.steps = o->steps;
  req.solver = g_strcmp0 (o->solver, "euler") == 0 ? OVI_SOLVER_EULER
                                                   : OVI_SOLVER_UNIPC;
  req.shift = o->shift;
  req.video_guidance = o->video_guidance;
  req.audio_guidance = o->audio_guidance;
  req.slg_layer = o->slg_layer;
  req.cache = o->cache;
  req.cache_threshold = o->cache_threshold;
  req.cache_start = o->cache_start;
  req.cache_table = o->cache_table;
  req.stats = &stats;
  req.width = image_latent ? (int) image_latent->shape[3] * 16 : o->width;
  req.height = image_latent ? (int) image_latent->shape[2] * 16 : o->height;
  if (!ovi_denoise_request_resolve (&req, ovi_stage_get_paths (stage),
                                    image_latent != NULL, error))
    return FALSE;
  if (o->sigmas && *o->sigmas) {
    if (!ovi_sigmas_parse (o->sigmas, &sigmas, &req.n_sigmas, error))
      return FALSE;
    req.sigmas = sigmas;
    req.steps = req.n_sigmas - (sigmas[req.n_sigmas - 1] == 0);
  }
  fprintf (stderr, "denoising %dx%d, %d steps, seed %" G_GUINT64_FORMAT "\n",
           req.width, req.height, req.steps, req.seed);
  progress.t0 = g_get_monotonic_time ();
  ok = ovi_denoiser_run (ovi_stage_get_denoiser (stage), &req, on_step,
                         &progress, NULL, video, audio, error);
  t->run_s = seconds_since (progress.t0);
  if (ok) {
    printf ("forwards: %d computed, %d skipped\n", stats.forwards_computed,
            stats.forwards_skipped);
    print_streaming (ovi_stage_get_denoiser (stage));
  }
  return ok;
}

/* ---- y4m (4:4:4, BT.601 limited range) ---- */

static guint8
clamp_u8 (double v)
{
  return v <= 0 ? 0 : v >= 255 ? 255 : (guint8) (v + 0.5);
}

/* packed RGB [H, W, 3] -> three planes Y, Cb, Cr */
static void
rgb_to_yuv444 (const guint8 *rgb, int n, guint8 *y, guint8 *u, guint8 *v)
{
  for (int i = 0; i < n; i++) {
    double r = rgb[3 * i], g = rgb[3 * i + 1], b = rgb[3 * i + 2];
    y[i] = clamp_u8 (16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255);
    u[i] = clamp_u8 (128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255);
    v[i] = clamp_u8 (128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255);
  }
}

typedef struct {
  FILE *f;
  const char *path;
  int frames;
} Y4m;

static gboolean
write_group (Y4m *out, const OviTensor *group, GError **error)
{
  const int H = (int) group->shape[2], W = (int) group->shape[3];
  const int n = H * W;
  g_autofree guint8 *rgb = g_malloc ((gsize) n * 3);
  g_autofree guint8 *yuv = g_malloc ((gsize) n * 3);

  for (int i = 0; i < group->shape[1]; i++) {
    if (out->frames == 0)
      fprintf (out->f, "YUV4MPEG2 W%d H%d F%d:1 Ip A1:1 C444\n", W, H,
               OVI_VIDEO_FPS);
    ovi_image_frame_to_rgb8 (group, i, rgb, W * 3, 3);
    rgb_to_yuv444 (rgb, n, yuv, yuv + n, yuv + 2 * n);
    fputs ("FRAME\n", out->f);
    if (fwrite (yuv, 1, (gsize) n * 3, out->f) != (gsize) n * 3) {
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno),
                   "writing %s: %s", out->path, g_strerror (errno));
      return FALSE;
    }
    out->frames++;
  }
  return TRUE;
}

static gboolean
decode_video (OviStage *stage, const OviTensor *latent, const char *path,
              int *frames, StageTime *t, GError **error)
{
  g_autoptr (OviVideoDecoding) decoding = NULL;
  gint64 t0 = g_get_monotonic_time ();
  Y4m out = { g_fopen (path, "wb"), path, 0 };
  OviTensor *group;
  gboolean ok = TRUE;

  if (!out.f) {
    g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno), "%s: %s",
                 path, g_strerror (errno));
    return FALSE;
  }
  decoding = ovi_video_vae_decode_begin (ovi_stage_get_video_vae (stage),
                                         latent, error);
  ok = decoding != NULL;
  while (ok
         && (group = ovi_video_vae_decode_next (decoding, NULL, NULL, error))) {
    ok = write_group (&out, group, error);
    ovi_tensor_unref (group);
  }
  ok = ok && (error == NULL || *error == NULL);
  if (fclose (out.f) != 0 && ok) {
    g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno),
                 "closing %s: %s", path, g_strerror (errno));
    ok = FALSE;
  }
  *frames = out.frames;
  t->run_s = seconds_since (t0);
  return ok;
}

/* ---- wav (IEEE float, mono, 16 kHz) ---- */

static void
put_u32 (guint8 *p, guint32 v)
{
  v = GUINT32_TO_LE (v);
  memcpy (p, &v, 4);
}

static void
put_u16 (guint8 *p, guint16 v)
{
  v = GUINT16_TO_LE (v);
  memcpy (p, &v, 2);
}

static gboolean
write_wav (const char *path, const OviTensor *samples, GError **error)
{
  const guint32 n = (guint32) ovi_tensor_numel (samples);
  const guint32 data_bytes = n * 4;
  guint8 h[58];
  g_autofree float *le = g_new (float, MAX (n, 1));
  g_autoptr (GString) file = NULL;

  memcpy (h, "RIFF", 4);
  put_u32 (h + 4, 50 + data_bytes);
  memcpy (h + 8, "WAVEfmt ", 8);
  put_u32 (h + 16, 18);
  put_u16 (h + 20, 3); /* WAVE_FORMAT_IEEE_FLOAT */
  put_u16 (h + 22, 1);
  put_u32 (h + 24, OVI_AUDIO_RATE);
  put_u32 (h + 28, OVI_AUDIO_RATE * 4);
  put_u16 (h + 32, 4);
  put_u16 (h + 34, 32);
  put_u16 (h + 36, 0);
  memcpy (h + 38, "fact", 4);
  put_u32 (h + 42, 4);
  put_u32 (h + 46, n);
  memcpy (h + 50, "data", 4);
  put_u32 (h + 54, data_bytes);
  memcpy (le, ovi_tensor_data (samples), data_bytes);
#if G_BYTE_ORDER == G_BIG_ENDIAN
  for (guint32 i = 0; i < n; i++) {
    guint32 v;
    memcpy (&v, le + i, 4);
    v = GUINT32_SWAP_LE_BE (v);
    memcpy (le + i, &v, 4);
  }
#endif
  file = g_string_new_len ((const char *) h, sizeof h);
  g_string_append_len (file, (const char *) le, data_bytes);
  return g_file_set_contents (path, file->str, (gssize) file->len, error);
}

static gboolean
decode_audio (const OviStageConfig *config, const OviTensor *latent, int frames,
              const char *path, StageTime *t, GError **error)
{
  g_autoptr (OviStage) stage = load (OVI_STAGE_AUDIO_DECODE, config, t, error);
  g_autoptr (OviTensor) wav = NULL, host = NULL, clip = NULL;
  gint64 t0 = g_get_monotonic_time ();

  if (!stage)
    return FALSE;
  wav = ovi_audio_decoder_decode (ovi_stage_get_audio_decoder (stage), latent,
                                  NULL, error);
  host = wav ? ovi_tensor_to_f32 (wav, error) : NULL;
  /* the clip's share of the A/V grid (docs/av-sync.md), as oviaudiodec */
  clip = host ? ovi_clip_audio_fit (host, 0, frames, error) : NULL;
  t->run_s = seconds_since (t0);
  return clip && write_wav (path, clip, error);
}

/* ---- options ---- */

/* the step-cache options, before anything loads (the table is checked
 * against the model when the run starts) */
static gboolean
check_cache (const Options *o, GError **error)
{
  OviCacheConfig c;

  ovi_cache_config_init (&c);
  c.threshold = o->cache_threshold;
  if (o->cache && !ovi_cache_mode_from_string (o->cache, &c.mode, error))
    return FALSE;
  c.mode = OVI_CACHE_EASY; /* the threshold alone: no table yet */
  return ovi_cache_config_check (&c, 1, error);
}

static gboolean
parse (int argc, char **argv, Options *o, GError **error)
{
  const GOptionEntry entries[] = {
    { "output", 'o', 0, G_OPTION_ARG_FILENAME, &o->output,
      "write BASE.y4m and BASE.wav (default: ovi-out)", "BASE" },
    { "model-dir", 0, 0, G_OPTION_ARG_FILENAME, &o->model_dir,
      "folder of the official download (default: the tiny model)", "DIR" },
    { "model", 0, 0, G_OPTION_ARG_STRING, &o->model,
      "720x720_5s, 960x960_5s, 960x960_10s, tiny (default: the one present)",
      "VARIANT" },
    { "vram-mode", 0, 0, G_OPTION_ARG_STRING, &o->vram_mode,
      "auto, standard, fp8, fp8-offload, ultra-low (default: auto)", "MODE" },
    { "backend", 0, 0, G_OPTION_ARG_STRING, &o->backend,
      "auto, cpu, cuda, cuda-fp32 (default: auto)", "NAME" },
    { "cuda-device-id", 0, 0, G_OPTION_ARG_INT, &o->cuda_device_id,
      "CUDA device (default -1: the best one)", "N" },
    { "threads", 0, 0, G_OPTION_ARG_INT, &o->threads,
      "CPU backend threads (default 0: all cores)", "N" },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &o->seed, "noise seed (default 100)",
      "N" },
    { "steps", 0, 0, G_OPTION_ARG_INT, &o->steps,
      "denoising steps (default 50; 0: the model preset's)", "N" },
    { "solver", 0, 0, G_OPTION_ARG_STRING, &o->solver,
      "unipc or euler (default unipc)", "NAME" },
    { "shift", 0, 0, G_OPTION_ARG_DOUBLE, &o->shift,
      "timestep shift (default 5.0)", "X" },
    { "video-guidance-scale", 0, 0, G_OPTION_ARG_DOUBLE, &o->video_guidance,
      "video CFG scale (default 4.0)", "X" },
    { "audio-guidance-scale", 0, 0, G_OPTION_ARG_DOUBLE, &o->audio_guidance,
      "audio CFG scale (default 3.0)", "X" },
    { "slg-layer", 0, 0, G_OPTION_ARG_INT, &o->slg_layer,
      "skip-layer guidance block, <= 0 off (default: the preset's, 11; 1 "
      "for the tiny model)",
      "N" },
    { "width", 0, 0, G_OPTION_ARG_INT, &o->width,
      "frame width, snapped to the model's area (0: the preset's)", "PX" },
    { "height", 0, 0, G_OPTION_ARG_INT, &o->height,
      "frame height, snapped to the model's area (0: the preset's)", "PX" },
    { "image", 0, 0, G_OPTION_ARG_FILENAME, &o->image,
      "first frame for image-to-video (PNG, JPEG, ...)", "FILE" },
    { "video-negative-prompt", 0, 0, G_OPTION_ARG_STRING, &o->video_negative,
      "video negative prompt (default: the official one)", "TEXT" },
    { "audio-negative-prompt", 0, 0, G_OPTION_ARG_STRING, &o->audio_negative,
      "audio negative prompt (default: the official one)", "TEXT" },
    { "cache", 0, 0, G_OPTION_ARG_STRING, &o->cache,
      "step caching: off, easy or mag (default off; docs/step-cache.md)",
      "MODE" },
    { "cache-threshold", 0, 0, G_OPTION_ARG_DOUBLE, &o->cache_threshold,
      "step-cache threshold, >= 0 (default 0: nothing skipped)", "X" },
    { "cache-start", 0, 0, G_OPTION_ARG_INT, &o->cache_start,
      "steps always computed first (default -1: 20 %)", "N" },
    { "cache-table", 0, 0, G_OPTION_ARG_FILENAME, &o->cache_table,
      "MagCache table (default: presets/cache/MODEL_STEPS.json)", "FILE" },
    { "lora", 0, 0, G_OPTION_ARG_STRING, &o->lora,
      "LoRAs merged at load, path[:strength[:video|audio|both]];...", "LIST" },
    { "sigmas", 0, 0, G_OPTION_ARG_STRING, &o->sigmas,
      "Euler on these sigmas, e.g. 1,0.9375,0.8333,0.625,0", "LIST" },
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_STRING_ARRAY, &o->prompt, NULL,
      "PROMPT" },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new (
      "PROMPT - text (+ image) to BASE.y4m and BASE.wav, no GStreamer");

  o->seed = 100;
  o->steps = 50;
  o->shift = 5.0;
  o->video_guidance = 4.0;
  o->audio_guidance = 3.0;
  o->slg_layer = OVI_SLG_LAYER_PRESET;
  o->cuda_device_id = -1;
  o->cache_start = -1;
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_description (
      ctx, "The options mirror the properties of ovitextsrc and ovidenoise; "
           "the same settings give the same frames and samples as the "
           "pipeline (docs/engine.md).");
  if (!g_option_context_parse (ctx, &argc, &argv, error))
    return FALSE;
  if (!o->prompt || !o->prompt[0]) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "no prompt given (ovi generate [OPTIONS] PROMPT)");
    return FALSE;
  }
  if (o->solver && g_strcmp0 (o->solver, "unipc") != 0
      && g_strcmp0 (o->solver, "euler") != 0) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "--solver %s: expected unipc or euler", o->solver);
    return FALSE;
  }
  if (o->seed < 0) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "--seed %" G_GINT64_FORMAT ": must not be negative", o->seed);
    return FALSE;
  }
  return check_cache (o, error);
}

static gboolean
stage_config (const Options *o, OviStageConfig *c, GError **error)
{
  ovi_stage_config_init (c);
  c->model_dir = o->model_dir;
  c->variant = o->model;
  c->backend = o->backend;
  c->cuda_device_id = o->cuda_device_id;
  c->n_threads = o->threads;
  c->loras = o->lora;
  return o->vram_mode == NULL
         || ovi_vram_mode_from_string (o->vram_mode, &c->vram_mode, error);
}

/* ---- the command ---- */

static void
print_times (const StageTime *t, int n, double total)
{
  printf ("%-32s %8s %8s\n", "stage", "load s", "run s");
  for (int i = 0; i < n; i++)
    if (t[i].name)
      printf ("%-32s %8.2f %8.2f\n", t[i].name, t[i].load_s, t[i].run_s);
  printf ("%-32s %17.2f\n", "total", total);
}

static gboolean
generate (const Options *o, const OviStageConfig *config, const char *base,
          StageTime t[5], GError **error)
{
  OviTensor *emb[3] = { NULL, NULL, NULL };
  g_autoptr (OviStage) video = NULL;
  g_autoptr (OviTensor) image_latent = NULL;
  g_autoptr (OviTensor) vlat = NULL, alat = NULL;
  g_autofree char *y4m = g_strconcat (base, ".y4m", NULL);
  g_autofree char *wav = g_strconcat (base, ".wav", NULL);
  int frames = 0;
  gboolean ok;

  t[0].name = ovi_stage_title (OVI_STAGE_TEXT);
  ok = encode_text (o, config, emb, &t[0], error);
  if (ok && o->image) {
    t[1].name = "image encode (Wan2.2 VAE)";
    video = load (OVI_STAGE_VIDEO_DECODE, config, &t[1], error);
    image_latent = video ? encode_image (o, video, &t[1], error) : NULL;
    ok = image_latent != NULL;
  }
  t[2].name = ovi_stage_title (OVI_STAGE_DENOISE);
  ok = ok && denoise (o, config, emb, image_latent, &vlat, &alat, &t[2], error);
  for (int i = 0; i < 3; i++)
    g_clear_pointer (&emb[i], ovi_tensor_unref);
  if (!ok)
    return FALSE;
  t[3].name = ovi_stage_title (OVI_STAGE_VIDEO_DECODE);
  if (!video)
    video = load (OVI_STAGE_VIDEO_DECODE, config, &t[3], error);
  if (!video || !decode_video (video, vlat, y4m, &frames, &t[3], error))
    return FALSE;
  g_clear_pointer (&video, ovi_stage_unref);
  t[4].name = ovi_stage_title (OVI_STAGE_AUDIO_DECODE);
  if (!decode_audio (config, alat, frames, wav, &t[4], error))
    return FALSE;
  fprintf (stderr, "wrote %s (%d frames) and %s\n", y4m, frames, wav);
  return TRUE;
}

int
ovi_cmd_generate (int argc, char **argv)
{
  Options o = { 0 };
  OviStageConfig config;
  StageTime t[5] = { { 0 } };
  GError *error = NULL;
  gint64 t0 = g_get_monotonic_time ();
  int status = 0;

  if (!parse (argc, argv, &o, &error) || !stage_config (&o, &config, &error)
      || !generate (&o, &config, o.output ? o.output : "ovi-out", t, &error))
    status = ovi_cli_fail_error (error);
  else
    print_times (t, G_N_ELEMENTS (t), seconds_since (t0));
  options_clear (&o);
  return status;
}
