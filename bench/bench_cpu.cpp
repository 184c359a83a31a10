// CPU GroupNorm speed: naive, welford, onepass and simd against a plain copy of the same bytes
// (the memory roofline) and, when built with libtorch (GNV_BENCH_TORCH), PyTorch's CPU GroupNorm
// with contiguous and channels_last input. Speed is measured here and never asserted in tests.
//
// Names: <fwd|bwd>/<dtype>/<layout>/<shape>/G<g>/t<threads>/<impl>. After the runs a Markdown
// table prints one row per configuration with each implementation's time and the ratios
// simd/copy and simd/torch (torch in the same memory format as the row's layout).
//   build/<dir>/bench/bench_cpu --benchmark_filter='fwd/f32/.*/t2/' --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include <cstring>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "gnv/dtype.h"
#include "gnv/impl.h"
#include "gnv/problem.h"
#include "gnv/tensor.h"
#include "gnv/threads.h"

#ifdef GNV_BENCH_TORCH
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#endif

namespace {
using namespace gnv;

struct Shape {
  int64_t N, C;
  std::vector<int64_t> sp;
  int64_t G;
};
const Shape kShapes[] = {{8, 256, {64, 64}, 32},
                         {1, 512, {32, 32}, 32},
                         {32, 64, {28, 28}, 8},
                         {2, 320, {64, 64}, 32},
                         {4, 128, {16, 32, 32}, 32}};

std::string shape_name(const Shape& s) {
  std::string r = fmt::format("{}x{}", s.N, s.C);
  for (int64_t e : s.sp) r += fmt::format("x{}", e);
  return r;
}

Problem make_problem(const Shape& s, DType d, Layout l) {
  Problem p;
  p.N = s.N;
  p.C = s.C;
  p.spatial = s.sp;
  p.G = s.G;
  p.eps = 1e-5;
  p.affine = true;
  p.dtype = d;
  p.layout = l;
  p.validate();
  return p;
}

Tensor random_tensor(DType d, std::vector<int64_t> shape, double mean, uint64_t seed) {
  Tensor t(d, std::move(shape));
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> dist(mean, 1.0);
  for (int64_t i = 0; i < t.numel(); ++i) t.set(i, dist(rng));
  return t;
}

struct Data {
  Problem p;
  Tensor x, dy, gamma, beta, y, mean, rstd, dx, dgamma, dbeta;
  explicit Data(const Problem& pr)
      : p(pr), x(random_tensor(p.dtype, p.x_shape(), 0.5, 1)), dy(random_tensor(p.dtype, p.x_shape(), 0, 2)),
        gamma(random_tensor(p.dtype, p.param_shape(), 1, 3)), beta(random_tensor(p.dtype, p.param_shape(), 0, 4)),
        y(p.dtype, p.x_shape()), mean(acc_dtype(p.dtype), p.stats_shape()), rstd(acc_dtype(p.dtype), p.stats_shape()),
        dx(p.dtype, p.x_shape()), dgamma(p.dtype, p.param_shape()), dbeta(p.dtype, p.param_shape()) {}
};

void bench_impl(benchmark::State& st, const Impl* impl, Problem p, bool bwd, int threads) {
  Data d(p);
  set_cpu_threads(threads);
  impl->forward(ForwardArgs{d.p, d.x, &d.gamma, &d.beta, d.y, d.mean, d.rstd});
  for (auto _ : st) {
    if (bwd)
      impl->backward(BackwardArgs{d.p, d.dy, d.x, d.mean, d.rstd, &d.gamma, &d.beta, d.dx, &d.dgamma, &d.dbeta});
    else
      impl->forward(ForwardArgs{d.p, d.x, &d.gamma, &d.beta, d.y, d.mean, d.rstd});
    benchmark::ClobberMemory();
  }
  set_cpu_threads(0);
  st.SetBytesProcessed(st.iterations() * static_cast<int64_t>(d.x.nbytes()) * (bwd ? 3 : 2));
}

// The roofline: x's bytes copied into a preallocated buffer, split over the same thread count
// (one contiguous part per thread).
void bench_copy(benchmark::State& st, Problem p, int threads) {
  Data d(p);
  const char* src = static_cast<const char*>(d.x.raw());
  char* dst = static_cast<char*>(d.y.raw());
  const size_t n = d.x.nbytes();
  for (auto _ : st) {
    // The same persistent pool simd uses, so neither side pays for thread creation.
    const size_t part = (n + threads - 1) / threads;
    ThreadPool::instance().run(threads, threads, [&](int64_t t) {
      const size_t lo = std::min(n, static_cast<size_t>(t) * part), hi = std::min(n, lo + part);
      std::memcpy(dst + lo, src + lo, hi - lo);
    });
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(st.iterations() * static_cast<int64_t>(n) * 2);
}

#ifdef GNV_BENCH_TORCH
void bench_torch(benchmark::State& st, Problem p, bool bwd, int threads, bool channels_last) {
  at::set_num_threads(threads);
  const at::ScalarType t = p.dtype == DType::bf16 ? at::kBFloat16 : at::kFloat;
  std::vector<int64_t> shape{p.N, p.C};
  for (int64_t e : p.spatial) shape.push_back(e);
  at::Tensor x = at::randn(shape, at::TensorOptions().dtype(t)) + 0.5;
  if (channels_last)
    x = x.contiguous(shape.size() == 5 ? at::MemoryFormat::ChannelsLast3d : at::MemoryFormat::ChannelsLast);
  at::Tensor dy = at::randn_like(x);
  at::Tensor gamma = at::randn({p.C}, at::TensorOptions().dtype(t)), beta = at::randn({p.C}, at::TensorOptions().dtype(t));
  const int64_t HxW = p.S();
  auto [y, mean, rstd] = at::native_group_norm(x, gamma, beta, p.N, p.C, HxW, p.G, p.eps);
  for (auto _ : st) {
    if (bwd) {
      auto r = at::native_group_norm_backward(dy, x, mean, rstd, gamma, p.N, p.C, HxW, p.G, {true, true, true});
      benchmark::DoNotOptimize(std::get<0>(r).data_ptr());
    } else {
      auto r = at::native_group_norm(x, gamma, beta, p.N, p.C, HxW, p.G, p.eps);
      benchmark::DoNotOptimize(std::get<0>(r).data_ptr());
    }
  }
}
#endif

// Collects every run's time, then prints the ratio table.
class TableReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs)
      if (!r.error_occurred && r.run_type == Run::RT_Iteration) {
        const std::string name = r.run_name.function_name;  // without /real_time etc.
        const size_t cut = name.rfind('/');
        const std::string key = name.substr(0, cut), impl = name.substr(cut + 1);
        if (!times_.count(key)) order_.push_back(key);
        times_[key][impl] = r.GetAdjustedRealTime();  // in the run's time unit (ms below)
      }
    ConsoleReporter::ReportRuns(runs);
  }
  void Table() const {
    const char* impls[] = {"naive", "welford", "onepass", "simd", "copy", "torch", "torch_cl"};
    fmt::print("\n| config | naive | welford | onepass | simd | copy | torch | torch_cl | simd/copy | simd/torch |\n");
    fmt::print("|---|---|---|---|---|---|---|---|---|---|\n");
    for (const std::string& key : order_) {
      const auto& t = times_.at(key);
      std::string row = "| " + key + " |";
      for (const char* i : impls) row += t.count(i) ? fmt::format(" {:.3f} |", t.at(i)) : " - |";
      auto ratio = [&](const char* a, const char* b) {
        return t.count(a) && t.count(b) ? fmt::format(" {:.2f} |", t.at(a) / t.at(b)) : std::string(" - |");
      };
      row += ratio("simd", "copy");
      // The same memory format as the row's layout.
      row += ratio("simd", key.find("/nhwc/") != std::string::npos ? "torch_cl" : "torch");
      fmt::print("{}\n", row);
    }
  }

 private:
  std::vector<std::string> order_;
  std::map<std::string, std::map<std::string, double>> times_;
};

