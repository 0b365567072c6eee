/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the tiny model writer (see ovi-tiny.h, docs/tiny-model.md). */
#include "ovi-tiny.h"

#include "ovi-config.h"
#include "ovi-error.h"
#include "ovi-weights.h"

#if defined(__has_include)
#if __has_include("ovi-spm-writer.h")
#include "ovi-spm-writer.h"
#define OVI_TINY_HAVE_SPM_WRITER 1
#endif
#endif

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static const char *const file_paths[OVI_TINY_N_WEIGHT_FILES] = {
  [OVI_TINY_FILE_FUSION] = "Ovi/model.safetensors",
  [OVI_TINY_FILE_T5] = "Wan2.2-TI2V-5B/models_t5_umt5-xxl-enc-bf16.pth",
  [OVI_TINY_FILE_VAE] = "Wan2.2-TI2V-5B/Wan2.2_VAE.pth",
  [OVI_TINY_FILE_AUDIO_VAE] = "MMAudio/ext_weights/v1-16.pth",
  [OVI_TINY_FILE_VOCODER] = "MMAudio/ext_weights/best_netG.pt",
};

#define SPIECE_PATH "Wan2.2-TI2V-5B/google/umt5-xxl/spiece.model"

const char *
ovi_tiny_file_path (OviTinyFile file)
{
  if ((int) file < 0 || file >= OVI_TINY_N_WEIGHT_FILES)
    return NULL;
  return file_paths[file];
}

void
ovi_tiny_config_init (OviTinyConfig *cfg)
{
  memset (cfg, 0, sizeof *cfg);
  cfg->dit_dim = 64;
  cfg->dit_ffn_dim = 128;
  cfg->dit_heads = 2;
  cfg->dit_layers = 3;
  cfg->dit_freq_dim = 256;
  cfg->video_channels = 48;
  cfg->audio_channels = 20;
  cfg->t5_vocab = 1024;
  cfg->t5_dim = 64;
  cfg->t5_dim_attn = 64;
  cfg->t5_ffn = 128;
  cfg->t5_heads = 2;
  cfg->t5_layers = 2;
  cfg->t5_buckets = 32;
  cfg->vae_dim = 4;
  cfg->vae_dec_dim = 8;
  cfg->vae_z_dim = 48;
  cfg->audio_vae_hidden = 8;
  cfg->audio_vae_embed = 20;
  cfg->audio_vae_data_dim = 80;
  cfg->vocoder_initial_channel = 64;
  cfg->vocoder_legacy_weight_norm = TRUE;
  cfg->fusion_dtype = OVI_DTYPE_BF16;
  cfg->t5_dtype = OVI_DTYPE_BF16;
}

/* ---- tensor lists ---- */

static void
spec_free (gpointer p)
{
  OviTinyTensorSpec *s = p;

  g_free (s->name);
  g_free (s);
}

/* add (printf-formatted name, ndim, dims...) */
static void G_GNUC_PRINTF (2, 5)
    add (GPtrArray *list, const char *fmt, int ndim, const int64_t *shape, ...)
{
  OviTinyTensorSpec *s = g_new0 (OviTinyTensorSpec, 1);
  va_list args;

  va_start (args, shape);
  s->name = g_strdup_vprintf (fmt, args);
  va_end (args);
  s->ndim = ndim;
  for (int i = 0; i < ndim; i++)
    s->shape[i] = shape[i];
  g_ptr_array_add (list, s);
}

#define SHAPE(...) ((const int64_t[]){ __VA_ARGS__ })

static void
add_linear (GPtrArray *l, const char *prefix, int64_t out, int64_t in,
            gboolean bias)
{
  add (l, "%s.weight", 2, SHAPE (out, in), prefix);
  if (bias)
    add (l, "%s.bias", 1, SHAPE (out), prefix);
}

