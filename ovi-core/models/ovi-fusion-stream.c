/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: block streaming of the fusion DiT (ovi_fusion_set_streaming).
 *
 * The matmul weights of each fused block (video block i and audio block i,
 * twelve linears each, with their scales) are packed once into one host
 * slab: pinned while the host budget lasts (ovi_fusion_set_stream_budget),
 * pageable after it (partial pinning). Two device slots hold one block
 * each. When block i starts, block i+1 is copied into the other slot on the
 * backend's copy queue, so the copy runs while block i computes; an event
 * makes the compute queue wait for a block's copy, another makes the next
 * copy into a slot wait for the compute that used it. The last block
 * prefetches block 0 of the next step. One copy per block per step: every
 * branch of a batched CFG step and every run of a skip-layer split uses the
 * slot as it is. The slot's block is the model's (biases, gains,
 * modulation, LoRA adapters, as they are when the block runs) with only the
 * streamed weights replaced by views of the slot.
 *
 * A block whose streamed weights already lie together in one mapping (the
 * weight cache file writes each block's tensors as one aligned span,
 * ovi-weight-cache.h) is not packed: its span of the mapping is the slab,
 * copied as it is (pageable memory: the page cache holds it, or the copy
 * reads it from the disk again).
 */
#include "ovi-fusion-private.h"

#include <string.h>

#define N_STREAMED  12
#define SLAB_ALIGN  256
#define ALIGN_UP(n) (((n) + SLAB_ALIGN - 1) & ~(gsize) (SLAB_ALIGN - 1))

struct _OviFusionStreamer {
  OviBackend *be;
  int n_blocks;
  OviStorage **slabs; /* per fused block, host */
  gsize *slab_offset; /* where the block's span starts in slabs[i] */
  gsize *slab_bytes;
  gsize slot_bytes;
  OviTensor *slot[2]; /* U8 [slot_bytes] on the backend */
  OviEvent *copied[2], *computed[2];
  OviFusionBlock blocks[2][OVI_N_TOWERS]; /* what each slot holds, as views */
  GPtrArray *views[2];
  int holds[2]; /* the block in each slot, -1 none */
  int current;  /* the slot of the block computing */
  OviFusionStreamStats stats;
};

static void
block_linears (OviFusionBlock *b, OviLinear *l[N_STREAMED])
{
  OviLinear *all[N_STREAMED]
      = { &b->sa.q, &b->sa.k, &b->sa.v,     &b->sa.o,     &b->ca.q, &b->ca.k,
          &b->ca.v, &b->ca.o, &b->k_fusion, &b->v_fusion, &b->ffn0, &b->ffn2 };
  memcpy (l, all, sizeof all);
}

/* A prefetch may still be copying. The slots are freed in compute-queue
 * order, so that queue waits for it first; a slab of pageable memory (the
 * weight cache's mapping, a copy past the pinned budget) is read by a GPU's
 * staging after the copy was issued, so the host waits too before it goes
 * (cudaFreeHost of a pinned slab synchronises by itself). A pending error
 * would skip the waits: it is taken first and put back after. */
static void
wait_for_copies (OviFusionStreamer *st)
{
  GError *pending = NULL;

  ovi_backend_sync (st->be, &pending);
  for (int s = 0; s < 2; s++)
    if (st->copied[s] && st->holds[s] >= 0)
      ovi_op_queue_wait (st->be, OVI_BACKEND_QUEUE_COMPUTE, st->copied[s]);
  if (st->stats.mapped_bytes + st->stats.pageable_bytes > 0)
    ovi_backend_sync (st->be, pending ? NULL : &pending);
  if (pending) {
    ovi_backend_set_error (st->be, pending->domain, pending->code, "%s",
                           pending->message);
    g_error_free (pending);
  }
}

void
ovi_fusion_streamer_free (OviFusionStreamer *st)
{
  if (st == NULL)
    return;
  wait_for_copies (st);
  for (int s = 0; s < 2; s++) {
    g_clear_pointer (&st->views[s], g_ptr_array_unref);
    g_clear_pointer (&st->slot[s], ovi_tensor_unref);
    ovi_backend_event_free (st->be, st->copied[s]);
    ovi_backend_event_free (st->be, st->computed[s]);
  }
  for (int i = 0; st->slabs && i < st->n_blocks; i++)
    g_clear_pointer (&st->slabs[i], ovi_storage_unref);
  g_free (st->slabs);
  g_free (st->slab_offset);
  g_free (st->slab_bytes);
  g_free (st);
}

