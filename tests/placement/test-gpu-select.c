/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi tests: device selection against device descriptions this machine
 * does not have (ovi_gpu_report_from_json): the GPU with the most usable
 * memory, the fastest mode whose estimate fits it, unified-memory devices
 * as one pool, which image of the module a GPU gets, and the reasons (and
 * the warning flag) when the CPU is used. */
#include "ovi-gpu-manager.h"
#include "ovi-placement.h"

#include <string.h>

/* a module built for the default list before issue 21, PTX of sm_90 */
#define ARCHS "\"archs\": [80, 86, 89, 90], \"ptx_arch\": 90"

static void
report_from (OviGpuReport *r, const char *json)
{
  GError *error = NULL;

  g_assert_true (ovi_gpu_report_from_json (r, json, &error));
  g_assert_no_error (error);
}

static void
release_model (OviPlacementModel *m)
{
  GError *error = NULL;

  g_assert_true (ovi_placement_model_init (m, NULL, "720x720_5s", &error));
  g_assert_no_error (error);
}

/* the fastest mode whose estimate fits `free` (the rule, from estimates) */
static OviVramMode
first_fitting (const OviPlacementModel *m, const OviDeviceInfo *dev,
               guint64 free_bytes)
{
  static const OviVramMode order[]
      = { OVI_VRAM_MODE_STANDARD, OVI_VRAM_MODE_FP8, OVI_VRAM_MODE_FP8_OFFLOAD,
          OVI_VRAM_MODE_ULTRA_LOW };

  for (guint i = 0; i < G_N_ELEMENTS (order); i++) {
    OviPlacementPlan plan;
    OviPlacementEstimate est;
    g_assert_true (ovi_placement_plan_for_device (
        order[i], OVI_GPU_ALLOCATION_SINGLE, 0, dev, &plan, NULL));
    g_assert_true (ovi_placement_estimate (m, &plan, 0, 0, 2, &est, NULL));
    if ((plan.unified ? est.pool_peak : est.device_peak) <= free_bytes)
      return order[i];
  }
  return OVI_VRAM_MODE_AUTO;
}

static void
test_image_rule (void)
{
  static const int archs[] = { 80, 86, 89, 90 };
  static const int next[] = { 80, 86, 89, 90, 100, 120, 121 };
  static const struct {
    const int *archs;
    int n_archs, ptx_arch, major, minor;
    OviDeviceImage want;
  } cases[] = {
    { archs, 4, 90, 9, 0, OVI_DEVICE_IMAGE_NATIVE },
    /* an sm_80 cubin runs on sm_87 (Orin), not the other way round */
    { archs, 4, 90, 8, 7, OVI_DEVICE_IMAGE_NATIVE },
    { archs + 3, 1, 90, 8, 6, OVI_DEVICE_IMAGE_NONE },
    /* Blackwell from the sm_90 PTX only */
    { archs, 4, 90, 12, 0, OVI_DEVICE_IMAGE_PTX_JIT },
    { archs, 4, 90, 10, 0, OVI_DEVICE_IMAGE_PTX_JIT },
    { archs, 4, 0, 12, 0, OVI_DEVICE_IMAGE_NONE },
    /* Turing: older than every image and the PTX */
    { archs, 4, 90, 7, 5, OVI_DEVICE_IMAGE_NONE },
    /* the issue-21 list: GB10 (12.1), RTX 50 (12.0), B200 (10.0), B300
     * (10.3) native; Thor (11.0) by PTX of sm_121 is too new: no image */
    { next, 7, 121, 12, 1, OVI_DEVICE_IMAGE_NATIVE },
    { next, 7, 121, 12, 0, OVI_DEVICE_IMAGE_NATIVE },
    { next, 7, 121, 10, 3, OVI_DEVICE_IMAGE_NATIVE },
    { next, 7, 121, 11, 0, OVI_DEVICE_IMAGE_NONE },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_test_message ("sm_%d%d, PTX %d", cases[i].major, cases[i].minor,
                    cases[i].ptx_arch);
    g_assert_cmpint (ovi_device_image_for (cases[i].archs, cases[i].n_archs,
                                           cases[i].ptx_arch, cases[i].major,
                                           cases[i].minor),
                     ==, cases[i].want);
  }
}

