/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the Ovi fusion DiT (twin video/audio Wan towers with
 * cross-modal fusion attention), written once against the op table.
 *
 * Weights are read by their official names (video_model.*, audio_model.*)
 * and every size is taken from their shapes; only the head count, the text
 * length, the norm eps and the audio RoPE scale come from the preset,
 * because no shape implies them. The same code runs the tiny test model and
 * the 11.66 B release.
 *
 * Activations live in an OviFusionWork made once per token count (latent
 * frames x height x width, audio length) and reused by every forward.
 */
#pragma once

#include "ovi-backend.h"
#include "ovi-weights.h"

G_BEGIN_DECLS

typedef enum { OVI_TOWER_VIDEO, OVI_TOWER_AUDIO, OVI_N_TOWERS } OviTower;

typedef struct {
  /* implied by the weight shapes */
  int dim;          /* 3072 */
  int ffn_dim;      /* 14336 */
  int freq_dim;     /* 256 */
  int text_dim;     /* 4096 */
  int num_layers;   /* 30 */
  int video_in;     /* 48 */
  int video_out;    /* 48 */
  int patch[3];     /* 1, 2, 2 */
  int audio_in;     /* 20 */
  int audio_out;    /* 20 */
  int audio_hidden; /* 8192: ConvMLP hidden width */
  int audio_kernel; /* 7 */
  /* from the preset / config */
  int num_heads;           /* 24 */
  int text_len;            /* 512 */
  double eps;              /* 1e-6 */
  double audio_rope_scale; /* 0.19676 */
} OviFusionDims;

/* The dims of the released 11.66 B model (all three variants). */
void ovi_fusion_dims_release (OviFusionDims *dims);

/* The dims of the model in `wf`, read from the tensor shapes (no data is
 * touched); num_heads, text_len, eps and audio_rope_scale from `preset`. */
gboolean ovi_fusion_read_dims (OviWeightFile *wf, const OviFusionDims *preset,
                               OviFusionDims *dims, GError **error);

typedef struct _OviFusion OviFusion;
typedef struct _OviFusionWork OviFusionWork;

/* Reads every tensor of the model from `wf` (kept open by the caller for as
 * long as the model lives; tensors are zero-copy views on a CPU backend).
 * `preset` supplies num_heads, text_len, eps and audio_rope_scale; its
 * other fields are ignored and filled from the shapes. */
OviFusion *ovi_fusion_new (OviWeightFile *wf, const OviFusionDims *preset,
                           OviBackend *backend, GError **error);
/* As ovi_fusion_new, passing every matmul / conv weight (not biases,
 * gains or modulation tables, which become act tensors) through `filter`
 * first: it gets the official name and the tensor as read from the file
 * (unflattened) and returns the tensor to use, a new reference, e.g.
 * quantised or already on the backend (ovi-placement.h), or NULL with
 * `error` set. */
OviFusion *ovi_fusion_new_filtered (OviWeightFile *wf,
                                    const OviFusionDims *preset,
                                    OviBackend *backend, OviWeightFilter filter,
                                    gpointer filter_data, GError **error);
void ovi_fusion_free (OviFusion *model);
/* Block streaming: the fused blocks' matmul weights (left in host memory
 * by the filter) are packed on the first forward into one host slab per
 * block, pinned up to the budget below, and each block is copied into one
 * of two device slots on the backend's copy queue while the block before
 * it computes (ovi-fusion-stream.c); the rest of the model stays resident.
 * Switched on by the constructor when the filter leaves block weights off
 * the backend's device; on the CPU backend (where host memory is the
 * device's) only by this call. */
void ovi_fusion_set_streaming (OviFusion *model, gboolean stream);
gboolean ovi_fusion_get_streaming (const OviFusion *model);
/* At most `pinned_bytes` of slabs are pinned (0: all), the rest stays
 * pageable (slower copies). Before the first forward. */
void ovi_fusion_set_stream_budget (OviFusion *model, guint64 pinned_bytes);

typedef struct {
  guint64 copies;         /* block copies so far (one per block per step) */
  guint64 pinned_bytes;   /* slab bytes in pinned memory */
  guint64 pageable_bytes; /* slab bytes past the budget */
  /* blocks used in place: their weights already lie together in one
   * mapping (the weight cache file), so the span is copied as it is */
  guint64 mapped_bytes;
  guint64 slot_bytes; /* each of the two device slots */
} OviFusionStreamStats;

