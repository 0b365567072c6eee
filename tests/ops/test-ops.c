/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: CPU backend op tests against independent double references.
 *
 * Every op runs on fresh seeded random inputs (the seed is printed; set
 * OVI_TEST_SEED to reproduce) at several shapes, odd ones included, and is
 * compared with a straightforward double-precision loop written here. Bounds
 * are relative L2 errors: 1e-6 for fp32 data paths unless stated.
 */
#include "ops-test-util.h"

GRand *test_rand;
guint32 test_seed;

static OviBackend *be1, *be2; /* 1 and 2 threads */

static double
ref_act (double x, OviActivation act)
{
  switch (act) {
    case OVI_ACT_GELU_TANH:
      return 0.5 * x
             * (1 + tanh (sqrt (2 / G_PI) * (x + 0.044715 * x * x * x)));
    case OVI_ACT_GELU_ERF:
      return 0.5 * x * (1 + erf (x / sqrt (2)));
    case OVI_ACT_SILU:
      return x / (1 + exp (-x));
    case OVI_ACT_TANH:
      return tanh (x);
    case OVI_ACT_RELU:
      return x > 0 ? x : 0;
    default:
      return x;
  }
}

static gboolean
same_bits (const OviTensor *a, const OviTensor *b)
{
  return ovi_tensor_nbytes (a) == ovi_tensor_nbytes (b)
         && memcmp (ovi_tensor_data (a), ovi_tensor_data (b),
                    ovi_tensor_nbytes (a))
                == 0;
}

/* ---------------- matmul ---------------- */

static void
test_matmul (void)
{
  static const int64_t shapes[][3] = {
    { 1, 1, 1 },       { 1, 7, 33 },   { 7, 33, 1 },     { 33, 129, 7 },
    { 129, 300, 130 }, { 6, 256, 16 }, { 13, 513, 150 }, { 64, 1024, 33 },
    { 2, 1030, 17 },   { 3, 300, 20 },
  };

  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++) {
    for (guint d = 0; d < G_N_ELEMENTS (weight_dtypes); d++) {
      int64_t M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
      OviActivation act = (OviActivation) ((s + d) % 6);
      gboolean strided = (s + d) % 2 == 1, with_bias = (s + d) % 3 != 0;
      g_autoptr (OviTensor) xbig = rand_f32 (2, (int64_t[]){ M, K + 5 });
      g_autoptr (OviTensor) x = ovi_tensor_narrow (xbig, 1, 3, K);
      g_autoptr (OviTensor) xc = ovi_tensor_to_f32 (x, NULL);
      g_autoptr (OviTensor) w
          = rand_tensor (weight_dtypes[d], 2, (int64_t[]){ N, K }, -1, 1);
      g_autoptr (OviTensor) b
          = rand_tensor (d == 1 ? OVI_DTYPE_BF16 : OVI_DTYPE_F32, 1, &N, -1, 1);
      g_autoptr (OviTensor) out = new_out (be2, 2, (int64_t[]){ M, N });
      g_autoptr (OviTensor) out1 = new_out (be1, 2, (int64_t[]){ M, N });
      g_autofree double *xd = to_f64 (x), *wd = to_f64 (w), *bd = to_f64 (b);
      g_autofree double *ref = g_new (double, M *N);
      const OviTensor *xin = strided ? x : xc;

      for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
          double acc = with_bias ? bd[n] : 0;
          for (int64_t k = 0; k < K; k++)
            acc += xd[m * K + k] * wd[n * K + k];
          ref[m * N + n] = ref_act (acc, act);
        }
      ovi_op_matmul (be2, out, xin, w, with_bias ? b : NULL, act);
      ovi_op_matmul (be1, out1, xin, w, with_bias ? b : NULL, act);
      assert_ok (be2);
      assert_ok (be1);
      CHECK_REL_FLOOR (out, ref, 0.1, 1e-6,
                       "matmul M=%" G_GINT64_FORMAT " K=%" G_GINT64_FORMAT
                       " N=%" G_GINT64_FORMAT " w %s act %d strided %d",
                       M, K, N, ovi_dtype_name (weight_dtypes[d]), act,
                       strided);
      g_assert_true (same_bits (out, out1));
    }
  }
}

/* a 3-d x [B, L, K] whose rows flatten with a row stride */
static void
test_matmul_batched (void)
{
  g_autoptr (OviTensor) x = rand_f32 (3, (int64_t[]){ 2, 5, 40 });
  g_autoptr (OviTensor) w = rand_f32 (2, (int64_t[]){ 9, 40 });
  g_autoptr (OviTensor) out = new_out (be2, 3, (int64_t[]){ 2, 5, 9 });
  g_autofree double *xd = to_f64 (x), *wd = to_f64 (w);
  double ref[90];

  for (int m = 0; m < 10; m++)
    for (int n = 0; n < 9; n++) {
      double a = 0;
      for (int k = 0; k < 40; k++)
        a += xd[m * 40 + k] * wd[n * 40 + k];
      ref[m * 9 + n] = a;
    }
  ovi_op_matmul (be2, out, x, w, NULL, OVI_ACT_NONE);
  assert_ok (be2);
  CHECK_REL (out, ref, 1e-6, "batched matmul");

  /* rows that do not flatten (a permuted view) and bf16 activations take
   * the converting path */
  {
    g_autoptr (OviTensor) base = rand_f32 (3, (int64_t[]){ 5, 2, 40 });
    g_autoptr (OviTensor) xp = ovi_tensor_permute (base, (int[]){ 1, 0, 2 });
    g_autoptr (OviTensor) xb
        = rand_tensor (OVI_DTYPE_BF16, 3, (int64_t[]){ 2, 5, 40 }, -1, 1);
    const OviTensor *xs[2] = { xp, xb };

    for (int v = 0; v < 2; v++) {
      g_autofree double *xv = to_f64 (xs[v]);
      for (int m = 0; m < 10; m++)
        for (int n = 0; n < 9; n++) {
          double a = 0;
          for (int k = 0; k < 40; k++)
            a += xv[m * 40 + k] * wd[n * 40 + k];
          ref[m * 9 + n] = a;
        }
      ovi_op_matmul (be2, out, xs[v], w, NULL, OVI_ACT_NONE);
      assert_ok (be2);
      CHECK_REL (out, ref, 1e-6, "matmul converted x %d", v);
    }
  }
}

