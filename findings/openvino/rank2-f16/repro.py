#!/usr/bin/env python3
"""OpenVINO's CPU plugin cannot compile GroupNormalization on a 2-d (N, C) f16 input.

Hand-written (gnv repro writes reproducers of wrong values; this case is an ERROR: the model does
not compile). Needs numpy and openvino. Builds the one-node model of adapters/openvino_runner.py
for x of shape (1, 2), G = 1, scale 1, bias 0, and compiles it for the CPU plugin under its default
inference precision, then under INFERENCE_PRECISION_HINT=f32 and for f32 input; prints what each
gives. Exits 1 when the default-precision f16 model fails to compile (the defect), 0 when it
compiles (fixed).
"""
import sys

import numpy as np
import openvino as ov
import openvino.opset12 as ops


def compile_and_run(et, npdt, config):
    px = ops.parameter([1, 2], et, name="x")
    ps = ops.parameter([2], et, name="scale")
    pb = ops.parameter([2], et, name="bias")
    model = ov.Model([ops.group_normalization(px, ps, pb, 1, 1e-5)], [px, ps, pb], "groupnorm")
    compiled = ov.Core().compile_model(model, "CPU", config)
    req = compiled.create_infer_request()
    req.infer([ov.Tensor(np.array([[0.5, 0.375]], dtype=npdt)), ov.Tensor(np.ones(2, npdt)), ov.Tensor(np.zeros(2, npdt))])
    return np.array(req.get_output_tensor(0).data)


print(f"openvino {ov.__version__}, CPU default precision hint "
      f"{ov.Core().get_property('CPU', 'INFERENCE_PRECISION_HINT')}")
failed = False
for label, et, npdt, config in [("f16, default hint", ov.Type.f16, np.float16, {}),
                                ("f16, hint f32", ov.Type.f16, np.float16, {"INFERENCE_PRECISION_HINT": "f32"}),
                                ("f32, default hint", ov.Type.f32, np.float32, {})]:
    try:
        print(f"{label}: y = {compile_and_run(et, npdt, config).tolist()}")
    except Exception as e:  # noqa: BLE001: the defect is the exception
        lines = str(e).splitlines()
        print(f"{label}: {type(e).__name__}: {next((s for s in lines if 'Check' in s), lines[0])[:300]}")
        failed = failed or label.startswith("f16, default")
print("exact y (gnv's oracle): [0.99872245236883705, -0.99872245236883705]")
print("FAIL: the 2-d f16 model does not compile" if failed else "PASS: the 2-d f16 model compiles")
sys.exit(1 if failed else 0)
