# gnv repro snippet: flax.linen.GroupNorm on JAX's CPU backend with use_fast_variance=False (its
# two-pass variance; adapters/jax_runner.py --variance two-pass), otherwise as adapters/repro/flax.py:
# channels last (x moved there and back, which rounds nothing), jax_enable_x64 so that f64 stays
# f64, scale and bias set to gamma and beta; the backward is jax.vjp of the same call. With
# BFLOAT16 the float32-held values become jnp.bfloat16 (exactly) and the results float32.
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
import flax  # noqa: E402
import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

jax.config.update("jax_enable_x64", True)
FRAMEWORK = f"flax {flax.__version__}, jax {jax.__version__} (CPU), use_fast_variance=False"


def _array(a, last=False):
    a = np.ascontiguousarray(np.moveaxis(a, 1, -1) if last else a)
    return jnp.asarray(a, dtype=jnp.bfloat16) if BFLOAT16 else jnp.asarray(a)


def _numpy(t):
    return np.moveaxis(np.asarray(t.astype(jnp.float32) if BFLOAT16 else t), -1, 1)


def _apply(x, groups, gamma, beta, eps):
    affine = gamma is not None
    mod = nn.GroupNorm(num_groups=groups, epsilon=eps, use_scale=affine, use_bias=affine,
                       param_dtype=jnp.bfloat16 if BFLOAT16 else x.dtype, use_fast_variance=False)
    params = {"scale": _array(gamma), "bias": _array(beta)} if affine else {}
    return lambda xl: mod.apply({"params": params}, xl)


def group_norm(x, groups, gamma, beta, eps, layout):
    return _numpy(_apply(x, groups, gamma, beta, eps)(_array(x, last=True)))


def group_norm_backward(x, dy, groups, gamma, beta, eps, layout):
    _, vjp = jax.vjp(_apply(x, groups, gamma, beta, eps), _array(x, last=True))
    (dx,) = vjp(_array(dy, last=True))
    return _numpy(dx)
