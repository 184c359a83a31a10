#!/usr/bin/env python3
"""GroupNorm reproducer written by `gnv repro` (gnv: numerical verification of GroupNorm kernels).

Problem: shape=1,1,1,2 G=1 eps=1e-05 affine=off dtype=f32 layout=nchw
The exact y below is gnv's oracle: computed exactly from these very inputs and rounded once to
f32. The condition-scaled error divides |actual - exact| by u_acc * S_i + ulp/2 + L * eta, the
error a backward-stable GroupNorm may make at element i; above the budget (6 for y) no
stable algorithm gives the result. Needs numpy and the framework the call below imports.
"""
import sys

import numpy as np

# x, gamma, beta (and dy) hold bfloat16 values as float32 when True (numpy has no bfloat16): the
# call below converts them to the framework's bfloat16 and returns its result as float32.
BFLOAT16 = False

# ---- the call under test ------------------------------------------------------------------
# gnv repro snippet: Tencent's ncnn, a one-layer network `GroupNorm` (0=groups 1=channels 2=eps
# 3=affine) on the CPU, one thread, ncnn's default options, as adapters/ncnn_runner.py runs it:
# each sample as a (C, 1, S) float32 Mat (cloned from a copy that stays alive until the output is
# copied out), gamma then beta as the layer's raw float32 model data.
import ncnn

FRAMEWORK = f"ncnn {ncnn.__version__} (CPU)"


def group_norm(x, groups, gamma, beta, eps, layout):
    N, C = x.shape[:2]
    S = int(np.prod(x.shape[2:])) if x.ndim > 2 else 1
    net = ncnn.Net()
    net.opt.num_threads = 1
    affine = gamma is not None
    net.load_param_mem("7767517\n2 2\nInput data 0 1 data\n"
                       f"GroupNorm gn 1 1 data out 0={int(groups)} 1={int(C)} 2={float(eps):.17e} 3={int(affine)}\n")
    if affine:
        net.load_model_mem(np.concatenate([np.asarray(gamma, np.float32), np.asarray(beta, np.float32)]).tobytes())
    else:
        net.load_model(ncnn.DataReaderFromEmpty())
    y = np.empty((N, C, S), np.float32)
    for n in range(N):
        xa = np.array(x[n].reshape(C, 1, S), dtype=np.float32, order="C", copy=True)
        mat = ncnn.Mat(xa).clone()
        with net.create_extractor() as ex:
            ex.input("data", mat)
            _, out = ex.extract("out")
            y[n] = np.array(out, copy=True).reshape(C, S)
    return y.reshape(x.shape)

# ---- the case, value for value ------------------------------------------------------------
SHAPE = (1, 1, 1, 2,)  # logical (N, C, *spatial)
GROUPS = 1
EPS = float.fromhex("0x1.4f8b588e368f1p-17")
LAYOUT = "nchw"
DTYPE = np.float32
X = """
-0x0p+0 -0x1p+72
""".split()
# ---- y: correctly rounded, exact (hi + lo), the metric's denominator and the ulp per element ----
Y_ROUNDED = """
0x1p+0 -0x1p+0
""".split()
Y_HI = """
0x1p+0 -0x1p+0
""".split()
Y_LO = """
-0x1.4f8b588ep-160 0x1.4f8b588ep-160
""".split()
Y_DENOM = """
0x1p-21 0x1p-21
""".split()
Y_ULP = """
0x1p-23 0x1p-23
""".split()
OUTPUTS = [("y", Y_ROUNDED, Y_HI, Y_LO, Y_DENOM, Y_ULP, 6)]  # name, rounded, hi, lo, denominator, ulp, budget


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
