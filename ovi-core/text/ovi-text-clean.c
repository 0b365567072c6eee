/* gst-ovi: the official text cleaning (see ovi-text-clean.h, docs/text.md).
 * Behaviour written from ftfy 6.3.1's documented fixes and Python's html
 * module; no code taken from them. */
#include "ovi-text-clean.h"

#include <string.h>

typedef GArray UStr; /* of gunichar */

static UStr *
ustr_new(const char *text)
{
  g_autofree char *valid = g_utf8_make_valid(text, -1);
  glong n = 0;
  g_autofree gunichar *u = g_utf8_to_ucs4_fast(valid, -1, &n);
  UStr *s = g_array_sized_new(FALSE, FALSE, sizeof(gunichar), (guint) n);
  g_array_append_vals(s, u, (guint) n);
  return s;
}

static char *
ustr_free_to_utf8(UStr *s)
{
  char *out
      = g_ucs4_to_utf8((const gunichar *) s->data, s->len, NULL, NULL, NULL);
  g_array_free(s, TRUE);
  return out ? out : g_strdup("");
}

#define AT(s, i) g_array_index((s), gunichar, (i))

static void
append_utf8(UStr *out, const char *utf8)
{
  for (const char *p = utf8; *p; p = g_utf8_next_char(p)) {
    gunichar c = g_utf8_get_char(p);
    g_array_append_val(out, c);
  }
}

static gboolean
ustr_equal(const UStr *a, const UStr *b)
{
  return a->len == b->len
         && memcmp(a->data, b->data, a->len * sizeof(gunichar)) == 0;
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
sloppy_cp1252_byte(gunichar c)
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
 * multi-byte UTF-8 sequence is replaced by the character it encodes. */
static void
fix_encoding(UStr *s)
{
  UStr *out = g_array_sized_new(FALSE, FALSE, sizeof(gunichar), s->len);
  guint i = 0;

  while (i < s->len) {
    int b0 = sloppy_cp1252_byte(AT(s, i));
    int need = b0 >= 0xC2 && b0 <= 0xDF   ? 1
               : b0 >= 0xE0 && b0 <= 0xEF ? 2
               : b0 >= 0xF0 && b0 <= 0xF4 ? 3
                                          : 0;
    if (need > 0 && i + (guint) need < s->len) {
      guint8 bytes[4] = { (guint8) b0 };
      gboolean ok = TRUE;
      for (int k = 1; k <= need && ok; k++) {
        int b = sloppy_cp1252_byte(AT(s, i + k));
        ok = b >= 0x80 && b <= 0xBF;
        bytes[k] = (guint8) b;
      }
      if (ok) {
        gunichar c = g_utf8_get_char_validated((const char *) bytes, need + 1);
        if (c < 0x110000 && c != (gunichar) -2 && g_unichar_validate(c)) {
          g_array_append_val(out, c);
          i += (guint) need + 1;
          continue;
        }
      }
    }
    g_array_append_val(out, AT(s, i));
    i++;
  }
  g_array_set_size(s, 0);
  g_array_append_vals(s, out->data, out->len);
  g_array_free(out, TRUE);
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
is_control(gunichar c)
{
  return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F
         || (c >= 0x206A && c <= 0x206F) || c == 0xFEFF
         || (c >= 0xFFF9 && c <= 0xFFFC);
}

/* the per-character fixes: C1 controls, ligatures, width, quotes, line
 * breaks, terminal escapes, control characters */
static void
fix_chars(UStr *s)
{
  UStr *out = g_array_sized_new(FALSE, FALSE, sizeof(gunichar), s->len);

  /* fix_c1_controls, fix_latin_ligatures, fix_character_width,
   * uncurl_quotes, each over the whole text in turn (they commute) */
  for (guint i = 0; i < s->len; i++) {
    gunichar c = AT(s, i);
    if (c >= 0x80 && c <= 0x9F)
      c = cp1252_high[c - 0x80];
    gboolean done = FALSE;
    for (gsize k = 0; k < G_N_ELEMENTS(ligatures); k++)
      if (ligatures[k].c == c) {
        append_utf8(out, ligatures[k].to);
        done = TRUE;
      }
    if (done)
      continue;
    if (c == 0x3000)
      c = ' ';
    else if (c >= 0xFF01 && c < 0xFFF0) {
      char buf[8];
      buf[g_unichar_to_utf8(c, buf)] = 0;
      g_autofree char *n = g_utf8_normalize(buf, -1, G_NORMALIZE_NFKC);
      if (n && strcmp(n, buf) != 0) {
        append_utf8(out, n);
        continue;
      }
    }
    if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B))
      c = '\'';
    else if (c >= 0x201C && c <= 0x201F)
      c = '"';
    g_array_append_val(out, c);
  }

  /* fix_line_breaks */
  g_array_set_size(s, 0);
  for (guint i = 0; i < out->len; i++) {
    gunichar c = AT(out, i);
    if (c == '\r' && i + 1 < out->len && AT(out, i + 1) == '\n')
      continue;
    if (c == '\r' || c == 0x2028 || c == 0x2029 || c == 0x85)
      c = '\n';
    g_array_append_val(s, c);
  }

  /* remove_terminal_escapes: ESC [ [0-9;]* [A-Za-z] */
  g_array_set_size(out, 0);
  for (guint i = 0; i < s->len; i++) {
    gunichar c = AT(s, i);
    if (c == 0x1B && i + 1 < s->len && AT(s, i + 1) == '[') {
      guint j = i + 2;
      while (j < s->len
             && ((AT(s, j) >= '0' && AT(s, j) <= '9') || AT(s, j) == ';'))
        j++;
      if (j < s->len && g_ascii_isalpha(AT(s, j)) && AT(s, j) < 0x80) {
        i = j;
        continue;
      }
    }
    g_array_append_val(out, c);
  }

  /* remove_control_chars */
  g_array_set_size(s, 0);
  for (guint i = 0; i < out->len; i++)
    if (!is_control(AT(out, i)))
      g_array_append_val(s, AT(out, i));
  g_array_free(out, TRUE);
}

