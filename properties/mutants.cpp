// The planted mutants. Policies derive from `Correct` (the reductions impls/welford.cpp uses:
// chunked Welford, pairwise sums) and override one function; wrappers run the correct driver on
// a broken gather, index or output.
#include "mutants.h"

#include <atomic>
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include "gnv/welford.h"
#include "kernel_common.h"

namespace gnv::mutants {

namespace {

using cpu::BwdSums;
using cpu::Stats;

struct Correct {
  static constexpr std::string_view kName = "mut-base";
  static constexpr std::string_view kSummary = "the correct chunked-Welford policy the mutants break";
  static constexpr bool kControl = false;
  static constexpr bool kRescue = true;

  template <class A> static Stats<A> stats(const A* x, int64_t m, A /*eps*/) {
    const Welford<A> w = welford_chunked(x, m);
    return {w.mean, w.variance()};
  }
  template <class A> static BwdSums<A> bwd_sums(const A* g, const A* x, int64_t m, A mean, A rstd) {
    std::vector<A> gx(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) gx[static_cast<size_t>(i)] = g[i] * ((x[i] - mean) * rstd);
    return {pairwise_sum(g, m), pairwise_sum(gx.data(), m)};
  }
  template <class A> static A sum(const A* v, int64_t m) { return pairwise_sum(v, m); }
};

// ---- broken policies ---------------------------------------------------------------------------

struct EpsOutsideSqrt : Correct {
  static constexpr std::string_view kName = "mut-eps-outside-sqrt";
  static constexpr std::string_view kSummary = "rstd = 1 / (sqrt(var) + eps)";
  template <class A> static Stats<A> stats(const A* x, int64_t m, A eps) {
    const Stats<A> s = Correct::stats(x, m, eps);
    // The driver takes 1/sqrt(var + eps): handing it (sqrt(var) + eps)^2 - eps makes that
    // 1/(sqrt(var) + eps).
    const A t = std::sqrt(s.var) + eps;
    return {s.mean, t * t - eps};
  }
};

struct Unbiased : Correct {
  static constexpr std::string_view kName = "mut-unbiased-variance";
  static constexpr std::string_view kSummary = "variance divided by m - 1";
  template <class A> static Stats<A> stats(const A* x, int64_t m, A eps) {
    const Stats<A> s = Correct::stats(x, m, eps);
    return {s.mean, m > 1 ? s.var * static_cast<A>(m) / static_cast<A>(m - 1) : s.var};
  }
};

struct OnepassNoClamp : Correct {
  static constexpr std::string_view kName = "mut-onepass-no-clamp";
  static constexpr std::string_view kSummary = "var = E[x^2] - E[x]^2, not clamped at 0";
  static constexpr bool kRescue = false;
  template <class A> static Stats<A> stats(const A* x, int64_t m, A /*eps*/) {
    A s1 = 0, s2 = 0;
    for (int64_t i = 0; i < m; ++i) {
      s1 += x[i];
      s2 += x[i] * x[i];
    }
    const A mean = s1 / static_cast<A>(m);
    return {mean, s2 / static_cast<A>(m) - mean * mean};
  }
};

struct SkipLastChunk : Correct {
  static constexpr std::string_view kName = "mut-skip-last-chunk";
  static constexpr std::string_view kSummary = "the last partial chunk of 32 is left out of the statistics";
  template <class A> static Stats<A> stats(const A* x, int64_t m, A /*eps*/) {
    // for (chunk = 0; chunk < m / 32; ++chunk): the remainder is forgotten once there is a
    // whole chunk (a group smaller than one chunk is handled by a separate "small" path).
    const int64_t used = m >= 32 ? m / 32 * 32 : m;
    const Welford<A> w = welford_chunked(x, used);
    return {w.mean, w.variance()};
  }
};

struct BwdUncentered : Correct {
  static constexpr std::string_view kName = "mut-backward-uncentered";
  static constexpr std::string_view kSummary = "backward sum g*xhat from uncentered sums: rstd*(sum g*x - mean*sum g)";
  template <class A> static BwdSums<A> bwd_sums(const A* g, const A* x, int64_t m, A mean, A rstd) {
    std::vector<A> gx(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) gx[static_cast<size_t>(i)] = g[i] * x[i];
    const A sg = pairwise_sum(g, m);
    return {sg, rstd * (pairwise_sum(gx.data(), m) - mean * sg)};
  }
};

// Claims determinism (its capabilities say so) but its chunk size changes from call to call, as
// a kernel whose split depends on a thread count or a race would.
struct Nondeterministic : Correct {
  static constexpr std::string_view kName = "mut-nondeterministic";
  static constexpr std::string_view kSummary = "the Welford chunk size changes between calls";
  static inline std::atomic<unsigned> calls{0};
  template <class A> static Stats<A> stats(const A* x, int64_t m, A /*eps*/) {
    const int64_t chunk = int64_t{4} << (calls.fetch_add(1) % 4);
    const Welford<A> w = welford_chunked(x, m, chunk);
    return {w.mean, w.variance()};
  }
};

// The mean summed in the storage dtype: exact for f32/f64 storage types (then it is the acc
// type), a 16-bit running sum for f16/bf16.
template <class T>
struct StorageMean : Correct {
  template <class A> static Stats<A> stats(const A* x, int64_t m, A /*eps*/) {
    T s = T(0);
    for (int64_t i = 0; i < m; ++i) s = static_cast<T>(static_cast<A>(s) + x[i]);
    const A mean = static_cast<A>(s) / static_cast<A>(m);
    A q = 0;
    for (int64_t i = 0; i < m; ++i) q += (x[i] - mean) * (x[i] - mean);
    return {mean, q / static_cast<A>(m)};
  }
};

// ---- wrappers around the correct driver ----------------------------------------------------------

// The wrappers below predate the fused forms and rewrite (C) parameters: they declare plain
// GroupNorm only, unless they are the fused forms' own mutants (`fused`).
Capabilities cpu_capabilities(std::string_view summary, bool fused) {
  Capabilities c = cpu::PolicyImpl<Correct>().capabilities();
  c.summary = std::string(summary);
  if (!fused) {
    c.epilogues = {Epilogue::none};
    c.per_sample = false;
  }
  return c;
}

class Wrapper : public Impl {
 public:
  Wrapper(std::string_view name, std::string_view summary, bool fused = false)
      : name_(name), summary_(summary), fused_(fused) {}
  std::string_view name() const override { return name_; }
  Capabilities capabilities() const override { return cpu_capabilities(summary_, fused_); }
  void forward(const ForwardArgs& a) const override { base_.forward(a); }
  void backward(const BackwardArgs& a) const override { base_.backward(a); }

