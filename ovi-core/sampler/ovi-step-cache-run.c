/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the tensors of a step-cached run (see ovi-step-cache.h).
 *
 * Holds a residual per CFG branch and tower for the forward's hook and
 * measures what the decisions need: mean absolute values of latent-sized
 * differences (easy) and, when calibrating, the per-token magnitude of
 * every residual. |d| is 2 relu(d) - d and the means go through mean_last
 * and a host sum, so nothing here needs more of the op table. */
#include "ovi-error.h"
#include "ovi-step-cache.h"

#include <math.h>

struct _OviStepCacheRun {
  OviBackend *be;
  OviFusion *model;
  OviCachePolicy *policy;
  OviCacheMode mode;
  gboolean residuals, calibrating;
  int n_branches, steps, step;
  OviFusionResidual res[OVI_CACHE_N_BRANCHES];
  gboolean skipping[OVI_CACHE_N_BRANCHES];
  OviTensor *const *x; /* this step's latents (the caller's) */
  /* easy: the previous step's latents, each branch's last computed latents
   * and outputs, scratch for |a - b| */
  OviTensor *x_prev[OVI_N_TOWERS];
  OviTensor *x_last[OVI_CACHE_N_BRANCHES][OVI_N_TOWERS];
  OviTensor *out_last[OVI_CACHE_N_BRANCHES][OVI_N_TOWERS];
  OviTensor *diff[OVI_N_TOWERS], *absd[OVI_N_TOWERS], *rows[OVI_N_TOWERS];
  gboolean have_prev, have_last[OVI_CACHE_N_BRANCHES];
  double input_change[OVI_N_TOWERS];
  /* calibration: per-token magnitudes of the previous residual */
  OviCacheTable *table;
  OviTensor *sq[OVI_N_TOWERS], *tok[OVI_N_TOWERS];
  double *mag_prev[OVI_CACHE_N_BRANCHES][OVI_N_TOWERS];
  GPtrArray *keep;
};

static OviTensor *
new_act (OviStepCacheRun *r, int ndim, const int64_t *shape, GError **error)
{
  OviTensor *t = ovi_backend_new_act (r->be, ndim, shape);

  if (t == NULL) {
    g_autofree char *s = ovi_shape_to_string (ndim, shape);
    g_set_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                 "step cache: could not allocate a %s buffer", s);
    return NULL;
  }
  g_ptr_array_add (r->keep, t);
  return t;
}

/* latent-sized buffers for easy, made on the first step from its latents:
 * like x[t], and its rows (x[t] without the last dim) */
static gboolean
alloc_easy (OviStepCacheRun *r, OviTensor *const x[OVI_N_TOWERS],
            GError **error)
{
  for (int t = 0; t < OVI_N_TOWERS; t++) {
    int n = x[t]->ndim;
    const int64_t *shape = x[t]->shape;
    if (!(r->x_prev[t] = new_act (r, n, shape, error))
        || !(r->diff[t] = new_act (r, n, shape, error))
        || !(r->absd[t] = new_act (r, n, shape, error))
        || !(r->rows[t] = new_act (r, n - 1, shape, error)))
      return FALSE;
    for (int b = 0; b < r->n_branches; b++)
      if (!(r->x_last[b][t] = new_act (r, n, shape, error))
          || !(r->out_last[b][t] = new_act (r, n, shape, error)))
        return FALSE;
  }
  return TRUE;
}

static gboolean
alloc_calibration (OviStepCacheRun *r, GError **error)
{
  int first = r->res[0].residual[0] ? 0 : 1;

  r->table = ovi_cache_table_new (NULL, r->steps, NULL, 0, r->n_branches);
  for (int t = 0; t < OVI_N_TOWERS; t++) {
    const OviTensor *res = r->res[first].residual[t];
    if (!(r->sq[t] = new_act (r, res->ndim, res->shape, error))
        || !(r->tok[t] = new_act (r, res->ndim - 1, res->shape, error)))
      return FALSE;
    for (int b = 0; b < r->n_branches; b++)
      r->mag_prev[b][t] = g_new0 (double, res->shape[0]);
  }
  return TRUE;
}

