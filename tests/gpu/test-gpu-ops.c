/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi GPU tests: every op of the table on the cuda backend against the
 * cpu backend, on random inputs with the shapes of tests/ops, in the fp32
 * parity mode ("cuda-fp32", rel_l2 <= 1e-4) and in bf16 ("cuda",
 * rel_l2 <= 2e-2). Exits 77 (skip) when the machine has no CUDA device. */
#include "ovi-backend.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static GRand *rng;
static OviBackend *cpu, *gpu;
static double tol;
static int n_checked;

/* ---- inputs ---- */

static OviTensor *
host_rand (OviDType dt, int nd, const int64_t *shape, double lo, double hi)
{
  OviTensor *t = ovi_tensor_new (dt, nd, shape, NULL);
  int64_t n = ovi_tensor_numel (t);
  int64_t rows = nd ? shape[0] : 1;

  g_assert_nonnull (t);
  if (dt == OVI_DTYPE_F8_E4M3 || dt == OVI_DTYPE_I8) {
    double range = dt == OVI_DTYPE_I8 ? 127.0 : 448.0;
    t->scale = ovi_tensor_new (OVI_DTYPE_F32, 1, &rows, NULL);
    for (int64_t r = 0; r < rows; r++)
      ((float *) ovi_tensor_data (t->scale))[r]
          = (float) (MAX (fabs (lo), fabs (hi)) / range
                     * g_rand_double_range (rng, 0.8, 1.2));
  }
  for (int64_t i = 0; i < n; i++) {
    double v = g_rand_double_range (rng, lo, hi);
    char *p = (char *) ovi_tensor_data (t) + i * ovi_dtype_size (dt);
    float s = t->scale ? ((float *) ovi_tensor_data (t->scale))[i / (n / rows)]
                       : 1.0f;
    switch (dt) {
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
        *(uint8_t *) p = ovi_f32_to_f8e4m3 ((float) v / s);
        break;
      case OVI_DTYPE_I8:
        *(int8_t *) p = (int8_t) lrint (CLAMP (v / s, -127, 127));
        break;
      default:
        g_assert_not_reached ();
    }
  }
  return t;
}

static OviTensor *
rnd (int nd, const int64_t *shape)
{
  return host_rand (OVI_DTYPE_F32, nd, shape, -1.0, 1.0);
}

#define SHAPE(...)                                                             \
  (sizeof ((int64_t[]){ __VA_ARGS__ }) / sizeof (int64_t)),                    \
      ((int64_t[]){ __VA_ARGS__ })

/* a fresh copy of a host tensor on be (so in-place ops do not share) */
static OviTensor *
put (OviBackend *be, OviTensor *h)
{
  OviTensor *t;

  if (h == NULL)
    return NULL;
  if (h->scale)
    return ovi_backend_upload (be, h);
  t = ovi_backend_new_tensor (be, h->dtype, h->ndim, h->shape);
  g_assert_nonnull (t);
  ovi_op_copy (be, t, h);
  return t;
}

/* ---- comparison ---- */

static void
compare (const char *what, OviTensor *got_dev, OviTensor *ref_dev)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviTensor) got = ovi_backend_download_f32 (gpu, got_dev, &error);
  g_autoptr (OviTensor) ref = NULL;
  double num = 0, den = 0, rel;
  int64_t n;

  g_assert_no_error (error);
  ref = ovi_backend_download_f32 (cpu, ref_dev, &error);
  g_assert_no_error (error);
  g_assert_true (ovi_tensor_has_shape (got, ref->ndim, ref->shape));
  n = ovi_tensor_numel (ref);
  for (int64_t i = 0; i < n; i++) {
    double g = ((float *) ovi_tensor_data (got))[i];
    double r = ((float *) ovi_tensor_data (ref))[i];
    num += (g - r) * (g - r);
    den += r * r;
  }
  rel = den > 0 ? sqrt (num / den) : sqrt (num);
  g_print ("# %-40s %-9s rel_l2 %.3e (n=%" G_GINT64_FORMAT ")\n", what,
           ovi_backend_get_name (gpu), rel, n);
  if (!(rel <= tol))
    g_error ("%s on %s: rel_l2 %.3e above %.1e", what,
             ovi_backend_get_name (gpu), rel, tol);
  n_checked++;
}