static void unescape_into(UStr *out, const UStr *in, gboolean ftfy_style);

static void
nfc(UStr *s)
{
  char *utf8
      = g_ucs4_to_utf8((const gunichar *) s->data, s->len, NULL, NULL, NULL);
  if (utf8 == NULL)
    return;
  g_autofree char *n = g_utf8_normalize(utf8, -1, G_NORMALIZE_NFC);
  g_free(utf8);
  if (n == NULL)
    return;
  g_array_set_size(s, 0);
  append_utf8(s, n);
}

static void
fix_segment(UStr *seg, gboolean unescape)
{
  for (int iter = 0; iter < 16; iter++) {
    UStr *orig = g_array_sized_new(FALSE, FALSE, sizeof(gunichar), seg->len);
    g_array_append_vals(orig, seg->data, seg->len);
    if (unescape) {
      UStr *tmp = g_array_new(FALSE, FALSE, sizeof(gunichar));
      unescape_into(tmp, seg, TRUE);
      g_array_set_size(seg, 0);
      g_array_append_vals(seg, tmp->data, tmp->len);
      g_array_free(tmp, TRUE);
    }
    fix_encoding(seg);
    fix_chars(seg);
    nfc(seg);
    gboolean same = ustr_equal(seg, orig);
    g_array_free(orig, TRUE);
    if (same)
      break;
  }
}

