// Views of a parsed report: report.md (fits a CI job summary), junit.xml (one testcase per
// cell), and the text `gnv sweep` prints. Nothing here measures or judges: verdicts and errors
// come from the report, the pass/fail rule from summarize().
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <map>
#include <set>

#include "gnv/report.h"
#include "gnv/stress.h"

namespace gnv::report {

namespace {

// Long lists stay readable and a CI job summary stays under its size limit; the JSON has all.
constexpr size_t kMaxListed = 50;

// Verdicts ordered by how much they say about the kernel: an error hides everything else.
int severity(Verdict v) {
  switch (v) {
    case Verdict::pass: return 0;
    case Verdict::fail: return 1;
    case Verdict::unwritten: return 2;
    case Verdict::timeout: return 3;
    case Verdict::crash: return 4;
    case Verdict::error: return 5;
    case Verdict::skipped: return -1;  // never the worst: SKIPPED cells are counted beside
  }
  return 5;
}

// Column headers: "offset:100000000" is too wide for a table column.
std::string short_stress(const std::string& stress) {
  try {
    const Stress s = parse_stress(stress);
    if (s.kind != StressKind::offset) return stress;
    const double e = std::log10(s.param);
    if (e == std::round(e)) return fmt::format("off:1e{}", static_cast<int>(e));
    return fmt::format("off:{:g}", s.param);
  } catch (const std::invalid_argument&) {
    return stress;
  }
}

std::string num(double v) { return fmt::format("{:.3g}", v); }

std::string impl_label(const std::string& impl, bool control) {
  return control ? impl + " (control)" : impl;
}

// The impl x stress-class table: rows (impl, dtype, layout) in grid order, columns the stress
// classes in grid order; each entry the worst verdict and the largest max_cond_err of its judged
// cells, and how many were skipped, waived (XFAIL) or passed under a waiver (XPASS).
struct Entry {
  Verdict verdict = Verdict::pass;  // over judged, unwaived cells
  double worst = 0;
  size_t judged = 0, skipped = 0, xfail = 0, xpass = 0;
  bool present = false;
};
struct Table {
  std::vector<std::string> stresses;
  struct Row {
    std::string impl, dtype, layout;
    bool control = false;
    std::map<std::string, Entry> entries;
  };
  std::vector<Row> rows;
};

Table make_table(const Report& r) {
  Table t;
  std::set<std::string> seen;
  for (const Section& s : r.grid.sections)
    for (const std::string& st : s.stresses)
      if (seen.insert(st).second) t.stresses.push_back(st);
  std::map<std::tuple<std::string, std::string, std::string>, Table::Row> rows;
  for (const Cell& c : r.cells) {
    Table::Row& row = rows[{c.impl, std::string(name(c.problem.dtype)), std::string(name(c.problem.layout))}];
    row.impl = c.impl;
    row.dtype = name(c.problem.dtype);
    row.layout = name(c.problem.layout);
    row.control = c.control;
    Entry& e = row.entries[c.stress];
    e.present = true;
    if (!c.judged()) {
      ++e.skipped;
      continue;
    }
    ++e.judged;
    if (c.xfail()) ++e.xfail;
    else if (c.xpass()) ++e.xpass;
    else if (severity(c.result.verdict) > severity(e.verdict)) e.verdict = c.result.verdict;
    const double w = worst_cond_err(c.result);
    if (!std::isnan(e.worst) && (std::isnan(w) || w > e.worst)) e.worst = w;  // NaN sticks
  }
  for (const std::string& impl : r.grid.impls)
    for (const std::string& d : r.grid.dtypes)
      for (const std::string& l : r.grid.layouts)
        if (auto it = rows.find({impl, d, l}); it != rows.end()) t.rows.push_back(std::move(it->second));
  return t;
}

std::string entry_text(const Entry& e, bool markdown, bool control) {
  if (!e.present) return "-";
  if (e.judged == 0) return markdown ? fmt::format("⊘ {} skipped", e.skipped) : fmt::format("SKIPPED {}", e.skipped);
  std::string text;
  if (no_result(e.verdict)) text = markdown ? "⚠ " + verdict_label(e.verdict) : verdict_label(e.verdict);
  else if (!markdown) text = fmt::format("{} {}", verdict_label(e.verdict), num(e.worst));
  else text = fmt::format("{} {}{}", e.verdict == Verdict::pass ? "✓" : control ? "✗ctl" : "✗", num(e.worst),
                          e.verdict == Verdict::unwritten ? " UNWRITTEN" : "");
  if (e.xpass) text += fmt::format(" {}XPASS", e.xpass > 1 ? fmt::format("{} ", e.xpass) : "");
  if (e.xfail) text += fmt::format(" {}XFAIL", e.xfail > 1 ? fmt::format("{} ", e.xfail) : "");
  if (e.skipped) text += fmt::format(" ({} skipped)", e.skipped);
  return text;
}

// Text from kernels, runners and other machines' reports: no table breaks, no raw HTML (GitHub
// renders some tags in Markdown), no control bytes.
std::string md_escape(std::string s) {
  std::string out;
  for (char ch : s) {
    if (ch == '|') out += "\\|";
    else if (ch == '<') out += "&lt;";
    else if (ch == '>') out += "&gt;";
    else if (ch == '&') out += "&amp;";
    else if (ch == '\n' || ch == '\r') out += ' ';
    else if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) out += '?';
    else out += ch;
  }
  return out;
}

// Text inside a `code span`: entities would show literally there, so only what would end the span
// or the line, or is a control byte, is replaced.
std::string md_code(std::string s) {
  for (char& ch : s)
    if (ch == '`') ch = '\'';
    else if (ch == '\n' || ch == '\r' || static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = '?';
  return s;
}

std::string offset_text(double k) {
  const double e = std::log10(k);
  if (e == std::round(e)) return fmt::format("1e{}", static_cast<int>(e));
  return fmt::format("{:g}", k);
}

std::string breakdown_text(const Breakdown& b) {
  if (b.offset) return offset_text(*b.offset);
  return fmt::format("none (≤ {})", offset_text(b.max_tested));
}

// One line per output that did not pass, with the numbers that explain it.
std::string failure_detail(const Cell& c) {
  std::string s;
  if (has_reason(c.result.verdict)) s += fmt::format(" {}: {}", name(c.result.verdict), c.result.error);
  if (c.waiver)
    s += fmt::format(" waiver: {}{}", c.waiver->reason, c.waiver->link.empty() ? "" : " (" + c.waiver->link + ")");
  for (const OutputMetrics& m : c.result.outputs) {
    if (m.verdict == Verdict::pass) continue;
    s += fmt::format(" [{} {} max_cond_err={} budget={} max_ulp={}", m.name, verdict_label(m.verdict),
                     num(m.max_cond_err), num(m.budget), num(m.max_ulp));
    if (m.unwritten) s += fmt::format(" unwritten={}", m.unwritten);
    if (m.policy_violations) s += fmt::format(" policy_violations={}", m.policy_violations);
    if (m.ill_posed) s += fmt::format(" ill_posed={}", m.ill_posed);
    if (m.worst_index >= 0) {
      const int d = c.problem.dtype == DType::f64 ? 17 : 9;
      s += fmt::format(" worst {} expected={:.{}g} actual={:.{}g}", describe_index(c.problem, m.name, m.worst_index),
                       m.worst_expected, d, m.worst_actual, d);
    }
    s += "]";
  }
  s += fmt::format(" κ {}..{}", num(c.result.kappa_min), num(c.result.kappa_max));
  return s;
}

}  // namespace

std::string shell_word(const std::string& s) {
  const bool plain = !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char ch) {
    return std::isalnum(ch) || std::strchr("_./:=,+-@%", ch) != nullptr;
  });
  if (plain) return s;
  std::string out = "'";
  for (char ch : s) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

