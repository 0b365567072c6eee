/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: CPU attention, tiled over keys with an online softmax.
 *
 * Work items are (batch, head, block of BQ queries). For each block of BK
 * keys the scores S = Q . K^T come from the GEMM micro-kernel, then the
 * running max / sum / output of the online softmax are updated; no more
 * than BQ x BK scores exist at a time. Keys >= kv_lens[b] are skipped; a
 * query whose keys are all masked (or all -inf) gets 0.
 */
#include "ovi-cpu-private.h"

#include <math.h>
#include <string.h>

#define BQ 128
#define BK 128

typedef struct {
  OviBackend *be;
  const OviTensor *q, *k, *v, *bias;
  const int64_t *kv_lens;
  float scale;
  float *out;
  int64_t B, Lq, Lk, H, D, Dv, n_qblocks;
  /* bias element strides (0 where broadcast) */
  int64_t bs0, bs1, bs2, bs3;
} AttnJob;

static inline const char *
elem (const OviTensor *t, int64_t i0, int64_t i1, int64_t i2)
{
  return (const char *) ovi_tensor_data (t)
         + (i0 * t->stride[0] + i1 * t->stride[1] + i2 * t->stride[2])
               * (int64_t) ovi_dtype_size (t->dtype);
}

static void
attn_range (gpointer data, int64_t start, int64_t end, int tid)
{
  AttnJob *j = data;
  int64_t D = j->D, Dv = j->Dv;
  float *pack = ovi_cpu_scratch (j->be, tid, 0, ovi_cpu_gemm_pack_size ());
  gsize need
      = sizeof (float) * (BQ * D + BQ * BK + BQ * Dv + 2 * BQ + BK * Dv + BK);
  float *Q = ovi_cpu_scratch (j->be, tid, 1, need);
  float *S, *O, *m, *l, *Vt, *brow;

  if (pack == NULL || Q == NULL) {
    ovi_backend_set_error (j->be, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                           "ovi_op_attention: out of memory for scratch");
    return;
  }
  S = Q + BQ * D;
  O = S + BQ * BK;
  m = O + BQ * Dv;
  l = m + BQ;
  Vt = l + BQ;
  brow = Vt + BK * Dv;

  for (int64_t t = start; t < end; t++) {
    int64_t qb = t % j->n_qblocks, bh = t / j->n_qblocks;
    int64_t b = bh / j->H, h = bh % j->H;
    int64_t q0 = qb * BQ, nq = MIN (BQ, j->Lq - q0);
    int64_t lk = j->kv_lens ? j->kv_lens[b] : j->Lk;
    const OviTensor *k = j->k, *v = j->v;
    gboolean v_direct = v->dtype == OVI_DTYPE_F32 && v->stride[3] == 1;

    for (int64_t i = 0; i < nq; i++) {
      ovi_cpu_load_f32 (Q + i * D, elem (j->q, b, q0 + i, h), j->q->dtype, D,
                        j->q->stride[3]);
      m[i] = -INFINITY;
      l[i] = 0.0f;
    }
    memset (O, 0, sizeof (float) * nq * Dv);

    for (int64_t k0 = 0; k0 < lk; k0 += BK) {
      int64_t nk = MIN (BK, lk - k0);
      const float *vrows;
      int64_t ldv;

      if (k->stride[3] == 1 || D == 1) {
        ovi_cpu_gemm_serial_raw (nq, nk, D, Q, D, elem (k, b, k0, h), k->dtype,
                                 k->stride[1], NULL, NULL, S, BK, 1,
                                 OVI_ACT_NONE, pack);
      } else {
        /* keys with strided rows: gather them first (into Vt) */
        for (int64_t jk = 0; jk < nk; jk++)
          ovi_cpu_load_f32 (Vt + jk * D, elem (k, b, k0 + jk, h), k->dtype, D,
                            k->stride[3]);
        ovi_cpu_gemm_serial_raw (nq, nk, D, Q, D, Vt, OVI_DTYPE_F32, D, NULL,
                                 NULL, S, BK, 1, OVI_ACT_NONE, pack);
      }
      if (v_direct) {
        vrows = (const float *) elem (v, b, k0, h);
        ldv = v->stride[1];
      } else {
        for (int64_t jk = 0; jk < nk; jk++)
          ovi_cpu_load_f32 (Vt + jk * Dv, elem (v, b, k0 + jk, h), v->dtype, Dv,
                            v->stride[3]);
        vrows = Vt;
        ldv = Dv;
      }

      for (int64_t i = 0; i < nq; i++) {
        float *s = S + i * BK, *o = O + i * Dv;
        float mx = m[i], alpha;
        float rowsum = 0.0f; /* of at most BK terms in [0, 1] */

        if (j->bias) {
          const OviTensor *bt = j->bias;
          const char *bp
              = (const char *) ovi_tensor_data (bt)
                + (b * j->bs0 + h * j->bs1 + (q0 + i) * j->bs2 + k0 * j->bs3)
                      * (int64_t) ovi_dtype_size (bt->dtype);
          ovi_cpu_load_f32 (brow, bp, bt->dtype, nk, j->bs3);
          for (int64_t jk = 0; jk < nk; jk++) {
            float sv = j->scale * s[jk] + brow[jk];
            s[jk] = sv;
            mx = mx > sv ? mx : sv;
          }
        } else {
          for (int64_t jk = 0; jk < nk; jk++) {
            float sv = j->scale * s[jk];
            s[jk] = sv;
            mx = mx > sv ? mx : sv;
          }
        }
        if (mx == -INFINITY) {
          /* everything so far masked: this block adds nothing */
          memset (s, 0, sizeof (float) * nk);
          continue;
        }
        alpha = expf (m[i] - mx); /* 0 when m[i] was -inf */
        for (int64_t jk = 0; jk < nk; jk++) {
          float p = expf (s[jk] - mx);
          s[jk] = p;
          rowsum += p;
        }
        l[i] = l[i] * alpha + rowsum;
        m[i] = mx;
        if (alpha != 1.0f)
          for (int64_t d = 0; d < Dv; d++)
            o[d] *= alpha;
      }
      /* O += P . V */
      ovi_cpu_gemm_f32_kn_acc (nq, Dv, nk, S, BK, vrows, ldv, O, Dv, pack);
    }

    for (int64_t i = 0; i < nq; i++) {
      float *dst = j->out + ((b * j->Lq + q0 + i) * j->H + h) * Dv;
      float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
      for (int64_t d = 0; d < Dv; d++)
        dst[d] = O[i * Dv + d] * inv;
    }
  }
}

