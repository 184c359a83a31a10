// `gnv minimize`: shrinks a failing case while its verdict for one kernel stays FAIL, and writes
// the smallest case found. Deterministic (the steps are tried in a fixed order; a step is kept as
// soon as the case it makes still fails) and bounded in time (--max-seconds).
//   1. parts of the case: one sample, one group, half of each group's channels, half of one
//      spatial extent -- each a GroupNorm problem of its own, since samples and groups are
//      independent;
//   2. simpler values: gamma = 1 and beta = 0, then x and dy on the coarsest grid 2^e
//      (short dyadics) that still fails.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common.h"

namespace gnv::cli {

namespace {

struct MinimizeOptions {
  std::string impl;
  std::string case_dir;
  std::string out;
  std::string budget = "pairwise";
  double max_seconds = 60;
  ExternalOptions ext;
};

// Which part of a case to keep: samples ns, channels cs (G groups of equal length, in order),
// and per spatial dimension the range [lo, lo + len).
struct Part {
  std::vector<int64_t> ns, cs;
  int64_t G = 1;
  std::vector<int64_t> lo, len;
};

Part whole(const Problem& p) {
  Part w;
  for (int64_t n = 0; n < p.N; ++n) w.ns.push_back(n);
  for (int64_t c = 0; c < p.C; ++c) w.cs.push_back(c);
  w.G = p.G;
  w.lo.assign(p.spatial.size(), 0);
  w.len = p.spatial;
  return w;
}

Case part_of(const Case& c, const Part& pt) {
  const Problem& p = c.problem;
  Problem q = p;
  q.N = static_cast<int64_t>(pt.ns.size());
  q.C = static_cast<int64_t>(pt.cs.size());
  q.G = pt.G;
  q.spatial = pt.len;
  Case out;
  out.problem = q;
  // No longer what the stress class and seed generate: case.json says where it came from.
  out.stress = c.stress.rfind("minimized", 0) == 0 || c.stress.empty()
                   ? (c.stress.empty() ? "minimized" : c.stress)
                   : fmt::format("minimized from {} seed {}", c.stress, c.seed);
  out.seed = 0;
  // Flat spatial index of q -> flat spatial index of p.
  std::vector<int64_t> smap(static_cast<size_t>(q.S()));
  for (int64_t s2 = 0; s2 < q.S(); ++s2) {
    int64_t rest = s2, s = 0, stride = 1;
    for (size_t d = q.spatial.size(); d-- > 0;) {
      const int64_t coord = rest % q.spatial[d] + pt.lo[d];
      rest /= q.spatial[d];
      s += coord * stride;
      stride *= p.spatial[d];
    }
    smap[static_cast<size_t>(s2)] = s;
  }
  auto copy_x_like = [&](const Tensor& from) {
    Tensor t(from.dtype(), q.x_shape());
    for (int64_t n = 0; n < q.N; ++n)
      for (int64_t ch = 0; ch < q.C; ++ch)
        for (int64_t s2 = 0; s2 < q.S(); ++s2)
          t.set_bits(q.index(n, ch, s2),
                     from.bits(p.index(pt.ns[static_cast<size_t>(n)], pt.cs[static_cast<size_t>(ch)],
                                       smap[static_cast<size_t>(s2)])));
    return t;
  };
  auto copy_channels = [&](const Tensor& from) {
    Tensor t(from.dtype(), q.param_shape());
    for (int64_t ch = 0; ch < q.C; ++ch) t.set_bits(ch, from.bits(pt.cs[static_cast<size_t>(ch)]));
    return t;
  };
  out.x = copy_x_like(c.x);
  if (p.affine) {
    out.gamma = copy_channels(c.gamma);
    out.beta = copy_channels(c.beta);
  }
  if (c.dy) out.dy = copy_x_like(*c.dy);
  out.validate();
  return out;
}

// The parts of c one step smaller, in the order they are tried.
std::vector<Part> smaller_parts(const Problem& p) {
  std::vector<Part> out;
  const Part w = whole(p);
  for (int64_t n = 0; p.N > 1 && n < p.N; ++n) {
    Part pt = w;
    pt.ns = {n};
    out.push_back(pt);
  }
  const int64_t k = p.channels_per_group();
  for (int64_t g = 0; p.G > 1 && g < p.G; ++g) {
    Part pt = w;
    pt.cs.clear();
    for (int64_t j = 0; j < k; ++j) pt.cs.push_back(g * k + j);
    pt.G = 1;
    out.push_back(pt);
  }
  if (k > 1)
    for (const bool upper : {false, true}) {
      Part pt = w;
      pt.cs.clear();
      const int64_t keep = upper ? k - k / 2 : k / 2;
      for (int64_t g = 0; g < p.G; ++g)
        for (int64_t j = 0; j < keep; ++j) pt.cs.push_back(g * k + (upper ? k / 2 : 0) + j);
      out.push_back(pt);
    }
  for (size_t d = 0; d < p.spatial.size(); ++d)
    if (p.spatial[d] > 1)
      for (const bool upper : {false, true}) {
        Part pt = w;
        pt.lo[d] = upper ? p.spatial[d] / 2 : 0;
        pt.len[d] = upper ? p.spatial[d] - p.spatial[d] / 2 : p.spatial[d] / 2;
        out.push_back(pt);
      }
  return out;
}

// Every element of t on the grid 2^e (round to nearest, then to t's dtype); false when nothing changes.
bool quantize(Tensor& t, int e) {
  bool changed = false;
  for (int64_t i = 0; i < t.numel(); ++i) {
    const double v = t.get(i);
    if (!std::isfinite(v)) continue;
    const double r = std::ldexp(std::nearbyint(std::ldexp(v, -e)), e);
    const uint64_t before = t.bits(i);
    t.set(i, r);
    changed = changed || t.bits(i) != before;
  }
  return changed;
}

// The exponent range worth trying for t: from that of its largest finite magnitude down to 60
// binades below it (coarsest first).
std::vector<int> grid_exponents(const Tensor& t) {
  double big = 0;
  for (int64_t i = 0; i < t.numel(); ++i)
    if (const double v = std::fabs(t.get(i)); std::isfinite(v)) big = std::max(big, v);
  std::vector<int> es;
  if (big == 0) return es;
  const int top = std::ilogb(big);
  for (int e = top; e > top - 60; --e) es.push_back(e);
  return es;
}

class Minimizer {
 public:
  Minimizer(const Impl& impl, bool backward, BudgetProfile budget, double max_seconds)
      : impl_(impl), backward_(backward), budget_(budget), max_seconds_(max_seconds),
        start_(std::chrono::steady_clock::now()) {}