static void
list_fusion_tower (GPtrArray *l, const OviTinyConfig *c, gboolean video)
{
  const char *p = video ? "video_model" : "audio_model";
  int64_t d = c->dit_dim;
  int64_t ch = video ? c->video_channels : c->audio_channels;
  int64_t text_dim = c->t5_dim;
  g_autofree char *pre = NULL;

  if (video) {
    add (l, "%s.patch_embedding.weight", 5, SHAPE (d, ch, 1, 2, 2), p);
    add (l, "%s.patch_embedding.bias", 1, SHAPE (d), p);
  } else {
    /* ConvMLP(dim, 4 dim): hidden int(2*4dim/3) rounded up to 256 */
    int64_t hid = (int64_t) (2 * (4 * d) / 3);
    hid = 256 * ((hid + 255) / 256);
    add (l, "%s.patch_embedding.0.weight", 3, SHAPE (d, ch, 7), p);
    add (l, "%s.patch_embedding.0.bias", 1, SHAPE (d), p);
    add (l, "%s.patch_embedding.2.w1.weight", 3, SHAPE (hid, d, 7), p);
    add (l, "%s.patch_embedding.2.w2.weight", 3, SHAPE (d, hid, 7), p);
    add (l, "%s.patch_embedding.2.w3.weight", 3, SHAPE (hid, d, 7), p);
  }
  pre = g_strdup_printf ("%s.text_embedding.0", p);
  add_linear (l, pre, d, text_dim, TRUE);
  g_free (pre);
  pre = g_strdup_printf ("%s.text_embedding.2", p);
  add_linear (l, pre, d, d, TRUE);
  g_free (pre);
  pre = g_strdup_printf ("%s.time_embedding.0", p);
  add_linear (l, pre, d, c->dit_freq_dim, TRUE);
  g_free (pre);
  pre = g_strdup_printf ("%s.time_embedding.2", p);
  add_linear (l, pre, d, d, TRUE);
  g_free (pre);
  pre = g_strdup_printf ("%s.time_projection.1", p);
  add_linear (l, pre, 6 * d, d, TRUE);
  g_clear_pointer (&pre, g_free);

  for (int n = 0; n < c->dit_layers; n++) {
    static const char *const qkvo[] = { "q", "k", "v", "o" };
    g_autofree char *b = g_strdup_printf ("%s.blocks.%d", p, n);

    for (int i = 0; i < 4; i++) {
      g_autofree char *x = g_strdup_printf ("%s.self_attn.%s", b, qkvo[i]);
      add_linear (l, x, d, d, TRUE);
    }
    add (l, "%s.self_attn.norm_q.weight", 1, SHAPE (d), b);
    add (l, "%s.self_attn.norm_k.weight", 1, SHAPE (d), b);
    add (l, "%s.norm3.weight", 1, SHAPE (d), b);
    add (l, "%s.norm3.bias", 1, SHAPE (d), b);
    for (int i = 0; i < 4; i++) {
      g_autofree char *x = g_strdup_printf ("%s.cross_attn.%s", b, qkvo[i]);
      add_linear (l, x, d, d, TRUE);
    }
    add (l, "%s.cross_attn.norm_q.weight", 1, SHAPE (d), b);
    add (l, "%s.cross_attn.norm_k.weight", 1, SHAPE (d), b);
    {
      g_autofree char *kf = g_strdup_printf ("%s.cross_attn.k_fusion", b);
      g_autofree char *vf = g_strdup_printf ("%s.cross_attn.v_fusion", b);
      add_linear (l, kf, d, d, TRUE);
      add_linear (l, vf, d, d, TRUE);
    }
    add (l, "%s.cross_attn.pre_attn_norm_fusion.weight", 1, SHAPE (d), b);
    add (l, "%s.cross_attn.pre_attn_norm_fusion.bias", 1, SHAPE (d), b);
    add (l, "%s.cross_attn.norm_k_fusion.weight", 1, SHAPE (d), b);
    {
      g_autofree char *f0 = g_strdup_printf ("%s.ffn.0", b);
      g_autofree char *f2 = g_strdup_printf ("%s.ffn.2", b);
      add_linear (l, f0, c->dit_ffn_dim, d, TRUE);
      add_linear (l, f2, d, c->dit_ffn_dim, TRUE);
    }
    add (l, "%s.modulation.modulation", 3, SHAPE (1, 6, d), b);
  }
  pre = g_strdup_printf ("%s.head.head", p);
  add_linear (l, pre, video ? ch * 4 : ch, d, TRUE);
  add (l, "%s.head.modulation", 3, SHAPE (1, 2, d), p);
}

static void
list_t5 (GPtrArray *l, const OviTinyConfig *c)
{
  int64_t d = c->t5_dim, da = c->t5_dim_attn, f = c->t5_ffn;

  add (l, "token_embedding.weight", 2, SHAPE (c->t5_vocab, d));
  for (int n = 0; n < c->t5_layers; n++) {
    add (l, "blocks.%d.norm1.weight", 1, SHAPE (d), n);
    add (l, "blocks.%d.attn.q.weight", 2, SHAPE (da, d), n);
    add (l, "blocks.%d.attn.k.weight", 2, SHAPE (da, d), n);
    add (l, "blocks.%d.attn.v.weight", 2, SHAPE (da, d), n);
    add (l, "blocks.%d.attn.o.weight", 2, SHAPE (d, da), n);
    add (l, "blocks.%d.norm2.weight", 1, SHAPE (d), n);
    add (l, "blocks.%d.ffn.gate.0.weight", 2, SHAPE (f, d), n);
    add (l, "blocks.%d.ffn.fc1.weight", 2, SHAPE (f, d), n);
    add (l, "blocks.%d.ffn.fc2.weight", 2, SHAPE (d, f), n);
    add (l, "blocks.%d.pos_embedding.embedding.weight", 2,
         SHAPE (c->t5_buckets, c->t5_heads), n);
  }
  add (l, "norm.weight", 1, SHAPE (d));
}

static void
vae_conv3 (GPtrArray *l, const char *p, int64_t out, int64_t in, int k)
{
  if (k == 3)
    add (l, "%s.weight", 5, SHAPE (out, in, 3, 3, 3), p);
  else
    add (l, "%s.weight", 5, SHAPE (out, in, 1, 1, 1), p);
  add (l, "%s.bias", 1, SHAPE (out), p);
}

static void
vae_resblock (GPtrArray *l, const char *p, int64_t in, int64_t out)
{
  g_autofree char *c2 = g_strdup_printf ("%s.residual.2", p);
  g_autofree char *c6 = g_strdup_printf ("%s.residual.6", p);
  g_autofree char *sc = g_strdup_printf ("%s.shortcut", p);

  add (l, "%s.residual.0.gamma", 4, SHAPE (in, 1, 1, 1), p);
  vae_conv3 (l, c2, out, in, 3);
  add (l, "%s.residual.3.gamma", 4, SHAPE (out, 1, 1, 1), p);
  vae_conv3 (l, c6, out, out, 3);
  if (in != out)
    vae_conv3 (l, sc, out, in, 1);
}

