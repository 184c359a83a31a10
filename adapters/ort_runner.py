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

Opsets (--opset 21|18), and opset 18's per-group scale/bias against gnv's per-channel gamma/beta
(--opset18-affine graph|decline): adapters/onnx_groupnorm.py, which builds the model. At opset 21
the operator's stash_type attribute (precision of the statistics) defaults to float32, also for
f64 inputs; --stash-type f64 sets it to double (default: attribute left out, ONNX's default).
--optimization sets the session's graph optimization level (default all, ORT's default).
"""
import argparse
import sys

import onnx
import onnxruntime as ort

import gnv
import gnv.runner
import onnx_groupnorm  # adapters/onnx_groupnorm.py, beside this file

OPT = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
       "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
       "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
       "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}


def group_norm(x, gamma, beta, G, eps, a, so):
    """The gnv.Kernel forward: y in ONNX's (N, C, *S) order, like x."""
    model, feeds = onnx_groupnorm.model_and_feeds(x, gamma, beta, G, eps, a.opset, a.opset18_affine, a.stash_type)
    sess = ort.InferenceSession(model.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"])
    (y,) = sess.run(["y"], feeds)
    return y


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    onnx_groupnorm.add_arguments(ap)
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
