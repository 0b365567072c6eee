/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: `ovi parity` runner for the golden `tokenizer` case: every
 * string of cases.json through the official cleaning and the SentencePiece
 * tokenizer (spiece.model of the case), compared exactly: the cleaned text,
 * ids and mask at seq_len, n_tokens, and ids_untruncated. Mismatching cases
 * are listed on stderr. */
#include "ovi-parity.h"
#include "ovi-spm.h"
#include "ovi-text-clean.h"

#include <stdio.h>
#include <string.h>

static void
append_ints (GArray *a, JsonArray *j)
{
  for (guint i = 0; i < json_array_get_length (j); i++) {
    int64_t v = json_array_get_int_element (j, i);
    g_array_append_val (a, v);
  }
}

static void
append_text (GArray *a, const char *s)
{
  for (const char *p = s; *p; p = g_utf8_next_char (p)) {
    int64_t c = g_utf8_get_char (p);
    g_array_append_val (a, c);
  }
  int64_t sep = -1;
  g_array_append_val (a, sep);
}

gboolean
ovi_parity_run_tokenizer (OviParity *p, GError **error)
{
  g_autofree char *model_path = ovi_parity_path (p, "spiece.model");
  g_autofree char *cases_path = ovi_parity_path (p, "cases.json");
  g_autoptr (OviSpm) spm = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonNode *root;
  int seq_len
      = (int) json_object_get_int_member_with_default (p->config, "seq_len", 0);
  GArray *got[5], *ref[5];
  static const char *const names[5]
      = { "cleaned", "ids", "mask", "n_tokens", "ids_untruncated" };
  int n_bad = 0;
  guint n_cases;

  spm = ovi_spm_load (model_path, error);
  if (spm == NULL)
    return FALSE;
  if (!json_parser_load_from_file (parser, cases_path, error))
    return FALSE;
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_ARRAY (root) || seq_len < 1) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                 "%s: expected a list of cases (and seq_len in config.json)",
                 cases_path);
    return FALSE;
  }
  JsonArray *cases = json_node_get_array (root);
  n_cases = json_array_get_length (cases);
  for (int k = 0; k < 5; k++) {
    got[k] = g_array_new (FALSE, FALSE, sizeof (int64_t));
    ref[k] = g_array_new (FALSE, FALSE, sizeof (int64_t));
  }
  int64_t *ids = g_new (int64_t, seq_len), *mask = g_new (int64_t, seq_len);
  gboolean ok = TRUE;
  for (guint i = 0; i < n_cases && ok; i++) {
    JsonObject *c = json_array_get_object_element (cases, i);
    const char *text
        = c ? json_object_get_string_member_with_default (c, "text", NULL)
            : NULL;
    if (text == NULL || !json_object_has_member (c, "ids")
        || !json_object_has_member (c, "ids_untruncated")
        || !json_object_has_member (c, "mask")
        || !json_object_has_member (c, "cleaned")) {
      g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                   "%s: case %u lacks text/cleaned/ids/mask/ids_untruncated",
                   cases_path, i);
      ok = FALSE;
      break;
    }
    guint before[5], rbefore[5];
    for (int k = 0; k < 5; k++) {
      before[k] = got[k]->len;
      rbefore[k] = ref[k]->len;
    }
    g_autofree char *cleaned = ovi_text_clean (text);
    int n = ovi_spm_encode_t5 (spm, cleaned, seq_len, ids, mask, error);
    if (n < 0) {
      ok = FALSE;
      break;
    }
    append_text (got[0], cleaned);
    append_text (ref[0], json_object_get_string_member (c, "cleaned"));
    g_array_append_vals (got[1], ids, seq_len);
    append_ints (ref[1], json_object_get_array_member (c, "ids"));
    g_array_append_vals (got[2], mask, seq_len);
    append_ints (ref[2], json_object_get_array_member (c, "mask"));
    int64_t nt = n;
    g_array_append_val (got[3], nt);
    nt = json_object_get_int_member_with_default (c, "n_tokens", -1);
    g_array_append_val (ref[3], nt);
    /* untruncated: every piece then eos */
    g_autoptr (GArray) pieces = g_array_new (FALSE, FALSE, sizeof (gint32));
    ovi_spm_encode (spm, cleaned, -1, pieces);
    for (guint k = 0; k < pieces->len; k++) {
      int64_t v = g_array_index (pieces, gint32, k);
      g_array_append_val (got[4], v);
    }
    int64_t eos = ovi_spm_get_eos_id (spm);
    g_array_append_val (got[4], eos);
    append_ints (ref[4], json_object_get_array_member (c, "ids_untruncated"));

    /* per-case verdict for the stderr listing */
    gboolean same = TRUE;
    for (int k = 0; k < 5 && same; k++) {
      guint ng = got[k]->len - before[k], nr = ref[k]->len - rbefore[k];
      same = ng == nr
             && (ng == 0
                 || memcmp (&g_array_index (got[k], int64_t, before[k]),
                            &g_array_index (ref[k], int64_t, rbefore[k]),
                            ng * sizeof (int64_t))
                        == 0);
    }
    if (!same) {
      n_bad++;
      fprintf (stderr, "case %u differs: text=\"%s\" cleaned=\"%s\"\n", i, text,
               cleaned);
    }
  }
  g_free (ids);
  g_free (mask);
  if (ok) {
    for (int k = 0; k < 5; k++) {
      g_autofree char *name
          = g_strdup_printf ("%s[%u cases]", names[k], n_cases);
      ovi_parity_check_exact (p, name, (const int64_t *) got[k]->data,
                              got[k]->len, (const int64_t *) ref[k]->data,
                              ref[k]->len);
    }
    printf ("tokenizer: %u of %u cases identical\n", n_cases - n_bad, n_cases);
  }
  for (int k = 0; k < 5; k++) {
    g_array_free (got[k], TRUE);
    g_array_free (ref[k], TRUE);
  }
  return ok;
}