  bool fails(const Case& c) {
    ++checks_;
    return check_case(impl_, c, backward_, budget_).verdict == Verdict::fail;
  }
  bool out_of_time() const { return seconds() >= max_seconds_; }
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  int checks() const { return checks_; }

  // Shrinks cur in place; returns false when time ran out before no step helped any more.
  bool run(Case& cur) {
    for (;;) {
      if (out_of_time()) return false;
      if (!step(cur)) return true;
    }
  }

 private:
  void keep(Case& cur, Case next, const std::string& what) {
    fmt::print(stderr, "gnv: minimize: {} -> {} ({} elements), still FAIL [{:.1f} s, {} checks]\n", what,
               next.problem.describe(), next.problem.numel(), seconds(), checks_);
    cur = std::move(next);
  }

  // One step that keeps the case failing, or false when none does (or time ran out).
  bool step(Case& cur) {
    for (const Part& pt : smaller_parts(cur.problem)) {
      if (out_of_time()) return false;
      Case next = part_of(cur, pt);
      if (fails(next)) {
        keep(cur, std::move(next), "a smaller part");
        return true;
      }
    }
    if (cur.problem.affine) {
      Case next = cur;
      bool changed = false;
      for (int64_t ch = 0; ch < cur.problem.C; ++ch) {
        changed = changed || next.gamma.get(ch) != 1.0 || next.beta.get(ch) != 0.0;
        next.gamma.set(ch, 1.0);
        next.beta.set(ch, 0.0);
      }
      if (changed && !out_of_time() && fails(next)) {
        keep(cur, std::move(next), "gamma = 1, beta = 0");
        return true;
      }
    }
    for (const bool on_dy : {false, true}) {
      if (on_dy && !cur.dy) continue;
      for (const int e : grid_exponents(on_dy ? *cur.dy : cur.x)) {
        if (out_of_time()) return false;
        Case next = cur;
        if (!quantize(on_dy ? *next.dy : next.x, e)) break;  // finer grids change nothing either
        if (fails(next)) {
          keep(cur, std::move(next), fmt::format("{} on the grid 2^{}", on_dy ? "dy" : "x", e));
          return true;
        }
      }
    }
    return false;
  }

