#include "epilogue.h"

#include <cmath>
#include <limits>

#include "gnv/silu.h"

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
  if (bits != exact::round_to(d, hi)) return false;
  // The same double too: the metrics' hi (the midpoint's nearest double) is then the exact value's,
  // on both oracle paths, however wide a cancelling sum left the interval.
  return d == DType::f64 || exact::round_to(DType::f64, lo) == exact::round_to(DType::f64, hi);
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
    const double vm = mpfr_get_d(P(mid), MPFR_RNDN);
    r.v_abs = std::fabs(vm);
    r.grad_abs = grad_abs(vm);
    return r;
  }
}

double grad_abs(double v) { return std::fabs(silu::grad(v, true)); }

namespace {

using dw::DW;
using dw::kU2;
constexpr double kU = 0x1p-53;
constexpr int kDegree = 24;

// ln 2 = L1 + L2 + L3 + (at most 2^-145), L1 with 40 significant bits so that k L1 is exact for
// |k| < 2^13; 1/j! as double-words within 2^-105 of their value. Computed once, in MPFR.
struct ExpConstants {
  double L1, L2, L3, inv_ln2;
  DW c[kDegree + 1];
  ExpConstants() {
    Real ln2, t, part;
    mpfr_set_prec(P(ln2), 300);
    mpfr_set_prec(P(t), 300);
    mpfr_set_prec(P(part), 40);
    mpfr_const_log2(P(ln2), MPFR_RNDN);
    mpfr_set(P(part), P(ln2), MPFR_RNDN);
    L1 = mpfr_get_d(P(part), MPFR_RNDN);  // exact: 40 bits
    mpfr_sub_d(P(t), P(ln2), L1, MPFR_RNDN);
    L2 = mpfr_get_d(P(t), MPFR_RNDN);
    mpfr_sub_d(P(t), P(t), L2, MPFR_RNDN);
    L3 = mpfr_get_d(P(t), MPFR_RNDN);
    inv_ln2 = 1 / mpfr_get_d(P(ln2), MPFR_RNDN);
    mpfr_set_ui(P(t), 1, MPFR_RNDN);
    for (int j = 0; j <= kDegree; ++j) {
      if (j > 0) mpfr_div_ui(P(t), P(t), static_cast<unsigned long>(j), MPFR_RNDN);  // 1/j!, 300 bits
      c[j].hi = mpfr_get_d(P(t), MPFR_RNDN);
      Real rest;
      mpfr_set_prec(P(rest), 300);
      mpfr_sub_d(P(rest), P(t), c[j].hi, MPFR_RNDN);
      c[j].lo = mpfr_get_d(P(rest), MPFR_RNDN);
    }
  }
};
const ExpConstants& exp_constants() {
  static const ExpConstants k;
  return k;
}

// The bound of a dw.h operation's own rounding (its constant k u^2, doubled, on its result), and
// 2^-1000 for a low part that underflows (the constants assume none; v may be tiny).
double own(double k, const DW& r) { return 2 * k * kU2 * std::fabs(r.hi) + 0x1p-1000; }
// |a| from above, for the propagated parts of the bounds.
double mag(const Bounded& a) { return std::fabs(a.v.hi) * (1 + 0x1p-50) + a.e; }

Bounded mul(const Bounded& a, const Bounded& b) {
  const DW p = dw::mul(a.v, b.v);
  return {p, own(5, p) + mag(a) * b.e + std::fabs(b.v.hi) * (1 + 0x1p-50) * a.e};
}
Bounded add(const Bounded& a, const Bounded& b) {
  const DW s = dw::add(a.v, b.v);
  return {s, own(3, s) + a.e + b.e};
}

// e^a for |a.v.hi| <= 600: a = k ln 2 + r with |r| <= 0.35, e^r by Horner's rule (every step's
// rounding bounded as it happens, plus the Taylor remainder |r|^25/25! e^|r| < 2^-120), then 2^k.
Bounded exp_b(const Bounded& a) {
  const ExpConstants& K = exp_constants();
  const double k = std::nearbyint(a.v.hi * K.inv_ln2);
  // r = a - k (L1 + L2 + L3): k L1 and the TwoSum exact, k L2 exact as a TwoProd, k L3 rounded once.
  const DW k2 = dw::two_prod(k, K.L2);
  const DW r1 = dw::add(dw::two_sum(a.v.hi, -k * K.L1), a.v.lo);
  const DW r2 = dw::add(r1, DW{-k2.hi, -k2.lo});
  const double k3 = k * K.L3;
  const DW r3 = dw::add(r2, -k3);
  Bounded r{r3, own(2, r1) + own(3, r2) + own(2, r3) + std::fabs(k3) * kU + std::fabs(k) * 0x1p-145 + a.e};
  if (!(std::fabs(r.v.hi) <= 0.35 && r.e <= 0x1p-40)) return {DW{}, std::numeric_limits<double>::infinity()};
  Bounded p{K.c[kDegree], 0x1p-105 * K.c[kDegree].hi};
  for (int j = kDegree - 1; j >= 0; --j) p = add(mul(p, r), Bounded{K.c[j], 0x1p-105 * K.c[j].hi});
  p.e += 0x1p-120;
  const int ki = static_cast<int>(k);
  return {DW{std::ldexp(p.v.hi, ki), std::ldexp(p.v.lo, ki)}, std::ldexp(p.e, ki)};
}

// 1/x for x.v.hi in [1, 2.1]: q0 = RN(1/x.hi), rho = 1 - x q0 (|rho| <= 3u), 1/x = q0 (1 + rho +
// rho^2/(1 - rho)); the computed rho is within 4u^2 |x q0| + u |rho| of the exact one, and x's own
// error moves 1/x by at most x.e / x^2 (times 1.01 for x's distance from x.hi).
Bounded recip(const Bounded& x) {
  const double q0 = 1 / x.v.hi;
  const DW w = dw::mul(x.v, q0);
  const double rho = (1 - w.hi) - w.lo;  // 1 - w.hi is exact (Sterbenz)
  const DW q = dw::fast_two_sum(q0, q0 * rho);
  const double e_rho = 4 * kU2 * std::fabs(w.hi) * 1.01 + kU * std::fabs(rho);
  const double e = q0 * (e_rho + 1.01 * (std::fabs(rho) + e_rho) * (std::fabs(rho) + e_rho) + kU * std::fabs(rho)) + 1.01 * x.e * q0 * q0;
  return {q, e};
}

}  // namespace

