/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: weight quantisation (see ovi-quantize.h). */
#include "ovi-quantize.h"

#include "ovi-error.h"

#include <math.h>
#include <string.h>

const char *
ovi_quant_kind_to_string (OviQuantKind kind)
{
  switch (kind) {
    case OVI_QUANT_F8_PER_TENSOR:
      return "f8_e4m3 per-tensor";
    case OVI_QUANT_F8_PER_CHANNEL:
      return "f8_e4m3 per-channel";
    case OVI_QUANT_I8_PER_CHANNEL:
      return "int8 per-channel";
    default:
      return "none";
  }
}

OviDType
ovi_quant_kind_dtype (OviQuantKind kind)
{
  switch (kind) {
    case OVI_QUANT_F8_PER_TENSOR:
    case OVI_QUANT_F8_PER_CHANNEL:
      return OVI_DTYPE_F8_E4M3;
    case OVI_QUANT_I8_PER_CHANNEL:
      return OVI_DTYPE_I8;
    default:
      return OVI_DTYPE_F32;
  }
}

gboolean
ovi_quantize_wants (OviQuantKind kind, const char *name, int ndim)
{
  if (kind == OVI_QUANT_NONE || name == NULL || ndim < 2)
    return FALSE;
  /* the official fp8 file's rule: "norm" or "bias" in the name stays 16-bit */
  if (strstr (name, "norm") || strstr (name, "bias"))
    return FALSE;
  /* modulation tables are up-cast to bf16 by the official code anyway */
  if (strstr (name, "modulation"))
    return FALSE;
  /* quanto swaps nn.Linear only: convolutions keep their dtype */
  if (kind == OVI_QUANT_I8_PER_CHANNEL && ndim != 2)
    return FALSE;
  return TRUE;
}

OviTensor *
ovi_quantize_tensor (const OviTensor *src, OviQuantKind kind, const char *what,
                     GError **error)
{
  g_autoptr (OviTensor) f = NULL;
  g_autoptr (OviTensor) q = NULL;
  g_autoptr (OviTensor) scale = NULL;
  const float *v;
  int64_t rows, cols, n;
  double qmax;
  gboolean per_tensor = kind == OVI_QUANT_F8_PER_TENSOR;

  what = what ? what : "tensor";
  if (src->ndim < 1 || !ovi_dtype_is_float (src->dtype)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "cannot quantise %s: dtype %s, rank %d (need a float tensor "
                 "of rank >= 1)",
                 what, ovi_dtype_name (src->dtype), src->ndim);
    return NULL;
  }
  f = ovi_tensor_to_f32 (src, error);
  if (f == NULL)
    return NULL;
  if (kind == OVI_QUANT_NONE)
    return g_steal_pointer (&f);
  n = ovi_tensor_numel (f);
  rows = src->shape[0];
  cols = rows > 0 ? n / rows : 0;
  v = ovi_tensor_data (f);
  for (int64_t i = 0; i < n; i++) {
    if (!isfinite (v[i])) {
      g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                   "cannot quantise %s: element %" G_GINT64_FORMAT
                   " is not finite",
                   what, i);
      return NULL;
    }
  }
  qmax = kind == OVI_QUANT_I8_PER_CHANNEL ? 127.0 : 448.0;
  q = ovi_tensor_new (ovi_quant_kind_dtype (kind), src->ndim, src->shape,
                      error);
  if (q == NULL)
    return NULL;
  {
    int64_t ss[1] = { per_tensor ? 1 : rows };
    scale = ovi_tensor_new (OVI_DTYPE_F32, 1, ss, error);
    if (scale == NULL)
      return NULL;
  }
  float *sc = ovi_tensor_data (scale);
  uint8_t *qf = ovi_tensor_data (q);
  int8_t *qi = ovi_tensor_data (q);
  double amax_all = 0;

  for (int64_t i = 0; i < n; i++)
    amax_all = MAX (amax_all, fabs (v[i]));
  for (int64_t r = 0; r < rows; r++) {
    const float *row = v + r * cols;
    double amax = 0;
    float s;

    if (per_tensor)
      amax = amax_all;
    else
      for (int64_t c = 0; c < cols; c++)
        amax = MAX (amax, fabs (row[c]));
    s = amax > 0 ? (float) (amax / qmax) : 1.0f;
    if (!per_tensor || r == 0)
      sc[per_tensor ? 0 : r] = s;
    for (int64_t c = 0; c < cols; c++) {
      float x = row[c] / s;
      if (kind == OVI_QUANT_I8_PER_CHANNEL)
        qi[r * cols + c] = (int8_t) CLAMP (lrintf (x), -127, 127);
      else
        qf[r * cols + c] = ovi_f32_to_f8e4m3 (x);
    }
  }
  q->scale = g_steal_pointer (&scale);
  return g_steal_pointer (&q);
}

double
ovi_quantize_rel_l2 (const OviTensor *quantised, const OviTensor *src)
{
  g_autoptr (OviTensor) a = ovi_tensor_to_f32 (quantised, NULL);
  g_autoptr (OviTensor) b = ovi_tensor_to_f32 (src, NULL);
  double num = 0, den = 0;

  if (a == NULL || b == NULL || ovi_tensor_numel (a) != ovi_tensor_numel (b))
    return INFINITY;
  const float *x = ovi_tensor_data (a), *y = ovi_tensor_data (b);
  for (int64_t i = 0; i < ovi_tensor_numel (a); i++) {
    num += ((double) x[i] - y[i]) * ((double) x[i] - y[i]);
    den += (double) y[i] * y[i];
  }
  return den > 0 ? sqrt (num / den) : sqrt (num);
}
