/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the CUDA backend, a module (libovi-cuda.so) that libovi loads at
 * run time (ovi_backend_new_by_name "cuda" / "cuda-fp32").
 *
 * - Activations in BF16 ("cuda") or F32 ("cuda-fp32", the parity mode: every
 *   op in fp32, cuBLASLt with CUBLAS_COMPUTE_32F and no TF32, no cuDNN).
 *   Norms, softmax, modulation, attention and all reductions run in fp32 in
 *   both.
 * - One CUDA stream per backend; every op is enqueued on it, nothing waits
 *   until ovi_backend_sync() (or a download). Tensors come from the
 *   backend's own stream-ordered pool, which keeps what it reserved; per-op
 *   scratch is carved from one arena reused by every op (grown on the first
 *   step), so a step allocates nothing after the first. New storage is not
 *   cleared.
 * - Every CUDA / cuBLASLt / cuDNN call is checked; a failure names the op
 *   and the call in the backend's error.
 * - GEMMs (matmul, conv as im2col + GEMM, transposed conv as GEMM + gather)
 *   through cuBLASLt with the bias / GELU(tanh) / ReLU epilogues fused;
 *   descriptors and algorithm cached per shape. F8_E4M3 weights with
 *   per-channel scales on sm_90+ (bf16): fp8 tensor-core GEMM, activations
 *   quantised per row by a kernel (ovi-ck-quant.cu), both scales applied by
 *   cuBLASLt. Other weights in F32, F16, BF16, F8_E4M3 or I8 (with scale) are
 *   converted to the activation dtype in scratch on the fly when they are not
 *   already in it.
 * - Attention (bf16): cuDNN's fused SDPA (ovi-cuda-cudnn.c); head dims above
 *   256 (the VAE's single head): cuBLASLt QK^T, row softmax, PV; otherwise,
 *   and in the fp32 parity mode, kernels/ovi-ck-attention.cu.
 * - conv3d (bf16): one cuDNN graph with the bias fused, else im2col.
 * - ovi-cuda-profile.c: per-op-kind device time for `ovi bench --profile`.
 * - ovi-cuda-in-place.c: weights read where they lie on unified-memory
 *   devices (the op table's host_view).
 */
#include "ovi-cuda-private.h"
#include "ovi-cuda-stream.h"

#include <gmodule.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* descriptors carry an OviDType as the kernels' dtype code */
G_STATIC_ASSERT ((int) OVI_DTYPE_F32 == OVI_CK_F32);
G_STATIC_ASSERT ((int) OVI_DTYPE_F16 == OVI_CK_F16);
G_STATIC_ASSERT ((int) OVI_DTYPE_BF16 == OVI_CK_BF16);
G_STATIC_ASSERT ((int) OVI_DTYPE_F8_E4M3 == OVI_CK_F8_E4M3);
G_STATIC_ASSERT ((int) OVI_DTYPE_I8 == OVI_CK_I8);
G_STATIC_ASSERT ((int) OVI_DTYPE_F64 == OVI_CK_F64);
G_STATIC_ASSERT ((int) OVI_DTYPE_I64 == OVI_CK_I64);
G_STATIC_ASSERT ((int) OVI_DTYPE_I32 == OVI_CK_I32);
G_STATIC_ASSERT ((int) OVI_DTYPE_U8 == OVI_CK_U8);
G_STATIC_ASSERT ((int) OVI_DTYPE_BOOL == OVI_CK_BOOL);

#define WORKSPACE_BYTES ((gsize) 32 << 20)
/* im2col buffers are split into chunks of output positions of at most this */
#define COLS_BYTES ((gsize) 256 << 20)

typedef struct {
  int32_t ta, tb, epi, dt, d_f32, fp8, scale_a_mode, scale_b_mode, batch;
  uint32_t aa, ab, ad, abias;
  int64_t m, n, k, lda, ldb, ldd, sA, sB, sD;
} AlgoKey;

static guint
algo_key_hash (gconstpointer key)
{
  return ovi_cuda_hash_bytes (key, sizeof (AlgoKey));
}

static gboolean
algo_key_equal (gconstpointer a, gconstpointer b)
{
  return memcmp (a, b, sizeof (AlgoKey)) == 0;
}

/* exported entry points (resolved by ovi-backend.c and tools) */
G_MODULE_EXPORT OviBackend *ovi_cuda_backend_new (int device, GError **error);
G_MODULE_EXPORT OviBackend *
ovi_cuda_backend_new_with_dtype (int device, int act_dtype, GError **error);
G_MODULE_EXPORT gboolean ovi_cuda_backend_memory (OviBackend *be,
                                                  guint64 *used_high,
                                                  guint64 *reserved_high,
                                                  gboolean reset);
G_MODULE_EXPORT const char *g_module_check_init (GModule *module);

#define priv_of ovi_cuda_priv

/* teardown: nothing can be reported any more, failures are only logged */
void
ovi_cuda_warn_if_failed (const char *call, cudaError_t e)
{
  if (e != cudaSuccess)
    g_warning ("cuda backend teardown: %s failed: %s", call,
               cudaGetErrorString (e));
}

static void
stage_free (CudaPriv *p)
{
  for (int i = 0; i < OVI_CUDA_STAGE_SLOTS; i++)
    if (p->stage_done[i])
      ovi_cuda_warn_if_failed ("cudaEventDestroy", cudaEventDestroy (p->stage_done[i]));
  if (p->stage)
    ovi_cuda_warn_if_failed ("cudaFreeHost", cudaFreeHost (p->stage));
}

static void
priv_unref (CudaPriv *p)
{
  if (!g_atomic_int_dec_and_test (&p->ref_count))
    return;
  ovi_cuda_warn_if_failed ("cudaSetDevice", cudaSetDevice (p->device));
  if (p->stream)
    ovi_cuda_warn_if_failed ("cudaStreamSynchronize", cudaStreamSynchronize (p->stream));
  g_clear_pointer (&p->profile, ovi_cuda_profile_free);
  g_clear_pointer (&p->dnn, ovi_cudnn_free);
  if (p->arena)
    ovi_cuda_warn_if_failed ("cudaFreeAsync", cudaFreeAsync (p->arena, p->stream));
  stage_free (p);
  if (p->workspace)
    ovi_cuda_warn_if_failed ("cudaFree", cudaFree (p->workspace));
  if (p->lt)
    cublasLtDestroy (p->lt);
  g_clear_pointer (&p->algos, g_hash_table_destroy);
  g_clear_pointer (&p->no_algo, g_hash_table_destroy);
  g_mutex_clear (&p->algos_lock);
  ovi_cuda_streaming_free (p->streaming);
  if (p->stream)
    ovi_cuda_warn_if_failed ("cudaStreamDestroy", cudaStreamDestroy (p->stream));
  if (p->pool)
    ovi_cuda_warn_if_failed ("cudaMemPoolDestroy", cudaMemPoolDestroy (p->pool));
  g_free (p);
}

void
ovi_cuda_priv_unref (CudaPriv *p)
{
  priv_unref (p);
}

/* ---- errors ---- */

char *
ovi_cuda_call_name (const char *expr)
{
  return g_strndup (expr, strcspn (expr, " ("));
}

gboolean
ovi_cuda_ok (OviBackend *be, const char *op, const char *call, cudaError_t e)
{
  if (e == cudaSuccess)
    return TRUE;
  g_autofree char *fn = ovi_cuda_call_name (call);
  /* clear the error state the failure left, so it is reported once */
  cudaGetLastError ();
  ovi_backend_set_error (be, OVI_ERROR, OVI_ERROR_BACKEND,
                         "%s: %s failed: %s (%s)", op, fn, cudaGetErrorName (e),
                         cudaGetErrorString (e));
  return FALSE;
}

gboolean
ovi_cuda_lt_ok (OviBackend *be, const char *op, const char *call,
                cublasStatus_t s)
{
  if (s == CUBLAS_STATUS_SUCCESS)
    return TRUE;
  g_autofree char *fn = ovi_cuda_call_name (call);
  ovi_backend_set_error (be, OVI_ERROR, OVI_ERROR_BACKEND,
                         "%s: %s failed: %s (%s)", op, fn,
                         cublasLtGetStatusName (s), cublasLtGetStatusString (s));
  return FALSE;
}

gboolean
ovi_cuda_use_device (OviBackend *be, const char *op)
{
  return CUDA_OK (be, op, cudaSetDevice (priv_of (be)->device));
}

/* ---- memory ---- */

typedef struct {
  CudaPriv *priv;
  void *ptr;
} DevBlock;

static void
release_block (gpointer data)
{
  DevBlock *b = data;

  ovi_cuda_warn_if_failed ("cudaSetDevice", cudaSetDevice (b->priv->device));
  ovi_cuda_warn_if_failed ("cudaFreeAsync", cudaFreeAsync (b->ptr, b->priv->stream));
  priv_unref (b->priv);
  g_free (b);
}

static gsize
round_size (gsize size)
{
  return MAX ((size + 255) & ~(gsize) 255, 256);
}

static OviStorage *
cuda_new_storage (OviBackend *be, gsize size, GError **error)
{
  CudaPriv *p = priv_of (be);
  DevBlock *b;
  void *ptr = NULL;
  cudaError_t e;

  e = cudaSetDevice (p->device);
  if (e == cudaSuccess)
    e = cudaMallocFromPoolAsync (&ptr, round_size (size), p->pool, p->stream);
  if (e != cudaSuccess) {
    size_t free_b = 0, total_b = 0;
    cudaGetLastError ();
    if (cudaMemGetInfo (&free_b, &total_b) != cudaSuccess)
      cudaGetLastError ();
    g_set_error (error, OVI_ERROR,
                 e == cudaErrorMemoryAllocation ? OVI_ERROR_OUT_OF_MEMORY
                                                : OVI_ERROR_BACKEND,
                 "cudaMallocFromPoolAsync of %" G_GSIZE_FORMAT
                 " bytes on device %d failed (%s; %zu of %zu bytes free)",
                 size, p->device, cudaGetErrorString (e), free_b, total_b);
    return NULL;
  }
  /* no memset: model code writes (or fills) every element it reads; the
   * poisoned-host-memory run of the parity and tiny suites checks that */
  b = g_new0 (DevBlock, 1);
  b->priv = p;
  b->ptr = ptr;
  g_atomic_int_inc (&p->ref_count);
  return ovi_storage_new_wrapped (ptr, size, be->device, release_block, b);
}

/* Per-op scratch, carved from the backend's arena: every op runs on the
 * one stream, so the next op's kernels start only after this op's are done
 * with it, and the arena is reused from offset 0 by every op. A request the
 * arena cannot hold gets its own pool block (freed stream-ordered when the
 * op ends) and the arena grows to the op's whole need then, so after the
 * first step a step allocates nothing. */
typedef struct {
  OviBackend *be;
  const char *op;
  gsize used; /* bytes of the arena this op has taken */
  gsize need; /* bytes this op would have taken from an arena */
  void *ptr[16];
  int n;
} Scratch;

static void *
scratch_alloc (Scratch *s, gsize size)
{
  CudaPriv *p = priv_of (s->be);
  gsize rounded = round_size (size);
  void *ptr = NULL;

  s->need += rounded;
  if (s->used + rounded <= p->arena_size) {
    ptr = (char *) p->arena + s->used;
    s->used += rounded;
    return ptr;
  }
  if (s->n == G_N_ELEMENTS (s->ptr)) {
    ovi_backend_set_error (s->be, OVI_ERROR, OVI_ERROR_BACKEND,
                           "%s: too many scratch buffers", s->op);
    return NULL;
  }
  if (!CUDA_OK (s->be, s->op,
                cudaMallocFromPoolAsync (&ptr, rounded, p->pool, p->stream)))
    return NULL;
  s->ptr[s->n++] = ptr;
  return ptr;
}

/* the arena at least `need` bytes (stream-ordered: kernels enqueued on the
 * old one finish before it is freed) */
static void
arena_grow (OviBackend *be, const char *op, gsize need)
{
  CudaPriv *p = priv_of (be);

  if (need <= p->arena_size)
    return;
  if (p->arena && !CUDA_OK (be, op, cudaFreeAsync (p->arena, p->stream)))
    return;
  p->arena = NULL;
  p->arena_size = 0;
  if (CUDA_OK (be, op,
               cudaMallocFromPoolAsync (&p->arena, need, p->pool, p->stream)))
    p->arena_size = need;
}

static void
scratch_free (Scratch *s)
{
  CudaPriv *p = priv_of (s->be);

  for (int i = 0; i < s->n; i++)
    CUDA_OK (s->be, s->op, cudaFreeAsync (s->ptr[i], p->stream));
  if (s->n)
    arena_grow (s->be, s->op, s->need);
  s->n = 0;
  s->used = s->need = 0;
}

/* ---- small uploads ---- */

/* A small host -> device copy (time embeddings, key lengths, small host
 * operands) through a pinned slot of a ring, so it is truly asynchronous: a
 * copy from pageable memory first waits for the stream, a host sync inside
 * the step. A slot is reused after its previous copy finished (an event),
 * which it has unless the GPU is OVI_CUDA_STAGE_SLOTS uploads behind. */
static gboolean
upload_small (OviBackend *be, const char *op, void *dst, const void *src,
              gsize n)
{
  CudaPriv *p = priv_of (be);
  int slot = p->stage_next;
  char *buf;

  if (p->stage == NULL) {
    if (!CUDA_OK (be, op,
                  cudaMallocHost (&p->stage, OVI_CUDA_STAGE_SLOTS
                                                 * OVI_CUDA_STAGE_BYTES)))
      return FALSE;
    for (int i = 0; i < OVI_CUDA_STAGE_SLOTS; i++)
      if (!CUDA_OK (be, op,
                    cudaEventCreateWithFlags (&p->stage_done[i],
                                              cudaEventDisableTiming)))
        return FALSE;
  }
  p->stage_next = (slot + 1) % OVI_CUDA_STAGE_SLOTS;
  if (!CUDA_OK (be, op, cudaEventSynchronize (p->stage_done[slot])))
    return FALSE;
  buf = (char *) p->stage + (gsize) slot * OVI_CUDA_STAGE_BYTES;
  memcpy (buf, src, n);
  return CUDA_OK (be, op,
                  cudaMemcpyAsync (dst, buf, n, cudaMemcpyHostToDevice,
                                   p->stream))
         && CUDA_OK (be, op, cudaEventRecord (p->stage_done[slot], p->stream));
}

gboolean
ovi_cuda_upload (OviBackend *be, const char *op, void *dst, const void *src,
                 gsize n)
{
  if (n <= OVI_CUDA_STAGE_BYTES)
    return upload_small (be, op, dst, src, n);
  return CUDA_OK (be, op,
                  cudaMemcpyAsync (dst, src, n, cudaMemcpyHostToDevice,
                                   priv_of (be)->stream));
}

/* ---- descriptors ---- */

static gboolean
is_dev (OviBackend *be, const OviTensor *t)
{
  return t->storage->device.type == OVI_DEVICE_CUDA
         && t->storage->device.index == be->device.index;
}

/* t read against a target shape (numpy broadcasting, right-aligned) */
static OviCkDesc
desc_bcast (const OviTensor *t, const void *data, int nd, const int64_t *shape)
{
  OviCkDesc d;

  memset (&d, 0, sizeof (d));
  d.data = data;
  d.dtype = t->dtype;
  d.nd = nd;
  for (int i = 0; i < nd; i++) {
    int ti = i - (nd - t->ndim);
    d.shape[i] = shape[i];
    d.stride[i] = (ti >= 0 && t->shape[ti] != 1) ? t->stride[ti] : 0;
  }
  return d;
}

static OviCkDesc
desc_of (const OviTensor *t)
{
  return desc_bcast (t, ovi_tensor_data (t), t->ndim, t->shape);
}

static OviCkDesc
desc_none (void)
{
  OviCkDesc d;

  memset (&d, 0, sizeof (d));
  return d;
}

/* a contiguous array of dtype dt and the given shape */
static OviCkDesc
desc_contig (const void *data, OviDType dt, int nd, const int64_t *shape)
{
  OviCkDesc d;

  memset (&d, 0, sizeof (d));
  d.data = data;
  d.dtype = dt;
  d.nd = nd;
  memcpy (d.shape, shape, sizeof (int64_t) * nd);
  ovi_contiguous_strides (nd, shape, d.stride);
  return d;
}

static int64_t
rows_of (const OviTensor *t)
{
  int64_t r = 1;

  for (int i = 0; i < t->ndim - 1; i++)
    r *= t->shape[i];
  return r;
}

static int64_t
last_of (const OviTensor *t)
{
  return t->ndim ? t->shape[t->ndim - 1] : 1;
}

/* A host tensor's elements (the span its strides reach) staged on the
 * device; *data receives the device address of element [0, ...]. */
static gboolean
stage_host (Scratch *s, const OviTensor *t, const void **data)
{
  gsize es = ovi_dtype_size (t->dtype);
  int64_t lo = 0, hi = 0;
  char *dev;

  for (int i = 0; i < t->ndim; i++) {
    int64_t ext = (t->shape[i] - 1) * t->stride[i];
    if (t->shape[i] == 0) {
      *data = NULL;
      return TRUE;
    }
    if (ext < 0)
      lo += ext;
    else
      hi += ext;
  }
  dev = scratch_alloc (s, (gsize) (hi - lo + 1) * es);
  if (dev == NULL
      || !ovi_cuda_upload (s->be, s->op, dev,
                  (const char *) ovi_tensor_data (t) + lo * (int64_t) es,
                  (gsize) (hi - lo + 1) * es))
    return FALSE;
  *data = dev - lo * (int64_t) es;
  return TRUE;
}

/* device address of t's element [0..], staging host tensors */
static gboolean
dev_data (Scratch *s, const OviTensor *t, const void **data)
{
  if (t->storage->device.type == OVI_DEVICE_CPU)
    return stage_host (s, t, data);
  if (!is_dev (s->be, t)) {
    ovi_backend_set_error (s->be, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                           "%s: tensor is on another device", s->op);
    return FALSE;
  }
  *data = ovi_tensor_data (t);
  return TRUE;
}

/* the scale of quantised tensor t, indexed by the linear index of a
 * contiguous target of t's shape (dim-0 index, or the element for rank <= 1,
 * as the CPU backend) */
static gboolean
scale_of (Scratch *s, const OviTensor *t, OviCkScale *sc)
{
  const OviTensor *st = t->scale;
  int64_t numel = ovi_tensor_numel (t);

  memset (sc, 0, sizeof (*sc));
  sc->div = 1;
  if (st == NULL)
    return TRUE;
  if (!dev_data (s, st, &sc->data))
    return FALSE;
  sc->dtype = st->dtype;
  sc->stride
      = (ovi_tensor_numel (st) == 1 || st->ndim == 0) ? 0 : st->stride[0];
  if (t->ndim >= 2 && t->shape[0] > 0)
    sc->div = MAX (numel / t->shape[0], 1);
  return TRUE;
}

static int
raw_size (OviDType dt)
{
  return (int) ovi_dtype_size (dt);
}

/* t as a contiguous device array of dtype `dt` (scale applied): t itself
 * when it already is one, else a scratch copy */
static const void *
as_contig (Scratch *s, const OviTensor *t, OviDType dt)
{
  CudaPriv *p = priv_of (s->be);
  OviCkScale ss, none = { NULL, 0, 0, 1 };
  const void *src;
  void *dst;
  int64_t n = ovi_tensor_numel (t);

  if (t->dtype == dt && t->scale == NULL && ovi_tensor_is_contiguous (t)
      && is_dev (s->be, t))
    return ovi_tensor_data (t);
  if (!dev_data (s, t, &src) || !scale_of (s, t, &ss))
    return NULL;
  dst = scratch_alloc (s, (gsize) MAX (n, 1) * ovi_dtype_size (dt));
  if (dst == NULL)
    return NULL;
  if (!CUDA_OK (
          s->be, s->op,
          ovi_ck_copy (p->stream, desc_contig (dst, dt, t->ndim, t->shape), n,
                       desc_bcast (t, src, t->ndim, t->shape), ss, none,
                       t->dtype == dt && t->scale == NULL ? raw_size (dt) : 0)))
    return NULL;
  return dst;
}

/* a device-readable descriptor of t against a target shape (staging host
 * tensors; a scaled tensor is dequantised to a contiguous f32 copy first) */
static gboolean
read_desc (Scratch *s, const OviTensor *t, int nd, const int64_t *shape,
           OviCkDesc *d)
{
  const void *data;

  if (t == NULL) {
    *d = desc_none ();
    return TRUE;
  }
  if (t->scale) {
    int64_t st[OVI_MAX_DIMS];
    data = as_contig (s, t, OVI_DTYPE_F32);
    if (data == NULL)
      return FALSE;
    ovi_contiguous_strides (t->ndim, t->shape, st);
    *d = desc_bcast (t, data, nd, shape);
    /* strides of the contiguous copy */
    for (int i = 0; i < nd; i++) {
      int ti = i - (nd - t->ndim);
      d->stride[i] = (ti >= 0 && t->shape[ti] != 1) ? st[ti] : 0;
    }
    d->dtype = OVI_DTYPE_F32;
    return TRUE;
  }
  if (!dev_data (s, t, &data))
    return FALSE;
  *d = desc_bcast (t, data, nd, shape);
  return TRUE;
}

/* ---- copy / fill / sync ---- */

/* contiguous elements `src` into the strided host tensor dst */
static void
scatter_host (OviTensor *dst, const char *src)
{
  gsize es = ovi_dtype_size (dst->dtype);
  int64_t n = ovi_tensor_numel (dst);
  char *base = ovi_tensor_data (dst);

  for (int64_t i = 0; i < n; i++) {
    int64_t rem = i, off = 0;
    for (int d = dst->ndim - 1; d >= 0; d--) {
      off += (rem % dst->shape[d]) * dst->stride[d];
      rem /= dst->shape[d];
    }
    memcpy (base + off * (int64_t) es, src + i * (int64_t) es, es);
  }
}

static void
cuda_copy (OviBackend *be, OviTensor *dst, const OviTensor *src)
{
  CudaPriv *p = priv_of (be);
  Scratch s = { be, "ovi_op_copy" };
  gboolean raw = src->dtype == dst->dtype
                 && ((src->scale == NULL) == (dst->scale == NULL));
  gboolean dst_host = dst->storage->device.type == OVI_DEVICE_CPU;
  int64_t n = ovi_tensor_numel (dst);
  gsize nbytes = (gsize) n * ovi_dtype_size (dst->dtype);
  OviCkScale ss = { NULL, 0, 0, 1 }, ds = { NULL, 0, 0, 1 };
  const void *sdata;
  void *out;

  if (n == 0)
    return;
  if (!ovi_cuda_use_device (be, s.op))
    goto out;
  /* plain transfers */
  if (raw && ovi_tensor_is_contiguous (src) && ovi_tensor_is_contiguous (dst)
      && !(src->storage->device.type == OVI_DEVICE_CPU && dst_host)) {
    enum cudaMemcpyKind kind
        = src->storage->device.type == OVI_DEVICE_CPU
              ? (dst_host ? cudaMemcpyHostToHost : cudaMemcpyHostToDevice)
              : (dst_host ? cudaMemcpyDeviceToHost : cudaMemcpyDeviceToDevice);
    if (kind == cudaMemcpyHostToDevice) {
      ovi_cuda_upload (be, s.op, ovi_tensor_data (dst), ovi_tensor_data (src),
                       nbytes);
      return;
    }
    /* a weight used in place is host memory under a device tensor
     * (ovi-cuda-in-place.c): the runtime tells the kinds from the
     * pointers (unified addressing) */
    if (CUDA_OK (be, s.op,
                 cudaMemcpyAsync (ovi_tensor_data (dst), ovi_tensor_data (src),
                                  nbytes, cudaMemcpyDefault, p->stream))
        && dst_host)
      CUDA_OK (be, s.op, cudaStreamSynchronize (p->stream));
    return;
  }
  /* the raw elements of src against dst's shape (same shape), with the
   * scales applied per dst dim-0 index as the CPU backend does */
  if (!dev_data (&s, src, &sdata))
    goto out;
  if (!raw && (!scale_of (&s, src, &ss) || !scale_of (&s, dst, &ds)))
    goto out;
  out = dst_host ? scratch_alloc (&s, nbytes) : ovi_tensor_data (dst);
  if (out == NULL)
    goto out;
  if (!CUDA_OK (be, s.op,
                ovi_ck_copy (
                    p->stream,
                    dst_host
                        ? desc_contig (out, dst->dtype, dst->ndim, dst->shape)
                        : desc_bcast (dst, out, dst->ndim, dst->shape),
                    n, desc_bcast (src, sdata, dst->ndim, dst->shape), ss, ds,
                    raw ? raw_size (dst->dtype) : 0)))
    goto out;
  if (dst_host) {
    gboolean contig = ovi_tensor_is_contiguous (dst);
    g_autofree char *tmp = contig ? NULL : g_try_malloc (nbytes);
    if (!contig && tmp == NULL) {
      ovi_backend_set_error (be, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                             "%s: out of host memory", s.op);
      goto out;
    }
    if (CUDA_OK (be, s.op,
                 cudaMemcpyAsync (contig ? ovi_tensor_data (dst) : tmp, out,
                                  nbytes, cudaMemcpyDeviceToHost, p->stream))
        && CUDA_OK (be, s.op, cudaStreamSynchronize (p->stream)) && !contig)
      scatter_host (dst, tmp);
  }
out:
  scratch_free (&s);
}

static void
cuda_fill (OviBackend *be, OviTensor *dst, float value)
{
  CudaPriv *p = priv_of (be);
  Scratch s = { be, "ovi_op_fill" };
  OviCkScale ds;

  if (scale_of (&s, dst, &ds))
    CUDA_OK (be, s.op,
             ovi_ck_fill (p->stream, ovi_tensor_data (dst), dst->dtype,
                          ovi_tensor_numel (dst), value, ds));
  scratch_free (&s);
}

static gboolean
cuda_sync (OviBackend *be, GError **error)
{
  CudaPriv *p = priv_of (be);
  const char *call = "cudaSetDevice";
  cudaError_t e;

  /* launch errors were caught by each op (its launcher's return value);
   * here only what the stream reports, never a stale cudaGetLastError */
  e = cudaSetDevice (p->device);
  if (e == cudaSuccess) {
    call = "cudaStreamSynchronize";
    e = cudaStreamSynchronize (p->stream);
  }
  if (e != cudaSuccess) {
    cudaGetLastError ();
    g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND,
                 "%s on CUDA device %d failed: %s (%s)", call, p->device,
                 cudaGetErrorName (e), cudaGetErrorString (e));
    return FALSE;
  }
  return TRUE;
}

static void
cuda_destroy (OviBackend *be)
{
  priv_unref (priv_of (be));
  g_free (be);
}

/* ---- GEMM through cuBLASLt (column-major, as cuBLAS sees it) ---- */

static uint32_t
align_of (const void *ptr, int64_t ld_bytes, int64_t batch_stride_bytes)
{
  uint64_t v = (uint64_t) (uintptr_t) ptr | (uint64_t) ld_bytes
               | (uint64_t) batch_stride_bytes | 256u;

  return (uint32_t) (v & (~v + 1)); /* lowest set bit */
}

typedef struct {
  cublasOperation_t ta, tb;
  int64_t m, n, k;
  const void *A;
  int64_t lda, sA;
  const void *B;
  int64_t ldb, sB;
  void *D;
  int64_t ldd, sD;
  int batch;
  const void *bias;
  cublasLtEpilogue_t epi;
  float alpha;     /* 0: 1 */
  gboolean d_f32;  /* D in fp32 (A and B in the activation dtype) */
  /* fp8: A and B F8_E4M3, D bf16; their scales (device f32) are one value
   * (SCALAR_32F) or one per row of op(A) / column of op(B) (OUTER_VEC_32F) */
  gboolean fp8;
  const float *scale_a, *scale_b;
  int32_t scale_a_mode, scale_b_mode;
} Gemm;

/* The descriptors and the algorithm of one GEMM shape, made on its first
 * use and kept: a step then only sets the bias pointer and calls
 * cublasLtMatmul. */
typedef struct {
  cublasLtMatmulDesc_t desc;
  cublasLtMatrixLayout_t la, lb, ld;
  cublasLtMatmulAlgo_t algo;
  size_t workspace;
} AlgoEntry;

static void
algo_entry_free (gpointer data)
{
  AlgoEntry *e = data;

  if (e->la)
    cublasLtMatrixLayoutDestroy (e->la);
  if (e->lb)
    cublasLtMatrixLayoutDestroy (e->lb);
  if (e->ld)
    cublasLtMatrixLayoutDestroy (e->ld);
  if (e->desc)
    cublasLtMatmulDescDestroy (e->desc);
  g_free (e);
}

static AlgoKey
gemm_key (OviBackend *be, const Gemm *g)
{
  int64_t esd = g->d_f32 ? 4 : (int64_t) ovi_dtype_size (be->act_dtype);
  int64_t es = g->fp8 ? 1 : (int64_t) ovi_dtype_size (be->act_dtype);
  gboolean batched = g->batch > 1;
  AlgoKey key;

  memset (&key, 0, sizeof (key));
  key.ta = g->ta;
  key.tb = g->tb;
  key.epi = (int32_t) g->epi;
  key.dt = be->act_dtype == OVI_DTYPE_F32 ? CUDA_R_32F : CUDA_R_16BF;
  key.d_f32 = g->d_f32;
  key.fp8 = g->fp8;
  key.scale_a_mode = g->scale_a_mode;
  key.scale_b_mode = g->scale_b_mode;
  key.batch = g->batch;
  key.aa = align_of (g->A, g->lda * es, batched ? g->sA * es : 0);
  key.ab = align_of (g->B, g->ldb * es, batched ? g->sB * es : 0);
  key.ad = align_of (g->D, g->ldd * esd, batched ? g->sD * esd : 0);
  key.abias = g->bias ? align_of (g->bias, 0, 0) : 0;
  key.m = g->m;
  key.n = g->n;
  key.k = g->k;
  key.lda = g->lda;
  key.ldb = g->ldb;
  key.ldd = g->ldd;
  key.sA = batched ? g->sA : 0;
  key.sB = batched ? g->sB : 0;
  key.sD = batched ? g->sD : 0;
  return key;
}

static gboolean
layout_new (OviBackend *be, const char *op, cublasLtMatrixLayout_t *l,
            cudaDataType_t dt, int64_t rows, int64_t cols, int64_t ld,
            int32_t batch, int64_t stride)
{
  if (!LT_OK (be, op, cublasLtMatrixLayoutCreate (l, dt, rows, cols, ld)))
    return FALSE;
  if (batch <= 1)
    return TRUE;
  return LT_OK (be, op,
                cublasLtMatrixLayoutSetAttribute (
                    *l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch,
                    sizeof (batch)))
         && LT_OK (be, op,
                   cublasLtMatrixLayoutSetAttribute (
                       *l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                       sizeof (stride)));
}

static gboolean
desc_attr (OviBackend *be, const char *op, cublasLtMatmulDesc_t desc,
           cublasLtMatmulDescAttributes_t attr, const void *v, size_t size)
{
  return LT_OK (be, op, cublasLtMatmulDescSetAttribute (desc, attr, v, size));
}

static gboolean
pref_attr (OviBackend *be, const char *op, cublasLtMatmulPreference_t pref,
           cublasLtMatmulPreferenceAttributes_t attr, const void *v,
           size_t size)
{
  return LT_OK (be, op,
                cublasLtMatmulPreferenceSetAttribute (pref, attr, v, size));
}

/* the scale modes and pointers of an fp8 GEMM (the pointers are set again
 * on every call) */
static gboolean
fp8_scales (OviBackend *be, const char *op, cublasLtMatmulDesc_t desc,
            const Gemm *g)
{
  return desc_attr (be, op, desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE,
                    &g->scale_a_mode, sizeof (g->scale_a_mode))
         && desc_attr (be, op, desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE,
                       &g->scale_b_mode, sizeof (g->scale_b_mode))
         && desc_attr (be, op, desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER,
                       &g->scale_a, sizeof (g->scale_a))
         && desc_attr (be, op, desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER,
                       &g->scale_b, sizeof (g->scale_b));
}

/* the descriptors of g; stored shapes: op(A) is m x k, op(B) is k x n */
static gboolean
entry_descriptors (OviBackend *be, const char *op, const Gemm *g,
                   AlgoEntry *e)
{
  cudaDataType_t dd = be->act_dtype == OVI_DTYPE_F32 ? CUDA_R_32F : CUDA_R_16BF;
  cudaDataType_t dt = g->fp8 ? CUDA_R_8F_E4M3 : dd;
  int32_t ta = g->ta, tb = g->tb, batch = MAX (g->batch, 1);
  uint32_t epi = g->epi;
  gboolean nA = g->ta == CUBLAS_OP_N, nB = g->tb == CUBLAS_OP_N;

  return LT_OK (be, op,
                cublasLtMatmulDescCreate (&e->desc, CUBLAS_COMPUTE_32F,
                                          CUDA_R_32F))
         && desc_attr (be, op, e->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta,
                       sizeof (ta))
         && desc_attr (be, op, e->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb,
                       sizeof (tb))
         && desc_attr (be, op, e->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi,
                       sizeof (epi))
         && (g->bias == NULL
             || desc_attr (be, op, e->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                           &g->bias, sizeof (g->bias)))
         && layout_new (be, op, &e->la, dt, nA ? g->m : g->k, nA ? g->k : g->m,
                        g->lda, batch, g->sA)
         && layout_new (be, op, &e->lb, dt, nB ? g->k : g->n, nB ? g->n : g->k,
                        g->ldb, batch, g->sB)
         && layout_new (be, op, &e->ld, g->d_f32 ? CUDA_R_32F : dd, g->m, g->n,
                        g->ldd, batch, g->sD)
         && (!g->fp8 || fp8_scales (be, op, e->desc, g));
}

/* the best algorithm for e's descriptors; FALSE with *no_algo when cuBLASLt
 * has none (an error is recorded for any other failure) */
static gboolean
entry_algo (OviBackend *be, const char *op, const AlgoKey *key, AlgoEntry *e,
            gboolean *no_algo)
{
  CudaPriv *p = priv_of (be);
  cublasLtMatmulPreference_t pref = NULL;
  cublasLtMatmulHeuristicResult_t res;
  uint64_t ws = WORKSPACE_BYTES;
  int nres = 0;
  cublasStatus_t st;
  gboolean ok;

  ok = LT_OK (be, op, cublasLtMatmulPreferenceCreate (&pref))
       && pref_attr (be, op, pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                     &ws, sizeof (ws))
       && pref_attr (be, op, pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                     &key->aa, sizeof (key->aa))
       && pref_attr (be, op, pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                     &key->ab, sizeof (key->ab))
       && pref_attr (be, op, pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                     &key->ad, sizeof (key->ad))
       && pref_attr (be, op, pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                     &key->ad, sizeof (key->ad));
  if (ok) {
    st = cublasLtMatmulAlgoGetHeuristic (p->lt, e->desc, e->la, e->lb, e->ld,
                                         e->ld, pref, 1, &res, &nres);
    if (st == CUBLAS_STATUS_NOT_SUPPORTED || (st == CUBLAS_STATUS_SUCCESS
                                              && nres == 0)) {
      *no_algo = TRUE;
      ok = FALSE;
    } else {
      ok = LT_OK (be, op, st);
    }
  }
  if (ok) {
    e->algo = res.algo;
    e->workspace = res.workspaceSize;
  }
  if (pref)
    cublasLtMatmulPreferenceDestroy (pref);
  return ok;
}

/* the shapes cuBLASLt had no algorithm for are said once each */
static void
note_no_algo (OviBackend *be, const char *op, const AlgoKey *key)
{
  CudaPriv *p = priv_of (be);
  gboolean first;

  g_mutex_lock (&p->algos_lock);
  first = g_hash_table_add (p->no_algo, g_memdup2 (key, sizeof (*key)));
  g_mutex_unlock (&p->algos_lock);
  if (first)
    g_message ("%s: cuBLASLt has no algorithm for m %" G_GINT64_FORMAT
               " n %" G_GINT64_FORMAT " k %" G_GINT64_FORMAT
               " (epilogue %d, alignments %u/%u/%u); using the fallback",
               op, key->m, key->n, key->k, key->epi, key->aa, key->ab,
               key->ad);
}

/* the cached descriptors and algorithm of g's shape, made on first use;
 * NULL with *no_algo (nothing cached: a later call asks again) or with the
 * error recorded */
static AlgoEntry *
gemm_entry (OviBackend *be, const char *op, const Gemm *g, gboolean *no_algo)
{
  CudaPriv *p = priv_of (be);
  AlgoKey key = gemm_key (be, g);
  AlgoEntry *e;

  g_mutex_lock (&p->algos_lock);
  e = g_hash_table_lookup (p->algos, &key);
  g_mutex_unlock (&p->algos_lock);
  if (e)
    return e;
  e = g_new0 (AlgoEntry, 1);
  if (!entry_descriptors (be, op, g, e) || !entry_algo (be, op, &key, e,
                                                       no_algo)) {
    if (*no_algo)
      note_no_algo (be, op, &key);
    algo_entry_free (e);
    return NULL;
  }
  g_mutex_lock (&p->algos_lock);
  g_hash_table_insert (p->algos, g_memdup2 (&key, sizeof (key)), e);
  g_mutex_unlock (&p->algos_lock);
  return e;
}

/* FALSE with *no_algo and no error recorded when cuBLASLt has no algorithm
 * for it (the caller retries without the epilogue); FALSE with the error
 * otherwise */
static gboolean
lt_gemm (OviBackend *be, const char *op, const Gemm *g, gboolean *no_algo)
{
  CudaPriv *p = priv_of (be);
  float alpha = g->alpha != 0.0f ? g->alpha : 1.0f, beta = 0.0f;
  AlgoEntry *e;

  *no_algo = FALSE;
  e = gemm_entry (be, op, g, no_algo);
  if (e == NULL)
    return FALSE;
  if (g->bias
      && !desc_attr (be, op, e->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                     &g->bias, sizeof (g->bias)))
    return FALSE;
  if (g->fp8 && !fp8_scales (be, op, e->desc, g))
    return FALSE;
  return LT_OK (be, op,
               cublasLtMatmul (p->lt, e->desc, &alpha, g->A, e->la, g->B, e->lb,
                               &beta, g->D, e->ld, g->D, e->ld, &e->algo,
                               p->workspace, e->workspace, p->stream));
}

static gboolean
no_fallback (OviBackend *be, const char *op, const Gemm *g, const char *why)
{
  ovi_backend_set_error (be, OVI_ERROR, OVI_ERROR_BACKEND,
                         "%s: cuBLASLt has no algorithm for m %" G_GINT64_FORMAT
                         " n %" G_GINT64_FORMAT " k %" G_GINT64_FORMAT
                         " and the fallback GEMM %s",
                         op, g->m, g->n, g->k, why);
  return FALSE;
}

/* a GEMM without epilogue; errors recorded. When cuBLASLt has no algorithm
 * for the shape / alignment, a plain tiled kernel computes it. */
static gboolean
gemm_plain (OviBackend *be, const char *op, Gemm *g)
{
  CudaPriv *p = priv_of (be);
  gboolean no_algo;
  cudaError_t e;

  g->epi = CUBLASLT_EPILOGUE_DEFAULT;
  g->bias = NULL;
  if (lt_gemm (be, op, g, &no_algo))
    return TRUE;
  if (!no_algo)
    return FALSE;
  if (g->d_f32 || (g->alpha != 0.0f && g->alpha != 1.0f))
    return no_fallback (be, op, g, "takes neither an fp32 output nor a scale");
  e = cudaSuccess;
  for (int i = 0; i < MAX (g->batch, 1) && e == cudaSuccess; i++) {
    gsize es = ovi_dtype_size (be->act_dtype);
    e = ovi_ck_gemm_fallback (
        p->stream, g->ta == CUBLAS_OP_N ? 0 : 1, g->tb == CUBLAS_OP_N ? 0 : 1,
        g->m, g->n, g->k, (const char *) g->A + (gsize) i * g->sA * es, g->lda,
        (const char *) g->B + (gsize) i * g->sB * es, g->ldb,
        (char *) g->D + (gsize) i * g->sD * es, g->ldd, be->act_dtype);
  }
  if (e == cudaErrorInvalidValue) {
    cudaGetLastError ();
    return no_fallback (be, op, g, "cannot take n that large");
  }
  return ovi_cuda_ok (be, op, "ovi_ck_gemm_fallback", e);
}

/* ---- matmul ---- */

/* whether x . w^T can run on the fp8 tensor cores: bf16 activations, an
 * F8_E4M3 weight with one scale per output channel resident on this device,
 * Hopper or later (per-channel and per-token scales are OUTER_VEC_32F, which
 * pairs only with itself, sm_90), and the 16-byte multiples fp8 GEMMs need */
static gboolean
fp8_eligible (OviBackend *be, const OviTensor *w)
{
  int64_t N = w->shape[0], K = w->shape[1];
  int64_t ns = w->scale ? ovi_tensor_numel (w->scale) : 0;

  return be->act_dtype == OVI_DTYPE_BF16 && w->dtype == OVI_DTYPE_F8_E4M3
         && priv_of (be)->cc >= 90 && ns == N && is_dev (be, w)
         && ovi_tensor_is_contiguous (w)
         && (uintptr_t) ovi_tensor_data (w) % 16 == 0 && K % 16 == 0
         && N % 16 == 0;
}

/* out = act(x . w^T + bias) on the fp8 tensor cores: x (bf16, contiguous
 * xa) quantised per row by a kernel, the weight as stored, both scales
 * applied by cuBLASLt (OUTER_VEC_32F), bf16 out with g's epilogue. FALSE
 * when it did not run: *failed with the error recorded, else the caller
 * takes the bf16 path (not eligible, or no fp8 algorithm for the shape). */
static gboolean
matmul_fp8 (OviBackend *be, Scratch *s, const Gemm *base, const OviTensor *w,
            const void *xa, gboolean *failed)
{
  CudaPriv *p = priv_of (be);
  int64_t M = base->n, K = base->k;
  gboolean no_algo;
  void *xq;
  float *sx;
  const float *sw;
  Gemm g = *base;

  *failed = FALSE;
  if (!fp8_eligible (be, w))
    return FALSE;
  xq = scratch_alloc (s, (gsize) (M * K));
  sx = scratch_alloc (s, (gsize) M * sizeof (float));
  sw = as_contig (s, w->scale, OVI_DTYPE_F32);
  *failed = xq == NULL || sx == NULL || sw == NULL
            || !CUDA_OK (be, s->op,
                         ovi_ck_quant_rows_f8 (p->stream, xq, sx, xa, M, K));
  if (*failed)
    return FALSE;
  g.fp8 = TRUE;
  g.A = ovi_tensor_data (w);
  g.B = xq;
  g.scale_a = sw;
  g.scale_b = sx;
  g.scale_a_mode = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
  g.scale_b_mode = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
  if (lt_gemm (be, s->op, &g, &no_algo))
    return TRUE;
  *failed = !no_algo;
  return FALSE;
}

static void
cuda_matmul (OviBackend *be, OviTensor *out, const OviTensor *x,
             const OviTensor *w, const OviTensor *bias, OviActivation act)
{
  CudaPriv *p = priv_of (be);
  Scratch s = { be, "ovi_op_matmul" };
  int64_t N = w->shape[0], K = w->shape[1];
  int64_t M = K ? ovi_tensor_numel (x) / K : rows_of (x);
  const void *xa, *wa, *ba = NULL;
  gboolean post_bias = FALSE, post_act = FALSE, no_algo, failed = FALSE;
  Gemm g;

  if (M == 0 || N == 0)
    return;
  if (!ovi_cuda_use_device (be, s.op))
    goto out;
  if (bias && (ba = as_contig (&s, bias, be->act_dtype)) == NULL)
    goto out;
  if (ba && ((uintptr_t) ba) % 16) {
    /* the epilogue's bias vector: give it an aligned copy of its own */
    void *c = scratch_alloc (&s, (gsize) N * ovi_dtype_size (be->act_dtype));
    if (c == NULL
        || !CUDA_OK (
            be, s.op,
            cudaMemcpyAsync (c, ba, (gsize) N * ovi_dtype_size (be->act_dtype),
                             cudaMemcpyDeviceToDevice, p->stream)))
      goto out;
    ba = c;
  }
  if (K == 0) {
    /* out = act(bias): zero then add */
    OviCkDesc od = desc_of (out), bd = desc_none ();
    if (bias) {
      bd = desc_bcast (bias, ba, 2, (int64_t[]){ M, N });
      bd.dtype = be->act_dtype;
      bd.stride[0] = 0;
      bd.stride[1] = 1;
    }
    if (CUDA_OK (be, s.op,
                 ovi_ck_fill (p->stream, ovi_tensor_data (out), out->dtype,
                              M * N, 0.0f, (OviCkScale){ NULL, 0, 0, 1 })))
      CUDA_OK (be, s.op,
               ovi_ck_ew (p->stream, ovi_tensor_data (out), out->dtype, M * N,
                          bias ? OVI_CK_EW_ADD_ACT : OVI_CK_EW_UNARY, act, 1.0f,
                          0.0f, od, bd, desc_none ()));
    goto out;
  }
  xa = as_contig (&s, x, be->act_dtype);
  if (xa == NULL)
    goto out;
  /* out^T (N x M, ld N) = w (stored K x N, ld K)^T . x^T (stored K x M) */
  memset (&g, 0, sizeof (g));
  g.ta = CUBLAS_OP_T;
  g.tb = CUBLAS_OP_N;
  g.m = N;
  g.n = M;
  g.k = K;
  g.lda = K;
  g.B = xa;
  g.ldb = K;
  g.D = ovi_tensor_data (out);
  g.ldd = N;
  g.batch = 1;
  g.bias = ba;
  switch (act) {
    case OVI_ACT_GELU_TANH:
      g.epi = ba ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
      break;
    case OVI_ACT_RELU:
      g.epi = ba ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU;
      break;
    case OVI_ACT_NONE:
      g.epi = ba ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
      break;
    default:
      /* SiLU, GELU(erf), tanh: bias fused, activation as its own pass */
      g.epi = ba ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
      post_act = TRUE;
      break;
  }
  if (matmul_fp8 (be, &s, &g, w, xa, &failed) || failed)
    goto post;
  if ((wa = as_contig (&s, w, be->act_dtype)) == NULL)
    goto out;
  g.A = wa;
  if (!lt_gemm (be, s.op, &g, &no_algo)) {
    if (!no_algo)
      goto out;
    /* no algorithm with this epilogue: plain GEMM (cuBLASLt or the
     * fallback kernel), then bias + activation as their own pass */
    if (!gemm_plain (be, s.op, &g))
      goto out;
    post_bias = ba != NULL;
    post_act = act != OVI_ACT_NONE;
  }
post:
  if (!failed && (post_bias || post_act)) {
    OviCkDesc od = desc_of (out), bd = desc_none ();
    int64_t n = M * N;
    od = desc_bcast (out, ovi_tensor_data (out), 2, (int64_t[]){ M, N });
    od.stride[0] = N;
    od.stride[1] = 1;
    if (post_bias) {
      bd = od;
      bd.data = ba;
      bd.stride[0] = 0;
    }
    CUDA_OK (be, s.op,
             ovi_ck_ew (p->stream, ovi_tensor_data (out), out->dtype, n,
                        post_bias ? OVI_CK_EW_ADD_ACT : OVI_CK_EW_UNARY,
                        post_act ? act : OVI_ACT_NONE, 1.0f, 0.0f, od, bd,
                        desc_none ()));
  }
out:
  scratch_free (&s);
}

/* ---- attention ---- */

/* scores of at most this many bytes per chunk of the GEMM attention */
#define SCORES_BYTES ((gsize) 512 << 20)

/* One head of `a` over batches [b0, b0 + nb) as three library calls:
 * S = scale Q K^T (fp32 scores), P = softmax rows of S (activation dtype),
 * O = P V. */
static gboolean
attention_gemm_head (OviBackend *be, Scratch *s, const OviCkAttention *a,
                     int64_t h, int64_t b0, int64_t nb, float *S, void *P)
{
  CudaPriv *p = priv_of (be);
  gsize es = ovi_dtype_size (be->act_dtype);
  int64_t LL = a->Lq * a->Lk;
  const char *q = (const char *) a->q + (b0 * a->qs0 + h * a->qs2) * es;
  const char *k = (const char *) a->k + (b0 * a->ks0 + h * a->ks2) * es;
  const char *v = (const char *) a->v + (b0 * a->vs0 + h * a->vs2) * es;
  char *o = (char *) a->out + ((b0 * a->Lq * a->H + h) * a->Dv) * es;
  Gemm g;
  OviCkDesc sd;

  /* S^T (Lk x Lq, ld Lk) = K (stored D x Lk, ld ks1)^T . Q (D x Lq) */
  g = (Gemm){ .ta = CUBLAS_OP_T, .tb = CUBLAS_OP_N,
              .m = a->Lk, .n = a->Lq, .k = a->D,
              .A = k, .lda = a->ks1, .sA = a->ks0,
              .B = q, .ldb = a->qs1, .sB = a->qs0,
              .D = S, .ldd = a->Lk, .sD = LL,
              .batch = (int) nb, .alpha = a->scale,
              .d_f32 = be->act_dtype != OVI_DTYPE_F32 };
  if (!gemm_plain (be, s->op, &g))
    return FALSE;
  sd = desc_contig (S, OVI_DTYPE_F32, 2, (int64_t[]){ nb * a->Lq, a->Lk });
  if (!CUDA_OK (be, s->op,
                ovi_ck_rows (p->stream, P, be->act_dtype, nb * a->Lq, a->Lk,
                             OVI_CK_ROW_SOFTMAX, 0.0f, sd, desc_none (),
                             desc_none ())))
    return FALSE;
  /* O^T (Dv x Lq, ld H Dv) = V (stored Dv x Lk, ld vs1) . P^T (Lk x Lq) */
  g = (Gemm){ .ta = CUBLAS_OP_N, .tb = CUBLAS_OP_N,
              .m = a->Dv, .n = a->Lq, .k = a->Lk,
              .A = v, .lda = a->vs1, .sA = a->vs0,
              .B = P, .ldb = a->Lk, .sB = LL,
              .D = o, .ldd = a->H * a->Dv, .sD = a->Lq * a->H * a->Dv,
              .batch = (int) nb };
  return gemm_plain (be, s->op, &g);
}

/* Attention with head dims beyond what the fused kernels take (the Wan VAE's
 * single-head attention over 1024... channels) through cuBLASLt: batches in
 * chunks whose scores fit SCORES_BYTES. No bias, no key lengths; q, k, v in
 * the activation dtype with contiguous last dims; out contiguous. */
static gboolean
attention_gemm (OviBackend *be, Scratch *s, const OviCkAttention *a)
{
  gsize es = ovi_dtype_size (be->act_dtype);
  int64_t LL = a->Lq * a->Lk;
  int64_t per = (int64_t) (SCORES_BYTES / ((gsize) LL * (4 + es)));
  int64_t chunk = CLAMP (per, 1, a->B);
  float *S = scratch_alloc (s, (gsize) chunk * LL * 4);
  void *P = scratch_alloc (s, (gsize) chunk * LL * es);

  if (S == NULL || P == NULL)
    return FALSE;
  for (int64_t h = 0; h < a->H; h++)
    for (int64_t b0 = 0; b0 < a->B; b0 += chunk)
      if (!attention_gemm_head (be, s, a, h, b0, MIN (chunk, a->B - b0), S, P))
        return FALSE;
  return TRUE;
}

static gboolean
all_act_dtype (OviBackend *be, const OviCkAttention *a)
{
  int act = (int) be->act_dtype;

  return a->qdt == act && a->kdt == act && a->vdt == act && a->odt == act;
}

/* the fused cuDNN attention for a's layout (BSHD strides as they are) */
static gboolean
attention_cudnn (OviBackend *be, Scratch *s, const OviCkAttention *a,
                 const int64_t *kv_lens, gboolean *unsupported)
{
  OviCudnnSdpa d = {
    .q = a->q,
    .k = a->k,
    .v = a->v,
    .out = a->out,
    .dtype = be->act_dtype,
    .B = a->B,
    .H = a->H,
    .Lq = a->Lq,
    .Lk = a->Lk,
    .D = a->D,
    .Dv = a->Dv,
    .qs = { a->qs0, a->qs1, a->qs2 },
    .ks = { a->ks0, a->ks1, a->ks2 },
    .vs = { a->vs0, a->vs1, a->vs2 },
    .os = { a->Lq * a->H * a->Dv, a->H * a->Dv, a->Dv },
    .kv_lens = kv_lens,
    .scale = a->scale,
  };

  *unsupported = TRUE;
  if (!all_act_dtype (be, a))
    return FALSE;
  return ovi_cudnn_sdpa (be, s->op, &d, unsupported);
}

/* TRUE when a library path ran it (or failed with the error recorded);
 * FALSE: the caller runs the attention kernel. bf16: cuDNN's fused
 * attention (head dims <= 256); any dtype, head dims above 256 (no bias, no
 * key lengths): cuBLASLt. The fp32 parity mode keeps the exact kernel
 * below that. */
static gboolean
attention_library (OviBackend *be, Scratch *s, const OviCkAttention *a,
                   const int64_t *kv_lens)
{
  gboolean unsupported = TRUE;

  if (a->bias == NULL && be->act_dtype != OVI_DTYPE_F32
      && MAX (a->D, a->Dv) <= 256) {
    if (attention_cudnn (be, s, a, kv_lens, &unsupported) || !unsupported)
      return TRUE;
  }
  if (a->bias == NULL && kv_lens == NULL && MAX (a->D, a->Dv) > 256
      && all_act_dtype (be, a)) {
    attention_gemm (be, s, a);
    return TRUE;
  }
  return FALSE;
}

static void
cuda_attention (OviBackend *be, OviTensor *out, const OviTensor *q,
                const OviTensor *k, const OviTensor *v, const OviTensor *bias,
                const int64_t *kv_lens, float scale)
{
  CudaPriv *p = priv_of (be);
  Scratch s = { be, "ovi_op_attention" };
  const OviTensor *in[3] = { q, k, v };
  const void *data[3];
  int64_t st[3][3];
  OviCkAttention a;
  cudaError_t e;

  memset (&a, 0, sizeof (a));
  if (!ovi_cuda_use_device (be, s.op))
    goto out;
  for (int i = 0; i < 3; i++) {
    const OviTensor *t = in[i];
    if (t->stride[3] == 1 && t->scale == NULL) {
      data[i] = ovi_tensor_data (t);
      for (int d = 0; d < 3; d++)
        st[i][d] = t->stride[d];
    } else {
      int64_t cs[4];
      data[i] = as_contig (&s, t, be->act_dtype);
      if (data[i] == NULL)
        goto out;
      ovi_contiguous_strides (4, t->shape, cs);
      for (int d = 0; d < 3; d++)
        st[i][d] = cs[d];
    }
  }
  a.q = data[0];
  a.k = data[1];
  a.v = data[2];
  a.qdt = q->stride[3] == 1 && !q->scale ? q->dtype : be->act_dtype;
  a.kdt = k->stride[3] == 1 && !k->scale ? k->dtype : be->act_dtype;
  a.vdt = v->stride[3] == 1 && !v->scale ? v->dtype : be->act_dtype;
  a.qs0 = st[0][0];
  a.qs1 = st[0][1];
  a.qs2 = st[0][2];
  a.ks0 = st[1][0];
  a.ks1 = st[1][1];
  a.ks2 = st[1][2];
  a.vs0 = st[2][0];
  a.vs1 = st[2][1];
  a.vs2 = st[2][2];
  a.out = ovi_tensor_data (out);
  a.odt = out->dtype;
  a.B = q->shape[0];
  a.Lq = q->shape[1];
  a.H = q->shape[2];
  a.D = q->shape[3];
  a.Lk = k->shape[1];
  a.Dv = v->shape[3];
  a.scale = scale;
  if (bias) {
    OviCkDesc bd;
    if (!read_desc (&s, bias, 4, bias->shape, &bd))
      goto out;
    a.bias = bd.data;
    a.bdt = bd.dtype;
    a.bs0 = bias->shape[0] == 1 ? 0 : bd.stride[0];
    a.bs1 = bias->shape[1] == 1 ? 0 : bd.stride[1];
    a.bs2 = bd.stride[2];
    a.bs3 = bd.stride[3];
  }
  if (kv_lens) {
    int64_t *dl = scratch_alloc (&s, sizeof (int64_t) * a.B);
    if (dl == NULL
        || !ovi_cuda_upload (be, s.op, dl, kv_lens, sizeof (int64_t) * a.B))
      goto out;
    a.kv_lens = dl;
  }
  if (attention_library (be, &s, &a, kv_lens))
    goto out;
  e = ovi_ck_attention (p->stream, &a);
  if (e == cudaErrorInvalidValue && MAX (a.D, a.Dv) > 1024) {
    cudaGetLastError ();
    ovi_backend_set_error (be, OVI_ERROR, OVI_ERROR_BACKEND,
                           "%s: head dims %" G_GINT64_FORMAT
                           "/%" G_GINT64_FORMAT
                           " above 1024 are not supported on CUDA",
                           s.op, a.D, a.Dv);
  } else {
    ovi_cuda_ok (be, s.op, "ovi_ck_attention", e);
  }
out:
  scratch_free (&s);
}

/* ---- row ops ---- */

static void
run_rows (OviBackend *be, const char *op, OviTensor *out, const OviTensor *x,
          const OviTensor *p0, const OviTensor *p1, int code, float eps)
{
  CudaPriv *p = priv_of (be);
  Scratch s = { be, op };
  OviCkDesc xd, d0, d1;

  if (!ovi_cuda_use_device (be, s.op))
    return;
  if (read_desc (&s, x, x->ndim, x->shape, &xd)
      && read_desc (&s, p0, x->ndim, x->shape, &d0)
      && read_desc (&s, p1, x->ndim, x->shape, &d1))
    CUDA_OK (be, op,
             ovi_ck_rows (p->stream, ovi_tensor_data (out), out->dtype,
                          rows_of (x), last_of (x), code, eps, xd, d0, d1));
  scratch_free (&s);
}

static void
cuda_softmax (OviBackend *be, OviTensor *out, const OviTensor *x)
{
  run_rows (be, "ovi_op_softmax", out, x, NULL, NULL, OVI_CK_ROW_SOFTMAX, 0.0f);
}

/* norm gains are [D] (any shape of D elements): read them as a row */
static OviTensor *
as_row (const OviTensor *t, int64_t n)
{
  if (t == NULL)
    return NULL;
  if (t->ndim == 1)
    return ovi_tensor_ref ((OviTensor *) t);
  if (ovi_tensor_is_contiguous (t))
    return ovi_tensor_reshape ((OviTensor *) t, 1, &n);
  return NULL;
}

static void
cuda_rms_norm (OviBackend *be, OviTensor *out, const OviTensor *x,
               const OviTensor *weight, float eps)
{
  g_autoptr (OviTensor) w = as_row (weight, last_of (x));

  if (weight && w == NULL) {
    ovi_backend_set_error (be, OVI_ERROR, OVI_ERROR_SHAPE,
                           "ovi_op_rms_norm: weight must be 1-d or contiguous");
    return;
  }
  run_rows (be, "ovi_op_rms_norm", out, x, w, NULL, OVI_CK_ROW_RMS, eps);
}

static void
cuda_layer_norm (OviBackend *be, OviTensor *out, const OviTensor *x,
                 const OviTensor *weight, const OviTensor *bias, float eps)
{
  g_autoptr (OviTensor) w = as_row (weight, last_of (x));
  g_autoptr (OviTensor) b = as_row (bias, last_of (x));

  if ((weight && w == NULL) || (bias && b == NULL)) {
    ovi_backend_set_error (
        be, OVI_ERROR, OVI_ERROR_SHAPE,
        "ovi_op_layer_norm: weight and bias must be 1-d or contiguous");
    return;
  }
  run_rows (be, "ovi_op_layer_norm", out, x, w, b, OVI_CK_ROW_LAYER, eps);
}

static void
cuda_modulate (OviBackend *be, OviTensor *out, const OviTensor *x,
               const OviTensor *shift, const OviTensor *scale, float eps)
{
  run_rows (be, "ovi_op_modulate", out, x, shift, scale, OVI_CK_ROW_MODULATE,
            eps);
}

static void
cuda_mean_last (OviBackend *be, OviTensor *out, const OviTensor *x)
{
  run_rows (be, "ovi_op_mean_last", out, x, NULL, NULL, OVI_CK_ROW_MEAN, 0.0f);
}

static void
cuda_channel_norm (OviBackend *be, OviTensor *out, const OviTensor *x,
                   const OviTensor *gamma, OviChannelNorm kind)
{
  CudaPriv *p = priv_of (be);
  Scratch s = { be, "ovi_op_channel_norm" };
  OviCkDesc xd;
  const float *g = NULL;
  int64_t C = x->shape[0], N = C ? ovi_tensor_numel (x) / C : 0;

  if (!ovi_cuda_use_device (be, s.op))
    goto out;
  if (!read_desc (&s, x, x->ndim, x->shape, &xd))
    goto out;
  if (kind == OVI_CHANNEL_NORM_L2_SQRT_C
      && (g = as_contig (&s, gamma, OVI_DTYPE_F32)) == NULL)
    goto out;
  CUDA_OK (be, s.op,
           ovi_ck_channel_norm (p->stream, ovi_tensor_data (out), out->dtype, C,
                                N, xd, g,
                                kind == OVI_CHANNEL_NORM_L2_SQRT_C ? 0 : 1));
out:
  scratch_free (&s);
}

/* ---- elementwise ---- */

static void
run_ew (OviBackend *be, const char *op, OviTensor *out, int code, int act,
        float f0, float f1, const OviTensor *a, const OviTensor *b,
        const OviTensor *c)
{
  CudaPriv *p = priv_of (be);
  Scratch s = { be, op };
  OviCkDesc da, db, dc;

  if (!ovi_cuda_use_device (be, s.op))
    return;
  if (read_desc (&s, a, out->ndim, out->shape, &da)
      && read_desc (&s, b, out->ndim, out->shape, &db)
      && read_desc (&s, c, out->ndim, out->shape, &dc))
    CUDA_OK (be, op,
             ovi_ck_ew (p->stream, ovi_tensor_data (out), out->dtype,
                        ovi_tensor_numel (out), code, act, f0, f1, da, db, dc));
  scratch_free (&s);
}

static void
cuda_gate_add (OviBackend *be, OviTensor *x, const OviTensor *y,
               const OviTensor *gate)
{
  run_ew (be, "ovi_op_gate_add", x, OVI_CK_EW_GATE_ADD, 0, 0, 0, x, y, gate);
}

static void
cuda_unary (OviBackend *be, OviTensor *out, const OviTensor *x,
            OviActivation act, float alpha)
{
  run_ew (be, "ovi_op_unary", out, OVI_CK_EW_UNARY, act, alpha, 0, x, NULL,
          NULL);
}

static void
cuda_binary (OviBackend *be, OviTensor *out, const OviTensor *a,
             const OviTensor *b, OviBinaryOp op)
{
  run_ew (be, "ovi_op_binary", out, OVI_CK_EW_BINARY, op, 0, 0, a, b, NULL);
}

static void
cuda_axpby (OviBackend *be, OviTensor *out, float alpha, const OviTensor *a,
            float beta, const OviTensor *b)
{
  run_ew (be, "ovi_op_axpby", out, OVI_CK_EW_AXPBY, 0, alpha, beta, a, b, NULL);
}

static void
cuda_clamp (OviBackend *be, OviTensor *out, const OviTensor *x, float lo,
            float hi)
{
  run_ew (be, "ovi_op_clamp", out, OVI_CK_EW_CLAMP, 0, lo, hi, x, NULL, NULL);
}

static void
cuda_snake_beta (OviBackend *be, OviTensor *out, const OviTensor *x,
                 const OviTensor *alpha, const OviTensor *beta,
                 gboolean logscale)
{
  /* alpha, beta: C values, read as a [C, 1] column against x [..., C, T] */
  int64_t C = x->shape[x->ndim - 2];
  g_autoptr (OviTensor) a = as_row (alpha, C);
  g_autoptr (OviTensor) b = as_row (beta, C);
  g_autoptr (OviTensor) ac = NULL, bc = NULL;

  if (a == NULL || b == NULL) {
    ovi_backend_set_error (be, OVI_ERROR, OVI_ERROR_SHAPE,
                           "ovi_op_snake_beta: alpha and beta must be 1-d or "
                           "contiguous");
    return;
  }
  ac = ovi_tensor_view (a, 2, (int64_t[]){ C, 1 },
                        (int64_t[]){ a->stride[0], 1 }, 0);
  bc = ovi_tensor_view (b, 2, (int64_t[]){ C, 1 },
                        (int64_t[]){ b->stride[0], 1 }, 0);
  run_ew (be, "ovi_op_snake_beta", out, OVI_CK_EW_SNAKE, logscale ? 1 : 0, 0, 0,
          x, ac, bc);
}

/* ---- rope ---- */

static void
cuda_rope (OviBackend *be, OviTensor *out, const OviTensor *x,
           const OviTensor *cos, const OviTensor *sin)
{
  CudaPriv *p = priv_of (be);
  Scratch s = { be, "ovi_op_rope" };
  OviCkDesc xd, cd, sd;

  if (!ovi_cuda_use_device (be, s.op))
    return;
  if (read_desc (&s, x, x->ndim, x->shape, &xd)
      && read_desc (&s, cos, 2, cos->shape, &cd)
      && read_desc (&s, sin, 2, sin->shape, &sd))
    CUDA_OK (be, s.op,
             ovi_ck_rope (p->stream, ovi_tensor_data (out), out->dtype,
                          ovi_tensor_numel (out), x->shape[x->ndim - 3],
                          x->shape[x->ndim - 2], x->shape[x->ndim - 1],
                          cos->shape[1], xd, cd, sd));
  scratch_free (&s);
}

/* ---- resampling, embedding ---- */

static void
cuda_pad (OviBackend *be, OviTensor *out, const OviTensor *x, int n,
          const int *pads, OviPadMode mode)
{
  CudaPriv *p = priv_of (be);
  Scratch s = { be, "ovi_op_pad" };
  OviCkDesc xd;
  int before[OVI_MAX_DIMS];

  if (!ovi_cuda_use_device (be, s.op))
    return;
  for (int i = 0; i < n; i++)
    before[i] = pads[2 * i];
  if (read_desc (&s, x, x->ndim, x->shape, &xd))
    CUDA_OK (be, s.op,
             ovi_ck_resample (p->stream, ovi_tensor_data (out), out->dtype,
                              out->ndim, out->shape, xd, n, before, NULL,
                              mode == OVI_PAD_ZERO ? OVI_CK_PAD_ZERO
                                                   : OVI_CK_PAD_REPLICATE));
  scratch_free (&s);
}

static void
cuda_upsample_nearest (OviBackend *be, OviTensor *out, const OviTensor *x,
                       int n, const int *factors)
{
  CudaPriv *p = priv_of (be);
  Scratch s = { be, "ovi_op_upsample_nearest" };
  OviCkDesc xd;

  if (!ovi_cuda_use_device (be, s.op))
    return;
  if (read_desc (&s, x, x->ndim, x->shape, &xd))
    CUDA_OK (be, s.op,
             ovi_ck_resample (p->stream, ovi_tensor_data (out), out->dtype,
                              out->ndim, out->shape, xd, n, NULL, factors,
                              OVI_CK_UPSAMPLE));
  scratch_free (&s);
}

static void
cuda_embedding (OviBackend *be, OviTensor *out, const OviTensor *table,
                const int64_t *ids, int64_t n_ids)
{
  CudaPriv *p = priv_of (be);
  Scratch s = { be, "ovi_op_embedding" };
  const void *data;
  OviCkScale ts;
  int64_t *dids;

  if (n_ids == 0)
    return;
  if (!ovi_cuda_use_device (be, s.op))
    goto out;
  if (!dev_data (&s, table, &data))
    goto out;
  memset (&ts, 0, sizeof (ts));
  ts.div = 1;
  if (table->scale) {
    if (!dev_data (&s, table->scale, &ts.data))
      goto out;
    ts.dtype = table->scale->dtype;
    ts.stride
        = ovi_tensor_numel (table->scale) == 1 ? 0 : table->scale->stride[0];
  }
  dids = scratch_alloc (&s, sizeof (int64_t) * n_ids);
  if (dids == NULL
      || !ovi_cuda_upload (be, s.op, dids, ids, sizeof (int64_t) * n_ids))
    goto out;
  CUDA_OK (be, s.op,
           ovi_ck_embedding (p->stream, ovi_tensor_data (out), out->dtype,
                             n_ids, table->shape[1], dids,
                             desc_bcast (table, data, 2, table->shape), ts));
out:
  scratch_free (&s);
}

/* ---- convolutions ---- */

/* out[b] (Cout x N positions, row-major) = conv of x[b] (contiguous act
 * dtype [Cin, T, H, W]) with w (contiguous act dtype [Cout, J]) by im2col
 * chunks and one GEMM per (group, chunk); bias added after */
static gboolean
conv_gemm (OviBackend *be, Scratch *s, void *out, const void *x, const void *w,
           int64_t Cin, int64_t Cout, int groups, OviCkConvGeom geo)
{
  CudaPriv *p = priv_of (be);
  gsize es = ovi_dtype_size (be->act_dtype);
  int64_t Cin_g = Cin / groups, Cout_g = Cout / groups;
  int64_t kvol = (int64_t) geo.kt * geo.kh * geo.kw;
  int64_t J = Cin_g * kvol;
  int64_t N = geo.To * geo.Ho * geo.Wo;
  int64_t chunk = MAX ((int64_t) (COLS_BYTES / (es * MAX (J, 1))), 1);
  void *cols;

  chunk = MIN (chunk, N);
  /* keep chunks a multiple of 8 positions so D stays 16-byte aligned */
  if (chunk < N && chunk > 8)
    chunk -= chunk % 8;
  cols = scratch_alloc (s, (gsize) chunk * J * es);
  if (cols == NULL)
    return FALSE;
  geo.C = Cin_g;
  for (int g = 0; g < groups; g++) {
    geo.c0 = (int64_t) g * Cin_g;
    for (int64_t n0 = 0; n0 < N; n0 += chunk) {
      int64_t nc = MIN (chunk, N - n0);
      Gemm gm;
      if (!CUDA_OK (
              be, s->op,
              ovi_ck_im2col (p->stream, cols, x, be->act_dtype, geo, n0, nc)))
        return FALSE;
      /* D' (nc x Cout_g, ld N) = cols (stored J x nc)^T . w_g (stored
       * J x Cout_g) */
      memset (&gm, 0, sizeof (gm));
      gm.ta = CUBLAS_OP_T;
      gm.tb = CUBLAS_OP_N;
      gm.m = nc;
      gm.n = Cout_g;
      gm.k = J;
      gm.A = cols;
      gm.lda = J;
      gm.B = (const char *) w + (gsize) g * Cout_g * J * es;
      gm.ldb = J;
      gm.D = (char *) out + ((gsize) g * Cout_g * N + n0) * es;
      gm.ldd = N;
      gm.batch = 1;
      if (!gemm_plain (be, s->op, &gm))
        return FALSE;
    }
  }
  return TRUE;
}

/* a convolution's x and w on the device, contiguous, in the activation
 * dtype; FALSE when `out` is empty or on failure (the backend error set) */
static gboolean
conv_inputs (OviBackend *be, Scratch *s, const OviTensor *out,
             const OviTensor *x, const OviTensor *w, const void **xa,
             const void **wa)
{
  if (!ovi_cuda_use_device (be, s->op) || ovi_tensor_numel (out) == 0)
    return FALSE;
  *xa = as_contig (s, x, be->act_dtype);
  *wa = as_contig (s, w, be->act_dtype);
  return *xa != NULL && *wa != NULL;
}

/* out[..., Cout, ...] += bias[Cout] with Cout at dim `cdim` */
static void
add_channel_bias (OviBackend *be, Scratch *s, OviTensor *out,
                  const OviTensor *bias, int cdim)
{
  CudaPriv *p = priv_of (be);
  OviCkDesc od = desc_of (out), bd;
  const void *bdata = as_contig (s, bias, OVI_DTYPE_F32);

  if (bdata == NULL)
    return;
  bd = od;
  bd.data = bdata;
  bd.dtype = OVI_DTYPE_F32;
  for (int i = 0; i < bd.nd; i++)
    bd.stride[i] = i == cdim ? 1 : 0;
  CUDA_OK (be, s->op,
           ovi_ck_ew (p->stream, ovi_tensor_data (out), out->dtype,
                      ovi_tensor_numel (out), OVI_CK_EW_BINARY, OVI_BINARY_ADD,
                      0, 0, od, bd, desc_none ()));
}

/* conv3d as one cuDNN graph (bias fused), bf16 only: the fp32 parity mode
 * keeps the exact im2col path (cuDNN's fp32 engines may use TF32). FALSE
 * with *unsupported when cuDNN does not take it. */
static gboolean
conv3d_cudnn (OviBackend *be, Scratch *s, OviTensor *out, const void *xa,
              const void *wa, const OviTensor *bias, const OviTensor *x,
              const OviTensor *w, const int stride[3], const int pad[6],
              gboolean *unsupported)
{
  OviCudnnConv c;

  *unsupported = TRUE;
  if (be->act_dtype != OVI_DTYPE_BF16 || priv_of (be)->dnn == NULL)
    return FALSE;
  memset (&c, 0, sizeof (c));
  c.x = xa;
  c.w = wa;
  c.y = ovi_tensor_data (out);
  c.dtype = be->act_dtype;
  c.N = 1;
  c.C = x->shape[0];
  c.K = w->shape[0];
  for (int i = 0; i < 3; i++) {
    c.in[i] = x->shape[1 + i];
    c.out[i] = out->shape[1 + i];
    c.kernel[i] = w->shape[2 + i];
    c.stride[i] = stride[i];
    c.pre[i] = pad[2 * i];
    c.post[i] = pad[2 * i + 1];
  }
  if (bias && (c.bias = as_contig (s, bias, be->act_dtype)) == NULL) {
    *unsupported = FALSE;
    return FALSE;
  }
  return ovi_cudnn_conv3d (be, s->op, &c, unsupported);
}

static void
cuda_conv3d (OviBackend *be, OviTensor *out, const OviTensor *x,
             const OviTensor *w, const OviTensor *bias, const int stride[3],
             const int pad[6])
{
  Scratch s = { be, "ovi_op_conv3d" };
  const void *xa, *wa;
  OviCkConvGeom geo;
  gboolean unsupported;

  if (!conv_inputs (be, &s, out, x, w, &xa, &wa))
    goto out;
  if (conv3d_cudnn (be, &s, out, xa, wa, bias, x, w, stride, pad,
                    &unsupported)
      || !unsupported)
    goto out;
  memset (&geo, 0, sizeof (geo));
  geo.T = x->shape[1];
  geo.H = x->shape[2];
  geo.W = x->shape[3];
  geo.kt = (int) w->shape[2];
  geo.kh = (int) w->shape[3];
  geo.kw = (int) w->shape[4];
  geo.st = stride[0];
  geo.sh = stride[1];
  geo.sw = stride[2];
  geo.pt = pad[0];
  geo.ph = pad[2];
  geo.pw = pad[4];
  geo.dt = geo.dh = geo.dw = 1;
  geo.To = out->shape[1];
  geo.Ho = out->shape[2];
  geo.Wo = out->shape[3];
  if (!conv_gemm (be, &s, ovi_tensor_data (out), xa, wa, x->shape[0],
                  w->shape[0], 1, geo))
    goto out;
  if (bias)
    add_channel_bias (be, &s, out, bias, 0);
out:
  scratch_free (&s);
}

static void
cuda_conv1d (OviBackend *be, OviTensor *out, const OviTensor *x,
             const OviTensor *w, const OviTensor *bias, int stride,
             int pad_left, int pad_right, int dilation, int groups)
{
  Scratch s = { be, "ovi_op_conv1d" };
  int64_t Cin = x->shape[x->ndim - 2], T = x->shape[x->ndim - 1];
  int64_t Cout = w->shape[0], To = out->shape[out->ndim - 1];
  int64_t B = x->ndim == 3 ? x->shape[0] : 1;
  gsize es = ovi_dtype_size (be->act_dtype);
  const void *xa, *wa;
  OviCkConvGeom geo;

  if (!conv_inputs (be, &s, out, x, w, &xa, &wa))
    goto out;
  memset (&geo, 0, sizeof (geo));
  geo.T = geo.H = 1;
  geo.W = T;
  geo.kt = geo.kh = 1;
  geo.kw = (int) w->shape[2];
  geo.st = geo.sh = 1;
  geo.sw = stride;
  geo.pw = pad_left;
  geo.dt = geo.dh = 1;
  geo.dw = dilation;
  geo.To = geo.Ho = 1;
  geo.Wo = To;
  for (int64_t b = 0; b < B; b++)
    if (!conv_gemm (be, &s, (char *) ovi_tensor_data (out) + b * Cout * To * es,
                    (const char *) xa + b * Cin * T * es, wa, Cin, Cout, groups,
                    geo))
      goto out;
  if (bias)
    add_channel_bias (be, &s, out, bias, out->ndim - 2);
out:
  scratch_free (&s);
}

static void
cuda_conv_transpose1d (OviBackend *be, OviTensor *out, const OviTensor *x,
                       const OviTensor *w, const OviTensor *bias, int stride,
                       int padding, int groups)
{
  CudaPriv *p = priv_of (be);
  Scratch s = { be, "ovi_op_conv_transpose1d" };
  int64_t Cin = x->shape[x->ndim - 2], T = x->shape[x->ndim - 1];
  int64_t K = w->shape[2], Cout_g = w->shape[1], Cout = Cout_g * groups;
  int64_t Cin_g = Cin / groups, R = Cout_g * K;
  int64_t To = out->shape[out->ndim - 1];
  int64_t B = x->ndim == 3 ? x->shape[0] : 1;
  gsize es = ovi_dtype_size (be->act_dtype);
  const void *xa, *wa;
  void *Y;

  if (!conv_inputs (be, &s, out, x, w, &xa, &wa))
    goto out;
  Y = scratch_alloc (&s, (gsize) MAX (R * T, 1) * es);
  if (Y == NULL)
    goto out;
  for (int64_t b = 0; b < B; b++) {
    for (int g = 0; g < groups; g++) {
      Gemm gm;
      /* Y' (T x R, ld T) = x_g (stored T x Cin_g, ld T) . w_g (stored
       * R x Cin_g, ld R)^T, i.e. Y[r, t] = sum_c w[c, r] x[c, t] */
      memset (&gm, 0, sizeof (gm));
      gm.ta = CUBLAS_OP_N;
      gm.tb = CUBLAS_OP_T;
      gm.m = T;
      gm.n = R;
      gm.k = Cin_g;
      gm.A = (const char *) xa + ((gsize) b * Cin + (gsize) g * Cin_g) * T * es;
      gm.lda = T;
      gm.B = (const char *) wa + (gsize) g * Cin_g * R * es;
      gm.ldb = R;
      gm.D = Y;
      gm.ldd = T;
      gm.batch = 1;
      if (!gemm_plain (be, s.op, &gm))
        goto out;
      if (!CUDA_OK (be, s.op,
                    ovi_ck_col2im_t1d (p->stream,
                                       (char *) ovi_tensor_data (out)
                                           + (gsize) b * Cout * To * es,
                                       Y, be->act_dtype, Cout_g,
                                       (int64_t) g * Cout_g, To, T, (int) K,
                                       stride, padding)))
        goto out;
    }
  }
  if (bias)
    add_channel_bias (be, &s, out, bias, out->ndim - 2);
out:
  scratch_free (&s);
}

/* ---- the table, creation ---- */

static const OviBackendOps cuda_ops_bf16 = {
  .name = "cuda",
  .new_storage = cuda_new_storage,
  .copy = cuda_copy,
  .fill = cuda_fill,
  .sync = cuda_sync,
  .destroy = cuda_destroy,
  .matmul = cuda_matmul,
  .attention = cuda_attention,
  .softmax = cuda_softmax,
  .rms_norm = cuda_rms_norm,
  .layer_norm = cuda_layer_norm,
  .channel_norm = cuda_channel_norm,
  .modulate = cuda_modulate,
  .gate_add = cuda_gate_add,
  .rope = cuda_rope,
  .unary = cuda_unary,
  .binary = cuda_binary,
  .axpby = cuda_axpby,
  .clamp = cuda_clamp,
  .snake_beta = cuda_snake_beta,
  .mean_last = cuda_mean_last,
  .conv1d = cuda_conv1d,
  .conv_transpose1d = cuda_conv_transpose1d,
  .conv3d = cuda_conv3d,
  .pad = cuda_pad,
  .upsample_nearest = cuda_upsample_nearest,
  .embedding = cuda_embedding,
  .new_pinned_storage = ovi_cuda_new_pinned_storage,
  .copy_async = ovi_cuda_copy_async,
  .event_new = ovi_cuda_event_new,
  .event_free = ovi_cuda_event_free,
  .event_record = ovi_cuda_event_record,
  .queue_wait = ovi_cuda_queue_wait,
  .host_view = ovi_cuda_host_view,
};

static OviBackendOps cuda_ops_fp32;

const char *
g_module_check_init (GModule *module)
{
  /* stay loaded: storages may outlive every backend */
  g_module_make_resident (module);
  return NULL;
}

/* setup failures name the call and the device */
static gboolean
setup_ok (CudaPriv *p, const char *call, cudaError_t e, GError **error)
{
  if (e == cudaSuccess)
    return TRUE;
  g_autofree char *fn = ovi_cuda_call_name (call);
  cudaGetLastError ();
  g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND,
               "cannot set up CUDA device %d: %s failed: %s (%s)", p->device,
               fn, cudaGetErrorName (e), cudaGetErrorString (e));
  return FALSE;
}

