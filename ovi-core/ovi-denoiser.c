/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the denoiser stage (see ovi-engine.h): fusion DiT + scheduler +
 * classifier-free guidance with skip-layer guidance, and the image-to-video
 * first-frame injection.
 *
 * Per step: paste the image latent into latent frame 0 (i2v), a positive
 * branch (the prompt for both towers) and a negative branch (the
 * per-modality negative prompts, fused block slg_layer skipped) batched
 * into one forward, then guided = neg + scale * (pos - neg) per modality
 * and one scheduler step per modality. With both guidance scales 1 the
 * negative branch is not computed.
 *
 * Shared weights apart from per-run state (as whisper.cpp's context and
 * state): the OviDenoiser holds the model, the backend and the scratch of
 * one step (the fusion work buffers and the model outputs, made once per
 * latent size and batch); each run holds its own latents, scheduler state
 * and text embeddings. Runs take turns on the denoiser one step at a time
 * (ovi-turns.h), so two pipelines sharing it alternate steps and a
 * cancelled run stops waiting at once. */
#include "ovi-engine.h"
#include "ovi-denoiser-parallel.h"
#include "ovi-fusion.h"
#include "ovi-lora.h"
#include "ovi-noise.h"
#include "ovi-scheduler.h"
#include "ovi-turns.h"
#include "ovi-step-cache.h"

#include <math.h>

/* The branches a step computes (compute_branches); bit i is step-cache
 * branch i (OviCacheBranch) */
typedef enum {
  OVI_BRANCH_POS = 1 << OVI_CACHE_BRANCH_POS,
  OVI_BRANCH_NEG = 1 << OVI_CACHE_BRANCH_NEG,
} OviBranches;

struct _OviDenoiser {
  OviBackend *be;
  OviWeightFile *wf;
  OviFusion *model;
  int frames;       /* latent frames of the preset */
  int audio_length; /* audio latents of the preset */
  int64_t target_area;
  char *variant;  /* the preset's name (step cache tables) */
  OviTurns turns; /* whose step runs on the backend and the scratch */
  /* scratch of one step, for the latent size of the last step */
  OviFusionWork *work;
  OviTensor *pos[OVI_N_TOWERS], *neg[OVI_N_TOWERS], *guided[OVI_N_TOWERS],
      *diff[OVI_N_TOWERS];
  /* run-time LoRAs: the default set (ovi_denoiser_set_loras) and the last
   * set made from a request's list, kept for the next request */
  GMutex lora_lock;
  OviFusionLora *lora_default, *lora_cached;
  char *lora_cached_list;
  char *lora_warning;         /* unmatched LoRA keys */
  OviDenoiserComms comms;     /* one rank of a parallel denoiser */
  OviParallelDenoiser *group; /* rank 0 of it: runs go to every rank */
};

void
ovi_denoise_request_init (OviDenoiseRequest *req)
{
  *req = (OviDenoiseRequest){
    .seed = 100,
    .steps = 50,
    .solver = OVI_SOLVER_UNIPC,
    .shift = 5.0,
    .video_guidance = 4.0,
    .audio_guidance = 3.0,
    .slg_layer = 11,
    .cache_start = -1,
  };
}

/* "1, 0.9375, 0.8333, 0.625, 0" */
gboolean
ovi_sigmas_parse (const char *text, double **sigmas, int *n_sigmas,
                  GError **error)
{
  g_auto (GStrv) parts = g_strsplit (text ? text : "", ",", -1);
  guint n = g_strv_length (parts);
  g_autofree double *v = g_new0 (double, MAX (n, 1));

  for (guint i = 0; i < n; i++) {
    char *item = g_strstrip (parts[i]), *end = NULL;
    v[i] = g_ascii_strtod (item, &end);
    if (*item == '\0' || end == NULL || *end != '\0') {
      g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                   "sigmas '%s': '%s' is not a number", text, item);
      return FALSE;
    }
  }
  if (!ovi_scheduler_check_sigmas (v, (int) n, error))
    return FALSE;
  *sigmas = g_steal_pointer (&v);
  *n_sigmas = (int) n;
  return TRUE;
}

