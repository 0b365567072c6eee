#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Pushes generated clips to an RTMP server: H.264 (zerolatency, I420) + AAC
# at 44.1 kHz in FLV. This pipeline is paced by generation: for a steady live
# stream use live-channel.sh rtmp://..., see docs/elements.md.
#   rtmp-push.sh rtmp://HOST:PORT/APP/STREAM [PROMPT] [NUM_CLIPS]
set -euo pipefail
. "$(dirname "$0")/common.sh"
url=${1:?usage: rtmp-push.sh rtmp://HOST/APP/STREAM [PROMPT] [NUM_CLIPS]}
prompt=${2:-"A drone flies over a mountain lake at sunrise. <AUDCAP>wind, calm music<ENDAUDCAP>"}
clips=${3:-1}

exec "$GST_LAUNCH" -e \
  ovitextsrc prompt="$prompt" num-clips="$clips" "${OVI_COMMON[@]}" \
  ! ovidenoise "${OVI_COMMON[@]}" "${OVI_DENOISE_ARGS[@]}" ! tee name=t \
  t. ! queue ! ovivaedec "${OVI_COMMON[@]}" ! videoconvert \
     ! video/x-raw,format=I420 ! x264enc tune=zerolatency key-int-max=48 \
     ! h264parse ! queue ! mux. \
  t. ! queue ! oviaudiodec "${OVI_COMMON[@]}" ! audioconvert ! audioresample \
     ! audio/x-raw,rate=44100 ! avenc_aac ! aacparse ! queue ! mux. \
  flvmux name=mux streamable=true ! rtmp2sink location="$url"
