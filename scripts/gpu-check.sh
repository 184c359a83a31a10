#!/usr/bin/env bash
# The whole device check of the CUDA implementation in one call (docs/implementations.md "CUDA"). For a GPU machine
# with nvcc and CMake (and python3 with torch for the PyTorch comparison) that may have none of
# gnv's other dependencies (Eigen, Boost, MPFR, fmt, GTest, ...). Sized for < 5 minutes on an H100.
#
#   1 build      bench/gpu: the kernels, gnv_cuda_selftest and gnv_gpu_bench (nvcc + CMake only)
#   2 selftest   every dtype, layout and path against a float64 host reference, poison, determinism
#   3 harness    the harness on the GPU (gnv_cuda_tests: exact oracle, every stress class, sharded
#                over the cores): built here when gnv's dependencies are installed, else the prebuilt
#                binary carried in build/gpu-carry/ (make it with --prepare-carry), else skipped
#   4 sanitizer  compute-sanitizer memcheck (gnv_cuda_selftest --quick), racecheck and, if time
#                allows, initcheck (--tiny: every kernel variant once or twice)
#   5 bench      copy bandwidth and gnv's kernels (gnv_gpu_bench), PyTorch (bench/gpu/torch_bench.py)
#   6 summary    the benchmark table, the issue's goals and the step table: printed last
#
# Results go to $OUT when it is set (else out/gpu-check/): check.log (everything printed),
# steps.tsv, bench_gnv.json, bench_torch.json, summary.md. Exit status: 0 every step that ran
# passed; 1 a step failed; 77 no usable GPU (the build still runs, everything else is skipped).
#
#   scripts/gpu-check.sh                   run the check (on the GPU machine)
#   scripts/gpu-check.sh --prepare-carry   on a machine with gnv's dependencies: build the harness GPU
#                                          test and copy it, with the shared libraries the device
#                                          machine may lack, into build/gpu-carry/ (carry that path)
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
jobs=$(nproc 2>/dev/null || echo 4)

# ---- --prepare-carry: runs where gnv builds, not on the device ------------------------------------
if [[ "${1:-}" == "--prepare-carry" ]]; then
  set -e
  bdir=${GNV_CARRY_BUILD_DIR:-build/gpu-harness}
  cmake -S . -B "$bdir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGNV_BUILD_BENCH=OFF >/dev/null
  cmake --build "$bdir" --target gnv_cuda_tests -j "${GNV_CARRY_JOBS:-2}"
  rm -rf build/gpu-carry && mkdir -p build/gpu-carry/lib
  cp "$bdir/gnv_cuda_tests" build/gpu-carry/
  # Libraries outside the C/C++ runtime: the device image is another distribution.
  ldd "$bdir/gnv_cuda_tests" | awk '/=> \//{print $3}' | grep -Ev '/(libc|libm|libgcc_s|libstdc\+\+|ld-linux|libpthread|libdl|librt)[.-]' |
    while read -r lib; do cp -L "$lib" build/gpu-carry/lib/; done
  du -sh build/gpu-carry
  ls -l build/gpu-carry build/gpu-carry/lib
  echo "carry: build/gpu-carry"
  exit 0
fi

out=${OUT:-$root/out/gpu-check}
mkdir -p "$out"
: >"$out/steps.tsv"

main() {
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
t0=$SECONDS
budget=${GNV_GPU_CHECK_BUDGET:-285}  # seconds for everything; later steps shrink when earlier ones run long
failed=0
no_gpu=0

say() { printf '\n==== %s (t=%ds)\n' "$*" $((SECONDS - t0)); }
# step NAME STATUS SECONDS NOTE...
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${*:4}" >>"$out/steps.tsv"; [[ "$2" == FAIL ]] && failed=1; return 0; }
# The time a step may take: its cap, or what is left after reserving `reserve` seconds for later steps.
allow() {
  local cap=$1 reserve=$2 left
  left=$((budget - (SECONDS - t0) - reserve))
  ((left < cap)) && cap=$left
  ((cap < 5)) && cap=5
  echo "$cap"
}
# run NAME TIMEOUT CMD...: runs with a timeout, output into the log; sets rc and dt.
run() {
  local name=$1 limit=$2
  shift 2
  local s=$SECONDS
  timeout -k 5 "$limit" "$@" >"$tmp/$name.log" 2>&1
  rc=$?
  dt=$((SECONDS - s))
  cat "$tmp/$name.log"
  ((rc == 124 || rc == 137)) && echo "[$name: stopped after ${limit}s]"
  return 0
}

say "environment"
{
  date -u
  uname -srm
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
  command -v nvcc >/dev/null && nvcc --version | tail -2
  command -v cmake >/dev/null && cmake --version | head -1
  command -v ninja >/dev/null && echo "ninja $(ninja --version)"
  command -v compute-sanitizer >/dev/null && compute-sanitizer --version | tail -1
  echo "cores: $jobs"
} 2>&1
nvcc_bin=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)

