/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the cuDNN graphs of the cuda module (fused attention as the
 * SDPA_FWD node, with and without padded keys; the composite attention
 * graph; conv3d + bias) built and finalised up to the operation graph at
 * the real DiT / VAE shapes. cuDNN checks descriptors, attribute types,
 * dims and graph consistency without a GPU, so this runs on any machine
 * with the module built against cuDNN (77 when it was built without). */
#include <gmodule.h>
#include <stdio.h>

#include "ovi-error.h"

int
main (void)
{
  const char *dir = g_getenv ("OVI_BACKEND_PATH");
  g_autofree char *path = NULL;
  gboolean (*selftest) (GError **) = NULL;
  g_autoptr (GError) error = NULL;
  GModule *module;

  if (dir == NULL) {
    fprintf (stderr, "OVI_BACKEND_PATH is not set\n");
    return 1;
  }
  path = g_module_build_path (dir, "ovi-cuda");
  module = g_module_open (path, G_MODULE_BIND_LOCAL);
  if (module == NULL) {
    fprintf (stderr, "%s\n", g_module_error ());
    return 1;
  }
  if (!g_module_symbol (module, "ovi_cuda_cudnn_graphs_selftest",
                        (gpointer *) &selftest)) {
    printf ("the cuda module was built without cuDNN\n");
    return 77;
  }
  if (!selftest (&error)) {
    fprintf (stderr, "%s\n", error->message);
    return 1;
  }
  printf ("cuDNN graphs finalised: SDPA node (plain, padded keys), composite "
          "attention, conv3d + bias\n");
  return 0;
}
