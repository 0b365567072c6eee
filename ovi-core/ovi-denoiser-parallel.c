/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the denoiser over several ranks (see ovi-denoiser-parallel.h). */
#include "ovi-denoiser-parallel.h"
#include "ovi-fusion.h"
#include "ovi-ranks.h"

struct _OviParallelDenoiser {
  int n;
  OviParallelLayout layout;
  OviBackend **be;
  OviDenoiser **d;
  OviRankGroups *groups;
  OviPlacement **placement; /* [n], NULL without a plan */
  const OviPlacementPlan *plan;
  const GPtrArray *loras; /* merged at load on every rank, or NULL */
  const OviModelPaths *paths;
  GMutex lock; /* one run at a time: the ranks' collectives must pair up */
};

/* the ranks of one CFG group: SP and weight shards share them */
static int
group_size (const OviParallelLayout *layout)
{
  return MAX (MAX (layout->sp, 1), layout->shard);
}

int
ovi_parallel_layout_ranks (const OviParallelLayout *layout)
{
  return group_size (layout) * (layout->cfg_parallel ? 2 : 1);
}

static OviDenoiserComms
comms_of (OviParallelDenoiser *pd, int w)
{
  OviRankGroups *g = pd->groups;
  gboolean sp = pd->layout.sp > 1, shard = pd->layout.shard > 1;

  return (OviDenoiserComms){ g->world[w], sp ? g->sp_comm[w] : NULL,
                             g->cfg_comm[w], shard ? g->sp_comm[w] : NULL };
}

static gboolean
make_groups (OviParallelDenoiser *pd, GError **error)
{
  g_clear_pointer (&pd->groups, ovi_rank_groups_free);
  pd->groups = ovi_rank_groups_new (pd->be, group_size (&pd->layout),
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

  OviFusionShardFilter shard
      = { w % group_size (&pd->layout), MAX (pd->layout.shard, 1), NULL, NULL };

  if (pd->plan) {
    pd->placement[w] = ovi_placement_new (pd->plan, pd->be[w]);
    shard.inner = ovi_placement_weight_filter;
    shard.inner_data = pd->placement[w];
  }
  if (shard.size > 1 && pd->loras && pd->loras->len) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "LoRAs merged at load and sharded weights do not go "
                 "together; apply the LoRAs live (ovi_denoiser_set_loras)");
    return FALSE;
  }
  pd->d[w] = ovi_denoiser_new_with_loras (
      pd->paths, pd->be[w], ovi_fusion_shard_filter, &shard, pd->loras, error);
  if (pd->d[w] == NULL)
    return FALSE;
  /* the streamed modes leave the blocks in host memory for the streamer */
  if (pd->placement[w])
    ovi_placement_attach_denoiser (pd->placement[w], pd->d[w]);
  ovi_denoiser_set_comms (pd->d[w], &comms);
  return TRUE;
}

static gboolean
check_layout (const OviModelPaths *paths, int n,
              const OviParallelLayout *layout, GError **error)
{
  int need = ovi_parallel_layout_ranks (layout);

  if (layout->shard > 1 && layout->sp > 1 && layout->shard != layout->sp) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "weights sharded over %d ranks with sequence parallel %d: "
                 "the shards are the SP group, give the same count",
                 layout->shard, layout->sp);
    return FALSE;
  }
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
  return ovi_parallel_denoiser_new_placed (paths, backends, n_backends, layout,
                                           NULL, NULL, error);
}

