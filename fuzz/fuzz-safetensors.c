/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: libFuzzer target for the safetensors reader (and the format
 * dispatch); zip inputs are left to fuzz-pth. A file the reader accepts
 * also goes through the weight cache's own checks (its metadata, length and
 * table digest) and, when it passes them, its tensors with their scales. */
#include "fuzz-common.h"
#include "ovi-weight-cache.h"

#define NAME "fuzz.safetensors"

static void
fuzz_cache_check (const uint8_t *data, size_t size)
{
  g_autoptr (GBytes) bytes = g_bytes_new (data, size);
  g_autoptr (OviWeightFile) wf
      = ovi_weight_file_open_bytes (bytes, NAME, NULL, NULL);
  g_autoptr (GError) error = NULL;
  volatile guint8 sink = 0;

  if (wf == NULL)
    return;
  if (!ovi_weight_cache_check (wf, NAME, "int8-per-channel", &error)) {
    if (error == NULL || error->domain != OVI_ERROR
        || strncmp (error->message, NAME, strlen (NAME)) != 0)
      __builtin_trap ();
    return;
  }
  for (guint i = 0; i < ovi_weight_file_n_tensors (wf); i++) {
    g_autoptr (OviTensor) t
        = ovi_weight_cache_get (wf, ovi_weight_file_name (wf, i));
    gsize n = t ? ovi_tensor_nbytes (t) : 0;

    if (n > 0)
      sink ^= ((const guint8 *) ovi_tensor_data (t))[0]
              ^ ((const guint8 *) ovi_tensor_data (t))[n - 1];
  }
  (void) sink;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size >= 4 && memcmp (data, "PK\x03\x04", 4) == 0)
    return 0;
  ovi_fuzz_open (data, size, NAME);
  fuzz_cache_check (data, size);
  return 0;
}
