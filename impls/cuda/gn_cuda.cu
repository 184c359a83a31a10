// The host side of the CUDA implementation: availability, validation, planning, workspace layout,
// and the host-memory wrappers. Every CUDA call is checked; every problem is validated before
// anything is launched.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>

#include "gn_cuda.h"
#include "internal.h"

namespace gnv {

namespace {

struct Availability {
  bool ok = false;
  std::string why;
};

const Availability& availability() {
  static const Availability a = [] {
    Availability r;
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      r.why = std::string("no usable CUDA device (cudaGetDeviceCount: ") + cudaGetErrorName(e) + ": " +
              cudaGetErrorString(e) + ")";
      return r;
    }
    if (n == 0) {
      r.why = "no CUDA device is visible";
      return r;
    }
    int dev = 0;
    cudaDeviceProp prop{};
    if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
      (void)cudaGetLastError();
      r.why = "cannot read the properties of the current CUDA device";
      return r;
    }
    if (prop.major < 9) {
      r.why = std::string("device ") + prop.name + " has compute capability " + std::to_string(prop.major) + "." +
              std::to_string(prop.minor) + "; the kernels are built for 9.0 (sm_90) and newer";
      return r;
    }
    r.ok = true;
    return r;
  }();
  return a;
}

}  // namespace

bool cuda_available() { return availability().ok; }
std::string cuda_unavailable_reason() { return availability().why; }

namespace cuda {

namespace d = detail;

size_t elem_bytes(DType t) {
  switch (t) {
    case DType::f64: return 8;
    case DType::f32: return 4;
    case DType::f16:
    case DType::bf16: return 2;
  }
  throw std::invalid_argument("dtype: not one of f64, f32, f16, bf16");
}
size_t acc_bytes(DType t) { return t == DType::f64 ? 8 : 4; }
size_t param_bytes(const Desc& d) {
  return static_cast<size_t>(d.per_sample ? d.N * d.C : d.C) * elem_bytes(d.dtype);
}

Options& default_options() {
  static Options o;
  return o;
}

namespace {

int dt_code(DType t) {
  switch (t) {
    case DType::f64: return d::kF64;
    case DType::f32: return d::kF32;
    case DType::f16: return d::kF16;
    case DType::bf16: return d::kBF16;
  }
  throw std::invalid_argument("dtype: not one of f64, f32, f16, bf16");
}

int64_t mul_checked(int64_t a, int64_t b, const char* what) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) throw std::invalid_argument(std::string(what) + ": size overflows int64");
  return r;
}

void require_device() {
  if (!cuda_available()) throw std::runtime_error("cuda: " + cuda_unavailable_reason());
}

d::DeviceInfo device_info() {
  static std::mutex mu;
  static std::map<int, d::DeviceInfo> cache;
  int dev = 0;
  d::check(cudaGetDevice(&dev), "cudaGetDevice", __FILE__, __LINE__);
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(dev);
  if (it != cache.end()) return it->second;
  cudaDeviceProp prop{};
  d::check(cudaGetDeviceProperties(&prop, dev), "cudaGetDeviceProperties", __FILE__, __LINE__);
  d::DeviceInfo info;
  info.sms = prop.multiProcessorCount;
  info.clusters = prop.major >= 9;
  info.max_cluster = d::kMaxCluster;
  cache[dev] = info;
  return info;
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

d::PlanRequest request(const Desc& ds, bool backward, const Options& o, bool aligned) {
  d::PlanRequest r;
  r.N = ds.N;
  r.C = ds.C;
  r.S = ds.S;
  r.G = ds.G;
  r.elem = static_cast<int>(elem_bytes(ds.dtype));
  r.nhwc = ds.layout == Layout::nhwc;
  r.backward = backward;
  r.aligned = aligned;
  r.path = o.path == Path::split ? d::PathChoice::split : d::PathChoice::automatic;
  r.force_k = o.force_parts;
  r.force_threads = o.force_threads;
  return r;
}

// The plan to run: the planner's choice, moved to the split path when the fused launch cannot be
// resident (cluster occupancy 0, e.g. with too much shared memory per block).
d::Plan choose_plan(const Desc& ds, bool backward, bool affine_grads, const Options& o, bool aligned) {
  d::PlanRequest r = request(ds, backward, o, aligned);
  const d::DeviceInfo dev = device_info();
  d::Plan p = d::make_plan(r, dev);
  if (p.fused && p.k > 1) {
    static std::mutex mu;
    static std::map<std::tuple<int, int, bool, int, int64_t, int64_t, bool, bool, bool>, bool> cache;
    const int dt = dt_code(ds.dtype);
    const bool silu_bwd = backward && ds.uses_silu();  // another backward kernel
    const auto key = std::make_tuple(dt, p.W, p.nhwc, p.T, p.k, p.CW, backward, affine_grads, silu_bwd);
    bool fits;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = cache.find(key);
      if (it != cache.end()) {
        fits = it->second;
      } else {
        fits = backward ? d::fused_fits_backward(dt, p, affine_grads, silu_bwd) : d::fused_fits_forward(dt, p);
        cache[key] = fits;
      }
    }
    if (!fits) {
      r.path = d::PathChoice::split;
      p = d::make_plan(r, dev);
    }
  }
  return p;
}

