#!/usr/bin/env python3
"""gnv external runner for PaddlePaddle's group_norm (paddle.nn.functional.group_norm, CPU), forward and backward.

  gnv validate --runner 'build/venv-paddle/bin/python adapters/paddle_runner.py [--data-format channels-last]' \\
      --runner-name paddle --no-stats ...

The call is paddle.nn.functional.group_norm(x, G, epsilon=eps, weight=gamma, bias=beta,
data_format=...) on the CPU, with the case's gamma and beta as weight and bias (None without
affine).

--data-format channels-first (default: NCL/NCHW/NCDHW by rank) takes the (N, C, *S) arrays gnv
hands a kernel as they are; channels-last (NLC/NHWC/NDHWC) moves them to (N, *S, C) with numpy
before the call and back after it (a copy, no rounding). A 2-d case (N, C) is passed as it is
with data_format NCL (its L is absent); Paddle's own error, if any, becomes the cell's error.

Backward: paddle autograd of sum(y * dy) with respect to x, weight and bias: dx, dgamma, dbeta
(the forward runs again inside it). mean and rstd are internal: the runner writes no mean.npy /
rstd.npy; run gnv with --no-stats.

dtypes: f64, f32, f16, and bf16 (converted exactly through float32 to paddle's bfloat16 and back).
"""
import argparse
import sys

import numpy as np
import paddle
import paddle.nn.functional as F

import gnv
import gnv.runner

FIRST = {2: "NCL", 3: "NCL", 4: "NCHW", 5: "NCDHW"}
LAST = {2: "NLC", 3: "NLC", 4: "NHWC", 5: "NDHWC"}


def make_kernel(last):
    def put(a, stop_gradient=True):
        a = np.ascontiguousarray(np.moveaxis(a, 1, -1) if last and a.ndim > 2 else a)
        if gnv._arrays.gnv_dtype(a.dtype) == "bf16":  # exact: every bf16 value is a float32
            t = paddle.to_tensor(a.astype(np.float32)).astype("bfloat16")
        else:
            t = paddle.to_tensor(a)
        t.stop_gradient = stop_gradient
        return t

    def get(t, like, spatial=True):
        a = t.astype("float32").numpy().astype(like.dtype) if t.dtype == paddle.bfloat16 else t.numpy()
        return np.moveaxis(a, -1, 1) if last and spatial and a.ndim > 2 else a

    def call(x, gamma, beta, groups, eps):
        fmt = (LAST if last else FIRST)[x.ndim]
        return F.group_norm(x, groups, epsilon=eps, weight=gamma, bias=beta, data_format=fmt)

    def forward(x, gamma, beta, groups, eps):
        g = None if gamma is None else put(gamma)
        b = None if beta is None else put(beta)
        return get(call(put(x), g, b, groups, eps), x)

    def backward(dy, x, mean, rstd, gamma, groups, eps):
        xt = put(x, stop_gradient=False)
        g = b = None
        if gamma is not None:
            g = put(gamma, stop_gradient=False)
            b = put(np.zeros_like(gamma), stop_gradient=False)
        y = call(xt, g, b, groups, eps)
        (y.astype("float64") * put(dy).astype("float64")).sum().backward()
        dx = get(xt.grad, x)
        if gamma is None:
            return dx
        return dx, get(g.grad, gamma, spatial=False), get(b.grad, gamma, spatial=False)

    return gnv.Kernel(forward, backward, name="paddle")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-format", choices=["channels-first", "channels-last"], default="channels-first")
    ap.add_argument("batch")
    a = ap.parse_args()
    paddle.set_device("cpu")
    print(f"paddle_runner: paddlepaddle {paddle.__version__} device=cpu data_format={a.data_format}", file=sys.stderr)
    gnv.runner.serve(make_kernel(a.data_format == "channels-last"), a.batch)


if __name__ == "__main__":
    main()
