/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: tests of the PyTorch zip checkpoint reader (allow-list
 * unpickler, zip parsing, malformed input) and writer. */
#include "fuzz-zip.h"
#include "ovi-weights.h"

#include <glib/gstdio.h>
#include <string.h>

static char *tmpdir;

/* ---- building test files ---- */

/* pickle text with a tiny escape language: the test strings are written
 * as C literals, so this only joins pieces */
static GBytes *
zip_with_pickle (const guint8 *pkl, gsize len, const void *storage,
                 gsize storage_len)
{
  static const float zeros[16];
  OviZipItem items[] = {
    { "archive/data.pkl", pkl, len },
    { "archive/data/0", storage ? storage : zeros,
      storage ? storage_len : sizeof (zeros) },
    { "archive/version", "3\n", 2 },
  };
  return ovi_zip_stored (items, G_N_ELEMENTS (items));
}

#define PKL(lit) (const guint8 *) (lit), sizeof (lit) - 1

/* {'w': _rebuild_tensor_v2(storage('0', FloatStorage, numel), OFF, SIZE,
 *  STRIDE, False, OrderedDict())} with the parts given as pickle text */
#define TENSOR_PKL(numel, off, size, stride)                                   \
  "\x80\x02}q\x00X\x01\x00\x00\x00w"                                           \
  "ctorch._utils\n_rebuild_tensor_v2\n"                                        \
  "((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00"          \
  "0X\x03\x00\x00\x00"                                                         \
  "cpu" numel "tQ" off size stride "\x89"                                      \
  "ccollections\nOrderedDict\n)Rt"                                             \
  "Rs."

static void
expect_error (GBytes *bytes, int code, const char *substring)
{
  g_autoptr (GError) error = NULL;
  OviWeightFile *wf
      = ovi_weight_file_open_bytes (bytes, "bad.pth", NULL, &error);

  if (wf != NULL)
    g_error ("expected an error containing '%s', the file opened",
             substring ? substring : "");
  g_assert_error (error, OVI_ERROR, code);
  g_assert_true (g_str_has_prefix (error->message, "bad.pth: "));
  if (substring && strstr (error->message, substring) == NULL)
    g_error ("message '%s' lacks '%s'", error->message, substring);
}

static void
test_minimal_valid (void)
{
  /* numel 6, offset 1, size (2, 2), stride (1, 2): a transposed view */
  static const guint8 pkl[]
      = TENSOR_PKL ("K\x06", "K\x01", "K\x02K\x02\x86", "K\x01K\x02\x86");
  float data[6] = { 0, 1, 2, 3, 4, 5 };
  g_autoptr (GBytes) b
      = zip_with_pickle (pkl, sizeof (pkl) - 1, data, sizeof (data));
  g_autoptr (GError) error = NULL;
  g_autoptr (OviWeightFile) wf
      = ovi_weight_file_open_bytes (b, "ok.pth", NULL, &error);
  g_autoptr (OviTensor) t = NULL;
  int64_t idx[2];

  g_assert_no_error (error);
  g_assert_cmpuint (ovi_weight_file_n_tensors (wf), ==, 1);
  t = ovi_weight_file_get (wf, "w", &error);
  g_assert_no_error (error);
  g_assert_cmpint (t->ndim, ==, 2);
  g_assert_false (ovi_tensor_is_contiguous (t));
  idx[0] = 0;
  idx[1] = 1;
  g_assert_cmpfloat (ovi_tensor_get_f64 (t, idx), ==, 3.0);
  idx[0] = 1;
  idx[1] = 1;
  g_assert_cmpfloat (ovi_tensor_get_f64 (t, idx), ==, 4.0);
}

