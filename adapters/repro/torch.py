# gnv repro snippet: PyTorch's F.group_norm on the CPU. For an nhwc case x is held channels-last
# as adapters/torch_runner.py holds it, with the canonical channels-last strides of
# torch.empty(..., memory_format=torch.channels_last): PyTorch chooses its kernel by the strides,
# and where C = 1 or a spatial extent is 1 an NCHW tensor is "channels-last contiguous" too
# without them (x.contiguous(memory_format=...) then keeps the NCHW strides and the NCHW kernel).
import torch
import torch.nn.functional as F

FRAMEWORK = f"torch {torch.__version__}"


def group_norm(x, groups, gamma, beta, eps, layout):
    t = torch.from_numpy(np.ascontiguousarray(x))
    if layout == "nhwc" and t.dim() in (4, 5):
        fmt = torch.channels_last if t.dim() == 4 else torch.channels_last_3d
        t = torch.empty(t.shape, dtype=t.dtype, memory_format=fmt).copy_(t)
    w = None if gamma is None else torch.from_numpy(gamma)
    b = None if beta is None else torch.from_numpy(beta)
    return F.group_norm(t, groups, w, b, eps).numpy()