OviDenoiser *
ovi_denoiser_new (const OviModelPaths *paths, OviBackend *backend,
                  GError **error)
{
  return ovi_denoiser_new_filtered (paths, backend, NULL, NULL, error);
}

OviDenoiser *
ovi_denoiser_new_filtered (const OviModelPaths *paths, OviBackend *backend,
                           OviWeightFilter filter, gpointer filter_data,
                           GError **error)
{
  return ovi_denoiser_new_with_loras (paths, backend, filter, filter_data, NULL,
                                      error);
}

OviDenoiser *
ovi_denoiser_new_with_loras (const OviModelPaths *paths, OviBackend *backend,
                             OviWeightFilter filter, gpointer filter_data,
                             const GPtrArray *loras, GError **error)
{
  OviDenoiser *d = g_new0 (OviDenoiser, 1);
  OviLoraSet *merge = NULL;
  OviFusionDims preset = {
    .num_heads = paths->num_heads,
    .text_len = paths->text_len,
    .eps = paths->eps,
    .audio_rope_scale = paths->audio_rope_scale,
  };

  g_mutex_init (&d->lora_lock);
  d->be = backend;
  ovi_turns_init (&d->turns);
  d->frames = paths->video_latent_frames;
  d->audio_length = paths->audio_latent_length;
  d->target_area = paths->target_area;
  d->variant = g_strdup (paths->variant);
  d->wf = ovi_weight_file_open (paths->fusion_path, NULL, error);
  if (d->wf && ovi_lora_merge_begin (d->wf, loras, &merge, error))
    d->model = ovi_fusion_new_filtered (d->wf, &preset, backend, filter,
                                        filter_data, error);
  if (d->wf)
    ovi_lora_merge_end (d->wf, merge, &d->lora_warning);
  if (d->model == NULL) {
    ovi_denoiser_free (d);
    return NULL;
  }
  return d;
}

static void
set_lora_warning (OviDenoiser *d, OviFusionLora *l)
{
  g_free (d->lora_warning);
  d->lora_warning = l ? g_strdup (ovi_fusion_lora_get_warning (l)) : NULL;
}

gboolean
ovi_denoiser_make_loras (OviDenoiser *d, const GPtrArray *loras,
                         OviFusionLora **made, GError **error)
{
  *made = NULL;
  if (loras == NULL || loras->len == 0)
    return TRUE;
  *made = ovi_fusion_lora_new (d->model, d->wf, loras, error);
  return *made != NULL;
}

void
ovi_denoiser_install_loras (OviDenoiser *d, OviFusionLora *made)
{
  g_mutex_lock (&d->lora_lock);
  g_clear_pointer (&d->lora_default, ovi_fusion_lora_unref);
  d->lora_default = made;
  set_lora_warning (d, made);
  g_mutex_unlock (&d->lora_lock);
}

gboolean
ovi_denoiser_set_loras (OviDenoiser *d, const GPtrArray *loras, GError **error)
{
  OviFusionLora *made;

  /* every rank of a parallel denoiser runs with the same set */
  if (d->group)
    return ovi_parallel_denoiser_set_loras (d->group, loras, error);
  if (!ovi_denoiser_make_loras (d, loras, &made, error))
    return FALSE;
  ovi_denoiser_install_loras (d, made);
  return TRUE;
}

/* the run-time LoRAs of a request (*out NULL: none): its list, made again
 * only when it differs from the last one, else the default set */
static gboolean
request_loras (OviDenoiser *d, const char *list, OviFusionLora **out,
               GError **error)
{
  g_autoptr (GPtrArray) specs = NULL;
  OviFusionLora *l;

  g_mutex_lock (&d->lora_lock);
  if (list == NULL || *list == '\0' || !g_strcmp0 (list, d->lora_cached_list))
    l = list && *list ? d->lora_cached : d->lora_default;
  else
    l = NULL;
  *out = l ? ovi_fusion_lora_ref (l) : NULL;
  g_mutex_unlock (&d->lora_lock);
  if (l || list == NULL || *list == '\0')
    return TRUE;
  specs = ovi_lora_specs_parse (list, error);
  if (specs == NULL)
    return FALSE;
  l = specs->len ? ovi_fusion_lora_new (d->model, d->wf, specs, error) : NULL;
  if (specs->len && l == NULL)
    return FALSE;
  g_mutex_lock (&d->lora_lock);
  g_clear_pointer (&d->lora_cached, ovi_fusion_lora_unref);
  g_free (d->lora_cached_list);
  d->lora_cached = l ? ovi_fusion_lora_ref (l) : NULL;
  d->lora_cached_list = g_strdup (list);
  set_lora_warning (d, l);
  g_mutex_unlock (&d->lora_lock);
  *out = l;
  return TRUE;
}

