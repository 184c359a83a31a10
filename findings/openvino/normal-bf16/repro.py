#!/usr/bin/env python3
"""GroupNorm reproducer written by `gnv repro` (gnv: numerical verification of GroupNorm kernels).

Problem: shape=1,1,2,3 G=1 eps=1e-05 affine=on dtype=bf16 layout=nchw
The exact y below is gnv's oracle: computed exactly from these very inputs and rounded once to
bf16. The condition-scaled error divides |actual - exact| by u_acc * S_i + ulp/2 + L * eta, the
error a backward-stable GroupNorm may make at element i; above the budget (9.16993 for y) no
stable algorithm gives the result. Needs numpy and the framework the call below imports.
"""
import sys

import numpy as np

# x, gamma, beta (and dy) hold bfloat16 values as float32 when True (numpy has no bfloat16): the
# call below converts them to the framework's bfloat16 and returns its result as float32.
BFLOAT16 = True

# ---- the call under test ------------------------------------------------------------------
# gnv repro snippet: OpenVINO's GroupNormalization (opset12) on the CPU plugin, as
# adapters/openvino_runner.py runs it: one inference thread, the plugin's default inference
# precision (which may be lower than the model's dtype), x as (N, C, *spatial). With BFLOAT16 the
# float32-held values go in as bf16 (their top halves, exactly) and y comes back as float32.
import openvino as ov
import openvino.opset12 as ops

CORE = ov.Core()
FRAMEWORK = f"openvino {ov.__version__} (CPU plugin, precision hint {CORE.get_property('CPU', 'INFERENCE_PRECISION_HINT')})"


def _tensor(a):
    a = np.ascontiguousarray(a)
    if not BFLOAT16:
        return ov.Tensor(a)
    t = ov.Tensor(ov.Type.bf16, ov.Shape(list(a.shape)))
    np.copyto(t.data.view(np.uint16), (a.view(np.uint32) >> 16).astype(np.uint16))
    return t


def group_norm(x, groups, gamma, beta, eps, layout):
    et = ov.Type.bf16 if BFLOAT16 else {np.dtype(np.float64): ov.Type.f64, np.dtype(np.float32): ov.Type.f32,
                                        np.dtype(np.float16): ov.Type.f16}[x.dtype]
    C = x.shape[1]
    if gamma is None:
        gamma, beta = np.ones(C, dtype=x.dtype), np.zeros(C, dtype=x.dtype)
    px = ops.parameter(list(x.shape), et, name="x")
    ps = ops.parameter([C], et, name="scale")
    pb = ops.parameter([C], et, name="bias")
    model = ov.Model([ops.group_normalization(px, ps, pb, int(groups), float(eps))], [px, ps, pb], "groupnorm")
    compiled = CORE.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": 1})
    request = compiled.create_infer_request()
    request.infer([_tensor(a) for a in (x, gamma, beta)])
    y = np.array(request.get_output_tensor(0).data, copy=True)
    if BFLOAT16:
        y = (y.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    return y.reshape(x.shape)

# ---- the case, value for value ------------------------------------------------------------
SHAPE = (1, 1, 2, 3,)  # logical (N, C, *spatial)
GROUPS = 1
EPS = float.fromhex("0x1.4f8b588e368f1p-17")
LAYOUT = "nchw"
DTYPE = np.float32
X = """
-0x1p-1 -0x1p-1 -0x0p+0 -0x1p-1 0x1p-1 0x1p-1
""".split()
GAMMA = """
0x1.d8p-2
""".split()
BETA = """
-0x1.26p-1
""".split()
# ---- y: correctly rounded, exact (hi + lo), the metric's denominator and the ulp per element ----
Y_ROUNDED = """
-0x1p+0 -0x1p+0 -0x1.f4p-2 -0x1p+0 0x1.98p-6 0x1.98p-6
""".split()
Y_HI = """
-0x1.008eba4100a4cp+0 -0x1.008eba4100a4cp+0 -0x1.f45a9e3265e29p-2 -0x1.008eba4100a4cp+0 0x1.985ac9f36cdd8p-6 0x1.985ac9f36cdd8p-6
""".split()
Y_LO = """
-0x1.03e758176e3ddp-55 -0x1.03e758176e3ddp-55 -0x1.fe704329d3e74p-56 -0x1.03e758176e3ddp-55 0x1.5dc53b6695a4p-61 0x1.5dc53b6695a4p-61
""".split()
Y_DENOM = """
0x1.0003148efa2b9p-8 0x1.0003148efa2b9p-8 0x1.0008bdc1af70ap-10 0x1.0003148efa2b9p-8 0x1.0092cd3a37f7bp-14 0x1.0092cd3a37f7bp-14
""".split()
Y_ULP = """
0x1p-7 0x1p-7 0x1p-9 0x1p-7 0x1p-13 0x1p-13
""".split()
OUTPUTS = [("y", Y_ROUNDED, Y_HI, Y_LO, Y_DENOM, Y_ULP, 9.1699250014423122)]  # name, rounded, hi, lo, denominator, ulp, budget


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
    gamma = arr(GAMMA, (1,)) if True else None
    beta = arr(BETA, (1,)) if True else None
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
