/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: presets from the presets/ JSON tables, and the official resolution
 * rules. */
#include "ovi-presets.h"

#include "ovi-config.h"
#include "ovi-error.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

/* ---- names of the C enums ---- */

static const char *const vram_mode_names[OVI_N_VRAM_MODES] = {
  [OVI_VRAM_MODE_AUTO] = "auto",
  [OVI_VRAM_MODE_STANDARD] = "standard",
  [OVI_VRAM_MODE_FP8] = "fp8",
  [OVI_VRAM_MODE_FP8_OFFLOAD] = "fp8-offload",
  [OVI_VRAM_MODE_ULTRA_LOW] = "ultra-low",
};

static const char *const gpu_allocation_names[OVI_N_GPU_ALLOCATIONS] = {
  [OVI_GPU_ALLOCATION_AUTO] = "auto",
  [OVI_GPU_ALLOCATION_SINGLE] = "single",
  [OVI_GPU_ALLOCATION_SP2] = "sp2",
  [OVI_GPU_ALLOCATION_SP4] = "sp4",
  [OVI_GPU_ALLOCATION_SP8] = "sp8",
  [OVI_GPU_ALLOCATION_CFG_PARALLEL] = "cfg-parallel",
  [OVI_GPU_ALLOCATION_SHARDED] = "sharded",
};

static char *
join_names (const char *const *names, guint n)
{
  GString *s = g_string_new (NULL);

  for (guint i = 0; i < n; i++) {
    if (i > 0)
      g_string_append (s, ", ");
    g_string_append (s, names[i]);
  }
  return g_string_free (s, FALSE);
}

static int
find_name (const char *const *names, guint n, const char *name)
{
  if (name == NULL)
    return -1;
  for (guint i = 0; i < n; i++)
    if (g_strcmp0 (names[i], name) == 0)
      return (int) i;
  return -1;
}

static gboolean
unknown_name (const char *what, const char *name, const char *const *names,
              guint n, GError **error)
{
  g_autofree char *valid = join_names (names, n);

  g_set_error (error, OVI_ERROR, OVI_ERROR_UNKNOWN_PRESET,
               "unknown %s '%s'; valid names: %s", what, name ? name : "(null)",
               valid);
  return FALSE;
}

const char *
ovi_vram_mode_to_string (OviVramMode mode)
{
  if ((int) mode < 0 || mode >= OVI_N_VRAM_MODES)
    return NULL;
  return vram_mode_names[mode];
}

gboolean
ovi_vram_mode_from_string (const char *name, OviVramMode *mode, GError **error)
{
  int i = find_name (vram_mode_names, OVI_N_VRAM_MODES, name);

  if (i < 0)
    return unknown_name ("vram-mode", name, vram_mode_names, OVI_N_VRAM_MODES,
                         error);
  if (mode)
    *mode = (OviVramMode) i;
  return TRUE;
}

const char *
ovi_gpu_allocation_to_string (OviGpuAllocation alloc)
{
  if ((int) alloc < 0 || alloc >= OVI_N_GPU_ALLOCATIONS)
    return NULL;
  return gpu_allocation_names[alloc];
}

gboolean
ovi_gpu_allocation_from_string (const char *name, OviGpuAllocation *alloc,
                                GError **error)
{
  int i = find_name (gpu_allocation_names, OVI_N_GPU_ALLOCATIONS, name);

  if (i < 0)
    return unknown_name ("gpu-allocation", name, gpu_allocation_names,
                         OVI_N_GPU_ALLOCATIONS, error);
  if (alloc)
    *alloc = (OviGpuAllocation) i;
  return TRUE;
}

/* ---- the JSON tables ---- */

typedef struct {
  char *dir;
  GPtrArray *models; /* OviModelPreset* */
  OviVramModePreset vram[OVI_N_VRAM_MODES];
  OviGpuAllocationPreset alloc[OVI_N_GPU_ALLOCATIONS];
} OviPresetTables;

