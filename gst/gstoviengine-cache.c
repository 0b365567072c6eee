/* gst-ovi: the process-wide engine cache (see gstoviengine-cache.h). */
#include "gstoviengine-cache.h"

#include <string.h>

#include "ovi-gpu-manager.h"
#include "ovi-placement.h"

GST_DEBUG_CATEGORY_STATIC (gst_ovi_engine_debug);
#define GST_CAT_DEFAULT gst_ovi_engine_debug

struct _GstOviEngineCache {
  GstObject parent;
  GHashTable *engines; /* key -> GstOviEngine (not owned) */
  GMutex load_lock;    /* serialises loads and lookups */
  guint n_loads;
  /* -1 unknown, 0 no, 1 yes, per device 0..15 */
  gint cuda_ok[16];
};

G_DEFINE_TYPE (GstOviEngineCache, gst_ovi_engine_cache, GST_TYPE_OBJECT);

/* the element enums are cast to the engine's */
G_STATIC_ASSERT ((int) GST_OVI_VRAM_MODE_AUTO == OVI_VRAM_MODE_AUTO);
G_STATIC_ASSERT ((int) GST_OVI_VRAM_MODE_STANDARD == OVI_VRAM_MODE_STANDARD);
G_STATIC_ASSERT ((int) GST_OVI_VRAM_MODE_FP8 == OVI_VRAM_MODE_FP8);
G_STATIC_ASSERT ((int) GST_OVI_VRAM_MODE_FP8_OFFLOAD
                 == OVI_VRAM_MODE_FP8_OFFLOAD);
G_STATIC_ASSERT ((int) GST_OVI_VRAM_MODE_ULTRA_LOW == OVI_VRAM_MODE_ULTRA_LOW);
G_STATIC_ASSERT ((int) GST_OVI_GPU_ALLOCATION_AUTO == OVI_GPU_ALLOCATION_AUTO);
G_STATIC_ASSERT ((int) GST_OVI_GPU_ALLOCATION_SINGLE
                 == OVI_GPU_ALLOCATION_SINGLE);
G_STATIC_ASSERT ((int) GST_OVI_GPU_ALLOCATION_SP2 == OVI_GPU_ALLOCATION_SP2);
G_STATIC_ASSERT ((int) GST_OVI_GPU_ALLOCATION_SP4 == OVI_GPU_ALLOCATION_SP4);
G_STATIC_ASSERT ((int) GST_OVI_GPU_ALLOCATION_SP8 == OVI_GPU_ALLOCATION_SP8);
G_STATIC_ASSERT ((int) GST_OVI_GPU_ALLOCATION_CFG_PARALLEL
                 == OVI_GPU_ALLOCATION_CFG_PARALLEL);
G_STATIC_ASSERT ((int) GST_OVI_GPU_ALLOCATION_SHARDED
                 == OVI_GPU_ALLOCATION_SHARDED);

static void
gst_ovi_engine_cache_finalize (GObject *object)
{
  GstOviEngineCache *self = GST_OVI_ENGINE_CACHE (object);

  if (g_hash_table_size (self->engines) > 0)
    GST_WARNING_OBJECT (self, "finalized with %u stages still held",
                        g_hash_table_size (self->engines));
  g_hash_table_unref (self->engines);
  g_mutex_clear (&self->load_lock);
  G_OBJECT_CLASS (gst_ovi_engine_cache_parent_class)->finalize (object);
}

static void
gst_ovi_engine_cache_class_init (GstOviEngineCacheClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = gst_ovi_engine_cache_finalize;
  GST_DEBUG_CATEGORY_INIT (gst_ovi_engine_debug, "ovi-engine", 0,
                           "ovi engine cache and stage loading");
}

static void
gst_ovi_engine_cache_init (GstOviEngineCache *self)
{
  guint i;

  self->engines = g_hash_table_new (g_str_hash, g_str_equal);
  g_mutex_init (&self->load_lock);
  for (i = 0; i < G_N_ELEMENTS (self->cuda_ok); i++)
    self->cuda_ok[i] = -1;
}

