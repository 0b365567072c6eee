/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: backend objects, helpers and the checked op wrappers.
 *
 * Every ovi_op_*() wrapper checks its arguments (ranks, shapes, dtypes,
 * devices) and records a mismatch in the backend's sticky error, naming the
 * op and the shapes, instead of calling into the backend. Once an error is
 * recorded, later ops are skipped until ovi_backend_sync() reports it.
 */
#include "ovi-backend-impl.h"
#include "ovi-backend-module.h"

#include <gmodule.h>

#include <stdarg.h>
#include <string.h>

OviBackend *ovi_backend_cpu_create (int n_threads); /* cpu/ovi-cpu-backend.c */

/* ---- backend objects ---- */

OviBackend *
ovi_backend_new_cpu (int n_threads)
{
  return ovi_backend_cpu_create (n_threads);
}

/* The CUDA backend is a module, libovi-cuda.so, found as
 * ovi-backend-module.h says. "cuda" computes in BF16, "cuda-fp32" in F32
 * (the parity mode). */
typedef OviBackend *(*OviCudaNewFunc) (int device, int act_dtype,
                                       GError **error);

static OviBackend *
load_cuda_backend (const char *name, int device_index, GError **error)
{
  GError *local = NULL;
  GModule *module = ovi_backend_module_open ("libovi-cuda.so", &local);
  OviCudaNewFunc fn = NULL;

  if (module == NULL) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND,
                 "Cannot use backend '%s' (device %d): %s", name, device_index,
                 local->message);
    g_error_free (local);
    return NULL;
  }
  if (!g_module_symbol (module, "ovi_cuda_backend_new_with_dtype",
                        (gpointer *) &fn)
      || fn == NULL) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND,
                 "Cannot use backend '%s': %s has no entry point "
                 "ovi_cuda_backend_new_with_dtype: %s",
                 name, g_module_name (module), g_module_error ());
    return NULL;
  }
  return fn (device_index,
             g_ascii_strcasecmp (name, "cuda-fp32") == 0 ? OVI_DTYPE_F32
                                                         : OVI_DTYPE_BF16,
             error);
}

OviBackend *
ovi_backend_new_by_name (const char *name, int device_index, GError **error)
{
  if (name == NULL || g_ascii_strcasecmp (name, "cpu") == 0)
    return ovi_backend_new_cpu (0);
  if (g_ascii_strcasecmp (name, "cuda") == 0
      || g_ascii_strcasecmp (name, "cuda-fp32") == 0)
    return load_cuda_backend (name, device_index, error);
  g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND,
               "Unknown backend '%s' (known backends: cpu, cuda, cuda-fp32)",
               name);
  return NULL;
}

void
ovi_backend_free (OviBackend *be)
{
  if (be == NULL)
    return;
  g_clear_error (&be->error);
  be->ops->destroy (be);
}

void
ovi_backend_set_error (OviBackend *be, GQuark domain, int code,
                       const char *format, ...)
{
  va_list args;
  GError *e;

  g_return_if_fail (be != NULL);
  if (g_atomic_pointer_get (&be->error) != NULL)
    return;
  va_start (args, format);
  e = g_error_new_valist (domain, code, format, args);
  va_end (args);
  /* ops may fail on several worker threads at once: the first one wins */
  if (!g_atomic_pointer_compare_and_exchange (&be->error, NULL, e))
    g_error_free (e);
}

gboolean
ovi_backend_sync (OviBackend *be, GError **error)
{
  GError *local = NULL;
  gboolean ok;

  g_return_val_if_fail (be != NULL, FALSE);
  ok = be->ops->sync (be, &local);
  if (be->error) {
    /* the first failure is the one to report */
    g_clear_error (&local);
    g_propagate_error (error, be->error);
    be->error = NULL;
    return FALSE;
  }
  if (!ok) {
    g_propagate_error (error, local);
    return FALSE;
  }
  return TRUE;
}

const char *
ovi_backend_get_name (const OviBackend *be)
{
  return be->ops->name;
}

OviDevice
ovi_backend_get_device (const OviBackend *be)
{
  return be->device;
}

OviDType
ovi_backend_get_act_dtype (const OviBackend *be)
{
  return be->act_dtype;
}

int
ovi_backend_get_n_threads (const OviBackend *be)
{
  return be->n_threads;
}

OviStorage *
ovi_backend_new_storage (OviBackend *be, gsize size, GError **error)
{
  return be->ops->new_storage (be, size, error);
}

OviTensor *
ovi_backend_new_tensor (OviBackend *be, OviDType dtype, int ndim,
                        const int64_t *shape)
{
  OviStorage *storage;
  OviTensor *t;
  int64_t n = 1;
  GError *error = NULL;

  g_return_val_if_fail (be != NULL, NULL);
  if (ndim < 0 || ndim > OVI_MAX_DIMS || dtype >= OVI_N_DTYPES) {
    ovi_backend_set_error (
        be, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
        "ovi_backend_new_tensor: rank %d / dtype %d is not valid", ndim,
        (int) dtype);
    return NULL;
  }
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0 || (shape[i] > 0 && n > G_MAXINT64 / shape[i])) {
      g_autofree char *s = ovi_shape_to_string (ndim, shape);
      ovi_backend_set_error (be, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                             "ovi_backend_new_tensor: invalid shape %s", s);
      return NULL;
    }
    n *= shape[i];
  }
  storage
      = be->ops->new_storage (be, (gsize) n * ovi_dtype_size (dtype), &error);
  if (storage == NULL) {
    g_autofree char *s = ovi_shape_to_string (ndim, shape);
    ovi_backend_set_error (
        be, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
        "Could not allocate a %s %s tensor on the %s backend: %s",
        ovi_dtype_name (dtype), s, be->ops->name,
        error ? error->message : "out of memory");
    g_clear_error (&error);
    return NULL;
  }
  t = ovi_tensor_new_on_storage (storage, 0, dtype, ndim, shape, NULL);
  ovi_storage_unref (storage);
  return t;
}

