/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: helpers of the device description (see ovi-device-info.h). */
#include "ovi-device-info.h"

void
ovi_device_probe_clear (OviDeviceProbe *probe)
{
  if (probe == NULL)
    return;
  g_clear_pointer (&probe->devices, g_free);
  probe->n_devices = 0;
}

OviDeviceImage
ovi_device_image_for (const int *archs, int n_archs, int ptx_arch, int major,
                      int minor)
{
  int cc = 10 * major + minor;

  for (int i = 0; i < n_archs; i++)
    if (archs[i] / 10 == major && archs[i] <= cc)
      return OVI_DEVICE_IMAGE_NATIVE;
  if (ptx_arch > 0 && ptx_arch <= cc)
    return OVI_DEVICE_IMAGE_PTX_JIT;
  return OVI_DEVICE_IMAGE_NONE;
}

const char *
ovi_device_image_name (OviDeviceImage image)
{
  switch (image) {
    case OVI_DEVICE_IMAGE_NATIVE:
      return "native";
    case OVI_DEVICE_IMAGE_PTX_JIT:
      return "PTX JIT";
    case OVI_DEVICE_IMAGE_NONE:
      return "none";
  }
  return "?";
}

const char *
ovi_device_probe_status_name (OviDeviceProbeStatus status)
{
  switch (status) {
    case OVI_DEVICE_PROBE_OK:
      return "ok";
    case OVI_DEVICE_PROBE_NO_MODULE:
      return "no CUDA module";
    case OVI_DEVICE_PROBE_NO_DRIVER:
      return "no NVIDIA driver";
    case OVI_DEVICE_PROBE_DRIVER_OLD:
      return "NVIDIA driver too old";
    case OVI_DEVICE_PROBE_NO_DEVICE:
      return "no CUDA device";
    case OVI_DEVICE_PROBE_FAILED:
      return "CUDA runtime failure";
  }
  return "?";
}

char *
ovi_cuda_version_string (int version)
{
  return g_strdup_printf ("%d.%d", version / 1000, (version % 1000) / 10);
}
