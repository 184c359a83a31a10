// The textbook two-pass algorithm, written for clarity: mean = sum/m, then the mean of squared
// deviations from it. Accurate because the second pass sums small centered values; the sums
// themselves are Eigen's reductions over the gathered group.
#include <Eigen/Core>

#include "kernel_common.h"

namespace gnv {
namespace {

struct NaivePolicy {
  static constexpr std::string_view kName = "naive";
  static constexpr std::string_view kSummary =
      "textbook two-pass: mean = sum/m, var = sum((x-mean)^2)/m (Eigen reductions), acc_t";
  static constexpr bool kControl = false;
  static constexpr bool kRescue = true;

  template <class A> using Vec = Eigen::Map<const Eigen::Array<A, Eigen::Dynamic, 1>>;

  template <class A> static cpu::Stats<A> stats(const A* x, int64_t m, A /*eps*/) {
    const Vec<A> v(x, m);
    // A constant group has variance exactly 0 (with eps = 0 it is degenerate, as the policy
    // says), but sum/m rounds, and that rounding error would come back as a spurious variance.
    if ((v == v(0)).all()) return {v(0), A(0)};
    const A mean = v.sum() / static_cast<A>(m);
    const A var = (v - mean).square().sum() / static_cast<A>(m);
    return {mean, var};
  }

  template <class A>
  static cpu::BwdSums<A> bwd_sums(const A* g, const A* x, int64_t m, A mean, A rstd) {
    const Vec<A> gv(g, m), xv(x, m);
    return {gv.sum(), (gv * ((xv - mean) * rstd)).sum()};
  }

  template <class A> static A sum(const A* v, int64_t m) { return Vec<A>(v, m).sum(); }
};

class NaiveImpl final : public cpu::PolicyImpl<NaivePolicy> {};

}  // namespace
GNV_REGISTER_IMPL(NaiveImpl);
}  // namespace gnv
