/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: `ovi parity` runner for the golden `video_vae` case (Wan2.2 VAE):
 * out.decode (streamed, frame groups gathered), out.encode_image,
 * out.encode_video, the latent statistics, and the dbg.* chunk
 * intermediates present in io.safetensors. */
#include "ovi-parity.h"
#include "ovi-engine.h"
#include "ovi-wan-vae.h"

#include <string.h>

typedef struct {
  OviParity *p;
  OviTensor *video; /* host [3, N, H, W] */
  int delivered;
  gboolean bad;
} Gather;

static gboolean
gather_frames (const OviTensor *frames, int first, gpointer user_data)
{
  Gather *g = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (OviTensor) host
      = ovi_backend_download_f32 (g->p->backend, frames, &error);
  int64_t n, plane, N;

  if (host == NULL || first != g->delivered
      || host->shape[2] != g->video->shape[2]
      || host->shape[3] != g->video->shape[3]
      || first + host->shape[1] > g->video->shape[1]) {
    g->bad = TRUE;
    return FALSE;
  }
  n = host->shape[1];
  N = g->video->shape[1];
  plane = host->shape[2] * host->shape[3];
  for (int c = 0; c < 3; c++)
    memcpy ((float *) ovi_tensor_data (g->video) + (c * N + first) * plane,
            (const float *) ovi_tensor_data (host) + c * n * plane,
            sizeof (float) * n * plane);
  g->delivered += n;
  return TRUE;
}

static void
debug_check (const char *name, int chunk, const OviTensor *t,
             gpointer user_data)
{
  OviParity *p = user_data;
  g_autofree char *ref = g_strdup_printf ("dbg.%s.chunk%d", name, chunk);

  if (p->io && ovi_weight_file_contains (p->io, ref))
    ovi_parity_check_io (p, ref, (OviTensor *) t);
}

/* io tensor without its leading batch dim of 1 */
static OviTensor *
io_unbatched (OviParity *p, const char *name, GError **error)
{
  g_autoptr (OviTensor) t = ovi_weight_file_get (p->io, name, error);

  if (t == NULL)
    return NULL;
  if (t->ndim < 2 || t->shape[0] != 1) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                 "%s: %s should have a batch dim of 1", p->case_dir, name);
    return NULL;
  }
  return ovi_tensor_view (t, t->ndim - 1, t->shape + 1, t->stride + 1, 0);
}

static void
check_stats (OviParity *p)
{
  int64_t shape[1] = { 48 };
  g_autoptr (OviTensor) mean = ovi_tensor_new_f32 (1, shape);
  g_autoptr (OviTensor) inv = ovi_tensor_new_f32 (1, shape);

  for (int i = 0; i < 48; i++) {
    ((float *) ovi_tensor_data (mean))[i] = ovi_wan_vae_latent_mean ()[i];
    ((float *) ovi_tensor_data (inv))[i] = 1.0f / ovi_wan_vae_latent_std ()[i];
  }
  if (ovi_weight_file_contains (p->io, "const.latent_mean"))
    ovi_parity_check_io (p, "const.latent_mean", mean);
  if (ovi_weight_file_contains (p->io, "const.latent_inv_std"))
    ovi_parity_check_io (p, "const.latent_inv_std", inv);
}

gboolean
ovi_parity_run_video_vae (OviParity *p, GError **error)
{
  g_autofree char *wpath = ovi_parity_path (p, "weights.safetensors");
  g_autoptr (OviWeightFile) wf = NULL;
  g_autoptr (OviWanVae) vae = NULL;

  if (p->io == NULL) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_MISSING_TENSOR,
                 "%s: no io.safetensors", p->case_dir);
    return FALSE;
  }
  wf = ovi_weight_file_open (wpath, NULL, error);
  if (wf == NULL || !(vae = ovi_wan_vae_new (wf, p->backend, TRUE, error)))
    return FALSE;
  check_stats (p);

  if (ovi_weight_file_contains (p->io, "in.decode_z")) {
    g_autoptr (OviTensor) z = io_unbatched (p, "in.decode_z", error);
    Gather g = { p, NULL, 0, FALSE };
    if (z == NULL)
      return FALSE;
    int64_t F = z->shape[1];
    int64_t shape[4]
        = { 3, 1 + 4 * (F - 1), z->shape[2] * 16, z->shape[3] * 16 };
    g.video = ovi_tensor_new_f32 (4, shape);
    ovi_wan_vae_set_debug (vae, debug_check, p);
    gboolean ok = ovi_wan_vae_decode (vae, z, gather_frames, &g, NULL, error);
    ovi_wan_vae_set_debug (vae, NULL, NULL);
    if (!ok || g.bad || g.delivered != shape[1]) {
      ovi_tensor_unref (g.video);
      if (ok)
        g_set_error (
            error, OVI_ERROR, OVI_ERROR_PARITY,
            "video VAE decode delivered %d frames out of order or size "
            "(expected %" G_GINT64_FORMAT ")",
            g.delivered, shape[1]);
      return FALSE;
    }
    ovi_parity_check_io (p, "out.decode", g.video);
    ovi_tensor_unref (g.video);
  }

  if (ovi_weight_file_contains (p->io, "in.encode_image")) {
    g_autoptr (OviTensor) img = io_unbatched (p, "in.encode_image", error);
    if (img == NULL)
      return FALSE;
    g_autoptr (OviTensor) mu = ovi_wan_vae_encode (vae, img, NULL, error);
    if (mu == NULL)
      return FALSE;
    ovi_parity_check_io (p, "out.encode_image", mu);
  }

  if (ovi_weight_file_contains (p->io, "in.encode_video")) {
    g_autoptr (OviTensor) vid = io_unbatched (p, "in.encode_video", error);
    if (vid == NULL)
      return FALSE;
    ovi_wan_vae_set_debug (vae, debug_check, p);
    g_autoptr (OviTensor) mu = ovi_wan_vae_encode (vae, vid, NULL, error);
    ovi_wan_vae_set_debug (vae, NULL, NULL);
    if (mu == NULL)
      return FALSE;
    ovi_parity_check_io (p, "out.encode_video", mu);
  }
  return TRUE;
}