static GMutex tables_lock;
static OviPresetTables *tables; /* set once, never freed */

const char *
ovi_presets_dir (void)
{
  const char *env = g_getenv ("OVI_PRESETS_DIR");
  g_autofree char *installed = NULL;

  if (env && *env)
    return g_intern_string (env);
  installed = g_build_filename (OVI_PRESETS_DIR, "models.json", NULL);
  if (g_file_test (installed, G_FILE_TEST_IS_REGULAR))
    return OVI_PRESETS_DIR;
  return OVI_SOURCE_PRESETS_DIR;
}

/* member readers: every failure names the file, the entry and the key */

typedef struct {
  const char *file;
  const char *entry;
} Ctx;

static gboolean
bad_member (const Ctx *c, const char *key, const char *expected, GError **error)
{
  g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
               "%s: entry '%s': member '%s' is missing or not %s", c->file,
               c->entry ? c->entry : "?", key, expected);
  return FALSE;
}

static gboolean
get_string (const Ctx *c, JsonObject *o, const char *key, gboolean optional,
            char **out, GError **error)
{
  JsonNode *n = json_object_get_member (o, key);

  *out = NULL;
  if (n == NULL && optional)
    return TRUE;
  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n)
      || json_node_get_value_type (n) != G_TYPE_STRING)
    return bad_member (c, key, "a string", error);
  *out = g_strdup (json_node_get_string (n));
  return TRUE;
}

static gboolean
get_int64 (const Ctx *c, JsonObject *o, const char *key, int64_t min,
           int64_t *out, GError **error)
{
  JsonNode *n = json_object_get_member (o, key);

  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n)
      || json_node_get_value_type (n) != G_TYPE_INT64)
    return bad_member (c, key, "an integer", error);
  *out = json_node_get_int (n);
  if (*out < min) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                 "%s: entry '%s': member '%s' is %" G_GINT64_FORMAT
                 ", expected >= %" G_GINT64_FORMAT,
                 c->file, c->entry, key, *out, min);
    return FALSE;
  }
  return TRUE;
}

static gboolean
get_int (const Ctx *c, JsonObject *o, const char *key, int min, int *out,
         GError **error)
{
  int64_t v;

  if (!get_int64 (c, o, key, min, &v, error))
    return FALSE;
  if (v > G_MAXINT)
    return bad_member (c, key, "a 32-bit integer", error);
  *out = (int) v;
  return TRUE;
}

static gboolean
get_double (const Ctx *c, JsonObject *o, const char *key, double *out,
            GError **error)
{
  JsonNode *n = json_object_get_member (o, key);

  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n))
    return bad_member (c, key, "a number", error);
  if (json_node_get_value_type (n) == G_TYPE_DOUBLE)
    *out = json_node_get_double (n);
  else if (json_node_get_value_type (n) == G_TYPE_INT64)
    *out = (double) json_node_get_int (n);
  else
    return bad_member (c, key, "a number", error);
  return TRUE;
}

static gboolean
get_bool (const Ctx *c, JsonObject *o, const char *key, gboolean *out,
          GError **error)
{
  JsonNode *n = json_object_get_member (o, key);

  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n)
      || json_node_get_value_type (n) != G_TYPE_BOOLEAN)
    return bad_member (c, key, "a boolean", error);
  *out = json_node_get_boolean (n);
  return TRUE;
}

static JsonObject *
get_object (const Ctx *c, JsonObject *o, const char *key, GError **error)
{
  JsonNode *n = json_object_get_member (o, key);

  if (n == NULL || !JSON_NODE_HOLDS_OBJECT (n)) {
    bad_member (c, key, "an object", error);
    return NULL;
  }
  return json_node_get_object (n);
}

