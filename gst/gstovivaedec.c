/* SPDX-License-Identifier: LGPL-2.1-or-later */
/**
 * SECTION:element-ovivaedec
 * @title: ovivaedec
 *
 * Decodes the video latent of each application/x-ovi-latent buffer with the
 * Wan2.2 VAE and pushes the frames as they come out of the causal decoder
 * (1 frame for the first latent frame, then 4 per latent frame), at 24/1.
 * The output format (RGB, RGBA, I420, NV12) is chosen by caps negotiation;
 * with `tile-size` the decode runs in overlapping spatial tiles to save
 * memory.
 *
 * Frame i of the stream (counted over all clips) is stamped i/24 s, so
 * consecutive clips follow each other without gaps and meet the audio of
 * oviaudiodec at every clip boundary (docs/av-sync.md). The first frame
 * after a flush carries DISCONT. Each clip's last frame goes back upstream
 * in an "ovi-last-frame" event for ovidenoise's continuation=last-frame; a
 * continued clip's first frame, shown already as the previous clip's last
 * (shared-frames in its clip meta), is dropped.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 -e ovitextsrc prompt="Waves on a beach." ! ovidenoise ! \
 *   ovivaedec ! videoconvert ! video/x-raw,format=I420 ! x264enc ! \
 *   mp4mux ! filesink location=waves.mp4
 * ]|
 *
 * Base class: GstBaseTransform with submit_input_buffer + generate_output:
 * submitting a latent starts a stepping decode, and each generate_output
 * hands out one frame, decoding the next frame group only when the last one
 * is used up, so frames leave as they are decoded. Output buffers come from
 * the pool decided with downstream in the ALLOCATION query (a video buffer
 * pool, with GstVideoMeta when downstream takes it); a RECONFIGURE from
 * downstream renegotiates before the next frame.
 */
#include "gstovivaedec.h"

#include "ovi-image.h"

#include <gst/video/video.h>

#include "gstovicaps.h"
#include "gstovihelper.h"
#include "gstovitensor.h"
#include "gstoviutil.h"

GST_DEBUG_CATEGORY_STATIC (gst_ovi_vae_dec_debug);
#define GST_CAT_DEFAULT gst_ovi_vae_dec_debug

#define DEFAULT_TILE_SIZE    0
#define DEFAULT_TILE_OVERLAP 8

enum {
  PROP_TILE_SIZE = GST_OVI_PROP_LAST,
  PROP_TILE_OVERLAP,
};

struct _GstOviVaeDec {
  GstBaseTransform parent;

  GstOviHelper *helper; /* common properties, stage, flushing, context */

  /* settings, under the object lock */
  gint tile_size, tile_overlap;

  /* negotiated */
  gint lat_c, lat_f, lat_h, lat_w;
  GstVideoInfo out_info, rgb_info;
  GstVideoConverter *converter; /* RGB -> out_info, NULL for RGB/RGBA */

  /* the clip being decoded */
  OviVideoDecoding *decoding;
  GCancellable *cancellable;
  OviTensor *group; /* [3, n, H, W] host F32, the frames not yet out */
  gint group_first; /* clip index of group's frame 0 */
  gint group_next;  /* next frame of the group to push */
  GstClockTime clip_pts;
  guint64 clip_frame; /* global index of the clip's first frame shown */
  guint64 clip_index; /* its clip meta's clip */
  gint clip_frames;   /* frames the clip decodes to */
  guint clip_shared;  /* its first frames shown already (continuation) */
  gboolean discont;
  gint64 clip_t0; /* when the clip's decode began */

  /* under the object lock */
  GstClockTime decode_time; /* of the last whole clip: the latency added */
};

