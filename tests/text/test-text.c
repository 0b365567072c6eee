/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi tests: the text path (suite `text`).
 *
 *  - SentencePiece parity: small models trained at test time by Debian's
 *    spm_train with different settings, ids compared with the SentencePiece
 *    python module on generated strings: 100% identical required;
 *  - the golden tokenizer case (cleaning, ids, mask, ids_untruncated);
 *  - the tiny-model writer, loaded and run by SentencePiece itself;
 *  - malformed model files, unsupported model types;
 *  - cleaning units, prompt formatting;
 *  - the text encoder stage against the golden t5 case.
 */
#include <json-glib/json-glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ovi-engine.h"
#include "ovi-prompt.h"
#include "ovi-spm-writer.h"
#include "ovi-spm.h"
#include "ovi-t5.h"
#include "ovi-text-clean.h"

#define PYTHON    "/usr/bin/python3"
#define SPM_TRAIN "/usr/bin/spm_train"

static const char *
golden_dir (void)
{
  const char *d = g_getenv ("OVI_GOLDEN_DIR");
  g_assert_nonnull (d);
  return d;
}

static char *
script (const char *name)
{
  return g_build_filename (OVI_TEXT_TEST_DIR, name, NULL);
}

static void
run_or_fail (const char *const *argv, const char *cwd)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *out = NULL, *err = NULL;
  int status = 0;

  if (!g_spawn_sync (cwd, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                     &out, &err, &status, &error))
    g_error ("cannot run %s: %s", argv[0], error->message);
  if (!g_spawn_check_wait_status (status, &error))
    g_error ("%s failed: %s\n%s", argv[0], error->message, err);
}

/* reference ids for each string of strings_path from SentencePiece */
static JsonArray *
reference_ids (const char *model, const char *strings_path, const char *dir,
               JsonParser *parser)
{
  g_autofree char *ref = script ("spm-reference.py");
  g_autofree char *out = g_build_filename (dir, "ref.json", NULL);
  const char *argv[] = { PYTHON, ref, model, strings_path, out, NULL };
  g_autoptr (GError) error = NULL;

  run_or_fail (argv, dir);
  g_assert_true (json_parser_load_from_file (parser, out, &error));
  g_assert_no_error (error);
  return json_node_get_array (json_parser_get_root (parser));
}

/* n identical / total; prints the first differences */
static guint
compare_model (const char *model_path, const char *strings_path,
               const char *dir, guint *total)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviSpm) spm = ovi_spm_load (model_path, &error);
  g_autoptr (JsonParser) sp = json_parser_new ();
  g_autoptr (JsonParser) rp = json_parser_new ();
  guint same = 0, shown = 0;

  g_assert_no_error (error);
  g_assert_true (json_parser_load_from_file (sp, strings_path, &error));
  JsonArray *strings = json_node_get_array (json_parser_get_root (sp));
  JsonArray *refs = reference_ids (model_path, strings_path, dir, rp);
  g_assert_cmpuint (json_array_get_length (strings), ==,
                    json_array_get_length (refs));
  *total = json_array_get_length (strings);
  for (guint i = 0; i < *total; i++) {
    const char *s = json_array_get_string_element (strings, i);
    JsonArray *r = json_array_get_array_element (refs, i);
    g_autoptr (GArray) ids = g_array_new (FALSE, FALSE, sizeof (gint32));
    ovi_spm_encode (spm, s, -1, ids);
    gboolean ok = ids->len == json_array_get_length (r);
    for (guint k = 0; ok && k < ids->len; k++)
      ok = g_array_index (ids, gint32, k) == json_array_get_int_element (r, k);
    if (ok)
      same++;
    else if (shown++ < 5)
      g_printerr ("%s: string %u \"%s\" differs (%u ids, reference %u)\n",
                  model_path, i, s, ids->len, json_array_get_length (r));
  }
  return same;
}

typedef struct {
  const char *name;
  const char *args;
} TrainConfig;

static const TrainConfig configs[] = {
  { "unigram-nmt-nfkc", "--normalization_rule_name=nmt_nfkc" },
  { "unigram-identity", "--normalization_rule_name=identity" },
  { "unigram-nfkc-cf", "--normalization_rule_name=nfkc_cf" },
  { "byte-fallback", "--byte_fallback=true" },
  { "no-dummy-prefix", "--add_dummy_prefix=false" },
  { "keep-whitespace", "--remove_extra_whitespaces=false" },
  { "identity-keep-ws-no-dummy",
    "--normalization_rule_name=identity "
    "--remove_extra_whitespaces=false --add_dummy_prefix=false" },
  { "user-defined-and-control",
    "--user_defined_symbols=<S>,<E>,<AUDCAP>,"
    "<ENDAUDCAP>,Audio: --control_symbols=<ctl>,<2en>" },
  { "whitespace-suffix", "--treat_whitespace_as_suffix=true" },
  { "small-vocab", "--vocab_size=300" },
};

