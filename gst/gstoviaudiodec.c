/* SPDX-License-Identifier: LGPL-2.1-or-later */
/**
 * SECTION:element-oviaudiodec
 * @title: oviaudiodec
 *
 * Decodes the audio latent of each application/x-ovi-latent buffer with the
 * MMAudio VAE and the BigVGAN vocoder into F32 mono at 16 kHz, pushed in
 * buffers of `buffer-duration`.
 *
 * A/V rule (docs/av-sync.md): the vocoder makes L * 512 samples; the clip is
 * trimmed or padded with silence at its end to the samples of the global
 * 16 kHz grid that fall within the clip's video frames, and sample n of the
 * stream is stamped n / 16000 s. Both streams start every clip at the same
 * boundary (within half a sample), however many clips follow. A continued
 * clip (ovidenoise continuation=last-frame) starts after the samples under
 * its first frame, which is not shown again.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 -e ovitextsrc prompt="Rain on a tin roof." ! ovidenoise ! \
 *   oviaudiodec ! audioconvert ! wavenc ! filesink location=rain.wav
 * ]|
 *
 * Base class: GstBaseTransform with submit_input_buffer + generate_output:
 * submitting a latent decodes the clip's samples, and each generate_output
 * hands out the next buffer of them, from downstream's buffer pool when the
 * ALLOCATION query offers one.
 */
#include "gstoviaudiodec.h"

#include <gst/audio/audio.h>
#include <string.h>

#include "gstovicaps.h"
#include "gstovihelper.h"
#include "gstovitensor.h"
#include "gstoviutil.h"

GST_DEBUG_CATEGORY_STATIC (gst_ovi_audio_dec_debug);
#define GST_CAT_DEFAULT gst_ovi_audio_dec_debug

#define DEFAULT_BUFFER_DURATION (20 * GST_MSECOND)

enum {
  PROP_BUFFER_DURATION = GST_OVI_PROP_LAST,
};

struct _GstOviAudioDec {
  GstBaseTransform parent;

  GstOviHelper *helper; /* common properties, stage, flushing, context */

  /* settings, under the object lock */
  guint64 buffer_duration;

  /* negotiated */
  gint audio_length, audio_channels, frames;

  /* the clip being pushed */
  OviTensor *samples;   /* the vocoder's, F32 host */
  guint64 first_sample; /* global index of the clip's first sample */
  guint64 n_samples;    /* the clip's share of the grid */
  guint64 skip;         /* vocoder samples under frames shown already */
  guint64 pos;          /* samples of the clip pushed */
  gboolean discont;

  /* under the object lock */
  GstClockTime decode_time; /* of the last clip: the latency added */
};

#define gst_ovi_audio_dec_parent_class parent_class
G_DEFINE_TYPE (GstOviAudioDec, gst_ovi_audio_dec, GST_TYPE_BASE_TRANSFORM);
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

  if (gst_ovi_helper_set_property (self->helper, prop_id, value))
    return;
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_BUFFER_DURATION:
      self->buffer_duration = g_value_get_uint64 (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_ovi_audio_dec_get_property (GObject *object, guint prop_id, GValue *value,
                                GParamSpec *pspec)
{
  GstOviAudioDec *self = GST_OVI_AUDIO_DEC (object);

  if (gst_ovi_helper_get_property (self->helper, prop_id, value))
    return;
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_BUFFER_DURATION:
      g_value_set_uint64 (value, self->buffer_duration);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* ---- caps ---- */

static GstCaps *
gst_ovi_audio_dec_transform_caps (GstBaseTransform *trans,
                                  GstPadDirection direction, GstCaps *caps,
                                  GstCaps *filter)
{
  GstCaps *res = gst_static_pad_template_get_caps (
      direction == GST_PAD_SINK ? &src_template : &sink_template);

  return gst_ovi_caps_filter (res, filter);
}

static gboolean
gst_ovi_audio_dec_set_caps (GstBaseTransform *trans, GstCaps *incaps,
                            GstCaps *outcaps)
{
  GstOviAudioDec *self = GST_OVI_AUDIO_DEC (trans);
  const GstStructure *s = gst_caps_get_structure (incaps, 0);

  if (!gst_structure_get (s, "audio-length", G_TYPE_INT, &self->audio_length,
                          "audio-channels", G_TYPE_INT, &self->audio_channels,
                          "frames", G_TYPE_INT, &self->frames, NULL)) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
                       ("Latent caps without the audio fields"),
                       ("%" GST_PTR_FORMAT, incaps));
    return FALSE;
  }
  return TRUE;
}

