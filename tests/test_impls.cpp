// Tests every registered implementation through one parametrized fixture: impl x dtype x layout.
// A new implementation is covered by registering it; nothing here names one except where a
// property is known not to hold for the negative control.
#include <gtest/gtest.h>

#include <atomic>
#include <cctype>
#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "gnv/case.h"
#include "gnv/check.h"
#include "gnv/dtype.h"
#include "gnv/impl.h"
#include "gnv/problem.h"
#include "gnv/stress.h"
#include "gnv/tensor.h"
#include "gnv/threads.h"
#include "gnv/welford.h"

namespace gnv {
namespace {

// ---- the shared reduction helpers -------------------------------------------------------------

TEST(Welford, ChunkedMatchesTwoPassAndIsOrderDeterministic) {
  std::mt19937_64 rng(1);
  std::normal_distribution<double> dist(1e3, 2.0);
  for (int64_t m : {1, 2, 255, 256, 257, 1000, 5003}) {
    std::vector<double> x(static_cast<size_t>(m));
    for (double& v : x) v = dist(rng);
    long double s = 0, q = 0;
    for (double v : x) s += v;
    const long double mean = s / m;
    for (double v : x) q += (v - mean) * (v - mean);
    for (int64_t chunk : {1, 7, 256}) {
      const Welford<double> w = welford_chunked(x.data(), m, chunk);
      EXPECT_EQ(w.n, m);
      EXPECT_NEAR(w.mean, static_cast<double>(mean), 1e-12 * 1e3) << "m=" << m << " chunk=" << chunk;
      EXPECT_NEAR(w.variance(), static_cast<double>(q / m), 1e-9 * 4.0) << "m=" << m << " chunk=" << chunk;
    }
  }
}

TEST(Welford, CombineWithEmptyIsIdentity) {
  Welford<float> a;
  for (float v : {1.f, 2.f, 4.f}) a.add(v);
  const Welford<float> e;
  for (const auto& r : {Welford<float>::combine(a, e), Welford<float>::combine(e, a)}) {
    EXPECT_EQ(r.n, 3);
    EXPECT_EQ(r.mean, a.mean);
    EXPECT_EQ(r.m2, a.m2);
  }
  EXPECT_EQ(welford_chunked<float>(nullptr, 0).n, 0);
}

TEST(Welford, PairwiseSumIsExactOnIntegers) {
  std::vector<float> x(1000);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i);
  EXPECT_EQ(pairwise_sum(x.data(), 1000), 999.f * 1000.f / 2.f);
  EXPECT_EQ(pairwise_sum(x.data(), 0), 0.f);
}

// One value that every later -1 ties with (2^54 - 1 rounds to even, back to 2^54): a sequential sum
// loses every -1; the bound below is the one the README budget rests on.
TEST(Welford, PairwiseSumErrorGrowsWithLog2NotLength) {
  for (int64_t m : {2, 8, 9, 56, 127, 128, 129, 1000, 4099}) {
    for (int64_t at : {int64_t{0}, m / 2, m - 1}) {
      std::vector<double> x(static_cast<size_t>(m), -1.0);
      x[static_cast<size_t>(at)] = 0x1p54;
      const long double exact = 0x1p54L - static_cast<long double>(m - 1);
      const long double abs_sum = 0x1p54L + static_cast<long double>(m - 1);
      const double u = 0x1p-53;
      const double levels = 7 + std::ceil(std::log2(static_cast<double>(m)));
      const long double err = std::fabs(static_cast<long double>(pairwise_sum(x.data(), m)) - exact);
      EXPECT_LE(static_cast<double>(err / (u * abs_sum)), levels) << "m=" << m << " huge at " << at;
    }
  }
}

TEST(ThreadPool, RunsEveryIndexOnceAndPassesExceptionsOn) {
  ThreadPool& pool = ThreadPool::instance();
  for (int threads : {1, 2, 5}) {
    std::vector<std::atomic<int>> hits(1000);
    pool.run(threads, 1000, [&](int64_t i) { hits[static_cast<size_t>(i)].fetch_add(1); });
    for (size_t i = 0; i < hits.size(); ++i) ASSERT_EQ(hits[i].load(), 1) << "threads=" << threads << " i=" << i;
    EXPECT_THROW(pool.run(threads, 1000,
                          [](int64_t i) {
                            if (i == 617) throw std::runtime_error("item 617");
                          }),
                 std::runtime_error)
        << "threads=" << threads;
  }
}

TEST(Registry, CpuImplsAndTheControlAreRegistered) {
  for (const char* n : {"naive", "welford", "onepass"}) ASSERT_NE(Registry::instance().find(n), nullptr) << n;
  const Capabilities c = Registry::instance().get("onepass").capabilities();
  EXPECT_TRUE(c.control);
  EXPECT_EQ(c.summary.rfind("CONTROL", 0), 0u) << c.summary;
  EXPECT_FALSE(Registry::instance().get("welford").capabilities().control);
  EXPECT_FALSE(Registry::instance().get("naive").capabilities().control);
}

// ---- every impl x dtype x layout --------------------------------------------------------------

using Param = std::tuple<const Impl*, DType, Layout>;

// Logical values are indexed (n, c, s) in channels-first order; tensors are filled through
// Problem::index so one set of values can be laid out either way.
struct Logical {
  std::vector<double> v;
  int64_t C = 0, S = 0;
  double& at(int64_t n, int64_t c, int64_t s) { return v[static_cast<size_t>((n * C + c) * S + s)]; }
};

struct Fwd {
  Tensor y, mean, rstd;
};
struct Bwd {
  Tensor dx, dgamma, dbeta;
};

class ImplTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    if (!impl_available(impl())) GTEST_SKIP() << impl().name() << " is not available here";
    const Capabilities c = impl().capabilities();
    if (!c.supports(dtype()) || !c.supports(layout())) GTEST_SKIP() << "unsupported dtype/layout";
  }
  const Impl& impl() const { return *std::get<0>(GetParam()); }
  DType dtype() const { return std::get<1>(GetParam()); }
  Layout layout() const { return std::get<2>(GetParam()); }
  bool is_control() const { return impl().capabilities().control; }
  double u() const { return info(dtype()).unit_roundoff; }
  double u_acc() const { return info(acc_dtype(dtype())).unit_roundoff; }

  Problem problem(int64_t N, int64_t C, std::vector<int64_t> spatial, int64_t G, double eps,
                  bool affine, Layout l) const {
    Problem p{.N = N, .C = C, .spatial = std::move(spatial), .G = G, .eps = eps, .affine = affine, .dtype = dtype(),
              .layout = l};
    p.validate();
    return p;
  }
  Problem problem(int64_t N, int64_t C, std::vector<int64_t> spatial, int64_t G, double eps,
                  bool affine) const {
    return problem(N, C, std::move(spatial), G, eps, affine, layout());
  }

  static Logical logical(const Problem& p) {
    return Logical{std::vector<double>(static_cast<size_t>(p.numel())), p.C, p.S()};
  }
  static Tensor to_tensor(const Problem& p, Logical& l) {
    Tensor t(p.dtype, p.x_shape());
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t c = 0; c < p.C; ++c)
        for (int64_t s = 0; s < p.S(); ++s) t.set(p.index(n, c, s), l.at(n, c, s));
    return t;
  }
  static Tensor channel_tensor(const Problem& p, const std::vector<double>& v) {
    Tensor t(p.dtype, p.param_shape());
    for (int64_t c = 0; c < p.C; ++c) t.set(c, v[static_cast<size_t>(c)]);
    return t;
  }
  static Tensor poisoned(DType d, std::vector<int64_t> shape) {
    Tensor t(d, std::move(shape));
    t.fill_bits(poison_bits(d));
    return t;
  }

  Fwd forward(const Problem& p, const Tensor& x, const Tensor* gamma = nullptr,
              const Tensor* beta = nullptr) const {
    Fwd f{poisoned(p.dtype, p.x_shape()), poisoned(acc_dtype(p.dtype), p.stats_shape()),
          poisoned(acc_dtype(p.dtype), p.stats_shape())};
    impl().forward(ForwardArgs{p, x, gamma, beta, f.y, f.mean, f.rstd});
    return f;
  }
  Bwd backward(const Problem& p, const Tensor& dy, const Tensor& x, const Tensor& mean,
               const Tensor& rstd, const Tensor* gamma) const {
    Bwd b{poisoned(p.dtype, p.x_shape()), poisoned(p.dtype, p.param_shape()),
          poisoned(p.dtype, p.param_shape())};
    impl().backward(BackwardArgs{p, dy, x, mean, rstd, gamma, nullptr, b.dx, p.affine ? &b.dgamma : nullptr,
                                 p.affine ? &b.dbeta : nullptr});
    return b;
  }

  // Per-group mean and rstd of the stored x, in double, with the group scaled by an exact power
  // of two first so values near the top of f32 (or f64) do not overflow the reference itself.
  struct RefStats {
    double mean, rstd, kappa;
  };
  static RefStats ref_stats(const Problem& p, const Tensor& x, int64_t n, int64_t g) {
    const int64_t cpg = p.channels_per_group(), S = p.S(), m = p.group_size();
    double amax = 0;
    for (int64_t c = g * cpg; c < (g + 1) * cpg; ++c)
      for (int64_t s = 0; s < S; ++s) amax = std::max(amax, std::abs(x.get(p.index(n, c, s))));
    const int k = amax > 0 ? std::ilogb(amax) : 0;
    double sum = 0;
    for (int64_t c = g * cpg; c < (g + 1) * cpg; ++c)
      for (int64_t s = 0; s < S; ++s) sum += std::ldexp(x.get(p.index(n, c, s)), -k);
    const double mean = sum / static_cast<double>(m);
    double q = 0;
    for (int64_t c = g * cpg; c < (g + 1) * cpg; ++c)
      for (int64_t s = 0; s < S; ++s) {
        const double d = std::ldexp(x.get(p.index(n, c, s)), -k) - mean;
        q += d * d;
      }
    const double var_s = q / static_cast<double>(m);
    const double std_s = std::sqrt(var_s + std::ldexp(p.eps, -2 * k));
    return {std::ldexp(mean, k), std::ldexp(1.0 / std_s, -k), std::ldexp(amax, -k) / std_s};
  }

  std::mt19937_64 rng{12345};
  double normal() { return std::normal_distribution<double>(0.0, 1.0)(rng); }
};

