"""gnv.validate and gnv.check: whole grids through the C++ sweep, verdicts and messages."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import gnv
import kernels


def test_correct_numpy_kernel_passes_every_smoke_case(tmp_path):
    v = gnv.validate(kernels.correct, preset="smoke", out=tmp_path / "v", html=False)
    verdicts = {c["verdict"] for c in v.cells}
    assert v.passed and verdicts == {"PASS"}, [c for c in v.cells if c["verdict"] != "PASS"][:3]
    # every dtype and layout, forward and backward
    assert {c["problem"]["dtype"] for c in v.cells} == {"f64", "f32", "f16", "bf16"}
    assert {c["problem"]["layout"] for c in v.cells} == {"nchw", "nhwc"}
    assert all(c["backward"] for c in v.cells) and len(v.cells) > 700
    assert os.path.exists(tmp_path / "v" / "junit.xml") and os.path.exists(tmp_path / "v" / "report.md")


def test_onepass_breaks_down_at_offset_1e1(tmp_path):
    v = gnv.validate(kernels.onepass, preset="smoke", dtypes=["f32"], out=tmp_path / "v", html=False)
    assert not v.passed
    offsets = {}
    for c in v.cells:
        if c["verdict"] == "FAIL" and c["stress"].startswith("offset:"):
            key = c["problem"]["layout"]
            offsets[key] = min(offsets.get(key, 1e9), float(c["stress"].split(":")[1]))
    assert offsets == {"nchw": 10.0, "nhwc": 10.0}
    # below the breakdown it passes
    assert all(c["verdict"] == "PASS" for c in v.cells if c["stress"] == "normal")
    # a module-level kernel's cells replay from the shell, through gnv.runner
    assert "-m gnv.runner" in v.report["grid"]["external"]["numpy-onepass"]
    cell = next(c for c in v.cells if c["verdict"] == "FAIL" and c.get("case_dir"))
    # from inside Python the command is "gnv": the one pip installed beside this Python
    assert cell["replay"].startswith("gnv check --case cases/"), cell["replay"]
    env = dict(os.environ, PATH=os.path.dirname(gnv_bin_of_package()) + os.pathsep + os.environ["PATH"])
    p = subprocess.run(cell["replay"], shell=True, cwd=tmp_path / "v", capture_output=True, text=True, env=env)
    assert p.returncode == 1 and "verdict: FAIL" in p.stdout, p.stdout + p.stderr


def gnv_bin_of_package():
    return shutil.which("gnv", path=os.path.dirname(sys.executable)) or "gnv"


def test_a_kernel_gnv_runner_cannot_import_has_no_replay_route(tmp_path):
    v = gnv.validate(lambda x, g, b, G, e: kernels.forward(x, g, b, G, e), name="anon", shapes=["2,4"], groups=[2],
                     stresses=["normal"], dtypes=["f32"], out=tmp_path / "v", html=False)
    assert v.passed and "anon" not in v.report["grid"].get("external", {})


def test_failure_message_is_gnv_checks():
    case = next(gnv.cases(shapes=["2,32,8,8"], groups=[8], dtypes=["f32"], layouts=["nhwc"], stresses=["offset:1000"]))
    with pytest.raises(AssertionError) as e:
        gnv.assert_passes(case, kernels.onepass)
    text = str(e.value)
    for word in ("check numpy-onepass: shape=2,32,8,8 G=8", "stress=offset:1000", "y      FAIL", "max_cond_err=",
                 "budget=", "worst n=", "expected=", "actual=", "kappa", "verdict: FAIL", "reproduce: "):
        assert word in text, (word, text)
    r = gnv.check(case, kernels.correct)
    assert r and r.verdict == "PASS" and r.outputs["y"]["max_cond_err"] <= r.outputs["y"]["budget"]


def test_unsupported_is_skipped_and_an_exception_is_that_cells_error(tmp_path):
    def picky(x, gamma, beta, groups, eps):
        if x.dtype == np.float16:
            raise gnv.Unsupported("no f16 here")
        if x.dtype == np.float64:
            raise ZeroDivisionError("boom in f64")
        return kernels.forward(x, gamma, beta, groups, eps)

    v = gnv.validate(picky, shapes=["2,8,5"], groups=[2], stresses=["normal"], out=tmp_path / "v", html=False)
    by = {c["problem"]["dtype"]: c for c in v.cells if c["problem"]["layout"] == "nchw"}
    assert by["f16"]["verdict"] == "SKIPPED" and "no f16 here" in by["f16"]["error"]
    assert by["f64"]["verdict"] == "ERROR" and by["f64"]["error"] == "ZeroDivisionError: boom in f64"
    assert by["f32"]["verdict"] == "PASS" and by["bf16"]["verdict"] == "PASS"
    assert not v.passed


@pytest.mark.parametrize("bad, message", [
    (lambda x, g, b, G, e: kernels.forward(x, g, b, G, e).astype(np.float64), "dtype float64, expected float32"),
    (lambda x, g, b, G, e: kernels.forward(x, g, b, G, e)[:1], "shape (1, 8, 5), expected (2, 8, 5)"),
    (lambda x, g, b, G, e: "y", "y: expected a numpy array, got str"),
    (lambda x, g, b, G, e: (x, x, x, x), "returned 4 values"),
])
def test_a_kernel_returning_the_wrong_thing_is_an_error_naming_it(bad, message):
    case = next(gnv.cases(shapes=["2,8,5"], groups=[2], dtypes=["f32"], layouts=["nchw"], stresses=["normal"]))
    r = gnv.check(case, bad)
    assert r.verdict == "ERROR" and message in r.error, r.error


def test_a_kernel_named_like_a_builtin_is_refused_and_the_builtin_stays(tmp_path):
    with pytest.raises(ValueError, match="an implementation named 'naive' is already registered"):
        gnv.validate(kernels.correct, name="naive", shapes=["2,4"], groups=[2], out=tmp_path / "v")
    assert gnv.cli(["check", "--impl", "naive", "--shape", "2,4", "--groups", "2"]) == 0
    assert kernels.correct.name == "numpy-longdouble"  # renamed for the run, not for good


def test_validate_bad_usage_raises_gnv_error(tmp_path):
    with pytest.raises(gnv.GnvError, match="--section nope"):
        gnv.validate(kernels.correct, preset="smoke", sections=["nope"], out=tmp_path / "v")
    assert not (tmp_path / "v").exists()
    with pytest.raises(gnv.GnvError, match="G"):
        gnv.validate(kernels.correct, shapes=["2,6"], groups=[4], out=tmp_path / "v")


def _cells(report):
    out = {}
    for c in report["cells"]:
        key = "/".join(c["id"].split("/")[1:]) if "id" in c else None
        key = key or f"{c['problem']['dtype']}/{c['problem']['layout']}/{c['section']}/{c['shape_name']}/" \
                     f"G{c['problem']['G']}/{c['stress']}/s{c['seed']}"
        out[key] = (c["verdict"], [(o["name"], o.get("max_cond_err"), o.get("max_ulp")) for o in c.get("outputs", [])])
    return out


def test_validate_equals_the_cli_with_the_runner_route(tmp_path, gnv_bin):
    opts = dict(shapes=["2,12,3,5"], groups=[3], affine=True, stresses=["normal", "offset:100", "special"],
                dtypes=["f32", "bf16"])
    v = gnv.validate(kernels.correct, out=tmp_path / "py", html=False, **opts)
    runner = f"{sys.executable} -m gnv.runner {os.path.join(os.path.dirname(__file__), 'kernels.py')}:correct"
    cmd = [gnv_bin, "validate", "--runner", runner, "--runner-name", "numpy-longdouble", "--no-stats", "--no-html",
           "--out", str(tmp_path / "cli"), "--shape", "2,12,3,5", "--groups", "3", "--affine",
           "--stress", "normal,offset:100,special", "--dtype", "f32,bf16"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    with open(tmp_path / "cli" / "report.json") as f:
        cli = json.load(f)
    a, b = _cells(v.report), _cells(cli)
    assert a.keys() == b.keys() and len(a) == 12
    assert a == b


def test_judge_of_outputs_computed_elsewhere():
    case = next(gnv.cases(shapes=["2,8,5"], groups=[2], affine=True, dtypes=["f32"], layouts=["nhwc"],
                          stresses=["offset:1000"], backward=True))
    exact = case.oracle()
    outs = {n: exact[n] for n in ("y", "mean", "rstd", "dx", "dgamma", "dbeta")}
    r = gnv.judge(case, outs)
    assert r.passed and set(r.outputs) == {"y", "mean", "rstd", "dx", "dgamma", "dbeta"}
    assert all(o["max_ulp"] == 0 for o in r.outputs.values())
    bad = dict(outs, rstd=exact["rstd"] * np.float32(1.001))
    r = gnv.judge(case, bad)
    assert r.verdict == "FAIL" and r.outputs["rstd"]["verdict"] == "FAIL" and r.outputs["mean"]["verdict"] == "PASS"
    # statistics in another arrangement of the N*G values are refused, not silently reordered
    case4 = next(gnv.cases(shapes=["2,8,5"], groups=[4], dtypes=["f32"], layouts=["nchw"], stresses=["normal"]))
    e4 = case4.oracle()
    assert gnv.judge(case4, {"y": e4["y"], "mean": e4["mean"][:, :, None], "rstd": e4["rstd"].ravel()}).passed
    with pytest.raises(ValueError, match=r"mean: shape \(4, 2\), expected \(2, 4\)"):
        gnv.judge(case4, {"y": e4["y"], "mean": e4["mean"].T.copy(), "rstd": e4["rstd"]})


def test_a_scale_past_doubles_range_is_judged_and_shown():
    # f64, gamma and beta near the maximum: y's condition scale passes 1.8e308 while u * scale does
    # not, so a wrong y is judged (FAIL), and its worst element's scale is the decimal string of the
    # long double it was judged with, not "inf" (docs/numerics.md "Scales past double's range").
    x = np.array([[[0.0, 1.0]]])
    case = gnv.make_case(x, 1, gamma=np.array([1.5e308]), beta=np.array([1e308]), eps=0.0)
    r = gnv.judge(case, {"y": np.array([[[7.0, -1.0]]])})
    worst = r.outputs["y"]["worst"]
    assert r.outputs["y"]["verdict"] == "FAIL" and r.outputs["y"]["ill_posed"] == 0
    assert isinstance(worst["scale"], str) and np.isfinite(np.longdouble(worst["scale"])), worst
    assert np.longdouble(worst["scale"]) > np.longdouble(np.finfo(np.float64).max), worst


def test_keyboard_interrupt_in_a_kernel_stops_the_run(tmp_path):
    calls = []

    def interrupted(x, gamma, beta, groups, eps):
        calls.append(1)
        raise KeyboardInterrupt

    case = next(gnv.cases(shapes=["2,8,5"], groups=[2], dtypes=["f32"], layouts=["nchw"], stresses=["normal"]))
    with pytest.raises(KeyboardInterrupt):
        gnv.check(case, interrupted)
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        gnv.validate(interrupted, preset="smoke", jobs=1, out=tmp_path / "v", html=False)
    assert len(calls) == 1  # the cells after it were not run
    assert gnv.check(case, kernels.correct).passed  # and the next run is not affected


def test_statistics_and_declared_dtypes_of_a_kernel():
    def with_stats(x, gamma, beta, groups, eps):
        case_mean = x.astype(np.float64).reshape(x.shape[0], groups, -1).mean(-1).astype(np.float32)
        return kernels.forward(x, gamma, beta, groups, eps), case_mean, np.ones_like(case_mean)

    case = next(gnv.cases(shapes=["2,8,5"], groups=[2], dtypes=["f32"], layouts=["nchw"], stresses=["normal"]))
    r = gnv.check(case, gnv.Kernel(with_stats, statistics=True))
    assert r.outputs["mean"]["verdict"] == "PASS" and r.outputs["rstd"]["verdict"] == "FAIL"  # rstd = 1 is wrong
    r = gnv.check(case, gnv.Kernel(kernels.forward, dtypes=["f64"]))
    assert r.verdict == "SKIPPED", r.text


def test_gnv_cli_runs_each_plugin_call_in_a_fresh_gnv_process(tmp_path):
    # The test plugin of mode 19 (tests/plugins/test_plugin.c) fails a call made in any process
    # other than a freshly executed host: from Python, the gnv executable installed with the package.
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    so = str(tmp_path / "libtest_plugin_fresh.so")
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-DGNV_TEST_MODE=19", '-DGNV_TEST_NAME="test_fresh"',
                    "-I", os.path.join(root, "include"), os.path.join(root, "tests", "plugins", "test_plugin.c"),
                    "-o", so, "-lm"], check=True)
    out = str(tmp_path / "v")
    assert gnv.cli(["validate", "--plugin", so, "--dtype", "f32", "--section", "small", "--stress", "normal",
                    "--no-html", "--out", out]) == 0
    with open(os.path.join(out, "report.json")) as f:
        cells = json.load(f)["cells"]
    assert cells and all(c["verdict"] == "PASS" for c in cells)


def test_gnv_runner_writes_a_multi_line_error_on_one_line(tmp_path):
    # Framework errors often say only where they were raised on their first line (OpenVINO:
    # "Exception from src/inference/src/cpp/core.cpp:117:"); the cause follows.
    import gnv.runner

    case = next(gnv.cases(shapes=["2,8"], groups=[2], dtypes=["f32"], layouts=["nchw"], stresses=["normal"]))
    case.save(tmp_path / "batch" / "c0")
    os.remove(tmp_path / "batch" / "c0" / "dy.npy")  # forward only

    def broken(x, gamma, beta, groups, eps):
        raise RuntimeError("Exception from core.cpp:117:\n\n  Check 'idx < rank' failed\nthe cause\n")

    gnv.runner.serve(gnv.Kernel(broken, name="broken"), str(tmp_path / "batch"))
    with open(tmp_path / "batch" / "c0" / "error.txt") as f:
        assert f.read() == "RuntimeError: Exception from core.cpp:117: | Check 'idx < rank' failed | the cause\n"
