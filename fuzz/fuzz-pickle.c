/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: libFuzzer target for the allow-list unpickler alone: the input
 * is the pickle (data.pkl); it is wrapped into a torch.save-style zip with
 * storages "0".."7" of 256 bytes each, so that every mutation of the pickle
 * reaches the interpreter and the storage binding. */
#include "fuzz-common.h"
#include "fuzz-zip.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  guint8 storage[256];
  char names[8][32];
  OviZipItem items[9] = { { "archive/data.pkl", data, size } };
  g_autoptr (GBytes) zip = NULL;

  if (size > 1 << 20)
    return 0;
  for (int i = 0; i < 256; i++)
    storage[i] = (guint8) (i * 37);
  for (int k = 0; k < 8; k++) {
    g_snprintf (names[k], sizeof (names[k]), "archive/data/%d", k);
    items[1 + k] = (OviZipItem){ names[k], storage, sizeof (storage) };
  }
  zip = ovi_zip_stored (items, G_N_ELEMENTS (items));
  ovi_fuzz_open (g_bytes_get_data (zip, NULL), g_bytes_get_size (zip),
                 "fuzz.pth");
  return 0;
}
