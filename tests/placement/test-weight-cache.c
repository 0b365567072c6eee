/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tests: the re-quantised weight cache file (ovi-weight-cache.h) with the
 * tiny model (its use by the block streamer, and an unwritable cache
 * directory: test-stream.c):
 *
 *  - the cache holds exactly today's load-time quantisation, byte for byte;
 *  - a second load reuses the file: nothing written (mtime, inode, size
 *    unchanged, no temporary files left);
 *  - a stale file (source touched, source content changed with its mtime
 *    put back) and a corrupt one (truncated, a header byte flipped, another
 *    format version) are rejected naming the file and why, then rewritten;
 *  - a write that fails midway (disk full) leaves no file behind.
 */
#include "ovi-test-util.h"
#include "ovi-backend.h"
#include "ovi-placement.h"
#include "ovi-quantize.h"
#include "ovi-weight-cache.h"
#include "ovi-weights.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char *tiny_dir;
/* a private copy of the tiny fusion file in `dir` (tests change it) */
static char *
copy_fusion (const char *dir)
{
  g_autoptr (OviModelPaths) paths
      = ovi_model_paths_resolve (tiny_dir, "tiny", NULL);
  g_autofree char *bytes = NULL;
  gsize n;
  char *copy = g_build_filename (dir, "fusion.safetensors", NULL);

  g_assert_true (g_file_get_contents (paths->fusion_path, &bytes, &n, NULL));
  g_assert_true (g_file_set_contents (copy, bytes, (gssize) n, NULL));
  return copy;
}

static OviWeightCacheSpec
int8_spec (const char *source, const char *cache_dir)
{
  OviWeightCacheSpec spec = { source, "int8-per-channel", cache_dir };
  return spec;
}

static guint
count_files (const char *dir)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  guint n = 0;

  while (d && g_dir_read_name (d))
    n++;
  return n;
}

/* ---- the quantised values ---- */

static void
test_values (void)
{
  g_autofree char *dir = ovi_test_make_tmp_dir ("ovi-wcache-XXXXXX");
  g_autofree char *src = copy_fusion (dir);
  g_autofree char *cache_dir = g_build_filename (dir, "cache", NULL);
  const OviQuantKind kinds[]
      = { OVI_QUANT_I8_PER_CHANNEL, OVI_QUANT_F8_PER_CHANNEL };

  for (guint k = 0; k < G_N_ELEMENTS (kinds); k++) {
    g_autoptr (OviBackend) be = ovi_backend_new_cpu (1);
    g_autoptr (OviPlacement) pl = NULL;
    g_autoptr (OviWeightFile) wf = ovi_weight_file_open (src, NULL, NULL);
    g_auto (OviWeightCacheInfo) info = { 0 };
    OviPlacementPlan plan;
    guint n = 0;

    g_assert_true (ovi_placement_plan_for_mode (
        kinds[k] == OVI_QUANT_I8_PER_CHANNEL ? OVI_VRAM_MODE_ULTRA_LOW
                                             : OVI_VRAM_MODE_FP8_OFFLOAD,
        OVI_GPU_ALLOCATION_SINGLE, 0, &plan, NULL));
    pl = ovi_placement_new (&plan, be);
    g_assert_true (ovi_placement_use_weight_cache (pl, src, cache_dir, &info));
    g_assert_true (info.written);
    g_autoptr (OviWeightFile) cache
        = ovi_weight_file_open (info.path, NULL, NULL);
    g_assert_nonnull (cache);
    for (guint i = 0; i < ovi_weight_file_n_tensors (wf); i++) {
      const char *name = ovi_weight_file_name (wf, i);
      g_autoptr (OviTensor) raw = ovi_weight_file_get (wf, name, NULL);
      g_autoptr (OviTensor) c = ovi_weight_cache_get (cache, name);
      g_autoptr (OviTensor) q = NULL;

      if (!ovi_quantize_wants (kinds[k], name, raw->ndim)) {
        g_assert_null (c);
        continue;
      }
      q = ovi_quantize_tensor (raw, kinds[k], name, NULL);
      g_assert_nonnull (c);
      g_assert_nonnull (c->scale);
      g_assert_true (ovi_test_same_bits (c, q));
      g_assert_true (ovi_test_same_bits (c->scale, q->scale));
      n++;
    }
    g_test_message ("%s: %u tensors as quantised at load, byte for byte",
                    ovi_quant_kind_to_string (kinds[k]), n);
    g_assert_cmpuint (n, >, 0);
  }
  ovi_test_remove_tree (dir);
}

