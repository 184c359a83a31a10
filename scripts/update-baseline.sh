#!/usr/bin/env bash
# Regenerates baselines/ci.json, the baseline the CI gate (CTest test baseline_gate) compares the
# ci preset with. Run it after an intended change of accuracy or of the ci grid, and commit the
# file with the change that explains it. Extra arguments go to `gnv sweep`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/bootstrap.sh"
(cd "$root" && cmake --preset default >/dev/null && cmake --build --preset default --target gnv)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# The control must fail and nothing else may: a baseline is only written from a passing sweep.
"$root/build/default/gnv" sweep --preset ci --no-html --out "$out" --write-baseline "$out/baseline.json" "$@"
mkdir -p "$root/baselines"
mv "$out/baseline.json" "$root/baselines/ci.json"
echo "wrote baselines/ci.json ($(wc -c <"$root/baselines/ci.json") bytes)"
