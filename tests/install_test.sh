#!/usr/bin/env bash
# CTest `install-consumer`: `cmake --install` of this build into a fresh prefix, then
# tests/consumer (find_package(gnv)) configured, built and run against that prefix only.
set -euo pipefail
build=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
test -x "$work/prefix/bin/gnv"
test -f "$work/prefix/include/gnv/check.h"
test -f "$work/prefix/share/licenses/gnv/LICENSE"
cmake -S "$src/tests/consumer" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/build" >/dev/null
"$work/build/consumer"
"$work/prefix/bin/gnv" --version