std::string plan_text(const Desc& ds, const d::Plan& p) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s %s W=%d V=%d T=%d k=%lld blocks=%lld%s", p.nhwc ? "nhwc" : "nchw",
                p.fused ? "fused" : "split", p.W, p.V, p.T, static_cast<long long>(p.k),
                static_cast<long long>(p.blocks()),
                p.nhwc ? (" CW=" + std::to_string(p.CW) + " RT=" + std::to_string(p.RT)).c_str() : "");
  (void)ds;
  return buf;
}

d::Args make_args(const Desc& ds, const d::Plan& p) {
  d::Args a;
  a.eps = ds.eps;
  a.N = ds.N;
  a.C = ds.C;
  a.S = ds.S;
  a.G = ds.G;
  a.cpg = ds.C / ds.G;
  a.m = a.cpg * ds.S;
  a.k = p.k;
  a.L = p.L;
  a.CW = p.CW;
  a.TPS = p.TPS;
  a.CWv = p.CWv;
  a.RT = p.RT;
  a.fast_ok = a.m < (int64_t{1} << 32);
  a.nhwc = p.nhwc;
  a.silu = ds.uses_silu();
  a.per_sample = ds.per_sample;
  if (a.fast_ok) a.divS = d::make_fastdiv(static_cast<uint32_t>(ds.S));
  return a;
}

void place_workspace(d::Args& a, const d::WsLayout& w, void* ws, size_t ws_size) {
  if (w.total > 0 && (ws == nullptr || ws_size < w.total))
    throw std::invalid_argument("workspace: " + std::to_string(w.total) + " bytes needed, " +
                                std::to_string(ws == nullptr ? 0 : ws_size) + " given");
  auto* base = static_cast<unsigned char*>(ws);
  a.ws_part = w.part ? base + w.part_off : nullptr;
  a.ws_chan = w.chan ? base + w.chan_off : nullptr;
  a.ws_group = w.group ? base + w.group_off : nullptr;
  a.e = w.e ? base + w.e_off : nullptr;
}

}  // namespace

void validate(const Desc& ds) {
  if (ds.N < 0) throw std::invalid_argument("N: must be >= 0");
  if (ds.C < 1) throw std::invalid_argument("C: must be >= 1");
  if (ds.S < 1) throw std::invalid_argument("S: must be >= 1");
  if (ds.G < 1) throw std::invalid_argument("G: must be >= 1");
  if (ds.C % ds.G != 0) throw std::invalid_argument("G: C % G != 0");
  if (!(std::isfinite(ds.eps) && ds.eps >= 0)) throw std::invalid_argument("eps: must be finite and >= 0");
  (void)dt_code(ds.dtype);
  if (ds.layout != Layout::nchw && ds.layout != Layout::nhwc) throw std::invalid_argument("layout: not nchw or nhwc");
  const int64_t numel = mul_checked(mul_checked(ds.N, ds.C, "numel"), ds.S, "numel");
  (void)mul_checked(numel, static_cast<int64_t>(elem_bytes(ds.dtype)), "bytes");
}

