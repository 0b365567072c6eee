/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: `ovi bench` — times the stages at a model's real size with random
 * weights built in memory on the chosen backend (no files).
 *
 * Each model's weights are laid out exactly as the official files name and
 * shape them (ovi_tiny_list_tensors at the preset's dims), written into one
 * in-memory safetensors image filled with small random values, and opened
 * with ovi_weight_file_open_bytes: the model constructors read them as they
 * read a file and upload them to the backend. Random weights time as real
 * ones do (shapes, not values, set the work).
 *
 * Times are wall-clock between ovi_backend_sync() calls after one warm-up
 * run (the median of --repeat runs). TFLOP/s counts matmul and attention
 * FLOPs analytically (research/peers-and-performance.md §4.2); the VAE and
 * audio stages print no FLOP rate. Peak device memory is the CUDA pool's
 * high-water mark (cuda backends only). --profile adds, per stage, the
 * device time of each op kind from CUDA events (cuda backends only), so
 * the first GPU run shows where the time goes.
 *
 * The copy stage measures what block streaming moves per block (one fused
 * block of int8 / fp8 weights) from host to device on the copy queue: from
 * pinned memory, from a file mapping in the page cache (the weight cache's
 * blocks: staged through pinned buffers on a GPU) and from a mapping whose
 * pages were dropped first (read from the disk). On the CPU backend the
 * "device" is host memory: the lines say so and time a memcpy.
 */
#include "ovi-cli.h"

#include "ovi-backend.h"
#include "ovi-bigvgan.h"
#include "ovi-fusion.h"
#include "ovi-mmaudio-vae.h"
#include "ovi-placement.h"
#include "ovi-presets.h"
#include "ovi-t5.h"
#include "ovi-tiny.h"
#include "ovi-wan-vae.h"
#include "ovi-weight-cache.h"
#include "ovi-weights.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <gmodule.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* the op kinds of the cuda module's profile (OviCudaProfKind) */
#define N_PROF 5
static const char *const prof_names[N_PROF]
    = { "gemm", "attention", "norm/elementwise", "conv", "copy" };

typedef struct {
  OviBackend *be;
  int repeat;
  gboolean (*mem) (OviBackend *, guint64 *, guint64 *, gboolean);
  /* the cuda module's profiler, when --profile */
  gboolean (*prof_read) (OviBackend *, double *, guint64 *, GError **);
  /* --vram-mode: the DiT and umT5 weights go through the mode's placement
   * filter (quantised, streamed) as the elements load them */
  OviPlacementPlan plan;
  OviPlacement *placement;
} Bench;

/* ---- in-memory weights ---- */

static guint64
mix (guint64 *s)
{
  guint64 z = (*s += 0x9e3779b97f4a7c15ull);

  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* small random values (|v| in about 2^-12 .. 2^-5, random sign): bf16 or
 * f32 bit patterns, never NaN or Inf */
static void
fill_random (guint8 *p, gsize n, OviDType dt, guint64 seed)
{
  guint64 s = seed;
  gsize i = 0;

  if (dt == OVI_DTYPE_BF16) {
    for (; i + 2 <= n; i += 2) {
      guint64 r = mix (&s);
      guint16 v = (guint16) ((r & 0x807f) | ((115 + (r >> 16) % 8) << 7));
      memcpy (p + i, &v, 2);
    }
  } else {
    for (; i + 4 <= n; i += 4) {
      guint64 r = mix (&s);
      guint32 v = (guint32) ((r & 0x807fffffu) | ((115 + (r >> 32) % 8) << 23));
      memcpy (p + i, &v, 4);
    }
  }
}

/* one safetensors image holding every tensor of `file` at `cfg` */
static OviWeightFile *
random_weights (const OviTinyConfig *cfg, OviTinyFile file, OviDType dt,
                guint64 *n_params, GError **error)
{
  g_autoptr (GPtrArray) specs = ovi_tiny_list_tensors (cfg, file);
  g_autoptr (GString) h
      = g_string_new ("{\"__metadata__\":{\"format\":\"pt\"}");
  g_autoptr (GBytes) bytes = NULL;
  gsize es = ovi_dtype_size (dt), off = 0, hlen;
  guint64 np = 0;
  guint8 *buf;

  for (guint i = 0; i < specs->len; i++) {
    OviTinyTensorSpec *s = specs->pdata[i];
    gsize n = 1;
    g_string_append_printf (h, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", s->name,
                            ovi_dtype_name (dt));
    for (int d = 0; d < s->ndim; d++) {
      g_string_append_printf (h, "%s%" G_GINT64_FORMAT, d ? "," : "",
                              s->shape[d]);
      n *= (gsize) s->shape[d];
    }
    g_string_append_printf (
        h, "],\"data_offsets\":[%" G_GSIZE_FORMAT ",%" G_GSIZE_FORMAT "]}", off,
        off + n * es);
    off += n * es;
    np += n;
  }
  g_string_append_c (h, '}');
  while (h->len % 8)
    g_string_append_c (h, ' ');
  hlen = h->len;
  buf = g_try_malloc (8 + hlen + off);
  if (buf == NULL) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                 "cannot allocate %" G_GSIZE_FORMAT
                 " bytes of host memory for the random %s weights",
                 8 + hlen + off, ovi_tiny_file_path (file));
    return NULL;
  }
  {
    guint64 le = GUINT64_TO_LE ((guint64) hlen);
    memcpy (buf, &le, 8);
  }
  memcpy (buf + 8, h->str, hlen);
  fill_random (buf + 8 + hlen, off, dt, 0x5eed0000u + (guint64) file);
  bytes = g_bytes_new_take (buf, 8 + hlen + off);
  if (n_params)
    *n_params = np;
  return ovi_weight_file_open_bytes (bytes, ovi_tiny_file_path (file), NULL,
                                     error);
}

