#!/usr/bin/env bash
# Measures the wall time of the sweep presets (docs/guide.md "gnv sweep": the figures recorded there).
# Usage: scripts/time-presets.sh [GNV] [PRESET...]   (default: build/default/gnv, smoke ci)
# Runs with --jobs $(nproc) and without the HTML report (its matplotlib step is timed apart).
# Times are measured here, never asserted in tests: they depend on the machine and its load.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
gnv=${1:-$root/build/default/gnv}
[ $# -gt 0 ] && shift
presets=("$@")
[ ${#presets[@]} -eq 0 ] && presets=(smoke ci)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
jobs=$(nproc)
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $jobs cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for p in "${presets[@]}"; do
  start=$(date +%s.%N)
  rc=0
  "$gnv" sweep --preset "$p" --jobs "$jobs" --no-html --out "$out/$p" >"$out/$p.log" 2>&1 || rc=$?
  end=$(date +%s.%N)
  cells=$(grep -oE '^[0-9]+ cells' "$out/$p.log" | head -1)
  printf '%-6s %7.1f s wall  (%s, exit %d, --jobs %d)\n' "$p" "$(awk "BEGIN { print $end - $start }")" "$cells" "$rc" "$jobs"
done
python=""
for cand in "${GNV_PYTHON:-}" /usr/bin/python3 python3; do
  [ -n "$cand" ] && "$cand" -c 'import matplotlib' 2>/dev/null && { python=$cand; break; }
done
if [ -n "$python" ]; then
  last=${presets[-1]}
  start=$(date +%s.%N)
  "$python" "$root/reports/html_report.py" "$out/$last/report.json" -o "$out/$last/report.html"
  end=$(date +%s.%N)
  printf 'html   %7.1f s wall  (report.html of %s)\n' "$(awk "BEGIN { print $end - $start }")" "$last"
fi