// (a) A case small enough to do by hand: one group {1,2,3,4}, eps = 0, spread over two channels
// so that the layouts gather it in different orders. mean 2.5, var 1.25.
TEST_P(ImplTest, HandComputedCase) {
  for (bool affine : {false, true}) {
    const Problem p = problem(1, 2, {2}, 1, 0.0, affine);
    Logical l = logical(p);
    l.at(0, 0, 0) = 1;
    l.at(0, 0, 1) = 2;
    l.at(0, 1, 0) = 3;
    l.at(0, 1, 1) = 4;
    const Tensor x = to_tensor(p, l);
    const Tensor gamma = channel_tensor(p, {2.0, -0.5}), beta = channel_tensor(p, {1.0, 0.25});
    const Fwd f = affine ? forward(p, x, &gamma, &beta) : forward(p, x);
    const DType ad = acc_dtype(p.dtype);
    EXPECT_NEAR(f.mean.get(0), 2.5, 2 * ulp_at(ad, 2.5));
    const double rstd = 1.0 / std::sqrt(1.25);
    EXPECT_NEAR(f.rstd.get(0), rstd, 2 * ulp_at(ad, rstd));
    for (int64_t c = 0; c < 2; ++c)
      for (int64_t s = 0; s < 2; ++s) {
        const double xhat = (l.at(0, c, s) - 2.5) * rstd;
        const double want = affine ? (c == 0 ? 2.0 : -0.5) * xhat + (c == 0 ? 1.0 : 0.25) : xhat;
        // One rounding to storage plus a few acc-type roundings of values of order 3.
        const double tol = ulp_at(p.dtype, want) + 16 * u_acc() * 3;
        EXPECT_NEAR(f.y.get(p.index(0, c, s)), want, tol) << "c=" << c << " s=" << s << " affine=" << affine;
      }
  }
}

