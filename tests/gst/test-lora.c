/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ovidenoise's `lora` and `sigmas` (docs/lora.md) with the tiny model on the
 * CPU: a change of `lora` while a clip is being denoised applies to the next
 * clip only; a prompt-file line's "lora" applies to its clip; explicit
 * sigmas run their step count; unmatched keys warn; a missing LoRA file is
 * an element error; the prompt-file keys parse. */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "gstoviutil.h"
#include "ovi-engine.h"
#include "ovi-presets.h"
#include "ovi-test-util.h"

static const OviModelPreset *tiny;
static gchar *tmp_dir;
static gchar *lora_path;    /* matches the tiny model */
static gchar *partial_path; /* plus a key that matches nothing */

static GstBuffer *
make_text_buffer (gint dim, guint32 seed)
{
  GstBuffer *buf = gst_buffer_new ();
  const gint n[3] = { 5, 3, 4 };
  GRand *rand = g_rand_new_with_seed (seed);

  for (gint i = 0; i < 3; i++) {
    gsize size = (gsize) n[i] * dim * sizeof (float);
    float *data = g_malloc (size);
    for (gint j = 0; j < n[i] * dim; j++)
      data[j] = (float) g_rand_double_range (rand, -0.5, 0.5);
    gst_buffer_append_memory (
        buf, gst_memory_new_wrapped (0, data, size, 0, size, data, g_free));
  }
  g_rand_free (rand);
  return buf;
}

/* a rank-2 LoRA on the self-attention q of block 0, native names */
static gchar *
write_lora (const gchar *base, gboolean with_unmatched)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviModelPaths) paths
      = ovi_model_paths_resolve (NULL, NULL, &error);
  gchar *path = g_build_filename (tmp_dir, base, NULL);

  g_assert_no_error (error);
  ovi_test_write_q_lora (paths->fusion_path, 1, 0.05f, with_unmatched, path);
  return path;
}

/* the prompt-file overrides of a clip, as ovitextsrc attaches them (the
 * custom meta the plugin registers) */
static GstStructure *
clip_meta (GstBuffer *buf)
{
  GstCustomMeta *meta = gst_buffer_add_custom_meta (buf, "GstOviClipMeta");

  fail_unless (meta != NULL);
  return gst_custom_meta_get_structure (meta);
}

static GstHarness *
denoiser (GstBus **bus)
{
  GstHarness *h = gst_harness_new_with_padnames ("ovidenoise", "sink", "src");
  g_autofree gchar *caps = g_strdup_printf (
      "application/x-ovi-text,dtype=F32,dim=%d", tiny->text_dim);

  *bus = gst_bus_new ();
  gst_element_set_bus (h->element, *bus);
  g_object_set (h->element, "steps", 2, "seed", (guint64) 7, NULL);
  gst_harness_set_src_caps_str (h, caps);
  return h;
}

static void
teardown (GstHarness *h, GstBus *bus)
{
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
}

/* one clip (the same text every time): its video latent bytes */
static GBytes *
clip (GstHarness *h, GstBuffer *text)
{
  GstBuffer *out;
  GstMapInfo map;
  GBytes *bytes;

  fail_unless_equals_int (gst_harness_push (h, text), GST_FLOW_OK);
  out = gst_harness_pull (h);
  fail_unless (out != NULL);
  fail_unless (
      gst_memory_map (gst_buffer_peek_memory (out, 0), &map, GST_MAP_READ));
  bytes = g_bytes_new (map.data, map.size);
  gst_memory_unmap (gst_buffer_peek_memory (out, 0), &map);
  gst_buffer_unref (out);
  return bytes;
}

typedef struct {
  GstElement *element;
  const gchar *lora; /* set on the first step of the clip */
  gint steps_seen;
  gint steps;
} MidClip;

static GstBusSyncReply
on_message (GstBus *bus, GstMessage *msg, gpointer user_data)
{
  MidClip *m = user_data;
  const GstStructure *s = gst_message_get_structure (msg);

  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ELEMENT
      && gst_structure_has_name (s, "ovi-progress")) {
    gst_structure_get_int (s, "steps", &m->steps);
    if (m->steps_seen++ == 0 && m->lora)
      g_object_set (m->element, "lora", m->lora, NULL);
  }
  return GST_BUS_PASS;
}

