/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: SentencePiece unigram tokenizer (see ovi-spm.h, docs/text.md).
 *
 * Written from the SentencePiece 0.1.97 sources' behaviour (model format,
 * normaliser, optimised unigram Viterbi, unknown fusion, byte fallback);
 * no code is taken from them. */
#include "ovi-spm.h"

#include <float.h>
#include <string.h>

#define SPACE_SYMBOL     "\xe2\x96\x81"
#define SPACE_SYMBOL_LEN 3
#define UNK_PENALTY      10.0f

typedef struct {
  char *piece;
  guint len;
  float score;
  OviSpmPieceType type;
} Piece;

struct _OviSpm {
  char *name;
  Piece *pieces;
  int n_pieces;
  /* trainer spec */
  int model_type;
  gboolean byte_fallback;
  gboolean treat_ws_as_suffix;
  char *unk_piece, *eos_piece, *pad_piece;
  /* normaliser spec */
  char *norm_name;
  guint8 *charsmap;
  gsize charsmap_size;
  gboolean add_dummy_prefix;
  gboolean remove_extra_ws;
  gboolean escape_ws;
  /* derived */
  const guint32 *trie; /* darts units (LE host order copied) */
  guint32 *trie_buf;
  gsize trie_units;
  const char *repl; /* replacement strings */
  gsize repl_size;
  int *sorted; /* ids of trie pieces (normal, user, unused) sorted by bytes */
  int n_sorted;
  int *user_sorted; /* user-defined pieces sorted */
  int n_user;
  GHashTable *piece_to_id; /* char* -> id+1 */
  int unk_id;
  int byte_ids[256];
  float min_score, max_score;
};

/* ---- protobuf wire format ---- */

typedef struct {
  const guint8 *p, *end;
  gboolean bad;
} Reader;

static gboolean
read_varint (Reader *r, guint64 *out)
{
  guint64 v = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    if (r->p >= r->end) {
      r->bad = TRUE;
      return FALSE;
    }
    guint8 b = *r->p++;
    if (shift == 63 && (b & 0x7e)) {
      r->bad = TRUE;
      return FALSE;
    }
    v |= (guint64) (b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return TRUE;
    }
  }
  r->bad = TRUE;
  return FALSE;
}

/* reads a tag; FALSE at the end (or on error, r->bad set) */
static gboolean
read_tag (Reader *r, guint32 *field, guint32 *wire)
{
  guint64 t;
  if (r->p >= r->end)
    return FALSE;
  if (!read_varint (r, &t))
    return FALSE;
  *field = (guint32) (t >> 3);
  *wire = (guint32) (t & 7);
  if (*field == 0 || t >> 32) {
    r->bad = TRUE;
    return FALSE;
  }
  return TRUE;
}

static gboolean
read_bytes (Reader *r, const guint8 **data, gsize *len)
{
  guint64 n;
  if (!read_varint (r, &n))
    return FALSE;
  if (n > (guint64) (r->end - r->p)) {
    r->bad = TRUE;
    return FALSE;
  }
  *data = r->p;
  *len = (gsize) n;
  r->p += n;
  return TRUE;
}

static gboolean
read_fixed32 (Reader *r, guint32 *out)
{
  if (r->end - r->p < 4) {
    r->bad = TRUE;
    return FALSE;
  }
  *out = (guint32) r->p[0] | ((guint32) r->p[1] << 8)
         | ((guint32) r->p[2] << 16) | ((guint32) r->p[3] << 24);
  r->p += 4;
  return TRUE;
}

static gboolean
skip_field (Reader *r, guint32 wire)
{
  guint64 v;
  const guint8 *d;
  gsize n;
  switch (wire) {
    case 0:
      return read_varint (r, &v);
    case 1:
      if (r->end - r->p < 8) {
        r->bad = TRUE;
        return FALSE;
      }
      r->p += 8;
      return TRUE;
    case 2:
      return read_bytes (r, &d, &n);
    case 5:
      if (r->end - r->p < 4) {
        r->bad = TRUE;
        return FALSE;
      }
      r->p += 4;
      return TRUE;
    default: /* groups (3, 4) and 6, 7 are not used by ModelProto */
      r->bad = TRUE;
      return FALSE;
  }
}

