"""numpy GroupNorm kernels for the package's tests: a correct one (two-pass, in long double), the
same declaring the fused forms (SiLU epilogue, per-sample parameters) and the one-pass-variance
control (float32 E[x^2] - E[x]^2), forward and backward."""
import numpy as np

import gnv

# NaN and Inf inputs (the special stress class) are part of the grids: numpy's warnings about them
# are expected.
np.seterr(all="ignore")


def _round(a, dtype):
    return a.astype(np.float64).astype(dtype)  # long double -> f64 -> dtype (bf16 through ml_dtypes)


def _groups(x, groups):
    return x.astype(np.longdouble).reshape(x.shape[0], groups, -1)


def _per_channel(v, x):
    """gamma or beta broadcast over x: (C,) per channel, (N, C) per sample."""
    lead = (1,) if v.ndim == 1 else ()
    return v.astype(np.longdouble).reshape(lead + v.shape + (1,) * (x.ndim - 2))


def _silu(v):
    return v / (1 + np.exp(-v))


def _silu_grad(v):
    s = 1 / (1 + np.exp(-v))
    return s * (1 + v * (1 - s))


def forward(x, gamma, beta, groups, eps, epilogue="none"):
    xg = _groups(x, groups)
    mean = xg.mean(-1, keepdims=True)
    xhat = ((xg - mean) / np.sqrt(((xg - mean) ** 2).mean(-1, keepdims=True) + eps)).reshape(x.shape)
    y = xhat if gamma is None else xhat * _per_channel(gamma, x) + _per_channel(beta, x)
    return _round(_silu(y) if epilogue == "silu" else y, x.dtype)


def backward(dy, x, mean, rstd, gamma, groups, eps, epilogue="none", beta=None):
    """Recomputes its own statistics (as a runner must), so gnv.validate and the runner route agree."""
    xg = _groups(x, groups)
    mu = xg.mean(-1, keepdims=True)
    r = 1 / np.sqrt(((xg - mu) ** 2).mean(-1, keepdims=True) + eps)
    xhat = (xg - mu) * r
    d = dy.astype(np.longdouble)
    if epilogue == "silu":  # the gradient of the value before the epilogue
        xh = xhat.reshape(x.shape)
        d = d * _silu_grad(xh if gamma is None else xh * _per_channel(gamma, x) + _per_channel(beta, x))
    g = d if gamma is None else d * _per_channel(gamma, x)
    g = g.reshape(xg.shape)
    dx = r * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    dx = _round(dx.reshape(x.shape), x.dtype)
    if gamma is None:
        return dx
    axes = tuple(range(2, x.ndim)) if gamma.ndim == 2 else (0,) + tuple(range(2, x.ndim))
    dgamma = (d * xhat.reshape(x.shape)).sum(axis=axes)
    dbeta = d.sum(axis=axes)
    return dx, _round(dgamma, x.dtype), _round(dbeta, x.dtype)


def onepass_forward(x, gamma, beta, groups, eps):
    x32 = x.astype(np.float32).reshape(x.shape[0], groups, -1)
    m = x32.mean(-1, keepdims=True, dtype=np.float32)
    var = np.maximum((x32 * x32).mean(-1, keepdims=True, dtype=np.float32) - m * m, 0)
    y = ((x32 - m) / np.sqrt(var + np.float32(eps))).reshape(x.shape)
    if gamma is not None:
        y = y * gamma.astype(np.float32).reshape((1, -1) + (1,) * (x.ndim - 2)) + beta.astype(np.float32).reshape(
            (1, -1) + (1,) * (x.ndim - 2))
    return y.astype(x.dtype)


correct = gnv.Kernel(forward, backward, name="numpy-longdouble")
fused = gnv.Kernel(forward, backward, name="numpy-fused", epilogues=["silu"], per_sample=True)
onepass = gnv.Kernel(onepass_forward, name="numpy-onepass")
