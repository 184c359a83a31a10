// The two oracle evaluations (OraclePath::fast, OraclePath::reference) agree: rounded outputs,
// hi and kappa bit for bit, lo and scale to the stated tolerance, on every dtype, layout, stress
// class and a few exact ties; the fast path really is the one taking the values (no fall-backs on
// ordinary data), and thread counts do not change a bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "gnv/case.h"
#include "gnv/oracle.h"
#include "gnv/stress.h"

namespace gnv {
namespace {

OracleResult fwd(const Case& c, OraclePath path, int threads = 1) {
  return oracle_forward(c, OracleOptions{path, threads});
}
OracleResult bwd(const Case& c, OraclePath path, int threads = 1) {
  return oracle_backward(c, OracleOptions{path, threads});
}

Case random_case(DType d, Layout l, const std::string& stress, int64_t N, int64_t C,
                 std::vector<int64_t> spatial, int64_t G, double eps, bool affine, uint64_t seed,
                 bool backward = true) {
  const Problem p{.N = N, .C = C, .spatial = std::move(spatial), .G = G, .eps = eps, .affine = affine,
                  .dtype = d, .layout = l};
  return make_case(p, parse_stress(stress), seed, backward);
}

// A hand-made case with its tensors allocated (x; gamma and beta where affine; dy where backward),
// for the tests that set a few values themselves.
Case hand_case(DType d, int64_t N, int64_t C, std::vector<int64_t> spatial, int64_t G, double eps, bool affine,
               bool backward) {
  Case c;
  c.problem = Problem{.N = N, .C = C, .spatial = std::move(spatial), .G = G, .eps = eps, .affine = affine,
                      .dtype = d, .layout = Layout::nchw};
  const Problem& p = c.problem;
  c.x = Tensor(d, p.x_shape());
  if (affine) {
    c.gamma = Tensor(d, p.param_shape());
    c.beta = Tensor(d, p.param_shape());
  }
  if (backward) c.dy = Tensor(d, p.x_shape());
  return c;
}

TEST(OraclePaths, AgreeOnEveryDtypeLayoutAndStress) {
  int64_t cases = 0;
  for (DType d : {DType::f64, DType::f32, DType::f16, DType::bf16})
    for (Layout l : {Layout::nchw, Layout::nhwc})
      for (const Stress& s : default_stresses())
        for (int shape = 0; shape < 3; ++shape) {
          const uint64_t seed = 11 + static_cast<uint64_t>(shape);
          const Case c = shape == 0   ? random_case(d, l, s.name(), 2, 8, {5, 3}, 4, 1e-5, true, seed)
                         : shape == 1 ? random_case(d, l, s.name(), 1, 6, {7}, 3, 0.0, true, seed)
                                      : random_case(d, l, s.name(), 3, 4, {}, 1, 1e-3, false, seed);
          const std::string mismatch =
              oracle_paths_mismatch(fwd(c, OraclePath::fast), fwd(c, OraclePath::reference));
          EXPECT_EQ(mismatch, "") << name(d) << " " << name(l) << " " << s.name() << " shape " << shape;
          EXPECT_EQ(oracle_paths_mismatch(bwd(c, OraclePath::fast), bwd(c, OraclePath::reference)), "")
              << "backward " << name(d) << " " << name(l) << " " << s.name() << " shape " << shape;
          ++cases;
        }
  EXPECT_EQ(cases, 4 * 2 * static_cast<int64_t>(default_stresses().size()) * 3);
}

// The fused forms: SiLU after per-channel and per-sample parameters (and SiLU without affine),
// where the fast path evaluates z = silu(y) in double-word arithmetic (epilogue::silu_fast) and
// the reference on intervals. With SiLU, hi is the certified double nearest z on the fast path
// and the interval's midpoint's on the reference one: they agree unless z lies within 2^-128 of a
// double's rounding boundary.
TEST(OraclePaths, AgreeOnTheFusedForms) {
  for (DType d : {DType::f64, DType::f32, DType::f16, DType::bf16})
    for (const Stress& s : default_stresses())
      for (int form = 0; form < 3; ++form) {
        const Layout l = form == 1 ? Layout::nhwc : Layout::nchw;
        Problem p{.N = 2, .C = 8, .spatial = {5, 3}, .G = 4, .eps = 1e-5, .affine = form != 2, .dtype = d, .layout = l};
        p.affine_mode = form == 1 ? AffineMode::per_sample : AffineMode::per_channel;
        p.epilogue = Epilogue::silu;
        const Case c = make_case(p, parse_stress(s.name()), 21 + static_cast<uint64_t>(form), true);
        EXPECT_EQ(oracle_paths_mismatch(fwd(c, OraclePath::fast), fwd(c, OraclePath::reference)), "")
            << name(d) << " " << s.name() << " form " << form;
        EXPECT_EQ(oracle_paths_mismatch(bwd(c, OraclePath::fast), bwd(c, OraclePath::reference)), "")
            << "backward " << name(d) << " " << s.name() << " form " << form;
      }
}

// Values outside the fast path's range (f64 "huge") go to the intervals, and are counted as
// fall-backs in the fused backward pass as in the forward.
TEST(OraclePaths, FusedFallBacksAreCounted) {
  Problem p{.N = 2, .C = 8, .spatial = {5, 3}, .G = 4, .eps = 1e-5, .affine = true, .dtype = DType::f64};
  p.epilogue = Epilogue::silu;
  const Case c = make_case(p, parse_stress("huge"), 4, true);
  EXPECT_GT(fwd(c, OraclePath::fast).fallbacks, 0);
  EXPECT_GT(bwd(c, OraclePath::fast).fallbacks, 0);
  EXPECT_EQ(bwd(c, OraclePath::reference).fallbacks, 0);  // the reference path has none to count
}

// Channels of at least OracleOptions::binned_from elements take the binned sums (NarrowAcc) for
// f32, f16 and bf16: the same agreement there, on data that spans the exponent range (the
// default threshold, and 1, which bins every run).
TEST(OraclePaths, AgreeWhereTheBinnedSumsRun) {
  for (DType d : {DType::f32, DType::f16, DType::bf16, DType::f64})
    for (const char* s : {"normal", "offset:1e6", "outlier", "subnormal", "huge", "special"}) {
      const Case c = random_case(d, Layout::nhwc, s, 2, 4, {16, 20}, 2, 1e-5, true, 9);
      ASSERT_GE(c.problem.S(), 256);
      EXPECT_EQ(oracle_paths_mismatch(fwd(c, OraclePath::fast), fwd(c, OraclePath::reference)), "")
          << name(d) << " " << s;
      EXPECT_EQ(oracle_paths_mismatch(bwd(c, OraclePath::fast), bwd(c, OraclePath::reference)), "")
          << "backward " << name(d) << " " << s;
      const OracleOptions all_binned{OraclePath::fast, 1, 1};
      EXPECT_EQ(oracle_paths_mismatch(oracle_forward(c, all_binned), fwd(c, OraclePath::reference)), "");
      EXPECT_EQ(oracle_paths_mismatch(oracle_backward(c, all_binned), bwd(c, OraclePath::reference)), "");
    }
}

// Exact zeros: y where beta = 0 and x = mu (a constant group without affine) or gamma = 0; dx
// across a group whose gamma * dy are all 0 (one channel per group, gamma = 0). The fast path
// proves them and writes +0 with the reference's signed zero as hi (compared bit for bit), so they
// are no fall-backs. Signs of gamma, beta and dy are mixed, -0 included.
TEST(OraclePaths, ExactZerosWithTheReferenceSigns) {
  for (DType d : {DType::f32, DType::f64, DType::bf16}) {
    const Case constant = random_case(d, Layout::nchw, "constant", 2, 8, {4, 4}, 2, 1e-5, false, 3);
    const OracleResult fc = fwd(constant, OraclePath::fast);
    EXPECT_EQ(oracle_paths_mismatch(fc, fwd(constant, OraclePath::reference)), "") << name(d);
    EXPECT_EQ(fc.fallbacks, 0) << name(d);
    EXPECT_EQ(fc.get("y").rounded.bits(0), 0u) << name(d);

    Case c = random_case(d, Layout::nhwc, "normal", 2, 4, {5}, 4, 1e-5, true, 4);
    const double gammas[] = {0.0, -0.0, 0.0, -0.0}, betas[] = {-0.0, -0.0, 0.0, 0.0};
    for (int64_t ch = 0; ch < 4; ++ch) {
      c.gamma.set(ch, gammas[ch]);
      c.beta.set(ch, betas[ch]);
    }
    for (int64_t i = 0; i < c.dy->numel(); i += 3) c.dy->set(i, i % 2 ? -0.0 : 0.0);
    const OracleResult f = fwd(c, OraclePath::fast), b = bwd(c, OraclePath::fast);
    EXPECT_EQ(oracle_paths_mismatch(f, fwd(c, OraclePath::reference)), "") << name(d);
    EXPECT_EQ(oracle_paths_mismatch(b, bwd(c, OraclePath::reference)), "") << name(d);
    EXPECT_EQ(f.fallbacks, 0) << name(d);
    EXPECT_EQ(b.fallbacks, 0) << name(d);
    int negative_zeros = 0;
    for (double h : f.get("y").hi) negative_zeros += h == 0 && std::signbit(h);
    EXPECT_GT(negative_zeros, 0) << name(d) << ": the case should reach a -0 hi";
  }
}

// Exact ties: x = -a, a (m = 2, eps = 0) gives xhat = -1, 1 exactly; gamma = 1 and beta = 2^-24
// put y = 1 + 2^-24, the midpoint between two floats, which rounds to even (1.0f). The fast path
// cannot tell the side of an exact midpoint and must hand it over.
TEST(OraclePaths, ExactMidpointGoesToTheReference) {
  Case c = hand_case(DType::f32, 1, 2, {}, 1, 0, true, false);
  c.x.set(0, -3.0);
  c.x.set(1, 3.0);
  for (int64_t ch = 0; ch < 2; ++ch) {
    c.gamma.set(ch, 1.0);
    c.beta.set(ch, 0x1p-24);
  }
  const OracleResult f = fwd(c, OraclePath::fast), r = fwd(c, OraclePath::reference);
  EXPECT_EQ(oracle_paths_mismatch(f, r), "");
  EXPECT_EQ(f.get("y").rounded.get(1), 1.0);  // the tie, to even
  EXPECT_EQ(f.get("y").rounded.get(0), -1.0 + 0x1p-24);  // -1 + 2^-24 is a float
  EXPECT_EQ(f.fallbacks, 1);
  EXPECT_EQ(r.fallbacks, 0);
}

// Exact means that are ties of the accumulation dtype: x = {1, 1 + 2u} (m = 2) has the mean
// 1 + u, a double (f32: u = 2^-24) or exactly between two doubles (f64: u = 2^-53). The fast
// statistics know the mean exactly (no bound), so they decide the tie (to even: 1.0) instead of
// handing it over, and agree with the reference bit for bit.
TEST(OraclePaths, ExactMeanTiesAreDecided) {
  for (DType d : {DType::f32, DType::f64}) {
    Case c = hand_case(d, 1, 2, {}, 1, 1e-5, false, false);
    c.x.set(0, 1.0);
    c.x.set(1, d == DType::f32 ? 1.0 + 0x1p-23 : 1.0 + 0x1p-52);
    const OracleResult f = fwd(c, OraclePath::fast), r = fwd(c, OraclePath::reference);
    EXPECT_EQ(oracle_paths_mismatch(f, r), "") << name(d);
    EXPECT_EQ(f.get("mean").rounded.get(0), 1.0) << name(d);  // the tie, to even
    EXPECT_EQ(f.fallbacks, 0) << name(d);
  }
}

// A negative value that rounds to zero is -0: here y = -2^-150 exactly (x = 0, 1, 1, 1, 1 with
// eps = 0 gives xhat = 1/2; gamma = -2^-149), the tie between -2^-149 and -0, to the even -0.
// round_certified walked ordinals, where -0 and +0 are one value, and returned +0 on both paths
// (found by a review).
TEST(OraclePaths, NegativeTieToZeroIsMinusZero) {
  Case c = hand_case(DType::f32, 1, 1, {5}, 1, 0, true, false);
  for (int64_t i = 0; i < 5; ++i) c.x.set(i, i == 0 ? 0.0 : 1.0);
  c.gamma.set(0, -0x1p-149);
  c.beta.set(0, 0.0);
  for (OraclePath path : {OraclePath::fast, OraclePath::reference}) {
    const OracleResult r = fwd(c, path);
    for (int64_t i = 1; i < 5; ++i) EXPECT_EQ(r.get("y").rounded.bits(i), 0x80000000u) << i;
    EXPECT_EQ(r.get("y").rounded.bits(0), 2u);  // y = -gamma = 2^-148: not a zero
  }
}

// dgamma at an exact tie or an exact 0, which Ziv's loop never decides (its 4 096-bit guess fell on
// either side): x = (0, 7) with eps = 0 gives x-hat = (-1, 1) and dgamma = dy1 - dy0, here
// 1.5 + 2^-24 in f32 (to even: 1.5) or 1.5 + 2^-53 in f64; dy = (b, b) gives exactly 0 (+0).
// With N = 2 the samples' D differ by a square factor (x scaled by 2): one square class, still
// decided exactly. Found by a review of the reference path.
TEST(OraclePaths, DgammaTiesAndZerosAreDecided) {
  for (DType d : {DType::f32, DType::f64, DType::f16, DType::bf16}) {
    const double u = d == DType::f64 ? 0x1p-53 : d == DType::f32 ? 0x1p-24 : d == DType::f16 ? 0x1p-11 : 0x1p-8;
    for (int64_t N : {1, 2}) {
      Case c = hand_case(d, N, 2, {2}, 2, 0, true, true);
      const Problem& p = c.problem;
      for (int64_t ch = 0; ch < 2; ++ch) {
        c.gamma.set(ch, 1.0);
        c.beta.set(ch, 0.0);
      }
      for (int64_t n = 0; n < N; ++n) {
        const double scale = n == 0 ? 1.0 : 2.0;
        c.x.set(p.index(n, 0, 0), 0.0);
        c.x.set(p.index(n, 0, 1), 7.0 * scale);
        c.x.set(p.index(n, 1, 0), 0.0);
        c.x.set(p.index(n, 1, 1), 13.0 * scale);
        // Channel 0: dgamma = sum_n (dy1 - dy0) = 1.5 + u in all (a tie); channel 1: 0.
        c.dy->set(p.index(n, 0, 0), n == 0 ? -u : 0.0);
        c.dy->set(p.index(n, 0, 1), n == 0 ? 1.5 - (N - 1) * 0.25 : 0.25);
        c.dy->set(p.index(n, 1, 0), 0.75);
        c.dy->set(p.index(n, 1, 1), 0.75);
      }
      const OracleResult f = bwd(c, OraclePath::fast), r = bwd(c, OraclePath::reference);
      EXPECT_EQ(oracle_paths_mismatch(f, r), "") << name(d) << " N=" << N;
      for (const OracleResult* o : {&f, &r}) {
        EXPECT_EQ(o->get("dgamma").rounded.get(0), 1.5) << name(d) << " N=" << N;
        EXPECT_EQ(o->get("dgamma").rounded.bits(1), 0u) << name(d) << " N=" << N;  // +0
        EXPECT_EQ(o->undecided, 0) << name(d) << " N=" << N;
      }
    }
  }
}

// f64 groups with a subnormal x and mean 0: x - mu is the subnormal itself, and the low word of
// (x - mu) rho underflowed out of its error bound, so the fast path certified y (gamma = 2^200 scales
// the lost 2^-1076 up) and dx (q and rho do) one ulp-thousands off. Found by an independent review
// of the fast statistics; the values of such groups now go to the reference.
TEST(OraclePaths, TinyF64ValuesLeaveTheFastPath) {
  const double t = 3 * 0x1p-1074;
  auto make = [&](double eps, bool affine, std::vector<double> x, std::vector<double> dy) {
    Case c = hand_case(DType::f64, 1, 1, {4}, 1, eps, affine, true);
    for (int64_t i = 0; i < 4; ++i) {
      c.x.set(i, x[i]);
      c.dy->set(i, dy[i]);
    }
    if (affine) {
      c.gamma.set(0, 0x1p200);
      c.beta.set(0, 0.0);
    }
    return c;
  };
  // y = 2^200 x rho with rho = 1.414..: 2^-872 and a bit, not the 2^-872 the bound allowed.
  const Case a = make(1e-5, true, {t, -t, 1, -1}, {1, 2, 3, 4});
  // dx = rho (0 - 0 - x q): the bound lost x q's underflow, then rho = 2^173 scaled it.
  const double b = 1.3 * 0x1p-173;
  const Case d = make(0, false, {t, -t, 0x1p-173, -0x1p-173}, {0, 0, b, -b});
  for (const Case* c : {&a, &d}) {
    const OracleResult fy = fwd(*c, OraclePath::fast), ry = fwd(*c, OraclePath::reference);
    EXPECT_EQ(oracle_paths_mismatch(fy, ry), "");
    EXPECT_NE(fy.get("y").rounded.get(0), 0x1p-872);
    const OracleResult fb = bwd(*c, OraclePath::fast), rb = bwd(*c, OraclePath::reference);
    EXPECT_EQ(oracle_paths_mismatch(fb, rb), "");
  }
}

// On ordinary data every value is certified by the fast path: a path that silently fell back
// everywhere would still agree with the reference, so count. Constant groups included: their
// dgamma is an exact 0 the fast statistics must show as such (f64 values are not 24-bit centres).
TEST(OraclePaths, NoFallbacksOnOrdinaryData) {
  for (DType d : {DType::f64, DType::f32, DType::f16, DType::bf16})
    for (const char* s : {"normal", "offset:10000", "offset:1e8", "constant"}) {
      const Case c = random_case(d, Layout::nhwc, s, 2, 16, {8, 8}, 4, 1e-5, true, 3);
      EXPECT_EQ(fwd(c, OraclePath::fast).fallbacks, 0) << name(d) << " " << s;
      EXPECT_EQ(bwd(c, OraclePath::fast).fallbacks, 0) << "backward " << name(d) << " " << s;
      Case fused = c;
      fused.problem.epilogue = Epilogue::silu;
      EXPECT_EQ(fwd(fused, OraclePath::fast).fallbacks, 0) << "silu " << name(d) << " " << s;
    }
}

TEST(OraclePaths, ThreadCountChangesNothing) {
  const Case c = random_case(DType::f32, Layout::nhwc, "offset:1e6", 3, 12, {6, 5}, 6, 1e-5, true, 5);
  for (OraclePath path : {OraclePath::fast, OraclePath::reference})
    for (bool backward : {false, true}) {
      const OracleResult one = backward ? bwd(c, path, 1) : fwd(c, path, 1);
      const OracleResult three = backward ? bwd(c, path, 3) : fwd(c, path, 3);
      EXPECT_EQ(oracle_paths_mismatch(one, three), "");
      for (const ExactOutput& o : one.outputs) {
        const ExactOutput& t = three.get(o.name);
        for (int64_t i = 0; i < o.rounded.numel(); ++i) {
          EXPECT_EQ(std::memcmp(&o.lo[i], &t.lo[i], sizeof(double)), 0) << o.name << " " << i;
          EXPECT_TRUE(o.scale[i] == t.scale[i] || (std::isnan(o.scale[i]) && std::isnan(t.scale[i])))
              << o.name << " " << i;
        }
      }
    }
}

}  // namespace
}  // namespace gnv
