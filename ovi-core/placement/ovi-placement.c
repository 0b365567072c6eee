/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: residency plans and memory estimates (see ovi-placement.h). */
#include "ovi-placement.h"

#include "ovi-mem-account.h"
#include "ovi-weight-cache.h"
#include "ovi-weights.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

/* release sizes (research §4.1) used when the files are not there */
#define RELEASE_T5_PARAMS G_GUINT64_CONSTANT (5680000000)
#define RELEASE_T5_DIM    4096
#define RELEASE_T5_FFN    10240
#define RELEASE_T5_HEADS  64
/* Wan2.2_VAE.pth is 2.82 GB of fp32; the decoder (+ conv2) is about 55% of
 * it (the encoder has the same widths but fewer upsampling blocks) */
#define RELEASE_VAE_DECODER_BYTES G_GUINT64_CONSTANT (1560000000)
#define RELEASE_VAE_DEC_DIM       256
#define RELEASE_AUDIO_BYTES       G_GUINT64_CONSTANT (1140000000)
#define RELEASE_VOCODER_CHANNELS  1536

/* Activation bounds of the decoders (video: elements per output pixel of
 * the decoded area and unit of the decoder's base width, covering the
 * 4-frame chunk's working tensors and the 2-frame causal caches of every
 * level; audio: per output sample and unit of the vocoder's first width).
 * Calibrated, not derived: the tiny decoder (same level layout, base width
 * 8) measures 19.7 and 0.2 under the accounting of tests/placement; the
 * constants add a 1.5x / 5x margin. */
#define VAE_ACT_PER_PIXEL_CHANNEL    30.0
#define AUDIO_ACT_PER_SAMPLE_CHANNEL 1.0

/* ---- plans ---- */

static void make_unified (OviPlacementPlan *p);

gboolean
ovi_placement_plan_for_device (OviVramMode mode, OviGpuAllocation allocation,
                               guint64 host_budget, const OviDeviceInfo *dev,
                               OviPlacementPlan *p, GError **error)
{
  if (!ovi_placement_plan_for_mode (mode, allocation, host_budget, p, error))
    return FALSE;
  if (dev && ovi_device_is_unified (dev))
    make_unified (p);
  return TRUE;
}

/* One memory for host and device: nothing is gained by loading a stage's
 * weights only while it runs when the mode keeps everything (standard),
 * host bytes count against the same pool as device bytes, and a weight
 * the device can read where it lies is not copied. */
static void
make_unified (OviPlacementPlan *p)
{
  p->unified = TRUE;
  p->weights_in_place = TRUE;
  if (p->mode == OVI_VRAM_MODE_STANDARD) {
    p->t5_while_used = FALSE;
    p->vae_while_used = FALSE;
  }
}

gboolean
ovi_placement_plan_for_mode (OviVramMode mode, OviGpuAllocation allocation,
                             guint64 host_budget, OviPlacementPlan *p,
                             GError **error)
{
  const OviGpuAllocationPreset *ap;

  if (allocation == OVI_GPU_ALLOCATION_AUTO)
    allocation = OVI_GPU_ALLOCATION_SINGLE;
  ap = ovi_gpu_allocation_preset_get (allocation, error);
  if (ap == NULL || ovi_vram_mode_preset_get (mode, error) == NULL)
    return FALSE;
  memset (p, 0, sizeof *p);
  p->mode = mode;
  p->allocation = allocation;
  p->ranks = MAX (ap->ranks, 1);
  p->host_budget = host_budget;
  switch (mode) {
    case OVI_VRAM_MODE_STANDARD:
      p->quant = OVI_QUANT_NONE;
      p->dit_weight_dtype = OVI_DTYPE_BF16;
      /* 11.4 GB of bf16 umT5 for one encode per clip: reloading it from
       * the page cache costs well under a second, keeping it costs the
       * 40 GB target */
      p->t5_while_used = TRUE;
      break;
    case OVI_VRAM_MODE_FP8:
      p->quant = OVI_QUANT_F8_PER_CHANNEL;
      p->t5_quant = OVI_QUANT_F8_PER_CHANNEL;
      p->dit_weight_dtype = OVI_DTYPE_F8_E4M3;
      p->t5_while_used = TRUE;
      /* untiled, the 704x704 decode's 7 GiB of activations on top of the
       * resident fp8 DiT made the decode the 20.5 GiB peak; 2x2 tiles of
       * 32 latent pixels bring it under the text stage (issue 13) */
      p->vae_tile = 32;
      p->vae_tile_overlap = 4;
      break;
    case OVI_VRAM_MODE_FP8_OFFLOAD:
      p->quant = OVI_QUANT_F8_PER_CHANNEL;
      p->t5_quant = OVI_QUANT_F8_PER_CHANNEL;
      p->dit_weight_dtype = OVI_DTYPE_F8_E4M3;
      p->stream_blocks = TRUE;
      p->stream_slots = 2;
      p->t5_while_used = TRUE;
      p->vae_while_used = TRUE;
      break;
    case OVI_VRAM_MODE_ULTRA_LOW:
      p->quant = OVI_QUANT_I8_PER_CHANNEL;
      p->dit_weight_dtype = OVI_DTYPE_I8;
      p->stream_blocks = TRUE;
      p->stream_slots = 2;
      p->t5_on_cpu = TRUE;
      p->t5_while_used = TRUE;
      /* 10.6 GiB of bf16 umT5 resident in the page cache beside the DiT
       * blocks would not fit a 16 GB host; two blocks at a time do */
      p->t5_stream = TRUE;
      p->vae_while_used = TRUE;
      p->vae_tile = 16;
      p->vae_tile_overlap = 4;
      break;
    default:
      g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                   "vram-mode %s has no fixed plan (resolve auto with "
                   "ovi_placement_choose first)",
                   ovi_vram_mode_to_string (mode));
      return FALSE;
  }
  /* quantised once into a file of our own, mapped after */
  p->weight_cache = p->quant != OVI_QUANT_NONE;
  return TRUE;
}

/* ---- the model ---- */

static guint64
file_bytes (const char *path, const char *prefix, const char *const *only)
{
  g_autoptr (OviWeightFile) wf = ovi_weight_file_open (path, prefix, NULL);
  guint64 total = 0;

  if (wf == NULL)
    return 0;
  for (guint i = 0; i < ovi_weight_file_n_tensors (wf); i++) {
    const char *name = ovi_weight_file_name (wf, i);
    g_autoptr (OviTensor) t = NULL;
    gboolean keep = only == NULL;

    for (int k = 0; only && only[k]; k++)
      keep |= g_str_has_prefix (name, only[k]);
    if (keep && (t = ovi_weight_file_get (wf, name, NULL)) != NULL)
      total += ovi_tensor_nbytes (t);
  }
  return total;
}

static int
dim0_of (const char *path, const char *needle, int ndim)
{
  g_autoptr (OviWeightFile) wf = ovi_weight_file_open (path, NULL, NULL);

  for (guint i = 0; wf && i < ovi_weight_file_n_tensors (wf); i++) {
    const char *name = ovi_weight_file_name (wf, i);
    if (strstr (name, needle)) {
      g_autoptr (OviTensor) t = ovi_weight_file_get (wf, name, NULL);
      if (t && t->ndim == ndim)
        return (int) t->shape[0];
    }
  }
  return 0;
}

