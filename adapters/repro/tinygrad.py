# gnv repro snippet: tinygrad.nn.GroupNorm on tinygrad's default device, its weight and bias set
# to gamma and beta, as adapters/tinygrad_runner.py runs it (x as (N, C, *spatial)).
from importlib.metadata import version

from tinygrad import Device, Tensor
from tinygrad.nn import GroupNorm

FRAMEWORK = f"tinygrad {version('tinygrad')} (device {Device.DEFAULT})"


def group_norm(x, groups, gamma, beta, eps, layout):
    gn = GroupNorm(groups, x.shape[1], eps=eps, affine=gamma is not None)
    if gamma is not None:
        gn.weight, gn.bias = Tensor(np.ascontiguousarray(gamma)), Tensor(np.ascontiguousarray(beta))
    return gn(Tensor(np.ascontiguousarray(x))).numpy()


def group_norm_backward(x, dy, groups, gamma, beta, eps, layout):
    gn = GroupNorm(groups, x.shape[1], eps=eps, affine=gamma is not None)
    if gamma is not None:
        gn.weight, gn.bias = Tensor(np.ascontiguousarray(gamma)), Tensor(np.ascontiguousarray(beta))
    xt = Tensor(np.ascontiguousarray(x)).contiguous().realize()
    xt.requires_grad = True
    (gn(xt) * Tensor(np.ascontiguousarray(dy))).sum().backward()
    return xt.grad.numpy()
