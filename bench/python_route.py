#!/usr/bin/env python3
"""Per-case cost of the Python route against the command line (docs/python.md "From Python"): one grid,
one numpy kernel (python/tests/kernels.py, two-pass in long double, forward and backward), three
routes, measured in one run:
  cli-cpp     gnv sweep --impl naive          (a C++ kernel: the floor, oracle and checks only)
  python      gnv.validate(kernel)            (the kernel called in-process through gnv._core)
  runner      gnv validate --runner 'python3 -m gnv.runner kernels.py:correct'  (the file protocol)
Run with the Python that has the package installed: build/py-venv/bin/python bench/python_route.py
[--preset smoke] [--dtype f32] [--jobs 1]. Prints seconds per case and the ratios to cli-cpp."""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import gnv

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "python", "tests"))
import kernels  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="smoke")
    ap.add_argument("--dtype", default="f32")
    ap.add_argument("--jobs", default="1")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    gnv_bin = shutil.which("gnv", path=os.path.dirname(sys.executable)) or "gnv"
    grid = ["--preset", a.preset, "--dtype", a.dtype, "--jobs", a.jobs, "--no-html", "--save-cases", "none"]
    n = len(gnv.case_specs(preset=a.preset, dtypes=[a.dtype]))
    tmp = tempfile.mkdtemp()
    runner = f"{sys.executable} -m gnv.runner {os.path.join(here, '..', 'python', 'tests', 'kernels.py')}:correct"
    routes = {
        "cli-cpp": lambda: subprocess.run([gnv_bin, "sweep", "--impl", "naive", "--out", f"{tmp}/c", *grid],
                                          check=False, capture_output=True),
        "python": lambda: gnv.validate(kernels.correct, preset=a.preset, dtypes=[a.dtype], jobs=int(a.jobs),
                                       html=False, save_cases="none", out=f"{tmp}/p"),
        "runner": lambda: subprocess.run([gnv_bin, "validate", "--runner", runner, "--no-stats", "--out", f"{tmp}/r",
                                          *grid], check=False, capture_output=True),
    }
    best = {}
    for _ in range(a.repeat):
        for name, run in routes.items():
            t0 = time.perf_counter()
            with open(os.devnull, "w") as devnull:
                saved = os.dup(1)
                os.dup2(devnull.fileno(), 1)
                try:
                    run()
                finally:
                    os.dup2(saved, 1)
                    os.close(saved)
            best[name] = min(best.get(name, 1e9), time.perf_counter() - t0)
    print(f"grid {a.preset} dtype {a.dtype}: {n} cases, --jobs {a.jobs}, best of {a.repeat}")
    for name, t in best.items():
        print(f"  {name:8s} {t:7.2f} s  {1e3 * t / n:7.2f} ms/case  {t / best['cli-cpp']:5.2f}x cli-cpp")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
