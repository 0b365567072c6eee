/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: official prompt formatting (see ovi-prompt.h). */
#include "ovi-prompt.h"

#include <string.h>

/* Python's str.isspace(), which re's \s follows for str patterns */
static gboolean
py_space (gunichar c)
{
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85
         || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A)
         || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F
         || c == 0x3000;
}

char *
ovi_prompt_format (const char *prompt, gboolean audcap_syntax)
{
  GString *out = g_string_new (NULL);

  if (audcap_syntax) {
    const char *a = strstr (prompt, "Audio:");
    if (a == NULL)
      return g_string_free (g_string_append (out, prompt), FALSE);
    g_string_append_len (out, prompt, a - prompt);
    const char *rest = a + strlen ("Audio:");
    while (*rest && py_space (g_utf8_get_char (rest)))
      rest = g_utf8_next_char (rest);
    g_string_append (out, "<AUDCAP>");
    g_string_append (out, rest);
    g_string_append (out, "<ENDAUDCAP>");
    return g_string_free (out, FALSE);
  }
  const char *p = prompt;
  for (;;) {
    const char *open = strstr (p, "<AUDCAP>");
    const char *close = open ? strstr (open + 8, "<ENDAUDCAP>") : NULL;
    if (close == NULL) {
      g_string_append (out, p);
      break;
    }
    g_string_append_len (out, p, open - p);
    g_string_append (out, "Audio: ");
    g_string_append_len (out, open + 8, close - (open + 8));
    p = close + strlen ("<ENDAUDCAP>");
  }
  return g_string_free (out, FALSE);
}