static void
vae_attn (GPtrArray *l, const char *p, int64_t c)
{
  add (l, "%s.norm.gamma", 3, SHAPE (c, 1, 1), p);
  add (l, "%s.to_qkv.weight", 4, SHAPE (3 * c, c, 1, 1), p);
  add (l, "%s.to_qkv.bias", 1, SHAPE (3 * c), p);
  add (l, "%s.proj.weight", 4, SHAPE (c, c, 1, 1), p);
  add (l, "%s.proj.bias", 1, SHAPE (c), p);
}

static void
vae_middle (GPtrArray *l, const char *p, int64_t c)
{
  g_autofree char *m0 = g_strdup_printf ("%s.middle.0", p);
  g_autofree char *m1 = g_strdup_printf ("%s.middle.1", p);
  g_autofree char *m2 = g_strdup_printf ("%s.middle.2", p);

  vae_resblock (l, m0, c, c);
  vae_attn (l, m1, c);
  vae_resblock (l, m2, c, c);
}

/* Wan2.2 VAE: dim_mult [1,2,4,4], 2 res blocks, temporal down [F,T,T] */
static void
list_vae (GPtrArray *l, const OviTinyConfig *c)
{
  static const int mult[4] = { 1, 2, 4, 4 };
  static const gboolean tdown[3] = { FALSE, TRUE, TRUE };
  int64_t z = c->vae_z_dim;
  int64_t ed[5], dd[5];

  ed[0] = c->vae_dim;
  for (int i = 0; i < 4; i++)
    ed[i + 1] = (int64_t) c->vae_dim * mult[i];
  dd[0] = (int64_t) c->vae_dec_dim * mult[3];
  for (int i = 0; i < 4; i++)
    dd[i + 1] = (int64_t) c->vae_dec_dim * mult[3 - i];

  /* encoder */
  vae_conv3 (l, "encoder.conv1", ed[0], 12, 3);
  for (int i = 0; i < 4; i++) {
    int64_t in = ed[i], out = ed[i + 1];
    for (int j = 0; j < 2; j++) {
      g_autofree char *p
          = g_strdup_printf ("encoder.downsamples.%d.downsamples.%d", i, j);
      vae_resblock (l, p, j == 0 ? in : out, out);
    }
    if (i != 3) {
      g_autofree char *r
          = g_strdup_printf ("encoder.downsamples.%d.downsamples.2", i);
      add (l, "%s.resample.1.weight", 4, SHAPE (out, out, 3, 3), r);
      add (l, "%s.resample.1.bias", 1, SHAPE (out), r);
      if (tdown[i]) {
        add (l, "%s.time_conv.weight", 5, SHAPE (out, out, 3, 1, 1), r);
        add (l, "%s.time_conv.bias", 1, SHAPE (out), r);
      }
    }
  }
  vae_middle (l, "encoder", ed[4]);
  add (l, "encoder.head.0.gamma", 4, SHAPE (ed[4], 1, 1, 1));
  vae_conv3 (l, "encoder.head.2", 2 * z, ed[4], 3);
  vae_conv3 (l, "conv1", 2 * z, 2 * z, 1);
  vae_conv3 (l, "conv2", z, z, 1);

  /* decoder */
  vae_conv3 (l, "decoder.conv1", dd[0], z, 3);
  vae_middle (l, "decoder", dd[0]);
  for (int i = 0; i < 4; i++) {
    int64_t in = dd[i], out = dd[i + 1];
    for (int j = 0; j < 3; j++) {
      g_autofree char *p
          = g_strdup_printf ("decoder.upsamples.%d.upsamples.%d", i, j);
      vae_resblock (l, p, j == 0 ? in : out, out);
    }
    if (i != 3) {
      g_autofree char *r
          = g_strdup_printf ("decoder.upsamples.%d.upsamples.3", i);
      /* temporal up [T,T,F]: the time conv doubles the channels */
      if (i < 2) {
        add (l, "%s.time_conv.weight", 5, SHAPE (2 * out, out, 3, 1, 1), r);
        add (l, "%s.time_conv.bias", 1, SHAPE (2 * out), r);
      }
      add (l, "%s.resample.1.weight", 4, SHAPE (out, out, 3, 3), r);
      add (l, "%s.resample.1.bias", 1, SHAPE (out), r);
    }
  }
  add (l, "decoder.head.0.gamma", 4, SHAPE (dd[4], 1, 1, 1));
  vae_conv3 (l, "decoder.head.2", 12, dd[4], 3);
}

static void
mp_resblock (GPtrArray *l, const char *p, int64_t in, int64_t out)
{
  add (l, "%s.conv1.weight", 3, SHAPE (out, in, 3), p);
  add (l, "%s.conv2.weight", 3, SHAPE (out, out, 3), p);
  if (in != out)
    add (l, "%s.nin_shortcut.weight", 3, SHAPE (out, in, 1), p);
}

static void
mp_mid (GPtrArray *l, const char *p, int64_t c)
{
  g_autofree char *b1 = g_strdup_printf ("%s.mid.block_1", p);
  g_autofree char *b2 = g_strdup_printf ("%s.mid.block_2", p);

  mp_resblock (l, b1, c, c);
  add (l, "%s.mid.attn_1.qkv.weight", 3, SHAPE (3 * c, c, 1), p);
  add (l, "%s.mid.attn_1.proj_out.weight", 3, SHAPE (c, c, 1), p);
  mp_resblock (l, b2, c, c);
}

