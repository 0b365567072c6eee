/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: `ovi bench --profile` for the cuda backend: device time per op
 * kind from CUDA events, and the versions a benchmark report names.
 *
 * While profiling, the backend's op table is swapped for one whose entries
 * record an event pair on the stream around the real op; reading syncs once
 * and sums the pairs per kind. Ops never call other table entries, so pairs
 * never nest. Events come from a pool that only grows (on the first profiled
 * run), so a profiled step adds no allocation after the first. */
#include "ovi-cuda-private.h"

#include <gmodule.h>

typedef struct {
  cudaEvent_t start, stop;
  int kind;
} Mark;

struct _OviCudaProfile {
  const OviBackendOps *real;
  OviBackendOps table;
  GArray *marks; /* Mark, the pool; the first `used` are recorded */
  guint used;
  OviCudaProfKind kind; /* of the op being recorded */
};

G_MODULE_EXPORT gboolean ovi_cuda_backend_profile (OviBackend *be,
                                                   gboolean enable,
                                                   GError **error);
G_MODULE_EXPORT gboolean
ovi_cuda_backend_profile_read (OviBackend *be, double ms[OVI_CUDA_PROF_N],
                               guint64 calls[OVI_CUDA_PROF_N], GError **error);
G_MODULE_EXPORT char *ovi_cuda_backend_versions (OviBackend *be);

static OviCudaProfile *
prof_of (OviBackend *be)
{
  return ovi_cuda_priv (be)->profile;
}

/* an event pair for the op about to be enqueued, or NULL (error recorded) */
static Mark *
next_mark (OviBackend *be, const char *op)
{
  OviCudaProfile *pr = prof_of (be);
  Mark m = { NULL, NULL, 0 };

  if (pr->used == pr->marks->len) {
    if (!CUDA_OK (be, op, cudaEventCreate (&m.start)))
      return NULL;
    if (!CUDA_OK (be, op, cudaEventCreate (&m.stop))) {
      cudaEventDestroy (m.start);
      return NULL;
    }
    g_array_append_val (pr->marks, m);
  }
  return &g_array_index (pr->marks, Mark, pr->used);
}

static Mark *
begin (OviBackend *be, OviCudaProfKind kind)
{
  Mark *m = next_mark (be, "profile");

  if (m == NULL
      || !CUDA_OK (be, "profile",
                   cudaEventRecord (m->start, ovi_cuda_priv (be)->stream)))
    return NULL;
  m->kind = kind;
  return m;
}

static void
end (OviBackend *be, Mark *m)
{
  if (m
      && CUDA_OK (be, "profile",
                  cudaEventRecord (m->stop, ovi_cuda_priv (be)->stream)))
    prof_of (be)->used++;
}

#define REAL(be) (prof_of (be)->real)
#define WRAP(name, kind, params, args)                                         \
  static void p_##name params                                                  \
  {                                                                            \
    Mark *mark_ = begin (be, kind);                                            \
    REAL (be)->name args;                                                      \
    end (be, mark_);                                                           \
  }

typedef const OviTensor CT;

WRAP (copy, OVI_CUDA_PROF_COPY, (OviBackend * be, OviTensor *d, CT *s),
      (be, d, s))
WRAP (fill, OVI_CUDA_PROF_COPY, (OviBackend * be, OviTensor *d, float v),
      (be, d, v))
WRAP (matmul, OVI_CUDA_PROF_GEMM,
      (OviBackend * be, OviTensor *o, CT *x, CT *w, CT *b, OviActivation a),
      (be, o, x, w, b, a))
WRAP (attention, OVI_CUDA_PROF_ATTENTION,
      (OviBackend * be, OviTensor *o, CT *q, CT *k, CT *v, CT *b,
       const int64_t *l, float s),
      (be, o, q, k, v, b, l, s))
WRAP (softmax, OVI_CUDA_PROF_NORM_EW, (OviBackend * be, OviTensor *o, CT *x),
      (be, o, x))
