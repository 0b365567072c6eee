#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# memcheck.sh PROGRAM [ARGS...]: run PROGRAM under valgrind memcheck and fail
# (exit 1) on any invalid access, uninitialised-value use, or definite or
# indirect leak. Exit 77 (skip) when valgrind is not installed.
command -v valgrind > /dev/null 2>&1 || { echo "valgrind not installed"; exit 77; }
supp=
for f in /usr/share/glib-2.0/valgrind/glib.supp "$(dirname "$0")/gst-ovi.supp"; do
  [ -f "$f" ] && supp="$supp --suppressions=$f"
done
G_SLICE=always-malloc
export G_SLICE
# shellcheck disable=SC2086
exec valgrind --error-exitcode=1 --leak-check=full \
  --show-leak-kinds=definite,indirect \
  --errors-for-leak-kinds=definite,indirect --num-callers=30 $supp "$@"
