/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the safetensors reader (validating, zero copy) and writer.
 *
 * Layout: u64 little-endian header length N, N bytes of JSON, then the data
 * section. Each header entry is {"dtype": "F32", "shape": [..],
 * "data_offsets": [begin, end]} with offsets relative to the data section;
 * "__metadata__" maps strings to strings. */
#include "ovi-weights-private.h"

#include <errno.h>
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_JSON_DEPTH 32

typedef struct {
  const char *name;
  OviDType dtype;
  int ndim;
  int64_t shape[OVI_MAX_DIMS];
  guint64 begin, end;
} StEntry;

static guint64
read_le64 (const guint8 *p)
{
  guint64 v = 0;

  for (int i = 7; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

/* json-glib's parser recurses per nesting level: refuse silly depths before
 * handing it the text. */
static gboolean
json_depth_ok (const char *text, gsize len)
{
  int depth = 0;
  gboolean in_string = FALSE;

  for (gsize i = 0; i < len; i++) {
    char c = text[i];

    if (in_string) {
      if (c == '\\')
        i++;
      else if (c == '"')
        in_string = FALSE;
      continue;
    }
    if (c == '"')
      in_string = TRUE;
    else if (c == '{' || c == '[') {
      if (++depth > MAX_JSON_DEPTH)
        return FALSE;
    } else if (c == '}' || c == ']')
      depth--;
  }
  return TRUE;
}

static gboolean
node_get_uint (JsonNode *node, guint64 *out)
{
  gint64 v;

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_INT64)
    return FALSE;
  v = json_node_get_int (node);
  if (v < 0)
    return FALSE;
  *out = (guint64) v;
  return TRUE;
}

static int
compare_by_begin (const void *a, const void *b)
{
  const StEntry *x = a, *y = b;

  if (x->begin != y->begin)
    return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end)
    return x->end < y->end ? -1 : 1;
  return 0;
}

static int
compare_by_name (const void *a, const void *b)
{
  const StEntry *x = a, *y = b;

  return strcmp (x->name, y->name);
}

#define FAIL(...)                                                              \
  G_STMT_START                                                                 \
  {                                                                            \
    g_autofree char *_m = g_strdup_printf (__VA_ARGS__);                       \
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT, "%s: %s", wf->path, _m);  \
    goto out;                                                                  \
  }                                                                            \
  G_STMT_END

