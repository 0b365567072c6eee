/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: libFuzzer target for the PyTorch zip checkpoint reader (zip
 * directory, allow-list unpickler, storage binding). */
#include "fuzz-common.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size < 4 || memcmp (data, "PK\x03\x04", 4) != 0)
    return 0;
  ovi_fuzz_open (data, size, "fuzz.pth");
  return 0;
}
