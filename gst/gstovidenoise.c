/* SPDX-License-Identifier: LGPL-2.1-or-later */
/**
 * SECTION:element-ovidenoise
 * @title: ovidenoise
 *
 * Runs the Ovi fusion DiT with the UniPC (or Euler) sampler, per-modality
 * CFG and skip-layer guidance on each clip's text embeddings, and pushes
 * one application/x-ovi-latent buffer per clip holding both latents (video
 * [48, F, H/16, W/16] and audio [L, 20], F32): split it with `tee` into
 * ovivaedec and oviaudiodec.
 *
 * Image-to-video: request the `image` pad (before or after the pipeline
 * starts) and link any raw video to it; the latest frame (converted to RGB,
 * then resized as the official code does: the multiple-of-32 size closest
 * to the model's area, bicubic) is encoded by the Wan2.2 VAE, loaded on
 * demand, and used as the first frame of every following clip. The text pad
 * waits for the first image (or the image pad's EOS).
 *
 * Each denoising step posts an `ovi-progress` element message
 * (clip, step, steps, stage, eta) and updates the read-only `progress`.
 * With `cache` (docs/step-cache.md) the denoiser skips the fused blocks of
 * forwards it can predict; each clip posts an `ovi-cache` element message
 * (clip, cache, threshold, forwards-computed, forwards-skipped).
 * A flush or a change to READY cancels between steps.
 *
 * With `continuation=last-frame` each clip after the first is generated
 * image-to-video from the previous clip's last frame as ovivaedec decoded
 * it: ovivaedec sends it back in an "ovi-last-frame" upstream event, this
 * element waits for it before the next clip (a flush ends the wait; with no
 * ovivaedec downstream it posts an error), and the clip's latent says that
 * its first frame is shown already (shared-frames), so the decoders drop it
 * and the audio under it (docs/elements.md, "Continuous clips").
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 -e ovitextsrc prompt="A cat sings." ! ovidenoise model=720x720_5s seed=42 ! \
 *   tee name=t \
 *   t. ! queue ! ovivaedec ! videoconvert ! video/x-raw,format=I420 ! x264enc ! mp4mux name=m ! \
 *     filesink location=cat.mp4 \
 *   t. ! queue ! oviaudiodec ! audioconvert ! audioresample ! avenc_aac ! m.
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
#include "gstovihelper.h"
#include "gstovitensor.h"
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
/* a starting point on Wan-class models (docs/step-cache.md) */
#define DEFAULT_CACHE_THRESHOLD 0.1
/* the latency reported before a step was measured: about the bf16 step of
 * the real model on one H100 (docs/benchmarks.md), rounded up */
#define STEP_TIME_ESTIMATE (1 * GST_SECOND)

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
  PROP_LORA,
  PROP_LORA_MODE,
  PROP_SIGMAS,
  PROP_CACHE,
  PROP_CACHE_THRESHOLD,
  PROP_CACHE_START,
  PROP_CONTINUATION,
  PROP_PROGRESS,
};

enum { SIGNAL_CONTINUATION_IMAGE, N_SIGNALS };

static GParamSpec *progress_pspec;
static guint signals[N_SIGNALS];

struct _GstOviDenoise {
  GstElement parent;

  GstPad *sinkpad, *srcpad, *imagepad;
  GstOviHelper *helper; /* common properties, stages, flushing, context */

  /* settings, under the object lock */
  GstOviModel model;
  gint width, height;
  guint64 seed;
  gint steps;
  GstOviSolverType solver;
  gdouble shift, video_guidance, audio_guidance;
  gint slg_layer;
  gboolean slg_layer_set; /* FALSE: the model preset's layer */
  gchar *lora;            /* run-time LoRAs, "path[:strength[:target]];..." */
  GstOviLoraMode lora_mode;
  gchar *sigmas; /* explicit Euler sigmas, "1,0.9375,..." or NULL */
  GstOviCacheMode cache;
  gdouble cache_threshold;
  gint cache_start;
  GstOviContinuation continuation;
  gdouble progress;

  /* image state, under the object lock */
  gboolean image_eos;
  gboolean image_failed;   /* an error was posted: the text pad gives up */
  OviTensor *image_latent; /* [48, 1, H/16, W/16] */
  gint image_width, image_height;
  GstVideoInfo image_info;
  gboolean image_info_valid;

  /* streaming state */
  gint text_dim;
  guint64 clip;
  guint64 frame_offset;
  gint upstream_live;   /* -1: not asked yet */
  guint64 upstream_end; /* frame where the last text buffer ended */
  gboolean discont;
  GstEvent *pending_segment; /* held until our caps are out */
  GstCaps *out_caps;
  gint64 step_t0;
  gchar *lora_warning; /* the last unmatched-keys warning posted */
  gchar *merged_loras; /* what the loaded denoiser has merged, or NULL */

  /* continuation=last-frame: the last decoded frame ovivaedec sent back,
   * under the object lock */
  GstBuffer *last_frame; /* packed RGB */
  GstVideoInfo last_frame_info;
  guint64 last_frame_clip;
  /* streaming state of the continuation */
  gboolean can_continue;   /* a clip went out since the start or a flush */
  gint decoder_downstream; /* -1: not asked yet */
  guint clip_shared;       /* frames of this clip already shown (0 or 1) */

  /* latency, under the object lock */
  GstClockTime step_time;      /* measured; NONE: not yet */
  GstClockTime posted_latency; /* the clip time last announced */
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

  if (gst_ovi_helper_set_property (self->helper, prop_id, value))
    return;
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL:
      self->model = g_value_get_enum (value);
      gst_ovi_helper_set_variant (self->helper,
                                  gst_ovi_model_variant (self->model));
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
      self->slg_layer_set = TRUE;
      break;
    case PROP_LORA:
      g_free (self->lora);
      self->lora = g_value_dup_string (value);
      break;
    case PROP_LORA_MODE:
      self->lora_mode = g_value_get_enum (value);
      break;
    case PROP_SIGMAS:
      g_free (self->sigmas);
      self->sigmas = g_value_dup_string (value);
      break;
    case PROP_CACHE:
      self->cache = g_value_get_enum (value);
      break;
    case PROP_CACHE_THRESHOLD:
      self->cache_threshold = g_value_get_double (value);
      break;
    case PROP_CACHE_START:
      self->cache_start = g_value_get_int (value);
      break;
    case PROP_CONTINUATION:
      self->continuation = g_value_get_enum (value);
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

