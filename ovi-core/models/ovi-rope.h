/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: rotary position tables of the fusion DiT.
 *
 * Interleaved pairs (x[2j], x[2j+1]) of each head are rotated by an angle
 * position * omega_j. The tables are computed in float64 and stored as
 * float32 cos/sin rows, one row per token, as ovi_op_rope takes them.
 *
 * Video (3-D): head_dim d gives d/2 pairs split into a frame band, a row
 * band and a column band. The frame band has d - 4*(d/6) dims (pairs) and
 * the row and column bands 2*(d/6) dims each (d = 128: 22/21/21 pairs;
 * d = 32: 6/5/5). Each band has its own frequencies
 * omega_k = 10000^(-2k/band_dims).
 * Audio (1-D): only the first (d - 4*(d/6))/2 pairs rotate, by
 * position * (scale * omega_k); the others pass through.
 */
#pragma once

#include "ovi-tensor.h"

G_BEGIN_DECLS

/* dims of the frame band (and of the audio rotated part) for head_dim d */
int ovi_rope_first_band_dims (int head_dim);

/* [F*h*w, head_dim/2] cos and sin, tokens in (f, i, j) row-major order */
void ovi_rope_video_tables (int head_dim, int64_t frames, int64_t height,
                            int64_t width, OviTensor **cos_out,
                            OviTensor **sin_out);

/* [length, ovi_rope_first_band_dims (head_dim) / 2] cos and sin */
void ovi_rope_audio_tables (int head_dim, int64_t length, double scale,
                            OviTensor **cos_out, OviTensor **sin_out);

G_END_DECLS
