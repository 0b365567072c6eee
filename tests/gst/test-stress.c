/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Whole-pipeline tests with ovitextsrc and the tiny model on the CPU:
 * three clips in a row stay in sync, NULL mid-denoise stops within a step,
 * 200 NULL->PLAYING->NULL cycles do not grow memory, ovitextsrc's prompt
 * sources (file, action signal, property) and its errors. */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>

#include "gstoviutil.h"
#include "ovi-engine.h"
#include "ovi-presets.h"

static const OviModelPreset *tiny;

typedef struct {
  GMutex lock;
  GArray *video_pts; /* GstClockTime */
  GArray *audio;     /* guint64 triples: offset, pts, n */
} Collect;

static GstPadProbeReturn
video_probe (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  Collect *c = user_data;
  GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER (info);
  GstClockTime pts = GST_BUFFER_PTS (b);
  g_mutex_lock (&c->lock);
  g_array_append_val (c->video_pts, pts);
  g_mutex_unlock (&c->lock);
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
audio_probe (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  Collect *c = user_data;
  GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER (info);
  guint64 t[3] = { GST_BUFFER_OFFSET (b), GST_BUFFER_PTS (b),
                   gst_buffer_get_size (b) / 4 };
  g_mutex_lock (&c->lock);
  g_array_append_vals (c->audio, t, 3);
  g_mutex_unlock (&c->lock);
  return GST_PAD_PROBE_OK;
}

static void
probe_sink (GstElement *pipe, const gchar *name, GstPadProbeCallback cb,
            gpointer data)
{
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipe), name);
  GstPad *pad = gst_element_get_static_pad (sink, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, cb, data, NULL);
  gst_object_unref (pad);
  gst_object_unref (sink);
}