static void
t5_split (const char *path, OviPlacementModel *m)
{
  g_autoptr (OviWeightFile) wf = ovi_weight_file_open (path, NULL, NULL);

  for (guint i = 0; wf && i < ovi_weight_file_n_tensors (wf); i++) {
    const char *name = ovi_weight_file_name (wf, i);
    g_autoptr (OviTensor) t = ovi_weight_file_get (wf, name, NULL);

    if (t == NULL)
      continue;
    if (g_str_has_prefix (name, "blocks.0.") && !strstr (name, "pos_embedding"))
      m->t5_block_bytes += ovi_tensor_nbytes (t);
    if (g_str_has_suffix (name, ".norm1.weight"))
      m->t5_layers++;
    if (strcmp (name, "token_embedding.weight") == 0 && t->ndim == 2) {
      m->t5_vocab = (int) t->shape[0];
      m->t5_row_bytes = ovi_tensor_nbytes (t) / MAX (t->shape[0], 1);
    }
    if (t->ndim == 2 && ovi_quantize_wants (OVI_QUANT_F8_PER_CHANNEL, name, 2)
        && !strstr (name, "pos_embedding")) {
      m->t5_q_params += ovi_tensor_numel (t);
      m->t5_q_rows += t->shape[0];
    } else {
      m->t5_other_bytes += ovi_tensor_nbytes (t);
    }
  }
}

gboolean
ovi_placement_model_init (OviPlacementModel *m, const OviModelPaths *paths,
                          const char *variant, GError **error)
{
  memset (m, 0, sizeof *m);
  if (paths) {
    g_autoptr (OviWeightFile) wf = NULL;
    g_autoptr (OviTensor) probe = NULL;
    OviFusionDims preset = {
      .num_heads = paths->num_heads,
      .text_len = paths->text_len,
      .eps = paths->eps,
      .audio_rope_scale = paths->audio_rope_scale,
    };
    static const char *const dec[] = { "decoder.", "conv2.", NULL };

    wf = ovi_weight_file_open (paths->fusion_path, NULL, error);
    if (wf == NULL || !ovi_fusion_read_dims (wf, &preset, &m->dims, error))
      return FALSE;
    probe = ovi_weight_file_get (wf, "video_model.blocks.0.ffn.0.weight", NULL);
    m->dit_file_is_fp8 = probe && probe->dtype == OVI_DTYPE_F8_E4M3;
    m->variant = g_strdup (paths->variant);
    m->video_latent_frames = paths->video_latent_frames;
    m->audio_latent_length = paths->audio_latent_length;
    m->target_area = paths->target_area;
    m->t5_bytes = file_bytes (paths->t5_path, NULL, NULL);
    t5_split (paths->t5_path, m);
    m->vae_decoder_bytes = file_bytes (paths->vae_path, NULL, dec);
    m->audio_bytes = file_bytes (paths->audio_vae_path, NULL, NULL)
                     + file_bytes (paths->vocoder_path, NULL, NULL);
    {
      g_autoptr (OviWeightFile) t5
          = ovi_weight_file_open (paths->t5_path, NULL, NULL);
      g_autoptr (OviTensor) e = NULL, f = NULL, r = NULL;
      if (t5) {
        e = ovi_weight_file_get (t5, "token_embedding.weight", NULL);
        f = ovi_weight_file_get (t5, "blocks.0.ffn.fc1.weight", NULL);
        r = ovi_weight_file_get (t5, "blocks.0.pos_embedding.embedding.weight",
                                 NULL);
      }
      m->t5_dim = e && e->ndim == 2 ? e->shape[1] : RELEASE_T5_DIM;
      m->t5_ffn = f && f->ndim == 2 ? f->shape[0] : RELEASE_T5_FFN;
      m->t5_heads = r && r->ndim == 2 ? r->shape[1] : RELEASE_T5_HEADS;
    }
    m->vae_dec_dim = dim0_of (paths->vae_path, "decoder.head.0.gamma", 4);
    if (m->vae_dec_dim == 0)
      m->vae_dec_dim = RELEASE_VAE_DEC_DIM;
    m->vocoder_channels = dim0_of (paths->vocoder_path, "conv_pre", 3);
    if (m->vocoder_channels == 0)
      m->vocoder_channels = RELEASE_VOCODER_CHANNELS;
    return TRUE;
  }
  const OviModelPreset *mp = ovi_model_preset_lookup (variant, error);
  if (mp == NULL)
    return FALSE;
  if (g_strcmp0 (mp->name, "tiny") == 0) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "the tiny model has no release dims: estimate it from its "
                 "folder (--model-dir)");
    return FALSE;
  }
  ovi_fusion_dims_release (&m->dims);
  m->dims.num_heads = mp->num_heads;
  m->dims.text_len = mp->text_len;
  m->variant = g_strdup (mp->name);
  m->video_latent_frames = mp->video_latent_frames;
  m->audio_latent_length = mp->audio_latent_length;
  m->target_area = mp->target_area;
  m->t5_bytes = RELEASE_T5_PARAMS * 2;
  /* umT5-XXL: vocab 256384 x 4096 embedding, 24 layers of 4 attention
   * (4096 x 4096) and 3 FFN (10240 x 4096) matrices */
  m->t5_q_params = G_GUINT64_CONSTANT (256384) * 4096
                   + 24
                         * (G_GUINT64_CONSTANT (4) * 4096 * 4096
                            + G_GUINT64_CONSTANT (3) * 4096 * 10240);
  m->t5_q_rows = 256384 + 24 * (4 * 4096 + 2 * 10240 + 4096);
  m->t5_other_bytes = 2 * (25 * 4096 + 24 * 32 * 64);
  m->t5_block_bytes = G_GUINT64_CONSTANT (2)
                      * (4 * 4096 * 4096 + 3 * 4096 * 10240 + 2 * 4096);
  m->t5_layers = 24;
  m->t5_vocab = 256384;
  m->t5_row_bytes = 2 * 4096;
  m->vae_decoder_bytes = RELEASE_VAE_DECODER_BYTES;
  m->audio_bytes = RELEASE_AUDIO_BYTES;
  m->t5_dim = RELEASE_T5_DIM;
  m->t5_ffn = RELEASE_T5_FFN;
  m->t5_heads = RELEASE_T5_HEADS;
  m->vae_dec_dim = RELEASE_VAE_DEC_DIM;
  m->vocoder_channels = RELEASE_VOCODER_CHANNELS;
  return TRUE;
}

void
ovi_placement_model_clear (OviPlacementModel *m)
{
  g_clear_pointer (&m->variant, g_free);
}

char *
ovi_placement_fp8_file (const OviModelPaths *paths)
{
  const OviModelPreset *mp
      = ovi_model_preset_lookup (paths->variant ? paths->variant : "", NULL);
  g_autofree char *dir = NULL, *base = NULL;
  char *path;

  if (mp == NULL || mp->fp8_file == NULL || paths->fusion_path == NULL)
    return NULL;
  dir = g_path_get_dirname (paths->fusion_path);
  base = g_path_get_basename (mp->fp8_file);
  path = g_build_filename (dir, base, NULL);
  if (!g_file_test (path, G_FILE_TEST_IS_REGULAR))
    g_clear_pointer (&path, g_free);
  return path;
}

/* ---- DiT weight bytes by kind (ovi-fusion.c's loader and tower_params) */

typedef struct {
  guint64 block_q;           /* per tower per block: matmul weight params */
  guint64 block_q_rows;      /* their output rows (per-channel scales) */
  guint64 block_small;       /* biases, gains, modulation (act dtype) */
  guint64 lin_q, lin_rows;   /* other Linear weights (both towers) */
  guint64 conv_q, conv_rows; /* patch-embedding convolutions */
  guint64 small;             /* other biases and tables */
} DitParams;

