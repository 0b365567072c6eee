/* gst-ovi: one thread per rank (see ovi-ranks.h). */
#include "ovi-ranks.h"

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