static void
test_malformed_pickles (void)
{
  static const struct {
    const char *pkl;
    gsize len;
    int code;
    const char *why;
  } cases[] = {
#define C(lit, code, why) { lit, sizeof (lit) - 1, code, why }
    /* refused globals: nothing is executed, the file is refused */
    C ("\x80\x02"
       "cos\nsystem\nX\x05\x00\x00\x00touchq\x00\x85R.",
       OVI_ERROR_UNSAFE, "'os.system'"),
    C ("\x80\x02"
       "cposix\nsystem\n.",
       OVI_ERROR_UNSAFE, "'posix.system'"),
    C ("\x80\x02"
       "cbuiltins\neval\n.",
       OVI_ERROR_UNSAFE, "'builtins.eval'"),
    C ("\x80\x02"
       "csubprocess\nPopen\n.",
       OVI_ERROR_UNSAFE, "'subprocess.Popen'"),
    C ("\x80\x04\x8c\x02os\x8c\x06system\x93.", OVI_ERROR_UNSAFE,
       "'os.system'"),
    C ("\x80\x02"
       "ctorch\nload\n.",
       OVI_ERROR_UNSAFE, "'torch.load'"),
    C ("\x80\x02"
       "ctorch._utils\n_rebuild_qtensor\n.",
       OVI_ERROR_UNSAFE, "not on the allow-list"),
    /* structural damage */
    C ("\x80\x02.", OVI_ERROR_FORMAT, "underflow"),
    C ("\x80\x02s.", OVI_ERROR_FORMAT, "underflow"),
    C ("\x80\x02}", OVI_ERROR_FORMAT, "no STOP"),
    C ("\x80\x02h\x05.", OVI_ERROR_FORMAT, "memo entry 5"),
    C ("\x80\x02j\xff\xff\xff\xff.", OVI_ERROR_FORMAT, "memo"),
    C ("\x80\x02u.", OVI_ERROR_FORMAT, "MARK"),
    C ("\x80\x02(}u.", OVI_ERROR_FORMAT, "underflow"),
    C ("\x80\x02K\x01K\x02s.", OVI_ERROR_FORMAT, "underflow"),
    C ("\x80\x02]K\x01K\x02s.", OVI_ERROR_FORMAT, "not a dict"),
    C ("\x80\x02}K\x01"
       "a.",
       OVI_ERROR_FORMAT, "not a list"),
    C ("\x80\x02X\xff\xff\xff\x7f", OVI_ERROR_FORMAT, "truncated"),
    C ("\x80\x02X\x02\x00\x00\x00\xc3\x28.", OVI_ERROR_FORMAT, "UTF-8"),
    C ("\x80\x02\xff.", OVI_ERROR_FORMAT, "opcode 0xff"),
    C ("\x80\x02"
       "cos\nsys",
       OVI_ERROR_FORMAT, "truncated"),
    C ("\x80\x09.", OVI_ERROR_FORMAT, "protocol 9"),
    C ("\x80\x02K\x01)R.", OVI_ERROR_FORMAT, "not a callable"),
    C ("\x80\x02"
       "ctorch\nFloatStorage\n)R.",
       OVI_ERROR_FORMAT, "cannot be called"),
    C ("\x80\x02"
       "ccollections\nOrderedDict\nK\x01R.",
       OVI_ERROR_FORMAT, "not a tuple"),
    C ("\x80\x02K\x01Q.", OVI_ERROR_FORMAT, "persistent id"),
    C ("\x80\x02(X\x07\x00\x00\x00storageK\x01K\x01K\x01K\x01tQ.",
       OVI_ERROR_FORMAT, "storage type"),
    C ("\x80\x02K\x01K\x01"
       "b.",
       OVI_ERROR_FORMAT, "BUILD"),
    /* a list that contains itself: flattening must stop */
    C ("\x80\x02]q\x00h\x00"
       "a.",
       OVI_ERROR_FORMAT, "cyclic"),
    /* sizes and strides */
    C (TENSOR_PKL ("K\x10", "K\x00", "K\x11\x85", "K\x01\x85"),
       OVI_ERROR_FORMAT, "reaches element 16"),
    C (TENSOR_PKL ("K\x10", "K\x0f", "K\x02\x85", "K\x01\x85"),
       OVI_ERROR_FORMAT, "reaches element 16"),
    C (TENSOR_PKL ("K\x10", "K\x00", "K\x04K\x04\x86", "K\x04K\x02\x86"),
       OVI_ERROR_FORMAT, "reaches element"),
    C (TENSOR_PKL ("K\x10", "K\x00",
                   "\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f"
                   "\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f\x86",
                   "K\x01K\x01\x86"),
       OVI_ERROR_FORMAT, "reaches element"),
    C (TENSOR_PKL ("K\x10", "K\x00",
                   "\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x40\x85", "K\x08\x85"),
       OVI_ERROR_FORMAT, "overflow"),
    C (TENSOR_PKL ("K\x10", "K\x00", "J\xff\xff\xff\xff\x85", "K\x01\x85"),
       OVI_ERROR_FORMAT, "non-negative"),
    C (TENSOR_PKL ("K\x10", "J\xff\xff\xff\xff", "K\x01\x85", "K\x01\x85"),
       OVI_ERROR_FORMAT, "offset"),
    C (TENSOR_PKL ("K\x10", "K\x00", "K\x02\x85", "K\x01K\x01\x86"),
       OVI_ERROR_FORMAT, "stride 2"),
    C (TENSOR_PKL ("K\x40", "K\x00", "K\x01\x85", "K\x01\x85"),
       OVI_ERROR_FORMAT, "less than its 64"),
    C (TENSOR_PKL ("\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01", "K\x00",
                   "K\x01\x85", "K\x01\x85"),
       OVI_ERROR_FORMAT, "element count"),
    C (TENSOR_PKL ("K\x10", "K\x00",
                   "(K\x01K\x01K\x01K\x01K\x01K\x01K\x01"
                   "K\x01K\x01t",
                   "(K\x01K\x01K\x01K\x01K\x01K\x01K\x01K\x01K\x01t"),
       OVI_ERROR_FORMAT, "dimensions"),
#undef C
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr (GBytes) b = zip_with_pickle ((const guint8 *) cases[i].pkl,
                                            cases[i].len, NULL, 0);

    g_test_message ("case %" G_GSIZE_FORMAT, i);
    expect_error (b, cases[i].code, cases[i].why);
  }
}

