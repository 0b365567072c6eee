/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: writes the same deterministic tensors with ovi_pth_write (nested
 * under "generator") and ovi_safetensors_write, for torch-check.py to read
 * back with torch. Usage: write-sample OUT.pth OUT.safetensors */
#include "ovi-weights.h"

#include <stdio.h>

static OviTensor *
filled (OviDType dtype, int ndim, const int64_t *shape, int seed)
{
  OviTensor *t = ovi_tensor_new (dtype, ndim, shape, NULL);
  int64_t n = ovi_tensor_numel (t);
  guint8 *p = ovi_tensor_data (t);
  guint32 state = 2654435761u * (guint32) (seed + 1);

  for (int64_t i = 0; i < n; i++) {
    double v;

    state = state * 1664525u + 1013904223u;
    v = ((double) (state >> 8) / (double) (1 << 24) - 0.5) * 8.0;
    switch (dtype) {
      case OVI_DTYPE_F32:
        ((float *) p)[i] = (float) v;
        break;
      case OVI_DTYPE_F64:
        ((double *) p)[i] = v / 7.0;
        break;
      case OVI_DTYPE_F16:
        ((guint16 *) p)[i] = ovi_f32_to_f16 ((float) v);
        break;
      case OVI_DTYPE_BF16:
        ((guint16 *) p)[i] = ovi_f32_to_bf16 ((float) v);
        break;
      case OVI_DTYPE_F8_E4M3:
        p[i] = ovi_f32_to_f8e4m3 ((float) v);
        break;
      case OVI_DTYPE_I64:
        ((gint64 *) p)[i] = (gint64) (v * 1e12);
        break;
      case OVI_DTYPE_I32:
        ((gint32 *) p)[i] = (gint32) (v * 1e6);
        break;
      case OVI_DTYPE_I8:
        ((gint8 *) p)[i] = (gint8) (v * 30);
        break;
      case OVI_DTYPE_U8:
        p[i] = (guint8) (state >> 24);
        break;
      case OVI_DTYPE_BOOL:
        p[i] = (state >> 20) & 1;
        break;
      default:
        break;
    }
  }
  return t;
}

int
main (int argc, char **argv)
{
  static const int64_t s345[] = { 3, 4, 5 }, s67[] = { 6, 7 }, s1[] = { 1 },
                       s0[] = { 0, 3 };
  GError *error = NULL;
  GPtrArray *owned
      = g_ptr_array_new_with_free_func ((GDestroyNotify) ovi_tensor_unref);
  GArray *named = g_array_new (FALSE, FALSE, sizeof (OviNamedTensor));
  int order[] = { 1, 0 };
  OviTensor *t;
  guint n_pth;

  if (argc != 3) {
    fprintf (stderr, "usage: write-sample OUT.pth OUT.safetensors\n");
    return 2;
  }
#define ADD(nm, tensor)                                                        \
  G_STMT_START                                                                 \
  {                                                                            \
    OviNamedTensor _n = { nm, tensor };                                        \
    g_ptr_array_add (owned, tensor);                                           \
    g_array_append_val (named, _n);                                            \
  }                                                                            \
  G_STMT_END
  for (int d = 0; d < OVI_N_DTYPES; d++) {
    if ((OviDType) d == OVI_DTYPE_F8_E4M3)
      continue;
    ADD (g_strdup_printf ("blocks.%d.%s", d, ovi_dtype_name ((OviDType) d)),
         filled ((OviDType) d, 3, s345, d));
  }
  t = filled (OVI_DTYPE_BF16, 2, s67, 40);
  ADD (g_strdup ("proj.weight_t"), ovi_tensor_permute (t, order));
  ovi_tensor_unref (t);
  ADD (g_strdup ("scalar"), filled (OVI_DTYPE_F32, 0, s1, 41));
  ADD (g_strdup ("empty"), filled (OVI_DTYPE_F16, 2, s0, 42));
  n_pth = named->len;
  /* torch 1.13 has no float8 storage: F8 goes to the safetensors file only */
  ADD (g_strdup ("fp8.weight"), filled (OVI_DTYPE_F8_E4M3, 2, s67, 43));

  if (!ovi_pth_write (argv[1], (OviNamedTensor *) named->data, n_pth,
                      "generator", &error)
      || !ovi_safetensors_write (argv[2], (OviNamedTensor *) named->data,
                                 named->len, NULL, &error)) {
    fprintf (stderr, "write-sample: %s\n", error->message);
    return 1;
  }
  for (guint i = 0; i < named->len; i++)
    g_free ((char *) g_array_index (named, OviNamedTensor, i).name);
  g_array_unref (named);
  g_ptr_array_unref (owned);
  return 0;
}