/* ---- timing ---- */

typedef gboolean (*RunFunc) (gpointer data, GError **error);

static int
cmp_double (gconstpointer a, gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return x < y ? -1 : x > y;
}

/* the device time per op kind of the timed runs, per run */
static gboolean
print_profile (Bench *b, GError **error)
{
  double ms[N_PROF], total = 0;
  guint64 calls[N_PROF];

  if (!b->prof_read (b->be, ms, calls, error))
    return FALSE;
  for (int k = 0; k < N_PROF; k++)
    total += ms[k];
  for (int k = 0; k < N_PROF; k++)
    if (calls[k])
      printf ("#   %-18s %10.2f ms %5.1f %%  %8.1f calls per run\n",
              prof_names[k], ms[k] / b->repeat,
              total > 0 ? 100 * ms[k] / total : 0.0,
              (double) calls[k] / b->repeat);
  return TRUE;
}

/* median ms of `repeat` runs after one warm-up; -1 on failure */
static double
time_runs (Bench *b, RunFunc run, gpointer data, guint64 *peak, GError **error)
{
  g_autofree double *ms = g_new0 (double, b->repeat);
  double discard[N_PROF];
  guint64 discard_calls[N_PROF];

  if (!run (data, error) || !ovi_backend_sync (b->be, error))
    return -1;
  /* the warm-up's events are not the timed runs' */
  if (b->prof_read && !b->prof_read (b->be, discard, discard_calls, error))
    return -1;
  if (b->mem)
    b->mem (b->be, NULL, NULL, TRUE);
  for (int i = 0; i < b->repeat; i++) {
    gint64 t0 = g_get_monotonic_time ();
    if (!run (data, error) || !ovi_backend_sync (b->be, error))
      return -1;
    ms[i] = (g_get_monotonic_time () - t0) / 1000.0;
  }
  if (peak) {
    guint64 used = 0;
    *peak = 0;
    if (b->mem && b->mem (b->be, &used, NULL, FALSE))
      *peak = used;
  }
  qsort (ms, b->repeat, sizeof (double), cmp_double);
  if (b->prof_read && !print_profile (b, error))
    return -1;
  return ms[b->repeat / 2];
}

static void
report (Bench *b, const char *stage, const char *what, double ms, double flops,
        guint64 peak)
{
  char rate[32] = "-", mem[32] = "-";

  if (flops > 0 && ms > 0)
    g_snprintf (rate, sizeof (rate), "%.4g", flops / (ms * 1e-3) / 1e12);
  if (peak)
    g_snprintf (mem, sizeof (mem), "%.2f GiB", peak / (1024.0 * 1024 * 1024));
  printf ("%-6s %-44s %10.2f ms %9s TFLOP/s %9.4g TFLOP %10s\n", stage, what,
          ms, rate, flops / 1e12, mem);
  fflush (stdout);
}

/* ---- DiT ---- */

typedef struct {
  OviFusion *model;
  OviFusionWork *work;
  OviTensor *video, *audio;
  OviFusionBranch branch[2]; /* cond, uncond (skip-layer guidance) */
  int n_branches;
} DitRun;

static gboolean
run_dit (gpointer data, GError **error)
{
  DitRun *r = data;

  return ovi_fusion_forward_branches (r->model, r->work, r->video, r->audio,
                                      r->branch, r->n_branches, error);
}

/* matmul + attention FLOPs of one forward (research §4.2) */
static double
dit_flops (const OviFusionDims *d, double Nv, double Na)
{
  double dm = d->dim, f = d->ffn_dim, T = d->text_len;
  double linear = 2.0 * (6 * dm * dm + 2 * dm * f) * (Nv + Na);
  double text_kv = 2 * 2 * 2 * T * dm * dm;
  double fusion_kv = 4 * dm * dm * (Na + Nv);
  double attn = 4 * Nv * Nv * dm + 4 * Na * Na * dm + 4 * dm * T * (Nv + Na)
                + 8 * dm * Nv * Na;

  return d->num_layers * (linear + text_kv + fusion_kv + attn);
}

