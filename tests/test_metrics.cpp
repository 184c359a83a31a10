// Metric edge cases: the distances and the verdict logic, on hand-made exact outputs.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "gnv/metrics.h"

namespace gnv {
namespace {

ExactOutput exact_of(DType d, std::vector<double> vals, double scale = 1.0, int64_t L = 1) {
  ExactOutput e;
  e.name = "y";
  e.rounded = Tensor(d, {static_cast<int64_t>(vals.size())});
  for (size_t i = 0; i < vals.size(); ++i) {
    e.rounded.set(static_cast<int64_t>(i), vals[i]);
    e.hi.push_back(vals[i]);
    e.lo.push_back(0);
    e.scale.push_back(scale);
    e.kappa.push_back(1.0);
  }
  e.reduction_length = L;
  return e;
}

Tensor tensor_of(DType d, std::vector<double> vals) {
  Tensor t(d, {static_cast<int64_t>(vals.size())});
  for (size_t i = 0; i < vals.size(); ++i) t.set(static_cast<int64_t>(i), vals[i]);
  return t;
}

TEST(Metrics, BudgetGrowsWithLog2OfTheReduction) {
  EXPECT_EQ(budget_for(1), 4.0);
  EXPECT_EQ(budget_for(1024), 24.0);
  EXPECT_EQ(budget_for(0), 4.0);
  EXPECT_EQ(budget_for(65536, BudgetProfile::sequential), 4.0 + 16.0 * 256);
  EXPECT_EQ(budget_for(1, BudgetProfile::sequential), 20.0);
  for (int64_t L : {2, 64, 4096, 65536})
    EXPECT_GT(budget_for(L, BudgetProfile::sequential), budget_for(L)) << "pairwise is the strictest";
  EXPECT_EQ(parse_budget_profile("sequential"), BudgetProfile::sequential);
  EXPECT_THROW(parse_budget_profile("loose"), std::invalid_argument);
}

TEST(Metrics, IdenticalIsZero) {
  const ExactOutput e = exact_of(DType::f32, {1.0, -2.5, 0.0});
  const OutputMetrics m = measure(tensor_of(DType::f32, {1.0, -2.5, 0.0}), e);
  EXPECT_EQ(m.max_ulp, 0);
  EXPECT_EQ(m.max_cond_err, 0);
  EXPECT_EQ(m.normwise, 0);
  EXPECT_EQ(m.verdict, Verdict::pass);
}

TEST(Metrics, SignedZerosAreEqualAndUlpsCrossZero) {
  const ExactOutput e = exact_of(DType::f32, {0.0, -0x1p-149});
  Tensor a = tensor_of(DType::f32, {-0.0, 0x1p-149});
  const OutputMetrics m = measure(a, e);
  EXPECT_EQ(m.max_ulp, 2);  // -min_subnormal to +min_subnormal is two steps
  EXPECT_EQ(m.worst_index, 1);
}

TEST(Metrics, ConditionScaledErrorFormula) {
  // f32, exact 1.0, scale 1: denominator u*1 + ulp(1)/2 = 2^-24 + 2^-24 = 2^-23.
  const ExactOutput e = exact_of(DType::f32, {1.0});
  const OutputMetrics m = measure(tensor_of(DType::f32, {1.0 + 0x1p-20}), e);
  EXPECT_DOUBLE_EQ(m.max_cond_err, 8.0);
  EXPECT_EQ(m.max_ulp, 8);
  EXPECT_DOUBLE_EQ(m.max_u_err, 0x1p-20 / 0x1p-24);
  EXPECT_EQ(m.verdict, Verdict::fail);  // 8 > budget 4 for L = 1
  const OutputMetrics ok = measure(tensor_of(DType::f32, {1.0 + 0x1p-22}), e);
  EXPECT_DOUBLE_EQ(ok.max_cond_err, 2.0);
  EXPECT_EQ(ok.verdict, Verdict::pass);
}

TEST(Metrics, LowPrecisionOutputsAllowHalfAnUlpOfStorage) {
  // f16 output of an exact value at a midpoint: half an f16 ulp is the unavoidable error.
  ExactOutput e = exact_of(DType::f16, {1.0});
  e.hi[0] = 1.0 + 0x1p-11;  // exact value: the midpoint between 1 and 1 + 2^-10
  // The kernel returns the other neighbour (a result equal to the correctly rounded one counts
  // as exact): its error is half an f16 ulp.
  const OutputMetrics m = measure(tensor_of(DType::f16, {1.0 + 0x1p-10}), e);
  EXPECT_LT(m.max_cond_err, 1.0);
  EXPECT_GT(m.max_cond_err, 0.99);
  // An f16 kernel off by 3 ulps fails even with a big condition scale: the scale is in units of
  // the f32 accumulator's roundoff, not f16's.
  ExactOutput e2 = exact_of(DType::f16, {1.0}, 4.0);
  const OutputMetrics m2 = measure(tensor_of(DType::f16, {1.0 + 3 * 0x1p-10}), e2);
  EXPECT_GT(m2.max_cond_err, 4.0);
  EXPECT_EQ(m2.verdict, Verdict::fail);
}

TEST(Metrics, NaNWhereFiniteIsAPolicyViolation) {
  const ExactOutput e = exact_of(DType::f64, {1.0, 2.0});
  const OutputMetrics m = measure(tensor_of(DType::f64, {1.0, NAN}), e);
  EXPECT_EQ(m.policy_violations, 1);
  EXPECT_TRUE(std::isinf(m.max_ulp));
  EXPECT_EQ(m.verdict, Verdict::fail);
}

TEST(Metrics, InfWhereFiniteIsInfiniteError) {
  // Inf counts as the first value past max (2^128 for f32): far from 1, a huge error.
  const ExactOutput e = exact_of(DType::f32, {1.0});
  const OutputMetrics m = measure(tensor_of(DType::f32, {INFINITY}), e);
  EXPECT_GT(m.max_cond_err, 1e30);
  EXPECT_EQ(m.verdict, Verdict::fail);
}

TEST(Metrics, InfNextToTheOverflowThresholdIsWithinBudget) {
  // An exact value just below max + ulp/2 rounds to max; a kernel whose error is within its
  // allowance (here u * S with S = |y|) may round it to Inf instead.
  const double max = std::numeric_limits<float>::max();
  const ExactOutput e = exact_of(DType::f32, {max}, max);
  EXPECT_EQ(measure(tensor_of(DType::f32, {INFINITY}), e).verdict, Verdict::pass);
  EXPECT_EQ(measure(tensor_of(DType::f32, {-INFINITY}), e).verdict, Verdict::fail);
}

TEST(Metrics, FiniteNextToAnExactValuePastDoublesRangeIsWithinBudget) {
  // An exact f64 sum v = 2^1024 + 2^970 = max + 1.5 * 2^971 (not a double) rounds to Inf; the
  // oracle's image of it is hi = Inf (standing for 2^1024) and lo = v - 2^1024 = 2^970. A kernel
  // whose additions each rounded back to max is off by 1.5 * 2^971, within u * S + ulp/2 with
  // S = max: a pass, and so is Inf; -max is not. (Found by the differential fuzzer: dbeta of
  // dy = max, 4.4e291, 4.4e291, ..., which a pairwise sum keeps at max.)
  const double max = std::numeric_limits<double>::max();
  ExactOutput e = exact_of(DType::f64, {INFINITY}, max);
  e.lo[0] = std::ldexp(1.0, 970);
  OutputMetrics m = measure(tensor_of(DType::f64, {max}), e);
  EXPECT_EQ(m.verdict, Verdict::pass);
  EXPECT_NEAR(m.max_cond_err, 0x1.8p971 / (0x1p-53 * max + 0x1p970), 1e-6);
  EXPECT_EQ(m.max_ulp, 1);
  EXPECT_EQ(measure(tensor_of(DType::f64, {INFINITY}), e).verdict, Verdict::pass);
  EXPECT_EQ(measure(tensor_of(DType::f64, {-max}), e).verdict, Verdict::fail);
}

TEST(Metrics, UndefinedExactDemandsNonFinite) {
  ExactOutput e = exact_of(DType::f32, {0.0, 0.0});
  e.hi[0] = e.hi[1] = NAN;
  EXPECT_EQ(measure(tensor_of(DType::f32, {NAN, -INFINITY}), e).verdict, Verdict::pass);
  const OutputMetrics m = measure(tensor_of(DType::f32, {NAN, 0.5}), e);
  EXPECT_EQ(m.policy_violations, 1);
  EXPECT_EQ(m.verdict, Verdict::fail);
}

TEST(Metrics, PoisonIsUnwritten) {
  const ExactOutput e = exact_of(DType::bf16, {1.0, 2.0});
  Tensor a = tensor_of(DType::bf16, {1.0, 2.0});
  a.set_bits(1, poison_bits(DType::bf16));
  const OutputMetrics m = measure(a, e);
  EXPECT_EQ(m.unwritten, 1);
  EXPECT_EQ(m.verdict, Verdict::unwritten);
}

TEST(Metrics, PoisonWhereTheExactValueIsNaNNeedsTheSecondRun) {
  for (DType d : kAllDTypes) {
    ExactOutput e = exact_of(d, {0.0, 0.0, 1.0});
    e.hi[0] = e.hi[1] = NAN;  // a NaN group
    Tensor a = tensor_of(d, {NAN, 0.0, 1.0});
    a.set_bits(0, poison_bits(d));
    a.set_bits(1, poison_bits(d));
    ASSERT_NE(poison_bits(d, 1), poison_bits(d)) << name(d);
    ASSERT_TRUE(std::isnan(bits_to_double(d, poison_bits(d, 1)))) << name(d);
    // One run: the poison counts as a written NaN.
    EXPECT_EQ(measure(a, e).verdict, Verdict::pass) << name(d);
    // The second run wrote a NaN at 0 (the first run's poison there was the kernel's NaN) and left
    // 1 holding the second poison: only element 1 is unwritten.
    Tensor b = a;
    b.set(0, NAN);
    b.set_bits(1, poison_bits(d, 1));
    const OutputMetrics m = measure(a, e, &b);
    EXPECT_EQ(m.unwritten, 1) << name(d);
    EXPECT_EQ(m.worst_index, 1) << name(d);
    EXPECT_EQ(m.verdict, Verdict::unwritten) << name(d);
    const Tensor short_rerun(d, {2});
    EXPECT_THROW(measure(a, e, &short_rerun), std::invalid_argument) << name(d);
  }
}

TEST(Metrics, NormwiseRelativeError) {
  const ExactOutput e = exact_of(DType::f64, {3.0, 4.0});
  const OutputMetrics m = measure(tensor_of(DType::f64, {3.0, 4.5}), e);
  EXPECT_DOUBLE_EQ(m.normwise, 0.5 / 5.0);
  // Near the top of f64's range the sums of squares would overflow (Inf / Inf = NaN); they are
  // formed relative to a power of two near max|exact|, so the ratio stays exact.
  const ExactOutput big = exact_of(DType::f64, {0x3p1000, 0x4p1000});
  EXPECT_DOUBLE_EQ(measure(tensor_of(DType::f64, {0x3p1000, 0x4.8p1000}), big).normwise, 0.5 / 5.0);
  // And at the bottom, where the squares would underflow to 0.
  const ExactOutput tiny = exact_of(DType::f64, {0x3p-1000, 0x4p-1000});
  EXPECT_DOUBLE_EQ(measure(tensor_of(DType::f64, {0x3p-1000, 0x4.8p-1000}), tiny).normwise, 0.5 / 5.0);
  const ExactOutput sub = exact_of(DType::f64, {0x1p-1074});  // its unit 2^1074 would overflow
  EXPECT_DOUBLE_EQ(measure(tensor_of(DType::f64, {0x1p-1073}), sub).normwise, 1.0);
}

TEST(Metrics, SubnormalResultsHaveAnUnderflowAllowance) {
  // An f64 mean of subnormals off by one smallest subnormal: the relative terms vanish, the
  // underflow term (L * min_subnormal) does not, so the error is finite and within budget.
  const ExactOutput e = exact_of(DType::f64, {0x1p-1070}, 0x1p-1070, 8);
  const OutputMetrics m = measure(tensor_of(DType::f64, {0x1p-1070 + 0x1p-1074}), e);
  EXPECT_TRUE(std::isfinite(m.max_cond_err));
  EXPECT_LT(m.max_cond_err, 1.0);
  EXPECT_GT(m.max_cond_err, 0.0);
}

TEST(Metrics, IllPosedElementsAreCountedNotJudged) {
  ExactOutput e = exact_of(DType::f32, {1.0, 1.0});
  e.kappa[1] = 1.0 / (64 * 0x1p-24) * 2;  // past the limit
  const OutputMetrics m = measure(tensor_of(DType::f32, {1.0, 300.0}), e);
  EXPECT_EQ(m.ill_posed, 1);
  EXPECT_EQ(m.max_cond_err, 0);
  EXPECT_GT(m.max_ulp, 1e6);  // still measured
  EXPECT_EQ(m.verdict, Verdict::pass);
  e.kappa[1] = 1.0 / (64 * 0x1p-24) / 2;  // inside the limit: judged, fails
  EXPECT_EQ(measure(tensor_of(DType::f32, {1.0, 300.0}), e).verdict, Verdict::fail);
}

TEST(Metrics, ShapeOrDtypeMismatchThrows) {
  const ExactOutput e = exact_of(DType::f32, {1.0, 2.0});
  EXPECT_THROW(measure(tensor_of(DType::f32, {1.0}), e), std::invalid_argument);
  EXPECT_THROW(measure(tensor_of(DType::f64, {1.0, 2.0}), e), std::invalid_argument);
}

TEST(Metrics, DescribeIndexNamesTheElement) {
  Problem p;
  p.N = 2;
  p.C = 4;
  p.spatial = {3, 5};
  p.G = 2;
  p.layout = Layout::nhwc;
  const int64_t flat = p.index(1, 3, 2 * 5 + 4);
  EXPECT_EQ(describe_index(p, "y", flat), "n=1 c=3 g=1 s=(2,4)");
  EXPECT_EQ(describe_index(p, "mean", 3), "n=1 g=1");
}

}  // namespace
}  // namespace gnv
