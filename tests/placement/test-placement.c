/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tests: VRAM modes on the CPU backend (docs/vram-modes.md).
 *
 *  - quantisation: F8_E4M3 per-tensor / per-channel and I8 per-channel give
 *    the expected raw values and scales on hand-made tensors, dequantise
 *    within the format's rounding bound, and the CPU backend's matmul on
 *    the quantised weights equals the matmul on their dequantised values;
 *  - the official fp8 key rule (norm / bias stay 16-bit) and ours;
 *  - the tiny model through the denoiser with the weights of each mode
 *    (quantised at load by the placement filter): final latents and the
 *    decoded video / audio stay within a stated rel_l2 of the bf16 run;
 *  - a simulated device memory limit (ovi-mem-account.h): each mode's
 *    accounted peak per stage stays under its estimate, the run passes with
 *    the limit set to the estimate and fails cleanly (OOM GError naming
 *    needed / free) under half of it;
 *  - the release estimates are ordered (standard > fp8 > fp8-offload >
 *    ultra-low) and `auto` picks the fastest mode that fits.
 */
#include "ovi-test-util.h"
#include "ovi-backend.h"
#include "ovi-engine.h"
#include "ovi-fusion.h"
#include "ovi-mem-account.h"
#include "ovi-placement.h"
#include "ovi-presets.h"
#include "ovi-quantize.h"
#include "ovi-tiny.h"
#include "ovi-weights.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

static char *tiny_dir;
static char *cache_dir; /* the weight cache of the modes that quantise */

/* rel_l2 bounds of the tiny pipeline against the bf16 run (final latents
 * after the tiny preset's 4 UniPC steps with CFG; decoded outputs) */
#define BOUND_FP8_TEXT     0.10
#define BOUND_FP8_LATENT   0.15
#define BOUND_INT8_LATENT  0.05
#define BOUND_FP8_DECODED  0.15
#define BOUND_INT8_DECODED 0.05

static OviTensor *
from_floats (int ndim, const int64_t *shape, const float *v)
{
  OviTensor *t = ovi_tensor_new_f32 (ndim, shape);
  memcpy (ovi_tensor_data (t), v, ovi_tensor_nbytes (t));
  return t;
}

/* deterministic N(0,1)-ish values */
static OviTensor *
randn (int64_t rows, int64_t cols, guint32 seed, float scale)
{
  int64_t shape[2] = { rows, cols };
  OviTensor *t = ovi_tensor_new_f32 (2, shape);
  float *v = ovi_tensor_data (t);
  guint32 s = seed * 2654435761u + 1;

  for (int64_t i = 0; i < rows * cols; i++) {
    float acc = 0;
    for (int k = 0; k < 4; k++) {
      s = s * 1664525u + 1013904223u;
      acc += (float) (s >> 8) / 16777216.0f - 0.5f;
    }
    v[i] = acc * 1.7320508f * scale;
  }
  return t;
}

static double
rel_l2 (const OviTensor *a, const OviTensor *b)
{
  g_autoptr (OviTensor) x = ovi_tensor_to_f32 (a, NULL);
  g_autoptr (OviTensor) y = ovi_tensor_to_f32 (b, NULL);
  const float *p = ovi_tensor_data (x), *q = ovi_tensor_data (y);
  double num = 0, den = 0;

  g_assert_cmpint (ovi_tensor_numel (x), ==, ovi_tensor_numel (y));
  for (int64_t i = 0; i < ovi_tensor_numel (x); i++) {
    g_assert_true (isfinite (p[i]));
    num += ((double) p[i] - q[i]) * ((double) p[i] - q[i]);
    den += (double) q[i] * q[i];
  }
  return sqrt (num / den);
}

/* ---- quantisation ---- */

static void
test_quantize_values (void)
{
  g_autoptr (GError) error = NULL;
  /* row 0: amax 448 -> scale 1, all values representable in e4m3;
   * row 1: zeros -> scale 1; row 2: amax 0.875 -> scale 0.875/448 */
  const float v[3][4] = { { 448.0f, 1.0f, -0.5f, 3.0f },
                          { 0, 0, 0, 0 },
                          { 0.875f, -0.4375f, 0.21875f, 0 } };
  int64_t shape[2] = { 3, 4 };
  g_autoptr (OviTensor) w = from_floats (2, shape, &v[0][0]);
  g_autoptr (OviTensor) qc = NULL, qt = NULL, qi = NULL, dq = NULL;
  const float *sc;

  qc = ovi_quantize_tensor (w, OVI_QUANT_F8_PER_CHANNEL, "w", &error);
  g_assert_no_error (error);
  g_assert_cmpint (qc->dtype, ==, OVI_DTYPE_F8_E4M3);
  g_assert_nonnull (qc->scale);
  g_assert_cmpint (qc->scale->shape[0], ==, 3);
  sc = ovi_tensor_data (qc->scale);
  g_assert_cmpfloat (sc[0], ==, 1.0f);
  g_assert_cmpfloat (sc[1], ==, 1.0f);
  g_assert_cmpfloat (sc[2], ==, 0.875f / 448.0f);
  /* 448 is e4m3's largest normal: 0x7e; 1.0 = 0x38; -0.5 = 0xb0 */
  g_assert_cmphex (((uint8_t *) ovi_tensor_data (qc))[0], ==, 0x7e);
  g_assert_cmphex (((uint8_t *) ovi_tensor_data (qc))[1], ==, 0x38);
  g_assert_cmphex (((uint8_t *) ovi_tensor_data (qc))[2], ==, 0xb0);
  /* every value here is a power-of-two multiple of the row scale: exact */
  dq = ovi_tensor_to_f32 (qc, &error);
  g_assert_no_error (error);
  for (int i = 0; i < 12; i++)
    g_assert_cmpfloat (((float *) ovi_tensor_data (dq))[i], ==, (&v[0][0])[i]);

  /* per-tensor: one scale from the whole tensor's amax */
  qt = ovi_quantize_tensor (w, OVI_QUANT_F8_PER_TENSOR, "w", &error);
  g_assert_no_error (error);
  g_assert_cmpint (ovi_tensor_numel (qt->scale), ==, 1);
  g_assert_cmpfloat (((float *) ovi_tensor_data (qt->scale))[0], ==, 1.0f);
  /* 0.21875 at scale 1 lies between e4m3 steps of 1/64: 0.21875 = 14/64 */
  g_assert_cmpfloat (ovi_tensor_get_f64 (qt, (int64_t[]){ 2, 2 }), ==, 0.21875);

  /* int8 per channel: scale amax/127, round to nearest even */
  const float iv[2][3] = { { 1.27f, -0.635f, 0.01f }, { -2.54f, 1.0f, 0 } };
  int64_t is[2] = { 2, 3 };
  g_autoptr (OviTensor) wi = from_floats (2, is, &iv[0][0]);
  qi = ovi_quantize_tensor (wi, OVI_QUANT_I8_PER_CHANNEL, "wi", &error);
  g_assert_no_error (error);
  g_assert_cmpint (qi->dtype, ==, OVI_DTYPE_I8);
  sc = ovi_tensor_data (qi->scale);
  g_assert_cmpfloat_with_epsilon (sc[0], 0.01f, 1e-8);
  g_assert_cmpfloat_with_epsilon (sc[1], 0.02f, 1e-8);
  const int8_t *r = ovi_tensor_data (qi);
  g_assert_cmpint (r[0], ==, 127);
  g_assert_cmpint (r[1], ==, -64); /* -63.5 -> -64 (half to even) */
  g_assert_cmpint (r[2], ==, 1);
  g_assert_cmpint (r[3], ==, -127);
  g_assert_cmpint (r[4], ==, 50);
  g_assert_cmpint (r[5], ==, 0);
  g_assert_cmpfloat_with_epsilon (ovi_tensor_get_f64 (qi, (int64_t[]){ 0, 1 }),
                                  -0.64, 1e-6);

  /* non-finite values are refused with the tensor's name */
  ((float *) ovi_tensor_data (wi))[4] = NAN;
  g_autoptr (OviTensor) bad = ovi_quantize_tensor (wi, OVI_QUANT_I8_PER_CHANNEL,
                                                   "blocks.0.x", &error);
  g_assert_null (bad);
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "blocks.0.x"));
}

