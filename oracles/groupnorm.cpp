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
#include <cmath>
#include <fmt/format.h>
#include <stdexcept>

#include "exact.h"
#include "gnv/oracle.h"

namespace gnv {

using exact::P;
using exact::Real;

namespace {

constexpr long kPrec = 192;
constexpr long kMaxPrec = 4096;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Gradual underflow (docs/numerics.md "Metrics and budgets"). Below the normal range each product,
// quotient and square root of a kernel may lose up to eta (the smallest subnormal of acc_t)
// absolutely rather than u relatively, and normalization amplifies such losses: by rstd in the
// mean, by rstd^2 in the variance (squares of small deviations underflow), then by gamma (or G in
// the backward pass). The scales below carry these terms in units of u_acc (the metric multiplies
// a scale by u_acc), so each is eta/u_acc times an amplification; in the normal range they are
// about 1e-38 (f32) or 1e-308 (f64) of the other terms. long double, because r^2 of an f64
// group can exceed double's range where the allowance itself does not.
long double eta_over_u(DType d) {
  const DTypeInfo& a = info(acc_dtype(d));
  return static_cast<long double>(a.min_subnormal) / a.unit_roundoff;
}
// The absolute error of one xhat from underflow, in units of eta: its own rounding, the mean's
// (m steps, times r) and the variance's (m squares, times r^2 |xhat| / 2 through rstd).
long double xhat_underflow(long double r, long double m, long double xh) {
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
  double max_abs = 0;
  Real S, D;
  Real r;  // 1/sqrt(D) rounded to nearest at kPrec bits
  double rstd = kNaN, kappa = kNaN;
};

void compute_stats(const Problem& p, const Tensor& x, int64_t n, int64_t g, GroupStats& st,
                   std::vector<Real>& xs, std::vector<Real>& sq) {
  const int64_t m = p.group_size();
  GroupIter it{p, n, g};
  xs.resize(m);
  sq.resize(m);
  st.finite = true;
  st.max_abs = 0;
  for (int64_t j = 0; j < m; ++j) {
    const double v = x.get(it.offset(j));
    if (!std::isfinite(v)) st.finite = false;
    st.max_abs = std::max(st.max_abs, std::fabs(v));
    exact::set_d(xs[j], std::isfinite(v) ? v : 0.0);
    exact::mul(sq[j], xs[j], xs[j]);
  }
  if (!st.finite) return;
  Real Q, mQ, S2, nv, eps, m2eps;
  exact::sum(st.S, xs);
  exact::sum(Q, sq);
  exact::mul_si(mQ, Q, m);
  exact::mul(S2, st.S, st.S);
  exact::sub(nv, mQ, S2);
  exact::set_d(eps, p.eps);
  exact::mul_si(m2eps, eps, m * m);
  exact::add(st.D, nv, m2eps);
  if (mpfr_sgn(P(st.D)) < 0) throw std::logic_error("oracle: negative variance");
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

void set_value(ExactOutput& o, int64_t i, uint64_t bits, const Real& approx, double scale,
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
  const long double r = st.rstd;
  const long double under = eta_over_u(p.dtype) * r * r * r * m / 2;  // var's m squares, via r^3
  set_value(rstd, i, bits, approx, static_cast<double>(st.rstd * (st.kappa + 1) + under), st.kappa);
}

}  // namespace

const ExactOutput& OracleResult::get(const std::string& name) const {
  for (const auto& o : outputs)
    if (o.name == name) return o;
  throw std::invalid_argument("oracle result has no output '" + name + "'");
}

OracleResult oracle_forward(const Case& c) {
  c.validate();
  const Problem& p = c.problem;
  const int64_t m = p.group_size();
  const DType acc = acc_dtype(p.dtype);
  OracleResult res;
  res.outputs.push_back(make_output("y", p.dtype, p.x_shape(), m));
  res.outputs.push_back(make_output("mean", acc, p.stats_shape(), m));
  res.outputs.push_back(make_output("rstd", acc, p.stats_shape(), m));
  ExactOutput &y = res.outputs[0], &mean = res.outputs[1], &rstd = res.outputs[2];
  res.kappa.assign(static_cast<size_t>(p.N * p.G), kNaN);

  std::vector<Real> gam(p.C), bet(p.C);
  std::vector<double> gd(p.C, 1.0), bd(p.C, 0.0);
  for (int64_t ch = 0; ch < p.C; ++ch) {
    if (p.affine) {
      gd[ch] = c.gamma.get(ch);
      bd[ch] = c.beta.get(ch);
    }
    exact::set_d(gam[ch], std::isfinite(gd[ch]) ? gd[ch] : 0.0);
    exact::set_d(bet[ch], std::isfinite(bd[ch]) ? bd[ch] : 0.0);
  }

  std::vector<Real> xs, sq;
  GroupStats st;
  Real T, mx, xhat, t, ya, A;
  const Real one = from_double(1.0);
  for (int64_t n = 0; n < p.N; ++n) {
    for (int64_t g = 0; g < p.G; ++g) {
      compute_stats(p, c.x, n, g, st, xs, sq);
      const int64_t gi = n * p.G + g;
      res.kappa[gi] = st.kappa;
      write_stats(p, st, gi, mean, rstd);
      GroupIter it{p, n, g};
      for (int64_t j = 0; j < m; ++j) {
        const int64_t off = it.offset(j), ch = it.channel(j);
        if (!st.finite || st.degenerate || !std::isfinite(gd[ch]) || !std::isfinite(bd[ch])) {
          set_undefined(y, off);
          continue;
        }
        exact::mul_si(mx, xs[j], m);
        exact::sub(T, mx, st.S);
        mpfr_set_prec(P(xhat), kPrec);
        mpfr_mul(P(xhat), P(T), P(st.r), MPFR_RNDN);
        mpfr_set_prec(P(t), kPrec);
        mpfr_mul(P(t), P(xhat), P(gam[ch]), MPFR_RNDN);
        mpfr_set_prec(P(ya), kPrec);
        mpfr_add(P(ya), P(t), P(bet[ch]), MPFR_RNDN);
        const double yv = std::fabs(mpfr_get_d(P(ya), MPFR_RNDN));
        // |ya - y| <= 2^-P (3.01 |t| + |ya|): three roundings in the product, one in the sum.
        const Real err = UpBound().add(4, t).add(2, ya).scaled(-kPrec);
        exact::mul(A, gam[ch], T);
        const uint64_t bits = exact::round_certified(p.dtype, ya, err, A, one, st.D, bet[ch]);
        const double xh = std::fabs(mpfr_get_d(P(xhat), MPFR_RNDN));
        const long double under =
            eta_over_u(p.dtype) * (std::fabs(gd[ch]) * xhat_underflow(st.rstd, m, xh) + 1);
        const double scale = static_cast<double>(
            std::fabs(gd[ch]) * st.kappa * (2 + xh) + std::fabs(bd[ch]) + yv + under);
        set_value(y, off, bits, ya, scale, st.kappa);
      }
    }
  }
  return res;
}

OracleResult oracle_backward(const Case& c) {
  c.validate();
  if (!c.dy) throw std::invalid_argument("oracle_backward: the case has no dy");
  const Problem& p = c.problem;
  const Tensor& dy = *c.dy;
  const int64_t m = p.group_size(), S = p.S(), cpg = p.channels_per_group();
  OracleResult res;
  res.outputs.push_back(make_output("dx", p.dtype, p.x_shape(), m));
  if (p.affine) {
    res.outputs.push_back(make_output("dgamma", p.dtype, p.channel_shape(), p.N * S));
    res.outputs.push_back(make_output("dbeta", p.dtype, p.channel_shape(), p.N * S));
  }
  ExactOutput& dx = res.outputs[0];
  res.kappa.assign(static_cast<size_t>(p.N * p.G), kNaN);

  std::vector<Real> gam(p.C);
  std::vector<double> gd(p.C, 1.0);
  for (int64_t ch = 0; ch < p.C; ++ch) {
    if (p.affine) gd[ch] = c.gamma.get(ch);
    exact::set_d(gam[ch], std::isfinite(gd[ch]) ? gd[ch] : 0.0);
  }

  // Per (n, c): U = sum_s dy*T and sum_s dy, exact; per (n, g): D. For dgamma and dbeta.
  std::vector<Real> U(p.N * p.C), DB(p.N * p.C), Dg(p.N * p.G);
  std::vector<char> nc_finite(p.N * p.C, 1), dy_finite(p.N * p.C, 1);
  std::vector<double> dgamma_scale(p.C, 0), dbeta_scale(p.C, 0), dgamma_kappa(p.C, 0);

  std::vector<Real> xs, sq, gs(m), gts(m), Ts(m), dys(S), dyts(S);
  GroupStats st;
  Real SG, SGT, q, mx, a1, a2, a3, u, dxa, A, mgD, sgD, tq, t1;
  for (int64_t n = 0; n < p.N; ++n) {
    for (int64_t g = 0; g < p.G; ++g) {
      compute_stats(p, c.x, n, g, st, xs, sq);
      const int64_t gi = n * p.G + g;
      res.kappa[gi] = st.kappa;
      GroupIter it{p, n, g};
      // dx needs every x, dy and gamma of the group; dgamma_c only x and channel c's own dy.
      // Kernels get the statistics rounded to acc_t: where rstd rounds to +Inf (a spread too
      // small for acc_t, like the degenerate D = 0), they have no finite rstd to work with.
      Real rstd_approx;
      const bool x_ok = st.finite && !st.degenerate &&
                        is_finite_bits(acc_dtype(p.dtype), rstd_bits(p, st, rstd_approx));
      bool ok = x_ok;
      // max|gamma * dy| in long double: in double the product of two f64 values can underflow
      // to 0 (an allowance of 0) or overflow where rstd * gmax does not.
      long double gmax = 0;
      for (int64_t j = 0; j < m; ++j) {
        const double d = dy.get(it.offset(j));
        const int64_t ch = it.channel(j);
        if (!std::isfinite(d)) dy_finite[n * p.C + ch] = 0;
        if (!std::isfinite(d) || !std::isfinite(gd[ch])) ok = false;
        gmax = std::max(gmax, std::fabs(static_cast<long double>(d) * gd[ch]));
      }
      for (int64_t k = 0; k < cpg; ++k) nc_finite[n * p.C + g * cpg + k] = x_ok;
      if (p.affine) {
        // dbeta = sum dy depends on nothing else, so it is accumulated even where x is unusable.
        for (int64_t k = 0; k < cpg; ++k) {
          const int64_t ch = g * cpg + k;
          for (int64_t s = 0; s < S; ++s) {
            const double d = dy.get(it.offset(k * S + s));
            exact::set_d(dys[s], std::isfinite(d) ? d : 0.0);
            dbeta_scale[ch] += std::fabs(d);
          }
          exact::sum(DB[n * p.C + ch], dys);
        }
      }
      if (!ok) for (int64_t j = 0; j < m; ++j) set_undefined(dx, it.offset(j));
      if (!x_ok) continue;
      exact::assign(Dg[gi], st.D);
      for (int64_t j = 0; j < m; ++j) {
        exact::mul_si(mx, xs[j], m);
        exact::sub(Ts[j], mx, st.S);
        if (!ok) continue;
        Real dyv;
        exact::set_d(dyv, dy.get(it.offset(j)));
        exact::mul(gs[j], gam[it.channel(j)], dyv);
        exact::mul(gts[j], gs[j], Ts[j]);
      }
      if (ok) {
        exact::sum(SG, gs);
        exact::sum(SGT, gts);
        mpfr_set_prec(P(q), kPrec);
        mpfr_div(P(q), P(SGT), P(st.D), MPFR_RNDN);
      }
      for (int64_t j = 0; ok && j < m; ++j) {
        // u = m g - SG - T q at kPrec bits; dx = u / sqrt(D).
        mpfr_set_prec(P(a1), mpfr_get_prec(P(gs[j])) + 64);
        mpfr_mul_si(P(a1), P(gs[j]), static_cast<long>(m), MPFR_RNDN);  // exact
        mpfr_set_prec(P(a2), kPrec);
        mpfr_sub(P(a2), P(a1), P(SG), MPFR_RNDN);
        mpfr_set_prec(P(a3), kPrec);
        mpfr_mul(P(a3), P(Ts[j]), P(q), MPFR_RNDN);
        mpfr_set_prec(P(u), kPrec);
        mpfr_sub(P(u), P(a2), P(a3), MPFR_RNDN);
        mpfr_set_prec(P(dxa), kPrec);
        mpfr_mul(P(dxa), P(u), P(st.r), MPFR_RNDN);
        const double vd = std::fabs(mpfr_get_d(P(dxa), MPFR_RNDN));
        const Real err =
            UpBound().add(1, a2).add(3, a3).add(1, u).times(st.r).times(1.01).add(3, dxa).scaled(-kPrec);
        // Exact form for the rare undecided rounding: dx = A'/(D sqrt D),
        // A' = m g D - SG D - T SGT.
        const uint64_t bits = [&] {
          Real lo, hi;
          mpfr_set_prec(P(lo), kPrec + 8);
          mpfr_set_prec(P(hi), kPrec + 8);
          mpfr_sub(P(lo), P(dxa), P(err), MPFR_RNDD);
          mpfr_add(P(hi), P(dxa), P(err), MPFR_RNDU);
          const uint64_t b = exact::round_to(p.dtype, lo);
          if (b == exact::round_to(p.dtype, hi)) return b;
          exact::mul(mgD, a1, st.D);
          exact::mul(sgD, SG, st.D);
          exact::mul(tq, Ts[j], SGT);
          exact::sub(t1, mgD, sgD);
          exact::sub(A, t1, tq);
          return exact::round_certified(p.dtype, dxa, err, A, st.D, st.D, from_double(0.0));
        }();
        const double xh = xhat_abs(Ts[j], st.r);
        // Underflow: g's and the sums' own losses times r, xhat's (through mean(g xhat) and
        // mean(g)) times r G, and rstd's relative error r^2 m eta / 2 times |dx|.
        const long double rs = st.rstd, sm = std::sqrt(static_cast<long double>(m));
        const long double under =
            eta_over_u(p.dtype) * (rs * (1 + m) * (1 + xh) +
                                   rs * gmax * (sm + xh) * xhat_underflow(rs, m, sm) +
                                   rs * rs * m * vd / 2 + 1);
        const double scale =
            static_cast<double>(st.rstd * gmax * (1 + st.kappa) * (2 + xh) + vd + under);
        set_value(dx, it.offset(j), bits, dxa, scale, st.kappa);
      }
      if (!p.affine) continue;
      for (int64_t k = 0; k < cpg; ++k) {
        const int64_t ch = g * cpg + k;
        if (!dy_finite[n * p.C + ch]) continue;  // dgamma_c is undefined
        for (int64_t s = 0; s < S; ++s) {
          const int64_t j = k * S + s;
          const double d = dy.get(it.offset(j));
          exact::set_d(dys[s], d);
          exact::mul(dyts[s], dys[s], Ts[j]);
          const double xh = xhat_abs(Ts[j], st.r);
          dgamma_scale[ch] += std::fabs(d) * (st.kappa * (2 + xh) + xh) +
                              static_cast<double>(eta_over_u(p.dtype) *
                                                  (std::fabs(d) * xhat_underflow(st.rstd, m, xh) + 1));
        }
        dgamma_kappa[ch] = std::max(dgamma_kappa[ch], st.kappa);
        exact::sum(U[n * p.C + ch], dyts);
      }
    }
  }
  if (!p.affine) return res;

  ExactOutput &dgamma = res.outputs[1], &dbeta = res.outputs[2];
  Real total;
  for (int64_t ch = 0; ch < p.C; ++ch) {
    const int64_t g = ch / cpg;
    bool dy_ok = true, x_ok = true;
    for (int64_t n = 0; n < p.N; ++n) {
      dy_ok = dy_ok && dy_finite[n * p.C + ch];
      x_ok = x_ok && nc_finite[n * p.C + ch];
    }
    // dbeta is an exact sum: round it once.
    if (!dy_ok) {
      set_undefined(dbeta, ch);
    } else {
      std::vector<const Real*> db;
      for (int64_t n = 0; n < p.N; ++n) db.push_back(&DB[n * p.C + ch]);
      exact::sum(total, db);
      set_value(dbeta, ch, exact::round_to(p.dtype, total), total, dbeta_scale[ch], 0.0);
    }
    if (!dy_ok || !x_ok) {
      set_undefined(dgamma, ch);
      continue;
    }
    // dgamma = sum_n U_n / sqrt(D_n): Ziv's loop with doubling precision.
    bool decided = false;
    uint64_t bits = 0;
    Real approx;
    for (long prec = kPrec; prec <= kMaxPrec && !decided; prec *= 2) {
      std::vector<Real> terms(p.N);
      for (int64_t n = 0; n < p.N; ++n) {
        Real r;
        mpfr_set_prec(P(r), prec);
        mpfr_rec_sqrt(P(r), P(Dg[n * p.G + g]), MPFR_RNDN);
        mpfr_set_prec(P(terms[n]), prec);
        mpfr_mul(P(terms[n]), P(U[n * p.C + ch]), P(r), MPFR_RNDN);
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
      const Real err = bound.add(2, approx).scaled(-prec);
      mpfr_sub(P(lo), P(approx), P(err), MPFR_RNDD);
      mpfr_add(P(hi), P(approx), P(err), MPFR_RNDU);
      bits = exact::round_to(p.dtype, lo);
      decided = bits == exact::round_to(p.dtype, hi);
    }
    if (!decided) {
      ++res.undecided;
      bits = exact::round_to(p.dtype, approx);
    }
    set_value(dgamma, ch, bits, approx, dgamma_scale[ch], dgamma_kappa[ch]);
  }
  return res;
}

}  // namespace gnv