/* run `body` on both backends with the same host inputs; body fills out */
typedef OviTensor *(*OpBody) (OviBackend *be, OviTensor **in, gpointer data);

static void
check (const char *what, OpBody body, OviTensor **host_in, int n_in,
       gpointer data)
{
  OviTensor *ci[8] = { 0 }, *gi[8] = { 0 };
  g_autoptr (OviTensor) co = NULL, go = NULL;
  g_autoptr (GError) error = NULL;

  for (int i = 0; i < n_in; i++) {
    ci[i] = put (cpu, host_in[i]);
    gi[i] = put (gpu, host_in[i]);
  }
  co = body (cpu, ci, data);
  go = body (gpu, gi, data);
  if (!ovi_backend_sync (cpu, &error) || !ovi_backend_sync (gpu, &error))
    g_error ("%s: %s", what, error->message);
  compare (what, go, co);
  for (int i = 0; i < n_in; i++) {
    g_clear_pointer (&ci[i], ovi_tensor_unref);
    g_clear_pointer (&gi[i], ovi_tensor_unref);
  }
}

static void
free_all (OviTensor **t, int n)
{
  for (int i = 0; i < n; i++)
    g_clear_pointer (&t[i], ovi_tensor_unref);
}

/* ---- matmul ---- */

typedef struct {
  OviActivation act;
  gboolean bias;
} MatmulArgs;

static OviTensor *
body_matmul (OviBackend *be, OviTensor **in, gpointer data)
{
  MatmulArgs *a = data;
  OviTensor *x = in[0], *w = in[1];
  int64_t shape[OVI_MAX_DIMS];
  OviTensor *out;

  memcpy (shape, x->shape, sizeof (int64_t) * x->ndim);
  shape[x->ndim - 1] = w->shape[0];
  out = ovi_backend_new_act (be, x->ndim, shape);
  ovi_op_matmul (be, out, x, w, a->bias ? in[2] : NULL, a->act);
  return out;
}

static void
test_matmul (void)
{
  const OviDType wdt[] = { OVI_DTYPE_F32, OVI_DTYPE_BF16, OVI_DTYPE_F16,
                           OVI_DTYPE_F8_E4M3, OVI_DTYPE_I8 };
  const OviActivation acts[]
      = { OVI_ACT_NONE, OVI_ACT_GELU_TANH, OVI_ACT_GELU_ERF,
          OVI_ACT_SILU, OVI_ACT_TANH,      OVI_ACT_RELU };
  /* M x N x K: GEMV-like, odd sizes, a long K; fp8-able (16 | N, K) */
  const int64_t mnk[][3] = {
    { 3 * 37, 80, 96 }, { 2, 33, 1000 }, { 129, 65, 31 }, { 300, 256, 512 }
  };

  for (gsize s = 0; s < G_N_ELEMENTS (mnk); s++) {
    for (gsize d = 0; d < G_N_ELEMENTS (wdt); d++) {
      for (gsize a = 0; a < G_N_ELEMENTS (acts); a++) {
        OviTensor *in[3];
        MatmulArgs args = { acts[a], (a + d) % 2 == 0 };
        g_autofree char *what = g_strdup_printf (
            "matmul %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
            " w %s act %d%s",
            mnk[s][0], mnk[s][1], mnk[s][2], ovi_dtype_name (wdt[d]),
            (int) acts[a], args.bias ? " bias" : "");
        double saved = tol;
        in[0] = rnd (SHAPE (mnk[s][0], mnk[s][2]));
        in[1] = host_rand (wdt[d], SHAPE (mnk[s][1], mnk[s][2]), -0.3, 0.3);
        in[2] = host_rand (OVI_DTYPE_BF16, SHAPE (mnk[s][1]), -1, 1);
        /* bf16 on sm_90: F8 weights with N, K multiples of 16 run on the fp8
         * tensor cores with the activations quantised to E4M3 per row (3
         * mantissa bits: about 3 % rms), the quantisation bound */
        if (wdt[d] == OVI_DTYPE_F8_E4M3 && tol > 1e-3)
          tol = 6e-2;
        check (what, body_matmul, in, 3, &args);
        tol = saved;
        free_all (in, 3);
      }
    }
  }
}

