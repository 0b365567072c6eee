#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Image-to-video: the image (any format decodebin reads) is the first frame.
#   image-to-mp4.sh IMAGE OUT.mp4 [PROMPT]
set -euo pipefail
. "$(dirname "$0")/common.sh"
image=${1:?usage: image-to-mp4.sh IMAGE OUT.mp4 [PROMPT]}
out=${2:?usage: image-to-mp4.sh IMAGE OUT.mp4 [PROMPT]}
prompt=${3:-"The scene comes alive; a gentle breeze moves through it. <AUDCAP>wind, birdsong<ENDAUDCAP>"}

exec "$GST_LAUNCH" -e \
  filesrc location="$image" ! decodebin ! videoconvert ! den.image \
  ovitextsrc prompt="$prompt" "${OVI_COMMON[@]}" \
  ! ovidenoise name=den "${OVI_COMMON[@]}" "${OVI_DENOISE_ARGS[@]}" ! tee name=t \
  t. ! queue ! ovivaedec "${OVI_COMMON[@]}" ! videoconvert \
     ! video/x-raw,format=I420 ! x264enc ! h264parse ! queue ! mux. \
  t. ! queue ! oviaudiodec "${OVI_COMMON[@]}" ! audioconvert ! audioresample \
     ! avenc_aac ! aacparse ! queue ! mux. \
  mp4mux name=mux ! filesink location="$out"
