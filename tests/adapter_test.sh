#!/usr/bin/env bash
# Validates one third-party adapter on a small grid (section small, both layouts) where that
# framework is known to pass (README "Findings" lists where each one fails, and why): a cell that
# does not pass fails the test. Exit 77 (CTest: SKIPPED) when its framework is not installed.
# Usage: adapter_test.sh GNV torch|ort|jax PYTHON [runner options...]
#   torch: f32/f64, normal, offset:1e4, constant, forward and backward
#   ort:   f32/f16, normal, offset:1, forward only, no statistics (ONNX Runtime gives neither)
#   jax:   f32/f64, normal, offset:1 (offset:1e4 with --variance two-pass), forward and backward,
#          no statistics
set -u
gnv=${1:?usage: adapter_test.sh GNV ADAPTER PYTHON [OPTIONS...]}
adapter=$2
py=$3
shift 3
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
case $adapter in
  torch) module=torch; grid=(--dtype f32,f64 --stress normal,offset:1e4,constant) ;;
  ort) module=onnxruntime; grid=(--dtype f32,f16 --stress normal,offset:1 --no-stats --no-backward) ;;
  jax) module=flax
       stress=normal,offset:1; case " $* " in *" two-pass "*) stress=normal,offset:1e4 ;; esac
       grid=(--dtype f32,f64 --stress $stress --no-stats) ;;
  *) echo "unknown adapter $adapter"; exit 2 ;;
esac
if ! "$py" -c "import $module" 2>/dev/null; then
  echo "SKIPPED: $py cannot import $module (scripts/bootstrap.sh --adapters installs it)"
  exit 77
fi
"$gnv" validate --runner "$py $here/adapters/${adapter}_runner.py $*" --runner-name "$adapter" \
  "${grid[@]}" --section small --no-html --out "$tmp/out"
rc=$?
r="$tmp/out/report.json"
[ -s "$r" ] || { echo "FAIL: gnv validate exit $rc and no report"; exit 1; }
# Cases the framework declines by design (channels_last of a non-4-d tensor) are errors, not
# findings; anything else not passing fails the test.
bad=$(grep '"verdict":"' "$r" | grep -v '"verdict":"PASS"' | grep -vc 'channels_last needs 4-d input')
pass=$(grep -c '"verdict":"PASS"' "$r")
[ "$pass" -gt 0 ] || { echo "FAIL: no cell passed"; exit 1; }
[ "$bad" -eq 0 ] || { echo "FAIL: $bad cells did not pass (gnv exit $rc):"; grep '"verdict":"' "$r" | grep -v '"verdict":"PASS"' | head -5 | cut -c1-400; exit 1; }
echo "ok: $adapter $* passes the small grid"
