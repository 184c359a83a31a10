# gnv repro snippet: flax.linen.GroupNorm on JAX's CPU backend with use_fast_variance=False (its
# two-pass variance; adapters/jax_runner.py --variance two-pass), otherwise as adapters/repro/flax.py:
# channels last (x moved there and back, which rounds nothing), jax_enable_x64 so that f64 stays
# f64, scale and bias set to gamma and beta; the backward is jax.vjp of the same call.
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
import flax  # noqa: E402
import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

jax.config.update("jax_enable_x64", True)
FRAMEWORK = f"flax {flax.__version__}, jax {jax.__version__} (CPU), use_fast_variance=False"


def _apply(x, groups, gamma, beta, eps):
    affine = gamma is not None
    mod = nn.GroupNorm(num_groups=groups, epsilon=eps, use_scale=affine, use_bias=affine, param_dtype=x.dtype,
                       use_fast_variance=False)
    params = {"scale": jnp.asarray(gamma), "bias": jnp.asarray(beta)} if affine else {}
    return lambda xl: mod.apply({"params": params}, xl)


def group_norm(x, groups, gamma, beta, eps, layout):
    y = _apply(x, groups, gamma, beta, eps)(jnp.asarray(np.ascontiguousarray(np.moveaxis(x, 1, -1))))
    return np.moveaxis(np.asarray(y), -1, 1)


def group_norm_backward(x, dy, groups, gamma, beta, eps, layout):
    f = _apply(x, groups, gamma, beta, eps)
    _, vjp = jax.vjp(f, jnp.asarray(np.ascontiguousarray(np.moveaxis(x, 1, -1))))
    (dx,) = vjp(jnp.asarray(np.ascontiguousarray(np.moveaxis(dy, 1, -1))))
    return np.moveaxis(np.asarray(dx), -1, 1)
