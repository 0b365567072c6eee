/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the engine API the GStreamer elements (and `ovi`) call.
 *
 * Four stages, one per element: text encoder (tokenizer + umT5), denoiser
 * (fusion DiT + sampler + guidance, VAE encoder for the i2v image), video
 * decoder (Wan2.2 VAE, streaming) and audio decoder (MMAudio VAE + BigVGAN).
 * Each stage is made from a model folder in the official download layout
 * (or the tiny model) and a backend, holds its weights, and runs requests.
 * Tensors crossing this API are host tensors in F32 unless stated.
 *
 * Long operations take a GCancellable, checked between steps/frames, and
 * fail with OVI_ERROR_CANCELLED (G_IO_ERROR_CANCELLED is not used) when it
 * fires.
 */
#pragma once

#include <gio/gio.h>

#include "ovi-backend.h"

G_BEGIN_DECLS

/* ---- model folder ---- */

/* Official layout under a root folder:
 *   Ovi/model.safetensors | model_960x960.safetensors | model_960x960_10s.safetensors
 *   Ovi/model_fp8_e4m3fn.safetensors (optional)
 *   Wan2.2-TI2V-5B/models_t5_umt5-xxl-enc-bf16.pth
 *   Wan2.2-TI2V-5B/google/umt5-xxl/spiece.model
 *   Wan2.2-TI2V-5B/Wan2.2_VAE.pth
 *   MMAudio/ext_weights/v1-16.pth, MMAudio/ext_weights/best_netG.pt
 * The tiny model uses the same layout and names (see `ovi make-tiny`). */

typedef struct {
  /* from the preset */
  char *variant; /* "720x720_5s", "960x960_5s", "960x960_10s", "tiny" */
  int video_latent_frames; /* 31, 61 */
  int audio_latent_length; /* 157, 314 */
  int64_t target_area;     /* 720*720 or 960*960 */
  gboolean audcap_syntax; /* TRUE: <AUDCAP>…<ENDAUDCAP>; FALSE: "Audio: …" */
  /* DiT dims that cannot be read from weight shapes */
  int num_heads;
  int text_len;            /* 512 */
  double eps;              /* 1e-6 */
  double audio_rope_scale; /* 0.19676 */
  /* file paths, absolute */
  char *fusion_path;
  char *t5_path;
  char *spiece_path;
  char *vae_path;
  char *audio_vae_path;
  char *vocoder_path;
} OviModelPaths;

/* Resolves `model_dir` (NULL: the tiny model in the user cache, written on
 * first use) and `variant` (NULL: the one whose weights are present) into
 * paths and preset values; checks that the files exist. */
OviModelPaths *ovi_model_paths_resolve (const char *model_dir,
                                        const char *variant, GError **error);
void ovi_model_paths_free (OviModelPaths *paths);
OviModelPaths *ovi_model_paths_copy (const OviModelPaths *paths);

/* ---- stage 1: text ---- */

typedef struct _OviTextEncoder OviTextEncoder;

OviTextEncoder *ovi_text_encoder_new (const OviModelPaths *paths,
                                      OviBackend *backend, GError **error);
/* As ovi_text_encoder_new, each umT5 weight of rank >= 2 passing through
 * `filter` (see ovi_denoiser_new_filtered; ovi_placement_t5_filter). */
OviTextEncoder *ovi_text_encoder_new_filtered (const OviModelPaths *paths,
                                               OviBackend *backend,
                                               OviWeightFilter filter,
                                               gpointer filter_data,
                                               GError **error);
void ovi_text_encoder_free (OviTextEncoder *enc);
/* The official prompt path: caption syntax rewritten for the variant, the
 * three texts (prompt, video negative, audio negative; NULL = the official
 * defaults) cleaned, tokenised and encoded as one batch. out[i] is
 * [n_tokens_i, text_dim] F32 (trimmed to the real token count, EOS
 * included). Threads may share an encoder: encodes take turns, and a wait
 * for the turn ends when `cancellable` fires (OVI_ERROR_CANCELLED). */
