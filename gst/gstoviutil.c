/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: pure helpers of the ovi elements (see gstoviutil.h). */
#include "gstoviutil.h"

#include <json-glib/json-glib.h>
#include <string.h>

guint
gst_ovi_video_frames_for_latent (guint latent_frames)
{
  return latent_frames == 0 ? 0 : 1 + 4 * (latent_frames - 1);
}

GstClockTime
gst_ovi_frame_time (guint64 frame)
{
  return gst_util_uint64_scale (frame, GST_SECOND * GST_OVI_FPS_D,
                                GST_OVI_FPS_N);
}

GstOviPromptEntry *
gst_ovi_prompt_entry_new (const gchar *prompt)
{
  GstOviPromptEntry *e = g_new0 (GstOviPromptEntry, 1);
  e->prompt = g_strdup (prompt);
  return e;
}

GstOviPromptEntry *
gst_ovi_prompt_entry_copy (const GstOviPromptEntry *e)
{
  GstOviPromptEntry *c = gst_ovi_prompt_entry_new (e->prompt);
  c->video_negative_prompt = g_strdup (e->video_negative_prompt);
  c->audio_negative_prompt = g_strdup (e->audio_negative_prompt);
  c->overrides = e->overrides ? gst_structure_copy (e->overrides) : NULL;
  return c;
}

void
gst_ovi_prompt_entry_free (GstOviPromptEntry *e)
{
  if (!e)
    return;
  g_free (e->prompt);
  g_free (e->video_negative_prompt);
  g_free (e->audio_negative_prompt);
  if (e->overrides)
    gst_structure_free (e->overrides);
  g_free (e);
}

typedef enum { KEY_INT, KEY_UINT64, KEY_DOUBLE, KEY_CHOICE } KeyKind;

static const char *const solvers[] = { "unipc", "euler", NULL };
static const char *const caches[] = { "off", "easy", "mag", NULL };
static const char *const continuations[] = { "none", "last-frame", NULL };

static const struct {
  const char *name;
  KeyKind kind;
  double min, max;
  const char *const *choices;
} override_keys[] = {
  { "seed", KEY_UINT64, 0, 18446744073709551615.0 },
  { "steps", KEY_INT, 1, 1000 },
  { "shift", KEY_DOUBLE, 0.0, 100.0 },
  { "video-guidance-scale", KEY_DOUBLE, 0.0, 100.0 },
  { "audio-guidance-scale", KEY_DOUBLE, 0.0, 100.0 },
  { "slg-layer", KEY_INT, -1, 1000 },
  { "solver", KEY_CHOICE, 0, 0, solvers },
  { "width", KEY_INT, 32, 8192 },
  { "height", KEY_INT, 32, 8192 },
  /* step caching (docs/step-cache.md) */
  { "cache", KEY_CHOICE, 0, 0, caches },
  { "cache-threshold", KEY_DOUBLE, 0.0, 1e6 },
  { "cache-start", KEY_INT, -1, 1000 },
  /* ovidenoise's continuation for this clip (a scene cut: "none") */
  { "continuation", KEY_CHOICE, 0, 0, continuations },
};

/* "lora": a string (the element's list syntax); "sigmas": an array of
 * numbers (or the same as a comma-separated string) */
