/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: loading a stage (see ovi-stage.h). */
#include "ovi-stage.h"

#include "ovi-gpu-manager.h"
#include "ovi-lora.h"
#include "ovi-placement.h"
#include "ovi-denoiser-parallel.h"

#include <string.h>

struct _OviStagePlan {
  OviStageKind kind;
  OviModelPaths *paths; /* the fusion path is the fp8 file when chosen */
  OviPlacementPlan plan;
  int device;         /* CUDA ordinal, -1: the CPU backend */
  char *backend_name; /* for ovi_backend_new_by_name on a GPU */
  char *device_name;  /* "cpu", "cuda:0" */
  int n_threads;
  char *cpu_reason;
  gboolean warn;
  char *key;
  char *description;
  GPtrArray *loras; /* denoise: OviLoraSpec* merged at load, or NULL */
  /* denoise over several ranks (gpu-allocation): ranks > 1 */
  OviParallelLayout layout;
  int ranks;
  int *devices;           /* [ranks] CUDA ordinals; NULL: CPU ranks */
  char *weight_cache_dir; /* NULL: the default (plan.weight_cache) */
};

struct _OviStage {
  gint ref_count;
  OviStageKind kind;
  char *key;
  OviModelPaths *paths;
  char *device_name;
  OviVramMode vram_mode;
  int vae_tile, vae_tile_overlap;
  double load_seconds;
  OviBackend *backend;
  OviPlacement *placement;    /* text and denoise: the weights as planned */
  OviParallelDenoiser *group; /* denoise over several ranks */
  union {
    gpointer any;
    OviTextEncoder *text;
    OviDenoiser *denoiser;
    OviVideoVae *video_vae;
    OviAudioDecoder *audio;
  } u;
};

const char *
ovi_stage_name (OviStageKind kind)
{
  static const char *const names[OVI_N_STAGES]
      = { "text", "denoise", "video-decode", "audio-decode" };
  return kind < OVI_N_STAGES ? names[kind] : "?";
}

const char *
ovi_stage_title (OviStageKind kind)
{
  static const char *const titles[OVI_N_STAGES]
      = { "text encoder (umT5-XXL)", "fusion DiT", "Wan2.2 video VAE",
          "MMAudio VAE + BigVGAN vocoder" };
  return kind < OVI_N_STAGES ? titles[kind] : "?";
}

void
ovi_stage_config_init (OviStageConfig *c)
{
  memset (c, 0, sizeof *c);
  c->vram_mode = OVI_VRAM_MODE_AUTO;
  c->gpu_allocation = OVI_GPU_ALLOCATION_AUTO;
  c->cuda_device_id = -1;
}

/* ---- plans ---- */

void
ovi_stage_plan_free (OviStagePlan *p)
{
  if (p == NULL)
    return;
  g_clear_pointer (&p->loras, g_ptr_array_unref);
  g_clear_pointer (&p->paths, ovi_model_paths_free);
  g_free (p->backend_name);
  g_free (p->device_name);
  g_free (p->cpu_reason);
  g_free (p->key);
  g_free (p->description);
  g_free (p->devices);
  g_free (p->weight_cache_dir);
  g_free (p);
}

static gboolean
check_config (const OviStageConfig *c, GError **error)
{
  const char *be = c->backend ? c->backend : "auto";

  if (g_strcmp0 (be, "auto") != 0 && g_strcmp0 (be, "cpu") != 0
      && g_strcmp0 (be, "cuda") != 0 && g_strcmp0 (be, "cuda-fp32") != 0) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "backend \"%s\": expected auto, cpu, cuda or cuda-fp32", be);
    return FALSE;
  }
  if (g_strcmp0 (be, "cpu") == 0
      && (c->vram_mode != OVI_VRAM_MODE_AUTO || c->cuda_device_id >= 0)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "backend cpu with vram-mode=%s cuda-device-id=%d: the VRAM "
                 "modes and device ids are for a CUDA GPU; use vram-mode=auto "
                 "and cuda-device-id=-1 with the cpu backend",
                 ovi_vram_mode_to_string (c->vram_mode), c->cuda_device_id);
    return FALSE;
  }
  return TRUE;
}