/* parses `dir/file` and returns the array member `key` of its root object */
static JsonArray *
load_array (const char *dir, const char *file, const char *key,
            JsonParser **parser_out, char **path_out, GError **error)
{
  g_autofree char *path = g_build_filename (dir, file, NULL);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) local = NULL;
  JsonNode *root;
  JsonObject *obj;
  JsonNode *arr;

  if (!json_parser_load_from_file (parser, path, &local)) {
    g_set_error (error, OVI_ERROR,
                 g_error_matches (local, G_FILE_ERROR, G_FILE_ERROR_NOENT)
                     ? OVI_ERROR_IO
                     : OVI_ERROR_FORMAT,
                 "cannot read preset table %s: %s (set OVI_PRESETS_DIR to the "
                 "folder holding models.json, vram-modes.json and "
                 "gpu-allocations.json)",
                 path, local->message);
    return NULL;
  }
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                 "%s: the top level is not a JSON object", path);
    return NULL;
  }
  obj = json_node_get_object (root);
  arr = json_object_get_member (obj, key);
  if (arr == NULL || !JSON_NODE_HOLDS_ARRAY (arr)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT, "%s: no array member '%s'",
                 path, key);
    return NULL;
  }
  *parser_out = g_steal_pointer (&parser);
  *path_out = g_steal_pointer (&path);
  return json_node_get_array (arr);
}

static void
model_preset_free (gpointer p)
{
  OviModelPreset *m = p;

  g_free (m->name);
  g_free (m->fusion_file);
  g_free (m->fp8_file);
  g_free (m->t5_file);
  g_free (m->spiece_file);
  g_free (m->vae_file);
  g_free (m->audio_vae_file);
  g_free (m->vocoder_file);
  g_free (m->solver);
  g_free (m->video_negative);
  g_free (m->audio_negative);
  g_free (m);
}

static gboolean
check_rel_path (const Ctx *c, const char *key, const char *path, GError **error)
{
  if (path == NULL)
    return TRUE;
  if (g_path_is_absolute (path) || strstr (path, "..") != NULL) {
    g_set_error (
        error, OVI_ERROR, OVI_ERROR_FORMAT,
        "%s: entry '%s': %s '%s' must be a relative path inside the model "
        "folder",
        c->file, c->entry, key, path);
    return FALSE;
  }
  return TRUE;
}