OviTensor *
ovi_backend_new_act (OviBackend *be, int ndim, const int64_t *shape)
{
  g_return_val_if_fail (be != NULL, NULL);
  return ovi_backend_new_tensor (be, be->act_dtype, ndim, shape);
}

OviTensor *
ovi_backend_new_act_2d (OviBackend *be, int64_t rows, int64_t cols)
{
  return ovi_backend_new_act (be, 2, (const int64_t[]){ rows, cols });
}

static gboolean
on_device (OviBackend *be, const OviTensor *t)
{
  return t->storage->device.type == be->device.type
         && (t->storage->device.type == OVI_DEVICE_CPU
             || t->storage->device.index == be->device.index);
}

OviTensor *
ovi_backend_upload (OviBackend *be, OviTensor *t)
{
  OviTensor *dst;

  g_return_val_if_fail (be != NULL, NULL);
  g_return_val_if_fail (t != NULL, NULL);
  if (on_device (be, t) && (t->scale == NULL || on_device (be, t->scale)))
    return ovi_tensor_ref (t);
  dst = ovi_backend_new_tensor (be, t->dtype, t->ndim, t->shape);
  if (dst == NULL)
    return NULL;
  if (t->scale) {
    dst->scale = ovi_backend_upload (be, t->scale);
    if (dst->scale == NULL) {
      ovi_tensor_unref (dst);
      return NULL;
    }
  }
  /* same dtype, same scale values: the backend copies raw elements */
  be->ops->copy (be, dst, t);
  return dst;
}

void
ovi_backend_set_weights_in_place (OviBackend *be, gboolean in_place)
{
  g_return_if_fail (be != NULL);
  be->weights_in_place = in_place;
}

gboolean
ovi_backend_get_weights_in_place (const OviBackend *be)
{
  return be->weights_in_place;
}

/* t (without its scale) as the device reads it in place, or NULL when the
 * backend cannot (said once per backend: the copy that follows doubles the
 * weight's memory on a unified device, which the user should know) */
static OviTensor *
host_view (OviBackend *be, OviTensor *t)
{
  GError *why = NULL;
  OviTensor *v;

  if (be->ops->host_view == NULL)
    return NULL;
  v = be->ops->host_view (be, t, &why);
  if (v == NULL) {
    if (!be->fallback_said)
      g_message ("%s backend: weights are copied instead of used in place: %s",
                 be->ops->name, why ? why->message : "not addressable");
    be->fallback_said = TRUE;
    g_clear_error (&why);
  }
  return v;
}

OviTensor *
ovi_backend_upload_weight (OviBackend *be, OviTensor *t, gboolean *in_place)
{
  OviTensor *v = NULL;

  g_return_val_if_fail (be != NULL, NULL);
  g_return_val_if_fail (t != NULL, NULL);
  if (in_place)
    *in_place = FALSE;
  if (on_device (be, t) && (t->scale == NULL || on_device (be, t->scale))) {
    /* the CPU backend reads host memory as it is */
    if (in_place)
      *in_place = ovi_tensor_is_host (t);
    return ovi_tensor_ref (t);
  }
  /* strided views are copied contiguous, as the ops expect them */
  if (!be->weights_in_place || !ovi_tensor_is_host (t)
      || !ovi_tensor_is_contiguous (t) || (v = host_view (be, t)) == NULL)
    return ovi_backend_upload (be, t);
  if (t->scale) {
    v->scale = ovi_backend_upload_weight (be, t->scale, NULL);
    if (v->scale == NULL) {
      ovi_tensor_unref (v);
      return NULL;
    }
  }
  if (in_place)
    *in_place = TRUE;
  return v;
}

static gboolean
is_float (OviDType dt)
{
  return dt == OVI_DTYPE_F32 || dt == OVI_DTYPE_F16 || dt == OVI_DTYPE_BF16;
}

OviTensor *
ovi_backend_upload_act (OviBackend *be, OviTensor *t)
{
  OviTensor *dst;

  g_return_val_if_fail (be != NULL, NULL);
  g_return_val_if_fail (t != NULL, NULL);
  if (t->scale || t->dtype == be->act_dtype || !is_float (t->dtype)
      || ovi_dtype_size (t->dtype) < ovi_dtype_size (be->act_dtype))
    return ovi_backend_upload_weight (be, t, NULL);
  dst = ovi_backend_new_act (be, t->ndim, t->shape);
  if (dst)
    be->ops->copy (be, dst, t);
  return dst;
}

OviTensor *
ovi_backend_download_f32 (OviBackend *be, const OviTensor *t, GError **error)
{
  g_autoptr (OviTensor) out = NULL;

  g_return_val_if_fail (be != NULL, NULL);
  g_return_val_if_fail (t != NULL, NULL);
  if (!ovi_backend_sync (be, error))
    return NULL;
  out = ovi_tensor_new (OVI_DTYPE_F32, t->ndim, t->shape, error);
  if (out == NULL)
    return NULL;
  be->ops->copy (be, out, t);
  if (!ovi_backend_sync (be, error))
    return NULL;
  return g_steal_pointer (&out);
}

/* ---- argument checking ---- */

static gboolean fail (OviBackend *be, int code, const char *op,
                      const char *format, ...) G_GNUC_PRINTF (4, 5);

static gboolean
fail (OviBackend *be, int code, const char *op, const char *format, ...)
{
  va_list args;
  g_autofree char *msg = NULL;

  va_start (args, format);
  msg = g_strdup_vprintf (format, args);
  va_end (args);
  ovi_backend_set_error (be, OVI_ERROR, code, "%s: %s", op, msg);
  return FALSE;
}

static char *
shape_str (const OviTensor *t)
{
  if (t == NULL)
    return g_strdup ("NULL");
  return ovi_shape_to_string (t->ndim, t->shape);
}

