// Joining shard reports and comparing a report with a baseline: both work on parsed reports only.
#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <limits>
#include <map>
#include <set>

#include "gnv/report.h"

namespace gnv::report {

namespace {

bool same_double(double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); }

// The first difference between two grids, apart from their impls, or empty.
std::string section_mismatch(const Grid& a, const Grid& b) {
  if (a.preset != b.preset) return fmt::format("preset '{}' vs '{}'", a.preset, b.preset);
  if (a.dtypes != b.dtypes)
    return fmt::format("dtypes [{}] vs [{}]", fmt::join(a.dtypes, ","), fmt::join(b.dtypes, ","));
  if (a.layouts != b.layouts)
    return fmt::format("layouts [{}] vs [{}]", fmt::join(a.layouts, ","), fmt::join(b.layouts, ","));
  if (a.backward != b.backward) return fmt::format("backward {} vs {}", a.backward, b.backward);
  if (a.budget != b.budget) return fmt::format("budget profile {} vs {}", name(a.budget), name(b.budget));
  if (a.sections.size() != b.sections.size())
    return fmt::format("{} sections vs {}", a.sections.size(), b.sections.size());
  for (size_t i = 0; i < a.sections.size(); ++i) {
    const Section &x = a.sections[i], &y = b.sections[i];
    if (x.name != y.name) return fmt::format("section '{}' vs '{}'", x.name, y.name);
    if (x.stresses != y.stresses)
      return fmt::format("section '{}': stresses [{}] vs [{}]", x.name, fmt::join(x.stresses, ","),
                         fmt::join(y.stresses, ","));
    if (x.seeds != y.seeds)
      return fmt::format("section '{}': seeds [{}] vs [{}]", x.name, fmt::join(x.seeds, ","), fmt::join(y.seeds, ","));
    if (x.shapes.size() != y.shapes.size())
      return fmt::format("section '{}': {} shapes vs {}", x.name, x.shapes.size(), y.shapes.size());
    for (size_t k = 0; k < x.shapes.size(); ++k) {
      const ShapeSpec &p = x.shapes[k], &q = y.shapes[k];
      if (p.name != q.name || p.shape != q.shape || p.groups != q.groups || p.affine != q.affine ||
          p.affine_mode != q.affine_mode || p.epilogue != q.epilogue || !same_double(p.eps, q.eps))
        return fmt::format("section '{}': shape {} ({}, G={}) vs {} ({}, G={})", x.name, p.name, p.shape,
                           fmt::join(p.groups, "/"), q.name, q.shape, fmt::join(q.groups, "/"));
    }
  }
  return {};
}

double error_value(double v) { return std::isnan(v) ? std::numeric_limits<double>::infinity() : v; }

}  // namespace

std::string grid_mismatch(const Grid& a, const Shard& sa, const Grid& b, const Shard& sb) {
  if (std::string why = section_mismatch(a, b); !why.empty()) return "different grids: " + why;
  if (!(sa == sb))
    return fmt::format("different shards: {}/{} vs {}/{} (merge the shards first)", sa.index, sa.count,
                       sb.index, sb.count);
  return {};
}

Report merge_reports(std::vector<Report> shards) {
  if (shards.empty()) throw ReportError("merge: no reports given");
  const int n = shards.front().shard.count;
  std::vector<int> seen(static_cast<size_t>(n) + 1, 0);
  for (size_t i = 0; i < shards.size(); ++i) {
    const Report& s = shards[i];
    if (std::string why = section_mismatch(shards.front().grid, s.grid); !why.empty())
      throw ReportError(fmt::format("merge: report {} has a different grid: {}", i + 1, why));
    if (s.grid.impls != shards.front().grid.impls)
      throw ReportError(fmt::format("merge: report {} ran impls [{}], report 1 ran [{}]", i + 1,
                                    fmt::join(s.grid.impls, ","), fmt::join(shards.front().grid.impls, ",")));
    if (s.shard.count != n)
      throw ReportError(fmt::format("merge: report {} is shard {}/{}, report 1 is of {} shards", i + 1,
                                    s.shard.index, s.shard.count, n));
    if (seen[static_cast<size_t>(s.shard.index)]++)
      throw ReportError(fmt::format("merge: shard {}/{} given twice", s.shard.index, n));
  }
  std::vector<int> missing;
  for (int k = 1; k <= n; ++k)
    if (!seen[static_cast<size_t>(k)]) missing.push_back(k);
  if (!missing.empty())
    throw ReportError(fmt::format("merge: missing shard(s) {} of {}", fmt::join(missing, ", "), n));

  std::sort(shards.begin(), shards.end(), [](const Report& a, const Report& b) { return a.shard.index < b.shard.index; });
  Report out;
  out.grid = shards.front().grid;
  out.env = shards.front().env;
  out.timing = shards.front().timing;
  out.shard = {1, 1};
  out.saved = {shards.front().saved.policy, shards.front().saved.max, 0, 0};  // the cap is per shard
  for (Report& s : shards) {
    out.saved.saved += s.saved.saved;
    out.saved.omitted += s.saved.omitted;
    // Timing fields: the earliest start, the longest shard.
    out.env.date = std::min(out.env.date, s.env.date);
    out.timing.wall_s = std::max(out.timing.wall_s, s.timing.wall_s);
    for (Cell& c : s.cells) out.cells.push_back(std::move(c));
  }
  std::sort(out.cells.begin(), out.cells.end(), [](const Cell& a, const Cell& b) { return a.index < b.index; });
  for (size_t i = 1; i < out.cells.size(); ++i)
    if (out.cells[i].index == out.cells[i - 1].index)
      throw ReportError(fmt::format("merge: cell {} appears in two shards", out.cells[i].index));
  // Each shard judged its waivers on its own cells (apply_waivers), so a waiver whose cells all
  // passed in one shard made them XPASS there while another shard has a failing one. Judged as a
  // whole again, as the unsharded run does: while some cell under a waiver fails, its passing
  // cells are plain PASS. (A waiver is known here by its note, reason and link.)
  std::vector<WaiverNote> failing;
  for (const Cell& c : out.cells)
    if (c.waived_nonpass() && std::find(failing.begin(), failing.end(), *c.waiver) == failing.end())
      failing.push_back(*c.waiver);
  for (Cell& c : out.cells)
    if (c.xpass() && std::find(failing.begin(), failing.end(), *c.waiver) != failing.end()) c.waiver.reset();
  return out;
}

