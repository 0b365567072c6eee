/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the umT5 encoder's internals shared by ovi-t5.c and its
 * streaming (ovi-t5-stream.c); not installed. */
#pragma once

#include "ovi-t5.h"

G_BEGIN_DECLS

#define OVI_T5_BLOCK_TENSORS 9

typedef struct {
  OviTensor *norm1, *q, *k, *v, *o, *norm2, *gate, *fc1, *fc2;
  float *pos_table; /* [buckets, heads] host f32 */
} T5Block;

typedef struct _T5Streamer T5Streamer;

struct _OviT5 {
  OviBackend *be;
  int vocab, dim, dim_attn, dim_ffn, heads, layers, buckets, max_dist;
  OviTensor *embedding, *norm;
  T5Block *blocks;
  OviT5DebugFunc debug;
  gpointer debug_data;
  OviWeightFilter filter; /* nullable: quantise / place the weights */
  gpointer filter_data;
  /* the weight file's read-only mapping (NULL: opened from memory) */
  const char *map_base;
  gsize map_size;
  OviT5Streaming streaming;
  T5Streamer *streamer;
};

/* the block's tensors in a fixed order (norm1, q, k, v, o, norm2, gate,
 * fc1, fc2) */
void ovi_t5_block_tensors (T5Block *b, OviTensor **t[OVI_T5_BLOCK_TENSORS]);

/* The streaming mode the placed weights allow by default: IN_PLACE when
 * every weight the blocks and the embedding use lies in the file mapping
 * and the backend computes in host memory, SLOTS when some are host
 * tensors on a backend that cannot read them, else NONE. */
OviT5Streaming ovi_t5_stream_default (OviT5 *t5);
gboolean ovi_t5_stream_check (OviT5 *t5, OviT5Streaming mode, GError **error);
void ovi_t5_stream_free (OviT5 *t5);

/* the forward's hooks: the embedding of `ids` into x; the weights of block
 * i (resident, in the mapping, or a slot's copy) between begin and end;
 * the final norm's weight */
void ovi_t5_stream_start (OviT5 *t5);
void ovi_t5_stream_embed (OviT5 *t5, OviTensor *x, const int64_t *ids,
                          int64_t n);
const T5Block *ovi_t5_stream_block_begin (OviT5 *t5, int i);
void ovi_t5_stream_block_end (OviT5 *t5, int i);
void ovi_t5_stream_norm_begin (OviT5 *t5);
void ovi_t5_stream_norm_end (OviT5 *t5);

G_END_DECLS
