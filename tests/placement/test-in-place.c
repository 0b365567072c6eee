/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tests: weights used in place on a unified-memory device (issue 21).
 *
 * /in-place/stage: the stage loader with a plan made for a described
 * unified GPU (OVI_DEVICE_PROBE_FILE: a GB10-like integrated device),
 * loaded onto the CPU backend whose device memory is counted by a memory
 * account: the placement hands the weights over as views of the file's
 * mapping, so the account sees none of their bytes; the same plan made for
 * a discrete card (control) copies them. The difference is exactly the
 * bytes used in place, and equals the estimate's in-place count.
 *
 * /in-place/denoise-equals-copied: the tiny denoiser with its weights in
 * place gives latents bit for bit those of the copied upload. With
 * --backend cuda (suite gpu, scripts/gpu-check; exit 77 without a GPU) it
 * runs on the CUDA backend, where OVI_CUDA_HOST_VIEW=register takes the
 * cudaHostRegister branch on a discrete card. */
#include "ovi-test-util.h"
#include "ovi-backend.h"
#include "ovi-engine.h"
#include "ovi-mem-account.h"
#include "ovi-placement.h"
#include "ovi-stage.h"

#include <glib/gstdio.h>
#include <string.h>

static char *tiny_dir;
static const char *backend_name = "cpu"; /* --backend cuda: the GPU run */

#define GB10                                                                   \
  "{\"driver_version\": 13000, \"archs\": [121], \"ptx_arch\": 121,"           \
  " \"host_available_gib\": 110, \"devices\": [{\"name\": \"NVIDIA GB10\","    \
  " \"cc\": \"12.1\", \"total_gib\": 119, \"free_gib\": 60,"                   \
  " \"integrated\": true, \"pageable_memory_access\": true,"                   \
  " \"pageable_uses_host_page_tables\": true}]}"
#define H100                                                                   \
  "{\"driver_version\": 13000, \"archs\": [90], \"ptx_arch\": 90,"             \
  " \"host_available_gib\": 400, \"devices\": [{\"name\": \"H100\","           \
  " \"cc\": \"9.0\", \"total_gib\": 80, \"free_gib\": 79}]}"

typedef struct {
  guint64 account;  /* device bytes alive after the load */
  guint64 in_place; /* bytes the stage's placement handed over in place */
  gboolean weights_in_place;
} Load;

/* the tiny model's `kind` stage planned for the machine `json` describes,
 * loaded onto an accounted CPU backend */
static void
load_for (const char *json, OviStageKind kind, Load *out)
{
  g_autofree char *file = NULL;
  int fd = g_file_open_tmp ("ovi-in-place-XXXXXX.json", &file, NULL);
  OviStageConfig c;
  g_autoptr (OviStagePlan) plan = NULL;
  OviBackend *be = ovi_backend_new_cpu (2);
  OviMemAccount *acc = ovi_mem_account_attach (be, 0);
  OviStage *stage;
  GError *error = NULL;

  g_assert_cmpint (fd, >=, 0);
  close (fd);
  g_assert_true (g_file_set_contents (file, json, -1, NULL));
  g_setenv ("OVI_DEVICE_PROBE_FILE", file, TRUE);
  ovi_stage_config_init (&c);
  c.model_dir = tiny_dir;
  c.variant = "tiny";
  plan = ovi_stage_plan_new (kind, &c, &error);
  g_unsetenv ("OVI_DEVICE_PROBE_FILE");
  g_unlink (file);
  g_assert_no_error (error);
  stage = ovi_stage_plan_load_on (plan, be, &error);
  g_assert_no_error (error);
  out->account = ovi_mem_account_used (acc);
  out->in_place = ovi_stage_get_in_place_bytes (stage);
  out->weights_in_place = ovi_backend_get_weights_in_place (be);
  /* the weights go with the stage (the account outlives the backend's
   * table only until detached: detach after the storages are gone) */
  ovi_mem_account_detach (acc);
  ovi_stage_unref (stage);
}

