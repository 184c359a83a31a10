#!/usr/bin/env bash
# Installs exactly the Debian packages gnv needs that are missing; idempotent, silent when all present.
# Usage: scripts/bootstrap.sh [--adapters] [--with-extra PKG ...]
set -euo pipefail
packages=(
  cmake ninja-build g++ clang-14 libclang-rt-14-dev
  libeigen3-dev librapidcheck-dev libboost-dev libmpfr-dev libgmp-dev
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev libfmt-dev libhwy-dev
  python3 python3-numpy python3-matplotlib
)
# --adapters: PyTorch for adapters/torch_runner.py (python3-torch 1.13.1 and libtorch; measured
# on a machine that already had libtorch-dev: 22 s, 157 MB). Without it the adapter tests SKIP.
[ "${1:-}" = "--adapters" ] && { shift; packages+=(python3-torch libtorch-dev); }
[ "${1:-}" = "--with-extra" ] && { shift; packages+=("$@"); }
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "bootstrap: installing ${missing[*]}" >&2
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
