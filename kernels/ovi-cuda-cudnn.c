/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: cuDNN 9 for the cuda backend, through the backend (graph) C API:
 * fused attention (SDPA) and 3-D convolution with the bias fused.
 *
 * Attention first tries the single SDPA_FWD operation (cuDNN >= 9.13:
 * non-causal bf16/fp16, padded keys through per-batch sequence lengths),
 * then the composite graph the frontend lowers SDPA to (QK^T, scale, row
 * max, exp, row sum, divide, PV), which the fused flash-attention engines
 * match. Layouts come from the caller's strides (BSHD views of [B, L, H*D]
 * activations need no copy). Everything from the tensor descriptors to the
 * execution plan depends only on the shape, so a finalised plan (with its
 * descriptors and workspace size) is cached per shape; a call then builds
 * only the variant pack. A shape no engine takes is remembered too, said
 * once in the log, and left to the caller's fallback kernels.
 *
 * Built without cuDNN (meson found none), the entry points report
 * "unsupported" and the backend runs its own kernels, as it says once when
 * it starts. */
#include "ovi-cuda-private.h"

#include <string.h>

#if OVI_HAVE_CUDNN

#include <cudnn.h>
#include <gmodule.h>
#include <stdbool.h>

typedef cudnnBackendDescriptor_t Desc;

struct _OviCudnn {
  cudnnHandle_t handle;
  cudaStream_t stream;
  GHashTable *plans; /* PlanKey -> Plan (plan NULL: no engine) */
  void *workspace;   /* grown to the largest plan's need */
  size_t workspace_size;
};

enum { PLAN_SDPA, PLAN_SDPA_COMPOSITE, PLAN_CONV };

/* everything a plan depends on; memcmp-compared, so zero-initialised */
typedef struct {
  int kind, dtype, has_lens, has_bias;
  int64_t dims[16];
  int64_t strides[16];
} PlanKey;

typedef struct {
  Desc plan;      /* NULL: no engine for this key */
  GPtrArray *keep; /* every descriptor the plan was built from */
  int64_t workspace;
} Plan;

/* the uids of the variant packs */
enum {
  UID_Q = 1,
  UID_K,
  UID_V,
  UID_O,
  UID_SCALE,
  UID_SEQ_Q,
  UID_SEQ_KV,
  UID_X,
  UID_W,
  UID_Y,
  UID_BIAS,
  UID_VIRTUAL = 100, /* and up: intermediates */
};

static guint
key_hash (gconstpointer key)
{
  return ovi_cuda_hash_bytes (key, sizeof (PlanKey));
}

static gboolean
key_equal (gconstpointer a, gconstpointer b)
{
  return memcmp (a, b, sizeof (PlanKey)) == 0;
}

static void
destroy_desc (gpointer d)
{
  cudnnBackendDestroyDescriptor ((Desc) d);
}

static void
plan_free (gpointer data)
{
  Plan *p = data;

  if (p->plan)
    cudnnBackendDestroyDescriptor (p->plan);
  g_clear_pointer (&p->keep, g_ptr_array_unref);
  g_free (p);
}

/* ---- building a graph: every helper does nothing once one failed ---- */

typedef struct {
  OviBackend *be;
  const char *op;
  GPtrArray *keep;
  gboolean failed;      /* an error is recorded */
  gboolean unsupported; /* cuDNN said NOT_SUPPORTED: no error, fall back */
  int64_t next_virtual;
  gboolean graph_only; /* stop at the finalised operation graph (selftest) */
} Build;

static gboolean
not_supported (cudnnStatus_t st)
{
  return st >= CUDNN_STATUS_NOT_SUPPORTED && st < 4000;
}

#define DNN(b, call) dnn_ok (b, #call, (call))

static gboolean
dnn_ok (Build *b, const char *call, cudnnStatus_t st)
{
  char last[256] = "";

  if (st == CUDNN_STATUS_SUCCESS)
    return TRUE;
  if (not_supported (st)) {
    b->unsupported = TRUE;
    return FALSE;
  }
  g_autofree char *fn = ovi_cuda_call_name (call);
  cudnnGetLastErrorString (last, sizeof (last));
  ovi_backend_set_error (b->be, OVI_ERROR, OVI_ERROR_BACKEND,
                         "%s: %s failed: %s%s%s", b->op, fn,
                         cudnnGetErrorString (st), last[0] ? ": " : "", last);
  b->failed = TRUE;
  return FALSE;
}