static void
test_quantize_random (void)
{
  g_autoptr (GError) error = NULL;
  /* rows of very different magnitudes: per-channel scales matter */
  g_autoptr (OviTensor) w = randn (96, 160, 7, 0.02f);
  float *v = ovi_tensor_data (w);
  struct {
    OviQuantKind kind;
    double bound;
  } cases[] = {
    /* e4m3 (3 mantissa bits): relative rounding error <= 2^-4, rms of a
     * uniform error ~ 2^-4/sqrt(3) = 0.036 for normals */
    { OVI_QUANT_F8_PER_CHANNEL, 0.036 },
    { OVI_QUANT_F8_PER_TENSOR, 0.045 },
    /* int8: step amax/127, error rms step/sqrt(12), amax ~ 3.5-4 sigma */
    { OVI_QUANT_I8_PER_CHANNEL, 0.012 },
  };

  for (int r = 0; r < 96; r++)
    for (int c = 0; c < 160; c++)
      v[r * 160 + c] *= (float) (1 + (r % 8) * 7);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr (OviTensor) q
        = ovi_quantize_tensor (w, cases[i].kind, "w", &error);
    g_assert_no_error (error);
    double e = ovi_quantize_rel_l2 (q, w);
    g_test_message ("%s: rel_l2 %.5f (bound %.3f)",
                    ovi_quant_kind_to_string (cases[i].kind), e,
                    cases[i].bound);
    g_assert_cmpfloat (e, <=, cases[i].bound);
    g_assert_cmpfloat (e, >, 0);

    /* the CPU backend's matmul on the quantised weight equals the matmul
     * on its dequantised values */
    g_autoptr (OviBackend) be = ovi_backend_new_cpu (2);
    g_autoptr (OviTensor) x = randn (5, 160, 11, 1.0f);
    g_autoptr (OviTensor) dq = ovi_tensor_to_f32 (q, &error);
    int64_t os[2] = { 5, 96 };
    g_autoptr (OviTensor) y1 = ovi_backend_new_act (be, 2, os);
    g_autoptr (OviTensor) y2 = ovi_backend_new_act (be, 2, os);
    ovi_op_matmul (be, y1, x, q, NULL, OVI_ACT_NONE);
    ovi_op_matmul (be, y2, x, dq, NULL, OVI_ACT_NONE);
    g_assert_true (ovi_backend_sync (be, &error));
    g_assert_cmpfloat (rel_l2 (y1, y2), <, 1e-6);
  }
}

static void
test_policy (void)
{
  /* the official fp8 file's rule and ours */
  const char *kept[] = { "video_model.blocks.0.self_attn.norm_q.weight",
                         "video_model.blocks.0.norm3.weight",
                         "video_model.blocks.0.ffn.0.bias",
                         ("audio_model.blocks.3.cross_attn.pre_attn_norm_"
                          "fusion.weight"),
                         "video_model.blocks.0.modulation.modulation",
                         "video_model.head.modulation" };
  for (guint i = 0; i < G_N_ELEMENTS (kept); i++) {
    g_assert_false (ovi_quantize_wants (OVI_QUANT_F8_PER_CHANNEL, kept[i], 2));
    g_assert_false (ovi_quantize_wants (OVI_QUANT_I8_PER_CHANNEL, kept[i], 2));
  }
  g_assert_true (ovi_quantize_wants (
      OVI_QUANT_F8_PER_CHANNEL, "video_model.blocks.0.self_attn.q.weight", 2));
  g_assert_true (ovi_quantize_wants (OVI_QUANT_I8_PER_CHANNEL,
                                     "audio_model.blocks.1.ffn.2.weight", 2));
  g_assert_true (ovi_quantize_wants (OVI_QUANT_F8_PER_TENSOR,
                                     "video_model.text_embedding.0.weight", 2));
  /* convolutions: fp8 as the official file, int8 keeps them (quanto) */
  g_assert_true (ovi_quantize_wants (OVI_QUANT_F8_PER_CHANNEL,
                                     "video_model.patch_embedding.weight", 5));
  g_assert_false (ovi_quantize_wants (
      OVI_QUANT_I8_PER_CHANNEL, "audio_model.patch_embedding.2.w1.weight", 3));
  g_assert_false (ovi_quantize_wants (OVI_QUANT_NONE,
                                      "video_model.blocks.0.ffn.0.weight", 2));
}

/* ---- the tiny pipeline per mode ---- */

static OviTensor *
text (int n, int dim, guint32 seed)
{
  return randn (n, dim, seed, 1.0f);
}

typedef struct {
  OviTensor *text, *video, *audio, *frames, *wav;
  guint64 peak[OVI_N_STAGES];
  /* host memory of our own per stage (a CPU-side umT5's allocations, the
   * streamed blocks' slabs) and the weight bytes used from the mapping */
  guint64 host_private[OVI_N_STAGES];
  guint64 host_mapped[OVI_N_STAGES];
  /* text: the umT5 file's pages held at once by the encoder (streamed: two
   * blocks) and of how many its weights lie in */
  guint64 text_mapped_peak, text_mapped_total;
  OviPlacementEstimate est;
} ModeRun;

static void
mode_run_clear (ModeRun *r)
{
  g_clear_pointer (&r->text, ovi_tensor_unref);
  g_clear_pointer (&r->video, ovi_tensor_unref);
  g_clear_pointer (&r->audio, ovi_tensor_unref);
  g_clear_pointer (&r->frames, ovi_tensor_unref);
  g_clear_pointer (&r->wav, ovi_tensor_unref);
}