size_t workspace_bytes(const Desc& ds, bool backward, const Options& o) {
  validate(ds);
  require_device();
  if (ds.N == 0) return 0;
  const d::DeviceInfo dev = device_info();
  size_t best = 0;
  for (bool aligned : {true, false})
    for (bool split : {false, true}) {
      Options oo = o;
      if (split) oo.path = Path::split;
      const d::Plan p = d::make_plan(request(ds, backward, oo, aligned), dev);
      const d::WsLayout w = d::ws_layout(ds, p, backward, true);
      best = std::max(best, w.total);
    }
  return best;
}

std::string describe_plan(const Desc& ds, bool backward, const Options& o) {
  validate(ds);
  require_device();
  return plan_text(ds, choose_plan(ds, backward, true, o, true));
}

void forward(const Desc& ds, const void* x, const void* gamma, const void* beta, void* y, void* mean, void* rstd,
             void* workspace, size_t workspace_size, CUstream_st* stream, const Options& o) {
  validate(ds);
  require_device();
  if (ds.N == 0) return;
  if (!x || !y || !mean || !rstd) throw std::invalid_argument("forward: x, y, mean and rstd must not be null");
  const bool aligned = aligned16(x) && aligned16(y);
  const d::Plan p = choose_plan(ds, false, false, o, aligned);
  d::Args a = make_args(ds, p);
  a.x = x;
  a.gamma = gamma;
  a.beta = beta;
  a.y = y;
  a.mean = mean;
  a.rstd = rstd;
  place_workspace(a, d::ws_layout(ds, p, false, false), workspace, workspace_size);
  d::run_forward(dt_code(ds.dtype), p, a, reinterpret_cast<cudaStream_t>(stream));
}

void backward(const Desc& ds, const void* dy, const void* x, const void* mean, const void* rstd, const void* gamma,
              const void* beta, void* dx, void* dgamma, void* dbeta, void* workspace, size_t workspace_size,
              CUstream_st* stream, const Options& o) {
  validate(ds);
  require_device();
  const cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  const size_t cbytes = param_bytes(ds);
  if (ds.N == 0) {  // empty sums: the parameter gradients are +0
    if (dgamma) d::check(cudaMemsetAsync(dgamma, 0, cbytes, s), "cudaMemsetAsync(dgamma)", __FILE__, __LINE__);
    if (dbeta) d::check(cudaMemsetAsync(dbeta, 0, cbytes, s), "cudaMemsetAsync(dbeta)", __FILE__, __LINE__);
    return;
  }
  if (!dy || !x || !mean || !rstd || !dx)
    throw std::invalid_argument("backward: dy, x, mean, rstd and dx must not be null");
  const bool affine_grads = dgamma != nullptr || dbeta != nullptr;
  const bool aligned = aligned16(x) && aligned16(dy) && aligned16(dx);
  const d::Plan p = choose_plan(ds, true, affine_grads, o, aligned);
  d::Args a = make_args(ds, p);
  a.x = x;
  a.dy = dy;
  a.gamma = gamma;
  a.beta = beta;
  a.y = dx;
  a.mean = const_cast<void*>(mean);
  a.rstd = const_cast<void*>(rstd);
  a.dgamma = dgamma;
  a.dbeta = dbeta;
  a.affine_grads = affine_grads;
  place_workspace(a, d::ws_layout(ds, p, true, affine_grads), workspace, workspace_size);
  d::run_backward(dt_code(ds.dtype), p, a, s);
}

