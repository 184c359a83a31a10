# gnv repro snippet: Tencent's ncnn, a one-layer network `GroupNorm` (0=groups 1=channels 2=eps
# 3=affine) on the CPU, one thread, ncnn's default options, as adapters/ncnn_runner.py runs it:
# each sample as a (C, 1, S) float32 Mat (cloned from a copy that stays alive until the output is
# copied out), gamma then beta as the layer's raw float32 model data.
import ncnn

FRAMEWORK = f"ncnn {ncnn.__version__} (CPU)"


def group_norm(x, groups, gamma, beta, eps, layout):
    N, C = x.shape[:2]
    S = int(np.prod(x.shape[2:])) if x.ndim > 2 else 1
    net = ncnn.Net()
    net.opt.num_threads = 1
    affine = gamma is not None
    net.load_param_mem("7767517\n2 2\nInput data 0 1 data\n"
                       f"GroupNorm gn 1 1 data out 0={int(groups)} 1={int(C)} 2={float(eps):.17e} 3={int(affine)}\n")
    if affine:
        net.load_model_mem(np.concatenate([np.asarray(gamma, np.float32), np.asarray(beta, np.float32)]).tobytes())
    else:
        net.load_model(ncnn.DataReaderFromEmpty())
    y = np.empty((N, C, S), np.float32)
    for n in range(N):
        xa = np.array(x[n].reshape(C, 1, S), dtype=np.float32, order="C", copy=True)
        mat = ncnn.Mat(xa).clone()
        with net.create_extractor() as ex:
            ex.input("data", mat)
            _, out = ex.extract("out")
            y[n] = np.array(out, copy=True).reshape(C, S)
    return y.reshape(x.shape)
