# gnv repro snippet: flax.linen.GroupNorm on JAX's CPU backend with its defaults (among them
# use_fast_variance=True), as adapters/jax_runner.py runs it: channels last (x is moved there and
# back, which rounds nothing), jax_enable_x64 so that f64 stays f64, scale and bias set to gamma
# and beta.
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
import flax  # noqa: E402
import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

jax.config.update("jax_enable_x64", True)
FRAMEWORK = f"flax {flax.__version__}, jax {jax.__version__} (CPU)"


def group_norm(x, groups, gamma, beta, eps, layout):
    affine = gamma is not None
    mod = nn.GroupNorm(num_groups=groups, epsilon=eps, use_scale=affine, use_bias=affine, param_dtype=x.dtype)
    params = {"scale": jnp.asarray(gamma), "bias": jnp.asarray(beta)} if affine else {}
    y = mod.apply({"params": params}, jnp.asarray(np.ascontiguousarray(np.moveaxis(x, 1, -1))))
    return np.moveaxis(np.asarray(y), -1, 1)