static void
dit_params (const OviFusionDims *d, DitParams *p)
{
  guint64 D = d->dim, F = d->ffn_dim, K = d->audio_kernel, H = d->audio_hidden;
  guint64 hv = (guint64) d->video_out * d->patch[0] * d->patch[1] * d->patch[2];
  guint64 ha = d->audio_out;

  memset (p, 0, sizeof *p);
  p->block_q = 10 * D * D + 2 * D * F;
  p->block_q_rows = 11 * D + F;
  p->block_small = 26 * D + F;
  for (int t = 0; t < 2; t++) {
    guint64 hw = t == 0 ? hv : ha;
    p->lin_q += (guint64) d->text_dim * D + D * D + (guint64) d->freq_dim * D
                + D * D + 6 * D * D + hw * D;
    p->lin_rows += 10 * D + hw;
    p->small += 13 * D + hw;
  }
  p->conv_q = D * d->video_in * d->patch[0] * d->patch[1] * d->patch[2]
              + D * d->audio_in * K + 3 * D * H * K;
  p->conv_rows = D + D + H + D + H;
}

/* bytes of `params` matmul weights with `rows` output rows in the plan's
 * format (`quantised`: the policy applies to them) */
static guint64
weight_bytes (const OviPlacementModel *m, const OviPlacementPlan *p,
              gboolean quantised, guint64 params, guint64 rows)
{
  gsize stored = m->dit_file_is_fp8 ? 1 : 2;

  if (!quantised || p->quant == OVI_QUANT_NONE)
    return params * stored;
  if (m->dit_file_is_fp8 && p->dit_weight_dtype == OVI_DTYPE_F8_E4M3)
    return params; /* used as stored: no scale */
  return params + 4 * (p->quant == OVI_QUANT_F8_PER_TENSOR ? 1 : rows);
}

/* ---- the estimate ---- */

/* per model, the weight bytes a unified device reads in place */
typedef struct {
  guint64 dit, t5, vae, audio;
} InPlace;

static void
snap_size (const OviPlacementModel *m, int *width, int *height)
{
  if (*width == 0 && *height == 0 && m->target_area > 0) {
    int side = 32 * (int) nearbyint (sqrt ((double) m->target_area) / 32.0);
    *width = *height = MAX (side, 32);
  }
}

/* umT5's buffers (ovi-t5.c) for one batch of three prompts of text_len
 * tokens, activations of `act` bytes, and one layer's position bias in
 * f32 */
static guint64
t5_activations (const OviPlacementModel *m, gsize act)
{
  guint64 n = 3 * (guint64) m->dims.text_len;

  return n * (7 * (guint64) m->t5_dim + 2 * (guint64) m->t5_ffn) * act
         + (guint64) m->t5_heads * m->dims.text_len * m->dims.text_len * 4;
}

/* umT5 streamed (ovi-t5-stream.c): the mapped pages held at once. The
 * prompt's embedding rows are gathered and released before the first
 * block; then block i and the read-ahead block i+1. Each tensor's span is
 * widened to whole pages. */
static guint64
t5_stream_resident (const OviPlacementModel *m)
{
  guint64 page = (guint64) sysconf (_SC_PAGESIZE);
  guint64 block = m->t5_block_bytes + 2 * page * 9; /* 9 tensors a block */
  guint64 rows = MIN (3 * (guint64) m->dims.text_len, (guint64) m->t5_vocab);
  guint64 row_span = ((m->t5_row_bytes + page - 1) / page + 1) * page;
  guint64 table = (guint64) m->t5_vocab * m->t5_row_bytes + 2 * page;

  return MAX (MIN (rows * row_span, table), MIN (m->t5_layers, 2) * block);
}

/* the text stage's own part: umT5 on the device (copied, or streamed
 * through two slots) or on the CPU (its weights read from the file's
 * mapping, whole or streamed, or quantised into private memory) */
static void
text_stage (const OviPlacementModel *m, const OviPlacementPlan *p, guint64 t5w,
            guint64 t5_act, gsize act, OviStageEstimate *s)
{
  gboolean streamed
      = p->t5_stream && p->t5_quant == OVI_QUANT_NONE && m->t5_block_bytes > 0;
  /* the prompt's rows gathered out of the table (at most one per token) */
  guint64 rows = 3 * (guint64) m->dims.text_len * m->t5_row_bytes;

  if (!p->t5_on_cpu) {
    s->device_own_weights = t5w;
    s->device_activations = t5_act;
    if (streamed) {
      /* two block slots; the norms stay; the table stays in the file */
      s->device_own_weights = t5w - (guint64) m->t5_layers * m->t5_block_bytes
                              - (guint64) m->t5_vocab * m->t5_row_bytes;
      s->device_stream = 2 * m->t5_block_bytes;
      s->device_activations += rows;
      s->host_mapped = t5_stream_resident (m);
      s->host_mapped_total = t5w;
    }
    s->device_weights = p->t5_while_used ? s->device_own_weights : 0;
    return;
  }
  /* the CPU backend computes in f32 */
  s->host_private = t5_activations (m, 4);
  if (p->t5_quant != OVI_QUANT_NONE) {
    s->host_private += t5w;
    return;
  }
  s->host_mapped_total = t5w;
  s->host_mapped = streamed ? t5_stream_resident (m) : t5w;
  if (streamed)
    s->host_private += rows;
}

