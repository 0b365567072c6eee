/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Harness tests of ovidenoise, ovivaedec and oviaudiodec with the tiny model
 * on the CPU: caps, timestamps, EOS, flush, cancel, the A/V rule, the engine
 * cache, progress messages and errors on bad properties / weight folders.
 * The text embeddings are pushed by the test (random rows of the model's
 * text width), so these tests do not depend on ovitextsrc. */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <glib/gstdio.h>
#include <string.h>

#include "gstoviutil.h"
#include "ovi-backend.h"
#include "ovi-engine.h"
#include "ovi-presets.h"

static const OviModelPreset *tiny;

static GstBuffer *
make_text_buffer (gint dim, guint32 seed)
{
  GstBuffer *buf = gst_buffer_new ();
  const gint n[3] = { 7, 3, 4 };
  GRand *rand = g_rand_new_with_seed (seed);
  gint i, j;

  for (i = 0; i < 3; i++) {
    gsize size = (gsize) n[i] * dim * sizeof (float);
    float *data = g_malloc (size);
    for (j = 0; j < n[i] * dim; j++)
      data[j] = (float) g_rand_double_range (rand, -0.5, 0.5);
    gst_buffer_append_memory (
        buf, gst_memory_new_wrapped (0, data, size, 0, size, data, g_free));
  }
  g_rand_free (rand);
  return buf;
}

static gchar *
text_caps (void)
{
  return g_strdup_printf ("application/x-ovi-text,dtype=F32,dim=%d",
                          tiny->text_dim);
}

static GstHarness *
denoise_harness (const gchar *extra)
{
  g_autofree gchar *desc
      = g_strdup_printf ("ovidenoise steps=2 %s", extra ? extra : "");
  g_autofree gchar *caps = text_caps ();
  GstHarness *h = gst_harness_new_parse (desc);
  gst_harness_set_src_caps_str (h, caps);
  return h;
}

/* ---- ovidenoise ---- */

GST_START_TEST (test_denoise_caps_timestamps)
{
  GstHarness *h = denoise_harness (NULL);
  guint frames = tiny->pixel_frames;
  guint k;

  for (k = 0; k < 3; k++) {
    GstBuffer *out;
    GstCaps *caps;
    const GstStructure *s;
    gint vc, vf, vh, vw, al, ac, width, height, fr, rate, fn, fd;

    fail_unless_equals_int (
        gst_harness_push (h, make_text_buffer (tiny->text_dim, k)),
        GST_FLOW_OK);
    out = gst_harness_pull (h);
    fail_unless (out != NULL);
    caps = gst_pad_get_current_caps (h->sinkpad);
    s = gst_caps_get_structure (caps, 0);
    fail_unless (gst_structure_has_name (s, "application/x-ovi-latent"));
    fail_unless (gst_structure_get (
        s, "video-channels", G_TYPE_INT, &vc, "video-frames", G_TYPE_INT, &vf,
        "video-height", G_TYPE_INT, &vh, "video-width", G_TYPE_INT, &vw,
        "audio-length", G_TYPE_INT, &al, "audio-channels", G_TYPE_INT, &ac,
        "width", G_TYPE_INT, &width, "height", G_TYPE_INT, &height, "frames",
        G_TYPE_INT, &fr, "rate", G_TYPE_INT, &rate, NULL));
    fail_unless (gst_structure_get_fraction (s, "framerate", &fn, &fd));
    fail_unless_equals_string (gst_structure_get_string (s, "dtype"), "F32");
    fail_unless_equals_int (vc, tiny->video_channels);
    fail_unless_equals_int (vf, tiny->video_latent_frames);
    fail_unless_equals_int (al, tiny->audio_latent_length);
    fail_unless_equals_int (ac, tiny->audio_channels);
    fail_unless_equals_int (width, vw * 16);
    fail_unless_equals_int (height, vh * 16);
    /* the tiny default 96x64 snapped to the tiny area */
    fail_unless_equals_int (width, tiny->default_width);
    fail_unless_equals_int (height, tiny->default_height);
    fail_unless_equals_int (fr, (gint) frames);
    fail_unless_equals_int (rate, 16000);
    fail_unless_equals_int (fn, 24);
    fail_unless_equals_int (fd, 1);
    gst_caps_unref (caps);

    fail_unless_equals_int (gst_buffer_n_memory (out), 2);
    fail_unless_equals_int (
        gst_memory_get_sizes (gst_buffer_peek_memory (out, 0), NULL, NULL),
        (gsize) vc * vf * vh * vw * 4);
    fail_unless_equals_int (
        gst_memory_get_sizes (gst_buffer_peek_memory (out, 1), NULL, NULL),
        (gsize) al * ac * 4);
    /* clip k starts where clip k-1 ended, from frame counts */
    fail_unless_equals_uint64 (GST_BUFFER_PTS (out),
                               gst_ovi_frame_time (k * frames));
    fail_unless_equals_uint64 (GST_BUFFER_PTS (out) + GST_BUFFER_DURATION (out),
                               gst_ovi_frame_time ((k + 1) * frames));
    fail_unless_equals_uint64 (GST_BUFFER_OFFSET (out), k * frames);
    fail_unless_equals_uint64 (GST_BUFFER_OFFSET_END (out), (k + 1) * frames);
    fail_if (GST_BUFFER_FLAG_IS_SET (out, GST_BUFFER_FLAG_DISCONT));
    gst_buffer_unref (out);
  }

  /* EOS goes through after the clips */
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  {
    GstEvent *ev;
    gboolean eos = FALSE;
    while ((ev = gst_harness_try_pull_event (h))) {
      eos |= GST_EVENT_TYPE (ev) == GST_EVENT_EOS;
      gst_event_unref (ev);
    }
    fail_unless (eos);
  }
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_denoise_seed_and_overrides)
{
  GstHarness *h = denoise_harness ("seed=5");
  GstBuffer *a, *b, *c, *in;
  GstMapInfo ma, mb, mc;
  GstCustomMeta *meta;

  gst_harness_push (h, make_text_buffer (tiny->text_dim, 1));
  a = gst_harness_pull (h);
  gst_harness_push (h, make_text_buffer (tiny->text_dim, 1));
  b = gst_harness_pull (h);
  /* a per-clip seed override from the prompt file's meta */
  in = make_text_buffer (tiny->text_dim, 1);
  fail_unless (gst_meta_get_info ("GstOviClipMeta") != NULL);
  meta = gst_buffer_add_custom_meta (in, "GstOviClipMeta");
  gst_structure_set (gst_custom_meta_get_structure (meta), "seed",
                     G_TYPE_UINT64, (guint64) 6, NULL);
  gst_harness_push (h, in);
  c = gst_harness_pull (h);

  gst_buffer_map (a, &ma, GST_MAP_READ);
  gst_buffer_map (b, &mb, GST_MAP_READ);
  gst_buffer_map (c, &mc, GST_MAP_READ);
  fail_unless (ma.size == mb.size && ma.size == mc.size);
  /* same seed and text: same latents; another seed: other latents */
  fail_unless (memcmp (ma.data, mb.data, ma.size) == 0);
  fail_if (memcmp (ma.data, mc.data, ma.size) == 0);
  gst_buffer_unmap (a, &ma);
  gst_buffer_unmap (b, &mb);
  gst_buffer_unmap (c, &mc);
  gst_buffer_unref (a);
  gst_buffer_unref (b);
  gst_buffer_unref (c);
  gst_harness_teardown (h);
}

GST_END_TEST;

static GstElement *
harness_bus (GstHarness *h, GstBus **bus)
{
  *bus = gst_bus_new ();
  gst_element_set_bus (h->element, *bus);
  return h->element;
}

