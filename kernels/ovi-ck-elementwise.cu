/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: copy/fill, elementwise, row (norm, softmax, modulate, mean),
 * channel norm, RoPE, resampling and embedding kernels. Simple grid-stride
 * loops over the contiguous output; inputs through broadcast descriptors. */
#include "ovi-ck-common.cuh"

/* ---- copy / fill ---- */

static __global__ void
k_copy (OviCkDesc dd, int64_t n, OviCkDesc src, OviCkScale ss, OviCkScale ds,
        int raw)
{
  void *dst = (void *) dd.data;
  const int ddt = dd.dtype;

  for (int64_t i0 = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i0 < n;
       i0 += (int64_t) gridDim.x * blockDim.x) {
    int64_t o = ck_off (src, i0);
    int64_t i = ck_off (dd, i0); /* dst element offset */
    if (raw) {
      switch (raw) {
        case 1:
          ((uint8_t *) dst)[i] = ((const uint8_t *) src.data)[o];
          break;
        case 2:
          ((uint16_t *) dst)[i] = ((const uint16_t *) src.data)[o];
          break;
        case 4:
          ((uint32_t *) dst)[i] = ((const uint32_t *) src.data)[o];
          break;
        default:
          ((uint64_t *) dst)[i] = ((const uint64_t *) src.data)[o];
          break;
      }
    } else {
      float v = ck_ld (src.data, src.dtype, o);
      if (ss.data)
        v *= ck_scale (ss, i0);
      if (ds.data)
        v /= ck_scale (ds, i0);
      ck_st (dst, ddt, i, v);
    }
  }
}

extern "C" cudaError_t
ovi_ck_copy (cudaStream_t stream, OviCkDesc dst, int64_t n, OviCkDesc src,
             OviCkScale src_scale, OviCkScale dst_scale, int raw)
{
  if (n <= 0)
    return cudaSuccess;
  k_copy<<<ck_blocks (n, OVI_CK_THREADS), OVI_CK_THREADS, 0, stream>>> (
      ck_collapse (dst, 0), n, ck_collapse (src, 0), src_scale, dst_scale,
      raw);
  return cudaGetLastError ();
}

static __global__ void
k_fill (void *dst, int ddt, int64_t n, float value, OviCkScale ds)
{
  for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (int64_t) gridDim.x * blockDim.x)
    ck_st (dst, ddt, i, ds.data ? value / ck_scale (ds, i) : value);
}

extern "C" cudaError_t
ovi_ck_fill (cudaStream_t stream, void *dst, int dst_dtype, int64_t n,
             float value, OviCkScale dst_scale)
{
  if (n <= 0)
    return cudaSuccess;
  k_fill<<<ck_blocks (n, OVI_CK_THREADS), OVI_CK_THREADS, 0, stream>>> (
      dst, dst_dtype, n, value, dst_scale);
  return cudaGetLastError ();
}

/* ---- elementwise ---- */

static __global__ void
k_ew (void *out, int odt, int64_t n, int code, int act, float f0, float f1,
      OviCkDesc a, OviCkDesc b, OviCkDesc c)
{
  for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (int64_t) gridDim.x * blockDim.x) {
    float x = ck_ld (a.data, a.dtype, ck_off (a, i));
    float y = b.data ? ck_ld (b.data, b.dtype, ck_off (b, i)) : 0.0f;
    float r;

    switch (code) {
      case OVI_CK_EW_UNARY:
        r = f0 * ck_act (x, act);
        break;
      case OVI_CK_EW_BINARY:
        r = act == 0 ? x + y : act == 1 ? x - y : act == 2 ? x * y : x / y;
        break;
      case OVI_CK_EW_AXPBY:
        r = b.data ? f0 * x + f1 * y : f0 * x + f1;
        break;
      case OVI_CK_EW_CLAMP:
        r = fminf (fmaxf (x, f0), f1);
        break;
      case OVI_CK_EW_GATE_ADD:
        r = x + y * ck_ld (c.data, c.dtype, ck_off (c, i));
        break;
      case OVI_CK_EW_SNAKE: {
        float al = y, be = ck_ld (c.data, c.dtype, ck_off (c, i));
        float s;
        if (act) {
          al = expf (al);
          be = expf (be);
        }
        s = sinf (x * al);
        r = x + (1.0f / (be + 1e-9f)) * (s * s);
        break;
      }
      case OVI_CK_EW_ADD_ACT:
        r = ck_act (x + y, act);
        break;
      default:
        r = x;
        break;
    }
    ck_st (out, odt, i, r);
  }
}

