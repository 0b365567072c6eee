/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: ovidenoise, text embeddings (+ optional image) -> latents. */
#pragma once

#include <gst/gst.h>

#include "gstoviengine-cache.h"

G_BEGIN_DECLS

#define GST_TYPE_OVI_DENOISE (gst_ovi_denoise_get_type ())
G_DECLARE_FINAL_TYPE (GstOviDenoise, gst_ovi_denoise, GST, OVI_DENOISE,
                      GstElement)

GST_ELEMENT_REGISTER_DECLARE (ovidenoise);

G_END_DECLS
