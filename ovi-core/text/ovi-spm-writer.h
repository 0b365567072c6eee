/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: writes a small SentencePiece unigram model for the tiny test
 * model (`ovi make-tiny`).
 *
 * The file is a valid ModelProto that SentencePiece itself loads: control
 * pieces <pad>=0 and </s>=1, unknown <unk>=2, then printable ASCII
 * characters (bare and after U+2581), frequent English subwords and words
 * (after U+2581) with log-probability scores. Normaliser "identity" (no
 * character map), add_dummy_prefix, remove_extra_whitespaces and
 * escape_whitespaces on, trainer spec: unigram, pad 0, eos 1, unk 2, no bos,
 * no byte fallback. `seed` perturbs the scores slightly (deterministically),
 * so different seeds give different but equally valid models.
 */
#pragma once

#include <glib.h>

#include "ovi-error.h"

G_BEGIN_DECLS

/* The model as bytes. */
GBytes *ovi_spm_tiny_model_bytes (guint64 seed);

/* Writes it to `path`; OVI_ERROR_IO naming the file on failure. */
gboolean ovi_spm_write_tiny_model (const char *path, guint64 seed,
                                   GError **error);

G_END_DECLS
