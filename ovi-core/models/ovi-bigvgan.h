/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the BigVGAN v1 vocoder of MMAudio 16 kHz (mel -> waveform).
 *
 * Loaded from the official names (`conv_pre.*`, `ups.*`, `resblocks.*`,
 * `activation_post.*`, `conv_post.*`); best_netG.pt nests them under
 * "generator." (pass that prefix to ovi_weight_file_open). Weight norm is
 * folded at load from either key style (`parametrizations.weight.original0/1`
 * or the legacy `weight_g`/`weight_v`); the anti-aliasing filters come from
 * the file. Channel widths, kernel sizes and block counts are read from the
 * weights; the up-sampling rates and dilations are those of the official
 * bigvgan_vocoder.yml (4,4,2,2,2,2 = 256x; (1,3,5)).
 */
#pragma once

#include <gio/gio.h>

#include "ovi-backend.h"
#include "ovi-weights.h"
#include "ovi-mmaudio-vae.h"

G_BEGIN_DECLS

typedef struct _OviBigVGan OviBigVGan;

OviBigVGan *ovi_bigvgan_new (OviWeightFile *wf, OviBackend *be, GError **error);
void ovi_bigvgan_free (OviBigVGan *voc);
int ovi_bigvgan_n_mels (const OviBigVGan *voc);
int ovi_bigvgan_hop (const OviBigVGan *voc); /* 256 */
/* names: "voc.conv_pre", "voc.ups{i}", "voc.activation_post" */
void ovi_bigvgan_set_debug (OviBigVGan *voc, OviAudioDebugFunc func,
                            gpointer user_data);

/* mel [n_mels, T] (backend or host) -> wav [1, T * hop] on the backend */
OviTensor *ovi_bigvgan_run (OviBigVGan *voc, const OviTensor *mel,
                            GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviBigVGan, ovi_bigvgan_free)

G_END_DECLS
