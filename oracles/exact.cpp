#include "exact.h"

#include "superacc.h"

#include <gmpxx.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace gnv::exact {

namespace {

// Exponent of the lowest bit an MPFR number can hold (its value is a multiple of 2^lsb).
long lsb(mpfr_srcptr x) { return static_cast<long>(mpfr_get_exp(x)) - static_cast<long>(mpfr_get_prec(x)); }
long top(mpfr_srcptr x) { return static_cast<long>(mpfr_get_exp(x)); }  // |x| < 2^top

void check_exact(int ternary, const char* what) {
  // A non-zero ternary value means MPFR rounded: the precision rule above is wrong. Never
  // hand out a silently inexact "exact" value.
  if (ternary != 0) throw std::logic_error(std::string("exact arithmetic rounded in ") + what);
}

}  // namespace

void assign(Real& r, const Real& a) {
  mpfr_set_prec(P(r), mpfr_get_prec(P(a)));
  mpfr_set(P(r), P(a), MPFR_RNDN);
}

namespace {

// Round-to-odd from an MPFR value to double. 53 bits >= 24 + 2, and double's subnormal grid
// is far finer than float's, so a later RNE to f32/f16/bf16 is the correct rounding of x.
double double_odd(mpfr_srcptr x) {
  double d = mpfr_get_d(x, MPFR_RNDZ);
  if (mpfr_cmp_d(x, d) == 0) return d;
  auto b = std::bit_cast<uint64_t>(d);
  return std::bit_cast<double>(b | 1u);
}

uint64_t bits_from_ordinal(DType d, int64_t ord) {
  const uint64_t sign = uint64_t{1} << (info(d).bytes * 8 - 1);
  return ord >= 0 ? static_cast<uint64_t>(ord) : (sign | static_cast<uint64_t>(-ord));
}

// The exact value of a finite dtype element; the first value past max_finite stands in for
// +-Inf, so the midpoint between max and "Inf" is the overflow threshold of rounding to nearest.
void value_of(Real& r, DType d, uint64_t bits) {
  const double v = bits_to_double(d, bits);
  if (std::isinf(v)) {  // +-2^(max_exp+1), set in MPFR: for f64 it is no double (2^1024)
    mpfr_set_prec(P(r), 53);
    mpfr_set_si_2exp(P(r), v > 0 ? 1 : -1, info(d).max_exp + 1, MPFR_RNDN);
    return;
  }
  set_d(r, v);
}

void midpoint(Real& r, DType d, uint64_t a, uint64_t b) {
  Real va, vb;
  value_of(va, d, a);
  value_of(vb, d, b);
  add(r, va, vb);
  mpfr_div_2ui(P(r), P(r), 1, MPFR_RNDN);  // exact: binary exponent shift
}

}  // namespace

void set_d(Real& r, double v) {
  mpfr_set_prec(P(r), 53);
  mpfr_set_d(P(r), v, MPFR_RNDN);
}

// Inf or NaN operands (a reference handed non-finite data) have no bits to span: the result is
// Inf or NaN, at any precision.
static bool special(mpfr_srcptr a, mpfr_srcptr b) { return !mpfr_number_p(a) || !mpfr_number_p(b); }

void add(Real& r, const Real& a, const Real& b) {
  if (special(P(a), P(b))) {
    mpfr_set_prec(P(r), 53);
    mpfr_add(P(r), P(a), P(b), MPFR_RNDN);
    return;
  }
  if (mpfr_zero_p(P(a))) return assign(r, b);
  if (mpfr_zero_p(P(b))) return assign(r, a);
  long hi = std::max(top(P(a)), top(P(b))) + 1;
  long lo = std::min(lsb(P(a)), lsb(P(b)));
  mpfr_set_prec(P(r), std::max<long>(hi - lo, MPFR_PREC_MIN));
  check_exact(mpfr_add(P(r), P(a), P(b), MPFR_RNDN), "add");
}

