// The exact GroupNorm oracle.
//
// For a group of m elements with exact sum S and exact sum of squares Q, write
//   D = m*Q - S^2 + eps*m^2          (exact: a dyadic rational times nothing)
//   T_i = m*x_i - S                  (exact)
// Then mean = S/m, rstd = m/sqrt(D), xhat_i = T_i/sqrt(D), y_i = gamma_c*T_i/sqrt(D) + beta_c,
// and for the backward pass, with g_i = gamma_c*dy_i, SG = sum g, SGT = sum g*T:
//   dx_i = (m*g_i*D - SG*D - T_i*SGT) / (D*sqrt(D)).
// Every output is A/(K*sqrt(D)) + B with exact A, K, B: one square root per group. Each is
// approximated at kPrec bits with a proven error bound, and rounded once; where the bound
// straddles a rounding boundary, the sign of (value - midpoint) is decided exactly by squaring
// (exact::round_certified). mean and dbeta are exact rationals, rounded via round-to-odd.
// dgamma_c = sum_n U_nc/sqrt(D_n) mixes several square roots: it is approximated with a growing
// precision (Ziv) up to kMaxPrec bits; a value still undecided there is counted in `undecided`.
//
// The fast path (OraclePath::fast, docs/numerics.md "The fast path") computes the same exact sums
// (S, Q, and per sample and channel sum dy and sum dy*x) in integer digits (superacc.h) and
// evaluates each y and dx in double-word arithmetic (dw.h) with an error bound; a value whose
// interval does not decide its rounding goes through the per-element MPFR code, so both paths
// share every formula but the approximation.
#include <bit>
#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <stdexcept>

#include "dw.h"
#include "epilogue.h"
#include "exact.h"
#include "gnv/oracle.h"
#include "gnv/threads.h"
#include "superacc.h"

// The per-element loops of the fast path: on x86-64 with GCC a copy is compiled for FMA hardware
// and chosen at load time. Without it each std::fma of dw.h is a libm call; the results are the
// same (fma is exact by definition either way, and -ffp-contract=off keeps every other expression
// as written).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GNV_FMA_CLONES __attribute__((target_clones("fma", "default")))
#else
#define GNV_FMA_CLONES
#endif

namespace gnv {

using exact::P;
using exact::Real;

namespace {

constexpr long kPrec = 192;
constexpr long kMaxPrec = 4096;
// The fast path's bounds are computed in double: each is rounded upward by this factor, which
// covers the roundings of its own evaluation.
constexpr double kSlack = 1 + 0x1p-40;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// How closely the two paths' lo agree, as a fraction of |hi| + scale (docs/numerics.md
// "Agreement"): what oracle_paths_mismatch allows, and what narrow_enough keeps room under.
constexpr long double kLoAgreement = 0x1p-90L;

// Gradual underflow (docs/numerics.md "Metrics and budgets"). Below the normal range each product,
// quotient and square root of a kernel may lose up to eta (the smallest subnormal of acc_t)
// absolutely rather than u relatively, and normalization amplifies such losses: by rstd in the
// mean, by rstd^2 in the variance (squares of small deviations underflow), then by gamma (or G in
// the backward pass). The scales below carry these terms in units of u_acc (the metric multiplies
// a scale by u_acc), so each is eta/u_acc times an amplification; in the normal range they are
// about 1e-38 (f32) or 1e-308 (f64) of the other terms. long double, because r^2 of an f64
// group can exceed double's range where the allowance itself does not. The fast path evaluates
// the same formulas in double (F = double) where its range and rstd within [2^-100, 2^100]
// (FastGroup::scales_double) keep them far from double's limits: the scales then agree to a few
// ulps (oracle_paths_mismatch allows 2^-40), at a fraction of the x87 cost.
long double eta_over_u(DType d) {
  const DTypeInfo& a = info(acc_dtype(d));
  return static_cast<long double>(a.min_subnormal) / a.unit_roundoff;
}
// The absolute error of one xhat from underflow, in units of eta: its own rounding, the mean's
// (m steps, times r) and the variance's (m squares, times r^2 |xhat| / 2 through rstd).
template <class F = long double>
F xhat_underflow(F r, F m, F xh) {
  return 1 + r * m + r * r * m * xh / 2;
}

// |xhat| = |T| * r: at most sqrt(m), but T (up to 2 m max|x|) can overflow double where r is
// tiny, and Inf * tiny (or Inf * 0 in a scale) would be NaN, leaving the element silently
// unjudged; then, and where T underflows, the product is taken in MPFR.
double xhat_abs(const Real& T, const Real& r) {
  const double fast = std::fabs(mpfr_get_d(P(T), MPFR_RNDN) * mpfr_get_d(P(r), MPFR_RNDN));
  if (std::isfinite(fast) && fast > 0) return fast;  // the common case: both in double's range
  Real t;
  mpfr_set_prec(P(t), 64);
  mpfr_mul(P(t), P(T), P(r), MPFR_RNDN);
  return std::fabs(mpfr_get_d(P(t), MPFR_RNDN));
}

// Element j of group (n, g), in channel-major order: channel c0 + j / S, spatial j % S.
struct GroupIter {
  const Problem& p;
  int64_t n, g;
  int64_t channel(int64_t j) const { return g * p.channels_per_group() + j / p.S(); }
  int64_t offset(int64_t j) const { return p.index(n, channel(j), j % p.S()); }
};

// The exact statistics of one group.
struct GroupStats {
  bool finite = true;  // all x finite
  bool degenerate = false;  // D == 0 (eps == 0 and a constant group): rstd = +Inf
  bool exact = false;  // S, D and r below hold the group's (the fast path takes them only on demand)
  double max_abs = 0;
  Real S, D;
  Real r;  // 1/sqrt(D) rounded to nearest at kPrec bits
  double rstd = kNaN, kappa = kNaN;
  // Before a new group (a GroupStats is reused; S, D and r keep their storage).
  void reset() {
    finite = true;
    degenerate = exact = false;
    max_abs = 0;
    rstd = kappa = kNaN;
  }
};

void finish_stats(const Problem& p, GroupStats& st, const Real& Q);

// The reference: every x and x^2 as an MPFR number, summed by mpfr_sum.
void compute_stats(const Problem& p, const Tensor& x, int64_t n, int64_t g, GroupStats& st,
                   std::vector<Real>& xs, std::vector<Real>& sq) {
  const int64_t m = p.group_size();
  GroupIter it{p, n, g};
  xs.resize(m);
  sq.resize(m);
  st.reset();
  for (int64_t j = 0; j < m; ++j) {
    const double v = x.get(it.offset(j));
    if (!std::isfinite(v)) st.finite = false;
    st.max_abs = std::max(st.max_abs, std::fabs(v));
    exact::set_d(xs[j], std::isfinite(v) ? v : 0.0);
    exact::mul(sq[j], xs[j], xs[j]);
  }
  if (!st.finite) return;
  Real Q;
  exact::sum(st.S, xs);
  exact::sum(Q, sq);
  finish_stats(p, st, Q);
}

void finish_stats(const Problem& p, GroupStats& st, const Real& Q) {
  const int64_t m = p.group_size();
  Real mQ, S2, nv, eps, m2eps;
  exact::mul_si(mQ, Q, m);
  exact::mul(S2, st.S, st.S);
  exact::sub(nv, mQ, S2);
  exact::set_d(eps, p.eps);
  exact::mul_si(m2eps, eps, m * m);
  exact::add(st.D, nv, m2eps);
  if (mpfr_sgn(P(st.D)) < 0) throw std::logic_error("oracle: negative variance");
  st.exact = true;
  st.degenerate = mpfr_zero_p(P(st.D));
  if (st.degenerate) {
    st.rstd = std::numeric_limits<double>::infinity();
    st.kappa = kNaN;
    return;
  }
  mpfr_set_prec(P(st.r), kPrec);
  mpfr_rec_sqrt(P(st.r), P(st.D), MPFR_RNDN);
  st.rstd = mpfr_get_d(P(st.r), MPFR_RNDN) * static_cast<double>(m);
  st.kappa = st.max_abs * st.rstd;
}

Real from_double(double v) {
  Real r;
  exact::set_d(r, v);
  return r;
}

// An upper bound on (sum of c |v| terms, times further |v| factors) * 2^e, computed in MPFR at 64
// bits rounding upward. Error bounds are never computed in double: their factors (products of
// subnormal f64 values, the rstd of a spread near the smallest subnormal, 2^-prec) leave double's
// range, and a term that underflows to 0 makes the bound too small, so that an interval which
// misses the exact value "certifies" a rounding or sends round_certified off its bracket
// (fuzzing found this: fuzz/corpus/differential/repro-oracle-error-bound-underflow).
class UpBound {
 public:
  UpBound() {
    mpfr_set_prec(P(acc_), 64);
    mpfr_set_zero(P(acc_), 1);
    mpfr_set_prec(P(t_), 64);
  }
  UpBound& add(double c, const Real& v) {  // += c |v|
    mpfr_abs(P(t_), P(v), MPFR_RNDU);
    mpfr_mul_d(P(t_), P(t_), c, MPFR_RNDU);
    mpfr_add(P(acc_), P(acc_), P(t_), MPFR_RNDU);
    return *this;
  }
  UpBound& times(const Real& v) {  // *= |v|
    mpfr_abs(P(t_), P(v), MPFR_RNDU);
    mpfr_mul(P(acc_), P(acc_), P(t_), MPFR_RNDU);
    return *this;
  }
  UpBound& times(double c) {
    mpfr_mul_d(P(acc_), P(acc_), c, MPFR_RNDU);
    return *this;
  }
  Real scaled(long e) const {  // the bound times 2^e (exact in MPFR's exponent range)
    Real r;
    mpfr_set_prec(P(r), 64);
    mpfr_mul_2si(P(r), P(acc_), e, MPFR_RNDU);
    return r;
  }