GstOviEngineCache *
gst_ovi_engine_cache_new (void)
{
  GstOviEngineCache *self = g_object_new (GST_TYPE_OVI_ENGINE_CACHE, NULL);
  gst_object_ref_sink (self);
  return self;
}

GstOviEngineCache *
gst_ovi_engine_cache_get_default (void)
{
  static GstOviEngineCache *cache = NULL;

  if (g_once_init_enter (&cache)) {
    GstOviEngineCache *c = gst_ovi_engine_cache_new ();
    GST_OBJECT_FLAG_SET (c, GST_OBJECT_FLAG_MAY_BE_LEAKED);
    g_once_init_leave (&cache, c);
  }
  return cache;
}

guint
gst_ovi_engine_cache_get_n_loaded (GstOviEngineCache *cache)
{
  guint n;
  g_mutex_lock (&cache->load_lock);
  n = g_hash_table_size (cache->engines);
  g_mutex_unlock (&cache->load_lock);
  return n;
}

guint
gst_ovi_engine_cache_get_n_loads (GstOviEngineCache *cache)
{
  guint n;
  g_mutex_lock (&cache->load_lock);
  n = cache->n_loads;
  g_mutex_unlock (&cache->load_lock);
  return n;
}

/* ---- GstContext plumbing ---- */

gboolean
gst_ovi_engine_cache_from_context (GstContext *context,
                                   GstOviEngineCache **cache)
{
  const GstStructure *s;
  GstOviEngineCache *c = NULL;

  if (g_strcmp0 (gst_context_get_context_type (context),
                 GST_OVI_ENGINE_CONTEXT_TYPE)
      != 0)
    return FALSE;
  s = gst_context_get_structure (context);
  if (!gst_structure_get (s, "cache", GST_TYPE_OVI_ENGINE_CACHE, &c, NULL)
      || !c)
    return FALSE;
  gst_object_replace ((GstObject **) cache, GST_OBJECT (c));
  gst_object_unref (c);
  return TRUE;
}

static GstContext *
make_context (GstOviEngineCache *cache)
{
  GstContext *ctx = gst_context_new (GST_OVI_ENGINE_CONTEXT_TYPE, TRUE);
  GstStructure *s = gst_context_writable_structure (ctx);
  gst_structure_set (s, "cache", GST_TYPE_OVI_ENGINE_CACHE, cache, NULL);
  return ctx;
}

gboolean
gst_ovi_engine_cache_handle_query (GstElement *element, GstQuery *query,
                                   GstOviEngineCache *cache)
{
  const gchar *type;
  GstContext *ctx;

  if (GST_QUERY_TYPE (query) != GST_QUERY_CONTEXT || !cache)
    return FALSE;
  if (!gst_query_parse_context_type (query, &type)
      || g_strcmp0 (type, GST_OVI_ENGINE_CONTEXT_TYPE) != 0)
    return FALSE;
  ctx = make_context (cache);
  gst_query_set_context (query, ctx);
  gst_context_unref (ctx);
  return TRUE;
}

static gboolean
query_pads (const GValue *item, GValue *value, gpointer user_data)
{
  GstPad *pad = g_value_get_object (item);
  GstQuery *query = user_data;

  if (gst_pad_peer_query (pad, query)) {
    g_value_set_boolean (value, TRUE);
    return FALSE;
  }
  return TRUE;
}

