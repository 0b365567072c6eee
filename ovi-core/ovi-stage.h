/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: loading a stage — the one call the elements and `ovi` make.
 *
 * A stage is one of the four parts of the pipeline (text encoder,
 * denoiser, video decoder, audio decoder) loaded from a model folder onto a
 * backend. Loading chooses, in this order: the model files (the official
 * layout or the tiny model, ovi_model_paths_resolve), the device (the GPU
 * asked for, else the one with the most usable free memory, else the CPU),
 * the VRAM mode and its residency plan (`auto`: the fastest mode whose
 * estimate fits), the fusion file (the official pre-cast fp8 file for the
 * fp8 modes when it exists), then it opens the backend and calls the
 * stage's constructor with the plan's weight filter.
 *
 * It is done in two steps so that a cache can share loaded stages:
 * ovi_stage_plan_new() makes every choice without loading weights and
 * gives a key (two plans with the same key load the same thing), and
 * ovi_stage_plan_load() loads it. ovi_stage_load() does both.
 *
 * A loaded OviStage is reference counted and may be used from several
 * threads at once: the stage objects take turns on their backend one step
 * at a time, and every wait ends when the caller's GCancellable fires
 * (see ovi_denoiser_run).
 */
#pragma once

#include <gio/gio.h>

#include "ovi-engine.h"
#include "ovi-presets.h"

G_BEGIN_DECLS

typedef enum {
  OVI_STAGE_TEXT,         /* tokenizer + umT5-XXL: OviTextEncoder */
  OVI_STAGE_DENOISE,      /* fusion DiT + sampler: OviDenoiser */
  OVI_STAGE_VIDEO_DECODE, /* Wan2.2 VAE (also the i2v encode): OviVideoVae */
  OVI_STAGE_AUDIO_DECODE, /* MMAudio VAE + BigVGAN: OviAudioDecoder */
  OVI_N_STAGES
} OviStageKind;

/* "text", "denoise", "video-decode", "audio-decode" */
const char *ovi_stage_name (OviStageKind kind);
/* what a person reads: "text encoder (umT5-XXL)", "fusion DiT", ... */
const char *ovi_stage_title (OviStageKind kind);

/* What to load; the strings are the caller's (not copied). Mirrors the
 * elements' common properties. */
typedef struct {
  const char *model_dir; /* NULL: the tiny model */
  const char *variant;   /* NULL: the one whose weights are present */
  /* NULL or "auto": a usable GPU, else the CPU; "cpu"; "cuda" (bf16
   * activations); "cuda-fp32" (fp32 activations, the parity mode) */
  const char *backend;
  OviVramMode vram_mode;           /* AUTO: the fastest that fits */
  OviGpuAllocation gpu_allocation; /* AUTO: single */
  int cuda_device_id;              /* -1: the best GPU */
  int n_threads;                   /* CPU backend threads, 0: all cores */
  /* the denoise stage's LoRAs, merged into the weights at load
   * ("path[:strength[:video|audio|both]];...", docs/lora.md); NULL: none */
  const char *loras;
  /* the GPUs of a multi-GPU gpu-allocation, "0,1,2,3" (NULL: every GPU);
   * with backend "cpu", or $OVI_PARALLEL_CPU_RANKS=1 on a machine without
   * GPUs (a test switch), the ranks are CPU threads instead */
  const char *cuda_devices;
  /* host RAM the plan may use on a discrete GPU (a mode whose host bytes,
   * private + mapped, exceed it is not chosen); 0: MemAvailable */
  guint64 host_ram;
  /* where the denoise stage keeps the int8 / fp8 weights it quantises
   * from a bf16 file, written once and mapped after (docs/vram-modes.md):
   * NULL: $OVI_WEIGHT_CACHE_DIR, else $XDG_CACHE_HOME/gst-ovi, else
   * ~/.cache/gst-ovi; "off": quantised in memory at every load */
  const char *weight_cache_dir;
} OviStageConfig;

/* auto everywhere, the tiny model */
void ovi_stage_config_init (OviStageConfig *config);

/* ---- the choices, before loading ---- */

typedef struct _OviStagePlan OviStagePlan;

