#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# gpu-parity.sh OVI CASE BACKEND [TOLERANCE]: `ovi parity` of one golden
# case on a cuda backend; exit 77 (skip) when there is no CUDA device. The
# case is looked for in $OVI_GPU_GOLDEN_DIR (scripts/gpu-check sets it to a
# carried copy on machines without ../shared/golden), else $OVI_GOLDEN_DIR.
ovi=$1 case=$2 backend=$3 tol=$4
case_dir=${OVI_GPU_GOLDEN_DIR:-$OVI_GOLDEN_DIR}/$case
out=$("$ovi" parity "$case_dir" --backend "$backend" ${tol:+--tolerance "$tol"} 2>&1)
rc=$?
printf '%s\n' "$out"
case $out in
  *"no CUDA device found"*) exit 77 ;;
esac
exit $rc