void
gst_ovi_engine_cache_ensure (GstElement *element, GstOviEngineCache **cache)
{
  GstQuery *query;
  GstIterator *it;
  GValue found = G_VALUE_INIT;
  GstContext *ctx = NULL;

  GST_OBJECT_LOCK (element);
  if (*cache) {
    GST_OBJECT_UNLOCK (element);
    return;
  }
  GST_OBJECT_UNLOCK (element);

  /* 1. the neighbours */
  query = gst_query_new_context (GST_OVI_ENGINE_CONTEXT_TYPE);
  g_value_init (&found, G_TYPE_BOOLEAN);
  it = gst_element_iterate_pads (element);
  gst_iterator_fold (it, query_pads, &found, query);
  gst_iterator_free (it);
  if (g_value_get_boolean (&found)) {
    gst_query_parse_context (query, &ctx);
    if (ctx) {
      GST_OBJECT_LOCK (element);
      gst_ovi_engine_cache_from_context (ctx, cache);
      GST_OBJECT_UNLOCK (element);
    }
  }
  gst_query_unref (query);
  if (*cache)
    return;

  /* 2. the application or the bin (answers by calling set_context) */
  gst_element_post_message (
      element, gst_message_new_need_context (GST_OBJECT (element),
                                             GST_OVI_ENGINE_CONTEXT_TYPE));
  GST_OBJECT_LOCK (element);
  if (*cache) {
    GST_OBJECT_UNLOCK (element);
    return;
  }
  /* 3. the process-wide cache, announced to the others */
  *cache = gst_object_ref (gst_ovi_engine_cache_get_default ());
  ctx = make_context (*cache);
  GST_OBJECT_UNLOCK (element);
  gst_element_post_message (
      element, gst_message_new_have_context (GST_OBJECT (element), ctx));
}

/* ---- stages ---- */

const gchar *
gst_ovi_stage_name (GstOviStage stage)
{
  switch (stage) {
    case GST_OVI_STAGE_TEXT:
      return "text encoder (umT5-XXL)";
    case GST_OVI_STAGE_DENOISER:
      return "fusion DiT";
    case GST_OVI_STAGE_VIDEO_VAE:
      return "Wan2.2 video VAE";
    case GST_OVI_STAGE_AUDIO:
      return "MMAudio VAE + BigVGAN vocoder";
  }
  return "?";
}

gchar *
gst_ovi_engine_config_to_string (const GstOviEngineConfig *c)
{
  return g_strdup_printf (
      "%s|%s|%s|%s|%d", c->model_dir ? c->model_dir : "",
      c->variant ? c->variant : "",
      gst_ovi_enum_nick (GST_TYPE_OVI_VRAM_MODE, c->vram_mode),
      gst_ovi_enum_nick (GST_TYPE_OVI_GPU_ALLOCATION, c->gpu_allocation),
      c->cuda_device_id);
}

static gchar *
stage_files (GstOviStage stage, const OviModelPaths *p)
{
  switch (stage) {
    case GST_OVI_STAGE_TEXT:
      return g_strdup_printf ("%s|%s|%s", p->t5_path, p->spiece_path,
                              p->variant);
    case GST_OVI_STAGE_DENOISER:
      return g_strdup_printf ("%s|%s", p->fusion_path, p->variant);
    case GST_OVI_STAGE_VIDEO_VAE:
      return g_strdup (p->vae_path);
    case GST_OVI_STAGE_AUDIO:
      return g_strdup_printf ("%s|%s", p->audio_vae_path, p->vocoder_path);
  }
  return g_strdup ("?");
}

