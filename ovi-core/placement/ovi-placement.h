/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: VRAM modes -> a residency plan, and the memory estimate per
 * stage (docs/vram-modes.md).
 *
 * A plan says, for one mode, in which dtype the fusion DiT's matmul weights
 * are kept (bf16 / F8_E4M3 / I8, quantised at load from a bf16 file or used
 * as stored from model_fp8_e4m3fn.safetensors), which of them live on the
 * device and which stream from pinned host memory (DiT blocks packed into
 * contiguous pinned slabs, copied into `stream_slots` ping-pong device
 * slots while the previous block computes, both CFG passes served per
 * copy), whether T5 runs on the CPU or is loaded only while encoding, and
 * whether the video VAE is loaded only while decoding and decodes in tiles.
 *
 * The estimate gives, per stage, the peak device bytes (weights resident
 * for that stage + streaming slots + activations, from the models' own
 * estimate functions) and host bytes (pinned slabs, CPU-side T5). It needs
 * nothing loaded: dims come from the weight files' headers when the model
 * folder exists, else from the release dims of the preset. `auto` picks
 * the fastest mode whose estimate fits the free device memory.
 */
#pragma once

#include <glib.h>

#include "ovi-engine.h"
#include "ovi-fusion.h"
#include "ovi-gpu-manager.h"
#include "ovi-presets.h"
#include "ovi-quantize.h"
#include "ovi-stage.h" /* OviStageKind, ovi_stage_name */
#include "ovi-weight-cache.h"

G_BEGIN_DECLS

typedef struct {
  OviVramMode mode; /* never AUTO once planned */
  OviGpuAllocation allocation;
  int ranks;
  OviQuantKind quant;        /* DiT matmul weights read as bf16/f32 */
  OviQuantKind t5_quant;     /* umT5 embedding / matmul weights */
  OviDType dit_weight_dtype; /* BF16, F8_E4M3 or I8 */
  gboolean stream_blocks;    /* DiT blocks from pinned host RAM */
  int stream_slots;          /* device block slots (2: ping-pong) */
  gboolean t5_on_cpu;        /* text encoder runs on the CPU backend */
  gboolean t5_while_used;    /* T5 loaded only for the text stage */
  /* umT5's blocks streamed from its file's mapping, one at a time
   * (OviT5Streaming, ovi-t5.h): in place on the CPU, into two device
   * slots on a GPU; only the prompt's embedding rows are read */
  gboolean t5_stream;
  gboolean vae_while_used; /* VAE / audio decoder loaded only to decode */
  int vae_tile, vae_tile_overlap; /* latent pixels; 0 = untiled */
  guint64 host_budget;            /* host RAM we may pin, 0 = unlimited */
  guint64 pinned_bytes;           /* streamed weights held pinned */
  guint64 pageable_bytes; /* streamed weights past the budget (pageable) */
  /* the quantised DiT weights come from the weight cache file
   * (ovi_placement_use_weight_cache): streamed blocks are used in place
   * from its mapping, `mapped_bytes` of them (the estimate fills it),
   * mapped instead of private */
  gboolean weight_cache;
  guint64 mapped_bytes;
  /* host and device are one memory (ovi_device_is_unified): standard keeps
   * every stage resident, and a plan fits when device + host bytes fit
   * the pool (OviPlacementEstimate.pool_peak) */
  gboolean unified;
  /* weights that stay resident are used where they lie (the file's
   * read-only mapping, or one host allocation) instead of being copied:
   * set on unified devices (ovi_placement_new switches the backend to
   * ovi_backend_upload_weight's in-place path); the estimate counts them
   * once, as device bytes (OviStageEstimate.device_in_place) */
  gboolean weights_in_place;
  /* host RAM the plan may use, private and mapped together (0: unchecked;
   * ovi_host_ram_available reads it from the system) */
  guint64 host_ram;
} OviPlacementPlan;

/* The plan of `mode` (not AUTO) for `allocation` (AUTO: single). */
gboolean ovi_placement_plan_for_mode (OviVramMode mode,
                                      OviGpuAllocation allocation,
                                      guint64 host_budget,
                                      OviPlacementPlan *plan, GError **error);

/* The same for a device (NULL: a discrete GPU): on a unified-memory device
 * the plan is made unified (see OviPlacementPlan.unified). */