  if (gst_ovi_helper_get_property (self->helper, prop_id, value))
    return;
  GST_OBJECT_LOCK (self);
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
    case PROP_LORA:
      g_value_set_string (value, self->lora);
      break;
    case PROP_LORA_MODE:
      g_value_set_enum (value, self->lora_mode);
      break;
    case PROP_SIGMAS:
      g_value_set_string (value, self->sigmas);
      break;
    case PROP_CACHE:
      g_value_set_enum (value, self->cache);
      break;
    case PROP_CACHE_THRESHOLD:
      g_value_set_double (value, self->cache_threshold);
      break;
    case PROP_CACHE_START:
      g_value_set_int (value, self->cache_start);
      break;
    case PROP_CONTINUATION:
      g_value_set_enum (value, self->continuation);
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

/* ---- the image pad ---- */

/* The VAE encoder: loaded with the denoiser when the image pad exists at
 * READY->PAUSED, else here, on the first image. */
static GstOviEngine *
image_encoder (GstOviDenoise *self)
{
  GstOviEngine *vae
      = gst_ovi_helper_get_engine (self->helper, GST_OVI_STAGE_VIDEO_VAE);

  return vae ? vae
             : gst_ovi_helper_acquire (self->helper, GST_OVI_STAGE_VIDEO_VAE);
}

/* a mapped packed-RGB frame -> [3, H, W] at the snapped i2v size */
static OviTensor *
prepare_rgb_frame (GstOviDenoise *self, GstVideoFrame *rgb, GError **error)
{
  GstOviEngine *denoiser
      = gst_ovi_helper_get_engine (self->helper, GST_OVI_STAGE_DENOISER);

  return ovi_image_prepare_rgb8 (
      GST_VIDEO_FRAME_PLANE_DATA (rgb, 0), GST_VIDEO_FRAME_HEIGHT (rgb),
      GST_VIDEO_FRAME_WIDTH (rgb), GST_VIDEO_FRAME_PLANE_STRIDE (rgb, 0),
      ovi_stage_get_paths (gst_ovi_engine_get_stage (denoiser))->target_area,
      error);
}

/* any raw video frame -> [3, H, W] at the snapped i2v size (an RGB one, as
 * ovivaedec sends back its last frames, is read as it is) */
static OviTensor *
prepare_image (GstOviDenoise *self, GstBuffer *buf, const GstVideoInfo *info,
               GError **error)
{
  GstVideoInfo rgb_info;
  GstVideoFrame in_frame, rgb_frame;
  GstVideoConverter *conv;
  GstBuffer *rgb_buf;
  OviTensor *image;

  if (!gst_video_frame_map (&in_frame, info, buf, GST_MAP_READ)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "the image buffer does not match its caps");
    return NULL;
  }
  if (GST_VIDEO_INFO_FORMAT (info) == GST_VIDEO_FORMAT_RGB) {
    image = prepare_rgb_frame (self, &in_frame, error);
    gst_video_frame_unmap (&in_frame);
    return image;
  }
  gst_video_info_set_format (&rgb_info, GST_VIDEO_FORMAT_RGB, info->width,
                             info->height);
  /* the converter takes no rate change: a frame of a stream has one */
  GST_VIDEO_INFO_FPS_N (&rgb_info) = GST_VIDEO_INFO_FPS_N (info);
  GST_VIDEO_INFO_FPS_D (&rgb_info) = GST_VIDEO_INFO_FPS_D (info);
  rgb_buf = gst_buffer_new_allocate (NULL, rgb_info.size, NULL);
  gst_video_frame_map (&rgb_frame, &rgb_info, rgb_buf, GST_MAP_WRITE);
  conv = gst_video_converter_new (info, &rgb_info, NULL);
  gst_video_converter_frame (conv, &in_frame, &rgb_frame);
  gst_video_converter_free (conv);
  gst_video_frame_unmap (&in_frame);
  image = prepare_rgb_frame (self, &rgb_frame, error);
  gst_video_frame_unmap (&rgb_frame);
  gst_buffer_unref (rgb_buf);
  return image;
}

/* A raw video frame -> the VAE latent of its image, prepared at the snapped
 * i2v size (*image). NULL with the error posted, `what` naming the frame in
 * it ("the image", "the last frame"). */
static OviTensor *
encode_frame (GstOviDenoise *self, GstBuffer *buf, const GstVideoInfo *info,
              const gchar *what, OviTensor **image)
{
  g_autoptr (GError) err = NULL;
  g_autofree gchar *failed = NULL;
  GstOviEngine *vae = image_encoder (self);
  OviTensor *latent;

  if (!vae)
    return NULL; /* acquiring posted the error */
  *image = prepare_image (self, buf, info, &err);
  if (!*image) {
    failed = g_strdup_printf ("Could not prepare %s", what);
    GST_OVI_POST_ERROR (self, failed, err);
    return NULL;
  }
  latent = ovi_video_vae_encode_image (
      ovi_stage_get_video_vae (gst_ovi_engine_get_stage (vae)), *image, &err);
  if (!latent) {
    failed = g_strdup_printf ("Could not encode %s", what);
    GST_OVI_POST_ERROR (self, failed, err);
  }
  return latent;
}

/* With the object lock held: the text pad stops waiting for an image. */
static void
image_failed (GstOviDenoise *self)
{
  self->image_failed = TRUE;
  gst_ovi_helper_wake (self->helper);
}

static GstFlowReturn
gst_ovi_denoise_image_chain (GstPad *pad, GstObject *parent, GstBuffer *buf)
{
  GstOviDenoise *self = GST_OVI_DENOISE (parent);
  g_autoptr (OviTensor) image = NULL;
  GstVideoInfo info;
  OviTensor *latent = NULL;
  gboolean have_info;

  GST_OBJECT_LOCK (self);
  info = self->image_info;
  have_info = self->image_info_valid;
  GST_OBJECT_UNLOCK (self);
  if (have_info)
    latent = encode_frame (self, buf, &info, "the image", &image);
  else
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, ("No caps on the image pad"),
                       (NULL));
  gst_buffer_unref (buf);

  GST_OBJECT_LOCK (self);
  if (!latent) {
    image_failed (self);
    GST_OBJECT_UNLOCK (self);
    return have_info ? GST_FLOW_ERROR : GST_FLOW_NOT_NEGOTIATED;
  }
  GST_INFO_OBJECT (self, "image %dx%d -> %dx%d", info.width, info.height,
                   (gint) image->shape[2], (gint) image->shape[1]);
  g_clear_pointer (&self->image_latent, ovi_tensor_unref);
  self->image_latent = latent;
  self->image_height = (gint) image->shape[1];
  self->image_width = (gint) image->shape[2];
  gst_ovi_helper_wake (self->helper);
  GST_OBJECT_UNLOCK (self);
  return GST_FLOW_OK;
}

static gboolean
gst_ovi_denoise_image_event (GstPad *pad, GstObject *parent, GstEvent *event)
{
  GstOviDenoise *self = GST_OVI_DENOISE (parent);
  gboolean ret = TRUE;

  GST_OBJECT_LOCK (self);
  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS: {
      GstCaps *caps;
      gst_event_parse_caps (event, &caps);
      ret = gst_video_info_from_caps (&self->image_info, caps);
      self->image_info_valid = ret;
      break;
    }
    case GST_EVENT_EOS:
      self->image_eos = TRUE;
      gst_ovi_helper_wake (self->helper);
      break;
    case GST_EVENT_FLUSH_STOP:
      self->image_eos = FALSE;
      self->image_failed = FALSE;
      break;
    default:
      /* the image stream's other events stay here: the clips' timeline is
       * the text pad's */
      break;
  }
  GST_OBJECT_UNLOCK (self);
  gst_event_unref (event);
  return ret;
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
  GST_OBJECT_LOCK (self);
  self->imagepad = pad;
  self->image_eos = FALSE;
  self->image_failed = FALSE;
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
    gst_ovi_helper_wake (self->helper);
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