void ovi_fusion_get_stream_stats (const OviFusion *model,
                                  OviFusionStreamStats *stats);
const OviFusionDims *ovi_fusion_get_dims (const OviFusion *model);

/* LoRAs applied at run time, unmerged (docs/lora.md). A set is read from
 * `specs` (OviLoraSpec*, ovi-lora.h; not empty) and resolved against `wf`
 * (the file the model was loaded from) on the host, by any thread; nothing
 * in the model changes until it is activated. Fails (changing nothing) as
 * ovi_lora_set_new does, or when a LoRA changes a tensor the run-time path
 * cannot (the audio patch-embedding convolutions). */
typedef struct _OviFusionLora OviFusionLora;
OviFusionLora *ovi_fusion_lora_new (OviFusion *model, OviWeightFile *wf,
                                    const GPtrArray *specs, GError **error);
OviFusionLora *ovi_fusion_lora_ref (OviFusionLora *lora);
void ovi_fusion_lora_unref (OviFusionLora *lora);
/* the unmatched-keys message of the set, or NULL */
const char *ovi_fusion_lora_get_warning (const OviFusionLora *lora);
/* `lora` (NULL: none) for the next forwards, whatever the weights' dtype
 * or placement: its factors go to the backend on its first activation,
 * the previous set's changes are undone exactly. Call it from the thread
 * that runs the next forward, between forwards. On error nothing changes. */
gboolean ovi_fusion_activate_loras (OviFusion *model, OviFusionLora *lora,
                                    GError **error);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviFusionLora, ovi_fusion_lora_unref)

/* Optional: called during ovi_fusion_forward with intermediates
 * ("vid.x_embed", "vid.e", "vid.e0", "audio.*", "block{i}.vid_out",
 * "block{i}.audio_out"), for parity debugging. */
typedef void (*OviFusionDebugFunc) (const char *name, OviTensor *tensor,
                                    gpointer user_data);
void ovi_fusion_set_debug (OviFusion *model, OviFusionDebugFunc func,
                           gpointer user_data);

/* The tower's text embedding of a [n, text_dim] context (n <= text_len),
 * zero-padded to text_len rows first: [text_len, dim] on the backend. It
 * depends only on the text, so compute it once per request. */
OviTensor *ovi_fusion_embed_text (OviFusion *model, OviTower tower,
                                  const OviTensor *context, GError **error);

/* Activation buffers for video latents [video_in, frames, height, width]
 * and audio latents [audio_length, audio_in], for one branch. */
OviFusionWork *ovi_fusion_work_new (OviFusion *model, int64_t frames,
                                    int64_t height, int64_t width,
                                    int64_t audio_length, GError **error);
/* The same for up to `batch` branches per forward (batch x the memory). */
OviFusionWork *ovi_fusion_work_new_batched (OviFusion *model, int64_t frames,
                                            int64_t height, int64_t width,
                                            int64_t audio_length, int batch,
                                            GError **error);
int ovi_fusion_work_batch (const OviFusionWork *work);
/* As ovi_fusion_work_new_batched for one rank of a sequence-parallel
 * group (Ulysses): the forward computes this rank's share of the tokens and
 * exchanges the rest through `comm` (NULL or one rank: as
 * ovi_fusion_work_new_batched). Every rank of the group makes its work and
 * runs each forward with the same inputs; each gets the whole output.
 * Fails when the ranks do not divide the head count. */
typedef struct _OviComm OviComm;

/* Sharded weights (VRAM pooling): load each rank's model through
 * ovi_fusion_shard_filter (this rank keeps 1/size of the rows of every
 * fused block's matmul weights, then `inner`, e.g. the placement, places or
 * quantises them; quantised weights need per-row scales), then
 * ovi_fusion_set_shards with the group's communicator: each block's
 * weights are all-gathered before it runs. Composes with sequence
 * parallelism (the same or another group); not with block streaming. */
typedef struct {
  int rank, size;
  OviWeightFilter inner; /* nullable */
  gpointer inner_data;
} OviFusionShardFilter;
OviTensor *ovi_fusion_shard_filter (const char *name, OviTensor *weight,
                                    gpointer user_data, GError **error);
