// Backward pipelines (templates); bwd_<dtype>.cu instantiate them, one translation unit per dtype
// so that the many kernel variants compile in parallel.
#pragma once

#include "internal.h"

namespace gnv::cuda::detail {
namespace {

// EP: with the SiLU epilogue, whose e = dy silu'(v) silu_dy writes to the workspace first.
template <int D, int W, bool EP> void run_bwd_t(const Plan& p, Args a, cudaStream_t s) {
  using A = typename Ty<D>::A;
  using S = typename Ty<D>::S;
  auto* dgamma = static_cast<S*>(a.dgamma);
  auto* dbeta = static_cast<S*>(a.dbeta);
  if constexpr (EP) {
    const int64_t blocks = (a.N * a.C * a.S + 255) / 256;
    launch_small(silu_dy<D>, static_cast<unsigned>(blocks < 65535 ? blocks : 65535), s, "silu_dy", a);
  }
  if (p.nhwc) {
    const auto kernel = bwd_nhwc<D, W, bwd_v(W), EP>;
    const size_t smem = nhwc_bwd_smem<A>(p.T, W, p.CW);
    if (p.fused) {
      launch_blocks(kernel, p, a, kFused, smem, s, "bwd_nhwc (fused)");
    } else {
      launch_blocks(kernel, p, a, kPartial, smem, s, "bwd_nhwc (partial)");
      auto* chan = static_cast<Sum2<A>*>(a.ws_chan);
      launch_small(combine_sum2<A>, seg_grid(a.N * a.C), s, "combine_sum2 (nhwc parts -> channels)",
                   static_cast<const Sum2<A>*>(a.ws_part), chan, a.N * a.C, p.k);
      launch_small(nhwc_group_sums<D>, seg_grid(a.N * a.G), s, "nhwc_group_sums", static_cast<const Sum2<A>*>(chan),
                   static_cast<const S*>(a.gamma), static_cast<Sum2<A>*>(a.ws_group), a.N * a.G, a.G, a.cpg,
                   a.per_sample ? a.C : int64_t{0});
      launch_blocks(kernel, p, a, kApply, smem, s, "bwd_nhwc (apply)");
    }
    if (a.affine_grads) {  // per sample: each (n, c) total is its own gradient (a sum over one "sample")
      const int64_t n = a.per_sample ? 1 : a.N, c = a.per_sample ? a.N * a.C : a.C;
      launch_small(dgamma_nhwc<D>, seg_grid(c), s, "dgamma_nhwc", static_cast<const Sum2<A>*>(a.ws_chan), dgamma,
                   dbeta, n, c);
    }
    return;
  }
  const auto kernel = bwd_nchw<D, W, bwd_v(W), EP>;
  const size_t smem = nchw_bwd_smem<A>(p.T, bwd_v(W), a.affine_grads);
  if (p.fused) {
    launch_blocks(kernel, p, a, kFused, smem, s, "bwd_nchw (fused)");
  } else {
    launch_blocks(kernel, p, a, kPartial, smem, s, "bwd_nchw (partial)");
    launch_small(combine_sum2<A>, seg_grid(a.N * a.G), s, "combine_sum2 (nchw parts -> groups)",
                 static_cast<const Sum2<A>*>(a.ws_part), static_cast<Sum2<A>*>(a.ws_group), a.N * a.G, p.k);
    launch_blocks(kernel, p, a, kApply, smem, s, "bwd_nchw (apply)");
  }
  if (a.affine_grads) {
    launch_small(dgamma_nchw<D>, seg_grid(a.per_sample ? a.N * a.C : a.C), s, "dgamma_nchw",
                 static_cast<const Sum2<A>*>(a.ws_chan), dgamma, dbeta, a.N, a.C, a.G, a.cpg, a.S / W, p.L, p.k,
                 a.per_sample);
  }
}

template <int D, int W, bool EP> bool fits_t(const Plan& p, bool affine_grads) {
  using A = typename Ty<D>::A;
  const void* kernel = p.nhwc ? reinterpret_cast<const void*>(bwd_nhwc<D, W, bwd_v(W), EP>)
                              : reinterpret_cast<const void*>(bwd_nchw<D, W, bwd_v(W), EP>);
  const size_t smem = p.nhwc ? nhwc_bwd_smem<A>(p.T, W, p.CW) : nchw_bwd_smem<A>(p.T, bwd_v(W), affine_grads);
  return cluster_resident(kernel, p, smem);
}

}  // namespace

template <int D> void run_backward_t(const Plan& p, Args a, cudaStream_t s) {
  constexpr int WV = 16 / static_cast<int>(sizeof(typename Ty<D>::S));
  if (a.e) {
    if (p.W > 1) run_bwd_t<D, WV, true>(p, a, s);
    else run_bwd_t<D, 1, true>(p, a, s);
  } else {
    if (p.W > 1) run_bwd_t<D, WV, false>(p, a, s);
    else run_bwd_t<D, 1, false>(p, a, s);
  }
}
template <int D> bool fused_fits_backward_t(const Plan& p, bool affine_grads, bool silu) {
  constexpr int WV = 16 / static_cast<int>(sizeof(typename Ty<D>::S));
  if (silu) return p.W > 1 ? fits_t<D, WV, true>(p, affine_grads) : fits_t<D, 1, true>(p, affine_grads);
  return p.W > 1 ? fits_t<D, WV, false>(p, affine_grads) : fits_t<D, 1, false>(p, affine_grads);
}

}  // namespace gnv::cuda::detail
