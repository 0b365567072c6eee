/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: tiny SentencePiece unigram model writer (see ovi-spm-writer.h). */
#include "ovi-spm-writer.h"

#include <math.h>
#include <string.h>

#define WS "\xe2\x96\x81"

/* frequent English words (and some from video/audio captions) */
static const char *const words[] = {
  "the",      "of",       "and",        "to",        "a",        "in",
  "is",       "it",       "you",        "that",      "he",       "was",
  "for",      "on",       "are",        "with",      "as",       "his",
  "they",     "be",       "at",         "one",       "have",     "this",
  "from",     "or",       "had",        "by",        "not",      "but",
  "what",     "some",     "we",         "can",       "out",      "other",
  "were",     "all",      "there",      "when",      "up",       "use",
  "your",     "how",      "said",       "an",        "each",     "she",
  "which",    "do",       "their",      "time",      "if",       "will",
  "way",      "about",    "many",       "then",      "them",     "would",
  "like",     "so",       "these",      "her",       "long",     "make",
  "thing",    "see",      "him",        "two",       "has",      "look",
  "more",     "day",      "could",      "go",        "come",     "did",
  "no",       "most",     "my",         "over",      "know",     "than",
  "call",     "first",    "who",        "may",       "down",     "side",
  "been",     "now",      "find",       "any",       "new",      "work",
  "part",     "take",     "get",        "place",     "made",     "live",
  "where",    "after",    "back",       "little",    "only",     "round",
  "man",      "year",     "came",       "show",      "every",    "good",
  "me",       "give",     "our",        "under",     "name",     "very",
  "through",  "just",     "form",       "great",     "say",      "help",
  "low",      "line",     "before",     "turn",      "cause",    "same",
  "mean",     "right",    "old",        "too",       "does",     "tell",
  "set",      "three",    "want",       "air",       "well",     "also",
  "play",     "small",    "end",        "put",       "home",     "read",
  "hand",     "large",    "add",        "even",      "land",     "here",
  "must",     "big",      "high",       "such",      "follow",   "act",
  "why",      "ask",      "men",        "change",    "went",     "light",
  "kind",     "off",      "need",       "house",     "picture",  "try",
  "us",       "again",    "animal",     "point",     "mother",   "world",
  "near",     "build",    "self",       "earth",     "father",   "head",
  "stand",    "own",      "page",       "should",    "country",  "found",
  "answer",   "school",   "grow",       "study",     "still",    "learn",
  "plant",    "cover",    "food",       "sun",       "four",     "thought",
  "let",      "keep",     "eye",        "never",     "last",     "door",
  "between",  "city",     "tree",       "cross",     "since",    "hard",
  "start",    "might",    "story",      "saw",       "far",      "sea",
  "draw",     "left",     "late",       "run",       "while",    "press",
  "close",    "night",    "real",       "life",      "few",      "stop",
  "open",     "seem",     "together",   "next",      "white",    "children",
  "begin",    "got",      "walk",       "example",   "ease",     "paper",
  "often",    "always",   "music",      "those",     "both",     "mark",
  "book",     "letter",   "until",      "mile",      "river",    "car",
  "feet",     "care",     "second",     "group",     "carry",    "took",
  "rain",     "eat",      "room",       "friend",    "began",    "idea",
  "fish",     "mountain", "north",      "once",      "base",     "hear",
  "horse",    "cut",      "sure",       "watch",     "color",    "face",
  "wood",     "main",     "enough",     "plain",     "girl",     "usual",
  "young",    "ready",    "above",      "ever",      "red",      "list",
  "though",   "feel",     "talk",       "bird",      "soon",     "body",
  "dog",      "family",   "direct",     "pose",      "leave",    "song",
  "measure",  "state",    "product",    "black",     "short",    "numeral",
  "class",    "wind",     "question",   "happen",    "complete", "ship",
  "area",     "half",     "rock",       "order",     "fire",     "south",
  "problem",  "piece",    "told",       "knew",      "pass",     "farm",
  "top",      "whole",    "king",       "size",      "heard",    "best",
  "hour",     "better",   "true",       "during",    "hundred",  "am",
  "remember", "step",     "early",      "hold",      "west",     "ground",
  "interest", "reach",    "fast",       "five",      "sing",     "listen",
  "six",      "table",    "travel",     "less",      "morning",  "ten",
  "simple",   "several",  "vowel",      "toward",    "war",      "lay",
  "against",  "pattern",  "slow",       "center",    "love",     "person",
  "money",    "serve",    "appear",     "road",      "map",      "science",
  "rule",     "govern",   "pull",       "cold",      "notice",   "voice",
  "fall",     "power",    "town",       "fine",      "certain",  "fly",
  "unit",     "lead",     "cry",        "dark",      "machine",  "note",
  "wait",     "plan",     "figure",     "star",      "box",      "noun",
  "field",    "rest",     "correct",    "able",      "pound",    "done",
  "beauty",   "drive",    "stood",      "contain",   "front",    "teach",
  "week",     "final",    "gave",       "green",     "oh",       "quick",
  "develop",  "sleep",    "warm",       "free",      "minute",   "strong",
  "special",  "mind",     "behind",     "clear",     "tail",     "produce",
  "fact",     "street",   "inch",       "lot",       "nothing",  "course",
  "stay",     "wheel",    "full",       "force",     "blue",     "object",
  "decide",   "surface",  "deep",       "moon",      "island",   "foot",
  "yet",      "busy",     "test",       "record",    "boat",     "common",
  "gold",     "possible", "plane",      "age",       "dry",      "wonder",
  "laugh",    "thousand", "ago",        "ran",       "check",    "game",
  "shape",    "yes",      "hot",        "miss",      "brought",  "heat",
  "snow",     "bed",      "bring",      "sit",       "perhaps",  "fill",
  "east",     "weight",   "language",   "among",     "video",    "audio",
  "camera",   "scene",    "woman",      "speaks",    "says",     "sound",
  "crowd",    "guitar",   "background", "soft",      "loud",     "wearing",
  "standing", "sitting",  "looking",    "smiling",   "calm",     "bright",
  "street",   "kitchen",  "chef",       "pancake",   "voice",    "cheerful",
  "sizzling", "pan",      "breakfast",  "served",    "singer",   "stage",
  "lights",   "jacket",   "microphone", "cinematic", "shot",     "close-up",
};