# ---- 1 build ------------------------------------------------------------------------------------------
say "1 build bench/gpu (kernels, self-test, benchmark)"
bin=build/gpu
s=$SECONDS
built=0
if command -v cmake >/dev/null && [[ -x "$nvcc_bin" ]]; then
  gen=()
  command -v ninja >/dev/null && gen=(-G Ninja)
  run cmake-configure "$(allow 60 200)" cmake -S bench/gpu -B "$bin" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_COMPILER="$nvcc_bin"
  if ((rc == 0)); then
    run cmake-build "$(allow 150 150)" cmake --build "$bin" -j "$jobs"
    ((rc == 0)) && built=1
  fi
fi
if ((built == 0)) && [[ -x "$nvcc_bin" ]]; then
  echo "CMake build unavailable or failed: building with nvcc directly"
  mkdir -p "$bin"
  flags=(-std=c++17 -O3 --fmad=false -lineinfo "-gencode=arch=compute_90,code=sm_90"
    "-gencode=arch=compute_90,code=compute_90" -Iinclude -Iimpls/cuda)
  srcs=(impls/cuda/gn_cuda.cu impls/cuda/fwd_*.cu impls/cuda/bwd_*.cu)
  run nvcc-selftest "$(allow 200 120)" "$nvcc_bin" "${flags[@]}" "${srcs[@]}" impls/cuda/tests/selftest.cpp -o "$bin/gnv_cuda_selftest"
  r1=$rc
  run nvcc-bench "$(allow 200 100)" "$nvcc_bin" "${flags[@]}" "${srcs[@]}" bench/gpu/gpu_bench.cu -o "$bin/gnv_gpu_bench"
  ((r1 == 0 && rc == 0)) && built=1
fi
if ((built)); then record build PASS $((SECONDS - s)); else record build FAIL $((SECONDS - s)) "no nvcc, or the build failed"; fi

# ---- 2 self-test ---------------------------------------------------------------------------------------
say "2 gnv_cuda_selftest (float64 host reference)"
if [[ -x $bin/gnv_cuda_selftest ]]; then
  run selftest "$(allow 90 170)" "$bin/gnv_cuda_selftest"
  note=$(tail -1 "$tmp/selftest.log")
  case $rc in
    0) record selftest PASS "$dt" "$note" ;;
    77) record selftest SKIP "$dt" "$note"; no_gpu=1 ;;
    *) record selftest FAIL "$dt" "rc=$rc $note" ;;
  esac
else
  record selftest SKIP 0 "not built"
  command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 || no_gpu=1
fi

if ((no_gpu)); then
  say "no usable GPU: the GPU tests, sanitizer runs and benchmarks are skipped"
  for s in harness memcheck racecheck bench-gnv bench-torch; do record "$s" SKIP 0 "no GPU"; done
  python3 bench/gpu/summary.py --gnv "$out/bench_gnv.json" --steps "$out/steps.tsv" --md "$out/summary.md" 2>/dev/null ||
    cat "$out/steps.tsv"
  echo "gpu-check: no usable CUDA device visible: nothing was checked on a GPU (exit 77)"
  exit 77
fi

# ---- 3 the harness on the GPU ----------------------------------------------------------------------------
say "3 gnv_cuda_tests (the harness: exact oracle, every stress class)"
harness=""
s=$SECONDS
if [[ -x build/gpu-carry/gnv_cuda_tests ]]; then
  if LD_LIBRARY_PATH=$root/build/gpu-carry/lib build/gpu-carry/gnv_cuda_tests --gtest_list_tests >/dev/null 2>"$tmp/carry.err"; then
    harness=build/gpu-carry/gnv_cuda_tests
    export LD_LIBRARY_PATH=$root/build/gpu-carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    echo "using the carried $harness"
  else
    echo "the carried build/gpu-carry/gnv_cuda_tests does not run here:"
    cat "$tmp/carry.err"
  fi
fi
if [[ -z $harness ]] && command -v cmake >/dev/null; then
  # Only where gnv's dependencies exist: configuring fails fast (Eigen is looked up first) otherwise.
  run full-configure "$(allow 60 150)" cmake -S . -B build/gpu-full -DCMAKE_BUILD_TYPE=Release -DGNV_BUILD_BENCH=OFF
  if ((rc == 0)); then
    run full-build "$(allow 180 120)" cmake --build build/gpu-full --target gnv_cuda_tests -j "$jobs"
    ((rc == 0)) && harness=build/gpu-full/gnv_cuda_tests
  else
    echo "gnv's dependencies are not installed here: the harness GPU test is not built"
  fi
