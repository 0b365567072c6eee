/* gst-ovi: ovidenoise.
 *
 * SECTION:element-ovidenoise
 *
 * Runs the Ovi fusion DiT with the UniPC (or Euler) sampler, per-modality
 * CFG and skip-layer guidance on each clip's text embeddings, and pushes
 * one application/x-ovi-latent buffer per clip holding both latents (video
 * [48, F, H/16, W/16] and audio [L, 20], F32): split it with `tee` into
 * ovivaedec and oviaudiodec.
 *
 * Image-to-video: request the `image` pad and link any raw video to it;
 * the latest frame (converted to RGB, then resized as the official code
 * does: the multiple-of-32 size closest to the model's area, bicubic) is
 * encoded by the Wan2.2 VAE and used as the first frame of every following
 * clip. The text pad waits for the first image (or the image pad's EOS).
 *
 * Each denoising step posts an `ovi-progress` element message
 * (clip, step, steps, stage, eta) and updates the read-only `progress`.
 * A flush or a change to READY cancels between steps.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 -e ovitextsrc prompt="A cat sings." ! ovidenoise
 * model=720x720_5s \
 *   seed=42 ! tee name=t t. ! queue ! ovivaedec ! videoconvert ! \
 *   video/x-raw,format=I420 ! x264enc ! mp4mux name=m ! filesink
 * location=cat.mp4 \ t. ! queue ! oviaudiodec ! audioconvert ! audioresample !
 * avenc_aac ! m.
 * ]|
 *
 * Base class: a plain GstElement with chain functions. GstBaseTransform has
 * one sink pad, and ovidenoise needs a second (request) sink pad for the
 * image that the text pad waits on; one clip in gives one clip out on the
 * upstream streaming thread, so EOS after a clip naturally drains it, and a
 * GCancellable fired by FLUSH_START or PAUSED->READY stops the sampler
 * between steps. GstAggregator was not used: its timed-input model (the
 * image is not timed against the text) adds a thread and latency handling
 * that a 1:1 clip generator does not need.
 */
#include "gstovidenoise.h"

#include <gst/video/video.h>

#include "gstovicaps.h"
#include "gstovielement.h"
#include "gstoviutil.h"
#include "ovi-image.h"
#include "ovi-presets.h"

GST_DEBUG_CATEGORY_STATIC (gst_ovi_denoise_debug);
#define GST_CAT_DEFAULT gst_ovi_denoise_debug

#define DEFAULT_SEED           100
#define DEFAULT_STEPS          50
#define DEFAULT_SHIFT          5.0
#define DEFAULT_VIDEO_GUIDANCE 4.0
#define DEFAULT_AUDIO_GUIDANCE 3.0
#define DEFAULT_SLG_LAYER      11

enum {
  PROP_MODEL = GST_OVI_PROP_LAST,
  PROP_WIDTH,
  PROP_HEIGHT,
  PROP_SEED,
  PROP_STEPS,
  PROP_SOLVER,
  PROP_SHIFT,
  PROP_VIDEO_GUIDANCE_SCALE,
  PROP_AUDIO_GUIDANCE_SCALE,
  PROP_SLG_LAYER,
  PROP_PROGRESS,
};

static GParamSpec *progress_pspec;

struct _GstOviDenoise {
  GstElement parent;

  GstPad *sinkpad, *srcpad, *imagepad;

  /* settings, under the object lock */
  GstOviEngineConfig config;
  GstOviModel model;
  gint width, height;
  guint64 seed;
  gint steps;
  GstOviSolverType solver;
  gdouble shift, video_guidance, audio_guidance;
  gint slg_layer;
  gdouble progress;

  /* image state, under the object lock */
  GCond cond;
  gboolean flushing;
  gboolean image_eos;
  OviTensor *image_latent; /* [48, 1, H/16, W/16] */
  gint image_width, image_height;
  GstVideoInfo image_info;
  gboolean image_info_valid;
  GCancellable *cancellable;

  /* streaming state */
  GstOviEngineCache *cache;
  GstOviEngine *engine; /* denoiser */
  GstOviEngine *vae;    /* image encoder, only with an image pad */
  gchar *engine_config;
  gint text_dim;
  guint64 clip;
  guint64 frame_offset;
  gint upstream_live; /* -1: not asked yet */
  gboolean discont;
  GstEvent *pending_segment; /* held until our caps are out */
  GstCaps *out_caps;
  gint64 step_t0, step_t_first;
};

#define gst_ovi_denoise_parent_class parent_class
G_DEFINE_TYPE (GstOviDenoise, gst_ovi_denoise, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE (
    ovidenoise, "ovidenoise", GST_RANK_NONE, GST_TYPE_OVI_DENOISE,
    GST_DEBUG_CATEGORY_INIT (gst_ovi_denoise_debug, "ovidenoise", 0,
                             "ovi fusion DiT denoiser"));

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE (
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS (GST_OVI_TEXT_CAPS));
static GstStaticPadTemplate image_template = GST_STATIC_PAD_TEMPLATE (
    "image", GST_PAD_SINK, GST_PAD_REQUEST,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (GST_VIDEO_FORMATS_ALL)));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE (
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS (GST_OVI_LATENT_CAPS));