static OviTensor *
host_random (int nd, const int64_t *shape, guint64 seed)
{
  OviTensor *t = ovi_tensor_new (OVI_DTYPE_F32, nd, shape, NULL);
  guint64 s = seed;
  int64_t n;

  if (t == NULL)
    return NULL;
  n = ovi_tensor_numel (t);
  for (int64_t i = 0; i < n; i++)
    ((float *) ovi_tensor_data (t))[i]
        = (float) ((double) (mix (&s) >> 11) / 9007199254740992.0 * 2 - 1);
  return t;
}

static gboolean
bench_dit (Bench *b, const OviModelPreset *mp, const OviTinyConfig *cfg,
           gboolean do_dit, gboolean do_step, int frames, int h, int w,
           GError **error)
{
  g_autoptr (OviWeightFile) wf = NULL;
  g_autoptr (OviFusion) model = NULL;
  g_autoptr (OviFusionWork) work = NULL;
  g_autoptr (OviTensor) ctx = NULL, video = NULL, audio = NULL, tv = NULL,
                        ta = NULL;
  g_autoptr (GPtrArray) outs
      = g_ptr_array_new_with_free_func ((GDestroyNotify) ovi_tensor_unref);
  OviFusionDims preset = { 0 };
  const OviFusionDims *d;
  guint64 np = 0, peak = 0;
  int64_t lh = h / 16, lw = w / 16, L = mp->audio_latent_length;
  double Nv, ms, fl;
  DitRun r = { 0 };
  gint64 t0 = g_get_monotonic_time ();

  wf = random_weights (cfg, OVI_TINY_FILE_FUSION, OVI_DTYPE_BF16, &np, error);
  if (wf == NULL)
    return FALSE;
  preset.num_heads = mp->num_heads;
  preset.text_len = mp->text_len;
  preset.eps = mp->eps;
  preset.audio_rope_scale = mp->audio_rope_scale;
  model = ovi_fusion_new_filtered (
      wf, &preset, b->be, ovi_placement_weight_filter, b->placement, error);
  if (model == NULL || !ovi_backend_sync (b->be, error))
    return FALSE;
  ovi_fusion_set_streaming (model, b->plan.stream_blocks);
  ovi_fusion_set_stream_budget (model, b->plan.host_budget);
  d = ovi_fusion_get_dims (model);
  printf ("# fusion DiT: %" G_GUINT64_FORMAT
          " parameters, built in %.1f s; latents [%d, %d, %" G_GINT64_FORMAT
          ", %" G_GINT64_FORMAT "] + [%" G_GINT64_FORMAT ", %d]\n",
          np, (g_get_monotonic_time () - t0) / 1e6, d->video_in, frames, lh, lw,
          L, d->audio_in);
  ctx = host_random (2, (int64_t[]){ d->text_len, d->text_dim }, 1);
  tv = ovi_fusion_embed_text (model, OVI_TOWER_VIDEO, ctx, error);
  ta = tv ? ovi_fusion_embed_text (model, OVI_TOWER_AUDIO, ctx, error) : NULL;
  if (ta == NULL)
    return FALSE;
  work = ovi_fusion_work_new_batched (model, frames, lh, lw, L, do_step ? 2 : 1,
                                      error);
  if (work == NULL)
    return FALSE;
  video = host_random (4, (int64_t[]){ d->video_in, frames, lh, lw }, 2);
  audio = host_random (2, (int64_t[]){ L, d->audio_in }, 3);
  r = (DitRun){ model, work, video, audio, .n_branches = 1 };
  for (int i = 0; i < 2; i++) {
    OviTensor *ov = ovi_backend_new_act (
        b->be, 4, (int64_t[]){ d->video_out, frames, lh, lw });
    OviTensor *oa
        = ovi_backend_new_act (b->be, 2, (int64_t[]){ L, d->audio_out });
    if (ov)
      g_ptr_array_add (outs, ov);
    if (oa)
      g_ptr_array_add (outs, oa);
    if (ov == NULL || oa == NULL)
      return ovi_backend_sync (b->be, error);
    r.branch[i] = (OviFusionBranch){
      .pass = { .text_video = tv,
                .text_audio = ta,
                .timestep = 999.0,
                /* the uncond branch skips a block, as Ovi's SLG does */
                .slg_layer = i ? MIN (11, d->num_layers - 1) : 0 },
      .out_video = ov,
      .out_audio = oa,
    };
  }
  Nv = (double) frames * (lh / d->patch[1]) * (lw / d->patch[2]);
  fl = dit_flops (d, Nv, (double) L);
  if (do_dit) {
    g_autofree char *what = g_strdup_printf (
        "DiT forward (%.0f video + %" G_GINT64_FORMAT " audio tokens)", Nv, L);
    ms = time_runs (b, run_dit, &r, &peak, error);
    if (ms < 0)
      return FALSE;
    report (b, "dit", what, ms, fl, peak);
  }
  if (do_step) {
    /* a denoising step: the conditional and the unconditional branch (CFG,
     * one block skipped) batched into one forward */
    r.n_branches = 2;
    ms = time_runs (b, run_dit, &r, &peak, error);
    if (ms < 0)
      return FALSE;
    report (b, "step", "denoising step (cond + uncond, batched)", ms,
            fl * (2.0 - 1.0 / d->num_layers), peak);
  }
  return TRUE;
}

