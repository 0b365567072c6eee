/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: weights used in place by the CUDA backend (the op table's
 * host_view, ovi_backend_upload_weight), for unified-memory devices.
 *
 * A device that reads pageable host memory (cudaDevAttrPageableMemoryAccess:
 * GH200/GB200 over NVLink-C2C, and integrated parts that have it) is handed
 * the host address itself. Otherwise the whole host storage (the weight
 * file's read-only mapping, or our one host allocation), widened to page
 * bounds, is registered once with cudaHostRegister (mapped, portable, and
 * read-only where the device supports it: the mapping is PROT_READ) and
 * the device address comes from cudaHostGetDevicePointer; it is
 * unregistered when the last device tensor using it goes. Either way a
 * device tensor keeps the host storage alive and, when it goes, waits for
 * the stream that may still read it.
 *
 * Every refusal (no mapping support, a registration the driver refuses,
 * ENOMEM when pinning) returns NULL with the reason: the caller copies
 * instead and says so once. $OVI_CUDA_HOST_VIEW=register takes the
 * registration path even where pageable access would serve (the GPU test
 * uses it on a discrete card), =off never views. */
#include "ovi-cuda-private.h"

#include <string.h>
#include <unistd.h>

/* pointers the kernels read as vectors: views must keep the alignment of
 * the pool's blocks at least this far */
#define VIEW_ALIGN 16

typedef struct {
  OviStorage *host; /* ref */
  int device;       /* the device current when it was registered */
  char *base;       /* page-aligned start of the registered range */
  gsize len;
  int refs; /* device storages using it; under registry_lock */
} Registration;

/* host storage -> Registration: a range can be registered only once per
 * process, whichever backend asks */
static GMutex registry_lock;
static GHashTable *registry;

typedef struct {
  CudaPriv *priv; /* ref: the stream to wait for */
  OviStorage *host;
  Registration *reg; /* NULL on the pageable path */
} View;

static gboolean
view_failed (GError **error, const char *what, cudaError_t e)
{
  cudaGetLastError ();
  g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND, "%s failed: %s (%s)", what,
               cudaGetErrorName (e), cudaGetErrorString (e));
  return FALSE;
}

void
ovi_cuda_in_place_setup (CudaPriv *p)
{
  const char *env = g_getenv ("OVI_CUDA_HOST_VIEW");

  p->view_pageable = ovi_cuda_attribute (cudaDevAttrPageableMemoryAccess, p->device);
  p->view_map = ovi_cuda_attribute (cudaDevAttrCanMapHostMemory, p->device)
                && ovi_cuda_attribute (cudaDevAttrHostRegisterSupported, p->device);
  p->view_read_only
      = ovi_cuda_attribute (cudaDevAttrHostRegisterReadOnlySupported, p->device);
  if (g_strcmp0 (env, "register") == 0)
    p->view_pageable = FALSE;
  else if (g_strcmp0 (env, "off") == 0)
    p->view_pageable = p->view_map = FALSE;
}

static void
registration_unref (Registration *r)
{
  gboolean last;

  g_mutex_lock (&registry_lock);
  last = --r->refs == 0;
  if (last)
    g_hash_table_remove (registry, r->host);
  g_mutex_unlock (&registry_lock);
  if (!last)
    return;
  ovi_cuda_warn_if_failed ("cudaSetDevice", cudaSetDevice (r->device));
  ovi_cuda_warn_if_failed ("cudaHostUnregister", cudaHostUnregister (r->base));
  ovi_storage_unref (r->host);
  g_free (r);
}

