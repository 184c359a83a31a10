// Independent LayerNorm and InstanceNorm references for the equivalence properties (G = 1 is
// LayerNorm over (C, *S); G = C is InstanceNorm). They share only the exact-arithmetic helpers
// with the GroupNorm oracle, not its formula: the variance here is the two-pass
// sum((L x - S)^2) / L^3, the GroupNorm oracle uses L*Q - S^2, and each value is evaluated at
// 320 bits and rounded to f64 (an error of 2^-300 relative cannot straddle an f64 rounding
// boundary unless the value lies within that distance of it).
#include <cmath>
#include <stdexcept>

#include "exact.h"
#include "gnv/oracle.h"

namespace gnv {

using exact::P;
using exact::Real;

namespace {

constexpr long kRefPrec = 320;

// Normalizes `rows` rows of `len` elements; element k of row r is at base(r) + k*stride.
// gamma/beta index: aff(r, k), or none.
template <class Base, class Aff>
Tensor normalize_rows(const Tensor& x, int64_t rows, int64_t len, Base base, int64_t stride,
                      const Tensor* gamma, const Tensor* beta, Aff aff, double eps) {
  if (x.dtype() != DType::f64) throw std::invalid_argument("reference norms take f64 tensors");
  Tensor y(DType::f64, x.shape());
  std::vector<Real> xs(len), dev2(len);
  Real S, Lx, d, Sd, eps_r, epsL3, V, r, yv, sqrtL;
  exact::set_d(eps_r, eps);
  mpfr_set_prec(P(sqrtL), kRefPrec);
  mpfr_sqrt_ui(P(sqrtL), static_cast<unsigned long>(len), MPFR_RNDN);
  for (int64_t row = 0; row < rows; ++row) {
    for (int64_t k = 0; k < len; ++k) exact::set_d(xs[k], x.get(base(row) + k * stride));
    exact::sum(S, xs);
    for (int64_t k = 0; k < len; ++k) {
      exact::mul_si(Lx, xs[k], len);
      exact::sub(d, Lx, S);
      exact::mul(dev2[k], d, d);
    }
    exact::sum(Sd, dev2);  // = L^3 * var
    exact::mul_si(epsL3, eps_r, len * len * len);
    exact::add(V, Sd, epsL3);  // L^3 (var + eps)
    mpfr_set_prec(P(r), kRefPrec);
    mpfr_rec_sqrt(P(r), P(V), MPFR_RNDN);  // 1 / (L^1.5 sqrt(var + eps))
    for (int64_t k = 0; k < len; ++k) {
      exact::mul_si(Lx, xs[k], len);
      exact::sub(d, Lx, S);  // L (x - mean)
      // (x - mean) / sqrt(var + eps) = d * sqrt(L) / sqrt(V), with d = L (x - mean).
      mpfr_set_prec(P(yv), kRefPrec);
      mpfr_mul(P(yv), P(d), P(r), MPFR_RNDN);
      mpfr_mul(P(yv), P(yv), P(sqrtL), MPFR_RNDN);
      if (gamma) mpfr_mul_d(P(yv), P(yv), gamma->get(aff(row, k)), MPFR_RNDN);
      if (beta) mpfr_add_d(P(yv), P(yv), beta->get(aff(row, k)), MPFR_RNDN);
      y.set_bits(base(row) + k * stride, exact::round_to(DType::f64, yv));
    }
  }
  return y;
}

}  // namespace

Tensor layer_norm_reference(const Tensor& x, const Tensor* gamma, const Tensor* beta, double eps) {
  if (x.shape().size() != 2) throw std::invalid_argument("layer_norm_reference: x must be (N, L)");
  const int64_t N = x.shape()[0], L = x.shape()[1];
  return normalize_rows(x, N, L, [L](int64_t r) { return r * L; }, 1, gamma, beta,
                        [](int64_t, int64_t k) { return k; }, eps);
}

Tensor instance_norm_reference(const Tensor& x, const Tensor* gamma, const Tensor* beta, double eps) {
  if (x.shape().size() != 3) throw std::invalid_argument("instance_norm_reference: x must be (N, C, S)");
  const int64_t C = x.shape()[1], S = x.shape()[2];
  return normalize_rows(x, x.shape()[0] * C, S, [S](int64_t r) { return r * S; }, 1, gamma, beta,
                        [C](int64_t r, int64_t) { return r % C; }, eps);
}

}  // namespace gnv
