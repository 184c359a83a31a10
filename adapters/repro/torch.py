# gnv repro snippet: PyTorch's F.group_norm on the CPU. For an nhwc case x is held channels-last
# as adapters/torch_runner.py holds it, with the canonical channels-last strides of
# torch.empty(..., memory_format=torch.channels_last): PyTorch chooses its kernel by the strides,
# and where C = 1 or a spatial extent is 1 an NCHW tensor is "channels-last contiguous" too
# without them (x.contiguous(memory_format=...) then keeps the NCHW strides and the NCHW kernel).
# With BFLOAT16 the float32-held values become torch.bfloat16 (exactly) and y comes back as float32.
import torch
import torch.nn.functional as F

FRAMEWORK = f"torch {torch.__version__}"


def _tensor(a):
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t.to(torch.bfloat16) if BFLOAT16 else t


def group_norm(x, groups, gamma, beta, eps, layout):
    t = _tensor(x)
    if layout == "nhwc" and t.dim() in (4, 5):
        fmt = torch.channels_last if t.dim() == 4 else torch.channels_last_3d
        t = torch.empty(t.shape, dtype=t.dtype, memory_format=fmt).copy_(t)
    w = None if gamma is None else _tensor(gamma)
    b = None if beta is None else _tensor(beta)
    return F.group_norm(t, groups, w, b, eps).float().numpy() if BFLOAT16 else F.group_norm(t, groups, w, b, eps).numpy()


def group_norm_backward(x, dy, groups, gamma, beta, eps, layout):
    t = _tensor(x)
    if layout == "nhwc" and t.dim() in (4, 5):
        fmt = torch.channels_last if t.dim() == 4 else torch.channels_last_3d
        t = torch.empty(t.shape, dtype=t.dtype, memory_format=fmt).copy_(t)
    t.requires_grad_(True)
    w = None if gamma is None else _tensor(gamma)
    b = None if beta is None else _tensor(beta)
    F.group_norm(t, groups, w, b, eps).backward(_tensor(dy))
    return t.grad.float().numpy() if BFLOAT16 else t.grad.numpy()
