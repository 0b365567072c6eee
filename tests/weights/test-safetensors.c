/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: tests of the safetensors reader and writer and the lookup API. */
#include "ovi-weights.h"

#include <json-glib/json-glib.h>
#include <glib/gstdio.h>
#include <string.h>

static char *tmpdir;

static OviTensor *
make_tensor (OviDType dtype, int ndim, const int64_t *shape, int seed)
{
  g_autoptr (GError) error = NULL;
  OviTensor *t = ovi_tensor_new (dtype, ndim, shape, &error);
  gsize n, es = ovi_dtype_size (dtype);
  guint8 *p;

  g_assert_no_error (error);
  n = ovi_tensor_numel (t);
  p = ovi_tensor_data (t);
  for (gsize i = 0; i < n; i++) {
    double v = (double) ((i * 7 + seed * 13) % 23) - 11.0 + 0.25 * (i % 3);

    switch (dtype) {
      case OVI_DTYPE_F32:
        ((float *) p)[i] = (float) v;
        break;
      case OVI_DTYPE_F64:
        ((double *) p)[i] = v / 3.0;
        break;
      case OVI_DTYPE_F16:
        ((uint16_t *) p)[i] = ovi_f32_to_f16 ((float) v);
        break;
      case OVI_DTYPE_BF16:
        ((uint16_t *) p)[i] = ovi_f32_to_bf16 ((float) v);
        break;
      case OVI_DTYPE_F8_E4M3:
        p[i] = ovi_f32_to_f8e4m3 ((float) v);
        break;
      case OVI_DTYPE_I64:
        ((int64_t *) p)[i] = (int64_t) (v * 1e9);
        break;
      case OVI_DTYPE_I32:
        ((int32_t *) p)[i] = (int32_t) (v * 1000);
        break;
      case OVI_DTYPE_I8:
        ((int8_t *) p)[i] = (int8_t) v;
        break;
      case OVI_DTYPE_U8:
        p[i] = (guint8) (i * 37 + seed);
        break;
      case OVI_DTYPE_BOOL:
        p[i] = (i + seed) % 2;
        break;
      default:
        g_assert_not_reached ();
    }
  }
  (void) es;
  return t;
}

static void
assert_tensors_equal (const OviTensor *a, const OviTensor *b)
{
  int64_t n = ovi_tensor_numel (a);
  int64_t index[OVI_MAX_DIMS] = { 0 };

  g_assert_cmpint (a->dtype, ==, b->dtype);
  g_assert_true (ovi_tensor_has_shape (b, a->ndim, a->shape));
  for (int64_t i = 0; i < n; i++) {
    double x = ovi_tensor_get_f64 (a, index), y = ovi_tensor_get_f64 (b, index);

    if (!(x == y || (x != x && y != y)))
      g_error ("element %" G_GINT64_FORMAT " differs: %g vs %g", i, x, y);
    for (int d = a->ndim - 1; d >= 0; d--) {
      if (++index[d] < a->shape[d])
        break;
      index[d] = 0;
    }
  }
}

/* every dtype, a 0-d and an empty tensor, a transposed (strided) source,
 * metadata: write, read back, compare */
