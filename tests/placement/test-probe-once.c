/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tests: the GPU manager probes the CUDA module once per process.
 *
 * Reports, and the plans of every stage (each asks for one, the denoise
 * stage twice), made one after another probe the module once; a device
 * description ($OVI_DEVICE_PROBE_FILE) is read on every call and never
 * cached: pointing the variable at another file, rewriting the same file,
 * or unsetting it between cases gives what it says at that moment. */
#include "ovi-test-util.h"
#include "ovi-gpu-manager.h"
#include "ovi-stage.h"

#include <glib/gstdio.h>

#define H100                                                                   \
  "{\"driver_version\": 13000, \"devices\": [{\"name\": \"H100\","             \
  " \"cc\": \"9.0\", \"total_gib\": 80, \"free_gib\": 79}]}"
#define TWO_L4                                                                 \
  "{\"driver_version\": 13000, \"devices\": [{\"name\": \"L4\", \"cc\":"       \
  " \"8.9\", \"total_gib\": 24, \"free_gib\": 23}, {\"name\": \"L4\","         \
  " \"cc\": \"8.9\", \"total_gib\": 24, \"free_gib\": 23}]}"

static char *tiny_dir;

static void
probe (OviGpuReport *r)
{
  GError *error = NULL;

  ovi_gpu_report_clear (r);
  g_assert_true (ovi_gpu_report_probe (r, &error));
  g_assert_no_error (error);
}

static char *
write_description (const char *json)
{
  char *file = NULL;
  int fd = g_file_open_tmp ("ovi-probe-XXXXXX.json", &file, NULL);

  g_assert_cmpint (fd, >=, 0);
  close (fd);
  g_assert_true (g_file_set_contents (file, json, -1, NULL));
  return file;
}

static void
test_module_once (void)
{
  g_auto (OviGpuReport) first = { 0 }, r = { 0 };

  g_unsetenv ("OVI_DEVICE_PROBE_FILE");
  g_assert_cmpuint (ovi_gpu_report_module_probes (), ==, 0);
  probe (&first);
  for (int i = 0; i < 3; i++) {
    probe (&r);
    g_assert_cmpint (r.probe.status, ==, first.probe.status);
    g_assert_cmpint (r.probe.n_devices, ==, first.probe.n_devices);
    g_assert_cmpstr (r.module_path, ==, first.module_path);
  }
  for (int k = 0; k < OVI_N_STAGES; k++) {
    g_autoptr (OviStagePlan) plan = NULL;
    OviStageConfig c;
    GError *error = NULL;

    ovi_stage_config_init (&c);
    c.model_dir = tiny_dir;
    c.variant = "tiny";
    plan = ovi_stage_plan_new (k, &c, &error);
    g_assert_no_error (error);
  }
  g_test_message ("module %s: %s, %d devices; %u probe(s)",
                  first.module_path ? first.module_path : "(none)",
                  ovi_device_probe_status_name (first.probe.status),
                  first.probe.n_devices, ovi_gpu_report_module_probes ());
  g_assert_cmpuint (ovi_gpu_report_module_probes (), ==, 1);
}

static void
test_description_not_cached (void)
{
  g_auto (OviGpuReport) r = { 0 };
  g_autofree char *h100 = write_description (H100);
  g_autofree char *l4 = write_description (TWO_L4);
  guint probes = ovi_gpu_report_module_probes ();

  g_setenv ("OVI_DEVICE_PROBE_FILE", h100, TRUE);
  probe (&r);
  g_assert_cmpint (r.probe.n_devices, ==, 1);
  g_assert_cmpstr (r.probe.devices[0].name, ==, "H100");
  /* another file */
  g_setenv ("OVI_DEVICE_PROBE_FILE", l4, TRUE);
  probe (&r);
  g_assert_cmpint (r.probe.n_devices, ==, 2);
  g_assert_cmpstr (r.probe.devices[1].name, ==, "L4");
  /* the same file, rewritten */
  g_assert_true (g_file_set_contents (l4, H100, -1, NULL));
  probe (&r);
  g_assert_cmpint (r.probe.n_devices, ==, 1);
  g_assert_cmpstr (r.probe.devices[0].name, ==, "H100");
  /* unset: the module's (cached) report again */
  g_unsetenv ("OVI_DEVICE_PROBE_FILE");
  probe (&r);
  g_assert_cmpstr (r.probe.n_devices ? r.probe.devices[0].name : "", !=,
                   "H100");
  g_assert_cmpuint (ovi_gpu_report_module_probes (), ==, MAX (probes, 1));
  g_unlink (h100);
  g_unlink (l4);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tiny_dir = ovi_test_make_tiny_dir ("ovi-probe-XXXXXX", 11);
  g_test_add_func ("/probe/module-once", test_module_once);
  g_test_add_func ("/probe/description-not-cached",
                   test_description_not_cached);
  return ovi_test_run_then_remove (tiny_dir);
}
