/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: LoRAs on the fusion DiT at run time, unmerged (docs/lora.md).
 *
 * A matmul weight W with LoRAs computes y = x W^T + b + sum_k (x down_k^T)
 * up_k^T, with up_k pre-scaled by strength * alpha / rank (a .diff on W is
 * one more term x diff^T). W itself is untouched, whatever its dtype or
 * wherever it lives (resident, or streamed: the adapters ride along in the
 * OviLinear and stay resident), so LoRAs come and go between runs without
 * a reload. The small act tensors a LoRA may change (biases via .diff_b,
 * norm gains and modulation tables via .diff) are patched in place and
 * restored from a copy when another set is activated.
 *
 * A set is read and checked on the host (ovi_fusion_lora_new, any thread);
 * its factors go to the backend, and its adapters onto the model, when it
 * is activated (ovi_fusion_activate_loras, by the thread that runs the
 * next forward), so runs with different LoRAs can take turns on one
 * model. */
#include "ovi-fusion-private.h"
#include "ovi-lora.h"

#include <string.h>

struct _OviLoraAdapter {
  OviTensor *down; /* [rank, in] on the backend, or NULL (a full delta) */
  OviTensor *up;   /* [out, rank] (or [out, in]) pre-scaled */
  OviLoraAdapter *next;
};

typedef struct {
  OviLinear *linear; /* when the name is a matmul weight */
  OviTensor **act;   /* when it is a bias, gain or table */
} Slot;

/* one model tensor the set changes */
typedef struct {
  Slot slot;
  const GPtrArray *deltas; /* OviLoraDelta*, of the set */
  OviLoraAdapter *chain;   /* linear: its adapters (uploaded) */
  OviTensor *diff;         /* act: the summed, scaled deltas (uploaded) */
  OviTensor *backup;       /* act: the original while active */
} Bound;

struct _OviFusionLora {
  gint ref_count;
  OviLoraSet *set;
  char *warning; /* unmatched keys, or NULL */
  GArray *bound; /* Bound */
  gboolean uploaded;
  GPtrArray *keep;     /* backend tensors */
  GPtrArray *adapters; /* OviLoraAdapter* (g_free) */
  OviTensor *scratch;  /* flat act buffer for x down^T and its up^T */
};

/* ---- name -> slot ---- */

static void
add_linear (GHashTable *h, const char *prefix, const char *name, OviLinear *l)
{
  g_hash_table_insert (h, g_strconcat (prefix, name, ".weight", NULL),
                       g_memdup2 (&(Slot){ .linear = l }, sizeof (Slot)));
  if (l->b)
    g_hash_table_insert (h, g_strconcat (prefix, name, ".bias", NULL),
                         g_memdup2 (&(Slot){ .act = &l->b }, sizeof (Slot)));
}

static void
add_act (GHashTable *h, const char *prefix, const char *name, OviTensor **t)
{
  g_hash_table_insert (h, g_strconcat (prefix, name, NULL),
                       g_memdup2 (&(Slot){ .act = t }, sizeof (Slot)));
}

static void
add_attn (GHashTable *h, const char *p, OviFusionAttn *a, const char *kind)
{
  g_autofree char *q = g_strconcat (kind, ".q", NULL);
  g_autofree char *k = g_strconcat (kind, ".k", NULL);
  g_autofree char *v = g_strconcat (kind, ".v", NULL);
  g_autofree char *o = g_strconcat (kind, ".o", NULL);
  g_autofree char *nq = g_strconcat (kind, ".norm_q.weight", NULL);
  g_autofree char *nk = g_strconcat (kind, ".norm_k.weight", NULL);

  add_linear (h, p, q, &a->q);
  add_linear (h, p, k, &a->k);
  add_linear (h, p, v, &a->v);
  add_linear (h, p, o, &a->o);
  add_act (h, p, nq, &a->norm_q);
  add_act (h, p, nk, &a->norm_k);
}

static void
add_block (GHashTable *h, const char *tower, int i, OviFusionBlock *b)
{
  g_autofree char *p = g_strdup_printf ("%s.blocks.%d.", tower, i);

  add_attn (h, p, &b->sa, "self_attn");
  add_attn (h, p, &b->ca, "cross_attn");
  add_linear (h, p, "cross_attn.k_fusion", &b->k_fusion);
  add_linear (h, p, "cross_attn.v_fusion", &b->v_fusion);
  add_act (h, p, "cross_attn.pre_attn_norm_fusion.weight", &b->pre_norm_w);
  add_act (h, p, "cross_attn.pre_attn_norm_fusion.bias", &b->pre_norm_b);
  add_act (h, p, "cross_attn.norm_k_fusion.weight", &b->norm_k_fusion);
  add_act (h, p, "norm3.weight", &b->norm3_w);
  add_act (h, p, "norm3.bias", &b->norm3_b);
  add_linear (h, p, "ffn.0", &b->ffn0);
  add_linear (h, p, "ffn.2", &b->ffn2);
  add_act (h, p, "modulation.modulation", &b->modulation);
}