GST_START_TEST (test_denoise_progress)
{
  GstHarness *h;
  GstBus *bus;
  GstMessage *msg;
  gint steps_seen = 0, last_step = 0;
  gdouble progress = 0;

  h = gst_harness_new_with_padnames ("ovidenoise", "sink", "src");
  harness_bus (h, &bus);
  g_object_set (h->element, "steps", 3, NULL);
  {
    g_autofree gchar *caps = text_caps ();
    gst_harness_set_src_caps_str (h, caps);
  }
  gst_harness_push (h, make_text_buffer (tiny->text_dim, 2));
  gst_buffer_unref (gst_harness_pull (h));
  while ((msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT))) {
    const GstStructure *s = gst_message_get_structure (msg);
    if (gst_structure_has_name (s, "ovi-progress")) {
      gint step, steps;
      guint64 clip;
      fail_unless (gst_structure_get (s, "step", G_TYPE_INT, &step, "steps",
                                      G_TYPE_INT, &steps, "clip", G_TYPE_UINT64,
                                      &clip, NULL));
      fail_unless (gst_structure_has_field (s, "eta"));
      fail_unless_equals_string (gst_structure_get_string (s, "stage"),
                                 "denoise");
      fail_unless_equals_int (steps, 3);
      fail_unless_equals_int (step, last_step + 1);
      fail_unless_equals_uint64 (clip, 0);
      last_step = step;
      steps_seen++;
    }
    gst_message_unref (msg);
  }
  fail_unless_equals_int (steps_seen, 3);
  g_object_get (h->element, "progress", &progress, NULL);
  fail_unless (progress == 1.0);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
}

GST_END_TEST;

typedef struct {
  GstHarness *h;
  GstFlowReturn ret;
} PushData;

static gpointer
push_thread (gpointer user_data)
{
  PushData *d = user_data;
  d->ret = gst_harness_push (d->h, make_text_buffer (tiny->text_dim, 3));
  return NULL;
}

/* Holds the streaming thread in its progress message at step HOLD_STEP
 * until the test has flushed, and records the last step reported: the
 * cancel is then judged in steps, whatever the machine's load. */
#define HOLD_STEP 2

typedef struct {
  GMutex lock;
  GCond cond;
  gint last_step;
  gboolean held, released;
} StepHold;

static GstBusSyncReply
hold_at_step (GstBus *bus, GstMessage *msg, gpointer user_data)
{
  StepHold *sh = user_data;
  const GstStructure *s = gst_message_get_structure (msg);
  gint step;

  if (GST_MESSAGE_TYPE (msg) != GST_MESSAGE_ELEMENT
      || !gst_structure_has_name (s, "ovi-progress")
      || !gst_structure_get_int (s, "step", &step))
    return GST_BUS_PASS;
  g_mutex_lock (&sh->lock);
  sh->last_step = MAX (sh->last_step, step);
  if (step == HOLD_STEP) {
    sh->held = TRUE;
    g_cond_broadcast (&sh->cond);
    while (!sh->released)
      g_cond_wait (&sh->cond, &sh->lock);
  }
  g_mutex_unlock (&sh->lock);
  return GST_BUS_DROP;
}

GST_START_TEST (test_denoise_flush_cancels)
{
  GstHarness *h;
  GstBus *bus;
  GThread *thread;
  PushData d = { NULL, GST_FLOW_OK };
  StepHold sh = { 0 };
  GstBuffer *out;

  g_mutex_init (&sh.lock);
  g_cond_init (&sh.cond);
  h = gst_harness_new_with_padnames ("ovidenoise", "sink", "src");
  harness_bus (h, &bus);
  gst_bus_set_sync_handler (bus, hold_at_step, &sh, NULL);
  g_object_set (h->element, "steps", 1000, NULL);
  {
    g_autofree gchar *caps = text_caps ();
    gst_harness_set_src_caps_str (h, caps);
  }
  d.h = h;
  thread = g_thread_new ("push", push_thread, &d);
  g_mutex_lock (&sh.lock);
  while (!sh.held)
    g_cond_wait (&sh.cond, &sh.lock);
  g_mutex_unlock (&sh.lock);
  /* flush while the clip is between steps HOLD_STEP and HOLD_STEP + 1 */
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_start ()));
  g_mutex_lock (&sh.lock);
  sh.released = TRUE;
  g_cond_broadcast (&sh.cond);
  g_mutex_unlock (&sh.lock);
  g_thread_join (thread);
  fail_unless_equals_int (d.ret, GST_FLOW_FLUSHING);
  /* no step after the flush (the cancellable is checked before each) */
  fail_unless_equals_int (sh.last_step, HOLD_STEP);
  gst_bus_set_sync_handler (bus, NULL, NULL, NULL);
  g_mutex_clear (&sh.lock);
  g_cond_clear (&sh.cond);
  fail_unless (gst_harness_try_pull (h) == NULL);
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_stop (TRUE)));
  {
    GstSegment seg;
    gst_segment_init (&seg, GST_FORMAT_TIME);
    fail_unless (gst_harness_push_event (h, gst_event_new_segment (&seg)));
  }

  /* after the flush: the next clip comes out with DISCONT */
  g_object_set (h->element, "steps", 1, NULL);
  fail_unless_equals_int (
      gst_harness_push (h, make_text_buffer (tiny->text_dim, 4)), GST_FLOW_OK);
  out = gst_harness_pull (h);
  fail_unless (GST_BUFFER_FLAG_IS_SET (out, GST_BUFFER_FLAG_DISCONT));
  gst_buffer_unref (out);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Two pipelines on one denoiser stage (the process-wide cache): B is
 * flushed mid-clip while A runs. Runs take turns per step, so B's flush
 * ends B's clip within the step it has in flight, and A goes on to the end
 * of its clip. Counted in steps (notify::progress), not in time. */
typedef struct {
  gint steps; /* atomic */
} StepCount;

static void
count_step (GObject *obj, GParamSpec *pspec, gpointer user_data)
{
  StepCount *c = user_data;
  gdouble p;

  g_object_get (obj, "progress", &p, NULL);
  if (p > 0.0)
    g_atomic_int_inc (&c->steps);
}

static void
wait_steps (StepCount *c, gint n)
{
  while (g_atomic_int_get (&c->steps) < n)
    g_usleep (1000);
}

GST_START_TEST (test_denoise_shared_stage_flush)
{
  const gint steps = 40;
  g_autofree gchar *caps = text_caps ();
  GstHarness *ha = gst_harness_new_with_padnames ("ovidenoise", "sink", "src");
  GstHarness *hb = gst_harness_new_with_padnames ("ovidenoise", "sink", "src");
  StepCount ca = { 0 }, cb = { 0 };
  PushData da = { ha, GST_FLOW_ERROR }, db = { hb, GST_FLOW_OK };
  GThread *ta, *tb;
  gint b_at_flush;
  GstBuffer *out;

  g_object_set (ha->element, "steps", steps, NULL);
  g_object_set (hb->element, "steps", steps, NULL);
  gst_harness_set_src_caps_str (ha, caps);
  gst_harness_set_src_caps_str (hb, caps);
  g_signal_connect (ha->element, "notify::progress", G_CALLBACK (count_step),
                    &ca);
  g_signal_connect (hb->element, "notify::progress", G_CALLBACK (count_step),
                    &cb);
  ta = g_thread_new ("push-a", push_thread, &da);
  wait_steps (&ca, 2);
  tb = g_thread_new ("push-b", push_thread, &db);
  /* both mid-clip, taking turns */
  wait_steps (&cb, 3);
  fail_unless (g_atomic_int_get (&ca.steps) < steps);
  b_at_flush = g_atomic_int_get (&cb.steps);
  fail_unless (gst_harness_push_event (hb, gst_event_new_flush_start ()));
  g_thread_join (tb);
  fail_unless_equals_int (db.ret, GST_FLOW_FLUSHING);
  fail_unless (g_atomic_int_get (&cb.steps) <= b_at_flush + 1,
               "B ran %d steps after its flush",
               g_atomic_int_get (&cb.steps) - b_at_flush);
  fail_unless (gst_harness_try_pull (hb) == NULL);
  /* A was not disturbed: its clip completes with every step */
  g_thread_join (ta);
  fail_unless_equals_int (da.ret, GST_FLOW_OK);
  fail_unless_equals_int (g_atomic_int_get (&ca.steps), steps);
  out = gst_harness_pull (ha);
  fail_unless_equals_int (gst_buffer_n_memory (out), 2);
  gst_buffer_unref (out);
  fail_unless (gst_harness_push_event (hb, gst_event_new_flush_stop (TRUE)));
  gst_harness_teardown (ha);
  gst_harness_teardown (hb);
}