/* the estimate's in-place bytes of `kind` for the tiny model on the
 * described device, fp32 activations (the CPU backend's) */
static guint64
estimated_in_place (const char *json, OviStageKind kind, guint64 *pool,
                    guint64 *device_plus_host)
{
  g_auto (OviGpuReport) r = { 0 };
  g_autoptr (OviModelPaths) paths
      = ovi_model_paths_resolve (tiny_dir, "tiny", NULL);
  OviPlacementModel m;
  OviPlacementPlan plan;
  OviPlacementEstimate est;
  guint64 worst = 0;

  g_assert_true (ovi_gpu_report_from_json (&r, json, NULL));
  g_assert_true (ovi_placement_model_init (&m, paths, NULL, NULL));
  g_assert_true (ovi_placement_plan_for_device (
      OVI_VRAM_MODE_STANDARD, OVI_GPU_ALLOCATION_SINGLE, 0,
      ovi_gpu_report_device (&r, 0), &plan, NULL));
  g_assert_true (ovi_placement_estimate (&m, &plan, 0, 0, 4, &est, NULL));
  for (int i = 0; i < OVI_N_STAGES; i++)
    worst = MAX (worst, est.stage[i].device_peak + est.stage[i].host);
  *pool = est.pool_peak;
  *device_plus_host = worst;
  ovi_placement_model_clear (&m);
  return est.stage[kind].device_own_in_place;
}

/* the memory a unified device holds for the stage's weights: what was
 * allocated (the account) plus what is read in place; a copy that is also
 * counted where it lies is caught against the control's copies */
static gboolean
counted_once (const Load *unified, const Load *discrete)
{
  return unified->account + unified->in_place == discrete->account;
}

static void
test_stage (void)
{
  static const OviStageKind kinds[] = { OVI_STAGE_DENOISE, OVI_STAGE_TEXT };

  for (guint k = 0; k < G_N_ELEMENTS (kinds); k++) {
    Load u, d;
    guint64 pool, worst, est;

    load_for (GB10, kinds[k], &u);
    load_for (H100, kinds[k], &d);
    g_test_message (
        "%s: unified %" G_GUINT64_FORMAT " allocated + %" G_GUINT64_FORMAT
        " in place; discrete %" G_GUINT64_FORMAT " allocated",
        ovi_stage_name (kinds[k]), u.account, u.in_place, d.account);
    /* the plan decided: in place on the unified device, not on the card */
    g_assert_true (u.weights_in_place);
    g_assert_false (d.weights_in_place);
    g_assert_cmpuint (d.in_place, ==, 0);
    /* the view path was taken and no second copy was allocated */
    g_assert_cmpuint (u.in_place, >, 0);
    g_assert_cmpuint (u.account, <, d.account);
    g_assert_true (counted_once (&u, &d));
    /* a deliberate double count (the copy and the mapping both counted)
     * is caught by the same check */
    {
      Load doubled = d;
      doubled.in_place = u.in_place;
      g_assert_false (counted_once (&doubled, &d));
    }
    /* the estimate counts those bytes in place (the DiT's exactly; umT5's
     * 1-D norms, which its loader places itself, in place as well but not
     * seen by the filter: under 1 %), and its pool peak is device + host
     * of the worst stage, nothing twice */
    est = estimated_in_place (GB10, kinds[k], &pool, &worst);
    g_assert_cmpuint (u.in_place, <=, est);
    g_assert_cmpuint (est - u.in_place, <=, est / 100);
    if (kinds[k] == OVI_STAGE_DENOISE)
      g_assert_cmpuint (u.in_place, ==, est);
    g_assert_cmpuint (pool, ==, worst);
  }
}

/* the tiny denoiser's latents, weights in place or copied; `in_place` and
 * `copied` get the filtered weight bytes handed over in place / copied */