/* ---- attention ---- */

typedef struct {
  gboolean bias;
  const int64_t *kv_lens;
  int64_t D;
} AttnArgs;

static OviTensor *
body_attention (OviBackend *be, OviTensor **in, gpointer data)
{
  AttnArgs *a = data;
  /* q, k, v: views into one fused [B, L, H, 3 D] tensor (strided rows) */
  OviTensor *qkv = in[0], *kv = in[1];
  int64_t B = qkv->shape[0], Lq = qkv->shape[1], H = qkv->shape[2], D = a->D;
  g_autoptr (OviTensor) q = ovi_tensor_narrow (qkv, 3, 0, D);
  g_autoptr (OviTensor) k = ovi_tensor_narrow (kv, 3, 0, D);
  g_autoptr (OviTensor) v = ovi_tensor_narrow (kv, 3, D, D);
  OviTensor *out = ovi_backend_new_act (be, 4, (int64_t[]){ B, Lq, H, D });

  ovi_op_attention (be, out, q, k, v, a->bias ? in[2] : NULL, a->kv_lens,
                    1.0f / sqrtf ((float) D));
  return out;
}

static void
test_attention (void)
{
  /* bf16: <= 256 through cuDNN's fused attention (the kernel with a bias),
   * 512 and 1024 (the VAE's single head) through cuBLASLt */
  const int64_t dims[] = { 16, 32, 64, 128, 200, 512, 1024 };
  const int64_t lens[] = { 45, 17 }, lens0[] = { 0, 45 };

  for (gsize i = 0; i < G_N_ELEMENTS (dims); i++) {
    for (int variant = 0; variant < 3; variant++) {
      int64_t D = dims[i], B = 2, Lq = 37, Lk = 45, H = 3;
      AttnArgs args = { variant == 1, variant == 2 ? lens : NULL, D };
      OviTensor *in[3];
      g_autofree char *what = NULL;

      if (variant == 0 && i == 0)
        args.kv_lens = lens0;
      what = g_strdup_printf ("attention D %" G_GINT64_FORMAT " %s", D,
                              variant == 1   ? "bias"
                              : args.kv_lens ? "kv_lens"
                                             : "plain");
      in[0] = host_rand (OVI_DTYPE_BF16, SHAPE (B, Lq, H, 3 * D), -2, 2);
      in[1] = host_rand (OVI_DTYPE_BF16, SHAPE (B, Lk, H, 2 * D), -2, 2);
      in[2] = rnd (SHAPE (1, H, Lq, Lk));
      /* a masked key for every query, and a fully masked query row */
      for (int64_t h = 0; h < H; h++)
        for (int64_t q = 0; q < Lq; q++)
          for (int64_t kk = 0; kk < Lk; kk++)
            if (kk == (q * 7) % Lk || q == 5)
              ((float *) ovi_tensor_data (in[2]))[(h * Lq + q) * Lk + kk]
                  = -INFINITY;
      check (what, body_attention, in, 3, &args);
      free_all (in, 3);
    }
  }
}