char *
ovi_text_ftfy(const char *text)
{
  UStr *s = ustr_new(text);
  UStr *out = g_array_sized_new(FALSE, FALSE, sizeof(gunichar), s->len);
  gboolean unescape = TRUE;
  guint pos = 0;

  /* segments end after each '\n'; HTML unescaping ("auto") stops for good
   * at the first segment containing '<' */
  while (pos < s->len) {
    guint end = pos;
    while (end < s->len && AT(s, end) != '\n')
      end++;
    if (end < s->len)
      end++;
    UStr *seg = g_array_sized_new(FALSE, FALSE, sizeof(gunichar), end - pos);
    g_array_append_vals(seg, &AT(s, pos), end - pos);
    for (guint i = 0; i < seg->len && unescape; i++)
      if (AT(seg, i) == '<')
        unescape = FALSE;
    fix_segment(seg, unescape);
    g_array_append_vals(out, seg->data, seg->len);
    g_array_free(seg, TRUE);
    pos = end;
  }
  g_array_free(s, TRUE);
  return ustr_free_to_utf8(out);
}

/* ---- html ---- */

static const char *const latin1_names[96] = {
  "nbsp",   "iexcl",  "cent",   "pound",  "curren", "yen",    "brvbar",
  "sect",   "uml",    "copy",   "ordf",   "laquo",  "not",    "shy",
  "reg",    "macr",   "deg",    "plusmn", "sup2",   "sup3",   "acute",
  "micro",  "para",   "middot", "cedil",  "sup1",   "ordm",   "raquo",
  "frac14", "frac12", "frac34", "iquest", "Agrave", "Aacute", "Acirc",
  "Atilde", "Auml",   "Aring",  "AElig",  "Ccedil", "Egrave", "Eacute",
  "Ecirc",  "Euml",   "Igrave", "Iacute", "Icirc",  "Iuml",   "ETH",
  "Ntilde", "Ograve", "Oacute", "Ocirc",  "Otilde", "Ouml",   "times",
  "Oslash", "Ugrave", "Uacute", "Ucirc",  "Uuml",   "Yacute", "THORN",
  "szlig",  "agrave", "aacute", "acirc",  "atilde", "auml",   "aring",
  "aelig",  "ccedil", "egrave", "eacute", "ecirc",  "euml",   "igrave",
  "iacute", "icirc",  "iuml",   "eth",    "ntilde", "ograve", "oacute",
  "ocirc",  "otilde", "ouml",   "divide", "oslash", "ugrave", "uacute",
  "ucirc",  "uuml",   "yacute", "thorn",  "yuml",
};

/* entities that need the semicolon (a common subset of HTML5's) */
static const struct {
  const char *name;
  gunichar c;
} named[] = {
  { "apos", 0x27 },     { "OElig", 0x152 },   { "oelig", 0x153 },
  { "Scaron", 0x160 },  { "scaron", 0x161 },  { "Yuml", 0x178 },
  { "fnof", 0x192 },    { "circ", 0x2C6 },    { "tilde", 0x2DC },
  { "Alpha", 0x391 },   { "Beta", 0x392 },    { "Gamma", 0x393 },
  { "Delta", 0x394 },   { "Omega", 0x3A9 },   { "alpha", 0x3B1 },
  { "beta", 0x3B2 },    { "gamma", 0x3B3 },   { "delta", 0x3B4 },
  { "epsilon", 0x3B5 }, { "lambda", 0x3BB },  { "mu", 0x3BC },
  { "pi", 0x3C0 },      { "sigma", 0x3C3 },   { "omega", 0x3C9 },
  { "ensp", 0x2002 },   { "emsp", 0x2003 },   { "thinsp", 0x2009 },
  { "zwnj", 0x200C },   { "zwj", 0x200D },    { "lrm", 0x200E },
  { "rlm", 0x200F },    { "ndash", 0x2013 },  { "mdash", 0x2014 },
  { "lsquo", 0x2018 },  { "rsquo", 0x2019 },  { "sbquo", 0x201A },
  { "ldquo", 0x201C },  { "rdquo", 0x201D },  { "bdquo", 0x201E },
  { "dagger", 0x2020 }, { "Dagger", 0x2021 }, { "bull", 0x2022 },
  { "hellip", 0x2026 }, { "permil", 0x2030 }, { "prime", 0x2032 },
  { "Prime", 0x2033 },  { "lsaquo", 0x2039 }, { "rsaquo", 0x203A },
  { "oline", 0x203E },  { "euro", 0x20AC },   { "trade", 0x2122 },
  { "larr", 0x2190 },   { "uarr", 0x2191 },   { "rarr", 0x2192 },
  { "darr", 0x2193 },   { "harr", 0x2194 },   { "minus", 0x2212 },
  { "infin", 0x221E },  { "ne", 0x2260 },     { "le", 0x2264 },
  { "ge", 0x2265 },     { "star", 0x2606 },   { "starf", 0x2605 },
  { "hearts", 0x2665 }, { "check", 0x2713 },  { "checkmark", 0x2713 },
  { "Tab", 0x09 },      { "NewLine", 0x0A },  { "period", 0x2E },
  { "comma", 0x2C },    { "colon", 0x3A },    { "semi", 0x3B },
  { "excl", 0x21 },     { "quest", 0x3F },    { "num", 0x23 },
  { "dollar", 0x24 },   { "percnt", 0x25 },   { "lpar", 0x28 },
  { "rpar", 0x29 },     { "ast", 0x2A },      { "plus", 0x2B },
  { "sol", 0x2F },      { "equals", 0x3D },   { "commat", 0x40 },
  { "lsqb", 0x5B },     { "rsqb", 0x5D },     { "bsol", 0x5C },
  { "lowbar", 0x5F },   { "grave", 0x60 },    { "lcub", 0x7B },
  { "rcub", 0x7D },     { "verbar", 0x7C },   { "Hat", 0x5E },
};

