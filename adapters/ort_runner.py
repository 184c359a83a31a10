#!/usr/bin/env python3
"""gnv external runner for ONNX Runtime's GroupNormalization (CPU execution provider), forward only.

  gnv validate --runner 'build/adapters-venv/bin/python adapters/ort_runner.py --opset 21' \\
      --runner-name ort21 --no-stats --no-backward ...

For every case the runner builds a one-node ONNX model with the `onnx` helper API
(X, scale, bias -> GroupNormalization -> Y, attributes epsilon and num_groups), runs it with an
InferenceSession and returns y; gnv.runner.serve (the gnv package) reads the cases and writes the
outputs in the case's layout. ONNX's channels-first (N, C, *S) is the logical order gnv hands a
kernel: an nhwc case's x is copied into it before the run (a copy, no rounding).

What ONNX Runtime does not give, and how the runner says so:
  * mean and rstd: the operator has one output, Y. The runner writes no mean.npy / rstd.npy;
    run gnv with --no-stats.
  * gradients: an InferenceSession has none (training needs onnxruntime-training). A case with
    dy.npy is declined (SKIPPED); run gnv with --no-backward.
  * dtypes: the model uses the case's dtype. ORT 1.32's CPU provider runs f32, f64 and f16 at both
    opsets; bf16 fails when the session is created (no bf16 CPU kernel for ReduceMean(18) /
    Mul(14) of the operator's function body), and that message becomes the cell's error.

Opsets (--opset):
  21  scale and bias have shape (C), per channel, like gnv's gamma and beta: passed as they are.
      The operator's stash_type attribute (precision of the statistics) defaults to float32, also
      for f64 inputs; --stash-type f64 sets it to double (default: attribute left out, ONNX's
      default).
  18  scale and bias have shape (G), per group (the deprecated definition). gnv's gamma and beta
      are per channel, so:
        - when gamma and beta are each constant within every group (and for cases without
          affine), the operator's own scale and bias carry them: gamma[g*C/G] for group g;
        - otherwise, with --opset18-affine graph (default), the model runs GroupNormalization
          with scale = ones(G), bias = zeros(G) and applies the per-channel gamma and beta after
          it with Mul and Add nodes in the same graph and dtype (what exporters emitted for a
          per-channel affine at opset 18); with --opset18-affine decline the case gets
          error.txt instead.
      Emulating it as GroupNormalization with G = C would change the statistics (one group per
      channel), so the runner never does that.

epsilon is an ONNX float attribute: it is stored as float32 even for f64 cases.
--optimization sets the session's graph optimization level (default all, ORT's default).
"""
import argparse
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

import gnv
import gnv.runner
from gnv import Unsupported

ELEM = {"f64": TensorProto.DOUBLE, "f32": TensorProto.FLOAT, "f16": TensorProto.FLOAT16,
        "bf16": TensorProto.BFLOAT16}
OPT = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
       "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
       "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
       "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}


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
                              producer_name="gnv ort_runner")
    model.ir_version = min(model.ir_version, 10)  # what ORT 1.2x-1.3x reads
    if opset >= 21:  # onnx >= 1.16's checker rejects the opset-18 operator as deprecated; ORT still runs it
        onnx.checker.check_model(model)
    return model


def group_norm(x, gamma, beta, G, eps, a, so):
    """The gnv.Kernel forward: x in ONNX's (N, C, *S) order (gnv hands the logical view; the copy
    below makes it contiguous, no rounding), y back in the same order."""
    dt = gnv._arrays.gnv_dtype(x.dtype)
    x = np.ascontiguousarray(x)
    N, C = x.shape[:2]
    cpg = C // G
    feeds = {"x": x}
    post = False
    if a.opset >= 21:
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
            elif a.opset18_affine == "decline":
                raise Unsupported("opset 18 GroupNormalization has per-group scale/bias (shape (G)); "
                                  "this case's gamma/beta vary within a group")
            else:
                post = True
                feeds["scale"], feeds["bias"] = np.ones(G, dtype=x.dtype), np.zeros(G, dtype=x.dtype)
                bshape = (C,) + (1,) * (x.ndim - 2)
                feeds["gamma"], feeds["beta"] = gamma.reshape(bshape), beta.reshape(bshape)
    stash = {"f32": TensorProto.FLOAT, "f64": TensorProto.DOUBLE}.get(a.stash_type) if a.opset >= 21 else None
    model = build_model(a.opset, dt, list(x.shape), G, eps, nscale, post, stash)
    sess = ort.InferenceSession(model.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"])
    (y,) = sess.run(["y"], feeds)
    return y


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--opset", type=int, choices=[18, 21], default=21)
    ap.add_argument("--opset18-affine", choices=["graph", "decline"], default="graph")
    ap.add_argument("--stash-type", choices=["default", "f32", "f64"], default="default",
                    help="opset 21 only: stash_type attribute (default: left out, i.e. float32)")
    ap.add_argument("--optimization", choices=sorted(OPT), default="all")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads (0: ORT's default)")
    ap.add_argument("batch")
    a = ap.parse_args()
    so = ort.SessionOptions()
    so.graph_optimization_level = OPT[a.optimization]
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    print(f"ort_runner: onnxruntime {ort.__version__} onnx {onnx.__version__} opset={a.opset} "
          f"opset18_affine={a.opset18_affine} stash_type={a.stash_type} optimization={a.optimization}",
          file=sys.stderr)
    # No backward: gnv.runner declines a case with dy (SKIPPED); run gnv with --no-backward.
    kernel = gnv.Kernel(lambda x, gamma, beta, G, eps: group_norm(x, gamma, beta, G, eps, a, so),
                        name=f"ort-opset{a.opset}")
    gnv.runner.serve(kernel, a.batch)


if __name__ == "__main__":
    main()