static OviModelPreset *
parse_model (const char *file, JsonObject *o, GError **error)
{
  OviModelPreset *m = g_new0 (OviModelPreset, 1);
  Ctx c = { file, NULL };
  g_autofree char *syntax = NULL;
  JsonObject *dit, *sampler;
  int64_t v;

  if (!get_string (&c, o, "name", FALSE, &m->name, error))
    goto fail;
  c.entry = m->name;
  if (!get_string (&c, o, "fusion_file", FALSE, &m->fusion_file, error)
      || !get_string (&c, o, "fp8_file", TRUE, &m->fp8_file, error)
      || !get_string (&c, o, "t5_file", FALSE, &m->t5_file, error)
      || !get_string (&c, o, "spiece_file", FALSE, &m->spiece_file, error)
      || !get_string (&c, o, "vae_file", FALSE, &m->vae_file, error)
      || !get_string (&c, o, "audio_vae_file", FALSE, &m->audio_vae_file, error)
      || !get_string (&c, o, "vocoder_file", FALSE, &m->vocoder_file, error))
    goto fail;
  if (!check_rel_path (&c, "fusion_file", m->fusion_file, error)
      || !check_rel_path (&c, "fp8_file", m->fp8_file, error)
      || !check_rel_path (&c, "t5_file", m->t5_file, error)
      || !check_rel_path (&c, "spiece_file", m->spiece_file, error)
      || !check_rel_path (&c, "vae_file", m->vae_file, error)
      || !check_rel_path (&c, "audio_vae_file", m->audio_vae_file, error)
      || !check_rel_path (&c, "vocoder_file", m->vocoder_file, error))
    goto fail;
  if (!get_int (&c, o, "video_latent_frames", 1, &m->video_latent_frames, error)
      || !get_int (&c, o, "audio_latent_length", 1, &m->audio_latent_length,
                   error)
      || !get_int (&c, o, "pixel_frames", 1, &m->pixel_frames, error)
      || !get_int64 (&c, o, "audio_samples", 1, &m->audio_samples, error)
      || !get_int64 (&c, o, "target_area", 1, &m->target_area, error)
      || !get_int (&c, o, "default_height", 32, &m->default_height, error)
      || !get_int (&c, o, "default_width", 32, &m->default_width, error)
      || !get_string (&c, o, "caption_syntax", FALSE, &syntax, error))
    goto fail;
  if (g_strcmp0 (syntax, "audcap") == 0)
    m->audcap_syntax = TRUE;
  else if (g_strcmp0 (syntax, "audio_colon") == 0)
    m->audcap_syntax = FALSE;
  else {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                 "%s: entry '%s': caption_syntax '%s' is neither 'audcap' nor "
                 "'audio_colon'",
                 file, m->name, syntax);
    goto fail;
  }
  /* the shapes the VAEs fix */
  if (m->pixel_frames != 1 + 4 * (m->video_latent_frames - 1)
      || m->audio_samples != 512 * (int64_t) m->audio_latent_length) {
    g_set_error (
        error, OVI_ERROR, OVI_ERROR_FORMAT,
        "%s: entry '%s': pixel_frames %d / audio_samples %" G_GINT64_FORMAT
        " do not follow from %d latent frames (1 + 4 (F-1)) / %d audio "
        "latents (512 L)",
        file, m->name, m->pixel_frames, m->audio_samples,
        m->video_latent_frames, m->audio_latent_length);
    goto fail;
  }

  if ((dit = get_object (&c, o, "dit", error)) == NULL)
    goto fail;
  if (!get_int (&c, dit, "dim", 1, &m->dim, error)
      || !get_int (&c, dit, "ffn_dim", 1, &m->ffn_dim, error)
      || !get_int (&c, dit, "num_heads", 1, &m->num_heads, error)
      || !get_int (&c, dit, "num_layers", 1, &m->num_layers, error)
      || !get_int (&c, dit, "freq_dim", 2, &m->freq_dim, error)
      || !get_int (&c, dit, "text_len", 1, &m->text_len, error)
      || !get_int (&c, dit, "text_dim", 1, &m->text_dim, error)
      || !get_double (&c, dit, "eps", &m->eps, error)
      || !get_double (&c, dit, "audio_rope_scale", &m->audio_rope_scale, error)
      || !get_int (&c, dit, "video_channels", 1, &m->video_channels, error)
      || !get_int (&c, dit, "audio_channels", 1, &m->audio_channels, error))
    goto fail;
  if (m->dim % m->num_heads != 0) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                 "%s: entry '%s': dit.dim %d is not a multiple of num_heads %d",
                 file, m->name, m->dim, m->num_heads);
    goto fail;
  }

  if ((sampler = get_object (&c, o, "sampler", error)) == NULL)
    goto fail;
  if (!get_int (&c, sampler, "steps", 1, &m->steps, error)
      || !get_string (&c, sampler, "solver", FALSE, &m->solver, error)
      || !get_double (&c, sampler, "shift", &m->shift, error)
      || !get_double (&c, sampler, "video_guidance", &m->video_guidance, error)
      || !get_double (&c, sampler, "audio_guidance", &m->audio_guidance, error)
      || !get_int64 (&c, sampler, "slg_layer", -1, &v, error)
      || !get_string (&c, sampler, "video_negative", FALSE, &m->video_negative,
                      error)
      || !get_string (&c, sampler, "audio_negative", FALSE, &m->audio_negative,
                      error))
    goto fail;
  m->slg_layer = (int) v;
  if (m->slg_layer >= m->num_layers) {
    g_set_error (
        error, OVI_ERROR, OVI_ERROR_FORMAT,
        "%s: entry '%s': sampler.slg_layer %d is not a block of the %d-layer "
        "DiT",
        file, m->name, m->slg_layer, m->num_layers);
    goto fail;
  }
  return m;

