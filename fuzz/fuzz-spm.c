/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: libFuzzer target for the SentencePiece model reader. The whole
 * input is loaded as a ModelProto; when it loads, a few fixed strings and
 * strings cut from the input's tail (so hostile bytes reach the normaliser
 * trie and the Viterbi search of a hostile model) are normalised and
 * encoded, and every id must be a piece of the model. */
#include "ovi-spm.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
check_text (const OviSpm *spm, const char *text, gssize len)
{
  g_autoptr (GArray) ids = g_array_new (FALSE, FALSE, sizeof (gint32));
  int n = ovi_spm_get_n_pieces (spm);
  char *norm = ovi_spm_normalize (spm, text, len);
  guint got;

  if (norm == NULL || !g_utf8_validate (norm, -1, NULL))
    __builtin_trap ();
  g_free (norm);
  got = ovi_spm_encode (spm, text, len, ids);
  if (got != ids->len)
    __builtin_trap ();
  for (guint i = 0; i < ids->len; i++) {
    gint32 id = g_array_index (ids, gint32, i);
    if (id < 0 || id >= n)
      __builtin_trap ();
    (void) ovi_spm_id_to_piece (spm, id);
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const char *const fixed[] = {
    "",
    " ",
    "Hello world",
    "  a  b\tc\n",
    "caf\xc3\xa9 \xef\xbc\xa1\xe2\x85\xa0",
    "<AUDCAP>x<ENDAUDCAP>",
    "\xe2\x96\x81\xe2\x96\x81",
  };
  GError *error = NULL;
  OviSpm *spm = ovi_spm_load_from_data (data, size, "fuzz.model", &error);

  if (spm == NULL) {
    /* every failure is a GError naming the input */
    if (error == NULL || error->domain != OVI_ERROR
        || strstr (error->message, "fuzz.model") == NULL)
      __builtin_trap ();
    g_error_free (error);
    return 0;
  }
  int n = ovi_spm_get_n_pieces (spm);
  for (int id = 0; id < n && id < 64; id++) {
    (void) ovi_spm_id_to_piece (spm, id);
    (void) ovi_spm_get_score (spm, id);
  }
  for (gsize i = 0; i < G_N_ELEMENTS (fixed); i++)
    check_text (spm, fixed[i], -1);
  /* the tail of the input as text: raw bytes (not NUL-terminated, exactly
   * len bytes) and NUL-terminated */
  gsize tail = MIN (size, 96);
  char *copy = g_memdup2 (data + size - tail, tail);
  check_text (spm, copy, tail);
  g_free (copy);
  char *str = g_strndup ((const char *) data + size - tail, tail);
  check_text (spm, str, -1);
  int64_t ids[16], mask[16];
  int r = ovi_spm_encode_t5 (spm, str, 16, ids, mask, &error);
  if (r < 0) {
    if (error == NULL)
      __builtin_trap ();
    g_clear_error (&error);
  } else if (r < 1 || r > 16)
    __builtin_trap ();
  g_free (str);
  ovi_spm_free (spm);
  return 0;
}