/* ---- packing the slabs ---- */

static gboolean
packable (const OviTensor *t, const char *what, int block, GError **error)
{
  if (t->storage->device.type == OVI_DEVICE_CPU && ovi_tensor_is_contiguous (t))
    return TRUE;
  g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
               "block streaming: the %s of block %d is not a contiguous host "
               "tensor (streamed weights must stay in host memory)",
               what, block);
  return FALSE;
}

/* the bytes of block i's streamed weights (and scales), packed */
static gboolean
slab_size (OviFusion *m, int i, gsize *bytes, GError **error)
{
  *bytes = 0;
  for (int t = 0; t < OVI_N_TOWERS; t++) {
    OviLinear *l[N_STREAMED];
    block_linears (&m->towers[t].blocks[i], l);
    for (int k = 0; k < N_STREAMED; k++) {
      const OviTensor *w = l[k]->w;
      if (!packable (w, "weight", i, error)
          || (w->scale && !packable (w->scale, "scale", i, error)))
        return FALSE;
      *bytes += ALIGN_UP (ovi_tensor_nbytes (w));
      if (w->scale)
        *bytes += ALIGN_UP (ovi_tensor_nbytes (w->scale));
    }
  }
  return TRUE;
}

/* `t` copied into `slab` at *off, as a tensor viewing it */
static OviTensor *
pack_tensor (OviStorage *slab, gsize *off, const OviTensor *t)
{
  OviTensor *v = ovi_tensor_new_on_storage (slab, *off, t->dtype, t->ndim,
                                            t->shape, NULL);

  memcpy ((char *) slab->data + *off, ovi_tensor_data (t),
          ovi_tensor_nbytes (t));
  *off += ALIGN_UP (ovi_tensor_nbytes (t));
  return v;
}

/* the model's tensor `old` (held in m->keep) replaced by `repl` */
static void
replace_kept (OviFusion *m, OviTensor **slot, OviTensor *repl)
{
  OviTensor *old = *slot;

  *slot = repl;
  g_ptr_array_add (m->keep, repl);
  if (!g_ptr_array_remove_fast (m->keep, old))
    ovi_tensor_unref (old);
}

/* The span of one storage that block i's streamed weights (and scales)
 * fill, packed as pack_block would (each SLAB_ALIGN aligned from the span's
 * start, nothing else inside), or FALSE. */
static gboolean
mapped_span (OviFusion *m, int i, gsize packed, OviStorage **storage,
             gsize *start, gsize *bytes)
{
  gsize lo = G_MAXSIZE, hi = 0;
  OviStorage *s = m->towers[0].blocks[i].sa.q.w->storage;

  for (int t = 0; t < OVI_N_TOWERS; t++) {
    OviLinear *l[N_STREAMED];
    block_linears (&m->towers[t].blocks[i], l);
    for (int k = 0; k < 2 * N_STREAMED; k++) {
      const OviTensor *w
          = k < N_STREAMED ? l[k]->w : l[k - N_STREAMED]->w->scale;
      if (w == NULL)
        continue;
      if (w->storage != s)
        return FALSE;
      lo = MIN (lo, w->offset);
      hi = MAX (hi, w->offset + ovi_tensor_nbytes (w));
    }
  }
  if (hi - lo > packed)
    return FALSE;
  for (int t = 0; t < OVI_N_TOWERS; t++) {
    OviLinear *l[N_STREAMED];
    block_linears (&m->towers[t].blocks[i], l);
    for (int k = 0; k < N_STREAMED; k++)
      if ((l[k]->w->offset - lo) % SLAB_ALIGN
          || (l[k]->w->scale && (l[k]->w->scale->offset - lo) % SLAB_ALIGN))
        return FALSE;
  }
  *storage = s;
  *start = lo;
  *bytes = hi - lo;
  return TRUE;
}

