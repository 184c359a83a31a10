// Speed of the exact oracle (elements per second, one thread), both evaluations side by side:
// OraclePath::fast and OraclePath::reference (every value in MPFR), forward and backward, per
// dtype and group size m from 16 to 2^20, beside a plain float64 two-pass GroupNorm (not
// correctly rounded: the reference most people use) measured in the same run. Ratios belong
// between rows of one run (docs/benchmarks.md "The oracle"). Rows ending in /silu add the SiLU
// epilogue (f32 and bf16, m 256 and 4096).
//   bench_oracle --benchmark_filter='/f32/m4096'      one dtype and group size
#include <benchmark/benchmark.h>

#include <cmath>
#include <string>
#include <vector>

#include "gnv/case.h"
#include "gnv/oracle.h"
#include "gnv/stress.h"

namespace {

// numel = max(2^16, m): G groups of m elements, two channels per group, N = 1.
gnv::Case bench_case(gnv::DType d, int64_t m, bool backward, bool silu = false) {
  gnv::Problem p;
  p.N = 1;
  p.G = std::max<int64_t>(1, (int64_t{1} << 16) / m);
  p.C = 2 * p.G;
  p.spatial = {m / 2};
  p.affine = true;
  p.dtype = d;
  p.layout = gnv::Layout::nchw;
  if (silu) p.epilogue = gnv::Epilogue::silu;
  return gnv::make_case(p, gnv::parse_stress("normal"), 1, backward);
}

void BM_Oracle(benchmark::State& state, gnv::OraclePath path, bool backward, gnv::DType d, int64_t m, bool silu) {
  const gnv::Case c = bench_case(d, m, backward, silu);
  const gnv::OracleOptions o{path, 1};
  int64_t fallbacks = 0;
  for (auto _ : state) {
    const gnv::OracleResult r = backward ? gnv::oracle_backward(c, o) : gnv::oracle_forward(c, o);
    fallbacks = r.fallbacks;
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations() * c.problem.numel());
  state.counters["fallbacks"] = static_cast<double>(fallbacks);
}

// What a float64 reference usually is: two passes for mean and variance, then y (and dx, dgamma,
// dbeta), every operation rounded in double. Reads the same case, writes doubles.
void BM_Float64TwoPass(benchmark::State& state, bool backward, gnv::DType d, int64_t m) {
  const gnv::Case c = bench_case(d, m, backward);
  const gnv::Problem& p = c.problem;
  const int64_t S = p.S(), cpg = p.channels_per_group(), n = p.numel();
  std::vector<double> x(n), dy(backward ? n : 0), gam(p.C), bet(p.C), y(n), dgam(p.C), dbet(p.C);
  for (int64_t i = 0; i < n; ++i) x[i] = c.x.get(i);
  for (int64_t i = 0; i < static_cast<int64_t>(dy.size()); ++i) dy[i] = c.dy->get(i);
  for (int64_t ch = 0; ch < p.C; ++ch) {
    gam[ch] = c.gamma.get(ch);
    bet[ch] = c.beta.get(ch);
  }
  for (auto _ : state) {
    std::fill(dgam.begin(), dgam.end(), 0.0);
    std::fill(dbet.begin(), dbet.end(), 0.0);
    for (int64_t g = 0; g < p.G; ++g) {  // N = 1, nchw: group g is contiguous
      const int64_t base = g * m;
      double s = 0, v = 0;
      for (int64_t j = 0; j < m; ++j) s += x[base + j];
      const double mu = s / static_cast<double>(m);
      for (int64_t j = 0; j < m; ++j) v += (x[base + j] - mu) * (x[base + j] - mu);
      const double rstd = 1 / std::sqrt(v / static_cast<double>(m) + p.eps);
      if (!backward) {
        for (int64_t j = 0; j < m; ++j) {
          const int64_t ch = g * cpg + j / S;
          y[base + j] = (x[base + j] - mu) * rstd * gam[ch] + bet[ch];
        }
        continue;
      }
      double sg = 0, sgx = 0;
      for (int64_t j = 0; j < m; ++j) {
        const int64_t ch = g * cpg + j / S;
        const double xh = (x[base + j] - mu) * rstd, gj = gam[ch] * dy[base + j];
        sg += gj;
        sgx += gj * xh;
        dgam[ch] += dy[base + j] * xh;
        dbet[ch] += dy[base + j];
      }
      for (int64_t j = 0; j < m; ++j) {
        const int64_t ch = g * cpg + j / S;
        const double xh = (x[base + j] - mu) * rstd;
        y[base + j] = rstd * (gam[ch] * dy[base + j] - sg / static_cast<double>(m) - xh * sgx / static_cast<double>(m));
      }
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::DoNotOptimize(dgam.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * n);
}

const int kRegistered = [] {
  for (bool backward : {false, true})
    for (gnv::DType d : {gnv::DType::f64, gnv::DType::f32, gnv::DType::f16, gnv::DType::bf16})
      for (int64_t m : {int64_t{16}, int64_t{256}, int64_t{4096}, int64_t{65536}, int64_t{1} << 20}) {
        const std::string tail =
            std::string(backward ? "backward/" : "forward/") + std::string(gnv::name(d)) + "/m" + std::to_string(m);
        benchmark::RegisterBenchmark(("fast/" + tail).c_str(), BM_Oracle, gnv::OraclePath::fast, backward, d, m, false)
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark(("reference/" + tail).c_str(), BM_Oracle, gnv::OraclePath::reference, backward,
                                     d, m, false)
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark(("float64_two_pass/" + tail).c_str(), BM_Float64TwoPass, backward, d, m)
            ->Unit(benchmark::kMillisecond);
        if ((d == gnv::DType::f32 || d == gnv::DType::bf16) && (m == 256 || m == 4096))
          for (gnv::OraclePath path : {gnv::OraclePath::fast, gnv::OraclePath::reference})
            benchmark::RegisterBenchmark(
                ((path == gnv::OraclePath::fast ? "fast/" : "reference/") + tail + "/silu").c_str(), BM_Oracle,
                path, backward, d, m, true)
                ->Unit(benchmark::kMillisecond);
      }
  return 0;
}();

}  // namespace

BENCHMARK_MAIN();
