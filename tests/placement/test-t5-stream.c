/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tests: umT5 streamed block by block from its file's mapping
 * (OviT5Streaming, ovi-t5.h), on the tiny model with a 6-layer umT5 whose
 * FFN is 4096 wide (a block of 1.6 MB, so that two blocks are a small part
 * of the file):
 *  - identical: the streamed encoder (in place from the mapping, and
 *    through two slots as a GPU runs it) gives the embeddings of the whole
 *    mapping and of the weights copied into backend memory, bit for bit;
 *    a file read into memory is never advised (no streaming), and in-place
 *    streaming of copied weights is refused naming the tensor;
 *  - resident: the pages held at once (OviT5StreamStats.mapped_peak) lie
 *    under the text stage's host_mapped estimate of ultra-low and above the
 *    two blocks the stream must hold; the kernel's own count (Rss of the
 *    mapping in /proc/self/smaps) after a streamed encode is a fraction of
 *    what the whole-mapping encode leaves mapped.
 * usage: test-t5-stream [--backend cuda]: the same on a GPU (exit 77
 * without one), where the streamed encoder runs through the slots. */
#include "ovi-test-util.h"
#include "ovi-backend.h"
#include "ovi-engine.h"
#include "ovi-placement.h"
#include "ovi-t5.h"
#include "ovi-tiny.h"
#include "ovi-weights.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define BATCH 3
#define LEN   32 /* the tiny model's text_len */

static char *tiny_dir;
static const char *backend_name = "cpu";

static OviBackend *
backend_new (void)
{
  return ovi_test_backend_new (backend_name);
}

static gboolean
on_cpu (void)
{
  return g_strcmp0 (backend_name, "cpu") == 0;
}

static char *
t5_path (void)
{
  return g_build_filename (tiny_dir, ovi_tiny_file_path (OVI_TINY_FILE_T5),
                           NULL);
}

/* three rows of real tokens of different lengths, then padding; the ids
 * spread over the vocabulary */
static void
make_ids (int64_t *ids, int64_t *mask, int vocab, int64_t *distinct)
{
  g_autoptr (GHashTable) seen = g_hash_table_new (g_int64_hash, g_int64_equal);

  for (int b = 0; b < BATCH; b++)
    for (int j = 0; j < LEN; j++) {
      int64_t *at = &ids[b * LEN + j];
      gboolean real = j < LEN - 7 * b;
      *at = real ? (j * 97 + b * 331 + 5) % vocab : 0;
      mask[b * LEN + j] = real;
      g_hash_table_add (seen, at);
    }
  *distinct = g_hash_table_size (seen);
}

static OviTensor *
encode (OviT5 *t5, OviBackend *be, int64_t *distinct)
{
  GError *error = NULL;
  int64_t ids[BATCH * LEN], mask[BATCH * LEN];

  make_ids (ids, mask, ovi_t5_get_vocab (t5), distinct);
  g_autoptr (OviTensor) out
      = ovi_t5_forward (t5, ids, mask, BATCH, LEN, NULL, &error);
  g_assert_no_error (error);
  OviTensor *host = ovi_backend_download_f32 (be, out, &error);
  g_assert_no_error (error);
  return host;
}

/* umT5 with its weights placed per `mode` (as the text stage does) */
static OviT5 *
load (OviWeightFile *wf, OviBackend *be, OviVramMode mode, OviPlacement **pl)
{
  OviPlacementPlan plan;
  GError *error = NULL;

  g_assert_true (ovi_placement_plan_for_mode (mode, OVI_GPU_ALLOCATION_SINGLE,
                                              0, &plan, NULL));
  /* a GPU streams umT5 into its slots; the CPU reads the mapping */
  plan.t5_on_cpu = on_cpu () && plan.t5_on_cpu;
  *pl = ovi_placement_new (&plan, be);
  OviT5 *t5
      = ovi_t5_new_filtered (wf, be, 128, ovi_placement_t5_filter, *pl, &error);
  g_assert_no_error (error);
  return t5;
}