static void
slab_done (OviFusionStreamer *st, int i, OviStorage *slab, gsize offset,
           gsize bytes)
{
  st->slabs[i] = slab;
  st->slab_offset[i] = offset;
  st->slab_bytes[i] = bytes;
  st->slot_bytes = MAX (st->slot_bytes, bytes);
}

static gboolean
pack_block (OviFusion *m, OviFusionStreamer *st, int i, GError **error)
{
  gsize off = 0, bytes, span;
  gboolean pinned = FALSE;
  OviStorage *slab;
  guint64 budget = m->stream_budget;

  if (!slab_size (m, i, &bytes, error))
    return FALSE;
  if (mapped_span (m, i, bytes, &slab, &off, &span)) {
    slab_done (st, i, ovi_storage_ref (slab), off, span);
    st->stats.mapped_bytes += span;
    return TRUE;
  }
  if (budget == 0 || st->stats.pinned_bytes + bytes <= budget)
    slab = ovi_backend_new_pinned (st->be, bytes, &pinned, error);
  else
    slab = ovi_storage_new_host (bytes, error);
  if (slab == NULL)
    return FALSE;
  for (int t = 0; t < OVI_N_TOWERS; t++) {
    OviLinear *l[N_STREAMED];
    block_linears (&m->towers[t].blocks[i], l);
    for (int k = 0; k < N_STREAMED; k++) {
      OviTensor *w = pack_tensor (slab, &off, l[k]->w);
      if (l[k]->w->scale)
        w->scale = pack_tensor (slab, &off, l[k]->w->scale);
      replace_kept (m, &l[k]->w, w);
    }
  }
  slab_done (st, i, slab, 0, bytes);
  if (pinned)
    st->stats.pinned_bytes += bytes;
  else
    st->stats.pageable_bytes += bytes;
  return TRUE;
}

static OviFusionStreamer *
streamer_new (OviFusion *m, GError **error)
{
  g_autoptr (OviFusionStreamer) st = g_new0 (OviFusionStreamer, 1);

  st->be = m->be;
  st->n_blocks = m->dims.num_layers;
  st->slabs = g_new0 (OviStorage *, st->n_blocks);
  st->slab_offset = g_new0 (gsize, st->n_blocks);
  st->slab_bytes = g_new0 (gsize, st->n_blocks);
  st->holds[0] = st->holds[1] = -1;
  st->current = 1;
  for (int i = 0; i < st->n_blocks; i++)
    if (!pack_block (m, st, i, error))
      return NULL;
  for (int s = 0; s < 2; s++) {
    int64_t n = (int64_t) st->slot_bytes;
    st->views[s]
        = g_ptr_array_new_with_free_func ((GDestroyNotify) ovi_tensor_unref);
    st->slot[s] = ovi_backend_new_tensor (st->be, OVI_DTYPE_U8, 1, &n);
    if (st->slot[s] == NULL) {
      ovi_backend_sync (st->be, error); /* the allocation's error */
      return NULL;
    }
    if (!(st->copied[s] = ovi_backend_event_new (st->be, error))
        || !(st->computed[s] = ovi_backend_event_new (st->be, error)))
      return NULL;
    /* the first copy into a slot waits for its allocation */
    ovi_op_event_record (st->be, st->computed[s], OVI_BACKEND_QUEUE_COMPUTE);
  }
  st->stats.slot_bytes = st->slot_bytes;
  return g_steal_pointer (&st);
}

/* ---- the copies ---- */

static OviTensor *
slot_view (OviFusionStreamer *st, int s, int i, const OviTensor *host)
{
  OviTensor *v = ovi_tensor_new_on_storage (
      st->slot[s]->storage,
      st->slot[s]->offset + host->offset - st->slab_offset[i], host->dtype,
      host->ndim, host->shape, NULL);

  g_ptr_array_add (st->views[s], v);
  return v;
}

