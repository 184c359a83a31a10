#pragma once
// A CPU emulation of the part of CUDA that the gnv kernels use, so that the kernels, the host
// pipeline and the self-test run (slowly) on a machine without a GPU: CI and development machines.
// Compile impls/cuda/*.cu as C++ with -DGNV_CUDA_EMULATE and this directory on the include path.
//
// Every CUDA thread is a coroutine (ucontext) of one OS thread; the blocks of a cluster run
// together, clusters one after the other. __syncthreads, warp shuffles and cluster.sync() are
// barriers on which a coroutine yields until every participant has arrived; a scheduling pass in
// which nobody advances is a deadlock (a barrier some threads never reach) and aborts with a
// message. Each block's shared memory, and all "device" memory, starts as 0xff bytes (NaN in every
// float type), so a read before any write shows. Floating point is the host's IEEE arithmetic with
// the same operations (no contraction: build with -ffp-contract=off), which is what the device
// does with --fmad=false, so results should match the GPU's bit for bit.
//
// Not emulated: timing, occupancy limits, memory-model races (compute-sanitizer racecheck covers
// those on a real device), anything the kernels do not use.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

// ---- language -----------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define GNV_DYNAMIC_SMEM(name) unsigned char* name = ::emu::dynamic_smem()

using std::isfinite;

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct uint3 {
  unsigned x = 0, y = 0, z = 0;
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
struct alignas(8) uint2 {
  unsigned x, y;
};

// The built-in variables: globals the scheduler sets before it resumes a thread.
extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

namespace emu {
struct ThreadState {
  uint3 tid, bid;
  dim3 bdim, gdim;
};
unsigned char* dynamic_smem();
void syncthreads();
void cluster_sync();
unsigned char* map_rank(const void* p, unsigned rank);
// The warp exchange behind __shfl_down_sync: 8 bytes per lane.
uint64_t shfl_down_bits(uint64_t bits, int off);
[[noreturn]] void trap();
}  // namespace emu

inline void __syncthreads() { ::emu::syncthreads(); }
[[noreturn]] inline void __trap() { ::emu::trap(); }

template <class T> inline T __shfl_down_sync(unsigned /*mask*/, T v, int off) {
  static_assert(sizeof(T) <= 8, "shuffle of more than 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  b = ::emu::shfl_down_bits(b, off);
  T r;
  std::memcpy(&r, &b, sizeof(T));
  return r;
}

inline uint4 __ldg(const uint4* p) { return *p; }
inline void __stwb(uint4* p, uint4 v) { *p = v; }

inline float __uint_as_float(unsigned u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float __int_as_float(int u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline double __longlong_as_double(long long u) {
  double f;
  std::memcpy(&f, &u, 8);
  return f;
}

// ---- 16-bit floating point (round to nearest even, as the device's _rn conversions) -------------
struct __half {
  unsigned short bits;
};
struct __nv_bfloat16 {
  unsigned short bits;
};
inline __half __ushort_as_half(unsigned short b) { return __half{b}; }
inline unsigned short __half_as_ushort(__half h) { return h.bits; }
inline float __half2float(__half h) {
  const unsigned s = h.bits >> 15, e = (h.bits >> 10) & 31u, m = h.bits & 1023u;
  float v;
  if (e == 0) v = std::ldexp(static_cast<float>(m), -24);
  else if (e == 31) v = m ? __uint_as_float(0x7fc00000u) : __uint_as_float(0x7f800000u);
  else v = std::ldexp(static_cast<float>(1024 + m), static_cast<int>(e) - 25);
  return s ? -v : v;
}
inline __half __float2half_rn(float f) {
  const unsigned short sign = std::signbit(f) ? 0x8000 : 0;
  if (std::isnan(f)) return __half{0x7fff};
  double a = std::fabs(static_cast<double>(f));
  if (a >= 65520.0) return __half{static_cast<unsigned short>(sign | 0x7c00)};
  int e;
  std::frexp(a, &e);
  const int q = e - 11 < -24 ? -24 : e - 11;
  a = std::ldexp(std::nearbyint(std::ldexp(a, -q)), q);  // exact scaling; nearbyint rounds half to even
  if (a >= 65520.0) return __half{static_cast<unsigned short>(sign | 0x7c00)};
  if (a < 0x1p-14) return __half{static_cast<unsigned short>(sign | static_cast<unsigned>(std::ldexp(a, 24)))};
  std::frexp(a, &e);
  const unsigned mant = static_cast<unsigned>(std::ldexp(a, 11 - e)) - 1024u;
  return __half{static_cast<unsigned short>(sign | (static_cast<unsigned>(e - 1 + 15) << 10) | mant)};
}
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.bits; }
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  unsigned u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return __nv_bfloat16{0x7fff};
  u += 0x7fffu + ((u >> 16) & 1u);
  return __nv_bfloat16{static_cast<unsigned short>(u >> 16)};
}

// ---- cooperative groups: clusters ---------------------------------------------------------------
namespace cooperative_groups {
struct cluster_group {
  void sync() const { ::emu::cluster_sync(); }
  template <class T> T* map_shared_rank(T* p, unsigned rank) const {
    return reinterpret_cast<T*>(::emu::map_rank(p, rank));
  }
};
inline cluster_group this_cluster() { return {}; }
}  // namespace cooperative_groups

// ---- runtime API --------------------------------------------------------------------------------
enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2 };
using cudaStream_t = struct CUstream_st*;
enum cudaMemcpyKind { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice, cudaMemcpyDefault };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize, cudaFuncAttributeNonPortableClusterSizeAllowed };
enum cudaLaunchAttributeID { cudaLaunchAttributeClusterDimension = 4 };
struct cudaLaunchAttributeValue {
  struct {
    unsigned x, y, z;
  } clusterDim;
};
struct cudaLaunchAttribute {
  cudaLaunchAttributeID id;
  cudaLaunchAttributeValue val;
};
struct cudaLaunchConfig_t {
  dim3 gridDim, blockDim;
  size_t dynamicSmemBytes = 0;
  cudaStream_t stream = nullptr;
  cudaLaunchAttribute* attrs = nullptr;
  unsigned numAttrs = 0;
};
struct cudaDeviceProp {
  char name[256];
  int multiProcessorCount;
  int major, minor;
  int l2CacheSize;
};

cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaGetDevice(int* d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d);
cudaError_t cudaGetLastError();
const char* cudaGetErrorName(cudaError_t e);
const char* cudaGetErrorString(cudaError_t e);
cudaError_t cudaMalloc(void** p, size_t bytes);
cudaError_t cudaFree(void* p);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s = nullptr);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaFuncSetAttribute(const void* f, cudaFuncAttribute attr, int value);
cudaError_t cudaOccupancyMaxActiveClusters(int* n, const void* f, const cudaLaunchConfig_t* cfg);

namespace emu {
// Runs body() as every thread of the grid: clusters of `cluster` consecutive blocks together.
void run_grid(dim3 grid, dim3 block, size_t smem, unsigned cluster, void (*body)(void*), void* ctx);
}  // namespace emu

template <class... P, class... A>
cudaError_t cudaLaunchKernelEx(const cudaLaunchConfig_t* cfg, void (*kernel)(P...), A&&... args) {
  unsigned cluster = 1;
  for (unsigned i = 0; i < cfg->numAttrs; ++i)
    if (cfg->attrs[i].id == cudaLaunchAttributeClusterDimension) cluster = cfg->attrs[i].val.clusterDim.x;
  if (cluster == 0 || cfg->gridDim.x % cluster != 0 || cfg->gridDim.y != 1 || cfg->gridDim.z != 1 ||
      cfg->blockDim.x == 0 || cfg->blockDim.x > 1024 || cluster > 16)
    return cudaErrorInvalidValue;
  struct Call {
    void (*kernel)(P...);
    std::tuple<std::decay_t<P>...> args;
  };
  Call call{kernel, std::tuple<std::decay_t<P>...>(static_cast<P>(args)...)};
  emu::run_grid(cfg->gridDim, cfg->blockDim, cfg->dynamicSmemBytes, cluster,
                [](void* c) {
                  auto* k = static_cast<Call*>(c);
                  std::apply(k->kernel, k->args);
                },
                &call);
  return cudaSuccess;
}