/* Opens the backend the config asks for. Called with load_lock held. */
static OviBackend *
open_backend (GstOviEngineCache *cache, const GstOviEngineConfig *c,
              gchar **name, GError **error)
{
  gint dev = MAX (c->cuda_device_id, 0);
  gboolean need_gpu = gst_ovi_vram_mode_needs_gpu (c->vram_mode)
                      || c->cuda_device_id >= 0
                      || c->gpu_allocation != GST_OVI_GPU_ALLOCATION_AUTO;
  GError *err = NULL;
  OviBackend *be = NULL;

  if (gst_ovi_gpu_allocation_is_multi_gpu (c->gpu_allocation)) {
    g_set_error (
        error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
        "gpu-allocation=%s needs the multi-GPU engine, which this build "
        "does not have; use gpu-allocation=single or auto",
        gst_ovi_enum_nick (GST_TYPE_OVI_GPU_ALLOCATION, c->gpu_allocation));
    return NULL;
  }
  if (dev < (gint) G_N_ELEMENTS (cache->cuda_ok) && cache->cuda_ok[dev] == 0
      && !need_gpu) {
    be = ovi_backend_new_cpu (0);
    *name = g_strdup ("cpu");
    return be;
  }
  be = ovi_backend_new_by_name ("cuda", dev, &err);
  if (be) {
    if (dev < (gint) G_N_ELEMENTS (cache->cuda_ok))
      cache->cuda_ok[dev] = 1;
    *name = g_strdup_printf ("cuda:%d", dev);
    return be;
  }
  if (dev < (gint) G_N_ELEMENTS (cache->cuda_ok))
    cache->cuda_ok[dev] = 0;
  if (need_gpu) {
    g_set_error (
        error, OVI_ERROR, OVI_ERROR_BACKEND,
        "No usable CUDA GPU %d for vram-mode=%s gpu-allocation=%s "
        "cuda-device-id=%d (%s). Set vram-mode=auto, gpu-allocation=auto "
        "and cuda-device-id=-1 to run on the CPU (slow), or check the "
        "NVIDIA driver with nvidia-smi.",
        dev, gst_ovi_enum_nick (GST_TYPE_OVI_VRAM_MODE, c->vram_mode),
        gst_ovi_enum_nick (GST_TYPE_OVI_GPU_ALLOCATION, c->gpu_allocation),
        c->cuda_device_id, err->message);
    g_error_free (err);
    return NULL;
  }
  GST_INFO ("no CUDA backend (%s), using the CPU", err->message);
  g_error_free (err);
  *name = g_strdup ("cpu");
  return ovi_backend_new_cpu (0);
}

static void
engine_free (GstOviEngine *e)
{
  switch (e->stage) {
    case GST_OVI_STAGE_TEXT:
      g_clear_pointer (&e->u.text, ovi_text_encoder_free);
      break;
    case GST_OVI_STAGE_DENOISER:
      g_clear_pointer (&e->u.denoiser, ovi_denoiser_free);
      break;
    case GST_OVI_STAGE_VIDEO_VAE:
      g_clear_pointer (&e->u.video_vae, ovi_video_vae_free);
      break;
    case GST_OVI_STAGE_AUDIO:
      g_clear_pointer (&e->u.audio, ovi_audio_decoder_free);
      break;
  }
  g_clear_pointer ((OviPlacement **) &e->placement, ovi_placement_free);
  g_free (e->vram_mode);
  g_clear_pointer (&e->backend, ovi_backend_free);
  g_clear_pointer (&e->paths, ovi_model_paths_free);
  g_free (e->backend_name);
  g_free (e->key);
  g_mutex_clear (&e->lock);
  g_free (e);
}

static void
post_progress (GstElement *element, GstProgressType type, const gchar *text)
{
  if (element)
    gst_element_post_message (
        element, gst_message_new_progress (GST_OBJECT (element), type,
                                           "ovi-load", text));
}