/* MMAudio VAE (16k): ch_mult (1,2,4), 2 res blocks, down_layers [0] */
static void
list_audio_vae (GPtrArray *l, const OviTinyConfig *c)
{
  static const int mult[3] = { 1, 2, 4 };
  int64_t h = c->audio_vae_hidden, e = c->audio_vae_embed;
  int64_t dd = c->audio_vae_data_dim;
  int64_t block_in;

  add (l, "data_mean", 3, SHAPE (1, dd, 1));
  add (l, "data_std", 3, SHAPE (1, dd, 1));

  add (l, "encoder.learnable_gain", 0, SHAPE (0));
  add (l, "encoder.conv_in.weight", 3, SHAPE (h, dd, 3));
  block_in = h;
  for (int i = 0; i < 3; i++) {
    int64_t out = h * mult[i];
    for (int j = 0; j < 2; j++) {
      g_autofree char *p = g_strdup_printf ("encoder.down.%d.block.%d", i, j);
      mp_resblock (l, p, block_in, out);
      block_in = out;
    }
    if (i == 0) {
      add (l, "encoder.down.%d.downsample.conv1.weight", 3,
           SHAPE (block_in, block_in, 1), i);
      add (l, "encoder.down.%d.downsample.conv2.weight", 3,
           SHAPE (block_in, block_in, 1), i);
    }
  }
  mp_mid (l, "encoder", block_in);
  add (l, "encoder.conv_out.weight", 3, SHAPE (2 * e, block_in, 3));

  add (l, "decoder.learnable_gain", 0, SHAPE (0));
  block_in = h * mult[2];
  add (l, "decoder.conv_in.weight", 3, SHAPE (block_in, e, 3));
  mp_mid (l, "decoder", block_in);
  /* registered as up.2, up.1, up.0 in construction order; list by index */
  {
    int64_t ins[3];
    int64_t bi = block_in;
    for (int i = 2; i >= 0; i--) {
      ins[i] = bi;
      bi = h * mult[i];
    }
    for (int i = 0; i < 3; i++) {
      int64_t out = h * mult[i], in = ins[i];
      for (int j = 0; j < 3; j++) {
        g_autofree char *p = g_strdup_printf ("decoder.up.%d.block.%d", i, j);
        mp_resblock (l, p, j == 0 ? in : out, out);
      }
      if (i == 1)
        add (l, "decoder.up.%d.upsample.conv.weight", 3, SHAPE (out, out, 3),
             i);
    }
  }
  add (l, "decoder.conv_out.weight", 3, SHAPE (dd, h, 3));
}

static void
wn_conv (GPtrArray *l, const OviTinyConfig *c, const char *p, int64_t d0,
         int64_t d1, int64_t k, int64_t bias)
{
  add (l, "%s.bias", 1, SHAPE (bias), p);
  if (c->vocoder_legacy_weight_norm) {
    add (l, "%s.weight_g", 3, SHAPE (d0, 1, 1), p);
    add (l, "%s.weight_v", 3, SHAPE (d0, d1, k), p);
  } else {
    add (l, "%s.parametrizations.weight.original0", 3, SHAPE (d0, 1, 1), p);
    add (l, "%s.parametrizations.weight.original1", 3, SHAPE (d0, d1, k), p);
  }
}

static void
snake_act (GPtrArray *l, const char *p, int64_t ch)
{
  add (l, "%s.act.alpha", 1, SHAPE (ch), p);
  add (l, "%s.act.beta", 1, SHAPE (ch), p);
  add (l, "%s.upsample.filter", 3, SHAPE (1, 1, 12), p);
  add (l, "%s.downsample.lowpass.filter", 3, SHAPE (1, 1, 12), p);
}

/* BigVGAN v1 16k: rates 4,4,2,2,2,2, kernels 8,8,4,4,4,4, MRF 3/7/11 */
static void
list_vocoder (GPtrArray *l, const OviTinyConfig *c)
{
  static const int kernels[6] = { 8, 8, 4, 4, 4, 4 };
  static const int rb_k[3] = { 3, 7, 11 };
  int64_t c0 = c->vocoder_initial_channel;

  wn_conv (l, c, "conv_pre", c0, 80, 7, c0);
  for (int i = 0; i < 6; i++) {
    g_autofree char *p = g_strdup_printf ("ups.%d.0", i);
    int64_t cin = c0 >> i, cout = c0 >> (i + 1);
    /* ConvTranspose1d weight [in, out, k]; weight norm over dim 0 */
    wn_conv (l, c, p, cin, cout, kernels[i], cout);
  }
  for (int i = 0; i < 6; i++) {
    int64_t ch = c0 >> (i + 1);
    for (int j = 0; j < 3; j++) {
      int r = 3 * i + j;
      for (int k = 0; k < 3; k++) {
        g_autofree char *p1 = g_strdup_printf ("resblocks.%d.convs1.%d", r, k);
        wn_conv (l, c, p1, ch, ch, rb_k[j], ch);
      }
      for (int k = 0; k < 3; k++) {
        g_autofree char *p2 = g_strdup_printf ("resblocks.%d.convs2.%d", r, k);
        wn_conv (l, c, p2, ch, ch, rb_k[j], ch);
      }
      for (int a = 0; a < 6; a++) {
        g_autofree char *pa
            = g_strdup_printf ("resblocks.%d.activations.%d", r, a);
        snake_act (l, pa, ch);
      }
    }
  }
  snake_act (l, "activation_post", c0 >> 6);
  wn_conv (l, c, "conv_post", 1, c0 >> 6, 7, 1);
}

