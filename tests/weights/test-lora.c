/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: LoRA files (ovi-lora.h) on the golden fusion model: every key
 * format merged against a reference computed here in double precision and
 * rounded independently; merged vs run-time (unmerged) outputs; strength 0;
 * fp8 (merge, then quantise); the bad inputs. */
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include <glib/gstdio.h>

#include "ovi-engine.h"
#include "ovi-fusion-private.h"
#include "ovi-lora.h"
#include "ovi-placement.h"
#include "ovi-test-util.h"

static char *tmp_dir;
static char *golden_model; /* F32 */
static char *bf16_model;   /* the same, BF16 */

/* ---- writing LoRA files ---- */

typedef struct {
  GPtrArray *names;   /* char* */
  GPtrArray *tensors; /* OviTensor* */
  guint64 rng;
} LoraFile;

static LoraFile *
lora_file_new (guint64 seed)
{
  LoraFile *lf = g_new0 (LoraFile, 1);

  lf->names = g_ptr_array_new_with_free_func (g_free);
  lf->tensors
      = g_ptr_array_new_with_free_func ((GDestroyNotify) ovi_tensor_unref);
  lf->rng = seed * 0x9e3779b97f4a7c15ull + 1;
  return lf;
}

static void
lora_file_free (LoraFile *lf)
{
  g_ptr_array_unref (lf->names);
  g_ptr_array_unref (lf->tensors);
  g_free (lf);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LoraFile, lora_file_free)

