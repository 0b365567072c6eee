/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: caps and metadata the ovi elements exchange.
 *
 * application/x-ovi-text (ovitextsrc -> ovidenoise): one buffer per clip
 *   with three GstMemory blocks, the umT5 hidden states of the prompt, the
 *   video negative prompt and the audio negative prompt, each [n_i, dim]
 *   F32 row-major (n_i = block size / (dim * 4)). Fields: dtype=F32,
 *   dim (4096 for the real umT5-XXL). A GstOviClipMeta carries the prompt
 *   and its per-clip overrides.
 * application/x-ovi-latent (ovidenoise -> tee -> ovivaedec / oviaudiodec):
 *   one buffer per clip with two GstMemory blocks, 0 = video latent
 *   [video-channels, video-frames, video-height, video-width], 1 = audio
 *   latent [audio-length, audio-channels], both F32 row-major. The decoders
 *   take everything they need from the caps: `width`/`height`/`frames` are
 *   the decoded video size and frame count, framerate=24/1, rate=16000.
 *   Buffer PTS = clip start, DURATION = clip length, OFFSET/OFFSET_END = the
 *   global video frame range of the clip (the A/V rule in gstoviutil.h).
 */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_OVI_TEXT_CAPS                                                      \
  "application/x-ovi-text, dtype = (string) F32, "                             \
  "dim = (int) [ 1, 65536 ]"

#define GST_OVI_LATENT_CAPS                                                    \
  "application/x-ovi-latent, "                                                 \
  "dtype = (string) F32, "                                                     \
  "video-channels = (int) [ 1, 1024 ], video-frames = (int) [ 1, 10000 ], "    \
  "video-height = (int) [ 1, 4096 ], video-width = (int) [ 1, 4096 ], "        \
  "audio-length = (int) [ 1, 1000000 ], audio-channels = (int) [ 1, 1024 ], "  \
  "width = (int) [ 1, 65536 ], height = (int) [ 1, 65536 ], "                  \
  "frames = (int) [ 1, 100000 ], framerate = (fraction) 24/1, "                \
  "rate = (int) 16000"

/* transform_caps' answer: `caps` (taken) within `filter` (may be NULL), in
 * the filter's order of preference */
GstCaps *gst_ovi_caps_filter (GstCaps *caps, GstCaps *filter);

/* The per-clip metadata (a GstCustomMeta named "GstOviClipMeta") with a
 * structure holding: clip (guint), prompt (string), and the overrides of
 * the prompt file (seed, steps, ... see GstOviPromptEntry). */
#define GST_OVI_CLIP_META_NAME "GstOviClipMeta"

void gst_ovi_clip_meta_register (void);
/* adds the meta; returns its writable structure */
GstStructure *gst_ovi_buffer_add_clip_meta (GstBuffer *buffer);
/* the structure of the buffer's clip meta, or NULL */
GstStructure *gst_ovi_buffer_get_clip_meta (GstBuffer *buffer);

/* continuation=last-frame. ovivaedec sends each clip's last decoded frame
 * back upstream in a GST_EVENT_CUSTOM_UPSTREAM of this name: clip
 * (guint64, the latent's clip meta), frame (guint64, its stream index),
 * caps (GstCaps, video/x-raw RGB at the clip's size), buffer (GstBuffer,
 * the packed RGB frame, the same bytes it pushes in RGB). ovidenoise asks
 * for it with a custom downstream query of the same name, which ovivaedec
 * answers. A latent buffer's clip meta then says with shared-frames (guint)
 * how many of its first decoded frames were already shown. */
#define GST_OVI_LAST_FRAME "ovi-last-frame"

G_END_DECLS
