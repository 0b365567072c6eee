/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: stage 3, the video VAE (Wan2.2): streaming decode and the
 * image-to-video first-frame encode. */
#include "ovi-engine.h"
#include "ovi-turns.h"
#include "ovi-wan-vae.h"

struct _OviVideoVae {
  OviBackend *be;
  OviWanVae *vae;
  char *path;
  GMutex lock; /* the encoder is loaded on first use */
  gboolean encoder_loaded;
  /* one decode or encode at a time: a backend runs one op stream (the CPU
   * backend's scratch and a CUDA stream are per backend), and the stage is
   * shared by ovivaedec and ovidenoise's i2v encode */
  OviTurns turns;
  int tile, tile_overlap; /* the stage's tiling (ovi_video_vae_set_tiling) */
};

/* the decoder is loaded at once; the encoder (i2v only) on first use */
static gboolean
ensure_encoder (OviVideoVae *vae, GError **error)
{
  g_autoptr (OviWeightFile) wf = NULL;
  gboolean ok;

  g_mutex_lock (&vae->lock);
  if (!vae->encoder_loaded) {
    wf = ovi_weight_file_open (vae->path, NULL, error);
    vae->encoder_loaded
        = wf != NULL && ovi_wan_vae_load_encoder (vae->vae, wf, error);
  }
  ok = vae->encoder_loaded;
  g_mutex_unlock (&vae->lock);
  return ok;
}

OviVideoVae *
ovi_video_vae_new (const OviModelPaths *paths, OviBackend *backend,
                   GError **error)
{
  g_autoptr (OviWeightFile) wf = NULL;
  OviVideoVae *vae;
  OviWanVae *model;

  if (paths == NULL || paths->vae_path == NULL) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "video VAE: no Wan2.2_VAE.pth path");
    return NULL;
  }
  wf = ovi_weight_file_open (paths->vae_path, NULL, error);
  if (wf == NULL)
    return NULL;
  model = ovi_wan_vae_new (wf, backend, FALSE, error);
  if (model == NULL)
    return NULL;
  vae = g_new0 (OviVideoVae, 1);
  vae->be = backend;
  vae->vae = model;
  vae->path = g_strdup (paths->vae_path);
  g_mutex_init (&vae->lock);
  ovi_turns_init (&vae->turns);
  return vae;
}

void
ovi_video_vae_free (OviVideoVae *vae)
{
  if (vae == NULL)
    return;
  ovi_wan_vae_free (vae->vae);
  g_mutex_clear (&vae->lock);
  ovi_turns_clear (&vae->turns);
  g_free (vae->path);
  g_free (vae);
}

void
ovi_video_vae_set_tiling (OviVideoVae *vae, int tile, int overlap)
{
  ovi_turns_take (&vae->turns, NULL, "video VAE", NULL);
  vae->tile = tile;
  vae->tile_overlap = overlap;
  ovi_wan_vae_set_tiling (vae->vae, tile, overlap);
  ovi_turns_give (&vae->turns);
}

typedef struct {
  OviVideoVae *vae;
  OviFramesFunc func;
  gpointer user_data;
  GError *error;
} DecodeCtx;

static gboolean
deliver (const OviTensor *frames, int first_frame, gpointer user_data)
{
  DecodeCtx *ctx = user_data;
  g_autoptr (OviTensor) host
      = ovi_backend_download_f32 (ctx->vae->be, frames, &ctx->error);

  if (host == NULL)
    return FALSE;
  return ctx->func (host, first_frame, ctx->user_data);
}

gboolean
ovi_video_vae_decode (OviVideoVae *vae, const OviTensor *latent,
                      OviFramesFunc on_frames, gpointer user_data,
                      GCancellable *cancellable, GError **error)
{
  DecodeCtx ctx = { vae, on_frames, user_data, NULL };
  gboolean ok;

  g_return_val_if_fail (on_frames != NULL, FALSE);
  if (!ovi_turns_take (&vae->turns, cancellable, "video decoding", error))
    return FALSE;
  ok = ovi_wan_vae_decode (vae->vae, latent, deliver, &ctx, cancellable, error);
  ovi_turns_give (&vae->turns);
  if (ctx.error) {
    /* a download failure beats the generic "stopped" message */
    g_clear_error (error);
    g_propagate_error (error, ctx.error);
  }
  return ok;
}

struct _OviVideoDecoding {
  OviVideoVae *vae;
  OviWanVaeDecoding *wan;
};

