/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: flow-matching UniPC (bh2, order 2, predict-x0), as Ovi's
 * FlowUniPCMultistepScheduler runs it with lower_order_final and the
 * corrector enabled on every step but the first.
 *
 * Notation (step i, sigma_i, alpha_i = 1 - sigma_i,
 * lambda_i = ln alpha_i - ln sigma_i): m_i = x_i - sigma_i v_i is the x0
 * prediction; the corrector refines x_i from the previous sample with m_i,
 * the predictor moves x_i to sigma_{i+1}. Every update is a linear
 * combination of whole tensors, written as one per step. */
#include "ovi-scheduler-private.h"

#include <math.h>

void
ovi_unipc_schedule (OviScheduler *s, double shift)
{
  /* sigma_max: the float32 value 1 - 1/1000 of the training table */
  double sigma_max = (double) (float) (1.0 - 1.0 / 1000.0);
  double step = (0.0 - sigma_max) / s->steps;

  for (int i = 0; i < s->steps; i++) {
    double sg = i * step + sigma_max; /* numpy.linspace */
    sg = shift * sg / (1.0 + (shift - 1.0) * sg);
    s->timesteps[i] = (double) (int64_t) (sg * 1000.0);
    s->sigmas[i] = (double) (float) sg;
  }
  s->sigmas[s->steps] = 0.0;
}

static double
lambda_of (double sigma)
{
  return log (1.0 - sigma) - log (sigma);
}

/* UniC: x_i from the previous sample, m_{i-1} (m[0]), m_{i-2} (m[1]) and
 * m_i (m_new), with the order the previous predictor used. */
static gboolean
corrector (OviScheduler *s, OviTensor *x, GError **error)
{
  int i = s->index;
  double st = s->sigmas[i], ss0 = s->sigmas[i - 1], at = 1.0 - st;
  double h = lambda_of (st) - lambda_of (ss0), hh = -h;
  double phi1 = expm1 (hh), B = expm1 (hh);
  const OviTensor *t[4] = { s->last_sample, s->m[0], s->m_new, s->m[1] };
  double c[4] = { 0 };

  c[0] = st / ss0;
  if (s->this_order == 1) {
    c[1] = -at * phi1 + 0.5 * at * B;
    c[2] = -0.5 * at * B;
    ovi_scheduler_lincomb (s, s->tmp, 3, c, t);
  } else {
    double rk = (lambda_of (s->sigmas[i - 2]) - lambda_of (ss0)) / h;
    double hk = phi1 / hh - 1.0;
    double b1 = hk / B, b2 = (hk / hh - 0.5) * 2.0 / B;
    double rho0 = (b1 - b2) / (1.0 - rk), rho1 = b1 - rho0;
    /* D1 = (m_{i-2} - m_{i-1}) / rk */
    c[1] = -at * phi1 + at * B * (rho0 / rk + rho1);
    c[2] = -at * B * rho1;
    c[3] = -at * B * rho0 / rk;
    ovi_scheduler_lincomb (s, s->tmp, 4, c, t);
  }
  for (int k = 0; k < 4; k++)
    if (!isfinite (c[k])) {
      g_set_error (
          error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
          "UniPC corrector at step %d: sigmas %g, %g give no finite update", i,
          ss0, st);
      return FALSE;
    }
  ovi_op_copy (s->be, x, s->tmp);
  return TRUE;
}

/* UniP: x_i -> x_{i+1} with m_i (m[0]) and m_{i-1} (m[1]) */
static gboolean
predictor (OviScheduler *s, OviTensor *x, GError **error)
{
  int i = s->index;
  double st = s->sigmas[i + 1], ss0 = s->sigmas[i], at = 1.0 - st;
  double h = lambda_of (st) - lambda_of (ss0), hh = -h;
  double phi1 = expm1 (hh), B = expm1 (hh);
  const OviTensor *t[3] = { x, s->m[0], s->m[1] };
  double c[3] = { st / ss0, -at * phi1, 0 };
  int n = 2;

  if (s->this_order == 2) {
    double rk = (lambda_of (s->sigmas[i - 1]) - lambda_of (ss0)) / h;
    /* - alpha B * 0.5 * D1, D1 = (m_{i-1} - m_i) / rk */
    c[1] += at * B * 0.5 / rk;
    c[2] = -at * B * 0.5 / rk;
    n = 3;
  }
  for (int k = 0; k < n; k++)
    if (!isfinite (c[k])) {
      g_set_error (
          error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
          "UniPC predictor at step %d: sigmas %g, %g give no finite update", i,
          ss0, st);
      return FALSE;
    }
  ovi_scheduler_lincomb (s, s->tmp, n, c, t);
  ovi_op_copy (s->be, x, s->tmp);
  return TRUE;
}

gboolean
ovi_unipc_step (OviScheduler *s, OviTensor *x, const OviTensor *v,
                GError **error)
{
  int i = s->index;
  OviTensor *old;

  /* m_i = x_i - sigma_i v_i */
  ovi_op_axpby (s->be, s->m_new, 1.0f, x, (float) -s->sigmas[i], v);
  if (i > 0 && !corrector (s, x, error))
    return FALSE;
  /* history: m[1] <- m[0] <- m_new */
  old = s->m[1];
  s->m[1] = s->m[0];
  s->m[0] = s->m_new;
  s->m_new = old;
  s->this_order = MIN (2, s->steps - i);
  s->this_order = MIN (s->this_order, s->lower_order_nums + 1);
  ovi_op_copy (s->be, s->last_sample, x);
  if (!predictor (s, x, error))
    return FALSE;
  if (s->lower_order_nums < 2)
    s->lower_order_nums++;
  return TRUE;
}