gboolean
ovi_placement_estimate (const OviPlacementModel *m, const OviPlacementPlan *p,
                        int width, int height, gsize act,
                        OviPlacementEstimate *est, GError **error)
{
  const OviFusionDims *d = &m->dims;
  OviFusionEstimate fe;
  DitParams dp;
  int64_t lh, lw;
  guint64 latents, dit_resident, dit_streamed, slot, t5_act, vae_act, audio_act,
      dit_act, keep_t5, keep_vae;

  memset (est, 0, sizeof *est);
  est->plan = *p;
  snap_size (m, &width, &height);
  if (width <= 0 || height <= 0 || width % 32 || height % 32) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "estimate: frame size %dx%d is not a positive multiple of 32",
                 width, height);
    return FALSE;
  }
  lh = height / 16;
  lw = width / 16;
  /* the denoiser batches the two CFG branches of a step into one forward */
  if (!ovi_fusion_estimate_batched (d, m->video_latent_frames, lh, lw,
                                    m->audio_latent_length, 2, act, act, &fe,
                                    error))
    return FALSE;
  est->width = width;
  est->height = height;
  est->act_dtype_size = act;
  est->tokens_video = fe.tokens_video;
  est->tokens_audio = fe.tokens_audio;

  /* DiT weights */
  dit_params (d, &dp);
  gboolean conv_q
      = p->quant != OVI_QUANT_NONE && p->quant != OVI_QUANT_I8_PER_CHANNEL;
  guint64 block_w = weight_bytes (m, p, TRUE, dp.block_q, dp.block_q_rows);
  guint64 blocks = 2 * (guint64) d->num_layers;
  dit_resident = weight_bytes (m, p, TRUE, dp.lin_q, dp.lin_rows)
                 + weight_bytes (m, p, conv_q, dp.conv_q, dp.conv_rows)
                 + (dp.small + blocks * dp.block_small) * act;
  if (p->stream_blocks) {
    dit_streamed = blocks * block_w;
    slot = 2 * block_w; /* one fused block: video + audio block i */
  } else {
    dit_resident += blocks * block_w;
    dit_streamed = 0;
    slot = 0;
  }
  est->plan.pinned_bytes = dit_streamed;
  est->plan.pageable_bytes = 0;
  est->plan.mapped_bytes = 0;
  if (dit_streamed > 0 && p->weight_cache
      && !(m->dit_file_is_fp8 && p->dit_weight_dtype == OVI_DTYPE_F8_E4M3)) {
    /* the cache file's blocks are used in place: page cache, not private */
    est->plan.mapped_bytes = dit_streamed;
    est->plan.pinned_bytes = 0;
  } else if (p->host_budget > 0 && dit_streamed > p->host_budget) {
    /* partial pinning: what does not fit stays pageable (slower copies) */
    est->plan.pinned_bytes = p->host_budget;
    est->plan.pageable_bytes = dit_streamed - p->host_budget;
  }
  /* a GPU copies pageable blocks through its pinned staging buffers */
  guint64 staging = est->plan.mapped_bytes + est->plan.pageable_bytes > 0
                        ? OVI_STREAM_STAGING_BYTES
                        : 0;

  /* DiT activations: as ovi_denoiser_estimate, plus the text embedding's
   * transient input and hidden rows */
  latents = (guint64) d->video_out * m->video_latent_frames * lh * lw
            + (guint64) m->audio_latent_length * d->audio_out;
  dit_act = fe.activation_bytes + 4 * (guint64) d->text_len * d->dim * act
            + 10 * latents * act
            + (guint64) d->text_len * (d->text_dim + d->dim) * act;

  t5_act = t5_activations (m, act);

  /* video VAE: 4 frames of the decoded area (a tile when tiled) at the
   * decoder's widest full-resolution level, plus the frames handed out */
  {
    int64_t th = lh, tw = lw;
    if (p->vae_tile > 0) {
      th = MIN (lh, p->vae_tile);
      tw = MIN (lw, p->vae_tile);
    }
    guint64 tile_px = (guint64) th * 16 * tw * 16;
    guint64 frame_px = (guint64) height * width;
    vae_act
        = (guint64) (VAE_ACT_PER_PIXEL_CHANNEL * m->vae_dec_dim * tile_px * act)
          + 2 * 3 * 4 * frame_px * act; /* output group (+ blend) */
  }
  {
    guint64 samples = (guint64) m->audio_latent_length * 512;
    audio_act = (guint64) (AUDIO_ACT_PER_SAMPLE_CHANNEL * m->vocoder_channels
                           * samples * act);
  }

  /* umT5 in the plan's format */
  guint64 t5w = m->t5_bytes;
  if (p->t5_quant != OVI_QUANT_NONE && m->t5_q_params > 0)
    t5w = m->t5_q_params
          + 4 * (p->t5_quant == OVI_QUANT_F8_PER_TENSOR ? 1 : m->t5_q_rows)
          + m->t5_other_bytes;

  /* what stays on the device across stages */
  keep_t5 = (!p->t5_while_used && !p->t5_on_cpu) ? t5w : 0;
  keep_vae = p->vae_while_used ? 0 : m->vae_decoder_bytes + m->audio_bytes;

  /* read in place on a unified device: every weight the filters or the
   * loaders place but the activation-dtype copies of the DiT's small
   * tensors (made by the loader) and the video decoder's fp32 convs when
   * the activations are narrower (converted once, ovi_backend_upload_act) */
  InPlace ip = { 0 };
  if (p->weights_in_place) {
    ip.dit = dit_resident - (dp.small + blocks * dp.block_small) * act;
    ip.t5 = p->t5_on_cpu ? 0 : t5w;
    ip.vae = act >= 4 ? m->vae_decoder_bytes : 0;
    ip.audio = m->audio_bytes;
  }
  guint64 base_in_place
      = ip.dit + (keep_t5 ? ip.t5 : 0) + (keep_vae ? ip.vae + ip.audio : 0);

  OviStageEstimate *s;
  guint64 base = dit_resident + keep_t5 + keep_vae;
  guint64 pinned = est->plan.pinned_bytes + est->plan.pageable_bytes;

  s = &est->stage[OVI_STAGE_TEXT];
  text_stage (m, p, t5w, t5_act, act, s);
  s->device_weights += base;
  s->device_in_place = base_in_place + (p->t5_while_used ? ip.t5 : 0);
  s->device_own_in_place = ip.t5;

  s = &est->stage[OVI_STAGE_DENOISE];
  s->device_weights = base;
  s->device_own_weights = dit_resident;
  s->device_in_place = base_in_place;
  s->device_own_in_place = ip.dit;
  s->device_stream = slot * MAX (p->stream_slots, 0);
  s->device_activations = dit_act;

  s = &est->stage[OVI_STAGE_VIDEO_DECODE];
  s->device_weights = base + (p->vae_while_used ? m->vae_decoder_bytes : 0);
  s->device_own_weights = m->vae_decoder_bytes;
  s->device_in_place = base_in_place + (p->vae_while_used ? ip.vae : 0);
  s->device_own_in_place = ip.vae;
  s->device_activations = vae_act;

  s = &est->stage[OVI_STAGE_AUDIO_DECODE];
  s->device_weights = base + (p->vae_while_used ? m->audio_bytes : 0);
  s->device_own_weights = m->audio_bytes;
  s->device_in_place = base_in_place + (p->vae_while_used ? ip.audio : 0);
  s->device_own_in_place = ip.audio;
  s->device_activations = audio_act;

  /* sequence / CFG parallel: activations split over the ranks, weights
   * replicated; sharded: weights split, one block gathered at a time */
  for (int i = 0; i < OVI_N_STAGES; i++) {
    s = &est->stage[i];
    if (p->ranks > 1 && i == OVI_STAGE_DENOISE)
      s->device_activations = s->device_activations / p->ranks
                              + 4 * (guint64) d->text_len * d->dim * act;
    if (p->ranks > 1 && p->allocation == OVI_GPU_ALLOCATION_SHARDED
        && i == OVI_STAGE_DENOISE && !p->stream_blocks) {
      guint64 cut = s->device_own_weights - s->device_own_weights / p->ranks;
      s->device_weights -= cut;
      s->device_own_weights -= cut;
      s->device_weights += 2 * block_w;
    }
    s->device_in_place = MIN (s->device_in_place, s->device_weights);
    s->device_own_in_place
        = MIN (s->device_own_in_place, s->device_own_weights);
    s->device_peak
        = s->device_weights + s->device_stream + s->device_activations;
    /* the streamed blocks' slabs (pinned, or pageable copies past the
     * budget) are private memory held from the load on */
    s->host_private += pinned + staging;
    /* the mapped blocks are needed while the DiT runs: the page cache
     * may drop them in the other stages */
    if (i == OVI_STAGE_DENOISE) {
      s->host_mapped += est->plan.mapped_bytes;
      s->host_mapped_total += est->plan.mapped_bytes;
    }
    s->host = s->host_private + s->host_mapped;
    est->device_peak = MAX (est->device_peak, s->device_peak);
    est->host_peak = MAX (est->host_peak, s->host);
    est->host_private_peak = MAX (est->host_private_peak, s->host_private);
    est->pool_peak = MAX (est->pool_peak, s->device_peak + s->host);
  }
  return TRUE;
}

