/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: one thread per rank (see ovi-ranks.h). */
#include "ovi-ranks.h"

#include <string.h>

typedef struct {
  int n;
  OviRankFunc func;
  gpointer data;
  OviComm *const *comms;
  int n_comms;
  GError **errors; /* [n] */
} Run;

typedef struct {
  Run *run;
  int rank;
} RankArgs;

static void
run_rank (Run *run, int rank)
{
  if (run->func (rank, run->data, &run->errors[rank]))
    return;
  if (run->errors[rank] == NULL)
    g_set_error (&run->errors[rank], OVI_ERROR, OVI_ERROR_FAILED,
                 "failed without a message");
  for (int i = 0; i < run->n_comms; i++)
    if (run->comms[i])
      ovi_comm_abort (run->comms[i]);
}

static gpointer
rank_thread (gpointer data)
{
  RankArgs *a = data;
  run_rank (a->run, a->rank);
  return NULL;
}

/* the first error not caused by another rank's abort, else the first */
static int
root_cause (Run *run)
{
  int first = -1;

  for (int r = 0; r < run->n; r++) {
    if (run->errors[r] == NULL)
      continue;
    if (!g_error_matches (run->errors[r], OVI_ERROR, OVI_ERROR_ABORTED))
      return r;
    if (first < 0)
      first = r;
  }
  return first;
}

gboolean
ovi_ranks_run (int n, OviRankFunc func, gpointer data, OviComm *const *comms,
               int n_comms, GError **error)
{
  Run run = { n, func, data, comms, n_comms, g_new0 (GError *, n) };
  GThread **threads = g_new0 (GThread *, n);
  RankArgs *args = g_new0 (RankArgs, n);
  int cause;

  for (int r = 1; r < n; r++) {
    g_autofree char *name = g_strdup_printf ("ovi-rank-%d", r);
    args[r] = (RankArgs){ &run, r };
    threads[r] = g_thread_new (name, rank_thread, &args[r]);
  }
  run_rank (&run, 0);
  for (int r = 1; r < n; r++)
    g_thread_join (threads[r]);
  cause = root_cause (&run);
  if (cause >= 0 && n > 1)
    g_propagate_prefixed_error (error, g_steal_pointer (&run.errors[cause]),
                                "rank %d of %d: ", cause, n);
  else if (cause >= 0)
    g_propagate_error (error, g_steal_pointer (&run.errors[cause]));
  for (int r = 0; r < n; r++)
    g_clear_error (&run.errors[r]);
  g_free (run.errors);
  g_free (threads);
  g_free (args);
  return cause < 0;
}

/* ---- groups ---- */

/* one group over the ranks members[0..size), into comms[members[i]] */
static gboolean
make_group (OviBackend **backends, const int *members, int size,
            OviComm **comms, GError **error)
{
  g_autofree OviBackend **be = g_new0 (OviBackend *, size);
  OviComm **group;

  if (size < 2)
    return TRUE;
  for (int i = 0; i < size; i++)
    be[i] = backends[members[i]];
  if (ovi_backend_get_device (be[0]).type == OVI_DEVICE_CPU)
    group = ovi_comm_cpu_group_new (size, be);
  else
    group = ovi_comm_nccl_group_new (size, be, error);
  if (group == NULL)
    return FALSE;
  for (int i = 0; i < size; i++)
    comms[members[i]] = group[i];
  g_free (group);
  return TRUE;
}

OviRankGroups *
ovi_rank_groups_new (OviBackend **backends, int sp, int cfg, GError **error)
{
  g_autoptr (OviRankGroups) g = g_new0 (OviRankGroups, 1);
  g_autofree int *members = NULL;

  g->sp = MAX (sp, 1);
  g->cfg = MAX (cfg, 1);
  g->n = g->sp * g->cfg;
  g->world = g_new0 (OviComm *, g->n);
  g->sp_comm = g_new0 (OviComm *, g->n);
  g->cfg_comm = g_new0 (OviComm *, g->n);
  members = g_new0 (int, g->n);
  for (int w = 0; w < g->n; w++)
    members[w] = w;
  if (!make_group (backends, members, g->n, g->world, error))
    return NULL;
  for (int c = 0; c < g->cfg; c++)
    if (!make_group (backends, members + c * g->sp, g->sp, g->sp_comm, error))
      return NULL;
  for (int s = 0; s < g->sp; s++) {
    int across[2] = { s, g->sp + s };
    if (g->cfg == 2 && !make_group (backends, across, 2, g->cfg_comm, error))
      return NULL;
  }
  return g_steal_pointer (&g);
}

void
ovi_rank_groups_free (OviRankGroups *g)
{
  if (g == NULL)
    return;
  for (int w = 0; w < g->n; w++) {
    g_clear_pointer (&g->world[w], ovi_comm_free);
    g_clear_pointer (&g->sp_comm[w], ovi_comm_free);
    g_clear_pointer (&g->cfg_comm[w], ovi_comm_free);
  }
  g_free (g->world);
  g_free (g->sp_comm);
  g_free (g->cfg_comm);
  g_free (g);
}

gboolean
ovi_rank_groups_aborted (OviRankGroups *g)
{
  for (int w = 0; w < g->n; w++)
    if ((g->world[w] && ovi_comm_aborted (g->world[w]))
        || (g->sp_comm[w] && ovi_comm_aborted (g->sp_comm[w]))
        || (g->cfg_comm[w] && ovi_comm_aborted (g->cfg_comm[w])))
      return TRUE;
  return FALSE;
}

gboolean
ovi_rank_groups_run (OviRankGroups *g, OviRankFunc func, gpointer data,
                     GError **error)
{
  g_autofree OviComm **all = g_new0 (OviComm *, 3 * g->n);

  memcpy (all, g->world, sizeof (OviComm *) * g->n);
  memcpy (all + g->n, g->sp_comm, sizeof (OviComm *) * g->n);
  memcpy (all + 2 * g->n, g->cfg_comm, sizeof (OviComm *) * g->n);
  return ovi_ranks_run (g->n, func, data, all, 3 * g->n, error);
}
