/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: what a backend implements (the cpu backend, the cuda module).
 *
 * The public API (ovi-backend.h) hides OviBackend; a backend fills an
 * OviBackendOps table and an OviBackend with it, and the checked wrappers
 * ovi_op_*() of ovi-backend.c dispatch to the table. Model code includes
 * ovi-backend.h only. The op conventions are in ovi-backend.h.
 */
#pragma once

#include "ovi-backend.h"

G_BEGIN_DECLS

typedef struct _OviBackendOps OviBackendOps;

struct _OviBackendOps {
  const char *name;

  /* memory; the contents of new device storage are undefined (host storage
   * is zeroed): model code writes or fills every element it reads */
  OviStorage *(*new_storage) (OviBackend *be, gsize size, GError **error);
  /* any device/dtype to any device/dtype, strided src and dst (a view into
   * a bigger tensor, without overlapping elements) of the same shape. Values
   * are converted (src scale applied, dst scale divided out; I8 rounds to
   * nearest and saturates; F8 saturates at 448), except that equal dtypes with
   * scales on both or neither side copy the raw elements. */
  void (*copy) (OviBackend *be, OviTensor *dst, const OviTensor *src);
  void (*fill) (OviBackend *be, OviTensor *dst, float value);
  gboolean (*sync) (OviBackend *be, GError **error);
  void (*destroy) (OviBackend *be);

  /* out[M,N] = act(x[M,K] . w[N,K]^T + bias[N]); w in PyTorch Linear layout */
  void (*matmul) (OviBackend *be, OviTensor *out, const OviTensor *x,
                  const OviTensor *w, const OviTensor *bias, OviActivation act);

  /* out[B,Lq,H,Dv] = softmax(scale * q.k^T + bias, keys >= kv_lens[b] dropped)
   * . v q[B,Lq,H,D] k[B,Lk,H,D] v[B,Lk,H,Dv]; bias [B|1, H|1, Lq, Lk] additive
   * or NULL; kv_lens host array of B lengths or NULL (all keys). Never
   * materialises more than one block of scores. q, k, v may have strided
   * dims (e.g. views of a fused qkv tensor) but a contiguous last dim.
   * A query whose keys are all dropped (or all -inf) gets 0. */
  void (*attention) (OviBackend *be, OviTensor *out, const OviTensor *q,
                     const OviTensor *k, const OviTensor *v,
                     const OviTensor *bias, const int64_t *kv_lens,
                     float scale);

  /* softmax over the last dim (a row of all -inf gives 0) */
  void (*softmax) (OviBackend *be, OviTensor *out, const OviTensor *x);

  /* over the last dim: x * rsqrt(mean(x^2) + eps) * weight (weight may be NULL)
   */
  void (*rms_norm) (OviBackend *be, OviTensor *out, const OviTensor *x,
                    const OviTensor *weight, float eps);
  /* over the last dim: (x - mean) * rsqrt(var + eps) * weight + bias (both
   * nullable) */
  void (*layer_norm) (OviBackend *be, OviTensor *out, const OviTensor *x,
                      const OviTensor *weight, const OviTensor *bias,
                      float eps);
  /* x[C, ...] channel-first (e.g. [C,T,H,W]), normalised over C for each
   * of the N = numel/C positions; gamma has C elements */
  void (*channel_norm) (OviBackend *be, OviTensor *out, const OviTensor *x,
                        const OviTensor *gamma, OviChannelNorm kind);

  /* adaLN: out[L,D] = layer_norm_no_affine(x[L,D], eps) * (1 + scale) + shift;
   * shift and scale are [L,D] views whose rows may be strided (or stride 0) */
  void (*modulate) (OviBackend *be, OviTensor *out, const OviTensor *x,
                    const OviTensor *shift, const OviTensor *scale, float eps);
  /* x[L,D] += gate * y; gate rows strided as in modulate */
  void (*gate_add) (OviBackend *be, OviTensor *x, const OviTensor *y,
                    const OviTensor *gate);

  /* interleaved-pair RoPE: x[L,H,D]; cos, sin [L,P] f32; pairs j < P of each
   * head rotate (x[2j], x[2j+1]) by the angle of row l; pairs >= P pass. */
  void (*rope) (OviBackend *be, OviTensor *out, const OviTensor *x,
                const OviTensor *cos, const OviTensor *sin);