static gboolean
parse_entry (OviWeightFile *wf, const char *name, JsonNode *node,
             guint64 data_size, StEntry *e, GError **error)
{
  JsonObject *obj;
  JsonNode *n;
  JsonArray *arr;
  const char *dtype_name;
  guint64 numel = 1, nbytes;
  gboolean ok = FALSE;

  e->name = name;
  if (!ovi_weights_name_ok (name)) {
    g_autofree char *escaped = g_strescape (name, NULL);
    FAIL ("tensor name '%s' contains control characters", escaped);
  }
  if (!JSON_NODE_HOLDS_OBJECT (node))
    FAIL ("header entry '%s' is not an object", name);
  obj = json_node_get_object (node);

  n = json_object_get_member (obj, "dtype");
  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n)
      || json_node_get_value_type (n) != G_TYPE_STRING)
    FAIL ("tensor '%s' has no dtype string", name);
  dtype_name = json_node_get_string (n);
  if (!ovi_dtype_from_name (dtype_name, &e->dtype))
    FAIL ("tensor '%s' has unsupported dtype '%s'", name, dtype_name);

  n = json_object_get_member (obj, "shape");
  if (n == NULL || !JSON_NODE_HOLDS_ARRAY (n))
    FAIL ("tensor '%s' has no shape array", name);
  arr = json_node_get_array (n);
  if (json_array_get_length (arr) > OVI_MAX_DIMS)
    FAIL ("tensor '%s' has %u dimensions, at most %d are supported", name,
          json_array_get_length (arr), OVI_MAX_DIMS);
  e->ndim = (int) json_array_get_length (arr);
  for (int i = 0; i < e->ndim; i++) {
    guint64 d;

    if (!node_get_uint (json_array_get_element (arr, i), &d) || d > G_MAXINT64)
      FAIL ("tensor '%s' has an invalid shape entry at dimension %d", name, i);
    e->shape[i] = (int64_t) d;
    if (!ovi_mul_u64 (numel, d, &numel))
      FAIL ("tensor '%s': element count overflows", name);
  }
  if (!ovi_shape_fits_int64 (e->ndim, e->shape))
    FAIL ("tensor '%s': element count overflows", name);

  n = json_object_get_member (obj, "data_offsets");
  if (n == NULL || !JSON_NODE_HOLDS_ARRAY (n)
      || json_array_get_length (json_node_get_array (n)) != 2)
    FAIL ("tensor '%s' has no [begin, end] data_offsets", name);
  arr = json_node_get_array (n);
  if (!node_get_uint (json_array_get_element (arr, 0), &e->begin)
      || !node_get_uint (json_array_get_element (arr, 1), &e->end))
    FAIL ("tensor '%s' has invalid data_offsets", name);
  if (e->begin > e->end)
    FAIL ("tensor '%s': data_offsets begin %" G_GUINT64_FORMAT
          " is after end %" G_GUINT64_FORMAT,
          name, e->begin, e->end);
  if (e->end > data_size)
    FAIL ("tensor '%s': data_offsets end %" G_GUINT64_FORMAT
          " is past the data section (%" G_GUINT64_FORMAT
          " bytes): file truncated?",
          name, e->end, data_size);
  if (!ovi_mul_u64 (numel, ovi_dtype_size (e->dtype), &nbytes))
    FAIL ("tensor '%s': byte size overflows", name);
  if (nbytes != e->end - e->begin)
    FAIL ("tensor '%s' has %" G_GUINT64_FORMAT " bytes of data, its shape "
          "and dtype need %" G_GUINT64_FORMAT,
          name, e->end - e->begin, nbytes);
  ok = TRUE;
out:
  return ok;
}

gboolean
ovi_safetensors_parse (OviWeightFile *wf, GError **error)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (wf->bytes, &size);
  guint64 header_len, data_size;
  const char *header;
  g_autoptr (JsonParser) parser = NULL;
  g_autoptr (GError) json_error = NULL;
  g_autoptr (GList) members = NULL;
  JsonNode *root;
  JsonObject *obj;
  StEntry *entries = NULL;
  guint n = 0;
  gboolean ok = FALSE;

  if (size < 8)
    FAIL ("truncated safetensors file (%" G_GSIZE_FORMAT " bytes)", size);
  header_len = read_le64 (data);
  if (header_len > size - 8)
    FAIL ("safetensors header length %" G_GUINT64_FORMAT " exceeds the file "
          "size (%" G_GSIZE_FORMAT " bytes): file truncated?",
          header_len, size);
  if (header_len < 2)
    FAIL ("safetensors header length %" G_GUINT64_FORMAT " is too small",
          header_len);
  header = (const char *) data + 8;
  data_size = size - 8 - header_len;
  if (!g_utf8_validate (header, (gssize) header_len, NULL))
    FAIL ("safetensors header is not UTF-8 text without NUL bytes");
  if (!json_depth_ok (header, header_len))
    FAIL ("safetensors header nests deeper than %d levels", MAX_JSON_DEPTH);

  parser = json_parser_new_immutable ();
  if (!json_parser_load_from_data (parser, header, (gssize) header_len,
                                   &json_error))
    FAIL ("safetensors header is not valid JSON: %s", json_error->message);
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    FAIL ("safetensors header is not a JSON object");
  obj = json_node_get_object (root);

  members = json_object_get_members (obj);
  entries = g_new0 (StEntry, MAX (json_object_get_size (obj), 1));
  for (GList *l = members; l; l = l->next) {
    const char *name = l->data;
    JsonNode *node = json_object_get_member (obj, name);

    if (strcmp (name, "__metadata__") == 0) {
      JsonObject *mo;
      g_autoptr (GList) keys = NULL;

      if (!JSON_NODE_HOLDS_OBJECT (node))
        FAIL ("__metadata__ is not an object");
      mo = json_node_get_object (node);
      keys = json_object_get_members (mo);
      if (wf->metadata == NULL)
        wf->metadata
            = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
      for (GList *k = keys; k; k = k->next) {
        JsonNode *v = json_object_get_member (mo, k->data);

        if (!ovi_weights_name_ok (k->data)) {
          g_autofree char *escaped = g_strescape (k->data, NULL);
          FAIL ("__metadata__ key '%s' contains control characters", escaped);
        }
        if (!JSON_NODE_HOLDS_VALUE (v)
            || json_node_get_value_type (v) != G_TYPE_STRING)
          FAIL ("__metadata__ value of '%s' is not a string",
                (const char *) k->data);
        g_hash_table_insert (wf->metadata, g_strdup (k->data),
                             g_strdup (json_node_get_string (v)));
      }
      continue;
    }
    if (!parse_entry (wf, name, node, data_size, &entries[n], error))
      goto out;
    n++;
  }

  /* no two tensors may share bytes */
  qsort (entries, n, sizeof (StEntry), compare_by_begin);
  for (guint i = 1; i < n; i++) {
    if (entries[i].begin < entries[i - 1].end)
      FAIL ("tensors '%s' and '%s' overlap in the data section",
            entries[i - 1].name, entries[i].name);
  }

  qsort (entries, n, sizeof (StEntry), compare_by_name);
  for (guint i = 0; i < n; i++) {
    StEntry *e = &entries[i];

    if (!ovi_weight_file_add (wf, e->name, 8 + header_len + e->begin, e->dtype,
                              e->ndim, e->shape, NULL, error))
      goto out;
  }
  ok = TRUE;
