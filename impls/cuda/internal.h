#pragma once
// Host-side pieces shared by the CUDA translation units (gn_cuda.cu, fwd_*.cu, bwd_*.cu).
#ifndef GNV_CUDA_EMULATE
#include <cuda_runtime.h>
#endif

#include <cstddef>
#include <cstdint>

#include "gn_cuda.h"
#include "kernels.cuh"
#include "plan.h"

namespace gnv::cuda::detail {

[[noreturn]] void throw_cuda(cudaError_t e, const char* what, const char* file, int line);
inline void check(cudaError_t e, const char* what, const char* file, int line) {
  if (e != cudaSuccess) throw_cuda(e, what, file, line);
}

// Where the workspace pieces of Args live (byte offsets, 256-aligned) and how large it is.
struct WsLayout {
  size_t part = 0, chan = 0, group = 0, e = 0;  // byte sizes (e: backward with silu, Args::e)
  size_t part_off = 0, chan_off = 0, group_off = 0, e_off = 0, total = 0;
};
// For the problem `ds` (its dtype, sizes and epilogue) under plan p.
WsLayout ws_layout(const Desc& ds, const Plan& p, bool backward, bool affine_grads);

// The whole pipeline of a plan (one launch when fused; partial, combine(s), apply when split;
// plus the parameter-gradient reduction in backward). Args carries pointers and sizes. Defined in
// fwd.cuh / bwd.cuh, instantiated per dtype D in fwd_<dtype>.cu / bwd_<dtype>.cu.
template <int D> void run_forward_t(const Plan& p, Args a, cudaStream_t s);
template <int D> void run_backward_t(const Plan& p, Args a, cudaStream_t s);
// Whether the fused launch of this plan can be resident (cudaOccupancyMaxActiveClusters > 0).
template <int D> bool fused_fits_forward_t(const Plan& p);
template <int D> bool fused_fits_backward_t(const Plan& p, bool affine_grads, bool silu);

// Dispatch over the dtype (gn_cuda.cu: it sees only the declarations above, so each dtype is
// compiled in its own translation unit and nowhere else).
void run_forward(int dtype, const Plan& p, Args a, cudaStream_t s);
void run_backward(int dtype, const Plan& p, Args a, cudaStream_t s);
bool fused_fits_forward(int dtype, const Plan& p);
bool fused_fits_backward(int dtype, const Plan& p, bool affine_grads, bool silu);

// Raises the kernel's dynamic shared memory limit when it needs more than the default 48 KB, and
// allows clusters of more than 8 blocks (H100/H200: 16) when `cluster` asks for them.
void ensure_attrs(const void* kernel, size_t smem, int64_t cluster);
// Whether the fused launch of `kernel` under this plan (clusters of p.k blocks, `smem` bytes each)
// can be resident: the device accepts its attributes and cudaOccupancyMaxActiveClusters > 0.
bool cluster_resident(const void* kernel, const Plan& p, size_t smem);

inline cudaLaunchConfig_t launch_config(const Plan& p, unsigned grid, size_t smem, cudaStream_t s,
                                        cudaLaunchAttribute* attr, bool cluster) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(grid, 1, 1);
  cfg.blockDim = dim3(static_cast<unsigned>(p.T), 1, 1);
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = static_cast<unsigned>(p.k);
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = cluster ? 1 : 0;
  return cfg;
}

// Launches a main kernel over the plan's blocks: one grid, or several when there are more blocks
// than a grid dimension holds (each a whole number of clusters; Args::block0 is the offset).
template <class Kernel>
void launch_blocks(Kernel kernel, const Plan& p, Args a, int mode, size_t smem, cudaStream_t s, const char* name) {
  a.mode = mode;
  const bool cluster = mode == kFused && p.k > 1;
  ensure_attrs(reinterpret_cast<const void*>(kernel), smem, cluster ? p.k : 1);
  const int64_t total = p.blocks();
  const int64_t chunk = cluster ? (int64_t{0x7fffffff} / p.k) * p.k : int64_t{0x7fffffff};
  for (int64_t b0 = 0; b0 < total; b0 += chunk) {
    a.block0 = b0;
    const int64_t n = total - b0 < chunk ? total - b0 : chunk;
    cudaLaunchAttribute attr[1];
    const cudaLaunchConfig_t cfg = launch_config(p, static_cast<unsigned>(n), smem, s, attr, cluster);
    check(cudaLaunchKernelEx(&cfg, kernel, a), name, __FILE__, __LINE__);
    check(cudaGetLastError(), name, __FILE__, __LINE__);
  }
}

// Launches one of the small second-stage kernels (one warp per segment, 8 warps per block).
template <class Kernel, class... Ts>
void launch_small(Kernel kernel, unsigned grid, cudaStream_t s, const char* name, Ts... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(grid, 1, 1);
  cfg.blockDim = dim3(32 * kSegWarps, 1, 1);
  cfg.dynamicSmemBytes = 0;
  cfg.stream = s;
  cfg.attrs = nullptr;
  cfg.numAttrs = 0;
  check(cudaLaunchKernelEx(&cfg, kernel, args...), name, __FILE__, __LINE__);
  check(cudaGetLastError(), name, __FILE__, __LINE__);
}

// Grid for the one-warp-per-segment kernels (grid-stride loops cover the rest).
inline unsigned seg_grid(int64_t nseg) {
  const int64_t b = (nseg + kSegWarps - 1) / kSegWarps;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 ? 65535 : b));
}

}  // namespace gnv::cuda::detail
