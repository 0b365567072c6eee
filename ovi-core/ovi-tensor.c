/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the tensor type. */
#include "ovi-tensor.h"
#include "ovi-error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define OVI_HOST_ALIGN 64

static const struct {
  const char *name;
  gsize size;
  gboolean is_float;
} dtype_info[OVI_N_DTYPES] = {
  [OVI_DTYPE_F32] = { "F32", 4, TRUE },
  [OVI_DTYPE_F16] = { "F16", 2, TRUE },
  [OVI_DTYPE_BF16] = { "BF16", 2, TRUE },
  [OVI_DTYPE_F8_E4M3] = { "F8_E4M3", 1, TRUE },
  [OVI_DTYPE_I8] = { "I8", 1, FALSE },
  [OVI_DTYPE_F64] = { "F64", 8, TRUE },
  [OVI_DTYPE_I64] = { "I64", 8, FALSE },
  [OVI_DTYPE_I32] = { "I32", 4, FALSE },
  [OVI_DTYPE_U8] = { "U8", 1, FALSE },
  [OVI_DTYPE_BOOL] = { "BOOL", 1, FALSE },
};

gsize
ovi_dtype_size (OviDType dtype)
{
  g_return_val_if_fail (dtype < OVI_N_DTYPES, 0);
  return dtype_info[dtype].size;
}

const char *
ovi_dtype_name (OviDType dtype)
{
  g_return_val_if_fail (dtype < OVI_N_DTYPES, "?");
  return dtype_info[dtype].name;
}

gboolean
ovi_dtype_from_name (const char *name, OviDType *dtype)
{
  for (int i = 0; i < OVI_N_DTYPES; i++) {
    if (g_strcmp0 (name, dtype_info[i].name) == 0) {
      *dtype = (OviDType) i;
      return TRUE;
    }
  }
  return FALSE;
}

gboolean
ovi_dtype_is_float (OviDType dtype)
{
  return dtype < OVI_N_DTYPES && dtype_info[dtype].is_float;
}

/* ---- scalar conversions ---- */

static inline uint32_t
f32_bits (float f)
{
  uint32_t u;
  memcpy (&u, &f, 4);
  return u;
}

static inline float
bits_f32 (uint32_t u)
{
  float f;
  memcpy (&f, &u, 4);
  return f;
}

float
ovi_bf16_to_f32 (uint16_t v)
{
  return bits_f32 ((uint32_t) v << 16);
}

uint16_t
ovi_f32_to_bf16 (float f)
{
  uint32_t u = f32_bits (f);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return (uint16_t) ((u >> 16) | 0x40); /* quiet NaN */
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t) (u >> 16);
}

