#!/usr/bin/env bash
# CTest `python-install` (the fixture of `python` and of the Python adapters' tests): builds the
# package's wheel from this working tree (scikit-build-core, incremental through the build
# directory $2) and installs it into build/py-venv and, when it exists, build/adapters-venv (the
# ONNX Runtime / JAX runners import gnv there; the module does not link numpy, so one wheel serves
# numpy 1 and 2). SKIPPED (77) without build/py-venv: scripts/python-setup.sh (bootstrap) makes it.
set -euo pipefail
src=$1
build_dir=$2
venv=$src/build/py-venv
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.gnv-deps-1" ]; then
  echo "python-install: SKIPPED: $venv is missing (scripts/python-setup.sh, run by bootstrap.sh, creates it)"
  exit 77
fi
wheels=$build_dir/wheels
rm -rf "$wheels"
start=$(date +%s)
"$venv/bin/python" -m pip wheel -q --disable-pip-version-check --no-build-isolation --no-deps \
  --config-settings=build-dir="$build_dir/build" -w "$wheels" "$src"
echo "python-install: wheel built in $(( $(date +%s) - start )) s: $(ls "$wheels")"
for py in "$venv/bin/python" "$src/build/adapters-venv/bin/python" "$src"/build/venv-*/bin/python; do
  [ -x "$py" ] || continue
  "$py" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall "$wheels"/gnv-*.whl
  "$py" -c "import gnv, sys; print('python-install:', sys.executable, 'imports gnv', gnv.__version__)"
done
