#!/usr/bin/env python3
"""gnv external runner for ncnn's GroupNorm layer (Tencent's ncnn, PyPI wheel, CPU), forward only.

  gnv validate --runner 'build/venv-ncnn/bin/python adapters/ncnn_runner.py [--precision fp32]' \\
      --runner-name ncnn --no-stats --no-backward --dtype f32 ...

The network is one layer, `GroupNorm gn 1 1 data out 0=G 1=C 2=eps 3=affine`, loaded from a param
string; with affine its model data is gamma then beta as raw float32 (the layer's load_model reads
two arrays of C floats), without it an empty model (DataReaderFromEmpty). ncnn has no batch axis:
each sample runs as a (C, 1, S) Mat cloned from a float32 copy that stays alive until the output
is copied out. ncnn's API takes and returns float32, so the runner declines every other dtype
(gnv.Unsupported: SKIPPED). --precision default keeps ncnn's default options (fp16
storage and arithmetic where the CPU has them, packed layouts); fp32 turns the fp16 and bf16
options off. One thread. No statistics, no gradients: run gnv with --no-stats --no-backward.
"""
import argparse
import sys

import numpy as np

import gnv
import gnv.runner
import ncnn

FP_OPTIONS = ("use_fp16_storage", "use_fp16_arithmetic", "use_fp16_packed", "use_bf16_storage", "use_bf16_packed")


def net_for(C, groups, eps, gamma, beta, precision):
    net = ncnn.Net()
    net.opt.num_threads = 1
    if precision == "fp32":
        for o in FP_OPTIONS:
            setattr(net.opt, o, False)
    affine = gamma is not None
    if net.load_param_mem("7767517\n2 2\nInput data 0 1 data\n"
                          f"GroupNorm gn 1 1 data out 0={int(groups)} 1={int(C)} 2={float(eps):.17e} 3={int(affine)}\n"):
        raise RuntimeError("ncnn: load_param_mem failed")
    if affine:
        weights = np.concatenate([np.asarray(gamma, np.float32), np.asarray(beta, np.float32)])
        rc = net.load_model_mem(weights.tobytes())
    else:
        rc = net.load_model(ncnn.DataReaderFromEmpty())
    if rc not in (0, None):
        raise RuntimeError(f"ncnn: load_model failed ({rc})")
    return net


def group_norm(x, gamma, beta, groups, eps, precision):
    if x.dtype != np.float32:
        raise gnv.Unsupported(f"ncnn's Python API takes float32 only, not {x.dtype}")
    N, C = x.shape[:2]
    S = int(np.prod(x.shape[2:])) if x.ndim > 2 else 1
    net = net_for(C, groups, eps, gamma, beta, precision)
    y = np.empty((N, C, S), np.float32)
    for n in range(N):
        # ncnn.Mat(array) shares the array's memory and keeps numpy's layout, which extract()
        # crashes on: clone() makes an ncnn-laid-out copy. The array is a named copy kept alive
        # until the output is copied out: with an unnamed temporary, y came out wrong and
        # different run to run on strided, e.g. channels-last, inputs.
        xa = np.array(x[n].reshape(C, 1, S), dtype=np.float32, order="C", copy=True)
        mat = ncnn.Mat(xa).clone()
        with net.create_extractor() as ex:
            ex.input("data", mat)
            rc, out = ex.extract("out")
            if rc != 0:
                raise RuntimeError(f"ncnn: extract failed ({rc})")
            y[n] = np.array(out, copy=True).reshape(C, S)
        del mat, xa
    return y.reshape(x.shape)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--precision", choices=["default", "fp32"], default="default")
    ap.add_argument("batch")
    a = ap.parse_args()
    print(f"ncnn_runner: ncnn {ncnn.__version__} precision={a.precision}", file=sys.stderr)
    kernel = gnv.Kernel(lambda x, gamma, beta, G, eps: group_norm(x, gamma, beta, G, eps, a.precision),
                        name="ncnn")
    gnv.runner.serve(kernel, a.batch)


if __name__ == "__main__":
    main()