std::string gnv_command() {
  // The gnv that is running, by absolute path, so that a replay line works from any directory and
  // with the same build; "gnv" when this is not the gnv binary (a test, the Python package).
  static const std::string cmd = [] {
    std::error_code ec;
    const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
    return !ec && self.filename() == "gnv" ? shell_word(self.string()) : std::string("gnv");
  }();
  return cmd;
}

std::string replay_command(const Report& r, const Cell& c) {
  // Every word from the report is quoted: a shard's report comes from another machine.
  const auto it = r.grid.external.find(c.impl);
  const std::string load = it == r.grid.external.end() ? "" : " " + it->second;
  const std::string budget =
      r.grid.budget == BudgetProfile::pairwise ? "" : fmt::format(" --budget {}", name(r.grid.budget));
  return fmt::format("{} check --case {}{} --impl {}{}", gnv_command(), shell_word(c.case_dir), load,
                     shell_word(c.impl), budget);
}

namespace {

std::string headline(const Report& r, const Summary& s) {
  std::string h = fmt::format("{} cells, {} pass, {} non-control failures", s.cells, s.passed,
                              s.failures.size());
  if (s.skipped) h += fmt::format(", {} skipped", s.skipped);
  if (!s.xfails.empty()) h += fmt::format(", {} XFAIL", s.xfails.size());
  if (!s.xpasses.empty()) h += fmt::format(", {} XPASS (stale waivers)", s.xpasses.size());
  for (const std::string& impl : s.unjudged) h += fmt::format("; {} declined every cell: nothing judged", impl);
  for (const auto& [impl, cs] : s.controls)
    h += fmt::format("; control {} failed {} of {} cells", impl, cs.failed, cs.cells);
  if (r.shard.count > 1) h += fmt::format(" (shard {}/{})", r.shard.index, r.shard.count);
  return h;
}

std::vector<std::string> control_lines(const Summary& s) {
  std::vector<std::string> v;
  for (const auto& [impl, cs] : s.controls) {
    std::string line;
    if (cs.blind && s.blind_rule_applied)
      line = fmt::format("control {}: NEVER FAILED in {} cells, offsets >= 1e4 included: the harness is "
                         "blind to its defect", impl, cs.cells);
    else if (cs.blind)
      line = fmt::format("control {}: no failure in this shard's {} cells (judged when the shards are "
                         "merged)", impl, cs.cells);
    else if (!cs.applicable && cs.failed == 0)
      line = fmt::format("control {}: no failure in {} cells, none with an offset >= 1e4 (not judged)",
                         impl, cs.cells);
    else
      line = fmt::format("control {}: failed {} of {} cells, as expected", impl, cs.failed, cs.cells);
    if (cs.errors) line += fmt::format("; {} ERROR cells (a broken control)", cs.errors);
    v.push_back(line);
  }
  return v;
}

std::string xml_escape(std::string_view s) {
  std::string out;
  for (unsigned char ch : s) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        // XML 1.0 forbids most control characters, even escaped.
        if (ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r') out += '?';
        else out += static_cast<char>(ch);
    }
  }
  return out;
}

}  // namespace