/* ---- T5 ---- */

typedef struct {
  OviT5 *t5;
  int64_t *ids, *mask;
  int batch, len;
} T5Run;

static gboolean
run_t5 (gpointer data, GError **error)
{
  T5Run *r = data;
  g_autoptr (OviTensor) out
      = ovi_t5_forward (r->t5, r->ids, r->mask, r->batch, r->len, NULL, error);

  return out != NULL;
}

static gboolean
bench_t5 (Bench *b, const OviTinyConfig *cfg, int len, GError **error)
{
  g_autoptr (OviWeightFile) wf = NULL;
  g_autoptr (OviT5) t5 = NULL;
  g_autofree int64_t *ids = NULL, *mask = NULL;
  guint64 np = 0, peak = 0, s = 7;
  T5Run r;
  double ms, d = cfg->t5_dim, da = cfg->t5_dim_attn, f = cfg->t5_ffn, fl;
  int batch = 3;

  wf = random_weights (cfg, OVI_TINY_FILE_T5, OVI_DTYPE_BF16, &np, error);
  if (wf == NULL
      || !(t5 = ovi_t5_new_filtered (wf, b->be, 128, ovi_placement_t5_filter,
                                     b->placement, error)))
    return FALSE;
  printf ("# umT5 encoder: %" G_GUINT64_FORMAT " parameters%s\n", np,
          ovi_t5_get_streaming (t5) == OVI_T5_STREAM_SLOTS
              ? ", blocks streamed from host memory through two slots"
              : "");
  ids = g_new (int64_t, batch * len);
  mask = g_new (int64_t, batch * len);
  for (int i = 0; i < batch * len; i++) {
    ids[i] = (int64_t) (mix (&s) % (guint64) cfg->t5_vocab);
    mask[i] = 1;
  }
  r = (T5Run){ t5, ids, mask, batch, len };
  ms = time_runs (b, run_t5, &r, &peak, error);
  if (ms < 0)
    return FALSE;
  /* per token: q, k, v, o (4 d da) and the gated FFN (3 d f); attention
   * 4 len^2 da per sequence */
  fl = cfg->t5_layers
       * (2.0 * (4 * d * da + 3 * d * f) * batch * len
          + 4.0 * len * len * da * batch);
  {
    g_autofree char *what
        = g_strdup_printf ("T5 encode (%d prompts x %d tokens)", batch, len);
    report (b, "t5", what, ms, fl, peak);
  }
  return TRUE;
}

/* ---- VAE ---- */

typedef struct {
  OviWanVae *vae;
  OviTensor *latent;
} VaeRun;

static gboolean
on_frames (const OviTensor *frames, int first_frame, gpointer user_data)
{
  return TRUE;
}

static gboolean
run_vae (gpointer data, GError **error)
{
  VaeRun *r = data;

  return ovi_wan_vae_decode (r->vae, r->latent, on_frames, NULL, NULL, error);
}

static gboolean
bench_vae (Bench *b, const OviTinyConfig *cfg, int frames, int h, int w,
           GError **error)
{
  g_autoptr (OviWeightFile) wf = NULL;
  g_autoptr (OviWanVae) vae = NULL;
  g_autoptr (OviTensor) latent = NULL;
  guint64 np = 0, peak = 0;
  VaeRun r;
  double ms;

  wf = random_weights (cfg, OVI_TINY_FILE_VAE, OVI_DTYPE_F32, &np, error);
  if (wf == NULL || !(vae = ovi_wan_vae_new (wf, b->be, FALSE, error)))
    return FALSE;
  printf ("# Wan2.2 VAE: %" G_GUINT64_FORMAT " parameters (F32)\n", np);
  latent = host_random (
      4, (int64_t[]){ cfg->vae_z_dim, frames, h / 16, w / 16 }, 11);
  r = (VaeRun){ vae, latent };
  ms = time_runs (b, run_vae, &r, &peak, error);
  if (ms < 0)
    return FALSE;
  {
    g_autofree char *what
        = g_strdup_printf ("VAE decode (%d latent frames -> %d frames %dx%d)",
                           frames, 1 + 4 * (frames - 1), w, h);
    report (b, "vae", what, ms, 0, peak);
  }
  return TRUE;
}

/* ---- audio ---- */

typedef struct {
  OviMMAudioVae *vae;
  OviBigVGan *voc;
  OviTensor *z;
} AudioRun;

