#!/usr/bin/env bash
# `gnv validate` end to end: plugins that crash, hang, lie about their ABI or compute wrong
# answers, and external runners that fail in every way a program can. Each check can fail.
# Usage: validate_test.sh /path/to/gnv /path/to/plugin/dir
set -u
gnv=${1:?usage: validate_test.sh GNV PLUGIN_DIR}
plugins=${2:?usage: validate_test.sh GNV PLUGIN_DIR}
gnv=$(cd "$(dirname "$gnv")" && pwd)/$(basename "$gnv")
plugins=$(cd "$plugins" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
. "$here/expect.sh"
# count FILE REGEX: number of matching lines
count() { grep -Ec -- "$2" "$1" || true; }

grid=(--dtype f32 --section small --stress normal,offset:1e4 --no-html)
p() { echo "$plugins/libtest_plugin_$1.so"; }

# ---- plugins -----------------------------------------------------------------------------------
expect_rc "example plugin passes" 0 "$gnv" validate --plugin "$plugins/libexample_plugin.so" "${grid[@]}" --out "$tmp/ex"
expect_grep "example plugin: report names it" "$tmp/ex/report.json" '"impl":"example_c"'
expect_grep "example plugin: grid records how to load it" "$tmp/ex/report.json" '"external":\{"example_c":"--plugin '

expect_rc "crashing plugin fails" 1 "$gnv" validate --plugin "$(p crash)" "${grid[@]}" --out "$tmp/crash"
expect_grep "crash verdict names the signal" "$tmp/crash/report.json" 'SIGSEGV \(Segmentation fault\)'
n_crash=$(count "$tmp/crash/report.json" '"verdict":"CRASH"')
n_pass=$(count "$tmp/crash/report.json" '"verdict":"PASS"')
[ "$n_crash" -gt 0 ] && [ "$n_pass" -gt 0 ] && [ "$n_crash" -eq "$n_pass" ] \
  && ok "after crashes gnv goes on: $n_crash CRASH (nhwc), $n_pass PASS (nchw)" \
  || bad "crash plugin: $n_crash CRASH, $n_pass PASS (expected equal and > 0)"
expect_grep "junit has the crash as an error" "$tmp/crash/junit.xml" '<error type="CRASH"'
expect_grep "markdown shows CRASH" "$tmp/crash/report.md" 'CRASH'
case_dir=$(cd "$tmp/crash" && ls -d cases/*nhwc* | head -1)
[ -n "$case_dir" ] && ok "a crashed cell saves its case" || bad "no case saved for a crashed cell"
(cd "$tmp/crash" && expect_rc "replaying the crashed case crashes again" 1 "$gnv" check --case "$case_dir" --plugin "$(p crash)" --impl test_crash)
expect_grep "replay says CRASH" "$tmp/out" 'verdict: CRASH'
expect_rc "gnv compare reads a report with crashes" 0 "$gnv" compare "$tmp/crash/report.json" "$tmp/crash/report.json"

start=$(date +%s)
expect_rc "hanging plugin times out" 1 "$gnv" validate --plugin "$(p hang)" "${grid[@]}" --timeout 0.5 --out "$tmp/hang"
expect_grep "timeout verdict" "$tmp/hang/report.json" '"verdict":"TIMEOUT".*did not return within 0.5 s'
[ $(( $(date +%s) - start )) -lt 60 ] && ok "timeouts are bounded" || bad "hang test took too long"
[ "$(count "$tmp/hang/report.json" '"verdict":"PASS"')" -gt 0 ] && ok "hang: the other cells pass" || bad "hang: no PASS cells"

expect_rc "plugin exiting mid-call" 1 "$gnv" validate --plugin "$(p exit)" "${grid[@]}" --out "$tmp/exit"
expect_grep "exit is a crash with its status" "$tmp/exit/report.json" '"verdict":"CRASH".*exited with status 3'
# GNV_ERR_UNSUPPORTED declines the case: SKIPPED with the plugin's message, not a failure.
expect_rc "plugin declining channels-last passes" 0 "$gnv" validate --plugin "$(p status)" "${grid[@]}" --out "$tmp/status"
expect_grep "declined cells are SKIPPED with the message" "$tmp/status/report.json" '"layout":"nhwc".*"verdict":"SKIPPED","error":"plugin test_status forward declined the case \(GNV_ERR_UNSUPPORTED\): channels-last is not supported'
[ "$(count "$tmp/status/report.json" '"verdict":"SKIPPED"')" -eq "$(count "$tmp/status/report.json" '"layout":"nhwc"')" ] &&
  ok "every nhwc cell and nothing else is SKIPPED" || bad "SKIPPED cells are not exactly the nhwc ones"
expect_grep "junit marks them skipped" "$tmp/status/junit.xml" '<skipped type="SKIPPED" message="plugin test_status'
expect_grep "report.md counts them" "$tmp/status/report.md" "$(count "$tmp/status/report.json" '"layout":"nhwc"') skipped"
expect_grep "breakdown leaves the declined layout out" "$tmp/status/report.json" '"breakdown":\[\{"impl":"test_status","dtype":"f32","layout":"nchw"[^]]*\]'
if grep -q '"breakdown":.*"layout":"nhwc"' "$tmp/status/report.json"; then bad "a breakdown point for the declined nhwc"; else ok "no breakdown point for nhwc"; fi
# Waivers: a waived failure is XFAIL and passes; a waived pass is XPASS and fails (strict).
cat >"$tmp/waive-offsets.toml" <<'TOML'
[[waiver]]
impl = "test_wrong"
stress = "offset:1e4"
reason = "one-pass variance"
link = "https://example.org/issue/1"
TOML
expect_rc "wrong plugin fails without a waiver" 1 "$gnv" validate --plugin "$(p wrong)" "${grid[@]}" --out "$tmp/w0"
expect_rc "wrong plugin passes with its failures waived" 0 "$gnv" validate --plugin "$(p wrong)" "${grid[@]}" \
  --waivers "$tmp/waive-offsets.toml" --out "$tmp/w1"
expect_grep "... reported as XFAIL with the reason" "$tmp/out" "XFAIL.*waiver: one-pass variance \(https://example.org/issue/1\)"
expect_grep "... junit: skipped xfail" "$tmp/w1/junit.xml" '<skipped type="XFAIL" message="expected failure: one-pass variance"'
printf '[[waiver]]\nimpl = "test_wrong"\nstress = "normal"\nreason = "thought broken"\n' >"$tmp/waive-normal.toml"
expect_rc "a waived cell that passes fails the run (XPASS)" 1 "$gnv" validate --plugin "$(p wrong)" "${grid[@]}" \
  --stress normal --waivers "$tmp/waive-normal.toml" --out "$tmp/w2"
expect_grep "... named XPASS" "$tmp/out" "XPASS: .* waived cells passed"
expect_grep "... junit failure XPASS" "$tmp/w2/junit.xml" '<failure type="XPASS"'
# A waiver expects wrong numbers, not a crash: a waived CRASH stays CRASH and fails the run, and
# the waiver's passing (nchw) cells are not called stale.
printf '[[waiver]]\nimpl = "test_crash"\nreason = "wrong in nhwc"\n' >"$tmp/waive-crash.toml"
expect_rc "a waived cell that crashes fails the run" 1 "$gnv" validate --plugin "$(p crash)" "${grid[@]}" \
  --waivers "$tmp/waive-crash.toml" --out "$tmp/w3"
[ "$(count "$tmp/w3/report.json" '"verdict":"CRASH"')" -gt 0 ] && ! grep -Eq 'XFAIL|XPASS' "$tmp/out" \
  && ok "... its cells are CRASH and PASS, not XFAIL or XPASS" || bad "a waived crash: $(grep -E 'XFAIL|XPASS' "$tmp/out")"
printf '[[waiver]]\nimpl = "test_wrong"\nstress = "offset:3e4x"\nreason = "r"\n' >"$tmp/waive-bad.toml"
expect_rc "waiver with an unknown stress class" 2 "$gnv" validate --plugin "$(p wrong)" "${grid[@]}" --waivers "$tmp/waive-bad.toml" --out "$tmp/w1"
expect_grep "... names file, line and key" "$tmp/err" "waive-bad.toml:3: waiver\[0\]\.stress: "
[ -s "$tmp/w1/report.json" ] && grep -q XFAIL "$tmp/w1/report.md" && ok "the refused waivers left the earlier report" || bad "refused waivers touched --out"
printf '[[waiver]]\nimpl = "test_wrong"\n' >"$tmp/waive-noreason.toml"
expect_rc "waiver without a reason" 2 "$gnv" validate --plugin "$(p wrong)" "${grid[@]}" --waivers "$tmp/waive-noreason.toml" --out "$tmp/x"
expect_grep "... says so" "$tmp/err" "missing key 'reason'"
printf '[[waiver]]\nimpl = "test_wrong"\nreason = "r"\ncolour = "red"\n' >"$tmp/waive-key.toml"
expect_rc "waiver with an unknown key" 2 "$gnv" validate --plugin "$(p wrong)" "${grid[@]}" --waivers "$tmp/waive-key.toml" --out "$tmp/x"
expect_rc "waivers file that is a FIFO" 2 "$gnv" validate --plugin "$(p wrong)" "${grid[@]}" --waivers /dev/stdin --out "$tmp/x" </dev/null
# Plugins run fully out of process: no plugin code in gnv's own process, grandchildren killed with
# their call, output to a log, a memory limit per call, a guard region after every output.
mkdir -p "$tmp/state"
GNV_TEST_STATE="$tmp/state" expect_rc "plugin whose constructor crashes on its second load" 1 "$gnv" validate \
  --plugin "$(p ctorcrash)" "${grid[@]}" --out "$tmp/ctor"
expect_grep "... is a CRASH verdict, gnv goes on and reports" "$tmp/ctor/report.json" '"verdict":"CRASH".*SIGSEGV'
expect_rc "every plugin call runs in a freshly executed host, not a fork of gnv" 0 "$gnv" validate \
  --plugin "$(p fresh)" "${grid[@]}" --out "$tmp/fresh"
expect_rc "the host's call flag run by hand, without a region" 3 "$gnv" --gnv-plugin-call 0 </dev/null
expect_rc "a chatty plugin" 0 "$gnv" validate --plugin "$(p chatty)" "${grid[@]}" --out "$tmp/chatty"
if grep -q "chatty plugin line" "$tmp/out"; then bad "plugin output reached gnv's stdout"; else ok "... its output is not on gnv's stdout"; fi
expect_grep "... but in its log" "$tmp/chatty/plugins/libtest_plugin_chatty.log" "chatty plugin line 999"
rm -f "$tmp/state/grandchild.pid"
GNV_TEST_STATE="$tmp/state" expect_rc "a plugin leaving grandchildren" 0 "$gnv" validate --plugin "$(p grandchild)" \
  "${grid[@]}" --stress normal --out "$tmp/gc"
alive=0
# Alive: a process that is not a zombie (a killed orphan stays a zombie where PID 1 does not reap).
for pid in $(cat "$tmp/state/grandchild.pid" 2>/dev/null); do
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)
  [ -n "$state" ] && [ "$state" != Z ] && alive=$((alive + 1))
done
[ -s "$tmp/state/grandchild.pid" ] && [ "$alive" -eq 0 ] && ok "... none of its $(wc -l <"$tmp/state/grandchild.pid") grandchildren outlived their call" ||
  bad "$alive grandchildren still alive"
expect_rc "a plugin writing 64 floats past y" 1 "$gnv" validate --plugin "$(p overrun)" "${grid[@]}" --out "$tmp/over"
expect_grep "... is caught by the guard region" "$tmp/over/report.json" '"layout":"nhwc".*"verdict":"CRASH","error":"plugin test_overrun forward wrote past the end of y \(256 of the'
if ldd "$gnv" | grep -q libasan; then
  # ASan's shadow memory alone exceeds any such limit, so the host sets none there (README).
  echo "note --plugin-memory is not applied in an ASan build: its check runs in the default build"
else
  expect_rc "a plugin allocating 2 GiB under --plugin-memory 1GiB" 1 "$gnv" validate --plugin "$(p hog)" "${grid[@]}" \
    --stress normal --plugin-memory 1GiB --out "$tmp/hog"
  expect_grep "... is stopped by the per-call memory limit" "$tmp/hog/report.json" 'could not allocate 2 GiB'
fi
expect_rc "plugin crashing in backward" 1 "$gnv" validate --plugin "$(p bwdcrash)" "${grid[@]}" --out "$tmp/bwd"
expect_grep "backward crash keeps the forward's measurements" "$tmp/bwd/report.json" '"verdict":"CRASH".*"outputs":\[\{"name":"y"'
expect_rc "plugin leaving y unwritten" 1 "$gnv" validate --plugin "$(p unwritten)" "${grid[@]}" --out "$tmp/unw"
expect_grep "outputs are poisoned: UNWRITTEN" "$tmp/unw/report.json" '"verdict":"UNWRITTEN"'
# An element left unwritten where the exact output is NaN: one poison pattern cannot tell it from a
# written NaN; the second run on the other pattern can.
expect_rc "plugin leaving one element of a NaN group unwritten" 1 "$gnv" validate --plugin "$(p nanunwritten)" \
  --dtype f32,f64 --section small --stress special,normal --no-html --out "$tmp/nanunw"
expect_grep "... UNWRITTEN on the special stress" "$tmp/nanunw/report.json" '"stress":"special".*"verdict":"UNWRITTEN".*"name":"y"[^}]*"unwritten":1'
[ "$(count "$tmp/nanunw/report.json" '"stress":"normal".*"verdict":"PASS"')" -gt 0 ] && ok "... and PASS where no group is NaN" || bad "nanunwritten: no normal PASS"
expect_rc "a good plugin on NaN groups passes (its NaNs are written)" 0 "$gnv" validate --plugin "$plugins/libexample_plugin.so" \
  --dtype f32,f64 --section small --stress special --no-html --out "$tmp/nanok"
# Budget profiles: sequential f32 sums fail the default (pairwise) budget on the 65 536-element group
# of smoke at offset 1e4 and pass the sequential one, which the report records and the replay keeps.
seq=(--dtype f32 --section models --stress offset:1e4 --no-backward --no-html)
expect_rc "sequential-sum plugin fails the pairwise budget" 1 "$gnv" validate --plugin "$(p seqfloat)" "${seq[@]}" --out "$tmp/seq1"
expect_grep "... on the long group" "$tmp/seq1/report.json" '"shape_name":"one-group-65536".*"verdict":"FAIL"'
expect_rc "... and passes --budget sequential" 0 "$gnv" validate --plugin "$(p seqfloat)" "${seq[@]}" --budget sequential --out "$tmp/seq2"
expect_grep "... recorded in the report" "$tmp/seq2/report.json" '"budget":"sequential"'
expect_grep "... and shown in its header" "$tmp/seq2/report.md" 'Budget profile: \*\*sequential\*\*'
expect_rc "... where the one-pass plugin still fails" 1 "$gnv" validate --plugin "$(p wrong)" "${seq[@]}" --budget sequential --out "$tmp/seq3"
expect_rc "... and compare refuses reports of two profiles" 2 "$gnv" compare "$tmp/seq1/report.json" "$tmp/seq2/report.json"
expect_rc "wrong-answer plugin fails" 1 "$gnv" validate --plugin "$(p wrong)" "${grid[@]}" --out "$tmp/wrong"
expect_grep "wrong answers fail on offsets only" "$tmp/wrong/report.json" '"stress":"offset:10000".*"verdict":"FAIL"'
[ "$(count "$tmp/wrong/report.json" '"stress":"normal".*"verdict":"PASS"')" -gt 0 ] && ok "wrong plugin passes normal inputs" || bad "wrong plugin: no normal PASS"

expect_rc "wrong ABI version rejected" 2 "$gnv" validate --plugin "$(p abi)" "${grid[@]}" --out "$tmp/x"
expect_grep "ABI message" "$tmp/err" 'plugin ABI version 99, this gnv speaks versions 1 to 2'
# ABI version 2 added the fused forms at the ends of the structs: a version 1 plugin still loads and
# runs plain GroupNorm, and declines (is never called with) SiLU or per-sample cases.
small_case=(--dtype f32 --shape 2,8,3,3 --groups 4 --backward)
expect_rc "version 1 plugin runs plain cases" 0 "$gnv" check --plugin "$(p v1)" "${small_case[@]}" --affine
expect_rc "version 1 plugin refuses a SiLU case" 2 "$gnv" check --plugin "$(p v1)" "${small_case[@]}" --epilogue silu
expect_grep "the refusal names the epilogue" "$tmp/err" "gnv: error: .*test_v1.*does not support epilogue silu"
expect_rc "version 1 plugin refuses per-sample parameters" 2 "$gnv" check --plugin "$(p v1)" "${small_case[@]}" --affine per-sample
expect_grep "the refusal names the affine mode" "$tmp/err" "does not support per-sample affine"
expect_rc "version 2 plugin passes SiLU with per-sample parameters" 0 "$gnv" check --plugin "$(p ok)" "${small_case[@]}" --affine per-sample --epilogue silu
expect_grep "its reproducer keeps both" "$tmp/out" "reproduce: gnv check --plugin .*--affine per-sample --epilogue silu"
expect_rc "the example plugin passes SiLU on both layouts" 0 sh -c "'$gnv' check --plugin '$plugins/libexample_plugin.so' ${small_case[*]} --affine --epilogue silu --layout nchw && '$gnv' check --plugin '$plugins/libexample_plugin.so' ${small_case[*]} --affine per-sample --epilogue silu --layout nhwc"
expect_rc "missing symbol rejected" 2 "$gnv" validate --plugin "$(p missing)" "${grid[@]}" --out "$tmp/x"
expect_grep "missing symbol message" "$tmp/err" 'missing symbol gnv_plugin_kernel'
expect_rc "null forward rejected" 2 "$gnv" validate --plugin "$(p nullfwd)" "${grid[@]}" --out "$tmp/x"
expect_grep "null forward message" "$tmp/err" 'forward function pointer is null'
expect_rc "plugin crashing while loading rejected" 2 "$gnv" validate --plugin "$(p loadcrash)" "${grid[@]}" --out "$tmp/x"
expect_grep "load crash message" "$tmp/err" 'querying its kernel crashed: SIGSEGV'
expect_rc "not a library" 2 "$gnv" validate --plugin "$here/validate_test.sh" "${grid[@]}" --out "$tmp/x"
expect_grep "not a library message" "$tmp/err" 'cannot load plugin'
expect_rc "no such plugin" 2 "$gnv" validate --plugin "$tmp/nope.so" --out "$tmp/x"
expect_rc "validate without a kernel" 2 "$gnv" validate --out "$tmp/x"
expect_rc "two kernels of one name" 2 "$gnv" validate --plugin "$(p ok)" --plugin "$(p ok)" --out "$tmp/x"
expect_rc "check --plugin" 0 "$gnv" check --plugin "$plugins/libexample_plugin.so" --shape 2,8,3,3 --groups 2 --backward --affine
expect_grep "check --plugin reproducer loads the plugin" "$tmp/out" 'reproduce: gnv check --plugin .*libexample_plugin.so --impl example_c'

# ---- external runners --------------------------------------------------------------------------
py=""
for cand in /usr/bin/python3 python3; do
  if "$cand" -c 'import numpy' 2>/dev/null; then py=$cand; break; fi
done
if [ -z "$py" ]; then
  echo "validate_test.sh: no python3 with numpy: runner tests not run"
  exit 1
fi
r() { echo "$py $here/runners/numpy_runner.py --mode $1"; }
rgrid=(--dtype f32,f64 --section small --stress normal,offset:1e4 --no-html)
expect_rc "correct runner passes" 0 "$gnv" validate --runner "$(r ok)" --runner-name np "${rgrid[@]}" --out "$tmp/rok"
expect_grep "runner batch directory kept" "$tmp/rok/runner/np/batch-1/c00000/case.json" '"gnv-case"'
[ -f "$tmp/rok/runner/np/batch-1/c00000/y.npy" ] && ok "runner wrote y.npy into the case directory" || bad "no y.npy"
expect_rc "one-pass runner fails" 1 "$gnv" validate --runner "$(r onepass)" --dtype f32 --section small --stress normal,offset:1e4 --no-html --out "$tmp/r1"
expect_grep "one-pass runner: FAIL on offset" "$tmp/r1/report.json" '"stress":"offset:10000".*"verdict":"FAIL"'
fcase=$(cd "$tmp/r1" && ls -d cases/* | head -1)
(cd "$tmp/r1" && expect_rc "replaying a runner failure fails again" 1 "$gnv" check --case "$fcase" --runner "$(r onepass)" --impl runner)
expect_rc "runner exiting 1" 1 "$gnv" validate --runner "$(r exit1)" "${rgrid[@]}" --out "$tmp/r2"
expect_grep "exit status and stderr reported per case" "$tmp/r2/report.json" '"verdict":"ERROR".*exited with status 1.*failing on purpose'
expect_rc "runner missing a file" 1 "$gnv" validate --runner "$(r missing)" "${rgrid[@]}" --out "$tmp/r3"
expect_grep "missing file named" "$tmp/r3/report.json" 'rstd.npy: missing \(the runner did not write it\)'
expect_rc "runner writing a wrong shape" 1 "$gnv" validate --runner "$(r wrongshape)" "${rgrid[@]}" --out "$tmp/r4"
expect_grep "wrong shape named" "$tmp/r4/report.json" 'y.npy: shape \(.*\), expected \('
for m in devzero fifo; do
  start=$SECONDS
  expect_rc "runner leaving y.npy as $m" 1 timeout 60 "$gnv" validate --runner "$(r $m)" "${rgrid[@]}" --timeout 20 --out "$tmp/r-$m"
  [ $((SECONDS - start)) -le 30 ] && ok "... ended within 30 s" || bad "... took $((SECONDS - start)) s"
  expect_grep "... each cell an ERROR naming the file" "$tmp/r-$m/report.json" '"verdict":"ERROR","error":"[^"]*y.npy: not a regular file'
done
expect_rc "runner writing garbage" 1 "$gnv" validate --runner "$(r garbage)" "${rgrid[@]}" --out "$tmp/r5"
expect_grep "garbage npy named" "$tmp/r5/report.json" '"verdict":"ERROR".*y.npy'
expect_rc "runner declining cases" 1 "$gnv" validate --runner "$(r error)" "${rgrid[@]}" --out "$tmp/r6"
# --runner-fused: a runner gets SiLU and per-sample cases only when it says it applies them.
expect_rc "a runner is refused a SiLU case by default" 2 "$gnv" check --runner "$(r ok)" --dtype f64 --shape 2,6,5 --groups 3 --epilogue silu
expect_grep "the refusal names the epilogue" "$tmp/err" "gnv: error: .*does not support epilogue silu"
expect_rc "with --runner-fused it passes SiLU and per-sample, forward and backward" 0 "$gnv" check --runner "$(r ok)" \
  --runner-fused silu,per-sample --dtype f64 --shape 2,6,5 --groups 3 --epilogue silu --affine per-sample --backward
expect_grep "its reproducer keeps --runner-fused" "$tmp/out" "reproduce: gnv check --runner .* --runner-fused silu,per-sample"
expect_rc "an unknown fused form is a usage error" 2 "$gnv" check --runner "$(r ok)" --runner-fused gelu --dtype f64 --shape 2,6,5 --groups 3
expect_grep "error.txt reported" "$tmp/r6/report.json" 'could not run forward .*numpy_runner: f32 nhwc not supported'
[ "$(count "$tmp/r6/report.json" '"layout":"nchw".*"verdict":"PASS"')" -gt 0 ] && ok "failed cases do not affect others" || bad "no nchw PASS"
expect_rc "runner declining channels-last (unsupported.txt) passes" 0 "$gnv" validate --runner "$(r unsupported)" "${rgrid[@]}" --out "$tmp/r6b"
expect_grep "... its cells are SKIPPED with the runner's text" "$tmp/r6b/report.json" '"layout":"nhwc".*"verdict":"SKIPPED","error":"runner runner declined forward .*channels-last is not implemented'
expect_grep "... and the nchw cells are judged" "$tmp/r6b/report.json" '"layout":"nchw".*"verdict":"PASS"'
replay=$(grep -o '"replay":"[^"]*"' "$tmp/r1/report.json" | head -1 | sed 's/^"replay":"//; s/"$//; s/\\"/"/g')
case "$replay" in
  /*"check --case"*"--runner "*) ok "a runner cell's replay line names gnv by path and loads the runner" ;;
  *) bad "replay line: '$replay'" ;;
esac
(cd "$tmp/r1" && eval "$replay" >"$tmp/out" 2>"$tmp/err"; [ $? -eq 1 ] && grep -q "verdict: FAIL" "$tmp/out") &&
  ok "the replay line from report.json runs and reproduces FAIL" || bad "the replay line did not reproduce"
for f in report.md junit.xml; do
  grep -qF -- "$(echo "$replay" | sed 's/&/\&amp;/g; s/'"'"'/\&apos;/g')" "$tmp/r1/$f" || grep -qF -- "$replay" "$tmp/r1/$f" &&
    ok "$f carries the same replay line" || bad "$f lacks the replay line"
done
expect_rc "runner killed by a signal" 1 "$gnv" validate --runner "$(r crash)" "${rgrid[@]}" --out "$tmp/r7"
expect_grep "runner crash verdict" "$tmp/r7/report.json" '"verdict":"CRASH".*SIGSEGV'
expect_rc "hanging runner" 1 "$gnv" validate --runner "$(r hang)" "${rgrid[@]}" --timeout 1 --out "$tmp/r8"
expect_grep "runner timeout verdict" "$tmp/r8/report.json" '"verdict":"TIMEOUT"'
expect_rc "runner without statistics, --no-stats" 0 "$gnv" validate --runner "$(r nostats)" --no-stats "${rgrid[@]}" --out "$tmp/r9"
expect_rc "runner without statistics, stats expected" 1 "$gnv" validate --runner "$(r nostats)" "${rgrid[@]}" --out "$tmp/r10"
expect_grep "missing mean.npy named" "$tmp/r10/report.json" 'mean.npy: missing'
expect_rc "empty runner command" 2 "$gnv" validate --runner " " --out "$tmp/x"
# gnv minimize: a failing case shrinks to a few elements that still FAIL; nothing is overwritten.
"$gnv" check --plugin "$(p wrong)" --dtype f32 --shape 2,32,8,8 --groups 8 --affine --stress offset:1e4 --backward \
  --save-case "$tmp/mz-case" >/dev/null 2>&1
expect_rc "minimize a failing case" 0 "$gnv" minimize --case "$tmp/mz-case" --plugin "$(p wrong)" --out "$tmp/mz-min"
n=$(/usr/bin/env python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); import math; print(j["N"]*j["C"]*math.prod(j["spatial"]))' "$tmp/mz-min/case.json")
[ "$n" -le 8 ] && ok "... to $n elements (from 4096)" || bad "minimized case has $n elements"
expect_grep "... recorded as minimized" "$tmp/mz-min/case.json" '"stress": "minimized from offset:10000 seed 0"'
expect_rc "... and it still fails" 1 "$gnv" check --case "$tmp/mz-min" --plugin "$(p wrong)"
expect_rc "minimize a case that passes" 2 "$gnv" minimize --case "$tmp/mz-case" --plugin "$plugins/libexample_plugin.so" \
  --out "$tmp/mz-pass"
expect_grep "... says it does not FAIL" "$tmp/err" "does not FAIL for example_c"
[ ! -e "$tmp/mz-pass" ] && ok "... and writes nothing" || bad "minimize of a passing case wrote $tmp/mz-pass"
expect_rc "minimize into a non-empty --out" 2 "$gnv" minimize --case "$tmp/mz-case" --plugin "$(p wrong)" --out "$tmp/mz-case"
expect_rc "... leaves the input case intact" 1 "$gnv" check --case "$tmp/mz-case" --plugin "$(p wrong)"
# gnv repro: the minimized case as a standalone reproducer (numpy only here) and an issue body.
snip="$here/../adapters/repro/numpy_onepass.py"
expect_rc "repro of the minimized case" 0 "$gnv" repro --case "$tmp/mz-min" --plugin "$(p wrong)" --snippet "$snip" --out "$tmp/rp"
expect_rc "... the reproducer runs standalone and fails" 1 /usr/bin/python3 "$tmp/rp/repro.py"
expect_grep "... printing the verdict against the budget" "$tmp/out" "max condition-scaled error .* \(budget .*\): FAIL"
expect_grep "... and the framework's line" "$tmp/out" "framework: numpy one-pass"
expect_grep "the issue body names the one-pass signature" "$tmp/rp/issue.md" "Suspected cause:.*one-pass variance"
expect_grep "... and embeds the reproducer" "$tmp/rp/issue.md" "def group_norm"
sed 's/var = np.maximum((g \* g).mean(-1, keepdims=True, dtype=np.float32) - m \* m, 0)/var = ((g - m) ** 2).astype(np.float64).mean(-1, keepdims=True)/' \
  "$tmp/rp/repro.py" > "$tmp/rp-fixed.py"
expect_rc "the same reproducer with a two-pass variance passes" 0 /usr/bin/python3 "$tmp/rp-fixed.py"
expect_grep "... and says so" "$tmp/out" "verdict: PASS"
expect_grep "... judging dx too (the case has dy, the snippet a backward)" "$tmp/out" "dx: max condition-scaled error .*: PASS"
sed 's/dx = rstd \* (d - d.mean(-1, keepdims=True) - /dx = rstd * (d - /' "$tmp/rp-fixed.py" > "$tmp/rp-bwd.py"
expect_rc "... and with the backward's mean term dropped it fails" 1 /usr/bin/python3 "$tmp/rp-bwd.py"
expect_grep "... in dx" "$tmp/out" "dx: max condition-scaled error .*: FAIL"
expect_grep "... and not in y" "$tmp/out" "^y: max condition-scaled error .*: PASS"
sed 's/^def group_norm_backward(/def not_a_backward(/' "$snip" > "$tmp/fwd-only.py"
expect_rc "repro with a forward-only snippet" 0 "$gnv" repro --case "$tmp/mz-min" --plugin "$(p wrong)" --snippet "$tmp/fwd-only.py" \
  --out "$tmp/rp-fwd"
expect_rc "... its reproducer judges y alone" 1 /usr/bin/python3 "$tmp/rp-fwd/repro.py"
if grep -q "^dx: " "$tmp/out"; then bad "a forward-only reproducer judged dx"; else ok "... and no dx"; fi
expect_rc "repro into a non-empty --out" 2 "$gnv" repro --case "$tmp/mz-min" --plugin "$(p wrong)" --snippet "$snip" --out "$tmp/rp"
expect_rc "repro of a passing case" 2 "$gnv" repro --case "$tmp/mz-min" --impl welford --snippet "$snip" --out "$tmp/rp2"
expect_grep "... says it does not FAIL" "$tmp/err" "does not FAIL for welford"
printf 'x = 1\n' > "$tmp/nosnip.py"
expect_rc "repro with a snippet that defines no group_norm" 2 "$gnv" repro --case "$tmp/mz-min" --plugin "$(p wrong)" \
  --snippet "$tmp/nosnip.py" --out "$tmp/rp3"
expect_grep "... names the snippet" "$tmp/err" "nosnip.py: defines no group_norm"
expect_rc "repro with a missing snippet" 2 "$gnv" repro --case "$tmp/mz-min" --plugin "$(p wrong)" --snippet "$tmp/none.py" --out "$tmp/rp4"
expect_rc "repro of a malformed case directory" 2 "$gnv" repro --case "$tmp" --plugin "$(p wrong)" --snippet "$snip" --out "$tmp/rp5"
rm -rf "$tmp/bf-case"
"$gnv" check --impl onepass --dtype bf16 --shape 1,2,3 --groups 1 --save-case "$tmp/bf-case" >/dev/null 2>&1
expect_rc "repro of a bf16 case with a snippet that never reads BFLOAT16" 2 "$gnv" repro --case "$tmp/bf-case" --impl onepass \
  --snippet "$snip" --out "$tmp/rp6"
expect_grep "... says why" "$tmp/err" "a bf16 case needs a snippet that converts .* never reads BFLOAT16"
[ ! -e "$tmp/rp2" ] && [ ! -e "$tmp/rp3" ] && [ ! -e "$tmp/rp4" ] && [ ! -e "$tmp/rp5" ] && [ ! -e "$tmp/rp6" ] &&
  ok "refused repros write nothing" ||
  bad "a refused repro wrote its --out"
expect_rc "minimize stopped by --max-seconds" 0 "$gnv" minimize --case "$tmp/mz-case" --impl onepass --max-seconds 0.001 \
  --out "$tmp/mz-quick"
expect_grep "... says so" "$tmp/out" "stopped at --max-seconds 0.001"
expect_rc "... and its case still fails" 1 "$gnv" check --case "$tmp/mz-quick" --impl onepass
expect_rc "plugin and runner in one validation" 0 "$gnv" validate --plugin "$plugins/libexample_plugin.so" --runner "$(r ok)" \
  --dtype f32 --section small --stress normal --no-html --out "$tmp/both"
expect_grep "both impls in one report" "$tmp/both/report.json" '"impls":\["example_c","runner"\]'

finish
