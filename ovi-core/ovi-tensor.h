/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the tensor type shared by every layer of the engine.
 *
 * A tensor is a dtype, a shape, strides (in elements) and a reference to a
 * storage block on some device. Views share the storage. Shapes are written
 * in PyTorch order (outermost first), so a tensor read from a checkpoint has
 * the shape the checkpoint states. Quantised weights (F8_E4M3, I8) may carry a
 * `scale` tensor: value = raw * scale[i0] (per output channel over dim 0), or
 * raw * scale[0] when the scale has one element.
 */
#pragma once

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

typedef enum {
  OVI_DTYPE_F32,
  OVI_DTYPE_F16,
  OVI_DTYPE_BF16,
  OVI_DTYPE_F8_E4M3,
  OVI_DTYPE_I8,
  OVI_DTYPE_F64,
  OVI_DTYPE_I64,
  OVI_DTYPE_I32,
  OVI_DTYPE_U8,
  OVI_DTYPE_BOOL,
  OVI_N_DTYPES
} OviDType;

typedef enum {
  OVI_DEVICE_CPU,
  OVI_DEVICE_CUDA,
} OviDeviceType;

typedef struct {
  OviDeviceType type;
  int index;
} OviDevice;

#define OVI_MAX_DIMS 8

typedef struct _OviStorage OviStorage;
typedef struct _OviTensor OviTensor;

/* A block of memory that tensors point into. `release` frees it (or unmaps
 * a file, or returns it to a backend pool) when the last reference goes. */
struct _OviStorage {
  gint ref_count;
  void *data;
  gsize size;
  OviDevice device;
  GDestroyNotify release;
  gpointer release_data;
};

struct _OviTensor {
  gint ref_count;
  OviDType dtype;
  int ndim;
  int64_t shape[OVI_MAX_DIMS];
  int64_t stride[OVI_MAX_DIMS]; /* in elements, not bytes */
  OviStorage *storage;
  gsize offset;     /* bytes from storage->data to element [0,...,0] */
  OviTensor *scale; /* dequantisation scale for F8_E4M3 / I8, else NULL */
};

/* dtypes */
gsize ovi_dtype_size (OviDType dtype);
const char *
ovi_dtype_name (OviDType dtype); /* safetensors names: "F32", "BF16", ... */
gboolean ovi_dtype_from_name (const char *name, OviDType *dtype);
gboolean ovi_dtype_is_float (OviDType dtype);

/* scalar conversions (round to nearest even; F8_E4M3 saturates to +-448) */
float ovi_bf16_to_f32 (uint16_t v);
uint16_t ovi_f32_to_bf16 (float f);
float ovi_f16_to_f32 (uint16_t v);
uint16_t ovi_f32_to_f16 (float f);
float ovi_f8e4m3_to_f32 (uint8_t v);
uint8_t ovi_f32_to_f8e4m3 (float f);

/* storage */
OviStorage *ovi_storage_new_host (gsize size,
                                  GError **error); /* 64-byte aligned, zeroed */
OviStorage *ovi_storage_new_wrapped (void *data, gsize size, OviDevice device,
                                     GDestroyNotify release,
                                     gpointer release_data);
OviStorage *ovi_storage_ref (OviStorage *storage);
void ovi_storage_unref (OviStorage *storage);

/* tensors */
OviTensor *ovi_tensor_new (OviDType dtype, int ndim, const int64_t *shape,
                           GError **error); /* contiguous, host, zeroed */
OviTensor *ovi_tensor_new_f32 (
    int ndim,
    const int64_t *shape); /* aborts only on OOM of tiny sizes: tests */
OviTensor *ovi_tensor_new_on_storage (OviStorage *storage, gsize offset,
                                      OviDType dtype, int ndim,
                                      const int64_t *shape,
                                      const int64_t *stride);
OviTensor *ovi_tensor_ref (OviTensor *t);
void ovi_tensor_unref (OviTensor *t);

static inline void *
ovi_tensor_data (const OviTensor *t)
{
  return (char *) t->storage->data + t->offset;
}

int64_t ovi_tensor_numel (const OviTensor *t);
gsize ovi_tensor_nbytes (const OviTensor *t); /* numel * dtype size */
gboolean ovi_tensor_is_contiguous (const OviTensor *t);
gboolean ovi_tensor_is_host (const OviTensor *t);
gboolean ovi_tensor_has_shape (const OviTensor *t, int ndim,
                               const int64_t *shape);
void ovi_contiguous_strides (int ndim, const int64_t *shape, int64_t *stride);

/* views (share storage; the result holds its own reference) */
OviTensor *ovi_tensor_view (OviTensor *t, int ndim, const int64_t *shape,
                            const int64_t *stride, int64_t elem_offset);
OviTensor *ovi_tensor_reshape (OviTensor *t, int ndim,
                               const int64_t *shape); /* contiguous input */
OviTensor *ovi_tensor_permute (OviTensor *t, const int *order);
OviTensor *ovi_tensor_narrow (OviTensor *t, int dim, int64_t start,
                              int64_t length);
OviTensor *ovi_tensor_select (OviTensor *t, int dim,
                              int64_t index); /* drops dim */

/* host helpers */
OviTensor *ovi_tensor_to_f32 (
    const OviTensor *t,
    GError **error); /* contiguous host f32 copy, scale applied */
double ovi_tensor_get_f64 (
    const OviTensor *t,
    const int64_t *index); /* one element as double, host only */
char *ovi_shape_to_string (int ndim, const int64_t *shape); /* "[3, 4, 5]" */

/* A weight filter, as the stage and model constructors take: called with
 * each weight's official name and the tensor as read from the file, it
 * returns the tensor to use (a new reference: e.g. quantised, or already on
 * the backend: ovi-placement.h) or NULL with `error` set. */
typedef OviTensor *(*OviWeightFilter) (const char *name, OviTensor *weight,
                                       gpointer user_data, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviTensor, ovi_tensor_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviStorage, ovi_storage_unref)

G_END_DECLS