static GstCaps *
latent_caps (const OviTensor *v, const OviTensor *a)
{
  guint frames = gst_ovi_video_frames_for_latent ((guint) v->shape[1]);

  return gst_caps_new_simple (
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
}

/* pushes CAPS (and the held SEGMENT after it) when the latent shape changes */
static gboolean
update_caps (GstOviDenoise *self, GstCaps *caps)
{
  if (self->out_caps && gst_caps_is_equal (caps, self->out_caps))
    return TRUE;
  if (!gst_pad_push_event (self->srcpad, gst_event_new_caps (caps))) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
                       ("Downstream did not accept the latent caps"),
                       ("%" GST_PTR_FORMAT, caps));
    return FALSE;
  }
  gst_caps_replace (&self->out_caps, caps);
  if (self->pending_segment)
    gst_pad_push_event (self->srcpad, g_steal_pointer (&self->pending_segment));
  return TRUE;
}

static GstFlowReturn
push_latents (GstOviDenoise *self, OviTensor *video, OviTensor *audio,
              gint width, gint height)
{
  g_autoptr (OviTensor) v = gst_ovi_tensor_host_f32 (video, NULL);
  g_autoptr (OviTensor) a = gst_ovi_tensor_host_f32 (audio, NULL);
  g_autoptr (GstCaps) caps = NULL;
  GstStructure *meta;
  GstBuffer *out;
  guint frames;
  GstClockTime pts;

  if (!v || !a || v->ndim != 4 || a->ndim != 2) {
    GST_ELEMENT_ERROR (
        self, LIBRARY, FAILED,
        ("The denoiser returned latents of an unexpected layout"), (NULL));
    return GST_FLOW_ERROR;
  }
  caps = latent_caps (v, a);
  if (!update_caps (self, caps))
    return GST_FLOW_NOT_NEGOTIATED;

  /* a continued clip's first frame is the previous clip's last, shown */
  frames = gst_ovi_video_frames_for_latent ((guint) v->shape[1])
           - self->clip_shared;
  out = gst_buffer_new ();
  gst_buffer_append_memory (out, gst_ovi_tensor_to_memory (v));
  gst_buffer_append_memory (out, gst_ovi_tensor_to_memory (a));
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
  meta = gst_ovi_buffer_add_clip_meta (out);
  gst_structure_set (meta, "clip", G_TYPE_UINT64, self->clip, "width",
                     G_TYPE_INT, width, "height", G_TYPE_INT, height,
                     "shared-frames", G_TYPE_UINT, self->clip_shared, NULL);
  self->frame_offset += frames;
  self->can_continue = TRUE;
  self->clip++;
  return gst_pad_push (self->srcpad, out);
}

/* The three embeddings of a text buffer as [n_i, dim] tensors. */
static gboolean
map_text (GstOviDenoise *self, GstBuffer *buf, OviTensor *text[3])
{
  const int64_t shape[2] = { -1, self->text_dim };
  g_autoptr (GError) err = NULL;
  gint i;

  if (self->text_dim <= 0 || gst_buffer_n_memory (buf) != 3) {
    GST_ELEMENT_ERROR (
        self, STREAM, FORMAT,
        ("ovidenoise takes the text embeddings from ovitextsrc"),
        ("%u memories, dim %d", gst_buffer_n_memory (buf), self->text_dim));
    return FALSE;
  }
  for (i = 0; i < 3; i++) {
    text[i] = gst_ovi_buffer_map_tensor (buf, i, 2, shape, &err);
    if (!text[i]) {
      GST_ELEMENT_ERROR (self, STREAM, FORMAT,
                         ("Text embedding %d is not a whole number of %d-wide "
                          "F32 rows",
                          i, self->text_dim),
                         ("%s", err->message));
      return FALSE;
    }
  }
  return TRUE;
}

/* Waits for the first image when an image pad is linked; returns the
 * latest image latent (or NULL for text-to-video) with the request's
 * settings filled in from the properties. */
static GstFlowReturn
snapshot_settings (GstOviDenoise *self, OviDenoiseRequest *req,
                   OviTensor **image_latent, GCancellable **cancellable)
{
  GstFlowReturn ret = GST_FLOW_OK;

  GST_OBJECT_LOCK (self);
  while (self->imagepad && !self->image_latent && !self->image_eos
         && !self->image_failed && gst_ovi_helper_wait (self->helper))
    ;
  if (gst_ovi_helper_is_flushing (self->helper))
    ret = GST_FLOW_FLUSHING;
  else if (self->image_failed && !self->image_latent)
    ret = GST_FLOW_ERROR; /* the image pad posted the error */
  ovi_denoise_request_init (req);
  req->seed = self->seed;
  req->steps = self->steps;
  req->solver = self->solver == GST_OVI_SOLVER_EULER ? OVI_SOLVER_EULER
                                                     : OVI_SOLVER_UNIPC;
  req->shift = self->shift;
  req->video_guidance = self->video_guidance;
  req->audio_guidance = self->audio_guidance;
  req->slg_layer = self->slg_layer_set ? self->slg_layer : OVI_SLG_LAYER_PRESET;
  req->cache = gst_ovi_enum_nick (GST_TYPE_OVI_CACHE_MODE, self->cache);
  req->cache_threshold = self->cache_threshold;
  req->cache_start = self->cache_start;
  req->width = self->width;
  req->height = self->height;
  if (self->image_latent) {
    *image_latent = ovi_tensor_ref (self->image_latent);
    req->width = self->image_width;
    req->height = self->image_height;
  }
  GST_OBJECT_UNLOCK (self);
  *cancellable = gst_ovi_helper_ref_cancellable (self->helper);
  return ret;
}

/* the overrides of a prompt-file line (GstOviClipMeta) */
static void
apply_clip_meta (GstBuffer *buf, OviDenoiseRequest *req, gboolean have_image)
{
  GstStructure *meta = gst_ovi_buffer_get_clip_meta (buf);
  const gchar *solver;

  if (!meta)
    return;
  gst_structure_get_uint64 (meta, "seed", &req->seed);
  gst_structure_get_int (meta, "steps", &req->steps);
  gst_structure_get_double (meta, "shift", &req->shift);
  gst_structure_get_double (meta, "video-guidance-scale", &req->video_guidance);
  gst_structure_get_double (meta, "audio-guidance-scale", &req->audio_guidance);
  gst_structure_get_int (meta, "slg-layer", &req->slg_layer);
  if (!have_image) {
    gst_structure_get_int (meta, "width", &req->width);
    gst_structure_get_int (meta, "height", &req->height);
  }
  solver = gst_structure_get_string (meta, "solver");
  if (solver)
    req->solver
        = g_str_equal (solver, "euler") ? OVI_SOLVER_EULER : OVI_SOLVER_UNIPC;
  /* the meta outlives the request: its strings can be pointed to */
  if (gst_structure_has_field (meta, "cache"))
    req->cache = gst_structure_get_string (meta, "cache");
  gst_structure_get_double (meta, "cache-threshold", &req->cache_threshold);
  gst_structure_get_int (meta, "cache-start", &req->cache_start);
}