OviParallelDenoiser *
ovi_parallel_denoiser_new_placed (const OviModelPaths *paths,
                                  OviBackend **backends, int n_backends,
                                  const OviParallelLayout *layout,
                                  const OviPlacementPlan *plan,
                                  const GPtrArray *loras, GError **error)
{
  g_autoptr (OviParallelDenoiser) pd = g_new0 (OviParallelDenoiser, 1);

  pd->n = n_backends;
  pd->layout = *layout;
  pd->be = g_memdup2 (backends, sizeof (OviBackend *) * n_backends);
  pd->d = g_new0 (OviDenoiser *, n_backends);
  pd->placement = g_new0 (OviPlacement *, n_backends);
  pd->paths = paths;
  pd->plan = plan;
  pd->loras = loras;
  g_mutex_init (&pd->lock);
  if (!check_layout (paths, n_backends, layout, error)
      || !make_groups (pd, error)
      || !ovi_ranks_run (pd->n, load_rank, pd, NULL, 0, error))
    return NULL;
  pd->paths = NULL;
  pd->plan = NULL;
  pd->loras = NULL;
  ovi_denoiser_set_group (pd->d[0], pd);
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
  if (!ovi_denoiser_run_rank (run->pd->d[w], &req, w == 0 ? run->on_step : NULL,
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
  int sp = group_size (&pd->layout);

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
  g_autoptr (GMutexLocker) locker G_GNUC_UNUSED
      = g_mutex_locker_new (&pd->lock);

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

typedef struct {
  OviParallelDenoiser *pd;
  const GPtrArray *loras;
  OviFusionLora **made; /* [n] */
} MakeLoras;

static gboolean
make_rank_loras (int w, gpointer data, GError **error)
{
  MakeLoras *m = data;

  return ovi_denoiser_make_loras (m->pd->d[w], m->loras, &m->made[w], error);
}

gboolean
ovi_parallel_denoiser_set_loras (OviParallelDenoiser *pd,
                                 const GPtrArray *loras, GError **error)
{
  g_autofree OviFusionLora **made = g_new0 (OviFusionLora *, pd->n);
  MakeLoras m = { pd, loras, made };
  g_autoptr (GMutexLocker) locker G_GNUC_UNUSED
      = g_mutex_locker_new (&pd->lock);

  if (!ovi_ranks_run (pd->n, make_rank_loras, &m, NULL, 0, error)) {
    for (int w = 0; w < pd->n; w++)
      g_clear_pointer (&made[w], ovi_fusion_lora_unref);
    return FALSE;
  }
  for (int w = 0; w < pd->n; w++)
    ovi_denoiser_install_loras (pd->d[w], made[w]);
  return TRUE;
}

void
ovi_parallel_denoiser_free (OviParallelDenoiser *pd)
{
  if (pd == NULL)
    return;
  for (int w = 0; w < pd->n; w++) {
    g_clear_pointer (&pd->d[w], ovi_denoiser_free);
    /* the weights a placement put on a device go before its backend */
    g_clear_pointer (&pd->placement[w], ovi_placement_free);
  }
  g_free (pd->placement);
  g_clear_pointer (&pd->groups, ovi_rank_groups_free);
  g_mutex_clear (&pd->lock);
  for (int w = 0; w < pd->n; w++)
    g_clear_pointer (&pd->be[w], ovi_backend_free);
  g_free (pd->be);
  g_free (pd->d);
  g_free (pd);
}

OviDenoiser *
ovi_parallel_denoiser_get_front (OviParallelDenoiser *pd)
{
  return pd->d[0];
}

/* ---- layouts and devices ---- */

gboolean
ovi_parallel_layout_for (OviGpuAllocation alloc, int heads, int n_gpus,
                         OviParallelLayout *layout, GError **error)
{
  *layout = (OviParallelLayout){ .sp = 1 };
  switch (alloc) {
    case OVI_GPU_ALLOCATION_SP2:
    case OVI_GPU_ALLOCATION_SP4:
    case OVI_GPU_ALLOCATION_SP8:
      layout->sp = alloc == OVI_GPU_ALLOCATION_SP2   ? 2
                   : alloc == OVI_GPU_ALLOCATION_SP4 ? 4
                                                     : 8;
      break;
    case OVI_GPU_ALLOCATION_CFG_PARALLEL:
      layout->cfg_parallel = TRUE;
      break;
    case OVI_GPU_ALLOCATION_SHARDED:
      /* every GPU given (n_gpus), which also split the tokens */
      layout->sp = layout->shard = MAX (n_gpus, 1);
      break;
    default:
      break;
  }
  if (heads > 0 && heads % layout->sp) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "gpu-allocation=%s: the model has %d attention heads, which "
                 "%d ranks do not divide",
                 ovi_gpu_allocation_to_string (alloc), heads, layout->sp);
    return FALSE;
  }
  return TRUE;
}

/* Predicted step time relative to one GPU (docs/multi-gpu.md): the
 * compute splits over the ranks, each SP rank moves its all-to-all bytes
 * (a fraction `comm` of a step's compute time at SP 2 on NVLink, growing
 * as (P - 1) / P), CFG parallel exchanges only the predictions. */
static double
predicted_time (int sp, int cfg)
{
  const double comm = 0.04;
  double t = 1.0 / (sp * cfg);

  if (sp > 1)
    t += comm * 2.0 * (sp - 1) / sp / (sp * cfg);
  return t;
}

void
ovi_parallel_layout_auto (int n_gpus, int heads, OviParallelLayout *layout)
{
  double best = predicted_time (1, 1);

  *layout = (OviParallelLayout){ .sp = 1 };
  for (int cfg = 1; cfg <= 2; cfg++)
    for (int sp = 1; sp * cfg <= n_gpus && sp <= heads; sp++) {
      double t = predicted_time (sp, cfg);
      if (heads % sp || t >= best)
        continue;
      best = t;
      *layout = (OviParallelLayout){ .sp = sp, .cfg_parallel = cfg == 2 };
    }
}

static char *
describe_gpus (const OviGpuReport *report)
{
  GString *s = g_string_new (NULL);

  for (int i = 0; i < report->probe.n_devices; i++) {
    const OviDeviceInfo *d = &report->probe.devices[i];
    g_string_append_printf (s, "%s%d: %s %.0f GB", i ? ", " : "", d->index,
                            d->name, d->total_bytes / 1073741824.0);
  }
  if (s->len == 0) {
    g_autofree char *why = ovi_gpu_report_reason (report);
    g_string_append (s, why ? why : "no CUDA device");
  }
  return g_string_free (s, FALSE);
}

static gboolean
has_device (const OviGpuReport *report, int index)
{
  for (int i = 0; i < report->probe.n_devices; i++)
    if (report->probe.devices[i].index == index)
      return TRUE;
  return FALSE;
}

int *
ovi_parallel_pick_devices (const OviGpuReport *report, const char *cuda_devices,
                           int n, const char *what, GError **error)
{
  g_autofree int *devices = g_new0 (int, MAX (n, 1));
  g_autofree char *found = describe_gpus (report);
  g_auto (GStrv) list = NULL;
  int have = 0;

  if (cuda_devices && *cuda_devices) {
    list = g_strsplit (cuda_devices, ",", -1);
    for (int i = 0; list[i]; i++) {
      char *end = NULL;
      gint64 v = g_ascii_strtoll (g_strstrip (list[i]), &end, 10);
      if (end == list[i] || *end || v < 0 || !has_device (report, (int) v)) {
        g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                     "cuda-devices \"%s\": there is no GPU \"%s\" (found "
                     "%d: %s)",
                     cuda_devices, list[i], report->probe.n_devices, found);
        return NULL;
      }
      if (have < n)
        devices[have] = (int) v;
      have++;
    }
  } else {
    for (int i = 0; i < report->probe.n_devices; i++) {
      if (have < n)
        devices[have] = report->probe.devices[i].index;
      have++;
    }
  }
  if (have < n) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "%s needs %d GPUs, found %d (%s)%s", what, n, have, found,
                 cuda_devices && *cuda_devices ? " in cuda-devices" : "");
    return NULL;
  }
  return g_steal_pointer (&devices);
}