// (b) The two layouts hold the same logical tensor, so they must give the same values; only the
// reduction order differs, which moves the result by a few roundings at most on benign data.
TEST_P(ImplTest, LayoutsAgree) {
  struct Shape {
    int64_t N, C;
    std::vector<int64_t> sp;
    int64_t G;
  };
  for (const Shape& sh : {Shape{2, 6, {5, 7}, 3}, Shape{3, 4, {}, 2}, Shape{2, 8, {3, 4, 5}, 4}}) {
    const Problem pa = problem(sh.N, sh.C, sh.sp, sh.G, 1e-5, true, Layout::nchw);
    const Problem pb = problem(sh.N, sh.C, sh.sp, sh.G, 1e-5, true, Layout::nhwc);
    Logical l = logical(pa);
    for (double& v : l.v) v = 0.5 + normal();
    std::vector<double> gv(static_cast<size_t>(pa.C)), bv(gv.size());
    for (size_t c = 0; c < gv.size(); ++c) {
      gv[c] = 1 + 0.5 * normal();
      bv[c] = 0.5 * normal();
    }
    const Tensor xa = to_tensor(pa, l), xb = to_tensor(pb, l);
    const Tensor ga = channel_tensor(pa, gv), ba = channel_tensor(pa, bv);
    const Fwd fa = forward(pa, xa, &ga, &ba), fb = forward(pb, xb, &ga, &ba);
    for (int64_t i = 0; i < pa.N * pa.G; ++i) {
      EXPECT_NEAR(fa.mean.get(i), fb.mean.get(i), 64 * u_acc() * 4) << i;
      EXPECT_NEAR(fa.rstd.get(i), fb.rstd.get(i), 64 * u_acc() * fa.rstd.get(i)) << i;
    }
    double ymax = 0;
    for (int64_t i = 0; i < pa.numel(); ++i) ymax = std::max(ymax, std::abs(fa.y.get(i)));
    const double tol = (4 * u() + 64 * u_acc()) * ymax;
    for (int64_t n = 0; n < pa.N; ++n)
      for (int64_t c = 0; c < pa.C; ++c)
        for (int64_t s = 0; s < pa.S(); ++s)
          ASSERT_NEAR(fa.y.get(pa.index(n, c, s)), fb.y.get(pb.index(n, c, s)), tol)
              << pa.describe() << " n=" << n << " c=" << c << " s=" << s;
  }
}

