/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: CPU backend tests of the convolutions, padding, upsampling and
 * channel norms against independent double references (seeded random
 * inputs; the seed is printed, OVI_TEST_SEED reproduces a run). */
#include "ops-test-util.h"

GRand *test_rand;
guint32 test_seed;

static OviBackend *be1, *be2;

static gboolean
same_bits (const OviTensor *a, const OviTensor *b)
{
  return memcmp (ovi_tensor_data (a), ovi_tensor_data (b),
                 ovi_tensor_nbytes (a))
         == 0;
}

static void
test_conv1d (void)
{
  static const int cases[][10] = {
    /* B, Cin, T, Cout, K, stride, pad_l, pad_r, dilation, groups */
    { 1, 1, 1, 1, 1, 1, 0, 0, 1, 1 },      { 1, 3, 17, 5, 3, 1, 1, 1, 1, 1 },
    { 1, 4, 33, 8, 7, 2, 3, 3, 1, 2 },     { 1, 6, 50, 6, 12, 2, 5, 6, 1, 6 },
    { 1, 8, 40, 16, 3, 1, 5, 5, 5, 1 },    { 1, 32, 129, 20, 7, 1, 3, 3, 1, 1 },
    { 2, 64, 300, 64, 3, 1, 1, 1, 3, 1 },  { 2, 5, 11, 10, 1, 1, 0, 0, 1, 5 },
    { 1, 20, 1500, 24, 3, 1, 1, 1, 1, 1 }, { 1, 7, 8, 3, 9, 3, 0, 4, 1, 1 },
  };

  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    const int *p = cases[c];
    int64_t B = p[0], Cin = p[1], T = p[2], Cout = p[3], K = p[4];
    int st = p[5], pl = p[6], pr = p[7], dil = p[8], g = p[9];
    int64_t To = (T + pl + pr - dil * (K - 1) - 1) / st + 1;
    int64_t Cin_g = Cin / g, Cout_g = Cout / g;
    OviDType wd = G_N_ELEMENTS (weight_dtypes) > 0
                      ? weight_dtypes[c % G_N_ELEMENTS (weight_dtypes)]
                      : OVI_DTYPE_F32;
    int nd = B > 1 ? 3 : 2;
    int64_t xs[3] = { B, Cin, T }, os[3] = { B, Cout, To };
    g_autoptr (OviTensor) x = rand_f32 (nd, xs + 3 - nd);
    g_autoptr (OviTensor) w
        = rand_tensor (wd, 3, (int64_t[]){ Cout, Cin_g, K }, -1, 1);
    g_autoptr (OviTensor) bias = rand_f32 (1, &Cout);
    g_autoptr (OviTensor) out = new_out (be2, nd, os + 3 - nd);
    g_autoptr (OviTensor) out1 = new_out (be1, nd, os + 3 - nd);
    g_autofree double *xd = to_f64 (x), *wdd = to_f64 (w), *bd = to_f64 (bias);
    g_autofree double *ref = g_new (double, B *Cout *To);

    for (int64_t b = 0; b < B; b++)
      for (int64_t co = 0; co < Cout; co++)
        for (int64_t o = 0; o < To; o++) {
          double acc = c % 2 ? bd[co] : 0;
          int64_t gi = co / Cout_g;
          for (int64_t ci = 0; ci < Cin_g; ci++)
            for (int64_t k = 0; k < K; k++) {
              int64_t t = o * st - pl + k * dil;
              if (t < 0 || t >= T)
                continue;
              acc += wdd[(co * Cin_g + ci) * K + k]
                     * xd[(b * Cin + gi * Cin_g + ci) * T + t];
            }
          ref[(b * Cout + co) * To + o] = acc;
        }
    ovi_op_conv1d (be2, out, x, w, c % 2 ? bias : NULL, st, pl, pr, dil, g);
    ovi_op_conv1d (be1, out1, x, w, c % 2 ? bias : NULL, st, pl, pr, dil, g);
    assert_ok (be2);
    assert_ok (be1);
    CHECK_REL_FLOOR (out, ref, 0.1, 1e-6, "conv1d case %u (w %s)", c,
                     ovi_dtype_name (wd));
    g_assert_true (same_bits (out, out1));
  }
}

