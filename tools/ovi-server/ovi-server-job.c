/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ovi-server: jobs and their parameters (see ovi-server-job.h). */
#include "ovi-server-job.h"

#include <string.h>

#include "ovi-engine.h"
#include "ovi-lora.h"

#define MAX_TEXT_BYTES 8192

G_DEFINE_QUARK (ovi - server - error - quark, ovi_server_error)

typedef struct {
  const gchar *field;   /* JSON name */
  const gchar *factory; /* element (also its name in the job's pipeline) */
  const gchar *property;
  /* optional: checks a value beyond its type, returns the value to keep */
  JsonNode *(*normalize) (JsonNode *node, GError **error);
  /* optional: the property value for a kept value */
  gchar *(*to_property) (const gchar *value);
} OviJobField;

static JsonNode *normalize_sigmas (JsonNode *node, GError **error);
static JsonNode *normalize_lora (JsonNode *node, GError **error);
static gchar *lora_to_property (const gchar *value);

static const OviJobField job_fields[] = {
  { "prompt", "ovitextsrc", "prompt" },
  { "video_negative_prompt", "ovitextsrc", "video-negative-prompt" },
  { "audio_negative_prompt", "ovitextsrc", "audio-negative-prompt" },
  { "seed", "ovidenoise", "seed" },
  { "steps", "ovidenoise", "steps" },
  { "solver", "ovidenoise", "solver" },
  { "shift", "ovidenoise", "shift" },
  { "video_guidance_scale", "ovidenoise", "video-guidance-scale" },
  { "audio_guidance_scale", "ovidenoise", "audio-guidance-scale" },
  { "slg_layer", "ovidenoise", "slg-layer" },
  { "width", "ovidenoise", "width" },
  { "height", "ovidenoise", "height" },
  { "sigmas", "ovidenoise", "sigmas", normalize_sigmas },
  { "lora", "ovidenoise", "lora", normalize_lora, lora_to_property },
};

/* --lora-dir: LoRAs are named by file name within it; NULL: no LoRAs */
static gchar *lora_dir;
static GParamSpec *field_pspecs[G_N_ELEMENTS (job_fields)];
static const gchar *field_names[G_N_ELEMENTS (job_fields) + 2];

static const gchar *const state_names[] = {
  "queued", "running", "done", "failed", "cancelled",
};

const gchar *
ovi_job_state_to_string (OviJobState state)
{
  return state_names[state];
}

gboolean
ovi_job_state_from_string (const gchar *s, OviJobState *state)
{
  guint i;

  for (i = 0; i < G_N_ELEMENTS (state_names); i++) {
    if (g_strcmp0 (s, state_names[i]) == 0) {
      *state = (OviJobState) i;
      return TRUE;
    }
  }
  return FALSE;
}

gboolean
ovi_job_state_is_final (OviJobState state)
{
  return state == OVI_JOB_DONE || state == OVI_JOB_FAILED
         || state == OVI_JOB_CANCELLED;
}

static GParamSpec *
find_pspec (const OviJobField *f, GError **error)
{
  g_autoptr (GstElementFactory) factory = gst_element_factory_find (f->factory);
  GstPluginFeature *loaded;
  GObjectClass *klass;
  GParamSpec *pspec;

  if (!factory) {
    g_set_error (error, OVI_SERVER_ERROR, OVI_SERVER_ERROR_FAILED,
                 "GStreamer element '%s' not found: is the ovi plugin on "
                 "GST_PLUGIN_PATH? (gst-inspect-1.0 %s)",
                 f->factory, f->factory);
    return NULL;
  }
  loaded = gst_plugin_feature_load (GST_PLUGIN_FEATURE (factory));
  if (!loaded) {
    g_set_error (error, OVI_SERVER_ERROR, OVI_SERVER_ERROR_FAILED,
                 "could not load the plugin of element '%s'", f->factory);
    return NULL;
  }
  /* the class stays referenced: the pspecs live as long as the process */
  klass = g_type_class_ref (
      gst_element_factory_get_element_type (GST_ELEMENT_FACTORY (loaded)));
  gst_object_unref (loaded);
  pspec = g_object_class_find_property (klass, f->property);
  if (!pspec)
    g_set_error (error, OVI_SERVER_ERROR, OVI_SERVER_ERROR_FAILED,
                 "element '%s' has no property '%s'", f->factory, f->property);
  return pspec;
}

