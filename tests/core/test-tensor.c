/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: tensor and dtype tests.
 *
 * Decoding of every bf16 / f16 / f8_e4m3fn code is checked against an
 * independent formula (and, for f16, the compiler's _Float16 conversion);
 * encoding against an independent nearest-value search with ties to even
 * over exact midpoints, their neighbours and random floats. f8 saturates at
 * +-448 (the project's rule; inf included) and keeps NaN a NaN.
 */
#include "ovi-tensor.h"

#include <math.h>
#include <string.h>

static guint32 seed;

static double
bf16_formula (uint16_t v)
{
  int s = v >> 15, e = (v >> 7) & 0xff, m = v & 0x7f;
  double r;

  if (e == 0xff)
    r = m ? NAN : INFINITY;
  else if (e == 0)
    r = ldexp (m / 128.0, -126);
  else
    r = ldexp (1 + m / 128.0, e - 127);
  return s ? -r : r;
}

static double
f16_formula (uint16_t v)
{
  int s = v >> 15, e = (v >> 10) & 0x1f, m = v & 0x3ff;
  double r;

  if (e == 0x1f)
    r = m ? NAN : INFINITY;
  else if (e == 0)
    r = ldexp (m / 1024.0, -14);
  else
    r = ldexp (1 + m / 1024.0, e - 15);
  return s ? -r : r;
}

static double
f8_formula (uint8_t v)
{
  int s = v >> 7, e = (v >> 3) & 0xf, m = v & 7;
  double r;

  if (e == 0xf && m == 7)
    return NAN;
  if (e == 0)
    r = ldexp (m / 8.0, -6);
  else
    r = ldexp (1 + m / 8.0, e - 7);
  return s ? -r : r;
}

static gboolean
same_value (double a, double b)
{
  if (isnan (a) || isnan (b))
    return isnan (a) && isnan (b);
  return a == b && signbit (a) == signbit (b);
}

static void
test_decode_all (void)
{
  for (uint32_t v = 0; v < 65536; v++) {
    double want = bf16_formula ((uint16_t) v);
    g_assert_true (same_value (ovi_bf16_to_f32 ((uint16_t) v), want));
    want = f16_formula ((uint16_t) v);
    g_assert_true (same_value (ovi_f16_to_f32 ((uint16_t) v), want));
#if defined(__FLT16_MAX__)
    {
      _Float16 h;
      uint16_t bits = (uint16_t) v;
      memcpy (&h, &bits, 2);
      g_assert_true (same_value (ovi_f16_to_f32 (bits), (float) h));
    }
#endif
  }
  for (int v = 0; v < 256; v++)
    g_assert_true (
        same_value (ovi_f8e4m3_to_f32 ((uint8_t) v), f8_formula ((uint8_t) v)));
  /* landmarks */
  g_assert_cmpfloat (ovi_f8e4m3_to_f32 (0x7e), ==, 448.0f);
  g_assert_cmpfloat (ovi_f8e4m3_to_f32 (0x38), ==, 1.0f);
  g_assert_cmpfloat (ovi_f8e4m3_to_f32 (0x01), ==, ldexpf (1, -9));
  g_assert_true (isnan (ovi_f8e4m3_to_f32 (0x7f)));
  g_assert_true (isnan (ovi_f8e4m3_to_f32 (0xff)));
  g_assert_cmpfloat (ovi_f16_to_f32 (0x7bff), ==, 65504.0f);
  g_assert_cmpfloat (ovi_bf16_to_f32 (0x3f80), ==, 1.0f);
}

/* the expected code for f given the positive finite codes sorted by value:
 * nearest value, ties to the even code; above the top the format's rule */
typedef struct {
  int n;
  double *val;
  uint32_t *code;
  uint32_t sign_bit;
  uint32_t nan_code;
  double overflow_at; /* |f| >= this: overflow_code */
  uint32_t overflow_code;
} Format;

static uint32_t
expect_encode (const Format *fm, double f)
{
  double a = fabs (f);
  uint32_t sign = signbit (f) ? fm->sign_bit : 0;
  int lo = 0, hi = fm->n - 1;

  if (isnan (f))
    return G_MAXUINT32; /* any NaN */
  if (a >= fm->overflow_at)
    return sign | fm->overflow_code;
  if (a >= fm->val[hi])
    return sign | fm->code[hi];
  while (hi - lo > 1) {
    int mid = (lo + hi) / 2;
    if (fm->val[mid] <= a)
      lo = mid;
    else
      hi = mid;
  }
  {
    double dl = a - fm->val[lo], dh = fm->val[hi] - a;
    uint32_t c;
    if (dl < dh)
      c = fm->code[lo];
    else if (dh < dl)
      c = fm->code[hi];
    else
      c = (fm->code[lo] & 1) ? fm->code[hi] : fm->code[lo];
    return sign | c;
  }
}

static void
format_init (Format *fm, int bits, double (*decode) (uint32_t))
{
  int n = 0;
  uint32_t half = 1u << (bits - 1);

  fm->val = g_new (double, half);
  fm->code = g_new (uint32_t, half);
  for (uint32_t c = 0; c < half; c++) {
    double v = decode (c);
    if (!isfinite (v))
      continue;
    fm->val[n] = v;
    fm->code[n] = c;
    n++;
  }
  fm->n = n;
  fm->sign_bit = half;
}

static double
dec_bf16 (uint32_t c)
{
  return bf16_formula ((uint16_t) c);
}

static double
dec_f16 (uint32_t c)
{
  return f16_formula ((uint16_t) c);
}

static double
dec_f8 (uint32_t c)
{
  return f8_formula ((uint8_t) c);
}

typedef uint32_t (*Encoder) (float f);

static uint32_t
enc_bf16 (float f)
{
  return ovi_f32_to_bf16 (f);
}

static uint32_t
enc_f16 (float f)
{
  return ovi_f32_to_f16 (f);
}

static uint32_t
enc_f8 (float f)
{
  return ovi_f32_to_f8e4m3 (f);
}

static void
check_encode (const Format *fm, Encoder enc, double (*decode) (uint32_t),
              float f, const char *name)
{
  uint32_t want = expect_encode (fm, f), got = enc (f);

  if (want == G_MAXUINT32) {
    if (!isnan (decode (got)))
      g_error ("%s: NaN encoded as 0x%x", name, got);
    return;
  }
  if (got != want)
    g_error ("%s: %.9g (%a) encoded as 0x%x, expected 0x%x", name, f, f, got,
             want);
}

static void
check_format (Format *fm, Encoder enc, double (*decode) (uint32_t),
              const char *name, GRand *rand)
{
  /* every code round-trips */
  for (int i = 0; i < fm->n; i++) {
    check_encode (fm, enc, decode, (float) fm->val[i], name);
    check_encode (fm, enc, decode, (float) -fm->val[i], name);
    g_assert_cmpuint (enc ((float) fm->val[i]), ==, fm->code[i]);
  }
  /* exact midpoints (ties) and their float neighbours */
  for (int i = 0; i + 1 < fm->n; i++) {
    float mid = (float) ((fm->val[i] + fm->val[i + 1]) / 2);
    g_assert_true ((double) mid == (fm->val[i] + fm->val[i + 1]) / 2);
    check_encode (fm, enc, decode, mid, name);
    check_encode (fm, enc, decode, -mid, name);
    check_encode (fm, enc, decode, nextafterf (mid, INFINITY), name);
    check_encode (fm, enc, decode, nextafterf (mid, 0), name);
  }
  /* random floats over the whole range of the format */
  for (int i = 0; i < 200000; i++) {
    uint32_t u = g_rand_int (rand);
    float f;
    memcpy (&f, &u, 4);
    if (fabsf (f) > fm->overflow_at * 4 || fabsf (f) < fm->val[1] / 4)
      f = (float) (g_rand_double_range (rand, -1, 1) * fm->val[fm->n - 1]
                   * ldexp (1, -g_rand_int_range (rand, 0, 40)));
    check_encode (fm, enc, decode, f, name);
  }
  check_encode (fm, enc, decode, NAN, name);
  check_encode (fm, enc, decode, INFINITY, name);
  check_encode (fm, enc, decode, -INFINITY, name);
}

static void
test_encode (void)
{
  GRand *rand = g_rand_new_with_seed (seed);
  Format bf = { 0 }, h = { 0 }, f8 = { 0 };

  format_init (&bf, 16, dec_bf16);
  bf.overflow_at = ldexp (2 - ldexp (1, -8), 127); /* midpoint max..2^128 */
  bf.overflow_code = 0x7f80;
  check_format (&bf, enc_bf16, dec_bf16, "bf16", rand);

  format_init (&h, 16, dec_f16);
  h.overflow_at = 65520.0;
  h.overflow_code = 0x7c00;
  check_format (&h, enc_f16, dec_f16, "f16", rand);
#if defined(__FLT16_MAX__)
  /* the compiler's own conversion agrees */
  for (int i = 0; i < 200000; i++) {
    float f = (float) g_rand_double_range (rand, -70000, 70000)
              * (float) ldexp (1, -g_rand_int_range (rand, 0, 30));
    _Float16 c = (_Float16) f;
    uint16_t bits;
    memcpy (&bits, &c, 2);
    g_assert_cmpuint (ovi_f32_to_f16 (f), ==, bits);
  }
#endif

  format_init (&f8, 8, dec_f8);
  f8.overflow_at = 448.0; /* saturating */
  f8.overflow_code = 0x7e;
  check_format (&f8, enc_f8, dec_f8, "f8_e4m3", rand);
  g_assert_cmpuint (ovi_f32_to_f8e4m3 (1e9f), ==, 0x7e);
  g_assert_cmpuint (ovi_f32_to_f8e4m3 (-500.0f), ==, 0xfe);
  g_assert_cmpuint (ovi_f32_to_f8e4m3 (INFINITY), ==, 0x7e);
  g_assert_cmpuint (ovi_f32_to_f8e4m3 (464.0f), ==, 0x7e);
  g_assert_cmpuint (ovi_f32_to_f8e4m3 (NAN) & 0x7f, ==, 0x7f);
  g_assert_cmpuint (ovi_f32_to_bf16 (1.0f + ldexpf (1, -8)), ==, 0x3f80);
  g_assert_cmpuint (ovi_f32_to_bf16 (1.0f + 3 * ldexpf (1, -8)), ==, 0x3f82);
  g_assert_true (isnan (ovi_bf16_to_f32 (ovi_f32_to_bf16 (NAN))));
  g_assert_true (isnan (ovi_f16_to_f32 (ovi_f32_to_f16 (NAN))));
  g_assert_cmpuint (ovi_f32_to_f16 (65519.0f), ==, 0x7bff);
  g_assert_cmpuint (ovi_f32_to_f16 (65520.0f), ==, 0x7c00);

  g_free (bf.val);
  g_free (bf.code);
  g_free (h.val);
  g_free (h.code);
  g_free (f8.val);
  g_free (f8.code);
  g_rand_free (rand);
}

/* ---- views ---- */

static OviTensor *
iota (int ndim, const int64_t *shape)
{
  OviTensor *t = ovi_tensor_new_f32 (ndim, shape);
  float *d = ovi_tensor_data (t);

  for (int64_t i = 0; i < ovi_tensor_numel (t); i++)
    d[i] = (float) i;
  return t;
}

static void
test_views (void)
{
  int64_t shape[4] = { 2, 3, 4, 5 };
  g_autoptr (OviTensor) t = iota (4, shape);
  g_autoptr (OviTensor) n = ovi_tensor_narrow (t, 2, 1, 2);
  g_autoptr (OviTensor) s = ovi_tensor_select (t, 1, 2);
  g_autoptr (OviTensor) p = ovi_tensor_permute (t, (int[]){ 3, 1, 0, 2 });
  g_autoptr (OviTensor) r = ovi_tensor_reshape (t, 2, (int64_t[]){ 6, 20 });
  g_autoptr (OviTensor) pc = NULL;
  g_autoptr (OviTensor) nn = NULL;

  g_assert_true (ovi_tensor_is_contiguous (t));
  g_assert_false (ovi_tensor_is_contiguous (n));
  g_assert_false (ovi_tensor_is_contiguous (p));
  g_assert_true (ovi_tensor_has_shape (n, 4, (int64_t[]){ 2, 3, 2, 5 }));
  g_assert_true (ovi_tensor_has_shape (s, 3, (int64_t[]){ 2, 4, 5 }));
  g_assert_true (ovi_tensor_has_shape (p, 4, (int64_t[]){ 5, 3, 2, 4 }));
  for (int64_t a = 0; a < 2; a++)
    for (int64_t b = 0; b < 3; b++)
      for (int64_t c = 0; c < 4; c++)
        for (int64_t d = 0; d < 5; d++) {
          double v = ((a * 3 + b) * 4 + c) * 5 + d;
          if (c >= 1 && c < 3)
            g_assert_cmpfloat (
                ovi_tensor_get_f64 (n, (int64_t[]){ a, b, c - 1, d }), ==, v);
          if (b == 2)
            g_assert_cmpfloat (ovi_tensor_get_f64 (s, (int64_t[]){ a, c, d }),
                               ==, v);
          g_assert_cmpfloat (ovi_tensor_get_f64 (p, (int64_t[]){ d, b, a, c }),
                             ==, v);
          g_assert_cmpfloat (
              ovi_tensor_get_f64 (r, (int64_t[]){ a * 3 + b, c * 5 + d }), ==,
              v);
        }
  /* to_f32 materialises a permuted view in its own order */
  pc = ovi_tensor_to_f32 (p, NULL);
  g_assert_true (ovi_tensor_is_contiguous (pc));
  g_assert_cmpfloat (((float *) ovi_tensor_data (pc))[1], ==,
                     ovi_tensor_get_f64 (p, (int64_t[]){ 0, 0, 0, 1 }));
  /* a view of a view keeps the offsets */
  nn = ovi_tensor_narrow (n, 3, 2, 3);
  g_assert_cmpfloat (ovi_tensor_get_f64 (nn, (int64_t[]){ 1, 2, 1, 0 }), ==,
                     ((1 * 3 + 2) * 4 + 2) * 5 + 2);
  /* the storage outlives the parent */
  g_clear_pointer (&t, ovi_tensor_unref);
  g_assert_cmpfloat (ovi_tensor_get_f64 (s, (int64_t[]){ 1, 3, 4 }), ==,
                     ((1 * 3 + 2) * 4 + 3) * 5 + 4);
}

static void
test_scale (void)
{
  g_autoptr (OviTensor) q
      = ovi_tensor_new (OVI_DTYPE_I8, 2, (int64_t[]){ 3, 2 }, NULL);
  g_autoptr (OviTensor) f = NULL;
  int8_t *d = ovi_tensor_data (q);
  int64_t three = 3;

  for (int i = 0; i < 6; i++)
    d[i] = (int8_t) (i - 3);
  q->scale = ovi_tensor_new (OVI_DTYPE_F32, 1, &three, NULL);
  for (int i = 0; i < 3; i++)
    ((float *) ovi_tensor_data (q->scale))[i] = 0.5f * (i + 1);
  f = ovi_tensor_to_f32 (q, NULL);
  for (int i = 0; i < 6; i++)
    g_assert_cmpfloat (((float *) ovi_tensor_data (f))[i], ==,
                       (i - 3) * 0.5f * (i / 2 + 1));
}

static void
test_dtype_names (void)
{
  for (int i = 0; i < OVI_N_DTYPES; i++) {
    OviDType d;
    g_assert_true (ovi_dtype_from_name (ovi_dtype_name ((OviDType) i), &d));
    g_assert_cmpint (d, ==, i);
  }
  g_assert_cmpuint (ovi_dtype_size (OVI_DTYPE_BF16), ==, 2);
  g_assert_cmpuint (ovi_dtype_size (OVI_DTYPE_F8_E4M3), ==, 1);
  g_assert_true (ovi_dtype_is_float (OVI_DTYPE_F8_E4M3));
  g_assert_false (ovi_dtype_is_float (OVI_DTYPE_I8));
}

int
main (int argc, char **argv)
{
  const char *env = g_getenv ("OVI_TEST_SEED");

  g_test_init (&argc, &argv, NULL);
  seed = env ? (guint32) g_ascii_strtoull (env, NULL, 10) : 20251122u;
  g_print ("# random seed %u (set OVI_TEST_SEED to change)\n", seed);
  g_test_add_func ("/core/dtype-decode-all", test_decode_all);
  g_test_add_func ("/core/dtype-encode", test_encode);
  g_test_add_func ("/core/dtype-names", test_dtype_names);
  g_test_add_func ("/core/views", test_views);
  g_test_add_func ("/core/scale", test_scale);
  return g_test_run ();
}
