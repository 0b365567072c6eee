/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the denoiser over several ranks (GPUs, or CPU threads for tests
 * and CPU runs).
 *
 * Layouts (OviParallelLayout): `sp` ranks share each branch's tokens
 * (Ulysses sequence parallelism, ovi_fusion_work_new_parallel);
 * `cfg_parallel` runs the positive and the negative (skip-layer) branch of
 * every step on two groups of ranks at once and exchanges the predictions,
 * after which every rank steps its own schedulers. Ranks: sp x (cfg ? 2 : 1),
 * rank w = c * sp + s for CFG group c and SP rank s. Every rank holds the
 * whole model and runs the whole loop on its own latents; rank 0's result
 * is returned, and rank 0 alone reports steps and decides cancellation. */
#pragma once

#include "ovi-comm.h"
#include "ovi-engine.h"
#include "ovi-fusion.h"
#include "ovi-placement.h"
#include "ovi-presets.h"
#include "ovi-gpu-manager.h"

G_BEGIN_DECLS

/* the communicators of one rank (each NULL when not used) */
typedef struct {
  OviComm *world; /* every rank: rank 0's cancellation decision */
  OviComm *sp;    /* the ranks that share one branch's tokens */
  OviComm *cfg;   /* the two ranks of the two branches (CFG rank 0: pos) */
  OviComm *shard; /* the ranks that pool their block weights */
} OviDenoiserComms;

typedef struct _OviParallelDenoiser OviParallelDenoiser;

/* makes `d` one rank of a parallel denoiser (before its first run) */
void ovi_denoiser_set_comms (OviDenoiser *d, const OviDenoiserComms *comms);
/* makes `d` (rank 0) the front of `group`: ovi_denoiser_run (d) runs every
 * rank */
void ovi_denoiser_set_group (OviDenoiser *d, OviParallelDenoiser *group);
/* ovi_denoiser_set_loras in two halves, so that a parallel denoiser
 * changes every rank's set or none: the rank's set made (*made NULL for
 * an empty list), then installed (taking `made`) */
gboolean ovi_denoiser_make_loras (OviDenoiser *d, const GPtrArray *loras,
                                  OviFusionLora **made, GError **error);
void ovi_denoiser_install_loras (OviDenoiser *d, OviFusionLora *made);
/* ovi_denoiser_run on this rank alone */
gboolean ovi_denoiser_run_rank (OviDenoiser *d, const OviDenoiseRequest *req,
                                OviStepFunc on_step, gpointer user_data,
                                GCancellable *cancellable,
                                OviTensor **video_latent,
                                OviTensor **audio_latent, GError **error);

typedef struct {
  int sp;                /* >= 1 */
  gboolean cfg_parallel; /* two branch groups */
  /* > 1: the block weights split over this many ranks (sp 1: ranks of
   * their own; else the SP group, shard == sp) */
  int shard;
} OviParallelLayout;

/* max (sp, shard) x (cfg_parallel ? 2 : 1) */
int ovi_parallel_layout_ranks (const OviParallelLayout *layout);

/* The layout of a multi-GPU gpu-allocation (sp2/sp4/sp8, cfg-parallel;
 * sharded: weights and tokens split over the `n_gpus` GPUs) for a model
 * with `heads` attention heads (0: not checked); FALSE with an error when
 * the heads do not allow it. */
gboolean ovi_parallel_layout_for (OviGpuAllocation alloc, int heads, int n_gpus,
                                  OviParallelLayout *layout, GError **error);
/* gpu-allocation=auto with `n_gpus` GPUs: the layout the cost model of
 * docs/multi-gpu.md predicts fastest (sp x cfg ranks, at most n_gpus;
 * single when one GPU) */
void ovi_parallel_layout_auto (int n_gpus, int heads,
                               OviParallelLayout *layout);
/* The GPUs `n` ranks run on: the first n of `cuda_devices` ("0,1,2,3";
 * NULL or "": every GPU of the report), checked against the report. The
 * error names what was found: "sp8 needs 8 GPUs, found 2 (0: H100 80 GB,
 * 1: H100 80 GB)". */
int *ovi_parallel_pick_devices (const OviGpuReport *report,
                                const char *cuda_devices, int n,
                                const char *what, GError **error);

/* One denoiser per backend (backends[w] for rank w, taken over: freed with
 * the parallel denoiser, also when this fails), n_backends ==
 * ovi_parallel_layout_ranks (layout);
 * CPU backends talk through the in-process communicator, CUDA ones through
 * NCCL. The models load on all ranks at once. */
OviParallelDenoiser *ovi_parallel_denoiser_new (const OviModelPaths *paths,
                                                OviBackend **backends,
                                                int n_backends,
                                                const OviParallelLayout *layout,
                                                GError **error);
/* As ovi_parallel_denoiser_new, each rank placing its weights by `plan`
 * (nullable; ovi_placement_new on its backend, ovi_placement_weight_filter)
 * and merging `loras` (nullable, ovi_denoiser_new_with_loras). */
OviParallelDenoiser *ovi_parallel_denoiser_new_placed (
    const OviModelPaths *paths, OviBackend **backends, int n_backends,
    const OviParallelLayout *layout, const OviPlacementPlan *plan,
    const GPtrArray *loras, GError **error);
/* rank 0's denoiser, the front whose ovi_denoiser_run runs every rank
 * (transfer none) */
OviDenoiser *ovi_parallel_denoiser_get_front (OviParallelDenoiser *pd);
/* As ovi_denoiser_run on every rank at once (see above). */
gboolean ovi_parallel_denoiser_run (OviParallelDenoiser *pd,
                                    const OviDenoiseRequest *req,
                                    OviStepFunc on_step, gpointer user_data,
                                    GCancellable *cancellable,
                                    OviTensor **video_latent,
                                    OviTensor **audio_latent, GError **error);
/* As ovi_denoiser_set_loras on every rank: each makes its own set (on its
 * weights, a shard's when sharded), then all install them, or none when
 * a rank fails. Waits for a run in progress, so a run sees one set on
 * every rank. */
gboolean ovi_parallel_denoiser_set_loras (OviParallelDenoiser *pd,
                                          const GPtrArray *loras,
                                          GError **error);
void ovi_parallel_denoiser_free (OviParallelDenoiser *pd);

/* ---- for stage loading (ovi-stage.c) ---- */

/* The ranks of the denoise stage for gpu-allocation `alloc`: *ranks 1 for
 * single (and auto on fewer than 2 GPUs); else the layout and *devices
 * (NULL: CPU ranks, when `backend` is "cpu" or $OVI_PARALLEL_CPU_RANKS=1 on
 * a machine without GPUs). Errors name what was found. */
gboolean ovi_parallel_plan (OviGpuAllocation alloc, const char *backend,
                            const char *cuda_devices, int heads,
                            OviParallelLayout *layout, int *ranks,
                            int **devices, GError **error);
/* "cuda:0,1 (sp2)", "cpu x4 (sp2 x cfg-parallel)" */
char *ovi_parallel_ranks_name (const char *backend_name, int ranks,
                               const int *devices,
                               const OviParallelLayout *layout);
/* opens the ranks' backends (devices NULL: CPU threads, n_threads split
 * over them) and loads the parallel denoiser placed by `plan`, `loras`
 * merged */
OviParallelDenoiser *ovi_parallel_denoiser_load (
    const OviModelPaths *paths, const OviPlacementPlan *plan,
    const GPtrArray *loras, const OviParallelLayout *layout, int ranks,
    const int *devices, const char *backend_name, int n_threads,
    GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviParallelDenoiser, ovi_parallel_denoiser_free)

G_END_DECLS
