// The harness on the GPU: the `cuda` implementation through check_case (exact oracle, budgets,
// poison, non-finite policy) for every dtype x layout x default stress class, on shapes whose
// groups fit one block, span a cluster, or take the split path (forced on small shapes too);
// bitwise repeatability; agreement with the CPU `welford`.
//
// The same source, linked with the CPU emulation of the kernels (tests/emu), is gnv_cuda_emu_tests.
// Exits 77 (CTest: skipped) when no usable GPU is visible. CTest runs it as three tests
// (--gtest_filter=*CudaOracle*, *CudaFused*, *CudaPaths*, *CudaDeterminism*), label gpu; scripts/gpu-check.sh
// shards it over the device machine's cores (GTEST_TOTAL_SHARDS / GTEST_SHARD_INDEX).
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "gn_cuda.h"
#include "gnv/case.h"
#include "gnv/check.h"
#include "gnv/dtype.h"
#include "gnv/impl.h"
#include "gnv/metrics.h"
#include "gnv/stress.h"

namespace gnv {
namespace {

const Impl& cuda_impl() { return Registry::instance().get("cuda"); }

// Runs a scope with other options for the registered impl.
class OptionsScope {
 public:
  explicit OptionsScope(const cuda::Options& o) : saved_(cuda::default_options()) { cuda::default_options() = o; }
  ~OptionsScope() { cuda::default_options() = saved_; }
  OptionsScope(const OptionsScope&) = delete;
  OptionsScope& operator=(const OptionsScope&) = delete;

 private:
  cuda::Options saved_;
};

enum class Mode { automatic, parts, split };
const char* mode_name(Mode m) { return m == Mode::automatic ? "auto" : m == Mode::parts ? "3 parts" : "split T=32"; }
cuda::Options options_for(Mode m) {
  cuda::Options o;
  if (m == Mode::parts) o.force_parts = 3;  // a 3-block cluster (or 3 split parts) on small groups
  if (m == Mode::split) {
    o.path = cuda::Path::split;
    o.force_threads = 32;  // many parts even on small groups
  }
  return o;
}

cuda::Desc desc_of(const Problem& p) {
  cuda::Desc d;
  d.N = p.N;
  d.C = p.C;
  d.S = p.S();
  d.G = p.G;
  d.eps = p.eps;
  d.dtype = static_cast<cuda::DType>(static_cast<int>(p.dtype));
  d.layout = p.layout == Layout::nchw ? cuda::Layout::nchw : cuda::Layout::nhwc;
  d.epilogue = static_cast<cuda::Epilogue>(static_cast<int>(p.epilogue));
  d.per_sample = p.per_sample();
  return d;
}

struct Shape {
  int64_t N, C;
  std::vector<int64_t> sp;
  int64_t G;
  bool all_modes;  // small: every mode; larger: automatic (cluster) and split
};
// Ranks 0..3; odd extents (no vector width divides a row: the one-element access path); and two
// shapes with N = 1, 2 whose groups (16384 and 33280 elements) span a cluster of blocks.
const Shape kShapes[] = {
    {2, 6, {5, 7}, 3, true},    {1, 4, {}, 2, true},         {2, 8, {3, 4, 5}, 4, true},
    {2, 16, {8, 8}, 4, true},   {2, 32, {32, 32}, 2, false}, {1, 16, {40, 52}, 1, false},
};

Problem make_problem(const Shape& sh, DType d, Layout l, bool affine) {
  Problem p;
  p.N = sh.N;
  p.C = sh.C;
  p.spatial = sh.sp;
  p.G = sh.G;
  p.affine = affine;
  p.dtype = d;
  p.layout = l;
  p.validate();
  return p;
}

std::string explain(const Problem& p, const Case& c, const CheckResult& r, const OutputMetrics& m, Mode mode) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "%s stress=%s seed=%llu mode=%s plan=[%s] output=%s cond_err=%g budget=%g ulp=%g unwritten=%lld "
                "policy_violations=%lld worst %s expected=%.17g actual=%.17g kappa=[%g, %g]",
                p.describe().c_str(), c.stress.c_str(), static_cast<unsigned long long>(c.seed), mode_name(mode),
                cuda::describe_plan(desc_of(p), m.name[0] == 'd', options_for(mode)).c_str(), m.name.c_str(),
                m.max_cond_err, m.budget, m.max_ulp, static_cast<long long>(m.unwritten),
                static_cast<long long>(m.policy_violations), describe_index(p, m.name, m.worst_index).c_str(),
                m.worst_expected, m.worst_actual, r.kappa_min, r.kappa_max);
  return buf;
}

