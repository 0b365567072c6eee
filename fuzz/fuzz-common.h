/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: shared body of the weight-reader fuzz targets. Opens the input
 * from memory and touches every tensor (the first elements, and the last
 * one) so that a view reaching outside the buffer shows up under ASan. */
#pragma once

#include "ovi-weights.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static inline void
ovi_fuzz_open (const uint8_t *data, size_t size, const char *name)
{
  GBytes *bytes = g_bytes_new (data, size); /* a heap copy of exactly size */
  GError *error = NULL;
  OviWeightFile *wf = ovi_weight_file_open_bytes (bytes, name, NULL, &error);
  volatile double sink = 0;

  g_bytes_unref (bytes);
  if (wf == NULL) {
    /* every failure is a GError with a message naming the input */
    if (error == NULL || error->domain != OVI_ERROR
        || strncmp (error->message, name, strlen (name)) != 0)
      __builtin_trap ();
    g_error_free (error);
    return;
  }
  for (guint i = 0; i < ovi_weight_file_n_tensors (wf); i++) {
    const char *tname = ovi_weight_file_name (wf, i);
    OviTensor *t = ovi_weight_file_get (wf, tname, NULL);
    int64_t index[OVI_MAX_DIMS] = { 0 };
    int64_t n;

    if (t == NULL)
      __builtin_trap ();
    n = ovi_tensor_numel (t);
    for (int64_t k = 0; k < n && k < 256; k++) {
      sink += ovi_tensor_get_f64 (t, index);
      for (int d = t->ndim - 1; d >= 0; d--) {
        if (++index[d] < t->shape[d])
          break;
        index[d] = 0;
      }
    }
    if (n > 0) {
      for (int d = 0; d < t->ndim; d++)
        index[d] = t->shape[d] - 1;
      sink += ovi_tensor_get_f64 (t, index);
    }
    ovi_tensor_unref (t);
  }
  ovi_weight_file_free (wf);
  (void) sink;
}
