#!/usr/bin/env python3
"""Tests of bench/gpu/summary.py, the last step of scripts/gpu-check.sh, which turns the GPU
benchmarks' JSON into the table and the issue's goal verdicts. It runs where no GPU is, so its
arithmetic and verdicts are checked here on hand-made results; the expected figures below were
worked out by hand from the fixture's bytes and times, not taken from the script's output.

    python3 tests/test_gpu_summary.py        (CTest: gpu-summary, label unit)
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUMMARY = os.path.join(ROOT, "bench", "gpu", "summary.py")

BIG = "16x512x64x64"  # f32: 33 554 432 elements, x = 134 217 728 bytes
SD = "2x320x64x64"    # f16: 2 621 440 elements, x = 5 242 880 bytes
MID = "64x128x56x56"  # f32: 25 690 112 elements, x = 102 760 448 bytes


def rec(shape, dtype, layout, d, variant, us, nbytes, finite=True, plan="fused"):
    return dict(impl="gnv", shape=shape, dtype=dtype, layout=layout, dir=d, variant=variant, plan=plan,
                median_us=us, min_us=us, bytes=nbytes, finite=finite)


GNV = dict(device="Fake H100", sms=132, copy_gbps=2000.0, records=[
    rec("1GiB", "-", "-", "copy", "cudaMemcpy D2D", 1073.7, 2.0 * (1 << 30), plan=""),
    # 2 * 134217728 bytes in 150 us = 1789.57 GB/s = 89.5% of 2000: met.
    rec(BIG, "f32", "nchw", "fwd", "gnv", 150.0, 268435456.0),
    rec(BIG, "f32", "nchw", "fwd", "gnv split path", 260.0, 268435456.0, plan="split"),
    # 268435456 bytes in 200 us = 1342.18 GB/s = 67.1%: missed; PyTorch 500 us -> 2.50x: met.
    rec(BIG, "f32", "nhwc", "fwd", "gnv", 200.0, 268435456.0),
    # 3 * 134217728 bytes in 300 us = 1342.18 GB/s = 67.1% of copy: the backward's 70% missed.
    rec(BIG, "f32", "nchw", "bwd", "gnv", 300.0, 402653184.0),
    # Just below and just above the thresholds: 205520896 bytes in 122.5 us = 1677.72 GB/s = 83.9%
    # (missed); 308281344 bytes in 214 us = 1440.57 GB/s = 72.0% (met).
    rec(MID, "f32", "nchw", "fwd", "gnv", 122.5, 205520896.0),
    rec(MID, "f32", "nchw", "bwd", "gnv", 214.0, 308281344.0),
    # The SD case: < 15 us is its only bandwidth-free goal (no 85% goal for it).
    rec(SD, "f16", "nchw", "fwd", "gnv", 14.0, 10485760.0),
    rec(SD, "f16", "nchw", "fwd", "gnv hot (L2)", 6.0, 10485760.0),
    # 16 us: missed; non-finite outputs: a goal of its own, missed; PyTorch 20 us -> 1.25x: missed.
    rec(SD, "f16", "nhwc", "fwd", "gnv", 16.0, 10485760.0, finite=False),
])

TORCH = dict(device="Fake H100", torch="2.x", copy_gbps=1990.0, records=[
    dict(impl="torch", shape=BIG, dtype="f32", layout="nhwc", dir="fwd", variant="F.group_norm", median_us=500.0,
         min_us=490.0, bytes=268435456.0),
    dict(impl="torch", shape=BIG, dtype="f32", layout="nhwc", dir="fwd", variant="F.group_norm hot (L2)",
         median_us=1.0, min_us=1.0, bytes=268435456.0),  # must not be taken for the flushed figure
    dict(impl="torch", shape=SD, dtype="f16", layout="nhwc", dir="fwd", variant="F.group_norm", median_us=20.0,
         min_us=19.0, bytes=10485760.0),
])

STEPS = "build\tPASS\t41\t\nharness\tFAIL\t97\t2 failed, 300 passed\n"


class Summary(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def path(self, name):
        return os.path.join(self.dir.name, name)

    def write(self, name, content):
        with open(self.path(name), "w") as f:
            f.write(content if isinstance(content, str) else json.dumps(content))
        return self.path(name)

    def run_summary(self, *args):
        p = subprocess.run([sys.executable, SUMMARY, *args], capture_output=True, text=True, timeout=60)
        return p.returncode, p.stdout, p.stderr

    def goal_lines(self, out):
        return sorted(l.strip() for l in out.splitlines() if l.startswith("  MET ") or l.startswith("  MISS "))

    def test_goals_and_figures_from_the_results(self):
        rc, out, err = self.run_summary("--gnv", self.write("g.json", GNV), "--torch", self.write("t.json", TORCH),
                                        "--md", self.path("s.md"))
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.goal_lines(out), sorted([
            f"MET  fwd >= 85% of copy BW: {BIG} f32 nchw fwd: 89.5%",
            f"MISS fwd >= 85% of copy BW: {BIG} f32 nhwc fwd: 67.1%",
            f"MET  >= 2x PyTorch channels-last: {BIG} f32 nhwc fwd: 2.50x",
            f"MISS bwd >= 70% of byte floor: {BIG} f32 nchw bwd: 67.1%",
            f"MISS fwd >= 85% of copy BW: {MID} f32 nchw fwd: 83.9%",
            f"MET  bwd >= 70% of byte floor: {MID} f32 nchw bwd: 72.0%",
            f"MET  < 15 us: {SD} f16 nchw fwd: 14.00 us (hot 6.00 us)",
            f"MISS < 15 us: {SD} f16 nhwc fwd: 16.00 us",
            f"MISS >= 2x PyTorch channels-last: {SD} f16 nhwc fwd: 1.25x",
            f"MISS finite outputs: {SD} f16 nhwc fwd: NON-FINITE",
        ]))
        self.assertIn("goals: 4/10 met", out)
        self.assertIn("copy roofline (1 GiB cudaMemcpy D2D, read + write): 2000 GB/s", out)
        # The table row of the contiguous forward: time, GB/s, % of copy, the split path's time, PyTorch absent.
        row = next(l.split() for l in out.splitlines() if l.startswith(BIG) and " nchw " in l and " fwd " in l)
        self.assertEqual(row[:10], [BIG, "f32", "nchw", "fwd", "150.00", "1790", "89.5", "260.00", "-", "-"])
        with open(self.path("s.md")) as f:
            md = f.read()
        self.assertTrue(md.startswith("# gnv CUDA device check"))
        self.assertIn("goals: 4/10 met", md)

    def test_without_pytorch_no_ratio_goal(self):
        rc, out, err = self.run_summary("--gnv", self.write("g.json", GNV), "--torch", self.path("absent.json"))
        self.assertEqual(rc, 0, err)
        self.assertIn("PyTorch: not run", out)
        self.assertNotIn("PyTorch channels-last", out)
        self.assertIn("goals: 3/8 met", out)

    def test_steps_table_is_printed(self):
        rc, out, err = self.run_summary("--gnv", self.path("absent.json"), "--steps", self.write("steps.tsv", STEPS))
        self.assertEqual(rc, 0, err)
        self.assertIn("no gnv benchmark results", out)
        self.assertRegex(out, r"FAIL +harness +97s +2 failed, 300 passed")
        self.assertRegex(out, r"PASS +build +41s")

    def test_malformed_results_are_named_and_the_steps_still_printed(self):
        truncated = json.dumps(GNV)[:300]
        no_field = dict(GNV, records=[{k: v for k, v in GNV["records"][1].items() if k != "bytes"}])
        zero_time = dict(GNV, records=[dict(GNV["records"][1], median_us=0)])
        cases = [("trunc.json", truncated, "not a readable JSON file"),
                 ("list.json", "[]", "not a benchmark result"),
                 ("nofield.json", no_field, "records[0] lacks bytes"),
                 ("zero.json", zero_time, "records[0]: median_us must be a positive number")]
        steps = self.write("steps.tsv", STEPS)
        for name, content, why in cases:
            with self.subTest(name):
                f = self.write(name, content)
                rc, out, err = self.run_summary("--gnv", f, "--steps", steps, "--md", self.path("s.md"))
                self.assertEqual(rc, 1)
                self.assertIn(f"summary: {f}: {why}", err)
                self.assertNotIn("Traceback", err)
                self.assertRegex(out, r"FAIL +harness")
                with open(self.path("s.md")) as fh:
                    self.assertIn("harness", fh.read())
        # A malformed PyTorch file is named too, and gnv's table and goals are still given, without PyTorch.
        rc, out, err = self.run_summary("--gnv", self.write("g.json", GNV), "--torch", self.write("t.json", "{"))
        self.assertEqual(rc, 1)
        self.assertIn("t.json: not a readable JSON file", err)
        self.assertIn("PyTorch: not run", out)
        self.assertIn("goals: 3/8 met", out)


if __name__ == "__main__":
    unittest.main()
