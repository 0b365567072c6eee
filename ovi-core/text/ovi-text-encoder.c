/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the text encoder stage (ovi-engine.h): prompt formatting,
 * cleaning, SentencePiece tokenisation to text_len with EOS and the umT5
 * encoder over the three texts as one batch. */
#include "ovi-engine.h"
#include "ovi-prompt.h"
#include "ovi-spm.h"
#include "ovi-t5.h"
#include "ovi-text-clean.h"
#include "ovi-turns.h"

struct _OviTextEncoder {
  OviBackend *be;
  OviWeightFile *wf;
  OviT5 *t5;
  OviSpm *spm;
  int text_len;
  gboolean audcap_syntax;
  OviTurns turns; /* one encode at a time on the backend */
};

static OviTextEncoder *
new_full (const char *t5_path, const char *spiece_path, int text_len,
          gboolean audcap_syntax, OviBackend *backend, OviWeightFilter filter,
          gpointer filter_data, GError **error)
{
  OviTextEncoder *enc;

  if (text_len < 1) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "text length %d is not positive", text_len);
    return NULL;
  }
  enc = g_new0 (OviTextEncoder, 1);
  ovi_turns_init (&enc->turns);
  enc->be = backend;
  enc->text_len = text_len;
  enc->audcap_syntax = audcap_syntax;
  enc->spm = ovi_spm_load (spiece_path, error);
  if (enc->spm)
    enc->wf = ovi_weight_file_open (t5_path, NULL, error);
  if (enc->wf)
    enc->t5 = ovi_t5_new_filtered (enc->wf, backend, 128, filter, filter_data,
                                   error);
  if (enc->t5 == NULL) {
    ovi_text_encoder_free (enc);
    return NULL;
  }
  int n = ovi_spm_get_n_pieces (enc->spm);
  if (n > ovi_t5_get_vocab (enc->t5)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                 "%s has %d pieces but %s embeds only %d tokens", spiece_path,
                 n, t5_path, ovi_t5_get_vocab (enc->t5));
    ovi_text_encoder_free (enc);
    return NULL;
  }
  return enc;
}

OviTextEncoder *
ovi_text_encoder_new_from_files (const char *t5_path, const char *spiece_path,
                                 int text_len, gboolean audcap_syntax,
                                 OviBackend *backend, GError **error)
{
  return new_full (t5_path, spiece_path, text_len, audcap_syntax, backend, NULL,
                   NULL, error);
}

OviTextEncoder *
ovi_text_encoder_new_filtered (const OviModelPaths *paths, OviBackend *backend,
                               OviWeightFilter filter, gpointer filter_data,
                               GError **error)
{
  return new_full (paths->t5_path, paths->spiece_path,
                   paths->text_len > 0 ? paths->text_len : 512,
                   paths->audcap_syntax, backend, filter, filter_data, error);
}

OviTextEncoder *
ovi_text_encoder_new (const OviModelPaths *paths, OviBackend *backend,
                      GError **error)
{
  return ovi_text_encoder_new_from_files (paths->t5_path, paths->spiece_path,
                                          paths->text_len > 0 ? paths->text_len
                                                              : 512,
                                          paths->audcap_syntax, backend, error);
}

void
ovi_text_encoder_free (OviTextEncoder *enc)
{
  if (enc == NULL)
    return;
  g_clear_pointer (&enc->t5, ovi_t5_free);
  g_clear_pointer (&enc->wf, ovi_weight_file_free);
  g_clear_pointer (&enc->spm, ovi_spm_free);
  ovi_turns_clear (&enc->turns);
  g_free (enc);
}

int
ovi_text_encoder_get_dim (const OviTextEncoder *enc)
{
  return ovi_t5_get_dim (enc->t5);
}

int
ovi_text_encoder_get_text_len (const OviTextEncoder *enc)
{
  return enc->text_len;
}

void
ovi_text_encoder_get_mapped (const OviTextEncoder *enc, guint64 *peak,
                             guint64 *total)
{
  OviT5StreamStats st;

  ovi_t5_get_stream_stats (enc->t5, &st);
  *peak = st.mapped_peak;
  *total = st.mapped_total;
}

int
ovi_text_encoder_tokenize (OviTextEncoder *enc, const char *text, int64_t *ids,
                           int64_t *mask, GError **error)
{
  g_autofree char *clean = ovi_text_clean (text);
  return ovi_spm_encode_t5 (enc->spm, clean, enc->text_len, ids, mask, error);
}

/* the three texts through umT5 as one batch (during a turn): out[i] the
 * first n[i] rows of text i */
static gboolean
forward (OviTextEncoder *enc, const int64_t *ids, const int64_t *mask,
         int run_len, const int n[3], OviTensor *out[3],
         GCancellable *cancellable, GError **error)
{
  g_autoptr (OviTensor) hidden
      = ovi_t5_forward (enc->t5, ids, mask, 3, run_len, cancellable, error);
  if (hidden == NULL)
    return FALSE;
  for (int i = 0; i < 3; i++) {
    g_autoptr (OviTensor) row = ovi_tensor_select (hidden, 0, i);
    g_autoptr (OviTensor) real = ovi_tensor_narrow (row, 0, 0, n[i]);
    out[i] = ovi_backend_download_f32 (enc->be, real, error);
    if (out[i] == NULL) {
      for (int k = 0; k < i; k++)
        g_clear_pointer (&out[k], ovi_tensor_unref);
      return FALSE;
    }
  }
  return TRUE;
}

gboolean
ovi_text_encoder_encode (OviTextEncoder *enc, const char *prompt,
                         const char *video_negative, const char *audio_negative,
                         OviTensor *out[3], GCancellable *cancellable,
                         GError **error)
{
  const int L = enc->text_len;
  g_autofree char *formatted = NULL;
  const char *texts[3];
  int n[3], run_len = 1;

  out[0] = out[1] = out[2] = NULL;
  if (prompt == NULL) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "no prompt given");
    return FALSE;
  }
  formatted = ovi_prompt_format (prompt, enc->audcap_syntax);
  texts[0] = formatted;
  texts[1] = video_negative ? video_negative : OVI_DEFAULT_VIDEO_NEGATIVE;
  texts[2] = audio_negative ? audio_negative : OVI_DEFAULT_AUDIO_NEGATIVE;

  g_autofree int64_t *ids = g_new (int64_t, 3 * (gsize) L);
  g_autofree int64_t *mask = g_new (int64_t, 3 * (gsize) L);
  for (int i = 0; i < 3; i++) {
    n[i] = ovi_text_encoder_tokenize (enc, texts[i], ids + i * L, mask + i * L,
                                      error);
    if (n[i] < 0)
      return FALSE;
    run_len = MAX (run_len, n[i]);
  }
  /* The official encoder runs all text_len positions; padded keys are
   * masked, and the bias of a query/key pair depends only on their
   * distance, so the real rows are the same when the batch is cut to the
   * longest real length. */
  g_autofree int64_t *rids = g_new (int64_t, 3 * (gsize) run_len);
  g_autofree int64_t *rmask = g_new (int64_t, 3 * (gsize) run_len);
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < run_len; j++) {
      rids[i * run_len + j] = ids[i * L + j];
      rmask[i * run_len + j] = mask[i * L + j];
    }
  if (!ovi_turns_take (&enc->turns, cancellable, "text encoding", error))
    return FALSE;
  gboolean ok = forward (enc, rids, rmask, run_len, n, out, cancellable, error);
  ovi_turns_give (&enc->turns);
  return ok;
}