static double
uniform (LoraFile *lf)
{
  lf->rng = lf->rng * 6364136223846793005ull + 1442695040888963407ull;
  return ((lf->rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0 - 1.0;
}

/* a random tensor (values of order `amp`) in `dtype` under `name` */
static OviTensor *
put (LoraFile *lf, const char *name, OviDType dtype, double amp, int ndim, ...)
{
  int64_t shape[OVI_MAX_DIMS];
  va_list ap;
  OviTensor *t;

  va_start (ap, ndim);
  for (int i = 0; i < ndim; i++)
    shape[i] = va_arg (ap, int);
  va_end (ap);
  t = ovi_tensor_new (dtype, ndim, shape, NULL);
  for (int64_t i = 0; i < ovi_tensor_numel (t); i++) {
    float v = (float) (amp * uniform (lf));
    if (dtype == OVI_DTYPE_BF16)
      ((uint16_t *) ovi_tensor_data (t))[i] = ovi_f32_to_bf16 (v);
    else if (dtype == OVI_DTYPE_F16)
      ((uint16_t *) ovi_tensor_data (t))[i] = ovi_f32_to_f16 (v);
    else
      ((float *) ovi_tensor_data (t))[i] = v;
  }
  g_ptr_array_add (lf->names, g_strdup (name));
  g_ptr_array_add (lf->tensors, t);
  return t;
}

static void
put_alpha (LoraFile *lf, const char *name, float alpha)
{
  OviTensor *t = put (lf, name, OVI_DTYPE_F32, 0, 0);
  *(float *) ovi_tensor_data (t) = alpha;
}

/* lora_down [rank, in] and lora_up [out, rank] under stem + suffixes */
static void
put_pair (LoraFile *lf, const char *stem, const char *down, const char *up,
          int out, int in, int rank, OviDType dtype)
{
  g_autofree char *dn = g_strconcat (stem, down, NULL);
  g_autofree char *un = g_strconcat (stem, up, NULL);

  put (lf, dn, dtype, 0.3, 2, rank, in);
  put (lf, un, dtype, 0.3, 2, out, rank);
}

static char *
lora_file_write (LoraFile *lf, const char *base)
{
  char *path = g_build_filename (tmp_dir, base, NULL);
  g_autofree OviNamedTensor *nt = g_new0 (OviNamedTensor, lf->names->len);
  g_autoptr (GError) error = NULL;

  for (guint i = 0; i < lf->names->len; i++)
    nt[i] = (OviNamedTensor){ g_ptr_array_index (lf->names, i),
                              g_ptr_array_index (lf->tensors, i) };
  g_assert_true (
      ovi_safetensors_write (path, nt, lf->names->len, NULL, &error));
  g_assert_no_error (error);
  return path;
}

static GPtrArray *
specs (const char *text)
{
  g_autoptr (GError) error = NULL;
  GPtrArray *s = ovi_lora_specs_parse (text, &error);

  g_assert_no_error (error);
  return s;
}

/* ---- the reference ---- */

static double
value (const OviTensor *t, int64_t i)
{
  g_autoptr (OviTensor) f = ovi_tensor_to_f32 (t, NULL);
  return ((const float *) ovi_tensor_data (f))[i];
}

/* the nearest value of `dtype` to v (ties to an even last bit), chosen by
 * comparing the neighbours in double: independent of the code under test */
static double
round_to (OviDType dtype, double v)
{
  if (dtype == OVI_DTYPE_F32)
    return (float) v;
  g_assert_cmpint (dtype, ==, OVI_DTYPE_BF16);
  float f = (float) v;
  uint32_t u;
  memcpy (&u, &f, 4);
  uint16_t mid = (uint16_t) (u >> 16), best = mid;
  double best_err = INFINITY;
  for (int d = -1; d <= 1; d++) {
    uint16_t c = (uint16_t) (mid + d);
    double err = fabs ((double) ovi_bf16_to_f32 (c) - v);
    if (err < best_err || (err == best_err && (c & 1) == 0)) {
      best = c;
      best_err = err;
    }
  }
  return ovi_bf16_to_f32 (best);
}

typedef struct {
  const char *target;                   /* model tensor */
  const char *down, *up, *alpha, *diff; /* LoRA keys (nullable) */
  double strength;
} Expect;

/* model tensor `e->target` with the LoRA merged, as the file says */
static void
check_merged (OviWeightFile *model, OviWeightFile *lora, const Expect *e,
              const OviTensor *merged)
{
  g_autoptr (OviTensor) w = ovi_weight_file_get (model, e->target, NULL);
  g_autoptr (OviTensor) wf = ovi_tensor_to_f32 (w, NULL);
  g_autoptr (OviTensor) down = NULL, up = NULL, alpha = NULL, diff = NULL;
  g_autoptr (OviTensor) df = NULL, uf = NULL, mf = NULL, dif = NULL;
  int64_t out = w->shape[0], cols = ovi_tensor_numel (w) / out, rank = 0;
  double scale = 1.0;

  g_assert_nonnull (merged);
  g_assert_cmpint (merged->dtype, ==, w->dtype);
  g_assert_true (ovi_tensor_has_shape (merged, w->ndim, w->shape));
  if (e->down) {
    down = ovi_weight_file_get (lora, e->down, NULL);
    up = ovi_weight_file_get (lora, e->up, NULL);
    g_assert_nonnull (down);
    g_assert_nonnull (up);
    df = ovi_tensor_to_f32 (down, NULL);
    uf = ovi_tensor_to_f32 (up, NULL);
    rank = down->shape[0];
    if (e->alpha) {
      alpha = ovi_weight_file_get (lora, e->alpha, NULL);
      scale = value (alpha, 0) / rank;
    }
  }
  if (e->diff) {
    diff = ovi_weight_file_get (lora, e->diff, NULL);
    dif = ovi_tensor_to_f32 (diff, NULL);
  }
  mf = ovi_tensor_to_f32 (merged, NULL);
  const float *W = ovi_tensor_data (wf), *M = ovi_tensor_data (mf);
  int64_t changed = 0;
  for (int64_t o = 0; o < out; o++)
    for (int64_t j = 0; j < cols; j++) {
      double ref = W[o * cols + j], prod = 0;
      for (int64_t k = 0; k < rank; k++)
        prod += (double) ((float *) ovi_tensor_data (uf))[o * rank + k]
                * ((float *) ovi_tensor_data (df))[k * cols + j];
      ref += e->strength * scale * prod;
      if (dif)
        ref += e->strength * ((float *) ovi_tensor_data (dif))[o * cols + j];
      g_assert_cmpfloat (M[o * cols + j], ==, round_to (w->dtype, ref));
      changed += M[o * cols + j] != W[o * cols + j];
    }
  g_assert_cmpint (changed, >, 0);
}

static void
check_file (const char *model_path, const char *spec_text, const Expect *expect,
            guint n_expect, guint formats)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviWeightFile) model
      = ovi_weight_file_open (model_path, NULL, &error);
  g_autoptr (GPtrArray) sp = specs (spec_text);
  g_autoptr (OviLoraSet) set = NULL;
  g_autoptr (OviWeightFile) lora = NULL;
  g_autoptr (GPtrArray) targets = NULL;
  OviLoraSet *installed = NULL;

  set = ovi_lora_set_new (model, (const OviLoraSpec *const *) sp->pdata,
                          sp->len, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (ovi_lora_set_file_info (set, 0)->formats, ==, formats);
  g_assert_cmpuint (ovi_lora_set_file_info (set, 0)->unmatched->len, ==, 0);
  targets = ovi_lora_set_targets (set);
  g_assert_cmpuint (targets->len, ==, n_expect);
  lora = ovi_weight_file_open (
      ((OviLoraSpec *) g_ptr_array_index (sp, 0))->path, NULL, &error);
  /* through the loader's path: the file hands out merged tensors */
  g_assert_true (ovi_lora_merge_begin (model, sp, &installed, &error));
  for (guint i = 0; i < n_expect; i++) {
    g_autoptr (OviTensor) merged
        = ovi_weight_file_get (model, expect[i].target, &error);
    g_assert_no_error (error);
    ovi_lora_set_uninstall (model);
    check_merged (model, lora, &expect[i], merged);
    ovi_lora_set_install (installed, model);
  }
  ovi_lora_merge_end (model, installed, NULL);
}

/* ---- per format ---- */

static void
test_diffusers (void)
{
  g_autoptr (LoraFile) lf = lora_file_new (1);
  g_autofree char *path = NULL, *spec = NULL;

  put_pair (lf, "transformer.blocks.0.attn1.to_q", ".lora_A.weight",
            ".lora_B.weight", 64, 64, 4, OVI_DTYPE_F32);
  put_pair (lf, "transformer.blocks.1.ffn.net.0.proj", ".lora_A.weight",
            ".lora_B.weight", 256, 64, 8, OVI_DTYPE_BF16);
  put_pair (lf, "base_model.model.blocks.0.attn2.to_out.0", ".lora_A.weight",
            ".lora_B.weight", 64, 64, 2, OVI_DTYPE_F16);
  path = lora_file_write (lf, "diffusers.safetensors");
  static const Expect e[] = {
    { "video_model.blocks.0.cross_attn.o.weight",
      "base_model.model.blocks.0.attn2.to_out.0.lora_A.weight",
      "base_model.model.blocks.0.attn2.to_out.0.lora_B.weight", NULL, NULL,
      0.75 },
    { "video_model.blocks.0.self_attn.q.weight",
      "transformer.blocks.0.attn1.to_q.lora_A.weight",
      "transformer.blocks.0.attn1.to_q.lora_B.weight", NULL, NULL, 0.75 },
    { "video_model.blocks.1.ffn.0.weight",
      "transformer.blocks.1.ffn.net.0.proj.lora_A.weight",
      "transformer.blocks.1.ffn.net.0.proj.lora_B.weight", NULL, NULL, 0.75 },
  };
  spec = g_strdup_printf ("%s:0.75", path);
  check_file (golden_model, spec, e, G_N_ELEMENTS (e),
              OVI_LORA_FORMAT_DIFFUSERS);
  check_file (bf16_model, spec, e, G_N_ELEMENTS (e), OVI_LORA_FORMAT_DIFFUSERS);
}

static void
test_native (void)
{
  g_autoptr (LoraFile) lf = lora_file_new (2);
  g_autofree char *path = NULL, *spec = NULL;

  put_pair (lf, "diffusion_model.blocks.0.self_attn.k", ".lora_down.weight",
            ".lora_up.weight", 64, 64, 4, OVI_DTYPE_BF16);
  put_alpha (lf, "diffusion_model.blocks.0.self_attn.k.alpha", 2.0f);
  put_pair (lf, "diffusion_model.blocks.1.cross_attn.k_fusion",
            ".lora_A.weight", ".lora_B.weight", 64, 64, 4, OVI_DTYPE_F32);
  put (lf, "diffusion_model.blocks.0.norm3.diff", OVI_DTYPE_F32, 0.1, 1, 64);
  put (lf, "diffusion_model.blocks.0.ffn.2.diff_b", OVI_DTYPE_F32, 0.1, 1, 64);
  put (lf, "diffusion_model.head.head.diff", OVI_DTYPE_BF16, 0.05, 2, 20, 64);
  path = lora_file_write (lf, "native.safetensors");
  /* target audio: keys without a tower land in the audio tower */
  static const Expect e[] = {
    { "audio_model.blocks.0.ffn.2.bias", NULL, NULL, NULL,
      "diffusion_model.blocks.0.ffn.2.diff_b", 1.5 },
    { "audio_model.blocks.0.norm3.weight", NULL, NULL, NULL,
      "diffusion_model.blocks.0.norm3.diff", 1.5 },
    { "audio_model.blocks.0.self_attn.k.weight",
      "diffusion_model.blocks.0.self_attn.k.lora_down.weight",
      "diffusion_model.blocks.0.self_attn.k.lora_up.weight",
      "diffusion_model.blocks.0.self_attn.k.alpha", NULL, 1.5 },
    { "audio_model.blocks.1.cross_attn.k_fusion.weight",
      "diffusion_model.blocks.1.cross_attn.k_fusion.lora_A.weight",
      "diffusion_model.blocks.1.cross_attn.k_fusion.lora_B.weight", NULL, NULL,
      1.5 },
    { "audio_model.head.head.weight", NULL, NULL, NULL,
      "diffusion_model.head.head.diff", 1.5 },
  };
  spec = g_strdup_printf ("%s:1.5:audio", path);
  check_file (golden_model, spec, e, G_N_ELEMENTS (e), OVI_LORA_FORMAT_NATIVE);
  check_file (bf16_model, spec, e, G_N_ELEMENTS (e), OVI_LORA_FORMAT_NATIVE);
}

static void
test_kohya (void)
{
  g_autoptr (LoraFile) lf = lora_file_new (3);
  g_autofree char *path = NULL, *spec = NULL;

  put_pair (lf, "lora_unet_blocks_0_self_attn_v", ".lora_down.weight",
            ".lora_up.weight", 64, 64, 8, OVI_DTYPE_BF16);
  put_alpha (lf, "lora_unet_blocks_0_self_attn_v.alpha", 4.0f);
  put_pair (lf, "lora_unet__blocks_1_cross_attn_v_fusion", ".lora_down.weight",
            ".lora_up.weight", 64, 64, 4, OVI_DTYPE_F32);
  put_alpha (lf, "lora_unet__blocks_1_cross_attn_v_fusion.alpha", 8.0f);
  path = lora_file_write (lf, "kohya.safetensors");
  static const Expect e[] = {
    { "audio_model.blocks.0.self_attn.v.weight",
      "lora_unet_blocks_0_self_attn_v.lora_down.weight",
      "lora_unet_blocks_0_self_attn_v.lora_up.weight",
      "lora_unet_blocks_0_self_attn_v.alpha", NULL, 1.0 },
    { "audio_model.blocks.1.cross_attn.v_fusion.weight",
      "lora_unet__blocks_1_cross_attn_v_fusion.lora_down.weight",
      "lora_unet__blocks_1_cross_attn_v_fusion.lora_up.weight",
      "lora_unet__blocks_1_cross_attn_v_fusion.alpha", NULL, 1.0 },
    { "video_model.blocks.0.self_attn.v.weight",
      "lora_unet_blocks_0_self_attn_v.lora_down.weight",
      "lora_unet_blocks_0_self_attn_v.lora_up.weight",
      "lora_unet_blocks_0_self_attn_v.alpha", NULL, 1.0 },
    { "video_model.blocks.1.cross_attn.v_fusion.weight",
      "lora_unet__blocks_1_cross_attn_v_fusion.lora_down.weight",
      "lora_unet__blocks_1_cross_attn_v_fusion.lora_up.weight",
      "lora_unet__blocks_1_cross_attn_v_fusion.alpha", NULL, 1.0 },
  };
  spec = g_strdup_printf ("%s:1:both", path);
  check_file (golden_model, spec, e, G_N_ELEMENTS (e), OVI_LORA_FORMAT_KOHYA);
  check_file (bf16_model, spec, e, G_N_ELEMENTS (e), OVI_LORA_FORMAT_KOHYA);
}

static void
test_ovi_names (void)
{
  g_autoptr (LoraFile) lf = lora_file_new (4);
  g_autofree char *path = NULL, *spec = NULL;

  put_pair (lf, "audio_model.blocks.0.ffn.0", ".lora_down.weight",
            ".lora_up.weight", 256, 64, 4, OVI_DTYPE_BF16);
  put_pair (lf, "lora_unet_video_model_blocks_1_self_attn_o",
            ".lora_down.weight", ".lora_up.weight", 64, 64, 4, OVI_DTYPE_F32);
  put_alpha (lf, "lora_unet_video_model_blocks_1_self_attn_o.alpha", 1.0f);
  put_pair (lf, "diffusion_model.video_model.text_embedding.2",
            ".lora_A.weight", ".lora_B.weight", 64, 64, 2, OVI_DTYPE_F32);
  path = lora_file_write (lf, "ovi.safetensors");
  /* keys with a tower ignore the target */
  static const Expect e[] = {
    { "audio_model.blocks.0.ffn.0.weight",
      "audio_model.blocks.0.ffn.0.lora_down.weight",
      "audio_model.blocks.0.ffn.0.lora_up.weight", NULL, NULL, 2.0 },
    { "video_model.blocks.1.self_attn.o.weight",
      "lora_unet_video_model_blocks_1_self_attn_o.lora_down.weight",
      "lora_unet_video_model_blocks_1_self_attn_o.lora_up.weight",
      "lora_unet_video_model_blocks_1_self_attn_o.alpha", NULL, 2.0 },
    { "video_model.text_embedding.2.weight",
      "diffusion_model.video_model.text_embedding.2.lora_A.weight",
      "diffusion_model.video_model.text_embedding.2.lora_B.weight", NULL, NULL,
      2.0 },
  };
  spec = g_strdup_printf ("%s:2:audio", path);
  check_file (golden_model, spec, e, G_N_ELEMENTS (e),
              OVI_LORA_FORMAT_OVI | OVI_LORA_FORMAT_NATIVE
                  | OVI_LORA_FORMAT_KOHYA);
}

static void
test_specs (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) s
      = specs (" a.safetensors ; /x:y/b.safetensors:0.5 ;c:2:both;");
  const OviLoraSpec *e;

  g_assert_cmpuint (s->len, ==, 3);
  e = g_ptr_array_index (s, 0);
  g_assert_cmpstr (e->path, ==, "a.safetensors");
  g_assert_cmpfloat (e->strength, ==, 1.0);
  g_assert_cmpint (e->target, ==, OVI_LORA_TARGET_VIDEO);
  e = g_ptr_array_index (s, 1);
  g_assert_cmpstr (e->path, ==, "/x:y/b.safetensors");
  g_assert_cmpfloat (e->strength, ==, 0.5);
  e = g_ptr_array_index (s, 2);
  g_assert_cmpstr (e->path, ==, "c");
  g_assert_cmpfloat (e->strength, ==, 2.0);
  g_assert_cmpint (e->target, ==, OVI_LORA_TARGET_BOTH);
  g_clear_pointer (&s, g_ptr_array_unref);
  s = specs ("");
  g_assert_cmpuint (s->len, ==, 0);

  static const char *const bad[]
      = { "a:-1", "a:nan", "a:inf:video", "a:x:audio", ":1" };
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_assert_null (ovi_lora_specs_parse (bad[i], &error));
    g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
    g_clear_error (&error);
  }
}