/* every tensor the run-time path can change, by official name; the audio
 * patch-embedding convolutions are not in it (merged LoRAs only) */
static GHashTable *
slots (OviFusion *m)
{
  static const char *const tower[OVI_N_TOWERS]
      = { "video_model", "audio_model" };
  GHashTable *h
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);

  for (int w = 0; w < OVI_N_TOWERS; w++) {
    OviFusionTower *t = &m->towers[w];
    g_autofree char *p = g_strconcat (tower[w], ".", NULL);

    if (w == OVI_TOWER_VIDEO)
      add_linear (h, p, "patch_embedding", &t->patch);
    else
      add_act (h, p, "patch_embedding.0.bias", &t->patch.b);
    add_linear (h, p, "text_embedding.0", &t->text0);
    add_linear (h, p, "text_embedding.2", &t->text2);
    add_linear (h, p, "time_embedding.0", &t->time0);
    add_linear (h, p, "time_embedding.2", &t->time2);
    add_linear (h, p, "time_projection.1", &t->proj);
    add_linear (h, p, "head.head", &t->head);
    add_act (h, p, "head.modulation", &t->head_mod);
    for (int i = 0; i < m->dims.num_layers; i++)
      add_block (h, tower[w], i, &t->blocks[i]);
  }
  return h;
}

/* ---- sets ---- */

OviFusionLora *
ovi_fusion_lora_ref (OviFusionLora *l)
{
  g_atomic_int_inc (&l->ref_count);
  return l;
}

void
ovi_fusion_lora_unref (OviFusionLora *l)
{
  if (l == NULL || !g_atomic_int_dec_and_test (&l->ref_count))
    return;
  for (guint i = 0; i < l->bound->len; i++) {
    Bound *b = &g_array_index (l->bound, Bound, i);
    g_clear_pointer (&b->diff, ovi_tensor_unref);
    g_clear_pointer (&b->backup, ovi_tensor_unref);
  }
  g_array_unref (l->bound);
  g_ptr_array_unref (l->keep);
  g_ptr_array_unref (l->adapters);
  g_clear_pointer (&l->scratch, ovi_tensor_unref);
  ovi_lora_set_free (l->set);
  g_free (l->warning);
  g_free (l);
}

const char *
ovi_fusion_lora_get_warning (const OviFusionLora *l)
{
  return l->warning;
}

/* every target the set changes must be one the run-time path can change */
static gboolean
bind_targets (OviFusionLora *l, GHashTable *h, GError **error)
{
  g_autoptr (GPtrArray) targets = ovi_lora_set_targets (l->set);

  for (guint i = 0; i < targets->len; i++) {
    const char *name = g_ptr_array_index (targets, i);
    Slot *s = g_hash_table_lookup (h, name);
    Bound b = { .deltas = ovi_lora_set_deltas (l->set, name) };

    for (guint k = 0; s && s->act && k < b.deltas->len; k++)
      if (((const OviLoraDelta *) g_ptr_array_index (b.deltas, k))->down)
        s = NULL; /* a low-rank pair on a vector: not a matmul */
    if (s == NULL) {
      g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                   "LoRA on %s cannot be applied at run time (the audio "
                   "patch-embedding convolutions take merged LoRAs only: "
                   "lora-mode=merged)",
                   name);
      return FALSE;
    }
    b.slot = *s;
    g_array_append_val (l->bound, b);
  }
  return TRUE;
}

OviFusionLora *
ovi_fusion_lora_new (OviFusion *m, OviWeightFile *wf, const GPtrArray *specs,
                     GError **error)
{
  OviFusionLora *l = g_new0 (OviFusionLora, 1);
  g_autoptr (GHashTable) h = slots (m);

  l->ref_count = 1;
  l->bound = g_array_new (FALSE, FALSE, sizeof (Bound));
  l->keep = g_ptr_array_new_with_free_func ((GDestroyNotify) ovi_tensor_unref);
  l->adapters = g_ptr_array_new_with_free_func (g_free);
  l->set = ovi_lora_set_new (
      wf, specs ? (const OviLoraSpec *const *) specs->pdata : NULL,
      specs ? specs->len : 0, error);
  if (l->set == NULL || !bind_targets (l, h, error)) {
    ovi_fusion_lora_unref (l);
    return NULL;
  }
  l->warning = ovi_lora_set_unmatched_message (l->set);
  return l;
}

