/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the helper object every ovi element owns (see gstovihelper.h). */
#include "gstovihelper.h"

#define N_STAGES (GST_OVI_STAGE_AUDIO + 1)

struct _GstOviHelper {
  GstObject parent;

  GstElement *element; /* the owner, not ref'd */

  /* under the helper's object lock */
  GstOviEngineConfig config;
  GstOviEngineCache *cache;
  GstOviEngine *engines[N_STAGES];
  gchar *engine_key; /* the config the engines were loaded with */

  /* under the element's object lock */
  gboolean flushing;
  GCancellable *cancellable;
  GCond cond;

  GMutex load_lock; /* one load at a time per element */
};

G_DEFINE_TYPE (GstOviHelper, gst_ovi_helper, GST_TYPE_OBJECT);

static const gchar *const load_failed[N_STAGES] = {
  [GST_OVI_STAGE_TEXT] = "Could not load the text encoder",
  [GST_OVI_STAGE_DENOISER] = "Could not load the fusion model",
  [GST_OVI_STAGE_VIDEO_VAE] = "Could not load the video VAE",
  [GST_OVI_STAGE_AUDIO] = "Could not load the audio decoder",
};

static void
gst_ovi_helper_finalize (GObject *object)
{
  GstOviHelper *self = GST_OVI_HELPER (object);

  gst_ovi_helper_release_all (self);
  gst_clear_object (&self->cache);
  gst_ovi_engine_config_clear (&self->config);
  g_free (self->engine_key);
  g_clear_object (&self->cancellable);
  g_cond_clear (&self->cond);
  g_mutex_clear (&self->load_lock);
  G_OBJECT_CLASS (gst_ovi_helper_parent_class)->finalize (object);
}

static void
gst_ovi_helper_class_init (GstOviHelperClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = gst_ovi_helper_finalize;
}

static void
gst_ovi_helper_init (GstOviHelper *self)
{
  gst_ovi_engine_config_init (&self->config);
  self->cancellable = g_cancellable_new ();
  g_cond_init (&self->cond);
  g_mutex_init (&self->load_lock);
}

GstOviHelper *
gst_ovi_helper_new (GstElement *element)
{
  GstOviHelper *self = g_object_new (GST_TYPE_OVI_HELPER, NULL);

  gst_object_ref_sink (self);
  self->element = element;
  return self;
}

/* ---- properties ---- */