GstOviEngine *
gst_ovi_engine_cache_acquire (GstOviEngineCache *cache, GstOviStage stage,
                              const GstOviEngineConfig *config,
                              GstElement *element, GError **error)
{
  g_autoptr (OviModelPaths) paths = NULL;
  g_autofree gchar *files = NULL, *key = NULL, *be_name = NULL, *text = NULL;
  OviBackend *be;
  GstOviEngine *e;
  GError *err = NULL;
  gint64 t0;
  OviPlacementPlan plan;
  guint64 device_free = 0;

  g_mutex_lock (&cache->load_lock);
  paths = ovi_model_paths_resolve (config->model_dir, config->variant, error);
  if (!paths)
    goto fail;
  be = open_backend (cache, config, &be_name, error);
  if (!be)
    goto fail;
  /* the VRAM plan: `auto` picks the fastest mode whose estimate fits the
   * GPU's free memory; another mode is checked against it and refused
   * with the estimate and the mode that would fit */
  if (ovi_backend_get_device (be).type == OVI_DEVICE_CUDA) {
    g_auto (OviGpuReport) report = { 0 };
    const OviDeviceInfo *info = NULL;
    if (ovi_gpu_report_probe (&report, NULL))
      info = ovi_gpu_report_device (&report, ovi_backend_get_device (be).index);
    if (info)
      device_free = ovi_gpu_usable_free (info, report.host_available);
  }
  if (!ovi_placement_choose_for_paths (
          paths, (OviVramMode) config->vram_mode,
          (OviGpuAllocation) config->gpu_allocation, 0, 0, be, device_free, 0,
          &plan, NULL, error)) {
    ovi_backend_free (be);
    goto fail;
  }
  if (stage == GST_OVI_STAGE_TEXT && plan.t5_on_cpu
      && ovi_backend_get_device (be).type != OVI_DEVICE_CPU) {
    ovi_backend_free (be);
    be = ovi_backend_new_cpu (0);
    g_free (be_name);
    be_name = g_strdup ("cpu");
  }
  if (stage == GST_OVI_STAGE_DENOISER
      && (plan.mode == OVI_VRAM_MODE_FP8
          || plan.mode == OVI_VRAM_MODE_FP8_OFFLOAD)) {
    /* the official pre-cast fp8 file when there is one */
    char *fp8 = ovi_placement_fp8_file (paths);
    if (fp8) {
      g_free (paths->fusion_path);
      paths->fusion_path = fp8;
    }
  }
  files = stage_files (stage, paths);
  key = g_strdup_printf ("%d|%s|%s|%s", stage, files, be_name,
                         ovi_vram_mode_to_string (plan.mode));
  e = g_hash_table_lookup (cache->engines, key);
  if (e) {
    ovi_backend_free (be);
    e->refcount++;
    GST_DEBUG_OBJECT (cache, "reusing %s (%d users)", key, e->refcount);
    g_mutex_unlock (&cache->load_lock);
    return e;
  }

  text = g_strdup_printf ("Loading the %s (%s, model %s) on %s, vram-mode %s",
                          gst_ovi_stage_name (stage), files, paths->variant,
                          be_name, ovi_vram_mode_to_string (plan.mode));
  post_progress (element, GST_PROGRESS_TYPE_START, text);
  t0 = g_get_monotonic_time ();
  e = g_new0 (GstOviEngine, 1);
  e->stage = stage;
  e->backend = be;
  e->vram_mode = g_strdup (ovi_vram_mode_to_string (plan.mode));
  e->vae_tile = plan.vae_tile;
  e->vae_tile_overlap = plan.vae_tile_overlap;
  if (stage == GST_OVI_STAGE_TEXT || stage == GST_OVI_STAGE_DENOISER)
    e->placement = ovi_placement_new (&plan, be);
  g_mutex_init (&e->lock);
  switch (stage) {
    case GST_OVI_STAGE_TEXT:
      e->u.text = ovi_text_encoder_new_filtered (
          paths, be, ovi_placement_t5_filter, e->placement, &err);
      break;
    case GST_OVI_STAGE_DENOISER:
      e->u.denoiser = ovi_denoiser_new_filtered (
          paths, be, ovi_placement_weight_filter, e->placement, &err);
      break;
    case GST_OVI_STAGE_VIDEO_VAE:
      e->u.video_vae = ovi_video_vae_new (paths, be, &err);
      break;
    case GST_OVI_STAGE_AUDIO:
      e->u.audio = ovi_audio_decoder_new (paths, be, &err);
      break;
  }
  if (!e->u.any) {
    g_autofree gchar *msg = g_strdup_printf (
        "Could not load the %s: %s", gst_ovi_stage_name (stage),
        err ? err->message : "unknown error");
    post_progress (element, GST_PROGRESS_TYPE_ERROR, msg);
    if (err)
      g_propagate_error (error, err);
    else
      g_set_error (error, OVI_ERROR, OVI_ERROR_FAILED, "loading failed");
    engine_free (e);
    g_mutex_unlock (&cache->load_lock);
    return NULL;
  }
  e->paths = g_steal_pointer (&paths);
  e->backend_name = g_steal_pointer (&be_name);
  e->key = g_steal_pointer (&key);
  e->refcount = 1;
  e->cache = cache;
  g_hash_table_insert (cache->engines, e->key, e);
  cache->n_loads++;
  g_free (text);
  text = g_strdup_printf ("Loaded the %s in %.1f s", gst_ovi_stage_name (stage),
                          (g_get_monotonic_time () - t0) / 1e6);
  post_progress (element, GST_PROGRESS_TYPE_COMPLETE, text);
  GST_INFO_OBJECT (cache, "%s", text);
  g_mutex_unlock (&cache->load_lock);
  return e;

fail:
  g_mutex_unlock (&cache->load_lock);
  return NULL;
}

