"""gnv: how far is a GroupNorm kernel from the exact answer, on which inputs, and is that acceptable?

The Python face of gnv's C++ core (docs/python.md "From Python"). Cases, the correctly rounded oracle, the
metrics, budgets and verdicts, and the reports are the C++ code the `gnv` command runs; this
package converts arrays and calls it.

    import gnv
    for case in gnv.cases(preset="smoke", dtypes=["f32"]):
        result = gnv.check(case, my_group_norm)      # my_group_norm(x, gamma, beta, groups, eps) -> y
        assert result, result.text                   # the block `gnv check` prints

Arrays are numpy arrays in logical (N, C, *spatial) shape; an nhwc case's arrays have channels-last
strides. bf16 is ml_dtypes.bfloat16. mean and rstd are (N, G) in the accumulation dtype (f32 for
f16 and bf16).
"""
import copy as _copy
import json as _json
import os as _os
import re as _re
import threading as _threading

import numpy as _np

from . import _arrays
from . import _core

__all__ = [
    "Case", "CaseSpec", "Kernel", "Result", "Unsupported", "Validation", "assert_passes", "case_specs", "cases",
    "check", "cli", "judge", "load_case", "oracle", "validate",
]
__version__ = "0.1.0"


class Unsupported(Exception):
    """Raised by a kernel to decline a case it does not handle (a dtype, a layout, a shape): the
    cell is SKIPPED, not ERROR. gnv.torch.wrap raises it for PyTorch's "not implemented for"."""


def _problem_dict(p):
    return {"N": p.N, "C": p.C, "spatial": list(p.spatial), "G": p.G, "eps": p.eps, "affine": p.affine,
            "dtype": p.dtype, "layout": p.layout, "epilogue": p.epilogue, "affine_mode": p.affine_mode}


def _shape_of_tensor(p, name):
    """Stored shape of a case tensor or output: x-like (physical, x_shape), statistics (N, G),
    or parameters (C) / (N, C) per sample."""
    if name in ("mean", "rstd"):
        return (p.N, p.G)
    if name in ("gamma", "beta", "dgamma", "dbeta"):
        return tuple(p.param_shape)
    return tuple(p.x_shape)


class Case:
    """One GroupNorm case: a problem (shape, groups, eps, affine, dtype, layout) and its tensors.

    x, gamma, beta and dy are fresh writable arrays on every access, in logical shape (gamma, beta
    and dy are None when the case has none)."""

    def __init__(self, core, id=None, section=None, shape_name=None):
        self._core = core
        self._problem = core.problem
        p = self._problem
        self.section = section or "user"
        self.shape_name = shape_name or p.shape.replace(",", "x")
        self.id = id or f"{p.dtype}-{p.layout}-{self.shape_name}-G{p.G}" + (
            f"-{core.stress}-s{core.seed}" if core.stress else "")

    # The problem.
    dtype = property(lambda self: self._problem.dtype, doc="f64, f32, f16 or bf16")
    acc_dtype = property(lambda self: self._problem.acc_dtype, doc="dtype of mean and rstd")
    layout = property(lambda self: self._problem.layout, doc="nchw or nhwc (the storage order)")
    groups = property(lambda self: self._problem.G)
    eps = property(lambda self: self._problem.eps)
    affine = property(lambda self: self._problem.affine)
    affine_mode = property(lambda self: self._problem.affine_mode,
                           doc="per-channel (gamma, beta of shape (C,)) or per-sample ((N, C))")
    epilogue = property(lambda self: self._problem.epilogue, doc="none or silu (y = silu(gamma xhat + beta))")
    shape = property(lambda self: (self._problem.N, self._problem.C, *self._problem.spatial),
                     doc="logical (N, C, *spatial)")
    stress = property(lambda self: self._core.stress, doc="how x was generated ('' for the caller's own)")
    seed = property(lambda self: self._core.seed)
    has_backward = property(lambda self: self._core.has_backward, doc="dy is present")

    def _tensor(self, name):
        raw = self._core.tensor(name)
        if raw is None:
            return None
        shape = self._problem.x_shape if name in ("x", "dy") else list(self._problem.param_shape)
        return _arrays.from_bytes(raw, self.dtype, shape, self.layout if name in ("x", "dy") else "nchw")

    x = property(lambda self: self._tensor("x"))
    gamma = property(lambda self: self._tensor("gamma"))
    beta = property(lambda self: self._tensor("beta"))
    dy = property(lambda self: self._tensor("dy"))

    def describe(self):
        return self._problem.describe()

    def oracle(self, backward=None):
        """The correctly rounded outputs as a dict: y, mean, rstd, and dx (dgamma, dbeta when affine)
        when the case has dy (or backward=True)."""
        backward = self.has_backward if backward is None else backward
        outs, undecided, fallbacks = _core.oracle(self._core, bool(backward))
        res = {name: _arrays.from_bytes(raw, dtype, shape, self.layout if name in ("y", "dx") else "nchw")
               for name, dtype, shape, raw in outs}
        res["undecided"] = undecided
        res["fallbacks"] = fallbacks
        return res

    def save(self, directory):
        """Writes the case as a directory (case.json + .npy files) that `gnv check --case` replays."""
        self._core.save(_os.fspath(directory))

    def __repr__(self):
        return f"<gnv.Case {self.id}>"