static void
test_pick_most_free (void)
{
  g_auto (OviGpuReport) r = { 0 };

  report_from (&r, "{\"driver_version\": 13000, " ARCHS ", \"devices\": ["
                   "{\"name\": \"A100\", \"cc\": \"8.0\", \"total_gib\": 80,"
                   " \"free_gib\": 30},"
                   "{\"name\": \"H100\", \"cc\": \"9.0\", \"total_gib\": 80,"
                   " \"free_gib\": 79},"
                   "{\"name\": \"L40S\", \"cc\": \"8.9\", \"total_gib\": 48,"
                   " \"free_gib\": 79}]}");
  g_assert_cmpint (r.probe.status, ==, OVI_DEVICE_PROBE_OK);
  /* ties go to the lowest index */
  g_assert_cmpint (ovi_gpu_manager_pick (&r), ==, 1);
  g_assert_null (ovi_gpu_report_reason (&r));
  g_assert_true (ovi_gpu_has_fp8 (ovi_gpu_report_device (&r, 2)));
  g_assert_false (ovi_gpu_has_fp8 (ovi_gpu_report_device (&r, 0)));
}

static void
test_skip_without_image (void)
{
  g_auto (OviGpuReport) r = { 0 };
  g_autofree char *reason = NULL, *text = NULL;

  /* a Turing card with more free memory is skipped: no image runs on it */
  report_from (&r, "{\"driver_version\": 13000, " ARCHS ", \"devices\": ["
                   "{\"name\": \"T4\", \"cc\": \"7.5\", \"free_gib\": 15},"
                   "{\"name\": \"A10\", \"cc\": \"8.6\", \"free_gib\": 10}]}");
  g_assert_cmpint (ovi_gpu_manager_pick (&r), ==, 1);
  text = ovi_gpu_report_to_string (&r);
  g_assert_nonnull (strstr (text, "NO image for sm_75"));

  ovi_gpu_report_clear (&r);
  report_from (&r, "{\"driver_version\": 13000, " ARCHS ", \"devices\": ["
                   "{\"name\": \"T4\", \"cc\": \"7.5\", \"free_gib\": 15}]}");
  g_assert_cmpint (ovi_gpu_manager_pick (&r), ==, -1);
  reason = ovi_gpu_report_reason (&r);
  g_assert_nonnull (strstr (reason, "no image"));
}

static void
test_ptx_jit_said (void)
{
  g_auto (OviGpuReport) r = { 0 };
  g_autofree char *text = NULL;

  report_from (&r, "{\"driver_version\": 13000, " ARCHS ", \"devices\": ["
                   "{\"name\": \"RTX 5090\", \"cc\": \"12.0\","
                   " \"total_gib\": 32, \"free_gib\": 31}]}");
  g_assert_cmpint (r.probe.devices[0].image, ==, OVI_DEVICE_IMAGE_PTX_JIT);
  g_assert_cmpint (ovi_gpu_manager_pick (&r), ==, 0);
  text = ovi_gpu_report_to_string (&r);
  g_assert_nonnull (strstr (text, "no native image for sm_120"));
  g_assert_nonnull (strstr (text, "JIT"));
}