gboolean ovi_placement_plan_for_device (OviVramMode mode,
                                        OviGpuAllocation allocation,
                                        guint64 host_budget,
                                        const OviDeviceInfo *dev,
                                        OviPlacementPlan *plan, GError **error);

/* What the estimate needs to know about a model (no weights loaded). */
typedef struct {
  char *variant;
  OviFusionDims dims;
  int video_latent_frames, audio_latent_length;
  int64_t target_area;
  gboolean dit_file_is_fp8; /* the fusion file stores F8_E4M3 weights */
  /* bytes as stored in the files (0 when unknown: release constants used) */
  guint64 t5_bytes, vae_decoder_bytes, audio_bytes;
  /* umT5 tensors the quantiser takes (rank 2): parameters and rows; the
   * bytes of the rest */
  guint64 t5_q_params, t5_q_rows, t5_other_bytes;
  int t5_dim, t5_ffn, t5_heads; /* for the text activations */
  /* umT5 streamed: one block's weight bytes (attention, FFN, norms), the
   * layer count, one embedding row's bytes and the vocabulary */
  guint64 t5_block_bytes, t5_row_bytes;
  int t5_layers, t5_vocab;
  int vae_dec_dim;      /* Wan2.2 decoder base width (256) */
  int vocoder_channels; /* BigVGAN initial channels */
} OviPlacementModel;

/* From the model folder's headers (paths) or, with paths NULL, from the
 * preset `variant` and the release dims (not for "tiny"). */
gboolean ovi_placement_model_init (OviPlacementModel *model,
                                   const OviModelPaths *paths,
                                   const char *variant, GError **error);
void ovi_placement_model_clear (OviPlacementModel *model);

/* The official pre-cast fp8 fusion file next to paths->fusion_path
 * (Ovi/model_fp8_e4m3fn.safetensors, 720x720_5s only) when the variant has
 * one and it exists, else NULL (free with g_free). The fp8 modes use it as
 * stored (F8_E4M3 without scales, norms and biases 16-bit): point
 * fusion_path at it before making the denoiser. */
char *ovi_placement_fp8_file (const OviModelPaths *paths);

typedef struct {
  guint64 device_weights;     /* resident during the stage (all models) */
  guint64 device_own_weights; /* of them, the stage's own model's */
  /* of device_weights, the bytes the device reads in place from the
   * weight files' mappings (plan.weights_in_place): one copy, counted
   * here and never again in host_mapped */
  guint64 device_in_place;
  guint64 device_own_in_place; /* of them, the stage's own model's */
  guint64 device_stream;       /* block slots (streaming modes) */
  guint64 device_activations;  /* the stage's buffers */
  guint64 device_peak;         /* sum of the three */
  guint64 host;                /* host RAM the stage holds: private + mapped */
  /* memory of our own (pinned slabs, pageable block copies, quantised
   * weights and activations of a CPU-side umT5): it cannot be dropped */
  guint64 host_private;
  /* weight file pages used in place (the read-only mapping, e.g. a bf16
   * umT5 on the CPU): page cache that must stay resident while the stage
   * runs, reclaimable after it */
  guint64 host_mapped;
  /* the bytes of the stage's own weight files mapped while it runs; only
   * host_mapped of them must be resident at once (a streamed umT5 holds
   * two blocks of its whole file; the DiT's streamed blocks, all read
   * every step, are all of the cache file's) */
  guint64 host_mapped_total;
} OviStageEstimate;

typedef struct {
  OviPlacementPlan plan;
  int width, height; /* snapped pixel size */
  int64_t tokens_video, tokens_audio;
  gsize act_dtype_size;
  OviStageEstimate stage[OVI_N_STAGES];
  guint64 device_peak; /* max over the stages */
  guint64 host_peak;   /* max over the stages of host (private + mapped) */
  guint64 host_private_peak; /* max over the stages of host_private */
  guint64 pool_peak;         /* max over the stages of device + host */
} OviPlacementEstimate;

/* Estimate of `plan` for `model` at width x height (0, 0: the preset's
 * square of its target area), activations of `act_dtype_size` bytes (2 on
 * a GPU, 4 on the CPU backend). */
gboolean ovi_placement_estimate (const OviPlacementModel *model,
                                 const OviPlacementPlan *plan, int width,
                                 int height, gsize act_dtype_size,
                                 OviPlacementEstimate *est, GError **error);