fi
if [[ -n $harness ]]; then
  limit=$(allow 120 110)
  shards=$((jobs < 16 ? jobs : 16))
  pids=()
  for ((i = 0; i < shards; i++)); do
    GTEST_TOTAL_SHARDS=$shards GTEST_SHARD_INDEX=$i timeout -k 5 "$limit" "$harness" >"$tmp/h$i.log" 2>&1 &
    pids+=($!)
  done
  hrc=0
  for pid in "${pids[@]}"; do wait "$pid" || hrc=1; done
  passed=$(cat "$tmp"/h*.log | grep -c '^\[       OK \]')
  failedn=$(cat "$tmp"/h*.log | grep -c '^\[  FAILED  \] .*(')
  grep -h -B2 -A12 '^\[  FAILED  \]\|Failure$' "$tmp"/h*.log | head -150
  grep -h 'tests ran\|PASSED\|stopped\|SKIPPED' "$tmp"/h*.log | sort | uniq -c
  if ((hrc == 0)); then record harness PASS $((SECONDS - s)) "$passed tests passed in $shards shards"
  else record harness FAIL $((SECONDS - s)) "$failedn failed, $passed passed (or a shard timed out)"; fi
else
  record harness SKIP $((SECONDS - s)) "no gnv_cuda_tests: gnv's dependencies missing and nothing carried"
fi

# ---- 4 compute-sanitizer ----------------------------------------------------------------------------------
say "4 compute-sanitizer: memcheck on gnv_cuda_selftest --quick, racecheck and initcheck on --tiny"
if [[ -x $sanitizer && -x $bin/gnv_cuda_selftest ]]; then
  for tool in memcheck racecheck initcheck; do
    reserve=100
    [[ $tool == initcheck ]] && reserve=95
    limit=$(allow 75 $reserve)
    if [[ $tool == initcheck ]] && ((limit < 40)); then
      record initcheck SKIP 0 "no time left"
      continue
    fi
    size=--tiny
    [[ $tool == memcheck ]] && size=--quick
    run "$tool" "$limit" "$sanitizer" --tool "$tool" --error-exitcode 99 "$bin/gnv_cuda_selftest" $size
    summary=$(grep -h 'ERROR SUMMARY\|RACECHECK SUMMARY' "$tmp/$tool.log" | tail -1)
    if ((rc == 0)); then record "$tool" PASS "$dt" "$summary"
    elif ((rc == 124 || rc == 137)); then record "$tool" FAIL "$dt" "timed out"
    else record "$tool" FAIL "$dt" "rc=$rc $summary"; fi
  done
else
  record memcheck SKIP 0 "compute-sanitizer not found"
  record racecheck SKIP 0 "compute-sanitizer not found"
fi

# ---- 5 benchmarks ---------------------------------------------------------------------------------------
say "5 benchmarks: copy roofline, gnv, PyTorch"
run bench-gnv "$(allow 60 45)" "$bin/gnv_gpu_bench" --json "$out/bench_gnv.json"
if ((rc == 0)); then record bench-gnv PASS "$dt"; else record bench-gnv FAIL "$dt" "rc=$rc"; fi
if command -v python3 >/dev/null; then
  run bench-torch "$(allow 90 5)" env PYTHONUNBUFFERED=1 python3 bench/gpu/torch_bench.py --json "$out/bench_torch.json"
  case $rc in
    0) record bench-torch PASS "$dt" ;;
    77) record bench-torch SKIP "$dt" "$(tail -1 "$tmp/bench-torch.log")" ;;
    *) record bench-torch FAIL "$dt" "rc=$rc" ;;
  esac
else
  record bench-torch SKIP 0 "no python3"
fi

# ---- 6 summary, last -----------------------------------------------------------------------------------
say "6 summary (total ${SECONDS}s of which checks $((SECONDS - t0))s)"
if command -v python3 >/dev/null; then
  python3 bench/gpu/summary.py --gnv "$out/bench_gnv.json" --torch "$out/bench_torch.json" --steps "$out/steps.tsv" \
    --md "$out/summary.md" || { echo "gpu-check: the summary could not use a result file (named above)"; failed=1; }
else
  cat "$out/steps.tsv"
fi
if ((failed)); then
  echo "gpu-check: FAILED (see the steps above; full log in $out/check.log)"
  exit 1
fi
echo "gpu-check: every step that ran passed"
exit 0
}

# Everything printed also goes to check.log; the pipeline waits for tee, so the summary printed last
# is never lost.
main "$@" 2>&1 | tee "$out/check.log"
exit "${PIPESTATUS[0]}"