static void
test_spm_train_parity (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("ovi-text-XXXXXX", &error);
  g_autofree char *gen = script ("make-corpus.py");
  g_autofree char *corpus = g_build_filename (dir, "corpus.txt", NULL);
  g_autofree char *strings = g_build_filename (dir, "strings.json", NULL);
  const char *mk[] = { PYTHON, gen, "20261122", corpus, strings, "400", NULL };
  guint grand_same = 0, grand_total = 0;

  g_assert_no_error (error);
  if (!g_file_test (SPM_TRAIN, G_FILE_TEST_IS_EXECUTABLE))
    g_error ("%s is missing (Debian package sentencepiece)", SPM_TRAIN);
  run_or_fail (mk, dir);
  for (gsize c = 0; c < G_N_ELEMENTS (configs); c++) {
    g_autofree char *prefix = g_build_filename (dir, configs[c].name, NULL);
    g_autofree char *model = g_strconcat (prefix, ".model", NULL);
    g_autofree char *cmd = g_strdup_printf (
        "%s --input=corpus.txt "
        "--model_prefix=%s --vocab_size=1000 --hard_vocab_limit=false "
        "--model_type=unigram --num_threads=1 --pad_id=0 --eos_id=1 "
        "--unk_id=2 --bos_id=-1 --character_coverage=0.9995 %s",
        SPM_TRAIN, configs[c].name, configs[c].args);
    g_auto (GStrv) argv = NULL;
    g_assert_true (g_shell_parse_argv (cmd, NULL, &argv, &error));
    run_or_fail ((const char *const *) argv, dir);
    guint total = 0, same = compare_model (model, strings, dir, &total);
    g_print ("# spm_train %-28s %u/%u identical\n", configs[c].name, same,
             total);
    g_assert_cmpuint (total, ==, 400);
    g_assert_cmpuint (same, ==, total);
    grand_same += same;
    grand_total += total;
  }
  g_assert_cmpuint (grand_same, ==, grand_total);

  /* a BPE model is refused with a clear error */
  const char *bpe[] = { SPM_TRAIN,
                        "--input=corpus.txt",
                        "--model_prefix=bpe",
                        "--vocab_size=500",
                        "--hard_vocab_limit=false",
                        "--model_type=bpe",
                        "--num_threads=1",
                        NULL };
  run_or_fail (bpe, dir);
  g_autofree char *bpe_model = g_build_filename (dir, "bpe.model", NULL);
  g_autoptr (OviSpm) spm = ovi_spm_load (bpe_model, &error);
  g_assert_null (spm);
  g_assert_error (error, OVI_ERROR, OVI_ERROR_FORMAT);
  g_assert_nonnull (strstr (error->message, "bpe.model"));
  g_assert_nonnull (strstr (error->message, "only unigram"));

  g_autofree char *rm = g_strdup_printf ("rm -rf '%s'", dir);
  g_assert_cmpint (system (rm), ==, 0);
}

/* Unknown characters against multi-character pieces: a model made so that
 * the unknown penalty (min_score - 10) decides between paths
 * (make-unk-cases.py), our ids against SentencePiece's on every string. */
static void
test_unknown_competition (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("ovi-unk-XXXXXX", &error);
  g_autofree char *gen = script ("make-unk-cases.py");
  g_autofree char *model = g_build_filename (dir, "unk.model", NULL);
  g_autofree char *strings = g_build_filename (dir, "strings.json", NULL);
  const char *mk[] = { PYTHON, gen, model, strings, NULL };
  guint total = 0, same;

  g_assert_no_error (error);
  run_or_fail (mk, dir);
  same = compare_model (model, strings, dir, &total);
  g_print ("# unknown-vs-piece cases: %u/%u identical\n", same, total);
  g_assert_cmpuint (total, >, 500);
  g_assert_cmpuint (same, ==, total);
  g_autofree char *rm = g_strdup_printf ("rm -rf '%s'", dir);
  g_assert_cmpint (system (rm), ==, 0);
}

static void
append_json_ints (GArray *a, JsonArray *j)
{
  for (guint i = 0; i < json_array_get_length (j); i++) {
    int64_t v = json_array_get_int_element (j, i);
    g_array_append_val (a, v);
  }
}

