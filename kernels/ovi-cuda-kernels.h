/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the CUDA kernels of the cuda backend module, as C-callable
 * launchers (kernels/\*.cu). Every launcher enqueues on `stream` and returns
 * cudaGetLastError() (cudaSuccess when nothing went wrong).
 *
 * Tensors reach the kernels as descriptors: a data pointer (element [0..]),
 * a dtype code (the OviDType values) and, for each dim of a *target* shape
 * (usually the output's), the element stride to use, 0 where the input is
 * broadcast. Element i of the target (row-major linear index) is read at
 * data[sum_d coord_d(i) * stride[d]]. All arithmetic is fp32.
 */
#pragma once

#include <cuda_runtime_api.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OVI_CK_MAX_DIMS 8

/* same values as OviDType */
enum {
  OVI_CK_F32 = 0,
  OVI_CK_F16,
  OVI_CK_BF16,
  OVI_CK_F8_E4M3,
  OVI_CK_I8,
  OVI_CK_F64,
  OVI_CK_I64,
  OVI_CK_I32,
  OVI_CK_U8,
  OVI_CK_BOOL,
};

typedef struct {
  const void *data; /* NULL: the descriptor is absent */
  int dtype;
  int nd;
  int64_t shape[OVI_CK_MAX_DIMS];
  int64_t stride[OVI_CK_MAX_DIMS];
} OviCkDesc;

/* dequantisation scale: value = raw * scale[(linear / div) * stride]
 * (stride 0: one scale for all); data NULL: no scale */
typedef struct {
  const void *data;
  int dtype;
  int64_t stride;
  int64_t div;
} OviCkScale;

/* elementwise op codes of ovi_ck_ew */
enum {
  OVI_CK_EW_UNARY,    /* out = f0 * act(a) */
  OVI_CK_EW_BINARY,   /* out = a op b (op in act) */
  OVI_CK_EW_AXPBY,    /* out = f0 * a + f1 * (b or 1) */
  OVI_CK_EW_CLAMP,    /* out = min(max(a, f0), f1) */
  OVI_CK_EW_GATE_ADD, /* out = a + b * c */
  OVI_CK_EW_SNAKE,    /* out = a + 1/(beta+1e-9) sin(alpha a)^2, b = alpha,
                         c = beta, act = logscale (exp first) */
  OVI_CK_EW_ADD_ACT,  /* out = act(a + b) */
};

/* row op codes of ovi_ck_rows */
enum {
  OVI_CK_ROW_SOFTMAX,
  OVI_CK_ROW_RMS,      /* p0 = weight (optional) */
  OVI_CK_ROW_LAYER,    /* p0 = weight, p1 = bias (optional) */
  OVI_CK_ROW_MODULATE, /* p0 = shift, p1 = scale */
  OVI_CK_ROW_MEAN,     /* out has one value per row */
};

/* resampling codes */
enum {
  OVI_CK_PAD_ZERO,
  OVI_CK_PAD_REPLICATE,
  OVI_CK_UPSAMPLE,
};

/* dst: a descriptor of the (possibly strided) destination against its own
 * shape; src against the same shape; scales indexed by the linear index;
 * raw: element size for a bit copy (same dtype), else 0 (via fp32) */
cudaError_t ovi_ck_copy (cudaStream_t stream, OviCkDesc dst, int64_t n,
                         OviCkDesc src, OviCkScale src_scale,
                         OviCkScale dst_scale, int raw);
cudaError_t ovi_ck_fill (cudaStream_t stream, void *dst, int dst_dtype,
                         int64_t n, float value, OviCkScale dst_scale);
/* descriptors a, b, c are against the output shape (b, c may be absent) */
cudaError_t ovi_ck_ew (cudaStream_t stream, void *out, int out_dtype, int64_t n,
                       int code, int act, float f0, float f1, OviCkDesc a,
                       OviCkDesc b, OviCkDesc c);
/* rows of n elements; x, p0, p1 against the x shape */
cudaError_t ovi_ck_rows (cudaStream_t stream, void *out, int out_dtype,
                         int64_t rows, int64_t n, int code, float eps,
                         OviCkDesc x, OviCkDesc p0, OviCkDesc p1);
/* x[C, N] (descriptor against x's shape, linear index c * N + i); gamma f32
 * contiguous device array of C or NULL; kind: 0 L2 * sqrt(C), 1 magnitude */
cudaError_t ovi_ck_channel_norm (cudaStream_t stream, void *out, int out_dtype,
                                 int64_t C, int64_t N, OviCkDesc x,
                                 const float *gamma, int kind);
/* x [..., L, H, D] descriptor against x's shape; cos, sin against [L, P] */
cudaError_t ovi_ck_rope (cudaStream_t stream, void *out, int out_dtype,
                         int64_t n, int64_t L, int64_t H, int64_t D, int64_t P,
                         OviCkDesc x, OviCkDesc cos, OviCkDesc sin);
/* out (contiguous, out_shape of nd dims) from x (descriptor against x's own
 * shape); the last `n` dims: pad before[i] (may be negative) or upsample by
 * factor[i] */
cudaError_t ovi_ck_resample (cudaStream_t stream, void *out, int out_dtype,
                             int nd, const int64_t *out_shape, OviCkDesc x,
                             int n, const int *before, const int *factor,
                             int mode);
/* out[i, d] = table[ids[i], d] * scale(ids[i]); ids on the device */
cudaError_t ovi_ck_embedding (cudaStream_t stream, void *out, int out_dtype,
                              int64_t n_ids, int64_t D, const int64_t *ids,
                              OviCkDesc table, OviCkScale table_scale);

typedef struct {
  int64_t C;  /* channels of this group */
  int64_t c0; /* first channel of this group in x */
  int64_t T, H, W;
  int kt, kh, kw;
  int st, sh, sw;
  int pt, ph, pw; /* front padding */
  int dt, dh, dw; /* dilation */
  int64_t To, Ho, Wo;
} OviCkConvGeom;

/* cols[(n - n0) * J + j] for output positions n in [n0, n0 + nc),
 * j = ((c * kt + a) * kh + b) * kw + e, J = C * kt * kh * kw; x is a
 * contiguous [Cin, T, H, W] tensor of dtype `dtype` (cols has the same) */
cudaError_t ovi_ck_im2col (cudaStream_t stream, void *cols, const void *x,
                           int dtype, OviCkConvGeom g, int64_t n0, int64_t nc);
/* transposed conv 1d gather: out[co0 + co, to] = sum_k
 * Y[(co * K + k) * T + ti], ti = (to + padding - k) / stride when exact and
 * in range; Y and out in `dtype` */
cudaError_t ovi_ck_col2im_t1d (cudaStream_t stream, void *out, const void *Y,
                               int dtype, int64_t Cout_g, int64_t co0,
                               int64_t To, int64_t T, int K, int stride,
                               int padding);

/* D (m x n, column-major, leading dim ldd) = op(A) op(B), ta / tb 0 for
 * no transpose, 1 for transpose (cuBLAS conventions), every operand in
 * `dtype`, fp32 accumulation: the fallback when cuBLASLt offers no
 * algorithm (e.g. unaligned 16-bit operands). n <= 65535 * 16. */
cudaError_t ovi_ck_gemm_fallback (cudaStream_t stream, int ta, int tb,
                                  int64_t m, int64_t n, int64_t k,
                                  const void *A, int64_t lda, const void *B,
                                  int64_t ldb, void *D, int64_t ldd, int dtype);

/* attention (see ovi-backend.h); q/k/v with strides for dims 0..2 and the
 * last dim contiguous; out contiguous [B, Lq, H, Dv] */
typedef struct {
  const void *q, *k, *v;
  int qdt, kdt, vdt;
  void *out;
  int odt;
  const void *bias;
  int bdt;
  const int64_t *kv_lens; /* device array of B, or NULL */
  int64_t B, Lq, Lk, H, D, Dv;
  int64_t qs0, qs1, qs2, ks0, ks1, ks2, vs0, vs1, vs2;
  int64_t bs0, bs1, bs2, bs3;
  float scale;
} OviCkAttention;

/* cudaErrorInvalidValue when the head dim is above 1024 or the grid does
 * not fit (H or B above 65535) */
cudaError_t ovi_ck_attention (cudaStream_t stream, const OviCkAttention *p);

/* each row of the contiguous bf16 x[rows, K] to F8_E4M3 q[rows, K] with
 * scales[row] = amax / 448 (1 for a zero row): x = q * scale. x 16-byte and
 * q 8-byte aligned (cudaErrorInvalidValue otherwise). */
cudaError_t ovi_ck_quant_rows_f8 (cudaStream_t stream, void *q, float *scales,
                                  const void *x, int64_t rows, int64_t K);

#ifdef __cplusplus
}
#endif
