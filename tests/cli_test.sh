#!/usr/bin/env bash
# End to end: the gnv command's exit codes (0 pass, 1 fail, 2 bad usage/input), its messages,
# case round trips and oracle files. Usage: cli_test.sh /path/to/gnv
set -u
gnv=${1:?usage: cli_test.sh /path/to/gnv}
. "$(dirname "${BASH_SOURCE[0]}")/expect.sh"

# The first python3 on PATH may be a pyenv/venv one without numpy; Debian's has it (bootstrap).
py=""
for cand in python3 /usr/bin/python3; do
  if "$cand" -c 'import numpy' 2>/dev/null; then py=$cand; break; fi
done
[ -n "$py" ] || { echo "cli_test.sh: no python3 with numpy (run scripts/bootstrap.sh)"; exit 1; }

small=(--dtype f32 --layout nchw --shape 2,16,5,5 --groups 4)

# --- usage --------------------------------------------------------------------------------------
expect_rc "--help" 0 "$gnv" --help
expect_grep "--help lists the subcommands" "$tmp/out" "sweep"
expect_rc "check --help" 0 "$gnv" check --help
expect_rc "no subcommand" 2 "$gnv"
expect_rc "unknown subcommand" 2 "$gnv" frobnicate
expect_grep "unknown subcommand message" "$tmp/err" "gnv: error:"
expect_rc "unknown option" 2 "$gnv" check --impl welford "${small[@]}" --frobnicate
expect_rc "check without --impl" 2 "$gnv" check "${small[@]}"
expect_rc "check without --groups" 2 "$gnv" check --impl welford --shape 2,16
expect_rc "check C % G != 0" 2 "$gnv" check --impl welford --shape 2,6,4 --groups 4
expect_grep "C % G message names G" "$tmp/err" "gnv: error: .*\bG\b"
expect_rc "negative eps" 2 "$gnv" check --impl welford "${small[@]}" --eps=-1
expect_grep "negative eps message names eps" "$tmp/err" "gnv: error: .*eps"
expect_rc "negative eps (separate argument)" 2 "$gnv" check --impl welford "${small[@]}" --eps -1e-3
expect_grep "negative eps (separate argument) names eps" "$tmp/err" "eps"
expect_rc "eps not a number" 2 "$gnv" check --impl welford "${small[@]}" --eps abc
expect_rc "bad dtype" 2 "$gnv" check --impl welford --dtype f8 --shape 2,16 --groups 4
expect_grep "bad dtype message" "$tmp/err" "gnv: error: .*f8"
expect_rc "bad layout" 2 "$gnv" check --impl welford --layout nwhc --shape 2,16 --groups 4
expect_rc "unknown epilogue" 2 "$gnv" check --impl welford "${small[@]}" --epilogue gelu
expect_grep "unknown epilogue message" "$tmp/err" "gnv: error: .*gelu"
expect_rc "unknown affine mode" 2 "$gnv" check --impl welford "${small[@]}" --affine per-group
expect_grep "unknown affine mode message" "$tmp/err" "gnv: error: .*per-group"
expect_rc "silu and per-sample pass on welford" 0 "$gnv" check --impl welford "${small[@]}" --affine per-sample --epilogue silu --backward
expect_grep "per-sample reproducer" "$tmp/out" "reproduce: .*--affine per-sample --epilogue silu"
expect_rc "bad shape" 2 "$gnv" check --impl welford --shape 2,x --groups 1
expect_rc "bad stress" 2 "$gnv" check --impl welford "${small[@]}" --stress wobbly
expect_rc "unknown impl" 2 "$gnv" check --impl nosuch "${small[@]}"
expect_grep "unknown impl lists the available ones" "$tmp/err" "welford"
expect_rc "--case excludes --shape" 2 "$gnv" check --impl welford --case "$tmp" --shape 2,16

