#!/usr/bin/env bash
# A short real fuzzing run: builds the libFuzzer targets (preset `fuzz`: Clang 14, ASan + UBSan)
# and fuzzes each target for SECONDS (default 60), one process, one target at a time, starting
# from its checked-in corpus and dictionary. Any finding (crash, sanitizer report, failed check)
# fails the run: the input is kept as build/fuzz/findings/<target>/crash-*, to be replayed with
#   build/fuzz/gnv replay FILE --target TARGET [--save-case DIR]
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]       (targets: differential oracle_paths npy case report runner_output grid; default all)
#        scripts/fuzz.sh --merge [DIR...]
#   --merge rebuilds each checked-in corpus fuzz/corpus/<target>/ as the minimal set (-merge=1,
#   edges only: -use_counters=0)
#   covering what it covers now, what earlier runs found (build/fuzz/corpus/<target>/), and the
#   inputs in DIR/<target>/ (e.g. the seeds of fuzz/make_seeds.py); repro-* files always stay.
# Environment: FUZZ_ARGS adds libFuzzer flags (e.g. FUZZ_ARGS=-fork=1); FUZZ_PRESET=fuzz-ubsan
# builds and runs the UBSan-only targets (build/fuzz-ubsan/, about twice the executions of the
# differential targets) instead of the ASan + UBSan ones.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
preset=${FUZZ_PRESET:-fuzz}
case $preset in
  fuzz | fuzz-ubsan) ;;
  *) echo "fuzz.sh: error: FUZZ_PRESET must be fuzz or fuzz-ubsan, not '$preset'" >&2; exit 2 ;;
esac
build=$root/build/$preset
all_targets=(differential oracle_paths npy case report runner_output grid)

merge=0
seconds=60
if [ "${1:-}" = "--merge" ]; then
  merge=1
  shift
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi

scripts/bootstrap.sh
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" --target gnv "${all_targets[@]/%/_fuzzer}"

dict_args() { [ -f "fuzz/$1.dict" ] && echo "-dict=fuzz/$1.dict" || true; }

if [ "$merge" -eq 1 ]; then
  for t in "${all_targets[@]}"; do
    inputs=("fuzz/corpus/$t")
    [ -d "$build/corpus/$t" ] && inputs+=("$build/corpus/$t")
    for d in "$@"; do [ -d "$d/$t" ] && inputs+=("$d/$t"); done
    fresh=$(mktemp -d)
    "$build/fuzz/${t}_fuzzer" -merge=1 -use_counters=0 "$fresh" "${inputs[@]}" 2>"$build/merge-$t.log" ||
      { echo "fuzz.sh: merge of $t failed, see $build/merge-$t.log" >&2; rm -rf "$fresh"; exit 1; }
    # The reproducers of fixed bugs (repro-*) stay whatever their coverage.
    cp fuzz/corpus/"$t"/repro-* "$fresh"/ 2>/dev/null || true
    rm -rf "fuzz/corpus/$t"
    mkdir -p "fuzz/corpus/$t"
    cp "$fresh"/* "fuzz/corpus/$t/" 2>/dev/null || true
    rm -rf "$fresh"
    echo "fuzz.sh: fuzz/corpus/$t: $(ls "fuzz/corpus/$t" | wc -l) inputs"
  done
  exit 0
fi

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")
status=0
printf '%-14s %10s %12s %8s %s\n' target seconds executions exec/s result
for t in "${targets[@]}"; do
  # A scratch copy of the corpus, so a short run never edits the checked-in one (--merge does).
  mkdir -p "$build/corpus/$t" "$build/findings/$t" "$build/logs"
  cp -n "fuzz/corpus/$t"/* "$build/corpus/$t/" 2>/dev/null || true
  log=$build/logs/$t.log
  rc=0
  # shellcheck disable=SC2046,SC2086  # dict_args is one word or none; FUZZ_ARGS is a word list
  "$build/fuzz/${t}_fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$build/findings/$t/" $(dict_args "$t") ${FUZZ_ARGS:-} \
    "$build/corpus/$t" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  result=ok
  if [ "$rc" -ne 0 ]; then
    result="FINDING (exit $rc): $(ls -t "$build/findings/$t"/* 2>/dev/null | head -1), log $log"
    status=1
  fi
  printf '%-14s %10s %12s %8s %s\n' "$t" "$seconds" "${execs:-?}" "${rate:-?}" "$result"
done
exit $status
