/* gst-ovi: the engine handling the ovi elements share.
 *
 * Every ovi element keeps, next to its own settings, the same few fields:
 * the common properties (GstOviEngineConfig, under the object lock), the
 * engine cache, the acquired stage and the config string it was loaded
 * with, and (for the elements that run requests) a flushing flag with a
 * GCancellable. These helpers do what each element did with them: acquire
 * and release the stage, flush, answer the "ovi.engine" context query and
 * take a context. They work on the element's own fields, passed by
 * pointer, so each element keeps its struct, class_init and debug category.
 */
#pragma once

#include <gst/gst.h>

#include "gstoviengine-cache.h"

G_BEGIN_DECLS

/* Loads (or reuses) `stage` for `element` with the common properties in
 * `settings` (read under the element's object lock). A stage loaded with
 * other settings is released first. On failure posts an element error
 * starting with `what` ("Could not load the audio decoder") and returns
 * FALSE. */
gboolean gst_ovi_element_acquire_engine (GstElement *element,
                                         const GstOviEngineConfig *settings,
                                         GstOviStage stage, const gchar *what,
                                         GstOviEngineCache **cache,
                                         GstOviEngine **engine,
                                         gchar **engine_key);

/* READY->NULL: lets go of the stage (idle weights go when no element holds
 * them). */
void gst_ovi_element_release_engine (GstOviEngine **engine, gchar **engine_key);

/* finalize: releases the stage and frees the cache reference and the
 * common properties. */
void gst_ovi_element_clear_engine (GstOviEngine **engine, gchar **engine_key,
                                   GstOviEngineCache **cache,
                                   GstOviEngineConfig *settings);

/* Under the object lock: flushing = TRUE cancels the running request (and
 * wakes `cond` if not NULL); FALSE arms a fresh cancellable if the old one
 * was used up. */
void gst_ovi_element_set_flushing (GstElement *element, gboolean flushing,
                                   gboolean *flushing_field,
                                   GCancellable **cancellable, GCond *cond);

/* The sink events the ovi filters treat alike, for their sink event
 * function to call after its own CAPS handling: FLUSH_START flushes (see
 * gst_ovi_element_set_flushing), FLUSH_STOP unflushes and sets *discont, a
 * SEGMENT that comes before `srcpad` has caps is held in *pending_segment
 * (the element pushes it after its caps), EOS drops a held one; the rest
 * goes to the default handler. Takes `event`. */
gboolean gst_ovi_element_sink_event (GstPad *pad, GstObject *parent,
                                     GstEvent *event, GstPad *srcpad,
                                     GstEvent **pending_segment,
                                     gboolean *discont, gboolean *flushing,
                                     GCancellable **cancellable, GCond *cond);

/* The body of a pad query function: answers the "ovi.engine" context query
 * with `cache`, else the default handler. */
gboolean gst_ovi_element_pad_query (GstPad *pad, GstObject *parent,
                                    GstQuery *query, GstOviEngineCache *cache);

/* The body of GstElement::set_context: takes the cache out of an
 * "ovi.engine" context, then chains up to `parent_class`. */
void gst_ovi_element_set_context (GstElement *element, GstContext *context,
                                  GstOviEngineCache **cache,
                                  GstElementClass *parent_class);

G_END_DECLS