/* A live upstream may stamp clips with the running time: follow its gaps,
 * the frames between the end of its previous clip and the start of this
 * one (a non-live one is restamped from frame counts). Gaps, not its
 * stamps: a continued clip here is a frame shorter than upstream counts. */
static void
follow_live_upstream (GstOviDenoise *self, GstBuffer *buf)
{
  guint64 frame, end;

  if (self->upstream_live < 0) {
    GstQuery *q = gst_query_new_latency ();
    gboolean live = FALSE;
    if (gst_pad_peer_query (self->sinkpad, q))
      gst_query_parse_latency (q, &live, NULL, NULL);
    gst_query_unref (q);
    self->upstream_live = live;
  }
  if (!self->upstream_live || !GST_BUFFER_PTS_IS_VALID (buf))
    return;
  frame = gst_util_uint64_scale_ceil (GST_BUFFER_PTS (buf), GST_OVI_FPS_N,
                                      GST_SECOND * GST_OVI_FPS_D);
  end = GST_BUFFER_DURATION_IS_VALID (buf) ? gst_util_uint64_scale_ceil (
            GST_BUFFER_PTS (buf) + GST_BUFFER_DURATION (buf), GST_OVI_FPS_N,
            GST_SECOND * GST_OVI_FPS_D)
                                           : frame;
  if (frame > self->upstream_end) {
    self->frame_offset += frame - self->upstream_end;
    self->discont = TRUE;
  }
  self->upstream_end = MAX (end, frame);
}

/* ---- latency ---- */

/* The time a clip takes: the measured step time (the estimate before) times
 * the steps. Object lock held. */
static GstClockTime
clip_time (GstOviDenoise *self)
{
  GstClockTime step = GST_CLOCK_TIME_IS_VALID (self->step_time)
                          ? self->step_time
                          : STEP_TIME_ESTIMATE;

  return step * (self->steps > 0 ? self->steps : DEFAULT_STEPS);
}

/* After a clip: the measured step time; a LATENCY message when the clip
 * time moved by more than a tenth from what was last announced (not on
 * every clip's jitter). */
static void
update_latency (GstOviDenoise *self, gint64 elapsed_us, gint steps)
{
  GstClockTime now, before;
  gboolean post;

  if (steps <= 0)
    return;
  GST_OBJECT_LOCK (self);
  self->step_time = elapsed_us * GST_USECOND / steps;
  now = clip_time (self);
  before = self->posted_latency;
  post = !GST_CLOCK_TIME_IS_VALID (before) || now > before + before / 10
         || now < before - before / 10;
  if (post)
    self->posted_latency = now;
  GST_OBJECT_UNLOCK (self);
  if (post) {
    GST_INFO_OBJECT (self, "clip time now %" GST_TIME_FORMAT,
                     GST_TIME_ARGS (now));
    gst_element_post_message (GST_ELEMENT (self),
                              gst_message_new_latency (GST_OBJECT (self)));
  }
}

/* upstream's latency plus the time a clip takes here */
static gboolean
query_latency (GstOviDenoise *self, GstQuery *query)
{
  GstClockTime own;

  if (!gst_pad_peer_query (self->sinkpad, query))
    return FALSE;
  GST_OBJECT_LOCK (self);
  own = clip_time (self);
  if (!GST_CLOCK_TIME_IS_VALID (self->posted_latency))
    self->posted_latency = own;
  GST_OBJECT_UNLOCK (self);
  gst_ovi_add_latency (query, own);
  GST_DEBUG_OBJECT (self, "clip time %" GST_TIME_FORMAT, GST_TIME_ARGS (own));
  return TRUE;
}

/* ---- continuation=last-frame ---- */

/* the src pad's events: the last decoded frame of a clip, from ovivaedec */
static void
take_last_frame (GstOviDenoise *self, const GstStructure *s)
{
  GstBuffer *frame = NULL;
  GstCaps *caps = NULL;
  GstVideoInfo info;
  guint64 clip = 0;

  if (!gst_structure_get (s, "clip", G_TYPE_UINT64, &clip, "caps",
                          GST_TYPE_CAPS, &caps, "buffer", GST_TYPE_BUFFER,
                          &frame, NULL)
      || !gst_video_info_from_caps (&info, caps)) {
    GST_WARNING_OBJECT (self, "ignoring a malformed %" GST_PTR_FORMAT, s);
  } else {
    GST_DEBUG_OBJECT (self, "the last frame of clip %" G_GUINT64_FORMAT, clip);
    GST_OBJECT_LOCK (self);
    gst_buffer_replace (&self->last_frame, frame);
    self->last_frame_info = info;
    self->last_frame_clip = clip;
    gst_ovi_helper_wake (self->helper);
    GST_OBJECT_UNLOCK (self);
  }
  gst_clear_buffer (&frame);
  gst_clear_caps (&caps);
}

static gboolean
gst_ovi_denoise_src_event (GstPad *pad, GstObject *parent, GstEvent *event)
{
  GstOviDenoise *self = GST_OVI_DENOISE (parent);

  if (GST_EVENT_TYPE (event) == GST_EVENT_CUSTOM_UPSTREAM
      && gst_event_has_name (event, GST_OVI_LAST_FRAME)) {
    take_last_frame (self, gst_event_get_structure (event));
    gst_event_unref (event);
    return TRUE;
  }
  return gst_pad_event_default (pad, parent, event);
}

/* the property, or the clip's prompt-file line */
static gboolean
wants_continuation (GstOviDenoise *self, GstBuffer *text)
{
  GstStructure *meta = gst_ovi_buffer_get_clip_meta (text);
  const gchar *line
      = meta ? gst_structure_get_string (meta, "continuation") : NULL;
  gboolean want;

  if (line)
    return g_str_equal (line, "last-frame");
  GST_OBJECT_LOCK (self);
  want = self->continuation == GST_OVI_CONTINUATION_LAST_FRAME;
  GST_OBJECT_UNLOCK (self);
  return want;
}

/* Whether an ovivaedec downstream sends the last frames back (asked once
 * per run); FALSE with an error posted: waiting would hang. */
static gboolean
check_decoder_downstream (GstOviDenoise *self)
{
  if (self->decoder_downstream < 0) {
    GstQuery *q = gst_query_new_custom (
        GST_QUERY_CUSTOM, gst_structure_new_empty (GST_OVI_LAST_FRAME));
    self->decoder_downstream = gst_pad_peer_query (self->srcpad, q);
    gst_query_unref (q);
  }
  if (!self->decoder_downstream)
    GST_ELEMENT_ERROR (
        self, CORE, NEGOTIATION,
        ("continuation=last-frame needs an ovivaedec downstream, and none "
         "answered"),
        ("no element downstream answered the %s query: each clip continues "
         "from the previous clip's last frame as ovivaedec decodes it; link "
         "ovivaedec after ovidenoise (a tee and a queue may be between) or "
         "set continuation=none",
         GST_OVI_LAST_FRAME));
  return self->decoder_downstream;
}