gboolean ovi_text_encoder_encode (OviTextEncoder *enc, const char *prompt,
                                  const char *video_negative,
                                  const char *audio_negative, OviTensor *out[3],
                                  GCancellable *cancellable, GError **error);
/* As ovi_text_encoder_new from the two files: the umT5 weights (.pth or
 * safetensors, official names) and the SentencePiece model; text_len is
 * the token count (512); audcap_syntax as in OviModelPaths. */
OviTextEncoder *
ovi_text_encoder_new_from_files (const char *t5_path, const char *spiece_path,
                                 int text_len, gboolean audcap_syntax,
                                 OviBackend *backend, GError **error);
/* width of the embeddings (4096 for umT5-XXL) */
int ovi_text_encoder_get_dim (const OviTextEncoder *enc);
int ovi_text_encoder_get_text_len (const OviTextEncoder *enc);
/* The pages of the umT5 file's mapping the encoder held at once during the
 * last encode (*peak: what the text stage needs resident; every mapped
 * weight when the blocks are not streamed) and the bytes of the mapping its
 * weights lie in (*total), whole pages (ovi-t5.h OviT5StreamStats). */
void ovi_text_encoder_get_mapped (const OviTextEncoder *enc, guint64 *peak,
                                  guint64 *total);
/* The official cleaning and tokenisation of one text (no caption-syntax
 * rewrite): ids and mask of text_len entries (either may be NULL). Returns
 * the real token count (EOS included) or -1 with `error` set. */
int ovi_text_encoder_tokenize (OviTextEncoder *enc, const char *text,
                               int64_t *ids, int64_t *mask, GError **error);

/* ---- stage 2: denoise ---- */

typedef enum {
  OVI_SOLVER_UNIPC,
  OVI_SOLVER_EULER,
} OviSolver;

/* What a run did. A forward is one CFG branch of one step (two per step
 * with guidance, one with both scales 1); a skipped one reused its step
 * cache residual instead of running the fused blocks. */
typedef struct {
  int forwards_computed;
  int forwards_skipped;
} OviDenoiseStats;

typedef struct {
  const OviTensor *text_pos; /* [n, text_dim] */
  const OviTensor *text_video_neg;
  const OviTensor *text_audio_neg;
  const OviTensor *image_latent; /* [48,1,h,w] normalised, or NULL (t2v) */
  /* initial noise, or NULL to draw it from `seed` */
  const OviTensor *video_noise; /* [48,F,h,w] */
  const OviTensor *audio_noise; /* [L,20] */
  guint64 seed;
  int steps; /* 50 */
  OviSolver solver;
  double shift;          /* 5.0 */
  double video_guidance; /* 4.0 */
  double audio_guidance; /* 3.0 */
  int slg_layer;         /* 11; -1 or 0 disables; OVI_SLG_LAYER_PRESET */
  int width, height;     /* snapped pixel size (multiples of 32) */
  /* step caching (docs/step-cache.md) */
  const char *cache;       /* NULL or "off", "easy", "mag" */
  double cache_threshold;  /* >= 0; 0 computes every forward */
  int cache_start;         /* steps always computed first; < 0: 20 % */
  int cache_max_skips;     /* mag: most skips in a row; <= 0: 3 */
  const char *cache_table; /* mag: a table file; NULL: the presets' one
                              (presets/cache/<model>_<steps>.json) */
  OviDenoiseStats *stats;  /* out, nullable */
  /* out, nullable: measure a MagCache table (every forward computed) */
  struct _OviCacheTable **cache_calibration;
  /* Euler on explicit sigmas (few-step distilled models; the Lightning
   * LoRAs: 1, 0.9375, 0.8333, 0.625, 0): n_sigmas values, strictly
   * decreasing in [0, 1], a final 0 appended when missing; steps, solver
   * and shift are then unused (docs/lora.md). n_sigmas 0: off. */
  const double *sigmas;
  int n_sigmas;
  /* LoRAs applied at run time for this run, "path[:strength[:video|audio|
   * both]];..." (NULL or "": none); read again only when it changes
   * (ovi_denoiser_set_loras) */
  const char *loras;
} OviDenoiseRequest;

