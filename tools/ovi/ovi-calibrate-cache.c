/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: `ovi calibrate-cache`: a MagCache magnitude-ratio table from
 * one full (uncached) run of a model (docs/step-cache.md).
 *
 * The prompt goes through the text stage, then every step computes both
 * CFG branches and measures, per branch and tower, the mean over tokens of
 * |residual_i| / |residual_{i-1}| (residual: the fused blocks' output -
 * input). The table is only valid for the model and step count it was
 * measured at; the denoiser refuses it for others. */
#include "ovi-cli.h"
#include "ovi-engine.h"
#include "ovi-presets.h"
#include "ovi-step-cache.h"

#include <stdio.h>

#define DEFAULT_PROMPT                                                         \
  "A woman in a sunlit kitchen turns to the camera and smiles. <S>Good "       \
  "morning, everyone!<E> <AUDCAP>clear female voice, soft kitchen "            \
  "ambience<ENDAUDCAP>"

typedef struct {
  char *model_dir, *variant, *backend, *prompt, *output, *solver;
  int steps, width, height, device;
  gint64 seed;
  double shift;
} Options;

static void
options_clear (Options *o)
{
  g_free (o->model_dir);
  g_free (o->variant);
  g_free (o->backend);
  g_free (o->prompt);
  g_free (o->output);
  g_free (o->solver);
}

static gboolean
bad_option (GError **error, const char *what, const char *value)
{
  g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
               "calibrate-cache: %s%s%s", what, value ? " " : "",
               value ? value : "");
  return FALSE;
}

static gboolean
parse (Options *o, int argc, char **argv, GError **error)
{
  GOptionEntry entries[] = {
    { "model-dir", 0, 0, G_OPTION_ARG_FILENAME, &o->model_dir,
      "Model folder in the official layout (default: the tiny model)", "DIR" },
    { "model", 'm', 0, G_OPTION_ARG_STRING, &o->variant,
      "Variant (default: the one whose weights are in the folder)", "NAME" },
    { "backend", 'b', 0, G_OPTION_ARG_STRING, &o->backend,
      "cpu or cuda (default: cpu for the tiny model, else cuda)", "NAME" },
    { "device", 'd', 0, G_OPTION_ARG_INT, &o->device, "CUDA device index",
      "N" },
    { "steps", 's', 0, G_OPTION_ARG_INT, &o->steps,
      "Denoising steps the table is for (default: the preset's)", "N" },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &o->seed, "Noise seed (default 100)",
      "N" },
    { "prompt", 'p', 0, G_OPTION_ARG_STRING, &o->prompt,
      "Prompt of the calibration run", "TEXT" },
    { "solver", 0, 0, G_OPTION_ARG_STRING, &o->solver,
      "unipc (default) or euler", "NAME" },
    { "shift", 0, 0, G_OPTION_ARG_DOUBLE, &o->shift,
      "Timestep shift (default: the preset's)", "S" },
    { "width", 'W', 0, G_OPTION_ARG_INT, &o->width,
      "Video width (default: the preset's)", "W" },
    { "height", 'H', 0, G_OPTION_ARG_INT, &o->height,
      "Video height (default: the preset's)", "H" },
    { "output", 'o', 0, G_OPTION_ARG_FILENAME, &o->output,
      "Table file (default: MODEL_STEPS.json here; presets/cache/ holds "
      "the shipped ones)",
      "FILE" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new (
      "- measure a MagCache table (docs/step-cache.md) from a full run");

  o->seed = 100;
  o->shift = -1;
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, error))
    return FALSE;
  if (argc != 1)
    return bad_option (error, "takes no positional arguments", argv[1]);
  if (o->steps < 0)
    return bad_option (error, "--steps must be >= 1 (0: the preset's)", NULL);
  if (o->seed < 0)
    return bad_option (error, "--seed must be >= 0", NULL);
  if (o->solver && g_strcmp0 (o->solver, "unipc")
      && g_strcmp0 (o->solver, "euler"))
    return bad_option (error, "--solver must be unipc or euler, not",
                       o->solver);
  return TRUE;
}

/* the prompt's embeddings: prompt, video negative, audio negative */
static gboolean
encode (const OviModelPaths *paths, OviBackend *be, const Options *o,
        OviTensor *text[3], GError **error)
{
  OviTextEncoder *enc = ovi_text_encoder_new (paths, be, error);
  gboolean ok;

  if (enc == NULL)
    return FALSE;
  ok = ovi_text_encoder_encode (enc, o->prompt ? o->prompt : DEFAULT_PROMPT,
                                NULL, NULL, text, NULL, error);
  ovi_text_encoder_free (enc);
  return ok;
}

