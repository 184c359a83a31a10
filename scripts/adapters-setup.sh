#!/usr/bin/env bash
# Creates the Python environments of the framework adapters, each a venv of its own with wheels
# from PyPI pinned to the versions the docs/findings.md "Findings" were measured with:
#   build/adapters-venv   adapters/ort_runner.py and adapters/jax_runner.py: ONNX Runtime, onnx,
#                         JAX (CPU) and Flax
#   build/venv-tinygrad   adapters/tinygrad_runner.py: tinygrad (its CPU device compiles with clang)
#   build/venv-openvino   adapters/openvino_runner.py: OpenVINO (CPU plugin)
#   build/venv-tract      adapters/tract_runner.py: tract's Python binding and onnx
#   build/venv-tf         adapters/keras_runner.py: TensorFlow (CPU) and Keras 3
#   build/venv-paddle     adapters/paddle_runner.py: PaddlePaddle (CPU)
#   build/venv-ncnn       adapters/ncnn_runner.py: Tencent's ncnn (CPU)
#   build/venv-diffusers  adapters/diffusers_runner.py: diffusers on Debian's python3-torch
#   build/venv-torch2     only with --torch2: the current PyTorch wheel from PyPI (2.15.0, its CUDA
#                         build, run on the CPU) for adapters/torch_runner.py; 5.4 GB and about 80 s
#                         (measured 2026-12-06), so neither CI nor bootstrap.sh creates it
# No Debian site packages (but in venv-diffusers): these wheels need numpy 2, Debian's python3-torch
# (adapters/torch_runner.py, run with /usr/bin/python3) needs its numpy 1.24. The gnv package
# itself is installed into each by CTest's python-install. Idempotent and silent when a venv is
# already there; a venv whose install fails is removed and named on stderr (its adapter tests then
# report SKIPPED), and the script exits 1 after trying the others.
# Called by scripts/bootstrap.sh --adapters. Usage: scripts/adapters-setup.sh [--torch2]
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
failed=0
# make_venv DIR "REQUIREMENTS" "MODULES TO IMPORT" [--system-site-packages]
make_venv() {
  local venv=$1 reqs=$2 imports=$3 system=${4:-}
  local stamp="$venv/.gnv-requirements"
  [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$reqs" ] && return 0
  echo "adapters-setup: installing $reqs into $venv" >&2
  rm -rf "$venv"
  # shellcheck disable=SC2086
  if /usr/bin/python3 -m venv $system "$venv" && "$venv/bin/python" -m pip install -q --disable-pip-version-check $reqs &&
     "$venv/bin/python" -c "import $imports"; then
    echo "$reqs" > "$stamp"
  else
    echo "adapters-setup: WARNING: $venv could not be created ($reqs); its adapter tests will report SKIPPED" >&2
    rm -rf "$venv"
    failed=1
  fi
}
make_venv build/adapters-venv "onnxruntime==1.32.0 onnx==1.23.2 jax[cpu]==0.10.2 jaxlib==0.10.2 flax==0.12.8" \
  "onnxruntime, onnx, jax, flax"
make_venv build/venv-tinygrad "tinygrad==0.14.0 numpy==2.4.6 ml_dtypes==0.7.0" "tinygrad, numpy, ml_dtypes"
make_venv build/venv-openvino "openvino==2026.4.1 openvino-telemetry==2025.2.0 numpy==2.4.6 ml_dtypes==0.7.0" \
  "openvino, numpy, ml_dtypes"
make_venv build/venv-tf "tensorflow-cpu==2.21.0 keras==3.15.1 numpy==2.4.6 ml_dtypes==0.7.0" \
  "tensorflow, keras, numpy, ml_dtypes"
make_venv build/venv-paddle "paddlepaddle==3.3.1 numpy==2.4.6 ml_dtypes==0.7.0" "paddle, numpy, ml_dtypes"
make_venv build/venv-tract "tract==0.23.9 onnx==1.23.2 numpy==2.4.6 ml_dtypes==0.7.0" "tract, onnx, numpy, ml_dtypes"
make_venv build/venv-ncnn "ncnn==1.0.20261020 numpy==2.4.6 ml_dtypes==0.7.0" "ncnn, numpy, ml_dtypes"
# diffusers on Debian's torch 1.13 (python3-torch, from the system site packages): 0.27.2 is a
# release that still imports on torch 1.13 (0.42 needs torch >= 2.6); ml_dtypes pinned against
# Debian's numpy 1.24, as in build/py-venv.
make_venv build/venv-diffusers "diffusers==0.27.2 huggingface-hub==0.25.2 ml_dtypes==0.5.4" "diffusers, torch, ml_dtypes" \
  --system-site-packages
if [ "${1:-}" = "--torch2" ]; then
  make_venv build/venv-torch2 "torch==2.15.0 numpy==2.4.6 ml_dtypes==0.7.0" "torch, numpy, ml_dtypes"
fi
exit $failed
