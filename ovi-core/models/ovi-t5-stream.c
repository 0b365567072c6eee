/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: umT5 streamed block by block (OviT5Streaming, ovi-t5.h).
 *
 * The pages the encoder holds of the weight file's mapping are tracked as
 * sorted, merged page spans: a block's weights, the rows of the prompt's
 * tokens, the final norm. Holding a set reads it ahead (MADV_WILLNEED);
 * releasing it unmaps the pages no other held set shares (MADV_DONTNEED).
 * The pages are clean page cache of a read-only mapping: unmapping loses
 * nothing, and the kernel may reclaim them under pressure or keep them for
 * the next prompt (no posix_fadvise: dropping them from the cache would
 * make every prompt read the whole file from disk again). The spans held
 * at once are what the text stage needs resident (the estimate's
 * host_mapped, ovi-placement.c); their peak is in OviT5StreamStats.
 */
#include "ovi-t5-private.h"

#include <string.h>
#include <unistd.h>

#define SLOT_ALIGN  256
#define ALIGN_UP(n) (((n) + SLOT_ALIGN - 1) & ~(gsize) (SLOT_ALIGN - 1))

typedef struct {
  uintptr_t lo, hi; /* page aligned, lo < hi */
} Span;

struct _T5Streamer {
  GArray **block_pages; /* [layers] pages of each block's mapped weights */
  GArray *norm_pages;
  GArray *held;
  OviT5StreamStats stats;
  /* SLOTS: two blocks' weights on the backend */
  gsize slot_bytes;
  OviTensor *slot[2];
  OviEvent *copied[2], *computed[2];
  T5Block view[2];
  GPtrArray *view_refs[2];
  int holds[2]; /* the block each slot holds, -1 none */
  int current;
};

/* ---- page spans ---- */

