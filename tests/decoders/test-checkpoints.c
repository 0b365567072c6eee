/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the decoders read the official checkpoint layouts. Video:
 * Wan2.2_VAE.pth (a plain state_dict) gives the frames of the golden
 * safetensors. Audio:
 * v1-16.pth (plain state_dict) and best_netG.pt ({'generator': sd}) with
 * either weight-norm key style, giving the same samples as the golden
 * safetensors files; a missing tensor is a clear error. */
#include "ovi-engine.h"
#include "ovi-weights.h"

#include <glib/gstdio.h>
#include <string.h>

static char *
golden_case (const char *case_name, const char *file)
{
  const char *dir = g_getenv ("OVI_GOLDEN_DIR");

  g_assert_nonnull (dir);
  return g_build_filename (dir, case_name, file, NULL);
}

static char *
golden (const char *file)
{
  return golden_case ("audio", file);
}

/* rewrite `src` as a torch zip; `legacy`: parametrizations.weight.original0/1
 * -> weight_g / weight_v; `drop`: leave this tensor out */
static void
rewrite (const char *src, const char *dst, const char *nest, gboolean legacy,
         const char *drop)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviWeightFile) wf = ovi_weight_file_open (src, NULL, &error);
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GPtrArray) tensors
      = g_ptr_array_new_with_free_func ((GDestroyNotify) ovi_tensor_unref);
  g_autofree OviNamedTensor *list = NULL;
  guint n;

  g_assert_no_error (error);
  n = ovi_weight_file_n_tensors (wf);
  for (guint i = 0; i < n; i++) {
    const char *name = ovi_weight_file_name (wf, i);
    char *out = g_strdup (name);
    if (drop && strcmp (name, drop) == 0) {
      g_free (out);
      continue;
    }
    if (legacy
        && g_str_has_suffix (name, ".parametrizations.weight.original0")) {
      g_free (out);
      out = g_strdup_printf (
          "%.*s.weight_g",
          (int) (strlen (name) - strlen (".parametrizations.weight.original0")),
          name);
    } else if (legacy
               && g_str_has_suffix (name,
                                    ".parametrizations.weight.original1")) {
      g_free (out);
      out = g_strdup_printf (
          "%.*s.weight_v",
          (int) (strlen (name) - strlen (".parametrizations.weight.original1")),
          name);
    }
    g_ptr_array_add (names, out);
    g_ptr_array_add (tensors, ovi_weight_file_get (wf, name, &error));
    g_assert_no_error (error);
  }
  list = g_new0 (OviNamedTensor, names->len);
  for (guint i = 0; i < names->len; i++) {
    list[i].name = g_ptr_array_index (names, i);
    list[i].tensor = g_ptr_array_index (tensors, i);
  }
  g_assert_true (ovi_pth_write (dst, list, names->len, nest, &error));
  g_assert_no_error (error);
}

static OviTensor *
decode (const char *vae, const char *voc, OviBackend *be, GError **error)
{
  int64_t shape[2] = { 9, 20 };
  g_autoptr (OviTensor) z = ovi_tensor_new_f32 (2, shape);
  OviAudioDecoder *dec;
  OviTensor *wav;

  for (int64_t i = 0; i < ovi_tensor_numel (z); i++)
    ((float *) ovi_tensor_data (z))[i] = (float) ((i * 37 % 101) / 50.0 - 1.0);
  dec = ovi_audio_decoder_new_from_files (vae, voc, be, error);
  if (dec == NULL)
    return NULL;
  wav = ovi_audio_decoder_decode (dec, z, NULL, error);
  ovi_audio_decoder_free (dec);
  return wav;
}