// (c) An empty batch is a valid problem: nothing to normalize, and the parameter gradients are
// empty sums, i.e. zero.
TEST_P(ImplTest, EmptyBatch) {
  const Problem p = problem(0, 4, {3}, 2, 1e-5, true);
  const Tensor x(p.dtype, p.x_shape()), dy(p.dtype, p.x_shape());
  const Tensor gamma = channel_tensor(p, {1, 2, 3, 4}), beta = channel_tensor(p, {0, 0, 0, 0});
  const Fwd f = forward(p, x, &gamma, &beta);
  EXPECT_EQ(f.y.numel(), 0);
  const Bwd b = backward(p, dy, x, f.mean, f.rstd, &gamma);
  for (int64_t c = 0; c < p.C; ++c) {
    EXPECT_EQ(b.dgamma.get(c), 0.0) << c;
    EXPECT_EQ(b.dbeta.get(c), 0.0) << c;
  }
}

// (d) The non-finite policy: a NaN or Inf poisons its own group (y, mean, rstd non-finite, NaN
// for rstd) and nothing else, even where gamma = 0.
TEST_P(ImplTest, NonFiniteStaysInItsGroup) {
  const double inf = std::numeric_limits<double>::infinity();
  for (double bad : {std::numeric_limits<double>::quiet_NaN(), inf, -inf}) {
    const Problem p = problem(2, 4, {3}, 2, 1e-5, true);
    Logical l = logical(p);
    for (double& v : l.v) v = normal();
    l.at(1, 2, 1) = bad;  // group (n=1, g=1)
    const Tensor x = to_tensor(p, l);
    const Tensor gamma = channel_tensor(p, {1, 0, 0, 2}), beta = channel_tensor(p, {0, 1, 1, 0});
    const Fwd f = forward(p, x, &gamma, &beta);
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t g = 0; g < 2; ++g) {
        const bool poisoned_group = n == 1 && g == 1;
        const int64_t i = n * 2 + g;
        if (poisoned_group) {
          EXPECT_FALSE(std::isfinite(f.mean.get(i))) << "bad=" << bad;
          EXPECT_TRUE(std::isnan(f.rstd.get(i))) << "bad=" << bad;
        } else {
          EXPECT_TRUE(std::isfinite(f.mean.get(i)) && std::isfinite(f.rstd.get(i))) << "n=" << n << " g=" << g;
        }
        for (int64_t c = 2 * g; c < 2 * g + 2; ++c)
          for (int64_t s = 0; s < 3; ++s) {
            const double y = f.y.get(p.index(n, c, s));
            if (poisoned_group) {
              EXPECT_FALSE(std::isfinite(y)) << "bad=" << bad << " c=" << c << " s=" << s;
            } else {
              EXPECT_TRUE(std::isfinite(y)) << "bad=" << bad << " n=" << n << " c=" << c << " s=" << s;
            }
          }
      }
  }
}