/* samples per output buffer (object lock held) */
static guint64
chunk_samples (GstOviAudioDec *self)
{
  return MAX (gst_util_uint64_scale_round (self->buffer_duration,
                                           GST_OVI_AUDIO_RATE, GST_SECOND),
              1);
}

/* Downstream's pool, sized for buffer-duration buffers (the base class
 * configures and keeps it). */
static gboolean
gst_ovi_audio_dec_decide_allocation (GstBaseTransform *trans, GstQuery *query)
{
  GstOviAudioDec *self = GST_OVI_AUDIO_DEC (trans);
  GstBufferPool *pool = NULL;
  guint size, min, max, want;

  GST_OBJECT_LOCK (self);
  want = (guint) (chunk_samples (self) * sizeof (float));
  GST_OBJECT_UNLOCK (self);
  if (gst_query_get_n_allocation_pools (query) > 0) {
    gst_query_parse_nth_allocation_pool (query, 0, &pool, &size, &min, &max);
    gst_query_set_nth_allocation_pool (query, 0, pool, MAX (size, want), min,
                                       max);
    gst_clear_object (&pool);
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)
      ->decide_allocation (trans, query);
}

/* A buffer of `bytes` from the decided pool when its buffers are big
 * enough (buffer-duration may have grown since), else from the decided
 * allocator. */
static GstBuffer *
new_output (GstOviAudioDec *self, gsize bytes)
{
  GstBaseTransform *trans = GST_BASE_TRANSFORM (self);
  GstBufferPool *pool = gst_base_transform_get_buffer_pool (trans);
  GstAllocator *allocator = NULL;
  GstAllocationParams params;
  GstBuffer *out = NULL;
  guint size = 0;

  if (pool) {
    GstStructure *config = gst_buffer_pool_get_config (pool);
    gst_buffer_pool_config_get_params (config, NULL, &size, NULL, NULL);
    gst_structure_free (config);
    if (bytes <= size
        && (gst_buffer_pool_is_active (pool)
            || gst_buffer_pool_set_active (pool, TRUE))
        && gst_buffer_pool_acquire_buffer (pool, &out, NULL) == GST_FLOW_OK)
      gst_buffer_resize (out, 0, bytes);
    gst_object_unref (pool);
  }
  if (!out) {
    gst_base_transform_get_allocator (trans, &allocator, &params);
    out = gst_buffer_new_allocate (allocator, bytes, &params);
    g_clear_object (&allocator);
  }
  return out;
}

/* ---- decoding ---- */

static GstFlowReturn
decode_clip (GstOviAudioDec *self, GstBuffer *buf)
{
  GstOviEngine *engine
      = gst_ovi_helper_get_engine (self->helper, GST_OVI_STAGE_AUDIO);
  const int64_t shape[2] = { self->audio_length, self->audio_channels };
  g_autoptr (OviTensor) latent = NULL;
  g_autoptr (OviTensor) wav = NULL;
  g_autoptr (GCancellable) cancellable = NULL;
  g_autoptr (GError) err = NULL;
  gint64 t0;

  latent = gst_ovi_buffer_map_tensor (buf, 1, 2, shape, &err);
  if (!latent) {
    GST_ELEMENT_ERROR (self, STREAM, FORMAT,
                       ("oviaudiodec takes the latents of ovidenoise"),
                       ("%s", err->message));
    return GST_FLOW_ERROR;
  }
  cancellable = gst_ovi_helper_ref_cancellable (self->helper);
  t0 = g_get_monotonic_time ();
  wav = ovi_audio_decoder_decode (
      ovi_stage_get_audio_decoder (gst_ovi_engine_get_stage (engine)), latent,
      cancellable, &err);
  if (wav)
    self->samples = gst_ovi_tensor_host_f32 (wav, &err);
  if (!self->samples)
    return GST_OVI_HELPER_FLOW_ERROR (self->helper, "Audio decoding failed",
                                      err);
  GST_OBJECT_LOCK (self);
  self->decode_time = (g_get_monotonic_time () - t0) * GST_USECOND;
  GST_OBJECT_UNLOCK (self);
  return GST_FLOW_OK;
}

/* A continued clip (continuation=last-frame) starts with frames shown
 * already as the previous clip's last ones: the samples under them on the
 * grid, the clip's first ones, are dropped so that the rest meets the
 * frames shown (docs/elements.md, "Continuous clips"). */
static guint64
shared_samples (GstBuffer *buf, guint64 first_frame)
{
  GstStructure *meta = gst_ovi_buffer_get_clip_meta (buf);
  guint shared = 0;

  if (!meta || !gst_structure_get_uint (meta, "shared-frames", &shared)
      || shared == 0 || shared > first_frame)
    return 0;
  return (
      guint64) (ovi_clip_audio_start ((int64_t) first_frame, 1)
                - ovi_clip_audio_start ((int64_t) (first_frame - shared), 1));
}

