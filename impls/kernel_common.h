#pragma once
// The one driver behind the CPU implementations (naive, welford, onepass; simd falls back to it
// group by group). They differ only in
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
// Non-finite policy (docs/numerics.md "Non-finite policy"): a group with a NaN or +-Inf in x gets rstd = NaN,
// hence NaN in every y of the group (also where gamma = 0, since 0 * NaN = NaN), and a mean that
// is NaN unless the policy's own mean came out +-Inf. Other groups never see the group's values.
// In backward, NaN/Inf propagate through the formulas unaided: the mean and rstd handed in for
// such a group are already NaN.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "gnv/dtype.h"
#include "gnv/impl.h"
#include "gnv/silu.h"
#include "gnv/welford.h"

namespace gnv::cpu {

template <class A> struct Stats { A mean; A var; };
template <class A> struct BwdSums { A sum_g; A sum_gx; };

// std::ldexp(v, k) and std::ilogb(v) without the libm call, for the per-element scalings. Where
// 2^k is a finite A (normal or subnormal), v * 2^k is one correctly rounded product, which is
// ldexp's value exactly, subnormal, zero and overflowing results included; elsewhere, and for
// ilogb of a subnormal, the libm function.
template <class A> inline A scale2(A v, int k) {
  using L = std::numeric_limits<A>;
  constexpr int kMin = L::min_exponent - L::digits, kNormal = L::min_exponent - 1, kMax = L::max_exponent - 1;
  using U = std::conditional_t<sizeof(A) == 4, uint32_t, uint64_t>;
  if (k == 0) return v;
  if (k < kMin || k > kMax) return std::ldexp(v, k);
  const U bits = k >= kNormal ? static_cast<U>(k - kNormal + 1) << (L::digits - 1) : U{1} << (k - kMin);
  return v * std::bit_cast<A>(bits);
}
template <class A> inline int ilogb2(A v) {  // v finite and nonzero
  using L = std::numeric_limits<A>;
  using U = std::conditional_t<sizeof(A) == 4, uint32_t, uint64_t>;
  const int E = static_cast<int>((std::bit_cast<U>(v) >> (L::digits - 1)) & ((U{1} << (8 * sizeof(A) - L::digits)) - 1));
  return E == 0 ? std::ilogb(v) : E - L::max_exponent + 1;
}

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

// A group's statistics in a scaled frame: x_s = x * 2^-k, xhat = (x_s - mean_s) * rstd_s, and
// mean = mean_s * 2^k, rstd = rstd_s * 2^-k. k = 0 unless the plain statistics left the range
// of acc_t (see rescued_stats).
template <class A> struct Frame { int k; A mean_s; A rstd_s; };

// Statistics for a group whose inputs are all finite but whose statistics left the range of
// acc_t: they overflowed (sums of values near the top of the range, squares of deviations above
// sqrt(max), var + eps past max), or var + eps lost its bits to gradual underflow (a spread of
// subnormal size). The values are scaled by 2^-k with k = ilogb(max|x|), which is exact (a power
// of two) except for values that fall into the subnormals when k > 0: those are below
// max|x| * 2^-126 (f32; 2^-1022 for f64) and cannot move the mean or variance at working
// precision. The scaled values lie in (-2, 2), so their sums cannot overflow for any m. Then
//   mean = mean_s * 2^k,   rstd = 2^-k / sqrt(var_s + eps * 2^-2k),
// and the caller keeps the scaled frame for xhat, because rstd itself may overflow where xhat
// does not. For k > 0, eps * 2^-2k may underflow to 0: that only drops an eps negligible next to
// a variance of order 2^2k, except in a constant group (var_s = 0), whose xhat is 0 and rstd
// 1/sqrt(eps). For k < 0 it may overflow, and then eps dominates the variance, so the plain
// statistics were right: `ok` is false and the caller keeps them.
template <class A> struct Rescued { bool ok; Frame<A> f; A mean, rstd; };

template <class Policy, class A>
Rescued<A> rescued_stats(const std::vector<A>& xs, A amax, A eps, std::vector<A>& scratch) {
  const int k = std::ilogb(amax);
  scratch.resize(xs.size());
  for (size_t j = 0; j < xs.size(); ++j) scratch[j] = std::ldexp(xs[j], -k);
  const A eps_s = std::ldexp(eps, -2 * k);
  const Stats<A> st = Policy::stats(scratch.data(), static_cast<int64_t>(scratch.size()), eps_s);
  const A mean = std::ldexp(st.mean, k);
  if (!(st.var + eps_s > 0)) {
    // A group that is not constant has a positive variance, but a running update can round it
    // away (Welford: mean += delta/n rounding to the new value leaves M2 untouched); eps = 0
    // would then make a finite result NaN. The deviations from the computed mean recover it.
    A dev2 = 0;
    for (const A v : scratch) dev2 += (v - st.mean) * (v - st.mean);
    if (dev2 > 0) {
      const A rstd_s = A(1) / std::sqrt(dev2 / static_cast<A>(scratch.size()) + eps_s);
      return {true, {k, st.mean, rstd_s}, mean, std::ldexp(rstd_s, -k)};
    }
    const A inf = std::numeric_limits<A>::infinity();
    return {true, {k, st.mean, eps > 0 ? A(0) : inf}, mean, A(1) / std::sqrt(eps)};
  }
  const A rstd_s = A(1) / std::sqrt(st.var + eps_s);
  if (!(rstd_s > 0) || !std::isfinite(rstd_s)) return {false, {}, {}, {}};
  return {true, {k, st.mean, rstd_s}, mean, std::ldexp(rstd_s, -k)};
}

// Per-call scratch for forward_group, sized for one group.
template <class A> struct ForwardScratch {
  std::vector<A> xs, scratch, gc, bc;
  explicit ForwardScratch(const Problem& p)
      : xs(static_cast<size_t>(p.group_size())), gc(static_cast<size_t>(p.channels_per_group())),
        bc(static_cast<size_t>(p.channels_per_group())) {}
};

// One group (n, g) of the forward pass: writes its y, mean and rstd and touches nothing else, so
// another kernel (simd) can hand the groups it does not take on to this one.
template <class Policy, class T>
void forward_group(const ForwardArgs& a, int64_t n, int64_t g, ForwardScratch<acc_of<T>>& sc) {
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
  std::vector<A>& xs = sc.xs;
  std::vector<A>& gc = sc.gc;
  std::vector<A>& bc = sc.bc;

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
  Frame<A> f{0, mean, rstd};
  if (!finite) {
    // Explicit rather than left to propagation: a clamped variance (onepass) or a policy that
    // skips values would otherwise hand back a finite rstd for a group with Inf in it.
    if (std::isfinite(mean)) mean = nan;
    rstd = nan;
    f = {0, mean, rstd};
  } else if constexpr (Policy::kRescue) {
    const bool overflow = !std::isfinite(st.mean) || !std::isfinite(st.var + eps);
    const bool underflow = amax > 0 && !(st.var + eps >= std::numeric_limits<A>::min());
    if (overflow || underflow) {
      const Rescued<A> r = rescued_stats<Policy>(xs, amax, eps, sc.scratch);
      if (r.ok) {
        f = r.f;
        mean = r.mean;
        rstd = r.rstd;
      }
    }
  }
  mean_out[n * G + g] = mean;
  rstd_out[n * G + g] = rstd;

  // y = gamma * xhat + beta with xhat formed first. The fused form x * (gamma * rstd) +
  // (beta - mean * gamma * rstd) saves an operation, but its coefficients overflow or
  // underflow where y does not (gamma * rstd beyond the range of acc_t; x * a and mean * a
  // both near Inf with a moderate difference). gamma * xhat overflows only when |gamma| is
  // near max; beta may still bring the sum back into range, which one fused multiply-add
  // (exact product, one rounding) gets right.
  for (int64_t cl = 0; cl < cpg; ++cl) {
    const int64_t q = p.param_index(n, g * cpg + cl);
    gc[cl] = gamma ? load<A>(gamma[q]) : A(1);
    bc[cl] = beta ? load<A>(beta[q]) : A(0);
  }
  const bool with_silu = p.epilogue == Epilogue::silu;
  for_each_in_group(p, n, g, [&](int64_t j, int64_t idx, int64_t cl) {
    const A xhat = (scale2(xs[j], -f.k) - f.mean_s) * f.rstd_s;
    const A v = silu::affine(gc[cl], xhat, bc[cl]);  // include/gnv/silu.h, shared with the CUDA kernels
    y[idx] = store<T>(with_silu ? silu::value(v, finite && std::isfinite(gc[cl]) && std::isfinite(bc[cl])) : v);
  });
}

template <class Policy, class T>
void forward_typed(const ForwardArgs& a) {
  ForwardScratch<acc_of<T>> sc(a.p);
  for (int64_t n = 0; n < a.p.N; ++n)
    for (int64_t g = 0; g < a.p.G; ++g) forward_group<Policy, T>(a, n, g, sc);
}

// v = f * 2^e with |f| in [1, 2), exactly; 0, NaN and Inf come back as themselves with e = 0, so
// they propagate through scaled arithmetic as they would through the plain one.
template <class A> struct Split { A f; int e; };
template <class A> inline Split<A> split(A v) {
  if (v == 0 || !std::isfinite(v)) return {v, 0};
  const int e = ilogb2(v);
  return {scale2(v, -e), e};
}

template <class A> struct BackwardScratch {
  std::vector<A> xs, gs;
  std::vector<int> ge;
  explicit BackwardScratch(const Problem& p)
      : xs(static_cast<size_t>(p.group_size())), gs(static_cast<size_t>(p.group_size())),
        ge(static_cast<size_t>(p.group_size())) {}
};

// dx of one group (n, g); returns the frame exponent kx its x was taken in, which the dgamma
// pass of the group's channels needs (backward_channel).
// dy is the tensor's own (D = T), or with an epilogue the gradient before it (D = acc_t).
template <class Policy, class T, class D>
int backward_group(const BackwardArgs& a, const D* dy, int64_t n, int64_t g, BackwardScratch<acc_of<T>>& sc) {
  using A = acc_of<T>;
  const Problem& p = a.p;
  const int64_t G = p.G, cpg = p.channels_per_group(), m = p.group_size();
  const int64_t prow = p.per_sample() ? n * p.C : 0;
  const T* x = a.x.data<T>();
  const A* mean_in = a.mean.data<A>();
  const A* rstd_in = a.rstd.data<A>();
  const T* gamma = p.affine && a.gamma ? a.gamma->data<T>() : nullptr;
  T* dx = a.dx.data<T>();
  std::vector<A>& xs = sc.xs;
  std::vector<A>& gs = sc.gs;
  std::vector<int>& ge = sc.ge;
  const A inv_m = A(1) / static_cast<A>(m);

  const A mu = mean_in[n * G + g], r = rstd_in[n * G + g];
  int kg = std::numeric_limits<int>::min();
  bool x_over = false;
  A amax = 0;
  for_each_in_group(p, n, g, [&](int64_t j, int64_t idx, int64_t cl) {
    xs[j] = load<A>(x[idx]);
    amax = std::max(amax, std::abs(xs[j]));
    x_over = x_over || (std::isfinite(xs[j]) && std::isfinite(mu) && !std::isfinite(xs[j] - mu));
    const Split<A> d = split(load<A>(dy[idx]));
    const Split<A> gm = split(gamma ? load<A>(gamma[prow + g * cpg + cl]) : A(1));
    gs[j] = gm.f * d.f;
    ge[j] = gm.e + d.e;
    if (gs[j] != 0 && std::isfinite(gs[j])) kg = std::max(kg, ge[j]);
  });
  if (kg == std::numeric_limits<int>::min()) kg = 0;
  for (int64_t j = 0; j < m; ++j) gs[j] = scale2(gs[j], ge[j] - kg);
  const int kx = x_over ? std::ilogb(amax) : 0;
  const A mu_s = std::ldexp(mu, -kx), r_s = std::ldexp(r, kx);
  if (kx != 0)
    for (int64_t j = 0; j < m; ++j) xs[j] = std::ldexp(xs[j], -kx);
  const BwdSums<A> s = Policy::bwd_sums(gs.data(), xs.data(), m, mu_s, r_s);
  const A mean_g = s.sum_g * inv_m, mean_gx = s.sum_gx * inv_m;
  const Split<A> rs = split(r);
  for_each_in_group(p, n, g, [&](int64_t j, int64_t idx, int64_t) {
    const A xhat = (xs[j] - mu_s) * r_s;
    dx[idx] = store<T>(scale2(rs.f * (gs[j] - mean_g - xhat * mean_gx), rs.e + kg));
  });
  return kx;
}

// dgamma[out] and dbeta[out] (whichever are non-null): the sums over samples [n0, n1) of channel c
// (every sample for per-channel parameters, one for per-sample ones), given the frame exponents of
// every group.
template <class Policy, class T, class D>
void backward_channel(const BackwardArgs& a, const D* dy, int64_t c, int64_t n0, int64_t n1, int64_t out,
                      const int* kx_of, std::vector<acc_of<T>>& buf) {
  using A = acc_of<T>;
  const Problem& p = a.p;
  const int64_t G = p.G, S = p.S(), cpg = p.channels_per_group();
  const T* x = a.x.data<T>();
  const A* mean_in = a.mean.data<A>();
  const A* rstd_in = a.rstd.data<A>();
  T* dgamma = a.dgamma ? a.dgamma->data<T>() : nullptr;
  T* dbeta = a.dbeta ? a.dbeta->data<T>() : nullptr;
  const int64_t L = (n1 - n0) * S;
  buf.resize(static_cast<size_t>(L));
  const int64_t g = c / cpg;
  if (L == 0) {
    if (dgamma) dgamma[out] = store<T>(A(0));
    if (dbeta) dbeta[out] = store<T>(A(0));
    return;
  }
  A dmax = 0;
  for (int64_t n = n0; n < n1; ++n)
    for (int64_t s = 0; s < S; ++s) {
      const A d = std::abs(load<A>(dy[p.index(n, c, s)]));
      if (std::isfinite(d)) dmax = std::max(dmax, d);
    }
  const int kd = split(dmax).e;
  if (dgamma) {
    for (int64_t n = n0; n < n1; ++n) {
      const int kx = kx_of[n * G + g];
      const A mu_s = std::ldexp(mean_in[n * G + g], -kx), r_s = std::ldexp(rstd_in[n * G + g], kx);
      for (int64_t s = 0; s < S; ++s) {
        const int64_t idx = p.index(n, c, s);
        const A xhat = (scale2(load<A>(x[idx]), -kx) - mu_s) * r_s;
        buf[(n - n0) * S + s] = scale2(load<A>(dy[idx]), -kd) * xhat;
      }
    }
    dgamma[out] = store<T>(std::ldexp(Policy::sum(buf.data(), L), kd));
  }
  if (dbeta) {
    for (int64_t n = n0; n < n1; ++n)
      for (int64_t s = 0; s < S; ++s) buf[(n - n0) * S + s] = scale2(load<A>(dy[p.index(n, c, s)]), -kd);
    dbeta[out] = store<T>(std::ldexp(Policy::sum(buf.data(), L), kd));
  }
}

// With the SiLU epilogue the pass before it sees dy * silu'(v), v = gamma xhat + beta recomputed
// from x and the statistics handed in (x - mean taken in a scaled frame where it overflows).
template <class T>
std::vector<acc_of<T>> epilogue_grad(const BackwardArgs& a) {
  using A = acc_of<T>;
  const Problem& p = a.p;
  const T* x = a.x.data<T>();
  const T* dy = a.dy.data<T>();
  const T* gamma = p.affine && a.gamma ? a.gamma->data<T>() : nullptr;
  const T* beta = p.affine && a.beta ? a.beta->data<T>() : nullptr;
  const A* mean_in = a.mean.data<A>();
  const A* rstd_in = a.rstd.data<A>();
  std::vector<A> out(static_cast<size_t>(p.numel()));
  const int64_t cpg = p.channels_per_group();
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t g = 0; g < p.G; ++g) {
      const A mu = mean_in[n * p.G + g], r = rstd_in[n * p.G + g];
      for_each_in_group(p, n, g, [&](int64_t, int64_t idx, int64_t cl) {
        const A xv = load<A>(x[idx]);
        A xhat = (xv - mu) * r;
        if (!std::isfinite(xv - mu) && std::isfinite(xv) && std::isfinite(mu)) {
          const int k = std::ilogb(std::max(std::abs(xv), std::abs(mu)));
          xhat = (std::ldexp(xv, -k) - std::ldexp(mu, -k)) * std::ldexp(r, k);
        }
        const int64_t q = p.param_index(n, g * cpg + cl);
        const A gm = gamma ? load<A>(gamma[q]) : A(1), bt = beta ? load<A>(beta[q]) : A(0);
        const bool finite_in = std::isfinite(xv) && std::isfinite(mu) && std::isfinite(r) && std::isfinite(gm) &&
                               std::isfinite(bt);
        out[static_cast<size_t>(idx)] = load<A>(dy[idx]) * silu::grad(silu::affine(gm, xhat, bt), finite_in);
      });
    }
  return out;
}