static void
test_mode_fits_free_memory (void)
{
  OviPlacementModel m;
  static const double free_gib[] = { 79, 40, 30, 22, 14, 9 };

  release_model (&m);
  for (guint i = 0; i < G_N_ELEMENTS (free_gib); i++) {
    g_auto (OviGpuReport) r = { 0 };
    g_auto (OviDeviceChoice) c = { 0 };
    g_autofree char *json = g_strdup_printf (
        "{\"driver_version\": 13000, " ARCHS ", \"devices\": ["
        "{\"name\": \"small\", \"cc\": \"8.9\", \"free_gib\": 6},"
        "{\"name\": \"big\", \"cc\": \"9.0\", \"free_gib\": %g}]}",
        free_gib[i]);
    OviPlacementEstimate est;
    GError *error = NULL;
    OviVramMode want;

    report_from (&r, json);
    want = first_fitting (&m, NULL, r.probe.devices[1].free_bytes);
    g_assert_cmpint (want, !=, OVI_VRAM_MODE_AUTO);
    g_assert_true (ovi_placement_choose_device (&m, OVI_VRAM_MODE_AUTO,
                                                OVI_GPU_ALLOCATION_AUTO, 0, 0,
                                                &r, -1, 0, &c, &est, &error));
    g_assert_no_error (error);
    g_assert_cmpint (c.device, ==, 1);
    g_assert_null (c.cpu_reason);
    g_assert_cmpint (est.plan.mode, ==, want);
    g_assert_cmpuint (est.device_peak, <=, r.probe.devices[1].free_bytes);
  }
  /* the modes really differ over that range */
  g_assert_cmpint (first_fitting (&m, NULL, (guint64) 79 << 30), ==,
                   OVI_VRAM_MODE_STANDARD);
  g_assert_cmpint (first_fitting (&m, NULL, (guint64) 9 << 30), ==,
                   OVI_VRAM_MODE_ULTRA_LOW);
  ovi_placement_model_clear (&m);
}

