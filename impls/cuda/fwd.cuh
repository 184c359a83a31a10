// Forward pipelines (templates); fwd_<dtype>.cu instantiate them, one translation unit per dtype
// so that the many kernel variants compile in parallel.
#pragma once

#include "internal.h"

namespace gnv::cuda::detail {
namespace {

template <int D, int W> void run_fwd_t(const Plan& p, Args a, cudaStream_t s) {
  using A = typename Ty<D>::A;
  if (p.nhwc) {
    const auto kernel = fwd_nhwc<D, W, fwd_v(W)>;
    const size_t smem = nhwc_fwd_smem<A>(p.T, W, p.CW);
    if (p.fused) {
      launch_blocks(kernel, p, a, kFused, smem, s, "fwd_nhwc (fused)");
      return;
    }
    launch_blocks(kernel, p, a, kPartial, smem, s, "fwd_nhwc (partial)");
    auto* part = static_cast<const SW<A>*>(a.ws_part);
    auto* chan = static_cast<SW<A>*>(a.ws_chan);
    launch_small(combine_sw<A>, seg_grid(a.N * a.C), s, "combine_sw (nhwc parts -> channels)", part, chan,
                 static_cast<A*>(nullptr), static_cast<A*>(nullptr), a.N * a.C, p.k, a.eps);
    launch_small(combine_sw<A>, seg_grid(a.N * a.G), s, "combine_sw (nhwc channels -> groups)",
                 static_cast<const SW<A>*>(chan), static_cast<SW<A>*>(nullptr), static_cast<A*>(a.mean),
                 static_cast<A*>(a.rstd), a.N * a.G, a.cpg, a.eps);
    launch_blocks(kernel, p, a, kApply, smem, s, "fwd_nhwc (apply)");
    return;
  }
  const auto kernel = fwd_nchw<D, W, fwd_v(W)>;
  const size_t smem = nchw_fwd_smem<A>();
  if (p.fused) {
    launch_blocks(kernel, p, a, kFused, smem, s, "fwd_nchw (fused)");
    return;
  }
  launch_blocks(kernel, p, a, kPartial, smem, s, "fwd_nchw (partial)");
  launch_small(combine_sw<A>, seg_grid(a.N * a.G), s, "combine_sw (nchw parts -> groups)",
               static_cast<const SW<A>*>(a.ws_part), static_cast<SW<A>*>(nullptr), static_cast<A*>(a.mean),
               static_cast<A*>(a.rstd), a.N * a.G, p.k, a.eps);
  launch_blocks(kernel, p, a, kApply, smem, s, "fwd_nchw (apply)");
}

template <int D, int W> bool fits_t(const Plan& p) {
  using A = typename Ty<D>::A;
  const void* kernel = p.nhwc ? reinterpret_cast<const void*>(fwd_nhwc<D, W, fwd_v(W)>)
                              : reinterpret_cast<const void*>(fwd_nchw<D, W, fwd_v(W)>);
  const size_t smem = p.nhwc ? nhwc_fwd_smem<A>(p.T, W, p.CW) : nchw_fwd_smem<A>();
  return cluster_resident(kernel, p, smem);
}

}  // namespace

template <int D> void run_forward_t(const Plan& p, Args a, cudaStream_t s) {
  if (p.W > 1) run_fwd_t<D, 16 / static_cast<int>(sizeof(typename Ty<D>::S))>(p, a, s);
  else run_fwd_t<D, 1>(p, a, s);
}
template <int D> bool fused_fits_forward_t(const Plan& p) {
  return p.W > 1 ? fits_t<D, 16 / static_cast<int>(sizeof(typename Ty<D>::S))>(p) : fits_t<D, 1>(p);
}

}  // namespace gnv::cuda::detail