extern "C" cudaError_t
ovi_ck_ew (cudaStream_t stream, void *out, int out_dtype, int64_t n, int code,
           int act, float f0, float f1, OviCkDesc a, OviCkDesc b, OviCkDesc c)
{
  if (n <= 0)
    return cudaSuccess;
  k_ew<<<ck_blocks (n, OVI_CK_THREADS), OVI_CK_THREADS, 0, stream>>> (
      out, out_dtype, n, code, act, f0, f1, ck_collapse (a, 0),
      ck_collapse (b, 0), ck_collapse (c, 0));
  return cudaGetLastError ();
}

/* ---- rows: one block per row ---- */

static __global__ void
k_rows (void *out, int odt, int64_t n, int code, float eps, OviCkDesc x,
        OviCkDesc p0, OviCkDesc p1)
{
  __shared__ float sh[33];
  const int64_t row = blockIdx.x;
  const int64_t xo = ck_row_off (x, row), xs = ck_col_stride (x);
  const int64_t o0 = p0.data ? ck_row_off (p0, row) : 0,
                s0 = p0.data ? ck_col_stride (p0) : 0;
  const int64_t o1 = p1.data ? ck_row_off (p1, row) : 0,
                s1 = p1.data ? ck_col_stride (p1) : 0;
  const int64_t ob = row * n;

#define XV(i) ck_ld (x.data, x.dtype, xo + (i) *xs)

  if (code == OVI_CK_ROW_SOFTMAX) {
    float m = -INFINITY, s = 0.0f, inv;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
      m = fmaxf (m, XV (i));
    m = ck_block_max (m, sh);
    if (m == -INFINITY) {
      /* a fully masked row gives 0, as the CPU backend */
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
        ck_st (out, odt, ob + i, 0.0f);
      return;
    }
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
      s += expf (XV (i) - m);
    s = ck_block_sum (s, sh);
    inv = 1.0f / s;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
      ck_st (out, odt, ob + i, expf (XV (i) - m) * inv);
  } else if (code == OVI_CK_ROW_RMS) {
    float ss = 0.0f, r;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      float v = XV (i);
      ss += v * v;
    }
    ss = ck_block_sum (ss, sh);
    r = rsqrtf (ss / (float) n + eps);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      float v = XV (i) * r;
      if (p0.data)
        v *= ck_ld (p0.data, p0.dtype, o0 + i * s0);
      ck_st (out, odt, ob + i, v);
    }
  } else if (code == OVI_CK_ROW_MEAN) {
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
      s += XV (i);
    s = ck_block_sum (s, sh);
    if (threadIdx.x == 0)
      ck_st (out, odt, row, n ? s / (float) n : NAN);
  } else {
    /* layer norm / modulate: two-pass mean and variance */
    float s = 0.0f, v = 0.0f, m, r;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
      s += XV (i);
    s = ck_block_sum (s, sh);
    m = n ? s / (float) n : 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      float d = XV (i) - m;
      v += d * d;
    }
    v = ck_block_sum (v, sh);
    r = rsqrtf ((n ? v / (float) n : 0.0f) + eps);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      float y = (XV (i) - m) * r;
      if (code == OVI_CK_ROW_LAYER) {
        if (p0.data)
          y *= ck_ld (p0.data, p0.dtype, o0 + i * s0);
        if (p1.data)
          y += ck_ld (p1.data, p1.dtype, o1 + i * s1);
      } else {
        float shift = ck_ld (p0.data, p0.dtype, o0 + i * s0);
        float scale = ck_ld (p1.data, p1.dtype, o1 + i * s1);
        y = y * (1.0f + scale) + shift;
      }
      ck_st (out, odt, ob + i, y);
    }
  }
#undef XV
}