/* ---- reuse, staleness, corruption ---- */

static void
stat_of (const char *path, struct stat *st)
{
  g_assert_cmpint (g_stat (path, (GStatBuf *) st), ==, 0);
}

static void
assert_unchanged (const struct stat *a, const struct stat *b)
{
  g_assert_cmpuint (a->st_ino, ==, b->st_ino);
  g_assert_cmpint (a->st_size, ==, b->st_size);
  g_assert_cmpint (a->st_mtim.tv_sec, ==, b->st_mtim.tv_sec);
  g_assert_cmpint (a->st_mtim.tv_nsec, ==, b->st_mtim.tv_nsec);
}

static OviWeightFile *
open_cache (const char *src, const char *cache_dir, OviWeightCacheInfo *info)
{
  g_autoptr (OviBackend) be = ovi_backend_new_cpu (1);
  OviPlacementPlan plan;
  OviWeightCacheSpec spec = int8_spec (src, cache_dir);
  GError *error = NULL;
  OviWeightFile *wf;

  /* the placement's own quantiser, through its public entry */
  g_assert_true (ovi_placement_plan_for_mode (
      OVI_VRAM_MODE_ULTRA_LOW, OVI_GPU_ALLOCATION_SINGLE, 0, &plan, NULL));
  {
    g_autoptr (OviPlacement) pl = ovi_placement_new (&plan, be);
    g_assert_true (ovi_placement_use_weight_cache (pl, src, cache_dir, info));
  }
  /* and the file it left is valid now */
  wf = ovi_weight_cache_validate (info->path, &spec, &error);
  g_assert_no_error (error);
  return wf;
}

/* the first `n` bytes of `path` rewritten by `edit` */
static void
edit_file (const char *path, void (*edit) (char *bytes, gsize *n))
{
  g_autofree char *bytes = NULL;
  gsize n;

  g_assert_true (g_file_get_contents (path, &bytes, &n, NULL));
  edit (bytes, &n);
  g_assert_true (g_file_set_contents (path, bytes, (gssize) n, NULL));
}

static void
truncate_tail (char *bytes, gsize *n)
{
  *n -= 100;
}

/* a digit of the first data_offsets in the header, changed */
static void
flip_header_byte (char *bytes, gsize *n)
{
  char *p = g_strstr_len (bytes + 8, (gssize) *n - 8, "\"data_offsets\":[");

  g_assert_nonnull (p);
  p += strlen ("\"data_offsets\":[");
  while (!g_ascii_isdigit (*p))
    p++;
  *p = *p == '9' ? '1' : (char) (*p + 1);
}

/* a letter of a tensor's name in the header changed: still a valid file,
 * only the table digest tells */
static void
flip_name_byte (char *bytes, gsize *n)
{
  char *p = g_strstr_len (bytes + 8, (gssize) *n - 8, "\"audio_model.");

  g_assert_nonnull (p);
  p[1] = 'A';
}

static void
other_version (char *bytes, gsize *n)
{
  char *p
      = g_strstr_len (bytes + 8, (gssize) *n - 8, "\"ovi.cache.format\":\"1\"");

  g_assert_nonnull (p);
  p[strlen ("\"ovi.cache.format\":\"")] = '7';
}

