/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the `ovi` command-line tool. One file per subcommand; adding one
 * is a new file, a line here and a line in the table in ovi.c. Each command
 * gets argv from its own name on and returns the process exit status. */
#pragma once

#include <glib.h>

#include "ovi-tensor.h"

typedef struct {
  const char *name;
  const char *summary;
  int (*run) (int argc, char **argv);
} OviCliCommand;

/* prints "ovi: <message>" to stderr and returns 1 */
int ovi_cli_fail (const char *format, ...) G_GNUC_PRINTF (1, 2);
/* as ovi_cli_fail, for a GError (freed) */
int ovi_cli_fail_error (GError *error);

/* "NAME DTYPE [d0,d1,...]" and, with `sum`, " SUM" (float64, %.17g), then
 * a newline: a line of `ovi inspect` */
void ovi_cli_append_tensor_line (GString *out, const char *name,
                                 const OviTensor *t, gboolean sum);

int ovi_cmd_version (int argc, char **argv);
int ovi_cmd_inspect (int argc, char **argv);
int ovi_cmd_make_tiny (int argc, char **argv);
int ovi_cmd_parity (int argc, char **argv);
int ovi_cmd_estimate (int argc, char **argv);
int ovi_cmd_bench (int argc, char **argv);
int ovi_cmd_devices (int argc, char **argv);
int ovi_cmd_lora (int argc, char **argv);
int ovi_cmd_calibrate_cache (int argc, char **argv);
int ovi_cmd_generate (int argc, char **argv);
