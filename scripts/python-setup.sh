#!/usr/bin/env bash
# The Python environment of the package's tests (docs/python.md "From Python"): build/py-venv, a virtual
# environment over Debian's Python that also sees Debian's numpy and PyTorch (python3-torch,
# installed by `bootstrap.sh --adapters`), with the package's build and test dependencies from PyPI.
# numpy stays Debian's: ml_dtypes is resolved against it (PyTorch 1.13 does not run on numpy 2).
# gnv itself is built and installed into it by the CTest test `python` (tests/python_test.sh), so
# the tests always see the working tree. Idempotent; needs PyPI the first time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv=build/py-venv
stamp=$venv/.gnv-deps-1
[ -f "$stamp" ] && exit 0
echo "python-setup: creating $venv (scikit-build-core, nanobind, pytest, ml_dtypes from PyPI)" >&2
/usr/bin/python3 -m venv --system-site-packages "$venv"
numpy_version=$(/usr/bin/python3 -c 'import numpy; print(numpy.__version__)')
constraints=$(mktemp)
echo "numpy==$numpy_version" >"$constraints"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -c "$constraints" \
  "scikit-build-core==1.1.2" "nanobind==2.15.0" "pytest==9.2.0" "ml_dtypes==0.5.4"
rm -f "$constraints"
touch "$stamp"