void ovi_fusion_set_shards (OviFusion *model, OviComm *comm);
OviFusionWork *ovi_fusion_work_new_parallel (OviFusion *model, int64_t frames,
                                             int64_t height, int64_t width,
                                             int64_t audio_length, int batch,
                                             OviComm *comm, GError **error);
void ovi_fusion_work_free (OviFusionWork *work);
gboolean ovi_fusion_work_matches (const OviFusionWork *work, int64_t frames,
                                  int64_t height, int64_t width,
                                  int64_t audio_length);

/* Step caching (ovi-step-cache.h): the fused blocks' residual (output -
 * input) of one CFG branch, per tower [tokens, dim]. */
typedef struct {
  OviTensor *residual[OVI_N_TOWERS]; /* ovi_fusion_residual_new */
  gboolean reuse; /* TRUE: skip every block, x = embedding + residual;
                     FALSE: run the blocks and store output - input */
} OviFusionResidual;

/* A residual buffer of `tower` for one branch at `work`'s size (this
 * rank's token rows under sequence parallelism). */
OviTensor *ovi_fusion_residual_new (OviFusion *model, const OviFusionWork *work,
                                    OviTower tower, GError **error);

typedef struct {
  const OviTensor *text_video; /* ovi_fusion_embed_text (VIDEO, ...) */
  const OviTensor *text_audio; /* ovi_fusion_embed_text (AUDIO, ...) */
  double timestep;             /* as fed to the network (UniPC: an integer) */
  gboolean first_frame_clean;  /* i2v: tokens of latent frame 0 get t = 0 */
  int slg_layer;               /* > 0: skip this fused block (both towers) */
  OviFusionResidual *cache;    /* step caching; NULL: run the blocks */
} OviFusionPass;

/* One forward of both towers. `video` [video_in, F, H, W] and `audio`
 * [L, audio_in] (any device, contiguous); `out_video` [video_out, F, H, W]
 * and `out_audio` [L, audio_out], contiguous act tensors of the backend. */
gboolean ovi_fusion_forward (OviFusion *model, OviFusionWork *work,
                             const OviTensor *video, const OviTensor *audio,
                             const OviFusionPass *pass, OviTensor *out_video,
                             OviTensor *out_audio, GError **error);

/* One branch of a batched forward: its pass and its outputs. */
typedef struct {
  OviFusionPass pass;
  OviTensor *out_video, *out_audio;
} OviFusionBranch;

/* Up to ovi_fusion_work_batch (work) branches on the same latents in one
 * forward (the CFG passes of a step): their tokens are stacked so every
 * matmul reads its weights once for all of them; a branch with slg_layer i
 * sits out block i while the others run it. The branches share
 * first_frame_clean; each has its own text and timestep. Each branch's
 * outputs equal ovi_fusion_forward of its pass alone. The debug callback
 * sees the branches stacked. */
gboolean ovi_fusion_forward_branches (OviFusion *model, OviFusionWork *work,
                                      const OviTensor *video,
                                      const OviTensor *audio,
                                      const OviFusionBranch *branches,
                                      int n_branches, GError **error);

typedef struct {
  int64_t tokens_video;
  int64_t tokens_audio;
  guint64 n_params;
  guint64 weight_bytes;     /* n_params * weight_dtype_size */
  guint64 activation_bytes; /* one OviFusionWork */
} OviFusionEstimate;

/* Memory needed for latents [*, frames, height, width] and [audio_length, *],
 * without allocating anything. */
gboolean ovi_fusion_estimate (const OviFusionDims *dims, int64_t frames,
                              int64_t height, int64_t width,
                              int64_t audio_length, gsize act_dtype_size,
                              gsize weight_dtype_size, OviFusionEstimate *est,
                              GError **error);
/* The same with the activations of a `batch`-branch OviFusionWork. */
gboolean ovi_fusion_estimate_batched (const OviFusionDims *dims, int64_t frames,
                                      int64_t height, int64_t width,
                                      int64_t audio_length, int batch,
                                      gsize act_dtype_size,
                                      gsize weight_dtype_size,
                                      OviFusionEstimate *est, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviFusion, ovi_fusion_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviFusionWork, ovi_fusion_work_free)

G_END_DECLS
