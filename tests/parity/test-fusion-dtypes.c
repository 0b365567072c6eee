/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the fusion DiT on the checkpoint dtypes of the release: the
 * golden fusion_dit weights re-encoded as BF16 (the released files) and as
 * F8_E4M3 with 16-bit norms and biases (the fp8 file's layout), loaded by
 * name and run on the CPU backend. Weight rounding bounds the error: bf16
 * keeps 8 bits (rel ~1e-2 at most), fp8 3 bits (rel ~0.1..0.2). */
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "ovi-fusion.h"
#include "ovi-weights.h"

static OviTensor *
reencode (const OviTensor *src, gboolean fp8)
{
  g_autoptr (OviTensor) f = ovi_tensor_to_f32 (src, NULL);
  OviTensor *t = ovi_tensor_new (fp8 ? OVI_DTYPE_F8_E4M3 : OVI_DTYPE_BF16,
                                 src->ndim, src->shape, NULL);
  const float *fd = ovi_tensor_data (f);

  for (int64_t i = 0; i < ovi_tensor_numel (f); i++) {
    if (fp8)
      ((uint8_t *) ovi_tensor_data (t))[i] = ovi_f32_to_f8e4m3 (fd[i]);
    else
      ((uint16_t *) ovi_tensor_data (t))[i] = ovi_f32_to_bf16 (fd[i]);
  }
  return t;
}

/* the golden weights in the release dtypes, written to `path` */
static void
write_weights (const char *golden, const char *path, gboolean fp8)
{
  g_autofree char *src_path
      = g_build_filename (golden, "fusion_dit", "weights.safetensors", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (OviWeightFile) src = ovi_weight_file_open (src_path, NULL, &error);
  g_autoptr (GPtrArray) keep
      = g_ptr_array_new_with_free_func ((GDestroyNotify) ovi_tensor_unref);
  guint n;

  g_assert_no_error (error);
  n = ovi_weight_file_n_tensors (src);
  g_autofree OviNamedTensor *named = g_new0 (OviNamedTensor, n);
  for (guint i = 0; i < n; i++) {
    const char *name = ovi_weight_file_name (src, i);
    g_autoptr (OviTensor) t = ovi_weight_file_get (src, name, &error);
    gboolean small = strstr (name, "norm") || strstr (name, "bias");
    g_assert_no_error (error);
    named[i].name = name;
    named[i].tensor = reencode (t, fp8 && !small);
    g_ptr_array_add (keep, (gpointer) named[i].tensor);
  }
  g_assert_true (ovi_safetensors_write (path, named, n, NULL, &error));
  g_assert_no_error (error);
}

static double
rel_l2 (const OviTensor *got, const OviTensor *ref)
{
  g_autoptr (OviTensor) r = ovi_tensor_to_f32 (ref, NULL);
  const float *g = ovi_tensor_data (got), *rd = ovi_tensor_data (r);
  double d2 = 0, r2 = 0;

  g_assert_cmpint (ovi_tensor_numel (got), ==, ovi_tensor_numel (r));
  for (int64_t i = 0; i < ovi_tensor_numel (r); i++) {
    d2 += ((double) g[i] - rd[i]) * ((double) g[i] - rd[i]);
    r2 += (double) rd[i] * rd[i];
  }
  return sqrt (d2 / r2);
}

static void
run (gboolean fp8, double bound)
{
  const char *golden = g_getenv ("OVI_GOLDEN_DIR");
  g_autofree char *dir = g_dir_make_tmp ("ovi-dtypes-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "model.safetensors", NULL);
  g_autofree char *io_path = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (OviBackend) be = ovi_backend_new_cpu (1);
  OviFusionDims preset = {
    .num_heads = 2, .text_len = 32, .eps = 1e-6, .audio_rope_scale = 0.19676
  };

  g_assert_nonnull (golden);
  io_path = g_build_filename (golden, "fusion_dit", "io.safetensors", NULL);
  write_weights (golden, path, fp8);
  g_autoptr (OviWeightFile) wf = ovi_weight_file_open (path, NULL, &error);
  g_assert_no_error (error);
  g_autoptr (OviWeightFile) io = ovi_weight_file_open (io_path, NULL, &error);
  g_assert_no_error (error);
  g_autoptr (OviFusion) m = ovi_fusion_new (wf, &preset, be, &error);
  g_assert_no_error (error);

  g_autoptr (OviTensor) vid = ovi_weight_file_get (io, "in.vid", NULL);
  g_autoptr (OviTensor) audio = ovi_weight_file_get (io, "in.audio", NULL);
  g_autoptr (OviTensor) ctx = ovi_weight_file_get (io, "in.ctx_pos", NULL);
  g_autoptr (OviTensor) ref_v = ovi_weight_file_get (io, "out.pos.vid", NULL);
  g_autoptr (OviTensor) ref_a = ovi_weight_file_get (io, "out.pos.audio", NULL);
  g_autoptr (OviFusionWork) w = ovi_fusion_work_new (
      m, vid->shape[1], vid->shape[2], vid->shape[3], audio->shape[0], &error);
  g_assert_no_error (error);
  g_autoptr (OviTensor) tv
      = ovi_fusion_embed_text (m, OVI_TOWER_VIDEO, ctx, &error);
  g_autoptr (OviTensor) ta
      = ovi_fusion_embed_text (m, OVI_TOWER_AUDIO, ctx, &error);
  g_assert_no_error (error);
  g_autoptr (OviTensor) out_v = ovi_backend_new_act (be, 4, vid->shape);
  g_autoptr (OviTensor) out_a = ovi_backend_new_act (be, 2, audio->shape);
  OviFusionPass pass = { .text_video = tv, .text_audio = ta, .timestep = 883 };

  g_assert_true (
      ovi_fusion_forward (m, w, vid, audio, &pass, out_v, out_a, &error));
  g_assert_no_error (error);
  double rv = rel_l2 (out_v, ref_v), ra = rel_l2 (out_a, ref_a);
  g_test_message ("%s: rel_l2 video %.3e audio %.3e", fp8 ? "fp8" : "bf16", rv,
                  ra);
  g_assert_cmpfloat (rv, <, bound);
  g_assert_cmpfloat (ra, <, bound);
  /* rounding the weights must change something */
  g_assert_cmpfloat (rv, >, 1e-5);
  g_unlink (path);
  g_rmdir (dir);
}

static void
test_bf16 (void)
{
  run (FALSE, 2e-2);
}

static void
test_fp8 (void)
{
  run (TRUE, 0.3);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/fusion/dtype/bf16", test_bf16);
  g_test_add_func ("/fusion/dtype/fp8", test_fp8);
  return g_test_run ();
}
