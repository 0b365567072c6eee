/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tests: the tiny model writer.
 *
 * - Names and shapes: with the golden cases' sizes, the writer's tensor
 *   lists equal the golden manifests (which the official code produced)
 *   exactly, so the same code at tiny sizes gives the official names.
 * - Constants: the anti-alias filters and the mel statistics equal the
 *   golden files' values.
 * - Files: deterministic per seed, every file opens with the weight
 *   readers, every tensor is non-zero and of the promised dtype.
 * - The default folder in the user cache: written once, atomically, under
 *   a lock (two threads race for it).
 */
#include "ovi-config.h"
#include "ovi-engine.h"
#include "ovi-error.h"
#include "ovi-presets.h"
#include "ovi-test-util.h"
#include "ovi-tiny.h"
#include "ovi-weights.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

static const char *
golden_dir (void)
{
  const char *d = g_getenv ("OVI_GOLDEN_DIR");
  g_autofree char *probe = NULL;

  if (d == NULL || *d == '\0')
    return NULL;
  /* a checkout without ../shared beside it: skip, do not fail */
  probe = g_build_filename (d, "fusion_dit", "config.json", NULL);
  return g_file_test (probe, G_FILE_TEST_IS_REGULAR) ? d : NULL;
}

static char *
spec_string (const OviTinyTensorSpec *s)
{
  GString *str = g_string_new ("float32[");

  for (int i = 0; i < s->ndim; i++)
    g_string_append_printf (str, "%s%" G_GINT64_FORMAT, i ? ", " : "",
                            s->shape[i]);
  g_string_append_c (str, ']');
  return g_string_free (str, FALSE);
}

/* config.json[member].tensors must equal the list (names and shapes) */
static void
compare_manifest (const char *case_name, const char *member, GPtrArray *list)
{
  g_autofree char *path = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  g_autoptr (GHashTable) ours = g_hash_table_new (g_str_hash, g_str_equal);
  JsonObject *root, *tensors;
  g_autoptr (GList) members = NULL;
  guint matched = 0;

  path = g_build_filename (golden_dir (), case_name, "config.json", NULL);
  json_parser_load_from_file (parser, path, &error);
  g_assert_no_error (error);
  root = json_node_get_object (json_parser_get_root (parser));
  tensors = json_object_get_object_member (
      json_object_get_object_member (root, member), "tensors");
  g_assert_nonnull (tensors);

  for (guint i = 0; i < list->len; i++) {
    OviTinyTensorSpec *s = list->pdata[i];
    g_assert_false (g_hash_table_contains (ours, s->name));
    g_hash_table_insert (ours, s->name, s);
  }
  members = json_object_get_members (tensors);
  for (GList *l = members; l; l = l->next) {
    const char *name = l->data;
    const char *want = json_object_get_string_member (tensors, name);
    OviTinyTensorSpec *s = g_hash_table_lookup (ours, name);
    g_autofree char *got = NULL;

    if (s == NULL)
      g_error ("%s: the writer lacks %s %s", case_name, name, want);
    got = spec_string (s);
    if (strcmp (got, want) != 0)
      g_error ("%s: %s is %s, golden %s", case_name, name, got, want);
    matched++;
  }
  if (matched != list->len) {
    for (guint i = 0; i < list->len; i++) {
      OviTinyTensorSpec *s = list->pdata[i];
      if (!json_object_has_member (tensors, s->name))
        g_error ("%s: the writer has %s, which the official model has not",
                 case_name, s->name);
    }
  }
  g_assert_cmpuint (matched, ==, list->len);
  g_test_message ("%s/%s: %u tensors match", case_name, member, matched);
}

static void
golden_config (OviTinyConfig *c)
{
  /* the sizes of the golden cases (shared/golden/README.md) */
  ovi_tiny_config_init (c);
  c->dit_dim = 64;
  c->dit_ffn_dim = 256;
  c->dit_heads = 2;
  c->dit_layers = 2;
  c->dit_freq_dim = 256;
  c->t5_vocab = 1024;
  c->t5_dim = 64;
  c->t5_dim_attn = 64;
  c->t5_ffn = 128;
  c->t5_heads = 2;
  c->t5_layers = 2;
  c->vae_dim = 4;
  c->vae_dec_dim = 8;
  c->audio_vae_hidden = 16;
  c->vocoder_initial_channel = 64;
  c->vocoder_legacy_weight_norm = FALSE;
}