static void
test_identical (void)
{
  g_autoptr (OviBackend) be = backend_new ();
  g_autofree char *path = t5_path ();
  GError *error = NULL;
  g_autoptr (OviWeightFile) wf = ovi_weight_file_open (path, NULL, &error);
  g_autoptr (OviPlacement) pl_low = NULL, pl_std = NULL;
  g_autoptr (OviT5) t5 = NULL, copied = NULL;
  g_autoptr (OviTensor) streamed = NULL, slots = NULL, whole = NULL;
  g_autoptr (OviTensor) ref = NULL;
  OviT5StreamStats st;
  int64_t distinct;

  g_assert_no_error (error);
  t5 = load (wf, be, OVI_VRAM_MODE_ULTRA_LOW, &pl_low);
  g_assert_cmpint (ovi_t5_get_streaming (t5), ==,
                   on_cpu () ? OVI_T5_STREAM_IN_PLACE : OVI_T5_STREAM_SLOTS);
  streamed = encode (t5, be, &distinct);
  ovi_t5_get_stream_stats (t5, &st);
  g_assert_cmpuint (st.released, ==, ovi_t5_get_layers (t5));
  g_assert_cmpuint (st.mapped_held, ==, 0); /* all given back */
  g_assert_cmpuint (st.embedding_rows, ==, distinct);

  g_assert_true (ovi_t5_set_streaming (t5, OVI_T5_STREAM_SLOTS, &error));
  g_assert_no_error (error);
  slots = encode (t5, be, &distinct);
  ovi_t5_get_stream_stats (t5, &st);
  g_assert_cmpuint (st.copies, ==, ovi_t5_get_layers (t5));
  g_assert_cmpuint (st.slot_bytes, >, 0);
  g_assert_true (ovi_test_same_bits (slots, streamed));

  /* the reference: every weight copied into the backend's memory */
  copied = load (wf, be, OVI_VRAM_MODE_STANDARD, &pl_std);
  g_assert_cmpint (ovi_t5_get_streaming (copied), ==, OVI_T5_STREAM_NONE);
  ref = encode (copied, be, &distinct);
  g_assert_true (ovi_test_same_bits (streamed, ref));
  g_assert_false (
      ovi_t5_set_streaming (copied, OVI_T5_STREAM_IN_PLACE, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, on_cpu ()
                                                ? "token_embedding.weight does "
                                                  "not lie in the weight file"
                                                : "host memory"));
  g_clear_error (&error);

  if (!on_cpu ())
    return;
  /* the CPU reading the whole mapping, as before streaming */
  g_assert_true (ovi_t5_set_streaming (t5, OVI_T5_STREAM_NONE, &error));
  whole = encode (t5, be, &distinct);
  g_assert_true (ovi_test_same_bits (streamed, whole));

  /* bytes in memory are never advised: MADV_DONTNEED would zero them */
  {
    g_autofree char *data = NULL;
    gsize len;
    g_assert_true (g_file_get_contents (path, &data, &len, NULL));
    g_autoptr (GBytes) bytes = g_bytes_new_take (g_steal_pointer (&data), len);
    g_autoptr (OviWeightFile) mem
        = ovi_weight_file_open_bytes (bytes, path, NULL, &error);
    g_assert_no_error (error);
    g_autoptr (OviT5) in_mem = ovi_t5_new (mem, be, 128, &error);
    g_assert_no_error (error);
    g_assert_cmpint (ovi_t5_get_streaming (in_mem), ==, OVI_T5_STREAM_NONE);
    g_autoptr (OviTensor) out = encode (in_mem, be, &distinct);
    g_assert_true (ovi_test_same_bits (out, streamed));
  }
}

/* copies of the weights in anonymous memory placed above the file's
 * mapping: memory that is not the mapping wherever it lies */
typedef struct {
  char *arena;
  gsize size, used;
} Above;

static void
release_nothing (gpointer data)
{
}

