/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the image-to-video first frame, prepared as the official
 * preprocess_image_tensor does: RGB -> [-1, 1] -> the size picked by
 * _best_hw_for_area -> bicubic resize (F.interpolate, align_corners=False,
 * no antialias, cubic A = -0.75, edge taps clamped). Host code, fp32. */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "ovi-tensor.h"

G_BEGIN_DECLS

/* src [C, H, W] -> dst [C, Ho, Wo], both contiguous f32 */
void ovi_image_resize_bicubic (const float *src, int channels, int height,
                               int width, float *dst, int out_height,
                               int out_width);

/* _best_hw_for_area(h, w, area, multiple) */
void ovi_image_best_hw_for_area (int height, int width, int64_t area,
                                 int multiple, int *out_height, int *out_width);

/* Packed 8-bit RGB rows (`stride` bytes apart) -> [3, Ho, Wo] F32 in [-1, 1]
 * at the size picked for `area` (multiples of 32), resized when it differs. */
OviTensor *ovi_image_prepare_rgb8 (const uint8_t *rgb, int height, int width,
                                   int stride, int64_t area, GError **error);

/* Frame `index` of decoded frames [3, n, H, W] F32 in [-1, 1] as packed
 * 8-bit RGB as the official writer makes it ((x + 1) / 2 * 255, clamped,
 * truncated): rows `stride` bytes apart, `pixel_stride` 3 (RGB) or 4 (RGBx,
 * the fourth byte 255). */
void ovi_image_frame_to_rgb8 (const OviTensor *frames, int index, uint8_t *dst,
                              int stride, int pixel_stride);

G_END_DECLS