static char *
dup_str (const guint8 *d, gsize n)
{
  char *s = g_malloc (n + 1);
  memcpy (s, d, n);
  s[n] = 0;
  return s;
}

static gboolean
parse_piece (Reader *outer, const guint8 *d, gsize n, Piece *pc)
{
  Reader r = { d, d + n, FALSE };
  guint32 field, wire;

  pc->type = OVI_SPM_NORMAL;
  pc->score = 0;
  pc->piece = NULL;
  pc->len = 0;
  while (read_tag (&r, &field, &wire)) {
    if (field == 1 && wire == 2) {
      const guint8 *s;
      gsize sl;
      if (!read_bytes (&r, &s, &sl))
        break;
      g_free (pc->piece);
      pc->piece = dup_str (s, sl);
      pc->len = (guint) sl;
      if (memchr (s, 0, sl))
        r.bad = TRUE;
    } else if (field == 2 && wire == 5) {
      guint32 u;
      if (!read_fixed32 (&r, &u))
        break;
      memcpy (&pc->score, &u, 4);
    } else if (field == 3 && wire == 0) {
      guint64 v;
      if (!read_varint (&r, &v))
        break;
      if (v < 1 || v > 6)
        r.bad = TRUE;
      else
        pc->type = (OviSpmPieceType) v;
    } else if (!skip_field (&r, wire))
      break;
  }
  if (r.bad)
    outer->bad = TRUE;
  return !r.bad;
}

static void
parse_trainer (OviSpm *spm, Reader *outer, const guint8 *d, gsize n)
{
  Reader r = { d, d + n, FALSE };
  guint32 field, wire;

  while (read_tag (&r, &field, &wire)) {
    guint64 v;
    const guint8 *s;
    gsize sl;
    if (wire == 0 && (field == 3 || field == 35 || field == 24)) {
      if (!read_varint (&r, &v))
        break;
      if (field == 3)
        spm->model_type = (int) v;
      else if (field == 35)
        spm->byte_fallback = v != 0;
      else
        spm->treat_ws_as_suffix = v != 0;
    } else if (wire == 2 && (field == 45 || field == 47 || field == 48)) {
      if (!read_bytes (&r, &s, &sl))
        break;
      char **dst = field == 45   ? &spm->unk_piece
                   : field == 47 ? &spm->eos_piece
                                 : &spm->pad_piece;
      g_free (*dst);
      *dst = dup_str (s, sl);
    } else if (!skip_field (&r, wire))
      break;
  }
  if (r.bad)
    outer->bad = TRUE;
}

static void
parse_normalizer (OviSpm *spm, Reader *outer, const guint8 *d, gsize n)
{
  Reader r = { d, d + n, FALSE };
  guint32 field, wire;

  while (read_tag (&r, &field, &wire)) {
    guint64 v;
    const guint8 *s;
    gsize sl;
    if (wire == 2 && (field == 1 || field == 2)) {
      if (!read_bytes (&r, &s, &sl))
        break;
      if (field == 1) {
        g_free (spm->norm_name);
        spm->norm_name = dup_str (s, sl);
      } else {
        g_free (spm->charsmap);
        spm->charsmap = g_memdup2 (s, sl);
        spm->charsmap_size = sl;
      }
    } else if (wire == 0 && field >= 3 && field <= 5) {
      if (!read_varint (&r, &v))
        break;
      if (field == 3)
        spm->add_dummy_prefix = v != 0;
      else if (field == 4)
        spm->remove_extra_ws = v != 0;
      else
        spm->escape_ws = v != 0;
    } else if (!skip_field (&r, wire))
      break;
  }
  if (r.bad)
    outer->bad = TRUE;
}