/* slg_layer: the model preset's block (11 for the released models, 1 for
 * the tiny one), set by ovi_denoise_request_resolve */
#define OVI_SLG_LAYER_PRESET (-2)

void ovi_denoise_request_init (OviDenoiseRequest *req); /* official defaults */
/* "1, 0.9375, 0.8333, 0.625, 0" -> values (g_free) and their count, for
 * OviDenoiseRequest.sigmas, checked as the denoiser checks them */
gboolean ovi_sigmas_parse (const char *text, double **sigmas, int *n_sigmas,
                           GError **error);

typedef void (*OviStepFunc) (int step, int steps, gpointer user_data);

typedef struct _OviDenoiser OviDenoiser;

OviDenoiser *ovi_denoiser_new (const OviModelPaths *paths, OviBackend *backend,
                               GError **error);
/* As ovi_denoiser_new, each fusion matmul / conv weight passing through
 * `filter` (official name, tensor as read) which returns the tensor to use
 * (a new reference) or NULL with `error` set: the VRAM modes quantise and
 * place weights this way (ovi_placement_weight_filter, ovi-placement.h). */
OviDenoiser *ovi_denoiser_new_filtered (const OviModelPaths *paths,
                                        OviBackend *backend,
                                        OviWeightFilter filter,
                                        gpointer filter_data, GError **error);
/* As ovi_denoiser_new_filtered, with the LoRAs `loras` (OviLoraSpec*,
 * ovi-lora.h; NULL or empty: none) merged into the weights as they are
 * read, before `filter` quantises or places them (docs/lora.md). */
OviDenoiser *
ovi_denoiser_new_with_loras (const OviModelPaths *paths, OviBackend *backend,
                             OviWeightFilter filter, gpointer filter_data,
                             const GPtrArray *loras, GError **error);
/* LoRAs applied at run time, unmerged, from the next run on (replacing
 * the previous ones, also a request's `loras`; NULL or empty: none); on
 * error nothing changes. */
gboolean ovi_denoiser_set_loras (OviDenoiser *d, const GPtrArray *loras,
                                 GError **error);
/* Reads the LoRA list `loras` and resolves it against the model (as a
 * merge or set_loras would), changing nothing: the errors a reload with
 * them merged would meet, before anything is unloaded. */
gboolean ovi_denoiser_check_loras (OviDenoiser *d, const char *loras,
                                   GError **error);
/* the unmatched LoRA keys of the last merge / set_loras, or NULL */
const char *ovi_denoiser_get_lora_warning (OviDenoiser *d);
void ovi_denoiser_free (OviDenoiser *d);
/* the OviFusion the denoiser runs (ovi-fusion.h), e.g. for
 * ovi_fusion_set_streaming */
gpointer ovi_denoiser_get_fusion (OviDenoiser *d);
/* Returns the final latents: video [48,F,h,w] and audio [L,20], F32.
 * F and L are the preset's (paths->video_latent_frames,
 * audio_latent_length) unless noise is given, which then sets them; h, w
 * come from the image latent, else the video noise, else width/height / 16
 * (both 0: a square of the preset's target area, sides snapped to 32).
 * NULL noise is drawn from `seed` by the engine's own generator
 * (ovi-noise.h; not PyTorch's). on_step (nullable) is called after each
 * finished step with step = 1..steps; `cancellable` is checked before each
 * step (OVI_ERROR_CANCELLED). Activation buffers are kept for the next
 * request of the same size.
 * Several threads may run requests on one denoiser at once: each run keeps
 * its own latents and sampler state, and the runs take turns on the shared
 * weights and buffers one step at a time, in the order they asked. A
 * cancelled run stops waiting at once (at most the step running in its own
 * thread finishes); on_step is called outside the turn. */