static void
test_conv_transpose1d (void)
{
  static const int cases[][8] = {
    /* B, Cin, T, Cout_g, K, stride, padding, groups */
    { 1, 1, 1, 1, 1, 1, 0, 1 },    { 1, 4, 7, 3, 4, 2, 1, 1 },
    { 1, 16, 33, 8, 16, 8, 4, 1 }, { 1, 6, 20, 1, 12, 2, 5, 6 },
    { 1, 5, 9, 2, 3, 3, 0, 1 },    { 1, 3, 5, 2, 2, 4, 0, 1 },
    { 2, 8, 64, 8, 11, 5, 2, 1 },  { 1, 32, 40, 16, 4, 2, 1, 1 },
    { 2, 12, 15, 2, 5, 2, 2, 3 },  { 1, 8, 6, 8, 3, 5, 0, 1 },
    { 1, 16, 70, 8, 8, 4, 2, 1 },
  };

  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    const int *p = cases[c];
    int64_t B = p[0], Cin = p[1], T = p[2], Cout_g = p[3], K = p[4];
    int st = p[5], pad = p[6], g = p[7];
    int64_t Cout = Cout_g * g, Cin_g = Cin / g;
    int64_t To = (T - 1) * st - 2 * pad + K;
    OviDType wd = weight_dtypes[c % G_N_ELEMENTS (weight_dtypes)];
    int nd = B > 1 ? 3 : 2;
    int64_t xs[3] = { B, Cin, T }, os[3] = { B, Cout, To };
    g_autoptr (OviTensor) x = rand_f32 (nd, xs + 3 - nd);
    g_autoptr (OviTensor) w
        = rand_tensor (wd, 3, (int64_t[]){ Cin, Cout_g, K }, -1, 1);
    g_autoptr (OviTensor) bias = rand_f32 (1, &Cout);
    g_autoptr (OviTensor) out = new_out (be2, nd, os + 3 - nd);
    g_autoptr (OviTensor) out1 = new_out (be1, nd, os + 3 - nd);
    g_autofree double *xd = to_f64 (x), *wdd = to_f64 (w), *bd = to_f64 (bias);
    g_autofree double *ref = g_new0 (double, B *Cout *To);

    /* scatter form: every input sample adds its kernel to the output */
    for (int64_t b = 0; b < B; b++) {
      for (int64_t co = 0; co < Cout; co++)
        for (int64_t o = 0; o < To; o++)
          ref[(b * Cout + co) * To + o] = c % 2 ? bd[co] : 0;
      for (int64_t ci = 0; ci < Cin; ci++) {
        int64_t gi = ci / Cin_g;
        for (int64_t t = 0; t < T; t++)
          for (int64_t col = 0; col < Cout_g; col++)
            for (int64_t k = 0; k < K; k++) {
              int64_t o = t * st + k - pad;
              if (o < 0 || o >= To)
                continue;
              ref[(b * Cout + gi * Cout_g + col) * To + o]
                  += xd[(b * Cin + ci) * T + t]
                     * wdd[(ci * Cout_g + col) * K + k];
            }
      }
    }
    ovi_op_conv_transpose1d (be2, out, x, w, c % 2 ? bias : NULL, st, pad, g);
    ovi_op_conv_transpose1d (be1, out1, x, w, c % 2 ? bias : NULL, st, pad, g);
    assert_ok (be2);
    assert_ok (be1);
    CHECK_REL_FLOOR (out, ref, 0.1, 1e-6, "conv_transpose1d case %u (w %s)", c,
                     ovi_dtype_name (wd));
    g_assert_true (same_bits (out, out1));
  }
}

