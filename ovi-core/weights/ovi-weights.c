/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the weight file object and its lookup API; the format readers
 * live in ovi-safetensors.c and ovi-pth.c. */
#include "ovi-weights-private.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
  void *addr;
  gsize size;
} Mapping;

static void
mapping_free (gpointer data)
{
  Mapping *m = data;

  munmap (m->addr, m->size);
  g_free (m);
}

static void
entry_free (gpointer data)
{
  OviWeightEntry *e = data;

  g_free (e->name);
  ovi_tensor_unref (e->tensor);
  g_free (e);
}

static GBytes *
map_file (const char *path, GError **error)
{
  struct stat st;
  Mapping *m;
  void *addr;
  int fd = open (path, O_RDONLY | O_CLOEXEC);

  if (fd < 0) {
    int err = errno;
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO, "%s: cannot open: %s", path,
                 g_strerror (err));
    return NULL;
  }
  if (fstat (fd, &st) != 0) {
    int err = errno;
    close (fd);
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO, "%s: cannot stat: %s", path,
                 g_strerror (err));
    return NULL;
  }
  if (!S_ISREG (st.st_mode)) {
    close (fd);
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO, "%s: not a regular file",
                 path);
    return NULL;
  }
  if (st.st_size == 0) {
    close (fd);
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT, "%s: file is empty", path);
    return NULL;
  }
  /* Read-only: a writable private mapping would be charged against the
   * commit limit for the whole (multi-GB) file. */
  addr = mmap (NULL, (gsize) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close (fd);
  if (addr == MAP_FAILED) {
    int err = errno;
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO, "%s: cannot map: %s", path,
                 g_strerror (err));
    return NULL;
  }
  m = g_new (Mapping, 1);
  m->addr = addr;
  m->size = (gsize) st.st_size;
  return g_bytes_new_with_free_func (addr, m->size, mapping_free, m);
}

static gboolean
looks_like_st_length (const guint8 *data, gsize size)
{
  guint64 v = 0;

  for (int i = 7; i >= 0; i--)
    v = (v << 8) | data[i];
  return v <= size - 8;
}

static void
release_bytes (gpointer data)
{
  g_bytes_unref (data);
}

OviWeightFile *
ovi_weight_file_open_bytes (GBytes *bytes, const char *display_name,
                            const char *prefix, GError **error)
{
  OviWeightFile *wf;
  gsize size;
  const guint8 *data;
  gboolean ok;

  g_return_val_if_fail (bytes != NULL, NULL);
  g_return_val_if_fail (display_name != NULL, NULL);

  data = g_bytes_get_data (bytes, &size);
  wf = g_new0 (OviWeightFile, 1);
  wf->path = g_strdup (display_name);
  wf->prefix = g_strdup (prefix && *prefix ? prefix : NULL);
  wf->bytes = g_bytes_ref (bytes);
  wf->storage = ovi_storage_new_wrapped ((void *) data, size,
                                         (OviDevice){ OVI_DEVICE_CPU, 0 },
                                         release_bytes, g_bytes_ref (bytes));
  wf->entries = g_ptr_array_new_with_free_func (entry_free);
  wf->by_name = g_hash_table_new (g_str_hash, g_str_equal);

  if (size >= 4 && memcmp (data, "PK\x03\x04", 4) == 0) {
    ok = ovi_pth_parse (wf, error);
  } else if (size >= 9
             && (data[8] == '{' || looks_like_st_length (data, size))) {
    ok = ovi_safetensors_parse (wf, error);
  } else if (size >= 3 && data[0] == 0x80 && data[1] <= 5 && data[2] == 0x8a) {
    g_set_error (
        error, OVI_ERROR, OVI_ERROR_FORMAT,
        "%s: a legacy (pre-1.6, non-zip) torch.save file; this format is "
        "not supported, re-save it with a newer torch",
        display_name);
    ok = FALSE;
  } else if (size >= 8 && size < 9) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                 "%s: truncated safetensors file (%" G_GSIZE_FORMAT " bytes)",
                 display_name, size);
    ok = FALSE;
  } else {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                 "%s: neither a safetensors file nor a PyTorch zip checkpoint",
                 display_name);
    ok = FALSE;
  }
  if (!ok) {
    ovi_weight_file_free (wf);
    return NULL;
  }
  return wf;
}

