/* gst-ovi: the op table every model is written against.
 *
 * A backend (cpu, always built; cuda, a loadable module) fills an
 * OviBackendOps table. Model code calls the ovi_op_*() wrappers below and
 * never knows which backend runs it: no #ifdef in model code.
 *
 * Conventions shared by every op:
 *  - `out` is allocated by the caller (ovi_backend_new_tensor) so memory can
 *    be planned; it is contiguous and in the backend's activation dtype.
 *  - Inputs are contiguous unless an op says it takes strided rows. A view
 *    with stride 0 broadcasts (e.g. one shift row for every token).
 *  - Weight operands (matmul `w`, conv `w`, norm gains, embedding tables) may
 *    be F32, F16, BF16, F8_E4M3 or I8 (with tensor->scale); the backend
 *    converts on the fly and accumulates in fp32.
 *  - Ops return nothing. A failure (out of memory, bad shape) is recorded in
 *    the backend's sticky error and reported by ovi_backend_sync().
 *  - "Rows" of a tensor: all dims but the last flattened, the last dim is
 *    the row. Matmul, norms, softmax and modulate work on rows.
 *  - The wrappers check ranks, shapes, dtypes and devices; a mismatch is
 *    recorded as the sticky error (OVI_ERROR_SHAPE / _INVALID_ARGUMENT,
 *    naming the op and the shapes) and the op is skipped. While an error is
 *    pending every op is skipped; ovi_backend_sync() reports and clears it.
 *  - Operands that "broadcast" follow numpy rules against the output:
 *    right-aligned, each dim equal or 1 (or any dim with stride 0).
 *  - Activations (ovi_cpu_activate on the CPU backend):
 *    GELU_TANH 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))),
 *    GELU_ERF 0.5x(1 + erf(x/sqrt2)), SILU x/(1 + exp(-x)).
 *  - The CPU backend: act_dtype F32, fp32 accumulation in a fixed order
 *    (results do not depend on n_threads), statistics in double. Its thread
 *    count is the constructor's, or $OVI_NUM_THREADS, or all cores.
 *  - A backend is used by one thread at a time (its ops share scratch).
 */
#pragma once

#include <gio/gio.h>

#include "ovi-tensor.h"
#include "ovi-error.h"

G_BEGIN_DECLS

typedef struct _OviBackend OviBackend;
typedef struct _OviBackendOps OviBackendOps;

typedef enum {
  OVI_ACT_NONE,
  OVI_ACT_GELU_TANH,
  OVI_ACT_GELU_ERF,
  OVI_ACT_SILU,
  OVI_ACT_TANH,
  OVI_ACT_RELU,
} OviActivation;

typedef enum {
  OVI_BINARY_ADD,
  OVI_BINARY_SUB,
  OVI_BINARY_MUL,
  OVI_BINARY_DIV,
} OviBinaryOp;

typedef enum {
  /* Wan VAE RMS_norm: x / max(|x|, 1e-12) * sqrt(C) * gamma */
  OVI_CHANNEL_NORM_L2_SQRT_C,
  /* EDM2 / MMAudio normalize: x / (1e-4 + |x| / sqrt(C)) (gamma unused) */
  OVI_CHANNEL_NORM_MAGNITUDE,
} OviChannelNorm;

typedef enum {
  OVI_PAD_ZERO,
  OVI_PAD_REPLICATE,
} OviPadMode;

struct _OviBackendOps {
  const char *name;

  /* memory */
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
};

struct _OviBackend {
  const OviBackendOps *ops;
  OviDevice device;
  OviDType act_dtype; /* dtype of activations this backend computes in */
  int n_threads;
  GError *error; /* first failure since the last sync */
  gpointer priv;
};

/* Backends */
OviBackend *ovi_backend_new_cpu (int n_threads); /* n_threads <= 0: all cores */
OviBackend *ovi_backend_new_by_name (
    const char *name, int device_index,
    GError **error); /* "cpu" or "cuda" (loads the module) */
void ovi_backend_free (OviBackend *be);
gboolean ovi_backend_sync (OviBackend *be, GError **error);
/* record a failure (first one wins); backends call this from their ops */
void ovi_backend_set_error (OviBackend *be, GQuark domain, int code,
                            const char *format, ...) G_GNUC_PRINTF (4, 5);

OviTensor *ovi_backend_new_tensor (OviBackend *be, OviDType dtype, int ndim,
                                   const int64_t *shape);