// (e) Backward against the identities that hold for any x: sum of dx over a group is zero and
// dbeta_c = sum dy over channel c; dgamma against a double evaluation with the same mean/rstd.
// mean and rstd are computed here (double, rounded to acc), as the harness hands them in.
TEST_P(ImplTest, BackwardIdentities) {
  for (bool affine : {true, false}) {
    const Problem p = problem(3, 6, {4, 5}, 3, 1e-5, affine);
    Logical lx = logical(p), ldy = logical(p);
    for (double& v : lx.v) v = 2 + 1.5 * normal();
    for (double& v : ldy.v) v = normal();
    const Tensor x = to_tensor(p, lx), dy = to_tensor(p, ldy);
    std::vector<double> gv(static_cast<size_t>(p.C));
    for (double& g : gv) g = 1 + 0.5 * normal();
    const Tensor gamma = channel_tensor(p, gv);
    const DType ad = acc_dtype(p.dtype);
    Tensor mean(ad, p.stats_shape()), rstd(ad, p.stats_shape());
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t g = 0; g < p.G; ++g) {
        const RefStats r = ref_stats(p, x, n, g);
        mean.set(n * p.G + g, r.mean);
        rstd.set(n * p.G + g, r.rstd);
      }
    const Bwd b = backward(p, dy, x, mean, rstd, affine ? &gamma : nullptr);

    const int64_t m = p.group_size(), cpg = p.channels_per_group();
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t g = 0; g < p.G; ++g) {
        double sum = 0, abs_sum = 0;
        for (int64_t c = g * cpg; c < (g + 1) * cpg; ++c)
          for (int64_t s = 0; s < p.S(); ++s) {
            const double d = b.dx.get(p.index(n, c, s));
            ASSERT_TRUE(std::isfinite(d));
            sum += d;
            abs_sum += std::abs(d);
          }
        // Each stored dx carries one rounding to storage, and each is computed from sums of m
        // acc-type terms.
        EXPECT_LE(std::abs(sum), 4 * (u() + static_cast<double>(m) * u_acc()) * abs_sum)
            << "n=" << n << " g=" << g << " affine=" << affine;
      }
    if (!affine) continue;
    const int64_t L = p.N * p.S();
    for (int64_t c = 0; c < p.C; ++c) {
      const int64_t g = c / cpg;
      double db = 0, db_abs = 0, dg = 0, dg_abs = 0;
      for (int64_t n = 0; n < p.N; ++n)
        for (int64_t s = 0; s < p.S(); ++s) {
          const int64_t i = p.index(n, c, s);
          const double t = dy.get(i), xh = (x.get(i) - mean.get(n * p.G + g)) * rstd.get(n * p.G + g);
          db += t;
          db_abs += std::abs(t);
          dg += t * xh;
          dg_abs += std::abs(t * xh);
        }
      const double k = 2 * static_cast<double>(L) * u_acc();
      EXPECT_NEAR(b.dbeta.get(c), db, ulp_at(p.dtype, db) + k * db_abs) << "c=" << c;
      EXPECT_NEAR(b.dgamma.get(c), dg, ulp_at(p.dtype, dg) + 2 * k * dg_abs) << "c=" << c;
    }
  }
}

