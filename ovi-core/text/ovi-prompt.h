/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: prompt handling as the official engine does it
 * (ovi_fusion_engine.py): the audio-caption syntax rewrite per model variant
 * and the default negative prompts (inference_fusion.yaml). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* inference_fusion.yaml's video_negative_prompt / audio_negative_prompt */
#define OVI_DEFAULT_VIDEO_NEGATIVE "jitter, bad hands, blur, distortion"
#define OVI_DEFAULT_AUDIO_NEGATIVE "robotic, muffled, echo, distorted"

/* The variant's text formatter. audcap_syntax TRUE (720x720_5s): the first
 * "Audio:" and any whitespace after it, up to the end of the text, become
 * "<AUDCAP>rest<ENDAUDCAP>" (Python: re.sub(r"Audio:\s*(.*)",
 * r"<AUDCAP>\1<ENDAUDCAP>", flags=re.S)). FALSE (960x960 models): every
 * "<AUDCAP>x<ENDAUDCAP>" (shortest match) becomes "Audio: x". */
char *ovi_prompt_format (const char *prompt, gboolean audcap_syntax);

G_END_DECLS
