#!/bin/sh
# gpu-parity.sh OVI CASE_DIR BACKEND [TOLERANCE]: `ovi parity` of one golden
# case on a cuda backend; exit 77 (skip) when there is no CUDA device.
ovi=$1 case_dir=$2 backend=$3 tol=$4
out=$("$ovi" parity "$case_dir" --backend "$backend" ${tol:+--tolerance "$tol"} 2>&1)
rc=$?
printf '%s\n' "$out"
case $out in
  *"no CUDA device found"*) exit 77 ;;
esac
exit $rc
