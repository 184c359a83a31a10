"""JAX kernels for gnv: wrap(fn) makes a gnv.Kernel of a function on jax arrays, with its backward
through jax.vjp.

fn(x, gamma, beta, groups, eps) -> y, with gamma and beta None for a case without affine.
"""
import numpy as np

from . import Kernel, Unsupported


def wrap(fn, name=None, statistics=False):
    """A gnv.Kernel of fn on jax arrays (x contiguous in logical (N, C, *S) order: JAX has no
    strides). The backward is jax.vjp of fn with respect to x (and gamma, beta when affine)."""
    import jax
    import jax.numpy as jnp

    def check_x64(x):
        # Without x64, jnp.asarray makes an f64 case f32: the kernel would be blamed for JAX's cast.
        if x.dtype == np.float64 and not jax.config.jax_enable_x64:
            raise Unsupported("f64 needs jax.config.update('jax_enable_x64', True)")

    def forward(x, gamma, beta, groups, eps):
        check_x64(x)
        out = fn(jnp.asarray(x), None if gamma is None else jnp.asarray(gamma),
                 None if beta is None else jnp.asarray(beta), groups, eps)
        return tuple(np.asarray(o) for o in out) if isinstance(out, (tuple, list)) else np.asarray(out)

    def first(out):  # fn may return (y, mean, rstd): the backward is y's
        return out[0] if isinstance(out, (tuple, list)) else out

    def backward(dy, x, mean, rstd, gamma, groups, eps):
        check_x64(x)
        if gamma is None:
            _, vjp = jax.vjp(lambda xx: first(fn(xx, None, None, groups, eps)), jnp.asarray(x))
            (dx,) = vjp(jnp.asarray(dy))
            return np.asarray(dx)
        beta = np.zeros_like(gamma)
        _, vjp = jax.vjp(lambda xx, g, b: first(fn(xx, g, b, groups, eps)), jnp.asarray(x), jnp.asarray(gamma),
                         jnp.asarray(beta))
        return tuple(np.asarray(d) for d in vjp(jnp.asarray(dy)))

    return Kernel(forward, backward, name=name or f"jax-{getattr(fn, '__name__', 'kernel')}", statistics=statistics,
                  device="jax")