// (f) Values near the top of the range overflow the sums (and the squared deviations) in acc_t.
// The overflow rescue must still give correct, finite results; the control has no rescue and is
// allowed to fail here, so it is only run, not judged.
TEST_P(ImplTest, OverflowRescue) {
  // Values ~1e37 overflow a float sum after a few dozen terms and their deviations overflow when
  // squared; bf16 shares f32's range. f16 values cannot overflow the f32 accumulator, so for f16
  // this checks the top of its own range (up to 4.5e4 of 65504) instead.
  double scale = 1e4;
  if (dtype() == DType::f32 || dtype() == DType::bf16) scale = 1e37;
  if (dtype() == DType::f64) scale = 1e305;
  const Problem p = problem(2, 4, {16}, 2, 1e-5, true);
  Logical l = logical(p);
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t c = 0; c < p.C; ++c)
      for (int64_t s = 0; s < p.S(); ++s) {
        const double z = std::max(-2.0, std::min(2.0, normal()));
        // Group (n=0, g=1) stays ordinary, to show the rescue does not leak into its neighbours.
        l.at(n, c, s) = (n == 0 && c >= 2) ? z : scale * (2.5 + z);
      }
  const Tensor x = to_tensor(p, l);
  const Tensor gamma = channel_tensor(p, {1.5, -1, 0.5, 2}), beta = channel_tensor(p, {0, 1, -1, 0.5});
  const Fwd f = forward(p, x, &gamma, &beta);
  if (is_control()) return;

  const int64_t cpg = p.channels_per_group();
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t g = 0; g < p.G; ++g) {
      const RefStats r = ref_stats(p, x, n, g);
      const int64_t i = n * p.G + g;
      const double tol_stats = 64 * u_acc();
      EXPECT_NEAR(f.mean.get(i), r.mean, tol_stats * std::abs(r.mean) * r.kappa) << "n=" << n << " g=" << g;
      EXPECT_NEAR(f.rstd.get(i), r.rstd, tol_stats * r.rstd) << "n=" << n << " g=" << g;
      for (int64_t c = g * cpg; c < (g + 1) * cpg; ++c)
        for (int64_t s = 0; s < p.S(); ++s) {
          const int64_t idx = p.index(n, c, s);
          const double want = gamma.get(c) * (x.get(idx) - r.mean) * r.rstd + beta.get(c);
          const double y = f.y.get(idx);
          ASSERT_TRUE(std::isfinite(y)) << "n=" << n << " c=" << c << " s=" << s;
          // A backward-stable algorithm may err by about u_acc * kappa * |gamma| per element.
          const double tol = ulp_at(p.dtype, want) + 32 * u_acc() * r.kappa * std::abs(gamma.get(c)) + 4 * u();
          EXPECT_NEAR(y, want, tol) << "n=" << n << " c=" << c << " s=" << s;
        }
    }
}

