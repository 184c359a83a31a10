#!/usr/bin/env bash
# CTest `python`: builds and installs the package from this working tree into build/py-venv
# (`pip install .`, incremental through the build directory $2), then runs its pytest suite.
# SKIPPED (77) when build/py-venv is missing: scripts/bootstrap.sh creates it (PyPI needed).
set -euo pipefail
src=$1
build_dir=$2
py=$src/build/py-venv/bin/python
if [ ! -x "$py" ] || [ ! -f "$src/build/py-venv/.gnv-deps-1" ]; then
  echo "python_test: SKIPPED: $src/build/py-venv is missing (scripts/python-setup.sh, run by bootstrap.sh, creates it)"
  exit 77
fi
start=$(date +%s)
"$py" -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps \
  --config-settings=build-dir="$build_dir" "$src"
echo "python_test: pip install . took $(( $(date +%s) - start )) s"
cd "$src"
exec "$py" -m pytest -q -p no:cacheprovider python/tests
