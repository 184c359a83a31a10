# gnv repro snippet: OpenVINO's GroupNormalization (opset12) on the CPU plugin, as
# adapters/openvino_runner.py runs it: one inference thread, the plugin's default inference
# precision (which may be lower than the model's dtype), x as (N, C, *spatial). With BFLOAT16 the
# float32-held values go in as bf16 (their top halves, exactly) and y comes back as float32.
import openvino as ov
import openvino.opset12 as ops

CORE = ov.Core()
FRAMEWORK = f"openvino {ov.__version__} (CPU plugin, precision hint {CORE.get_property('CPU', 'INFERENCE_PRECISION_HINT')})"


def _tensor(a):
    a = np.ascontiguousarray(a)
    if not BFLOAT16:
        return ov.Tensor(a)
    t = ov.Tensor(ov.Type.bf16, ov.Shape(list(a.shape)))
    np.copyto(t.data.view(np.uint16), (a.view(np.uint32) >> 16).astype(np.uint16))
    return t


def group_norm(x, groups, gamma, beta, eps, layout):
    et = ov.Type.bf16 if BFLOAT16 else {np.dtype(np.float64): ov.Type.f64, np.dtype(np.float32): ov.Type.f32,
                                        np.dtype(np.float16): ov.Type.f16}[x.dtype]
    C = x.shape[1]
    if gamma is None:
        gamma, beta = np.ones(C, dtype=x.dtype), np.zeros(C, dtype=x.dtype)
    px = ops.parameter(list(x.shape), et, name="x")
    ps = ops.parameter([C], et, name="scale")
    pb = ops.parameter([C], et, name="bias")
    model = ov.Model([ops.group_normalization(px, ps, pb, int(groups), float(eps))], [px, ps, pb], "groupnorm")
    compiled = CORE.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": 1})
    request = compiled.create_infer_request()
    request.infer([_tensor(a) for a in (x, gamma, beta)])
    y = np.array(request.get_output_tensor(0).data, copy=True)
    if BFLOAT16:
        y = (y.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    return y.reshape(x.shape)
