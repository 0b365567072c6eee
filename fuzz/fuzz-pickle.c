/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: libFuzzer target for the allow-list unpickler alone: the input
 * is the pickle (data.pkl); it is wrapped into a torch.save-style zip with
 * storages "0".."7" of 256 bytes each, so that every mutation of the pickle
 * reaches the interpreter and the storage binding. */
#include "fuzz-common.h"

static void
put16 (GByteArray *b, guint v)
{
  guint8 x[2] = { v & 0xff, (v >> 8) & 0xff };
  g_byte_array_append (b, x, 2);
}

static void
put32 (GByteArray *b, guint32 v)
{
  guint8 x[4] = { v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24 };
  g_byte_array_append (b, x, 4);
}

static void
add_entry (GByteArray *b, GByteArray *c, const char *name, const guint8 *data,
           gsize len)
{
  guint32 lho = b->len;
  gsize nl = strlen (name);

  put32 (b, 0x04034b50);
  put16 (b, 20);
  put16 (b, 0);
  put16 (b, 0);
  put16 (b, 0);
  put16 (b, 0);
  put32 (b, 0);
  put32 (b, (guint32) len);
  put32 (b, (guint32) len);
  put16 (b, (guint) nl);
  put16 (b, 0);
  g_byte_array_append (b, (const guint8 *) name, (guint) nl);
  g_byte_array_append (b, data, (guint) len);

  put32 (c, 0x02014b50);
  put16 (c, 20);
  put16 (c, 20);
  put16 (c, 0);
  put16 (c, 0);
  put16 (c, 0);
  put16 (c, 0);
  put32 (c, 0);
  put32 (c, (guint32) len);
  put32 (c, (guint32) len);
  put16 (c, (guint) nl);
  put16 (c, 0);
  put16 (c, 0);
  put16 (c, 0);
  put16 (c, 0);
  put32 (c, 0);
  put32 (c, lho);
  g_byte_array_append (c, (const guint8 *) name, (guint) nl);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  GByteArray *b = g_byte_array_new (), *c = g_byte_array_new ();
  guint8 storage[256];
  guint32 cd_off;
  guint n = 0;

  if (size > 1 << 20)
    return 0;
  for (int i = 0; i < 256; i++)
    storage[i] = (guint8) (i * 37);
  add_entry (b, c, "archive/data.pkl", data, size);
  n++;
  for (int k = 0; k < 8; k++) {
    char name[32];

    g_snprintf (name, sizeof (name), "archive/data/%d", k);
    add_entry (b, c, name, storage, sizeof (storage));
    n++;
  }
  cd_off = b->len;
  g_byte_array_append (b, c->data, c->len);
  put32 (b, 0x06054b50);
  put16 (b, 0);
  put16 (b, 0);
  put16 (b, n);
  put16 (b, n);
  put32 (b, c->len);
  put32 (b, cd_off);
  put16 (b, 0);
  ovi_fuzz_open (b->data, b->len, "fuzz.pth");
  g_byte_array_unref (b);
  g_byte_array_unref (c);
  return 0;
}
