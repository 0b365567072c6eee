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

G_BEGIN_DECLS

/* the communicators of one rank (each NULL when not used) */
typedef struct {
  OviComm *world; /* every rank: rank 0's cancellation decision */
  OviComm *sp;    /* the ranks that share one branch's tokens */
  OviComm *cfg;   /* the two ranks of the two branches (CFG rank 0: pos) */
} OviDenoiserComms;

/* makes `d` one rank of a parallel denoiser (before its first run) */
void ovi_denoiser_set_comms (OviDenoiser *d, const OviDenoiserComms *comms);

typedef struct {
  int sp;                /* >= 1 */
  gboolean cfg_parallel; /* two branch groups */
} OviParallelLayout;

/* sp x (cfg_parallel ? 2 : 1) */
int ovi_parallel_layout_ranks (const OviParallelLayout *layout);

typedef struct _OviParallelDenoiser OviParallelDenoiser;

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
/* As ovi_denoiser_run on every rank at once (see above). */
gboolean ovi_parallel_denoiser_run (OviParallelDenoiser *pd,
                                    const OviDenoiseRequest *req,
                                    OviStepFunc on_step, gpointer user_data,
                                    GCancellable *cancellable,
                                    OviTensor **video_latent,
                                    OviTensor **audio_latent, GError **error);
void ovi_parallel_denoiser_free (OviParallelDenoiser *pd);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviParallelDenoiser, ovi_parallel_denoiser_free)

G_END_DECLS
