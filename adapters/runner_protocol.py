"""What every gnv external runner in this folder shares (README "External runners: the protocol"):
the walk over a batch's case directories and the .npy reading of gnv's dtypes. Standard library
and numpy only, so both Debian's python3 (torch_runner.py) and build/adapters-venv (ort_runner.py,
jax_runner.py) import it; a runner run as `python adapters/X_runner.py` finds it next to itself.
"""
import os

import numpy as np


class Unsupported(Exception):
    """Raised by run_case for a case the kernel does not support (a shape, dtype, layout or pass it
    declines): gnv records the cell as SKIPPED, with this message as the reason, not as an ERROR."""


def _first_line(e):
    text = str(e).strip()
    return text.splitlines()[0] if text else ""


def run_batch(batch, run_case):
    """Calls run_case(case_dir) for every case directory of the batch, in name order. Unsupported
    is the case's decline (unsupported.txt); any other exception is that case's error, not the
    batch's: its type and first line go to the case's error.txt."""
    for name in sorted(os.listdir(batch)):
        d = os.path.join(batch, name)
        if not os.path.isdir(d):
            continue
        try:
            run_case(d)
        except Unsupported as e:
            with open(os.path.join(d, "unsupported.txt"), "w") as f:
                f.write(_first_line(e) + "\n")
        except Exception as e:  # noqa: BLE001 - any failure of one case is reported for it
            with open(os.path.join(d, "error.txt"), "w") as f:
                f.write(f"{type(e).__name__}: {_first_line(e)}\n")


def load_numpy(path, dtype):
    """A numpy array of gnv's .npy file; bf16 (stored as '<u2' bit patterns) as ml_dtypes.bfloat16,
    which ONNX Runtime's and JAX's Python APIs take."""
    a = np.load(path)
    if dtype == "bf16":
        import ml_dtypes
        return a.astype(np.uint16).view(ml_dtypes.bfloat16)
    return np.ascontiguousarray(a)