/* Makes every choice for `kind` (files, device, VRAM plan) without loading
 * weights (weight-file headers are read). Fails with an error a person can
 * act on: a missing file, a mode that needs a GPU there is none of, a mode
 * that does not fit (with the estimate and the mode that would). */
OviStagePlan *ovi_stage_plan_new (OviStageKind kind,
                                  const OviStageConfig *config, GError **error);
void ovi_stage_plan_free (OviStagePlan *plan);
/* equal keys load the same files on the same device in the same mode */
const char *ovi_stage_plan_get_key (const OviStagePlan *plan);
/* "text encoder (umT5-XXL) (FILES, model tiny) on cuda:0, vram-mode fp8" */
const char *ovi_stage_plan_get_description (const OviStagePlan *plan);
/* why the CPU runs it when a GPU was not used (NULL on a GPU or when the
 * CPU was asked for); `warn`: an NVIDIA driver is installed, so this is
 * worth a warning rather than a quiet choice */
const char *ovi_stage_plan_get_cpu_reason (const OviStagePlan *plan,
                                           gboolean *warn);

/* ---- loaded stages ---- */

typedef struct _OviStage OviStage;

/* Opens the backend and loads the weights the plan chose. */
OviStage *ovi_stage_plan_load (const OviStagePlan *plan, GError **error);
/* The same onto `backend` (the stage takes it) instead of the device the
 * plan chose, with the plan's placement: e.g. a unified GPU's plan run on
 * the CPU backend, to see what it does with the weights. */
OviStage *ovi_stage_plan_load_on (const OviStagePlan *plan, OviBackend *backend,
                                  GError **error);
/* ovi_stage_plan_new + ovi_stage_plan_load */
OviStage *ovi_stage_load (OviStageKind kind, const OviStageConfig *config,
                          GError **error);
OviStage *ovi_stage_ref (OviStage *stage);
void ovi_stage_unref (OviStage *stage);

OviStageKind ovi_stage_get_kind (const OviStage *stage);
const char *ovi_stage_get_key (const OviStage *stage);
/* the model the stage was loaded from (variant, latent sizes, target area) */
const OviModelPaths *ovi_stage_get_paths (const OviStage *stage);
/* "cpu", "cuda:0" */
const char *ovi_stage_get_device_name (const OviStage *stage);
/* the mode the plan uses (never AUTO) */
OviVramMode ovi_stage_get_vram_mode (const OviStage *stage);
/* the plan's video-decoder tiling in latent pixels (0: untiled; the
 * ultra-low mode tiles), which a video-decode stage starts with */
void ovi_stage_get_vae_tiling (const OviStage *stage, int *tile, int *overlap);
/* wall-clock seconds the load took */
double ovi_stage_get_load_seconds (const OviStage *stage);
/* weight bytes the device reads where they lie (the file's mapping or one
 * host allocation) instead of a copy: the text and denoise stages'
 * placement on a unified device (OviPlacementPlan.weights_in_place) */
guint64 ovi_stage_get_in_place_bytes (const OviStage *stage);

/* The stage object (transfer none; NULL when the stage is another kind). */
OviTextEncoder *ovi_stage_get_text_encoder (OviStage *stage);
OviDenoiser *ovi_stage_get_denoiser (OviStage *stage);
OviVideoVae *ovi_stage_get_video_vae (OviStage *stage);
OviAudioDecoder *ovi_stage_get_audio_decoder (OviStage *stage);

/* ---- requests ---- */

/* What ovidenoise and `ovi generate` do with a request before running it:
 * steps <= 0 and slg_layer OVI_SLG_LAYER_PRESET become the model
 * preset's; without an image, a width or
 * height <= 0 becomes the preset's default (else 720) and the size is
 * snapped to the model's area (ovi_snap_hw_t2v). With an image the size is
 * the image's (already snapped by ovi_image_prepare_rgb8). */
gboolean ovi_denoise_request_resolve (OviDenoiseRequest *req,
                                      const OviModelPaths *paths,
                                      gboolean have_image, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviStagePlan, ovi_stage_plan_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviStage, ovi_stage_unref)

G_END_DECLS
