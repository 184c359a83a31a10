#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "gnv/stress.h"

using namespace gnv;

namespace {

Problem problem(DType d, Layout l = Layout::nchw, int64_t N = 2) {
  Problem p;
  p.N = N;
  p.C = 6;
  p.spatial = {4, 8};
  p.G = 3;
  p.dtype = d;
  p.layout = l;
  return p;
}

// Physical offsets of group (n, g): channels g*cpg.. and all spatial positions.
std::vector<int64_t> group(const Problem& p, int64_t n, int64_t g) {
  std::vector<int64_t> v;
  for (int64_t c = g * p.channels_per_group(); c < (g + 1) * p.channels_per_group(); ++c)
    for (int64_t s = 0; s < p.S(); ++s) v.push_back(p.index(n, c, s));
  return v;
}

struct Moments {
  double mean, sd;
};
Moments moments(const Tensor& t, const std::vector<int64_t>& idx) {
  double sum = 0, sq = 0;
  for (int64_t i : idx) sum += t.get(i);
  const double mean = sum / static_cast<double>(idx.size());
  for (int64_t i : idx) sq += (t.get(i) - mean) * (t.get(i) - mean);
  return {mean, std::sqrt(sq / static_cast<double>(idx.size()))};
}

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  for (int64_t i = 0; i < a.numel(); ++i)
    if (a.bits(i) != b.bits(i)) return false;
  return true;
}

uint64_t exponent_field(DType d, uint64_t bits) {
  const int mbits = info(d).precision - 1, ebits = info(d).bytes * 8 - 1 - mbits;
  return (bits >> mbits) & ((uint64_t{1} << ebits) - 1);
}

}  // namespace

TEST(Stress, NamesRoundTripThroughParse) {
  for (const Stress& s : default_stresses()) {
    const Stress back = parse_stress(s.name());
    EXPECT_EQ(back.kind, s.kind) << s.name();
    EXPECT_EQ(back.param, s.param) << s.name();
    EXPECT_EQ(back.name(), s.name());
  }
  const Stress odd{StressKind::offset, 1.2345678901234567};
  EXPECT_EQ(parse_stress(odd.name()).param, odd.param);
  EXPECT_EQ((Stress{StressKind::offset, 1e4}.name()), "offset:10000");
  EXPECT_EQ(parse_stress("offset:1e4").param, 10000.0);
  EXPECT_EQ(parse_stress("offset:10000").param, 10000.0);
  EXPECT_EQ(parse_stress("offset:1").param, 1.0);
  EXPECT_EQ(parse_stress("offset:1e8").param, 1e8);
  EXPECT_EQ(parse_stress("tiny-var").kind, StressKind::tiny_var);
  EXPECT_EQ(parse_stress("special").name(), "special");
  EXPECT_TRUE(parse_stress("special").has_specials());
  EXPECT_FALSE(parse_stress("huge").has_specials());
}

TEST(Stress, ParseErrorsListTheValidNames) {
  for (const char* bad : {"", "Normal", "tiny_var", "offset", "offset:", "offset:0.5", "offset:1e9",
                          "offset:abc", "offset:nan", "offset:inf", "offset:10x", "offset: 10",
                          "normal "}) {
    try {
      parse_stress(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const std::invalid_argument& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(std::string("'") + bad + "'"), std::string::npos) << msg;
      for (const char* n : {"normal", "offset:K", "tiny-var", "huge", "subnormal", "constant",
                            "outlier", "bimodal", "special"})
        EXPECT_NE(msg.find(n), std::string::npos) << msg;
    }
  }
}

TEST(Stress, DefaultListHasEveryClassAndEightOffsets) {
  const auto v = default_stresses();
  std::vector<std::string> names;
  for (const auto& s : v) names.push_back(s.name());
  EXPECT_EQ(names, (std::vector<std::string>{
                       "normal", "offset:10", "offset:100", "offset:1000", "offset:10000",
                       "offset:100000", "offset:1000000", "offset:10000000", "offset:100000000",
                       "tiny-var", "huge", "subnormal", "constant", "outlier", "bimodal", "special"}));
}

TEST(Stress, SameSeedSameBitsDifferentSeedDifferentBits) {
  for (DType d : kAllDTypes)
    for (const Stress& s : default_stresses()) {
      SCOPED_TRACE(std::string(name(d)) + " " + s.name());
      const Problem p = problem(d);
      const Tensor a = generate_x(p, s, 7);
      EXPECT_EQ(a.shape(), p.x_shape());
      EXPECT_EQ(a.dtype(), d);
      EXPECT_TRUE(same_bits(a, generate_x(p, s, 7)));
      // Once the ulp at K dwarfs N(0,1), every element rounds to K whatever the seed.
      const double K = d == DType::f16 ? std::min(s.param, 3e4) : s.param;
      if (s.kind == StressKind::offset && ulp_at(d, K) >= 8) continue;
      EXPECT_FALSE(same_bits(a, generate_x(p, s, 8)));
    }
}