  /* out = alpha * act(x) (OVI_ACT_NONE: alpha * x) */
  void (*unary) (OviBackend *be, OviTensor *out, const OviTensor *x,
                 OviActivation act, float alpha);
  /* out = a op b, b broadcast to a by size-1 (or stride-0) dims of the same
   * ndim */
  void (*binary) (OviBackend *be, OviTensor *out, const OviTensor *a,
                  const OviTensor *b, OviBinaryOp op);
  /* out = alpha * a + beta * b (b NULL: out = alpha * a + beta) */
  void (*axpby) (OviBackend *be, OviTensor *out, float alpha,
                 const OviTensor *a, float beta, const OviTensor *b);
  void (*clamp) (OviBackend *be, OviTensor *out, const OviTensor *x, float lo,
                 float hi);
  /* out[C,T] = x + 1/(b + 1e-9) * sin(a * x)^2 with a = exp(alpha[c]),
   * b = exp(beta[c]) when logscale, else alpha, beta as they are */
  void (*snake_beta) (OviBackend *be, OviTensor *out, const OviTensor *x,
                      const OviTensor *alpha, const OviTensor *beta,
                      gboolean logscale);
  /* mean over the last dim: out has the shape of x without it */
  void (*mean_last) (OviBackend *be, OviTensor *out, const OviTensor *x);

  /* out[Cout,To] from x[Cin,T], w[Cout,Cin/groups,K], zero padding
   * (x may also be [B,Cin,T], out then [B,Cout,To]) */
  void (*conv1d) (OviBackend *be, OviTensor *out, const OviTensor *x,
                  const OviTensor *w, const OviTensor *bias, int stride,
                  int pad_left, int pad_right, int dilation, int groups);
  /* out[Cout,To] from x[Cin,T], w[Cin,Cout/groups,K] (PyTorch ConvTranspose1d),
   * To = (T - 1) * stride - 2 * padding + K */
  void (*conv_transpose1d) (OviBackend *be, OviTensor *out, const OviTensor *x,
                            const OviTensor *w, const OviTensor *bias,
                            int stride, int padding, int groups);
  /* out[Cout,To,Ho,Wo] from x[Cin,T,H,W], w[Cout,Cin,kt,kh,kw], zero padding
   * pad = {t_front, t_back, h_top, h_bottom, w_left, w_right}. A causal conv
   * is the caller prepending its cached frames and passing t_front = 0. */
  void (*conv3d) (OviBackend *be, OviTensor *out, const OviTensor *x,
                  const OviTensor *w, const OviTensor *bias,
                  const int stride[3], const int pad[6]);

  /* pad the last n dims of x: pads[2*i], pads[2*i+1] before/after dim
   * (ndim - n + i) */
  void (*pad) (OviBackend *be, OviTensor *out, const OviTensor *x, int n,
               const int *pads, OviPadMode mode);
  /* nearest-exact upsampling of the last n dims by integer factors */
  void (*upsample_nearest) (OviBackend *be, OviTensor *out, const OviTensor *x,
                            int n, const int *factors);

  /* out[N,D] = table[ids[n]] (ids: host array of N int64) */
  void (*embedding) (OviBackend *be, OviTensor *out, const OviTensor *table,
                     const int64_t *ids, int64_t n_ids);

  /* streaming weights (ovi-backend.h); the wrappers check the arguments */
  OviStorage *(*new_pinned_storage) (OviBackend *be, gsize size,
                                     GError **error);
  /* n bytes from host memory `src` to this backend's memory `dst` */
  void (*copy_async) (OviBackend *be, OviBackendQueue queue, void *dst,
                      const void *src, gsize n);
  OviEvent *(*event_new) (OviBackend *be, GError **error);
  void (*event_free) (OviBackend *be, OviEvent *event);
  void (*event_record) (OviBackend *be, OviEvent *event, OviBackendQueue queue);
  void (*queue_wait) (OviBackend *be, OviBackendQueue queue, OviEvent *event);

  /* weights in place (ovi_backend_upload_weight): a tensor of this backend
   * whose elements are host tensor `t`'s own bytes (the weight file's
   * read-only mapping or one host allocation), addressed by the device
   * where they lie; it keeps `t`'s storage alive. NULL with `error` set
   * (the reason, for one log line) when the device cannot address them;
   * the caller then copies. `t` has no scale (the caller places it). NULL
   * entry: never in place (a discrete backend copies). */
  OviTensor *(*host_view) (OviBackend *be, OviTensor *t, GError **error);
};

struct _OviBackend {
  const OviBackendOps *ops;
  OviDevice device;
  OviDType act_dtype; /* dtype of activations this backend computes in */
  int n_threads;
  GError *error; /* first failure since the last sync */
  /* ovi_backend_set_weights_in_place; the first refusal of host_view is
   * logged once (fallback_said) */
  gboolean weights_in_place, fallback_said;
  gpointer priv;
};

/* the start of an op's checked entry: after a failure the backend does
 * nothing until ovi_backend_sync() reports it (the first error wins) */
#define OVI_BACKEND_BEGIN_OP(be)                                               \
  G_STMT_START                                                                 \
  {                                                                            \
    g_return_if_fail ((be) != NULL && (be)->ops != NULL);                      \
    if ((be)->error != NULL)                                                   \
      return;                                                                  \
  }                                                                            \
  G_STMT_END

G_END_DECLS