/* names HTML5 also accepts without ';' (the legacy ones) */
static gboolean
legacy_entity(const char *name, gsize n, gunichar *c)
{
  static const struct {
    const char *name;
    gunichar c;
  } extra[] = {
    { "amp", '&' },   { "lt", '<' },   { "gt", '>' }, { "quot", '"' },
    { "AMP", '&' },   { "LT", '<' },   { "GT", '>' }, { "QUOT", '"' },
    { "COPY", 0xA9 }, { "REG", 0xAE },
  };
  for (gsize i = 0; i < G_N_ELEMENTS(extra); i++)
    if (strlen(extra[i].name) == n && memcmp(extra[i].name, name, n) == 0) {
      *c = extra[i].c;
      return TRUE;
    }
  for (int i = 0; i < 96; i++)
    if (strlen(latin1_names[i]) == n && memcmp(latin1_names[i], name, n) == 0) {
      *c = 0xA0 + (gunichar) i;
      return TRUE;
    }
  return FALSE;
}

static gboolean
semicolon_entity(const char *name, gsize n, gunichar *c)
{
  if (legacy_entity(name, n, c))
    return TRUE;
  for (gsize i = 0; i < G_N_ELEMENTS(named); i++)
    if (strlen(named[i].name) == n && memcmp(named[i].name, name, n) == 0) {
      *c = named[i].c;
      return TRUE;
    }
  return FALSE;
}

/* Python's html._replace_charref for a number; appends 0 or 1 char */
static void
append_charref(UStr *out, guint64 num)
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
  g_array_append_val(out, c);
}

static gboolean
is_name_char(gunichar c)
{
  return !(c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<'
           || c == '&' || c == '#' || c == ';');
}

/* ftfy_style: only "&#?[0-9A-Za-z]{1,24};" forms (ftfy's unescape_html);
 * otherwise Python's html.unescape. */