GST_END_TEST;

/* An image pad requested after the element is PLAYING: the VAE encoder is
 * loaded on the first image and the next clip is image-to-video at the
 * image's snapped size; a clip of the text pad waits for it instead of
 * hanging or flushing. */
GST_START_TEST (test_denoise_late_image_pad)
{
  g_autofree gchar *caps = text_caps ();
  GstHarness *h = gst_harness_new_with_padnames ("ovidenoise", "sink", "src");
  GstHarness *img;
  GstBuffer *frame, *out;
  GstStructure *meta;
  GstCaps *latent;
  gint w = 0, h_px = 0;

  g_object_set (h->element, "steps", 1, NULL);
  gst_harness_set_src_caps_str (h, caps);
  fail_unless (GST_STATE (h->element) == GST_STATE_PLAYING);
  img = gst_harness_new_with_element (h->element, "image", NULL);
  gst_harness_set_src_caps_str (
      img, "video/x-raw,format=RGB,width=96,height=64,framerate=0/1");
  frame = gst_harness_create_buffer (img, 96 * 64 * 3);
  gst_buffer_memset (frame, 0, 0x80, 96 * 64 * 3);
  fail_unless_equals_int (gst_harness_push (img, frame), GST_FLOW_OK);
  fail_unless_equals_int (
      gst_harness_push (h, make_text_buffer (tiny->text_dim, 5)), GST_FLOW_OK);
  out = gst_harness_pull (h);
  fail_unless (gst_buffer_get_custom_meta (out, "GstOviClipMeta") != NULL);
  meta = gst_custom_meta_get_structure (
      gst_buffer_get_custom_meta (out, "GstOviClipMeta"));
  fail_unless (gst_structure_get_int (meta, "width", &w));
  fail_unless (gst_structure_get_int (meta, "height", &h_px));
  /* the 3:2 image at the tiny area (6144 px): 96x64, landscape */
  fail_unless_equals_int (w, 96);
  fail_unless_equals_int (h_px, 64);
  latent = gst_pad_get_current_caps (h->sinkpad);
  fail_unless (latent != NULL);
  gst_caps_unref (latent);
  gst_buffer_unref (out);
  gst_harness_teardown (img);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* LATENCY: ovidenoise adds the time a clip takes to upstream's latency:
 * steps x an estimate per step before anything ran (1 s), steps x the
 * measured step time after a clip, announced with a LATENCY message. */
static GstClockTime
query_min_latency (GstHarness *h, gboolean *live)
{
  GstQuery *q = gst_query_new_latency ();
  GstClockTime min = GST_CLOCK_TIME_NONE;

  fail_unless (gst_pad_peer_query (h->sinkpad, q));
  gst_query_parse_latency (q, live, &min, NULL);
  gst_query_unref (q);
  return min;
}

GST_START_TEST (test_denoise_latency)
{
  GstHarness *h = gst_harness_new_with_padnames ("ovidenoise", "sink", "src");
  g_autofree gchar *caps = text_caps ();
  GstClockTime before, after;
  gboolean live = FALSE;
  GstBus *bus;
  GstMessage *msg;

  gst_harness_set_src_caps_str (h, caps);
  g_object_set (h->element, "steps", 3, NULL);
  harness_bus (h, &bus);
  gst_harness_set_upstream_latency (h, 40 * GST_MSECOND);
  before = query_min_latency (h, &live);
  /* the harness is a live upstream: live stays, its 40 ms are kept */
  fail_unless (live);
  fail_unless_equals_uint64 (before, 40 * GST_MSECOND + 3 * GST_SECOND);
  fail_unless (gst_bus_pop_filtered (bus, GST_MESSAGE_LATENCY) == NULL);

  fail_unless_equals_int (
      gst_harness_push (h, make_text_buffer (tiny->text_dim, 50)), GST_FLOW_OK);
  gst_buffer_unref (gst_harness_pull (h));
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_LATENCY);
  fail_unless (msg != NULL, "no LATENCY message after the first clip");
  fail_unless (GST_MESSAGE_SRC (msg) == GST_OBJECT (h->element));
  gst_message_unref (msg);
  after = query_min_latency (h, &live);
  fail_unless (live);
  /* the measured clip time replaced the estimate */
  fail_unless (after != before);
  fail_unless (after > 40 * GST_MSECOND);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* ---- errors ---- */

static GstMessage *
start_error (const gchar *factory, const gchar *prop, const gchar *value)
{
  GstElement *pipe = gst_pipeline_new (NULL);
  GstElement *el = gst_element_factory_make (factory, NULL);
  GstElement *sink = gst_element_factory_make ("fakesink", NULL);
  GstBus *bus = gst_element_get_bus (pipe);
  GstStateChangeReturn ret;
  GstMessage *msg;

  gst_util_set_object_arg (G_OBJECT (el), prop, value);
  if (g_str_equal (factory, "ovidenoise") || g_str_equal (factory, "ovivaedec")
      || g_str_equal (factory, "oviaudiodec")) {
    GstElement *src = gst_element_factory_make ("fakesrc", NULL);
    gst_bin_add_many (GST_BIN (pipe), src, el, sink, NULL);
    gst_element_link_many (src, el, NULL);
  } else {
    gst_bin_add_many (GST_BIN (pipe), el, sink, NULL);
  }
  gst_element_link (el, sink);
  ret = gst_element_set_state (pipe, GST_STATE_PAUSED);
  fail_unless_equals_int (ret, GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (pipe);
  return msg;
}

static gchar *
error_text (GstMessage *msg, GError **err)
{
  gchar *debug = NULL;
  gst_message_parse_error (msg, err, &debug);
  g_free (debug);
  return g_strdup ((*err)->message);
}

GST_START_TEST (test_error_missing_model_dir)
{
  const gchar *names[] = { "ovidenoise", "ovivaedec", "oviaudiodec" };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (names); i++) {
    GstMessage *msg
        = start_error (names[i], "model-dir", "/nonexistent/ovi-weights");
    g_autoptr (GError) err = NULL;
    g_autofree gchar *text = error_text (msg, &err);
    /* the message names the folder */
    fail_unless (strstr (text, "/nonexistent/ovi-weights") != NULL, "%s: %s",
                 names[i], text);
    fail_unless (err->domain == GST_RESOURCE_ERROR, "%s", text);
    gst_message_unref (msg);
  }
}

GST_END_TEST;

static gchar *
copy_tiny_with_broken (const gchar *rel, gboolean truncate)
{
  g_autofree gchar *src
      = g_build_filename (g_get_user_cache_dir (), "gst-ovi", NULL);
  gchar *dst = g_dir_make_tmp ("ovi-broken-XXXXXX", NULL);
  g_autofree gchar *cmd = NULL, *victim = NULL;
  gint status = 0;

  /* the tiny model folder the elements wrote (find its root by marker) */
  cmd = g_strdup_printf ("sh -c 'd=$(dirname $(find \"%s\" -name "
                         "ovi-tiny.json | head -1)) && cp -r \"$d\"/. \"%s\"/'",
                         src, dst);
  fail_unless (g_spawn_command_line_sync (cmd, NULL, NULL, &status, NULL));
  fail_unless (status == 0, "no tiny model under %s", src);
  victim = g_build_filename (dst, rel, NULL);
  if (truncate) {
    g_autofree gchar *data = NULL;
    gsize len = 0;
    fail_unless (g_file_get_contents (victim, &data, &len, NULL));
    fail_unless (g_file_set_contents (victim, data, len / 2, NULL));
  } else {
    fail_unless (g_unlink (victim) == 0);
  }
  return dst;
}

static void
rm_rf (const gchar *dir)
{
  g_autofree gchar *cmd = g_strdup_printf ("rm -rf '%s'", dir);
  g_spawn_command_line_sync (cmd, NULL, NULL, NULL, NULL);
}

GST_START_TEST (test_error_bad_weights)
{
  /* make sure the default tiny model exists */
  GstHarness *h = denoise_harness (NULL);
  g_autofree gchar *dir = NULL;
  gst_harness_teardown (h);

  /* a truncated fusion file: the error names the file */
  dir = copy_tiny_with_broken ("Ovi/model.safetensors", TRUE);
  {
    GstMessage *msg = start_error ("ovidenoise", "model-dir", dir);
    g_autoptr (GError) err = NULL;
    g_autofree gchar *text = error_text (msg, &err);
    fail_unless (strstr (text, "model.safetensors") != NULL, "%s", text);
    fail_unless (strstr (text, "fusion") != NULL, "%s", text);
    gst_message_unref (msg);
  }
  rm_rf (dir);
  g_free (dir);
  /* a missing VAE: ovivaedec says which file is missing */
  dir = copy_tiny_with_broken ("Wan2.2-TI2V-5B/Wan2.2_VAE.pth", FALSE);
  {
    GstMessage *msg = start_error ("ovivaedec", "model-dir", dir);
    g_autoptr (GError) err = NULL;
    g_autofree gchar *text = error_text (msg, &err);
    fail_unless (strstr (text, "Wan2.2_VAE.pth") != NULL, "%s", text);
    gst_message_unref (msg);
  }
  rm_rf (dir);
}

GST_END_TEST;

GST_START_TEST (test_error_gpu_only_mode)
{
  GstMessage *msg;
  g_autoptr (GError) err = NULL;
  g_autofree gchar *text = NULL;
  GstElement *el = gst_element_factory_make ("oviaudiodec", NULL);

  /* the element exists without a GPU; a GPU-only mode fails at start */
  fail_unless (el != NULL);
  gst_object_unref (el);
  {
    /* on a machine where CUDA works the GPU-only modes run: skip */
    OviBackend *be = ovi_backend_new_by_name ("cuda", 0, NULL);
    if (be) {
      ovi_backend_free (be);
      GST_INFO ("CUDA machine: skipping the no-GPU error check");
      return;
    }
  }
  msg = start_error ("oviaudiodec", "vram-mode", "fp8");
  text = error_text (msg, &err);
  fail_unless (strstr (text, "CUDA") != NULL, "%s", text);
  fail_unless (strstr (text, "vram-mode=auto") != NULL, "%s", text);
  gst_message_unref (msg);
  g_clear_error (&err);
  g_free (text);
  msg = start_error ("ovidenoise", "gpu-allocation", "sp4");
  text = error_text (msg, &err);
  fail_unless (strstr (text, "sp4") != NULL, "%s", text);
  gst_message_unref (msg);
}

GST_END_TEST;

GST_START_TEST (test_error_bad_input)
{
  GstHarness *h = denoise_harness (NULL);
  GstBus *bus;
  GstMessage *msg;
  GstBuffer *buf = gst_buffer_new_allocate (NULL, 10, NULL);

  harness_bus (h, &bus);
  /* one memory of 10 bytes is no text embedding */
  fail_unless_equals_int (gst_harness_push (h, buf), GST_FLOW_ERROR);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  gst_message_unref (msg);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* ---- ovivaedec ---- */

static void
check_video (const gchar *format)
{
  GstHarness *h = gst_harness_new_parse ("ovidenoise steps=1 ! ovivaedec");
  g_autofree gchar *caps_in = text_caps ();
  g_autofree gchar *caps_out
      = g_strdup_printf ("video/x-raw,format=%s", format);
  guint frames = tiny->pixel_frames, k, i;
  GstVideoInfo info;
  GstCaps *caps;

  gst_harness_set_src_caps_str (h, caps_in);
  gst_harness_set_sink_caps_str (h, caps_out);
  for (k = 0; k < 2; k++) {
    fail_unless_equals_int (
        gst_harness_push (h, make_text_buffer (tiny->text_dim, 10 + k)),
        GST_FLOW_OK);
    /* the whole clip is out when push returns: frames streamed one by one */
    fail_unless_equals_int (gst_harness_buffers_in_queue (h), frames);
    for (i = 0; i < frames; i++) {
      GstBuffer *b = gst_harness_pull (h);
      guint64 n = k * frames + i;
      fail_unless_equals_uint64 (GST_BUFFER_PTS (b), gst_ovi_frame_time (n));
      fail_unless_equals_uint64 (GST_BUFFER_DURATION (b),
                                 gst_ovi_frame_time (n + 1)
                                     - gst_ovi_frame_time (n));
      fail_unless_equals_uint64 (GST_BUFFER_OFFSET (b), n);
      if (k == 0 && i == 0) {
        caps = gst_pad_get_current_caps (h->sinkpad);
        fail_unless (gst_video_info_from_caps (&info, caps));
        fail_unless_equals_string (
            gst_video_format_to_string (GST_VIDEO_INFO_FORMAT (&info)), format);
        fail_unless_equals_int (info.width, tiny->default_width);
        fail_unless_equals_int (info.height, tiny->default_height);
        fail_unless_equals_int (info.fps_n, 24);
        fail_unless_equals_int (info.fps_d, 1);
        gst_caps_unref (caps);
      }
      fail_unless_equals_int (gst_buffer_get_size (b), info.size);
      gst_buffer_unref (b);
    }
  }
  gst_harness_teardown (h);
}

GST_START_TEST (test_vaedec_formats)
{
  check_video ("RGB");
  check_video ("RGBA");
  check_video ("I420");
  check_video ("NV12");
}

GST_END_TEST;

/* Downstream of the harness: offers a pool of its own (and GstVideoMeta)
 * in every ALLOCATION query, and after the third frame asks for I420 with a
 * RECONFIGURE, in the middle of the clip. */
typedef struct {
  GstHarness *h;
  GPtrArray *pools; /* the pools offered, in order */
  guint frames;
} Downstream;

static GstPadProbeReturn
offer_pool (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  Downstream *d = user_data;
  GstQuery *q = GST_PAD_PROBE_INFO_QUERY (info);
  GstBufferPool *pool;
  GstVideoInfo vi;
  GstCaps *caps;

  if (GST_QUERY_TYPE (q) != GST_QUERY_ALLOCATION)
    return GST_PAD_PROBE_OK;
  gst_query_parse_allocation (q, &caps, NULL);
  fail_unless (gst_video_info_from_caps (&vi, caps));
  pool = gst_video_buffer_pool_new ();
  gst_query_add_allocation_pool (q, pool, vi.size, 2, 0);
  gst_query_add_allocation_meta (q, GST_VIDEO_META_API_TYPE, NULL);
  g_ptr_array_add (d->pools, pool);
  return GST_PAD_PROBE_HANDLED;
}

static GstPadProbeReturn
switch_format (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  Downstream *d = user_data;

  if (++d->frames == 3) {
    gst_harness_set_sink_caps_str (d->h, "video/x-raw,format=I420");
    gst_pad_push_event (pad, gst_event_new_reconfigure ());
  }
  return GST_PAD_PROBE_OK;
}

GST_START_TEST (test_vaedec_pool_renegotiation)
{
  GstHarness *h = gst_harness_new_parse ("ovidenoise steps=1 ! ovivaedec");
  g_autofree gchar *caps_in = text_caps ();
  Downstream d = { h, g_ptr_array_new_with_free_func (gst_object_unref), 0 };
  guint frames = tiny->pixel_frames, i;
  GstVideoFormat want;

  gst_harness_set_src_caps_str (h, caps_in);
  gst_harness_set_sink_caps_str (h, "video/x-raw,format=RGB");
  gst_pad_add_probe (h->sinkpad, GST_PAD_PROBE_TYPE_QUERY_DOWNSTREAM,
                     offer_pool, &d, NULL);
  gst_pad_add_probe (h->sinkpad, GST_PAD_PROBE_TYPE_BUFFER, switch_format, &d,
                     NULL);
  fail_unless_equals_int (
      gst_harness_push (h, make_text_buffer (tiny->text_dim, 30)), GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), frames);
  /* one pool per negotiation: RGB, then I420 from the fourth frame on */
  fail_unless_equals_int (d.pools->len, 2);
  for (i = 0; i < frames; i++) {
    GstBuffer *b = gst_harness_pull (h);
    GstBufferPool *pool = g_ptr_array_index (d.pools, i < 3 ? 0 : 1);
    GstVideoMeta *meta = gst_buffer_get_video_meta (b);
    GstVideoInfo vi;

    want = i < 3 ? GST_VIDEO_FORMAT_RGB : GST_VIDEO_FORMAT_I420;
    gst_video_info_set_format (&vi, want, tiny->default_width,
                               tiny->default_height);
    fail_unless (b->pool == pool, "frame %u not from the downstream pool", i);
    fail_unless (meta != NULL, "frame %u without GstVideoMeta", i);
    fail_unless_equals_int (meta->format, want);
    fail_unless_equals_int (meta->width, tiny->default_width);
    fail_unless_equals_int (meta->height, tiny->default_height);
    fail_unless_equals_uint64 (GST_BUFFER_OFFSET (b), i);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (b), gst_ovi_frame_time (i));
    fail_unless (gst_buffer_get_size (b) >= vi.size);
    gst_buffer_unref (b);
  }
  /* the caps events said so too: the last one is I420 */
  {
    GstCaps *caps = gst_pad_get_current_caps (h->sinkpad);
    GstVideoInfo vi;
    fail_unless (gst_video_info_from_caps (&vi, caps));
    fail_unless_equals_int (GST_VIDEO_INFO_FORMAT (&vi), GST_VIDEO_FORMAT_I420);
    gst_caps_unref (caps);
  }
  gst_harness_teardown (h);
  g_ptr_array_unref (d.pools);
}

