# gnv repro snippet (for the tests): a one-pass float32 variance E[x^2] - E[x]^2 in numpy.
FRAMEWORK = f"numpy one-pass {np.__version__}"


def group_norm(x, groups, gamma, beta, eps, layout):
    g = x.astype(np.float32).reshape(x.shape[0], groups, -1)
    m = g.mean(-1, keepdims=True, dtype=np.float32)
    var = np.maximum((g * g).mean(-1, keepdims=True, dtype=np.float32) - m * m, 0)
    y = ((g - m) / np.sqrt(var + np.float32(eps))).reshape(x.shape)
    if gamma is not None:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        y = y * gamma.reshape(shape) + beta.reshape(shape)
    return y.astype(x.dtype)
