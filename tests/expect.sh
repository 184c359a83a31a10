# Shared by the end-to-end shell tests (cli_test.sh, validate_test.sh): a scratch folder $tmp, removed
# on exit, and checks that count and explain themselves. Source it; end the test with `finish`.
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

# The tally; the exit status is the test's verdict.
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
