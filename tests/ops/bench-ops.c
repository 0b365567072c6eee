/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: CPU backend throughput of the heavy ops (not a test; run
 * `bench-ops [n_threads]` by hand, or `meson test --benchmark`). */
#include "ops-test-util.h"

#include <time.h>

GRand *test_rand;
guint32 test_seed;

static double
cpu_now (void)
{
  return (double) clock () / CLOCKS_PER_SEC;
}

static double
now (void)
{
  return g_get_monotonic_time () / 1e6;
}

static void
bench_matmul (OviBackend *be, int64_t M, int64_t K, int64_t N, OviDType wd)
{
  g_autoptr (OviTensor) x = rand_f32 (2, (int64_t[]){ M, K });
  g_autoptr (OviTensor) w = rand_tensor (wd, 2, (int64_t[]){ N, K }, -1, 1);
  g_autoptr (OviTensor) out = ovi_backend_new_act (be, 2, (int64_t[]){ M, N });
  double t0, t, best = 1e9;

  for (int rep = 0; rep < 3; rep++) {
    t0 = now ();
    ovi_op_matmul (be, out, x, w, NULL, OVI_ACT_NONE);
    assert_ok (be);
    t = now () - t0;
    best = MIN (best, t);
  }
  g_print ("matmul %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
           " w %-7s threads %d: %7.3f s  %6.1f GFLOP/s\n",
           M, K, N, ovi_dtype_name (wd), ovi_backend_get_n_threads (be), best,
           2.0 * M * N * K / best / 1e9);
}

static void
bench_attention (OviBackend *be, int64_t L, int64_t Lk, int64_t H, int64_t D)
{
  g_autoptr (OviTensor) q = rand_f32 (4, (int64_t[]){ 1, L, H, D });
  g_autoptr (OviTensor) k = rand_f32 (4, (int64_t[]){ 1, Lk, H, D });
  g_autoptr (OviTensor) v = rand_f32 (4, (int64_t[]){ 1, Lk, H, D });
  g_autoptr (OviTensor) out = ovi_backend_new_act (be, 4, q->shape);
  double t0 = now (), c0 = cpu_now (), t;

  ovi_op_attention (be, out, q, k, v, NULL, NULL, 1.0f / sqrtf ((float) D));
  assert_ok (be);
  t = now () - t0;
  g_print ("attention Lq %" G_GINT64_FORMAT " Lk %" G_GINT64_FORMAT
           " H %" G_GINT64_FORMAT " D %" G_GINT64_FORMAT
           " threads %d: %7.3f s  %6.1f GFLOP/s (cpu time %.3f s)\n",
           L, Lk, H, D, ovi_backend_get_n_threads (be), t,
           4.0 * L * Lk * H * D / t / 1e9, cpu_now () - c0);
}

static void
bench_conv3d (OviBackend *be, int64_t C, int64_t T, int64_t Hh, int64_t W)
{
  g_autoptr (OviTensor) x = rand_f32 (4, (int64_t[]){ C, T + 2, Hh, W });
  g_autoptr (OviTensor) w = rand_tensor (
      OVI_DTYPE_BF16, 5, (int64_t[]){ C, C, 3, 3, 3 }, -0.1, 0.1);
  g_autoptr (OviTensor) out
      = ovi_backend_new_act (be, 4, (int64_t[]){ C, T, Hh, W });
  int st[3] = { 1, 1, 1 }, pad[6] = { 0, 0, 1, 1, 1, 1 };
  double t0 = now (), t;

  ovi_op_conv3d (be, out, x, w, NULL, st, pad);
  assert_ok (be);
  t = now () - t0;
  g_print ("conv3d %" G_GINT64_FORMAT "->%" G_GINT64_FORMAT
           " k3 [%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT
           "] threads %d: "
           "%7.3f s  %6.1f GFLOP/s\n",
           C, C, T, Hh, W, ovi_backend_get_n_threads (be), t,
           2.0 * C * C * 27 * T * Hh * W / t / 1e9);
}

static void
bench_conv1d (OviBackend *be, int64_t C, int64_t T, int64_t K, int dil)
{
  g_autoptr (OviTensor) x = rand_f32 (2, (int64_t[]){ C, T });
  g_autoptr (OviTensor) w
      = rand_tensor (OVI_DTYPE_F32, 3, (int64_t[]){ C, C, K }, -0.1, 0.1);
  g_autoptr (OviTensor) out = ovi_backend_new_act (be, 2, (int64_t[]){ C, T });
  int pad = dil * (K - 1) / 2;
  double t0 = now (), t;

  ovi_op_conv1d (be, out, x, w, NULL, 1, pad, pad, dil, 1);
  assert_ok (be);
  t = now () - t0;
  g_print ("conv1d %" G_GINT64_FORMAT "->%" G_GINT64_FORMAT
           " k%" G_GINT64_FORMAT " d%d T %" G_GINT64_FORMAT
           " threads %d: %7.3f s  %6.1f GFLOP/s\n",
           C, C, K, dil, T, ovi_backend_get_n_threads (be), t,
           2.0 * C * C * K * T / t / 1e9);
}

static void
bench_convt (OviBackend *be, int64_t Cin, int64_t Cout, int64_t T, int64_t K,
             int stride)
{
  g_autoptr (OviTensor) x = rand_f32 (2, (int64_t[]){ Cin, T });
  g_autoptr (OviTensor) w
      = rand_tensor (OVI_DTYPE_F32, 3, (int64_t[]){ Cin, Cout, K }, -0.1, 0.1);
  int pad = (K - stride) / 2;
  int64_t To = (T - 1) * stride - 2 * pad + K;
  g_autoptr (OviTensor) out
      = ovi_backend_new_act (be, 2, (int64_t[]){ Cout, To });
  double t0 = now (), t;

  ovi_op_conv_transpose1d (be, out, x, w, NULL, stride, pad, 1);
  assert_ok (be);
  t = now () - t0;
  g_print ("conv_transpose1d %" G_GINT64_FORMAT "->%" G_GINT64_FORMAT
           " k%" G_GINT64_FORMAT " s%d T %" G_GINT64_FORMAT
           " threads %d: %7.3f s  %6.1f GFLOP/s\n",
           Cin, Cout, K, stride, T, ovi_backend_get_n_threads (be), t,
           2.0 * Cin * Cout * K * T / t / 1e9);
}

int
main (int argc, char **argv)
{
  int threads = argc > 1 ? atoi (argv[1]) : 0;
  gboolean big = argc > 2 && strcmp (argv[2], "big") == 0;
  g_autoptr (OviBackend) be = NULL;

  test_util_init ();
  be = ovi_backend_new_cpu (threads);
  bench_matmul (be, 1024, 1024, 1024, OVI_DTYPE_F32);
  bench_matmul (be, 1024, 1024, 1024, OVI_DTYPE_BF16);
  bench_matmul (be, 1024, 1024, 1024, OVI_DTYPE_F8_E4M3);
  bench_matmul (be, 1, 3072, 3072, OVI_DTYPE_BF16);
  bench_attention (be, 2048, 2048, 2, 128);
  if (big)
    bench_attention (be, 15000, 15000, 1, 128);
  bench_conv3d (be, 96, 1, 64, 64);
  bench_conv1d (be, 256, 4000, 3, 3);
  bench_convt (be, 512, 256, 1000, 16, 8);
  return 0;
}