static gboolean
ok (Build *b)
{
  return !b->failed && !b->unsupported;
}

static Desc
make (Build *b, cudnnBackendDescriptorType_t type)
{
  Desc d = NULL;

  if (!ok (b) || !DNN (b, cudnnBackendCreateDescriptor (type, &d)))
    return NULL;
  g_ptr_array_add (b->keep, d);
  return d;
}

static void
set (Build *b, Desc d, cudnnBackendAttributeName_t name,
     cudnnBackendAttributeType_t type, int64_t count, const void *value)
{
  if (ok (b))
    DNN (b, cudnnBackendSetAttribute (d, name, type, count, value));
}

static void
set_desc (Build *b, Desc d, cudnnBackendAttributeName_t name, Desc value)
{
  set (b, d, name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &value);
}

static void
finalize (Build *b, Desc d)
{
  if (ok (b))
    DNN (b, cudnnBackendFinalize (d));
}

static cudnnDataType_t
dnn_dtype (OviDType dt)
{
  switch (dt) {
    case OVI_DTYPE_F16:
      return CUDNN_DATA_HALF;
    case OVI_DTYPE_BF16:
      return CUDNN_DATA_BFLOAT16;
    case OVI_DTYPE_F8_E4M3:
      return CUDNN_DATA_FP8_E4M3;
    default:
      return CUDNN_DATA_FLOAT;
  }
}