out:
  g_free (entries);
  return ok;
}

#undef FAIL

/* ---- writer ---- */

void
ovi_safetensors_add_header_entry (JsonBuilder *b, const char *name,
                                  OviDType dtype, int ndim,
                                  const int64_t *shape, guint64 begin,
                                  guint64 end)
{
  json_builder_set_member_name (b, name);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "dtype");
  json_builder_add_string_value (b, ovi_dtype_name (dtype));
  json_builder_set_member_name (b, "shape");
  json_builder_begin_array (b);
  for (int d = 0; d < ndim; d++)
    json_builder_add_int_value (b, shape[d]);
  json_builder_end_array (b);
  json_builder_set_member_name (b, "data_offsets");
  json_builder_begin_array (b);
  json_builder_add_int_value (b, (gint64) begin);
  json_builder_add_int_value (b, (gint64) end);
  json_builder_end_array (b);
  json_builder_end_object (b);
}

gboolean
ovi_weights_check_writable (const char *path, const OviNamedTensor *named,
                            GHashTable *seen, GError **error)
{
  if (!g_hash_table_add (seen, (gpointer) named->name)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "%s: tensor '%s' given twice", path, named->name);
    return FALSE;
  }
  if (!ovi_tensor_is_host (named->tensor)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "%s: tensor '%s' is not in host memory", path, named->name);
    return FALSE;
  }
  return TRUE;
}

gboolean
ovi_weights_write_tensor_data (FILE *fp, const OviTensor *t, const char *path,
                               GError **error)
{
  gsize esize = ovi_dtype_size (t->dtype);
  int64_t n = ovi_tensor_numel (t);
  int64_t index[OVI_MAX_DIMS] = { 0 };
  const char *base = ovi_tensor_data (t);

  if (n == 0)
    return TRUE;
  if (ovi_tensor_is_contiguous (t)) {
    if (fwrite (base, esize, (gsize) n, fp) != (gsize) n)
      goto fail;
    return TRUE;
  }
  /* strided: element by element through stdio's buffer */
  for (int64_t i = 0; i < n; i++) {
    int64_t off = 0;

    for (int d = 0; d < t->ndim; d++)
      off += index[d] * t->stride[d];
    if (fwrite (base + off * (int64_t) esize, esize, 1, fp) != 1)
      goto fail;
    for (int d = t->ndim - 1; d >= 0; d--) {
      if (++index[d] < t->shape[d])
        break;
      index[d] = 0;
    }
  }
  return TRUE;
fail:
  g_set_error (error, OVI_ERROR, OVI_ERROR_IO, "%s: write failed: %s", path,
               g_strerror (errno));
  return FALSE;
}

