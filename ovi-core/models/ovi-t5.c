/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: umT5 encoder (see ovi-t5.h). */
#include "ovi-t5-private.h"

#include <math.h>
#include <string.h>

#define T5_EPS 1e-6f

static OviTensor *get (OviWeightFile *wf, OviT5 *t5, GError **error, int ndim,
                       const int64_t *shape, const char *format, ...)
    G_GNUC_PRINTF (6, 7);

static OviTensor *
get (OviWeightFile *wf, OviT5 *t5, GError **error, int ndim,
     const int64_t *shape, const char *format, ...)
{
  g_autofree char *name = NULL;
  g_autoptr (OviTensor) raw = NULL;
  va_list args;

  if (*error)
    return NULL;
  va_start (args, format);
  name = g_strdup_vprintf (format, args);
  va_end (args);
  raw = ovi_weight_file_get_shaped (wf, name, ndim, shape, error);
  if (raw == NULL)
    return NULL;
  if (!ovi_dtype_is_float (raw->dtype)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                 "%s: tensor %s has dtype %s, expected a float type",
                 ovi_weight_file_path (wf), name, ovi_dtype_name (raw->dtype));
    return NULL;
  }
  if (t5->filter && ndim >= 2) {
    /* the filter places the weight: one it leaves on the host is streamed
     * (ovi-t5-stream.c) */
    return t5->filter (name, raw, t5->filter_data, error);
  }
  return ovi_backend_upload_weight (t5->be, raw, NULL);
}

OviT5 *
ovi_t5_new (OviWeightFile *wf, OviBackend *be, int max_dist, GError **error)
{
  return ovi_t5_new_filtered (wf, be, max_dist, NULL, NULL, error);
}