static int
span_cmp (gconstpointer a, gconstpointer b)
{
  const Span *x = a, *y = b;

  return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static GArray *
spans_new (void)
{
  return g_array_new (FALSE, FALSE, sizeof (Span));
}

/* sorted, overlapping and touching spans merged */
static void
spans_normalize (GArray *a)
{
  guint out = 0;

  g_array_sort (a, span_cmp);
  for (guint i = 0; i < a->len; i++) {
    Span s = g_array_index (a, Span, i);
    if (out > 0 && s.lo <= g_array_index (a, Span, out - 1).hi) {
      Span *last = &g_array_index (a, Span, out - 1);
      last->hi = MAX (last->hi, s.hi);
    } else {
      g_array_index (a, Span, out++) = s;
    }
  }
  g_array_set_size (a, out);
}

static void
spans_add_bytes (GArray *a, const void *data, gsize size)
{
  uintptr_t page = (uintptr_t) sysconf (_SC_PAGESIZE);
  Span s = { (uintptr_t) data & ~(page - 1),
             ((uintptr_t) data + size + page - 1) & ~(page - 1) };

  if (size > 0)
    g_array_append_val (a, s);
}

static void
spans_add (GArray *a, const GArray *b)
{
  g_array_append_vals (a, b->data, b->len);
  spans_normalize (a);
}

static guint64
spans_bytes (const GArray *a)
{
  guint64 n = 0;

  for (guint i = 0; i < a->len; i++)
    n += g_array_index (a, Span, i).hi - g_array_index (a, Span, i).lo;
  return n;
}

/* a minus b (both normalized), as a new normalized array */
static GArray *
spans_minus (const GArray *a, const GArray *b)
{
  GArray *out = spans_new ();
  guint j = 0;

  for (guint i = 0; i < a->len; i++) {
    Span s = g_array_index (a, Span, i);
    while (j < b->len && g_array_index (b, Span, j).hi <= s.lo)
      j++;
    for (guint k = j; k < b->len && s.lo < s.hi; k++) {
      const Span *c = &g_array_index (b, Span, k);
      if (c->lo >= s.hi)
        break;
      if (c->lo > s.lo) {
        Span left = { s.lo, c->lo };
        g_array_append_val (out, left);
      }
      s.lo = MAX (s.lo, c->hi);
    }
    if (s.lo < s.hi)
      g_array_append_val (out, s);
  }
  return out;
}

static void
spans_advise (const GArray *a, OviPagesAdvice advice)
{
  for (guint i = 0; i < a->len; i++) {
    const Span *s = &g_array_index (a, Span, i);
    ovi_mapped_pages_advise ((const void *) s->lo, s->hi - s->lo, advice);
  }
}

/* ---- holding and releasing pages ---- */

static void
hold (T5Streamer *st, const GArray *pages, gboolean read_ahead)
{
  if (read_ahead) {
    g_autoptr (GArray) fresh = spans_minus (pages, st->held);
    spans_advise (fresh, OVI_PAGES_WILLNEED);
  }
  spans_add (st->held, pages);
  st->stats.mapped_held = spans_bytes (st->held);
  st->stats.mapped_peak = MAX (st->stats.mapped_peak, st->stats.mapped_held);
}

/* unmaps `pages` but those of `keep` (nullable) */
static void
release (T5Streamer *st, const GArray *pages, const GArray *keep)
{
  g_autoptr (GArray) gone
      = keep ? spans_minus (pages, keep) : g_array_copy ((GArray *) pages);
  g_autoptr (GArray) rest = spans_minus (st->held, gone);

  spans_advise (gone, OVI_PAGES_DONTNEED);
  g_array_set_size (st->held, 0);
  g_array_append_vals (st->held, rest->data, rest->len);
  st->stats.mapped_held = spans_bytes (st->held);
}

/* ---- which weights may stream ---- */

static gboolean
is_host (const OviTensor *t)
{
  return t->storage->device.type == OVI_DEVICE_CPU;
}

static gboolean
in_mapping (const OviT5 *t5, const OviTensor *t)
{
  uintptr_t d = (uintptr_t) ovi_tensor_data (t);
  uintptr_t base = (uintptr_t) t5->map_base;

  /* MADV_DONTNEED zeroes any other memory: only the mapping's own bytes */
  return t5->map_base && is_host (t) && ovi_tensor_is_contiguous (t)
         && d >= base && d - base <= t5->map_size
         && ovi_tensor_nbytes (t) <= t5->map_size - (d - base);
}

static gboolean
backend_is_host (const OviT5 *t5)
{
  return ovi_backend_get_device (t5->be).type == OVI_DEVICE_CPU;
}

/* the tensors a mode streams: the embedding and every block's weights */
static gboolean
each_streamed (OviT5 *t5, gboolean (*ok) (const OviT5 *, const OviTensor *),
               const char **bad, int *bad_block)
{
  *bad_block = -1;
  *bad = "token_embedding.weight";
  if (!ok (t5, t5->embedding))
    return FALSE;
  for (int i = 0; i < t5->layers; i++) {
    static const char *const names[OVI_T5_BLOCK_TENSORS]
        = { "norm1", "attn.q",     "attn.k",  "attn.v", "attn.o",
            "norm2", "ffn.gate.0", "ffn.fc1", "ffn.fc2" };
    OviTensor **t[OVI_T5_BLOCK_TENSORS];
    ovi_t5_block_tensors (&t5->blocks[i], t);
    for (int k = 0; k < OVI_T5_BLOCK_TENSORS; k++)
      if (!ok (t5, *t[k]) && (k != 0 && k != 5)) {
        *bad = names[k];
        *bad_block = i;
        return FALSE;
      }
  }
  return TRUE;
}

static gboolean
readable_by_backend (const OviT5 *t5, const OviTensor *t)
{
  return is_host (t) == backend_is_host (t5);
}

static gboolean
host_contiguous (const OviT5 *t5, const OviTensor *t)
{
  return !is_host (t) || ovi_tensor_is_contiguous (t);
}

static gboolean
any_host_on_device_backend (OviT5 *t5)
{
  const char *bad;
  int blk;

  return !backend_is_host (t5)
         && !each_streamed (t5, readable_by_backend, &bad, &blk);
}

static const char *
mode_name (OviT5Streaming mode)
{
  return mode == OVI_T5_STREAM_NONE       ? "none"
         : mode == OVI_T5_STREAM_IN_PLACE ? "in-place"
                                          : "slots";
}

gboolean
ovi_t5_stream_check (OviT5 *t5, OviT5Streaming mode, GError **error)
{
  const char *bad = NULL, *why = NULL;
  int blk = -1;

  switch (mode) {
    case OVI_T5_STREAM_NONE:
      if (!each_streamed (t5, readable_by_backend, &bad, &blk))
        why = "is a host tensor the backend cannot read";
      break;
    case OVI_T5_STREAM_IN_PLACE:
      if (!backend_is_host (t5)) {
        g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                     "umT5 streaming in-place needs a backend computing in "
                     "host memory");
        return FALSE;
      } else if (!each_streamed (t5, in_mapping, &bad, &blk))
        why = "does not lie in the weight file's mapping";
      break;
    case OVI_T5_STREAM_SLOTS:
    default:
      if (!each_streamed (t5, host_contiguous, &bad, &blk))
        why = "is not a contiguous host tensor";
      break;
  }
  if (why == NULL)
    return TRUE;
  if (blk < 0)
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "umT5 streaming %s: %s %s", mode_name (mode), bad, why);
  else
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "umT5 streaming %s: blocks.%d.%s.weight %s", mode_name (mode),
                 blk, bad, why);
  return FALSE;
}

