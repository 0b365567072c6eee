/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the `ovi` plugin.
 *
 * The elements register on every machine: the engine's CUDA backend is a
 * module loaded when an element starts, so a machine without a GPU or
 * driver still lists the elements, and a GPU-only setting fails at start
 * with an error that says what to change. Rank none: nothing autoplugs. */
#include "ovi-config.h"

#include "gstoviaudiodec.h"
#include "gstovicaps.h"
#include "gstovidenoise.h"
#include "gstovitextsrc.h"
#include "gstovivaedec.h"

static gboolean
plugin_init (GstPlugin *plugin)
{
  gboolean ok = FALSE;

  gst_ovi_clip_meta_register ();
  ok |= GST_ELEMENT_REGISTER (ovitextsrc, plugin);
  ok |= GST_ELEMENT_REGISTER (ovidenoise, plugin);
  ok |= GST_ELEMENT_REGISTER (ovivaedec, plugin);
  ok |= GST_ELEMENT_REGISTER (oviaudiodec, plugin);
  return ok;
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, ovi,
                   "Ovi text/image to video+audio generation", plugin_init,
                   OVI_VERSION, "LGPL", GST_PACKAGE_NAME, GST_PACKAGE_ORIGIN)
