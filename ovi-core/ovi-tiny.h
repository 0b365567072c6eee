/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the tiny model — random weights in the official layout, file
 * formats and tensor names, at sizes that run the whole pipeline in seconds
 * on a CPU. It makes noise, not film. `ovi make-tiny` and the default model
 * folder (no model-dir) both write it through ovi_tiny_write().
 *
 * Output is a deterministic function of (config, seed): the same seed gives
 * byte-identical files on every run. Each tensor draws from its own stream
 * (splitmix64 seeded from the seed and the tensor name, Box-Muller normals),
 * so adding a tensor never changes the others. Initialisation follows the
 * golden vectors' rules (shared/golden/README.md §1) so activations stay of
 * order one. See docs/tiny-model.md.
 */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "ovi-tensor.h"

G_BEGIN_DECLS

#define OVI_TINY_DEFAULT_SEED 42
/* bumped whenever the files ovi_tiny_write() makes change for a given seed;
 * a cached tiny folder with another format is rewritten */
#define OVI_TINY_FORMAT 1
/* marker written last into the root of a tiny folder (JSON: variant, seed,
 * format, version) */
#define OVI_TINY_MARKER "ovi-tiny.json"

typedef enum {
  OVI_TINY_FILE_FUSION, /* Ovi/model.safetensors (BF16) */
  OVI_TINY_FILE_T5,  /* Wan2.2-TI2V-5B/models_t5_umt5-xxl-enc-bf16.pth (BF16) */
  OVI_TINY_FILE_VAE, /* Wan2.2-TI2V-5B/Wan2.2_VAE.pth (F32) */
  OVI_TINY_FILE_AUDIO_VAE, /* MMAudio/ext_weights/v1-16.pth (F32) */
  OVI_TINY_FILE_VOCODER, /* MMAudio/ext_weights/best_netG.pt (F32, {'generator':
                            sd}) */
  OVI_TINY_N_WEIGHT_FILES
} OviTinyFile;

typedef struct {
  /* fusion DiT, both towers */
  int dit_dim, dit_ffn_dim, dit_heads, dit_layers, dit_freq_dim;
  int video_channels; /* 48 */
  int audio_channels; /* 20 */
  /* umT5 encoder (its dim is the DiT text_dim) */
  int t5_vocab, t5_dim, t5_dim_attn, t5_ffn, t5_heads, t5_layers, t5_buckets;
  /* Wan2.2 VAE: encoder base width, decoder base width, z_dim 48 */
  int vae_dim, vae_dec_dim, vae_z_dim;
  /* MMAudio VAE */
  int audio_vae_hidden, audio_vae_embed, audio_vae_data_dim;
  /* BigVGAN */
  int vocoder_initial_channel;
  /* legacy weight_g/weight_v names (TRUE) or torch>=2.1 parametrizations */
  gboolean vocoder_legacy_weight_norm;
  /* dtype of the fusion and T5 files (the VAEs are always F32) */
  OviDType fusion_dtype, t5_dtype;
} OviTinyConfig;

/* the sizes `ovi make-tiny` uses (docs/tiny-model.md) */
void ovi_tiny_config_init (OviTinyConfig *cfg);

/* path of each weight file relative to the model folder */
const char *ovi_tiny_file_path (OviTinyFile file);

typedef struct {
  char *name;
  int ndim;
  int64_t shape[OVI_MAX_DIMS];
} OviTinyTensorSpec;

/* The tensors of one file, in state_dict (module registration) order, with
 * their official names and shapes for `cfg`. Array of OviTinyTensorSpec*,
 * owns them. Exposed so tests can check names and shapes against the
 * golden manifests. */
GPtrArray *ovi_tiny_list_tensors (const OviTinyConfig *cfg, OviTinyFile file);

/* Writes the complete folder into `dir` (created if needed; files in it are
 * replaced): the five weight files, the tokenizer model and the marker. */
gboolean ovi_tiny_write (const char *dir, guint64 seed, GError **error);
gboolean ovi_tiny_write_config (const char *dir, const OviTinyConfig *cfg,
                                guint64 seed, GError **error);

/* TRUE when `dir` holds a tiny folder with the current format (the marker
 * is present and says so); its seed is stored in *seed when non-NULL. */
gboolean ovi_tiny_is_current (const char *dir, guint64 *seed);

/* The default tiny folder: g_get_user_cache_dir()/gst-ovi/tiny-<version>,
 * written on first use (into a temporary folder, renamed into place, under
 * a lock file so concurrent processes write it once). Returns the path. */
char *ovi_tiny_ensure_default (GError **error);

G_END_DECLS