/* ---- lookup tables ---- */

typedef struct {
  const char *piece;
  guint len;
  int id;
} SortKey;

static int
cmp_keys (const void *a, const void *b)
{
  const SortKey *pa = a, *pb = b;
  guint n = MIN (pa->len, pb->len);
  int c = memcmp (pa->piece, pb->piece, n);
  if (c)
    return c;
  return pa->len < pb->len ? -1 : pa->len > pb->len;
}

/* sorts piece ids by their bytes (no global state: models may load in
 * several threads) */
static void
sort_ids (const OviSpm *spm, int *ids, int n)
{
  SortKey *k = g_new (SortKey, MAX (n, 1));
  for (int i = 0; i < n; i++) {
    k[i].piece = spm->pieces[ids[i]].piece;
    k[i].len = spm->pieces[ids[i]].len;
    k[i].id = ids[i];
  }
  qsort (k, n, sizeof (SortKey), cmp_keys);
  for (int i = 0; i < n; i++)
    ids[i] = k[i].id;
  g_free (k);
}

/* All pieces of `ids` (sorted) that are prefixes of text[0..len), in
 * increasing length; calls back with (id, length). */
typedef struct {
  int id;
  guint len;
} Match;

static guint
prefix_matches (const OviSpm *spm, const int *ids, int n_ids,
                const guint8 *text, gsize len, Match *out, guint max_out)
{
  int lo = 0, hi = n_ids;
  guint n_out = 0;
  gsize k = 0;

  while (lo < hi) {
    const Piece *first = &spm->pieces[ids[lo]];
    if (first->len == k) {
      if (k > 0 && n_out < max_out) {
        out[n_out].id = ids[lo];
        out[n_out].len = (guint) k;
        n_out++;
      }
      lo++;
    }
    if (k >= len || lo >= hi)
      break;
    guint8 c = text[k];
    /* first with byte k >= c */
    int a = lo, b = hi;
    while (a < b) {
      int m = (a + b) / 2;
      if ((guint8) spm->pieces[ids[m]].piece[k] < c)
        a = m + 1;
      else
        b = m;
    }
    int new_lo = a;
    b = hi;
    while (a < b) {
      int m = (a + b) / 2;
      if ((guint8) spm->pieces[ids[m]].piece[k] <= c)
        a = m + 1;
      else
        b = m;
    }
    lo = new_lo;
    hi = a;
    k++;
  }
  return n_out;
}

static gboolean
fail (GError **error, const char *name, const char *what)
{
  g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
               "%s: not a valid SentencePiece model: %s", name, what);
  return FALSE;
}

static int
piece_to_byte (const char *p)
{
  /* "<0xNN>" with upper-case hex, as SentencePiece writes byte pieces */
  static const char hex[] = "0123456789ABCDEF";
  if (strlen (p) != 6 || strncmp (p, "<0x", 3) != 0 || p[5] != '>')
    return -1;
  const char *h = strchr (hex, p[3]), *l = strchr (hex, p[4]);
  if (!h || !l || !p[3] || !p[4])
    return -1;
  return (int) ((h - hex) * 16 + (l - hex));
}