gboolean
ovi_job_fields_init (const gchar *lora_folder, GError **error)
{
  guint i;

  g_free (lora_dir);
  lora_dir = lora_folder ? g_canonicalize_filename (lora_folder, NULL) : NULL;
  if (lora_dir && !g_file_test (lora_dir, G_FILE_TEST_IS_DIR)) {
    g_set_error (error, OVI_SERVER_ERROR, OVI_SERVER_ERROR_FAILED,
                 "--lora-dir %s is not a folder", lora_dir);
    return FALSE;
  }

  for (i = 0; i < G_N_ELEMENTS (job_fields); i++) {
    field_pspecs[i] = find_pspec (&job_fields[i], error);
    if (!field_pspecs[i])
      return FALSE;
    field_names[i] = job_fields[i].field;
  }
  field_names[i] = "image";
  return TRUE;
}

const gchar *const *
ovi_job_field_names (void)
{
  return field_names;
}

static gint
find_field (const gchar *name)
{
  guint i;

  for (i = 0; i < G_N_ELEMENTS (job_fields); i++)
    if (strcmp (job_fields[i].field, name) == 0)
      return (gint) i;
  return -1;
}

/* ---- JSON value -> GValue of the property's type ---- */

static gboolean invalid (GError **error, const gchar *field,
                         const gchar *format, ...) G_GNUC_PRINTF (3, 4);

static gboolean
invalid (GError **error, const gchar *field, const gchar *format, ...)
{
  va_list args;
  g_autofree gchar *text = NULL;

  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, OVI_SERVER_ERROR, OVI_SERVER_ERROR_INVALID, "%s: %s",
               field, text);
  return FALSE;
}

static gchar *
range_text (GParamSpec *p)
{
  GType t = G_PARAM_SPEC_VALUE_TYPE (p);

  if (t == G_TYPE_INT)
    return g_strdup_printf ("an integer in %d..%d",
                            G_PARAM_SPEC_INT (p)->minimum,
                            G_PARAM_SPEC_INT (p)->maximum);
  if (t == G_TYPE_UINT64)
    return g_strdup_printf ("an integer in %" G_GUINT64_FORMAT
                            "..%" G_GINT64_FORMAT,
                            G_PARAM_SPEC_UINT64 (p)->minimum, G_MAXINT64);
  if (t == G_TYPE_DOUBLE)
    return g_strdup_printf ("a number in %g..%g",
                            G_PARAM_SPEC_DOUBLE (p)->minimum,
                            G_PARAM_SPEC_DOUBLE (p)->maximum);
  return g_strdup ("a value of the right type");
}

static gboolean
enum_from_json (GParamSpec *p, JsonNode *node, GValue *value,
                const gchar *field, GError **error)
{
  GEnumClass *klass = G_PARAM_SPEC_ENUM (p)->enum_class;
  const gchar *nick
      = JSON_NODE_HOLDS_VALUE (node)
                && json_node_get_value_type (node) == G_TYPE_STRING
            ? json_node_get_string (node)
            : NULL;
  GEnumValue *ev = nick ? g_enum_get_value_by_nick (klass, nick) : NULL;
  g_autoptr (GString) names = g_string_new (NULL);
  guint i;

  if (ev) {
    g_value_set_enum (value, ev->value);
    return TRUE;
  }
  for (i = 0; i < klass->n_values; i++)
    g_string_append_printf (names, "%s'%s'", i ? ", " : "",
                            klass->values[i].value_nick);
  return invalid (error, field, "must be one of %s", names->str);
}

static gboolean
string_from_json (JsonNode *node, GValue *value, const gchar *field,
                  GError **error)
{
  const gchar *s;

  if (!JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_STRING)
    return invalid (error, field, "must be a string");
  s = json_node_get_string (node);
  if (strlen (s) > MAX_TEXT_BYTES)
    return invalid (error, field, "longer than %d bytes", MAX_TEXT_BYTES);
  g_value_set_string (value, s);
  return TRUE;
}

