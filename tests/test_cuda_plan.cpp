// Host-side tests of the CUDA kernels' launch plans and index arithmetic (impls/cuda/plan.h):
// they run without a GPU, and check by simulation that the element mapping the kernels use visits
// every element exactly once, within each block's register capacity, for many shapes and plans.
// Also: the registered `cuda` implementation, when built, reports itself unavailable and refuses
// to run with a clear error on a machine without a usable device.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "../impls/cuda/plan.h"
#include "gnv/case.h"
#include "gnv/check.h"
#include "gnv/impl.h"

namespace gnv::cuda::detail {
namespace {

TEST(CudaPlan, PartitionIsBalancedAndInvertible) {
  for (int64_t L : {1, 2, 7, 64, 1000, 4097})
    for (int64_t k = 1; k <= std::min<int64_t>(L, 40); ++k) {
      EXPECT_EQ(part_lo(L, k, 0), 0);
      EXPECT_EQ(part_lo(L, k, k), L);
      for (int64_t r = 0; r < k; ++r) {
        const int64_t len = part_lo(L, k, r + 1) - part_lo(L, k, r);
        EXPECT_TRUE(len == L / k || len == L / k + 1) << L << " " << k << " " << r;
      }
      for (int64_t i = 0; i < L; ++i) {
        const int64_t r = part_of(L, k, i);
        ASSERT_LE(part_lo(L, k, r), i);
        ASSERT_LT(i, part_lo(L, k, r + 1)) << "L=" << L << " k=" << k << " i=" << i;
      }
    }
}

TEST(CudaPlan, FastDivMatchesDivision) {
  std::mt19937_64 rng(3);
  std::vector<uint32_t> ds = {1, 2, 3, 5, 7, 49, 64, 3136, 4096, 16384, 65535, 65536, 1u << 31, 0xffffffffu};
  for (int i = 0; i < 200; ++i) ds.push_back(static_cast<uint32_t>(rng() >> 32) | 1u);
  for (uint32_t d : ds) {
    const FastDiv f = make_fastdiv(d);
    std::vector<uint32_t> qs = {0, 1, d - 1, d, d + 1, 0xffffffffu, 0xfffffffeu, 0x80000000u};
    for (int i = 0; i < 2000; ++i) qs.push_back(static_cast<uint32_t>(rng()));
    for (uint32_t q : qs) ASSERT_EQ(fastdiv(q, f), q / d) << q << " / " << d;
  }
}

// Simulates the kernels' mapping of a plan; returns how often each element is visited.
std::vector<int> visits(const PlanRequest& r, const Plan& p) {
  const int64_t numel = r.N * r.C * r.S, cpg = r.C / r.G, m = cpg * r.S;
  std::vector<int> seen(static_cast<size_t>(numel), 0);
  for (int64_t b = 0; b < p.blocks(); ++b) {
    if (!p.nhwc) {
      const NchwSlot sl = nchw_slot(p.L, p.k, b);
      EXPECT_LE(sl.len, static_cast<int64_t>(p.T) * p.V) << "a part larger than its block holds";
      EXPECT_GE(sl.len, 1) << "an empty part";
      for (int t = 0; t < p.T; ++t) {
        const int nv = valid_count(sl.len, t, p.T, p.V);
        for (int j = 0; j < nv; ++j)
          for (int l = 0; l < p.W; ++l) {
            const int64_t q = (sl.lo + static_cast<int64_t>(j) * p.T + t) * p.W + l;
            EXPECT_LT(q, m);
            // one access never straddles two channels
            EXPECT_EQ(q / r.S, ((sl.lo + static_cast<int64_t>(j) * p.T + t) * p.W) / r.S);
            ++seen[static_cast<size_t>(sl.tile * m + q)];
          }
      }
    } else {
      const NhwcSlot sl = nhwc_slot(r.C, r.S, p.CW, p.TPS, p.k, b);
      EXPECT_LE(sl.s_len, p.RT * p.V) << "a part larger than its block holds";
      EXPECT_GE(sl.s_len, 1) << "an empty part";
      for (int t = 0; t < p.T; ++t) {
        const int tx = t % static_cast<int>(p.CWv), ty = t / static_cast<int>(p.CWv);
        if (static_cast<int64_t>(tx) * p.W >= sl.cw) continue;
        const int nv = valid_count(sl.s_len, ty, static_cast<int>(p.RT), p.V);
        for (int j = 0; j < nv; ++j)
          for (int l = 0; l < p.W; ++l) {
            const int64_t s = sl.s_lo + ty + static_cast<int64_t>(j) * p.RT;
            const int64_t c = sl.c0 + static_cast<int64_t>(tx) * p.W + l;
            EXPECT_LT(c, r.C);
            ++seen[static_cast<size_t>((sl.n * r.S + s) * r.C + c)];
          }
      }
    }
  }
  return seen;
}

void check_plan(const PlanRequest& r, const DeviceInfo& dev) {
  const Plan p = make_plan(r, dev);
  const std::string what = "N=" + std::to_string(r.N) + " C=" + std::to_string(r.C) + " S=" + std::to_string(r.S) +
                           " G=" + std::to_string(r.G) + " elem=" + std::to_string(r.elem) +
                           (r.nhwc ? " nhwc" : " nchw") + (r.backward ? " bwd" : " fwd") +
                           (r.aligned ? "" : " unaligned") + (r.path == PathChoice::split ? " split" : "") +
                           " force_k=" + std::to_string(r.force_k) + " force_threads=" + std::to_string(r.force_threads);
  SCOPED_TRACE(what);
  ASSERT_GE(p.T, 1);
  ASSERT_LE(p.T, kMaxThreads);
  ASSERT_GE(p.k, 1);
  if (!p.nhwc) {
    EXPECT_EQ(p.T % 32, 0) << "nchw kernels reduce with whole warps";
  }
  if (p.fused) {
    EXPECT_LE(p.k, dev.max_cluster);
  }
  if (p.fused && !dev.clusters) {
    EXPECT_EQ(p.k, 1);
  }
  if (r.path == PathChoice::split) {
    EXPECT_FALSE(p.fused);
  }
  if (p.W > 1) {
    EXPECT_TRUE(r.aligned);
    EXPECT_EQ(p.W * r.elem, 16);
    if (p.nhwc) {
      EXPECT_EQ((r.C * r.elem) % 16, 0);
      EXPECT_EQ(p.CW % p.W, 0);
    } else {
      EXPECT_EQ(r.S % p.W, 0);
    }
  }
  if (p.nhwc) {
    EXPECT_EQ(p.T, p.RT * p.CWv);
    EXPECT_EQ(p.CW, p.CWv * p.W);
    if (p.fused) {
      EXPECT_EQ(p.CW % (r.C / r.G), 0) << "a fused nhwc tile holds whole groups";
      EXPECT_EQ(r.C % p.CW, 0);
    }
  }
  const std::vector<int> seen = visits(r, p);
  for (size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i], 1) << "element " << i << " visited " << seen[i] << " times";
}

TEST(CudaPlan, EveryElementOnceForManyShapesAndPlans) {
  const DeviceInfo h100{132, true, 16};
  const DeviceInfo tiny{2, true, 8};
  const DeviceInfo no_clusters{4, false, 1};
  std::mt19937_64 rng(7);
  struct Sh {
    int64_t N, C, S, G;
  };
  std::vector<Sh> shapes = {{2, 32, 64, 8},   {3, 6, 35, 3},  {2, 12, 1, 4},     {1, 8, 105, 2},
                            {2, 64, 4096, 4}, {1, 4, 1, 2},   {2, 320, 256, 32}, {1, 32, 8192, 1},
                            {4, 40, 49, 10},  {1, 1, 1, 1},   {5, 3, 7, 1},      {1, 2048, 4, 1},
                            {1, 16, 33, 16},  {2, 24, 1000, 2}};
  for (int i = 0; i < 40; ++i) {
    const int64_t G = 1 + static_cast<int64_t>(rng() % 6), cpg = 1 + static_cast<int64_t>(rng() % 20);
    shapes.push_back({static_cast<int64_t>(rng() % 3) + 1, G * cpg, 1 + static_cast<int64_t>(rng() % 300), G});
  }
  for (const Sh& sh : shapes)
    for (int elem : {8, 4, 2})
      for (bool nhwc : {false, true})
        for (bool backward : {false, true})
          for (int variant = 0; variant < 5; ++variant) {
            PlanRequest r;
            r.N = sh.N;
            r.C = sh.C;
            r.S = sh.S;
            r.G = sh.G;
            r.elem = elem;
            r.nhwc = nhwc;
            r.backward = backward;
            r.aligned = variant != 1;
            if (variant == 2) r.path = PathChoice::split;
            if (variant == 3) r.force_k = 3;
            if (variant == 4) {
              r.path = PathChoice::split;
              r.force_threads = 32;
            }
            check_plan(r, h100);
            if (variant == 0) {
              check_plan(r, tiny);
              check_plan(r, no_clusters);
            }
            if (::testing::Test::HasFatalFailure()) return;
          }
}

TEST(CudaPlan, BenchmarkShapesRunFusedOnAnH100) {
  // The benchmark shapes: one pass (fused) in both layouts and directions, so they move
  // the byte floor. Groups of 256 KB need clusters of 8 (forward) and 16 (backward), and 16-byte
  // accesses throughout.
  const DeviceInfo h100{132, true, 16};
  struct B {
    int64_t N, C, S;
    int elem;
  };
  for (const B& b : {B{16, 512, 64 * 64, 4}, B{8, 256, 128 * 128, 2}, B{2, 320, 64 * 64, 2}, B{64, 128, 56 * 56, 4}})
    for (bool nhwc : {false, true})
      for (bool backward : {false, true}) {
        PlanRequest r;
        r.N = b.N;
        r.C = b.C;
        r.S = b.S;
        r.G = 32;
        r.elem = b.elem;
        r.nhwc = nhwc;
        r.backward = backward;
        const Plan p = make_plan(r, h100);
        // The exception: (2,320,64,64) f16 nhwc backward. 10 channels per group make 20-byte
        // rows, so a 16-byte tile holds 4 groups (320 KB of x and as much of dy), more than 16
        // blocks hold at 4 accesses of each per thread: it takes the split path (docs/implementations.md "CUDA").
        const bool sd_nhwc_bwd = b.C == 320 && nhwc && backward;
        EXPECT_EQ(p.fused, !sd_nhwc_bwd) << b.N << "," << b.C << " S=" << b.S << (nhwc ? " nhwc" : " nchw")
                                         << (backward ? " bwd" : " fwd") << " k=" << p.k;
        EXPECT_EQ(p.W * b.elem, 16);
      }
}

TEST(CudaPlan, NchwChannelSlotsNeverCollide) {
  for (int64_t cpg : {1, 2, 3, 10, 16})
    for (int64_t S : {1, 3, 8, 64})
      for (int64_t k = 1; k <= std::min<int64_t>(cpg * S, 16); ++k) {
        const int64_t L = cpg * S;  // one-element accesses
        std::vector<int> used(static_cast<size_t>(cpg + k - 1), 0);
        for (int64_t r = 0; r < k; ++r) {
          const int64_t lo = part_lo(L, k, r), hi = part_lo(L, k, r + 1);
          for (int64_t cl = lo / S; cl <= (hi - 1) / S; ++cl) {
            const int64_t slot = nchw_channel_slot(0, cpg, k, cl, r);
            ASSERT_LT(slot, cpg + k - 1);
            ASSERT_EQ(used[static_cast<size_t>(slot)]++, 0) << "cpg=" << cpg << " S=" << S << " k=" << k;
          }
        }
        // and every (channel, part) pair the dgamma kernel reads was written
        for (int64_t cl = 0; cl < cpg; ++cl)
          for (int64_t r = part_of(L, k, cl * S); r <= part_of(L, k, (cl + 1) * S - 1); ++r)
            ASSERT_EQ(used[static_cast<size_t>(nchw_channel_slot(0, cpg, k, cl, r))], 1);
      }
}

}  // namespace
}  // namespace gnv::cuda::detail

namespace gnv {
namespace {

// Only meaningful where the CUDA implementation was built and no device is visible (CI).
TEST(CudaImpl, UnavailableImplRefusesClearly) {
  const Impl* impl = Registry::instance().find("cuda");
  if (!impl) GTEST_SKIP() << "the cuda implementation is not built here";
  EXPECT_EQ(impl->capabilities().device, "cuda");
  if (impl_available(*impl)) GTEST_SKIP() << "a GPU is visible: the gpu-labelled tests cover it";
  Problem p;
  p.N = 1;
  p.C = 4;
  p.spatial = {3};
  p.G = 2;
  const Case c = make_case(p, parse_stress("normal"), 1, false);
  try {
    (void)run_forward(*impl, c);
    FAIL() << "no exception without a device";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("not available"), std::string::npos) << e.what();
  }
  // The check path turns it into a verdict, not a crash.
  EXPECT_EQ(check_case(*impl, c, false).verdict, Verdict::error);
}

}  // namespace
}  // namespace gnv
