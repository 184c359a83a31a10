#!/usr/bin/env python3
"""gnv external runner for OpenVINO's GroupNormalization (opset 12) on its CPU plugin, forward only.

  gnv validate --runner 'build/venv-openvino/bin/python adapters/openvino_runner.py [--precision-hint f32]' \\
      --runner-name openvino --no-stats --no-backward ...

For every case the runner builds a one-node model (x, scale, bias -> GroupNormalization with
num_groups and epsilon) in the case's dtype with the opset12 Python API, compiles it for the CPU
plugin and runs it. scale and bias are per channel (shape (C)), like gnv's gamma and beta; a case
without affine gets ones and zeros. OpenVINO takes the (N, C, *S) arrays gnv hands a kernel as
they are (copied to be contiguous, no rounding).

--precision-hint sets the CPU plugin's INFERENCE_PRECISION_HINT: default (left as the plugin
chooses: bf16 on a CPU with native bf16 arithmetic, f32 otherwise; the runner prints the value
in effect) or f32 (the model's own precision).

What OpenVINO does not give, and how the runner says so:
  * mean and rstd: the operator has one output. Run gnv with --no-stats.
  * gradients: inference only; a case with dy.npy is declined (SKIPPED). Run gnv with --no-backward.
  * epsilon is a double attribute of the operator: passed as it is.
dtypes: f32, f16, f64 and bf16 (bf16 handed over as bit patterns in an ov.Tensor of type bf16);
the plugin's own errors (an unsupported element type) become the cell's error.
"""
import argparse
import sys

import numpy as np

import gnv
import gnv.runner
import openvino as ov
import openvino.opset12 as ops

ET = {"f64": ov.Type.f64, "f32": ov.Type.f32, "f16": ov.Type.f16, "bf16": ov.Type.bf16}


def tensor(a):
    """An ov.Tensor over a (contiguous copy of a); bf16 from its bit patterns."""
    a = np.ascontiguousarray(a)
    if gnv._arrays.gnv_dtype(a.dtype) == "bf16":
        t = ov.Tensor(ov.Type.bf16, ov.Shape(list(a.shape)))
        np.copyto(t.data.view(np.uint16), a.view(np.uint16))  # t.data: the tensor's bytes as uint16
        return t
    return ov.Tensor(a)


def group_norm(x, gamma, beta, G, eps, core, config):
    dt = gnv._arrays.gnv_dtype(x.dtype)
    C = x.shape[1]
    et = ET[dt]
    px = ops.parameter(list(x.shape), et, name="x")
    ps = ops.parameter([C], et, name="scale")
    pb = ops.parameter([C], et, name="bias")
    model = ov.Model([ops.group_normalization(px, ps, pb, int(G), float(eps))], [px, ps, pb], "gnv_groupnorm")
    compiled = core.compile_model(model, "CPU", config)
    if gamma is None:
        gamma, beta = np.ones(C, dtype=x.dtype), np.zeros(C, dtype=x.dtype)
    request = compiled.create_infer_request()
    request.infer([tensor(x), tensor(gamma), tensor(beta)])
    out = request.get_output_tensor(0)
    if dt == "bf16":
        return np.array(out.data, copy=True).view(np.uint16).reshape(x.shape).view(x.dtype)
    return np.array(out.data, copy=True).reshape(x.shape)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--precision-hint", choices=["default", "f32"], default="default")
    ap.add_argument("--threads", type=int, default=1, help="CPU plugin inference threads (0: its default)")
    ap.add_argument("batch")
    a = ap.parse_args()
    core = ov.Core()
    config = {}
    if a.precision_hint == "f32":
        config["INFERENCE_PRECISION_HINT"] = "f32"
    if a.threads > 0:
        config["INFERENCE_NUM_THREADS"] = a.threads
    in_effect = config.get("INFERENCE_PRECISION_HINT", core.get_property("CPU", "INFERENCE_PRECISION_HINT"))
    print(f"openvino_runner: openvino {ov.__version__} CPU precision hint {in_effect} "
          f"({a.precision_hint})", file=sys.stderr)
    # No backward: gnv.runner declines a case with dy (SKIPPED); run gnv with --no-backward.
    kernel = gnv.Kernel(lambda x, gamma, beta, G, eps: group_norm(x, gamma, beta, G, eps, core, config),
                        name="openvino")
    gnv.runner.serve(kernel, a.batch)


if __name__ == "__main__":
    main()
