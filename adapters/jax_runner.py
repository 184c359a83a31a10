#!/usr/bin/env python3
"""gnv external runner for Flax's GroupNorm (flax.linen.GroupNorm on JAX), forward and backward.

  gnv validate --runner 'build/adapters-venv/bin/python adapters/jax_runner.py [--variance two-pass]' \\
      --runner-name flax --no-stats ...

The module is flax.linen.GroupNorm(num_groups=G, epsilon=eps, use_scale=affine, use_bias=affine,
param_dtype=<case dtype>) with every other attribute at its default (flax 0.12: dtype=None,
force_float32_reductions=True, use_fast_variance=True, reduction_axes=None). Its parameters
scale and bias are the case's gamma and beta, passed in the case's dtype.

--variance selects the module's use_fast_variance attribute:
  fast      (default, flax's default) use_fast_variance=True: var = max(0, E[x^2] - E[x]^2)
  two-pass  use_fast_variance=False: var = E[(x - E[x])^2]
With flax's default force_float32_reductions=True the statistics of f16/bf16 inputs are computed in
float32 (f64 inputs stay f64).

Layout: flax normalizes channels-last input (features on the last axis), which is gnv's nhwc
storage as it is; nchw cases are transposed to (N, *S, C) with numpy before the call and the
results back after it (a copy, no rounding).

Backward: jax.vjp of the applied module with respect to x, scale and bias, with dy as the
cotangent: dx, dgamma, dbeta. mean and rstd are not outputs of the module (they are internal to
it): the runner writes no mean.npy / rstd.npy; run gnv with --no-stats.

dtypes: f32, f16, bf16 (ml_dtypes.bfloat16; gnv stores it as '<u2' bit patterns) and f64
(the runner sets jax_enable_x64 so that f64 arrays stay f64).
--device cpu (default) or gpu; --no-jit runs the module eagerly instead of under jax.jit.
"""
import argparse
import json
import os
import sys

# Before jax is imported: 64-bit types on (f64 cases), and the platform of --device.
os.environ.setdefault("JAX_ENABLE_X64", "1")


def parse():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variance", choices=["fast", "two-pass"], default="fast")
    ap.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--jit", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("batch")
    return ap.parse_args()


A = parse()
os.environ.setdefault("JAX_PLATFORMS", A.device if A.device == "cpu" else "cuda,cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_dtypes  # noqa: E402
import numpy as np  # noqa: E402
import flax  # noqa: E402
import flax.linen as nn  # noqa: E402
from runner_protocol import load_numpy as load, run_batch  # noqa: E402

jax.config.update("jax_enable_x64", True)
DT = {"f64": jnp.float64, "f32": jnp.float32, "f16": jnp.float16, "bf16": jnp.bfloat16}


def save(path, a, dtype):
    a = np.asarray(a)
    if dtype == "bf16":
        a = a.astype(ml_dtypes.bfloat16).view(np.uint16)
    else:
        a = a.astype(np.dtype(DT[dtype]))
    np.save(path, np.ascontiguousarray(a))


def to_channels_last(x, layout):  # gnv physical -> flax's (N, *S, C)
    return x if layout == "nhwc" else np.moveaxis(x, 1, -1)


def from_channels_last(y, layout):
    return y if layout == "nhwc" else np.moveaxis(y, -1, 1)


def run_case(d, device):
    p = json.load(open(os.path.join(d, "case.json")))
    dt, lay, affine = p["dtype"], p["layout"], p["affine"]
    mod = nn.GroupNorm(num_groups=p["G"], epsilon=p["eps"], use_scale=affine, use_bias=affine,
                       param_dtype=DT[dt], use_fast_variance=(A.variance == "fast"))
    x = jax.device_put(jnp.asarray(np.ascontiguousarray(to_channels_last(load(os.path.join(d, "x.npy"), dt), lay))),
                       device)
    params = {}
    if affine:
        params = {"scale": jax.device_put(jnp.asarray(load(os.path.join(d, "gamma.npy"), dt)), device),
                  "bias": jax.device_put(jnp.asarray(load(os.path.join(d, "beta.npy"), dt)), device)}

    def f(x, params):
        return mod.apply({"params": params}, x)

    backward = os.path.exists(os.path.join(d, "dy.npy"))
    if not backward:
        y = (jax.jit(f) if A.jit else f)(x, params)
    else:
        dy = jax.device_put(jnp.asarray(np.ascontiguousarray(to_channels_last(load(os.path.join(d, "dy.npy"), dt), lay))),
                            device)

        def fb(x, params, dy):
            y, vjp = jax.vjp(f, x, params)
            return (y,) + vjp(dy)

        y, dx, dparams = (jax.jit(fb) if A.jit else fb)(x, params, dy)
    if y.dtype != DT[dt]:
        raise TypeError(f"flax returned y as {y.dtype} for a {dt} case")
    save(os.path.join(d, "y.npy"), from_channels_last(np.asarray(y), lay), dt)
    if backward:
        save(os.path.join(d, "dx.npy"), from_channels_last(np.asarray(dx), lay), dt)
        if affine:
            save(os.path.join(d, "dgamma.npy"), dparams["scale"], dt)
            save(os.path.join(d, "dbeta.npy"), dparams["bias"], dt)


def main():
    try:
        device = jax.devices(A.device)[0]
    except RuntimeError as e:
        sys.exit(f"jax_runner: no {A.device} device: {e}")
    print(f"jax_runner: jax {jax.__version__} flax {flax.__version__} device={device} "
          f"variance={A.variance} jit={A.jit}", file=sys.stderr)
    run_batch(A.batch, lambda d: run_case(d, device))


if __name__ == "__main__":
    main()
