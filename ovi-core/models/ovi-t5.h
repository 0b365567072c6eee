/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the umT5 encoder (Wan's T5Encoder, encoder only, as Ovi uses it).
 *
 * Loaded by the official names of models_t5_umt5-xxl-enc-bf16.pth
 * (token_embedding.weight, blocks.N.{norm1,attn.{q,k,v,o},norm2,
 * ffn.{gate.0,fc1,fc2},pos_embedding.embedding}.weight, norm.weight); the
 * sizes come from the weights: vocab and dim from token_embedding, the
 * attention width from attn.q, heads and buckets from the per-layer
 * relative-position table [buckets, heads], the FFN width from ffn.fc1, the
 * layer count by counting blocks. Per layer: T5 RMSNorm (eps 1e-6), self
 * attention without 1/sqrt(d) scaling plus the bidirectional
 * relative-position bias (max distance 128), pad keys masked, then the
 * gated tanh-GELU FFN; a final RMSNorm. */
#pragma once

#include <gio/gio.h>

#include "ovi-backend.h"
#include "ovi-weights.h"

G_BEGIN_DECLS

typedef struct _OviT5 OviT5;

typedef void (*OviT5DebugFunc) (const char *name, const OviTensor *t,
                                gpointer user_data);

/* max_dist: the relative-position max distance (128 for umT5); <= 0 uses
 * 128. */
OviT5 *ovi_t5_new (OviWeightFile *wf, OviBackend *be, int max_dist,
                   GError **error);
/* As ovi_t5_new, each weight of rank >= 2 (embedding, attention, FFN)
 * passing through `filter` (official name, tensor as read) which returns
 * the tensor to use (a new reference, e.g. quantised: ovi-placement.h) or
 * NULL with `error` set. */
OviT5 *ovi_t5_new_filtered (OviWeightFile *wf, OviBackend *be, int max_dist,
                            OviWeightFilter filter, gpointer filter_data,
                            GError **error);
void ovi_t5_free (OviT5 *t5);

int ovi_t5_get_dim (const OviT5 *t5);
int ovi_t5_get_vocab (const OviT5 *t5);
int ovi_t5_get_heads (const OviT5 *t5);
int ovi_t5_get_layers (const OviT5 *t5);

/* The [1, heads, len, len] relative-position bias of `layer` (host F32). */
OviTensor *ovi_t5_position_bias (OviT5 *t5, int layer, int len);

/* ids [batch, len] (host int64, each in [0, vocab)), mask [batch, len]
 * (1 on real tokens then 0 on padding; each row must start with a real
 * token) -> hidden states [batch, len, dim] on the backend, every position
 * computed (padded keys masked as in the official code). */
OviTensor *ovi_t5_forward (OviT5 *t5, const int64_t *ids, const int64_t *mask,
                           int batch, int len, GCancellable *cancellable,
                           GError **error);

/* Where the block weights come from while encoding.
 * NONE: every weight where the loader placed it, all used at once (a
 *   CPU backend reading the whole file's mapping keeps all of it mapped).
 * IN_PLACE (CPU backend, weights in the file's read-only mapping): one
 *   block at a time; the next block's pages are read ahead
 *   (MADV_WILLNEED) while one computes, a finished block's pages are
 *   unmapped (MADV_DONTNEED: clean page cache the kernel may reclaim), and
 *   the token embedding is read only for the prompt's tokens.
 * SLOTS: each block's host weights (in the mapping or not) are copied into
 *   one of two backend slots through the op table's streaming entries
 *   (ovi_op_copy_async on the copy queue, events), block i+1 while block i
 *   computes, their host pages released after the copy; the embedding
 *   rows of the prompt's tokens are gathered on the host. What a GPU
 *   backend needs when the placement filter leaves the weights on the
 *   host; the CPU backend runs it too (memcpy copies).
 * The outputs are the same bit for bit in every mode. */
typedef enum {
  OVI_T5_STREAM_NONE,
  OVI_T5_STREAM_IN_PLACE,
  OVI_T5_STREAM_SLOTS,
} OviT5Streaming;

/* The mode chosen at load (the default above) or set. Setting checks that
 * the weights allow it (IN_PLACE: a CPU backend and every block weight and
 * the embedding in the file mapping; SLOTS: block weights and embedding
 * contiguous host tensors; NONE: every weight readable by the backend). */
OviT5Streaming ovi_t5_get_streaming (const OviT5 *t5);
gboolean ovi_t5_set_streaming (OviT5 *t5, OviT5Streaming mode, GError **error);

typedef struct {
  OviT5Streaming mode;
  /* pages of the file mapping the encoder holds (touched or read ahead,
   * not yet released), whole pages: now, and the most at once during the
   * last forward (NONE: every weight in the mapping) */
  guint64 mapped_held, mapped_peak;
  guint64 mapped_total;   /* pages of the mapping the weights lie in */
  guint64 embedding_rows; /* rows gathered by the last forward */
  guint64 slot_bytes;     /* SLOTS: one slot's size on the backend */
  guint copies;           /* SLOTS: blocks copied into a slot */
  guint released;         /* blocks whose pages were released */
} OviT5StreamStats;

void ovi_t5_get_stream_stats (const OviT5 *t5, OviT5StreamStats *stats);

/* Intermediates: "token_embedding", "block{i}.out" ([batch, len, dim]). */
void ovi_t5_set_debug (OviT5 *t5, OviT5DebugFunc func, gpointer user_data);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviT5, ovi_t5_free)

G_END_DECLS