float
ovi_f16_to_f32 (uint16_t v)
{
  uint32_t sign = (uint32_t) (v & 0x8000u) << 16;
  uint32_t exp = (v >> 10) & 0x1fu;
  uint32_t man = v & 0x3ffu;

  if (exp == 0) {
    float r = ldexpf ((float) man, -24);
    return sign ? -r : r;
  }
  if (exp == 31)
    return bits_f32 (sign | 0x7f800000u | (man << 13));
  return bits_f32 (sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t
ovi_f32_to_f16 (float f)
{
  uint32_t u = f32_bits (f);
  uint16_t sign = (uint16_t) ((u >> 16) & 0x8000u);
  float a = fabsf (f);

  if (isnan (f))
    return sign | 0x7e00u;
  if (a >= 65520.0f)
    return sign | 0x7c00u;
  if (a < 6.103515625e-05f) {
    /* subnormal: units of 2^-24, round half to even */
    float q = a * 16777216.0f;
    return sign | (uint16_t) lrintf (q);
  }
  uint32_t au = f32_bits (a);
  au += 0xfffu + ((au >> 13) & 1u);
  return sign | (uint16_t) (((au >> 23) - 112) << 10 | ((au >> 13) & 0x3ffu));
}

/* F8_E4M3 (fn variant): bias 7, no infinities, 0x7f / 0xff are NaN, max 448. */
float
ovi_f8e4m3_to_f32 (uint8_t v)
{
  int sign = v & 0x80;
  int exp = (v >> 3) & 0xf;
  int man = v & 0x7;
  float r;

  if (exp == 0xf && man == 0x7)
    return NAN;
  if (exp == 0)
    r = ldexpf ((float) man, -9);
  else
    r = ldexpf ((float) (8 + man), exp - 10);
  return sign ? -r : r;
}

uint8_t
ovi_f32_to_f8e4m3 (float f)
{
  uint8_t sign = signbit (f) ? 0x80 : 0;
  float a = fabsf (f);
  int e;

  if (isnan (f))
    return 0x7f;
  if (a >= 448.0f)
    return sign | 0x7e;
  if (a < ldexpf (1.0f, -6)) {
    /* subnormal: units of 2^-9 */
    return sign | (uint8_t) lrintf (a * 512.0f);
  }
  frexpf (a, &e); /* a = m * 2^e, m in [0.5, 1) */
  int exp = e - 1 + 7;
  float scaled = ldexpf (a, 3 - (e - 1)); /* in [8, 16) */
  int q = (int) lrintf (scaled);
  if (q == 16) {
    q = 8;
    exp++;
  }
  if (exp > 15 || (exp == 15 && q - 8 > 6))
    return sign | 0x7e;
  return sign | (uint8_t) (exp << 3) | (uint8_t) (q - 8);
}

/* ---- storage ---- */

static void
free_aligned (gpointer data)
{
  free (data);
}

OviStorage *
ovi_storage_new_host (gsize size, GError **error)
{
  gsize rounded
      = (MAX (size, 1) + OVI_HOST_ALIGN - 1) & ~(gsize) (OVI_HOST_ALIGN - 1);
  void *data = NULL;

  if (posix_memalign (&data, OVI_HOST_ALIGN, rounded) != 0 || data == NULL) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                 "Out of host memory: could not allocate %" G_GSIZE_FORMAT
                 " bytes",
                 size);
    return NULL;
  }
  memset (data, 0, rounded);
  return ovi_storage_new_wrapped (data, size, (OviDevice){ OVI_DEVICE_CPU, 0 },
                                  free_aligned, data);
}

OviStorage *
ovi_storage_new_wrapped (void *data, gsize size, OviDevice device,
                         GDestroyNotify release, gpointer release_data)
{
  OviStorage *s = g_new0 (OviStorage, 1);

  s->ref_count = 1;
  s->data = data;
  s->size = size;
  s->device = device;
  s->release = release;
  s->release_data = release_data;
  return s;
}

OviStorage *
ovi_storage_ref (OviStorage *storage)
{
  g_atomic_int_inc (&storage->ref_count);
  return storage;
}

void
ovi_storage_unref (OviStorage *storage)
{
  if (storage == NULL || !g_atomic_int_dec_and_test (&storage->ref_count))
    return;
  if (storage->release)
    storage->release (storage->release_data);
  g_free (storage);
}

/* ---- tensors ---- */

void
ovi_contiguous_strides (int ndim, const int64_t *shape, int64_t *stride)
{
  int64_t s = 1;

  for (int i = ndim - 1; i >= 0; i--) {
    stride[i] = s;
    s *= shape[i];
  }
}

static int64_t
numel_of (int ndim, const int64_t *shape)
{
  int64_t n = 1;

  for (int i = 0; i < ndim; i++)
    n *= shape[i];
  return n;
}

OviTensor *
ovi_tensor_new_on_storage (OviStorage *storage, gsize offset, OviDType dtype,
                           int ndim, const int64_t *shape,
                           const int64_t *stride)
{
  OviTensor *t;

  g_return_val_if_fail (ndim >= 0 && ndim <= OVI_MAX_DIMS, NULL);
  t = g_new0 (OviTensor, 1);
  t->ref_count = 1;
  t->dtype = dtype;
  t->ndim = ndim;
  if (ndim > 0)
    memcpy (t->shape, shape, sizeof (int64_t) * ndim);
  if (stride)
    memcpy (t->stride, stride, sizeof (int64_t) * ndim);
  else
    ovi_contiguous_strides (ndim, t->shape, t->stride);
  t->storage = ovi_storage_ref (storage);
  t->offset = offset;
  return t;
}

