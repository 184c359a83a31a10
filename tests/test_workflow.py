#!/usr/bin/env python3
"""Checks .github/workflows/gnv-sweep.yml, the worked example of a sharded sweep on GitHub Actions.

  test_workflow.py GNV            the YAML structure, and the workflow's gnv steps run here on a slice
  test_workflow.py --actionlint   actionlint on the file; exit 77 (SKIPPED) when actionlint is absent

The structure checks hold the file to what the README promises: a shard matrix whose size is
GNV_SHARDS, a sweep step that passes --shard k/GNV_SHARDS, a merge job that needs the sweep, merges
every shard, gates against a baseline that exists, writes report.md into the job summary and
publishes junit.xml. Then the same gnv commands (sweep shards, merge, compare) run on a small slice
of the grid, so a renamed option or a changed exit code breaks this test, not a user's CI.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKFLOW = os.path.join(ROOT, ".github", "workflows", "gnv-sweep.yml")


def fail(msg):
    print(f"FAIL {msg}")
    sys.exit(1)


def actionlint():
    exe = shutil.which("actionlint")
    for cand in (os.path.join(ROOT, "build", "tools-venv", "bin", "actionlint"),):
        if not exe and os.access(cand, os.X_OK):
            exe = cand
    if not exe:
        print("SKIPPED: actionlint is not installed (scripts/bootstrap.sh --adapters installs it)")
        sys.exit(77)
    r = subprocess.run([exe, "-no-color", WORKFLOW], capture_output=True, text=True)
    print(r.stdout + r.stderr)
    if r.returncode != 0:
        fail(f"actionlint exited {r.returncode}")
    print("ok   actionlint found nothing")


def structure():
    import yaml  # Debian python3-yaml (scripts/bootstrap.sh)

    with open(WORKFLOW) as f:
        wf = yaml.safe_load(f)
    env = wf.get("env", {})
    for key in ("GNV_GRID", "GNV_BASELINE", "GNV_SHARDS"):
        if key not in env:
            fail(f"workflow env lacks {key}")
    n = int(env["GNV_SHARDS"])
    jobs = wf["jobs"]
    sweep, merge = jobs["sweep"], jobs["merge"]
    shards = sweep["strategy"]["matrix"]["shard"]
    if shards != list(range(1, n + 1)):
        fail(f"matrix.shard {shards} is not 1..GNV_SHARDS={n}")
    if sweep["strategy"].get("fail-fast", True):
        fail("the shard matrix must not fail fast: every shard has to report")
    runs = "\n".join(s.get("run", "") for s in sweep["steps"])
    if not re.search(r'gnv sweep \$GNV_GRID --shard "\$\{\{ matrix\.shard \}\}/\$GNV_SHARDS"', runs):
        fail("the sweep step does not pass --shard ${{ matrix.shard }}/$GNV_SHARDS")
    if "sweep" not in ([merge["needs"]] if isinstance(merge["needs"], str) else merge["needs"]):
        fail("the merge job does not need the sweep job")
    mruns = "\n".join(s.get("run", "") for s in merge["steps"])
    for want in ("gnv merge shards/shard-*/report.json", 'gnv compare "$GNV_BASELINE" merged/report.json',
                 'merged/report.md >> "$GITHUB_STEP_SUMMARY"'):
        if want not in mruns:
            fail(f"the merge job lacks `{want}`")
    uses = [s.get("uses", "") for s in merge["steps"]]
    junit = [s for s in merge["steps"] if "junit" in s.get("uses", "")]
    if not junit or junit[0]["with"]["report_paths"] != "merged/junit.xml":
        fail(f"no JUnit report step for merged/junit.xml among {uses}")
    if not os.path.isfile(os.path.join(ROOT, env["GNV_BASELINE"])):
        fail(f"GNV_BASELINE {env['GNV_BASELINE']} does not exist")
    print(f"ok   structure: {n} shards, merge needs sweep, gate against {env['GNV_BASELINE']}, summary, junit")
    return env, n


def simulate(gnv, env, n):
    """The workflow's gnv commands, on a slice of its grid (welford and the control, f32 nchw)."""
    tmp = tempfile.mkdtemp()
    try:
        grid = env["GNV_GRID"].split() + ["--impl", "welford,onepass", "--dtype", "f32", "--layout", "nchw",
                                          "--section", "small", "--stress", "normal,offset:1e4", "--no-html"]

        def run(args, want):
            r = subprocess.run([gnv] + args, capture_output=True, text=True, cwd=tmp)
            if r.returncode != want:
                fail(f"gnv {' '.join(args)}: exit {r.returncode}, expected {want}\n{r.stdout[-800:]}{r.stderr[-800:]}")

        run(["sweep"] + grid + ["--out", "whole", "--write-baseline", "baseline.json"], 0)
        for k in range(1, n + 1):
            run(["sweep"] + grid + ["--shard", f"{k}/{n}", "--jobs", "2", "--out", f"shards/shard-{k}"], 0)
        shards = [f"shards/shard-{k}/report.json" for k in range(1, n + 1)]
        run(["merge"] + shards[::-1] + ["--out", "merged"], 0)
        run(["compare", "baseline.json", "merged/report.json", "--out", "merged/compare.md"], 0)
        run(["merge"] + shards[1:] + ["--out", "merged2"], 2)  # a shard missing: the merge step fails
        # A gate against the baseline of another kernel name compares nothing: it must fail.
        with open(os.path.join(tmp, "baseline.json")) as f:
            text = f.read().replace('"welford"', '"welford-old"').replace('welford/', 'welford-old/')
        with open(os.path.join(tmp, "renamed.json"), "w") as f:
            f.write(text)
        run(["compare", "renamed.json", "merged/report.json"], 1)
        print(f"ok   the workflow's sweep --shard k/{n}, merge and compare steps behave as it assumes")
    finally:
        shutil.rmtree(tmp)


def main():
    if sys.argv[1:] == ["--actionlint"]:
        actionlint()
        return
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    env, n = structure()
    simulate(os.path.abspath(sys.argv[1]), env, n)


if __name__ == "__main__":
    main()
