"""PyTorch kernels for gnv: wrap(fn) makes a gnv.Kernel of a function on torch tensors, with its
backward through autograd.

    import torch.nn.functional as F, gnv, gnv.torch
    kernel = gnv.torch.wrap(F.group_norm, memory_format="channels_last")
    gnv.validate(kernel, preset="smoke", dtypes=["f32"])

fn(x, num_groups, weight, bias, eps) -> y: the signature of torch.nn.functional.group_norm. A
function of the fused forms (docs/numerics.md "Fused epilogues") declares them with
wrap(..., epilogues=["silu"], per_sample=True): it then also gets the keyword epilogue="silu" on
SiLU cases, and weight, bias of shape (N, C) on per-sample ones.
"""
import numpy as np

from . import Kernel, Unsupported, _arrays

_FORMATS = ("contiguous", "channels_last", None)


def _torch():
    import torch  # imported when a kernel runs: `import gnv.torch` needs no torch

    return torch


def to_torch(a, device="cpu", memory_format=None, grad=False):
    """A numpy array (bf16 through ml_dtypes) as a torch tensor with the same strides, on `device`;
    memory_format "contiguous" or "channels_last" re-lays it out (channels_last_3d for 5-D)."""
    torch = _torch()
    if a is None:
        return None
    if a.dtype == _arrays.numpy_dtype("bf16"):
        t = torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    else:
        t = torch.from_numpy(a)
    if memory_format == "contiguous":
        t = t.contiguous()
    elif memory_format == "channels_last":
        if t.dim() == 4:
            t = t.contiguous(memory_format=torch.channels_last)
        elif t.dim() == 5:
            t = t.contiguous(memory_format=torch.channels_last_3d)
        else:
            raise Unsupported(f"channels_last: a {t.dim()}-D tensor has no channels-last memory format")
    t = t.to(device)
    return t.detach().requires_grad_(True) if grad else t


def to_numpy(t):
    """A torch tensor as a numpy array of the same dtype (bf16 as ml_dtypes.bfloat16)."""
    torch = _torch()
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(_arrays.numpy_dtype("bf16"))
    return t.numpy()


def _declines(e):
    # PyTorch's way of saying a dtype has no kernel on this device: a decline, not a wrong answer.
    return isinstance(e, RuntimeError) and "not implemented for" in str(e)


def wrap(fn, device="cpu", memory_format=None, name=None, statistics=False, epilogues=None, per_sample=False):
    """A gnv.Kernel of fn(x, num_groups, weight, bias, eps) -> y on torch tensors (F.group_norm's order). memory_format:
    None keeps the case's layout (nhwc cases arrive channels-last), "contiguous" or "channels_last"
    forces one. The backward is autograd's: y.backward(dy), then x.grad, weight.grad, bias.grad.
    A RuntimeError "... not implemented for 'Half'" declines the case (SKIPPED). epilogues and
    per_sample declare the fused forms fn computes (module docstring)."""
    if memory_format not in _FORMATS:
        raise ValueError(f"memory_format {memory_format!r}: expected contiguous, channels_last or None")

    def call(f):
        try:
            return f()
        except RuntimeError as e:
            if _declines(e):
                raise Unsupported(str(e).splitlines()[0]) from e
            raise

    def forward(x, gamma, beta, groups, eps, epilogue="none"):
        torch = _torch()
        fused = {} if epilogue == "none" else {"epilogue": epilogue}
        with torch.no_grad():
            out = call(lambda: fn(to_torch(x, device, memory_format), groups, to_torch(gamma, device),
                                  to_torch(beta, device), eps, **fused))
        return tuple(to_numpy(o) for o in out) if isinstance(out, (tuple, list)) else to_numpy(out)

    def backward(dy, x, mean, rstd, gamma, groups, eps, epilogue="none", beta=None):
        torch = _torch()
        fused = {} if epilogue == "none" else {"epilogue": epilogue}
        xt = to_torch(x, device, memory_format, grad=True)
        gt = to_torch(gamma, device, grad=True)
        # Without an epilogue dbeta does not depend on beta's value (fn needs a bias to
        # differentiate it); through one it does, and gnv passes beta.
        if gamma is None:
            bt = None
        elif beta is not None:
            bt = to_torch(beta, device, grad=True)
        else:
            bt = torch.zeros_like(gt).detach().requires_grad_(True)

        def run():
            y = fn(xt, groups, gt, bt, eps, **fused)
            y = y[0] if isinstance(y, (tuple, list)) else y
            y.backward(to_torch(dy, device, memory_format))

        call(run)
        if gamma is None:
            return to_numpy(xt.grad)
        return to_numpy(xt.grad), to_numpy(gt.grad), to_numpy(bt.grad)

    base = name or f"torch-{getattr(fn, '__name__', 'kernel')}-{device}" + (f"-{memory_format}" if memory_format else "")
    return Kernel(forward, backward, name=base, statistics=statistics, device=device, epilogues=epilogues,
                  per_sample=per_sample)