static gchar *
clip_list (JsonNode *node, const gchar *key, const gchar *name, guint lineno,
           GError **error)
{
  GString *out;
  JsonArray *a;

  if (JSON_NODE_HOLDS_VALUE (node)
      && json_node_get_value_type (node) == G_TYPE_STRING)
    return g_strdup (json_node_get_string (node));
  if (strcmp (key, "sigmas") != 0 || !JSON_NODE_HOLDS_ARRAY (node)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                 "%s:%u: \"%s\" must be a %s", name, lineno, key,
                 strcmp (key, "sigmas")
                     ? "string (path[:strength[:target]];...)"
                     : "list of numbers");
    return NULL;
  }
  a = json_node_get_array (node);
  out = g_string_new (NULL);
  for (guint k = 0; k < json_array_get_length (a); k++) {
    JsonNode *n = json_array_get_element (a, k);
    gchar buf[G_ASCII_DTOSTR_BUF_SIZE];
    GType t = JSON_NODE_HOLDS_VALUE (n) ? json_node_get_value_type (n)
                                        : G_TYPE_INVALID;

    if (t != G_TYPE_INT64 && t != G_TYPE_DOUBLE) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s:%u: \"sigmas\" must be a list of numbers", name, lineno);
      g_string_free (out, TRUE);
      return NULL;
    }
    g_ascii_dtostr (buf, sizeof buf,
                    t == G_TYPE_INT64 ? (gdouble) json_node_get_int (n)
                                      : json_node_get_double (n));
    g_string_append_printf (out, "%s%s", k ? "," : "", buf);
  }
  return g_string_free (out, FALSE);
}

/* "a", "b" or "c" */
static gchar *
quoted_choices (const char *const *choices)
{
  GString *out = g_string_new (NULL);
  guint n = g_strv_length ((gchar **) choices);

  for (guint k = 0; k < n; k++)
    g_string_append_printf (out, "%s\"%s\"",
                            k == 0 ? "" : (k + 1 == n ? " or " : ", "),
                            choices[k]);
  return g_string_free (out, FALSE);
}

static gboolean
parse_json_line (const gchar *line, const gchar *name, guint lineno,
                 GstOviPromptEntry **out, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) err = NULL;
  g_autoptr (GstOviPromptEntry) e = NULL;
  g_autoptr (GList) members = NULL;
  JsonObject *obj;
  GList *l;

  if (!json_parser_load_from_data (parser, line, -1, &err)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                 "%s:%u: not valid JSON: %s", name, lineno, err->message);
    return FALSE;
  }
  if (!JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser))) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                 "%s:%u: a JSON line must be an object with a \"prompt\"", name,
                 lineno);
    return FALSE;
  }
  obj = json_node_get_object (json_parser_get_root (parser));
  e = g_new0 (GstOviPromptEntry, 1);
  members = json_object_get_members (obj);
  for (l = members; l; l = l->next) {
    g_autofree gchar *key = g_strdelimit (g_strdup (l->data), "_", '-');
    JsonNode *node = json_object_get_member (obj, l->data);
    GType vt = JSON_NODE_HOLDS_VALUE (node) ? json_node_get_value_type (node)
                                            : G_TYPE_INVALID;
    guint i;

    if (!strcmp (key, "prompt") || !strcmp (key, "text-prompt")
        || !strcmp (key, "video-negative-prompt")
        || !strcmp (key, "audio-negative-prompt")) {
      gchar **slot = key[0] == 'v'   ? &e->video_negative_prompt
                     : key[0] == 'a' ? &e->audio_negative_prompt
                                     : &e->prompt;
      if (vt != G_TYPE_STRING) {
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                     "%s:%u: \"%s\" must be a string", name, lineno,
                     (const char *) l->data);
        return FALSE;
      }
      g_free (*slot);
      *slot = g_strdup (json_node_get_string (node));
      continue;
    }
    if (!strcmp (key, "lora") || !strcmp (key, "sigmas")) {
      g_autofree gchar *v = clip_list (node, key, name, lineno, error);
      if (v == NULL)
        return FALSE;
      if (!e->overrides)
        e->overrides = gst_structure_new_empty ("ovi-clip");
      gst_structure_set (e->overrides, key, G_TYPE_STRING, v, NULL);
      continue;
    }
    for (i = 0; i < G_N_ELEMENTS (override_keys); i++)
      if (!strcmp (key, override_keys[i].name))
        break;
    if (i == G_N_ELEMENTS (override_keys)) {
      g_set_error (
          error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
          "%s:%u: unknown key \"%s\" (known: prompt, video_negative_prompt, "
          "audio_negative_prompt, seed, steps, shift, video_guidance_scale, "
          "audio_guidance_scale, slg_layer, solver, width, height, lora, "
          "sigmas, cache, cache_threshold, cache_start, continuation)",
          name, lineno, (const char *) l->data);
      return FALSE;
    }
    if (!e->overrides)
      e->overrides = gst_structure_new_empty ("ovi-clip");
    if (override_keys[i].kind == KEY_CHOICE) {
      const char *s = vt == G_TYPE_STRING ? json_node_get_string (node) : "";
      if (!g_strv_contains (override_keys[i].choices, s)) {
        g_autofree gchar *names = quoted_choices (override_keys[i].choices);
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                     "%s:%u: \"%s\" must be %s, not \"%s\"", name, lineno,
                     (const char *) l->data, names, s);
        return FALSE;
      }
      gst_structure_set (e->overrides, key, G_TYPE_STRING, s, NULL);
    } else {
      double v;
      if (vt != G_TYPE_INT64 && vt != G_TYPE_DOUBLE) {
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                     "%s:%u: \"%s\" must be a number", name, lineno,
                     (const char *) l->data);
        return FALSE;
      }
      v = vt == G_TYPE_INT64 ? (double) json_node_get_int (node)
                             : json_node_get_double (node);
      if (v < override_keys[i].min || v > override_keys[i].max
          || (override_keys[i].kind != KEY_DOUBLE && (vt != G_TYPE_INT64))) {
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                     "%s:%u: \"%s\" must be %s in [%g, %g], not %g", name,
                     lineno, (const char *) l->data,
                     override_keys[i].kind == KEY_DOUBLE ? "a number"
                                                         : "an integer",
                     override_keys[i].min, override_keys[i].max, v);
        return FALSE;
      }
      if (override_keys[i].kind == KEY_UINT64)
        gst_structure_set (e->overrides, key, G_TYPE_UINT64,
                           (guint64) json_node_get_int (node), NULL);
      else if (override_keys[i].kind == KEY_INT)
        gst_structure_set (e->overrides, key, G_TYPE_INT,
                           (gint) json_node_get_int (node), NULL);
      else
        gst_structure_set (e->overrides, key, G_TYPE_DOUBLE, v, NULL);
    }
  }
  if (!e->prompt || !*e->prompt) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                 "%s:%u: the JSON object has no \"prompt\"", name, lineno);
    return FALSE;
  }
  *out = g_steal_pointer (&e);
  return TRUE;
}

