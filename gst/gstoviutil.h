/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: pure helpers of the ovi elements (no engine, unit-tested):
 * timestamp arithmetic and the prompt-file parser. (The per-clip A/V length
 * rule, size snapping and the i2v resize are the engine's:
 * ovi_clip_audio_start/samples, ovi_snap_hw_t2v, ovi_image_prepare_rgb8.) */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_OVI_FPS_N                    24
#define GST_OVI_FPS_D                    1
#define GST_OVI_AUDIO_RATE               16000
#define GST_OVI_AUDIO_SAMPLES_PER_LATENT 512

/* pixel frames the Wan2.2 VAE makes from F latent frames: 1 + 4 (F - 1) */
guint gst_ovi_video_frames_for_latent (guint latent_frames);

/* Time of global video frame `frame` (frames counted from the stream start,
 * at 24/1): frame * GST_SECOND / 24, rounded down, so consecutive frames
 * leave no gaps. */
GstClockTime gst_ovi_frame_time (guint64 frame);

/* One entry of a prompt file. `overrides` (may be NULL) is an "ovi-clip"
 * structure with any of: seed (guint64), steps (gint), shift (gdouble),
 * video-guidance-scale (gdouble), audio-guidance-scale (gdouble),
 * slg-layer (gint), solver (string), width (gint), height (gint). */
typedef struct {
  gchar *prompt;
  gchar *video_negative_prompt; /* NULL: the element's property */
  gchar *audio_negative_prompt;
  GstStructure *overrides;
} GstOviPromptEntry;

GstOviPromptEntry *gst_ovi_prompt_entry_new (const gchar *prompt);
GstOviPromptEntry *gst_ovi_prompt_entry_copy (const GstOviPromptEntry *e);
void gst_ovi_prompt_entry_free (GstOviPromptEntry *e);

/* Parses a prompt file: one prompt per line, or one JSON object per line
 * ({"prompt": "...", "seed": 7, "video_negative_prompt": "..."}; keys may
 * also use dashes). Empty lines and lines starting with '#' are skipped.
 * Returns a GPtrArray of GstOviPromptEntry, or NULL with an error naming
 * the line. */
GPtrArray *gst_ovi_parse_prompts (const gchar *text, const gchar *name,
                                  GError **error);
GPtrArray *gst_ovi_load_prompt_file (const gchar *location, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GstOviPromptEntry, gst_ovi_prompt_entry_free)

G_END_DECLS