TEST(Stress, GroupsDoNotDependOnBatchSizeOrLayout) {
  for (DType d : {DType::f32, DType::bf16})
    for (const Stress& s : default_stresses()) {
      SCOPED_TRACE(s.name());
      const Problem p1 = problem(d, Layout::nchw, 1), p3 = problem(d, Layout::nchw, 3);
      const Problem q3 = problem(d, Layout::nhwc, 3);
      const Tensor a = generate_x(p1, s, 99), b = generate_x(p3, s, 99), c = generate_x(q3, s, 99);
      for (int64_t ch = 0; ch < p1.C; ++ch)
        for (int64_t sp = 0; sp < p1.S(); ++sp) {
          ASSERT_EQ(a.bits(p1.index(0, ch, sp)), b.bits(p3.index(0, ch, sp)));
          for (int64_t n = 0; n < 3; ++n) ASSERT_EQ(b.bits(p3.index(n, ch, sp)), c.bits(q3.index(n, ch, sp)));
        }
      // dy follows the same rule.
      const Tensor dy1 = generate_dy(p1, 99), dy3 = generate_dy(q3, 99);
      for (int64_t ch = 0; ch < p1.C; ++ch)
        for (int64_t sp = 0; sp < p1.S(); ++sp) ASSERT_EQ(dy1.bits(p1.index(0, ch, sp)), dy3.bits(q3.index(0, ch, sp)));
    }
}

TEST(Stress, GeneratorIsPinned) {
  // Golden bits: any change to the streams, the transforms or the salts changes saved cases'
  // meaning, so it must be deliberate.
  Problem p = problem(DType::f64, Layout::nchw, 1);
  const Tensor dy = generate_dy(p, 42);
  const Tensor x = generate_x(p, parse_stress("normal"), 42);
  EXPECT_EQ(dy.bits(0), 0xbfd5ed562ec7a670u);  // -0.34261087959621417
  EXPECT_EQ(dy.bits(1), 0xbfe96d2670cdb95au);  // -0.7945739939876078
  EXPECT_EQ(x.bits(0), 0xbff00acc393aa998u);  // -1.0026361690057453
}

TEST(Stress, NormalTransformHasUnitMoments) {
  Problem p;
  p.N = 1;
  p.C = 1;
  p.spatial = {200000};
  p.dtype = DType::f64;
  const Tensor dy = generate_dy(p, 1);
  std::vector<int64_t> all(static_cast<size_t>(dy.numel()));
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
  const Moments m = moments(dy, all);
  EXPECT_NEAR(m.mean, 0, 0.01);
  EXPECT_NEAR(m.sd, 1, 0.01);
  int64_t beyond2 = 0;
  for (int64_t i : all) beyond2 += std::fabs(dy.get(i)) > 2;
  EXPECT_NEAR(static_cast<double>(beyond2) / static_cast<double>(all.size()), 0.0455, 0.003);
}

TEST(Stress, NormalGroupsHaveScaledUnitSpread) {
  const Problem p = problem(DType::f64);
  const Tensor x = generate_x(p, parse_stress("normal"), 3);
  std::set<double> sds;
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t g = 0; g < p.G; ++g) {
      const Moments m = moments(x, group(p, n, g));
      EXPECT_GT(m.sd, 0.25 * 0.7);
      EXPECT_LT(m.sd, 4 * 1.3);
      EXPECT_LT(std::fabs(m.mean), 4 * m.sd / std::sqrt(64.0));
      sds.insert(m.sd);
    }
  EXPECT_EQ(sds.size(), 6u);
}

TEST(Stress, OffsetGroupsSitAtK) {
  for (double K : {10.0, 1e4, 1e8}) {
    const Problem p = problem(DType::f64);
    const Tensor x = generate_x(p, Stress{StressKind::offset, K}, 5);
    for (int64_t g = 0; g < p.G; ++g) {
      const Moments m = moments(x, group(p, 1, g));
      EXPECT_NEAR(m.mean, K, 0.5) << K;
      EXPECT_NEAR(m.sd, 1, 0.3) << K;
    }
  }
  // f32 cannot keep a ratio of 1e8 inside the judged range: the spread widens to K*256*2^-24.
  {
    const Problem p = problem(DType::f32);
    const Tensor x = generate_x(p, Stress{StressKind::offset, 1e8}, 5);
    for (int64_t g = 0; g < p.G; ++g) {
      const Moments m = moments(x, group(p, 1, g));
      EXPECT_NEAR(m.sd / (1e8 * 256 * 0x1p-24), 1, 0.35);
      EXPECT_NEAR(m.mean / 1e8, 1, 1e-4);
    }
  }
  // f16 clamps the mean so the data stays finite.
  const Problem h = problem(DType::f16);
  const Tensor x = generate_x(h, parse_stress("offset:1e5"), 5);
  for (int64_t i = 0; i < x.numel(); ++i) {
    ASSERT_TRUE(std::isfinite(x.get(i)));
    ASSERT_NEAR(x.get(i), 3e4, 64 * 6);  // sd widens to 4 f16 ulps (64) next to 3e4
  }
}