static gboolean
run_audio (gpointer data, GError **error)
{
  AudioRun *r = data;
  g_autoptr (OviTensor) mel = ovi_mmaudio_vae_decode (r->vae, r->z, error);
  g_autoptr (OviTensor) wav = NULL;

  if (mel == NULL)
    return FALSE;
  wav = ovi_bigvgan_run (r->voc, mel, error);
  return wav != NULL;
}

static gboolean
bench_audio (Bench *b, const OviTinyConfig *cfg, int L, GError **error)
{
  g_autoptr (OviWeightFile) vwf = NULL, gwf = NULL;
  g_autoptr (OviMMAudioVae) vae = NULL;
  g_autoptr (OviBigVGan) voc = NULL;
  g_autoptr (OviTensor) z = NULL;
  guint64 n1 = 0, n2 = 0, peak = 0;
  AudioRun r;
  double ms;

  vwf = random_weights (cfg, OVI_TINY_FILE_AUDIO_VAE, OVI_DTYPE_F32, &n1,
                        error);
  if (vwf == NULL || !(vae = ovi_mmaudio_vae_new (vwf, b->be, error)))
    return FALSE;
  gwf = random_weights (cfg, OVI_TINY_FILE_VOCODER, OVI_DTYPE_F32, &n2, error);
  if (gwf == NULL || !(voc = ovi_bigvgan_new (gwf, b->be, error)))
    return FALSE;
  printf ("# MMAudio VAE + BigVGAN: %" G_GUINT64_FORMAT " + %" G_GUINT64_FORMAT
          " parameters (F32)\n",
          n1, n2);
  z = host_random (2, (int64_t[]){ ovi_mmaudio_vae_embed_dim (vae), L }, 13);
  r = (AudioRun){ vae, voc, z };
  ms = time_runs (b, run_audio, &r, &peak, error);
  if (ms < 0)
    return FALSE;
  {
    g_autofree char *what
        = g_strdup_printf ("audio decode (%d latent steps)", L);
    report (b, "audio", what, ms, 0, peak);
  }
  return TRUE;
}

/* ---- host -> device copies ---- */

typedef struct {
  OviBackend *be;
  OviTensor *src, *dst;
  OviEvent *done;
} CopyRun;

static gboolean
run_copy (gpointer data, GError **error)
{
  CopyRun *c = data;

  ovi_op_copy_async (c->be, OVI_BACKEND_QUEUE_COPY, c->dst, c->src);
  ovi_op_event_record (c->be, c->done, OVI_BACKEND_QUEUE_COPY);
  ovi_op_queue_wait (c->be, OVI_BACKEND_QUEUE_COMPUTE, c->done);
  return TRUE;
}

static void
report_copy (Bench *b, const char *what, double ms, gsize bytes)
{
  gboolean cpu = ovi_backend_get_device (b->be).type == OVI_DEVICE_CPU;
  g_autofree char *label = g_strdup_printf (
      "%s -> %s", what, cpu ? "cpu (a memcpy)" : ovi_backend_get_name (b->be));

  printf ("%-6s %-44s %10.2f ms %9.2f GB/s\n", "copy", label, ms,
          ms > 0 ? bytes / (ms * 1e-3) / 1e9 : 0.0);
  fflush (stdout);
}

/* a file of `n` random bytes in `dir` (the weight cache's, where mapped
 * blocks live: not a tmpfs), its path */
static char *
copy_source_file (const char *dir, gsize n, GError **error)
{
  g_autofree char *path = g_build_filename (dir, "bench-copy-XXXXXX", NULL);
  g_autoptr (OviTensor) t = NULL;
  int64_t len = (int64_t) n;
  int fd;

  if (g_mkdir_with_parents (dir, 0700) != 0 || (fd = g_mkstemp (path)) < 0) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO, "%s: %s", dir,
                 g_strerror (errno));
    return NULL;
  }
  close (fd);
  t = ovi_tensor_new (OVI_DTYPE_U8, 1, &len, error);
  if (t == NULL)
    return NULL;
  fill_random (ovi_tensor_data (t), n, OVI_DTYPE_U8, 7);
  OviNamedTensor nt = { "block", t };
  if (!ovi_safetensors_write (path, &nt, 1, NULL, error)) {
    g_unlink (path);
    return NULL;
  }
  return g_steal_pointer (&path);
}

/* the file's pages written out and dropped from the page cache (none of it
 * mapped meanwhile), so that the next read comes from the disk */
static void
drop_cached (const char *path)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);

  if (fd < 0)
    return;
  fdatasync (fd);
  posix_fadvise (fd, 0, 0, POSIX_FADV_DONTNEED);
  close (fd);
}

/* median ms of `repeat` copies from the mapping of `path`, each after its
 * pages were dropped */