static T5Streamer *
streamer_new (OviT5 *t5)
{
  T5Streamer *st = g_new0 (T5Streamer, 1);
  g_autoptr (GArray) all = spans_new ();

  st->block_pages = g_new0 (GArray *, t5->layers);
  for (int i = 0; i < t5->layers; i++) {
    OviTensor **t[OVI_T5_BLOCK_TENSORS];
    st->block_pages[i] = spans_new ();
    ovi_t5_block_tensors (&t5->blocks[i], t);
    for (int k = 0; k < OVI_T5_BLOCK_TENSORS; k++)
      if (in_mapping (t5, *t[k]))
        spans_add_bytes (st->block_pages[i], ovi_tensor_data (*t[k]),
                         ovi_tensor_nbytes (*t[k]));
    spans_normalize (st->block_pages[i]);
    spans_add (all, st->block_pages[i]);
  }
  st->norm_pages = spans_new ();
  if (in_mapping (t5, t5->norm))
    spans_add_bytes (st->norm_pages, ovi_tensor_data (t5->norm),
                     ovi_tensor_nbytes (t5->norm));
  spans_normalize (st->norm_pages);
  spans_add (all, st->norm_pages);
  if (in_mapping (t5, t5->embedding))
    spans_add_bytes (all, ovi_tensor_data (t5->embedding),
                     ovi_tensor_nbytes (t5->embedding));
  spans_normalize (all);
  st->held = spans_new ();
  st->stats.mapped_total = spans_bytes (all);
  st->holds[0] = st->holds[1] = -1;
  st->current = 1;
  return st;
}