namespace {

// A device allocation that frees itself (errors on free are ignored: the destructor may run while
// an exception about an earlier CUDA error is in flight).
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    if (bytes_ > 0) d::check(cudaMalloc(&p_, bytes_), "cudaMalloc", __FILE__, __LINE__);
  }
  ~DeviceBuffer() {
    if (p_) (void)cudaFree(p_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return p_; }
  void upload(const void* host) {
    if (p_ && host) d::check(cudaMemcpy(p_, host, bytes_, cudaMemcpyHostToDevice), "cudaMemcpy H2D", __FILE__, __LINE__);
  }
  void download(void* host) const {
    if (p_ && host) d::check(cudaMemcpy(host, p_, bytes_, cudaMemcpyDeviceToHost), "cudaMemcpy D2H", __FILE__, __LINE__);
  }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace

void forward_host(const Desc& ds, const void* x, const void* gamma, const void* beta, void* y, void* mean, void* rstd,
                  const Options& o) {
  validate(ds);
  require_device();
  if (ds.N == 0) return;
  const size_t xb = static_cast<size_t>(ds.numel()) * elem_bytes(ds.dtype);
  const size_t cb = param_bytes(ds);
  const size_t sb = static_cast<size_t>(ds.N * ds.G) * acc_bytes(ds.dtype);
  DeviceBuffer dx(xb), dg(gamma ? cb : 0), db(beta ? cb : 0), dy(xb), dm(sb), dr(sb);
  const size_t wb = workspace_bytes(ds, false, o);
  DeviceBuffer ws(wb);
  dx.upload(x);
  dg.upload(gamma);
  db.upload(beta);
  dy.upload(y);  // the caller's poison: what the kernels leave unwritten comes back as it was
  dm.upload(mean);
  dr.upload(rstd);
  forward(ds, dx.get(), dg.get(), db.get(), dy.get(), dm.get(), dr.get(), ws.get(), wb, nullptr, o);
  d::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize (forward)", __FILE__, __LINE__);
  dy.download(y);
  dm.download(mean);
  dr.download(rstd);
}

void backward_host(const Desc& ds, const void* dy, const void* x, const void* mean, const void* rstd, const void* gamma,
                   const void* beta, void* dx, void* dgamma, void* dbeta, const Options& o) {
  validate(ds);
  require_device();
  const size_t xb = static_cast<size_t>(ds.numel()) * elem_bytes(ds.dtype);
  const size_t cb = param_bytes(ds);
  const size_t sb = static_cast<size_t>(ds.N * ds.G) * acc_bytes(ds.dtype);
  DeviceBuffer ddy(xb), dxx(xb), dm(sb), dr(sb), dg(gamma ? cb : 0), dbt(beta ? cb : 0), ddx(xb), ddg(dgamma ? cb : 0),
      ddb(dbeta ? cb : 0);
  const size_t wb = workspace_bytes(ds, true, o);
  DeviceBuffer ws(wb);
  ddy.upload(dy);
  dxx.upload(x);
  dm.upload(mean);
  dr.upload(rstd);
  dg.upload(gamma);
  dbt.upload(beta);
  ddx.upload(dx);
  ddg.upload(dgamma);
  ddb.upload(dbeta);
  backward(ds, ddy.get(), dxx.get(), dm.get(), dr.get(), dg.get(), dbt.get(), ddx.get(), ddg.get(), ddb.get(), ws.get(),
           wb, nullptr, o);
  d::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize (backward)", __FILE__, __LINE__);
  ddx.download(dx);
  ddg.download(dgamma);
  ddb.download(dbeta);
}

}  // namespace cuda

namespace cuda::detail {

[[noreturn]] void throw_cuda(cudaError_t e, const char* what, const char* file, int line) {
  (void)cudaGetLastError();  // clear a non-sticky error so the next call starts clean
  throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorName(e) + " (" +
                           cudaGetErrorString(e) + ") at " + file + ":" + std::to_string(line));
}

void ensure_attrs(const void* kernel, size_t smem, int64_t cluster) {
  const bool big_smem = smem > 48 * 1024, big_cluster = cluster > 8;
  if (!big_smem && !big_cluster) return;
  static std::mutex mu;
  static std::map<std::pair<int, const void*>, std::pair<size_t, bool>> done;
  int dev = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice", __FILE__, __LINE__);
  std::lock_guard<std::mutex> lock(mu);
  auto& have = done[{dev, kernel}];
  if (big_smem && have.first < smem) {
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
          "cudaFuncSetAttribute(MaxDynamicSharedMemorySize)", __FILE__, __LINE__);
    have.first = smem;
  }
  if (big_cluster && !have.second) {
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1),
          "cudaFuncSetAttribute(NonPortableClusterSizeAllowed)", __FILE__, __LINE__);
    have.second = true;
  }
}