/* ---- properties ---- */

static void
gst_ovi_denoise_set_property (GObject *object, guint prop_id,
                              const GValue *value, GParamSpec *pspec)
{
  GstOviDenoise *self = GST_OVI_DENOISE (object);

  GST_OBJECT_LOCK (self);
  if (gst_ovi_engine_config_set_property (&self->config, prop_id, value)) {
    GST_OBJECT_UNLOCK (self);
    return;
  }
  switch (prop_id) {
    case PROP_MODEL:
      self->model = g_value_get_enum (value);
      break;
    case PROP_WIDTH:
      self->width = g_value_get_int (value);
      break;
    case PROP_HEIGHT:
      self->height = g_value_get_int (value);
      break;
    case PROP_SEED:
      self->seed = g_value_get_uint64 (value);
      break;
    case PROP_STEPS:
      self->steps = g_value_get_int (value);
      break;
    case PROP_SOLVER:
      self->solver = g_value_get_enum (value);
      break;
    case PROP_SHIFT:
      self->shift = g_value_get_double (value);
      break;
    case PROP_VIDEO_GUIDANCE_SCALE:
      self->video_guidance = g_value_get_double (value);
      break;
    case PROP_AUDIO_GUIDANCE_SCALE:
      self->audio_guidance = g_value_get_double (value);
      break;
    case PROP_SLG_LAYER:
      self->slg_layer = g_value_get_int (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_ovi_denoise_get_property (GObject *object, guint prop_id, GValue *value,
                              GParamSpec *pspec)
{
  GstOviDenoise *self = GST_OVI_DENOISE (object);

  GST_OBJECT_LOCK (self);
  if (gst_ovi_engine_config_get_property (&self->config, prop_id, value)) {
    GST_OBJECT_UNLOCK (self);
    return;
  }
  switch (prop_id) {
    case PROP_MODEL:
      g_value_set_enum (value, self->model);
      break;
    case PROP_WIDTH:
      g_value_set_int (value, self->width);
      break;
    case PROP_HEIGHT:
      g_value_set_int (value, self->height);
      break;
    case PROP_SEED:
      g_value_set_uint64 (value, self->seed);
      break;
    case PROP_STEPS:
      g_value_set_int (value, self->steps);
      break;
    case PROP_SOLVER:
      g_value_set_enum (value, self->solver);
      break;
    case PROP_SHIFT:
      g_value_set_double (value, self->shift);
      break;
    case PROP_VIDEO_GUIDANCE_SCALE:
      g_value_set_double (value, self->video_guidance);
      break;
    case PROP_AUDIO_GUIDANCE_SCALE:
      g_value_set_double (value, self->audio_guidance);
      break;
    case PROP_SLG_LAYER:
      g_value_set_int (value, self->slg_layer);
      break;
    case PROP_PROGRESS:
      g_value_set_double (value, self->progress);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
set_progress (GstOviDenoise *self, gdouble p)
{
  GST_OBJECT_LOCK (self);
  self->progress = p;
  GST_OBJECT_UNLOCK (self);
  g_object_notify_by_pspec (G_OBJECT (self), progress_pspec);
}

/* ---- engine ---- */

static gboolean
acquire_engines (GstOviDenoise *self)
{
  GstOviEngineConfig config;
  g_autofree gchar *key = NULL;
  g_autoptr (GError) err = NULL;
  gboolean want_vae;

  GST_OBJECT_LOCK (self);
  gst_ovi_engine_config_copy (&config, &self->config);
  config.variant = gst_ovi_model_variant (self->model);
  want_vae = self->imagepad != NULL;
  GST_OBJECT_UNLOCK (self);

  key = gst_ovi_engine_config_to_string (&config);
  if (g_strcmp0 (key, self->engine_config) != 0) {
    g_clear_pointer (&self->engine, gst_ovi_engine_release);
    g_clear_pointer (&self->vae, gst_ovi_engine_release);
  }
  if (!want_vae)
    g_clear_pointer (&self->vae, gst_ovi_engine_release);

  gst_ovi_engine_cache_ensure (GST_ELEMENT (self), &self->cache);
  if (!self->engine) {
    self->engine = gst_ovi_engine_cache_acquire (
        self->cache, GST_OVI_STAGE_DENOISER, &config, GST_ELEMENT (self), &err);
    if (!self->engine) {
      GST_OVI_POST_ERROR (self, "Could not load the fusion model", err);
      goto fail;
    }
  }
  if (want_vae && !self->vae) {
    self->vae
        = gst_ovi_engine_cache_acquire (self->cache, GST_OVI_STAGE_VIDEO_VAE,
                                        &config, GST_ELEMENT (self), &err);
    if (!self->vae) {
      GST_OVI_POST_ERROR (
          self, "Could not load the video VAE (needed for the image pad)", err);
      goto fail;
    }
  }
  g_free (self->engine_config);
  self->engine_config = g_steal_pointer (&key);
  gst_ovi_engine_config_clear (&config);
  return TRUE;

fail:
  gst_ovi_engine_config_clear (&config);
  return FALSE;
}

static void
release_engines (GstOviDenoise *self)
{
  g_clear_pointer (&self->engine, gst_ovi_engine_release);
  g_clear_pointer (&self->vae, gst_ovi_engine_release);
  g_clear_pointer (&self->engine_config, g_free);
}

/* ---- the image pad ---- */

static GstFlowReturn
gst_ovi_denoise_image_chain (GstPad *pad, GstObject *parent, GstBuffer *buf)
{
  GstOviDenoise *self = GST_OVI_DENOISE (parent);
  GstVideoInfo in_info, rgb_info;
  GstVideoFrame in_frame, rgb_frame;
  g_autoptr (GError) err = NULL;
  g_autoptr (OviTensor) image = NULL;
  OviTensor *latent;
  GstBuffer *rgb_buf = NULL;
  const guint8 *rgb;
  gint stride;

  GST_OBJECT_LOCK (self);
  if (!self->image_info_valid) {
    GST_OBJECT_UNLOCK (self);
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, ("No caps on the image pad"),
                       (NULL));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  in_info = self->image_info;
  GST_OBJECT_UNLOCK (self);
  if (!self->vae) {
    gst_buffer_unref (buf);
    return GST_FLOW_FLUSHING;
  }

  /* any raw video -> packed RGB at its own size */
  if (!gst_video_frame_map (&in_frame, &in_info, buf, GST_MAP_READ)) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, STREAM, DECODE, ("Could not map the image"),
                       (NULL));
    return GST_FLOW_ERROR;
  }
  if (GST_VIDEO_INFO_FORMAT (&in_info) == GST_VIDEO_FORMAT_RGB) {
    rgb = GST_VIDEO_FRAME_PLANE_DATA (&in_frame, 0);
    stride = GST_VIDEO_FRAME_PLANE_STRIDE (&in_frame, 0);
    image = ovi_image_prepare_rgb8 (rgb, in_info.height, in_info.width, stride,
                                    self->engine->paths->target_area, &err);
    gst_video_frame_unmap (&in_frame);
  } else {
    GstVideoConverter *conv;
    gst_video_info_set_format (&rgb_info, GST_VIDEO_FORMAT_RGB, in_info.width,
                               in_info.height);
    rgb_buf = gst_buffer_new_allocate (NULL, rgb_info.size, NULL);
    gst_video_frame_map (&rgb_frame, &rgb_info, rgb_buf, GST_MAP_WRITE);
    conv = gst_video_converter_new (&in_info, &rgb_info, NULL);
    gst_video_converter_frame (conv, &in_frame, &rgb_frame);
    gst_video_converter_free (conv);
    gst_video_frame_unmap (&in_frame);
    rgb = GST_VIDEO_FRAME_PLANE_DATA (&rgb_frame, 0);
    stride = GST_VIDEO_FRAME_PLANE_STRIDE (&rgb_frame, 0);
    image = ovi_image_prepare_rgb8 (rgb, in_info.height, in_info.width, stride,
                                    self->engine->paths->target_area, &err);
    gst_video_frame_unmap (&rgb_frame);
    gst_buffer_unref (rgb_buf);
  }
  gst_buffer_unref (buf);
  if (!image) {
    GST_OVI_POST_ERROR (self, "Could not prepare the image", err);
    return GST_FLOW_ERROR;
  }

  g_mutex_lock (&self->vae->lock);
  latent = ovi_video_vae_encode_image (self->vae->u.video_vae, image, &err);
  g_mutex_unlock (&self->vae->lock);
  if (!latent) {
    GST_OVI_POST_ERROR (self, "Could not encode the image", err);
    return GST_FLOW_ERROR;
  }
  GST_INFO_OBJECT (self, "image %dx%d -> %dx%d", in_info.width, in_info.height,
                   (gint) image->shape[2], (gint) image->shape[1]);

  GST_OBJECT_LOCK (self);
  g_clear_pointer (&self->image_latent, ovi_tensor_unref);
  self->image_latent = latent;
  self->image_height = (gint) image->shape[1];
  self->image_width = (gint) image->shape[2];
  g_cond_broadcast (&self->cond);
  GST_OBJECT_UNLOCK (self);
  return GST_FLOW_OK;
}

static gboolean
gst_ovi_denoise_image_event (GstPad *pad, GstObject *parent, GstEvent *event)
{
  GstOviDenoise *self = GST_OVI_DENOISE (parent);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS: {
      GstCaps *caps;
      GstVideoInfo info;
      gboolean ok;
      gst_event_parse_caps (event, &caps);
      ok = gst_video_info_from_caps (&info, caps);
      GST_OBJECT_LOCK (self);
      if (ok) {
        self->image_info = info;
        self->image_info_valid = TRUE;
      }
      GST_OBJECT_UNLOCK (self);
      gst_event_unref (event);
      return ok;
    }
    case GST_EVENT_EOS:
      GST_OBJECT_LOCK (self);
      self->image_eos = TRUE;
      g_cond_broadcast (&self->cond);
      GST_OBJECT_UNLOCK (self);
      gst_event_unref (event);
      return TRUE;
    case GST_EVENT_FLUSH_STOP:
      GST_OBJECT_LOCK (self);
      self->image_eos = FALSE;
      GST_OBJECT_UNLOCK (self);
      gst_event_unref (event);
      return TRUE;
    default:
      /* the image stream's events stay here: the clips' timeline is the
       * text pad's */
      gst_event_unref (event);
      return TRUE;
  }
}

static GstPad *
gst_ovi_denoise_request_new_pad (GstElement *element, GstPadTemplate *templ,
                                 const gchar *name, const GstCaps *caps)
{
  GstOviDenoise *self = GST_OVI_DENOISE (element);
  GstPad *pad;

  GST_OBJECT_LOCK (self);
  if (self->imagepad) {
    GST_OBJECT_UNLOCK (self);
    GST_WARNING_OBJECT (self, "there is only one image pad");
    return NULL;
  }
  GST_OBJECT_UNLOCK (self);
  pad = gst_pad_new_from_template (templ, "image");
  gst_pad_set_chain_function (pad, gst_ovi_denoise_image_chain);
  gst_pad_set_event_function (pad, gst_ovi_denoise_image_event);
  GST_PAD_SET_PROXY_ALLOCATION (pad);
  GST_OBJECT_LOCK (self);
  self->imagepad = pad;
  self->image_eos = FALSE;
  GST_OBJECT_UNLOCK (self);
  gst_element_add_pad (element, pad);
  return pad;
}

static void
gst_ovi_denoise_release_pad (GstElement *element, GstPad *pad)
{
  GstOviDenoise *self = GST_OVI_DENOISE (element);

  GST_OBJECT_LOCK (self);
  if (pad == self->imagepad) {
    self->imagepad = NULL;
    self->image_eos = TRUE;
    g_cond_broadcast (&self->cond);
  }
  GST_OBJECT_UNLOCK (self);
  gst_element_remove_pad (element, pad);
}

/* ---- the text pad ---- */

typedef struct {
  GstOviDenoise *self;
  guint64 clip;
} StepData;

static void
on_step (int step, int steps, gpointer user_data)
{
  StepData *d = user_data;
  GstOviDenoise *self = d->self;
  gint64 now = g_get_monotonic_time ();
  GstClockTime eta = GST_CLOCK_TIME_NONE;
  gint done = CLAMP (step, 0, steps); /* the engine counts steps done */

  if (done > 0)
    eta = (GstClockTime) ((now - self->step_t0) * 1000.0 / done
                          * (steps - done));
  gst_element_post_message (
      GST_ELEMENT (self),
      gst_message_new_element (
          GST_OBJECT (self),
          gst_structure_new ("ovi-progress", "clip", G_TYPE_UINT64, d->clip,
                             "step", G_TYPE_INT, done, "steps", G_TYPE_INT,
                             steps, "stage", G_TYPE_STRING, "denoise", "eta",
                             G_TYPE_UINT64, eta, NULL)));
  set_progress (self, steps > 0 ? (gdouble) done / steps : 1.0);
}

static void
free_tensor (gpointer t)
{
  ovi_tensor_unref (t);
}

static GstMemory *
tensor_memory (OviTensor *t)
{
  return gst_memory_new_wrapped (
      GST_MEMORY_FLAG_READONLY, ovi_tensor_data (t), ovi_tensor_nbytes (t), 0,
      ovi_tensor_nbytes (t), ovi_tensor_ref (t), free_tensor);
}

static OviTensor *
wrap_map (GstMapInfo *map, int ndim, const int64_t *shape)
{
  int64_t stride[OVI_MAX_DIMS];
  OviDevice cpu = { OVI_DEVICE_CPU, 0 };
  OviStorage *st
      = ovi_storage_new_wrapped (map->data, map->size, cpu, NULL, NULL);
  OviTensor *t;

  ovi_contiguous_strides (ndim, shape, stride);
  t = ovi_tensor_new_on_storage (st, 0, OVI_DTYPE_F32, ndim, shape, stride);
  ovi_storage_unref (st);
  return t;
}

static GstFlowReturn
push_latents (GstOviDenoise *self, OviTensor *video, OviTensor *audio,
              gint width, gint height)
{
  g_autoptr (OviTensor) v = NULL, a = NULL;
  GstBuffer *out;
  GstCaps *caps;
  guint frames;
  GstClockTime pts;

  v = ovi_tensor_is_contiguous (video) && ovi_tensor_is_host (video)
              && video->dtype == OVI_DTYPE_F32
          ? ovi_tensor_ref (video)
          : ovi_tensor_to_f32 (video, NULL);
  a = ovi_tensor_is_contiguous (audio) && ovi_tensor_is_host (audio)
              && audio->dtype == OVI_DTYPE_F32
          ? ovi_tensor_ref (audio)
          : ovi_tensor_to_f32 (audio, NULL);
  if (!v || !a || v->ndim != 4 || a->ndim != 2) {
    GST_ELEMENT_ERROR (
        self, LIBRARY, FAILED,
        ("The denoiser returned latents of an unexpected layout"), (NULL));
    return GST_FLOW_ERROR;
  }
  frames = gst_ovi_video_frames_for_latent ((guint) v->shape[1]);
  caps = gst_caps_new_simple (
      "application/x-ovi-latent", "dtype", G_TYPE_STRING, "F32",
      "video-channels", G_TYPE_INT, (gint) v->shape[0], "video-frames",
      G_TYPE_INT, (gint) v->shape[1], "video-height", G_TYPE_INT,
      (gint) v->shape[2], "video-width", G_TYPE_INT, (gint) v->shape[3],
      "audio-length", G_TYPE_INT, (gint) a->shape[0], "audio-channels",
      G_TYPE_INT, (gint) a->shape[1], "width", G_TYPE_INT,
      (gint) v->shape[3] * 16, "height", G_TYPE_INT, (gint) v->shape[2] * 16,
      "frames", G_TYPE_INT, (gint) frames, "framerate", GST_TYPE_FRACTION,
      GST_OVI_FPS_N, GST_OVI_FPS_D, "rate", G_TYPE_INT, GST_OVI_AUDIO_RATE,
      NULL);
  if (!self->out_caps || !gst_caps_is_equal (caps, self->out_caps)) {
    if (!gst_pad_push_event (self->srcpad, gst_event_new_caps (caps))) {
      gst_caps_unref (caps);
      GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
                         ("Downstream did not accept the latent caps"), (NULL));
      return GST_FLOW_NOT_NEGOTIATED;
    }
    gst_caps_replace (&self->out_caps, caps);
    if (self->pending_segment)
      gst_pad_push_event (self->srcpad,
                          g_steal_pointer (&self->pending_segment));
  }
  gst_caps_unref (caps);

  out = gst_buffer_new ();
  gst_buffer_append_memory (out, tensor_memory (v));
  gst_buffer_append_memory (out, tensor_memory (a));
  pts = gst_ovi_frame_time (self->frame_offset);
  GST_BUFFER_PTS (out) = pts;
  GST_BUFFER_DURATION (out)
      = gst_ovi_frame_time (self->frame_offset + frames) - pts;
  GST_BUFFER_OFFSET (out) = self->frame_offset;
  GST_BUFFER_OFFSET_END (out) = self->frame_offset + frames;
  if (self->discont) {
    GST_BUFFER_FLAG_SET (out, GST_BUFFER_FLAG_DISCONT);
    self->discont = FALSE;
  }
  {
    GstStructure *m = gst_ovi_buffer_add_clip_meta (out);
    gst_structure_set (m, "clip", G_TYPE_UINT64, self->clip, "width",
                       G_TYPE_INT, width, "height", G_TYPE_INT, height, NULL);
  }
  self->frame_offset += frames;
  self->clip++;
  return gst_pad_push (self->srcpad, out);
}

static GstFlowReturn
gst_ovi_denoise_chain (GstPad *pad, GstObject *parent, GstBuffer *buf)
{
  GstOviDenoise *self = GST_OVI_DENOISE (parent);
  OviDenoiseRequest req;
  GstStructure *meta;
  GstMapInfo maps[3];
  OviTensor *text[3] = { NULL, NULL, NULL };
  g_autoptr (OviTensor) image_latent = NULL;
  g_autoptr (OviTensor) video = NULL;
  g_autoptr (OviTensor) audio = NULL;
  g_autoptr (GError) err = NULL;
  GCancellable *cancellable = NULL;
  GstFlowReturn ret = GST_FLOW_OK;
  const OviModelPreset *preset;
  StepData sd;
  gint n_mapped = 0, i, w, h, req_w, req_h;
  gboolean ok;
  guint64 clip_seed;

  if (!self->engine) {
    gst_buffer_unref (buf);
    return GST_FLOW_FLUSHING;
  }
  if (self->text_dim <= 0 || gst_buffer_n_memory (buf) != 3) {
    GST_ELEMENT_ERROR (
        self, STREAM, FORMAT,
        ("ovidenoise takes the text embeddings from ovitextsrc"),
        ("%u memories, dim %d", gst_buffer_n_memory (buf), self->text_dim));
    gst_buffer_unref (buf);
    return GST_FLOW_ERROR;
  }
  for (i = 0; i < 3; i++) {
    GstMemory *mem = gst_buffer_peek_memory (buf, i);
    int64_t shape[2];
    if (!gst_memory_map (mem, &maps[i], GST_MAP_READ))
      break;
    n_mapped++;
    shape[1] = self->text_dim;
    shape[0] = maps[i].size / (sizeof (float) * self->text_dim);
    if (shape[0] * shape[1] * (gint64) sizeof (float) != (gint64) maps[i].size
        || shape[0] == 0)
      break;
    text[i] = wrap_map (&maps[i], 2, shape);
  }
  if (i < 3) {
    GST_ELEMENT_ERROR (
        self, STREAM, FORMAT,
        ("Text embedding %d is not a whole number of %d-wide F32 rows", i,
         self->text_dim),
        (NULL));
    ret = GST_FLOW_ERROR;
    goto done;
  }

  /* wait for the first image when an image pad is linked */
  GST_OBJECT_LOCK (self);
  while (self->imagepad && !self->image_latent && !self->image_eos
         && !self->flushing)
    g_cond_wait (&self->cond, GST_OBJECT_GET_LOCK (self));
  if (self->flushing) {
    GST_OBJECT_UNLOCK (self);
    ret = GST_FLOW_FLUSHING;
    goto done;
  }
  if (self->image_latent)
    image_latent = ovi_tensor_ref (self->image_latent);
  ovi_denoise_request_init (&req);
  req.seed = self->seed;
  req.steps = self->steps;
  req.solver = self->solver == GST_OVI_SOLVER_EULER ? OVI_SOLVER_EULER
                                                    : OVI_SOLVER_UNIPC;
  req.shift = self->shift;
  req.video_guidance = self->video_guidance;
  req.audio_guidance = self->audio_guidance;
  req.slg_layer = self->slg_layer;
  req_w = self->width;
  req_h = self->height;
  if (image_latent) {
    req_w = self->image_width;
    req_h = self->image_height;
  }
  cancellable = g_object_ref (self->cancellable);
  GST_OBJECT_UNLOCK (self);

  /* per-clip overrides from the prompt file */
  meta = gst_ovi_buffer_get_clip_meta (buf);
  if (meta) {
    const gchar *solver = gst_structure_get_string (meta, "solver");
    gst_structure_get_uint64 (meta, "seed", &req.seed);
    gst_structure_get_int (meta, "steps", &req.steps);
    gst_structure_get_double (meta, "shift", &req.shift);
    gst_structure_get_double (meta, "video-guidance-scale",
                              &req.video_guidance);
    gst_structure_get_double (meta, "audio-guidance-scale",
                              &req.audio_guidance);
    gst_structure_get_int (meta, "slg-layer", &req.slg_layer);
    if (!image_latent) {
      gst_structure_get_int (meta, "width", &req_w);
      gst_structure_get_int (meta, "height", &req_h);
    }
    if (solver)
      req.solver
          = g_str_equal (solver, "euler") ? OVI_SOLVER_EULER : OVI_SOLVER_UNIPC;
  }
  clip_seed = req.seed;

  /* a live upstream stamps clips with the running time: follow its gaps
   * (a non-live one is restamped from frame counts) */
  if (self->upstream_live < 0) {
    GstQuery *q = gst_query_new_latency ();
    gboolean live = FALSE;
    if (gst_pad_peer_query (self->sinkpad, q))
      gst_query_parse_latency (q, &live, NULL, NULL);
    gst_query_unref (q);
    self->upstream_live = live;
  }
  if (self->upstream_live && GST_BUFFER_PTS_IS_VALID (buf)) {
    guint64 frame = gst_util_uint64_scale_ceil (
        GST_BUFFER_PTS (buf), GST_OVI_FPS_N, GST_SECOND * GST_OVI_FPS_D);
    if (frame > self->frame_offset) {
      self->frame_offset = frame;
      self->discont = TRUE;
    }
  }

  /* the size: the image's, or the requested one snapped to the model area */
  preset = ovi_model_preset_lookup (self->engine->paths->variant, NULL);
  if (req.steps <= 0)
    req.steps = preset ? preset->steps : 50;
  if (image_latent) {
    w = req_w;
    h = req_h;
  } else {
    if (req_w <= 0)
      req_w = preset ? preset->default_width : 0;
    if (req_h <= 0)
      req_h = preset ? preset->default_height : 0;
    if (req_w <= 0 || req_h <= 0)
      req_w = req_h = 720;
    if (!ovi_snap_hw_t2v (req_h, req_w, self->engine->paths->target_area, &h,
                          &w, &err)) {
      GST_OVI_POST_ERROR (self, "Invalid width/height", err);
      ret = GST_FLOW_ERROR;
      goto done;
    }
  }
  req.width = w;
  req.height = h;
  req.text_pos = text[0];
  req.text_video_neg = text[1];
  req.text_audio_neg = text[2];
  req.image_latent = image_latent;

  GST_INFO_OBJECT (self,
                   "clip %" G_GUINT64_FORMAT ": %dx%d, %d steps, "
                   "seed %" G_GUINT64_FORMAT "%s",
                   self->clip, w, h, req.steps, clip_seed,
                   image_latent ? ", image-to-video" : "");
  sd.self = self;
  sd.clip = self->clip;
  self->step_t0 = g_get_monotonic_time ();
  set_progress (self, 0.0);
  g_mutex_lock (&self->engine->lock);
  ok = ovi_denoiser_run (self->engine->u.denoiser, &req, on_step, &sd,
                         cancellable, &video, &audio, &err);
  g_mutex_unlock (&self->engine->lock);
  if (!ok) {
    if (g_error_matches (err, OVI_ERROR, OVI_ERROR_CANCELLED)) {
      GST_INFO_OBJECT (self, "clip %" G_GUINT64_FORMAT " cancelled",
                       self->clip);
      ret = GST_FLOW_FLUSHING;
    } else {
      GST_OVI_POST_ERROR (self, "Denoising failed", err);
      ret = GST_FLOW_ERROR;
    }
    goto done;
  }
  for (i = 0; i < 3; i++)
    g_clear_pointer (&text[i], ovi_tensor_unref);
  for (i = 0; i < n_mapped; i++)
    gst_memory_unmap (gst_buffer_peek_memory (buf, i), &maps[i]);
  n_mapped = 0;
  ret = push_latents (self, video, audio, w, h);

done:
  for (i = 0; i < 3; i++)
    g_clear_pointer (&text[i], ovi_tensor_unref);
  for (i = 0; i < n_mapped; i++)
    gst_memory_unmap (gst_buffer_peek_memory (buf, i), &maps[i]);
  g_clear_object (&cancellable);
  gst_buffer_unref (buf);
  return ret;
}

static void
set_flushing (GstOviDenoise *self, gboolean flushing)
{
  gst_ovi_element_set_flushing (GST_ELEMENT (self), flushing, &self->flushing,
                                &self->cancellable, &self->cond);
}

static gboolean
gst_ovi_denoise_sink_event (GstPad *pad, GstObject *parent, GstEvent *event)
{
  GstOviDenoise *self = GST_OVI_DENOISE (parent);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS: {
      GstCaps *caps;
      const GstStructure *s;
      gint dim = 0;
      gst_event_parse_caps (event, &caps);
      s = gst_caps_get_structure (caps, 0);
      if (!gst_structure_get_int (s, "dim", &dim) || dim <= 0) {
        gst_event_unref (event);
        return FALSE;
      }
      self->text_dim = dim;
      /* our own caps go out with the first clip */
      gst_event_unref (event);
      return TRUE;
    }
    default:
      break;
  }
  return gst_ovi_element_sink_event (
      pad, parent, event, self->srcpad, &self->pending_segment, &self->discont,
      &self->flushing, &self->cancellable, &self->cond);
}

