/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the checked wrappers of the streaming entries (pinned host
 * memory, async copies, events; see ovi-backend.h). */
#include "ovi-backend-impl.h"

#include <string.h>

static gboolean
has_streaming (const OviBackend *be)
{
  const OviBackendOps *o = be->ops;

  return o->new_pinned_storage && o->copy_async && o->event_new && o->event_free
         && o->event_record && o->queue_wait;
}

#define NO_STREAMING "%s: the %s backend has no streaming entries"

OviStorage *
ovi_backend_new_pinned (OviBackend *be, gsize size, gboolean *pinned,
                        GError **error)
{
  GError *local = NULL;
  OviStorage *s = NULL;

  g_return_val_if_fail (be != NULL, NULL);
  if (be->ops->new_pinned_storage)
    s = be->ops->new_pinned_storage (be, size, &local);
  if (pinned)
    *pinned = s != NULL;
  if (s)
    return s;
  /* pageable memory still streams, only slower */
  g_clear_error (&local);
  return ovi_storage_new_host (size, error);
}

static gboolean
is_host_contiguous (const OviTensor *t)
{
  return t->storage->device.type == OVI_DEVICE_CPU
         && ovi_tensor_is_contiguous (t);
}

void
ovi_op_copy_async (OviBackend *be, OviBackendQueue queue, OviTensor *dst,
                   const OviTensor *src)
{
  const char *op = "ovi_op_copy_async";

  OVI_BACKEND_BEGIN_OP (be);
  if (!has_streaming (be)) {
    ovi_backend_set_error (be, OVI_ERROR, OVI_ERROR_BACKEND, NO_STREAMING, op,
                           be->ops->name);
    return;
  }
  if (dst == NULL || src == NULL) {
    ovi_backend_set_error (be, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                           "%s: %s is NULL", op, dst ? "src" : "dst");
    return;
  }
  if (!is_host_contiguous (src) || !ovi_tensor_is_contiguous (dst)
      || dst->storage->device.type != be->device.type
      || ovi_tensor_nbytes (dst) != ovi_tensor_nbytes (src)) {
    ovi_backend_set_error (
        be, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
        "%s: needs a contiguous host src and a contiguous dst on the %s "
        "backend of the same byte size (src %" G_GSIZE_FORMAT " bytes on %s, "
        "dst %" G_GSIZE_FORMAT " bytes)",
        op, be->ops->name, ovi_tensor_nbytes (src),
        src->storage->device.type == OVI_DEVICE_CPU ? "the host" : "a GPU",
        ovi_tensor_nbytes (dst));
    return;
  }
  be->ops->copy_async (be, queue, ovi_tensor_data (dst), ovi_tensor_data (src),
                       ovi_tensor_nbytes (src));
}

OviEvent *
ovi_backend_event_new (OviBackend *be, GError **error)
{
  g_return_val_if_fail (be != NULL, NULL);
  if (!has_streaming (be)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND, NO_STREAMING,
                 "ovi_backend_event_new", be->ops->name);
    return NULL;
  }
  return be->ops->event_new (be, error);
}

void
ovi_backend_event_free (OviBackend *be, OviEvent *event)
{
  g_return_if_fail (be != NULL);
  if (event)
    be->ops->event_free (be, event);
}

void
ovi_op_event_record (OviBackend *be, OviEvent *event, OviBackendQueue queue)
{
  OVI_BACKEND_BEGIN_OP (be);
  g_return_if_fail (event != NULL);
  be->ops->event_record (be, event, queue);
}

void
ovi_op_queue_wait (OviBackend *be, OviBackendQueue queue, OviEvent *event)
{
  OVI_BACKEND_BEGIN_OP (be);
  g_return_if_fail (event != NULL);
  be->ops->queue_wait (be, queue, event);
}