static void
test_missing_storage (void)
{
  static const guint8 pkl[]
      = TENSOR_PKL ("K\x01", "K\x00", "K\x01\x85", "K\x01\x85");
  OviZipItem items[] = {
    { "archive/data.pkl", pkl, sizeof (pkl) - 1 },
    { "archive/data/1", "abcd", 4 },
  };
  g_autoptr (GBytes) b = ovi_zip_stored (items, G_N_ELEMENTS (items));
  OviZipItem items2[] = { { "archive/version", "3\n", 2 } };
  g_autoptr (GBytes) b2 = ovi_zip_stored (items2, 1);

  expect_error (b, OVI_ERROR_FORMAT, "archive/data/0' is missing");
  expect_error (b2, OVI_ERROR_FORMAT, "data.pkl");
}

static void
test_deep_nesting (void)
{
  /* 100 nested lists: refused with an error, not a stack overflow */
  GByteArray *p = g_byte_array_new ();
  g_autoptr (GBytes) b = NULL;
  g_autoptr (GBytes) zipped = NULL;

  g_byte_array_append (p, (const guint8 *) "\x80\x02", 2);
  for (int i = 0; i < 100; i++)
    g_byte_array_append (p, (const guint8 *) "]", 1);
  for (int i = 0; i < 99; i++)
    g_byte_array_append (p, (const guint8 *) "a", 1);
  g_byte_array_append (p, (const guint8 *) ".", 1);
  b = g_byte_array_free_to_bytes (p);
  zipped = zip_with_pickle (g_bytes_get_data (b, NULL), g_bytes_get_size (b),
                            NULL, 0);
  expect_error (zipped, OVI_ERROR_FORMAT, "deeper");

  {
    /* a DAG whose paths explode (each list holds the previous twice) */
    GByteArray *q = g_byte_array_new ();
    g_autoptr (GBytes) qb = NULL;
    g_autoptr (GBytes) qz = NULL;

    g_byte_array_append (q, (const guint8 *) "\x80\x02]q\x00", 5);
    for (int i = 1; i < 60; i++) {
      /* ] ( h i-1 h i-1 e q i */
      guint8 ops[] = { 'h', (guint8) (i - 1), 'h', (guint8) (i - 1), 'e',
                       'q', (guint8) i };

      g_byte_array_append (q, (const guint8 *) "](", 2);
      g_byte_array_append (q, ops, 7);
    }
    g_byte_array_append (q, (const guint8 *) ".", 1);
    qb = g_byte_array_free_to_bytes (q);
    qz = zip_with_pickle (g_bytes_get_data (qb, NULL), g_bytes_get_size (qb),
                          NULL, 0);
    expect_error (qz, OVI_ERROR_FORMAT, "too large");
  }
}

