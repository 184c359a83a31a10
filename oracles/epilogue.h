#pragma once
// The SiLU epilogue of the oracle (docs/numerics.md "Fused epilogues"): silu(v) = v / (1 + e^-v)
// of an exact v = A / sqrt(D) + B (A, B, D exact dyadic rationals, D > 0), and its derivative.
// e^-v is transcendental, so no finite computation decides a rounding exactly as squaring does
// for v itself: every quantity is evaluated as an interval that provably holds it (MPFI: outward
// rounding at every step) at growing precision until both ends of the interval round to the same
// value of the target dtype (Ziv's strategy). For v != 0, silu(v) is transcendental (Lindemann-
// Weierstrass: e^-v is transcendental for algebraic v != 0) and so never a rounding boundary:
// the loop ends for every input, and a value still undecided at kMaxBits is counted, not guessed.
#include <cstdint>
#include <mpfi.h>

#include "dw.h"
#include "exact.h"

namespace gnv::epilogue {

using exact::Real;

constexpr long kStartBits = 128;
constexpr long kMaxBits = 8192;

// An MPFI interval, owned.
class Interval {
 public:
  explicit Interval(long prec) { mpfi_init2(v_, prec); }
  ~Interval() { mpfi_clear(v_); }
  Interval(const Interval&) = delete;
  Interval& operator=(const Interval&) = delete;
  mpfi_ptr get() { return v_; }
  mpfi_srcptr get() const { return v_; }

 private:
  mpfi_t v_;
};

// r = 1 / sqrt(D) enclosed at r's precision (once per group: every element shares it).
void enclose_rsqrt(Interval& r, const Real& D);
// v = A r + B = A / sqrt(D) + B, enclosed at v's precision, from r = enclose_rsqrt(D) at the same.
void enclose(Interval& v, const Real& A, const Interval& r, const Real& B);
// silu(v) and silu'(v) = s (1 + v (1 - s)), s = 1 / (1 + e^-v), enclosed; each written so that
// no step overflows (e^v for negative v, e^-v for positive), so an interval of huge v stays tight.
void silu(Interval& out, const Interval& v);
void silu_grad(Interval& out, const Interval& v);
// Whether every value in iv rounds to the same value of d and to the same double, and the former's
// bits (an interval that is the point 0, [-0, +0], is an exact 0: +0).
bool rounds_to(DType d, const Interval& iv, uint64_t& bits);
// The midpoint, for the metrics' double-double of the exact value.
void midpoint(Real& out, const Interval& iv);
// Exactly: whether A / sqrt(D) + B = 0.
bool exact_zero(const Real& A, const Real& D, const Real& B);

// silu(A / sqrt(D) + B) correctly rounded to d; decided is false where kMaxBits did not decide
// it (bits is then the midpoint's rounding). v_abs and grad_abs approximate |v| and |silu'(v)|
// (for the condition scale).
struct SiluResult {
  uint64_t bits = 0;
  Real approx;
  double v_abs = 0, grad_abs = 0;
  bool decided = true;
};
// r0: 1/sqrt(D) enclosed at kStartBits (enclose_rsqrt), for the first and usually only step.
SiluResult silu_rounded(DType d, const Real& A, const Real& D, const Real& B, const Interval& r0);

// |silu'(v)| for the condition scales, from v's nearest double: the kernels' own formula
// (include/gnv/silu.h) in double, 1 and 0 at +Inf and -Inf. Both oracle paths use it.
double grad_abs(double v);

// The fast path's SiLU (docs/numerics.md "Fused epilogues"): from v (a double-word value within e
// of the exact v), silu(v) and silu'(v) in double-word arithmetic, each with an upward bound on its
// distance from the exact value. e^-|v| comes from a reduction by ln 2 (constants split over three
// doubles) and a degree-24 Taylor polynomial; the quotients from one Newton step. Every bound is
// computed alongside, from the dw.h constants (doubled), as in the fast GroupNorm path. ok is false
// where |v| > 600 (e^-|v| would leave the range these bounds assume) or e is not small; the caller
// then takes the intervals.
struct Bounded {
  dw::DW v;
  double e = 0;
};
struct FastSilu {
  bool ok = false;
  Bounded z, grad;
};
FastSilu silu_fast(Bounded v);

}  // namespace gnv::epilogue