static void
run_denoiser (gboolean weights_in_place, OviTensor **video, OviTensor **audio,
              guint64 *in_place, guint64 *copied)
{
  g_autoptr (OviBackend) be = ovi_test_backend_new (backend_name);
  g_autoptr (OviModelPaths) paths = NULL;
  g_autoptr (OviPlacement) pl = NULL;
  OviPlacementPlan plan;
  OviDenoiser *d;
  GError *error = NULL;

  paths = ovi_model_paths_resolve (tiny_dir, "tiny", &error);
  g_assert_no_error (error);
  g_assert_true (ovi_placement_plan_for_mode (
      OVI_VRAM_MODE_STANDARD, OVI_GPU_ALLOCATION_SINGLE, 0, &plan, &error));
  /* as a unified device's plan (make_unified) has it */
  plan.weights_in_place = weights_in_place;
  pl = ovi_placement_new (&plan, be);
  d = ovi_denoiser_new_filtered (paths, be, ovi_placement_weight_filter, pl,
                                 &error);
  g_assert_no_error (error);
  *in_place = ovi_placement_in_place_bytes (pl);
  *copied = ovi_placement_device_bytes (pl);
  ovi_test_denoise_tiny (be, d, video, audio);
  ovi_denoiser_free (d);
}

/* TRUE on the CPU; on a GPU, whether GPU 0 is unified as the CUDA module
 * describes it */
static gboolean
gpu_is_unified (void)
{
  g_auto (OviGpuReport) r = { 0 };
  const OviDeviceInfo *d;

  if (g_strcmp0 (backend_name, "cpu") == 0)
    return TRUE;
  g_assert_true (ovi_gpu_report_probe (&r, NULL));
  d = ovi_gpu_report_device (&r, 0);
  return d && ovi_device_is_unified (d);
}

static void
test_denoise_equals_copied (void)
{
  gboolean on_gpu = g_strcmp0 (backend_name, "cpu") != 0;
  g_autoptr (OviTensor) cv = NULL, ca = NULL;
  guint64 copied_in_place = 0, in_place = 0, full = 0, copied = 0;

  run_denoiser (FALSE, &cv, &ca, &copied_in_place, &full);
  g_assert_cmpuint (copied_in_place, ==, 0);
  g_assert_cmpuint (full, >, 0);
  /* in place as the device allows (the CPU; a unified GPU: pageable
   * access, else registration), and on any GPU through cudaHostRegister
   * of the file's mapping (a discrete card takes only that branch: with
   * HMM it would read the mapping through pageable access, which no plan
   * does on a discrete card) */
  for (int pass = gpu_is_unified () ? 0 : 1; pass < (on_gpu ? 2 : 1); pass++) {
    g_autoptr (OviTensor) pv = NULL, pa = NULL;
    if (pass == 1)
      g_setenv ("OVI_CUDA_HOST_VIEW", "register", TRUE);
    run_denoiser (TRUE, &pv, &pa, &in_place, &copied);
    g_unsetenv ("OVI_CUDA_HOST_VIEW");
    g_test_message ("%s%s: %" G_GUINT64_FORMAT " weight bytes used in place",
                    backend_name, pass ? " (registered)" : "", in_place);
    /* every filtered weight in place: the device could address them all */
    g_assert_cmpuint (in_place, ==, full);
    g_assert_cmpuint (copied, ==, 0);
    g_assert_true (ovi_test_same_bits (pv, cv));
    g_assert_true (ovi_test_same_bits (pa, ca));
  }
}

/* usage: test-in-place [--backend cuda] (exit 77 when that backend has no
 * device here) */
int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (!ovi_test_backend_from_args (argc, argv, &backend_name))
    return 77;
  tiny_dir = ovi_test_make_tiny_dir ("ovi-in-place-XXXXXX", 11);
  if (g_strcmp0 (backend_name, "cpu") == 0)
    g_test_add_func ("/in-place/stage", test_stage);
  g_test_add_func ("/in-place/denoise-equals-copied",
                   test_denoise_equals_copied);
  return ovi_test_run_then_remove (tiny_dir);
}