/* ---------------- attention ---------------- */

static void
ref_attention (double *ref, const OviTensor *q, const OviTensor *k,
               const OviTensor *v, const OviTensor *bias,
               const int64_t *kv_lens, double scale)
{
  int64_t B = q->shape[0], Lq = q->shape[1], H = q->shape[2], D = q->shape[3];
  int64_t Lk = k->shape[1], Dv = v->shape[3];
  g_autofree double *s = g_new (double, Lk);

  for (int64_t b = 0; b < B; b++)
    for (int64_t i = 0; i < Lq; i++)
      for (int64_t h = 0; h < H; h++) {
        int64_t lk = kv_lens ? kv_lens[b] : Lk;
        double mx = -INFINITY, sum = 0;
        double *o = ref + ((b * Lq + i) * H + h) * Dv;
        for (int64_t j = 0; j < lk; j++) {
          double dot = 0;
          for (int64_t d = 0; d < D; d++)
            dot += ovi_tensor_get_f64 (q, (int64_t[]){ b, i, h, d })
                   * ovi_tensor_get_f64 (k, (int64_t[]){ b, j, h, d });
          s[j] = scale * dot;
          if (bias)
            s[j] += ovi_tensor_get_f64 (
                bias, (int64_t[]){ bias->shape[0] == 1 ? 0 : b,
                                   bias->shape[1] == 1 ? 0 : h, i, j });
          mx = fmax (mx, s[j]);
        }
        for (int64_t d = 0; d < Dv; d++)
          o[d] = 0;
        if (mx == -INFINITY)
          continue;
        for (int64_t j = 0; j < lk; j++) {
          s[j] = exp (s[j] - mx);
          sum += s[j];
        }
        for (int64_t j = 0; j < lk; j++)
          for (int64_t d = 0; d < Dv; d++)
            o[d] += s[j] / sum
                    * ovi_tensor_get_f64 (v, (int64_t[]){ b, j, h, d });
      }
}

static void
test_attention (void)
{
  static const int64_t cases[][6] = {
    /* B, Lq, Lk, H, D, Dv */
    { 1, 1, 1, 1, 1, 1 },       { 2, 7, 33, 3, 16, 8 },
    { 1, 129, 200, 2, 64, 64 }, { 2, 50, 300, 1, 128, 128 },
    { 1, 33, 7, 4, 8, 16 },
  };

  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    for (int variant = 0; variant < 4; variant++) {
      int64_t B = cases[c][0], Lq = cases[c][1], Lk = cases[c][2];
      int64_t H = cases[c][3], D = cases[c][4], Dv = cases[c][5];
      g_autoptr (OviTensor) qkv = NULL, q = NULL, k = NULL, v = NULL;
      g_autoptr (OviTensor) bias = NULL, out = NULL, out1 = NULL;
      g_autofree double *ref = g_new (double, B *Lq *H *Dv);
      int64_t kv_lens[2] = { Lk, MAX (Lk / 2, 1) };
      gboolean use_lens = variant >= 2 && B == 2;
      double scale = 1.0 / sqrt ((double) D);

      if (variant == 1 && D == Dv) {
        /* strided q, k, v out of one fused [B, L, 3, H, D] tensor */
        int64_t L = MAX (Lq, Lk);
        g_autoptr (OviTensor) sq = NULL, sk = NULL, sv = NULL;
        qkv = rand_tensor (OVI_DTYPE_F32, 5, (int64_t[]){ B, L, 3, H, D }, -2,
                           2);
        sq = ovi_tensor_select (qkv, 2, 0);
        sk = ovi_tensor_select (qkv, 2, 1);
        sv = ovi_tensor_select (qkv, 2, 2);
        q = ovi_tensor_narrow (sq, 1, 0, Lq);
        k = ovi_tensor_narrow (sk, 1, 0, Lk);
        v = ovi_tensor_narrow (sv, 1, 0, Lk);
      } else {
        q = rand_tensor (OVI_DTYPE_F32, 4, (int64_t[]){ B, Lq, H, D }, -2, 2);
        k = rand_tensor (variant == 3 ? OVI_DTYPE_BF16 : OVI_DTYPE_F32, 4,
                         (int64_t[]){ B, Lk, H, D }, -2, 2);
        v = rand_tensor (OVI_DTYPE_F32, 4, (int64_t[]){ B, Lk, H, Dv }, -1, 1);
      }
      if (variant >= 2) {
        bias = rand_tensor (
            OVI_DTYPE_F32, 4,
            (int64_t[]){ variant == 2 ? 1 : B, variant == 2 ? H : 1, Lq, Lk },
            -3, 3);
        /* a fully masked query row and some masked keys */
        for (int64_t j = 0; j < Lk; j++)
          ((float *) ovi_tensor_data (bias))[j] = -INFINITY;
        if (Lq > 1)
          ((float *) ovi_tensor_data (bias))[Lk + Lk / 2] = -INFINITY;
      }
      out = new_out (be2, 4, (int64_t[]){ B, Lq, H, Dv });
      out1 = new_out (be1, 4, (int64_t[]){ B, Lq, H, Dv });
      ref_attention (ref, q, k, v, bias, use_lens ? kv_lens : NULL, scale);
      ovi_op_attention (be2, out, q, k, v, bias, use_lens ? kv_lens : NULL,
                        (float) scale);
      ovi_op_attention (be1, out1, q, k, v, bias, use_lens ? kv_lens : NULL,
                        (float) scale);
      assert_ok (be2);
      assert_ok (be1);
      CHECK_REL (out, ref, 2e-6, "attention case %u variant %d", c, variant);
      g_assert_true (same_bits (out, out1));
    }
  }
}

