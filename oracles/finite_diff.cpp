// Central finite differences of a high-precision forward, to confirm the analytic backward of
// the oracle. The forward here is the plain textbook formula in 400-bit floating point
// (independent of the oracle's exact rational form); with a step h = 2^-120 (relative to the
// value perturbed) the truncation error is O(h^2) ~ 2^-240 and the rounding error ~ 2^-400/h
// ~ 2^-280, so the result is good to far beyond f64. The fused forms are the textbook formulas
// too: per-sample gamma and beta indexed by (n, c), and silu(v) = v / (1 + exp(-v)) of each
// output (MPFR's exp, independent of the oracle's interval evaluation).
#include <cmath>
#include <functional>
#include <stdexcept>

#include "exact.h"
#include "gnv/oracle.h"

namespace gnv {

using exact::P;
using exact::Real;

namespace {

constexpr long kFdPrec = 400;

Real hp(double v) {
  Real r;
  mpfr_set_prec(P(r), kFdPrec);
  mpfr_set_d(P(r), v, MPFR_RNDN);
  return r;
}

// L = sum_i w_i y_i(x, gamma, beta), all in kFdPrec bits.
Real weighted_forward(const Problem& p, const std::vector<Real>& x, const std::vector<Real>& gamma,
                      const std::vector<Real>& beta, const std::vector<Real>& w) {
  const int64_t m = p.group_size(), cpg = p.channels_per_group(), S = p.S();
  Real total = hp(0), mean = hp(0), var = hp(0), t = hp(0), rstd = hp(0), y = hp(0), e = hp(0);
  for (int64_t n = 0; n < p.N; ++n) {
    for (int64_t g = 0; g < p.G; ++g) {
      auto at = [&](int64_t j) { return p.index(n, g * cpg + j / S, j % S); };
      mpfr_set_zero(P(mean), 1);
      for (int64_t j = 0; j < m; ++j) mpfr_add(P(mean), P(mean), P(x[at(j)]), MPFR_RNDN);
      mpfr_div_si(P(mean), P(mean), static_cast<long>(m), MPFR_RNDN);
      mpfr_set_zero(P(var), 1);
      for (int64_t j = 0; j < m; ++j) {
        mpfr_sub(P(t), P(x[at(j)]), P(mean), MPFR_RNDN);
        mpfr_fma(P(var), P(t), P(t), P(var), MPFR_RNDN);
      }
      mpfr_div_si(P(var), P(var), static_cast<long>(m), MPFR_RNDN);
      mpfr_add_d(P(var), P(var), p.eps, MPFR_RNDN);
      mpfr_rec_sqrt(P(rstd), P(var), MPFR_RNDN);
      for (int64_t j = 0; j < m; ++j) {
        const int64_t q = p.param_index(n, g * cpg + j / S);
        mpfr_sub(P(t), P(x[at(j)]), P(mean), MPFR_RNDN);
        mpfr_mul(P(y), P(t), P(rstd), MPFR_RNDN);
        mpfr_fma(P(y), P(y), P(gamma[q]), P(beta[q]), MPFR_RNDN);
        if (p.epilogue == Epilogue::silu) {  // y / (1 + exp(-y))
          mpfr_neg(P(e), P(y), MPFR_RNDN);
          mpfr_exp(P(e), P(e), MPFR_RNDN);
          mpfr_add_ui(P(e), P(e), 1, MPFR_RNDN);
          mpfr_div(P(y), P(y), P(e), MPFR_RNDN);
        }
        mpfr_fma(P(total), P(y), P(w[at(j)]), P(total), MPFR_RNDN);
      }
    }
  }
  return total;
}

// d L / d v by central differences, perturbing v in place.
double central_diff(Real& v, const std::function<Real()>& f) {
  const double mag = std::fabs(mpfr_get_d(P(v), MPFR_RNDN));
  const Real h = hp(std::ldexp(mag > 0 ? mag : 1.0, -120));
  const Real saved = v;
  mpfr_add(P(v), P(saved), P(h), MPFR_RNDN);
  const Real fp = f();
  mpfr_sub(P(v), P(saved), P(h), MPFR_RNDN);
  const Real fm = f();
  exact::assign(v, saved);
  Real d = hp(0);
  mpfr_sub(P(d), P(fp), P(fm), MPFR_RNDN);
  mpfr_div(P(d), P(d), P(h), MPFR_RNDN);
  mpfr_div_2ui(P(d), P(d), 1, MPFR_RNDN);
  return mpfr_get_d(P(d), MPFR_RNDN);
}

}  // namespace

FiniteDiff finite_diff_backward(const Case& c) {
  c.validate();
  if (!c.dy) throw std::invalid_argument("finite_diff_backward: the case has no dy");
  const Problem& p = c.problem;
  std::vector<Real> x, w, gamma, beta;
  for (int64_t i = 0; i < p.numel(); ++i) {
    x.push_back(hp(c.x.get(i)));
    w.push_back(hp(c.dy->get(i)));
  }
  const int64_t params = p.per_sample() ? p.N * p.C : p.C;
  for (int64_t q = 0; q < params; ++q) {
    gamma.push_back(hp(p.affine ? c.gamma.get(q) : 1.0));
    beta.push_back(hp(p.affine ? c.beta.get(q) : 0.0));
  }
  auto f = [&] { return weighted_forward(p, x, gamma, beta, w); };
  FiniteDiff fd;
  for (int64_t i = 0; i < p.numel(); ++i) fd.dx.push_back(central_diff(x[i], f));
  if (p.affine) {
    for (int64_t q = 0; q < params; ++q) {
      fd.dgamma.push_back(central_diff(gamma[q], f));
      fd.dbeta.push_back(central_diff(beta[q], f));
    }
  }
  return fd;
}

}  // namespace gnv