gboolean
ovi_denoiser_check_loras (OviDenoiser *d, const char *loras, GError **error)
{
  g_autoptr (GPtrArray) specs = ovi_lora_specs_parse (loras, error);
  g_autoptr (OviLoraSet) set = NULL;

  if (specs == NULL)
    return FALSE;
  if (specs->len == 0)
    return TRUE;
  set = ovi_lora_set_new (d->wf, (const OviLoraSpec *const *) specs->pdata,
                          specs->len, error);
  return set != NULL;
}

const char *
ovi_denoiser_get_lora_warning (OviDenoiser *d)
{
  return d->lora_warning;
}

gpointer
ovi_denoiser_get_fusion (OviDenoiser *d)
{
  return d->model;
}

static void
clear_scratch (OviDenoiser *d)
{
  for (int t = 0; t < OVI_N_TOWERS; t++) {
    g_clear_pointer (&d->pos[t], ovi_tensor_unref);
    g_clear_pointer (&d->neg[t], ovi_tensor_unref);
    g_clear_pointer (&d->guided[t], ovi_tensor_unref);
    g_clear_pointer (&d->diff[t], ovi_tensor_unref);
  }
  g_clear_pointer (&d->work, ovi_fusion_work_free);
}

void
ovi_denoiser_free (OviDenoiser *d)
{
  if (d == NULL)
    return;
  clear_scratch (d);
  g_free (d->variant);
  g_clear_pointer (&d->model, ovi_fusion_free);
  g_clear_pointer (&d->wf, ovi_weight_file_free);
  ovi_turns_clear (&d->turns);
  g_clear_pointer (&d->lora_default, ovi_fusion_lora_unref);
  g_clear_pointer (&d->lora_cached, ovi_fusion_lora_unref);
  g_free (d->lora_cached_list);
  g_mutex_clear (&d->lora_lock);
  g_free (d->lora_warning);
  g_free (d);
}

/* ---- sizes ---- */

typedef struct {
  int64_t frames, height, width, audio_length;
} Size;

static gboolean
size_from_pixels (OviDenoiser *d, const OviDenoiseRequest *req, Size *s,
                  GError **error)
{
  int width = req->width, height = req->height;

  if (width == 0 && height == 0 && d->target_area > 0) {
    /* a square of the target area, sides snapped to 32 (half to even) */
    int side = 32 * (int) nearbyint (sqrt ((double) d->target_area) / 32.0);
    width = height = MAX (side, 32);
  }
  if (width <= 0 || height <= 0 || width % 32 || height % 32) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "denoiser: frame size %dx%d is not a positive multiple of 32",
                 req->width, req->height);
    return FALSE;
  }
  s->height = height / 16;
  s->width = width / 16;
  return TRUE;
}

static gboolean
expect_shape (const char *what, const OviTensor *t, int ndim,
              const int64_t *shape, GError **error)
{
  if (ovi_tensor_has_shape (t, ndim, shape))
    return TRUE;
  g_autofree char *got = ovi_shape_to_string (t->ndim, t->shape);
  g_autofree char *want = ovi_shape_to_string (ndim, shape);
  g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
               "denoiser: %s has shape %s, expected %s", what, got, want);
  return FALSE;
}

