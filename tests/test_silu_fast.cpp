// The fast path's double-word SiLU (oracles/epilogue.h, silu_fast) against MPFR at 400 bits: every
// bound holds for every exact v within the input's own bound, and the bounds are tight enough to
// certify roundings (about 2^-90 of the value, where it does not cancel).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "../oracles/epilogue.h"

namespace gnv::epilogue {
namespace {

using exact::P;

// silu(v) and silu'(v) for v = hi + lo + delta, at 400 bits.
void reference(double hi, double lo, double delta, Real& z, Real& g) {
  Real v, s, t;
  for (Real* r : {&v, &s, &t, &z, &g}) mpfr_set_prec(P(*r), 400);
  mpfr_set_d(P(v), hi, MPFR_RNDN);
  mpfr_add_d(P(v), P(v), lo, MPFR_RNDN);
  mpfr_add_d(P(v), P(v), delta, MPFR_RNDN);
  mpfr_neg(P(t), P(v), MPFR_RNDN);
  mpfr_exp(P(t), P(t), MPFR_RNDN);
  mpfr_add_ui(P(t), P(t), 1, MPFR_RNDN);
  mpfr_ui_div(P(s), 1, P(t), MPFR_RNDN);  // s = 1 / (1 + e^-v)
  mpfr_mul(P(z), P(v), P(s), MPFR_RNDN);
  mpfr_ui_sub(P(t), 1, P(s), MPFR_RNDN);  // 1 - s
  mpfr_mul(P(t), P(t), P(v), MPFR_RNDN);
  mpfr_add_ui(P(t), P(t), 1, MPFR_RNDN);
  mpfr_mul(P(g), P(s), P(t), MPFR_RNDN);
}

// |exact - (hi + lo)|, as a double rounded up.
double distance(const Real& exact, const dw::DW& d) {
  Real t;
  mpfr_set_prec(P(t), 400);
  mpfr_sub_d(P(t), P(exact), d.hi, MPFR_RNDN);
  mpfr_sub_d(P(t), P(t), d.lo, MPFR_RNDN);
  return std::fabs(mpfr_get_d(P(t), MPFR_RNDU));
}

std::vector<Bounded> inputs() {
  std::vector<Bounded> v;
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> wide(-600, 600), narrow(-4, 4), unit(-1, 1);
  auto dword = [&](double hi, double e) {  // hi plus a random low part below half its ulp
    const double lo = unit(rng) * std::ldexp(std::fabs(hi), -54);
    const dw::DW d = dw::fast_two_sum(hi, lo);
    return Bounded{d, e};
  };
  for (int i = 0; i < 2000; ++i) v.push_back(dword(wide(rng), 0));
  for (int i = 0; i < 2000; ++i) v.push_back(dword(narrow(rng), i % 2 ? 0 : std::ldexp(1.0, -100)));
  // silu's minimum and silu' = 0 (v = -1.2785), 0 and tiny values, the ends of the range.
  for (double c : {-1.2784645427610738, 0.0, 1e-300, -1e-300, 1e-9, -1e-9, 600.0, -600.0, 599.9, -599.9,
                   0.34657359027997264, -0.34657359027997264, 36.7, -36.7, 745.0})
    for (int i = 0; i < 20; ++i) v.push_back(dword(c + (c == 0 ? 0 : c * i * 1e-17), i % 3 ? 0 : 1e-90));
  return v;
}

TEST(SiluFast, BoundsHoldAgainstMpfr) {
  int64_t checked = 0, tight = 0, in_range = 0;
  for (const Bounded& in : inputs()) {
    const FastSilu f = silu_fast(in);
    if (std::fabs(in.v.hi) > 600) {
      EXPECT_FALSE(f.ok) << in.v.hi;  // outside the range its bounds assume
      continue;
    }
    ASSERT_TRUE(f.ok) << in.v.hi;
    ++in_range;
    for (double delta : {-in.e, 0.0, in.e}) {
      Real z, g;
      reference(in.v.hi, in.v.lo, delta, z, g);
      EXPECT_LE(distance(z, f.z.v), f.z.e) << "silu(" << in.v.hi << " + " << delta << ")";
      EXPECT_LE(distance(g, f.grad.v), f.grad.e) << "silu'(" << in.v.hi << " + " << delta << ")";
      ++checked;
    }
    // Tight where nothing cancels: within 2^-90 of |z| (v not tiny, input exact).
    if (in.e == 0 && std::fabs(in.v.hi) > 1e-3) tight += f.z.e <= 0x1p-90 * std::fabs(f.z.v.hi);
    else ++tight;
  }
  EXPECT_GT(checked, 12000);
  EXPECT_EQ(tight, in_range);
}

TEST(SiluFast, RefusesWhatItsBoundsDoNotCover) {
  EXPECT_FALSE(silu_fast({dw::DW{600.5, 0}, 0}).ok);
  EXPECT_FALSE(silu_fast({dw::DW{1.0, 0}, 1e-3}).ok);  // an input bound that is not small
  EXPECT_FALSE(silu_fast({dw::DW{std::nan(""), 0}, 0}).ok);
}

}  // namespace
}  // namespace gnv::epilogue