static void
test_attention_kv_len_zero (void)
{
  g_autoptr (OviTensor) q = rand_f32 (4, (int64_t[]){ 2, 3, 2, 4 });
  g_autoptr (OviTensor) k = rand_f32 (4, (int64_t[]){ 2, 5, 2, 4 });
  g_autoptr (OviTensor) v = rand_f32 (4, (int64_t[]){ 2, 5, 2, 4 });
  g_autoptr (OviTensor) out = new_out (be2, 4, (int64_t[]){ 2, 3, 2, 4 });
  int64_t lens[2] = { 0, 5 };
  double ref[48];

  ref_attention (ref, q, k, v, NULL, lens, 0.5);
  ovi_op_attention (be2, out, q, k, v, NULL, lens, 0.5f);
  assert_ok (be2);
  for (int i = 0; i < 24; i++)
    g_assert_cmpfloat (((float *) ovi_tensor_data (out))[i], ==, 0.0f);
  CHECK_REL (out, ref, 1e-6, "attention kv_len 0");
}

/* ---------------- row ops ---------------- */

static const int64_t row_shapes[][2] = {
  { 1, 1 }, { 7, 33 }, { 33, 7 }, { 129, 257 }, { 3, 3072 }, { 2000, 20 },
};

static void
test_softmax (void)
{
  for (guint s = 0; s < G_N_ELEMENTS (row_shapes); s++) {
    int64_t R = row_shapes[s][0], C = row_shapes[s][1];
    g_autoptr (OviTensor) x
        = rand_tensor (OVI_DTYPE_F32, 2, row_shapes[s], -20, 20);
    g_autoptr (OviTensor) out = new_out (be2, 2, row_shapes[s]);
    g_autofree double *xd = to_f64 (x), *ref = g_new (double, R *C);

    for (int64_t r = 0; r < R; r++) {
      double mx = -INFINITY, sum = 0;
      for (int64_t c = 0; c < C; c++)
        mx = fmax (mx, xd[r * C + c]);
      for (int64_t c = 0; c < C; c++)
        sum += exp (xd[r * C + c] - mx);
      for (int64_t c = 0; c < C; c++)
        ref[r * C + c] = exp (xd[r * C + c] - mx) / sum;
    }
    ovi_op_softmax (be2, out, x);
    assert_ok (be2);
    CHECK_REL (out, ref, 1e-6, "softmax %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT,
               R, C);
  }
}