void register_all() {
  for (bool bwd : {false, true})
    for (DType dt : {DType::f32, DType::bf16})
      for (Layout l : {Layout::nchw, Layout::nhwc})
        for (const Shape& s : kShapes)
          for (int threads : {1, 2}) {
            const Problem p = make_problem(s, dt, l);
            const std::string key = fmt::format("{}/{}/{}/{}/G{}/t{}", bwd ? "bwd" : "fwd", name(dt), name(l),
                                                shape_name(s), s.G, threads);
            for (const char* in : {"naive", "welford", "onepass", "simd"}) {
              const Impl* impl = Registry::instance().find(in);
              if (!impl) continue;
              benchmark::RegisterBenchmark((key + "/" + in).c_str(), bench_impl, impl, p, bwd, threads)
                  ->Unit(benchmark::kMillisecond)
                  ->UseRealTime();
            }
            benchmark::RegisterBenchmark((key + "/copy").c_str(), bench_copy, p, threads)
                ->Unit(benchmark::kMillisecond)
                ->UseRealTime();
#ifdef GNV_BENCH_TORCH
            benchmark::RegisterBenchmark((key + (l == Layout::nhwc ? "/torch_cl" : "/torch")).c_str(), bench_torch, p,
                                         bwd, threads, l == Layout::nhwc)
                ->Unit(benchmark::kMillisecond)
                ->UseRealTime();
#endif
          }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  TableReporter rep;
  benchmark::RunSpecifiedBenchmarks(&rep);
  rep.Table();
  benchmark::Shutdown();
  return 0;
}