void
gst_ovi_helper_install_properties (GObjectClass *klass)
{
  const GParamFlags rw
      = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY;

  /**
   * GstOviElement:model-dir:
   *
   * Folder of the official download (Ovi/, Wan2.2-TI2V-5B/,
   * MMAudio/ext_weights/); unset: the tiny random-weight test model.
   * Every ovi element has it.
   */
  g_object_class_install_property (
      klass, GST_OVI_PROP_MODEL_DIR,
      g_param_spec_string (
          "model-dir", "Model folder",
          "Folder of the official download (Ovi/, Wan2.2-TI2V-5B/, "
          "MMAudio/ext_weights/). Unset: the tiny random-weight test model, "
          "written on first use into $XDG_CACHE_HOME/gst-ovi (as `ovi "
          "make-tiny` does); it makes noise, not film",
          NULL, rw));
  /**
   * GstOviElement:vram-mode:
   *
   * How the weights are held on the GPU (docs/vram-modes.md); auto takes
   * the fastest mode that fits, falling back to the CPU. Every ovi element
   * has it.
   */
  g_object_class_install_property (
      klass, GST_OVI_PROP_VRAM_MODE,
      g_param_spec_enum (
          "vram-mode", "VRAM mode",
          "How the weights are held on the GPU; every mode but auto needs a "
          "CUDA GPU",
          GST_TYPE_OVI_VRAM_MODE, GST_OVI_VRAM_MODE_AUTO, rw));
  /**
   * GstOviElement:gpu-allocation:
   *
   * How the work is spread over GPUs. Every ovi element has it.
   */
  g_object_class_install_property (
      klass, GST_OVI_PROP_GPU_ALLOCATION,
      g_param_spec_enum ("gpu-allocation", "GPU allocation",
                         "How the work is spread over GPUs",
                         GST_TYPE_OVI_GPU_ALLOCATION,
                         GST_OVI_GPU_ALLOCATION_AUTO, rw));
  /**
   * GstOviElement:cuda-device-id:
   *
   * CUDA device to run on (-1: auto). Every ovi element has it.
   */
  g_object_class_install_property (
      klass, GST_OVI_PROP_CUDA_DEVICE_ID,
      g_param_spec_int (
          "cuda-device-id", "CUDA device id",
          "CUDA device to run on (-1 = auto: the first GPU if one is usable, "
          "else the CPU)",
          -1, 15, -1, rw));
  /**
   * GstOviElement:cuda-devices:
   *
   * The GPUs a multi-GPU gpu-allocation (sp2/sp4/sp8, cfg-parallel, auto)
   * runs on, as CUDA ordinals "0,1,2,3"; empty: every GPU. The text
   * encoder and the decoders run on one GPU. docs/multi-gpu.md.
   */
  g_object_class_install_property (
      klass, GST_OVI_PROP_CUDA_DEVICES,
      g_param_spec_string (
          "cuda-devices", "CUDA devices",
          "GPUs of a multi-GPU gpu-allocation, e.g. \"0,1,2,3\" (empty: "
          "every GPU)",
          NULL, rw));
  /**
   * GstOviElement:weight-cache-dir:
   *
   * Where the denoise stage keeps the int8 / fp8 weights it quantises from
   * a bf16 model file, written once and mapped after (docs/vram-modes.md,
   * "The re-quantised weight cache"); unset: $OVI_WEIGHT_CACHE_DIR, else
   * $XDG_CACHE_HOME/gst-ovi; "off": quantised in memory at every load.
   */
  g_object_class_install_property (
      klass, GST_OVI_PROP_WEIGHT_CACHE_DIR,
      g_param_spec_string (
          "weight-cache-dir", "Weight cache folder",
          "Where the quantised DiT weights of the int8/fp8 modes are cached "
          "(unset: $OVI_WEIGHT_CACHE_DIR, else $XDG_CACHE_HOME/gst-ovi; "
          "\"off\": quantise in memory at every load)",
          NULL, rw));
  gst_type_mark_as_plugin_api (GST_TYPE_OVI_VRAM_MODE, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_OVI_GPU_ALLOCATION, 0);
}

static gboolean
config_set_property (GstOviEngineConfig *c, guint prop_id, const GValue *value)
{
  switch (prop_id) {
    case GST_OVI_PROP_MODEL_DIR:
      g_free (c->model_dir);
      c->model_dir = g_value_dup_string (value);
      if (c->model_dir && !*c->model_dir)
        g_clear_pointer (&c->model_dir, g_free);
      return TRUE;
    case GST_OVI_PROP_VRAM_MODE:
      c->vram_mode = g_value_get_enum (value);
      return TRUE;
    case GST_OVI_PROP_GPU_ALLOCATION:
      c->gpu_allocation = g_value_get_enum (value);
      return TRUE;
    case GST_OVI_PROP_CUDA_DEVICE_ID:
      c->cuda_device_id = g_value_get_int (value);
      return TRUE;
    case GST_OVI_PROP_CUDA_DEVICES:
      g_free (c->cuda_devices);
      c->cuda_devices = g_value_dup_string (value);
      return TRUE;
    case GST_OVI_PROP_WEIGHT_CACHE_DIR:
      g_free (c->weight_cache_dir);
      c->weight_cache_dir = g_value_dup_string (value);
      if (c->weight_cache_dir && !*c->weight_cache_dir)
        g_clear_pointer (&c->weight_cache_dir, g_free);
      return TRUE;
  }
  return FALSE;
}

