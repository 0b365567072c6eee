/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: `ovi parity` runner for the golden `audio` case (MMAudio VAE
 * decoder + BigVGAN): out.mel, out.wav and the dbg.* intermediates. */
#include "ovi-parity.h"
#include "ovi-engine.h"

static void
debug_check (const char *name, const OviTensor *t, gpointer user_data)
{
  OviParity *p = user_data;
  g_autofree char *ref = g_strdup_printf ("dbg.%s", name);

  if (p->io && ovi_weight_file_contains (p->io, ref))
    ovi_parity_check_io (p, ref, (OviTensor *) t);
}

gboolean
ovi_parity_run_audio (OviParity *p, GError **error)
{
  g_autofree char *vae_path = ovi_parity_path (p, "vae_weights.safetensors");
  g_autofree char *voc_path
      = ovi_parity_path (p, "vocoder_weights.safetensors");
  OviAudioDecoder *dec;
  g_autoptr (OviTensor) z = NULL;
  g_autoptr (OviTensor) mel = NULL;
  g_autoptr (OviTensor) wav = NULL;

  if (p->io == NULL) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_MISSING_TENSOR,
                 "%s: no io.safetensors", p->case_dir);
    return FALSE;
  }
  z = ovi_weight_file_get (p->io, "in.z", error);
  if (z == NULL)
    return FALSE;
  if (z->ndim != 3 || z->shape[0] != 1) {
    g_autofree char *s = ovi_shape_to_string (z->ndim, z->shape);
    g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                 "%s: in.z has shape %s, expected [1, C, L]", p->case_dir, s);
    return FALSE;
  }
  dec = ovi_audio_decoder_new_from_files (vae_path, voc_path, p->backend,
                                          error);
  if (dec == NULL)
    return FALSE;
  /* [1, C, L] -> the engine's [L, C] */
  {
    int64_t shape[2] = { z->shape[2], z->shape[1] };
    int64_t stride[2] = { z->stride[2], z->stride[1] };
    g_autoptr (OviTensor) lc = ovi_tensor_view (z, 2, shape, stride, 0);
    ovi_audio_decoder_set_debug (dec, debug_check, p);
    wav = ovi_audio_decoder_decode_mel (dec, lc, &mel, NULL, error);
  }
  ovi_audio_decoder_free (dec);
  if (wav == NULL)
    return FALSE;
  ovi_parity_check_io (p, "out.mel", mel);
  ovi_parity_check_io (p, "out.wav", wav);
  return TRUE;
}
