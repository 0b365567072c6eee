/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: a SentencePiece (unigram) tokenizer that gives the ids
 * SentencePiece 0.1.97 gives.
 *
 * Reads a SentencePiece ModelProto file (the `spiece.model` shipped with
 * umT5) with its own protobuf wire-format reader, applies the model's
 * normaliser (precompiled character map: a Darts double-array trie plus a
 * blob of replacement strings; dummy prefix; extra-whitespace removal;
 * U+2581 whitespace escaping; user-defined symbols kept verbatim) and
 * segments with the unigram Viterbi search over the piece scores.
 * Consecutive unknown pieces fuse into one unk id; with byte_fallback an
 * unknown piece becomes its UTF-8 bytes (<0xNN> pieces). Only unigram models
 * are supported: other model types fail with OVI_ERROR_FORMAT. See
 * docs/text.md.
 */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "ovi-error.h"

G_BEGIN_DECLS

typedef struct _OviSpm OviSpm;

typedef enum {
  OVI_SPM_NORMAL = 1,
  OVI_SPM_UNKNOWN = 2,
  OVI_SPM_CONTROL = 3,
  OVI_SPM_USER_DEFINED = 4,
  OVI_SPM_UNUSED = 5,
  OVI_SPM_BYTE = 6,
} OviSpmPieceType;

/* Loads a ModelProto file; a malformed file fails with OVI_ERROR_FORMAT
 * naming it, a missing one with OVI_ERROR_IO. */
OviSpm *ovi_spm_load (const char *path, GError **error);
/* As ovi_spm_load from bytes in memory; `name` is used in messages. */
OviSpm *ovi_spm_load_from_data (const guint8 *data, gsize size,
                                const char *name, GError **error);
void ovi_spm_free (OviSpm *spm);

int ovi_spm_get_n_pieces (const OviSpm *spm);
const char *ovi_spm_id_to_piece (const OviSpm *spm, int id);
OviSpmPieceType ovi_spm_get_piece_type (const OviSpm *spm, int id);
float ovi_spm_get_score (const OviSpm *spm, int id);
/* id of a piece (any type), or -1 when the model has none */
int ovi_spm_piece_to_id (const OviSpm *spm, const char *piece);
int ovi_spm_get_unk_id (const OviSpm *spm);
/* id of the trainer's eos piece ("</s>"), -1 if absent */
int ovi_spm_get_eos_id (const OviSpm *spm);
/* id of the trainer's pad piece ("<pad>"), -1 if absent */
int ovi_spm_get_pad_id (const OviSpm *spm);

/* The normaliser alone: `text` (`len` bytes, -1: NUL-terminated) as
 * SentencePiece's Normalizer::Normalize gives it. */
char *ovi_spm_normalize (const OviSpm *spm, const char *text, gssize len);

/* SentencePiece's EncodeAsIds: appends the ids (gint32) to `ids`. Returns
 * the number appended. */
guint ovi_spm_encode (const OviSpm *spm, const char *text, gssize len,
                      GArray *ids);

/* The T5 tokenizer view (HF T5TokenizerFast with padding='max_length',
 * truncation=True, add_special_tokens=True): pieces + eos; when longer than
 * seq_len, the first seq_len-1 pieces then eos; right-padded with the pad
 * id. `ids` and `mask` have seq_len entries (either may be NULL); returns
 * the real token count (eos included), or -1 with `error` set when the
 * model has no eos piece or seq_len < 1. */
int ovi_spm_encode_t5 (const OviSpm *spm, const char *text, int seq_len,
                       int64_t *ids, int64_t *mask, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviSpm, ovi_spm_free)

G_END_DECLS
