/* gst-ovi: the denoiser over several ranks (see ovi-denoiser-parallel.h). */
#include "ovi-denoiser-parallel.h"
#include "ovi-ranks.h"

struct _OviParallelDenoiser {
  int n;
  OviParallelLayout layout;
  OviBackend **be;
  OviDenoiser **d;
  OviRankGroups *groups;
  const OviModelPaths *paths;
  GMutex lock; /* one run at a time: the ranks' collectives must pair up */
};

int
ovi_parallel_layout_ranks (const OviParallelLayout *layout)
{
  return MAX (layout->sp, 1) * (layout->cfg_parallel ? 2 : 1);
}

static OviDenoiserComms
comms_of (OviParallelDenoiser *pd, int w)
{
  OviRankGroups *g = pd->groups;
  return (OviDenoiserComms){ g->world[w], g->sp_comm[w], g->cfg_comm[w] };
}

static gboolean
make_groups (OviParallelDenoiser *pd, GError **error)
{
  g_clear_pointer (&pd->groups, ovi_rank_groups_free);
  pd->groups = ovi_rank_groups_new (pd->be, pd->layout.sp,
                                    pd->layout.cfg_parallel ? 2 : 1, error);
  if (pd->groups == NULL)
    return FALSE;
  for (int w = 0; w < pd->n; w++) {
    OviDenoiserComms comms = comms_of (pd, w);
    if (pd->d[w])
      ovi_denoiser_set_comms (pd->d[w], &comms);
  }
  return TRUE;
}

static gboolean
load_rank (int w, gpointer data, GError **error)
{
  OviParallelDenoiser *pd = data;
  OviDenoiserComms comms = comms_of (pd, w);

  pd->d[w] = ovi_denoiser_new (pd->paths, pd->be[w], error);
  if (pd->d[w] == NULL)
    return FALSE;
  ovi_denoiser_set_comms (pd->d[w], &comms);
  return TRUE;
}

static gboolean
check_layout (const OviModelPaths *paths, int n,
              const OviParallelLayout *layout, GError **error)
{
  int need = ovi_parallel_layout_ranks (layout);

  if (layout->sp < 1 || n != need) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "sequence parallel %d%s needs %d ranks, got %d", layout->sp,
                 layout->cfg_parallel ? " x CFG parallel" : "", need, n);
    return FALSE;
  }
  if (paths->num_heads % layout->sp) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "sequence parallel over %d ranks: the %s fusion DiT has %d "
                 "attention heads, which %d ranks do not divide",
                 layout->sp, paths->variant, paths->num_heads, layout->sp);
    return FALSE;
  }
  return TRUE;
}

OviParallelDenoiser *
ovi_parallel_denoiser_new (const OviModelPaths *paths, OviBackend **backends,
                           int n_backends, const OviParallelLayout *layout,
                           GError **error)
{
  g_autoptr (OviParallelDenoiser) pd = g_new0 (OviParallelDenoiser, 1);

  pd->n = n_backends;
  pd->layout = *layout;
  pd->be = g_memdup2 (backends, sizeof (OviBackend *) * n_backends);
  pd->d = g_new0 (OviDenoiser *, n_backends);
  pd->paths = paths;
  g_mutex_init (&pd->lock);
  if (!check_layout (paths, n_backends, layout, error)
      || !make_groups (pd, error)
      || !ovi_ranks_run (pd->n, load_rank, pd, NULL, 0, error))
    return NULL;
  pd->paths = NULL;
  return g_steal_pointer (&pd);
}

typedef struct {
  OviParallelDenoiser *pd;
  const OviDenoiseRequest *req;
  OviStepFunc on_step;
  gpointer user_data;
  GCancellable *cancellable;
  OviTensor *video, *audio;
  OviDenoiseStats *stats; /* per rank */
} Run;

static gboolean
run_rank (int w, gpointer data, GError **error)
{
  Run *run = data;
  g_autoptr (OviTensor) video = NULL, audio = NULL;
  OviDenoiseRequest req = *run->req;

  /* each rank counts its own step-cache forwards; rank 0 alone measures a
   * calibration table */
  req.stats = &run->stats[w];
  if (w != 0)
    req.cache_calibration = NULL;
  /* rank 0 alone reports steps and decides cancellation (per step, for all
   * ranks) */
  if (!ovi_denoiser_run (run->pd->d[w], &req, w == 0 ? run->on_step : NULL,
                         run->user_data, w == 0 ? run->cancellable : NULL,
                         &video, &audio, error))
    return FALSE;
  if (w == 0) {
    run->video = g_steal_pointer (&video);
    run->audio = g_steal_pointer (&audio);
  }
  return TRUE;
}

/* the forwards of the whole run: the ranks of a sequence-parallel group
 * count the same ones, the CFG groups different branches */
static void
sum_stats (OviParallelDenoiser *pd, const OviDenoiseStats *ranks,
           OviDenoiseStats *out)
{
  int sp = MAX (pd->layout.sp, 1);

  *out = (OviDenoiseStats){ 0 };
  for (int w = 0; w < pd->n; w += sp) {
    out->forwards_computed += ranks[w].forwards_computed;
    out->forwards_skipped += ranks[w].forwards_skipped;
  }
}

gboolean
ovi_parallel_denoiser_run (OviParallelDenoiser *pd,
                           const OviDenoiseRequest *req, OviStepFunc on_step,
                           gpointer user_data, GCancellable *cancellable,
                           OviTensor **video_latent, OviTensor **audio_latent,
                           GError **error)
{
  g_autofree OviDenoiseStats *stats = g_new0 (OviDenoiseStats, pd->n);
  Run run = { pd, req, on_step, user_data, cancellable, .stats = stats };
  g_autoptr (GMutexLocker) locker = g_mutex_locker_new (&pd->lock);

  /* a failed run leaves its groups aborted: new ones for this run */
  if (ovi_rank_groups_aborted (pd->groups) && !make_groups (pd, error))
    return FALSE;
  if (!ovi_rank_groups_run (pd->groups, run_rank, &run, error)) {
    g_clear_pointer (&run.video, ovi_tensor_unref);
    g_clear_pointer (&run.audio, ovi_tensor_unref);
    return FALSE;
  }
  *video_latent = run.video;
  *audio_latent = run.audio;
  if (req->stats)
    sum_stats (pd, stats, req->stats);
  return TRUE;
}

void
ovi_parallel_denoiser_free (OviParallelDenoiser *pd)
{
  if (pd == NULL)
    return;
  for (int w = 0; w < pd->n; w++)
    g_clear_pointer (&pd->d[w], ovi_denoiser_free);
  g_clear_pointer (&pd->groups, ovi_rank_groups_free);
  g_mutex_clear (&pd->lock);
  for (int w = 0; w < pd->n; w++)
    g_clear_pointer (&pd->be[w], ovi_backend_free);
  g_free (pd->be);
  g_free (pd->d);
  g_free (pd);
}
