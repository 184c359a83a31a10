# gnv repro snippet: tract (the Sonos ONNX runtime, Python bindings) running a one-node ONNX model,
# GroupNormalization of opset 21 with scale and bias of shape (C), as adapters/tract_runner.py
# builds it (adapters/onnx_groupnorm.py; x as (N, C, *spatial)).
import os
import tempfile
from importlib.metadata import version

import onnx
import tract
from onnx import TensorProto, helper

FRAMEWORK = f"tract {version('tract')}, onnx {onnx.__version__}"


def group_norm(x, groups, gamma, beta, eps, layout):
    et = {np.dtype(np.float64): TensorProto.DOUBLE, np.dtype(np.float32): TensorProto.FLOAT,
          np.dtype(np.float16): TensorProto.FLOAT16}[x.dtype]
    C = x.shape[1]
    if gamma is None:
        gamma, beta = np.ones(C, dtype=x.dtype), np.zeros(C, dtype=x.dtype)
    node = helper.make_node("GroupNormalization", ["x", "scale", "bias"], ["y"], epsilon=float(eps), num_groups=int(groups))
    graph = helper.make_graph([node], "groupnorm",
                              [helper.make_tensor_value_info("x", et, list(x.shape)),
                               helper.make_tensor_value_info("scale", et, [C]),
                               helper.make_tensor_value_info("bias", et, [C])],
                              [helper.make_tensor_value_info("y", et, list(x.shape))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = min(model.ir_version, 10)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.onnx")
        onnx.save(model, path)
        runnable = tract.onnx().load(path).into_model().into_runnable()
        (y,) = runnable.run([np.ascontiguousarray(a) for a in (x, gamma, beta)])
        return y.to_numpy()
