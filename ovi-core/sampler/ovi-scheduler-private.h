/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: scheduler internals shared by ovi-unipc.c and ovi-euler.c. */
#pragma once

#include "ovi-scheduler.h"

G_BEGIN_DECLS

struct _OviScheduler {
  OviSchedulerKind kind;
  OviBackend *be;
  int steps;
  double *sigmas;    /* steps + 1 */
  double *timesteps; /* steps */
  int index;         /* next step */
  /* UniPC state */
  OviTensor *m[2]; /* m[0]: x0 prediction of the last step, m[1]: before */
  OviTensor *m_new;
  OviTensor *last_sample;
  OviTensor *tmp;
  int this_order;
  int lower_order_nums;
};

/* out = sum_k c[k] * t[k] (n >= 2; out must not alias any t[k]) */
void ovi_scheduler_lincomb (OviScheduler *s, OviTensor *out, int n,
                            const double *c, const OviTensor *const *t);
gboolean ovi_scheduler_ensure_state (OviScheduler *s, const OviTensor *x,
                                     GError **error);

void ovi_unipc_schedule (OviScheduler *s, double shift);
gboolean ovi_unipc_step (OviScheduler *s, OviTensor *x, const OviTensor *v,
                         GError **error);
void ovi_euler_schedule (OviScheduler *s, double shift);
gboolean ovi_euler_step (OviScheduler *s, OviTensor *x, const OviTensor *v,
                         GError **error);

G_END_DECLS