OviT5 *
ovi_t5_new_filtered (OviWeightFile *wf, OviBackend *be, int max_dist,
                     OviWeightFilter filter, gpointer filter_data,
                     GError **error)
{
  g_autoptr (OviT5) t5 = g_new0 (OviT5, 1);
  GError *err = NULL;
  g_autoptr (OviTensor) emb = NULL, pos0 = NULL, q0 = NULL, fc0 = NULL;
  const int64_t any2[2] = { -1, -1 };

  t5->be = be;
  t5->filter = filter;
  t5->filter_data = filter_data;
  t5->max_dist = max_dist > 0 ? max_dist : 128;
  {
    const void *base;
    if (ovi_weight_file_mapping (wf, &base, &t5->map_size))
      t5->map_base = base;
  }
  emb = ovi_weight_file_get_shaped (wf, "token_embedding.weight", 2, any2,
                                    error);
  if (emb == NULL)
    return NULL;
  t5->vocab = (int) emb->shape[0];
  t5->dim = (int) emb->shape[1];
  pos0 = ovi_weight_file_get_shaped (
      wf, "blocks.0.pos_embedding.embedding.weight", 2, any2, error);
  if (pos0 == NULL)
    return NULL;
  t5->buckets = (int) pos0->shape[0];
  t5->heads = (int) pos0->shape[1];
  q0 = ovi_weight_file_get_shaped (wf, "blocks.0.attn.q.weight", 2, any2,
                                   error);
  fc0 = q0 ? ovi_weight_file_get_shaped (wf, "blocks.0.ffn.fc1.weight", 2, any2,
                                         error)
           : NULL;
  if (fc0 == NULL)
    return NULL;
  t5->dim_attn = (int) q0->shape[0];
  t5->dim_ffn = (int) fc0->shape[0];
  if (t5->heads <= 0 || t5->dim_attn % t5->heads != 0 || t5->buckets < 4
      || t5->buckets % 2 != 0) {
    g_set_error (
        error, OVI_ERROR, OVI_ERROR_SHAPE,
        "%s: blocks.0.pos_embedding.embedding.weight is [%d, %d]: expected "
        "[buckets (even), heads] with heads dividing the attention width %d",
        ovi_weight_file_path (wf), t5->buckets, t5->heads, t5->dim_attn);
    return NULL;
  }
  for (t5->layers = 0;; t5->layers++) {
    g_autofree char *n = g_strdup_printf ("blocks.%d.norm1.weight", t5->layers);
    if (!ovi_weight_file_contains (wf, n))
      break;
  }

  const int64_t dim = t5->dim, da = t5->dim_attn, df = t5->dim_ffn;
  const int64_t s_emb[2] = { t5->vocab, dim }, s_norm[1] = { dim };
  const int64_t s_q[2] = { da, dim }, s_o[2] = { dim, da };
  const int64_t s_up[2] = { df, dim }, s_down[2] = { dim, df };
  const int64_t s_pos[2] = { t5->buckets, t5->heads };

  t5->embedding = get (wf, t5, &err, 2, s_emb, "token_embedding.weight");
  t5->norm = get (wf, t5, &err, 1, s_norm, "norm.weight");
  t5->blocks = g_new0 (T5Block, MAX (t5->layers, 1));
  for (int i = 0; i < t5->layers && err == NULL; i++) {
    T5Block *b = &t5->blocks[i];
    b->norm1 = get (wf, t5, &err, 1, s_norm, "blocks.%d.norm1.weight", i);
    b->q = get (wf, t5, &err, 2, s_q, "blocks.%d.attn.q.weight", i);
    b->k = get (wf, t5, &err, 2, s_q, "blocks.%d.attn.k.weight", i);
    b->v = get (wf, t5, &err, 2, s_q, "blocks.%d.attn.v.weight", i);
    b->o = get (wf, t5, &err, 2, s_o, "blocks.%d.attn.o.weight", i);
    b->norm2 = get (wf, t5, &err, 1, s_norm, "blocks.%d.norm2.weight", i);
    b->gate = get (wf, t5, &err, 2, s_up, "blocks.%d.ffn.gate.0.weight", i);
    b->fc1 = get (wf, t5, &err, 2, s_up, "blocks.%d.ffn.fc1.weight", i);
    b->fc2 = get (wf, t5, &err, 2, s_down, "blocks.%d.ffn.fc2.weight", i);
    if (err)
      break;
    g_autofree char *pn
        = g_strdup_printf ("blocks.%d.pos_embedding.embedding.weight", i);
    g_autoptr (OviTensor) pr
        = ovi_weight_file_get_shaped (wf, pn, 2, s_pos, &err);
    g_autoptr (OviTensor) pf = pr ? ovi_tensor_to_f32 (pr, &err) : NULL;
    if (pf == NULL)
      break;
    b->pos_table = g_memdup2 (ovi_tensor_data (pf),
                              sizeof (float) * t5->buckets * t5->heads);
  }
  if (err) {
    g_propagate_error (error, err);
    return NULL;
  }
  if (t5->layers == 0) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_MISSING_TENSOR,
                 "%s: no T5 blocks (blocks.0.norm1.weight)",
                 ovi_weight_file_path (wf));
    return NULL;
  }
  if (!ovi_backend_sync (be, error))
    return NULL;
  t5->streaming = ovi_t5_stream_default (t5);
  return g_steal_pointer (&t5);
}

void
ovi_t5_free (OviT5 *t5)
{
  if (t5 == NULL)
    return;
  ovi_t5_stream_free (t5);
  g_clear_pointer (&t5->embedding, ovi_tensor_unref);
  g_clear_pointer (&t5->norm, ovi_tensor_unref);
  for (int i = 0; t5->blocks && i < t5->layers; i++) {
    T5Block *b = &t5->blocks[i];
    OviTensor **all[OVI_T5_BLOCK_TENSORS];
    ovi_t5_block_tensors (b, all);
    for (gsize k = 0; k < G_N_ELEMENTS (all); k++)
      g_clear_pointer (all[k], ovi_tensor_unref);
    g_free (b->pos_table);
  }
  g_free (t5->blocks);
  g_free (t5);
}

void
ovi_t5_block_tensors (T5Block *b, OviTensor **t[OVI_T5_BLOCK_TENSORS])
{
  OviTensor **all[OVI_T5_BLOCK_TENSORS]
      = { &b->norm1, &b->q,    &b->k,   &b->v,  &b->o,
          &b->norm2, &b->gate, &b->fc1, &b->fc2 };
  memcpy (t, all, sizeof all);
}

int
ovi_t5_get_dim (const OviT5 *t5)
{
  return t5->dim;
}

