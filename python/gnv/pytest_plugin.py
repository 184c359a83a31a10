"""gnv's pytest plugin (entry point pytest11 "gnv", active once the package is installed).

    @pytest.mark.gnv(preset="smoke", dtypes=["f32"])
    def test_my_kernel(gnv_case):
        gnv.assert_passes(gnv_case, my_group_norm)

- The marker takes gnv.case_specs' options (preset, grid, dtypes, layouts, sections, stresses,
  seeds, shapes, groups, eps, affine, epilogue, backward) and parametrizes the `gnv_case` fixture over the
  grid's cases, with ids such as f32-nhwc-2x32x8x8-G8-offset:10000-s0. Cases are generated when
  the test runs.
- gnv.assert_passes fails the test with what `gnv check` prints, and `reproduce: pytest NODEID`.
- `pytest --gnv-report DIR` writes the report (report.json, report.md, junit.xml) of every
  gnv.check / gnv.judge of a grid case in the session, as `gnv sweep` writes it.
"""
import shlex

import pytest

import gnv
from gnv import _core


def pytest_addoption(parser):
    group = parser.getgroup("gnv", "gnv: GroupNorm kernels against the exact oracle")
    group.addoption("--gnv-report", metavar="DIR", default=None,
                    help="write the report of every gnv check of a grid case in this session into DIR "
                         "(report.json, report.md, junit.xml), as `gnv sweep` does")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "gnv(preset=None, grid=None, dtypes=None, layouts=None, ...): parametrize the gnv_case fixture over the "
        "cases of a gnv grid (options as gnv.case_specs)")
    gnv._session["record"] = bool(config.getoption("--gnv-report"))


def pytest_generate_tests(metafunc):
    if "gnv_case" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("gnv")
    if marker is None:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: the gnv_case fixture needs @pytest.mark.gnv(...) "
                                "naming a grid (e.g. preset='smoke')")
    if marker.args:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: @pytest.mark.gnv takes keyword arguments only")
    try:
        specs = gnv.case_specs(**marker.kwargs)
    except (TypeError, ValueError) as e:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: @pytest.mark.gnv: {e}") from None
    metafunc.parametrize("gnv_case", specs, ids=[s.id for s in specs], indirect=True)


@pytest.fixture
def gnv_case(request):
    """A gnv.Case of the grid named by @pytest.mark.gnv."""
    return request.param.make()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    gnv._session["reproduce"] = "pytest " + shlex.quote(item.nodeid)
    try:
        yield
    finally:
        gnv._session["reproduce"] = None


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    out = config.getoption("--gnv-report")
    if not out:
        return
    if _core.recorded_count() == 0:
        terminalreporter.write_line(f"gnv: no check of a grid case ran: no report written to {out}")
        return
    files, passed, cells = _core.write_recorded_report(out, False)
    terminalreporter.write_line(f"gnv: {cells} cell(s), {'all passed' if passed else 'NOT all passed'}: "
                                f"wrote {out}/{files}")
