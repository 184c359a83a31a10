// `gnv suite`: the main job. Every implementation x dtype x layout it supports, on a fixed set of
// small shapes x every default stress class, judged by the one check path. Its exit code also
// guards the harness itself: a control impl that never fails means the harness is blind.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "gnv/npy.h"

namespace gnv::cli {

namespace {

namespace fs = std::filesystem;

struct SuiteOptions {
  std::vector<std::string> impls;
  std::vector<std::string> dtypes;
  std::vector<std::string> layouts;
  std::string out = "out";
  bool backward = true;
  uint64_t seed = 0;
};

// Small on purpose: the exact oracle dominates the run time. Together they cover spatial ranks
// 0..3, one and many channels per group, N > 1 (groups of different samples), and both affine
// settings; 7 and 5 are odd so no vector width divides a row.
struct SuiteShape {
  const char* shape;
  int64_t G;
  bool affine;
};
constexpr SuiteShape kShapes[] = {
    {"2,32,8,8", 8, false},
    {"1,6,7", 3, true},
    {"2,12", 4, false},
    {"1,8,3,5,7", 2, true},
};
constexpr double kSuiteEps = 1e-5;

// One check: an impl on one case (dtype, layout, shape, stress).
struct Cell {
  const Impl* impl;
  Problem problem;
  size_t shape_index;
  std::string stress;
  bool backward;
  CheckResult result;
  std::string case_dir;  // set when the cell failed and its case was saved
};

// Verdicts ordered by how much they say about the kernel: an error hides everything else.
int severity(Verdict v) {
  switch (v) {
    case Verdict::pass: return 0;
    case Verdict::fail: return 1;
    case Verdict::unwritten: return 2;
    case Verdict::error: return 3;
  }
  return 3;
}

// A table entry: one (impl, dtype, layout, stress), the worst over the shapes.
struct Entry {
  Verdict verdict = Verdict::pass;
  double worst = 0;
  bool present = false;
};

std::string entry_text(const Entry& e) {
  if (!e.present) return "-";
  if (e.verdict == Verdict::error) return "ERROR";
  return fmt::format("{} {:.3g}", verdict_label(e.verdict), e.worst);
}

// Column headers: "offset:100000000" is too wide for a table column.
std::string short_stress(const Stress& s) {
  if (s.kind != StressKind::offset) return s.name();
  const double e = std::log10(s.param);
  if (e == std::round(e)) return fmt::format("off:1e{}", static_cast<int>(e));
  return fmt::format("off:{:g}", s.param);
}

// Case directory names: stress names hold ':', which some filesystems and shells dislike.
std::string path_safe(std::string s) {
  for (char& ch : s)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-')) ch = '_';
  return s;
}

Problem make_problem(const SuiteShape& sh, DType d, Layout l) {
  Problem p;
  parse_shape(sh.shape, p);
  p.G = sh.G;
  p.eps = kSuiteEps;
  p.affine = sh.affine;
  p.dtype = d;
  p.layout = l;
  p.validate();
  return p;
}

struct RowKey {
  const Impl* impl;
  DType dtype;
  Layout layout;
  auto operator<=>(const RowKey&) const = default;
};

int run_suite(const SuiteOptions& o) {
  const std::vector<const Impl*> impls = select_impls(o.impls);
  std::vector<DType> dtypes;
  for (const std::string& s : o.dtypes) dtypes.push_back(parse_dtype(s));
  if (dtypes.empty()) dtypes.assign(std::begin(kAllDTypes), std::end(kAllDTypes));
  std::vector<Layout> layouts;
  for (const std::string& s : o.layouts) layouts.push_back(parse_layout(s));
  if (layouts.empty()) layouts.assign(std::begin(kAllLayouts), std::end(kAllLayouts));
  const std::vector<Stress> stresses = default_stresses();

  const fs::path out = o.out;
  fs::create_directories(out);
  // Stale failing cases from an earlier run would be mistaken for this run's findings.
  fs::remove_all(out / "cases");

  // The rows, in a stable order; the work count for the progress line.
  std::vector<RowKey> rows;
  for (const Impl* impl : impls) {
    const Capabilities caps = impl->capabilities();
    if (!caps.forward) continue;
    for (DType d : dtypes)
      for (Layout l : layouts)
        if (caps.supports(d) && caps.supports(l)) rows.push_back({impl, d, l});
  }
  if (rows.empty()) throw UsageError("no selected implementation supports the selected dtypes/layouts");

  const bool progress = stderr_is_tty();
  const size_t total = rows.size() * std::size(kShapes) * stresses.size();
  size_t done = 0;
  std::vector<Cell> cells;
  cells.reserve(total);
  // One case per (dtype, layout, shape, stress), shared by every impl: the same input for all is
  // what makes the rows comparable.
  for (DType d : dtypes) {
    for (Layout l : layouts) {
      std::vector<const Impl*> row_impls;
      for (const RowKey& r : rows)
        if (r.dtype == d && r.layout == l) row_impls.push_back(r.impl);
      if (row_impls.empty()) continue;
      for (size_t si = 0; si < std::size(kShapes); ++si) {
        const Problem p = make_problem(kShapes[si], d, l);
        for (const Stress& s : stresses) {
          const Case c = make_case(p, s, o.seed, o.backward);
          for (const Impl* impl : row_impls) {
            if (progress)
              fmt::print(stderr, "\r\033[K[{}/{}] {} {} {} {} {}", ++done, total, impl->name(),
                         name(d), name(l), p.shape_string(), s.name());
            const bool bwd = o.backward && impl->capabilities().backward;
            Cell cell{impl, p, si, s.name(), bwd, check_case(*impl, c, bwd), {}};
            if (cell.result.verdict != Verdict::pass) {
              cell.case_dir = (out / "cases" /
                               path_safe(fmt::format("{}-{}-{}-{}-{}", impl->name(), name(d),
                                                     name(l), s.name(), si)))
                                  .string();
              // The saved case must ask for exactly what was checked: dy.npy means backward.
              Case saved = c;
              if (!bwd) saved.dy.reset();
              save_case(saved, cell.case_dir);
            }
            cells.push_back(std::move(cell));
          }
        }
      }
    }
  }
  if (progress) fmt::print(stderr, "\r\033[K");

  // Aggregate into the table.
  std::map<RowKey, std::map<std::string, Entry>> table;
  for (const Cell& c : cells) {
    Entry& e = table[{c.impl, c.problem.dtype, c.problem.layout}][c.stress];
    e.present = true;
    if (severity(c.result.verdict) > severity(e.verdict)) e.verdict = c.result.verdict;
    const double w = worst_cond_err(c.result);
    if (std::isnan(w) || w > e.worst) e.worst = w;
  }

  // Judge: non-control impls must pass everything; each control must be caught at least once.
  std::vector<const Cell*> real_failures;
  std::map<const Impl*, std::pair<size_t, size_t>> control_counts;  // (checks, caught)
  std::vector<const Cell*> control_errors;
  size_t passed = 0;
  for (const Cell& c : cells) {
    const bool ok = c.result.verdict == Verdict::pass;
    passed += ok;
    if (!c.impl->capabilities().control) {
      if (!ok) real_failures.push_back(&c);
      continue;
    }
    auto& [n, caught] = control_counts[c.impl];
    ++n;
    // An error is a broken control, not a detected one.
    if (c.result.verdict == Verdict::error) control_errors.push_back(&c);
    else if (!ok) ++caught;
  }
  std::vector<const Impl*> blind;
  for (const auto& [impl, counts] : control_counts)
    if (counts.second == 0) blind.push_back(impl);
  const bool success = real_failures.empty() && blind.empty() && control_errors.empty();

  // Render the table once, as plain text and as Markdown.
  std::vector<std::string> headers{"impl", "dtype", "layout"};
  for (const Stress& s : stresses) headers.push_back(short_stress(s));
  std::vector<std::vector<std::string>> body;
  for (const RowKey& r : rows) {
    const bool control = r.impl->capabilities().control;
    std::vector<std::string> line{std::string(r.impl->name()) + (control ? " (control)" : ""),
                                  std::string(name(r.dtype)), std::string(name(r.layout))};
    for (const Stress& s : stresses) line.push_back(entry_text(table[r][s.name()]));
    body.push_back(std::move(line));
  }
  std::vector<size_t> width(headers.size());
  for (size_t i = 0; i < headers.size(); ++i) {
    width[i] = headers[i].size();
    for (const auto& line : body) width[i] = std::max(width[i], line[i].size());
  }
  std::string text, md;
  auto add_text_line = [&](const std::vector<std::string>& line) {
    for (size_t i = 0; i < line.size(); ++i) text += fmt::format("{:<{}}  ", line[i], width[i]);
    while (!text.empty() && text.back() == ' ') text.pop_back();
    text += '\n';
  };
  add_text_line(headers);
  for (const auto& line : body) add_text_line(line);
  md += fmt::format("| {} |\n|", fmt::join(headers, " | "));
  for (size_t i = 0; i < headers.size(); ++i) md += i < 3 ? "---|" : "--:|";
  md += '\n';
  for (const auto& line : body) md += fmt::format("| {} |\n", fmt::join(line, " | "));

  // The summary, shared by stdout and suite.md.
  std::string summary;
  summary += fmt::format("{} checks: {} pass, {} not pass (seed {}, backward {})\n", cells.size(),
                         passed, cells.size() - passed, o.seed, o.backward ? "on" : "off");
  auto describe_cell = [&](const Cell& c) {
    std::string s = fmt::format("- {} {} {} shape {} (G={}{}) {}: {}", c.impl->name(),
                                name(c.problem.dtype), name(c.problem.layout),
                                c.problem.shape_string(), c.problem.G,
                                c.problem.affine ? ", affine" : "", c.stress,
                                verdict_label(c.result.verdict));
    if (c.result.verdict == Verdict::error) s += ": " + c.result.error;
    for (const OutputMetrics& m : c.result.outputs)
      if (m.verdict != Verdict::pass)
        s += fmt::format(" [{} max_cond_err={:.3g} budget={:.3g}]", m.name, m.max_cond_err, m.budget);
    s += fmt::format("\n  reproduce: {}\n",
                     reproduce_command(std::string(c.impl->name()), c.problem, c.stress, o.seed, c.backward));
    if (!c.case_dir.empty())
      s += fmt::format("  replay:    {}\n", reproduce_case_command(std::string(c.impl->name()), c.case_dir));
    return s;
  };
  if (real_failures.empty()) {
    summary += "non-control failures: none\n";
  } else {
    summary += fmt::format("non-control failures: {}\n", real_failures.size());
    for (const Cell* c : real_failures) summary += describe_cell(*c);
  }
  for (const auto& [impl, counts] : control_counts) {
    if (counts.second == 0)
      summary += fmt::format("control {}: NEVER FAILED in {} checks: the harness is blind to its "
                             "defect\n", impl->name(), counts.first);
    else
      summary += fmt::format("control {}: failed {} of {} checks, as expected\n", impl->name(),
                             counts.second, counts.first);
  }
  for (const Cell* c : control_errors) summary += "control error " + describe_cell(*c);
  summary += fmt::format("result: {}\n", success ? "PASS" : "FAIL");

  // suite.json is the source of truth; the Markdown is a view of it.
  nlohmann::json j;
  j["format"] = "gnv-suite";
  j["version"] = 1;
  j["seed"] = o.seed;
  j["backward"] = o.backward;
  nlohmann::json shapes = nlohmann::json::array();
  for (size_t i = 0; i < std::size(kShapes); ++i)
    shapes.push_back({{"index", i}, {"shape", kShapes[i].shape}, {"G", kShapes[i].G},
                      {"affine", kShapes[i].affine}, {"eps", kSuiteEps}});
  j["shapes"] = std::move(shapes);
  nlohmann::json sj = nlohmann::json::array();
  for (const Stress& s : stresses) sj.push_back(s.name());
  j["stresses"] = std::move(sj);
  nlohmann::json cj = nlohmann::json::array();
  for (const Cell& c : cells) {
    nlohmann::json e = to_json(c.problem, c.result);
    e["impl"] = std::string(c.impl->name());
    e["control"] = c.impl->capabilities().control;
    e["dtype"] = std::string(name(c.problem.dtype));
    e["layout"] = std::string(name(c.problem.layout));
    e["problem"] = to_json(c.problem);
    e["shape_index"] = c.shape_index;
    e["stress"] = c.stress;
    e["seed"] = o.seed;
    e["backward"] = c.backward;
    e["reproduce"] = reproduce_command(std::string(c.impl->name()), c.problem, c.stress, o.seed, c.backward);
    if (!c.case_dir.empty()) e["case_dir"] = c.case_dir;
    cj.push_back(std::move(e));
  }
  j["cells"] = std::move(cj);
  nlohmann::json controls = nlohmann::json::object();
  for (const auto& [impl, counts] : control_counts)
    controls[std::string(impl->name())] = {{"checks", counts.first}, {"failed", counts.second},
                                           {"blind", counts.second == 0}};
  j["summary"] = {{"checks", cells.size()},
                  {"passed", passed},
                  {"non_control_failures", real_failures.size()},
                  {"control_errors", control_errors.size()},
                  {"controls", std::move(controls)},
                  {"result", success ? "PASS" : "FAIL"}};
  write_file_atomic(out / "suite.json", j.dump(2) + "\n");
  write_file_atomic(out / "suite.md",
                    fmt::format("# gnv suite\n\nEach entry: the worst verdict over {} shapes and "
                                "the largest condition-scaled error (`max_cond_err`).\n\n{}\n## "
                                "Summary\n\n```\n{}```\n",
                                std::size(kShapes), md, summary));

  fmt::print("{}\n{}", text, summary);
  fmt::print("wrote {} and {}\n", (out / "suite.json").string(), (out / "suite.md").string());
  return success ? kExitPass : kExitFail;
}

}  // namespace

Command register_suite(CLI::App& app) {
  auto o = std::make_shared<SuiteOptions>();
  CLI::App* sub = app.add_subcommand(
      "suite", "Check every implementation x dtype x layout on the default shapes and stress "
               "classes; write OUT/suite.json, OUT/suite.md and OUT/cases/ for failures");
  sub->add_option("--impl", o->impls, "Implementations (comma list; default: all)")->delimiter(',');
  sub->add_option("--dtype", o->dtypes, "Dtypes (comma list; default: all each impl supports)")
      ->delimiter(',');
  sub->add_option("--layout", o->layouts, "Layouts (comma list; default: both)")->delimiter(',');
  // Last one wins, so scripts/run.sh's default --out can be overridden by its caller.
  sub->add_option("--out", o->out, "Output directory")
      ->capture_default_str()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  sub->add_flag("--backward,!--no-backward", o->backward, "Also check the backward pass (default on)");
  sub->add_option("--seed", o->seed, "Generator seed for every case")
      ->capture_default_str()
      ->check(non_negative_integer());
  return {sub, [o] { return run_suite(*o); }};
}

}  // namespace gnv::cli
