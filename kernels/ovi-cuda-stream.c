/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: streaming entries of the CUDA backend (see ovi-cuda-stream.h).
 *
 * Pinned storages come from cudaHostAlloc (portable: any context may DMA
 * from them), so a copy from them is a DMA the copy engine runs while the
 * compute stream works. The copy stream is created on first use, non
 * blocking against the legacy default stream, at the lowest priority so a
 * prefetch never delays a kernel. Events are timing-free (cheapest).
 *
 * A copy on the copy stream from pageable memory (a weight file's mapping)
 * goes through two pinned staging buffers of half OVI_STREAM_STAGING_BYTES
 * each: per chunk, a host function on the stream copies it into a buffer
 * (the driver's callback thread, so the caller does not wait, and page
 * faults on the mapping are taken there), then a DMA from that buffer. The
 * stream's order keeps a buffer until its DMA is done. cudaMemcpyAsync from
 * pageable memory would instead wait for the stream first (a host sync
 * behind the previous block's compute). */
#include "ovi-cuda-stream.h"

#include "ovi-cuda-private.h"

#include <string.h>

#define STAGE_CHUNK (OVI_STREAM_STAGING_BYTES / 2)

struct _OviCudaStreaming {
  int device;
  cudaStream_t copy;
  char *stage[2]; /* pinned, STAGE_CHUNK each, lazily */
  int next;
};

struct _OviEvent {
  cudaEvent_t event;
};

static gboolean
check (OviBackend *be, const char *what, cudaError_t e)
{
  if (e == cudaSuccess)
    return TRUE;
  cudaGetLastError ();
  ovi_backend_set_error (be, OVI_ERROR, OVI_ERROR_BACKEND, "%s: %s (%s)",
                         what, cudaGetErrorString (e), cudaGetErrorName (e));
  return FALSE;
}

/* the stream of `queue`, creating the copy stream on first use */
static cudaStream_t
stream_of (OviBackend *be, OviBackendQueue queue, gboolean *ok)
{
  CudaPriv *p = ovi_cuda_priv (be);
  int lowest = 0, highest = 0;

  *ok = check (be, "cudaSetDevice", cudaSetDevice (p->device));
  if (!*ok || queue == OVI_BACKEND_QUEUE_COMPUTE)
    return p->stream;
  if (p->streaming == NULL) {
    OviCudaStreaming *s = g_new0 (OviCudaStreaming, 1);
    s->device = p->device;
    cudaDeviceGetStreamPriorityRange (&lowest, &highest);
    *ok = check (be, "cudaStreamCreateWithPriority (copy stream)",
                 cudaStreamCreateWithPriority (&s->copy, cudaStreamNonBlocking,
                                               lowest));
    if (!*ok) {
      g_free (s);
      return NULL;
    }
    p->streaming = s;
  }
  return p->streaming->copy;
}

void
ovi_cuda_streaming_free (OviCudaStreaming *s)
{
  if (s == NULL)
    return;
  cudaSetDevice (s->device);
  cudaStreamSynchronize (s->copy);
  cudaStreamDestroy (s->copy);
  for (int i = 0; i < 2; i++)
    if (s->stage[i])
      cudaFreeHost (s->stage[i]);
  g_free (s);
}

static void
release_pinned (gpointer data)
{
  cudaFreeHost (data);
}

OviStorage *
ovi_cuda_new_pinned_storage (OviBackend *be, gsize size, GError **error)
{
  void *ptr = NULL;
  cudaError_t e = cudaHostAlloc (&ptr, MAX (size, 1), cudaHostAllocPortable);
  OviDevice host = { OVI_DEVICE_CPU, 0 };

  if (e != cudaSuccess) {
    cudaGetLastError ();
    g_set_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                 "cudaHostAlloc of %" G_GSIZE_FORMAT " bytes failed: %s", size,
                 cudaGetErrorString (e));
    return NULL;
  }
  return ovi_storage_new_wrapped (ptr, size, host, release_pinned, ptr);
}

static gboolean
is_pageable (const void *p)
{
  struct cudaPointerAttributes a;

  if (cudaPointerGetAttributes (&a, p) != cudaSuccess) {
    cudaGetLastError ();
    return TRUE;
  }
  return a.type == cudaMemoryTypeUnregistered;
}

typedef struct {
  void *dst;
  const void *src;
  gsize n;
} HostCopy;

static void CUDART_CB
host_copy (void *data)
{
  HostCopy *c = data;

  memcpy (c->dst, c->src, c->n);
  g_free (c);
}

/* n bytes of pageable `src` to `dst` on the copy stream, chunk by chunk
 * through the staging buffers */
static void
copy_staged (OviBackend *be, OviCudaStreaming *st, char *dst, const char *src,
             gsize n)
{
  for (int i = 0; i < 2; i++)
    if (st->stage[i] == NULL
        && !check (be, "cudaHostAlloc (staging)",
                   cudaHostAlloc ((void **) &st->stage[i], STAGE_CHUNK,
                                  cudaHostAllocPortable)))
      return;
  for (gsize off = 0; off < n; off += STAGE_CHUNK) {
    HostCopy *c = g_new (HostCopy, 1);
    char *buf = st->stage[st->next];
    gsize len = MIN (STAGE_CHUNK, n - off);

    st->next = 1 - st->next;
    *c = (HostCopy) { buf, src + off, len }; /* the callback frees it */
    if (!check (be, "cudaLaunchHostFunc (staging copy)",
                cudaLaunchHostFunc (st->copy, host_copy, c))) {
      g_free (c);
      return;
    }
    if (!check (be, "cudaMemcpyAsync (staged host to device)",
                cudaMemcpyAsync (dst + off, buf, len, cudaMemcpyHostToDevice,
                                 st->copy)))
      return;
  }
}

void
ovi_cuda_copy_async (OviBackend *be, OviBackendQueue queue, void *dst,
                     const void *src, gsize n)
{
  gboolean ok;
  cudaStream_t s = stream_of (be, queue, &ok);

  if (!ok)
    return;
  if (queue == OVI_BACKEND_QUEUE_COPY && is_pageable (src)) {
    copy_staged (be, ovi_cuda_priv (be)->streaming, dst, src, n);
    return;
  }
  check (be, "cudaMemcpyAsync (host to device)",
         cudaMemcpyAsync (dst, src, n, cudaMemcpyHostToDevice, s));
}

OviEvent *
ovi_cuda_event_new (OviBackend *be, GError **error)
{
  OviEvent *ev = g_new0 (OviEvent, 1);
  cudaError_t e = cudaSetDevice (ovi_cuda_priv (be)->device);

  if (e == cudaSuccess)
    e = cudaEventCreateWithFlags (&ev->event, cudaEventDisableTiming);
  if (e != cudaSuccess) {
    cudaGetLastError ();
    g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND,
                 "cudaEventCreateWithFlags: %s", cudaGetErrorString (e));
    g_free (ev);
    return NULL;
  }
  return ev;
}

void
ovi_cuda_event_free (OviBackend *be, OviEvent *event)
{
  cudaEventDestroy (event->event);
  g_free (event);
}

void
ovi_cuda_event_record (OviBackend *be, OviEvent *event, OviBackendQueue queue)
{
  gboolean ok;
  cudaStream_t s = stream_of (be, queue, &ok);

  if (ok)
    check (be, "cudaEventRecord", cudaEventRecord (event->event, s));
}

void
ovi_cuda_queue_wait (OviBackend *be, OviBackendQueue queue, OviEvent *event)
{
  gboolean ok;
  cudaStream_t s = stream_of (be, queue, &ok);

  if (ok)
    check (be, "cudaStreamWaitEvent",
           cudaStreamWaitEvent (s, event->event, 0));
}
