/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: `ovi make-tiny DIR [--seed N]`: write the tiny random-weight
 * model into DIR, in the official download layout (docs/tiny-model.md). */
#include "ovi-cli.h"
#include "ovi-tiny.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
ovi_cmd_make_tiny (int argc, char **argv)
{
  const char *dir = NULL;
  guint64 seed = OVI_TINY_DEFAULT_SEED;
  GError *error = NULL;

  for (int i = 1; i < argc; i++) {
    if (strcmp (argv[i], "--seed") == 0) {
      char *end = NULL;
      if (i + 1 >= argc)
        return ovi_cli_fail ("make-tiny: --seed needs a value");
      errno = 0;
      seed = g_ascii_strtoull (argv[++i], &end, 10);
      if (errno != 0 || end == argv[i] || *end != '\0' || argv[i][0] == '-')
        return ovi_cli_fail ("make-tiny: --seed '%s' is not a non-negative "
                             "integer",
                             argv[i]);
    } else if (strcmp (argv[i], "--help") == 0 || strcmp (argv[i], "-h") == 0) {
      printf (
          "Usage: ovi make-tiny DIR [--seed N]\n\n"
          "Writes the tiny random-weight Ovi model into DIR in the official\n"
          "layout (Ovi/, Wan2.2-TI2V-5B/, MMAudio/ext_weights/), with the\n"
          "official tensor names and file formats. The same seed gives\n"
          "byte-identical files (default seed %d). It makes noise, not "
          "film.\n",
          OVI_TINY_DEFAULT_SEED);
      return 0;
    } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
      return ovi_cli_fail ("make-tiny: unknown option '%s'", argv[i]);
    } else if (dir == NULL) {
      dir = argv[i];
    } else {
      return ovi_cli_fail ("make-tiny: more than one folder given");
    }
  }
  if (dir == NULL)
    return ovi_cli_fail ("make-tiny: no folder given (ovi make-tiny DIR "
                         "[--seed N])");
  if (!ovi_tiny_write (dir, seed, &error))
    return ovi_cli_fail_error (error);
  printf ("wrote the tiny model (seed %" G_GUINT64_FORMAT ") to %s\n", seed,
          dir);
  return 0;
}