static void
test_no_memory_falls_back (void)
{
  OviPlacementModel m;
  g_auto (OviGpuReport) r = { 0 };
  g_auto (OviDeviceChoice) c = { 0 };
  OviPlacementEstimate est;
  GError *error = NULL;

  release_model (&m);
  report_from (&r, "{\"driver_version\": 13000, " ARCHS ", \"devices\": ["
                   "{\"name\": \"RTX 3050\", \"cc\": \"8.6\", \"free_gib\": 3}"
                   "]}");
  g_assert_true (ovi_placement_choose_device (&m, OVI_VRAM_MODE_AUTO,
                                              OVI_GPU_ALLOCATION_AUTO, 0, 0, &r,
                                              -1, 0, &c, &est, &error));
  g_assert_no_error (error);
  g_assert_cmpint (c.device, ==, -1);
  g_assert_true (c.warn);
  g_assert_nonnull (strstr (c.cpu_reason, "not enough memory on GPU 0"));
  g_assert_cmpint (est.act_dtype_size, ==, 4);
  ovi_device_choice_clear (&c);

  /* an explicit mode that does not fit is refused, not moved to the CPU */
  g_assert_false (ovi_placement_choose_device (&m, OVI_VRAM_MODE_FP8,
                                               OVI_GPU_ALLOCATION_AUTO, 0, 0,
                                               &r, -1, 0, &c, &est, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY);
  g_clear_error (&error);
  ovi_placement_model_clear (&m);
}

/* auto (or `mode`) on the best GPU of `r`, at the preset's size */
static gboolean
choose_best (const OviPlacementModel *m, OviVramMode mode,
             const OviGpuReport *r, OviDeviceChoice *c,
             OviPlacementEstimate *est, GError **error)
{
  ovi_device_choice_clear (c);
  return ovi_placement_choose_device (m, mode, OVI_GPU_ALLOCATION_AUTO, 0, 0, r,
                                      -1, 0, c, est, error);
}

/* the host RAM the report gives decides too: a 12 GB card in a 16 GB
 * computer runs fp8-offload (10.2 GiB of blocks mapped from the weight
 * cache); with 8 GB left, no mode
 * fits both memories and auto goes to the CPU saying how much RAM it
 * needs; an explicit mode is refused naming the host RAM */
static void
test_host_ram_decides (void)
{
  OviPlacementModel m;
  g_auto (OviGpuReport) r = { 0 };
  g_auto (OviDeviceChoice) c = { 0 };
  OviPlacementEstimate est;
  GError *error = NULL;

  release_model (&m);
  report_from (&r, "{\"driver_version\": 13000, " ARCHS
                   ", \"host_available_gib\": 16, \"devices\": [{\"name\": "
                   "\"RTX 4070\", \"cc\": \"8.9\", \"free_gib\": 12}]}");
  g_assert_true (choose_best (&m, OVI_VRAM_MODE_AUTO, &r, &c, &est, &error));
  g_assert_no_error (error);
  g_assert_cmpint (c.device, ==, 0);
  g_assert_cmpint (est.plan.mode, ==, OVI_VRAM_MODE_FP8_OFFLOAD);
  g_assert_cmpuint (est.plan.host_ram, ==, (guint64) 16 << 30);
  g_assert_cmpuint (est.host_peak, <=, (guint64) 16 << 30);

  r.host_available = (guint64) 8 << 30;
  g_assert_true (choose_best (&m, OVI_VRAM_MODE_AUTO, &r, &c, &est, &error));
  g_assert_no_error (error);
  g_assert_cmpint (c.device, ==, -1);
  g_assert_nonnull (strstr (c.cpu_reason, "fp8-offload needs about 10."));
  g_assert_nonnull (strstr (c.cpu_reason, "of host RAM"));
  g_assert_nonnull (strstr (c.cpu_reason, "8.00 GiB is available"));

  g_assert_false (
      choose_best (&m, OVI_VRAM_MODE_ULTRA_LOW, &r, &c, &est, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY);
  g_assert_nonnull (strstr (error->message, "ultra-low needs about "));
  g_assert_nonnull (strstr (error->message, "of host RAM"));
  g_assert_nonnull (strstr (error->message, "mapped resident"));
  g_clear_error (&error);
  ovi_placement_model_clear (&m);
}

/* each reason for the CPU, and whether it is a warning */
static void
test_cpu_reasons (void)
{
  static const struct {
    const char *json, *says;
    gboolean warn;
  } cases[] = {
    { "{\"status\": \"driver-too-old\", \"driver_version\": 12020,"
      " \"runtime_version\": 13000, " ARCHS "}",
      "supports CUDA 12.2, older than the CUDA 13.0 runtime", TRUE },
    { "{\"status\": \"no-driver\", " ARCHS "}", "no NVIDIA driver", FALSE },
    { "{\"status\": \"no-module\", \"nvidia_driver\": true, \"message\":"
      " \"no libovi-cuda.so in /x\"}",
      "no CUDA backend module: no libovi-cuda.so in /x", TRUE },
    { "{\"status\": \"no-module\", \"message\": \"none\"}", "no CUDA backend",
      FALSE },
    { "{\"status\": \"no-device\", \"driver_version\": 13000, " ARCHS "}",
      "sees no CUDA device", TRUE },
    { "{\"driver_version\": 13000, " ARCHS ", \"devices\": []}",
      "sees no CUDA device", TRUE },
  };
  OviPlacementModel m;

  release_model (&m);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_auto (OviGpuReport) r = { 0 };
    g_auto (OviDeviceChoice) c = { 0 };
    g_autofree char *text = NULL;
    OviPlacementEstimate est;
    GError *error = NULL;

    report_from (&r, cases[i].json);
    g_assert_true (ovi_placement_choose_device (&m, OVI_VRAM_MODE_AUTO,
                                                OVI_GPU_ALLOCATION_AUTO, 0, 0,
                                                &r, -1, 0, &c, &est, &error));
    g_assert_no_error (error);
    g_assert_cmpint (c.device, ==, -1);
    if (strstr (c.cpu_reason, cases[i].says) == NULL)
      g_error ("case %u: '%s' does not say '%s'", i, c.cpu_reason,
               cases[i].says);
    g_assert_cmpint (c.warn, ==, cases[i].warn);
    text = ovi_gpu_report_to_string (&r);
    g_assert_nonnull (strstr (text, cases[i].says));
    g_assert_nonnull (strstr (text, cases[i].warn ? "will warn" : "CPU"));
    ovi_device_choice_clear (&c);

    /* a request that needs a GPU is an error naming the reason */
    g_assert_false (ovi_placement_choose_device (&m, OVI_VRAM_MODE_AUTO,
                                                 OVI_GPU_ALLOCATION_AUTO, 0, 0,
                                                 &r, 0, 0, &c, &est, &error));
    g_assert_error (error, OVI_ERROR, OVI_ERROR_BACKEND);
    g_assert_nonnull (strstr (error->message, cases[i].says));
    g_clear_error (&error);
  }
  ovi_placement_model_clear (&m);
}

static void
test_unified_pool (void)
{
  OviPlacementModel m;
  g_auto (OviGpuReport) spark = { 0 };
  g_auto (OviGpuReport) gh200 = { 0 };
  g_auto (OviGpuReport) hmm = { 0 };
  g_auto (OviDeviceChoice) c = { 0 };
  OviPlacementEstimate est;
  const OviDeviceInfo *d;
  GError *error = NULL;

  release_model (&m);
  /* GB10: one LPDDR5X memory; the runtime's free number leaves out the
   * page cache, MemAvailable counts it: the larger, not the sum */
  report_from (&spark,
               "{\"driver_version\": 13000, \"archs\": [121], \"ptx_arch\":"
               " 121, \"host_available_gib\": 110, \"devices\": ["
               "{\"name\": \"NVIDIA GB10\", \"cc\": \"12.1\", \"total_gib\":"
               " 119, \"free_gib\": 60, \"integrated\": true}]}");
  d = ovi_gpu_report_device (&spark, 0);
  g_assert_true (ovi_device_is_unified (d));
  g_assert_cmpuint (ovi_gpu_usable_free (d, spark.host_available), ==,
                    (guint64) 110 << 30);
  g_assert_true (ovi_placement_choose_device (&m, OVI_VRAM_MODE_AUTO,
                                              OVI_GPU_ALLOCATION_AUTO, 0, 0,
                                              &spark, -1, 0, &c, &est, &error));
  g_assert_no_error (error);
  g_assert_cmpint (c.device, ==, 0);
  g_assert_true (c.unified);
  /* all on the GPU: standard, nothing loaded per stage, nothing streamed */
  g_assert_cmpint (est.plan.mode, ==, OVI_VRAM_MODE_STANDARD);
  g_assert_true (est.plan.unified);
  g_assert_false (est.plan.t5_while_used);
  g_assert_false (est.plan.vae_while_used);
  g_assert_false (est.plan.stream_blocks);
  for (int s = 0; s < OVI_N_STAGES; s++)
    g_assert_cmpuint (est.stage[s].device_weights, ==,
                      est.stage[OVI_STAGE_DENOISE].device_weights);
  g_assert_cmpuint (est.pool_peak, <=, (guint64) 110 << 30);
  ovi_device_choice_clear (&c);

  /* the same machine with less memory: a unified plan counts host bytes
   * (pinned slabs) against the one pool */
  {
    OviDeviceInfo small = *d;
    OviPlacementPlan plan;
    small.free_bytes = 0;
    g_assert_true (ovi_placement_plan_for_device (OVI_VRAM_MODE_FP8_OFFLOAD,
                                                  OVI_GPU_ALLOCATION_SINGLE, 0,
                                                  &small, &plan, NULL));
    g_assert_true (ovi_placement_estimate (&m, &plan, 0, 0, 2, &est, NULL));
    g_assert_cmpuint (est.pool_peak, >, est.device_peak);
    g_assert_cmpuint (est.pool_peak, <=, est.device_peak + est.host_peak);
    g_assert_cmpint (first_fitting (&m, &small, est.device_peak), !=,
                     OVI_VRAM_MODE_FP8_OFFLOAD);
  }

  /* GH200: HBM and LPDDR are two memories, both addressable (ATS) */
  report_from (&gh200, "{\"driver_version\": 13000, " ARCHS ","
                       " \"host_available_gib\": 400, \"devices\": ["
                       "{\"name\": \"GH200\", \"cc\": \"9.0\", \"free_gib\":"
                       " 90, \"pageable_memory_access\": true,"
                       " \"pageable_uses_host_page_tables\": true}]}");
  d = ovi_gpu_report_device (&gh200, 0);
  g_assert_true (ovi_device_is_unified (d));
  g_assert_cmpuint (ovi_gpu_usable_free (d, gh200.host_available), ==,
                    (guint64) 490 << 30);

  /* a discrete card with HMM is not unified: its free memory is its own */
  report_from (&hmm, "{\"driver_version\": 13000, " ARCHS ","
                     " \"host_available_gib\": 400, \"devices\": ["
                     "{\"name\": \"H100 PCIe\", \"cc\": \"9.0\", \"free_gib\":"
                     " 30, \"pageable_memory_access\": true}]}");
  d = ovi_gpu_report_device (&hmm, 0);
  g_assert_false (ovi_device_is_unified (d));
  g_assert_cmpuint (ovi_gpu_usable_free (d, hmm.host_available), ==,
                    (guint64) 30 << 30);
  ovi_placement_model_clear (&m);
}

/* every weight of the model once: the DiT as a discrete card holds it,
 * umT5, the decoders as their files hold them */
static guint64
weights_once (const OviPlacementModel *m)
{
  OviPlacementPlan plan;
  OviPlacementEstimate est;

  g_assert_true (ovi_placement_plan_for_mode (
      OVI_VRAM_MODE_STANDARD, OVI_GPU_ALLOCATION_SINGLE, 0, &plan, NULL));
  g_assert_true (ovi_placement_estimate (m, &plan, 0, 0, 2, &est, NULL));
  return est.stage[OVI_STAGE_DENOISE].device_own_weights + m->t5_bytes
         + m->vae_decoder_bytes + m->audio_bytes;
}

/* no stage holds more weight bytes (device + host) than the model has,
 * and the pool peak is device + host of the worst stage */
static gboolean
counted_once (const OviPlacementModel *m, const OviPlacementEstimate *e)
{
  guint64 worst = 0;

  for (int i = 0; i < OVI_N_STAGES; i++) {
    const OviStageEstimate *s = &e->stage[i];
    if (s->device_in_place > s->device_weights
        || s->device_weights + s->host > weights_once (m))
      return FALSE;
    worst = MAX (worst, s->device_peak + s->host);
  }
  return e->pool_peak == worst;
}

#define GB10_JSON(free_gib, host_gib)                                          \
  "{\"driver_version\": 13000, \"archs\": [121], \"ptx_arch\": 121,"           \
  " \"host_available_gib\": " host_gib ", \"devices\": [{\"name\":"            \
  " \"NVIDIA GB10\", \"cc\": \"12.1\", \"total_gib\": 119, "                   \
  "\"free_gib\": " free_gib ", \"integrated\": true}]}"

static void
test_in_place_plan (void)
{
  static const char *const machines[] = {
    GB10_JSON ("60", "110"),
    "{\"driver_version\": 13000, " ARCHS ", \"host_available_gib\": 400,"
    " \"devices\": [{\"name\": \"GH200\", \"cc\": \"9.0\", \"free_gib\": 90,"
    " \"pageable_memory_access\": true,"
    " \"pageable_uses_host_page_tables\": true}]}",
    /* Jetson AGX Orin 64 GB: integrated without pageable access (the
     * mapping is registered) */
    "{\"driver_version\": 13000, " ARCHS ", \"host_available_gib\": 58,"
    " \"devices\": [{\"name\": \"Orin\", \"cc\": \"8.7\", \"total_gib\": 61,"
    " \"free_gib\": 50, \"integrated\": true,"
    " \"pageable_memory_access\": false}]}",
    "{\"driver_version\": 13000, " ARCHS ", \"host_available_gib\": 400,"
    " \"devices\": [{\"name\": \"H100\", \"cc\": \"9.0\", \"free_gib\": 79}]}",
  };
  OviPlacementModel m;

  release_model (&m);
  for (guint i = 0; i < G_N_ELEMENTS (machines); i++) {
    g_auto (OviGpuReport) r = { 0 };
    g_auto (OviDeviceChoice) c = { 0 };
    OviPlacementEstimate est;
    GError *error = NULL;
    gboolean unified = i < 3;

    report_from (&r, machines[i]);
    {
      g_autofree char *devices = ovi_gpu_report_to_string (&r);
      g_assert_cmpint (strstr (devices, "read in place") != NULL, ==, unified);
      g_assert_cmpint (strstr (devices, "mapping, registered") != NULL, ==,
                       i == 2);
    }
    g_assert_true (ovi_placement_choose_device (&m, OVI_VRAM_MODE_AUTO,
                                                OVI_GPU_ALLOCATION_AUTO, 0, 0,
                                                &r, -1, 0, &c, &est, &error));
    g_assert_no_error (error);
    g_assert_cmpint (est.plan.mode, ==, OVI_VRAM_MODE_STANDARD);
    g_assert_cmpint (est.plan.weights_in_place, ==, unified);
    g_assert_true (counted_once (&m, &est));
    g_autofree char *text = ovi_placement_estimate_to_string (&est);
    g_assert_cmpint (strstr (text, "of them in place") != NULL, ==, unified);
    for (int s = 0; s < OVI_N_STAGES; s++) {
      const OviStageEstimate *st = &est.stage[s];
      if (!unified) {
        g_assert_cmpuint (st->device_in_place, ==, 0);
        continue;
      }
      /* all on the GPU, every weight once, the DiT and umT5 in place (the
       * decoders' fp32 convs are converted once to bf16) */
      g_assert_cmpuint (st->host, ==, 0);
      g_assert_cmpuint (st->device_weights, ==, weights_once (&m));
      g_assert_cmpuint (st->device_in_place, >=,
                        est.stage[OVI_STAGE_DENOISE].device_own_in_place
                            + m.t5_bytes);
      g_assert_cmpuint (st->device_in_place, <=, st->device_weights);
    }
    if (unified) {
      /* the pool peak is the device peak: nothing counted as host too */
      g_assert_cmpuint (est.pool_peak, ==, est.device_peak);
      /* a deliberate double count (the weights in place counted again as
       * mapped host pages) is caught */
      OviPlacementEstimate twice = est;
      twice.pool_peak = 0;
      for (int s = 0; s < OVI_N_STAGES; s++) {
        OviStageEstimate *st = &twice.stage[s];
        st->host_mapped += st->device_in_place;
        st->host += st->device_in_place;
        twice.pool_peak = MAX (twice.pool_peak, st->device_peak + st->host);
      }
      g_assert_false (counted_once (&m, &twice));
    }
  }

  /* where it decides: 48 GiB of unified memory holds standard counted once
   * (about 35 GiB), not counted twice */
  {
    g_auto (OviGpuReport) r = { 0 };
    g_auto (OviDeviceChoice) c = { 0 };
    OviPlacementEstimate est;
    report_from (&r, GB10_JSON ("40", "48"));
    g_assert_true (ovi_placement_choose_device (&m, OVI_VRAM_MODE_AUTO,
                                                OVI_GPU_ALLOCATION_AUTO, 0, 0,
                                                &r, -1, 0, &c, &est, NULL));
    g_assert_cmpint (est.plan.mode, ==, OVI_VRAM_MODE_STANDARD);
    g_assert_cmpuint (est.pool_peak, <=, (guint64) 48 << 30);
    g_assert_cmpuint (est.pool_peak + est.stage[OVI_STAGE_TEXT].device_in_place,
                      >, (guint64) 48 << 30);
  }
  ovi_placement_model_clear (&m);
}

static void
test_bad_json (void)
{
  OviGpuReport r;
  GError *error = NULL;

  g_assert_false (ovi_gpu_report_from_json (
      &r, "{\"devices\": [{\"cc\": \"nine\"}]}", &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "nine"));
  g_clear_error (&error);
  g_assert_false (
      ovi_gpu_report_from_json (&r, "{\"status\": \"sleepy\"}", &error));
  g_assert_nonnull (strstr (error->message, "sleepy"));
  g_clear_error (&error);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/gpu-select/image-rule", test_image_rule);
  g_test_add_func ("/gpu-select/pick-most-free", test_pick_most_free);
  g_test_add_func ("/gpu-select/skip-without-image", test_skip_without_image);
  g_test_add_func ("/gpu-select/ptx-jit", test_ptx_jit_said);
  g_test_add_func ("/gpu-select/mode-fits", test_mode_fits_free_memory);
  g_test_add_func ("/gpu-select/no-memory", test_no_memory_falls_back);
  g_test_add_func ("/gpu-select/host-ram", test_host_ram_decides);
  g_test_add_func ("/gpu-select/cpu-reasons", test_cpu_reasons);
  g_test_add_func ("/gpu-select/unified-pool", test_unified_pool);
  g_test_add_func ("/gpu-select/in-place-plan", test_in_place_plan);
  g_test_add_func ("/gpu-select/bad-json", test_bad_json);
  return g_test_run ();
}
