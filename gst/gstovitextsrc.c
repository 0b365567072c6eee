/* SPDX-License-Identifier: LGPL-2.1-or-later */
/**
 * SECTION:element-ovitextsrc
 * @title: ovitextsrc
 *
 * Turns prompts into the umT5 text embeddings ovidenoise takes: one buffer
 * per clip (prompt, video negative prompt, audio negative prompt), with a
 * GstOviClipMeta carrying the prompt and its per-clip overrides.
 *
 * Prompts come, in this order, from prompts queued with the `push-prompt`
 * action signal, then the `location` file (one prompt per line, or one JSON
 * object per line with per-clip overrides such as "seed"), then the
 * `prompt` property (read again at every clip, so it may change while
 * playing). With num-clips=-1 the stream ends after the file's prompts, or
 * after one clip of `prompt`; with neither, it waits for pushed prompts
 * until the `end-of-stream` action signal.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 -e ovitextsrc prompt="A chef flips a pancake." ! ovidenoise \
 *   ! tee name=t t. ! queue ! ovivaedec ! videoconvert ! autovideosink \
 *   t. ! queue ! oviaudiodec ! audioconvert ! autoaudiosink
 * ]|
 *
 * Base class: GstPushSrc in TIME format. One create() is one clip; unlock()
 * (flush, PAUSED->READY) cancels the encode through a GCancellable and wakes
 * a create() waiting for pushed prompts.
 */
#include "gstovitextsrc.h"

#include "gstovicaps.h"
#include "gstovihelper.h"
#include "gstovitensor.h"
#include "gstoviutil.h"

GST_DEBUG_CATEGORY_STATIC (gst_ovi_text_src_debug);
#define GST_CAT_DEFAULT gst_ovi_text_src_debug

enum {
  PROP_PROMPT = GST_OVI_PROP_LAST,
  PROP_VIDEO_NEGATIVE_PROMPT,
  PROP_AUDIO_NEGATIVE_PROMPT,
  PROP_LOCATION,
  PROP_NUM_CLIPS,
  PROP_IS_LIVE,
  PROP_TIMESTAMPS,
};

enum { SIGNAL_PUSH_PROMPT, SIGNAL_END_OF_STREAM, N_SIGNALS };

static guint signals[N_SIGNALS];

struct _GstOviTextSrc {
  GstPushSrc parent;

  GstOviHelper *helper; /* common properties, stage, flushing, context */

  /* settings, under the object lock */
  gchar *prompt;
  gchar *video_negative_prompt;
  gchar *audio_negative_prompt;
  gchar *location;
  gint num_clips;
  gboolean is_live;
  GstOviTimestamps timestamps;

  /* pushed prompts, under the object lock */
  GQueue queue; /* GstOviPromptEntry */
  gboolean app_eos;

  /* streaming state */
  GPtrArray *file_entries;
  guint file_index;
  guint64 clip;
  guint64 frame_offset;
  guint clip_frames;
  gint dim;
};

#define gst_ovi_text_src_parent_class parent_class
G_DEFINE_TYPE (GstOviTextSrc, gst_ovi_text_src, GST_TYPE_PUSH_SRC);
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE (
    ovitextsrc, "ovitextsrc", GST_RANK_NONE, GST_TYPE_OVI_TEXT_SRC,
    GST_DEBUG_CATEGORY_INIT (gst_ovi_text_src_debug, "ovitextsrc", 0,
                             "ovi text encoder source"));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE (
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS (GST_OVI_TEXT_CAPS));

static void
gst_ovi_text_src_push_prompt (GstOviTextSrc *self, const gchar *prompt)
{
  GstOviPromptEntry *e = NULL;

  if (!prompt || !*prompt) {
    GST_WARNING_OBJECT (self, "ignoring an empty pushed prompt");
    return;
  }
  if (prompt[0] == '{') {
    g_autoptr (GError) err = NULL;
    g_autoptr (GPtrArray) a
        = gst_ovi_parse_prompts (prompt, "push-prompt", &err);
    if (!a) {
      /* a live channel goes on with the next prompt */
      GST_ELEMENT_WARNING (
          self, RESOURCE, SETTINGS,
          ("Skipping the pushed prompt %s: %s", prompt, err->message), (NULL));
      return;
    }
    e = gst_ovi_prompt_entry_copy (g_ptr_array_index (a, 0));
  } else {
    e = gst_ovi_prompt_entry_new (prompt);
  }
  GST_OBJECT_LOCK (self);
  g_queue_push_tail (&self->queue, e);
  gst_ovi_helper_wake (self->helper);
  GST_OBJECT_UNLOCK (self);
}