gboolean
ovi_safetensors_write (const char *path, const OviNamedTensor *tensors,
                       guint n_tensors, GHashTable *metadata, GError **error)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  g_autofree char *json = NULL;
  gsize json_len, padded;
  guint64 offset = 0;
  guint8 len_bytes[8];
  g_autofree guint *order = NULL;
  g_autofree guint64 *offsets = NULL;
  guint n_ordered = 0;
  FILE *fp;

  json_builder_begin_object (builder);
  if (metadata && g_hash_table_size (metadata) > 0) {
    g_autoptr (GList) keys = g_hash_table_get_keys (metadata);

    keys = g_list_sort (keys, (GCompareFunc) strcmp);
    json_builder_set_member_name (builder, "__metadata__");
    json_builder_begin_object (builder);
    for (GList *l = keys; l; l = l->next) {
      json_builder_set_member_name (builder, l->data);
      json_builder_add_string_value (builder,
                                     g_hash_table_lookup (metadata, l->data));
    }
    json_builder_end_object (builder);
  }
  /* data in order of decreasing element size (stable), as the official
   * writer does, so that every tensor is aligned to its element size */
  order = g_new (guint, MAX (n_tensors, 1));
  offsets = g_new0 (guint64, MAX (n_tensors, 1));
  {
    guint k = 0;

    for (int es = 8; es >= 1; es /= 2)
      for (guint i = 0; i < n_tensors; i++)
        if (tensors[i].tensor
            && ovi_dtype_size (tensors[i].tensor->dtype) == (gsize) es)
          order[k++] = i;
    for (guint i = 0; i < k; i++) {
      offsets[order[i]] = offset;
      offset += ovi_tensor_nbytes (tensors[order[i]].tensor);
    }
    n_ordered = k;
  }
  for (guint i = 0; i < n_tensors; i++) {
    const OviTensor *t = tensors[i].tensor;
    guint64 nbytes;

    if (tensors[i].name == NULL || t == NULL
        || strcmp (tensors[i].name, "__metadata__") == 0) {
      g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                   "%s: tensor %u has no usable name or no tensor", path, i);
      return FALSE;
    }
    if (!ovi_weights_check_writable (path, &tensors[i], seen, error))
      return FALSE;
    nbytes = ovi_tensor_nbytes (t);
    ovi_safetensors_add_header_entry (builder, tensors[i].name, t->dtype,
                                      t->ndim, t->shape, offsets[i],
                                      offsets[i] + nbytes);
  }
  g_assert (n_ordered == n_tensors);
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  json_generator_set_root (gen, root);
  json = json_generator_to_data (gen, &json_len);
  padded = (json_len + 7) & ~(gsize) 7;

  fp = fopen (path, "wb");
  if (fp == NULL) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO, "%s: cannot create: %s", path,
                 g_strerror (errno));
    return FALSE;
  }
  for (int i = 0; i < 8; i++)
    len_bytes[i] = (guint8) ((guint64) padded >> (8 * i));
  if (fwrite (len_bytes, 1, 8, fp) != 8
      || fwrite (json, 1, json_len, fp) != json_len)
    goto fail;
  for (gsize i = json_len; i < padded; i++)
    if (fputc (' ', fp) == EOF)
      goto fail;
  for (guint i = 0; i < n_tensors; i++)
    if (!ovi_weights_write_tensor_data (fp, tensors[order[i]].tensor, path,
                                        error)) {
      fclose (fp);
      return FALSE;
    }
  if (fclose (fp) != 0) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO, "%s: write failed: %s", path,
                 g_strerror (errno));
    return FALSE;
  }
  return TRUE;
fail:
  g_set_error (error, OVI_ERROR, OVI_ERROR_IO, "%s: write failed: %s", path,
               g_strerror (errno));
  fclose (fp);
  return FALSE;
}