class CaseSpec:
    """A case of a grid before its tensors exist: make() generates them (the same seed, the same bits)."""

    def __init__(self, d, id):
        self.id = id
        self.section = d["section"]
        self.shape_name = d["shape_name"]
        self.problem = d["problem"]
        self.stress = d["stress"]
        self.seed = d["seed"]
        self.backward = d["backward"]
        self.grid = d["grid"]

    def make(self):
        core = _core.make_case_of(self.problem, self.stress, self.seed, self.backward)
        return Case(core, self.id, self.section, self.shape_name)

    def __repr__(self):
        return f"<gnv.CaseSpec {self.id}>"


def _list(v, what):
    if v is None:
        return []
    if isinstance(v, (str, int, float)):
        v = [v]
    return [str(x) if what == "str" else x for x in v]


def _affine_option(affine):
    """The affine= argument (False, True, "per-channel" or "per-sample") as `--affine`'s value
    ("" for off)."""
    if affine is False or affine is None:
        return ""
    if affine is True:
        return "per-channel"
    if affine in ("per-channel", "per-sample"):
        return affine
    raise ValueError(f"affine {affine!r}: expected False, True, 'per-channel' or 'per-sample'")


def case_specs(preset=None, grid=None, *, sections=None, dtypes=None, layouts=None, stresses=None, seeds=None,
               shapes=None, groups=None, eps=None, affine=False, epilogue="none", backward=None):
    """The cases of a grid, in grid order, as CaseSpecs (nothing generated yet). The options are
    those of `gnv sweep`: a preset (smoke, ci, full) or a grid file (TOML, or a report.json), or
    ad-hoc shapes ("N,C,H,W") with groups/eps/affine (True or "per-sample")/epilogue ("silu");
    dtypes, layouts, stresses and seeds narrow it. With neither a grid nor shapes: the smoke preset."""
    specs = _core.grid_cases(preset or "", _os.fspath(grid) if grid else "", _list(sections, "str"),
                             _list(dtypes, "str"), _list(layouts, "str"), _list(stresses, "str"),
                             [int(s) for s in _list(seeds, "int")], _list(shapes, "str"),
                             [int(g) for g in _list(groups, "int")], [float(e) for e in _list(eps, "float")],
                             _affine_option(affine), str(epilogue), backward)
    ids = [f"{d['problem'].dtype}-{d['problem'].layout}-{d['shape_name']}-G{d['problem'].G}-{d['stress']}-s{d['seed']}"
           for d in specs]
    # A shape name repeated across sections: the section keeps the ids apart.
    if len(set(ids)) != len(ids):
        ids = [f"{d['section']}-{i}" for d, i in zip(specs, ids)]
    return [CaseSpec(d, i) for d, i in zip(specs, ids)]


def cases(preset=None, grid=None, **options):
    """Yields the grid's cases (Case objects, generated one at a time); options as case_specs."""
    for spec in case_specs(preset, grid, **options):
        yield spec.make()


def load_case(directory):
    """A saved case directory (case.json + .npy), as `gnv check --case` reads it."""
    return Case(_core.load_case(_os.fspath(directory)))


def _shape_of(x):
    if not isinstance(x, _np.ndarray):
        raise TypeError(f"x: expected a numpy array, got {type(x).__name__}")
    if not 2 <= x.ndim <= 5:
        raise ValueError(f"x: shape {x.shape}: expected (N, C, *spatial) with 0 to 3 spatial dimensions")
    return x.shape