static gboolean
request_from (const OviModelPaths *paths, const Options *o,
              OviDenoiseRequest *req, GError **error)
{
  const OviModelPreset *p = ovi_model_preset_lookup (paths->variant, error);
  int w, h;

  if (p == NULL)
    return FALSE;
  ovi_denoise_request_init (req);
  req->seed = (guint64) o->seed;
  req->steps = o->steps > 0 ? o->steps : p->steps;
  req->shift = o->shift >= 0 ? o->shift : p->shift;
  req->solver = g_strcmp0 (o->solver, "euler") == 0 ? OVI_SOLVER_EULER
                                                    : OVI_SOLVER_UNIPC;
  req->video_guidance = p->video_guidance;
  req->audio_guidance = p->audio_guidance;
  req->slg_layer = p->slg_layer;
  if (!ovi_snap_hw_t2v (o->height > 0 ? o->height : p->default_height,
                        o->width > 0 ? o->width : p->default_width,
                        paths->target_area, &h, &w, error))
    return FALSE;
  req->width = w;
  req->height = h;
  return TRUE;
}

static void
print_table (const OviCacheTable *t)
{
  static const char *const branch[] = { "positive", "negative" };
  static const char *const tower[] = { "video", "audio" };

  for (int b = 0; b < t->n_branches; b++)
    for (int w = 0; w < OVI_N_TOWERS; w++) {
      printf ("%-8s %-5s", branch[b], tower[w]);
      for (int i = 0; i < t->steps; i++)
        printf (" %.3f", t->ratio[b][w][i]);
      printf ("\n");
    }
}

static gboolean
calibrate (const Options *o, GError **error)
{
  g_autoptr (OviModelPaths) paths = NULL;
  g_autoptr (OviBackend) be = NULL;
  g_autoptr (OviCacheTable) table = NULL;
  g_autofree char *output = NULL, *comment = NULL;
  OviTensor *text[3] = { NULL, NULL, NULL }, *video = NULL, *audio = NULL;
  OviDenoiseStats stats = { 0 };
  OviDenoiseRequest req;
  OviDenoiser *d = NULL;
  gboolean ok;

  paths = ovi_model_paths_resolve (o->model_dir, o->variant, error);
  if (paths == NULL || !request_from (paths, o, &req, error))
    return FALSE;
  be = ovi_backend_new_by_name (
      o->backend ? o->backend
                 : (g_str_equal (paths->variant, "tiny") ? "cpu" : "cuda"),
      o->device, error);
  if (be == NULL || !encode (paths, be, o, text, error))
    return FALSE;
  req.text_pos = text[0];
  req.text_video_neg = text[1];
  req.text_audio_neg = text[2];
  req.stats = &stats;
  req.cache_calibration = &table;
  d = ovi_denoiser_new (paths, be, error);
  ok = d && ovi_denoiser_run (d, &req, NULL, NULL, NULL, &video, &audio, error);
  ovi_denoiser_free (d);
  for (int i = 0; i < 3; i++)
    g_clear_pointer (&text[i], ovi_tensor_unref);
  g_clear_pointer (&video, ovi_tensor_unref);
  g_clear_pointer (&audio, ovi_tensor_unref);
  if (!ok)
    return FALSE;

  output = o->output
               ? g_strdup (o->output)
               : g_strdup_printf ("%s_%d.json", paths->variant, req.steps);
  comment = g_strdup_printf (
      "MagCache magnitude ratios of %s at %d steps, made by `ovi "
      "calibrate-cache --steps %d --seed %" G_GINT64_FORMAT
      "` on %s (%dx%d, %s, shift %g, guidance %g/%g, SLG %d, backend %s, "
      "the default prompt%s)",
      paths->variant, req.steps, req.steps, o->seed,
      o->model_dir ? o->model_dir : "the default model folder", req.width,
      req.height, table->solver, req.shift, req.video_guidance,
      req.audio_guidance, req.slg_layer, ovi_backend_get_name (be),
      o->prompt ? " replaced" : "");
  if (!ovi_cache_table_save (table, output, comment, error))
    return FALSE;
  print_table (table);
  printf ("forwards: %d computed, %d skipped\n", stats.forwards_computed,
          stats.forwards_skipped);
  printf ("wrote %s\n", output);
  return TRUE;
}

int
ovi_cmd_calibrate_cache (int argc, char **argv)
{
  Options o = { 0 };
  GError *error = NULL;
  int status = 0;

  if (!parse (&o, argc, argv, &error) || !calibrate (&o, &error))
    status = ovi_cli_fail_error (error);
  options_clear (&o);
  return status;
}
