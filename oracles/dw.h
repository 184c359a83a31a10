#pragma once
// Double-word ("double-double") arithmetic with the error bounds of Joldes, Muller and Popescu,
// "Tight and rigorous error bounds for basic building blocks of double-word arithmetic", ACM TOMS
// 44(2), 2017. A DW value is hi + lo with hi = RN(hi + lo). In the absence of underflow and
// overflow each operation's result z satisfies |z - exact| <= k u^2 |exact| (u = 2^-53), with
// k = 2 (DW + double, Algorithm 4), 3 (DW + DW, Algorithm 6), 2 (DW * double, Algorithm 9) and
// 5 (DW * DW, Algorithm 12); the fast oracle (groupnorm.cpp) uses twice these constants and keeps
// every operand far from underflow and overflow (docs/numerics.md "The fast path").
#include <cmath>

namespace gnv::dw {

struct DW {
  double hi = 0, lo = 0;
};

[[gnu::always_inline]] inline DW two_sum(double a, double b) {
  const double s = a + b;
  const double bb = s - a;
  return {s, (a - (s - bb)) + (b - bb)};
}
[[gnu::always_inline]] inline DW fast_two_sum(double a, double b) {  // |a| >= |b| or a == 0
  const double s = a + b;
  return {s, b - (s - a)};
}
[[gnu::always_inline]] inline DW two_prod(double a, double b) {
  const double p = a * b;
  return {p, std::fma(a, b, -p)};
}
[[gnu::always_inline]] inline DW add(DW x, double y) {  // Algorithm 4
  const DW s = two_sum(x.hi, y);
  return fast_two_sum(s.hi, x.lo + s.lo);
}
[[gnu::always_inline]] inline DW add(DW x, DW y) {  // Algorithm 6
  const DW s = two_sum(x.hi, y.hi), t = two_sum(x.lo, y.lo);
  const DW v = fast_two_sum(s.hi, s.lo + t.hi);
  return fast_two_sum(v.hi, t.lo + v.lo);
}
[[gnu::always_inline]] inline DW mul(DW x, double y) {  // Algorithm 9
  const DW c = two_prod(x.hi, y);
  return fast_two_sum(c.hi, std::fma(x.lo, y, c.lo));
}
[[gnu::always_inline]] inline DW mul(DW x, DW y) {  // Algorithm 12
  const DW c = two_prod(x.hi, y.hi);
  const double t = std::fma(x.hi, y.lo, x.lo * y.lo);
  return fast_two_sum(c.hi, c.lo + std::fma(x.lo, y.hi, t));
}

constexpr double kU2 = 0x1p-106;  // u^2

}  // namespace gnv::dw
