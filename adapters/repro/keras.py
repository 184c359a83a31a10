# gnv repro snippet: Keras 3's GroupNormalization on TensorFlow (CPU), as adapters/keras_runner.py
# runs it by default: channels last (axis=-1; x is moved there and back, which rounds nothing),
# center and scale with the case's beta and gamma.
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

FRAMEWORK = f"keras {keras.__version__}, tensorflow {tf.__version__} (backend {keras.backend.backend()})"


def group_norm(x, groups, gamma, beta, eps, layout):
    xl = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    lay = keras.layers.GroupNormalization(groups=groups, axis=-1, epsilon=eps, center=gamma is not None,
                                          scale=gamma is not None, dtype=str(x.dtype))
    lay.build(xl.shape)
    if gamma is not None:
        lay.gamma.assign(tf.convert_to_tensor(gamma))
        lay.beta.assign(tf.convert_to_tensor(beta))
    return np.moveaxis(np.asarray(lay(tf.convert_to_tensor(xl))), -1, 1)
