// `gnv repro`: an upstream-ready reproducer of a failing case. From a (minimized) case directory,
// the kernel that fails it (to measure what is wrong) and a snippet that calls the framework,
// writes into --out:
//   repro.py  one Python file that needs only numpy and the framework: the snippet, the case's
//             values literally (hex floats), the exact y (gnv's oracle, correctly rounded) and,
//             per element, the denominator of the condition-scaled error; it prints the
//             framework's worst elements next to the exact answer, their error in ulps and in
//             the condition-scaled metric, and exits 1 when that exceeds the budget. The same
//             for dx where the case has dy and the snippet a backward;
//   issue.md  a Markdown issue body: what is wrong (gnv's measurement of every output), the
//             suspected cause where the metrics show one, the case, and the reproducer.
// The snippet is a Python file that defines group_norm(x, groups, gamma, beta, eps, layout) -> y
// (x logical (N, C, *spatial) float array of the case's dtype; layout "nchw" or "nhwc": how the
// framework should hold x) and, optionally, group_norm_backward(x, dy, groups, gamma, beta, eps,
// layout) -> dx (the gradient of sum(y * dy) with respect to x) and FRAMEWORK = "name version".
// adapters/repro/ has them for the shipped adapters.
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "gnv/npy.h"
#include "gnv/oracle.h"

namespace gnv::cli {

namespace {

struct ReproOptions {
  std::string case_dir, impl, snippet, out, budget = "pairwise";
  ExternalOptions ext;
};

constexpr int64_t kMaxElements = 1 << 16;  // a reproducer holds every value literally
constexpr std::uintmax_t kMaxSnippetBytes = 64 << 10;

std::string hex(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format("{:a}", v);
}

// A Python string of space-separated hex floats, wrapped: `NAME = """...""".split()`.
std::string hex_list(const std::string& name, const std::vector<double>& v) {
  std::string s = name + " = \"\"\"";
  for (size_t i = 0; i < v.size(); ++i) s += (i % 6 == 0 ? "\n" : " ") + hex(v[i]);
  return s + "\n\"\"\".split()\n";
}

// The tensor's values in logical (n, c, s) order (x-shaped) or as stored (parameters).
std::vector<double> logical(const Tensor& t, const Problem& p, bool x_shaped) {
  std::vector<double> v;
  if (!x_shaped) {
    for (int64_t i = 0; i < t.numel(); ++i) v.push_back(t.get(i));
    return v;
  }
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t c = 0; c < p.C; ++c)
      for (int64_t s = 0; s < p.S(); ++s) v.push_back(t.get(p.index(n, c, s)));
  return v;
}

// numpy has no bfloat16: a bf16 case's values travel as float32 (exact: bf16 is the top half of
// an f32) with BFLOAT16 = True, and the snippet converts them to the framework's bfloat16.
std::string numpy_dtype(DType d) {
  switch (d) {
    case DType::f64: return "np.float64";
    case DType::f32: return "np.float32";
    case DType::f16: return "np.float16";
    case DType::bf16: return "np.float32";
  }
  throw std::logic_error("numpy_dtype: unknown dtype");
}

// What the metrics say about the cause, in words (empty when they say nothing specific).
std::string suspected_cause(const CheckResult& r) {
  auto output = [&](const char* name) -> const OutputMetrics* {
    for (const OutputMetrics& m : r.outputs)
      if (m.name == name) return &m;
    return nullptr;
  };
  const OutputMetrics *mean = output("mean"), *rstd = output("rstd");
  if (mean && rstd && mean->verdict == Verdict::pass && rstd->verdict == Verdict::fail)
    return "mean is right and rstd is wrong: the signature of a one-pass variance E[x^2] - E[x]^2, which "
           "cancels when the mean is large against the spread.";
  if (mean && mean->verdict == Verdict::fail)
    return "the mean itself is wrong: its sum is accumulated in too narrow a type, or overflows.";
  return {};
}

// One output the reproducer judges, in logical (n, c, s) order: its correctly rounded values, the
// exact values as hi + lo (what the metric measures from, as gnv's measure() does), the metric's
// denominators (NaN where gnv does not judge: undefined or ill-posed elements), the ulps, and
// its budget.
struct Judged {
  std::string name;  // "y" or "dx"
  std::vector<double> rounded, hi, lo, denom, ulp;
  double budget = 0;
};

Judged judged(const Problem& p, const ExactOutput& o, BudgetProfile profile) {
  Judged j{o.name, {}, {}, {}, {}, {}, budget_for(o.reduction_length, profile)};
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t ch = 0; ch < p.C; ++ch)
      for (int64_t s = 0; s < p.S(); ++s) {
        const int64_t i = p.index(n, ch, s);
        const bool judged = !std::isnan(o.hi[i]) && !ill_posed(o, i);
        j.rounded.push_back(o.rounded.get(i));
        j.hi.push_back(o.hi[i]);
        j.lo.push_back(std::isnan(o.lo[i]) ? 0.0 : o.lo[i]);
        j.denom.push_back(judged ? static_cast<double>(cond_denominator(o, i)) : std::nan(""));
        j.ulp.push_back(ulp_at(p.dtype, o.rounded.get(i)));
      }
  return j;
}