def make_case(x, groups, gamma=None, beta=None, eps=1e-5, layout="nchw", dy=None, epilogue="none"):
    """A Case of the caller's arrays: x in logical (N, C, *spatial) shape (any strides), gamma and
    beta of shape (C,), or (N, C) for per-sample parameters (both or neither), dy like x. `layout`
    is the storage order the case asks of a kernel; `epilogue` "silu" makes y = silu(gamma xhat +
    beta) (dy is then the gradient of that y). The dtypes must agree."""
    if layout not in ("nchw", "nhwc"):
        raise ValueError(f"layout {layout!r}: expected 'nchw' or 'nhwc'")
    if epilogue not in ("none", "silu"):
        raise ValueError(f"epilogue {epilogue!r}: expected 'none' or 'silu'")
    shape = _shape_of(x)
    dtype = _arrays.gnv_dtype(x.dtype, "x")
    if isinstance(groups, bool) or not isinstance(groups, (int, _np.integer)):
        raise TypeError(f"groups: expected an int, got {type(groups).__name__}")
    if (gamma is None) != (beta is None):
        raise ValueError("gamma and beta: give both or neither")

    def raw(a, what, want_shape):
        if a is None:
            return None
        if not isinstance(a, _np.ndarray):
            raise TypeError(f"{what}: expected a numpy array, got {type(a).__name__}")
        if a.dtype != x.dtype:
            raise TypeError(f"{what}: dtype {a.dtype}, but x is {x.dtype}")
        if tuple(a.shape) != tuple(want_shape):
            raise ValueError(f"{what}: shape {a.shape}, expected {tuple(want_shape)}")
        return _arrays.input_bytes(a, dtype, layout if what in ("x", "dy") else "nchw", what)

    per_sample = isinstance(gamma, _np.ndarray) and gamma.ndim == 2
    pshape = shape[0:2] if per_sample else shape[1:2]
    core = _core.case_from_tensors(int(shape[0]), int(shape[1]), [int(s) for s in shape[2:]], int(groups), float(eps),
                                   gamma is not None, dtype, layout, raw(x, "x", shape),
                                   raw(gamma, "gamma", pshape), raw(beta, "beta", pshape),
                                   raw(dy, "dy", shape), epilogue, "per-sample" if per_sample else "per-channel")
    return Case(core)


def oracle(x, groups, gamma=None, beta=None, eps=1e-5, layout="nchw", dy=None, epilogue="none"):
    """The exact GroupNorm of x, correctly rounded: a dict of y, mean, rstd (and dx, dgamma, dbeta
    with dy), numpy arrays; y and dx in x's dtype and shape, mean and rstd (N, G) in the
    accumulation dtype, 'undecided' (values whose rounding could not be certified: 0) and
    'fallbacks' (values the oracle's fast path left to its MPFR path). Arguments as make_case."""
    return make_case(x, groups, gamma, beta, eps, layout, dy, epilogue).oracle()


class Result:
    """A check's outcome: verdict (PASS, FAIL, ERROR, UNWRITTEN, CRASH, TIMEOUT, SKIPPED), the
    per-output metrics as `gnv check --json`-style dicts, and text: what `gnv check` prints.
    True when the verdict is PASS."""

    def __init__(self, d):
        self.verdict = d["verdict"]
        j = _json.loads(d["json"])
        self.outputs = {o["name"]: o for o in j["outputs"]}
        self.kappa = (j["kappa_min"], j["kappa_max"])
        self.oracle_undecided = j["oracle_undecided"]
        self.oracle_fallbacks = j["oracle_fallbacks"]
        self.error = j.get("error", "")
        self.text = d["text"]

    @property
    def passed(self):
        return self.verdict == "PASS"

    def __bool__(self):
        return self.passed

    def __str__(self):
        return self.text

    def __repr__(self):
        return f"<gnv.Result {self.verdict}>"


# Set by the pytest plugin: where a check is recorded and how it is reproduced.
_session = {"record": False, "reproduce": None}


def _name(s):
    n = _re.sub(r"[^A-Za-z0-9_.+-]", "_", str(s)) or "python"
    return n[:64]


def _reproduce(case, impl):
    if _session["reproduce"]:
        return _session["reproduce"]
    if not case.stress:
        return "(a case of the caller's arrays: save it with case.save(DIR), replay with gnv.load_case(DIR))"
    p = case._problem
    # Double quotes inside: the command is one single-quoted shell word.
    affine = '"per-sample"' if p.affine_mode == "per-sample" and p.affine else p.affine
    fused = f'epilogue="{p.epilogue}", ' if p.epilogue != "none" else ""
    return (f"python3 -c 'import gnv; case = next(gnv.cases(shapes=[\"{p.shape}\"], groups=[{p.G}], eps=[{p.eps!r}], "
            f"affine={affine}, {fused}dtypes=[\"{p.dtype}\"], layouts=[\"{p.layout}\"], stresses=[\"{case.stress}\"], "
            f"seeds=[{case.seed}], backward={case.has_backward}))'  # then check {impl} on case")