typedef struct {
  GPtrArray *groups;
} Frames;

static gboolean
collect_frames (const OviTensor *frames, int first, gpointer user_data)
{
  Frames *f = user_data;
  g_ptr_array_add (f->groups, ovi_tensor_to_f32 (frames, NULL));
  return TRUE;
}

static OviTensor *
concat_flat (GPtrArray *groups)
{
  int64_t n = 0, at = 0;
  for (guint i = 0; i < groups->len; i++)
    n += ovi_tensor_numel (g_ptr_array_index (groups, i));
  OviTensor *out = ovi_tensor_new_f32 (1, &n);
  for (guint i = 0; i < groups->len; i++) {
    OviTensor *g = g_ptr_array_index (groups, i);
    memcpy ((float *) ovi_tensor_data (out) + at, ovi_tensor_data (g),
            ovi_tensor_nbytes (g));
    at += ovi_tensor_numel (g);
  }
  return out;
}

/* Runs the denoiser (weights placed per `mode`), the video VAE and the
 * audio decoder on the CPU backend with a device-memory account of limit
 * `limit` (0: none). Returns FALSE with `error` when a stage fails. */
static gboolean
run_mode (const OviModelPaths *paths, const OviPlacementModel *model,
          OviVramMode mode, guint64 limit, ModeRun *out, GError **error)
{
  g_autoptr (OviBackend) be = ovi_backend_new_cpu (2);
  const OviModelPreset *m = ovi_model_preset_lookup ("tiny", NULL);
  OviPlacementPlan plan;
  OviMemAccount *acc;
  gboolean ok = FALSE;

  g_assert_true (ovi_placement_plan_for_mode (mode, OVI_GPU_ALLOCATION_SINGLE,
                                              0, &plan, NULL));
  g_assert_true (ovi_placement_estimate (
      model, &plan, m->default_width, m->default_height, 4, &out->est, NULL));
  acc = ovi_mem_account_attach (be, limit);
  {
    /* text: umT5 per the plan; "on the CPU" is a backend of its own,
     * outside the device account */
    g_autoptr (OviBackend) cpu
        = plan.t5_on_cpu ? ovi_backend_new_cpu (2) : NULL;
    OviBackend *tbe = plan.t5_on_cpu ? cpu : be;
    OviMemAccount *hacc = cpu ? ovi_mem_account_attach (cpu, 0) : NULL;
    g_autoptr (OviPlacement) pl = ovi_placement_new (&plan, tbe);
    OviTensor *emb[3] = { NULL, NULL, NULL };
    OviTextEncoder *enc = ovi_text_encoder_new_filtered (
        paths, tbe, ovi_placement_t5_filter, pl, error);
    if (enc == NULL) {
      g_clear_pointer (&hacc, ovi_mem_account_detach);
      goto done;
    }
    ok = ovi_text_encoder_encode (enc, "a cat plays the piano. <S>hello<E>",
                                  NULL, NULL, emb, NULL, error);
    ovi_text_encoder_get_mapped (enc, &out->text_mapped_peak,
                                 &out->text_mapped_total);
    ovi_text_encoder_free (enc);
    out->peak[OVI_STAGE_TEXT] = ovi_mem_account_peak (acc);
    out->host_private[OVI_STAGE_TEXT] = hacc ? ovi_mem_account_peak (hacc) : 0;
    out->host_mapped[OVI_STAGE_TEXT] = ovi_placement_mapped_bytes (pl);
    g_clear_pointer (&hacc, ovi_mem_account_detach);
    out->text = emb[0];
    g_clear_pointer (&emb[1], ovi_tensor_unref);
    g_clear_pointer (&emb[2], ovi_tensor_unref);
    if (!ok)
      goto done;
    ok = FALSE;
  }
  ovi_mem_account_reset_peak (acc);
  {
    g_autoptr (OviPlacement) pl = ovi_placement_new (&plan, be);
    g_autoptr (OviTensor) pos = text (7, m->text_dim, 1);
    g_autoptr (OviTensor) vneg = text (5, m->text_dim, 2);
    g_autoptr (OviTensor) aneg = text (6, m->text_dim, 3);
    OviDenoiseRequest req;
    OviDenoiser *d;

    /* the quantised weights from the cache file, as a stage loads them
     * (none for a file that holds them already: check_host tells) */
    if (plan.weight_cache)
      ovi_placement_use_weight_cache (pl, paths->fusion_path, cache_dir, NULL);
    d = ovi_denoiser_new_filtered (paths, be, ovi_placement_weight_filter, pl,
                                   error);
    if (d == NULL)
      goto done;
    ovi_placement_attach_denoiser (pl, d);
    g_assert_cmpint (ovi_fusion_get_streaming (ovi_denoiser_get_fusion (d)), ==,
                     plan.stream_blocks);
    ovi_test_preset_request (&req, m, pos, vneg, aneg, 103);
    ok = ovi_denoiser_run (d, &req, NULL, NULL, NULL, &out->video, &out->audio,
                           error);
    {
      OviFusionStreamStats ss;
      ovi_fusion_get_stream_stats (ovi_denoiser_get_fusion (d), &ss);
      out->host_private[OVI_STAGE_DENOISE]
          = ss.pinned_bytes + ss.pageable_bytes;
      out->host_mapped[OVI_STAGE_DENOISE] = ss.mapped_bytes;
    }
    ovi_denoiser_free (d);
    out->peak[OVI_STAGE_DENOISE] = ovi_mem_account_peak (acc);
    if (!ok)
      goto done;
  }
  ok = FALSE;
  g_assert_cmpuint (ovi_mem_account_used (acc), ==, 0);
  ovi_mem_account_reset_peak (acc);
  {
    OviVideoVae *vae = ovi_video_vae_new (paths, be, error);
    Frames f = { g_ptr_array_new_with_free_func (
        (GDestroyNotify) ovi_tensor_unref) };
    if (vae == NULL) {
      g_ptr_array_unref (f.groups);
      goto done;
    }
    g_test_message ("video VAE loaded: %" G_GUINT64_FORMAT " bytes accounted",
                    ovi_mem_account_used (acc));
    if (plan.vae_tile > 0)
      ovi_video_vae_set_tiling (vae, plan.vae_tile, plan.vae_tile_overlap);
    ok = ovi_video_vae_decode (vae, out->video, collect_frames, &f, NULL,
                               error);
    ovi_video_vae_free (vae);
    out->frames = concat_flat (f.groups);
    g_ptr_array_unref (f.groups);
    out->peak[OVI_STAGE_VIDEO_DECODE] = ovi_mem_account_peak (acc);
    if (!ok)
      goto done;
  }
  ok = FALSE;
  ovi_mem_account_reset_peak (acc);
  {
    OviAudioDecoder *adec = ovi_audio_decoder_new (paths, be, error);
    g_autoptr (OviTensor) wav = NULL;
    if (adec == NULL)
      goto done;
    g_test_message ("audio decoder loaded: %" G_GUINT64_FORMAT
                    " bytes accounted",
                    ovi_mem_account_used (acc));
    wav = ovi_audio_decoder_decode (adec, out->audio, NULL, error);
    ovi_audio_decoder_free (adec);
    out->peak[OVI_STAGE_AUDIO_DECODE] = ovi_mem_account_peak (acc);
    if (wav == NULL)
      goto done;
    out->wav = ovi_tensor_to_f32 (wav, error);
  }
  ok = out->wav != NULL;
done:
  /* the video VAE's decode returns FALSE without the backend's sticky
   * error when an allocation fails (ovi-wan-vae.c checks `rgb == NULL`
   * first): fetch it here */
  if (!ok && error && *error == NULL) {
    g_test_message ("a stage failed without a GError; the backend says:");
    if (ovi_backend_sync (be, error))
      g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND, "unknown failure");
  }
  ovi_mem_account_detach (acc);
  return ok;
}

