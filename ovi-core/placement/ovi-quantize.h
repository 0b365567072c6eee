/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: weight quantisation for the VRAM modes (docs/vram-modes.md).
 *
 * F8_E4M3 with a per-tensor or per-output-channel scale (amax / 448) and
 * I8 weight-only with per-output-channel scales (amax / 127), both stored
 * the way OviTensor describes them: value = raw * scale[i0] (or scale[0]).
 * A row (or tensor) of zeros gets scale 1.
 *
 * Which tensors are quantised follows the official fp8 file
 * (model_fp8_e4m3fn.safetensors, research §4.3): every tensor whose name
 * contains "norm" or "bias" stays 16-bit. We also keep the modulation
 * tables in 16 bit (the official code up-casts them to bf16 before use) and
 * anything of rank < 2. For I8, as optimum-quanto does, only Linear weights
 * (rank 2) are quantised: the patch-embedding convolutions stay 16-bit.
 */
#pragma once

#include <glib.h>

#include "ovi-tensor.h"

G_BEGIN_DECLS

typedef enum {
  OVI_QUANT_NONE,
  OVI_QUANT_F8_PER_TENSOR,  /* F8_E4M3, one scale: amax / 448 */
  OVI_QUANT_F8_PER_CHANNEL, /* F8_E4M3, scale[out] = amax(row) / 448 */
  OVI_QUANT_I8_PER_CHANNEL, /* I8, scale[out] = amax(row) / 127 */
} OviQuantKind;

const char *ovi_quant_kind_to_string (OviQuantKind kind);
OviDType ovi_quant_kind_dtype (OviQuantKind kind); /* NONE: F32 */

/* TRUE when the policy quantises the tensor `name` of original rank
 * `ndim` (before any flattening of conv weights). */
gboolean ovi_quantize_wants (OviQuantKind kind, const char *name, int ndim);

/* A new host tensor holding `src` (any float dtype, host, any strides,
 * scale applied) quantised per `kind`; dim 0 is the output channel. Rank
 * >= 1. NONE: a contiguous F32 copy. Fails (OVI_ERROR_INVALID_ARGUMENT)
 * on device tensors, non-float dtypes or non-finite values (naming
 * `what`). */
OviTensor *ovi_quantize_tensor (const OviTensor *src, OviQuantKind kind,
                                const char *what, GError **error);

/* Relative L2 error |q - w| / |w| of a quantised tensor against its
 * source (both dequantised to f64). */
double ovi_quantize_rel_l2 (const OviTensor *quantised, const OviTensor *src);

G_END_DECLS
