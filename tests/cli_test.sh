#!/usr/bin/env bash
# End to end: the gnv command's exit codes (0 pass, 1 fail, 2 bad usage/input), its messages,
# case round trips and oracle files. Usage: cli_test.sh /path/to/gnv
set -u
gnv=${1:?usage: cli_test.sh /path/to/gnv}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() {
  failed=$((failed + 1))
  echo "FAIL $1"
  # The captured output explains most failures; keep it short.
  [ -f "$tmp/out" ] && sed -n '1,15s/^/     out| /p' "$tmp/out"
  [ -f "$tmp/err" ] && sed -n '1,15s/^/     err| /p' "$tmp/err"
}

# expect_rc NAME RC CMD...: runs CMD with stdout/stderr in $tmp/out and $tmp/err.
expect_rc() {
  local what=$1 want=$2
  shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ "$rc" -eq "$want" ]; then ok "$what (exit $rc)"; else bad "$what: exit $rc, expected $want"; fi
}
# expect_grep NAME FILE REGEX (extended)
expect_grep() {
  if grep -Eq -- "$3" "$2"; then ok "$1"; else bad "$1: /$3/ not in $(basename "$2")"; fi
}

# The first python3 on PATH may be a pyenv/venv one without numpy; Debian's has it (bootstrap).
py=""
for cand in python3 /usr/bin/python3; do
  if "$cand" -c 'import numpy' 2>/dev/null; then py=$cand; break; fi
done
[ -n "$py" ] || { echo "cli_test.sh: no python3 with numpy (run scripts/bootstrap.sh)"; exit 1; }

small=(--dtype f32 --layout nchw --shape 2,16,5,5 --groups 4)

# --- usage --------------------------------------------------------------------------------------
expect_rc "--help" 0 "$gnv" --help
expect_grep "--help lists the subcommands" "$tmp/out" "suite"
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
expect_rc "bad shape" 2 "$gnv" check --impl welford --shape 2,x --groups 1
expect_rc "bad stress" 2 "$gnv" check --impl welford "${small[@]}" --stress wobbly
expect_rc "unknown impl" 2 "$gnv" check --impl nosuch "${small[@]}"
expect_grep "unknown impl lists the available ones" "$tmp/err" "welford"
expect_rc "--case excludes --shape" 2 "$gnv" check --impl welford --case "$tmp" --shape 2,16

# --- list ---------------------------------------------------------------------------------------
expect_rc "list" 0 "$gnv" list
for word in naive welford onepass CONTROL offset; do expect_grep "list mentions $word" "$tmp/out" "$word"; done

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

# --- suite (a slice of it: the whole one is scripts/run.sh) -------------------------------------
expect_rc "suite welford+onepass f32 nchw" 0 "$gnv" suite --impl welford,onepass --dtype f32 \
  --layout nchw --out "$tmp/suite"
expect_grep "suite names the control" "$tmp/out" "onepass \(control\)"
if "$py" -c 'import json, sys; d = json.load(open(sys.argv[1])); sys.exit(0 if d["cells"] and d["summary"]["result"] == "PASS" else "summary: %s" % d["summary"])' \
  "$tmp/suite/suite.json" 2>"$tmp/err"; then ok "suite.json parses and says PASS"; else bad "suite.json"; fi
[ -s "$tmp/suite/suite.md" ] && ok "suite.md written" || bad "suite.md missing"
replay=$(ls -d "$tmp"/suite/cases/onepass-* 2>/dev/null | head -1)
if [ -n "$replay" ]; then
  expect_rc "a failing suite cell replays with check --case" 1 "$gnv" check --case "$replay" --impl onepass
else
  bad "suite saved no failing onepass case"
fi
# With no control selected, passing everything is success.
expect_rc "suite with only a passing impl" 0 "$gnv" suite --impl welford --dtype f32 --layout nhwc \
  --no-backward --out "$tmp/suite2"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