static gboolean
need (OviBackend *be, const char *op, const char *name, const OviTensor *t)
{
  if (t == NULL)
    return fail (be, OVI_ERROR_INVALID_ARGUMENT, op, "%s is NULL", name);
  if (!on_device (be, t))
    return fail (be, OVI_ERROR_INVALID_ARGUMENT, op,
                 "%s is on another device than the %s backend", name,
                 be->ops->name);
  return TRUE;
}

static gboolean
need_opt (OviBackend *be, const char *op, const char *name, const OviTensor *t)
{
  return t == NULL || need (be, op, name, t);
}

static gboolean
need_float (OviBackend *be, const char *op, const char *name,
            const OviTensor *t)
{
  if (!need (be, op, name, t))
    return FALSE;
  if (!ovi_dtype_is_float (t->dtype) && t->dtype != OVI_DTYPE_I8)
    return fail (be, OVI_ERROR_SHAPE, op, "%s has dtype %s, not a float type",
                 name, ovi_dtype_name (t->dtype));
  return TRUE;
}

static gboolean
need_out (OviBackend *be, const char *op, const OviTensor *out)
{
  if (!need (be, op, "out", out))
    return FALSE;
  if (out->dtype != be->act_dtype)
    return fail (be, OVI_ERROR_SHAPE, op,
                 "out has dtype %s, the backend computes in %s",
                 ovi_dtype_name (out->dtype), ovi_dtype_name (be->act_dtype));
  if (!ovi_tensor_is_contiguous (out))
    return fail (be, OVI_ERROR_INVALID_ARGUMENT, op, "out must be contiguous");
  return TRUE;
}

static gboolean
same_shape (const OviTensor *a, const OviTensor *b)
{
  return ovi_tensor_has_shape (a, b->ndim, b->shape);
}

static gboolean
need_same_shape (OviBackend *be, const char *op, const char *na,
                 const OviTensor *a, const char *nb, const OviTensor *b)
{
  g_autofree char *sa = NULL, *sb = NULL;

  if (same_shape (a, b))
    return TRUE;
  sa = shape_str (a);
  sb = shape_str (b);
  return fail (be, OVI_ERROR_SHAPE, op, "%s %s and %s %s differ in shape", na,
               sa, nb, sb);
}

static gboolean
need_shape (OviBackend *be, const char *op, const char *name,
            const OviTensor *t, int ndim, const int64_t *shape)
{
  g_autofree char *st = NULL, *se = NULL;

  if (ovi_tensor_has_shape (t, ndim, shape))
    return TRUE;
  st = shape_str (t);
  se = ovi_shape_to_string (ndim, shape);
  return fail (be, OVI_ERROR_SHAPE, op, "%s has shape %s, expected %s", name,
               st, se);
}

/* t broadcasts to `target` (numpy rules, right-aligned; size 1 or stride 0) */
static gboolean
need_broadcast (OviBackend *be, const char *op, const char *name,
                const OviTensor *t, const OviTensor *target)
{
  g_autofree char *st = NULL, *sx = NULL;
  gboolean ok = t->ndim <= target->ndim;

  for (int i = 0; ok && i < t->ndim; i++) {
    int j = target->ndim - t->ndim + i;
    if (t->shape[i] != target->shape[j] && t->shape[i] != 1)
      ok = FALSE;
  }
  if (ok)
    return TRUE;
  st = shape_str (t);
  sx = shape_str (target);
  return fail (be, OVI_ERROR_SHAPE, op, "%s %s does not broadcast to %s", name,
               st, sx);
}

static gboolean
need_numel (OviBackend *be, const char *op, const char *name,
            const OviTensor *t, int64_t n)
{
  g_autofree char *st = NULL;

  if (ovi_tensor_numel (t) == n)
    return TRUE;
  st = shape_str (t);
  return fail (be, OVI_ERROR_SHAPE, op,
               "%s has shape %s, expected %" G_GINT64_FORMAT " elements", name,
               st, n);
}

static gboolean
need_rank (OviBackend *be, const char *op, const char *name, const OviTensor *t,
           int lo, int hi)
{
  g_autofree char *st = NULL;

  if (t->ndim >= lo && t->ndim <= hi)
    return TRUE;
  st = shape_str (t);
  if (lo == hi)
    return fail (be, OVI_ERROR_SHAPE, op, "%s has shape %s, expected rank %d",
                 name, st, lo);
  return fail (be, OVI_ERROR_SHAPE, op, "%s has shape %s, expected rank %d..%d",
               name, st, lo, hi);
}

/* the checks of an op on rows: x a float tensor of rank >= 1, out a
 * writable tensor of the same shape */
static gboolean
need_rows_op (OviBackend *be, const char *op, const OviTensor *out,
              const OviTensor *x)
{
  return need_out (be, op, out) && need_float (be, op, "x", x)
         && need_rank (be, op, "x", x, 1, OVI_MAX_DIMS)
         && need_same_shape (be, op, "out", out, "x", x);
}

/* dispatch to the backend, or record that it lacks the op */
#define DISPATCH(be, field, ...)                                               \
  G_STMT_START                                                                 \
  {                                                                            \
    if ((be)->ops->field == NULL)                                              \
      fail ((be), OVI_ERROR_BACKEND, "ovi_op_" #field,                         \
            "the %s backend does not implement this op", (be)->ops->name);     \
    else                                                                       \
      (be)->ops->field ((be), __VA_ARGS__);                                    \
  }                                                                            \
  G_STMT_END

/* ---- wrappers ---- */

void
ovi_op_copy (OviBackend *be, OviTensor *dst, const OviTensor *src)
{
  const char *op = "ovi_op_copy";

  OVI_BACKEND_BEGIN_OP (be);
  if (dst == NULL || src == NULL) {
    fail (be, OVI_ERROR_INVALID_ARGUMENT, op, "%s is NULL",
          dst == NULL ? "dst" : "src");
    return;
  }
  if (!need_same_shape (be, op, "dst", dst, "src", src))
    return;
  for (int i = 0; i < dst->ndim; i++) {
    if (dst->shape[i] > 1 && dst->stride[i] == 0) {
      fail (be, OVI_ERROR_INVALID_ARGUMENT, op,
            "dst dim %d has stride 0: its elements overlap", i);
      return;
    }
  }
  DISPATCH (be, copy, dst, src);
}

