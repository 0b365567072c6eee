#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A prompt file (one prompt per line, or JSON lines with per-clip overrides
# such as {"prompt": "...", "seed": 7}) becomes one mkv, clip after clip:
# H.264 + Opus.
#   prompts-to-mkv.sh PROMPTS.txt OUT.mkv
set -euo pipefail
. "$(dirname "$0")/common.sh"
prompts=${1:?usage: prompts-to-mkv.sh PROMPTS.txt OUT.mkv}
out=${2:?usage: prompts-to-mkv.sh PROMPTS.txt OUT.mkv}

exec "$GST_LAUNCH" -e \
  ovitextsrc location="$prompts" "${OVI_COMMON[@]}" \
  ! ovidenoise "${OVI_COMMON[@]}" "${OVI_DENOISE_ARGS[@]}" ! tee name=t \
  t. ! queue ! ovivaedec "${OVI_COMMON[@]}" ! videoconvert \
     ! video/x-raw,format=I420 ! x264enc ! h264parse ! queue ! mux. \
  t. ! queue ! oviaudiodec "${OVI_COMMON[@]}" ! audioconvert ! audioresample \
     ! opusenc ! opusparse ! queue ! mux. \
  matroskamux name=mux ! filesink location="$out"