static double
time_cold (Bench *b, CopyRun *c, const char *path, GError **error)
{
  g_autofree double *ms = g_new0 (double, b->repeat);

  for (int i = 0; i < b->repeat; i++) {
    g_autoptr (OviWeightFile) wf = NULL;
    gint64 t0;

    drop_cached (path);
    wf = ovi_weight_file_open (path, NULL, error);
    if (wf == NULL
        || (c->src = ovi_weight_file_get (wf, "block", error)) == NULL)
      return -1;
    t0 = g_get_monotonic_time ();
    run_copy (c, NULL);
    if (!ovi_backend_sync (b->be, error)) {
      g_clear_pointer (&c->src, ovi_tensor_unref);
      return -1;
    }
    ms[i] = (g_get_monotonic_time () - t0) / 1000.0;
    g_clear_pointer (&c->src, ovi_tensor_unref);
  }
  qsort (ms, b->repeat, sizeof (double), cmp_double);
  return ms[b->repeat / 2];
}

static gboolean
bench_copy (Bench *b, const OviModelPreset *mp, GError **error)
{
  /* one fused block's matmul weights at one byte each (int8 / fp8) */
  gsize n
      = 2
        * (10 * (gsize) mp->dim * mp->dim + 2 * (gsize) mp->dim * mp->ffn_dim);
  int64_t len = (int64_t) n;
  g_autofree char *dir = ovi_weight_cache_dir ();
  g_autofree char *path = NULL;
  g_autoptr (OviStorage) pinned_mem = NULL;
  g_autoptr (OviWeightFile) wf = NULL;
  g_autoptr (OviTensor) dst
      = ovi_backend_new_tensor (b->be, OVI_DTYPE_U8, 1, &len);
  CopyRun c = { b->be, NULL, dst, NULL };
  gboolean pinned = FALSE, ok = FALSE;
  double ms;

  if (dst == NULL) {
    if (ovi_backend_sync (b->be, error))
      g_set_error (
          error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
          "copy: no device memory for a block of %" G_GSIZE_FORMAT " bytes", n);
    return FALSE;
  }
  if ((c.done = ovi_backend_event_new (b->be, error)) == NULL)
    return FALSE;
  printf ("# copy: one streamed block, %.1f MiB (a fused block's int8 / fp8 "
          "weights), on the copy queue\n",
          n / 1048576.0);
  pinned_mem = ovi_backend_new_pinned (b->be, n, &pinned, error);
  if (pinned_mem == NULL)
    goto out;
  c.src
      = ovi_tensor_new_on_storage (pinned_mem, 0, OVI_DTYPE_U8, 1, &len, NULL);
  fill_random (pinned_mem->data, n, OVI_DTYPE_U8, 7); /* resident pages */
  if ((ms = time_runs (b, run_copy, &c, NULL, error)) < 0)
    goto out;
  report_copy (b, pinned ? "pinned" : "pinned (refused: pageable)", ms, n);
  g_clear_pointer (&c.src, ovi_tensor_unref);

  if ((path = copy_source_file (dir, n, error)) == NULL)
    goto out;
  wf = ovi_weight_file_open (path, NULL, error);
  if (wf == NULL || (c.src = ovi_weight_file_get (wf, "block", error)) == NULL)
    goto out;
  if ((ms = time_runs (b, run_copy, &c, NULL, error)) < 0)
    goto out;
  report_copy (b, "mapped, page cache", ms, n);
  g_clear_pointer (&c.src, ovi_tensor_unref);
  g_clear_pointer (&wf, ovi_weight_file_free);
  if ((ms = time_cold (b, &c, path, error)) < 0)
    goto out;
  report_copy (b, "mapped, from disk", ms, n);
  ok = TRUE;
out:
  g_clear_pointer (&c.src, ovi_tensor_unref);
  if (path)
    g_unlink (path);
  ovi_backend_event_free (b->be, c.done);
  return ok;
}

/* ---- the command ---- */

/* the tiny-layout config at a preset's dims: the DiT from the preset, the
 * encoders and decoders at their released sizes (tiny sizes for "tiny") */
static void
config_for (const OviModelPreset *mp, OviTinyConfig *cfg)
{
  ovi_tiny_config_init (cfg);
  if (g_strcmp0 (mp->name, "tiny") != 0) {
    /* umT5-XXL encoder, Wan2.2 VAE, MMAudio 16 kHz VAE + BigVGAN
     * (research/ovi-architecture.md) */
    cfg->t5_vocab = 256384;
    cfg->t5_dim = 4096;
    cfg->t5_dim_attn = 4096;
    cfg->t5_ffn = 10240;
    cfg->t5_heads = 64;
    cfg->t5_layers = 24;
    cfg->t5_buckets = 32;
    cfg->vae_dim = 160;
    cfg->vae_dec_dim = 256;
    cfg->vae_z_dim = 48;
    cfg->audio_vae_hidden = 384;
    cfg->audio_vae_embed = 20;
    cfg->audio_vae_data_dim = 80;
    cfg->vocoder_initial_channel = 1536;
  }
  cfg->dit_dim = mp->dim;
  cfg->dit_ffn_dim = mp->ffn_dim;
  cfg->dit_heads = mp->num_heads;
  cfg->dit_layers = mp->num_layers;
  cfg->dit_freq_dim = mp->freq_dim;
  cfg->video_channels = mp->video_channels;
  cfg->audio_channels = mp->audio_channels;
  cfg->t5_dim = mp->text_dim;
}