char *
ovi_placement_estimate_to_string (const OviPlacementEstimate *est)
{
  GString *s = g_string_new (NULL);

  g_string_append_printf (
      s,
      "vram-mode %s, gpu-allocation %s, %dx%d (%" G_GINT64_FORMAT
      " video + %" G_GINT64_FORMAT " audio tokens), DiT weights %s%s\n",
      ovi_vram_mode_to_string (est->plan.mode),
      ovi_gpu_allocation_to_string (est->plan.allocation), est->width,
      est->height, est->tokens_video, est->tokens_audio,
      ovi_dtype_name (est->plan.dit_weight_dtype),
      !est->plan.stream_blocks     ? ""
      : est->plan.mapped_bytes > 0 ? " streamed from the weight cache's mapping"
                                   : " streamed from pinned host RAM");
  if (est->plan.vae_tile > 0)
    g_string_append_printf (s,
                            "  tiled VAE decode: tiles of %d latent pixels "
                            "(%d px), overlap %d\n",
                            est->plan.vae_tile, est->plan.vae_tile * 16,
                            est->plan.vae_tile_overlap);
  for (int i = 0; i < OVI_N_STAGES; i++) {
    const OviStageEstimate *st = &est->stage[i];
    g_autofree char *pk = ovi_format_bytes (st->device_peak);
    g_autofree char *w = ovi_format_bytes (st->device_weights);
    g_autofree char *sl = ovi_format_bytes (st->device_stream);
    g_autofree char *a = ovi_format_bytes (st->device_activations);
    g_autofree char *h = ovi_format_bytes (st->host);
    g_autofree char *hp = ovi_format_bytes (st->host_private);
    g_autofree char *hm = ovi_format_bytes (st->host_mapped);
    g_autofree char *ht = ovi_format_bytes (st->host_mapped_total);
    g_autofree char *ip = ovi_format_bytes (st->device_in_place);
    g_autofree char *in_place
        = est->plan.weights_in_place
              ? g_strdup_printf (", %s of them in place", ip)
              : g_strdup ("");
    g_string_append_printf (s,
                            "  %-13s device %10s (weights %s%s, stream slots "
                            "%s, activations %s), host %s (private %s, mapped "
                            "%s resident of %s)\n",
                            ovi_stage_name (i), pk, w, in_place, sl, a, h, hp,
                            hm, ht);
  }
  {
    g_autofree char *pk = ovi_format_bytes (est->device_peak);
    g_autofree char *h = ovi_format_bytes (est->host_peak);
    g_autofree char *hp = ovi_format_bytes (est->host_private_peak);
    g_string_append_printf (
        s, "  peak          device %10s, host %s (private %s)", pk, h, hp);
  }
  if (est->plan.unified) {
    g_autofree char *pool = ovi_format_bytes (est->pool_peak);
    g_string_append_printf (s,
                            "\n  unified pool  %10s (device + host of the "
                            "worst stage; weights used in place counted "
                            "once, as device)",
                            pool);
  }
  return g_string_free (s, FALSE);
}

static const OviVramMode speed_order[]
    = { OVI_VRAM_MODE_STANDARD, OVI_VRAM_MODE_FP8, OVI_VRAM_MODE_FP8_OFFLOAD,
        OVI_VRAM_MODE_ULTRA_LOW };

static void append_alternative (GString *s, const OviPlacementModel *m,
                                const OviPlacementPlan *plan, int width,
                                int height, gsize act, guint64 device_free);

static gboolean
host_fits (const OviPlacementEstimate *e)
{
  return e->plan.host_ram == 0 || e->host_peak <= e->plan.host_ram;
}

static gboolean
fits (const OviPlacementEstimate *e, guint64 device_free, guint64 host_budget)
{
  if (e->plan.unified)
    return e->pool_peak <= device_free;
  return e->device_peak <= device_free
         && (host_budget == 0 || e->host_peak <= host_budget) && host_fits (e);
}

static int
worst_host_stage (const OviPlacementEstimate *e)
{
  int worst = 0;

  for (int i = 1; i < OVI_N_STAGES; i++)
    if (e->stage[i].host > e->stage[worst].host)
      worst = i;
  return worst;
}

char *
ovi_placement_misfit (const OviPlacementEstimate *e, guint64 device_free)
{
  const OviStageEstimate *hs = &e->stage[worst_host_stage (e)];
  g_autofree char *dev
      = ovi_format_bytes (e->plan.unified ? e->pool_peak : e->device_peak);
  g_autofree char *fr = ovi_format_bytes (device_free);
  g_autofree char *h = ovi_format_bytes (e->host_peak);
  g_autofree char *hp = ovi_format_bytes (hs->host_private);
  g_autofree char *hm = ovi_format_bytes (hs->host_mapped);
  g_autofree char *ram = ovi_format_bytes (e->plan.host_ram);

  if (e->plan.unified ? e->pool_peak > device_free
                      : e->device_peak > device_free)
    return g_strdup_printf ("needs about %s of device memory, %s is free", dev,
                            fr);
  if (!host_fits (e))
    return g_strdup_printf ("needs about %s of host RAM (%s private, %s "
                            "mapped resident, stage %s), %s is available",
                            h, hp, hm, ovi_stage_name (worst_host_stage (e)),
                            ram);
  return NULL;
}

/* "standard: needs ...; fp8: needs ...": why each mode of the speed order
 * before `upto` (all of them: upto AUTO) was passed over */
static char *
auto_skipped (const OviPlacementModel *m, OviGpuAllocation allocation,
              int width, int height, gsize act, const OviDeviceInfo *dev,
              guint64 device_free, guint64 host_budget, guint64 host_ram,
              OviVramMode upto)
{
  GString *s = g_string_new (NULL);

  for (guint i = 0; i < G_N_ELEMENTS (speed_order) && speed_order[i] != upto;
       i++) {
    OviPlacementPlan plan;
    OviPlacementEstimate e;
    g_autofree char *why = NULL;

    if (!ovi_placement_plan_for_device (speed_order[i], allocation, host_budget,
                                        dev, &plan, NULL))
      continue;
    plan.host_ram = host_ram;
    if (!ovi_placement_estimate (m, &plan, width, height, act, &e, NULL))
      continue;
    why = ovi_placement_misfit (&e, device_free);
    g_string_append_printf (s, "%s%s %s", s->len ? "; " : "",
                            ovi_vram_mode_to_string (speed_order[i]),
                            why ? why : "fits");
  }
  return g_string_free (s, FALSE);
}

gboolean
ovi_placement_choose_host (const OviPlacementModel *m, OviVramMode mode,
                           OviGpuAllocation allocation, int width, int height,
                           gsize act, const OviDeviceInfo *dev,
                           guint64 device_free, guint64 host_budget,
                           guint64 host_ram, OviPlacementEstimate *est,
                           GError **error)
{
  OviPlacementPlan plan;

  if (mode != OVI_VRAM_MODE_AUTO) {
    if (!ovi_placement_plan_for_device (mode, allocation, host_budget, dev,
                                        &plan, error))
      return FALSE;
    plan.host_ram = host_ram;
    if (!ovi_placement_estimate (m, &plan, width, height, act, est, error))
      return FALSE;
    if (fits (est, device_free, host_budget))
      return TRUE;
    g_autofree char *msg
        = ovi_placement_oom_advice (m, &plan, width, height, act, device_free);
    g_set_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY, "%s", msg);
    return FALSE;
  }
  for (guint i = 0; i < G_N_ELEMENTS (speed_order); i++) {
    if (!ovi_placement_plan_for_device (speed_order[i], allocation, host_budget,
                                        dev, &plan, error))
      return FALSE;
    plan.host_ram = host_ram;
    if (!ovi_placement_estimate (m, &plan, width, height, act, est, error))
      return FALSE;
    if (fits (est, device_free, host_budget))
      return TRUE;
  }
  GString *msg = g_string_new ("vram-mode auto: no mode fits: ");
  g_autofree char *why
      = auto_skipped (m, allocation, width, height, act, dev, device_free,
                      host_budget, host_ram, OVI_VRAM_MODE_AUTO);
  g_string_append (msg, why);
  append_alternative (msg, m, &plan, width, height, act, device_free);
  g_set_error_literal (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY, msg->str);
  g_string_free (msg, TRUE);
  return FALSE;
}

