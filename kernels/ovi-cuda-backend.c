/* gst-ovi: the CUDA backend, a module (libovi-cuda.so) that libovi loads at
 * run time (ovi_backend_new_by_name "cuda" / "cuda-fp32").
 *
 * - Activations in BF16 ("cuda") or F32 ("cuda-fp32", the parity mode: every
 *   op in fp32, cuBLASLt with CUBLAS_COMPUTE_32F and no TF32). Norms,
 *   softmax, modulation, attention and all reductions run in fp32 in both.
 * - One CUDA stream per backend; every op is enqueued on it, nothing waits
 *   until ovi_backend_sync() (or a download). Memory (tensors and per-op
 *   scratch) comes from the device's stream-ordered pool (cudaMallocAsync)
 *   with its release threshold at the maximum, so after the first step the
 *   pool serves every allocation and nothing reaches the driver.
 * - GEMMs (matmul, conv as im2col + GEMM, transposed conv as GEMM + gather)
 *   through cuBLASLt with the bias / GELU(tanh) / ReLU epilogues fused; other
 *   activations run as one elementwise pass after the GEMM. Weights in F32,
 *   F16, BF16, F8_E4M3 or I8 (with scale) are converted to the activation
 *   dtype in scratch on the fly when they are not already in it.
 * - Attention: kernels/ovi-ck-attention.cu (online softmax, no score matrix).
 */
#include "ovi-backend-impl.h"
#include "ovi-cuda-kernels.h"

/* cublasLt.h has a declaration without a prototype */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <cublasLt.h>
#pragma GCC diagnostic pop
#include <cuda_runtime_api.h>
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
  gint ref_count;
  int device;
  cudaStream_t stream;
  cudaMemPool_t pool;
  cublasLtHandle_t lt;
  void *workspace;
  /* cuBLASLt heuristic results by GEMM shape (AlgoKey -> AlgoEntry) */
  GHashTable *algos;
  GMutex algos_lock;
} CudaPriv;

typedef struct {
  int32_t ta, tb, epi, dt, batch;
  uint32_t aa, ab, ad;
  int64_t m, n, k, lda, ldb, ldd, sA, sB, sD;
} AlgoKey;

typedef struct {
  gboolean found;
  cublasLtMatmulAlgo_t algo;
} AlgoEntry;

static guint
algo_key_hash (gconstpointer key)
{
  const guint8 *b = key;
  guint32 h = 2166136261u;

  for (gsize i = 0; i < sizeof (AlgoKey); i++)
    h = (h ^ b[i]) * 16777619u;
  return h;
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

static CudaPriv *
priv_of (OviBackend *be)
{
  return (CudaPriv *) be->priv;
}

static void
priv_unref (CudaPriv *p)
{
  if (!g_atomic_int_dec_and_test (&p->ref_count))
    return;
  cudaSetDevice (p->device);
  cudaStreamSynchronize (p->stream);
  if (p->workspace)
    cudaFree (p->workspace);
  if (p->lt)
    cublasLtDestroy (p->lt);
  if (p->algos)
    g_hash_table_destroy (p->algos);
  g_mutex_clear (&p->algos_lock);
  cudaStreamDestroy (p->stream);
  g_free (p);
}

/* ---- errors ---- */

static gboolean
cuda_ok (OviBackend *be, const char *op, cudaError_t e)
{
  if (e == cudaSuccess)
    return TRUE;
  ovi_backend_set_error (be, OVI_ERROR, OVI_ERROR_BACKEND, "%s: CUDA error: %s",
                         op, cudaGetErrorString (e));
  return FALSE;
}

static gboolean
lt_ok (OviBackend *be, const char *op, cublasStatus_t s)
{
  if (s == CUBLAS_STATUS_SUCCESS)
    return TRUE;
  ovi_backend_set_error (be, OVI_ERROR, OVI_ERROR_BACKEND,
                         "%s: cuBLASLt error %d", op, (int) s);
  return FALSE;
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

  cudaSetDevice (b->priv->device);
  cudaFreeAsync (b->ptr, b->priv->stream);
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

  cudaSetDevice (p->device);
  e = cudaMallocAsync (&ptr, round_size (size), p->stream);
  if (e != cudaSuccess) {
    size_t free_b = 0, total_b = 0;
    cudaGetLastError ();
    cudaMemGetInfo (&free_b, &total_b);
    g_set_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                 "cudaMallocAsync of %" G_GSIZE_FORMAT
                 " bytes on device %d failed (%s; %zu of %zu bytes free)",
                 size, p->device, cudaGetErrorString (e), free_b, total_b);
    return NULL;
  }
  /* tensors start zeroed, as host storage does */
  e = cudaMemsetAsync (ptr, 0, size, p->stream);
  if (e != cudaSuccess) {
    cudaFreeAsync (ptr, p->stream);
    g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND, "cudaMemsetAsync: %s",
                 cudaGetErrorString (e));
    return NULL;
  }
  b = g_new0 (DevBlock, 1);
  b->priv = p;
  b->ptr = ptr;
  g_atomic_int_inc (&p->ref_count);
  return ovi_storage_new_wrapped (ptr, size, be->device, release_block, b);
}

