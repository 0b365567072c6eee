/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: GstMemory <-> OviTensor (see gstovitensor.h). */
#include "gstovitensor.h"

#include <string.h>

#include "ovi-error.h"

OviTensor *
gst_ovi_tensor_host_f32 (const OviTensor *t, GError **error)
{
  if (ovi_tensor_is_contiguous (t) && ovi_tensor_is_host (t)
      && t->dtype == OVI_DTYPE_F32)
    return ovi_tensor_ref ((OviTensor *) t);
  return ovi_tensor_to_f32 (t, error);
}

static void
unref_tensor (gpointer t)
{
  ovi_tensor_unref (t);
}

GstMemory *
gst_ovi_tensor_to_memory (OviTensor *t)
{
  gsize size = ovi_tensor_nbytes (t);

  return gst_memory_new_wrapped (GST_MEMORY_FLAG_READONLY, ovi_tensor_data (t),
                                 size, 0, size, ovi_tensor_ref (t),
                                 unref_tensor);
}

typedef struct {
  GstMemory *memory;
  GstMapInfo map;
} MappedMemory;

static void
unmap_memory (gpointer data)
{
  MappedMemory *m = data;

  gst_memory_unmap (m->memory, &m->map);
  gst_memory_unref (m->memory);
  g_free (m);
}

OviTensor *
gst_ovi_buffer_map_tensor (GstBuffer *buffer, guint idx, int ndim,
                           const int64_t *shape, GError **error)
{
  const OviDevice cpu = { OVI_DEVICE_CPU, 0 };
  int64_t dims[OVI_MAX_DIMS], stride[OVI_MAX_DIMS], row = sizeof (float);
  MappedMemory *m;
  OviStorage *st;
  OviTensor *t;
  int i;

  g_return_val_if_fail (ndim >= 1 && ndim <= OVI_MAX_DIMS, NULL);
  if (idx >= gst_buffer_n_memory (buffer)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "the buffer has %u memories, memory %u was expected",
                 gst_buffer_n_memory (buffer), idx);
    return NULL;
  }
  m = g_new0 (MappedMemory, 1);
  m->memory = gst_memory_ref (gst_buffer_peek_memory (buffer, idx));
  if (!gst_memory_map (m->memory, &m->map, GST_MAP_READ)) {
    gst_memory_unref (m->memory);
    g_free (m);
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO, "could not map memory %u",
                 idx);
    return NULL;
  }
  for (i = 1; i < ndim; i++)
    row *= shape[i];
  memcpy (dims, shape, ndim * sizeof (int64_t));
  if (dims[0] < 0 && row > 0 && m->map.size % row == 0)
    dims[0] = m->map.size / row;
  if (dims[0] <= 0 || (gsize) (dims[0] * row) != m->map.size) {
    g_autofree gchar *s = ovi_shape_to_string (ndim, shape);
    g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                 "memory %u has %" G_GSIZE_FORMAT " bytes, which is no F32 "
                 "tensor of shape %s",
                 idx, m->map.size, s);
    unmap_memory (m);
    return NULL;
  }
  st = ovi_storage_new_wrapped (m->map.data, m->map.size, cpu, unmap_memory, m);
  ovi_contiguous_strides (ndim, dims, stride);
  t = ovi_tensor_new_on_storage (st, 0, OVI_DTYPE_F32, ndim, dims, stride);
  ovi_storage_unref (st);
  return t;
}
