/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: `ovi estimate`: the peak device and host memory each stage
 * needs per VRAM mode, before anything is loaded (docs/vram-modes.md). */
#include "ovi-cli.h"
#include "ovi-engine.h"
#include "ovi-gpu-manager.h"
#include "ovi-mem-account.h"
#include "ovi-placement.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static gboolean
parse_int (const char *s, int *out)
{
  char *end = NULL;
  long v;

  errno = 0;
  v = strtol (s, &end, 10);
  if (errno || end == s || *end || v < 0 || v > G_MAXINT)
    return FALSE;
  *out = (int) v;
  return TRUE;
}

static gboolean
parse_gb (const char *s, guint64 *out)
{
  char *end = NULL;
  double v;

  errno = 0;
  v = g_ascii_strtod (s, &end);
  if (errno || end == s || *end || !(v >= 0) || v > 1e6)
    return FALSE;
  *out = (guint64) (v * (double) ((guint64) 1 << 30));
  return TRUE;
}

static void
usage (void)
{
  printf (
      "Usage: ovi estimate [--model VARIANT | --model-dir DIR] [--vram-mode "
      "MODE]\n"
      "                    [--gpu-allocation A] [--width W --height H]\n"
      "                    [--device-free-gb N] [--host-budget-gb N] "
      "[--host-ram-gb N]\n"
      "                    [--act-bytes 2|4]\n\n"
      "Prints the peak device and host memory each stage (text, denoise,\n"
      "video-decode, audio-decode) needs in each VRAM mode, from the model\n"
      "dims only (nothing is loaded). VARIANT is a preset name (default\n"
      "720x720_5s, release dims); --model-dir reads the dims from the weight\n"
      "files' headers instead. The frame size is snapped as the official\n"
      "pipeline does (default: the preset's square). MODE: standard, fp8,\n"
      "fp8-offload, ultra-low, auto or all (default all). auto picks the\n"
      "fastest mode whose estimate fits the free memory of --device-free-gb\n"
      "or, without it, of the best GPU the CUDA backend reports.\n"
      "--act-bytes: activation size (2 on a GPU, 4 on the CPU backend).\n"
      "Host memory is given per stage as private (ours: pinned slabs, copies,\n"
      "a CPU-side text encoder's work) and mapped (weight file pages used in\n"
      "place). --host-ram-gb: the host RAM a mode may use (default: the\n"
      "system's MemAvailable; 0: unchecked); auto skips modes that need more,\n"
      "an explicit mode needing more is refused.\n"
      "These are estimates: see docs/vram-modes.md for what they cover.\n");
}

