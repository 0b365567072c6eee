/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: `ovi`, the engine-level command-line tool. */
#include "ovi-cli.h"
#include "ovi-config.h"

#include <stdio.h>
#include <string.h>

static const OviCliCommand commands[] = {
  { "version", "print the version", ovi_cmd_version },
  { "inspect", "list the tensors of a weight file (--sum: their sums)",
    ovi_cmd_inspect },
  { "make-tiny", "write the tiny random-weight model (DIR [--seed N])",
    ovi_cmd_make_tiny },
  { "parity", "check the engine against a golden case (CASE_DIR)",
    ovi_cmd_parity },
  { "estimate", "peak device / host memory per stage and VRAM mode",
    ovi_cmd_estimate },
  { "bench", "time the stages at real size with random in-memory weights",
    ovi_cmd_bench },
  { "devices", "the GPUs, their memory and driver, or why there is none",
    ovi_cmd_devices },
  { "lora", "what a LoRA file changes in a model (--sum: the merged sums)",
    ovi_cmd_lora },
  { "calibrate-cache",
    "measure a MagCache step-cache table from a full run (--steps N)",
    ovi_cmd_calibrate_cache },
  { "generate", "text (+ image) to BASE.y4m + BASE.wav, no GStreamer",
    ovi_cmd_generate },
};

int
ovi_cli_fail (const char *format, ...)
{
  va_list args;
  g_autofree char *msg = NULL;

  va_start (args, format);
  msg = g_strdup_vprintf (format, args);
  va_end (args);
  fprintf (stderr, "ovi: %s\n", msg);
  return 1;
}

int
ovi_cli_fail_error (GError *error)
{
  int status = ovi_cli_fail ("%s", error ? error->message : "unknown error");

  g_clear_error (&error);
  return status;
}

int
ovi_cmd_version (int argc, char **argv)
{
  printf ("ovi %s\n", OVI_VERSION);
  return 0;
}

static void
print_usage (FILE *out)
{
  fprintf (out, "Usage: ovi COMMAND [ARGS...]\n\nCommands:\n");
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
    fprintf (out, "  %-16s %s\n", commands[i].name, commands[i].summary);
  fprintf (out, "\nRun 'ovi COMMAND --help' for a command's options.\n");
}

int
main (int argc, char **argv)
{
  if (argc < 2) {
    print_usage (stderr);
    return 2;
  }
  if (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0) {
    print_usage (stdout);
    return 0;
  }
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
    if (strcmp (argv[1], commands[i].name) == 0)
      return commands[i].run (argc - 1, argv + 1);
  fprintf (stderr, "ovi: unknown command '%s'\n", argv[1]);
  print_usage (stderr);
  return 2;
}
