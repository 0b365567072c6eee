/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: communicators, the only thing model code sees of multi-rank runs.
 *
 * A group of N ranks runs one model together; each rank has its own backend
 * (a CPU backend per thread, or one CUDA backend per GPU) and its own
 * OviComm. Every collective must be called by all ranks of the group in the
 * same order with tensors of the same size; tensors are contiguous, on the
 * rank's backend, in one dtype. Collectives are ordered with the rank's
 * other ops (the CPU ones run when called, NCCL's are enqueued on the
 * backend's stream): nothing waits on the host in between.
 *
 * Failure never hangs the others: a collective called while the rank's
 * backend holds an error, or a call to ovi_comm_abort() (ovi_ranks_run does
 * it when a rank fails), aborts the whole group; every later collective of
 * any rank of the group is skipped and records OVI_ERROR_ABORTED on its
 * backend, which the rank's next ovi_backend_sync() reports.
 *
 * Two implementations: in-process CPU ranks (threads, this file's
 * ovi_comm_cpu_group_new) and NCCL (one process, one thread and stream per
 * GPU, ncclCommInitAll; in the CUDA module, ovi_comm_nccl_group_new). */
#pragma once

#include "ovi-backend.h"

G_BEGIN_DECLS

typedef struct _OviComm OviComm;

typedef struct {
  const char *name;
  /* recv chunk q = chunk `rank` of rank q's send (size equal chunks) */
  void (*all_to_all) (OviComm *c, OviTensor *recv, const OviTensor *send);
  /* recv chunk q = rank q's send */
  void (*all_gather) (OviComm *c, OviTensor *recv, const OviTensor *send);
  /* buf = root's buf */
  void (*broadcast) (OviComm *c, OviTensor *buf, int root);
  /* thread-safe, idempotent; wakes every rank waiting in a collective */
  void (*abort) (OviComm *c);
  gboolean (*aborted) (OviComm *c);
  void (*free) (OviComm *c);
} OviCommOps;

struct _OviComm {
  const OviCommOps *ops;
  int rank;
  int size;
  OviBackend *be; /* the rank's backend (not owned) */
  gpointer priv;
};

/* N communicators of one in-process group, comm[r] for rank r whose
 * backend is backends[r] (CPU backends, each used by one thread). Free each
 * with ovi_comm_free and the array with g_free. */
OviComm **ovi_comm_cpu_group_new (int size, OviBackend **backends);

/* The same over NCCL: backends[r] are CUDA backends on distinct GPUs; the
 * collectives run on their streams. Loads the CUDA module; fails with
 * OVI_ERROR_BACKEND when it was built without NCCL. */
OviComm **ovi_comm_nccl_group_new (int size, OviBackend **backends,
                                   GError **error);

void ovi_comm_free (OviComm *c);
void ovi_comm_abort (OviComm *c);
gboolean ovi_comm_aborted (OviComm *c);

/* Checked wrappers (shapes, dtypes, devices; a mismatch aborts the group
 * and is recorded on the rank's backend). */
void ovi_comm_all_to_all (OviComm *c, OviTensor *recv, const OviTensor *send);
void ovi_comm_all_gather (OviComm *c, OviTensor *recv, const OviTensor *send);
void ovi_comm_broadcast (OviComm *c, OviTensor *buf, int root);
/* *out = rank 0's `flag` on every rank (waits for it on the host); FALSE
 * with `error` when the group failed */
gboolean ovi_comm_root_flag (OviComm *c, gboolean flag, gboolean *out,
                             GError **error);

/* Ulysses sequence parallel, for `batch` branches of n_loc tokens by H heads
 * on each of the P ranks (H % P == 0, D = H * head_dim), branches stacked
 * along the rows:
 *   seq_to_heads: local [batch * n_loc, D] -> full [batch * P * n_loc, D / P]
 *     (per branch every rank's tokens in rank order, this rank's heads
 *     r*H/P .. (r+1)*H/P - 1);
 *   heads_to_seq: the inverse.
 * `scratch` is a 1-D act tensor of at least 2 * batch * n_loc * D
 * elements. */
void ovi_comm_seq_to_heads (OviComm *c, OviTensor *full, OviTensor *local,
                            int batch, OviTensor *scratch);
void ovi_comm_heads_to_seq (OviComm *c, OviTensor *local, OviTensor *full,
                            int batch, OviTensor *scratch);

G_END_DECLS