int
ovi_cmd_estimate (int argc, char **argv)
{
  const char *variant = "720x720_5s", *model_dir = NULL, *mode_name = "all",
             *alloc_name = "single";
  int width = 0, height = 0, act = 2;
  guint64 device_free = 0, host_budget = 0, host_ram = 0;
  gboolean have_free = FALSE, have_dev = FALSE, have_ram = FALSE;
  OviDeviceInfo pick_dev = { 0 };
  GError *error = NULL;
  OviPlacementModel model;
  OviGpuAllocation alloc;
  OviVramMode mode = OVI_VRAM_MODE_AUTO;
  gboolean all;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;

    if (strcmp (a, "--help") == 0 || strcmp (a, "-h") == 0) {
      usage ();
      return 0;
    }
    if (a[0] != '-' || v == NULL)
      return ovi_cli_fail ("estimate: '%s' %s", a,
                           a[0] == '-' ? "needs a value"
                                       : "is not an option (see --help)");
    i++;
    if (strcmp (a, "--model") == 0)
      variant = v;
    else if (strcmp (a, "--model-dir") == 0)
      model_dir = v;
    else if (strcmp (a, "--vram-mode") == 0)
      mode_name = v;
    else if (strcmp (a, "--gpu-allocation") == 0)
      alloc_name = v;
    else if (strcmp (a, "--width") == 0) {
      if (!parse_int (v, &width) || width == 0)
        return ovi_cli_fail ("estimate: --width '%s' is not a positive integer",
                             v);
    } else if (strcmp (a, "--height") == 0) {
      if (!parse_int (v, &height) || height == 0)
        return ovi_cli_fail (
            "estimate: --height '%s' is not a positive integer", v);
    } else if (strcmp (a, "--act-bytes") == 0) {
      if (!parse_int (v, &act) || (act != 2 && act != 4))
        return ovi_cli_fail ("estimate: --act-bytes must be 2 or 4, not '%s'",
                             v);
    } else if (strcmp (a, "--device-free-gb") == 0) {
      if (!parse_gb (v, &device_free))
        return ovi_cli_fail ("estimate: --device-free-gb '%s' is not a size",
                             v);
      have_free = TRUE;
    } else if (strcmp (a, "--host-budget-gb") == 0) {
      if (!parse_gb (v, &host_budget))
        return ovi_cli_fail ("estimate: --host-budget-gb '%s' is not a size",
                             v);
    } else if (strcmp (a, "--host-ram-gb") == 0) {
      if (!parse_gb (v, &host_ram))
        return ovi_cli_fail ("estimate: --host-ram-gb '%s' is not a size", v);
      have_ram = TRUE;
    } else
      return ovi_cli_fail ("estimate: unknown option '%s' (see --help)", a);
  }
  if ((width == 0) != (height == 0))
    return ovi_cli_fail ("estimate: give both --width and --height");
  all = g_ascii_strcasecmp (mode_name, "all") == 0;
  if (!all && !ovi_vram_mode_from_string (mode_name, &mode, &error))
    return ovi_cli_fail_error (error);
  if (!ovi_gpu_allocation_from_string (alloc_name, &alloc, &error))
    return ovi_cli_fail_error (error);

  if (model_dir) {
    g_autoptr (OviModelPaths) paths
        = ovi_model_paths_resolve (model_dir, NULL, &error);
    if (paths == NULL
        || !ovi_placement_model_init (&model, paths, NULL, &error))
      return ovi_cli_fail_error (error);
  } else if (!ovi_placement_model_init (&model, NULL, variant, &error)) {
    return ovi_cli_fail_error (error);
  }
  if (width > 0) {
    int w = width, h = height;
    if (!ovi_snap_hw_t2v (height, width, model.target_area, &h, &w, &error)) {
      ovi_placement_model_clear (&model);
      return ovi_cli_fail_error (error);
    }
    if (w != width || h != height)
      printf ("frame size %dx%d snapped to %dx%d (target area %" G_GINT64_FORMAT
              ")\n",
              width, height, w, h, model.target_area);
    width = w;
    height = h;
  }
  if (!have_ram)
    host_ram = ovi_host_ram_available ();
  {
    g_autofree char *ram = ovi_format_bytes (host_ram);
    printf ("host RAM: %s%s\n", host_ram ? ram : "unchecked",
            have_ram ? "" : " (MemAvailable)");
  }
  printf ("model %s: DiT %d layers, dim %d, %d + %d latents per clip\n",
          model.variant, model.dims.num_layers, model.dims.dim,
          model.video_latent_frames, model.audio_latent_length);

  if (!have_free && (mode == OVI_VRAM_MODE_AUTO || all)) {
    g_auto (OviGpuReport) report = { 0 };
    g_autofree char *reason = NULL;
    int pick;
    if (!ovi_gpu_report_probe (&report, &error)) {
      ovi_placement_model_clear (&model);
      return ovi_cli_fail_error (error);
    }
    pick = ovi_gpu_manager_pick (&report);
    reason = ovi_gpu_report_reason (&report);
    for (int i = 0; reason == NULL && i < report.probe.n_devices; i++) {
      const OviDeviceInfo *g = &report.probe.devices[i];
      guint64 usable = ovi_gpu_usable_free (g, report.host_available);
      g_autofree char *fr = ovi_format_bytes (usable);
      g_autofree char *tot = ovi_format_bytes (g->total_bytes);
      printf ("GPU %d: %s, %s %s of %s, sm_%d%d%s\n", g->index, g->name, fr,
              ovi_device_is_unified (g) ? "usable (unified pool)" : "free", tot,
              g->cc_major, g->cc_minor,
              g->index == pick ? " (auto picks this one)" : "");
      if (g->index == pick) {
        device_free = usable;
        pick_dev = *g;
        have_dev = have_free = TRUE;
      }
    }
    if (reason)
      printf ("GPUs: none (%s)\n", reason);
  }

  int status = 0;
  if (all) {
    for (OviVramMode m = OVI_VRAM_MODE_STANDARD; m < OVI_N_VRAM_MODES; m++) {
      OviPlacementPlan plan;
      OviPlacementEstimate est;
      if (!ovi_placement_plan_for_device (
              m, alloc, host_budget, have_dev ? &pick_dev : NULL, &plan, &error)
          || !ovi_placement_estimate (&model, &plan, width, height, act, &est,
                                      &error)) {
        ovi_placement_model_clear (&model);
        return ovi_cli_fail_error (error);
      }
      g_autofree char *s = ovi_placement_estimate_to_string (&est);
      printf ("%s\n", s);
    }
  }
  if (mode == OVI_VRAM_MODE_AUTO || !all) {
    OviPlacementEstimate est;
    if (mode == OVI_VRAM_MODE_AUTO && !have_free) {
      printf ("vram-mode auto: no free device memory known (no GPU; give "
              "--device-free-gb)\n");
    } else if (!have_free) {
      OviPlacementPlan plan;
      if (!ovi_placement_plan_for_mode (mode, alloc, host_budget, &plan, &error)
          || !ovi_placement_estimate (&model, &plan, width, height, act, &est,
                                      &error)) {
        ovi_placement_model_clear (&model);
        return ovi_cli_fail_error (error);
      }
      g_autofree char *s = ovi_placement_estimate_to_string (&est);
      printf ("%s\n", s);
    } else if (ovi_placement_choose_host (&model, mode, alloc, width, height,
                                          act, have_dev ? &pick_dev : NULL,
                                          device_free, host_budget, host_ram,
                                          &est, &error)) {
      g_autofree char *s = ovi_placement_estimate_to_string (&est);
      g_autofree char *fr = ovi_format_bytes (device_free);
      if (!all || mode != OVI_VRAM_MODE_AUTO)
        printf ("%s\n", s);
      printf ("vram-mode %s: %s fits in %s free\n",
              ovi_vram_mode_to_string (mode),
              ovi_vram_mode_to_string (est.plan.mode), fr);
      if (mode == OVI_VRAM_MODE_AUTO) {
        g_autofree char *why = ovi_placement_auto_why (
            &model, &est, width, height, have_dev ? &pick_dev : NULL,
            device_free, host_budget);
        printf ("%s\n", why);
      }
    } else {
      fprintf (stderr, "ovi: %s\n", error->message);
      g_clear_error (&error);
      status = 2;
    }
  }
  ovi_placement_model_clear (&model);
  return status;
}