char *
ovi_placement_auto_why (const OviPlacementModel *m,
                        const OviPlacementEstimate *chosen, int width,
                        int height, const OviDeviceInfo *dev,
                        guint64 device_free, guint64 host_budget)
{
  g_autofree char *skipped = auto_skipped (
      m, chosen->plan.allocation, width, height, chosen->act_dtype_size, dev,
      device_free, host_budget, chosen->plan.host_ram, chosen->plan.mode);
  g_autofree char *fr = ovi_format_bytes (device_free);
  g_autofree char *dv = ovi_format_bytes (chosen->device_peak);
  int worst = worst_host_stage (chosen);
  g_autofree char *h = ovi_format_bytes (chosen->host_peak);
  g_autofree char *hp = ovi_format_bytes (chosen->stage[worst].host_private);
  g_autofree char *hm = ovi_format_bytes (chosen->stage[worst].host_mapped);
  g_autofree char *ramb = ovi_format_bytes (chosen->plan.host_ram);
  g_autofree char *ram = chosen->plan.host_ram ? g_strdup_printf ("of %s", ramb)
                                               : g_strdup ("(RAM unchecked)");

  return g_strdup_printf ("vram-mode auto chose %s: device %s of %s free, "
                          "host %s %s (%s private, %s mapped resident, stage "
                          "%s)%s%s",
                          ovi_vram_mode_to_string (chosen->plan.mode), dv, fr,
                          h, ram, hp, hm, ovi_stage_name (worst),
                          *skipped ? "; passed over: " : "", skipped);
}

gboolean
ovi_placement_choose_on (const OviPlacementModel *m, OviVramMode mode,
                         OviGpuAllocation allocation, int width, int height,
                         gsize act, const OviDeviceInfo *dev,
                         guint64 device_free, guint64 host_budget,
                         OviPlacementEstimate *est, GError **error)
{
  return ovi_placement_choose_host (m, mode, allocation, width, height, act,
                                    dev, device_free, host_budget, 0, est,
                                    error);
}

gboolean
ovi_placement_choose (const OviPlacementModel *m, OviVramMode mode,
                      OviGpuAllocation allocation, int width, int height,
                      gsize act, guint64 device_free, guint64 host_budget,
                      OviPlacementEstimate *est, GError **error)
{
  return ovi_placement_choose_on (m, mode, allocation, width, height, act, NULL,
                                  device_free, host_budget, est, error);
}

void
ovi_device_choice_clear (OviDeviceChoice *c)
{
  g_clear_pointer (&c->cpu_reason, g_free);
}

/* no GPU: the CPU backend, unless the request needs a GPU */
static gboolean
choose_cpu (const OviPlacementModel *m, OviVramMode mode,
            OviGpuAllocation allocation, int width, int height,
            int requested_device, char *reason, gboolean warn,
            OviDeviceChoice *c, OviPlacementEstimate *est, GError **error)
{
  OviPlacementPlan plan;

  if (mode != OVI_VRAM_MODE_AUTO || requested_device >= 0) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND,
                 "No usable CUDA GPU for vram-mode=%s cuda-device-id=%d: %s",
                 ovi_vram_mode_to_string (mode), requested_device, reason);
    g_free (reason);
    return FALSE;
  }
  c->device = -1;
  c->cpu_reason = reason;
  c->warn = warn;
  return ovi_placement_plan_for_mode (OVI_VRAM_MODE_STANDARD, allocation, 0,
                                      &plan, error)
         && ovi_placement_estimate (m, &plan, width, height, 4, est, error);
}

gboolean
ovi_placement_choose_device (const OviPlacementModel *m, OviVramMode mode,
                             OviGpuAllocation allocation, int width, int height,
                             const OviGpuReport *report, int requested_device,
                             guint64 host_budget, OviDeviceChoice *c,
                             OviPlacementEstimate *est, GError **error)
{
  char *reason = ovi_gpu_report_reason (report);
  const OviDeviceInfo *dev;
  GError *local = NULL;

  memset (c, 0, sizeof *c);
  if (reason)
    return choose_cpu (m, mode, allocation, width, height, requested_device,
                       reason, report->nvidia_driver, c, est, error);
  dev = ovi_gpu_report_device (report, requested_device >= 0
                                           ? requested_device
                                           : ovi_gpu_manager_pick (report));
  if (dev == NULL || dev->image == OVI_DEVICE_IMAGE_NONE)
    return choose_cpu (
        m, mode, allocation, width, height, requested_device,
        dev ? g_strdup_printf ("the CUDA module has no image for GPU %d "
                               "(%s, sm_%d%d)",
                               dev->index, dev->name, dev->cc_major,
                               dev->cc_minor)
            : g_strdup_printf ("there is no GPU %d (%d device(s))",
                               requested_device, report->probe.n_devices),
        TRUE, c, est, error);
  c->device = dev->index;
  c->unified = ovi_device_is_unified (dev);
  c->usable_free = ovi_gpu_usable_free (dev, report->host_available);
  /* a discrete GPU's plan must also fit the host RAM left (a unified
   * one's usable_free already counts it) */
  if (ovi_placement_choose_host (
          m, mode, allocation, width, height, 2, dev, c->usable_free,
          host_budget, c->unified ? 0 : report->host_available, est, &local))
    return TRUE;
  if (mode != OVI_VRAM_MODE_AUTO
      || !g_error_matches (local, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY)) {
    g_propagate_error (error, local);
    return FALSE;
  }
  reason = g_strdup_printf ("not enough memory on GPU %d (%s): %s", dev->index,
                            dev->name, local->message);
  g_error_free (local);
  return choose_cpu (m, mode, allocation, width, height, -1, reason, TRUE, c,
                     est, error);
}

gboolean
ovi_placement_choose_for_paths (const OviModelPaths *paths, OviVramMode mode,
                                OviGpuAllocation allocation, int width,
                                int height, OviBackend *backend,
                                guint64 device_free, guint64 host_budget,
                                OviPlacementPlan *plan,
                                OviPlacementEstimate *est_out, GError **error)
{
  OviPlacementModel m;
  OviPlacementEstimate est;
  gboolean ok;

  if (!ovi_placement_model_init (&m, paths, NULL, error))
    return FALSE;
  if (device_free == 0) {
    ok = ovi_placement_plan_for_mode (
             mode == OVI_VRAM_MODE_AUTO ? OVI_VRAM_MODE_STANDARD : mode,
             allocation, host_budget, plan, error)
         && ovi_placement_estimate (
             &m, plan, width, height,
             ovi_dtype_size (ovi_backend_get_act_dtype (backend)), &est, error);
  } else {
    ok = ovi_placement_choose (
        &m, mode, allocation, width, height,
        ovi_dtype_size (ovi_backend_get_act_dtype (backend)), device_free,
        host_budget, &est, error);
  }
  if (ok) {
    *plan = est.plan;
    if (est_out)
      *est_out = est;
  }
  ovi_placement_model_clear (&m);
  return ok;
}