void
gst_ovi_engine_release (GstOviEngine *e)
{
  GstOviEngineCache *cache;

  if (!e)
    return;
  cache = e->cache;
  g_mutex_lock (&cache->load_lock);
  if (--e->refcount == 0) {
    GST_INFO_OBJECT (cache, "releasing %s (no users left)", e->key);
    g_hash_table_remove (cache->engines, e->key);
    engine_free (e);
  }
  g_mutex_unlock (&cache->load_lock);
}

/* ---- common properties ---- */

void
gst_ovi_engine_install_properties (GObjectClass *klass)
{
  const GParamFlags rw
      = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY;

  g_object_class_install_property (
      klass, GST_OVI_PROP_MODEL_DIR,
      g_param_spec_string (
          "model-dir", "Model folder",
          "Folder of the official download (Ovi/, Wan2.2-TI2V-5B/, "
          "MMAudio/ext_weights/). Unset: the tiny random-weight test model, "
          "written on first use into $XDG_CACHE_HOME/gst-ovi (as `ovi "
          "make-tiny` does); it makes noise, not film",
          NULL, rw));
  g_object_class_install_property (
      klass, GST_OVI_PROP_VRAM_MODE,
      g_param_spec_enum (
          "vram-mode", "VRAM mode",
          "How the weights are held on the GPU; every mode but auto needs a "
          "CUDA GPU",
          GST_TYPE_OVI_VRAM_MODE, GST_OVI_VRAM_MODE_AUTO, rw));
  g_object_class_install_property (
      klass, GST_OVI_PROP_GPU_ALLOCATION,
      g_param_spec_enum ("gpu-allocation", "GPU allocation",
                         "How the work is spread over GPUs",
                         GST_TYPE_OVI_GPU_ALLOCATION,
                         GST_OVI_GPU_ALLOCATION_AUTO, rw));
  g_object_class_install_property (
      klass, GST_OVI_PROP_CUDA_DEVICE_ID,
      g_param_spec_int (
          "cuda-device-id", "CUDA device id",
          "CUDA device to run on (-1 = auto: the first GPU if one is usable, "
          "else the CPU)",
          -1, 15, -1, rw));
  gst_type_mark_as_plugin_api (GST_TYPE_OVI_VRAM_MODE, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_OVI_GPU_ALLOCATION, 0);
}

void
gst_ovi_engine_config_init (GstOviEngineConfig *c)
{
  memset (c, 0, sizeof (*c));
  c->vram_mode = GST_OVI_VRAM_MODE_AUTO;
  c->gpu_allocation = GST_OVI_GPU_ALLOCATION_AUTO;
  c->cuda_device_id = -1;
}

void
gst_ovi_engine_config_clear (GstOviEngineConfig *c)
{
  g_clear_pointer (&c->model_dir, g_free);
}

void
gst_ovi_engine_config_copy (GstOviEngineConfig *dst,
                            const GstOviEngineConfig *src)
{
  *dst = *src;
  dst->model_dir = g_strdup (src->model_dir);
}

gboolean
gst_ovi_engine_config_set_property (GstOviEngineConfig *c, guint prop_id,
                                    const GValue *value)
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
  }
  return FALSE;
}

gboolean
gst_ovi_engine_config_get_property (const GstOviEngineConfig *c, guint prop_id,
                                    GValue *value)
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
  }
  return FALSE;
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
