/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: `ovi inspect FILE [--sum] [--prefix P]`: list the tensors of a
 * safetensors or PyTorch checkpoint, one per line:
 *   NAME DTYPE [d0,d1,...] [SUM]
 * SUM (with --sum) is the float64 sum of the values, printed with %.17g. */
#include "ovi-cli.h"
#include "ovi-weights.h"

#include <stdio.h>
#include <math.h>
#include <string.h>

/* Neumaier-compensated float64 sum over a strided host tensor */
static double
tensor_sum (const OviTensor *t)
{
  int64_t n = ovi_tensor_numel (t);
  int64_t index[OVI_MAX_DIMS] = { 0 };
  double sum = 0.0, comp = 0.0;

  for (int64_t i = 0; i < n; i++) {
    double x = ovi_tensor_get_f64 (t, index), s = sum + x;

    if (fabs (sum) >= fabs (x))
      comp += (sum - s) + x;
    else
      comp += (x - s) + sum;
    sum = s;
    for (int d = t->ndim - 1; d >= 0; d--) {
      if (++index[d] < t->shape[d])
        break;
      index[d] = 0;
    }
  }
  return sum + comp;
}

void
ovi_cli_append_tensor_line (GString *out, const char *name, const OviTensor *t,
                            gboolean sum)
{
  g_string_append_printf (out, "%s %s [", name, ovi_dtype_name (t->dtype));
  for (int d = 0; d < t->ndim; d++)
    g_string_append_printf (out, "%s%" G_GINT64_FORMAT, d ? "," : "",
                            t->shape[d]);
  g_string_append_c (out, ']');
  if (sum) {
    char buf[G_ASCII_DTOSTR_BUF_SIZE];

    /* %.17g in the C locale */
    g_ascii_formatd (buf, sizeof (buf), "%.17g", tensor_sum (t));
    g_string_append_printf (out, " %s", buf);
  }
  g_string_append_c (out, '\n');
}

int
ovi_cmd_inspect (int argc, char **argv)
{
  gboolean sum = FALSE;
  const char *path = NULL, *prefix = NULL;
  g_autoptr (OviWeightFile) wf = NULL;
  GError *error = NULL;
  GString *out;

  for (int i = 1; i < argc; i++) {
    if (strcmp (argv[i], "--sum") == 0)
      sum = TRUE;
    else if (strcmp (argv[i], "--prefix") == 0 && i + 1 < argc)
      prefix = argv[++i];
    else if (strcmp (argv[i], "--help") == 0 || strcmp (argv[i], "-h") == 0) {
      printf (
          "Usage: ovi inspect FILE [--sum] [--prefix PREFIX]\n\n"
          "Lists the tensors of a safetensors file or a PyTorch checkpoint:\n"
          "NAME DTYPE [SHAPE], and with --sum the float64 sum of the "
          "values.\n");
      return 0;
    } else if (argv[i][0] == '-' && argv[i][1] != '\0')
      return ovi_cli_fail ("inspect: unknown option '%s'", argv[i]);
    else if (path == NULL)
      path = argv[i];
    else
      return ovi_cli_fail ("inspect: more than one file given");
  }
  if (path == NULL)
    return ovi_cli_fail ("inspect: no file given (ovi inspect FILE [--sum])");

  wf = ovi_weight_file_open (path, prefix, &error);
  if (wf == NULL)
    return ovi_cli_fail_error (error);

  out = g_string_new (NULL);
  for (guint i = 0; i < ovi_weight_file_n_tensors (wf); i++) {
    const char *name = ovi_weight_file_name (wf, i);
    g_autoptr (OviTensor) t = ovi_weight_file_get (wf, name, &error);

    if (t == NULL) {
      g_string_free (out, TRUE);
      return ovi_cli_fail_error (error);
    }
    ovi_cli_append_tensor_line (out, name, t, sum);
    if (out->len > 1 << 16) {
      fwrite (out->str, 1, out->len, stdout);
      g_string_truncate (out, 0);
    }
  }
  fwrite (out->str, 1, out->len, stdout);
  g_string_free (out, TRUE);
  return fflush (stdout) == 0 ? 0 : 1;
}