static void
test_layouts (void)
{
  g_autofree char *vae_st = golden ("vae_weights.safetensors");
  g_autofree char *voc_st = golden ("vocoder_weights.safetensors");
  g_autoptr (GError) error = NULL;
  g_autoptr (OviBackend) be = ovi_backend_new_cpu (0);
  g_autofree char *dir = g_dir_make_tmp ("ovi-audio-keys-XXXXXX", &error);
  g_autofree char *vae_pth = g_build_filename (dir, "v1-16.pth", NULL);
  g_autofree char *voc_new = g_build_filename (dir, "best_netG.pt", NULL);
  g_autofree char *voc_old = g_build_filename (dir, "legacy.pt", NULL);
  g_autofree char *voc_bad = g_build_filename (dir, "bad.pt", NULL);

  g_assert_no_error (error);
  rewrite (vae_st, vae_pth, NULL, FALSE, NULL);
  rewrite (voc_st, voc_new, "generator", FALSE, NULL);
  rewrite (voc_st, voc_old, "generator", TRUE, NULL);
  rewrite (voc_st, voc_bad, "generator", TRUE, "conv_post.bias");

  g_autoptr (OviTensor) ref = decode (vae_st, voc_st, be, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ref->shape[0], ==, 9 * 512);
  g_autoptr (OviTensor) a = decode (vae_pth, voc_new, be, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (ovi_tensor_data (a), ovi_tensor_nbytes (a),
                   ovi_tensor_data (ref), ovi_tensor_nbytes (ref));
  g_autoptr (OviTensor) b = decode (vae_pth, voc_old, be, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (ovi_tensor_data (b), ovi_tensor_nbytes (b),
                   ovi_tensor_data (ref), ovi_tensor_nbytes (ref));

  g_assert_null (decode (vae_pth, voc_bad, be, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_MISSING_TENSOR);
  g_assert_nonnull (strstr (error->message, "conv_post.bias"));
  g_clear_error (&error);

  /* the VAE file given as the vocoder: named, not a crash */
  g_assert_null (decode (vae_pth, vae_pth, be, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_MISSING_TENSOR);
  g_test_message ("%s", error->message);
  g_clear_error (&error);

  g_unlink (vae_pth);
  g_unlink (voc_new);
  g_unlink (voc_old);
  g_unlink (voc_bad);
  g_rmdir (dir);
}

typedef struct {
  GByteArray *bytes;
  int frames;
} Collect;

static gboolean
collect (const OviTensor *frames, int first, gpointer user_data)
{
  Collect *c = user_data;

  g_assert_cmpint (first, ==, c->frames);
  g_byte_array_append (c->bytes, ovi_tensor_data (frames),
                       ovi_tensor_nbytes (frames));
  c->frames += frames->shape[1];
  return TRUE;
}

static GByteArray *
decode_video (const char *path, OviBackend *be, const OviTensor *z)
{
  g_autoptr (GError) error = NULL;
  OviModelPaths paths = { 0 };
  OviVideoVae *vae;
  Collect c = { g_byte_array_new (), 0 };

  paths.vae_path = (char *) path;
  vae = ovi_video_vae_new (&paths, be, &error);
  g_assert_no_error (error);
  g_assert_true (ovi_video_vae_decode (vae, z, collect, &c, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (c.frames, ==, 1 + 4 * (z->shape[1] - 1));
  ovi_video_vae_free (vae);
  return c.bytes;
}

static void
test_video_pth (void)
{
  g_autofree char *st = golden_case ("video_vae", "weights.safetensors");
  g_autoptr (GError) error = NULL;
  g_autoptr (OviBackend) be = ovi_backend_new_cpu (0);
  g_autofree char *dir = g_dir_make_tmp ("ovi-vae-pth-XXXXXX", &error);
  g_autofree char *pth = g_build_filename (dir, "Wan2.2_VAE.pth", NULL);
  g_autofree char *bad = g_build_filename (dir, "bad.pth", NULL);
  int64_t shape[4] = { 48, 2, 2, 3 };
  g_autoptr (OviTensor) z = ovi_tensor_new_f32 (4, shape);

  g_assert_no_error (error);
  for (int64_t i = 0; i < ovi_tensor_numel (z); i++)
    ((float *) ovi_tensor_data (z))[i] = (float) ((i * 29 % 61) / 30.0 - 1.0);
  rewrite (st, pth, NULL, FALSE, NULL);
  g_autoptr (GByteArray) a = decode_video (st, be, z);
  g_autoptr (GByteArray) b = decode_video (pth, be, z);
  g_assert_cmpmem (a->data, a->len, b->data, b->len);

  /* a tensor missing from the checkpoint is named */
  rewrite (st, bad, NULL, FALSE, "decoder.middle.1.proj.bias");
  {
    OviModelPaths paths = { 0 };
    paths.vae_path = bad;
    g_assert_null (ovi_video_vae_new (&paths, be, &error));
    g_assert_error (error, OVI_ERROR, OVI_ERROR_MISSING_TENSOR);
    g_assert_nonnull (strstr (error->message, "decoder.middle.1.proj.bias"));
    g_clear_error (&error);
  }
  g_unlink (pth);
  g_unlink (bad);
  g_rmdir (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/decoders/audio-checkpoint-layouts", test_layouts);
  g_test_add_func ("/decoders/video-checkpoint-pth", test_video_pth);
  return g_test_run ();
}
