#!/usr/bin/env bash
# The main job: build gnv and run the default suite; results in out/ at the repository root
# (suite.json, suite.md, cases/ for failures). Extra arguments go to `gnv suite`
# (e.g. --impl welford --dtype f32, or --out DIR, resolved from the caller's directory).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/bootstrap.sh"
# Presets are looked up in the current directory.
(cd "$root" && cmake --preset default >/dev/null && cmake --build --preset default --target gnv)
exec "$root/build/default/gnv" suite --out "$root/out" "$@"