void sub(Real& r, const Real& a, const Real& b) {
  if (special(P(a), P(b))) {
    mpfr_set_prec(P(r), 53);
    mpfr_sub(P(r), P(a), P(b), MPFR_RNDN);
    return;
  }
  if (mpfr_zero_p(P(b))) return assign(r, a);
  if (mpfr_zero_p(P(a))) {
    assign(r, b);
    mpfr_neg(P(r), P(r), MPFR_RNDN);
    return;
  }
  long hi = std::max(top(P(a)), top(P(b))) + 1;
  long lo = std::min(lsb(P(a)), lsb(P(b)));
  mpfr_set_prec(P(r), std::max<long>(hi - lo, MPFR_PREC_MIN));
  check_exact(mpfr_sub(P(r), P(a), P(b), MPFR_RNDN), "sub");
}

void mul(Real& r, const Real& a, const Real& b) {
  mpfr_set_prec(P(r), mpfr_get_prec(P(a)) + mpfr_get_prec(P(b)));
  check_exact(mpfr_mul(P(r), P(a), P(b), MPFR_RNDN), "mul");
}

void mul_si(Real& r, const Real& a, int64_t k) {
  mpfr_set_prec(P(r), mpfr_get_prec(P(a)) + 64);
  check_exact(mpfr_mul_si(P(r), P(a), static_cast<long>(k), MPFR_RNDN), "mul_si");
}

void sum(Real& r, const std::vector<const Real*>& v) {
  std::vector<mpfr_ptr> ptrs;
  long hi = LONG_MIN, lo = LONG_MAX;
  bool nonfinite = false;
  for (const Real* x : v) {
    if (!mpfr_number_p(P(*x))) nonfinite = true;
    if (mpfr_zero_p(P(*x)) || nonfinite) continue;
    hi = std::max(hi, top(P(*x)));
    lo = std::min(lo, lsb(P(*x)));
    ptrs.push_back(const_cast<mpfr_ptr>(P(*x)));
  }
  if (nonfinite) {
    std::vector<mpfr_ptr> all;
    for (const Real* x : v) all.push_back(const_cast<mpfr_ptr>(P(*x)));
    mpfr_set_prec(P(r), 53);
    mpfr_sum(P(r), all.data(), all.size(), MPFR_RNDN);
    return;
  }
  if (ptrs.empty()) {
    mpfr_set_prec(P(r), 53);
    mpfr_set_zero(P(r), 1);
    return;
  }
  long guard = 2 + static_cast<long>(std::bit_width(ptrs.size()));
  mpfr_set_prec(P(r), std::max<long>(hi - lo + guard, MPFR_PREC_MIN));
  check_exact(mpfr_sum(P(r), ptrs.data(), ptrs.size(), MPFR_RNDN), "sum");
}

void sum(Real& r, const std::vector<Real>& v) {
  std::vector<const Real*> p;
  p.reserve(v.size());
  for (const Real& x : v) p.push_back(&x);
  sum(r, p);
}

void div_si_odd(Real& r, const Real& a, int64_t k, long prec) {
  mpfr_set_prec(P(r), prec);
  if (mpfr_div_si(P(r), P(a), static_cast<long>(k), MPFR_RNDZ) != 0) {
    // Truncated and inexact: the odd neighbour is the one away from zero when the last bit is 0.
    mpz_t m;
    mpz_init(m);
    mpfr_exp_t e = mpfr_get_z_2exp(m, P(r));
    if (mpz_even_p(m)) {
      if (mpz_sgn(m) > 0) mpz_add_ui(m, m, 1);
      else mpz_sub_ui(m, m, 1);
    }
    mpfr_set_z_2exp(P(r), m, e, MPFR_RNDN);
    mpz_clear(m);
  }
}

uint64_t quiet_nan_bits(DType d) {
  switch (d) {
    case DType::f64: return 0x7FF8000000000000ull;
    case DType::f32: return 0x7FC00000u;
    case DType::f16: return 0x7E00u;
    case DType::bf16: return 0x7FC0u;
  }
  return 0;
}

uint64_t round_to(DType d, const Real& v) {
  mpfr_srcptr x = P(v);
  if (mpfr_nan_p(x)) return quiet_nan_bits(d);
  if (d == DType::f64) return std::bit_cast<uint64_t>(mpfr_get_d(x, MPFR_RNDN));
  return round_double(d, double_odd(x));
}

void SuperAcc::throw_inexact() { throw std::logic_error("exact arithmetic rounded in SuperAcc::to_mpfr"); }

