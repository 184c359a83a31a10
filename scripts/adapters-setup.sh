#!/usr/bin/env bash
# Creates build/adapters-venv, the Python environment of adapters/ort_runner.py and
# adapters/jax_runner.py: ONNX Runtime, onnx, JAX (CPU) and Flax wheels from PyPI, pinned to the
# versions the docs/findings.md "Findings" were measured with. A venv of its own, without Debian's site
# packages: these wheels need numpy 2, Debian's python3-torch (adapters/torch_runner.py, run with
# /usr/bin/python3) needs its numpy 1.24. Idempotent and silent when the venv is already there.
# Called by scripts/bootstrap.sh --adapters. Usage: scripts/adapters-setup.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv=${1:-build/adapters-venv}
reqs="onnxruntime==1.32.0 onnx==1.23.2 jax[cpu]==0.10.2 jaxlib==0.10.2 flax==0.12.8"
stamp="$venv/.gnv-requirements"
[ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$reqs" ] && exit 0
echo "adapters-setup: installing $reqs into $venv" >&2
rm -rf "$venv"
/usr/bin/python3 -m venv "$venv"
# shellcheck disable=SC2086
"$venv/bin/python" -m pip install -q --disable-pip-version-check $reqs
"$venv/bin/python" -c "import onnxruntime, onnx, jax, flax"
echo "$reqs" > "$stamp"