Comparison compare_reports(const Report& base, const Report& now, double tolerance, bool allow_missing) {
  if (!(tolerance >= 1) || !std::isfinite(tolerance))
    throw std::invalid_argument(fmt::format("--tolerance {}: must be a finite factor >= 1", tolerance));
  if (std::string why = grid_mismatch(base.grid, base.shard, now.grid, now.shard); !why.empty())
    throw ReportError(why);
  Comparison cmp;
  cmp.tolerance = tolerance;
  cmp.allow_missing = allow_missing;
  std::map<std::string, const Cell*> by_id;
  for (const Cell& c : base.cells) by_id[c.id()] = &c;
  std::set<std::string> matched;
  for (const Cell& c : now.cells) {
    auto it = by_id.find(c.id());
    if (it == by_id.end()) {
      cmp.only_now.push_back(&c);
      continue;
    }
    const Cell& b = *it->second;
    matched.insert(c.id());
    ++cmp.matched;
    if (!b.control && !c.control && b.judged() && c.judged()) ++cmp.matched_judged;
    const bool was_ok = b.result.verdict == Verdict::pass, is_ok = c.result.verdict == Verdict::pass;
    const bool newly_failing = !is_ok && (was_ok || (!b.judged() && c.judged()));
    // The largest growth over the outputs both sides measured.
    CellChange grow{&b, &c, "", 0, 0};
    double worst_ratio = 0;
    for (const OutputMetrics& m : c.result.outputs) {
      for (const OutputMetrics& mb : b.result.outputs) {
        if (mb.name != m.name) continue;
        const double before = error_value(mb.max_cond_err), after = error_value(m.max_cond_err);
        if (!(after > tolerance * std::max(before, 1.0))) continue;
        const double ratio = std::isinf(before) ? 0 : after / std::max(before, 1.0);
        if (grow.output.empty() || ratio > worst_ratio) {
          grow.output = m.name;
          grow.before = mb.max_cond_err;
          grow.after = m.max_cond_err;
          worst_ratio = ratio;
        }
      }
    }
    CellChange change{&b, &c, "", worst_cond_err(b.result), worst_cond_err(c.result)};
    if (b.control || c.control) {
      if (was_ok != is_ok || b.result.verdict != c.result.verdict) cmp.control_changes.push_back(change);
      continue;
    }
    if (newly_failing) cmp.regressions.push_back(change);
    else if (!grow.output.empty()) cmp.growths.push_back(grow);
    if (c.judged() && !no_result(c.result.verdict))
      for (const OutputMetrics& mb : b.result.outputs) {
        const bool kept = std::any_of(c.result.outputs.begin(), c.result.outputs.end(),
                                      [&](const OutputMetrics& m) { return m.name == mb.name; });
        if (!kept) cmp.lost_outputs.push_back({&b, &c, mb.name, mb.max_cond_err, 0});
      }
    if (!was_ok && is_ok) cmp.improvements.push_back(change);
  }
  for (const Cell& c : base.cells)
    if (!matched.count(c.id())) cmp.only_base.push_back(&c);
  return cmp;
}