static void
test_manifests (void)
{
  OviTinyConfig c;
  struct {
    const char *case_name, *member;
    OviTinyFile file;
  } cases[] = {
    { "fusion_dit", "weights", OVI_TINY_FILE_FUSION },
    { "t5", "weights", OVI_TINY_FILE_T5 },
    { "video_vae", "weights", OVI_TINY_FILE_VAE },
    { "audio", "vae_weights", OVI_TINY_FILE_AUDIO_VAE },
    { "audio", "vocoder_weights", OVI_TINY_FILE_VOCODER },
  };

  if (golden_dir () == NULL) {
    g_test_skip ("no golden vectors (OVI_GOLDEN_DIR)");
    return;
  }
  golden_config (&c);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr (GPtrArray) list = ovi_tiny_list_tensors (&c, cases[i].file);
    compare_manifest (cases[i].case_name, cases[i].member, list);
  }
}

/* legacy names: same tensors as the parametrization names, renamed */
static void
test_legacy_names (void)
{
  OviTinyConfig c;
  g_autoptr (GPtrArray) legacy = NULL, modern = NULL;
  guint n_g = 0;

  ovi_tiny_config_init (&c);
  g_assert_true (c.vocoder_legacy_weight_norm);
  legacy = ovi_tiny_list_tensors (&c, OVI_TINY_FILE_VOCODER);
  c.vocoder_legacy_weight_norm = FALSE;
  modern = ovi_tiny_list_tensors (&c, OVI_TINY_FILE_VOCODER);
  g_assert_cmpuint (legacy->len, ==, modern->len);
  for (guint i = 0; i < legacy->len; i++) {
    OviTinyTensorSpec *a = legacy->pdata[i], *b = modern->pdata[i];
    g_autofree char *renamed = g_strdup (a->name);
    char *p;

    if ((p = strstr (renamed, "weight_g")) != NULL) {
      *p = '\0';
      g_free (g_steal_pointer (&renamed));
      renamed = g_strdup_printf ("%.*sparametrizations.weight.original0",
                                 (int) (strstr (a->name, "weight_g") - a->name),
                                 a->name);
      n_g++;
    } else if ((p = strstr (renamed, "weight_v")) != NULL) {
      g_free (g_steal_pointer (&renamed));
      renamed = g_strdup_printf ("%.*sparametrizations.weight.original1",
                                 (int) (strstr (a->name, "weight_v") - a->name),
                                 a->name);
    }
    g_assert_cmpstr (renamed, ==, b->name);
    g_assert_cmpint (a->ndim, ==, b->ndim);
    g_assert_cmpmem (a->shape, sizeof (int64_t) * a->ndim, b->shape,
                     sizeof (int64_t) * b->ndim);
  }
  /* conv_pre, 6 ups, 18 x 6 resblock convs, conv_post */
  g_assert_cmpuint (n_g, ==, 1 + 6 + 18 * 6 + 1);
}

static GBytes *
read_bytes (const char *root, const char *rel)
{
  g_autofree char *path = g_build_filename (root, rel, NULL);
  g_autoptr (GError) error = NULL;
  GMappedFile *mf = g_mapped_file_new (path, FALSE, &error);
  GBytes *b;

  g_assert_no_error (error);
  b = g_mapped_file_get_bytes (mf);
  g_mapped_file_unref (mf);
  return b;
}

static const char *const all_files[] = {
  "Ovi/model.safetensors",
  "Wan2.2-TI2V-5B/models_t5_umt5-xxl-enc-bf16.pth",
  "Wan2.2-TI2V-5B/Wan2.2_VAE.pth",
  "MMAudio/ext_weights/v1-16.pth",
  "MMAudio/ext_weights/best_netG.pt",
  "Wan2.2-TI2V-5B/google/umt5-xxl/spiece.model",
};

static gboolean
have_spiece (const char *root)
{
  g_autofree char *p = g_build_filename (root, all_files[5], NULL);

  return g_file_test (p, G_FILE_TEST_IS_REGULAR);
}

