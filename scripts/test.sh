#!/usr/bin/env bash
# Builds everything with the default preset and runs every test through CTest.
# Extra arguments go to ctest (e.g. -L cli, -R Oracle, --repeat until-fail:3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/bootstrap.sh
cmake --preset default
cmake --build --preset default
exec ctest --preset default "$@"
