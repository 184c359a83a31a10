// gnv._core: the C++ core of gnv, bound for the Python package (python/gnv). Nothing numerical is
// done here or in the Python files: cases, the oracle, metrics, budgets, verdicts and reports are
// the functions the command line calls. Tensors cross the boundary as their raw bytes (a 1-D uint8
// array, bf16 as its bit patterns); the Python side gives them their dtype and shape.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common.h"
#include "run_dir.h"
#include "sweep.h"
#include "gnv/check.h"
#include "gnv/external.h"
#include "gnv/npy.h"
#include "gnv/oracle.h"
#include "gnv/report.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace gnv::py {

namespace {

using Bytes = nb::ndarray<nb::numpy, uint8_t, nb::ndim<1>>;
using BytesIn = nb::ndarray<const uint8_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

// A tensor's bytes as a new numpy uint8 array that owns its copy.
Bytes to_bytes(const Tensor& t) {
  auto* buf = new std::vector<uint8_t>(t.nbytes());
  if (t.nbytes()) std::memcpy(buf->data(), t.raw(), t.nbytes());
  nb::capsule owner(buf, [](void* p) noexcept { delete static_cast<std::vector<uint8_t>*>(p); });
  return Bytes(buf->data(), {buf->size()}, owner);
}

// A tensor of `dtype` and physical `shape` from bytes the Python side checked: the byte count
// must still match exactly.
Tensor from_bytes(const BytesIn& b, DType dtype, const std::vector<int64_t>& shape, const std::string& what) {
  Tensor t(dtype, shape);
  if (b.size() != t.nbytes())
    throw std::invalid_argument(fmt::format("{}: {} bytes, expected {} ({} {})", what, b.size(), t.nbytes(),
                                            name(dtype), t.shape_string()));
  if (t.nbytes()) std::memcpy(t.raw(), b.data(), t.nbytes());
  return t;
}

Problem make_problem(int64_t N, int64_t C, std::vector<int64_t> spatial, int64_t G, double eps, bool affine,
                     const std::string& dtype, const std::string& layout, const std::string& epilogue,
                     const std::string& affine_mode) {
  Problem p;
  p.N = N;
  p.C = C;
  p.spatial = std::move(spatial);
  p.G = G;
  p.eps = eps;
  p.affine = affine;
  p.dtype = parse_dtype(dtype);
  p.layout = parse_layout(layout);
  p.epilogue = parse_epilogue(epilogue);
  p.affine_mode = parse_affine_mode(affine_mode);
  p.validate();
  return p;
}

std::string capture(const std::function<void(std::FILE*)>& print) {
  char* buf = nullptr;
  size_t size = 0;
  std::FILE* f = ::open_memstream(&buf, &size);
  if (!f) throw std::bad_alloc();
  print(f);
  std::fclose(f);
  std::string s(buf, size);
  std::free(buf);
  return s;
}

// Set when a Python kernel raised KeyboardInterrupt or SystemExit (read and cleared by the binding
// that started the run, which raises KeyboardInterrupt).
std::atomic<bool>& interrupted() {
  static std::atomic<bool> flag{false};
  return flag;
}
void raise_if_interrupted() {
  if (interrupted().exchange(false)) {
    PyErr_SetNone(PyExc_KeyboardInterrupt);
    throw nb::python_error();
  }
}

// The cells gnv.check and gnv.judge recorded for `pytest --gnv-report` (a record given), in call
// order.
struct Recorder {
  std::mutex mu;
  std::vector<report::Cell> cells;
  bool backward = false;
  std::set<std::string> impls;
};
Recorder& recorder() {
  static Recorder r;
  return r;
}

// The one ending of gnv.check and gnv.judge: the impl checked on the case (the GIL released), the
// cell recorded when asked, and what Python sees: the verdict, the CLI's JSON model of the check
// and the block `gnv check` prints for it.
using Record = std::optional<std::map<std::string, std::string>>;
nb::dict check_and_record(const Impl& impl, const Case& c, bool backward, const std::string& budget,
                          const std::string& reproduce, const Record& record) {
  const BudgetProfile profile = parse_budget_profile(budget);
  if (backward && !c.has_backward()) throw std::invalid_argument("backward: the case has no dy");
  CheckResult r;
  {
    nb::gil_scoped_release release;
    r = check_case(impl, c, backward, profile);
  }
  raise_if_interrupted();
  const Problem& p = c.problem;
  const Capabilities caps = impl.capabilities();
  nb::dict d;
  d["verdict"] = verdict_label(r.verdict);
  d["json"] = cli::to_json(p, r).dump();
  d["text"] = capture([&](std::FILE* f) { cli::print_check(f, std::string(impl.name()), caps.control, c, backward, r, reproduce); });
  if (record) {
    report::Cell cell;
    cell.impl = impl.name();
    cell.device = caps.device;
    cell.section = record->at("section");
    cell.shape_name = record->at("shape_name");
    cell.problem = p;
    cell.stress = c.stress;
    cell.seed = c.seed;
    cell.backward = backward;
    cell.result = r;
    cell.reproduce = reproduce;
    cell.seconds = r.seconds;
    Recorder& rec = recorder();
    std::lock_guard lock(rec.mu);
    rec.backward = rec.backward || backward;
    rec.impls.insert(cell.impl);
    rec.cells.push_back(std::move(cell));
  }
  return d;
}

Capabilities kernel_caps(bool backward, bool statistics, const std::string& device,
                         const std::vector<std::string>& dtypes, const std::vector<std::string>& layouts,
                         const std::vector<std::string>& epilogues, bool per_sample, const std::string& summary) {
  Capabilities caps = Capabilities::full(device, summary);
  for (const std::string& e : epilogues)
    if (!caps.supports(parse_epilogue(e))) caps.epilogues.push_back(parse_epilogue(e));
  caps.per_sample = per_sample;
  caps.backward = backward;
  caps.statistics = statistics;
  caps.deterministic = false;
  if (!dtypes.empty()) {
    caps.dtypes.clear();
    for (const std::string& d : dtypes) caps.dtypes.push_back(parse_dtype(d));
  }
  if (!layouts.empty()) {
    caps.layouts.clear();
    for (const std::string& l : layouts) caps.layouts.push_back(parse_layout(l));
  }
  return caps;
}

// An impl whose outputs are given (gnv.judge): it "computes" them by copying. Outputs not given
// are not judged: no mean/rstd means no statistics, no dx means no backward.
class GivenOutputs final : public Impl {
 public:
  GivenOutputs(std::string name, std::map<std::string, Tensor> out) : name_(std::move(name)), out_(std::move(out)) {}
  std::string_view name() const override { return name_; }
  Capabilities capabilities() const override {
    Capabilities c = Capabilities::full("python", "outputs given to gnv.judge");
    c.epilogues = {Epilogue::none, Epilogue::silu};  // given for this very case, whatever its form
    c.per_sample = true;
    c.statistics = out_.count("mean") > 0;
    c.backward = out_.count("dx") > 0;
    return c;
  }
  void forward(const ForwardArgs& a) const override {
    copy("y", a.y);
    if (out_.count("mean")) copy("mean", a.mean);
    if (out_.count("rstd")) copy("rstd", a.rstd);
  }
  void backward(const BackwardArgs& a) const override {
    copy("dx", a.dx);
    if (a.dgamma && out_.count("dgamma")) copy("dgamma", *a.dgamma);
    if (a.dbeta && out_.count("dbeta")) copy("dbeta", *a.dbeta);
  }