/* a byte of the source's data changed, its size and mtime kept */
static void
change_content_keep_mtime (const char *src)
{
  struct stat st;
  struct timespec times[2];
  g_autofree char *bytes = NULL;
  gsize n;

  stat_of (src, &st);
  g_assert_true (g_file_get_contents (src, &bytes, &n, NULL));
  bytes[n / 2] ^= 0x5a;
  g_assert_true (g_file_set_contents (src, bytes, (gssize) n, NULL));
  times[0] = st.st_atim;
  times[1] = st.st_mtim;
  g_assert_cmpint (utimensat (AT_FDCWD, src, times, 0), ==, 0);
}

/* the cache at its path is rejected, the message naming it and `why`, and
 * made again (a new file) */
static void
assert_rejected_and_rebuilt (const char *src, const char *cache_dir,
                             const char *why)
{
  g_auto (OviWeightCacheInfo) info = { 0 };
  g_autoptr (OviWeightFile) wf = NULL;
  struct stat before, after;

  {
    g_autofree char *path
        = ovi_weight_cache_path (cache_dir, src, "int8-per-channel");
    stat_of (path, &before);
  }
  g_test_expect_message ("ovi", G_LOG_LEVEL_MESSAGE, "*rejected*");
  wf = open_cache (src, cache_dir, &info);
  g_test_assert_expected_messages ();
  g_test_message ("rejected: %s", info.rejected);
  g_assert_nonnull (info.rejected);
  g_assert_nonnull (strstr (info.rejected, info.path));
  g_assert_nonnull (strstr (info.rejected, why));
  g_assert_true (info.written);
  g_assert_false (info.reused);
  stat_of (info.path, &after);
  g_assert_cmpuint (after.st_ino, !=, before.st_ino); /* renamed over it */
  g_assert_cmpuint (count_files (cache_dir), ==, 1);
}

static void
test_reuse_and_reject (void)
{
  g_autofree char *dir = ovi_test_make_tmp_dir ("ovi-wcache-XXXXXX");
  g_autofree char *src = copy_fusion (dir);
  g_autofree char *cache_dir = g_build_filename (dir, "cache", NULL);
  struct stat first, second;

  {
    g_auto (OviWeightCacheInfo) info = { 0 };
    g_autoptr (OviWeightFile) wf = open_cache (src, cache_dir, &info);
    g_assert_nonnull (wf);
    g_assert_true (info.written);
    g_assert_null (info.rejected);
    stat_of (info.path, &first);
    g_assert_true (g_str_has_prefix (info.path, cache_dir));
  }
  {
    /* a second load writes nothing */
    g_auto (OviWeightCacheInfo) info = { 0 };
    g_autoptr (OviWeightFile) wf = open_cache (src, cache_dir, &info);
    g_assert_nonnull (wf);
    g_assert_true (info.reused);
    g_assert_false (info.written);
    stat_of (info.path, &second);
    assert_unchanged (&first, &second);
    g_assert_cmpuint (count_files (cache_dir), ==, 1);
  }

  /* stale: the source touched */
  {
    struct timespec later[2]
        = { { 0, UTIME_OMIT }, { first.st_mtim.tv_sec + 10, 0 } };
    g_assert_cmpint (utimensat (AT_FDCWD, src, later, 0), ==, 0);
  }
  assert_rejected_and_rebuilt (src, cache_dir, "changed since it was written");
  /* stale: the content changed, size and mtime put back */
  change_content_keep_mtime (src);
  assert_rejected_and_rebuilt (src, cache_dir, "fingerprint");

  /* corrupt */
  {
    g_autofree char *path
        = ovi_weight_cache_path (cache_dir, src, "int8-per-channel");
    edit_file (path, truncate_tail);
    assert_rejected_and_rebuilt (src, cache_dir, "truncated");
    edit_file (path, flip_header_byte);
    assert_rejected_and_rebuilt (src, cache_dir, "rejected");
    edit_file (path, flip_name_byte);
    assert_rejected_and_rebuilt (src, cache_dir, "does not match the digest");
    edit_file (path, other_version);
    assert_rejected_and_rebuilt (src, cache_dir, "format version 7");
  }
  ovi_test_remove_tree (dir);
}