void to_double_double(const Real& v, double& hi, double& lo) {
  hi = mpfr_get_d(P(v), MPFR_RNDN);
  lo = 0;
  if (std::isnan(hi) || mpfr_inf_p(P(v))) return;
  Real rest;
  mpfr_set_prec(P(rest), mpfr_get_prec(P(v)) + 64);
  if (std::isinf(hi)) {
    // A finite v past double's overflow threshold: hi = +-Inf stands for +-2^1024, the first
    // value past max, and lo = v - (+-2^1024), so that the metrics still see how far a finite
    // result near the threshold is from v (lo is +-Inf only where v is 2^1025 or more).
    Real past;
    mpfr_set_prec(P(past), 2);
    mpfr_set_si_2exp(P(past), mpfr_sgn(P(v)), std::numeric_limits<double>::max_exponent, MPFR_RNDN);
    mpfr_sub(P(rest), P(v), P(past), MPFR_RNDN);
  } else {
    mpfr_sub_d(P(rest), P(v), hi, MPFR_RNDN);
  }
  lo = mpfr_get_d(P(rest), MPFR_RNDN);
}

int sign_a_over_sqrt_minus_w(const Real& A, const Real& D, const Real& W) {
  const int sa = mpfr_sgn(P(A)), sw = mpfr_sgn(P(W));
  if (sa == 0) return -sw;
  if (sa > 0 && sw <= 0) return 1;
  if (sa < 0 && sw >= 0) return -1;
  // Same sign: A - W*sqrt(D) has the sign of A^2 - W^2 D for positive A, the opposite for negative.
  Real a2, w2, w2d;
  mul(a2, A, A);
  mul(w2, W, W);
  mul(w2d, w2, D);
  const int c = mpfr_cmp(P(a2), P(w2d));
  const int s = (c > 0) - (c < 0);
  return sa > 0 ? s : -s;
}

uint64_t round_certified(DType d, const Real& approx, const Real& err, const Real& A,
                         const Real& K, const Real& D, const Real& B) {
  Real lo, hi;
  const mpfr_prec_t p = mpfr_get_prec(P(approx)) + 8;
  mpfr_set_prec(P(lo), p);
  mpfr_set_prec(P(hi), p);
  mpfr_sub(P(lo), P(approx), P(err), MPFR_RNDD);
  mpfr_add(P(hi), P(approx), P(err), MPFR_RNDU);
  const uint64_t c_lo = round_to(d, lo), c_hi = round_to(d, hi);
  if (c_lo == c_hi) return c_lo;

  // The interval holds a rounding boundary: decide exactly. v - M = A/(K sqrt D) + B - M has
  // the sign of A/sqrt(D) - (M - B) K.
  auto side = [&](const Real& M) {
    Real mb, w;
    sub(mb, M, B);
    mul(w, mb, K);
    return sign_a_over_sqrt_minus_w(A, D, w);
  };
  // ordinal() gives -0 and +0 the same value, so the steps below find +0 for any zero: a negative v
  // that rounds to zero (beyond half the smallest subnormal, or exactly there: a tie, to the even
  // 0) is -0. An exact 0 stays +0.
  auto signed_zero = [&](uint64_t b) {
    if (ordinal(d, b) != 0) return b;
    Real zero;
    set_d(zero, 0.0);
    return side(zero) < 0 ? uint64_t{1} << (info(d).bytes * 8 - 1) : uint64_t{0};
  };
  // The interval can span many values of d (a result at or near zero, where the error bound is
  // absolute): bisect the ordinals between its two roundings with the exact test first, so the
  // walk below only has the last step or two to make.
  int64_t o_lo = ordinal(d, c_lo), o_hi = ordinal(d, c_hi);
  // Unsigned: from -Inf to +Inf (an error bound that overflowed double) the span exceeds int64.
  auto span = [&] { return static_cast<uint64_t>(o_hi) - static_cast<uint64_t>(o_lo); };
  while (o_lo < o_hi && span() > 1) {
    const int64_t mid = o_lo + static_cast<int64_t>(span() / 2);
    const uint64_t b_mid = bits_from_ordinal(d, mid), b_next = bits_from_ordinal(d, mid + 1);
    Real m;
    midpoint(m, d, b_mid, b_next);
    const int s = side(m);
    if (s == 0) return signed_zero((b_mid & 1) == 0 ? b_mid : b_next);
    if (s > 0) o_lo = mid + 1;
    else o_hi = mid;
  }
  uint64_t cand = bits_from_ordinal(d, o_lo);
  for (int step = 0; step < 64; ++step) {
    const int64_t o = ordinal(d, cand);
    const bool is_inf = std::isinf(bits_to_double(d, cand));
    const uint64_t below = bits_from_ordinal(d, o - 1), above = bits_from_ordinal(d, o + 1);
    Real m_lo, m_hi;
    const bool neg_inf = is_inf && o < 0, pos_inf = is_inf && o > 0;
    if (!neg_inf) midpoint(m_lo, d, below, cand);
    if (!pos_inf) midpoint(m_hi, d, cand, above);
    const int s_lo = neg_inf ? 1 : side(m_lo);
    const int s_hi = pos_inf ? -1 : side(m_hi);
    if (s_lo < 0) { cand = below; continue; }
    if (s_hi > 0) { cand = above; continue; }
    // Ties go to the neighbour with an even last bit (IEEE round-half-even; Inf counts as even).
    if (s_lo == 0) return signed_zero((below & 1) == 0 ? below : cand);
    if (s_hi == 0) return signed_zero((above & 1) == 0 ? above : cand);
    return signed_zero(cand);
  }
  throw std::logic_error("round_certified did not converge");
}

}  // namespace gnv::exact