static void
test_golden_tokenizer (void)
{
  g_autofree char *model
      = g_build_filename (golden_dir (), "tokenizer", "spiece.model", NULL);
  g_autofree char *cases
      = g_build_filename (golden_dir (), "tokenizer", "cases.json", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (OviSpm) spm = ovi_spm_load (model, &error);
  g_autoptr (JsonParser) parser = json_parser_new ();
  guint n_same = 0, n_clean = 0, n_trunc = 0;
  const int seq_len = 128; /* config.json */

  g_assert_no_error (error);
  g_assert_true (json_parser_load_from_file (parser, cases, &error));
  JsonArray *a = json_node_get_array (json_parser_get_root (parser));
  g_assert_cmpuint (json_array_get_length (a), ==, 200);
  g_assert_cmpint (ovi_spm_get_eos_id (spm), ==, 1);
  g_assert_cmpint (ovi_spm_get_pad_id (spm), ==, 0);
  g_assert_cmpint (ovi_spm_get_unk_id (spm), ==, 2);
  for (guint i = 0; i < json_array_get_length (a); i++) {
    JsonObject *c = json_array_get_object_element (a, i);
    g_autofree char *clean
        = ovi_text_clean (json_object_get_string_member (c, "text"));
    int64_t ids[128], mask[128];
    int n = ovi_spm_encode_t5 (spm, clean, seq_len, ids, mask, &error);
    g_assert_no_error (error);
    g_autoptr (GArray) ref_ids = g_array_new (FALSE, FALSE, sizeof (int64_t));
    g_autoptr (GArray) ref_mask = g_array_new (FALSE, FALSE, sizeof (int64_t));
    g_autoptr (GArray) ref_full = g_array_new (FALSE, FALSE, sizeof (int64_t));
    append_json_ints (ref_ids, json_object_get_array_member (c, "ids"));
    append_json_ints (ref_mask, json_object_get_array_member (c, "mask"));
    append_json_ints (ref_full,
                      json_object_get_array_member (c, "ids_untruncated"));
    g_autoptr (GArray) full = g_array_new (FALSE, FALSE, sizeof (gint32));
    ovi_spm_encode (spm, clean, -1, full);
    gboolean same = ref_ids->len == 128 && ref_mask->len == 128
                    && memcmp (ids, ref_ids->data, sizeof ids) == 0
                    && memcmp (mask, ref_mask->data, sizeof mask) == 0
                    && n == json_object_get_int_member (c, "n_tokens")
                    && full->len + 1 == ref_full->len;
    for (guint k = 0; same && k < full->len; k++)
      same = g_array_index (full, gint32, k)
             == g_array_index (ref_full, int64_t, k);
    same = same && g_array_index (ref_full, int64_t, full->len) == 1;
    if (!same)
      g_printerr ("golden case %u differs\n", i);
    n_same += same;
    n_clean
        += strcmp (clean, json_object_get_string_member (c, "cleaned")) == 0;
    n_trunc += json_object_get_boolean_member (c, "truncated") && ids[127] == 1
               && mask[127] == 1;
  }
  g_print ("# golden tokenizer: %u/200 ids identical, %u/200 cleaned "
           "identical, %u truncated with eos last\n",
           n_same, n_clean, n_trunc);
  g_assert_cmpuint (n_same, ==, 200);
  g_assert_cmpuint (n_clean, ==, 200);
  g_assert_cmpuint (n_trunc, ==, 75);
}

static void
test_tiny_writer (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("ovi-tiny-spm-XXXXXX", &error);
  g_autofree char *strings = g_build_filename (dir, "strings.json", NULL);
  static const char *const texts[] = {
    "A chef flips a pancake. <S>Breakfast is served!<E> <AUDCAP>sizzling "
    "pan, cheerful voice<ENDAUDCAP>",
    "",
    "   ",
    "the quick brown fox jumps over the lazy dog",
    "  several   spaces\tand\nnewlines  ",
    "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac "
    "\xf0\x9f\x8e\x89 unknowns \xe2\x9c\x93\xe2\x9c\x93",
    "Numbers 1234567890 and punctuation!?.,;:'\"()[]{}",
    "<pad></s><unk>",
  };
  g_autoptr (JsonBuilder) jb = json_builder_new ();
  json_builder_begin_array (jb);
  for (gsize i = 0; i < G_N_ELEMENTS (texts); i++)
    json_builder_add_string_value (jb, texts[i]);
  json_builder_end_array (jb);
  g_autoptr (JsonGenerator) jg = json_generator_new ();
  g_autoptr (JsonNode) root = json_builder_get_root (jb);
  json_generator_set_root (jg, root);
  g_assert_true (json_generator_to_file (jg, strings, &error));

  for (guint64 seed = 0; seed < 3; seed++) {
    g_autofree char *name
        = g_strdup_printf ("tiny%" G_GUINT64_FORMAT ".model", seed);
    g_autofree char *path = g_build_filename (dir, name, NULL);
    g_assert_true (ovi_spm_write_tiny_model (path, seed, &error));
    g_assert_no_error (error);
    g_autoptr (OviSpm) spm = ovi_spm_load (path, &error);
    g_assert_no_error (error);
    int n = ovi_spm_get_n_pieces (spm);
    g_assert_cmpint (n, >=, 500);
    g_assert_cmpint (n, <=, 1000);
    g_assert_cmpstr (ovi_spm_id_to_piece (spm, 0), ==, "<pad>");
    g_assert_cmpstr (ovi_spm_id_to_piece (spm, 1), ==, "</s>");
    g_assert_cmpstr (ovi_spm_id_to_piece (spm, 2), ==, "<unk>");
    g_assert_cmpint (ovi_spm_get_piece_type (spm, 1), ==, OVI_SPM_CONTROL);
    g_assert_cmpint (ovi_spm_get_unk_id (spm), ==, 2);
    guint total = 0, same = compare_model (path, strings, dir, &total);
    g_assert_cmpuint (same, ==, total);
    g_assert_cmpuint (total, ==, G_N_ELEMENTS (texts));
  }
  /* the same seed writes the same bytes */
  g_autofree char *p0 = g_build_filename (dir, "tiny0.model", NULL);
  g_autofree char *pd = g_build_filename (dir, "again0.model", NULL);
  g_assert_true (ovi_spm_write_tiny_model (pd, 0, &error));
  g_autofree char *a = NULL, *b = NULL;
  gsize na, nb;
  g_assert_true (g_file_get_contents (p0, &a, &na, NULL));
  g_assert_true (g_file_get_contents (pd, &b, &nb, NULL));
  g_assert_cmpmem (a, na, b, nb);
  /* seeds change the scores */
  g_autofree char *p1 = g_build_filename (dir, "tiny1.model", NULL);
  g_autofree char *c = NULL;
  gsize nc;
  g_assert_true (g_file_get_contents (p1, &c, &nc, NULL));
  g_assert_true (na != nc || memcmp (a, c, na) != 0);

  /* unwritable path */
  g_assert_false (
      ovi_spm_write_tiny_model ("/nonexistent/dir/x.model", 0, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "/nonexistent/dir/x.model"));
  g_clear_error (&error);

  g_autofree char *rm = g_strdup_printf ("rm -rf '%s'", dir);
  g_assert_cmpint (system (rm), ==, 0);
}

static void
expect_format_error (const guint8 *data, gsize n, const char *what)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviSpm) spm
      = ovi_spm_load_from_data (data, n, "bad.model", &error);
  if (spm != NULL)
    g_error ("%s: accepted", what);
  g_assert_error (error, OVI_ERROR, OVI_ERROR_FORMAT);
  g_assert_nonnull (strstr (error->message, "bad.model"));
}