GPtrArray *
ovi_tiny_list_tensors (const OviTinyConfig *cfg, OviTinyFile file)
{
  GPtrArray *l = g_ptr_array_new_with_free_func (spec_free);

  switch (file) {
    case OVI_TINY_FILE_FUSION:
      list_fusion_tower (l, cfg, TRUE);
      list_fusion_tower (l, cfg, FALSE);
      break;
    case OVI_TINY_FILE_T5:
      list_t5 (l, cfg);
      break;
    case OVI_TINY_FILE_VAE:
      list_vae (l, cfg);
      break;
    case OVI_TINY_FILE_AUDIO_VAE:
      list_audio_vae (l, cfg);
      break;
    case OVI_TINY_FILE_VOCODER:
      list_vocoder (l, cfg);
      break;
    default:
      break;
  }
  return l;
}

/* ---- deterministic random numbers ---- */

typedef struct {
  guint64 state;
} Rng;

static guint64
splitmix64 (Rng *r)
{
  guint64 z = (r->state += G_GUINT64_CONSTANT (0x9E3779B97F4A7C15));

  z = (z ^ (z >> 30)) * G_GUINT64_CONSTANT (0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * G_GUINT64_CONSTANT (0x94D049BB133111EB);
  return z ^ (z >> 31);
}

/* uniform in (0, 1] */
static double
rng_uniform (Rng *r)
{
  return ((splitmix64 (r) >> 11) + 1) * (1.0 / 9007199254740992.0);
}

static double
rng_normal (Rng *r)
{
  double u1 = rng_uniform (r), u2 = rng_uniform (r);

  return sqrt (-2.0 * log (u1)) * cos (2.0 * G_PI * u2);
}

/* one stream per (seed, file, tensor name) */
static void
rng_init (Rng *r, guint64 seed, OviTinyFile file, const char *name)
{
  guint64 h = G_GUINT64_CONSTANT (0xcbf29ce484222325);

  for (const char *p = name; *p; p++) {
    h ^= (guchar) *p;
    h *= G_GUINT64_CONSTANT (0x100000001b3);
  }
  r->state = seed ^ (h + (guint64) file * G_GUINT64_CONSTANT (0x9E37));
  splitmix64 (r);
}

/* ---- constants from the official code ---- */

/* MMAudio 80-bin log-mel statistics (DATA_MEAN_80D / DATA_STD_80D) */
static const float mel_mean_80[80] = {
  -1.6058, -1.3676, -1.2520, -1.2453, -1.2078, -1.2224, -1.2419, -1.2439,
  -1.2922, -1.2927, -1.3170, -1.3543, -1.3401, -1.3836, -1.3907, -1.3912,
  -1.4313, -1.4152, -1.4527, -1.4728, -1.4568, -1.5101, -1.5051, -1.5172,
  -1.5623, -1.5373, -1.5746, -1.5687, -1.6032, -1.6131, -1.6081, -1.6331,
  -1.6489, -1.6489, -1.6700, -1.6738, -1.6953, -1.6969, -1.7048, -1.7280,
  -1.7361, -1.7495, -1.7658, -1.7814, -1.7889, -1.8064, -1.8221, -1.8377,
  -1.8417, -1.8643, -1.8857, -1.8929, -1.9173, -1.9379, -1.9531, -1.9673,
  -1.9824, -2.0042, -2.0215, -2.0436, -2.0766, -2.1064, -2.1418, -2.1855,
  -2.2319, -2.2767, -2.3161, -2.3572, -2.3954, -2.4282, -2.4659, -2.5072,
  -2.5552, -2.6074, -2.6584, -2.7107, -2.7634, -2.8266, -2.8981, -2.9673,
};

static const float mel_std_80[80] = {
  1.0291, 1.0411, 1.0043, 0.9820, 0.9677, 0.9543, 0.9450, 0.9392, 0.9343,
  0.9297, 0.9276, 0.9263, 0.9242, 0.9254, 0.9232, 0.9281, 0.9263, 0.9315,
  0.9274, 0.9247, 0.9277, 0.9199, 0.9188, 0.9194, 0.9160, 0.9161, 0.9146,
  0.9161, 0.9100, 0.9095, 0.9145, 0.9076, 0.9066, 0.9095, 0.9032, 0.9043,
  0.9038, 0.9011, 0.9019, 0.9010, 0.8984, 0.8983, 0.8986, 0.8961, 0.8962,
  0.8978, 0.8962, 0.8973, 0.8993, 0.8976, 0.8995, 0.9016, 0.8982, 0.8972,
  0.8974, 0.8949, 0.8940, 0.8947, 0.8936, 0.8939, 0.8951, 0.8956, 0.9017,
  0.9167, 0.9436, 0.9690, 1.0003, 1.0225, 1.0381, 1.0491, 1.0545, 1.0604,
  1.0761, 1.0929, 1.1089, 1.1196, 1.1176, 1.1156, 1.1117, 1.1070,
};

/* modified Bessel function of the first kind, order 0 (power series) */
static double
bessel_i0 (double x)
{
  double sum = 1.0, term = 1.0, q = x * x / 4.0;

  for (int k = 1; k < 200; k++) {
    term *= q / ((double) k * k);
    sum += term;
    if (term < sum * 1e-17)
      break;
  }
  return sum;
}

/* BigVGAN's anti-alias filter: kaiser_sinc_filter1d(cutoff 0.5/2,
 * half_width 0.6/2, 12 taps), normalised to sum 1 (alias_free_torch) */
static void
kaiser_sinc_12 (float out[12])
{
  const int ks = 12, half = ks / 2;
  const double cutoff = 0.25, half_width = 0.3;
  double delta_f = 4 * half_width;
  double a = 2.285 * (half - 1) * G_PI * delta_f + 7.95;
  double beta, sum = 0, f[12];

  if (a > 50.)
    beta = 0.1102 * (a - 8.7);
  else if (a >= 21.)
    beta = 0.5842 * pow (a - 21, 0.4) + 0.07886 * (a - 21.);
  else
    beta = 0.;
  for (int n = 0; n < ks; n++) {
    /* symmetric Kaiser window of length ks */
    double r = 2.0 * n / (ks - 1) - 1.0;
    double w
        = bessel_i0 (beta * sqrt (MAX (0.0, 1.0 - r * r))) / bessel_i0 (beta);
    double t = (n - half) + 0.5; /* even kernel: arange(-6, 6) + 0.5 */
    double x = 2 * cutoff * t;
    double s = x == 0 ? 1.0 : sin (G_PI * x) / (G_PI * x);
    f[n] = 2 * cutoff * w * s;
    sum += f[n];
  }
  for (int n = 0; n < ks; n++)
    out[n] = (float) (f[n] / sum);
}

/* ---- values ---- */

static gboolean
ends_with (const char *s, const char *suffix)
{
  return g_str_has_suffix (s, suffix);
}

static double
fan_in (const OviTinyTensorSpec *s)
{
  int64_t n = 1;

  for (int i = 1; i < s->ndim; i++)
    n *= s->shape[i];
  return (double) n;
}

/* fills v[numel] for one tensor (golden README §1 rules) */
static void
fill_values (const OviTinyConfig *c, OviTinyFile file,
             const OviTinyTensorSpec *s, guint64 seed, float *v, int64_t numel)
{
  const char *name = s->name;
  Rng r;

  rng_init (&r, seed, file, name);

  /* constants first */
  if (file == OVI_TINY_FILE_AUDIO_VAE
      && (strcmp (name, "data_mean") == 0 || strcmp (name, "data_std") == 0)) {
    gboolean mean = strcmp (name, "data_mean") == 0;
    for (int64_t i = 0; i < numel; i++) {
      if (numel == 80)
        v[i] = mean ? mel_mean_80[i] : mel_std_80[i];
      else /* other widths: plausible stand-ins */
        v[i] = mean ? -1.5f - (float) i / numel : 1.0f;
    }
    return;
  }
  if (ends_with (name, ".filter")) {
    float f[12];
    kaiser_sinc_12 (f);
    for (int64_t i = 0; i < numel; i++)
      v[i] = f[i % 12];
    return;
  }

  if (file == OVI_TINY_FILE_VOCODER) {
    if (ends_with (name, "weight_g") || ends_with (name, "original0")) {
      for (int64_t i = 0; i < numel; i++)
        v[i] = (float) (0.75 * (1.0 + 0.1 * rng_normal (&r)));
    } else if (ends_with (name, "weight_v") || ends_with (name, "original1")) {
      for (int64_t i = 0; i < numel; i++)
        v[i] = (float) rng_normal (&r);
    } else if (ends_with (name, ".alpha") || ends_with (name, ".beta")) {
      for (int64_t i = 0; i < numel; i++)
        v[i] = (float) (0.2 * rng_normal (&r));
    } else { /* biases */
      for (int64_t i = 0; i < numel; i++)
        v[i] = (float) (0.05 * rng_normal (&r));
    }
    return;
  }
  if (file == OVI_TINY_FILE_AUDIO_VAE) {
    double scale = ends_with (name, "learnable_gain") ? 0.1 : 1.0;
    for (int64_t i = 0; i < numel; i++)
      v[i] = (float) (scale * rng_normal (&r));
    return;
  }

  if (ends_with (name, "bias")) {
    for (int64_t i = 0; i < numel; i++)
      v[i] = (float) (0.05 * rng_normal (&r));
  } else if (ends_with (name, "gamma")) {
    for (int64_t i = 0; i < numel; i++)
      v[i] = (float) (1.0 + 0.1 * rng_normal (&r));
  } else if (ends_with (name, "modulation")) {
    double sc = 1.0 / sqrt ((double) s->shape[s->ndim - 1]);
    for (int64_t i = 0; i < numel; i++)
      v[i] = (float) (sc * rng_normal (&r));
  } else if (file == OVI_TINY_FILE_T5
             && strcmp (name, "token_embedding.weight") == 0) {
    for (int64_t i = 0; i < numel; i++)
      v[i] = (float) rng_normal (&r);
  } else if (ends_with (name, "pos_embedding.embedding.weight")) {
    for (int64_t i = 0; i < numel; i++)
      v[i] = (float) (0.5 * rng_normal (&r));
  } else if (s->ndim == 0) {
    v[0] = (float) (0.1 * rng_normal (&r));
  } else if (s->ndim == 1) {
    for (int64_t i = 0; i < numel; i++)
      v[i] = (float) (1.0 + 0.1 * rng_normal (&r));
  } else {
    double sc = 1.0 / sqrt (fan_in (s));
    if (file == OVI_TINY_FILE_T5 && ends_with (name, ".attn.q.weight"))
      sc /= sqrt ((double) c->t5_dim_attn / c->t5_heads);
    if (file == OVI_TINY_FILE_VAE
        && strcmp (name, "decoder.head.2.weight") == 0)
      sc *= 0.5;
    for (int64_t i = 0; i < numel; i++)
      v[i] = (float) (sc * rng_normal (&r));
  }
}

static OviTensor *
make_tensor (const OviTinyConfig *c, OviTinyFile file,
             const OviTinyTensorSpec *s, guint64 seed, OviDType dtype,
             GError **error)
{
  g_autoptr (OviTensor) t = ovi_tensor_new (dtype, s->ndim, s->shape, error);
  g_autofree float *v = NULL;
  int64_t numel;

  if (t == NULL)
    return NULL;
  numel = ovi_tensor_numel (t);
  v = g_new (float, MAX (numel, 1));
  fill_values (c, file, s, seed, v, numel);
  if (dtype == OVI_DTYPE_F32) {
    memcpy (ovi_tensor_data (t), v, numel * sizeof (float));
  } else if (dtype == OVI_DTYPE_BF16) {
    uint16_t *d = ovi_tensor_data (t);
    for (int64_t i = 0; i < numel; i++)
      d[i] = ovi_f32_to_bf16 (v[i]);
  } else if (dtype == OVI_DTYPE_F16) {
    uint16_t *d = ovi_tensor_data (t);
    for (int64_t i = 0; i < numel; i++)
      d[i] = ovi_f32_to_f16 (v[i]);
  } else {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "tiny model: dtype %s is not supported for weights",
                 ovi_dtype_name (dtype));
    return NULL;
  }
  return g_steal_pointer (&t);
}

