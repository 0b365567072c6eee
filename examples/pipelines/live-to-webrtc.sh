#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Live generation to a browser over WebRTC (webrtcbin, VP8 + Opus): starts
# the sender with its loopback signalling server, then open the printed
# address (http://127.0.0.1:PORT/) in a browser; webrtc-player.html fetches
# the offer, answers and plays. One viewer per run; Ctrl-C stops it.
#   live-to-webrtc.sh [PORT] [PROMPT] [NUM_CLIPS]   (NUM_CLIPS: 100)
# Needs python3-gi, gir1.2-gst-plugins-bad-1.0 and gstreamer1.0-nice.
set -euo pipefail
. "$(dirname "$0")/common.sh"
port=${1:-8080}
prompt=${2:-"A drone flies over a mountain lake at sunrise. <AUDCAP>wind, calm music<ENDAUDCAP>"}
clips=${3:-100}

exec /usr/bin/python3 "$(dirname "$0")/live-to-webrtc.py" --port "$port" \
  --clips "$clips" "$prompt"
