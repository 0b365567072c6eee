/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tests: what the decoder elements output, pixel by pixel and sample by
 * sample, against the official code.
 *
 * The golden video_vae and audio cases hold latents and what the official
 * decoders make of them. Their weights are put under the official file
 * names of a model folder (the tiny model's, for the rest), the golden
 * latents go through ovivaedec and oviaudiodec in a GstHarness as
 * ovidenoise would send them, and the outputs are compared with the golden
 * decodes after the element's own conversion, computed here independently:
 * RGB/RGBA bytes as the official writer quantises ((x + 1) / 2 * 255,
 * truncated), I420/NV12 from those bytes with the matrix and range of the
 * negotiated colorimetry; audio within the parity bound. A decoder that
 * swapped channels, flipped planes, or output silence fails here.
 */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <math.h>
#include <string.h>

#include "ovi-engine.h"
#include "ovi-test-util.h"
#include "ovi-weights.h"

static gchar *model_dir;
static OviTensor *latent_video; /* [48, F, h, w] normalised */
static OviTensor *latent_audio; /* [L, 20] */
static OviTensor *golden_video; /* [3, T, H, W] in [-1, 1] */
static OviTensor *golden_wav;   /* [L * 512] */

static OviTensor *
golden (const gchar *case_name, const gchar *name)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar *path = g_build_filename (g_getenv ("OVI_GOLDEN_DIR"),
                                             case_name, "io.safetensors", NULL);
  g_autoptr (OviWeightFile) io = ovi_weight_file_open (path, NULL, &error);
  OviTensor *t;

  g_assert_no_error (error);
  t = ovi_weight_file_get (io, name, &error);
  g_assert_no_error (error);
  return t;
}

/* `t` as a contiguous F32 tensor of its last `ndim` dims (the golden
 * batch dimension of 1 dropped); takes `t` */
static OviTensor *
squeeze (OviTensor *t, int ndim)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviTensor) c = ovi_tensor_to_f32 (t, &error);

  g_assert_no_error (error);
  ovi_tensor_unref (t);
  return ovi_tensor_reshape (c, ndim, c->shape + (c->ndim - ndim));
}

/* [a, b] -> contiguous [b, a]; takes `t` */
static OviTensor *
transpose_2d (OviTensor *t)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviTensor) view = ovi_tensor_permute (t, (int[]){ 1, 0 });
  OviTensor *c = ovi_tensor_to_f32 (view, &error);

  g_assert_no_error (error);
  ovi_tensor_unref (t);
  return c;
}

static void
copy_file (const gchar *from, const gchar *to)
{
  g_autoptr (GError) error = NULL;
  gchar *data;
  gsize len;

  g_file_get_contents (from, &data, &len, &error);
  g_assert_no_error (error);
  g_file_set_contents (to, data, len, &error);
  g_assert_no_error (error);
  g_free (data);
}

/* the tiny model with the golden decoders' weights under the official
 * names (the readers know the format by its content) */
static void
make_model_dir (void)
{
  const gchar *golden_dir = g_getenv ("OVI_GOLDEN_DIR");
  static const gchar *const files[][2] = {
    { "video_vae/weights.safetensors", "Wan2.2-TI2V-5B/Wan2.2_VAE.pth" },
    { "audio/vae_weights.safetensors", "MMAudio/ext_weights/v1-16.pth" },
    { "audio/vocoder_weights.safetensors", "MMAudio/ext_weights/best_netG.pt" },
  };

  model_dir = ovi_test_make_tiny_dir ("ovi-content-XXXXXX", 1);
  for (guint i = 0; i < G_N_ELEMENTS (files); i++) {
    g_autofree gchar *from = g_build_filename (golden_dir, files[i][0], NULL);
    g_autofree gchar *to = g_build_filename (model_dir, files[i][1], NULL);
    copy_file (from, to);
  }
}

static GstCaps *
latent_caps (void)
{
  int64_t frames = 1 + 4 * (latent_video->shape[1] - 1);

  return gst_caps_new_simple (
      "application/x-ovi-latent", "dtype", G_TYPE_STRING, "F32",
      "video-channels", G_TYPE_INT, (gint) latent_video->shape[0],
      "video-frames", G_TYPE_INT, (gint) latent_video->shape[1], "video-height",
      G_TYPE_INT, (gint) latent_video->shape[2], "video-width", G_TYPE_INT,
      (gint) latent_video->shape[3], "audio-length", G_TYPE_INT,
      (gint) latent_audio->shape[0], "audio-channels", G_TYPE_INT,
      (gint) latent_audio->shape[1], "width", G_TYPE_INT,
      (gint) (16 * latent_video->shape[3]), "height", G_TYPE_INT,
      (gint) (16 * latent_video->shape[2]), "frames", G_TYPE_INT, (gint) frames,
      "framerate", GST_TYPE_FRACTION, 24, 1, "rate", G_TYPE_INT, 16000, NULL);
}

