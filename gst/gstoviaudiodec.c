/* gst-ovi: oviaudiodec.
 *
 * SECTION:element-oviaudiodec
 *
 * Decodes the audio latent of each application/x-ovi-latent buffer with the
 * MMAudio VAE and the BigVGAN vocoder into F32 mono at 16 kHz, pushed in
 * buffers of `buffer-duration`.
 *
 * A/V rule (docs/av-sync.md): the vocoder makes L * 512 samples; the clip is
 * trimmed or padded with silence at its end to the samples of the global
 * 16 kHz grid that fall within the clip's video frames, and sample n of the
 * stream is stamped n / 16000 s. Both streams start every clip at the same
 * boundary (within half a sample), however many clips follow.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 -e ovitextsrc prompt="Rain on a tin roof." ! ovidenoise ! \
 *   oviaudiodec ! audioconvert ! wavenc ! filesink location=rain.wav
 * ]|
 *
 * Base class: a plain GstElement with a chain function pushing many small
 * buffers per latent buffer (one clip).
 */
#include "gstoviaudiodec.h"

#include <gst/audio/audio.h>
#include <string.h>

#include "gstovicaps.h"
#include "gstovielement.h"
#include "gstoviutil.h"

GST_DEBUG_CATEGORY_STATIC (gst_ovi_audio_dec_debug);
#define GST_CAT_DEFAULT gst_ovi_audio_dec_debug

#define DEFAULT_BUFFER_DURATION (20 * GST_MSECOND)

enum {
  PROP_BUFFER_DURATION = GST_OVI_PROP_LAST,
};

struct _GstOviAudioDec {
  GstElement parent;

  GstPad *sinkpad, *srcpad;

  /* settings, under the object lock */
  GstOviEngineConfig config;
  guint64 buffer_duration;
  gboolean flushing;
  GCancellable *cancellable;

  /* streaming state */
  GstOviEngineCache *cache;
  GstOviEngine *engine;
  gchar *engine_config;
  gint audio_length, audio_channels, frames;
  gboolean caps_sent;
  gboolean discont;
  GstEvent *pending_segment; /* held until our caps are out */
};

#define gst_ovi_audio_dec_parent_class parent_class
G_DEFINE_TYPE (GstOviAudioDec, gst_ovi_audio_dec, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE (
    oviaudiodec, "oviaudiodec", GST_RANK_NONE, GST_TYPE_OVI_AUDIO_DEC,
    GST_DEBUG_CATEGORY_INIT (gst_ovi_audio_dec_debug, "oviaudiodec", 0,
                             "ovi MMAudio VAE + BigVGAN audio decoder"));

static GstStaticPadTemplate sink_template
    = GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK, GST_PAD_ALWAYS,
                               GST_STATIC_CAPS (GST_OVI_LATENT_CAPS));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE (
    "src", GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS ("audio/x-raw, format = (string) F32LE, "
                     "layout = (string) interleaved, rate = (int) 16000, "
                     "channels = (int) 1"));

