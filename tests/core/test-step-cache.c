/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tests: step-cache decisions and tables (no tensors; the tiny model's runs
 * are in tests/tiny/test-step-cache-run.c). */
#include "ovi-error.h"
#include "ovi-step-cache.h"
#include "ovi-test-util.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

static void
test_mode_names (void)
{
  g_autoptr (GError) error = NULL;
  OviCacheMode mode = OVI_CACHE_OFF;

  for (int m = OVI_CACHE_OFF; m <= OVI_CACHE_MAG; m++) {
    g_assert_true (ovi_cache_mode_from_string (ovi_cache_mode_to_string (m),
                                               &mode, &error));
    g_assert_cmpint (mode, ==, m);
  }
  g_assert_false (ovi_cache_mode_from_string ("teacache", &mode, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "'teacache'"));
}

static void
expect_bad_threshold (double threshold, const char *named)
{
  g_autoptr (GError) error = NULL;
  OviCacheConfig c;

  ovi_cache_config_init (&c);
  c.mode = OVI_CACHE_EASY;
  c.threshold = threshold;
  g_assert_false (ovi_cache_config_check (&c, 20, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, named));
}

static void
test_bad_threshold (void)
{
  expect_bad_threshold (-0.5, "-0.5");
  expect_bad_threshold (NAN, "nan");
  expect_bad_threshold (INFINITY, "inf");
}

/* a table whose ratios are all `ratio` (step 0: 1) */
static OviCacheTable *
flat_table (const char *model, int steps, double ratio)
{
  OviCacheTable *t = ovi_cache_table_new (model, steps, "unipc", 5.0, 2);

  for (int b = 0; b < 2; b++)
    for (int w = 0; w < OVI_N_TOWERS; w++)
      for (int i = 1; i < steps; i++)
        t->ratio[b][w][i] = ratio;
  return t;
}

static void
test_table_mismatch (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviCacheTable) t = flat_table ("tiny", 20, 1.01);
  OviCacheConfig c;

  ovi_cache_config_init (&c);
  c.mode = OVI_CACHE_MAG;
  c.threshold = 0.1;
  g_assert_false (ovi_cache_config_check (&c, 20, &error));
  g_assert_nonnull (strstr (error->message, "calibrate-cache"));
  g_clear_error (&error);

  c.table = t;
  g_assert_true (ovi_cache_config_check (&c, 20, &error));
  g_assert_false (ovi_cache_config_check (&c, 50, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "20 steps"));
  g_assert_nonnull (strstr (error->message, "50"));
  g_clear_error (&error);

  g_assert_false (
      ovi_cache_table_check (t, "t.json", "720x720_5s", 20, &error));
  g_assert_nonnull (strstr (error->message, "'tiny'"));
  g_assert_nonnull (strstr (error->message, "'720x720_5s'"));
  g_assert_nonnull (strstr (error->message, "t.json"));
}

/* runs `steps` steps of `branches` branches with the same synthetic
 * measurements; returns the skip pattern of branch 0 ("CCS..") */
static char *
run_policy (const OviCacheConfig *c, int steps, int branches,
            double input_change, int *computed, int *skipped)
{
  g_autoptr (OviCachePolicy) p = ovi_cache_policy_new (c, steps, branches);
  GString *pattern = g_string_new (NULL);
  double in[OVI_N_TOWERS] = { input_change, input_change / 2 };

  for (int i = 0; i < steps; i++)
    for (int b = 0; b < branches; b++) {
      gboolean skip = ovi_cache_policy_skip (p, i, b, i ? in : NULL);
      if (b == 0)
        g_string_append_c (pattern, skip ? 'S' : 'C');
      if (!skip) {
        /* out changes as much as the input: k = 1 (audio 2) */
        OviCacheObservation obs = {
          .out_change = { input_change, input_change },
          .in_change = { i ? input_change : -1, i ? input_change / 2 : -1 },
          .out_norm = { 1.0, 1.0 },
        };
        ovi_cache_policy_observe (p, b, &obs);
      }
    }
  ovi_cache_policy_counts (p, computed, skipped);
  return g_string_free (pattern, FALSE);
}