std::string upper(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return s;
}

std::string script(const Case& c, const std::vector<Judged>& outs, const std::string& snippet) {
  const Problem& p = c.problem;
  const bool backward = outs.size() > 1;
  std::vector<int64_t> shape{p.N, p.C};
  shape.insert(shape.end(), p.spatial.begin(), p.spatial.end());
  std::vector<std::string> budgets;
  for (const Judged& j : outs) budgets.push_back(fmt::format("{:g} for {}", j.budget, j.name));
  std::string s = fmt::format(R"(#!/usr/bin/env python3
"""GroupNorm reproducer written by `gnv repro` (gnv: numerical verification of GroupNorm kernels).

Problem: {describe}
The exact {what} below {is} gnv's oracle: computed exactly from these very inputs and rounded once to
{dtype}. The condition-scaled error divides |actual - exact| by u_acc * S_i + ulp/2 + L * eta, the
error a backward-stable GroupNorm may make at element i; above the budget ({budgets}) no
stable algorithm gives the result.{bwd} Needs numpy and the framework the call below imports.
"""
import sys

import numpy as np

# x, gamma, beta (and dy) hold bfloat16 values as float32 when True (numpy has no bfloat16): the
# call below converts them to the framework's bfloat16 and returns its result as float32.
BFLOAT16 = {bf16}

# ---- the call under test ------------------------------------------------------------------
{snippet}
# ---- the case, value for value ------------------------------------------------------------
SHAPE = {shape}  # logical (N, C, *spatial)
GROUPS = {G}
EPS = float.fromhex("{eps}")
LAYOUT = "{layout}"
DTYPE = {npdtype}
)",
                              fmt::arg("describe", p.describe()), fmt::arg("dtype", name(p.dtype)),
                              fmt::arg("what", backward ? "y and dx" : "y"), fmt::arg("is", backward ? "are" : "is"),
                              fmt::arg("budgets", fmt::join(budgets, ", ")),
                              fmt::arg("bwd", backward ? " dx is the gradient of sum(y * DY) with respect to x, from "
                                                         "group_norm_backward."
                                                       : ""),
                              fmt::arg("snippet", snippet), fmt::arg("shape", fmt::format("({},)", fmt::join(shape, ", "))),
                              fmt::arg("G", p.G), fmt::arg("eps", hex(p.eps)), fmt::arg("layout", name(p.layout)),
                              fmt::arg("npdtype", numpy_dtype(p.dtype)),
                              fmt::arg("bf16", p.dtype == DType::bf16 ? "True" : "False"));
  s += hex_list("X", logical(c.x, p, true));
  if (backward) s += hex_list("DY", logical(*c.dy, p, true));
  if (p.affine) {
    s += hex_list("GAMMA", logical(c.gamma, p, false));
    s += hex_list("BETA", logical(c.beta, p, false));
  }
  std::vector<std::string> table;
  for (const Judged& j : outs) {
    const std::string u = upper(j.name);
    s += fmt::format("# ---- {}: correctly rounded, exact (hi + lo), the metric's denominator and the ulp per element ----\n",
                     j.name);
    s += hex_list(u + "_ROUNDED", j.rounded);
    s += hex_list(u + "_HI", j.hi);
    s += hex_list(u + "_LO", j.lo);
    s += hex_list(u + "_DENOM", j.denom);
    s += hex_list(u + "_ULP", j.ulp);
    table.push_back(fmt::format("(\"{0}\", {1}_ROUNDED, {1}_HI, {1}_LO, {1}_DENOM, {1}_ULP, {2:.17g})", j.name, u, j.budget));
  }
  s += fmt::format("OUTPUTS = [{}]  # name, rounded, hi, lo, denominator, ulp, budget\n",
                   fmt::join(table, ",\n           "));
  s += fmt::format(R"(

def arr(values, shape):
    return np.array([float.fromhex(v) for v in values], dtype=np.float64).astype(DTYPE).reshape(shape)


def floats(values):
    return np.array([float.fromhex(v) for v in values])


def judge(name, got, rounded, hi, lo, denom, ulp, budget):
    """Prints the worst elements of one output; returns True when it is within its budget."""
    got = np.asarray(got, dtype=np.float64).reshape(-1)
    judged = ~np.isnan(denom)  # gnv leaves undefined and ill-posed elements unjudged
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs((got - hi) - lo)  # from the exact value, not its rounding
        cond = np.where(judged, np.where(err == 0, 0.0, err / denom), 0.0)
        off = np.abs(got - rounded)
        ulps = np.where(off == 0, 0.0, off / ulp)
    cond = np.where(judged & np.isnan(got), np.inf, cond)
    order = np.argsort(-cond)[:5]
    print(f"{{name + ': element (n, c, s)':>24}} {{'framework':>24}} {{'exact, rounded':>24}} {{'ulps':>10}} {{'cond. error':>12}}")
    per_sample = int(np.prod(SHAPE[1:]))
    spatial = int(np.prod(SHAPE[2:])) if len(SHAPE) > 2 else 1
    for i in order:
        n, rest = divmod(int(i), per_sample)
        c, s = divmod(rest, spatial)
        print(f"{{str((n, c, s)):>24}} {{got[i]:>24.17g}} {{rounded[i]:>24.17g}} {{ulps[i]:>10.3g}} {{cond[i]:>12.4g}}")
    worst = float(cond.max()) if cond.size else 0.0
    verdict = "PASS" if worst <= budget else "FAIL"
    print(f"{{name}}: max condition-scaled error {{worst:.4g}} (budget {{budget:.4g}}): {{verdict}}")
    return verdict == "PASS"


def main():
    x = arr(X, SHAPE)
    gamma = arr(GAMMA, {pshape}) if {affine} else None
    beta = arr(BETA, {pshape}) if {affine} else None
    got = {{"y": group_norm(x, GROUPS, gamma, beta, EPS, LAYOUT)}}
    if len(OUTPUTS) > 1:
        got["dx"] = group_norm_backward(x, arr(DY, SHAPE), GROUPS, gamma, beta, EPS, LAYOUT)
    print(f"framework: {{globals().get('FRAMEWORK', '?')}}; numpy {{np.__version__}}")
    dtype = "bfloat16, held as float32" if BFLOAT16 else np.dtype(DTYPE).name
    print(f"case: shape {{SHAPE}}, groups {{GROUPS}}, eps {{EPS!r}}, dtype {{dtype}}, layout {{LAYOUT}}")
    ok = [judge(name, got[name], *(floats(v) for v in values), budget) for name, *values, budget in OUTPUTS]
    verdict = "PASS" if all(ok) else "FAIL"
    print(f"verdict: {{verdict}}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
)",
                   fmt::arg("pshape", p.affine ? fmt::format("({},)", fmt::join(p.param_shape(), ", ")) : "None"),
                   fmt::arg("affine", p.affine ? "True" : "False"));
  return s;
}

