/* SPDX-License-Identifier: LGPL-2.1-or-later */
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
 *  - OviBackend is opaque here; backends implement it through
 *    ovi-backend-impl.h.
 */
#pragma once

#include <gio/gio.h>

#include "ovi-tensor.h"
#include "ovi-error.h"

G_BEGIN_DECLS

typedef struct _OviBackend OviBackend;

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

/* Backends */
OviBackend *ovi_backend_new_cpu (int n_threads); /* n_threads <= 0: all cores */
OviBackend *ovi_backend_new_by_name (
    const char *name, int device_index,
    GError **error); /* "cpu" or "cuda" (loads the module) */
void ovi_backend_free (OviBackend *be);
gboolean ovi_backend_sync (OviBackend *be, GError **error);
/* record a failure (first one wins) in the sticky error that the next
 * ovi_backend_sync() reports; backends call this from their ops, model code
 * when a buffer it needs cannot be made */
void ovi_backend_set_error (OviBackend *be, GQuark domain, int code,
                            const char *format, ...) G_GNUC_PRINTF (4, 5);
/* "cpu", "cuda", "cuda-fp32" */
const char *ovi_backend_get_name (const OviBackend *be);
/* where this backend's tensors live */
OviDevice ovi_backend_get_device (const OviBackend *be);
/* the dtype activations are computed in */
OviDType ovi_backend_get_act_dtype (const OviBackend *be);
int ovi_backend_get_n_threads (const OviBackend *be);
/* raw device memory of this backend (e.g. for a caller's own arena) */
OviStorage *ovi_backend_new_storage (OviBackend *be, gsize size,
                                     GError **error);

OviTensor *ovi_backend_new_tensor (OviBackend *be, OviDType dtype, int ndim,
                                   const int64_t *shape);
/* a contiguous act_dtype tensor of the given shape on this backend */
OviTensor *ovi_backend_new_act (OviBackend *be, int ndim, const int64_t *shape);
/* ovi_backend_new_act of a [rows, cols] matrix */
OviTensor *ovi_backend_new_act_2d (OviBackend *be, int64_t rows, int64_t cols);
/* the tensor on this backend's device (same tensor, ref'd, if already there) */
OviTensor *ovi_backend_upload (OviBackend *be, OviTensor *t);
/* as ovi_backend_upload_weight, but an unscaled F32/F16/BF16 tensor of a
 * wider float dtype than the activations' arrives converted to the
 * activation dtype: once, when placed, into one device allocation, instead
 * of in every op that reads it (the VAE's F32 conv weights on a bf16
 * backend). Narrower and quantised tensors stay as they are (the CPU
 * backend's F32 never widens a bf16 file). */
OviTensor *ovi_backend_upload_act (OviBackend *be, OviTensor *t);
/* Weights used where they lie (unified-memory devices: integrated, or
 * reading pageable host memory through the host page tables). With
 * `in_place` set (the stage loader sets it from the plan,
 * OviPlacementPlan.weights_in_place), ovi_backend_upload_weight hands the
 * device a host weight's own bytes — the file's read-only mapping or our
 * one host allocation — instead of a copy. Default: off. */
void ovi_backend_set_weights_in_place (OviBackend *be, gboolean in_place);
gboolean ovi_backend_get_weights_in_place (const OviBackend *be);
/* A weight on this backend: with weights in place on and a host tensor
 * the device can address as it is, a view of its bytes (no copy; the
 * storage stays alive while the result does; a scale is placed the same
 * way), else ovi_backend_upload (a copy; a refusal of the device, e.g. a
 * registration the driver refuses, is said once in the log). `in_place`
 * (nullable) says whether no bytes were copied. */
OviTensor *ovi_backend_upload_weight (OviBackend *be, OviTensor *t,
                                      gboolean *in_place);
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

/* ---- streaming weights: pinned host memory, a copy queue, events ----
 * A backend runs its ops in order on a compute queue; copies from host
 * memory into its memory may run on a second, copy queue meanwhile. Events
 * order the two without the host waiting: record an event after work on
 * one queue, make the other queue wait for it. On the CPU backend a copy is
 * done when ovi_op_copy_async returns and events order nothing that is not
 * already in order. */
typedef enum {
  OVI_BACKEND_QUEUE_COMPUTE,
  OVI_BACKEND_QUEUE_COPY,
} OviBackendQueue;

typedef struct _OviEvent OviEvent;

/* `size` bytes of host memory the backend's device copies from at full
 * speed (page-locked on a GPU). *pinned (may be NULL) says whether it is:
 * FALSE when pinning failed, and the storage is ordinary host memory. */
OviStorage *ovi_backend_new_pinned (OviBackend *be, gsize size,
                                    gboolean *pinned, GError **error);
/* the raw bytes of `src` (host, contiguous) into `dst` (this backend's
 * memory, contiguous, the same byte size; dtypes and shapes may differ),
 * enqueued on `queue`. `src` may be pageable (a weight file's mapping): a
 * GPU backend then copies it through pinned staging buffers of its own
 * (OVI_STREAM_STAGING_BYTES in all), in order on `queue`, without the
 * calling thread waiting: it may read `src` after the call returns, so
 * `src` must stay valid until the copy is done (an event recorded after it
 * completed, or the host synced with a queue that waited for that event). */
#define OVI_STREAM_STAGING_BYTES ((gsize) 64 << 20)
void ovi_op_copy_async (OviBackend *be, OviBackendQueue queue, OviTensor *dst,
                        const OviTensor *src);
OviEvent *ovi_backend_event_new (OviBackend *be, GError **error);
void ovi_backend_event_free (OviBackend *be, OviEvent *event);
/* `event` completes when the work enqueued on `queue` so far has */
void ovi_op_event_record (OviBackend *be, OviEvent *event,
                          OviBackendQueue queue);
/* work enqueued on `queue` from now on starts after `event` completes */
void ovi_op_queue_wait (OviBackend *be, OviBackendQueue queue, OviEvent *event);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviBackend, ovi_backend_free)

G_END_DECLS