  const Impl& impl_;
  bool backward_;
  BudgetProfile budget_;
  double max_seconds_;
  std::chrono::steady_clock::time_point start_;
  int checks_ = 0;
};

int run_minimize(MinimizeOptions o) {
  const std::string load = use_external(o.ext, o.impl);
  if (o.impl.empty()) throw UsageError("--impl is required (a name from `gnv list`), or one --plugin/--runner");
  if (!(o.max_seconds > 0)) throw UsageError(fmt::format("--max-seconds {}: must be positive", o.max_seconds));
  std::error_code ec;
  if (std::filesystem::exists(o.out, ec) &&
      !(std::filesystem::is_directory(o.out, ec) && std::filesystem::is_empty(o.out, ec)))
    throw UsageError(fmt::format("--out {}: exists and is not an empty directory (gnv minimize writes a new case "
                                 "directory and overwrites nothing)",
                                 o.out));
  const Impl& impl = Registry::instance().get(o.impl);
  Case c = load_case_reporting_file(o.case_dir);
  const bool backward = c.has_backward();
  if (std::string why = unsupported_reason(impl, c.problem, backward); !why.empty()) throw UsageError(why);
  const BudgetProfile budget = parse_budget_profile(o.budget);
  Minimizer m(impl, backward, budget, o.max_seconds);
  const int64_t before = c.problem.numel();
  const std::string before_desc = c.problem.describe();
  auto reproduce = [&](const std::string& dir) { return reproduce_with(reproduce_case_command(o.impl, dir), load, budget); };
  if (!m.fails(c))
    throw UsageError(fmt::format("{}: the case does not FAIL for {} (run `{}` to see its verdict): nothing to minimize",
                                 o.case_dir, o.impl, reproduce(o.case_dir)));
  const bool finished = m.run(c);
  save_case(c, o.out);
  fmt::print("minimized {} ({} elements) to {} ({} elements) in {:.1f} s, {} checks{}\n", before_desc, before,
             c.problem.describe(), c.problem.numel(), m.seconds(), m.checks(),
             finished ? "" : fmt::format(" (stopped at --max-seconds {:g}; run again on the result to go on)",
                                          o.max_seconds));
  fmt::print("wrote {}\nreproduce: {}\n", o.out, reproduce(o.out));
  return kExitPass;
}

}  // namespace

Command register_minimize(CLI::App& app) {
  auto o = std::make_shared<MinimizeOptions>();
  CLI::App* sub = app.add_subcommand(
      "minimize", "Shrink a failing case directory while its verdict for one kernel stays FAIL (fewer samples, "
                  "groups, channels and spatial elements, then simpler values) and write the smallest case found");
  sub->add_option("--case", o->case_dir, "The failing case directory")->required();
  sub->add_option("--impl", o->impl, "Implementation name; required unless one --plugin/--runner is given");
  add_external_options(sub, o->ext);
  sub->add_option("--out", o->out, "Directory for the minimized case (new or empty)")->required();
  sub->add_option("--max-seconds", o->max_seconds, "Stop after this long and write the smallest case so far")
      ->capture_default_str();
  add_budget_option(sub, o->budget, "the verdict is judged with")->capture_default_str();
  return {sub, [o] { return run_minimize(*o); }};
}

}  // namespace gnv::cli
