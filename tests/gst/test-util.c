/* Unit tests of the ovi plugin's pure helpers: timestamps, the A/V rule,
 * size snapping, bicubic resize and prompt-file parsing. */
#include <gst/check/gstcheck.h>
#include <glib/gstdio.h>
#include <math.h>

#include "gstovienums.h"
#include "gstoviutil.h"

GST_START_TEST(test_frame_times)
{
  guint64 f;

  fail_unless_equals_int(gst_ovi_video_frames_for_latent(31), 121);
  fail_unless_equals_int(gst_ovi_video_frames_for_latent(61), 241);
  fail_unless_equals_int(gst_ovi_video_frames_for_latent(1), 1);
  fail_unless_equals_uint64(gst_ovi_frame_time(0), 0);
  fail_unless_equals_uint64(gst_ovi_frame_time(24), GST_SECOND);
  fail_unless_equals_uint64(gst_ovi_frame_time(1), 41666666);
  fail_unless_equals_uint64(gst_ovi_frame_time(121), 5041666666);
  /* no gaps, no overlaps, monotonic, durations of 41 or 42 ms */
  for (f = 0; f < 10000; f++) {
    GstClockTime d = gst_ovi_frame_time(f + 1) - gst_ovi_frame_time(f);
    fail_unless(d == 41666666 || d == 41666667);
  }
}

GST_END_TEST;

GST_START_TEST(test_av_rule)
{
  guint64 frame0 = 0, samples = 0;
  guint k;

  /* one 5 s clip: 121 frames = 5.041666 s = 80666.67 samples */
  fail_unless_equals_uint64(gst_ovi_clip_audio_samples(0, 121), 80667);
  fail_unless_equals_uint64(gst_ovi_clip_audio_samples(121, 121), 80666);
  fail_unless_equals_uint64(gst_ovi_clip_audio_samples(242, 121), 80667);
  /* many clips: audio total tracks video total to within half a sample */
  for (k = 0; k < 1000; k++) {
    guint n = (k % 3 == 2) ? 241 : 121;
    samples += gst_ovi_clip_audio_samples(frame0, n);
    frame0 += n;
    {
      double vt = (double) frame0 / 24.0;
      double at = (double) samples / 16000.0;
      fail_unless(fabs(vt - at) <= 0.5 / 16000.0, "clip %u: %f vs %f", k, vt,
                  at);
    }
  }
  fail_unless_equals_uint64(gst_ovi_frame_to_sample(24), 16000);
}

GST_END_TEST;

GST_START_TEST(test_snap)
{
  gint w, h;

  /* the table in ovi-architecture.md §1.3 */
  gst_ovi_snap_size(720, 720, 720 * 720, &w, &h);
  fail_unless_equals_int(w, 704);
  fail_unless_equals_int(h, 704);
  gst_ovi_snap_size(1280, 704, 720 * 720, &w, &h);
  fail_unless_equals_int(w, 960);
  fail_unless_equals_int(h, 544);
  gst_ovi_snap_size(992, 512, 720 * 720, &w, &h);
  fail_unless_equals_int(w, 992);
  fail_unless_equals_int(h, 512);
  gst_ovi_snap_size(1120, 448, 720 * 720, &w, &h);
  fail_unless_equals_int(w, 1152);
  fail_unless_equals_int(h, 448);
  gst_ovi_snap_size(992, 512, 960 * 960, &w, &h);
  fail_unless_equals_int(w, 1344);
  fail_unless_equals_int(h, 704);
  gst_ovi_snap_size(1120, 448, 960 * 960, &w, &h);
  fail_unless_equals_int(w, 1504);
  fail_unless_equals_int(h, 608);
  gst_ovi_snap_size(1280, 704, 960 * 960, &w, &h);
  fail_unless_equals_int(w, 1280);
  fail_unless_equals_int(h, 704);
  /* minimum 32 */
  gst_ovi_snap_size(10000, 10, 64 * 64, &w, &h);
  fail_unless_equals_int(h, 32);

  /* i2v: area first, then ratio: a square image at the 720 area gets
   * 22x23 blocks of 32 (518144 px, 256 off) rather than 704x704 (22784 off) */
  gst_ovi_best_size_for_area(500, 500, 720 * 720, &w, &h);
  fail_unless(w % 32 == 0 && h % 32 == 0);
  fail_unless_equals_int(w * h, 704 * 736);
  gst_ovi_best_size_for_area(1920, 1080, 720 * 720, &w, &h);
  fail_unless(w % 32 == 0 && h % 32 == 0);
  fail_unless(w > h);
  fail_unless(fabs((double) w * h - 518400) < 0.05 * 518400);
}