static gboolean
request_size (OviDenoiser *d, const OviDenoiseRequest *req, Size *s,
              GError **error)
{
  const OviFusionDims *dims = ovi_fusion_get_dims (d->model);
  const OviTensor *vn = req->video_noise, *img = req->image_latent;

  s->frames = vn ? vn->shape[1] : d->frames;
  s->audio_length
      = req->audio_noise ? req->audio_noise->shape[0] : d->audio_length;
  if (img && img->ndim == 4) {
    s->height = img->shape[2];
    s->width = img->shape[3];
  } else if (vn && vn->ndim == 4) {
    s->height = vn->shape[2];
    s->width = vn->shape[3];
  } else if (!size_from_pixels (d, req, s, error)) {
    return FALSE;
  }
  int64_t vs[4] = { dims->video_in, s->frames, s->height, s->width };
  int64_t is[4] = { dims->video_in, 1, s->height, s->width };
  int64_t as[2] = { s->audio_length, dims->audio_in };
  return (vn == NULL || expect_shape ("video noise", vn, 4, vs, error))
         && (img == NULL || expect_shape ("image latent", img, 4, is, error))
         && (req->audio_noise == NULL
             || expect_shape ("audio noise", req->audio_noise, 2, as, error));
}

static gboolean
check_request (OviDenoiser *d, const OviDenoiseRequest *req, GError **error)
{
  int layers = ovi_fusion_get_dims (d->model)->num_layers;

  if (!req->text_pos || !req->text_video_neg || !req->text_audio_neg) {
    g_set_error (
        error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
        "denoiser: the request needs the prompt and both negative text "
        "embeddings");
    return FALSE;
  }
  if (req->steps < 1 && req->n_sigmas == 0) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "denoiser: %d steps", req->steps);
    return FALSE;
  }
  /* the official code would skip nothing for a layer past the last one */
  if (req->slg_layer >= layers) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "slg-layer %d: the model has %d fusion blocks (0..%d; -1 or "
                 "0 turns skip-layer guidance off)",
                 req->slg_layer, layers, layers - 1);
    return FALSE;
  }
  return TRUE;
}

/* ---- scratch (during a turn) ---- */

static int
n_branches (guint branches)
{
  return !!(branches & OVI_BRANCH_POS) + !!(branches & OVI_BRANCH_NEG);
}

/* the branches every step of `req` computes: the negative one only when a
 * modality is guided */
static guint
step_branches (const OviDenoiseRequest *req)
{
  if (req->video_guidance == 1.0 && req->audio_guidance == 1.0)
    return OVI_BRANCH_POS;
  return OVI_BRANCH_POS | OVI_BRANCH_NEG;
}

static gboolean
new_acts (OviBackend *be, const Size *s, const OviFusionDims *dims,
          OviTensor *out[OVI_N_TOWERS])
{
  int64_t video[4] = { dims->video_out, s->frames, s->height, s->width };
  int64_t audio[2] = { s->audio_length, dims->audio_out };

  out[OVI_TOWER_VIDEO] = ovi_backend_new_act (be, 4, video);
  out[OVI_TOWER_AUDIO] = ovi_backend_new_act (be, 2, audio);
  return out[OVI_TOWER_VIDEO] && out[OVI_TOWER_AUDIO];
}

static gboolean
ensure_scratch (OviDenoiser *d, const Size *s, int batch, GError **error)
{
  const OviFusionDims *dims = ovi_fusion_get_dims (d->model);

  if (ovi_fusion_work_matches (d->work, s->frames, s->height, s->width,
                               s->audio_length)
      && ovi_fusion_work_batch (d->work) >= batch)
    return TRUE;
  clear_scratch (d);
  d->work = ovi_fusion_work_new_parallel (d->model, s->frames, s->height,
                                          s->width, s->audio_length, batch,
                                          d->comms.sp, error);
  if (d->work == NULL)
    return FALSE;
  if (dims->video_in != dims->video_out || dims->audio_in != dims->audio_out) {
    g_set_error (
        error, OVI_ERROR, OVI_ERROR_SHAPE,
        "denoiser: the model maps %d->%d video and %d->%d audio channels; "
        "sampling needs equal in and out",
        dims->video_in, dims->video_out, dims->audio_in, dims->audio_out);
    return FALSE;
  }
  if (!new_acts (d->be, s, dims, d->pos) || !new_acts (d->be, s, dims, d->neg)
      || !new_acts (d->be, s, dims, d->guided)
      || !new_acts (d->be, s, dims, d->diff)) {
    clear_scratch (d);
    g_set_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                 "denoiser: out of memory for the model outputs");
    return FALSE;
  }
  return TRUE;
}

