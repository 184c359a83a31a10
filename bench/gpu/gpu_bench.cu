// GPU benchmark of the gnv CUDA kernels (device pointers, gn_cuda.h) and of the roofline they are
// judged against: a device-to-device copy, counting bytes read plus bytes written.
//
//   gnv_gpu_bench [--json FILE] [--quick]
//
// Method (the same as bench/gpu/torch_bench.py, so the two compare): each timed call is preceded by
// a 256 MiB memset that evicts the 50-60 MB L2, and timed alone between two CUDA events; the median
// over the repetitions is reported. Small problems are also timed without the flush ("hot", inputs
// in L2), which is what a network sees when the producer of x just wrote it. Inputs are random
// (never zeros). The byte floor of a forward is x read + y written; of a backward x and dy read +
// dx written (the per-channel and per-group vectors are negligible here).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "gn_cuda.h"

namespace {

using gnv::cuda::Desc;
using gnv::cuda::DType;
using gnv::cuda::Layout;

void ck(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

__device__ uint32_t hash32(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return static_cast<uint32_t>(x);
}

// offset + scale * N(0, 1) (Box-Muller on two hashed uniforms), stored in the dtype.
__global__ void fill(void* p, int64_t n, int dt, uint64_t seed, float offset, float scale) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float u1 = (hash32(seed * 0x9E3779B97F4A7C15ull + 2 * i) + 1.0f) * 0x1p-32f;
    const float u2 = hash32(seed * 0x9E3779B97F4A7C15ull + 2 * i + 1) * 0x1p-32f;
    const float v = offset + scale * sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
    switch (dt) {
      case 0: static_cast<double*>(p)[i] = v; break;
      case 1: static_cast<float*>(p)[i] = v; break;
      case 2: static_cast<__half*>(p)[i] = __float2half_rn(v); break;
      default: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v); break;
    }
  }
}

void fill_dev(void* p, int64_t n, DType t, uint64_t seed, float offset, float scale) {
  fill<<<1024, 256>>>(p, n, static_cast<int>(t), seed, offset, scale);
  ck(cudaGetLastError(), "fill");
}

struct Dev {
  void* p = nullptr;
  explicit Dev(size_t bytes) {
    if (bytes) ck(cudaMalloc(&p, bytes), "cudaMalloc");
  }
  ~Dev() {
    if (p) cudaFree(p);
  }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
};

class Timer {
 public:
  Timer() : flush_(size_t{256} << 20) {
    ck(cudaEventCreate(&a_), "cudaEventCreate");
    ck(cudaEventCreate(&b_), "cudaEventCreate");
  }
  ~Timer() {
    cudaEventDestroy(a_);
    cudaEventDestroy(b_);
  }
  // Median microseconds of fn over reps runs (after warmup), each after an L2 flush if asked.
  double median_us(const std::function<void()>& fn, int reps, bool flush, double* min_us = nullptr) {
    for (int i = 0; i < 3; ++i) fn();
    ck(cudaDeviceSynchronize(), "warmup");
    std::vector<double> t;
    for (int i = 0; i < reps; ++i) {
      if (flush) ck(cudaMemsetAsync(flush_.p, i & 0xff, size_t{256} << 20), "flush");
      ck(cudaEventRecord(a_), "cudaEventRecord");
      fn();
      ck(cudaEventRecord(b_), "cudaEventRecord");
      ck(cudaEventSynchronize(b_), "cudaEventSynchronize");
      float ms = 0;
      ck(cudaEventElapsedTime(&ms, a_, b_), "cudaEventElapsedTime");
      t.push_back(ms * 1e3);
    }
    std::sort(t.begin(), t.end());
    if (min_us) *min_us = t.front();
    return t[t.size() / 2];
  }

 private:
  Dev flush_;
  cudaEvent_t a_, b_;
};

struct Record {
  std::string shape, dtype, layout, dir, variant, plan;
  double us = 0, min_us = 0, bytes = 0;
  bool finite = true;
};

const char* dname(DType t) {
  switch (t) {
    case DType::f64: return "f64";
    case DType::f32: return "f32";
    case DType::f16: return "f16";
    case DType::bf16: return "bf16";
  }
  return "?";
}