static void
test_conv3d (void)
{
  static const int cases[][17] = {
    /* Cin, T, H, W, Cout, kt, kh, kw, st t/h/w, pad tf tb ht hb wl wr */
    { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0 },
    { 3, 5, 7, 9, 4, 3, 3, 3, 1, 1, 1, 2, 0, 1, 1, 1, 1 },
    { 4, 3, 8, 6, 5, 1, 3, 3, 1, 2, 2, 0, 0, 0, 1, 0, 1 },
    { 2, 7, 5, 5, 3, 3, 1, 1, 2, 1, 1, 0, 0, 0, 0, 0, 0 },
    { 16, 2, 9, 11, 8, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0 },
    { 12, 3, 10, 12, 12, 3, 3, 3, 1, 1, 1, 2, 0, 1, 1, 1, 1 },
    { 5, 4, 6, 7, 6, 2, 2, 3, 1, 2, 1, 1, 1, 0, 2, 3, 0 },
    { 8, 2, 5, 40, 8, 3, 3, 3, 1, 1, 1, 2, 0, 1, 1, 1, 1 },
    { 4, 1, 6, 37, 7, 1, 3, 3, 1, 2, 2, 0, 0, 0, 1, 0, 1 },
  };

  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    const int *p = cases[c];
    int64_t Cin = p[0], T = p[1], H = p[2], W = p[3], Cout = p[4];
    int64_t kt = p[5], kh = p[6], kw = p[7];
    int st[3] = { p[8], p[9], p[10] };
    int pad[6] = { p[11], p[12], p[13], p[14], p[15], p[16] };
    int64_t To = (T + pad[0] + pad[1] - kt) / st[0] + 1;
    int64_t Ho = (H + pad[2] + pad[3] - kh) / st[1] + 1;
    int64_t Wo = (W + pad[4] + pad[5] - kw) / st[2] + 1;
    OviDType wd = weight_dtypes[c % G_N_ELEMENTS (weight_dtypes)];
    g_autoptr (OviTensor) x = rand_f32 (4, (int64_t[]){ Cin, T, H, W });
    g_autoptr (OviTensor) w
        = rand_tensor (wd, 5, (int64_t[]){ Cout, Cin, kt, kh, kw }, -1, 1);
    g_autoptr (OviTensor) bias = rand_f32 (1, &Cout);
    int64_t os[4] = { Cout, To, Ho, Wo };
    g_autoptr (OviTensor) out = new_out (be2, 4, os);
    g_autoptr (OviTensor) out1 = new_out (be1, 4, os);
    g_autofree double *xd = to_f64 (x), *wdd = to_f64 (w), *bd = to_f64 (bias);
    g_autofree double *ref = g_new (double, Cout *To *Ho *Wo);

    for (int64_t co = 0; co < Cout; co++)
      for (int64_t to = 0; to < To; to++)
        for (int64_t ho = 0; ho < Ho; ho++)
          for (int64_t wo = 0; wo < Wo; wo++) {
            double acc = c % 2 ? 0 : bd[co];
            for (int64_t ci = 0; ci < Cin; ci++)
              for (int64_t a = 0; a < kt; a++)
                for (int64_t b = 0; b < kh; b++)
                  for (int64_t e = 0; e < kw; e++) {
                    int64_t t = to * st[0] - pad[0] + a;
                    int64_t h = ho * st[1] - pad[2] + b;
                    int64_t ww = wo * st[2] - pad[4] + e;
                    if (t < 0 || t >= T || h < 0 || h >= H || ww < 0 || ww >= W)
                      continue;
                    acc += xd[((ci * T + t) * H + h) * W + ww]
                           * wdd[(((co * Cin + ci) * kt + a) * kh + b) * kw
                                 + e];
                  }
            ref[((co * To + to) * Ho + ho) * Wo + wo] = acc;
          }
    ovi_op_conv3d (be2, out, x, w, c % 2 ? NULL : bias, st, pad);
    ovi_op_conv3d (be1, out1, x, w, c % 2 ? NULL : bias, st, pad);
    assert_ok (be2);
    assert_ok (be1);
    CHECK_REL_FLOOR (out, ref, 0.1, 1e-6, "conv3d case %u (w %s)", c,
                     ovi_dtype_name (wd));
    g_assert_true (same_bits (out, out1));
  }
}

