/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: internals shared by the fusion DiT's loader and forward. */
#pragma once

#include "ovi-fusion.h"
#include "ovi-comm.h"

G_BEGIN_DECLS

typedef struct _OviLoraAdapter OviLoraAdapter;
typedef struct _OviFusionStreamer OviFusionStreamer;

typedef struct {
  OviTensor *w, *b;
  OviLoraAdapter *lora; /* run-time LoRAs (ovi-fusion-lora.c), or NULL */
} OviLinear;

typedef struct {
  OviLinear q, k, v, o;
  OviTensor *norm_q, *norm_k;
} OviFusionAttn;

typedef struct {
  OviFusionAttn sa, ca;
  OviLinear k_fusion, v_fusion;
  OviTensor *pre_norm_w, *pre_norm_b, *norm_k_fusion;
  OviTensor *norm3_w, *norm3_b;
  OviLinear ffn0, ffn2;
  OviTensor *modulation; /* [1, 6, dim] */
} OviFusionBlock;

typedef struct {
  OviLinear patch;         /* video [dim, in*prod(patch)]; audio [dim, in*K] */
  OviTensor *w1, *w2, *w3; /* audio ConvMLP, [out, in*K] */
  OviLinear text0, text2, time0, time2, proj, head;
  OviTensor *head_mod; /* [1, 2, dim] */
  OviFusionBlock *blocks;
} OviFusionTower;

struct _OviFusion {
  OviBackend *be;
  OviFusionDims dims;
  OviFusionTower towers[OVI_N_TOWERS];
  GPtrArray *keep; /* every tensor the model holds */
  OviFusionDebugFunc debug;
  gpointer debug_data;
  /* block streaming (ovi_fusion_set_streaming, ovi-fusion-stream.c): the
   * blocks' matmul weights stay in host memory, packed into per-block slabs
   * on first use, and are copied into one of two device slots ahead of
   * each fused block */
  gboolean stream;
  guint64 stream_budget; /* bytes of slabs that may be pinned, 0: all */
  OviFusionStreamer *streamer;
  /* sharded weights (ovi_fusion_set_shards, ovi-fusion-shard.c): the
   * blocks' matmul weights hold this rank's rows; full copies are gathered
   * into two slot sets */
  OviComm *shards;
  OviFusionBlock shard_slots[2][OVI_N_TOWERS];
  GPtrArray *shard_keep;
  OviFusionLora *lora; /* the active run-time LoRAs, or NULL */
};

/* per-tower activation buffers. The batched ones hold `batch` branches
 * stacked along the rows (branch b's tokens at rows [b * n, (b + 1) * n)),
 * so one matmul over all rows reads each weight once for every branch.
 *
 * Under sequence parallelism over P ranks each branch's n tokens are
 * padded to n_pad (a multiple of P) and this rank holds n_loc = n_pad / P
 * of them, from token `start`: "local" buffers have n_loc rows per branch
 * and all dim columns, "full" ones (after the all-to-all: every token,
 * this rank's heads) n_pad rows and dim / P columns. With one rank
 * n_loc = n_pad = n and each full buffer is its local one. */
typedef struct {
  int64_t n, n_other; /* tokens of one branch */
  int64_t n_pad, n_loc, start;
  /* batched, local */
  OviTensor *x, *xm, *proj, *q, *k, *v, *att, *ffn, *head;
  /* batched, full */
  OviTensor *qf, *kf, *vf, *attf, *qr, *kr, *att2, *headf;
  OviTensor *text, *tproj, *tk, *tv; /* [text_len, dim] */
  OviTensor *fn, *fproj, *fk, *fv;   /* local, of the other tower */
  OviTensor *fkf, *fvf, *fkr;        /* full, of the other tower */
  OviTensor *cos, *sin;              /* full [n_pad, rotated pairs] F32 */
  OviTensor *sinus, *e, *es, *e0, *mod, *hmod; /* 2 timestep rows */
  /* one branch, all tokens: the patch embedding, sliced to every branch */
  OviTensor *embed; /* [n, dim] */
  OviTensor *patches;
  OviTensor *pad_in, *h0, *pad_h0, *patches_h0, *h1, *h3, *pad_h1, *patches_h1;
  /* timestep row of each token run of a branch (set per forward) */
  int nseg;
  int64_t seg_start[2], seg_len[2];
  int seg_row[2];
} OviFusionTowerWork;

struct _OviFusionWork {
  int64_t frames, height, width, audio_length;
  int batch;       /* branches one forward can hold */
  int64_t grid[3]; /* video token grid */
  OviFusionTowerWork tw[OVI_N_TOWERS];
  OviTensor *audio_sa; /* audio after self-attention (batched) */
  /* sequence parallelism: comm NULL with one rank */
  OviComm *comm;
  int rank, ranks;
  OviTensor *a2a; /* 1-D scratch of the all-to-alls */
  GPtrArray *keep;
};

/* `dst` = branches [first, first + n) of `src`: every batched buffer
 * narrowed to their rows (views, held by `keep`), batch = n. */
void ovi_fusion_work_view (OviFusionWork *dst, const OviFusionWork *src,
                           int first, int n, GPtrArray *keep);

/* ovi-fusion-lora.c: out = act (x . W^T + b + the LoRA terms) for a linear
 * with adapters; and dropping the active set with the model */
void ovi_fusion_lora_linear (OviFusion *m, OviTensor *out, OviTensor *x,
                             const OviLinear *lin, OviActivation act);
void ovi_fusion_lora_free (OviFusion *m);

/* ovi-fusion-stream.c: around fused block `block` of a forward, when the
 * model streams; ovi_fusion_stream_block gives the tower's block with its
 * weights in the device slot (NULL after a failure: the backend holds the
 * error) */
void ovi_fusion_stream_begin (OviFusion *m, int block);
const OviFusionBlock *ovi_fusion_stream_block (OviFusion *m, OviTower tower);
void ovi_fusion_stream_end (OviFusion *m, int block);
void ovi_fusion_streamer_free (OviFusionStreamer *st);
/* ovi-fusion-shard.c: block i of the tower with its weights gathered (NULL
 * after a failure: the backend holds the error) */
const OviFusionBlock *ovi_fusion_shard_block (OviFusion *m, OviTower tower,
                                              int i);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviFusionStreamer, ovi_fusion_streamer_free)

G_END_DECLS