static void
gst_ovi_audio_dec_set_property (GObject *object, guint prop_id,
                                const GValue *value, GParamSpec *pspec)
{
  GstOviAudioDec *self = GST_OVI_AUDIO_DEC (object);

  GST_OBJECT_LOCK (self);
  if (!gst_ovi_engine_config_set_property (&self->config, prop_id, value)) {
    switch (prop_id) {
      case PROP_BUFFER_DURATION:
        self->buffer_duration = g_value_get_uint64 (value);
        break;
      default:
        G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
        break;
    }
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_ovi_audio_dec_get_property (GObject *object, guint prop_id, GValue *value,
                                GParamSpec *pspec)
{
  GstOviAudioDec *self = GST_OVI_AUDIO_DEC (object);

  GST_OBJECT_LOCK (self);
  if (!gst_ovi_engine_config_get_property (&self->config, prop_id, value)) {
    switch (prop_id) {
      case PROP_BUFFER_DURATION:
        g_value_set_uint64 (value, self->buffer_duration);
        break;
      default:
        G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
        break;
    }
  }
  GST_OBJECT_UNLOCK (self);
}

static gboolean
acquire_engine (GstOviAudioDec *self)
{
  return gst_ovi_element_acquire_engine (
      GST_ELEMENT (self), &self->config, GST_OVI_STAGE_AUDIO,
      "Could not load the audio decoder", &self->cache, &self->engine,
      &self->engine_config);
}

static GstFlowReturn
gst_ovi_audio_dec_chain (GstPad *pad, GstObject *parent, GstBuffer *buf)
{
  GstOviAudioDec *self = GST_OVI_AUDIO_DEC (parent);
  GstMemory *mem;
  GstMapInfo map;
  int64_t shape[2], stride[2];
  OviDevice cpu = { OVI_DEVICE_CPU, 0 };
  OviStorage *st;
  g_autoptr (OviTensor) latent = NULL;
  g_autoptr (OviTensor) wav = NULL;
  g_autoptr (OviTensor) wav32 = NULL;
  g_autoptr (GError) err = NULL;
  GCancellable *cancellable;
  guint64 first_frame, first_sample, n_samples, chunk, n, have;
  guint frames;
  const float *data;
  GstFlowReturn ret = GST_FLOW_OK;

  if (!self->engine) {
    gst_buffer_unref (buf);
    return GST_FLOW_FLUSHING;
  }
  if (self->audio_length <= 0 || gst_buffer_n_memory (buf) != 2) {
    GST_ELEMENT_ERROR (self, STREAM, FORMAT,
                       ("oviaudiodec takes the latents of ovidenoise"),
                       ("%u memories", gst_buffer_n_memory (buf)));
    gst_buffer_unref (buf);
    return GST_FLOW_ERROR;
  }
  if (!self->caps_sent) {
    GstCaps *caps = gst_pad_get_pad_template_caps (self->srcpad);
    gboolean ok = gst_pad_push_event (self->srcpad, gst_event_new_caps (caps));
    gst_caps_unref (caps);
    if (!ok) {
      gst_buffer_unref (buf);
      GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
                         ("Downstream does not take F32LE mono 16 kHz audio"),
                         (NULL));
      return GST_FLOW_NOT_NEGOTIATED;
    }
    self->caps_sent = TRUE;
    if (self->pending_segment)
      gst_pad_push_event (self->srcpad,
                          g_steal_pointer (&self->pending_segment));
  }

  mem = gst_buffer_peek_memory (buf, 1);
  if (!gst_memory_map (mem, &map, GST_MAP_READ)) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, STREAM, DECODE, ("Could not map the latent"),
                       (NULL));
    return GST_FLOW_ERROR;
  }
  shape[0] = self->audio_length;
  shape[1] = self->audio_channels;
  if (map.size != (gsize) (shape[0] * shape[1] * 4)) {
    gst_memory_unmap (mem, &map);
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, STREAM, FORMAT,
                       ("The audio latent has %" G_GSIZE_FORMAT
                        " bytes, the caps say "
                        "[%d, %d] F32",
                        map.size, self->audio_length, self->audio_channels),
                       (NULL));
    return GST_FLOW_ERROR;
  }
  st = ovi_storage_new_wrapped (map.data, map.size, cpu, NULL, NULL);
  ovi_contiguous_strides (2, shape, stride);
  latent = ovi_tensor_new_on_storage (st, 0, OVI_DTYPE_F32, 2, shape, stride);
  ovi_storage_unref (st);

  GST_OBJECT_LOCK (self);
  cancellable = self->cancellable ? g_object_ref (self->cancellable) : NULL;
  chunk = gst_util_uint64_scale_round (self->buffer_duration,
                                       GST_OVI_AUDIO_RATE, GST_SECOND);
  GST_OBJECT_UNLOCK (self);
  chunk = MAX (chunk, 1);

  g_mutex_lock (&self->engine->lock);
  wav = ovi_audio_decoder_decode (self->engine->u.audio, latent, cancellable,
                                  &err);
  g_mutex_unlock (&self->engine->lock);
  g_clear_object (&cancellable);
  g_clear_pointer (&latent, ovi_tensor_unref);
  gst_memory_unmap (mem, &map);
  if (!wav) {
    gst_buffer_unref (buf);
    if (g_error_matches (err, OVI_ERROR, OVI_ERROR_CANCELLED))
      return GST_FLOW_FLUSHING;
    GST_OVI_POST_ERROR (self, "Audio decoding failed", err);
    return GST_FLOW_ERROR;
  }
  wav32 = ovi_tensor_to_f32 (wav, &err);
  if (!wav32) {
    gst_buffer_unref (buf);
    GST_OVI_POST_ERROR (self, "Audio decoding failed", err);
    return GST_FLOW_ERROR;
  }

  /* the clip's share of the global sample grid (docs/av-sync.md) */
  frames = self->frames;
  first_frame = GST_BUFFER_OFFSET (buf) != GST_BUFFER_OFFSET_NONE
                    ? GST_BUFFER_OFFSET (buf)
                    : 0;
  if (GST_BUFFER_OFFSET_END (buf) != GST_BUFFER_OFFSET_NONE
      && GST_BUFFER_OFFSET_END (buf) > first_frame)
    frames = GST_BUFFER_OFFSET_END (buf) - first_frame;
  /* the engine's rule with one-frame clips: frame f starts clip f */
  first_sample = (guint64) ovi_clip_audio_start ((int64_t) first_frame, 1);
  n_samples
      = (guint64) ovi_clip_audio_start ((int64_t) (first_frame + frames), 1)
        - first_sample;
  have = (guint64) ovi_tensor_numel (wav32);
  data = ovi_tensor_data (wav32);
  GST_DEBUG_OBJECT (self,
                    "clip frames [%" G_GUINT64_FORMAT
                    ", +%u): %" G_GUINT64_FORMAT
                    " vocoder samples -> %" G_GUINT64_FORMAT,
                    first_frame, frames, have, n_samples);
  if (GST_BUFFER_FLAG_IS_SET (buf, GST_BUFFER_FLAG_DISCONT))
    self->discont = TRUE;
  gst_buffer_unref (buf);

  for (n = 0; n < n_samples && ret == GST_FLOW_OK; n += chunk) {
    guint64 len = MIN (chunk, n_samples - n), s = first_sample + n;
    GstBuffer *out = gst_buffer_new_allocate (NULL, len * sizeof (float), NULL);
    GstMapInfo om;

    gst_buffer_map (out, &om, GST_MAP_WRITE);
    if (n + len <= have) {
      memcpy (om.data, data + n, len * sizeof (float));
    } else {
      guint64 copy = n < have ? have - n : 0;
      memcpy (om.data, data + n, copy * sizeof (float));
      memset (om.data + copy * sizeof (float), 0,
              (len - copy) * sizeof (float));
    }
    gst_buffer_unmap (out, &om);
    GST_BUFFER_PTS (out)
        = gst_util_uint64_scale (s, GST_SECOND, GST_OVI_AUDIO_RATE);
    GST_BUFFER_DURATION (out)
        = gst_util_uint64_scale (s + len, GST_SECOND, GST_OVI_AUDIO_RATE)
          - GST_BUFFER_PTS (out);
    GST_BUFFER_OFFSET (out) = s;
    GST_BUFFER_OFFSET_END (out) = s + len;
    if (self->discont) {
      GST_BUFFER_FLAG_SET (out, GST_BUFFER_FLAG_DISCONT);
      self->discont = FALSE;
    }
    GST_OBJECT_LOCK (self);
    if (self->flushing)
      ret = GST_FLOW_FLUSHING;
    GST_OBJECT_UNLOCK (self);
    if (ret != GST_FLOW_OK) {
      gst_buffer_unref (out);
      break;
    }
    ret = gst_pad_push (self->srcpad, out);
  }
  return ret;
}

