/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: seeded Gaussian noise (see ovi-noise.h). */
#include "ovi-noise.h"

#include <math.h>

typedef struct {
  guint64 s[4];
} Rng;

static guint64
splitmix64 (guint64 *state)
{
  guint64 z = (*state += G_GUINT64_CONSTANT (0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * G_GUINT64_CONSTANT (0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * G_GUINT64_CONSTANT (0x94d049bb133111eb);
  return z ^ (z >> 31);
}

static guint64
rotl (guint64 x, int k)
{
  return (x << k) | (x >> (64 - k));
}

static guint64
next (Rng *r)
{
  guint64 *s = r->s;
  guint64 result = rotl (s[1] * 5, 7) * 9, t = s[1] << 17;

  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl (s[3], 45);
  return result;
}

/* uniform in (0, 1], 53 bits */
static double
uniform (Rng *r)
{
  return ((next (r) >> 11) + 1) * (1.0 / 9007199254740992.0);
}

OviTensor *
ovi_noise_gaussian (guint64 seed, int ndim, const int64_t *shape,
                    GError **error)
{
  OviTensor *t = ovi_tensor_new (OVI_DTYPE_F32, ndim, shape, error);
  Rng r;
  guint64 st = seed;

  if (t == NULL)
    return NULL;
  for (int i = 0; i < 4; i++)
    r.s[i] = splitmix64 (&st);
  float *d = ovi_tensor_data (t);
  int64_t n = ovi_tensor_numel (t);
  for (int64_t i = 0; i < n; i += 2) {
    double rad = sqrt (-2.0 * log (uniform (&r)));
    double ang = 2.0 * G_PI * uniform (&r);
    d[i] = (float) (rad * cos (ang));
    if (i + 1 < n)
      d[i + 1] = (float) (rad * sin (ang));
  }
  return t;
}
