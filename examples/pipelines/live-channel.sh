#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A live channel that never stalls: output at real time, 24 fps and 44.1 kHz
# with contiguous timestamps, however slowly the clips are generated. A live
# slate and live silence feed compositor and audiomixer; the live generation
# is their second input, each clip stamped with the running time at which its
# generation started (timestamps=running-time: the contiguous default would
# make clips slower than real time later and later for the aggregators). The aggregators wait the pipeline latency (ovidenoise
# answers a clip's generation time) for each output frame, so every clip goes
# out whole and in sync as soon as it is ready; between clips the compositor
# repeats the clip's last frame and the mixer plays silence. Before the first
# clip and after the last one the slate shows. docs/elements.md, "A channel
# that never stalls", explains the choice.
#   live-channel.sh OUT [PROMPT] [NUM_CLIPS]
#     OUT        rtmp://HOST/APP/STREAM (FLV: H.264 + AAC) or a file
#                (Matroska: H.264 + FLAC)
#     NUM_CLIPS  100; then the slate runs until Ctrl-C
#   OVI_CHANNEL_SIZE    WxH of the channel (96x64 for the tiny model, 704x704
#                       with OVI_MODEL_DIR); clips are scaled to it
#   OVI_CHANNEL_SLATE   an image file for the slate (default: a test pattern)
#   OVI_CHANNEL_MARGIN  ns the aggregators wait on top of the latency they
#                       query, for a clip slower than the last (1 s)
set -euo pipefail
. "$(dirname "$0")/common.sh"
usage="usage: live-channel.sh OUT [PROMPT] [NUM_CLIPS]"
out=${1:?$usage}
prompt=${2:-"A drone flies over a mountain lake at sunrise. <AUDCAP>wind, calm music<ENDAUDCAP>"}
clips=${3:-100}
if [ -n "${OVI_MODEL_DIR:-}" ]; then
  size=${OVI_CHANNEL_SIZE:-704x704}
else
  size=${OVI_CHANNEL_SIZE:-96x64}
fi
width=${size%x*}
height=${size#*x}
margin=${OVI_CHANNEL_MARGIN:-1000000000}
video="video/x-raw,width=$width,height=$height,framerate=24/1"
audio="audio/x-raw,format=F32LE,rate=44100,channels=1"

# the slate is a live source, so that EOS (Ctrl-C with -e) ends it: an image
# goes over it with gdkpixbufoverlay (imagefreeze would not end)
slate=(videotestsrc is-live=true pattern=smpte ! "$video")
if [ -n "${OVI_CHANNEL_SLATE:-}" ]; then
  slate+=(! gdkpixbufoverlay location="$OVI_CHANNEL_SLATE"
          overlay-width="$width" overlay-height="$height")
fi
case $out in
  rtmp://* | rtmps://*)
    encode_audio=(avenc_aac ! aacparse)
    # flvmux times out like the aggregators (matroskamux waits for both):
    # 0.5 s for an encoder behind (less than the queues' 1 s before it).
    # sync=false: the aggregators already pace the stream on the clock, and
    # a synced sink could stall: its clock wait is set with the latency of
    # the moment and is not shortened by a later LATENCY event (basesink),
    # so a buffer reaching it while ovidenoise still answers its first
    # estimate (1 s a step, 300 s for the tiny model) waits that long
    mux=(flvmux name=mux streamable=true latency=500000000
         ! rtmp2sink location="$out" sync=false) ;;
  *)
    encode_audio=(audioconvert dithering=none ! "audio/x-raw,format=S16LE"
                  ! flacenc)
    mux=(matroskamux name=mux ! filesink location="$out") ;;
esac

exec "$GST_LAUNCH" -e \
  compositor name=comp background=black latency="$margin" sink_0::zorder=0 \
     sink_1::zorder=1 "sink_1::width=$width" "sink_1::height=$height" \
  ! "$video" ! videoconvert ! video/x-raw,format=I420 \
  ! x264enc tune=zerolatency key-int-max=48 ! h264parse ! queue ! mux. \
  audiomixer name=mix latency="$margin" ! "$audio" ! "${encode_audio[@]}" \
  ! queue ! mux. \
  "${mux[@]}" \
  "${slate[@]}" ! comp.sink_0 \
  audiotestsrc is-live=true wave=silence ! "$audio" ! mix. \
  ovitextsrc is-live=true timestamps=running-time prompt="$prompt" \
     num-clips="$clips" "${OVI_COMMON[@]}" \
  ! ovidenoise "${OVI_COMMON[@]}" "${OVI_DENOISE_ARGS[@]}" ! tee name=t \
  t. ! queue ! ovivaedec "${OVI_COMMON[@]}" ! videoconvert ! comp.sink_1 \
  t. ! queue ! oviaudiodec "${OVI_COMMON[@]}" ! audioconvert ! audioresample \
     ! "$audio" ! mix.