 private:
  void copy(const std::string& n, Tensor& dst) const {
    auto it = out_.find(n);
    if (it == out_.end()) throw std::invalid_argument(fmt::format("no {} given", n));
    const Tensor& src = it->second;
    if (src.dtype() != dst.dtype() || src.shape() != dst.shape())
      throw std::invalid_argument(fmt::format("{}: {} {}, expected {} {}", n, gnv::name(src.dtype()), src.shape_string(),
                                              gnv::name(dst.dtype()), dst.shape_string()));
    std::memcpy(dst.raw(), src.raw(), dst.nbytes());
  }
  std::string name_;
  std::map<std::string, Tensor> out_;
};

// A Python kernel in the registry (gnv.validate): every call takes the GIL and runs
// call(kind, problem, tensors) -> {output name: bytes}. The Python side (Kernel._call in
// gnv/__init__.py) converts
// between the physical bytes and the arrays the user's function takes. An exception of the
// `unsupported` class declines the case (SKIPPED); any other is the cell's ERROR with its text.
class PythonImpl final : public Impl {
 public:
  PythonImpl(std::string name, Capabilities caps, nb::object call, nb::object unsupported, std::string load = {})
      : name_(std::move(name)), caps_(std::move(caps)), call_(std::move(call)), unsupported_(std::move(unsupported)),
        load_(std::move(load)) {}
  ~PythonImpl() override {
    if (!Py_IsInitialized()) {  // destroyed after the interpreter (a static registry at exit): leak
      (void)call_.release();
      (void)unsupported_.release();
      return;
    }
    nb::gil_scoped_acquire gil;
    call_.reset();
    unsupported_.reset();
  }
  std::string_view name() const override { return name_; }
  Capabilities capabilities() const override { return caps_; }
  std::string load_options() const override { return load_; }
  void forward(const ForwardArgs& a) const override {
    std::map<std::string, const Tensor*> in{{"x", &a.x}};
    if (a.gamma) in["gamma"] = a.gamma;
    if (a.beta) in["beta"] = a.beta;
    std::map<std::string, Tensor*> out{{"y", &a.y}};
    if (caps_.statistics) {
      out["mean"] = &a.mean;
      out["rstd"] = &a.rstd;
    }
    call("forward", a.p, in, out);
  }
  void backward(const BackwardArgs& a) const override {
    std::map<std::string, const Tensor*> in{{"dy", &a.dy}, {"x", &a.x}, {"mean", &a.mean}, {"rstd", &a.rstd}};
    if (a.gamma) in["gamma"] = a.gamma;
    if (a.beta) in["beta"] = a.beta;
    std::map<std::string, Tensor*> out{{"dx", &a.dx}};
    if (a.dgamma) out["dgamma"] = a.dgamma;
    if (a.dbeta) out["dbeta"] = a.dbeta;
    call("backward", a.p, in, out);
  }