GST_END_TEST;

/* the decoders add their own decode time to the latency they pass on */
GST_START_TEST (test_decoders_latency)
{
  const gchar *decoders[] = { "ovivaedec", "oviaudiodec" };
  g_autofree gchar *caps_in = text_caps ();
  guint i;

  for (i = 0; i < G_N_ELEMENTS (decoders); i++) {
    g_autofree gchar *desc
        = g_strdup_printf ("ovidenoise steps=1 ! %s", decoders[i]);
    GstHarness *h = gst_harness_new_parse (desc);
    GstElement *dn = gst_harness_find_element (h, "ovidenoise");
    GstPad *dn_src = gst_element_get_static_pad (dn, "src");
    GstClockTime at_denoise, at_decoder;
    gboolean live;
    GstQuery *q;

    gst_harness_set_src_caps_str (h, caps_in);
    fail_unless_equals_int (
        gst_harness_push (h, make_text_buffer (tiny->text_dim, 60)),
        GST_FLOW_OK);
    at_decoder = query_min_latency (h, &live);
    q = gst_query_new_latency ();
    fail_unless (gst_pad_query (dn_src, q));
    gst_query_parse_latency (q, NULL, &at_denoise, NULL);
    gst_query_unref (q);
    fail_unless (at_decoder > at_denoise, "%s added no latency", decoders[i]);
    gst_object_unref (dn_src);
    gst_object_unref (dn);
    gst_harness_teardown (h);
  }
}

