/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the process-wide engine cache (see gstoviengine-cache.h). */
#include "gstoviengine-cache.h"

#include <string.h>

GST_DEBUG_CATEGORY_STATIC (gst_ovi_engine_debug);
#define GST_CAT_DEFAULT gst_ovi_engine_debug

struct _GstOviEngineCache {
  GstObject parent;
  GHashTable *engines; /* key -> GstOviEngine (not owned) */
  GMutex load_lock;    /* serialises loads and lookups */
  guint n_loads;
};

struct _GstOviEngine {
  OviStage *stage;
  gint refcount;            /* users, under the cache's load_lock */
  GstOviEngineCache *cache; /* a reference: set_context may swap caches */
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
  self->engines = g_hash_table_new (g_str_hash, g_str_equal);
  g_mutex_init (&self->load_lock);
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

gchar *
gst_ovi_engine_config_to_string (const GstOviEngineConfig *c)
{
  return g_strdup_printf (
      "%s|%s|%s|%s|%d|%s|%s", c->model_dir ? c->model_dir : "",
      c->variant ? c->variant : "",
      gst_ovi_enum_nick (GST_TYPE_OVI_VRAM_MODE, c->vram_mode),
      gst_ovi_enum_nick (GST_TYPE_OVI_GPU_ALLOCATION, c->gpu_allocation),
      c->cuda_device_id, c->loras ? c->loras : "",
      c->cuda_devices ? c->cuda_devices : "");
}

static void
post_progress (GstElement *element, GstProgressType type, const gchar *text)
{
  if (element)
    gst_element_post_message (
        element, gst_message_new_progress (GST_OBJECT (element), type,
                                           "ovi-load", text));
}

static OviStagePlan *
make_plan (GstOviStage stage, const GstOviEngineConfig *config,
           GstElement *element, GError **error)
{
  OviStageConfig sc;
  OviStagePlan *plan;
  const gchar *reason;
  gboolean warn;

  ovi_stage_config_init (&sc);
  sc.model_dir = config->model_dir;
  sc.variant = config->variant;
  sc.vram_mode = (OviVramMode) config->vram_mode;
  sc.gpu_allocation = (OviGpuAllocation) config->gpu_allocation;
  sc.cuda_device_id = config->cuda_device_id;
  sc.cuda_devices = config->cuda_devices;
  sc.loras = config->loras;
  sc.weight_cache_dir = config->weight_cache_dir;
  plan = ovi_stage_plan_new (stage, &sc, error);
  reason = plan ? ovi_stage_plan_get_cpu_reason (plan, &warn) : NULL;
  /* an NVIDIA driver is there, so the user expects the GPU: say it on the
   * bus, not only in the debug log */
  if (reason && warn && element)
    GST_ELEMENT_WARNING (element, RESOURCE, NOT_FOUND,
                         ("The %s runs on the CPU, which is slow: %s",
                          gst_ovi_stage_name (stage), reason),
                         ("no usable GPU; `ovi devices` tells more"));
  else if (reason && warn)
    GST_WARNING ("the %s runs on the CPU (slow): %s",
                 gst_ovi_stage_name (stage), reason);
  else if (reason)
    GST_INFO_OBJECT (element, "the %s runs on the CPU: %s",
                     gst_ovi_stage_name (stage), reason);
  return plan;
}

/* a real load, posting GST_MESSAGE_PROGRESS around it; load_lock held */
static GstOviEngine *
load (GstOviEngineCache *cache, const OviStagePlan *plan, GstOviStage stage,
      GstElement *element, GError **error)
{
  g_autofree gchar *start = g_strdup_printf (
      "Loading the %s", ovi_stage_plan_get_description (plan));
  g_autofree gchar *done = NULL;
  GstOviEngine *e;
  OviStage *loaded;

  post_progress (element, GST_PROGRESS_TYPE_START, start);
  loaded = ovi_stage_plan_load (plan, error);
  if (!loaded) {
    post_progress (element, GST_PROGRESS_TYPE_ERROR, (*error)->message);
    return NULL;
  }
  e = g_new0 (GstOviEngine, 1);
  e->stage = loaded;
  e->refcount = 1;
  e->cache = gst_object_ref (cache);
  g_hash_table_insert (cache->engines, (gpointer) ovi_stage_get_key (loaded),
                       e);
  cache->n_loads++;
  done = g_strdup_printf ("Loaded the %s in %.1f s", gst_ovi_stage_name (stage),
                          ovi_stage_get_load_seconds (loaded));
  post_progress (element, GST_PROGRESS_TYPE_COMPLETE, done);
  GST_INFO_OBJECT (cache, "%s", done);
  return e;
}

GstOviEngine *
gst_ovi_engine_cache_acquire (GstOviEngineCache *cache, GstOviStage stage,
                              const GstOviEngineConfig *config,
                              GstElement *element, GError **error)
{
  g_autoptr (OviStagePlan) plan = NULL;
  GstOviEngine *e;

  g_mutex_lock (&cache->load_lock);
  plan = make_plan (stage, config, element, error);
  e = plan ? g_hash_table_lookup (cache->engines, ovi_stage_plan_get_key (plan))
           : NULL;
  if (e) {
    e->refcount++;
    GST_DEBUG_OBJECT (cache, "reusing %s (%d users)",
                      ovi_stage_plan_get_key (plan), e->refcount);
  } else if (plan) {
    e = load (cache, plan, stage, element, error);
  }
  g_mutex_unlock (&cache->load_lock);
  return e;
}

void
gst_ovi_engine_release (GstOviEngine *e)
{
  GstOviEngineCache *cache;
  gboolean last;

  if (!e)
    return;
  cache = e->cache;
  g_mutex_lock (&cache->load_lock);
  last = --e->refcount == 0;
  if (last) {
    GST_INFO_OBJECT (cache, "releasing %s (no users left)",
                     ovi_stage_get_key (e->stage));
    g_hash_table_remove (cache->engines, ovi_stage_get_key (e->stage));
  }
  g_mutex_unlock (&cache->load_lock);
  if (last) {
    ovi_stage_unref (e->stage);
    gst_object_unref (cache);
    g_free (e);
  }
}

OviStage *
gst_ovi_engine_get_stage (GstOviEngine *e)
{
  return e->stage;
}

/* ---- the settings that choose the weights ---- */

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
  g_clear_pointer (&c->loras, g_free);
  g_clear_pointer (&c->cuda_devices, g_free);
  g_clear_pointer (&c->weight_cache_dir, g_free);
}

void
gst_ovi_engine_config_copy (GstOviEngineConfig *dst,
                            const GstOviEngineConfig *src)
{
  *dst = *src;
  dst->model_dir = g_strdup (src->model_dir);
  dst->loras = g_strdup (src->loras);
  dst->cuda_devices = g_strdup (src->cuda_devices);
  dst->weight_cache_dir = g_strdup (src->weight_cache_dir);
}
