/* gst-ovi: the denoiser over several ranks (see ovi-denoiser-parallel.h). */
#include "ovi-denoiser-parallel.h"
#include "ovi-ranks.h"

#include <string.h>

struct _OviParallelDenoiser {
  int n;
  OviParallelLayout layout;
  OviBackend **be;
  OviDenoiser **d;
  /* comms[g][w]: g = 0 world, 1 SP, 2 CFG; NULL where unused */
  OviComm **comms[3];
  const OviModelPaths *paths;
  GMutex lock; /* one run at a time: the ranks' collectives must pair up */
};

enum { WORLD, SP, CFG };

int
ovi_parallel_layout_ranks (const OviParallelLayout *layout)
{
  return MAX (layout->sp, 1) * (layout->cfg_parallel ? 2 : 1);
}

/* one communicator group over the ranks `members[0..size)` */
static gboolean
make_group (OviParallelDenoiser *pd, int kind, const int *members, int size,
            GError **error)
{
  g_autofree OviBackend **be = g_new0 (OviBackend *, size);
  OviComm **group;

  for (int i = 0; i < size; i++)
    be[i] = pd->be[members[i]];
  if (ovi_backend_get_device (pd->be[0]).type == OVI_DEVICE_CPU)
    group = ovi_comm_cpu_group_new (size, be);
  else
    group = ovi_comm_nccl_group_new (size, be, error);
  if (group == NULL)
    return FALSE;
  for (int i = 0; i < size; i++)
    pd->comms[kind][members[i]] = group[i];
  g_free (group);
  return TRUE;
}

static void
free_comms (OviParallelDenoiser *pd)
{
  for (int k = 0; k < 3; k++) {
    for (int w = 0; pd->comms[k] && w < pd->n; w++)
      g_clear_pointer (&pd->comms[k][w], ovi_comm_free);
    g_clear_pointer (&pd->comms[k], g_free);
  }
}

static void
hand_out_comms (OviParallelDenoiser *pd)
{
  for (int w = 0; w < pd->n; w++) {
    OviDenoiserComms comms
        = { pd->comms[WORLD][w], pd->comms[SP][w], pd->comms[CFG][w] };
    if (pd->d[w])
      ovi_denoiser_set_comms (pd->d[w], &comms);
  }
}

static gboolean
make_comms (OviParallelDenoiser *pd, GError **error)
{
  int sp = MAX (pd->layout.sp, 1), groups = pd->n / sp;
  g_autofree int *members = g_new0 (int, pd->n);

  free_comms (pd);
  for (int k = 0; k < 3; k++)
    pd->comms[k] = g_new0 (OviComm *, pd->n);
  for (int w = 0; w < pd->n; w++)
    members[w] = w;
  if (pd->n > 1 && !make_group (pd, WORLD, members, pd->n, error))
    return FALSE;
  for (int c = 0; sp > 1 && c < groups; c++)
    if (!make_group (pd, SP, members + c * sp, sp, error))
      return FALSE;
  for (int s = 0; groups == 2 && s < sp; s++) {
    int pair[2] = { s, sp + s };
    if (!make_group (pd, CFG, pair, 2, error))
      return FALSE;
  }
  return TRUE;
}

static gboolean
load_rank (int w, gpointer data, GError **error)
{
  OviParallelDenoiser *pd = data;
  OviDenoiserComms comms
      = { pd->comms[WORLD][w], pd->comms[SP][w], pd->comms[CFG][w] };

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
      || !make_comms (pd, error)
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
} Run;

static gboolean
run_rank (int w, gpointer data, GError **error)
{
  Run *run = data;
  g_autoptr (OviTensor) video = NULL, audio = NULL;

  /* rank 0 alone reports steps and decides cancellation (per step, for all
   * ranks) */
  if (!ovi_denoiser_run (run->pd->d[w], run->req, w == 0 ? run->on_step : NULL,
                         run->user_data, w == 0 ? run->cancellable : NULL,
                         &video, &audio, error))
    return FALSE;
  if (w == 0) {
    run->video = g_steal_pointer (&video);
    run->audio = g_steal_pointer (&audio);
  }
  return TRUE;
}

static gboolean
broken (OviParallelDenoiser *pd)
{
  for (int k = 0; k < 3; k++)
    for (int w = 0; w < pd->n; w++)
      if (pd->comms[k][w] && ovi_comm_aborted (pd->comms[k][w]))
        return TRUE;
  return FALSE;
}

gboolean
ovi_parallel_denoiser_run (OviParallelDenoiser *pd,
                           const OviDenoiseRequest *req, OviStepFunc on_step,
                           gpointer user_data, GCancellable *cancellable,
                           OviTensor **video_latent, OviTensor **audio_latent,
                           GError **error)
{
  Run run = { pd, req, on_step, user_data, cancellable };
  g_autofree OviComm **all = g_new0 (OviComm *, 3 * pd->n);
  g_autoptr (GMutexLocker) locker = g_mutex_locker_new (&pd->lock);

  /* a failed run leaves its groups aborted: new ones for this run */
  if (broken (pd)) {
    if (!make_comms (pd, error))
      return FALSE;
    hand_out_comms (pd);
  }
  for (int k = 0; k < 3; k++)
    memcpy (all + k * pd->n, pd->comms[k], sizeof (OviComm *) * pd->n);
  if (!ovi_ranks_run (pd->n, run_rank, &run, all, 3 * pd->n, error)) {
    g_clear_pointer (&run.video, ovi_tensor_unref);
    g_clear_pointer (&run.audio, ovi_tensor_unref);
    return FALSE;
  }
  *video_latent = run.video;
  *audio_latent = run.audio;
  return TRUE;
}

void
ovi_parallel_denoiser_free (OviParallelDenoiser *pd)
{
  if (pd == NULL)
    return;
  for (int w = 0; w < pd->n; w++)
    g_clear_pointer (&pd->d[w], ovi_denoiser_free);
  free_comms (pd);
  g_mutex_clear (&pd->lock);
  for (int w = 0; w < pd->n; w++)
    g_clear_pointer (&pd->be[w], ovi_backend_free);
  g_free (pd->be);
  g_free (pd->d);
  g_free (pd);
}