static gboolean
number_from_json (GParamSpec *p, JsonNode *node, GValue *value,
                  const gchar *field, GError **error)
{
  GType t = G_PARAM_SPEC_VALUE_TYPE (p);
  GType jt = JSON_NODE_HOLDS_VALUE (node) ? json_node_get_value_type (node)
                                          : G_TYPE_INVALID;
  g_autofree gchar *range = range_text (p);

  if (jt != G_TYPE_INT64 && !(t == G_TYPE_DOUBLE && jt == G_TYPE_DOUBLE))
    return invalid (error, field, "must be %s", range);
  if (t == G_TYPE_DOUBLE) {
    g_value_set_double (value, json_node_get_double (node));
  } else if (t == G_TYPE_INT) {
    gint64 v = json_node_get_int (node);
    if (v < G_MININT || v > G_MAXINT)
      return invalid (error, field, "must be %s", range);
    g_value_set_int (value, (gint) v);
  } else if (t == G_TYPE_UINT64) {
    gint64 v = json_node_get_int (node);
    if (v < 0)
      return invalid (error, field, "must be %s", range);
    g_value_set_uint64 (value, (guint64) v);
  } else {
    return invalid (error, field, "has an unsupported type");
  }
  /* validate returns TRUE when it had to clamp the value into range */
  if (g_param_value_validate (p, value))
    return invalid (error, field, "must be %s", range);
  return TRUE;
}

static gboolean
value_from_json (GParamSpec *p, JsonNode *node, GValue *value,
                 const gchar *field, GError **error)
{
  g_value_init (value, G_PARAM_SPEC_VALUE_TYPE (p));
  if (G_IS_PARAM_SPEC_ENUM (p))
    return enum_from_json (p, node, value, field, error);
  if (G_IS_PARAM_SPEC_STRING (p))
    return string_from_json (node, value, field, error);
  return number_from_json (p, node, value, field, error);
}

/* ---- sigmas and LoRAs ---- */

/* "1, 0.9375, 0" or [1, 0.9375, 0] -> "1,0.9375,0", checked as the
 * denoiser checks them */
static JsonNode *
normalize_sigmas (JsonNode *node, GError **error)
{
  g_autoptr (GString) text = g_string_new (NULL);
  g_autoptr (GError) err = NULL;
  g_autofree double *values = NULL;
  int n = 0;

  if (JSON_NODE_HOLDS_ARRAY (node)) {
    JsonArray *a = json_node_get_array (node);
    guint i;
    for (i = 0; i < json_array_get_length (a); i++) {
      JsonNode *e = json_array_get_element (a, i);
      gchar num[G_ASCII_DTOSTR_BUF_SIZE];
      if (!JSON_NODE_HOLDS_VALUE (e)
          || (json_node_get_value_type (e) != G_TYPE_DOUBLE
              && json_node_get_value_type (e) != G_TYPE_INT64)) {
        invalid (error, "sigmas", "must be numbers");
        return NULL;
      }
      g_string_append_printf (
          text, "%s%s", i ? "," : "",
          g_ascii_dtostr (num, sizeof num, json_node_get_double (e)));
    }
  } else if (JSON_NODE_HOLDS_VALUE (node)
             && json_node_get_value_type (node) == G_TYPE_STRING) {
    g_string_assign (text, json_node_get_string (node));
  } else {
    invalid (error, "sigmas", "must be a list of numbers");
    return NULL;
  }
  if (!ovi_sigmas_parse (text->str, &values, &n, &err)) {
    invalid (error, "sigmas", "%s", err->message);
    return NULL;
  }
  return json_node_init_string (json_node_alloc (), text->str);
}

