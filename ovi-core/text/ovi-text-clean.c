/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the official text cleaning (see ovi-text-clean.h, docs/text.md).
 * Behaviour written from ftfy 6.3.1's documented fixes and Python's html
 * module; no code taken from them. */
#include "ovi-text-clean.h"
#include "ovi-html-entities.h"

#include <string.h>

typedef GArray UStr; /* of gunichar */

static UStr *
ustr_new (const char *text)
{
  g_autofree char *valid = g_utf8_make_valid (text, -1);
  glong n = 0;
  g_autofree gunichar *u = g_utf8_to_ucs4_fast (valid, -1, &n);
  UStr *s = g_array_sized_new (FALSE, FALSE, sizeof (gunichar), (guint) n);
  g_array_append_vals (s, u, (guint) n);
  return s;
}

static char *
ustr_free_to_utf8 (UStr *s)
{
  char *out
      = g_ucs4_to_utf8 ((const gunichar *) s->data, s->len, NULL, NULL, NULL);
  g_array_free (s, TRUE);
  return out ? out : g_strdup ("");
}

#define AT(s, i) g_array_index ((s), gunichar, (i))

static void
append_utf8 (UStr *out, const char *utf8)
{
  for (const char *p = utf8; *p; p = g_utf8_next_char (p)) {
    gunichar c = g_utf8_get_char (p);
    g_array_append_val (out, c);
  }
}

static gboolean
ustr_equal (const UStr *a, const UStr *b)
{
  /* an empty GArray's data may be NULL, which memcmp must not get */
  return a->len == b->len
         && (a->len == 0
             || memcmp (a->data, b->data, a->len * sizeof (gunichar)) == 0);
}

/* ---- windows-1252 ---- */

static const gunichar cp1252_high[32] = {
  0x20AC, 0x81,   0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
  0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D,   0x017D, 0x8F,
  0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
  0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D,   0x017E, 0x0178,
};

/* ftfy's "sloppy-windows-1252": the byte a character encodes to, -1 if
 * none (undefined cp1252 bytes map to the same-numbered C1 control). */
static int
sloppy_cp1252_byte (gunichar c)
{
  if (c < 0x80)
    return (int) c;
  if (c >= 0xA0 && c <= 0xFF)
    return (int) c;
  for (int i = 0; i < 32; i++)
    if (cp1252_high[i] == c)
      return 0x80 + i;
  if (c >= 0x80 && c <= 0x9F)
    return (int) c;
  return -1;
}

/* ---- ftfy fixes ---- */

/* Mojibake: a run of characters whose sloppy-cp1252 bytes form one valid
 * multi-byte UTF-8 sequence is replaced by the character it encodes; for
 * two-byte sequences led by a letter other than Â/Ã, the continuation must
 * be a Latin-1 character (U+0080..U+00BF), not cp1252 punctuation; after
 * a lead other than Â/Ã, NBSP and guillemets never continue a sequence. */
static void
fix_encoding (UStr *s)
{
  UStr *out = g_array_sized_new (FALSE, FALSE, sizeof (gunichar), s->len);
  guint i = 0;

  while (i < s->len) {
    int b0 = sloppy_cp1252_byte (AT (s, i));
    int need = b0 >= 0xC2 && b0 <= 0xDF   ? 1
               : b0 >= 0xE0 && b0 <= 0xEF ? 2
               : b0 >= 0xF0 && b0 <= 0xF4 ? 3
                                          : 0;
    if (need > 0 && i + (guint) need < s->len) {
      guint8 bytes[4] = { (guint8) b0 };
      gboolean ok = TRUE;
      for (int k = 1; k <= need && ok; k++) {
        int b = sloppy_cp1252_byte (AT (s, i + k));
        ok = b >= 0x80 && b <= 0xBF;
        /* after a lead other than Â/Ã, a cp1252 punctuation character
         * (” … ™ € ’ •) is far more often real text ("CAFÉ”") */
        if (need == 1 && b0 >= 0xC4 && AT (s, i + k) > 0xFF)
          ok = FALSE;
        /* NBSP and guillemets after an accented letter are French
         * typography ("café\u00a0»"), not mojibake */
        if (b0 >= 0xC4
            && (AT (s, i + k) == 0xA0 || AT (s, i + k) == 0xAB
                || AT (s, i + k) == 0xBB))
          ok = FALSE;
        bytes[k] = (guint8) b;
      }
      if (ok) {
        gunichar c = g_utf8_get_char_validated ((const char *) bytes, need + 1);
        if (c < 0x110000 && c != (gunichar) -2 && g_unichar_validate (c)) {
          g_array_append_val (out, c);
          i += (guint) need + 1;
          continue;
        }
      }
    }
    g_array_append_val (out, AT (s, i));
    i++;
  }
  g_array_set_size (s, 0);
  g_array_append_vals (s, out->data, out->len);
  g_array_free (out, TRUE);
}

