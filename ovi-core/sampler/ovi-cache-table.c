/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: MagCache magnitude-ratio tables as JSON (see ovi-step-cache.h).
 *
 * {
 *   "comment": "how it was made",
 *   "model": "tiny", "steps": 20, "solver": "unipc", "shift": 5.0,
 *   "ratios": {
 *     "positive": { "video": [1.0, ...steps], "audio": [...] },
 *     "negative": { "video": [...], "audio": [...] }
 *   }
 * }
 */
#include "ovi-error.h"
#include "ovi-presets.h"
#include "ovi-step-cache.h"

#include <json-glib/json-glib.h>
#include <math.h>

static const char *const branch_names[OVI_CACHE_N_BRANCHES]
    = { "positive", "negative" };
static const char *const tower_names[OVI_N_TOWERS] = { "video", "audio" };

OviCacheTable *
ovi_cache_table_new (const char *model, int steps, const char *solver,
                     double shift, int n_branches)
{
  OviCacheTable *t = g_new0 (OviCacheTable, 1);

  t->model = g_strdup (model);
  t->steps = steps;
  t->solver = g_strdup (solver);
  t->shift = shift;
  t->n_branches = CLAMP (n_branches, 1, OVI_CACHE_N_BRANCHES);
  for (int b = 0; b < t->n_branches; b++)
    for (int w = 0; w < OVI_N_TOWERS; w++) {
      t->ratio[b][w] = g_new (double, MAX (steps, 1));
      for (int i = 0; i < steps; i++)
        t->ratio[b][w][i] = 1.0;
    }
  return t;
}

void
ovi_cache_table_free (OviCacheTable *t)
{
  if (t == NULL)
    return;
  for (int b = 0; b < OVI_CACHE_N_BRANCHES; b++)
    for (int w = 0; w < OVI_N_TOWERS; w++)
      g_free (t->ratio[b][w]);
  g_free (t->model);
  g_free (t->solver);
  g_free (t);
}

char *
ovi_cache_table_preset_path (const char *model, int steps)
{
  g_autofree char *name = g_strdup_printf ("%s_%d.json", model, steps);
  return g_build_filename (ovi_presets_dir (), "cache", name, NULL);
}

/* ---- load ---- */

static gboolean
bad (GError **error, const char *path, const char *what)
{
  g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT, "step cache table %s: %s",
               path, what);
  return FALSE;
}

/* the member `name` of `o` if it holds a JSON node of `type` */
static JsonNode *
member (JsonObject *o, const char *name, JsonNodeType type)
{
  JsonNode *n = o ? json_object_get_member (o, name) : NULL;
  return n && JSON_NODE_TYPE (n) == type ? n : NULL;
}

static gboolean
read_ratios (JsonObject *branch, const char *bname, const char *tower,
             double *out, int steps, const char *path, GError **error)
{
  JsonNode *n = member (branch, tower, JSON_NODE_ARRAY);
  JsonArray *a = n ? json_node_get_array (n) : NULL;

  if (a == NULL || (int) json_array_get_length (a) != steps) {
    g_autofree char *msg = g_strdup_printf (
        "%s.%s needs an array of %d ratios (one per step), found %d", bname,
        tower, steps, a ? (int) json_array_get_length (a) : 0);
    return bad (error, path, msg);
  }
  for (int i = 0; i < steps; i++) {
    JsonNode *e = json_array_get_element (a, i);
    double v = JSON_NODE_HOLDS_VALUE (e) ? json_node_get_double (e) : NAN;
    if (!isfinite (v) || v <= 0) {
      g_autofree char *msg = g_strdup_printf (
          "%s.%s[%d] is not a positive number", bname, tower, i);
      return bad (error, path, msg);
    }
    out[i] = v;
  }
  return TRUE;
}

static gboolean
read_branch (JsonObject *ratios, int b, OviCacheTable *t, const char *path,
             GError **error)
{
  JsonNode *n = member (ratios, branch_names[b], JSON_NODE_OBJECT);
  JsonObject *br = n ? json_node_get_object (n) : NULL;

  if (br == NULL) {
    g_autofree char *msg = g_strdup_printf (
        "\"%s\" must be an object with \"video\" and \"audio\" arrays",
        branch_names[b]);
    return bad (error, path, msg);
  }
  for (int w = 0; w < OVI_N_TOWERS; w++)
    if (!read_ratios (br, branch_names[b], tower_names[w], t->ratio[b][w],
                      t->steps, path, error))
      return FALSE;
  return TRUE;
}