/* ---- bad input ---- */

static void
expect_error (const char *spec_text, int code, const char *const *needles)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviWeightFile) model
      = ovi_weight_file_open (golden_model, NULL, NULL);
  g_autoptr (GPtrArray) sp = specs (spec_text);
  g_autoptr (OviLoraSet) set = ovi_lora_set_new (
      model, (const OviLoraSpec *const *) sp->pdata, sp->len, &error);

  g_assert_null (set);
  g_assert_error (error, OVI_ERROR, code);
  for (int i = 0; needles && needles[i]; i++)
    if (!strstr (error->message, needles[i]))
      g_error ("'%s' not in: %s", needles[i], error->message);
}

static void
test_errors (void)
{
  g_autofree char *none = NULL, *shape = NULL, *nan = NULL, *rank0 = NULL,
                  *corrupt = NULL, *missing = NULL, *spec = NULL, *lone = NULL;
  {
    g_autoptr (LoraFile) lf = lora_file_new (5);
    put_pair (lf, "unet.down_blocks.0.conv", ".lora_down.weight",
              ".lora_up.weight", 8, 8, 2, OVI_DTYPE_F32);
    none = lora_file_write (lf, "none.safetensors");
  }
  {
    g_autoptr (LoraFile) lf = lora_file_new (6);
    put_pair (lf, "diffusion_model.blocks.0.self_attn.q", ".lora_down.weight",
              ".lora_up.weight", 64, 63, 2, OVI_DTYPE_F32);
    shape = lora_file_write (lf, "shape.safetensors");
  }
  {
    g_autoptr (LoraFile) lf = lora_file_new (7);
    put_pair (lf, "diffusion_model.blocks.0.self_attn.q", ".lora_down.weight",
              ".lora_up.weight", 64, 64, 2, OVI_DTYPE_F32);
    ((float *) ovi_tensor_data (g_ptr_array_index (lf->tensors, 1)))[5] = NAN;
    nan = lora_file_write (lf, "nan.safetensors");
  }
  {
    g_autoptr (LoraFile) lf = lora_file_new (8);
    put_pair (lf, "diffusion_model.blocks.0.self_attn.q", ".lora_down.weight",
              ".lora_up.weight", 64, 64, 0, OVI_DTYPE_F32);
    rank0 = lora_file_write (lf, "rank0.safetensors");
  }
  {
    g_autoptr (LoraFile) lf = lora_file_new (12);
    put (lf, "diffusion_model.blocks.0.self_attn.q.lora_up.weight",
         OVI_DTYPE_F32, 0.3, 2, 64, 2);
    /* a lone half of a pair for a block the model lacks: only unmatched */
    put (lf, "diffusion_model.blocks.9.self_attn.q.lora_up.weight",
         OVI_DTYPE_F32, 0.3, 2, 64, 2);
    lone = lora_file_write (lf, "lone.safetensors");
  }
  corrupt = g_build_filename (tmp_dir, "corrupt.safetensors", NULL);
  g_assert_true (g_file_set_contents (
      corrupt, "\x10\0\0\0\0\0\0\0{\"a\": [1, 2", 20, NULL));
  missing = g_build_filename (tmp_dir, "missing.safetensors", NULL);

  const char *n1[] = { "unet.down_blocks.0.conv", "formats tried",
                       "kohya/musubi", "diffusers/PEFT", NULL };
  expect_error (none, OVI_ERROR_MISSING_TENSOR, n1);
  const char *n2[] = { "video_model.blocks.0.self_attn.q.weight", "[64, 64]",
                       "[2, 63]", "[64, 2]", NULL };
  expect_error (shape, OVI_ERROR_SHAPE, n2);
  const char *n3[] = { "non-finite", "lora_up", NULL };
  expect_error (nan, OVI_ERROR_FORMAT, n3);
  const char *n4[] = { "rank 0", NULL };
  expect_error (rank0, OVI_ERROR_SHAPE, n4);
  const char *n7[]
      = { "blocks.0.self_attn.q.lora_up.weight", "no lora_down partner", NULL };
  expect_error (lone, OVI_ERROR_FORMAT, n7);
  const char *n5[] = { "corrupt.safetensors", NULL };
  expect_error (corrupt, OVI_ERROR_FORMAT, n5);
  const char *n6[] = { "missing.safetensors", NULL };
  expect_error (missing, OVI_ERROR_IO, n6);
  /* a good file after a bad one: nothing of the set survives */
  spec = g_strdup_printf ("%s;%s", shape, none);
  expect_error (spec, OVI_ERROR_SHAPE, NULL);
}