static void
test_norms (void)
{
  for (guint s = 0; s < G_N_ELEMENTS (row_shapes); s++) {
    int64_t R = row_shapes[s][0], C = row_shapes[s][1];
    g_autoptr (OviTensor) big
        = rand_tensor (OVI_DTYPE_F32, 2, (int64_t[]){ R, C + 3 }, -3, 5);
    g_autoptr (OviTensor) x = ovi_tensor_narrow (big, 1, 2, C);
    g_autoptr (OviTensor) w
        = rand_tensor (s % 2 ? OVI_DTYPE_BF16 : OVI_DTYPE_F32, 1, &C, 0.5, 1.5);
    g_autoptr (OviTensor) b = rand_f32 (1, &C);
    g_autoptr (OviTensor) out = new_out (be2, 2, row_shapes[s]);
    g_autofree double *xd = to_f64 (x), *wd = to_f64 (w), *bd = to_f64 (b);
    g_autofree double *rms = g_new (double, R *C), *ln = g_new (double, R *C),
                      *ln0 = g_new (double, R *C);
    float eps = 1e-6f;

    for (int64_t r = 0; r < R; r++) {
      double ss = 0, m = 0, var = 0;
      for (int64_t c = 0; c < C; c++) {
        ss += xd[r * C + c] * xd[r * C + c];
        m += xd[r * C + c];
      }
      m /= C;
      for (int64_t c = 0; c < C; c++)
        var += (xd[r * C + c] - m) * (xd[r * C + c] - m);
      var /= C;
      for (int64_t c = 0; c < C; c++) {
        double v = xd[r * C + c];
        rms[r * C + c] = v / sqrt (ss / C + eps) * wd[c];
        ln0[r * C + c] = (v - m) / sqrt (var + eps);
        ln[r * C + c] = ln0[r * C + c] * wd[c] + bd[c];
      }
    }
    ovi_op_rms_norm (be2, out, x, w, eps);
    assert_ok (be2);
    CHECK_REL (out, rms, 1e-6,
               "rms_norm %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT, R, C);
    ovi_op_layer_norm (be2, out, x, w, b, eps);
    assert_ok (be2);
    CHECK_REL (out, ln, 1e-6,
               "layer_norm %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT, R, C);
    ovi_op_layer_norm (be2, out, x, NULL, NULL, eps);
    assert_ok (be2);
    CHECK_REL (out, ln0, 1e-6, "layer_norm no affine");
  }
}

static void
test_modulate_gate (void)
{
  for (guint s = 0; s < G_N_ELEMENTS (row_shapes); s++) {
    int64_t L = row_shapes[s][0], D = row_shapes[s][1];
    g_autoptr (OviTensor) x
        = rand_tensor (OVI_DTYPE_F32, 2, row_shapes[s], -2, 3);
    /* modulation [L, 6, D] as Wan's e: shift = e[:, 0], scale = e[:, 1] */
    g_autoptr (OviTensor) e = rand_f32 (3, (int64_t[]){ L, 6, D });
    g_autoptr (OviTensor) e1 = rand_f32 (2, (int64_t[]){ 6, D });
    g_autoptr (OviTensor) shift = ovi_tensor_select (e, 1, 0);
    g_autoptr (OviTensor) scale = ovi_tensor_select (e, 1, 1);
    g_autoptr (OviTensor) gate = ovi_tensor_select (e, 1, 2);
    /* one row broadcast to every token with stride 0 */
    g_autoptr (OviTensor) shift0
        = ovi_tensor_view (e1, 2, (int64_t[]){ L, D }, (int64_t[]){ 0, 1 }, 0);
    g_autoptr (OviTensor) scale0
        = ovi_tensor_view (e1, 2, (int64_t[]){ L, D }, (int64_t[]){ 0, 1 }, D);
    g_autoptr (OviTensor) y = rand_f32 (2, row_shapes[s]);
    g_autoptr (OviTensor) out = new_out (be2, 2, row_shapes[s]);
    g_autofree double *xd = to_f64 (x), *yd = to_f64 (y);
    g_autofree double *ref = g_new (double, L *D);
    float eps = 1e-6f;

    for (int bcast = 0; bcast < 2; bcast++) {
      const OviTensor *sh = bcast ? shift0 : shift,
                      *sc = bcast ? scale0 : scale;
      for (int64_t l = 0; l < L; l++) {
        double m = 0, var = 0;
        for (int64_t d = 0; d < D; d++)
          m += xd[l * D + d];
        m /= D;
        for (int64_t d = 0; d < D; d++)
          var += (xd[l * D + d] - m) * (xd[l * D + d] - m);
        var /= D;
        for (int64_t d = 0; d < D; d++)
          ref[l * D + d]
              = (xd[l * D + d] - m) / sqrt (var + eps)
                    * (1 + ovi_tensor_get_f64 (sc, (int64_t[]){ l, d }))
                + ovi_tensor_get_f64 (sh, (int64_t[]){ l, d });
      }
      ovi_op_modulate (be2, out, x, sh, sc, eps);
      assert_ok (be2);
      CHECK_REL (out, ref, 1e-6,
                 "modulate L=%" G_GINT64_FORMAT " D=%" G_GINT64_FORMAT
                 " bcast %d",
                 L, D, bcast);
    }
    for (int64_t l = 0; l < L; l++)
      for (int64_t d = 0; d < D; d++)
        ref[l * D + d]
            = xd[l * D + d]
              + yd[l * D + d] * ovi_tensor_get_f64 (gate, (int64_t[]){ l, d });
    ovi_op_copy (be2, out, x);
    ovi_op_gate_add (be2, out, y, gate);
    assert_ok (be2);
    CHECK_REL (out, ref, 1e-6, "gate_add");
  }
}

static void
test_rope (void)
{
  static const int64_t cases[][4] = {
    /* L, H, D, P */
    { 1, 1, 2, 1 },    { 7, 3, 16, 8 }, { 33, 2, 128, 64 },
    { 5, 4, 128, 22 }, { 9, 1, 10, 0 },
  };

  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    int64_t L = cases[c][0], H = cases[c][1], D = cases[c][2], P = cases[c][3];
    g_autoptr (OviTensor) big = rand_f32 (3, (int64_t[]){ L, H + 2, D });
    g_autoptr (OviTensor) x = ovi_tensor_narrow (big, 1, 1, H);
    g_autoptr (OviTensor) cs = ovi_tensor_new_f32 (2, (int64_t[]){ L, P });
    g_autoptr (OviTensor) sn = ovi_tensor_new_f32 (2, (int64_t[]){ L, P });
    g_autoptr (OviTensor) out = new_out (be2, 3, (int64_t[]){ L, H, D });
    g_autofree double *ref = g_new (double, L *H *D);

    for (int64_t i = 0; i < L * P; i++) {
      double a = urand (-10, 10);
      ((float *) ovi_tensor_data (cs))[i] = (float) cos (a);
      ((float *) ovi_tensor_data (sn))[i] = (float) sin (a);
    }
    for (int64_t l = 0; l < L; l++)
      for (int64_t h = 0; h < H; h++)
        for (int64_t d = 0; d < D; d++) {
          double xv = ovi_tensor_get_f64 (x, (int64_t[]){ l, h, d });
          double r = xv;
          if (d / 2 < P) {
            int64_t p = d / 2;
            double cv = ((float *) ovi_tensor_data (cs))[l * P + p];
            double sv = ((float *) ovi_tensor_data (sn))[l * P + p];
            double x0 = ovi_tensor_get_f64 (x, (int64_t[]){ l, h, 2 * p });
            double x1 = ovi_tensor_get_f64 (x, (int64_t[]){ l, h, 2 * p + 1 });
            r = d % 2 == 0 ? x0 * cv - x1 * sv : x0 * sv + x1 * cv;
          }
          ref[(l * H + h) * D + d] = r;
        }
    ovi_op_rope (be2, out, x, cs, sn);
    assert_ok (be2);
    CHECK_REL (out, ref, 1e-7, "rope case %u", c);
  }
}

/* ---------------- elementwise ---------------- */

static void
test_elementwise (void)
{
  static const int64_t shapes[][3] = {
    { 1, 1, 1 },
    { 2, 7, 33 },
    { 3, 129, 5 },
    { 1, 2, 4097 },
  };

  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++) {
    const int64_t *sh = shapes[s];
    int64_t n = sh[0] * sh[1] * sh[2];
    g_autoptr (OviTensor) a = rand_tensor (OVI_DTYPE_F32, 3, sh, -4, 4);
    g_autoptr (OviTensor) bfull = rand_tensor (OVI_DTYPE_F32, 3, sh, 0.5, 2);
    g_autoptr (OviTensor) brow
        = rand_tensor (OVI_DTYPE_F32, 3, (int64_t[]){ 1, sh[1], 1 }, 0.5, 2);
    g_autoptr (OviTensor) blast
        = rand_tensor (OVI_DTYPE_BF16, 1, &sh[2], 0.5, 2);
    g_autoptr (OviTensor) out = new_out (be2, 3, sh);
    g_autofree double *ad = to_f64 (a), *ref = g_new (double, n);

    for (int act = OVI_ACT_NONE; act <= OVI_ACT_RELU; act++) {
      for (int64_t i = 0; i < n; i++)
        ref[i] = 0.75 * ref_act (ad[i], (OviActivation) act);
      ovi_op_unary (be2, out, a, (OviActivation) act, 0.75f);
      assert_ok (be2);
      /* transcendental activations: the fp32 argument itself carries
       * ~|x| ulp of error that the function magnifies (GELU at x = -4) */
      CHECK_REL (out, ref,
                 act == OVI_ACT_NONE || act == OVI_ACT_RELU ? 1e-7 : 3e-6,
                 "unary act %d", act);
    }
    for (int which = 0; which < 3; which++) {
      const OviTensor *b = which == 0 ? bfull : which == 1 ? brow : blast;
      for (int op = OVI_BINARY_ADD; op <= OVI_BINARY_DIV; op++) {
        for (int64_t i = 0; i < n; i++) {
          int64_t i0 = i / (sh[1] * sh[2]), i1 = (i / sh[2]) % sh[1],
                  i2 = i % sh[2];
          double bv
              = which == 0   ? ovi_tensor_get_f64 (b, (int64_t[]){ i0, i1, i2 })
                : which == 1 ? ovi_tensor_get_f64 (b, (int64_t[]){ 0, i1, 0 })
                             : ovi_tensor_get_f64 (b, &i2);
          ref[i] = op == OVI_BINARY_ADD   ? ad[i] + bv
                   : op == OVI_BINARY_SUB ? ad[i] - bv
                   : op == OVI_BINARY_MUL ? ad[i] * bv
                                          : ad[i] / bv;
        }
        ovi_op_binary (be2, out, a, b, (OviBinaryOp) op);
        assert_ok (be2);
        CHECK_REL (out, ref, 1e-7, "binary op %d bcast %d", op, which);
      }
      for (int64_t i = 0; i < n; i++) {
        int64_t i0 = i / (sh[1] * sh[2]), i1 = (i / sh[2]) % sh[1],
                i2 = i % sh[2];
        double bv
            = which == 0   ? ovi_tensor_get_f64 (b, (int64_t[]){ i0, i1, i2 })
              : which == 1 ? ovi_tensor_get_f64 (b, (int64_t[]){ 0, i1, 0 })
                           : ovi_tensor_get_f64 (b, &i2);
        ref[i] = 1.5 * ad[i] - 0.25 * bv;
      }
      ovi_op_axpby (be2, out, 1.5f, a, -0.25f, b);
      assert_ok (be2);
      CHECK_REL_FLOOR (out, ref, 1.0, 5e-7, "axpby bcast %d", which);
    }
    for (int64_t i = 0; i < n; i++)
      ref[i] = 2 * ad[i] + 3;
    ovi_op_axpby (be2, out, 2.0f, a, 3.0f, NULL);
    assert_ok (be2);
    CHECK_REL_FLOOR (out, ref, 1.0, 5e-7, "axpby scalar");
    for (int64_t i = 0; i < n; i++)
      ref[i] = CLAMP (ad[i], -1.0, 0.5);
    ovi_op_clamp (be2, out, a, -1.0f, 0.5f);
    assert_ok (be2);
    CHECK_REL (out, ref, 0, "clamp");
  }
}