#define gst_ovi_vae_dec_parent_class parent_class
G_DEFINE_TYPE (GstOviVaeDec, gst_ovi_vae_dec, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE (
    ovivaedec, "ovivaedec", GST_RANK_NONE, GST_TYPE_OVI_VAE_DEC,
    GST_DEBUG_CATEGORY_INIT (gst_ovi_vae_dec_debug, "ovivaedec", 0,
                             "ovi Wan2.2 VAE video decoder"));

#define OUT_FORMATS "{ RGB, RGBA, I420, NV12 }"
#define OUT_CAPS                                                               \
  "video/x-raw, format = (string) " OUT_FORMATS ", "                           \
  "width = (int) [ 16, 65536 ], height = (int) [ 16, 65536 ], "                \
  "framerate = (fraction) 24/1, pixel-aspect-ratio = (fraction) 1/1"

static GstStaticPadTemplate sink_template
    = GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK, GST_PAD_ALWAYS,
                               GST_STATIC_CAPS (GST_OVI_LATENT_CAPS));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE (
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS (OUT_CAPS));

static void
gst_ovi_vae_dec_set_property (GObject *object, guint prop_id,
                              const GValue *value, GParamSpec *pspec)
{
  GstOviVaeDec *self = GST_OVI_VAE_DEC (object);

  if (gst_ovi_helper_set_property (self->helper, prop_id, value))
    return;
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_TILE_SIZE:
      self->tile_size = g_value_get_int (value);
      break;
    case PROP_TILE_OVERLAP:
      self->tile_overlap = g_value_get_int (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_ovi_vae_dec_get_property (GObject *object, guint prop_id, GValue *value,
                              GParamSpec *pspec)
{
  GstOviVaeDec *self = GST_OVI_VAE_DEC (object);

  if (gst_ovi_helper_get_property (self->helper, prop_id, value))
    return;
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_TILE_SIZE:
      g_value_set_int (value, self->tile_size);
      break;
    case PROP_TILE_OVERLAP:
      g_value_set_int (value, self->tile_overlap);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* ---- caps and allocation ---- */

static GstCaps *
gst_ovi_vae_dec_transform_caps (GstBaseTransform *trans,
                                GstPadDirection direction, GstCaps *caps,
                                GstCaps *filter)
{
  GstCaps *res;
  guint i;

  if (direction == GST_PAD_SRC) {
    res = gst_static_pad_template_get_caps (&sink_template);
  } else {
    res = gst_caps_new_empty ();
    for (i = 0; i < gst_caps_get_size (caps); i++) {
      const GstStructure *s = gst_caps_get_structure (caps, i);
      GstCaps *out = gst_static_pad_template_get_caps (&src_template);
      const GValue *w = gst_structure_get_value (s, "width");
      const GValue *h = gst_structure_get_value (s, "height");
      out = gst_caps_make_writable (out);
      if (w)
        gst_caps_set_value (out, "width", w);
      if (h)
        gst_caps_set_value (out, "height", h);
      res = gst_caps_merge (res, out);
    }
  }
  return gst_ovi_caps_filter (res, filter);
}

static gboolean
gst_ovi_vae_dec_set_caps (GstBaseTransform *trans, GstCaps *incaps,
                          GstCaps *outcaps)
{
  GstOviVaeDec *self = GST_OVI_VAE_DEC (trans);
  const GstStructure *s = gst_caps_get_structure (incaps, 0);
  GstVideoInfo info;

  if (!gst_structure_get (s, "video-channels", G_TYPE_INT, &self->lat_c,
                          "video-frames", G_TYPE_INT, &self->lat_f,
                          "video-height", G_TYPE_INT, &self->lat_h,
                          "video-width", G_TYPE_INT, &self->lat_w, NULL)
      || !gst_video_info_from_caps (&info, outcaps)) {
    GST_ELEMENT_ERROR (
        self, CORE, NEGOTIATION, ("Latent caps without the video fields"),
        ("%" GST_PTR_FORMAT " -> %" GST_PTR_FORMAT, incaps, outcaps));
    return FALSE;
  }
  self->out_info = info;
  gst_video_info_set_format (&self->rgb_info, GST_VIDEO_FORMAT_RGB, info.width,
                             info.height);
  GST_VIDEO_INFO_FPS_N (&self->rgb_info) = GST_VIDEO_INFO_FPS_N (&info);
  GST_VIDEO_INFO_FPS_D (&self->rgb_info) = GST_VIDEO_INFO_FPS_D (&info);
  GST_VIDEO_INFO_PAR_N (&self->rgb_info) = GST_VIDEO_INFO_PAR_N (&info);
  GST_VIDEO_INFO_PAR_D (&self->rgb_info) = GST_VIDEO_INFO_PAR_D (&info);
  g_clear_pointer (&self->converter, gst_video_converter_free);
  if (GST_VIDEO_INFO_FORMAT (&info) != GST_VIDEO_FORMAT_RGB
      && GST_VIDEO_INFO_FORMAT (&info) != GST_VIDEO_FORMAT_RGBA)
    self->converter = gst_video_converter_new (&self->rgb_info, &info, NULL);
  GST_INFO_OBJECT (self, "output %" GST_PTR_FORMAT, outcaps);
  return TRUE;
}

/* A video buffer pool of downstream's (or ours), with GstVideoMeta when
 * downstream takes it, so it may ask for padded strides. */
static gboolean
gst_ovi_vae_dec_decide_allocation (GstBaseTransform *trans, GstQuery *query)
{
  GstCaps *caps;
  GstVideoInfo info;
  GstBufferPool *pool = NULL;
  GstStructure *config;
  guint size, min = 0, max = 0;
  gboolean have_pool = gst_query_get_n_allocation_pools (query) > 0;

  gst_query_parse_allocation (query, &caps, NULL);
  if (!caps || !gst_video_info_from_caps (&info, caps))
    return FALSE;
  size = info.size;
  if (have_pool) {
    gst_query_parse_nth_allocation_pool (query, 0, &pool, &size, &min, &max);
    size = MAX (size, info.size);
  }
  if (!pool)
    pool = gst_video_buffer_pool_new ();
  config = gst_buffer_pool_get_config (pool);
  gst_buffer_pool_config_set_params (config, caps, size, min, max);
  if (gst_query_find_allocation_meta (query, GST_VIDEO_META_API_TYPE, NULL)
      && gst_buffer_pool_has_option (pool, GST_BUFFER_POOL_OPTION_VIDEO_META))
    gst_buffer_pool_config_add_option (config,
                                       GST_BUFFER_POOL_OPTION_VIDEO_META);
  if (!gst_buffer_pool_set_config (pool, config)) {
    config = gst_buffer_pool_get_config (pool);
    if (!gst_buffer_pool_config_validate_params (config, caps, size, min, max)
        || !gst_buffer_pool_set_config (pool, config)) {
      gst_object_unref (pool);
      GST_ELEMENT_ERROR (trans, RESOURCE, SETTINGS,
                         ("Could not configure the output buffer pool"),
                         ("%" GST_PTR_FORMAT, caps));
      return FALSE;
    }
  }
  if (have_pool)
    gst_query_set_nth_allocation_pool (query, 0, pool, size, min, max);
  else
    gst_query_add_allocation_pool (query, pool, size, min, max);
  gst_object_unref (pool);
  return GST_BASE_TRANSFORM_CLASS (parent_class)
      ->decide_allocation (trans, query);
}

/* ---- decoding ---- */

static void
clear_clip (GstOviVaeDec *self)
{
  g_clear_pointer (&self->decoding, ovi_video_decoding_free);
  g_clear_pointer (&self->group, ovi_tensor_unref);
  g_clear_object (&self->cancellable);
}

/* the clip's number and the frames it shares with the previous clip */
static void
read_clip_meta (GstOviVaeDec *self, GstBuffer *buf)
{
  GstStructure *meta = gst_ovi_buffer_get_clip_meta (buf);

  self->clip_index = 0;
  self->clip_shared = 0;
  self->clip_frames = (gint) gst_ovi_video_frames_for_latent (self->lat_f);
  if (!meta)
    return;
  gst_structure_get_uint64 (meta, "clip", &self->clip_index);
  gst_structure_get_uint (meta, "shared-frames", &self->clip_shared);
  self->clip_shared = MIN (self->clip_shared, (guint) self->clip_frames);
}

static GstFlowReturn
gst_ovi_vae_dec_submit_input_buffer (GstBaseTransform *trans,
                                     gboolean is_discont, GstBuffer *buf)
{
  GstOviVaeDec *self = GST_OVI_VAE_DEC (trans);
  GstOviEngine *engine
      = gst_ovi_helper_get_engine (self->helper, GST_OVI_STAGE_VIDEO_VAE);
  int64_t shape[4] = { self->lat_c, self->lat_f, self->lat_h, self->lat_w };
  g_autoptr (OviTensor) latent = NULL;
  g_autoptr (GError) err = NULL;
  GstFlowReturn ret;
  gint tile, overlap;

  /* renegotiation and the not-negotiated check; the buffer lands in
   * queued_buf */
  ret = GST_BASE_TRANSFORM_CLASS (parent_class)
            ->submit_input_buffer (trans, is_discont, buf);
  if (ret != GST_FLOW_OK || !trans->queued_buf)
    return ret;
  buf = g_steal_pointer (&trans->queued_buf);
  clear_clip (self);

  latent = gst_ovi_buffer_map_tensor (buf, 0, 4, shape, &err);
  if (!latent) {
    GST_ELEMENT_ERROR (self, STREAM, FORMAT,
                       ("ovivaedec takes the latents of ovidenoise"),
                       ("%s", err->message));
    gst_buffer_unref (buf);
    return GST_FLOW_ERROR;
  }
  self->clip_pts = GST_BUFFER_PTS_IS_VALID (buf) ? GST_BUFFER_PTS (buf) : 0;
  self->clip_frame = GST_BUFFER_OFFSET (buf) != GST_BUFFER_OFFSET_NONE
                         ? GST_BUFFER_OFFSET (buf)
                         : 0;
  read_clip_meta (self, buf);
  gst_buffer_unref (buf);

  GST_OBJECT_LOCK (self);
  tile = self->tile_size;
  overlap = self->tile_overlap;
  GST_OBJECT_UNLOCK (self);
  if (tile == 0) /* the VRAM plan's tiling (ultra-low tiles) */
    ovi_stage_get_vae_tiling (gst_ovi_engine_get_stage (engine), &tile,
                              &overlap);
  self->cancellable = gst_ovi_helper_ref_cancellable (self->helper);
  self->clip_t0 = g_get_monotonic_time ();
  /* this decode's tiling, whatever other users of the stage set */
  self->decoding = ovi_video_vae_decode_begin_tiled (
      ovi_stage_get_video_vae (gst_ovi_engine_get_stage (engine)), latent, tile,
      overlap, &err);
  if (!self->decoding)
    return GST_OVI_HELPER_FLOW_ERROR (self->helper, "Video decoding failed",
                                      err);
  return GST_FLOW_OK;
}

/* frame i of a [3, n, H, W] group into packed RGB or RGBA */
static void
write_rgb (const OviTensor *group, gint i, GstVideoFrame *frame)
{
  ovi_image_frame_to_rgb8 (group, i, GST_VIDEO_FRAME_PLANE_DATA (frame, 0),
                           GST_VIDEO_FRAME_PLANE_STRIDE (frame, 0),
                           GST_VIDEO_FRAME_COMP_PSTRIDE (frame, 0));
}

/* The clip's last frame, in RGB as it is pushed, back upstream to an
 * ovidenoise with continuation=last-frame (gstovicaps.h), as soon as it is
 * decoded: the next clip starts from it. */
static void
send_last_frame (GstOviVaeDec *self)
{
  gint last = (gint) self->group->shape[1] - 1;
  GstBuffer *rgb = gst_buffer_new_allocate (NULL, self->rgb_info.size, NULL);
  GstCaps *caps = gst_video_info_to_caps (&self->rgb_info);
  GstVideoFrame frame;
  GstEvent *event;

  gst_video_frame_map (&frame, &self->rgb_info, rgb, GST_MAP_WRITE);
  write_rgb (self->group, last, &frame);
  gst_video_frame_unmap (&frame);
  event = gst_event_new_custom (
      GST_EVENT_CUSTOM_UPSTREAM,
      gst_structure_new (
          GST_OVI_LAST_FRAME, "clip", G_TYPE_UINT64, self->clip_index, "frame",
          G_TYPE_UINT64,
          self->clip_frame + self->group_first + last - self->clip_shared,
          "caps", GST_TYPE_CAPS, caps, "buffer", GST_TYPE_BUFFER, rgb, NULL));
  gst_caps_unref (caps);
  gst_buffer_unref (rgb);
  gst_pad_push_event (GST_BASE_TRANSFORM_SINK_PAD (self), event);
}

/* Decodes the next frame group when the last one is used up; FALSE at the
 * end of the clip or on failure (*ret says which). */
static gboolean
ensure_group (GstOviVaeDec *self, GstFlowReturn *ret)
{
  g_autoptr (GError) err = NULL;
  OviTensor *frames;

  *ret = GST_FLOW_OK;
  if (self->group && self->group_next < self->group->shape[1])
    return TRUE;
  g_clear_pointer (&self->group, ovi_tensor_unref);
  if (!self->decoding)
    return FALSE;
  frames = ovi_video_vae_decode_next (self->decoding, &self->group_first,
                                      self->cancellable, &err);
  if (!frames && !err) {
    GST_OBJECT_LOCK (self);
    self->decode_time = (g_get_monotonic_time () - self->clip_t0) * GST_USECOND;
    GST_OBJECT_UNLOCK (self);
  }
  if (!frames) {
    clear_clip (self);
    if (err)
      *ret = GST_OVI_HELPER_FLOW_ERROR (self->helper, "Video decoding failed",
                                        err);
    return FALSE;
  }
  if (frames->ndim != 4 || frames->shape[0] != 3
      || frames->shape[2] != self->out_info.height
      || frames->shape[3] != self->out_info.width) {
    ovi_tensor_unref (frames);
    clear_clip (self);
    GST_ELEMENT_ERROR (self, LIBRARY, FAILED,
                       ("The VAE returned frames of an unexpected shape"),
                       (NULL));
    *ret = GST_FLOW_ERROR;
    return FALSE;
  }
  self->group = frames;
  self->group_next = 0;
  if (self->group_first + frames->shape[1] == self->clip_frames)
    send_last_frame (self);
  return TRUE;
}

/* the group's next frame into `out` (in the negotiated format) */
static gboolean
fill_frame (GstOviVaeDec *self, GstBuffer *out)
{
  GstVideoFrame vf, rf;
  GstBuffer *rgb;

  if (!gst_video_frame_map (&vf, &self->out_info, out, GST_MAP_WRITE))
    return FALSE;
  if (!self->converter) {
    write_rgb (self->group, self->group_next, &vf);
  } else {
    rgb = gst_buffer_new_allocate (NULL, self->rgb_info.size, NULL);
    gst_video_frame_map (&rf, &self->rgb_info, rgb, GST_MAP_WRITE);
    write_rgb (self->group, self->group_next, &rf);
    gst_video_converter_frame (self->converter, &rf, &vf);
    gst_video_frame_unmap (&rf);
    gst_buffer_unref (rgb);
  }
  gst_video_frame_unmap (&vf);
  return TRUE;
}

static GstFlowReturn
acquire_output (GstOviVaeDec *self, GstBuffer **out)
{
  GstBufferPool *pool
      = gst_base_transform_get_buffer_pool (GST_BASE_TRANSFORM (self));
  GstFlowReturn ret;

  if (!pool) {
    *out = gst_buffer_new_allocate (NULL, self->out_info.size, NULL);
    return GST_FLOW_OK;
  }
  if (!gst_buffer_pool_is_active (pool)
      && !gst_buffer_pool_set_active (pool, TRUE)) {
    gst_object_unref (pool);
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
                       ("Could not activate the output buffer pool"), (NULL));
    return GST_FLOW_ERROR;
  }
  ret = gst_buffer_pool_acquire_buffer (pool, out, NULL);
  gst_object_unref (pool);
  return ret;
}

/* ensure_group, past the frames a continued clip shares with the previous
 * clip (shown already, as its last frames) */
static gboolean
next_shown_frame (GstOviVaeDec *self, GstFlowReturn *ret)
{
  while (ensure_group (self, ret)) {
    if (self->group_first + self->group_next >= (gint) self->clip_shared)
      return TRUE;
    self->group_next++;
  }
  return FALSE;
}

static GstFlowReturn
gst_ovi_vae_dec_generate_output (GstBaseTransform *trans, GstBuffer **outbuf)
{
  GstOviVaeDec *self = GST_OVI_VAE_DEC (trans);
  GstFlowReturn ret;
  GstBuffer *out = NULL;
  guint64 index;

  *outbuf = NULL;
  if (!next_shown_frame (self, &ret))
    return ret;
  /* a RECONFIGURE from downstream takes effect at the next frame */
  if (!gst_base_transform_reconfigure (trans)) {
    clear_clip (self);
    return GST_PAD_IS_FLUSHING (trans->srcpad) ? GST_FLOW_FLUSHING
                                               : GST_FLOW_NOT_NEGOTIATED;
  }
  ret = acquire_output (self, &out);
  if (ret != GST_FLOW_OK)
    return ret;
  if (!fill_frame (self, out)) {
    gst_buffer_unref (out);
    GST_ELEMENT_ERROR (self, STREAM, FAILED, ("Could not map the output frame"),
                       (NULL));
    return GST_FLOW_ERROR;
  }

  /* frame times from counts: clip start + offset in the clip */
  index = self->clip_frame + self->group_first + self->group_next
          - self->clip_shared;
  GST_BUFFER_PTS (out) = self->clip_pts + gst_ovi_frame_time (index)
                         - gst_ovi_frame_time (self->clip_frame);
  GST_BUFFER_DURATION (out)
      = gst_ovi_frame_time (index + 1) - gst_ovi_frame_time (index);
  GST_BUFFER_OFFSET (out) = index;
  GST_BUFFER_OFFSET_END (out) = index + 1;
  if (self->discont) {
    GST_BUFFER_FLAG_SET (out, GST_BUFFER_FLAG_DISCONT);
    self->discont = FALSE;
  }
  self->group_next++;
  *outbuf = out;
  return GST_FLOW_OK;
}

/* Never called (generate_output makes the output). Its presence tells the
 * base class that output buffers are new ones, not the input passed through,
 * so it decides allocation with downstream. */
static GstFlowReturn
gst_ovi_vae_dec_transform (GstBaseTransform *trans, GstBuffer *in,
                           GstBuffer *out)
{
  return GST_FLOW_NOT_SUPPORTED;
}

/* ---- events, queries, states ---- */

static gboolean
gst_ovi_vae_dec_sink_event (GstBaseTransform *trans, GstEvent *event)
{
  GstOviVaeDec *self = GST_OVI_VAE_DEC (trans);

  gst_ovi_helper_sink_event (self->helper, event);
  if (GST_EVENT_TYPE (event) == GST_EVENT_FLUSH_STOP) {
    clear_clip (self);
    self->discont = TRUE;
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}

static gboolean
gst_ovi_vae_dec_query (GstBaseTransform *trans, GstPadDirection direction,
                       GstQuery *query)
{
  GstOviVaeDec *self = GST_OVI_VAE_DEC (trans);

  /* ovidenoise's continuation=last-frame asks whether we send them back */
  if (direction == GST_PAD_SINK && GST_QUERY_TYPE (query) == GST_QUERY_CUSTOM
      && gst_query_get_structure (query)
      && gst_structure_has_name (gst_query_get_structure (query),
                                 GST_OVI_LAST_FRAME))
    return TRUE;
  /* a clip's last frame leaves one whole decode after its latent came */
  return gst_ovi_helper_transform_query (
      self->helper, GST_BASE_TRANSFORM_CLASS (parent_class), direction, query,
      &self->decode_time);
}

static void
gst_ovi_vae_dec_set_context (GstElement *element, GstContext *context)
{
  GstOviVaeDec *self = GST_OVI_VAE_DEC (element);

  gst_ovi_helper_set_context (self->helper, context,
                              GST_ELEMENT_CLASS (parent_class));
}

static gboolean
gst_ovi_vae_dec_start (GstBaseTransform *trans)
{
  GstOviVaeDec *self = GST_OVI_VAE_DEC (trans);

  if (!gst_ovi_helper_start (self->helper, GST_OVI_STAGE_VIDEO_VAE))
    return FALSE;
  self->discont = FALSE;
  return TRUE;
}

static gboolean
gst_ovi_vae_dec_stop (GstBaseTransform *trans)
{
  GstOviVaeDec *self = GST_OVI_VAE_DEC (trans);

  clear_clip (self);
  g_clear_pointer (&self->converter, gst_video_converter_free);
  return TRUE;
}

static GstStateChangeReturn
gst_ovi_vae_dec_change_state (GstElement *element, GstStateChange transition)
{
  return gst_ovi_helper_change_state (GST_OVI_VAE_DEC (element)->helper,
                                      transition,
                                      GST_ELEMENT_CLASS (parent_class));
}

static void
gst_ovi_vae_dec_finalize (GObject *object)
{
  GstOviVaeDec *self = GST_OVI_VAE_DEC (object);

  clear_clip (self);
  g_clear_pointer (&self->converter, gst_video_converter_free);
  gst_clear_object (&self->helper);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
install_properties (GObjectClass *gobject_class)
{
  const GParamFlags rw_playing
      = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING;

  gst_ovi_helper_install_properties (gobject_class);
  /**
   * GstOviVaeDec:tile-size:
   *
   * Decode in overlapping spatial tiles of this many latent pixels to save
   * memory; 0 takes the vram-mode's choice.
   */
  g_object_class_install_property (
      gobject_class, PROP_TILE_SIZE,
      g_param_spec_int (
          "tile-size", "Tile size",
          "Decode in spatial tiles of this many latent pixels (16 output "
          "pixels each) to save memory; 0 = as the vram-mode says (tiles in "
          "ultra-low, else whole frames). Applies to the next clip",
          0, 4096, DEFAULT_TILE_SIZE, rw_playing));
  /**
   * GstOviVaeDec:tile-overlap:
   *
   * Overlap of neighbouring tiles in latent pixels, blended linearly.
   */
  g_object_class_install_property (
      gobject_class, PROP_TILE_OVERLAP,
      g_param_spec_int (
          "tile-overlap", "Tile overlap",
          "Overlap of neighbouring tiles in latent pixels, blended linearly", 0,
          4096, DEFAULT_TILE_OVERLAP, rw_playing));
}

static void
gst_ovi_vae_dec_class_init (GstOviVaeDecClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);

  gobject_class->set_property = gst_ovi_vae_dec_set_property;
  gobject_class->get_property = gst_ovi_vae_dec_get_property;
  gobject_class->finalize = gst_ovi_vae_dec_finalize;
  install_properties (gobject_class);

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (
      element_class, "Ovi video VAE decoder", "Filter/Converter/Video",
      "Decodes Ovi video latents into raw frames with the Wan2.2 VAE, "
      "pushing each group of frames as soon as it is decoded",
      GST_OVI_AUTHOR);
  element_class->change_state = gst_ovi_vae_dec_change_state;
  element_class->set_context = gst_ovi_vae_dec_set_context;

  trans_class->transform_caps = gst_ovi_vae_dec_transform_caps;
  trans_class->set_caps = gst_ovi_vae_dec_set_caps;
  trans_class->decide_allocation = gst_ovi_vae_dec_decide_allocation;
  trans_class->submit_input_buffer = gst_ovi_vae_dec_submit_input_buffer;
  trans_class->generate_output = gst_ovi_vae_dec_generate_output;
  trans_class->transform = gst_ovi_vae_dec_transform;
  trans_class->sink_event = gst_ovi_vae_dec_sink_event;
  trans_class->query = gst_ovi_vae_dec_query;
  trans_class->start = gst_ovi_vae_dec_start;
  trans_class->stop = gst_ovi_vae_dec_stop;
}

static void
gst_ovi_vae_dec_init (GstOviVaeDec *self)
{
  self->helper = gst_ovi_helper_new (GST_ELEMENT (self));
  self->tile_size = DEFAULT_TILE_SIZE;
  self->tile_overlap = DEFAULT_TILE_OVERLAP;
}