def _record(case):
    if not _session["record"] or not case.stress:
        return None
    return {"section": case.section, "shape_name": case.shape_name}


def _outputs_of(result, names):
    """A kernel's return value as {name: array}: one array is the first name, a tuple or list gives
    the names in order (None entries are left out), a dict is taken as it is."""
    if isinstance(result, dict):
        return {k: v for k, v in result.items() if v is not None}
    if isinstance(result, (tuple, list)):
        if len(result) > len(names):
            raise ValueError(f"the kernel returned {len(result)} values, expected at most {len(names)} ({', '.join(names)})")
        return {n: v for n, v in zip(names, result) if v is not None}
    return {names[0]: result}


def _output_bytes(name, array, problem):
    """Output `name` of a kernel, checked against the problem, as physical bytes."""
    p = problem
    logical_x = (p.N, p.C, *p.spatial)
    if name in ("mean", "rstd"):
        # (N, G) as it is, or with trailing 1-extents ((N, G, 1) as some frameworks keep them), or
        # flat: any other arrangement of N*G values would be reordered silently.
        if isinstance(array, _np.ndarray) and array.size == p.N * p.G and (
                array.ndim == 1 or (array.shape[:2] == (p.N, p.G) and all(e == 1 for e in array.shape[2:]))):
            array = array.reshape(p.N, p.G)
        return _arrays.to_bytes(array, p.acc_dtype, (p.N, p.G), "nchw", name)
    if name in ("dgamma", "dbeta"):
        return _arrays.to_bytes(array, p.dtype, _shape_of_tensor(p, name), "nchw", name)
    return _arrays.to_bytes(array, p.dtype, logical_x, p.layout, name)


def judge(case, outputs, impl="python", budget="pairwise"):
    """Judges outputs a kernel already computed on `case`: a dict with y (and mean, rstd; dx, dgamma,
    dbeta for the backward), or y alone, or a tuple (y, mean, rstd). Returns a Result."""
    got = _outputs_of(outputs, ("y", "mean", "rstd"))
    raw = {n: _output_bytes(n, a, case._problem) for n, a in got.items()}
    impl = _name(impl)
    return Result(_core.judge(case._core, raw, impl, budget, _reproduce(case, impl), _record(case)))


