"""A Python kernel as a gnv external runner (docs/third-party.md "Validating third-party kernels"):

    gnv validate --runner 'python3 -m gnv.runner MODULE:NAME' --no-stats ...

MODULE:NAME is a gnv.Kernel or a forward function (importable: the module on sys.path, or a file
path ending in .py). Every case directory of the batch is read with gnv.load_case (the C++ reader),
the kernel runs on it as gnv.check runs it, and its outputs are written in the case's physical
order; gnv.Unsupported writes unsupported.txt (SKIPPED), any other exception error.txt. The runner
protocol itself is for kernels in other languages; from Python, gnv.validate is the direct route.
"""
import argparse
import importlib
import importlib.util
import os
import sys

import numpy as np

import gnv
from gnv import _arrays


def load_kernel(spec):
    """MODULE:NAME or FILE.py:NAME as a gnv.Kernel."""
    mod, sep, attr = spec.rpartition(":")
    if not sep or not mod or not attr:
        raise ValueError(f"{spec!r}: expected MODULE:NAME or FILE.py:NAME")
    if mod.endswith(".py"):
        s = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(mod))[0], mod)
        m = importlib.util.module_from_spec(s)
        s.loader.exec_module(m)
    else:
        m = importlib.import_module(mod)
    k = getattr(m, attr)
    return k if isinstance(k, gnv.Kernel) else gnv.Kernel(k)


def _save(path, name, array, case):
    p = case._problem
    raw = gnv._output_bytes(name, array, p)
    stat = name in ("mean", "rstd")
    dtype = p.acc_dtype if stat else p.dtype
    shape = gnv._shape_of_tensor(p, name)
    phys = raw.view(_arrays.numpy_dtype(dtype)).reshape(shape)
    np.save(path, phys.view(np.uint16) if dtype == "bf16" else phys)  # bf16 as '<u2' bits


def run_case(kernel, d):
    """One case directory: the kernel's outputs written into it (physical order, bf16 as bits)."""
    case = gnv.load_case(d)
    if case.has_backward and kernel.backward is None:
        raise gnv.Unsupported(f"{kernel.name} has no backward: run gnv with --no-backward")
    outs = kernel.run_forward(case.x, case.gamma, case.beta, case.groups, case.eps, case.epilogue)
    if not kernel.statistics:
        outs = {"y": outs["y"]}
    if case.has_backward:  # the backward gets the exact statistics, as gnv.check gives them
        o = case.oracle(backward=False)
        outs.update(kernel.run_backward(case.dy, case.x, o["mean"], o["rstd"], case.gamma, case.beta, case.groups,
                                        case.eps, case.epilogue))
    for name, array in outs.items():
        _save(os.path.join(d, name + ".npy"), name, array, case)


def _one_line(e):
    """The exception's text on one line: its non-empty lines joined with " | " (a framework's
    first line is often only where it was raised, the cause comes after)."""
    return " | ".join(line.strip() for line in str(e).splitlines() if line.strip())


def serve(kernel, batch):
    """Runs a gnv.Kernel on every case directory of a batch, in name order: what an external runner
    written in Python does (adapters/*_runner.py). gnv.Unsupported writes the case's
    unsupported.txt (SKIPPED); any other exception its error.txt, and the batch goes on."""
    for name in sorted(os.listdir(batch)):
        d = os.path.join(batch, name)
        if not os.path.isdir(d):
            continue
        try:
            run_case(kernel, d)
        except gnv.Unsupported as e:
            with open(os.path.join(d, "unsupported.txt"), "w") as f:
                f.write(_one_line(e) + "\n")
        except Exception as e:  # noqa: BLE001 - one case's failure is reported for that case
            with open(os.path.join(d, "error.txt"), "w") as f:
                f.write(f"{type(e).__name__}: {_one_line(e)}\n")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m gnv.runner", description=__doc__.split("\n\n")[0])
    ap.add_argument("kernel", help="MODULE:NAME or FILE.py:NAME (a gnv.Kernel or a forward function)")
    ap.add_argument("batch", help="the batch directory gnv passes")
    a = ap.parse_args(argv)
    serve(load_kernel(a.kernel), a.batch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