GST_END_TEST;

/* ---- oviaudiodec ---- */

GST_START_TEST (test_audiodec_av_rule)
{
  GstHarness *h
      = gst_harness_new_parse ("ovidenoise steps=1 ! "
                               "oviaudiodec buffer-duration=10000000");
  g_autofree gchar *caps_in = text_caps ();
  guint frames = tiny->pixel_frames, k;
  guint64 next = 0;
  GstCaps *caps, *want;
  gst_harness_set_src_caps_str (h, caps_in);
  for (k = 0; k < 3; k++) {
    guint64 clip_samples = 0, expect = ovi_clip_audio_samples (k, frames);
    GstBuffer *b;
    gboolean at_start = TRUE;

    fail_unless_equals_int (
        gst_harness_push (h, make_text_buffer (tiny->text_dim, 20 + k)),
        GST_FLOW_OK);
    while ((b = gst_harness_try_pull (h))) {
      guint64 n = gst_buffer_get_size (b) / 4;
      fail_unless (n <= 160); /* 10 ms at 16 kHz */
      /* contiguous sample offsets and times */
      fail_unless_equals_uint64 (GST_BUFFER_OFFSET (b), next);
      fail_unless_equals_uint64 (
          GST_BUFFER_PTS (b), gst_util_uint64_scale (next, GST_SECOND, 16000));
      if (at_start) {
        /* the clip's audio starts with its video (within half a sample) */
        GstClockTimeDiff d = GST_CLOCK_DIFF (gst_ovi_frame_time (k * frames),
                                             GST_BUFFER_PTS (b));
        fail_unless (ABS (d) <= GST_SECOND / 32000,
                     "clip %u: %" G_GINT64_FORMAT " ns", k, d);
        at_start = FALSE;
      }
      next += n;
      clip_samples += n;
      gst_buffer_unref (b);
    }
    fail_unless_equals_uint64 (clip_samples, expect);
  }
  caps = gst_pad_get_current_caps (h->sinkpad);
  want = gst_caps_from_string (
      "audio/x-raw,format=F32LE,layout=interleaved,rate=16000,channels=1");
  fail_unless (gst_caps_is_equal (caps, want));
  gst_caps_unref (want);
  gst_caps_unref (caps);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* oviaudiodec through a harness whose downstream offers a buffer pool (of
 * too-small buffers): the element sizes it for buffer-duration and every
 * buffer comes from it, the clip's last one shorter. */
static GstPadProbeReturn
offer_audio_pool (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  GstBufferPool **pool = user_data;
  GstQuery *q = GST_PAD_PROBE_INFO_QUERY (info);

  if (GST_QUERY_TYPE (q) != GST_QUERY_ALLOCATION)
    return GST_PAD_PROBE_OK;
  fail_unless (*pool == NULL);
  *pool = gst_buffer_pool_new ();
  gst_query_add_allocation_pool (q, *pool, 16, 2, 0);
  return GST_PAD_PROBE_HANDLED;
}

GST_START_TEST (test_audiodec_pool)
{
  GstHarness *h = gst_harness_new_parse (
      "ovidenoise steps=1 ! oviaudiodec buffer-duration=10000000");
  g_autofree gchar *caps_in = text_caps ();
  GstBufferPool *pool = NULL;
  guint64 total = 0, expect = ovi_clip_audio_samples (0, tiny->pixel_frames);
  guint n = 0;
  GstBuffer *b;

  gst_harness_set_src_caps_str (h, caps_in);
  gst_pad_add_probe (h->sinkpad, GST_PAD_PROBE_TYPE_QUERY_DOWNSTREAM,
                     offer_audio_pool, &pool, NULL);
  fail_unless_equals_int (
      gst_harness_push (h, make_text_buffer (tiny->text_dim, 40)), GST_FLOW_OK);
  fail_unless (pool != NULL);
  while ((b = gst_harness_try_pull (h))) {
    gsize size = gst_buffer_get_size (b);
    fail_unless (b->pool == pool, "buffer %u not from the downstream pool", n);
    total += size / sizeof (float);
    /* 10 ms at 16 kHz, the last one may be shorter */
    fail_unless (size == 160 * sizeof (float) || total == expect);
    gst_buffer_unref (b);
    n++;
  }
  fail_unless_equals_uint64 (total, expect);
  gst_harness_teardown (h);
  gst_object_unref (pool);
}

GST_END_TEST;

/* ---- the engine cache ---- */

static gint
count_loads (GstBus *bus)
{
  GstMessage *msg;
  gint n = 0;
  while ((msg = gst_bus_pop_filtered (bus, GST_MESSAGE_PROGRESS))) {
    GstProgressType type;
    gst_message_parse_progress (msg, &type, NULL, NULL);
    if (type == GST_PROGRESS_TYPE_START)
      n++;
    gst_message_unref (msg);
  }
  return n;
}

GST_START_TEST (test_engine_shared)
{
  GstElement *p1 = gst_parse_launch ("fakesrc ! ovidenoise ! fakesink", NULL);
  GstElement *p2 = gst_parse_launch ("fakesrc ! ovidenoise ! fakesink", NULL);
  GstBus *b1 = gst_element_get_bus (p1), *b2 = gst_element_get_bus (p2);

  /* the first pipeline loads, a second one reuses */
  fail_unless (gst_element_set_state (p1, GST_STATE_READY)
               != GST_STATE_CHANGE_FAILURE);
  gst_element_set_state (p1, GST_STATE_PAUSED);
  fail_unless_equals_int (count_loads (b1), 1);
  gst_element_set_state (p2, GST_STATE_PAUSED);
  fail_unless_equals_int (count_loads (b2), 0);
  /* READY -> PAUSED again: no reload */
  gst_element_set_state (p1, GST_STATE_READY);
  gst_element_set_state (p1, GST_STATE_PAUSED);
  fail_unless_equals_int (count_loads (b1), 0);
  /* with no holder left, the weights go; the next start loads again */
  gst_element_set_state (p1, GST_STATE_NULL);
  gst_element_set_state (p2, GST_STATE_NULL);
  gst_element_set_state (p2, GST_STATE_PAUSED);
  fail_unless_equals_int (count_loads (b2), 1);
  gst_element_set_state (p2, GST_STATE_NULL);
  gst_object_unref (b1);
  gst_object_unref (b2);
  gst_object_unref (p1);
  gst_object_unref (p2);
}

GST_END_TEST;

GST_START_TEST (test_registration)
{
  const gchar *names[] = { "ovidenoise", "ovivaedec", "oviaudiodec" };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (names); i++) {
    GstElementFactory *f = gst_element_factory_find (names[i]);
    fail_unless (f != NULL, "%s", names[i]);
    fail_unless_equals_int (
        gst_plugin_feature_get_rank (GST_PLUGIN_FEATURE (f)), GST_RANK_NONE);
    gst_object_unref (f);
  }
}