gboolean ovi_denoiser_run (OviDenoiser *d, const OviDenoiseRequest *req,
                           OviStepFunc on_step, gpointer user_data,
                           GCancellable *cancellable, OviTensor **video_latent,
                           OviTensor **audio_latent, GError **error);

typedef struct {
  int64_t tokens_video;     /* F * h/2 * w/2 */
  int64_t tokens_audio;     /* L */
  guint64 weight_bytes;     /* the fusion tensors as stored in the file */
  guint64 activation_bytes; /* buffers of one run at act_dtype_size */
} OviDenoiserEstimate;

/* Memory a run of the preset at width x height would need, from the weight
 * file's header only (nothing is loaded or allocated). */
gboolean ovi_denoiser_estimate (const OviModelPaths *paths, int width,
                                int height, gsize act_dtype_size,
                                OviDenoiserEstimate *est, GError **error);

/* ---- stage 3: video VAE ---- */

/* The video and audio stages may be shared between threads (ovivaedec and
 * ovidenoise's i2v encode use one OviVideoVae): their calls take turns on
 * the stage in the order they asked (a stepping decode one frame group per
 * turn; a callback decode holds it while its frames callback runs), and a
 * call with a GCancellable stops waiting for its turn when it fires. */
typedef struct _OviVideoVae OviVideoVae;

OviVideoVae *ovi_video_vae_new (const OviModelPaths *paths, OviBackend *backend,
                                GError **error);
void ovi_video_vae_free (OviVideoVae *vae);

/* Called with each group of decoded frames as soon as it exists (1 frame for
 * latent frame 0, then 4 per latent frame): frames [3, n, H, W] F32 in
 * [-1, 1], first_frame = index of frames[:,0] in the clip. Return FALSE to
 * stop decoding (the decode then fails with OVI_ERROR_CANCELLED). */
typedef gboolean (*OviFramesFunc) (const OviTensor *frames, int first_frame,
                                   gpointer user_data);

gboolean ovi_video_vae_decode (OviVideoVae *vae, const OviTensor *latent,
                               OviFramesFunc on_frames, gpointer user_data,
                               GCancellable *cancellable, GError **error);
/* The same decode one frame group per call (1 frame, then 4 per latent
 * frame), for consumers that pull frames. The stage is held only during
 * each call. `latent` is copied at begin. */
typedef struct _OviVideoDecoding OviVideoDecoding;

OviVideoDecoding *ovi_video_vae_decode_begin (OviVideoVae *vae,
                                              const OviTensor *latent,
                                              GError **error);
/* As ovi_video_vae_decode_begin, this decode tiled by `tile` latent pixels
 * overlapping by `overlap` (tile 0: untiled), whatever the stage's tiling;
 * for users sharing a stage with different tilings. */
OviVideoDecoding *ovi_video_vae_decode_begin_tiled (OviVideoVae *vae,
                                                    const OviTensor *latent,
                                                    int tile, int overlap,
                                                    GError **error);
/* The next group, [3, n, H, W] F32 host in [-1, 1], with first_frame
 * (nullable) = its index in the clip; NULL at the end (no error set), on
 * cancellation (OVI_ERROR_CANCELLED) or failure. */
OviTensor *ovi_video_vae_decode_next (OviVideoDecoding *decoding,
                                      int *first_frame,
                                      GCancellable *cancellable,
                                      GError **error);
void ovi_video_decoding_free (OviVideoDecoding *decoding);
/* image: [3, H, W] F32 in [-1,1] at the snapped size -> [48,1,H/16,W/16]
 * normalised latent */