static void
gst_ovi_text_src_end_of_stream (GstOviTextSrc *self)
{
  GST_OBJECT_LOCK (self);
  self->app_eos = TRUE;
  gst_ovi_helper_wake (self->helper);
  GST_OBJECT_UNLOCK (self);
}

static void
gst_ovi_text_src_set_property (GObject *object, guint prop_id,
                               const GValue *value, GParamSpec *pspec)
{
  GstOviTextSrc *self = GST_OVI_TEXT_SRC (object);

  if (gst_ovi_helper_set_property (self->helper, prop_id, value))
    return;
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_PROMPT:
      g_free (self->prompt);
      self->prompt = g_value_dup_string (value);
      gst_ovi_helper_wake (self->helper); /* a source waiting for prompts */
      break;
    case PROP_VIDEO_NEGATIVE_PROMPT:
      g_free (self->video_negative_prompt);
      self->video_negative_prompt = g_value_dup_string (value);
      break;
    case PROP_AUDIO_NEGATIVE_PROMPT:
      g_free (self->audio_negative_prompt);
      self->audio_negative_prompt = g_value_dup_string (value);
      break;
    case PROP_LOCATION:
      g_free (self->location);
      self->location = g_value_dup_string (value);
      break;
    case PROP_NUM_CLIPS:
      self->num_clips = g_value_get_int (value);
      break;
    case PROP_IS_LIVE:
      self->is_live = g_value_get_boolean (value);
      GST_OBJECT_UNLOCK (self);
      gst_base_src_set_live (GST_BASE_SRC (self), g_value_get_boolean (value));
      return;
    case PROP_TIMESTAMPS:
      self->timestamps = g_value_get_enum (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_ovi_text_src_get_property (GObject *object, guint prop_id, GValue *value,
                               GParamSpec *pspec)
{
  GstOviTextSrc *self = GST_OVI_TEXT_SRC (object);

  if (gst_ovi_helper_get_property (self->helper, prop_id, value))
    return;
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_PROMPT:
      g_value_set_string (value, self->prompt);
      break;
    case PROP_VIDEO_NEGATIVE_PROMPT:
      g_value_set_string (value, self->video_negative_prompt);
      break;
    case PROP_AUDIO_NEGATIVE_PROMPT:
      g_value_set_string (value, self->audio_negative_prompt);
      break;
    case PROP_LOCATION:
      g_value_set_string (value, self->location);
      break;
    case PROP_NUM_CLIPS:
      g_value_set_int (value, self->num_clips);
      break;
    case PROP_IS_LIVE:
      g_value_set_boolean (value, self->is_live);
      break;
    case PROP_TIMESTAMPS:
      g_value_set_enum (value, self->timestamps);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_ovi_text_src_set_context (GstElement *element, GstContext *context)
{
  GstOviTextSrc *self = GST_OVI_TEXT_SRC (element);

  gst_ovi_helper_set_context (self->helper, context,
                              GST_ELEMENT_CLASS (parent_class));
}

static gboolean
gst_ovi_text_src_start (GstBaseSrc *src)
{
  GstOviTextSrc *self = GST_OVI_TEXT_SRC (src);
  g_autofree gchar *location = NULL;
  g_autoptr (GError) err = NULL;
  GstOviEngine *engine;
  gboolean empty_prompt, no_prompt, swallowed_link;

  GST_OBJECT_LOCK (self);
  location = g_strdup (self->location);
  empty_prompt = self->prompt && !*self->prompt;
  swallowed_link = !g_strcmp0 (self->prompt, "!");
  no_prompt = self->prompt == NULL && g_queue_is_empty (&self->queue);
  GST_OBJECT_UNLOCK (self);
  if (empty_prompt && !location) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("The prompt is empty"),
                       ("prompt=\"\" and no location: give a prompt, a "
                        "prompt file (location=) or push prompts with the "
                        "push-prompt action signal"));
    return FALSE;
  }
  if (swallowed_link) {
    /* the shell turns prompt="" into prompt=, and gst-launch then takes the
     * following '!' as the value, leaving this element unlinked */
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
                       ("The prompt is \"!\": an empty prompt=\"\" took the "
                        "next '!' of the pipeline as its value"),
                       ("give a prompt, or in a shell write prompt='\"\"' to "
                        "pass an empty one"));
    return FALSE;
  }
  if (no_prompt && !location)
    GST_ELEMENT_INFO (self, RESOURCE, SETTINGS,
                      ("No prompt given: waiting for prompts pushed with the "
                       "push-prompt action signal"),
                      ("no prompt and no location: waiting for prompts "
                       "pushed with the push-prompt action signal (an "
                       "application ends the stream with end-of-stream)"));

  g_clear_pointer (&self->file_entries, g_ptr_array_unref);
  if (location) {
    self->file_entries = gst_ovi_load_prompt_file (location, &err);
    if (!self->file_entries) {
      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
                         ("Could not read the prompt file: %s", err->message),
                         ("location=%s", location));
      return FALSE;
    }
  }

  if (!gst_ovi_helper_start (self->helper, GST_OVI_STAGE_TEXT))
    return FALSE;
  engine = gst_ovi_helper_get_engine (self->helper, GST_OVI_STAGE_TEXT);

  self->clip = 0;
  self->frame_offset = 0;
  self->file_index = 0;
  self->dim = 0;
  self->clip_frames = gst_ovi_video_frames_for_latent (
      ovi_stage_get_paths (gst_ovi_engine_get_stage (engine))
          ->video_latent_frames);
  return TRUE;
}