/* DiT-like: several key tiles, 4 heads of 128, the two CFG branches */
static void
test_attention_long (void)
{
  int64_t B = 2, L = 300, H = 4, D = 128;
  AttnArgs args = { FALSE, NULL, D };
  OviTensor *in[3];

  in[0] = host_rand (OVI_DTYPE_BF16, SHAPE (B, L, H, 3 * D), -2, 2);
  in[1] = host_rand (OVI_DTYPE_BF16, SHAPE (B, L, H, 2 * D), -2, 2);
  in[2] = rnd (SHAPE (1, H, L, L));
  check ("attention B 2 L 300 H 4 D 128", body_attention, in, 3, &args);
  free_all (in, 3);
}

/* ---- rows ---- */

typedef struct {
  int kind;
  float eps;
} RowArgs;

static OviTensor *
body_rows (OviBackend *be, OviTensor **in, gpointer data)
{
  RowArgs *a = data;
  OviTensor *x = in[0];
  OviTensor *out;

  if (a->kind == 4) {
    out = ovi_backend_new_act (be, x->ndim - 1, x->shape);
    ovi_op_mean_last (be, out, x);
    return out;
  }
  out = ovi_backend_new_act (be, x->ndim, x->shape);
  switch (a->kind) {
    case 0:
      ovi_op_softmax (be, out, x);
      break;
    case 1:
      ovi_op_rms_norm (be, out, x, in[1], a->eps);
      break;
    case 2:
      ovi_op_layer_norm (be, out, x, in[1], in[2], a->eps);
      break;
    case 3: {
      /* shift / scale: one row per batch, broadcast over L (stride 0) */
      g_autoptr (OviTensor) sh = ovi_tensor_view (
          in[1], 3, (int64_t[]){ x->shape[0], x->shape[1], x->shape[2] },
          (int64_t[]){ in[1]->stride[0], 0, 1 }, 0);
      g_autoptr (OviTensor) sc = ovi_tensor_view (
          in[2], 3, (int64_t[]){ x->shape[0], x->shape[1], x->shape[2] },
          (int64_t[]){ in[2]->stride[0], 0, 1 }, 0);
      ovi_op_modulate (be, out, x, sh, sc, a->eps);
      break;
    }
    case 5:
      ovi_op_layer_norm (be, out, x, NULL, NULL, a->eps);
      break;
    default:
      g_assert_not_reached ();
  }
  return out;
}

static void
test_rows (void)
{
  const char *names[] = { "softmax",  "rms_norm",  "layer_norm",
                          "modulate", "mean_last", "layer_norm (no affine)" };

  for (int kind = 0; kind < 6; kind++) {
    RowArgs args = { kind, 1e-6f };
    OviTensor *in[3];
    in[0] = host_rand (OVI_DTYPE_F32, SHAPE (2, 50, 1000), -3, 3);
    in[1] = kind == 3 ? rnd (SHAPE (2, 1000))
                      : host_rand (OVI_DTYPE_BF16, SHAPE (1000), 0.5, 1.5);
    in[2] = kind == 3 ? rnd (SHAPE (2, 1000)) : rnd (SHAPE (1000));
    if (kind == 0) {
      float *x = ovi_tensor_data (in[0]);
      for (int i = 0; i < 1000; i++)
        x[3 * 1000 + i] = -INFINITY; /* a fully masked row */
      x[7 * 1000 + 3] = -INFINITY;
    }
    check (names[kind], body_rows, in, 3, &args);
    free_all (in, 3);
  }
}

static OviTensor *
body_channel_norm (OviBackend *be, OviTensor **in, gpointer data)
{
  OviTensor *out = ovi_backend_new_act (be, in[0]->ndim, in[0]->shape);

  ovi_op_channel_norm (be, out, in[0], in[1],
                       (OviChannelNorm) GPOINTER_TO_INT (data));
  return out;
}

