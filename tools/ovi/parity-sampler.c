/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: `ovi parity` runner for the sampler case (the official generate
 * loop). Checks, in order:
 *  1. the schedule: timesteps (exact) and sigmas;
 *  2. teacher-forced DiT: step{i}.in.* + text.* -> step{i}.pred_*, the
 *     positive and negative passes as one batched forward;
 *  3. teacher-forced scheduler: step{i}.in.* + step{i}.guided_* (the golden
 *     guided history) -> step{i}.out.*;
 *  4. the free-running denoiser from init.* noise -> final.*;
 *  5. the video VAE and audio decoder on those latents -> out.video,
 *     out.audio (components.video_vae, components.audio_vae_vocoder).
 * The weights are the fusion_dit case's (components.fusion_model). */
#include "parity-dit.h"
#include "ovi-engine.h"
#include "ovi-scheduler.h"
#include "ovi-denoiser-parallel.h"

#include <string.h>

typedef struct {
  OviParity *p;
  char *fusion_path;
  OviFusionDims preset;
  int steps, slg;
  double shift, video_scale, audio_scale;
  OviTensor *image; /* i2v.latent or NULL */
} Sampler;

static void
sampler_clear (Sampler *s)
{
  g_free (s->fusion_path);
  g_clear_pointer (&s->image, ovi_tensor_unref);
}

static const char *
string_member (JsonObject *o, const char *name)
{
  JsonNode *n = o ? json_object_get_member (o, name) : NULL;

  if (n == NULL || json_node_get_value_type (n) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (n);
}

/* "../fusion_dit/weights.safetensors (+ its config.json)" */
static gboolean
read_fusion (Sampler *s, GError **error)
{
  OviParity *p = s->p;
  JsonObject *comp = json_object_get_object_member (p->config, "components");
  const char *spec = string_member (comp, "fusion_model");
  g_auto (GStrv) words = NULL;
  g_autofree char *dir = NULL, *config = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonNode *root;

  if (spec == NULL) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                 "%s: config.json has no components.fusion_model", p->case_dir);
    return FALSE;
  }
  words = g_strsplit (spec, " ", 2);
  s->fusion_path = ovi_parity_path (p, words[0]);
  dir = g_path_get_dirname (s->fusion_path);
  config = g_build_filename (dir, "config.json", NULL);
  if (!json_parser_load_from_file (parser, config, error))
    return FALSE;
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT, "%s: not an object",
                 config);
    return FALSE;
  }
  return ovi_parity_fusion_preset (json_node_get_object (root), config,
                                   &s->preset, error);
}

static gboolean
read_args (Sampler *s, GError **error)
{
  OviParity *p = s->p;
  JsonObject *args = json_object_get_object_member (p->config, "generate_args");
  const char *solver = string_member (args, "solver_name");
  double steps, slg;

  if (args == NULL || g_strcmp0 (solver, "unipc") != 0) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                 "%s: generate_args missing or solver \"%s\" is not unipc",
                 p->case_dir, solver ? solver : "");
    return FALSE;
  }
  if (!ovi_parity_number (args, "sample_steps", p->case_dir, &steps, error)
      || !ovi_parity_number (args, "shift", p->case_dir, &s->shift, error)
      || !ovi_parity_number (args, "video_guidance_scale", p->case_dir,
                             &s->video_scale, error)
      || !ovi_parity_number (args, "audio_guidance_scale", p->case_dir,
                             &s->audio_scale, error)
      || !ovi_parity_number (args, "slg_layer", p->case_dir, &slg, error))
    return FALSE;
  s->steps = (int) steps;
  s->slg = (int) slg;
  if (ovi_weight_file_contains (p->io, "i2v.latent"))
    s->image = ovi_weight_file_get (p->io, "i2v.latent", error);
  return s->image != NULL || !ovi_weight_file_contains (p->io, "i2v.latent");
}

static OviTensor *
io (Sampler *s, const char *format, int i, GError **error)
{
  g_autofree char *name = g_strdup_printf (format, i);
  return ovi_weight_file_get (s->p->io, name, error);
}

/* ---- 1. schedule ---- */

