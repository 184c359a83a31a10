// The stable CPU baseline: chunked Welford with a pairwise tree over the chunk states for the
// statistics, pairwise summation for every backward reduction. Its error grows with log2(m), not
// m, and it never forms a difference of large sums.
#include <vector>

#include "gnv/welford.h"
#include "kernel_common.h"

namespace gnv {
namespace {

struct WelfordPolicy {
  static constexpr std::string_view kName = "welford";
  static constexpr std::string_view kSummary =
      "the stable CPU baseline: chunked Welford (32) + pairwise combine; pairwise backward sums";
  static constexpr bool kControl = false;
  static constexpr bool kRescue = true;

  template <class A> static cpu::Stats<A> stats(const A* x, int64_t m, A /*eps*/) {
    const Welford<A> w = welford_chunked(x, m);
    return {w.mean, w.variance()};
  }

  template <class A>
  static cpu::BwdSums<A> bwd_sums(const A* g, const A* x, int64_t m, A mean, A rstd) {
    // Centered with the given mean before multiplying: sum g*(x-mean) has no cancellation
    // beyond what the data itself carries.
    std::vector<A> gx(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) gx[i] = g[i] * ((x[i] - mean) * rstd);
    return {pairwise_sum(g, m), pairwise_sum(gx.data(), m)};
  }

  template <class A> static A sum(const A* v, int64_t m) { return pairwise_sum(v, m); }
};

class WelfordImpl final : public cpu::PolicyImpl<WelfordPolicy> {};

}  // namespace
GNV_REGISTER_IMPL(WelfordImpl);
}  // namespace gnv
