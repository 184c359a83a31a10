#include "gnv/metrics.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <fmt/format.h>
#include <fmt/ranges.h>

namespace gnv {

std::string_view name(Verdict v) {
  switch (v) {
    case Verdict::pass: return "pass";
    case Verdict::fail: return "fail";
    case Verdict::error: return "error";
    case Verdict::unwritten: return "unwritten";
    case Verdict::crash: return "crash";
    case Verdict::timeout: return "timeout";
    case Verdict::skipped: return "skipped";
  }
  return "?";
}

std::string verdict_label(Verdict v) {
  std::string s(name(v));
  for (char& ch : s) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return s;
}

std::string_view name(BudgetProfile p) { return p == BudgetProfile::sequential ? "sequential" : "pairwise"; }

BudgetProfile parse_budget_profile(std::string_view s) {
  if (s == "pairwise") return BudgetProfile::pairwise;
  if (s == "sequential") return BudgetProfile::sequential;
  throw std::invalid_argument(fmt::format("budget profile '{}': expected pairwise or sequential", s));
}

double budget_for(int64_t reduction_length, BudgetProfile profile) {
  const double L = static_cast<double>(std::max<int64_t>(reduction_length, 1));
  // docs/numerics.md "Budgets": the first-order error of a backward-stable GroupNorm (constant ~3) plus the
  // summation error of its reductions, with a factor 2 of slack. Pairwise-class reductions
  // (pairwise, chunked Welford, lane-parallel) grow like log2(L); a sequential sum's error is a sum
  // of L rounding errors, which the probabilistic analysis of Higham & Mary (SIAM J. Sci. Comput.,
  // 2019; independent mean-zero rounding errors) bounds by lambda*sqrt(L)*u*sum|x| with probability
  // at least 1 - 2L exp(-lambda^2/2): lambda = 8 gives >= 1 - 2e-9 for L = 65536.
  if (profile == BudgetProfile::sequential) return 4.0 + 2.0 * 8.0 * std::sqrt(L);
  return 4.0 + 2.0 * std::log2(L);
}

namespace {

// The per-element rules of one exact output (ill_posed, cond_denominator), with its dtype facts
// looked up once: measure applies them to every element.
struct ElementRule {
  DType d;
  double u_acc, max_finite;
  long double u_acc_l, underflow;
  explicit ElementRule(const ExactOutput& e)
      : d(e.rounded.dtype()),
        u_acc(info(acc_dtype(d)).unit_roundoff),
        max_finite(info(d).max_finite),
        u_acc_l(u_acc),
        // long double: half an ulp of the smallest f64 subnormal underflows to 0 in double.
        underflow(static_cast<long double>(info(acc_dtype(d)).min_subnormal) *
                  static_cast<long double>(std::max<int64_t>(e.reduction_length, 1))) {}
  bool ill_posed(const ExactOutput& e, int64_t i) const {
    return u_acc * e.kappa[i] > kIllPosed || u_acc * e.scale[i] > max_finite;
  }
  long double denominator(const ExactOutput& e, int64_t i) const {
    return u_acc_l * e.scale[i] + 0.5L * ulp_at(d, e.hi[i]) + underflow;
  }
};

double max_finite_abs(const std::vector<double>& v) {
  double m = 0;
  for (double h : v)
    if (std::isfinite(h)) m = std::max(m, std::fabs(h));
  return m;
}

}  // namespace

OutputMetrics measure(const Tensor& actual, const ExactOutput& exact, const Tensor* rerun, BudgetProfile profile) {
  const Tensor& ref = exact.rounded;
  if (actual.dtype() != ref.dtype() || actual.shape() != ref.shape())
    throw std::invalid_argument(fmt::format("output {}: got {} {}, expected {} {}", exact.name,
                                            name(actual.dtype()), actual.shape_string(),
                                            name(ref.dtype()), ref.shape_string()));
  if (rerun && (rerun->dtype() != ref.dtype() || rerun->shape() != ref.shape()))
    throw std::invalid_argument(fmt::format("output {}: the second run's tensor differs in dtype or shape", exact.name));
  const DType d = ref.dtype();
  const double u_out = info(d).unit_roundoff;
  const uint64_t poison = poison_bits(d);
  const double inf = std::numeric_limits<double>::infinity();

  OutputMetrics m;
  m.name = exact.name;
  m.count = actual.numel();
  m.budget = budget_for(exact.reduction_length, profile);

  const double out_scale = max_finite_abs(exact.hi);
  // normwise's sums of squares are formed relative to a power of two near max|exact| (an exact
  // scaling), so they neither overflow (Inf / Inf) nor underflow near the ends of the range.
  const double norm_unit = out_scale > 0 ? std::ldexp(1.0, std::clamp(-std::ilogb(out_scale), -1022, 1022)) : 1.0;
  const ElementRule rule(exact);

  // Unsigned: for f64, ordinals of opposite signs differ by more than int64 can hold.
  auto ulp_distance = [d](uint64_t x, uint64_t y) {
    const auto ox = static_cast<uint64_t>(ordinal(d, x)), oy = static_cast<uint64_t>(ordinal(d, y));
    return static_cast<double>(ordinal(d, x) > ordinal(d, y) ? ox - oy : oy - ox);
  };
  double diff2 = 0, ref2 = 0;
  auto note_worst = [&](int64_t i, double cond, double a) {
    if (m.worst_index < 0 || cond > m.max_cond_err) {
      m.max_cond_err = std::max(m.max_cond_err, cond);
      m.worst_index = i;
      m.worst_expected = exact.hi[i];
      m.worst_actual = a;
      m.worst_scale = exact.scale[i];
    }
  };
  for (int64_t i = 0; i < m.count; ++i) {
    const uint64_t ab = actual.bits(i), eb = ref.bits(i);
    const double a = actual.get(i), hi = exact.hi[i], lo = exact.lo[i];
    if (std::isnan(hi)) {
      // The non-finite policy: NaN or +-Inf required, nothing else checked; an element that kept
      // both runs' poison patterns was never written.
      if (ab == poison && rerun && rerun->bits(i) == poison_bits(d, 1)) {
        ++m.unwritten;
        m.max_ulp = inf;
        note_worst(i, inf, a);
        continue;
      }
      if (std::isfinite(a)) {
        ++m.policy_violations;
        m.max_ulp = inf;
        note_worst(i, inf, a);
      }
      continue;
    }
    // An element that still holds the poison pattern where a value is defined was never written
    // (where the policy wants NaN, the second run above decides).
    if (ab == poison) {
      ++m.unwritten;
      m.max_ulp = inf;
      note_worst(i, inf, a);
      continue;
    }
    double err, ulps;
    if (ab == eb || (ordinal(d, ab) == 0 && ordinal(d, eb) == 0)) {
      err = 0;  // equal bits, or +0 against -0
      ulps = 0;
    } else if (std::isnan(a)) {
      ++m.policy_violations;
      err = ulps = inf;
    } else if (std::isinf(a) != std::isinf(hi)) {
      // +-Inf stands for the first value past max of its format, 2^(max_exp + 1), as in IEEE
      // rounding (the overflow threshold is the midpoint max + ulp/2), on either side: a kernel's
      // Inf next to an exact value within the allowed error of the threshold, and an f64 exact
      // value past double's range (the oracle's hi = +-Inf, lo = v - hi) next to a kernel's
      // finite result that its roundings kept at max, are both within budget.
      auto value_of = [](double v, DType f) -> long double {
        return std::isinf(v) ? std::copysign(std::ldexp(1.0L, info(f).max_exp + 1), v) : v;
      };
      err = static_cast<double>(std::fabs((value_of(a, d) - value_of(hi, DType::f64)) - lo));
      ulps = ulp_distance(ab, eb);
    } else if (std::isinf(a) || !std::isfinite(hi)) {
      err = ulps = inf;
    } else {
      err = std::fabs((a - hi) - lo);
      ulps = std::isfinite(bits_to_double(d, eb)) ? ulp_distance(ab, eb) : inf;
    }
    m.max_ulp = std::max(m.max_ulp, ulps);
    const double u_err = err == 0 ? 0 : err / (u_out * out_scale);
    m.max_u_err = std::max(m.max_u_err, std::isnan(u_err) ? inf : u_err);
    // Condition-scaled error: the error in units of what a backward-stable algorithm may make
    // there (u_acc * S_i), plus the final rounding to the output dtype (half an ulp), plus
    // gradual underflow (each of the L operations of the reduction may lose up to one smallest
    // subnormal of the accumulator absolutely, whatever the magnitudes).
    double cond = 0;
    if (err > 0) cond = static_cast<double>(err / rule.denominator(exact, i));
    // Ill-posed also where the error a backward-stable kernel may make, u_acc * S_i, exceeds
    // the output dtype's range: there any value, +-Inf included, is within that bound.
    if (rule.ill_posed(exact, i)) {
      ++m.ill_posed;
    } else {
      // A NaN here would compare false everywhere and let the element pass unjudged; it can only
      // come from a NaN scale, which is a bug of the oracle, not of the kernel.
      if (std::isnan(cond))
        throw std::logic_error(fmt::format(
            "metrics: element {} has no usable condition scale (scale {}, exact {}): oracle bug", i,
            exact.scale[i], hi));
      note_worst(i, cond, a);
    }
    if (std::isfinite(a) && std::isfinite(hi)) {
      const double dv = (a - hi) * norm_unit, hv = hi * norm_unit;
      diff2 += dv * dv;
      ref2 += hv * hv;
    }
  }
  m.normwise = ref2 > 0 ? std::sqrt(diff2 / ref2) : (diff2 > 0 ? inf : 0);
  if (m.unwritten > 0) m.verdict = Verdict::unwritten;
  else if (m.policy_violations > 0 || !(m.max_cond_err <= m.budget)) m.verdict = Verdict::fail;
  return m;
}

bool ill_posed(const ExactOutput& e, int64_t i) { return ElementRule(e).ill_posed(e, i); }

long double cond_denominator(const ExactOutput& e, int64_t i) { return ElementRule(e).denominator(e, i); }

std::string describe_index(const Problem& p, const std::string& output, int64_t flat) {
  if (flat < 0) return "-";
  if (output == "mean" || output == "rstd") return fmt::format("n={} g={}", flat / p.G, flat % p.G);
  if (output == "dgamma" || output == "dbeta")
    return p.per_sample() ? fmt::format("n={} c={}", flat / p.C, flat % p.C) : fmt::format("c={}", flat);
  const int64_t S = p.S();
  int64_t n, c, s;
  if (p.layout == Layout::nchw) {
    n = flat / (p.C * S);
    c = (flat / S) % p.C;
    s = flat % S;
  } else {
    n = flat / (p.C * S);
    s = (flat / p.C) % S;
    c = flat % p.C;
  }
  std::vector<int64_t> pos;
  for (auto it = p.spatial.rbegin(); it != p.spatial.rend(); ++it) {
    pos.insert(pos.begin(), s % *it);
    s /= *it;
  }
  return fmt::format("n={} c={} g={} s=({})", n, c, c / p.channels_per_group(), fmt::join(pos, ","));
}

}  // namespace gnv