static void
unescape_into(UStr *out, const UStr *in, gboolean ftfy_style)
{
  guint i = 0;
  while (i < in->len) {
    gunichar c = AT(in, i);
    if (c != '&' || i + 1 >= in->len) {
      g_array_append_val(out, c);
      i++;
      continue;
    }
    guint j = i + 1;
    if (AT(in, j) == '#') {
      gboolean hex
          = j + 1 < in->len && (AT(in, j + 1) == 'x' || AT(in, j + 1) == 'X');
      guint k = j + 1 + (hex ? 1 : 0), d0 = k;
      guint64 num = 0;
      while (k < in->len
             && (hex ? g_unichar_isxdigit(AT(in, k)) && AT(in, k) < 0x80
                     : (AT(in, k) >= '0' && AT(in, k) <= '9'))) {
        if (num <= 0x10FFFFFF)
          num = num * (hex ? 16 : 10)
                + (guint64) g_unichar_xdigit_value(AT(in, k));
        k++;
      }
      gboolean semi = k < in->len && AT(in, k) == ';';
      if (k > d0 && (!ftfy_style || (semi && k - j <= 25))) {
        append_charref(out, num);
        i = k + (semi ? 1 : 0);
        continue;
      }
      g_array_append_val(out, c);
      i++;
      continue;
    }
    /* named */
    char name[40];
    gsize n = 0;
    guint k = j;
    while (k < in->len && n < 32 && is_name_char(AT(in, k))
           && AT(in, k) < 0x80) {
      name[n++] = (char) AT(in, k);
      k++;
    }
    gboolean semi = k < in->len && AT(in, k) == ';';
    gunichar e;
    if (n > 0 && semi && semicolon_entity(name, n, &e)) {
      g_array_append_val(out, e);
      i = k + 1;
      continue;
    }
    if (!ftfy_style) {
      /* the longest legacy name that is a prefix (at least 2 chars) */
      gboolean found = FALSE;
      for (gsize x = n; x >= 2 && !found; x--)
        if (legacy_entity(name, x, &e)) {
          g_array_append_val(out, e);
          i = j + (guint) x;
          found = TRUE;
        }
      if (found)
        continue;
    }
    g_array_append_val(out, c);
    i++;
  }
}

char *
ovi_text_html_unescape(const char *text)
{
  UStr *s = ustr_new(text);
  UStr *out = g_array_sized_new(FALSE, FALSE, sizeof(gunichar), s->len);
  unescape_into(out, s, FALSE);
  g_array_free(s, TRUE);
  return ustr_free_to_utf8(out);
}

/* ---- whitespace ---- */

/* Unicode White_Space (regex's \s) */
static gboolean
is_ws(gunichar c)
{
  return (c >= 0x09 && c <= 0x0D) || c == ' ' || c == 0x85 || c == 0xA0
         || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028
         || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Python's str.isspace() also counts U+001C..U+001F */
static gboolean
is_py_space(gunichar c)
{
  return is_ws(c) || (c >= 0x1C && c <= 0x1F);
}

char *
ovi_text_collapse_whitespace(const char *text)
{
  UStr *s = ustr_new(text);
  UStr *out = g_array_sized_new(FALSE, FALSE, sizeof(gunichar), s->len);
  guint a = 0, b = s->len;

  while (a < b && is_py_space(AT(s, a)))
    a++;
  while (b > a && is_py_space(AT(s, b - 1)))
    b--;
  for (guint i = a; i < b;) {
    if (is_ws(AT(s, i))) {
      gunichar sp = ' ';
      g_array_append_val(out, sp);
      while (i < b && is_ws(AT(s, i)))
        i++;
    } else {
      g_array_append_val(out, AT(s, i));
      i++;
    }
  }
  /* the final strip */
  guint e = out->len, st = 0;
  while (e > 0 && is_py_space(AT(out, e - 1)))
    e--;
  while (st < e && is_py_space(AT(out, st)))
    st++;
  UStr *r = g_array_sized_new(FALSE, FALSE, sizeof(gunichar), e - st);
  if (e > st)
    g_array_append_vals(r, &AT(out, st), e - st);
  g_array_free(out, TRUE);
  g_array_free(s, TRUE);
  return ustr_free_to_utf8(r);
}

char *
ovi_text_clean(const char *text)
{
  g_autofree char *a = ovi_text_ftfy(text);
  g_autofree char *b = ovi_text_html_unescape(a);
  g_autofree char *c = ovi_text_html_unescape(b);
  return ovi_text_collapse_whitespace(c);
}