static void
test_deterministic (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *a = ovi_test_make_tmp_dir ("ovi-tiny-XXXXXX");
  g_autofree char *b = ovi_test_make_tmp_dir ("ovi-tiny-XXXXXX");
  g_autofree char *c = ovi_test_make_tmp_dir ("ovi-tiny-XXXXXX");
  guint n_files = G_N_ELEMENTS (all_files);
  guint64 seed = 0;

  g_assert_true (ovi_tiny_write (a, 7, &error));
  g_assert_no_error (error);
  g_assert_true (ovi_tiny_write (b, 7, &error));
  g_assert_true (ovi_tiny_write (c, 8, &error));
  g_assert_no_error (error);
  if (!have_spiece (a)) {
    g_test_message ("no tokenizer writer yet: spiece.model not checked");
    n_files--;
  }
  for (guint i = 0; i < n_files; i++) {
    g_autoptr (GBytes) x = read_bytes (a, all_files[i]);
    g_autoptr (GBytes) y = read_bytes (b, all_files[i]);
    g_autoptr (GBytes) z = read_bytes (c, all_files[i]);
    g_assert_cmpuint (g_bytes_get_size (x), >, 0);
    if (!g_bytes_equal (x, y))
      g_error ("%s differs between two writes with seed 7", all_files[i]);
    if (g_bytes_equal (x, z))
      g_error ("%s is the same for seeds 7 and 8", all_files[i]);
  }
  g_assert_true (ovi_tiny_is_current (a, &seed));
  g_assert_cmpuint (seed, ==, 7);
  g_assert_true (ovi_tiny_is_current (c, &seed));
  g_assert_cmpuint (seed, ==, 8);
  ovi_test_remove_tree (a);
  ovi_test_remove_tree (b);
  ovi_test_remove_tree (c);
}

/* every file opens with the readers; names/shapes/dtypes as listed; every
 * tensor non-zero and finite */
static void
test_files_read_back (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = ovi_test_make_tmp_dir ("ovi-tiny-XXXXXX");
  OviTinyConfig cfg;
  int64_t total_bytes = 0;

  ovi_tiny_config_init (&cfg);
  g_assert_true (ovi_tiny_write (dir, OVI_TINY_DEFAULT_SEED, &error));
  g_assert_no_error (error);

  for (int f = 0; f < OVI_TINY_N_WEIGHT_FILES; f++) {
    g_autofree char *path
        = g_build_filename (dir, ovi_tiny_file_path ((OviTinyFile) f), NULL);
    g_autoptr (GPtrArray) list = ovi_tiny_list_tensors (&cfg, (OviTinyFile) f);
    g_autoptr (OviWeightFile) wf = ovi_weight_file_open (
        path, f == OVI_TINY_FILE_VOCODER ? "generator." : NULL, &error);
    OviDType want = OVI_DTYPE_F32;
    GStatBuf st;

    g_assert_no_error (error);
    g_assert_cmpint (g_stat (path, &st), ==, 0);
    total_bytes += st.st_size;
    if (f == OVI_TINY_FILE_FUSION || f == OVI_TINY_FILE_T5)
      want = OVI_DTYPE_BF16;
    g_assert_cmpuint (ovi_weight_file_n_tensors (wf), ==, list->len);
    for (guint i = 0; i < list->len; i++) {
      OviTinyTensorSpec *s = list->pdata[i];
      g_autoptr (OviTensor) t
          = ovi_weight_file_get_shaped (wf, s->name, s->ndim, s->shape, &error);
      g_autoptr (OviTensor) t32 = NULL;
      const float *v;
      int64_t n, nonzero = 0;
      double sumsq = 0;

      if (t == NULL)
        g_error ("%s: %s", path, error->message);
      g_assert_cmpint (t->dtype, ==, want);
      t32 = ovi_tensor_to_f32 (t, &error);
      g_assert_no_error (error);
      v = ovi_tensor_data (t32);
      n = ovi_tensor_numel (t32);
      for (int64_t k = 0; k < n; k++) {
        g_assert_true (isfinite (v[k]));
        nonzero += v[k] != 0.0f;
        sumsq += (double) v[k] * v[k];
      }
      if (nonzero == 0)
        g_error ("%s: %s is all zeros", path, s->name);
      /* no tensor is so large that activations blow up */
      g_assert_cmpfloat (sqrt (sumsq / n), <, 5.0);
    }
  }
  /* the whole folder stays small */
  g_test_message ("tiny weights: %" G_GINT64_FORMAT " bytes", total_bytes);
  g_assert_cmpint (total_bytes, <, 8 * 1024 * 1024);
  ovi_test_remove_tree (dir);
}

