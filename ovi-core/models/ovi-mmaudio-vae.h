/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the MMAudio 16 kHz VAE decoder (latent -> 80-bin log10 mel).
 *
 * Loaded from the official state_dict names (`decoder.*`, `data_mean`,
 * `data_std`; `encoder.*` is ignored). The magnitude-preserving conv weights
 * are normalised at load time as MPConv1D.remove_weight_norm does, and the
 * output conv's (1 + learnable_gain) is folded in. Widths, block counts,
 * kernel sizes and the up-sampling levels are read from the weights.
 * Tensors are channel-first without the batch dim: z [embed_dim, L],
 * mel [data_dim, 2L].
 */
#pragma once

#include <gio/gio.h>

#include "ovi-backend.h"
#include "ovi-weights.h"

G_BEGIN_DECLS

typedef struct _OviMMAudioVae OviMMAudioVae;

/* name: "decoder_out_normalized" (the mel before un-normalising) */
typedef void (*OviAudioDebugFunc) (const char *name, const OviTensor *t,
                                   gpointer user_data);

OviMMAudioVae *ovi_mmaudio_vae_new (OviWeightFile *wf, OviBackend *be,
                                    GError **error);
void ovi_mmaudio_vae_free (OviMMAudioVae *vae);
int ovi_mmaudio_vae_embed_dim (const OviMMAudioVae *vae);
int ovi_mmaudio_vae_data_dim (const OviMMAudioVae *vae);
void ovi_mmaudio_vae_set_debug (OviMMAudioVae *vae, OviAudioDebugFunc func,
                                gpointer user_data);

/* z [embed_dim, L] (host or backend, any float dtype) -> mel [data_dim, T]
 * on the backend (T = L times 2 per up-sampling level) */
OviTensor *ovi_mmaudio_vae_decode (OviMMAudioVae *vae, const OviTensor *z,
                                   GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviMMAudioVae, ovi_mmaudio_vae_free)

G_END_DECLS
