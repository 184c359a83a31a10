#include "harness.h"

#include <rapidcheck/detail/TestListenerAdapter.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <fmt/format.h>
#include <sstream>

#include "gnv/metrics.h"

namespace gnv::prop {

namespace fs = std::filesystem;
using rc::detail::CaseResult;

namespace {

// Implementations that are deterministic CPU kernels but do not promise exactness under
// power-of-two scaling (approximate rsqrt, separate non-affine path, ...), with the reason.
// Empty today: naive, welford and onepass share impls/kernel_common.h, whose every operation is
// an IEEE basic operation in a value-independent order.
struct Exemption {
  std::string_view impl, reason;
};
constexpr Exemption kInexactPow2[] = {{"", ""}};

// The cases under test in the running RapidCheck test case, and those of the last one that
// failed. RapidCheck's last failing run is its minimal counterexample (every accepted shrink
// fails, and shrinking ends on the last accepted one), so `t_last` is what gets saved.
struct Captured {
  std::vector<std::pair<std::string, Case>> cases;
  std::string message;
};
thread_local std::vector<std::pair<std::string, Case>> t_current;
thread_local std::optional<Captured> t_last;

void capture(const std::string& msg) { t_last = Captured{t_current, msg}; }

class QuietListener : public rc::detail::TestListenerAdapter {};

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char ch : s) h = (h ^ static_cast<unsigned char>(ch)) * 0x100000001b3ull;
  return h;
}

int64_t env_int(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  try {
    return std::stoll(v);
  } catch (const std::exception&) {
    throw std::invalid_argument(fmt::format("{}={} is not an integer", name, v));
  }
}

std::string sanitize(const std::string& id) {
  std::string s = id;
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '.') ch = '_';
  return s;
}

std::string_view match_name(Match m) {
  switch (m) {
    case Match::strict_bits: return "bitwise";
    case Match::same_value: return "exact value";
    case Match::tolerance: return "tolerance";
  }
  return "?";
}

}  // namespace

Claims claims_for(const Impl& impl) {
  const Capabilities caps = impl.capabilities();
  Claims c;
  c.deterministic = caps.deterministic;
  c.group_independent = caps.deterministic && caps.device == "cpu";
  bool exempt = false;
  for (const Exemption& e : kInexactPow2)
    if (!e.impl.empty() && e.impl == impl.name()) exempt = true;
  c.exact_pow2 = c.group_independent && !exempt;
  return c;
}

double allowed_error(const ExactOutput& e, int64_t i) {
  return static_cast<double>(budget_for(e.reduction_length) * cond_denominator(e, i));
}

bool not_judged(const ExactOutput& e, int64_t i) {
  if (std::isnan(e.hi[i])) return true;
  // The exact value overflows the output dtype: the kernel must return the same infinity
  // (measure() checks that), but there is no finite error to bound or sum.
  if (!is_finite_bits(e.rounded.dtype(), e.rounded.bits(i))) return true;
  // No condition scale (the oracle's scale formula can hit 0 * Inf, e.g. dx of huge f64 inputs
  // with gamma = 0): measure() cannot judge such an element either (its error ratio is NaN).
  if (std::isnan(e.scale[i])) return true;
  return ill_posed(e, i);  // measure()'s own rule
}

Ctx::Ctx(const Impl& impl_, DType dtype_, Layout layout_, bool conditioned_)
    : impl(impl_), dtype(dtype_), layout(layout_), caps(impl_.capabilities()), claims(claims_for(impl_)),
      conditioned(conditioned_) {}

CaseOptions Ctx::options() const {
  CaseOptions o;
  o.values.conditioned = conditioned;
  if (conditioned) {
    // Moderate centered values, and groups small enough for a sequential sum: its error grows
    // like sqrt(m) u, past the 4 + 2 log2(m) budget once m is a few hundred.
    o.values.wide = false;
    o.values.offsets = false;
    o.shape.max_m = 128;
    o.shape.allow_big = false;
  }
  return o;
}