/* What the CPU backend's device account must at least see of a stage's
 * estimate, and why the factor. On the CPU backend the decoders' and a
 * CPU-side umT5's weights are views of the files (not accounted), so only
 * the parts the account sees are compared:
 *  - denoise: own weights + activations (both exact sums of the tensors
 *    the model allocates, the stream slots being a GPU backend's only):
 *    within 10%;
 *  - text: own weights + activations within 2x (the activation term
 *    assumes every buffer of a layer alive at once);
 *  - video-decode: activations within 2x (a calibrated constant with a
 *    1.5x margin, ovi-placement.c);
 *  - audio-decode: activations within 6x (a calibrated constant with a 5x
 *    margin: the vocoder's buffers vary with its upsampling stage).
 * A stage that the plan runs elsewhere (umT5 on the CPU) has no bound. */
static guint64
accountable_lower_bound (const OviPlacementEstimate *est, int s)
{
  const OviStageEstimate *se = &est->stage[s];

  switch (s) {
    case OVI_STAGE_DENOISE:
      return (se->device_own_weights + se->device_activations) * 9 / 10;
    case OVI_STAGE_TEXT:
      return est->plan.t5_on_cpu
                 ? 0
                 : (se->device_own_weights + se->device_activations) / 2;
    case OVI_STAGE_VIDEO_DECODE:
      return se->device_activations / 2;
    default:
      return se->device_activations / 6;
  }
}

/* Host memory: what we allocate (a CPU-side umT5's buffers, the streamed
 * blocks' slabs) stays under the estimate's private bytes and near it; the
 * unquantised umT5 on the CPU is read from its file's mapping, no copy. */
static void
check_host (const ModeRun *r, const OviPlacementModel *m)
{
  const OviStageEstimate *text = &r->est.stage[OVI_STAGE_TEXT];
  const OviStageEstimate *dn = &r->est.stage[OVI_STAGE_DENOISE];
  guint64 slabs = r->host_private[OVI_STAGE_DENOISE];

  guint64 mapped = r->host_mapped[OVI_STAGE_DENOISE];
  /* held from the load on: the slabs, and a GPU's staging for pageable
   * (mapped or past the pinned budget) ones */
  guint64 pageable = r->est.plan.mapped_bytes + r->est.plan.pageable_bytes;
  guint64 held = r->est.plan.pinned_bytes + r->est.plan.pageable_bytes
                 + (pageable ? OVI_STREAM_STAGING_BYTES : 0);

  if (r->est.plan.stream_blocks && r->est.plan.mapped_bytes > 0) {
    /* the blocks used in place from the weight cache: nothing packed
     * (the estimate's private bytes are a GPU's staging buffers), the
     * mapped bytes near the estimate */
    g_assert_cmpuint (slabs, ==, 0);
    g_assert_cmpuint (r->est.plan.pinned_bytes + r->est.plan.pageable_bytes, ==,
                      0);
    g_assert_cmpuint (dn->host_private, ==, OVI_STREAM_STAGING_BYTES);
    g_assert_cmpuint (mapped, <=, dn->host_mapped);
    g_assert_cmpuint (mapped, >=, dn->host_mapped * 9 / 10);
  } else if (r->est.plan.stream_blocks) {
    g_assert_cmpuint (slabs, <=, dn->host_private);
    g_assert_cmpuint (slabs, >=, dn->host_private * 9 / 10);
    g_assert_cmpuint (mapped, ==, 0);
  } else {
    g_assert_cmpuint (slabs, ==, 0);
    g_assert_cmpuint (dn->host_private, ==, 0);
  }
  if (!r->est.plan.t5_on_cpu) {
    g_assert_cmpuint (r->host_mapped[OVI_STAGE_TEXT], ==, 0);
    return;
  }
  /* the CPU-side umT5 allocates its activations only: the estimate's
   * text-stage private bytes are those plus the slabs held meanwhile */
  g_assert_cmpuint (r->host_private[OVI_STAGE_TEXT], >, 0);
  g_assert_cmpuint (r->host_private[OVI_STAGE_TEXT], <=,
                    text->host_private - held);
  g_assert_cmpuint (r->host_private[OVI_STAGE_TEXT], >=,
                    (text->host_private - held) / 2);
  /* the weights the filter left in the mapping: the whole file's worth */
  g_assert_cmpuint (r->host_mapped[OVI_STAGE_TEXT], >, 0);
  g_assert_cmpuint (r->host_mapped[OVI_STAGE_TEXT], <=,
                    text->host_mapped_total);
  g_assert_cmpuint (r->host_mapped[OVI_STAGE_TEXT], >=,
                    text->host_mapped_total * 9 / 10);
  g_test_message ("%s text: umT5 mapping held at once %" G_GUINT64_FORMAT
                  " (estimate %" G_GUINT64_FORMAT
                  ", two blocks %" G_GUINT64_FORMAT ") of %" G_GUINT64_FORMAT
                  " (estimate %" G_GUINT64_FORMAT ")",
                  ovi_vram_mode_to_string (r->est.plan.mode),
                  r->text_mapped_peak, text->host_mapped, 2 * m->t5_block_bytes,
                  r->text_mapped_total, text->host_mapped_total);
  /* what the encoder held of it at once: under the resident estimate, and
   * at least the two blocks the stream holds (ovi-t5-stream.c) */
  g_assert_cmpuint (r->text_mapped_peak, <=, text->host_mapped);
  g_assert_cmpuint (r->text_mapped_peak, >=, 2 * m->t5_block_bytes);
}

