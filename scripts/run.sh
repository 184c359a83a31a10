#!/usr/bin/env bash
# The main job: build gnv and run the default sweep (preset smoke) of the built-in
# implementations; the report in out/ at the repository root (report.json, report.md, junit.xml,
# report.html, cases/ for failures). Extra arguments go to `gnv sweep` (e.g. --preset ci,
# --impl welford --dtype f32, or --out DIR, resolved from the caller's directory).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/bootstrap.sh"
# Presets are looked up in the current directory.
(cd "$root" && cmake --preset default >/dev/null && cmake --build --preset default --target gnv)
# No --preset here: smoke is the default, and a caller's --grid or --shape must not meet a second grid.
exec "$root/build/default/gnv" sweep --out "$root/out" "$@"