static gboolean
check_schedule (Sampler *s, GError **error)
{
  static const char *const tower[2] = { "video", "audio" };
  g_autoptr (OviScheduler) sched = ovi_scheduler_new (
      OVI_SCHEDULER_UNIPC, s->p->backend, s->steps, s->shift, error);
  g_autofree int64_t *ts = g_new (int64_t, s->steps);
  g_autoptr (OviTensor) sig = NULL;

  if (sched == NULL)
    return FALSE;
  sig = ovi_tensor_new (OVI_DTYPE_F32, 1, (int64_t[]){ s->steps + 1 }, error);
  if (sig == NULL)
    return FALSE;
  for (int i = 0; i <= s->steps; i++)
    ((float *) ovi_tensor_data (sig))[i] = ovi_scheduler_sigma (sched, i);
  for (int i = 0; i < s->steps; i++)
    ts[i] = (int64_t) ovi_scheduler_timestep (sched, i);
  for (int k = 0; k < 2; k++) {
    g_autofree char *tn = g_strdup_printf ("sched.%s.timesteps", tower[k]);
    g_autofree char *sn = g_strdup_printf ("sched.%s.sigmas", tower[k]);
    g_autoptr (OviTensor) ref = ovi_weight_file_get (s->p->io, tn, error);
    if (ref == NULL)
      return FALSE;
    ovi_parity_check_exact (s->p, tn, ts, s->steps, ovi_tensor_data (ref),
                            ovi_tensor_numel (ref));
    ovi_parity_check_io (s->p, sn, sig);
  }
  return TRUE;
}

/* ---- 2. teacher-forced DiT ---- */

typedef struct {
  OviFusion *model;
  OviFusionWork *work;
  OviTensor *text[4];
  OviTensor *out_vid[2], *out_audio[2]; /* positive, negative */
} Dit;

static void
dit_clear (Dit *d)
{
  for (int i = 0; i < 4; i++)
    g_clear_pointer (&d->text[i], ovi_tensor_unref);
  for (int i = 0; i < 2; i++) {
    g_clear_pointer (&d->out_vid[i], ovi_tensor_unref);
    g_clear_pointer (&d->out_audio[i], ovi_tensor_unref);
  }
  g_clear_pointer (&d->work, ovi_fusion_work_free);
  g_clear_pointer (&d->model, ovi_fusion_free);
}

static gboolean
dit_open (Sampler *s, Dit *d, OviWeightFile *wf, const OviTensor *vid,
          const OviTensor *audio, GError **error)
{
  static const char *const names[4]
      = { "text.pos", "text.pos", "text.vid_neg", "text.audio_neg" };
  OviBackend *be = s->p->backend;

  d->model = ovi_fusion_new (wf, &s->preset, be, error);
  if (d->model == NULL)
    return FALSE;
  d->work
      = ovi_fusion_work_new_batched (d->model, vid->shape[1], vid->shape[2],
                                     vid->shape[3], audio->shape[0], 2, error);
  if (d->work == NULL)
    return FALSE;
  for (int i = 0; i < 4; i++) {
    g_autoptr (OviTensor) ctx = ovi_weight_file_get (s->p->io, names[i], error);
    if (ctx == NULL)
      return FALSE;
    d->text[i] = ovi_fusion_embed_text (
        d->model, i % 2 ? OVI_TOWER_AUDIO : OVI_TOWER_VIDEO, ctx, error);
    if (d->text[i] == NULL)
      return FALSE;
  }
  for (int i = 0; i < 2; i++) {
    d->out_vid[i] = ovi_backend_new_act (be, vid->ndim, vid->shape);
    d->out_audio[i] = ovi_backend_new_act (be, audio->ndim, audio->shape);
  }
  return ovi_backend_sync (be, error);
}

static OviFusionBranch
dit_branch (Sampler *s, Dit *d, int negative, double t)
{
  OviFusionPass pass = {
    .text_video = d->text[negative ? 2 : 0],
    .text_audio = d->text[negative ? 3 : 1],
    .timestep = t,
    .first_frame_clean = s->image != NULL,
    .slg_layer = negative ? s->slg : 0,
  };
  return (OviFusionBranch){ pass, d->out_vid[negative],
                            d->out_audio[negative] };
}

static gboolean
dit_step (Sampler *s, Dit *d, int i, OviTensor *vid, OviTensor *audio, double t,
          GError **error)
{
  static const char *const kind[2] = { "pos", "neg" };
  OviFusionBranch branches[2]
      = { dit_branch (s, d, 0, t), dit_branch (s, d, 1, t) };

  if (!ovi_fusion_forward_branches (d->model, d->work, vid, audio, branches, 2,
                                    error))
    return FALSE;
  for (int b = 0; b < 2; b++) {
    g_autofree char *vn = g_strdup_printf ("step%d.pred_vid_%s", i, kind[b]);
    g_autofree char *an = g_strdup_printf ("step%d.pred_audio_%s", i, kind[b]);
    ovi_parity_check_io (s->p, vn, d->out_vid[b]);
    ovi_parity_check_io (s->p, an, d->out_audio[b]);
  }
  return TRUE;
}

