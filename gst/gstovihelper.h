/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the helper object every ovi element owns (after nvcodec's
 * GstNvDecoder).
 *
 * One GstOviHelper per element holds what the four elements have in common:
 * the common properties (model-dir, vram-mode, gpu-allocation,
 * cuda-device-id), the engine cache and the stages loaded from it, the
 * flushing state with its GCancellable, the "ovi.engine" context query and
 * set_context, and the posting of engine errors. The element keeps its own
 * settings, pads and streaming state and calls the helper from its vfuncs.
 *
 * Locking: the flushing flag and the wake-up condition are guarded by the
 * element's object lock, so an element can wait on its own state (pushed
 * prompts, the first image) and on a flush with one g_cond_wait. The loaded
 * stages are guarded by the helper's own object lock.
 */
#pragma once

#include <gst/base/gstbasetransform.h>
#include <gst/gst.h>

#include "gstoviengine-cache.h"

G_BEGIN_DECLS

/* the author field of the elements' metadata */
#define GST_OVI_AUTHOR "gst-ovi developers <dev@gst-ovi.invalid>"

#define GST_TYPE_OVI_HELPER (gst_ovi_helper_get_type ())
G_DECLARE_FINAL_TYPE (GstOviHelper, gst_ovi_helper, GST, OVI_HELPER, GstObject)

/* `element` owns the helper; the helper does not ref it. */
GstOviHelper *gst_ovi_helper_new (GstElement *element);

/* ---- the common properties (ids GST_OVI_PROP_MODEL_DIR ..
 * GST_OVI_PROP_LAST - 1; an element numbers its own from GST_OVI_PROP_LAST)
 * ---- */

enum {
  GST_OVI_PROP_MODEL_DIR = 1,
  GST_OVI_PROP_VRAM_MODE,
  GST_OVI_PROP_GPU_ALLOCATION,
  GST_OVI_PROP_CUDA_DEVICE_ID,
  GST_OVI_PROP_CUDA_DEVICES,
  GST_OVI_PROP_WEIGHT_CACHE_DIR,
  GST_OVI_PROP_LAST
};

void gst_ovi_helper_install_properties (GObjectClass *klass);
/* Return TRUE when `prop_id` is a common property (and was handled). */
gboolean gst_ovi_helper_set_property (GstOviHelper *self, guint prop_id,
                                      const GValue *value);
gboolean gst_ovi_helper_get_property (GstOviHelper *self, guint prop_id,
                                      GValue *value);
/* The model variant to load (NULL: the one present); ovidenoise's `model`. */
void gst_ovi_helper_set_variant (GstOviHelper *self, const gchar *variant);

/* The LoRAs merged into the denoiser it loads (NULL or "": none); a change
 * makes the next acquire load again (ovidenoise's lora-mode). */
void gst_ovi_helper_set_loras (GstOviHelper *self, const gchar *loras);

/* ---- stages ---- */

/* Loads (or reuses) `stage` with the current properties, releasing first
 * every stage loaded with other ones. On failure posts an element error
 * ("Could not load the video VAE: <why>") and returns NULL. The engine
 * stays held by the helper until released (transfer none). */
GstOviEngine *gst_ovi_helper_acquire (GstOviHelper *self, GstOviStage stage);
/* The loaded `stage`, or NULL (transfer none). */
GstOviEngine *gst_ovi_helper_get_engine (GstOviHelper *self, GstOviStage stage);
void gst_ovi_helper_release (GstOviHelper *self, GstOviStage stage);
/* READY->NULL and finalize: lets go of every stage (idle weights go when no
 * element holds them). */
void gst_ovi_helper_release_all (GstOviHelper *self);

/* READY->PAUSED (or a base class's start): loads `stage` (see
 * gst_ovi_helper_acquire) and arms a fresh cancellable. */
gboolean gst_ovi_helper_start (GstOviHelper *self, GstOviStage stage);
/* The body of GstElement::change_state around the parent's: PAUSED->READY
 * flushes first (a request stops at its next step, before the pads
 * deactivate), READY->NULL releases every stage after (the weights stay
 * loaded over PAUSED->READY->PAUSED). */
GstStateChangeReturn gst_ovi_helper_change_state (GstOviHelper *self,
                                                  GstStateChange transition,
                                                  GstElementClass *parent);

/* ---- flushing and cancellation ---- */

/* TRUE cancels the running request and wakes gst_ovi_helper_wait(); FALSE
 * arms a fresh cancellable. Takes the element's object lock. */
void gst_ovi_helper_set_flushing (GstOviHelper *self, gboolean flushing);
/* With the element's object lock held. */
gboolean gst_ovi_helper_is_flushing (GstOviHelper *self);
/* The cancellable of the next request (a new reference). */
GCancellable *gst_ovi_helper_ref_cancellable (GstOviHelper *self);
/* With the element's object lock held: waits for gst_ovi_helper_wake() or
 * a flush; returns FALSE when flushing. */
gboolean gst_ovi_helper_wait (GstOviHelper *self);
/* With the element's object lock held. */
void gst_ovi_helper_wake (GstOviHelper *self);
/* For a sink event handler: FLUSH_START flushes, FLUSH_STOP unflushes.
 * Does not take `event`. */
void gst_ovi_helper_sink_event (GstOviHelper *self, GstEvent *event);

/* ---- latency ---- */

/* For a LATENCY query upstream has answered: adds `own` (the element's
 * processing time) to the minimum, and to the maximum when it is bounded. */
void gst_ovi_add_latency (GstQuery *query, GstClockTime own);
/* The body of a decoder's GstBaseTransform::query: the "ovi.engine"
 * context query, else `parent`'s handling, after which a LATENCY answer on
 * the source pad gets `*decode_time` added (read under the element's object
 * lock: the time the last clip took). */
gboolean gst_ovi_helper_transform_query (GstOviHelper *self,
                                         GstBaseTransformClass *parent,
                                         GstPadDirection direction,
                                         GstQuery *query,
                                         const GstClockTime *decode_time);

/* ---- context and errors ---- */

/* Answers a GST_QUERY_CONTEXT for "ovi.engine"; FALSE for other queries. */
gboolean gst_ovi_helper_handle_query (GstOviHelper *self, GstQuery *query);
/* The body of GstElement::set_context: takes an "ovi.engine" context, then
 * chains up to `parent`. */
void gst_ovi_helper_set_context (GstOviHelper *self, GstContext *context,
                                 GstElementClass *parent);

/* An engine failure as a flow return: OVI_ERROR_CANCELLED gives
 * GST_FLOW_FLUSHING, anything else posts "`what`: <message>" as an element
 * error and gives GST_FLOW_ERROR. */
GstFlowReturn gst_ovi_helper_flow_error (GstOviHelper *self, const gchar *what,
                                         const GError *error, const gchar *file,
                                         const gchar *func, gint line);
/* Posts an engine GError as GST_ELEMENT_ERROR: `what` says what the element
 * was doing ("Could not load the text encoder"); the GError message (which
 * names the file, tensor or memory) becomes part of the user message. */
void gst_ovi_post_error (GstElement *element, const gchar *what,
                         const GError *error, const gchar *file,
                         const gchar *func, gint line);
#define GST_OVI_POST_ERROR(el, what, err)                                      \
  gst_ovi_post_error (GST_ELEMENT (el), what, err, __FILE__, GST_FUNCTION,     \
                      __LINE__)

#define GST_OVI_HELPER_FLOW_ERROR(helper, what, err)                           \
  gst_ovi_helper_flow_error (helper, what, err, __FILE__, GST_FUNCTION,        \
                             __LINE__)

G_END_DECLS