void
ovi_op_fill (OviBackend *be, OviTensor *dst, float value)
{
  const char *op = "ovi_op_fill";

  OVI_BACKEND_BEGIN_OP (be);
  if (!need (be, op, "dst", dst))
    return;
  if (!ovi_tensor_is_contiguous (dst)) {
    fail (be, OVI_ERROR_INVALID_ARGUMENT, op, "dst must be contiguous");
    return;
  }
  DISPATCH (be, fill, dst, value);
}

void
ovi_op_matmul (OviBackend *be, OviTensor *out, const OviTensor *x,
               const OviTensor *w, const OviTensor *bias, OviActivation act)
{
  const char *op = "ovi_op_matmul";
  int64_t shape[OVI_MAX_DIMS];

  OVI_BACKEND_BEGIN_OP (be);
  if (!need_out (be, op, out) || !need_float (be, op, "x", x)
      || !need_float (be, op, "w", w) || !need_opt (be, op, "bias", bias)
      || !need_rank (be, op, "x", x, 1, OVI_MAX_DIMS)
      || !need_rank (be, op, "w", w, 2, 2))
    return;
  if (w->shape[1] != x->shape[x->ndim - 1]) {
    g_autofree char *sx = shape_str (x), *sw = shape_str (w);
    fail (be, OVI_ERROR_SHAPE, op, "x %s and w %s: the last dims (K) differ",
          sx, sw);
    return;
  }
  memcpy (shape, x->shape, sizeof (int64_t) * x->ndim);
  shape[x->ndim - 1] = w->shape[0];
  if (!need_shape (be, op, "out", out, x->ndim, shape))
    return;
  if (bias && !need_numel (be, op, "bias", bias, w->shape[0]))
    return;
  DISPATCH (be, matmul, out, x, w, bias, act);
}

void
ovi_op_attention (OviBackend *be, OviTensor *out, const OviTensor *q,
                  const OviTensor *k, const OviTensor *v, const OviTensor *bias,
                  const int64_t *kv_lens, float scale)
{
  const char *op = "ovi_op_attention";
  int64_t B, Lq, Lk, H, D, Dv;

  OVI_BACKEND_BEGIN_OP (be);
  if (!need_out (be, op, out) || !need_float (be, op, "q", q)
      || !need_float (be, op, "k", k) || !need_float (be, op, "v", v)
      || !need_opt (be, op, "bias", bias) || !need_rank (be, op, "q", q, 4, 4)
      || !need_rank (be, op, "k", k, 4, 4) || !need_rank (be, op, "v", v, 4, 4))
    return;
  B = q->shape[0];
  Lq = q->shape[1];
  H = q->shape[2];
  D = q->shape[3];
  Lk = k->shape[1];
  Dv = v->shape[3];
  if (!need_shape (be, op, "k", k, 4, (int64_t[]){ B, Lk, H, D })
      || !need_shape (be, op, "v", v, 4, (int64_t[]){ B, Lk, H, Dv })
      || !need_shape (be, op, "out", out, 4, (int64_t[]){ B, Lq, H, Dv }))
    return;
  if (bias) {
    if (!need_rank (be, op, "bias", bias, 4, 4))
      return;
    if ((bias->shape[0] != B && bias->shape[0] != 1)
        || (bias->shape[1] != H && bias->shape[1] != 1) || bias->shape[2] != Lq
        || bias->shape[3] != Lk) {
      g_autofree char *sb = shape_str (bias);
      fail (be, OVI_ERROR_SHAPE, op,
            "bias has shape %s, expected [%" G_GINT64_FORMAT
            "|1, %" G_GINT64_FORMAT "|1, %" G_GINT64_FORMAT
            ", %" G_GINT64_FORMAT "]",
            sb, B, H, Lq, Lk);
      return;
    }
  }
  if (kv_lens) {
    for (int64_t b = 0; b < B; b++) {
      if (kv_lens[b] < 0 || kv_lens[b] > Lk) {
        fail (be, OVI_ERROR_INVALID_ARGUMENT, op,
              "kv_lens[%" G_GINT64_FORMAT "] = %" G_GINT64_FORMAT
              " is outside 0..%" G_GINT64_FORMAT,
              b, kv_lens[b], Lk);
        return;
      }
    }
  }
  DISPATCH (be, attention, out, q, k, v, bias, kv_lens, scale);
}

void
ovi_op_softmax (OviBackend *be, OviTensor *out, const OviTensor *x)
{
  const char *op = "ovi_op_softmax";

  OVI_BACKEND_BEGIN_OP (be);
  if (!need_rows_op (be, op, out, x))
    return;
  DISPATCH (be, softmax, out, x);
}

static gboolean
check_row_param (OviBackend *be, const char *op, const char *name,
                 const OviTensor *p, const OviTensor *x)
{
  if (p == NULL)
    return TRUE;
  return need_float (be, op, name, p)
         && need_numel (be, op, name, p, x->shape[x->ndim - 1]);
}

void
ovi_op_rms_norm (OviBackend *be, OviTensor *out, const OviTensor *x,
                 const OviTensor *weight, float eps)
{
  const char *op = "ovi_op_rms_norm";

  OVI_BACKEND_BEGIN_OP (be);
  if (!need_rows_op (be, op, out, x)
      || !check_row_param (be, op, "weight", weight, x))
    return;
  DISPATCH (be, rms_norm, out, x, weight, eps);
}