std::string render_comparison(const Comparison& c, const std::string& base_name, const std::string& now_name) {
  constexpr size_t kMax = 100;
  auto num = [](double v) { return fmt::format("{:.3g}", v); };
  std::string md = fmt::format("## gnv compare: `{}` → `{}`\n\n", base_name, now_name);
  md += fmt::format("**Result: {}** — {} cells matched, {} regressions (pass or skipped → not pass), {} outputs no longer "
                    "measured, {} errors grown beyond {}×, {} improvements, {} only in the baseline, {} only in "
                    "the new report.\n\n",
                    c.regressed() ? "REGRESSION" : "OK", c.matched, c.regressions.size(), c.lost_outputs.size(),
                    c.growths.size(),
                    num(c.tolerance), c.improvements.size(), c.only_base.size(), c.only_now.size());
  // The impls on one side only: a renamed kernel is the usual reason cells do not match.
  auto impls_of = [](const std::vector<const Cell*>& v) {
    std::vector<std::string> out;
    for (const Cell* x : v)
      if (std::find(out.begin(), out.end(), x->impl) == out.end()) out.push_back(x->impl);
    return out;
  };
  const std::vector<std::string> base_impls = impls_of(c.only_base), now_impls = impls_of(c.only_now);
  const std::string unmatched = fmt::format(
      "unmatched cells of impls [{}] in the baseline and [{}] in the new report{}", fmt::join(base_impls, ", "),
      fmt::join(now_impls, ", "),
      !base_impls.empty() && !now_impls.empty() ? " (was a kernel renamed? cells match by impl name)" : "");
  if (c.nothing_matched())
    md += fmt::format("**No judged kernel cell of the baseline matched one of the new report: the gate compared "
                      "nothing** (matched control or SKIPPED cells say nothing of the kernel). The {}.\n\n",
                      unmatched);
  else if (c.coverage_lost())
    md += fmt::format("**Coverage regression: {} baseline cells are missing from the new report** ({}); pass "
                      "`--allow-missing` when that is intended.\n\n", c.only_base.size(), unmatched);
  md += fmt::format("An error grows beyond F = {} when the new `max_cond_err` of an output exceeds "
                    "F·max(old, 1) (below 1 is the final rounding). Control cells never count as regressions.\n",
                    num(c.tolerance));
  auto section = [&](const char* title, const std::vector<CellChange>& v, bool with_output) {
    if (v.empty()) return;
    md += fmt::format("\n### {}\n\n", title);
    md += with_output ? "| cell | output | before | after |\n|---|---|--:|--:|\n"
                      : "| cell | before | after | reproduce |\n|---|---|---|---|\n";
    for (size_t i = 0; i < v.size() && i < kMax; ++i) {
      const CellChange& ch = v[i];
      if (with_output)
        md += fmt::format("| `{}` | {} | {} | {} |\n", ch.now->id(), ch.output, num(ch.before), num(ch.after));
      else
        md += fmt::format("| `{}` | {} {} | {} {} | `{}` |\n", ch.now->id(), verdict_label(ch.base->result.verdict),
                          num(ch.before), verdict_label(ch.now->result.verdict), num(ch.after), ch.now->reproduce);
    }
    if (v.size() > kMax) md += fmt::format("\n… and {} more\n", v.size() - kMax);
  };
  section("Regressions (pass → not pass, skipped → not pass)", c.regressions, false);
  if (!c.lost_outputs.empty()) {
    md += "\n### Outputs the baseline measured and the new report does not\n\n| cell | output | before |\n|---|---|--:|\n";
    for (size_t i = 0; i < c.lost_outputs.size() && i < kMax; ++i)
      md += fmt::format("| `{}` | {} | {} |\n", c.lost_outputs[i].now->id(), c.lost_outputs[i].output,
                        num(c.lost_outputs[i].before));
    if (c.lost_outputs.size() > kMax) md += fmt::format("\n… and {} more\n", c.lost_outputs.size() - kMax);
  }
  section("Errors grown beyond the tolerance", c.growths, true);
  section("Improvements (not pass → pass)", c.improvements, false);
  section("Control cells whose verdict changed (informative)", c.control_changes, false);
  auto list = [&](const char* title, const std::vector<const Cell*>& v) {
    if (v.empty()) return;
    md += fmt::format("\n### {}\n\n", title);
    for (size_t i = 0; i < v.size() && i < kMax; ++i)
      md += fmt::format("- `{}` ({})\n", v[i]->id(), verdict_label(v[i]->result.verdict));
    if (v.size() > kMax) md += fmt::format("- … and {} more\n", v.size() - kMax);
  };
  list(fmt::format("Only in `{}` (not run in `{}`)", base_name, now_name).c_str(), c.only_base);
  list(fmt::format("Only in `{}` (new cells)", now_name).c_str(), c.only_now);
  return md;
}

}  // namespace gnv::report