static void
test_channel_norm (void)
{
  /* channels split among 8 thread rows: fewer, not a multiple, many */
  const int64_t shapes[][4] = {
    { 16, 3, 5, 7 }, { 5, 2, 9, 11 }, { 20, 1, 6, 33 }, { 384, 1, 44, 44 }
  };

  for (gsize i = 0; i < G_N_ELEMENTS (shapes); i++)
    for (int kind = 0; kind < 2; kind++) {
      const int64_t *sh = shapes[i];
      OviTensor *in[2]
          = { rnd (SHAPE (sh[0], sh[1], sh[2], sh[3])),
              host_rand (OVI_DTYPE_BF16, SHAPE (sh[0], 1, 1, 1), 0.5, 1.5) };
      g_autofree char *what
          = g_strdup_printf ("channel_norm %s C %" G_GINT64_FORMAT,
                             kind ? "magnitude" : "l2", sh[0]);
      check (what, body_channel_norm, in, 2, GINT_TO_POINTER (kind));
      free_all (in, 2);
    }
}

/* ---- elementwise ---- */

static OviTensor *
body_ew (OviBackend *be, OviTensor **in, gpointer data)
{
  int code = GPOINTER_TO_INT (data);
  OviTensor *x = in[0];
  OviTensor *out = ovi_backend_new_act (be, x->ndim, x->shape);

  if (code < 6) {
    ovi_op_unary (be, out, x, (OviActivation) code, 0.7f);
  } else if (code < 10) {
    ovi_op_binary (be, out, x, in[1], (OviBinaryOp) (code - 6));
  } else if (code == 10) {
    ovi_op_axpby (be, out, 0.3f, x, -1.7f, in[1]);
  } else if (code == 11) {
    ovi_op_axpby (be, out, 0.3f, x, -1.7f, NULL);
  } else if (code == 12) {
    ovi_op_clamp (be, out, x, -0.4f, 0.25f);
  } else if (code == 13 || code == 14) {
    ovi_op_snake_beta (be, out, x, in[2], in[3], code == 14);
  } else if (code == 15) {
    /* gate_add in place on a copy of x */
    ovi_op_copy (be, out, x);
    ovi_op_gate_add (be, out, in[4], in[1]);
  } else {
    g_assert_not_reached ();
  }
  return out;
}

static void
test_elementwise (void)
{
  for (int code = 0; code < 16; code++) {
    OviTensor *in[5];
    g_autofree char *what = g_strdup_printf ("elementwise %d", code);
    in[0] = host_rand (OVI_DTYPE_F32, SHAPE (4, 9, 33), -3, 3);
    /* b broadcast over dim 1; nonzero for div */
    in[1] = host_rand (OVI_DTYPE_BF16, SHAPE (4, 1, 33), 0.5, 2);
    in[2] = rnd (SHAPE (9));
    in[3] = host_rand (OVI_DTYPE_F32, SHAPE (9), 0.1, 1);
    in[4] = rnd (SHAPE (4, 9, 33));
    check (what, body_ew, in, 5, GINT_TO_POINTER (code));
    free_all (in, 5);
  }
}

static OviTensor *
body_rope (OviBackend *be, OviTensor **in, gpointer data)
{
  OviTensor *out = ovi_backend_new_act (be, in[0]->ndim, in[0]->shape);

  ovi_op_rope (be, out, in[0], in[1], in[2]);
  return out;
}

static void
test_rope (void)
{
  OviTensor *in[3]
      = { rnd (SHAPE (2, 5, 3, 16)), rnd (SHAPE (5, 6)), rnd (SHAPE (5, 6)) };

  check ("rope", body_rope, in, 3, NULL);
  free_all (in, 3);
}

/* ---- convolutions ---- */

typedef struct {
  int stride, pl, pr, dil, groups;
} Conv1dArgs;

static OviTensor *
body_conv1d (OviBackend *be, OviTensor **in, gpointer data)
{
  Conv1dArgs *a = data;
  OviTensor *x = in[0], *w = in[1];
  int64_t T = x->shape[x->ndim - 1], K = w->shape[2];
  int64_t To = (T + a->pl + a->pr - a->dil * (K - 1) - 1) / a->stride + 1;
  int64_t shape[3];
  OviTensor *out;

  memcpy (shape, x->shape, sizeof (int64_t) * x->ndim);
  shape[x->ndim - 2] = w->shape[0];
  shape[x->ndim - 1] = To;
  out = ovi_backend_new_act (be, x->ndim, shape);
  ovi_op_conv1d (be, out, x, w, in[2], a->stride, a->pl, a->pr, a->dil,
                 a->groups);
  return out;
}