void
ovi_op_layer_norm (OviBackend *be, OviTensor *out, const OviTensor *x,
                   const OviTensor *weight, const OviTensor *bias, float eps)
{
  const char *op = "ovi_op_layer_norm";

  OVI_BACKEND_BEGIN_OP (be);
  if (!need_rows_op (be, op, out, x)
      || !check_row_param (be, op, "weight", weight, x)
      || !check_row_param (be, op, "bias", bias, x))
    return;
  DISPATCH (be, layer_norm, out, x, weight, bias, eps);
}

void
ovi_op_channel_norm (OviBackend *be, OviTensor *out, const OviTensor *x,
                     const OviTensor *gamma, OviChannelNorm kind)
{
  const char *op = "ovi_op_channel_norm";

  OVI_BACKEND_BEGIN_OP (be);
  if (!need_rows_op (be, op, out, x))
    return;
  if (kind == OVI_CHANNEL_NORM_L2_SQRT_C) {
    if (!need_float (be, op, "gamma", gamma)
        || !need_numel (be, op, "gamma", gamma, x->shape[0]))
      return;
  } else if (kind != OVI_CHANNEL_NORM_MAGNITUDE) {
    fail (be, OVI_ERROR_INVALID_ARGUMENT, op, "unknown kind %d", (int) kind);
    return;
  }
  DISPATCH (be, channel_norm, out, x, gamma, kind);
}

void
ovi_op_modulate (OviBackend *be, OviTensor *out, const OviTensor *x,
                 const OviTensor *shift, const OviTensor *scale, float eps)
{
  const char *op = "ovi_op_modulate";

  OVI_BACKEND_BEGIN_OP (be);
  if (!need_out (be, op, out) || !need_float (be, op, "x", x)
      || !need_float (be, op, "shift", shift)
      || !need_float (be, op, "scale", scale)
      || !need_rank (be, op, "x", x, 1, OVI_MAX_DIMS)
      || !need_same_shape (be, op, "out", out, "x", x)
      || !need_broadcast (be, op, "shift", shift, x)
      || !need_broadcast (be, op, "scale", scale, x))
    return;
  DISPATCH (be, modulate, out, x, shift, scale, eps);
}

void
ovi_op_gate_add (OviBackend *be, OviTensor *x, const OviTensor *y,
                 const OviTensor *gate)
{
  const char *op = "ovi_op_gate_add";

  OVI_BACKEND_BEGIN_OP (be);
  if (!need_out (be, op, x) || !need_float (be, op, "y", y)
      || !need_float (be, op, "gate", gate)
      || !need_same_shape (be, op, "x", x, "y", y)
      || !need_broadcast (be, op, "gate", gate, x))
    return;
  DISPATCH (be, gate_add, x, y, gate);
}

void
ovi_op_rope (OviBackend *be, OviTensor *out, const OviTensor *x,
             const OviTensor *cos, const OviTensor *sin)
{
  const char *op = "ovi_op_rope";
  int64_t L;

  OVI_BACKEND_BEGIN_OP (be);
  if (!need_out (be, op, out) || !need_float (be, op, "x", x)
      || !need_float (be, op, "cos", cos) || !need_float (be, op, "sin", sin)
      || !need_rank (be, op, "x", x, 3, OVI_MAX_DIMS)
      || !need_same_shape (be, op, "out", out, "x", x)
      || !need_rank (be, op, "cos", cos, 2, 2)
      || !need_same_shape (be, op, "cos", cos, "sin", sin))
    return;
  L = x->shape[x->ndim - 3];
  if (cos->shape[0] != L || 2 * cos->shape[1] > x->shape[x->ndim - 1]) {
    g_autofree char *sx = shape_str (x), *sc = shape_str (cos);
    fail (
        be, OVI_ERROR_SHAPE, op,
        "cos/sin %s do not fit x %s: expected [L, P] with L = %" G_GINT64_FORMAT
        " and 2P <= %" G_GINT64_FORMAT,
        sc, sx, L, x->shape[x->ndim - 1]);
    return;
  }
  DISPATCH (be, rope, out, x, cos, sin);
}

static gboolean
check_act (OviBackend *be, const char *op, OviActivation act)
{
  if (act < OVI_ACT_NONE || act > OVI_ACT_RELU)
    return fail (be, OVI_ERROR_INVALID_ARGUMENT, op, "unknown activation %d",
                 (int) act);
  return TRUE;
}

void
ovi_op_unary (OviBackend *be, OviTensor *out, const OviTensor *x,
              OviActivation act, float alpha)
{
  const char *op = "ovi_op_unary";

  OVI_BACKEND_BEGIN_OP (be);
  if (!need_out (be, op, out) || !need_float (be, op, "x", x)
      || !need_same_shape (be, op, "out", out, "x", x)
      || !check_act (be, op, act))
    return;
  DISPATCH (be, unary, out, x, act, alpha);
}

void
ovi_op_binary (OviBackend *be, OviTensor *out, const OviTensor *a,
               const OviTensor *b, OviBinaryOp bop)
{
  const char *op = "ovi_op_binary";

  OVI_BACKEND_BEGIN_OP (be);
  if (!need_out (be, op, out) || !need_float (be, op, "a", a)
      || !need_float (be, op, "b", b)
      || !need_same_shape (be, op, "out", out, "a", a)
      || !need_broadcast (be, op, "b", b, a))
    return;
  if (bop < OVI_BINARY_ADD || bop > OVI_BINARY_DIV) {
    fail (be, OVI_ERROR_INVALID_ARGUMENT, op, "unknown op %d", (int) bop);
    return;
  }
  DISPATCH (be, binary, out, a, b, bop);
}

void
ovi_op_axpby (OviBackend *be, OviTensor *out, float alpha, const OviTensor *a,
              float beta, const OviTensor *b)
{
  const char *op = "ovi_op_axpby";

  OVI_BACKEND_BEGIN_OP (be);
  if (!need_out (be, op, out) || !need_float (be, op, "a", a)
      || !need_same_shape (be, op, "out", out, "a", a))
    return;
  if (b
      && (!need_float (be, op, "b", b) || !need_broadcast (be, op, "b", b, a)))
    return;
  DISPATCH (be, axpby, out, alpha, a, beta, b);
}