OviTensor *
ovi_tensor_new (OviDType dtype, int ndim, const int64_t *shape, GError **error)
{
  g_autoptr (OviStorage) storage = NULL;

  if (ndim < 0 || ndim > OVI_MAX_DIMS) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "Tensor rank %d is outside 0..%d", ndim, OVI_MAX_DIMS);
    return NULL;
  }
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) {
      g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                   "Tensor dimension %d is negative (%" G_GINT64_FORMAT ")", i,
                   shape[i]);
      return NULL;
    }
  }
  storage = ovi_storage_new_host (
      numel_of (ndim, shape) * ovi_dtype_size (dtype), error);
  if (storage == NULL)
    return NULL;
  return ovi_tensor_new_on_storage (storage, 0, dtype, ndim, shape, NULL);
}

OviTensor *
ovi_tensor_new_f32 (int ndim, const int64_t *shape)
{
  GError *error = NULL;
  OviTensor *t = ovi_tensor_new (OVI_DTYPE_F32, ndim, shape, &error);

  if (t == NULL)
    g_error ("%s", error->message);
  return t;
}

OviTensor *
ovi_tensor_ref (OviTensor *t)
{
  g_atomic_int_inc (&t->ref_count);
  return t;
}

void
ovi_tensor_unref (OviTensor *t)
{
  if (t == NULL || !g_atomic_int_dec_and_test (&t->ref_count))
    return;
  ovi_storage_unref (t->storage);
  ovi_tensor_unref (t->scale);
  g_free (t);
}

int64_t
ovi_tensor_numel (const OviTensor *t)
{
  return numel_of (t->ndim, t->shape);
}

gsize
ovi_tensor_nbytes (const OviTensor *t)
{
  return (gsize) ovi_tensor_numel (t) * ovi_dtype_size (t->dtype);
}

gboolean
ovi_tensor_is_contiguous (const OviTensor *t)
{
  int64_t s = 1;

  for (int i = t->ndim - 1; i >= 0; i--) {
    if (t->shape[i] != 1 && t->stride[i] != s)
      return FALSE;
    s *= t->shape[i];
  }
  return TRUE;
}

gboolean
ovi_tensor_is_host (const OviTensor *t)
{
  return t->storage->device.type == OVI_DEVICE_CPU;
}

gboolean
ovi_tensor_has_shape (const OviTensor *t, int ndim, const int64_t *shape)
{
  if (t->ndim != ndim)
    return FALSE;
  for (int i = 0; i < ndim; i++)
    if (shape[i] >= 0 && t->shape[i] != shape[i])
      return FALSE;
  return TRUE;
}

OviTensor *
ovi_tensor_view (OviTensor *t, int ndim, const int64_t *shape,
                 const int64_t *stride, int64_t elem_offset)
{
  OviTensor *v = ovi_tensor_new_on_storage (
      t->storage, t->offset + elem_offset * ovi_dtype_size (t->dtype), t->dtype,
      ndim, shape, stride);

  if (t->scale)
    v->scale = ovi_tensor_ref (t->scale);
  return v;
}

OviTensor *
ovi_tensor_reshape (OviTensor *t, int ndim, const int64_t *shape)
{
  g_return_val_if_fail (ovi_tensor_is_contiguous (t), NULL);
  g_return_val_if_fail (numel_of (ndim, shape) == ovi_tensor_numel (t), NULL);
  return ovi_tensor_view (t, ndim, shape, NULL, 0);
}

OviTensor *
ovi_tensor_permute (OviTensor *t, const int *order)
{
  int64_t shape[OVI_MAX_DIMS], stride[OVI_MAX_DIMS];

  for (int i = 0; i < t->ndim; i++) {
    g_return_val_if_fail (order[i] >= 0 && order[i] < t->ndim, NULL);
    shape[i] = t->shape[order[i]];
    stride[i] = t->stride[order[i]];
  }
  return ovi_tensor_view (t, t->ndim, shape, stride, 0);
}

