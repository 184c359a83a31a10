#pragma once
// The one driver behind the CPU implementations (naive, welford, onepass). They differ only in
// their reduction policy, so a difference in their results is a difference in reductions and
// never in gathering, channel mapping or the affine step.
//
// A Policy provides:
//   static constexpr std::string_view kName, kSummary;
//   static constexpr bool kControl;   // a negative control, expected to fail
//   static constexpr bool kRescue;    // retry overflowed statistics on scaled values
//   template <class A> static Stats<A>   stats(const A* x, int64_t m, A eps);
//   template <class A> static BwdSums<A> bwd_sums(const A* g, const A* x, int64_t m, A mean, A rstd);
//   template <class A> static A          sum(const A* v, int64_t m);
// where x is a group gathered into acc_t in memory order, and bwd_sums returns
// sum_g = sum g_i and sum_gx = sum g_i * xhat_i with xhat_i = (x_i - mean) * rstd.
//
// Non-finite policy (README "NaN and Inf"): a group with a NaN or +-Inf in x gets rstd = NaN,
// hence NaN in every y of the group (also where gamma = 0, since 0 * NaN = NaN), and a mean that
// is NaN unless the policy's own mean came out +-Inf. Other groups never see the group's values.
// In backward, NaN/Inf propagate through the formulas unaided: the mean and rstd handed in for
// such a group are already NaN.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "gnv/dtype.h"
#include "gnv/impl.h"
#include "gnv/welford.h"