void Ctx::precondition(const Case& c) const {
  if (!conditioned) return;
  // One-pass variance E[x^2] - E[x]^2 errs by about u * (mean^2 + var) relative to var + eps;
  // with mean^2 <= 16 (var + eps) that stays far inside the budget. Groups of one element and
  // constant groups are exact for it (the difference cancels to exactly 0 or to u * mean^2,
  // which normalizes to an error of u * kappa), non-finite groups are the policy's business.
  const Problem& p = c.problem;
  const int64_t cpg = p.channels_per_group(), S = p.S(), m = p.group_size();
  if (m <= 1) return;
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t g = 0; g < p.G; ++g) {
      long double s = 0;
      bool finite = true, constant = true;
      const double first = c.x.get(p.index(n, g * cpg, 0));
      for (int64_t ch = g * cpg; ch < (g + 1) * cpg; ++ch)
        for (int64_t sp = 0; sp < S; ++sp) {
          const double v = c.x.get(p.index(n, ch, sp));
          finite = finite && std::isfinite(v);
          constant = constant && v == first;
          s += v;
        }
      if (!finite || constant) continue;
      const long double mean = s / m;
      long double q = 0;
      for (int64_t ch = g * cpg; ch < (g + 1) * cpg; ++ch)
        for (int64_t sp = 0; sp < S; ++sp) {
          const long double d = c.x.get(p.index(n, ch, sp)) - mean;
          q += d * d;
        }
      if (!(mean * mean <= 16 * (q / m + p.eps)))
        throw CaseResult(CaseResult::Type::Discard, "outside the control's conditioned domain");
    }
}

void Ctx::note(const std::string& label, const Case& c) const { t_current.emplace_back(label, c); }

void Ctx::fail(const std::string& msg) const {
  capture(msg);
  throw CaseResult(CaseResult::Type::Failure, msg);
}

void Ctx::require_pass(const CheckResult& r, const Problem& p, bool policy_only) const {
  if (r.verdict == Verdict::error) fail("check_case error: " + r.error);
  std::string msg;
  for (const OutputMetrics& m : r.outputs) {
    const bool bad = policy_only ? (m.unwritten > 0 || m.policy_violations > 0) : m.verdict != Verdict::pass;
    if (!bad) continue;
    msg += fmt::format(
        "{}: verdict {}, max_cond_err {:.4g} (budget {:.4g}), max_ulp {:g}, ill_posed {}, unwritten {}, "
        "policy_violations {}; worst at {}: expected {:.17g}, got {:.17g}\n",
        m.name, name(m.verdict), m.max_cond_err, m.budget, m.max_ulp, m.ill_posed, m.unwritten,
        m.policy_violations, describe_index(p, m.name, m.worst_index), m.worst_expected, m.worst_actual);
  }
  if (!msg.empty()) fail(msg + fmt::format("kappa in [{:.4g}, {:.4g}]", r.kappa_min, r.kappa_max));
}

ForwardResult Ctx::forward(const Case& c) const { return run_forward(impl, c); }

BackwardResult Ctx::backward(const Case& c, const Tensor& mean, const Tensor& rstd) const {
  return run_backward(impl, c, mean, rstd);
}

void Ctx::compare(const std::string& what, const Problem& p, const std::string& output, const Tensor& want,
                  const Tensor& got, const CompareOptions& o) const {
  if (want.numel() != got.numel())
    fail(fmt::format("{}: {} has {} elements, expected {}", what, output, got.numel(), want.numel()));
  if (o.mode == Match::strict_bits && (o.factor != 1 || o.add))
    throw std::logic_error("compare: a bitwise comparison cannot scale or shift");
  const ExactOutput* ew = o.e_want;
  const ExactOutput* eg = o.e_got ? o.e_got : o.e_want;
  if (o.mode == Match::tolerance && !ew) throw std::logic_error("compare: tolerance needs the exact output");
  const DTypeInfo& in = info(got.dtype());
  auto outside = [&](long double v) {
    const long double a = std::fabs(v);
    // <= min_normal: a value rounded to the smallest normal number may come from a subnormal one.
    return !std::isfinite(static_cast<double>(v)) || (a != 0 && (a <= in.min_normal || a > in.max_finite));
  };
  for (int64_t i = 0; i < got.numel(); ++i) {
    if (!o.skip.empty() && o.skip[static_cast<size_t>(i)]) continue;
    const double a = want.get(i), b = got.get(i);
    const long double add = o.add ? (*o.add)[static_cast<size_t>(i)] : 0.0L;
    const long double expect_ld = static_cast<long double>(o.factor) * a + add;
    const double expect = static_cast<double>(expect_ld);
    // Skipped: where either side, or the related value, is subnormal or overflows (rounding there
    // does not commute with scaling); a NaN where a normal value is expected is still a failure.
    // A stored 0 may be an underflowed value too, unless both sides are 0.
    if (o.skip_outside_normal &&
        (outside(expect_ld) || (std::isfinite(a) && outside(a)) || (std::isfinite(b) && outside(b)) ||
         ((a == 0) != (b == 0))))
      continue;
    bool ok = true;
    double tol = 0;
    switch (o.mode) {
      case Match::strict_bits:
        ok = want.bits(i) == got.bits(i);
        break;
      case Match::same_value:
        ok = (std::isnan(expect) && std::isnan(b)) || expect_ld == static_cast<long double>(b);
        break;
      case Match::tolerance:
        if (not_judged(*ew, i) || not_judged(*eg, i)) continue;
        if (expect_ld == static_cast<long double>(b)) continue;  // also equal infinities
        tol = std::fabs(o.factor) * allowed_error(*ew, i) + allowed_error(*eg, i) +
              std::ldexp(static_cast<double>(std::fabs(expect_ld) + std::fabs(add)), -60);
        ok = std::isfinite(a) && std::isfinite(b) &&
             std::fabs(static_cast<long double>(b) - expect_ld) <= static_cast<long double>(tol);
        break;
    }
    if (!ok) {
      std::string detail;
      if (o.mode == Match::tolerance)
        detail = fmt::format(", |diff| {:.4g} > tolerance {:.4g} (kappa {:.4g})",
                             std::fabs(static_cast<double>(static_cast<long double>(b) - expect_ld)), tol, ew->kappa[i]);
      fail(fmt::format("{}: {} at {} differs ({}): expected {:.17g} (bits {:#x}), got {:.17g} (bits {:#x}){}", what,
                       output, describe_index(p, output, i), match_name(o.mode), expect, want.bits(i), b,
                       got.bits(i), detail));
    }
  }
}