void
ovi_op_clamp (OviBackend *be, OviTensor *out, const OviTensor *x, float lo,
              float hi)
{
  const char *op = "ovi_op_clamp";

  OVI_BACKEND_BEGIN_OP (be);
  if (!need_out (be, op, out) || !need_float (be, op, "x", x)
      || !need_same_shape (be, op, "out", out, "x", x))
    return;
  DISPATCH (be, clamp, out, x, lo, hi);
}

void
ovi_op_snake_beta (OviBackend *be, OviTensor *out, const OviTensor *x,
                   const OviTensor *alpha, const OviTensor *beta,
                   gboolean logscale)
{
  const char *op = "ovi_op_snake_beta";

  OVI_BACKEND_BEGIN_OP (be);
  if (!need_out (be, op, out) || !need_float (be, op, "x", x)
      || !need_float (be, op, "alpha", alpha)
      || !need_float (be, op, "beta", beta)
      || !need_rank (be, op, "x", x, 2, OVI_MAX_DIMS)
      || !need_same_shape (be, op, "out", out, "x", x)
      || !need_numel (be, op, "alpha", alpha, x->shape[x->ndim - 2])
      || !need_numel (be, op, "beta", beta, x->shape[x->ndim - 2]))
    return;
  DISPATCH (be, snake_beta, out, x, alpha, beta, logscale);
}

void
ovi_op_mean_last (OviBackend *be, OviTensor *out, const OviTensor *x)
{
  const char *op = "ovi_op_mean_last";

  OVI_BACKEND_BEGIN_OP (be);
  if (!need_out (be, op, out) || !need_float (be, op, "x", x)
      || !need_rank (be, op, "x", x, 1, OVI_MAX_DIMS)
      || !need_shape (be, op, "out", out, x->ndim - 1, x->shape))
    return;
  DISPATCH (be, mean_last, out, x);
}

/* a convolution's tensors: out, float x of rank x_lo..x_hi, float w of
 * rank w_rank, an optional float bias */
static gboolean
need_conv_args (OviBackend *be, const char *op, const OviTensor *out,
                const OviTensor *x, const OviTensor *w, const OviTensor *bias,
                int x_lo, int x_hi, int w_rank)
{
  return need_out (be, op, out) && need_float (be, op, "x", x)
         && need_float (be, op, "w", w) && need_opt (be, op, "bias", bias)
         && need_rank (be, op, "x", x, x_lo, x_hi)
         && need_rank (be, op, "w", w, w_rank, w_rank);
}

/* out of `shape` and the bias (if any) of one value per output channel */
static gboolean
need_conv_out (OviBackend *be, const char *op, const OviTensor *out, int ndim,
               const int64_t *shape, const OviTensor *bias, int64_t channels)
{
  return need_shape (be, op, "out", out, ndim, shape)
         && (bias == NULL || need_numel (be, op, "bias", bias, channels));
}

/* x [Cin, T] or [B, Cin, T]: the out shape with (C, T) replaced */
static void
conv1d_out_shape (const OviTensor *x, int64_t C, int64_t T, int64_t *shape)
{
  memcpy (shape, x->shape, sizeof (int64_t) * x->ndim);
  shape[x->ndim - 2] = C;
  shape[x->ndim - 1] = T;
}

void
ovi_op_conv1d (OviBackend *be, OviTensor *out, const OviTensor *x,
               const OviTensor *w, const OviTensor *bias, int stride,
               int pad_left, int pad_right, int dilation, int groups)
{
  const char *op = "ovi_op_conv1d";
  int64_t Cin, T, Cout, K, To, shape[3];

  OVI_BACKEND_BEGIN_OP (be);
  if (!need_conv_args (be, op, out, x, w, bias, 2, 3, 3))
    return;
  if (stride < 1 || dilation < 1 || groups < 1 || pad_left < 0
      || pad_right < 0) {
    fail (be, OVI_ERROR_INVALID_ARGUMENT, op,
          "stride %d, dilation %d, groups %d, padding %d/%d are not valid",
          stride, dilation, groups, pad_left, pad_right);
    return;
  }
  Cin = x->shape[x->ndim - 2];
  T = x->shape[x->ndim - 1];
  Cout = w->shape[0];
  K = w->shape[2];
  if (Cin % groups || Cout % groups || w->shape[1] != Cin / groups) {
    g_autofree char *sx = shape_str (x), *sw = shape_str (w);
    fail (be, OVI_ERROR_SHAPE, op,
          "x %s and w %s do not match with %d groups (w must be [Cout, "
          "Cin/groups, K])",
          sx, sw, groups);
    return;
  }
  To = (T + pad_left + pad_right - (int64_t) dilation * (K - 1) - 1) / stride
       + 1;
  if (T + pad_left + pad_right < (int64_t) dilation * (K - 1) + 1) {
    g_autofree char *sx = shape_str (x), *sw = shape_str (w);
    fail (be, OVI_ERROR_SHAPE, op, "input %s too short for kernel %s", sx, sw);
    return;
  }
  conv1d_out_shape (x, Cout, To, shape);
  if (!need_conv_out (be, op, out, x->ndim, shape, bias, Cout))
    return;
  DISPATCH (be, conv1d, out, x, w, bias, stride, pad_left, pad_right, dilation,
            groups);
}