/* where it runs and the residency plan: the CPU when asked for, else the
 * GPU manager's device and the fastest mode that fits it */
static gboolean
choose_device (OviStagePlan *p, const OviStageConfig *c, GError **error)
{
  g_auto (OviGpuReport) report = { 0 };
  g_auto (OviDeviceChoice) choice = { 0 };
  OviPlacementModel m;
  OviPlacementEstimate est;
  GError *local = NULL;
  gboolean ok;

  if (g_strcmp0 (c->backend, "cpu") == 0) {
    p->device = -1;
    return ovi_placement_plan_for_mode (OVI_VRAM_MODE_STANDARD,
                                        c->gpu_allocation, 0, &p->plan, error);
  }
  if (!ovi_gpu_report_probe (&report, error)
      || !ovi_placement_model_init (&m, p->paths, NULL, error))
    return FALSE;
  if (c->host_ram > 0)
    report.host_available = c->host_ram;
  ok = ovi_placement_choose_device (&m, c->vram_mode, c->gpu_allocation, 0, 0,
                                    &report, c->cuda_device_id, 0, &choice,
                                    &est, &local);
  ovi_placement_model_clear (&m);
  if (!ok) {
    if (g_error_matches (local, OVI_ERROR, OVI_ERROR_BACKEND))
      g_prefix_error (&local, "Set vram-mode=auto and cuda-device-id=-1 to run "
                              "on the CPU (slow), or check the NVIDIA driver "
                              "with nvidia-smi. ");
    g_propagate_error (error, local);
    return FALSE;
  }
  if (choice.device < 0 && c->backend
      && g_str_has_prefix (c->backend, "cuda")) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND,
                 "backend %s: no usable CUDA GPU (%s)", c->backend,
                 choice.cpu_reason ? choice.cpu_reason : "none found");
    return FALSE;
  }
  p->plan = est.plan;
  p->device = choice.device;
  p->cpu_reason = g_steal_pointer (&choice.cpu_reason);
  p->warn = choice.warn;
  return TRUE;
}

static char *
stage_files (OviStageKind kind, const OviModelPaths *p)
{
  switch (kind) {
    case OVI_STAGE_TEXT:
      return g_strdup_printf ("%s|%s", p->t5_path, p->spiece_path);
    case OVI_STAGE_DENOISE:
      return g_strdup (p->fusion_path);
    case OVI_STAGE_VIDEO_DECODE:
      return g_strdup (p->vae_path);
    case OVI_STAGE_AUDIO_DECODE:
    default:
      return g_strdup_printf ("%s|%s", p->audio_vae_path, p->vocoder_path);
  }
}

/* The quantised weights from the cache file, unless it is off or the
 * weights differ from the file's (LoRAs merged at load). */
static void
plan_weight_cache (OviStagePlan *p, const OviStageConfig *c)
{
  if (g_strcmp0 (c->weight_cache_dir, "off") == 0
      || p->kind != OVI_STAGE_DENOISE || p->ranks > 1
      || (p->loras && p->loras->len > 0))
    p->plan.weight_cache = FALSE;
  p->weight_cache_dir = g_strdup (c->weight_cache_dir);
}