 protected:
  cpu::PolicyImpl<Correct> base_;

 private:
  std::string_view name_, summary_;
  bool fused_;
};

// ---- the fused forms' mutants: the correct driver for everything but the broken step ----------

// The SiLU applied to xhat before the affine step: gamma silu(xhat) + beta.
class SiluOnXhat final : public Wrapper {
 public:
  SiluOnXhat() : Wrapper("mut-silu-on-xhat", "SiLU of xhat, then gamma and beta", true) {}
  void forward(const ForwardArgs& a) const override {
    const Problem& p = a.p;
    if (p.epilogue != Epilogue::silu) return base_.forward(a);
    Problem q = p;  // plain xhat
    q.epilogue = Epilogue::none;
    q.affine = false;
    q.affine_mode = AffineMode::per_channel;
    Tensor xhat(a.y.dtype(), a.y.shape());
    base_.forward({q, a.x, nullptr, nullptr, xhat, a.mean, a.rstd});
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t c = 0; c < p.C; ++c)
        for (int64_t s = 0; s < p.S(); ++s) {
          const int64_t i = p.index(n, c, s), k = p.param_index(n, c);
          const double v = xhat.get(i), sv = v / (1 + std::exp(-v));
          a.y.set(i, a.gamma ? a.gamma->get(k) * sv + a.beta->get(k) : sv);
        }
  }
};

// The sigmoid of the SiLU rounded to f16 (a half-precision activation table): y * RN_f16(s(y)).
class SigmoidInF16 final : public Wrapper {
 public:
  SigmoidInF16() : Wrapper("mut-sigmoid-in-f16", "the sigmoid of the SiLU evaluated in f16", true) {}
  void forward(const ForwardArgs& a) const override {
    const Problem& p = a.p;
    if (p.epilogue != Epilogue::silu) return base_.forward(a);
    Problem q = p;
    q.epilogue = Epilogue::none;
    base_.forward({q, a.x, a.gamma, a.beta, a.y, a.mean, a.rstd});
    Tensor half(DType::f16, {1});
    for (int64_t i = 0; i < a.y.numel(); ++i) {
      const double v = a.y.get(i);
      half.set(0, 1 / (1 + std::exp(-v)));
      a.y.set(i, v * half.get(0));
    }
  }
};

// Per-sample parameters read by channel only: every sample gets row 0.
class PerSampleByChannel final : public Wrapper {
 public:
  PerSampleByChannel() : Wrapper("mut-per-sample-by-channel", "per-sample gamma and beta indexed by c, not (n, c)", true) {}
  void forward(const ForwardArgs& a) const override {
    const Problem& p = a.p;
    if (!p.per_sample()) return base_.forward(a);
    Tensor gamma(a.gamma->dtype(), a.gamma->shape()), beta(a.beta->dtype(), a.beta->shape());
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t c = 0; c < p.C; ++c) {
        gamma.set_bits(n * p.C + c, a.gamma->bits(c));
        beta.set_bits(n * p.C + c, a.beta->bits(c));
      }
    base_.forward({p, a.x, &gamma, &beta, a.y, a.mean, a.rstd});
  }
};