void
ovi_op_conv_transpose1d (OviBackend *be, OviTensor *out, const OviTensor *x,
                         const OviTensor *w, const OviTensor *bias, int stride,
                         int padding, int groups)
{
  const char *op = "ovi_op_conv_transpose1d";
  int64_t Cin, T, Cout, K, To, shape[3];

  OVI_BACKEND_BEGIN_OP (be);
  if (!need_conv_args (be, op, out, x, w, bias, 2, 3, 3))
    return;
  if (stride < 1 || groups < 1 || padding < 0) {
    fail (be, OVI_ERROR_INVALID_ARGUMENT, op,
          "stride %d, groups %d, padding %d are not valid", stride, groups,
          padding);
    return;
  }
  Cin = x->shape[x->ndim - 2];
  T = x->shape[x->ndim - 1];
  K = w->shape[2];
  Cout = w->shape[1] * groups;
  if (w->shape[0] != Cin || Cin % groups) {
    g_autofree char *sx = shape_str (x), *sw = shape_str (w);
    fail (be, OVI_ERROR_SHAPE, op,
          "x %s and w %s do not match with %d groups (w must be [Cin, "
          "Cout/groups, K])",
          sx, sw, groups);
    return;
  }
  To = (T - 1) * stride - 2 * (int64_t) padding + K;
  if (To < 1 || T < 1) {
    fail (be, OVI_ERROR_SHAPE, op,
          "output length %" G_GINT64_FORMAT " is empty", To);
    return;
  }
  conv1d_out_shape (x, Cout, To, shape);
  if (!need_conv_out (be, op, out, x->ndim, shape, bias, Cout))
    return;
  DISPATCH (be, conv_transpose1d, out, x, w, bias, stride, padding, groups);
}

void
ovi_op_conv3d (OviBackend *be, OviTensor *out, const OviTensor *x,
               const OviTensor *w, const OviTensor *bias, const int stride[3],
               const int pad[6])
{
  const char *op = "ovi_op_conv3d";
  int64_t shape[4];

  OVI_BACKEND_BEGIN_OP (be);
  if (!need_conv_args (be, op, out, x, w, bias, 4, 4, 5))
    return;
  if (w->shape[1] != x->shape[0]) {
    g_autofree char *sx = shape_str (x), *sw = shape_str (w);
    fail (be, OVI_ERROR_SHAPE, op,
          "x %s has %" G_GINT64_FORMAT
          " channels, w %s expects %" G_GINT64_FORMAT,
          sx, x->shape[0], sw, w->shape[1]);
    return;
  }
  shape[0] = w->shape[0];
  for (int i = 0; i < 3; i++) {
    int64_t span = x->shape[i + 1] + pad[2 * i] + pad[2 * i + 1];
    if (stride[i] < 1 || pad[2 * i] < 0 || pad[2 * i + 1] < 0
        || span < w->shape[i + 2]) {
      g_autofree char *sx = shape_str (x), *sw = shape_str (w);
      fail (be, OVI_ERROR_SHAPE, op,
            "dim %d: x %s, w %s, stride %d, padding %d/%d give no output", i,
            sx, sw, stride[i], pad[2 * i], pad[2 * i + 1]);
      return;
    }
    shape[i + 1] = (span - w->shape[i + 2]) / stride[i] + 1;
  }
  if (!need_conv_out (be, op, out, 4, shape, bias, w->shape[0]))
    return;
  DISPATCH (be, conv3d, out, x, w, bias, stride, pad);
}

void
ovi_op_pad (OviBackend *be, OviTensor *out, const OviTensor *x, int n,
            const int *pads, OviPadMode mode)
{
  const char *op = "ovi_op_pad";
  int64_t shape[OVI_MAX_DIMS];

  OVI_BACKEND_BEGIN_OP (be);
  if (!need_out (be, op, out) || !need_float (be, op, "x", x))
    return;
  if (n < 1 || n > x->ndim) {
    fail (be, OVI_ERROR_INVALID_ARGUMENT, op,
          "cannot pad %d dims of a rank-%d tensor", n, x->ndim);
    return;
  }
  if (mode != OVI_PAD_ZERO && mode != OVI_PAD_REPLICATE) {
    fail (be, OVI_ERROR_INVALID_ARGUMENT, op, "unknown mode %d", (int) mode);
    return;
  }
  memcpy (shape, x->shape, sizeof (int64_t) * x->ndim);
  for (int i = 0; i < n; i++) {
    int d = x->ndim - n + i;
    shape[d] += pads[2 * i] + pads[2 * i + 1];
    if (shape[d] < 0
        || (mode == OVI_PAD_REPLICATE && x->shape[d] == 0 && shape[d] > 0)) {
      fail (be, OVI_ERROR_INVALID_ARGUMENT, op,
            "padding %d/%d of dim %d (size %" G_GINT64_FORMAT ") is not valid",
            pads[2 * i], pads[2 * i + 1], d, x->shape[d]);
      return;
    }
  }
  if (!need_shape (be, op, "out", out, x->ndim, shape))
    return;
  DISPATCH (be, pad, out, x, n, pads, mode);
}

void
ovi_op_upsample_nearest (OviBackend *be, OviTensor *out, const OviTensor *x,
                         int n, const int *factors)
{
  const char *op = "ovi_op_upsample_nearest";
  int64_t shape[OVI_MAX_DIMS];

  OVI_BACKEND_BEGIN_OP (be);
  if (!need_out (be, op, out) || !need_float (be, op, "x", x))
    return;
  if (n < 1 || n > x->ndim) {
    fail (be, OVI_ERROR_INVALID_ARGUMENT, op,
          "cannot upsample %d dims of a rank-%d tensor", n, x->ndim);
    return;
  }
  memcpy (shape, x->shape, sizeof (int64_t) * x->ndim);
  for (int i = 0; i < n; i++) {
    if (factors[i] < 1) {
      fail (be, OVI_ERROR_INVALID_ARGUMENT, op, "factor %d is not valid",
            factors[i]);
      return;
    }
    shape[x->ndim - n + i] *= factors[i];
  }
  if (!need_shape (be, op, "out", out, x->ndim, shape))
    return;
  DISPATCH (be, upsample_nearest, out, x, n, factors);
}