fail:
  model_preset_free (m);
  return NULL;
}

static gboolean
parse_dtype (const Ctx *c, const char *s, OviVramModePreset *p, GError **error)
{
  p->weight_dtype_auto = FALSE;
  if (g_strcmp0 (s, "auto") == 0) {
    p->weight_dtype_auto = TRUE;
    p->weight_dtype = OVI_DTYPE_BF16;
  } else if (g_strcmp0 (s, "bf16") == 0)
    p->weight_dtype = OVI_DTYPE_BF16;
  else if (g_strcmp0 (s, "f8_e4m3") == 0)
    p->weight_dtype = OVI_DTYPE_F8_E4M3;
  else if (g_strcmp0 (s, "int8") == 0)
    p->weight_dtype = OVI_DTYPE_I8;
  else {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                 "%s: entry '%s': weight_dtype '%s' is not one of auto, bf16, "
                 "f8_e4m3, int8",
                 c->file, c->entry, s);
    return FALSE;
  }
  return TRUE;
}

static gboolean
load_vram_modes (OviPresetTables *t, GError **error)
{
  g_autoptr (JsonParser) parser = NULL;
  g_autofree char *path = NULL;
  gboolean seen[OVI_N_VRAM_MODES] = { FALSE };
  JsonArray *arr = load_array (t->dir, "vram-modes.json", "vram_modes", &parser,
                               &path, error);

  if (arr == NULL)
    return FALSE;
  for (guint i = 0; i < json_array_get_length (arr); i++) {
    JsonNode *n = json_array_get_element (arr, i);
    Ctx c = { path, NULL };
    g_autofree char *name = NULL, *dtype = NULL, *res = NULL, *desc = NULL;
    OviVramModePreset *p;
    OviVramMode mode;
    double gb;
    gboolean tiled;

    if (!JSON_NODE_HOLDS_OBJECT (n)) {
      g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                   "%s: vram_modes[%u] is not an object", path, i);
      return FALSE;
    }
    if (!get_string (&c, json_node_get_object (n), "name", FALSE, &name, error))
      return FALSE;
    c.entry = name;
    if (!ovi_vram_mode_from_string (name, &mode, NULL)) {
      g_autofree char *valid = join_names (vram_mode_names, OVI_N_VRAM_MODES);
      g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                   "%s: vram mode '%s' is not one the engine knows (%s)", path,
                   name, valid);
      return FALSE;
    }
    if (seen[mode]) {
      g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                   "%s: vram mode '%s' is listed twice", path, name);
      return FALSE;
    }
    if (!get_string (&c, json_node_get_object (n), "weight_dtype", FALSE,
                     &dtype, error)
        || !get_string (&c, json_node_get_object (n), "residency", FALSE, &res,
                        error)
        || !get_double (&c, json_node_get_object (n), "target_vram_gb", &gb,
                        error)
        || !get_bool (&c, json_node_get_object (n), "tiled_vae", &tiled, error)
        || !get_string (&c, json_node_get_object (n), "description", FALSE,
                        &desc, error))
      return FALSE;
    p = &t->vram[mode];
    if (!parse_dtype (&c, dtype, p, error))
      return FALSE;
    if (g_strcmp0 (res, "auto") == 0)
      p->residency = OVI_RESIDENCY_AUTO;
    else if (g_strcmp0 (res, "gpu") == 0)
      p->residency = OVI_RESIDENCY_GPU;
    else if (g_strcmp0 (res, "stream") == 0)
      p->residency = OVI_RESIDENCY_STREAM;
    else {
      g_set_error (
          error, OVI_ERROR, OVI_ERROR_FORMAT,
          "%s: entry '%s': residency '%s' is not one of auto, gpu, stream",
          path, name, res);
      return FALSE;
    }
    p->mode = mode;
    p->name = g_steal_pointer (&name);
    p->weight_dtype_name = g_steal_pointer (&dtype);
    p->target_vram_gb = gb;
    p->tiled_vae = tiled;
    p->description = g_steal_pointer (&desc);
    seen[mode] = TRUE;
  }
  for (int m = 0; m < OVI_N_VRAM_MODES; m++)
    if (!seen[m]) {
      g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                   "%s: vram mode '%s' is missing", path, vram_mode_names[m]);
      return FALSE;
    }
  return TRUE;
}