static gboolean
setup (OviSpm *spm, GError **error)
{
  const char *name = spm->name;

  if (spm->model_type != 1) {
    g_set_error (
        error, OVI_ERROR, OVI_ERROR_FORMAT,
        "%s: SentencePiece model type %d is not supported (only unigram, "
        "type 1; BPE/word/char models are not)",
        name, spm->model_type);
    return FALSE;
  }
  if (spm->n_pieces == 0)
    return fail (error, name, "no pieces");

  spm->piece_to_id = g_hash_table_new (g_str_hash, g_str_equal);
  spm->unk_id = -1;
  for (int i = 0; i < 256; i++)
    spm->byte_ids[i] = -1;
  spm->min_score = FLT_MAX;
  spm->max_score = FLT_MIN; /* as SentencePiece initialises it */
  spm->sorted = g_new (int, spm->n_pieces);
  spm->user_sorted = g_new (int, spm->n_pieces);
  for (int i = 0; i < spm->n_pieces; i++) {
    Piece *pc = &spm->pieces[i];
    if (pc->piece == NULL || pc->len == 0)
      return fail (error, name, "empty piece");
    if (g_hash_table_contains (spm->piece_to_id, pc->piece)) {
      g_autofree char *m
          = g_strdup_printf ("piece '%s' defined twice", pc->piece);
      return fail (error, name, m);
    }
    g_hash_table_insert (spm->piece_to_id, pc->piece, GINT_TO_POINTER (i + 1));
    if (pc->type == OVI_SPM_NORMAL || pc->type == OVI_SPM_USER_DEFINED
        || pc->type == OVI_SPM_UNUSED)
      spm->sorted[spm->n_sorted++] = i;
    if (pc->type == OVI_SPM_USER_DEFINED)
      spm->user_sorted[spm->n_user++] = i;
    if (pc->type == OVI_SPM_UNKNOWN) {
      if (spm->unk_id >= 0)
        return fail (error, name, "more than one unknown piece");
      spm->unk_id = i;
    }
    if (pc->type == OVI_SPM_BYTE) {
      int b = piece_to_byte (pc->piece);
      if (!spm->byte_fallback)
        return fail (error, name, "byte piece although byte_fallback is off");
      if (b < 0)
        return fail (error, name, "invalid byte piece");
      spm->byte_ids[b] = i;
    }
    if (pc->type == OVI_SPM_NORMAL) {
      spm->min_score = MIN (spm->min_score, pc->score);
      spm->max_score = MAX (spm->max_score, pc->score);
    }
  }
  if (spm->unk_id < 0)
    return fail (error, name, "no unknown piece");
  if (spm->byte_fallback)
    for (int i = 0; i < 256; i++)
      if (spm->byte_ids[i] < 0)
        return fail (error, name,
                     "byte_fallback is on but not all 256 byte pieces exist");
  if (spm->n_sorted == 0)
    return fail (error, name, "no normal pieces");
  sort_ids (spm, spm->sorted, spm->n_sorted);
  sort_ids (spm, spm->user_sorted, spm->n_user);

  if (spm->charsmap_size > 0) {
    const guint8 *b = spm->charsmap;
    if (spm->charsmap_size <= 4)
      return fail (error, name, "precompiled_charsmap is truncated");
    guint32 trie_size = (guint32) b[0] | ((guint32) b[1] << 8)
                        | ((guint32) b[2] << 16) | ((guint32) b[3] << 24);
    if (trie_size >= spm->charsmap_size - 4 + 1 || trie_size % 4 != 0
        || trie_size == 0)
      return fail (error, name, "precompiled_charsmap trie size is broken");
    if ((gsize) trie_size > spm->charsmap_size - 4)
      return fail (error, name, "precompiled_charsmap trie size is broken");
    spm->trie_units = trie_size / 4;
    spm->trie_buf = g_new (guint32, spm->trie_units);
    for (gsize i = 0; i < spm->trie_units; i++) {
      const guint8 *u = b + 4 + 4 * i;
      spm->trie_buf[i] = (guint32) u[0] | ((guint32) u[1] << 8)
                         | ((guint32) u[2] << 16) | ((guint32) u[3] << 24);
    }
    spm->trie = spm->trie_buf;
    spm->repl = (const char *) b + 4 + trie_size;
    spm->repl_size = spm->charsmap_size - 4 - trie_size;
  }
  return TRUE;
}