/* a few official names, and the counts, in the default tiny files */
static void
test_official_names (void)
{
  OviTinyConfig cfg;
  static const struct {
    OviTinyFile file;
    const char *name;
  } names[] = {
    { OVI_TINY_FILE_FUSION, "video_model.patch_embedding.weight" },
    { OVI_TINY_FILE_FUSION, "audio_model.patch_embedding.2.w1.weight" },
    { OVI_TINY_FILE_FUSION, "video_model.blocks.2.cross_attn.k_fusion.weight" },
    { OVI_TINY_FILE_FUSION, "audio_model.blocks.1.modulation.modulation" },
    { OVI_TINY_FILE_FUSION, "video_model.head.head.weight" },
    { OVI_TINY_FILE_T5, "token_embedding.weight" },
    { OVI_TINY_FILE_T5, "blocks.1.pos_embedding.embedding.weight" },
    { OVI_TINY_FILE_VAE, "decoder.upsamples.0.upsamples.3.time_conv.weight" },
    { OVI_TINY_FILE_VAE, "encoder.downsamples.2.downsamples.2.time_conv.bias" },
    { OVI_TINY_FILE_VAE, "conv2.weight" },
    { OVI_TINY_FILE_AUDIO_VAE, "data_mean" },
    { OVI_TINY_FILE_AUDIO_VAE, "decoder.up.1.upsample.conv.weight" },
    { OVI_TINY_FILE_VOCODER, "conv_pre.weight_g" },
    { OVI_TINY_FILE_VOCODER, "resblocks.17.convs2.2.weight_v" },
    { OVI_TINY_FILE_VOCODER, "activation_post.downsample.lowpass.filter" },
  };
  /* video: 15 + 34 per block; audio: 18 + 34 per block */
  guint want_counts[OVI_TINY_N_WEIGHT_FILES];

  ovi_tiny_config_init (&cfg);
  want_counts[OVI_TINY_FILE_FUSION] = 15 + 18 + 2 * 34 * cfg.dit_layers;
  want_counts[OVI_TINY_FILE_T5] = 2 + 10 * cfg.t5_layers;
  want_counts[OVI_TINY_FILE_VAE] = 196;
  want_counts[OVI_TINY_FILE_AUDIO_VAE] = 57;
  want_counts[OVI_TINY_FILE_VOCODER] = 784;
  for (int f = 0; f < OVI_TINY_N_WEIGHT_FILES; f++) {
    g_autoptr (GPtrArray) list = ovi_tiny_list_tensors (&cfg, (OviTinyFile) f);
    g_assert_cmpuint (list->len, ==, want_counts[f]);
  }
  for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
    g_autoptr (GPtrArray) list = ovi_tiny_list_tensors (&cfg, names[i].file);
    gboolean found = FALSE;
    for (guint k = 0; k < list->len; k++)
      found |= strcmp (((OviTinyTensorSpec *) list->pdata[k])->name,
                       names[i].name)
               == 0;
    if (!found)
      g_error ("%s is not in %s", names[i].name,
               ovi_tiny_file_path (names[i].file));
  }
}

static void
compare_golden_tensor (OviWeightFile *golden, OviWeightFile *ours,
                       const char *golden_name, const char *our_name,
                       double tol)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviTensor) a = ovi_weight_file_get (golden, golden_name, &error);
  g_autoptr (OviTensor) b = ovi_weight_file_get (ours, our_name, &error);
  g_autoptr (OviTensor) a32 = NULL, b32 = NULL;
  const float *x, *y;

  g_assert_no_error (error);
  g_assert_cmpint (a->ndim, ==, b->ndim);
  g_assert_cmpmem (a->shape, a->ndim * sizeof (int64_t), b->shape,
                   b->ndim * sizeof (int64_t));
  a32 = ovi_tensor_to_f32 (a, &error);
  b32 = ovi_tensor_to_f32 (b, &error);
  x = ovi_tensor_data (a32);
  y = ovi_tensor_data (b32);
  for (int64_t i = 0; i < ovi_tensor_numel (a32); i++)
    if (fabs (x[i] - y[i]) > tol)
      g_error ("%s[%" G_GINT64_FORMAT "]: ours %.9g, golden %.9g", our_name, i,
               y[i], x[i]);
}

