/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: helpers shared by the fusion_dit and sampler parity runners. */
#pragma once

#include "ovi-parity.h"
#include "ovi-fusion.h"

/* a number member of a JSON object, or an OVI_ERROR_FORMAT naming `where` */
gboolean ovi_parity_number (JsonObject *o, const char *name, const char *where,
                            double *value, GError **error);
/* num_heads, text_len, eps and the audio RoPE scale of a fusion_dit
 * config.json (video_config / audio_config) */
gboolean ovi_parity_fusion_preset (JsonObject *config, const char *where,
                                   OviFusionDims *preset, GError **error);
