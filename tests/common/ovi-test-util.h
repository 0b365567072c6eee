/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tests: small helpers the test programs share (temporary folders, the
 * tiny model). Build: tests/common/meson.build (ovi_test_util_dep). */
#pragma once

#include <glib.h>

#include "ovi-engine.h"
#include "ovi-presets.h"
#include "ovi-tensor.h"
#include "ovi-weights.h"

G_BEGIN_DECLS

/* rm -rf of a folder a test made (does not follow symlinks) */
void ovi_test_remove_tree (const char *path);

/* g_test_run (), then the folder `dir` (taken) removed: the end of a test
 * program whose tests share one temporary folder */
int ovi_test_run_then_remove (char *dir);

/* a new temporary folder from `tmpl` ("ovi-foo-XXXXXX"); fails the test if
 * it cannot be made */
char *ovi_test_make_tmp_dir (const char *tmpl);

/* a new temporary folder from `tmpl` holding the tiny model written with
 * `seed`; fails the test if it cannot be written */
char *ovi_test_make_tiny_dir (const char *tmpl, guint64 seed);

/* ||a - b|| / ||b|| over two F32 host tensors of the same element count */
double ovi_test_rel_l2 (const OviTensor *a, const OviTensor *b);

/* max |a - b| over two F32 host tensors of the same element count */
double ovi_test_max_abs_diff (const OviTensor *a, const OviTensor *b);

/* the same bytes (and byte count) in two host tensors */
gboolean ovi_test_same_bits (const OviTensor *a, const OviTensor *b);

/* The golden fusion_dit case ($OVI_GOLDEN_DIR) as the denoiser tests run
 * it: a one-thread CPU backend, the sampler case's three text embeddings
 * (`io`, its io.safetensors) and the fusion_dit case's model paths (2 heads,
 * text_len 32; fusion_path its weights). */
typedef struct {
  OviBackend *be;
  OviWeightFile *io;
  OviModelPaths paths;
  OviTensor *text[3];
} OviTestGolden;

void ovi_test_golden_init (OviTestGolden *g);
void ovi_test_golden_clear (OviTestGolden *g);
/* `req` initialised for the golden case: its three texts, skip-layer
 * guidance on block 1, 96x64 */
void ovi_test_golden_request (const OviTestGolden *g, OviDenoiseRequest *req);

/* `req` initialised and set for a run of preset `m` (steps, shift,
 * guidance, skip-layer guidance, its default frame size) on the three
 * text embeddings, with `seed` */
void ovi_test_preset_request (OviDenoiseRequest *req, const OviModelPreset *m,
                              OviTensor *pos, OviTensor *video_neg,
                              OviTensor *audio_neg, guint64 seed);

/* A rank-2 LoRA in native key names on the self-attention q of blocks
 * 0 .. n_blocks - 1 of the fusion file `fusion_path` (shapes from its
 * block 0), fixed factors of order `amp`; `unmatched` adds a key of block
 * 99, which no model has. Written to `path`; fails the test otherwise. */
void ovi_test_write_q_lora (const char *fusion_path, int n_blocks, float amp,
                            gboolean unmatched, const char *path);

/* a [rows, cols] F32 host tensor of deterministic values in [-0.4, 0.4)
 * (a text embedding for the tiny model) */
OviTensor *ovi_test_text (int64_t rows, int64_t cols, guint32 seed);

/* the backend `name` ("cpu": 2 threads) on device 0; fails the test if it
 * cannot be made */
/* `--backend NAME` at argv[1] (after g_test_init) into *name: FALSE, with
 * a SKIP line, when that backend cannot start here (exit 77 then) */
gboolean ovi_test_backend_from_args (int argc, char **argv, const char **name);
OviBackend *ovi_test_backend_new (const char *name);

/* the latents of `d` on the three text embeddings of the tiny preset
 * (skip-layer guidance, seed 7), downloaded to F32 host tensors */
void ovi_test_denoise_tiny (OviBackend *be, OviDenoiser *d, OviTensor **video,
                            OviTensor **audio);

G_END_DECLS