Tensor gather(const Tensor& t, const std::vector<int64_t>& idx, std::vector<int64_t> shape) {
  Tensor out(t.dtype(), std::move(shape));
  if (out.numel() != static_cast<int64_t>(idx.size())) throw std::logic_error("gather: shape/index mismatch");
  for (size_t i = 0; i < idx.size(); ++i) out.set_bits(static_cast<int64_t>(i), t.bits(idx[i]));
  return out;
}

ExactOutput gather(const ExactOutput& e, const std::vector<int64_t>& idx, std::vector<int64_t> shape) {
  ExactOutput o;
  o.name = e.name;
  o.rounded = gather(e.rounded, idx, std::move(shape));
  o.reduction_length = e.reduction_length;
  for (int64_t i : idx) {
    o.hi.push_back(e.hi[static_cast<size_t>(i)]);
    o.lo.push_back(e.lo[static_cast<size_t>(i)]);
    o.scale.push_back(e.scale[static_cast<size_t>(i)]);
    o.kappa.push_back(e.kappa[static_cast<size_t>(i)]);
  }
  return o;
}

RunConfig default_config(int cases, const std::string& id) {
  const char* env = std::getenv("RC_PARAMS");
  const std::string params = env ? env : "";
  const auto& tp = rc::detail::configuration().testParams;
  const int64_t depth = std::max<int64_t>(1, env_int("GNV_PROPERTY_DEPTH", 1));
  RunConfig c;
  c.max_success = params.find("max_success") != std::string::npos ? tp.maxSuccess
                                                                   : static_cast<int>(cases * depth);
  c.max_size = tp.maxSize;
  c.max_discard_ratio = tp.maxDiscardRatio;
  c.seed = params.find("seed") != std::string::npos
               ? tp.seed
               : fnv1a(id) ^ (static_cast<uint64_t>(env_int("GNV_PROPERTY_SEED", 0)) * 0x9E3779B97F4A7C15ull);
  c.shrink = !tp.disableShrinking;
  return c;
}

std::string property_unsupported(const PropertyDef& def, const Capabilities& caps) {
  if (def.needs_backward && !caps.backward) return "has no backward pass";
  if (def.needs_both_layouts && !(caps.supports(Layout::nchw) && caps.supports(Layout::nhwc)))
    return "supports one layout only";
  if (def.needs_silu && !caps.supports(Epilogue::silu)) return "does not declare the SiLU epilogue";
  if (def.needs_per_sample && !caps.per_sample) return "does not declare per-sample parameters";
  return {};
}

fs::path failure_dir() {
  if (const char* d = std::getenv("GNV_PROPERTY_OUT"); d && *d) return d;
  return fs::temp_directory_path() / "gnv-properties";
}