static const struct {
  gunichar c;
  const char *to;
} ligatures[] = {
  { 0x0132, "IJ" },        { 0x0133, "ij" },        { 0x0149, "\xca\xbcn" },
  { 0x01F1, "DZ" },        { 0x01F2, "Dz" },        { 0x01F3, "dz" },
  { 0x01C4, "D\xc5\xbd" }, { 0x01C5, "D\xc5\xbe" }, { 0x01C6, "d\xc5\xbe" },
  { 0x01C7, "LJ" },        { 0x01C8, "Lj" },        { 0x01C9, "lj" },
  { 0x01CA, "NJ" },        { 0x01CB, "Nj" },        { 0x01CC, "nj" },
  { 0xFB00, "ff" },        { 0xFB01, "fi" },        { 0xFB02, "fl" },
  { 0xFB03, "ffi" },       { 0xFB04, "ffl" },       { 0xFB05, "\xc5\xbft" },
  { 0xFB06, "st" },
};

static gboolean
is_control (gunichar c)
{
  return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F
         || (c >= 0x206A && c <= 0x206F) || c == 0xFEFF
         || (c >= 0xFFF9 && c <= 0xFFFC);
}

/* the per-character fixes: C1 controls, ligatures, width, quotes, line
 * breaks, terminal escapes, control characters */
static void
fix_chars (UStr *s)
{
  UStr *out = g_array_sized_new (FALSE, FALSE, sizeof (gunichar), s->len);

  /* fix_c1_controls, fix_latin_ligatures, fix_character_width,
   * uncurl_quotes, each over the whole text in turn (they commute) */
  for (guint i = 0; i < s->len; i++) {
    gunichar c = AT (s, i);
    if (c >= 0x80 && c <= 0x9F)
      c = cp1252_high[c - 0x80];
    gboolean done = FALSE;
    for (gsize k = 0; k < G_N_ELEMENTS (ligatures); k++)
      if (ligatures[k].c == c) {
        append_utf8 (out, ligatures[k].to);
        done = TRUE;
      }
    if (done)
      continue;
    if (c == 0x3000)
      c = ' ';
    else if (c >= 0xFF01 && c < 0xFFF0) {
      char buf[8];
      buf[g_unichar_to_utf8 (c, buf)] = 0;
      g_autofree char *n = g_utf8_normalize (buf, -1, G_NORMALIZE_NFKC);
      if (n && strcmp (n, buf) != 0) {
        append_utf8 (out, n);
        continue;
      }
    }
    if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B))
      c = '\'';
    else if (c >= 0x201C && c <= 0x201F)
      c = '"';
    g_array_append_val (out, c);
  }

  /* fix_line_breaks */
  g_array_set_size (s, 0);
  for (guint i = 0; i < out->len; i++) {
    gunichar c = AT (out, i);
    if (c == '\r' && i + 1 < out->len && AT (out, i + 1) == '\n')
      continue;
    if (c == '\r' || c == 0x2028 || c == 0x2029 || c == 0x85)
      c = '\n';
    g_array_append_val (s, c);
  }

  /* remove_terminal_escapes: ESC [ [0-9;]* [A-Za-z] */
  g_array_set_size (out, 0);
  for (guint i = 0; i < s->len; i++) {
    gunichar c = AT (s, i);
    if (c == 0x1B && i + 1 < s->len && AT (s, i + 1) == '[') {
      guint j = i + 2;
      while (j < s->len
             && ((AT (s, j) >= '0' && AT (s, j) <= '9') || AT (s, j) == ';'))
        j++;
      if (j < s->len && g_ascii_isalpha (AT (s, j)) && AT (s, j) < 0x80) {
        i = j;
        continue;
      }
    }
    g_array_append_val (out, c);
  }

  /* remove_control_chars */
  g_array_set_size (s, 0);
  for (guint i = 0; i < out->len; i++)
    if (!is_control (AT (out, i)))
      g_array_append_val (s, AT (out, i));
  g_array_free (out, TRUE);
}