static gboolean
config_get_property (const GstOviEngineConfig *c, guint prop_id, GValue *value)
{
  switch (prop_id) {
    case GST_OVI_PROP_MODEL_DIR:
      g_value_set_string (value, c->model_dir);
      return TRUE;
    case GST_OVI_PROP_VRAM_MODE:
      g_value_set_enum (value, c->vram_mode);
      return TRUE;
    case GST_OVI_PROP_GPU_ALLOCATION:
      g_value_set_enum (value, c->gpu_allocation);
      return TRUE;
    case GST_OVI_PROP_CUDA_DEVICE_ID:
      g_value_set_int (value, c->cuda_device_id);
      return TRUE;
    case GST_OVI_PROP_CUDA_DEVICES:
      g_value_set_string (value, c->cuda_devices);
      return TRUE;
    case GST_OVI_PROP_WEIGHT_CACHE_DIR:
      g_value_set_string (value, c->weight_cache_dir);
      return TRUE;
  }
  return FALSE;
}

gboolean
gst_ovi_helper_set_property (GstOviHelper *self, guint prop_id,
                             const GValue *value)
{
  gboolean handled;

  GST_OBJECT_LOCK (self);
  handled = config_set_property (&self->config, prop_id, value);
  GST_OBJECT_UNLOCK (self);
  return handled;
}

gboolean
gst_ovi_helper_get_property (GstOviHelper *self, guint prop_id, GValue *value)
{
  gboolean handled;

  GST_OBJECT_LOCK (self);
  handled = config_get_property (&self->config, prop_id, value);
  GST_OBJECT_UNLOCK (self);
  return handled;
}

void
gst_ovi_helper_set_variant (GstOviHelper *self, const gchar *variant)
{
  GST_OBJECT_LOCK (self);
  self->config.variant = variant;
  GST_OBJECT_UNLOCK (self);
}

void
gst_ovi_helper_set_loras (GstOviHelper *self, const gchar *loras)
{
  GST_OBJECT_LOCK (self);
  g_free (self->config.loras);
  self->config.loras = loras && *loras ? g_strdup (loras) : NULL;
  GST_OBJECT_UNLOCK (self);
}

/* ---- stages ---- */

static void
release_locked (GstOviHelper *self, GstOviStage stage)
{
  g_clear_pointer (&self->engines[stage], gst_ovi_engine_release);
}

GstOviEngine *
gst_ovi_helper_acquire (GstOviHelper *self, GstOviStage stage)
{
  GstOviEngineConfig config;
  GstOviEngineCache *cache = NULL;
  g_autofree gchar *key = NULL;
  g_autoptr (GError) err = NULL;
  GstOviEngine *engine;
  gint i;

  g_mutex_lock (&self->load_lock);
  GST_OBJECT_LOCK (self);
  gst_ovi_engine_config_copy (&config, &self->config);
  key = gst_ovi_engine_config_to_string (&config);
  if (g_strcmp0 (key, self->engine_key) != 0) {
    for (i = 0; i < N_STAGES; i++)
      release_locked (self, i);
    g_free (self->engine_key);
    self->engine_key = g_steal_pointer (&key);
  }
  engine = self->engines[stage];
  if (self->cache)
    cache = gst_object_ref (self->cache);
  GST_OBJECT_UNLOCK (self);

  if (!engine) {
    /* the cache lookup may query neighbours and post messages: no lock */
    gst_ovi_engine_cache_ensure (self->element, &cache);
    engine = gst_ovi_engine_cache_acquire (cache, stage, &config, self->element,
                                           &err);
    GST_OBJECT_LOCK (self);
    gst_object_replace ((GstObject **) &self->cache, GST_OBJECT (cache));
    self->engines[stage] = engine;
    GST_OBJECT_UNLOCK (self);
    if (!engine)
      GST_OVI_POST_ERROR (self->element, load_failed[stage], err);
  }
  gst_clear_object (&cache);
  gst_ovi_engine_config_clear (&config);
  g_mutex_unlock (&self->load_lock);
  return engine;
}