extern "C" cudaError_t
ovi_ck_rows (cudaStream_t stream, void *out, int out_dtype, int64_t rows,
             int64_t n, int code, float eps, OviCkDesc x, OviCkDesc p0,
             OviCkDesc p1)
{
  if (rows <= 0)
    return cudaSuccess;
  if (rows > 0x7fffffffLL)
    return cudaErrorInvalidValue;
  k_rows<<<(unsigned) rows, OVI_CK_THREADS, 0, stream>>> (
      out, out_dtype, n, code, eps, ck_collapse (x, 1), ck_collapse (p0, 1),
      ck_collapse (p1, 1));
  return cudaGetLastError ();
}

/* ---- channel norm ---- */

/* x[C, N]: a block owns CN_POS consecutive positions (coalesced loads along
 * N) and splits the channels among CN_SPLIT thread rows, which reduce the
 * squared sums in shared memory; so small position counts (a VAE chunk's
 * 44 x 44 grid) still fill the GPU, and each thread reads C / CN_SPLIT
 * channels instead of all C twice */
#define CN_POS   32
#define CN_SPLIT 8

static __global__ void
__launch_bounds__ (CN_POS *CN_SPLIT)
    k_channel_norm (void *out, int odt, int64_t C, int64_t N, OviCkDesc x,
                    const float *gamma, int kind)
{
  __shared__ float part[CN_SPLIT][CN_POS];
  const int tx = threadIdx.x % CN_POS, ty = threadIdx.x / CN_POS;
  const int64_t i = (int64_t) blockIdx.x * CN_POS + tx;
  float ss = 0.0f, f;

  if (i < N)
    for (int64_t c = ty; c < C; c += CN_SPLIT) {
      float v = ck_ld (x.data, x.dtype, ck_off (x, c * N + i));
      ss += v * v;
    }
  part[ty][tx] = ss;
  __syncthreads ();
  if (ty == 0) {
    for (int r = 1; r < CN_SPLIT; r++)
      ss += part[r][tx];
    part[0][tx] = ss;
  }
  __syncthreads ();
  if (i >= N)
    return;
  ss = part[0][tx];
  if (kind == 0)
    f = sqrtf ((float) C) / fmaxf (sqrtf (ss), 1e-12f);
  else
    f = 1.0f / (1e-4f + sqrtf (ss) / sqrtf ((float) C));
  for (int64_t c = ty; c < C; c += CN_SPLIT) {
    float v = ck_ld (x.data, x.dtype, ck_off (x, c * N + i)) * f;
    if (gamma)
      v *= gamma[c];
    ck_st (out, odt, c * N + i, v);
  }
}

extern "C" cudaError_t
ovi_ck_channel_norm (cudaStream_t stream, void *out, int out_dtype, int64_t C,
                     int64_t N, OviCkDesc x, const float *gamma, int kind)
{
  int64_t blocks = (N + CN_POS - 1) / CN_POS;

  if (N <= 0 || C <= 0)
    return cudaSuccess;
  if (blocks > 0x7fffffffLL)
    return cudaErrorInvalidValue;
  k_channel_norm<<<(unsigned) blocks, CN_POS * CN_SPLIT, 0, stream>>> (
      out, out_dtype, C, N, ck_collapse (x, 0), gamma, kind);
  return cudaGetLastError ();
}

/* ---- RoPE ---- */

/* one thread per pair (both outputs) or per passed-through element, so
 * out may be x itself */
static __global__ void
k_rope (void *out, int odt, int64_t n, int64_t L, int64_t H, int64_t D,
        int64_t P, OviCkDesc x, OviCkDesc cs, OviCkDesc sn)
{
  for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (int64_t) gridDim.x * blockDim.x) {
    int64_t row = i / D, d = i - row * D;

    if (d < 2 * P) {
      int64_t l, p;
      float x0, x1, c, s;
      if (d & 1)
        continue; /* written by the thread of its even partner */
      l = (row / H) % L;
      p = d >> 1;
      x0 = ck_ld (x.data, x.dtype, ck_off (x, i));
      x1 = ck_ld (x.data, x.dtype, ck_off (x, i + 1));
      c = ck_ld (cs.data, cs.dtype, ck_off (cs, l * P + p));
      s = ck_ld (sn.data, sn.dtype, ck_off (sn, l * P + p));
      ck_st (out, odt, i, x0 * c - x1 * s);
      ck_st (out, odt, i + 1, x0 * s + x1 * c);
    } else {
      ck_st (out, odt, i, ck_ld (x.data, x.dtype, ck_off (x, i)));
    }
  }
}