void expect_pass(const Problem& p, const Case& c, Mode mode) {
  const OptionsScope scope(options_for(mode));
  const CheckResult r = check_case(cuda_impl(), c, true);
  ASSERT_NE(r.verdict, Verdict::error) << p.describe() << " stress=" << c.stress << " mode=" << mode_name(mode) << ": "
                                       << r.error;
  for (const OutputMetrics& m : r.outputs) EXPECT_EQ(m.verdict, Verdict::pass) << explain(p, c, r, m, mode);
}

// The planner's choice and the split path on every shape; a forced 3-part cluster too on the small ones.
void expect_pass_every_mode(const Shape& sh, const Problem& p, const Case& c) {
  for (Mode mode : {Mode::automatic, Mode::parts, Mode::split}) {
    if (!sh.all_modes && mode == Mode::parts) continue;
    expect_pass(p, c, mode);
  }
}

// ---- the oracle verdict for every dtype x layout x stress class -----------------------------------

using OracleParam = std::tuple<DType, Layout, Stress>;
class CudaOracle : public ::testing::TestWithParam<OracleParam> {};

// GNV_CUDA_TEST_SMALL=1 keeps the small shapes only (still every path, through the forced modes):
// for the CPU emulation of the kernels (tests/emu), which CTest runs without a GPU.
bool small_only() {
  const char* e = std::getenv("GNV_CUDA_TEST_SMALL");
  return e && *e && std::string(e) != "0";
}

TEST_P(CudaOracle, PassesEveryShapeAndPath) {
  const auto& [dtype, layout, stress] = GetParam();
  uint64_t seed = 1;
  for (const Shape& sh : kShapes) {
    if (small_only() && !sh.all_modes) continue;
    const Problem p = make_problem(sh, dtype, layout, seed % 2 == 1);
    expect_pass_every_mode(sh, p, make_case(p, stress, seed++, true));
  }
}

std::string param_name(const ::testing::TestParamInfo<OracleParam>& info) {
  std::string s = std::get<2>(info.param).name();
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return std::string(name(std::get<0>(info.param))) + "_" + std::string(name(std::get<1>(info.param))) + "_" + s;
}

INSTANTIATE_TEST_SUITE_P(AllStresses, CudaOracle,
                         ::testing::Combine(::testing::ValuesIn(kAllDTypes), ::testing::ValuesIn(kAllLayouts),
                                            ::testing::ValuesIn(default_stresses())),
                         param_name);

// ---- the fused forms: SiLU epilogue, per-sample gamma/beta, both ----------------------------------

struct Fused {
  Epilogue epilogue;
  AffineMode affine;
  const char* name;
};
const Fused kFused[] = {{Epilogue::silu, AffineMode::per_channel, "silu"},
                        {Epilogue::none, AffineMode::per_sample, "per_sample"},
                        {Epilogue::silu, AffineMode::per_sample, "per_sample_silu"}};

using FusedParam = std::tuple<DType, Layout, int>;
class CudaFused : public ::testing::TestWithParam<FusedParam> {};

// Every path (the forced modes) on the small shapes, the stresses where the epilogue or the
// parameter rows matter: silu's tails (offset, huge), its non-finite limits (special), zeros
// (constant: v = beta), and cancellation under the epilogue.
TEST_P(CudaFused, PassesEveryShapeAndPath) {
  const auto& [dtype, layout, fi] = GetParam();
  const Fused& fu = kFused[fi];
  uint64_t seed = 101;
  for (const Shape& sh : kShapes) {
    if (!sh.all_modes && small_only()) continue;
    for (const char* s : {"normal", "offset:1000", "huge", "special", "constant", "bimodal"}) {
      Problem p = make_problem(sh, dtype, layout, true);
      p.epilogue = fu.epilogue;
      p.affine_mode = fu.affine;
      p.validate();
      expect_pass_every_mode(sh, p, make_case(p, parse_stress(s), seed++, true));
    }
  }
}

std::string fused_name(const ::testing::TestParamInfo<FusedParam>& info) {
  return std::string(name(std::get<0>(info.param))) + "_" + std::string(name(std::get<1>(info.param))) + "_" +
         kFused[std::get<2>(info.param)].name;
}
INSTANTIATE_TEST_SUITE_P(All, CudaFused,
                         ::testing::Combine(::testing::ValuesIn(kAllDTypes), ::testing::ValuesIn(kAllLayouts),
                                            ::testing::Range(0, 3)),
                         fused_name);

// ---- large groups: the split path chosen by the planner (more parts than one cluster holds) ------

using DL = std::tuple<DType, Layout>;
class CudaPaths : public ::testing::TestWithParam<DL> {};

