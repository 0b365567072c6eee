/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tests: block streaming through the backend's streaming entries (pinned
 * host memory, async copies on the copy queue, events), on the CPU backend
 * where they are trivial: the tiny model's denoiser in fp8-offload (DiT
 * blocks streamed) gives latents bit-identical to fp8 (the same F8 weights
 * resident), with one copy per block per forward, and with a host budget
 * smaller than the slabs only part of them is pinned and the output is
 * still the same; the blocks used in place from the weight cache file's
 * mapping give the same latents as packed slabs. The entries themselves:
 * copy_async moves raw bytes, events record, a copy with a mismatched size
 * is refused with an error. */
#include "ovi-test-util.h"
#include "ovi-backend.h"
#include "ovi-engine.h"
#include "ovi-fusion.h"
#include "ovi-placement.h"
#include "ovi-presets.h"

#include <string.h>

static char *tiny_dir;
static const char *backend_name = "cpu"; /* --backend cuda: the GPU run */

static OviBackend *
backend_new (void)
{
  return ovi_test_backend_new (backend_name);
}

typedef struct {
  OviTensor *video, *audio;
  OviFusionStreamStats stats;
  int layers, steps;
  gboolean cached; /* the placement used the weight cache file */
  guint64 mapped;  /* bytes the filter handed out from its mapping */
} Run;

static void
run_clear (Run *r)
{
  g_clear_pointer (&r->video, ovi_tensor_unref);
  g_clear_pointer (&r->audio, ovi_tensor_unref);
}

/* the tiny denoiser in `mode`; with `cache_dir`, its quantised weights
 * from the weight cache file there */
static void
run_denoiser (OviVramMode mode, guint64 host_budget, const char *cache_dir,
              Run *out)
{
  g_autoptr (OviBackend) be = backend_new ();
  const OviModelPreset *m = ovi_model_preset_lookup ("tiny", NULL);
  g_autoptr (OviModelPaths) paths = NULL;
  g_autoptr (OviPlacement) pl = NULL;
  OviPlacementPlan plan;
  OviDenoiser *d;
  GError *error = NULL;

  paths = ovi_model_paths_resolve (tiny_dir, "tiny", &error);
  g_assert_no_error (error);
  g_assert_true (ovi_placement_plan_for_mode (mode, OVI_GPU_ALLOCATION_SINGLE,
                                              host_budget, &plan, &error));
  pl = ovi_placement_new (&plan, be);
  out->cached = cache_dir
                && ovi_placement_use_weight_cache (pl, paths->fusion_path,
                                                   cache_dir, NULL);
  d = ovi_denoiser_new_filtered (paths, be, ovi_placement_weight_filter, pl,
                                 &error);
  g_assert_no_error (error);
  out->mapped = ovi_placement_mapped_bytes (pl);
  ovi_placement_attach_denoiser (pl, d);
  g_assert_cmpint (ovi_fusion_get_streaming (ovi_denoiser_get_fusion (d)), ==,
                   plan.stream_blocks);
  ovi_test_denoise_tiny (be, d, &out->video, &out->audio);
  ovi_fusion_get_stream_stats (ovi_denoiser_get_fusion (d), &out->stats);
  out->layers = ovi_fusion_get_dims (ovi_denoiser_get_fusion (d))->num_layers;
  out->steps = m->steps;
  ovi_denoiser_free (d);
}

static void
assert_same_bytes (const OviTensor *a, const OviTensor *b)
{
  g_assert_cmpuint (ovi_tensor_nbytes (a), ==, ovi_tensor_nbytes (b));
  g_assert_cmpint (
      memcmp (ovi_tensor_data (a), ovi_tensor_data (b), ovi_tensor_nbytes (a)),
      ==, 0);
}

