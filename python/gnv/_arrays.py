"""Arrays between numpy and gnv's C++ core: dtypes, the physical order of a layout, raw bytes.

Layout and dtype handling live here once; nothing numerical does. A case's tensors are stored in
physical order (N,C,*S for nchw, N,*S,C for nhwc); the arrays a kernel sees are the logical
(N, C, *S) view of that storage, so an nhwc case hands a kernel a channels-last strided array
(`torch.from_numpy` keeps those strides: a channels_last tensor).
"""
import numpy as np

try:
    import ml_dtypes

    _BF16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - ml_dtypes is a dependency of the package
    ml_dtypes = None
    _BF16 = None

_NUMPY = {"f64": np.dtype(np.float64), "f32": np.dtype(np.float32), "f16": np.dtype(np.float16)}
if _BF16 is not None:
    _NUMPY["bf16"] = _BF16


def numpy_dtype(name):
    """The numpy dtype of a gnv dtype name (bf16: ml_dtypes.bfloat16)."""
    try:
        return _NUMPY[name]
    except KeyError:
        raise ValueError(f"dtype {name!r}: gnv knows {', '.join(_NUMPY)}") from None


def gnv_dtype(dtype, what="x"):
    """The gnv name of a numpy dtype; TypeError for one gnv does not check."""
    dt = np.dtype(dtype)
    for name, d in _NUMPY.items():
        if d == dt:
            return name
    raise TypeError(f"{what}: dtype {dt} is not one gnv checks (float64, float32, float16, ml_dtypes.bfloat16)")


def logical(physical, layout):
    """The (N, C, *S) view of a tensor stored in `layout` order."""
    return np.moveaxis(physical, -1, 1) if layout == "nhwc" and physical.ndim > 2 else physical


def to_bytes(array, dtype, shape, layout, what):
    """A kernel's logical `array` as the raw bytes of its physical storage: exactly `dtype` and
    the logical `shape`, else TypeError / ValueError naming `what`. Values are copied bit for bit."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{what}: expected a numpy array, got {type(array).__name__}")
    want = numpy_dtype(dtype)
    if array.dtype != want:
        raise TypeError(f"{what}: dtype {array.dtype}, expected {want} ({dtype}); gnv does not convert a kernel's output")
    if tuple(array.shape) != tuple(shape):
        raise ValueError(f"{what}: shape {tuple(array.shape)}, expected {tuple(shape)}")
    if layout == "nhwc" and array.ndim > 2:
        array = np.moveaxis(array, 1, -1)
    return np.ascontiguousarray(array).reshape(-1).view(np.uint8)


def from_bytes(raw, dtype, physical_shape, layout):
    """The logical view of raw physical bytes from the core (a fresh, writable array)."""
    return logical(raw.view(numpy_dtype(dtype)).reshape(tuple(physical_shape)), layout)


def input_bytes(array, dtype, layout, what):
    """A caller's logical input array as the bytes of its physical storage (a copy). The array
    must have the dtype; any strides are accepted (the values are what counts)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{what}: expected a numpy array, got {type(array).__name__}")
    return to_bytes(array, dtype, array.shape, layout, what)