extern "C" cudaError_t
ovi_ck_rope (cudaStream_t stream, void *out, int out_dtype, int64_t n,
             int64_t L, int64_t H, int64_t D, int64_t P, OviCkDesc x,
             OviCkDesc cos, OviCkDesc sin)
{
  if (n <= 0)
    return cudaSuccess;
  k_rope<<<ck_blocks (n, OVI_CK_THREADS), OVI_CK_THREADS, 0, stream>>> (
      out, out_dtype, n, L, H, D, P, ck_collapse (x, 0), ck_collapse (cos, 0),
      ck_collapse (sin, 0));
  return cudaGetLastError ();
}

/* ---- pad / upsample ---- */

typedef struct {
  int nd, n, mode;
  int64_t out_shape[OVI_CK_MAX_DIMS];
  int before[OVI_CK_MAX_DIMS];
  int factor[OVI_CK_MAX_DIMS];
} ResampleGeom;

static __global__ void
k_resample (void *out, int odt, int64_t total, ResampleGeom g, OviCkDesc x)
{
  for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (int64_t) gridDim.x * blockDim.x) {
    int64_t rem = i, off = 0;
    int inside = 1;

    for (int d = g.nd - 1; d >= 0; d--) {
      int64_t s = g.out_shape[d];
      int64_t c = rem % s;
      int k = d - (g.nd - g.n); /* index among the last n dims, or < 0 */
      rem /= s;
      if (k >= 0) {
        if (g.mode == OVI_CK_UPSAMPLE) {
          c /= g.factor[k];
        } else {
          c -= g.before[k];
          if (c < 0 || c >= x.shape[d]) {
            if (g.mode == OVI_CK_PAD_ZERO)
              inside = 0;
            c = c < 0 ? 0 : x.shape[d] - 1;
          }
        }
      }
      off += c * x.stride[d];
    }
    ck_st (out, odt, i, inside ? ck_ld (x.data, x.dtype, off) : 0.0f);
  }
}

extern "C" cudaError_t
ovi_ck_resample (cudaStream_t stream, void *out, int out_dtype, int nd,
                 const int64_t *out_shape, OviCkDesc x, int n,
                 const int *before, const int *factor, int mode)
{
  ResampleGeom g;
  int64_t total = 1;

  if (nd > OVI_CK_MAX_DIMS || n > nd || n < 1)
    return cudaErrorInvalidValue;
  g.nd = nd;
  g.n = n;
  g.mode = mode;
  for (int d = 0; d < nd; d++) {
    g.out_shape[d] = out_shape[d];
    total *= out_shape[d];
  }
  for (int k = 0; k < n; k++) {
    g.before[k] = before ? before[k] : 0;
    g.factor[k] = factor ? factor[k] : 1;
  }
  if (total <= 0)
    return cudaSuccess;
  k_resample<<<ck_blocks (total, OVI_CK_THREADS), OVI_CK_THREADS, 0,
               stream>>> (out, out_dtype, total, g, x);
  return cudaGetLastError ();
}

/* ---- embedding ---- */

static __global__ void
k_embedding (void *out, int odt, int64_t n, int64_t D, const int64_t *ids,
             OviCkDesc t, OviCkScale ts)
{
  for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (int64_t) gridDim.x * blockDim.x) {
    int64_t r = i / D, d = i - r * D, id = ids[r];
    float v = ck_ld (t.data, t.dtype, id * t.stride[0] + d * t.stride[1]);
    if (ts.data)
      v *= ck_ld (ts.data, ts.dtype, id * ts.stride);
    ck_st (out, odt, i, v);
  }
}

extern "C" cudaError_t
ovi_ck_embedding (cudaStream_t stream, void *out, int out_dtype, int64_t n_ids,
                  int64_t D, const int64_t *ids, OviCkDesc table,
                  OviCkScale table_scale)
{
  int64_t n = n_ids * D;

  if (n <= 0)
    return cudaSuccess;
  k_embedding<<<ck_blocks (n, OVI_CK_THREADS), OVI_CK_THREADS, 0, stream>>> (
      out, out_dtype, n, D, ids, table, table_scale);
  return cudaGetLastError ();
}
