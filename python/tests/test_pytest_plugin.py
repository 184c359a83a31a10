"""The pytest plugin: the marker's parametrization, the failure message, --gnv-report."""
import json
import os

KERNELS = os.path.dirname(__file__)

TEST_FILE = f"""
import sys
sys.path.insert(0, {KERNELS!r})
import pytest, gnv, kernels

@pytest.mark.gnv(shapes=["2,8,4"], groups=[2], dtypes=["f32"], layouts=["nchw", "nhwc"],
                 stresses=["normal", "offset:1000"])
def test_correct(gnv_case):
    gnv.assert_passes(gnv_case, kernels.correct)

@pytest.mark.gnv(shapes=["2,8,4"], groups=[2], dtypes=["f32"], layouts=["nhwc"], stresses=["offset:1000"])
def test_onepass(gnv_case):
    gnv.assert_passes(gnv_case, kernels.onepass)
"""


def test_marker_ids_message_and_report(pytester):
    pytester.makepyfile(test_k=TEST_FILE)
    out = pytester.path / "rep"
    r = pytester.runpytest_subprocess("--gnv-report", str(out), "-v")
    r.assert_outcomes(passed=4, failed=1)
    r.stdout.fnmatch_lines([
        "*test_correct?f32-nchw-2x8x4-G2-normal-s0? PASSED*",
        "*test_correct?f32-nhwc-2x8x4-G2-offset:1000-s0? PASSED*",
        "*check numpy-onepass: shape=2,8,4 G=2*stress=offset:1000*",
        "*verdict: FAIL*",
        "*reproduce: pytest 'test_k.py::test_onepass?f32-nhwc-2x8x4-G2-offset:1000-s0?'*",
        "gnv: 5 cell(s), NOT all passed: wrote *rep/report.json, report.md, junit.xml",
    ])
    with open(out / "report.json") as f:
        report = json.load(f)
    verdicts = sorted((c["impl"], c["verdict"]) for c in report["cells"])
    assert verdicts == [("numpy-longdouble", "PASS")] * 4 + [("numpy-onepass", "FAIL")]
    assert report["grid"]["preset"] == "pytest"


def test_the_fixture_without_a_marker_is_a_usage_error(pytester):
    pytester.makepyfile(test_k="def test_x(gnv_case):\n    pass\n")
    r = pytester.runpytest_subprocess()
    assert r.ret != 0
    r.stdout.fnmatch_lines(["*gnv_case fixture needs @pytest.mark.gnv*"])
