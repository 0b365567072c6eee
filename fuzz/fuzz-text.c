/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: libFuzzer target for prompt handling: arbitrary bytes (invalid
 * UTF-8 included) through the caption rewrite (both variants), the official
 * cleaning and its steps, and T5 tokenisation with the tiny model. Every
 * string produced must be valid UTF-8 and every id a piece of the model. */
#include "ovi-prompt.h"
#include "ovi-spm-writer.h"
#include "ovi-spm.h"
#include "ovi-text-clean.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static OviSpm *tiny;

/* the single steps promise valid UTF-8 only for valid input */
static void
check_utf8 (char *s, gboolean valid_in)
{
  if (s == NULL || (valid_in && !g_utf8_validate (s, -1, NULL)))
    __builtin_trap ();
  g_free (s);
}

static void
check_ids (const char *clean)
{
  int64_t ids[64], mask[64];
  int n = ovi_spm_get_n_pieces (tiny);
  int r = ovi_spm_encode_t5 (tiny, clean, 64, ids, mask, NULL);

  if (r < 1 || r > 64)
    __builtin_trap ();
  for (int i = 0; i < 64; i++)
    if (ids[i] < 0 || ids[i] >= n || mask[i] != (i < r))
      __builtin_trap ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (tiny == NULL) {
    GBytes *b = ovi_spm_tiny_model_bytes (0);
    gsize len;
    const guint8 *d = g_bytes_get_data (b, &len);
    tiny = ovi_spm_load_from_data (d, len, "tiny", NULL);
    g_bytes_unref (b);
    if (tiny == NULL)
      __builtin_trap ();
  }
  /* a NUL-terminated prompt, as the element and the CLI pass it */
  char *prompt = g_strndup ((const char *) data, size);

  for (int audcap = 0; audcap < 2; audcap++) {
    char *formatted = ovi_prompt_format (prompt, audcap);
    char *clean = ovi_text_clean (formatted);
    if (clean == NULL || !g_utf8_validate (clean, -1, NULL))
      __builtin_trap ();
    check_ids (clean);
    g_free (clean);
    g_free (formatted);
  }
  gboolean valid = g_utf8_validate (prompt, -1, NULL);
  check_utf8 (ovi_text_ftfy (prompt), valid);
  check_utf8 (ovi_text_html_unescape (prompt), valid);
  check_utf8 (ovi_text_collapse_whitespace (prompt), valid);
  g_free (prompt);
  return 0;
}