void
ovi_t5_stream_free (OviT5 *t5)
{
  T5Streamer *st = t5->streamer;

  if (st == NULL)
    return;
  /* a copy may still be in flight: the compute queue waits for it before
   * the slots go (as ovi-fusion-stream.c) */
  for (int s = 0; s < 2; s++)
    if (st->copied[s] && st->holds[s] >= 0)
      ovi_op_queue_wait (t5->be, OVI_BACKEND_QUEUE_COMPUTE, st->copied[s]);
  for (int s = 0; s < 2; s++) {
    g_clear_pointer (&st->view_refs[s], g_ptr_array_unref);
    g_clear_pointer (&st->slot[s], ovi_tensor_unref);
    ovi_backend_event_free (t5->be, st->copied[s]);
    ovi_backend_event_free (t5->be, st->computed[s]);
  }
  for (int i = 0; i < t5->layers; i++)
    g_array_unref (st->block_pages[i]);
  g_free (st->block_pages);
  g_array_unref (st->norm_pages);
  g_array_unref (st->held);
  g_free (st);
  t5->streamer = NULL;
}

OviT5Streaming
ovi_t5_stream_default (OviT5 *t5)
{
  const char *bad;
  int blk;

  if (t5->streamer == NULL)
    t5->streamer = streamer_new (t5);
  if (any_host_on_device_backend (t5))
    return OVI_T5_STREAM_SLOTS;
  if (backend_is_host (t5) && each_streamed (t5, in_mapping, &bad, &blk))
    return OVI_T5_STREAM_IN_PLACE;
  return OVI_T5_STREAM_NONE;
}

OviT5Streaming
ovi_t5_get_streaming (const OviT5 *t5)
{
  return t5->streaming;
}

gboolean
ovi_t5_set_streaming (OviT5 *t5, OviT5Streaming mode, GError **error)
{
  if (!ovi_t5_stream_check (t5, mode, error))
    return FALSE;
  if (mode != t5->streaming) {
    /* a fresh streamer: no slot or page held by the old mode */
    ovi_t5_stream_free (t5);
    t5->streamer = streamer_new (t5);
  }
  t5->streaming = mode;
  return TRUE;
}

void
ovi_t5_get_stream_stats (const OviT5 *t5, OviT5StreamStats *stats)
{
  *stats = t5->streamer->stats;
  stats->mode = t5->streaming;
  if (t5->streaming == OVI_T5_STREAM_NONE)
    stats->mapped_held = stats->mapped_peak = stats->mapped_total;
}

/* ---- the embedding: the prompt's rows only ---- */

static int
cmp_i64 (gconstpointer a, gconstpointer b)
{
  int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;

  return x < y ? -1 : x > y;
}

/* the distinct rows of `ids` copied into a [u, dim] host table, and ids
 * renumbered into it: the same rows, so the same embedding bit for bit */
static OviTensor *
gather_rows (OviT5 *t5, const int64_t *ids, int64_t n, int64_t *local)
{
  T5Streamer *st = t5->streamer;
  const OviTensor *emb = t5->embedding;
  gsize row = ovi_tensor_nbytes (emb) / (gsize) t5->vocab;
  g_autofree int64_t *uniq = g_memdup2 (ids, sizeof (int64_t) * (gsize) n);
  g_autoptr (GArray) pages = spans_new ();
  gboolean mapped = in_mapping (t5, emb);
  int64_t u = 0;

  qsort (uniq, (gsize) n, sizeof (int64_t), cmp_i64);
  for (int64_t i = 0; i < n; i++)
    if (u == 0 || uniq[u - 1] != uniq[i])
      uniq[u++] = uniq[i];
  const int64_t shape[2] = { u, t5->dim };
  OviTensor *table = ovi_tensor_new (emb->dtype, 2, shape, NULL);
  if (table == NULL)
    return NULL;
  const char *src = ovi_tensor_data (emb);
  for (int64_t r = 0; r < u && mapped; r++)
    spans_add_bytes (pages, src + uniq[r] * row, row);
  spans_normalize (pages);
  hold (st, pages, FALSE);
  for (int64_t r = 0; r < u; r++)
    memcpy ((char *) ovi_tensor_data (table) + r * row, src + uniq[r] * row,
            row);
  release (st, pages, NULL);
  for (int64_t i = 0; i < n; i++) {
    int64_t *at = bsearch (&ids[i], uniq, (gsize) u, sizeof (int64_t), cmp_i64);
    local[i] = at - uniq;
  }
  st->stats.embedding_rows = (guint64) u;
  return table;
}