/* the plan's estimate per stage, to read against the measured peaks (the
 * estimate counts the other stages' resident weights too; a bench stage
 * holds only its own model) */
static void
print_estimate (const OviModelPreset *mp, const OviPlacementPlan *plan,
                int width, int height, int frames, gsize act)
{
  OviPlacementModel m;
  OviPlacementEstimate est;
  g_autofree char *text = NULL;
  g_auto (GStrv) lines = NULL;

  printf ("# vram-mode %s\n", ovi_vram_mode_to_string (plan->mode));
  if (!ovi_placement_model_init (&m, NULL, mp->name, NULL))
    return; /* no release dims (the tiny model) */
  if (frames == m.video_latent_frames
      && ovi_placement_estimate (&m, plan, width, height, act, &est, NULL)) {
    text = ovi_placement_estimate_to_string (&est);
    lines = g_strsplit (text, "\n", -1);
    for (int i = 0; lines[i]; i++)
      printf ("# estimate: %s\n", lines[i]);
  }
  ovi_placement_model_clear (&m);
}

/* the cuda module's memory high-water mark, versions and (with --profile)
 * profiler */
static gboolean
cuda_queries (Bench *b, GModule *self, gboolean profile, GError **error)
{
  char *(*versions) (OviBackend *) = NULL;
  gboolean (*enable) (OviBackend *, gboolean, GError **) = NULL;

  g_module_symbol (self, "ovi_cuda_backend_memory", (gpointer *) &b->mem);
  if (g_module_symbol (self, "ovi_cuda_backend_versions",
                       (gpointer *) &versions)) {
    g_autofree char *v = versions (b->be);
    printf ("# device: %s\n", v);
  }
  if (!profile)
    return TRUE;
  if (!g_module_symbol (self, "ovi_cuda_backend_profile", (gpointer *) &enable)
      || !g_module_symbol (self, "ovi_cuda_backend_profile_read",
                           (gpointer *) &b->prof_read)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND,
                 "--profile: the cuda module has no profiler");
    return FALSE;
  }
  return enable (b->be, TRUE, error);
}