static gboolean
gst_ovi_denoise_query (GstPad *pad, GstObject *parent, GstQuery *query)
{
  GstOviDenoise *self = GST_OVI_DENOISE (parent);

  return gst_ovi_element_pad_query (pad, parent, query, self->cache);
}

static void
gst_ovi_denoise_set_context (GstElement *element, GstContext *context)
{
  GstOviDenoise *self = GST_OVI_DENOISE (element);

  gst_ovi_element_set_context (element, context, &self->cache,
                               GST_ELEMENT_CLASS (parent_class));
}

static GstStateChangeReturn
gst_ovi_denoise_change_state (GstElement *element, GstStateChange transition)
{
  GstOviDenoise *self = GST_OVI_DENOISE (element);
  GstStateChangeReturn ret;

  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      if (!acquire_engines (self))
        return GST_STATE_CHANGE_FAILURE;
      set_flushing (self, FALSE);
      GST_OBJECT_LOCK (self);
      self->image_eos = FALSE;
      GST_OBJECT_UNLOCK (self);
      self->clip = 0;
      self->frame_offset = 0;
      self->upstream_live = -1;
      self->discont = FALSE;
      gst_event_replace (&self->pending_segment, NULL);
      gst_caps_replace (&self->out_caps, NULL);
      break;
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      /* stop the sampler between steps before the pads deactivate */
      set_flushing (self, TRUE);
      break;
    default:
      break;
  }
  ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
  switch (transition) {
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      GST_OBJECT_LOCK (self);
      g_clear_pointer (&self->image_latent, ovi_tensor_unref);
      self->image_info_valid = FALSE;
      GST_OBJECT_UNLOCK (self);
      self->text_dim = 0;
      break;
    case GST_STATE_CHANGE_READY_TO_NULL:
      release_engines (self);
      break;
    default:
      break;
  }
  return ret;
}