typedef struct {
  int stride, padding, groups;
} ConvT1dArgs;

static OviTensor *
body_convt1d (OviBackend *be, OviTensor **in, gpointer data)
{
  ConvT1dArgs *a = data;
  OviTensor *x = in[0], *w = in[1];
  int64_t T = x->shape[1], K = w->shape[2];
  int64_t To = (T - 1) * a->stride - 2 * a->padding + K;
  OviTensor *out
      = ovi_backend_new_act (be, 2, (int64_t[]){ w->shape[1] * a->groups, To });

  ovi_op_conv_transpose1d (be, out, x, w, in[2], a->stride, a->padding,
                           a->groups);
  return out;
}

static OviTensor *
body_conv3d (OviBackend *be, OviTensor **in, gpointer data)
{
  OviTensor *x = in[0], *w = in[1];
  const int stride[3] = { 1, 2, 2 }, pad[6] = { 2, 0, 1, 1, 1, 1 };
  int64_t shape[4] = { w->shape[0], 0, 0, 0 };
  OviTensor *out;

  for (int i = 0; i < 3; i++)
    shape[i + 1]
        = (x->shape[i + 1] + pad[2 * i] + pad[2 * i + 1] - w->shape[i + 2])
              / stride[i]
          + 1;
  out = ovi_backend_new_act (be, 4, shape);
  ovi_op_conv3d (be, out, x, w, in[2], stride, pad);
  return out;
}

static void
test_conv (void)
{
  Conv1dArgs c1[] = { { 1, 3, 3, 1, 1 }, { 2, 3, 1, 2, 1 }, { 1, 2, 2, 1, 4 } };
  ConvT1dArgs ct[] = { { 4, 2, 1 }, { 2, 1, 2 } };

  for (gsize i = 0; i < G_N_ELEMENTS (c1); i++) {
    for (int batched = 0; batched < 2; batched++) {
      OviTensor *in[3];
      g_autofree char *what = g_strdup_printf ("conv1d #%d%s", (int) i,
                                               batched ? " batched" : "");
      in[0] = batched ? rnd (SHAPE (2, 24, 50)) : rnd (SHAPE (24, 50));
      in[1] = host_rand (OVI_DTYPE_BF16, SHAPE (16, 24 / c1[i].groups, 5), -0.5,
                         0.5);
      in[2] = i == 1 ? NULL : rnd (SHAPE (16));
      check (what, body_conv1d, in, 3, &c1[i]);
      free_all (in, 3);
    }
  }
  for (gsize i = 0; i < G_N_ELEMENTS (ct); i++) {
    OviTensor *in[3];
    g_autofree char *what = g_strdup_printf ("conv_transpose1d #%d", (int) i);
    in[0] = rnd (SHAPE (24, 30));
    in[1] = host_rand (OVI_DTYPE_F32, SHAPE (24, 16 / ct[i].groups, 8), -0.5,
                       0.5);
    in[2] = rnd (SHAPE (16));
    check (what, body_convt1d, in, 3, &ct[i]);
    free_all (in, 3);
  }
  {
    OviTensor *in[3] = {
      rnd (SHAPE (8, 5, 9, 11)),
      host_rand (OVI_DTYPE_BF16, SHAPE (12, 8, 3, 3, 3), -0.3, 0.3),
      rnd (SHAPE (12)),
    };
    check ("conv3d", body_conv3d, in, 3, NULL);
    free_all (in, 3);
  }
}

/* ---- resampling, embedding, copies ---- */

