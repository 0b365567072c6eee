/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: first-frame preparation for image-to-video (host, fp32). */
#include "ovi-image.h"

#include <math.h>

/* PyTorch's cubic convolution with A = -0.75 */
static inline float
cc1 (float x, float a)
{
  return ((a + 2) * x - (a + 3)) * x * x + 1;
}

static inline float
cc2 (float x, float a)
{
  return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
}

static void
coeffs (float t, float c[4])
{
  const float a = -0.75f;

  c[0] = cc2 (t + 1.0f, a);
  c[1] = cc1 (t, a);
  c[2] = cc1 (1.0f - t, a);
  c[3] = cc2 (2.0f - t, a);
}

static inline int
clampi (int v, int hi)
{
  return v < 0 ? 0 : (v > hi ? hi : v);
}

void
ovi_image_resize_bicubic (const float *src, int channels, int height, int width,
                          float *dst, int out_height, int out_width)
{
  /* align_corners=False: src = (dst + 0.5) * in / out - 0.5, not clamped
   * for cubic; taps outside the image take the edge value. As PyTorch: the
   * scale in float, the source position in double. */
  float sy = (float) height / (float) out_height;
  float sx = (float) width / (float) out_width;
  int *x0 = g_new (int, out_width);
  float *cx = g_new (float, 4 * out_width);

  for (int ox = 0; ox < out_width; ox++) {
    double real = sx * (ox + 0.5) - 0.5;
    int ix = (int) floor (real);
    x0[ox] = ix;
    coeffs ((float) (real - ix), cx + 4 * ox);
  }
  for (int oy = 0; oy < out_height; oy++) {
    double real = sy * (oy + 0.5) - 0.5;
    int iy = (int) floor (real);
    float cy[4];
    coeffs ((float) (real - iy), cy);
    for (int c = 0; c < channels; c++) {
      const float *plane = src + (size_t) c * height * width;
      float *out = dst + ((size_t) c * out_height + oy) * out_width;
      for (int ox = 0; ox < out_width; ox++) {
        float rows[4];
        for (int k = 0; k < 4; k++) {
          const float *row
              = plane + (size_t) clampi (iy - 1 + k, height - 1) * width;
          int ix = x0[ox];
          const float *w = cx + 4 * ox;
          rows[k] = row[clampi (ix - 1, width - 1)] * w[0]
                    + row[clampi (ix, width - 1)] * w[1]
                    + row[clampi (ix + 1, width - 1)] * w[2]
                    + row[clampi (ix + 2, width - 1)] * w[3];
        }
        out[ox] = rows[0] * cy[0] + rows[1] * cy[1] + rows[2] * cy[2]
                  + rows[3] * cy[3];
      }
    }
  }
  g_free (x0);
  g_free (cx);
}

/* Python round(): half to even */
static int64_t
py_round (double x)
{
  return (int64_t) nearbyint (x);
}

void
ovi_image_best_hw_for_area (int h, int w, int64_t area, int multiple,
                            int *out_h, int *out_w)
{
  double ratio = w / (double) h;
  int64_t unit = (int64_t) multiple * multiple;
  int64_t tgt_units = MAX (1, area / unit);
  int64_t p0 = MAX (1, py_round (sqrt (tgt_units / MAX (ratio, 1e-8))));
  int64_t cand[8][2];
  int n = 0, best = 0;
  double best_a = 0, best_r = 0;

  if (area <= 0) {
    *out_h = h;
    *out_w = w;
    return;
  }
  for (int dp = -3; dp <= 3; dp++) {
    int64_t p = MAX (1, p0 + dp);
    int64_t q = MAX (1, py_round (p * ratio));
    cand[n][0] = p * multiple;
    cand[n][1] = q * multiple;
    n++;
  }
  {
    double scale = sqrt (area / (h * (double) w));
    cand[n][0] = MAX (multiple, py_round (h * scale / multiple) * multiple);
    cand[n][1] = MAX (multiple, py_round (w * scale / multiple) * multiple);
    n++;
  }
  /* min by (|area - target|, |W/H - ratio|); the first minimum wins */
  for (int i = 0; i < n; i++) {
    double a = fabs ((double) (cand[i][0] * cand[i][1] - area));
    double r = fabs (cand[i][1] / MAX ((double) cand[i][0], 1e-8) - ratio);
    if (i == 0 || a < best_a || (a == best_a && r < best_r)) {
      best = i;
      best_a = a;
      best_r = r;
    }
  }
  *out_h = MAX (multiple, (int) cand[best][0]);
  *out_w = MAX (multiple, (int) cand[best][1]);
}

OviTensor *
ovi_image_prepare_rgb8 (const uint8_t *rgb, int height, int width, int stride,
                        int64_t area, GError **error)
{
  int th, tw;
  int64_t in_shape[3] = { 3, height, width };
  g_autoptr (OviTensor) img
      = ovi_tensor_new (OVI_DTYPE_F32, 3, in_shape, error);

  if (img == NULL)
    return NULL;
  float *d = ovi_tensor_data (img);
  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++)
      for (int c = 0; c < 3; c++) {
        float v = rgb[(size_t) y * stride + 3 * x + c] / 255.0f;
        d[((size_t) c * height + y) * width + x] = v * 2.0f - 1.0f;
      }
  ovi_image_best_hw_for_area (height, width, area, 32, &th, &tw);
  if (th == height && tw == width)
    return g_steal_pointer (&img);
  int64_t out_shape[3] = { 3, th, tw };
  OviTensor *out = ovi_tensor_new (OVI_DTYPE_F32, 3, out_shape, error);
  if (out == NULL)
    return NULL;
  ovi_image_resize_bicubic (d, 3, height, width, ovi_tensor_data (out), th, tw);
  return out;
}

/* float [-1, 1] -> 8 bits */
static inline uint8_t
to_u8 (float x)
{
  float v = (x + 1.0f) * 127.5f;
  return v <= 0.0f ? 0 : v >= 255.0f ? 255 : (uint8_t) v;
}

void
ovi_image_frame_to_rgb8 (const OviTensor *frames, int index, uint8_t *dst,
                         int stride, int pixel_stride)
{
  const int64_t n = frames->shape[1], H = frames->shape[2],
                W = frames->shape[3];
  const size_t plane = (size_t) (n * H * W);
  const float *data = ovi_tensor_data (frames);

  for (int64_t y = 0; y < H; y++) {
    uint8_t *row = dst + (size_t) y * stride;
    const float *r = data + ((size_t) index * H + y) * W;
    const float *g = r + plane;
    const float *b = g + plane;
    for (int64_t x = 0; x < W; x++) {
      row[pixel_stride * x] = to_u8 (r[x]);
      row[pixel_stride * x + 1] = to_u8 (g[x]);
      row[pixel_stride * x + 2] = to_u8 (b[x]);
      if (pixel_stride == 4)
        row[pixel_stride * x + 3] = 255;
    }
  }
}
