#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# gpu-bench.sh OVI ARGS...: `ovi bench ARGS` on a cuda backend, checking
# that it names the device and, with --profile, reports device time for
# GEMMs; exit 77 (skip) when there is no CUDA device.
ovi=$1
shift
out=$("$ovi" bench "$@" 2>&1)
rc=$?
printf '%s\n' "$out"
case $out in
  *"no CUDA device found"*) exit 77 ;;
esac
[ $rc -eq 0 ] || exit $rc
case $out in
  *"# device: "*) ;;
  *) echo "gpu-bench.sh: no device line"; exit 1 ;;
esac
case " $* " in
  *" --profile "*)
    case $out in
      *"#   gemm "*) ;;
      *) echo "gpu-bench.sh: --profile printed no gemm time"; exit 1 ;;
    esac ;;
esac
exit 0
