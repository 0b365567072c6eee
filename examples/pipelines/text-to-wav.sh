#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Audio only: the clip's sound as a 16 kHz mono wav (the video latent is
# generated but not decoded).
#   text-to-wav.sh OUT.wav [PROMPT]
set -euo pipefail
. "$(dirname "$0")/common.sh"
out=${1:?usage: text-to-wav.sh OUT.wav [PROMPT]}
prompt=${2:-"Rain drums on a tin roof at night. <AUDCAP>heavy rain, distant thunder<ENDAUDCAP>"}

exec "$GST_LAUNCH" -e \
  ovitextsrc prompt="$prompt" "${OVI_COMMON[@]}" \
  ! ovidenoise "${OVI_COMMON[@]}" "${OVI_DENOISE_ARGS[@]}" \
  ! oviaudiodec "${OVI_COMMON[@]}" ! audioconvert ! audio/x-raw,format=S16LE \
  ! wavenc ! filesink location="$out"