static GstMemory *
tensor_memory (const OviTensor *t)
{
  gsize size = ovi_tensor_numel (t) * sizeof (float);
  GstMemory *mem = gst_allocator_alloc (NULL, size, NULL);
  GstMapInfo map;

  fail_unless (gst_memory_map (mem, &map, GST_MAP_WRITE));
  memcpy (map.data, ovi_tensor_data (t), size);
  gst_memory_unmap (mem, &map);
  return mem;
}

/* one clip as ovidenoise sends it: video latent, then audio latent */
static GstBuffer *
latent_buffer (void)
{
  GstBuffer *buf = gst_buffer_new ();
  int64_t frames = 1 + 4 * (latent_video->shape[1] - 1);

  gst_buffer_append_memory (buf, tensor_memory (latent_video));
  gst_buffer_append_memory (buf, tensor_memory (latent_audio));
  GST_BUFFER_PTS (buf) = 0;
  GST_BUFFER_DURATION (buf) = gst_util_uint64_scale (frames, GST_SECOND, 24);
  GST_BUFFER_OFFSET (buf) = 0;
  GST_BUFFER_OFFSET_END (buf) = frames;
  return buf;
}

static GstHarness *
decoder_harness (const gchar *element, const gchar *sink_caps)
{
  g_autofree gchar *desc
      = g_strdup_printf ("%s model-dir=\"%s\"", element, model_dir);
  GstHarness *h = gst_harness_new_parse (desc);

  gst_harness_set_src_caps (h, latent_caps ());
  if (sink_caps)
    gst_harness_set_sink_caps_str (h, sink_caps);
  fail_unless_equals_int (gst_harness_push (h, latent_buffer ()), GST_FLOW_OK);
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  return h;
}

/* ---- video ---- */

static guint8
official_u8 (float x)
{
  double v = ((double) x + 1.0) / 2.0 * 255.0;
  return v <= 0 ? 0 : v >= 255 ? 255 : (guint8) v;
}

/* the golden frame t as the official writer's bytes, [H][W][3] */
static guint8 *
golden_rgb (int t)
{
  int64_t T = golden_video->shape[1], H = golden_video->shape[2],
          W = golden_video->shape[3];
  const float *v = ovi_tensor_data (golden_video);
  guint8 *rgb = g_new (guint8, H * W * 3);

  for (int64_t c = 0; c < 3; c++)
    for (int64_t p = 0; p < H * W; p++)
      rgb[p * 3 + c] = official_u8 (v[(c * T + t) * H * W + p]);
  return rgb;
}

typedef struct {
  double sum_abs, max_abs;
  gint64 n;
  double sxy, sxx, syy, sx, sy; /* for the correlation */
} Diff;

static void
diff_add (Diff *d, double got, double want)
{
  d->sum_abs += fabs (got - want);
  d->max_abs = MAX (d->max_abs, fabs (got - want));
  d->n++;
  d->sx += got;
  d->sy += want;
  d->sxx += got * got;
  d->syy += want * want;
  d->sxy += got * want;
}

static double
diff_corr (const Diff *d)
{
  double n = d->n, cov = d->sxy / n - d->sx / n * d->sy / n;
  double vx = d->sxx / n - d->sx / n * d->sx / n;
  double vy = d->syy / n - d->sy / n * d->sy / n;
  return cov / sqrt (vx * vy);
}

