/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of the ovi plugin's pure helpers: timestamps, the A/V rule,
 * and prompt-file parsing. */
#include <gst/check/gstcheck.h>
#include <glib/gstdio.h>
#include <math.h>

#include "gstovienums.h"
#include "gstoviutil.h"
#include "ovi-engine.h"

GST_START_TEST (test_frame_times)
{
  guint64 f;

  fail_unless_equals_int (gst_ovi_video_frames_for_latent (31), 121);
  fail_unless_equals_int (gst_ovi_video_frames_for_latent (61), 241);
  fail_unless_equals_int (gst_ovi_video_frames_for_latent (1), 1);
  fail_unless_equals_uint64 (gst_ovi_frame_time (0), 0);
  fail_unless_equals_uint64 (gst_ovi_frame_time (24), GST_SECOND);
  fail_unless_equals_uint64 (gst_ovi_frame_time (1), 41666666);
  fail_unless_equals_uint64 (gst_ovi_frame_time (121), 5041666666);
  /* no gaps, no overlaps, monotonic, durations of 41 or 42 ms */
  for (f = 0; f < 10000; f++) {
    GstClockTime d = gst_ovi_frame_time (f + 1) - gst_ovi_frame_time (f);
    fail_unless (d == 41666666 || d == 41666667);
  }
}

GST_END_TEST;

/* oviaudiodec takes the A/V rule from the engine (docs/av-sync.md): a clip
 * of frames [first, first + n) carries the samples between
 * ovi_clip_audio_start (first, 1) and ovi_clip_audio_start (first + n, 1). */
static guint64
clip_samples (guint64 first_frame, guint n_frames)
{
  return ovi_clip_audio_start (first_frame + n_frames, 1)
         - ovi_clip_audio_start (first_frame, 1);
}

GST_START_TEST (test_av_rule)
{
  guint64 frame0 = 0, samples = 0;
  guint k;

  /* one 5 s clip: 121 frames = 5.041666 s = 80666.67 samples */
  fail_unless_equals_uint64 (clip_samples (0, 121), 80667);
  fail_unless_equals_uint64 (clip_samples (121, 121), 80666);
  fail_unless_equals_uint64 (clip_samples (242, 121), 80667);
  /* many clips: audio total tracks video total to within half a sample */
  for (k = 0; k < 1000; k++) {
    guint n = (k % 3 == 2) ? 241 : 121;
    samples += clip_samples (frame0, n);
    frame0 += n;
    {
      double vt = (double) frame0 / 24.0;
      double at = (double) samples / 16000.0;
      fail_unless (fabs (vt - at) <= 0.5 / 16000.0, "clip %u: %f vs %f", k, vt,
                   at);
    }
  }
  fail_unless_equals_uint64 (ovi_clip_audio_start (24, 1), 16000);
}

GST_END_TEST;

GST_START_TEST (test_av_rule_matches_engine)
{
  /* the one-frame form the element uses is the engine's per-clip rule */
  const gint64 lengths[] = { 121, 241, 9 };
  guint i;
  gint64 k;

  for (i = 0; i < G_N_ELEMENTS (lengths); i++)
    for (k = 0; k < 2000; k++) {
      fail_unless_equals_uint64 (clip_samples (k * lengths[i], lengths[i]),
                                 ovi_clip_audio_samples (k, lengths[i]));
      fail_unless_equals_uint64 (ovi_clip_audio_start (k * lengths[i], 1),
                                 ovi_clip_audio_start (k, lengths[i]));
    }
}

GST_END_TEST;