static gboolean
init_latent (OviDenoiser *d, OviTensor *x, const OviTensor *given, guint64 seed,
             GError **error)
{
  g_autoptr (OviTensor) noise = NULL;

  if (given) {
    ovi_op_copy (d->be, x, given);
    return TRUE;
  }
  noise = ovi_noise_gaussian (seed, x->ndim, x->shape, error);
  if (noise == NULL)
    return FALSE;
  ovi_op_copy (d->be, x, noise);
  return TRUE;
}

/* ---- the loop ---- */

/* CFG parallelism: the branches this rank computes, the positive one on
 * CFG rank 0 and the negative one on rank 1 (both compute the positive one
 * when it is the only one) */
static guint
own_branches (OviDenoiser *d, guint branches)
{
  if (d->comms.cfg == NULL || branches != (OVI_BRANCH_POS | OVI_BRANCH_NEG))
    return branches;
  return d->comms.cfg->rank == 0 ? OVI_BRANCH_POS : OVI_BRANCH_NEG;
}

/* each CFG rank's prediction to the other */
static void
share_branches (OviDenoiser *d, guint branches, guint own)
{
  if (own == branches)
    return;
  for (int t = 0; t < OVI_N_TOWERS; t++) {
    ovi_comm_broadcast (d->comms.cfg, d->pos[t], 0);
    ovi_comm_broadcast (d->comms.cfg, d->neg[t], 1);
  }
}

void
ovi_denoiser_set_group (OviDenoiser *d, OviParallelDenoiser *group)
{
  d->group = group;
}

void
ovi_denoiser_set_comms (OviDenoiser *d, const OviDenoiserComms *comms)
{
  d->comms = *comms;
  ovi_fusion_set_shards (d->model, comms->shard);
  clear_scratch (d);
}

/* what one run owns: its latents, scheduler state and text embeddings */
typedef struct {
  Size size;
  OviTensor *x[OVI_N_TOWERS];
  OviTensor *text[4]; /* video pos, audio pos, video neg, audio neg */
  OviScheduler *sched[OVI_N_TOWERS];
  OviStepCacheRun *cache;
  OviCacheTable *cache_table;
  OviFusionLora *lora; /* run-time LoRAs, or NULL */
} RunState;

static void
run_state_clear (RunState *rs)
{
  for (int i = 0; i < 4; i++)
    g_clear_pointer (&rs->text[i], ovi_tensor_unref);
  for (int t = 0; t < OVI_N_TOWERS; t++) {
    g_clear_pointer (&rs->sched[t], ovi_scheduler_free);
    g_clear_pointer (&rs->x[t], ovi_tensor_unref);
  }
  g_clear_pointer (&rs->cache, ovi_step_cache_run_free);
  g_clear_pointer (&rs->cache_table, ovi_cache_table_free);
  g_clear_pointer (&rs->lora, ovi_fusion_lora_unref);
}

/* the step cache of the request (also with caching off: it counts) */
static gboolean
prepare_cache (OviDenoiser *d, const OviDenoiseRequest *req, RunState *rs,
               int n_branches, GError **error)
{
  OviCacheConfig c;
  int steps = ovi_scheduler_steps (rs->sched[0]); /* explicit sigmas too */

  ovi_cache_config_init (&c);
  c.threshold = req->cache_threshold;
  c.start = req->cache_start;
  c.max_skips = req->cache_max_skips;
  if (req->cache && !ovi_cache_mode_from_string (req->cache, &c.mode, error))
    return FALSE;
  if (c.mode == OVI_CACHE_MAG
      && !(rs->cache_table
           = ovi_cache_table_find (req->cache_table, d->variant, steps, error)))
    return FALSE;
  c.table = rs->cache_table;
  rs->cache = ovi_step_cache_run_new (d->be, d->model, &c, steps, n_branches,
                                      req->cache_calibration != NULL, error);
  return rs->cache != NULL;
}

