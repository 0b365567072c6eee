/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: `ovi parity` runner for the golden `t5` case (umT5 encoder):
 * the texts of texts.json through the cleaning and the case's tokenizer
 * (../tokenizer/spiece.model) against in.ids / in.mask / out.seq_lens
 * (exact), then the encoder on in.ids / in.mask against
 * dbg.token_embedding, dbg.block{i}.pos_bias, dbg.block{i}.out,
 * out.context_full and the trimmed out.context.{i}. */
#include "ovi-parity.h"
#include "ovi-spm.h"
#include "ovi-t5.h"
#include "ovi-text-clean.h"

#include <string.h>

static void
debug_check (const char *name, const OviTensor *t, gpointer user_data)
{
  OviParity *p = user_data;
  g_autofree char *ref = g_strdup_printf ("dbg.%s", name);

  if (ovi_weight_file_contains (p->io, ref))
    ovi_parity_check_io (p, ref, (OviTensor *) t);
}

static OviTensor *
io_i64 (OviParity *p, const char *name, int ndim, GError **error)
{
  g_autoptr (OviTensor) t = ovi_weight_file_get (p->io, name, error);
  if (t == NULL)
    return NULL;
  if (t->dtype != OVI_DTYPE_I64 || t->ndim != ndim
      || !ovi_tensor_is_contiguous (t)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                 "%s: io tensor %s: expected contiguous int64 with %d dims",
                 p->case_dir, name, ndim);
    return NULL;
  }
  return g_steal_pointer (&t);
}

/* texts.json through our cleaning + tokenizer, compared with in.ids; our
 * own mask goes to `mask` [batch * len] (out.seq_lens is checked from it,
 * not from the golden in.mask). The case cannot skip this check. */
static gboolean
check_tokenizer (OviParity *p, const int64_t *ref_ids, const int64_t *ref_mask,
                 int batch, int len, int64_t *mask, GError **error)
{
  g_autofree char *texts_path = ovi_parity_path (p, "texts.json");
  g_autofree char *spm_path = ovi_parity_path (p, "../tokenizer/spiece.model");
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (OviSpm) spm = NULL;

  spm = ovi_spm_load (spm_path, error);
  if (spm == NULL || !json_parser_load_from_file (parser, texts_path, error))
    return FALSE;
  JsonNode *root = json_parser_get_root (parser);
  JsonObject *o = root && JSON_NODE_HOLDS_OBJECT (root)
                      ? json_node_get_object (root)
                      : NULL;
  JsonArray *texts = o && json_object_has_member (o, "texts")
                         ? json_object_get_array_member (o, "texts")
                         : NULL;
  if (texts == NULL || (int) json_array_get_length (texts) != batch) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                 "%s: expected {\"texts\": [%d strings]}", texts_path, batch);
    return FALSE;
  }
  g_autofree int64_t *ids = g_new (int64_t, (gsize) batch * len);
  for (int b = 0; b < batch; b++) {
    g_autofree char *clean
        = ovi_text_clean (json_array_get_string_element (texts, b));
    if (ovi_spm_encode_t5 (spm, clean, len, ids + b * len, mask + b * len,
                           error)
        < 0)
      return FALSE;
  }
  ovi_parity_check_exact (p, "tokenizer(texts.json) == in.ids", ids,
                          (gsize) batch * len, ref_ids, (gsize) batch * len);
  ovi_parity_check_exact (p, "tokenizer(texts.json) mask == in.mask", mask,
                          (gsize) batch * len, ref_mask, (gsize) batch * len);
  return TRUE;
}

gboolean
ovi_parity_run_t5 (OviParity *p, GError **error)
{
  g_autofree char *wpath = ovi_parity_path (p, "weights.safetensors");
  g_autoptr (OviWeightFile) wf = NULL;
  g_autoptr (OviT5) t5 = NULL;
  g_autoptr (OviTensor) ids = NULL, mask = NULL, seq_ref = NULL, out = NULL;
  int max_dist = 128;

  if (p->io == NULL) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                 "%s: the t5 case needs io.safetensors", p->case_dir);
    return FALSE;
  }
  if (json_object_has_member (p->config, "relative_attention")) {
    JsonObject *ra
        = json_object_get_object_member (p->config, "relative_attention");
    if (ra)
      max_dist
          = (int) json_object_get_int_member_with_default (ra, "max_dist", 128);
  }
  ids = io_i64 (p, "in.ids", 2, error);
  mask = ids ? io_i64 (p, "in.mask", 2, error) : NULL;
  seq_ref = mask ? io_i64 (p, "out.seq_lens", 1, error) : NULL;
  if (seq_ref == NULL)
    return FALSE;
  const int batch = (int) ids->shape[0], len = (int) ids->shape[1];
  const int64_t *idd = ovi_tensor_data (ids), *md = ovi_tensor_data (mask);

  g_autofree int64_t *our_mask = g_new (int64_t, (gsize) batch * len);
  if (!check_tokenizer (p, idd, md, batch, len, our_mask, error))
    return FALSE;

  /* seq_lens = mask.gt(0).sum(dim=1), from our tokenizer's mask */
  g_autofree int64_t *seq = g_new0 (int64_t, batch);
  for (int b = 0; b < batch; b++)
    for (int j = 0; j < len; j++)
      seq[b] += our_mask[b * len + j] > 0;
  ovi_parity_check_exact (p, "out.seq_lens", seq, batch,
                          ovi_tensor_data (seq_ref), (gsize) seq_ref->shape[0]);

  wf = ovi_weight_file_open (wpath, NULL, error);
  if (wf == NULL)
    return FALSE;
  t5 = ovi_t5_new (wf, p->backend, max_dist, error);
  if (t5 == NULL)
    return FALSE;
  for (int i = 0; i < ovi_t5_get_layers (t5); i++) {
    g_autofree char *name = g_strdup_printf ("dbg.block%d.pos_bias", i);
    if (ovi_weight_file_contains (p->io, name)) {
      g_autoptr (OviTensor) bias = ovi_t5_position_bias (t5, i, len);
      ovi_parity_check_io (p, name, bias);
    }
  }
  ovi_t5_set_debug (t5, debug_check, p);
  out = ovi_t5_forward (t5, idd, md, batch, len, NULL, error);
  if (out == NULL)
    return FALSE;
  ovi_parity_check_io (p, "out.context_full", out);
  for (int b = 0; b < batch; b++) {
    g_autofree char *name = g_strdup_printf ("out.context.%d", b);
    g_autoptr (OviTensor) row = ovi_tensor_select (out, 0, b);
    g_autoptr (OviTensor) trimmed = ovi_tensor_narrow (row, 0, 0, seq[b]);
    g_autoptr (OviTensor) host
        = ovi_backend_download_f32 (p->backend, trimmed, error);
    if (host == NULL)
      return FALSE;
    ovi_parity_check_io (p, name, host);
  }
  return TRUE;
}
