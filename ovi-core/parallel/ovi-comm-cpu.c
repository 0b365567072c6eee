/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the in-process communicator (see ovi-comm.h): ranks are threads
 * of one process, each with its own CPU backend, and a collective is a
 * rendezvous: every rank posts its buffers, waits for the others, copies
 * what it needs straight out of its peers' buffers, and waits again so no
 * buffer is reused while a peer still reads it. */
#include "ovi-comm.h"

#include <string.h>

typedef struct {
  gint ref_count;
  int size;
  GMutex lock;
  GCond cond;
  int arrived;
  guint64 generation;
  gboolean aborted;
  const void **send; /* [size] buffers posted for the current collective */
} CpuGroup;

static void
group_unref (CpuGroup *g)
{
  if (!g_atomic_int_dec_and_test (&g->ref_count))
    return;
  g_mutex_clear (&g->lock);
  g_cond_clear (&g->cond);
  g_free (g->send);
  g_free (g);
}

/* FALSE when the group was aborted (before or while waiting) */
static gboolean
barrier (CpuGroup *g)
{
  gboolean ok;

  g_mutex_lock (&g->lock);
  guint64 gen = g->generation;
  if (!g->aborted && ++g->arrived == g->size) {
    g->arrived = 0;
    g->generation++;
    g_cond_broadcast (&g->cond);
  } else {
    while (!g->aborted && g->generation == gen)
      g_cond_wait (&g->cond, &g->lock);
  }
  ok = !g->aborted;
  g_mutex_unlock (&g->lock);
  return ok;
}

static CpuGroup *
group_of (OviComm *c)
{
  return c->priv;
}

static void
record_abort (OviComm *c, const char *op)
{
  ovi_backend_set_error (c->be, OVI_ERROR, OVI_ERROR_ABORTED,
                         "rank %d of %d: %s skipped, the parallel group was "
                         "aborted (another rank failed)",
                         c->rank, c->size, op);
}

/* posts `send`, waits for every rank, runs copy(), waits again */
static void
collective (OviComm *c, const char *op, const void *send,
            void (*copy) (OviComm *c, gpointer data), gpointer data)
{
  CpuGroup *g = group_of (c);

  g->send[c->rank] = send;
  if (!barrier (g)) {
    record_abort (c, op);
    return;
  }
  copy (c, data);
  if (!barrier (g))
    record_abort (c, op);
}

typedef struct {
  char *recv;
  gsize chunk;
  int root;
} CopyArgs;

static void
copy_all_to_all (OviComm *c, gpointer data)
{
  CopyArgs *a = data;
  CpuGroup *g = group_of (c);

  for (int q = 0; q < c->size; q++)
    memcpy (a->recv + q * a->chunk,
            (const char *) g->send[q] + c->rank * a->chunk, a->chunk);
}

static void
copy_all_gather (OviComm *c, gpointer data)
{
  CopyArgs *a = data;
  CpuGroup *g = group_of (c);

  for (int q = 0; q < c->size; q++)
    if (a->recv + q * a->chunk != g->send[q])
      memcpy (a->recv + q * a->chunk, g->send[q], a->chunk);
}

static void
copy_broadcast (OviComm *c, gpointer data)
{
  CopyArgs *a = data;
  CpuGroup *g = group_of (c);

  if (c->rank != a->root)
    memcpy (a->recv, g->send[a->root], a->chunk);
}

static void
cpu_all_to_all (OviComm *c, OviTensor *recv, const OviTensor *send)
{
  CopyArgs a = { ovi_tensor_data (recv), ovi_tensor_nbytes (send) / c->size };
  collective (c, "all-to-all", ovi_tensor_data (send), copy_all_to_all, &a);
}

static void
cpu_all_gather (OviComm *c, OviTensor *recv, const OviTensor *send)
{
  CopyArgs a = { ovi_tensor_data (recv), ovi_tensor_nbytes (send) };
  collective (c, "all-gather", ovi_tensor_data (send), copy_all_gather, &a);
}

static void
cpu_broadcast (OviComm *c, OviTensor *buf, int root)
{
  CopyArgs a = { ovi_tensor_data (buf), ovi_tensor_nbytes (buf), root };
  collective (c, "broadcast", ovi_tensor_data (buf), copy_broadcast, &a);
}

static void
cpu_abort (OviComm *c)
{
  CpuGroup *g = group_of (c);

  g_mutex_lock (&g->lock);
  g->aborted = TRUE;
  g_cond_broadcast (&g->cond);
  g_mutex_unlock (&g->lock);
}

static gboolean
cpu_aborted (OviComm *c)
{
  CpuGroup *g = group_of (c);
  gboolean aborted;

  g_mutex_lock (&g->lock);
  aborted = g->aborted;
  g_mutex_unlock (&g->lock);
  return aborted;
}

static void
cpu_free (OviComm *c)
{
  group_unref (group_of (c));
  g_free (c);
}

static const OviCommOps cpu_comm_ops = {
  .name = "cpu",
  .all_to_all = cpu_all_to_all,
  .all_gather = cpu_all_gather,
  .broadcast = cpu_broadcast,
  .abort = cpu_abort,
  .aborted = cpu_aborted,
  .free = cpu_free,
};

OviComm **
ovi_comm_cpu_group_new (int size, OviBackend **backends)
{
  CpuGroup *g = g_new0 (CpuGroup, 1);
  OviComm **comms = g_new0 (OviComm *, size);

  g->ref_count = size;
  g->size = size;
  g->send = g_new0 (const void *, size);
  g_mutex_init (&g->lock);
  g_cond_init (&g->cond);
  for (int r = 0; r < size; r++) {
    comms[r] = g_new0 (OviComm, 1);
    *comms[r] = (OviComm){ .ops = &cpu_comm_ops,
                           .rank = r,
                           .size = size,
                           .be = backends[r],
                           .priv = g };
  }
  return comms;
}
