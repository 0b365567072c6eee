/* gst-ovi: ovivaedec.
 *
 * SECTION:element-ovivaedec
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
 * after a flush carries DISCONT.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 -e ovitextsrc prompt="Waves on a beach." ! ovidenoise ! \
 *   ovivaedec ! videoconvert ! video/x-raw,format=I420 ! x264enc ! \
 *   mp4mux ! filesink location=waves.mp4
 * ]|
 *
 * Base class: a plain GstElement with a chain function: one latent buffer
 * gives a whole clip of frames, pushed from the engine's frame callback,
 * which GstVideoDecoder (one output per input frame) and GstBaseTransform
 * (one output per generate_output call, after the whole decode) do not fit.
 */
#include "gstovivaedec.h"

#include <gst/video/video.h>

#include "gstovicaps.h"
#include "gstovielement.h"
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
  GstElement parent;

  GstPad *sinkpad, *srcpad;

  /* settings, under the object lock */
  GstOviEngineConfig config;
  gint tile_size, tile_overlap;
  gboolean flushing;
  GCancellable *cancellable;

  /* streaming state */
  GstOviEngineCache *cache;
  GstOviEngine *engine;
  gchar *engine_config;
  gint lat_c, lat_f, lat_h, lat_w, width, height;
  GstVideoInfo out_info;
  gboolean have_out_info;
  gboolean need_caps;
  gboolean discont;
  GstEvent *pending_segment; /* held until our caps are out */
  GstVideoConverter *converter;
  GstVideoInfo rgb_info;
};

#define gst_ovi_vae_dec_parent_class parent_class
G_DEFINE_TYPE (GstOviVaeDec, gst_ovi_vae_dec, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE (
    ovivaedec, "ovivaedec", GST_RANK_NONE, GST_TYPE_OVI_VAE_DEC,
    GST_DEBUG_CATEGORY_INIT (gst_ovi_vae_dec_debug, "ovivaedec", 0,
                             "ovi Wan2.2 VAE video decoder"));

#define OUT_FORMATS "{ RGB, RGBA, I420, NV12 }"

static GstStaticPadTemplate sink_template
    = GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK, GST_PAD_ALWAYS,
                               GST_STATIC_CAPS (GST_OVI_LATENT_CAPS));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE (
    "src", GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (
        "video/x-raw, format = (string) " OUT_FORMATS ", "
        "width = (int) [ 16, 65536 ], height = (int) [ 16, 65536 ], "
        "framerate = (fraction) 24/1, pixel-aspect-ratio = (fraction) 1/1"));

