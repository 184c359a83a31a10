#!/usr/bin/env bash
# Regenerates docs/findings.md's evidence: each framework adapter's verdict table on a grid (default
# the smoke preset) and a re-check of every minimized case in findings/<framework>/<case>/.
#
#   scripts/findings.sh [--preset P] [--rewrite-repro | --repro-only] [--out DIR] [FRAMEWORK...]
#                                                       (default: every framework whose venv exists)
#
# Frameworks: torch torch-cl torch215 torch215-cl (PyPI's torch 2.15: scripts/adapters-setup.sh --torch2) ort21 ort18 flax flax-two-pass tinygrad openvino openvino-f32 tract
# keras paddle ncnn. Each table goes to out/findings/<framework>/ (report.json, report.md, junit.xml);
# a framework whose Python environment is missing (scripts/adapters-setup.sh creates them) is
# reported as SKIPPED. A minimized case is expected to go on failing (gnv check exit 1, or, for
# a case whose name says "rank2", any verdict but PASS); one that passes now is reported as
# "no longer reproduces" (fixed upstream, or a change in the adapter) and the script exits 1.
# A case's standalone reproducer (repro.py, written by `gnv repro` with the framework's snippet in
# adapters/repro/) is run in the framework's venv and must go on exiting 1 (FAIL); with
# --rewrite-repro, repro.py and issue.md are first written anew (new versions, new measurements).
# --repro-only runs the reproducers and nothing else (CTest findings-repro); it exits 77 when no
# framework's Python exists. Logs go to --out (default out/findings).
# Needs build/default/gnv (cmake --build --preset default).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
gnv=build/default/gnv
preset=smoke
rewrite=0
repro_only=0
outdir=out/findings
while [ $# -gt 0 ]; do
  case $1 in
    --preset) preset=${2:?--preset needs a value}; shift 2 ;;
    --rewrite-repro) rewrite=1; shift ;;
    --repro-only) repro_only=1; shift ;;
    --out) outdir=${2:?--out needs a directory}; shift 2 ;;
    *) break ;;
  esac
done
[ "$repro_only" = 1 ] || [ -x "$gnv" ] ||
  { echo "findings.sh: $gnv is missing: cmake --preset default && cmake --build --preset default" >&2; exit 2; }
mkdir -p "$outdir"
ran=0