GPtrArray *
gst_ovi_parse_prompts (const gchar *text, const gchar *name, GError **error)
{
  g_autoptr (GPtrArray) entries = g_ptr_array_new_with_free_func (
      (GDestroyNotify) gst_ovi_prompt_entry_free);
  g_auto (GStrv) lines = NULL;
  guint i;

  if (!g_utf8_validate (text, -1, NULL)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                 "%s: not UTF-8 text", name);
    return NULL;
  }
  lines = g_strsplit (text, "\n", -1);
  for (i = 0; lines[i]; i++) {
    gchar *line = g_strstrip (lines[i]);
    GstOviPromptEntry *e = NULL;

    if (!*line || line[0] == '#')
      continue;
    if (line[0] == '{') {
      if (!parse_json_line (line, name, i + 1, &e, error))
        return NULL;
    } else {
      e = gst_ovi_prompt_entry_new (line);
    }
    g_ptr_array_add (entries, e);
  }
  if (entries->len == 0) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                 "%s: no prompts in the file (one prompt per line, or one JSON "
                 "object per line)",
                 name);
    return NULL;
  }
  return g_steal_pointer (&entries);
}

GPtrArray *
gst_ovi_load_prompt_file (const gchar *location, GError **error)
{
  g_autofree gchar *text = NULL;

  if (!g_file_get_contents (location, &text, NULL, error))
    return NULL;
  return gst_ovi_parse_prompts (text, location, error);
}