static Desc
tensor_full (Build *b, int64_t uid, cudnnDataType_t dt, int nd,
             const int64_t *dims, const int64_t *strides, gboolean is_virtual,
             gboolean by_value)
{
  Desc t = make (b, CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  int64_t align = 16;
  bool v = is_virtual, bv = by_value;

  set (b, t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt);
  set (b, t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, nd, dims);
  set (b, t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, nd, strides);
  set (b, t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
  set (b, t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align);
  if (is_virtual)
    set (b, t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &v);
  if (by_value)
    set (b, t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &bv);
  finalize (b, t);
  return t;
}

static Desc
tensor (Build *b, int64_t uid, cudnnDataType_t dt, int nd, const int64_t *dims,
        const int64_t *strides)
{
  return tensor_full (b, uid, dt, nd, dims, strides, FALSE, FALSE);
}

/* a float intermediate of the given dims, contiguous */
static Desc
virtual_tensor (Build *b, cudnnDataType_t dt, int nd, const int64_t *dims)
{
  int64_t strides[8];

  ovi_contiguous_strides (nd, dims, strides);
  return tensor_full (b, b->next_virtual++, dt, nd, dims, strides, TRUE,
                      FALSE);
}

/* the [1, 1, 1, 1] float attention scale, passed by value */
static Desc
scale_tensor (Build *b)
{
  int64_t one[4] = { 1, 1, 1, 1 };

  return tensor_full (b, UID_SCALE, CUDNN_DATA_FLOAT, 4, one, one, FALSE, TRUE);
}

static Desc
pointwise (Build *b, cudnnPointwiseMode_t mode, Desc x, Desc bb, Desc y)
{
  cudnnDataType_t prec = CUDNN_DATA_FLOAT;
  Desc pw = make (b, CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
  Desc op;

  set (b, pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode);
  set (b, pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec);
  finalize (b, pw);
  op = make (b, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
  set_desc (b, op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw);
  set_desc (b, op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x);
  if (bb)
    set_desc (b, op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, bb);
  set_desc (b, op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y);
  finalize (b, op);
  return op;
}

static Desc
reduction (Build *b, cudnnReduceTensorOp_t how, Desc x, Desc y)
{
  cudnnDataType_t prec = CUDNN_DATA_FLOAT;
  Desc r = make (b, CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
  Desc op;

  set (b, r, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE,
       1, &how);
  set (b, r, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &prec);
  finalize (b, r);
  op = make (b, CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
  set_desc (b, op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x);
  set_desc (b, op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y);
  set_desc (b, op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, r);
  finalize (b, op);
  return op;
}

static Desc
matmul (Build *b, Desc a, Desc bb, Desc c)
{
  cudnnDataType_t prec = CUDNN_DATA_FLOAT;
  Desc m = make (b, CUDNN_BACKEND_MATMUL_DESCRIPTOR);
  Desc op;

  set (b, m, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &prec);
  finalize (b, m);
  op = make (b, CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
  set_desc (b, op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, a);
  set_desc (b, op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, bb);
  set_desc (b, op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, c);
  set_desc (b, op, CUDNN_ATTR_OPERATION_MATMUL_DESC, m);
  finalize (b, op);
  return op;
}

/* the graph of `ops`, the first engine config (heuristics mode A, then the
 * fallback list) whose plan finalises, its workspace */
static Desc
plan_of (Build *b, Desc *ops, int n_ops, int64_t *workspace)
{
  static const cudnnBackendHeurMode_t modes[2]
      = { CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK };
  Desc graph = make (b, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);

  set (b, graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
       n_ops, ops);
  finalize (b, graph);
  if (b->graph_only)
    return NULL;
  for (int m = 0; m < 2 && ok (b); m++) {
    Desc heur = make (b, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    int64_t count = 0, got = 0;

    set_desc (b, heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph);
    set (b, heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1,
         &modes[m]);
    finalize (b, heur);
    if (ok (b))
      DNN (b, cudnnBackendGetAttribute (heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                        CUDNN_TYPE_BACKEND_DESCRIPTOR, 0,
                                        &count, NULL));
    if (!ok (b) || count <= 0)
      continue;
    g_autofree Desc *cfgs = g_new0 (Desc, count);
    for (int64_t i = 0; i < count; i++)
      cfgs[i] = make (b, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    if (ok (b))
      DNN (b, cudnnBackendGetAttribute (heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                        CUDNN_TYPE_BACKEND_DESCRIPTOR, count,
                                        &got, cfgs));
    for (int64_t i = 0; i < got && ok (b); i++) {
      Desc plan = NULL;
      if (!DNN (b, cudnnBackendCreateDescriptor (
                       CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan)))
        break;
      if (cudnnBackendSetAttribute (plan,
                                    CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                                    CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfgs[i])
              == CUDNN_STATUS_SUCCESS
          && cudnnBackendFinalize (plan) == CUDNN_STATUS_SUCCESS
          && DNN (b, cudnnBackendGetAttribute (
                         plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                         CUDNN_TYPE_INT64, 1, &got, workspace)))
        return plan;
      cudnnBackendDestroyDescriptor (plan);
    }
  }
  if (!b->failed)
    b->unsupported = TRUE; /* no engine config finalised */
  return NULL;
}

/* ---- attention ---- */

/* [B, H, L, D] logical dims of a BSHD view: strides {s0, s2, s1, 1} */
static void
bhsd (const OviCudnnSdpa *a, const int64_t *s, int64_t L, int64_t D,
      int64_t dims[4], int64_t strides[4])
{
  dims[0] = a->B;
  dims[1] = a->H;
  dims[2] = L;
  dims[3] = D;
  strides[0] = s[0];
  strides[1] = s[2];
  strides[2] = s[1];
  strides[3] = 1;
}

static Desc
sdpa_unified (Build *b, const OviCudnnSdpa *a, int64_t *workspace)
{
  cudnnDataType_t dt = dnn_dtype (a->dtype);
  int64_t qd[4], qs[4], kd[4], ks[4], vd[4], vs[4], od[4], os[4];
  int64_t ld[4] = { a->B, 1, 1, 1 }, ls[4] = { 1, 1, 1, 1 };
  Desc op;

  bhsd (a, a->qs, a->Lq, a->D, qd, qs);
  bhsd (a, a->ks, a->Lk, a->D, kd, ks);
  bhsd (a, a->vs, a->Lk, a->Dv, vd, vs);
  bhsd (a, a->os, a->Lq, a->Dv, od, os);
  Desc q = tensor (b, UID_Q, dt, 4, qd, qs), k = tensor (b, UID_K, dt, 4, kd, ks);
  Desc v = tensor (b, UID_V, dt, 4, vd, vs), o = tensor (b, UID_O, dt, 4, od, os);
  Desc scale = scale_tensor (b);
  op = make (b, CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR);
  set_desc (b, op, CUDNN_ATTR_OPERATION_SDPA_FWD_QDESC, q);
  set_desc (b, op, CUDNN_ATTR_OPERATION_SDPA_FWD_KDESC, k);
  set_desc (b, op, CUDNN_ATTR_OPERATION_SDPA_FWD_VDESC, v);
  set_desc (b, op, CUDNN_ATTR_OPERATION_SDPA_FWD_ODESC, o);
  set_desc (b, op, CUDNN_ATTR_OPERATION_SDPA_FWD_SCALEDESC, scale);
  if (a->kv_lens) {
    /* both lengths set: the padding mask */
    set_desc (b, op, CUDNN_ATTR_OPERATION_SDPA_FWD_SEQ_LEN_QDESC,
              tensor (b, UID_SEQ_Q, CUDNN_DATA_INT32, 4, ld, ls));
    set_desc (b, op, CUDNN_ATTR_OPERATION_SDPA_FWD_SEQ_LEN_KVDESC,
              tensor (b, UID_SEQ_KV, CUDNN_DATA_INT32, 4, ld, ls));
  }
  finalize (b, op);
  return plan_of (b, &op, 1, workspace);
}

/* QK^T -> scale -> row max -> exp(s - max) -> row sum -> divide -> PV */
static Desc
sdpa_composite (Build *b, const OviCudnnSdpa *a, int64_t *workspace)
{
  cudnnDataType_t dt = dnn_dtype (a->dtype), f = CUDNN_DATA_FLOAT;
  int64_t qd[4], qs[4], kd[4], ks[4], vd[4], vs[4], od[4], os[4];
  int64_t sd[4] = { a->B, a->H, a->Lq, a->Lk }, rd[4] = { a->B, a->H, a->Lq, 1 };
  Desc ops[8];

  bhsd (a, a->qs, a->Lq, a->D, qd, qs);
  bhsd (a, a->ks, a->Lk, a->D, kd, ks);
  bhsd (a, a->vs, a->Lk, a->Dv, vd, vs);
  bhsd (a, a->os, a->Lq, a->Dv, od, os);
  /* K^T: the last two dims and strides of K swapped, no copy */
  int64_t ktd[4] = { kd[0], kd[1], kd[3], kd[2] };
  int64_t kts[4] = { ks[0], ks[1], ks[3], ks[2] };
  Desc q = tensor (b, UID_Q, dt, 4, qd, qs);
  Desc kt = tensor (b, UID_K, dt, 4, ktd, kts);
  Desc v = tensor (b, UID_V, dt, 4, vd, vs), o = tensor (b, UID_O, dt, 4, od, os);
  Desc s = virtual_tensor (b, f, 4, sd), s2 = virtual_tensor (b, f, 4, sd);
  Desc mx = virtual_tensor (b, f, 4, rd), sub = virtual_tensor (b, f, 4, sd);
  Desc e = virtual_tensor (b, f, 4, sd), z = virtual_tensor (b, f, 4, rd);
  Desc p = virtual_tensor (b, dt, 4, sd); /* the second matmul's A in Q's dtype */

  ops[0] = matmul (b, q, kt, s);
  ops[1] = pointwise (b, CUDNN_POINTWISE_MUL, s, scale_tensor (b), s2);
  ops[2] = reduction (b, CUDNN_REDUCE_TENSOR_MAX, s2, mx);
  ops[3] = pointwise (b, CUDNN_POINTWISE_SUB, s2, mx, sub);
  ops[4] = pointwise (b, CUDNN_POINTWISE_EXP, sub, NULL, e);
  ops[5] = reduction (b, CUDNN_REDUCE_TENSOR_ADD, e, z);
  ops[6] = pointwise (b, CUDNN_POINTWISE_DIV, e, z, p);
  ops[7] = matmul (b, p, v, o);
  return plan_of (b, ops, G_N_ELEMENTS (ops), workspace);
}

/* ---- plan cache, execution ---- */

/* the cached plan of `key`, built by `build` on first use; NULL with
 * *unsupported (said once) or with the error recorded */
static Plan *
plan_for (OviBackend *be, const char *op, const PlanKey *key,
          Desc (*build) (Build *, gconstpointer, int64_t *), gconstpointer arg,
          const char *what, gboolean *unsupported)
{
  OviCudnn *dnn = ovi_cuda_priv (be)->dnn;
  Plan *p = g_hash_table_lookup (dnn->plans, key);
  Build b = { be, op, NULL, FALSE, FALSE, UID_VIRTUAL };

  if (p == NULL) {
    p = g_new0 (Plan, 1);
    p->keep = b.keep = g_ptr_array_new_with_free_func (destroy_desc);
    p->plan = build (&b, arg, &p->workspace);
    if (b.failed) {
      plan_free (p);
      return NULL;
    }
    if (p->plan == NULL)
      g_message ("%s: cuDNN has no engine for this %s; using the fallback "
                 "kernels for it",
                 op, what);
    g_hash_table_insert (dnn->plans, g_memdup2 (key, sizeof (*key)), p);
  }
  *unsupported = p->plan == NULL;
  return p->plan ? p : NULL;
}

static gboolean
workspace (OviBackend *be, const char *op, int64_t need)
{
  CudaPriv *cp = ovi_cuda_priv (be);
  OviCudnn *dnn = cp->dnn;

  if ((size_t) need <= dnn->workspace_size)
    return TRUE;
  if (dnn->workspace
      && !CUDA_OK (be, op, cudaFreeAsync (dnn->workspace, cp->stream)))
    return FALSE;
  dnn->workspace = NULL;
  dnn->workspace_size = 0;
  if (!CUDA_OK (be, op,
                cudaMallocFromPoolAsync (&dnn->workspace, (size_t) need,
                                         cp->pool, cp->stream)))
    return FALSE;
  dnn->workspace_size = (size_t) need;
  return TRUE;
}

static gboolean
execute (OviBackend *be, const char *op, Plan *p, int n, int64_t *uids,
         void **ptrs)
{
  OviCudnn *dnn = ovi_cuda_priv (be)->dnn;
  Build b = { be, op, g_ptr_array_new_with_free_func (destroy_desc) };
  Desc vp;

  if (!workspace (be, op, p->workspace)) {
    g_ptr_array_unref (b.keep);
    return FALSE;
  }
  vp = make (&b, CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  set (&b, vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids);
  set (&b, vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n,
       ptrs);
  set (&b, vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1,
       &dnn->workspace);
  finalize (&b, vp);
  if (ok (&b))
    DNN (&b, cudnnBackendExecute (dnn->handle, p->plan, vp));
  g_ptr_array_unref (b.keep);
  if (b.unsupported)
    ovi_backend_set_error (be, OVI_ERROR, OVI_ERROR_BACKEND,
                           "%s: cudnnBackendExecute: the plan was refused", op);
  return ok (&b);
}

static gboolean
aligned16 (const void *ptr, const int64_t *strides, int n, gsize es)
{
  if ((uintptr_t) ptr % 16)
    return FALSE;
  for (int i = 0; i < n; i++)
    if ((strides[i] * (int64_t) es) % 16)
      return FALSE;
  return TRUE;
}

static PlanKey
sdpa_key (const OviCudnnSdpa *a, int kind)
{
  PlanKey k;

  memset (&k, 0, sizeof (k));
  k.kind = kind;
  k.dtype = a->dtype;
  k.has_lens = a->kv_lens != NULL;
  k.dims[0] = a->B;
  k.dims[1] = a->H;
  k.dims[2] = a->Lq;
  k.dims[3] = a->Lk;
  k.dims[4] = a->D;
  k.dims[5] = a->Dv;
  memcpy (k.strides, a->qs, sizeof (a->qs));
  memcpy (k.strides + 3, a->ks, sizeof (a->ks));
  memcpy (k.strides + 6, a->vs, sizeof (a->vs));
  memcpy (k.strides + 9, a->os, sizeof (a->os));
  return k;
}

static Desc
build_unified (Build *b, gconstpointer arg, int64_t *ws)
{
  return sdpa_unified (b, arg, ws);
}

static Desc
build_composite (Build *b, gconstpointer arg, int64_t *ws)
{
  return sdpa_composite (b, arg, ws);
}

/* the per-batch lengths as the device INT32 arrays the plan reads */
static gboolean
upload_lens (OviBackend *be, const char *op, const OviCudnnSdpa *a,
             int32_t **dev)
{
  CudaPriv *cp = ovi_cuda_priv (be);
  g_autofree int32_t *host = g_new (int32_t, 2 * a->B);

  for (int64_t i = 0; i < a->B; i++) {
    host[i] = (int32_t) a->Lq;
    host[a->B + i] = (int32_t) MIN (a->kv_lens[i], a->Lk);
  }
  if (!CUDA_OK (be, op,
                cudaMallocFromPoolAsync ((void **) dev,
                                         sizeof (int32_t) * 2 * a->B, cp->pool,
                                         cp->stream)))
    return FALSE;
  return ovi_cuda_upload (be, op, *dev, host, sizeof (int32_t) * 2 * a->B);
}

gboolean
ovi_cudnn_sdpa (OviBackend *be, const char *op, const OviCudnnSdpa *a,
                gboolean *unsupported)
{
  CudaPriv *cp = ovi_cuda_priv (be);
  gsize es = ovi_dtype_size (a->dtype);
  PlanKey key;
  Plan *p = NULL;
  float scale = a->scale;
  int32_t *lens = NULL;
  int64_t uids[7] = { UID_Q, UID_K, UID_V, UID_O, UID_SCALE, UID_SEQ_Q,
                      UID_SEQ_KV };
  void *ptrs[7];
  gboolean done;

  *unsupported = TRUE;
  if (cp->dnn == NULL
      || (a->dtype != OVI_DTYPE_BF16 && a->dtype != OVI_DTYPE_F16)
      || a->D % 8 || a->Dv % 8 || MAX (a->D, a->Dv) > 256
      || !aligned16 (a->q, a->qs, 3, es) || !aligned16 (a->k, a->ks, 3, es)
      || !aligned16 (a->v, a->vs, 3, es) || !aligned16 (a->out, a->os, 3, es))
    return FALSE;
  key = sdpa_key (a, PLAN_SDPA);
  p = plan_for (be, op, &key, build_unified, a, "attention", unsupported);
  if (p == NULL && *unsupported && a->kv_lens == NULL) {
    key = sdpa_key (a, PLAN_SDPA_COMPOSITE);
    p = plan_for (be, op, &key, build_composite, a, "attention graph",
                  unsupported);
  }
  if (p == NULL)
    return FALSE;
  if (a->kv_lens && !upload_lens (be, op, a, &lens))
    return FALSE;
  ptrs[0] = (void *) a->q;
  ptrs[1] = (void *) a->k;
  ptrs[2] = (void *) a->v;
  ptrs[3] = a->out;
  ptrs[4] = &scale; /* by value: a host pointer */
  ptrs[5] = lens;
  ptrs[6] = lens ? lens + a->B : NULL;
  done = execute (be, op, p, lens ? 7 : 5, uids, ptrs);
  if (lens)
    done = CUDA_OK (be, op, cudaFreeAsync (lens, cp->stream)) && done;
  return done;
}

/* ---- 3-D convolution (+ bias) ---- */

/* x/y [N, C, D, H, W] logical dims, channels-last or channel-first strides */
static void
conv_layout (int64_t N, int64_t C, const int64_t *sp, gboolean last,
             int64_t dims[5], int64_t strides[5])
{
  int64_t vol = sp[0] * sp[1] * sp[2];

  dims[0] = N;
  dims[1] = C;
  memcpy (dims + 2, sp, 3 * sizeof (int64_t));
  strides[0] = C * vol;
  if (last) {
    strides[1] = 1;
    strides[2] = sp[1] * sp[2] * C;
    strides[3] = sp[2] * C;
    strides[4] = C;
  } else {
    strides[1] = vol;
    strides[2] = sp[1] * sp[2];
    strides[3] = sp[2];
    strides[4] = 1;
  }
}

static Desc
build_conv (Build *b, gconstpointer arg, int64_t *ws)
{
  const OviCudnnConv *c = arg;
  cudnnDataType_t dt = dnn_dtype (c->dtype), f = CUDNN_DATA_FLOAT;
  cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  int64_t xd[5], xs[5], yd[5], ys[5], wd[5], wsd[5];
  int64_t spatial = 3, dil[3] = { 1, 1, 1 };
  int64_t bd[5] = { 1, c->K, 1, 1, 1 }, bs[5] = { c->K, 1, 1, 1, 1 };
  float alpha = 1.0f, beta = 0.0f;
  Desc ops[2], conv, op, y, x, w;

  conv_layout (c->N, c->C, c->in, c->channels_last, xd, xs);
  conv_layout (c->N, c->K, c->out, c->channels_last, yd, ys);
  /* weights [K, C, T, R, S] in the layout of the activations */
  conv_layout (c->K, c->C, c->kernel, c->channels_last, wd, wsd);
  x = tensor (b, UID_X, dt, 5, xd, xs);
  w = tensor (b, UID_W, dt, 5, wd, wsd);
  y = c->bias ? virtual_tensor (b, f, 5, yd) : tensor (b, UID_Y, dt, 5, yd, ys);
  conv = make (b, CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
  set (b, conv, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f);
  set (b, conv, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE,
       1, &mode);
  set (b, conv, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1,
       &spatial);
  set (b, conv, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 3,
       c->pre);
  set (b, conv, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 3,
       c->post);
  set (b, conv, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 3,
       c->stride);
  set (b, conv, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 3, dil);
  finalize (b, conv);
  op = make (b, CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR);
  set_desc (b, op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, x);
  set_desc (b, op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, w);
  set_desc (b, op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, y);
  set_desc (b, op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, conv);
  set (b, op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT,
       1, &alpha);
  set (b, op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT,
       1, &beta);
  finalize (b, op);
  ops[0] = op;
  if (c->bias == NULL)
    return plan_of (b, ops, 1, ws);
  ops[1] = pointwise (b, CUDNN_POINTWISE_ADD, y,
                      tensor (b, UID_BIAS, dt, 5, bd, bs),
                      tensor (b, UID_Y, dt, 5, yd, ys));
  return plan_of (b, ops, 2, ws);
}

gboolean
ovi_cudnn_conv3d (OviBackend *be, const char *op, const OviCudnnConv *c,
                  gboolean *unsupported)
{
  CudaPriv *cp = ovi_cuda_priv (be);
  PlanKey key;
  Plan *p;
  int64_t uids[4] = { UID_X, UID_W, UID_Y, UID_BIAS };
  void *ptrs[4] = { (void *) c->x, (void *) c->w, c->y, (void *) c->bias };

  *unsupported = TRUE;
  if (cp->dnn == NULL || (uintptr_t) c->x % 16 || (uintptr_t) c->w % 16
      || (uintptr_t) c->y % 16 || (c->bias && (uintptr_t) c->bias % 16))
    return FALSE;
  memset (&key, 0, sizeof (key));
  key.kind = PLAN_CONV;
  key.dtype = c->dtype;
  key.has_bias = c->bias != NULL;
  key.dims[0] = c->N;
  key.dims[1] = c->C;
  key.dims[2] = c->K;
  key.dims[3] = c->channels_last;
  memcpy (key.dims + 4, c->in, sizeof (c->in));
  memcpy (key.dims + 7, c->out, sizeof (c->out));
  memcpy (key.dims + 10, c->kernel, sizeof (c->kernel));
  memcpy (key.strides, c->stride, sizeof (c->stride));
  memcpy (key.strides + 3, c->pre, sizeof (c->pre));
  memcpy (key.strides + 6, c->post, sizeof (c->post));
  p = plan_for (be, op, &key, build_conv, c, "convolution", unsupported);
  return p && execute (be, op, p, c->bias ? 4 : 3, uids, ptrs);
}

/* ---- selftest: the graphs, built and finalised without a GPU ---- */

G_MODULE_EXPORT gboolean ovi_cuda_cudnn_graphs_selftest (GError **error);

/* One graph up to its finalised operation graph (no engine: heuristics
 * need a GPU). cuDNN checks the descriptors, attribute types, dims and the
 * graph's consistency there, so this catches what a GPU run would first
 * stumble on. */
static gboolean
selftest_graph (const char *what, Desc (*build) (Build *, gconstpointer,
                                                  int64_t *),
                gconstpointer arg, GError **error)
{
  OviBackend be = { 0 };
  Build b = { &be, what, g_ptr_array_new_with_free_func (destroy_desc) };
  int64_t ws = 0;
  gboolean good;

  b.next_virtual = UID_VIRTUAL;
  b.graph_only = TRUE;
  build (&b, arg, &ws);
  good = ok (&b);
  g_ptr_array_unref (b.keep);
  if (good)
    return TRUE;
  if (be.error)
    g_propagate_error (error, be.error);
  else
    g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND,
                 "%s: cuDNN refused the graph (NOT_SUPPORTED)", what);
  return FALSE;
}

gboolean
ovi_cuda_cudnn_graphs_selftest (GError **error)
{
  /* the DiT's self-attention: [2 branches, 15 004, 24, 128] BSHD views of
   * [B, L, 3072] rows; text cross-attention with padded keys */
  int64_t lens[2] = { 512, 300 };
  OviCudnnSdpa a = {
    .q = (void *) 256, .k = (void *) 512, .v = (void *) 768,
    .out = (void *) 1024, .dtype = OVI_DTYPE_BF16,
    .B = 2, .H = 24, .Lq = 15004, .Lk = 15004, .D = 128, .Dv = 128,
    .qs = { 15004 * 3072, 3072, 128 }, .ks = { 15004 * 3072, 3072, 128 },
    .vs = { 15004 * 3072, 3072, 128 }, .os = { 15004 * 3072, 3072, 128 },
    .scale = 0.088f,
  };
  OviCudnnSdpa t = a;
  /* a Wan VAE decoder conv: 1024 -> 1024, k 3, causal time padding */
  OviCudnnConv c = {
    .x = (void *) 256, .w = (void *) 512, .y = (void *) 768,
    .bias = (void *) 1024, .dtype = OVI_DTYPE_BF16,
    .N = 1, .C = 1024, .K = 1024,
    .in = { 3, 44, 44 }, .out = { 1, 44, 44 }, .kernel = { 3, 3, 3 },
    .stride = { 1, 1, 1 }, .pre = { 0, 1, 1 }, .post = { 0, 1, 1 },
  };

  t.Lk = 512;
  t.ks[0] = t.vs[0] = 512 * 3072;
  t.kv_lens = lens;
  return selftest_graph ("SDPA_FWD node", build_unified, &a, error)
         && selftest_graph ("SDPA_FWD node, padded keys", build_unified, &t,
                            error)
         && selftest_graph ("composite attention graph", build_composite, &a,
                            error)
         && selftest_graph ("conv3d + bias graph", build_conv, &c, error);
}

/* ---- lifetime ---- */

OviCudnn *
ovi_cudnn_new (OviBackend *be)
{
  CudaPriv *cp = ovi_cuda_priv (be);
  OviCudnn *dnn = g_new0 (OviCudnn, 1);
  cudnnStatus_t st = cudnnCreate (&dnn->handle);

  dnn->stream = cp->stream;
  if (st == CUDNN_STATUS_SUCCESS)
    st = cudnnSetStream (dnn->handle, cp->stream);
  if (st != CUDNN_STATUS_SUCCESS) {
    g_message ("cuda backend: cuDNN %s cannot start on device %d (%s); "
               "attention and convolutions run on the fallback kernels",
               ovi_cudnn_version (), cp->device, cudnnGetErrorString (st));
    if (dnn->handle)
      cudnnDestroy (dnn->handle);
    g_free (dnn);
    return NULL;
  }
  dnn->plans = g_hash_table_new_full (key_hash, key_equal, g_free, plan_free);
  return dnn;
}

void
ovi_cudnn_free (OviCudnn *dnn)
{
  if (dnn->workspace && cudaFreeAsync (dnn->workspace, dnn->stream))
    g_warning ("cuda backend teardown: cudaFreeAsync of the cuDNN workspace "
               "failed");
  g_clear_pointer (&dnn->plans, g_hash_table_destroy);
  cudnnDestroy (dnn->handle);
  g_free (dnn);
}

const char *
ovi_cudnn_version (void)
{
  static char v[32];
  size_t n = cudnnGetVersion ();

  /* 91900 -> 9.19.0 (cuDNN 9 encodes major * 10000 + minor * 100 + patch) */
  g_snprintf (v, sizeof (v), "%zu.%zu.%zu", n / 10000, (n / 100) % 100,
              n % 100);
  return v;
}

#else /* !OVI_HAVE_CUDNN */

OviCudnn *
ovi_cudnn_new (OviBackend *be)
{
  static gsize said = 0;

  if (g_once_init_enter (&said)) {
    g_message ("cuda backend: built without cuDNN; attention and "
               "convolutions run on the fallback kernels");
    g_once_init_leave (&said, 1);
  }
  return NULL;
}

void
ovi_cudnn_free (OviCudnn *dnn)
{
}

const char *
ovi_cudnn_version (void)
{
  return "not built in";
}

gboolean
ovi_cudnn_sdpa (OviBackend *be, const char *op, const OviCudnnSdpa *a,
                gboolean *unsupported)
{
  *unsupported = TRUE;
  return FALSE;
}

gboolean
ovi_cudnn_conv3d (OviBackend *be, const char *op, const OviCudnnConv *c,
                  gboolean *unsupported)
{
  *unsupported = TRUE;
  return FALSE;
}

#endif