#define SETUP_OK(p, call, error) setup_ok (p, #call, (call), error)

/* a stream-ordered pool of the backend's own, which keeps what it has
 * reserved (release threshold: all), so after the first step every
 * allocation is served without the driver */
static gboolean
pool_setup (CudaPriv *p, GError **error)
{
  struct cudaMemPoolProps props;
  uint64_t threshold = UINT64_MAX;

  memset (&props, 0, sizeof (props));
  props.allocType = cudaMemAllocationTypePinned;
  props.location.type = cudaMemLocationTypeDevice;
  props.location.id = p->device;
  return SETUP_OK (p, cudaMemPoolCreate (&p->pool, &props), error)
         && SETUP_OK (p,
                      cudaMemPoolSetAttribute (
                          p->pool, cudaMemPoolAttrReleaseThreshold, &threshold),
                      error);
}

static gboolean
priv_setup (CudaPriv *p, GError **error)
{
  cublasStatus_t st;
  int major = 0, minor = 0;

  if (!SETUP_OK (p, cudaSetDevice (p->device), error)
      || !SETUP_OK (p,
                    cudaStreamCreateWithFlags (&p->stream,
                                               cudaStreamNonBlocking),
                    error)
      || !pool_setup (p, error)
      || !SETUP_OK (p, cudaMalloc (&p->workspace, WORKSPACE_BYTES), error)
      || !SETUP_OK (p,
                    cudaDeviceGetAttribute (
                        &major, cudaDevAttrComputeCapabilityMajor, p->device),
                    error)
      || !SETUP_OK (p,
                    cudaDeviceGetAttribute (
                        &minor, cudaDevAttrComputeCapabilityMinor, p->device),
                    error))
    return FALSE;
  p->cc = 10 * major + minor;
  ovi_cuda_in_place_setup (p);
  st = cublasLtCreate (&p->lt);
  if (st != CUBLAS_STATUS_SUCCESS) {
    p->lt = NULL;
    g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND,
                 "cannot set up CUDA device %d: cublasLtCreate failed: %s "
                 "(%s)",
                 p->device, cublasLtGetStatusName (st),
                 cublasLtGetStatusString (st));
    return FALSE;
  }
  return TRUE;
}