/* Waits until ovivaedec sent back the last frame of `clip`. */
static GstFlowReturn
wait_last_frame (GstOviDenoise *self, guint64 clip, GstBuffer **frame,
                 GstVideoInfo *info)
{
  GstFlowReturn ret = GST_FLOW_OK;

  GST_OBJECT_LOCK (self);
  while ((!self->last_frame || self->last_frame_clip < clip)
         && gst_ovi_helper_wait (self->helper))
    ;
  if (gst_ovi_helper_is_flushing (self->helper)) {
    ret = GST_FLOW_FLUSHING;
  } else {
    *frame = gst_buffer_ref (self->last_frame);
    *info = self->last_frame_info;
  }
  GST_OBJECT_UNLOCK (self);
  return ret;
}

/* An `ovi-continuation` element message, and the conditioning image (the
 * [3, H, W] F32 that goes to the VAE encoder) to the continuation-image
 * signal's handlers. */
static void
announce_continuation (GstOviDenoise *self, OviTensor *image)
{
  gint height = (gint) image->shape[1], width = (gint) image->shape[2];

  GST_INFO_OBJECT (self,
                   "clip %" G_GUINT64_FORMAT ": from the last frame of "
                   "clip %" G_GUINT64_FORMAT " (%dx%d)",
                   self->clip, self->clip - 1, width, height);
  gst_element_post_message (
      GST_ELEMENT (self),
      gst_message_new_element (
          GST_OBJECT (self),
          gst_structure_new ("ovi-continuation", "clip", G_TYPE_UINT64,
                             self->clip, "from-clip", G_TYPE_UINT64,
                             self->clip - 1, "width", G_TYPE_INT, width,
                             "height", G_TYPE_INT, height, NULL)));
  if (g_signal_has_handler_pending (self, signals[SIGNAL_CONTINUATION_IMAGE], 0,
                                    FALSE)) {
    GstBuffer *buf = gst_buffer_new ();
    gst_buffer_append_memory (buf, gst_ovi_tensor_to_memory (image));
    g_signal_emit (self, signals[SIGNAL_CONTINUATION_IMAGE], 0, self->clip,
                   width, height, buf);
    gst_buffer_unref (buf);
  }
}

/* continuation=last-frame: from the second clip on, the previous clip's
 * last decoded frame becomes this clip's first (image-to-video), prepared
 * as an image on the image pad; the clip's first frame is then marked as
 * shown already. */
static GstFlowReturn
continue_from_last_frame (GstOviDenoise *self, GstBuffer *text,
                          OviDenoiseRequest *req, OviTensor **image_latent)
{
  g_autoptr (OviTensor) image = NULL;
  GstBuffer *frame = NULL;
  GstVideoInfo info;
  OviTensor *latent;
  GstFlowReturn ret;

  self->clip_shared = 0;
  if (!self->can_continue || !wants_continuation (self, text))
    return GST_FLOW_OK;
  if (!check_decoder_downstream (self))
    return GST_FLOW_ERROR;
  ret = wait_last_frame (self, self->clip - 1, &frame, &info);
  if (ret != GST_FLOW_OK)
    return ret;
  latent = encode_frame (self, frame, &info, "the last frame", &image);
  gst_buffer_unref (frame);
  if (!latent)
    return GST_FLOW_ERROR;
  announce_continuation (self, image);
  g_clear_pointer (image_latent, ovi_tensor_unref);
  *image_latent = latent;
  req->width = (gint) image->shape[2];
  req->height = (gint) image->shape[1];
  self->clip_shared = 1;
  return GST_FLOW_OK;
}

/* the clip's forwards (one CFG branch of one step each), computed or
 * skipped by the step cache */
static void
post_cache_stats (GstOviDenoise *self, const OviDenoiseRequest *req,
                  const OviDenoiseStats *stats)
{
  GST_INFO_OBJECT (self,
                   "clip %" G_GUINT64_FORMAT ": forwards: %d computed, %d "
                   "skipped (cache %s)",
                   self->clip, stats->forwards_computed,
                   stats->forwards_skipped, req->cache ? req->cache : "off");
  gst_element_post_message (
      GST_ELEMENT (self),
      gst_message_new_element (
          GST_OBJECT (self),
          gst_structure_new (
              "ovi-cache", "clip", G_TYPE_UINT64, self->clip, "cache",
              G_TYPE_STRING, req->cache ? req->cache : "off", "threshold",
              G_TYPE_DOUBLE, req->cache_threshold, "forwards-computed",
              G_TYPE_INT, stats->forwards_computed, "forwards-skipped",
              G_TYPE_INT, stats->forwards_skipped, NULL)));
}

static GstFlowReturn
denoise (GstOviDenoise *self, GstOviEngine *engine, OviDenoiseRequest *req,
         GCancellable *cancellable)
{
  g_autoptr (OviTensor) video = NULL;
  g_autoptr (OviTensor) audio = NULL;
  g_autoptr (GError) err = NULL;
  StepData sd = { self, self->clip };
  OviDenoiseStats stats = { 0 };
  gboolean ok;

  req->stats = &stats;
  GST_INFO_OBJECT (self,
                   "clip %" G_GUINT64_FORMAT ": %dx%d, %d steps, "
                   "seed %" G_GUINT64_FORMAT "%s",
                   self->clip, req->width, req->height, req->steps, req->seed,
                   req->image_latent ? ", image-to-video" : "");
  self->step_t0 = g_get_monotonic_time ();
  set_progress (self, 0.0);
  /* the denoiser takes turns per step with the other users of the stage */
  ok = ovi_denoiser_run (
      ovi_stage_get_denoiser (gst_ovi_engine_get_stage (engine)), req, on_step,
      &sd, cancellable, &video, &audio, &err);
  if (!ok)
    return GST_OVI_HELPER_FLOW_ERROR (self->helper, "Denoising failed", err);
  update_latency (self, g_get_monotonic_time () - self->step_t0, req->steps);
  post_cache_stats (self, req, &stats);
  return push_latents (self, video, audio, req->width, req->height);
}

/* ---- LoRAs and explicit sigmas (docs/lora.md) ---- */

/* what a request points to for one clip */
typedef struct {
  gchar *lora;
  gdouble *sigmas;
} ClipExtras;

static void
clip_extras_clear (ClipExtras *x)
{
  g_clear_pointer (&x->lora, g_free);
  g_clear_pointer (&x->sigmas, g_free);
}