namespace gnv::exact {
namespace {

// x exactly (x finite), as a GMP rational.
mpq_class to_q(const Real& x) {
  mpz_class m;
  const mpfr_exp_t e = mpfr_get_z_2exp(m.get_mpz_t(), P(x));
  mpq_class q(m);
  if (e > 0) mpq_mul_2exp(q.get_mpq_t(), q.get_mpq_t(), static_cast<mp_bitcnt_t>(e));
  if (e < 0) mpq_div_2exp(q.get_mpq_t(), q.get_mpq_t(), static_cast<mp_bitcnt_t>(-e));
  return q;
}

// sqrt(q) where q >= 0 is the square of a rational; nullopt where it is not.
std::optional<mpq_class> rational_sqrt(const mpq_class& q) {
  if (!mpz_perfect_square_p(q.get_num_mpz_t()) || !mpz_perfect_square_p(q.get_den_mpz_t())) return std::nullopt;
  return mpq_class(mpz_class(sqrt(q.get_num())), mpz_class(sqrt(q.get_den())));  // coprime: canonical
}

void z_to_real(const mpz_class& z, Real& r) {
  mpfr_set_prec(P(r), std::max<mpfr_prec_t>(static_cast<mpfr_prec_t>(mpz_sizeinbase(z.get_mpz_t(), 2)), 2));
  mpfr_set_z(P(r), z.get_mpz_t(), MPFR_RNDN);  // exact at that precision
}

}  // namespace

std::optional<uint64_t> round_sum_over_sqrts(DType d, const Real& approx, const Real& err,
                                             const std::vector<const Real*>& U,
                                             const std::vector<const Real*>& D) {
  std::vector<mpq_class> dq;
  for (const Real* v : D) dq.push_back(to_q(*v));
  // Per class, its representative k and T_k = sum U_n sqrt(D_n D_k) / D_n (= sqrt(D_k) times its
  // terms' sum).
  std::vector<size_t> rep;
  std::vector<mpq_class> T;
  for (size_t i = 0; i < U.size(); ++i) {
    const mpq_class u = to_q(*U[i]);
    if (sgn(u) == 0) continue;
    std::optional<mpq_class> root;
    size_t c = 0;
    while (c < rep.size() && !(root = rational_sqrt(dq[i] * dq[rep[c]]))) ++c;
    if (c == rep.size()) {
      rep.push_back(i);
      T.emplace_back(0);
      root = dq[i];  // sqrt(D_i D_i)
    }
    T[c] += u * *root / dq[i];
  }
  size_t live = 0, k = 0;
  for (size_t c = 0; c < rep.size(); ++c)
    if (sgn(T[c]) != 0) ++live, k = c;
  if (live == 0) return uint64_t{0};  // exactly 0: +0
  if (live > 1) return std::nullopt;
  Real A, K, B;
  z_to_real(T[k].get_num(), A);
  z_to_real(T[k].get_den(), K);  // > 0
  set_d(B, 0.0);
  return round_certified(d, approx, err, A, K, *D[rep[k]], B);
}

}  // namespace gnv::exact