# --- the report directory is one set: kill -9 at any moment leaves the old set or the new one -----
kd=(--preset smoke --section small --impl welford,onepass --dtype f32,f16 --no-html --jobs 1)
expect_rc "report directory: a first complete run" 0 "$gnv" sweep "${kd[@]}" --seeds 1 --save-cases all --out "$tmp/kd"
echo "my notes" >"$tmp/kd/notes.txt"
# same_run DIR: report.json, report.md and junit.xml name the same seed, and every case_dir exists.
same_run() {
  "$py" - "$1" <<'PY'
import json, os, re, sys
d = sys.argv[1]
r = json.load(open(os.path.join(d, "report.json")))
seed = r["grid"]["sections"][0]["seeds"][0]
md = open(os.path.join(d, "report.md")).read()
junit = open(os.path.join(d, "junit.xml")).read()
assert re.search(r"seeds %d\b" % seed, md), "report.md is from another run"
assert ('seed%d"' % seed) in junit and ('seed%d"' % (3 - seed)) not in junit, "junit.xml is from another run"
for c in r["cells"]:
    if c.get("case_dir"):
        assert os.path.isdir(os.path.join(d, c["case_dir"])), c["case_dir"]
assert not [f for f in os.listdir(d) if ".tmp." in f], "temporary files left"
print(seed)
PY
}
for delay in 0.2 0.5 1.0 1.5 2.5; do
  "$gnv" sweep "${kd[@]}" --seeds 2 --save-cases all --out "$tmp/kd" >/dev/null 2>&1 &
  pid=$!
  sleep "$delay"
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  seed=$(same_run "$tmp/kd" 2>"$tmp/err") && ok "kill -9 after ${delay} s: one complete set (seed $seed)" || bad "kill -9 after ${delay} s: $(tail -1 "$tmp/err")"
done
expect_rc "report directory: a run after the kills" 0 "$gnv" sweep "${kd[@]}" --seeds 2 --save-cases none --out "$tmp/kd"
[ "$(same_run "$tmp/kd")" = 2 ] && ok "... is the new set" || bad "... is not the new set"
[ ! -e "$tmp/kd/cases" ] && ok "... without the old run's cases (--save-cases none)" || bad "old cases carried over"
[ "$(cat "$tmp/kd/notes.txt" 2>/dev/null)" = "my notes" ] && ok "... and a user's file in --out kept" || bad "notes.txt lost"
[ -z "$(ls -a "$tmp" | grep '^\.kd\.gnv-new-')" ] && ok "... and no staging folder of the killed runs left" || bad "stale staging folders: $(ls -a "$tmp" | grep gnv-new)"
expect_rc "--out that is a file" 2 "$gnv" sweep "${kd[@]}" --out "$tmp/kd/notes.txt"
expect_grep "... says so" "$tmp/err" "gnv: error: --out .*notes.txt: exists and is not a directory"
expect_rc "--out that cannot be created" 2 "$gnv" sweep "${kd[@]}" --out /proc/gnv-cannot/out
expect_grep "... names it" "$tmp/err" "gnv: error: --out /proc/gnv-cannot/out: cannot create"
gnv_abs=$(cd "$(dirname "$gnv")" && pwd)/$(basename "$gnv")
expect_rc "--out . (the current directory)" 2 sh -c "cd '$tmp/kd' && '$gnv_abs' sweep --out ."
expect_grep "... says why" "$tmp/err" "is the current directory or holds it"

# --- memory: an impossible shape is refused up front with its estimate, not OOM-killed -------------
start=$SECONDS
expect_rc "check of a 10^15-element shape" 2 timeout 20 "$gnv" check --impl welford --shape 100000,100000,100000 --groups 1
expect_grep "... names the estimate and the limit" "$tmp/err" "gnv: error: shape 100000,100000,100000 G=1 f32 needs an estimated [0-9.]+ PiB .* more than --max-memory"
expect_rc "check of one 10^9-element group with the backward pass" 2 timeout 20 "$gnv" check --impl welford --shape 1,1,1000000000 --groups 1 --backward
[ $((SECONDS - start)) -le 5 ] && ok "... both refused within 5 s" || bad "... took $((SECONDS - start)) s"
expect_rc "--seed past 2^64-1" 2 "$gnv" check --impl welford --shape 2,8 --groups 2 --seed 99999999999999999999999
expect_grep "... says so instead of saturating" "$tmp/err" "is not an integer from 0 to 18446744073709551615"
expect_rc "--seeds -1 on sweep" 2 "$gnv" sweep --seeds -1 --out "$tmp/x"
expect_rc "--jobs -1" 2 "$gnv" sweep --jobs -1 --out "$tmp/x"
[ "$(wc -c <"$tmp/err")" -lt 200 ] && ok "... with a short message" || bad "--jobs -1 message is $(wc -c <"$tmp/err") bytes"
expect_rc "--max-memory with a unit" 2 "$gnv" check --impl welford --shape 2,16,5 --groups 4 --max-memory 1KiB
expect_rc "--max-memory that is not a size" 2 "$gnv" check --impl welford --shape 2,16,5 --groups 4 --max-memory lots
expect_rc "a sweep whose cases fit one at a time runs with fewer jobs" 0 "$gnv" sweep --shape 1,8,64,64 --groups 1 \
  --impl welford --dtype f32 --layout nchw --stress normal,offset:10 --jobs 2 --max-memory 25MiB --no-html --out "$tmp/mem"
expect_grep "... and says so" "$tmp/err" "gnv: note: 1 case\(s\) at once fit --max-memory 25 MiB .*--jobs 1"
expect_rc "a sweep whose largest case does not fit" 2 "$gnv" sweep --shape 1,8,64,64 --groups 1 --impl welford \
  --dtype f32 --layout nchw --stress normal --max-memory 10MiB --no-html --out "$tmp/mem"
[ -s "$tmp/mem/report.json" ] && ok "... refused before touching --out" || bad "the refused sweep lost the earlier report"

# --- list, --version -----------------------------------------------------------------------------
expect_rc "list" 0 "$gnv" list
for word in naive welford onepass CONTROL offset grids/smoke.toml grids/ci.toml; do expect_grep "list mentions $word" "$tmp/out" "$word"; done
expect_rc "list --json" 0 "$gnv" list --json
"$py" -c 'import json,sys; j=json.load(open(sys.argv[1])); assert {p["name"] for p in j["presets"]} >= {"smoke","ci","full"}; assert any(i["name"]=="welford" and i["control"] is False for i in j["implementations"])' "$tmp/out" &&
  ok "list --json is JSON with the presets and impls" || bad "list --json"