static void
test_tiny_modes (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviModelPaths) paths
      = ovi_model_paths_resolve (tiny_dir, NULL, &error);
  OviPlacementModel model;
  ModeRun ref = { 0 };
  const OviVramMode modes[]
      = { OVI_VRAM_MODE_STANDARD, OVI_VRAM_MODE_FP8, OVI_VRAM_MODE_FP8_OFFLOAD,
          OVI_VRAM_MODE_ULTRA_LOW };

  g_assert_no_error (error);
  g_assert_true (ovi_placement_model_init (&model, paths, NULL, &error));
  g_assert_no_error (error);

  /* the unfiltered denoiser is the reference: standard mode must equal it */
  {
    g_autoptr (OviBackend) be = ovi_backend_new_cpu (2);
    const OviModelPreset *m = ovi_model_preset_lookup ("tiny", NULL);
    g_autoptr (OviTensor) pos = text (7, m->text_dim, 1);
    g_autoptr (OviTensor) vneg = text (5, m->text_dim, 2);
    g_autoptr (OviTensor) aneg = text (6, m->text_dim, 3);
    OviDenoiseRequest req;
    OviDenoiser *d = ovi_denoiser_new (paths, be, &error);
    g_assert_no_error (error);
    ovi_test_preset_request (&req, m, pos, vneg, aneg, 103);
    g_assert_true (ovi_denoiser_run (d, &req, NULL, NULL, NULL, &ref.video,
                                     &ref.audio, &error));
    g_assert_no_error (error);
    ovi_denoiser_free (d);
  }

  ModeRun std = { 0 };
  for (guint i = 0; i < G_N_ELEMENTS (modes); i++) {
    ModeRun r = { 0 };
    const char *name = ovi_vram_mode_to_string (modes[i]);

    g_assert_true (run_mode (paths, &model, modes[i], 0, &r, &error));
    g_assert_no_error (error);
    for (int s = OVI_STAGE_TEXT; s < OVI_N_STAGES; s++) {
      const OviStageEstimate *se = &r.est.stage[s];
      g_test_message ("%s %s: accounted peak %" G_GUINT64_FORMAT
                      " <= estimate %" G_GUINT64_FORMAT
                      " (own weights %" G_GUINT64_FORMAT
                      ", activations %" G_GUINT64_FORMAT ")",
                      name, ovi_stage_name (s), r.peak[s], se->device_peak,
                      se->device_own_weights, se->device_activations);
      if (s == OVI_STAGE_TEXT && r.est.plan.t5_on_cpu)
        g_assert_cmpuint (r.peak[s], ==, 0);
      else
        g_assert_cmpuint (r.peak[s], >, 0);
      g_assert_cmpuint (r.peak[s], <=, r.est.stage[s].device_peak);
      g_assert_cmpuint (r.peak[s], >=, accountable_lower_bound (&r.est, s));
      g_test_message ("%s %s: host private %" G_GUINT64_FORMAT
                      " (estimate %" G_GUINT64_FORMAT
                      "), mapped %" G_GUINT64_FORMAT
                      " (estimate %" G_GUINT64_FORMAT ")",
                      name, ovi_stage_name (s), r.host_private[s],
                      se->host_private, r.host_mapped[s], se->host_mapped);
    }
    check_host (&r, &model);
    /* the DiT estimate is tight: the CPU backend holds everything but the
     * stream slots (which only a GPU backend allocates) */
    g_assert_cmpuint (r.peak[OVI_STAGE_DENOISE], >=,
                      (r.est.stage[OVI_STAGE_DENOISE].device_own_weights
                       + r.est.stage[OVI_STAGE_DENOISE].device_stream
                       + r.est.stage[OVI_STAGE_DENOISE].device_activations)
                          * 9 / 10);

    if (modes[i] == OVI_VRAM_MODE_STANDARD) {
      /* bf16 weights placed on the backend: bit for bit the plain run */
      g_assert_cmpfloat (rel_l2 (r.video, ref.video), ==, 0);
      g_assert_cmpfloat (rel_l2 (r.audio, ref.audio), ==, 0);
      std = r;
      continue;
    }
    double lt = rel_l2 (r.text, std.text);
    double lv = rel_l2 (r.video, std.video), la = rel_l2 (r.audio, std.audio);
    g_test_message ("%s vs standard: text embedding rel_l2 %.5f", name, lt);
    if (r.est.plan.t5_quant != OVI_QUANT_NONE) {
      g_assert_cmpfloat (lt, >, 0);
      g_assert_cmpfloat (lt, <=, BOUND_FP8_TEXT);
    } else {
      /* ultra-low's umT5 reads the file's mapping, standard's a copy on the
       * backend: bit for bit the same embeddings */
      g_assert_cmpfloat (lt, ==, 0);
    }
    double dv = rel_l2 (r.frames, std.frames), da = rel_l2 (r.wav, std.wav);
    gboolean int8 = modes[i] == OVI_VRAM_MODE_ULTRA_LOW;
    g_test_message ("%s vs standard: latents rel_l2 video %.5f audio %.5f; "
                    "decoded video %.5f audio %.5f",
                    name, lv, la, dv, da);
    g_assert_cmpfloat (lv, >, 0); /* the weights really changed */
    g_assert_cmpfloat (lv, <=, int8 ? BOUND_INT8_LATENT : BOUND_FP8_LATENT);
    g_assert_cmpfloat (la, <=, int8 ? BOUND_INT8_LATENT : BOUND_FP8_LATENT);
    g_assert_cmpfloat (dv, <=, int8 ? BOUND_INT8_DECODED : BOUND_FP8_DECODED);
    g_assert_cmpfloat (da, <=, int8 ? BOUND_INT8_DECODED : BOUND_FP8_DECODED);
    if (modes[i] == OVI_VRAM_MODE_FP8_OFFLOAD) {
      /* same weights as fp8, only placed differently: same result */
      g_assert_cmpfloat (rel_l2 (r.video, std.video), ==, lv);
    }
    mode_run_clear (&r);
  }
  mode_run_clear (&std);
  mode_run_clear (&ref);
  ovi_placement_model_clear (&model);
}