static void
gst_ovi_vae_dec_set_property (GObject *object, guint prop_id,
                              const GValue *value, GParamSpec *pspec)
{
  GstOviVaeDec *self = GST_OVI_VAE_DEC (object);

  GST_OBJECT_LOCK (self);
  if (!gst_ovi_engine_config_set_property (&self->config, prop_id, value)) {
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
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_ovi_vae_dec_get_property (GObject *object, guint prop_id, GValue *value,
                              GParamSpec *pspec)
{
  GstOviVaeDec *self = GST_OVI_VAE_DEC (object);

  GST_OBJECT_LOCK (self);
  if (!gst_ovi_engine_config_get_property (&self->config, prop_id, value)) {
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
  }
  GST_OBJECT_UNLOCK (self);
}

static gboolean
acquire_engine (GstOviVaeDec *self)
{
  return gst_ovi_element_acquire_engine (
      GST_ELEMENT (self), &self->config, GST_OVI_STAGE_VIDEO_VAE,
      "Could not load the video VAE", &self->cache, &self->engine,
      &self->engine_config);
}

static gboolean
negotiate (GstOviVaeDec *self)
{
  GstCaps *templ, *peer, *caps;
  GstVideoInfo info;
  gboolean ok;

  templ = gst_pad_get_pad_template_caps (self->srcpad);
  templ = gst_caps_make_writable (templ);
  gst_caps_set_simple (templ, "width", G_TYPE_INT, self->width, "height",
                       G_TYPE_INT, self->height, NULL);
  peer = gst_pad_peer_query_caps (self->srcpad, templ);
  gst_caps_unref (templ);
  if (gst_caps_is_empty (peer)) {
    gst_caps_unref (peer);
    GST_ELEMENT_ERROR (
        self, CORE, NEGOTIATION,
        ("Downstream takes none of RGB, RGBA, I420, NV12 at %dx%d 24/1",
         self->width, self->height),
        (NULL));
    return FALSE;
  }
  caps = gst_caps_fixate (peer);
  ok = gst_video_info_from_caps (&info, caps)
       && gst_pad_push_event (self->srcpad, gst_event_new_caps (caps));
  if (ok) {
    self->out_info = info;
    self->have_out_info = TRUE;
    if (self->converter)
      gst_video_converter_free (self->converter);
    self->converter = NULL;
    gst_video_info_set_format (&self->rgb_info, GST_VIDEO_FORMAT_RGB,
                               self->width, self->height);
    GST_VIDEO_INFO_FPS_N (&self->rgb_info) = GST_VIDEO_INFO_FPS_N (&info);
    GST_VIDEO_INFO_FPS_D (&self->rgb_info) = GST_VIDEO_INFO_FPS_D (&info);
    GST_VIDEO_INFO_PAR_N (&self->rgb_info) = GST_VIDEO_INFO_PAR_N (&info);
    GST_VIDEO_INFO_PAR_D (&self->rgb_info) = GST_VIDEO_INFO_PAR_D (&info);
    if (GST_VIDEO_INFO_FORMAT (&info) != GST_VIDEO_FORMAT_RGB
        && GST_VIDEO_INFO_FORMAT (&info) != GST_VIDEO_FORMAT_RGBA)
      self->converter = gst_video_converter_new (&self->rgb_info, &info, NULL);
    GST_INFO_OBJECT (self, "output %" GST_PTR_FORMAT, caps);
  } else {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
                       ("Could not set the output caps"),
                       ("%" GST_PTR_FORMAT, caps));
  }
  gst_caps_unref (caps);
  return ok;
}

/* float [-1, 1] -> 8 bits as the official writer: (x + 1) / 2 * 255,
 * clamped, truncated */
static inline guint8
to_u8 (float x)
{
  float v = (x + 1.0f) * 127.5f;
  return v <= 0.0f ? 0 : v >= 255.0f ? 255 : (guint8) v;
}

typedef struct {
  GstOviVaeDec *self;
  GstClockTime clip_pts;
  guint64 clip_frame; /* global index of frame 0 of the clip */
  GstFlowReturn ret;
  guint pushed;
} DecodeData;

static gboolean
on_frames (const OviTensor *frames, int first_frame, gpointer user_data)
{
  DecodeData *d = user_data;
  GstOviVaeDec *self = d->self;
  g_autoptr (OviTensor) f = NULL;
  gint n, i, x, y;
  const gint W = self->width, H = self->height;
  gboolean rgba
      = GST_VIDEO_INFO_FORMAT (&self->out_info) == GST_VIDEO_FORMAT_RGBA;

  GST_OBJECT_LOCK (self);
  if (self->flushing) {
    GST_OBJECT_UNLOCK (self);
    d->ret = GST_FLOW_FLUSHING;
    return FALSE;
  }
  GST_OBJECT_UNLOCK (self);

  f = ovi_tensor_is_contiguous (frames) && ovi_tensor_is_host (frames)
              && frames->dtype == OVI_DTYPE_F32
          ? ovi_tensor_ref ((OviTensor *) frames)
          : ovi_tensor_to_f32 (frames, NULL);
  if (!f || f->ndim != 4 || f->shape[0] != 3 || f->shape[2] != H
      || f->shape[3] != W) {
    GST_ELEMENT_ERROR (self, LIBRARY, FAILED,
                       ("The VAE returned frames of an unexpected shape"),
                       (NULL));
    d->ret = GST_FLOW_ERROR;
    return FALSE;
  }
  n = (gint) f->shape[1];
  for (i = 0; i < n; i++) {
    const float *plane = ovi_tensor_data (f);
    const gsize plane_size = (gsize) n * H * W;
    guint64 index = d->clip_frame + first_frame + i;
    GstBuffer *out, *rgb_buf = NULL;
    GstVideoFrame vf, rf;
    GstVideoFrame *target;

    out = gst_buffer_new_allocate (NULL, self->out_info.size, NULL);
    if (self->converter) {
      rgb_buf = gst_buffer_new_allocate (NULL, self->rgb_info.size, NULL);
      gst_video_frame_map (&rf, &self->rgb_info, rgb_buf, GST_MAP_WRITE);
      target = &rf;
    } else {
      gst_video_frame_map (&vf, &self->out_info, out, GST_MAP_WRITE);
      target = &vf;
    }
    for (y = 0; y < H; y++) {
      guint8 *row = (guint8 *) GST_VIDEO_FRAME_PLANE_DATA (target, 0)
                    + (gsize) y * GST_VIDEO_FRAME_PLANE_STRIDE (target, 0);
      const float *r = plane + ((gsize) i * H + y) * W;
      const float *g = r + plane_size;
      const float *b = g + plane_size;
      if (rgba) {
        for (x = 0; x < W; x++) {
          row[4 * x] = to_u8 (r[x]);
          row[4 * x + 1] = to_u8 (g[x]);
          row[4 * x + 2] = to_u8 (b[x]);
          row[4 * x + 3] = 255;
        }
      } else {
        for (x = 0; x < W; x++) {
          row[3 * x] = to_u8 (r[x]);
          row[3 * x + 1] = to_u8 (g[x]);
          row[3 * x + 2] = to_u8 (b[x]);
        }
      }
    }
    if (self->converter) {
      gst_video_frame_map (&vf, &self->out_info, out, GST_MAP_WRITE);
      gst_video_converter_frame (self->converter, &rf, &vf);
      gst_video_frame_unmap (&rf);
      gst_buffer_unref (rgb_buf);
    }
    gst_video_frame_unmap (&vf);

    /* frame times from counts: clip start + offset in the clip */
    GST_BUFFER_PTS (out) = d->clip_pts + gst_ovi_frame_time (index)
                           - gst_ovi_frame_time (d->clip_frame);
    GST_BUFFER_DURATION (out)
        = gst_ovi_frame_time (index + 1) - gst_ovi_frame_time (index);
    GST_BUFFER_OFFSET (out) = index;
    GST_BUFFER_OFFSET_END (out) = index + 1;
    if (self->discont) {
      GST_BUFFER_FLAG_SET (out, GST_BUFFER_FLAG_DISCONT);
      self->discont = FALSE;
    }
    d->ret = gst_pad_push (self->srcpad, out);
    d->pushed++;
    if (d->ret != GST_FLOW_OK)
      return FALSE;
  }
  return TRUE;
}

static GstFlowReturn
gst_ovi_vae_dec_chain (GstPad *pad, GstObject *parent, GstBuffer *buf)
{
  GstOviVaeDec *self = GST_OVI_VAE_DEC (parent);
  GstMemory *mem;
  GstMapInfo map;
  int64_t shape[4], stride[4];
  OviDevice cpu = { OVI_DEVICE_CPU, 0 };
  OviStorage *st;
  g_autoptr (OviTensor) latent = NULL;
  g_autoptr (GError) err = NULL;
  GCancellable *cancellable;
  DecodeData d;
  gboolean ok;
  gint tile, overlap;

  if (!self->engine) {
    gst_buffer_unref (buf);
    return GST_FLOW_FLUSHING;
  }
  if (self->lat_c <= 0 || gst_buffer_n_memory (buf) != 2) {
    GST_ELEMENT_ERROR (self, STREAM, FORMAT,
                       ("ovivaedec takes the latents of ovidenoise"),
                       ("%u memories", gst_buffer_n_memory (buf)));
    gst_buffer_unref (buf);
    return GST_FLOW_ERROR;
  }
  if (self->need_caps) {
    if (!negotiate (self)) {
      gst_buffer_unref (buf);
      return GST_FLOW_NOT_NEGOTIATED;
    }
    self->need_caps = FALSE;
    if (self->pending_segment)
      gst_pad_push_event (self->srcpad,
                          g_steal_pointer (&self->pending_segment));
  }
  mem = gst_buffer_peek_memory (buf, 0);
  if (!gst_memory_map (mem, &map, GST_MAP_READ)) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, STREAM, DECODE, ("Could not map the latent"),
                       (NULL));
    return GST_FLOW_ERROR;
  }
  shape[0] = self->lat_c;
  shape[1] = self->lat_f;
  shape[2] = self->lat_h;
  shape[3] = self->lat_w;
  if (map.size != (gsize) (shape[0] * shape[1] * shape[2] * shape[3] * 4)) {
    gst_memory_unmap (mem, &map);
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (
        self, STREAM, FORMAT,
        ("The video latent has %" G_GSIZE_FORMAT " bytes, the caps say "
         "[%d, %d, %d, %d] F32",
         map.size, self->lat_c, self->lat_f, self->lat_h, self->lat_w),
        (NULL));
    return GST_FLOW_ERROR;
  }
  st = ovi_storage_new_wrapped (map.data, map.size, cpu, NULL, NULL);
  ovi_contiguous_strides (4, shape, stride);
  latent = ovi_tensor_new_on_storage (st, 0, OVI_DTYPE_F32, 4, shape, stride);
  ovi_storage_unref (st);

  d.self = self;
  d.clip_pts = GST_BUFFER_PTS_IS_VALID (buf) ? GST_BUFFER_PTS (buf) : 0;
  d.clip_frame = GST_BUFFER_OFFSET (buf) != GST_BUFFER_OFFSET_NONE
                     ? GST_BUFFER_OFFSET (buf)
                     : 0;
  d.ret = GST_FLOW_OK;
  d.pushed = 0;
  if (GST_BUFFER_FLAG_IS_SET (buf, GST_BUFFER_FLAG_DISCONT))
    self->discont = TRUE;

  GST_OBJECT_LOCK (self);
  cancellable = self->cancellable ? g_object_ref (self->cancellable) : NULL;
  tile = self->tile_size;
  overlap = self->tile_overlap;
  GST_OBJECT_UNLOCK (self);

  g_mutex_lock (&self->engine->lock);
  if (tile == 0) { /* the VRAM plan's tiling (ultra-low tiles) */
    tile = self->engine->vae_tile;
    overlap = self->engine->vae_tile_overlap;
  }
  ovi_video_vae_set_tiling (self->engine->u.video_vae, tile, overlap);
  ok = ovi_video_vae_decode (self->engine->u.video_vae, latent, on_frames, &d,
                             cancellable, &err);
  g_mutex_unlock (&self->engine->lock);
  g_clear_object (&cancellable);
  g_clear_pointer (&latent, ovi_tensor_unref);
  gst_memory_unmap (mem, &map);
  GST_DEBUG_OBJECT (self, "clip at %" GST_TIME_FORMAT ": %u frames",
                    GST_TIME_ARGS (d.clip_pts), d.pushed);
  gst_buffer_unref (buf);
  if (d.ret != GST_FLOW_OK)
    return d.ret;
  if (!ok) {
    if (g_error_matches (err, OVI_ERROR, OVI_ERROR_CANCELLED))
      return GST_FLOW_FLUSHING;
    GST_OVI_POST_ERROR (self, "Video decoding failed", err);
    return GST_FLOW_ERROR;
  }
  return GST_FLOW_OK;
}