static gboolean
gst_ovi_text_src_stop (GstBaseSrc *src)
{
  GstOviTextSrc *self = GST_OVI_TEXT_SRC (src);

  /* the engine stays held until READY->NULL, so READY->PAUSED reuses it */
  g_clear_pointer (&self->file_entries, g_ptr_array_unref);
  GST_OBJECT_LOCK (self);
  self->app_eos = FALSE; /* a new run needs its own end-of-stream */
  g_queue_clear_full (&self->queue, (GDestroyNotify) gst_ovi_prompt_entry_free);
  GST_OBJECT_UNLOCK (self);
  return TRUE;
}

static gboolean
gst_ovi_text_src_unlock (GstBaseSrc *src)
{
  GstOviTextSrc *self = GST_OVI_TEXT_SRC (src);

  gst_ovi_helper_set_flushing (self->helper, TRUE);
  return TRUE;
}

static gboolean
gst_ovi_text_src_unlock_stop (GstBaseSrc *src)
{
  GstOviTextSrc *self = GST_OVI_TEXT_SRC (src);

  gst_ovi_helper_set_flushing (self->helper, FALSE);
  return TRUE;
}

static gboolean
gst_ovi_text_src_negotiate (GstBaseSrc *src)
{
  /* the caps carry the embedding width, known after the first encode:
   * create() sets them */
  return TRUE;
}

static gboolean
gst_ovi_text_src_is_seekable (GstBaseSrc *src)
{
  return FALSE;
}

static gboolean
gst_ovi_text_src_query (GstBaseSrc *src, GstQuery *query)
{
  GstOviTextSrc *self = GST_OVI_TEXT_SRC (src);

  if (gst_ovi_helper_handle_query (self->helper, query))
    return TRUE;
  return GST_BASE_SRC_CLASS (parent_class)->query (src, query);
}

/* Picks the next clip's prompt (object lock held; may wait). */
static GstFlowReturn
next_entry (GstOviTextSrc *self, GstOviPromptEntry **out)
{
  while (TRUE) {
    if (gst_ovi_helper_is_flushing (self->helper))
      return GST_FLOW_FLUSHING;
    if (self->num_clips >= 0 && self->clip >= (guint64) self->num_clips)
      return GST_FLOW_EOS;
    if (!g_queue_is_empty (&self->queue)) {
      *out = g_queue_pop_head (&self->queue);
      return GST_FLOW_OK;
    }
    if (self->file_entries) {
      if (self->num_clips < 0 && self->file_index >= self->file_entries->len)
        return GST_FLOW_EOS;
      *out = gst_ovi_prompt_entry_copy (g_ptr_array_index (
          self->file_entries, self->file_index % self->file_entries->len));
      self->file_index++;
      return GST_FLOW_OK;
    }
    if (self->prompt && *self->prompt) {
      if (self->num_clips < 0 && self->clip >= 1)
        return GST_FLOW_EOS;
      *out = gst_ovi_prompt_entry_new (self->prompt);
      return GST_FLOW_OK;
    }
    if (self->app_eos)
      return GST_FLOW_EOS;
    GST_DEBUG_OBJECT (self, "waiting for a pushed prompt");
    gst_ovi_helper_wait (self->helper);
  }
}