Outcome run_property(const PropertyDef& def, const Impl& impl, std::optional<DType> dtype,
                     std::optional<Layout> layout, const std::string& id, const RunConfig& cfg,
                     std::optional<bool> conditioned_override) {
  const Capabilities caps = impl.capabilities();
  const Claims claims = claims_for(impl);
  const bool conditioned =
      conditioned_override ? *conditioned_override
                           : caps.control && !(def.full_domain_for_control && def.full_domain_for_control(claims));
  std::vector<DType> dtypes = caps.dtypes;
  std::vector<Layout> layouts = caps.layouts;
  if ((def.needs_silu && !caps.supports(Epilogue::silu)) || (def.needs_per_sample && !caps.per_sample)) {
    Outcome o;  // passed, with no test case: nothing to run
    return o;
  }
  if (def.needs_both_layouts && layouts.size() < 2) {
    Outcome o;
    o.kind = Outcome::Kind::error;
    o.report = fmt::format("{} needs both layouts; {} supports {}", def.name, impl.name(), layouts.size());
    return o;
  }

  auto property = [&] {
    t_current.clear();
    const DType d = dtype ? *dtype : *rc::gen::elementOf(dtypes);
    const Layout l = layout ? *layout : *rc::gen::elementOf(layouts);
    Ctx ctx(impl, d, l, conditioned);
    try {
      def.body(ctx);
    } catch (const CaseResult&) {
      throw;
    } catch (const rc::GenerationFailure&) {
      throw;
    } catch (const std::exception& e) {
      const std::string msg = fmt::format("exception from {}: {}", impl.name(), e.what());
      capture(msg);
      throw CaseResult(CaseResult::Type::Failure, msg);
    }
  };

  rc::detail::TestMetadata md;
  md.id = id;
  md.description = def.name;
  rc::detail::TestParams params;
  params.seed = cfg.seed;
  params.maxSuccess = cfg.max_success;
  params.maxSize = cfg.max_size;
  params.maxDiscardRatio = cfg.max_discard_ratio;
  params.disableShrinking = !cfg.shrink;
  QuietListener listener;
  t_last.reset();
  const rc::detail::TestResult result = rc::detail::checkProperty(
      rc::detail::toProperty(property), md, params, listener, rc::detail::configuration().reproduce);

  Outcome out;
  std::ostringstream rcmsg;
  rc::detail::printResultMessage(result, rcmsg);
  rc::detail::SuccessResult success;
  rc::detail::FailureResult failure;
  rc::detail::GaveUpResult gave_up;
  if (result.match(success)) {
    out.num_success = success.numSuccess;
    return out;
  }
  if (result.match(gave_up)) {
    out.kind = Outcome::Kind::gave_up;
    out.num_success = gave_up.numSuccess;
    out.report = fmt::format("{} on {}: RapidCheck gave up (too many discarded cases; the generator rarely meets "
                             "the precondition): {}",
                             def.name, impl.name(), rcmsg.str());
    return out;
  }
  if (!result.match(failure)) {
    out.kind = Outcome::Kind::error;
    out.report = fmt::format("{} on {}: RapidCheck error: {}", def.name, impl.name(), rcmsg.str());
    return out;
  }

  out.kind = Outcome::Kind::failed;
  out.num_success = failure.numSuccess;
  out.description = failure.description;
  for (const auto& [type, value] : failure.counterExample) out.counterexample += type + ":\n    " + value + "\n";
  rc::detail::Configuration repro;
  repro.reproduce[id] = failure.reproduce;
  out.reproduce = fmt::format("RC_PARAMS=\"{}\"", rc::detail::configToMinimalString(repro));

  std::string cases;
  if (cfg.save_cases && t_last) {
    const fs::path dir = failure_dir() / sanitize(id);
    std::error_code ec;
    fs::remove_all(dir, ec);
    for (const auto& [label, c] : t_last->cases) {
      const fs::path cd = dir / sanitize(label);
      try {
        save_case(c, cd);
        out.case_dirs.push_back(cd);
        cases += fmt::format("  {}: {}\n    replay: {} check --case {} --impl {}{}\n", label, c.problem.describe(),
#ifdef GNV_CLI_PATH
                             GNV_CLI_PATH,
#else
                             "gnv",
#endif
                             cd.string(), impl.name(), c.has_backward() ? " --backward" : "");
      } catch (const std::exception& e) {
        cases += fmt::format("  {}: could not save to {}: {}\n", label, cd.string(), e.what());
      }
    }
  }
  out.report = fmt::format(
      "Property {} failed for {} ({}){}\n{}\nMinimal counterexample:\n{}Failure: {}\n"
      "Reproduce: {}   (found with seed {} after {} passing cases; GNV_PROPERTY_SEED / RC_PARAMS seed=)\n"
      "Cases of the minimal counterexample{}:\n{}",
      def.name, impl.name(), def.summary, caps.control ? " [control]" : "", rcmsg.str(), out.counterexample,
      out.description, out.reproduce, cfg.seed, failure.numSuccess,
      Registry::instance().find(impl.name()) ? "" : " (this impl is test-only: replay them against a registered one)",
      cases.empty() ? "  (none saved)\n" : cases);
  return out;
}

}  // namespace gnv::prop