/* a decode with its own tiling (tile < 0: the stage's), which the
 * decoding keeps; the stage's tiling is left as it was */
static OviVideoDecoding *
begin (OviVideoVae *vae, const OviTensor *latent, int tile, int overlap,
       GError **error)
{
  OviWanVaeDecoding *wan;
  OviVideoDecoding *d;

  ovi_turns_take (&vae->turns, NULL, "video decoding", NULL);
  if (tile >= 0)
    ovi_wan_vae_set_tiling (vae->vae, tile, overlap);
  wan = ovi_wan_vae_decode_begin (vae->vae, latent, error);
  if (tile >= 0)
    ovi_wan_vae_set_tiling (vae->vae, vae->tile, vae->tile_overlap);
  ovi_turns_give (&vae->turns);
  if (wan == NULL)
    return NULL;
  d = g_new0 (OviVideoDecoding, 1);
  d->vae = vae;
  d->wan = wan;
  return d;
}

OviVideoDecoding *
ovi_video_vae_decode_begin (OviVideoVae *vae, const OviTensor *latent,
                            GError **error)
{
  return begin (vae, latent, -1, 0, error);
}

OviVideoDecoding *
ovi_video_vae_decode_begin_tiled (OviVideoVae *vae, const OviTensor *latent,
                                  int tile, int overlap, GError **error)
{
  return begin (vae, latent, MAX (tile, 0), overlap, error);
}

/* The stage is held per latent frame (not per clip as in
 * ovi_video_vae_decode), so an i2v encode or another pipeline's decode runs
 * between two frame groups. */
OviTensor *
ovi_video_vae_decode_next (OviVideoDecoding *d, int *first_frame,
                           GCancellable *cancellable, GError **error)
{
  g_autoptr (OviTensor) frames = NULL;
  OviTensor *host = NULL;

  if (!ovi_turns_take (&d->vae->turns, cancellable, "video decoding", error))
    return NULL;
  frames = ovi_wan_vae_decode_next (d->wan, first_frame, cancellable, error);
  if (frames)
    host = ovi_backend_download_f32 (d->vae->be, frames, error);
  ovi_turns_give (&d->vae->turns);
  return host;
}

void
ovi_video_decoding_free (OviVideoDecoding *d)
{
  if (d == NULL)
    return;
  ovi_turns_take (&d->vae->turns, NULL, "video decoding", NULL);
  ovi_wan_vae_decoding_free (d->wan);
  ovi_turns_give (&d->vae->turns);
  g_free (d);
}

static OviTensor *
encode_locked (OviVideoVae *vae, const OviTensor *video,
               GCancellable *cancellable, GError **error)
{
  g_autoptr (OviTensor) mu = NULL;
  OviTensor *out = NULL;

  if (!ovi_turns_take (&vae->turns, cancellable, "video encoding", error))
    return NULL;
  if (ensure_encoder (vae, error)) {
    mu = ovi_wan_vae_encode (vae->vae, video, cancellable, error);
    if (mu)
      out = ovi_backend_download_f32 (vae->be, mu, error);
  }
  ovi_turns_give (&vae->turns);
  return out;
}

OviTensor *
ovi_video_vae_encode_image (OviVideoVae *vae, const OviTensor *image,
                            GError **error)
{
  g_autoptr (OviTensor) video = NULL;

  if (image->ndim != 3 || image->shape[0] != 3) {
    g_autofree char *s = ovi_shape_to_string (image->ndim, image->shape);
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "video VAE encode: image has shape %s, expected [3, H, W]", s);
    return NULL;
  }
  {
    int64_t shape[4] = { 3, 1, image->shape[1], image->shape[2] };
    int64_t stride[4]
        = { image->stride[0], 0, image->stride[1], image->stride[2] };
    video = ovi_tensor_view ((OviTensor *) image, 4, shape, stride, 0);
  }
  return encode_locked (vae, video, NULL, error);
}

OviTensor *
ovi_video_vae_encode_video (OviVideoVae *vae, const OviTensor *video,
                            GCancellable *cancellable, GError **error)
{
  return encode_locked (vae, video, cancellable, error);
}

OviVideoVae *
ovi_video_vae_new_from_file (const char *path, OviBackend *backend,
                             GError **error)
{
  OviModelPaths paths = { 0 };

  paths.vae_path = (char *) path;
  return ovi_video_vae_new (&paths, backend, error);
}