/* guided = neg + scale * (pos - neg), from our own predictions: `neg`
 * holds the negative prediction, `pos` the positive one, both overwritten */
static void
check_guided (Sampler *s, int i, const char *tower, double scale,
              OviTensor *pos, OviTensor *neg)
{
  g_autofree char *name = g_strdup_printf ("step%d.guided_%s", i, tower);
  OviBackend *be = s->p->backend;

  ovi_op_axpby (be, pos, 1.0f, pos, -1.0f, neg);
  ovi_op_axpby (be, pos, 1.0f, neg, (float) scale, pos);
  ovi_parity_check_io (s->p, name, pos);
}

/* the timestep the golden run fed the DiT against our scheduler's */
static void
check_timestep (Sampler *s, OviScheduler *sched, int i)
{
  g_autofree char *name = g_strdup_printf ("step%d.t", i);
  g_autoptr (OviTensor) t
      = ovi_tensor_new (OVI_DTYPE_F32, 1, (int64_t[]){ 1 }, NULL);

  ((float *) ovi_tensor_data (t))[0]
      = (float) ovi_scheduler_timestep (sched, i);
  ovi_parity_check_io (s->p, name, t);
}

static gboolean
dit_both (Sampler *s, Dit *d, int i, OviTensor *vid, OviTensor *audio, double t,
          GError **error)
{
  if (!dit_step (s, d, i, vid, audio, t, error))
    return FALSE;
  check_guided (s, i, "vid", s->video_scale, d->out_vid[0], d->out_vid[1]);
  check_guided (s, i, "audio", s->audio_scale, d->out_audio[0],
                d->out_audio[1]);
  return ovi_backend_sync (s->p->backend, error);
}

static gboolean
check_dit (Sampler *s, GError **error)
{
  g_autoptr (OviWeightFile) wf
      = ovi_weight_file_open (s->fusion_path, NULL, error);
  g_autoptr (OviScheduler) sched
      = wf ? ovi_scheduler_new (OVI_SCHEDULER_UNIPC, s->p->backend, s->steps,
                                s->shift, error)
           : NULL;
  Dit d = { 0 };
  gboolean ok = sched != NULL;

  for (int i = 0; ok && i < s->steps; i++) {
    g_autoptr (OviTensor) vid = io (s, "step%d.in.vid", i, error);
    g_autoptr (OviTensor) audio
        = vid ? io (s, "step%d.in.audio", i, error) : NULL;
    g_autoptr (OviTensor) t = audio ? io (s, "step%d.t", i, error) : NULL;
    ok = t != NULL && (d.model || dit_open (s, &d, wf, vid, audio, error));
    if (!ok)
      break;
    check_timestep (s, sched, i);
    ok = dit_both (s, &d, i, vid, audio,
                   ovi_tensor_get_f64 (t, (int64_t[]){ 0 }), error);
  }
  dit_clear (&d);
  return ok;
}

/* ---- 3. teacher-forced scheduler ---- */

static gboolean
sched_step (Sampler *s, OviScheduler *sched, int i, const char *tower,
            GError **error)
{
  g_autofree char *in_fmt = g_strdup_printf ("step%%d.in.%s", tower);
  g_autofree char *g_fmt = g_strdup_printf ("step%%d.guided_%s", tower);
  g_autofree char *out_name = g_strdup_printf ("step%d.out.%s", i, tower);
  g_autoptr (OviTensor) in = io (s, in_fmt, i, error);
  g_autoptr (OviTensor) guided = in ? io (s, g_fmt, i, error) : NULL;
  g_autoptr (OviTensor) x = NULL, v = NULL;
  OviBackend *be = s->p->backend;

  if (guided == NULL)
    return FALSE;
  x = ovi_backend_new_act (be, in->ndim, in->shape);
  v = ovi_backend_new_act (be, guided->ndim, guided->shape);
  ovi_op_copy (be, x, in);
  ovi_op_copy (be, v, guided);
  if (!ovi_scheduler_step (sched, x, v, error))
    return FALSE;
  ovi_parity_check_io (s->p, out_name, x);
  return TRUE;
}