/* per-op scratch: freed (stream-ordered) when the op ends */
typedef struct {
  OviBackend *be;
  const char *op;
  void *ptr[16];
  int n;
} Scratch;

static void *
scratch_alloc (Scratch *s, gsize size)
{
  CudaPriv *p = priv_of (s->be);
  void *ptr = NULL;

  if (s->n == G_N_ELEMENTS (s->ptr)) {
    ovi_backend_set_error (s->be, OVI_ERROR, OVI_ERROR_BACKEND,
                           "%s: too many scratch buffers", s->op);
    return NULL;
  }
  if (!cuda_ok (s->be, s->op,
                cudaMallocAsync (&ptr, round_size (size), p->stream)))
    return NULL;
  s->ptr[s->n++] = ptr;
  return ptr;
}

static void
scratch_free (Scratch *s)
{
  CudaPriv *p = priv_of (s->be);

  for (int i = 0; i < s->n; i++)
    cudaFreeAsync (s->ptr[i], p->stream);
  s->n = 0;
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
  CudaPriv *p = priv_of (s->be);
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
  if (dev == NULL)
    return FALSE;
  if (!cuda_ok (s->be, s->op,
                cudaMemcpyAsync (
                    dev, (const char *) ovi_tensor_data (t) + lo * (int64_t) es,
                    (gsize) (hi - lo + 1) * es, cudaMemcpyHostToDevice,
                    p->stream)))
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
  if (!cuda_ok (
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
  cudaSetDevice (p->device);
  /* plain transfers */
  if (raw && ovi_tensor_is_contiguous (src) && ovi_tensor_is_contiguous (dst)
      && !(src->storage->device.type == OVI_DEVICE_CPU && dst_host)) {
    enum cudaMemcpyKind kind
        = src->storage->device.type == OVI_DEVICE_CPU
              ? (dst_host ? cudaMemcpyHostToHost : cudaMemcpyHostToDevice)
              : (dst_host ? cudaMemcpyDeviceToHost : cudaMemcpyDeviceToDevice);
    if (cuda_ok (be, s.op,
                 cudaMemcpyAsync (ovi_tensor_data (dst), ovi_tensor_data (src),
                                  nbytes, kind, p->stream))
        && dst_host)
      cuda_ok (be, s.op, cudaStreamSynchronize (p->stream));
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
  if (!cuda_ok (be, s.op,
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
    if (cuda_ok (be, s.op,
                 cudaMemcpyAsync (contig ? ovi_tensor_data (dst) : tmp, out,
                                  nbytes, cudaMemcpyDeviceToHost, p->stream))
        && cuda_ok (be, s.op, cudaStreamSynchronize (p->stream)) && !contig)
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
    cuda_ok (be, s.op,
             ovi_ck_fill (p->stream, ovi_tensor_data (dst), dst->dtype,
                          ovi_tensor_numel (dst), value, ds));
  scratch_free (&s);
}

static gboolean
cuda_sync (OviBackend *be, GError **error)
{
  CudaPriv *p = priv_of (be);
  cudaError_t e;

  cudaSetDevice (p->device);
  e = cudaStreamSynchronize (p->stream);
  if (e == cudaSuccess)
    e = cudaGetLastError ();
  if (e != cudaSuccess) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND,
                 "CUDA error on device %d: %s", p->device,
                 cudaGetErrorString (e));
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
} Gemm;

/* FALSE with no error recorded when cuBLASLt has no algorithm for it (the
 * caller retries without the epilogue); FALSE with the error otherwise */
static gboolean
lt_gemm (OviBackend *be, const char *op, const Gemm *g, gboolean *no_algo)
{
  CudaPriv *p = priv_of (be);
  cudaDataType_t dt = be->act_dtype == OVI_DTYPE_F32 ? CUDA_R_32F : CUDA_R_16BF;
  int64_t es = (int64_t) ovi_dtype_size (be->act_dtype);
  cublasLtMatmulDesc_t desc = NULL;
  cublasLtMatrixLayout_t la = NULL, lb = NULL, ld = NULL;
  cublasLtMatmulPreference_t pref = NULL;
  cublasLtMatmulHeuristicResult_t res;
  int nres = 0;
  AlgoKey key;
  AlgoEntry entry = { FALSE }, *cached;
  float alpha = 1.0f, beta = 0.0f;
  uint64_t ws = WORKSPACE_BYTES;
  uint32_t aa = align_of (g->A, g->lda * es, g->batch > 1 ? g->sA * es : 0);
  uint32_t ab = align_of (g->B, g->ldb * es, g->batch > 1 ? g->sB * es : 0);
  uint32_t ad = align_of (g->D, g->ldd * es, g->batch > 1 ? g->sD * es : 0);
  int32_t ta = g->ta, tb = g->tb;
  gboolean ok = FALSE;
  cublasStatus_t st;

  *no_algo = FALSE;
  st = cublasLtMatmulDescCreate (&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  if (!lt_ok (be, op, st))
    return FALSE;
  cublasLtMatmulDescSetAttribute (desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta,
                                  sizeof (ta));
  cublasLtMatmulDescSetAttribute (desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb,
                                  sizeof (tb));
  cublasLtMatmulDescSetAttribute (desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &g->epi,
                                  sizeof (g->epi));
  if (g->bias)
    cublasLtMatmulDescSetAttribute (desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                    &g->bias, sizeof (g->bias));
  /* stored shapes: op(A) is m x k, op(B) is k x n */
  if (!lt_ok (be, op,
              cublasLtMatrixLayoutCreate (
                  &la, dt, g->ta == CUBLAS_OP_N ? g->m : g->k,
                  g->ta == CUBLAS_OP_N ? g->k : g->m, g->lda))
      || !lt_ok (be, op,
                 cublasLtMatrixLayoutCreate (
                     &lb, dt, g->tb == CUBLAS_OP_N ? g->k : g->n,
                     g->tb == CUBLAS_OP_N ? g->n : g->k, g->ldb))
      || !lt_ok (be, op,
                 cublasLtMatrixLayoutCreate (&ld, dt, g->m, g->n, g->ldd)))
    goto done;
  if (g->batch > 1) {
    int32_t bc = g->batch;
    cublasLtMatrixLayoutSetAttribute (la, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                      &bc, sizeof (bc));
    cublasLtMatrixLayoutSetAttribute (lb, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                      &bc, sizeof (bc));
    cublasLtMatrixLayoutSetAttribute (ld, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                      &bc, sizeof (bc));
    cublasLtMatrixLayoutSetAttribute (
        la, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &g->sA,
        sizeof (g->sA));
    cublasLtMatrixLayoutSetAttribute (
        lb, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &g->sB,
        sizeof (g->sB));
    cublasLtMatrixLayoutSetAttribute (
        ld, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &g->sD,
        sizeof (g->sD));
  }
  if (!lt_ok (be, op, cublasLtMatmulPreferenceCreate (&pref)))
    goto done;
  cublasLtMatmulPreferenceSetAttribute (
      pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof (ws));
  cublasLtMatmulPreferenceSetAttribute (
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aa, sizeof (aa));
  cublasLtMatmulPreferenceSetAttribute (
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ab, sizeof (ab));
  cublasLtMatmulPreferenceSetAttribute (
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ad, sizeof (ad));
  cublasLtMatmulPreferenceSetAttribute (
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ad, sizeof (ad));
  memset (&key, 0, sizeof (key));
  key.ta = ta;
  key.tb = tb;
  key.epi = (int32_t) g->epi;
  key.dt = (int32_t) dt;
  key.batch = g->batch;
  key.aa = aa;
  key.ab = ab;
  key.ad = ad;
  key.m = g->m;
  key.n = g->n;
  key.k = g->k;
  key.lda = g->lda;
  key.ldb = g->ldb;
  key.ldd = g->ldd;
  key.sA = g->batch > 1 ? g->sA : 0;
  key.sB = g->batch > 1 ? g->sB : 0;
  key.sD = g->batch > 1 ? g->sD : 0;
  g_mutex_lock (&p->algos_lock);
  cached = g_hash_table_lookup (p->algos, &key);
  if (cached)
    entry = *cached;
  g_mutex_unlock (&p->algos_lock);
  if (cached == NULL) {
    st = cublasLtMatmulAlgoGetHeuristic (p->lt, desc, la, lb, ld, ld, pref, 1,
                                         &res, &nres);
    entry.found = st == CUBLAS_STATUS_SUCCESS && nres > 0;
    if (entry.found)
      entry.algo = res.algo;
    g_mutex_lock (&p->algos_lock);
    g_hash_table_insert (p->algos, g_memdup2 (&key, sizeof (key)),
                         g_memdup2 (&entry, sizeof (entry)));
    g_mutex_unlock (&p->algos_lock);
  }
  if (!entry.found) {
    *no_algo = TRUE;
    goto done;
  }
  ok = lt_ok (be, op,
              cublasLtMatmul (p->lt, desc, &alpha, g->A, la, g->B, lb, &beta,
                              g->D, ld, g->D, ld, &entry.algo, p->workspace, ws,
                              p->stream));
done:
  if (pref)
    cublasLtMatmulPreferenceDestroy (pref);
  if (la)
    cublasLtMatrixLayoutDestroy (la);
  if (lb)
    cublasLtMatrixLayoutDestroy (lb);
  if (ld)
    cublasLtMatrixLayoutDestroy (ld);
  cublasLtMatmulDescDestroy (desc);
  return ok;
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
    ovi_backend_set_error (
        be, OVI_ERROR, OVI_ERROR_BACKEND,
        "%s: cuBLASLt has no algorithm for m %" G_GINT64_FORMAT
        " n %" G_GINT64_FORMAT " k %" G_GINT64_FORMAT
        " and the fallback GEMM cannot take n that large",
        op, g->m, g->n, g->k);
    return FALSE;
  }
  return cuda_ok (be, op, e);
}

/* ---- matmul ---- */

static void
cuda_matmul (OviBackend *be, OviTensor *out, const OviTensor *x,
             const OviTensor *w, const OviTensor *bias, OviActivation act)
{
  CudaPriv *p = priv_of (be);
  Scratch s = { be, "ovi_op_matmul" };
  int64_t N = w->shape[0], K = w->shape[1];
  int64_t M = K ? ovi_tensor_numel (x) / K : rows_of (x);
  const void *xa, *wa, *ba = NULL;
  gboolean post_bias = FALSE, post_act = FALSE, no_algo;
  Gemm g;

  if (M == 0 || N == 0)
    return;
  cudaSetDevice (p->device);
  if (bias && (ba = as_contig (&s, bias, be->act_dtype)) == NULL)
    goto out;
  if (ba && ((uintptr_t) ba) % 16) {
    /* the epilogue's bias vector: give it an aligned copy of its own */
    void *c = scratch_alloc (&s, (gsize) N * ovi_dtype_size (be->act_dtype));
    if (c == NULL
        || !cuda_ok (
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
    if (cuda_ok (be, s.op,
                 ovi_ck_fill (p->stream, ovi_tensor_data (out), out->dtype,
                              M * N, 0.0f, (OviCkScale){ NULL, 0, 0, 1 })))
      cuda_ok (be, s.op,
               ovi_ck_ew (p->stream, ovi_tensor_data (out), out->dtype, M * N,
                          bias ? OVI_CK_EW_ADD_ACT : OVI_CK_EW_UNARY, act, 1.0f,
                          0.0f, od, bd, desc_none ()));
    goto out;
  }
  xa = as_contig (&s, x, be->act_dtype);
  wa = as_contig (&s, w, be->act_dtype);
  if (xa == NULL || wa == NULL)
    goto out;
  /* out^T (N x M, ld N) = w (stored K x N, ld K)^T . x^T (stored K x M) */
  memset (&g, 0, sizeof (g));
  g.ta = CUBLAS_OP_T;
  g.tb = CUBLAS_OP_N;
  g.m = N;
  g.n = M;
  g.k = K;
  g.A = wa;
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
  if (post_bias || post_act) {
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
    cuda_ok (be, s.op,
             ovi_ck_ew (p->stream, ovi_tensor_data (out), out->dtype, n,
                        post_bias ? OVI_CK_EW_ADD_ACT : OVI_CK_EW_UNARY,
                        post_act ? act : OVI_ACT_NONE, 1.0f, 0.0f, od, bd,
                        desc_none ()));
  }
out:
  scratch_free (&s);
}

/* ---- attention ---- */

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
  cudaSetDevice (p->device);
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
        || !cuda_ok (be, s.op,
                     cudaMemcpyAsync (dl, kv_lens, sizeof (int64_t) * a.B,
                                      cudaMemcpyHostToDevice, p->stream)))
      goto out;
    a.kv_lens = dl;
  }
  e = ovi_ck_attention (p->stream, &a);
  if (e == cudaErrorInvalidValue && MAX (a.D, a.Dv) > 1024) {
    cudaGetLastError ();
    ovi_backend_set_error (be, OVI_ERROR, OVI_ERROR_BACKEND,
                           "%s: head dims %" G_GINT64_FORMAT
                           "/%" G_GINT64_FORMAT
                           " above 1024 are not supported on CUDA",
                           s.op, a.D, a.Dv);
  } else {
    cuda_ok (be, s.op, e);
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

  cudaSetDevice (p->device);
  if (read_desc (&s, x, x->ndim, x->shape, &xd)
      && read_desc (&s, p0, x->ndim, x->shape, &d0)
      && read_desc (&s, p1, x->ndim, x->shape, &d1))
    cuda_ok (be, op,
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

  cudaSetDevice (p->device);
  if (!read_desc (&s, x, x->ndim, x->shape, &xd))
    goto out;
  if (kind == OVI_CHANNEL_NORM_L2_SQRT_C
      && (g = as_contig (&s, gamma, OVI_DTYPE_F32)) == NULL)
    goto out;
  cuda_ok (be, s.op,
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

  cudaSetDevice (p->device);
  if (read_desc (&s, a, out->ndim, out->shape, &da)
      && read_desc (&s, b, out->ndim, out->shape, &db)
      && read_desc (&s, c, out->ndim, out->shape, &dc))
    cuda_ok (be, op,
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

  cudaSetDevice (p->device);
  if (read_desc (&s, x, x->ndim, x->shape, &xd)
      && read_desc (&s, cos, 2, cos->shape, &cd)
      && read_desc (&s, sin, 2, sin->shape, &sd))
    cuda_ok (be, s.op,
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

  cudaSetDevice (p->device);
  for (int i = 0; i < n; i++)
    before[i] = pads[2 * i];
  if (read_desc (&s, x, x->ndim, x->shape, &xd))
    cuda_ok (be, s.op,
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

  cudaSetDevice (p->device);
  if (read_desc (&s, x, x->ndim, x->shape, &xd))
    cuda_ok (be, s.op,
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
  cudaSetDevice (p->device);
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
      || !cuda_ok (be, s.op,
                   cudaMemcpyAsync (dids, ids, sizeof (int64_t) * n_ids,
                                    cudaMemcpyHostToDevice, p->stream)))
    goto out;
  cuda_ok (be, s.op,
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
      if (!cuda_ok (
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
  cuda_ok (be, s->op,
           ovi_ck_ew (p->stream, ovi_tensor_data (out), out->dtype,
                      ovi_tensor_numel (out), OVI_CK_EW_BINARY, OVI_BINARY_ADD,
                      0, 0, od, bd, desc_none ()));
}

static void
cuda_conv3d (OviBackend *be, OviTensor *out, const OviTensor *x,
             const OviTensor *w, const OviTensor *bias, const int stride[3],
             const int pad[6])
{
  CudaPriv *p = priv_of (be);
  Scratch s = { be, "ovi_op_conv3d" };
  const void *xa, *wa;
  OviCkConvGeom geo;

  cudaSetDevice (p->device);
  if (ovi_tensor_numel (out) == 0)
    return;
  xa = as_contig (&s, x, be->act_dtype);
  wa = as_contig (&s, w, be->act_dtype);
  if (xa == NULL || wa == NULL)
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
  CudaPriv *p = priv_of (be);
  Scratch s = { be, "ovi_op_conv1d" };
  int64_t Cin = x->shape[x->ndim - 2], T = x->shape[x->ndim - 1];
  int64_t Cout = w->shape[0], To = out->shape[out->ndim - 1];
  int64_t B = x->ndim == 3 ? x->shape[0] : 1;
  gsize es = ovi_dtype_size (be->act_dtype);
  const void *xa, *wa;
  OviCkConvGeom geo;

  cudaSetDevice (p->device);
  if (ovi_tensor_numel (out) == 0)
    return;
  xa = as_contig (&s, x, be->act_dtype);
  wa = as_contig (&s, w, be->act_dtype);
  if (xa == NULL || wa == NULL)
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

  cudaSetDevice (p->device);
  if (ovi_tensor_numel (out) == 0)
    return;
  xa = as_contig (&s, x, be->act_dtype);
  wa = as_contig (&s, w, be->act_dtype);
  Y = scratch_alloc (&s, (gsize) MAX (R * T, 1) * es);
  if (xa == NULL || wa == NULL || Y == NULL)
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
      if (!cuda_ok (be, s.op,
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
};

static OviBackendOps cuda_ops_fp32;

const char *
g_module_check_init (GModule *module)
{
  /* stay loaded: storages may outlive every backend */
  g_module_make_resident (module);
  return NULL;
}

OviBackend *
ovi_cuda_backend_new_with_dtype (int device, int act_dtype, GError **error)
{
  static gsize init = 0;
  int count = 0;
  cudaError_t e;
  cublasStatus_t st;
  CudaPriv *p;
  OviBackend *be;
  uint64_t threshold = UINT64_MAX;

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
  p->algos
      = g_hash_table_new_full (algo_key_hash, algo_key_equal, g_free, g_free);
  if ((e = cudaSetDevice (device)) != cudaSuccess
      || (e = cudaStreamCreateWithFlags (&p->stream, cudaStreamNonBlocking))
             != cudaSuccess
      || (e = cudaDeviceGetDefaultMemPool (&p->pool, device)) != cudaSuccess
      || (e = cudaMemPoolSetAttribute (p->pool, cudaMemPoolAttrReleaseThreshold,
                                       &threshold))
             != cudaSuccess
      || (e = cudaMalloc (&p->workspace, WORKSPACE_BYTES)) != cudaSuccess) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND,
                 "cannot set up CUDA device %d: %s", device,
                 cudaGetErrorString (e));
    cudaGetLastError ();
    if (p->stream)
      cudaStreamDestroy (p->stream);
    g_hash_table_destroy (p->algos);
    g_mutex_clear (&p->algos_lock);
    g_free (p);
    return NULL;
  }
  st = cublasLtCreate (&p->lt);
  if (st != CUBLAS_STATUS_SUCCESS) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND,
                 "cublasLtCreate failed on device %d (status %d)", device,
                 (int) st);
    p->lt = NULL;
    priv_unref (p);
    return NULL;
  }
  be = g_new0 (OviBackend, 1);
  be->ops = act_dtype == OVI_DTYPE_F32 ? &cuda_ops_fp32 : &cuda_ops_bf16;
  be->device = (OviDevice){ OVI_DEVICE_CUDA, device };
  be->act_dtype = (OviDType) act_dtype;
  be->n_threads = 1;
  be->priv = p;
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
  cudaSetDevice (p->device);
  if (cudaMemPoolGetAttribute (p->pool, cudaMemPoolAttrUsedMemHigh, &u)
          != cudaSuccess
      || cudaMemPoolGetAttribute (p->pool, cudaMemPoolAttrReservedMemHigh, &r)
             != cudaSuccess)
    return FALSE;
  if (used_high)
    *used_high = u;
  if (reserved_high)
    *reserved_high = r;
  if (reset) {
    cudaMemPoolSetAttribute (p->pool, cudaMemPoolAttrUsedMemHigh, &zero);
    cudaMemPoolSetAttribute (p->pool, cudaMemPoolAttrReservedMemHigh, &zero);
  }
  return TRUE;
}