void ovi_cpu_attention (OviBackend *be, OviTensor *out, const OviTensor *q,
                        const OviTensor *k, const OviTensor *v,
                        const OviTensor *bias, const int64_t *kv_lens,
                        float scale);

void
ovi_cpu_attention (OviBackend *be, OviTensor *out, const OviTensor *q,
                   const OviTensor *k, const OviTensor *v,
                   const OviTensor *bias, const int64_t *kv_lens, float scale)
{
  AttnJob j = { 0 };

  if (q->shape[3] > 4096 || v->shape[3] > 4096) {
    ovi_backend_set_error (be, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                           "ovi_op_attention: head dims %" G_GINT64_FORMAT
                           "/%" G_GINT64_FORMAT " above 4096 are not supported",
                           q->shape[3], v->shape[3]);
    return;
  }
  j.be = be;
  j.q = q;
  j.k = k;
  j.v = v;
  j.bias = bias;
  j.kv_lens = kv_lens;
  j.scale = scale;
  j.out = ovi_tensor_data (out);
  j.B = q->shape[0];
  j.Lq = q->shape[1];
  j.H = q->shape[2];
  j.D = q->shape[3];
  j.Lk = k->shape[1];
  j.Dv = v->shape[3];
  j.n_qblocks = (j.Lq + BQ - 1) / BQ;
  if (bias) {
    j.bs0 = bias->shape[0] == 1 ? 0 : bias->stride[0];
    j.bs1 = bias->shape[1] == 1 ? 0 : bias->stride[1];
    j.bs2 = bias->stride[2];
    j.bs3 = bias->stride[3];
  }
  if (j.B * j.H * j.n_qblocks == 0 || j.Dv == 0)
    return;
  ovi_cpu_pool_parallel_for (ovi_cpu_priv (be)->pool, j.B * j.H * j.n_qblocks,
                             1, attn_range, &j);
}