class Kernel:
    """A GroupNorm kernel as gnv calls it.

    forward(x, gamma, beta, groups, eps) returns y, or (y, mean, rstd) with statistics=True.
    backward(dy, x, mean, rstd, gamma, groups, eps) returns dx, or (dx, dgamma, dbeta) for an affine
    case; mean and rstd are the exact statistics, rounded to the accumulation dtype.
    Arrays are numpy, logical shape; gamma/beta are None when the case is not affine. Raise
    gnv.Unsupported to decline a case (SKIPPED). dtypes/layouts: what the kernel declares (others
    are SKIPPED without a call).

    Fused forms (docs/numerics.md "Fused epilogues"), each only where the kernel declares it:
    epilogues=["silu"] gets cases whose y is silu(gamma xhat + beta), and for those calls
    forward(..., epilogue="silu") and backward(..., epilogue="silu", beta=beta) (dy is the
    gradient of the fused y); per_sample=True gets gamma and beta of shape (N, C) and returns
    dgamma, dbeta of that shape."""

    def __init__(self, forward, backward=None, *, name=None, statistics=False, dtypes=None, layouts=None,
                 device="cpu", epilogues=None, per_sample=False):
        if not callable(forward):
            raise TypeError(f"forward: expected a callable, got {type(forward).__name__}")
        if backward is not None and not callable(backward):
            raise TypeError(f"backward: expected a callable, got {type(backward).__name__}")
        self.forward = forward
        self.backward = backward
        self.name = _name(name or getattr(forward, "__name__", "python"))
        self.statistics = bool(statistics)
        self.dtypes = _list(dtypes, "str")
        self.layouts = _list(layouts, "str")
        self.device = device
        self.epilogues = _list(epilogues, "str")
        for e in self.epilogues:
            if e not in ("none", "silu"):
                raise ValueError(f"epilogues: {e!r} is not an epilogue (none, silu)")
        self.per_sample = bool(per_sample)

    def run_forward(self, x, gamma, beta, groups, eps, epilogue="none"):
        """forward's outputs as a dict (y, and mean, rstd when it gives them): the one place that
        calls the user's forward (gnv.check, gnv.validate, gnv.runner)."""
        fused = {} if epilogue == "none" else {"epilogue": epilogue}
        return _outputs_of(self.forward(x, gamma, beta, groups, eps, **fused), ("y", "mean", "rstd"))

    def run_backward(self, dy, x, mean, rstd, gamma, beta, groups, eps, epilogue="none"):
        """backward's outputs as a dict (dx, and dgamma, dbeta for an affine case)."""
        fused = {} if epilogue == "none" else {"epilogue": epilogue, "beta": beta}
        return _outputs_of(self.backward(dy, x, mean, rstd, gamma, groups, eps, **fused), ("dx", "dgamma", "dbeta"))

    def _call(self, kind, problem, tensors, wanted):
        """Called by the C++ check for one pass: physical bytes in, physical bytes out."""
        p = problem
        arr = {}
        for n, raw in tensors.items():
            stat = n in ("mean", "rstd")
            arr[n] = _arrays.from_bytes(raw, p.acc_dtype if stat else p.dtype, list(_shape_of_tensor(p, n)),
                                        p.layout if n in ("x", "dy") else "nchw")
        if kind == "forward":
            got = self.run_forward(arr["x"], arr.get("gamma"), arr.get("beta"), p.G, p.eps, p.epilogue)
        else:
            got = self.run_backward(arr["dy"], arr["x"], arr["mean"], arr["rstd"], arr.get("gamma"), arr.get("beta"),
                                    p.G, p.eps, p.epilogue)
        missing = [n for n in wanted if n not in got]
        if missing:
            raise ValueError(f"the kernel's {kind} gave no {', '.join(missing)}")
        return {n: _output_bytes(n, got[n], p) for n in wanted}

    def __repr__(self):
        return f"<gnv.Kernel {self.name}>"


def _as_kernel(kernel, name=None):
    k = kernel if isinstance(kernel, Kernel) else Kernel(kernel)
    if name is not None:  # a renamed copy: the caller's Kernel keeps its name
        k = _copy.copy(k)
        k.name = _name(name)
    return k


def check(case, kernel, *, backward=None, budget="pairwise", name=None):
    """Runs `kernel` (a Kernel or a forward function) on `case` through gnv's check path (poisoned
    outputs, the oracle's statistics for the backward) and returns the Result. The backward runs
    when the case has dy and the kernel a backward (backward=False skips it)."""
    k = _as_kernel(kernel, name)
    bwd = case.has_backward and k.backward is not None if backward is None else bool(backward)
    if bwd and k.backward is None:
        raise ValueError("backward=True: the kernel has no backward")
    d = _core.check(case._core, k._call, Unsupported, k.name, bwd, k.statistics, k.device, k.dtypes, k.layouts,
                    k.epilogues, k.per_sample, budget, _reproduce(case, k.name), _record(case))
    return Result(d)


def assert_passes(case, kernel_or_outputs, **options):
    """check() for a kernel (a callable or Kernel) or judge() for outputs; raises AssertionError
    with the `gnv check` text unless the verdict is PASS. Returns the Result."""
    if isinstance(kernel_or_outputs, Kernel) or callable(kernel_or_outputs):
        r = check(case, kernel_or_outputs, **options)
    else:
        r = judge(case, kernel_or_outputs, **options)
    if not r.passed:
        raise AssertionError("\n" + r.text)
    return r


class Validation:
    """The outcome of gnv.validate: returncode (0 every cell passed, 1 not), out (the report
    directory: report.json, report.md, junit.xml, report.html, cases/), report (report.json parsed)."""

    def __init__(self, returncode, out):
        self.returncode = returncode
        self.out = out
        with open(_os.path.join(out, "report.json"), encoding="utf-8") as f:
            self.report = _json.load(f)

    @property
    def passed(self):
        return self.returncode == 0

    def __bool__(self):
        return self.passed

    @property
    def cells(self):
        return self.report["cells"]

    def __repr__(self):
        return f"<gnv.Validation {'PASS' if self.passed else 'FAIL'} {self.out}>"


class GnvError(ValueError):
    """Bad usage or input refused by gnv (exit code 2 of the command line); the text is its error."""


# One run of the command line at a time in this process: the registry of kernels and the last error
# are the process's.
_cli_lock = _threading.Lock()