namespace gnv::cpu {

template <class A> struct Stats { A mean; A var; };
template <class A> struct BwdSums { A sum_g; A sum_gx; };

template <class T> using acc_of = acc_t<dtype_of<T>()>;

// Eigen::half and Eigen::bfloat16 convert exactly through float; float and double need nothing.
template <class A, class T> inline A load(T v) {
  if constexpr (std::is_floating_point_v<T>) return static_cast<A>(v);
  else return static_cast<A>(static_cast<float>(v));
}
// One rounding, to nearest even (Eigen's half/bfloat16 constructors from float are RTNE).
template <class T, class A> inline T store(A v) { return static_cast<T>(v); }

// Visits the elements of group (n, g) in memory order: f(j, idx, cl) with j the position in the
// gathered buffer, idx the offset in the tensor and cl the channel within the group. nchw walks
// channel-major (each channel's spatial run is contiguous), nhwc spatial-major (the group's
// channels are contiguous at each position), so j -> channel differs between the layouts and
// only this function knows it.
template <class F>
inline void for_each_in_group(const Problem& p, int64_t n, int64_t g, F&& f) {
  const int64_t C = p.C, S = p.S(), cpg = p.channels_per_group(), c0 = g * cpg;
  int64_t j = 0;
  if (p.layout == Layout::nchw) {
    for (int64_t cl = 0; cl < cpg; ++cl) {
      const int64_t base = (n * C + c0 + cl) * S;
      for (int64_t s = 0; s < S; ++s) f(j++, base + s, cl);
    }
  } else {
    for (int64_t s = 0; s < S; ++s) {
      const int64_t base = (n * S + s) * C + c0;
      for (int64_t cl = 0; cl < cpg; ++cl) f(j++, base + cl, cl);
    }
  }
}

template <class A> struct MeanRstd { A mean; A rstd; };

// Statistics for a group whose inputs are all finite but whose statistics overflowed (sums of
// values near the top of the range, or squares of deviations above sqrt(max)). The values are
// scaled by 2^-k with k = ilogb(max|x|), which is exact (a power of two) except for values that
// fall into the subnormals: those are below max|x| * 2^-126 (f32; 2^-1022 for f64) and cannot
// move the mean or variance at working precision. The scaled values lie in (-2, 2), so their sums cannot
// overflow for any m. Then
//   mean = mean_s * 2^k,   rstd = 2^-k / sqrt(var_s + eps * 2^-2k).
// Nothing here can overflow: k >= 0, so eps * 2^-2k <= eps (it may underflow to 0, which only
// drops an eps that is negligible next to a variance of order 2^2k); 1/sqrt(.) is at most
// 1/sqrt(min_subnormal) before it is scaled down by 2^-k; |mean_s| <= max_s < 2 gives
// |mean| <= max|x| up to rounding.
template <class Policy, class A>
MeanRstd<A> rescued_stats(const std::vector<A>& xs, A amax, A eps, std::vector<A>& scratch) {
  const int k = std::max(std::ilogb(amax), 0);
  scratch.resize(xs.size());
  for (size_t j = 0; j < xs.size(); ++j) scratch[j] = std::ldexp(xs[j], -k);
  const A eps_s = std::ldexp(eps, -2 * k);
  const Stats<A> st = Policy::stats(scratch.data(), static_cast<int64_t>(scratch.size()), eps_s);
  return {std::ldexp(st.mean, k), std::ldexp(A(1) / std::sqrt(st.var + eps_s), -k)};
}

template <class Policy, class T>
void forward_typed(const ForwardArgs& a) {
  using A = acc_of<T>;
  const Problem& p = a.p;
  const int64_t G = p.G, cpg = p.channels_per_group(), m = p.group_size();
  const T* x = a.x.data<T>();
  T* y = a.y.data<T>();
  A* mean_out = a.mean.data<A>();
  A* rstd_out = a.rstd.data<A>();
  const T* gamma = p.affine && a.gamma ? a.gamma->data<T>() : nullptr;
  const T* beta = p.affine && a.beta ? a.beta->data<T>() : nullptr;
  const A eps = static_cast<A>(p.eps);
  const A nan = std::numeric_limits<A>::quiet_NaN();

  std::vector<A> xs(static_cast<size_t>(m)), scratch, ac(static_cast<size_t>(cpg)),
      bc(static_cast<size_t>(cpg));
  for (int64_t n = 0; n < p.N; ++n) {
    for (int64_t g = 0; g < G; ++g) {
      bool finite = true;
      A amax = 0;
      for_each_in_group(p, n, g, [&](int64_t j, int64_t idx, int64_t) {
        const A v = load<A>(x[idx]);
        xs[j] = v;
        finite = finite && std::isfinite(v);
        amax = std::max(amax, std::abs(v));
      });

      const Stats<A> st = Policy::stats(xs.data(), m, eps);
      A mean = st.mean, rstd = A(1) / std::sqrt(st.var + eps);
      if (!finite) {
        // Explicit rather than left to propagation: a clamped variance (onepass) or a policy that
        // skips values would otherwise hand back a finite rstd for a group with Inf in it.
        if (std::isfinite(mean)) mean = nan;
        rstd = nan;
      } else if constexpr (Policy::kRescue) {
        if (!std::isfinite(st.mean) || !std::isfinite(st.var)) {
          const MeanRstd<A> r = rescued_stats<Policy>(xs, amax, eps, scratch);
          mean = r.mean;
          rstd = r.rstd;
        }
      }
      mean_out[n * G + g] = mean;
      rstd_out[n * G + g] = rstd;

      // Fused per-channel form y = x*a_c + b_c: x - mean can overflow for values near the top
      // of the range while x*a_c and mean*a_c (both of order x/std) do not.
      for (int64_t cl = 0; cl < cpg; ++cl) {
        const int64_t c = g * cpg + cl;
        const A gm = gamma ? load<A>(gamma[c]) : A(1);
        const A bt = beta ? load<A>(beta[c]) : A(0);
        ac[cl] = gm * rstd;
        bc[cl] = bt - mean * ac[cl];
      }
      for_each_in_group(p, n, g, [&](int64_t j, int64_t idx, int64_t cl) {
        y[idx] = store<T>(xs[j] * ac[cl] + bc[cl]);
      });
    }
  }
}

template <class Policy, class T>
void backward_typed(const BackwardArgs& a) {
  using A = acc_of<T>;
  const Problem& p = a.p;
  const int64_t N = p.N, G = p.G, S = p.S(), cpg = p.channels_per_group(), m = p.group_size();
  const T* x = a.x.data<T>();
  const T* dy = a.dy.data<T>();
  const A* mean_in = a.mean.data<A>();
  const A* rstd_in = a.rstd.data<A>();
  const T* gamma = p.affine && a.gamma ? a.gamma->data<T>() : nullptr;
  T* dx = a.dx.data<T>();

  std::vector<A> xs(static_cast<size_t>(m)), gs(static_cast<size_t>(m));
  const A inv_m = A(1) / static_cast<A>(m);
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t g = 0; g < G; ++g) {
      const A mu = mean_in[n * G + g], r = rstd_in[n * G + g];
      for_each_in_group(p, n, g, [&](int64_t j, int64_t idx, int64_t cl) {
        xs[j] = load<A>(x[idx]);
        const A d = load<A>(dy[idx]);
        gs[j] = gamma ? load<A>(gamma[g * cpg + cl]) * d : d;
      });
      const BwdSums<A> s = Policy::bwd_sums(gs.data(), xs.data(), m, mu, r);
      const A mean_g = s.sum_g * inv_m, mean_gx = s.sum_gx * inv_m;
      for_each_in_group(p, n, g, [&](int64_t j, int64_t idx, int64_t) {
        const A xhat = (xs[j] - mu) * r;
        dx[idx] = store<T>(r * (gs[j] - mean_g - xhat * mean_gx));
      });
    }
  }

  if (!p.affine) return;
  T* dgamma = a.dgamma ? a.dgamma->data<T>() : nullptr;
  T* dbeta = a.dbeta ? a.dbeta->data<T>() : nullptr;
  if (!dgamma && !dbeta) return;
  const int64_t L = N * S;
  std::vector<A> buf(static_cast<size_t>(L));
  for (int64_t c = 0; c < p.C; ++c) {
    const int64_t g = c / cpg;
    if (L == 0) {
      if (dgamma) dgamma[c] = store<T>(A(0));
      if (dbeta) dbeta[c] = store<T>(A(0));
      continue;
    }
    if (dgamma) {
      for (int64_t n = 0; n < N; ++n) {
        const A mu = mean_in[n * G + g], r = rstd_in[n * G + g];
        for (int64_t s = 0; s < S; ++s) {
          const int64_t idx = p.index(n, c, s);
          buf[n * S + s] = load<A>(dy[idx]) * ((load<A>(x[idx]) - mu) * r);
        }
      }
      dgamma[c] = store<T>(Policy::sum(buf.data(), L));
    }
    if (dbeta) {
      for (int64_t n = 0; n < N; ++n)
        for (int64_t s = 0; s < S; ++s) buf[n * S + s] = load<A>(dy[p.index(n, c, s)]);
      dbeta[c] = store<T>(Policy::sum(buf.data(), L));
    }
  }
}

// The Impl every CPU policy is exposed as; an implementation file only names its policy.
template <class Policy>
class PolicyImpl : public Impl {
 public:
  std::string_view name() const override { return Policy::kName; }
  Capabilities capabilities() const override {
    Capabilities c;
    c.dtypes.assign(std::begin(kAllDTypes), std::end(kAllDTypes));
    c.layouts.assign(std::begin(kAllLayouts), std::end(kAllLayouts));
    c.forward = true;
    c.backward = true;
    c.device = "cpu";
    c.deterministic = true;
    c.control = Policy::kControl;
    c.summary = std::string(Policy::kSummary);
    return c;
  }
  void forward(const ForwardArgs& a) const override {
    visit_dtype(a.p.dtype, [&](auto t) { forward_typed<Policy, typename decltype(t)::type>(a); });
  }
  void backward(const BackwardArgs& a) const override {
    visit_dtype(a.p.dtype, [&](auto t) { backward_typed<Policy, typename decltype(t)::type>(a); });
  }
};

}  // namespace gnv::cpu
