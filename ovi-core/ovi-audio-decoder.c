/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: stage 4, the audio decoder: MMAudio VAE decoder (latent -> log
 * mel) then the BigVGAN vocoder (mel -> 16 kHz samples). */
#include "ovi-engine.h"
#include "ovi-bigvgan.h"
#include "ovi-mmaudio-vae.h"
#include "ovi-turns.h"

#include <string.h>

struct _OviAudioDecoder {
  OviBackend *be;
  OviMMAudioVae *vae;
  OviBigVGan *vocoder;
  OviTurns turns; /* one decode at a time on the backend */
};

/* best_netG.pt nests the generator under "generator."; a file without the
 * prefix (safetensors export, golden vectors) is read as it is. */
static OviWeightFile *
open_vocoder (const char *path, GError **error)
{
  OviWeightFile *wf = ovi_weight_file_open (path, "generator.", error);

  if (wf == NULL || ovi_weight_file_n_tensors (wf) > 0)
    return wf;
  ovi_weight_file_free (wf);
  return ovi_weight_file_open (path, NULL, error);
}

OviAudioDecoder *
ovi_audio_decoder_new_from_files (const char *vae_path,
                                  const char *vocoder_path, OviBackend *backend,
                                  GError **error)
{
  g_autoptr (OviWeightFile) vwf = NULL;
  g_autoptr (OviWeightFile) gwf = NULL;
  g_autoptr (OviMMAudioVae) vae = NULL;
  g_autoptr (OviBigVGan) voc = NULL;
  OviAudioDecoder *dec;

  vwf = ovi_weight_file_open (vae_path, NULL, error);
  if (vwf == NULL || !(vae = ovi_mmaudio_vae_new (vwf, backend, error)))
    return NULL;
  gwf = open_vocoder (vocoder_path, error);
  if (gwf == NULL || !(voc = ovi_bigvgan_new (gwf, backend, error)))
    return NULL;
  if (ovi_bigvgan_n_mels (voc) != ovi_mmaudio_vae_data_dim (vae)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                 "audio decoder: %s makes %d mel bins but %s takes %d",
                 vae_path, ovi_mmaudio_vae_data_dim (vae), vocoder_path,
                 ovi_bigvgan_n_mels (voc));
    return NULL;
  }
  dec = g_new0 (OviAudioDecoder, 1);
  dec->be = backend;
  dec->vae = g_steal_pointer (&vae);
  dec->vocoder = g_steal_pointer (&voc);
  ovi_turns_init (&dec->turns);
  return dec;
}

OviAudioDecoder *
ovi_audio_decoder_new (const OviModelPaths *paths, OviBackend *backend,
                       GError **error)
{
  if (paths == NULL || paths->audio_vae_path == NULL
      || paths->vocoder_path == NULL) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "audio decoder: no v1-16.pth / best_netG.pt paths");
    return NULL;
  }
  return ovi_audio_decoder_new_from_files (paths->audio_vae_path,
                                           paths->vocoder_path, backend, error);
}

void
ovi_audio_decoder_free (OviAudioDecoder *dec)
{
  if (dec == NULL)
    return;
  ovi_mmaudio_vae_free (dec->vae);
  ovi_bigvgan_free (dec->vocoder);
  ovi_turns_clear (&dec->turns);
  g_free (dec);
}

void
ovi_audio_decoder_set_debug (OviAudioDecoder *dec,
                             void (*func) (const char *name, const OviTensor *t,
                                           gpointer user_data),
                             gpointer user_data)
{
  ovi_mmaudio_vae_set_debug (dec->vae, func, user_data);
  ovi_bigvgan_set_debug (dec->vocoder, func, user_data);
}

