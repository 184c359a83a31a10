#!/usr/bin/env python3
"""gnv.jax.wrap under build/adapters-venv (JAX is not in build/py-venv; that venv has no pytest,
so this is a plain script: exit 0 pass, 1 fail, 77 skipped). CTest `python-jax`.

A two-pass jax.numpy GroupNorm passes a small grid forward and backward (jax.vjp) in f32 and bf16;
a one-pass (E[x^2] - E[x]^2) one fails at offset 1e4 in f32."""
import os
import sys
import tempfile

try:
    import jax
    import jax.numpy as jnp
except ImportError:
    print("SKIPPED: jax is not importable here (scripts/bootstrap.sh --adapters installs it)")
    sys.exit(77)

import gnv
import gnv.jax

jax.config.update("jax_enable_x64", True)


def group_norm(x, gamma, beta, groups, eps, onepass=False):
    acc = jnp.float64 if x.dtype == jnp.float64 else jnp.float32
    g = x.reshape(x.shape[0], groups, -1).astype(acc)
    mean = g.mean(-1, keepdims=True)
    var = (g * g).mean(-1, keepdims=True) - mean * mean if onepass else ((g - mean) ** 2).mean(-1, keepdims=True)
    y = ((g - mean) / jnp.sqrt(var + eps)).reshape(x.shape)
    if gamma is not None:
        c = (1, -1) + (1,) * (x.ndim - 2)
        y = y * gamma.astype(acc).reshape(c) + beta.astype(acc).reshape(c)
    return y.astype(x.dtype)


def onepass(x, gamma, beta, groups, eps):
    return group_norm(x, gamma, beta, groups, eps, onepass=True)


def main():
    out = tempfile.mkdtemp()
    grid = dict(shapes=["2,8,3,5"], groups=[4], affine=True, stresses=["normal", "offset:10000"], html=False)
    good = gnv.validate(gnv.jax.wrap(group_norm), dtypes=["f32", "bf16"], out=os.path.join(out, "good"), **grid)
    bad = gnv.validate(gnv.jax.wrap(onepass), dtypes=["f32"], out=os.path.join(out, "bad"), **grid)
    problems = []
    if not good.passed or len(good.cells) != 8 or not all(c["backward"] for c in good.cells):
        problems.append(f"two-pass: {[(c['id'] if 'id' in c else c['stress'], c['verdict']) for c in good.cells]}")
    verdicts = {(c["problem"]["layout"], c["stress"]): c["verdict"] for c in bad.cells}
    if verdicts != {("nchw", "normal"): "PASS", ("nhwc", "normal"): "PASS", ("nchw", "offset:10000"): "FAIL",
                    ("nhwc", "offset:10000"): "FAIL"}:
        problems.append(f"one-pass: {verdicts}")
    for p in problems:
        print("FAIL:", p)
    if not problems:
        print("ok: gnv.jax.wrap: two-pass passes (forward and jax.vjp backward), one-pass fails at offset 1e4")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
