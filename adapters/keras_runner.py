#!/usr/bin/env python3
"""gnv external runner for Keras 3's GroupNormalization on TensorFlow (CPU), forward and backward.

  gnv validate --runner 'build/venv-tf/bin/python adapters/keras_runner.py [--axis first]' \\
      --runner-name keras --no-stats ...

The layer is keras.layers.GroupNormalization(groups=G, axis=..., epsilon=eps, center=affine,
scale=affine, dtype=<case dtype>) with every other argument at its default; its gamma and beta
weights are set to the case's gamma and beta. Keras 3.15 computes in at least float32 (f16/bf16
inputs are upcast, f64 stays f64) with keras.ops.moments for the statistics.

--axis last (default, Keras' default axis=-1): the (N, C, *S) arrays gnv hands a kernel are moved
to (N, *S, C) with numpy before the call and back after it (a copy, no rounding); --axis first
runs the layer with axis=1 on them as they are.

Backward: tf.GradientTape of sum(y * dy) with respect to x, gamma and beta: dx, dgamma, dbeta
(the forward runs again inside it). mean and rstd are internal to the layer: the runner writes no
mean.npy / rstd.npy; run gnv with --no-stats.

dtypes: f64, f32, f16 and bf16 (ml_dtypes.bfloat16 arrays, which TensorFlow takes as tf.bfloat16).
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported: no banner on stderr

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import gnv  # noqa: E402
import gnv.runner  # noqa: E402

KERAS_DTYPE = {"f64": "float64", "f32": "float32", "f16": "float16", "bf16": "bfloat16"}


def make_kernel(last):
    def put(a):
        return np.ascontiguousarray(np.moveaxis(a, 1, -1) if last else a)

    def back(t):
        a = np.asarray(t)
        return np.moveaxis(a, -1, 1) if last else a

    def layer(x, gamma, beta, groups, eps):
        dt = KERAS_DTYPE[gnv._arrays.gnv_dtype(x.dtype)]
        lay = keras.layers.GroupNormalization(groups=groups, axis=-1 if last else 1, epsilon=eps,
                                              center=gamma is not None, scale=gamma is not None, dtype=dt)
        lay.build(put(x).shape)
        if gamma is not None:
            lay.gamma.assign(tf.convert_to_tensor(gamma))
            lay.beta.assign(tf.convert_to_tensor(beta))
        return lay

    def forward(x, gamma, beta, groups, eps):
        return back(layer(x, gamma, beta, groups, eps)(tf.convert_to_tensor(put(x))))

    def backward(dy, x, mean, rstd, gamma, groups, eps):
        beta = None if gamma is None else np.zeros_like(gamma)
        lay = layer(x, gamma, beta, groups, eps)
        xt = tf.convert_to_tensor(put(x))
        dyt = tf.convert_to_tensor(put(dy))
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = lay(xt)
            loss = tf.reduce_sum(tf.cast(y, tf.float64) * tf.cast(dyt, tf.float64))
        weights = [lay.gamma, lay.beta] if gamma is not None else []
        grads = tape.gradient(loss, [xt] + weights)
        dx = back(grads[0])
        if gamma is None:
            return dx
        return dx, np.asarray(grads[1]), np.asarray(grads[2])

    return gnv.Kernel(forward, backward, name="keras")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--axis", choices=["last", "first"], default="last")
    ap.add_argument("batch")
    a = ap.parse_args()
    print(f"keras_runner: keras {keras.__version__} tensorflow {tf.__version__} backend {keras.backend.backend()} "
          f"axis={a.axis}", file=sys.stderr)
    gnv.runner.serve(make_kernel(a.axis == "last"), a.batch)


if __name__ == "__main__":
    main()
