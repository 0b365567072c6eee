/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: gpu-allocation through stage loading (ovi_stage_load), as the
 * elements and `ovi generate` do it: sp2 and cfg-parallel on CPU ranks
 * (the test switch $OVI_PARALLEL_CPU_RANKS=1 on this machine without GPUs)
 * give the latents of gpu-allocation=single on the tiny model; the errors
 * at planning time, before anything loads, name what was found (GPUs
 * described by $OVI_DEVICE_PROBE_FILE): more ranks than GPUs, a GPU missing
 * from cuda-devices, heads the ranks do not divide, sharded, no GPU. */
#include <math.h>
#include <string.h>

#include "ovi-noise.h"
#include "ovi-stage.h"
#include "ovi-test-util.h"

static void
denoise (OviGpuAllocation alloc, const char *want_device, OviTensor **video,
         OviTensor **audio)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviStage) stage = NULL;
  g_autoptr (OviTensor) text = NULL, vneg = NULL, aneg = NULL;
  OviStageConfig config;
  OviDenoiseRequest req;

  ovi_stage_config_init (&config);
  config.gpu_allocation = alloc;
  config.n_threads = 2;
  stage = ovi_stage_load (OVI_STAGE_DENOISE, &config, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (ovi_stage_get_device_name (stage), ==, want_device);
  text = ovi_noise_gaussian (1, 2, (int64_t[]){ 6, 64 }, &error);
  vneg = ovi_noise_gaussian (2, 2, (int64_t[]){ 4, 64 }, &error);
  aneg = ovi_noise_gaussian (3, 2, (int64_t[]){ 5, 64 }, &error);
  ovi_denoise_request_init (&req);
  req.text_pos = text;
  req.text_video_neg = vneg;
  req.text_audio_neg = aneg;
  req.steps = 2;
  req.width = req.height = 64;
  req.seed = 5;
  req.slg_layer = 1; /* the tiny model has 3 blocks */
  g_assert_true (ovi_denoiser_run (ovi_stage_get_denoiser (stage), &req, NULL,
                                   NULL, NULL, video, audio, &error));
  g_assert_no_error (error);
}

static void
test_cpu_ranks (void)
{
  g_autoptr (OviTensor) v1 = NULL, a1 = NULL, v2 = NULL, a2 = NULL;
  g_autoptr (OviTensor) vc = NULL, ac = NULL, vs = NULL, as = NULL;

  g_setenv ("OVI_PARALLEL_CPU_RANKS", "1", TRUE);
  denoise (OVI_GPU_ALLOCATION_SINGLE, "cpu", &v1, &a1);
  denoise (OVI_GPU_ALLOCATION_SP2, "cpu x2 (sp2)", &v2, &a2);
  denoise (OVI_GPU_ALLOCATION_CFG_PARALLEL, "cpu x2 (sp1 x cfg-parallel)", &vc,
           &ac);
  g_assert_cmpfloat (ovi_test_rel_l2 (v2, v1), <=, 1e-5);
  g_assert_cmpfloat (ovi_test_rel_l2 (a2, a1), <=, 1e-5);
  denoise (OVI_GPU_ALLOCATION_SHARDED, "cpu x2 (sp2, weights sharded)", &vs,
           &as);
  g_assert_cmpfloat (ovi_test_rel_l2 (vs, v1), <=, 1e-5);
  g_assert_cmpfloat (ovi_test_rel_l2 (as, a1), <=, 1e-5);
  g_assert_cmpfloat (ovi_test_rel_l2 (vc, v1), <=, 1e-5);
  g_assert_cmpfloat (ovi_test_rel_l2 (ac, a1), <=, 1e-5);
  g_unsetenv ("OVI_PARALLEL_CPU_RANKS");
}

/* the plan of the denoise stage with four described GPUs */
static char *
plan_error (OviGpuAllocation alloc, const char *cuda_devices)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviStagePlan) plan = NULL;
  OviStageConfig config;

  ovi_stage_config_init (&config);
  config.gpu_allocation = alloc;
  config.cuda_devices = cuda_devices;
  plan = ovi_stage_plan_new (OVI_STAGE_DENOISE, &config, &error);
  g_assert_null (plan);
  g_assert_nonnull (error);
  return g_strdup (error->message);
}

static void
test_errors (void)
{
  g_autofree char *dir = ovi_test_make_tmp_dir ("ovi-gpus-XXXXXX");
  g_autofree char *file = g_build_filename (dir, "gpus.json", NULL);
  g_autofree char *sp8 = NULL, *missing = NULL, *heads = NULL, *sharded = NULL;
  g_autofree char *none = NULL;
  const char *json
      = "{ \"status\": \"ok\", \"nvidia_driver\": true, \"driver_version\": "
        "13000, \"runtime_version\": 13000, \"archs\": [90], \"ptx_arch\": "
        "90, \"host_available_gib\": 100, \"devices\": ["
        "{ \"name\": \"H100\", \"cc\": \"9.0\", \"total_gib\": 80, "
        "\"free_gib\": 79 }, { \"name\": \"H100\", \"cc\": \"9.0\", "
        "\"total_gib\": 80, \"free_gib\": 79 }, { \"name\": \"L4\", "
        "\"cc\": \"8.9\", \"total_gib\": 24, \"free_gib\": 23 }, { "
        "\"name\": \"L4\", \"cc\": \"8.9\", \"total_gib\": 24, "
        "\"free_gib\": 23 } ] }";

  g_assert_true (g_file_set_contents (file, json, -1, NULL));
  g_setenv ("OVI_DEVICE_PROBE_FILE", file, TRUE);
  sp8 = plan_error (OVI_GPU_ALLOCATION_SP8, NULL);
  missing = plan_error (OVI_GPU_ALLOCATION_SP2, "0,5");
  sharded = plan_error (OVI_GPU_ALLOCATION_SHARDED, NULL);
  /* the tiny model has 2 heads */
  heads = plan_error (OVI_GPU_ALLOCATION_SP4, NULL);
  g_test_message ("%s\n%s\n%s\n%s", sp8, missing, sharded, heads);
  g_assert_cmpstr (sp8, ==,
                   "sp8 needs 8 GPUs, found 4 (0: H100 80 GB, 1: H100 80 GB, "
                   "2: L4 24 GB, 3: L4 24 GB)");
  g_assert_nonnull (strstr (missing, "there is no GPU \"5\""));
  /* sharded takes every GPU: 4 ranks, which the 2 heads do not allow */
  g_assert_nonnull (strstr (sharded, "gpu-allocation=sharded: the model has 2 "
                                     "attention heads, which 4 ranks"));
  g_assert_nonnull (strstr (heads, "2 attention heads"));
  /* no GPU at all, without the CPU-rank switch */
  g_assert_true (g_file_set_contents (
      file, "{ \"status\": \"no-device\", \"devices\": [] }", -1, NULL));
  none = plan_error (OVI_GPU_ALLOCATION_SP2, NULL);
  g_test_message ("%s", none);
  g_assert_true (g_str_has_prefix (none, "sp2 needs 2 GPUs, found 0"));
  g_unsetenv ("OVI_DEVICE_PROBE_FILE");
  ovi_test_remove_tree (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/stage-parallel/cpu-ranks-sp2-cfg", test_cpu_ranks);
  g_test_add_func ("/stage-parallel/errors-name-what-was-found", test_errors);
  return g_test_run ();
}
