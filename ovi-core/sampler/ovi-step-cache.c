/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: step-cache decisions (see ovi-step-cache.h). */
#include "ovi-step-cache.h"
#include "ovi-error.h"

#include <math.h>
#include <string.h>

static const char *const mode_names[] = { "off", "easy", "mag" };

const char *
ovi_cache_mode_to_string (OviCacheMode mode)
{
  return (unsigned) mode < G_N_ELEMENTS (mode_names) ? mode_names[mode] : "?";
}

gboolean
ovi_cache_mode_from_string (const char *name, OviCacheMode *mode,
                            GError **error)
{
  for (guint i = 0; i < G_N_ELEMENTS (mode_names); i++)
    if (g_strcmp0 (name, mode_names[i]) == 0) {
      *mode = (OviCacheMode) i;
      return TRUE;
    }
  g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
               "unknown step cache '%s' (off, easy, mag)", name ? name : "");
  return FALSE;
}

/* ---- configuration ---- */

void
ovi_cache_config_init (OviCacheConfig *c)
{
  *c = (OviCacheConfig){ .mode = OVI_CACHE_OFF, .start = -1 };
}

int
ovi_cache_config_start (const OviCacheConfig *c, int steps)
{
  if (c->start >= 0)
    return c->start;
  return (int) ceil (OVI_CACHE_DEFAULT_START_RATIO * steps);
}

gboolean
ovi_cache_config_check (const OviCacheConfig *c, int steps, GError **error)
{
  if ((unsigned) c->mode >= G_N_ELEMENTS (mode_names)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "unknown step cache mode %d", (int) c->mode);
    return FALSE;
  }
  if (!isfinite (c->threshold) || c->threshold < 0) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "step cache threshold %g: must be a finite number >= 0",
                 c->threshold);
    return FALSE;
  }
  if (c->mode != OVI_CACHE_MAG)
    return TRUE;
  if (c->table == NULL) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "step cache 'mag' needs a magnitude-ratio table "
                 "(make one with `ovi calibrate-cache`)");
    return FALSE;
  }
  return ovi_cache_table_check (c->table, NULL, c->table->model, steps, error);
}

/* ---- decisions ---- */

typedef struct {
  gboolean computed_once; /* a residual exists */
  double k[OVI_N_TOWERS]; /* easy: transformation rate, < 0 unknown */
  double out_norm[OVI_N_TOWERS];
  double acc[OVI_N_TOWERS];   /* easy: predicted change; mag: error */
  double ratio[OVI_N_TOWERS]; /* mag: accumulated magnitude ratio */
  int run;                    /* skips since the last computed forward */
} Branch;

struct _OviCachePolicy {
  OviCacheConfig config;
  int steps, start, max_skips, n_branches;
  Branch branch[OVI_CACHE_N_BRANCHES];
  int computed, skipped;
};

static void
branch_reset (Branch *b)
{
  for (int t = 0; t < OVI_N_TOWERS; t++) {
    b->acc[t] = 0;
    b->ratio[t] = 1;
  }
  b->run = 0;
}

OviCachePolicy *
ovi_cache_policy_new (const OviCacheConfig *config, int steps, int n_branches)
{
  OviCachePolicy *p = g_new0 (OviCachePolicy, 1);

  p->config = *config;
  p->steps = steps;
  p->start = ovi_cache_config_start (config, steps);
  p->max_skips
      = config->max_skips > 0 ? config->max_skips : OVI_CACHE_DEFAULT_MAX_SKIPS;
  p->n_branches = CLAMP (n_branches, 1, OVI_CACHE_N_BRANCHES);
  for (int b = 0; b < OVI_CACHE_N_BRANCHES; b++) {
    branch_reset (&p->branch[b]);
    for (int t = 0; t < OVI_N_TOWERS; t++)
      p->branch[b].k[t] = -1;
  }
  return p;
}

void
ovi_cache_policy_free (OviCachePolicy *p)
{
  g_free (p);
}

/* accumulate this step's estimate; TRUE when every tower stays under the
 * threshold */
static gboolean
easy_under (OviCachePolicy *p, Branch *b, const double *input_change)
{
  gboolean under = TRUE;

  if (input_change == NULL)
    return FALSE;
  for (int t = 0; t < OVI_N_TOWERS; t++) {
    if (b->k[t] < 0 || b->out_norm[t] <= 0 || input_change[t] < 0)
      return FALSE;
    b->acc[t] += b->k[t] * input_change[t] / b->out_norm[t];
    under = under && b->acc[t] < p->config.threshold;
  }
  return under;
}

static gboolean
mag_under (OviCachePolicy *p, Branch *b, int step, int branch)
{
  const OviCacheTable *table = p->config.table;
  gboolean under = b->run < p->max_skips;

  for (int t = 0; t < OVI_N_TOWERS; t++) {
    b->ratio[t] *= table->ratio[MIN (branch, table->n_branches - 1)][t][step];
    b->acc[t] += fabs (1.0 - b->ratio[t]);
    under = under && b->acc[t] < p->config.threshold;
  }
  return under;
}

gboolean
ovi_cache_policy_skip (OviCachePolicy *p, int step, int branch,
                       const double input_change[OVI_N_TOWERS])
{
  Branch *b = &p->branch[CLAMP (branch, 0, OVI_CACHE_N_BRANCHES - 1)];
  gboolean skip = FALSE;

  if (p->config.mode != OVI_CACHE_OFF && b->computed_once && step >= p->start
      && step < p->steps - 1) {
    skip = p->config.mode == OVI_CACHE_EASY ? easy_under (p, b, input_change)
                                            : mag_under (p, b, step, branch);
  }
  if (skip) {
    b->run++;
    p->skipped++;
  } else {
    branch_reset (b);
    p->computed++;
  }
  return skip;
}

void
ovi_cache_policy_observe (OviCachePolicy *p, int branch,
                          const OviCacheObservation *obs)
{
  Branch *b = &p->branch[CLAMP (branch, 0, OVI_CACHE_N_BRANCHES - 1)];

  b->computed_once = TRUE;
  for (int t = 0; t < OVI_N_TOWERS; t++) {
    if (obs->in_change[t] > 0 && obs->out_change[t] >= 0)
      b->k[t] = obs->out_change[t] / obs->in_change[t];
    b->out_norm[t] = obs->out_norm[t];
  }
}

void
ovi_cache_policy_counts (const OviCachePolicy *p, int *computed, int *skipped)
{
  if (computed)
    *computed = p->computed;
  if (skipped)
    *skipped = p->skipped;
}