std::string render_markdown(const Report& r) {
  const Summary s = summarize(r);
  const Table t = make_table(r);
  std::string md = fmt::format("# gnv accuracy report: grid `{}`\n\n", r.grid.preset);
  md += fmt::format("**Result: {}** — {}.\n\n", s.passed_all ? "PASS" : "FAIL", headline(r, s));
  md += fmt::format("Budget profile: **{}** (`max_cond_err ≤ {}`, docs/numerics.md \"Budgets\").\n\n", name(r.grid.budget),
                    r.grid.budget == BudgetProfile::sequential ? "4 + 16·√L" : "4 + 2·log2(L)");

  md += "## Worst condition-scaled error\n\n"
        "Each entry: the worst verdict over the shapes, groups and seeds of that stress class, and the "
        "largest condition-scaled error `max_cond_err` over their outputs (the verdict metric: about 1 is "
        "the final rounding to the output dtype; the budget is the profile's, above). ✓ pass, ✗ fail, ✗ctl a "
        "control's expected failure, ⚠ error, ⊘ skipped (the kernel declined every case), XFAIL a waived "
        "failure, XPASS a waived cell that passed, (n skipped) cells the kernel declined beside the judged "
        "ones, - not run.\n\n";
  std::vector<std::string> head{"impl", "dtype", "layout"};
  for (const std::string& st : t.stresses) head.push_back(short_stress(st));
  md += fmt::format("| {} |\n|", fmt::join(head, " | "));
  for (size_t i = 0; i < head.size(); ++i) md += i < 3 ? "---|" : "--:|";
  md += '\n';
  for (const Table::Row& row : t.rows) {
    std::vector<std::string> line{impl_label(row.impl, row.control), row.dtype, row.layout};
    for (const std::string& st : t.stresses) {
      auto it = row.entries.find(st);
      line.push_back(it == row.entries.end() ? "-" : entry_text(it->second, true, row.control));
    }
    md += fmt::format("| {} |\n", fmt::join(line, " | "));
  }

  if (!s.breakdown.empty()) {
    md += "\n## Breakdown points\n\nThe smallest `offset:K` at which an implementation fails, per dtype and "
          "layout (any shape, seed or output; judged cells only, SKIPPED ones are left out); `none (≤ K)` when "
          "every offset up to K passed.\n\n";
    std::vector<std::pair<std::string, std::string>> rows;  // (impl, layout) in grid order
    std::vector<std::string> dtypes;
    std::map<std::tuple<std::string, std::string, std::string>, const Breakdown*> by;
    for (const Breakdown& b : s.breakdown) {
      if (std::find(rows.begin(), rows.end(), std::pair{b.impl, b.layout}) == rows.end()) rows.emplace_back(b.impl, b.layout);
      by[{b.impl, b.layout, b.dtype}] = &b;
    }
    for (const std::string& d : r.grid.dtypes)
      if (std::any_of(s.breakdown.begin(), s.breakdown.end(), [&](const Breakdown& b) { return b.dtype == d; }))
        dtypes.push_back(d);
    md += fmt::format("| impl | layout | {} |\n|---|---|", fmt::join(dtypes, " | "));
    for (size_t i = 0; i < dtypes.size(); ++i) md += "--:|";
    md += '\n';
    for (const auto& [impl, layout] : rows) {
      bool control = false;
      std::vector<std::string> line;
      for (const std::string& d : dtypes) {
        auto it = by.find({impl, layout, d});
        line.push_back(it == by.end() ? "-" : breakdown_text(*it->second));
        if (it != by.end()) control = it->second->control;
      }
      md += fmt::format("| {} | {} | {} |\n", impl_label(impl, control), layout, fmt::join(line, " | "));
    }
  }

  md += "\n## Failures\n\n";
  if (s.failures.empty() && s.control_errors.empty() && s.xpasses.empty()) md += "No non-control cell failed.\n";
  auto list_cells = [&](const std::vector<const Cell*>& listed) {
    for (size_t i = 0; i < listed.size() && i < kMaxListed; ++i) {
      const Cell& c = *listed[i];
      md += fmt::format("- `{}` ({}, G={}{}{}): **{}**{}\n  - reproduce: `{}`\n", md_code(c.id()),
                        c.problem.shape_string(), c.problem.G,
                        !c.problem.affine ? "" : c.problem.per_sample() ? ", per-sample affine" : ", affine",
                        c.problem.epilogue == Epilogue::none ? "" : ", " + std::string(name(c.problem.epilogue)),
                        cell_label(c),
                        md_escape(failure_detail(c)), md_code(c.reproduce));
      if (!c.case_dir.empty())
        md += fmt::format("  - replay (from the report's folder): `{}`\n", md_code(replay_command(r, c)));
    }
    if (listed.size() > kMaxListed) md += fmt::format("- … and {} more in report.json\n", listed.size() - kMaxListed);
  };
  std::vector<const Cell*> listed = s.xpasses;  // a stale waiver fails the run: first
  listed.insert(listed.end(), s.failures.begin(), s.failures.end());
  listed.insert(listed.end(), s.control_errors.begin(), s.control_errors.end());
  list_cells(listed);
  if (!s.xfails.empty()) {
    md += fmt::format("\n## Expected failures (XFAIL)\n\n{} cells failed under a waiver (`--waivers`); they do "
                      "not fail the run.\n\n", s.xfails.size());
    list_cells(s.xfails);
  }
  if (s.skipped) {
    md += fmt::format("\n## Skipped\n\n{} cells were declined by their kernel (a capability it does not "
                      "declare, `GNV_ERR_UNSUPPORTED`, a runner's `unsupported.txt`); e.g.:\n\n", s.skipped);
    std::set<std::string> reasons;
    for (const Cell& c : r.cells)
      if (!c.judged() && reasons.size() < 5 && reasons.insert(c.impl + ": " + c.result.error).second)
        md += fmt::format("- `{}`: {}\n", md_code(c.id()), md_escape(c.result.error));
  }
  if (r.saved.omitted)
    md += fmt::format("\n{} cases saved under `cases/` (`--save-cases {}`); {} more were left out by the cap of "
                      "{} (`--max-saved-cases`).\n", r.saved.saved, name(r.saved.policy), r.saved.omitted, r.saved.max);

  md += "\n## Controls\n\n";
  const std::vector<std::string> cl = control_lines(s);
  if (cl.empty()) md += "No control implementation in this grid.\n";
  for (const std::string& l : cl) md += "- " + l + "\n";
  // One reproducer of a control's failure shows what the harness catches.
  for (const auto& [impl, cs] : s.controls) {
    for (const Cell& c : r.cells) {
      if (c.impl != impl || c.result.verdict != Verdict::fail) continue;
      md += fmt::format("  - e.g. `{}`:{}\n    reproduce: `{}`\n", md_code(c.id()), md_escape(failure_detail(c)),
                        md_code(c.reproduce));
      break;
    }
  }

  md += "\n## Grid\n\n" + describe_grid(r.grid);
  if (r.shard.count > 1) md += fmt::format("\nThis report is shard {} of {}.\n", r.shard.index, r.shard.count);

  md += "\n## Environment\n\n| | |\n|---|---|\n";
  const Environment& e = r.env;
  std::vector<std::pair<std::string, std::string>> env{
      {"gnv", e.gnv_version},    {"git revision", e.git_revision}, {"date", e.date},
      {"compiler", e.compiler},  {"flags", e.compiler_flags},      {"build type", e.build_type},
      {"CPU", fmt::format("{} ({} threads)", e.cpu, e.cpu_cores)}, {"GPU", e.gpu}, {"OS", e.os}};
  std::vector<std::string> libs;
  for (const auto& [k, v] : e.libraries) libs.push_back(k + " " + v);
  env.push_back({"libraries", fmt::format("{}", fmt::join(libs, ", "))});
  env.push_back({"run", fmt::format("{:.1f} s with {} jobs", r.timing.wall_s, r.timing.jobs)});
  for (const auto& [k, v] : env) md += fmt::format("| {} | {} |\n", k, md_escape(v));
  return md;
}

