#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A prompt becomes an mp4: H.264 (x264) + AAC.
#   text-to-mp4.sh OUT.mp4 [PROMPT]
set -euo pipefail
. "$(dirname "$0")/common.sh"
out=${1:?usage: text-to-mp4.sh OUT.mp4 [PROMPT]}
prompt=${2:-"A chef flips a pancake in a sunny kitchen. <S>Breakfast is served!<E> <AUDCAP>sizzling pan, cheerful voice<ENDAUDCAP>"}

exec "$GST_LAUNCH" -e \
  ovitextsrc prompt="$prompt" "${OVI_COMMON[@]}" \
  ! ovidenoise "${OVI_COMMON[@]}" "${OVI_DENOISE_ARGS[@]}" ! tee name=t \
  t. ! queue ! ovivaedec "${OVI_COMMON[@]}" ! videoconvert \
     ! video/x-raw,format=I420 ! x264enc ! h264parse ! queue ! mux. \
  t. ! queue ! oviaudiodec "${OVI_COMMON[@]}" ! audioconvert ! audioresample \
     ! avenc_aac ! aacparse ! queue ! mux. \
  mp4mux name=mux ! filesink location="$out"
