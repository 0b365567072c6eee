/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi op tests: random tensors and independent double references. */
#pragma once

#include "ovi-backend.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

extern GRand *test_rand;
extern guint32 test_seed;

static inline void
test_util_init (void)
{
  const char *env = g_getenv ("OVI_TEST_SEED");

  test_seed = env ? (guint32) g_ascii_strtoull (env, NULL, 10) : 20251122u;
  g_print ("# random seed %u (set OVI_TEST_SEED to change)\n", test_seed);
  test_rand = g_rand_new_with_seed (test_seed);
}

static inline double
urand (double lo, double hi)
{
  return g_rand_double_range (test_rand, lo, hi);
}

/* store one value as dtype (raw, no scale) */
static inline void
set_raw (OviTensor *t, int64_t flat, double v)
{
  char *p = (char *) ovi_tensor_data (t) + flat * ovi_dtype_size (t->dtype);

  switch (t->dtype) {
    case OVI_DTYPE_F32:
      *(float *) p = (float) v;
      break;
    case OVI_DTYPE_BF16:
      *(uint16_t *) p = ovi_f32_to_bf16 ((float) v);
      break;
    case OVI_DTYPE_F16:
      *(uint16_t *) p = ovi_f32_to_f16 ((float) v);
      break;
    case OVI_DTYPE_F8_E4M3:
      *(uint8_t *) p = ovi_f32_to_f8e4m3 ((float) v);
      break;
    case OVI_DTYPE_I8:
      *(int8_t *) p = (int8_t) lrint (CLAMP (v, -127, 127));
      break;
    default:
      g_assert_not_reached ();
  }
}

/* a contiguous host tensor of random values in [lo, hi]; I8 gets random
 * integers and a per-row scale, F8 a per-row (or per-tensor) scale */
static inline OviTensor *
rand_tensor (OviDType dtype, int ndim, const int64_t *shape, double lo,
             double hi)
{
  OviTensor *t = ovi_tensor_new (dtype, ndim, shape, NULL);
  int64_t n = ovi_tensor_numel (t);

  g_assert_nonnull (t);
  if (dtype == OVI_DTYPE_I8 || dtype == OVI_DTYPE_F8_E4M3) {
    gboolean per_row
        = ndim >= 1 && (dtype == OVI_DTYPE_I8 || g_rand_boolean (test_rand));
    int64_t ns = per_row ? shape[0] : 1;
    double range = dtype == OVI_DTYPE_I8 ? 127.0 : 448.0;
    t->scale = ovi_tensor_new (OVI_DTYPE_F32, 1, &ns, NULL);
    for (int64_t i = 0; i < ns; i++)
      ((float *) ovi_tensor_data (t->scale))[i]
          = (float) (MAX (fabs (lo), fabs (hi)) / range * urand (0.8, 1.2));
    for (int64_t i = 0; i < n; i++) {
      int64_t row = per_row && ndim ? i / (n / shape[0]) : 0;
      double s = ((float *) ovi_tensor_data (t->scale))[row];
      set_raw (t, i, urand (lo, hi) / s);
    }
  } else {
    for (int64_t i = 0; i < n; i++)
      set_raw (t, i, urand (lo, hi));
  }
  return t;
}

static inline OviTensor *
rand_f32 (int ndim, const int64_t *shape)
{
  return rand_tensor (OVI_DTYPE_F32, ndim, shape, -1.0, 1.0);
}

/* all values of t (any layout, scale applied) as doubles, row-major */
static inline double *
to_f64 (const OviTensor *t)
{
  int64_t n = ovi_tensor_numel (t), idx[OVI_MAX_DIMS] = { 0 };
  double *r = g_new (double, MAX (n, 1));

  for (int64_t i = 0; i < n; i++) {
    r[i] = ovi_tensor_get_f64 (t, idx);
    for (int d = t->ndim - 1; d >= 0; d--) {
      if (++idx[d] < t->shape[d])
        break;
      idx[d] = 0;
    }
  }
  return r;
}

static inline double
rel_l2_floor (const OviTensor *out, const double *ref, double floor)
{
  int64_t n = ovi_tensor_numel (out);
  const float *o = ovi_tensor_data (out);
  double num = 0, den = 0;

  g_assert_true (out->dtype == OVI_DTYPE_F32 && ovi_tensor_is_contiguous (out));
  for (int64_t i = 0; i < n; i++) {
    double d = o[i] - ref[i];
    if (isnan (o[i]) != isnan (ref[i]))
      return INFINITY;
    if (isnan (o[i]))
      continue;
    num += d * d;
    den += ref[i] * ref[i];
  }
  /* outputs of size ~1 that cancel to ~0 (a single dot product plus a
   * bias, a - b) are judged against the scale of their terms */
  den = MAX (den, n * floor * floor);
  if (den == 0)
    return sqrt (num);
  return sqrt (num / den);
}

static inline double
rel_l2 (const OviTensor *out, const double *ref)
{
  return rel_l2_floor (out, ref, 0.0);
}

#define CHECK_REL(out, ref, bound, ...)                                        \
  CHECK_REL_FLOOR (out, ref, 0.0, bound, __VA_ARGS__)

#define CHECK_REL_FLOOR(out, ref, floor, bound, ...)                           \
  G_STMT_START                                                                 \
  {                                                                            \
    double _e = rel_l2_floor ((out), (ref), (floor));                          \
    if (!(_e <= (bound))) {                                                    \
      g_printerr ("rel_l2 %.3g > %.3g: ", _e, (double) (bound));               \
      g_printerr (__VA_ARGS__);                                                \
      g_printerr ("\n");                                                       \
      g_test_fail ();                                                          \
    }                                                                          \
  }                                                                            \
  G_STMT_END

static inline void
assert_ok (OviBackend *be)
{
  GError *error = NULL;

  if (!ovi_backend_sync (be, &error))
    g_error ("backend error: %s", error->message);
}

static inline OviTensor *
new_out (OviBackend *be, int ndim, const int64_t *shape)
{
  OviTensor *t = ovi_backend_new_act (be, ndim, shape);

  g_assert_nonnull (t);
  /* garbage, so that an op that skips elements is caught */
  for (int64_t i = 0; i < ovi_tensor_numel (t); i++)
    ((float *) ovi_tensor_data (t))[i] = NAN;
  return t;
}

static const OviDType weight_dtypes[] = {
  OVI_DTYPE_F32, OVI_DTYPE_BF16, OVI_DTYPE_F16, OVI_DTYPE_F8_E4M3, OVI_DTYPE_I8,
};
