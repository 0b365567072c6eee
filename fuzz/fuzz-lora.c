/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: libFuzzer target for the LoRA reader (ovi-lora.h): the input is
 * a LoRA file, resolved against a small in-memory model with the fusion
 * DiT's names, each target tower in turn, and every change it makes is
 * merged. A failure must be an OVI_ERROR naming the file; a success must
 * give merged tensors of the model's shapes and dtypes. */
#include "ovi-lora.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* names the key formats map to, with the shapes of a dim-8 model */
static const struct {
  const char *name;
  const char *shape;
  int numel;
} model_tensors[] = {
  { "video_model.blocks.0.self_attn.q.weight", "[8, 8]", 64 },
  { "video_model.blocks.0.self_attn.q.bias", "[8]", 8 },
  { "video_model.blocks.0.norm3.weight", "[8]", 8 },
  { "video_model.blocks.0.modulation.modulation", "[1, 6, 8]", 48 },
  { "video_model.blocks.0.ffn.0.weight", "[16, 8]", 128 },
  { "video_model.patch_embedding.weight", "[8, 4, 1, 2, 2]", 128 },
  { "video_model.head.modulation", "[1, 2, 8]", 16 },
  { "audio_model.blocks.0.self_attn.q.weight", "[8, 8]", 64 },
  { "audio_model.blocks.0.ffn.0.weight", "[16, 8]", 128 },
  { "audio_model.blocks.0.cross_attn.k_fusion.weight", "[8, 8]", 64 },
};

static OviWeightFile *
make_model (void)
{
  GString *h = g_string_new ("{");
  gsize offset = 0, header_len;
  GByteArray *file = g_byte_array_new ();
  guint64 len;

  for (gsize i = 0; i < G_N_ELEMENTS (model_tensors); i++) {
    gsize bytes = 4 * (gsize) model_tensors[i].numel;
    g_string_append_printf (h,
                            "%s\"%s\": {\"dtype\": \"F32\", \"shape\": %s, "
                            "\"data_offsets\": [%" G_GSIZE_FORMAT
                            ", %" G_GSIZE_FORMAT "]}",
                            i ? ", " : "", model_tensors[i].name,
                            model_tensors[i].shape, offset, offset + bytes);
    offset += bytes;
  }
  g_string_append_c (h, '}');
  while (h->len % 8)
    g_string_append_c (h, ' ');
  header_len = h->len;
  len = header_len;
  g_byte_array_append (file, (const guint8 *) &len, 8);
  g_byte_array_append (file, (const guint8 *) h->str, h->len);
  for (gsize k = 0; k < offset / 4; k++) {
    float v = (float) ((int) (k % 7) - 3) * 0.125f;
    g_byte_array_append (file, (const guint8 *) &v, 4);
  }
  g_string_free (h, TRUE);
  GBytes *bytes = g_byte_array_free_to_bytes (file);
  OviWeightFile *wf = ovi_weight_file_open_bytes (bytes, "model", NULL, NULL);
  g_bytes_unref (bytes);
  if (wf == NULL)
    __builtin_trap ();
  return wf;
}

static void
merge_all (OviWeightFile *model, OviLoraSet *set)
{
  GPtrArray *targets = ovi_lora_set_targets (set);
  char *msg = ovi_lora_set_unmatched_message (set);

  for (guint i = 0; i < targets->len; i++) {
    const char *name = g_ptr_array_index (targets, i);
    OviTensor *w = ovi_weight_file_get (model, name, NULL);
    OviTensor *m
        = w ? ovi_lora_merge (w, ovi_lora_set_deltas (set, name), NULL) : NULL;

    if (m == NULL || m->dtype != w->dtype
        || !ovi_tensor_has_shape (m, w->ndim, w->shape))
      __builtin_trap ();
    ovi_tensor_unref (m);
    ovi_tensor_unref (w);
  }
  g_ptr_array_unref (targets);
  g_free (msg);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static OviWeightFile *model;
  static const char *const name = "fuzz-lora.safetensors";
  GBytes *bytes = g_bytes_new (data, size);
  OviWeightFile *lora;

  if (model == NULL)
    model = make_model ();
  lora = ovi_weight_file_open_bytes (bytes, name, NULL, NULL);
  g_bytes_unref (bytes);
  if (lora == NULL)
    return 0; /* the readers' own targets cover this */
  for (int t = 0; t < 3; t++) {
    OviLoraSpec spec = { (char *) name, t == 2 ? 0.0 : 0.5, t };
    GError *error = NULL;
    OviLoraSet *set = ovi_lora_set_new_from_file (model, lora, &spec, &error);

    if (set == NULL) {
      if (error == NULL || error->domain != OVI_ERROR
          || !strstr (error->message, name))
        __builtin_trap ();
      g_error_free (error);
      continue;
    }
    merge_all (model, set);
    ovi_lora_set_free (set);
  }
  ovi_weight_file_free (lora);
  return 0;
}
