#pragma once
// Exact dyadic arithmetic and correct rounding, on Boost.Multiprecision's MPFR backend.
//
// Every dtype value is a dyadic rational, so sums, differences and products of them are exact
// MPFR numbers once the precision covers the span from the highest to the lowest bit involved;
// the helpers below choose that precision from the operands. Only a square root (and division by
// the group size m) is ever inexact, and those are rounded with a certified error bound (Ziv's
// strategy) or decided exactly by squaring (see groupnorm.cpp).
#include <bit>
#include <boost/multiprecision/mpfr.hpp>
#include <cmath>
#include <cstdint>
#include <mpfr.h>
#include <optional>
#include <vector>

#include "gnv/dtype.h"

namespace gnv::exact {

using Real = boost::multiprecision::number<boost::multiprecision::mpfr_float_backend<0>,
                                           boost::multiprecision::et_off>;

inline mpfr_ptr P(Real& r) { return r.backend().data(); }
inline mpfr_srcptr P(const Real& r) { return r.backend().data(); }

// Exact: r = a, keeping a's precision.
void assign(Real& r, const Real& a);
// Exact: r = v (a double; 53 bits suffice for every dtype).
void set_d(Real& r, double v);
// Exact: r = a + b, r = a - b, r = a * b, r = a * k. r must not alias a or b.
void add(Real& r, const Real& a, const Real& b);
void sub(Real& r, const Real& a, const Real& b);
void mul(Real& r, const Real& a, const Real& b);
void mul_si(Real& r, const Real& a, int64_t k);
// Exact sum of n values (MPFR's mpfr_sum at a precision that makes it exact).
void sum(Real& r, const std::vector<const Real*>& v);
void sum(Real& r, const std::vector<Real>& v);

// Round-to-odd of a/k at `prec` bits: correct input for a later single rounding to any format
// of at most prec-2 bits (Boldo & Melquiond), so quotients are correctly rounded in the end.
void div_si_odd(Real& r, const Real& a, int64_t k, long prec);

// The correctly rounded (nearest, ties to even, with subnormals and overflow to Inf) image of
// the exact value v in dtype d, as raw bits. NaN maps to the canonical quiet NaN.
uint64_t round_to(DType d, const Real& v);
uint64_t quiet_nan_bits(DType d);
// Round-to-odd from a double to float: truncate, then set the last bit if anything was lost.
inline float float_odd(double d) {
  float f = static_cast<float>(d);
  if (static_cast<double>(f) == d || std::isnan(d)) return f;
  if (std::fabs(static_cast<double>(f)) > std::fabs(d)) f = std::nextafter(f, 0.0f);
  auto b = std::bit_cast<uint32_t>(f);
  return std::bit_cast<float>(b | 1u);
}
// The correctly rounded image of a double in d (RN to f32 directly; to f16/bf16 via round-to-odd
// f32, so there is no double rounding). Inline: the fast oracle path calls it per element.
inline uint64_t round_double(DType d, double v) {
  if (std::isnan(v)) return quiet_nan_bits(d);
  switch (d) {
    case DType::f64: return std::bit_cast<uint64_t>(v);
    case DType::f32: return std::bit_cast<uint32_t>(static_cast<float>(v));
    case DType::f16: return Eigen::numext::bit_cast<uint16_t>(Eigen::half(float_odd(v)));
    case DType::bf16: return Eigen::numext::bit_cast<uint16_t>(Eigen::bfloat16(float_odd(v)));
  }
  return 0;
}
// hi = RN_double(v), lo = RN_double(v - hi): a double-double image of v for the metrics. A finite
// v past double's range gives hi = +-Inf, standing for +-2^1024, and lo = RN_double(v - (+-2^1024)).
void to_double_double(const Real& v, double& hi, double& lo);

// Exact sign of A/sqrt(D) - W (D > 0).
int sign_a_over_sqrt_minus_w(const Real& A, const Real& D, const Real& W);

// The value v = A / (K * sqrt(D)) + B correctly rounded to d, given an approximation `approx`
// with |approx - v| <= err. Falls back to exact comparisons when the interval straddles a
// rounding boundary. A, K, D, B exact; K > 0, D > 0.
uint64_t round_certified(DType d, const Real& approx, const Real& err, const Real& A,
                         const Real& K, const Real& D, const Real& B);

// The sum v = sum_n U[n] / sqrt(D[n]) (every D[n] > 0, all exact) correctly rounded to d, given
// |approx - v| <= err, where v can be a rounding boundary or 0: the terms whose D[n] D[k] is a
// rational square combine into T_k / sqrt(D[k]) (T_k rational); no class with T_k != 0 is v = 0
// (+0), one is v = A / (K sqrt(D[k])) for round_certified. Two or more make v irrational (the
// square roots of distinct square classes are linearly independent over Q): no boundary, no
// zero; then nullopt (more precision would decide). dgamma's last resort after Ziv's loop.
std::optional<uint64_t> round_sum_over_sqrts(DType d, const Real& approx, const Real& err,
                                             const std::vector<const Real*>& U,
                                             const std::vector<const Real*>& D);

}  // namespace gnv::exact