GST_START_TEST (test_prompt_file)
{
  g_autoptr (GError) err = NULL;
  g_autoptr (GPtrArray) a = NULL;
  GstOviPromptEntry *e;
  guint64 seed = 0;
  gint steps = 0;
  const gchar *text
      = "# a comment\n"
        "A chef flips a pancake. <S>Breakfast!<E>\n"
        "\n"
        "  {\"prompt\": \"A cat\", \"seed\": 7, \"video_negative_prompt\": "
        "\"blur\", \"steps\": 3}  \n"
        "{\"text_prompt\": \"A dog\", \"solver\": \"euler\", \"shift\": 3}\n";

  a = gst_ovi_parse_prompts (text, "p.txt", &err);
  fail_unless (a != NULL, "%s", err ? err->message : "");
  fail_unless_equals_int (a->len, 3);
  e = g_ptr_array_index (a, 0);
  fail_unless_equals_string (e->prompt,
                             "A chef flips a pancake. <S>Breakfast!<E>");
  fail_unless (e->overrides == NULL);
  e = g_ptr_array_index (a, 1);
  fail_unless_equals_string (e->prompt, "A cat");
  fail_unless_equals_string (e->video_negative_prompt, "blur");
  fail_unless (e->audio_negative_prompt == NULL);
  fail_unless (gst_structure_get_uint64 (e->overrides, "seed", &seed));
  fail_unless_equals_uint64 (seed, 7);
  fail_unless (gst_structure_get_int (e->overrides, "steps", &steps));
  fail_unless_equals_int (steps, 3);
  e = g_ptr_array_index (a, 2);
  fail_unless_equals_string (e->prompt, "A dog");
  fail_unless_equals_string (gst_structure_get_string (e->overrides, "solver"),
                             "euler");

  /* errors name the file and the line */
  g_clear_pointer (&a, g_ptr_array_unref);
  a = gst_ovi_parse_prompts ("ok\n{\"prompt\": \"x\", \"sed\": 1}\n", "q.txt",
                             &err);
  fail_unless (a == NULL);
  fail_unless (strstr (err->message, "q.txt:2") != NULL, "%s", err->message);
  fail_unless (strstr (err->message, "sed") != NULL);
  g_clear_error (&err);
  a = gst_ovi_parse_prompts ("{\"prompt\": \"x\", \"steps\": 0}\n", "q.txt",
                             &err);
  fail_unless (a == NULL);
  fail_unless (strstr (err->message, "steps") != NULL);
  g_clear_error (&err);
  a = gst_ovi_parse_prompts ("{\"prompt\": \n", "q.txt", &err);
  fail_unless (a == NULL);
  fail_unless (strstr (err->message, "q.txt:1") != NULL);
  g_clear_error (&err);
  a = gst_ovi_parse_prompts ("{\"seed\": 3}\n", "q.txt", &err);
  fail_unless (a == NULL);
  fail_unless (strstr (err->message, "prompt") != NULL);
  g_clear_error (&err);
  a = gst_ovi_parse_prompts ("\n# only\n", "q.txt", &err);
  fail_unless (a == NULL);
  g_clear_error (&err);
  a = gst_ovi_load_prompt_file ("/nonexistent/prompts.txt", &err);
  fail_unless (a == NULL);
  fail_unless (strstr (err->message, "/nonexistent/prompts.txt") != NULL);
}

GST_END_TEST;

GST_START_TEST (test_enums)
{
  fail_unless_equals_string (
      gst_ovi_enum_nick (GST_TYPE_OVI_VRAM_MODE, GST_OVI_VRAM_MODE_FP8_OFFLOAD),
      "fp8-offload");
  fail_unless_equals_string (
      gst_ovi_enum_nick (GST_TYPE_OVI_GPU_ALLOCATION,
                         GST_OVI_GPU_ALLOCATION_CFG_PARALLEL),
      "cfg-parallel");
  fail_unless_equals_string (gst_ovi_model_variant (GST_OVI_MODEL_960X960_10S),
                             "960x960_10s");
  fail_unless (gst_ovi_model_variant (GST_OVI_MODEL_AUTO) == NULL);
  fail_unless (!gst_ovi_vram_mode_needs_gpu (GST_OVI_VRAM_MODE_AUTO));
  fail_unless (gst_ovi_vram_mode_needs_gpu (GST_OVI_VRAM_MODE_ULTRA_LOW));
}

GST_END_TEST;

static Suite *
util_suite (void)
{
  Suite *s = suite_create ("ovi-util");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_frame_times);
  tcase_add_test (tc, test_av_rule);
  tcase_add_test (tc, test_av_rule_matches_engine);
  tcase_add_test (tc, test_prompt_file);
  tcase_add_test (tc, test_enums);
  return s;
}

GST_CHECK_MAIN (util);