 private:
  void call(const char* kind, const Problem& p, const std::map<std::string, const Tensor*>& in,
            const std::map<std::string, Tensor*>& out) const {
    std::string error;
    bool declined = false;
    if (interrupted()) throw std::runtime_error("not run: the run was interrupted (KeyboardInterrupt)");
    {
      nb::gil_scoped_acquire gil;
      try {
        nb::dict tensors;
        for (const auto& [n, t] : in) tensors[n.c_str()] = to_bytes(*t);
        nb::list wanted;
        for (const auto& [n, t] : out) wanted.append(n);
        nb::object r = call_(kind, p, tensors, wanted);
        nb::dict got = nb::cast<nb::dict>(r);
        for (const auto& [n, t] : out) {
          if (!got.contains(n.c_str())) throw std::invalid_argument(fmt::format("the kernel gave no {}", n));
          const BytesIn b = nb::cast<BytesIn>(got[n.c_str()]);
          if (b.size() != t->nbytes())
            throw std::invalid_argument(fmt::format("{}: {} bytes, expected {}", n, b.size(), t->nbytes()));
          std::memcpy(t->raw(), b.data(), t->nbytes());
        }
      } catch (nb::python_error& e) {
        // KeyboardInterrupt, SystemExit: not the kernel's answer but the user's. The cells still to
        // run fail fast, and the binding raises it again once the run is over.
        if (!e.matches(PyExc_Exception)) interrupted() = true;
        declined = e.matches(unsupported_);
        const std::string type = nb::cast<std::string>(nb::str(e.type().attr("__name__")));
        const std::string text = nb::cast<std::string>(nb::str(e.value()));
        error = declined ? text : type + (text.empty() ? "" : ": " + text);
      } catch (const std::exception& e) {
        error = e.what();
      }
    }
    if (declined) throw KernelAborted(Verdict::skipped, error);
    if (!error.empty()) throw std::runtime_error(error);
  }