static int
cmp_spec_name (gconstpointer a, gconstpointer b)
{
  const OviTinyTensorSpec *x = *(OviTinyTensorSpec *const *) a;
  const OviTinyTensorSpec *y = *(OviTinyTensorSpec *const *) b;

  return strcmp (x->name, y->name);
}

static gboolean
write_weight_file (const char *dir, const OviTinyConfig *c, OviTinyFile file,
                   guint64 seed, GError **error)
{
  g_autoptr (GPtrArray) specs = ovi_tiny_list_tensors (c, file);
  g_autoptr (GPtrArray) tensors
      = g_ptr_array_new_with_free_func ((GDestroyNotify) ovi_tensor_unref);
  g_autofree OviNamedTensor *named = NULL;
  g_autofree char *path = g_build_filename (dir, file_paths[file], NULL);
  g_autofree char *folder = g_path_get_dirname (path);
  OviDType dtype = OVI_DTYPE_F32;
  gboolean ok;

  if (file == OVI_TINY_FILE_FUSION)
    dtype = c->fusion_dtype;
  else if (file == OVI_TINY_FILE_T5)
    dtype = c->t5_dtype;

  if (g_mkdir_with_parents (folder, 0755) != 0) {
    int e = errno;
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO, "cannot create folder %s: %s",
                 folder, g_strerror (e));
    return FALSE;
  }
  /* safetensors are stored sorted by name, as the safetensors library does */
  if (file == OVI_TINY_FILE_FUSION)
    g_ptr_array_sort (specs, cmp_spec_name);

  named = g_new0 (OviNamedTensor, specs->len);
  for (guint i = 0; i < specs->len; i++) {
    OviTinyTensorSpec *s = specs->pdata[i];
    OviTensor *t = make_tensor (c, file, s, seed, dtype, error);
    if (t == NULL)
      return FALSE;
    g_ptr_array_add (tensors, t);
    named[i].name = s->name;
    named[i].tensor = t;
  }

  if (file == OVI_TINY_FILE_FUSION) {
    g_autoptr (GHashTable) meta
        = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
    g_hash_table_insert (meta, (gpointer) "format", g_strdup ("pt"));
    g_hash_table_insert (meta, (gpointer) "ovi_tiny_seed",
                         g_strdup_printf ("%" G_GUINT64_FORMAT, seed));
    ok = ovi_safetensors_write (path, named, specs->len, meta, error);
  } else {
    ok = ovi_pth_write (path, named, specs->len,
                        file == OVI_TINY_FILE_VOCODER ? "generator" : NULL,
                        error);
  }
  return ok;
}