OviWeightFile *
ovi_weight_file_open (const char *path, const char *prefix, GError **error)
{
  g_autoptr (GBytes) bytes = NULL;
  OviWeightFile *wf;

  g_return_val_if_fail (path != NULL, NULL);
  bytes = map_file (path, error);
  if (bytes == NULL)
    return NULL;
  wf = ovi_weight_file_open_bytes (bytes, path, prefix, error);
  if (wf)
    wf->mapped = TRUE;
  return wf;
}

gboolean
ovi_weight_file_mapping (const OviWeightFile *wf, const void **base,
                         gsize *size)
{
  *base = wf->mapped ? g_bytes_get_data (wf->bytes, size) : NULL;
  if (!wf->mapped)
    *size = 0;
  return wf->mapped;
}

/* [data, data + size) widened to whole pages */
static void
page_span (const void *data, gsize size, char **lo, gsize *len)
{
  uintptr_t page = (uintptr_t) sysconf (_SC_PAGESIZE);
  uintptr_t a = (uintptr_t) data & ~(page - 1);
  uintptr_t b = ((uintptr_t) data + size + page - 1) & ~(page - 1);

  *lo = (char *) a;
  *len = b - a;
}

void
ovi_mapped_pages_advise (const void *data, gsize size, OviPagesAdvice advice)
{
  char *lo;
  gsize len;

  if (size == 0)
    return;
  page_span (data, size, &lo, &len);
  /* advice only: a failure changes what stays resident, never the data */
  (void) madvise (lo, len,
                  advice == OVI_PAGES_WILLNEED ? MADV_WILLNEED : MADV_DONTNEED);
}

void
ovi_weight_file_free (OviWeightFile *wf)
{
  if (wf == NULL)
    return;
  g_hash_table_unref (wf->by_name);
  g_ptr_array_unref (wf->entries);
  if (wf->metadata)
    g_hash_table_unref (wf->metadata);
  ovi_storage_unref (wf->storage);
  g_bytes_unref (wf->bytes);
  g_free (wf->prefix);
  g_free (wf->path);
  g_free (wf);
}

const char *
ovi_weight_file_path (const OviWeightFile *wf)
{
  return wf->path;
}

guint
ovi_weight_file_n_tensors (const OviWeightFile *wf)
{
  return wf->entries->len;
}

const char *
ovi_weight_file_name (const OviWeightFile *wf, guint index)
{
  g_return_val_if_fail (index < wf->entries->len, NULL);
  return ((OviWeightEntry *) g_ptr_array_index (wf->entries, index))->name;
}

/* Weight-norm names: torch >= 2.1 calls g and v
 * "X.parametrizations.weight.original0/1", older checkpoints (BigVGAN's
 * best_netG.pt) "X.weight_g/_v"; torch maps one onto the other at load time,
 * and so does this lookup, both ways. */
static const struct {
  const char *modern, *legacy;
} weight_norm_aliases[] = {
  { ".parametrizations.weight.original0", ".weight_g" },
  { ".parametrizations.weight.original1", ".weight_v" },
};

static OviWeightEntry *
lookup_entry (const OviWeightFile *wf, const char *name)
{
  OviWeightEntry *e = g_hash_table_lookup (wf->by_name, name);

  if (e != NULL)
    return e;
  for (gsize i = 0; i < G_N_ELEMENTS (weight_norm_aliases); i++) {
    const char *from[2]
        = { weight_norm_aliases[i].modern, weight_norm_aliases[i].legacy };
    const char *to[2]
        = { weight_norm_aliases[i].legacy, weight_norm_aliases[i].modern };

    for (int k = 0; k < 2; k++) {
      if (g_str_has_suffix (name, from[k])) {
        g_autofree char *base
            = g_strndup (name, strlen (name) - strlen (from[k]));
        g_autofree char *alt = g_strconcat (base, to[k], NULL);

        return g_hash_table_lookup (wf->by_name, alt);
      }
    }
  }
  return NULL;
}

gboolean
ovi_weight_file_contains (const OviWeightFile *wf, const char *name)
{
  return lookup_entry (wf, name) != NULL;
}

const char *
ovi_weight_file_metadata (const OviWeightFile *wf, const char *key)
{
  if (wf->metadata == NULL)
    return NULL;
  return g_hash_table_lookup (wf->metadata, key);
}