static gboolean
check_scheduler (Sampler *s, GError **error)
{
  OviBackend *be = s->p->backend;
  g_autoptr (OviScheduler) sv
      = ovi_scheduler_new (OVI_SCHEDULER_UNIPC, be, s->steps, s->shift, error);
  g_autoptr (OviScheduler) sa
      = sv ? ovi_scheduler_new (OVI_SCHEDULER_UNIPC, be, s->steps, s->shift,
                                error)
           : NULL;

  if (sa == NULL)
    return FALSE;
  for (int i = 0; i < s->steps; i++)
    if (!sched_step (s, sv, i, "vid", error)
        || !sched_step (s, sa, i, "audio", error))
      return FALSE;
  return TRUE;
}

/* ---- 5. decoders: out.video, out.audio from final.* ---- */

typedef struct {
  OviTensor *video; /* [3, T, H, W] host */
  int next;
} Gather;

static gboolean
gather_frames (const OviTensor *frames, int first_frame, gpointer user_data)
{
  Gather *g = user_data;
  int64_t n = frames->shape[1], plane = g->video->shape[2] * g->video->shape[3];
  const float *src = ovi_tensor_data (frames);
  float *dst = ovi_tensor_data (g->video);

  if (frames->ndim != 4 || first_frame != g->next
      || first_frame + n > g->video->shape[1]
      || frames->shape[2] * frames->shape[3] != plane)
    return FALSE;
  for (int64_t c = 0; c < 3; c++)
    memcpy (dst + (c * g->video->shape[1] + first_frame) * plane,
            src + c * n * plane, n * plane * sizeof (float));
  g->next += n;
  return TRUE;
}

/* "a.safetensors, b.safetensors" relative to the case: the i-th path */
static char *
component_path (Sampler *s, const char *key, int index, GError **error)
{
  JsonObject *comp = json_object_get_object_member (s->p->config, "components");
  const char *spec = string_member (comp, key);
  g_auto (GStrv) parts = spec ? g_strsplit (spec, ",", -1) : NULL;

  if (parts == NULL || (int) g_strv_length (parts) <= index) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                 "%s: config.json has no components.%s path %d", s->p->case_dir,
                 key, index);
    return NULL;
  }
  g_strstrip (parts[index]);
  g_auto (GStrv) words = g_strsplit (parts[index], " ", 2);
  return ovi_parity_path (s->p, words[0]);
}

static gboolean
check_video_decode (Sampler *s, const OviTensor *vid, GError **error)
{
  g_autofree char *path = component_path (s, "video_vae", 0, error);
  OviVideoVae *vae
      = path ? ovi_video_vae_new_from_file (path, s->p->backend, error) : NULL;
  Gather g = { 0 };
  gboolean ok;

  if (vae == NULL)
    return FALSE;
  g.video
      = ovi_tensor_new (OVI_DTYPE_F32, 4,
                        (int64_t[]){ 3, 1 + 4 * (vid->shape[1] - 1),
                                     16 * vid->shape[2], 16 * vid->shape[3] },
                        error);
  ok = g.video
       && ovi_video_vae_decode (vae, vid, gather_frames, &g, NULL, error);
  ovi_video_vae_free (vae);
  if (ok && g.next != g.video->shape[1]) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_PARITY,
                 "video decode delivered %d of %" G_GINT64_FORMAT " frames",
                 g.next, g.video->shape[1]);
    ok = FALSE;
  }
  if (ok)
    ovi_parity_check_io (s->p, "out.video", g.video);
  g_clear_pointer (&g.video, ovi_tensor_unref);
  return ok;
}

static gboolean
check_audio_decode (Sampler *s, const OviTensor *audio, GError **error)
{
  g_autofree char *vae = component_path (s, "audio_vae_vocoder", 0, error);
  g_autofree char *voc
      = vae ? component_path (s, "audio_vae_vocoder", 1, error) : NULL;
  OviAudioDecoder *dec
      = voc ? ovi_audio_decoder_new_from_files (vae, voc, s->p->backend, error)
            : NULL;
  g_autoptr (OviTensor) wav = NULL;

  if (dec == NULL)
    return FALSE;
  wav = ovi_audio_decoder_decode (dec, audio, NULL, error);
  ovi_audio_decoder_free (dec);
  if (wav == NULL)
    return FALSE;
  ovi_parity_check_io (s->p, "out.audio", wav);
  return TRUE;
}

