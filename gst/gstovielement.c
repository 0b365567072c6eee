/* gst-ovi: the engine handling the ovi elements share (see gstovielement.h).
 */
#include "gstovielement.h"

gboolean
gst_ovi_element_acquire_engine (GstElement *element,
                                const GstOviEngineConfig *settings,
                                GstOviStage stage, const gchar *what,
                                GstOviEngineCache **cache,
                                GstOviEngine **engine, gchar **engine_key)
{
  GstOviEngineConfig config;
  g_autofree gchar *key = NULL;
  g_autoptr (GError) err = NULL;
  gboolean ok = TRUE;

  GST_OBJECT_LOCK (element);
  gst_ovi_engine_config_copy (&config, settings);
  GST_OBJECT_UNLOCK (element);
  key = gst_ovi_engine_config_to_string (&config);
  if (*engine && g_strcmp0 (key, *engine_key) != 0)
    g_clear_pointer (engine, gst_ovi_engine_release);
  if (!*engine) {
    gst_ovi_engine_cache_ensure (element, cache);
    *engine
        = gst_ovi_engine_cache_acquire (*cache, stage, &config, element, &err);
    if (*engine) {
      g_free (*engine_key);
      *engine_key = g_steal_pointer (&key);
    } else {
      GST_OVI_POST_ERROR (element, what, err);
      ok = FALSE;
    }
  }
  gst_ovi_engine_config_clear (&config);
  return ok;
}

void
gst_ovi_element_release_engine (GstOviEngine **engine, gchar **engine_key)
{
  g_clear_pointer (engine, gst_ovi_engine_release);
  g_clear_pointer (engine_key, g_free);
}

void
gst_ovi_element_clear_engine (GstOviEngine **engine, gchar **engine_key,
                              GstOviEngineCache **cache,
                              GstOviEngineConfig *settings)
{
  gst_ovi_element_release_engine (engine, engine_key);
  gst_clear_object (cache);
  gst_ovi_engine_config_clear (settings);
}

void
gst_ovi_element_set_flushing (GstElement *element, gboolean flushing,
                              gboolean *flushing_field,
                              GCancellable **cancellable, GCond *cond)
{
  GST_OBJECT_LOCK (element);
  *flushing_field = flushing;
  if (flushing) {
    if (*cancellable)
      g_cancellable_cancel (*cancellable);
    if (cond)
      g_cond_broadcast (cond);
  } else if (!*cancellable || g_cancellable_is_cancelled (*cancellable)) {
    g_clear_object (cancellable);
    *cancellable = g_cancellable_new ();
  }
  GST_OBJECT_UNLOCK (element);
}

gboolean
gst_ovi_element_sink_event (GstPad *pad, GstObject *parent, GstEvent *event,
                            GstPad *srcpad, GstEvent **pending_segment,
                            gboolean *discont, gboolean *flushing,
                            GCancellable **cancellable, GCond *cond)
{
  GstElement *element = GST_ELEMENT (parent);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_FLUSH_START:
      gst_ovi_element_set_flushing (element, TRUE, flushing, cancellable, cond);
      break;
    case GST_EVENT_SEGMENT:
      if (!gst_pad_has_current_caps (srcpad)) {
        gst_event_replace (pending_segment, event);
        gst_event_unref (event);
        return TRUE;
      }
      break;
    case GST_EVENT_EOS:
      gst_event_replace (pending_segment, NULL);
      break;
    case GST_EVENT_FLUSH_STOP:
      gst_ovi_element_set_flushing (element, FALSE, flushing, cancellable,
                                    cond);
      *discont = TRUE;
      break;
    default:
      break;
  }
  return gst_pad_event_default (pad, parent, event);
}

gboolean
gst_ovi_element_pad_query (GstPad *pad, GstObject *parent, GstQuery *query,
                           GstOviEngineCache *cache)
{
  if (gst_ovi_engine_cache_handle_query (GST_ELEMENT (parent), query, cache))
    return TRUE;
  return gst_pad_query_default (pad, parent, query);
}

void
gst_ovi_element_set_context (GstElement *element, GstContext *context,
                             GstOviEngineCache **cache,
                             GstElementClass *parent_class)
{
  GST_OBJECT_LOCK (element);
  gst_ovi_engine_cache_from_context (context, cache);
  GST_OBJECT_UNLOCK (element);
  parent_class->set_context (element, context);
}