TEST(Stress, TinyVarSpreadIsNearOrBelowEps) {
  Problem p = problem(DType::f64);
  p.eps = 1e-4;
  const Tensor x = generate_x(p, parse_stress("tiny-var"), 2);
  for (int64_t g = 0; g < p.G; ++g) {
    const Moments m = moments(x, group(p, 0, g));
    EXPECT_NEAR(m.mean, 1, m.sd);  // 8 standard errors of a 64-element mean
    EXPECT_GT(m.sd, 0);
    EXPECT_LT(m.sd, std::sqrt(p.eps) * 4 * 1.5);
    EXPECT_GT(m.sd, std::sqrt(p.eps) / 256 * 0.5);
  }
  p.eps = 0;
  const Tensor z = generate_x(p, parse_stress("tiny-var"), 2);
  for (int64_t g = 0; g < p.G; ++g) {
    const Moments m = moments(z, group(p, 0, g));
    EXPECT_GT(m.sd, std::ldexp(0.5, -20));
    EXPECT_LT(m.sd, std::ldexp(1.5, -10));
  }
}

TEST(Stress, HugeSpansTheFiniteRange) {
  Problem p = problem(DType::f32);
  p.spatial = {64, 16};
  const Tensor x = generate_x(p, parse_stress("huge"), 4);
  int lo = 1000, hi = -1000;
  bool neg = false, pos = false;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double v = x.get(i);
    ASSERT_TRUE(std::isfinite(v));
    ASSERT_GE(std::fabs(v), info(DType::f32).min_normal);
    lo = std::min(lo, std::ilogb(v));
    hi = std::max(hi, std::ilogb(v));
    (v < 0 ? neg : pos) = true;
  }
  EXPECT_GT(hi - lo, 200);
  EXPECT_TRUE(neg && pos);
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t g = 0; g < p.G; ++g) {
      double biggest = 0;
      for (int64_t i : group(p, n, g)) biggest = std::max(biggest, std::fabs(x.get(i)));
      EXPECT_GE(biggest, info(DType::f32).max_finite / 4);
    }
  for (DType d : {DType::f16, DType::bf16, DType::f64}) {
    const Tensor y = generate_x(problem(d), parse_stress("huge"), 4);
    for (int64_t i = 0; i < y.numel(); ++i) ASSERT_TRUE(std::isfinite(y.get(i))) << name(d);
  }
}

TEST(Stress, SubnormalIsAllSubnormal) {
  for (DType d : kAllDTypes) {
    const Tensor x = generate_x(problem(d), parse_stress("subnormal"), 6);
    std::set<uint64_t> distinct;
    bool neg = false;
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double v = x.get(i);
      ASSERT_EQ(exponent_field(d, x.bits(i)), 0u) << name(d);
      ASSERT_NE(v, 0.0) << name(d);
      ASSERT_LT(std::fabs(v), info(d).min_normal) << name(d);
      neg |= v < 0;
      distinct.insert(x.bits(i));
    }
    EXPECT_TRUE(neg);
    EXPECT_GT(distinct.size(), 50u) << name(d);
  }
}

TEST(Stress, ConstantGroupsAreConstant) {
  const Problem p = problem(DType::f32);
  const Tensor x = generate_x(p, parse_stress("constant"), 8);
  std::set<uint64_t> values;
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t g = 0; g < p.G; ++g) {
      const auto idx = group(p, n, g);
      for (int64_t i : idx) ASSERT_EQ(x.bits(i), x.bits(idx[0]));
      values.insert(x.bits(idx[0]));
    }
  EXPECT_EQ(values.size(), 6u);
}

TEST(Stress, OutlierIsNormalWithOneElementScaled) {
  for (DType d : {DType::f64, DType::f16}) {
    const Problem p = problem(d);
    const double factor = d == DType::f16 ? 1e2 : 1e4;
    const Tensor base = generate_x(p, parse_stress("normal"), 9);
    const Tensor x = generate_x(p, parse_stress("outlier"), 9);
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t g = 0; g < p.G; ++g) {
        int changed = 0;
        for (int64_t i : group(p, n, g))
          if (x.bits(i) != base.bits(i)) {
            ++changed;
            EXPECT_NEAR(x.get(i), base.get(i) * factor, std::fabs(base.get(i) * factor) * 1e-3);
          }
        EXPECT_EQ(changed, 1);
      }
  }
}