static gboolean
load_gpu_allocations (OviPresetTables *t, GError **error)
{
  static const char *const kinds[]
      = { "auto", "single", "sequence-parallel", "cfg-parallel", "sharded" };
  g_autoptr (JsonParser) parser = NULL;
  g_autofree char *path = NULL;
  gboolean seen[OVI_N_GPU_ALLOCATIONS] = { FALSE };
  JsonArray *arr = load_array (t->dir, "gpu-allocations.json",
                               "gpu_allocations", &parser, &path, error);

  if (arr == NULL)
    return FALSE;
  for (guint i = 0; i < json_array_get_length (arr); i++) {
    JsonNode *n = json_array_get_element (arr, i);
    Ctx c = { path, NULL };
    g_autofree char *name = NULL, *kind = NULL, *desc = NULL;
    OviGpuAllocationPreset *p;
    OviGpuAllocation alloc;
    int ranks, k;

    if (!JSON_NODE_HOLDS_OBJECT (n)) {
      g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                   "%s: gpu_allocations[%u] is not an object", path, i);
      return FALSE;
    }
    if (!get_string (&c, json_node_get_object (n), "name", FALSE, &name, error))
      return FALSE;
    c.entry = name;
    if (!ovi_gpu_allocation_from_string (name, &alloc, NULL)) {
      g_autofree char *valid
          = join_names (gpu_allocation_names, OVI_N_GPU_ALLOCATIONS);
      g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                   "%s: gpu allocation '%s' is not one the engine knows (%s)",
                   path, name, valid);
      return FALSE;
    }
    if (seen[alloc]) {
      g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                   "%s: gpu allocation '%s' is listed twice", path, name);
      return FALSE;
    }
    if (!get_int (&c, json_node_get_object (n), "ranks", 0, &ranks, error)
        || !get_string (&c, json_node_get_object (n), "kind", FALSE, &kind,
                        error)
        || !get_string (&c, json_node_get_object (n), "description", FALSE,
                        &desc, error))
      return FALSE;
    k = find_name (kinds, G_N_ELEMENTS (kinds), kind);
    if (k < 0) {
      g_autofree char *valid = join_names (kinds, G_N_ELEMENTS (kinds));
      g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                   "%s: entry '%s': kind '%s' is not one of %s", path, name,
                   kind, valid);
      return FALSE;
    }
    p = &t->alloc[alloc];
    p->allocation = alloc;
    p->name = g_steal_pointer (&name);
    p->ranks = ranks;
    p->kind = (OviParallelKind) k;
    p->description = g_steal_pointer (&desc);
    seen[alloc] = TRUE;
  }
  for (int a = 0; a < OVI_N_GPU_ALLOCATIONS; a++)
    if (!seen[a]) {
      g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                   "%s: gpu allocation '%s' is missing", path,
                   gpu_allocation_names[a]);
      return FALSE;
    }
  return TRUE;
}

static gboolean
load_models (OviPresetTables *t, GError **error)
{
  g_autoptr (JsonParser) parser = NULL;
  g_autofree char *path = NULL;
  JsonArray *arr
      = load_array (t->dir, "models.json", "models", &parser, &path, error);

  if (arr == NULL)
    return FALSE;
  for (guint i = 0; i < json_array_get_length (arr); i++) {
    JsonNode *n = json_array_get_element (arr, i);
    OviModelPreset *m;

    if (!JSON_NODE_HOLDS_OBJECT (n)) {
      g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                   "%s: models[%u] is not an object", path, i);
      return FALSE;
    }
    m = parse_model (path, json_node_get_object (n), error);
    if (m == NULL)
      return FALSE;
    for (guint j = 0; j < t->models->len; j++)
      if (strcmp (((OviModelPreset *) t->models->pdata[j])->name, m->name)
          == 0) {
        g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                     "%s: model '%s' is listed twice", path, m->name);
        model_preset_free (m);
        return FALSE;
      }
    g_ptr_array_add (t->models, m);
  }
  if (t->models->len == 0) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT, "%s: no models", path);
    return FALSE;
  }
  return TRUE;
}