static gboolean
prepare (OviDenoiser *d, const OviDenoiseRequest *req, RunState *rs,
         GError **error)
{
  const OviTensor *texts[4] = { req->text_pos, req->text_pos,
                                req->text_video_neg, req->text_audio_neg };
  OviSchedulerKind kind = req->solver == OVI_SOLVER_EULER ? OVI_SCHEDULER_EULER
                                                          : OVI_SCHEDULER_UNIPC;

  if (!ovi_fusion_activate_loras (d->model, rs->lora, error))
    return FALSE;
  for (int i = 0; i < 4; i++) {
    rs->text[i] = ovi_fusion_embed_text (
        d->model, i % 2 ? OVI_TOWER_AUDIO : OVI_TOWER_VIDEO, texts[i], error);
    if (rs->text[i] == NULL)
      return FALSE;
  }
  for (int t = 0; t < OVI_N_TOWERS; t++) {
    rs->sched[t]
        = req->n_sigmas > 0
              ? ovi_scheduler_new_sigmas (d->be, req->sigmas, req->n_sigmas,
                                          error)
              : ovi_scheduler_new (kind, d->be, req->steps, req->shift, error);
    if (rs->sched[t] == NULL)
      return FALSE;
  }
  if (!new_acts (d->be, &rs->size, ovi_fusion_get_dims (d->model), rs->x)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                 "denoiser: out of memory for the latents");
    return FALSE;
  }
  if (!prepare_cache (d, req, rs, n_branches (step_branches (req)), error))
    return FALSE;
  return init_latent (d, rs->x[OVI_TOWER_VIDEO], req->video_noise, req->seed,
                      error)
         && init_latent (d, rs->x[OVI_TOWER_AUDIO], req->audio_noise, req->seed,
                         error);
}

/* x[:, 0] = image; one contiguous [h, w] plane per channel */
static void
paste_image (OviDenoiser *d, const OviDenoiseRequest *req, RunState *rs)
{
  OviTensor *x = rs->x[OVI_TOWER_VIDEO];
  OviTensor *img = (OviTensor *) req->image_latent;

  if (img == NULL)
    return;
  for (int64_t c = 0; c < x->shape[0]; c++) {
    g_autoptr (OviTensor) xc = ovi_tensor_select (x, 0, c);
    g_autoptr (OviTensor) dst = ovi_tensor_select (xc, 0, 0);
    g_autoptr (OviTensor) ic = ovi_tensor_select (img, 0, c);
    g_autoptr (OviTensor) src = ovi_tensor_select (ic, 0, 0);
    ovi_op_copy (d->be, dst, src);
  }
}

/* The model outputs of step i for `branches` (OviBranches) on the current
 * latents, in one batched forward: the positive branch into d->pos, the
 * negative one into d->neg. */
static gboolean
compute_branches (OviDenoiser *d, const OviDenoiseRequest *req, RunState *rs,
                  int i, guint branches, GError **error)
{
  OviFusionPass pos = {
    .text_video = rs->text[0],
    .text_audio = rs->text[1],
    .timestep = ovi_scheduler_timestep (rs->sched[0], i),
    .first_frame_clean = req->image_latent != NULL,
  };
  OviFusionPass neg = pos;
  OviFusionBranch batch[2];
  OviCacheBranch id[2];
  int n = 0;

  neg.text_video = rs->text[2];
  neg.text_audio = rs->text[3];
  neg.slg_layer = req->slg_layer;
  if (branches & OVI_BRANCH_POS) {
    id[n] = OVI_CACHE_BRANCH_POS;
    batch[n++] = (OviFusionBranch){ pos, d->pos[0], d->pos[1] };
  }
  if (branches & OVI_BRANCH_NEG) {
    id[n] = OVI_CACHE_BRANCH_NEG;
    batch[n++] = (OviFusionBranch){ neg, d->neg[0], d->neg[1] };
  }
  /* step caching: a branch that skips reuses its residual and sits out
   * every block, so the blocks run for the others only */
  if (!ovi_step_cache_run_begin_step (rs->cache, i, d->work, branches, rs->x,
                                      error))
    return FALSE;
  for (int b = 0; b < n; b++) {
    ovi_step_cache_run_skip (rs->cache, id[b]);
    batch[b].pass.cache = ovi_step_cache_run_residual (rs->cache, id[b]);
  }
  if (!ovi_fusion_forward_branches (d->model, d->work, rs->x[0], rs->x[1],
                                    batch, n, error))
    return FALSE;
  for (int b = 0; b < n; b++) {
    OviTensor *out[OVI_N_TOWERS] = { batch[b].out_video, batch[b].out_audio };
    if (!ovi_step_cache_run_end_forward (rs->cache, id[b], out, error))
      return FALSE;
  }
  return TRUE;
}