// (g) Results do not depend on the thread count (gnv/threads.h): bitwise the same outputs for 1,
// 2, 3 and 8 threads. Shapes with few, large groups make a multi-threaded kernel split inside a
// group (simd: 1024-element blocks channels-first, 256-row blocks channels-last), so a combine
// in completion order rather than a fixed tree would show here; one has groups with Inf and
// huge values so the scalar fallback runs concurrently too. Every shape has more than 2^14
// elements, simd's threshold for going parallel at all. Single-threaded kernels pass trivially.
TEST_P(ImplTest, ThreadCountInvariance) {
  struct Shape {
    int64_t N, C;
    std::vector<int64_t> sp;
    int64_t G;
  };
  struct Restore {
    ~Restore() { set_cpu_threads(0); }
  } restore;
  for (const Shape& sh : {Shape{1, 6, {67, 71}, 2}, Shape{2, 8, {40, 40}, 2}, Shape{1, 5, {4111}, 1},
                          Shape{3, 12, {9, 70}, 3}}) {
    const Problem p = problem(sh.N, sh.C, sh.sp, sh.G, 1e-5, true);
    Logical l = logical(p), d = logical(p);
    for (double& v : l.v) v = 3 + normal();
    for (double& v : d.v) v = normal();
    if (p.N * p.G > 2) {  // a non-finite group and a huge one: the fallback runs next to the rest
      l.at(0, 0, 3) = std::numeric_limits<double>::infinity();
      for (int64_t c = p.C - p.channels_per_group(); c < p.C; ++c)
        for (int64_t s = 0; s < p.S(); ++s) l.at(p.N - 1, c, s) *= 1e37;
    }
    std::vector<double> gv(static_cast<size_t>(p.C)), bv(gv.size());
    for (size_t c = 0; c < gv.size(); ++c) {
      gv[c] = 1 + 0.5 * normal();
      bv[c] = 0.5 * normal();
    }
    const Tensor x = to_tensor(p, l), dy = to_tensor(p, d);
    const Tensor gamma = channel_tensor(p, gv), beta = channel_tensor(p, bv);
    auto run = [&](int threads) {
      set_cpu_threads(threads);
      Fwd f = forward(p, x, &gamma, &beta);
      Bwd b = backward(p, dy, x, f.mean, f.rstd, &gamma);
      return std::make_pair(std::move(f), std::move(b));
    };
    const auto ref = run(1);
    for (int threads : {2, 3, 8}) {
      const auto got = run(threads);
      const std::pair<const char*, std::pair<const Tensor*, const Tensor*>> outs[] = {
          {"y", {&ref.first.y, &got.first.y}},        {"mean", {&ref.first.mean, &got.first.mean}},
          {"rstd", {&ref.first.rstd, &got.first.rstd}}, {"dx", {&ref.second.dx, &got.second.dx}},
          {"dgamma", {&ref.second.dgamma, &got.second.dgamma}}, {"dbeta", {&ref.second.dbeta, &got.second.dbeta}}};
      for (const auto& [what, t] : outs) {
        ASSERT_EQ(t.first->numel(), t.second->numel());
        for (int64_t i = 0; i < t.first->numel(); ++i)
          ASSERT_EQ(t.first->bits(i), t.second->bits(i))
              << what << "[" << i << "] differs between 1 and " << threads << " threads, " << p.describe();
      }
    }
  }
}

std::string param_name(const ::testing::TestParamInfo<Param>& info) {
  return std::string(std::get<0>(info.param)->name()) + "_" + std::string(name(std::get<1>(info.param))) +
         "_" + std::string(name(std::get<2>(info.param)));
}

// The generator runs when GoogleTest registers the tests (after static initialization), so every
// implementation's self-registration has happened by then.
INSTANTIATE_TEST_SUITE_P(AllImpls, ImplTest,
                         ::testing::Combine(::testing::ValuesIn(Registry::instance().all()),
                                            ::testing::ValuesIn(kAllDTypes), ::testing::ValuesIn(kAllLayouts)),
                         param_name);


// ---- against the oracle: every impl x dtype x layout x stress class ---------------------------

using OracleParam = std::tuple<const Impl*, DType, Layout, Stress>;

class ImplOracleTest : public ::testing::TestWithParam<OracleParam> {};