static void
test_malformed (void)
{
  g_autoptr (GBytes) good = ovi_spm_tiny_model_bytes (3);
  gsize n;
  const guint8 *d = g_bytes_get_data (good, &n);
  g_autoptr (GError) error = NULL;

  /* every truncation of the file fails cleanly or (at a field boundary)
   * loads; none crashes */
  guint refused = 0;
  for (gsize cut = 0; cut < n; cut += 1 + cut / 64) {
    g_autoptr (OviSpm) s = ovi_spm_load_from_data (d, cut, "bad.model", &error);
    if (s == NULL) {
      g_assert_error (error, OVI_ERROR, OVI_ERROR_FORMAT);
      refused++;
    }
    g_clear_error (&error);
  }
  g_assert_cmpuint (refused, >, 0);

  /* random garbage */
  guint8 junk[512];
  GRand *r = g_rand_new_with_seed (5);
  for (int t = 0; t < 50; t++) {
    for (gsize i = 0; i < sizeof junk; i++)
      junk[i] = (guint8) g_rand_int (r);
    g_autoptr (OviSpm) s
        = ovi_spm_load_from_data (junk, sizeof junk, "bad.model", &error);
    g_assert_null (s);
    g_assert_error (error, OVI_ERROR, OVI_ERROR_FORMAT);
    g_clear_error (&error);
  }
  g_rand_free (r);

  /* bit flips: anything accepted must still encode */
  g_autofree guint8 *copy = g_memdup2 (d, n);
  for (gsize i = 0; i < n; i += 7) {
    copy[i] ^= 0x5a;
    g_autoptr (OviSpm) s
        = ovi_spm_load_from_data (copy, n, "bad.model", &error);
    if (s) {
      g_autoptr (GArray) ids = g_array_new (FALSE, FALSE, sizeof (gint32));
      ovi_spm_encode (s, "hello world \xe2\x9c\x93", -1, ids);
    } else {
      g_assert_error (error, OVI_ERROR, OVI_ERROR_FORMAT);
    }
    g_clear_error (&error);
    copy[i] ^= 0x5a;
  }

  /* hand-made messages */
  static const guint8 empty_piece[] = { 0x0a, 0x02, 0x0a, 0x00 };
  expect_format_error (empty_piece, sizeof empty_piece, "empty piece");
  static const guint8 bad_wire[] = { 0x0b, 0x00 };
  expect_format_error (bad_wire, sizeof bad_wire, "group wire type");
  static const guint8 long_len[] = { 0x0a, 0xff, 0x01, 0x00 };
  expect_format_error (long_len, sizeof long_len, "length past the end");
  static const guint8 no_unk[] = { 0x0a, 0x05, 0x0a, 0x01, 'a', 0x18, 0x01 };
  expect_format_error (no_unk, sizeof no_unk, "no unk");
  static const guint8 nothing[] = { 0 };
  expect_format_error (nothing, 0, "empty file");

  /* missing file */
  g_autoptr (OviSpm) s = ovi_spm_load ("/nonexistent/spiece.model", &error);
  g_assert_null (s);
  g_assert_error (error, OVI_ERROR, OVI_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "/nonexistent/spiece.model"));
}