GST_START_TEST (test_lora_next_clip_only)
{
  GstBus *bus;
  GstHarness *h = denoiser (&bus);
  g_autofree gchar *spec = g_strdup_printf ("%s:1:both", lora_path);
  g_autoptr (GBytes) none = NULL, with = NULL, during = NULL, after = NULL,
                     back = NULL, meta = NULL;
  MidClip m = { .element = h->element };
  GstBuffer *text;

  none = clip (h, make_text_buffer (tiny->text_dim, 1));
  g_object_set (h->element, "lora", spec, NULL);
  with = clip (h, make_text_buffer (tiny->text_dim, 1));
  fail_if (g_bytes_equal (none, with), "the LoRA changes nothing");

  /* set to none, then back to the LoRA while the next clip runs */
  g_object_set (h->element, "lora", "", NULL);
  gst_bus_set_sync_handler (bus, on_message, &m, NULL);
  m.lora = spec;
  during = clip (h, make_text_buffer (tiny->text_dim, 1));
  m.lora = NULL;
  fail_unless (m.steps_seen == 2);
  fail_unless (g_bytes_equal (during, none), "the running clip changed");
  after = clip (h, make_text_buffer (tiny->text_dim, 1));
  fail_unless (g_bytes_equal (after, with), "the next clip has no LoRA");

  /* a prompt-file line's "lora" is its clip's */
  g_object_set (h->element, "lora", NULL, NULL);
  back = clip (h, make_text_buffer (tiny->text_dim, 1));
  fail_unless (g_bytes_equal (back, none));
  text = make_text_buffer (tiny->text_dim, 1);
  gst_structure_set (clip_meta (text), "lora", G_TYPE_STRING, spec, NULL);
  meta = clip (h, text);
  fail_unless (g_bytes_equal (meta, with), "the clip's own lora was ignored");
  gst_bus_set_sync_handler (bus, NULL, NULL, NULL);
  teardown (h, bus);
}

GST_END_TEST;

GST_START_TEST (test_sigmas)
{
  GstBus *bus;
  GstHarness *h = denoiser (&bus);
  MidClip m = { .element = h->element };
  GstBuffer *text;

  gst_bus_set_sync_handler (bus, on_message, &m, NULL);
  g_object_set (h->element, "sigmas", "1,0.9375,0.8333,0.625,0",
                "video-guidance-scale", 1.0, "audio-guidance-scale", 1.0, NULL);
  g_bytes_unref (clip (h, make_text_buffer (tiny->text_dim, 1)));
  fail_unless_equals_int (m.steps, 4);
  fail_unless_equals_int (m.steps_seen, 4);
  /* a prompt-file line's sigmas */
  m = (MidClip){ .element = h->element };
  text = make_text_buffer (tiny->text_dim, 1);
  gst_structure_set (clip_meta (text), "sigmas", G_TYPE_STRING, "1,0.5,0",
                     NULL);
  g_bytes_unref (clip (h, text));
  fail_unless_equals_int (m.steps, 2);
  gst_bus_set_sync_handler (bus, NULL, NULL, NULL);

  /* bad sigmas: an element error naming them */
  g_object_set (h->element, "sigmas", "0.5,0.9", NULL);
  fail_unless_equals_int (
      gst_harness_push (h, make_text_buffer (tiny->text_dim, 1)),
      GST_FLOW_ERROR);
  {
    GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
    g_autoptr (GError) err = NULL;
    g_autofree gchar *dbg = NULL;
    fail_unless (msg != NULL);
    gst_message_parse_error (msg, &err, &dbg);
    fail_unless (strstr (err->message, "sigmas") != NULL, "%s", err->message);
    gst_message_unref (msg);
  }
  teardown (h, bus);
}

GST_END_TEST;

