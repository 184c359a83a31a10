#!/usr/bin/env python3
"""gnv external runner for PyTorch's GroupNorm (torch.nn.functional.group_norm and, for the
statistics, torch.native_group_norm), forward and backward (autograd).

  gnv validate --runner 'python3 adapters/torch_runner.py [--device cpu|cuda] [--memory-format
      contiguous|channels_last]' --runner-name torch-cpu-cl ...

Protocol (README "Validating third-party kernels"): for every case directory of the batch, read
case.json, x.npy, gamma.npy/beta.npy (affine) and dy.npy (backward), write y.npy, mean.npy,
rstd.npy and dx.npy, dgamma.npy, dbeta.npy, or unsupported.txt for a case it declines (SKIPPED)
and error.txt for a case it failed on.

The case's own layout (nchw/nhwc) is how x is stored; --memory-format is how torch holds it
when it runs (channels_last needs 4-d input, i.e. two spatial extents).
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from runner_protocol import Unsupported, run_batch

DT = {"f64": torch.float64, "f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
ACC = {"f64": np.float64, "f32": np.float32, "f16": np.float32, "bf16": np.float32}


def load(path, dtype):
    a = np.load(path)
    if dtype == "bf16":  # stored as '<u2' bit patterns
        t = torch.from_numpy(a.astype(np.int32) << 16).view(torch.float32)
        return t.to(torch.bfloat16)
    return torch.from_numpy(a.copy())


def save(path, t, dtype):
    t = t.detach().cpu()
    if dtype == "bf16":
        bits = t.to(torch.bfloat16).contiguous().view(torch.int16).numpy().view(np.uint16)
        np.save(path, np.ascontiguousarray(bits))
    else:
        np.save(path, np.ascontiguousarray(t.numpy()))


def to_logical(x, layout):  # physical (N,*S,C) -> logical view (N,C,*S)
    return x if layout == "nchw" else x.permute(0, x.dim() - 1, *range(1, x.dim() - 1))


def to_physical(y, layout):
    return y.contiguous() if layout == "nchw" else y.permute(0, *range(2, y.dim()), 1).contiguous()


def run_case(d, device, memory_format):
    p = json.load(open(os.path.join(d, "case.json")))
    dt = p["dtype"]
    x = to_logical(load(os.path.join(d, "x.npy"), dt), p["layout"]).to(device)
    if memory_format == "channels_last":
        if x.dim() != 4:
            raise Unsupported(f"channels_last needs 4-d input, this case is {x.dim()}-d")
        x = x.contiguous(memory_format=torch.channels_last)
    else:
        x = x.contiguous()
    gamma = beta = None
    if p["affine"]:
        gamma = load(os.path.join(d, "gamma.npy"), dt).to(device).requires_grad_(True)
        beta = load(os.path.join(d, "beta.npy"), dt).to(device).requires_grad_(True)
    backward = os.path.exists(os.path.join(d, "dy.npy"))
    x.requires_grad_(backward)
    y = torch.nn.functional.group_norm(x, p["G"], gamma, beta, p["eps"])
    save(os.path.join(d, "y.npy"), to_physical(y, p["layout"]), dt)
    with torch.no_grad():
        N, C = x.shape[0], x.shape[1]
        HxW = x.numel() // max(N * C, 1)
        _, mean, rstd = torch.native_group_norm(x, gamma, beta, N, C, HxW, p["G"], p["eps"])
    np.save(os.path.join(d, "mean.npy"), mean.detach().cpu().double().numpy().reshape(N, p["G"]).astype(ACC[dt]))
    np.save(os.path.join(d, "rstd.npy"), rstd.detach().cpu().double().numpy().reshape(N, p["G"]).astype(ACC[dt]))
    if backward:
        dy = to_logical(load(os.path.join(d, "dy.npy"), dt), p["layout"]).to(device)
        dy = dy.contiguous(memory_format=torch.channels_last) if memory_format == "channels_last" else dy.contiguous()
        y.backward(dy)
        save(os.path.join(d, "dx.npy"), to_physical(x.grad, p["layout"]), dt)
        if p["affine"]:
            save(os.path.join(d, "dgamma.npy"), gamma.grad, dt)
            save(os.path.join(d, "dbeta.npy"), beta.grad, dt)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--memory-format", choices=["contiguous", "channels_last"], default="contiguous")
    ap.add_argument("batch")
    a = ap.parse_args()
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("torch_runner: CUDA is not available")
    print(f"torch_runner: torch {torch.__version__} device={a.device} memory_format={a.memory_format}", file=sys.stderr)
    run_batch(a.batch, lambda d: run_case(d, a.device, a.memory_format))


if __name__ == "__main__":
    main()