static OviTensor *
body_resample (OviBackend *be, OviTensor **in, gpointer data)
{
  int kind = GPOINTER_TO_INT (data);
  OviTensor *x = in[0];
  const int pads[6] = { 1, 2, 0, 1, 3, 0 }, factors[2] = { 2, 3 };
  int64_t shape[4];
  OviTensor *out;

  memcpy (shape, x->shape, sizeof (shape));
  if (kind < 2) {
    for (int i = 0; i < 3; i++)
      shape[1 + i] += pads[2 * i] + pads[2 * i + 1];
    out = ovi_backend_new_act (be, 4, shape);
    ovi_op_pad (be, out, x, 3, pads, kind ? OVI_PAD_REPLICATE : OVI_PAD_ZERO);
  } else {
    shape[2] *= 2;
    shape[3] *= 3;
    out = ovi_backend_new_act (be, 4, shape);
    ovi_op_upsample_nearest (be, out, x, 2, factors);
  }
  return out;
}

static OviTensor *
body_embedding (OviBackend *be, OviTensor **in, gpointer data)
{
  const int64_t ids[] = { 3, 0, 49, 3, 17, 8, 8 };
  OviTensor *out = ovi_backend_new_act (be, 2, (int64_t[]){ 7, 24 });

  ovi_op_embedding (be, out, in[0], ids, 7);
  return out;
}

static OviTensor *
body_copy (OviBackend *be, OviTensor **in, gpointer data)
{
  int kind = GPOINTER_TO_INT (data);
  OviTensor *x = in[0];
  OviTensor *out;

  if (kind == 0) {
    /* a permuted (strided) view into a contiguous act tensor */
    g_autoptr (OviTensor) p = ovi_tensor_permute (x, (int[]){ 2, 0, 1 });
    out = ovi_backend_new_act (be, 3, p->shape);
    ovi_op_copy (be, out, p);
  } else if (kind == 1) {
    /* pixel unshuffle then shuffle back by 2 (composites over copy) */
    g_autoptr (OviTensor) u
        = ovi_backend_new_act (be, 4,
                               (int64_t[]){ x->shape[0] * 4, x->shape[1],
                                            x->shape[2] / 2, x->shape[3] / 2 });
    ovi_op_pixel_unshuffle (be, u, x, 2);
    out = ovi_backend_new_act (be, 4, u->shape);
    ovi_op_copy (be, out, u);
  } else {
    /* fill, then a bf16 round trip */
    g_autoptr (OviTensor) b
        = ovi_backend_new_tensor (be, OVI_DTYPE_BF16, x->ndim, x->shape);
    out = ovi_backend_new_act (be, x->ndim, x->shape);
    ovi_op_fill (be, out, 0.25f);
    ovi_op_copy (be, b, x);
    ovi_op_axpby (be, out, 1.0f, b, 1.0f, out);
  }
  return out;
}

static void
test_misc (void)
{
  for (int kind = 0; kind < 3; kind++) {
    OviTensor *in[1] = { rnd (SHAPE (3, 4, 5, 6)) };
    check (kind == 0   ? "pad zero"
           : kind == 1 ? "pad replicate"
                       : "upsample nearest",
           body_resample, in, 1, GINT_TO_POINTER (kind));
    free_all (in, 1);
  }
  {
    OviTensor *in[1] = { host_rand (OVI_DTYPE_F8_E4M3, SHAPE (50, 24), -2, 2) };
    check ("embedding f8 table", body_embedding, in, 1, NULL);
    free_all (in, 1);
  }
  for (int kind = 0; kind < 3; kind++) {
    OviTensor *in[1] = { rnd (SHAPE (3, 4, 6, 8)) };
    g_autoptr (OviTensor) v = NULL;
    if (kind == 0) {
      v = ovi_tensor_reshape (in[0], 3, (int64_t[]){ 12, 6, 8 });
      ovi_tensor_unref (in[0]);
      in[0] = g_steal_pointer (&v);
    }
    check (kind == 0   ? "copy permuted"
           : kind == 1 ? "pixel unshuffle"
                       : "fill + bf16 copy",
           body_copy, in, 1, GINT_TO_POINTER (kind));
    free_all (in, 1);
  }
}