class StorageMeanImpl final : public Wrapper {
 public:
  StorageMeanImpl() : Wrapper("mut-storage-dtype-mean", "the mean accumulated in the storage dtype (f16/bf16)") {}
  void forward(const ForwardArgs& a) const override {
    visit_dtype(a.p.dtype, [&](auto t) {
      using T = typename decltype(t)::type;
      cpu::forward_typed<StorageMean<T>, T>(a);
    });
  }
};

// Channels-last with the channel -> group map c % G instead of c / (C/G). Emulated exactly: the
// channels are relabelled so that the driver's contiguous groups are the wrong ones.
class NhwcGroupMapping final : public Wrapper {
 public:
  NhwcGroupMapping() : Wrapper("mut-nhwc-group-mapping", "channels-last: channel c in group c % G, not c / (C/G)") {}

  void forward(const ForwardArgs& a) const override {
    const Problem& p = a.p;
    if (p.layout != Layout::nhwc || p.G == 1 || p.G == p.C) return base_.forward(a);
    const std::vector<int64_t> src = source_channels(p);
    const Tensor x = permute(a.x, p, src);
    Tensor y(a.y.dtype(), a.y.shape());
    std::optional<Tensor> gamma, beta;
    if (a.gamma) gamma = permute_channels(*a.gamma, src);
    if (a.beta) beta = permute_channels(*a.beta, src);
    base_.forward({p, x, gamma ? &*gamma : nullptr, beta ? &*beta : nullptr, y, a.mean, a.rstd});
    unpermute(y, a.y, p, src);
  }
  void backward(const BackwardArgs& a) const override {
    const Problem& p = a.p;
    if (p.layout != Layout::nhwc || p.G == 1 || p.G == p.C) return base_.backward(a);
    const std::vector<int64_t> src = source_channels(p);
    const Tensor x = permute(a.x, p, src), dy = permute(a.dy, p, src);
    std::optional<Tensor> gamma, beta;
    if (a.gamma) gamma = permute_channels(*a.gamma, src);
    if (a.beta) beta = permute_channels(*a.beta, src);
    Tensor dx(a.dx.dtype(), a.dx.shape());
    std::optional<Tensor> dgamma, dbeta;
    if (a.dgamma) dgamma = Tensor(a.dgamma->dtype(), a.dgamma->shape());
    if (a.dbeta) dbeta = Tensor(a.dbeta->dtype(), a.dbeta->shape());
    base_.backward({p, dy, x, a.mean, a.rstd, gamma ? &*gamma : nullptr, beta ? &*beta : nullptr, dx, dgamma ? &*dgamma : nullptr,
                    dbeta ? &*dbeta : nullptr});
    unpermute(dx, a.dx, p, src);
    for (int64_t c = 0; c < p.C; ++c) {
      if (dgamma) a.dgamma->set_bits(src[static_cast<size_t>(c)], dgamma->bits(c));
      if (dbeta) a.dbeta->set_bits(src[static_cast<size_t>(c)], dbeta->bits(c));
    }
  }