/* the filter buffers and the mel statistics equal the official values */
static void
test_constants (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = NULL, *voc = NULL, *vae = NULL;
  g_autofree char *gvoc = NULL, *gvae = NULL;
  g_autoptr (OviWeightFile) ours_voc = NULL, ours_vae = NULL;
  g_autoptr (OviWeightFile) gold_voc = NULL, gold_vae = NULL;

  if (golden_dir () == NULL) {
    g_test_skip ("no golden vectors (OVI_GOLDEN_DIR)");
    return;
  }
  dir = ovi_test_make_tmp_dir ("ovi-tiny-XXXXXX");
  g_assert_true (ovi_tiny_write (dir, 3, &error));
  voc = g_build_filename (dir, ovi_tiny_file_path (OVI_TINY_FILE_VOCODER),
                          NULL);
  vae = g_build_filename (dir, ovi_tiny_file_path (OVI_TINY_FILE_AUDIO_VAE),
                          NULL);
  gvoc = g_build_filename (golden_dir (), "audio",
                           "vocoder_weights.safetensors", NULL);
  gvae = g_build_filename (golden_dir (), "audio", "vae_weights.safetensors",
                           NULL);
  ours_voc = ovi_weight_file_open (voc, "generator.", &error);
  g_assert_no_error (error);
  ours_vae = ovi_weight_file_open (vae, NULL, &error);
  g_assert_no_error (error);
  gold_voc = ovi_weight_file_open (gvoc, NULL, &error);
  g_assert_no_error (error);
  gold_vae = ovi_weight_file_open (gvae, NULL, &error);
  g_assert_no_error (error);

  /* torch computes the Kaiser window in float32: agree to ~1e-7 */
  compare_golden_tensor (gold_voc, ours_voc,
                         "resblocks.0.activations.0.upsample.filter",
                         "resblocks.0.activations.0.upsample.filter", 2e-7);
  compare_golden_tensor (gold_voc, ours_voc,
                         "activation_post.downsample.lowpass.filter",
                         "activation_post.downsample.lowpass.filter", 2e-7);
  compare_golden_tensor (gold_vae, ours_vae, "data_mean", "data_mean", 0);
  compare_golden_tensor (gold_vae, ours_vae, "data_std", "data_std", 0);
  ovi_test_remove_tree (dir);
}