/* a LoRA is a file name in --lora-dir, never a path of the client's */
static gboolean
check_lora_name (const gchar *name, GError **error)
{
  g_autofree gchar *path = NULL;

  if (!lora_dir)
    return invalid (error, "lora",
                    "this server takes no LoRAs (start it with --lora-dir)");
  if (!*name || name[0] == '.' || strchr (name, '/') || strchr (name, '\\'))
    return invalid (error, "lora",
                    "'%s' is not a file name in the server's LoRA folder",
                    name);
  path = g_build_filename (lora_dir, name, NULL);
  if (!g_file_test (path, G_FILE_TEST_IS_REGULAR))
    return invalid (error, "lora", "no LoRA '%s' in the server's LoRA folder",
                    name);
  return TRUE;
}

static JsonNode *
normalize_lora (JsonNode *node, GError **error)
{
  g_autoptr (GPtrArray) specs = NULL;
  g_autoptr (GError) err = NULL;
  guint i;

  if (!JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_STRING) {
    invalid (error, "lora", "must be a string");
    return NULL;
  }
  specs = ovi_lora_specs_parse (json_node_get_string (node), &err);
  if (!specs) {
    invalid (error, "lora", "%s", err->message);
    return NULL;
  }
  for (i = 0; i < specs->len; i++)
    if (!check_lora_name (((OviLoraSpec *) specs->pdata[i])->path, error))
      return NULL;
  return json_node_copy (node);
}

/* the names in --lora-dir, as the element's full paths */
static gchar *
lora_to_property (const gchar *value)
{
  g_autoptr (GPtrArray) specs = ovi_lora_specs_parse (value, NULL);
  GString *out = g_string_new (NULL);
  guint i;

  for (i = 0; specs && i < specs->len; i++) {
    OviLoraSpec *spec = specs->pdata[i];
    g_autofree gchar *path = g_build_filename (lora_dir, spec->path, NULL);
    gchar strength[G_ASCII_DTOSTR_BUF_SIZE];
    g_string_append_printf (
        out, "%s%s:%s:%s", i ? ";" : "", path,
        g_ascii_dtostr (strength, sizeof strength, spec->strength),
        ovi_lora_target_to_string (spec->target));
  }
  return g_string_free (out, FALSE);
}

/* ---- the image ---- */

static gboolean
image_is_known (GBytes *bytes)
{
  static const guint8 png[] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
  static const guint8 jpeg[] = { 0xff, 0xd8, 0xff };
  gsize n;
  const guint8 *d = g_bytes_get_data (bytes, &n);

  return (n >= sizeof png && memcmp (d, png, sizeof png) == 0)
         || (n >= sizeof jpeg && memcmp (d, jpeg, sizeof jpeg) == 0);
}

static GBytes *
image_from_base64 (JsonNode *node, GError **error)
{
  const gchar *s, *p;
  guchar *data;
  gsize len;

  if (!JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_STRING) {
    invalid (error, "image", "must be a base64 string");
    return NULL;
  }
  s = json_node_get_string (node);
  if (g_str_has_prefix (s, "data:")) {
    const gchar *comma = strchr (s, ',');
    if (!comma || !g_strrstr_len (s, comma - s, ";base64")) {
      invalid (error, "image", "a data: URL must be base64 (data:...;base64,)");
      return NULL;
    }
    s = comma + 1;
  }
  for (p = s; *p; p++) {
    if (!g_ascii_isalnum (*p) && !strchr ("+/=\r\n ", *p)) {
      invalid (error, "image", "is not valid base64");
      return NULL;
    }
  }
  data = g_base64_decode (s, &len);
  return g_bytes_new_take (data, len);
}

static gboolean
check_image (GBytes *image, GError **error)
{
  if (!image_is_known (image))
    return invalid (error, "image", "is not a PNG or JPEG image");
  return TRUE;
}

/* ---- parsing ---- */

static gboolean
check_member (JsonObject *out, const gchar *name, JsonNode *node,
              GError **error)
{
  gint i = find_field (name);
  GValue v = G_VALUE_INIT;
  g_autoptr (JsonNode) kept = NULL;
  gboolean ok;

  if (i < 0)
    return invalid (error, name, "unknown field");
  kept = job_fields[i].normalize ? job_fields[i].normalize (node, error)
                                 : json_node_copy (node);
  if (!kept)
    return FALSE;
  ok = value_from_json (field_pspecs[i], kept, &v, name, error);
  g_value_unset (&v);
  if (ok)
    json_object_set_member (out, name, g_steal_pointer (&kept));
  return ok;
}