OviStepCacheRun *
ovi_step_cache_run_new (OviBackend *be, OviFusion *model,
                        const OviCacheConfig *config, int steps, int n_branches,
                        gboolean calibrate, GError **error)
{
  OviStepCacheRun *r;

  if (!ovi_cache_config_check (config, steps, error))
    return NULL;
  r = g_new0 (OviStepCacheRun, 1);
  r->keep = g_ptr_array_new_with_free_func ((GDestroyNotify) ovi_tensor_unref);
  r->be = be;
  r->model = model;
  r->mode = config->mode;
  r->residuals = calibrate || config->mode != OVI_CACHE_OFF;
  r->calibrating = calibrate;
  r->steps = steps;
  r->n_branches = CLAMP (n_branches, 1, OVI_CACHE_N_BRANCHES);
  r->policy = ovi_cache_policy_new (config, steps, r->n_branches);
  return r;
}

/* the residuals of `branch`, at its first step (when the forward's work
 * for the run's size exists) */
static gboolean
alloc_residuals (OviStepCacheRun *r, int branch, OviFusionWork *work,
                 GError **error)
{
  for (int t = 0; t < OVI_N_TOWERS; t++) {
    r->res[branch].residual[t]
        = ovi_fusion_residual_new (r->model, work, t, error);
    if (r->res[branch].residual[t] == NULL)
      return FALSE;
    g_ptr_array_add (r->keep, r->res[branch].residual[t]);
  }
  return TRUE;
}

void
ovi_step_cache_run_free (OviStepCacheRun *r)
{
  if (r == NULL)
    return;
  g_clear_pointer (&r->policy, ovi_cache_policy_free);
  g_clear_pointer (&r->table, ovi_cache_table_free);
  for (int b = 0; b < OVI_CACHE_N_BRANCHES; b++)
    for (int t = 0; t < OVI_N_TOWERS; t++)
      g_free (r->mag_prev[b][t]);
  g_clear_pointer (&r->keep, g_ptr_array_unref);
  g_free (r);
}

/* ---- measurements ---- */

/* the host sum of a backend tensor (synchronises) */
static gboolean
host_sum (OviStepCacheRun *r, const OviTensor *t, double *sum, GError **error)
{
  g_autoptr (OviTensor) h = ovi_backend_download_f32 (r->be, t, error);
  const float *v;

  if (h == NULL)
    return FALSE;
  v = ovi_tensor_data (h);
  *sum = 0;
  for (int64_t i = 0; i < ovi_tensor_numel (h); i++)
    *sum += v[i];
  return TRUE;
}

/* mean |a - b| over tower t's latent (b NULL: mean |a|) */
static gboolean
mean_abs (OviStepCacheRun *r, int t, const OviTensor *a, const OviTensor *b,
          double *out, GError **error)
{
  double sum;

  if (b)
    ovi_op_binary (r->be, r->diff[t], a, b, OVI_BINARY_SUB);
  else
    ovi_op_copy (r->be, r->diff[t], a);
  ovi_op_unary (r->be, r->absd[t], r->diff[t], OVI_ACT_RELU, 2.0f);
  ovi_op_axpby (r->be, r->absd[t], 1.0f, r->absd[t], -1.0f, r->diff[t]);
  ovi_op_mean_last (r->be, r->rows[t], r->absd[t]);
  if (!host_sum (r, r->rows[t], &sum, error))
    return FALSE;
  *out = sum / ovi_tensor_numel (r->rows[t]);
  return TRUE;
}

gboolean
ovi_step_cache_run_begin_step (OviStepCacheRun *r, int step,
                               OviFusionWork *work, guint branches,
                               OviTensor *const x[OVI_N_TOWERS], GError **error)
{
  r->step = step;
  r->x = x;
  for (int b = 0; r->residuals && b < r->n_branches; b++)
    if ((branches & (1u << b)) && r->res[b].residual[0] == NULL
        && !alloc_residuals (r, b, work, error))
      return FALSE;
  if (r->calibrating && r->sq[0] == NULL && !alloc_calibration (r, error))
    return FALSE;
  if (r->mode != OVI_CACHE_EASY)
    return TRUE;
  if (r->x_prev[0] == NULL && !alloc_easy (r, x, error))
    return FALSE;
  for (int t = 0; t < OVI_N_TOWERS; t++) {
    r->input_change[t] = -1;
    if (r->have_prev
        && !mean_abs (r, t, x[t], r->x_prev[t], &r->input_change[t], error))
      return FALSE;
    ovi_op_copy (r->be, r->x_prev[t], x[t]);
  }
  r->have_prev = TRUE;
  return TRUE;
}

