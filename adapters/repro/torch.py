# gnv repro snippet: PyTorch's F.group_norm on the CPU, holding x channels-last when the case's
# layout is nhwc (4-d ChannelsLast, 5-d ChannelsLast3d), as adapters/torch_runner.py runs it.
import torch
import torch.nn.functional as F

FRAMEWORK = f"torch {torch.__version__}"


def group_norm(x, groups, gamma, beta, eps, layout):
    t = torch.from_numpy(np.ascontiguousarray(x))
    if layout == "nhwc" and t.dim() in (4, 5):
        t = t.contiguous(memory_format=torch.channels_last if t.dim() == 4 else torch.channels_last_3d)
    w = None if gamma is None else torch.from_numpy(gamma)
    b = None if beta is None else torch.from_numpy(beta)
    return F.group_norm(t, groups, w, b, eps).numpy()
