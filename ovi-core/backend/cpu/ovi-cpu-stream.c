/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the streaming entries of the CPU backend. Its memory is host
 * memory and it runs one queue: "pinned" memory is ordinary host memory,
 * a copy is a memcpy done before it returns, and events have nothing to
 * order (each remembers only that it was recorded). */
#include "ovi-backend-impl.h"

#include <string.h>

void ovi_cpu_register_stream_ops (OviBackendOps *ops);

struct _OviEvent {
  gboolean recorded;
};

static OviStorage *
cpu_new_pinned_storage (OviBackend *be, gsize size, GError **error)
{
  return ovi_storage_new_host (size, error);
}

static void
cpu_copy_async (OviBackend *be, OviBackendQueue queue, void *dst,
                const void *src, gsize n)
{
  memcpy (dst, src, n);
}

static OviEvent *
cpu_event_new (OviBackend *be, GError **error)
{
  return g_new0 (OviEvent, 1);
}

static void
cpu_event_free (OviBackend *be, OviEvent *event)
{
  g_free (event);
}

static void
cpu_event_record (OviBackend *be, OviEvent *event, OviBackendQueue queue)
{
  event->recorded = TRUE;
}

static void
cpu_queue_wait (OviBackend *be, OviBackendQueue queue, OviEvent *event)
{
}

void
ovi_cpu_register_stream_ops (OviBackendOps *ops)
{
  ops->new_pinned_storage = cpu_new_pinned_storage;
  ops->copy_async = cpu_copy_async;
  ops->event_new = cpu_event_new;
  ops->event_free = cpu_event_free;
  ops->event_record = cpu_event_record;
  ops->queue_wait = cpu_queue_wait;
}
