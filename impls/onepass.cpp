// THE NEGATIVE CONTROL. One pass over the data accumulating sum x and sum x^2, variance as
// E[x^2] - E[x]^2: the formula many fast kernels use, and one whose relative error is about
// u*(mean/std)^2. The harness must see it fail at large offsets; if it passes there, the
// harness (stress classes, metrics or budgets) is blind to cancellation.
#include <algorithm>

#include "kernel_common.h"

namespace gnv {
namespace {

struct OnepassPolicy {
  static constexpr std::string_view kName = "onepass";
  static constexpr std::string_view kSummary =
      "CONTROL: one-pass var = E[x^2] - E[x]^2 clamped at 0, uncentered backward sums; "
      "expected to fail when |mean| >> std";
  static constexpr bool kControl = true;
  // No overflow rescue either: production one-pass kernels have none.
  static constexpr bool kRescue = false;

  template <class A> static cpu::Stats<A> stats(const A* x, int64_t m, A /*eps*/) {
    A s1 = 0, s2 = 0;
    for (int64_t i = 0; i < m; ++i) {
      s1 += x[i];
      s2 += x[i] * x[i];
    }
    const A mean = s1 / static_cast<A>(m);
    // std::max(v, 0) keeps a NaN v (the comparison is false), so NaN still propagates.
    return {mean, std::max(s2 / static_cast<A>(m) - mean * mean, A(0))};
  }

  template <class A>
  static cpu::BwdSums<A> bwd_sums(const A* g, const A* x, int64_t m, A mean, A rstd) {
    A sg = 0, sgx = 0;
    for (int64_t i = 0; i < m; ++i) {
      sg += g[i];
      sgx += g[i] * x[i];
    }
    // sum g*xhat = rstd*(sum g*x - mean*sum g): uncentered, cancels when |mean| >> std.
    return {sg, rstd * (sgx - mean * sg)};
  }

  template <class A> static A sum(const A* v, int64_t m) {
    A s = 0;
    for (int64_t i = 0; i < m; ++i) s += v[i];
    return s;
  }
};

class OnepassImpl final : public cpu::PolicyImpl<OnepassPolicy> {};

}  // namespace
GNV_REGISTER_IMPL(OnepassImpl);
}  // namespace gnv
