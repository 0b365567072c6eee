/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the streaming entries of the CUDA backend (ovi-cuda-stream.c):
 * page-locked host memory, a copy stream beside the compute stream, and
 * events between them. */
#pragma once

#include "ovi-backend-impl.h"

G_BEGIN_DECLS

typedef struct _OviCudaStreaming OviCudaStreaming; /* CudaPriv.streaming */

/* waits for the copy stream and releases it (the backend's teardown) */
void ovi_cuda_streaming_free (OviCudaStreaming *s);

OviStorage *ovi_cuda_new_pinned_storage (OviBackend *be, gsize size,
                                         GError **error);
void ovi_cuda_copy_async (OviBackend *be, OviBackendQueue queue, void *dst,
                          const void *src, gsize n);
OviEvent *ovi_cuda_event_new (OviBackend *be, GError **error);
void ovi_cuda_event_free (OviBackend *be, OviEvent *event);
void ovi_cuda_event_record (OviBackend *be, OviEvent *event, OviBackendQueue queue);
void ovi_cuda_queue_wait (OviBackend *be, OviBackendQueue queue, OviEvent *event);

G_END_DECLS