GST_END_TEST;

/* ---- continuation=last-frame (docs/elements.md, "Continuous clips") ---- */

/* one clip's latents from ovidenoise, and their caps */
static GstBuffer *
make_latent (GstCaps **caps)
{
  GstHarness *h = gst_harness_new_parse ("ovidenoise steps=1");
  g_autofree gchar *caps_in = text_caps ();
  GstBuffer *latent;

  gst_harness_set_src_caps_str (h, caps_in);
  fail_unless_equals_int (
      gst_harness_push (h, make_text_buffer (tiny->text_dim, 40)), GST_FLOW_OK);
  latent = gst_harness_pull (h);
  *caps = gst_pad_get_current_caps (h->sinkpad);
  gst_harness_teardown (h);
  return latent;
}

/* `latent` placed as a continued clip: its first frame shown already as
 * frame `start` - 1, clip number 5 */
static GstBuffer *
as_continued (GstBuffer *latent, guint64 start)
{
  GstBuffer *b = gst_buffer_copy (latent);
  GstCustomMeta *meta = gst_buffer_get_custom_meta (b, "GstOviClipMeta");
  guint64 end = start + tiny->pixel_frames - 1;

  fail_unless (meta != NULL);
  gst_structure_set (gst_custom_meta_get_structure (meta), "clip",
                     G_TYPE_UINT64, (guint64) 5, "shared-frames", G_TYPE_UINT,
                     1, NULL);
  GST_BUFFER_PTS (b) = gst_ovi_frame_time (start);
  GST_BUFFER_DURATION (b) = gst_ovi_frame_time (end) - GST_BUFFER_PTS (b);
  GST_BUFFER_OFFSET (b) = start;
  GST_BUFFER_OFFSET_END (b) = end;
  return b;
}

/* `latent` through `element`: the buffers out, and the ovi-last-frame
 * event sent upstream (or NULL) */
static GPtrArray *
decode_latent (const gchar *element, const gchar *sink_caps, GstCaps *caps,
               GstBuffer *latent, GstEvent **last)
{
  GstHarness *h = gst_harness_new (element);
  GPtrArray *out
      = g_ptr_array_new_with_free_func ((GDestroyNotify) gst_buffer_unref);
  GstBuffer *b;
  GstEvent *ev;

  gst_harness_set_src_caps (h, gst_caps_ref (caps));
  if (sink_caps)
    gst_harness_set_sink_caps_str (h, sink_caps);
  fail_unless_equals_int (gst_harness_push (h, latent), GST_FLOW_OK);
  while ((b = gst_harness_try_pull (h)))
    g_ptr_array_add (out, b);
  *last = NULL;
  while ((ev = gst_harness_try_pull_upstream_event (h))) {
    if (GST_EVENT_TYPE (ev) == GST_EVENT_CUSTOM_UPSTREAM
        && gst_event_has_name (ev, "ovi-last-frame"))
      gst_event_replace (last, ev);
    gst_event_unref (ev);
  }
  gst_harness_teardown (h);
  return out;
}

static gboolean
same_bytes (GstBuffer *a, GstBuffer *b)
{
  GstMapInfo ma, mb;
  gboolean same;

  fail_unless (gst_buffer_map (a, &ma, GST_MAP_READ));
  fail_unless (gst_buffer_map (b, &mb, GST_MAP_READ));
  same = ma.size == mb.size && memcmp (ma.data, mb.data, ma.size) == 0;
  gst_buffer_unmap (a, &ma);
  gst_buffer_unmap (b, &mb);
  return same;
}

/* the last frame sent upstream is the clip's last frame pushed, and says
 * which clip and stream frame it is */
static void
check_last_frame (GstEvent *ev, GPtrArray *frames, guint64 clip)
{
  const GstStructure *s;
  GstBuffer *last = g_ptr_array_index (frames, frames->len - 1), *sent = NULL;
  guint64 got_clip = G_MAXUINT64, frame = G_MAXUINT64;

  fail_unless (ev != NULL, "no ovi-last-frame event upstream");
  s = gst_event_get_structure (ev);
  fail_unless (gst_structure_get (s, "clip", G_TYPE_UINT64, &got_clip, "frame",
                                  G_TYPE_UINT64, &frame, "buffer",
                                  GST_TYPE_BUFFER, &sent, NULL));
  fail_unless_equals_uint64 (got_clip, clip);
  fail_unless_equals_uint64 (frame, GST_BUFFER_OFFSET (last));
  fail_unless (same_bytes (sent, last), "the frame sent back is not the last "
                                        "one pushed");
  gst_buffer_unref (sent);
  gst_event_unref (ev);
}

/* the harness's downstream answers the ovi-last-frame query as ovivaedec
 * does, and tells the test that ovidenoise asked (it waits next) */
static GstPadProbeReturn
answer_last_frame_query (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  GstQuery *q = GST_PAD_PROBE_INFO_QUERY (info);
  const GstStructure *s = gst_query_get_structure (q);

  if (GST_QUERY_TYPE (q) != GST_QUERY_CUSTOM || !s
      || !gst_structure_has_name (s, "ovi-last-frame"))
    return GST_PAD_PROBE_OK;
  g_atomic_int_inc ((gint *) data);
  return GST_PAD_PROBE_HANDLED; /* answered TRUE */
}

static void
keep_image (GstElement *denoise, guint64 clip, gint width, gint height,
            GstBuffer *image, gpointer data)
{
  gst_buffer_replace ((GstBuffer **) data, image);
}