# name | python | runner file and options | gnv options | findings folder | repro snippet (adapters/repro/)
table=(
  "torch|build/py-venv/bin/python|adapters/torch_runner.py|--runner-name torch-cpu|torch|torch"
  "torch-cl|build/py-venv/bin/python|adapters/torch_runner.py --memory-format channels_last|--runner-name torch-cpu-cl|torch-cl|torch"
  "torch215|build/venv-torch2/bin/python|adapters/torch_runner.py|--runner-name torch215|torch215|torch"
  "torch215-cl|build/venv-torch2/bin/python|adapters/torch_runner.py --memory-format channels_last|--runner-name torch215-cl|torch-cl|torch"
  "ort21|build/adapters-venv/bin/python|adapters/ort_runner.py --opset 21|--runner-name ort21 --no-stats --no-backward|ort|onnxruntime"
  "ort18|build/adapters-venv/bin/python|adapters/ort_runner.py --opset 18|--runner-name ort18 --no-stats --no-backward||"
  "flax|build/adapters-venv/bin/python|adapters/jax_runner.py|--runner-name flax --no-stats|flax|flax"
  "flax-two-pass|build/adapters-venv/bin/python|adapters/jax_runner.py --variance two-pass|--runner-name flax-two-pass --no-stats|flax-two-pass|flax_two_pass"
  "tinygrad|build/venv-tinygrad/bin/python|adapters/tinygrad_runner.py|--runner-name tinygrad --no-stats|tinygrad|tinygrad"
  "openvino|build/venv-openvino/bin/python|adapters/openvino_runner.py|--runner-name openvino --no-stats --no-backward|openvino|openvino"
  "openvino-f32|build/venv-openvino/bin/python|adapters/openvino_runner.py --precision-hint f32|--runner-name openvino-f32 --no-stats --no-backward||"
  "tract|build/venv-tract/bin/python|adapters/tract_runner.py --opset 21|--runner-name tract --no-stats --no-backward|tract|tract"
  "keras|build/venv-tf/bin/python|adapters/keras_runner.py|--runner-name keras --no-stats|keras|keras"
  "paddle|build/venv-paddle/bin/python|adapters/paddle_runner.py|--runner-name paddle --no-stats|paddle|paddle"
  "ncnn|build/venv-ncnn/bin/python|adapters/ncnn_runner.py|--runner-name ncnn --no-stats --no-backward|ncnn|ncnn"
)
# Runs a case's repro.py (if any) with $py; it must exit 1 and end in a FAIL line (exit 1 is also
# Python's for an uncaught exception).
check_repro() {
  local case_dir=$1 log pyabs rrc
  [ -f "$case_dir/repro.py" ] || return 0
  log=$out.repro-run-$(basename "$case_dir").log
  pyabs=$py
  [[ "$py" == /* ]] || pyabs=$PWD/$py
  (cd "$case_dir" && "$pyabs" repro.py) >"$log" 2>&1
  rrc=$?
  if [ "$rrc" -eq 1 ] && tail -1 "$log" | grep -qE '^(verdict: )?FAIL'; then
    summary+=("  $case_dir/repro.py: still FAIL ($(grep -E '^(y|dx): max' "$log" | sed 's/max condition-scaled error //' | tr '\n' ' ')$(tail -1 "$log"))")
  else
    summary+=("  $case_dir/repro.py: exit $rrc, not FAIL (see $log)")
    status=1
  fi
}
want=("$@")
status=0
summary=()
for row in "${table[@]}"; do
  IFS='|' read -r name py runner opts folder snippet <<<"$row"
  if [ ${#want[@]} -gt 0 ] && [[ ! " ${want[*]} " == *" $name "* ]]; then continue; fi
  out=$outdir/$name
  if [ "$repro_only" = 1 ]; then
    [ -n "$folder" ] && [ -d "findings/$folder" ] || continue
    if [ ! -x "$py" ]; then
      summary+=("$name: SKIPPED ($py missing: scripts/adapters-setup.sh)")
      continue
    fi
    ran=1
    for case_dir in findings/"$folder"/*/; do
      check_repro "${case_dir%/}"
    done
    continue
  fi
  if [ ! -x "$py" ] || ! "$py" -c "import gnv" 2>/dev/null; then
    summary+=("$name: SKIPPED ($py missing or without the gnv package: scripts/adapters-setup.sh, then CTest python-install)")
    continue
  fi
  ran=1
  echo "findings.sh: $name: gnv validate --preset $preset -> $out" >&2
  # shellcheck disable=SC2086
  "$gnv" validate --runner "$py $runner" $opts --preset "$preset" --no-html --out "$out" >"$out.log" 2>&1
  rc=$?
  line=$(grep -m1 -E '^[0-9]+ cells, ' "$out.log" || echo "no summary (exit $rc, see $out.log)")
  summary+=("$name: $line")
  [ -n "$folder" ] && [ -d "findings/$folder" ] || continue
  for case_dir in findings/"$folder"/*/; do
    case_dir=${case_dir%/}
    c=$(basename "$case_dir")
    # `gnv check --case` takes the backward from the case (dy.npy), not from --no-backward.
    # shellcheck disable=SC2086
    "$gnv" check --runner "$py $runner" ${opts/--no-backward/} --case "$case_dir" --impl "$(sed -E 's/.*--runner-name ([^ ]+).*/\1/' <<<"$opts")" \
      >"$out.case-$c.log" 2>&1
    crc=$?
    verdict=$(grep -m1 -oE 'verdict: [A-Z]+' "$out.case-$c.log" | cut -d' ' -f2)
    if [ "$crc" -eq 1 ] || { [[ "$case_dir" == *rank2* ]] && [ -n "$verdict" ] && [ "$verdict" != PASS ]; }; then
      summary+=("  $case_dir: still ${verdict:-fails}")
    else
      summary+=("  $case_dir: NO LONGER REPRODUCES (gnv check exit $crc, verdict ${verdict:-none}; see $out.case-$c.log)")
      status=1
    fi
    # The reproducer (gnv repro: y, and dx where the snippet has a backward).
    [ -n "$snippet" ] || continue
    if [ "$rewrite" = 1 ] && [ "$verdict" = FAIL ]; then  # gnv repro shows a FAIL (an ERROR case's repro.py is hand-written)
      tmp=$(mktemp -d)
      # shellcheck disable=SC2086
      if "$gnv" repro --case "$case_dir" --runner "$py $runner" ${opts/--no-backward/} --snippet "adapters/repro/$snippet.py" \
          --out "$tmp" >"$out.repro-$c.log" 2>&1; then
        cp "$tmp/repro.py" "$tmp/issue.md" "$case_dir/" && rm -rf "$tmp"
      else
        rm -rf "$tmp"
        summary+=("  $case_dir: no reproducer written ($(tail -1 "$out.repro-$c.log"))")
      fi
    fi
    check_repro "$case_dir"
  done
done
printf '%s\n' "${summary[@]}"
[ "$ran" = 1 ] || { echo "findings.sh: no framework's Python found: nothing ran" >&2; exit 77; }
exit $status