/* ---- uploading (on first activation) ---- */

/* host f32 `t` * scale, as [rows, numel / rows], on the backend */
static OviTensor *
upload_scaled (OviFusion *m, OviFusionLora *l, const OviTensor *t, int64_t rows,
               double scale)
{
  int64_t shape[2] = { rows, ovi_tensor_numel (t) / rows };
  g_autoptr (OviTensor) host = ovi_tensor_new (OVI_DTYPE_F32, 2, shape, NULL);
  OviTensor *dev;

  if (host == NULL)
    return NULL;
  float *dst = ovi_tensor_data (host);
  const float *src = ovi_tensor_data (t);
  for (int64_t i = 0; i < ovi_tensor_numel (t); i++)
    dst[i] = (float) (scale * src[i]);
  dev = ovi_backend_upload (m->be, host);
  if (dev)
    g_ptr_array_add (l->keep, dev);
  return dev;
}

static OviLoraAdapter *
add_adapter (OviFusionLora *l, Bound *b, OviTensor *down, OviTensor *up)
{
  OviLoraAdapter *a = g_new0 (OviLoraAdapter, 1);

  a->down = down;
  a->up = up;
  a->next = b->chain;
  b->chain = a;
  g_ptr_array_add (l->adapters, a);
  return a;
}

static gboolean
upload_linear (OviFusion *m, OviFusionLora *l, Bound *b)
{
  /* the rows of the whole weight, from the delta: a sharded rank holds
   * only its share of a block's rows (the block runs gathered whole) */
  int64_t in = b->slot.linear->w->shape[1];

  for (guint k = 0; k < b->deltas->len; k++) {
    const OviLoraDelta *d = g_ptr_array_index (b->deltas, k);
    OviLoraAdapter *a;

    if (d->down && d->lora_scale != 0) {
      int64_t out = ovi_tensor_numel (d->up) / d->rank;
      a = add_adapter (l, b, upload_scaled (m, l, d->down, d->rank, 1.0),
                       upload_scaled (m, l, d->up, out, d->lora_scale));
      if (!a->down || !a->up)
        return FALSE;
    }
    if (d->diff && d->strength != 0) {
      a = add_adapter (l, b, NULL,
                       upload_scaled (m, l, d->diff,
                                      ovi_tensor_numel (d->diff) / in,
                                      d->strength));
      if (!a->up)
        return FALSE;
    }
  }
  return TRUE;
}

/* the act tensor's deltas summed (in double) into one act tensor */
static gboolean
upload_act (OviFusion *m, Bound *b)
{
  OviTensor *t = *b->slot.act;
  g_autoptr (OviTensor) host
      = ovi_tensor_new (OVI_DTYPE_F32, t->ndim, t->shape, NULL);
  int64_t n = ovi_tensor_numel (t);
  double *sum;
  gboolean any = FALSE;

  for (guint k = 0; k < b->deltas->len; k++)
    any |= ((const OviLoraDelta *) g_ptr_array_index (b->deltas, k))->strength
           != 0;
  if (!any)
    return TRUE; /* strength 0: the tensor stays exactly as it is */
  sum = g_new0 (double, MAX (n, 1));

  for (guint k = 0; k < b->deltas->len; k++) {
    const OviLoraDelta *d = g_ptr_array_index (b->deltas, k);
    const float *v = ovi_tensor_data (d->diff);
    for (int64_t i = 0; i < n; i++)
      sum[i] += d->strength * (double) v[i];
  }
  if (host)
    for (int64_t i = 0; i < n; i++)
      ((float *) ovi_tensor_data (host))[i] = (float) sum[i];
  g_free (sum);
  b->diff = ovi_backend_new_act (m->be, t->ndim, t->shape);
  b->backup = ovi_backend_new_act (m->be, t->ndim, t->shape);
  if (host == NULL || b->diff == NULL || b->backup == NULL)
    return FALSE;
  ovi_op_copy (m->be, b->diff, host);
  return TRUE;
}

