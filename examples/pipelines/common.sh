# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared settings of the example pipelines (sourced, not run).
#   OVI_MODEL_DIR   the official download (unset: the tiny test model, which
#                   makes noise, not film)
#   OVI_DENOISE     extra ovidenoise properties, e.g. "model=720x720_5s seed=42"
#   GST_LAUNCH      the gst-launch-1.0 to use
GST_LAUNCH=${GST_LAUNCH:-gst-launch-1.0}
OVI_COMMON=()
if [ -n "${OVI_MODEL_DIR:-}" ]; then
  OVI_COMMON+=("model-dir=$OVI_MODEL_DIR")
fi
read -r -a OVI_DENOISE_ARGS <<< "${OVI_DENOISE:-}"