GST_START_TEST (test_lora_errors)
{
  GstBus *bus;
  GstHarness *h = denoiser (&bus);
  g_autofree gchar *missing
      = g_build_filename (tmp_dir, "none.safetensors", NULL);
  g_autoptr (GBytes) none = NULL, again = NULL;
  GstMessage *msg;

  none = clip (h, make_text_buffer (tiny->text_dim, 1));
  /* unmatched keys: a warning listing them, the clip is made */
  g_object_set (h->element, "lora", partial_path, NULL);
  g_bytes_unref (clip (h, make_text_buffer (tiny->text_dim, 1)));
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_WARNING);
  fail_unless (msg != NULL);
  {
    g_autoptr (GError) err = NULL;
    g_autofree gchar *dbg = NULL;
    gst_message_parse_warning (msg, &err, &dbg);
    fail_unless (strstr (dbg, "blocks.99.self_attn.q") != NULL, "%s", dbg);
  }
  gst_message_unref (msg);
  /* a missing file: an element error naming it, and the model unchanged */
  g_object_set (h->element, "lora", missing, NULL);
  fail_unless_equals_int (
      gst_harness_push (h, make_text_buffer (tiny->text_dim, 1)),
      GST_FLOW_ERROR);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  {
    g_autoptr (GError) err = NULL;
    g_autofree gchar *dbg = NULL;
    gst_message_parse_error (msg, &err, &dbg);
    fail_unless (strstr (err->message, "none.safetensors") != NULL, "%s",
                 err->message);
  }
  gst_message_unref (msg);
  g_object_set (h->element, "lora", "", NULL);
  again = clip (h, make_text_buffer (tiny->text_dim, 1));
  fail_unless (g_bytes_equal (again, none));
  teardown (h, bus);
}

GST_END_TEST;

static gdouble
rel_l2 (GBytes *a, GBytes *b)
{
  gsize n;
  const float *x = g_bytes_get_data (a, &n), *y = g_bytes_get_data (b, NULL);
  gdouble num = 0, den = 0;

  fail_unless_equals_int (n, g_bytes_get_size (b));
  for (gsize i = 0; i < n / 4; i++) {
    num += ((gdouble) x[i] - y[i]) * ((gdouble) x[i] - y[i]);
    den += (gdouble) y[i] * y[i];
  }
  return sqrt (num / den);
}

/* progress START messages of stage loads since the last call (the
 * elements post one per load) */
static gint
count_loads (GstBus *bus)
{
  GstMessage *msg;
  gint n = 0;

  while ((msg = gst_bus_pop_filtered (bus, GST_MESSAGE_PROGRESS))) {
    GstProgressType type;
    gst_message_parse_progress (msg, &type, NULL, NULL);
    n += type == GST_PROGRESS_TYPE_START;
    gst_message_unref (msg);
  }
  return n;
}

/* a denoiser built from a launch line (properties set before it loads) */
static GstHarness *
launched (const gchar *props, GstBus **bus)
{
  g_autofree gchar *desc
      = g_strdup_printf ("ovidenoise steps=2 seed=7 %s", props);
  g_autofree gchar *caps = g_strdup_printf (
      "application/x-ovi-text,dtype=F32,dim=%d", tiny->text_dim);
  GstHarness *h = gst_harness_new_empty ();

  *bus = gst_bus_new ();
  gst_harness_add_parse (h, desc);
  gst_element_set_bus (h->element, *bus);
  gst_harness_set_src_caps_str (h, caps);
  return h;
}

static GstElement *
denoise_element (GstHarness *h)
{
  return gst_bin_get_by_name (GST_BIN (h->element), "d");
}