static void
test_zip_damage (void)
{
  static const guint8 pkl[]
      = TENSOR_PKL ("K\x01", "K\x00", "K\x01\x85", "K\x01\x85");
  g_autoptr (GBytes) good = zip_with_pickle (pkl, sizeof (pkl) - 1, NULL, 0);
  gsize n = g_bytes_get_size (good);
  const guint8 *src = g_bytes_get_data (good, NULL);
  g_autoptr (GError) error = NULL;

  {
    OviWeightFile *wf
        = ovi_weight_file_open_bytes (good, "ok.pth", NULL, &error);
    g_assert_no_error (error);
    ovi_weight_file_free (wf);
  }
  /* compressed entry: method 8 in the central directory */
  {
    guint8 *copy = g_memdup2 (src, n);
    g_autoptr (GBytes) b = NULL;

    for (gsize i = 0; i + 4 <= n; i++)
      if (memcmp (copy + i, "PK\x01\x02", 4) == 0) {
        copy[i + 10] = 8;
        break;
      }
    b = g_bytes_new_take (copy, n);
    expect_error (b, OVI_ERROR_FORMAT, "compressed");
  }
  /* every truncation */
  for (gsize cut = 0; cut < n; cut++) {
    g_autoptr (GBytes) b = g_bytes_new (src, cut);
    OviWeightFile *wf = ovi_weight_file_open_bytes (b, "bad.pth", NULL, &error);

    g_assert_null (wf);
    g_assert_error (error, OVI_ERROR, OVI_ERROR_FORMAT);
    g_clear_error (&error);
  }
  /* every single-byte corruption: an error or a file, never a crash */
  for (gsize i = 0; i < n; i++) {
    static const guint8 values[] = { 0x00, 0xff, 0x7f, 0x80 };

    for (gsize v = 0; v < G_N_ELEMENTS (values); v++) {
      guint8 *copy = g_memdup2 (src, n);
      g_autoptr (GBytes) b = NULL;
      OviWeightFile *wf;

      copy[i] = values[v];
      b = g_bytes_new_take (copy, n);
      wf = ovi_weight_file_open_bytes (b, "bad.pth", NULL, &error);
      g_assert_true ((wf == NULL) == (error != NULL));
      if (wf) {
        for (guint k = 0; k < ovi_weight_file_n_tensors (wf); k++) {
          g_autoptr (OviTensor) t
              = ovi_weight_file_get (wf, ovi_weight_file_name (wf, k), NULL);
          int64_t idx[OVI_MAX_DIMS] = { 0 };
          if (ovi_tensor_numel (t) > 0)
            (void) ovi_tensor_get_f64 (t, idx);
        }
      }
      ovi_weight_file_free (wf);
      g_clear_error (&error);
    }
  }
}

