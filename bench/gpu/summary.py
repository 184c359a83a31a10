#!/usr/bin/env python3
"""The benchmark summary of scripts/gpu-check.sh: gnv's kernels (gpu_bench.cu) against the copy
roofline and PyTorch (torch_bench.py), and the issue's goals, as a table (stdout) and Markdown.

    summary.py --gnv bench_gnv.json [--torch bench_torch.json] [--md summary.md] [--steps steps.tsv]

Goals (issue 7, on an H100): forward >= 85% of the measured copy bandwidth (bytes read + written)
on the large shapes in both layouts; >= 2x PyTorch on channels-last; the (2,320,64,64) f16 forward
under 15 us; backward >= 70% of its byte floor (x and dy read, dx written, at copy bandwidth).

A result file that is absent means that benchmark did not run. Exit status 1 when one is there but
malformed (named on stderr; the step table is still printed and written), else 0: a missed goal is
a finding, reported as MISS, not a failure of the summary.
"""
import argparse
import json
import os
import sys

SD_SHAPE = "2x320x64x64"


class BadInput(Exception):
    pass


RECORD_KEYS = ("shape", "dtype", "layout", "dir", "variant", "median_us", "bytes")


def load(path):
    """A benchmark's JSON, None when the file is absent (that benchmark did not run). A file that is
    there but unreadable, truncated (a benchmark killed while writing) or missing a field raises
    BadInput naming the file and what is wrong."""
    if not path or not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            d = json.load(f)
    except (OSError, ValueError) as e:
        raise BadInput(f"{path}: not a readable JSON file: {e}") from None
    if not isinstance(d, dict) or not isinstance(d.get("records"), list) or "copy_gbps" not in d:
        raise BadInput(f"{path}: not a benchmark result (needs an object with 'copy_gbps' and a 'records' list)")
    for i, r in enumerate(d["records"]):
        missing = [k for k in RECORD_KEYS if not isinstance(r, dict) or k not in r]
        if missing:
            raise BadInput(f"{path}: records[{i}] lacks {', '.join(missing)}")
        if not (isinstance(r["median_us"], (int, float)) and r["median_us"] > 0):
            raise BadInput(f"{path}: records[{i}]: median_us must be a positive number, not {r['median_us']!r}")
    return d


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gnv", required=True)
    ap.add_argument("--torch")
    ap.add_argument("--md")
    ap.add_argument("--steps")
    a = ap.parse_args()
    lines = []
    out = lines.append
    rc = 0

    def load_or_say(path):
        nonlocal rc
        try:
            return load(path)
        except BadInput as e:
            print(f"summary: {e}", file=sys.stderr)
            out(f"unusable: {e}")
            rc = 1
            return None

    g = load_or_say(a.gnv)
    t = load_or_say(a.torch)
    if g is None:
        out("no gnv benchmark results (" + str(a.gnv) + ")")
    else:
        copy = g["copy_gbps"]
        out(f"device: {g['device']} ({g['sms']} SMs); copy roofline (1 GiB cudaMemcpy D2D, read + write): {copy:.0f} GB/s"
            + (f"; torch copy_: {t['copy_gbps']:.0f} GB/s, torch {t['torch']}" if t else "; PyTorch: not run"))
        recs = [r for r in g["records"] if r["dir"] in ("fwd", "bwd")]

        def find(src, r, variants):
            for v in variants:
                for q in src:
                    if (q["shape"], q["dtype"], q["layout"], q["dir"], q["variant"]) == (
                            r["shape"], r["dtype"], r["layout"], r["dir"], v):
                        return q
            return None

        trecs = t["records"] if t else []
        rows = []
        goals = []
        for r in recs:
            if r["variant"] != "gnv":
                continue
            us = r["median_us"]
            gbps = r["bytes"] / (us * 1e3)
            pct = 100 * gbps / copy
            split = find(recs, r, ["gnv split path"])
            hot = find(recs, r, ["gnv hot (L2)"])
            tv = ["F.group_norm"] if r["dir"] == "fwd" else ["autograd"]
            tr = find(trecs, r, tv)
            ratio = tr["median_us"] / us if tr else None
            rows.append((r["shape"], r["dtype"], r["layout"], r["dir"], us, gbps, pct,
                         split["median_us"] if split else None, hot["median_us"] if hot else None,
                         tr["median_us"] if tr else None, ratio, r["plan"], r.get("finite", True)))
            label = f"{r['shape']} {r['dtype']} {r['layout']} {r['dir']}"
            if r["dir"] == "fwd" and r["shape"] != SD_SHAPE:
                goals.append((f"fwd >= 85% of copy BW: {label}", pct >= 85, f"{pct:.1f}%"))
            if r["dir"] == "bwd":
                goals.append((f"bwd >= 70% of byte floor: {label}", pct >= 70, f"{pct:.1f}%"))
            if r["dir"] == "fwd" and r["layout"] == "nhwc" and ratio is not None:
                goals.append((f">= 2x PyTorch channels-last: {label}", ratio >= 2, f"{ratio:.2f}x"))
            if r["dir"] == "fwd" and r["shape"] == SD_SHAPE:
                goals.append((f"< 15 us: {label}", us < 15, f"{us:.2f} us (hot {hot['median_us']:.2f} us)"
                              if hot else f"{us:.2f} us"))
            if not r.get("finite", True):
                goals.append((f"finite outputs: {label}", False, "NON-FINITE"))

        def f(v, fmt):
            return "-" if v is None else format(v, fmt)

        hdr = ("shape", "dtype", "layout", "dir", "gnv us", "GB/s", "%copy", "split us", "hot us", "torch us",
               "torch/gnv", "plan")
        table = [hdr] + [(s, d, l, di, f(us, ".2f"), f(gb, ".0f"), f(p, ".1f"), f(sp, ".2f"), f(h, ".2f"),
                          f(tu, ".2f"), f(rt, ".2f"), plan) for (s, d, l, di, us, gb, p, sp, h, tu, rt, plan, _) in rows]
        widths = [max(len(str(row[i])) for row in table) for i in range(len(hdr))]
        out("")
        for i, row in enumerate(table):
            out("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
            if i == 0:
                out("  ".join("-" * w for w in widths))
        out("")
        met = sum(1 for _, ok, _ in goals if ok)
        out(f"goals: {met}/{len(goals)} met")
        for name, ok, val in goals:
            out(f"  {'MET ' if ok else 'MISS'} {name}: {val}")
    if a.steps and os.path.exists(a.steps):
        out("")
        out("steps:")
        with open(a.steps) as fh:
            for line in fh:
                parts = line.rstrip("\n").split("\t")
                if len(parts) >= 3:
                    out(f"  {parts[1]:5} {parts[0]:28} {parts[2]:>6}s  {' '.join(parts[3:])}")
    text = "\n".join(lines)
    print(text)
    if a.md:
        with open(a.md, "w") as fh:
            fh.write("# gnv CUDA device check\n\n```\n" + text + "\n```\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
