// The stable CPU baseline: chunked Welford with a pairwise tree over the chunk states for the
// statistics, pairwise summation for every backward reduction. Its error grows with log2(m), not
// m, and it never forms a difference of large sums. The policy lives in welford_policy.h because
// `simd` falls back to it.
#include "welford_policy.h"

namespace gnv {
namespace {

class WelfordImpl final : public cpu::PolicyImpl<cpu::WelfordPolicy> {};

}  // namespace
GNV_REGISTER_IMPL(WelfordImpl);
}  // namespace gnv