static void
test_off_and_zero (void)
{
  OviCacheConfig c;
  int computed, skipped;

  ovi_cache_config_init (&c);
  g_autofree char *off = run_policy (&c, 20, 2, 0.01, &computed, &skipped);
  g_assert_cmpstr (off, ==, "CCCCCCCCCCCCCCCCCCCC");
  g_assert_cmpint (computed, ==, 40);
  g_assert_cmpint (skipped, ==, 0);

  c.mode = OVI_CACHE_EASY;
  g_autofree char *zero = run_policy (&c, 20, 2, 0.01, &computed, &skipped);
  g_assert_cmpstr (zero, ==, off);
  g_assert_cmpint (skipped, ==, 0);
}

static void
test_easy_pattern (void)
{
  OviCacheConfig c;
  int computed, skipped;

  ovi_cache_config_init (&c);
  c.mode = OVI_CACHE_EASY;
  c.threshold = 0.25;
  c.start = 3;
  /* estimate per step: video k 1 x 0.1, audio k 2 x 0.05: 0.1 each; the
   * sum reaches 0.3 on the third step after a compute */
  g_autofree char *p = run_policy (&c, 12, 2, 0.1, &computed, &skipped);
  g_assert_cmpstr (p, ==, "CCCSSCSSCSSC");
  g_assert_cmpint (computed, ==, 2 * 6);
  g_assert_cmpint (skipped, ==, 2 * 6);

  /* the default start is 20 % of the steps, rounded up */
  c.start = -1;
  g_assert_cmpint (ovi_cache_config_start (&c, 20), ==, 4);
  g_assert_cmpint (ovi_cache_config_start (&c, 4), ==, 1);
}

static void
test_mag_pattern (void)
{
  g_autoptr (OviCacheTable) t = flat_table ("tiny", 12, 1.05);
  OviCacheConfig c;
  int computed, skipped;

  ovi_cache_config_init (&c);
  c.mode = OVI_CACHE_MAG;
  c.table = t;
  c.start = 2;
  /* errors after a compute: 0.05, 0.1525, 0.31 -> two skips at 0.2 */
  c.threshold = 0.2;
  g_autofree char *p = run_policy (&c, 12, 1, 0, &computed, &skipped);
  g_assert_cmpstr (p, ==, "CCSSCSSCSSCC");
  /* at most max_skips in a row */
  c.threshold = 10;
  c.max_skips = 3;
  g_autofree char *q = run_policy (&c, 12, 1, 0, &computed, &skipped);
  g_assert_cmpstr (q, ==, "CCSSSCSSSCSC");
}

/* the number of skipped forwards never falls as the threshold grows */
static void
test_monotonic (void)
{
  g_autoptr (OviCacheTable) t = flat_table ("tiny", 20, 0.97);
  OviCacheConfig c;
  int last = -1;

  for (int mode = OVI_CACHE_EASY; mode <= OVI_CACHE_MAG; mode++) {
    last = -1;
    for (double thr = 0; thr <= 1.0; thr += 0.05) {
      int computed, skipped;
      ovi_cache_config_init (&c);
      c.mode = mode;
      c.table = t;
      c.threshold = thr;
      c.max_skips = 100;
      g_autofree char *p = run_policy (&c, 20, 2, 0.07, &computed, &skipped);
      g_assert_cmpint (computed + skipped, ==, 40);
      g_assert_cmpint (skipped, >=, last);
      g_assert_cmpint (p[19], ==, 'C');
      last = skipped;
    }
    g_assert_cmpint (last, >, 0);
  }
}