int
ovi_t5_get_vocab (const OviT5 *t5)
{
  return t5->vocab;
}

int
ovi_t5_get_heads (const OviT5 *t5)
{
  return t5->heads;
}

int
ovi_t5_get_layers (const OviT5 *t5)
{
  return t5->layers;
}

void
ovi_t5_set_debug (OviT5 *t5, OviT5DebugFunc func, gpointer user_data)
{
  t5->debug = func;
  t5->debug_data = user_data;
}

/* T5's bidirectional relative-position bucket of rel = key - query, with
 * the official float32 arithmetic for the logarithmic part. */
static int
position_bucket (int rel, int buckets, int max_dist)
{
  int half = buckets / 2;
  int bucket = rel > 0 ? half : 0;
  int a = ABS (rel);
  int max_exact = half / 2;
  if (a < max_exact)
    return bucket + a;
  float r = (float) a / (float) max_exact;
  float l = logf (r);
  float d = l / (float) log ((double) max_dist / max_exact);
  float v = d * (float) (half - max_exact);
  int large = max_exact + (int) (int64_t) v;
  return bucket + MIN (large, half - 1);
}

OviTensor *
ovi_t5_position_bias (OviT5 *t5, int layer, int len)
{
  g_return_val_if_fail (layer >= 0 && layer < t5->layers, NULL);
  const int64_t shape[4] = { 1, t5->heads, len, len };
  OviTensor *bias = ovi_tensor_new_f32 (4, shape);
  float *d = ovi_tensor_data (bias);
  const float *table = t5->blocks[layer].pos_table;
  int *bk = g_new (int, 2 * (gsize) len + 1);

  for (int r = -len; r <= len; r++)
    bk[r + len] = position_bucket (r, t5->buckets, t5->max_dist);
  /* per head, the value at each distance; row i is a window of it */
  float *vals = g_new (float, 2 * (gsize) len + 1);
  for (int h = 0; h < t5->heads; h++) {
    for (int r = 0; r <= 2 * len; r++)
      vals[r] = table[bk[r] * t5->heads + h];
    for (int i = 0; i < len; i++)
      memcpy (d + ((int64_t) h * len + i) * len, vals + len - i,
              sizeof (float) * len);
  }
  g_free (vals);
  g_free (bk);
  return bias;
}

static void
debug (OviT5 *t5, const char *name, const OviTensor *t)
{
  if (t5->debug)
    t5->debug (name, t, t5->debug_data);
}