static void
test_streamed_equals_resident (void)
{
  Run resident = { 0 }, streamed = { 0 }, partial = { 0 };
  guint64 slabs;

  run_denoiser (OVI_VRAM_MODE_FP8, 0, NULL, &resident);
  g_assert_cmpuint (resident.stats.copies, ==, 0);
  run_denoiser (OVI_VRAM_MODE_FP8_OFFLOAD, 0, NULL, &streamed);
  assert_same_bytes (streamed.video, resident.video);
  assert_same_bytes (streamed.audio, resident.audio);

  /* one copy per block per step (the CFG branches batched into one
   * forward, the skip-layer run reusing the slot), plus the prefetch of
   * block 0 for a next step */
  g_test_message ("%d layers, %d steps: %" G_GUINT64_FORMAT " copies",
                  streamed.layers, streamed.steps, streamed.stats.copies);
  g_assert_cmpuint (streamed.stats.copies, ==,
                    (guint64) streamed.steps * streamed.layers + 1);
  slabs = streamed.stats.pinned_bytes + streamed.stats.pageable_bytes;
  g_assert_cmpuint (streamed.stats.pageable_bytes, ==, 0);
  g_assert_cmpuint (streamed.stats.slot_bytes, >, 0);
  g_assert_cmpuint (streamed.stats.slot_bytes, <=, slabs);

  /* partial pinning: a budget of half the slabs */
  run_denoiser (OVI_VRAM_MODE_FP8_OFFLOAD, slabs / 2, NULL, &partial);
  g_assert_cmpuint (partial.stats.pinned_bytes, <=, slabs / 2);
  g_assert_cmpuint (partial.stats.pinned_bytes, >, 0);
  g_assert_cmpuint (partial.stats.pageable_bytes, >, 0);
  g_assert_cmpuint (partial.stats.pinned_bytes + partial.stats.pageable_bytes,
                    ==, slabs);
  assert_same_bytes (partial.video, resident.video);
  assert_same_bytes (partial.audio, resident.audio);
  run_clear (&resident);
  run_clear (&streamed);
  run_clear (&partial);
}

/* The blocks used in place from the weight cache file's mapping (a
 * pageable source: staged through pinned buffers on a GPU, copied directly
 * on the CPU) give the latents of the private, packed slabs bit for bit,
 * with the same copies and nothing packed; fp8 (resident) copies the
 * cached weights to the device. */
static void
test_mapped_equals_private (void)
{
  g_autofree char *cache_dir = g_build_filename (tiny_dir, "cache", NULL);
  const OviVramMode modes[] = { OVI_VRAM_MODE_ULTRA_LOW,
                                OVI_VRAM_MODE_FP8_OFFLOAD, OVI_VRAM_MODE_FP8 };

  for (guint i = 0; i < G_N_ELEMENTS (modes); i++) {
    Run priv = { 0 }, mapped = { 0 };

    run_denoiser (modes[i], 0, NULL, &priv);
    run_denoiser (modes[i], 0, cache_dir, &mapped);
    g_test_message (
        "%s: private slabs %" G_GUINT64_FORMAT
        ", mapped blocks %" G_GUINT64_FORMAT " (the filter's %" G_GUINT64_FORMAT
        "), %" G_GUINT64_FORMAT " copies",
        ovi_vram_mode_to_string (modes[i]),
        priv.stats.pinned_bytes + priv.stats.pageable_bytes,
        mapped.stats.mapped_bytes, mapped.mapped, mapped.stats.copies);
    g_assert_true (mapped.cached);
    assert_same_bytes (mapped.video, priv.video);
    assert_same_bytes (mapped.audio, priv.audio);
    g_assert_cmpuint (priv.stats.mapped_bytes + priv.mapped, ==, 0);
    g_assert_cmpuint (mapped.stats.copies, ==, priv.stats.copies);
    if (modes[i] == OVI_VRAM_MODE_FP8) {
      g_assert_cmpuint (mapped.mapped, ==, 0);
    } else {
      g_assert_cmpuint (priv.stats.pinned_bytes + priv.stats.pageable_bytes, >,
                        0);
      g_assert_cmpuint (mapped.stats.pinned_bytes + mapped.stats.pageable_bytes,
                        ==, 0);
      g_assert_cmpuint (mapped.mapped, >, 0);
      g_assert_cmpuint (mapped.stats.mapped_bytes, >=, mapped.mapped);
    }
    run_clear (&priv);
    run_clear (&mapped);
  }
}

