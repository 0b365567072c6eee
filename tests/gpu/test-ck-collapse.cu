/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: ck_collapse (kernels/ovi-ck-common.cuh), the host-side merge of
 * descriptor dims the elementwise and row kernels launch with, must leave
 * every element's offset unchanged. Host code only: runs without a GPU.
 * Random shapes of 1-6 dims with contiguous, permuted, sliced, broadcast
 * (stride 0) and size-1 dims; each descriptor against its collapsed form
 * for every linear index, with 0 and 1 trailing dims kept. */
#include "ovi-ck-common.cuh"

#include <stdio.h>
#include <stdlib.h>

static unsigned rng = 12345u;

static int
rnd (int n)
{
  rng = rng * 1103515245u + 12345u;
  return (int) ((rng >> 16) % (unsigned) n);
}

static OviCkDesc
random_desc (void)
{
  OviCkDesc d = {};
  int64_t span = 1;

  d.data = &d;
  d.nd = 1 + rnd (6);
  for (int k = d.nd - 1; k >= 0; k--) {
    int kind = rnd (5);
    d.shape[k] = kind == 0 ? 1 : 1 + rnd (5);
    if (kind == 1)
      d.stride[k] = 0; /* broadcast */
    else if (kind == 2)
      d.stride[k] = span * (1 + rnd (3)); /* sliced */
    else
      d.stride[k] = span;
    span = (d.stride[k] ? d.stride[k] : span) * d.shape[k];
  }
  if (rnd (4) == 0 && d.nd > 1) { /* a permuted view */
    int a = rnd (d.nd), b = rnd (d.nd);
    int64_t s = d.shape[a], t = d.stride[a];
    d.shape[a] = d.shape[b];
    d.stride[a] = d.stride[b];
    d.shape[b] = s;
    d.stride[b] = t;
  }
  return d;
}

int
main (void)
{
  int checked = 0, merged = 0;

  for (int t = 0; t < 20000; t++) {
    OviCkDesc d = random_desc ();
    int64_t n = 1;
    for (int k = 0; k < d.nd; k++)
      n *= d.shape[k];
    for (int keep = 0; keep <= 1; keep++) {
      OviCkDesc c = ck_collapse (d, keep);
      if (c.nd < d.nd)
        merged++;
      if (keep && c.nd < 1) {
        fprintf (stderr, "case %d: keep 1 left %d dims\n", t, c.nd);
        return 1;
      }
      if (keep && (c.shape[c.nd - 1] != d.shape[d.nd - 1]
                   || c.stride[c.nd - 1] != d.stride[d.nd - 1])) {
        fprintf (stderr, "case %d: the kept last dim changed\n", t);
        return 1;
      }
      for (int64_t i = 0; i < n; i++)
        if (ck_off (d, i) != ck_off (c, i)) {
          fprintf (stderr,
                   "case %d (keep %d, %d -> %d dims): offset of %lld is %lld, "
                   "was %lld\n",
                   t, keep, d.nd, c.nd, (long long) i,
                   (long long) ck_off (c, i), (long long) ck_off (d, i));
          return 1;
        }
      checked++;
    }
  }
  printf ("%d descriptors checked, %d had dims merged or dropped\n", checked,
          merged);
  return merged > checked / 4 ? 0 : 1;
}
