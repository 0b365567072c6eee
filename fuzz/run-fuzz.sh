#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# run-fuzz.sh FUZZER SEED_CORPUS SECONDS
#
# One libFuzzer target under ASan + UBSan, as the `fuzz` suite runs it:
# first every input of the seed corpus once (a replay: an out-of-bounds read
# that would not crash a plain build is reported here), then SECONDS of
# fuzzing from that corpus. New inputs and any crash file go to a scratch
# folder, never into the source tree; a crash prints its input in hex so
# the test log alone reproduces it.
set -euo pipefail

fuzzer=$1 seeds=$2 seconds=$3
scratch=$(mktemp -d "${TMPDIR:-/tmp}/ovi-fuzz-XXXXXX")
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/corpus" "$scratch/crashes"
name=$(basename "$fuzzer")

report_crash() {
  for f in "$scratch"/crashes/*; do
    [ -e "$f" ] || continue
    echo "== $name: crashing input $(basename "$f") ($(stat -c %s "$f") bytes):"
    od -An -tx1 -v "$f" | head -n 64
  done
  exit 1
}

export ASAN_OPTIONS=abort_on_error=0:detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

echo "== $name: replay of $(find "$seeds" -type f | wc -l) seed inputs"
"$fuzzer" -runs=0 -artifact_prefix="$scratch/crashes/" "$seeds" || report_crash

echo "== $name: fuzzing for $seconds s"
status=0
"$fuzzer" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$scratch/crashes/" \
  "$scratch/corpus" "$seeds" >"$scratch/log" 2>&1 || status=$?
grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)' \
  "$scratch/log" || true
if [ "$status" -ne 0 ] || [ -n "$(ls -A "$scratch/crashes")" ]; then
  tail -n 60 "$scratch/log"
  report_crash
fi