static void
point_slot_at (OviFusion *m, OviFusionStreamer *st, int s, int i)
{
  g_ptr_array_set_size (st->views[s], 0);
  for (int t = 0; t < OVI_N_TOWERS; t++) {
    OviFusionBlock *dst = &st->blocks[s][t];
    OviLinear *dl[N_STREAMED];

    *dst = m->towers[t].blocks[i]; /* resident parts as they are */
    block_linears (dst, dl);
    for (int k = 0; k < N_STREAMED; k++) {
      OviTensor *host = dl[k]->w;
      dl[k]->w = slot_view (st, s, i, host);
      if (host->scale)
        dl[k]->w->scale = ovi_tensor_ref (slot_view (st, s, i, host->scale));
    }
  }
}

/* block i into slot s on the copy queue, after the compute that used s */
static void
issue (OviFusion *m, OviFusionStreamer *st, int i, int s)
{
  int64_t n = (int64_t) st->slab_bytes[i];
  g_autoptr (OviTensor) src = ovi_tensor_new_on_storage (
      st->slabs[i], st->slab_offset[i], OVI_DTYPE_U8, 1, &n, NULL);
  g_autoptr (OviTensor) dst = ovi_tensor_narrow (st->slot[s], 0, 0, n);

  ovi_op_queue_wait (st->be, OVI_BACKEND_QUEUE_COPY, st->computed[s]);
  ovi_op_copy_async (st->be, OVI_BACKEND_QUEUE_COPY, dst, src);
  ovi_op_event_record (st->be, st->copied[s], OVI_BACKEND_QUEUE_COPY);
  point_slot_at (m, st, s, i);
  st->holds[s] = i;
  st->stats.copies++;
}

/* The slot's block as the model has it now (biases, gains, modulation and
 * LoRA adapters change between runs, and a prefetch may predate that),
 * with the streamed weights from the slot. */
static void
refresh_resident (OviFusion *m, OviFusionStreamer *st, int s, int i)
{
  for (int t = 0; t < OVI_N_TOWERS; t++) {
    OviFusionBlock *dst = &st->blocks[s][t];
    OviLinear *dl[N_STREAMED];
    OviTensor *w[N_STREAMED];

    block_linears (dst, dl);
    for (int k = 0; k < N_STREAMED; k++)
      w[k] = dl[k]->w;
    *dst = m->towers[t].blocks[i];
    for (int k = 0; k < N_STREAMED; k++)
      dl[k]->w = w[k];
  }
}

static int
slot_holding (const OviFusionStreamer *st, int i)
{
  return st->holds[0] == i ? 0 : st->holds[1] == i ? 1 : -1;
}

void
ovi_fusion_stream_begin (OviFusion *m, int i)
{
  OviFusionStreamer *st;
  GError *error = NULL;
  int cur, next = (i + 1) % m->dims.num_layers;

  if (m->streamer == NULL && (m->streamer = streamer_new (m, &error)) == NULL) {
    ovi_backend_set_error (m->be, error->domain, error->code, "%s",
                           error->message);
    g_error_free (error);
    return;
  }
  st = m->streamer;
  cur = slot_holding (st, i);
  if (cur < 0) {
    cur = 1 - st->current;
    issue (m, st, i, cur);
  }
  refresh_resident (m, st, cur, i);
  ovi_op_queue_wait (m->be, OVI_BACKEND_QUEUE_COMPUTE, st->copied[cur]);
  st->current = cur;
  if (next != i && slot_holding (st, next) < 0)
    issue (m, st, next, 1 - cur);
}

const OviFusionBlock *
ovi_fusion_stream_block (OviFusion *m, OviTower tower)
{
  OviFusionStreamer *st = m->streamer;

  return st && st->holds[st->current] >= 0 ? &st->blocks[st->current][tower]
                                           : NULL;
}

void
ovi_fusion_stream_end (OviFusion *m, int i)
{
  OviFusionStreamer *st = m->streamer;

  if (st && st->holds[st->current] == i)
    ovi_op_event_record (m->be, st->computed[st->current],
                         OVI_BACKEND_QUEUE_COMPUTE);
}

void
ovi_fusion_set_stream_budget (OviFusion *m, guint64 pinned_bytes)
{
  m->stream_budget = pinned_bytes;
}

void
ovi_fusion_get_stream_stats (const OviFusion *m, OviFusionStreamStats *stats)
{
  if (m->streamer)
    *stats = m->streamer->stats;
  else
    memset (stats, 0, sizeof *stats);
}