static void
gst_ovi_denoise_finalize (GObject *object)
{
  GstOviDenoise *self = GST_OVI_DENOISE (object);

  release_engines (self);
  gst_clear_object (&self->cache);
  gst_ovi_engine_config_clear (&self->config);
  g_clear_pointer (&self->image_latent, ovi_tensor_unref);
  g_clear_object (&self->cancellable);
  gst_caps_replace (&self->out_caps, NULL);
  g_cond_clear (&self->cond);
  gst_event_replace (&self->pending_segment, NULL);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_ovi_denoise_class_init (GstOviDenoiseClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  const GParamFlags rw_ready
      = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY;
  const GParamFlags rw_playing
      = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING;

  gobject_class->set_property = gst_ovi_denoise_set_property;
  gobject_class->get_property = gst_ovi_denoise_get_property;
  gobject_class->finalize = gst_ovi_denoise_finalize;

  gst_ovi_engine_install_properties (gobject_class);
  g_object_class_install_property (
      gobject_class, PROP_MODEL,
      g_param_spec_enum (
          "model", "Model",
          "Model variant (auto: the one whose weights are in model-dir, the "
          "tiny model without model-dir)",
          GST_TYPE_OVI_MODEL, GST_OVI_MODEL_AUTO, rw_ready));
  g_object_class_install_property (
      gobject_class, PROP_WIDTH,
      g_param_spec_int (
          "width", "Width",
          "Requested video width (0: the model's default); snapped with the "
          "height to the model's area in multiples of 32, as the official "
          "code does (720 gives 704 with the 720x720 model). Ignored with an "
          "image (the image's shape decides)",
          0, 8192, 0, rw_playing));
  g_object_class_install_property (
      gobject_class, PROP_HEIGHT,
      g_param_spec_int (
          "height", "Height",
          "Requested video height (0: the model's default); snapped as width",
          0, 8192, 0, rw_playing));
  g_object_class_install_property (
      gobject_class, PROP_SEED,
      g_param_spec_uint64 (
          "seed", "Seed",
          "Seed of the initial noise (a prompt file line may override it)", 0,
          G_MAXUINT64, DEFAULT_SEED, rw_playing));
  g_object_class_install_property (
      gobject_class, PROP_STEPS,
      g_param_spec_int (
          "steps", "Steps",
          "Denoising steps (0: the model's default, 50; 4 for the tiny model)",
          0, 1000, DEFAULT_STEPS, rw_playing));
  g_object_class_install_property (
      gobject_class, PROP_SOLVER,
      g_param_spec_enum ("solver", "Solver", "Sampler of the flow-matching ODE",
                         GST_TYPE_OVI_SOLVER, GST_OVI_SOLVER_UNIPC,
                         rw_playing));
  g_object_class_install_property (
      gobject_class, PROP_SHIFT,
      g_param_spec_double ("shift", "Shift", "Timestep shift of the schedule",
                           0.0, 100.0, DEFAULT_SHIFT, rw_playing));
  g_object_class_install_property (
      gobject_class, PROP_VIDEO_GUIDANCE_SCALE,
      g_param_spec_double ("video-guidance-scale", "Video guidance scale",
                           "Classifier-free guidance scale of the video", 0.0,
                           100.0, DEFAULT_VIDEO_GUIDANCE, rw_playing));
  g_object_class_install_property (
      gobject_class, PROP_AUDIO_GUIDANCE_SCALE,
      g_param_spec_double ("audio-guidance-scale", "Audio guidance scale",
                           "Classifier-free guidance scale of the audio", 0.0,
                           100.0, DEFAULT_AUDIO_GUIDANCE, rw_playing));
  g_object_class_install_property (
      gobject_class, PROP_SLG_LAYER,
      g_param_spec_int (
          "slg-layer", "Skip-layer guidance layer",
          "Fusion block skipped in the negative pass (-1 or 0: off)", -1, 1000,
          DEFAULT_SLG_LAYER, rw_playing));
  progress_pspec = g_param_spec_double (
      "progress", "Progress",
      "Progress of the clip being denoised (0..1), notified once per step", 0.0,
      1.0, 0.0, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_property (gobject_class, PROP_PROGRESS,
                                   progress_pspec);
  gst_type_mark_as_plugin_api (GST_TYPE_OVI_MODEL, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_OVI_SOLVER, 0);

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &image_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (
      element_class, "Ovi denoiser", "Filter/Generator/Video/Audio",
      "Generates the video and audio latents of a clip from text embeddings "
      "(and an optional first-frame image) with the Ovi fusion DiT",
      "gst-ovi developers");
  element_class->change_state = gst_ovi_denoise_change_state;
  element_class->set_context = gst_ovi_denoise_set_context;
  element_class->request_new_pad = gst_ovi_denoise_request_new_pad;
  element_class->release_pad = gst_ovi_denoise_release_pad;
}

static void
gst_ovi_denoise_init (GstOviDenoise *self)
{
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad, gst_ovi_denoise_chain);
  gst_pad_set_event_function (self->sinkpad, gst_ovi_denoise_sink_event);
  gst_pad_set_query_function (self->sinkpad, gst_ovi_denoise_query);
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);
  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_query_function (self->srcpad, gst_ovi_denoise_query);
  gst_pad_use_fixed_caps (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  gst_ovi_engine_config_init (&self->config);
  self->seed = DEFAULT_SEED;
  self->steps = DEFAULT_STEPS;
  self->solver = GST_OVI_SOLVER_UNIPC;
  self->shift = DEFAULT_SHIFT;
  self->video_guidance = DEFAULT_VIDEO_GUIDANCE;
  self->audio_guidance = DEFAULT_AUDIO_GUIDANCE;
  self->slg_layer = DEFAULT_SLG_LAYER;
  g_cond_init (&self->cond);
}
