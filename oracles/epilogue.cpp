#include "epilogue.h"

#include <cmath>

namespace gnv::epilogue {

using exact::P;

void enclose_rsqrt(Interval& r, const Real& D) {
  mpfi_set_fr(r.get(), P(D));
  mpfi_sqrt(r.get(), r.get());
  mpfi_ui_div(r.get(), 1, r.get());
}

void enclose(Interval& v, const Real& A, const Interval& r, const Real& B) {
  mpfi_mul_fr(v.get(), r.get(), P(A));
  mpfi_add_fr(v.get(), v.get(), P(B));
}

namespace {

// s = 1 / (1 + e^-v) and 1 - s = 1 / (1 + e^v), each from the exponential that cannot overflow
// on v's side of zero: for v < 0, s = e^v / (1 + e^v); for v >= 0, 1 - s = e^-v / (1 + e^-v).
// An interval that holds 0 uses the plain forms (its e^+-v are near 1).
void sigmoid_pair(Interval& s, Interval& one_minus_s, const Interval& v) {
  const long prec = mpfi_get_prec(v.get());
  Interval e(prec), den(prec);
  if (mpfi_is_strictly_neg(v.get())) {
    mpfi_exp(e.get(), v.get());              // e^v in (0, 1)
    mpfi_add_ui(den.get(), e.get(), 1);
    mpfi_div(s.get(), e.get(), den.get());   // e^v / (1 + e^v)
    mpfi_ui_div(one_minus_s.get(), 1, den.get());
  } else {
    mpfi_neg(e.get(), v.get());
    mpfi_exp(e.get(), e.get());              // e^-v, at most e^(|v_lo|) when v holds 0
    mpfi_add_ui(den.get(), e.get(), 1);
    mpfi_ui_div(s.get(), 1, den.get());
    mpfi_div(one_minus_s.get(), e.get(), den.get());
  }
}

}  // namespace

void silu(Interval& out, const Interval& v) {
  const long prec = mpfi_get_prec(v.get());
  Interval s(prec), t(prec);
  sigmoid_pair(s, t, v);
  mpfi_mul(out.get(), v.get(), s.get());
}

void silu_grad(Interval& out, const Interval& v) {
  const long prec = mpfi_get_prec(v.get());
  Interval s(prec), t(prec);
  sigmoid_pair(s, t, v);
  mpfi_mul(t.get(), t.get(), v.get());   // v (1 - s)
  mpfi_add_ui(t.get(), t.get(), 1);
  mpfi_mul(out.get(), s.get(), t.get());
}

bool rounds_to(DType d, const Interval& iv, uint64_t& bits) {
  const long prec = mpfi_get_prec(iv.get());
  Real lo, hi;
  mpfr_set_prec(P(lo), prec);
  mpfr_set_prec(P(hi), prec);
  mpfi_get_left(P(lo), iv.get());
  mpfi_get_right(P(hi), iv.get());
  if (mpfr_nan_p(P(lo)) || mpfr_nan_p(P(hi))) return false;
  if (mpfr_zero_p(P(lo)) && mpfr_zero_p(P(hi))) {  // the point 0 (as [-0, +0]): an exact 0, rounded to +0
    Real zero;
    exact::set_d(zero, 0.0);
    bits = exact::round_to(d, zero);
    return true;
  }
  bits = exact::round_to(d, lo);
  return bits == exact::round_to(d, hi);
}

void midpoint(Real& out, const Interval& iv) {
  mpfr_set_prec(P(out), mpfi_get_prec(iv.get()));
  mpfi_mid(P(out), iv.get());
}

bool exact_zero(const Real& A, const Real& D, const Real& B) {
  // A / sqrt(D) = -B: both zero, or opposite signs with A^2 = B^2 D.
  const int sa = mpfr_sgn(P(A)), sb = mpfr_sgn(P(B));
  if (sa == 0 || sb == 0) return sa == 0 && sb == 0;
  if (sa == sb) return false;
  Real a2, b2, b2d;
  exact::mul(a2, A, A);
  exact::mul(b2, B, B);
  exact::mul(b2d, b2, D);
  return mpfr_equal_p(P(a2), P(b2d)) != 0;
}

SiluResult silu_rounded(DType d, const Real& A, const Real& D, const Real& B, const Interval& r0) {
  SiluResult r;
  for (long prec = kStartBits;; prec *= 2) {
    Interval v(prec), z(prec), rs(prec);
    if (prec == kStartBits) {
      enclose(v, A, r0, B);
    } else {
      enclose_rsqrt(rs, D);
      enclose(v, A, rs, B);
    }
    if (prec == kStartBits && mpfi_has_zero(v.get()) && exact_zero(A, D, B)) {
      // silu(0) = 0; silu'(0) = 1/2.
      exact::set_d(r.approx, 0.0);
      r.bits = exact::round_to(d, r.approx);
      r.grad_abs = 0.5;
      return r;
    }
    silu(z, v);
    midpoint(r.approx, z);
    r.decided = rounds_to(d, z, r.bits);
    if (!r.decided && prec < kMaxBits) continue;
    if (!r.decided) r.bits = exact::round_to(d, r.approx);
    // The scale needs |v| and |silu'(v)| only approximately: in double.
    Real mid;
    midpoint(mid, v);
    const double vm = mpfr_get_d(P(mid), MPFR_RNDN), s = 1 / (1 + std::exp(-vm));
    r.v_abs = std::fabs(vm);
    r.grad_abs = std::isfinite(vm) ? std::fabs(s * (1 + vm * (1 - s))) : vm > 0 ? 1.0 : 0.0;
    return r;
  }
}

}  // namespace gnv::epilogue