/* ---- errors and round trips that need no CPU reference ---- */

static void
test_upload_download (void)
{
  g_autoptr (OviTensor) h = host_rand (OVI_DTYPE_I8, SHAPE (7, 5), -1.0, 1.0);
  g_autoptr (OviTensor) d = ovi_backend_upload (gpu, h);
  g_autoptr (OviTensor) ref = ovi_tensor_to_f32 (h, NULL);
  g_autoptr (OviTensor) back = NULL;
  g_autoptr (GError) error = NULL;

  g_assert_nonnull (d);
  g_assert_nonnull (d->scale);
  back = ovi_backend_download_f32 (gpu, d, &error);
  g_assert_no_error (error);
  for (int i = 0; i < 35; i++)
    g_assert_cmpfloat (((float *) ovi_tensor_data (back))[i], ==,
                       ((float *) ovi_tensor_data (ref))[i]);
  /* a float weight placed in the activation dtype once (bf16 backend: F32
   * -> BF16, rounded; fp32 backend: the same F32 values) */
  {
    g_autoptr (OviTensor) f = rnd (SHAPE (6, 9));
    g_autoptr (OviTensor) a = ovi_backend_upload_act (gpu, f);
    g_autoptr (OviTensor) fb = NULL;
    g_assert_nonnull (a);
    g_assert_cmpint (a->dtype, ==, ovi_backend_get_act_dtype (gpu));
    fb = ovi_backend_download_f32 (gpu, a, &error);
    g_assert_no_error (error);
    for (int i = 0; i < 54; i++) {
      float v = ((float *) ovi_tensor_data (f))[i];
      float want = a->dtype == OVI_DTYPE_BF16
                       ? ovi_bf16_to_f32 (ovi_f32_to_bf16 (v))
                       : v;
      g_assert_cmpfloat (((float *) ovi_tensor_data (fb))[i], ==, want);
    }
  }
  /* a shape error reaches the sticky error */
  {
    g_autoptr (OviTensor) x = ovi_backend_new_act (gpu, 2, (int64_t[]){ 2, 3 });
    g_autoptr (OviTensor) w = ovi_backend_new_act (gpu, 2, (int64_t[]){ 4, 5 });
    g_autoptr (OviTensor) o = ovi_backend_new_act (gpu, 2, (int64_t[]){ 2, 4 });
    ovi_op_matmul (gpu, o, x, w, NULL, OVI_ACT_NONE);
    g_assert_false (ovi_backend_sync (gpu, &error));
    g_assert_error (error, OVI_ERROR, OVI_ERROR_SHAPE);
  }
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  const char *modes[] = { "cuda-fp32", "cuda" };
  const double tols[] = { 1e-4, 2e-2 };

  g_test_init (&argc, &argv, NULL);
  rng = g_rand_new_with_seed (20251122u);
  gpu = ovi_backend_new_by_name ("cuda-fp32", 0, &error);
  if (gpu == NULL) {
    if (g_str_has_prefix (error->message, "no CUDA device found")) {
      g_print ("SKIP: %s\n", error->message);
      return 77;
    }
    g_printerr ("cannot create the cuda backend: %s\n", error->message);
    return 1;
  }
  ovi_backend_free (gpu);
  cpu = ovi_backend_new_cpu (0);
  for (int m = 0; m < 2; m++) {
    gpu = ovi_backend_new_by_name (modes[m], 0, &error);
    g_assert_no_error (error);
    tol = tols[m];
    test_matmul ();
    test_attention ();
    test_attention_long ();
    test_rows ();
    test_channel_norm ();
    test_elementwise ();
    test_rope ();
    test_conv ();
    test_misc ();
    test_upload_download ();
    ovi_backend_free (gpu);
  }
  ovi_backend_free (cpu);
  g_print ("%d comparisons passed\n", n_checked);
  return 0;
}
