/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: ovivaedec, video latents -> raw video frames (Wan2.2 VAE). */
#pragma once

#include <gst/base/gstbasetransform.h>

#include "gstoviengine-cache.h"

G_BEGIN_DECLS

#define GST_TYPE_OVI_VAE_DEC (gst_ovi_vae_dec_get_type ())
G_DECLARE_FINAL_TYPE (GstOviVaeDec, gst_ovi_vae_dec, GST, OVI_VAE_DEC,
                      GstBaseTransform)

GST_ELEMENT_REGISTER_DECLARE (ovivaedec);

G_END_DECLS
