// The exact accumulators of the fast oracle path (oracles/superacc.h) against MPFR's exact sums:
// random values over the whole exponent range of their dtype, signs mixed, zeros and extremes,
// sums and sums of products, for SuperAcc alone and through NarrowAcc's bins.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "../oracles/exact.h"
#include "../oracles/superacc.h"

namespace gnv::exact {
namespace {

// A random finite value: random bits of f64, or of f32 widened (narrow = true).
double random_value(std::mt19937_64& rng, bool narrow) {
  for (;;) {
    const uint64_t b = rng();
    const double v = narrow ? static_cast<double>(std::bit_cast<float>(static_cast<uint32_t>(b))) : std::bit_cast<double>(b);
    if (std::isfinite(v)) return v;
  }
}

std::vector<double> values(std::mt19937_64& rng, bool narrow, int n) {
  std::vector<double> v;
  const double big = narrow ? std::numeric_limits<float>::max() : std::numeric_limits<double>::max();
  const double tiny = narrow ? std::numeric_limits<float>::denorm_min() : std::numeric_limits<double>::denorm_min();
  for (double e : {0.0, -0.0, big, -big, tiny, -tiny, 1.0}) v.push_back(e);
  while (static_cast<int>(v.size()) < n) v.push_back(random_value(rng, narrow));
  return v;
}

void exact_sum(Real& r, const std::vector<double>& a, const std::vector<double>* b) {
  std::vector<Real> terms(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    set_d(terms[i], a[i]);
    if (b) {
      Real y, p;
      set_d(y, (*b)[i]);
      mul(p, terms[i], y);
      assign(terms[i], p);
    }
  }
  sum(r, terms);
}

TEST(SuperAcc, ExactSumsAndProductsAgainstMpfr) {
  std::mt19937_64 rng(42);
  for (bool narrow : {false, true})
    for (int n : {1, 7, 300, 2000}) {
      const std::vector<double> a = values(rng, narrow, n), b = values(rng, narrow, n);
      const auto count = static_cast<int64_t>(a.size());  // the extremes come first: at least 7
      Real want_s, want_p, got_s, got_p;
      exact_sum(want_s, a, nullptr);
      exact_sum(want_p, a, &b);
      ExactSums sums(narrow, 1);
      sums.sum(count, [&](int64_t i) { return a[i]; }, P(got_s));
      sums.sum_products(count, [&](int64_t i) { return a[i]; }, [&](int64_t i) { return b[i]; }, P(got_p));
      EXPECT_EQ(mpfr_cmp(P(got_s), P(want_s)), 0) << "sum, narrow " << narrow << ", n " << n;
      EXPECT_EQ(mpfr_cmp(P(got_p), P(want_p)), 0) << "products, narrow " << narrow << ", n " << n;
      // Again with the same object: the bins and digits are cleared by each use.
      sums.sum(count, [&](int64_t i) { return a[i]; }, P(got_s));
      EXPECT_EQ(mpfr_cmp(P(got_s), P(want_s)), 0) << "reuse, narrow " << narrow << ", n " << n;
    }
}

// Cancellation to zero and to the lowest bit: x, -x, and the smallest subnormal.
TEST(SuperAcc, CancellationLeavesTheExactRemainder) {
  for (bool narrow : {false, true}) {
    const double tiny = narrow ? std::numeric_limits<float>::denorm_min() : std::numeric_limits<double>::denorm_min();
    const double big = narrow ? std::numeric_limits<float>::max() : std::numeric_limits<double>::max();
    std::vector<double> v;
    for (int i = 0; i < 400; ++i) v.push_back(i % 2 ? -big : big);
    v.push_back(tiny);
    ExactSums sums(narrow, 1);
    Real r;
    sums.sum(static_cast<int64_t>(v.size()), [&](int64_t i) { return v[i]; }, P(r));
    EXPECT_EQ(mpfr_get_d(P(r), MPFR_RNDN), tiny) << "narrow " << narrow;
  }
}

// to_doubles: v[0] + v[1] + v[2] within the tail of the exact sum (equal where the tail is 0),
// v[0] its nearest double, v[1] within half an ulp of v[0]; on values over the whole range (long
// sums, nonzero tails), on short sums of ordinary values (exact), and with either sign.
TEST(SuperAcc, ToDoublesBoundsTheExactSum) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> normal;
  int exact_ones = 0, with_tail = 0;
  for (int trial = 0; trial < 400; ++trial) {
    const bool narrow = trial % 2 != 0;
    std::vector<double> a;
    if (trial % 4 < 2) {
      a = values(rng, narrow, 20 + trial % 7);
    } else {
      for (int i = 0; i < 16; ++i) {
        const double v = normal(rng) * std::ldexp(1.0, trial % 50 - 25);
        a.push_back(narrow ? static_cast<double>(static_cast<float>(v)) : v);
      }
    }
    if (trial % 3 == 0) a.push_back(-1e6 * (trial % 5 == 0 ? -1.0 : 1.0));
    Real want;
    exact_sum(want, a, nullptr);
    for (bool products : {false, true}) {
      ExactSums sums(narrow, 1);
      const auto n = static_cast<int64_t>(a.size());
      auto at = [&](int64_t i) { return a[i]; };
      SuperAcc& acc = products ? sums.accumulate_products(n, at, at) : sums.accumulate(n, at);
      Real exact;
      if (products) exact_sum(exact, a, &a);
      else assign(exact, want);
      double v[3], tail;
      if (!acc.to_doubles(v, tail)) {
        // Only a sum beyond [2^-960, 2^960] may refuse.
        const double d = std::fabs(mpfr_get_d(P(exact), MPFR_RNDN));
        EXPECT_TRUE(d > 0x1p900 || d < 0x1p-900) << "trial " << trial;
        continue;
      }
      Real rest, t;
      mpfr_set_prec(P(rest), 4400);
      mpfr_set_prec(P(t), 4400);
      mpfr_set(P(rest), P(exact), MPFR_RNDN);
      for (double part : v) {
        mpfr_sub_d(P(t), P(rest), part, MPFR_RNDN);
        mpfr_swap(P(rest), P(t));
      }
      if (tail == 0) {
        ++exact_ones;
        EXPECT_EQ(mpfr_zero_p(P(rest)), 1) << "trial " << trial << " products " << products;
        EXPECT_EQ(v[0], mpfr_get_d(P(exact), MPFR_RNDN)) << "trial " << trial;
      } else {
        ++with_tail;
        mpfr_abs(P(rest), P(rest), MPFR_RNDN);
        EXPECT_LT(mpfr_cmp_d(P(rest), tail), 0) << "trial " << trial;
        EXPECT_LE(tail, 0x1p-94 * std::fabs(v[0])) << "trial " << trial;
      }
      EXPECT_LE(std::fabs(v[1]), 0.5 * (std::nextafter(std::fabs(v[0]), INFINITY) - std::fabs(v[0]))) << "trial " << trial;
    }
  }
  EXPECT_GT(exact_ones, 100);
  EXPECT_GT(with_tail, 50);
}

}  // namespace
}  // namespace gnv::exact