OviStagePlan *
ovi_stage_plan_new (OviStageKind kind, const OviStageConfig *c, GError **error)
{
  g_autoptr (OviStagePlan) p = g_new0 (OviStagePlan, 1);
  g_autofree char *files = NULL;
  const char *mode;

  g_return_val_if_fail (kind < OVI_N_STAGES, NULL);
  p->kind = kind;
  p->n_threads = c->n_threads;
  if (!check_config (c, error))
    return NULL;
  p->paths = ovi_model_paths_resolve (c->model_dir, c->variant, error);
  if (p->paths == NULL || !choose_device (p, c, error))
    return NULL;
  if (kind == OVI_STAGE_TEXT && p->plan.t5_on_cpu)
    p->device = -1;
  if (kind == OVI_STAGE_DENOISE
      && !ovi_parallel_plan (c->gpu_allocation, c->backend, c->cuda_devices,
                             p->paths->num_heads, &p->layout, &p->ranks,
                             &p->devices, error))
    return NULL;
  if (kind == OVI_STAGE_DENOISE
      && (p->plan.mode == OVI_VRAM_MODE_FP8
          || p->plan.mode == OVI_VRAM_MODE_FP8_OFFLOAD)) {
    /* the official pre-cast fp8 file when there is one */
    char *fp8 = ovi_placement_fp8_file (p->paths);
    if (fp8) {
      g_free (p->paths->fusion_path);
      p->paths->fusion_path = fp8;
    }
  }
  p->backend_name = g_strdup (
      c->backend && g_str_has_prefix (c->backend, "cuda") ? c->backend
                                                          : "cuda");
  p->device_name
      = p->ranks > 1    ? ovi_parallel_ranks_name (p->backend_name, p->ranks,
                                                   p->devices, &p->layout)
        : p->device < 0 ? g_strdup ("cpu")
                        : g_strdup_printf ("%s:%d", p->backend_name, p->device);
  if (kind == OVI_STAGE_DENOISE && c->loras && *c->loras) {
    p->loras = ovi_lora_specs_parse (c->loras, error);
    if (p->loras == NULL)
      return NULL;
  }
  plan_weight_cache (p, c);
  mode = ovi_vram_mode_to_string (p->plan.mode);
  files = stage_files (kind, p->paths);
  if (p->loras && p->loras->len) {
    /* the merged LoRAs are part of what loads */
    char *with = g_strdup_printf ("%s, LoRAs %s", files, c->loras);
    g_free (files);
    files = with;
  }
  /* the variant is in the key: it sets text_len and the caption syntax */
  p->key = g_strdup_printf ("%s|%s|%s|%s|%s", ovi_stage_name (kind), files,
                            p->paths->variant, p->device_name, mode);
  p->description = g_strdup_printf ("%s (%s, model %s) on %s, vram-mode %s",
                                    ovi_stage_title (kind), files,
                                    p->paths->variant, p->device_name, mode);
  return g_steal_pointer (&p);
}

const char *
ovi_stage_plan_get_key (const OviStagePlan *p)
{
  return p->key;
}

const char *
ovi_stage_plan_get_description (const OviStagePlan *p)
{
  return p->description;
}

const char *
ovi_stage_plan_get_cpu_reason (const OviStagePlan *p, gboolean *warn)
{
  if (warn)
    *warn = p->warn;
  return p->cpu_reason;
}

/* ---- loading ---- */

/* $OVI_STAGE_CPU_BACKEND=1 runs a GPU's plan (a device described by
 * $OVI_DEVICE_PROBE_FILE) on the CPU backend: a test switch for the
 * streamed and quantised modes on a machine without a GPU */
static gboolean
plan_on_cpu (void)
{
  return g_strcmp0 (g_getenv ("OVI_STAGE_CPU_BACKEND"), "1") == 0;
}

static OviBackend *
open_backend (const OviStagePlan *p, GError **error)
{
  if (p->device < 0 || plan_on_cpu ())
    return ovi_backend_new_cpu (p->n_threads);
  return ovi_backend_new_by_name (p->backend_name, p->device, error);
}

static void
use_weight_cache (OviStage *s, const char *dir)
{
  g_auto (OviWeightCacheInfo) info = { 0 };

  if (ovi_placement_use_weight_cache (s->placement, s->paths->fusion_path, dir,
                                      &info))
    g_info ("%s: the quantised DiT weights %s", info.path,
            info.written ? "written (once; later loads map them)"
                         : "mapped from this weight cache file");
}

/* the streamed modes leave the DiT blocks in host memory: the block
 * streamer must copy them to the device before each block runs */
static void
attach_streaming (const OviPlacement *pl, const OviPlacementPlan *plan,
                  OviDenoiser *d)
{
  ovi_placement_attach_denoiser (pl, d);
  if (plan->stream_blocks)
    g_info ("the DiT blocks stream from host memory, two at a time on the "
            "device");
}

