/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the clip-duration rule of docs/av-sync.md. */
#include "ovi-engine.h"

#include <math.h>

static void
test_cumulative (gconstpointer data)
{
  int64_t F = GPOINTER_TO_INT (data);
  int64_t total = 0;

  for (int64_t k = 0; k < 5000; k++) {
    int64_t n = ovi_clip_audio_samples (k, F);
    g_assert_cmpint (ovi_clip_audio_start (k, F), ==, total);
    total += n;
    /* round half up of the exact rational (k+1) F 16000 / 24 */
    int64_t num = (k + 1) * F * 16000;
    int64_t want = num / 24 + (2 * (num % 24) >= 24 ? 1 : 0);
    g_assert_cmpint (total, ==, want);
    /* never more than half a sample away from the video clock */
    g_assert_cmpfloat (fabs ((double) total - (double) num / 24.0), <=, 0.5);
    /* each clip within one sample of its exact length */
    g_assert_cmpfloat (fabs ((double) n - F * 16000.0 / 24.0), <, 1.0);
  }
}

static void
test_official_lengths (void)
{
  int64_t five[] = { 80667, 80666, 80667, 80667, 80666, 80667 };
  int64_t ten[] = { 160667, 160666, 160667, 160667, 160666, 160667 };

  for (guint k = 0; k < G_N_ELEMENTS (five); k++) {
    g_assert_cmpint (ovi_clip_audio_samples (k, 121), ==, five[k]);
    g_assert_cmpint (ovi_clip_audio_samples (k, 241), ==, ten[k]);
  }
  /* 5 s: the vocoder's 157 * 512 = 80384 samples are padded; 10 s: the
   * 314 * 512 = 160768 samples are trimmed */
  g_assert_cmpint (157 * 512, <, ovi_clip_audio_samples (0, 121));
  g_assert_cmpint (314 * 512, >, ovi_clip_audio_samples (0, 241));
  g_assert_cmpint (ovi_clip_audio_start (0, 121), ==, 0);
  g_assert_cmpint (ovi_clip_audio_samples (-1, 121), ==, 0);
  /* 24 frames are exactly one second */
  for (int k = 0; k < 10; k++)
    g_assert_cmpint (ovi_clip_audio_samples (k, 24), ==, 16000);
}

/* the vocoder output of each official length fitted to the rule */
static void
test_fit (void)
{
  const int64_t frames[] = { 121, 241 }, samples[] = { 157 * 512, 314 * 512 };
  g_autoptr (GError) error = NULL;

  for (int v = 0; v < 2; v++) {
    int64_t n = samples[v], total = 0;
    g_autoptr (OviTensor) wav = ovi_tensor_new_f32 (1, &n);
    float *d = ovi_tensor_data (wav);
    for (int64_t i = 0; i < n; i++)
      d[i] = 0.5f + (float) (i % 7) / 10.0f; /* never 0 */
    for (int64_t k = 0; k < 4; k++) {
      g_autoptr (OviTensor) fit
          = ovi_clip_audio_fit (wav, k, frames[v], &error);
      g_assert_no_error (error);
      int64_t want = ovi_clip_audio_samples (k, frames[v]);
      g_assert_cmpint (fit->ndim, ==, 1);
      g_assert_cmpint (fit->shape[0], ==, want);
      const float *f = ovi_tensor_data (fit);
      for (int64_t i = 0; i < want; i++)
        g_assert_cmpfloat (f[i], ==, i < n ? d[i] : 0.0f);
      total += want;
    }
    g_assert_cmpint (total, ==, ovi_clip_audio_start (4, frames[v]));
  }
  {
    int64_t shape[2] = { 2, 3 };
    g_autoptr (OviTensor) bad = ovi_tensor_new_f32 (2, shape);
    g_assert_null (ovi_clip_audio_fit (bad, 0, 121, &error));
    g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_data_func ("/av-sync/cumulative/121", GINT_TO_POINTER (121),
                        test_cumulative);
  g_test_add_data_func ("/av-sync/cumulative/241", GINT_TO_POINTER (241),
                        test_cumulative);
  g_test_add_data_func ("/av-sync/cumulative/7", GINT_TO_POINTER (7),
                        test_cumulative);
  g_test_add_func ("/av-sync/official-lengths", test_official_lengths);
  g_test_add_func ("/av-sync/fit", test_fit);
  return g_test_run ();
}
