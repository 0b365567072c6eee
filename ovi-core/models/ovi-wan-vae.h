/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the Wan2.2 video VAE (WanVAE_ as Ovi uses it).
 *
 * Built from the official state_dict names (`encoder.*`, `decoder.*`,
 * `conv1.*`, `conv2.*`); every width, stage and block count is read from the
 * weight shapes. Tensors are channel-first without the batch dim:
 * video [3, T, H, W], latent [z_dim, F, H/16, W/16].
 *
 * Decoding runs one latent frame at a time with the causal caches of the
 * official chunked decode (a 2-frame input cache per 3x3x3 conv, the
 * upsamplers' first-chunk rules) and hands out each group of frames as soon
 * as it exists: 1 frame for latent frame 0, then 4 per latent frame.
 * Activations come from a pool owned by the VAE: after the second latent
 * frame, decoding allocates nothing new.
 */
#pragma once

#include <gio/gio.h>

#include "ovi-backend.h"
#include "ovi-weights.h"

G_BEGIN_DECLS

typedef struct _OviWanVae OviWanVae;

/* Called with each decoded group of frames: `frames` [3, n, H, W] on the
 * backend, clamped to [-1, 1]; first_frame = its index in the clip.
 * Return FALSE to stop. */
typedef gboolean (*OviWanVaeFramesFunc) (const OviTensor *frames,
                                         int first_frame, gpointer user_data);

/* Optional hook for intermediates (parity): name is one of "dec.conv1",
 * "dec.middle", "enc_video.middle", "enc_video.head"; chunk = latent frame.
 * `t` is a backend tensor [C, n, h, w]. */
typedef void (*OviWanVaeDebugFunc) (const char *name, int chunk,
                                    const OviTensor *t, gpointer user_data);

/* `need_encoder` FALSE skips loading `encoder.*` and `conv1.*`. */
OviWanVae *ovi_wan_vae_new (OviWeightFile *wf, OviBackend *be,
                            gboolean need_encoder, GError **error);
void ovi_wan_vae_free (OviWanVae *vae);
/* Loads `encoder.*` and `conv1.*` when the VAE was made without them (a
 * decoder-only element never pays for the encoder). */
gboolean ovi_wan_vae_load_encoder (OviWanVae *vae, OviWeightFile *wf,
                                   GError **error);

int ovi_wan_vae_z_dim (const OviWanVae *vae);
/* the official 48-entry latent statistics (Wan2_2_VAE.scale) */
const float *ovi_wan_vae_latent_mean (void);
const float *ovi_wan_vae_latent_std (void);

void ovi_wan_vae_set_debug (OviWanVae *vae, OviWanVaeDebugFunc func,
                            gpointer user_data);

/* Spatial tiling of the decode, 0 = off. Tiles of `tile` latent pixels per
 * side overlapping by `overlap` latent pixels, blended linearly in pixel
 * space. Each tile keeps its own causal caches, so streaming still holds. */
void ovi_wan_vae_set_tiling (OviWanVae *vae, int tile, int overlap);

/* latent [z_dim, F, h, w] normalised (any host or backend float tensor) ->
 * frames through `on_frames`. Fails with OVI_ERROR_CANCELLED when
 * `cancellable` fires (checked per latent frame) or on_frames returns FALSE. */
gboolean ovi_wan_vae_decode (OviWanVae *vae, const OviTensor *latent,
                             OviWanVaeFramesFunc on_frames, gpointer user_data,
                             GCancellable *cancellable, GError **error);

/* The same decode one latent frame per call, for consumers that pull
 * frames (ovivaedec's generate_output). `latent` is copied at begin. */
typedef struct _OviWanVaeDecoding OviWanVaeDecoding;

OviWanVaeDecoding *ovi_wan_vae_decode_begin (OviWanVae *vae,
                                             const OviTensor *latent,
                                             GError **error);
/* The frames of the next latent frame, [3, n, H, W] on the backend, with
 * first_frame (nullable) = their index in the clip; NULL at the end (no
 * error set), on cancellation (OVI_ERROR_CANCELLED) or failure. */
OviTensor *ovi_wan_vae_decode_next (OviWanVaeDecoding *decoding,
                                    int *first_frame, GCancellable *cancellable,
                                    GError **error);
void ovi_wan_vae_decoding_free (OviWanVaeDecoding *decoding);

/* video [3, T, H, W] in [-1, 1] (H, W multiples of 16) -> normalised mu
 * [z_dim, 1 + (T-1)/4, H/16, W/16] on the backend. */
OviTensor *ovi_wan_vae_encode (OviWanVae *vae, const OviTensor *video,
                               GCancellable *cancellable, GError **error);

/* bytes currently held by the activation pool (tests) */
gsize ovi_wan_vae_pool_bytes (const OviWanVae *vae);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviWanVae, ovi_wan_vae_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviWanVaeDecoding, ovi_wan_vae_decoding_free)

G_END_DECLS