expect_rc "--version" 0 "$gnv" --version
expect_grep "--version names the build's git describe" "$tmp/out" "^gnv [0-9]+\.[0-9]+\.[0-9]+ \((git [0-9a-zA-Z.-]+|no git)\)$"
expect_rc "dtype and layout aliases in any case" 0 "$gnv" check --impl welford --dtype FP16 --layout Channels_Last --shape 2,16,5 --groups 4

# --- check verdicts -----------------------------------------------------------------------------
expect_rc "welford f32 offset:1e4 passes" 0 "$gnv" check --impl welford "${small[@]}" --stress offset:1e4
expect_grep "welford prints PASS" "$tmp/out" "PASS"
expect_grep "check prints a reproduce line" "$tmp/out" "^reproduce: gnv check --impl welford "
expect_grep "check prints the kappa range" "$tmp/out" "kappa"
# The reproduce line must itself reproduce: run it and compare the metrics.
repro=$(sed -n 's/^reproduce: gnv //p' "$tmp/out" | head -1)
grep -o 'max_cond_err=[^ ]*' "$tmp/out" >"$tmp/m_orig"
# shellcheck disable=SC2086  # the reproduce line is a word list by design
expect_rc "reproduce line runs" 0 "$gnv" $repro
grep -o 'max_cond_err=[^ ]*' "$tmp/out" >"$tmp/m_repro"
if cmp -s "$tmp/m_orig" "$tmp/m_repro"; then ok "reproduce line gives the same metrics"; else bad "reproduce line gives different metrics"; fi

expect_rc "onepass f32 offset:1e6 fails" 1 "$gnv" check --impl onepass "${small[@]}" --stress offset:1e6
expect_grep "onepass prints FAIL" "$tmp/out" "FAIL"
expect_grep "onepass is marked as a control" "$tmp/out" "control, expected"
expect_rc "--impl all" 1 "$gnv" check --impl all "${small[@]}" --stress offset:1e6
expect_grep "--impl all runs welford" "$tmp/out" "^check welford"
# An impl that cannot run here (cuda without a GPU) is left out of "all" and refused by name.
"$gnv" list >"$tmp/list"
if grep -q "NOT AVAILABLE" "$tmp/list"; then
  gone=$(grep "NOT AVAILABLE" "$tmp/list" | awk '{print $1}' | head -1)
  expect_rc "--impl all skips the unavailable $gone" 0 "$gnv" check --impl all "${small[@]}"
  if grep -q "^check $gone" "$tmp/out"; then bad "--impl all ran the unavailable $gone"; else ok "--impl all leaves out $gone"; fi
  expect_rc "--impl $gone where it is unavailable" 2 "$gnv" check --impl "$gone" "${small[@]}"
  expect_grep "the refusal says it is not available" "$tmp/err" "not available on this machine"
else
  echo "note every registered impl is available here; the unavailable-impl checks do not apply"
fi

# --- saved cases replay -------------------------------------------------------------------------
# verdict_and_metrics FILE: the lines that must not change when a case is replayed.
verdict_and_metrics() { grep -oE '(verdict: [A-Z]+|max_cond_err=[^ ]*)' "$1"; }
for spec in "welford offset:1e4 0" "onepass offset:1e6 1"; do
  read -r impl stress want <<<"$spec"
  dir="$tmp/case-$impl"
  expect_rc "$impl save-case" "$want" "$gnv" check --impl "$impl" "${small[@]}" --affine \
    --stress "$stress" --seed 3 --backward --save-case "$dir"
  verdict_and_metrics "$tmp/out" >"$tmp/v_orig"
  expect_rc "$impl replay --case" "$want" "$gnv" check --case "$dir" --impl "$impl"
  verdict_and_metrics "$tmp/out" >"$tmp/v_replay"
  expect_grep "$impl replay has a reproduce line" "$tmp/out" "^reproduce: gnv check --case "
  if [ -s "$tmp/v_orig" ] && cmp -s "$tmp/v_orig" "$tmp/v_replay"; then
    ok "$impl replay: same verdict and max_cond_err"
  else
    bad "$impl replay differs: $(tr '\n' ' ' <"$tmp/v_orig") vs $(tr '\n' ' ' <"$tmp/v_replay")"
  fi
done
expect_rc "forward-only saved case" 0 "$gnv" check --impl welford "${small[@]}" --save-case "$tmp/case-fwd"
expect_rc "--backward on a case without dy.npy" 2 "$gnv" check --case "$tmp/case-fwd" --impl welford --backward
expect_grep "--backward without dy.npy message" "$tmp/err" "dy.npy"
# A case directory is untrusted input: x.npy that is /dev/zero, a FIFO, a directory or a valid
# header followed by far more data than the shape needs is refused at once, without reading it.
bad_x() {  # bad_x NAME SETUP...: a copy of case-fwd whose x.npy is replaced by SETUP
  local what=$1
  shift
  rm -rf "$tmp/case-bad" && cp -r "$tmp/case-fwd" "$tmp/case-bad" && rm -f "$tmp/case-bad/x.npy"
  "$@"
  local start=$SECONDS
  expect_rc "case with x.npy $what" 2 timeout 20 "$gnv" check --case "$tmp/case-bad" --impl welford
  [ $((SECONDS - start)) -le 5 ] && ok "... refused within 5 s" || bad "... took $((SECONDS - start)) s"
}
bad_x "-> /dev/zero" ln -s /dev/zero "$tmp/case-bad/x.npy"
expect_grep "... names a device" "$tmp/err" "x.npy: not a regular file \(a device\)"
bad_x "a FIFO" mkfifo "$tmp/case-bad/x.npy"
expect_grep "... names a FIFO" "$tmp/err" "x.npy: not a regular file \(a FIFO\)"
bad_x "a directory" mkdir "$tmp/case-bad/x.npy"
expect_grep "... names a directory" "$tmp/err" "x.npy: not a regular file \(a directory\)"
bad_x "with 64 MB of trailing data" sh -c "cp '$tmp/case-fwd/x.npy' '$tmp/case-bad/x.npy' && head -c 67108864 /dev/zero >>'$tmp/case-bad/x.npy'"
expect_grep "... names the size" "$tmp/err" "x.npy: [0-9]+ bytes, more than the [0-9]+ this file may hold"