static GstMessage *
run_to_end (GstElement *pipe)
{
  GstBus *bus = gst_element_get_bus (pipe);
  GstMessage *msg;
  fail_unless (gst_element_set_state (pipe, GST_STATE_PLAYING)
               != GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_timed_pop_filtered (bus, 120 * GST_SECOND,
                                    GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  gst_object_unref (bus);
  return msg;
}

static void
check_sync (GstElement *pipe, guint clips)
{
  Collect c;
  GstMessage *msg;
  guint frames = tiny->pixel_frames, k, i;
  guint64 next = 0, total;

  g_mutex_init (&c.lock);
  c.video_pts = g_array_new (FALSE, FALSE, sizeof (GstClockTime));
  c.audio = g_array_new (FALSE, FALSE, sizeof (guint64));
  probe_sink (pipe, "v", video_probe, &c);
  probe_sink (pipe, "a", audio_probe, &c);
  msg = run_to_end (pipe);
  fail_unless (msg && GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS);
  gst_message_unref (msg);
  gst_element_set_state (pipe, GST_STATE_NULL);

  fail_unless_equals_int (c.video_pts->len, clips * frames);
  for (i = 0; i < c.video_pts->len; i++)
    fail_unless_equals_uint64 (g_array_index (c.video_pts, GstClockTime, i),
                               gst_ovi_frame_time (i));
  for (i = 0; i < c.audio->len; i += 3) {
    guint64 off = g_array_index (c.audio, guint64, i);
    fail_unless_equals_uint64 (off, next);
    fail_unless_equals_uint64 (g_array_index (c.audio, guint64, i + 1),
                               gst_util_uint64_scale (off, GST_SECOND, 16000));
    next += g_array_index (c.audio, guint64, i + 2);
  }
  total = ovi_clip_audio_start (clips, frames);
  fail_unless_equals_uint64 (next, total);
  /* every clip: the audio starts where its first frame does */
  for (k = 0; k < clips; k++) {
    guint64 s = ovi_clip_audio_start (k, frames);
    gboolean found = FALSE;
    for (i = 0; i < c.audio->len; i += 3) {
      if (g_array_index (c.audio, guint64, i) == s) {
        GstClockTimeDiff d = GST_CLOCK_DIFF (
            g_array_index (c.video_pts, GstClockTime, k * frames),
            g_array_index (c.audio, guint64, i + 1));
        fail_unless (ABS (d) <= GST_SECOND / 32000,
                     "clip %u: A/V %" G_GINT64_FORMAT " ns apart", k, d);
        found = TRUE;
      }
    }
    fail_unless (found, "no audio buffer starts clip %u", k);
  }
  g_array_unref (c.video_pts);
  g_array_unref (c.audio);
  g_mutex_clear (&c.lock);
}

#define PIPE_TAIL                                                              \
  "! tee name=t t. ! queue ! ovivaedec ! fakesink name=v "                     \
  "sync=false t. ! queue ! oviaudiodec ! fakesink name=a sync=false"

GST_START_TEST (test_three_clips_in_sync)
{
  GstElement *pipe = gst_parse_launch (
      "ovitextsrc num-clips=3 "
      "prompt=\"A cat plays piano. <AUDCAP>piano<ENDAUDCAP>\" ! "
      "ovidenoise steps=1 " PIPE_TAIL,
      NULL);
  fail_unless (pipe != NULL);
  check_sync (pipe, 3);
  gst_object_unref (pipe);
}

GST_END_TEST;

GST_START_TEST (test_prompt_file)
{
  g_autofree gchar *dir = g_dir_make_tmp ("ovi-prompts-XXXXXX", NULL);
  g_autofree gchar *path = g_build_filename (dir, "p.txt", NULL);
  g_autofree gchar *desc = NULL;
  GstElement *pipe;

  fail_unless (g_file_set_contents (
      path,
      "A cat.\n# skip\n\n"
      "{\"prompt\": \"A dog.\", \"seed\": 3, \"steps\": 1}\n",
      -1, NULL));
  desc = g_strdup_printf (
      "ovitextsrc location=%s ! ovidenoise steps=1 " PIPE_TAIL, path);
  pipe = gst_parse_launch (desc, NULL);
  check_sync (pipe, 2);
  gst_object_unref (pipe);
  g_unlink (path);
  g_rmdir (dir);
}

GST_END_TEST;

GST_START_TEST (test_push_prompt_signal)
{
  GstElement *pipe = gst_parse_launch ("ovitextsrc name=src ! "
                                       "ovidenoise steps=1 " PIPE_TAIL,
                                       NULL);
  GstElement *src = gst_bin_get_by_name (GST_BIN (pipe), "src");

  /* prompts queued by the application, then the end of the stream */
  g_signal_emit_by_name (src, "push-prompt", "A first clip.");
  g_signal_emit_by_name (src, "push-prompt",
                         "{\"prompt\": \"A second.\", "
                         "\"seed\": 9}");
  g_signal_emit_by_name (src, "end-of-stream");
  check_sync (pipe, 2);
  gst_object_unref (src);
  gst_object_unref (pipe);
}

GST_END_TEST;

/* a live source skips a malformed pushed prompt with a WARNING naming it
 * and goes on with the next one */
GST_START_TEST (test_push_prompt_malformed)
{
  GstHarness *h = gst_harness_new ("ovitextsrc");
  const gchar *bad = "{\"prompt\": \"A broken line.\", \"seed\": }";
  GstBus *bus = gst_bus_new ();
  GstCustomMeta *meta;
  GstMessage *msg;
  GstBuffer *b;
  GError *err = NULL;
  GstEvent *ev;

  gst_element_set_bus (h->element, bus);
  g_object_set (h->element, "is-live", TRUE, NULL);
  gst_harness_play (h);
  g_signal_emit_by_name (h->element, "push-prompt", bad);
  g_signal_emit_by_name (h->element, "push-prompt", "A good clip.");
  g_signal_emit_by_name (h->element, "end-of-stream");
  b = gst_harness_pull (h);
  fail_unless (b != NULL);
  meta = gst_buffer_get_custom_meta (b, "GstOviClipMeta");
  fail_unless (meta != NULL);
  fail_unless_equals_string (
      gst_structure_get_string (gst_custom_meta_get_structure (meta), "prompt"),
      "A good clip.");
  gst_buffer_unref (b);
  while ((ev = gst_harness_pull_event (h))) {
    gboolean eos = GST_EVENT_TYPE (ev) == GST_EVENT_EOS;
    gst_event_unref (ev);
    if (eos)
      break;
  }
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_WARNING);
  fail_unless (msg != NULL);
  gst_message_parse_warning (msg, &err, NULL);
  fail_unless (strstr (err->message, bad) != NULL, "%s", err->message);
  g_error_free (err);
  gst_message_unref (msg);
  fail_unless (gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR) == NULL);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_textsrc_harness)
{
  GstHarness *h = gst_harness_new ("ovitextsrc");
  GstBuffer *b;
  GstCaps *caps;
  GstCustomMeta *meta;
  GstEvent *ev;
  gint dim = 0;
  guint i;

  g_object_set (h->element, "num-clips", 2, "prompt", "A harness clip.", NULL);
  gst_harness_play (h);
  for (i = 0; i < 2; i++) {
    b = gst_harness_pull (h);
    fail_unless (b != NULL);
    if (i == 0) {
      caps = gst_pad_get_current_caps (h->sinkpad);
      fail_unless (gst_structure_has_name (gst_caps_get_structure (caps, 0),
                                           "application/x-ovi-text"));
      fail_unless (gst_structure_get_int (gst_caps_get_structure (caps, 0),
                                          "dim", &dim));
      fail_unless_equals_int (dim, tiny->text_dim);
      gst_caps_unref (caps);
    }
    /* prompt, video negative, audio negative: whole rows of dim floats */
    fail_unless_equals_int (gst_buffer_n_memory (b), 3);
    fail_unless (
        gst_memory_get_sizes (gst_buffer_peek_memory (b, 0), NULL, NULL)
            % (dim * 4)
        == 0);
    fail_unless_equals_uint64 (GST_BUFFER_OFFSET (b), i);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (b),
                               gst_ovi_frame_time (i * tiny->pixel_frames));
    meta = gst_buffer_get_custom_meta (b, "GstOviClipMeta");
    fail_unless (meta != NULL);
    fail_unless_equals_string (
        gst_structure_get_string (gst_custom_meta_get_structure (meta),
                                  "prompt"),
        "A harness clip.");
    gst_buffer_unref (b);
  }
  /* then EOS (blocking pull: the source runs its own thread) */
  while ((ev = gst_harness_pull_event (h))) {
    GstEventType t = GST_EVENT_TYPE (ev);
    gst_event_unref (ev);
    if (t == GST_EVENT_EOS)
      break;
  }
  fail_unless (ev != NULL);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_textsrc_errors)
{
  GstElement *pipe
      = gst_parse_launch ("ovitextsrc "
                          "location=/nonexistent/prompts.txt ! fakesink",
                          NULL);
  GstBus *bus = gst_element_get_bus (pipe);
  GstMessage *msg;
  GError *err = NULL;

  gst_element_set_state (pipe, GST_STATE_PLAYING);
  msg = gst_bus_timed_pop_filtered (bus, 30 * GST_SECOND, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  gst_message_parse_error (msg, &err, NULL);
  fail_unless (strstr (err->message, "/nonexistent/prompts.txt") != NULL, "%s",
               err->message);
  g_error_free (err);
  gst_message_unref (msg);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (pipe);
}

GST_END_TEST;

GST_START_TEST (test_null_mid_denoise)
{
  GstElement *pipe = gst_parse_launch ("ovitextsrc prompt=\"A long one.\" ! "
                                       "ovidenoise steps=1000 ! fakesink",
                                       NULL);
  GstBus *bus = gst_element_get_bus (pipe);
  gint64 t_prev = 0, t_step = 0, t0, dt;
  gint n = 0;
  gboolean saw_load_start = FALSE, saw_load_end = FALSE;

  gst_element_set_state (pipe, GST_STATE_PLAYING);
  while (n < 3) {
    GstMessage *msg = gst_bus_timed_pop_filtered (
        bus, 60 * GST_SECOND,
        GST_MESSAGE_ELEMENT | GST_MESSAGE_PROGRESS | GST_MESSAGE_ERROR);
    fail_unless (msg != NULL);
    fail_if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR);
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_PROGRESS) {
      GstProgressType type;
      gst_message_parse_progress (msg, &type, NULL, NULL);
      saw_load_start |= type == GST_PROGRESS_TYPE_START;
      saw_load_end |= type == GST_PROGRESS_TYPE_COMPLETE;
    } else if (gst_structure_has_name (gst_message_get_structure (msg),
                                       "ovi-progress")) {
      gint64 now = g_get_monotonic_time ();
      if (t_prev)
        t_step = MAX (t_step, now - t_prev);
      t_prev = now;
      n++;
    }
    gst_message_unref (msg);
  }
  /* loading was announced and closed */
  fail_unless (saw_load_start && saw_load_end);
  t0 = g_get_monotonic_time ();
  fail_unless_equals_int (gst_element_set_state (pipe, GST_STATE_NULL),
                          GST_STATE_CHANGE_SUCCESS);
  dt = g_get_monotonic_time () - t0;
  GST_INFO ("NULL took %" G_GINT64_FORMAT " us, one step %" G_GINT64_FORMAT
            " us",
            dt, t_step);
  printf ("NULL mid-denoise: stopped in %.1f ms (one step: %.1f ms)\n",
          dt / 1000.0, t_step / 1000.0);
  fail_unless (dt < 2 * t_step + 500000,
               "NULL took %" G_GINT64_FORMAT " us, one step %" G_GINT64_FORMAT
               " us",
               dt, t_step);
  gst_object_unref (bus);
  gst_object_unref (pipe);
}