std::string render_text(const Report& r) {
  const Summary s = summarize(r);
  const Table t = make_table(r);
  std::vector<std::string> head{"impl", "dtype", "layout"};
  for (const std::string& st : t.stresses) head.push_back(short_stress(st));
  std::vector<std::vector<std::string>> body;
  for (const Table::Row& row : t.rows) {
    std::vector<std::string> line{impl_label(row.impl, row.control), row.dtype, row.layout};
    for (const std::string& st : t.stresses) {
      auto it = row.entries.find(st);
      line.push_back(it == row.entries.end() ? "-" : entry_text(it->second, false, row.control));
    }
    body.push_back(std::move(line));
  }
  std::vector<size_t> width(head.size());
  for (size_t i = 0; i < head.size(); ++i) {
    width[i] = head[i].size();
    for (const auto& line : body) width[i] = std::max(width[i], line[i].size());
  }
  std::string text;
  auto add = [&](const std::vector<std::string>& line) {
    for (size_t i = 0; i < line.size(); ++i) text += fmt::format("{:<{}}  ", line[i], width[i]);
    while (!text.empty() && text.back() == ' ') text.pop_back();
    text += '\n';
  };
  add(head);
  for (const auto& line : body) add(line);
  text += "\n" + headline(r, s) + "\n";
  if (r.grid.budget != BudgetProfile::pairwise) text += fmt::format("budget profile: {}\n", name(r.grid.budget));
  if (!s.breakdown.empty()) {
    text += "breakdown points (smallest failing offset):";
    for (const Breakdown& b : s.breakdown)
      text += fmt::format(" {}/{}/{}={}", b.impl, b.dtype, b.layout, b.offset ? offset_text(*b.offset) : "none");
    text += "\n";
  }
  if (s.failures.empty()) text += "non-control failures: none\n";
  else text += fmt::format("non-control failures: {}\n", s.failures.size());
  auto list_cells = [&](const std::vector<const Cell*>& listed) {
    for (size_t i = 0; i < listed.size() && i < kMaxListed; ++i) {
      const Cell& c = *listed[i];
      text += fmt::format("- {} {}{}\n  reproduce: {}\n", c.id(), cell_label(c), failure_detail(c), c.reproduce);
      if (!c.case_dir.empty()) text += fmt::format("  replay:    {}\n", replay_command(r, c));
    }
    if (listed.size() > kMaxListed) text += fmt::format("- ... and {} more in report.json\n", listed.size() - kMaxListed);
  };
  std::vector<const Cell*> listed = s.xpasses;
  listed.insert(listed.end(), s.failures.begin(), s.failures.end());
  listed.insert(listed.end(), s.control_errors.begin(), s.control_errors.end());
  if (!s.xpasses.empty())
    text += fmt::format("XPASS: {} waived cells passed: remove their waivers (strict, like pytest's xfail)\n",
                        s.xpasses.size());
  list_cells(listed);
  if (!s.xfails.empty()) {
    text += fmt::format("expected failures (XFAIL, waived): {}\n", s.xfails.size());
    list_cells(s.xfails);
  }
  if (s.skipped) text += fmt::format("skipped (declined by the kernel): {}\n", s.skipped);
  if (r.saved.omitted)
    text += fmt::format("saved cases: {} (--save-cases {}); {} more left out by --max-saved-cases {}\n", r.saved.saved,
                        name(r.saved.policy), r.saved.omitted, r.saved.max);
  for (const std::string& l : control_lines(s)) text += l + "\n";
  text += fmt::format("result: {}\n", s.passed_all ? "PASS" : "FAIL");
  // For a terminal: a report from another machine may carry escape sequences in its texts.
  for (char& ch : text)
    if (ch != '\n' && (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f)) ch = '?';
  return text;
}