OviTensor *
ovi_tensor_narrow (OviTensor *t, int dim, int64_t start, int64_t length)
{
  int64_t shape[OVI_MAX_DIMS];

  g_return_val_if_fail (dim >= 0 && dim < t->ndim, NULL);
  g_return_val_if_fail (
      start >= 0 && length >= 0 && start + length <= t->shape[dim], NULL);
  memcpy (shape, t->shape, sizeof (shape));
  shape[dim] = length;
  return ovi_tensor_view (t, t->ndim, shape, t->stride, start * t->stride[dim]);
}

OviTensor *
ovi_tensor_select (OviTensor *t, int dim, int64_t index)
{
  int64_t shape[OVI_MAX_DIMS], stride[OVI_MAX_DIMS];
  int n = 0;

  g_return_val_if_fail (dim >= 0 && dim < t->ndim, NULL);
  g_return_val_if_fail (index >= 0 && index < t->shape[dim], NULL);
  for (int i = 0; i < t->ndim; i++) {
    if (i == dim)
      continue;
    shape[n] = t->shape[i];
    stride[n] = t->stride[i];
    n++;
  }
  return ovi_tensor_view (t, n, shape, stride, index * t->stride[dim]);
}

static double
load_as_f64 (OviDType dtype, const void *p)
{
  switch (dtype) {
    case OVI_DTYPE_F32:
      return *(const float *) p;
    case OVI_DTYPE_F16:
      return ovi_f16_to_f32 (*(const uint16_t *) p);
    case OVI_DTYPE_BF16:
      return ovi_bf16_to_f32 (*(const uint16_t *) p);
    case OVI_DTYPE_F8_E4M3:
      return ovi_f8e4m3_to_f32 (*(const uint8_t *) p);
    case OVI_DTYPE_I8:
      return *(const int8_t *) p;
    case OVI_DTYPE_F64:
      return *(const double *) p;
    case OVI_DTYPE_I64:
      return (double) *(const int64_t *) p;
    case OVI_DTYPE_I32:
      return *(const int32_t *) p;
    case OVI_DTYPE_U8:
    case OVI_DTYPE_BOOL:
      return *(const uint8_t *) p;
    default:
      return NAN;
  }
}

static double
scale_factor (const OviTensor *t, const int64_t *index)
{
  const OviTensor *s = t->scale;

  if (s == NULL)
    return 1.0;
  if (ovi_tensor_numel (s) == 1 || t->ndim == 0)
    return load_as_f64 (s->dtype, ovi_tensor_data (s));
  return load_as_f64 (s->dtype, (const char *) ovi_tensor_data (s)
                                    + index[0] * s->stride[0]
                                          * ovi_dtype_size (s->dtype));
}

double
ovi_tensor_get_f64 (const OviTensor *t, const int64_t *index)
{
  int64_t off = 0;

  g_return_val_if_fail (ovi_tensor_is_host (t), NAN);
  for (int i = 0; i < t->ndim; i++)
    off += index[i] * t->stride[i];
  return load_as_f64 (t->dtype, (const char *) ovi_tensor_data (t)
                                    + off * (int64_t) ovi_dtype_size (t->dtype))
         * scale_factor (t, index);
}

OviTensor *
ovi_tensor_to_f32 (const OviTensor *t, GError **error)
{
  OviTensor *out;
  float *dst;
  int64_t index[OVI_MAX_DIMS] = { 0 };
  int64_t n = ovi_tensor_numel (t);

  if (!ovi_tensor_is_host (t)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "ovi_tensor_to_f32 needs a host tensor; download it first");
    return NULL;
  }
  out = ovi_tensor_new (OVI_DTYPE_F32, t->ndim, t->shape, error);
  if (out == NULL)
    return NULL;
  dst = ovi_tensor_data (out);
  for (int64_t i = 0; i < n; i++) {
    dst[i] = (float) ovi_tensor_get_f64 (t, index);
    for (int d = t->ndim - 1; d >= 0; d--) {
      if (++index[d] < t->shape[d])
        break;
      index[d] = 0;
    }
  }
  return out;
}

char *
ovi_shape_to_string (int ndim, const int64_t *shape)
{
  GString *s = g_string_new ("[");

  for (int i = 0; i < ndim; i++)
    g_string_append_printf (s, "%s%" G_GINT64_FORMAT, i ? ", " : "", shape[i]);
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}
