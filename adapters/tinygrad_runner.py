#!/usr/bin/env python3
"""gnv external runner for tinygrad's GroupNorm (tinygrad.nn.GroupNorm), forward and backward.

  gnv validate --runner 'build/venv-tinygrad/bin/python adapters/tinygrad_runner.py' \\
      --runner-name tinygrad --no-stats ...

The module is tinygrad.nn.GroupNorm(G, C, eps=eps, affine=<case affine>), its weight and bias set
to the case's gamma and beta. tinygrad 0.14 reshapes x to (N, G, -1) and calls Tensor.layernorm:
mean, then the mean of the squared deviations, in the tensor's own dtype (no wider accumulator
for f16/bf16). It runs on tinygrad's default device (CPU here: kernels compiled with clang).

Layout: tinygrad takes the (N, C, *S) arrays gnv hands a kernel as they are (copied to be
contiguous, no rounding). gnv.runner.serve (the gnv package) reads the cases and writes the outputs.

Backward: autograd of sum(y * dy) with respect to x, weight and bias: dx, dgamma, dbeta (the
forward runs again inside it). mean and rstd are internal to the module: the runner writes no
mean.npy / rstd.npy; run gnv with --no-stats.

dtypes: f32, f64, f16, and bf16 (ml_dtypes.bfloat16 arrays, passed to tinygrad as their bit
patterns and bitcast to dtypes.bfloat16).
"""
import argparse
import sys

import numpy as np

import gnv
import gnv.runner
import tinygrad
from tinygrad import Device, Tensor, dtypes
from tinygrad.nn import GroupNorm

DT = {"f64": dtypes.float64, "f32": dtypes.float32, "f16": dtypes.float16, "bf16": dtypes.bfloat16}


def to_tiny(a, requires_grad=False):
    dt = gnv._arrays.gnv_dtype(a.dtype)
    a = np.ascontiguousarray(a)
    if dt == "bf16":  # numpy has no bfloat16 tinygrad knows: hand it the bits
        t = Tensor(a.view(np.uint16)).bitcast(dtypes.bfloat16)
    else:
        t = Tensor(a)
    t = t.contiguous().realize()
    t.requires_grad = requires_grad
    return t


def to_numpy(t, like):
    if gnv._arrays.gnv_dtype(like.dtype) == "bf16":
        return t.bitcast(dtypes.uint16).numpy().view(like.dtype)
    return t.numpy()


def module(x, gamma, beta, groups, eps):
    gn = GroupNorm(groups, x.shape[1], eps=eps, affine=gamma is not None)
    if gamma is not None:
        gn.weight = to_tiny(gamma, requires_grad=True)
        gn.bias = to_tiny(beta, requires_grad=True)
    return gn


def forward(x, gamma, beta, groups, eps):
    return to_numpy(module(x, gamma, beta, groups, eps)(to_tiny(x)).realize(), x)


def backward(dy, x, mean, rstd, gamma, groups, eps):
    beta = None if gamma is None else np.zeros_like(gamma)
    gn = module(x, gamma, beta, groups, eps)
    xt = to_tiny(x, requires_grad=True)
    (gn(xt) * to_tiny(dy)).sum().backward()
    dx = to_numpy(xt.grad.realize(), x)
    if gamma is None:
        return dx
    return dx, to_numpy(gn.weight.grad.realize(), gamma), to_numpy(gn.bias.grad.realize(), gamma)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("batch")
    a = ap.parse_args()
    version = getattr(tinygrad, "__version__", None)
    if version is None:
        from importlib.metadata import version as v
        version = v("tinygrad")
    print(f"tinygrad_runner: tinygrad {version} device={Device.DEFAULT}", file=sys.stderr)
    gnv.runner.serve(gnv.Kernel(forward, backward, name="tinygrad"), a.batch)


if __name__ == "__main__":
    main()