bool cluster_resident(const void* kernel, const Plan& p, size_t smem) {
  // A configuration the device refuses (an error here, not only a count of 0) means: not fused.
  try {
    ensure_attrs(kernel, smem, p.k);
  } catch (const std::exception&) {
    return false;
  }
  cudaLaunchAttribute attr[1];
  const cudaLaunchConfig_t cfg = launch_config(p, static_cast<unsigned>(p.k), smem, nullptr, attr, true);
  int n = 0;
  if (cudaOccupancyMaxActiveClusters(&n, kernel, &cfg) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return n > 0;
}

namespace {
template <class F> decltype(auto) with_dtype(int dtype, F&& f) {
  switch (dtype) {
    case kF64: return f(std::integral_constant<int, kF64>{});
    case kF32: return f(std::integral_constant<int, kF32>{});
    case kF16: return f(std::integral_constant<int, kF16>{});
    default: return f(std::integral_constant<int, kBF16>{});
  }
}
}  // namespace

void run_forward(int dtype, const Plan& p, Args a, cudaStream_t s) {
  with_dtype(dtype, [&](auto d) { run_forward_t<decltype(d)::value>(p, a, s); });
}
void run_backward(int dtype, const Plan& p, Args a, cudaStream_t s) {
  with_dtype(dtype, [&](auto d) { run_backward_t<decltype(d)::value>(p, a, s); });
}
bool fused_fits_forward(int dtype, const Plan& p) {
  return with_dtype(dtype, [&](auto d) { return fused_fits_forward_t<decltype(d)::value>(p); });
}
bool fused_fits_backward(int dtype, const Plan& p, bool affine_grads, bool silu) {
  return with_dtype(dtype, [&](auto d) { return fused_fits_backward_t<decltype(d)::value>(p, affine_grads, silu); });
}

WsLayout ws_layout(const Desc& ds, const Plan& p, bool backward, bool affine_grads) {
  const int64_t N = ds.N, C = ds.C, G = ds.G;
  const bool f64 = ds.dtype == DType::f64;
  const size_t A = f64 ? 8 : 4;
  const size_t sw = f64 ? sizeof(SW<double>) : sizeof(SW<float>);
  const size_t s2 = 2 * A;
  const bool split = !p.fused;
  const int64_t NG = mul_checked(N, G, "N*G"), NC = mul_checked(N, C, "N*C"), cpg = C / G;
  WsLayout w;
  auto count = [](int64_t a, int64_t b) { return static_cast<size_t>(mul_checked(a, b, "workspace")); };
  if (!backward) {
    if (split) w.part = (p.nhwc ? count(NC, p.k) : count(NG, p.k)) * sw;
    if (split && p.nhwc) w.chan = static_cast<size_t>(NC) * sw;
  } else if (!p.nhwc) {
    if (split) {
      w.part = count(NG, p.k) * s2;
      w.group = static_cast<size_t>(NG) * s2;
    }
    if (affine_grads) w.chan = count(NG, cpg + p.k - 1) * s2;
  } else {
    if (split) {
      w.part = count(NC, p.k) * s2;
      w.group = static_cast<size_t>(NG) * s2;
    }
    if (split || affine_grads) w.chan = static_cast<size_t>(NC) * s2;
  }
  if (backward && ds.uses_silu()) w.e = count(mul_checked(NC, ds.S, "numel"), static_cast<int64_t>(A));
  auto up = [](size_t v) { return (v + 255) / 256 * 256; };
  w.part_off = 0;
  w.chan_off = up(w.part);
  w.group_off = w.chan_off + up(w.chan);
  w.e_off = w.group_off + up(w.group);
  w.total = w.e_off + up(w.e);
  if (w.part + w.chan + w.group + w.e == 0) w.total = 0;
  return w;
}

}  // namespace cuda::detail
}  // namespace gnv
