#!/usr/bin/env bash
# Validates one third-party adapter on a small grid (section small, both layouts) where that
# framework is known to pass (docs/findings.md "Findings" lists where each one fails, and why): a cell that
# does not pass fails the test. Exit 77 (CTest: SKIPPED) when its framework is not installed.
# Usage: adapter_test.sh GNV torch|ort|jax|tinygrad|openvino|tract|keras|paddle|ncnn|diffusers PYTHON [runner options...]
#        adapter_test.sh GNV torch-plugin PLUGIN.so nchw|nhwc
#   (the torch, ort and jax runners are built on the gnv package: PYTHON must import gnv)
#   torch, torch-plugin: f32/f64, normal, offset:1e4, constant, forward and backward; with
#          channels_last storage (--memory-format channels_last, or the plugin on nhwc) normal and
#          offset:1 only: PyTorch 1.13's channels-last CPU kernel fails from offset:1e1 (README
#          "Findings")
#   ort:   f32/f16, normal, offset:1, forward only, no statistics (ONNX Runtime gives neither)
#   jax:   f32/f64, normal, offset:1 (offset:1e4 with --variance two-pass), forward and backward,
#          no statistics
#   tinygrad: f32/f64, normal, offset:1e4, forward and backward, no statistics
#   keras: f32/f64, normal, offset:1, forward and backward, no statistics
#   paddle: f32/f64, normal, offset:1, forward only (its backward without weight is wrong, and its
#          forward fails from offset:1e1: docs/findings.md), no statistics
#   tract: f32, normal, offset:1e4, forward only, no statistics (its f64 runs at f32 precision)
#   openvino: f32/f16, normal, offset:1e4, forward only, no statistics (run with --precision-hint
#          f32: under the CPU plugin's default hint a 2-d f16 input does not compile)
#   ncnn:  f32 (its Python API's only dtype), both layouts (the channels-last views caught an
#          input-lifetime bug of the adapter), normal, offset:1e4, forward only, no statistics
#   diffusers: ResnetBlock2D's norm1 + SiLU on two ad-hoc shapes with the SiLU epilogue (not the
#          small section), f32/f64, normal, offset:1e4, forward and backward, no statistics
set -u
gnv=${1:?usage: adapter_test.sh GNV ADAPTER PYTHON [OPTIONS...]}
adapter=$2
py=$3
shift 3
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
grid_of=(--section small)  # which cells: the small section, or an adapter's own shapes
case $adapter in
  torch-plugin)
    plugin=$py
    layout=${1:?usage: adapter_test.sh GNV torch-plugin PLUGIN.so nchw|nhwc}
    stress=normal,offset:1e4,constant; [ "$layout" = nhwc ] && stress=normal,offset:1
    if [ ! -f "$plugin" ]; then
      echo "SKIPPED: $plugin was not built (libtorch-dev missing when CMake ran; scripts/bootstrap.sh --adapters installs it)"
      exit 77
    fi ;;
  torch) module=torch
         stress=normal,offset:1e4,constant; case " $* " in *" channels_last "*) stress=normal,offset:1 ;; esac
         grid=(--dtype f32,f64 --stress $stress) ;;
  ort) module=onnxruntime; grid=(--dtype f32,f16 --stress normal,offset:1 --no-stats --no-backward) ;;
  tinygrad) module=tinygrad; grid=(--dtype f32,f64 --stress normal,offset:1e4 --no-stats) ;;
  keras) module=keras; grid=(--dtype f32,f64 --stress normal,offset:1 --no-stats) ;;
  paddle) module=paddle; grid=(--dtype f32,f64 --stress normal,offset:1 --no-stats --no-backward) ;;
  diffusers) module=diffusers; grid=(--dtype f32,f64 --stress normal,offset:1e4 --no-stats --runner-fused silu)
             grid_of=(--shape 2,32,8,8 --shape 1,64,6,6 --groups 8 --affine --epilogue silu) ;;
  tract) module=tract; grid=(--dtype f32 --stress normal,offset:1e4 --no-stats --no-backward) ;;
  openvino) module=openvino; grid=(--dtype f32,f16 --stress normal,offset:1e4 --no-stats --no-backward) ;;
  ncnn) module=ncnn; grid=(--dtype f32 --layout nchw,nhwc --stress normal,offset:1e4 --no-stats --no-backward) ;;
  jax) module=flax
       stress=normal,offset:1; case " $* " in *" two-pass "*) stress=normal,offset:1e4 ;; esac
       grid=(--dtype f32,f64 --stress $stress --no-stats) ;;
  *) echo "unknown adapter $adapter"; exit 2 ;;
esac
if [ "$adapter" = torch-plugin ]; then
  "$gnv" validate --plugin "$plugin" --dtype f32,f64 --layout "$layout" --stress "$stress" --section small \
    --no-html --out "$tmp/out"
else
  if ! "$py" -c "import $module" 2>/dev/null; then
    echo "SKIPPED: $py cannot import $module (scripts/bootstrap.sh --adapters installs it)"
    exit 77
  fi
  # The runners are built on the gnv package (the CTest python-install installs it): its absence
  # where the framework is present is a failure, not a skip.
  "$py" -c "import gnv" || { echo "FAIL: $py cannot import gnv (CTest python-install installs it)"; exit 1; }
  "$gnv" validate --runner "$py $here/adapters/${adapter}_runner.py $*" --runner-name "$adapter" \
    "${grid[@]}" "${grid_of[@]}" --no-html --out "$tmp/out"
fi
rc=$?
r="$tmp/out/report.json"
[ -s "$r" ] || { echo "FAIL: gnv validate exit $rc and no report"; exit 1; }
# Cases the framework declines by design (channels_last of a non-4-d tensor) are errors, not
# findings; any other cell that does not pass fails the test. Judged per cell from the JSON (a
# cell's line also holds its outputs' verdicts, so grepping lines would let a FAIL cell whose
# mean passed through).
/usr/bin/python3 - "$r" "$rc" "$adapter $*" <<'PY'
import json, sys
cells = json.load(open(sys.argv[1]))["cells"]
declined = "channels_last"  # gnv.torch.wrap: "channels_last: a 3-D tensor has no channels-last memory format"
passed = [c for c in cells if c["verdict"] == "PASS"]
bad = [c for c in cells if c["verdict"] != "PASS" and declined not in c.get("error", "")]
if not passed:
    sys.exit(f"FAIL: no cell passed (gnv exit {sys.argv[2]})")
if bad:
    print(f"FAIL: {len(bad)} of {len(cells)} cells did not pass (gnv exit {sys.argv[2]}):")
    for c in bad[:8]:
        outs = ", ".join(f"{o['name']} {o['verdict']} {o['max_cond_err']:.3g}" for o in c.get("outputs", []))
        print(f"  {c['id']} {c['verdict']} {c.get('error', '')[:200]} {outs}")
    sys.exit(1)
print(f"ok: {sys.argv[3]} passes its grid ({len(passed)} cells pass, {len(cells) - len(passed)} declined)")
PY
