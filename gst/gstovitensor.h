/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: GstMemory <-> OviTensor, without copies where the data allows.
 *
 * Tensors leave the elements as read-only GstMemory wrapping the tensor's
 * host data (the memory holds a tensor reference), and come in as tensors
 * whose storage keeps the GstMemory mapped (the tensor holds the map and a
 * memory reference), so neither side outlives the other's data. */
#pragma once

#include <gst/gst.h>

#include "ovi-tensor.h"

G_BEGIN_DECLS

/* `t` as contiguous host F32: a new reference to `t` when it is already,
 * else a converted copy; NULL with `error` set on failure. */
OviTensor *gst_ovi_tensor_host_f32 (const OviTensor *t, GError **error);

/* A read-only memory over the data of `t`, a contiguous host tensor
 * (takes a reference on `t`). */
GstMemory *gst_ovi_tensor_to_memory (OviTensor *t);

/* Memory `idx` of `buffer` mapped for reading as an F32 tensor of `ndim`
 * dimensions and `shape`; shape[0] may be -1: as many rows as the size
 * holds (at least one, a whole number). NULL with `error` naming the sizes
 * when the memory does not match. */
OviTensor *gst_ovi_buffer_map_tensor (GstBuffer *buffer, guint idx, int ndim,
                                      const int64_t *shape, GError **error);

G_END_DECLS