GstOviEngine *
gst_ovi_helper_get_engine (GstOviHelper *self, GstOviStage stage)
{
  GstOviEngine *engine;

  GST_OBJECT_LOCK (self);
  engine = self->engines[stage];
  GST_OBJECT_UNLOCK (self);
  return engine;
}

void
gst_ovi_helper_release (GstOviHelper *self, GstOviStage stage)
{
  GstOviEngine *engine;

  GST_OBJECT_LOCK (self);
  engine = g_steal_pointer (&self->engines[stage]);
  GST_OBJECT_UNLOCK (self);
  g_clear_pointer (&engine, gst_ovi_engine_release);
}

void
gst_ovi_helper_release_all (GstOviHelper *self)
{
  gint i;

  for (i = 0; i < N_STAGES; i++)
    gst_ovi_helper_release (self, i);
}

gboolean
gst_ovi_helper_start (GstOviHelper *self, GstOviStage stage)
{
  if (!gst_ovi_helper_acquire (self, stage))
    return FALSE;
  gst_ovi_helper_set_flushing (self, FALSE);
  return TRUE;
}

GstStateChangeReturn
gst_ovi_helper_change_state (GstOviHelper *self, GstStateChange transition,
                             GstElementClass *parent)
{
  GstStateChangeReturn ret;

  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY)
    gst_ovi_helper_set_flushing (self, TRUE);
  ret = parent->change_state (self->element, transition);
  if (transition == GST_STATE_CHANGE_READY_TO_NULL)
    gst_ovi_helper_release_all (self);
  return ret;
}

/* ---- flushing ---- */

void
gst_ovi_helper_set_flushing (GstOviHelper *self, gboolean flushing)
{
  GST_OBJECT_LOCK (self->element);
  self->flushing = flushing;
  if (flushing) {
    g_cancellable_cancel (self->cancellable);
    g_cond_broadcast (&self->cond);
  } else if (g_cancellable_is_cancelled (self->cancellable)) {
    g_object_unref (self->cancellable);
    self->cancellable = g_cancellable_new ();
  }
  GST_OBJECT_UNLOCK (self->element);
}

gboolean
gst_ovi_helper_is_flushing (GstOviHelper *self)
{
  return self->flushing;
}

GCancellable *
gst_ovi_helper_ref_cancellable (GstOviHelper *self)
{
  GCancellable *c;

  GST_OBJECT_LOCK (self->element);
  c = g_object_ref (self->cancellable);
  GST_OBJECT_UNLOCK (self->element);
  return c;
}

gboolean
gst_ovi_helper_wait (GstOviHelper *self)
{
  if (!self->flushing)
    g_cond_wait (&self->cond, GST_OBJECT_GET_LOCK (self->element));
  return !self->flushing;
}

void
gst_ovi_helper_wake (GstOviHelper *self)
{
  g_cond_broadcast (&self->cond);
}

void
gst_ovi_helper_sink_event (GstOviHelper *self, GstEvent *event)
{
  if (GST_EVENT_TYPE (event) == GST_EVENT_FLUSH_START)
    gst_ovi_helper_set_flushing (self, TRUE);
  else if (GST_EVENT_TYPE (event) == GST_EVENT_FLUSH_STOP)
    gst_ovi_helper_set_flushing (self, FALSE);
}

/* ---- latency ---- */

void
gst_ovi_add_latency (GstQuery *query, GstClockTime own)
{
  GstClockTime min, max;
  gboolean live;

  gst_query_parse_latency (query, &live, &min, &max);
  min += own;
  if (GST_CLOCK_TIME_IS_VALID (max))
    max += own;
  gst_query_set_latency (query, live, min, max);
}

