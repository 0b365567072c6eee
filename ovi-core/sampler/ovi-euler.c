/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: flow-matching Euler, on the schedule of diffusers'
 * FlowMatchEulerDiscreteScheduler(shift) with its default linear spacing:
 * the training sigmas k/1000 (k = 1000..1) shifted give sigma_max and
 * sigma_min; the N sigmas are linspace(sigma_max, sigma_min, N), shifted
 * again (as set_timesteps does), then a final 0. The network gets
 * sigma * 1000 (a float). Ovi's official settings are UniPC; Euler is the
 * cheap alternative and has no golden vector. */
#include "ovi-scheduler-private.h"

static double
shifted (double shift, double sigma)
{
  return shift * sigma / (1.0 + (shift - 1.0) * sigma);
}

void
ovi_euler_schedule (OviScheduler *s, double shift)
{
  double t_max = shifted (shift, 1.0) * 1000.0;
  double t_min = shifted (shift, 1.0 / 1000.0) * 1000.0;
  int n = s->steps;

  for (int i = 0; i < n; i++) {
    double t = n > 1 ? t_max + i * (t_min - t_max) / (n - 1) : t_max;
    double sg = shifted (shift, t / 1000.0);
    s->sigmas[i] = (double) (float) sg;
    s->timesteps[i] = sg * 1000.0;
  }
  s->sigmas[n] = 0.0;
}

gboolean
ovi_euler_step (OviScheduler *s, OviTensor *x, const OviTensor *v,
                GError **error)
{
  int i = s->index;
  double dt = s->sigmas[i + 1] - s->sigmas[i];

  ovi_op_axpby (s->be, s->tmp, 1.0f, x, (float) dt, v);
  ovi_op_copy (s->be, x, s->tmp);
  return TRUE;
}