/* Where the next clip starts. Non-live: where the previous one ended (a
 * guess from this variant's clip length; ovidenoise restamps from its own
 * frame counts). Live, timestamps=running-time: the running time now, never
 * before the end of the previous clip, so a slow generator leaves gaps for
 * a playout to fill instead of late data. Live, contiguous: the first clip
 * at the running time now, every later one where the previous one ended. */
static void
place_clip (GstOviTextSrc *self)
{
  GstOviTimestamps mode;
  GstClock *clock;
  GstClockTime now;
  guint64 frame;

  GST_OBJECT_LOCK (self);
  mode = self->timestamps;
  GST_OBJECT_UNLOCK (self);
  if (!gst_base_src_is_live (GST_BASE_SRC (self))
      || (mode == GST_OVI_TIMESTAMPS_CONTIGUOUS && self->clip > 0))
    return;
  clock = gst_element_get_clock (GST_ELEMENT (self));
  if (!clock)
    return;
  now = gst_clock_get_time (clock)
        - gst_element_get_base_time (GST_ELEMENT (self));
  gst_object_unref (clock);
  frame = gst_util_uint64_scale_ceil (now, GST_OVI_FPS_N,
                                      GST_SECOND * GST_OVI_FPS_D);
  if (frame > self->frame_offset)
    self->frame_offset = frame;
}

static gboolean
copy_field (GQuark field, const GValue *value, gpointer user_data)
{
  gst_structure_id_set_value (user_data, field, value);
  return TRUE;
}

static GstFlowReturn
gst_ovi_text_src_create (GstPushSrc *src, GstBuffer **outbuf)
{
  GstOviTextSrc *self = GST_OVI_TEXT_SRC (src);
  g_autoptr (GstOviPromptEntry) entry = NULL;
  g_autofree gchar *vneg = NULL, *aneg = NULL;
  g_autoptr (GError) err = NULL;
  g_autoptr (GCancellable) cancellable = NULL;
  GstOviEngine *engine
      = gst_ovi_helper_get_engine (self->helper, GST_OVI_STAGE_TEXT);
  OviTensor *emb[3] = { NULL, NULL, NULL };
  GstFlowReturn ret;
  GstBuffer *buf;
  GstStructure *meta;
  gboolean ok;
  gint i;

  GST_OBJECT_LOCK (self);
  ret = next_entry (self, &entry);
  vneg = g_strdup (entry && entry->video_negative_prompt
                       ? entry->video_negative_prompt
                       : self->video_negative_prompt);
  aneg = g_strdup (entry && entry->audio_negative_prompt
                       ? entry->audio_negative_prompt
                       : self->audio_negative_prompt);
  GST_OBJECT_UNLOCK (self);
  if (ret != GST_FLOW_OK) {
    GST_DEBUG_OBJECT (self, "no clip: %s", gst_flow_get_name (ret));
    return ret;
  }

  GST_INFO_OBJECT (self, "clip %" G_GUINT64_FORMAT ": encoding \"%s\"",
                   self->clip, entry->prompt);
  cancellable = gst_ovi_helper_ref_cancellable (self->helper);
  ok = ovi_text_encoder_encode (
      ovi_stage_get_text_encoder (gst_ovi_engine_get_stage (engine)),
      entry->prompt, vneg, aneg, emb, cancellable, &err);
  if (!ok)
    return GST_OVI_HELPER_FLOW_ERROR (self->helper,
                                      "Could not encode the prompt", err);

  if (self->dim != (gint) emb[0]->shape[emb[0]->ndim - 1]) {
    GstCaps *caps;
    self->dim = (gint) emb[0]->shape[emb[0]->ndim - 1];
    caps
        = gst_caps_new_simple ("application/x-ovi-text", "dtype", G_TYPE_STRING,
                               "F32", "dim", G_TYPE_INT, self->dim, NULL);
    if (!gst_base_src_set_caps (GST_BASE_SRC (self), caps)) {
      gst_caps_unref (caps);
      for (i = 0; i < 3; i++)
        ovi_tensor_unref (emb[i]);
      return GST_FLOW_NOT_NEGOTIATED;
    }
    gst_caps_unref (caps);
  }

  buf = gst_buffer_new ();
  for (i = 0; i < 3; i++) {
    gst_buffer_append_memory (buf, gst_ovi_tensor_to_memory (emb[i]));
    ovi_tensor_unref (emb[i]);
  }
  meta = gst_ovi_buffer_add_clip_meta (buf);
  gst_structure_set (meta, "clip", G_TYPE_UINT64, self->clip, "prompt",
                     G_TYPE_STRING, entry->prompt, NULL);
  if (entry->overrides)
    gst_structure_foreach (entry->overrides, copy_field, meta);

  place_clip (self);
  GST_BUFFER_PTS (buf) = gst_ovi_frame_time (self->frame_offset);
  GST_BUFFER_DURATION (buf)
      = gst_ovi_frame_time (self->frame_offset + self->clip_frames)
        - GST_BUFFER_PTS (buf);
  GST_BUFFER_OFFSET (buf) = self->clip;
  GST_BUFFER_OFFSET_END (buf) = self->clip + 1;
  self->frame_offset += self->clip_frames;
  self->clip++;
  *outbuf = buf;
  return GST_FLOW_OK;
}