OviSpm *
ovi_spm_load_from_data (const guint8 *data, gsize size, const char *name,
                        GError **error)
{
  g_autoptr (OviSpm) spm = g_new0 (OviSpm, 1);
  Reader r = { data, data + size, FALSE };
  guint32 field, wire;
  GArray *pieces = g_array_new (FALSE, TRUE, sizeof (Piece));

  spm->name = g_strdup (name ? name : "(memory)");
  spm->model_type = 1;
  spm->add_dummy_prefix = TRUE;
  spm->remove_extra_ws = TRUE;
  spm->escape_ws = TRUE;
  while (read_tag (&r, &field, &wire)) {
    const guint8 *d;
    gsize n;
    if (wire == 2 && field >= 1 && field <= 3) {
      if (!read_bytes (&r, &d, &n))
        break;
      if (field == 1) {
        Piece pc;
        if (!parse_piece (&r, d, n, &pc)) {
          g_free (pc.piece);
          break;
        }
        g_array_append_val (pieces, pc);
      } else if (field == 2)
        parse_trainer (spm, &r, d, n);
      else
        parse_normalizer (spm, &r, d, n);
      if (r.bad)
        break;
    } else if (!skip_field (&r, wire))
      break;
  }
  spm->n_pieces = (int) pieces->len;
  spm->pieces = (Piece *) g_array_free (pieces, FALSE);
  if (r.bad) {
    fail (error, spm->name, "malformed protobuf");
    return NULL;
  }
  if (!setup (spm, error))
    return NULL;
  return g_steal_pointer (&spm);
}

OviSpm *
ovi_spm_load (const char *path, GError **error)
{
  g_autofree char *data = NULL;
  gsize size;
  g_autoptr (GError) local = NULL;

  if (!g_file_get_contents (path, &data, &size, &local)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO,
                 "cannot read SentencePiece model %s: %s", path,
                 local->message);
    return NULL;
  }
  return ovi_spm_load_from_data ((const guint8 *) data, size, path, error);
}

void
ovi_spm_free (OviSpm *spm)
{
  if (spm == NULL)
    return;
  for (int i = 0; i < spm->n_pieces; i++)
    g_free (spm->pieces[i].piece);
  g_free (spm->pieces);
  g_free (spm->name);
  g_free (spm->unk_piece);
  g_free (spm->eos_piece);
  g_free (spm->pad_piece);
  g_free (spm->norm_name);
  g_free (spm->charsmap);
  g_free (spm->trie_buf);
  g_free (spm->sorted);
  g_free (spm->user_sorted);
  if (spm->piece_to_id)
    g_hash_table_unref (spm->piece_to_id);
  g_free (spm);
}

int
ovi_spm_get_n_pieces (const OviSpm *spm)
{
  return spm->n_pieces;
}

const char *
ovi_spm_id_to_piece (const OviSpm *spm, int id)
{
  g_return_val_if_fail (id >= 0 && id < spm->n_pieces, NULL);
  return spm->pieces[id].piece;
}

OviSpmPieceType
ovi_spm_get_piece_type (const OviSpm *spm, int id)
{
  g_return_val_if_fail (id >= 0 && id < spm->n_pieces, OVI_SPM_UNUSED);
  return spm->pieces[id].type;
}

float
ovi_spm_get_score (const OviSpm *spm, int id)
{
  g_return_val_if_fail (id >= 0 && id < spm->n_pieces, 0.0f);
  return spm->pieces[id].score;
}

int
ovi_spm_piece_to_id (const OviSpm *spm, const char *piece)
{
  return GPOINTER_TO_INT (g_hash_table_lookup (spm->piece_to_id, piece)) - 1;
}

int
ovi_spm_get_unk_id (const OviSpm *spm)
{
  return spm->unk_id;
}

int
ovi_spm_get_eos_id (const OviSpm *spm)
{
  return ovi_spm_piece_to_id (
      spm, spm->eos_piece && *spm->eos_piece ? spm->eos_piece : "</s>");
}