static void unescape_into (UStr *out, const UStr *in, gboolean ftfy_style);

static void
nfc (UStr *s)
{
  char *utf8
      = g_ucs4_to_utf8 ((const gunichar *) s->data, s->len, NULL, NULL, NULL);
  if (utf8 == NULL)
    return;
  g_autofree char *n = g_utf8_normalize (utf8, -1, G_NORMALIZE_NFC);
  g_free (utf8);
  if (n == NULL)
    return;
  g_array_set_size (s, 0);
  append_utf8 (s, n);
}

static void
fix_segment (UStr *seg, gboolean unescape)
{
  for (int iter = 0; iter < 16; iter++) {
    UStr *orig = g_array_sized_new (FALSE, FALSE, sizeof (gunichar), seg->len);
    g_array_append_vals (orig, seg->data, seg->len);
    if (unescape) {
      UStr *tmp = g_array_new (FALSE, FALSE, sizeof (gunichar));
      unescape_into (tmp, seg, TRUE);
      g_array_set_size (seg, 0);
      g_array_append_vals (seg, tmp->data, tmp->len);
      g_array_free (tmp, TRUE);
    }
    fix_encoding (seg);
    fix_chars (seg);
    nfc (seg);
    gboolean same = ustr_equal (seg, orig);
    g_array_free (orig, TRUE);
    if (same)
      break;
  }
}

char *
ovi_text_ftfy (const char *text)
{
  UStr *s = ustr_new (text);
  UStr *out = g_array_sized_new (FALSE, FALSE, sizeof (gunichar), s->len);
  gboolean unescape = TRUE;
  guint pos = 0;

  /* segments end after each '\n'; HTML unescaping ("auto") stops for good
   * at the first segment containing '<' */
  while (pos < s->len) {
    guint end = pos;
    while (end < s->len && AT (s, end) != '\n')
      end++;
    if (end < s->len)
      end++;
    UStr *seg = g_array_sized_new (FALSE, FALSE, sizeof (gunichar), end - pos);
    g_array_append_vals (seg, &AT (s, pos), end - pos);
    for (guint i = 0; i < seg->len && unescape; i++)
      if (AT (seg, i) == '<')
        unescape = FALSE;
    fix_segment (seg, unescape);
    g_array_append_vals (out, seg->data, seg->len);
    g_array_free (seg, TRUE);
    pos = end;
  }
  g_array_free (s, TRUE);
  return ustr_free_to_utf8 (out);
}

/* ---- html ---- */

static const char *
entity_lookup (const OviHtmlEntity *table, unsigned n, const char *name,
               gsize len)
{
  unsigned lo = 0, hi = n;
  while (lo < hi) {
    unsigned m = (lo + hi) / 2;
    const char *e = table[m].name;
    gsize el = strlen (e);
    int c = memcmp (e, name, MIN (el, len));
    if (c == 0)
      c = el < len ? -1 : el > len;
    if (c == 0)
      return table[m].value;
    if (c < 0)
      lo = m + 1;
    else
      hi = m;
  }
  return NULL;
}