static void
test_roundtrip (void)
{
  static const int64_t s23[] = { 2, 3 }, s4[] = { 4 }, s0[] = { 0, 5 },
                       s235[] = { 2, 3, 5 };
  g_autofree char *path = g_build_filename (tmpdir, "rt.safetensors", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (GHashTable) meta = g_hash_table_new (g_str_hash, g_str_equal);
  OviNamedTensor named[OVI_N_DTYPES + 3];
  OviTensor *owned[OVI_N_DTYPES + 3];
  guint n = 0;
  int order[] = { 1, 0 };
  g_autoptr (OviWeightFile) wf = NULL;

  for (int d = 0; d < OVI_N_DTYPES; d++) {
    owned[n] = make_tensor ((OviDType) d, 3, s235, d);
    named[n].name = g_strdup_printf ("t.%s", ovi_dtype_name ((OviDType) d));
    named[n].tensor = owned[n];
    n++;
  }
  owned[n] = make_tensor (OVI_DTYPE_F32, 0, s4, 1);
  named[n].name = g_strdup ("scalar");
  named[n].tensor = owned[n];
  n++;
  owned[n] = make_tensor (OVI_DTYPE_BF16, 2, s0, 1);
  named[n].name = g_strdup ("empty");
  named[n].tensor = owned[n];
  n++;
  {
    g_autoptr (OviTensor) base = make_tensor (OVI_DTYPE_F32, 2, s23, 5);
    owned[n] = ovi_tensor_permute (base, order);
  }
  named[n].name = g_strdup ("a.transposed \"quoted\"");
  named[n].tensor = owned[n];
  n++;

  g_hash_table_insert (meta, "format", "pt");
  g_hash_table_insert (meta, "note", "ünïcode \"x\"");
  g_assert_true (ovi_safetensors_write (path, named, n, meta, &error));
  g_assert_no_error (error);

  wf = ovi_weight_file_open (path, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (ovi_weight_file_n_tensors (wf), ==, n);
  g_assert_cmpstr (ovi_weight_file_metadata (wf, "format"), ==, "pt");
  g_assert_cmpstr (ovi_weight_file_metadata (wf, "note"), ==, "ünïcode \"x\"");
  g_assert_null (ovi_weight_file_metadata (wf, "nope"));
  for (guint i = 1; i < n; i++)
    g_assert_cmpint (
        strcmp (ovi_weight_file_name (wf, i - 1), ovi_weight_file_name (wf, i)),
        <, 0);
  for (guint i = 0; i < n; i++) {
    g_autoptr (OviTensor) t = ovi_weight_file_get (wf, named[i].name, &error);

    g_assert_no_error (error);
    g_assert_true (ovi_tensor_is_contiguous (t));
    g_assert_true (ovi_weight_file_contains (wf, named[i].name));
    assert_tensors_equal (named[i].tensor, t);
  }
  /* the tensors outlive the file object */
  {
    g_autoptr (OviTensor) keep = ovi_weight_file_get (wf, "t.F64", &error);
    int64_t idx[3] = { 1, 2, 4 };
    double expect = ovi_tensor_get_f64 (owned[OVI_DTYPE_F64], idx);

    g_clear_pointer (&wf, ovi_weight_file_free);
    g_assert_cmpfloat (ovi_tensor_get_f64 (keep, idx), ==, expect);
  }
  for (guint i = 0; i < n; i++) {
    g_free ((char *) named[i].name);
    ovi_tensor_unref (owned[i]);
  }
  g_unlink (path);
}

static void
test_lookup_errors (void)
{
  static const int64_t s23[] = { 2, 3 };
  g_autofree char *path = g_build_filename (tmpdir, "lk.safetensors", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (OviTensor) t = make_tensor (OVI_DTYPE_F32, 2, s23, 0);
  OviNamedTensor named[] = { { "net.w", t }, { "other.w", t } };
  g_autoptr (OviWeightFile) wf = NULL;
  g_autoptr (OviWeightFile) pf = NULL;
  OviTensor *r;
  int64_t want[] = { 3, 2 }, any[] = { -1, 3 };
  g_autofree char *msg = NULL;

  g_assert_true (ovi_safetensors_write (path, named, 2, NULL, &error));
  wf = ovi_weight_file_open (path, NULL, &error);
  g_assert_no_error (error);

  r = ovi_weight_file_get (wf, "net.missing", &error);
  g_assert_null (r);
  g_assert_error (error, OVI_ERROR, OVI_ERROR_MISSING_TENSOR);
  msg = g_strdup_printf ("%s: tensor 'net.missing' not found", path);
  g_assert_cmpstr (error->message, ==, msg);
  g_clear_error (&error);
  g_clear_pointer (&msg, g_free);

  r = ovi_weight_file_get_shaped (wf, "net.w", 2, want, &error);
  g_assert_null (r);
  g_assert_error (error, OVI_ERROR, OVI_ERROR_SHAPE);
  msg = g_strdup_printf ("%s: tensor 'net.w' has shape [2, 3], expected "
                         "[3, 2]",
                         path);
  g_assert_cmpstr (error->message, ==, msg);
  g_clear_error (&error);

  r = ovi_weight_file_get_shaped (wf, "net.w", 1, want, &error);
  g_assert_null (r);
  g_assert_error (error, OVI_ERROR, OVI_ERROR_SHAPE);
  g_clear_error (&error);

  r = ovi_weight_file_get_shaped (wf, "net.missing", 2, want, &error);
  g_assert_error (error, OVI_ERROR, OVI_ERROR_MISSING_TENSOR);
  g_clear_error (&error);

  r = ovi_weight_file_get_shaped (wf, "net.w", 2, any, &error);
  g_assert_no_error (error);
  g_assert_nonnull (r);
  ovi_tensor_unref (r);

  /* prefix stripping */
  pf = ovi_weight_file_open (path, "net.", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (ovi_weight_file_n_tensors (pf), ==, 1);
  g_assert_cmpstr (ovi_weight_file_name (pf, 0), ==, "w");
  g_assert_false (ovi_weight_file_contains (pf, "net.w"));
  g_assert_false (ovi_weight_file_contains (pf, "other.w"));

  /* weight-norm names match across the torch 2.1 renaming, both ways */
  {
    g_autofree char *wn = g_build_filename (tmpdir, "wn.safetensors", NULL);
    OviNamedTensor wnt[] = { { "ups.0.weight_g", t },
                             { "ups.0.weight_v", t },
                             { "conv.parametrizations.weight.original0", t } };
    g_autoptr (OviWeightFile) wf2 = NULL;
    OviTensor *a;

    g_assert_true (ovi_safetensors_write (wn, wnt, 3, NULL, &error));
    wf2 = ovi_weight_file_open (wn, NULL, &error);
    g_assert_no_error (error);
    g_assert_true (ovi_weight_file_contains (
        wf2, "ups.0.parametrizations.weight.original0"));
    a = ovi_weight_file_get (wf2, "ups.0.parametrizations.weight.original1",
                             &error);
    g_assert_no_error (error);
    ovi_tensor_unref (a);
    a = ovi_weight_file_get (wf2, "conv.weight_g", &error);
    g_assert_no_error (error);
    ovi_tensor_unref (a);
    g_assert_false (ovi_weight_file_contains (wf2, "conv.weight_v"));
    g_assert_false (ovi_weight_file_contains (wf2, "ups.1.weight_g"));
    g_unlink (wn);
  }

  /* nonexistent path, directory */
  g_assert_null (
      ovi_weight_file_open ("/nonexistent/x.safetensors", NULL, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "/nonexistent/x.safetensors"));
  g_clear_error (&error);
  g_assert_null (ovi_weight_file_open (tmpdir, NULL, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_IO);
  g_clear_error (&error);
  g_unlink (path);
}

/* builds a safetensors byte string from a header text and `data_len` data
 * bytes */
static GBytes *
st_bytes (const char *header, gsize data_len)
{
  gsize hl = strlen (header);
  guint8 *buf = g_malloc0 (8 + hl + data_len);

  for (int i = 0; i < 8; i++)
    buf[i] = (guint8) ((guint64) hl >> (8 * i));
  memcpy (buf + 8, header, hl);
  for (gsize i = 0; i < data_len; i++)
    buf[8 + hl + i] = (guint8) i;
  return g_bytes_new_take (buf, 8 + hl + data_len);
}

static void
expect_format_error (GBytes *bytes, const char *substring)
{
  g_autoptr (GError) error = NULL;
  OviWeightFile *wf
      = ovi_weight_file_open_bytes (bytes, "bad.safetensors", NULL, &error);

  g_assert_null (wf);
  g_assert_error (error, OVI_ERROR, OVI_ERROR_FORMAT);
  g_assert_true (g_str_has_prefix (error->message, "bad.safetensors: "));
  if (substring && strstr (error->message, substring) == NULL)
    g_error ("message '%s' lacks '%s'", error->message, substring);
}

static void
test_bad_headers (void)
{
  static const struct {
    const char *header;
    gsize data_len;
    const char *why;
  } cases[] = {
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8,
      "not valid JSON" },
    { "[1,2]", 0, "not a JSON object" },
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
      "past the data section" },
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
      "need 12" },
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
      12, "overlap" },
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8,
      "after end" },
    { "{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
      "unsupported dtype 'Q4'" },
    { "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "no dtype" },
    { "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "no shape" },
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "data_offsets" },
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8,
      "invalid shape" },
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8,
      "invalid shape" },
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,"
      "4294967296],\"data_offsets\":[0,8]}}",
      8, "overflows" },
    /* no elements, but the other dims overflow int64 strides (fuzz-lora) */
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[16,1099511099511627776,0],"
      "\"data_offsets\":[0,0]}}",
      0, "overflows" },
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
      "\"data_offsets\":[0,4]}}",
      4, "dimensions" },
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,-8]}}", 8,
      "invalid data_offsets" },
    { "{\"__metadata__\":{\"k\":1}}", 0, "not a string" },
    { "{\"a\":5}", 0, "not an object" },
    { "{\"a\\nb\":{\"dtype\":\"F32\",\"shape\":[1],"
      "\"data_offsets\":[0,4]}}",
      4, "'a\\nb' contains control characters" },
    { "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]"
      "]]]]]]]]]]]]]]]]}",
      0, "deeper" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr (GBytes) b = st_bytes (cases[i].header, cases[i].data_len);

    g_test_message ("case %" G_GSIZE_FORMAT ": %s", i, cases[i].header);
    expect_format_error (b, cases[i].why);
  }
  {
    /* header length larger than the file */
    guint8 raw[16] = { 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, '{', '}' };
    g_autoptr (GBytes) b = g_bytes_new (raw, sizeof (raw));

    expect_format_error (b, "exceeds the file size");
  }
  {
    /* a NUL inside the header */
    g_autoptr (GBytes) b = st_bytes ("{\"a\":{}}  ", 0);
    guint8 *copy = g_memdup2 (g_bytes_get_data (b, NULL), g_bytes_get_size (b));
    g_autoptr (GBytes) c = NULL;

    copy[12] = 0;
    c = g_bytes_new_take (copy, g_bytes_get_size (b));
    expect_format_error (c, NULL);
  }
}