static gboolean
construct (OviStage *s, const OviPlacementPlan *plan, const GPtrArray *loras,
           const char *weight_cache_dir, GError **error)
{
  switch (s->kind) {
    case OVI_STAGE_TEXT:
      s->placement = ovi_placement_new (plan, s->backend);
      s->u.text = ovi_text_encoder_new_filtered (
          s->paths, s->backend, ovi_placement_t5_filter, s->placement, error);
      break;
    case OVI_STAGE_DENOISE:
      s->placement = ovi_placement_new (plan, s->backend);
      if (plan->weight_cache)
        use_weight_cache (s, weight_cache_dir);
      s->u.denoiser = ovi_denoiser_new_with_loras (s->paths, s->backend,
                                                   ovi_placement_weight_filter,
                                                   s->placement, loras, error);
      if (s->u.denoiser)
        attach_streaming (s->placement, plan, s->u.denoiser);
      break;
    case OVI_STAGE_VIDEO_DECODE:
      s->u.video_vae = ovi_video_vae_new (s->paths, s->backend, error);
      if (s->u.video_vae)
        ovi_video_vae_set_tiling (s->u.video_vae, s->vae_tile,
                                  s->vae_tile_overlap);
      break;
    case OVI_STAGE_AUDIO_DECODE:
    default:
      s->u.audio = ovi_audio_decoder_new (s->paths, s->backend, error);
      break;
  }
  return s->u.any != NULL;
}

static OviStage *load (const OviStagePlan *p, OviBackend *backend,
                       GError **error);

OviStage *
ovi_stage_plan_load (const OviStagePlan *p, GError **error)
{
  return load (p, NULL, error);
}

OviStage *
ovi_stage_plan_load_on (const OviStagePlan *p, OviBackend *backend,
                        GError **error)
{
  g_return_val_if_fail (backend != NULL, NULL);
  return load (p, backend, error);
}

/* onto `backend` (taken) when given, else the plan's device */
static OviStage *
load (const OviStagePlan *p, OviBackend *backend, GError **error)
{
  OviStage *s = g_new0 (OviStage, 1);
  gint64 t0 = g_get_monotonic_time ();

  s->ref_count = 1;
  s->kind = p->kind;
  s->key = g_strdup (p->key);
  s->paths = ovi_model_paths_copy (p->paths);
  s->device_name
      = g_strdup (backend ? ovi_backend_get_name (backend) : p->device_name);
  s->vram_mode = p->plan.mode;
  s->vae_tile = p->plan.vae_tile;
  s->vae_tile_overlap = p->plan.vae_tile_overlap;
  if (backend)
    s->backend = backend;
  else if (p->ranks > 1)
    s->group = ovi_parallel_denoiser_load (
        p->paths, &p->plan, p->loras, &p->layout, p->ranks, p->devices,
        p->backend_name, p->n_threads, error);
  else
    s->backend = open_backend (p, error);
  /* a unified device reads the weights where they lie (decoders included:
   * their loaders place weights through ovi_backend_upload_weight) */
  if (s->backend && p->plan.weights_in_place)
    ovi_backend_set_weights_in_place (s->backend, TRUE);
  if (s->group)
    s->u.denoiser = ovi_parallel_denoiser_get_front (s->group);
  if ((s->backend == NULL && s->group == NULL)
      || (s->group == NULL
          && !construct (s, &p->plan, p->loras, p->weight_cache_dir, error))) {
    g_prefix_error (error,
                    "Could not load the %s: ", ovi_stage_title (p->kind));
    ovi_stage_unref (s);
    return NULL;
  }
  s->load_seconds = (g_get_monotonic_time () - t0) / 1e6;
  return s;
}

OviStage *
ovi_stage_load (OviStageKind kind, const OviStageConfig *config, GError **error)
{
  g_autoptr (OviStagePlan) plan = ovi_stage_plan_new (kind, config, error);

  return plan ? ovi_stage_plan_load (plan, error) : NULL;
}