static gboolean
upload (OviFusion *m, OviFusionLora *l, GError **error)
{
  gboolean ok = TRUE;

  for (guint i = 0; i < l->bound->len && ok; i++) {
    Bound *b = &g_array_index (l->bound, Bound, i);
    ok = b->slot.linear ? upload_linear (m, l, b) : upload_act (m, b);
  }
  if (!ok) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                 "out of memory for the LoRA factors");
    return FALSE;
  }
  if (!ovi_backend_sync (m->be, error))
    return FALSE;
  l->uploaded = TRUE;
  return TRUE;
}

/* ---- activating ---- */

static void
deactivate (OviFusion *m)
{
  OviFusionLora *l = m->lora;

  if (l == NULL)
    return;
  for (guint i = l->bound->len; i > 0; i--) {
    Bound *b = &g_array_index (l->bound, Bound, i - 1);
    if (b->slot.linear)
      b->slot.linear->lora = NULL;
    else if (b->diff)
      ovi_op_copy (m->be, *b->slot.act, b->backup);
  }
  m->lora = NULL;
  ovi_fusion_lora_unref (l);
}

gboolean
ovi_fusion_activate_loras (OviFusion *m, OviFusionLora *l, GError **error)
{
  if (m->lora == l)
    return TRUE;
  if (l && !l->uploaded && !upload (m, l, error))
    return FALSE;
  deactivate (m);
  for (guint i = 0; l && i < l->bound->len; i++) {
    Bound *b = &g_array_index (l->bound, Bound, i);
    OviTensor *t = b->slot.act ? *b->slot.act : NULL;

    if (b->slot.linear) {
      b->slot.linear->lora = b->chain;
      continue;
    }
    if (b->diff == NULL)
      continue;
    ovi_op_copy (m->be, b->backup, t);
    ovi_op_axpby (m->be, t, 1.0f, t, 1.0f, b->diff);
  }
  m->lora = l ? ovi_fusion_lora_ref (l) : NULL;
  return ovi_backend_sync (m->be, error);
}

void
ovi_fusion_lora_free (OviFusion *m)
{
  g_clear_pointer (&m->lora, ovi_fusion_lora_unref);
}

/* ---- the forward's hook ---- */

static OviTensor *
scratch (OviFusion *m, int64_t elems)
{
  OviFusionLora *l = m->lora;

  if (l->scratch == NULL || ovi_tensor_numel (l->scratch) < elems) {
    g_clear_pointer (&l->scratch, ovi_tensor_unref);
    l->scratch = ovi_backend_new_act (m->be, 1, &elems);
  }
  return l->scratch;
}

static OviTensor *
rows_view (OviTensor *flat, int64_t offset, int64_t rows, int64_t cols)
{
  int64_t shape[2] = { rows, cols }, stride[2] = { cols, 1 };
  return ovi_tensor_view (flat, 2, shape, stride, offset);
}

void
ovi_fusion_lora_linear (OviFusion *m, OviTensor *out, OviTensor *x,
                        const OviLinear *lin, OviActivation act)
{
  int64_t cols = out->shape[out->ndim - 1];
  int64_t rows = ovi_tensor_numel (out) / cols;
  int64_t max_rank = 0;
  OviTensor *buf;

  for (const OviLoraAdapter *a = lin->lora; a; a = a->next)
    if (a->down)
      max_rank = MAX (max_rank, a->down->shape[0]);
  buf = scratch (m, rows * (max_rank + cols));
  ovi_op_matmul (m->be, out, x, lin->w, lin->b, OVI_ACT_NONE);
  if (buf == NULL)
    return; /* the backend holds the out-of-memory error */
  g_autoptr (OviTensor) out2 = rows_view (out, 0, rows, cols);
  g_autoptr (OviTensor) y = rows_view (buf, rows * max_rank, rows, cols);
  int64_t in = x->shape[x->ndim - 1];
  g_autoptr (OviTensor) x2 = rows_view (x, 0, rows, in);
  for (const OviLoraAdapter *a = lin->lora; a; a = a->next) {
    if (a->down) {
      g_autoptr (OviTensor) h = rows_view (buf, 0, rows, a->down->shape[0]);
      ovi_op_matmul (m->be, h, x2, a->down, NULL, OVI_ACT_NONE);
      ovi_op_matmul (m->be, y, h, a->up, NULL, OVI_ACT_NONE);
    } else {
      ovi_op_matmul (m->be, y, x2, a->up, NULL, OVI_ACT_NONE);
    }
    ovi_op_axpby (m->be, out2, 1.0f, out2, 1.0f, y);
  }
  if (act != OVI_ACT_NONE)
    ovi_op_unary (m->be, out, out, act, 1.0f);
}