/* every truncation of a valid file fails cleanly with a format error */
static void
test_truncations (void)
{
  static const int64_t s23[] = { 2, 3 }, s4[] = { 4 };
  g_autofree char *path = g_build_filename (tmpdir, "tr.safetensors", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (OviTensor) a = make_tensor (OVI_DTYPE_F32, 2, s23, 0);
  g_autoptr (OviTensor) b = make_tensor (OVI_DTYPE_BF16, 1, s4, 1);
  OviNamedTensor named[] = { { "a", a }, { "b", b } };
  g_autofree char *contents = NULL;
  gsize len;

  g_assert_true (ovi_safetensors_write (path, named, 2, NULL, &error));
  g_assert_true (g_file_get_contents (path, &contents, &len, &error));
  for (gsize cut = 0; cut < len; cut++) {
    g_autofree char *tpath = g_build_filename (tmpdir, "cut.safetensors", NULL);
    OviWeightFile *wf;

    g_assert_true (g_file_set_contents (tpath, contents, (gssize) cut, &error));
    wf = ovi_weight_file_open (tpath, NULL, &error);
    g_assert_null (wf);
    g_assert_error (error, OVI_ERROR, OVI_ERROR_FORMAT);
    g_assert_true (g_str_has_prefix (error->message, tpath));
    g_clear_error (&error);
    g_unlink (tpath);
  }
  g_unlink (path);
}

static gboolean
manifest_dtype (const char *spec, OviDType *dtype, int *ndim, int64_t *shape)
{
  const char *br = strchr (spec, '[');
  g_autofree char *dname = NULL;
  g_auto (GStrv) dims = NULL;
  g_autofree char *inner = NULL;

  if (br == NULL)
    return FALSE;
  dname = g_strndup (spec, br - spec);
  if (strcmp (dname, "float32") == 0)
    *dtype = OVI_DTYPE_F32;
  else if (strcmp (dname, "int64") == 0)
    *dtype = OVI_DTYPE_I64;
  else if (strcmp (dname, "uint8") == 0)
    *dtype = OVI_DTYPE_U8;
  else if (strcmp (dname, "float64") == 0)
    *dtype = OVI_DTYPE_F64;
  else
    return FALSE;
  inner = g_strndup (br + 1, strlen (br + 1) - 1);
  *ndim = 0;
  if (*inner == '\0')
    return TRUE;
  dims = g_strsplit (inner, ",", -1);
  for (int i = 0; dims[i]; i++)
    shape[(*ndim)++] = g_ascii_strtoll (g_strstrip (dims[i]), NULL, 10);
  return TRUE;
}

static guint
check_manifest (const char *case_dir, JsonObject *block)
{
  g_autoptr (GError) error = NULL;
  const char *file = json_object_get_string_member (block, "file");
  JsonObject *tensors = json_object_get_object_member (block, "tensors");
  g_autofree char *path = g_build_filename (case_dir, file, NULL);
  g_autoptr (OviWeightFile) wf = ovi_weight_file_open (path, NULL, &error);
  g_autoptr (GList) names = json_object_get_members (tensors);

  g_assert_no_error (error);
  g_assert_cmpuint (ovi_weight_file_n_tensors (wf), ==,
                    json_object_get_size (tensors));
  for (GList *l = names; l; l = l->next) {
    OviDType dtype = OVI_DTYPE_F32;
    int ndim = 0;
    int64_t shape[OVI_MAX_DIMS];
    g_autoptr (OviTensor) t = NULL;

    g_assert_true (
        manifest_dtype (json_object_get_string_member (tensors, l->data),
                        &dtype, &ndim, shape));
    t = ovi_weight_file_get_shaped (wf, l->data, ndim, shape, &error);
    g_assert_no_error (error);
    g_assert_cmpint (t->dtype, ==, dtype);
  }
  g_test_message ("%s: %u tensors as in the manifest", path,
                  ovi_weight_file_n_tensors (wf));
  return ovi_weight_file_n_tensors (wf);
}

static void
test_golden (void)
{
  const char *golden = g_getenv ("OVI_GOLDEN_DIR");
  static const char *cases[]
      = { "fusion_dit", "t5", "video_vae", "audio", "sampler" };
  guint files = 0;

  if (golden == NULL || !g_file_test (golden, G_FILE_TEST_IS_DIR)) {
    g_test_skip ("OVI_GOLDEN_DIR not set");
    return;
  }
  for (gsize c = 0; c < G_N_ELEMENTS (cases); c++) {
    g_autofree char *dir = g_build_filename (golden, cases[c], NULL);
    g_autofree char *cfg = g_build_filename (dir, "config.json", NULL);
    g_autoptr (JsonParser) parser = json_parser_new ();
    g_autoptr (GError) error = NULL;
    JsonObject *root;
    g_autoptr (GList) keys = NULL;

    g_assert_true (json_parser_load_from_file (parser, cfg, &error));
    root = json_node_get_object (json_parser_get_root (parser));
    keys = json_object_get_members (root);
    for (GList *l = keys; l; l = l->next) {
      JsonNode *n = json_object_get_member (root, l->data);
      JsonObject *o;

      if (!JSON_NODE_HOLDS_OBJECT (n))
        continue;
      o = json_node_get_object (n);
      if (json_object_has_member (o, "file")
          && json_object_has_member (o, "tensors")
          && g_str_has_suffix (json_object_get_string_member (o, "file"),
                               ".safetensors")) {
        g_assert_cmpuint (check_manifest (dir, o), >, 0);
        files++;
      }
    }
  }
  g_assert_cmpuint (files, >=, 9);
}

int
main (int argc, char **argv)
{
  int ret;

  g_test_init (&argc, &argv, NULL);
  tmpdir = g_dir_make_tmp ("ovi-st-XXXXXX", NULL);
  g_test_add_func ("/weights/safetensors/roundtrip", test_roundtrip);
  g_test_add_func ("/weights/safetensors/lookup-errors", test_lookup_errors);
  g_test_add_func ("/weights/safetensors/bad-headers", test_bad_headers);
  g_test_add_func ("/weights/safetensors/truncations", test_truncations);
  g_test_add_func ("/weights/safetensors/golden", test_golden);
  ret = g_test_run ();
  g_rmdir (tmpdir);
  g_free (tmpdir);
  return ret;
}
