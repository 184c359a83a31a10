#!/usr/bin/env python3
"""A GroupNorm runner in numpy for the tests of `gnv validate --runner` (docs/third-party.md
"Validating third-party kernels"), with deliberate failures selected by --mode:
  ok          correct forward and backward in float64, rounded to the case dtype (f32/f64)
  exit1       writes nothing and exits 1
  missing     forgets rstd.npy
  wrongshape  writes y transposed
  garbage     writes a y.npy that is not an .npy file
  error       writes error.txt for channels-last cases, correct results otherwise
  unsupported writes unsupported.txt for channels-last cases (declines them), correct otherwise
  devzero     makes y.npy a symlink to /dev/zero
  fifo        makes y.npy a FIFO nobody writes
  crash       kills itself with SIGSEGV
  hang        sleeps forever
  onepass     one-pass float32 variance (wrong on offset inputs)
  nostats     correct y, no mean.npy / rstd.npy (run gnv with --no-stats)
Every mode applies the fused forms of case.json version 2 ("epilogue": "silu", "affine_mode":
"per-sample"), which gnv sends only with --runner-fused.
Usage: numpy_runner.py [--mode MODE] BATCH_DIR
"""
import json
import os
import signal
import sys
import time

import numpy as np


def silu(v):
    return v / (1 + np.exp(-v))


def silu_grad(v):
    s = 1 / (1 + np.exp(-v))
    return s * (1 + v * (1 - s))


def param_shape(x, per_sample):
    """gamma/beta broadcast over logical x: (1, C, 1...) or per sample (N, C, 1...)."""
    return (x.shape[0] if per_sample else 1, x.shape[1]) + (1,) * (x.ndim - 2)


def groupnorm(x, G, eps, gamma, beta, layout, mode, per_sample=False, epilogue="none"):
    """x physical: (N,C,*S) for nchw, (N,*S,C) for nhwc. Returns y (physical), mean, rstd."""
    if layout == "nhwc":
        x = np.moveaxis(x, -1, 1)
    N, C = x.shape[:2]
    xg = x.reshape(N, G, -1).astype(np.float64)
    if mode == "onepass":
        x32 = xg.astype(np.float32)
        m = x32.mean(axis=2, dtype=np.float32)
        var = np.maximum((x32 * x32).mean(axis=2, dtype=np.float32) - m * m, 0).astype(np.float64)
        mean = m.astype(np.float64)
    else:
        mean = xg.mean(axis=2)
        var = ((xg - mean[:, :, None]) ** 2).mean(axis=2)
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = ((xg - mean[:, :, None]) * rstd[:, :, None]).reshape(x.shape)
    shape = param_shape(x, per_sample)
    y = xhat * gamma.reshape(shape) + beta.reshape(shape) if gamma is not None else xhat
    if epilogue == "silu":
        y = silu(y)
    if layout == "nhwc":
        y = np.moveaxis(y, 1, -1)
    return y, mean, rstd


def backward(x, dy, G, eps, gamma, beta, layout, per_sample=False, epilogue="none"):
    if layout == "nhwc":
        x, dy = np.moveaxis(x, -1, 1), np.moveaxis(dy, -1, 1)
    N, C = x.shape[:2]
    x, dy = x.astype(np.float64), dy.astype(np.float64)
    xg = x.reshape(N, G, -1)
    mean = xg.mean(axis=2, keepdims=True)
    rstd = 1.0 / np.sqrt(((xg - mean) ** 2).mean(axis=2, keepdims=True) + eps)
    xhat = ((xg - mean) * rstd).reshape(x.shape)
    shape = param_shape(x, per_sample)
    if epilogue == "silu":  # dy of the value before the epilogue
        v = xhat * gamma.reshape(shape) + beta.reshape(shape) if gamma is not None else xhat
        dy = dy * silu_grad(v)
    dxhat = dy * gamma.reshape(shape) if gamma is not None else dy
    dg = dxhat.reshape(N, G, -1)
    xh = xhat.reshape(N, G, -1)
    dx = rstd * (dg - dg.mean(axis=2, keepdims=True) - xh * (dg * xh).mean(axis=2, keepdims=True))
    dx = dx.reshape(x.shape)
    axes = tuple(range(2, x.ndim)) if per_sample else (0,) + tuple(range(2, x.ndim))
    dgamma = (dy * xhat).sum(axis=axes) if gamma is not None else None
    dbeta = dy.sum(axis=axes) if gamma is not None else None
    if layout == "nhwc":
        dx = np.moveaxis(dx, 1, -1)
    return dx, dgamma, dbeta


def main():
    args = sys.argv[1:]
    mode = "ok"
    if args[:1] == ["--mode"]:
        mode, args = args[1], args[2:]
    batch = args[0]
    if mode == "exit1":
        print("numpy_runner: failing on purpose", file=sys.stderr)
        sys.exit(1)
    if mode == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    if mode == "hang":
        time.sleep(3600)
    for name in sorted(os.listdir(batch)):
        d = os.path.join(batch, name)
        if not os.path.isdir(d):
            continue
        p = json.load(open(os.path.join(d, "case.json")))
        dt = {"f64": np.float64, "f32": np.float32}.get(p["dtype"])
        if mode == "unsupported" and p["layout"] == "nhwc":
            with open(os.path.join(d, "unsupported.txt"), "w") as f:
                f.write("numpy_runner: channels-last is not implemented\n")
            continue
        if dt is None or (mode == "error" and p["layout"] == "nhwc"):
            with open(os.path.join(d, "error.txt"), "w") as f:
                f.write(f"numpy_runner: {p['dtype']} {p['layout']} not supported\n")
            continue
        acc = np.float64 if dt == np.float64 else np.float32
        x = np.load(os.path.join(d, "x.npy"))
        gamma = np.load(os.path.join(d, "gamma.npy")).astype(np.float64) if p["affine"] else None
        beta = np.load(os.path.join(d, "beta.npy")).astype(np.float64) if p["affine"] else None
        fused = {"per_sample": p.get("affine_mode") == "per-sample", "epilogue": p.get("epilogue", "none")}
        y, mean, rstd = groupnorm(x, p["G"], p["eps"], gamma, beta, p["layout"], mode, **fused)
        if mode == "wrongshape":
            y = y.reshape(y.shape[::-1])
        if mode == "garbage":
            open(os.path.join(d, "y.npy"), "wb").write(b"\x93NUMPY not really")
        elif mode == "devzero":
            os.symlink("/dev/zero", os.path.join(d, "y.npy"))
        elif mode == "fifo":
            os.mkfifo(os.path.join(d, "y.npy"))
        else:
            np.save(os.path.join(d, "y.npy"), y.astype(dt))
        if mode != "nostats":
            np.save(os.path.join(d, "mean.npy"), mean.astype(acc))
            if mode != "missing":
                np.save(os.path.join(d, "rstd.npy"), rstd.astype(acc))
        if os.path.exists(os.path.join(d, "dy.npy")):
            dy = np.load(os.path.join(d, "dy.npy"))
            dx, dgamma, dbeta = backward(x, dy, p["G"], p["eps"], gamma, beta, p["layout"], **fused)
            np.save(os.path.join(d, "dx.npy"), dx.astype(dt))
            if p["affine"]:
                np.save(os.path.join(d, "dgamma.npy"), dgamma.astype(dt))
                np.save(os.path.join(d, "dbeta.npy"), dbeta.astype(dt))


if __name__ == "__main__":
    main()