OviBackend *
ovi_cuda_backend_new_with_dtype (int device, int act_dtype, GError **error)
{
  static gsize init = 0;
  int count = 0;
  cudaError_t e;
  CudaPriv *p;
  OviBackend *be;

  if (act_dtype != OVI_DTYPE_BF16 && act_dtype != OVI_DTYPE_F32) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND,
                 "cuda backend: activation dtype %s is not supported (BF16 or "
                 "F32)",
                 ovi_dtype_name ((OviDType) act_dtype));
    return NULL;
  }
  e = cudaGetDeviceCount (&count);
  if (e != cudaSuccess || count == 0) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND,
                 "no CUDA device found: %s",
                 e != cudaSuccess ? cudaGetErrorString (e)
                                  : "the driver reports no devices");
    cudaGetLastError ();
    return NULL;
  }
  if (device < 0 || device >= count) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND,
                 "CUDA device %d does not exist (%d device%s found)", device,
                 count, count == 1 ? "" : "s");
    return NULL;
  }
  if (g_once_init_enter (&init)) {
    cuda_ops_fp32 = cuda_ops_bf16;
    cuda_ops_fp32.name = "cuda-fp32";
    g_once_init_leave (&init, 1);
  }
  p = g_new0 (CudaPriv, 1);
  p->ref_count = 1;
  p->device = device;
  g_mutex_init (&p->algos_lock);
  p->algos = g_hash_table_new_full (algo_key_hash, algo_key_equal, g_free,
                                    algo_entry_free);
  p->no_algo = g_hash_table_new_full (algo_key_hash, algo_key_equal, g_free,
                                      NULL);
  if (!priv_setup (p, error)) {
    priv_unref (p);
    return NULL;
  }
  be = g_new0 (OviBackend, 1);
  be->ops = act_dtype == OVI_DTYPE_F32 ? &cuda_ops_fp32 : &cuda_ops_bf16;
  be->device = (OviDevice){ OVI_DEVICE_CUDA, device };
  be->act_dtype = (OviDType) act_dtype;
  be->n_threads = 1;
  be->priv = p;
  p->dnn = ovi_cudnn_new (be);
  return be;
}

