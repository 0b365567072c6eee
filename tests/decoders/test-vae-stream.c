/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: streaming decode of the video VAE, tiling, and the audio clip
 * lengths, on the golden tiny weights (OVI_GOLDEN_DIR). */
#include "ovi-engine.h"
#include "ovi-test-util.h"
#include "ovi-wan-vae.h"

#include <math.h>
#include <string.h>

/* tile 8 overlap 4 on a 12x16 latent of the tiny VAE: measured 0.302 */
#define TILING_BOUND 0.35

static char *
golden (const char *case_name, const char *file)
{
  const char *dir = g_getenv ("OVI_GOLDEN_DIR");

  g_assert_nonnull (dir);
  return g_build_filename (dir, case_name, file, NULL);
}

static OviTensor *
io_tensor (const char *name)
{
  g_autofree char *path = golden ("video_vae", "io.safetensors");
  g_autoptr (GError) error = NULL;
  g_autoptr (OviWeightFile) io = ovi_weight_file_open (path, NULL, &error);
  g_assert_no_error (error);
  g_autoptr (OviTensor) t = ovi_weight_file_get (io, name, &error);
  g_assert_no_error (error);
  /* drop the batch dim, copy to an owned f32 tensor */
  g_autoptr (OviTensor) v
      = ovi_tensor_view (t, t->ndim - 1, t->shape + 1, t->stride + 1, 0);
  OviTensor *f = ovi_tensor_to_f32 (v, &error);
  g_assert_no_error (error);
  return f;
}

typedef struct {
  OviTensor *video; /* [3, N, H, W] host */
  int groups;
  int sizes[64];
  int firsts[64];
  int stop_after; /* groups; 0 = never */
  gsize pool_after_2;
  OviWanVae *model;
} Gather;

static gboolean
gather (const OviTensor *frames, int first, gpointer user_data)
{
  Gather *g = user_data;
  int64_t n = frames->shape[1], N = g->video->shape[1];
  int64_t plane = frames->shape[2] * frames->shape[3];

  g_assert_true (ovi_tensor_is_host (frames));
  g_assert_cmpint (frames->dtype, ==, OVI_DTYPE_F32);
  g_assert_cmpint (frames->shape[0], ==, 3);
  g_assert_cmpint (first + n, <=, N);
  for (int c = 0; c < 3; c++)
    memcpy ((float *) ovi_tensor_data (g->video) + (c * N + first) * plane,
            (const float *) ovi_tensor_data (frames) + c * n * plane,
            sizeof (float) * n * plane);
  g->sizes[g->groups] = n;
  g->firsts[g->groups] = first;
  g->groups++;
  if (g->model && g->groups == 2)
    g->pool_after_2 = ovi_wan_vae_pool_bytes (g->model);
  return g->stop_after == 0 || g->groups < g->stop_after;
}

static OviTensor *
new_video (int64_t F, int64_t h, int64_t w)
{
  int64_t shape[4] = { 3, 1 + 4 * (F - 1), h * 16, w * 16 };
  return ovi_tensor_new_f32 (4, shape);
}

/* the stage streams 1, 4, 4 ... frames in order, and what it streams is the
 * whole-clip decode of the official code */
