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

Layout: flax normalizes channels-last input (features on the last axis); the (N, C, *S) arrays gnv
hands a kernel are moved to (N, *S, C) with numpy before the call and the results back after it (a
copy, no rounding). gnv.runner.serve (the gnv package) reads the cases and writes the outputs.

Backward: jax.vjp of the applied module with respect to x, scale and bias, with dy as the
cotangent: dx, dgamma, dbeta (the forward runs again inside it). mean and rstd are not outputs of the module (they are internal to
it): the runner writes no mean.npy / rstd.npy; run gnv with --no-stats.

dtypes: f32, f16, bf16 (ml_dtypes.bfloat16; gnv stores it as '<u2' bit patterns) and f64
(the runner sets jax_enable_x64 so that f64 arrays stay f64).
--device cpu (default) or gpu; --no-jit runs the module eagerly instead of under jax.jit.
"""
import argparse
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
import numpy as np  # noqa: E402
import flax  # noqa: E402
import flax.linen as nn  # noqa: E402

import gnv  # noqa: E402
import gnv.runner  # noqa: E402

jax.config.update("jax_enable_x64", True)
DT = {"f64": jnp.float64, "f32": jnp.float32, "f16": jnp.float16, "bf16": jnp.bfloat16}


def module(x, groups, eps, affine):
    dt = gnv._arrays.gnv_dtype(x.dtype)
    return nn.GroupNorm(num_groups=groups, epsilon=eps, use_scale=affine, use_bias=affine, param_dtype=DT[dt],
                        use_fast_variance=(A.variance == "fast"))


def make_kernel(device):
    """gnv hands (N, C, *S) arrays; flax normalizes (N, *S, C): moved with numpy (a copy, no rounding)."""

    def put(a, last=False):
        return jax.device_put(jnp.asarray(np.ascontiguousarray(np.moveaxis(a, 1, -1) if last else a)), device)

    def apply(x, gamma, beta, groups, eps):
        mod = module(x, groups, eps, gamma is not None)
        params = {} if gamma is None else {"scale": put(gamma), "bias": put(beta)}
        return (lambda xx, pp: mod.apply({"params": pp}, xx)), params

    def forward(x, gamma, beta, groups, eps):
        f, params = apply(x, gamma, beta, groups, eps)
        y = (jax.jit(f) if A.jit else f)(put(x, last=True), params)
        return np.moveaxis(np.asarray(y), -1, 1)

    def backward(dy, x, mean, rstd, gamma, groups, eps):
        beta = None if gamma is None else np.zeros_like(gamma)
        f, params = apply(x, gamma, beta, groups, eps)

        def fb(xx, pp, dd):
            _, vjp = jax.vjp(f, xx, pp)
            return vjp(dd)

        dx, dparams = (jax.jit(fb) if A.jit else fb)(put(x, last=True), params, put(dy, last=True))
        dx = np.moveaxis(np.asarray(dx), -1, 1)
        if gamma is None:
            return dx
        return dx, np.asarray(dparams["scale"]), np.asarray(dparams["bias"])

    return gnv.Kernel(forward, backward, name="flax")


def main():
    try:
        device = jax.devices(A.device)[0]
    except RuntimeError as e:
        sys.exit(f"jax_runner: no {A.device} device: {e}")
    print(f"jax_runner: jax {jax.__version__} flax {flax.__version__} device={device} "
          f"variance={A.variance} jit={A.jit}", file=sys.stderr)
    gnv.runner.serve(make_kernel(device), A.batch)


if __name__ == "__main__":
    main()