GST_START_TEST (test_lora_modes)
{
  GstBus *bus;
  GstHarness *h;
  g_autofree gchar *spec = g_strdup_printf ("%s:1:both", lora_path);
  g_autofree gchar *missing
      = g_build_filename (tmp_dir, "gone.safetensors", NULL);
  g_autofree gchar *props = NULL;
  g_autoptr (GBytes) none = NULL, live = NULL, merged = NULL, back = NULL,
                     again = NULL;
  GstElement *d;

  /* references: no LoRA, the LoRA at run time */
  h = launched ("name=d lora-mode=unmerged", &bus);
  none = clip (h, make_text_buffer (tiny->text_dim, 1));
  count_loads (bus); /* (the load itself happened before the bus was set) */
  d = denoise_element (h);
  g_object_set (d, "lora", spec, NULL);
  live = clip (h, make_text_buffer (tiny->text_dim, 1));
  fail_unless_equals_int (count_loads (bus), 0); /* unmerged: no reload */
  gst_object_unref (d);
  teardown (h, bus);

  /* merged at load (auto, set before loading): near the run-time result,
   * not equal (the weights are rounded to bf16 once merged) */
  props = g_strdup_printf ("name=d lora=%s", spec);
  h = launched (props, &bus);
  merged = clip (h, make_text_buffer (tiny->text_dim, 1));
  count_loads (bus);
  GST_INFO ("merged vs run-time: rel_l2 %g, LoRA effect %g",
            rel_l2 (merged, live), rel_l2 (live, none));
  fail_unless (rel_l2 (merged, live) < 0.1 * rel_l2 (live, none));
  fail_if (g_bytes_equal (merged, none));
  /* a bad list: an error, and the merged denoiser stays loaded */
  d = denoise_element (h);
  g_object_set (d, "lora", missing, NULL);
  fail_unless_equals_int (
      gst_harness_push (h, make_text_buffer (tiny->text_dim, 1)),
      GST_FLOW_ERROR);
  fail_unless_equals_int (count_loads (bus), 0);
  g_object_set (d, "lora", spec, NULL);
  again = clip (h, make_text_buffer (tiny->text_dim, 1));
  fail_unless (g_bytes_equal (again, merged));
  fail_unless_equals_int (count_loads (bus), 0);
  /* merged ones changed: a reload, here without LoRAs (the plain model) */
  g_object_set (d, "lora", "", NULL);
  back = clip (h, make_text_buffer (tiny->text_dim, 1));
  fail_unless_equals_int (count_loads (bus), 1);
  fail_unless (g_bytes_equal (back, none));
  gst_object_unref (d);
  teardown (h, bus);
}

GST_END_TEST;

GST_START_TEST (test_prompt_file_keys)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) e = gst_ovi_parse_prompts (
      "{\"prompt\": \"a\", \"lora\": \"x.safetensors:0.5:audio\", "
      "\"sigmas\": [1, 0.9375, 0.5, 0]}\n"
      "{\"prompt\": \"b\", \"sigmas\": \"1,0.5,0\"}\n",
      "p.txt", &error);
  const GstStructure *o;

  fail_unless (e != NULL, "%s", error ? error->message : "");
  o = ((GstOviPromptEntry *) g_ptr_array_index (e, 0))->overrides;
  fail_unless_equals_string (gst_structure_get_string (o, "lora"),
                             "x.safetensors:0.5:audio");
  fail_unless_equals_string (gst_structure_get_string (o, "sigmas"),
                             "1,0.9375,0.5,0");
  o = ((GstOviPromptEntry *) g_ptr_array_index (e, 1))->overrides;
  fail_unless_equals_string (gst_structure_get_string (o, "sigmas"), "1,0.5,0");
  static const gchar *const bad[] = {
    "{\"prompt\": \"a\", \"lora\": 3}",
    "{\"prompt\": \"a\", \"sigmas\": [1, \"x\"]}",
    "{\"prompt\": \"a\", \"sigmas\": {\"a\": 1}}",
  };
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++) {
    GPtrArray *r = gst_ovi_parse_prompts (bad[i], "p.txt", &error);
    fail_unless (r == NULL && error != NULL, "%s parsed", bad[i]);
    fail_unless (strstr (error->message, "p.txt:1") != NULL);
    g_clear_error (&error);
  }
}

GST_END_TEST;

static Suite *
lora_suite (void)
{
  Suite *s = suite_create ("ovi-lora");
  TCase *tc = tcase_create ("general");

  tiny = ovi_model_preset_lookup ("tiny", NULL);
  g_assert (tiny != NULL);
  /* under XDG_CACHE_HOME, the build folder's (tests/gst/meson.build) */
  tmp_dir
      = g_build_filename (g_get_user_cache_dir (), "gst-ovi-lora-test", NULL);
  g_mkdir_with_parents (tmp_dir, 0755);
  lora_path = write_lora ("lora.safetensors", FALSE);
  partial_path = write_lora ("partial.safetensors", TRUE);
  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 300);
  tcase_add_test (tc, test_lora_next_clip_only);
  tcase_add_test (tc, test_sigmas);
  tcase_add_test (tc, test_lora_errors);
  tcase_add_test (tc, test_lora_modes);
  tcase_add_test (tc, test_prompt_file_keys);
  return s;
}

GST_CHECK_MAIN (lora);