# --- oracle -------------------------------------------------------------------------------------
# npy_shape FILE: prints "shape dtype" as numpy sees them.
npy_shape() { "$py" -c 'import sys, numpy as np; a = np.load(sys.argv[1]); print(a.shape, a.dtype)' "$1"; }
expect_rc "oracle --case --out" 0 "$gnv" oracle --case "$tmp/case-welford" --out "$tmp/oracle"
x_shape=$(npy_shape "$tmp/case-welford/x.npy")
for f in y mean rstd dx dgamma dbeta; do
  if [ -f "$tmp/oracle/$f.npy" ]; then ok "oracle wrote $f.npy"; else bad "oracle did not write $f.npy"; fi
done
[ "$(npy_shape "$tmp/oracle/y.npy")" = "$x_shape" ] && ok "y.npy has x's shape and dtype" ||
  bad "y.npy is $(npy_shape "$tmp/oracle/y.npy"), x is $x_shape"
[ "$(npy_shape "$tmp/oracle/dx.npy")" = "$x_shape" ] && ok "dx.npy has x's shape and dtype" ||
  bad "dx.npy is $(npy_shape "$tmp/oracle/dx.npy"), x is $x_shape"
for f in mean rstd; do
  got=$(npy_shape "$tmp/oracle/$f.npy")
  [ "$got" = "(2, 4) float32" ] && ok "$f.npy is (N, G) float32" || bad "$f.npy is $got"
done
got=$(npy_shape "$tmp/oracle/dgamma.npy")
[ "$got" = "(16,) float32" ] && ok "dgamma.npy is (C,)" || bad "dgamma.npy is $got"
expect_rc "oracle into the case dir" 0 "$gnv" oracle --case "$tmp/case-fwd"
for f in y mean rstd; do
  [ -f "$tmp/case-fwd/$f.npy" ] && ok "oracle wrote $f.npy into the case dir" || bad "no $f.npy in the case dir"
done
[ ! -e "$tmp/case-fwd/dx.npy" ] && ok "no dx.npy for a forward-only case" || bad "dx.npy for a forward-only case"
# A case directory with oracle outputs in it is still a valid case.
expect_rc "case dir with oracle outputs replays" 0 "$gnv" check --case "$tmp/case-fwd" --impl welford

# --- malformed case directories: exit exactly 2 (not a crash), naming the file ----------------
malformed() {
  local what=$1 file=$2
  expect_rc "check, $what" 2 "$gnv" check --case "$tmp/bad" --impl welford
  expect_grep "check, $what: message names $file" "$tmp/err" "gnv: error: .*$file"
  expect_rc "oracle, $what" 2 "$gnv" oracle --case "$tmp/bad" --out "$tmp/bad-out"
  rm -rf "$tmp/bad"
}
cp -r "$tmp/case-welford" "$tmp/bad" && echo '{"format": "gnv-case", "N": [' >"$tmp/bad/case.json"
malformed "garbage case.json" "case\.json"
cp -r "$tmp/case-welford" "$tmp/bad" && echo 'not json at all' >"$tmp/bad/case.json"
malformed "non-JSON case.json" "case\.json"
cp -r "$tmp/case-welford" "$tmp/bad" && head -c 100 "$tmp/case-welford/x.npy" >"$tmp/bad/x.npy"
malformed "truncated x.npy" "x\.npy"
cp -r "$tmp/case-welford" "$tmp/bad" && head -c 5 "$tmp/case-welford/x.npy" >"$tmp/bad/x.npy"
malformed "x.npy cut inside the header" "x\.npy"
cp -r "$tmp/case-welford" "$tmp/bad" &&
  "$py" -c 'import sys, numpy as np; np.save(sys.argv[1], np.zeros((2, 16, 24), np.float32))' "$tmp/bad/x.npy"
malformed "x.npy with the wrong shape" "x(\.npy)?\b"
cp -r "$tmp/case-welford" "$tmp/bad" &&
  "$py" -c 'import sys, numpy as np; np.save(sys.argv[1], np.zeros((2, 16, 5, 5), np.float64))' "$tmp/bad/x.npy"
malformed "x.npy with the wrong dtype" "x(\.npy)?\b"
cp -r "$tmp/case-welford" "$tmp/bad" && rm "$tmp/bad/gamma.npy"
malformed "affine case without gamma.npy" "gamma"
expect_rc "check, missing case directory" 2 "$gnv" check --case "$tmp/nonexistent" --impl welford
expect_rc "oracle, missing case directory" 2 "$gnv" oracle --case "$tmp/nonexistent"

