/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: enum property types shared by the ovi elements. */
#include "gstovienums.h"

GType
gst_ovi_vram_mode_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { GST_OVI_VRAM_MODE_AUTO,
      "The fastest mode whose memory estimate fits the chosen GPU; "
      "the CPU when no usable GPU is found",
      "auto" },
    { GST_OVI_VRAM_MODE_STANDARD, "bf16 weights, all on the GPU (40 GB and up)",
      "standard" },
    { GST_OVI_VRAM_MODE_FP8, "F8_E4M3 weights, all on the GPU (24 GB)", "fp8" },
    { GST_OVI_VRAM_MODE_FP8_OFFLOAD,
      "fp8 weights, DiT blocks streamed from pinned host memory (16 GB)",
      "fp8-offload" },
    { GST_OVI_VRAM_MODE_ULTRA_LOW,
      "int8 weight-only, streamed, tiled VAE decode (8 GB)", "ultra-low" },
    { 0, NULL, NULL },
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstOviVramMode", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

GType
gst_ovi_gpu_allocation_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { GST_OVI_GPU_ALLOCATION_AUTO, "Pick from the GPUs present", "auto" },
    { GST_OVI_GPU_ALLOCATION_SINGLE, "One GPU", "single" },
    { GST_OVI_GPU_ALLOCATION_SP2, "Ulysses sequence parallel over 2 GPUs",
      "sp2" },
    { GST_OVI_GPU_ALLOCATION_SP4, "Ulysses sequence parallel over 4 GPUs",
      "sp4" },
    { GST_OVI_GPU_ALLOCATION_SP8, "Ulysses sequence parallel over 8 GPUs",
      "sp8" },
    { GST_OVI_GPU_ALLOCATION_CFG_PARALLEL,
      "Positive and negative guidance passes on two GPUs", "cfg-parallel" },
    { GST_OVI_GPU_ALLOCATION_SHARDED,
      "Weights split across GPUs, gathered per block", "sharded" },
    { 0, NULL, NULL },
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstOviGpuAllocation", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

GType
gst_ovi_model_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { GST_OVI_MODEL_AUTO,
      "The variant whose weights are in model-dir "
      "(the tiny model without model-dir)",
      "auto" },
    { GST_OVI_MODEL_720X720_5S, "720x720 area, 5 s (Ovi/model.safetensors)",
      "720x720_5s" },
    { GST_OVI_MODEL_960X960_5S,
      "960x960 area, 5 s (Ovi/model_960x960.safetensors)", "960x960_5s" },
    { GST_OVI_MODEL_960X960_10S,
      "960x960 area, 10 s (Ovi/model_960x960_10s.safetensors)", "960x960_10s" },
    { GST_OVI_MODEL_TINY, "The tiny random-weight test model (noise, not film)",
      "tiny" },
    { 0, NULL, NULL },
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstOviModel", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

GType
gst_ovi_solver_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { GST_OVI_SOLVER_UNIPC, "UniPC (bh2, order 2), the official sampler",
      "unipc" },
    { GST_OVI_SOLVER_EULER, "Flow-matching Euler", "euler" },
    { 0, NULL, NULL },
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstOviSolver", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

GType
gst_ovi_cache_mode_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { GST_OVI_CACHE_OFF, "Every denoising forward computed", "off" },
    { GST_OVI_CACHE_EASY,
      "EasyCache: skip while the predicted change from the transformation "
      "rate stays under cache-threshold (no calibration)",
      "easy" },
    { GST_OVI_CACHE_MAG,
      "MagCache: skip while the accumulated error of the model's calibrated "
      "magnitude ratios stays under cache-threshold (presets/cache)",
      "mag" },
    { 0, NULL, NULL },
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstOviCacheMode", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

GType
gst_ovi_lora_mode_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { GST_OVI_LORA_MODE_AUTO,
      "Merged at load; a later change applied at run time while the loaded "
      "denoiser has no merged LoRAs, else merged with a reload",
      "auto" },
    { GST_OVI_LORA_MODE_MERGED,
      "Always merged into the weights; a change reloads the denoiser",
      "merged" },
    { GST_OVI_LORA_MODE_UNMERGED,
      "Always applied at run time; a change never reloads", "unmerged" },
    { 0, NULL, NULL },
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstOviLoraMode", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

GType
gst_ovi_timestamps_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { GST_OVI_TIMESTAMPS_CONTIGUOUS,
      "The first clip at the running time it starts, every later one where "
      "the previous one ends: no gaps, one segment",
      "contiguous" },
    { GST_OVI_TIMESTAMPS_RUNNING_TIME,
      "Each clip at the running time it starts (never before the previous "
      "one's end): gaps where generation is slower than real time",
      "running-time" },
    { 0, NULL, NULL },
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstOviTimestamps", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

GType
gst_ovi_continuation_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { GST_OVI_CONTINUATION_NONE, "Every clip starts anew", "none" },
    { GST_OVI_CONTINUATION_LAST_FRAME,
      "Each clip after the first is generated image-to-video from the "
      "previous clip's last decoded frame (ovivaedec sends it back), which "
      "is not shown twice",
      "last-frame" },
    { 0, NULL, NULL },
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstOviContinuation", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

const char *
gst_ovi_enum_nick (GType type, gint value)
{
  GEnumClass *klass = g_type_class_ref (type);
  GEnumValue *v = g_enum_get_value (klass, value);
  const char *nick = v ? v->value_nick : "?";
  g_type_class_unref (klass); /* static types: the class stays */
  return nick;
}

const char *
gst_ovi_model_variant (GstOviModel model)
{
  if (model == GST_OVI_MODEL_AUTO)
    return NULL;
  return gst_ovi_enum_nick (GST_TYPE_OVI_MODEL, model);
}

gboolean
gst_ovi_vram_mode_needs_gpu (GstOviVramMode mode)
{
  return mode != GST_OVI_VRAM_MODE_AUTO;
}

gboolean
gst_ovi_gpu_allocation_is_multi_gpu (GstOviGpuAllocation alloc)
{
  return alloc != GST_OVI_GPU_ALLOCATION_AUTO
         && alloc != GST_OVI_GPU_ALLOCATION_SINGLE;
}
