/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: LoRA files (docs/lora.md).
 *
 * A LoRA file (safetensors) is read with the key layouts in use for Wan
 * models, resolved against the fusion model's tensor names and shapes, and
 * checked as a whole before anything is changed:
 *  - diffusers / PEFT: [base_model.model.][transformer.]blocks.N.attn1.to_q
 *    .lora_A.weight / .lora_B.weight (attn1/attn2 = self_attn/cross_attn,
 *    to_q/to_k/to_v/to_out.0 = q/k/v/o, ffn.net.0.proj/ffn.net.2 =
 *    ffn.0/ffn.2; no alpha);
 *  - native / ComfyUI / lightx2v: [diffusion_model.]blocks.N.self_attn.q
 *    .lora_down.weight / .lora_up.weight (or lora_A / lora_B), optional
 *    .alpha, full deltas .diff and bias deltas .diff_b;
 *  - kohya / musubi: lora_unet_blocks_N_self_attn_q.lora_down.weight /
 *    .lora_up.weight + .alpha (also lora_unet__blocks_...);
 *  - Ovi's own names: any of the above with video_model. / audio_model.
 *    (video_model_ / audio_model_ in kohya keys) in front.
 * Keys without a tower go to the video tower (Wan LoRAs are trained on
 * it); `target` audio or both redirects them. Keys with a tower go there.
 *
 * The change to a weight W (stored dtype kept):
 *   W' = W + sum over LoRAs  strength * (alpha / rank) * (up . down)
 *          + strength * diff
 * accumulated in double from the files' values and rounded once to W's
 * dtype (no alpha: alpha / rank = 1).
 */
#pragma once

#include <glib.h>

#include "ovi-weights.h"

G_BEGIN_DECLS

typedef enum {
  OVI_LORA_TARGET_VIDEO,
  OVI_LORA_TARGET_AUDIO,
  OVI_LORA_TARGET_BOTH,
} OviLoraTarget;

const char *ovi_lora_target_to_string (OviLoraTarget target);
gboolean ovi_lora_target_from_string (const char *s, OviLoraTarget *target);

/* One entry of a LoRA list: "path[:strength[:video|audio|both]]". */
typedef struct {
  char *path;
  double strength; /* 1.0 */
  OviLoraTarget target;
} OviLoraSpec;

void ovi_lora_spec_free (OviLoraSpec *spec);
/* Entries separated by ';' (empty entries skipped). Strength must be a
 * finite number >= 0, the target one of the three names. NULL or "" gives
 * an empty array. Array of OviLoraSpec*, owning them. */
GPtrArray *ovi_lora_specs_parse (const char *text, GError **error);
/* As ovi_lora_specs_parse, entries without a strength or target taking
 * those of `defaults` (its path is ignored). */
GPtrArray *ovi_lora_specs_parse_with_defaults (const char *text,
                                               const OviLoraSpec *defaults,
                                               GError **error);
gboolean ovi_lora_specs_equal (const GPtrArray *a, const GPtrArray *b);

/* Key formats seen in a file (a bit set). */
typedef enum {
  OVI_LORA_FORMAT_DIFFUSERS = 1 << 0,
  OVI_LORA_FORMAT_NATIVE = 1 << 1,
  OVI_LORA_FORMAT_KOHYA = 1 << 2,
  OVI_LORA_FORMAT_OVI = 1 << 3, /* keys already under video_model./... */
} OviLoraFormat;

/* "diffusers/PEFT, Ovi names" */
char *ovi_lora_format_to_string (guint formats);

/* What one model tensor gets from one LoRA entry. */
typedef struct {
  char *key;         /* the LoRA key stem, for messages */
  OviTensor *down;   /* F32 host [rank, in...], or NULL */
  OviTensor *up;     /* F32 host [out, rank...], or NULL */
  OviTensor *diff;   /* F32 host, the target's shape, or NULL */
  int rank;          /* 0 without down/up */
  double alpha;      /* the file's alpha, or rank */
  double lora_scale; /* strength * alpha / rank */
  double strength;   /* scale of diff */
} OviLoraDelta;

/* Per file: what was found. */
typedef struct {
  char *path;
  guint formats;  /* OviLoraFormat bits of the keys that matched */
  int rank;       /* the largest rank, 0 if only diffs */
  gboolean mixed; /* ranks or alphas differ between entries */
  double alpha;   /* of the largest-rank entry (= rank without alpha) */
  guint n_keys;
  guint n_matched;
  GPtrArray *unmatched; /* char*, keys that name nothing in the model */
} OviLoraFileInfo;

typedef struct _OviLoraSet OviLoraSet;

/* Reads the LoRAs of `specs` and resolves them against `model` (the fusion
 * weight file: names and shapes only). Fails, changing nothing, when a file
 * is missing or corrupt, a value is NaN/Inf, a rank is 0, a strength is
 * negative or not finite, a shape does not fit (naming the tensor and both
 * shapes), or a file's keys match nothing (naming some keys and the formats
 * tried). Keys that match nothing in a file that otherwise matches are
 * listed in its info (the caller warns). */
OviLoraSet *ovi_lora_set_new (OviWeightFile *model,
                              const OviLoraSpec *const *specs, guint n_specs,
                              GError **error);
/* As ovi_lora_set_new for one LoRA file already open (tests, fuzzers);
 * spec->path only names it in messages. */
OviLoraSet *ovi_lora_set_new_from_file (OviWeightFile *model,
                                        OviWeightFile *lora,
                                        const OviLoraSpec *spec,
                                        GError **error);
void ovi_lora_set_free (OviLoraSet *set);

guint ovi_lora_set_n_files (const OviLoraSet *set);
const OviLoraFileInfo *ovi_lora_set_file_info (const OviLoraSet *set, guint i);
/* the model tensors the set changes, sorted by name (char*, borrowed) */
GPtrArray *ovi_lora_set_targets (const OviLoraSet *set);
/* the deltas on `target` (OviLoraDelta*, borrowed), or NULL */
const GPtrArray *ovi_lora_set_deltas (const OviLoraSet *set,
                                      const char *target);
/* "N keys unmatched in FILE: a, b, c (and M more)" for every file with
 * unmatched keys, or NULL */
char *ovi_lora_set_unmatched_message (const OviLoraSet *set);

/* W with the deltas merged (see above): a new contiguous host tensor in W's
 * dtype (a scaled F8_E4M3 / I8 W gives BF16, for the quantiser to redo). */
OviTensor *ovi_lora_merge (const OviTensor *w, const GPtrArray *deltas,
                           GError **error);

/* Merges the set into what `wf` hands out from now on
 * (ovi_weight_file_set_transform); ovi_lora_set_uninstall ends it. The set
 * must outlive the installation. */
void ovi_lora_set_install (OviLoraSet *set, OviWeightFile *wf);
void ovi_lora_set_uninstall (OviWeightFile *wf);

/* For a loader: reads `specs` (OviLoraSpec*; NULL or empty: *set = NULL,
 * nothing installed) against `wf` and installs their merge; then load;
 * then ovi_lora_merge_end uninstalls it, frees the set and puts the
 * unmatched-keys message (or NULL) into *warning (old value freed). */
gboolean ovi_lora_merge_begin (OviWeightFile *wf, const GPtrArray *specs,
                               OviLoraSet **set, GError **error);
void ovi_lora_merge_end (OviWeightFile *wf, OviLoraSet *set, char **warning);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviLoraSet, ovi_lora_set_free)

G_END_DECLS