/* The clip's LoRAs and sigmas: the properties', or its prompt-file line's. */
static gboolean
clip_extras (GstOviDenoise *self, GstBuffer *buf, OviDenoiseRequest *req,
             ClipExtras *x, GError **error)
{
  GstStructure *meta = gst_ovi_buffer_get_clip_meta (buf);
  g_autofree gchar *sigmas = NULL;

  GST_OBJECT_LOCK (self);
  x->lora = g_strdup (self->lora);
  sigmas = g_strdup (self->sigmas);
  GST_OBJECT_UNLOCK (self);
  if (meta && gst_structure_has_field (meta, "lora")) {
    g_free (x->lora);
    x->lora = g_strdup (gst_structure_get_string (meta, "lora"));
  }
  if (meta && gst_structure_has_field (meta, "sigmas")) {
    g_free (sigmas);
    sigmas = g_strdup (gst_structure_get_string (meta, "sigmas"));
  }
  req->loras = x->lora;
  if (sigmas == NULL || *sigmas == '\0')
    return TRUE;
  if (!ovi_sigmas_parse (sigmas, &x->sigmas, &req->n_sigmas, error))
    return FALSE;
  req->sigmas = x->sigmas;
  return TRUE;
}

/* This clip's LoRAs merged or at run time (lora-mode): the request keeps
 * them when they run unmerged; a reload merges them when the loaded
 * denoiser's merged ones must change, after they are checked against the
 * loaded model so that a bad list leaves it loaded. FALSE: an error was
 * posted. */
static gboolean
choose_lora_path (GstOviDenoise *self, GstOviEngine **engine,
                  OviDenoiseRequest *req)
{
  const gchar *want = req->loras && *req->loras ? req->loras : NULL;
  OviDenoiser *denoiser
      = ovi_stage_get_denoiser (gst_ovi_engine_get_stage (*engine));
  g_autoptr (GError) err = NULL;
  GstOviLoraMode mode;

  GST_OBJECT_LOCK (self);
  mode = self->lora_mode;
  GST_OBJECT_UNLOCK (self);
  if (mode == GST_OVI_LORA_MODE_UNMERGED)
    return TRUE;
  req->loras = NULL;
  if (g_strcmp0 (want, self->merged_loras) == 0)
    return TRUE;
  if (mode == GST_OVI_LORA_MODE_AUTO && self->merged_loras == NULL) {
    req->loras = want;
    return TRUE;
  }
  if (want && !ovi_denoiser_check_loras (denoiser, want, &err)) {
    GST_OVI_POST_ERROR (self, "Invalid LoRA", err);
    return FALSE;
  }
  GST_INFO_OBJECT (self, "reloading the denoiser with LoRAs '%s' merged",
                   want ? want : "");
  gst_ovi_helper_set_loras (self->helper, want);
  *engine = gst_ovi_helper_acquire (self->helper, GST_OVI_STAGE_DENOISER);
  g_free (self->merged_loras);
  self->merged_loras = *engine ? g_strdup (want) : NULL;
  return *engine != NULL;
}

/* keys of a LoRA that match nothing in the model: a warning, once */
static void
warn_lora (GstOviDenoise *self, OviDenoiser *denoiser)
{
  const gchar *warning = ovi_denoiser_get_lora_warning (denoiser);

  if (warning == NULL || g_strcmp0 (warning, self->lora_warning) == 0)
    return;
  g_free (self->lora_warning);
  self->lora_warning = g_strdup (warning);
  GST_ELEMENT_WARNING (self, RESOURCE, SETTINGS,
                       ("Some LoRA keys match nothing in the model"),
                       ("%s", warning));
}

static GstFlowReturn
gst_ovi_denoise_chain (GstPad *pad, GstObject *parent, GstBuffer *buf)
{
  GstOviDenoise *self = GST_OVI_DENOISE (parent);
  GstOviEngine *engine
      = gst_ovi_helper_get_engine (self->helper, GST_OVI_STAGE_DENOISER);
  OviTensor *text[3] = { NULL, NULL, NULL };
  g_autoptr (OviTensor) image_latent = NULL;
  g_autoptr (GCancellable) cancellable = NULL;
  g_autoptr (GError) err = NULL;
  OviDenoiseRequest req;
  ClipExtras extras = { 0 };
  GstFlowReturn ret;
  gint i;

  if (!engine) {
    gst_buffer_unref (buf);
    return GST_FLOW_FLUSHING;
  }
  ret = map_text (self, buf, text) ? GST_FLOW_OK : GST_FLOW_ERROR;
  if (ret == GST_FLOW_OK)
    ret = snapshot_settings (self, &req, &image_latent, &cancellable);
  if (ret == GST_FLOW_OK) {
    apply_clip_meta (buf, &req, image_latent != NULL);
    ret = continue_from_last_frame (self, buf, &req, &image_latent);
  }
  if (ret == GST_FLOW_OK) {
    follow_live_upstream (self, buf);
    if (!ovi_denoise_request_resolve (
            &req, ovi_stage_get_paths (gst_ovi_engine_get_stage (engine)),
            image_latent != NULL, &err)) {
      GST_OVI_POST_ERROR (self, "Invalid width/height", err);
      ret = GST_FLOW_ERROR;
    } else if (!clip_extras (self, buf, &req, &extras, &err)) {
      GST_OVI_POST_ERROR (self, "Invalid sigmas", err);
      ret = GST_FLOW_ERROR;
    } else if (!choose_lora_path (self, &engine, &req)) {
      ret = GST_FLOW_ERROR;
    }
  }
  if (ret == GST_FLOW_OK) {
    req.text_pos = text[0];
    req.text_video_neg = text[1];
    req.text_audio_neg = text[2];
    req.image_latent = image_latent;
    ret = denoise (self, engine, &req, cancellable);
    warn_lora (self,
               ovi_stage_get_denoiser (gst_ovi_engine_get_stage (engine)));
  }
  clip_extras_clear (&extras);
  for (i = 0; i < 3; i++)
    g_clear_pointer (&text[i], ovi_tensor_unref);
  gst_buffer_unref (buf);
  return ret;
}

static gboolean
gst_ovi_denoise_sink_event (GstPad *pad, GstObject *parent, GstEvent *event)
{
  GstOviDenoise *self = GST_OVI_DENOISE (parent);

  gst_ovi_helper_sink_event (self->helper, event);
  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS: {
      GstCaps *caps;
      gint dim = 0;
      gst_event_parse_caps (event, &caps);
      gst_structure_get_int (gst_caps_get_structure (caps, 0), "dim", &dim);
      self->text_dim = dim;
      /* our own caps go out with the first clip */
      gst_event_unref (event);
      return dim > 0;
    }
    case GST_EVENT_SEGMENT:
      if (!gst_pad_has_current_caps (self->srcpad)) {
        gst_event_replace (&self->pending_segment, event);
        gst_event_unref (event);
        return TRUE;
      }
      break;
    case GST_EVENT_EOS:
      gst_event_replace (&self->pending_segment, NULL);
      break;
    case GST_EVENT_FLUSH_STOP:
      self->discont = TRUE;
      self->can_continue = FALSE; /* the next clip starts anew */
      break;
    default:
      break;
  }
  return gst_pad_event_default (pad, parent, event);
}

static gboolean
gst_ovi_denoise_query (GstPad *pad, GstObject *parent, GstQuery *query)
{
  GstOviDenoise *self = GST_OVI_DENOISE (parent);

  if (gst_ovi_helper_handle_query (self->helper, query))
    return TRUE;
  if (pad == self->srcpad && GST_QUERY_TYPE (query) == GST_QUERY_LATENCY)
    return query_latency (self, query);
  return gst_pad_query_default (pad, parent, query);
}