static OviTensor *
copy_above (const char *name, OviTensor *w, gpointer data, GError **error)
{
  Above *a = data;
  gsize n = ovi_tensor_nbytes (w);
  OviStorage *st;

  g_assert_cmpuint (a->used + n, <=, a->size);
  memcpy (a->arena + a->used, ovi_tensor_data (w), n);
  st = ovi_storage_new_wrapped (a->arena + a->used, n,
                                (OviDevice){ OVI_DEVICE_CPU, 0 },
                                release_nothing, NULL);
  a->used += (n + 255) & ~(gsize) 255;
  OviTensor *t
      = ovi_tensor_new_on_storage (st, 0, w->dtype, w->ndim, w->shape, NULL);
  ovi_storage_unref (st);
  return t;
}

/* weights copied into memory at addresses above the mapping are never
 * taken for the mapping's pages (MADV_DONTNEED would zero them) */
static void
test_outside_mapping (void)
{
  g_autoptr (OviBackend) be = ovi_test_backend_new ("cpu");
  g_autofree char *path = t5_path ();
  GError *error = NULL;
  g_autoptr (OviWeightFile) wf = ovi_weight_file_open (path, NULL, &error);
  const void *base;
  gsize size;
  Above a = { 0 };
  int64_t distinct;

  g_assert_no_error (error);
  g_assert_true (ovi_weight_file_mapping (wf, &base, &size));
  a.size = 2 * size;
  a.arena = mmap ((char *) base + size + ((gsize) 256 << 20), a.size,
                  PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (a.arena == MAP_FAILED) /* valgrind refuses the hint (EINVAL) */
    a.arena = mmap (NULL, a.size, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  g_assert_true (a.arena != MAP_FAILED);
  if ((const char *) a.arena < (const char *) base + size) {
    munmap (a.arena, a.size);
    g_test_skip ("the kernel placed the copies below the mapping");
    return;
  }
  {
    g_autoptr (OviT5) t5
        = ovi_t5_new_filtered (wf, be, 128, copy_above, &a, &error);
    g_assert_no_error (error);
    g_autoptr (OviT5) ref = ovi_t5_new (wf, be, 128, &error);
    g_assert_no_error (error);
    g_assert_cmpint (ovi_t5_get_streaming (t5), ==, OVI_T5_STREAM_NONE);
    g_assert_false (ovi_t5_set_streaming (t5, OVI_T5_STREAM_IN_PLACE, &error));
    g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
    g_clear_error (&error);
    g_autoptr (OviTensor) out = encode (t5, be, &distinct);
    g_autoptr (OviTensor) want = encode (ref, be, &distinct);
    g_assert_true (ovi_test_same_bits (out, want));
    g_autoptr (OviTensor) again = encode (t5, be, &distinct);
    g_assert_true (ovi_test_same_bits (again, want));
  }
  munmap (a.arena, a.size);
}

/* the kernel's count of the mapping's resident pages mapped into this
 * process (kB), from /proc/self/smaps */
static guint64
mapping_rss (const void *addr)
{
  g_autofree char *smaps = NULL;
  gboolean in = FALSE;

  g_assert_true (g_file_get_contents ("/proc/self/smaps", &smaps, NULL, NULL));
  for (char *line = strtok (smaps, "\n"); line; line = strtok (NULL, "\n")) {
    unsigned long lo, hi, kb;
    if (sscanf (line, "%lx-%lx ", &lo, &hi) == 2)
      in = (uintptr_t) addr >= lo && (uintptr_t) addr < hi;
    else if (in && sscanf (line, "Rss: %lu kB", &kb) == 1)
      return kb;
  }
  g_assert_not_reached ();
  return 0;
}

static void
test_resident (void)
{
  g_autoptr (OviBackend) be = backend_new ();
  g_autofree char *path = t5_path ();
  GError *error = NULL;
  g_autoptr (OviModelPaths) paths
      = ovi_model_paths_resolve (tiny_dir, NULL, &error);
  g_autoptr (OviWeightFile) wf = ovi_weight_file_open (path, NULL, &error);
  g_autoptr (OviPlacement) pl = NULL;
  g_autoptr (OviT5) t5 = NULL;
  OviPlacementModel model;
  OviPlacementPlan plan;
  OviPlacementEstimate est;
  OviT5StreamStats st;
  int64_t distinct;
  const void *base;
  gsize size;

  g_assert_no_error (error);
  g_assert_true (ovi_placement_model_init (&model, paths, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (ovi_placement_plan_for_mode (
      OVI_VRAM_MODE_ULTRA_LOW, OVI_GPU_ALLOCATION_SINGLE, 0, &plan, NULL));
  plan.t5_on_cpu = on_cpu ();
  g_assert_true (ovi_placement_estimate (&model, &plan, 0, 0, on_cpu () ? 4 : 2,
                                         &est, &error));
  g_assert_no_error (error);
  const OviStageEstimate *text = &est.stage[OVI_STAGE_TEXT];
  g_assert_true (ovi_weight_file_mapping (wf, &base, &size));

  t5 = load (wf, be, OVI_VRAM_MODE_ULTRA_LOW, &pl);
  g_autoptr (OviTensor) out = encode (t5, be, &distinct);
  guint64 rss_streamed = mapping_rss (base);
  g_assert_nonnull (out);
  ovi_t5_get_stream_stats (t5, &st);
  g_test_message (
      "held at once %" G_GUINT64_FORMAT " bytes (estimate %" G_GUINT64_FORMAT
      ", two blocks %" G_GUINT64_FORMAT ") of %" G_GUINT64_FORMAT
      " (estimate %" G_GUINT64_FORMAT
      "); Rss of the mapping after the encode %" G_GUINT64_FORMAT " kB",
      st.mapped_peak, text->host_mapped, 2 * model.t5_block_bytes,
      st.mapped_total, text->host_mapped_total, rss_streamed);
  g_assert_cmpint (model.t5_layers, ==, 6);
  g_assert_cmpuint (st.mapped_peak, <=, text->host_mapped);
  /* two blocks' weights (a GPU's norms are resident, not streamed) */
  g_assert_cmpuint (
      st.mapped_peak, >=,
      2 * (model.t5_block_bytes - 2 * (guint64) model.t5_dim * 2));
  g_assert_cmpuint (st.mapped_peak * 2, <, st.mapped_total);
  g_assert_cmpuint (st.mapped_total, <=, size);

  if (on_cpu ()) {
    /* the whole mapping, as before: every block stays mapped */
    g_assert_true (ovi_t5_set_streaming (t5, OVI_T5_STREAM_NONE, &error));
    g_autoptr (OviTensor) again = encode (t5, be, &distinct);
    guint64 rss_whole = mapping_rss (base);
    g_assert_nonnull (again);
    g_test_message (
        "Rss of the mapping after a whole-mapping encode %" G_GUINT64_FORMAT
        " kB",
        rss_whole);
    g_assert_cmpuint (rss_whole * 1024, >=, 6 * model.t5_block_bytes);
    g_assert_cmpuint (rss_streamed * 4, <, rss_whole);
  }
  ovi_placement_model_clear (&model);
}

int
main (int argc, char **argv)
{
  OviTinyConfig cfg;
  GError *error = NULL;
  g_test_init (&argc, &argv, NULL);
  if (!ovi_test_backend_from_args (argc, argv, &backend_name))
    return 77;
  ovi_tiny_config_init (&cfg);
  cfg.t5_layers = 6;
  cfg.t5_ffn = 4096;
  tiny_dir = ovi_test_make_tmp_dir ("ovi-t5-stream-XXXXXX");
  if (!ovi_tiny_write_config (tiny_dir, &cfg, OVI_TINY_DEFAULT_SEED, &error))
    g_error ("%s", error->message);
  g_test_add_func ("/t5-stream/identical", test_identical);
  g_test_add_func ("/t5-stream/resident", test_resident);
  g_test_add_func ("/t5-stream/outside-mapping", test_outside_mapping);
  return ovi_test_run_then_remove (tiny_dir);
}
