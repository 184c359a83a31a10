# gnv repro snippet: OpenVINO's GroupNormalization (opset12) on the CPU plugin, as
# adapters/openvino_runner.py runs it: one inference thread, the plugin's default inference
# precision (which may be lower than the model's dtype), x as (N, C, *spatial).
import openvino as ov
import openvino.opset12 as ops

CORE = ov.Core()
FRAMEWORK = f"openvino {ov.__version__} (CPU plugin, precision hint {CORE.get_property('CPU', 'INFERENCE_PRECISION_HINT')})"


def group_norm(x, groups, gamma, beta, eps, layout):
    et = {np.dtype(np.float64): ov.Type.f64, np.dtype(np.float32): ov.Type.f32, np.dtype(np.float16): ov.Type.f16}[x.dtype]
    C = x.shape[1]
    if gamma is None:
        gamma, beta = np.ones(C, dtype=x.dtype), np.zeros(C, dtype=x.dtype)
    px = ops.parameter(list(x.shape), et, name="x")
    ps = ops.parameter([C], et, name="scale")
    pb = ops.parameter([C], et, name="bias")
    model = ov.Model([ops.group_normalization(px, ps, pb, int(groups), float(eps))], [px, ps, pb], "groupnorm")
    compiled = CORE.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": 1})
    request = compiled.create_infer_request()
    request.infer([ov.Tensor(np.ascontiguousarray(a)) for a in (x, gamma, beta)])
    return np.array(request.get_output_tensor(0).data, copy=True).reshape(x.shape)