static void
test_pad (void)
{
  static const int cases[][7] = {
    /* n, pads (before/after per padded dim, innermost last) */
    { 3, 1, 2, 0, 3, 2, 1 },  { 1, 0, 5, 0, 0, 0, 0 }, { 2, 2, 0, 3, 3, 0, 0 },
    { 1, -1, 2, 0, 0, 0, 0 }, { 4, 1, 1, 0, 0, 0, 0 },
  };
  int64_t xs[4] = { 2, 3, 5, 7 };
  g_autoptr (OviTensor) x = rand_f32 (4, xs);

  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    int n = cases[c][0];
    const int *pads = cases[c] + 1;
    int64_t os[4], before[4] = { 0 }, total = 1;

    memcpy (os, xs, sizeof (os));
    for (int i = 0; i < n; i++) {
      os[4 - n + i] += pads[2 * i] + pads[2 * i + 1];
      before[4 - n + i] = pads[2 * i];
    }
    for (int d = 0; d < 4; d++)
      total *= os[d];
    for (int mode = 0; mode < 2; mode++) {
      g_autoptr (OviTensor) out = new_out (be2, 4, os);
      g_autofree double *ref = g_new (double, total);
      for (int64_t i = 0; i < total; i++) {
        int64_t idx[4], rem = i;
        gboolean zero = FALSE;
        for (int d = 3; d >= 0; d--) {
          idx[d] = rem % os[d] - before[d];
          rem /= os[d];
          if (idx[d] < 0 || idx[d] >= xs[d]) {
            zero = TRUE;
            idx[d] = CLAMP (idx[d], 0, xs[d] - 1);
          }
        }
        ref[i]
            = (zero && mode == OVI_PAD_ZERO) ? 0 : ovi_tensor_get_f64 (x, idx);
      }
      ovi_op_pad (be2, out, x, n, pads, (OviPadMode) mode);
      assert_ok (be2);
      CHECK_REL (out, ref, 0, "pad case %u mode %d", c, mode);
    }
  }
}

static void
test_upsample (void)
{
  static const int cases[][4] = {
    { 1, 2, 0, 0 },
    { 2, 2, 3, 0 },
    { 3, 2, 2, 2 },
    { 2, 1, 1, 0 },
  };
  int64_t xs[4] = { 2, 3, 4, 5 };
  g_autoptr (OviTensor) big = rand_f32 (4, (int64_t[]){ 2, 3, 4, 8 });
  /* a strided input: columns 1..5 of 8 */
  g_autoptr (OviTensor) x = ovi_tensor_narrow (big, 3, 1, 5);

  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    int n = cases[c][0];
    const int *f = cases[c] + 1;
    int64_t os[4], fac[4] = { 1, 1, 1, 1 }, total = 1;

    memcpy (os, xs, sizeof (os));
    for (int i = 0; i < n; i++) {
      os[4 - n + i] *= f[i];
      fac[4 - n + i] = f[i];
    }
    for (int d = 0; d < 4; d++)
      total *= os[d];
    {
      g_autoptr (OviTensor) out = new_out (be2, 4, os);
      g_autofree double *ref = g_new (double, total);
      for (int64_t i = 0; i < total; i++) {
        int64_t idx[4], rem = i;
        for (int d = 3; d >= 0; d--) {
          /* nearest-exact: floor ((o + 0.5) / f) */
          idx[d] = (int64_t) floor (((rem % os[d]) + 0.5) / fac[d]);
          rem /= os[d];
        }
        ref[i] = ovi_tensor_get_f64 (x, idx);
      }
      ovi_op_upsample_nearest (be2, out, x, n, f);
      assert_ok (be2);
      CHECK_REL (out, ref, 0, "upsample case %u", c);
    }
  }
}