/* bad configurations and unwritable folders are errors, not aborts */
static void
test_errors (void)
{
  g_autoptr (GError) error = NULL;
  OviTinyConfig cfg;
  g_autofree char *dir = ovi_test_make_tmp_dir ("ovi-tiny-XXXXXX");

  ovi_tiny_config_init (&cfg);
  cfg.dit_heads = 3; /* 64 is not a multiple of 3 */
  g_assert_false (ovi_tiny_write_config (dir, &cfg, 1, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  ovi_tiny_config_init (&cfg);
  cfg.vocoder_initial_channel = 48; /* six halvings need a multiple of 64 */
  g_assert_false (ovi_tiny_write_config (dir, &cfg, 1, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (ovi_tiny_is_current (dir, NULL));

  g_assert_false (ovi_tiny_write ("/proc/ovi-tiny-cannot-exist", 1, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "/proc/ovi-tiny-cannot-exist"));
  ovi_test_remove_tree (dir);
}

/* ---- the default folder ---- */

static gpointer
ensure_thread (gpointer data)
{
  GError *error = NULL;
  char *path = ovi_tiny_ensure_default (&error);

  g_assert_no_error (error);
  return path;
}

static void
test_default_folder (void)
{
  /* a child with its own cache dir */
  if (g_test_subprocess ()) {
    const char *cache = g_getenv ("OVI_TEST_CACHE");
    g_autoptr (GError) error = NULL;
    g_autofree char *p1 = NULL, *p2 = NULL, *p3 = NULL;
    g_autofree char *marker = NULL, *blob = NULL;
    g_autoptr (OviModelPaths) paths = NULL;
    GThread *t1, *t2;
    GDir *d;
    const char *name;
    guint entries = 0;
    GStatBuf st1, st2;

    g_setenv ("XDG_CACHE_HOME", cache, TRUE);
    g_assert_true (g_str_has_prefix (g_get_user_cache_dir (), cache));
    t1 = g_thread_new ("a", ensure_thread, NULL);
    t2 = g_thread_new ("b", ensure_thread, NULL);
    p1 = g_thread_join (t1);
    p2 = g_thread_join (t2);
    g_assert_cmpstr (p1, ==, p2);
    g_assert_true (g_str_has_prefix (p1, cache));
    g_assert_true (g_str_has_suffix (p1, "/gst-ovi/tiny-" OVI_VERSION));
    g_assert_true (ovi_tiny_is_current (p1, NULL));

    /* no temporary folders left behind: the folder and its lock file */
    {
      g_autofree char *parent = g_path_get_dirname (p1);
      d = g_dir_open (parent, 0, &error);
      g_assert_no_error (error);
      while ((name = g_dir_read_name (d)) != NULL) {
        g_assert_false (strstr (name, ".tmp-") != NULL);
        g_assert_false (strstr (name, ".old-") != NULL);
        entries++;
      }
      g_dir_close (d);
      g_assert_cmpuint (entries, ==, 2);
    }

    /* a second call does not rewrite it */
    marker = g_build_filename (p1, OVI_TINY_MARKER, NULL);
    g_assert_cmpint (g_stat (marker, &st1), ==, 0);
    p3 = ovi_tiny_ensure_default (&error);
    g_assert_no_error (error);
    g_assert_cmpint (g_stat (marker, &st2), ==, 0);
    g_assert_cmpint (st1.st_ino, ==, st2.st_ino);

    /* an outdated format is replaced */
    g_assert_true (g_file_set_contents (
        marker, "{\"variant\": \"tiny\", \"format\": 0}", -1, NULL));
    g_assert_false (ovi_tiny_is_current (p1, NULL));
    g_free (ovi_tiny_ensure_default (&error));
    g_assert_no_error (error);
    g_assert_true (ovi_tiny_is_current (p1, NULL));

    /* resolving no folder gives the tiny model there */
    paths = ovi_model_paths_resolve (NULL, NULL, &error);
    if (paths == NULL && !have_spiece (p1)) {
      /* only the tokenizer may be missing, and the error says so */
      g_assert_error (error, OVI_ERROR, OVI_ERROR_IO);
      g_assert_nonnull (strstr (error->message, "spiece.model"));
      return;
    }
    g_assert_no_error (error);
    g_assert_cmpstr (paths->variant, ==, "tiny");
    g_assert_true (g_str_has_prefix (paths->fusion_path, p1));
    g_assert_cmpint (paths->video_latent_frames, ==, 3);
    g_assert_cmpint (paths->audio_latent_length, ==, 12);
    blob = g_build_filename (p1, "Ovi", "model.safetensors", NULL);
    g_assert_cmpstr (paths->fusion_path, ==, blob);
    return;
  }
  {
    g_autofree char *cache = ovi_test_make_tmp_dir ("ovi-tiny-XXXXXX");
    g_autofree char *env = g_strdup (cache);
    /* the child uses this cache folder; it is removed afterwards */
    g_setenv ("OVI_TEST_CACHE", env, TRUE);
    g_test_trap_subprocess (NULL, 120 * G_USEC_PER_SEC,
                            G_TEST_SUBPROCESS_INHERIT_STDERR);
    ovi_test_remove_tree (cache);
    g_test_trap_assert_passed ();
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/tiny/golden-manifests", test_manifests);
  g_test_add_func ("/tiny/legacy-weight-norm-names", test_legacy_names);
  g_test_add_func ("/tiny/official-names", test_official_names);
  g_test_add_func ("/tiny/deterministic", test_deterministic);
  g_test_add_func ("/tiny/files-read-back", test_files_read_back);
  g_test_add_func ("/tiny/constants", test_constants);
  g_test_add_func ("/tiny/errors", test_errors);
  g_test_add_func ("/tiny/default-folder", test_default_folder);
  return g_test_run ();
}