static OviCacheTable *
table_from_json (JsonObject *root, const char *path, GError **error)
{
  g_autoptr (OviCacheTable) t = NULL;
  JsonNode *model = member (root, "model", JSON_NODE_VALUE);
  JsonNode *steps = member (root, "steps", JSON_NODE_VALUE);
  JsonNode *ratios = member (root, "ratios", JSON_NODE_OBJECT);
  JsonNode *solver, *shift;
  JsonObject *r;
  int n_branches = 0;

  if (!model || json_node_get_value_type (model) != G_TYPE_STRING || !steps
      || json_node_get_value_type (steps) != G_TYPE_INT64 || !ratios) {
    bad (error, path,
         "needs \"model\" (a string), \"steps\" (an integer) and "
         "\"ratios\" (an object)");
    return NULL;
  }
  if (json_node_get_int (steps) < 1 || json_node_get_int (steps) > 10000) {
    bad (error, path, "\"steps\" must be 1..10000");
    return NULL;
  }
  r = json_node_get_object (ratios);
  while (n_branches < OVI_CACHE_N_BRANCHES
         && json_object_has_member (r, branch_names[n_branches]))
    n_branches++;
  if (n_branches == 0) {
    bad (error, path, "\"ratios\" has no \"positive\" branch");
    return NULL;
  }
  solver = member (root, "solver", JSON_NODE_VALUE);
  shift = member (root, "shift", JSON_NODE_VALUE);
  t = ovi_cache_table_new (
      json_node_get_string (model), (int) json_node_get_int (steps),
      solver ? json_node_get_string (solver) : NULL,
      shift ? json_node_get_double (shift) : 0.0, n_branches);
  for (int b = 0; b < n_branches; b++)
    if (!read_branch (r, b, t, path, error))
      return NULL;
  return g_steal_pointer (&t);
}

OviCacheTable *
ovi_cache_table_load (const char *path, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) err = NULL;
  JsonNode *root;

  if (!json_parser_load_from_file (parser, path, &err)) {
    g_set_error (error, OVI_ERROR,
                 g_error_matches (err, G_FILE_ERROR, G_FILE_ERROR_NOENT)
                     ? OVI_ERROR_IO
                     : OVI_ERROR_FORMAT,
                 "step cache table %s: %s", path, err->message);
    return NULL;
  }
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root)) {
    bad (error, path, "not a JSON object");
    return NULL;
  }
  return table_from_json (json_node_get_object (root), path, error);
}

gboolean
ovi_cache_table_check (const OviCacheTable *t, const char *path,
                       const char *model, int steps, GError **error)
{
  const char *where = path ? path : "(in memory)";

  if (g_strcmp0 (t->model, model) != 0) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "step cache table %s is for model '%s', not '%s'", where,
                 t->model, model);
    return FALSE;
  }
  if (t->steps != steps) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "step cache table %s was measured at %d steps, the run has "
                 "%d (make one with `ovi calibrate-cache --steps %d`)",
                 where, t->steps, steps, steps);
    return FALSE;
  }
  return TRUE;
}

OviCacheTable *
ovi_cache_table_find (const char *path, const char *model, int steps,
                      GError **error)
{
  g_autofree char *preset = NULL;
  g_autoptr (OviCacheTable) t = NULL;

  if (path == NULL) {
    preset = ovi_cache_table_preset_path (model, steps);
    if (!g_file_test (preset, G_FILE_TEST_EXISTS)) {
      g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                   "no MagCache table for model '%s' at %d steps (%s): make "
                   "one with `ovi calibrate-cache --steps %d`, or use cache "
                   "'easy'",
                   model, steps, preset, steps);
      return NULL;
    }
    path = preset;
  }
  t = ovi_cache_table_load (path, error);
  if (t == NULL || !ovi_cache_table_check (t, path, model, steps, error))
    return NULL;
  return g_steal_pointer (&t);
}

/* ---- save ---- */

static void
append_ratios (GString *out, const OviCacheTable *t, int b, int w)
{
  char num[G_ASCII_DTOSTR_BUF_SIZE];

  g_string_append_printf (out, "      \"%s\": [", tower_names[w]);
  for (int i = 0; i < t->steps; i++)
    g_string_append_printf (
        out, "%s%s", i ? (i % 10 ? ", " : ",\n        ") : "",
        g_ascii_formatd (num, sizeof num, "%.5f", t->ratio[b][w][i]));
  g_string_append (out, "]");
}

gboolean
ovi_cache_table_save (const OviCacheTable *t, const char *path,
                      const char *comment, GError **error)
{
  g_autoptr (GString) out = g_string_new ("{\n");
  g_autofree char *c = comment ? g_strescape (comment, NULL) : NULL;
  g_autoptr (GError) err = NULL;
  char num[G_ASCII_DTOSTR_BUF_SIZE];

  if (c)
    g_string_append_printf (out, "  \"comment\": \"%s\",\n", c);
  g_string_append_printf (
      out,
      "  \"model\": \"%s\",\n  \"steps\": %d,\n  \"solver\": \"%s\",\n"
      "  \"shift\": %s,\n  \"ratios\": {\n",
      t->model, t->steps, t->solver ? t->solver : "",
      g_ascii_formatd (num, sizeof num, "%g", t->shift));
  for (int b = 0; b < t->n_branches; b++) {
    g_string_append_printf (out, "    \"%s\": {\n", branch_names[b]);
    for (int w = 0; w < OVI_N_TOWERS; w++) {
      append_ratios (out, t, b, w);
      g_string_append (out, w + 1 < OVI_N_TOWERS ? ",\n" : "\n");
    }
    g_string_append (out, b + 1 < t->n_branches ? "    },\n" : "    }\n");
  }
  g_string_append (out, "  }\n}\n");
  if (!g_file_set_contents (path, out->str, out->len, &err)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO,
                 "could not write step cache table %s: %s", path, err->message);
    return FALSE;
  }
  return TRUE;
}
