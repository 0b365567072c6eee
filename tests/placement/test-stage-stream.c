/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tests: the stage loader streams the DiT blocks in the streamed modes.
 *
 * The denoise stage planned for a described H100 (OVI_DEVICE_PROBE_FILE)
 * in fp8-offload and ultra-low, loaded onto the CPU backend: its denoiser
 * streams (the plan's streaming attached by the loader, not by the test),
 * the streamer copies one block per block per step from pinned slabs, and
 * the latents are bit for bit those of the same stage with streaming
 * switched off (the CPU backend reads the host blocks in place). fp8, the
 * resident control, does not stream. With the stage's weight_cache_dir the
 * first load writes the cache file there and the next maps it unchanged,
 * both streaming from the mapping with the latents of "off". */
#include "ovi-test-util.h"
#include "ovi-backend.h"
#include "ovi-engine.h"
#include "ovi-fusion.h"
#include "ovi-stage.h"

#include <glib/gstdio.h>

#define H100                                                                   \
  "{\"driver_version\": 13000, \"archs\": [90], \"ptx_arch\": 90,"             \
  " \"host_available_gib\": 400, \"devices\": [{\"name\": \"H100\","           \
  " \"cc\": \"9.0\", \"total_gib\": 80, \"free_gib\": 79}]}"

static char *tiny_dir;

/* the denoise stage of `mode` planned for the described H100, on the CPU,
 * its quantised weights cached in `cache_dir` ("off": none) */
static OviStage *
load_denoise (OviVramMode mode, const char *cache_dir)
{
  g_autofree char *file = NULL;
  int fd = g_file_open_tmp ("ovi-stage-stream-XXXXXX.json", &file, NULL);
  g_autoptr (OviStagePlan) plan = NULL;
  OviStageConfig c;
  OviStage *stage;
  GError *error = NULL;

  g_assert_cmpint (fd, >=, 0);
  close (fd);
  g_assert_true (g_file_set_contents (file, H100, -1, NULL));
  g_setenv ("OVI_DEVICE_PROBE_FILE", file, TRUE);
  ovi_stage_config_init (&c);
  c.model_dir = tiny_dir;
  c.variant = "tiny";
  c.vram_mode = mode;
  c.weight_cache_dir = cache_dir;
  plan = ovi_stage_plan_new (OVI_STAGE_DENOISE, &c, &error);
  g_unsetenv ("OVI_DEVICE_PROBE_FILE");
  g_unlink (file);
  g_assert_no_error (error);
  stage = ovi_stage_plan_load_on (plan, ovi_backend_new_cpu (2), &error);
  g_assert_no_error (error);
  return stage;
}

static void
denoise (OviStage *stage, OviTensor **video, OviTensor **audio)
{
  g_autoptr (OviBackend) be = ovi_backend_new_cpu (2);

  ovi_test_denoise_tiny (be, ovi_stage_get_denoiser (stage), video, audio);
}

static void
check_streamed (OviVramMode mode)
{
  OviStage *stage = load_denoise (mode, "off");
  OviFusion *fusion = ovi_denoiser_get_fusion (ovi_stage_get_denoiser (stage));
  g_autoptr (OviTensor) sv = NULL, sa = NULL, uv = NULL, ua = NULL;
  OviFusionStreamStats st;

  g_assert_true (ovi_fusion_get_streaming (fusion));
  denoise (stage, &sv, &sa);
  ovi_fusion_get_stream_stats (fusion, &st);
  g_test_message ("%s: %" G_GUINT64_FORMAT " block copies, %" G_GUINT64_FORMAT
                  " bytes pinned",
                  ovi_vram_mode_to_string (mode), st.copies, st.pinned_bytes);
  g_assert_cmpuint (st.copies, >, 0);
  g_assert_cmpuint (st.pinned_bytes, >, 0);
  ovi_fusion_set_streaming (fusion, FALSE);
  denoise (stage, &uv, &ua);
  g_assert_true (ovi_test_same_bits (sv, uv));
  g_assert_true (ovi_test_same_bits (sa, ua));
  ovi_stage_unref (stage);
}

static void
test_streamed_modes (void)
{
  check_streamed (OVI_VRAM_MODE_FP8_OFFLOAD);
  check_streamed (OVI_VRAM_MODE_ULTRA_LOW);
}

static void
test_resident_control (void)
{
  OviStage *stage = load_denoise (OVI_VRAM_MODE_FP8, "off");

  g_assert_false (ovi_fusion_get_streaming (
      ovi_denoiser_get_fusion (ovi_stage_get_denoiser (stage))));
  ovi_stage_unref (stage);
}

/* the stage's weight_cache_dir: the first load writes the cache file
 * there, the second maps it as it is (same inode and mtime), both stream
 * the blocks from the mapping, and the latents are those of "off" */
static void
test_weight_cache (void)
{
  g_autofree char *dir = ovi_test_make_tmp_dir ("ovi-stage-cache-XXXXXX");
  g_autoptr (OviTensor) ov = NULL, oa = NULL;
  GStatBuf first, second;
  g_autofree char *file = NULL;

  {
    OviStage *off = load_denoise (OVI_VRAM_MODE_ULTRA_LOW, "off");
    denoise (off, &ov, &oa);
    ovi_stage_unref (off);
  }
  for (int i = 0; i < 2; i++) {
    OviStage *stage = load_denoise (OVI_VRAM_MODE_ULTRA_LOW, dir);
    OviFusion *fusion
        = ovi_denoiser_get_fusion (ovi_stage_get_denoiser (stage));
    g_autoptr (OviTensor) v = NULL, a = NULL;
    g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
    OviFusionStreamStats st;

    denoise (stage, &v, &a);
    ovi_fusion_get_stream_stats (fusion, &st);
    g_assert_cmpuint (st.mapped_bytes, >, 0);
    g_assert_cmpuint (st.pinned_bytes + st.pageable_bytes, ==, 0);
    g_assert_true (ovi_test_same_bits (v, ov));
    g_assert_true (ovi_test_same_bits (a, oa));
    {
      const char *name = g_dir_read_name (d);
      g_assert_nonnull (name);
      if (file == NULL)
        file = g_build_filename (dir, name, NULL);
      g_assert_null (g_dir_read_name (d)); /* one file, no temporary */
    }
    g_assert_cmpint (g_stat (file, i ? &second : &first), ==, 0);
    ovi_stage_unref (stage);
  }
  g_assert_cmpuint (first.st_ino, ==, second.st_ino);
  g_assert_cmpint (first.st_mtime, ==, second.st_mtime);
  ovi_test_remove_tree (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tiny_dir = ovi_test_make_tiny_dir ("ovi-stage-stream-XXXXXX", 11);
  g_test_add_func ("/stage-stream/streamed-modes", test_streamed_modes);
  g_test_add_func ("/stage-stream/resident-control", test_resident_control);
  g_test_add_func ("/stage-stream/weight-cache", test_weight_cache);
  return ovi_test_run_then_remove (tiny_dir);
}