OviTensor *
ovi_t5_forward (OviT5 *t5, const int64_t *ids, const int64_t *mask, int batch,
                int len, GCancellable *cancellable, GError **error)
{
  OviBackend *be = t5->be;
  const int64_t n = (int64_t) batch * len;
  g_autofree int64_t *kv_lens = NULL;

  if (batch < 1 || len < 1) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "T5: empty batch (%d x %d)", batch, len);
    return NULL;
  }
  kv_lens = g_new (int64_t, batch);
  for (int b = 0; b < batch; b++) {
    int64_t k = 0;
    while (k < len && mask[b * len + k] != 0)
      k++;
    for (int64_t j = k; j < len; j++)
      if (mask[b * len + j] != 0) {
        g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                     "T5: mask row %d is not real tokens followed by padding "
                     "(1 at %" G_GINT64_FORMAT " after 0 at %" G_GINT64_FORMAT
                     ")",
                     b, j, k);
        return NULL;
      }
    if (k == 0) {
      g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                   "T5: mask row %d has no real token", b);
      return NULL;
    }
    kv_lens[b] = k;
  }
  for (int64_t i = 0; i < n; i++)
    if (ids[i] < 0 || ids[i] >= t5->vocab) {
      g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                   "T5: token id %" G_GINT64_FORMAT " at %" G_GINT64_FORMAT
                   " is outside the vocabulary [0, %d)",
                   ids[i], i, t5->vocab);
      return NULL;
    }

  const int64_t dh = t5->dim_attn / t5->heads;
  const int64_t s_x[2] = { n, t5->dim }, s_a[2] = { n, t5->dim_attn };
  const int64_t s_f[2] = { n, t5->dim_ffn };
  const int64_t s_h4[4] = { batch, len, t5->heads, dh };
  const int64_t s_out[3] = { batch, len, t5->dim };
  g_autoptr (OviTensor) x = ovi_backend_new_act (be, 2, s_x);
  g_autoptr (OviTensor) h = ovi_backend_new_act (be, 2, s_x);
  g_autoptr (OviTensor) q = ovi_backend_new_act (be, 4, s_h4);
  g_autoptr (OviTensor) k = ovi_backend_new_act (be, 4, s_h4);
  g_autoptr (OviTensor) v = ovi_backend_new_act (be, 4, s_h4);
  g_autoptr (OviTensor) att = ovi_backend_new_act (be, 4, s_h4);
  g_autoptr (OviTensor) f1 = ovi_backend_new_act (be, 2, s_f);
  g_autoptr (OviTensor) f2 = ovi_backend_new_act (be, 2, s_f);
  if (!x || !h || !q || !k || !v || !att || !f1 || !f2) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                 "T5: out of memory for the activations of %d x %d tokens",
                 batch, len);
    return NULL;
  }
  g_autoptr (OviTensor) q2 = ovi_tensor_reshape (q, 2, s_a);
  g_autoptr (OviTensor) k2 = ovi_tensor_reshape (k, 2, s_a);
  g_autoptr (OviTensor) v2 = ovi_tensor_reshape (v, 2, s_a);
  g_autoptr (OviTensor) att2 = ovi_tensor_reshape (att, 2, s_a);
  g_autoptr (OviTensor) x3 = ovi_tensor_reshape (x, 3, s_out);

  ovi_t5_stream_start (t5);
  ovi_t5_stream_embed (t5, x, ids, n);
  debug (t5, "token_embedding", x3);
  for (int i = 0; i < t5->layers; i++) {
    if (g_cancellable_is_cancelled (cancellable)) {
      g_set_error (error, OVI_ERROR, OVI_ERROR_CANCELLED,
                   "T5: cancelled at block %d", i);
      return NULL;
    }
    g_autoptr (OviTensor) bias_host = ovi_t5_position_bias (t5, i, len);
    g_autoptr (OviTensor) bias = ovi_backend_upload (be, bias_host);
    const T5Block *b = ovi_t5_stream_block_begin (t5, i);

    ovi_op_rms_norm (be, h, x, b->norm1, T5_EPS);
    ovi_op_matmul (be, q2, h, b->q, NULL, OVI_ACT_NONE);
    ovi_op_matmul (be, k2, h, b->k, NULL, OVI_ACT_NONE);
    ovi_op_matmul (be, v2, h, b->v, NULL, OVI_ACT_NONE);
    ovi_op_attention (be, att, q, k, v, bias, kv_lens, 1.0f);
    ovi_op_matmul (be, h, att2, b->o, NULL, OVI_ACT_NONE);
    ovi_op_binary (be, x, x, h, OVI_BINARY_ADD);

    ovi_op_rms_norm (be, h, x, b->norm2, T5_EPS);
    ovi_op_matmul (be, f1, h, b->fc1, NULL, OVI_ACT_NONE);
    ovi_op_matmul (be, f2, h, b->gate, NULL, OVI_ACT_GELU_TANH);
    ovi_op_binary (be, f1, f1, f2, OVI_BINARY_MUL);
    ovi_op_matmul (be, h, f1, b->fc2, NULL, OVI_ACT_NONE);
    ovi_op_binary (be, x, x, h, OVI_BINARY_ADD);
    ovi_t5_stream_block_end (t5, i);
    if (t5->debug) {
      g_autofree char *name = g_strdup_printf ("block%d.out", i);
      debug (t5, name, x3);
    }
  }
  OviTensor *out = ovi_backend_new_act (be, 3, s_out);
  if (out == NULL) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                 "T5: out of memory for the output");
    return NULL;
  }
  g_autoptr (OviTensor) out2 = ovi_tensor_reshape (out, 2, s_x);
  ovi_t5_stream_norm_begin (t5);
  ovi_op_rms_norm (be, out2, x, t5->norm, T5_EPS);
  ovi_t5_stream_norm_end (t5);
  if (!ovi_backend_sync (be, error)) {
    ovi_tensor_unref (out);
    return NULL;
  }
  return out;
}