static void
test_mean_snake (void)
{
  static const int64_t shapes[][2] = { { 1, 1 }, { 7, 33 }, { 64, 1000 } };

  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++) {
    int64_t C = shapes[s][0], T = shapes[s][1];
    g_autoptr (OviTensor) x = rand_tensor (OVI_DTYPE_F32, 2, shapes[s], -3, 3);
    g_autoptr (OviTensor) al = rand_tensor (OVI_DTYPE_F32, 1, &C, -1, 1);
    g_autoptr (OviTensor) bl = rand_tensor (OVI_DTYPE_F32, 1, &C, -1, 1);
    g_autoptr (OviTensor) out = new_out (be2, 2, shapes[s]);
    g_autoptr (OviTensor) mean = new_out (be2, 1, &C);
    g_autofree double *xd = to_f64 (x), *ref = g_new (double, C *T);
    double mref[64];

    for (int logscale = 0; logscale < 2; logscale++) {
      for (int64_t c = 0; c < C; c++) {
        double a = ovi_tensor_get_f64 (al, &c), b = ovi_tensor_get_f64 (bl, &c);
        if (logscale) {
          a = exp (a);
          b = exp (b);
        }
        for (int64_t t = 0; t < T; t++) {
          double v = xd[c * T + t], sn = sin (a * v);
          ref[c * T + t] = v + 1 / (b + 1e-9) * sn * sn;
        }
      }
      ovi_op_snake_beta (be2, out, x, al, bl, logscale);
      assert_ok (be2);
      /* alpha, beta in (-1, 1) without logscale: 1/b gets large near 0 */
      CHECK_REL (out, ref, logscale ? 1e-6 : 1e-5,
                 "snake_beta C=%" G_GINT64_FORMAT " log %d", C, logscale);
    }
    for (int64_t c = 0; c < C; c++) {
      double m = 0;
      for (int64_t t = 0; t < T; t++)
        m += xd[c * T + t];
      mref[c] = m / T;
    }
    ovi_op_mean_last (be2, mean, x);
    assert_ok (be2);
    CHECK_REL (mean, mref, 1e-6, "mean_last");
  }
}