 private:
  Real acc_, t_;
};

ExactOutput make_output(const std::string& name, DType d, std::vector<int64_t> shape, int64_t L) {
  ExactOutput o;
  o.name = name;
  o.rounded = Tensor(d, std::move(shape));
  const auto k = static_cast<size_t>(o.rounded.numel());
  o.hi.assign(k, 0);
  o.lo.assign(k, 0);
  o.scale.assign(k, 0);
  o.kappa.assign(k, 0);
  o.reduction_length = L;
  return o;
}

void set_undefined(ExactOutput& o, int64_t i) {
  o.rounded.set_bits(i, exact::quiet_nan_bits(o.rounded.dtype()));
  o.hi[i] = kNaN;
  o.lo[i] = 0;
  o.scale[i] = kNaN;
  o.kappa[i] = kNaN;
}

void set_value(ExactOutput& o, int64_t i, uint64_t bits, const Real& approx, long double scale,
               double kappa) {
  o.rounded.set_bits(i, bits);
  exact::to_double_double(approx, o.hi[i], o.lo[i]);
  o.scale[i] = scale;
  o.kappa[i] = kappa;
}

// rstd = m/sqrt(D), certified-rounded to the accumulation dtype (st finite, not degenerate).
uint64_t rstd_bits(const Problem& p, const GroupStats& st, Real& approx) {
  const int64_t m = p.group_size();
  Real A, one;
  mpfr_set_prec(P(approx), kPrec);
  mpfr_mul_si(P(approx), P(st.r), static_cast<long>(m), MPFR_RNDN);
  exact::set_d(A, static_cast<double>(m));
  exact::set_d(one, 1.0);
  const Real zero = from_double(0.0);
  return exact::round_certified(acc_dtype(p.dtype), approx, UpBound().add(3, approx).scaled(-kPrec),
                                A, one, st.D, zero);
}

// rstd's condition scale: kappa + 1 relative, and the variance's m squares' underflow via r^3.
long double rstd_scale(const Problem& p, const GroupStats& st) {
  const long double r = st.rstd;
  const long double under = eta_over_u(p.dtype) * r * r * r * p.group_size() / 2;
  return r * (st.kappa + 1) + under;
}

// mean = S/m exactly rounded; rstd = m/sqrt(D) certified.
void write_stats(const Problem& p, const GroupStats& st, int64_t i, ExactOutput& mean,
                 ExactOutput& rstd) {
  const DType acc = acc_dtype(p.dtype);
  if (!st.finite) {
    set_undefined(mean, i);
    set_undefined(rstd, i);
    return;
  }
  const int64_t m = p.group_size();
  Real mu;
  exact::div_si_odd(mu, st.S, m, kPrec);
  set_value(mean, i, exact::round_to(acc, mu), mu, st.max_abs, st.kappa);
  if (st.degenerate) {
    const double inf = std::numeric_limits<double>::infinity();
    rstd.rounded.set(i, inf);
    rstd.hi[i] = inf;
    rstd.scale[i] = 0;
    rstd.kappa[i] = kNaN;
    return;
  }
  Real approx;
  const uint64_t bits = rstd_bits(p, st, approx);
  set_value(rstd, i, bits, approx, rstd_scale(p, st), st.kappa);
}

}  // namespace

const ExactOutput& OracleResult::get(const std::string& name) const {
  for (const auto& o : outputs)
    if (o.name == name) return o;
  throw std::invalid_argument("oracle result has no output '" + name + "'");
}

namespace {

// What every y of a case shares: gamma and beta as doubles (param_exact makes the reference's
// MPFR copies, per element it evaluates), and which channels the fast path can take (finite
// parameters in its range).
struct ForwardCtx {
  const Problem& p;
  int64_t m;
  std::vector<double> gd, bd;
  std::vector<char> fast_ch;
  long double eta = eta_over_u(p.dtype);
};

// The fast path's range: every nonzero operand magnitude in [2^-300, 2^300] keeps the double-word
// operations of dw.h clear of underflow and overflow (their error bounds assume both away). Every
// f32, f16 and bf16 value is in it; f64 values outside it go to the reference.
bool in_fast_range(double v) {
  const double a = std::fabs(v);
  return a == 0 || (a >= 0x1p-300 && a <= 0x1p300);
}
// Every x of a group in it (only f64 can fail): then x - mu is 0 or at least 2^-352, and its
// products with rho and q stay clear of underflow. A subnormal x with mu = 0 had x rho's rounding
// error underflow out of its bound, and y = gamma x rho + beta, dx certified wrong values
// (OraclePaths.TinyF64ValuesLeaveTheFastPath).
bool all_in_fast_range(const std::vector<double>& xv) {
  for (double v : xv)
    if (!in_fast_range(v)) return false;
  return true;
}

// Indexed by Problem::param_index: per channel, or per sample and channel.
int64_t param_count(const Problem& p) { return p.per_sample() ? p.N * p.C : p.C; }

// What output `out` of dgamma/dbeta sums: channel ch over the samples [n0, n1) (all of them, or
// its own sample's for per-sample parameters).
struct ParamOutput {
  int64_t ch, n0, n1;
};
ParamOutput param_output(const Problem& p, int64_t out) {
  const int64_t n0 = p.per_sample() ? out / p.C : 0;
  return {out % p.C, n0, p.per_sample() ? n0 + 1 : p.N};
}

ForwardCtx forward_ctx(const Case& c) {
  const Problem& p = c.problem;
  const auto np = static_cast<size_t>(param_count(p));
  ForwardCtx k{p, p.group_size(), std::vector<double>(np, 1.0), std::vector<double>(np, 0.0),
               std::vector<char>(np, 1)};
  for (size_t q = 0; q < np; ++q) {
    if (p.affine) {
      k.gd[q] = c.gamma.get(static_cast<int64_t>(q));
      k.bd[q] = c.beta.get(static_cast<int64_t>(q));
    }
    k.fast_ch[q] = in_fast_range(k.gd[q]) && in_fast_range(k.bd[q]);  // false for Inf, NaN
  }
  return k;
}

// gamma and beta of parameter q as exact MPFR numbers (0 for a value that is not finite).
void param_exact(const ForwardCtx& k, int64_t q, Real& gam, Real& bet) {
  exact::set_d(gam, std::isfinite(k.gd[q]) ? k.gd[q] : 0.0);
  exact::set_d(bet, std::isfinite(k.bd[q]) ? k.bd[q] : 0.0);
}

bool y_defined(const ForwardCtx& k, const GroupStats& st, int64_t q) {
  return st.finite && !st.degenerate && std::isfinite(k.gd[q]) && std::isfinite(k.bd[q]);
}

// The condition scale of y (docs/numerics.md "Metrics and budgets"), from |xhat| and |y|. F =
// double is the fast path's shortcut, taken only where every operand is within [2^-300, 2^300]
// and rstd within [2^-100, 2^100] (FastGroup::scales_double), so every term stays within 2^720:
// the long double result (whose range holds every S_i, also past double's) is not needed there.
template <class F = long double>
long double y_scale(const ForwardCtx& k, const GroupStats& st, int64_t q, double xh, long double yv) {
  const F gam = std::fabs(k.gd[q]);
  const F under = static_cast<F>(k.eta) * (gam * xhat_underflow<F>(st.rstd, static_cast<F>(k.m), xh) + 1);
  return gam * st.kappa * (2 + xh) + std::fabs(k.bd[q]) + static_cast<F>(yv) + under;
}

struct YScratch {
  Real T, mx, xhat, t, ya, A, xj, gam, bet;
};

// y at element `off` (parameters q, Problem::param_index) from the exact x in MPFR: the reference evaluation.
void y_reference(const ForwardCtx& k, const GroupStats& st, const Real& xj, int64_t off, int64_t q,
                 ExactOutput& y, YScratch& s) {
  static const Real one = from_double(1.0);
  param_exact(k, q, s.gam, s.bet);
  exact::mul_si(s.mx, xj, k.m);
  exact::sub(s.T, s.mx, st.S);
  mpfr_set_prec(P(s.xhat), kPrec);
  mpfr_mul(P(s.xhat), P(s.T), P(st.r), MPFR_RNDN);
  mpfr_set_prec(P(s.t), kPrec);
  mpfr_mul(P(s.t), P(s.xhat), P(s.gam), MPFR_RNDN);
  mpfr_set_prec(P(s.ya), kPrec);
  mpfr_add(P(s.ya), P(s.t), P(s.bet), MPFR_RNDN);
  const long double yv = std::fabs(mpfr_get_ld(P(s.ya), MPFR_RNDN));  // |y| may pass double's range
  // |ya - y| <= 2^-P (3.01 |t| + |ya|): three roundings in the product, one in the sum.
  const Real err = UpBound().add(4, s.t).add(2, s.ya).scaled(-kPrec);
  exact::mul(s.A, s.gam, s.T);
  const uint64_t bits = exact::round_certified(k.p.dtype, s.ya, err, s.A, one, st.D, s.bet);
  const double xh = std::fabs(mpfr_get_d(P(s.xhat), MPFR_RNDN));
  set_value(y, off, bits, s.ya, y_scale(k, st, q, xh, yv), st.kappa);
}

// The SiLU epilogue over group (n, g), whose y before it is written: each defined element becomes
// silu(y) of the exact y = gamma T / sqrt(D) + beta, decided on intervals (oracles/epilogue.h),
// with the condition scale min(|silu'(y)| + 32 u S_y, 1.1) S_y + 3 |z| + eta: the largest |silu'|
// within 64 u S_y of y (|silu''| <= 1/2), so that a kernel's error in y still bounds its error in
// z where silu' vanishes, at silu's minimum y = -1.278, and never above silu's largest slope
// (1.0998 at y = 2.40): uncapped, a large S_y made the allowance grow like S_y^2 and pass a z
// that was wildly wrong (docs/numerics.md "Fused epilogues").
// xj(j) is element j's exact x; js the elements to evaluate (channel-major indices j within the
// group: every one on the reference path, those the fast path left on it). Returns the count of
// values left undecided.
long double z_scale(const ForwardCtx& k, double grad_abs, long double sy, double z) {
  const long double u_acc = info(acc_dtype(k.p.dtype)).unit_roundoff;
  return std::min(grad_abs + 32 * u_acc * sy, 1.1L) * sy + 3 * z + k.eta;
}
template <class XJ>
int64_t silu_group(const ForwardCtx& k, const GroupStats& st, int64_t n, int64_t g, XJ&& xj,
                   const std::vector<int64_t>& js, ExactOutput& y) {
  const int64_t S = k.p.S(), cpg = k.p.channels_per_group();
  int64_t undecided = 0;
  Real T, mx, A, gam, bet;
  epilogue::Interval r0(epilogue::kStartBits);
  if (!js.empty()) epilogue::enclose_rsqrt(r0, st.D);
  for (int64_t j : js) {
    const int64_t ch = g * cpg + j / S, q = k.p.param_index(n, ch);
    if (!y_defined(k, st, q)) continue;
    exact::mul_si(mx, xj(j), k.m);
    exact::sub(T, mx, st.S);
    param_exact(k, q, gam, bet);
    exact::mul(A, gam, T);
    const epilogue::SiluResult r = epilogue::silu_rounded(k.p.dtype, A, st.D, bet, r0);
    undecided += r.decided ? 0 : 1;
    const long double sy = y_scale(k, st, q, xhat_abs(T, st.r), r.v_abs);
    const double z = std::fabs(mpfr_get_d(P(r.approx), MPFR_RNDN));
    set_value(y, k.p.index(n, ch, j % S), r.bits, r.approx, z_scale(k, r.grad_abs, sy, z), st.kappa);
  }
  return undecided;
}

// The double-word images of the group's exact mean S/m (three doubles) and rstd m/sqrt(D) (two),
// with bounds on their distance from the exact values. ok is false where a part leaves the fast
// range (an f64 group of huge or tiny values, a spread whose rstd does).
// An exact sum divided by m (the mean S/m, gbar = SG/m) as three doubles p[0] + p[1] + p[2],
// and an upward bound e on their distance from the exact quotient.
struct Triple {
  double p[3] = {};
  double e = 0;
  bool in_range() const;  // every part in the fast range, e at most 2^300
};

struct FastGroup {
  bool ok = false;
  // The condition scales may be computed in double (F = double): rstd within [2^-100, 2^100], so
  // that their rstd^3-sized underflow terms stay in double's range (fuzz/corpus/oracle_paths/
  // repro-dx-scale-overflow-in-double: rstd = 1/sqrt(eps) = 7e85 overflowed them).
  bool scales_double = false;
  Triple mu;
  dw::DW rho;
  double e_rho = 0;
  // From the fast statistics only: the centre c, mean - c and r = rho/m, with bounds.
  double c = 0, e_dm = 0, e_r = 0;
  dw::DW dm, r;
};

// s/m for a double word s within e_s of a value (m < 2^26, |s.hi| 0 or at least 2^-900): q0 =
// RN(s.hi/m), its remainder exact by FMA, q1 = RN(RN(rem + s.lo)/m) within 3u|q1| of the rest
// (0 where both steps are exact), plus e_s/m; then normalized by FastTwoSum (exact).
dw::DW div_m(dw::DW s, double e_s, double md, double& e) {
  const double q0 = s.hi / md, rem = std::fma(-q0, md, s.hi);
  const dw::DW w = dw::two_sum(rem, s.lo);
  const double q1 = w.hi / md;
  const bool exact = w.lo == 0 && std::fma(-q1, md, w.hi) == 0;
  e = ((exact ? 0 : 3 * 0x1p-53 * std::fabs(q1) + 0x1p-1000) + e_s / md) * kSlack;
  return dw::fast_two_sum(q0, q1);
}

// An upper bound, as a double, of the MPFR value |v| (rounding up; 0 only for 0).
double up_double(const Real& v) {
  return std::fabs(mpfr_get_d(P(v), mpfr_sgn(P(v)) >= 0 ? MPFR_RNDU : MPFR_RNDD));
}

// v (at most kPrec bits, or exact) as doubles parts[0] + parts[1] + ..., each the nearest double
// to what is left, and an upward bound on |v - the parts| + rel |v|, where rel bounds the relative
// rounding that made v (0 where v is exact).
template <size_t Nd>
double peel(const Real& v, double (&parts)[Nd], double rel) {
  Real rest, t;
  const mpfr_prec_t pr = std::max<mpfr_prec_t>(mpfr_get_prec(P(v)), kPrec) + 8;
  mpfr_set_prec(P(rest), pr);
  mpfr_set_prec(P(t), pr);
  mpfr_set(P(rest), P(v), MPFR_RNDN);
  for (double& part : parts) {
    part = mpfr_get_d(P(rest), MPFR_RNDN);
    mpfr_sub_d(P(t), P(rest), part, MPFR_RNDN);  // exact: what is left has fewer bits than rest
    mpfr_swap(P(rest), P(t));
  }
  UpBound b;
  b.add(1, rest);
  if (rel > 0) b.add(rel, v);
  return up_double(b.scaled(0));
}

bool Triple::in_range() const {
  return in_fast_range(p[0]) && in_fast_range(p[1]) && in_fast_range(p[2]) &&
         e <= 0x1p300;
}

// sum/m at kPrec bits (exact when the division is), peeled into three doubles.
Triple quotient(const Real& sum, int64_t m) {
  Real v;
  mpfr_set_prec(P(v), kPrec);
  const int inexact = mpfr_div_si(P(v), P(sum), static_cast<long>(m), MPFR_RNDN);
  Triple t;
  t.e = peel(v, t.p, inexact ? 0x1p-190 : 0.0);
  return t;
}

FastGroup fast_group(int64_t m, const GroupStats& st, const std::vector<double>& xv) {
  FastGroup f;
  if (!st.finite || st.degenerate || !all_in_fast_range(xv)) return f;
  f.mu = quotient(st.S, m);
  // rho = m r, r = 1/sqrt(D) at kPrec bits (2^-kPrec relative, and the product's rounding), as two.
  Real rho;
  mpfr_set_prec(P(rho), kPrec);
  mpfr_mul_si(P(rho), P(st.r), static_cast<long>(m), MPFR_RNDN);
  double rho2[2];
  f.e_rho = peel(rho, rho2, 0x1p-188);
  f.rho = {rho2[0], rho2[1]};
  f.scales_double = st.rstd >= 0x1p-100 && st.rstd <= 0x1p100;
  f.ok = f.mu.in_range() && f.rho.hi != 0 && in_fast_range(f.rho.hi) && in_fast_range(f.rho.lo) &&
         f.e_rho <= 0x1p300;
  return f;
}

// The correctly rounded double of v from z (hi = RN(hi + lo)) with |z - v| <= e: hi = z.hi where
// the interval [z - e, z + e] lies inside z.hi's rounding cell, and side = the sign of v - hi where
// the bound shows it (0 where not). False where the interval reaches a cell boundary, or z.hi is
// zero, tiny or huge (the cells there are not the ones below).
// The neighbours of a finite nonzero double that is not the largest.
double next_up(double v) {
  const auto b = std::bit_cast<uint64_t>(v);
  return std::bit_cast<double>(v > 0 ? b + 1 : b - 1);
}
double next_down(double v) {
  const auto b = std::bit_cast<uint64_t>(v);
  return std::bit_cast<double>(v > 0 ? b - 1 : b + 1);
}

[[gnu::always_inline]] inline bool certify_double(dw::DW z, double e, int& side) {
  const double h = std::fabs(z.hi);
  if (!(h >= 0x1p-900 && h <= 0x1p900)) return false;
  // The smaller gap to a neighbour (exact), halved and rounded down; the computed |lo| + 2e
  // rounds by at most u, which the second e covers (e > 0) or which is exact (e == 0).
  const double gap = std::min(next_up(z.hi) - z.hi, z.hi - next_down(z.hi));
  const double half = gap * 0.5 * (1 - 0x1p-50);
  if (!(std::fabs(z.lo) + 2 * e < half)) return false;
  side = z.lo > e ? 1 : z.lo < -e ? -1 : 0;
  return true;
}

// The target's rounding of v from hi = RN_double(v): rounding twice is rounding once unless hi is
// a midpoint of the target format (its two double neighbours round apart), where the side of v
// decides. False where it is a midpoint and the side is unknown.
[[gnu::always_inline]] inline bool round_from_double(DType d, double hi, int side, uint64_t& bits) {
  bits = exact::round_double(d, hi);
  // A midpoint of f32, f16 or bf16 (subnormal, and the overflow threshold, included) has at most
  // 25 significant bits: the low 28 bits of its double significand are 0.
  if (d == DType::f64 || (std::bit_cast<uint64_t>(hi) & 0xFFFFFFF) != 0) return true;
  const uint64_t below = exact::round_double(d, next_down(hi));
  const uint64_t above = exact::round_double(d, next_up(hi));
  if (below == above) return true;
  if (side == 0) return false;
  bits = side > 0 ? above : below;
  return true;
}

// The fast statistics (docs/numerics.md "Fast statistics"): mean and rstd as double words with
// bounds (f) and st's rstd and kappa, from the group's values xv (finite) without MPFR. With c
// the naive mean cut to 24 significant bits (so that m c is exact; a constant group's value
// itself, for which both sums below are 0), the exact centred sums
//   S' = S - m c  and  Q' = sum (x - c)^2 = Q - 2 c S' - m c^2
// come from one superaccumulator each and leave it as three doubles; nv = m Q' - S'^2 (equal to
// m Q - S^2 for every c) and D = nv + eps m^2 are then formed in double-word arithmetic without
// cancellation (S'^2 is tiny against m Q' where c is near the mean), r = 1/sqrt(D) by one
// Newton step from double, and mean = c + S'/m. False where a bound or range check fails (a
// spread tiny against the mean, an f64 group near the range's ends, rstd's double rounding
// undecided): the caller then takes the exact statistics.
bool dw_stats(const Problem& p, const std::vector<double>& xv, exact::ExactSums& sums, GroupStats& st,
              FastGroup& f) {
  using dw::kU2;
  const auto m = static_cast<int64_t>(xv.size());
  const auto md = static_cast<double>(m);
  if (m > (int64_t{1} << 26) || !(st.max_abs <= 0x1p300) ||
      !(p.eps == 0 || (p.eps >= 0x1p-600 && p.eps <= 0x1p600)))
    return false;
  double c = 0;
  bool constant = true;
  for (double v : xv) {
    c += v;
    constant = constant && v == xv[0];
  }
  double s3[3] = {}, q3[3] = {}, t_s = 0, t_q = 0;
  if (constant) {
    c = xv[0];  // S' = Q' = 0 exactly: the mean is exact, and so is every x - mean
  } else {
    c = std::bit_cast<double>(std::bit_cast<uint64_t>(c / md) & ~((uint64_t{1} << 29) - 1));
    exact::SuperAcc& as = sums.accumulate(m, [&](int64_t i) { return xv[i]; });
    as.add(-(md * c));
    if (!as.to_doubles(s3, t_s)) return false;
    exact::SuperAcc& aq = sums.accumulate_products(m, [&](int64_t i) { return xv[i]; }, [&](int64_t i) { return xv[i]; });
    for (double s : s3) aq.add_product(-2 * c, s);
    aq.add_product(-(md * c), c);
    if (!aq.to_doubles(q3, t_q)) return false;
  }
  // S' = s + (s3[2] + its tail), Q' = q + (q3[2] + its tail + 2 c S''s tail).
  const dw::DW s{s3[0], s3[1]}, q{q3[0], q3[1]};
  const double e_s = std::fabs(s3[2]) + t_s, e_q = std::fabs(q3[2]) + t_q + 2 * std::fabs(c) * t_s;
  const dw::DW mq = dw::mul(q, md), s2 = dw::mul(s, s);
  const double e_mq = 4 * kU2 * std::fabs(mq.hi) + md * e_q;
  const double e_s2 = 10 * kU2 * std::fabs(s2.hi) + (2 * std::fabs(s.hi) * 1.001 + e_s) * e_s;
  const dw::DW nv = dw::add(mq, dw::DW{-s2.hi, -s2.lo});
  const dw::DW D = dw::add(nv, dw::two_prod(p.eps, md * md));  // m^2 < 2^53; eps m^2 exact
  const double e_D = (6 * kU2 * (std::fabs(nv.hi) + std::fabs(D.hi)) + e_mq + e_s2 + 0x1p-1000) * kSlack;
  if (!(D.hi >= 0x1p-600 && D.hi <= 0x1p600 && e_D <= 0x1p-80 * D.hi)) return false;
  // r0 = RN(1/RN(sqrt(D.hi))) is r (1 + d) with |d| < 2.6 u; one Newton step r0 + r0 (1 - D r0^2) / 2
  // leaves r (1 - 1.5 d^2 - d^3 / 2): below 2^-101 r. Then the steps' own bounds, and D's
  // relative error e_D / D, of which r keeps half.
  const double r0 = 1 / std::sqrt(D.hi);
  const dw::DW t = dw::mul(D, dw::two_prod(r0, r0));
  const dw::DW h = dw::add(dw::DW{-t.hi, -t.lo}, 1.0);
  const double e_h = 4 * kU2 * std::fabs(h.hi) + 10 * kU2 * std::fabs(t.hi);
  const dw::DW corr = dw::mul(h, 0.5 * r0);
  const dw::DW r = dw::add(corr, r0);
  const double e_r = (0x1p-101 * std::fabs(r.hi) + 4 * kU2 * (std::fabs(corr.hi) + std::fabs(r.hi)) +
                      0.5 * r0 * e_h + 0.51 * (e_D / D.hi) * std::fabs(r.hi)) *
                     kSlack;
  // The reference's rstd is RN_double(r at kPrec bits): the same double where the test also
  // covers that rounding.
  int side;
  if (!certify_double(r, e_r + 0x1p-190 * std::fabs(r.hi), side)) return false;
  st.degenerate = false;
  st.rstd = r.hi * md;
  st.kappa = st.max_abs * st.rstd;
  f.rho = dw::mul(r, md);
  f.e_rho = (4 * kU2 * std::fabs(f.rho.hi) + md * e_r) * kSlack;
  // mean = c + S'/m, renormalized without error.
  if (s.hi != 0 && std::fabs(s.hi) < 0x1p-900) return false;  // keeps div_m's remainder exact
  f.dm = div_m(s, e_s, md, f.e_dm);
  const dw::DW a = dw::two_sum(c, f.dm.hi), b = dw::two_sum(a.lo, f.dm.lo);
  f.mu.p[0] = a.hi;
  f.mu.p[1] = b.hi;
  f.mu.p[2] = b.lo;
  f.mu.e = f.e_dm;
  f.c = c;
  f.r = r;
  f.e_r = e_r;
  f.scales_double = st.rstd >= 0x1p-100 && st.rstd <= 0x1p100;
  f.ok = f.mu.in_range() && f.rho.hi != 0 && in_fast_range(f.rho.hi) && in_fast_range(f.rho.lo) &&
         f.e_rho <= 0x1p300 && (p.dtype != DType::f64 || all_in_fast_range(xv));
  return true;
}

// d = x - mu in double-word, with its bound e: TwoSum with mu0 (exact), then mu1 and mu2.
struct Centered {
  dw::DW d;
  double e = 0;
};
[[gnu::always_inline]] inline Centered center(double x, const FastGroup& f) {
  const dw::DW d1 = dw::add(dw::two_sum(x, -f.mu.p[0]), -f.mu.p[1]);
  const dw::DW d = dw::add(d1, -f.mu.p[2]);
  return {d, 4 * dw::kU2 * (std::fabs(d1.hi) + std::fabs(d.hi)) + f.mu.e};
}

// The fast path evaluates a run of up to kBlock elements in two loops: the double-word
// approximations and their bounds (branch-free, so the compiler vectorizes it), then each value's
// rounding test and the writes, where a value that fails goes to `rest` for the reference.
constexpr int kBlock = 64;
struct Approx {
  double hi[kBlock], lo[kBlock], e[kBlock], xh[kBlock];
};

// Tensor::set_bits without its out-of-line dtype dispatch, for the per-element loops.
[[gnu::always_inline]] inline void put_bits(Tensor& t, int64_t i, uint64_t b) {
  auto* p = static_cast<std::byte*>(t.raw());
  switch (t.dtype()) {
    case DType::f64: std::memcpy(p + 8 * i, &b, 8); break;
    case DType::f32: { const auto v = static_cast<uint32_t>(b); std::memcpy(p + 4 * i, &v, 4); break; }
    default: { const auto v = static_cast<uint16_t>(b); std::memcpy(p + 2 * i, &v, 2); break; }
  }
}

// Writes a certified value (hi + lo within e of it) with its scale; false where the rounding test
// cannot decide.
[[gnu::always_inline]] inline bool write_certified(ExactOutput& o, int64_t off, double hi, double lo, double e,
                                                   long double scale, double kappa) {
  int side = 0;
  uint64_t bits;
  if (e == 0) {
    // The value is hi + lo exactly (an exact mean): its double is RN(hi + lo), ties to even, and
    // the exact remainder gives the side; a value that is a double decides a tie by its own rounding.
    const dw::DW z = dw::two_sum(hi, lo);
    hi = z.hi + 0.0;  // an exact 0 is +0, as the reference's exact sums give it
    lo = z.lo;
    if (!std::isfinite(hi)) return false;
    if (lo == 0) bits = exact::round_double(o.rounded.dtype(), hi);
    else if (!round_from_double(o.rounded.dtype(), hi, lo > 0 ? 1 : -1, bits)) return false;
  } else if (!certify_double({hi, lo}, e, side) || !round_from_double(o.rounded.dtype(), hi, side, bits)) {
    return false;
  }
  put_bits(o.rounded, off, bits);
  o.hi[off] = hi;
  o.lo[off] = lo;
  o.scale[off] = scale;
  o.kappa[off] = kappa;
  return true;
}

// Exact zeros. A rounding test cannot certify a value that is exactly 0 (its interval always
// holds both signs), but the fast path can prove it: y is 0 where beta = 0 and gamma = 0 or
// x = mu; dx is 0 across a group whose gamma * dy are all 0. The reference rounds an exact 0 to +0
// (round_certified decides it exactly) and hands the metrics the signed zero its MPFR arithmetic
// produced, which follows IEEE's rules for signed zeros; write_zero writes the same.
enum class Sign { zero, negative_zero, positive, negative, unknown };
bool is_negative(Sign s) { return s == Sign::negative || s == Sign::negative_zero; }
bool is_zero(Sign s) { return s == Sign::zero || s == Sign::negative_zero; }
// The sign of T = m x - S, zero only where mu is a double equal to x. The reference forms T with
// exact::sub, which returns m x itself where S is 0 (so T = -0 for x = -0, fuzz/corpus/
// oracle_paths/repro-zero-sign-of-T) and MPFR's exact difference, +0, otherwise. A nonzero T has
// the sign of d where d's bound shows it.
Sign sign_of_T(const FastGroup& f, const Centered& c, double x) {
  if (f.mu.e == 0 && f.mu.p[1] == 0 && f.mu.p[2] == 0 && x == f.mu.p[0])
    return f.mu.p[0] == 0 && std::signbit(x) ? Sign::negative_zero : Sign::zero;
  if (std::fabs(c.d.hi) > c.e) return c.d.hi > 0 ? Sign::positive : Sign::negative;
  return Sign::unknown;
}
void write_zero(ExactOutput& o, int64_t off, bool negative, long double scale, double kappa) {
  put_bits(o.rounded, off, 0);  // +0 in every dtype
  o.hi[off] = negative ? -0.0 : 0.0;
  o.lo[off] = 0.0;
  o.scale[off] = scale;
  o.kappa[off] = kappa;
}
// y = xhat gamma + beta with xhat = T r: true where it is an exact 0 and written as such.
bool y_exact_zero(const ForwardCtx& k, const GroupStats& st, const FastGroup& f, double x, double xh,
                  int64_t off, int64_t q, ExactOutput& y) {
  const double gam = k.gd[q], bet = k.bd[q];
  if (bet != 0) return false;
  const Sign t = sign_of_T(f, center(x, f), x);
  if (t == Sign::unknown || (gam != 0 && !is_zero(t))) return false;
  const bool xhat_neg = is_negative(t);                    // T r, r > 0
  const bool prod_neg = xhat_neg != std::signbit(gam);     // xhat * gamma
  const bool y_neg = prod_neg && std::signbit(bet);        // a sum of zeros is -0 only from two
  write_zero(y, off, y_neg, y_scale(k, st, q, is_zero(t) ? 0.0 : xh, 0.0), st.kappa);
  return true;
}

// y = gamma d rho + beta for elements x[0 .. nb) of one channel. Each step's bound is its dw.h
// constant (doubled) times its result, plus the propagated bounds of its operands; 2^-1000 covers
// any underflow in the low parts; the final factor covers the roundings of the bound itself.
// Always inlined, so that the FMA copy of the caller has FMA instructions in it.
[[gnu::always_inline]] inline void y_approx(const FastGroup& f, double g, double b, const double* x, int nb,
                                            Approx& a) {
  using dw::kU2;
  for (int i = 0; i < nb; ++i) {
    const auto [d, e_d] = center(x[i], f);
    const dw::DW xh = dw::mul(d, f.rho);
    const double e_xh = 10 * kU2 * std::fabs(xh.hi) + std::fabs(f.rho.hi) * 1.001 * e_d +
                        (std::fabs(d.hi) * 1.001 + e_d) * f.e_rho;
    const dw::DW t = dw::mul(xh, g);
    const double e_t = 4 * kU2 * std::fabs(t.hi) + std::fabs(g) * e_xh;
    const dw::DW v = dw::add(t, b);
    a.hi[i] = v.hi;
    a.lo[i] = v.lo;
    a.e[i] = (4 * kU2 * std::fabs(v.hi) + e_t + 0x1p-1000) * kSlack;
    a.xh[i] = std::fabs(xh.hi);
  }
}

// Every y of group (n, g) the fast path certifies; the others' indices j (channel-major within the
// group) go to `rest` for the reference. With the SiLU epilogue each value is z = silu(y), from
// y's double-word value and bound (epilogue::silu_fast), and `rest` goes to silu_group.
GNV_FMA_CLONES
void y_fast_group(const ForwardCtx& k, const GroupStats& st, const FastGroup& f, const std::vector<double>& xv,
                  int64_t n, int64_t g, ExactOutput& y, std::vector<int64_t>& rest) {
  const int64_t S = k.p.S(), cpg = k.p.channels_per_group();
  const bool silu = k.p.epilogue == Epilogue::silu;
  Approx a;
  for (int64_t kk = 0; kk < cpg; ++kk) {
    const int64_t ch = g * cpg + kk, q = k.p.param_index(n, ch);
    if (!y_defined(k, st, q)) continue;  // written as undefined already
    if (!f.ok || !k.fast_ch[q]) {
      for (int64_t j = kk * S; j < (kk + 1) * S; ++j) rest.push_back(j);
      continue;
    }
    for (int64_t s0 = 0; s0 < S; s0 += kBlock) {
      const int nb = static_cast<int>(std::min<int64_t>(kBlock, S - s0));
      y_approx(f, k.gd[q], k.bd[q], &xv[kk * S + s0], nb, a);
      for (int i = 0; i < nb; ++i) {
        const int64_t off = k.p.index(n, ch, s0 + i);
        const long double scale = f.scales_double ? y_scale<double>(k, st, q, a.xh[i], std::fabs(a.hi[i]))
                                                  : y_scale(k, st, q, a.xh[i], std::fabs(a.hi[i]));
        if (silu) {
          const epilogue::FastSilu z = epilogue::silu_fast({{a.hi[i], a.lo[i]}, a.e[i]});
          if (!z.ok || !write_certified(y, off, z.z.v.hi, z.z.v.lo, z.z.e,
                                        z_scale(k, epilogue::grad_abs(a.hi[i]), scale, std::fabs(z.z.v.hi)),
                                        st.kappa))
            rest.push_back(kk * S + s0 + i);
          continue;
        }
        if (!write_certified(y, off, a.hi[i], a.lo[i], a.e[i], scale, st.kappa) &&
            !y_exact_zero(k, st, f, xv[kk * S + s0 + i], a.xh[i], off, q, y))
          rest.push_back(kk * S + s0 + i);
      }
    }
  }
}

// The elements of group (n, g) of t (x or dy) as doubles, channel-major.
template <class T>
void gather_typed(const Tensor& t, const Problem& p, int64_t n, int64_t g, double* out) {
  const T* src = t.data<T>();
  const int64_t S = p.S(), cpg = p.channels_per_group();
  for (int64_t kk = 0, j = 0; kk < cpg; ++kk)
    for (int64_t s = 0; s < S; ++s, ++j) out[j] = static_cast<double>(src[p.index(n, g * cpg + kk, s)]);
}
void gather_group(const Tensor& t, const Problem& p, int64_t n, int64_t g, std::vector<double>& out) {
  out.resize(static_cast<size_t>(p.group_size()));
  switch (t.dtype()) {
    case DType::f64: return gather_typed<double>(t, p, n, g, out.data());
    case DType::f32: return gather_typed<float>(t, p, n, g, out.data());
    case DType::f16: return gather_typed<Eigen::half>(t, p, n, g, out.data());
    case DType::bf16: return gather_typed<Eigen::bfloat16>(t, p, n, g, out.data());
  }
}

// The fast path's view of group (n, g): its values as doubles (in xv), whether they are finite,
// and max|x|.
void gather_values(const Problem& p, const Tensor& x, int64_t n, int64_t g, GroupStats& st,
                   std::vector<double>& xv) {
  gather_group(x, p, n, g, xv);
  st.reset();
  bool finite = true;  // (locals: st may alias the doubles of xv for all the compiler knows)
  double max_abs = 0;
  for (double v : xv) {
    finite = finite && std::isfinite(v);
    max_abs = std::max(max_abs, std::fabs(v));
  }
  st.finite = finite;
  st.max_abs = max_abs;
}

// The fast path's exact statistics (once per group, where finite): the exact sum and sum of
// squares of xv in integer digits, then the shared finish_stats.
void exact_stats(const Problem& p, const std::vector<double>& xv, exact::ExactSums& sums, GroupStats& st) {
  if (!st.finite || st.exact) return;
  const auto m = static_cast<int64_t>(xv.size());
  const auto x_at = [&](int64_t i) { return xv[i]; };
  sums.sum(m, x_at, P(st.S));
  Real Q;
  sums.sum_products(m, x_at, x_at, P(Q));
  finish_stats(p, st, Q);
}

void fast_stats(const Problem& p, const Tensor& x, int64_t n, int64_t g, GroupStats& st,
                std::vector<double>& xv, exact::ExactSums& sums) {
  gather_values(p, x, n, g, st, xv);
  exact_stats(p, xv, sums, st);
}

// Group (n, g)'s exact statistics on the chosen path: the fast path's (x as doubles in xv) or the
// reference's (x and x^2 as MPFR numbers in xs, sq).
void group_stats(const Case& c, const OracleOptions& o, int64_t n, int64_t g, GroupStats& st,
                 std::vector<Real>& xs, std::vector<Real>& sq, std::vector<double>& xv) {
  const Problem& p = c.problem;
  if (o.path == OraclePath::fast) {
    exact::ExactSums sums(p.dtype != DType::f64, o.binned_from);
    fast_stats(p, c.x, n, g, st, xv, sums);
  } else {
    compute_stats(p, c.x, n, g, st, xs, sq);
  }
}

// mean and rstd from the fast statistics; false where a rounding test cannot decide (the caller
// then writes both from the exact statistics). An exact mean (e = 0, 0 included) takes
// write_certified's exact branch.
bool write_fast_stats(const Problem& p, const GroupStats& st, const FastGroup& f, int64_t i, ExactOutput& mean,
                      ExactOutput& rstd) {
  const Triple& mu = f.mu;
  if (!write_certified(mean, i, mu.p[0], mu.p[1], mu.e + std::fabs(mu.p[2]), st.max_abs, st.kappa)) return false;
  // The reference rounds m r at kPrec bits (within 2^-189 of m/sqrt(D)) to double for hi.
  return write_certified(rstd, i, f.rho.hi, f.rho.lo, f.e_rho + 0x1p-189 * std::fabs(f.rho.hi), rstd_scale(p, st),
                         st.kappa);
}

thread_local int oracle_threads_override = 0;

}  // namespace

std::string oracle_paths_mismatch(const OracleResult& a, const OracleResult& b) {
  auto same = [](double x, double y) { return std::memcmp(&x, &y, sizeof x) == 0 || (std::isnan(x) && std::isnan(y)); };
  if (a.outputs.size() != b.outputs.size()) return "different outputs";
  for (size_t gi = 0; gi < a.kappa.size() && gi < b.kappa.size(); ++gi)
    if (!same(a.kappa[gi], b.kappa[gi]))
      return fmt::format("group kappa [{}]: {} vs {}", gi, a.kappa[gi], b.kappa[gi]);
  for (const ExactOutput& x : a.outputs) {
    const ExactOutput& y = b.get(x.name);
    if (x.rounded.numel() != y.rounded.numel()) return x.name + ": different sizes";
    for (int64_t i = 0; i < x.rounded.numel(); ++i) {
      const auto u = static_cast<size_t>(i);
      // lo: within 2^-90 of the condition scale (so of the error budget u_acc * scale): the fast
      // path's bound is about 2^-100 of |gamma xhat| + |beta|, which the scale exceeds, however
      // much gamma xhat + beta cancels. An infinite scale (past double's range: the element is
      // ill-posed, never judged) leaves lo unconstrained.
      const long double h = std::fabs(x.hi[u]), sc = std::fabs(y.scale[u]);
      const long double room =
          std::isinf(sc) ? sc : kLoAgreement * ((std::isfinite(h) ? h : 0) + (std::isfinite(sc) ? sc : 0)) + 0x1p-1000L;
      const bool lo_ok = same(x.lo[u], y.lo[u]) || std::fabs(x.lo[u] - y.lo[u]) <= room;
      const bool scale_ok = x.scale[u] == y.scale[u] || (std::isnan(x.scale[u]) && std::isnan(y.scale[u])) ||
                            std::fabs(x.scale[u] - y.scale[u]) <= 0x1p-40L * std::fabs(y.scale[u]);
      if (x.rounded.bits(i) != y.rounded.bits(i) || !same(x.hi[u], y.hi[u]) || !same(x.kappa[u], y.kappa[u]) ||
          !lo_ok || !scale_ok)
        return fmt::format("{}[{}]: bits {:#x} vs {:#x}, hi {:a} vs {:a}, lo {:a} vs {:a}, scale {} vs {}, kappa {} vs {}",
                           x.name, i, x.rounded.bits(i), y.rounded.bits(i), x.hi[u], y.hi[u], x.lo[u], y.lo[u],
                           x.scale[u], y.scale[u], x.kappa[u], y.kappa[u]);
    }
  }
  return "";
}

int oracle_threads() { return oracle_threads_override > 0 ? oracle_threads_override : cpu_threads(); }
ScopedOracleThreads::ScopedOracleThreads(int threads) : saved_(oracle_threads_override) {
  oracle_threads_override = threads;
}
ScopedOracleThreads::~ScopedOracleThreads() { oracle_threads_override = saved_; }

OracleResult oracle_forward(const Case& c, const OracleOptions& o) {
  c.validate();
  const Problem& p = c.problem;
  const int64_t m = p.group_size(), S = p.S(), cpg = p.channels_per_group();
  const DType acc = acc_dtype(p.dtype);
  OracleResult res;
  res.outputs.push_back(make_output("y", p.dtype, p.x_shape(), m));
  res.outputs.push_back(make_output("mean", acc, p.stats_shape(), m));
  res.outputs.push_back(make_output("rstd", acc, p.stats_shape(), m));
  ExactOutput &y = res.outputs[0], &mean = res.outputs[1], &rstd = res.outputs[2];
  res.kappa.assign(static_cast<size_t>(p.N * p.G), kNaN);
  const ForwardCtx k = forward_ctx(c);
  const bool fast = o.path == OraclePath::fast;

  // Groups write disjoint elements; each counts its own fall-backs, summed in a fixed order.
  std::vector<int64_t> fallbacks(static_cast<size_t>(p.N * p.G), 0), undecided(fallbacks.size(), 0);
  auto group = [&](int64_t gi) {
    const int64_t n = gi / p.G, g = gi % p.G;
    // Each thread's scratch, reused from group to group: a small group costs no allocation.
    thread_local struct {
      GroupStats st;
      YScratch s;
      std::vector<Real> xs, sq;
      std::vector<double> xv;
      std::vector<int64_t> rest;
      exact::ExactSums sums;
    } w;
    GroupStats& st = w.st;
    YScratch& s = w.s;
    const std::vector<Real>& xs = w.xs;
    const std::vector<double>& xv = w.xv;
    std::vector<int64_t>& rest = w.rest;
    rest.clear();
    FastGroup f;
    if (fast) {
      // The statistics in double words where they certify (then S, D and r in MPFR only for the
      // values the fast path leaves to the reference), else exactly.
      w.sums.configure(p.dtype != DType::f64, o.binned_from);
      gather_values(p, c.x, n, g, st, w.xv);
      const bool dws = st.finite && dw_stats(p, xv, w.sums, st, f);
      if (!dws) {
        exact_stats(p, xv, w.sums, st);
        f = fast_group(m, st, xv);
      }
      if (!dws || !write_fast_stats(p, st, f, gi, mean, rstd)) {
        exact_stats(p, xv, w.sums, st);
        write_stats(p, st, gi, mean, rstd);
        if (st.finite) fallbacks[gi] += 2;  // mean and rstd went to the reference
      }
    } else {
      compute_stats(p, c.x, n, g, st, w.xs, w.sq);
      write_stats(p, st, gi, mean, rstd);
    }
    res.kappa[gi] = st.kappa;
    for (int64_t kk = 0; kk < cpg; ++kk) {
      const int64_t ch = g * cpg + kk;
      if (y_defined(k, st, p.param_index(n, ch))) continue;
      for (int64_t sp = 0; sp < S; ++sp) set_undefined(y, p.index(n, ch, sp));
    }
    if (!st.finite || st.degenerate) return;
    if (fast) {
      y_fast_group(k, st, f, xv, n, g, y, rest);
      fallbacks[gi] += static_cast<int64_t>(rest.size());
      if (!rest.empty()) exact_stats(p, xv, w.sums, st);
    } else {
      for (int64_t j = 0; j < m; ++j) rest.push_back(j);
    }
    if (p.epilogue == Epilogue::silu) {
      auto xj = [&](int64_t j) -> const Real& {
        if (!fast) return xs[j];
        exact::set_d(s.xj, xv[j]);
        return s.xj;
      };
      undecided[gi] = silu_group(k, st, n, g, xj, rest, y);
      return;
    }
    for (int64_t j : rest) {
      const int64_t ch = g * cpg + j / S;
      if (!y_defined(k, st, p.param_index(n, ch))) continue;  // (the reference path's list holds every j)
      if (fast) exact::set_d(s.xj, xv[j]);
      y_reference(k, st, fast ? s.xj : xs[j], p.index(n, ch, j % S), p.param_index(n, ch), y, s);
    }
  };
  const int threads = o.threads > 0 ? o.threads : oracle_threads();
  ThreadPool::instance().run(threads, p.N * p.G, group);
  for (int64_t fb : fallbacks) res.fallbacks += fb;
  for (int64_t u : undecided) res.undecided += u;
  return res;
}

namespace {

// What every dx of a case shares.
struct BackwardCtx {
  const Problem& p;
  int64_t m;
  std::vector<double> gd;
  std::vector<char> fast_ch;  // gamma in the fast range
  long double eta = eta_over_u(p.dtype);
};

// The condition scale of dx (docs/numerics.md "Metrics and budgets"), from max|gamma dy|, |xhat|
// and |dx|.
template <class F = long double>
long double dx_scale(const BackwardCtx& k, const GroupStats& st, F gmax, double xh, long double vd) {
  // Underflow: g's and the sums' own losses times r, xhat's (through mean(g xhat) and
  // mean(g)) times r G, and rstd's relative error r^2 m eta / 2 times |dx|.
  const F rs = st.rstd, mm = static_cast<F>(k.m), sm = std::sqrt(mm);
  const F v = static_cast<F>(vd);
  const F under = static_cast<F>(k.eta) * (rs * (1 + mm) * (1 + xh) +
                                           rs * gmax * (sm + xh) * xhat_underflow<F>(rs, mm, sm) +
                                           rs * rs * mm * v / 2 + 1);
  return rs * gmax * (1 + st.kappa) * (2 + xh) + v + under;
}

// One element's part of dgamma's condition scale, summed per sample and channel.
template <class F = long double>
long double dgamma_scale_part(const BackwardCtx& k, const GroupStats& st, double dy, double xh) {
  const F d = std::fabs(dy);
  return d * (st.kappa * (2 + xh) + xh) +
         static_cast<F>(k.eta) * (d * xhat_underflow<F>(st.rstd, static_cast<F>(k.m), xh) + 1);
}

struct DxScratch {
  Real a1, a2, a3, u, dxa, A, mgD, sgD, tq, t1, T, gj, dyv, xj, mx;
};

// The group's sums for dx: SG = sum g, SGT = sum g T (exact), q = SGT / D at kPrec bits.
struct DxSums {
  Real SG, SGT, q;
};

// dx at element `off` from the exact T and g = gamma dy: the reference evaluation.
// u = m g - SG - T q at kPrec bits; dx = u / sqrt(D).
void dx_reference(const BackwardCtx& k, const GroupStats& st, const DxSums& sums, const Real& T, const Real& gj,
                  long double gmax, double xh, int64_t off, ExactOutput& dx, DxScratch& s) {
  mpfr_set_prec(P(s.a1), mpfr_get_prec(P(gj)) + 64);
  mpfr_mul_si(P(s.a1), P(gj), static_cast<long>(k.m), MPFR_RNDN);  // exact
  mpfr_set_prec(P(s.a2), kPrec);
  mpfr_sub(P(s.a2), P(s.a1), P(sums.SG), MPFR_RNDN);
  mpfr_set_prec(P(s.a3), kPrec);
  mpfr_mul(P(s.a3), P(T), P(sums.q), MPFR_RNDN);
  mpfr_set_prec(P(s.u), kPrec);
  mpfr_sub(P(s.u), P(s.a2), P(s.a3), MPFR_RNDN);
  mpfr_set_prec(P(s.dxa), kPrec);
  mpfr_mul(P(s.dxa), P(s.u), P(st.r), MPFR_RNDN);
  const long double vd = std::fabs(mpfr_get_ld(P(s.dxa), MPFR_RNDN));
  const Real err =
      UpBound().add(1, s.a2).add(3, s.a3).add(1, s.u).times(st.r).times(1.01).add(3, s.dxa).scaled(-kPrec);
  // Exact form for the rare undecided rounding: dx = A'/(D sqrt D), A' = m g D - SG D - T SGT.
  const uint64_t bits = [&] {
    Real lo, hi;
    mpfr_set_prec(P(lo), kPrec + 8);
    mpfr_set_prec(P(hi), kPrec + 8);
    mpfr_sub(P(lo), P(s.dxa), P(err), MPFR_RNDD);
    mpfr_add(P(hi), P(s.dxa), P(err), MPFR_RNDU);
    const uint64_t b = exact::round_to(k.p.dtype, lo);
    if (b == exact::round_to(k.p.dtype, hi)) return b;
    exact::mul(s.mgD, s.a1, st.D);
    exact::mul(s.sgD, sums.SG, st.D);
    exact::mul(s.tq, T, sums.SGT);
    exact::sub(s.t1, s.mgD, s.sgD);
    exact::sub(s.A, s.t1, s.tq);
    return exact::round_certified(k.p.dtype, s.dxa, err, s.A, st.D, st.D, from_double(0.0));
  }();
  set_value(dx, off, bits, s.dxa, dx_scale(k, st, gmax, xh, vd), st.kappa);
}

// The fast path's per-group parts of dx = rstd (g - gbar - d q), with d = x - mu (FastGroup):
// gbar = SG/m as three doubles and q = SGT/D as two, each with a bound.
struct FastDx {
  bool ok = false;
  Triple gb;
  dw::DW q;
  double e_q = 0;
};

FastDx fast_dx(int64_t m, const DxSums& sums) {
  FastDx f;
  f.gb = quotient(sums.SG, m);
  // q was rounded once at kPrec bits from SGT / D.
  double q2[2];
  f.e_q = peel(sums.q, q2, 0x1p-190);
  f.q = {q2[0], q2[1]};
  f.ok = f.gb.in_range() && in_fast_range(f.q.hi) && in_fast_range(f.q.lo) && f.e_q <= 0x1p300;
  return f;
}

// dx = rstd (g - gbar - d q) for elements [0 .. nb) of one channel, with y_approx's rules for the
// bounds (docs/numerics.md "The fast path"). A dy outside the fast range gets e = NaN, which no
// rounding test passes.
[[gnu::always_inline]] inline void dx_approx(const FastGroup& f, const FastDx& fd, double gam, const Centered* c,
                                             const double* dy, int nb, Approx& a) {
  using dw::kU2;
  for (int i = 0; i < nb; ++i) {
    const dw::DW g = dw::two_prod(gam, dy[i]);  // exact where both are in the fast range
    const dw::DW a1 = dw::add(dw::two_sum(g.hi, -fd.gb.p[0]), g.lo);
    const dw::DW a2 = dw::add(a1, -fd.gb.p[1]);
    const dw::DW am = dw::add(a2, -fd.gb.p[2]);
    const double e_a = 4 * kU2 * (std::fabs(a1.hi) + std::fabs(a2.hi) + std::fabs(am.hi)) + fd.gb.e;
    const dw::DW d = c[i].d;
    const double e_d = c[i].e;
    const dw::DW pq = dw::mul(d, fd.q);
    const double e_p = 10 * kU2 * std::fabs(pq.hi) + std::fabs(fd.q.hi) * 1.001 * e_d +
                       (std::fabs(d.hi) * 1.001 + e_d) * fd.e_q;
    const dw::DW A = dw::add(am, dw::DW{-pq.hi, -pq.lo});
    const double e_A = 6 * kU2 * std::fabs(A.hi) + e_a + e_p;
    const dw::DW v = dw::mul(A, f.rho);
    const double e = (10 * kU2 * std::fabs(v.hi) + std::fabs(f.rho.hi) * 1.001 * e_A +
                      (std::fabs(A.hi) * 1.001 + e_A) * f.e_rho + 0x1p-1000) *
                     kSlack;
    const double ady = std::fabs(dy[i]);
    const bool dy_ok = ady == 0 || (ady >= 0x1p-300 && ady <= 0x1p300);
    a.hi[i] = v.hi;
    a.lo[i] = v.lo;
    a.e[i] = dy_ok ? e : std::numeric_limits<double>::quiet_NaN();
  }
}

// Every dx of group (n, g) the fast path certifies; the others go to `rest`.
GNV_FMA_CLONES
void dx_fast_group(const BackwardCtx& k, const GroupStats& st, const FastGroup& f, const FastDx& fd,
                   const std::vector<double>& xv, const std::vector<Centered>& cv, const std::vector<double>& dyv,
                   const std::vector<double>& xh,
                   long double gmax, int64_t n, int64_t g, ExactOutput& dx, std::vector<int64_t>& rest) {
  const int64_t S = k.p.S(), cpg = k.p.channels_per_group();
  // gmax is the group's: an element outside the fast range can put it past double's range.
  const bool gmax_double = f.scales_double && gmax <= 0x1p200L;
  Approx a;
  for (int64_t kk = 0; kk < cpg; ++kk) {
    const int64_t ch = g * cpg + kk, q = k.p.param_index(n, ch);
    if (!f.ok || !fd.ok || !k.fast_ch[q]) {
      for (int64_t j = kk * S; j < (kk + 1) * S; ++j) rest.push_back(j);
      continue;
    }
    for (int64_t s0 = 0; s0 < S; s0 += kBlock) {
      const int nb = static_cast<int>(std::min<int64_t>(kBlock, S - s0));
      const int64_t j0 = kk * S + s0;
      dx_approx(f, fd, k.gd[q], &cv[j0], &dyv[j0], nb, a);
      for (int i = 0; i < nb; ++i) {
        const double vd = std::fabs(a.hi[i]), x = xh[j0 + i];
        const long double scale = gmax_double ? dx_scale<double>(k, st, static_cast<double>(gmax), x, vd)
                                              : dx_scale(k, st, gmax, x, vd);
        const int64_t off = k.p.index(n, ch, s0 + i);
        if (write_certified(dx, off, a.hi[i], a.lo[i], a.e[i], scale, st.kappa)) continue;
        // Every g = gamma dy of the group 0: SG = SGT = +0, q = +0, and dx = (m g - SG - T q) r is
        // an exact 0 whose sign follows from g's and T's (write_zero).
        const Sign t = gmax == 0 ? sign_of_T(f, cv[j0 + i], xv[j0 + i]) : Sign::unknown;
        if (t == Sign::unknown) {
          rest.push_back(j0 + i);
          continue;
        }
        const bool g_neg = std::signbit(k.gd[q]) != std::signbit(dyv[j0 + i]);  // m g - SG, SG = +0
        const bool tq_neg = is_negative(t);                                       // T q, q = +0
        write_zero(dx, off, g_neg && !tq_neg, dx_scale(k, st, 0.0L, x, 0.0), st.kappa);
      }
    }
  }
}

// T = m x - S, exact (st exact), through the scratch's xj and mx.
void T_of(int64_t m, double x, const GroupStats& st, DxScratch& s, Real& T) {
  exact::set_d(s.xj, x);
  exact::mul_si(s.mx, s.xj, m);
  exact::sub(T, s.mx, st.S);
}

// Per channel kk of group (n, g), exactly: SD[kk] = sum_s dy (a dy that is not finite counts 0),
// and, with st exact, Uc[kk] = sum_s dy T for the channels whose dy are all finite: on the fast
// path from the accumulator (m sum dy x - S SD), on the reference path as MPFR sums of each
// dy T.
void exact_channel_sums(const BackwardCtx& k, const GroupStats& st, const std::vector<double>& xv,
                        const std::vector<double>& dyv, bool reference, bool with_u, exact::ExactSums& acc,
                        DxScratch& scr, std::vector<Real>& SD, std::vector<Real>& Uc) {
  const int64_t S = k.p.S(), cpg = k.p.channels_per_group();
  SD.resize(static_cast<size_t>(cpg));
  Uc.resize(static_cast<size_t>(cpg));
  std::vector<Real> terms(static_cast<size_t>(reference ? S : 0));
  for (int64_t kk = 0; kk < cpg; ++kk) {
    const double *dyc = &dyv[kk * S], *xc = &xv[kk * S];
    bool finite = true;
    for (int64_t s = 0; s < S; ++s) finite = finite && std::isfinite(dyc[s]);
    if (reference) {
      for (int64_t s = 0; s < S; ++s) exact::set_d(terms[s], std::isfinite(dyc[s]) ? dyc[s] : 0.0);
      exact::sum(SD[kk], terms);
    } else {
      acc.sum(S, [&](int64_t s) { return std::isfinite(dyc[s]) ? dyc[s] : 0.0; }, P(SD[kk]));
    }
    if (!with_u || !finite) continue;
    if (reference) {
      for (int64_t s = 0; s < S; ++s) {
        T_of(k.m, xc[s], st, scr, scr.T);
        exact::set_d(scr.dyv, dyc[s]);
        exact::mul(terms[s], scr.dyv, scr.T);
      }
      exact::sum(Uc[kk], terms);
    } else {
      Real Pc, mP, SSD;
      acc.sum_products(S, [&](int64_t s) { return dyc[s]; }, [&](int64_t s) { return xc[s]; }, P(Pc));
      exact::mul_si(mP, Pc, k.m);
      exact::mul(SSD, st.S, SD[kk]);
      exact::sub(Uc[kk], mP, SSD);
    }
  }
}

// SG = sum_c gamma_c SD_c, SGT = sum_c gamma_c U_c (exact); q = SGT / D at kPrec bits (every dy
// and gamma of group (n, g) finite, st exact).
DxSums dx_sums(const BackwardCtx& k, int64_t n, int64_t g, const GroupStats& st, const std::vector<Real>& SD,
               const std::vector<Real>& Uc) {
  const int64_t cpg = k.p.channels_per_group();
  DxSums sums;
  std::vector<Real> a(static_cast<size_t>(cpg)), b(static_cast<size_t>(cpg));
  Real gam;
  for (int64_t kk = 0; kk < cpg; ++kk) {
    exact::set_d(gam, k.gd[k.p.param_index(n, g * cpg + kk)]);
    exact::mul(a[kk], gam, SD[kk]);
    exact::mul(b[kk], gam, Uc[kk]);
  }
  exact::sum(sums.SG, a);
  exact::sum(sums.SGT, b);
  mpfr_set_prec(P(sums.q), kPrec);
  mpfr_div(P(sums.q), P(sums.SGT), P(st.D), MPFR_RNDN);
  return sums;
}

// One output of dgamma and dbeta's share from group (n, g) on the fast statistics: the term
// U/sqrt(D) = u rho of dgamma and the exact sum of dy as three doubles (the rest below t_sd), each
// with its bound; dw false where the group took the exact sums (U, DB, Dg in MPFR).
struct ParamPart {
  bool dw = false;
  dw::DW term;
  double e_term = 0;
  double sd[3] = {};
  double t_sd = 0;
};

}  // namespace

namespace {

// The backward pass through the SiLU epilogue (docs/numerics.md "Fused epilogues"). With
// v = gamma T / sqrt(D) + beta the value before it, the pass before the epilogue sees
// e_i = dy_i silu'(v_i) in place of dy_i: g = gamma e, dx = r (m g - SG - T SGT r^2) with
// r = 1/sqrt(D), dgamma = sum e T r and dbeta = sum e. e is transcendental, so nothing here is an
// exact sum: every value is an interval (oracles/epilogue.h), and a group or output whose values
// do not all round to one value is evaluated again at twice the precision.
struct SiluGroup {
  bool x_ok = false;     // x finite, D > 0, rstd finite in acc_t: T and D are usable
  bool ok = false;       // x_ok, and every dy and parameter of the group finite: dx is defined
  std::vector<char> in_ok;  // per element: its dy, gamma and beta finite (x_ok aside)
  GroupStats st;
  std::vector<Real> T;   // m x_j - S, exact
  std::vector<double> dy;
  bool fast = false;     // the fast path: xv and f below
  FastGroup f;           // its mean and rstd (f.ok false where they leave its range)
  std::vector<double> xv;
};

// Whether a decided interval is also narrow: width within kLoAgreement / 4 (2^-92) of
// (|value| + scale), so that the two paths' midpoints, hence lo, agree to kLoAgreement of it.
// MPFI's intervals at 128 bits are, but the fast path's first e = dy [silu'(v) +- bound] carries
// the bound of v (about 2^-100 S_v) where E_i, capped at |dy| 1.2/u once u S_v > 2.4, no longer
// dwarfs it: such a value can round at once from an interval 2^-60 wide, and is then taken again
// at the next precision, on MPFI (an oracle_paths finding: bf16, gamma = beta = -1.1e13).
bool narrow_enough(const epilogue::Interval& iv, long double scale) {
  if (!(std::fabs(scale) < std::numeric_limits<long double>::infinity())) return true;  // not judged
  mpfr_t width, mag;
  mpfr_inits2(64, width, mag, static_cast<mpfr_ptr>(nullptr));
  mpfi_diam_abs(width, iv.get());
  mpfi_mag(mag, iv.get());
  const bool narrow =
      mpfr_get_ld(width, MPFR_RNDU) <= kLoAgreement / 4 * (mpfr_get_ld(mag, MPFR_RNDD) + std::fabs(scale));
  mpfr_clears(width, mag, static_cast<mpfr_ptr>(nullptr));
  return narrow;
}

// e_j = dy_j silu'(v_j) enclosed at prec bits, for the elements j in [j0, j1) of group (n, g)
// (channel-major; e_out[j - j0]); [0, 0] for an element whose dy or parameters are not finite
// (its outputs are undefined, and nothing is computed from it). At the first precision the fast
// path takes silu'(v) from epilogue::silu_fast, v as y_approx computes it, as the interval of its
// bound; the rest, and every later precision, on intervals. Returns how many of the first
// precision's went to the intervals on the fast path (its fall-backs).
int64_t silu_grad_terms(const Case& c, const SiluGroup& sg, int64_t n, int64_t g, long prec, int64_t j0, int64_t j1,
                        std::vector<std::unique_ptr<epilogue::Interval>>& e_out) {
  const Problem& p = c.problem;
  const int64_t S = p.S(), cpg = p.channels_per_group();
  const bool first = sg.fast && prec == epilogue::kStartBits;
  epilogue::Interval r(prec), v(prec), s1(prec);
  bool have_r = false;
  e_out.resize(static_cast<size_t>(j1 - j0));
  Real A, gam, bet, lo, hi;
  mpfr_set_prec(P(lo), prec);
  mpfr_set_prec(P(hi), prec);
  int64_t fallbacks = 0;
  Approx a;
  for (int64_t j = j0; j < j1; ++j) {
    auto& e = e_out[static_cast<size_t>(j - j0)];
    e = std::make_unique<epilogue::Interval>(prec);
    mpfi_set_ui(e->get(), 0);
    if (!sg.in_ok[j]) continue;
    const int64_t q = p.param_index(n, g * cpg + j / S);
    const double gd = p.affine ? c.gamma.get(q) : 1.0, bd = p.affine ? c.beta.get(q) : 0.0;
    if (first && sg.f.ok && in_fast_range(gd) && in_fast_range(bd)) {
      y_approx(sg.f, gd, bd, &sg.xv[j], 1, a);
      const epilogue::FastSilu z = epilogue::silu_fast({{a.hi[0], a.lo[0]}, a.e[0]});
      if (z.ok) {  // [grad - e, grad + e], rounded outward
        mpfr_set_d(P(lo), z.grad.v.hi, MPFR_RNDD);
        mpfr_add_d(P(lo), P(lo), z.grad.v.lo, MPFR_RNDD);
        mpfr_sub_d(P(lo), P(lo), z.grad.e, MPFR_RNDD);
        mpfr_set_d(P(hi), z.grad.v.hi, MPFR_RNDU);
        mpfr_add_d(P(hi), P(hi), z.grad.v.lo, MPFR_RNDU);
        mpfr_add_d(P(hi), P(hi), z.grad.e, MPFR_RNDU);
        mpfi_interv_fr(e->get(), P(lo), P(hi));
        mpfi_mul_d(e->get(), e->get(), sg.dy[j]);  // e = dy silu'(v)
        continue;
      }
    }
    if (first) ++fallbacks;
    if (!have_r) epilogue::enclose_rsqrt(r, sg.st.D);
    have_r = true;
    exact::set_d(gam, gd);
    exact::set_d(bet, bd);
    exact::mul(A, gam, sg.T[j]);
    epilogue::enclose(v, A, r, bet);
    epilogue::silu_grad(s1, v);
    mpfi_mul_d(e->get(), s1.get(), sg.dy[j]);  // e = dy silu'(v)
  }
  return fallbacks;
}

OracleResult oracle_backward_silu(const Case& c, const OracleOptions& o) {
  using epilogue::Interval;
  const Problem& p = c.problem;
  const int64_t m = p.group_size(), S = p.S(), cpg = p.channels_per_group(), NG = p.N * p.G;
  OracleResult res;
  res.outputs.push_back(make_output("dx", p.dtype, p.x_shape(), m));
  if (p.affine) {
    const int64_t L = p.per_sample() ? S : p.N * S;
    res.outputs.push_back(make_output("dgamma", p.dtype, p.param_shape(), L));
    res.outputs.push_back(make_output("dbeta", p.dtype, p.param_shape(), L));
  }
  ExactOutput& dx = res.outputs[0];
  res.kappa.assign(static_cast<size_t>(NG), kNaN);
  const long double eta = eta_over_u(p.dtype), u_acc = info(acc_dtype(p.dtype)).unit_roundoff;
  auto gam_of = [&](int64_t q) { return p.affine ? c.gamma.get(q) : 1.0; };
  auto bet_of = [&](int64_t q) { return p.affine ? c.beta.get(q) : 0.0; };

  std::vector<SiluGroup> groups(static_cast<size_t>(NG));
  // Per element, the scale ingredients: |e| (= |dy silu'(v)|) and the error a kernel's silu'(v~)
  // may add to e, |dy| (|silu''| S_v / 2 + 2 |silu'|) with S_v the scale of v (as y's): long
  // double, as S_v may pass double's range (and 0 * Inf where dy = 0 would be NaN).
  std::vector<double> e_abs(static_cast<size_t>(p.numel()), 0), xh_abs(e_abs.size(), 0);
  std::vector<long double> e_err(e_abs.size(), 0);
  std::vector<int64_t> undecided(static_cast<size_t>(NG), 0), fallbacks(undecided.size(), 0);
  const bool fast = o.path == OraclePath::fast;
  auto group = [&](int64_t gi) {
    const int64_t n = gi / p.G, g = gi % p.G;
    SiluGroup& sg = groups[gi];
    std::vector<Real> xs, sq;
    group_stats(c, o, n, g, sg.st, xs, sq, sg.xv);
    res.kappa[gi] = sg.st.kappa;
    sg.dy.resize(static_cast<size_t>(m));
    gather_group(*c.dy, p, n, g, sg.dy);
    Real rstd_approx;
    sg.x_ok = sg.st.finite && !sg.st.degenerate &&
              is_finite_bits(acc_dtype(p.dtype), rstd_bits(p, sg.st, rstd_approx));
    sg.in_ok.assign(static_cast<size_t>(m), 1);
    sg.ok = sg.x_ok;
    for (int64_t j = 0; j < m; ++j) {
      const int64_t q = p.param_index(n, g * cpg + j / S);
      sg.in_ok[j] = std::isfinite(sg.dy[j]) && std::isfinite(gam_of(q)) && std::isfinite(bet_of(q));
      sg.ok = sg.ok && sg.in_ok[j];
    }
    // dx needs the whole group; dgamma, dbeta of a channel only its own dy and parameters (and x).
    if (!sg.ok)
      for (int64_t j = 0; j < m; ++j) set_undefined(dx, p.index(n, g * cpg + j / S, j % S));
    if (!sg.x_ok) return;
    sg.T.resize(static_cast<size_t>(m));
    Real mx, xj;
    for (int64_t j = 0; j < m; ++j) {
      if (fast) exact::set_d(xj, sg.xv[j]);
      exact::mul_si(mx, fast ? xj : xs[j], m);
      exact::sub(sg.T[j], mx, sg.st.S);
    }
    sg.fast = fast;
    if (fast) sg.f = fast_group(m, sg.st, sg.xv);
    const double kappa = sg.st.kappa;
    long double gmax = 0;
    std::vector<double> xh(static_cast<size_t>(m));
    // e at the first precision serves the scales and the first evaluation of dx.
    std::vector<std::unique_ptr<Interval>> e;
    fallbacks[gi] = silu_grad_terms(c, sg, n, g, epilogue::kStartBits, 0, m, e);
    {
      for (int64_t j = 0; j < m; ++j) {
        const int64_t q = p.param_index(n, g * cpg + j / S), off = p.index(n, g * cpg + j / S, j % S);
        xh[j] = xhat_abs(sg.T[j], sg.st.r);
        xh_abs[off] = xh[j];
        if (!sg.in_ok[j]) continue;  // its outputs are undefined
        const long double ga = std::fabs(gam_of(q)), dya = std::fabs(sg.dy[j]);
        const double ej = std::fabs(mpfi_get_d(e[j]->get()));
        const long double y_abs = ga * xh[j] + std::fabs(bet_of(q));
        const long double s_v = ga * kappa * (2 + xh[j]) + std::fabs(bet_of(q)) + y_abs;
        const long double grad = dya > 0 ? ej / dya : 0;
        e_abs[off] = ej;
        // |silu'(v~) - silu'(v)| <= min(|v~ - v| / 2, 1.2): silu' lies within [-0.0998, 1.0998].
        e_err[off] = dya * (std::min(s_v / 2, 1.2L / u_acc) + 2 * grad);
        gmax = std::max(gmax, ga * (ej + e_err[off]));
      }
    }
    if (!sg.ok) return;
    std::vector<char> done(static_cast<size_t>(m), 0);
    int64_t left = m;
    for (long prec = epilogue::kStartBits; left > 0; prec *= 2) {
      const bool last = prec >= epilogue::kMaxBits;
      if (prec > epilogue::kStartBits) silu_grad_terms(c, sg, n, g, prec, 0, m, e);
      Interval r(prec), r2(prec), SG(prec), SGT(prec), t(prec), gj(prec), u(prec), q(prec);
      epilogue::enclose_rsqrt(r, sg.st.D);
      mpfi_sqr(r2.get(), r.get());
      mpfi_set_ui(SG.get(), 0);
      mpfi_set_ui(SGT.get(), 0);
      for (int64_t j = 0; j < m; ++j) {
        mpfi_mul_d(e[j]->get(), e[j]->get(), gam_of(p.param_index(n, g * cpg + j / S)));  // now g_j
        mpfi_add(SG.get(), SG.get(), e[j]->get());
        mpfi_mul_fr(t.get(), e[j]->get(), P(sg.T[j]));
        mpfi_add(SGT.get(), SGT.get(), t.get());
      }
      mpfi_mul(q.get(), SGT.get(), r2.get());
      for (int64_t j = 0; j < m; ++j) {
        if (done[j]) continue;
        mpfi_mul_si(u.get(), e[j]->get(), static_cast<long>(m));
        mpfi_sub(u.get(), u.get(), SG.get());
        mpfi_mul_fr(t.get(), q.get(), P(sg.T[j]));
        mpfi_sub(u.get(), u.get(), t.get());
        mpfi_mul(u.get(), u.get(), r.get());
        uint64_t bits = 0;
        const bool decided = epilogue::rounds_to(p.dtype, u, bits);
        if (!decided && !last) continue;
        Real mid;
        epilogue::midpoint(mid, u);
        // dx_scale with gmax = max |gamma| (|e| + its error), written out for F = long double.
        const long double rs = sg.st.rstd, xj = xh[j], vd = std::fabs(mpfr_get_ld(P(mid), MPFR_RNDN));
        const long double under = eta * (rs * (1 + m) * (1 + xj) + 1);
        const long double scale = rs * gmax * (1 + kappa) * (2 + xj) + vd + under;
        if (!last && !narrow_enough(u, scale)) continue;
        if (!decided) {
          ++undecided[gi];
          bits = exact::round_to(p.dtype, mid);
        }
        set_value(dx, p.index(n, g * cpg + j / S, j % S), bits, mid, scale, kappa);
        done[j] = 1;
        --left;
      }
    }
  };
  const int threads = o.threads > 0 ? o.threads : oracle_threads();
  ThreadPool::instance().run(threads, NG, group);
  for (int64_t u : undecided) res.undecided += u;
  for (int64_t fb : fallbacks) res.fallbacks += fb;
  if (!p.affine) return res;

  // dgamma = sum e T r and dbeta = sum e over each output's samples and spatial positions.
  ExactOutput &dgamma = res.outputs[1], &dbeta = res.outputs[2];
  const int64_t outputs = param_count(p);
  std::vector<int64_t> undecided_out(static_cast<size_t>(outputs), 0);
  auto channel = [&](int64_t out) {
    const auto [ch, n0, n1] = param_output(p, out);
    const int64_t g = ch / cpg, kk = ch % cpg;
    bool ok = true;
    long double sg_scale = 0, sb_scale = 0;
    double kappa = 0;
    for (int64_t n = n0; n < n1; ++n) {
      const SiluGroup& sg = groups[n * p.G + g];
      ok = ok && sg.x_ok;
      for (int64_t s = 0; s < S && ok; ++s) ok = sg.in_ok[kk * S + s];
      kappa = std::max(kappa, res.kappa[n * p.G + g]);
      for (int64_t s = 0; s < S && ok; ++s) {
        const int64_t off = p.index(n, ch, s);
        // dgamma_scale_part with |e| for |dy|, plus e's own error times |xhat|.
        const long double xj = xh_abs[off];
        const long double ea = e_abs[off];
        sg_scale += ea * (sg.st.kappa * (2 + xj) + xj) + e_err[off] * xj +
                    eta * (ea * xhat_underflow<long double>(sg.st.rstd, m, xj) + 1);
        sb_scale += ea + e_err[off];
      }
    }
    if (!ok) {
      set_undefined(dgamma, out);
      set_undefined(dbeta, out);
      return;
    }
    bool gdone = false, bdone = false;
    for (long prec = epilogue::kStartBits; !(gdone && bdone); prec *= 2) {
      const bool last = prec >= epilogue::kMaxBits;
      Interval sum_g(prec), sum_b(prec), t(prec), r(prec);
      mpfi_set_ui(sum_g.get(), 0);
      mpfi_set_ui(sum_b.get(), 0);
      for (int64_t n = n0; n < n1; ++n) {
        const SiluGroup& sg = groups[n * p.G + g];
        std::vector<std::unique_ptr<Interval>> e;
        silu_grad_terms(c, sg, n, g, prec, kk * S, (kk + 1) * S, e);  // channel ch's elements
        epilogue::enclose_rsqrt(r, sg.st.D);
        for (int64_t s = 0; s < S; ++s) {
          const int64_t j = kk * S + s;
          mpfi_add(sum_b.get(), sum_b.get(), e[s]->get());
          mpfi_mul_fr(t.get(), e[s]->get(), P(sg.T[j]));
          mpfi_mul(t.get(), t.get(), r.get());
          mpfi_add(sum_g.get(), sum_g.get(), t.get());
        }
      }
      for (auto [done, iv, outp, scale] : {std::tuple{&gdone, &sum_g, &dgamma, sg_scale},
                                           std::tuple{&bdone, &sum_b, &dbeta, sb_scale}}) {
        if (*done) continue;
        uint64_t bits = 0;
        const bool decided = epilogue::rounds_to(p.dtype, *iv, bits);
        if (!(decided && narrow_enough(*iv, scale)) && !last) continue;
        Real mid;
        epilogue::midpoint(mid, *iv);
        if (!decided) {
          ++undecided_out[out];
          bits = exact::round_to(p.dtype, mid);
        }
        set_value(*outp, out, bits, mid, scale, outp == &dgamma ? kappa : 0.0);
        *done = true;
      }
    }
  };
  ThreadPool::instance().run(threads, outputs, channel);
  for (int64_t u : undecided_out) res.undecided += u;
  return res;
}

}  // namespace

OracleResult oracle_backward(const Case& c, const OracleOptions& o) {
  c.validate();
  if (!c.dy) throw std::invalid_argument("oracle_backward: the case has no dy");
  if (c.problem.epilogue == Epilogue::silu) return oracle_backward_silu(c, o);
  const Problem& p = c.problem;
  const Tensor& dy = *c.dy;
  const int64_t m = p.group_size(), S = p.S(), cpg = p.channels_per_group();
  const bool fast = o.path == OraclePath::fast;
  OracleResult res;
  res.outputs.push_back(make_output("dx", p.dtype, p.x_shape(), m));
  if (p.affine) {
    const int64_t L = p.per_sample() ? S : p.N * S;  // summed per output
    res.outputs.push_back(make_output("dgamma", p.dtype, p.param_shape(), L));
    res.outputs.push_back(make_output("dbeta", p.dtype, p.param_shape(), L));
  }
  ExactOutput& dx = res.outputs[0];
  res.kappa.assign(static_cast<size_t>(p.N * p.G), kNaN);

  const auto np = static_cast<size_t>(param_count(p));
  BackwardCtx k{p, m, std::vector<double>(np, 1.0), std::vector<char>(np, 1)};
  for (size_t q = 0; q < np; ++q) {
    if (p.affine) k.gd[q] = c.gamma.get(static_cast<int64_t>(q));
    k.fast_ch[q] = in_fast_range(k.gd[q]);
  }

  // Per (n, c): U = sum_s dy*T and DB = sum_s dy, exact, and the two outputs' condition-scale
  // parts; per (n, g): D. For dgamma and dbeta, combined over n per channel below. A group on the
  // fast statistics (group_dw) leaves its channels' terms in `parts` instead, and the channel
  // pass forms U, DB and D only where it needs them (exact_parts).
  const auto NC = static_cast<size_t>(p.N * p.C);
  std::vector<Real> U(NC), DB(NC), Dg(static_cast<size_t>(p.N * p.G));
  std::vector<char> nc_finite(NC, 1), dy_finite(NC, 1);
  // long double: a sum of f64 terms may pass double's range where u_acc times it does not.
  std::vector<long double> dgamma_part(NC, 0), dbeta_part(NC, 0);
  std::vector<int64_t> fallbacks(static_cast<size_t>(p.N * p.G), 0);
  std::vector<ParamPart> parts(NC);

  // Each thread's scratch, reused from group to group.
  struct Scratch {
    GroupStats st;
    std::vector<double> xv, dyv, xh;
    std::vector<Centered> cv;
    std::vector<int64_t> rest;
    std::vector<Real> SD, Uc;
    std::vector<ParamPart> pt;
    exact::ExactSums acc;
    DxScratch scr;
  };
  // dx of the elements in w.rest from the exact sums (the reference's per-element code).
  auto dx_rest = [&](int64_t n, int64_t g, Scratch& w, const DxSums& sums, long double gmax) {
    for (int64_t j : w.rest) {
      const int64_t ch = g * cpg + j / S;
      T_of(m, w.xv[j], w.st, w.scr, w.scr.T);
      exact::set_d(w.scr.dyv, w.dyv[j]);
      exact::set_d(w.scr.xj, k.gd[p.param_index(n, ch)]);
      exact::mul(w.scr.gj, w.scr.xj, w.scr.dyv);
      dx_reference(k, w.st, sums, w.scr.T, w.scr.gj, gmax, w.xh[j], p.index(n, ch, j % S), dx, w.scr);
    }
  };
  // max|gamma * dy| over the group (long double: in double the product of two f64 values can
  // underflow to 0, an allowance of 0, or overflow where rstd * gmax does not), whether every dy
  // and gamma is finite (dx is defined), and each channel's dy_finite.
  // (For f32, f16 and bf16 each product is exact in double, so double gives the same max, faster.)
  auto group_dy = [&](int64_t n, int64_t g, const std::vector<double>& dyv, bool& ok) {
    long double gmax = 0;
    double gmax_d = 0;
    const bool narrow = p.dtype != DType::f64;
    for (int64_t kk = 0; kk < cpg; ++kk) {
      const int64_t ch = g * cpg + kk;
      const double gam = k.gd[p.param_index(n, ch)];
      for (int64_t j = kk * S; j < (kk + 1) * S; ++j) {
        if (!std::isfinite(dyv[j])) dy_finite[n * p.C + ch] = 0;
        if (!std::isfinite(dyv[j]) || !std::isfinite(gam)) ok = false;
        if (narrow) gmax_d = std::max(gmax_d, std::fabs(dyv[j] * gam));
        else gmax = std::max(gmax, std::fabs(static_cast<long double>(dyv[j]) * gam));
      }
    }
    if (narrow) gmax = gmax_d;
    for (int64_t kk = 0; kk < cpg; ++kk)
      for (int64_t s = 0; s < S; ++s) dbeta_part[n * p.C + g * cpg + kk] += std::fabs(dyv[kk * S + s]);
    return gmax;
  };
  // Each x - mu as a double word (f.ok) and |xhat| for the scales: the fast path's from d and
  // rstd; else (the reference, or f outside its range) from T and r, st exact.
  auto center_group = [&](Scratch& w, const FastGroup& f) {
    w.xh.resize(static_cast<size_t>(m));
    w.cv.resize(f.ok ? static_cast<size_t>(m) : 0);
    for (int64_t j = 0; j < m; ++j) {
      if (f.ok) {
        w.cv[j] = center(w.xv[j], f);
        w.xh[j] = std::fabs(w.cv[j].d.hi * f.rho.hi);
      } else {
        T_of(m, w.xv[j], w.st, w.scr, w.scr.T);
        w.xh[j] = xhat_abs(w.scr.T, w.st.r);
      }
    }
  };
  auto add_dgamma_scales = [&](int64_t n, int64_t g, const Scratch& w, const FastGroup& f) {
    if (!p.affine) return;
    for (int64_t kk = 0; kk < cpg; ++kk) {
      const int64_t nc = n * p.C + g * cpg + kk;
      if (!dy_finite[nc]) continue;
      for (int64_t s = 0, j = kk * S; s < S; ++s, ++j)
        dgamma_part[nc] += f.ok && f.scales_double && in_fast_range(w.dyv[j])
                               ? dgamma_scale_part<double>(k, w.st, w.dyv[j], w.xh[j])
                               : dgamma_scale_part(k, w.st, w.dyv[j], w.xh[j]);
    }
  };

  // The fast path on the fast statistics (docs/numerics.md "Fast statistics"): per channel the
  // exact sum of dy and the exact centred sum of dy (x - c) leave the accumulator as doubles;
  // u = sum dy (x - mu), SG = sum gamma SD, SGT/m = sum gamma u, gbar = SG/m, q = SGT/D and
  // dgamma's term u rho follow in double words with bounds. False, before anything is written,
  // where a precondition fails: the group then takes group_exact.
  auto group_dw = [&](int64_t gi, Scratch& w) -> bool {
    using dw::kU2;
    const int64_t n = gi / p.G, g = gi % p.G;
    GroupStats& st = w.st;
    FastGroup f;
    gather_values(p, c.x, n, g, st, w.xv);
    if (!st.finite || !dw_stats(p, w.xv, w.acc, st, f) || !f.ok || !(f.rho.hi <= 0x1p100)) return false;
    gather_group(dy, p, n, g, w.dyv);
    for (int64_t j = 0; j < m; ++j) {
      const double v = w.dyv[j];
      if (std::isfinite(v) && !in_fast_range(v)) return false;  // f.ok covers x
    }
    bool gam_ok = true;  // every gamma finite (then in the fast range)
    for (int64_t kk = 0; kk < cpg; ++kk) {
      const int64_t q = p.param_index(n, g * cpg + kk);
      if (std::isfinite(k.gd[q]) && !k.fast_ch[q]) return false;
      gam_ok = gam_ok && std::isfinite(k.gd[q]);
    }
    const auto md = static_cast<double>(m);
    w.pt.assign(static_cast<size_t>(cpg), ParamPart{});
    dw::DW SG{}, SGT{};
    double e_SG = 0, e_SGT = 0;
    bool all_dy = true;
    for (int64_t kk = 0; kk < cpg; ++kk) {
      const double *dyc = &w.dyv[kk * S], *xc = &w.xv[kk * S];
      bool finite = true;
      for (int64_t s = 0; s < S; ++s) finite = finite && std::isfinite(dyc[s]);
      ParamPart& pt = w.pt[kk];
      pt.dw = true;
      all_dy = all_dy && finite;
      if (!finite) continue;  // its outputs are undefined
      double pp[3], t_p;
      if (!w.acc.accumulate(S, [&](int64_t s) { return dyc[s]; }).to_doubles(pt.sd, pt.t_sd)) return false;
      exact::SuperAcc& a = w.acc.accumulate_products(S, [&](int64_t s) { return dyc[s]; }, [&](int64_t s) { return xc[s]; });
      for (double v : pt.sd) a.add_product(-f.c, v);
      if (!a.to_doubles(pp, t_p)) return false;
      // u = P' - SD (mu - c), P' = sum dy (x - c) (its bound carries c times SD's tail).
      const dw::DW SD{pt.sd[0], pt.sd[1]}, Pp{pp[0], pp[1]};
      const double e_sd = std::fabs(pt.sd[2]) + pt.t_sd, e_p = std::fabs(pp[2]) + t_p + std::fabs(f.c) * pt.t_sd;
      const dw::DW prod = dw::mul(SD, f.dm);
      const double e_prod = 10 * kU2 * std::fabs(prod.hi) + std::fabs(SD.hi) * 1.001 * f.e_dm +
                            (std::fabs(f.dm.hi) * 1.001 + f.e_dm) * e_sd;
      const dw::DW u = dw::add(Pp, dw::DW{-prod.hi, -prod.lo});
      // 2^-1000 covers the underflow of SD (mu - c), whose factors can be 2^-300 and 2^-926.
      const double e_u = (6 * kU2 * std::fabs(u.hi) + e_p + e_prod + (SD.hi != 0 && f.dm.hi != 0 ? 0x1p-1000 : 0)) *
                         kSlack;
      pt.term = dw::mul(u, f.rho);
      pt.e_term = (10 * kU2 * std::fabs(pt.term.hi) + std::fabs(f.rho.hi) * 1.001 * e_u +
                   (std::fabs(u.hi) * 1.001 + e_u) * f.e_rho + (u.hi != 0 || e_u != 0 ? 0x1p-1000 : 0)) *
                  kSlack;
      if (!gam_ok) continue;
      const double gam = k.gd[p.param_index(n, g * cpg + kk)];
      const dw::DW gs = dw::mul(SD, gam), gu = dw::mul(u, gam);
      SG = dw::add(SG, gs);
      SGT = dw::add(SGT, gu);
      // 2^-1000 each: a low word of gamma SD or gamma u may underflow (gamma down to 2^-300), and
      // q = SGT rho r scales that up to 2^200 times before dx's own 2^-1000 is added.
      const double uf_s = gam != 0 && SD.hi != 0 ? 0x1p-1000 : 0, uf_u = gam != 0 && u.hi != 0 ? 0x1p-1000 : 0;
      e_SG += 4 * kU2 * std::fabs(gs.hi) + std::fabs(gam) * e_sd + 6 * kU2 * std::fabs(SG.hi) + uf_s;
      e_SGT += 4 * kU2 * std::fabs(gu.hi) + std::fabs(gam) * e_u + 6 * kU2 * std::fabs(SGT.hi) + uf_u;
    }
    const bool ok = gam_ok && all_dy;
    FastDx fd;
    if (ok) {
      // gbar = SG/m; q = SGT/D = (SGT/m) rho r.
      e_SG *= kSlack;
      e_SGT *= kSlack;
      if (SG.hi != 0 && std::fabs(SG.hi) < 0x1p-900) return false;
      const dw::DW gb = div_m(SG, e_SG, md, fd.gb.e);
      fd.gb.p[0] = gb.hi;
      fd.gb.p[1] = gb.lo;
      const dw::DW t1 = dw::mul(SGT, f.rho);
      const double e1 = 10 * kU2 * std::fabs(t1.hi) + std::fabs(f.rho.hi) * 1.001 * e_SGT +
                        (std::fabs(SGT.hi) * 1.001 + e_SGT) * f.e_rho;
      fd.q = dw::mul(t1, f.r);
      fd.e_q = (10 * kU2 * std::fabs(fd.q.hi) + std::fabs(f.r.hi) * 1.001 * e1 + (std::fabs(t1.hi) * 1.001 + e1) * f.e_r +
                0x1p-1000) *
               kSlack;
      fd.ok = fd.gb.in_range() && in_fast_range(fd.q.hi) && in_fast_range(fd.q.lo) && fd.e_q <= 0x1p300;
      if (!fd.ok) return false;
    }
    // Committed from here on.
    res.kappa[gi] = st.kappa;
    bool defined = true;  // group_dy's verdict: the same as ok, found above
    const long double gmax = group_dy(n, g, w.dyv, defined);
    for (int64_t kk = 0; kk < cpg; ++kk) {
      nc_finite[n * p.C + g * cpg + kk] = 1;
      parts[n * p.C + g * cpg + kk] = w.pt[kk];
    }
    center_group(w, f);
    add_dgamma_scales(n, g, w, f);
    if (!ok) {
      for (int64_t j = 0; j < m; ++j) set_undefined(dx, p.index(n, g * cpg + j / S, j % S));
      return true;
    }
    w.rest.clear();
    dx_fast_group(k, st, f, fd, w.xv, w.cv, w.dyv, w.xh, gmax, n, g, dx, w.rest);
    fallbacks[gi] = static_cast<int64_t>(w.rest.size());
    if (!w.rest.empty()) {
      exact_stats(p, w.xv, w.acc, st);
      exact_channel_sums(k, st, w.xv, w.dyv, false, true, w.acc, w.scr, w.SD, w.Uc);
      dx_rest(n, g, w, dx_sums(k, n, g, st, w.SD, w.Uc), gmax);
    }
    return true;
  };

  // Every other group: the exact sums in MPFR (from the accumulator on the fast path), the fast
  // path's double-word dx where its range allows, the reference's everywhere else.
  auto group_exact = [&](int64_t gi, Scratch& w) {
    const int64_t n = gi / p.G, g = gi % p.G;
    GroupStats& st = w.st;
    std::vector<Real> xs, sq;
    if (fast) {
      gather_values(p, c.x, n, g, st, w.xv);
      exact_stats(p, w.xv, w.acc, st);
    } else {
      compute_stats(p, c.x, n, g, st, xs, sq);
      gather_group(c.x, p, n, g, w.xv);  // for T_of: the same exact values as xs
    }
    res.kappa[gi] = st.kappa;
    gather_group(dy, p, n, g, w.dyv);
    // dx needs every x, dy and gamma of the group; dgamma_c only x and channel c's own dy.
    // Kernels get the statistics rounded to acc_t: where rstd rounds to +Inf (a spread too
    // small for acc_t, like the degenerate D = 0), they have no finite rstd to work with.
    Real rstd_approx;
    const bool x_ok = st.finite && !st.degenerate && is_finite_bits(acc_dtype(p.dtype), rstd_bits(p, st, rstd_approx));
    bool ok = x_ok;
    const long double gmax = group_dy(n, g, w.dyv, ok);
    for (int64_t kk = 0; kk < cpg; ++kk) nc_finite[n * p.C + g * cpg + kk] = x_ok;
    if (!ok)
      for (int64_t kk = 0; kk < cpg; ++kk)
        for (int64_t s = 0; s < S; ++s) set_undefined(dx, p.index(n, g * cpg + kk, s));
    // SD per channel (dbeta is accumulated even where x is unusable), U where x is usable.
    exact_channel_sums(k, st, w.xv, w.dyv, !fast, x_ok, w.acc, w.scr, w.SD, w.Uc);
    for (int64_t kk = 0; kk < cpg; ++kk) {
      const int64_t nc = n * p.C + g * cpg + kk;
      if (!p.affine) continue;
      exact::assign(DB[nc], w.SD[kk]);
      if (x_ok && dy_finite[nc]) exact::assign(U[nc], w.Uc[kk]);
    }
    if (!x_ok) return;
    exact::assign(Dg[gi], st.D);
    const FastGroup f = fast ? fast_group(m, st, w.xv) : FastGroup{};
    center_group(w, f);
    add_dgamma_scales(n, g, w, f);
    if (!ok) return;
    const DxSums sums = dx_sums(k, n, g, st, w.SD, w.Uc);
    w.rest.clear();
    if (fast) {
      dx_fast_group(k, st, f, fast_dx(m, sums), w.xv, w.cv, w.dyv, w.xh, gmax, n, g, dx, w.rest);
      fallbacks[gi] = static_cast<int64_t>(w.rest.size());
    } else {
      for (int64_t j = 0; j < m; ++j) w.rest.push_back(j);
    }
    dx_rest(n, g, w, sums, gmax);
  };
  auto group = [&](int64_t gi) {
    thread_local Scratch w;
    w.acc.configure(p.dtype != DType::f64, o.binned_from);
    if (!fast || !group_dw(gi, w)) group_exact(gi, w);
  };
  const int threads = o.threads > 0 ? o.threads : oracle_threads();
  ThreadPool::instance().run(threads, p.N * p.G, group);
  for (int64_t fb : fallbacks) res.fallbacks += fb;
  if (!p.affine) return res;

  ExactOutput &dgamma = res.outputs[1], &dbeta = res.outputs[2];
  // One output per parameter: channel ch's sums over every sample, or per sample over one.
  const int64_t outputs = param_count(p);
  std::vector<int64_t> undecided(static_cast<size_t>(outputs), 0), out_fallbacks(static_cast<size_t>(outputs), 0);
  // U (channel ch), DB (channel ch) and D of group (n, ch / cpg) in MPFR, for a group that took
  // the fast statistics: from its values again, only where a fast output was not certified.
  auto exact_parts = [&](int64_t n, int64_t ch, Real& Uo, Real& DBo, Real& Do) {
    const int64_t g = ch / cpg, kk = ch % cpg;
    GroupStats st;
    std::vector<double> xv, dyv;
    exact::ExactSums acc(p.dtype != DType::f64, o.binned_from);
    DxScratch scr;
    std::vector<Real> SD, Uc;
    fast_stats(p, c.x, n, g, st, xv, acc);
    gather_group(dy, p, n, g, dyv);
    exact_channel_sums(k, st, xv, dyv, false, true, acc, scr, SD, Uc);
    exact::assign(Uo, Uc[kk]);
    exact::assign(DBo, SD[kk]);
    exact::assign(Do, st.D);
  };
  auto channel = [&](int64_t out) {
    using dw::kU2;
    const ParamOutput po = param_output(p, out);  // (named: a lambda below captures them)
    const int64_t ch = po.ch, n0 = po.n0, n1 = po.n1, g = ch / cpg;
    bool dy_ok = true, x_ok = true, all_dw = true;
    long double dgamma_scale = 0, dbeta_scale = 0;
    double kappa = 0;
    for (int64_t n = n0; n < n1; ++n) {
      dy_ok = dy_ok && dy_finite[n * p.C + ch];
      x_ok = x_ok && nc_finite[n * p.C + ch];
      all_dw = all_dw && parts[n * p.C + ch].dw;
      dgamma_scale += dgamma_part[n * p.C + ch];
      dbeta_scale += dbeta_part[n * p.C + ch];
      kappa = std::max(kappa, res.kappa[n * p.G + g]);
    }
    // The exact U, DB and D of each sample, formed on demand for the fast groups.
    std::vector<Real> own_U, own_DB, own_D;
    std::vector<const Real*> Un, DBn, Dn;
    auto exact_inputs = [&] {
      if (!Un.empty()) return;
      own_U.resize(static_cast<size_t>(n1 - n0));
      own_DB.resize(own_U.size());
      own_D.resize(own_U.size());
      for (int64_t n = n0; n < n1; ++n) {
        const size_t i = static_cast<size_t>(n - n0);
        if (parts[n * p.C + ch].dw) {
          exact_parts(n, ch, own_U[i], own_DB[i], own_D[i]);
          Un.push_back(&own_U[i]);
          DBn.push_back(&own_DB[i]);
          Dn.push_back(&own_D[i]);
        } else {
          Un.push_back(&U[n * p.C + ch]);
          DBn.push_back(&DB[n * p.C + ch]);
          Dn.push_back(&Dg[n * p.G + g]);
        }
      }
    };
    // dbeta is an exact sum: round it once. On the fast statistics the samples' sums (three
    // doubles each, exact where their tails are 0) are added exactly again.
    if (!dy_ok) {
      set_undefined(dbeta, out);
    } else {
      bool done = false;
      if (all_dw) {
        thread_local exact::SuperAcc acc;
        acc.clear();
        double e = 0, v[3], tail;
        for (int64_t n = n0; n < n1; ++n) {
          const ParamPart& pt = parts[n * p.C + ch];
          for (double sd : pt.sd) acc.add(sd);
          e += pt.t_sd;
        }
        if (acc.to_doubles(v, tail)) {
          e = e + tail + std::fabs(v[2]);
          done = write_certified(dbeta, out, v[0], v[1], e == 0 ? 0.0 : e * kSlack, dbeta_scale, 0.0);
        }
        out_fallbacks[out] += done ? 0 : 1;
      }
      if (!done) {
        exact_inputs();
        Real total;
        exact::sum(total, DBn);
        set_value(dbeta, out, exact::round_to(p.dtype, total), total, dbeta_scale, 0.0);
      }
    }
    if (!dy_ok || !x_ok) {
      set_undefined(dgamma, out);
      return;
    }
    // dgamma = sum_n U_n / sqrt(D_n): on the fast statistics the sum of the terms u rho in double
    // words; else, and where that does not round, Ziv's loop with doubling precision.
    if (all_dw) {
      dw::DW sum{};
      double e = 0;
      for (int64_t n = n0; n < n1; ++n) {
        const ParamPart& pt = parts[n * p.C + ch];
        sum = dw::add(sum, pt.term);
        e += pt.e_term + (pt.e_term != 0 ? 6 * kU2 * std::fabs(sum.hi) : 0);
      }
      if (write_certified(dgamma, out, sum.hi, sum.lo, e * kSlack, dgamma_scale, kappa)) return;
      ++out_fallbacks[out];
    }
    exact_inputs();
    bool decided = false;
    uint64_t bits = 0;
    Real approx, err;
    for (long prec = kPrec; prec <= kMaxPrec && !decided; prec *= 2) {
      std::vector<Real> terms(n1 - n0);
      for (int64_t n = n0; n < n1; ++n) {
        Real r;
        mpfr_set_prec(P(r), prec);
        mpfr_rec_sqrt(P(r), P(*Dn[n - n0]), MPFR_RNDN);
        mpfr_set_prec(P(terms[n - n0]), prec);
        mpfr_mul(P(terms[n - n0]), P(*Un[n - n0]), P(r), MPFR_RNDN);
      }
      std::vector<mpfr_ptr> tp;
      for (auto& tr : terms) tp.push_back(P(tr));
      mpfr_set_prec(P(approx), prec);
      mpfr_sum(P(approx), tp.data(), tp.size(), MPFR_RNDN);
      Real lo, hi;
      mpfr_set_prec(P(lo), prec + 8);
      mpfr_set_prec(P(hi), prec + 8);
      // Each term: two roundings (r, product); the sum: one.
      UpBound bound;
      for (const Real& tr : terms) bound.add(3, tr);
      exact::assign(err, bound.add(2, approx).scaled(-prec));
      mpfr_sub(P(lo), P(approx), P(err), MPFR_RNDD);
      mpfr_add(P(hi), P(approx), P(err), MPFR_RNDU);
      bits = exact::round_to(p.dtype, lo);
      decided = bits == exact::round_to(p.dtype, hi);
    }
    // An exact tie or 0 (one sample with eps = 0 and m = 2 makes ties: x-hat = +-1) never
    // decides above: the square classes of the D_n do, exactly.
    if (!decided) {
      const std::optional<uint64_t> exact = exact::round_sum_over_sqrts(p.dtype, approx, err, Un, Dn);
      decided = exact.has_value();
      bits = decided ? *exact : exact::round_to(p.dtype, approx);
      if (!decided) ++undecided[out];
    }
    set_value(dgamma, out, bits, approx, dgamma_scale, kappa);
  };
  ThreadPool::instance().run(threads, outputs, channel);
  for (int64_t u : undecided) res.undecided += u;
  for (int64_t fb : out_fallbacks) res.fallbacks += fb;
  return res;
}

}  // namespace gnv
