/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tests: small helpers the test programs share (temporary folders, the
 * tiny model). Build: tests/common/meson.build (ovi_test_util_dep). */
#pragma once

#include <glib.h>

#include "ovi-engine.h"
#include "ovi-presets.h"
#include "ovi-tensor.h"

G_BEGIN_DECLS

/* rm -rf of a folder a test made (does not follow symlinks) */
void ovi_test_remove_tree (const char *path);

/* a new temporary folder from `tmpl` ("ovi-foo-XXXXXX"); fails the test if
 * it cannot be made */
char *ovi_test_make_tmp_dir (const char *tmpl);

/* a new temporary folder from `tmpl` holding the tiny model written with
 * `seed`; fails the test if it cannot be written */
char *ovi_test_make_tiny_dir (const char *tmpl, guint64 seed);

/* ||a - b|| / ||b|| over two F32 host tensors of the same element count */
double ovi_test_rel_l2 (const OviTensor *a, const OviTensor *b);

/* the same bytes (and byte count) in two host tensors */
gboolean ovi_test_same_bits (const OviTensor *a, const OviTensor *b);

/* `req` initialised and set for a run of preset `m` (steps, shift,
 * guidance, skip-layer guidance, its default frame size) on the three
 * text embeddings, with `seed` */
void ovi_test_preset_request (OviDenoiseRequest *req, const OviModelPreset *m,
                              OviTensor *pos, OviTensor *video_neg,
                              OviTensor *audio_neg, guint64 seed);

G_END_DECLS