TEST(Stress, BimodalHasTwoTightModes) {
  const Problem p = problem(DType::f32);
  const Tensor x = generate_x(p, parse_stress("bimodal"), 10);
  int neg = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    ASSERT_NEAR(std::fabs(x.get(i)), 3, 0.06);
    neg += x.get(i) < 0;
  }
  EXPECT_GT(neg, x.numel() / 4);
  EXPECT_LT(neg, x.numel() * 3 / 4);
}

TEST(Stress, SpecialPutsNanAndInfOnlyInEveryThirdGroup) {
  for (DType d : kAllDTypes) {
    SCOPED_TRACE(std::string(name(d)));
    Problem p = problem(d);
    p.G = 6;
    const Tensor x = generate_x(p, parse_stress("special"), 11);
    bool nan = false, pinf = false, ninf = false;
    const int mbits = info(d).precision - 1;
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t g = 0; g < p.G; ++g) {
        int nonfinite = 0, negzero = 0;
        for (int64_t i : group(p, n, g)) {
          const double v = x.get(i);
          if (std::isnan(v)) {
            nan = true;
            // Canonical quiet NaN: only the top mantissa bit set.
            EXPECT_EQ(x.bits(i), (exponent_field(d, ~uint64_t{0}) << mbits) | (uint64_t{1} << (mbits - 1)));
          }
          if (v == INFINITY) pinf = true;
          if (v == -INFINITY) ninf = true;
          nonfinite += !std::isfinite(v);
          negzero += v == 0 && std::signbit(v);
        }
        if ((n * p.G + g) % 3 == 0) {
          EXPECT_GE(nonfinite, 1) << n << "," << g;
          EXPECT_LE(nonfinite, 3);
        } else {
          EXPECT_EQ(nonfinite, 0) << n << "," << g;
          EXPECT_GE(negzero, 1) << n << "," << g;
        }
      }
    EXPECT_TRUE(nan && pinf && ninf);
  }
}

TEST(Stress, NeverProducesThePoisonPattern) {
  for (DType d : kAllDTypes)
    for (const Stress& s : default_stresses()) {
      Problem p = problem(d);
      p.G = 6;
      const Tensor x = generate_x(p, s, 12);
      for (int64_t i = 0; i < x.numel(); ++i) ASSERT_NE(x.bits(i), poison_bits(d)) << s.name();
      if (s.has_specials()) continue;
      for (int64_t i = 0; i < x.numel(); ++i) ASSERT_TRUE(std::isfinite(x.get(i))) << s.name() << name(d);
    }
}

TEST(Stress, GammaBetaDy) {
  Problem p = problem(DType::f64);
  p.C = 3000;
  p.G = 1;
  p.spatial = {};
  const Tensor gamma = generate_gamma(p, 1), beta = generate_beta(p, 1);
  ASSERT_EQ(gamma.shape(), std::vector<int64_t>{3000});
  ASSERT_EQ(beta.shape(), std::vector<int64_t>{3000});
  EXPECT_EQ(gamma.get(0), 0.0);
  EXPECT_LT(gamma.get(1), 0.0);
  std::vector<int64_t> rest;
  for (int64_t c = 2; c < p.C; ++c) rest.push_back(c);
  const Moments g = moments(gamma, rest), b = moments(beta, rest);
  EXPECT_NEAR(g.mean, 1, 0.05);
  EXPECT_NEAR(g.sd, 0.5, 0.05);
  EXPECT_NEAR(b.mean, 0, 0.05);
  EXPECT_NEAR(b.sd, 0.5, 0.05);
  EXPECT_FALSE(same_bits(gamma, beta));

  Problem small = problem(DType::bf16, Layout::nhwc);
  small.C = 2;
  small.G = 1;
  const Tensor g2 = generate_gamma(small, 1);
  EXPECT_EQ(g2.dtype(), DType::bf16);
  EXPECT_NE(g2.get(0), 0.0);  // no forced zero below C = 3
  const Tensor dy = generate_dy(small, 1);
  EXPECT_EQ(dy.shape(), small.x_shape());
  EXPECT_FALSE(same_bits(dy, generate_dy(small, 2)));
}

TEST(Stress, InvalidProblemIsRejected) {
  Problem p = problem(DType::f32);
  p.G = 4;
  EXPECT_THROW(generate_x(p, parse_stress("normal"), 1), InvalidProblem);
}

TEST(Stress, EmptyBatchGivesEmptyTensor) {
  const Problem p = problem(DType::f16, Layout::nchw, 0);
  const Tensor x = generate_x(p, parse_stress("special"), 1);
  EXPECT_EQ(x.numel(), 0);
  EXPECT_EQ(x.shape(), p.x_shape());
}