WRAP (rms_norm, OVI_CUDA_PROF_NORM_EW,
      (OviBackend * be, OviTensor *o, CT *x, CT *w, float e), (be, o, x, w, e))
WRAP (layer_norm, OVI_CUDA_PROF_NORM_EW,
      (OviBackend * be, OviTensor *o, CT *x, CT *w, CT *b, float e),
      (be, o, x, w, b, e))
WRAP (channel_norm, OVI_CUDA_PROF_NORM_EW,
      (OviBackend * be, OviTensor *o, CT *x, CT *g, OviChannelNorm k),
      (be, o, x, g, k))
WRAP (modulate, OVI_CUDA_PROF_NORM_EW,
      (OviBackend * be, OviTensor *o, CT *x, CT *sh, CT *sc, float e),
      (be, o, x, sh, sc, e))
WRAP (gate_add, OVI_CUDA_PROF_NORM_EW,
      (OviBackend * be, OviTensor *x, CT *y, CT *g), (be, x, y, g))
WRAP (rope, OVI_CUDA_PROF_NORM_EW,
      (OviBackend * be, OviTensor *o, CT *x, CT *c, CT *s), (be, o, x, c, s))
WRAP (unary, OVI_CUDA_PROF_NORM_EW,
      (OviBackend * be, OviTensor *o, CT *x, OviActivation a, float f),
      (be, o, x, a, f))
WRAP (binary, OVI_CUDA_PROF_NORM_EW,
      (OviBackend * be, OviTensor *o, CT *a, CT *b, OviBinaryOp op),
      (be, o, a, b, op))
WRAP (axpby, OVI_CUDA_PROF_NORM_EW,
      (OviBackend * be, OviTensor *o, float al, CT *a, float bt, CT *b),
      (be, o, al, a, bt, b))
WRAP (clamp, OVI_CUDA_PROF_NORM_EW,
      (OviBackend * be, OviTensor *o, CT *x, float lo, float hi),
      (be, o, x, lo, hi))
WRAP (snake_beta, OVI_CUDA_PROF_NORM_EW,
      (OviBackend * be, OviTensor *o, CT *x, CT *a, CT *b, gboolean l),
      (be, o, x, a, b, l))
WRAP (mean_last, OVI_CUDA_PROF_NORM_EW, (OviBackend * be, OviTensor *o, CT *x),
      (be, o, x))
WRAP (conv1d, OVI_CUDA_PROF_CONV,
      (OviBackend * be, OviTensor *o, CT *x, CT *w, CT *b, int s, int pl,
       int pr, int d, int g),
      (be, o, x, w, b, s, pl, pr, d, g))
WRAP (conv_transpose1d, OVI_CUDA_PROF_CONV,
      (OviBackend * be, OviTensor *o, CT *x, CT *w, CT *b, int s, int p,
       int g),
      (be, o, x, w, b, s, p, g))
WRAP (conv3d, OVI_CUDA_PROF_CONV,
      (OviBackend * be, OviTensor *o, CT *x, CT *w, CT *b, const int s[3],
       const int p[6]),
      (be, o, x, w, b, s, p))
WRAP (pad, OVI_CUDA_PROF_COPY,
      (OviBackend * be, OviTensor *o, CT *x, int n, const int *p,
       OviPadMode m),
      (be, o, x, n, p, m))
WRAP (upsample_nearest, OVI_CUDA_PROF_COPY,
      (OviBackend * be, OviTensor *o, CT *x, int n, const int *f),
      (be, o, x, n, f))
WRAP (embedding, OVI_CUDA_PROF_COPY,
      (OviBackend * be, OviTensor *o, CT *t, const int64_t *ids, int64_t n),
      (be, o, t, ids, n))

/* the real table with each op wrapped; entries the real table lacks (or
 * does not time: memory, sync, destroy) stay as they are */