static void
set_flushing (GstOviAudioDec *self, gboolean flushing)
{
  gst_ovi_element_set_flushing (GST_ELEMENT (self), flushing, &self->flushing,
                                &self->cancellable, NULL);
}

static gboolean
gst_ovi_audio_dec_sink_event (GstPad *pad, GstObject *parent, GstEvent *event)
{
  GstOviAudioDec *self = GST_OVI_AUDIO_DEC (parent);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS: {
      GstCaps *caps;
      const GstStructure *s;
      gint l = 0, c = 0, f = 0;
      gst_event_parse_caps (event, &caps);
      s = gst_caps_get_structure (caps, 0);
      if (!gst_structure_get (s, "audio-length", G_TYPE_INT, &l,
                              "audio-channels", G_TYPE_INT, &c, "frames",
                              G_TYPE_INT, &f, NULL)) {
        GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
                           ("Latent caps without the audio fields"),
                           ("%" GST_PTR_FORMAT, caps));
        gst_event_unref (event);
        return FALSE;
      }
      self->audio_length = l;
      self->audio_channels = c;
      self->frames = f;
      gst_event_unref (event);
      return TRUE;
    }
    default:
      break;
  }
  return gst_ovi_element_sink_event (pad, parent, event, self->srcpad,
                                     &self->pending_segment, &self->discont,
                                     &self->flushing, &self->cancellable, NULL);
}