static void
test_channel_norm (void)
{
  static const int64_t shapes[][4] = {
    { 1, 1, 1, 1 },
    { 12, 2, 7, 9 },
    { 48, 1, 33, 20 },
    { 96, 3, 4, 5 },
  };

  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++) {
    int64_t C = shapes[s][0], N = shapes[s][1] * shapes[s][2] * shapes[s][3];
    g_autoptr (OviTensor) x = rand_tensor (OVI_DTYPE_F32, 4, shapes[s], -2, 2);
    g_autoptr (OviTensor) gamma
        = rand_tensor (OVI_DTYPE_BF16, 4, (int64_t[]){ C, 1, 1, 1 }, 0.5, 1.5);
    g_autoptr (OviTensor) out = new_out (be2, 4, shapes[s]);
    g_autofree double *xd = to_f64 (x), *gd = to_f64 (gamma);
    g_autofree double *ref = g_new (double, C *N);

    for (int kind = 0; kind < 2; kind++) {
      for (int64_t n = 0; n < N; n++) {
        double ss = 0, norm;
        for (int64_t c = 0; c < C; c++)
          ss += xd[c * N + n] * xd[c * N + n];
        norm = sqrt (ss);
        for (int64_t c = 0; c < C; c++)
          ref[c * N + n]
              = kind == OVI_CHANNEL_NORM_L2_SQRT_C
                    ? xd[c * N + n] / fmax (norm, 1e-12) * sqrt ((double) C)
                          * gd[c]
                    : xd[c * N + n] / (1e-4 + norm / sqrt ((double) C));
      }
      ovi_op_channel_norm (be2, out, x, kind == 0 ? gamma : NULL,
                           (OviChannelNorm) kind);
      assert_ok (be2);
      CHECK_REL (out, ref, 1e-6, "channel_norm C=%" G_GINT64_FORMAT " kind %d",
                 C, kind);
    }
  }
}

static void
test_conv_errors (void)
{
  g_autoptr (OviTensor) x = rand_f32 (2, (int64_t[]){ 4, 10 });
  g_autoptr (OviTensor) w = rand_f32 (3, (int64_t[]){ 6, 3, 3 });
  g_autoptr (OviTensor) out = new_out (be2, 2, (int64_t[]){ 6, 8 });
  GError *error = NULL;

  ovi_op_conv1d (be2, out, x, w, NULL, 1, 0, 0, 1, 1);
  g_assert_false (ovi_backend_sync (be2, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_SHAPE);
  g_assert_nonnull (strstr (error->message, "ovi_op_conv1d"));
  g_clear_error (&error);
}

int
main (int argc, char **argv)
{
  int ret;

  g_test_init (&argc, &argv, NULL);
  test_util_init ();
  be1 = ovi_backend_new_cpu (1);
  be2 = ovi_backend_new_cpu (2);

  g_test_add_func ("/conv/conv1d", test_conv1d);
  g_test_add_func ("/conv/conv-transpose1d", test_conv_transpose1d);
  g_test_add_func ("/conv/conv3d", test_conv3d);
  g_test_add_func ("/conv/pad", test_pad);
  g_test_add_func ("/conv/upsample-nearest", test_upsample);
  g_test_add_func ("/conv/channel-norm", test_channel_norm);
  g_test_add_func ("/conv/errors", test_conv_errors);
  ret = g_test_run ();
  ovi_backend_free (be1);
  ovi_backend_free (be2);
  g_rand_free (test_rand);
  return ret;
}
