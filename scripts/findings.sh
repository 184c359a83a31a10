#!/usr/bin/env bash
# Regenerates docs/findings.md's evidence: each framework adapter's verdict table on a grid (default
# the smoke preset) and a re-check of every minimized case in findings/<framework>/<case>/.
#
#   scripts/findings.sh [--preset P] [FRAMEWORK...]     (default: every framework whose venv exists)
#
# Frameworks: torch torch-cl ort21 ort18 flax flax-two-pass tinygrad openvino openvino-f32 tract
# keras paddle. Each table goes to out/findings/<framework>/ (report.json, report.md, junit.xml);
# a framework whose Python environment is missing (scripts/adapters-setup.sh creates them) is
# reported as SKIPPED. A minimized case is expected to go on failing (gnv check exit 1, or, for
# a case whose name says "rank2", any verdict but PASS); one that passes now is reported as
# "no longer reproduces" (fixed upstream, or a change in the adapter) and the script exits 1.
# Needs build/default/gnv (cmake --build --preset default).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
gnv=build/default/gnv
[ -x "$gnv" ] || { echo "findings.sh: $gnv is missing: cmake --preset default && cmake --build --preset default" >&2; exit 2; }
preset=smoke
if [ "${1:-}" = "--preset" ]; then preset=${2:?--preset needs a value}; shift 2; fi

# name | python | runner file and options | gnv options | findings folder
table=(
  "torch|/usr/bin/python3|adapters/torch_runner.py|--runner-name torch-cpu|"
  "torch-cl|/usr/bin/python3|adapters/torch_runner.py --memory-format channels_last|--runner-name torch-cpu-cl|torch-cl"
  "ort21|build/adapters-venv/bin/python|adapters/ort_runner.py --opset 21|--runner-name ort21 --no-stats --no-backward|"
  "ort18|build/adapters-venv/bin/python|adapters/ort_runner.py --opset 18|--runner-name ort18 --no-stats --no-backward|"
  "flax|build/adapters-venv/bin/python|adapters/jax_runner.py|--runner-name flax --no-stats|"
  "flax-two-pass|build/adapters-venv/bin/python|adapters/jax_runner.py --variance two-pass|--runner-name flax-two-pass --no-stats|"
  "tinygrad|build/venv-tinygrad/bin/python|adapters/tinygrad_runner.py|--runner-name tinygrad --no-stats|tinygrad"
  "openvino|build/venv-openvino/bin/python|adapters/openvino_runner.py|--runner-name openvino --no-stats --no-backward|openvino"
  "openvino-f32|build/venv-openvino/bin/python|adapters/openvino_runner.py --precision-hint f32|--runner-name openvino-f32 --no-stats --no-backward|"
  "tract|build/venv-tract/bin/python|adapters/tract_runner.py --opset 21|--runner-name tract --no-stats --no-backward|tract"
  "keras|build/venv-tf/bin/python|adapters/keras_runner.py|--runner-name keras --no-stats|keras"
  "paddle|build/venv-paddle/bin/python|adapters/paddle_runner.py|--runner-name paddle --no-stats|paddle"
)
want=("$@")
status=0
summary=()
for row in "${table[@]}"; do
  IFS='|' read -r name py runner opts folder <<<"$row"
  if [ ${#want[@]} -gt 0 ] && [[ ! " ${want[*]} " == *" $name "* ]]; then continue; fi
  if [ ! -x "$py" ] || ! "$py" -c "import gnv" 2>/dev/null; then
    summary+=("$name: SKIPPED ($py missing or without the gnv package: scripts/adapters-setup.sh, then CTest python-install)")
    continue
  fi
  out=out/findings/$name
  echo "findings.sh: $name: gnv validate --preset $preset -> $out" >&2
  # shellcheck disable=SC2086
  "$gnv" validate --runner "$py $runner" $opts --preset "$preset" --no-html --out "$out" >"$out.log" 2>&1
  rc=$?
  line=$(grep -m1 -E '^[0-9]+ cells, ' "$out.log" || echo "no summary (exit $rc, see $out.log)")
  summary+=("$name: $line")
  [ -n "$folder" ] && [ -d "findings/$folder" ] || continue
  for case_dir in findings/"$folder"/*/; do
    case_dir=${case_dir%/}
    # `gnv check --case` takes the backward from the case (dy.npy), not from --no-backward.
    # shellcheck disable=SC2086
    "$gnv" check --runner "$py $runner" ${opts/--no-backward/} --case "$case_dir" --impl "$(sed -E 's/.*--runner-name ([^ ]+).*/\1/' <<<"$opts")" \
      >"$out.case-$(basename "$case_dir").log" 2>&1
    crc=$?
    verdict=$(grep -m1 -oE 'verdict: [A-Z]+' "$out.case-$(basename "$case_dir").log" | cut -d' ' -f2)
    if [ "$crc" -eq 1 ] || { [[ "$case_dir" == *rank2* ]] && [ -n "$verdict" ] && [ "$verdict" != PASS ]; }; then
      summary+=("  $case_dir: still ${verdict:-fails}")
    else
      summary+=("  $case_dir: NO LONGER REPRODUCES (gnv check exit $crc, verdict ${verdict:-none}; see $out.case-$(basename "$case_dir").log)")
      status=1
    fi
  done
done
printf '%s\n' "${summary[@]}"
exit $status