static GstStateChangeReturn
gst_ovi_text_src_change_state (GstElement *element, GstStateChange transition)
{
  return gst_ovi_helper_change_state (GST_OVI_TEXT_SRC (element)->helper,
                                      transition,
                                      GST_ELEMENT_CLASS (parent_class));
}

static void
gst_ovi_text_src_finalize (GObject *object)
{
  GstOviTextSrc *self = GST_OVI_TEXT_SRC (object);

  gst_clear_object (&self->helper);
  g_free (self->prompt);
  g_free (self->video_negative_prompt);
  g_free (self->audio_negative_prompt);
  g_free (self->location);
  g_queue_clear_full (&self->queue, (GDestroyNotify) gst_ovi_prompt_entry_free);
  g_clear_pointer (&self->file_entries, g_ptr_array_unref);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_ovi_text_src_class_init (GstOviTextSrcClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseSrcClass *base_class = GST_BASE_SRC_CLASS (klass);
  GstPushSrcClass *push_class = GST_PUSH_SRC_CLASS (klass);
  const GParamFlags rw_playing
      = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING;
  const GParamFlags rw_ready
      = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY;

  gobject_class->set_property = gst_ovi_text_src_set_property;
  gobject_class->get_property = gst_ovi_text_src_get_property;
  gobject_class->finalize = gst_ovi_text_src_finalize;

  gst_ovi_helper_install_properties (gobject_class);
  /**
   * GstOviTextSrc:prompt:
   *
   * The text prompt: speech as <S>text<E>, sound as
   * <AUDCAP>description<ENDAUDCAP> or "Audio: description". Read again at
   * every clip, so a change while playing applies to the next clip.
   */
  g_object_class_install_property (
      gobject_class, PROP_PROMPT,
      g_param_spec_string (
          "prompt", "Prompt",
          "The text prompt (speech as <S>text<E>, sound as "
          "<AUDCAP>description<ENDAUDCAP> or 'Audio: description'); "
          "changing it while playing applies to the next clip",
          NULL, rw_playing));
  /**
   * GstOviTextSrc:video-negative-prompt:
   *
   * What the video should not show (NULL: the model's default).
   */
  g_object_class_install_property (
      gobject_class, PROP_VIDEO_NEGATIVE_PROMPT,
      g_param_spec_string (
          "video-negative-prompt", "Video negative prompt",
          "What the video should not show (NULL: the model's default); "
          "applies to the next clip",
          NULL, rw_playing));
  /**
   * GstOviTextSrc:audio-negative-prompt:
   *
   * What the audio should not sound like (NULL: the model's default).
   */
  g_object_class_install_property (
      gobject_class, PROP_AUDIO_NEGATIVE_PROMPT,
      g_param_spec_string (
          "audio-negative-prompt", "Audio negative prompt",
          "What the audio should not sound like (NULL: the model's default); "
          "applies to the next clip",
          NULL, rw_playing));
  /**
   * GstOviTextSrc:location:
   *
   * A prompt file: one prompt per line, or one JSON object per line with
   * per-clip overrides; '#' starts a comment.
   */
  g_object_class_install_property (
      gobject_class, PROP_LOCATION,
      g_param_spec_string (
          "location", "Prompt file",
          "A file with one prompt per line, or one JSON object per line with "
          "per-clip overrides ({\"prompt\": \"...\", \"seed\": 7, \"steps\": "
          "30, \"video_negative_prompt\": \"...\"}); '#' starts a comment",
          NULL, rw_ready));
  /**
   * GstOviTextSrc:num-clips:
   *
   * Clips to generate before EOS; -1: every line of the file once, one
   * clip of the prompt property, or pushed prompts until end-of-stream.
   */
  g_object_class_install_property (
      gobject_class, PROP_NUM_CLIPS,
      g_param_spec_int (
          "num-clips", "Number of clips",
          "Clips to generate before EOS (-1: every line of the file once, "
          "or one clip of the prompt property, or pushed prompts until the "
          "end-of-stream signal); a file shorter than num-clips repeats",
          -1, G_MAXINT, -1, rw_ready));
  /**
   * GstOviTextSrc:is-live:
   *
   * Act as a live source: the first clip is stamped with the running time
   * it starts at, the later ones as #GstOviTextSrc:timestamps says.
   */
  g_object_class_install_property (
      gobject_class, PROP_IS_LIVE,
      g_param_spec_boolean ("is-live", "Is live",
                            "Act as a live source (for live playout "
                            "pipelines); the clips' stamps follow timestamps",
                            FALSE, rw_ready));
  /**
   * GstOviTextSrc:timestamps:
   *
   * How a live source stamps its clips: contiguous (each clip where the
   * previous one ends, one gap-free stream even when generation is slower
   * than real time, late for a synchronised sink then) or running-time
   * (each clip at the running time it starts, never before the previous
   * one's end: gaps, never late; for a playout that fills them, the channel
   * pattern of docs/elements.md). Without is-live clips are always
   * contiguous from 0.
   */
  g_object_class_install_property (
      gobject_class, PROP_TIMESTAMPS,
      g_param_spec_enum (
          "timestamps", "Timestamps",
          "With is-live: contiguous (the first clip at the running time it "
          "starts, each later one where the previous ended: no gaps) or "
          "running-time (each clip at the running time it starts, never "
          "before the previous end: gaps when generation is slower than "
          "real time, for a playout that fills them)",
          GST_TYPE_OVI_TIMESTAMPS, GST_OVI_TIMESTAMPS_CONTIGUOUS, rw_ready));
  gst_type_mark_as_plugin_api (GST_TYPE_OVI_TIMESTAMPS, 0);

  /**
   * GstOviTextSrc::push-prompt:
   * @prompt: a prompt, or one JSON object as a line of a prompt file
   *
   * Queues a prompt; queued prompts go before the file and the property.
   */
  signals[SIGNAL_PUSH_PROMPT] = g_signal_new_class_handler (
      "push-prompt", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION,
      G_CALLBACK (gst_ovi_text_src_push_prompt), NULL, NULL, NULL, G_TYPE_NONE,
      1, G_TYPE_STRING);
  /**
   * GstOviTextSrc::end-of-stream:
   *
   * Ends the stream once the queued prompts are done.
   */
  signals[SIGNAL_END_OF_STREAM]
      = g_signal_new_class_handler ("end-of-stream", G_TYPE_FROM_CLASS (klass),
                                    G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION,
                                    G_CALLBACK (gst_ovi_text_src_end_of_stream),
                                    NULL, NULL, NULL, G_TYPE_NONE, 0);

  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (
      element_class, "Ovi text encoder source", "Source/Generic",
      "Encodes prompts with umT5-XXL into the text embeddings ovidenoise "
      "takes, one buffer per clip",
      GST_OVI_AUTHOR);
  element_class->set_context = gst_ovi_text_src_set_context;
  element_class->change_state = gst_ovi_text_src_change_state;

  base_class->start = gst_ovi_text_src_start;
  base_class->stop = gst_ovi_text_src_stop;
  base_class->unlock = gst_ovi_text_src_unlock;
  base_class->unlock_stop = gst_ovi_text_src_unlock_stop;
  base_class->negotiate = gst_ovi_text_src_negotiate;
  base_class->is_seekable = gst_ovi_text_src_is_seekable;
  base_class->query = gst_ovi_text_src_query;
  push_class->create = gst_ovi_text_src_create;
}

static void
gst_ovi_text_src_init (GstOviTextSrc *self)
{
  self->helper = gst_ovi_helper_new (GST_ELEMENT (self));
  self->num_clips = -1;
  g_queue_init (&self->queue);
  gst_base_src_set_format (GST_BASE_SRC (self), GST_FORMAT_TIME);
}