static void
test_stream_matches_whole (void)
{
  g_autofree char *wpath = golden ("video_vae", "weights.safetensors");
  g_autoptr (GError) error = NULL;
  g_autoptr (OviBackend) be = ovi_backend_new_cpu (0);
  OviVideoVae *vae = ovi_video_vae_new_from_file (wpath, be, &error);
  g_autoptr (OviTensor) z = io_tensor ("in.decode_z");
  g_autoptr (OviTensor) whole = io_tensor ("out.decode");
  Gather g = { 0 };

  g_assert_no_error (error);
  g.video = new_video (z->shape[1], z->shape[2], z->shape[3]);
  g_assert_true (ovi_video_vae_decode (vae, z, gather, &g, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g.groups, ==, z->shape[1]);
  for (int i = 0; i < g.groups; i++) {
    g_assert_cmpint (g.sizes[i], ==, i == 0 ? 1 : 4);
    g_assert_cmpint (g.firsts[i], ==, i == 0 ? 0 : 1 + 4 * (i - 1));
  }
  double rel = ovi_test_rel_l2 (g.video, whole);
  g_test_message ("streamed vs official whole-clip decode: rel_l2 %.3g", rel);
  g_assert_cmpfloat (rel, <=, 1e-4);

  /* frames handed out are final: decoding only the first 2 latent frames
   * gives bit for bit the first 5 frames of the 3-frame decode */
  {
    g_autoptr (OviTensor) z2 = ovi_tensor_narrow (z, 1, 0, 2);
    Gather g2 = { 0 };
    g2.video = new_video (2, z->shape[2], z->shape[3]);
    g_assert_true (ovi_video_vae_decode (vae, z2, gather, &g2, NULL, &error));
    g_assert_no_error (error);
    int64_t plane = g2.video->shape[2] * g2.video->shape[3];
    for (int c = 0; c < 3; c++)
      g_assert_cmpmem ((float *) ovi_tensor_data (g2.video) + c * 5 * plane,
                       5 * plane * sizeof (float),
                       (float *) ovi_tensor_data (g.video)
                           + c * g.video->shape[1] * plane,
                       5 * plane * sizeof (float));
    ovi_tensor_unref (g2.video);
  }

  /* the consumer can stop it; so can the cancellable */
  {
    Gather g3 = { 0 };
    g3.video = new_video (z->shape[1], z->shape[2], z->shape[3]);
    g3.stop_after = 1;
    g_assert_false (ovi_video_vae_decode (vae, z, gather, &g3, NULL, &error));
    g_assert_error (error, OVI_ERROR, OVI_ERROR_CANCELLED);
    g_clear_error (&error);
    g_assert_cmpint (g3.groups, ==, 1);
    g_autoptr (GCancellable) cancel = g_cancellable_new ();
    g_cancellable_cancel (cancel);
    g3.groups = 0;
    g3.stop_after = 0;
    g_assert_false (ovi_video_vae_decode (vae, z, gather, &g3, cancel, &error));
    g_assert_error (error, OVI_ERROR, OVI_ERROR_CANCELLED);
    g_clear_error (&error);
    g_assert_cmpint (g3.groups, ==, 0);
    ovi_tensor_unref (g3.video);
  }
  /* bad latent: a clear error, not a crash */
  {
    int64_t shape[4] = { 16, 2, 4, 6 };
    g_autoptr (OviTensor) bad = ovi_tensor_new_f32 (4, shape);
    Gather g4 = { 0 };
    g_assert_false (ovi_video_vae_decode (vae, bad, gather, &g4, NULL, &error));
    g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
    g_clear_error (&error);
  }
  ovi_tensor_unref (g.video);
  ovi_video_vae_free (vae);
}

/* the stepping decode hands out the same groups, bit for bit, as the
 * callback decode, even with an i2v encode run between two groups (the
 * stage is held per group); it stops at the end and on cancellation */
static void
test_stepping_decode (void)
{
  g_autofree char *wpath = golden ("video_vae", "weights.safetensors");
  g_autoptr (GError) error = NULL;
  g_autoptr (OviBackend) be = ovi_backend_new_cpu (0);
  OviVideoVae *vae = ovi_video_vae_new_from_file (wpath, be, &error);
  g_autoptr (OviTensor) z = io_tensor ("in.decode_z");
  g_autoptr (OviTensor) img4 = io_tensor ("in.encode_image");
  g_autoptr (OviTensor) img = ovi_tensor_select (img4, 1, 0);
  Gather whole = { 0 }, stepped = { 0 };
  OviTensor *frames;
  int first = -1;

  g_assert_no_error (error);
  whole.video = new_video (z->shape[1], z->shape[2], z->shape[3]);
  stepped.video = new_video (z->shape[1], z->shape[2], z->shape[3]);
  g_assert_true (ovi_video_vae_decode (vae, z, gather, &whole, NULL, &error));
  g_assert_no_error (error);
  {
    g_autoptr (OviVideoDecoding) d
        = ovi_video_vae_decode_begin (vae, z, &error);
    g_assert_no_error (error);
    while ((frames = ovi_video_vae_decode_next (d, &first, NULL, &error))) {
      gather (frames, first, &stepped);
      ovi_tensor_unref (frames);
      if (stepped.groups == 1) {
        g_autoptr (OviTensor) mu
            = ovi_video_vae_encode_image (vae, img, &error);
        g_assert_no_error (error);
        g_assert_nonnull (mu);
      }
    }
    g_assert_no_error (error);
  }
  g_assert_cmpint (stepped.groups, ==, z->shape[1]);
  for (int i = 0; i < stepped.groups; i++) {
    g_assert_cmpint (stepped.sizes[i], ==, whole.sizes[i]);
    g_assert_cmpint (stepped.firsts[i], ==, whole.firsts[i]);
  }
  g_assert_cmpmem (
      ovi_tensor_data (stepped.video), ovi_tensor_nbytes (stepped.video),
      ovi_tensor_data (whole.video), ovi_tensor_nbytes (whole.video));
  {
    g_autoptr (GCancellable) cancel = g_cancellable_new ();
    g_autoptr (OviVideoDecoding) d
        = ovi_video_vae_decode_begin (vae, z, &error);
    frames = ovi_video_vae_decode_next (d, NULL, cancel, &error);
    g_assert_nonnull (frames);
    ovi_tensor_unref (frames);
    g_cancellable_cancel (cancel);
    g_assert_null (ovi_video_vae_decode_next (d, NULL, cancel, &error));
    g_assert_error (error, OVI_ERROR, OVI_ERROR_CANCELLED);
    g_clear_error (&error);
  }
  ovi_tensor_unref (whole.video);
  ovi_tensor_unref (stepped.video);
  ovi_video_vae_free (vae);
}

/* the i2v first frame through the stage: [3, H, W] -> [48, 1, h, w] */
static void
test_encode_image_stage (void)
{
  g_autofree char *wpath = golden ("video_vae", "weights.safetensors");
  g_autoptr (GError) error = NULL;
  g_autoptr (OviBackend) be = ovi_backend_new_cpu (0);
  OviVideoVae *vae = ovi_video_vae_new_from_file (wpath, be, &error);
  g_autoptr (OviTensor) img4 = io_tensor ("in.encode_image");
  g_autoptr (OviTensor) ref = io_tensor ("out.encode_image");
  g_autoptr (OviTensor) img = ovi_tensor_select (img4, 1, 0);

  g_assert_no_error (error);
  g_autoptr (OviTensor) mu = ovi_video_vae_encode_image (vae, img, &error);
  g_assert_no_error (error);
  g_assert_true (ovi_tensor_is_host (mu));
  g_assert_cmpint (mu->ndim, ==, 4);
  g_assert_cmpint (mu->shape[0], ==, 48);
  g_assert_cmpint (mu->shape[1], ==, 1);
  g_assert_cmpint (mu->shape[2], ==, img->shape[1] / 16);
  g_assert_cmpint (mu->shape[3], ==, img->shape[2] / 16);
  double rel = ovi_test_rel_l2 (mu, ref);
  g_test_message ("stage encode_image vs official: rel_l2 %.3g", rel);
  g_assert_cmpfloat (rel, <=, 1e-4);
  /* a size the VAE cannot take */
  {
    int64_t shape[3] = { 3, 40, 64 };
    g_autoptr (OviTensor) bad = ovi_tensor_new_f32 (3, shape);
    g_assert_null (ovi_video_vae_encode_image (vae, bad, &error));
    g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
    g_clear_error (&error);
  }
  ovi_video_vae_free (vae);
}

static OviTensor *
random_latent (int64_t F, int64_t h, int64_t w, guint seed)
{
  int64_t shape[4] = { 48, F, h, w };
  OviTensor *t = ovi_tensor_new_f32 (4, shape);
  GRand *r = g_rand_new_with_seed (seed);
  float *d = ovi_tensor_data (t);

  for (int64_t i = 0; i < ovi_tensor_numel (t); i++) {
    /* Box-Muller N(0,1) */
    double u1 = g_rand_double_range (r, 1e-9, 1.0), u2 = g_rand_double (r);
    d[i] = (float) (sqrt (-2 * log (u1)) * cos (2 * G_PI * u2));
  }
  g_rand_free (r);
  return t;
}

static OviWanVae *
tiny_vae (OviBackend *be)
{
  g_autofree char *wpath = golden ("video_vae", "weights.safetensors");
  g_autoptr (GError) error = NULL;
  g_autoptr (OviWeightFile) wf = ovi_weight_file_open (wpath, NULL, &error);
  g_assert_no_error (error);
  OviWanVae *vae = ovi_wan_vae_new (wf, be, FALSE, &error);
  g_assert_no_error (error);
  return vae;
}

static OviTensor *
decode_all (OviWanVae *vae, OviTensor *z)
{
  g_autoptr (GError) error = NULL;
  Gather g = { 0 };

  g.video = new_video (z->shape[1], z->shape[2], z->shape[3]);
  g.model = vae;
  g_assert_true (ovi_wan_vae_decode (vae, z, (OviWanVaeFramesFunc) gather, &g,
                                     NULL, &error));
  g_assert_no_error (error);
  /* planned memory: nothing new is allocated after the second latent frame */
  if (z->shape[1] > 2)
    g_assert_cmpuint (ovi_wan_vae_pool_bytes (vae), ==, g.pool_after_2);
  return g.video;
}

static double
tiled_error (OviWanVae *vae, OviTensor *z, OviTensor *full, int tile,
             int overlap)
{
  ovi_wan_vae_set_tiling (vae, tile, overlap);
  g_autoptr (OviTensor) tiled = decode_all (vae, z);
  ovi_wan_vae_set_tiling (vae, 0, 0);
  double rel = ovi_test_rel_l2 (tiled, full);
  g_test_message ("tile %d overlap %d vs untiled: rel_l2 %.3e", tile, overlap,
                  rel);
  return rel;
}

/* Tiled decode (low-memory mode) against the untiled one. The tiny random
 * VAE mixes each frame globally (its attention is not near zero as a
 * trained one's is), so the bound is loose; what must hold is that a tile
 * covering the frame is exact, that the error falls with more overlap and
 * larger tiles, and stays under the measured bound. The model callback
 * hands out backend tensors; on the CPU backend those are host tensors. */
static void
test_tiling (void)
{
  g_autoptr (OviBackend) be = ovi_backend_new_cpu (0);
  g_autoptr (OviWanVae) vae = tiny_vae (be);
  g_autoptr (OviTensor) z = random_latent (3, 12, 16, 7);
  g_autoptr (OviTensor) full = decode_all (vae, z);

  ovi_wan_vae_set_tiling (vae, 16, 4);
  {
    g_autoptr (OviTensor) same = decode_all (vae, z);
    g_assert_cmpmem (ovi_tensor_data (same), ovi_tensor_nbytes (same),
                     ovi_tensor_data (full), ovi_tensor_nbytes (full));
  }
  ovi_wan_vae_set_tiling (vae, 0, 0);
  double e80 = tiled_error (vae, z, full, 8, 0);
  double e84 = tiled_error (vae, z, full, 8, 4);
  double e106 = tiled_error (vae, z, full, 10, 6);
  double e126 = tiled_error (vae, z, full, 12, 6);
  g_assert_cmpfloat (e84, >, 0.0);
  g_assert_cmpfloat (e84, <, e80);
  g_assert_cmpfloat (e106, <, e84);
  g_assert_cmpfloat (e126, <, e84);
  g_assert_cmpfloat (e84, <=, TILING_BOUND);
}

/* A copy of weight `t` (F32) of the decoder that sees no neighbouring pixel:
 * the middle attention's output projection zero (the block adds nothing),
 * and of every spatial 3x3 kernel only the centre tap kept (time taps
 * stay). Other tensors: a new reference to `t`. */
static OviTensor *
pointwise_weight (const char *name, OviTensor *t)
{
  if (g_str_has_prefix (name, "decoder.middle.1.proj.")) {
    OviTensor *zero = ovi_tensor_new_f32 (t->ndim, t->shape);
    memset (ovi_tensor_data (zero), 0, ovi_tensor_nbytes (zero));
    return zero;
  }
  if (!g_str_has_prefix (name, "decoder.") || t->ndim < 4
      || t->shape[t->ndim - 1] != 3 || t->shape[t->ndim - 2] != 3)
    return ovi_tensor_ref (t);
  g_autoptr (GError) error = NULL;
  OviTensor *c = ovi_tensor_to_f32 (t, &error);
  float *d = ovi_tensor_data (c);
  g_assert_no_error (error);
  for (int64_t i = 0; i < ovi_tensor_numel (c); i++)
    if (i % 9 != 4) /* (y, x) != (1, 1) */
      d[i] = 0.0f;
  return c;
}

/* The tiny VAE made pointwise in space (pointwise_weight), written to `dir`:
 * each output pixel then depends on its own latent pixel only, so a tiled
 * decode must equal the whole one to rounding, whatever the tiles */
static OviWanVae *
pointwise_vae (OviBackend *be, const char *dir)
{
  g_autofree char *wpath = golden ("video_vae", "weights.safetensors");
  g_autofree char *out = g_build_filename (dir, "pointwise.safetensors", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (OviWeightFile) wf = ovi_weight_file_open (wpath, NULL, &error);
  g_assert_no_error (error);
  guint n = ovi_weight_file_n_tensors (wf);
  g_autofree OviNamedTensor *named = g_new0 (OviNamedTensor, n);
  g_autoptr (GPtrArray) keep
      = g_ptr_array_new_with_free_func ((GDestroyNotify) ovi_tensor_unref);

  for (guint i = 0; i < n; i++) {
    const char *name = ovi_weight_file_name (wf, i);
    g_autoptr (OviTensor) t = ovi_weight_file_get (wf, name, &error);
    g_assert_no_error (error);
    OviTensor *p = pointwise_weight (name, t);
    g_ptr_array_add (keep, p);
    named[i] = (OviNamedTensor){ name, p };
  }
  g_assert_true (ovi_safetensors_write (out, named, n, NULL, &error));
  g_assert_no_error (error);
  g_autoptr (OviWeightFile) pw = ovi_weight_file_open (out, NULL, &error);
  g_assert_no_error (error);
  OviWanVae *vae = ovi_wan_vae_new (pw, be, FALSE, &error);
  g_assert_no_error (error);
  return vae;
}

/* Tiling checked for correctness, not only for a trend: with a decoder
 * that sees no neighbour (pointwise_vae), tile placement, blending and
 * stitching must reproduce the whole decode, for tiles that divide the
 * frame, that don't (the last tile flush), with and without overlap. */
static void
test_tiling_exact (void)
{
  g_autofree char *dir = ovi_test_make_tmp_dir ("ovi-tiling-XXXXXX");
  g_autoptr (OviBackend) be = ovi_backend_new_cpu (0);
  g_autoptr (OviWanVae) vae = pointwise_vae (be, dir);
  g_autoptr (OviTensor) z = random_latent (2, 10, 13, 11);
  g_autoptr (OviTensor) full = decode_all (vae, z);
  static const int tiles[][2] = { { 4, 0 }, { 5, 2 }, { 6, 3 }, { 8, 7 } };
  const float *v = ovi_tensor_data (full);
  double sum = 0, sumsq = 0, n = ovi_tensor_numel (full);

  /* the pointwise decoder still makes a picture, not a constant */
  for (int64_t i = 0; i < ovi_tensor_numel (full); i++) {
    sum += v[i];
    sumsq += (double) v[i] * v[i];
  }
  g_assert_cmpfloat (sqrt (sumsq / n - (sum / n) * (sum / n)), >, 0.05);
  for (gsize i = 0; i < G_N_ELEMENTS (tiles); i++)
    g_assert_cmpfloat (tiled_error (vae, z, full, tiles[i][0], tiles[i][1]), <=,
                       1e-6);
  ovi_test_remove_tree (dir);
}

typedef struct {
  OviVideoVae *vae;
  OviTensor *z;
  OviTensor *video;
  OviTensor *image;
  OviTensor *mu;
} Job;

static gpointer
decode_job (gpointer data)
{
  Job *j = data;
  g_autoptr (GError) error = NULL;
  Gather g = { 0 };

  g.video = new_video (j->z->shape[1], j->z->shape[2], j->z->shape[3]);
  if (!ovi_video_vae_decode (j->vae, j->z, gather, &g, NULL, &error))
    g_clear_pointer (&g.video, ovi_tensor_unref);
  j->video = g.video;
  return NULL;
}

static gpointer
encode_job (gpointer data)
{
  Job *j = data;
  g_autoptr (GError) error = NULL;

  j->mu = ovi_video_vae_encode_image (j->vae, j->image, &error);
  return NULL;
}

/* one stage shared by two decodes and an i2v encode at the same time
 * (ovivaedec and ovidenoise share it): the same results as alone */
static void
test_concurrent (void)
{
  g_autofree char *wpath = golden ("video_vae", "weights.safetensors");
  g_autoptr (GError) error = NULL;
  g_autoptr (OviBackend) be = ovi_backend_new_cpu (0);
  OviVideoVae *vae = ovi_video_vae_new_from_file (wpath, be, &error);
  g_autoptr (OviTensor) z = io_tensor ("in.decode_z");
  g_autoptr (OviTensor) img4 = io_tensor ("in.encode_image");
  g_autoptr (OviTensor) img = ovi_tensor_select (img4, 1, 0);
  Job jobs[3] = { { vae, z }, { vae, z }, { vae, NULL, NULL, img } };
  GThread *threads[3];

  g_assert_no_error (error);
  decode_job (&jobs[0]);
  encode_job (&jobs[2]);
  g_autoptr (OviTensor) alone = g_steal_pointer (&jobs[0].video);
  g_autoptr (OviTensor) mu_alone = g_steal_pointer (&jobs[2].mu);
  g_assert_nonnull (alone);
  g_assert_nonnull (mu_alone);
  threads[0] = g_thread_new ("dec0", decode_job, &jobs[0]);
  threads[1] = g_thread_new ("dec1", decode_job, &jobs[1]);
  threads[2] = g_thread_new ("enc", encode_job, &jobs[2]);
  for (int i = 0; i < 3; i++)
    g_thread_join (threads[i]);
  for (int i = 0; i < 2; i++) {
    g_assert_nonnull (jobs[i].video);
    g_assert_cmpmem (ovi_tensor_data (jobs[i].video),
                     ovi_tensor_nbytes (jobs[i].video), ovi_tensor_data (alone),
                     ovi_tensor_nbytes (alone));
    ovi_tensor_unref (jobs[i].video);
  }
  g_assert_nonnull (jobs[2].mu);
  g_assert_cmpmem (ovi_tensor_data (jobs[2].mu), ovi_tensor_nbytes (jobs[2].mu),
                   ovi_tensor_data (mu_alone), ovi_tensor_nbytes (mu_alone));
  ovi_tensor_unref (jobs[2].mu);
  ovi_video_vae_free (vae);
}

/* the official clip lengths: 157 latents -> 80384 samples, 314 -> 160768 */
static void
test_audio_lengths (void)
{
  g_autofree char *vae_path = golden ("audio", "vae_weights.safetensors");
  g_autofree char *voc_path = golden ("audio", "vocoder_weights.safetensors");
  g_autoptr (GError) error = NULL;
  g_autoptr (OviBackend) be = ovi_backend_new_cpu (0);
  OviAudioDecoder *dec
      = ovi_audio_decoder_new_from_files (vae_path, voc_path, be, &error);
  const int lengths[] = { 157, 314 };

  g_assert_no_error (error);
  for (guint i = 0; i < G_N_ELEMENTS (lengths); i++) {
    int64_t shape[2] = { lengths[i], 20 };
    g_autoptr (OviTensor) z = ovi_tensor_new_f32 (2, shape);
    GRand *r = g_rand_new_with_seed (11 + i);
    for (int64_t j = 0; j < ovi_tensor_numel (z); j++)
      ((float *) ovi_tensor_data (z))[j] = g_rand_double_range (r, -2, 2);
    g_rand_free (r);
    g_autoptr (OviTensor) wav = ovi_audio_decoder_decode (dec, z, NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpint (wav->ndim, ==, 1);
    g_assert_cmpint (wav->shape[0], ==, lengths[i] * 512);
    const float *d = ovi_tensor_data (wav);
    for (int64_t j = 0; j < wav->shape[0]; j++)
      g_assert_true (isfinite (d[j]) && fabsf (d[j]) <= 1.0f);
  }
  {
    int64_t shape[2] = { 10, 16 };
    g_autoptr (OviTensor) bad = ovi_tensor_new_f32 (2, shape);
    g_assert_null (ovi_audio_decoder_decode (dec, bad, NULL, &error));
    g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  }
  ovi_audio_decoder_free (dec);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/decoders/video-stream-matches-whole",
                   test_stream_matches_whole);
  g_test_add_func ("/decoders/video-stepping-decode", test_stepping_decode);
  g_test_add_func ("/decoders/video-encode-image", test_encode_image_stage);
  g_test_add_func ("/decoders/video-tiling", test_tiling);
  g_test_add_func ("/decoders/video-tiling-exact", test_tiling_exact);
  g_test_add_func ("/decoders/video-concurrent", test_concurrent);
  g_test_add_func ("/decoders/audio-clip-lengths", test_audio_lengths);
  return g_test_run ();
}