OviBackend *
ovi_cuda_backend_new (int device, GError **error)
{
  const char *env = g_getenv ("OVI_CUDA_FP32");

  return ovi_cuda_backend_new_with_dtype (
      device, env && atoi (env) ? OVI_DTYPE_F32 : OVI_DTYPE_BF16, error);
}

gboolean
ovi_cuda_backend_memory (OviBackend *be, guint64 *used_high,
                         guint64 *reserved_high, gboolean reset)
{
  CudaPriv *p;
  guint64 u = 0, r = 0, zero = 0;

  if (be == NULL || be->device.type != OVI_DEVICE_CUDA)
    return FALSE;
  p = priv_of (be);
  if (cudaSetDevice (p->device) != cudaSuccess) {
    cudaGetLastError ();
    return FALSE;
  }
  if (cudaMemPoolGetAttribute (p->pool, cudaMemPoolAttrUsedMemHigh, &u)
          != cudaSuccess
      || cudaMemPoolGetAttribute (p->pool, cudaMemPoolAttrReservedMemHigh, &r)
             != cudaSuccess)
    return FALSE;
  if (used_high)
    *used_high = u;
  if (reserved_high)
    *reserved_high = r;
  if (reset
      && (cudaMemPoolSetAttribute (p->pool, cudaMemPoolAttrUsedMemHigh, &zero)
              != cudaSuccess
          || cudaMemPoolSetAttribute (p->pool, cudaMemPoolAttrReservedMemHigh,
                                      &zero)
                 != cudaSuccess)) {
    cudaGetLastError ();
    return FALSE;
  }
  return TRUE;
}