static void
wrap_table (OviCudaProfile *pr)
{
  OviBackendOps *t = &pr->table;

  *t = *pr->real;
#define W(name)                                                                \
  if (t->name)                                                                 \
  t->name = p_##name
  W (copy);
  W (fill);
  W (matmul);
  W (attention);
  W (softmax);
  W (rms_norm);
  W (layer_norm);
  W (channel_norm);
  W (modulate);
  W (gate_add);
  W (rope);
  W (unary);
  W (binary);
  W (axpby);
  W (clamp);
  W (snake_beta);
  W (mean_last);
  W (conv1d);
  W (conv_transpose1d);
  W (conv3d);
  W (pad);
  W (upsample_nearest);
  W (embedding);
#undef W
}

void
ovi_cuda_profile_free (OviCudaProfile *pr)
{
  for (guint i = 0; i < pr->marks->len; i++) {
    Mark *m = &g_array_index (pr->marks, Mark, i);
    cudaEventDestroy (m->start);
    cudaEventDestroy (m->stop);
  }
  g_array_unref (pr->marks);
  g_free (pr);
}

gboolean
ovi_cuda_backend_profile (OviBackend *be, gboolean enable, GError **error)
{
  CudaPriv *p = ovi_cuda_priv (be);
  OviCudaProfile *pr = p->profile;

  if (!ovi_backend_sync (be, error))
    return FALSE;
  if (enable && pr == NULL) {
    pr = g_new0 (OviCudaProfile, 1);
    pr->real = be->ops;
    pr->marks = g_array_new (FALSE, FALSE, sizeof (Mark));
    wrap_table (pr);
    p->profile = pr;
    be->ops = &pr->table;
  } else if (!enable && pr) {
    be->ops = pr->real;
    g_clear_pointer (&p->profile, ovi_cuda_profile_free);
  }
  return TRUE;
}

gboolean
ovi_cuda_backend_profile_read (OviBackend *be, double ms[OVI_CUDA_PROF_N],
                               guint64 calls[OVI_CUDA_PROF_N], GError **error)
{
  OviCudaProfile *pr = prof_of (be);

  memset (ms, 0, sizeof (double) * OVI_CUDA_PROF_N);
  memset (calls, 0, sizeof (guint64) * OVI_CUDA_PROF_N);
  if (pr == NULL || !ovi_backend_sync (be, error))
    return pr != NULL && FALSE;
  for (guint i = 0; i < pr->used; i++) {
    Mark *m = &g_array_index (pr->marks, Mark, i);
    float t = 0;
    cudaError_t e = cudaEventElapsedTime (&t, m->start, m->stop);
    if (e != cudaSuccess) {
      cudaGetLastError ();
      g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND,
                   "profile: cudaEventElapsedTime failed: %s",
                   cudaGetErrorString (e));
      pr->used = 0;
      return FALSE;
    }
    ms[m->kind] += t;
    calls[m->kind]++;
  }
  pr->used = 0;
  return TRUE;
}

/* "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs), driver 13.0 (CUDA), runtime
 * 13.0, cuBLASLt 130100, cuDNN 9.19.0" */
char *
ovi_cuda_backend_versions (OviBackend *be)
{
  CudaPriv *p = ovi_cuda_priv (be);
  struct cudaDeviceProp prop;
  int drv = 0, rt = 0;

  memset (&prop, 0, sizeof (prop));
  if (cudaGetDeviceProperties (&prop, p->device) != cudaSuccess
      || cudaDriverGetVersion (&drv) != cudaSuccess
      || cudaRuntimeGetVersion (&rt) != cudaSuccess)
    cudaGetLastError ();
  return g_strdup_printf (
      "%s (sm_%d%d, %d SMs, %.1f GiB), driver supports CUDA %d.%d, runtime "
      "%d.%d, cuBLASLt %zu, cuDNN %s",
      prop.name, prop.major, prop.minor, prop.multiProcessorCount,
      prop.totalGlobalMem / (1024.0 * 1024 * 1024), drv / 1000,
      (drv % 1000) / 10, rt / 1000, (rt % 1000) / 10, cublasLtGetVersion (),
      p->dnn ? ovi_cudnn_version () : "not used");
}