GST_END_TEST;

GST_START_TEST(test_bicubic)
{
  const gint ih = 5, iw = 7, oh = 9, ow = 4;
  float src[2 * 5 * 7], dst[2 * 10 * 14];
  g_autofree gchar *out = NULL;
  g_autoptr(GString) script = g_string_new(NULL);
  g_auto(GStrv) vals = NULL;
  gint c, y, x, i, rc = 0;

  for (c = 0; c < 2; c++)
    for (y = 0; y < ih; y++)
      for (x = 0; x < iw; x++)
        src[(c * ih + y) * iw + x]
            = c == 0 ? 0.25f : (float) sin(0.7 * x + 1.3 * y);
  /* constant planes stay constant */
  gst_ovi_resize_bicubic(src, 2, ih, iw, dst, 10, 14);
  for (x = 0; x < 10 * 14; x++)
    fail_unless(fabsf(dst[x] - 0.25f) < 1e-6);
  /* same size: identity */
  gst_ovi_resize_bicubic(src, 2, ih, iw, dst, ih, iw);
  for (x = 0; x < 2 * ih * iw; x++)
    fail_unless(fabsf(dst[x] - src[x]) < 1e-6);

  /* against torch's F.interpolate (Debian's python3-torch), up in y and
   * down in x */
  if (!g_file_test("/usr/bin/python3", G_FILE_TEST_IS_EXECUTABLE))
    return;
  g_string_append(
      script,
      "import math,torch,torch.nn.functional as F\n"
      "x=torch.tensor([[[math.sin(0.7*i+1.3*j) for i in range(7)] for j in "
      "range(5)]])\n"
      "y=F.interpolate(x[None],size=(9,4),mode='bicubic',align_corners=False)\n"
      "print(' '.join('%.7f'%v for v in y.flatten().tolist()))\n");
  {
    const gchar *argv[] = { "/usr/bin/python3", "-c", script->str, NULL };
    if (!g_spawn_sync(NULL, (gchar **) argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL,
                      NULL, NULL, &out, NULL, &rc, NULL)
        || rc != 0) {
      GST_WARNING("torch not available, skipping the torch comparison");
      return;
    }
  }
  gst_ovi_resize_bicubic(src + ih * iw, 1, ih, iw, dst, oh, ow);
  vals = g_strsplit(g_strstrip(out), " ", -1);
  fail_unless_equals_int(g_strv_length(vals), oh * ow);
  for (i = 0; i < oh * ow; i++)
    fail_unless(fabs(dst[i] - g_ascii_strtod(vals[i], NULL)) < 1e-5,
                "%d: %f vs %s", i, dst[i], vals[i]);
}

GST_END_TEST;