# --- sweep, merge, compare (slices of the presets: the whole ones are scripts/run.sh and the
# baseline_gate test) --------------------------------------------------------------------------
# The HTML report needs matplotlib, which the first python3 on PATH may lack: use one that has it.
for cand in "$py" /usr/bin/python3; do
  if "$cand" -c 'import matplotlib' 2>/dev/null; then export GNV_PYTHON=$cand; break; fi
done
# --save-cases all: the control's expected failures are saved too, so that they can be replayed here.
slice=(--impl welford,onepass --dtype f32,f16 --layout nchw --stress normal,offset:1e6,special --save-cases all)
expect_rc "sweep slice" 0 "$gnv" sweep "${slice[@]}" --jobs 2 --out "$tmp/sw"
expect_grep "sweep names the control" "$tmp/out" "onepass \(control\)"
expect_grep "sweep prints the breakdown points" "$tmp/out" "breakdown points.*onepass/f32/nchw=1e6"
[ ! -s "$tmp/err" ] && ok "sweep is quiet on stderr when it is not a terminal" || bad "sweep wrote to stderr"
for f in report.json report.md junit.xml report.html; do
  [ -s "$tmp/sw/$f" ] && ok "sweep wrote $f" || bad "sweep did not write $f"
done
if "$py" - "$tmp/sw/report.json" <<'PY' 2>"$tmp/err"; then ok "report.json: schema, environment, cells"; else bad "report.json"; fi
import json, sys
d = json.load(open(sys.argv[1]))
assert d["format"] == "gnv-report" and d["version"] == 1, d["version"]
env = d["environment"]
for k in ("compiler", "compiler_flags", "cpu", "gpu", "libraries", "git_revision", "date"):
    assert env[k], k
c = d["cells"][0]
for k in ("impl", "problem", "stress", "seed", "verdict", "outputs", "kappa_min", "kappa_max", "reproduce"):
    assert k in c, k
for k in ("max_ulp", "max_u_err", "max_cond_err", "normwise", "budget"):
    assert k in c["outputs"][0], k
assert d["summary"]["result"] == "PASS"
assert any(c.get("case_dir") for c in d["cells"] if c["verdict"] != "PASS")
PY
if "$py" -c 'import sys, xml.etree.ElementTree as ET; r = ET.parse(sys.argv[1]).getroot(); n = sum(1 for _ in r.iter("testcase")); sys.exit(0 if r.tag == "testsuites" and n > 10 else 1)' \
  "$tmp/sw/junit.xml" 2>"$tmp/err"; then ok "junit.xml is well-formed XML with testcases"; else bad "junit.xml"; fi
if grep -q "<svg" "$tmp/sw/report.html" && ! grep -Eq '(src|href)="(https?:)?//' "$tmp/sw/report.html"; then
  ok "report.html is self-contained with inline plots"
else
  bad "report.html has no inline plot or loads something from outside"
fi
expect_grep "report.md has the table" "$tmp/sw/report.md" "^\| welford \| f32 \| nchw \|"
expect_grep "report.md has breakdown points" "$tmp/sw/report.md" "Breakdown points"
expect_grep "report.md names reproduce commands" "$tmp/sw/report.md" "reproduce: .gnv check --impl onepass"
replay=$(ls -d "$tmp"/sw/cases/onepass-* 2>/dev/null | head -1)
if [ -n "$replay" ]; then
  expect_rc "a failing sweep cell replays with check --case" 1 "$gnv" check --case "$replay" --impl onepass
else
  bad "sweep saved no failing onepass case"
fi
# Parallelism and sharding change nothing but timing fields.
strip_timing() {
  "$py" - "$@" <<'PY'
import json, sys
for path in sys.argv[1:]:
    d = json.load(open(path))
    d.pop("timing"); d["environment"].pop("date")
    for c in d["cells"]:
        c.pop("seconds")
    print(json.dumps(d, sort_keys=True))
PY
}
expect_rc "sweep slice, one job" 0 "$gnv" sweep "${slice[@]}" --jobs 1 --no-html --out "$tmp/sw1"
[ "$(strip_timing "$tmp/sw/report.json")" = "$(strip_timing "$tmp/sw1/report.json")" ] &&
  ok "--jobs 1 and --jobs 2 give the same report" || bad "--jobs changes the report"
for k in 1 2 3; do
  expect_rc "shard $k/3" 0 "$gnv" sweep "${slice[@]}" --shard "$k/3" --no-html --out "$tmp/shard$k"
done
expect_rc "merge 3 shards" 0 "$gnv" merge "$tmp"/shard{3,1,2}/report.json --out "$tmp/merged"
[ "$(strip_timing "$tmp/sw/report.json")" = "$(strip_timing "$tmp/merged/report.json")" ] &&
  ok "merged shards == unsharded report (timing aside)" || bad "merged shards differ from the unsharded report"
