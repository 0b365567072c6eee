/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: libFuzzer target for the safetensors reader (and the format
 * dispatch); zip inputs are left to fuzz-pth. */
#include "fuzz-common.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size >= 4 && memcmp (data, "PK\x03\x04", 4) == 0)
    return 0;
  ovi_fuzz_open (data, size, "fuzz.safetensors");
  return 0;
}