/* Python's html._replace_charref for a number; appends 0 or 1 char */
static void
append_charref (UStr *out, guint64 num)
{
  gunichar c;
  if (num == 0x0D) {
    c = '\r';
  } else if (num >= 0x80 && num <= 0x9F) {
    c = cp1252_high[num - 0x80];
  } else if (num == 0 || (num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
    c = 0xFFFD;
  } else if ((num >= 0x1 && num <= 0x8) || (num >= 0xE && num <= 0x1F)
             || (num >= 0x7F && num <= 0x9F) || (num >= 0xFDD0 && num <= 0xFDEF)
             || num == 0xB || (num & 0xFFFE) == 0xFFFE) {
    return;
  } else {
    c = (gunichar) num;
  }
  g_array_append_val (out, c);
}

static gboolean
is_name_char (gunichar c)
{
  return !(c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<'
           || c == '&' || c == '#' || c == ';');
}

static gboolean
is_ascii_alnum (gunichar c)
{
  return c < 0x80 && g_ascii_isalnum ((char) c);
}

/* Python's html.unescape of one reference starting at in[i] == '&';
 * returns the index after what it consumed (i + 1 when nothing matched, the
 * '&' then being copied) */
static guint
python_reference (UStr *out, const UStr *in, guint i)
{
  guint j = i + 1;
  gunichar amp = '&';

  if (j < in->len && AT (in, j) == '#') {
    gboolean hex
        = j + 1 < in->len && (AT (in, j + 1) == 'x' || AT (in, j + 1) == 'X');
    guint k = j + 1 + (hex ? 1 : 0), d0 = k;
    guint64 num = 0;
    while (k < in->len
           && (hex ? (AT (in, k) < 0x80 && g_ascii_isxdigit ((char) AT (in, k)))
                   : (AT (in, k) >= '0' && AT (in, k) <= '9'))) {
      if (num <= 0x10FFFFFF)
        num = num * (hex ? 16 : 10)
              + (guint64) g_ascii_xdigit_value ((char) AT (in, k));
      k++;
    }
    if (k == d0) {
      g_array_append_val (out, amp);
      return i + 1;
    }
    append_charref (out, num);
    return k < in->len && AT (in, k) == ';' ? k + 1 : k;
  }
  /* [^\t\n\f <&#;]{1,32};? */
  guint k = j;
  while (k < in->len && k - j < 32 && is_name_char (AT (in, k)))
    k++;
  if (k == j) {
    g_array_append_val (out, amp);
    return i + 1;
  }
  gboolean semi = k < in->len && AT (in, k) == ';';
  guint end = k + (semi ? 1 : 0);
  glong nchars = (glong) (end - j);
  g_autofree char *s = g_ucs4_to_utf8 (&AT (in, j), nchars, NULL, NULL, NULL);
  if (s == NULL) {
    g_array_append_val (out, amp);
    return i + 1;
  }
  const char *v
      = entity_lookup (ovi_html5_entities, ovi_html5_n_entities, s, strlen (s));
  if (v) {
    append_utf8 (out, v);
    return end;
  }
  /* the longest prefix (2 or more characters) that is a reference */
  for (glong x = nchars - 1; x >= 2; x--) {
    const char *cut = g_utf8_offset_to_pointer (s, x);
    v = entity_lookup (ovi_html5_entities, ovi_html5_n_entities, s,
                       (gsize) (cut - s));
    if (v) {
      append_utf8 (out, v);
      append_utf8 (out, cut);
      return end;
    }
  }
  g_array_append_val (out, amp);
  return i + 1;
}

/* ftfy's unescape_html: "&#?[0-9A-Za-z]{1,24};" forms only */
static guint
ftfy_reference (UStr *out, const UStr *in, guint i)
{
  guint j = i + 1;
  gunichar amp = '&';
  gboolean num = j < in->len && AT (in, j) == '#';
  guint k = j + (num ? 1 : 0), a0 = k;

  while (k < in->len && is_ascii_alnum (AT (in, k)))
    k++;
  if (k == a0 || k - a0 > 24 || k >= in->len || AT (in, k) != ';') {
    g_array_append_val (out, amp);
    return i + 1;
  }
  if (!num) {
    char name[32];
    gsize n = 0;
    for (guint t = j; t <= k; t++)
      name[n++] = (char) AT (in, t);
    const char *v
        = entity_lookup (ovi_html5_entities, ovi_html5_n_entities, name, n);
    if (v == NULL)
      v = entity_lookup (ovi_ftfy_upper_entities, ovi_ftfy_n_upper_entities,
                         name, n);
    if (v == NULL) {
      g_array_append_val (out, amp);
      return i + 1;
    }
    append_utf8 (out, v);
    return k + 1;
  }
  /* numeric: Python's unescape of the match, kept only if it used the ';' */
  UStr *m = g_array_sized_new (FALSE, FALSE, sizeof (gunichar), k + 1 - i);
  UStr *u = g_array_new (FALSE, FALSE, sizeof (gunichar));
  g_array_append_vals (m, &AT (in, i), k + 1 - i);
  for (guint t = 0; t < m->len;)
    t = AT (m, t) == '&' ? python_reference (u, m, t)
                         : (g_array_append_val (u, AT (m, t)), t + 1);
  gboolean has_semi = FALSE;
  for (guint t = 0; t < u->len; t++)
    has_semi |= AT (u, t) == ';';
  g_array_append_vals (out, has_semi ? m->data : u->data,
                       has_semi ? m->len : u->len);
  g_array_free (m, TRUE);
  g_array_free (u, TRUE);
  return k + 1;
}

static void
unescape_into (UStr *out, const UStr *in, gboolean ftfy_style)
{
  for (guint i = 0; i < in->len;) {
    gunichar c = AT (in, i);
    if (c != '&') {
      g_array_append_val (out, c);
      i++;
    } else {
      i = ftfy_style ? ftfy_reference (out, in, i)
                     : python_reference (out, in, i);
    }
  }
}

char *
ovi_text_html_unescape (const char *text)
{
  UStr *s = ustr_new (text);
  UStr *out = g_array_sized_new (FALSE, FALSE, sizeof (gunichar), s->len);
  unescape_into (out, s, FALSE);
  g_array_free (s, TRUE);
  return ustr_free_to_utf8 (out);
}

/* ---- whitespace ---- */

/* Unicode White_Space (regex's \s) */
static gboolean
is_ws (gunichar c)
{
  return (c >= 0x09 && c <= 0x0D) || c == ' ' || c == 0x85 || c == 0xA0
         || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028
         || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Python's str.isspace() also counts U+001C..U+001F */
static gboolean
is_py_space (gunichar c)
{
  return is_ws (c) || (c >= 0x1C && c <= 0x1F);
}

char *
ovi_text_collapse_whitespace (const char *text)
{
  UStr *s = ustr_new (text);
  UStr *out = g_array_sized_new (FALSE, FALSE, sizeof (gunichar), s->len);
  guint a = 0, b = s->len;

  while (a < b && is_py_space (AT (s, a)))
    a++;
  while (b > a && is_py_space (AT (s, b - 1)))
    b--;
  for (guint i = a; i < b;) {
    if (is_ws (AT (s, i))) {
      gunichar sp = ' ';
      g_array_append_val (out, sp);
      while (i < b && is_ws (AT (s, i)))
        i++;
    } else {
      g_array_append_val (out, AT (s, i));
      i++;
    }
  }
  /* the final strip */
  guint e = out->len, st = 0;
  while (e > 0 && is_py_space (AT (out, e - 1)))
    e--;
  while (st < e && is_py_space (AT (out, st)))
    st++;
  UStr *r = g_array_sized_new (FALSE, FALSE, sizeof (gunichar), e - st);
  if (e > st)
    g_array_append_vals (r, &AT (out, st), e - st);
  g_array_free (out, TRUE);
  g_array_free (s, TRUE);
  return ustr_free_to_utf8 (r);
}

char *
ovi_text_clean (const char *text)
{
  g_autofree char *a = ovi_text_ftfy (text);
  g_autofree char *b = ovi_text_html_unescape (a);
  g_autofree char *c = ovi_text_html_unescape (b);
  return ovi_text_collapse_whitespace (c);
}