/* a file that holds the weights in the plan's dtype already (as the
 * official fp8 file does): nothing to make, no file, no warning */
static void
test_nothing_to_make (void)
{
  g_autofree char *dir = ovi_test_make_tmp_dir ("ovi-wcache-XXXXXX");
  g_autofree char *src = g_build_filename (dir, "fp8.safetensors", NULL);
  g_autofree char *cache_dir = g_build_filename (dir, "cache", NULL);
  g_autoptr (OviBackend) be = ovi_backend_new_cpu (1);
  int64_t shape[2] = { 4, 8 };
  g_autoptr (OviTensor) w = ovi_tensor_new (OVI_DTYPE_F8_E4M3, 2, shape, NULL);
  OviNamedTensor nt = { "video_model.blocks.0.ffn.0.weight", w };
  g_autoptr (OviPlacement) pl = NULL;
  OviPlacementPlan plan;

  g_assert_true (ovi_safetensors_write (src, &nt, 1, NULL, NULL));
  g_assert_true (ovi_placement_plan_for_mode (
      OVI_VRAM_MODE_FP8_OFFLOAD, OVI_GPU_ALLOCATION_SINGLE, 0, &plan, NULL));
  pl = ovi_placement_new (&plan, be);
  g_assert_false (ovi_placement_use_weight_cache (pl, src, cache_dir, NULL));
  g_assert_false (g_file_test (cache_dir, G_FILE_TEST_EXISTS));
  ovi_test_remove_tree (dir);
}

/* the disk filling up while the file is written (a file size limit: the
 * writes fail with EFBIG past it): a warning, the temporary file removed,
 * nothing left in the cache directory */
static void
test_write_fails (void)
{
  g_autofree char *dir = ovi_test_make_tmp_dir ("ovi-wcache-XXXXXX");
  g_autofree char *src = copy_fusion (dir);
  g_autofree char *cache_dir = g_build_filename (dir, "cache", NULL);
  g_autoptr (OviBackend) be = ovi_backend_new_cpu (1);
  g_autoptr (OviPlacement) pl = NULL;
  struct rlimit old, small;
  OviPlacementPlan plan;
  gboolean used;

  g_assert_true (ovi_placement_plan_for_mode (
      OVI_VRAM_MODE_ULTRA_LOW, OVI_GPU_ALLOCATION_SINGLE, 0, &plan, NULL));
  pl = ovi_placement_new (&plan, be);
  g_assert_cmpint (g_mkdir (cache_dir, 0700), ==, 0);
  signal (SIGXFSZ, SIG_IGN);
  g_assert_cmpint (getrlimit (RLIMIT_FSIZE, &old), ==, 0);
  small = old;
  small.rlim_cur = 64 * 1024; /* the tiny model's int8 file is ~490 KB */
  g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &small), ==, 0);
  g_test_expect_message ("ovi", G_LOG_LEVEL_WARNING,
                         "*weight cache not used*quantised in memory*");
  used = ovi_placement_use_weight_cache (pl, src, cache_dir, NULL);
  g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &old), ==, 0);
  g_test_assert_expected_messages ();
  g_assert_false (used);
  g_assert_cmpuint (count_files (cache_dir), ==, 0);
  ovi_test_remove_tree (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tiny_dir = ovi_test_make_tiny_dir ("ovi-wcache-tiny-XXXXXX", 11);
  g_test_add_func ("/weight-cache/values", test_values);
  g_test_add_func ("/weight-cache/reuse-and-reject", test_reuse_and_reject);
  g_test_add_func ("/weight-cache/nothing-to-make", test_nothing_to_make);
  g_test_add_func ("/weight-cache/write-fails", test_write_fails);
  return ovi_test_run_then_remove (tiny_dir);
}