static void
check_rgb_frame (GstVideoFrame *f, const guint8 *want, Diff *d)
{
  gint W = GST_VIDEO_FRAME_WIDTH (f), H = GST_VIDEO_FRAME_HEIGHT (f);
  gint px = GST_VIDEO_FRAME_COMP_PSTRIDE (f, 0);

  for (gint y = 0; y < H; y++) {
    const guint8 *row = (const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (f, 0)
                        + y * GST_VIDEO_FRAME_PLANE_STRIDE (f, 0);
    for (gint x = 0; x < W; x++)
      for (gint c = 0; c < 3; c++)
        diff_add (d, row[x * px + GST_VIDEO_FRAME_COMP_OFFSET (f, c)],
                  want[(y * W + x) * 3 + c]);
  }
}

/* Y, Cb, Cr of 8-bit R'G'B' by the matrix and range of `info`, in double */
static void
rgb_to_yuv (const GstVideoInfo *info, const guint8 *rgb, double yuv[3])
{
  gdouble kr, kb;
  gint offset[4], scale[4];

  fail_unless (gst_video_color_matrix_get_Kr_Kb (
      GST_VIDEO_INFO_COLORIMETRY (info).matrix, &kr, &kb));
  gst_video_color_range_offsets (GST_VIDEO_INFO_COLORIMETRY (info).range,
                                 info->finfo, offset, scale);
  double r = rgb[0] / 255.0, g = rgb[1] / 255.0, b = rgb[2] / 255.0;
  double luma = kr * r + (1 - kr - kb) * g + kb * b;
  yuv[0] = offset[0] + scale[0] * luma;
  yuv[1] = offset[1] + scale[1] * (b - luma) / (2 * (1 - kb));
  yuv[2] = offset[2] + scale[2] * (r - luma) / (2 * (1 - kr));
}

/* luma per pixel; chroma against the 2x2 mean of the full-resolution
 * chroma (the converter's own 4:2:0 filter may weigh the four a little
 * differently, so chroma is judged by mean error and correlation) */
static void
check_yuv_frame (GstVideoFrame *f, const guint8 *rgb, Diff *luma, Diff *chroma)
{
  gint W = GST_VIDEO_FRAME_WIDTH (f), H = GST_VIDEO_FRAME_HEIGHT (f);
  g_autofree double *yuv = g_new (double, (gsize) W *H * 3);

  for (gint p = 0; p < W * H; p++)
    rgb_to_yuv (&f->info, rgb + p * 3, yuv + p * 3);
  for (gint y = 0; y < H; y++)
    for (gint x = 0; x < W; x++) {
      const guint8 *Y = (const guint8 *) GST_VIDEO_FRAME_COMP_DATA (f, 0)
                        + y * GST_VIDEO_FRAME_COMP_STRIDE (f, 0);
      diff_add (luma, Y[x], yuv[(y * W + x) * 3]);
    }
  for (gint c = 1; c <= 2; c++)
    for (gint y = 0; y < H / 2; y++)
      for (gint x = 0; x < W / 2; x++) {
        const guint8 *row = (const guint8 *) GST_VIDEO_FRAME_COMP_DATA (f, c)
                            + y * GST_VIDEO_FRAME_COMP_STRIDE (f, c);
        double want = 0;
        for (gint dy = 0; dy < 2; dy++)
          for (gint dx = 0; dx < 2; dx++)
            want += yuv[((2 * y + dy) * W + 2 * x + dx) * 3 + c] / 4;
        diff_add (chroma, row[x * GST_VIDEO_FRAME_COMP_PSTRIDE (f, c)], want);
      }
}

static void
check_video_format (const gchar *format)
{
  g_autofree gchar *caps = g_strdup_printf ("video/x-raw,format=%s", format);
  GstHarness *h = decoder_harness ("ovivaedec", caps);
  GstVideoInfo info;
  gboolean is_rgb = g_str_has_prefix (format, "RGB");
  Diff pix = { 0 }, chroma = { 0 };
  gint t = 0;
  GstBuffer *buf;
  GstCaps *out_caps = gst_pad_get_current_caps (h->sinkpad);

  fail_unless (gst_video_info_from_caps (&info, out_caps));
  gst_caps_unref (out_caps);
  fail_unless_equals_string (
      gst_video_format_to_string (GST_VIDEO_INFO_FORMAT (&info)), format);
  fail_unless_equals_int (GST_VIDEO_INFO_WIDTH (&info), golden_video->shape[3]);
  fail_unless_equals_int (GST_VIDEO_INFO_HEIGHT (&info),
                          golden_video->shape[2]);
  while ((buf = gst_harness_try_pull (h))) {
    GstVideoFrame f;
    g_autofree guint8 *want = NULL;

    fail_unless (t < golden_video->shape[1], "more frames than the clip");
    want = golden_rgb (t);
    fail_unless (gst_video_frame_map (&f, &info, buf, GST_MAP_READ));
    if (is_rgb)
      check_rgb_frame (&f, want, &pix);
    else
      check_yuv_frame (&f, want, &pix, &chroma);
    gst_video_frame_unmap (&f);
    gst_buffer_unref (buf);
    t++;
  }
  fail_unless_equals_int (t, golden_video->shape[1]);
  GST_INFO ("%s: %s max |d| %.2f mean %.4f corr %.6f; chroma mean %.3f "
            "corr %.5f",
            format, is_rgb ? "RGB" : "luma", pix.max_abs, pix.sum_abs / pix.n,
            diff_corr (&pix), chroma.n ? chroma.sum_abs / chroma.n : 0,
            chroma.n ? diff_corr (&chroma) : 0);
  if (is_rgb) {
    /* the engine's floats differ from the official ones by ~1e-6: a value
     * on a truncation boundary may land one level away */
    fail_unless (pix.max_abs <= 1, "%s: a byte differs by %.0f", format,
                 pix.max_abs);
    fail_unless (pix.sum_abs / pix.n < 0.01, "%s: mean |d| %.4f", format,
                 pix.sum_abs / pix.n);
  } else {
    fail_unless (pix.max_abs <= 2, "%s: luma differs by %.2f", format,
                 pix.max_abs);
    fail_unless (chroma.sum_abs / chroma.n < 1.0, "%s: chroma mean |d| %.3f",
                 format, chroma.sum_abs / chroma.n);
    fail_unless (diff_corr (&chroma) > 0.995, "%s: chroma correlation %.4f",
                 format, diff_corr (&chroma));
  }
  gst_harness_teardown (h);
}

GST_START_TEST (test_video_rgb)
{
  check_video_format ("RGB");
}

GST_END_TEST;

GST_START_TEST (test_video_rgba)
{
  check_video_format ("RGBA");
}

GST_END_TEST;

GST_START_TEST (test_video_i420)
{
  check_video_format ("I420");
}

GST_END_TEST;

GST_START_TEST (test_video_nv12)
{
  check_video_format ("NV12");
}

GST_END_TEST;

/* ---- audio ---- */

GST_START_TEST (test_audio)
{
  GstHarness *h = decoder_harness ("oviaudiodec", NULL);
  int64_t frames = 1 + 4 * (latent_video->shape[1] - 1);
  int64_t want_n = ovi_clip_audio_samples (0, frames);
  int64_t n = 0, golden_n = ovi_tensor_numel (golden_wav);
  g_autoptr (OviTensor) got = ovi_tensor_new_f32 (1, (int64_t[]){ want_n });
  g_autoptr (OviTensor) ref = ovi_tensor_new_f32 (1, (int64_t[]){ want_n });
  float *g = ovi_tensor_data (got), *r = ovi_tensor_data (ref);
  const float *golden_samples = ovi_tensor_data (golden_wav);
  GstBuffer *buf;

  while ((buf = gst_harness_try_pull (h))) {
    GstMapInfo map;
    fail_unless (gst_buffer_map (buf, &map, GST_MAP_READ));
    fail_unless (n + (int64_t) (map.size / 4) <= want_n, "too many samples");
    memcpy (g + n, map.data, map.size);
    n += map.size / 4;
    gst_buffer_unmap (buf, &map);
    gst_buffer_unref (buf);
  }
  fail_unless_equals_int64 (n, want_n);
  /* the clip's share of the vocoder's samples, padded with silence */
  for (int64_t i = 0; i < want_n; i++)
    r[i] = i < golden_n ? golden_samples[i] : 0.0f;
  double rel = ovi_test_rel_l2 (got, ref);
  GST_INFO ("audio: %" G_GINT64_FORMAT " samples, rel_l2 %.3e", n, rel);
  fail_unless (rel <= 1e-4, "audio rel_l2 %.3e to the official decode", rel);
  gst_harness_teardown (h);
}

GST_END_TEST;

static Suite *
content_suite (void)
{
  Suite *s = suite_create ("ovi-content");
  TCase *tc = tcase_create ("decoders");

  tcase_set_timeout (tc, 300);
  tcase_add_test (tc, test_video_rgb);
  tcase_add_test (tc, test_video_rgba);
  tcase_add_test (tc, test_video_i420);
  tcase_add_test (tc, test_video_nv12);
  tcase_add_test (tc, test_audio);
  suite_add_tcase (s, tc);
  return s;
}

int
main (int argc, char **argv)
{
  int status;

  gst_check_init (&argc, &argv);
  if (g_getenv ("OVI_GOLDEN_DIR") == NULL)
    return 77;
  make_model_dir ();
  latent_video = squeeze (golden ("video_vae", "in.decode_z"), 4);
  golden_video = squeeze (golden ("video_vae", "out.decode"), 4);
  latent_audio = transpose_2d (squeeze (golden ("audio", "in.z"), 2));
  golden_wav = squeeze (golden ("audio", "out.wav"), 1);
  status = gst_check_run_suite (content_suite (), "ovi-content", __FILE__);
  ovi_tensor_unref (latent_video);
  ovi_tensor_unref (latent_audio);
  ovi_tensor_unref (golden_video);
  ovi_tensor_unref (golden_wav);
  ovi_test_remove_tree (model_dir);
  g_free (model_dir);
  return status;
}