// The verdict path every consumer uses (check_case), forward and backward, on a few small shapes
// covering ranks 0, 2 and 3. A correct kernel passes every stress class; the negative control
// must fail once the offset makes E[x^2] - E[x]^2 cancel (|mean|/std >= 1e4) in f32 and f64.
// f16/bf16 storage rounds the offset data itself so coarsely that no expectation is set there.
TEST_P(ImplOracleTest, VerdictAgainstOracle) {
  const auto& [impl, dtype, layout, stress] = GetParam();
  if (!impl_available(*impl)) GTEST_SKIP() << impl->name() << " is not available here";
  const Capabilities caps = impl->capabilities();
  if (!caps.supports(dtype) || !caps.supports(layout)) GTEST_SKIP() << "unsupported dtype/layout";
  struct Shape {
    int64_t N, C;
    std::vector<int64_t> sp;
    int64_t G;
  };
  const bool control_must_fail = caps.control && stress.kind == StressKind::offset &&
                                 stress.param >= 1e4 && (dtype == DType::f32 || dtype == DType::f64);
  bool control_failed = false;
  uint64_t seed = 1;
  // Plain GroupNorm, then the fused forms an impl declares: SiLU, and SiLU with per-sample
  // parameters (the adaptive GroupNorm of conditioned U-Nets).
  struct Mode {
    AffineMode affine;
    Epilogue epilogue;
  };
  for (const Mode mode : {Mode{AffineMode::per_channel, Epilogue::none}, Mode{AffineMode::per_channel, Epilogue::silu},
                          Mode{AffineMode::per_sample, Epilogue::silu}})
  for (const Shape& sh : {Shape{2, 6, {5, 7}, 3}, Shape{1, 4, {}, 2}, Shape{2, 8, {3, 4, 5}, 4}}) {
    const Problem p{.N = sh.N, .C = sh.C, .spatial = sh.sp, .G = sh.G, .affine = true, .affine_mode = mode.affine,
                    .epilogue = mode.epilogue, .dtype = dtype, .layout = layout};
    if (!caps.lacks(p).empty()) continue;
    const Case c = make_case(p, stress, seed++, true);
    const CheckResult r = check_case(*impl, c, true);
    ASSERT_NE(r.verdict, Verdict::error) << p.describe() << " stress=" << stress.name() << ": " << r.error;
    ASSERT_NE(r.verdict, Verdict::unwritten) << p.describe() << " stress=" << stress.name();
    if (r.verdict == Verdict::fail) control_failed = true;
    if (caps.control) continue;
    for (const OutputMetrics& m : r.outputs)
      EXPECT_EQ(m.verdict, Verdict::pass)
          << p.describe() << " stress=" << stress.name() << " seed=" << c.seed << " output=" << m.name
          << " cond_err=" << m.max_cond_err << " budget=" << m.budget << " ulp=" << m.max_ulp
          << " policy_violations=" << m.policy_violations << " worst "
          << describe_index(p, m.name, m.worst_index) << " expected=" << m.worst_expected
          << " actual=" << m.worst_actual << " kappa=[" << r.kappa_min << ", " << r.kappa_max << "]";
  }
  if (control_must_fail) {
    EXPECT_TRUE(control_failed) << "the control passed " << stress.name();
  }
}

std::string oracle_param_name(const ::testing::TestParamInfo<OracleParam>& info) {
  std::string s = std::get<3>(info.param).name();
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return std::string(std::get<0>(info.param)->name()) + "_" + std::string(name(std::get<1>(info.param))) +
         "_" + std::string(name(std::get<2>(info.param))) + "_" + s;
}

INSTANTIATE_TEST_SUITE_P(AllImpls, ImplOracleTest,
                         ::testing::Combine(::testing::ValuesIn(Registry::instance().all()),
                                            ::testing::ValuesIn(kAllDTypes), ::testing::ValuesIn(kAllLayouts),
                                            ::testing::ValuesIn(default_stresses())),
                         oracle_param_name);

}  // namespace
}  // namespace gnv