/* elementwise ops read strided (permuted, sliced) and bf16 inputs */
static void
test_elementwise_strided (void)
{
  g_autoptr (OviTensor) base
      = rand_tensor (OVI_DTYPE_BF16, 3, (int64_t[]){ 5, 7, 9 }, -2, 2);
  g_autoptr (OviTensor) perm = ovi_tensor_permute (base, (int[]){ 2, 0, 1 });
  g_autoptr (OviTensor) a = ovi_tensor_narrow (perm, 2, 1, 5); /* [9, 5, 5] */
  g_autoptr (OviTensor) bb = rand_f32 (3, (int64_t[]){ 9, 5, 8 });
  g_autoptr (OviTensor) b = ovi_tensor_narrow (bb, 2, 3, 5);
  g_autoptr (OviTensor) out = new_out (be2, 3, (int64_t[]){ 9, 5, 5 });
  g_autoptr (OviTensor) out1 = new_out (be1, 3, (int64_t[]){ 9, 5, 5 });
  g_autofree double *ad = to_f64 (a), *bd = to_f64 (b);
  double ref[225];

  for (int i = 0; i < 225; i++)
    ref[i] = ad[i] * bd[i];
  ovi_op_binary (be2, out, a, b, OVI_BINARY_MUL);
  ovi_op_binary (be1, out1, a, b, OVI_BINARY_MUL);
  assert_ok (be2);
  assert_ok (be1);
  CHECK_REL (out, ref, 1e-7, "binary strided");
  g_assert_true (same_bits (out, out1));
  for (int i = 0; i < 225; i++)
    ref[i] = ad[i] / (1 + exp (-ad[i]));
  ovi_op_unary (be2, out, a, OVI_ACT_SILU, 1.0f);
  assert_ok (be2);
  CHECK_REL (out, ref, 1e-6, "unary strided");
  for (int i = 0; i < 225; i++)
    ref[i] = CLAMP (ad[i], -0.5, 0.5);
  ovi_op_clamp (be2, out, a, -0.5f, 0.5f);
  assert_ok (be2);
  CHECK_REL (out, ref, 0, "clamp strided");
}

/* ---------------- copy / fill / embedding ---------------- */

static void
test_copy_dtypes (void)
{
  static const OviDType dsts[] = {
    OVI_DTYPE_F32,
    OVI_DTYPE_BF16,
    OVI_DTYPE_F16,
    OVI_DTYPE_F8_E4M3,
  };
  int64_t shape[3] = { 3, 5, 7 };

  for (guint s = 0; s < G_N_ELEMENTS (weight_dtypes); s++) {
    g_autoptr (OviTensor) src = rand_tensor (weight_dtypes[s], 3, shape, -3, 3);
    /* a permuted (non-contiguous) view: [7, 3, 5] */
    g_autoptr (OviTensor) perm = ovi_tensor_permute (src, (int[]){ 2, 0, 1 });
    g_autofree double *vals = to_f64 (perm);

    for (guint d = 0; d < G_N_ELEMENTS (dsts); d++) {
      g_autoptr (OviTensor) dst
          = ovi_tensor_new (dsts[d], 3, perm->shape, NULL);
      ovi_op_copy (be2, dst, perm);
      assert_ok (be2);
      for (int64_t i = 0; i < 105; i++) {
        float v = (float) vals[i];
        const char *p = (const char *) ovi_tensor_data (dst)
                        + i * ovi_dtype_size (dsts[d]);
        switch (dsts[d]) {
          case OVI_DTYPE_F32:
            g_assert_cmpfloat (*(const float *) p, ==, v);
            break;
          case OVI_DTYPE_BF16:
            g_assert_cmpuint (*(const uint16_t *) p, ==, ovi_f32_to_bf16 (v));
            break;
          case OVI_DTYPE_F16:
            g_assert_cmpuint (*(const uint16_t *) p, ==, ovi_f32_to_f16 (v));
            break;
          case OVI_DTYPE_F8_E4M3:
            g_assert_cmpuint (*(const uint8_t *) p, ==, ovi_f32_to_f8e4m3 (v));
            break;
          default:
            break;
        }
      }
    }
  }
  /* into a quantised tensor with per-row scales: raw = round (v / s) */
  {
    g_autoptr (OviTensor) src = rand_f32 (2, (int64_t[]){ 4, 9 });
    g_autoptr (OviTensor) dst
        = ovi_tensor_new (OVI_DTYPE_I8, 2, src->shape, NULL);
    int64_t four = 4;
    dst->scale = ovi_tensor_new (OVI_DTYPE_F32, 1, &four, NULL);
    for (int r = 0; r < 4; r++)
      ((float *) ovi_tensor_data (dst->scale))[r] = 0.01f * (r + 1);
    ovi_op_copy (be2, dst, src);
    assert_ok (be2);
    for (int r = 0; r < 4; r++)
      for (int c = 0; c < 9; c++) {
        float v = ((float *) ovi_tensor_data (src))[r * 9 + c];
        float q = rintf (fminf (fmaxf (v / (0.01f * (r + 1)), -128), 127));
        g_assert_cmpint (((int8_t *) ovi_tensor_data (dst))[r * 9 + c], ==,
                         (int) q);
      }
  }
}