 private:
  // Relabelled channel c' = g*cpg + j holds original channel j*G + g.
  static std::vector<int64_t> source_channels(const Problem& p) {
    const int64_t cpg = p.channels_per_group();
    std::vector<int64_t> src(static_cast<size_t>(p.C));
    for (int64_t c = 0; c < p.C; ++c) src[static_cast<size_t>(c)] = (c % cpg) * p.G + c / cpg;
    return src;
  }
  static Tensor permute(const Tensor& t, const Problem& p, const std::vector<int64_t>& src) {
    Tensor out(t.dtype(), t.shape());
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t c = 0; c < p.C; ++c)
        for (int64_t s = 0; s < p.S(); ++s) out.set_bits(p.index(n, c, s), t.bits(p.index(n, src[static_cast<size_t>(c)], s)));
    return out;
  }
  static void unpermute(const Tensor& t, Tensor& out, const Problem& p, const std::vector<int64_t>& src) {
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t c = 0; c < p.C; ++c)
        for (int64_t s = 0; s < p.S(); ++s) out.set_bits(p.index(n, src[static_cast<size_t>(c)], s), t.bits(p.index(n, c, s)));
  }
  static Tensor permute_channels(const Tensor& t, const std::vector<int64_t>& src) {
    Tensor out(t.dtype(), t.shape());
    for (size_t c = 0; c < src.size(); ++c) out.set_bits(static_cast<int64_t>(c), t.bits(src[c]));
    return out;
  }
};

class DgammaNoXhat final : public Wrapper {
 public:
  DgammaNoXhat() : Wrapper("mut-dgamma-no-xhat", "dgamma = sum dy, the xhat factor dropped") {}
  void backward(const BackwardArgs& a) const override {
    base_.backward(a);
    if (a.dgamma && a.dbeta)
      for (int64_t c = 0; c < a.p.C; ++c) a.dgamma->set_bits(c, a.dbeta->bits(c));
  }
};

class WrongGroupRstd final : public Wrapper {
 public:
  WrongGroupRstd() : Wrapper("mut-backward-wrong-group-rstd", "backward reads rstd of group g+1 for group g") {}
  void backward(const BackwardArgs& a) const override {
    const Problem& p = a.p;
    Tensor rstd(a.rstd.dtype(), a.rstd.shape());
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t g = 0; g < p.G; ++g) rstd.set_bits(n * p.G + g, a.rstd.bits(n * p.G + (g + 1) % p.G));
    base_.backward({p, a.dy, a.x, a.mean, rstd, a.gamma, a.beta, a.dx, a.dgamma, a.dbeta});
  }
};

// Statistics pooled over the batch (a BatchNorm habit): run as one sample of N*S positions.
class BatchPooled final : public Wrapper {
 public:
  BatchPooled() : Wrapper("mut-batch-pooled-stats", "group statistics pooled over the whole batch") {}
  void forward(const ForwardArgs& a) const override {
    const Problem& p = a.p;
    if (p.N <= 1) return base_.forward(a);
    Problem q = p;
    q.N = 1;
    q.spatial = {p.N * p.S()};
    q.layout = Layout::nchw;
    const int64_t S = p.S(), NS = p.N * S;
    Tensor x(a.x.dtype(), q.x_shape()), y(a.y.dtype(), q.x_shape());
    Tensor mean(a.mean.dtype(), q.stats_shape()), rstd(a.rstd.dtype(), q.stats_shape());
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t c = 0; c < p.C; ++c)
        for (int64_t s = 0; s < S; ++s) x.set_bits(c * NS + n * S + s, a.x.bits(p.index(n, c, s)));
    base_.forward({q, x, a.gamma, a.beta, y, mean, rstd});
    for (int64_t n = 0; n < p.N; ++n) {
      for (int64_t c = 0; c < p.C; ++c)
        for (int64_t s = 0; s < S; ++s) a.y.set_bits(p.index(n, c, s), y.bits(c * NS + n * S + s));
      for (int64_t g = 0; g < p.G; ++g) {
        a.mean.set_bits(n * p.G + g, mean.bits(g));
        a.rstd.set_bits(n * p.G + g, rstd.bits(g));
      }
    }
  }
};