static void
gst_ovi_denoise_set_context (GstElement *element, GstContext *context)
{
  GstOviDenoise *self = GST_OVI_DENOISE (element);

  gst_ovi_helper_set_context (self->helper, context,
                              GST_ELEMENT_CLASS (parent_class));
}

static gboolean
start (GstOviDenoise *self)
{
  gboolean want_vae;

  GST_OBJECT_LOCK (self);
  g_free (self->merged_loras);
  self->merged_loras = self->lora_mode != GST_OVI_LORA_MODE_UNMERGED
                               && self->lora && *self->lora
                           ? g_strdup (self->lora)
                           : NULL;
  GST_OBJECT_UNLOCK (self);
  gst_ovi_helper_set_loras (self->helper, self->merged_loras);
  if (!gst_ovi_helper_start (self->helper, GST_OVI_STAGE_DENOISER))
    return FALSE;
  GST_OBJECT_LOCK (self);
  want_vae = self->imagepad != NULL
             || self->continuation == GST_OVI_CONTINUATION_LAST_FRAME;
  gst_clear_buffer (&self->last_frame);
  self->image_eos = FALSE;
  self->image_failed = FALSE;
  GST_OBJECT_UNLOCK (self);
  if (want_vae
      && !gst_ovi_helper_acquire (self->helper, GST_OVI_STAGE_VIDEO_VAE))
    return FALSE;
  self->clip = 0;
  self->frame_offset = 0;
  self->upstream_live = -1;
  self->upstream_end = 0;
  self->can_continue = FALSE;
  self->decoder_downstream = -1;
  self->clip_shared = 0;
  self->discont = FALSE;
  gst_event_replace (&self->pending_segment, NULL);
  gst_caps_replace (&self->out_caps, NULL);
  return TRUE;
}

static GstStateChangeReturn
gst_ovi_denoise_change_state (GstElement *element, GstStateChange transition)
{
  GstOviDenoise *self = GST_OVI_DENOISE (element);
  GstStateChangeReturn ret;

  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED && !start (self))
    return GST_STATE_CHANGE_FAILURE;
  ret = gst_ovi_helper_change_state (self->helper, transition,
                                     GST_ELEMENT_CLASS (parent_class));
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    GST_OBJECT_LOCK (self);
    g_clear_pointer (&self->image_latent, ovi_tensor_unref);
    self->image_info_valid = FALSE;
    GST_OBJECT_UNLOCK (self);
    self->text_dim = 0;
  }
  return ret;
}

