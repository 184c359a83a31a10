"""The one-node ONNX GroupNormalization model that the ONNX-based adapters (ort_runner.py,
tract_runner.py) run, and its inputs, from the arrays gnv hands a kernel. Opsets:

  21  scale and bias have shape (C), per channel, like gnv's gamma and beta: passed as they are.
      Its stash_type attribute (precision of the statistics) is left out unless asked for.
  18  scale and bias have shape (G), per group (the deprecated definition). gnv's gamma and beta
      are per channel, so:
        - when gamma and beta are each constant within every group (and for cases without
          affine), the operator's own scale and bias carry them: gamma[g*C/G] for group g;
        - otherwise, with opset18_affine="graph", the model runs GroupNormalization with
          scale = ones(G), bias = zeros(G) and applies the per-channel gamma and beta after it
          with Mul and Add nodes in the same graph and dtype (what exporters emitted for a
          per-channel affine at opset 18); with "decline" the case is declined (gnv.Unsupported).
      Emulating it as GroupNormalization with G = C would change the statistics (one group per
      channel), so this never does that.

epsilon is an ONNX float attribute: it is stored as float32 even for f64 cases.
"""
import numpy as np
import onnx
from onnx import TensorProto, helper

import gnv
from gnv import Unsupported

ELEM = {"f64": TensorProto.DOUBLE, "f32": TensorProto.FLOAT, "f16": TensorProto.FLOAT16,
        "bf16": TensorProto.BFLOAT16}


def build_model(opset, dtype, shape, G, eps, nscale, post_affine, stash):
    et = ELEM[dtype]
    C = shape[1]
    inputs = [helper.make_tensor_value_info("x", et, shape),
              helper.make_tensor_value_info("scale", et, [nscale]),
              helper.make_tensor_value_info("bias", et, [nscale])]
    attrs = {"epsilon": float(eps), "num_groups": int(G)}
    if stash is not None:
        attrs["stash_type"] = stash
    out = "y" if not post_affine else "norm"
    nodes = [helper.make_node("GroupNormalization", ["x", "scale", "bias"], [out], **attrs)]
    if post_affine:  # per-channel gamma/beta after the opset-18 operator, broadcast as (C, 1, ...)
        bshape = [C] + [1] * (len(shape) - 2)
        inputs += [helper.make_tensor_value_info("gamma", et, bshape),
                   helper.make_tensor_value_info("beta", et, bshape)]
        nodes += [helper.make_node("Mul", ["norm", "gamma"], ["scaled"]),
                  helper.make_node("Add", ["scaled", "beta"], ["y"])]
    graph = helper.make_graph(nodes, "gnv_groupnorm", inputs, [helper.make_tensor_value_info("y", et, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="gnv")
    model.ir_version = min(model.ir_version, 10)  # what ORT 1.2x-1.3x and tract read
    if opset >= 21:  # onnx >= 1.16's checker rejects the opset-18 operator as deprecated; ORT still runs it
        onnx.checker.check_model(model)
    return model


def add_arguments(ap):
    """The model's command-line options, shared by the ONNX-based runners."""
    ap.add_argument("--opset", type=int, choices=[18, 21], default=21)
    ap.add_argument("--opset18-affine", choices=["graph", "decline"], default="graph")
    ap.add_argument("--stash-type", choices=["default", "f32", "f64"], default="default",
                    help="opset 21 only: stash_type attribute (default: left out, i.e. float32)")


def model_and_feeds(x, gamma, beta, G, eps, opset, opset18_affine="graph", stash_type="default"):
    """The model and its input arrays by name (x, scale, bias[, gamma, beta]) for x in ONNX's
    (N, C, *S) order (gnv hands the logical view; the copy below makes it contiguous, no
    rounding). stash_type: "default" (attribute left out), "f32" or "f64"; opset 21 only."""
    dt = gnv._arrays.gnv_dtype(x.dtype)
    x = np.ascontiguousarray(x)
    N, C = x.shape[:2]
    cpg = C // G
    feeds = {"x": x}
    post = False
    if opset >= 21:
        feeds["scale"] = gamma if gamma is not None else np.ones(C, dtype=x.dtype)
        feeds["bias"] = beta if beta is not None else np.zeros(C, dtype=x.dtype)
        nscale = C
    else:
        nscale = G
        if gamma is None:
            feeds["scale"], feeds["bias"] = np.ones(G, dtype=x.dtype), np.zeros(G, dtype=x.dtype)
        else:
            gg, bg = gamma.reshape(G, cpg), beta.reshape(G, cpg)
            per_group = bool((gg == gg[:, :1]).all() and (bg == bg[:, :1]).all())
            if per_group:
                feeds["scale"], feeds["bias"] = np.ascontiguousarray(gg[:, 0]), np.ascontiguousarray(bg[:, 0])
            elif opset18_affine == "decline":
                raise Unsupported("opset 18 GroupNormalization has per-group scale/bias (shape (G)); "
                                  "this case's gamma/beta vary within a group")
            else:
                post = True
                feeds["scale"], feeds["bias"] = np.ones(G, dtype=x.dtype), np.zeros(G, dtype=x.dtype)
                bshape = (C,) + (1,) * (x.ndim - 2)
                feeds["gamma"], feeds["beta"] = gamma.reshape(bshape), beta.reshape(bshape)
    stash = {"f32": TensorProto.FLOAT, "f64": TensorProto.DOUBLE}.get(stash_type) if opset >= 21 else None
    return build_model(opset, dt, list(x.shape), G, eps, nscale, post, stash), feeds