static gboolean
check_prompt (JsonObject *params, GError **error)
{
  const gchar *prompt
      = json_object_get_string_member_with_default (params, "prompt", NULL);
  g_autofree gchar *stripped = g_strstrip (g_strdup (prompt ? prompt : ""));

  if (!*stripped)
    return invalid (error, "prompt", "required, a non-empty string");
  return TRUE;
}

static gchar *
field_of (const GError *error)
{
  const gchar *colon = strchr (error->message, ':');
  return colon ? g_strndup (error->message, colon - error->message) : NULL;
}

JsonObject *
ovi_job_params_parse (JsonNode *root, GBytes **image, gchar **field,
                      GError **error)
{
  g_autoptr (JsonObject) params = json_object_new ();
  g_autoptr (GBytes) img = NULL;
  JsonObjectIter iter;
  const gchar *name;
  JsonNode *node;

  *field = NULL;
  if (!root || !JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, OVI_SERVER_ERROR, OVI_SERVER_ERROR_INVALID,
                 "the body must be a JSON object");
    return NULL;
  }
  json_object_iter_init (&iter, json_node_get_object (root));
  while (json_object_iter_next (&iter, &name, &node)) {
    gboolean ok;
    if (strcmp (name, "image") == 0)
      ok = (img = image_from_base64 (node, error)) && check_image (img, error);
    else
      ok = check_member (params, name, node, error);
    if (!ok) {
      *field = field_of (*error);
      return NULL;
    }
  }
  if (!check_prompt (params, error)) {
    *field = g_strdup ("prompt");
    return NULL;
  }
  *image = g_steal_pointer (&img);
  return g_steal_pointer (&params);
}

JsonObject *
ovi_job_params_parse_form (GHashTable *texts, GBytes *image_part,
                           GBytes **image, gchar **field, GError **error)
{
  g_autoptr (JsonObject) obj = json_object_new ();
  g_autoptr (JsonNode) root = json_node_new (JSON_NODE_OBJECT);
  GHashTableIter iter;
  gpointer key, value;
  JsonObject *params;

  *field = NULL;
  g_hash_table_iter_init (&iter, texts);
  while (g_hash_table_iter_next (&iter, &key, &value)) {
    gint i = find_field (key);
    JsonNode *node = NULL;
    if (i >= 0 && !G_IS_PARAM_SPEC_STRING (field_pspecs[i])
        && !G_IS_PARAM_SPEC_ENUM (field_pspecs[i]))
      node = json_from_string (value, NULL);
    if (!node || !JSON_NODE_HOLDS_VALUE (node)) {
      g_clear_pointer (&node, json_node_unref);
      node = json_node_init_string (json_node_alloc (), value);
    }
    json_object_set_member (obj, key, node);
  }
  json_node_set_object (root, obj);
  params = ovi_job_params_parse (root, image, field, error);
  if (params && image_part) {
    if (*image) {
      g_set_error (error, OVI_SERVER_ERROR, OVI_SERVER_ERROR_INVALID,
                   "image: given twice");
      *field = g_strdup ("image");
      g_clear_pointer (image, g_bytes_unref);
      json_object_unref (params);
      return NULL;
    }
    if (!check_image (image_part, error)) {
      *field = g_strdup ("image");
      json_object_unref (params);
      return NULL;
    }
    *image = g_bytes_ref (image_part);
  }
  return params;
}

gboolean
ovi_job_params_apply (JsonObject *params, GstBin *bin, GError **error)
{
  JsonObjectIter iter;
  const gchar *name;
  JsonNode *node;

  json_object_iter_init (&iter, params);
  while (json_object_iter_next (&iter, &name, &node)) {
    gint i = find_field (name);
    g_autoptr (GstElement) element = NULL;
    GValue v = G_VALUE_INIT;

    if (i < 0 || !(element = gst_bin_get_by_name (bin, job_fields[i].factory))
        || !value_from_json (field_pspecs[i], node, &v, name, error)) {
      g_value_unset (&v);
      if (error && !*error)
        g_set_error (error, OVI_SERVER_ERROR, OVI_SERVER_ERROR_FAILED,
                     "cannot apply the job field '%s'", name);
      return FALSE;
    }
    if (job_fields[i].to_property)
      g_value_take_string (&v,
                           job_fields[i].to_property (g_value_get_string (&v)));
    g_object_set_property (G_OBJECT (element), job_fields[i].property, &v);
    g_value_unset (&v);
  }
  return TRUE;
}

