/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: rotary position tables of the fusion DiT (see ovi-rope.h). */
#include "ovi-rope.h"

#include <math.h>

int
ovi_rope_first_band_dims (int head_dim)
{
  return head_dim - 4 * (head_dim / 6);
}

/* omega_k = 1 / 10000^(2k / dims), k < dims / 2, in float64 */
static double
band_omega (int dims, int k)
{
  return 1.0 / pow (10000.0, (double) (2 * k) / (double) dims);
}

static void
fill_band (float *cos_row, float *sin_row, int first_pair, int dims,
           double position, double scale)
{
  for (int k = 0; k < dims / 2; k++) {
    double angle = position * (scale * band_omega (dims, k));
    cos_row[first_pair + k] = (float) cos (angle);
    sin_row[first_pair + k] = (float) sin (angle);
  }
}

void
ovi_rope_video_tables (int head_dim, int64_t frames, int64_t height,
                       int64_t width, OviTensor **cos_out, OviTensor **sin_out)
{
  int pairs = head_dim / 2;
  int d0 = ovi_rope_first_band_dims (head_dim), d1 = 2 * (head_dim / 6);
  int64_t shape[2] = { frames * height * width, pairs };
  OviTensor *c = ovi_tensor_new_f32 (2, shape);
  OviTensor *s = ovi_tensor_new_f32 (2, shape);
  float *cd = ovi_tensor_data (c), *sd = ovi_tensor_data (s);

  for (int64_t f = 0; f < frames; f++)
    for (int64_t i = 0; i < height; i++)
      for (int64_t j = 0; j < width; j++) {
        int64_t row = ((f * height) + i) * width + j;
        float *cr = cd + row * pairs, *sr = sd + row * pairs;
        fill_band (cr, sr, 0, d0, (double) f, 1.0);
        fill_band (cr, sr, d0 / 2, d1, (double) i, 1.0);
        fill_band (cr, sr, d0 / 2 + d1 / 2, d1, (double) j, 1.0);
      }
  *cos_out = c;
  *sin_out = s;
}

void
ovi_rope_audio_tables (int head_dim, int64_t length, double scale,
                       OviTensor **cos_out, OviTensor **sin_out)
{
  int d0 = ovi_rope_first_band_dims (head_dim);
  int64_t shape[2] = { length, d0 / 2 };
  OviTensor *c = ovi_tensor_new_f32 (2, shape);
  OviTensor *s = ovi_tensor_new_f32 (2, shape);
  float *cd = ovi_tensor_data (c), *sd = ovi_tensor_data (s);

  for (int64_t p = 0; p < length; p++)
    fill_band (cd + p * (d0 / 2), sd + p * (d0 / 2), 0, d0, (double) p, scale);
  *cos_out = c;
  *sin_out = s;
}
