// The CPU driver's libm-free scalings (impls/kernel_common.h: scale2, ilogb2) give std::ldexp's and
// std::ilogb's results bit for bit, for float and double: normal, subnormal and huge values, and
// exponents that keep, underflow (rounding into the subnormals), flush or overflow the result.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

#include "../impls/kernel_common.h"

namespace gnv::cpu {
namespace {

template <class A, class U>
void check_against_libm() {
  std::mt19937_64 rng(5);
  int64_t checked = 0;
  for (int i = 0; i < 20000; ++i) {
    const A v = std::bit_cast<A>(static_cast<U>(rng()));  // every class of value, NaN and Inf included
    for (int k : {0, 1, -1, 3, -3, 40, -40, 126, -126, 127, -127, 149, -149, 150, -150, 1022, -1022, 1023, -1023, 1074,
                  -1074, 1075, -1075, 2000, -2000, static_cast<int>(rng() % 2400) - 1200}) {
      const A a = scale2(v, k), b = std::ldexp(v, k);
      if (std::isnan(b)) {
        EXPECT_TRUE(std::isnan(a));
      } else {
        EXPECT_EQ(std::bit_cast<U>(a), std::bit_cast<U>(b)) << v << " * 2^" << k;
      }
      ++checked;
    }
    if (std::isfinite(v) && v != 0) {
      EXPECT_EQ(ilogb2(v), std::ilogb(v)) << v;
    }
  }
  EXPECT_GT(checked, 500000);
}

TEST(KernelScale, Scale2AndIlogb2MatchLibmForFloat) { check_against_libm<float, uint32_t>(); }
TEST(KernelScale, Scale2AndIlogb2MatchLibmForDouble) { check_against_libm<double, uint64_t>(); }

}  // namespace
}  // namespace gnv::cpu
