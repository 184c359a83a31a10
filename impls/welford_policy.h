#pragma once
// The `welford` kernel's reduction policy, shared with `simd`, which hands the groups its fast
// path does not take (non-finite values, statistics outside the range of acc_t) to this policy
// through cpu::forward_group / backward_group / backward_channel, so they come out exactly as
// `welford` computes them.
#include <vector>

#include "gnv/welford.h"
#include "kernel_common.h"

namespace gnv::cpu {

struct WelfordPolicy {
  static constexpr std::string_view kName = "welford";
  static constexpr std::string_view kSummary =
      "the stable CPU baseline: chunked Welford (32) + pairwise combine; pairwise backward sums";
  static constexpr bool kControl = false;
  static constexpr bool kRescue = true;

  template <class A> static Stats<A> stats(const A* x, int64_t m, A /*eps*/) {
    const Welford<A> w = welford_chunked(x, m);
    return {w.mean, w.variance()};
  }

  template <class A>
  static BwdSums<A> bwd_sums(const A* g, const A* x, int64_t m, A mean, A rstd) {
    // Centered with the given mean before multiplying: sum g*(x-mean) has no cancellation
    // beyond what the data itself carries.
    std::vector<A> gx(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) gx[i] = g[i] * ((x[i] - mean) * rstd);
    return {pairwise_sum(g, m), pairwise_sum(gx.data(), m)};
  }

  template <class A> static A sum(const A* v, int64_t m) { return pairwise_sum(v, m); }
};

}  // namespace gnv::cpu
