#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The whole test suite under AddressSanitizer and UndefinedBehaviorSanitizer, in a copy of the
# source tree (build-san/ by default, or $SAN_DIR), so the regular build/ stays as it is.
# Run by `make check-sanitizers`; the last line is make check's "N passed, N failed".
set -e
cd "$(dirname "$0")/.."
dir=${SAN_DIR:-build-san}
case $dir in /*) ;; *) dir=$(pwd)/$dir ;; esac
rm -rf "$dir"
mkdir -p "$dir"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # Tracked files and new ones not ignored: the tree as it is being worked on.
    git ls-files -z -c -o --exclude-standard | xargs -0 cp --parents -t "$dir"
else
    tar -cf - --exclude=./build --exclude="./$(basename "$dir")" . | tar -xf - -C "$dir"
fi
cd "$dir"
./configure --with-sanitizers
make check