GST_END_TEST;

static glong
rss_kb (void)
{
  g_autofree gchar *status = NULL;
  const gchar *p;
  if (!g_file_get_contents ("/proc/self/status", &status, NULL, NULL))
    return -1;
  p = strstr (status, "VmRSS:");
  return p ? atol (p + 6) : -1;
}

GST_START_TEST (test_state_cycles_memory)
{
  GstElement *pipe
      = gst_parse_launch ("ovitextsrc num-clips=1 "
                          "prompt=\"Cycle.\" ! ovidenoise steps=1 " PIPE_TAIL,
                          NULL);
  glong rss_warm = 0, rss_end;
  gint i;

  for (i = 0; i < 200; i++) {
    GstMessage *msg = run_to_end (pipe);
    fail_unless (msg && GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS);
    gst_message_unref (msg);
    fail_unless_equals_int (gst_element_set_state (pipe, GST_STATE_NULL),
                            GST_STATE_CHANGE_SUCCESS);
    if (i == 19)
      rss_warm = rss_kb ();
  }
  rss_end = rss_kb ();
  printf ("RSS after 20 cycles: %ld kB, after 200: %ld kB (%+ld kB)\n",
          rss_warm, rss_end, rss_end - rss_warm);
  /* 180 more cycles (each loads and frees the four stages) may not grow
   * the process by more than 4 MB */
  fail_unless (rss_end - rss_warm < 4096, "RSS grew from %ld to %ld kB",
               rss_warm, rss_end);
  gst_object_unref (pipe);
}