/* the clip's share of the global sample grid (docs/av-sync.md) */
static void
place_clip (GstOviAudioDec *self, GstBuffer *buf)
{
  guint64 first_frame = GST_BUFFER_OFFSET (buf) != GST_BUFFER_OFFSET_NONE
                            ? GST_BUFFER_OFFSET (buf)
                            : 0;
  guint64 frames = self->frames;

  if (GST_BUFFER_OFFSET_END (buf) != GST_BUFFER_OFFSET_NONE
      && GST_BUFFER_OFFSET_END (buf) > first_frame)
    frames = GST_BUFFER_OFFSET_END (buf) - first_frame;
  /* the engine's rule with one-frame clips: frame f starts clip f */
  self->first_sample
      = (guint64) ovi_clip_audio_start ((int64_t) first_frame, 1);
  self->n_samples
      = (guint64) ovi_clip_audio_start ((int64_t) (first_frame + frames), 1)
        - self->first_sample;
  self->pos = 0;
  self->skip = shared_samples (buf, first_frame);
  GST_DEBUG_OBJECT (self,
                    "clip frames [%" G_GUINT64_FORMAT ", +%" G_GUINT64_FORMAT
                    "): %" G_GINT64_FORMAT
                    " vocoder samples, %" G_GUINT64_FORMAT
                    " skipped -> %" G_GUINT64_FORMAT,
                    first_frame, frames, ovi_tensor_numel (self->samples),
                    self->skip, self->n_samples);
}

static GstFlowReturn
gst_ovi_audio_dec_submit_input_buffer (GstBaseTransform *trans,
                                       gboolean is_discont, GstBuffer *buf)
{
  GstOviAudioDec *self = GST_OVI_AUDIO_DEC (trans);
  GstFlowReturn ret;

  ret = GST_BASE_TRANSFORM_CLASS (parent_class)
            ->submit_input_buffer (trans, is_discont, buf);
  if (ret != GST_FLOW_OK || !trans->queued_buf)
    return ret;
  buf = g_steal_pointer (&trans->queued_buf);
  g_clear_pointer (&self->samples, ovi_tensor_unref);
  ret = decode_clip (self, buf);
  if (ret == GST_FLOW_OK)
    place_clip (self, buf);
  gst_buffer_unref (buf);
  return ret;
}

/* samples [from, from + len) of the clip, silence past the vocoder's end */
static void
copy_samples (GstOviAudioDec *self, guint64 from, guint64 len, guint8 *dst)
{
  const float *data = ovi_tensor_data (self->samples);
  guint64 have = (guint64) ovi_tensor_numel (self->samples);
  guint64 copy = from < have ? MIN (len, have - from) : 0;

  memcpy (dst, data + from, copy * sizeof (float));
  memset (dst + copy * sizeof (float), 0, (len - copy) * sizeof (float));
}

static GstFlowReturn
gst_ovi_audio_dec_generate_output (GstBaseTransform *trans, GstBuffer **outbuf)
{
  GstOviAudioDec *self = GST_OVI_AUDIO_DEC (trans);
  guint64 chunk, len, s;
  GstBuffer *out;
  GstMapInfo map;

  *outbuf = NULL;
  if (!self->samples || self->pos >= self->n_samples) {
    g_clear_pointer (&self->samples, ovi_tensor_unref);
    return GST_FLOW_OK;
  }
  GST_OBJECT_LOCK (self);
  chunk = chunk_samples (self);
  GST_OBJECT_UNLOCK (self);
  len = MIN (chunk, self->n_samples - self->pos);

  out = new_output (self, len * sizeof (float));
  if (!out || !gst_buffer_map (out, &map, GST_MAP_WRITE)) {
    g_clear_pointer (&out, gst_buffer_unref);
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED,
                       ("Could not allocate an output buffer"), (NULL));
    return GST_FLOW_ERROR;
  }
  copy_samples (self, self->skip + self->pos, len, map.data);
  gst_buffer_unmap (out, &map);

  s = self->first_sample + self->pos;
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
  self->pos += len;
  *outbuf = out;
  return GST_FLOW_OK;
}

/* Never called (generate_output makes the output). Its presence tells the
 * base class that output buffers are new ones, not the input passed through,
 * so it decides allocation with downstream. */
static GstFlowReturn
gst_ovi_audio_dec_transform (GstBaseTransform *trans, GstBuffer *in,
                             GstBuffer *out)
{
  return GST_FLOW_NOT_SUPPORTED;
}

/* ---- events, queries, states ---- */