replay=$(ls -d "$tmp"/merged/cases/onepass-* 2>/dev/null | head -1)
[ -n "$replay" ] && ok "merge brings the shards' cases along" || bad "merge lost the cases"
expect_rc "merge with a shard missing" 2 "$gnv" merge "$tmp"/shard{1,2}/report.json --out "$tmp/merged2"
expect_grep "merge names the missing shard" "$tmp/err" "missing shard.*3"
# Shards come from other machines: a crafted case_dir must not reach outside --out, a symlink in a
# case folder is not followed, and no output may replace an input.
mkdir -p "$tmp/evil" "$tmp/payload" && echo secret >"$tmp/payload/x"
for k in 1 2 3; do cp -r "$tmp/shard$k" "$tmp/evil/shard$k"; done
ks=$(for k in 1 2 3; do [ -n "$(ls "$tmp/shard$k/cases" 2>/dev/null)" ] && echo "$k"; done | head -1)
"$py" - "$tmp/evil/shard${ks:-1}/report.json" <<'PY'
import json, sys
p = sys.argv[1]
text = open(p).read()
d = json.loads(text)
c = next(c for c in d["cells"] if c.get("case_dir"))
text = text.replace('"case_dir":"%s"' % c["case_dir"], '"case_dir":"../../payload"', 1)
open(p, "w").write(text)
PY
expect_rc "merge of a shard whose case_dir leaves cases/" 2 "$gnv" merge "$tmp"/evil/shard{1,2,3}/report.json --out "$tmp/evil/out/m"
expect_grep "... names the field" "$tmp/err" "case_dir: '../../payload' is not cases/NAME"
[ ! -e "$tmp/evil/out/payload" ] && [ ! -e "$tmp/evil/payload" ] && ok "nothing was copied outside --out" || bad "payload copied"
for k in 1 2 3; do rm -rf "$tmp/evil/shard$k"; cp -r "$tmp/shard$k" "$tmp/evil/shard$k"; done
victim=$(ls -d "$tmp"/evil/shard"${ks:-1}"/cases/* | head -1)
if [ -n "$victim" ]; then
  ln -s "$tmp/payload/x" "$victim/x.npy.link"
  expect_rc "merge of a shard with a symlink in a case folder" 2 "$gnv" merge "$tmp"/evil/shard{1,2,3}/report.json --no-html --out "$tmp/evil/m2"
  expect_grep "... refuses it by name" "$tmp/err" "x.npy.link: not a regular file or directory"
else
  bad "no shard saved a case to plant a symlink in"
fi
cp "$tmp/shard1/report.json" "$tmp/s1-before.json"
expect_rc "merge --write-baseline onto an input" 2 "$gnv" merge "$tmp"/shard{1,2,3}/report.json --no-html --out "$tmp/m3" --write-baseline "$tmp/shard1/report.json"
cmp -s "$tmp/shard1/report.json" "$tmp/s1-before.json" && ok "... and the input is intact" || bad "merge overwrote its input"
expect_rc "merge --out onto a shard's folder" 2 "$gnv" merge "$tmp"/shard{1,2,3}/report.json --no-html --out "$tmp/shard2"
expect_rc "bad --shard" 2 "$gnv" sweep "${slice[@]}" --shard 4/3 --out "$tmp/x"
expect_rc "unknown preset" 2 "$gnv" sweep --preset enormous --out "$tmp/x"
# Grid files (docs/guide.md "Grid files"): a user's grid runs exactly its shapes; a malformed one is exit 2
# with the file, line and key, and nothing already in --out is touched.
cat >"$tmp/mine.toml" <<'TOML'
name = "mine"
dtypes = ["fp32"]
layouts = ["NCHW"]
[[section]]
name = "unet"
stresses = ["normal", "offset:1e4"]
  [[section.shape]]
  shape = [2, 64, 9, 9]
  groups = [32]
  [[section.shape]]
  shape = "1,12,5"
  groups = 3
TOML
expect_rc "sweep --grid with two user shapes" 0 "$gnv" sweep --grid "$tmp/mine.toml" --impl welford --no-html --out "$tmp/grid"
shapes=$("$py" -c 'import json,sys; print(" ".join(sorted({c["problem"]["shape"] for c in json.load(open(sys.argv[1]))["cells"]})))' "$tmp/grid/report.json")
[ "$shapes" = "1,12,5 2,64,9,9" ] && ok "the grid file's two shapes and nothing else ran" || bad "shapes run: '$shapes'"
expect_grep "the report names the grid" "$tmp/grid/report.md" "Grid .mine."
expect_rc "a report's grid runs again (--grid report.json)" 0 "$gnv" sweep --grid "$tmp/grid/report.json" --impl welford --no-html --out "$tmp/grid2"
expect_rc "... and compares clean with the first run" 0 "$gnv" compare "$tmp/grid/report.json" "$tmp/grid2/report.json"
printf 'name = "x"\n[[section]]\nname = "s"\n[[section.shape]]\nshape = [2, 6]\ngroups = [4]\n' >"$tmp/cg.toml"
expect_rc "grid file with C % G != 0" 2 "$gnv" sweep --grid "$tmp/cg.toml" --no-html --out "$tmp/grid"
expect_grep "... names the file, line and shape" "$tmp/err" "gnv: error: .*cg.toml:4: section\[0\]\.shape\[0\]: shape 2,6 with G = 4"
printf '[[section]]\nname = "s"\nstresses = ["wobbly"]\n' >"$tmp/st.toml"
expect_rc "grid file with an unknown stress class" 2 "$gnv" sweep --grid "$tmp/st.toml" --no-html --out "$tmp/grid"
expect_grep "... names the key" "$tmp/err" "st.toml:3: section\[0\]\.stresses: stress class 'wobbly'"
printf '[[section]\nname = ' >"$tmp/trunc.toml"
expect_rc "truncated grid file" 2 "$gnv" sweep --grid "$tmp/trunc.toml" --no-html --out "$tmp/grid"
[ -s "$tmp/grid/report.json" ] && [ -s "$tmp/grid/report.md" ] && ok "a refused grid left the earlier report in --out" ||
  bad "a refused grid lost the earlier report"
expect_rc "grid file that is a directory" 2 "$gnv" sweep --grid "$tmp" --no-html --out "$tmp/grid"
expect_grep "... says so" "$tmp/err" "not a regular file"
expect_rc "--grid and --preset together" 2 "$gnv" sweep --grid "$tmp/mine.toml" --preset ci --out "$tmp/grid"
# Ad-hoc shapes: --shape alone is the whole grid; with a preset it is one more section.
expect_rc "sweep --shape --groups" 0 "$gnv" sweep --shape 1,32,6,6 --groups 8,32 --eps 1e-6 --affine --impl welford \
  --dtype float16 --layout channels_last --stress normal --no-html --out "$tmp/adhoc"
"$py" - "$tmp/adhoc/report.json" <<'PY' && ok "--shape ran 2 G x 1 stress on that shape only, eps and affine as given" || bad "--shape grid is wrong"
import json, sys
r = json.load(open(sys.argv[1]))
cells = r["cells"]
assert r["grid"]["preset"] == "adhoc", r["grid"]["preset"]
assert len(cells) == 2, len(cells)
assert {c["problem"]["G"] for c in cells} == {8, 32}
assert all(c["problem"]["shape"] == "1,32,6,6" and c["problem"]["eps"] == 1e-6 and c["problem"]["affine"]
           and c["problem"]["dtype"] == "f16" and c["problem"]["layout"] == "nhwc" for c in cells)
PY
expect_rc "--shape with --preset adds a section" 0 "$gnv" sweep --preset smoke --section models --shape 1,8,5 --groups 2 \
  --impl welford --dtype f32 --layout nchw --stress normal --no-html --out "$tmp/adhoc2"
expect_grep "... named adhoc" "$tmp/adhoc2/report.json" '"name": *"adhoc"'
expect_rc "--shape without --groups" 2 "$gnv" sweep --shape 1,8,5 --out "$tmp/x"
expect_rc "--groups without --shape" 2 "$gnv" sweep --groups 4 --out "$tmp/x"
expect_rc "--shape 2,8, (trailing comma)" 2 "$gnv" sweep --shape 2,8, --groups 2 --out "$tmp/x"
expect_rc "--shape with G not dividing C" 2 "$gnv" sweep --shape 2,30,4 --groups 32 --out "$tmp/x"
expect_grep "... names G" "$tmp/err" "gnv: error: .*G"
# compare: exit 0 clean, 1 regression, 2 malformed or mismatched.
expect_rc "compare a report with itself" 0 "$gnv" compare "$tmp/sw/report.json" "$tmp/sw1/report.json"
expect_grep "compare prints Markdown" "$tmp/out" "Result: OK"
cp "$tmp/sw1/report.json" "$tmp/sw1-before.json"
expect_rc "compare --out onto its input" 2 "$gnv" compare "$tmp/sw/report.json" "$tmp/sw1/report.json" --out "$tmp/sw1/report.json"
cmp -s "$tmp/sw1/report.json" "$tmp/sw1-before.json" && ok "... and the input is intact" || bad "compare --out overwrote its input"
# craft NAME EXPR: a copy of the report with a Python edit applied to its JSON (d).
craft() {
  "$py" - "$tmp/sw/report.json" "$tmp/$1.json" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
exec(sys.argv[3])
json.dump(d, open(sys.argv[2], "w"))
PY
}
first_pass='next(c for c in d["cells"] if c["verdict"] == "PASS" and not c["control"])'
craft regressed "c = $first_pass; c['verdict'] = 'FAIL'"
expect_rc "compare: pass -> fail" 1 "$gnv" compare "$tmp/sw/report.json" "$tmp/regressed.json"
expect_grep "compare lists the regression" "$tmp/out" "Regressions"
craft grown "c = $first_pass; c['outputs'][0]['max_cond_err'] = 3 * max(c['outputs'][0]['max_cond_err'], 1) + 0.5"
expect_rc "compare: error grown beyond 2x" 1 "$gnv" compare "$tmp/sw/report.json" "$tmp/grown.json"
expect_rc "compare: the same growth within --tolerance 10" 0 "$gnv" compare --tolerance 10 "$tmp/sw/report.json" "$tmp/grown.json"
craft missing "d['cells'] = d['cells'][1:]"
expect_rc "compare: a cell missing in NEW is lost coverage" 1 "$gnv" compare "$tmp/sw/report.json" "$tmp/missing.json"
expect_grep "... named as such" "$tmp/out" "Coverage regression: 1 baseline cells are missing"
expect_grep "compare lists the missing cell" "$tmp/out" "Only in"
expect_rc "compare --allow-missing: listed, not a failure" 0 "$gnv" compare --allow-missing "$tmp/sw/report.json" "$tmp/missing.json"
# A renamed kernel matches nothing of its baseline: the gate must not pass by comparing nothing.
craft renamed "d['grid']['impls'] = ['welford2' if i == 'welford' else i for i in d['grid']['impls']]
for c in d['cells']:
    if c['impl'] == 'welford':
        c['impl'] = 'welford2'; c['id'] = 'welford2' + c['id'][len('welford'):]"
expect_rc "compare: renamed kernel fails the gate" 1 "$gnv" compare "$tmp/sw/report.json" "$tmp/renamed.json"
expect_grep "... naming the unmatched impls" "$tmp/out" "impls \[welford\] in the baseline and \[welford2\] in the new report \(was a kernel renamed"
only_impl='import json,sys; d=json.load(open(sys.argv[1])); d["cells"]=[c for c in d["cells"] if c["impl"]==sys.argv[2]]; d["grid"]["impls"]=[sys.argv[2]]; json.dump(d,open(sys.argv[3],"w"))'
"$py" -c "$only_impl" "$tmp/sw/report.json" welford "$tmp/only-old.json"
"$py" -c "$only_impl" "$tmp/renamed.json" welford2 "$tmp/only-new.json"
expect_rc "... even with --allow-missing when nothing matched" 1 "$gnv" compare --allow-missing "$tmp/only-old.json" "$tmp/only-new.json"
expect_grep "... says it compared nothing" "$tmp/out" "the gate compared nothing"
craft skipped "c = $first_pass; c['verdict'] = 'SKIPPED'; c['error'] = 'declined'; c['outputs'] = []"
expect_rc "compare: pass -> SKIPPED is a regression" 1 "$gnv" compare "$tmp/sw/report.json" "$tmp/skipped.json"
craft version "d['version'] = 3"
expect_rc "compare: other schema version" 2 "$gnv" compare "$tmp/sw/report.json" "$tmp/version.json"
expect_grep "schema version message" "$tmp/err" "gnv: error: .*schema version 3"
craft grid "d['grid']['sections'][0]['seeds'] = [0, 1]"
expect_rc "compare: different grid" 2 "$gnv" compare "$tmp/sw/report.json" "$tmp/grid.json"
expect_grep "different grid message" "$tmp/err" "different grids"
head -c 2000 "$tmp/sw/report.json" >"$tmp/truncated.json"
expect_rc "compare: truncated JSON" 2 "$gnv" compare "$tmp/sw/report.json" "$tmp/truncated.json"
expect_rc "compare: missing file" 2 "$gnv" compare "$tmp/sw/report.json" "$tmp/nonexistent.json"
# sweep --baseline: the gate at the end of a sweep.
expect_rc "sweep --baseline, no change" 0 "$gnv" sweep "${slice[@]}" --no-html --out "$tmp/sw3" \
  --baseline "$tmp/sw/report.json" --write-baseline "$tmp/sw3/baseline.json"
[ -s "$tmp/sw3/compare.md" ] && ok "sweep --baseline writes compare.md" || bad "no compare.md"
expect_rc "compare with the baseline form" 0 "$gnv" compare "$tmp/sw3/baseline.json" "$tmp/sw/report.json"
# A past in which the cell with the largest error was exact. Errors below 1 never count as grown
# (the floor of max(before, 1)), so this runs on a slice where naive f32 has errors above 1 and sets
# --tolerance under today's largest error; a slice without such a cell is a failure, not a skip.
grow=(--impl naive --dtype f32 --layout nchw --stress offset:1e3,offset:1e5,tiny-var)
expect_rc "sweep of the growth slice" 0 "$gnv" sweep "${grow[@]}" --no-html --out "$tmp/sw7"
tol=$("$py" - "$tmp/sw7/report.json" "$tmp/better.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
c = max((c for c in d["cells"] if c["verdict"] == "PASS" and not c["control"]),
        key=lambda c: max(o["max_cond_err"] for o in c["outputs"]))
worst = max(o["max_cond_err"] for o in c["outputs"])
for o in c["outputs"]:
    o["max_cond_err"] = 0
json.dump(d, open(sys.argv[2], "w"))
print(f"{worst / 1.1:.6g}" if worst > 1.2 else "none")
PY
)
if [ "$tol" = none ]; then
  bad "the growth slice has no error above 1.2: the growth gate cannot be exercised"
else
  expect_rc "sweep --baseline of a better past (--tolerance $tol)" 1 "$gnv" sweep "${grow[@]}" --no-html \
    --out "$tmp/sw4" --baseline "$tmp/better.json" --tolerance "$tol"
  expect_grep "the sweep's gate names the grown error" "$tmp/out" "Errors grown beyond the tolerance"
fi
expect_rc "sweep --baseline of another grid" 2 "$gnv" sweep "${slice[@]}" --no-html --out "$tmp/sw5" \
  --baseline "$tmp/grid.json"
# The control rule: no offset >= 1e4 in the grid, so onepass need not fail.
expect_rc "sweep without large offsets" 0 "$gnv" sweep --impl onepass --dtype f32 --layout nchw \
  --stress normal --no-html --out "$tmp/sw6"
# `gnv suite` is the same command under its old name.
expect_rc "suite alias" 0 "$gnv" suite --impl welford --dtype f32 --layout nhwc --no-backward \
  --stress normal --no-html --out "$tmp/suite"
[ -s "$tmp/suite/report.json" ] && ok "suite alias writes report.json" || bad "suite alias wrote no report.json"

finish
