/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: step caching for the fusion DiT (docs/step-cache.md).
 *
 * A skipped forward runs the embeddings and the heads but none of the fused
 * blocks: both towers add the residual (blocks' output - blocks' input,
 * video and audio tokens) that their last computed forward of the same CFG
 * branch stored. The decision is made once per step and CFG branch for both
 * towers together (they cross-attend in every block, so one cannot run
 * without the other): a skip needs every tower's estimate under the
 * threshold. The first `start` steps and the last step are always computed.
 *
 *  - easy (EasyCache, no calibration): on computed steps the transformation
 *    rate k = mean|out - out'| / mean|x - x'| (out: the branch's model
 *    output, x: the latent it got, ': at the previous computed step); on
 *    later steps the predicted relative output change
 *    k mean|x_i - x_{i-1}| / mean|out'| accumulates, and the step is
 *    skipped while the sum stays under the threshold.
 *  - mag (MagCache): a per-step table of magnitude ratios (mean over tokens
 *    of |residual_i| / |residual_{i-1}|, per branch and tower, measured by
 *    `ovi calibrate-cache` on a full run); skipped steps multiply the
 *    ratios, the error |1 - product| accumulates, and the step is skipped
 *    while the error stays under the threshold, at most max_skips in a row.
 *
 * This header has the decision logic (pure, no tensors), the tables, and
 * the per-run buffers the denoiser uses (OviStepCacheRun).
 */
#pragma once

#include "ovi-fusion.h"

G_BEGIN_DECLS

typedef enum {
  OVI_CACHE_OFF,
  OVI_CACHE_EASY,
  OVI_CACHE_MAG,
} OviCacheMode;

/* CFG branches: the positive pass, and the negative one (absent with
 * guidance 1.0, where the denoiser runs one branch) */
typedef enum {
  OVI_CACHE_BRANCH_POS,
  OVI_CACHE_BRANCH_NEG,
  OVI_CACHE_N_BRANCHES
} OviCacheBranch;

#define OVI_CACHE_DEFAULT_START_RATIO 0.2
#define OVI_CACHE_DEFAULT_MAX_SKIPS   3

const char *ovi_cache_mode_to_string (OviCacheMode mode);
/* "off", "easy", "mag"; anything else fails naming the value */
gboolean ovi_cache_mode_from_string (const char *name, OviCacheMode *mode,
                                     GError **error);

/* ---- MagCache tables (presets/cache/<model>_<steps>.json) ---- */

typedef struct _OviCacheTable {
  char *model;  /* preset variant, e.g. "tiny" */
  int steps;    /* the step count it was measured at */
  char *solver; /* "unipc" | "euler" (informative) */
  double shift; /* (informative) */
  int n_branches;
  /* ratio[b][t][i], i in [0, steps): |residual_i| / |residual_{i-1}|,
   * ratio[b][t][0] = 1 */
  double *ratio[OVI_CACHE_N_BRANCHES][OVI_N_TOWERS];
} OviCacheTable;

OviCacheTable *ovi_cache_table_new (const char *model, int steps,
                                    const char *solver, double shift,
                                    int n_branches);
void ovi_cache_table_free (OviCacheTable *table);
OviCacheTable *ovi_cache_table_load (const char *path, GError **error);
gboolean ovi_cache_table_save (const OviCacheTable *table, const char *path,
                               const char *comment, GError **error);
/* fails naming both models / step counts when `table` is not for them */
gboolean ovi_cache_table_check (const OviCacheTable *table, const char *path,
                                const char *model, int steps, GError **error);
/* the presets' table for `model` at `steps` (a new path; the file may not
 * exist) */
char *ovi_cache_table_preset_path (const char *model, int steps);
/* The table at `path` (NULL: the presets' for `model` and `steps`),
 * loaded and checked against them; a missing preset table fails saying how
 * to make one. */
OviCacheTable *ovi_cache_table_find (const char *path, const char *model,
                                     int steps, GError **error);

/* ---- configuration ---- */

typedef struct {
  OviCacheMode mode;
  double threshold; /* >= 0; 0 never skips */
  int start;        /* steps always computed first; < 0: 20 % of the steps */
  int max_skips;    /* mag: most skips in a row; <= 0: the default */
  const OviCacheTable *table; /* mag: checked against the run's steps */
} OviCacheConfig;

void ovi_cache_config_init (OviCacheConfig *config); /* off */
/* bad threshold, a missing table or one for other steps -> error naming
 * the value */
gboolean ovi_cache_config_check (const OviCacheConfig *config, int steps,
                                 GError **error);
/* the `start` a run of `steps` uses */
int ovi_cache_config_start (const OviCacheConfig *config, int steps);

/* ---- decisions (no tensors) ---- */

typedef struct _OviCachePolicy OviCachePolicy;

/* `config` must have passed ovi_cache_config_check for `steps` */
OviCachePolicy *ovi_cache_policy_new (const OviCacheConfig *config, int steps,
                                      int n_branches);
void ovi_cache_policy_free (OviCachePolicy *policy);
/* Called once per step and branch, steps in order. input_change[t] =
 * mean|x_step - x_{step-1}| of tower t's latent (easy; negative when
 * unknown). TRUE: skip the branch's blocks at this step. Counts the
 * forward as computed or skipped. */
gboolean ovi_cache_policy_skip (OviCachePolicy *policy, int step, int branch,
                                const double input_change[OVI_N_TOWERS]);

/* What a computed forward of a branch measured, per tower (easy):
 * out_change = mean|out - out'|, in_change = mean|x - x'| against the
 * branch's previous computed forward (negative: none), out_norm =
 * mean|out|. */
typedef struct {
  double out_change[OVI_N_TOWERS];
  double in_change[OVI_N_TOWERS];
  double out_norm[OVI_N_TOWERS];
} OviCacheObservation;

void ovi_cache_policy_observe (OviCachePolicy *policy, int branch,
                               const OviCacheObservation *obs);
void ovi_cache_policy_counts (const OviCachePolicy *policy, int *computed,
                              int *skipped);

/* ---- the tensors of one run (used by the denoiser) ---- */

typedef struct _OviStepCacheRun OviStepCacheRun;

/* The step cache of one run of `steps` steps with `config` (checked here)
 * on `model`. Its buffers (a residual per branch and tower and, for easy,
 * the latents and outputs the rates are measured on) are made at the first
 * step. calibrate: also measure every forward's residual magnitude ratio
 * for a table (ovi_step_cache_run_take_table); works with mode off. */
OviStepCacheRun *ovi_step_cache_run_new (OviBackend *backend, OviFusion *model,
                                         const OviCacheConfig *config,
                                         int steps, int n_branches,
                                         gboolean calibrate, GError **error);
void ovi_step_cache_run_free (OviStepCacheRun *run);
/* before the forwards of `step`, with the forward's work (at the run's
 * size), the branches this step computes here (1 << OviCacheBranch each;
 * a CFG-parallel rank computes one) and the step's latents */
gboolean ovi_step_cache_run_begin_step (OviStepCacheRun *run, int step,
                                        OviFusionWork *work, guint branches,
                                        OviTensor *const x[OVI_N_TOWERS],
                                        GError **error);
/* the decision for `branch` (an OviCacheBranch) at the current step (call
 * once per branch computed); it also sets the branch's residual hook to
 * reuse or store */
gboolean ovi_step_cache_run_skip (OviStepCacheRun *run, int branch);
/* the hook to put in the branch's OviFusionPass */
OviFusionResidual *ovi_step_cache_run_residual (OviStepCacheRun *run,
                                                int branch);
/* after the branch's forward at the current step; out: its model output */
gboolean ovi_step_cache_run_end_forward (OviStepCacheRun *run, int branch,
                                         OviTensor *const out[OVI_N_TOWERS],
                                         GError **error);
void ovi_step_cache_run_counts (const OviStepCacheRun *run, int *computed,
                                int *skipped);
/* calibrate: the measured table (new; model, solver and shift copied) */
OviCacheTable *ovi_step_cache_run_take_table (OviStepCacheRun *run,
                                              const char *model,
                                              const char *solver, double shift);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviCacheTable, ovi_cache_table_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviCachePolicy, ovi_cache_policy_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviStepCacheRun, ovi_step_cache_run_free)

G_END_DECLS