OviTensor *
ovi_weight_file_get (OviWeightFile *wf, const char *name, GError **error)
{
  OviWeightEntry *e = lookup_entry (wf, name);
  OviTensor *t;

  if (e == NULL) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_MISSING_TENSOR,
                 "%s: tensor '%s' not found", wf->path, name);
    return NULL;
  }
  t = ovi_tensor_new_on_storage (e->tensor->storage, e->tensor->offset,
                                 e->tensor->dtype, e->tensor->ndim,
                                 e->tensor->shape, e->tensor->stride);
  if (wf->transform) {
    OviTensor *raw = t;

    t = wf->transform (e->name, raw, wf->transform_data, error);
    ovi_tensor_unref (raw);
  }
  return t;
}

void
ovi_weight_file_set_transform (OviWeightFile *wf, OviWeightFilter func,
                               gpointer user_data)
{
  wf->transform = func;
  wf->transform_data = user_data;
}

static char *
expected_shape_string (int ndim, const int64_t *shape)
{
  GString *s = g_string_new ("[");

  for (int i = 0; i < ndim; i++) {
    if (i)
      g_string_append (s, ", ");
    if (shape[i] < 0)
      g_string_append_c (s, '*');
    else
      g_string_append_printf (s, "%" G_GINT64_FORMAT, shape[i]);
  }
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

OviTensor *
ovi_weight_file_get_shaped (OviWeightFile *wf, const char *name, int ndim,
                            const int64_t *shape, GError **error)
{
  OviWeightEntry *e = lookup_entry (wf, name);

  if (e == NULL) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_MISSING_TENSOR,
                 "%s: tensor '%s' not found", wf->path, name);
    return NULL;
  }
  if (!ovi_tensor_has_shape (e->tensor, ndim, shape)) {
    g_autofree char *found
        = ovi_shape_to_string (e->tensor->ndim, e->tensor->shape);
    g_autofree char *expected = expected_shape_string (ndim, shape);

    g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                 "%s: tensor '%s' has shape %s, expected %s", wf->path, name,
                 found, expected);
    return NULL;
  }
  return ovi_weight_file_get (wf, name, error);
}

gboolean
ovi_weight_file_add (OviWeightFile *wf, const char *name, gsize offset,
                     OviDType dtype, int ndim, const int64_t *shape,
                     const int64_t *stride, GError **error)
{
  OviWeightEntry *e;
  gsize esize = ovi_dtype_size (dtype);
  const char *data = wf->storage->data;

  if (wf->prefix) {
    if (!g_str_has_prefix (name, wf->prefix))
      return TRUE;
    name += strlen (wf->prefix);
  }
  if (g_hash_table_contains (wf->by_name, name)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                 "%s: tensor '%s' appears twice", wf->path, name);
    return FALSE;
  }
  e = g_new0 (OviWeightEntry, 1);
  e->name = g_strdup (name);
  if (((guintptr) (data + offset)) % esize == 0) {
    e->tensor = ovi_tensor_new_on_storage (wf->storage, offset, dtype, ndim,
                                           shape, stride);
  } else {
    /* Misaligned in the file: give it an aligned private copy of the span
     * it covers (strides are non-negative and checked by the reader). */
    int64_t span = 1, cstride[OVI_MAX_DIMS];
    OviStorage *copy;
    gboolean empty = FALSE;

    if (stride == NULL) {
      ovi_contiguous_strides (ndim, shape, cstride);
      stride = cstride;
    }

    for (int i = 0; i < ndim; i++) {
      if (shape[i] == 0)
        empty = TRUE;
      else
        span += (shape[i] - 1) * stride[i];
    }
    if (empty)
      span = 0;
    copy = ovi_storage_new_host ((gsize) span * esize, error);
    if (copy == NULL) {
      g_free (e->name);
      g_free (e);
      return FALSE;
    }
    memcpy (copy->data, data + offset, (gsize) span * esize);
    e->tensor = ovi_tensor_new_on_storage (copy, 0, dtype, ndim, shape, stride);
    ovi_storage_unref (copy);
  }
  g_ptr_array_add (wf->entries, e);
  g_hash_table_insert (wf->by_name, e->name, e);
  return TRUE;
}