OviTensor *ovi_video_vae_encode_image (OviVideoVae *vae, const OviTensor *image,
                                       GError **error);
/* As ovi_video_vae_new, from one checkpoint file (Wan2.2_VAE.pth or a
 * safetensors with the same names). */
OviVideoVae *ovi_video_vae_new_from_file (const char *path, OviBackend *backend,
                                          GError **error);
/* video [3, T, H, W] F32 in [-1,1] -> [48, 1 + (T-1)/4, H/16, W/16]
 * normalised latent (the official chunked causal encode) */
OviTensor *ovi_video_vae_encode_video (OviVideoVae *vae, const OviTensor *video,
                                       GCancellable *cancellable,
                                       GError **error);
/* Low-memory decode: spatial tiles of `tile` latent pixels (0 = off)
 * overlapping by `overlap`, blended linearly; streaming is unchanged. */
void ovi_video_vae_set_tiling (OviVideoVae *vae, int tile, int overlap);

/* ---- stage 4: audio ---- */

typedef struct _OviAudioDecoder OviAudioDecoder;

OviAudioDecoder *ovi_audio_decoder_new (const OviModelPaths *paths,
                                        OviBackend *backend, GError **error);
void ovi_audio_decoder_free (OviAudioDecoder *dec);
/* latent [L,20] -> samples [L*512] F32 at 16 kHz */
OviTensor *ovi_audio_decoder_decode (OviAudioDecoder *dec,
                                     const OviTensor *latent,
                                     GCancellable *cancellable, GError **error);
/* As ovi_audio_decoder_new from the two files (v1-16.pth, best_netG.pt
 * with its "generator." nesting, or safetensors with the bare names). */
OviAudioDecoder *ovi_audio_decoder_new_from_files (const char *vae_path,
                                                   const char *vocoder_path,
                                                   OviBackend *backend,
                                                   GError **error);
/* As ovi_audio_decoder_decode, also handing out the log10 mel [80, 2L]
 * (F32 host) when mel_out is not NULL. */
OviTensor *ovi_audio_decoder_decode_mel (OviAudioDecoder *dec,
                                         const OviTensor *latent,
                                         OviTensor **mel_out,
                                         GCancellable *cancellable,
                                         GError **error);
/* Intermediates for parity ("decoder_out_normalized", "voc.conv_pre",
 * "voc.ups{i}", "voc.activation_post"), backend tensors [C, T]. */
void ovi_audio_decoder_set_debug (OviAudioDecoder *dec,
                                  void (*func) (const char *name,
                                                const OviTensor *t,
                                                gpointer user_data),
                                  gpointer user_data);

/* ---- clip durations (docs/av-sync.md) ---- */

#define OVI_VIDEO_FPS  24
#define OVI_AUDIO_RATE 16000

/* Audio samples clip `clip_index` must carry so that, after it, the
 * cumulative sample count equals round(cumulative video frames * 16000 / 24)
 * (round half up; exact integers, no drift). `frames_per_clip` video frames
 * per clip (121 for 5 s, 241 for 10 s). The vocoder gives L*512 samples
 * (80 384 / 160 768); the clip's audio is trimmed or padded to this count. */
int64_t ovi_clip_audio_samples (int64_t clip_index, int64_t frames_per_clip);
/* Cumulative samples before clip `clip_index` (its start, in samples). */
int64_t ovi_clip_audio_start (int64_t clip_index, int64_t frames_per_clip);
/* The clip's samples [n] (F32 host, the vocoder's L*512) trimmed at the end
 * or padded at the end with zeros to ovi_clip_audio_samples(): a new host
 * tensor [ovi_clip_audio_samples (clip_index, frames_per_clip)]. */
OviTensor *ovi_clip_audio_fit (const OviTensor *samples, int64_t clip_index,
                               int64_t frames_per_clip, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviModelPaths, ovi_model_paths_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviVideoDecoding, ovi_video_decoding_free)

G_END_DECLS