GST_END_TEST;

/* PLAYING until `done` (EOS, or the clip after the first starting from the
 * last frame when `mid_run`), then NULL */
static void
continued_cycle (GstElement *pipe, gboolean mid_run)
{
  GstBus *bus = gst_element_get_bus (pipe);
  GstMessage *msg;
  gboolean done = FALSE;

  fail_unless (gst_element_set_state (pipe, GST_STATE_PLAYING)
               != GST_STATE_CHANGE_FAILURE);
  while (!done
         && (msg = gst_bus_timed_pop_filtered (
                 bus, 120 * GST_SECOND,
                 GST_MESSAGE_EOS | GST_MESSAGE_ERROR | GST_MESSAGE_ELEMENT))) {
    fail_if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR);
    done = GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS
           || (mid_run && gst_message_has_name (msg, "ovi-continuation"));
    gst_message_unref (msg);
  }
  fail_unless (done, "no EOS / ovi-continuation in 120 s");
  fail_unless_equals_int (gst_element_set_state (pipe, GST_STATE_NULL),
                          GST_STATE_CHANGE_SUCCESS);
  gst_object_unref (bus);
}

/* the live continued path (contiguous stamps, each clip after the first
 * waiting for the previous one's last frame sent back upstream) started and
 * stopped again and again, every other run stopped while a continued clip
 * is made: the last frames, events and conditioning images are freed */
GST_START_TEST (test_continued_cycles_memory)
{
  GstElement *pipe = gst_parse_launch (
      "ovitextsrc is-live=true timestamps=contiguous num-clips=2 "
      "prompt=\"Cycle.\" ! ovidenoise steps=1 "
      "continuation=last-frame " PIPE_TAIL,
      NULL);
  glong rss_warm = 0, rss_end;

  for (gint i = 0; i < 120; i++) {
    continued_cycle (pipe, i % 2);
    if (i == 19)
      rss_warm = rss_kb ();
  }
  rss_end = rss_kb ();
  printf ("continued live runs: RSS after 20 cycles: %ld kB, after 120: "
          "%ld kB (%+ld kB)\n",
          rss_warm, rss_end, rss_end - rss_warm);
  fail_unless (rss_end - rss_warm < 4096, "RSS grew from %ld to %ld kB",
               rss_warm, rss_end);
  gst_object_unref (pipe);
}

GST_END_TEST;

static Suite *
stress_suite (void)
{
  Suite *s = suite_create ("ovi-pipelines");
  TCase *tc = tcase_create ("general");

  tiny = ovi_model_preset_lookup ("tiny", NULL);
  g_assert (tiny != NULL);
  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 600);
  tcase_add_test (tc, test_three_clips_in_sync);
  tcase_add_test (tc, test_prompt_file);
  tcase_add_test (tc, test_push_prompt_signal);
  tcase_add_test (tc, test_push_prompt_malformed);
  tcase_add_test (tc, test_textsrc_harness);
  tcase_add_test (tc, test_textsrc_errors);
  tcase_add_test (tc, test_null_mid_denoise);
  tcase_add_test (tc, test_state_cycles_memory);
  tcase_add_test (tc, test_continued_cycles_memory);
  return s;
}

GST_CHECK_MAIN (stress);