// Non-finite outputs would mean timing a broken kernel: counted on the device copy.
bool all_finite(const void* p, int64_t n, DType t) {
  const size_t eb = gnv::cuda::elem_bytes(t);
  std::vector<unsigned char> h(static_cast<size_t>(n) * eb);
  ck(cudaMemcpy(h.data(), p, h.size(), cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
  for (int64_t i = 0; i < n; ++i) {
    const unsigned char* q = h.data() + i * eb;
    bool fin = true;
    if (t == DType::f32) {
      float v;
      std::memcpy(&v, q, 4);
      fin = std::isfinite(v);
    } else if (t == DType::f64) {
      double v;
      std::memcpy(&v, q, 8);
      fin = std::isfinite(v);
    } else {
      uint16_t b;
      std::memcpy(&b, q, 2);
      fin = t == DType::f16 ? ((b & 0x7c00) != 0x7c00) : ((b & 0x7f80) != 0x7f80);
    }
    if (!fin) return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string json;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json" && i + 1 < argc) json = argv[++i];
    else if (a == "--quick") quick = true;
    else {
      std::fprintf(stderr, "usage: gnv_gpu_bench [--json FILE] [--quick]\n");
      return 2;
    }
  }
  if (!gnv::cuda_available()) {
    std::printf("gnv_gpu_bench: skipped: %s\n", gnv::cuda_unavailable_reason().c_str());
    return 77;
  }
  try {
    cudaDeviceProp prop{};
    int dev = 0;
    ck(cudaGetDevice(&dev), "cudaGetDevice");
    ck(cudaGetDeviceProperties(&prop, dev), "cudaGetDeviceProperties");
    std::printf("device: %s, %d SMs, L2 %d MB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);
    Timer timer;
    std::vector<Record> recs;

    // The roofline: a 1 GiB device-to-device copy (far beyond L2), bytes read + written.
    const size_t cb = size_t{1} << 30;
    double copy_gbps = 0;
    {
      Dev src(cb), dst(cb);
      fill_dev(src.p, static_cast<int64_t>(cb / 4), DType::f32, 1, 0.5f, 1.0f);
      double mn = 0;
      const double us = timer.median_us([&] { ck(cudaMemcpyAsync(dst.p, src.p, cb, cudaMemcpyDeviceToDevice), "copy"); }, 20, false, &mn);
      copy_gbps = 2.0 * cb / (us * 1e3);
      recs.push_back({"1GiB", "-", "-", "copy", "cudaMemcpy D2D", "", us, mn, 2.0 * cb, true});
      std::printf("copy 1 GiB D2D: %.1f us, %.0f GB/s (read + write)\n", us, copy_gbps);
    }

    struct Sh {
      int64_t N, C, H, W;
      DType t;
    };
    std::vector<Sh> shapes = {{16, 512, 64, 64, DType::f32}, {8, 256, 128, 128, DType::bf16},
                              {2, 320, 64, 64, DType::f16}, {64, 128, 56, 56, DType::f32}};
    if (quick) shapes.resize(3);
    for (const Sh& sh : shapes) {
      const int64_t numel = sh.N * sh.C * sh.H * sh.W;
      const size_t eb = gnv::cuda::elem_bytes(sh.t), xb = static_cast<size_t>(numel) * eb;
      const size_t cbytes = static_cast<size_t>(sh.C) * eb, sbytes = static_cast<size_t>(sh.N * 32) * gnv::cuda::acc_bytes(sh.t);
      char shape[64];
      std::snprintf(shape, sizeof shape, "%lldx%lldx%lldx%lld", static_cast<long long>(sh.N), static_cast<long long>(sh.C),
                    static_cast<long long>(sh.H), static_cast<long long>(sh.W));
      const bool small = 2 * xb < (size_t{32} << 20);
      const int reps = small ? 200 : 50;
      Dev x(xb), y(xb), dy(xb), dx(xb), gamma(cbytes), beta(cbytes), dgamma(cbytes), dbeta(cbytes), mean(sbytes), rstd(sbytes);
      fill_dev(x.p, numel, sh.t, 2, 0.5f, 1.0f);
      fill_dev(dy.p, numel, sh.t, 3, 0.0f, 1.0f);
      fill_dev(gamma.p, sh.C, sh.t, 4, 1.0f, 0.1f);
      fill_dev(beta.p, sh.C, sh.t, 5, 0.0f, 0.1f);
      // A same-size copy: the roofline at this size (latency included), for reference.
      {
        double mn = 0;
        const double us = timer.median_us([&] { ck(cudaMemcpyAsync(y.p, x.p, xb, cudaMemcpyDeviceToDevice), "copy"); }, reps, true, &mn);
        recs.push_back({shape, dname(sh.t), "-", "copy", "cudaMemcpy D2D (same size)", "", us, mn, 2.0 * xb, true});
      }
      for (Layout l : {Layout::nchw, Layout::nhwc}) {
        const Desc d{sh.N, sh.C, sh.H * sh.W, 32, 1e-5, sh.t, l};
        const char* ln = l == Layout::nchw ? "nchw" : "nhwc";
        gnv::cuda::Options split;
        split.path = gnv::cuda::Path::split;
        size_t wsb = 0;
        for (const gnv::cuda::Options& o : {gnv::cuda::Options{}, split})
          wsb = std::max({wsb, gnv::cuda::workspace_bytes(d, false, o), gnv::cuda::workspace_bytes(d, true, o)});
        Dev ws(wsb);
        struct Variant {
          const char* name;
          gnv::cuda::Options o;
          bool flush;
        };
        std::vector<Variant> variants = {{"gnv", {}, true}, {"gnv split path", split, true}};
        if (small) variants.push_back({"gnv hot (L2)", {}, false});
        for (const Variant& v : variants) {
          const auto fwd = [&] { gnv::cuda::forward(d, x.p, gamma.p, beta.p, y.p, mean.p, rstd.p, ws.p, wsb, nullptr, v.o); };
          const auto bwd = [&] {
            gnv::cuda::backward(d, dy.p, x.p, mean.p, rstd.p, gamma.p, beta.p, dx.p, dgamma.p, dbeta.p, ws.p, wsb, nullptr, v.o);
          };
          double mn = 0;
          double us = timer.median_us(fwd, reps, v.flush, &mn);
          recs.push_back({shape, dname(sh.t), ln, "fwd", v.name, gnv::cuda::describe_plan(d, false, v.o), us, mn, 2.0 * xb,
                          all_finite(y.p, numel, sh.t)});
          us = timer.median_us(bwd, reps, v.flush, &mn);
          recs.push_back({shape, dname(sh.t), ln, "bwd", v.name, gnv::cuda::describe_plan(d, true, v.o), us, mn, 3.0 * xb,
                          all_finite(dx.p, numel, sh.t)});
        }
      }
      ck(cudaDeviceSynchronize(), "shape done");
    }

    std::printf("\n%-16s %-5s %-6s %-4s %-26s %10s %8s %7s  %s\n", "shape", "dtype", "layout", "dir", "variant", "median_us",
                "GB/s", "%copy", "plan");
    for (const Record& r : recs) {
      const double gbps = r.bytes / (r.us * 1e3);
      std::printf("%-16s %-5s %-6s %-4s %-26s %10.2f %8.0f %6.1f%%  %s%s\n", r.shape.c_str(), r.dtype.c_str(),
                  r.layout.c_str(), r.dir.c_str(), r.variant.c_str(), r.us, gbps, 100 * gbps / copy_gbps, r.plan.c_str(),
                  r.finite ? "" : "  NON-FINITE OUTPUT");
    }
    if (!json.empty()) {
      FILE* f = std::fopen(json.c_str(), "w");
      if (!f) throw std::runtime_error("cannot write " + json);
      std::fprintf(f, "{\"device\": \"%s\", \"sms\": %d, \"copy_gbps\": %.3f, \"records\": [\n", prop.name,
                   prop.multiProcessorCount, copy_gbps);
      for (size_t i = 0; i < recs.size(); ++i) {
        const Record& r = recs[i];
        std::fprintf(f,
                     "  {\"impl\": \"gnv\", \"shape\": \"%s\", \"dtype\": \"%s\", \"layout\": \"%s\", \"dir\": \"%s\", "
                     "\"variant\": \"%s\", \"plan\": \"%s\", \"median_us\": %.3f, \"min_us\": %.3f, \"bytes\": %.0f, "
                     "\"finite\": %s}%s\n",
                     r.shape.c_str(), r.dtype.c_str(), r.layout.c_str(), r.dir.c_str(), r.variant.c_str(), r.plan.c_str(), r.us,
                     r.min_us, r.bytes, r.finite ? "true" : "false", i + 1 < recs.size() ? "," : "");
      }
      std::fprintf(f, "]}\n");
      std::fclose(f);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gnv_gpu_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
