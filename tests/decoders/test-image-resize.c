/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the i2v bicubic resize against torch's F.interpolate (bicubic,
 * align_corners=False, no antialias) and the _best_hw_for_area choice.
 * Needs Debian's /usr/bin/python3 with torch; skips (77) without it. */
#include "ovi-image.h"

#include <glib/gstdio.h>
#include <math.h>
#include <stdio.h>

static const char script[]
    = "import sys, struct\n"
      "import numpy as np, torch\n"
      "import torch.nn.functional as F\n"
      "path, c, h, w, ho, wo, out = sys.argv[1:8]\n"
      "c, h, w, ho, wo = map(int, (c, h, w, ho, wo))\n"
      "x = np.fromfile(path, dtype=np.float32).reshape(1, c, h, w)\n"
      "y = F.interpolate(torch.from_numpy(x), size=(ho, wo), mode='bicubic',\n"
      "                  align_corners=False)\n"
      "y.numpy().astype(np.float32).tofile(out)\n";

static gboolean
have_torch (void)
{
  int status = -1;
  const char *argv[] = { "/usr/bin/python3", "-c", "import torch", NULL };

  if (!g_file_test (argv[0], G_FILE_TEST_IS_EXECUTABLE))
    return FALSE;
  if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL,
                     NULL, NULL, NULL, NULL, &status, NULL))
    return FALSE;
  return g_spawn_check_wait_status (status, NULL);
}

static void
check_case (const char *dir, int c, int h, int w, int ho, int wo, guint seed)
{
  g_autofree char *in_path = g_build_filename (dir, "in.f32", NULL);
  g_autofree char *out_path = g_build_filename (dir, "out.f32", NULL);
  g_autofree char *py_path = g_build_filename (dir, "ref.py", NULL);
  g_autofree float *src = g_new (float, (gsize) c *h *w);
  g_autofree float *got = g_new (float, (gsize) c *ho *wo);
  g_autoptr (GError) error = NULL;
  g_autofree char *ref = NULL;
  gsize len = 0;
  int status = -1;
  GRand *rand = g_rand_new_with_seed (seed);

  for (gsize i = 0; i < (gsize) c * h * w; i++)
    src[i] = (float) g_rand_double_range (rand, -1.0, 1.0);
  g_rand_free (rand);
  g_assert_true (g_file_set_contents (in_path, (char *) src,
                                      sizeof (float) * c * h * w, &error));
  g_assert_true (g_file_set_contents (py_path, script, -1, &error));
  {
    g_autofree char *cs = g_strdup_printf ("%d", c);
    g_autofree char *hs = g_strdup_printf ("%d", h);
    g_autofree char *ws = g_strdup_printf ("%d", w);
    g_autofree char *hos = g_strdup_printf ("%d", ho);
    g_autofree char *wos = g_strdup_printf ("%d", wo);
    const char *argv[]
        = { "/usr/bin/python3", py_path, in_path, cs, hs, ws, hos, wos,
            out_path,           NULL };
    g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, 0, NULL, NULL,
                                 NULL, NULL, &status, &error));
    g_assert_true (g_spawn_check_wait_status (status, &error));
  }
  g_assert_true (g_file_get_contents (out_path, &ref, &len, &error));
  g_assert_cmpuint (len, ==, sizeof (float) * c * ho * wo);

  ovi_image_resize_bicubic (src, c, h, w, got, ho, wo);
  double max_abs = 0;
  for (gsize i = 0; i < (gsize) c * ho * wo; i++)
    max_abs = MAX (max_abs, fabs ((double) got[i] - ((float *) ref)[i]));
  g_test_message ("%dx%d -> %dx%d: max_abs %.3g", h, w, ho, wo, max_abs);
  g_assert_cmpfloat (max_abs, <=, 1e-5);
}

static void
test_resize (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = NULL;

  dir = g_dir_make_tmp ("ovi-resize-XXXXXX", &error);
  g_assert_no_error (error);
  check_case (dir, 3, 97, 131, 64, 96, 1);  /* down, odd ratios */
  check_case (dir, 3, 37, 45, 64, 96, 2);   /* up */
  check_case (dir, 3, 200, 150, 96, 64, 3); /* portrait */
  check_case (dir, 1, 64, 96, 64, 96, 4);   /* identity size */
  check_case (dir, 2, 5, 7, 32, 32, 5);     /* taps far outside */
  const char *names[] = { "in.f32", "out.f32", "ref.py" };
  for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
    g_autofree char *p = g_build_filename (dir, names[i], NULL);
    g_unlink (p);
  }
  g_rmdir (dir);
}

/* the i2v size choice (expected values from the rule run in numpy) */
static void
test_best_hw (void)
{
  static const int cases[][5] = {
    { 720, 720, 720 * 720, 704, 704 },    { 1080, 1920, 720 * 720, 544, 960 },
    { 1920, 1080, 960 * 960, 1280, 704 }, { 480, 640, 720 * 720, 608, 832 },
    { 1000, 333, 960 * 960, 1664, 544 },
  };
  int h, w;

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    ovi_image_best_hw_for_area (cases[i][0], cases[i][1], cases[i][2], 32, &h,
                                &w);
    g_assert_cmpint (h, ==, cases[i][3]);
    g_assert_cmpint (w, ==, cases[i][4]);
  }
  /* area 0: unchanged */
  ovi_image_best_hw_for_area (123, 456, 0, 32, &h, &w);
  g_assert_cmpint (h, ==, 123);
  g_assert_cmpint (w, ==, 456);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (!have_torch ()) {
    g_printerr ("skipped: no torch in /usr/bin/python3\n");
    return 77;
  }
  g_test_add_func ("/image/resize-bicubic-vs-torch", test_resize);
  g_test_add_func ("/image/best-hw-for-area", test_best_hw);
  return g_test_run ();
}
