/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the scheduler object shared by UniPC and Euler. */
#include "ovi-scheduler-private.h"

#include <math.h>

OviScheduler *
ovi_scheduler_new (OviSchedulerKind kind, OviBackend *be, int steps,
                   double shift, GError **error)
{
  OviScheduler *s;

  if (steps < 1 || steps > 10000 || !(shift > 0)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "scheduler: %d steps / shift %g out of range (1..10000 steps, "
                 "shift > 0)",
                 steps, shift);
    return NULL;
  }
  s = g_new0 (OviScheduler, 1);
  s->kind = kind;
  s->be = be;
  s->steps = steps;
  s->sigmas = g_new0 (double, steps + 1);
  s->timesteps = g_new0 (double, steps);
  if (kind == OVI_SCHEDULER_EULER)
    ovi_euler_schedule (s, shift);
  else
    ovi_unipc_schedule (s, shift);
  return s;
}

gboolean
ovi_scheduler_check_sigmas (const double *sigmas, int n, GError **error)
{
  if (n < 1 || n > 10001) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "sigmas: %d values (need 1..10001)", n);
    return FALSE;
  }
  for (int i = 0; i < n; i++) {
    if (!isfinite (sigmas[i]) || sigmas[i] < 0 || sigmas[i] > 1
        || (i > 0 && !(sigmas[i] < sigmas[i - 1]))) {
      g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                   "sigmas: value %d (%g) must be in [0, 1] and below the "
                   "one before it",
                   i, sigmas[i]);
      return FALSE;
    }
  }
  if (n == 1 && sigmas[0] == 0) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "sigmas: a lone 0 makes no step");
    return FALSE;
  }
  return TRUE;
}

OviScheduler *
ovi_scheduler_new_sigmas (OviBackend *be, const double *sigmas, int n,
                          GError **error)
{
  OviScheduler *s;

  if (!ovi_scheduler_check_sigmas (sigmas, n, error))
    return NULL;
  s = g_new0 (OviScheduler, 1);
  s->kind = OVI_SCHEDULER_EULER;
  s->be = be;
  s->steps = sigmas[n - 1] == 0 ? n - 1 : n;
  s->sigmas = g_new0 (double, s->steps + 1);
  s->timesteps = g_new0 (double, s->steps);
  for (int i = 0; i < s->steps; i++) {
    s->sigmas[i] = sigmas[i];
    s->timesteps[i] = sigmas[i] * 1000.0;
  }
  s->sigmas[s->steps] = 0.0;
  return s;
}

void
ovi_scheduler_free (OviScheduler *s)
{
  if (s == NULL)
    return;
  for (int i = 0; i < 2; i++)
    g_clear_pointer (&s->m[i], ovi_tensor_unref);
  g_clear_pointer (&s->m_new, ovi_tensor_unref);
  g_clear_pointer (&s->last_sample, ovi_tensor_unref);
  g_clear_pointer (&s->tmp, ovi_tensor_unref);
  g_free (s->sigmas);
  g_free (s->timesteps);
  g_free (s);
}

int
ovi_scheduler_steps (const OviScheduler *s)
{
  return s->steps;
}

double
ovi_scheduler_sigma (const OviScheduler *s, int i)
{
  g_return_val_if_fail (i >= 0 && i <= s->steps, 0);
  return s->sigmas[i];
}

double
ovi_scheduler_timestep (const OviScheduler *s, int i)
{
  g_return_val_if_fail (i >= 0 && i < s->steps, 0);
  return s->timesteps[i];
}

int
ovi_scheduler_step_index (const OviScheduler *s)
{
  return s->index;
}

int
ovi_scheduler_last_order (const OviScheduler *s)
{
  return s->kind == OVI_SCHEDULER_UNIPC ? s->this_order : 1;
}

void
ovi_scheduler_lincomb (OviScheduler *s, OviTensor *out, int n, const double *c,
                       const OviTensor *const *t)
{
  ovi_op_axpby (s->be, out, (float) c[0], t[0], (float) c[1], t[1]);
  for (int k = 2; k < n; k++)
    ovi_op_axpby (s->be, out, 1.0f, out, (float) c[k], t[k]);
}

static OviTensor *
new_like (OviScheduler *s, const OviTensor *x)
{
  return ovi_backend_new_act (s->be, x->ndim, x->shape);
}

gboolean
ovi_scheduler_ensure_state (OviScheduler *s, const OviTensor *x, GError **error)
{
  if (s->tmp && ovi_tensor_has_shape (s->tmp, x->ndim, x->shape))
    return TRUE;
  if (s->tmp) {
    g_autofree char *got = ovi_shape_to_string (x->ndim, x->shape);
    g_autofree char *want = ovi_shape_to_string (s->tmp->ndim, s->tmp->shape);
    g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                 "scheduler: sample shape changed from %s to %s", want, got);
    return FALSE;
  }
  s->tmp = new_like (s, x);
  s->m_new = new_like (s, x);
  s->last_sample = new_like (s, x);
  s->m[0] = new_like (s, x);
  s->m[1] = new_like (s, x);
  if (!s->tmp || !s->m_new || !s->last_sample || !s->m[0] || !s->m[1]) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                 "scheduler: out of memory for its state");
    return FALSE;
  }
  return TRUE;
}

static gboolean
check_step (OviScheduler *s, const OviTensor *x, const OviTensor *v,
            GError **error)
{
  if (s->index >= s->steps) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "scheduler: all %d steps are done", s->steps);
    return FALSE;
  }
  if (!ovi_tensor_has_shape (v, x->ndim, x->shape)) {
    g_autofree char *xs = ovi_shape_to_string (x->ndim, x->shape);
    g_autofree char *vs = ovi_shape_to_string (v->ndim, v->shape);
    g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                 "scheduler: model output %s does not match the sample %s", vs,
                 xs);
    return FALSE;
  }
  return ovi_scheduler_ensure_state (s, x, error);
}

gboolean
ovi_scheduler_step (OviScheduler *s, OviTensor *x, const OviTensor *v,
                    GError **error)
{
  gboolean ok;

  if (!check_step (s, x, v, error))
    return FALSE;
  if (s->kind == OVI_SCHEDULER_EULER)
    ok = ovi_euler_step (s, x, v, error);
  else
    ok = ovi_unipc_step (s, x, v, error);
  s->index++;
  return ok && ovi_backend_sync (s->be, error);
}