/* The fastest mode (standard, fp8, fp8-offload, ultra-low in that order)
 * whose device peak fits `device_free` bytes (per rank) and whose host
 * needs fit `host_budget` (0: unchecked). `mode` AUTO picks; another mode
 * is checked and refused with the estimate, and the mode that would fit,
 * in the message (OVI_ERROR_OUT_OF_MEMORY). */
gboolean ovi_placement_choose (const OviPlacementModel *model, OviVramMode mode,
                               OviGpuAllocation allocation, int width,
                               int height, gsize act_dtype_size,
                               guint64 device_free, guint64 host_budget,
                               OviPlacementEstimate *est, GError **error);

/* ovi_placement_choose for device `dev` (NULL: a discrete GPU; a unified
 * one gets unified plans, checked against its pool, `device_free`). */
gboolean ovi_placement_choose_on (const OviPlacementModel *model,
                                  OviVramMode mode, OviGpuAllocation allocation,
                                  int width, int height, gsize act_dtype_size,
                                  const OviDeviceInfo *dev, guint64 device_free,
                                  guint64 host_budget,
                                  OviPlacementEstimate *est, GError **error);

/* ovi_placement_choose_on, and each mode's host bytes (private + mapped,
 * the worst stage) must fit `host_ram` (0: unchecked): `auto` skips the
 * modes that do not fit, an explicit mode is refused naming the host RAM
 * it needs and the mode that would fit. */
gboolean ovi_placement_choose_host (
    const OviPlacementModel *model, OviVramMode mode,
    OviGpuAllocation allocation, int width, int height, gsize act_dtype_size,
    const OviDeviceInfo *dev, guint64 device_free, guint64 host_budget,
    guint64 host_ram, OviPlacementEstimate *est, GError **error);

/* Why `est` does not fit (device peak over `device_free`, host over
 * est->plan.host_ram), or NULL when it fits. Free with g_free. */
char *ovi_placement_misfit (const OviPlacementEstimate *est,
                            guint64 device_free);

/* "vram-mode auto chose X: device N of F free, host H of R; passed over:
 * standard needs ..., fp8 needs ...": why `chosen` (a result of
 * ovi_placement_choose_host with AUTO) was the pick. Free with g_free. */
char *ovi_placement_auto_why (const OviPlacementModel *model,
                              const OviPlacementEstimate *chosen, int width,
                              int height, const OviDeviceInfo *dev,
                              guint64 device_free, guint64 host_budget);

/* The host RAM a plan may count on: MemAvailable of /proc/meminfo (or of
 * the file OVI_MEMINFO_FILE names, for tests), 0 when unknown. */
guint64 ovi_host_ram_available (void);

typedef struct {
  int device;          /* CUDA ordinal; -1: the CPU backend */
  gboolean unified;    /* the device's memory is the host's (one pool) */
  guint64 usable_free; /* what the plan was checked against */
  char *cpu_reason;    /* why the CPU (NULL on a GPU) */
  gboolean warn;       /* an NVIDIA driver is installed: the fallback is a
                          WARNING for the user, not a quiet choice */
} OviDeviceChoice;

void ovi_device_choice_clear (OviDeviceChoice *choice);

/* Where and how to run: the GPU `requested_device` (-1: the one with the
 * most usable free memory, ovi_gpu_manager_pick), then the fastest mode
 * whose estimate fits it (or `mode`, checked); on a discrete GPU the
 * report's host_available is the plan's host_ram (ovi_placement_choose_host). With no usable GPU, or with
 * `auto` and no mode fitting, the CPU backend (standard, fp32 activations)
 * and choice->cpu_reason says why; a request that needs a GPU (a mode
 * other than auto, a device id) gets an OVI_ERROR_BACKEND error instead,
 * and an explicit mode that does not fit OVI_ERROR_OUT_OF_MEMORY. `est`
 * gets the plan's estimate (est->plan). */
gboolean
ovi_placement_choose_device (const OviPlacementModel *model, OviVramMode mode,
                             OviGpuAllocation allocation, int width, int height,
                             const OviGpuReport *report, int requested_device,
                             guint64 host_budget, OviDeviceChoice *choice,
                             OviPlacementEstimate *est, GError **error);

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (OviDeviceChoice, ovi_device_choice_clear)