/* "; vram-mode Y would fit (about N)", else the least host RAM a mode
 * fitting the device needs, else the generic advice */
static void
append_alternative (GString *s, const OviPlacementModel *m,
                    const OviPlacementPlan *plan, int width, int height,
                    gsize act, guint64 device_free)
{
  OviPlacementEstimate e;
  guint64 least = 0;
  OviVramMode least_mode = OVI_VRAM_MODE_AUTO;

  for (guint i = 0; i < G_N_ELEMENTS (speed_order); i++) {
    OviPlacementPlan p2;
    if (!ovi_placement_plan_for_mode (speed_order[i], plan->allocation,
                                      plan->host_budget, &p2, NULL))
      continue;
    if (plan->unified)
      make_unified (&p2);
    p2.host_ram = plan->host_ram;
    if (!ovi_placement_estimate (m, &p2, width, height, act, &e, NULL)
        || (plan->unified ? e.pool_peak : e.device_peak) > device_free)
      continue;
    if (host_fits (&e)) {
      g_autofree char *need = ovi_format_bytes (e.device_peak);
      g_autofree char *host = ovi_format_bytes (e.host_peak);
      g_string_append_printf (s, "; vram-mode %s would fit (about %s",
                              ovi_vram_mode_to_string (speed_order[i]), need);
      if (plan->host_ram)
        g_string_append_printf (s, ", host RAM %s", host);
      g_string_append (s, ")");
      return;
    }
    if (least_mode == OVI_VRAM_MODE_AUTO || e.host_peak < least) {
      least = e.host_peak;
      least_mode = speed_order[i];
    }
  }
  if (least_mode != OVI_VRAM_MODE_AUTO) {
    g_autofree char *need = ovi_format_bytes (least);
    g_autofree char *ram = ovi_format_bytes (plan->host_ram);
    g_string_append_printf (s,
                            "; the mode needing the least host RAM that fits "
                            "the device is %s: about %s (%s available); close "
                            "programs or add RAM",
                            ovi_vram_mode_to_string (least_mode), need, ram);
    return;
  }
  g_string_append (s, "; no vram-mode fits: free device memory, use a "
                      "smaller frame size or more GPUs (gpu-allocation)");
}

char *
ovi_placement_oom_advice (const OviPlacementModel *m,
                          const OviPlacementPlan *plan, int width, int height,
                          gsize act, guint64 device_free)
{
  OviPlacementEstimate e;
  GString *s = g_string_new (NULL);
  g_autofree char *fr = ovi_format_bytes (device_free);

  if (!ovi_placement_estimate (m, plan, width, height, act, &e, NULL)) {
    g_string_append_printf (s, "vram-mode %s does not fit in %s",
                            ovi_vram_mode_to_string (plan->mode), fr);
  } else if (!plan->unified && e.device_peak <= device_free
             && !host_fits (&e)) {
    g_autofree char *why = ovi_placement_misfit (&e, device_free);
    g_string_append_printf (s, "vram-mode %s %s",
                            ovi_vram_mode_to_string (plan->mode), why);
  } else {
    g_autofree char *need = ovi_format_bytes (e.device_peak);
    int worst = 0;
    for (int i = 1; i < OVI_N_STAGES; i++)
      if (e.stage[i].device_peak > e.stage[worst].device_peak)
        worst = i;
    g_string_append_printf (s,
                            "vram-mode %s needs about %s of device memory "
                            "(stage %s) but %s is free",
                            ovi_vram_mode_to_string (plan->mode), need,
                            ovi_stage_name (worst), fr);
  }
  append_alternative (s, m, plan, width, height, act, device_free);
  return g_string_free (s, FALSE);
}

gboolean
ovi_placement_explain_oom (GError *error, const OviPlacementModel *m,
                           const OviPlacementPlan *plan, int width, int height,
                           gsize act, guint64 device_free)
{
  char *msg;

  if (error == NULL
      || !g_error_matches (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY))
    return FALSE;
  g_autofree char *advice
      = ovi_placement_oom_advice (m, plan, width, height, act, device_free);
  msg = g_strdup_printf ("%s. %s", error->message, advice);
  g_free (error->message);
  error->message = msg;
  return TRUE;
}

/* ---- applying a plan ---- */

struct _OviPlacement {
  OviPlacementPlan plan;
  OviBackend *be;
  guint64 device_bytes, host_bytes, mapped_bytes, in_place_bytes;
  OviWeightFile *cache; /* the plan's quantised weights, or NULL */
};

OviPlacement *
ovi_placement_new (const OviPlacementPlan *plan, OviBackend *backend)
{
  OviPlacement *pl = g_new0 (OviPlacement, 1);

  pl->plan = *plan;
  pl->be = backend;
  if (plan->weights_in_place)
    ovi_backend_set_weights_in_place (backend, TRUE);
  return pl;
}

void
ovi_placement_free (OviPlacement *pl)
{
  if (pl)
    g_clear_pointer (&pl->cache, ovi_weight_file_free);
  g_free (pl);
}

/* the plan's quantiser changes `w` (float, wanted, not yet that dtype) */
static gboolean
changes (const OviPlacement *pl, const char *name, const OviTensor *w)
{
  return ovi_quantize_wants (pl->plan.quant, name, w->ndim)
         && w->dtype != ovi_quant_kind_dtype (pl->plan.quant)
         && ovi_dtype_is_float (w->dtype);
}

/* whether the plan's quantiser changes any tensor of the file at `path`
 * (not when it holds that dtype already, as the official fp8 file does) */
static gboolean
quantises_any (const OviPlacement *pl, const char *path)
{
  g_autoptr (OviWeightFile) wf = ovi_weight_file_open (path, NULL, NULL);

  for (guint i = 0; wf && i < ovi_weight_file_n_tensors (wf); i++) {
    const char *name = ovi_weight_file_name (wf, i);
    g_autoptr (OviTensor) t = ovi_weight_file_get (wf, name, NULL);
    if (t && changes (pl, name, t))
      return TRUE;
  }
  return wf == NULL; /* unreadable: the cache's error says why */
}

/* the weights the plan's quantiser changes, quantised (the cache's make) */
static OviTensor *
quantise_for_cache (const char *name, const OviTensor *w, gpointer user_data,
                    GError **error)
{
  const OviPlacement *pl = user_data;

  if (!changes (pl, name, w))
    return NULL;
  return ovi_quantize_tensor (w, pl->plan.quant, name, error);
}

static const char *
cache_kind (OviQuantKind kind)
{
  switch (kind) {
    case OVI_QUANT_F8_PER_TENSOR:
      return "f8e4m3-per-tensor";
    case OVI_QUANT_F8_PER_CHANNEL:
      return "f8e4m3-per-channel";
    case OVI_QUANT_I8_PER_CHANNEL:
      return "int8-per-channel";
    default:
      return NULL;
  }
}

