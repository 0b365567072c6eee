/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: oviaudiodec, audio latents -> 16 kHz audio (MMAudio + BigVGAN). */
#pragma once

#include <gst/base/gstbasetransform.h>

#include "gstoviengine-cache.h"

G_BEGIN_DECLS

#define GST_TYPE_OVI_AUDIO_DEC (gst_ovi_audio_dec_get_type ())
G_DECLARE_FINAL_TYPE (GstOviAudioDec, gst_ovi_audio_dec, GST, OVI_AUDIO_DEC,
                      GstBaseTransform)

GST_ELEMENT_REGISTER_DECLARE (oviaudiodec);

G_END_DECLS