std::string render_junit(const Report& r) {
  const Summary s = summarize(r);
  // One testsuite per impl, in grid order; a control's expected failure is a passing testcase
  // (CI must not go red for it), and each control gets one testcase saying whether it was caught.
  std::map<std::string, std::vector<const Cell*>> by_impl;
  for (const Cell& c : r.cells) by_impl[c.impl].push_back(&c);
  std::string body;
  size_t total = 0, failures = 0, errors = 0, skipped = 0;
  double total_time = 0;
  for (const std::string& impl : r.grid.impls) {
    auto it = by_impl.find(impl);
    if (it == by_impl.end()) continue;
    size_t f = 0, e = 0, sk = 0;
    double time = 0;
    std::string cases;
    const bool control = it->second.front()->control;
    for (const Cell* c : it->second) {
      time += c->seconds;
      cases += fmt::format("    <testcase classname=\"{}\" name=\"{}\" time=\"{:.6f}\"",
                           xml_escape(fmt::format("gnv.{}.{}.{}", impl, name(c->problem.dtype), name(c->problem.layout))),
                           xml_escape(fmt::format("{}/{}/G{}/{}/seed{}", c->section, c->shape_name, c->problem.G,
                                                  c->stress, c->seed)),
                           c->seconds);
      const std::string detail = xml_escape(fmt::format("{}{}\nreproduce: {}{}", cell_label(*c),
                                                        failure_detail(*c), c->reproduce,
                                                        c->case_dir.empty() ? "" : "\nreplay: " + replay_command(r, *c)));
      if (c->xpass()) {  // strict: a waived cell that passes fails, so that its waiver is removed
        ++f;
        cases += fmt::format(">\n      <failure type=\"XPASS\" message=\"{}\">{}</failure>\n    </testcase>\n",
                             xml_escape(fmt::format("XPASS on {}: passed under the waiver '{}'; remove the waiver",
                                                    c->id(), c->waiver->reason)),
                             detail);
      } else if (c->result.verdict == Verdict::pass) {
        cases += "/>\n";
      } else if (!c->judged() || c->xfail()) {  // pytest's convention: xfail is a skipped testcase
        ++sk;
        cases += fmt::format(">\n      <skipped type=\"{}\" message=\"{}\"/>\n      <system-out>{}</system-out>\n    "
                             "</testcase>\n",
                             c->xfail() ? "XFAIL" : "SKIPPED",
                             xml_escape(c->xfail() ? "expected failure: " + c->waiver->reason : c->result.error), detail);
      } else if (no_result(c->result.verdict)) {
        ++e;
        cases += fmt::format(">\n      <error type=\"{}\" message=\"{}\">{}</error>\n    </testcase>\n",
                             verdict_label(c->result.verdict), xml_escape(c->result.error), detail);
      } else if (c->control) {
        cases += fmt::format(">\n      <system-out>control, expected to fail: {}</system-out>\n    </testcase>\n", detail);
      } else {
        ++f;
        cases += fmt::format(">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>\n",
                             verdict_label(c->result.verdict),
                             xml_escape(fmt::format("{} on {}", verdict_label(c->result.verdict), c->id())), detail);
      }
    }
    size_t n = it->second.size();
    if (std::find(s.unjudged.begin(), s.unjudged.end(), impl) != s.unjudged.end()) {
      ++n;
      ++f;
      cases += fmt::format("    <testcase classname=\"gnv.{}\" name=\"judged at least one cell\" time=\"0\">\n"
                           "      <failure type=\"UNJUDGED\" message=\"every cell was SKIPPED\">{} declined every one "
                           "of its {} cells: nothing of it was judged</failure>\n    </testcase>\n",
                           xml_escape(impl), xml_escape(impl), it->second.size());
    }
    if (control) {
      const ControlSummary& cs = s.controls.at(impl);
      ++n;
      cases += fmt::format("    <testcase classname=\"gnv.{}\" name=\"control is caught\" time=\"0\"", xml_escape(impl));
      if (cs.blind && s.blind_rule_applied) {
        ++f;
        cases += fmt::format(">\n      <failure type=\"BLIND\" message=\"control never failed\">control {} never "
                             "failed in {} cells, offsets &gt;= 1e4 included: the harness is blind to its "
                             "defect</failure>\n    </testcase>\n", xml_escape(impl), cs.cells);
      } else {
        cases += fmt::format(">\n      <system-out>failed {} of {} cells</system-out>\n    </testcase>\n",
                             cs.failed, cs.cells);
      }
    }
    body += fmt::format("  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" "
                        "time=\"{:.6f}\">\n{}  </testsuite>\n",
                        xml_escape(impl_label(impl, control)), n, f, e, sk, time, cases);
    total += n;
    failures += f;
    errors += e;
    skipped += sk;
    total_time += time;
  }
  const bool validate = !r.grid.external.empty();
  return fmt::format("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"{}\" tests=\"{}\" "
                     "failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.6f}\">\n{}</testsuites>\n",
                     xml_escape(fmt::format("gnv {}, grid {}", validate ? "validate" : "sweep", r.grid.preset)), total,
                     failures, errors, skipped, total_time, body);
}

}  // namespace gnv::report