// One non-finite value anywhere sends the whole tensor down the non-finite path.
class NanEverywhere final : public Wrapper {
 public:
  NanEverywhere() : Wrapper("mut-nan-everywhere", "a NaN/Inf anywhere in x makes every output NaN") {}
  void forward(const ForwardArgs& a) const override {
    base_.forward(a);
    bool finite = true;
    for (int64_t i = 0; i < a.x.numel(); ++i) finite = finite && std::isfinite(a.x.get(i));
    if (finite) return;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (int64_t i = 0; i < a.y.numel(); ++i) a.y.set(i, nan);
    for (int64_t i = 0; i < a.mean.numel(); ++i) {
      a.mean.set(i, nan);
      a.rstd.set(i, nan);
    }
  }
};

class AffineByGroup final : public Wrapper {
 public:
  AffineByGroup() : Wrapper("mut-affine-by-group", "gamma and beta indexed by the group, not the channel") {}
  void forward(const ForwardArgs& a) const override {
    if (!a.gamma || !a.beta) return base_.forward(a);
    const int64_t cpg = a.p.channels_per_group();
    Tensor gamma(a.gamma->dtype(), a.gamma->shape()), beta(a.beta->dtype(), a.beta->shape());
    for (int64_t c = 0; c < a.p.C; ++c) {
      gamma.set_bits(c, a.gamma->bits(c / cpg));
      beta.set_bits(c, a.beta->bits(c / cpg));
    }
    base_.forward({a.p, a.x, &gamma, &beta, a.y, a.mean, a.rstd});
  }
};

template <class Policy> Mutant policy_mutant(const char* bug) {
  return Mutant{std::make_unique<cpu::PolicyImpl<Policy>>(), bug};
}
template <class W> Mutant wrapper_mutant(const char* bug) { return Mutant{std::make_unique<W>(), bug}; }

std::vector<Mutant> make_all() {
  std::vector<Mutant> v;
  v.push_back(policy_mutant<EpsOutsideSqrt>("eps added outside the square root"));
  v.push_back(policy_mutant<Unbiased>("unbiased (m - 1) variance"));
  v.push_back(wrapper_mutant<NhwcGroupMapping>("channel -> group mapping wrong in channels-last"));
  v.push_back(policy_mutant<OnepassNoClamp>("one-pass variance without the clamp at 0"));
  v.push_back(wrapper_mutant<StorageMeanImpl>("mean accumulated in the storage dtype (f16/bf16)"));
  v.push_back(policy_mutant<SkipLastChunk>("last partial chunk skipped"));
  v.push_back(wrapper_mutant<DgammaNoXhat>("dgamma missing the xhat factor"));
  v.push_back(wrapper_mutant<WrongGroupRstd>("rstd of the wrong group used in backward"));
  v.push_back(policy_mutant<BwdUncentered>("backward from uncentered sums (sum dy*x - mean*sum dy)"));
  v.push_back(wrapper_mutant<BatchPooled>("statistics pooled over the batch"));
  v.push_back(wrapper_mutant<NanEverywhere>("one NaN/Inf poisons every group and sample"));
  v.push_back(wrapper_mutant<AffineByGroup>("gamma/beta indexed by group instead of channel"));
  v.push_back(policy_mutant<Nondeterministic>("chunking changes between calls (claims determinism)"));
  v.push_back(wrapper_mutant<SiluOnXhat>("SiLU applied to xhat instead of gamma xhat + beta"));
  v.push_back(wrapper_mutant<SigmoidInF16>("the SiLU's sigmoid evaluated in f16"));
  v.push_back(wrapper_mutant<PerSampleByChannel>("per-sample scale indexed by channel only"));
  return v;
}

}  // namespace

const std::vector<Mutant>& all() {
  static const std::vector<Mutant> v = make_all();
  return v;
}

}  // namespace gnv::mutants