void
ovi_t5_stream_embed (OviT5 *t5, OviTensor *x, const int64_t *ids, int64_t n)
{
  if (t5->streaming == OVI_T5_STREAM_NONE || !is_host (t5->embedding)) {
    ovi_op_embedding (t5->be, x, t5->embedding, ids, n);
    return;
  }
  g_autofree int64_t *local = g_new (int64_t, n);
  g_autoptr (OviTensor) host = gather_rows (t5, ids, n, local);
  g_autoptr (OviTensor) table = host ? ovi_backend_upload (t5->be, host) : NULL;
  if (table == NULL) {
    ovi_backend_set_error (
        t5->be, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
        "T5: out of memory for %" G_GINT64_FORMAT " embedding rows", n);
    return;
  }
  ovi_op_embedding (t5->be, x, table, local, n);
}

/* ---- SLOTS: two blocks on the backend ---- */

static gboolean
streams_tensor (const OviTensor *t)
{
  return is_host (t);
}

static gboolean
slots_new (OviT5 *t5, GError **error)
{
  T5Streamer *st = t5->streamer;

  for (int i = 0; i < t5->layers; i++) {
    OviTensor **t[OVI_T5_BLOCK_TENSORS];
    gsize bytes = 0;
    ovi_t5_block_tensors (&t5->blocks[i], t);
    for (int k = 0; k < OVI_T5_BLOCK_TENSORS; k++)
      if (streams_tensor (*t[k]))
        bytes += ALIGN_UP (ovi_tensor_nbytes (*t[k]));
    st->slot_bytes = MAX (st->slot_bytes, bytes);
  }
  for (int s = 0; s < 2; s++) {
    int64_t n = (int64_t) MAX (st->slot_bytes, 1);
    st->view_refs[s]
        = g_ptr_array_new_with_free_func ((GDestroyNotify) ovi_tensor_unref);
    st->slot[s] = ovi_backend_new_tensor (t5->be, OVI_DTYPE_U8, 1, &n);
    if (st->slot[s] == NULL) {
      if (ovi_backend_sync (t5->be, error))
        g_set_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                     "T5: no memory for a block slot of %" G_GSIZE_FORMAT
                     " bytes",
                     st->slot_bytes);
      return FALSE;
    }
    if (!(st->copied[s] = ovi_backend_event_new (t5->be, error))
        || !(st->computed[s] = ovi_backend_event_new (t5->be, error)))
      return FALSE;
    /* the first copy into a slot waits for its allocation */
    ovi_op_event_record (t5->be, st->computed[s], OVI_BACKEND_QUEUE_COMPUTE);
  }
  st->stats.slot_bytes = st->slot_bytes;
  return TRUE;
}

/* block i into slot s on the copy queue, after the compute that used s;
 * its host pages are released once copied (a copy from pageable memory
 * has read its source when it returns), block i+1's are read ahead */
