// Views of a parsed report: report.md (fits a CI job summary), junit.xml (one testcase per
// cell), and the text `gnv sweep` prints. Nothing here measures or judges: verdicts and errors
// come from the report, the pass/fail rule from summarize().
#include <algorithm>
#include <cmath>
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
// classes in grid order; each entry the worst verdict and the largest max_cond_err of its cells.
struct Entry {
  Verdict verdict = Verdict::pass;
  double worst = 0;
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
    if (severity(c.result.verdict) > severity(e.verdict)) e.verdict = c.result.verdict;
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
  if (no_result(e.verdict))
    return markdown ? "⚠ " + verdict_label(e.verdict) : verdict_label(e.verdict);
  if (!markdown) return fmt::format("{} {}", verdict_label(e.verdict), num(e.worst));
  const char* mark = e.verdict == Verdict::pass ? "✓" : control ? "✗ctl" : "✗";
  const char* extra = e.verdict == Verdict::unwritten ? " UNWRITTEN" : "";
  return fmt::format("{} {}{}", mark, num(e.worst), extra);
}

std::string md_escape(std::string s) {
  std::string out;
  for (char ch : s) {
    if (ch == '|') out += "\\|";
    else if (ch == '\n' || ch == '\r') out += ' ';
    else out += ch;
  }
  return out;
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
  if (no_result(c.result.verdict)) s += fmt::format(" {}: {}", name(c.result.verdict), c.result.error);
  for (const OutputMetrics& m : c.result.outputs) {
    if (m.verdict == Verdict::pass) continue;
    s += fmt::format(" [{} {} max_cond_err={} budget={} max_ulp={}", m.name, verdict_label(m.verdict),
                     num(m.max_cond_err), num(m.budget), num(m.max_ulp));
    if (m.unwritten) s += fmt::format(" unwritten={}", m.unwritten);
    if (m.policy_violations) s += fmt::format(" policy_violations={}", m.policy_violations);
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

std::string replay_command(const Report& r, const Cell& c) {
  const auto it = r.grid.external.find(c.impl);
  const std::string load = it == r.grid.external.end() ? "" : " " + it->second;
  return fmt::format("gnv check --case {}{} --impl {}", c.case_dir, load, c.impl);
}

namespace {

std::string headline(const Report& r, const Summary& s) {
  std::string h = fmt::format("{} cells, {} pass, {} non-control failures", s.cells, s.passed,
                              s.failures.size());
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
  std::string md = fmt::format("# gnv accuracy report: preset `{}`\n\n", r.grid.preset);
  md += fmt::format("**Result: {}** — {}.\n\n", s.passed_all ? "PASS" : "FAIL", headline(r, s));

  md += "## Worst condition-scaled error\n\n"
        "Each entry: the worst verdict over the shapes, groups and seeds of that stress class, and the "
        "largest condition-scaled error `max_cond_err` over their outputs (the verdict metric: about 1 is "
        "the final rounding to the output dtype; the budget is 4 + 2·log2(L)). ✓ pass, ✗ fail, ✗ctl a "
        "control's expected failure, ⚠ error, - not run.\n\n";
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
    md += "\n## Breakdown points\n\nThe smallest `offset:K` at which an implementation fails (any shape, "
          "layout, seed or output); `none (≤ K)` when every offset up to K passed.\n\n";
    std::vector<std::string> impls, dtypes;
    std::map<std::pair<std::string, std::string>, const Breakdown*> by;
    for (const Breakdown& b : s.breakdown) {
      if (std::find(impls.begin(), impls.end(), b.impl) == impls.end()) impls.push_back(b.impl);
      by[{b.impl, b.dtype}] = &b;
    }
    for (const std::string& d : r.grid.dtypes)
      for (const Breakdown& b : s.breakdown)
        if (b.dtype == d) {
          dtypes.push_back(d);
          break;
        }
    md += fmt::format("| impl | {} |\n|---|", fmt::join(dtypes, " | "));
    for (size_t i = 0; i < dtypes.size(); ++i) md += "--:|";
    md += '\n';
    for (const std::string& impl : impls) {
      bool control = false;
      std::vector<std::string> line;
      for (const std::string& d : dtypes) {
        auto it = by.find({impl, d});
        line.push_back(it == by.end() ? "-" : breakdown_text(*it->second));
        if (it != by.end()) control = it->second->control;
      }
      md += fmt::format("| {} | {} |\n", impl_label(impl, control), fmt::join(line, " | "));
    }
  }

  md += "\n## Failures\n\n";
  if (s.failures.empty() && s.control_errors.empty()) md += "No non-control cell failed.\n";
  std::vector<const Cell*> listed = s.failures;
  listed.insert(listed.end(), s.control_errors.begin(), s.control_errors.end());
  for (size_t i = 0; i < listed.size() && i < kMaxListed; ++i) {
    const Cell& c = *listed[i];
    md += fmt::format("- `{}` ({}, G={}{}): **{}**{}\n  - reproduce: `{}`\n", c.id(), c.problem.shape_string(),
                      c.problem.G, c.problem.affine ? ", affine" : "", verdict_label(c.result.verdict),
                      md_escape(failure_detail(c)), c.reproduce);
    if (!c.case_dir.empty()) md += fmt::format("  - replay (from the report's folder): `{}`\n", replay_command(r, c));
  }
  if (listed.size() > kMaxListed)
    md += fmt::format("- … and {} more in report.json\n", listed.size() - kMaxListed);

  md += "\n## Controls\n\n";
  const std::vector<std::string> cl = control_lines(s);
  if (cl.empty()) md += "No control implementation in this grid.\n";
  for (const std::string& l : cl) md += "- " + l + "\n";
  // One reproducer of a control's failure shows what the harness catches.
  for (const auto& [impl, cs] : s.controls) {
    for (const Cell& c : r.cells) {
      if (c.impl != impl || c.result.verdict != Verdict::fail) continue;
      md += fmt::format("  - e.g. `{}`:{}\n    reproduce: `{}`\n", c.id(), md_escape(failure_detail(c)), c.reproduce);
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
  if (!s.breakdown.empty()) {
    text += "breakdown points (smallest failing offset):";
    for (const Breakdown& b : s.breakdown)
      text += fmt::format(" {}/{}={}", b.impl, b.dtype, b.offset ? offset_text(*b.offset) : "none");
    text += "\n";
  }
  if (s.failures.empty()) text += "non-control failures: none\n";
  else text += fmt::format("non-control failures: {}\n", s.failures.size());
  std::vector<const Cell*> listed = s.failures;
  listed.insert(listed.end(), s.control_errors.begin(), s.control_errors.end());
  for (size_t i = 0; i < listed.size() && i < kMaxListed; ++i) {
    const Cell& c = *listed[i];
    text += fmt::format("- {} {}{}\n  reproduce: {}\n", c.id(), verdict_label(c.result.verdict),
                        failure_detail(c), c.reproduce);
    if (!c.case_dir.empty()) text += fmt::format("  replay:    {}\n", replay_command(r, c));
  }
  if (listed.size() > kMaxListed) text += fmt::format("- ... and {} more in report.json\n", listed.size() - kMaxListed);
  for (const std::string& l : control_lines(s)) text += l + "\n";
  text += fmt::format("result: {}\n", s.passed_all ? "PASS" : "FAIL");
  return text;
}

std::string render_junit(const Report& r) {
  const Summary s = summarize(r);
  // One testsuite per impl, in grid order; a control's expected failure is a passing testcase
  // (CI must not go red for it), and each control gets one testcase saying whether it was caught.
  std::map<std::string, std::vector<const Cell*>> by_impl;
  for (const Cell& c : r.cells) by_impl[c.impl].push_back(&c);
  std::string body;
  size_t total = 0, failures = 0, errors = 0;
  double total_time = 0;
  for (const std::string& impl : r.grid.impls) {
    auto it = by_impl.find(impl);
    if (it == by_impl.end()) continue;
    size_t f = 0, e = 0;
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
      const std::string detail = xml_escape(fmt::format("{}{}\nreproduce: {}{}", verdict_label(c->result.verdict),
                                                        failure_detail(*c), c->reproduce,
                                                        c->case_dir.empty() ? "" : "\nreplay: " + replay_command(r, *c)));
      if (c->result.verdict == Verdict::pass) {
        cases += "/>\n";
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
    body += fmt::format("  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"0\" "
                        "time=\"{:.6f}\">\n{}  </testsuite>\n",
                        xml_escape(impl_label(impl, control)), n, f, e, time, cases);
    total += n;
    failures += f;
    errors += e;
    total_time += time;
  }
  return fmt::format("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"{}\" tests=\"{}\" "
                     "failures=\"{}\" errors=\"{}\" time=\"{:.6f}\">\n{}</testsuites>\n",
                     xml_escape(fmt::format("gnv sweep, preset {}", r.grid.preset)), total, failures, errors,
                     total_time, body);
}

}  // namespace gnv::report
