/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: runs every file of the given directories through a fuzz target's
 * LLVMFuzzerTestOneInput (linked in from fuzz/), so the seed corpus is a
 * regular test without libFuzzer. Usage: run-corpus DIR... */
#include <glib.h>
#include <stdint.h>
#include <stdio.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
main (int argc, char **argv)
{
  guint n = 0;

  for (int a = 1; a < argc; a++) {
    GError *error = NULL;
    GDir *dir = g_dir_open (argv[a], 0, &error);
    const char *name;
    GPtrArray *names = g_ptr_array_new_with_free_func (g_free);

    if (dir == NULL) {
      fprintf (stderr, "run-corpus: %s\n", error->message);
      return 1;
    }
    while ((name = g_dir_read_name (dir)))
      g_ptr_array_add (names, g_build_filename (argv[a], name, NULL));
    g_dir_close (dir);
    g_ptr_array_sort (names, (GCompareFunc) g_strcmp0);
    for (guint i = 0; i < names->len; i++) {
      const char *path = g_ptr_array_index (names, i);
      char *contents;
      gsize len;

      if (!g_file_get_contents (path, &contents, &len, &error)) {
        fprintf (stderr, "run-corpus: %s\n", error->message);
        return 1;
      }
      printf ("%s (%" G_GSIZE_FORMAT " bytes)\n", path, len);
      fflush (stdout);
      LLVMFuzzerTestOneInput ((const uint8_t *) contents, len);
      g_free (contents);
      n++;
    }
    g_ptr_array_unref (names);
  }
  printf ("%u inputs, no crash\n", n);
  return n > 0 ? 0 : 1;
}