static void
set_flushing (GstOviVaeDec *self, gboolean flushing)
{
  gst_ovi_element_set_flushing (GST_ELEMENT (self), flushing, &self->flushing,
                                &self->cancellable, NULL);
}

static gboolean
gst_ovi_vae_dec_sink_event (GstPad *pad, GstObject *parent, GstEvent *event)
{
  GstOviVaeDec *self = GST_OVI_VAE_DEC (parent);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS: {
      GstCaps *caps;
      const GstStructure *s;
      gint c = 0, f = 0, h = 0, w = 0, width = 0, height = 0;
      gst_event_parse_caps (event, &caps);
      s = gst_caps_get_structure (caps, 0);
      if (!gst_structure_get (s, "video-channels", G_TYPE_INT, &c,
                              "video-frames", G_TYPE_INT, &f, "video-height",
                              G_TYPE_INT, &h, "video-width", G_TYPE_INT, &w,
                              "width", G_TYPE_INT, &width, "height", G_TYPE_INT,
                              &height, NULL)) {
        GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
                           ("Latent caps without the video fields"),
                           ("%" GST_PTR_FORMAT, caps));
        gst_event_unref (event);
        return FALSE;
      }
      if (width != self->width || height != self->height)
        self->need_caps = TRUE;
      self->lat_c = c;
      self->lat_f = f;
      self->lat_h = h;
      self->lat_w = w;
      self->width = width;
      self->height = height;
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
gst_ovi_vae_dec_query (GstPad *pad, GstObject *parent, GstQuery *query)
{
  GstOviVaeDec *self = GST_OVI_VAE_DEC (parent);

  return gst_ovi_element_pad_query (pad, parent, query, self->cache);
}

static void
gst_ovi_vae_dec_set_context (GstElement *element, GstContext *context)
{
  GstOviVaeDec *self = GST_OVI_VAE_DEC (element);

  gst_ovi_element_set_context (element, context, &self->cache,
                               GST_ELEMENT_CLASS (parent_class));
}

static GstStateChangeReturn
gst_ovi_vae_dec_change_state (GstElement *element, GstStateChange transition)
{
  GstOviVaeDec *self = GST_OVI_VAE_DEC (element);
  GstStateChangeReturn ret;

  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      if (!acquire_engine (self))
        return GST_STATE_CHANGE_FAILURE;
      set_flushing (self, FALSE);
      self->need_caps = TRUE;
      self->discont = FALSE;
      gst_event_replace (&self->pending_segment, NULL);
      self->lat_c = 0;
      self->width = self->height = 0;
      break;
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      set_flushing (self, TRUE);
      break;
    default:
      break;
  }
  ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
  switch (transition) {
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      if (self->converter)
        gst_video_converter_free (self->converter);
      self->converter = NULL;
      self->have_out_info = FALSE;
      break;
    case GST_STATE_CHANGE_READY_TO_NULL:
      gst_ovi_element_release_engine (&self->engine, &self->engine_config);
      break;
    default:
      break;
  }
  return ret;
}

