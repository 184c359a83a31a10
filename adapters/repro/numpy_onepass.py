# gnv repro snippet (for the tests): a one-pass float32 variance E[x^2] - E[x]^2 in numpy, and the
# textbook backward from the same statistics.
FRAMEWORK = f"numpy one-pass {np.__version__}"


def _normalized(x, groups):
    g = x.astype(np.float32).reshape(x.shape[0], groups, -1)
    m = g.mean(-1, keepdims=True, dtype=np.float32)
    var = np.maximum((g * g).mean(-1, keepdims=True, dtype=np.float32) - m * m, 0)
    return g, m, var


def group_norm(x, groups, gamma, beta, eps, layout):
    g, m, var = _normalized(x, groups)
    y = ((g - m) / np.sqrt(var + np.float32(eps))).reshape(x.shape)
    if gamma is not None:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        y = y * gamma.reshape(shape) + beta.reshape(shape)
    return y.astype(x.dtype)


def group_norm_backward(x, dy, groups, gamma, beta, eps, layout):
    g, m, var = _normalized(x, groups)
    rstd = 1 / np.sqrt(var + np.float32(eps))
    d = dy.astype(np.float32)
    if gamma is not None:
        d = d * gamma.astype(np.float32).reshape((1, -1) + (1,) * (x.ndim - 2))
    d = d.reshape(g.shape)
    xhat = (g - m) * rstd
    dx = rstd * (d - d.mean(-1, keepdims=True) - xhat * (d * xhat).mean(-1, keepdims=True))
    return dx.reshape(x.shape).astype(x.dtype)
