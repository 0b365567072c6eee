/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the engine's own seeded Gaussian noise.
 *
 * A deterministic N(0, 1) stream from a 64-bit seed (xoshiro256** seeded by
 * splitmix64, Box-Muller in float64), the same on every platform and
 * backend. It is not PyTorch's generator: the official noise for a seed is
 * not reproduced (tests inject the golden noise instead). */
#pragma once

#include "ovi-tensor.h"

G_BEGIN_DECLS

/* A host F32 tensor of the given shape filled from `seed`. */
OviTensor *ovi_noise_gaussian (guint64 seed, int ndim, const int64_t *shape,
                               GError **error);

G_END_DECLS