static OviTensor *
decode_locked (OviAudioDecoder *dec, const OviTensor *latent,
               OviTensor **mel_out, GCancellable *cancellable, GError **error)
{
  g_autoptr (OviTensor) z = NULL;
  g_autoptr (OviTensor) mel = NULL;
  g_autoptr (OviTensor) wav = NULL;
  int embed = ovi_mmaudio_vae_embed_dim (dec->vae);

  if (latent->ndim != 2 || latent->shape[1] != embed || latent->shape[0] < 1) {
    g_autofree char *s = ovi_shape_to_string (latent->ndim, latent->shape);
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "audio decoder: latent has shape %s, expected [L, %d]", s,
                 embed);
    return NULL;
  }
  {
    int perm[2] = { 1, 0 };
    z = ovi_tensor_permute ((OviTensor *) latent, perm); /* [20, L] view */
  }
  mel = ovi_mmaudio_vae_decode (dec->vae, z, error);
  if (mel == NULL)
    return NULL;
  if (cancellable && g_cancellable_is_cancelled (cancellable)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_CANCELLED,
                 "audio decoder: cancelled");
    return NULL;
  }
  wav = ovi_bigvgan_run (dec->vocoder, mel, error);
  if (wav == NULL)
    return NULL;
  if (mel_out) {
    *mel_out = ovi_backend_download_f32 (dec->be, mel, error);
    if (*mel_out == NULL)
      return NULL;
  }
  g_autoptr (OviTensor) host = ovi_backend_download_f32 (dec->be, wav, error);
  if (host == NULL)
    return NULL;
  int64_t n[1] = { ovi_tensor_numel (host) };
  return ovi_tensor_reshape (host, 1, n);
}

OviTensor *
ovi_audio_decoder_decode_mel (OviAudioDecoder *dec, const OviTensor *latent,
                              OviTensor **mel_out, GCancellable *cancellable,
                              GError **error)
{
  OviTensor *wav;

  if (!ovi_turns_take (&dec->turns, cancellable, "audio decoding", error))
    return NULL;
  wav = decode_locked (dec, latent, mel_out, cancellable, error);
  ovi_turns_give (&dec->turns);
  return wav;
}

OviTensor *
ovi_audio_decoder_decode (OviAudioDecoder *dec, const OviTensor *latent,
                          GCancellable *cancellable, GError **error)
{
  return ovi_audio_decoder_decode_mel (dec, latent, NULL, cancellable, error);
}

/* ---- clip durations: see docs/av-sync.md ---- */

int64_t
ovi_clip_audio_start (int64_t clip_index, int64_t frames_per_clip)
{
  int64_t frames = clip_index * frames_per_clip;

  /* round(frames * 16000 / 24), half up, in integers */
  return (frames * OVI_AUDIO_RATE * 2 + OVI_VIDEO_FPS) / (2 * OVI_VIDEO_FPS);
}

int64_t
ovi_clip_audio_samples (int64_t clip_index, int64_t frames_per_clip)
{
  if (clip_index < 0 || frames_per_clip < 0)
    return 0;
  return ovi_clip_audio_start (clip_index + 1, frames_per_clip)
         - ovi_clip_audio_start (clip_index, frames_per_clip);
}

OviTensor *
ovi_clip_audio_fit (const OviTensor *samples, int64_t clip_index,
                    int64_t frames_per_clip, GError **error)
{
  int64_t want = ovi_clip_audio_samples (clip_index, frames_per_clip);
  int64_t have = samples->ndim == 1 ? samples->shape[0] : -1;
  g_autoptr (OviTensor) src = NULL;
  OviTensor *out;

  if (have < 0 || clip_index < 0 || frames_per_clip <= 0) {
    g_set_error (
        error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
        "audio clip fit: samples must be [n] and clip %" G_GINT64_FORMAT
        " / %" G_GINT64_FORMAT " frames valid",
        clip_index, frames_per_clip);
    return NULL;
  }
  src = ovi_tensor_to_f32 (samples, error);
  if (src == NULL)
    return NULL;
  out = ovi_tensor_new (OVI_DTYPE_F32, 1, &want, error);
  if (out == NULL)
    return NULL;
  /* ovi_tensor_new zeroes: the padding is silence */
  memcpy (ovi_tensor_data (out), ovi_tensor_data (src),
          sizeof (float) * MIN (have, want));
  return out;
}
