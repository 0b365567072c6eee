/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: one engine per process.
 *
 * The loaded stages (text encoder, denoiser, video VAE, audio decoder) live
 * in a cache keyed by what ovi-core's stage plan chose (stage, weight
 * files, device, vram mode: ovi-stage.h, which also does the loading).
 * Elements acquire a stage at READY->PAUSED and release it at READY->NULL,
 * so a PAUSED->READY->PAUSED cycle and a second pipeline in the same process
 * reuse the loaded weights; a stage is freed when the last element lets go.
 *
 * The cache object itself travels through the pipeline in a GstContext of
 * type "ovi.engine" (field "cache"), so an application can hand its own
 * cache to a pipeline; without one, the process-wide default is used.
 */
#pragma once

#include <gst/gst.h>

#include "gstovienums.h"
#include "ovi-engine.h"
#include "ovi-stage.h"

G_BEGIN_DECLS

#define GST_OVI_ENGINE_CONTEXT_TYPE "ovi.engine"

/* the stages, as ovi-core numbers them (ovi-stage.h) */
typedef OviStageKind GstOviStage;
#define GST_OVI_STAGE_TEXT      OVI_STAGE_TEXT
#define GST_OVI_STAGE_DENOISER  OVI_STAGE_DENOISE
#define GST_OVI_STAGE_VIDEO_VAE OVI_STAGE_VIDEO_DECODE
#define GST_OVI_STAGE_AUDIO     OVI_STAGE_AUDIO_DECODE

typedef struct {
  gchar *model_dir;     /* NULL: the tiny model */
  const gchar *variant; /* NULL: the one present */
  GstOviVramMode vram_mode;
  GstOviGpuAllocation gpu_allocation;
  gint cuda_device_id; /* -1: auto */
  gchar *cuda_devices; /* multi-GPU allocations: "0,1", NULL: every GPU */
  gchar *loras; /* merged into the denoiser at load (docs/lora.md), or NULL */
  /* the quantised weights' cache folder, NULL: the default; "off" (it
   * changes no weight, so it is not in the config's string) */
  gchar *weight_cache_dir;
} GstOviEngineConfig;

/* One loaded stage, shared by the elements that acquired it; it holds a
 * reference on its cache. The stage objects may be used from several
 * threads at once (they take turns per step, cancellably): no lock here. */
typedef struct _GstOviEngine GstOviEngine;

#define GST_TYPE_OVI_ENGINE_CACHE (gst_ovi_engine_cache_get_type ())
G_DECLARE_FINAL_TYPE (GstOviEngineCache, gst_ovi_engine_cache, GST,
                      OVI_ENGINE_CACHE, GstObject)

GstOviEngineCache *gst_ovi_engine_cache_new (void);
/* the process-wide cache (transfer none) */
GstOviEngineCache *gst_ovi_engine_cache_get_default (void);
/* number of stages currently loaded */
guint gst_ovi_engine_cache_get_n_loaded (GstOviEngineCache *cache);
/* number of loads done so far (a reuse does not count) */
guint gst_ovi_engine_cache_get_n_loads (GstOviEngineCache *cache);

/* Finds the cache for `element`: the one already in *cache, one handed over
 * with a GstContext (neighbours' context query, then NEED_CONTEXT), else the
 * default, which is then announced with HAVE_CONTEXT. */
void gst_ovi_engine_cache_ensure (GstElement *element,
                                  GstOviEngineCache **cache);
/* for set_context: takes the cache out of an "ovi.engine" context */
gboolean gst_ovi_engine_cache_from_context (GstContext *context,
                                            GstOviEngineCache **cache);
/* for pad queries: answers a GST_QUERY_CONTEXT for "ovi.engine" */
gboolean gst_ovi_engine_cache_handle_query (GstElement *element,
                                            GstQuery *query,
                                            GstOviEngineCache *cache);

/* Loads (or reuses) a stage. Posts GST_MESSAGE_PROGRESS START/COMPLETE or
 * ERROR on `element` around a real load. Errors are OVI_ERROR GErrors whose
 * messages a person can act on. */
GstOviEngine *gst_ovi_engine_cache_acquire (GstOviEngineCache *cache,
                                            GstOviStage stage,
                                            const GstOviEngineConfig *config,
                                            GstElement *element,
                                            GError **error);
void gst_ovi_engine_release (GstOviEngine *engine);
/* the loaded stage (transfer none): ovi_stage_get_denoiser (...) etc. */
OviStage *gst_ovi_engine_get_stage (GstOviEngine *engine);

/* a string that differs when two configs may load different weights */
gchar *gst_ovi_engine_config_to_string (const GstOviEngineConfig *config);

/* what a person reads: "fusion DiT" (ovi_stage_title) */
#define gst_ovi_stage_name(stage) ovi_stage_title (stage)

/* ---- the settings that choose the weights (the elements' common
 * properties, gstovihelper.h) ---- */

void gst_ovi_engine_config_init (GstOviEngineConfig *config);
void gst_ovi_engine_config_clear (GstOviEngineConfig *config);
void gst_ovi_engine_config_copy (GstOviEngineConfig *dst,
                                 const GstOviEngineConfig *src);
G_END_DECLS