static gboolean
gst_ovi_audio_dec_sink_event (GstBaseTransform *trans, GstEvent *event)
{
  GstOviAudioDec *self = GST_OVI_AUDIO_DEC (trans);

  gst_ovi_helper_sink_event (self->helper, event);
  if (GST_EVENT_TYPE (event) == GST_EVENT_FLUSH_STOP) {
    g_clear_pointer (&self->samples, ovi_tensor_unref);
    self->discont = TRUE;
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}

static gboolean
gst_ovi_audio_dec_query (GstBaseTransform *trans, GstPadDirection direction,
                         GstQuery *query)
{
  GstOviAudioDec *self = GST_OVI_AUDIO_DEC (trans);

  /* a clip's samples leave one decode after its latent came */
  return gst_ovi_helper_transform_query (
      self->helper, GST_BASE_TRANSFORM_CLASS (parent_class), direction, query,
      &self->decode_time);
}

static void
gst_ovi_audio_dec_set_context (GstElement *element, GstContext *context)
{
  GstOviAudioDec *self = GST_OVI_AUDIO_DEC (element);

  gst_ovi_helper_set_context (self->helper, context,
                              GST_ELEMENT_CLASS (parent_class));
}

static gboolean
gst_ovi_audio_dec_start (GstBaseTransform *trans)
{
  GstOviAudioDec *self = GST_OVI_AUDIO_DEC (trans);

  if (!gst_ovi_helper_start (self->helper, GST_OVI_STAGE_AUDIO))
    return FALSE;
  self->discont = FALSE;
  return TRUE;
}

static gboolean
gst_ovi_audio_dec_stop (GstBaseTransform *trans)
{
  GstOviAudioDec *self = GST_OVI_AUDIO_DEC (trans);

  g_clear_pointer (&self->samples, ovi_tensor_unref);
  return TRUE;
}

static GstStateChangeReturn
gst_ovi_audio_dec_change_state (GstElement *element, GstStateChange transition)
{
  return gst_ovi_helper_change_state (GST_OVI_AUDIO_DEC (element)->helper,
                                      transition,
                                      GST_ELEMENT_CLASS (parent_class));
}

static void
gst_ovi_audio_dec_finalize (GObject *object)
{
  GstOviAudioDec *self = GST_OVI_AUDIO_DEC (object);

  g_clear_pointer (&self->samples, ovi_tensor_unref);
  gst_clear_object (&self->helper);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
install_properties (GObjectClass *gobject_class)
{
  gst_ovi_helper_install_properties (gobject_class);
  /**
   * GstOviAudioDec:buffer-duration:
   *
   * Duration of each output buffer in nanoseconds; the last buffer of a clip
   * may be shorter.
   */
  g_object_class_install_property (
      gobject_class, PROP_BUFFER_DURATION,
      g_param_spec_uint64 (
          "buffer-duration", "Buffer duration",
          "Duration of each output buffer in nanoseconds (the last buffer "
          "of a clip may be shorter)",
          GST_MSECOND, GST_SECOND, DEFAULT_BUFFER_DURATION,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_PLAYING));
}

static void
gst_ovi_audio_dec_class_init (GstOviAudioDecClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);

  gobject_class->set_property = gst_ovi_audio_dec_set_property;
  gobject_class->get_property = gst_ovi_audio_dec_get_property;
  gobject_class->finalize = gst_ovi_audio_dec_finalize;
  install_properties (gobject_class);

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (
      element_class, "Ovi audio decoder", "Filter/Converter/Audio",
      "Decodes Ovi audio latents into 16 kHz mono audio with the MMAudio VAE "
      "and the BigVGAN vocoder",
      GST_OVI_AUTHOR);
  element_class->change_state = gst_ovi_audio_dec_change_state;
  element_class->set_context = gst_ovi_audio_dec_set_context;

  trans_class->transform_caps = gst_ovi_audio_dec_transform_caps;
  trans_class->set_caps = gst_ovi_audio_dec_set_caps;
  trans_class->decide_allocation = gst_ovi_audio_dec_decide_allocation;
  trans_class->submit_input_buffer = gst_ovi_audio_dec_submit_input_buffer;
  trans_class->generate_output = gst_ovi_audio_dec_generate_output;
  trans_class->transform = gst_ovi_audio_dec_transform;
  trans_class->sink_event = gst_ovi_audio_dec_sink_event;
  trans_class->query = gst_ovi_audio_dec_query;
  trans_class->start = gst_ovi_audio_dec_start;
  trans_class->stop = gst_ovi_audio_dec_stop;
}

static void
gst_ovi_audio_dec_init (GstOviAudioDec *self)
{
  self->helper = gst_ovi_helper_new (GST_ELEMENT (self));
  self->buffer_duration = DEFAULT_BUFFER_DURATION;
}