/* copies into views of a bigger tensor (strided dst), raw and converting */
static void
test_copy_strided_dst (void)
{
  static const OviDType dts[] = { OVI_DTYPE_F32, OVI_DTYPE_BF16 };

  for (guint d = 0; d < G_N_ELEMENTS (dts); d++) {
    g_autoptr (OviTensor) big
        = ovi_tensor_new (dts[d], 3, (int64_t[]){ 4, 6, 9 }, NULL);
    g_autoptr (OviTensor) src = rand_f32 (3, (int64_t[]){ 4, 3, 5 });
    g_autoptr (OviTensor) n1 = ovi_tensor_narrow (big, 1, 2, 3);
    g_autoptr (OviTensor) dst = ovi_tensor_narrow (n1, 2, 1, 5);
    /* a transposed destination too: [9, 6] viewed from big[0] */
    g_autoptr (OviTensor) b0 = ovi_tensor_select (big, 0, 3);
    g_autoptr (OviTensor) bt = ovi_tensor_permute (b0, (int[]){ 1, 0 });
    g_autoptr (OviTensor) src2 = rand_f32 (2, (int64_t[]){ 9, 6 });
    g_autofree double *sv = to_f64 (src), *sv2 = to_f64 (src2);

    ovi_op_fill (be2, big, 7.0f);
    ovi_op_copy (be2, dst, src);
    assert_ok (be2);
    for (int64_t a = 0; a < 3; a++)
      for (int64_t b = 0; b < 6; b++)
        for (int64_t c = 0; c < 9; c++) {
          double got = ovi_tensor_get_f64 (big, (int64_t[]){ a, b, c });
          double want = 7.0;
          if (b >= 2 && b < 5 && c >= 1 && c < 6) {
            float v = (float) sv[(a * 3 + b - 2) * 5 + c - 1];
            want = dts[d] == OVI_DTYPE_F32
                       ? v
                       : ovi_bf16_to_f32 (ovi_f32_to_bf16 (v));
          }
          g_assert_cmpfloat (got, ==, want);
        }
    ovi_op_copy (be2, bt, src2);
    assert_ok (be2);
    for (int64_t r = 0; r < 9; r++)
      for (int64_t c = 0; c < 6; c++) {
        float v = (float) sv2[r * 6 + c];
        double want = dts[d] == OVI_DTYPE_F32
                          ? v
                          : ovi_bf16_to_f32 (ovi_f32_to_bf16 (v));
        g_assert_cmpfloat (ovi_tensor_get_f64 (big, (int64_t[]){ 3, c, r }), ==,
                           want);
      }
  }
}

static void
test_fill (void)
{
  g_autoptr (OviTensor) t = new_out (be2, 2, (int64_t[]){ 129, 1000 });
  g_autoptr (OviTensor) h
      = ovi_tensor_new (OVI_DTYPE_BF16, 1, (int64_t[]){ 7 }, NULL);

  ovi_op_fill (be2, t, -2.5f);
  ovi_op_fill (be2, h, 1.0f / 3.0f);
  assert_ok (be2);
  for (int64_t i = 0; i < 129000; i++)
    g_assert_cmpfloat (((float *) ovi_tensor_data (t))[i], ==, -2.5f);
  for (int i = 0; i < 7; i++)
    g_assert_cmpuint (((uint16_t *) ovi_tensor_data (h))[i], ==,
                      ovi_f32_to_bf16 (1.0f / 3.0f));
}

static void
test_embedding (void)
{
  for (guint d = 0; d < G_N_ELEMENTS (weight_dtypes); d++) {
    int64_t V = 37, D = 33, N = 50;
    g_autoptr (OviTensor) table
        = rand_tensor (weight_dtypes[d], 2, (int64_t[]){ V, D }, -1, 1);
    g_autoptr (OviTensor) out = new_out (be2, 2, (int64_t[]){ N, D });
    g_autofree double *td = to_f64 (table), *ref = g_new (double, N *D);
    int64_t ids[50];

    for (int64_t i = 0; i < N; i++) {
      ids[i] = g_rand_int_range (test_rand, 0, (gint32) V);
      for (int64_t c = 0; c < D; c++)
        ref[i * D + c] = td[ids[i] * D + c];
    }
    ovi_op_embedding (be2, out, table, ids, N);
    assert_ok (be2);
    CHECK_REL (out, ref, 1e-7, "embedding %s",
               ovi_dtype_name (weight_dtypes[d]));
  }
}

/* ---------------- pixel (un)shuffle ---------------- */

static void
test_pixel_shuffle (void)
{
  int64_t C = 3, T = 2, H = 6, W = 10;
  int r = 2;
  g_autoptr (OviTensor) x = rand_f32 (4, (int64_t[]){ C, T, H, W });
  g_autoptr (OviTensor) un
      = new_out (be2, 4, (int64_t[]){ C * 4, T, H / 2, W / 2 });
  g_autoptr (OviTensor) back = new_out (be2, 4, x->shape);
  const float *xv = ovi_tensor_data (x), *uv = ovi_tensor_data (un);

  ovi_op_pixel_unshuffle (be2, un, x, r);
  assert_ok (be2);
  /* Wan2.2 patchify: "b c f (h q) (w r) -> b (c r q) f h w":
   * channel c*4 + r*2 + q, q the row sub-offset, r the column sub-offset */
  for (int64_t c = 0; c < C; c++)
    for (int64_t t = 0; t < T; t++)
      for (int64_t h = 0; h < H / 2; h++)
        for (int64_t w = 0; w < W / 2; w++)
          for (int q = 0; q < 2; q++)
            for (int rr = 0; rr < 2; rr++) {
              int64_t ch = c * 4 + rr * 2 + q;
              float got = uv[((ch * T + t) * (H / 2) + h) * (W / 2) + w];
              float want = xv[((c * T + t) * H + 2 * h + q) * W + 2 * w + rr];
              g_assert_cmpfloat (got, ==, want);
            }
  ovi_op_pixel_shuffle (be2, back, un, r);
  assert_ok (be2);
  g_assert_true (same_bits (back, x));

  /* 3-d [C, H, W] and r = 3 round trip */
  {
    g_autoptr (OviTensor) y = rand_f32 (3, (int64_t[]){ 2, 9, 6 });
    g_autoptr (OviTensor) yu = new_out (be2, 3, (int64_t[]){ 18, 3, 2 });
    g_autoptr (OviTensor) yb = new_out (be2, 3, y->shape);
    ovi_op_pixel_unshuffle (be2, yu, y, 3);
    ovi_op_pixel_shuffle (be2, yb, yu, 3);
    assert_ok (be2);
    g_assert_true (same_bits (yb, y));
  }
}