static void
test_tiny_limit (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviModelPaths) paths
      = ovi_model_paths_resolve (tiny_dir, NULL, &error);
  OviPlacementModel model;
  const OviVramMode modes[] = { OVI_VRAM_MODE_FP8, OVI_VRAM_MODE_ULTRA_LOW };

  g_assert_no_error (error);
  g_assert_true (ovi_placement_model_init (&model, paths, NULL, &error));
  for (guint i = 0; i < G_N_ELEMENTS (modes); i++) {
    ModeRun r = { 0 }, probe = { 0 };
    const OviStageEstimate *st = probe.est.stage;
    guint64 limit, peak = 0;

    g_assert_true (run_mode (paths, &model, modes[i], 0, &probe, &error));
    /* The limit is the estimate of what the CPU backend allocates: the
     * VAE, vocoder and T5 weights are zero-copy views of the files there
     * (a GPU backend uploads them), so only the DiT's placed weights and
     * the activations count. The whole pipeline runs under it. */
    limit = st[OVI_STAGE_DENOISE].device_own_weights
            + st[OVI_STAGE_DENOISE].device_stream
            + st[OVI_STAGE_DENOISE].device_activations;
    limit = MAX (limit, st[OVI_STAGE_VIDEO_DECODE].device_activations);
    limit = MAX (limit, st[OVI_STAGE_AUDIO_DECODE].device_activations);
    for (int s = 0; s < OVI_N_STAGES; s++)
      peak = MAX (peak, probe.peak[s]);
    g_test_message ("%s: limit %" G_GUINT64_FORMAT ", peak %" G_GUINT64_FORMAT,
                    ovi_vram_mode_to_string (modes[i]), limit, peak);
    mode_run_clear (&probe);
    g_assert_true (run_mode (paths, &model, modes[i], limit, &r, &error));
    g_assert_no_error (error);
    mode_run_clear (&r);
    /* under half the measured peak: a clean OOM error, no crash */
    g_assert_false (run_mode (paths, &model, modes[i], peak / 2, &r, &error));
    g_assert_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY);
    g_test_message ("%s at half its peak: %s",
                    ovi_vram_mode_to_string (modes[i]), error->message);
    g_assert_nonnull (strstr (error->message, "needed"));
    g_assert_nonnull (strstr (error->message, "free"));
    g_clear_error (&error);
    mode_run_clear (&r);
    /* the denoiser alone under half its estimate: its own OOM error */
    g_assert_false (run_mode (paths, &model, modes[i],
                              (st[OVI_STAGE_DENOISE].device_own_weights
                               + st[OVI_STAGE_DENOISE].device_activations)
                                  / 2,
                              &r, &error));
    g_assert_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY);
    {
      OviPlacementPlan plan;
      const OviModelPreset *m = ovi_model_preset_lookup ("tiny", NULL);
      g_assert_true (ovi_placement_plan_for_mode (
          modes[i], OVI_GPU_ALLOCATION_SINGLE, 0, &plan, NULL));
      g_assert_true (ovi_placement_explain_oom (
          error, &model, &plan, m->default_width, m->default_height, 4,
          (st[OVI_STAGE_DENOISE].device_own_weights
           + st[OVI_STAGE_DENOISE].device_activations)
              / 2));
    }
    g_test_message ("%s denoiser at half its estimate: %s",
                    ovi_vram_mode_to_string (modes[i]), error->message);
    g_assert_nonnull (strstr (error->message, "needs about"));
    g_assert_nonnull (strstr (error->message, "is free"));
    g_clear_error (&error);
    mode_run_clear (&r);
  }
  ovi_placement_model_clear (&model);
}

/* ovi_placement_estimate's DiT activations follow ovi_denoiser_estimate */
static void
test_estimate_consistent (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviModelPaths) paths
      = ovi_model_paths_resolve (tiny_dir, NULL, &error);
  OviPlacementModel model;
  OviPlacementPlan plan;
  OviPlacementEstimate est;
  OviDenoiserEstimate de;

  g_assert_no_error (error);
  g_assert_true (ovi_placement_model_init (&model, paths, NULL, &error));
  g_assert_true (ovi_placement_plan_for_mode (
      OVI_VRAM_MODE_STANDARD, OVI_GPU_ALLOCATION_AUTO, 0, &plan, &error));
  g_assert_true (
      ovi_placement_estimate (&model, &plan, 96, 64, 4, &est, &error));
  g_assert_true (ovi_denoiser_estimate (paths, 96, 64, 4, &de, &error));
  g_assert_no_error (error);
  /* the element's call: on the CPU backend (free memory unknown) auto is
   * standard; with a limit it picks and refuses as ovi_placement_choose */
  {
    g_autoptr (OviBackend) be = ovi_backend_new_cpu (1);
    OviPlacementPlan chosen;
    OviPlacementEstimate ce;
    g_assert_true (ovi_placement_choose_for_paths (
        paths, OVI_VRAM_MODE_AUTO, OVI_GPU_ALLOCATION_AUTO, 96, 64, be, 0, 0,
        &chosen, NULL, &error));
    g_assert_no_error (error);
    g_assert_cmpint (chosen.mode, ==, OVI_VRAM_MODE_STANDARD);
    g_assert_true (ovi_placement_choose_for_paths (
        paths, OVI_VRAM_MODE_FP8, OVI_GPU_ALLOCATION_AUTO, 96, 64, be,
        G_GUINT64_CONSTANT (1) << 40, 0, &chosen, &ce, &error));
    g_assert_cmpint (chosen.mode, ==, OVI_VRAM_MODE_FP8);
    g_assert_cmpint (ce.act_dtype_size, ==, 4);
    g_assert_false (ovi_placement_choose_for_paths (
        paths, OVI_VRAM_MODE_STANDARD, OVI_GPU_ALLOCATION_AUTO, 96, 64, be,
        1024, 0, &chosen, NULL, &error));
    g_assert_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY);
    g_clear_error (&error);
  }
  g_assert_cmpint (est.tokens_video, ==, de.tokens_video);
  g_assert_cmpint (est.tokens_audio, ==, de.tokens_audio);
  g_assert_cmpuint (est.stage[OVI_STAGE_DENOISE].device_activations, ==,
                    de.activation_bytes
                        + (guint64) model.dims.text_len
                              * (model.dims.text_dim + model.dims.dim) * 4);
  /* the tiny fusion file is bf16: the standard mode keeps it as stored
   * (plus the small tensors at act size) */
  guint64 dit = est.stage[OVI_STAGE_DENOISE].device_own_weights;
  g_test_message ("DiT weights: estimate %" G_GUINT64_FORMAT
                  ", file %" G_GUINT64_FORMAT,
                  dit, de.weight_bytes);
  g_assert_cmpuint (dit, >=, de.weight_bytes);
  g_assert_cmpuint (dit, <=, de.weight_bytes * 2);
  ovi_placement_model_clear (&model);
}