gboolean
ovi_step_cache_run_skip (OviStepCacheRun *r, int branch)
{
  gboolean skip
      = ovi_cache_policy_skip (r->policy, r->step, branch, r->input_change);

  r->skipping[branch] = skip;
  r->res[branch].reuse = skip;
  return skip;
}

OviFusionResidual *
ovi_step_cache_run_residual (OviStepCacheRun *r, int branch)
{
  return r->res[branch].residual[0] ? &r->res[branch] : NULL;
}

static gboolean
observe_easy (OviStepCacheRun *r, int b, OviTensor *const out[OVI_N_TOWERS],
              OviCacheObservation *obs, GError **error)
{
  for (int t = 0; t < OVI_N_TOWERS; t++) {
    obs->in_change[t] = obs->out_change[t] = -1;
    if (r->have_last[b]
        && (!mean_abs (r, t, r->x[t], r->x_last[b][t], &obs->in_change[t],
                       error)
            || !mean_abs (r, t, out[t], r->out_last[b][t], &obs->out_change[t],
                          error)))
      return FALSE;
    if (!mean_abs (r, t, out[t], NULL, &obs->out_norm[t], error))
      return FALSE;
    ovi_op_copy (r->be, r->x_last[b][t], r->x[t]);
    ovi_op_copy (r->be, r->out_last[b][t], out[t]);
  }
  r->have_last[b] = TRUE;
  return TRUE;
}

/* table[b][t][step] = mean over tokens of |res_step| / |res_step-1| */
static gboolean
calibrate (OviStepCacheRun *r, int b, GError **error)
{
  for (int t = 0; t < OVI_N_TOWERS; t++) {
    const OviTensor *res = r->res[b].residual[t];
    g_autoptr (OviTensor) h = NULL;
    double *prev = r->mag_prev[b][t], sum = 0;
    int64_t n = res->shape[0];
    const float *v;

    ovi_op_binary (r->be, r->sq[t], res, res, OVI_BINARY_MUL);
    ovi_op_mean_last (r->be, r->tok[t], r->sq[t]);
    if (!(h = ovi_backend_download_f32 (r->be, r->tok[t], error)))
      return FALSE;
    v = ovi_tensor_data (h);
    for (int64_t i = 0; i < n; i++) {
      double mag = sqrt (MAX (v[i], 0.0f));
      sum += prev[i] > 0 ? mag / prev[i] : 1.0;
      prev[i] = mag;
    }
    r->table->ratio[b][t][r->step] = r->step > 0 ? sum / n : 1.0;
  }
  return TRUE;
}

gboolean
ovi_step_cache_run_end_forward (OviStepCacheRun *r, int branch,
                                OviTensor *const out[OVI_N_TOWERS],
                                GError **error)
{
  OviCacheObservation obs = { { -1, -1 }, { -1, -1 }, { -1, -1 } };

  if (r->skipping[branch])
    return TRUE;
  if (r->mode == OVI_CACHE_EASY && !observe_easy (r, branch, out, &obs, error))
    return FALSE;
  if (r->table && !calibrate (r, branch, error))
    return FALSE;
  ovi_cache_policy_observe (r->policy, branch, &obs);
  return TRUE;
}

void
ovi_step_cache_run_counts (const OviStepCacheRun *r, int *computed,
                           int *skipped)
{
  ovi_cache_policy_counts (r->policy, computed, skipped);
}

OviCacheTable *
ovi_step_cache_run_take_table (OviStepCacheRun *r, const char *model,
                               const char *solver, double shift)
{
  OviCacheTable *t = g_steal_pointer (&r->table);

  if (t == NULL)
    return NULL;
  g_free (t->model);
  g_free (t->solver);
  t->model = g_strdup (model);
  t->solver = g_strdup (solver);
  t->shift = shift;
  return t;
}
