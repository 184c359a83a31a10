#!/usr/bin/env python3
"""GroupNorm reproducer written by `gnv repro` (gnv: numerical verification of GroupNorm kernels).

Problem: shape=1,2 G=1 eps=1e-05 affine=off dtype=f16 layout=nchw
The exact y and dx below are gnv's oracle: computed exactly from these very inputs and rounded once to
f16. The condition-scaled error divides |actual - exact| by u_acc * S_i + ulp/2 + L * eta, the
error a backward-stable GroupNorm may make at element i; above the budget (6 for y, 6 for dx) no
stable algorithm gives the result. dx is the gradient of sum(y * DY) with respect to x, from group_norm_backward. Needs numpy and the framework the call below imports.
"""
import sys

import numpy as np

# x, gamma, beta (and dy) hold bfloat16 values as float32 when True (numpy has no bfloat16): the
# call below converts them to the framework's bfloat16 and returns its result as float32.
BFLOAT16 = False

# ---- the call under test ------------------------------------------------------------------
# gnv repro snippet: PyTorch's F.group_norm on the CPU. For an nhwc case x is held channels-last
# as adapters/torch_runner.py holds it, with the canonical channels-last strides of
# torch.empty(..., memory_format=torch.channels_last): PyTorch chooses its kernel by the strides,
# and where C = 1 or a spatial extent is 1 an NCHW tensor is "channels-last contiguous" too
# without them (x.contiguous(memory_format=...) then keeps the NCHW strides and the NCHW kernel).
# With BFLOAT16 the float32-held values become torch.bfloat16 (exactly) and y comes back as float32.
import torch
import torch.nn.functional as F

FRAMEWORK = f"torch {torch.__version__}"


def _tensor(a):
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t.to(torch.bfloat16) if BFLOAT16 else t


def group_norm(x, groups, gamma, beta, eps, layout):
    t = _tensor(x)
    if layout == "nhwc" and t.dim() in (4, 5):
        fmt = torch.channels_last if t.dim() == 4 else torch.channels_last_3d
        t = torch.empty(t.shape, dtype=t.dtype, memory_format=fmt).copy_(t)
    w = None if gamma is None else _tensor(gamma)
    b = None if beta is None else _tensor(beta)
    return F.group_norm(t, groups, w, b, eps).float().numpy() if BFLOAT16 else F.group_norm(t, groups, w, b, eps).numpy()


def group_norm_backward(x, dy, groups, gamma, beta, eps, layout):
    t = _tensor(x)
    if layout == "nhwc" and t.dim() in (4, 5):
        fmt = torch.channels_last if t.dim() == 4 else torch.channels_last_3d
        t = torch.empty(t.shape, dtype=t.dtype, memory_format=fmt).copy_(t)
    t.requires_grad_(True)
    w = None if gamma is None else _tensor(gamma)
    b = None if beta is None else _tensor(beta)
    F.group_norm(t, groups, w, b, eps).backward(_tensor(dy))
    return t.grad.float().numpy() if BFLOAT16 else t.grad.numpy()

