/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: flow-matching schedulers of the Ovi sampling loop.
 *
 * Rectified flow: x_sigma = (1 - sigma) x0 + sigma eps and the network
 * predicts v ~ eps - x0.
 *  - UniPC (the default): bh2, solver order 2, predict-x0, lower order at
 *    the last step, corrector on every step but the first; sigmas
 *    linspace(0.999, 0, N + 1)[:N] shifted by s sigma / (1 + (s - 1) sigma)
 *    plus a final 0; the network gets int64 (sigma * 1000), truncated.
 *  - Euler: x += (sigma_{i+1} - sigma_i) v on the schedule of diffusers'
 *    FlowMatchEulerDiscreteScheduler(shift) (recent versions); the network
 *    gets sigma * 1000 as a float.
 * One instance per modality (video and audio use two identical ones).
 * State tensors are allocated on the first step, with the sample's shape.
 */
#pragma once

#include "ovi-backend.h"

G_BEGIN_DECLS

typedef enum {
  OVI_SCHEDULER_UNIPC,
  OVI_SCHEDULER_EULER,
} OviSchedulerKind;

typedef struct _OviScheduler OviScheduler;

OviScheduler *ovi_scheduler_new (OviSchedulerKind kind, OviBackend *backend,
                                 int steps, double shift, GError **error);
/* Euler on explicit sigmas, for few-step distilled models (the Lightning
 * LoRAs: 1, 0.9375, 0.8333, 0.625, 0 = 4 steps at shift 5): `n_sigmas`
 * finite values in [0, 1], strictly decreasing; a final 0 is appended when
 * the list does not end with one; steps = the intervals. The network gets
 * sigma * 1000 (a float). */
/* the checks of ovi_scheduler_new_sigmas (OVI_ERROR_INVALID_ARGUMENT) */
gboolean ovi_scheduler_check_sigmas (const double *sigmas, int n_sigmas,
                                     GError **error);
OviScheduler *ovi_scheduler_new_sigmas (OviBackend *backend,
                                        const double *sigmas, int n_sigmas,
                                        GError **error);
void ovi_scheduler_free (OviScheduler *s);

int ovi_scheduler_steps (const OviScheduler *s);
/* sigma_i, i in [0, steps] (sigma_steps = 0), as the scheduler stores it */
double ovi_scheduler_sigma (const OviScheduler *s, int i);
/* the timestep fed to the network at step i */
double ovi_scheduler_timestep (const OviScheduler *s, int i);
/* the step the next ovi_scheduler_step call performs */
int ovi_scheduler_step_index (const OviScheduler *s);
/* UniPC predictor order used by the last step (Euler: 1) */
int ovi_scheduler_last_order (const OviScheduler *s);

/* One step: `x` (in/out, contiguous, backend act dtype) is the sample at
 * the current step and becomes the sample at the next; `v` is the (guided)
 * model output for x. */
gboolean ovi_scheduler_step (OviScheduler *s, OviTensor *x, const OviTensor *v,
                             GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviScheduler, ovi_scheduler_free)

G_END_DECLS
