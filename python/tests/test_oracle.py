"""gnv.oracle and cases: the same bits as the command line, and bad input refused by name."""
import subprocess

import numpy as np
import pytest

import gnv
from gnv import _arrays


@pytest.mark.parametrize("dtype", ["f64", "f32", "f16", "bf16"])
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_oracle_equals_gnv_oracle_bit_for_bit(tmp_path, gnv_bin, dtype, layout):
    case = next(gnv.cases(shapes=["2,6,3,5"], groups=[3], affine=True, dtypes=[dtype], layouts=[layout],
                          stresses=["offset:1000"], seeds=[7]))
    case.save(tmp_path / "case")
    subprocess.run([gnv_bin, "oracle", "--case", str(tmp_path / "case"), "--out", str(tmp_path / "o")], check=True,
                   capture_output=True)
    # the case read back from its files, and the case made from the caller's arrays
    from_arrays = gnv.oracle(case.x, case.groups, case.gamma, case.beta, case.eps, layout, dy=case.dy)
    for got in (gnv.load_case(tmp_path / "case").oracle(), from_arrays):
        assert sorted(k for k in got if k not in ("undecided", "fallbacks")) == [
            "dbeta", "dgamma", "dx", "mean", "rstd", "y"]
        assert got["undecided"] == 0 and got["fallbacks"] == 0
        for name in ("y", "mean", "rstd", "dx", "dgamma", "dbeta"):
            want = np.load(tmp_path / "o" / f"{name}.npy")  # physical order; bf16 as <u2 bits
            mine = got[name]
            if name in ("y", "dx") and layout == "nhwc":
                mine = np.moveaxis(mine, 1, -1)
            mine = np.ascontiguousarray(mine)
            assert mine.shape == want.shape
            assert mine.view(np.uint8).tobytes() == want.view(np.uint8).tobytes(), name


def test_cases_are_the_cli_sweeps_cases(tmp_path, gnv_bin):
    specs = gnv.case_specs(preset="smoke", dtypes=["f16"], layouts=["nhwc"])
    ids = [s.id for s in specs]
    assert len(ids) == len(set(ids)) and "f16-nhwc-2x32x8x8-G8-offset:10000-s0" in ids
    spec = specs[ids.index("f16-nhwc-2x32x8x8-G8-offset:10000-s0")]
    case = spec.make()
    assert case.x.shape == (2, 32, 8, 8) and case.x.strides[1] == 2  # channels-last strides
    subprocess.run([gnv_bin, "check", "--impl", "naive", "--shape", "2,32,8,8", "--groups", "8", "--dtype", "f16",
                    "--layout", "nhwc", "--stress", "offset:10000", "--seed", "0", "--backward", "--save-case",
                    str(tmp_path / "c")], check=True, capture_output=True)
    saved = gnv.load_case(tmp_path / "c")
    for name in ("x", "dy"):
        assert getattr(saved, name).tobytes() == getattr(case, name).tobytes()


def test_any_strides_are_read_by_value():
    x = np.random.default_rng(1).normal(size=(2, 8, 6, 4)).astype(np.float32)
    strided = np.asfortranarray(x)
    a, b = gnv.oracle(x, 4), gnv.oracle(strided, 4)
    assert a["y"].tobytes() == b["y"].tobytes()


def test_bf16_through_ml_dtypes():
    x = np.random.default_rng(2).normal(size=(1, 4, 9)).astype(_arrays.numpy_dtype("bf16"))
    o = gnv.oracle(x, 2)
    assert o["y"].dtype == x.dtype and o["mean"].dtype == np.float32 and o["mean"].shape == (1, 2)


@pytest.mark.parametrize("call, error, match", [
    (lambda x: gnv.oracle(x[0, 0], 2), ValueError, r"x: shape \(5,\)"),
    (lambda x: gnv.oracle(x, 4), ValueError, "G: C = 6 is not divisible by G = 4"),
    (lambda x: gnv.oracle(x.astype(np.int32), 2), TypeError, "x: dtype int32 is not one gnv checks"),
    (lambda x: gnv.oracle(x, 2, eps=float("nan")), ValueError, "eps"),
    (lambda x: gnv.oracle(x, 2, gamma=np.ones(6, np.float64), beta=np.zeros(6, np.float32)), TypeError,
     "gamma: dtype float64, but x is float32"),
    (lambda x: gnv.oracle(x, 2, gamma=np.ones(5, np.float32), beta=np.zeros(5, np.float32)), ValueError,
     r"gamma: shape \(5,\)"),
    (lambda x: gnv.oracle(x, 2, gamma=np.ones(6, np.float32)), ValueError, "give both or neither"),
    (lambda x: gnv.oracle(x.tolist(), 2), TypeError, "expected a numpy array"),
    (lambda x: gnv.oracle(x, 2, layout="nwhc"), ValueError, "layout"),
    (lambda x: gnv.oracle(x, 2.0), TypeError, "groups"),
])
def test_bad_input_raises_naming_the_problem(call, error, match):
    x = np.ones((2, 6, 5), np.float32)
    with pytest.raises(error, match=match):
        call(x)


def test_bad_case_directory_and_grid(tmp_path):
    with pytest.raises(ValueError, match="case.json"):
        gnv.load_case(tmp_path)
    (tmp_path / "g.toml").write_text("name = 1\n")
    with pytest.raises(ValueError, match="g.toml"):
        gnv.case_specs(grid=tmp_path / "g.toml")


def test_cli_in_process():
    assert gnv.cli(["list", "--json"]) == 0
    assert gnv.cli(["check", "--impl", "nope", "--shape", "2,4", "--groups", "2"]) == 2
    assert gnv._core.last_error().startswith("unknown implementation 'nope'")