std::string issue_body(const Case& c, const std::string& impl, const CheckResult& r, const std::string& reproducer) {
  const Problem& p = c.problem;
  std::string md = fmt::format("### GroupNorm result differs from the exact one ({}, {})\n\n", name(p.dtype), name(p.layout));
  md += fmt::format("**Problem:** `{}`.\n\n", p.describe());
  md += fmt::format("Measured by gnv against an exact, correctly rounded reference (`{}`, verdict **{}**):\n\n",
                    impl, verdict_label(r.verdict));
  md += "| output | verdict | condition-scaled error | budget | max ulps | worst element (expected, actual) |\n";
  md += "|---|---|--:|--:|--:|---|\n";
  for (const OutputMetrics& m : r.outputs)
    md += fmt::format("| {} | {} | {:.4g} | {:.4g} | {:.4g} | {} ({:.17g}, {:.17g}) |\n", m.name, verdict_label(m.verdict),
                      m.max_cond_err, m.budget, m.max_ulp, describe_index(p, m.name, m.worst_index), m.worst_expected,
                      m.worst_actual);
  md += fmt::format("\nThe condition-scaled error is |actual - exact| / (u_acc S_i + ulp/2 + L eta): the error a "
                    "backward-stable GroupNorm may make at each element (kappa of the groups: {:.3g} to {:.3g}). "
                    "Past the budget, no stable algorithm returns the result.\n\n",
                    r.kappa_min, r.kappa_max);
  if (const std::string why = suspected_cause(r); !why.empty()) md += "**Suspected cause:** " + why + "\n\n";
  md += "**Reproducer** (numpy and the framework only; it prints the worst elements next to the exact values and "
        "exits 1 on failure):\n\n```python\n" + reproducer + "```\n";
  return md;
}

