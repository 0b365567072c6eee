/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: internals shared by the weight readers (not installed). */
#pragma once

#include "ovi-weights.h"

#include <json-glib/json-glib.h>
#include <stdio.h>

G_BEGIN_DECLS

typedef struct {
  char *name;
  OviTensor *tensor; /* template view; callers get fresh views of it */
} OviWeightEntry;

struct _OviWeightFile {
  char *path;
  char *prefix;
  GBytes *bytes;             /* the whole file (mapping or memory) */
  gboolean mapped;           /* `bytes` is a read-only mapping of the file */
  OviStorage *storage;       /* wraps `bytes`; every tensor points into it */
  GPtrArray *entries;        /* OviWeightEntry*, file order */
  GHashTable *by_name;       /* name -> OviWeightEntry* (borrowed) */
  GHashTable *metadata;      /* char* -> char*, or NULL */
  OviWeightFilter transform; /* ovi_weight_file_set_transform */
  gpointer transform_data;
};

/* Adds a tensor described by (offset into the file bytes, dtype, shape,
 * strides) under `name`, applying the prefix filter. The caller has checked
 * that every element lies inside the file. Misaligned data is copied. */
gboolean ovi_weight_file_add (OviWeightFile *wf, const char *name, gsize offset,
                              OviDType dtype, int ndim, const int64_t *shape,
                              const int64_t *stride, GError **error);

/* One tensor of a safetensors header being built (inside its object):
 * name: {"dtype", "shape", "data_offsets": [begin, end]} */
void ovi_safetensors_add_header_entry (JsonBuilder *b, const char *name,
                                       OviDType dtype, int ndim,
                                       const int64_t *shape, guint64 begin,
                                       guint64 end);

/* A writer's checks of one named tensor beyond its name: not given twice
 * (`seen` collects the names) and in host memory. */
gboolean ovi_weights_check_writable (const char *path,
                                     const OviNamedTensor *named,
                                     GHashTable *seen, GError **error);

/* Writes a host tensor's elements in row-major order (any strides). */
gboolean ovi_weights_write_tensor_data (FILE *fp, const OviTensor *t,
                                        const char *path, GError **error);

gboolean ovi_safetensors_parse (OviWeightFile *wf, GError **error);
gboolean ovi_pth_parse (OviWeightFile *wf, GError **error);

/* tensor names are printed one per line and inside messages: no control
 * characters */
static inline gboolean
ovi_weights_name_ok (const char *name)
{
  for (const guchar *p = (const guchar *) name; *p; p++)
    if (*p < 0x20 || *p == 0x7f)
      return FALSE;
  return TRUE;
}

/* checked arithmetic helpers */
static inline gboolean
ovi_mul_u64 (guint64 a, guint64 b, guint64 *out)
{
  return g_uint64_checked_mul (out, a, b);
}

static inline gboolean
ovi_add_u64 (guint64 a, guint64 b, guint64 *out)
{
  return g_uint64_checked_add (out, a, b);
}

/* Whether the tensor code's int64 arithmetic on this shape cannot overflow in
 * any order: the product of the non-zero dims, in bytes of the widest dtype,
 * fits in int64. A zero dim makes the element count 0, but strides and
 * partial products still multiply the other dims. */
static inline gboolean
ovi_shape_fits_int64 (int ndim, const int64_t *shape)
{
  guint64 product = 1;

  for (int i = 0; i < ndim; i++)
    if (shape[i] != 0
        && (!g_uint64_checked_mul (&product, product, (guint64) shape[i])
            || product > G_MAXINT64 / 8))
      return FALSE;
  return TRUE;
}

G_END_DECLS