/* an ovi-last-frame event for `clip`: a WxH RGB frame of a gradient */
static GstEvent *
last_frame_event (guint64 clip, gint width, gint height, GstBuffer **frame)
{
  GstVideoInfo info;
  GstCaps *caps;
  GstMapInfo m;
  GstEvent *ev;
  gsize i;

  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_RGB, width, height);
  GST_VIDEO_INFO_FPS_N (&info) = 24;
  *frame = gst_buffer_new_allocate (NULL, info.size, NULL);
  gst_buffer_map (*frame, &m, GST_MAP_WRITE);
  for (i = 0; i < m.size; i++)
    m.data[i] = (guint8) (i * 7 % 251);
  gst_buffer_unmap (*frame, &m);
  caps = gst_video_info_to_caps (&info);
  ev = gst_event_new_custom (
      GST_EVENT_CUSTOM_UPSTREAM,
      gst_structure_new ("ovi-last-frame", "clip", G_TYPE_UINT64, clip, "frame",
                         G_TYPE_UINT64, (guint64) 0, "caps", GST_TYPE_CAPS,
                         caps, "buffer", GST_TYPE_BUFFER, *frame, NULL));
  gst_caps_unref (caps);
  return ev;
}

/* the conditioning image [3, H, W] F32 in [-1, 1] is `frame` (packed RGB) */
static void
check_image_is_frame (GstBuffer *image, GstBuffer *frame, gint width,
                      gint height)
{
  GstMapInfo mi, mf;
  gint c, i, bad = 0;

  fail_unless (image != NULL, "no continuation-image");
  gst_buffer_map (image, &mi, GST_MAP_READ);
  gst_buffer_map (frame, &mf, GST_MAP_READ);
  fail_unless_equals_int (mi.size, 3 * width * height * sizeof (float));
  for (c = 0; c < 3; c++)
    for (i = 0; i < width * height; i++) {
      float v = ((const float *) mi.data)[c * width * height + i];
      bad += (gint) lrintf ((v + 1.0f) * 127.5f) != mf.data[3 * i + c];
    }
  gst_buffer_unmap (image, &mi);
  gst_buffer_unmap (frame, &mf);
  fail_unless_equals_int (bad, 0);
}

static guint
shared_frames (GstBuffer *latent)
{
  GstCustomMeta *meta = gst_buffer_get_custom_meta (latent, "GstOviClipMeta");
  guint shared = G_MAXUINT;

  fail_unless (meta != NULL);
  fail_unless (gst_structure_get_uint (gst_custom_meta_get_structure (meta),
                                       "shared-frames", &shared));
  return shared;
}

/* ovidenoise continuation=last-frame alone: the clip after the first waits
 * for the last frame, a flush ends the wait (FLUSHING, no hang) and the
 * clip after a flush starts anew; the frame sent back becomes the
 * conditioning image, and the continued latent's frames follow the previous
 * ones with its first marked as shown (shared-frames). */
GST_START_TEST (test_denoise_continuation_waits)
{
  GstHarness *h = gst_harness_new_with_padnames ("ovidenoise", "sink", "src");
  g_autofree gchar *caps = text_caps ();
  const gint w = tiny->default_width, ht = tiny->default_height;
  GstBuffer *image = NULL, *frame = NULL, *b;
  PushData d = { h, GST_FLOW_OK };
  GstSegment seg;
  GThread *thread;
  gint asked = 0;
  guint64 end;

  gst_util_set_object_arg (G_OBJECT (h->element), "continuation", "last-frame");
  g_object_set (h->element, "steps", 1, NULL);
  g_signal_connect (h->element, "continuation-image", G_CALLBACK (keep_image),
                    &image);
  gst_pad_add_probe (h->sinkpad, GST_PAD_PROBE_TYPE_QUERY_DOWNSTREAM,
                     answer_last_frame_query, &asked, NULL);
  gst_harness_set_src_caps_str (h, caps);
  fail_unless_equals_int (
      gst_harness_push (h, make_text_buffer (tiny->text_dim, 50)), GST_FLOW_OK);
  gst_buffer_unref (gst_harness_pull (h));

  /* nothing sends the last frame: the next clip waits until the flush */
  thread = g_thread_new ("push", push_thread, &d);
  while (!g_atomic_int_get (&asked))
    g_thread_yield ();
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_start ()));
  g_thread_join (thread);
  fail_unless_equals_int (d.ret, GST_FLOW_FLUSHING);
  fail_unless (gst_harness_try_pull (h) == NULL);
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_stop (TRUE)));
  gst_segment_init (&seg, GST_FORMAT_TIME);
  fail_unless (gst_harness_push_event (h, gst_event_new_segment (&seg)));

  /* after the flush: a clip of its own, nothing waited for */
  fail_unless_equals_int (
      gst_harness_push (h, make_text_buffer (tiny->text_dim, 51)), GST_FLOW_OK);
  b = gst_harness_pull (h);
  fail_unless_equals_int (shared_frames (b), 0);
  fail_unless (image == NULL);
  end = GST_BUFFER_OFFSET_END (b);
  gst_buffer_unref (b);

  /* that clip's last frame (clip 1: the flushed one never went out) comes
   * back: the next clip starts from it, one frame shorter */
  fail_unless (
      gst_harness_push_upstream_event (h, last_frame_event (1, w, ht, &frame)));
  fail_unless_equals_int (
      gst_harness_push (h, make_text_buffer (tiny->text_dim, 52)), GST_FLOW_OK);
  b = gst_harness_pull (h);
  fail_unless_equals_int (shared_frames (b), 1);
  fail_unless_equals_uint64 (GST_BUFFER_OFFSET (b), end);
  fail_unless_equals_uint64 (GST_BUFFER_OFFSET_END (b),
                             end + tiny->pixel_frames - 1);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (b), gst_ovi_frame_time (end));
  check_image_is_frame (image, frame, w, ht);
  gst_buffer_unref (b);
  gst_buffer_unref (frame);
  gst_buffer_unref (image);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* A continued clip: ovivaedec drops its first frame (shown already as the
 * previous clip's last) and stamps the rest from the latent's offset; the
 * frames are the clip's others, and the last one goes back upstream. */
GST_START_TEST (test_vaedec_continued_clip)
{
  GstCaps *caps = NULL;
  GstBuffer *latent = make_latent (&caps);
  const guint frames = tiny->pixel_frames, start = 2 * frames - 1;
  GPtrArray *plain, *cont;
  GstEvent *ev_plain, *ev_cont;
  guint k;

  plain = decode_latent ("ovivaedec", "video/x-raw,format=RGB", caps,
                         gst_buffer_ref (latent), &ev_plain);
  cont = decode_latent ("ovivaedec", "video/x-raw,format=RGB", caps,
                        as_continued (latent, start), &ev_cont);
  fail_unless_equals_int (plain->len, frames);
  fail_unless_equals_int (cont->len, frames - 1);
  for (k = 0; k < cont->len; k++) {
    GstBuffer *b = g_ptr_array_index (cont, k);
    fail_unless_equals_uint64 (GST_BUFFER_OFFSET (b), start + k);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (b),
                               gst_ovi_frame_time (start + k));
    fail_unless (same_bytes (b, g_ptr_array_index (plain, k + 1)),
                 "continued frame %u is not the clip's frame %u", k, k + 1);
  }
  check_last_frame (ev_plain, plain, 0);
  check_last_frame (ev_cont, cont, 5);
  g_ptr_array_unref (plain);
  g_ptr_array_unref (cont);
  gst_buffer_unref (latent);
  gst_caps_unref (caps);
}

GST_END_TEST;

