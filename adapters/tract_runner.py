#!/usr/bin/env python3
"""gnv external runner for tract's ONNX GroupNormalization (sonos/tract, its Python binding), forward only.

  gnv validate --runner 'build/venv-tract/bin/python adapters/tract_runner.py --opset 21' \\
      --runner-name tract --no-stats --no-backward ...

For every case the runner builds the same one-node ONNX model as adapters/ort_runner.py
(adapters/onnx_groupnorm.py: opsets 21 and 18, opset 18's per-group scale/bias handled as
described there; at opset 21 --stash-type sets the stash_type attribute, whose ONNX default is
float32 for every input type), writes it to a temporary file, loads it with tract.onnx(), turns it into a
typed model and a runnable (tract's own optimisation, into_model().into_runnable()) and runs it.

What tract does not give, and how the runner says so:
  * mean and rstd: the operator has one output. Run gnv with --no-stats.
  * gradients: tract is an inference engine; a case with dy.npy is declined (SKIPPED). Run gnv
    with --no-backward.
dtypes: whatever tract's ONNX front end accepts; its errors become the cell's error.
"""
import argparse
import os
import sys
import tempfile
from importlib.metadata import version

import onnx

import gnv
import gnv.runner
import onnx_groupnorm  # adapters/onnx_groupnorm.py, beside this file
import tract


def group_norm(x, gamma, beta, G, eps, a, tmp):
    model, feeds = onnx_groupnorm.model_and_feeds(x, gamma, beta, G, eps, a.opset, a.opset18_affine, a.stash_type)
    path = os.path.join(tmp, "model.onnx")
    onnx.save(model, path)
    runnable = tract.onnx().load(path).into_model().into_runnable()
    order = [i.name for i in model.graph.input]
    (y,) = runnable.run([feeds[name] for name in order])
    return y.to_numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    onnx_groupnorm.add_arguments(ap)
    ap.add_argument("batch")
    a = ap.parse_args()
    print(f"tract_runner: tract {version('tract')} onnx {onnx.__version__} opset={a.opset} "
          f"opset18_affine={a.opset18_affine} stash_type={a.stash_type}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="gnv-tract-") as tmp:
        kernel = gnv.Kernel(lambda x, gamma, beta, G, eps: group_norm(x, gamma, beta, G, eps, a, tmp),
                            name=f"tract-opset{a.opset}")
        gnv.runner.serve(kernel, a.batch)


if __name__ == "__main__":
    main()