/* The decoders as the official generate() runs them on the final latents
 * (the video decode clamps to [-1, 1]; the audio is the vocoder output). */
static gboolean
check_decoded (Sampler *s, const OviTensor *vid, const OviTensor *audio,
               GError **error)
{
  return check_video_decode (s, vid, error)
         && check_audio_decode (s, audio, error);
}

/* ---- 4. free-running loop ---- */

/* the loop on --sp x --cfg-parallel ranks of the case's backend kind */
static gboolean
run_parallel (OviParity *p, const OviModelPaths *paths,
              const OviDenoiseRequest *req, OviTensor **vid, OviTensor **audio,
              GError **error)
{
  OviParallelLayout layout
      = { .sp = p->sp, .cfg_parallel = p->cfg_parallel, .shard = p->shard };
  int n = ovi_parallel_layout_ranks (&layout);
  g_autofree OviBackend **be = g_new0 (OviBackend *, n);
  g_autoptr (OviParallelDenoiser) pd = NULL;

  for (int w = 0; w < n; w++) {
    be[w]
        = ovi_backend_new_by_name (ovi_backend_get_name (p->backend), w, error);
    if (be[w] == NULL) {
      for (int i = 0; i < w; i++)
        ovi_backend_free (be[i]);
      return FALSE;
    }
  }
  pd = ovi_parallel_denoiser_new (paths, be, n, &layout, error);
  return pd
         && ovi_parallel_denoiser_run (pd, req, NULL, NULL, NULL, vid, audio,
                                       error);
}

static gboolean
check_loop (Sampler *s, GError **error)
{
  OviParity *p = s->p;
  OviModelPaths paths = {
    .variant = (char *) "golden",
    .fusion_path = s->fusion_path,
    .num_heads = s->preset.num_heads,
    .text_len = s->preset.text_len,
    .eps = s->preset.eps,
    .audio_rope_scale = s->preset.audio_rope_scale,
  };
  g_autoptr (OviTensor) tp = NULL, tvn = NULL, tan = NULL, nv = NULL, na = NULL,
                        vid = NULL, audio = NULL;
  OviDenoiseRequest req;
  OviDenoiser *d;
  gboolean ok;

  if (!(tp = ovi_weight_file_get (p->io, "text.pos", error))
      || !(tvn = ovi_weight_file_get (p->io, "text.vid_neg", error))
      || !(tan = ovi_weight_file_get (p->io, "text.audio_neg", error))
      || !(nv = ovi_weight_file_get (p->io, "init.vid_noise", error))
      || !(na = ovi_weight_file_get (p->io, "init.audio_noise", error)))
    return FALSE;
  paths.video_latent_frames = nv->shape[1];
  paths.audio_latent_length = na->shape[0];
  ovi_denoise_request_init (&req);
  req.text_pos = tp;
  req.text_video_neg = tvn;
  req.text_audio_neg = tan;
  req.image_latent = s->image;
  req.video_noise = nv;
  req.audio_noise = na;
  req.steps = s->steps;
  req.shift = s->shift;
  req.video_guidance = s->video_scale;
  req.audio_guidance = s->audio_scale;
  req.slg_layer = s->slg;
  if (p->sp > 1 || p->cfg_parallel || p->shard > 1) {
    ok = run_parallel (p, &paths, &req, &vid, &audio, error);
  } else {
    d = ovi_denoiser_new (&paths, p->backend, error);
    if (d == NULL)
      return FALSE;
    ok = ovi_denoiser_run (d, &req, NULL, NULL, NULL, &vid, &audio, error);
    ovi_denoiser_free (d);
  }
  if (!ok)
    return FALSE;
  ovi_parity_check_io (p, "final.vid", vid);
  ovi_parity_check_io (p, "final.audio", audio);
  return check_decoded (s, vid, audio, error);
}

gboolean
ovi_parity_run_sampler (OviParity *p, GError **error)
{
  Sampler s = { .p = p };
  gboolean ok;

  if (p->io == NULL) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                 "%s: the case has no io.safetensors", p->case_dir);
    return FALSE;
  }
  ok = read_fusion (&s, error) && read_args (&s, error)
       && check_schedule (&s, error) && check_dit (&s, error)
       && check_scheduler (&s, error) && check_loop (&s, error);
  sampler_clear (&s);
  return ok;
}
