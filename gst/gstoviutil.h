/* gst-ovi: pure helpers of the ovi elements (no engine, unit-tested):
 * timestamp arithmetic, the per-clip A/V length rule and the prompt-file
 * parser. (Size snapping and the i2v resize are the engine's:
 * ovi_snap_hw_t2v, ovi_image_prepare_rgb8.) */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_OVI_FPS_N                    24
#define GST_OVI_FPS_D                    1
#define GST_OVI_AUDIO_RATE               16000
#define GST_OVI_AUDIO_SAMPLES_PER_LATENT 512

/* pixel frames the Wan2.2 VAE makes from F latent frames: 1 + 4 (F - 1) */
guint gst_ovi_video_frames_for_latent(guint latent_frames);

/* Time of global video frame `frame` (frames counted from the stream start,
 * at 24/1): frame * GST_SECOND / 24, rounded down, so consecutive frames
 * leave no gaps. */
GstClockTime gst_ovi_frame_time(guint64 frame);

/* The A/V rule of one clip. A clip is the video frames
 * [first_frame, first_frame + n_frames) of the stream; both streams of the
 * clip start at gst_ovi_frame_time (first_frame) and the next clip starts at
 * gst_ovi_frame_time (first_frame + n_frames). The audio of the clip is the
 * samples of the global 16 kHz grid that fall in that interval:
 *   round (end * 16000 / 24) - round (first * 16000 / 24)
 * so a clip of 121 frames (5.0417 s) carries 80666 or 80667 samples and the
 * audio never drifts from the video, however many clips follow. The vocoder
 * makes L * 512 samples (80384 for L = 157): the decoder pads the rest with
 * silence or trims the excess at the end of the clip. */
guint64 gst_ovi_clip_audio_samples(guint64 first_frame, guint n_frames);
/* the global sample index where the clip starting at `frame` starts */
guint64 gst_ovi_frame_to_sample(guint64 frame);

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

GstOviPromptEntry *gst_ovi_prompt_entry_new(const gchar *prompt);
GstOviPromptEntry *gst_ovi_prompt_entry_copy(const GstOviPromptEntry *e);
void gst_ovi_prompt_entry_free(GstOviPromptEntry *e);

/* Parses a prompt file: one prompt per line, or one JSON object per line
 * ({"prompt": "...", "seed": 7, "video_negative_prompt": "..."}; keys may
 * also use dashes). Empty lines and lines starting with '#' are skipped.
 * Returns a GPtrArray of GstOviPromptEntry, or NULL with an error naming
 * the line. */
GPtrArray *gst_ovi_parse_prompts(const gchar *text, const gchar *name,
                                 GError **error);
GPtrArray *gst_ovi_load_prompt_file(const gchar *location, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(GstOviPromptEntry, gst_ovi_prompt_entry_free)

G_END_DECLS