static void
gst_ovi_vae_dec_finalize (GObject *object)
{
  GstOviVaeDec *self = GST_OVI_VAE_DEC (object);

  gst_ovi_element_clear_engine (&self->engine, &self->engine_config,
                                &self->cache, &self->config);
  g_clear_object (&self->cancellable);
  if (self->converter)
    gst_video_converter_free (self->converter);
  gst_event_replace (&self->pending_segment, NULL);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_ovi_vae_dec_class_init (GstOviVaeDecClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  const GParamFlags rw_playing
      = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING;

  gobject_class->set_property = gst_ovi_vae_dec_set_property;
  gobject_class->get_property = gst_ovi_vae_dec_get_property;
  gobject_class->finalize = gst_ovi_vae_dec_finalize;

  gst_ovi_engine_install_properties (gobject_class);
  g_object_class_install_property (
      gobject_class, PROP_TILE_SIZE,
      g_param_spec_int (
          "tile-size", "Tile size",
          "Decode in spatial tiles of this many latent pixels (16 output "
          "pixels each) to save memory; 0 = as the vram-mode says (tiles in "
          "ultra-low, else whole frames). Applies to the "
          "next clip",
          0, 4096, DEFAULT_TILE_SIZE, rw_playing));
  g_object_class_install_property (
      gobject_class, PROP_TILE_OVERLAP,
      g_param_spec_int (
          "tile-overlap", "Tile overlap",
          "Overlap of neighbouring tiles in latent pixels, blended linearly", 0,
          4096, DEFAULT_TILE_OVERLAP, rw_playing));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (
      element_class, "Ovi video VAE decoder", "Filter/Converter/Video",
      "Decodes Ovi video latents into raw frames with the Wan2.2 VAE, "
      "pushing each group of frames as soon as it is decoded",
      "gst-ovi developers");
  element_class->change_state = gst_ovi_vae_dec_change_state;
  element_class->set_context = gst_ovi_vae_dec_set_context;
}

static void
gst_ovi_vae_dec_init (GstOviVaeDec *self)
{
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad, gst_ovi_vae_dec_chain);
  gst_pad_set_event_function (self->sinkpad, gst_ovi_vae_dec_sink_event);
  gst_pad_set_query_function (self->sinkpad, gst_ovi_vae_dec_query);
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);
  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_query_function (self->srcpad, gst_ovi_vae_dec_query);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  gst_ovi_engine_config_init (&self->config);
  self->tile_size = DEFAULT_TILE_SIZE;
  self->tile_overlap = DEFAULT_TILE_OVERLAP;
}