static void
test_partial (void)
{
  g_autoptr (LoraFile) lf = lora_file_new (9);
  g_autofree char *path = NULL, *msg = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (OviWeightFile) model
      = ovi_weight_file_open (golden_model, NULL, NULL);
  g_autoptr (GPtrArray) sp = NULL;
  g_autoptr (OviLoraSet) set = NULL;

  put_pair (lf, "diffusion_model.blocks.0.self_attn.q", ".lora_down.weight",
            ".lora_up.weight", 64, 64, 2, OVI_DTYPE_F32);
  put_pair (lf, "diffusion_model.blocks.7.self_attn.q", ".lora_down.weight",
            ".lora_up.weight", 64, 64, 2, OVI_DTYPE_F32);
  put (lf, "diffusion_model.blocks.0.self_attn.q.dora_scale", OVI_DTYPE_F32, 1,
       2, 1, 64);
  path = lora_file_write (lf, "partial.safetensors");
  sp = specs (path);
  set = ovi_lora_set_new (model, (const OviLoraSpec *const *) sp->pdata,
                          sp->len, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (ovi_lora_set_file_info (set, 0)->n_matched, ==, 2);
  msg = ovi_lora_set_unmatched_message (set);
  g_assert_nonnull (strstr (msg, "3 of the 5 keys"));
  g_assert_nonnull (strstr (msg, "blocks.7.self_attn.q.lora_down.weight"));
  g_assert_nonnull (strstr (msg, "dora_scale"));
}

/* ---- the denoiser: merged, unmerged, strength 0, fp8 ---- */

static void
run (OviTestGolden *g, OviDenoiser *d, OviTensor **v, OviTensor **a)
{
  OviDenoiseRequest req;
  g_autoptr (GError) error = NULL;

  ovi_test_golden_request (g, &req);
  req.steps = 2;
  req.seed = 3;
  g_assert_true (ovi_denoiser_run (d, &req, NULL, NULL, NULL, v, a, &error));
  g_assert_no_error (error);
}

/* a LoRA touching every kind of tensor the run-time path handles */
static char *
write_wide_lora (void)
{
  g_autoptr (LoraFile) lf = lora_file_new (10);

  for (int b = 0; b < 2; b++) {
    static const char *const lin[]
        = { "self_attn.q", "self_attn.o", "cross_attn.k", "cross_attn.v_fusion",
            "ffn.2" };
    for (gsize i = 0; i < G_N_ELEMENTS (lin); i++) {
      g_autofree char *stem
          = g_strdup_printf ("diffusion_model.blocks.%d.%s", b, lin[i]);
      int in = g_str_equal (lin[i], "ffn.2") ? 256 : 64;
      put_pair (lf, stem, ".lora_down.weight", ".lora_up.weight", 64, in, 4,
                OVI_DTYPE_BF16);
    }
    g_autofree char *ffn0
        = g_strdup_printf ("diffusion_model.blocks.%d.ffn.0", b);
    put_pair (lf, ffn0, ".lora_A.weight", ".lora_B.weight", 256, 64, 4,
              OVI_DTYPE_F32);
    g_autofree char *n3
        = g_strdup_printf ("diffusion_model.blocks.%d.norm3.diff", b);
    put (lf, n3, OVI_DTYPE_F32, 0.05, 1, 64);
    g_autofree char *mod
        = g_strdup_printf ("diffusion_model.blocks.%d.modulation.diff", b);
    put (lf, mod, OVI_DTYPE_F32, 0.05, 3, 1, 6, 64);
    g_autofree char *qb
        = g_strdup_printf ("diffusion_model.blocks.%d.self_attn.q.diff_b", b);
    put (lf, qb, OVI_DTYPE_F32, 0.05, 1, 64);
  }
  put_pair (lf, "diffusion_model.time_embedding.0", ".lora_down.weight",
            ".lora_up.weight", 64, 256, 4, OVI_DTYPE_F32);
  put_pair (lf, "diffusion_model.patch_embedding", ".lora_down.weight",
            ".lora_up.weight", 64, 192, 4, OVI_DTYPE_F32);
  put (lf, "diffusion_model.head.head.diff", OVI_DTYPE_F32, 0.02, 2, 192, 64);
  return lora_file_write (lf, "wide.safetensors");
}

static void
test_unmerged_equals_merged (void)
{
  OviTestGolden g;
  g_autofree char *path = write_wide_lora ();
  g_autofree char *spec = g_strdup_printf ("%s:0.8:both", path);
  g_autofree char *spec0 = g_strdup_printf ("%s:0:both", path);
  g_autoptr (GPtrArray) sp = specs (spec), sp0 = specs (spec0);
  g_autoptr (GError) error = NULL;
  g_autoptr (OviTensor) v_none = NULL, a_none = NULL, v_m = NULL, a_m = NULL,
                        v_u = NULL, a_u = NULL, v_0 = NULL, a_0 = NULL,
                        v_m0 = NULL, a_m0 = NULL, v_back = NULL, a_back = NULL;
  OviDenoiser *plain, *merged, *merged0;

  ovi_test_golden_init (&g);
  plain = ovi_denoiser_new (&g.paths, g.be, &error);
  g_assert_no_error (error);
  merged = ovi_denoiser_new_with_loras (&g.paths, g.be, NULL, NULL, sp, &error);
  g_assert_no_error (error);
  merged0
      = ovi_denoiser_new_with_loras (&g.paths, g.be, NULL, NULL, sp0, &error);
  g_assert_no_error (error);
  run (&g, plain, &v_none, &a_none);
  run (&g, merged, &v_m, &a_m);
  run (&g, merged0, &v_m0, &a_m0);
  g_assert_true (ovi_denoiser_set_loras (plain, sp, &error));
  g_assert_no_error (error);
  g_assert_null (ovi_denoiser_get_lora_warning (plain));
  run (&g, plain, &v_u, &a_u);
  g_assert_true (ovi_denoiser_set_loras (plain, sp0, &error));
  run (&g, plain, &v_0, &a_0);

  double ev = ovi_test_rel_l2 (v_u, v_m), ea = ovi_test_rel_l2 (a_u, a_m);
  g_test_message ("unmerged vs merged: video %.3g audio %.3g; LoRA effect "
                  "video %.3g audio %.3g",
                  ev, ea, ovi_test_rel_l2 (v_m, v_none),
                  ovi_test_rel_l2 (a_m, a_none));
  g_assert_cmpfloat (ev, <=, 1e-5);
  g_assert_cmpfloat (ea, <=, 1e-5);
  g_assert_cmpfloat (ovi_test_rel_l2 (v_m, v_none), >, 1e-3);
  g_assert_cmpfloat (ovi_test_rel_l2 (a_m, a_none), >, 1e-3);
  /* strength 0: bit-identical to no LoRA, merged and unmerged */
  g_assert_true (ovi_test_same_bits (v_m0, v_none)
                 && ovi_test_same_bits (a_m0, a_none));
  g_assert_true (ovi_test_same_bits (v_0, v_none)
                 && ovi_test_same_bits (a_0, a_none));
  /* LoRAs removed: the patched tables are restored exactly */
  g_assert_true (ovi_denoiser_set_loras (plain, sp, &error));
  g_assert_true (ovi_denoiser_set_loras (plain, NULL, &error));
  run (&g, plain, &v_back, &a_back);
  g_assert_true (ovi_test_same_bits (v_back, v_none)
                 && ovi_test_same_bits (a_back, a_none));
  ovi_denoiser_free (plain);
  ovi_denoiser_free (merged);
  ovi_denoiser_free (merged0);
  ovi_test_golden_clear (&g);
}

/* several LoRAs at once, unmerged, on int8 streamed blocks, fp8 resident
 * ones and bf16; a bad set leaves the good one in place */
static void
test_unmerged_quantised (void)
{
  OviTestGolden g;
  g_autofree char *wide = write_wide_lora ();
  g_autoptr (LoraFile) lf = lora_file_new (11);
  g_autofree char *path2 = NULL, *spec = NULL, *bad = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (OviTensor) v1 = NULL, a1 = NULL, v2 = NULL, a2 = NULL, vm = NULL,
                        am = NULL, vn = NULL, an = NULL;
  OviPlacementPlan plan;
  g_autoptr (OviPlacement) pl = NULL;
  OviDenoiser *d, *merged;

  put_pair (lf, "lora_unet_blocks_1_self_attn_k", ".lora_down.weight",
            ".lora_up.weight", 64, 64, 2, OVI_DTYPE_F32);
  path2 = lora_file_write (lf, "second.safetensors");
  spec = g_strdup_printf ("%s:0.5:both;%s:1:audio", wide, path2);
  bad = g_strdup_printf ("%s;%s/nothing-here.safetensors", wide, tmp_dir);
  g_autoptr (GPtrArray) sp = specs (spec), spbad = specs (bad);
  ovi_test_golden_init (&g);
  g_assert_true (ovi_placement_plan_for_mode (
      OVI_VRAM_MODE_ULTRA_LOW, OVI_GPU_ALLOCATION_SINGLE, 0, &plan, &error));
  pl = ovi_placement_new (&plan, g.be);
  d = ovi_denoiser_new_filtered (&g.paths, g.be, ovi_placement_weight_filter,
                                 pl, &error);
  g_assert_no_error (error);
  ovi_placement_attach_denoiser (pl, d);
  g_assert_true (ovi_fusion_get_streaming (ovi_denoiser_get_fusion (d)));
  run (&g, d, &vn, &an);
  g_assert_true (ovi_denoiser_set_loras (d, sp, &error));
  g_assert_no_error (error);
  run (&g, d, &v1, &a1);
  g_assert_false (ovi_denoiser_set_loras (d, spbad, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_IO);
  g_clear_error (&error);
  run (&g, d, &v2, &a2);
  g_assert_true (ovi_test_same_bits (v1, v2) && ovi_test_same_bits (a1, a2));
  /* the int8 model with LoRAs is near the f32 model with them merged */
  merged = ovi_denoiser_new_with_loras (&g.paths, g.be, NULL, NULL, sp, &error);
  g_assert_no_error (error);
  run (&g, merged, &vm, &am);
  g_test_message ("int8 streamed + unmerged vs f32 merged: video %.3g audio "
                  "%.3g (int8 without LoRA: %.3g %.3g)",
                  ovi_test_rel_l2 (v1, vm), ovi_test_rel_l2 (a1, am),
                  ovi_test_rel_l2 (vn, vm), ovi_test_rel_l2 (an, am));
  g_assert_cmpfloat (ovi_test_rel_l2 (v1, vm), <,
                     0.5 * ovi_test_rel_l2 (vn, vm));
  g_assert_cmpfloat (ovi_test_rel_l2 (a1, am), <,
                     0.5 * ovi_test_rel_l2 (an, am));
  /* fp8 resident weights and a bf16 file: the live LoRAs bring each close
   * to the merged f32 model too */
  static const OviVramMode modes[]
      = { OVI_VRAM_MODE_FP8, OVI_VRAM_MODE_STANDARD };
  for (gsize i = 0; i < G_N_ELEMENTS (modes); i++) {
    g_autoptr (OviPlacement) pl2 = NULL;
    g_autoptr (OviTensor) vq = NULL, aq = NULL, vl = NULL, al = NULL;
    OviModelPaths paths = g.paths;
    OviDenoiser *q;

    if (modes[i] == OVI_VRAM_MODE_STANDARD)
      paths.fusion_path = bf16_model;
    g_assert_true (ovi_placement_plan_for_mode (
        modes[i], OVI_GPU_ALLOCATION_SINGLE, 0, &plan, &error));
    pl2 = ovi_placement_new (&plan, g.be);
    q = ovi_denoiser_new_filtered (&paths, g.be, ovi_placement_weight_filter,
                                   pl2, &error);
    g_assert_no_error (error);
    g_assert_false (ovi_fusion_get_streaming (ovi_denoiser_get_fusion (q)));
    run (&g, q, &vq, &aq);
    g_assert_true (ovi_denoiser_set_loras (q, sp, &error));
    run (&g, q, &vl, &al);
    g_test_message ("%s + unmerged vs f32 merged: video %.3g audio %.3g "
                    "(without LoRA: %.3g %.3g)",
                    ovi_vram_mode_to_string (modes[i]),
                    ovi_test_rel_l2 (vl, vm), ovi_test_rel_l2 (al, am),
                    ovi_test_rel_l2 (vq, vm), ovi_test_rel_l2 (aq, am));
    g_assert_cmpfloat (ovi_test_rel_l2 (vl, vm), <,
                       0.5 * ovi_test_rel_l2 (vq, vm));
    g_assert_cmpfloat (ovi_test_rel_l2 (al, am), <,
                       0.5 * ovi_test_rel_l2 (aq, am));
    ovi_denoiser_free (q);
  }
  ovi_denoiser_free (d);
  ovi_denoiser_free (merged);
  ovi_test_golden_clear (&g);
}

/* fp8: the model holds quantise (merge (W)) */
static void
test_fp8_merge_then_quantise (void)
{
  OviTestGolden g;
  g_autofree char *path = write_wide_lora ();
  g_autoptr (GPtrArray) sp = specs (path);
  g_autoptr (GError) error = NULL;
  OviPlacementPlan plan;
  g_autoptr (OviPlacement) pl = NULL;
  g_autoptr (OviWeightFile) model = NULL;
  g_autoptr (OviLoraSet) set = NULL;
  OviDenoiser *d;

  ovi_test_golden_init (&g);
  g_assert_true (ovi_placement_plan_for_mode (
      OVI_VRAM_MODE_FP8, OVI_GPU_ALLOCATION_SINGLE, 0, &plan, &error));
  pl = ovi_placement_new (&plan, g.be);
  d = ovi_denoiser_new_with_loras (&g.paths, g.be, ovi_placement_weight_filter,
                                   pl, sp, &error);
  g_assert_no_error (error);
  model = ovi_weight_file_open (golden_model, NULL, NULL);
  set = ovi_lora_set_new (model, (const OviLoraSpec *const *) sp->pdata,
                          sp->len, &error);
  OviFusion *m = ovi_denoiser_get_fusion (d);
  const OviLinear *got[]
      = { &m->towers[0].blocks[1].sa.q, &m->towers[0].blocks[0].ffn0 };
  const char *names[] = { "video_model.blocks.1.self_attn.q.weight",
                          "video_model.blocks.0.ffn.0.weight" };
  for (gsize i = 0; i < G_N_ELEMENTS (names); i++) {
    g_autoptr (OviTensor) w = ovi_weight_file_get (model, names[i], NULL);
    g_autoptr (OviTensor) merged
        = ovi_lora_merge (w, ovi_lora_set_deltas (set, names[i]), &error);
    g_autoptr (OviTensor) q
        = ovi_quantize_tensor (merged, plan.quant, names[i], &error);
    g_assert_no_error (error);
    g_assert_cmpint (got[i]->w->dtype, ==, OVI_DTYPE_F8_E4M3);
    g_assert_true (ovi_test_same_bits (got[i]->w, q));
    g_assert_true (ovi_test_same_bits (got[i]->w->scale, q->scale));
  }
  ovi_denoiser_free (d);
  ovi_test_golden_clear (&g);
}

/* a LoRA that fails to load leaves no model (and no half-merge) */
static void
test_merged_error (void)
{
  OviTestGolden g;
  g_autoptr (GError) error = NULL;
  g_autofree char *spec = g_strdup_printf ("%s/missing.safetensors", tmp_dir);
  g_autoptr (GPtrArray) sp = specs (spec);

  ovi_test_golden_init (&g);
  g_assert_null (
      ovi_denoiser_new_with_loras (&g.paths, g.be, NULL, NULL, sp, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_IO);
  ovi_test_golden_clear (&g);
}

/* ---- setup ---- */

static char *
write_bf16_copy (const char *src)
{
  g_autoptr (OviWeightFile) wf = ovi_weight_file_open (src, NULL, NULL);
  guint n = ovi_weight_file_n_tensors (wf);
  g_autofree OviNamedTensor *nt = g_new0 (OviNamedTensor, n);
  g_autoptr (GPtrArray) keep
      = g_ptr_array_new_with_free_func ((GDestroyNotify) ovi_tensor_unref);
  char *path = g_build_filename (tmp_dir, "bf16.safetensors", NULL);

  for (guint i = 0; i < n; i++) {
    const char *name = ovi_weight_file_name (wf, i);
    g_autoptr (OviTensor) t = ovi_weight_file_get (wf, name, NULL);
    g_autoptr (OviTensor) f = ovi_tensor_to_f32 (t, NULL);
    OviTensor *b = ovi_tensor_new (OVI_DTYPE_BF16, t->ndim, t->shape, NULL);
    for (int64_t k = 0; k < ovi_tensor_numel (f); k++)
      ((uint16_t *) ovi_tensor_data (b))[k]
          = ovi_f32_to_bf16 (((float *) ovi_tensor_data (f))[k]);
    g_ptr_array_add (keep, b);
    nt[i] = (OviNamedTensor){ name, b };
  }
  g_assert_true (ovi_safetensors_write (path, nt, n, NULL, NULL));
  return path;
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  tmp_dir = ovi_test_make_tmp_dir ("ovi-lora-XXXXXX");
  golden_model = g_build_filename (g_getenv ("OVI_GOLDEN_DIR"), "fusion_dit",
                                   "weights.safetensors", NULL);
  bf16_model = write_bf16_copy (golden_model);
  g_test_add_func ("/lora/specs", test_specs);
  g_test_add_func ("/lora/format/diffusers", test_diffusers);
  g_test_add_func ("/lora/format/native", test_native);
  g_test_add_func ("/lora/format/kohya", test_kohya);
  g_test_add_func ("/lora/format/ovi-names", test_ovi_names);
  g_test_add_func ("/lora/errors", test_errors);
  g_test_add_func ("/lora/partial", test_partial);
  g_test_add_func ("/lora/unmerged-equals-merged", test_unmerged_equals_merged);
  g_test_add_func ("/lora/unmerged-quantised", test_unmerged_quantised);
  g_test_add_func ("/lora/fp8-merge-then-quantise",
                   test_fp8_merge_then_quantise);
  g_test_add_func ("/lora/merged-error", test_merged_error);
  status = g_test_run ();
  ovi_test_remove_tree (tmp_dir);
  return status;
}