int run_repro(ReproOptions& o) {
  const std::string load = use_external(o.ext, o.impl);
  if (o.impl.empty()) throw UsageError("--impl is required unless one --plugin/--runner is given");
  const Impl& impl = Registry::instance().get(o.impl);
  const Case c = load_case_reporting_file(o.case_dir);
  if (c.problem.numel() > kMaxElements)
    throw UsageError(fmt::format("{}: {} elements; a reproducer holds at most {} literally (shrink it first with "
                                 "`gnv minimize`)",
                                 o.case_dir, c.problem.numel(), kMaxElements));
  if (c.problem.epilogue != Epilogue::none || c.problem.per_sample())
    throw UsageError("the reproducer covers plain GroupNorm (no epilogue, per-channel parameters) for now");
  std::string snippet;
  try {
    snippet = read_small_file(o.snippet, kMaxSnippetBytes);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  if (snippet.find("def group_norm(") == std::string::npos)
    throw UsageError(fmt::format("{}: defines no group_norm(x, groups, gamma, beta, eps, layout)", o.snippet));
  if (c.problem.dtype == DType::bf16 && snippet.find("BFLOAT16") == std::string::npos)
    throw UsageError(fmt::format("{}: a bf16 case needs a snippet that converts its float32-held values to the "
                                 "framework's bfloat16 where BFLOAT16 is True (numpy has no bfloat16); this one never "
                                 "reads BFLOAT16",
                                 o.snippet));
  // The backward too where the case has dy and the snippet can call the framework's backward.
  const bool backward = c.dy.has_value() && snippet.find("def group_norm_backward(") != std::string::npos;
  if (std::string why = unsupported_reason(impl, c.problem, backward); !why.empty()) throw UsageError(why);
  const BudgetProfile profile = parse_budget_profile(o.budget);
  const CheckResult r = check_case(impl, c, backward, profile);
  if (r.verdict != Verdict::fail)
    throw UsageError(fmt::format("{}: the case does not FAIL for {} (verdict {}): nothing to reproduce{}", o.case_dir,
                                 o.impl, verdict_label(r.verdict),
                                 c.dy && !backward ? " in y (the case has dy: a snippet that defines "
                                                     "group_norm_backward(x, dy, groups, gamma, beta, eps, layout) "
                                                     "reproduces its backward)"
                                                   : ""));
  std::vector<Judged> outs{judged(c.problem, oracle_forward(c).get("y"), profile)};
  if (backward) outs.push_back(judged(c.problem, oracle_backward(c).get("dx"), profile));
  const std::string py = script(c, outs, snippet);
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(o.out, ec) && !(fs::is_directory(o.out, ec) && fs::is_empty(o.out, ec)))
    throw UsageError(fmt::format("--out {}: exists and is not an empty directory (nothing is overwritten)", o.out));
  fs::create_directories(o.out);
  write_file_atomic(fs::path(o.out) / "repro.py", py);
  write_file_atomic(fs::path(o.out) / "issue.md", issue_body(c, o.impl + load, r, py));
  fmt::print("wrote {0}/repro.py and {0}/issue.md ({1}: {2})\nrun: python3 {0}/repro.py\n", o.out, o.impl,
             c.problem.describe());
  return kExitPass;
}

}  // namespace

Command register_repro(CLI::App& app) {
  auto o = std::make_shared<ReproOptions>();
  CLI::App* sub = app.add_subcommand(
      "repro", "Write an upstream-ready reproducer of a failing case: a standalone Python file (numpy and the "
               "framework only) that compares the framework's y (and dx, for a case with dy and a snippet with "
               "group_norm_backward) with the exact answer, and a Markdown issue body");
  sub->add_option("--case", o->case_dir, "The failing case directory (shrink it first with `gnv minimize`)")->required();
  sub->add_option("--impl", o->impl, "The kernel that fails it, measured for the issue; required unless one "
                                     "--plugin/--runner is given");
  add_external_options(sub, o->ext);
  sub->add_option("--snippet", o->snippet,
                  "Python file defining group_norm(x, groups, gamma, beta, eps, layout) -> y with the framework's "
                  "call, optionally group_norm_backward(x, dy, groups, gamma, beta, eps, layout) -> dx (the case's "
                  "backward is then reproduced too) and FRAMEWORK = 'name version'; adapters/repro/ has the shipped "
                  "ones")
      ->required();
  sub->add_option("--out", o->out, "Directory for repro.py and issue.md")->required();
  add_budget_option(sub, o->budget, "the verdict is judged with")->capture_default_str();
  return {sub, [o] { return run_repro(*o); }};
}

}  // namespace gnv::cli