static void
gst_ovi_denoise_finalize (GObject *object)
{
  GstOviDenoise *self = GST_OVI_DENOISE (object);

  gst_clear_object (&self->helper);
  g_clear_pointer (&self->image_latent, ovi_tensor_unref);
  gst_clear_buffer (&self->last_frame);
  gst_caps_replace (&self->out_caps, NULL);
  gst_event_replace (&self->pending_segment, NULL);
  g_free (self->lora);
  g_free (self->sigmas);
  g_free (self->lora_warning);
  g_free (self->merged_loras);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
install_properties (GObjectClass *gobject_class)
{
  const GParamFlags rw_ready
      = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY;
  const GParamFlags rw_playing
      = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING;

  gst_ovi_helper_install_properties (gobject_class);
  /**
   * GstOviDenoise:model:
   *
   * The model variant; auto takes the one whose weights are in model-dir.
   */
  g_object_class_install_property (
      gobject_class, PROP_MODEL,
      g_param_spec_enum (
          "model", "Model",
          "Model variant (auto: the one whose weights are in model-dir, the "
          "tiny model without model-dir)",
          GST_TYPE_OVI_MODEL, GST_OVI_MODEL_AUTO, rw_ready));
  /**
   * GstOviDenoise:width:
   *
   * Requested video width, snapped with the height to the model's area.
   */
  g_object_class_install_property (
      gobject_class, PROP_WIDTH,
      g_param_spec_int (
          "width", "Width",
          "Requested video width (0: the model's default); snapped with the "
          "height to the model's area in multiples of 32, as the official "
          "code does (720 gives 704 with the 720x720 model). Ignored with an "
          "image (the image's shape decides)",
          0, 8192, 0, rw_playing));
  /**
   * GstOviDenoise:height:
   *
   * Requested video height, snapped as #GstOviDenoise:width.
   */
  g_object_class_install_property (
      gobject_class, PROP_HEIGHT,
      g_param_spec_int (
          "height", "Height",
          "Requested video height (0: the model's default); snapped as width",
          0, 8192, 0, rw_playing));
  /**
   * GstOviDenoise:seed:
   *
   * Seed of the initial noise of every clip.
   */
  g_object_class_install_property (
      gobject_class, PROP_SEED,
      g_param_spec_uint64 (
          "seed", "Seed",
          "Seed of the initial noise (a prompt file line may override it)", 0,
          G_MAXUINT64, DEFAULT_SEED, rw_playing));
  /**
   * GstOviDenoise:steps:
   *
   * Denoising steps per clip. The default is 50; 0 takes the model preset's
   * count (50 for the real models, 4 for the tiny model).
   */
  g_object_class_install_property (
      gobject_class, PROP_STEPS,
      g_param_spec_int ("steps", "Steps",
                        "Denoising steps (0: the model preset's: 50, or 4 for "
                        "the tiny model)",
                        0, 1000, DEFAULT_STEPS, rw_playing));
  /**
   * GstOviDenoise:solver:
   *
   * Sampler of the flow-matching ODE.
   */
  g_object_class_install_property (
      gobject_class, PROP_SOLVER,
      g_param_spec_enum ("solver", "Solver", "Sampler of the flow-matching ODE",
                         GST_TYPE_OVI_SOLVER, GST_OVI_SOLVER_UNIPC,
                         rw_playing));
  /**
   * GstOviDenoise:shift:
   *
   * Timestep shift of the sampling schedule.
   */
  g_object_class_install_property (
      gobject_class, PROP_SHIFT,
      g_param_spec_double ("shift", "Shift", "Timestep shift of the schedule",
                           0.0, 100.0, DEFAULT_SHIFT, rw_playing));
  /**
   * GstOviDenoise:video-guidance-scale:
   *
   * Classifier-free guidance scale of the video.
   */
  g_object_class_install_property (
      gobject_class, PROP_VIDEO_GUIDANCE_SCALE,
      g_param_spec_double ("video-guidance-scale", "Video guidance scale",
                           "Classifier-free guidance scale of the video", 0.0,
                           100.0, DEFAULT_VIDEO_GUIDANCE, rw_playing));
  /**
   * GstOviDenoise:audio-guidance-scale:
   *
   * Classifier-free guidance scale of the audio.
   */
  g_object_class_install_property (
      gobject_class, PROP_AUDIO_GUIDANCE_SCALE,
      g_param_spec_double ("audio-guidance-scale", "Audio guidance scale",
                           "Classifier-free guidance scale of the audio", 0.0,
                           100.0, DEFAULT_AUDIO_GUIDANCE, rw_playing));
  /**
   * GstOviDenoise:slg-layer:
   *
   * Fusion block skipped in the negative pass (skip-layer guidance). Until
   * it is set, the model preset's: 11 for the released models, 1 for the
   * tiny one. A block past the model's last is an error.
   */
  g_object_class_install_property (
      gobject_class, PROP_SLG_LAYER,
      g_param_spec_int (
          "slg-layer", "Skip-layer guidance layer",
          "Fusion block skipped in the negative pass (-1 or 0: off)", -1, 1000,
          DEFAULT_SLG_LAYER, rw_playing));
  /**
   * GstOviDenoise:lora:
   *
   * LoRAs applied at run time to the fusion DiT (docs/lora.md): entries
   * `path[:strength[:video|audio|both]]` separated by `;`. Changeable in
   * PLAYING: a change takes effect at the next clip, without a reload.
   */
  g_object_class_install_property (
      gobject_class, PROP_LORA,
      g_param_spec_string (
          "lora", "LoRA",
          "LoRAs for the next clips, 'path[:strength[:video|audio|both]]' "
          "separated by ';' (strength 1 and the video tower by default; a "
          "prompt file line's \"lora\" overrides it for its clip)",
          NULL, rw_playing));
  /**
   * GstOviDenoise:lora-mode:
   *
   * Whether #GstOviDenoise:lora is merged into the weights at load or
   * applied at run time (docs/lora.md).
   */
  g_object_class_install_property (
      gobject_class, PROP_LORA_MODE,
      g_param_spec_enum (
          "lora-mode", "LoRA mode",
          "auto: the LoRAs set before loading are merged, later changes run "
          "unmerged (or reload when merged ones must change); merged: a "
          "change reloads the denoiser with them merged; unmerged: always at "
          "run time, never a reload",
          GST_TYPE_OVI_LORA_MODE, GST_OVI_LORA_MODE_AUTO, rw_ready));
  /**
   * GstOviDenoise:sigmas:
   *
   * Euler on explicit sigmas, for few-step distilled models and LoRAs.
   */
  g_object_class_install_property (
      gobject_class, PROP_SIGMAS,
      g_param_spec_string (
          "sigmas", "Sigmas",
          "Euler on these sigmas instead of steps/solver/shift, decreasing "
          "in [0, 1], e.g. '1,0.9375,0.8333,0.625,0' (the 4-step Lightning "
          "LoRAs at shift 5); empty: off",
          NULL, rw_playing));
  g_object_class_install_property (
      gobject_class, PROP_CACHE,
      g_param_spec_enum (
          "cache", "Step cache",
          "Skip the fused blocks of denoising forwards whose change is "
          "predictable (a prompt-file line may override it)",
          GST_TYPE_OVI_CACHE_MODE, GST_OVI_CACHE_OFF, rw_playing));
  g_object_class_install_property (
      gobject_class, PROP_CACHE_THRESHOLD,
      g_param_spec_double (
          "cache-threshold", "Step cache threshold",
          "Skip while the cache's accumulated estimate stays under this "
          "(0: nothing skipped; larger skips more)",
          0.0, 1e6, DEFAULT_CACHE_THRESHOLD, rw_playing));
  g_object_class_install_property (
      gobject_class, PROP_CACHE_START,
      g_param_spec_int ("cache-start", "Step cache start",
                        "Denoising steps always computed first (-1: 20 % of "
                        "the steps); the last step is always computed",
                        -1, 1000, -1, rw_playing));
  /**
   * GstOviDenoise:continuation:
   *
   * last-frame: each clip after the first is generated image-to-video from
   * the previous clip's last frame as ovivaedec decoded it (ovivaedec sends
   * it back upstream); that shared frame is shown once: ovivaedec drops the
   * continued clip's first frame and oviaudiodec the audio under it. A
   * prompt-file line's "continuation" overrides it for its clip.
   */
  g_object_class_install_property (
      gobject_class, PROP_CONTINUATION,
      g_param_spec_enum (
          "continuation", "Continuation",
          "What a clip after the first starts from: none, or last-frame (the "
          "previous clip's last decoded frame, sent back by an ovivaedec "
          "downstream, image-to-video; the shared frame is shown once). "
          "Applies to the next clip; a prompt-file line may override it",
          GST_TYPE_OVI_CONTINUATION, GST_OVI_CONTINUATION_NONE, rw_playing));
  /**
   * GstOviDenoise:progress:
   *
   * Progress of the clip being denoised, notified once per step.
   */
  progress_pspec = g_param_spec_double (
      "progress", "Progress",
      "Progress of the clip being denoised (0..1), notified once per step", 0.0,
      1.0, 0.0, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_property (gobject_class, PROP_PROGRESS,
                                   progress_pspec);
  gst_type_mark_as_plugin_api (GST_TYPE_OVI_MODEL, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_OVI_SOLVER, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_OVI_LORA_MODE, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_OVI_CACHE_MODE, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_OVI_CONTINUATION, 0);
}

static void
gst_ovi_denoise_class_init (GstOviDenoiseClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->set_property = gst_ovi_denoise_set_property;
  gobject_class->get_property = gst_ovi_denoise_get_property;
  gobject_class->finalize = gst_ovi_denoise_finalize;
  install_properties (gobject_class);
  /**
   * GstOviDenoise::continuation-image:
   * @clip: the clip about to be generated from it
   * @width: @height: its size
   * @image: the conditioning image, [3, @height, @width] F32 in [-1, 1]
   *
   * Emitted on the streaming thread before the previous clip's last frame
   * is encoded as the first frame of @clip (continuation=last-frame), for
   * applications and tests that look at what a clip continues from.
   */
  signals[SIGNAL_CONTINUATION_IMAGE]
      = g_signal_new ("continuation-image", G_TYPE_FROM_CLASS (klass),
                      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 4,
                      G_TYPE_UINT64, G_TYPE_INT, G_TYPE_INT, GST_TYPE_BUFFER);

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &image_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (
      element_class, "Ovi denoiser", "Filter/Generator/Video/Audio",
      "Generates the video and audio latents of a clip from text embeddings "
      "(and an optional first-frame image) with the Ovi fusion DiT",
      GST_OVI_AUTHOR);
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
  gst_pad_set_event_function (self->srcpad, gst_ovi_denoise_src_event);
  gst_pad_use_fixed_caps (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  self->helper = gst_ovi_helper_new (GST_ELEMENT (self));
  self->seed = DEFAULT_SEED;
  self->steps = DEFAULT_STEPS;
  self->solver = GST_OVI_SOLVER_UNIPC;
  self->shift = DEFAULT_SHIFT;
  self->video_guidance = DEFAULT_VIDEO_GUIDANCE;
  self->audio_guidance = DEFAULT_AUDIO_GUIDANCE;
  self->slg_layer = DEFAULT_SLG_LAYER;
  self->cache_threshold = DEFAULT_CACHE_THRESHOLD;
  self->cache_start = -1;
  self->step_time = GST_CLOCK_TIME_NONE;
  self->posted_latency = GST_CLOCK_TIME_NONE;
}