static gboolean
write_spiece (const char *dir, const OviTinyConfig *c, guint64 seed,
              GError **error)
{
  g_autofree char *path = g_build_filename (dir, SPIECE_PATH, NULL);
  g_autofree char *folder = g_path_get_dirname (path);

  if (g_mkdir_with_parents (folder, 0755) != 0) {
    int e = errno;
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO, "cannot create folder %s: %s",
                 folder, g_strerror (e));
    return FALSE;
  }
#ifdef OVI_TINY_HAVE_SPM_WRITER
  return ovi_spm_write_tiny_model (path, seed, error);
#else
  /* TODO(text): the tokenizer model comes from ovi_spm_write_tiny_model()
   * (ovi-core/text/ovi-spm-writer.h) once it lands; until then the tiny
   * folder has no spiece.model and resolving it reports the missing file. */
  (void) c;
  (void) seed;
  return TRUE;
#endif
}

static gboolean
write_marker (const char *dir, guint64 seed, GError **error)
{
  g_autofree char *path = g_build_filename (dir, OVI_TINY_MARKER, NULL);
  g_autofree char *text = g_strdup_printf (
      "{\n  \"variant\": \"tiny\",\n"
      "  \"seed\": %" G_GUINT64_FORMAT ",\n  \"format\": %d,\n"
      "  \"written_by\": \"gst-ovi %s\"\n}\n",
      seed, OVI_TINY_FORMAT, OVI_VERSION);
  g_autoptr (GError) local = NULL;

  if (!g_file_set_contents (path, text, -1, &local)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO, "cannot write %s: %s", path,
                 local->message);
    return FALSE;
  }
  return TRUE;
}

