/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the official text cleaning before tokenisation (Wan's
 * HuggingfaceTokenizer with clean='whitespace'):
 *   ftfy.fix_text -> html.unescape twice -> strip -> \s+ to one space -> strip
 * ftfy is reproduced for the behaviours listed in docs/text.md (mojibake of
 * UTF-8 read as Latin-1/cp1252, C1 controls, ligatures, full/half width,
 * curly quotes, line breaks, terminal escapes, control characters, NFC);
 * what is not reproduced is listed there too. Input that is not valid UTF-8
 * is made valid first (invalid bytes become U+FFFD). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The whole official cleaning. */
char *ovi_text_clean (const char *text);
/* The ftfy.fix_text step alone (default config). */
char *ovi_text_ftfy (const char *text);
/* Python's html.unescape. */
char *ovi_text_html_unescape (const char *text);
/* Python's str.strip() then regex \s+ -> ' ' then strip(). */
char *ovi_text_collapse_whitespace (const char *text);

G_END_DECLS