OviStage *
ovi_stage_ref (OviStage *s)
{
  g_atomic_int_inc (&s->ref_count);
  return s;
}

static void
destroy (OviStage *s)
{
  switch (s->kind) {
    case OVI_STAGE_TEXT:
      g_clear_pointer (&s->u.text, ovi_text_encoder_free);
      break;
    case OVI_STAGE_DENOISE:
      if (s->group)
        s->u.denoiser = NULL; /* the group's rank 0 */
      g_clear_pointer (&s->group, ovi_parallel_denoiser_free);
      g_clear_pointer (&s->u.denoiser, ovi_denoiser_free);
      break;
    case OVI_STAGE_VIDEO_DECODE:
      g_clear_pointer (&s->u.video_vae, ovi_video_vae_free);
      break;
    case OVI_STAGE_AUDIO_DECODE:
    default:
      g_clear_pointer (&s->u.audio, ovi_audio_decoder_free);
      break;
  }
  /* the weights the placement put on the device go before the backend */
  g_clear_pointer (&s->placement, ovi_placement_free);
  g_clear_pointer (&s->backend, ovi_backend_free);
  g_clear_pointer (&s->paths, ovi_model_paths_free);
  g_free (s->device_name);
  g_free (s->key);
  g_free (s);
}

void
ovi_stage_unref (OviStage *s)
{
  if (s && g_atomic_int_dec_and_test (&s->ref_count))
    destroy (s);
}

OviStageKind
ovi_stage_get_kind (const OviStage *s)
{
  return s->kind;
}

const char *
ovi_stage_get_key (const OviStage *s)
{
  return s->key;
}

const OviModelPaths *
ovi_stage_get_paths (const OviStage *s)
{
  return s->paths;
}

const char *
ovi_stage_get_device_name (const OviStage *s)
{
  return s->device_name;
}

OviVramMode
ovi_stage_get_vram_mode (const OviStage *s)
{
  return s->vram_mode;
}

void
ovi_stage_get_vae_tiling (const OviStage *s, int *tile, int *overlap)
{
  *tile = s->vae_tile;
  *overlap = s->vae_tile_overlap;
}

double
ovi_stage_get_load_seconds (const OviStage *s)
{
  return s->load_seconds;
}

guint64
ovi_stage_get_in_place_bytes (const OviStage *s)
{
  return s->placement ? ovi_placement_in_place_bytes (s->placement) : 0;
}

OviTextEncoder *
ovi_stage_get_text_encoder (OviStage *s)
{
  return s->kind == OVI_STAGE_TEXT ? s->u.text : NULL;
}

OviDenoiser *
ovi_stage_get_denoiser (OviStage *s)
{
  return s->kind == OVI_STAGE_DENOISE ? s->u.denoiser : NULL;
}

OviVideoVae *
ovi_stage_get_video_vae (OviStage *s)
{
  return s->kind == OVI_STAGE_VIDEO_DECODE ? s->u.video_vae : NULL;
}

OviAudioDecoder *
ovi_stage_get_audio_decoder (OviStage *s)
{
  return s->kind == OVI_STAGE_AUDIO_DECODE ? s->u.audio : NULL;
}

/* ---- requests ---- */

gboolean
ovi_denoise_request_resolve (OviDenoiseRequest *req, const OviModelPaths *paths,
                             gboolean have_image, GError **error)
{
  const OviModelPreset *preset = ovi_model_preset_lookup (paths->variant, NULL);
  int w = req->width, h = req->height;

  if (req->steps <= 0)
    req->steps = preset ? preset->steps : 50;
  if (req->slg_layer == OVI_SLG_LAYER_PRESET)
    req->slg_layer = preset ? preset->slg_layer : 11;
  if (have_image)
    return TRUE;
  if (w <= 0)
    w = preset ? preset->default_width : 0;
  if (h <= 0)
    h = preset ? preset->default_height : 0;
  if (w <= 0 || h <= 0)
    w = h = 720;
  return ovi_snap_hw_t2v (h, w, paths->target_area, &req->height, &req->width,
                          error);
}
