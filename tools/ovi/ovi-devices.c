/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: `ovi devices` — the GPUs the CUDA module sees, or plainly why
 * there are none (no module, no driver, a driver too old for the module's
 * runtime, no device, no image of the module for a GPU). */
#include "ovi-cli.h"
#include "ovi-gpu-manager.h"

#include <stdio.h>
#include <string.h>

int
ovi_cmd_devices (int argc, char **argv)
{
  g_auto (OviGpuReport) report = { 0 };
  g_autofree char *text = NULL;
  GError *error = NULL;

  if (argc > 1
      && (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0)) {
    printf ("Usage: ovi devices\n\n"
            "Lists the CUDA devices (name, compute capability, memory, "
            "unified-memory\nattributes, which image of the CUDA module each "
            "gets) with the driver and\nruntime versions, or says why no GPU "
            "is usable. Exit status 0 with a usable\nGPU, 3 without one.\n"
            "$OVI_DEVICE_PROBE_FILE: read a JSON device description instead "
            "(see\novi-core/placement/ovi-gpu-manager.h).\n");
    return 0;
  }
  if (argc > 1)
    return ovi_cli_fail ("devices: unknown option '%s' (see --help)", argv[1]);
  if (!ovi_gpu_report_probe (&report, &error))
    return ovi_cli_fail_error (error);
  text = ovi_gpu_report_to_string (&report);
  fputs (text, stdout);
  return ovi_gpu_manager_pick (&report) >= 0 ? 0 : 3;
}
