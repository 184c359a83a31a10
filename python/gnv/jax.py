"""JAX kernels for gnv: wrap(fn) makes a gnv.Kernel of a function on jax arrays, with its backward
through jax.vjp.

fn(x, gamma, beta, groups, eps) -> y, with gamma and beta None for a case without affine.
"""
import numpy as np

from . import Kernel


def wrap(fn, name=None, statistics=False):
    """A gnv.Kernel of fn on jax arrays (x contiguous in logical (N, C, *S) order: JAX has no
    strides). The backward is jax.vjp of fn with respect to x (and gamma, beta when affine)."""
    import jax
    import jax.numpy as jnp

    def forward(x, gamma, beta, groups, eps):
        out = fn(jnp.asarray(x), None if gamma is None else jnp.asarray(gamma),
                 None if beta is None else jnp.asarray(beta), groups, eps)
        return tuple(np.asarray(o) for o in out) if isinstance(out, (tuple, list)) else np.asarray(out)

    def backward(dy, x, mean, rstd, gamma, groups, eps):
        if gamma is None:
            _, vjp = jax.vjp(lambda xx: fn(xx, None, None, groups, eps), jnp.asarray(x))
            (dx,) = vjp(jnp.asarray(dy))
            return np.asarray(dx)
        beta = np.zeros_like(gamma)
        _, vjp = jax.vjp(lambda xx, g, b: fn(xx, g, b, groups, eps), jnp.asarray(x), jnp.asarray(gamma),
                         jnp.asarray(beta))
        return tuple(np.asarray(d) for d in vjp(jnp.asarray(dy)))

    return Kernel(forward, backward, name=name or f"jax-{getattr(fn, '__name__', 'kernel')}", statistics=statistics,
                  device="jax")