/* The one call for an element: the model's dims from `paths` (headers
 * only), activations of `backend`'s act dtype, then ovi_placement_choose.
 * device_free 0 = unknown / not limited (the CPU backend): `auto` then
 * means standard and nothing is refused. `est` may be NULL; `plan` gets
 * the chosen plan. */
gboolean ovi_placement_choose_for_paths (
    const OviModelPaths *paths, OviVramMode mode, OviGpuAllocation allocation,
    int width, int height, OviBackend *backend, guint64 device_free,
    guint64 host_budget, OviPlacementPlan *plan, OviPlacementEstimate *est,
    GError **error);

/* One line per stage (device / host), for messages and `ovi estimate`. */
char *ovi_placement_estimate_to_string (const OviPlacementEstimate *est);

/* ---- applying a plan to the weights ---- */

typedef struct _OviPlacement OviPlacement;

/* The weight filter of `plan` for ovi_denoiser_new_filtered /
 * ovi_fusion_new_filtered: DiT matmul weights are quantised per the plan;
 * resident weights are copied into the backend's memory (so they count as
 * device memory), streamed block weights stay host tensors (the pinned
 * slabs). */
OviPlacement *ovi_placement_new (const OviPlacementPlan *plan,
                                 OviBackend *backend);
void ovi_placement_free (OviPlacement *pl);
OviTensor *ovi_placement_weight_filter (const char *name, OviTensor *weight,
                                        gpointer placement, GError **error);
/* The plan's quantised weights from a cache file of our own
 * (ovi-weight-cache.h) made from `source_path` (the fusion file) in
 * `cache_dir` (NULL: the user cache): reused when valid, else made and
 * written once; the weight filter then hands out views of its mapping
 * (streamed blocks stay there, used in place). Call before making the
 * denoiser. FALSE (with a warning naming why) when the plan quantises
 * nothing or the file cannot be written or read: the filter then quantises
 * in memory as before, to the same values. `info` may be NULL. */
gboolean ovi_placement_use_weight_cache (OviPlacement *pl,
                                         const char *source_path,
                                         const char *cache_dir,
                                         OviWeightCacheInfo *info);
/* The same for ovi_text_encoder_new_filtered: umT5 weights quantised per
 * the plan's t5_quant and placed on the backend. */
OviTensor *ovi_placement_t5_filter (const char *name, OviTensor *weight,
                                    gpointer placement, GError **error);
/* bytes the filters copied to the device / kept on the host so far */
guint64 ovi_placement_device_bytes (const OviPlacement *pl);
guint64 ovi_placement_host_bytes (const OviPlacement *pl);
/* bytes the filters handed the device in place (plan.weights_in_place:
 * no copy, not in ovi_placement_device_bytes) */
guint64 ovi_placement_in_place_bytes (const OviPlacement *pl);
/* bytes the filters left in a weight file's mapping (no copy: the weight
 * lives on the host in the dtype the file holds: the model file's, or the
 * weight cache file's) */
guint64 ovi_placement_mapped_bytes (const OviPlacement *pl);
/* After ovi_denoiser_new_filtered with this placement: switches the fusion
 * model's block streaming on or off per the plan, with at most the plan's
 * host budget pinned (a GPU backend switches
 * it on by itself when the filter leaves blocks in host memory; the CPU
 * backend, whose device memory is host memory, needs this call). */
void ovi_placement_attach_denoiser (const OviPlacement *pl, OviDenoiser *d);

/* An OOM message: what was needed, what is free, which mode would fit. */
char *ovi_placement_oom_advice (const OviPlacementModel *model,
                                const OviPlacementPlan *plan, int width,
                                int height, gsize act_dtype_size,
                                guint64 device_free);

/* When `error` is an OVI_ERROR_OUT_OF_MEMORY, appends the advice above to
 * its message ("...: <what failed>. vram-mode X needs about N but M is
 * free; vram-mode Y would fit") and returns TRUE; other errors are left
 * alone (FALSE). For the elements, on a failed run. */
gboolean ovi_placement_explain_oom (GError *error,
                                    const OviPlacementModel *model,
                                    const OviPlacementPlan *plan, int width,
                                    int height, gsize act_dtype_size,
                                    guint64 device_free);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviPlacement, ovi_placement_free)

G_END_DECLS