int
ovi_spm_get_pad_id (const OviSpm *spm)
{
  return ovi_spm_piece_to_id (
      spm, spm->pad_piece && *spm->pad_piece ? spm->pad_piece : "<pad>");
}

/* ---- normaliser ---- */

/* SentencePiece's UTF-8 decoder: length of one valid character, or 0 if
 * the bytes are not one (an encoded U+FFFD counts as valid). */
static gsize
valid_utf8_len (const guint8 *s, gsize len)
{
  guint32 cp;
  if (s[0] < 0x80)
    return 1;
  if (len >= 2 && (s[0] & 0xE0) == 0xC0) {
    cp = ((s[0] & 0x1Fu) << 6) | (s[1] & 0x3Fu);
    if ((s[1] & 0xC0) == 0x80 && cp >= 0x80)
      return 2;
  } else if (len >= 3 && (s[0] & 0xF0) == 0xE0) {
    cp = ((s[0] & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
    if ((s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 && cp >= 0x800
        && (cp < 0xD800 || cp >= 0xE000))
      return 3;
  } else if (len >= 4 && (s[0] & 0xF8) == 0xF0) {
    cp = ((s[0] & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6)
         | (s[3] & 0x3Fu);
    if ((s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80
        && cp >= 0x10000 && cp <= 0x10FFFF)
      return 4;
  }
  return 0;
}

static gsize
one_char_len (guint8 c)
{
  return (gsize) "\1\1\1\1\1\1\1\1\1\1\1\1\2\2\3\4"[c >> 4];
}

#define UNIT_HAS_LEAF(u) ((((u) >> 8) & 1) == 1)
#define UNIT_VALUE(u)    ((u) & ((1u << 31) - 1))
#define UNIT_LABEL(u)    ((u) & ((1u << 31) | 0xFF))
#define UNIT_OFFSET(u)   (((u) >> 10) << (((u) & (1u << 9)) >> 6))

/* Darts commonPrefixSearch keeping the longest match: returns its length
 * (0: none) and the value. Out-of-range units end the search. */
static gsize
charsmap_longest (const OviSpm *spm, const guint8 *s, gsize len, guint32 *value)
{
  gsize node = 0, best = 0;
  guint32 unit;

  if (spm->trie_units == 0)
    return 0;
  unit = spm->trie[0];
  node ^= UNIT_OFFSET (unit);
  for (gsize i = 0; i < len; i++) {
    node ^= s[i];
    if (node >= spm->trie_units)
      break;
    unit = spm->trie[node];
    if (UNIT_LABEL (unit) != s[i])
      break;
    node ^= UNIT_OFFSET (unit);
    if (UNIT_HAS_LEAF (unit)) {
      if (node >= spm->trie_units)
        break;
      if (best == 0 || i + 1 > best) {
        best = i + 1;
        *value = UNIT_VALUE (spm->trie[node]);
      }
    }
  }
  return best;
}

/* NormalizePrefix: the normalised form of the first character(s) of s
 * (pointer + length into the model or the input) and the bytes consumed. */
static gsize
normalize_prefix (const OviSpm *spm, const guint8 *s, gsize len,
                  const char **out, gsize *out_len)
{
  if (spm->n_user > 0) {
    Match m[64];
    guint n = prefix_matches (spm, spm->user_sorted, spm->n_user, s, len, m,
                              G_N_ELEMENTS (m));
    /* a hostile model's user piece may be invalid UTF-8: not kept */
    if (n > 0 && g_utf8_validate_len ((const char *) s, m[n - 1].len, NULL)) {
      gsize l = m[n - 1].len;
      *out = (const char *) s;
      *out_len = l;
      return l;
    }
  }
  guint32 value = 0;
  gsize l = charsmap_longest (spm, s, len, &value);
  if (l > 0) {
    if (value >= spm->repl_size) {
      *out = "";
      *out_len = 0;
    } else {
      *out = spm->repl + value;
      *out_len = strnlen (*out, spm->repl_size - value);
      /* the normalised text stays UTF-8 whatever the model's blob holds */
      if (!g_utf8_validate_len (*out, *out_len, NULL)) {
        *out = "\xEF\xBF\xBD";
        *out_len = 3;
      }
    }
    return l;
  }
  l = valid_utf8_len (s, len);
  if (l == 0) {
    *out = "\xEF\xBF\xBD";
    *out_len = 3;
    return 1;
  }
  *out = (const char *) s;
  *out_len = l;
  return l;
}

static void
add_ws (const OviSpm *spm, GString *out)
{
  if (spm->escape_ws)
    g_string_append_len (out, SPACE_SYMBOL, SPACE_SYMBOL_LEN);
  else
    g_string_append_c (out, ' ');
}

static GString *
normalize (const OviSpm *spm, const guint8 *in, gsize len)
{
  GString *out = g_string_sized_new (len * 3 + 4);
  const char *sp;
  gsize sp_len, consumed;

  if (len == 0)
    return out;
  if (spm->remove_extra_ws) {
    while (len > 0) {
      consumed = normalize_prefix (spm, in, len, &sp, &sp_len);
      if (!(sp_len == 1 && sp[0] == ' '))
        break;
      in += consumed;
      len -= consumed;
    }
  }
  if (len == 0)
    return out;
  if (!spm->treat_ws_as_suffix && spm->add_dummy_prefix)
    add_ws (spm, out);
  gboolean prev_space = spm->remove_extra_ws;
  while (len > 0) {
    consumed = normalize_prefix (spm, in, len, &sp, &sp_len);
    while (prev_space && sp_len > 0 && sp[0] == ' ') {
      sp++;
      sp_len--;
    }
    if (sp_len > 0) {
      for (gsize i = 0; i < sp_len; i++) {
        if (spm->escape_ws && sp[i] == ' ')
          g_string_append_len (out, SPACE_SYMBOL, SPACE_SYMBOL_LEN);
        else
          g_string_append_c (out, sp[i]);
      }
      prev_space = sp[sp_len - 1] == ' ';
    }
    in += consumed;
    len -= consumed;
    if (!spm->remove_extra_ws)
      prev_space = FALSE;
  }
  if (spm->remove_extra_ws) {
    const char *space = spm->escape_ws ? SPACE_SYMBOL : " ";
    gsize sl = spm->escape_ws ? SPACE_SYMBOL_LEN : 1;
    while (out->len >= sl && memcmp (out->str + out->len - sl, space, sl) == 0)
      g_string_truncate (out, out->len - sl);
  }
  if (spm->treat_ws_as_suffix && spm->add_dummy_prefix)
    add_ws (spm, out);
  return out;
}

char *
ovi_spm_normalize (const OviSpm *spm, const char *text, gssize len)
{
  if (len < 0)
    len = (gssize) strlen (text);
  return g_string_free (normalize (spm, (const guint8 *) text, (gsize) len),
                        FALSE);
}

/* ---- unigram Viterbi (SentencePiece's optimised encoder) ---- */

typedef struct {
  int id;
  float score;
  int starts_at;
} Best;

guint
ovi_spm_encode (const OviSpm *spm, const char *text, gssize len, GArray *ids)
{
  g_autoptr (GString) norm = NULL;
  guint n0 = ids->len;

  if (len < 0)
    len = (gssize) strlen (text);
  norm = normalize (spm, (const guint8 *) text, (gsize) len);
  const guint8 *s = (const guint8 *) norm->str;
  gsize size = norm->len;
  if (size == 0)
    return 0;

  Best *best = g_new (Best, size + 1);
  for (gsize i = 0; i <= size; i++) {
    best[i].id = -1;
    best[i].score = 0;
    best[i].starts_at = -1;
  }
  const float unk_score = spm->min_score - UNK_PENALTY;
  gsize max_matches = 256;
  Match *m = g_new (Match, max_matches);
  gsize pos = 0;
  while (pos < size) {
    const float here = best[pos].score;
    gsize mblen = MIN (one_char_len (s[pos]), size - pos);
    gboolean has_single = FALSE;
    guint n;
    for (;;) {
      n = prefix_matches (spm, spm->sorted, spm->n_sorted, s + pos, size - pos,
                          m, (guint) max_matches);
      if (n < max_matches)
        break;
      max_matches *= 2;
      m = g_renew (Match, m, max_matches);
    }
    for (guint j = 0; j < n; j++) {
      const Piece *pc = &spm->pieces[m[j].id];
      if (pc->type == OVI_SPM_UNUSED)
        continue;
      Best *t = &best[pos + m[j].len];
      /* the reference computes this candidate in double precision and
       * stores it as float */
      double score = pc->type == OVI_SPM_USER_DEFINED
                         ? (double) ((float) m[j].len * spm->max_score) - 0.1
                         : (double) pc->score;
      double cand = score + (double) here;
      if (t->starts_at == -1 || cand > (double) t->score) {
        t->score = (float) cand;
        t->starts_at = (int) pos;
        t->id = m[j].id;
      }
      if (m[j].len == mblen)
        has_single = TRUE;
    }
    if (!has_single) {
      Best *t = &best[pos + mblen];
      float cand = unk_score + here;
      if (t->starts_at == -1 || cand > t->score) {
        t->score = cand;
        t->starts_at = (int) pos;
        t->id = spm->unk_id;
      }
    }
    pos += mblen;
  }
  g_free (m);

  /* backtrack */
  GArray *path = g_array_new (FALSE, FALSE, sizeof (int));
  for (gsize end = size; end > 0;) {
    int st = best[end].starts_at;
    if (st < 0) { /* cannot happen: every char has a node */
      g_array_set_size (path, 0);
      break;
    }
    g_array_append_val (path, end);
    end = (gsize) st;
  }
  gboolean prev_unk = FALSE;
  for (gint i = (gint) path->len - 1; i >= 0; i--) {
    int end = g_array_index (path, int, i);
    const Best *b = &best[end];
    gboolean is_unk = b->id == spm->unk_id;
    if (is_unk && spm->byte_fallback) {
      for (int k = b->starts_at; k < end; k++) {
        gint32 id = spm->byte_ids[s[k]];
        g_array_append_val (ids, id);
      }
    } else if (!(is_unk && prev_unk)) {
      gint32 id = b->id;
      g_array_append_val (ids, id);
    }
    prev_unk = is_unk;
  }
  g_array_free (path, TRUE);
  g_free (best);
  return ids->len - n0;
}

int
ovi_spm_encode_t5 (const OviSpm *spm, const char *text, int seq_len,
                   int64_t *ids, int64_t *mask, GError **error)
{
  g_autoptr (GArray) pieces = g_array_new (FALSE, FALSE, sizeof (gint32));
  int eos = ovi_spm_get_eos_id (spm), pad = ovi_spm_get_pad_id (spm);

  if (eos < 0) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                 "%s: the model has no eos piece '%s'", spm->name,
                 spm->eos_piece ? spm->eos_piece : "</s>");
    return -1;
  }
  if (seq_len < 1) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "sequence length %d is not positive", seq_len);
    return -1;
  }
  if (pad < 0)
    pad = 0;
  ovi_spm_encode (spm, text, -1, pieces);
  int n = MIN ((int) pieces->len, seq_len - 1);
  for (int i = 0; i < seq_len; i++) {
    int64_t id = i < n ? g_array_index (pieces, gint32, i) : i == n ? eos : pad;
    if (ids)
      ids[i] = id;
    if (mask)
      mask[i] = i <= n;
  }
  return n + 1;
}
