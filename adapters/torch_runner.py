#!/usr/bin/env python3
"""gnv external runner for PyTorch's GroupNorm (torch.nn.functional.group_norm and, for the
statistics, torch.native_group_norm), forward and backward (autograd), on the gnv package.

  gnv validate --runner 'build/py-venv/bin/python adapters/torch_runner.py [--device cpu|cuda]
      [--memory-format contiguous|channels_last]' --runner-name torch-cpu-cl ...

The kernel is gnv.torch.wrap(...) of the function below, and gnv.runner.serve runs it on every case
directory of the batch (docs/python.md "From Python"): reading the case, the layouts, bf16 and writing the
outputs live in the package. --memory-format is how torch holds x when it runs: channels_last needs
4-d input (channels_last_3d for 5-d); other ranks are declined (SKIPPED). From Python, the same
kernel is gnv.torch.wrap(F.group_norm, memory_format=...) passed to gnv.validate.

--fused runs the composite production models run instead (issue 21): F.silu(F.group_norm(x, ...))
on SiLU cases, and for per-sample gamma, beta (adaptive GroupNorm, diffusers' AdaGroupNorm)
F.group_norm without affine, then x̂ * gamma[n, c] + beta[n, c]; gnv sends those cases with
`--runner-fused silu,per-sample`.
"""
import argparse
import sys

import torch
import torch.nn.functional as F

import gnv.runner
import gnv.torch


def group_norm_silu(x, groups, weight, bias, eps, epilogue="none"):
    """The composite: F.group_norm (per-sample weight, bias applied after it, as diffusers'
    AdaGroupNorm does), then F.silu when the case asks for it."""
    if weight is not None and weight.dim() == 2:
        shape = tuple(weight.shape) + (1,) * (x.dim() - 2)
        y = F.group_norm(x, groups, None, None, eps) * weight.reshape(shape) + bias.reshape(shape)
    else:
        y = F.group_norm(x, groups, weight, bias, eps)
    return F.silu(y) if epilogue == "silu" else y


def group_norm_with_stats(x, groups, weight, bias, eps, epilogue="none"):
    """F.group_norm's y (the composite of group_norm_silu), and mean and rstd of
    torch.native_group_norm as (N, G) in the accumulation dtype (a widening of f16/bf16
    statistics, exact)."""
    y = group_norm_silu(x, groups, weight, bias, eps, epilogue)
    if weight is not None and weight.dim() == 2:  # the statistics do not depend on them
        weight = bias = None
    n, c = x.shape[0], x.shape[1]
    with torch.no_grad():
        _, mean, rstd = torch.native_group_norm(x.detach(), weight, bias, n, c, x.numel() // max(n * c, 1), groups, eps)
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    return y, mean.reshape(n, groups).to(acc), rstd.reshape(n, groups).to(acc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--memory-format", choices=["contiguous", "channels_last"], default="contiguous")
    ap.add_argument("--fused", action="store_true", help="the SiLU and per-sample composite (module docstring)")
    ap.add_argument("batch")
    a = ap.parse_args()
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("torch_runner: CUDA is not available")
    print(f"torch_runner: torch {torch.__version__} device={a.device} memory_format={a.memory_format}", file=sys.stderr)
    kernel = gnv.torch.wrap(group_norm_with_stats, device=a.device, memory_format=a.memory_format, statistics=True,
                            name="torch", epilogues=["silu"] if a.fused else None, per_sample=a.fused)
    gnv.runner.serve(kernel, a.batch)


if __name__ == "__main__":
    main()