static void
tables_free (OviPresetTables *t)
{
  g_free (t->dir);
  g_ptr_array_unref (t->models);
  for (int i = 0; i < OVI_N_VRAM_MODES; i++) {
    g_free (t->vram[i].name);
    g_free (t->vram[i].weight_dtype_name);
    g_free (t->vram[i].description);
  }
  for (int i = 0; i < OVI_N_GPU_ALLOCATIONS; i++) {
    g_free (t->alloc[i].name);
    g_free (t->alloc[i].description);
  }
  g_free (t);
}

/* Loads the tables on first success; a failed load is retried next time. */
static const OviPresetTables *
get_tables (GError **error)
{
  OviPresetTables *t;

  g_mutex_lock (&tables_lock);
  if (tables) {
    g_mutex_unlock (&tables_lock);
    return tables;
  }
  t = g_new0 (OviPresetTables, 1);
  t->dir = g_strdup (ovi_presets_dir ());
  t->models = g_ptr_array_new_with_free_func (model_preset_free);
  if (!load_models (t, error) || !load_vram_modes (t, error)
      || !load_gpu_allocations (t, error)) {
    tables_free (t);
    g_mutex_unlock (&tables_lock);
    return NULL;
  }
  tables = t;
  g_mutex_unlock (&tables_lock);
  return t;
}

const OviModelPreset *
ovi_model_preset_lookup (const char *name, GError **error)
{
  const OviPresetTables *t = get_tables (error);
  g_autofree const char **names = NULL;

  if (t == NULL)
    return NULL;
  for (guint i = 0; i < t->models->len; i++) {
    OviModelPreset *m = t->models->pdata[i];
    if (name && strcmp (m->name, name) == 0)
      return m;
  }
  names = g_new0 (const char *, t->models->len + 1);
  for (guint i = 0; i < t->models->len; i++)
    names[i] = ((OviModelPreset *) t->models->pdata[i])->name;
  unknown_name ("model", name, names, t->models->len, error);
  return NULL;
}

char **
ovi_model_preset_names (GError **error)
{
  const OviPresetTables *t = get_tables (error);
  char **names;

  if (t == NULL)
    return NULL;
  names = g_new0 (char *, t->models->len + 1);
  for (guint i = 0; i < t->models->len; i++)
    names[i] = g_strdup (((OviModelPreset *) t->models->pdata[i])->name);
  return names;
}

const OviVramModePreset *
ovi_vram_mode_preset_get (OviVramMode mode, GError **error)
{
  const OviPresetTables *t;

  if ((int) mode < 0 || mode >= OVI_N_VRAM_MODES) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_UNKNOWN_PRESET,
                 "vram-mode %d is out of range", (int) mode);
    return NULL;
  }
  t = get_tables (error);
  return t ? &t->vram[mode] : NULL;
}

const OviVramModePreset *
ovi_vram_mode_preset_lookup (const char *name, GError **error)
{
  OviVramMode mode;

  if (!ovi_vram_mode_from_string (name, &mode, error))
    return NULL;
  return ovi_vram_mode_preset_get (mode, error);
}

const OviGpuAllocationPreset *
ovi_gpu_allocation_preset_get (OviGpuAllocation alloc, GError **error)
{
  const OviPresetTables *t;

  if ((int) alloc < 0 || alloc >= OVI_N_GPU_ALLOCATIONS) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_UNKNOWN_PRESET,
                 "gpu-allocation %d is out of range", (int) alloc);
    return NULL;
  }
  t = get_tables (error);
  return t ? &t->alloc[alloc] : NULL;
}