static const char *const subwords[] = {
  "s",   "ed",  "ing", "er",  "ly",    "es",   "tion", "al",   "re",  "en",
  "on",  "an",  "th",  "he",  "in",    "at",   "or",   "ar",   "le",  "ent",
  "ion", "ter", "est", "ers", "ation", "ness", "ment", "able", "ful", "less",
  "ous", "ive", "ity", "ic",  "ch",    "sh",   "ll",   "ee",   "oo",  "st",
  "nd",  "ng",  "ou",  "it",  "is",    "ro",   "ri",   "de",   "co",  "ca",
  "ma",  "li",  "la",  "ra",  "ta",    "ti",
};

typedef struct {
  guint64 s;
} Rng;

static double
rng_uniform (Rng *r)
{
  guint64 z = (r->s += G_GUINT64_CONSTANT (0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * G_GUINT64_CONSTANT (0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * G_GUINT64_CONSTANT (0x94D049BB133111EB);
  z ^= z >> 31;
  return (double) (z >> 11) / 9007199254740992.0;
}

static void
put_varint (GByteArray *b, guint64 v)
{
  while (v >= 0x80) {
    guint8 c = (guint8) (v | 0x80);
    g_byte_array_append (b, &c, 1);
    v >>= 7;
  }
  guint8 c = (guint8) v;
  g_byte_array_append (b, &c, 1);
}

static void
put_tag (GByteArray *b, guint32 field, guint32 wire)
{
  put_varint (b, ((guint64) field << 3) | wire);
}

static void
put_bytes (GByteArray *b, guint32 field, const void *data, gsize n)
{
  put_tag (b, field, 2);
  put_varint (b, n);
  g_byte_array_append (b, data, (guint) n);
}

static void
put_int (GByteArray *b, guint32 field, gint64 v)
{
  put_tag (b, field, 0);
  put_varint (b, (guint64) v); /* negatives: ten-byte two's complement */
}

static void
put_float (GByteArray *b, guint32 field, float f)
{
  guint32 u;
  guint8 le[4];
  memcpy (&u, &f, 4);
  for (int i = 0; i < 4; i++)
    le[i] = (guint8) (u >> (8 * i));
  put_tag (b, field, 5);
  g_byte_array_append (b, le, 4);
}

static void
add_piece (GByteArray *model, GHashTable *seen, const char *piece, float score,
           int type)
{
  if (g_hash_table_contains (seen, piece))
    return;
  g_hash_table_add (seen, g_strdup (piece));
  g_autoptr (GByteArray) p = g_byte_array_new ();
  put_bytes (p, 1, piece, strlen (piece));
  put_float (p, 2, score);
  if (type != 1)
    put_int (p, 3, type);
  put_bytes (model, 1, p->data, p->len);
}

GBytes *
ovi_spm_tiny_model_bytes (guint64 seed)
{
  GByteArray *model = g_byte_array_new ();
  g_autoptr (GHashTable) seen
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  Rng rng = { seed ^ G_GUINT64_CONSTANT (0x6f76692d73706d) };
  char buf[64];
  int n_pieces;

  add_piece (model, seen, "<pad>", 0, 3);
  add_piece (model, seen, "</s>", 0, 3);
  add_piece (model, seen, "<unk>", 0, 2);
  /* words after a word boundary, by frequency rank */
  for (gsize i = 0; i < G_N_ELEMENTS (words); i++) {
    g_snprintf (buf, sizeof buf, WS "%s", words[i]);
    float score = (float) (-3.0 - 4.0 * log1p ((double) i) / log (600.0)
                           - 0.05 * rng_uniform (&rng));
    add_piece (model, seen, buf, score, 1);
  }
  for (gsize i = 0; i < G_N_ELEMENTS (subwords); i++) {
    float score
        = (float) (-6.5 - 0.02 * (double) i - 0.05 * rng_uniform (&rng));
    add_piece (model, seen, subwords[i], score, 1);
  }
  add_piece (model, seen, WS, (float) (-4.0 - 0.05 * rng_uniform (&rng)), 1);
  /* every printable ASCII character, bare and after a boundary */
  for (int c = 0x21; c < 0x7f; c++) {
    g_snprintf (buf, sizeof buf, WS "%c", c);
    add_piece (model, seen, buf, (float) (-8.5 - 0.5 * rng_uniform (&rng)), 1);
  }
  for (int c = 0x21; c < 0x7f; c++) {
    g_snprintf (buf, sizeof buf, "%c", c);
    add_piece (model, seen, buf, (float) (-9.5 - 0.5 * rng_uniform (&rng)), 1);
  }
  n_pieces = (int) g_hash_table_size (seen);

  /* trainer spec */
  g_autoptr (GByteArray) ts = g_byte_array_new ();
  put_bytes (ts, 2, "tiny", 4); /* model_prefix */
  put_int (ts, 3, 1);           /* model_type UNIGRAM */
  put_int (ts, 4, n_pieces);    /* vocab_size */
  put_int (ts, 35, 0);          /* byte_fallback */
  put_int (ts, 40, 2);          /* unk_id */
  put_int (ts, 41, -1);         /* bos_id */
  put_int (ts, 42, 1);          /* eos_id */
  put_int (ts, 43, 0);          /* pad_id */
  put_bytes (ts, 45, "<unk>", 5);
  put_bytes (ts, 46, "<s>", 3);
  put_bytes (ts, 47, "</s>", 4);
  put_bytes (ts, 48, "<pad>", 5);
  put_bytes (model, 2, ts->data, ts->len);

  /* normalizer spec */
  g_autoptr (GByteArray) ns = g_byte_array_new ();
  put_bytes (ns, 1, "identity", 8);
  put_int (ns, 3, 1); /* add_dummy_prefix */
  put_int (ns, 4, 1); /* remove_extra_whitespaces */
  put_int (ns, 5, 1); /* escape_whitespaces */
  put_bytes (model, 3, ns->data, ns->len);

  return g_byte_array_free_to_bytes (model);
}

gboolean
ovi_spm_write_tiny_model (const char *path, guint64 seed, GError **error)
{
  g_autoptr (GBytes) bytes = ovi_spm_tiny_model_bytes (seed);
  g_autoptr (GError) local = NULL;
  gsize n;
  const char *data = g_bytes_get_data (bytes, &n);

  if (!g_file_set_contents (path, data, (gssize) n, &local)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO,
                 "cannot write SentencePiece model %s: %s", path,
                 local->message);
    return FALSE;
  }
  return TRUE;
}
