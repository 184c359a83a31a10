#!/usr/bin/env python3
"""The oracle's SiLU epilogue against an independent computation (issue 21).

For generated cases in every dtype and both affine modes, `gnv oracle` writes y, dx, dgamma and
dbeta; this script recomputes each from the case's own .npy files with mpmath at 200 decimal
digits from the textbook formulas (mean and variance as exact fractions, rstd = 1/sqrt(var + eps),
y = silu(gamma xhat + beta), dx = rstd/m (m g - sum g - xhat sum g xhat) with g = gamma dy silu'(v))
and rounds once to the dtype (with its subnormals). Every element must agree bit for bit: the
oracle's claim is correct rounding, so one differing element fails the test.

Usage: test_silu_mpmath.py GNV  (exit 0 pass, 1 a mismatch, 77 when mpmath or numpy is missing)
"""
import fractions
import os
import subprocess
import sys
import tempfile

try:
    import mpmath
    import numpy as np
except ImportError as e:  # a skip, said as such
    print(f"SKIP: {e}")
    sys.exit(77)

mpmath.mp.dps = 200
GNV = sys.argv[1]
# (mantissa bits, exponent of the smallest normal) per dtype
FORMATS = {"f64": (53, -1022), "f32": (24, -126), "f16": (11, -14), "bf16": (8, -126)}


def load(path, dtype):
    a = np.load(path)
    if dtype == "bf16":  # stored as '<u2' bit patterns: the top half of an f32
        a = (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float64)


def round_to(z, dtype):
    """z rounded to nearest in dtype (finite, subnormals included), as a Python float."""
    if z == 0:
        return 0.0
    p, emin = FORMATS[dtype]
    _, e = mpmath.frexp(z)            # z = f 2^e, 1/2 <= |f| < 1
    q = max(int(e) - 1, emin) - (p - 1)  # the quantum of z's binade (or of the subnormals)
    return float(mpmath.nint(mpmath.ldexp(z, -q))) * 2.0**q


def silu(v):
    return v / (1 + mpmath.exp(-v))


def silu_grad(v):
    s = 1 / (1 + mpmath.exp(-v))
    return s * (1 + v * (1 - s))


def expected(case):
    meta = __import__("json").load(open(os.path.join(case, "case.json")))
    dt, N, C, G, eps = meta["dtype"], meta["N"], meta["C"], meta["G"], meta["eps"]
    spatial = meta["spatial"]
    S = int(np.prod(spatial)) if spatial else 1
    nhwc = meta["layout"] == "nhwc"
    x = load(os.path.join(case, "x.npy"), dt)
    dy = load(os.path.join(case, "dy.npy"), dt)
    x = np.moveaxis(x, -1, 1) if nhwc else x  # logical (N, C, *spatial)
    dy = np.moveaxis(dy, -1, 1) if nhwc else dy
    x, dy = x.reshape(N, C, S), dy.reshape(N, C, S)
    affine, per_sample = meta["affine"], meta.get("affine_mode") == "per-sample"
    if affine:
        gam = load(os.path.join(case, "gamma.npy"), dt).reshape(N if per_sample else 1, C)
        bet = load(os.path.join(case, "beta.npy"), dt).reshape(N if per_sample else 1, C)
    else:
        gam, bet = np.ones((1, C)), np.zeros((1, C))
    cpg = C // G
    y = np.zeros((N, C, S)); dx = np.zeros((N, C, S))
    dgam = {}; dbet = {}
    for n in range(N):
        pn = n if per_sample else 0
        for g in range(G):
            vals = [(c, s, fractions.Fraction(x[n, c, s])) for c in range(g * cpg, (g + 1) * cpg) for s in range(S)]
            m = len(vals)
            mean = sum(v for _, _, v in vals) / m
            var = sum((v - mean) ** 2 for _, _, v in vals) / m
            D = var + fractions.Fraction(eps)
            rstd = 1 / mpmath.sqrt(mpmath.mpf(D.numerator) / D.denominator)
            mu = mpmath.mpf(mean.numerator) / mean.denominator
            xh = {(c, s): (mpmath.mpf(v.numerator) / v.denominator - mu) * rstd for c, s, v in vals}
            gs = {}
            for c, s, _ in vals:
                v = mpmath.mpf(gam[pn, c]) * xh[c, s] + mpmath.mpf(bet[pn, c])
                y[n, c, s] = round_to(silu(v), dt)
                e = mpmath.mpf(dy[n, c, s]) * silu_grad(v)
                gs[c, s] = mpmath.mpf(gam[pn, c]) * e
                key = (pn if per_sample else 0, c)
                dgam[key] = dgam.get(key, 0) + e * xh[c, s]
                dbet[key] = dbet.get(key, 0) + e
            sg = sum(gs.values())
            sgx = sum(gs[k] * xh[k] for k in gs)
            for c, s, _ in vals:
                dx[n, c, s] = round_to(rstd / m * (m * gs[c, s] - sg - xh[c, s] * sgx), dt)
    def phys(a):
        a = a.reshape([N, C] + spatial)
        return np.moveaxis(a, 1, -1) if nhwc else a
    out = {"y": phys(y), "dx": phys(dx)}
    if affine:
        rows = N if per_sample else 1
        out["dgamma"] = np.array([[round_to(dgam[r, c], dt) for c in range(C)] for r in range(rows)]).reshape(
            (N, C) if per_sample else (C,))
        out["dbeta"] = np.array([[round_to(dbet[r, c], dt) for c in range(C)] for r in range(rows)]).reshape(
            (N, C) if per_sample else (C,))
    return dt, out


def main():
    failures = 0
    checked = 0
    cases = [(dt, layout, affine, stress)
             for dt in ("f64", "f32", "f16", "bf16")
             for layout, affine, stress in (("nchw", ["--affine"], "normal"), ("nhwc", ["--affine", "per-sample"], "offset:1e3"),
                                            ("nchw", [], "tiny-var"), ("nhwc", ["--affine"], "huge"))]
    with tempfile.TemporaryDirectory() as tmp:
        for i, (dt, layout, affine, stress) in enumerate(cases):
            case = os.path.join(tmp, f"case{i}")
            gen = [GNV, "check", "--impl", "naive", "--dtype", dt, "--layout", layout, "--shape", "2,4,3,2",
                   "--groups", "2", "--epilogue", "silu", "--backward", "--stress", stress, "--seed", str(i),
                   "--save-case", case] + affine
            subprocess.run(gen, check=False, capture_output=True)
            subprocess.run([GNV, "oracle", "--case", case, "--out", case + "-oracle"], check=True, capture_output=True)
            dt_, want = expected(case)
            for name, w in want.items():
                got = load(os.path.join(case + "-oracle", name + ".npy"), dt)
                bad = np.flatnonzero(~((got == w) | (np.isnan(got) & np.isnan(w))))
                checked += w.size
                if bad.size:
                    failures += 1
                    k = bad[0]
                    print(f"FAIL {dt} {layout} {' '.join(affine) or 'no-affine'} {stress} {name}: {bad.size} of {w.size} "
                          f"differ; first at flat {k}: oracle {got.flat[k]!r}, mpmath {w.flat[k]!r}")
    print(f"{checked} values over {len(cases)} cases compared with mpmath at 200 digits: {failures} output(s) differ")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