def _gnv_executable():
    """The gnv executable installed with this package (scikit-build-core puts it among the
    environment's scripts), else the first gnv on PATH, else ""."""
    import shutil
    import sysconfig

    here = _os.path.join(sysconfig.get_path("scripts"), "gnv")
    return here if _os.access(here, _os.X_OK) else (shutil.which("gnv") or "")


def cli(args):
    """Runs the gnv command line in this process (`gnv.cli(["list"])`); returns its exit code."""
    with _cli_lock:
        # Each plugin call runs in a fresh gnv process (never in a fork of this one).
        _core.set_plugin_host(_gnv_executable())
        return _core.cli([str(a) for a in args])


def _runner_command(kernel):
    """`python3 -m gnv.runner FILE.py:NAME` when gnv.runner can import the kernel again (a Kernel or
    function bound to a name at the top level of a module file), else "" (its cells then replay
    from Python: gnv.load_case(DIR))."""
    import sys

    fn = kernel.forward if isinstance(kernel, Kernel) else kernel
    module = sys.modules.get(getattr(fn, "__module__", None) or "")
    path = getattr(module, "__file__", None)
    if not path or module.__name__ == "__main__":  # importing a script again would run it again
        return ""
    for attr, value in vars(module).items():
        if value is kernel and not attr.startswith("_"):
            return f"{sys.executable} -m gnv.runner {_os.path.abspath(path)}:{attr}"
    return ""


def validate(kernel, *, preset=None, grid=None, out="out/validate", name=None, sections=None, dtypes=None,
             layouts=None, stresses=None, seeds=None, shapes=None, groups=None, eps=None, affine=False,
             epilogue="none", backward=None, jobs=None, budget=None, waivers=None, baseline=None, html=True, save_cases=None,
             extra_args=()):
    """Validates a Python kernel over a grid, exactly as `gnv sweep` / `gnv validate` do, and writes
    the same report directory. Options are the command line's (docs/guide.md "gnv sweep"). Returns a
    Validation; raises GnvError for bad usage (what `gnv` reports with exit code 2)."""
    k = _as_kernel(kernel, name)
    args = ["sweep", "--impl", k.name, "--out", _os.fspath(out)]

    def opt(flag, value, sep=","):
        if value is None or value == [] or value == ():
            return
        vals = _list(value, "any")
        args.extend([flag, sep.join(str(v) for v in vals)])

    if preset:
        args += ["--preset", preset]
    if grid:
        args += ["--grid", _os.fspath(grid)]
    for s in _list(shapes, "str"):
        args += ["--shape", s]
    opt("--groups", groups)
    opt("--eps", [repr(float(e)) for e in _list(eps, "float")] if eps is not None else None)
    if _affine_option(affine):
        args += ["--affine", _affine_option(affine)]
    if epilogue != "none":
        args += ["--epilogue", str(epilogue)]
    opt("--section", sections)
    opt("--dtype", dtypes)
    opt("--layout", layouts)
    opt("--stress", stresses)
    opt("--seeds", seeds)
    if backward is not None:
        args.append("--backward" if backward else "--no-backward")
    if jobs is not None:
        args += ["--jobs", str(int(jobs))]
    if budget:
        args += ["--budget", budget]
    if waivers:
        args += ["--waivers", _os.fspath(waivers)]
    if baseline:
        args += ["--baseline", _os.fspath(baseline)]
    if not html:
        args.append("--no-html")
    if save_cases:
        args += ["--save-cases", save_cases]
    args = [str(a) for a in args + list(extra_args)]
    with _cli_lock:
        registered = False  # a refused registration (a built-in's name) must not remove the built-in
        try:
            _core.register_kernel(k.name, k._call, Unsupported, k.backward is not None, k.statistics, k.device,
                                  k.dtypes, k.layouts, k.epilogues, k.per_sample, f"Python kernel {getattr(k.forward, '__qualname__', k.name)}",
                                  _runner_command(kernel))
            registered = True
            rc = _core.cli(args)
        finally:
            if registered:
                _core.unregister_kernel(k.name)
        error = _core.last_error()
    # Exit 1 is also an internal failure (nothing committed to out): only a run that printed no
    # error wrote the report it returns.
    if rc == 2 or error:
        raise GnvError(error or f"gnv exited {rc}")
    if not _os.path.exists(_os.path.join(_os.fspath(out), "report.json")):
        raise GnvError(f"gnv exited {rc} and wrote no report into {_os.fspath(out)}")
    return Validation(rc, _os.fspath(out))


__all__ += ["GnvError", "make_case"]