# ---- the case, value for value ------------------------------------------------------------
SHAPE = (1, 2,)  # logical (N, C, *spatial)
GROUPS = 1
EPS = float.fromhex("0x1.4f8b588e368f1p-17")
LAYOUT = "nchw"
DTYPE = np.float16
X = """
-0x1p-1 -0x0p+0
""".split()
DY = """
-0x1p+0 -0x0p+0
""".split()
# ---- y: correctly rounded, exact (hi + lo), the metric's denominator and the ulp per element ----
Y_ROUNDED = """
-0x1p+0 0x1p+0
""".split()
Y_HI = """
-0x1.fff583f7af5d6p-1 0x1.fff583f7af5d6p-1
""".split()
Y_LO = """
0x1.1f7cf58e6c1f5p-58 -0x1.1f7cf58e6c1f5p-58
""".split()
Y_DENOM = """
0x1.006ffd0d2118cp-12 0x1.006ffd0d2118cp-12
""".split()
Y_ULP = """
0x1p-10 0x1p-10
""".split()
# ---- dx: correctly rounded, exact (hi + lo), the metric's denominator and the ulp per element ----
DX_ROUNDED = """
-0x1.4f8p-12 0x1.4f8p-12
""".split()
DX_HI = """
-0x1.4f76bbf47d8e8p-12 0x1.4f76bbf47d8e8p-12
""".split()
DX_LO = """
-0x1.7a6e403ffcfa6p-68 0x1.7a6e403ffcfa6p-68
""".split()
DX_DENOM = """
0x1.2ff4dc57cc80cp-19 0x1.2ff4dc57cc80cp-19
""".split()
DX_ULP = """
0x1p-22 0x1p-22
""".split()
OUTPUTS = [("y", Y_ROUNDED, Y_HI, Y_LO, Y_DENOM, Y_ULP, 6),
           ("dx", DX_ROUNDED, DX_HI, DX_LO, DX_DENOM, DX_ULP, 6)]  # name, rounded, hi, lo, denominator, ulp, budget


def arr(values, shape):
    return np.array([float.fromhex(v) for v in values], dtype=np.float64).astype(DTYPE).reshape(shape)


def floats(values):
    return np.array([float.fromhex(v) for v in values])


def judge(name, got, rounded, hi, lo, denom, ulp, budget):
    """Prints the worst elements of one output; returns True when it is within its budget."""
    got = np.asarray(got, dtype=np.float64).reshape(-1)
    judged = ~np.isnan(denom)  # gnv leaves undefined and ill-posed elements unjudged
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs((got - hi) - lo)  # from the exact value, not its rounding
        cond = np.where(judged, np.where(err == 0, 0.0, err / denom), 0.0)
        off = np.abs(got - rounded)
        ulps = np.where(off == 0, 0.0, off / ulp)
    cond = np.where(judged & np.isnan(got), np.inf, cond)
    order = np.argsort(-cond)[:5]
    print(f"{name + ': element (n, c, s)':>24} {'framework':>24} {'exact, rounded':>24} {'ulps':>10} {'cond. error':>12}")
    per_sample = int(np.prod(SHAPE[1:]))
    spatial = int(np.prod(SHAPE[2:])) if len(SHAPE) > 2 else 1
    for i in order:
        n, rest = divmod(int(i), per_sample)
        c, s = divmod(rest, spatial)
        print(f"{str((n, c, s)):>24} {got[i]:>24.17g} {rounded[i]:>24.17g} {ulps[i]:>10.3g} {cond[i]:>12.4g}")
    worst = float(cond.max()) if cond.size else 0.0
    verdict = "PASS" if worst <= budget else "FAIL"
    print(f"{name}: max condition-scaled error {worst:.4g} (budget {budget:.4g}): {verdict}")
    return verdict == "PASS"


def main():
    x = arr(X, SHAPE)
    gamma = arr(GAMMA, None) if False else None
    beta = arr(BETA, None) if False else None
    got = {"y": group_norm(x, GROUPS, gamma, beta, EPS, LAYOUT)}
    if len(OUTPUTS) > 1:
        got["dx"] = group_norm_backward(x, arr(DY, SHAPE), GROUPS, gamma, beta, EPS, LAYOUT)
    print(f"framework: {globals().get('FRAMEWORK', '?')}; numpy {np.__version__}")
    dtype = "bfloat16, held as float32" if BFLOAT16 else np.dtype(DTYPE).name
    print(f"case: shape {SHAPE}, groups {GROUPS}, eps {EPS!r}, dtype {dtype}, layout {LAYOUT}")
    ok = [judge(name, got[name], *(floats(v) for v in values), budget) for name, *values, budget in OUTPUTS]
    verdict = "PASS" if all(ok) else "FAIL"
    print(f"verdict: {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