/* ---- the job ---- */

OviJob *
ovi_job_new (JsonObject *params, gboolean has_image)
{
  OviJob *job = g_new0 (OviJob, 1);
  g_autofree gchar *uuid = g_uuid_string_random ();
  GString *id = g_string_new (NULL);
  const gchar *p;

  for (p = uuid; *p; p++)
    if (*p != '-')
      g_string_append_c (id, *p);
  job->id = g_string_free (id, FALSE);
  job->state = OVI_JOB_QUEUED;
  job->params = json_object_ref (params);
  job->has_image = has_image;
  job->eta = -1;
  job->cancel_step = -1;
  job->created = g_get_real_time ();
  return job;
}

void
ovi_job_free (OviJob *job)
{
  if (!job)
    return;
  g_free (job->id);
  g_clear_pointer (&job->params, json_object_unref);
  g_free (job->error);
  g_free (job);
}

gboolean
ovi_job_id_is_valid (const gchar *id)
{
  const gchar *p;

  if (!id || strlen (id) != 32)
    return FALSE;
  for (p = id; *p; p++)
    if (!g_ascii_isdigit (*p) && !(*p >= 'a' && *p <= 'f'))
      return FALSE;
  return TRUE;
}

static void
add_time (JsonBuilder *b, const gchar *name, gint64 us)
{
  json_builder_set_member_name (b, name);
  if (us) {
    g_autoptr (GDateTime) t
        = g_date_time_new_from_unix_utc (us / G_USEC_PER_SEC);
    g_autofree gchar *s = g_date_time_format_iso8601 (t);
    json_builder_add_string_value (b, s);
  } else {
    json_builder_add_null_value (b);
  }
}

JsonNode *
ovi_job_to_json (const OviJob *job)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  JsonNode *params = json_node_new (JSON_NODE_OBJECT);

  json_node_set_object (params, job->params);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "id");
  json_builder_add_string_value (b, job->id);
  json_builder_set_member_name (b, "state");
  json_builder_add_string_value (b, ovi_job_state_to_string (job->state));
  json_builder_set_member_name (b, "progress");
  json_builder_add_double_value (b, job->progress);
  json_builder_set_member_name (b, "step");
  json_builder_add_int_value (b, job->step);
  json_builder_set_member_name (b, "steps");
  json_builder_add_int_value (b, job->steps);
  json_builder_set_member_name (b, "eta");
  if (job->eta >= 0)
    json_builder_add_double_value (b, job->eta);
  else
    json_builder_add_null_value (b);
  json_builder_set_member_name (b, "error");
  if (job->error)
    json_builder_add_string_value (b, job->error);
  else
    json_builder_add_null_value (b);
  if (job->cancel_step >= 0) {
    json_builder_set_member_name (b, "cancel_step");
    json_builder_add_int_value (b, job->cancel_step);
  }
  json_builder_set_member_name (b, "has_image");
  json_builder_add_boolean_value (b, job->has_image);
  json_builder_set_member_name (b, "attempts");
  json_builder_add_int_value (b, job->attempts);
  add_time (b, "created", job->created);
  add_time (b, "started", job->started);
  add_time (b, "finished", job->finished);
  json_builder_set_member_name (b, "result");
  if (job->state == OVI_JOB_DONE) {
    g_autofree gchar *url = g_strdup_printf ("/v1/jobs/%s/result", job->id);
    json_builder_add_string_value (b, url);
  } else {
    json_builder_add_null_value (b);
  }
  json_builder_set_member_name (b, "params");
  json_builder_add_value (b, params);
  json_builder_end_object (b);
  return json_builder_get_root (b);
}