/* the release model at 704x704, 121 frames */
static void
test_release_estimates (void)
{
  g_autoptr (GError) error = NULL;
  OviPlacementModel model;
  OviPlacementEstimate e[4], pick;
  const OviVramMode modes[]
      = { OVI_VRAM_MODE_STANDARD, OVI_VRAM_MODE_FP8, OVI_VRAM_MODE_FP8_OFFLOAD,
          OVI_VRAM_MODE_ULTRA_LOW };
  const guint64 GB = 1000000000;

  g_assert_true (ovi_placement_model_init (&model, NULL, "720x720_5s", &error));
  g_assert_no_error (error);
  for (int i = 0; i < 4; i++) {
    OviPlacementPlan plan;
    g_assert_true (ovi_placement_plan_for_mode (
        modes[i], OVI_GPU_ALLOCATION_SINGLE, 0, &plan, &error));
    g_assert_true (
        ovi_placement_estimate (&model, &plan, 704, 704, 2, &e[i], &error));
    g_assert_no_error (error);
    g_autofree char *s = ovi_placement_estimate_to_string (&e[i]);
    g_test_message ("%s", s);
    g_assert_cmpint (e[i].tokens_video, ==, 15004);
    if (i > 0)
      g_assert_cmpuint (e[i].device_peak, <, e[i - 1].device_peak);
  }
  /* 11.66 B DiT parameters: bf16 about 23.3 GB, fp8 about half */
  guint64 others = model.vae_decoder_bytes + model.audio_bytes;
  g_assert_cmpuint (e[0].stage[OVI_STAGE_DENOISE].device_weights - others, >,
                    23 * GB);
  g_assert_cmpuint (e[0].stage[OVI_STAGE_DENOISE].device_weights - others, <,
                    24 * GB);
  g_assert_cmpuint (e[1].stage[OVI_STAGE_DENOISE].device_weights
                        - model.vae_decoder_bytes - model.audio_bytes,
                    <, 12 * GB);
  /* fp8: the tiled decode keeps the video decode under the text stage
   * (umT5 beside the resident DiT), the peak under 20 GiB */
  g_assert_cmpint (e[1].plan.vae_tile, >, 0);
  g_assert_cmpuint (e[1].stage[OVI_STAGE_VIDEO_DECODE].device_peak, <,
                    e[1].stage[OVI_STAGE_TEXT].device_peak);
  g_assert_cmpuint (e[1].device_peak, <=, (guint64) 20 << 30);
  /* the streamed modes hold the blocks in host RAM */
  g_assert_cmpuint (e[2].host_peak, >, 10 * GB);
  g_assert_cmpuint (e[0].host_peak, ==, 0);

  /* auto: the fastest that fits */
  for (int i = 0; i < 4; i++) {
    g_assert_true (ovi_placement_choose (&model, OVI_VRAM_MODE_AUTO,
                                         OVI_GPU_ALLOCATION_AUTO, 704, 704, 2,
                                         e[i].device_peak, 0, &pick, &error));
    g_assert_no_error (error);
    g_assert_cmpint (pick.plan.mode, ==, modes[i]);
  }
  g_assert_false (ovi_placement_choose (
      &model, OVI_VRAM_MODE_AUTO, OVI_GPU_ALLOCATION_AUTO, 704, 704, 2,
      e[3].device_peak - 1, 0, &pick, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY);
  g_clear_error (&error);
  /* an explicit mode that does not fit says which one would */
  g_assert_false (ovi_placement_choose (&model, OVI_VRAM_MODE_STANDARD,
                                        OVI_GPU_ALLOCATION_SINGLE, 704, 704, 2,
                                        e[1].device_peak, 0, &pick, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "vram-mode fp8 would fit"));
  g_clear_error (&error);
  /* host budget: partial pinning */
  {
    OviPlacementPlan plan;
    g_assert_true (ovi_placement_plan_for_mode (OVI_VRAM_MODE_FP8_OFFLOAD,
                                                OVI_GPU_ALLOCATION_SINGLE,
                                                4 * GB, &plan, &error));
    /* the blocks from the weight cache's mapping: nothing to pin */
    g_assert_true (plan.weight_cache);
    g_assert_true (
        ovi_placement_estimate (&model, &plan, 704, 704, 2, &pick, &error));
    g_assert_cmpuint (pick.plan.pinned_bytes + pick.plan.pageable_bytes, ==, 0);
    g_assert_cmpuint (pick.plan.mapped_bytes, >, 10 * GB);
    g_assert_cmpuint (pick.stage[OVI_STAGE_DENOISE].host_mapped, ==,
                      pick.plan.mapped_bytes);
    g_assert_cmpuint (pick.stage[OVI_STAGE_DENOISE].host_private, ==,
                      OVI_STREAM_STAGING_BYTES);
    g_assert_cmpuint (pick.stage[OVI_STAGE_TEXT].host_mapped, ==, 0);
    /* without it (cache off, LoRAs merged at load): private slabs */
    plan.weight_cache = FALSE;
    g_assert_true (
        ovi_placement_estimate (&model, &plan, 704, 704, 2, &pick, &error));
    g_assert_cmpuint (pick.plan.pinned_bytes, ==, 4 * GB);
    g_assert_cmpuint (pick.plan.pageable_bytes, >, 6 * GB);
    g_assert_cmpuint (pick.plan.mapped_bytes, ==, 0);
    g_assert_cmpuint (pick.stage[OVI_STAGE_DENOISE].host_private, ==,
                      pick.plan.pinned_bytes + pick.plan.pageable_bytes
                          + OVI_STREAM_STAGING_BYTES);
  }
  ovi_placement_model_clear (&model);
}

/* A tiny copy of the official fp8 file: every tensor cast to F8_E4M3
 * without a scale except those whose name holds "norm" or "bias". */
static char *
write_fp8_file (const char *fusion_path)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviWeightFile) wf
      = ovi_weight_file_open (fusion_path, NULL, &error);
  g_autoptr (GPtrArray) keep
      = g_ptr_array_new_with_free_func ((GDestroyNotify) ovi_tensor_unref);
  g_autofree char *dir = g_path_get_dirname (fusion_path);
  char *out = g_build_filename (dir, "model_fp8_e4m3fn.safetensors", NULL);
  guint n;

  g_assert_no_error (error);
  n = ovi_weight_file_n_tensors (wf);
  g_autofree OviNamedTensor *named = g_new0 (OviNamedTensor, n);
  for (guint i = 0; i < n; i++) {
    const char *name = ovi_weight_file_name (wf, i);
    OviTensor *t = ovi_weight_file_get (wf, name, &error);
    g_assert_no_error (error);
    if (!strstr (name, "norm") && !strstr (name, "bias")) {
      g_autoptr (OviTensor) f = ovi_tensor_to_f32 (t, &error);
      OviTensor *q
          = ovi_tensor_new (OVI_DTYPE_F8_E4M3, t->ndim, t->shape, &error);
      const float *v = ovi_tensor_data (f);
      uint8_t *r = ovi_tensor_data (q);
      for (int64_t k = 0; k < ovi_tensor_numel (f); k++)
        r[k] = ovi_f32_to_f8e4m3 (v[k]);
      ovi_tensor_unref (t);
      t = q;
    }
    g_ptr_array_add (keep, t);
    named[i].name = name;
    named[i].tensor = t;
  }
  g_assert_true (ovi_safetensors_write (out, named, n, NULL, &error));
  g_assert_no_error (error);
  return out;
}

