/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: running one function on N ranks, one thread each.
 *
 * Rank 0 runs on the calling thread, ranks 1..N-1 on threads of their own;
 * the call returns when all have returned. A rank that fails aborts the
 * communicators it is given, so the others leave their collectives
 * instead of waiting for it forever (see ovi-comm.h). */
#pragma once

#include "ovi-comm.h"

G_BEGIN_DECLS

typedef gboolean (*OviRankFunc) (int rank, gpointer data, GError **error);

/* Returns FALSE with the error of a rank that failed by itself (an
 * OVI_ERROR_ABORTED one only when no rank did), prefixed with its rank. */
gboolean ovi_ranks_run (int n, OviRankFunc func, gpointer data,
                        OviComm *const *comms, int n_comms, GError **error);

/* The communicators of `n` = sp x cfg ranks (cfg 1 or 2): rank
 * w = c * sp + s is SP rank s of CFG group c. world[w] spans every rank,
 * sp[w] the sp ranks of w's group, cfg[w] the cfg ranks with w's SP rank;
 * a group of one rank is NULL. CPU backends get the in-process
 * communicator, CUDA ones NCCL. */
typedef struct {
  int n, sp, cfg;
  OviComm **world, **sp_comm, **cfg_comm; /* [n] each */
} OviRankGroups;

OviRankGroups *ovi_rank_groups_new (OviBackend **backends, int sp, int cfg,
                                    GError **error);
void ovi_rank_groups_free (OviRankGroups *g);
/* TRUE when a collective of any group was aborted */
gboolean ovi_rank_groups_aborted (OviRankGroups *g);
/* As ovi_ranks_run, aborting every group when a rank fails. */
gboolean ovi_rank_groups_run (OviRankGroups *g, OviRankFunc func, gpointer data,
                              GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviRankGroups, ovi_rank_groups_free)

G_END_DECLS