void
ovi_op_embedding (OviBackend *be, OviTensor *out, const OviTensor *table,
                  const int64_t *ids, int64_t n_ids)
{
  const char *op = "ovi_op_embedding";

  OVI_BACKEND_BEGIN_OP (be);
  if (!need_out (be, op, out) || !need_float (be, op, "table", table)
      || !need_rank (be, op, "table", table, 2, 2)
      || !need_shape (be, op, "out", out, 2,
                      (int64_t[]){ n_ids, table->shape[1] }))
    return;
  if (n_ids > 0 && ids == NULL) {
    fail (be, OVI_ERROR_INVALID_ARGUMENT, op, "ids is NULL");
    return;
  }
  for (int64_t i = 0; i < n_ids; i++) {
    if (ids[i] < 0 || ids[i] >= table->shape[0]) {
      fail (be, OVI_ERROR_INVALID_ARGUMENT, op,
            "ids[%" G_GINT64_FORMAT "] = %" G_GINT64_FORMAT
            " is outside the table of %" G_GINT64_FORMAT " rows",
            i, ids[i], table->shape[0]);
      return;
    }
  }
  DISPATCH (be, embedding, out, table, ids, n_ids);
}

/* ---- composite ops ---- */

/* [C, (T,) H, W] -> the 6-d (or 5-d) view [C, (T,) H/r, r, W/r, r] of any
 * strided tensor */
static OviTensor *
split_hw_view (OviTensor *t, int r)
{
  int64_t shape[6], stride[6];
  int n = 0;

  for (int i = 0; i < t->ndim - 2; i++) {
    shape[n] = t->shape[i];
    stride[n++] = t->stride[i];
  }
  for (int i = t->ndim - 2; i < t->ndim; i++) {
    shape[n] = t->shape[i] / r;
    stride[n++] = t->stride[i] * r;
    shape[n] = r;
    stride[n++] = t->stride[i];
  }
  return ovi_tensor_view (t, n, shape, stride, 0);
}

static gboolean
check_shuffle (OviBackend *be, const char *op, OviTensor *out,
               const OviTensor *x, int r, gboolean unshuffle)
{
  int64_t shape[4];

  if (!need_out (be, op, out) || !need_float (be, op, "x", x)
      || !need_rank (be, op, "x", x, 3, 4))
    return FALSE;
  if (r < 1) {
    fail (be, OVI_ERROR_INVALID_ARGUMENT, op, "factor %d is not valid", r);
    return FALSE;
  }
  if (unshuffle) {
    if (x->shape[x->ndim - 1] % r || x->shape[x->ndim - 2] % r) {
      g_autofree char *sx = shape_str (x);
      fail (be, OVI_ERROR_SHAPE, op, "x %s: H and W must be multiples of %d",
            sx, r);
      return FALSE;
    }
    memcpy (shape, x->shape, sizeof (int64_t) * x->ndim);
    shape[0] *= r * r;
    shape[x->ndim - 2] /= r;
    shape[x->ndim - 1] /= r;
  } else {
    if (x->shape[0] % (r * r)) {
      g_autofree char *sx = shape_str (x);
      fail (be, OVI_ERROR_SHAPE, op, "x %s: C must be a multiple of %d", sx,
            r * r);
      return FALSE;
    }
    memcpy (shape, x->shape, sizeof (int64_t) * x->ndim);
    shape[0] /= r * r;
    shape[x->ndim - 2] *= r;
    shape[x->ndim - 1] *= r;
  }
  return need_shape (be, op, "out", out, x->ndim, shape);
}

void
ovi_op_pixel_unshuffle (OviBackend *be, OviTensor *out, const OviTensor *x,
                        int r)
{
  g_autoptr (OviTensor) xs = NULL, xp = NULL, os = NULL;
  int64_t shape[6];
  int nd;

  OVI_BACKEND_BEGIN_OP (be);
  if (!check_shuffle (be, "ovi_op_pixel_unshuffle", out, x, r, TRUE))
    return;
  /* x viewed [C, (T,) Hr, i, Wr, j] -> [C, j, i, (T,) Hr, Wr], which is out
   * ([C*r*r, (T,) Hr, Wr], channel c*r*r + j*r + i) split as [C, r, r, ...] */
  xs = split_hw_view ((OviTensor *) x, r);
  nd = xs->ndim;
  if (nd == 6)
    xp = ovi_tensor_permute (xs, (int[]){ 0, 5, 3, 1, 2, 4 });
  else
    xp = ovi_tensor_permute (xs, (int[]){ 0, 4, 2, 1, 3 });
  memcpy (shape, xp->shape, sizeof (int64_t) * nd);
  os = ovi_tensor_reshape (out, nd, shape);
  DISPATCH (be, copy, os, xp);
}

void
ovi_op_pixel_shuffle (OviBackend *be, OviTensor *out, const OviTensor *x, int r)
{
  g_autoptr (OviTensor) xs = NULL, xp = NULL, os = NULL;
  int64_t shape[6], stride[6];
  int nd;

  OVI_BACKEND_BEGIN_OP (be);
  if (!check_shuffle (be, "ovi_op_pixel_shuffle", out, x, r, FALSE))
    return;
  /* x [C*r*r, (T,) Hr, Wr] viewed [C, j, i, (T,) Hr, Wr] -> permuted to
   * [C, (T,) Hr, i, Wr, j], which is out split as [C, (T,) Hr, r, Wr, r] */
  nd = x->ndim + 2;
  shape[0] = x->shape[0] / (r * r);
  stride[0] = x->stride[0] * r * r;
  shape[1] = r;
  stride[1] = x->stride[0] * r;
  shape[2] = r;
  stride[2] = x->stride[0];
  for (int i = 1; i < x->ndim; i++) {
    shape[i + 2] = x->shape[i];
    stride[i + 2] = x->stride[i];
  }
  xs = ovi_tensor_view ((OviTensor *) x, nd, shape, stride, 0);
  if (nd == 6)
    xp = ovi_tensor_permute (xs, (int[]){ 0, 3, 4, 2, 5, 1 });
  else
    xp = ovi_tensor_permute (xs, (int[]){ 0, 3, 2, 4, 1 });
  os = split_hw_view (out, r);
  DISPATCH (be, copy, os, xp);
}
