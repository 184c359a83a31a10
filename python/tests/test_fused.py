"""The fused forms from Python (issue 21): the SiLU epilogue and per-sample parameters through
gnv.make_case, gnv.oracle, gnv.check, gnv.judge and the runner route, and the refusals."""
import os
import subprocess
import sys

import numpy as np
import pytest

import gnv
import kernels


def _arrays(dtype=np.float32, per_sample=True, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(3.0, 2.0, (2, 6, 4, 3)).astype(dtype)
    pshape = (2, 6) if per_sample else (6,)
    gamma = (1 + 0.5 * rng.normal(size=pshape)).astype(dtype)
    beta = rng.normal(size=pshape).astype(dtype)
    dy = rng.normal(size=x.shape).astype(dtype)
    return x, gamma, beta, dy


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("per_sample", [False, True])
def test_a_correct_fused_kernel_passes_and_an_unfused_one_fails(layout, per_sample):
    x, gamma, beta, dy = _arrays(per_sample=per_sample)
    case = gnv.make_case(x, 3, gamma, beta, layout=layout, dy=dy, epilogue="silu")
    assert case.epilogue == "silu"
    assert case.affine_mode == ("per-sample" if per_sample else "per-channel")
    assert case.gamma.shape == gamma.shape
    r = gnv.check(case, kernels.fused)
    assert r.passed, r.text
    assert set(r.outputs) >= {"y", "dx", "dgamma", "dbeta"}
    # The same arithmetic without the epilogue is judged against the fused answer, and fails.
    plain = gnv.Kernel(lambda x, g, b, G, eps, epilogue="none": kernels.forward(x, g, b, G, eps),
                       name="forgets-silu", epilogues=["silu"], per_sample=True)
    assert gnv.check(case, plain, backward=False).verdict == "FAIL"


def test_a_kernel_that_does_not_declare_a_form_is_skipped_not_called():
    x, gamma, beta, dy = _arrays(per_sample=False)
    silu_case = gnv.make_case(x, 3, gamma, beta, dy=dy, epilogue="silu")
    r = gnv.check(silu_case, kernels.correct)
    assert r.verdict == "SKIPPED" and "epilogue silu" in r.error, r.text
    x, gamma, beta, dy = _arrays(per_sample=True)
    r = gnv.check(gnv.make_case(x, 3, gamma, beta, dy=dy), kernels.correct)
    assert r.verdict == "SKIPPED" and "per-sample" in r.error, r.text


def test_judge_of_the_oracles_own_outputs_passes_and_of_plain_ones_fails():
    x, gamma, beta, dy = _arrays(np.float64)
    fused = gnv.oracle(x, 3, gamma, beta, dy=dy, epilogue="silu")
    case = gnv.make_case(x, 3, gamma, beta, dy=dy, epilogue="silu")
    outs = {k: fused[k] for k in ("y", "mean", "rstd", "dx", "dgamma", "dbeta")}
    assert gnv.judge(case, outs).passed
    plain = gnv.oracle(x, 3, gamma, beta, dy=dy)
    assert not np.array_equal(plain["y"], fused["y"])
    assert gnv.judge(case, {"y": plain["y"]}).verdict == "FAIL"


def test_bad_fused_input_is_a_named_error():
    x, gamma, beta, dy = _arrays()
    with pytest.raises(ValueError, match="epilogue 'gelu'"):
        gnv.make_case(x, 3, gamma, beta, epilogue="gelu")
    with pytest.raises(ValueError, match="gamma: shape"):
        gnv.make_case(x, 3, gamma[:1], beta)
    with pytest.raises(ValueError, match="epilogues: 'gelu'"):
        gnv.Kernel(kernels.forward, epilogues=["gelu"])


def test_the_runner_route_gets_fused_cases_only_when_declared(tmp_path, gnv_bin):
    runner = f"{sys.executable} -m gnv.runner {os.path.join(os.path.dirname(__file__), 'kernels.py')}:fused"
    args = [gnv_bin, "check", "--runner", runner, "--no-stats", "--dtype", "f32", "--shape", "2,6,5", "--groups", "3",
            "--affine", "per-sample", "--epilogue", "silu", "--backward"]
    p = subprocess.run(args + ["--runner-fused", "silu,per-sample"], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    p = subprocess.run(args, capture_output=True, text=True)
    assert p.returncode == 2 and "does not support epilogue silu" in p.stderr, p.stderr


def test_validate_and_case_specs_take_the_fused_forms(tmp_path):
    opts = dict(shapes=["2,8,5"], groups=[4], affine="per-sample", epilogue="silu", stresses=["normal", "offset:100"],
                dtypes=["f32"])
    specs = gnv.case_specs(**opts)
    assert specs and all(s.problem.epilogue == "silu" and s.problem.affine_mode == "per-sample" for s in specs)
    v = gnv.validate(kernels.fused, out=tmp_path / "fused", html=False, **opts)
    assert v.passed, v.report["summary"]
    assert v.report["version"] == 2
    shapes = v.report["grid"]["sections"][0]["shapes"]
    assert [s["name"] for s in shapes] == ["2x8x5-per-sample-silu"]
    assert all(c["problem"]["epilogue"] == "silu" for c in v.cells)
    # The plain kernel declares neither form: it can run no case of this grid, which is an error.
    with pytest.raises(gnv.GnvError, match="fused forms"):
        gnv.validate(kernels.correct, out=tmp_path / "plain", html=False, **opts)
    with pytest.raises(ValueError, match="affine 'per-group'"):
        gnv.case_specs(shapes=["2,8,5"], groups=[4], affine="per-group")