const OviGpuAllocationPreset *
ovi_gpu_allocation_preset_lookup (const char *name, GError **error)
{
  OviGpuAllocation alloc;

  if (!ovi_gpu_allocation_from_string (name, &alloc, error))
    return NULL;
  return ovi_gpu_allocation_preset_get (alloc, error);
}

/* ---- resolution rules ---- */

/* Python's round() on a float: nearest integer, halves to even. rint() in
 * the default rounding mode does exactly that. */
static double
py_round (double x)
{
  return rint (x);
}

static gboolean
check_hw (int h, int w, GError **error)
{
  if (h <= 0 || w <= 0) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "height and width must be positive, got %dx%d", h, w);
    return FALSE;
  }
  return TRUE;
}

static int
nearest_32 (double x)
{
  double r = py_round (x / 32.0) * 32.0;

  return r < 32.0 ? 32 : (int) r;
}

gboolean
ovi_snap_hw_t2v (int h, int w, int64_t target_area, int *out_h, int *out_w,
                 GError **error)
{
  double hh = h, ww = w;

  if (!check_hw (h, w, error))
    return FALSE;
  if (target_area > 0) {
    double current = (double) h * (double) w;
    double scale = sqrt ((double) target_area / current);
    hh = py_round ((double) h * scale);
    ww = py_round ((double) w * scale);
  }
  *out_h = nearest_32 (hh);
  *out_w = nearest_32 (ww);
  return TRUE;
}

gboolean
ovi_snap_hw_i2v (int h, int w, int64_t target_area, int *out_h, int *out_w,
                 GError **error)
{
  const int multiple = 32;
  double ratio_wh, scale;
  int64_t units, p0;
  int64_t cand_h[8], cand_w[8];
  int best = 0;
  int64_t best_da = 0;
  double best_dr = 0;

  if (!check_hw (h, w, error))
    return FALSE;
  if (target_area <= 0) {
    *out_h = MAX (multiple, h);
    *out_w = MAX (multiple, w);
    return TRUE;
  }
  ratio_wh = (double) w / (double) h;
  units = MAX (1, target_area / (multiple * multiple));
  p0 = (int64_t) py_round (sqrt ((double) units / MAX (ratio_wh, 1e-8)));
  p0 = MAX (1, p0);
  for (int dp = -3; dp <= 3; dp++) {
    int64_t p = MAX (1, p0 + dp);
    int64_t q = MAX (1, (int64_t) py_round ((double) p * ratio_wh));
    cand_h[dp + 3] = p * multiple;
    cand_w[dp + 3] = q * multiple;
  }
  scale = sqrt ((double) target_area / ((double) h * (double) w));
  cand_h[7] = MAX (multiple, (int64_t) py_round ((double) h * scale / multiple)
                                 * multiple);
  cand_w[7] = MAX (multiple, (int64_t) py_round ((double) w * scale / multiple)
                                 * multiple);

  for (int i = 0; i < 8; i++) {
    int64_t da = cand_h[i] * cand_w[i] - target_area;
    double dr
        = fabs ((double) cand_w[i] / MAX ((double) cand_h[i], 1e-8) - ratio_wh);
    da = da < 0 ? -da : da;
    if (i == 0 || da < best_da || (da == best_da && dr < best_dr)) {
      best = i;
      best_da = da;
      best_dr = dr;
    }
  }
  if (cand_h[best] > G_MAXINT || cand_w[best] > G_MAXINT) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "target area %" G_GINT64_FORMAT
                 " for a %dx%d image is too large",
                 target_area, h, w);
    return FALSE;
  }
  *out_h = (int) cand_h[best];
  *out_w = (int) cand_w[best];
  return TRUE;
}

int64_t
ovi_video_tokens (int latent_frames, int height, int width)
{
  return (int64_t) latent_frames * (height / 32) * (width / 32);
}
