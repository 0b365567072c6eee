/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: what the host files of the cuda backend module share
 * (ovi-cuda-backend.c, ovi-cuda-cudnn.c, ovi-cuda-profile.c). */
#pragma once

#include "ovi-backend-impl.h"
#include "ovi-cuda-kernels.h"

/* cublasLt.h has a declaration without a prototype */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <cublasLt.h>
#pragma GCC diagnostic pop
#include <cuda_runtime_api.h>

G_BEGIN_DECLS

typedef struct _OviCudaProfile OviCudaProfile;

#define OVI_CUDA_STAGE_SLOTS 8
#define OVI_CUDA_STAGE_BYTES ((gsize) 1 << 20)
typedef struct _OviCudnn OviCudnn;
typedef struct _OviCudaStreaming OviCudaStreaming;

typedef struct {
  gint ref_count;
  int device;
  int cc; /* compute capability, 10 * major + minor */
  cudaStream_t stream;
  /* the backend's own stream-ordered pool (never the device's default
   * pool, whose release threshold belongs to everyone in the process) */
  cudaMemPool_t pool;
  cublasLtHandle_t lt;
  void *workspace;
  /* per-op scratch (ovi-cuda-backend.c scratch_alloc), grown to the
   * largest op's need */
  void *arena;
  gsize arena_size;
  /* pinned staging ring of small uploads (ovi-cuda-backend.c upload_small) */
  void *stage;
  cudaEvent_t stage_done[OVI_CUDA_STAGE_SLOTS];
  int stage_next;
  /* cuBLASLt descriptors + algorithm by GEMM shape (AlgoKey -> AlgoEntry),
   * and the shapes it had no algorithm for (said once each) */
  GHashTable *algos, *no_algo;
  GMutex algos_lock;
  OviCudnn *dnn;          /* NULL: no cuDNN (fallback kernels) */
  OviCudaProfile *profile; /* NULL unless ovi_cuda_backend_profile */
  OviCudaStreaming *streaming; /* copy stream (ovi-cuda-stream.c), lazily */
  /* weights in place (ovi-cuda-in-place.c): the device reads pageable host
   * memory; it maps registered host memory; read-only registration */
  gboolean view_pageable, view_map, view_read_only;
} CudaPriv;

static inline CudaPriv *
ovi_cuda_priv (OviBackend *be)
{
  return (CudaPriv *) be->priv;
}

/* teardown: logs a failed call by name (nothing can be reported any more) */
void ovi_cuda_warn_if_failed (const char *call, cudaError_t e);

/* drops a reference to the backend's state (the last one tears it down) */
void ovi_cuda_priv_unref (CudaPriv *p);

/* a device attribute, 0 when the runtime cannot say (ovi-cuda-devices.c) */
int ovi_cuda_attribute (enum cudaDeviceAttr attr, int device);

/* ---- weights in place (ovi-cuda-in-place.c) ---- */

/* reads the device's host-memory attributes (and $OVI_CUDA_HOST_VIEW) */
void ovi_cuda_in_place_setup (CudaPriv *p);
/* the op table's host_view (ovi-backend-impl.h) */
OviTensor *ovi_cuda_host_view (OviBackend *be, OviTensor *t, GError **error);

/* FNV-1a over a (zero-initialised, memcmp-compared) cache key */
static inline guint
ovi_cuda_hash_bytes (const void *key, gsize n)
{
  const guint8 *b = key;
  guint32 h = 2166136261u;

  for (gsize i = 0; i < n; i++)
    h = (h ^ b[i]) * 16777619u;
  return h;
}

/* Every CUDA / cuBLASLt / cuDNN call is checked; a failure is recorded in
 * the backend's sticky error naming the op and the call ("ovi_op_matmul:
 * cublasLtMatmul failed: CUBLAS_STATUS_..."). The macros pass the call's
 * text, of which the function name is kept. */
#define CUDA_OK(be, op, call) ovi_cuda_ok (be, op, #call, (call))
#define LT_OK(be, op, call)   ovi_cuda_lt_ok (be, op, #call, (call))
gboolean ovi_cuda_ok (OviBackend *be, const char *op, const char *call,
                      cudaError_t e);
gboolean ovi_cuda_lt_ok (OviBackend *be, const char *op, const char *call,
                         cublasStatus_t s);
/* the function name of a call's text: "cudaMemcpyAsync (...)" ->
 * "cudaMemcpyAsync" (free it) */
char *ovi_cuda_call_name (const char *expr);

/* host -> device on the stream; small copies go through a pinned staging
 * ring so they never wait for the stream (error recorded on failure) */
gboolean ovi_cuda_upload (OviBackend *be, const char *op, void *dst,
                          const void *src, gsize n);

/* the backend's device current for this thread (error recorded if not) */
gboolean ovi_cuda_use_device (OviBackend *be, const char *op);

/* ---- cuDNN (ovi-cuda-cudnn.c; stubs when built without it) ---- */

/* cuDNN for the backend, or NULL (said once in the log) when the module was
 * built without it or it cannot start on this device */
OviCudnn *ovi_cudnn_new (OviBackend *be);
void ovi_cudnn_free (OviCudnn *dnn);
/* "9.19.0" or "not built in" (static string) */
const char *ovi_cudnn_version (void);

typedef struct {
  const void *q, *k, *v;
  void *out;
  OviDType dtype; /* of q, k, v and out: BF16 or F16 */
  int64_t B, H, Lq, Lk, D, Dv;
  /* element strides of [B, L, H] (the last dim is contiguous) */
  int64_t qs[3], ks[3], vs[3], os[3];
  const int64_t *kv_lens; /* host, B values, or NULL */
  float scale;
} OviCudnnSdpa;

/* out = softmax(scale q k^T) v through cuDNN's fused attention (plans
 * cached per shape). FALSE with no error recorded when cuDNN has no engine
 * for it (the caller falls back); FALSE with the error otherwise. */
gboolean ovi_cudnn_sdpa (OviBackend *be, const char *op,
                         const OviCudnnSdpa *a, gboolean *unsupported);

typedef struct {
  const void *x, *w, *bias; /* bias: Cout values or NULL */
  void *y;
  OviDType dtype;   /* of x, w, y (and bias): BF16, F16 or F32 */
  int64_t N, C, K;  /* batch, in and out channels */
  int64_t in[3];    /* T, H, W */
  int64_t out[3];   /* To, Ho, Wo */
  int64_t kernel[3];
  int64_t stride[3];
  int64_t pre[3], post[3]; /* padding before / after each spatial dim */
  gboolean channels_last;  /* NDHWC x and y (else NCDHW) */
} OviCudnnConv;

/* y = conv3d(x, w) (+ bias) through the cuDNN backend graph; the same
 * contract as ovi_cudnn_sdpa */
gboolean ovi_cudnn_conv3d (OviBackend *be, const char *op,
                           const OviCudnnConv *c, gboolean *unsupported);

/* ---- profiling (ovi-cuda-profile.c) ---- */

typedef enum {
  OVI_CUDA_PROF_GEMM,
  OVI_CUDA_PROF_ATTENTION,
  OVI_CUDA_PROF_NORM_EW, /* norms, modulation, rope, elementwise */
  OVI_CUDA_PROF_CONV,
  OVI_CUDA_PROF_COPY, /* copy, fill, pad, resample, embedding */
  OVI_CUDA_PROF_N
} OviCudaProfKind;

void ovi_cuda_profile_free (OviCudaProfile *prof);

G_END_DECLS
