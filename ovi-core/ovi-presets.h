/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: presets (model variants, VRAM modes, GPU allocations) and the
 * official resolution rules.
 *
 * The tables live as JSON in presets/ (models.json, vram-modes.json,
 * gpu-allocations.json) and are read once with json-glib from, in order:
 * $OVI_PRESETS_DIR, the installed data dir, the source tree's presets/.
 * Lookups of an unknown name fail with OVI_ERROR_UNKNOWN_PRESET and list the
 * valid names. Returned presets are owned by the library and live for the
 * whole process.
 *
 * The VRAM-mode and GPU-allocation names are also C enums (the GStreamer
 * elements map their GEnums onto these); loading checks that the JSON
 * tables hold exactly the enum's names.
 */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "ovi-tensor.h"

G_BEGIN_DECLS

/* ---- model variants (models.json) ---- */

typedef struct {
  char *name; /* "720x720_5s", "960x960_5s", "960x960_10s", "tiny" */
  /* files, relative to the model folder (official layout) */
  char *fusion_file; /* "Ovi/model.safetensors" */
  char *fp8_file;    /* "Ovi/model_fp8_e4m3fn.safetensors" or NULL */
  char *t5_file;
  char *spiece_file;
  char *vae_file;
  char *audio_vae_file;
  char *vocoder_file;
  /* shapes */
  int video_latent_frames; /* 31 / 61 */
  int audio_latent_length; /* 157 / 314 */
  int pixel_frames;        /* 121 / 241 = 1 + 4 (F - 1) */
  int64_t audio_samples;   /* 80384 / 160768 = 512 L */
  int64_t target_area;     /* 720*720, 960*960 */
  int default_height, default_width;
  gboolean audcap_syntax; /* TRUE: <AUDCAP>..<ENDAUDCAP>, FALSE: "Audio: .." */
  /* fusion DiT (both towers) */
  int dim, ffn_dim, num_heads, num_layers, freq_dim, text_len, text_dim;
  double eps;
  double audio_rope_scale;
  int video_channels; /* 48 */
  int audio_channels; /* 20 */
  /* sampler defaults */
  int steps;
  char *solver; /* "unipc" | "euler" */
  double shift;
  double video_guidance, audio_guidance;
  int slg_layer;
  char *video_negative, *audio_negative;
} OviModelPreset;

const OviModelPreset *ovi_model_preset_lookup (const char *name,
                                               GError **error);
/* all variant names in table order (free with g_strfreev) */
char **ovi_model_preset_names (GError **error);

/* ---- VRAM modes (vram-modes.json) ---- */

typedef enum {
  OVI_VRAM_MODE_AUTO,
  OVI_VRAM_MODE_STANDARD,
  OVI_VRAM_MODE_FP8,
  OVI_VRAM_MODE_FP8_OFFLOAD,
  OVI_VRAM_MODE_ULTRA_LOW,
  OVI_N_VRAM_MODES
} OviVramMode;

typedef enum {
  OVI_RESIDENCY_AUTO,   /* "auto" */
  OVI_RESIDENCY_GPU,    /* "gpu": every weight resident */
  OVI_RESIDENCY_STREAM, /* "stream": DiT blocks streamed from pinned RAM */
} OviResidency;

typedef struct {
  OviVramMode mode;
  char *name;
  char *weight_dtype_name;    /* "auto", "bf16", "f8_e4m3", "int8" */
  gboolean weight_dtype_auto; /* TRUE for "auto" (weight_dtype then unused) */
  OviDType weight_dtype;      /* BF16, F8_E4M3, I8 */
  OviResidency residency;
  double target_vram_gb; /* 0 = decided at run time */
  gboolean tiled_vae;
  char *description;
} OviVramModePreset;

const char *ovi_vram_mode_to_string (OviVramMode mode); /* "fp8-offload" */
gboolean ovi_vram_mode_from_string (const char *name, OviVramMode *mode,
                                    GError **error);
const OviVramModePreset *ovi_vram_mode_preset_lookup (const char *name,
                                                      GError **error);
const OviVramModePreset *ovi_vram_mode_preset_get (OviVramMode mode,
                                                   GError **error);

/* ---- GPU allocations (gpu-allocations.json) ---- */

typedef enum {
  OVI_GPU_ALLOCATION_AUTO,
  OVI_GPU_ALLOCATION_SINGLE,
  OVI_GPU_ALLOCATION_SP2,
  OVI_GPU_ALLOCATION_SP4,
  OVI_GPU_ALLOCATION_SP8,
  OVI_GPU_ALLOCATION_CFG_PARALLEL,
  OVI_GPU_ALLOCATION_SHARDED,
  OVI_N_GPU_ALLOCATIONS
} OviGpuAllocation;

typedef enum {
  OVI_PARALLEL_AUTO,     /* "auto" */
  OVI_PARALLEL_SINGLE,   /* "single" */
  OVI_PARALLEL_SEQUENCE, /* "sequence-parallel" (Ulysses) */
  OVI_PARALLEL_CFG,      /* "cfg-parallel" */
  OVI_PARALLEL_SHARDED,  /* "sharded" */
} OviParallelKind;

typedef struct {
  OviGpuAllocation allocation;
  char *name;
  int ranks; /* GPUs; 0 = decided at run time */
  OviParallelKind kind;
  char *description;
} OviGpuAllocationPreset;

const char *ovi_gpu_allocation_to_string (OviGpuAllocation alloc);
gboolean ovi_gpu_allocation_from_string (const char *name,
                                         OviGpuAllocation *alloc,
                                         GError **error);
const OviGpuAllocationPreset *
ovi_gpu_allocation_preset_lookup (const char *name, GError **error);
const OviGpuAllocationPreset *
ovi_gpu_allocation_preset_get (OviGpuAllocation alloc, GError **error);

/* The folder the tables were (or would be) read from. */
const char *ovi_presets_dir (void);

/* ---- resolution rules (official processing_utils.py) ---- */

/* Text-to-video: scale (h, w) to `target_area` keeping the aspect, round
 * each side to an integer, then to the nearest multiple of 32 (Python
 * round: halves to even), at least 32. 720x720 at 720*720 gives 704x704.
 * target_area <= 0: no scaling. h, w must be > 0. */
gboolean ovi_snap_hw_t2v (int h, int w, int64_t target_area, int *out_h,
                          int *out_w, GError **error);
/* Image-to-video (_best_hw_for_area, multiple 32): among the 7 candidates
 * around p0 = round(sqrt(units / (w/h))) rows of 32 and the direct scale,
 * the (H, W) minimising (|H W - area|, |W/H - w/h|), first one on ties.
 * target_area <= 0: (h, w) unchanged apart from the minimum of 32. */
gboolean ovi_snap_hw_i2v (int h, int w, int64_t target_area, int *out_h,
                          int *out_w, GError **error);
/* DiT video tokens for F latent frames at pixel size H x W (multiples of
 * 32): F * (H/32) * (W/32). */
int64_t ovi_video_tokens (int latent_frames, int height, int width);

G_END_DECLS