FastSilu silu_fast(Bounded v) {
  FastSilu out;
  if (!(std::fabs(v.v.hi) <= 600 && v.e <= 0x1p-40)) return out;
  // s = 1 / (1 + e^-v) and 1 - s, from e^-|v| <= 1 (sigmoid_pair's forms).
  const bool neg = v.v.hi < 0;
  const Bounded t = exp_b(neg ? v : Bounded{DW{-v.v.hi, -v.v.lo}, v.e});
  if (!(t.e <= 0x1p-40)) return out;
  const DW d = dw::add(t.v, 1.0);
  const Bounded inv = recip({d, own(2, d) + t.e});
  const Bounded tq = mul(t, inv);  // e^-|v| / (1 + e^-|v|)
  const Bounded& s = neg ? tq : inv;
  const Bounded& oms = neg ? inv : tq;
  out.z = mul(v, s);
  const Bounded w = mul(v, oms);
  const DW w1 = dw::add(w.v, 1.0);
  out.grad = mul(s, Bounded{w1, own(2, w1) + w.e});
  // The bounds' own roundings (each a handful of double operations on positive terms).
  out.z.e *= 1 + 0x1p-40;
  out.grad.e *= 1 + 0x1p-40;
  out.ok = std::isfinite(out.z.e) && std::isfinite(out.grad.e);
  return out;
}

}  // namespace gnv::epilogue