/* ---- stage loading ---- */

static gboolean
cpu_ranks (const char *backend)
{
  return g_strcmp0 (backend, "cpu") == 0
         || g_strcmp0 (g_getenv ("OVI_PARALLEL_CPU_RANKS"), "1") == 0;
}

gboolean
ovi_parallel_plan (OviGpuAllocation alloc, const char *backend,
                   const char *cuda_devices, int heads,
                   OviParallelLayout *layout, int *ranks, int **devices,
                   GError **error)
{
  g_auto (OviGpuReport) report = { 0 };
  gboolean cpu = cpu_ranks (backend);

  *ranks = 1;
  *devices = NULL;
  *layout = (OviParallelLayout){ .sp = 1 };
  if (alloc == OVI_GPU_ALLOCATION_SINGLE
      || (alloc == OVI_GPU_ALLOCATION_AUTO && cpu))
    return TRUE;
  if (!ovi_gpu_report_probe (&report, error))
    return FALSE;
  /* the GPUs to use; CPU ranks on a machine without GPUs count 2 */
  int n = report.probe.n_devices;
  if (cuda_devices && *cuda_devices) {
    g_auto (GStrv) list = g_strsplit (cuda_devices, ",", -1);
    n = MIN (n, (int) g_strv_length (list));
  }
  if (n == 0 && cpu)
    n = 2;
  if (alloc == OVI_GPU_ALLOCATION_AUTO)
    ovi_parallel_layout_auto (n, heads, layout);
  else if (!ovi_parallel_layout_for (alloc, 0, n, layout, error))
    return FALSE;
  *ranks = ovi_parallel_layout_ranks (layout);
  if (*ranks > 1 && !(cpu && report.probe.n_devices == 0)
      && g_strcmp0 (backend, "cpu") != 0) {
    *devices = ovi_parallel_pick_devices (&report, cuda_devices, *ranks,
                                          ovi_gpu_allocation_to_string (alloc),
                                          error);
    if (*devices == NULL)
      return FALSE;
  }
  /* then whether the model allows the layout */
  return ovi_parallel_layout_for (alloc, heads, n, layout, error);
}