/* a cache directory that cannot be made (below a regular file, so even
 * for root): a warning, and the private path's latents */
static void
test_cache_unwritable (void)
{
  g_autoptr (OviModelPaths) paths
      = ovi_model_paths_resolve (tiny_dir, "tiny", NULL);
  g_autofree char *cache_dir
      = g_build_filename (paths->fusion_path, "cache", NULL);
  Run priv = { 0 }, fallback = { 0 };

  run_denoiser (OVI_VRAM_MODE_ULTRA_LOW, 0, NULL, &priv);
  g_test_expect_message ("ovi", G_LOG_LEVEL_WARNING,
                         "*weight cache not used*quantised in memory*");
  run_denoiser (OVI_VRAM_MODE_ULTRA_LOW, 0, cache_dir, &fallback);
  g_test_assert_expected_messages ();
  g_assert_false (fallback.cached);
  g_assert_cmpuint (fallback.mapped + fallback.stats.mapped_bytes, ==, 0);
  g_assert_cmpuint (fallback.stats.pinned_bytes + fallback.stats.pageable_bytes,
                    >, 0);
  assert_same_bytes (fallback.video, priv.video);
  assert_same_bytes (fallback.audio, priv.audio);
  run_clear (&priv);
  run_clear (&fallback);
}

/* a host copy of the raw bytes of `t` (on any device) */
static OviTensor *
download_bytes (OviBackend *be, OviTensor *t)
{
  OviTensor *host = ovi_tensor_new (t->dtype, t->ndim, t->shape, NULL);

  ovi_op_copy (be, host, t);
  g_assert_true (ovi_backend_sync (be, NULL));
  return host;
}

static void
test_entries (void)
{
  g_autoptr (OviBackend) be = backend_new ();
  int64_t n = 1000, m = 999;
  gboolean pinned = FALSE;
  g_autoptr (OviStorage) host = ovi_backend_new_pinned (be, n, &pinned, NULL);
  g_autoptr (OviTensor) src
      = ovi_tensor_new_on_storage (host, 0, OVI_DTYPE_U8, 1, &n, NULL);
  g_autoptr (OviTensor) dst = ovi_backend_new_tensor (be, OVI_DTYPE_U8, 1, &n);
  g_autoptr (OviTensor) small
      = ovi_backend_new_tensor (be, OVI_DTYPE_U8, 1, &m);
  OviEvent *ev;
  GError *error = NULL;

  g_assert_true (pinned); /* page-locked on a GPU; on the CPU its memory */
  for (int i = 0; i < n; i++)
    ((guint8 *) ovi_tensor_data (src))[i] = (guint8) (i * 7 + 3);
  ev = ovi_backend_event_new (be, &error);
  g_assert_no_error (error);
  ovi_op_copy_async (be, OVI_BACKEND_QUEUE_COPY, dst, src);
  ovi_op_event_record (be, ev, OVI_BACKEND_QUEUE_COPY);
  ovi_op_queue_wait (be, OVI_BACKEND_QUEUE_COMPUTE, ev);
  g_assert_true (ovi_backend_sync (be, &error));
  {
    g_autoptr (OviTensor) back = download_bytes (be, dst);
    assert_same_bytes (back, src);
  }

  ovi_op_copy_async (be, OVI_BACKEND_QUEUE_COPY, small, src);
  g_assert_false (ovi_backend_sync (be, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "same byte size"));
  g_clear_error (&error);
  ovi_backend_event_free (be, ev);
}

/* usage: test-stream [--backend cuda] (exit 77 when that backend has no
 * device here) */
int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (!ovi_test_backend_from_args (argc, argv, &backend_name))
    return 77;
  tiny_dir = ovi_test_make_tiny_dir ("ovi-stream-XXXXXX", 11);
  g_test_add_func ("/stream/entries", test_entries);
  g_test_add_func ("/stream/streamed-equals-resident",
                   test_streamed_equals_resident);
  g_test_add_func ("/stream/mapped-equals-private", test_mapped_equals_private);
  g_test_add_func ("/stream/cache-unwritable", test_cache_unwritable);
  return ovi_test_run_then_remove (tiny_dir);
}