int
ovi_cmd_bench (int argc, char **argv)
{
  g_autofree char *model_name = NULL, *backend_name = NULL, *stages = NULL,
                  *vram_mode = NULL;
  int frames = 0, width = 0, height = 0, steps = 1, repeat = 3, device = 0;
  gboolean profile = FALSE;
  g_autoptr (GOptionContext) ctx = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (OviBackend) be = NULL;
  GModule *self;
  g_auto (GStrv) want = NULL;
  g_autoptr (OviPlacement) placement = NULL;
  OviVramMode mode = OVI_VRAM_MODE_STANDARD;
  GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_STRING, &model_name,
      "Model preset (presets/models.json; default 720x720_5s)", "NAME" },
    { "backend", 'b', 0, G_OPTION_ARG_STRING, &backend_name,
      "cuda (default), cuda-fp32 or cpu", "NAME" },
    { "device", 'd', 0, G_OPTION_ARG_INT, &device, "CUDA device index", "N" },
    { "vram-mode", 0, 0, G_OPTION_ARG_STRING, &vram_mode,
      "VRAM mode: standard (default), fp8, fp8-offload or ultra-low (DiT "
      "and umT5 weights placed as the elements place them)",
      "MODE" },
    { "steps", 's', 0, G_OPTION_ARG_INT, &steps,
      "Denoising steps to extrapolate a clip time from (default 1: none)",
      "N" },
    { "frames", 'f', 0, G_OPTION_ARG_INT, &frames,
      "Latent frames (default: the preset's)", "N" },
    { "width", 'W', 0, G_OPTION_ARG_INT, &width, "Video width in pixels", "W" },
    { "height", 'H', 0, G_OPTION_ARG_INT, &height, "Video height in pixels",
      "H" },
    { "repeat", 'r', 0, G_OPTION_ARG_INT, &repeat,
      "Timed runs per stage after one warm-up (median reported; default 3)",
      "N" },
    { "stages", 0, 0, G_OPTION_ARG_STRING, &stages,
      "Comma-separated subset of dit,step,t5,vae,audio,copy (default all; "
      "copy: host-to-device bandwidth of one streamed block, pinned vs "
      "mapped)",
      "LIST" },
    { "profile", 0, 0, G_OPTION_ARG_NONE, &profile,
      "Device time per op kind (gemm, attention, norm/elementwise, conv, "
      "copy) from CUDA events, per stage (cuda backends)",
      NULL },
    { NULL }
  };
  const OviModelPreset *mp;
  OviTinyConfig cfg;
  Bench b = { 0 };
  gboolean ok = TRUE;

  ctx = g_option_context_new (
      "- time the stages at a model's real size with random in-memory weights");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return ovi_cli_fail ("%s", error->message);
  if (argc != 1)
    return ovi_cli_fail ("bench takes no positional arguments");
  if (vram_mode && g_strcmp0 (vram_mode, "auto") != 0
      && !ovi_vram_mode_from_string (vram_mode, &mode, &error))
    return ovi_cli_fail_error (g_steal_pointer (&error));
  if (repeat < 1 || steps < 1)
    return ovi_cli_fail ("--repeat and --steps must be at least 1");
  mp = ovi_model_preset_lookup (model_name ? model_name : "720x720_5s", &error);
  if (mp == NULL)
    return ovi_cli_fail_error (g_steal_pointer (&error));
  if (frames <= 0)
    frames = mp->video_latent_frames;
  if (height <= 0)
    height = mp->default_height;
  if (width <= 0)
    width = mp->default_width;
  {
    /* the size the elements would run: snapped to the model's area in
     * multiples of 32 (720x720 -> 704x704) */
    int h = height, w = width;
    if (!ovi_snap_hw_t2v (h, w, mp->target_area, &height, &width, &error))
      return ovi_cli_fail_error (g_steal_pointer (&error));
    if (h != height || w != width)
      printf ("# %dx%d snapped to %dx%d, as the elements do\n", w, h, width,
              height);
  }
  want = g_strsplit (stages ? stages : "dit,step,t5,vae,audio,copy", ",", -1);
  for (int i = 0; want[i]; i++)
    if (!g_strv_contains ((const char *const[]){ "dit", "step", "t5", "vae",
                                                 "audio", "copy", NULL },
                          want[i]))
      return ovi_cli_fail ("--stages: unknown stage '%s' (dit, step, t5, vae, "
                           "audio, copy)",
                           want[i]);
  be = ovi_backend_new_by_name (backend_name ? backend_name : "cuda", device,
                                &error);
  if (be == NULL)
    return ovi_cli_fail_error (g_steal_pointer (&error));
  b.be = be;
  b.repeat = repeat;
  if (!ovi_placement_plan_for_mode (mode, OVI_GPU_ALLOCATION_SINGLE, 0, &b.plan,
                                    &error))
    return ovi_cli_fail_error (g_steal_pointer (&error));
  b.placement = placement = ovi_placement_new (&b.plan, be);
  /* the module's own queries (it stays resident) */
  self = g_module_open (NULL, 0);
  if (self && ovi_backend_get_device (be).type == OVI_DEVICE_CUDA
      && !cuda_queries (&b, self, profile, &error))
    return ovi_cli_fail_error (g_steal_pointer (&error));
  if (self)
    g_module_close (self);
  if (profile && b.prof_read == NULL)
    return ovi_cli_fail ("--profile needs a cuda backend (got %s)",
                         ovi_backend_get_name (be));
  config_for (mp, &cfg);
  printf ("# ovi bench: model %s, backend %s (activations %s), %dx%d, %d "
          "latent frames, %d timed run%s per stage after one warm-up\n",
          mp->name, ovi_backend_get_name (be),
          ovi_dtype_name (ovi_backend_get_act_dtype (be)), width, height,
          frames, repeat, repeat == 1 ? "" : "s");
  print_estimate (mp, &b.plan, width, height, frames,
                  ovi_dtype_size (ovi_backend_get_act_dtype (be)));
  printf ("%-6s %-44s %13s %17s %13s %12s\n", "stage", "what", "time", "rate",
          "counted", "peak mem");
  if (g_strv_contains ((const char *const *) want, "dit")
      || g_strv_contains ((const char *const *) want, "step")) {
    gboolean do_step = g_strv_contains ((const char *const *) want, "step");
    ok = bench_dit (&b, mp, &cfg,
                    g_strv_contains ((const char *const *) want, "dit"),
                    do_step, frames, height, width, &error);
  }
  if (ok && g_strv_contains ((const char *const *) want, "t5"))
    ok = bench_t5 (&b, &cfg, mp->text_len, &error);
  if (ok && g_strv_contains ((const char *const *) want, "vae"))
    ok = bench_vae (&b, &cfg, frames, height, width, &error);
  if (ok && g_strv_contains ((const char *const *) want, "audio"))
    ok = bench_audio (&b, &cfg, mp->audio_latent_length, &error);
  if (ok && g_strv_contains ((const char *const *) want, "copy"))
    ok = bench_copy (&b, mp, &error);
  if (!ok)
    return ovi_cli_fail_error (g_steal_pointer (&error));
  if (steps > 1)
    printf ("# (--steps %d: multiply the step time by it for the denoising "
            "loop)\n",
            steps);
  return 0;
}