char *
ovi_parallel_ranks_name (const char *backend_name, int ranks,
                         const int *devices, const OviParallelLayout *layout)
{
  GString *s = g_string_new (NULL);

  if (devices == NULL) {
    g_string_append_printf (s, "cpu x%d", ranks);
  } else {
    g_string_append_printf (s, "%s:", backend_name);
    for (int w = 0; w < ranks; w++)
      g_string_append_printf (s, "%s%d", w ? "," : "", devices[w]);
  }
  g_string_append_printf (s, " (sp%d%s%s)", layout->sp,
                          layout->cfg_parallel ? " x cfg-parallel" : "",
                          layout->shard > 1 ? ", weights sharded" : "");
  return g_string_free (s, FALSE);
}

OviParallelDenoiser *
ovi_parallel_denoiser_load (const OviModelPaths *paths,
                            const OviPlacementPlan *plan,
                            const GPtrArray *loras,
                            const OviParallelLayout *layout, int ranks,
                            const int *devices, const char *backend_name,
                            int n_threads, GError **error)
{
  g_autofree OviBackend **be = g_new0 (OviBackend *, ranks);
  int threads = n_threads > 0 ? n_threads : (int) g_get_num_processors ();

  for (int w = 0; w < ranks; w++) {
    be[w] = devices ? ovi_backend_new_by_name (backend_name, devices[w], error)
                    : ovi_backend_new_cpu (MAX (1, threads / ranks));
    if (be[w] == NULL) {
      for (int i = 0; i < w; i++)
        ovi_backend_free (be[i]);
      return NULL;
    }
  }
  /* CPU ranks share host memory: the weights stay where the file maps them */
  return ovi_parallel_denoiser_new_placed (paths, be, ranks, layout,
                                           devices ? plan : NULL, loras, error);
}