/* the registration of `host` (a new reference), registering it first */
static Registration *
registration_get (CudaPriv *p, OviStorage *host, GError **error)
{
  gsize page = (gsize) sysconf (_SC_PAGESIZE);
  guintptr start = (guintptr) host->data & ~(guintptr) (page - 1);
  guintptr end = ((guintptr) host->data + host->size + page - 1)
                 & ~(guintptr) (page - 1);
  unsigned flags = cudaHostRegisterMapped | cudaHostRegisterPortable
                   | (p->view_read_only ? cudaHostRegisterReadOnly : 0);
  Registration *r;
  cudaError_t e;

  g_mutex_lock (&registry_lock);
  if (registry == NULL)
    registry = g_hash_table_new (NULL, NULL);
  r = g_hash_table_lookup (registry, host);
  if (r) {
    r->refs++;
    g_mutex_unlock (&registry_lock);
    return r;
  }
  e = cudaHostRegister ((void *) start, end - start, flags);
  if (e != cudaSuccess) {
    g_mutex_unlock (&registry_lock);
    view_failed (error,
                 p->view_read_only ? "cudaHostRegister (mapped, read-only)"
                                   : "cudaHostRegister (mapped; the device "
                                     "has no read-only registration)",
                 e);
    return NULL;
  }
  r = g_new0 (Registration, 1);
  r->host = ovi_storage_ref (host);
  r->device = p->device;
  r->base = (char *) start;
  r->len = end - start;
  r->refs = 1;
  g_hash_table_insert (registry, host, r);
  g_mutex_unlock (&registry_lock);
  return r;
}

static void
view_release (gpointer data)
{
  View *v = data;

  /* kernels enqueued on the stream may still read the host bytes */
  ovi_cuda_warn_if_failed ("cudaSetDevice", cudaSetDevice (v->priv->device));
  ovi_cuda_warn_if_failed ("cudaStreamSynchronize",
                           cudaStreamSynchronize (v->priv->stream));
  if (v->reg)
    registration_unref (v->reg);
  ovi_storage_unref (v->host);
  ovi_cuda_priv_unref (v->priv);
  g_free (v);
}

/* the device address of `host`'s first byte through its registration */
static char *
registered_address (Registration *r, OviStorage *host, GError **error)
{
  void *dev = NULL;
  cudaError_t e = cudaHostGetDevicePointer (&dev, r->base, 0);

  if (e != cudaSuccess) {
    view_failed (error, "cudaHostGetDevicePointer", e);
    return NULL;
  }
  return (char *) dev + ((char *) host->data - r->base);
}

OviTensor *
ovi_cuda_host_view (OviBackend *be, OviTensor *t, GError **error)
{
  CudaPriv *p = ovi_cuda_priv (be);
  OviStorage *host = t->storage, *dev_storage;
  Registration *reg = NULL;
  char *addr;
  cudaError_t e;
  View *v;

  if (!p->view_pageable && !p->view_map) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND,
                 "device %d reads neither pageable host memory nor mapped "
                 "registered memory",
                 p->device);
    return NULL;
  }
  if (((guintptr) ovi_tensor_data (t)) % VIEW_ALIGN != 0) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND,
                 "a weight's bytes are not %d-byte aligned in its file",
                 VIEW_ALIGN);
    return NULL;
  }
  e = cudaSetDevice (p->device);
  if (e != cudaSuccess) {
    view_failed (error, "cudaSetDevice", e);
    return NULL;
  }
  if (p->view_pageable) {
    addr = host->data;
  } else {
    reg = registration_get (p, host, error);
    if (reg == NULL)
      return NULL;
    addr = registered_address (reg, host, error);
    if (addr == NULL) {
      registration_unref (reg);
      return NULL;
    }
  }
  v = g_new0 (View, 1);
  v->priv = p;
  g_atomic_int_inc (&p->ref_count);
  v->host = ovi_storage_ref (host);
  v->reg = reg;
  dev_storage = ovi_storage_new_wrapped (addr, host->size, be->device,
                                         view_release, v);
  OviTensor *out = ovi_tensor_new_on_storage (dev_storage, t->offset, t->dtype,
                                              t->ndim, t->shape, t->stride);
  ovi_storage_unref (dev_storage);
  return out;
}