/* ---------------- errors ---------------- */

static void
test_errors (void)
{
  g_autoptr (OviTensor) x = rand_f32 (2, (int64_t[]){ 4, 8 });
  g_autoptr (OviTensor) w = rand_f32 (2, (int64_t[]){ 5, 7 });
  g_autoptr (OviTensor) out = new_out (be2, 2, (int64_t[]){ 4, 5 });
  g_autoptr (OviTensor) ok = new_out (be2, 2, (int64_t[]){ 4, 8 });
  GError *error = NULL;
  OviBackend *cuda;

  ovi_op_matmul (be2, out, x, w, NULL, OVI_ACT_NONE);
  /* skipped: the first error sticks */
  ovi_op_softmax (be2, ok, NULL);
  g_assert_false (ovi_backend_sync (be2, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_SHAPE);
  g_assert_nonnull (strstr (error->message, "ovi_op_matmul"));
  g_assert_nonnull (strstr (error->message, "[4, 8]"));
  g_assert_nonnull (strstr (error->message, "[5, 7]"));
  g_clear_error (&error);
  /* cleared by sync: the backend works again */
  ovi_op_softmax (be2, ok, x);
  assert_ok (be2);

  ovi_op_softmax (be2, ok, NULL);
  g_assert_false (ovi_backend_sync (be2, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  {
    int64_t ids[2] = { 0, 99 };
    g_autoptr (OviTensor) eo = new_out (be2, 2, (int64_t[]){ 2, 7 });
    ovi_op_embedding (be2, eo, w, ids, 2);
    g_assert_false (ovi_backend_sync (be2, &error));
    g_assert_nonnull (strstr (error->message, "99"));
    g_clear_error (&error);
  }

  cuda = ovi_backend_new_by_name ("cuda", 0, &error);
  g_assert_null (cuda);
  g_assert_error (error, OVI_ERROR, OVI_ERROR_BACKEND);
  g_clear_error (&error);
  g_assert_null (ovi_backend_new_by_name ("tpu", 0, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_BACKEND);
  g_clear_error (&error);
}

static void
test_download (void)
{
  g_autoptr (OviTensor) x
      = rand_tensor (OVI_DTYPE_BF16, 2, (int64_t[]){ 3, 4 }, -1, 1);
  g_autoptr (OviTensor) up = ovi_backend_upload (be2, x);
  g_autoptr (OviTensor) d = ovi_backend_download_f32 (be2, up, NULL);
  g_autofree double *ref = to_f64 (x);

  g_assert_true (up == x);
  CHECK_REL (d, ref, 0, "download");
}

/* ovi_backend_upload_act on the CPU backend (F32 activations): F32 comes
 * back as it is, narrower floats are not widened, quantised stay quantised */
static void
test_upload_act (void)
{
  int64_t shape[2] = { 3, 4 };
  g_autoptr (OviTensor) f = ovi_tensor_new (OVI_DTYPE_F32, 2, shape, NULL);
  g_autoptr (OviTensor) b = ovi_tensor_new (OVI_DTYPE_BF16, 2, shape, NULL);
  g_autoptr (OviTensor) q = ovi_tensor_new (OVI_DTYPE_F8_E4M3, 2, shape, NULL);
  g_autoptr (OviTensor) uf = NULL, ub = NULL, uq = NULL;

  q->scale = ovi_tensor_new (OVI_DTYPE_F32, 1, shape, NULL);
  uf = ovi_backend_upload_act (be1, f);
  ub = ovi_backend_upload_act (be1, b);
  uq = ovi_backend_upload_act (be1, q);
  g_assert_true (uf == f);
  g_assert_cmpint (ub->dtype, ==, OVI_DTYPE_BF16);
  g_assert_cmpint (uq->dtype, ==, OVI_DTYPE_F8_E4M3);
  g_assert_nonnull (uq->scale);
}

int
main (int argc, char **argv)
{
  int ret;

  g_test_init (&argc, &argv, NULL);
  test_util_init ();
  be1 = ovi_backend_new_cpu (1);
  be2 = ovi_backend_new_cpu (2);
  g_assert_cmpint (ovi_backend_get_n_threads (be2), ==, 2);

  g_test_add_func ("/ops/matmul", test_matmul);
  g_test_add_func ("/ops/upload-act", test_upload_act);
  g_test_add_func ("/ops/matmul-batched", test_matmul_batched);
  g_test_add_func ("/ops/attention", test_attention);
  g_test_add_func ("/ops/attention-kv-len-zero", test_attention_kv_len_zero);
  g_test_add_func ("/ops/softmax", test_softmax);
  g_test_add_func ("/ops/norms", test_norms);
  g_test_add_func ("/ops/modulate-gate", test_modulate_gate);
  g_test_add_func ("/ops/rope", test_rope);
  g_test_add_func ("/ops/elementwise", test_elementwise);
  g_test_add_func ("/ops/elementwise-strided", test_elementwise_strided);
  g_test_add_func ("/ops/mean-snake", test_mean_snake);
  g_test_add_func ("/ops/copy-dtypes", test_copy_dtypes);
  g_test_add_func ("/ops/copy-strided-dst", test_copy_strided_dst);
  g_test_add_func ("/ops/fill", test_fill);
  g_test_add_func ("/ops/embedding", test_embedding);
  g_test_add_func ("/ops/pixel-shuffle", test_pixel_shuffle);
  g_test_add_func ("/ops/errors", test_errors);
  g_test_add_func ("/ops/download", test_download);
  ret = g_test_run ();
  ovi_backend_free (be1);
  ovi_backend_free (be2);
  g_rand_free (test_rand);
  return ret;
}