/* the velocity of tower t: guided = neg + scale * (pos - neg), or pos
 * itself where the negative branch was not computed */
static OviTensor *
guide (OviDenoiser *d, int t, double scale, guint branches)
{
  if (!(branches & OVI_BRANCH_NEG))
    return d->pos[t];
  ovi_op_binary (d->be, d->diff[t], d->pos[t], d->neg[t], OVI_BINARY_SUB);
  ovi_op_axpby (d->be, d->guided[t], 1.0f, d->neg[t], (float) scale,
                d->diff[t]);
  return d->guided[t];
}

static gboolean
one_step (OviDenoiser *d, const OviDenoiseRequest *req, RunState *rs, int i,
          GError **error)
{
  guint branches = step_branches (req);
  guint own = own_branches (d, branches);
  OviTensor **x = rs->x;

  if (!ensure_scratch (d, &rs->size, n_branches (own), error))
    return FALSE;
  paste_image (d, req, rs);
  if (!ovi_fusion_activate_loras (d->model, rs->lora, error)
      || !compute_branches (d, req, rs, i, own, error))
    return FALSE;
  share_branches (d, branches, own);
  OviTensor *v = guide (d, OVI_TOWER_VIDEO, req->video_guidance, branches);
  OviTensor *a = guide (d, OVI_TOWER_AUDIO, req->audio_guidance, branches);
  return ovi_scheduler_step (rs->sched[0], x[0], v, error)
         && ovi_scheduler_step (rs->sched[1], x[1], a, error);
}

static void
report_cache (OviDenoiser *d, const OviDenoiseRequest *req, RunState *rs)
{
  if (req->stats)
    ovi_step_cache_run_counts (rs->cache, &req->stats->forwards_computed,
                               &req->stats->forwards_skipped);
  if (req->cache_calibration)
    *req->cache_calibration = ovi_step_cache_run_take_table (
        rs->cache, d->variant,
        req->solver == OVI_SOLVER_EULER ? "euler" : "unipc", req->shift);
}

/* with several ranks, rank 0's view of `cancellable` for all, so that every
 * rank stops at the same step */
static gboolean
ranks_cancelled (OviDenoiser *d, GCancellable *cancellable, GError **error)
{
  gboolean stop = FALSE;

  if (d->comms.world == NULL)
    return FALSE;
  if (!ovi_comm_root_flag (d->comms.world,
                           g_cancellable_is_cancelled (cancellable), &stop,
                           error))
    return TRUE;
  if (stop)
    g_set_error (error, OVI_ERROR, OVI_ERROR_CANCELLED, "denoising cancelled");
  return stop;
}

/* the latents, downloaded (the image pasted into frame 0 once more) */
static gboolean
finish (OviDenoiser *d, const OviDenoiseRequest *req, RunState *rs,
        OviTensor **video_latent, OviTensor **audio_latent, GError **error)
{
  report_cache (d, req, rs);
  paste_image (d, req, rs);
  *video_latent = ovi_backend_download_f32 (d->be, rs->x[0], error);
  if (*video_latent == NULL)
    return FALSE;
  *audio_latent = ovi_backend_download_f32 (d->be, rs->x[1], error);
  if (*audio_latent == NULL) {
    g_clear_pointer (video_latent, ovi_tensor_unref);
    return FALSE;
  }
  return TRUE;
}

gboolean
ovi_denoiser_run (OviDenoiser *d, const OviDenoiseRequest *req,
                  OviStepFunc on_step, gpointer user_data,
                  GCancellable *cancellable, OviTensor **video_latent,
                  OviTensor **audio_latent, GError **error)
{
  if (d->group)
    return ovi_parallel_denoiser_run (d->group, req, on_step, user_data,
                                      cancellable, video_latent, audio_latent,
                                      error);
  return ovi_denoiser_run_rank (d, req, on_step, user_data, cancellable,
                                video_latent, audio_latent, error);
}

