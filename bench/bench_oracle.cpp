// Speed of the exact oracle (elements per second), forward and backward, f32 input. The oracle
// dominates the cost of every check, so this bounds how large a sweep can be.
#include <benchmark/benchmark.h>

#include "gnv/case.h"
#include "gnv/oracle.h"

namespace {

gnv::Case bench_case(int64_t N, int64_t C, int64_t H, int64_t W, int64_t G, const char* stress,
                     bool backward) {
  gnv::Problem p;
  p.N = N;
  p.C = C;
  p.spatial = {H, W};
  p.G = G;
  p.affine = true;
  p.dtype = gnv::DType::f32;
  return gnv::make_case(p, gnv::parse_stress(stress), 1, backward);
}

void BM_OracleForward(benchmark::State& state, const char* stress) {
  const gnv::Case c = bench_case(2, 32, 32, 32, 8, stress, false);
  for (auto _ : state) benchmark::DoNotOptimize(gnv::oracle_forward(c));
  state.SetItemsProcessed(state.iterations() * c.problem.numel());
}

void BM_OracleBackward(benchmark::State& state, const char* stress) {
  const gnv::Case c = bench_case(2, 32, 32, 32, 8, stress, true);
  for (auto _ : state) benchmark::DoNotOptimize(gnv::oracle_backward(c));
  state.SetItemsProcessed(state.iterations() * c.problem.numel());
}

BENCHMARK_CAPTURE(BM_OracleForward, normal, "normal")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_OracleForward, offset_1e6, "offset:1e6")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_OracleForward, huge, "huge")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_OracleBackward, normal, "normal")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_OracleBackward, huge, "huge")->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
