#!/usr/bin/env python3
"""GroupNorm reproducer written by `gnv repro` (gnv: numerical verification of GroupNorm kernels).

Problem: shape=1,1,17 G=1 eps=1e-06 affine=on dtype=f16 layout=nchw
The exact y below is gnv's oracle: computed exactly from these very inputs and rounded once to
f16. The condition-scaled error divides |actual - exact| by u_acc * S_i + ulp/2 + L * eta, the
error a backward-stable GroupNorm may make at element i; above the budget (12.1749 for y) no
stable algorithm gives the result. Needs numpy and the framework the call below imports.
"""
import sys

import numpy as np

# x, gamma, beta (and dy) hold bfloat16 values as float32 when True (numpy has no bfloat16): the
# call below converts them to the framework's bfloat16 and returns its result as float32.
BFLOAT16 = False

# ---- the call under test ------------------------------------------------------------------
# gnv repro snippet: tract (the Sonos ONNX runtime, Python bindings) running a one-node ONNX model,
# GroupNormalization of opset 21 with scale and bias of shape (C), as adapters/tract_runner.py
# builds it (adapters/onnx_groupnorm.py; x as (N, C, *spatial)).
import os
import tempfile
from importlib.metadata import version

import onnx
import tract
from onnx import TensorProto, helper

FRAMEWORK = f"tract {version('tract')}, onnx {onnx.__version__}"


def group_norm(x, groups, gamma, beta, eps, layout):
    et = {np.dtype(np.float64): TensorProto.DOUBLE, np.dtype(np.float32): TensorProto.FLOAT,
          np.dtype(np.float16): TensorProto.FLOAT16}[x.dtype]
    C = x.shape[1]
    if gamma is None:
        gamma, beta = np.ones(C, dtype=x.dtype), np.zeros(C, dtype=x.dtype)
    node = helper.make_node("GroupNormalization", ["x", "scale", "bias"], ["y"], epsilon=float(eps), num_groups=int(groups))
    graph = helper.make_graph([node], "groupnorm",
                              [helper.make_tensor_value_info("x", et, list(x.shape)),
                               helper.make_tensor_value_info("scale", et, [C]),
                               helper.make_tensor_value_info("bias", et, [C])],
                              [helper.make_tensor_value_info("y", et, list(x.shape))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = min(model.ir_version, 10)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.onnx")
        onnx.save(model, path)
        runnable = tract.onnx().load(path).into_model().into_runnable()
        (y,) = runnable.run([np.ascontiguousarray(a) for a in (x, gamma, beta)])
        return y.to_numpy()

# ---- the case, value for value ------------------------------------------------------------
SHAPE = (1, 1, 17,)  # logical (N, C, *spatial)
GROUPS = 1
EPS = float.fromhex("0x1.0c6f7a0b5ed8dp-20")
LAYOUT = "nchw"
DTYPE = np.float16
X = """
0x1p-2 -0x1.8p-2 -0x1p-3 -0x1p-3 0x1p-3 0x1p-3
-0x1p-1 0x1p-3 -0x0p+0 0x1p-1 -0x1p-3 -0x1p+0
0x1p-3 -0x0p+0 -0x1p-2 0x1.8p-2 -0x1p-2
""".split()
GAMMA = """
-0x1.918p-1
""".split()
BETA = """
-0x1.874p-1
""".split()
# ---- y: correctly rounded, exact (hi + lo), the metric's denominator and the ulp per element ----
Y_ROUNDED = """
-0x1.7c8p+0 -0x1.e14p-5 -0x1.428p-1 -0x1.428p-1 -0x1.338p+0 -0x1.338p+0
0x1.d08p-3 -0x1.338p+0 -0x1.d4cp-1 -0x1.074p+1 -0x1.428p-1 0x1.5e8p+0
-0x1.338p+0 -0x1.d4cp-1 -0x1.608p-2 -0x1.c58p+0 -0x1.608p-2
""".split()
Y_HI = """
-0x1.7c81b6f029f5ep+0 -0x1.e15f3ef4ec66p-5 -0x1.4274f182ea6efp-1 -0x1.4274f182ea6efp-1 -0x1.3369f78b430bcp+0 -0x1.3369f78b430bcp+0
0x1.d0662b69fc37ap-3 -0x1.3369f78b430bcp+0 -0x1.d4a4704cb8433p-1 -0x1.07589adcfbe51p+1 -0x1.4274f182ea6efp-1 0x1.5e6bc300db2f8p+0
-0x1.3369f78b430bcp+0 -0x1.d4a4704cb8433p-1 -0x1.608ae57239355p-2 -0x1.c599765510ep+0 -0x1.608ae57239355p-2
""".split()
Y_LO = """
-0x1.ea60013b39dd1p-57 -0x1.724178365f6a8p-59 0x1.1bc17d2346dfp-56 0x1.1bc17d2346dfp-56 0x1.32e594a6acd5bp-55 0x1.32e594a6acd5bp-55
-0x1.a69a0a37aaa7p-57 0x1.32e594a6acd5bp-55 -0x1.1f9cd663d7dd7p-55 -0x1.eac9951ce288ap-54 0x1.1bc17d2346dfp-56 0x1.313f45200a27ap-57
0x1.32e594a6acd5bp-55 -0x1.1f9cd663d7dd7p-55 0x1.daf29c38f5e35p-58 -0x1.140acaa224e22p-54 0x1.daf29c38f5e35p-58
""".split()
Y_DENOM = """
0x1.00476118aa6abp-11 0x1.077226440d0b7p-16 0x1.0065a87114e2bp-12 0x1.0065a87114e2bp-12 0x1.003e711fe920cp-11 0x1.003e711fe920cp-11
0x1.021c83da11bebp-14 0x1.003e711fe920cp-11 0x1.006b024e4fadbp-12 0x1.002ca085167f5p-10 0x1.0065a87114e2bp-12 0x1.0067505e475f9p-11
0x1.003e711fe920cp-11 0x1.006b024e4fadbp-12 0x1.00dccad555b36p-13 0x1.005051116bb4ap-11 0x1.00dccad555b36p-13
""".split()
Y_ULP = """
0x1p-10 0x1p-15 0x1p-11 0x1p-11 0x1p-10 0x1p-10
0x1p-13 0x1p-10 0x1p-11 0x1p-9 0x1p-11 0x1p-10
0x1p-10 0x1p-11 0x1p-12 0x1p-10 0x1p-12
""".split()
OUTPUTS = [("y", Y_ROUNDED, Y_HI, Y_LO, Y_DENOM, Y_ULP, 12.174925682500678)]  # name, rounded, hi, lo, denominator, ulp, budget


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