static void
test_fp8_file (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviModelPaths) paths
      = ovi_model_paths_resolve (tiny_dir, NULL, &error);
  g_autoptr (OviModelPaths) paths8
      = ovi_model_paths_resolve (tiny_dir, NULL, &error);
  OviPlacementModel model, model8;
  ModeRun ref = { 0 }, r = { 0 };

  g_assert_no_error (error);
  /* the tiny variant has no fp8 file in its preset */
  g_assert_null (ovi_placement_fp8_file (paths));
  g_free (paths8->fusion_path);
  paths8->fusion_path = write_fp8_file (paths->fusion_path);
  g_assert_true (ovi_placement_model_init (&model, paths, NULL, &error));
  g_assert_true (ovi_placement_model_init (&model8, paths8, NULL, &error));
  g_assert_no_error (error);
  g_assert_false (model.dit_file_is_fp8);
  g_assert_true (model8.dit_file_is_fp8);

  g_assert_true (
      run_mode (paths, &model, OVI_VRAM_MODE_STANDARD, 0, &ref, &error));
  g_assert_true (run_mode (paths8, &model8, OVI_VRAM_MODE_FP8, 0, &r, &error));
  g_assert_no_error (error);
  /* used as stored (no scales): less DiT memory than quantising with
   * per-channel scales, and the estimate still holds */
  for (int s = OVI_STAGE_DENOISE; s < OVI_N_STAGES; s++)
    g_assert_cmpuint (r.peak[s], <=, r.est.stage[s].device_peak);
  g_assert_cmpuint (r.peak[OVI_STAGE_DENOISE], >=,
                    (r.est.stage[OVI_STAGE_DENOISE].device_own_weights
                     + r.est.stage[OVI_STAGE_DENOISE].device_activations)
                        * 9 / 10);
  double lv = rel_l2 (r.video, ref.video), la = rel_l2 (r.audio, ref.audio);
  g_test_message ("official-style fp8 file (plain cast, no scales) vs bf16: "
                  "latents rel_l2 video %.5f audio %.5f",
                  lv, la);
  g_assert_cmpfloat (lv, >, 0);
  g_assert_cmpfloat (lv, <=, BOUND_FP8_LATENT);
  g_assert_cmpfloat (la, <=, BOUND_FP8_LATENT);
  mode_run_clear (&ref);
  mode_run_clear (&r);
  g_unlink (paths8->fusion_path);
  ovi_placement_model_clear (&model);
  ovi_placement_model_clear (&model8);
}

/* tiled video decode (ultra-low's): the accounted peak of a tiled decode
 * stays under the estimate, which counts a tile instead of the frame */
static void
test_tiled_decode (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviModelPaths) paths
      = ovi_model_paths_resolve (tiny_dir, NULL, &error);
  g_autoptr (OviBackend) be = ovi_backend_new_cpu (2);
  const OviModelPreset *m = ovi_model_preset_lookup ("tiny", NULL);
  OviPlacementModel model;
  OviPlacementPlan plan;
  OviPlacementEstimate tiled, untiled;
  int64_t ls[4] = { 48, m->video_latent_frames, m->default_height / 16,
                    m->default_width / 16 };
  g_autoptr (OviTensor) latent = ovi_tensor_new_f32 (4, ls);
  float *v = ovi_tensor_data (latent);
  Frames f
      = { g_ptr_array_new_with_free_func ((GDestroyNotify) ovi_tensor_unref) };
  OviMemAccount *acc;
  OviVideoVae *vae;
  guint64 peak;

  g_assert_no_error (error);
  g_assert_true (ovi_placement_model_init (&model, paths, NULL, &error));
  g_assert_true (ovi_placement_plan_for_mode (
      OVI_VRAM_MODE_ULTRA_LOW, OVI_GPU_ALLOCATION_SINGLE, 0, &plan, &error));
  g_assert_true (ovi_placement_estimate (
      &model, &plan, m->default_width, m->default_height, 4, &untiled, &error));
  /* tiles of 4 latent pixels overlapping by 1 on the 4x6 tiny latent */
  plan.vae_tile = 4;
  plan.vae_tile_overlap = 1;
  g_assert_true (ovi_placement_estimate (&model, &plan, m->default_width,
                                         m->default_height, 4, &tiled, &error));
  g_assert_cmpuint (tiled.stage[OVI_STAGE_VIDEO_DECODE].device_activations, <,
                    untiled.stage[OVI_STAGE_VIDEO_DECODE].device_activations);
  for (int64_t i = 0; i < ovi_tensor_numel (latent); i++)
    v[i] = (float) sin (0.37 * (double) i);

  acc = ovi_mem_account_attach (be, 0);
  vae = ovi_video_vae_new (paths, be, &error);
  g_assert_no_error (error);
  ovi_video_vae_set_tiling (vae, plan.vae_tile, plan.vae_tile_overlap);
  g_assert_true (
      ovi_video_vae_decode (vae, latent, collect_frames, &f, NULL, &error));
  g_assert_no_error (error);
  ovi_video_vae_free (vae);
  peak = ovi_mem_account_peak (acc);
  ovi_mem_account_detach (acc);
  g_test_message (
      "tiled decode (tile 4, overlap 1): accounted peak %" G_GUINT64_FORMAT
      " <= estimated activations %" G_GUINT64_FORMAT
      " (untiled estimate %" G_GUINT64_FORMAT ")",
      peak, tiled.stage[OVI_STAGE_VIDEO_DECODE].device_activations,
      untiled.stage[OVI_STAGE_VIDEO_DECODE].device_activations);
  g_assert_cmpuint (f.groups->len, >, 0);
  g_assert_cmpuint (peak, >, 0);
  g_assert_cmpuint (peak, <=,
                    tiled.stage[OVI_STAGE_VIDEO_DECODE].device_activations);
  g_ptr_array_unref (f.groups);
  ovi_placement_model_clear (&model);
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  tiny_dir
      = ovi_test_make_tiny_dir ("ovi-placement-XXXXXX", OVI_TINY_DEFAULT_SEED);
  cache_dir = ovi_test_make_tmp_dir ("ovi-placement-cache-XXXXXX");
  g_test_add_func ("/placement/quantize-values", test_quantize_values);
  g_test_add_func ("/placement/quantize-random", test_quantize_random);
  g_test_add_func ("/placement/policy", test_policy);
  g_test_add_func ("/placement/estimate-consistent", test_estimate_consistent);
  g_test_add_func ("/placement/release-estimates", test_release_estimates);
  g_test_add_func ("/placement/tiny-modes", test_tiny_modes);
  g_test_add_func ("/placement/tiny-limit", test_tiny_limit);
  g_test_add_func ("/placement/fp8-file", test_fp8_file);
  g_test_add_func ("/placement/tiled-decode", test_tiled_decode);
  status = g_test_run ();
  ovi_test_remove_tree (tiny_dir);
  ovi_test_remove_tree (cache_dir);
  g_free (tiny_dir);
  g_free (cache_dir);
  return status;
}