static void
test_write_read (void)
{
  static const int64_t s34[] = { 3, 4 }, s5[] = { 5 }, s0[] = { 0 };
  g_autofree char *path = g_build_filename (tmpdir, "w.pth", NULL);
  g_autoptr (GError) error = NULL;
  OviTensor *ts[OVI_N_DTYPES + 3];
  OviNamedTensor named[OVI_N_DTYPES + 3];
  guint n = 0;
  int order[] = { 1, 0 };

  for (int d = 0; d < OVI_N_DTYPES; d++) {
    ts[n] = ovi_tensor_new ((OviDType) d, 2, s34, &error);
    g_assert_no_error (error);
    for (gsize k = 0; k < ovi_tensor_nbytes (ts[n]); k++)
      ((guint8 *) ovi_tensor_data (ts[n]))[k] = (guint8) (k * 7 + d);
    if ((OviDType) d == OVI_DTYPE_BOOL)
      for (gsize k = 0; k < 12; k++)
        ((guint8 *) ovi_tensor_data (ts[n]))[k] &= 1;
    named[n].name = g_strdup_printf ("layer.%s", ovi_dtype_name ((OviDType) d));
    named[n].tensor = ts[n];
    n++;
  }
  ts[n] = ovi_tensor_permute (ts[OVI_DTYPE_F32], order);
  named[n].name = g_strdup ("layer.transposed");
  named[n].tensor = ts[n];
  n++;
  ts[n] = ovi_tensor_new (OVI_DTYPE_F16, 0, s5, &error);
  named[n].name = g_strdup ("scalar");
  named[n].tensor = ts[n];
  n++;
  ts[n] = ovi_tensor_new (OVI_DTYPE_F32, 1, s0, &error);
  named[n].name = g_strdup ("empty");
  named[n].tensor = ts[n];
  n++;

  g_assert_true (ovi_pth_write (path, named, n, "generator", &error));
  g_assert_no_error (error);
  {
    g_autoptr (OviWeightFile) wf
        = ovi_weight_file_open (path, "generator.", &error);

    g_assert_no_error (error);
    g_assert_cmpuint (ovi_weight_file_n_tensors (wf), ==, n);
    for (guint i = 0; i < n; i++) {
      g_autoptr (OviTensor) t = ovi_weight_file_get (wf, named[i].name, &error);
      int64_t idx[OVI_MAX_DIMS] = { 0 };
      int64_t cnt = ovi_tensor_numel (t);

      g_assert_no_error (error);
      g_assert_cmpstr (ovi_weight_file_name (wf, i), ==, named[i].name);
      g_assert_cmpint (t->dtype, ==, named[i].tensor->dtype);
      g_assert_true (ovi_tensor_has_shape (t, named[i].tensor->ndim,
                                           named[i].tensor->shape));
      g_assert_true (ovi_tensor_is_contiguous (t));
      for (int64_t k = 0; k < cnt; k++) {
        double x = ovi_tensor_get_f64 (t, idx);
        double y = ovi_tensor_get_f64 (named[i].tensor, idx);

        g_assert_true (x == y || (x != x && y != y));
        for (int d = t->ndim - 1; d >= 0; d--) {
          if (++idx[d] < t->shape[d])
            break;
          idx[d] = 0;
        }
      }
    }
  }
  /* every truncation of a real writer output */
  {
    g_autofree char *contents = NULL;
    gsize len;

    g_assert_true (g_file_get_contents (path, &contents, &len, &error));
    for (gsize cut = 0; cut < len; cut += 1) {
      g_autoptr (GBytes) b = g_bytes_new (contents, cut);
      OviWeightFile *wf
          = ovi_weight_file_open_bytes (b, "cut.pth", NULL, &error);

      g_assert_null (wf);
      g_assert_error (error, OVI_ERROR, OVI_ERROR_FORMAT);
      g_clear_error (&error);
    }
  }
  for (guint i = 0; i < n; i++) {
    g_free ((char *) named[i].name);
    ovi_tensor_unref (ts[i]);
  }
  g_unlink (path);
}

int
main (int argc, char **argv)
{
  int ret;

  g_test_init (&argc, &argv, NULL);
  tmpdir = g_dir_make_tmp ("ovi-pth-XXXXXX", NULL);
  g_test_add_func ("/weights/pth/minimal", test_minimal_valid);
  g_test_add_func ("/weights/pth/malformed-pickles", test_malformed_pickles);
  g_test_add_func ("/weights/pth/missing-storage", test_missing_storage);
  g_test_add_func ("/weights/pth/deep-nesting", test_deep_nesting);
  g_test_add_func ("/weights/pth/zip-damage", test_zip_damage);
  g_test_add_func ("/weights/pth/write-read", test_write_read);
  ret = g_test_run ();
  g_rmdir (tmpdir);
  g_free (tmpdir);
  return ret;
}