  std::string name_;
  Capabilities caps_;
  nb::object call_, unsupported_;
  std::string load_;
};

// A grid that holds exactly the recorded cells (each section's shapes, stresses and seeds), so the
// report reads back, renders and compares like a sweep's.
report::Grid grid_of(const std::vector<report::Cell>& cells, const std::vector<std::string>& impls, bool backward) {
  report::Grid g;
  g.preset = "pytest";
  g.impls = impls;
  g.backward = backward;
  auto add = [](auto& v, const auto& x) {
    if (std::find(v.begin(), v.end(), x) == v.end()) v.push_back(x);
  };
  for (const report::Cell& c : cells) {
    add(g.dtypes, std::string(name(c.problem.dtype)));
    add(g.layouts, std::string(name(c.problem.layout)));
    auto sec = std::find_if(g.sections.begin(), g.sections.end(), [&](const auto& s) { return s.name == c.section; });
    if (sec == g.sections.end()) {
      g.sections.push_back(report::Section{c.section, {}, {}, {}});
      sec = std::prev(g.sections.end());
    }
    add(sec->stresses, c.stress);
    add(sec->seeds, c.seed);
    auto sh = std::find_if(sec->shapes.begin(), sec->shapes.end(), [&](const auto& s) { return s.name == c.shape_name; });
    if (sh == sec->shapes.end()) {
      report::ShapeSpec s;
      s.name = c.shape_name;
      s.shape = c.problem.shape_string();
      s.affine = c.problem.affine;
      s.eps = c.problem.eps;
      sec->shapes.push_back(s);
      sh = std::prev(sec->shapes.end());
    }
    add(sh->groups, c.problem.G);
  }
  return g;
}

}  // namespace

}  // namespace gnv::py