/* each branch decides for itself */
static void
test_branches (void)
{
  g_autoptr (OviCachePolicy) p = NULL;
  OviCacheConfig c;
  OviCacheObservation obs
      = { .out_change = { 1, 1 }, .in_change = { 1, 1 }, .out_norm = { 1, 1 } };
  double in[OVI_N_TOWERS] = { 0.1, 0.1 };

  ovi_cache_config_init (&c);
  c.mode = OVI_CACHE_EASY;
  c.threshold = 0.15;
  c.start = 1;
  p = ovi_cache_policy_new (&c, 10, 2);
  g_assert_false (ovi_cache_policy_skip (p, 0, 0, NULL));
  g_assert_false (ovi_cache_policy_skip (p, 0, 1, NULL));
  ovi_cache_policy_observe (p, 0, &obs);
  /* the negative branch's output moves twice as fast */
  obs.out_change[1] = 2;
  ovi_cache_policy_observe (p, 1, &obs);
  g_assert_true (ovi_cache_policy_skip (p, 1, 0, in));
  g_assert_false (ovi_cache_policy_skip (p, 1, 1, in));
}

static void
test_table_files (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = ovi_test_make_tmp_dir ("ovi-cache-XXXXXX");
  g_autofree char *path = g_build_filename (dir, "t.json", NULL);
  g_autoptr (OviCacheTable) t = flat_table ("tiny", 5, 0.875);
  g_autoptr (OviCacheTable) back = NULL;
  static const char *const bad[] = {
    "[1, 2]",
    "{\"model\": \"tiny\", \"steps\": 2}",
    "{\"model\": 3, \"steps\": 2, \"ratios\": {}}",
    "{\"model\": \"tiny\", \"steps\": 2, \"ratios\": {}}",
    "{\"model\": \"tiny\", \"steps\": 2, \"ratios\": {\"positive\": 1}}",
    "{\"model\": \"tiny\", \"steps\": 2, \"ratios\": {\"positive\": "
    "{\"video\": [1, 1], \"audio\": [1]}}}",
    "{\"model\": \"tiny\", \"steps\": 2, \"ratios\": {\"positive\": "
    "{\"video\": [1, -1], \"audio\": [1, 1]}}}",
    "{\"model\": \"tiny\", \"steps\": 2, \"ratios\": {\"positive\": "
    "{\"video\": [1, \"x\"], \"audio\": [1, 1]}}}",
  };

  t->ratio[1][1][4] = 1.25;
  g_assert_true (ovi_cache_table_save (t, path, "test", &error));
  back = ovi_cache_table_load (path, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (back->model, ==, "tiny");
  g_assert_cmpint (back->steps, ==, 5);
  g_assert_cmpint (back->n_branches, ==, 2);
  g_assert_cmpfloat (back->ratio[0][0][0], ==, 1.0);
  g_assert_cmpfloat (back->ratio[0][1][3], ==, 0.875);
  g_assert_cmpfloat (back->ratio[1][1][4], ==, 1.25);

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_assert_true (g_file_set_contents (path, bad[i], -1, NULL));
    g_assert_null (ovi_cache_table_load (path, &error));
    g_assert_error (error, OVI_ERROR, OVI_ERROR_FORMAT);
    g_assert_nonnull (strstr (error->message, path));
    g_test_message ("%s", error->message);
    g_clear_error (&error);
  }
  g_remove (path);
  g_assert_null (ovi_cache_table_load (path, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_IO);
  ovi_test_remove_tree (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/step-cache/mode-names", test_mode_names);
  g_test_add_func ("/step-cache/bad-threshold", test_bad_threshold);
  g_test_add_func ("/step-cache/table-mismatch", test_table_mismatch);
  g_test_add_func ("/step-cache/off-and-zero", test_off_and_zero);
  g_test_add_func ("/step-cache/easy-pattern", test_easy_pattern);
  g_test_add_func ("/step-cache/mag-pattern", test_mag_pattern);
  g_test_add_func ("/step-cache/monotonic", test_monotonic);
  g_test_add_func ("/step-cache/branches", test_branches);
  g_test_add_func ("/step-cache/table-files", test_table_files);
  return g_test_run ();
}
