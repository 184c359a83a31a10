#!/usr/bin/env python3
"""gnv external runner for the norm + activation path of diffusers' ResnetBlock2D (issue 21): the
block's own modules, `block.nonlinearity(block.norm1(x))`, as every Stable-Diffusion U-Net and VAE
runs them (torch.nn.GroupNorm, then SiLU), forward and backward (autograd), on the CPU.

  gnv validate --runner 'build/venv-diffusers/bin/python adapters/diffusers_runner.py' \\
      --runner-name diffusers-resnet --runner-fused silu --no-stats ...

A ResnetBlock2D(in_channels=C, groups=G, eps=eps) is built per (C, G, eps) and its norm1 is called
with the case's gamma and beta as its weight and bias (torch.func / stateless functional_call, so
that autograd reaches them); a case without affine runs norm1 with weight 1 and bias 0. Cases
without the SiLU epilogue run norm1 alone. Per-sample parameters are not a ResnetBlock2D form
(they are AdaGroupNorm's): declined. Tested with diffusers 0.27.2 on Debian's torch 1.13.1 (newer
diffusers need torch >= 2.6); build/venv-diffusers (scripts/adapters-setup.sh) has them.
"""
import argparse
import sys

import torch
from diffusers.models.resnet import ResnetBlock2D

import gnv.runner
import gnv.torch

try:
    from torch.func import functional_call  # torch >= 2.0
except ImportError:
    from torch.nn.utils.stateless import functional_call  # torch 1.13

_blocks = {}


def block_for(channels, groups, eps):
    key = (channels, groups, eps)
    if key not in _blocks:
        _blocks[key] = ResnetBlock2D(in_channels=channels, groups=groups, eps=eps, temb_channels=None).eval()
    return _blocks[key]


def norm_act(x, groups, weight, bias, eps, epilogue="none"):
    if weight is not None and weight.dim() == 2:
        raise gnv.Unsupported("per-sample gamma and beta are not a ResnetBlock2D form (AdaGroupNorm's)")
    b = block_for(x.shape[1], groups, eps)
    if weight is None:  # no affine: norm1 with its identity parameters, in the case's dtype
        weight = torch.ones(x.shape[1], dtype=x.dtype, device=x.device)
        bias = torch.zeros(x.shape[1], dtype=x.dtype, device=x.device)
    y = functional_call(b.norm1, {"weight": weight, "bias": bias}, (x,))
    return b.nonlinearity(y) if epilogue == "silu" else y


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--memory-format", choices=["contiguous", "channels_last"], default="contiguous")
    ap.add_argument("batch")
    a = ap.parse_args()
    import diffusers
    print(f"diffusers_runner: diffusers {diffusers.__version__} torch {torch.__version__} "
          f"memory_format={a.memory_format}", file=sys.stderr)
    kernel = gnv.torch.wrap(norm_act, memory_format=a.memory_format, name="diffusers-resnet", epilogues=["silu"])
    gnv.runner.serve(kernel, a.batch)


if __name__ == "__main__":
    main()