// The backward pass works in scaled frames, so that no intermediate overflows or underflows where
// the exact result does not (docs/numerics.md "Non-finite policy": a finite exact value must come back
// finite): g = gamma * dy is formed as fraction products times 2^(e_j - kg), kg the largest
// exponent of a product in the group (|g_s| < 4, sums of m of them cannot overflow, and only
// products 2^-149 below the group's largest lose bits); dx = rstd * bracket * 2^kg is scaled back
// once at the end; x - mean, which overflows only for a spread near the top of the range (rstd
// then tiny), is taken in the frame 2^-kx with kx = ilogb(max|x|); dgamma and dbeta scale each
// channel's dy by its largest exponent.
template <class Policy, class T, class D>
void backward_with(const BackwardArgs& a, const D* dy) {
  using A = acc_of<T>;
  const Problem& p = a.p;
  BackwardScratch<A> sc(p);
  std::vector<int> kx_of(static_cast<size_t>(p.N * p.G), 0);
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t g = 0; g < p.G; ++g) kx_of[n * p.G + g] = backward_group<Policy, T>(a, dy, n, g, sc);
  if (!p.affine) return;
  if (!a.dgamma && !a.dbeta) return;
  std::vector<A> buf;
  for (int64_t c = 0; c < p.C; ++c) {
    if (!p.per_sample()) backward_channel<Policy, T>(a, dy, c, 0, p.N, c, kx_of.data(), buf);
    else
      for (int64_t n = 0; n < p.N; ++n) backward_channel<Policy, T>(a, dy, c, n, n + 1, n * p.C + c, kx_of.data(), buf);
  }
}

template <class Policy, class T>
void backward_typed(const BackwardArgs& a) {
  if (a.p.epilogue == Epilogue::silu) backward_with<Policy, T>(a, epilogue_grad<T>(a).data());
  else backward_with<Policy, T>(a, a.dy.data<T>());
}

// The Impl every CPU policy is exposed as; an implementation file only names its policy.
template <class Policy>
class PolicyImpl : public Impl {
 public:
  std::string_view name() const override { return Policy::kName; }
  Capabilities capabilities() const override {
    Capabilities c = Capabilities::full("cpu", std::string(Policy::kSummary));
    c.control = Policy::kControl;
    c.epilogues = {Epilogue::none, Epilogue::silu};
    c.per_sample = true;
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