gboolean
gst_ovi_helper_transform_query (GstOviHelper *self,
                                GstBaseTransformClass *parent,
                                GstPadDirection direction, GstQuery *query,
                                const GstClockTime *decode_time)
{
  GstBaseTransform *trans = GST_BASE_TRANSFORM (self->element);
  GstClockTime own;

  if (gst_ovi_helper_handle_query (self, query))
    return TRUE;
  if (!parent->query (trans, direction, query))
    return FALSE;
  if (direction == GST_PAD_SRC && GST_QUERY_TYPE (query) == GST_QUERY_LATENCY) {
    GST_OBJECT_LOCK (self->element);
    own = *decode_time;
    GST_OBJECT_UNLOCK (self->element);
    gst_ovi_add_latency (query, own);
  }
  return TRUE;
}

/* ---- context and errors ---- */

gboolean
gst_ovi_helper_handle_query (GstOviHelper *self, GstQuery *query)
{
  GstOviEngineCache *cache = NULL;
  gboolean ret;

  if (GST_QUERY_TYPE (query) != GST_QUERY_CONTEXT)
    return FALSE;
  GST_OBJECT_LOCK (self);
  if (self->cache)
    cache = gst_object_ref (self->cache);
  GST_OBJECT_UNLOCK (self);
  ret = gst_ovi_engine_cache_handle_query (self->element, query, cache);
  gst_clear_object (&cache);
  return ret;
}

void
gst_ovi_helper_set_context (GstOviHelper *self, GstContext *context,
                            GstElementClass *parent)
{
  GST_OBJECT_LOCK (self);
  gst_ovi_engine_cache_from_context (context, &self->cache);
  GST_OBJECT_UNLOCK (self);
  parent->set_context (self->element, context);
}

void
gst_ovi_post_error (GstElement *el, const gchar *what, const GError *err,
                    const gchar *file, const gchar *func, gint line)
{
  GQuark domain = GST_LIBRARY_ERROR;
  gint code = GST_LIBRARY_ERROR_FAILED;
  gchar *text
      = g_strdup_printf ("%s: %s", what, err ? err->message : "unknown error");
  gchar *debug = g_strdup_printf ("%s error %d",
                                  err ? g_quark_to_string (err->domain) : "?",
                                  err ? err->code : -1);

  if (err && err->domain == OVI_ERROR) {
    switch (err->code) {
      case OVI_ERROR_IO:
      case OVI_ERROR_MISSING_TENSOR:
        domain = GST_RESOURCE_ERROR;
        code = GST_RESOURCE_ERROR_NOT_FOUND;
        break;
      case OVI_ERROR_FORMAT:
      case OVI_ERROR_UNSAFE:
      case OVI_ERROR_SHAPE:
        domain = GST_RESOURCE_ERROR;
        code = GST_RESOURCE_ERROR_READ;
        break;
      case OVI_ERROR_INVALID_ARGUMENT:
      case OVI_ERROR_UNKNOWN_PRESET:
        domain = GST_RESOURCE_ERROR;
        code = GST_RESOURCE_ERROR_SETTINGS;
        break;
      case OVI_ERROR_OUT_OF_MEMORY:
        domain = GST_RESOURCE_ERROR;
        code = GST_RESOURCE_ERROR_NO_SPACE_LEFT;
        break;
      case OVI_ERROR_BACKEND:
        domain = GST_RESOURCE_ERROR;
        code = GST_RESOURCE_ERROR_FAILED;
        break;
      default:
        break;
    }
  } else if (err
             && (err->domain == G_FILE_ERROR || err->domain == G_IO_ERROR)) {
    domain = GST_RESOURCE_ERROR;
    code = GST_RESOURCE_ERROR_OPEN_READ;
  }
  gst_element_message_full (el, GST_MESSAGE_ERROR, domain, code, text, debug,
                            file, func, line);
}

GstFlowReturn
gst_ovi_helper_flow_error (GstOviHelper *self, const gchar *what,
                           const GError *error, const gchar *file,
                           const gchar *func, gint line)
{
  if (g_error_matches (error, OVI_ERROR, OVI_ERROR_CANCELLED)) {
    GST_DEBUG_OBJECT (self->element, "%s: cancelled", what);
    return GST_FLOW_FLUSHING;
  }
  gst_ovi_post_error (self->element, what, error, file, func, line);
  return GST_FLOW_ERROR;
}
