/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: enum property types shared by the ovi elements. */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

typedef enum {
  GST_OVI_VRAM_MODE_AUTO,
  GST_OVI_VRAM_MODE_STANDARD,
  GST_OVI_VRAM_MODE_FP8,
  GST_OVI_VRAM_MODE_FP8_OFFLOAD,
  GST_OVI_VRAM_MODE_ULTRA_LOW,
} GstOviVramMode;

typedef enum {
  GST_OVI_GPU_ALLOCATION_AUTO,
  GST_OVI_GPU_ALLOCATION_SINGLE,
  GST_OVI_GPU_ALLOCATION_SP2,
  GST_OVI_GPU_ALLOCATION_SP4,
  GST_OVI_GPU_ALLOCATION_SP8,
  GST_OVI_GPU_ALLOCATION_CFG_PARALLEL,
  GST_OVI_GPU_ALLOCATION_SHARDED,
} GstOviGpuAllocation;

typedef enum {
  GST_OVI_MODEL_AUTO,
  GST_OVI_MODEL_720X720_5S,
  GST_OVI_MODEL_960X960_5S,
  GST_OVI_MODEL_960X960_10S,
  GST_OVI_MODEL_TINY,
} GstOviModel;

typedef enum {
  GST_OVI_SOLVER_UNIPC,
  GST_OVI_SOLVER_EULER,
} GstOviSolverType;

/* step caching (docs/step-cache.md); the nicks are the engine's names */
typedef enum {
  GST_OVI_CACHE_OFF,
  GST_OVI_CACHE_EASY,
  GST_OVI_CACHE_MAG,
} GstOviCacheMode;

typedef enum {
  GST_OVI_LORA_MODE_AUTO,
  GST_OVI_LORA_MODE_MERGED,
  GST_OVI_LORA_MODE_UNMERGED,
} GstOviLoraMode;

/* how a live ovitextsrc stamps its clips (docs/elements.md) */
typedef enum {
  GST_OVI_TIMESTAMPS_CONTIGUOUS,
  GST_OVI_TIMESTAMPS_RUNNING_TIME,
} GstOviTimestamps;

/* what a clip after the first starts from (ovidenoise) */
typedef enum {
  GST_OVI_CONTINUATION_NONE,
  GST_OVI_CONTINUATION_LAST_FRAME,
} GstOviContinuation;

#define GST_TYPE_OVI_VRAM_MODE (gst_ovi_vram_mode_get_type ())
GType gst_ovi_vram_mode_get_type (void);
#define GST_TYPE_OVI_GPU_ALLOCATION (gst_ovi_gpu_allocation_get_type ())
GType gst_ovi_gpu_allocation_get_type (void);
#define GST_TYPE_OVI_MODEL (gst_ovi_model_get_type ())
GType gst_ovi_model_get_type (void);
#define GST_TYPE_OVI_SOLVER (gst_ovi_solver_get_type ())
GType gst_ovi_solver_get_type (void);
#define GST_TYPE_OVI_LORA_MODE (gst_ovi_lora_mode_get_type ())
GType gst_ovi_lora_mode_get_type (void);
#define GST_TYPE_OVI_CACHE_MODE (gst_ovi_cache_mode_get_type ())
GType gst_ovi_cache_mode_get_type (void);
#define GST_TYPE_OVI_TIMESTAMPS (gst_ovi_timestamps_get_type ())
GType gst_ovi_timestamps_get_type (void);
#define GST_TYPE_OVI_CONTINUATION (gst_ovi_continuation_get_type ())
GType gst_ovi_continuation_get_type (void);

/* The nick of an enum value ("fp8-offload", "720x720_5s", ...); never NULL. */
const char *gst_ovi_enum_nick (GType type, gint value);
/* The variant name the engine takes for a model value; NULL for auto. */
const char *gst_ovi_model_variant (GstOviModel model);
/* TRUE when the mode or allocation can only run on a CUDA GPU. */
gboolean gst_ovi_vram_mode_needs_gpu (GstOviVramMode mode);
gboolean gst_ovi_gpu_allocation_is_multi_gpu (GstOviGpuAllocation alloc);

G_END_DECLS