static gboolean
gst_ovi_audio_dec_query (GstPad *pad, GstObject *parent, GstQuery *query)
{
  GstOviAudioDec *self = GST_OVI_AUDIO_DEC (parent);

  return gst_ovi_element_pad_query (pad, parent, query, self->cache);
}

static void
gst_ovi_audio_dec_set_context (GstElement *element, GstContext *context)
{
  GstOviAudioDec *self = GST_OVI_AUDIO_DEC (element);

  gst_ovi_element_set_context (element, context, &self->cache,
                               GST_ELEMENT_CLASS (parent_class));
}

static GstStateChangeReturn
gst_ovi_audio_dec_change_state (GstElement *element, GstStateChange transition)
{
  GstOviAudioDec *self = GST_OVI_AUDIO_DEC (element);
  GstStateChangeReturn ret;

  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      if (!acquire_engine (self))
        return GST_STATE_CHANGE_FAILURE;
      set_flushing (self, FALSE);
      self->caps_sent = FALSE;
      self->discont = FALSE;
      gst_event_replace (&self->pending_segment, NULL);
      self->audio_length = 0;
      break;
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      set_flushing (self, TRUE);
      break;
    default:
      break;
  }
  ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
  if (transition == GST_STATE_CHANGE_READY_TO_NULL)
    gst_ovi_element_release_engine (&self->engine, &self->engine_config);
  return ret;
}

static void
gst_ovi_audio_dec_finalize (GObject *object)
{
  GstOviAudioDec *self = GST_OVI_AUDIO_DEC (object);

  gst_ovi_element_clear_engine (&self->engine, &self->engine_config,
                                &self->cache, &self->config);
  g_clear_object (&self->cancellable);
  gst_event_replace (&self->pending_segment, NULL);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_ovi_audio_dec_class_init (GstOviAudioDecClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->set_property = gst_ovi_audio_dec_set_property;
  gobject_class->get_property = gst_ovi_audio_dec_get_property;
  gobject_class->finalize = gst_ovi_audio_dec_finalize;

  gst_ovi_engine_install_properties (gobject_class);
  g_object_class_install_property (
      gobject_class, PROP_BUFFER_DURATION,
      g_param_spec_uint64 (
          "buffer-duration", "Buffer duration",
          "Duration of each output buffer in nanoseconds (the last buffer "
          "of a clip may be shorter)",
          GST_MSECOND, GST_SECOND, DEFAULT_BUFFER_DURATION,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_PLAYING));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (
      element_class, "Ovi audio decoder", "Filter/Converter/Audio",
      "Decodes Ovi audio latents into 16 kHz mono audio with the MMAudio VAE "
      "and the BigVGAN vocoder",
      "gst-ovi developers");
  element_class->change_state = gst_ovi_audio_dec_change_state;
  element_class->set_context = gst_ovi_audio_dec_set_context;
}

static void
gst_ovi_audio_dec_init (GstOviAudioDec *self)
{
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad, gst_ovi_audio_dec_chain);
  gst_pad_set_event_function (self->sinkpad, gst_ovi_audio_dec_sink_event);
  gst_pad_set_query_function (self->sinkpad, gst_ovi_audio_dec_query);
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);
  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_query_function (self->srcpad, gst_ovi_audio_dec_query);
  gst_pad_use_fixed_caps (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  gst_ovi_engine_config_init (&self->config);
  self->buffer_duration = DEFAULT_BUFFER_DURATION;
}