/* a contiguous act_dtype tensor of the given shape on this backend */
OviTensor *ovi_backend_new_act (OviBackend *be, int ndim, const int64_t *shape);
/* the tensor on this backend's device (same tensor, ref'd, if already there) */
OviTensor *ovi_backend_upload (OviBackend *be, OviTensor *t);
/* a host f32 contiguous copy (syncs) */
OviTensor *ovi_backend_download_f32 (OviBackend *be, const OviTensor *t,
                                     GError **error);

/* The wrappers model code calls (checked dispatch to be->ops). */
void ovi_op_copy (OviBackend *be, OviTensor *dst, const OviTensor *src);
void ovi_op_fill (OviBackend *be, OviTensor *dst, float value);
void ovi_op_matmul (OviBackend *be, OviTensor *out, const OviTensor *x,
                    const OviTensor *w, const OviTensor *bias,
                    OviActivation act);
void ovi_op_attention (OviBackend *be, OviTensor *out, const OviTensor *q,
                       const OviTensor *k, const OviTensor *v,
                       const OviTensor *bias, const int64_t *kv_lens,
                       float scale);
void ovi_op_softmax (OviBackend *be, OviTensor *out, const OviTensor *x);
void ovi_op_rms_norm (OviBackend *be, OviTensor *out, const OviTensor *x,
                      const OviTensor *weight, float eps);
void ovi_op_layer_norm (OviBackend *be, OviTensor *out, const OviTensor *x,
                        const OviTensor *weight, const OviTensor *bias,
                        float eps);
void ovi_op_channel_norm (OviBackend *be, OviTensor *out, const OviTensor *x,
                          const OviTensor *gamma, OviChannelNorm kind);
void ovi_op_modulate (OviBackend *be, OviTensor *out, const OviTensor *x,
                      const OviTensor *shift, const OviTensor *scale,
                      float eps);
void ovi_op_gate_add (OviBackend *be, OviTensor *x, const OviTensor *y,
                      const OviTensor *gate);
void ovi_op_rope (OviBackend *be, OviTensor *out, const OviTensor *x,
                  const OviTensor *cos, const OviTensor *sin);
void ovi_op_unary (OviBackend *be, OviTensor *out, const OviTensor *x,
                   OviActivation act, float alpha);
void ovi_op_binary (OviBackend *be, OviTensor *out, const OviTensor *a,
                    const OviTensor *b, OviBinaryOp op);
void ovi_op_axpby (OviBackend *be, OviTensor *out, float alpha,
                   const OviTensor *a, float beta, const OviTensor *b);
void ovi_op_clamp (OviBackend *be, OviTensor *out, const OviTensor *x, float lo,
                   float hi);
void ovi_op_snake_beta (OviBackend *be, OviTensor *out, const OviTensor *x,
                        const OviTensor *alpha, const OviTensor *beta,
                        gboolean logscale);
void ovi_op_mean_last (OviBackend *be, OviTensor *out, const OviTensor *x);
void ovi_op_conv1d (OviBackend *be, OviTensor *out, const OviTensor *x,
                    const OviTensor *w, const OviTensor *bias, int stride,
                    int pad_left, int pad_right, int dilation, int groups);
void ovi_op_conv_transpose1d (OviBackend *be, OviTensor *out,
                              const OviTensor *x, const OviTensor *w,
                              const OviTensor *bias, int stride, int padding,
                              int groups);
void ovi_op_conv3d (OviBackend *be, OviTensor *out, const OviTensor *x,
                    const OviTensor *w, const OviTensor *bias,
                    const int stride[3], const int pad[6]);
void ovi_op_pad (OviBackend *be, OviTensor *out, const OviTensor *x, int n,
                 const int *pads, OviPadMode mode);
void ovi_op_upsample_nearest (OviBackend *be, OviTensor *out,
                              const OviTensor *x, int n, const int *factors);
void ovi_op_embedding (OviBackend *be, OviTensor *out, const OviTensor *table,
                       const int64_t *ids, int64_t n_ids);

/* Composite ops written once on top of the table (views + copy). */
/* x[C,T,H,W] -> [C*r*r, T, H/r, W/r] with channel index c*r*r + j*r + i
 * (i: row sub-offset, j: column sub-offset), as the Wan2.2 VAE patchify
 * rearrange "c f (h q) (w r) -> (c r q) f h w" (channel c*4 + r*2 + q).
 * x may also be [C,H,W]. */
void ovi_op_pixel_unshuffle (OviBackend *be, OviTensor *out, const OviTensor *x,
                             int r);
/* the inverse of ovi_op_pixel_unshuffle */
void ovi_op_pixel_shuffle (OviBackend *be, OviTensor *out, const OviTensor *x,
                           int r);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviBackend, ovi_backend_free)

G_END_DECLS
