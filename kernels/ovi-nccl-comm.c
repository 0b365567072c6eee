/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the NCCL communicator (ovi-comm.h), part of the cuda module and
 * built only when meson finds NCCL; libovi reaches it by symbol
 * (ovi_comm_nccl_group_new), so it links and loads without NCCL.
 *
 * One process, one thread and one CUDA backend per GPU: the group is a
 * clique made by ncclCommInitAll, and every collective of rank r is
 * enqueued on rank r's backend stream, ordered with its ops; nothing waits
 * on the host (the official code synchronises the device after every
 * all-to-all). Buffers travel as bytes, so bf16, fp32 and fp8 tensors go
 * the same way.
 *
 * Abort: ncclCommAbort on every communicator of the clique ("aborts any
 * operations that might still be running on the device"), after which the
 * group only records OVI_ERROR_ABORTED. Across nodes the same code would
 * take ncclGetUniqueId + ncclCommInitRank per process instead of
 * ncclCommInitAll (docs/multi-gpu.md). */
#include "ovi-comm.h"
#include "ovi-cuda-private.h"

/* nccl.h has declarations without a prototype (ncclGroupStart ()) */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <nccl.h>
#pragma GCC diagnostic pop

G_MODULE_EXPORT OviComm **ovi_nccl_group_new (int size, OviBackend **backends,
                                              GError **error);

typedef struct {
  gint ref_count;
  int size;
  GMutex lock;
  gboolean aborted;
  ncclComm_t *comms; /* [size] */
} Clique;

static Clique *
clique_of (OviComm *c)
{
  return c->priv;
}

static void
clique_unref (Clique *q)
{
  if (!g_atomic_int_dec_and_test (&q->ref_count))
    return;
  for (int r = 0; r < q->size; r++)
    if (!q->aborted && q->comms[r])
      ncclCommDestroy (q->comms[r]);
  g_mutex_clear (&q->lock);
  g_free (q->comms);
  g_free (q);
}

static gboolean
is_aborted (Clique *q)
{
  gboolean aborted;

  g_mutex_lock (&q->lock);
  aborted = q->aborted;
  g_mutex_unlock (&q->lock);
  return aborted;
}

static void
nccl_abort (OviComm *c)
{
  Clique *q = clique_of (c);

  g_mutex_lock (&q->lock);
  if (!q->aborted) {
    q->aborted = TRUE;
    for (int r = 0; r < q->size; r++)
      ncclCommAbort (q->comms[r]);
  }
  g_mutex_unlock (&q->lock);
}

static gboolean
nccl_aborted (OviComm *c)
{
  return is_aborted (clique_of (c));
}

/* the rank's device current, the group alive; records why not */
static gboolean
ready (OviComm *c, const char *op)
{
  if (is_aborted (clique_of (c))) {
    ovi_backend_set_error (c->be, OVI_ERROR, OVI_ERROR_ABORTED,
                           "rank %d of %d: %s skipped, the parallel group was "
                           "aborted (another rank failed)",
                           c->rank, c->size, op);
    return FALSE;
  }
  return ovi_cuda_use_device (c->be, op);
}

static void
check (OviComm *c, const char *op, ncclResult_t r)
{
  if (r == ncclSuccess)
    return;
  ovi_backend_set_error (c->be, OVI_ERROR, OVI_ERROR_BACKEND,
                         "NCCL %s (rank %d of %d, GPU %d): %s", op, c->rank,
                         c->size, ovi_backend_get_device (c->be).index,
                         ncclGetErrorString (r));
  nccl_abort (c);
}

static cudaStream_t
stream_of (OviComm *c)
{
  return ovi_cuda_priv (c->be)->stream;
}

static ncclComm_t
comm_of (OviComm *c)
{
  return clique_of (c)->comms[c->rank];
}

/* send/recv pairs in one group: chunk p of send to rank p, chunk q of recv
 * from rank q */
static void
nccl_all_to_all (OviComm *c, OviTensor *recv, const OviTensor *send)
{
  size_t chunk = ovi_tensor_nbytes (send) / c->size;
  const char *s = ovi_tensor_data ((OviTensor *) send);
  char *d = ovi_tensor_data (recv);
  ncclResult_t r;

  if (!ready (c, "all-to-all"))
    return;
  r = ncclGroupStart ();
  for (int p = 0; p < c->size && r == ncclSuccess; p++) {
    r = ncclSend (s + p * chunk, chunk, ncclUint8, p, comm_of (c),
                  stream_of (c));
    if (r == ncclSuccess)
      r = ncclRecv (d + p * chunk, chunk, ncclUint8, p, comm_of (c),
                    stream_of (c));
  }
  /* a group once started must end, whatever failed inside it */
  ncclResult_t end = ncclGroupEnd ();
  check (c, "all-to-all", r != ncclSuccess ? r : end);
}

static void
nccl_all_gather (OviComm *c, OviTensor *recv, const OviTensor *send)
{
  if (ready (c, "all-gather"))
    check (c, "all-gather",
           ncclAllGather (ovi_tensor_data ((OviTensor *) send),
                          ovi_tensor_data (recv), ovi_tensor_nbytes (send),
                          ncclUint8, comm_of (c), stream_of (c)));
}

static void
nccl_broadcast (OviComm *c, OviTensor *buf, int root)
{
  if (ready (c, "broadcast"))
    check (c, "broadcast",
           ncclBroadcast (ovi_tensor_data (buf), ovi_tensor_data (buf),
                          ovi_tensor_nbytes (buf), ncclUint8, root,
                          comm_of (c), stream_of (c)));
}

static void
nccl_free (OviComm *c)
{
  clique_unref (clique_of (c));
  g_free (c);
}

static const OviCommOps nccl_ops = {
  .name = "nccl",
  .all_to_all = nccl_all_to_all,
  .all_gather = nccl_all_gather,
  .broadcast = nccl_broadcast,
  .abort = nccl_abort,
  .aborted = nccl_aborted,
  .free = nccl_free,
};

/* CUDA backends of this module, each on its own GPU */
static gboolean
check_backends (int size, OviBackend **backends, int *devices, GError **error)
{
  for (int r = 0; r < size; r++) {
    OviDevice dev = ovi_backend_get_device (backends[r]);
    const char *name = ovi_backend_get_name (backends[r]);

    if (dev.type != OVI_DEVICE_CUDA || !g_str_has_prefix (name, "cuda")) {
      g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                   "NCCL group: rank %d has a %s backend, not a CUDA one", r,
                   name);
      return FALSE;
    }
    devices[r] = dev.index;
    for (int q = 0; q < r; q++)
      if (devices[q] == devices[r]) {
        g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                     "NCCL group: ranks %d and %d are both on GPU %d (one "
                     "rank per GPU)",
                     q, r, devices[r]);
        return FALSE;
      }
  }
  return TRUE;
}

OviComm **
ovi_nccl_group_new (int size, OviBackend **backends, GError **error)
{
  g_autofree int *devices = g_new0 (int, size);
  Clique *q;
  OviComm **comms;
  ncclResult_t r;

  if (size < 1 || !check_backends (size, backends, devices, error))
    return NULL;
  q = g_new0 (Clique, 1);
  q->size = size;
  q->comms = g_new0 (ncclComm_t, size);
  g_mutex_init (&q->lock);
  r = ncclCommInitAll (q->comms, size, devices);
  if (r != ncclSuccess) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND,
                 "NCCL over %d GPUs: ncclCommInitAll failed: %s", size,
                 ncclGetErrorString (r));
    g_mutex_clear (&q->lock);
    g_free (q->comms);
    g_free (q);
    return NULL;
  }
  q->ref_count = size;
  comms = g_new0 (OviComm *, size);
  for (int i = 0; i < size; i++) {
    comms[i] = g_new0 (OviComm, 1);
    *comms[i] = (OviComm){ .ops = &nccl_ops,
                           .rank = i,
                           .size = size,
                           .be = backends[i],
                           .priv = q };
  }
  return comms;
}