GST_START_TEST(test_prompt_file)
{
  g_autoptr(GError) err = NULL;
  g_autoptr(GPtrArray) a = NULL;
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

  a = gst_ovi_parse_prompts(text, "p.txt", &err);
  fail_unless(a != NULL, "%s", err ? err->message : "");
  fail_unless_equals_int(a->len, 3);
  e = g_ptr_array_index(a, 0);
  fail_unless_equals_string(e->prompt,
                            "A chef flips a pancake. <S>Breakfast!<E>");
  fail_unless(e->overrides == NULL);
  e = g_ptr_array_index(a, 1);
  fail_unless_equals_string(e->prompt, "A cat");
  fail_unless_equals_string(e->video_negative_prompt, "blur");
  fail_unless(e->audio_negative_prompt == NULL);
  fail_unless(gst_structure_get_uint64(e->overrides, "seed", &seed));
  fail_unless_equals_uint64(seed, 7);
  fail_unless(gst_structure_get_int(e->overrides, "steps", &steps));
  fail_unless_equals_int(steps, 3);
  e = g_ptr_array_index(a, 2);
  fail_unless_equals_string(e->prompt, "A dog");
  fail_unless_equals_string(gst_structure_get_string(e->overrides, "solver"),
                            "euler");

  /* errors name the file and the line */
  g_clear_pointer(&a, g_ptr_array_unref);
  a = gst_ovi_parse_prompts("ok\n{\"prompt\": \"x\", \"sed\": 1}\n", "q.txt",
                            &err);
  fail_unless(a == NULL);
  fail_unless(strstr(err->message, "q.txt:2") != NULL, "%s", err->message);
  fail_unless(strstr(err->message, "sed") != NULL);
  g_clear_error(&err);
  a = gst_ovi_parse_prompts("{\"prompt\": \"x\", \"steps\": 0}\n", "q.txt",
                            &err);
  fail_unless(a == NULL);
  fail_unless(strstr(err->message, "steps") != NULL);
  g_clear_error(&err);
  a = gst_ovi_parse_prompts("{\"prompt\": \n", "q.txt", &err);
  fail_unless(a == NULL);
  fail_unless(strstr(err->message, "q.txt:1") != NULL);
  g_clear_error(&err);
  a = gst_ovi_parse_prompts("{\"seed\": 3}\n", "q.txt", &err);
  fail_unless(a == NULL);
  fail_unless(strstr(err->message, "prompt") != NULL);
  g_clear_error(&err);
  a = gst_ovi_parse_prompts("\n# only\n", "q.txt", &err);
  fail_unless(a == NULL);
  g_clear_error(&err);
  a = gst_ovi_load_prompt_file("/nonexistent/prompts.txt", &err);
  fail_unless(a == NULL);
  fail_unless(strstr(err->message, "/nonexistent/prompts.txt") != NULL);
}

GST_END_TEST;

GST_START_TEST(test_enums)
{
  fail_unless_equals_string(
      gst_ovi_enum_nick(GST_TYPE_OVI_VRAM_MODE, GST_OVI_VRAM_MODE_FP8_OFFLOAD),
      "fp8-offload");
  fail_unless_equals_string(
      gst_ovi_enum_nick(GST_TYPE_OVI_GPU_ALLOCATION,
                        GST_OVI_GPU_ALLOCATION_CFG_PARALLEL),
      "cfg-parallel");
  fail_unless_equals_string(gst_ovi_model_variant(GST_OVI_MODEL_960X960_10S),
                            "960x960_10s");
  fail_unless(gst_ovi_model_variant(GST_OVI_MODEL_AUTO) == NULL);
  fail_unless(!gst_ovi_vram_mode_needs_gpu(GST_OVI_VRAM_MODE_AUTO));
  fail_unless(gst_ovi_vram_mode_needs_gpu(GST_OVI_VRAM_MODE_ULTRA_LOW));
}

GST_END_TEST;

static Suite *
util_suite(void)
{
  Suite *s = suite_create("ovi-util");
  TCase *tc = tcase_create("general");

  suite_add_tcase(s, tc);
  tcase_add_test(tc, test_frame_times);
  tcase_add_test(tc, test_av_rule);
  tcase_add_test(tc, test_snap);
  tcase_add_test(tc, test_bicubic);
  tcase_add_test(tc, test_prompt_file);
  tcase_add_test(tc, test_enums);
  return s;
}

GST_CHECK_MAIN(util);