gboolean
ovi_denoiser_run_rank (OviDenoiser *d, const OviDenoiseRequest *req,
                       OviStepFunc on_step, gpointer user_data,
                       GCancellable *cancellable, OviTensor **video_latent,
                       OviTensor **audio_latent, GError **error)
{
  RunState rs = { 0 };
  gboolean ok;

  if (!check_request (d, req, error) || !request_size (d, req, &rs.size, error)
      || !request_loras (d, req->loras, &rs.lora, error))
    return FALSE;
  if (!ovi_turns_take (&d->turns, cancellable, "denoising", error)) {
    run_state_clear (&rs);
    return FALSE;
  }
  ok = prepare (d, req, &rs, error);
  ovi_turns_give (&d->turns);
  for (int i = 0, n = ok ? ovi_scheduler_steps (rs.sched[0]) : 0; i < n; i++) {
    if (ranks_cancelled (d, cancellable, error)) {
      ok = FALSE;
      break;
    }
    if (!ovi_turns_take (&d->turns, cancellable, "denoising", error)) {
      ok = FALSE;
      break;
    }
    ok = one_step (d, req, &rs, i, error);
    ovi_turns_give (&d->turns);
    if (!ok)
      break;
    if (on_step)
      on_step (i + 1, n, user_data);
  }
  if (ok && ovi_turns_take (&d->turns, cancellable, "denoising", error)) {
    ok = finish (d, req, &rs, video_latent, audio_latent, error);
    ovi_turns_give (&d->turns);
  } else {
    ok = FALSE;
  }
  run_state_clear (&rs);
  return ok;
}

/* ---- memory estimate ---- */

static guint64
file_bytes (OviWeightFile *wf)
{
  guint64 total = 0;

  for (guint i = 0; i < ovi_weight_file_n_tensors (wf); i++) {
    const char *name = ovi_weight_file_name (wf, i);
    g_autoptr (OviTensor) t = NULL;

    if (!g_str_has_prefix (name, "video_model.")
        && !g_str_has_prefix (name, "audio_model."))
      continue;
    t = ovi_weight_file_get (wf, name, NULL);
    if (t)
      total += ovi_tensor_nbytes (t);
  }
  return total;
}

gboolean
ovi_denoiser_estimate (const OviModelPaths *paths, int width, int height,
                       gsize act_dtype_size, OviDenoiserEstimate *est,
                       GError **error)
{
  g_autoptr (OviWeightFile) wf = NULL;
  OviFusionDims preset = {
    .num_heads = paths->num_heads,
    .text_len = paths->text_len,
    .eps = paths->eps,
    .audio_rope_scale = paths->audio_rope_scale,
  };
  OviFusionDims dims;
  OviFusionEstimate fe;
  OviDenoiseRequest req = { .width = width, .height = height };
  OviDenoiser probe = { .target_area = paths->target_area };
  Size s;

  wf = ovi_weight_file_open (paths->fusion_path, NULL, error);
  if (wf == NULL || !ovi_fusion_read_dims (wf, &preset, &dims, error)
      || !size_from_pixels (&probe, &req, &s, error))
    return FALSE;
  s.frames = paths->video_latent_frames;
  s.audio_length = paths->audio_latent_length;
  /* the two CFG branches of a step run as one batched forward */
  if (!ovi_fusion_estimate_batched (&dims, s.frames, s.height, s.width,
                                    s.audio_length, 2, act_dtype_size,
                                    act_dtype_size, &fe, error))
    return FALSE;
  guint64 latents = (guint64) dims.video_out * s.frames * s.height * s.width
                    + (guint64) s.audio_length * dims.audio_out;
  est->tokens_video = fe.tokens_video;
  est->tokens_audio = fe.tokens_audio;
  est->weight_bytes = file_bytes (wf);
  /* the fusion activations, 4 text embeddings, and per modality 5 latent
   * buffers here and 5 of scheduler state */
  est->activation_bytes
      = fe.activation_bytes
        + 4 * (guint64) dims.text_len * dims.dim * act_dtype_size
        + 10 * latents * act_dtype_size;
  return TRUE;
}