gboolean
ovi_placement_use_weight_cache (OviPlacement *pl, const char *source_path,
                                const char *cache_dir, OviWeightCacheInfo *info)
{
  OviWeightCacheSpec spec = {
    .source_path = source_path,
    .kind = cache_kind (pl->plan.quant),
    .cache_dir = cache_dir,
    .make = quantise_for_cache,
    .user_data = pl,
  };
  g_autoptr (GError) error = NULL;

  g_clear_pointer (&pl->cache, ovi_weight_file_free);
  if (spec.kind == NULL || !quantises_any (pl, source_path))
    return FALSE;
  pl->cache = ovi_weight_cache_open (&spec, info, &error);
  if (pl->cache == NULL)
    g_warning ("weight cache not used, the %s weights are quantised in "
               "memory instead: %s",
               spec.kind, error->message);
  return pl->cache != NULL;
}

/* `weight` quantised per the plan: from the cache file's mapping when it
 * holds it (*mapped), else made here */
static OviTensor *
quantised (OviPlacement *pl, const char *name, OviTensor *weight,
           gboolean *mapped, GError **error)
{
  OviTensor *c = pl->cache ? ovi_weight_cache_get (pl->cache, name) : NULL;

  *mapped = c && c->ndim == weight->ndim
            && memcmp (c->shape, weight->shape, sizeof c->shape) == 0
            && c->dtype == ovi_quant_kind_dtype (pl->plan.quant);
  if (*mapped)
    return c;
  g_clear_pointer (&c, ovi_tensor_unref);
  return ovi_quantize_tensor (weight, pl->plan.quant, name, error);
}

static OviTensor *place_resident (OviPlacement *pl, OviTensor *w,
                                  const char *name, GError **error);

OviTensor *
ovi_placement_t5_filter (const char *name, OviTensor *weight,
                         gpointer user_data, GError **error)
{
  OviPlacement *pl = user_data;
  g_autoptr (OviTensor) w = NULL;

  if (ovi_quantize_wants (pl->plan.t5_quant, name, weight->ndim)
      && weight->dtype != ovi_quant_kind_dtype (pl->plan.t5_quant)) {
    w = ovi_quantize_tensor (weight, pl->plan.t5_quant, name, error);
    if (w == NULL)
      return NULL;
  } else if ((pl->plan.t5_on_cpu || pl->plan.t5_stream)
             && ovi_tensor_is_contiguous (weight)
             && weight->storage->device.type == OVI_DEVICE_CPU) {
    /* the CPU reads the file's own pages as they are (a copy would be
     * 11 GB of private memory for umT5-XXL); streamed to a GPU, the
     * encoder copies one block at a time from them (ovi-t5-stream.c) */
    pl->mapped_bytes += ovi_tensor_nbytes (weight);
    return ovi_tensor_ref (weight);
  } else {
    w = ovi_tensor_ref (weight);
  }
  return place_resident (pl, w, name, error);
}

guint64
ovi_placement_in_place_bytes (const OviPlacement *pl)
{
  return pl->in_place_bytes;
}

guint64
ovi_placement_mapped_bytes (const OviPlacement *pl)
{
  return pl->mapped_bytes;
}

guint64
ovi_placement_device_bytes (const OviPlacement *pl)
{
  return pl->device_bytes;
}

guint64
ovi_placement_host_bytes (const OviPlacement *pl)
{
  return pl->host_bytes;
}

void
ovi_placement_attach_denoiser (const OviPlacement *pl, OviDenoiser *d)
{
  OviFusion *fusion = ovi_denoiser_get_fusion (d);

  ovi_fusion_set_streaming (fusion, pl->plan.stream_blocks);
  ovi_fusion_set_stream_budget (fusion, pl->plan.host_budget);
}

static gboolean
is_block_weight (const char *name)
{
  return strstr (name, ".blocks.") != NULL;
}

/* a copy of `t` (and its scale) in the backend's memory */
static OviTensor *
to_device (OviBackend *be, OviTensor *t, const char *name, GError **error)
{
  g_autoptr (OviTensor) dst = NULL;
  GError *local = NULL;

  dst = ovi_backend_new_tensor (be, t->dtype, t->ndim, t->shape);
  if (dst && t->scale) {
    dst->scale = ovi_backend_new_tensor (be, t->scale->dtype, t->scale->ndim,
                                         t->scale->shape);
    if (dst->scale)
      ovi_op_copy (be, dst->scale, t->scale);
  }
  if (dst && (t->scale == NULL || dst->scale))
    ovi_op_copy (be, dst, t);
  if (!ovi_backend_sync (be, &local) || dst == NULL) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                 "placing %s (%s) on the %s backend: %s", name,
                 ovi_dtype_name (t->dtype), ovi_backend_get_name (be),
                 local ? local->message : "out of memory");
    g_clear_error (&local);
    return NULL;
  }
  return g_steal_pointer (&dst);
}

static guint64
bytes_with_scale (const OviTensor *w)
{
  return ovi_tensor_nbytes (w) + (w->scale ? ovi_tensor_nbytes (w->scale) : 0);
}

/* a weight that stays on the device: on a unified device (the plan's
 * weights_in_place) the device reads the host tensor where it lies (the
 * file's mapping, or the quantiser's one host copy) when the backend can,
 * else it is copied into the backend's memory (one copy: the host tensor
 * is dropped by the caller) */
static OviTensor *
place_resident (OviPlacement *pl, OviTensor *w, const char *name,
                GError **error)
{
  gboolean in_place = FALSE;
  OviTensor *v;
  GError *local = NULL;

  if (!pl->plan.weights_in_place) {
    pl->device_bytes += bytes_with_scale (w);
    return to_device (pl->be, w, name, error);
  }
  v = ovi_backend_upload_weight (pl->be, w, &in_place);
  if (v == NULL || !ovi_backend_sync (pl->be, &local)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                 "placing %s (%s) on the %s backend: %s", name,
                 ovi_dtype_name (w->dtype), ovi_backend_get_name (pl->be),
                 local ? local->message : "out of memory");
    g_clear_error (&local);
    g_clear_pointer (&v, ovi_tensor_unref);
    return NULL;
  }
  if (in_place)
    pl->in_place_bytes += bytes_with_scale (w);
  else
    pl->device_bytes += bytes_with_scale (w);
  return v;
}

OviTensor *
ovi_placement_weight_filter (const char *name, OviTensor *weight,
                             gpointer user_data, GError **error)
{
  OviPlacement *pl = user_data;
  g_autoptr (OviTensor) w = NULL;
  gboolean quantise = ovi_quantize_wants (pl->plan.quant, name, weight->ndim)
                      && weight->dtype != ovi_quant_kind_dtype (pl->plan.quant);
  gboolean mapped = FALSE;

  if (quantise) {
    w = quantised (pl, name, weight, &mapped, error);
    if (w == NULL)
      return NULL;
  } else {
    w = ovi_tensor_ref (weight);
  }
  if (pl->plan.stream_blocks && is_block_weight (name)) {
    /* lives in host memory (the pinned slab, or the cache file's mapping
     * used in place); the device sees it one block at a time through the
     * stream slots */
    guint64 n = bytes_with_scale (w);
    if (mapped)
      pl->mapped_bytes += n;
    else
      pl->host_bytes += n;
    return g_steal_pointer (&w);
  }
  return place_resident (pl, w, name, error);
}

guint64
ovi_host_ram_available (void)
{
  const char *path = g_getenv ("OVI_MEMINFO_FILE");
  g_autofree char *text = NULL;
  const char *line;
  guint64 kib;

  if (!g_file_get_contents (path ? path : "/proc/meminfo", &text, NULL, NULL))
    return 0;
  line = strstr (text, "MemAvailable:");
  if (line == NULL)
    return 0;
  kib = g_ascii_strtoull (line + strlen ("MemAvailable:"), NULL, 10);
  return kib * 1024;
}
