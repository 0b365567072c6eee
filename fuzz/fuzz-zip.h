/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: a minimal STORED zip of named items, as torch.save's archives
 * are laid out (CRC left 0: the .pth reader does not check it), for the
 * unpickler's fuzz target and the .pth reader's tests. */
#pragma once

#include <glib.h>
#include <string.h>

typedef struct {
  const char *name;
  const void *data;
  gsize len;
} OviZipItem;

static inline void
ovi_zip_put16 (GByteArray *b, guint v)
{
  guint8 x[2] = { v & 0xff, (v >> 8) & 0xff };
  g_byte_array_append (b, x, 2);
}

static inline void
ovi_zip_put32 (GByteArray *b, guint32 v)
{
  guint8 x[4] = { v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24 };
  g_byte_array_append (b, x, 4);
}

/* the item's local header and data into `b`, its central directory entry
 * into `c` */
static inline void
ovi_zip_add (GByteArray *b, GByteArray *c, const OviZipItem *item)
{
  guint32 lho = b->len;
  gsize nl = strlen (item->name);

  ovi_zip_put32 (b, 0x04034b50);
  ovi_zip_put16 (b, 20);
  ovi_zip_put16 (b, 0);
  ovi_zip_put16 (b, 0);
  ovi_zip_put16 (b, 0);
  ovi_zip_put16 (b, 0);
  ovi_zip_put32 (b, 0);
  ovi_zip_put32 (b, (guint32) item->len);
  ovi_zip_put32 (b, (guint32) item->len);
  ovi_zip_put16 (b, (guint) nl);
  ovi_zip_put16 (b, 0);
  g_byte_array_append (b, (const guint8 *) item->name, (guint) nl);
  g_byte_array_append (b, item->data, (guint) item->len);

  ovi_zip_put32 (c, 0x02014b50);
  ovi_zip_put16 (c, 20);
  ovi_zip_put16 (c, 20);
  ovi_zip_put16 (c, 0);
  ovi_zip_put16 (c, 0);
  ovi_zip_put16 (c, 0);
  ovi_zip_put16 (c, 0);
  ovi_zip_put32 (c, 0);
  ovi_zip_put32 (c, (guint32) item->len);
  ovi_zip_put32 (c, (guint32) item->len);
  ovi_zip_put16 (c, (guint) nl);
  ovi_zip_put16 (c, 0);
  ovi_zip_put16 (c, 0);
  ovi_zip_put16 (c, 0);
  ovi_zip_put16 (c, 0);
  ovi_zip_put32 (c, 0);
  ovi_zip_put32 (c, lho);
  g_byte_array_append (c, (const guint8 *) item->name, (guint) nl);
}

/* the zip of `items`, in their order */
static inline GBytes *
ovi_zip_stored (const OviZipItem *items, guint n)
{
  GByteArray *b = g_byte_array_new ();
  GByteArray *c = g_byte_array_new ();
  guint32 cd_off;

  for (guint i = 0; i < n; i++)
    ovi_zip_add (b, c, &items[i]);
  cd_off = b->len;
  g_byte_array_append (b, c->data, c->len);
  ovi_zip_put32 (b, 0x06054b50);
  ovi_zip_put16 (b, 0);
  ovi_zip_put16 (b, 0);
  ovi_zip_put16 (b, n);
  ovi_zip_put16 (b, n);
  ovi_zip_put32 (b, c->len);
  ovi_zip_put32 (b, cd_off);
  ovi_zip_put16 (b, 0);
  g_byte_array_unref (c);
  return g_byte_array_free_to_bytes (b);
}