static void
issue (OviT5 *t5, int i, int s)
{
  T5Streamer *st = t5->streamer;
  OviTensor **src[OVI_T5_BLOCK_TENSORS], **dst[OVI_T5_BLOCK_TENSORS];
  GArray *next = i + 1 < t5->layers ? st->block_pages[i + 1] : NULL;
  gsize off = 0;

  hold (st, st->block_pages[i], TRUE);
  if (next)
    hold (st, next, TRUE);
  ovi_op_queue_wait (t5->be, OVI_BACKEND_QUEUE_COPY, st->computed[s]);
  g_ptr_array_set_size (st->view_refs[s], 0);
  st->view[s] = t5->blocks[i];
  ovi_t5_block_tensors (&t5->blocks[i], src);
  ovi_t5_block_tensors (&st->view[s], dst);
  for (int k = 0; k < OVI_T5_BLOCK_TENSORS; k++) {
    const OviTensor *h = *src[k];
    if (!streams_tensor (h))
      continue;
    OviTensor *v = ovi_tensor_new_on_storage (
        st->slot[s]->storage, st->slot[s]->offset + off, h->dtype, h->ndim,
        h->shape, NULL);
    ovi_op_copy_async (t5->be, OVI_BACKEND_QUEUE_COPY, v, h);
    g_ptr_array_add (st->view_refs[s], v);
    *dst[k] = v;
    off += ALIGN_UP (ovi_tensor_nbytes (h));
  }
  ovi_op_event_record (t5->be, st->copied[s], OVI_BACKEND_QUEUE_COPY);
  release (st, st->block_pages[i], next);
  st->holds[s] = i;
  st->stats.copies++;
  st->stats.released++;
}

static int
slot_holding (const T5Streamer *st, int i)
{
  return st->holds[0] == i ? 0 : st->holds[1] == i ? 1 : -1;
}

static const T5Block *
slots_begin (OviT5 *t5, int i)
{
  T5Streamer *st = t5->streamer;
  GError *error = NULL;
  int cur;

  if (st->slot[0] == NULL && !slots_new (t5, &error)) {
    ovi_backend_set_error (t5->be, error->domain, error->code, "%s",
                           error->message);
    g_error_free (error);
    return &t5->blocks[i];
  }
  cur = slot_holding (st, i);
  if (cur < 0) {
    cur = 1 - st->current;
    issue (t5, i, cur);
  }
  ovi_op_queue_wait (t5->be, OVI_BACKEND_QUEUE_COMPUTE, st->copied[cur]);
  st->current = cur;
  if (i + 1 < t5->layers && slot_holding (st, i + 1) < 0)
    issue (t5, i + 1, 1 - cur);
  return &st->view[cur];
}

/* ---- the forward's hooks ---- */

void
ovi_t5_stream_start (OviT5 *t5)
{
  T5Streamer *st = t5->streamer;

  /* a cancelled forward may have left pages held */
  if (st->held->len > 0)
    release (st, st->held, NULL);
  st->stats.mapped_peak = 0;
  st->stats.embedding_rows = 0;
}

const T5Block *
ovi_t5_stream_block_begin (OviT5 *t5, int i)
{
  T5Streamer *st = t5->streamer;

  switch (t5->streaming) {
    case OVI_T5_STREAM_IN_PLACE:
      hold (st, st->block_pages[i], TRUE);
      if (i + 1 < t5->layers)
        hold (st, st->block_pages[i + 1], TRUE);
      return &t5->blocks[i];
    case OVI_T5_STREAM_SLOTS:
      return slots_begin (t5, i);
    case OVI_T5_STREAM_NONE:
    default:
      return &t5->blocks[i];
  }
}

void
ovi_t5_stream_block_end (OviT5 *t5, int i)
{
  T5Streamer *st = t5->streamer;

  if (t5->streaming == OVI_T5_STREAM_IN_PLACE) {
    release (st, st->block_pages[i],
             i + 1 < t5->layers ? st->block_pages[i + 1] : NULL);
    st->stats.released++;
  } else if (t5->streaming == OVI_T5_STREAM_SLOTS) {
    ovi_op_event_record (t5->be, st->computed[st->current],
                         OVI_BACKEND_QUEUE_COMPUTE);
  }
}

void
ovi_t5_stream_norm_begin (OviT5 *t5)
{
  if (t5->streaming == OVI_T5_STREAM_IN_PLACE)
    hold (t5->streamer, t5->streamer->norm_pages, FALSE);
}

void
ovi_t5_stream_norm_end (OviT5 *t5)
{
  if (t5->streaming == OVI_T5_STREAM_IN_PLACE)
    release (t5->streamer, t5->streamer->norm_pages, NULL);
}