TEST_P(CudaPaths, SplitPathForGroupsLargerThanACluster) {
  const auto& [dtype, layout] = GetParam();
  // One group of 294912 elements: more than a 16-block cluster holds for any dtype (262144 for the
  // 16-bit types forward, fewer otherwise).
  const Shape big{1, 16, {128, 144}, 1, false};
  const Problem p = make_problem(big, dtype, layout, true);
  const std::string plan = cuda::describe_plan(desc_of(p), false);
  EXPECT_NE(plan.find("split"), std::string::npos) << plan;
  uint64_t seed = 11;
  for (const char* s : {"normal", "offset:10000", "special"}) {
    const Case c = make_case(p, parse_stress(s), seed++, true);
    expect_pass(p, c, Mode::automatic);
  }
}

TEST_P(CudaPaths, EmptyBatch) {
  const auto& [dtype, layout] = GetParam();
  Problem p = make_problem(Shape{1, 4, {3}, 2, true}, dtype, layout, true);
  p.N = 0;
  const Case c = make_case(p, parse_stress("normal"), 1, true);
  expect_pass(p, c, Mode::automatic);
}

std::string dl_name(const ::testing::TestParamInfo<DL>& info) {
  return std::string(name(std::get<0>(info.param))) + "_" + std::string(name(std::get<1>(info.param)));
}
INSTANTIATE_TEST_SUITE_P(All, CudaPaths,
                         ::testing::Combine(::testing::ValuesIn(kAllDTypes), ::testing::ValuesIn(kAllLayouts)), dl_name);

// ---- bitwise repeatability and agreement with the CPU baseline ----------------------------------

class CudaDeterminism : public ::testing::TestWithParam<DL> {};

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

TEST_P(CudaDeterminism, BitwiseRepeatable) {
  const auto& [dtype, layout] = GetParam();
  for (const Shape& sh : {Shape{2, 64, {64, 64}, 4, false}, Shape{1, 16, {96, 96}, 1, false},
                          Shape{3, 6, {5, 7}, 3, false}, Shape{2, 320, {32, 32}, 32, false}}) {
    const Problem p = make_problem(sh, dtype, layout, true);
    const Case c = make_case(p, parse_stress("offset:100"), 3, true);
    const ForwardResult f1 = run_forward(cuda_impl(), c), f2 = run_forward(cuda_impl(), c);
    EXPECT_TRUE(same_bits(f1.y, f2.y) && same_bits(f1.mean, f2.mean) && same_bits(f1.rstd, f2.rstd))
        << p.describe() << " forward differs between runs; plan " << cuda::describe_plan(desc_of(p), false);
    const BackwardResult b1 = run_backward(cuda_impl(), c, f1.mean, f1.rstd);
    const BackwardResult b2 = run_backward(cuda_impl(), c, f1.mean, f1.rstd);
    EXPECT_TRUE(same_bits(b1.dx, b2.dx) && same_bits(b1.dgamma, b2.dgamma) && same_bits(b1.dbeta, b2.dbeta))
        << p.describe() << " backward differs between runs; plan " << cuda::describe_plan(desc_of(p), true);
  }
}

TEST_P(CudaDeterminism, AgreesWithWelford) {
  const auto& [dtype, layout] = GetParam();
  const Impl& cpu = Registry::instance().get("welford");
  const double u = info(dtype).unit_roundoff, ua = info(acc_dtype(dtype)).unit_roundoff;
  for (const Shape& sh : {Shape{2, 32, {32, 32}, 2, false}, Shape{2, 6, {5, 7}, 3, false}}) {
    const Problem p = make_problem(sh, dtype, layout, true);
    const Case c = make_case(p, parse_stress("normal"), 5, true);
    const ForwardResult g = run_forward(cuda_impl(), c), h = run_forward(cpu, c);
    double num = 0, den = 0;
    for (int64_t i = 0; i < g.y.numel(); ++i) {
      const double d = g.y.get(i) - h.y.get(i);
      num += d * d;
      den += h.y.get(i) * h.y.get(i);
    }
    // Both are within the budget of the exact result (CudaOracle); here directly: a few storage
    // roundings and log2(m) accumulator roundings apart, normwise.
    EXPECT_LE(std::sqrt(num / den), 4 * u + 64 * ua) << p.describe();
    for (int64_t i = 0; i < g.mean.numel(); ++i) {
      EXPECT_NEAR(g.mean.get(i), h.mean.get(i), 64 * ua * 8) << p.describe() << " group " << i;
      EXPECT_NEAR(g.rstd.get(i), h.rstd.get(i), 64 * ua * h.rstd.get(i)) << p.describe() << " group " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, CudaDeterminism,
                         ::testing::Combine(::testing::ValuesIn(kAllDTypes), ::testing::ValuesIn(kAllLayouts)), dl_name);

}  // namespace
}  // namespace gnv

int main(int argc, char** argv) {
  if (!gnv::cuda_available()) {
    std::printf("gnv_cuda_tests: skipped: %s\n", gnv::cuda_unavailable_reason().c_str());
    return 77;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