static gboolean
check_config (const OviTinyConfig *c, GError **error)
{
  if (c->dit_dim <= 0 || c->dit_heads <= 0 || c->dit_dim % c->dit_heads != 0
      || c->dit_layers <= 0 || c->dit_ffn_dim <= 0 || c->dit_freq_dim <= 0
      || c->t5_dim <= 0 || c->t5_heads <= 0 || c->t5_dim_attn % c->t5_heads
      || c->t5_vocab <= 0 || c->t5_layers <= 0 || c->vae_dim <= 0
      || c->vae_dec_dim <= 0 || c->vae_z_dim <= 0 || c->audio_vae_hidden <= 0
      || c->vocoder_initial_channel < 64
      || c->vocoder_initial_channel % 64 != 0) {
    g_set_error (
        error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
        "tiny model: impossible configuration (dims must be positive, heads "
        "must divide the widths, the vocoder width must be a multiple of 64)");
    return FALSE;
  }
  return TRUE;
}

gboolean
ovi_tiny_write_config (const char *dir, const OviTinyConfig *cfg, guint64 seed,
                       GError **error)
{
  g_autofree char *marker = NULL;

  if (!check_config (cfg, error))
    return FALSE;
  if (g_mkdir_with_parents (dir, 0755) != 0) {
    int e = errno;
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO, "cannot create folder %s: %s",
                 dir, g_strerror (e));
    return FALSE;
  }
  /* the marker goes last: remove an old one first */
  marker = g_build_filename (dir, OVI_TINY_MARKER, NULL);
  g_unlink (marker);
  for (int f = 0; f < OVI_TINY_N_WEIGHT_FILES; f++)
    if (!write_weight_file (dir, cfg, (OviTinyFile) f, seed, error))
      return FALSE;
  if (!write_spiece (dir, cfg, seed, error))
    return FALSE;
  return write_marker (dir, seed, error);
}

gboolean
ovi_tiny_write (const char *dir, guint64 seed, GError **error)
{
  OviTinyConfig cfg;

  ovi_tiny_config_init (&cfg);
  return ovi_tiny_write_config (dir, &cfg, seed, error);
}

gboolean
ovi_tiny_is_current (const char *dir, guint64 *seed)
{
  g_autofree char *path = g_build_filename (dir, OVI_TINY_MARKER, NULL);
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonNode *root;
  JsonObject *o;

  if (!json_parser_load_from_file (parser, path, NULL))
    return FALSE;
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    return FALSE;
  o = json_node_get_object (root);
  if (!json_object_has_member (o, "format")
      || json_object_get_int_member (o, "format") != OVI_TINY_FORMAT)
    return FALSE;
  if (seed)
    *seed = json_object_has_member (o, "seed")
                ? (guint64) json_object_get_int_member (o, "seed")
                : 0;
  return TRUE;
}

/* rm -rf of a folder this code made */
static void
remove_tree (const char *path)
{
  GDir *d = g_dir_open (path, 0, NULL);
  const char *name;

  if (d) {
    while ((name = g_dir_read_name (d)) != NULL) {
      g_autofree char *child = g_build_filename (path, name, NULL);
      if (g_file_test (child, G_FILE_TEST_IS_DIR)
          && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
        remove_tree (child);
      else
        g_unlink (child);
    }
    g_dir_close (d);
  }
  g_rmdir (path);
}

char *
ovi_tiny_ensure_default (GError **error)
{
  g_autofree char *cache
      = g_build_filename (g_get_user_cache_dir (), "gst-ovi", NULL);
  g_autofree char *final = g_strdup_printf ("%s/tiny-%s", cache, OVI_VERSION);
  g_autofree char *lock_path = g_strdup_printf ("%s.lock", final);
  g_autofree char *tmp = NULL;
  g_autofree char *old = NULL;
  int fd, e;

  if (ovi_tiny_is_current (final, NULL))
    return g_steal_pointer (&final);

  if (g_mkdir_with_parents (cache, 0755) != 0) {
    e = errno;
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO,
                 "cannot create the cache folder %s for the tiny model: %s",
                 cache, g_strerror (e));
    return NULL;
  }
  fd = g_open (lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    e = errno;
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO, "cannot open lock file %s: %s",
                 lock_path, g_strerror (e));
    return NULL;
  }
  while (flock (fd, LOCK_EX) != 0) {
    if (errno == EINTR)
      continue;
    e = errno;
    close (fd);
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO, "cannot lock %s: %s",
                 lock_path, g_strerror (e));
    return NULL;
  }
  /* another process may have written it while we waited */
  if (ovi_tiny_is_current (final, NULL))
    goto done;

  tmp = g_strdup_printf ("%s.tmp-XXXXXX", final);
  if (g_mkdtemp (tmp) == NULL) {
    e = errno;
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO,
                 "cannot create a temporary folder next to %s: %s", final,
                 g_strerror (e));
    goto fail;
  }
  if (!ovi_tiny_write (tmp, OVI_TINY_DEFAULT_SEED, error))
    goto fail;
  if (g_file_test (final, G_FILE_TEST_EXISTS)) {
    /* an older format (or a damaged folder): move it away, then remove */
    old = g_strdup_printf ("%s.old-XXXXXX", final);
    if (g_mkdtemp (old) == NULL || g_rmdir (old) != 0
        || g_rename (final, old) != 0) {
      e = errno;
      g_set_error (error, OVI_ERROR, OVI_ERROR_IO,
                   "cannot replace the outdated tiny model at %s: %s", final,
                   g_strerror (e));
      goto fail;
    }
    remove_tree (old);
  }
  if (g_rename (tmp, final) != 0) {
    e = errno;
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO, "cannot rename %s to %s: %s",
                 tmp, final, g_strerror (e));
    goto fail;
  }
done:
  flock (fd, LOCK_UN);
  close (fd);
  return g_steal_pointer (&final);

fail:
  if (tmp)
    remove_tree (tmp);
  flock (fd, LOCK_UN);
  close (fd);
  return NULL;
}