static void
test_invalid_utf8 (void)
{
  g_autofree char *model
      = g_build_filename (golden_dir (), "tokenizer", "spiece.model", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (OviSpm) spm = ovi_spm_load (model, &error);
  g_autoptr (GArray) ids = g_array_new (FALSE, FALSE, sizeof (gint32));

  g_assert_no_error (error);
  /* invalid bytes normalise to U+FFFD one byte at a time, then unk; the
   * three fuse into one unk */
  g_autofree char *n = ovi_spm_normalize (spm, "a\xff\xfe\xc3", -1);
  g_assert_cmpstr (n, ==,
                   "\xe2\x96\x81"
                   "a\xef\xbf\xbd\xef\xbf\xbd"
                   "\xef\xbf\xbd");
  ovi_spm_encode (spm, "a\xff\xfe\xc3", -1, ids);
  g_assert_cmpuint (ids->len, >=, 2);
  g_assert_cmpint (g_array_index (ids, gint32, ids->len - 1), ==, 2);
  /* cleaning makes input valid */
  g_autofree char *c = ovi_text_clean ("x\xff y");
  g_assert_true (g_utf8_validate (c, -1, NULL));
  /* bad arguments */
  int64_t one[1];
  g_assert_cmpint (ovi_spm_encode_t5 (spm, "x", 0, one, NULL, &error), ==, -1);
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_cmpint (ovi_spm_encode_t5 (spm, "", 1, one, NULL, &error), ==, 1);
  g_assert_cmpint (one[0], ==, 1);
}

static void
test_clean_units (void)
{
  static const struct {
    const char *in, *out;
  } cases[] = {
    { "  a \t b\n\nc  ", "a b c" },
    { "caf\xc3\x83\xc2\xa9", "caf\xc3\xa9" }, /* cafÃ© */
    { "\xe2\x80\x9cq\xe2\x80\x9d \xe2\x80\x98s\xe2\x80\x99", "\"q\" 's'" },
    { "\xef\xac\x81ne \xef\xac\x82oor", "fine floor" },
    { "\xef\xbc\xa6\xef\xbd\x95\xef\xbc\x91", "Fu1" }, /* ＦＵ１ */
    { "a\x07"
      "b \x1b[1;31mred\x1b[0m",
      "ab red" },
    { "&amp;amp; &lt;S&gt;", "& <S>" },
    { "&eacute;t&eacute; &#233; &#xE9; &euro;", "\xc3\xa9t\xc3\xa9 \xc3\xa9 "
                                                "\xc3\xa9 \xe2\x82\xac" },
    { "e\xcc\x81", "\xc3\xa9" },                          /* NFD -> NFC */
    { "zero\xe2\x80\x8bwidth", "zero\xe2\x80\x8bwidth" }, /* ZWSP kept */
    { "a\xc2\xa0"
      "b\xe3\x80\x80"
      "c\xe2\x80\xa8"
      "d",
      "a b c d" },
    /* real text that looks like mojibake is kept */
    { "\xe2\x80\x9c"
      "CAF\xc3\x89\xe2\x80\x9d",
      "\"CAF\xc3\x89\"" },
    { "OL\xc3\x89\xe2\x80\xa6", "OL\xc3\x89\xe2\x80\xa6" },
    { "\xc2\xab Caf\xc3\xa9\xc2\xa0\xc2\xbb", "\xc2\xab Caf\xc3\xa9 \xc2\xbb" },
    /* mojibake of CJK and emoji is repaired */
    { "\xc3\xa6\xe2\x80\x94\xc2\xa5", "\xe6\x97\xa5" },
    { "\xc3\xb0\xc5\xb8\xcb\x9c\xe2\x82\xac", "\xf0\x9f\x98\x80" },
    { "", "" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *got = ovi_text_clean (cases[i].in);
    g_assert_cmpstr (got, ==, cases[i].out);
  }
}

static void
test_html_unescape (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("ovi-html-XXXXXX", &error);
  g_autofree char *gen = script ("html-reference.py");
  g_autofree char *out = g_build_filename (dir, "html.json", NULL);
  const char *argv[] = { PYTHON, gen, "7", "2000", out, NULL };
  g_autoptr (JsonParser) parser = json_parser_new ();
  guint same = 0;

  g_assert_no_error (error);
  run_or_fail (argv, dir);
  g_assert_true (json_parser_load_from_file (parser, out, &error));
  JsonArray *a = json_node_get_array (json_parser_get_root (parser));
  g_assert_cmpuint (json_array_get_length (a), ==, 2000);
  for (guint i = 0; i < json_array_get_length (a); i++) {
    JsonArray *pair = json_array_get_array_element (a, i);
    const char *in = json_array_get_string_element (pair, 0);
    const char *ref = json_array_get_string_element (pair, 1);
    g_autofree char *got = ovi_text_html_unescape (in);
    if (strcmp (got, ref) == 0)
      same++;
    else
      g_printerr ("html.unescape differs: \"%s\" -> \"%s\", Python \"%s\"\n",
                  in, got, ref);
  }
  g_print ("# html.unescape: %u/2000 identical to Python\n", same);
  g_assert_cmpuint (same, ==, 2000);
  g_autofree char *rm = g_strdup_printf ("rm -rf '%s'", dir);
  g_assert_cmpint (system (rm), ==, 0);
}

static void
test_prompt_format (void)
{
  static const struct {
    const char *in;
    gboolean audcap;
    const char *out;
  } cases[] = {
    { "A dog barks. Audio: barking,  traffic", TRUE,
      "A dog barks. <AUDCAP>barking,  traffic<ENDAUDCAP>" },
    { "A dog. Audio:\n  bark\nmore", TRUE,
      "A dog. <AUDCAP>bark\nmore<ENDAUDCAP>" },
    { "A dog. Audio: x Audio: y", TRUE,
      "A dog. <AUDCAP>x Audio: y<ENDAUDCAP>" },
    { "no caption", TRUE, "no caption" },
    { "A <AUDCAP>x<ENDAUDCAP> B <AUDCAP>y<ENDAUDCAP>", FALSE,
      "A Audio: x B Audio: y" },
    { "A <AUDCAP>unclosed", FALSE, "A <AUDCAP>unclosed" },
    { "<AUDCAP>x<ENDAUDCAP>", TRUE, "<AUDCAP>x<ENDAUDCAP>" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *got = ovi_prompt_format (cases[i].in, cases[i].audcap);
    g_assert_cmpstr (got, ==, cases[i].out);
  }
}

static double
rel_l2 (const OviTensor *got, const OviTensor *ref, double *max_abs)
{
  g_autoptr (OviTensor) r = ovi_tensor_to_f32 (ref, NULL);
  const float *a = ovi_tensor_data (got), *b = ovi_tensor_data (r);
  double d2 = 0, r2 = 0;
  g_assert_cmpint (ovi_tensor_numel (got), ==, ovi_tensor_numel (r));
  *max_abs = 0;
  for (int64_t i = 0; i < ovi_tensor_numel (got); i++) {
    double d = (double) a[i] - b[i];
    d2 += d * d;
    r2 += (double) b[i] * b[i];
    *max_abs = MAX (*max_abs, fabs (d));
  }
  return sqrt (d2 / r2);
}

static void
test_encoder_stage (void)
{
  g_autofree char *w
      = g_build_filename (golden_dir (), "t5", "weights.safetensors", NULL);
  g_autofree char *io_path
      = g_build_filename (golden_dir (), "t5", "io.safetensors", NULL);
  g_autofree char *texts_path
      = g_build_filename (golden_dir (), "t5", "texts.json", NULL);
  g_autofree char *spiece
      = g_build_filename (golden_dir (), "tokenizer", "spiece.model", NULL);
  g_autoptr (GError) error = NULL;
  OviBackend *be = ovi_backend_new_cpu (1);
  g_autoptr (JsonParser) parser = json_parser_new ();

  g_assert_true (json_parser_load_from_file (parser, texts_path, &error));
  JsonArray *texts = json_object_get_array_member (
      json_node_get_object (json_parser_get_root (parser)), "texts");
  g_autoptr (OviWeightFile) io = ovi_weight_file_open (io_path, NULL, &error);
  g_assert_no_error (error);

  OviTextEncoder *enc
      = ovi_text_encoder_new_from_files (w, spiece, 32, TRUE, be, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ovi_text_encoder_get_dim (enc), ==, 64);
  g_assert_cmpint (ovi_text_encoder_get_text_len (enc), ==, 32);

  /* texts 0..2 are the sampler's prompt and the default negatives; run
   * them explicitly, then with NULL negatives (the official defaults), and
   * texts 3..4 as the prompt with the same negatives */
  for (int pass = 0; pass < 3; pass++) {
    OviTensor *out[3];
    const char *p = json_array_get_string_element (texts, pass == 2 ? 4 : 0);
    const char *vn
        = pass == 1 ? NULL : json_array_get_string_element (texts, 1);
    const char *an
        = pass == 1 ? NULL : json_array_get_string_element (texts, 2);
    g_assert_true (ovi_text_encoder_encode (enc, p, vn, an, out, NULL, &error));
    g_assert_no_error (error);
    for (int i = 0; i < 3; i++) {
      int idx = i == 0 && pass == 2 ? 4 : i;
      g_autofree char *name = g_strdup_printf ("out.context.%d", idx);
      g_autoptr (OviTensor) ref = ovi_weight_file_get (io, name, &error);
      g_assert_no_error (error);
      g_assert_cmpint (out[i]->ndim, ==, 2);
      g_assert_cmpint (out[i]->shape[0], ==, ref->shape[0]);
      g_assert_cmpint (out[i]->shape[1], ==, 64);
      double max_abs, rel = rel_l2 (out[i], ref, &max_abs);
      g_print ("# stage pass %d %s rel_l2=%.3e max_abs=%.3e\n", pass, name, rel,
               max_abs);
      g_assert_cmpfloat (rel, <=, 1e-4);
      g_assert_cmpfloat (max_abs, <=, 1e-4 * 3.5);
      ovi_tensor_unref (out[i]);
    }
  }
  /* the 960 variant rewrites <AUDCAP> into "Audio:": a different text,
   * different embeddings */
  OviTextEncoder *enc960
      = ovi_text_encoder_new_from_files (w, spiece, 32, FALSE, be, &error);
  g_assert_no_error (error);
  int64_t a[32], b[32];
  g_autofree char *f
      = ovi_prompt_format (json_array_get_string_element (texts, 4), FALSE);
  g_assert_nonnull (strstr (f, "Audio: Dog barking"));
  g_assert_cmpint (ovi_text_encoder_tokenize (enc960, f, a, NULL, &error), >,
                   0);
  g_assert_cmpint (
      ovi_text_encoder_tokenize (enc, json_array_get_string_element (texts, 4),
                                 b, NULL, &error),
      >, 0);
  g_assert_true (memcmp (a, b, sizeof a) != 0);
  ovi_text_encoder_free (enc960);

  /* wrong files give errors naming them */
  OviTextEncoder *bad
      = ovi_text_encoder_new_from_files (spiece, spiece, 32, TRUE, be, &error);
  g_assert_null (bad);
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "spiece.model"));
  g_clear_error (&error);
  bad = ovi_text_encoder_new_from_files (w, w, 32, TRUE, be, &error);
  g_assert_null (bad);
  g_assert_error (error, OVI_ERROR, OVI_ERROR_FORMAT);
  g_clear_error (&error);

  ovi_text_encoder_free (enc);
  ovi_backend_free (be);
}

/* the golden t5 weights re-written as a PyTorch .pth (as the official
 * models_t5_umt5-xxl-enc-bf16.pth), in F32 and in BF16 */
static void
test_encoder_pth (void)
{
  g_autofree char *w
      = g_build_filename (golden_dir (), "t5", "weights.safetensors", NULL);
  g_autofree char *io_path
      = g_build_filename (golden_dir (), "t5", "io.safetensors", NULL);
  g_autofree char *spiece
      = g_build_filename (golden_dir (), "tokenizer", "spiece.model", NULL);
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("ovi-t5pth-XXXXXX", &error);
  g_autoptr (OviWeightFile) wf = ovi_weight_file_open (w, NULL, &error);
  g_autoptr (OviWeightFile) io = ovi_weight_file_open (io_path, NULL, &error);
  OviBackend *be = ovi_backend_new_cpu (1);
  guint n = ovi_weight_file_n_tensors (wf);

  g_assert_no_error (error);
  for (int bf16 = 0; bf16 < 2; bf16++) {
    OviNamedTensor *nt = g_new0 (OviNamedTensor, n);
    GPtrArray *keep
        = g_ptr_array_new_with_free_func ((GDestroyNotify) ovi_tensor_unref);
    for (guint i = 0; i < n; i++) {
      const char *name = ovi_weight_file_name (wf, i);
      OviTensor *t = ovi_weight_file_get (wf, name, &error);
      g_assert_no_error (error);
      if (bf16) {
        OviTensor *b
            = ovi_tensor_new (OVI_DTYPE_BF16, t->ndim, t->shape, &error);
        g_assert_no_error (error);
        const float *src = ovi_tensor_data (t);
        uint16_t *dst = ovi_tensor_data (b);
        for (int64_t k = 0; k < ovi_tensor_numel (t); k++)
          dst[k] = ovi_f32_to_bf16 (src[k]);
        ovi_tensor_unref (t);
        t = b;
      }
      g_ptr_array_add (keep, t);
      nt[i].name = name;
      nt[i].tensor = t;
    }
    g_autofree char *pth = g_build_filename (dir, "t5.pth", NULL);
    g_assert_true (ovi_pth_write (pth, nt, n, NULL, &error));
    g_assert_no_error (error);
    g_free (nt);
    g_ptr_array_unref (keep);

    OviTextEncoder *enc
        = ovi_text_encoder_new_from_files (pth, spiece, 32, TRUE, be, &error);
    g_assert_no_error (error);
    OviTensor *out[3];
    g_assert_true (ovi_text_encoder_encode (
        enc,
        "A concert stage glows with red and purple lights. A singer in a "
        "glittering jacket grips the microphone, sweat shining on his brow, "
        "and shouts, <S>AI declares: humans obsolete now.<E>. The crowd roars "
        "in response, fists in the air. Behind him, a guitarist steps to the "
        "mic and adds to say <S>We fight back with courage.<E>. The energy "
        "peaks as the lights flare brighter.. <AUDCAP>Electric guitar riffs, "
        "cheering crowd, shouted male voices.<ENDAUDCAP>",
        NULL, NULL, out, NULL, &error));
    g_assert_no_error (error);
    for (int i = 0; i < 3; i++) {
      g_autofree char *name = g_strdup_printf ("out.context.%d", i);
      g_autoptr (OviTensor) ref = ovi_weight_file_get (io, name, &error);
      double max_abs, rel = rel_l2 (out[i], ref, &max_abs);
      g_print ("# .pth %s %s rel_l2=%.3e max_abs=%.3e\n", bf16 ? "bf16" : "f32",
               name, rel, max_abs);
      if (bf16) {
        g_assert_cmpfloat (rel, <=, 5e-2);
        g_assert_cmpfloat (rel, >, 1e-5); /* really rounded */
      } else {
        g_assert_cmpfloat (rel, <=, 1e-4);
      }
      ovi_tensor_unref (out[i]);
    }
    ovi_text_encoder_free (enc);
  }
  ovi_backend_free (be);
  g_autofree char *rm = g_strdup_printf ("rm -rf '%s'", dir);
  g_assert_cmpint (system (rm), ==, 0);
}

/* the bucket of every distance up to 700 (beyond 512 tokens) against
 * torch's float32 computation of the official formula */
static void
test_t5_buckets (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("ovi-t5b-XXXXXX", &error);
  g_autofree char *w = g_build_filename (dir, "t5.safetensors", NULL);
  g_autofree char *ref_path = g_build_filename (dir, "buckets.json", NULL);
  g_autofree char *py = script ("t5-buckets.py");
  const int L = 700, D = 8, F = 16, V = 16, NB = 32, H = 2;
  struct {
    const char *name;
    int ndim;
    int64_t shape[2];
  } spec[] = {
    { "token_embedding.weight", 2, { V, D } },
    { "norm.weight", 1, { D } },
    { "blocks.0.norm1.weight", 1, { D } },
    { "blocks.0.norm2.weight", 1, { D } },
    { "blocks.0.attn.q.weight", 2, { D, D } },
    { "blocks.0.attn.k.weight", 2, { D, D } },
    { "blocks.0.attn.v.weight", 2, { D, D } },
    { "blocks.0.attn.o.weight", 2, { D, D } },
    { "blocks.0.ffn.gate.0.weight", 2, { F, D } },
    { "blocks.0.ffn.fc1.weight", 2, { F, D } },
    { "blocks.0.ffn.fc2.weight", 2, { D, F } },
    { "blocks.0.pos_embedding.embedding.weight", 2, { NB, H } },
  };
  OviNamedTensor nt[G_N_ELEMENTS (spec)];
  OviTensor *ts[G_N_ELEMENTS (spec)];

  g_assert_no_error (error);
  for (gsize i = 0; i < G_N_ELEMENTS (spec); i++) {
    ts[i] = ovi_tensor_new_f32 (spec[i].ndim, spec[i].shape);
    float *d = ovi_tensor_data (ts[i]);
    for (int64_t k = 0; k < ovi_tensor_numel (ts[i]); k++)
      d[k] = i + 1 == G_N_ELEMENTS (spec) ? (float) (k / H) : 0.01f * (k % 7);
    nt[i].name = spec[i].name;
    nt[i].tensor = ts[i];
  }
  g_assert_true (
      ovi_safetensors_write (w, nt, G_N_ELEMENTS (spec), NULL, &error));
  for (gsize i = 0; i < G_N_ELEMENTS (spec); i++)
    ovi_tensor_unref (ts[i]);

  g_autofree char *n_arg = g_strdup_printf ("%d", L - 1);
  const char *argv[] = { PYTHON, py, n_arg, "32", "128", ref_path, NULL };
  run_or_fail (argv, dir);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_assert_true (json_parser_load_from_file (parser, ref_path, &error));
  JsonArray *ref = json_node_get_array (json_parser_get_root (parser));
  g_assert_cmpuint (json_array_get_length (ref), ==, 2 * (L - 1) + 1);

  OviBackend *be = ovi_backend_new_cpu (1);
  g_autoptr (OviWeightFile) wf = ovi_weight_file_open (w, NULL, &error);
  g_assert_no_error (error);
  g_autoptr (OviT5) t5 = ovi_t5_new (wf, be, 128, &error);
  g_assert_no_error (error);
  g_autoptr (OviTensor) bias = ovi_t5_position_bias (t5, 0, L);
  const float *b = ovi_tensor_data (bias);
  guint same = 0;
  /* rel = j - i: row L-1 gives -(L-1)..0, row 0 gives 0..L-1 */
  for (int r = -(L - 1); r <= L - 1; r++) {
    int i = r < 0 ? -r : 0, j = r < 0 ? 0 : r;
    for (int h = 0; h < H; h++) {
      float got = b[((int64_t) h * L + i) * L + j];
      same += got
              == (float) json_array_get_int_element (ref, (guint) (r + L - 1));
    }
  }
  g_print ("# T5 buckets: %u/%d distances identical to torch\n", same / H,
           2 * (L - 1) + 1);
  g_assert_cmpuint (same, ==, (guint) H * (2 * (L - 1) + 1));
  /* every row is the same function of the distance */
  for (int i = 0; i < L; i += 37)
    for (int j = 0; j < L; j += 41)
      g_assert_cmpfloat (
          b[(int64_t) i * L + j], ==,
          (float) json_array_get_int_element (ref, (guint) (j - i + L - 1)));
  ovi_backend_free (be);
  g_autofree char *rm = g_strdup_printf ("rm -rf '%s'", dir);
  g_assert_cmpint (system (rm), ==, 0);
}

static void
test_t5_errors (void)
{
  g_autofree char *w
      = g_build_filename (golden_dir (), "t5", "weights.safetensors", NULL);
  g_autoptr (GError) error = NULL;
  OviBackend *be = ovi_backend_new_cpu (1);
  g_autoptr (OviWeightFile) wf = ovi_weight_file_open (w, NULL, &error);
  g_autoptr (OviT5) t5 = ovi_t5_new (wf, be, 128, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ovi_t5_get_layers (t5), ==, 2);
  g_assert_cmpint (ovi_t5_get_heads (t5), ==, 2);
  g_assert_cmpint (ovi_t5_get_vocab (t5), ==, 1024);

  int64_t ids[4] = { 5, 6, 1, 0 }, hole[4] = { 1, 0, 1, 0 }, none[4] = { 0 };
  int64_t bad_ids[4] = { 5, 4096, 1, 0 }, ok_mask[4] = { 1, 1, 1, 0 };
  OviTensor *o = ovi_t5_forward (t5, ids, hole, 1, 4, NULL, &error);
  g_assert_null (o);
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  o = ovi_t5_forward (t5, ids, none, 1, 4, NULL, &error);
  g_assert_null (o);
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  o = ovi_t5_forward (t5, bad_ids, ok_mask, 1, 4, NULL, &error);
  g_assert_null (o);
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  /* cancellation */
  g_autoptr (GCancellable) c = g_cancellable_new ();
  g_cancellable_cancel (c);
  o = ovi_t5_forward (t5, ids, ok_mask, 1, 4, c, &error);
  g_assert_null (o);
  g_assert_error (error, OVI_ERROR, OVI_ERROR_CANCELLED);
  g_clear_error (&error);

  /* position buckets: distances beyond max_dist share the last bucket, so
   * a 300-token bias has equal entries at distances 200 and 299 */
  g_autoptr (OviTensor) bias = ovi_t5_position_bias (t5, 0, 300);
  const float *bd = ovi_tensor_data (bias);
  g_assert_cmpfloat (bd[0 * 300 + 200], ==, bd[0 * 300 + 299]);
  g_assert_cmpfloat (bd[200 * 300 + 0], ==, bd[299 * 300 + 0]);
  g_assert_cmpfloat (bd[0 * 300 + 1], !=, bd[1 * 300 + 0]);
  ovi_backend_free (be);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/text/spm/spm-train-parity", test_spm_train_parity);
  g_test_add_func ("/text/spm/golden-tokenizer", test_golden_tokenizer);
  g_test_add_func ("/text/spm/unknown-competition", test_unknown_competition);
  g_test_add_func ("/text/spm/tiny-writer", test_tiny_writer);
  g_test_add_func ("/text/spm/malformed", test_malformed);
  g_test_add_func ("/text/spm/invalid-utf8", test_invalid_utf8);
  g_test_add_func ("/text/clean/units", test_clean_units);
  g_test_add_func ("/text/clean/html-unescape", test_html_unescape);
  g_test_add_func ("/text/prompt/format", test_prompt_format);
  g_test_add_func ("/text/encoder/stage", test_encoder_stage);
  g_test_add_func ("/text/encoder/pth", test_encoder_pth);
  g_test_add_func ("/text/t5/buckets", test_t5_buckets);
  g_test_add_func ("/text/t5/errors", test_t5_errors);
  return g_test_run ();
}
