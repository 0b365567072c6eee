/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: sharded fusion-DiT weights (VRAM pooling, see ovi-fusion.h).
 *
 * Each of the N ranks of a shard group keeps rows [r N_out / N,
 * (r + 1) N_out / N) of every fused block's 12 matmul weights (with their
 * per-channel scales when quantised); before a block runs, its weights are
 * all-gathered into one of two full-size slot sets (block i into slot
 * i % 2), so a rank holds 1/N of the blocks plus two blocks. The gathers
 * are ordered on the rank's stream like its ops; a second stream that
 * gathers block i + 1 while block i computes is not built yet. */
#include "ovi-fusion-private.h"

#include <string.h>

#define N_LINEARS 12

static void
block_linears (OviFusionBlock *b, OviLinear *l[N_LINEARS])
{
  OviLinear *all[N_LINEARS]
      = { &b->sa.q, &b->sa.k, &b->sa.v,     &b->sa.o,     &b->ca.q, &b->ca.k,
          &b->ca.v, &b->ca.o, &b->k_fusion, &b->v_fusion, &b->ffn0, &b->ffn2 };
  memcpy (l, all, sizeof all);
}

/* ---- load time: the filter ---- */

OviTensor *
ovi_fusion_shard_filter (const char *name, OviTensor *weight,
                         gpointer user_data, GError **error)
{
  const OviFusionShardFilter *sf = user_data;
  g_autoptr (OviTensor) rows = NULL;
  int64_t n = weight->ndim == 2 ? weight->shape[0] : 0;
  OviTensor *out;

  if (strstr (name, ".blocks.") == NULL || sf->size <= 1) {
    if (sf->inner)
      return sf->inner (name, weight, sf->inner_data, error);
    return ovi_tensor_ref (weight);
  }
  if (n == 0 || n % sf->size) {
    g_autofree char *s = ovi_shape_to_string (weight->ndim, weight->shape);
    g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                 "sharding %s %s over %d ranks: its rows do not split evenly",
                 name, s, sf->size);
    return NULL;
  }
  rows = ovi_tensor_narrow (weight, 0, sf->rank * (n / sf->size), n / sf->size);
  out = sf->inner ? sf->inner (name, rows, sf->inner_data, error)
                  : ovi_tensor_ref (rows);
  if (out && out->scale && ovi_tensor_numel (out->scale) != n / sf->size) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                 "sharding %s over %d ranks needs one scale per row; the "
                 "quantiser gave %" G_GINT64_FORMAT,
                 name, sf->size, ovi_tensor_numel (out->scale));
    g_clear_pointer (&out, ovi_tensor_unref);
  }
  return out;
}

/* ---- run time ---- */

void
ovi_fusion_set_shards (OviFusion *m, OviComm *comm)
{
  m->shards = comm && comm->size > 1 ? comm : NULL;
}

/* a full-size tensor like `shard` x ranks rows (and its scale) */
static OviTensor *
full_like (OviFusion *m, const OviTensor *shard, int ranks)
{
  int64_t shape[2] = { shard->shape[0] * ranks, shard->shape[1] };
  OviTensor *t = ovi_backend_new_tensor (m->be, shard->dtype, 2, shape);

  if (t && shard->scale) {
    int64_t n = ovi_tensor_numel (shard->scale) * ranks;
    t->scale = ovi_backend_new_tensor (m->be, shard->scale->dtype, 1, &n);
  }
  if (t)
    g_ptr_array_add (m->shard_keep, t);
  return t && (shard->scale == NULL || t->scale) ? t : NULL;
}

/* a contiguous 1-D view of a tensor (for the gather of a scale) */
static OviTensor *
flat (OviTensor *t)
{
  int64_t n = ovi_tensor_numel (t);
  return ovi_tensor_reshape (t, 1, &n);
}

const OviFusionBlock *
ovi_fusion_shard_block (OviFusion *m, OviTower tower, int i)
{
  OviComm *c = m->shards;
  OviFusionBlock *dst = &m->shard_slots[i % 2][tower];
  OviFusionBlock *src = &m->towers[tower].blocks[i];
  OviLinear *dl[N_LINEARS], *sl[N_LINEARS];
  OviTensor *w[N_LINEARS];

  if (m->shard_keep == NULL)
    m->shard_keep
        = g_ptr_array_new_with_free_func ((GDestroyNotify) ovi_tensor_unref);
  block_linears (dst, dl);
  block_linears (src, sl);
  for (int k = 0; k < N_LINEARS; k++) {
    w[k] = dl[k]->w ? dl[k]->w : full_like (m, sl[k]->w, c->size);
    if (w[k] == NULL)
      return NULL; /* the backend holds the error */
  }
  *dst = *src; /* biases, gains, modulation, LoRAs: every rank has them */
  for (int k = 0; k < N_LINEARS; k++) {
    dl[k]->w = w[k];
    if (sl[k]->w->scale) {
      g_autoptr (OviTensor) all = flat (w[k]->scale);
      g_autoptr (OviTensor) mine = flat (sl[k]->w->scale);
      ovi_comm_all_gather (c, all, mine);
    }
    ovi_comm_all_gather (c, w[k], sl[k]->w);
  }
  return dst;
}