/* the samples of `bufs` by stream sample index (OFFSET) */
static GHashTable *
samples_by_index (GPtrArray *bufs, guint64 *start, guint64 *end)
{
  GHashTable *t
      = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, g_free);
  guint i;

  *start = GST_BUFFER_OFFSET ((GstBuffer *) g_ptr_array_index (bufs, 0));
  *end = *start;
  for (i = 0; i < bufs->len; i++) {
    GstBuffer *b = g_ptr_array_index (bufs, i);
    GstMapInfo m;
    guint64 n;
    fail_unless_equals_uint64 (GST_BUFFER_OFFSET (b), *end);
    gst_buffer_map (b, &m, GST_MAP_READ);
    for (n = 0; n < m.size / 4; n++) {
      gint64 *key = g_new (gint64, 1);
      *key = (gint64) (*end + n);
      g_hash_table_insert (t, key, g_memdup2 (m.data + 4 * n, 4));
    }
    *end += m.size / 4;
    gst_buffer_unmap (b, &m);
  }
  return t;
}

/* A continued clip's audio: oviaudiodec drops the samples under the shared
 * frame, so every sample it pushes equals the one the whole clip, placed
 * with its first frame on the shared one, has at the same stream index;
 * and the clip ends on the grid of docs/av-sync.md. */
GST_START_TEST (test_audiodec_continued_clip)
{
  GstCaps *caps = NULL;
  GstBuffer *latent = make_latent (&caps), *whole;
  const guint frames = tiny->pixel_frames, start = 2 * frames - 1;
  GPtrArray *plain, *cont;
  GHashTable *p, *c;
  GHashTableIter it;
  gpointer key, value;
  GstEvent *ev;
  guint64 p0, p1, c0, c1;

  whole = gst_buffer_copy (latent);
  GST_BUFFER_OFFSET (whole) = start - 1;
  GST_BUFFER_OFFSET_END (whole) = start - 1 + frames;
  plain = decode_latent ("oviaudiodec", NULL, caps, whole, &ev);
  cont = decode_latent ("oviaudiodec", NULL, caps, as_continued (latent, start),
                        &ev);
  p = samples_by_index (plain, &p0, &p1);
  c = samples_by_index (cont, &c0, &c1);
  fail_unless_equals_uint64 (c0, ovi_clip_audio_start (start, 1));
  fail_unless_equals_uint64 (c1, ovi_clip_audio_start (start + frames - 1, 1));
  fail_unless_equals_uint64 (p1, c1);
  fail_unless (p0 < c0);
  g_hash_table_iter_init (&it, c);
  while (g_hash_table_iter_next (&it, &key, &value)) {
    const float *want = g_hash_table_lookup (p, key);
    fail_unless (want != NULL);
    fail_unless (memcmp (want, value, 4) == 0,
                 "sample %" G_GINT64_FORMAT ": %g, the whole clip has %g",
                 *(gint64 *) key, *(float *) value, *want);
  }
  g_hash_table_unref (p);
  g_hash_table_unref (c);
  g_ptr_array_unref (plain);
  g_ptr_array_unref (cont);
  gst_buffer_unref (latent);
  gst_caps_unref (caps);
}

GST_END_TEST;

/* runs `desc` to EOS or an error; returns the error (or NULL) and the
 * clips of the ovi-continuation messages */
static GError *
run_continuation (const gchar *desc, GArray *continued)
{
  GstElement *pipe = gst_parse_launch (desc, NULL);
  GstBus *bus = gst_element_get_bus (pipe);
  GError *err = NULL;
  GstMessage *msg;
  gboolean done = FALSE;

  fail_unless (pipe != NULL);
  gst_element_set_state (pipe, GST_STATE_PLAYING);
  while (!done) {
    msg = gst_bus_timed_pop_filtered (bus, 120 * GST_SECOND,
                                      GST_MESSAGE_EOS | GST_MESSAGE_ERROR
                                          | GST_MESSAGE_ELEMENT);
    fail_unless (msg != NULL, "neither EOS nor an error: a hang");
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR)
      gst_message_parse_error (msg, &err, NULL);
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ELEMENT
        && gst_message_has_name (msg, "ovi-continuation")) {
      guint64 clip = 0;
      gst_structure_get_uint64 (gst_message_get_structure (msg), "clip", &clip);
      g_array_append_val (continued, clip);
    }
    done = GST_MESSAGE_TYPE (msg) != GST_MESSAGE_ELEMENT;
    gst_message_unref (msg);
  }
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (pipe);
  return err;
}

/* no ovivaedec downstream to send the last frame back: an error naming
 * the cause, not a wait for ever */
GST_START_TEST (test_continuation_without_decoder)
{
  GArray *continued = g_array_new (FALSE, FALSE, sizeof (guint64));
  GError *err = run_continuation (
      "ovitextsrc num-clips=2 prompt=\"A cat.\" ! ovidenoise steps=1 "
      "continuation=last-frame ! oviaudiodec ! fakesink",
      continued);

  fail_unless (err != NULL, "no error without ovivaedec");
  fail_unless (strstr (err->message, "continuation=last-frame") != NULL
                   && strstr (err->message, "ovivaedec") != NULL,
               "%s", err->message);
  fail_unless_equals_int (continued->len, 0);
  g_error_free (err);
  g_array_unref (continued);
}

GST_END_TEST;

/* a prompt-file line's "continuation": "none" starts its clip anew (a
 * cut), the next line continues again */
GST_START_TEST (test_continuation_prompt_file)
{
  g_autofree gchar *path = NULL, *desc = NULL;
  GArray *continued = g_array_new (FALSE, FALSE, sizeof (guint64));
  GError *err = NULL;
  gint fd = g_file_open_tmp ("ovi-cont-XXXXXX.txt", &path, NULL);

  fail_unless (fd >= 0);
  close (fd);
  fail_unless (g_file_set_contents (
      path,
      "A first scene.\n"
      "{\"prompt\": \"A cut.\", \"continuation\": \"none\"}\n"
      "The cut goes on.\n",
      -1, NULL));
  desc = g_strdup_printf (
      "ovitextsrc location=%s ! ovidenoise steps=1 continuation=last-frame "
      "! tee name=t t. ! queue ! ovivaedec ! fakesink "
      "t. ! queue ! oviaudiodec ! fakesink",
      path);
  err = run_continuation (desc, continued);
  fail_unless (err == NULL, "%s", err ? err->message : "");
  fail_unless_equals_int (continued->len, 1);
  fail_unless_equals_uint64 (g_array_index (continued, guint64, 0), 2);
  g_unlink (path);
  g_array_unref (continued);
}

GST_END_TEST;

static Suite *
elements_suite (void)
{
  Suite *s = suite_create ("ovi-elements");
  TCase *tc = tcase_create ("general");

  tiny = ovi_model_preset_lookup ("tiny", NULL);
  g_assert (tiny != NULL);
  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 300);
  tcase_add_test (tc, test_registration);
  tcase_add_test (tc, test_denoise_caps_timestamps);
  tcase_add_test (tc, test_denoise_seed_and_overrides);
  tcase_add_test (tc, test_denoise_progress);
  tcase_add_test (tc, test_denoise_flush_cancels);
  tcase_add_test (tc, test_denoise_shared_stage_flush);
  tcase_add_test (tc, test_denoise_late_image_pad);
  tcase_add_test (tc, test_denoise_latency);
  tcase_add_test (tc, test_decoders_latency);
  tcase_add_test (tc, test_error_missing_model_dir);
  tcase_add_test (tc, test_error_bad_weights);
  tcase_add_test (tc, test_error_gpu_only_mode);
  tcase_add_test (tc, test_error_bad_input);
  tcase_add_test (tc, test_vaedec_formats);
  tcase_add_test (tc, test_vaedec_pool_renegotiation);
  tcase_add_test (tc, test_audiodec_av_rule);
  tcase_add_test (tc, test_audiodec_pool);
  tcase_add_test (tc, test_engine_shared);
  tcase_add_test (tc, test_denoise_continuation_waits);
  tcase_add_test (tc, test_vaedec_continued_clip);
  tcase_add_test (tc, test_audiodec_continued_clip);
  tcase_add_test (tc, test_continuation_without_decoder);
  tcase_add_test (tc, test_continuation_prompt_file);
  return s;
}

GST_CHECK_MAIN (elements);