NB_MODULE(_core, m) {
  using namespace gnv;
  using namespace gnv::py;
  m.doc() = "gnv's C++ core (use the gnv package, not this module)";

  // Errors in what the caller gave (a malformed case, file, grid or report) are ValueErrors.
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const CaseError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const NpyError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const report::ReportError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const cli::UsageError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  // The command line, in this process: gnv.cli(["sweep", "--preset", "smoke"]).
  m.def("cli", [](const std::vector<std::string>& args) {
    std::vector<std::string> words{"gnv"};
    words.insert(words.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    std::fflush(stdout);
    int rc;
    {
      nb::gil_scoped_release release;
      rc = cli::run_main(static_cast<int>(words.size()), argv.data());
      std::fflush(stdout);
      std::fflush(stderr);
    }
    raise_if_interrupted();
    return rc;
  });
  m.def("last_error", [] { return cli::last_error(); });
  m.def("set_plugin_host", &set_plugin_host, "the program each plugin call executes (gnv)");

  nb::class_<Problem>(m, "Problem")
      .def_ro("N", &Problem::N)
      .def_ro("C", &Problem::C)
      .def_ro("spatial", &Problem::spatial)
      .def_ro("G", &Problem::G)
      .def_ro("eps", &Problem::eps)
      .def_ro("affine", &Problem::affine)
      .def_prop_ro("dtype", [](const Problem& p) { return std::string(name(p.dtype)); })
      .def_prop_ro("acc_dtype", [](const Problem& p) { return std::string(name(acc_dtype(p.dtype))); })
      .def_prop_ro("layout", [](const Problem& p) { return std::string(name(p.layout)); })
      .def_prop_ro("x_shape", &Problem::x_shape)
      .def_prop_ro("param_shape", &Problem::param_shape)
      .def_prop_ro("epilogue", [](const Problem& p) { return std::string(name(p.epilogue)); })
      .def_prop_ro("affine_mode", [](const Problem& p) { return std::string(name(p.affine_mode)); })
      .def_prop_ro("shape", &Problem::shape_string)
      .def("describe", &Problem::describe);

  nb::class_<Case>(m, "Case")
      .def_prop_ro("problem", [](const Case& c) { return c.problem; })
      .def_ro("stress", &Case::stress)
      .def_ro("seed", &Case::seed)
      .def_prop_ro("has_backward", &Case::has_backward)
      .def("tensor",
           [](const Case& c, const std::string& n) -> std::optional<Bytes> {
             if (n == "x") return to_bytes(c.x);
             if (n == "gamma" && c.problem.affine) return to_bytes(c.gamma);
             if (n == "beta" && c.problem.affine) return to_bytes(c.beta);
             if (n == "dy" && c.dy) return to_bytes(*c.dy);
             if (n == "x" || n == "gamma" || n == "beta" || n == "dy") return std::nullopt;
             throw std::invalid_argument(fmt::format("no tensor '{}' (x, gamma, beta, dy)", n));
           })
      .def("save", [](const Case& c, const std::string& dir) { save_case(c, dir); });

  m.def("load_case", [](const std::string& dir) { return cli::load_case_reporting_file(dir); });

  // A case from the caller's tensors (physical order, checked by the Python side).
  m.def("case_from_tensors",
        [](int64_t N, int64_t C, std::vector<int64_t> spatial, int64_t G, double eps, bool affine,
           const std::string& dtype, const std::string& layout, const BytesIn& x, std::optional<BytesIn> gamma,
           std::optional<BytesIn> beta, std::optional<BytesIn> dy, const std::string& epilogue,
           const std::string& affine_mode) {
          Case c;
          c.problem = make_problem(N, C, std::move(spatial), G, eps, affine, dtype, layout, epilogue, affine_mode);
          const Problem& p = c.problem;
          c.x = from_bytes(x, p.dtype, p.x_shape(), "x");
          if (affine) {
            if (!gamma || !beta) throw std::invalid_argument("affine: give both gamma and beta");
            c.gamma = from_bytes(*gamma, p.dtype, p.param_shape(), "gamma");
            c.beta = from_bytes(*beta, p.dtype, p.param_shape(), "beta");
          }
          if (dy) c.dy = from_bytes(*dy, p.dtype, p.x_shape(), "dy");
          c.validate();
          return c;
        },
        "N"_a, "C"_a, "spatial"_a, "G"_a, "eps"_a, "affine"_a, "dtype"_a, "layout"_a, "x"_a, "gamma"_a.none(),
        "beta"_a.none(), "dy"_a.none(), "epilogue"_a, "affine_mode"_a);

  // The correctly rounded outputs: [(name, dtype, physical shape, bytes)], the undecided count and
  // the fast path's fall-backs.
  m.def("oracle", [](const Case& c, bool backward) {
    std::vector<std::tuple<std::string, std::string, std::vector<int64_t>, Bytes>> out;
    int64_t undecided = 0, fallbacks = 0;
    {
      std::vector<OracleResult> rs;
      {
        nb::gil_scoped_release release;
        rs.push_back(oracle_forward(c));
        if (backward) {
          if (!c.has_backward()) throw std::invalid_argument("the backward oracle needs dy");
          rs.push_back(oracle_backward(c));
        }
      }
      for (const OracleResult& r : rs) {
        undecided += r.undecided;
        fallbacks += r.fallbacks;
        for (const ExactOutput& e : r.outputs)
          out.emplace_back(e.name, std::string(name(e.rounded.dtype())), e.rounded.shape(), to_bytes(e.rounded));
      }
    }
    return std::make_tuple(out, undecided, fallbacks);
  });

  // gnv.judge: the given outputs checked exactly as `gnv check` checks a kernel's.
  m.def(
      "judge",
      [](const Case& c, const std::map<std::string, BytesIn>& outputs, const std::string& impl,
         const std::string& budget, const std::string& reproduce, const Record& record) {
        const Problem& p = c.problem;
        std::map<std::string, Tensor> given;
        for (const auto& [n, b] : outputs) {
          const bool stat = n == "mean" || n == "rstd";
          const bool channel = n == "dgamma" || n == "dbeta";
          if (!stat && !channel && n != "y" && n != "dx")
            throw std::invalid_argument(fmt::format("unknown output '{}' (y, mean, rstd, dx, dgamma, dbeta)", n));
          given.emplace(n, from_bytes(b, stat ? acc_dtype(p.dtype) : p.dtype,
                                      stat ? p.stats_shape() : channel ? p.param_shape() : p.x_shape(), n));
        }
        if (!given.count("y")) throw std::invalid_argument("outputs: y is required");
        if (given.count("mean") != given.count("rstd")) throw std::invalid_argument("outputs: give mean and rstd together");
        const bool backward = given.count("dx") > 0;
        if (backward && p.affine && (!given.count("dgamma") || !given.count("dbeta")))
          throw std::invalid_argument("outputs: an affine case's backward needs dgamma and dbeta too");
        if (!backward && (given.count("dgamma") || given.count("dbeta")))
          throw std::invalid_argument("outputs: dgamma and dbeta need dx");
        const GivenOutputs kernel(impl, std::move(given));
        return check_and_record(kernel, c, backward, budget, reproduce, record);
      },
      "case"_a, "outputs"_a, "impl"_a, "budget"_a, "reproduce"_a, "record"_a.none());

  // gnv.check: a Python kernel run on the case by the check path itself (poisoned outputs, the
  // second run of an ambiguous NaN, the oracle's statistics handed to the backward).
  m.def(
      "check",
      [](const Case& c, nb::object call, nb::object unsupported, const std::string& impl, bool backward,
         bool statistics, const std::string& device, const std::vector<std::string>& dtypes,
         const std::vector<std::string>& layouts, const std::vector<std::string>& epilogues, bool per_sample,
         const std::string& budget, const std::string& reproduce, const Record& record) {
        const PythonImpl kernel(impl,
                                kernel_caps(backward, statistics, device, dtypes, layouts, epilogues, per_sample,
                                            "a Python kernel"),
                                std::move(call), std::move(unsupported));
        return check_and_record(kernel, c, backward, budget, reproduce, record);
      },
      "case"_a, "call"_a, "unsupported"_a, "impl"_a, "backward"_a, "statistics"_a, "device"_a, "dtypes"_a,
      "layouts"_a, "epilogues"_a, "per_sample"_a, "budget"_a, "reproduce"_a, "record"_a.none());

  // `pytest --gnv-report DIR`: the recorded cells as a report directory, written like a sweep's.
  m.def("write_recorded_report", [](const std::string& out, bool html) {
    Recorder& rec = recorder();
    std::lock_guard lock(rec.mu);
    report::Report r;
    r.env = report::current_environment();
    const std::vector<std::string> impls(rec.impls.begin(), rec.impls.end());
    // A cell id must be unique: a case checked twice under one impl name keeps its last result.
    std::vector<report::Cell> cells;
    std::map<std::string, size_t> at;
    for (const report::Cell& c : rec.cells) {
      auto [it, fresh] = at.emplace(c.id(), cells.size());
      if (fresh) cells.push_back(c);
      else cells[it->second] = c;
    }
    r.grid = grid_of(cells, impls, rec.backward);
    for (size_t i = 0; i < cells.size(); ++i) {
      cells[i].index = cells[i].case_index = i;
      r.cells.push_back(cells[i]);
    }
    cli::RunDir dir(out);
    std::string files;
    const report::Report written = cli::publish_report(r, dir.staging(), html, "", files);
    dir.commit();
    return std::make_tuple(files, report::summarize(written).passed_all, cells.size());
  });
  m.def("recorded_count", [] { return recorder().cells.size(); });

  // The cases of a grid: the options of `gnv sweep`, the specs in grid order.
  m.def("grid_cases",
        [](const std::string& preset, const std::string& grid, const std::vector<std::string>& sections,
           const std::vector<std::string>& dtypes, const std::vector<std::string>& layouts,
           const std::vector<std::string>& stresses, const std::vector<uint64_t>& seeds,
           const std::vector<std::string>& shapes, const std::vector<int64_t>& groups, const std::vector<double>& eps,
           const std::string& affine, const std::string& epilogue, std::optional<bool> backward) {
          cli::SweepOptions o;
          o.preset = preset;
          o.grid_file = grid;
          o.sections = sections;
          o.dtypes = dtypes;
          o.layouts = layouts;
          o.stresses = stresses;
          o.seeds = seeds;
          o.shapes = shapes;
          o.groups = groups;
          o.eps = eps;
          o.affine = affine;
          o.epilogue = epilogue;
          o.backward = backward;
          o.impls = {"naive"};  // any: the impls of a grid do not change its cases
          const report::Grid g = cli::build_grid(o);
          std::vector<nb::dict> out;
          for (const report::CaseSpec& cs : report::expand_cases(g)) {
            nb::dict d;
            d["section"] = cs.section;
            d["shape_name"] = cs.shape_name;
            d["problem"] = cs.problem;
            d["stress"] = cs.stress;
            d["seed"] = cs.seed;
            d["backward"] = g.backward;
            d["grid"] = g.preset;
            out.push_back(std::move(d));
          }
          return out;
        });

  m.def("make_case_of", [](const Problem& p, const std::string& stress, uint64_t seed, bool backward) {
    return make_case(p, parse_stress(stress), seed, backward);
  });

  // gnv.validate: a Python kernel registered for one run of the command line.
  m.def("register_kernel",
        [](const std::string& n, nb::object call, nb::object unsupported, bool backward, bool statistics,
           const std::string& device, const std::vector<std::string>& dtypes, const std::vector<std::string>& layouts,
           const std::vector<std::string>& epilogues, bool per_sample, const std::string& summary,
           const std::string& runner) {
          if (Registry::instance().find(n))
            throw std::invalid_argument(fmt::format("an implementation named '{}' is already registered", n));
          // A kernel gnv.runner can import again: the replay lines of its cells run it as a runner.
          const Capabilities caps =
              kernel_caps(backward, statistics, device, dtypes, layouts, epilogues, per_sample, summary);
          std::vector<std::string> fused;
          if (caps.supports(Epilogue::silu)) fused.emplace_back("silu");
          if (caps.per_sample) fused.emplace_back("per-sample");
          const std::string load =
              runner.empty() ? ""
                             : fmt::format("--runner {} --runner-name {}{}{}", cli::shell_quote(runner), n,
                                           statistics ? "" : " --no-stats",
                                           fused.empty() ? "" : fmt::format(" --runner-fused {}", fmt::join(fused, ",")));
          Registry::instance().add(
              std::make_unique<PythonImpl>(n, caps, std::move(call), std::move(unsupported), load));
        });
  m.def("unregister_kernel", [](const std::string& n) {
    std::unique_ptr<Impl> gone = Registry::instance().remove(n);
    return gone != nullptr;
  });
}
