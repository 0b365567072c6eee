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

G_END_DECLS
