// The seventeen properties. Tolerances are never invented here: a kernel output is judged against
// the oracle with the documented metric (check_case), and a relation between two kernel outputs
// whose exact values are equal (or related exactly) allows the sum of what the metric allows each
// side: |got - want| <= allowed_want + allowed_got, allowed = budget * (u_acc S_i + ulp/2 + L eta).
// Relations an implementation promises bit for bit (harness.h, Claims) are checked bit for bit.
#include "properties.h"

#include <array>
#include <cmath>
#include <fmt/format.h>
#include <limits>
#include <random>
#include <stdexcept>
#include <thread>

#include "gnv/metrics.h"

namespace gnv::prop {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

Case draw_case(const Ctx& ctx, const CaseOptions& o) { return (*gen_case(ctx.dtype, ctx.layout, o)).materialize(); }

bool bitwise_batch(const Claims& c) { return c.group_independent; }
bool bitwise_pow2(const Claims& c) { return c.exact_pow2; }
bool bitwise_determinism(const Claims& c) { return c.deterministic; }

// Flat indices of whole blocks: block b of the result is block which[b] of the source.
std::vector<int64_t> blocks(int64_t block, const std::vector<int64_t>& which) {
  std::vector<int64_t> idx;
  idx.reserve(which.size() * static_cast<size_t>(block));
  for (int64_t w : which)
    for (int64_t i = 0; i < block; ++i) idx.push_back(w * block + i);
  return idx;
}

// A case holding the samples `which` of c, in that order. A sample is a contiguous block of x in
// both layouts (N is the outermost dimension of (N,C,*S) and (N,*S,C)).
Case select_samples(const Case& c, const std::vector<int64_t>& which) {
  Case s = c;
  s.problem.N = static_cast<int64_t>(which.size());
  const std::vector<int64_t> idx = blocks(c.problem.C * c.problem.S(), which);
  s.x = gather(c.x, idx, s.problem.x_shape());
  if (c.dy) s.dy = gather(*c.dy, idx, s.problem.x_shape());
  if (c.problem.per_sample()) {  // the samples' own rows of gamma and beta
    const std::vector<int64_t> rows = blocks(c.problem.C, which);
    s.gamma = gather(c.gamma, rows, s.problem.param_shape());
    s.beta = gather(c.beta, rows, s.problem.param_shape());
  }
  return s;
}

// For a channel relabelling new_c = cmap[c]: the case with channel c's values (x, dy, gamma,
// beta) moved to channel cmap[c], and the index map from the new case's elements to the old.
struct Relabelled {
  Case c;
  std::vector<int64_t> x_src;   // physical index in the new case -> physical index in the old
  std::vector<int64_t> ch_src;  // new channel -> old channel
};
Relabelled relabel_channels(const Case& c, const std::vector<int64_t>& cmap) {
  const Problem& p = c.problem;
  Relabelled r{c, std::vector<int64_t>(static_cast<size_t>(p.numel())), std::vector<int64_t>(static_cast<size_t>(p.C))};
  for (int64_t ch = 0; ch < p.C; ++ch) r.ch_src[static_cast<size_t>(cmap[static_cast<size_t>(ch)])] = ch;
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t ch = 0; ch < p.C; ++ch)
      for (int64_t s = 0; s < p.S(); ++s)
        r.x_src[static_cast<size_t>(p.index(n, cmap[static_cast<size_t>(ch)], s))] = p.index(n, ch, s);
  r.c.x = gather(c.x, r.x_src, p.x_shape());
  if (c.dy) r.c.dy = gather(*c.dy, r.x_src, p.x_shape());
  if (p.affine) {
    r.c.gamma = gather(c.gamma, r.ch_src, p.param_shape());
    r.c.beta = gather(c.beta, r.ch_src, p.param_shape());
  }
  return r;
}

Case with_layout(const Case& c, Layout l) {
  Case o = c;
  o.problem.layout = l;
  o.x = relayout(c.x, c.problem, o.problem);
  if (c.dy) o.dy = relayout(*c.dy, c.problem, o.problem);
  return o;
}

CompareOptions tol_of(const ExactOutput& e) {
  CompareOptions c;
  c.e_want = &e;
  return c;
}
CompareOptions as(Match mode, const ExactOutput& e) {
  CompareOptions c;
  c.mode = mode;
  c.e_want = &e;
  return c;
}

double ld_ulp(double v) { return std::ldexp(std::fabs(v), -60); }

// ---- 1. Forward agrees with the oracle within the documented budget ---------------------------

void forward_matches_oracle(Ctx& ctx) {
  CaseOptions o = ctx.options();
  ctx.allow_fused(o);
  o.values.specials = true;
  const Case c = draw_case(ctx, o);
  ctx.note("case", c);
  ctx.precondition(c);
  ctx.require_pass(check_case(ctx.impl, c, false), c.problem);
}

// ---- 2. Backward agrees with the oracle within its budget -------------------------------------

void backward_matches_oracle(Ctx& ctx) {
  CaseOptions o = ctx.options();
  ctx.allow_fused(o);
  o.values.specials = true;
  o.dy = true;
  const Case c = draw_case(ctx, o);
  ctx.note("case", c);
  ctx.precondition(c);
  ctx.require_pass(check_case(ctx.impl, c, true), c.problem);
}

// ---- 3. Batch independence ---------------------------------------------------------------------

void batch_independence(Ctx& ctx) {
  CaseOptions o = ctx.options();
  ctx.allow_fused(o);  // per-sample parameters travel with their sample
  o.shape.min_N = 2;
  o.dy = ctx.caps.backward;
  const Case c = draw_case(ctx, o);
  ctx.note("batch", c);
  ctx.precondition(c);
  const Problem& p = c.problem;
  const int64_t N = p.N, CS = p.C * p.S(), G = p.G;
  const bool bit = ctx.claims.group_independent;
  const Match mode = Ctx::bitwise_if(bit);
  std::optional<OracleResult> ef, eb;
  if (!bit) {
    ef = oracle_forward(c);
    if (c.has_backward()) eb = oracle_backward(c);
  }
  const ForwardResult full = ctx.forward(c);
  const Tensor& mean_in = bit ? full.mean : ef->get("mean").rounded;
  const Tensor& rstd_in = bit ? full.rstd : ef->get("rstd").rounded;
  std::optional<BackwardResult> full_b;
  if (c.has_backward()) full_b = ctx.backward(c, mean_in, rstd_in);

  auto subset = [&](const std::string& what, const std::vector<int64_t>& which) {
    const Case cs = select_samples(c, which);
    ctx.note(what, cs);
    const Problem& ps = cs.problem;
    const std::vector<int64_t> ix = blocks(CS, which), is = blocks(G, which);
    const ForwardResult r = ctx.forward(cs);
    auto opts = [&](const std::string& out, const std::vector<int64_t>& idx, const std::vector<int64_t>& shape,
                    std::optional<ExactOutput>& keep) {
      CompareOptions co;
      co.mode = mode;
      if (!bit) {
        keep = gather(out == "dx" ? eb->get(out) : ef->get(out), idx, shape);
        co.e_want = &*keep;
      }
      return co;
    };
    std::optional<ExactOutput> ky, km, kr, kd;
    ctx.compare(what, ps, "y", gather(full.y, ix, ps.x_shape()), r.y, opts("y", ix, ps.x_shape(), ky));
    ctx.compare(what, ps, "mean", gather(full.mean, is, ps.stats_shape()), r.mean,
                opts("mean", is, ps.stats_shape(), km));
    ctx.compare(what, ps, "rstd", gather(full.rstd, is, ps.stats_shape()), r.rstd,
                opts("rstd", is, ps.stats_shape(), kr));
    if (full_b) {
      const BackwardResult rb =
          ctx.backward(cs, gather(mean_in, is, ps.stats_shape()), gather(rstd_in, is, ps.stats_shape()));
      ctx.compare(what, ps, "dx", gather(full_b->dx, ix, ps.x_shape()), rb.dx, opts("dx", ix, ps.x_shape(), kd));
    }
  };
  subset("sample alone", {*uniform_int(0, N - 1)});
  const std::vector<int64_t> perm = *gen_permutation(N);  // sample n goes to perm[n]
  std::vector<int64_t> which(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) which[static_cast<size_t>(perm[static_cast<size_t>(n)])] = n;
  subset("permuted batch", which);

  // A NaN or Inf in sample j: every other sample's outputs are untouched.
  const int64_t j = *uniform_int(0, N - 1), e = *uniform_int(0, CS - 1);
  const double bad = std::vector<double>{kNaN, kInf, -kInf}[static_cast<size_t>(*uniform_int(0, 2))];
  Case cn = c;
  cn.x.set(j * CS + e, bad);
  ctx.note("non-finite in one sample", cn);
  const ForwardResult rn = ctx.forward(cn);
  CompareOptions co;
  co.mode = mode;
  co.skip.assign(static_cast<size_t>(p.numel()), 0);
  for (int64_t i = 0; i < CS; ++i) co.skip[static_cast<size_t>(j * CS + i)] = 1;
  if (!bit) co.e_want = &ef->get("y");
  ctx.compare("non-finite in another sample", p, "y", full.y, rn.y, co);
  CompareOptions cs = co;
  cs.skip.assign(static_cast<size_t>(N * G), 0);
  for (int64_t g = 0; g < G; ++g) cs.skip[static_cast<size_t>(j * G + g)] = 1;
  if (!bit) cs.e_want = &ef->get("mean");
  ctx.compare("non-finite in another sample", p, "mean", full.mean, rn.mean, cs);
  if (!bit) cs.e_want = &ef->get("rstd");
  ctx.compare("non-finite in another sample", p, "rstd", full.rstd, rn.rstd, cs);
  if (full_b) {
    const BackwardResult rb = ctx.backward(cn, bit ? rn.mean : mean_in, bit ? rn.rstd : rstd_in);
    if (!bit) co.e_want = &eb->get("dx");
    ctx.compare("non-finite in another sample", p, "dx", full_b->dx, rb.dx, co);
  }
}

// ---- 4. G = 1 is LayerNorm over (C, *S) --------------------------------------------------------

// Compares y with an independent f64 reference (correctly rounded to f64), laid out channels-first
// (element (n, c, s) at (n*C + c)*S + s, the order both references use): the reference's own
// rounding (<= ulp_f64/2) is added to what the metric allows the kernel.
void compare_with_reference(const Ctx& ctx, const std::string& what, const Case& c, const Tensor& y,
                            const ExactOutput& ey, const Tensor& ref) {
  const Problem& p = c.problem;
  const int64_t S = p.S();
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t ch = 0; ch < p.C; ++ch)
      for (int64_t s = 0; s < S; ++s) {
        const int64_t i = p.index(n, ch, s);
        if (not_judged(ey, i)) continue;
        const double a = y.get(i), r = ref.get((n * p.C + ch) * S + s);
        const double tol = allowed_error(ey, i) + ulp_at(DType::f64, r);
        if (!(std::fabs(a - r) <= tol) && !(a == r))
          ctx.fail(fmt::format("{}: y at {}: reference {:.17g}, got {:.17g}, |diff| {:.4g} > tolerance {:.4g} "
                               "(kappa {:.4g})",
                               what, describe_index(p, "y", i), r, a, std::fabs(a - r), tol, ey.kappa[i]));
      }
}

void g1_is_layer_norm(Ctx& ctx) {
  CaseOptions o = ctx.options();
  o.shape.force_G1 = true;
  o.eps_positive = true;
  const Case c = draw_case(ctx, o);
  ctx.note("case", c);
  ctx.precondition(c);
  const Problem& p = c.problem;
  const int64_t L = p.C * p.S(), S = p.S();
  Tensor x2(DType::f64, {p.N, L}), g2(DType::f64, {L}), b2(DType::f64, {L});
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t ch = 0; ch < p.C; ++ch)
      for (int64_t s = 0; s < S; ++s) x2.set(n * L + ch * S + s, c.x.get(p.index(n, ch, s)));
  if (p.affine)
    for (int64_t ch = 0; ch < p.C; ++ch)
      for (int64_t s = 0; s < S; ++s) {
        g2.set(ch * S + s, c.gamma.get(ch));
        b2.set(ch * S + s, c.beta.get(ch));
      }
  const Tensor ref = layer_norm_reference(x2, p.affine ? &g2 : nullptr, p.affine ? &b2 : nullptr, p.eps);
  const OracleResult ef = oracle_forward(c);
  compare_with_reference(ctx, "G = 1 vs LayerNorm", c, ctx.forward(c).y, ef.get("y"), ref);
}

// ---- 5. G = C is InstanceNorm ------------------------------------------------------------------

void gc_is_instance_norm(Ctx& ctx) {
  CaseOptions o = ctx.options();
  o.shape.force_GC = true;
  o.eps_positive = true;
  const Case c = draw_case(ctx, o);
  ctx.note("case", c);
  ctx.precondition(c);
  const Problem& p = c.problem;
  const int64_t S = p.S();
  Tensor x3(DType::f64, {p.N, p.C, S}), g(DType::f64, {p.C}), b(DType::f64, {p.C});
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t ch = 0; ch < p.C; ++ch)
      for (int64_t s = 0; s < S; ++s) x3.set((n * p.C + ch) * S + s, c.x.get(p.index(n, ch, s)));
  if (p.affine)
    for (int64_t ch = 0; ch < p.C; ++ch) {
      g.set(ch, c.gamma.get(ch));
      b.set(ch, c.beta.get(ch));
    }
  const Tensor ref = instance_norm_reference(x3, p.affine ? &g : nullptr, p.affine ? &b : nullptr, p.eps);
  const OracleResult ef = oracle_forward(c);
  compare_with_reference(ctx, "G = C vs InstanceNorm", c, ctx.forward(c).y, ef.get("y"), ref);
}

// ---- 6. Shift invariance -----------------------------------------------------------------------

void shift_invariance(Ctx& ctx) {
  CaseOptions o = ctx.options();
  o.values.quantized = true;
  o.dy = ctx.caps.backward;
  const CaseSpec spec = *gen_case(ctx.dtype, ctx.layout, o);
  const Case c = spec.materialize();
  ctx.note("original", c);
  const Problem& p = c.problem;
  // x holds integers |j| <= J times 2^q; adding K * 2^q with |K| <= 2^p - J - 1 is exact.
  const int prec = std::min(info(p.dtype).precision, 53);
  const int64_t J = int64_t{1} << (std::min(info(p.dtype).precision, 13) - 3);
  const int64_t kmax = (int64_t{1} << prec) - J - 1;
  int ebits = 0;
  while ((int64_t{2} << ebits) <= kmax) ++ebits;
  if (ctx.conditioned) ebits = 2;  // the control's domain: no cancellation
  auto shift = rc::gen::mapcat(uniform_int(0, ebits), [](int64_t e) { return uniform_int(0, int64_t{1} << e); });
  auto signed_shift = rc::gen::map(rc::gen::pair(shift, weighted_index({1, 1})),
                                   [](const std::pair<int64_t, int>& s) { return s.second ? -s.first : s.first; });
  const std::vector<int64_t> K =
      *rc::gen::container<std::vector<int64_t>>(static_cast<size_t>(p.N * p.G), signed_shift);
  const double unit = std::ldexp(1.0, spec.q);
  Case c2 = c;
  std::vector<double> add(static_cast<size_t>(p.N * p.G));
  const int64_t cpg = p.channels_per_group();
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t g = 0; g < p.G; ++g) {
      const double d = static_cast<double>(K[static_cast<size_t>(n * p.G + g)]) * unit;
      add[static_cast<size_t>(n * p.G + g)] = d;
      for (int64_t ch = g * cpg; ch < (g + 1) * cpg; ++ch)
        for (int64_t s = 0; s < p.S(); ++s) c2.x.set(p.index(n, ch, s), c.x.get(p.index(n, ch, s)) + d);
    }
  ctx.note("shifted", c2);
  ctx.precondition(c);
  ctx.precondition(c2);
  const OracleResult ea = oracle_forward(c), eb = oracle_forward(c2);
  const ForwardResult fa = ctx.forward(c), fb = ctx.forward(c2);
  auto opts = [](const OracleResult& a, const OracleResult& b, const std::string& out) {
    CompareOptions co;
    co.e_want = &a.get(out);
    co.e_got = &b.get(out);
    return co;
  };
  ctx.compare("shift", p, "y", fa.y, fb.y, opts(ea, eb, "y"));
  ctx.compare("shift", p, "rstd", fa.rstd, fb.rstd, opts(ea, eb, "rstd"));
  CompareOptions cm = opts(ea, eb, "mean");
  cm.add = &add;
  ctx.compare("shift", p, "mean", fa.mean, fb.mean, cm);
  if (!c.has_backward()) return;
  const OracleResult ba = oracle_backward(c), bb = oracle_backward(c2);
  const BackwardResult ra = ctx.backward(c, ea.get("mean").rounded, ea.get("rstd").rounded);
  const BackwardResult rb = ctx.backward(c2, eb.get("mean").rounded, eb.get("rstd").rounded);
  ctx.compare("shift", p, "dx", ra.dx, rb.dx, opts(ba, bb, "dx"));
  if (p.affine) {
    ctx.compare("shift", p, "dgamma", ra.dgamma, rb.dgamma, opts(ba, bb, "dgamma"));
    ctx.compare("shift", p, "dbeta", ra.dbeta, rb.dbeta, opts(ba, bb, "dbeta"));
  }
}

// ---- 7. Scale invariance -----------------------------------------------------------------------

void scale_invariance(Ctx& ctx) {
  CaseOptions o = ctx.options();
  o.values.quantized = true;
  o.dy = ctx.caps.backward;
  const CaseSpec spec = *gen_case(ctx.dtype, ctx.layout, o);
  const Case c = spec.materialize();
  ctx.note("original", c);
  ctx.precondition(c);
  const Problem& p = c.problem;
  // The window of 2^(q+k) in which data and every intermediate stay normal in acc_t (squares of
  // deviations included) and representable in the storage dtype.
  int lo = -40, hi = 40;
  if (p.dtype == DType::f64) lo = -300, hi = 300;
  if (p.dtype == DType::f16) lo = -24, hi = 5;
  int kmin = lo - spec.q, kmax = hi - spec.q;
  if (p.eps > 0) {
    // eps * 4^k stays normal in acc_t, so its rounding to acc_t commutes with the scaling.
    const DTypeInfo& acc = info(acc_dtype(p.dtype));
    while (kmin < 0 && p.eps * std::ldexp(1.0, 2 * kmin) < acc.min_normal * 4) ++kmin;
    while (kmax > 0 && p.eps * std::ldexp(1.0, 2 * kmax) > acc.max_finite / 4) --kmax;
  }
  const int64_t kmag = *uniform_int(0, std::max(-kmin, kmax));
  const bool kneg = *weighted_index({1, 1}) == 1;
  int k = static_cast<int>(kneg ? -kmag : kmag);
  k = std::clamp(k, kmin, kmax);
  const double s = *weighted_index({1, 1}) == 1 ? -1.0 : 1.0;
  const double f = s * std::ldexp(1.0, k);

  Case c2 = c;
  c2.problem.eps = std::ldexp(p.eps, 2 * k);
  for (int64_t i = 0; i < p.numel(); ++i) c2.x.set(i, f * c.x.get(i));
  if (p.affine)
    for (int64_t ch = 0; ch < p.C; ++ch) c2.gamma.set(ch, s * c.gamma.get(ch));
  ctx.note(fmt::format("scaled by {:g}, eps by 4^{}", f, k), c2);

  const Match mode = Ctx::bitwise_if(ctx.claims.exact_pow2, Match::same_value);
  std::optional<OracleResult> ea, eb;
  if (mode == Match::tolerance) {
    ea = oracle_forward(c);
    eb = oracle_forward(c2);
  }
  auto opts = [&](const std::string& out, double factor, const std::optional<OracleResult>& xa,
                  const std::optional<OracleResult>& xb) {
    CompareOptions co;
    co.mode = mode;
    co.factor = factor;
    co.skip_outside_normal = true;
    if (xa) {
      co.e_want = &xa->get(out);
      co.e_got = &xb->get(out);
    }
    return co;
  };
  const std::string what = fmt::format("x * {:g}, eps * 4^{}{}", f, k, p.affine && s < 0 ? ", gamma * -1" : "");
  const ForwardResult fa = ctx.forward(c), fb = ctx.forward(c2);
  // y(s 2^k x; s gamma) = y(x; gamma); without affine y(s 2^k x) = s y(x).
  ctx.compare(what, p, "y", fa.y, fb.y, opts("y", p.affine ? 1.0 : s, ea, eb));
  ctx.compare(what, p, "mean", fa.mean, fb.mean, opts("mean", f, ea, eb));
  ctx.compare(what, p, "rstd", fa.rstd, fb.rstd, opts("rstd", std::ldexp(1.0, -k), ea, eb));
  if (!c.has_backward()) return;
  std::optional<OracleResult> ba, bb;
  if (mode == Match::tolerance) {
    ba = oracle_backward(c);
    bb = oracle_backward(c2);
  }
  // In the bitwise mode each side gets its own forward's statistics (they were just shown to be
  // exactly scaled); otherwise the oracle's.
  const BackwardResult ra = ctx.backward(c, ea ? ea->get("mean").rounded : fa.mean, ea ? ea->get("rstd").rounded : fa.rstd);
  const BackwardResult rb = ctx.backward(c2, eb ? eb->get("mean").rounded : fb.mean, eb ? eb->get("rstd").rounded : fb.rstd);
  // L = sum dy y is unchanged (affine) or multiplied by s; d/dx' = d/dx / (s 2^k).
  ctx.compare(what, p, "dx", ra.dx, rb.dx, opts("dx", (p.affine ? s : 1.0) * std::ldexp(1.0, -k), ba, bb));
  if (p.affine) {
    ctx.compare(what, p, "dgamma", ra.dgamma, rb.dgamma, opts("dgamma", s, ba, bb));
    ctx.compare(what, p, "dbeta", ra.dbeta, rb.dbeta, opts("dbeta", 1.0, ba, bb));
  }
}

// ---- 8. Layout equivalence ---------------------------------------------------------------------

void layout_equivalence(Ctx& ctx) {
  CaseOptions o = ctx.options();
  o.dy = ctx.caps.backward;
  const Case a = draw_case(ctx, o);
  const Layout other = ctx.layout == Layout::nchw ? Layout::nhwc : Layout::nchw;
  const Case b = with_layout(a, other);
  ctx.note(std::string(name(a.problem.layout)), a);
  ctx.note(std::string(name(other)), b);
  ctx.precondition(a);
  const Problem &pa = a.problem, &pb = b.problem;
  std::vector<int64_t> src(static_cast<size_t>(pa.numel()));  // b's physical index -> a's
  for (int64_t n = 0; n < pa.N; ++n)
    for (int64_t ch = 0; ch < pa.C; ++ch)
      for (int64_t s = 0; s < pa.S(); ++s) src[static_cast<size_t>(pb.index(n, ch, s))] = pa.index(n, ch, s);
  const OracleResult ef = oracle_forward(a);
  const ForwardResult fa = ctx.forward(a), fb = ctx.forward(b);
  const ExactOutput ey = gather(ef.get("y"), src, pb.x_shape());
  const std::string what = fmt::format("{} vs {}", name(pa.layout), name(pb.layout));
  ctx.compare(what, pb, "y", gather(fa.y, src, pb.x_shape()), fb.y, tol_of(ey));
  ctx.compare(what, pb, "mean", fa.mean, fb.mean, tol_of(ef.get("mean")));
  ctx.compare(what, pb, "rstd", fa.rstd, fb.rstd, tol_of(ef.get("rstd")));
  if (!a.has_backward()) return;
  const OracleResult eb = oracle_backward(a);
  const BackwardResult ra = ctx.backward(a, ef.get("mean").rounded, ef.get("rstd").rounded);
  const BackwardResult rb = ctx.backward(b, ef.get("mean").rounded, ef.get("rstd").rounded);
  const ExactOutput edx = gather(eb.get("dx"), src, pb.x_shape());
  ctx.compare(what, pb, "dx", gather(ra.dx, src, pb.x_shape()), rb.dx, tol_of(edx));
  if (pa.affine) {
    ctx.compare(what, pb, "dgamma", ra.dgamma, rb.dgamma, tol_of(eb.get("dgamma")));
    ctx.compare(what, pb, "dbeta", ra.dbeta, rb.dbeta, tol_of(eb.get("dbeta")));
  }
}

// ---- 9. Channel and group permutations ---------------------------------------------------------

void permutation_equivariance(Ctx& ctx) {
  CaseOptions o = ctx.options();
  o.dy = ctx.caps.backward;
  const Case c = draw_case(ctx, o);
  ctx.note("original", c);
  ctx.precondition(c);
  const Problem& p = c.problem;
  const int64_t G = p.G, cpg = p.channels_per_group();
  const OracleResult ef = oracle_forward(c);
  std::optional<OracleResult> eb;
  if (c.has_backward()) eb = oracle_backward(c);
  const ForwardResult fa = ctx.forward(c);
  std::optional<BackwardResult> ba;
  if (c.has_backward()) ba = ctx.backward(c, ef.get("mean").rounded, ef.get("rstd").rounded);

  // (a) Channels permuted inside each group: outputs permuted alike, statistics unchanged; the
  // reduction order changes, so this is a tolerance relation.
  const auto within = *rc::gen::container<std::vector<std::vector<int64_t>>>(static_cast<size_t>(G), gen_permutation(cpg));
  std::vector<int64_t> cmap(static_cast<size_t>(p.C));
  for (int64_t g = 0; g < G; ++g)
    for (int64_t j = 0; j < cpg; ++j)
      cmap[static_cast<size_t>(g * cpg + j)] = g * cpg + within[static_cast<size_t>(g)][static_cast<size_t>(j)];
  {
    const Relabelled r = relabel_channels(c, cmap);
    ctx.note("channels permuted within groups", r.c);
    const ForwardResult fr = ctx.forward(r.c);
    const ExactOutput ey = gather(ef.get("y"), r.x_src, p.x_shape());
    const std::string what = "channels permuted within groups";
    ctx.compare(what, p, "y", gather(fa.y, r.x_src, p.x_shape()), fr.y, tol_of(ey));
    ctx.compare(what, p, "mean", fa.mean, fr.mean, tol_of(ef.get("mean")));
    ctx.compare(what, p, "rstd", fa.rstd, fr.rstd, tol_of(ef.get("rstd")));
    if (ba) {
      const BackwardResult br = ctx.backward(r.c, ef.get("mean").rounded, ef.get("rstd").rounded);
      const ExactOutput edx = gather(eb->get("dx"), r.x_src, p.x_shape());
      ctx.compare(what, p, "dx", gather(ba->dx, r.x_src, p.x_shape()), br.dx, tol_of(edx));
      if (p.affine) {
        const ExactOutput eg = gather(eb->get("dgamma"), r.ch_src, p.param_shape());
        const ExactOutput ebt = gather(eb->get("dbeta"), r.ch_src, p.param_shape());
        ctx.compare(what, p, "dgamma", gather(ba->dgamma, r.ch_src, p.param_shape()), br.dgamma, tol_of(eg));
        ctx.compare(what, p, "dbeta", gather(ba->dbeta, r.ch_src, p.param_shape()), br.dbeta, tol_of(ebt));
      }
    }
  }

  // (b) Whole groups permuted: outputs and statistics permuted; each group's values and their
  // order are unchanged, so this is bitwise where the implementation computes groups
  // independently.
  const std::vector<int64_t> gperm = *gen_permutation(G);
  for (int64_t g = 0; g < G; ++g)
    for (int64_t j = 0; j < cpg; ++j) cmap[static_cast<size_t>(g * cpg + j)] = gperm[static_cast<size_t>(g)] * cpg + j;
  const Relabelled r = relabel_channels(c, cmap);
  ctx.note("groups permuted", r.c);
  std::vector<int64_t> stats_src(static_cast<size_t>(p.N * G));
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t g = 0; g < G; ++g) stats_src[static_cast<size_t>(n * G + gperm[static_cast<size_t>(g)])] = n * G + g;
  const bool bit = ctx.claims.group_independent;
  const Match mode = Ctx::bitwise_if(bit);
  const ForwardResult fr = ctx.forward(r.c);
  const ExactOutput ey = gather(ef.get("y"), r.x_src, p.x_shape());
  const ExactOutput em = gather(ef.get("mean"), stats_src, p.stats_shape());
  const ExactOutput es = gather(ef.get("rstd"), stats_src, p.stats_shape());
  const std::string what = "groups permuted";
  ctx.compare(what, p, "y", gather(fa.y, r.x_src, p.x_shape()), fr.y, as(mode, ey));
  ctx.compare(what, p, "mean", gather(fa.mean, stats_src, p.stats_shape()), fr.mean, as(mode, em));
  ctx.compare(what, p, "rstd", gather(fa.rstd, stats_src, p.stats_shape()), fr.rstd, as(mode, es));
  if (ba) {
    const BackwardResult br = ctx.backward(r.c, gather(ef.get("mean").rounded, stats_src, p.stats_shape()),
                                           gather(ef.get("rstd").rounded, stats_src, p.stats_shape()));
    const ExactOutput edx = gather(eb->get("dx"), r.x_src, p.x_shape());
    ctx.compare(what, p, "dx", gather(ba->dx, r.x_src, p.x_shape()), br.dx, as(mode, edx));
    if (p.affine) {
      const ExactOutput eg = gather(eb->get("dgamma"), r.ch_src, p.param_shape());
      const ExactOutput ebt = gather(eb->get("dbeta"), r.ch_src, p.param_shape());
      ctx.compare(what, p, "dgamma", gather(ba->dgamma, r.ch_src, p.param_shape()), br.dgamma,
                  as(mode, eg));
      ctx.compare(what, p, "dbeta", gather(ba->dbeta, r.ch_src, p.param_shape()), br.dbeta,
                  as(mode, ebt));
    }
  }
}

// ---- 10. Output moments ------------------------------------------------------------------------

void output_moments(Ctx& ctx) {
  CaseOptions o = ctx.options();
  o.affine = false;
  const Case c = draw_case(ctx, o);
  ctx.note("case", c);
  ctx.precondition(c);
  const Problem& p = c.problem;
  const OracleResult ef = oracle_forward(c);
  const ExactOutput &ey = ef.get("y"), &er = ef.get("rstd");
  const Tensor y = ctx.forward(c).y;
  const int64_t cpg = p.channels_per_group(), S = p.S(), m = p.group_size();
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t g = 0; g < p.G; ++g) {
      const int64_t gi = n * p.G + g;
      if (not_judged(er, gi) || !std::isfinite(er.hi[static_cast<size_t>(gi)])) continue;
      // y_i = y*_i + d_i, |d_i| <= e_i (the metric's allowance). sum y* = 0 and mean(y*^2) =
      // var/(var + eps) =: V exactly, so |mean(y)| <= sum(e)/m and
      // |var(y) - V| <= 2 sum(|y*| e)/m + sum(e^2)/m + (sum(e)/m)^2.
      long double sy = 0, se = 0, sye = 0, see = 0, sabs = 0;
      bool judged = true;
      for (int64_t ch = g * cpg; ch < (g + 1) * cpg && judged; ++ch)
        for (int64_t s = 0; s < S; ++s) {
          const int64_t i = p.index(n, ch, s);
          if (not_judged(ey, i)) {
            judged = false;
            break;
          }
          const long double e = allowed_error(ey, i), ys = static_cast<long double>(ey.hi[i]) + ey.lo[i];
          sy += y.get(i);
          sabs += std::fabs(y.get(i));
          se += e;
          sye += std::fabs(ys) * e;
          see += e * e;
        }
      if (!judged) continue;
      const long double mean_y = sy / m;
      long double q = 0;
      for (int64_t ch = g * cpg; ch < (g + 1) * cpg; ++ch)
        for (int64_t s = 0; s < S; ++s) {
          const long double d = y.get(p.index(n, ch, s)) - mean_y;
          q += d * d;
        }
      const long double var_y = q / m;
      const long double r = static_cast<long double>(er.hi[static_cast<size_t>(gi)]) + er.lo[static_cast<size_t>(gi)];
      // 1 - eps/(var + eps): absolute error ~2^-64 in long double, below the absolute slack.
      const long double V = std::max(0.0L, 1.0L - static_cast<long double>(p.eps) * r * r);
      const long double mean_tol = se / m + std::ldexp(static_cast<double>(sabs / m), -58);
      const long double var_tol = 2 * sye / m + see / m + (se / m) * (se / m) +
                                  std::ldexp(static_cast<double>(1 + var_y + mean_y * mean_y), -58);
      if (!(std::fabs(mean_y) <= mean_tol))
        ctx.fail(fmt::format("group n={} g={}: mean of y = {:.6g}, expected 0 within {:.4g}", n, g,
                             static_cast<double>(mean_y), static_cast<double>(mean_tol)));
      if (!(std::fabs(var_y - V) <= var_tol))
        ctx.fail(fmt::format("group n={} g={}: variance of y = {:.17g}, expected var/(var+eps) = {:.17g} within "
                             "{:.4g} (|diff| {:.4g})",
                             n, g, static_cast<double>(var_y), static_cast<double>(V), static_cast<double>(var_tol),
                             static_cast<double>(std::fabs(var_y - V))));
    }
}

// ---- 11. Affine composition --------------------------------------------------------------------

void affine_composition(Ctx& ctx) {
  CaseOptions o = ctx.options();
  o.affine = true;
  const Case c = draw_case(ctx, o);
  const Problem& p = c.problem;
  Case plain = c, unit = c;
  plain.problem.affine = false;
  plain.gamma = Tensor();
  plain.beta = Tensor();
  for (int64_t ch = 0; ch < p.C; ++ch) {
    unit.gamma.set(ch, 1.0);
    unit.beta.set(ch, 0.0);
  }
  ctx.note("affine", c);
  ctx.note("plain", plain);
  ctx.note("gamma 1 beta 0", unit);
  ctx.precondition(c);
  const OracleResult ea = oracle_forward(c), ep = oracle_forward(plain);
  const ForwardResult fa = ctx.forward(c), fp = ctx.forward(plain), fu = ctx.forward(unit);
  // gamma = 1, beta = 0 is the non-affine output; the statistics never depend on gamma, beta.
  const Match mode = Ctx::bitwise_if(ctx.claims.exact_pow2);
  ctx.compare("gamma = 1, beta = 0 vs no affine", p, "y", fp.y, fu.y, as(mode, ep.get("y")));
  ctx.compare("affine vs no affine", p, "mean", fp.mean, fa.mean, as(mode, ep.get("mean")));
  ctx.compare("affine vs no affine", p, "rstd", fp.rstd, fa.rstd, as(mode, ep.get("rstd")));
  // y = gamma * xhat + beta, with xhat the kernel's own non-affine output.
  const ExactOutput &eya = ea.get("y"), &eyp = ep.get("y");
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t ch = 0; ch < p.C; ++ch)
      for (int64_t s = 0; s < p.S(); ++s) {
        const int64_t i = p.index(n, ch, s);
        if (not_judged(eya, i) || not_judged(eyp, i)) continue;
        const long double gm = c.gamma.get(ch), bt = c.beta.get(ch);
        const long double want = gm * fp.y.get(i) + bt;
        const double got = fa.y.get(i);
        const double tol = allowed_error(eya, i) + static_cast<double>(std::fabs(gm)) * allowed_error(eyp, i) +
                           ld_ulp(static_cast<double>(std::fabs(want)) + static_cast<double>(std::fabs(bt)));
        if (!(std::fabs(got - want) <= tol))
          ctx.fail(fmt::format("y at {}: gamma * xhat + beta = {:.17g} * {:.17g} + {:.17g} = {:.17g}, got {:.17g}, "
                               "|diff| {:.4g} > tolerance {:.4g}",
                               describe_index(p, "y", i), static_cast<double>(gm), fp.y.get(i),
                               static_cast<double>(bt), static_cast<double>(want), got,
                               static_cast<double>(std::fabs(got - want)), tol));
      }
}

// ---- 12. Gradient identities -------------------------------------------------------------------

void gradient_identities(Ctx& ctx) {
  CaseOptions o = ctx.options();
  o.dy = true;
  const Case c = draw_case(ctx, o);
  ctx.note("case", c);
  ctx.precondition(c);
  const Problem& p = c.problem;
  const OracleResult ef = oracle_forward(c), eb = oracle_backward(c);
  const ExactOutput &em = ef.get("mean"), &er = ef.get("rstd"), &edx = eb.get("dx");
  const BackwardResult b = ctx.backward(c, em.rounded, er.rounded);
  const int64_t cpg = p.channels_per_group(), S = p.S();
  // xhat from the exact statistics (double-double), in long double: its error (~2^-62 kappa) is
  // far below what the metric allows.
  auto xhat = [&](int64_t n, int64_t ch, int64_t s) {
    const size_t gi = static_cast<size_t>(n * p.G + ch / cpg);
    const long double mu = static_cast<long double>(em.hi[gi]) + em.lo[gi];
    const long double r = static_cast<long double>(er.hi[gi]) + er.lo[gi];
    return (c.x.get(p.index(n, ch, s)) - mu) * r;
  };
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t g = 0; g < p.G; ++g) {
      long double sum = 0, sum_abs = 0, tol = 0, sxh = 0, sxh_abs = 0, tol_xh = 0;
      bool judged = true;
      for (int64_t ch = g * cpg; ch < (g + 1) * cpg && judged; ++ch)
        for (int64_t s = 0; s < S; ++s) {
          const int64_t i = p.index(n, ch, s);
          if (not_judged(edx, i)) {
            judged = false;
            break;
          }
          const long double d = b.dx.get(i), xh = xhat(n, ch, s), e = allowed_error(edx, i);
          sum += d;
          sum_abs += std::fabs(d);
          tol += e;
          sxh += d * xh;
          sxh_abs += std::fabs(d * xh);
          tol_xh += e * std::fabs(xh);
        }
      if (!judged) continue;
      tol += std::ldexp(static_cast<double>(sum_abs), -58);
      if (!(std::fabs(sum) <= tol))
        ctx.fail(fmt::format("group n={} g={}: sum of dx = {:.6g}, expected 0 within {:.4g}", n, g,
                             static_cast<double>(sum), static_cast<double>(tol)));
      if (p.eps == 0) {
        tol_xh += std::ldexp(static_cast<double>(sxh_abs), -56);
        if (!(std::fabs(sxh) <= tol_xh))
          ctx.fail(fmt::format("group n={} g={}: eps = 0 but sum of dx * xhat = {:.6g}, expected 0 within {:.4g}", n,
                               g, static_cast<double>(sxh), static_cast<double>(tol_xh)));
      }
    }
  if (!p.affine) return;
  const ExactOutput &edg = eb.get("dgamma"), &edb = eb.get("dbeta");
  for (int64_t ch = 0; ch < p.C; ++ch) {
    long double sdy = 0, sdy_abs = 0, sdx = 0, sdx_abs = 0;
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t s = 0; s < S; ++s) {
        const long double d = c.dy->get(p.index(n, ch, s));
        sdy += d;
        sdy_abs += std::fabs(d);
        if (!not_judged(edg, ch)) {
          const long double t = d * xhat(n, ch, s);
          sdx += t;
          sdx_abs += std::fabs(t);
        }
      }
    if (!not_judged(edb, ch)) {
      const double tol = allowed_error(edb, ch) + ld_ulp(static_cast<double>(sdy_abs)) * 4;
      if (!(std::fabs(b.dbeta.get(ch) - sdy) <= tol))
        ctx.fail(fmt::format("dbeta[{}] = {:.17g}, but sum of dy = {:.17g} (tolerance {:.4g})", ch, b.dbeta.get(ch),
                             static_cast<double>(sdy), tol));
    }
    if (!not_judged(edg, ch)) {
      const double tol = allowed_error(edg, ch) + std::ldexp(edg.scale[static_cast<size_t>(ch)], -56) +
                         ld_ulp(static_cast<double>(sdx_abs)) * 4;
      if (!(std::fabs(b.dgamma.get(ch) - sdx) <= tol))
        ctx.fail(fmt::format("dgamma[{}] = {:.17g}, but sum of dy * xhat = {:.17g} (tolerance {:.4g})", ch,
                             b.dgamma.get(ch), static_cast<double>(sdx), tol));
    }
  }
}

// ---- 13. Finite differences --------------------------------------------------------------------

void finite_differences(Ctx& ctx) {
  CaseOptions o = ctx.options();
  ctx.allow_fused(o);  // through SiLU and per-sample parameters too
  o.shape.max_numel = 24;
  o.shape.max_N = 3;
  o.shape.allow_big = false;
  o.values.wide = false;
  o.dy = true;
  o.eps_positive = true;
  const Case c = draw_case(ctx, o);
  ctx.note("case", c);
  ctx.precondition(c);
  const Problem& p = c.problem;
  const OracleResult ef = oracle_forward(c), eb = oracle_backward(c);

  // (a) The oracle's backward against high-precision central differences of an independent forward.
  const FiniteDiff fd = finite_diff_backward(c);
  auto against_fd = [&](const std::string& out, const std::vector<double>& ref) {
    const ExactOutput& e = eb.get(out);
    double scale = 0;
    for (size_t i = 0; i < ref.size(); ++i) scale = std::max({scale, std::fabs(ref[i]), std::fabs(e.hi[i])});
    for (size_t i = 0; i < ref.size(); ++i) {
      const long double v = static_cast<long double>(e.hi[i]) + e.lo[i];
      const double tol = ulp_at(DType::f64, ref[i]) + std::ldexp(scale, -90);
      if (!(std::fabs(v - ref[i]) <= tol))
        ctx.fail(fmt::format("oracle {}[{}] = {:.17g}, finite differences {:.17g} (tolerance {:.4g})", out, i,
                             static_cast<double>(v), ref[i], tol));
    }
  };
  against_fd("dx", fd.dx);
  if (p.affine) {
    against_fd("dgamma", fd.dgamma);
    against_fd("dbeta", fd.dbeta);
  }

  // (b) gradcheck: the implementation's backward against central differences of its own
  // forward, in f64, along a random direction of (x, gamma, beta). Only the f64 instance runs
  // it: in a 16- or 32-bit storage type x + h v cannot be represented finely enough for a
  // meaningful difference quotient.
  if (p.dtype != DType::f64) return;
  const ForwardResult f0 = ctx.forward(c);
  const BackwardResult b0 = ctx.backward(c, f0.mean, f0.rstd);
  double s_min = kInf;
  for (int64_t i = 0; i < p.N * p.G; ++i) {
    const double r = f0.rstd.get(i);
    if (std::isfinite(r) && r > 0) s_min = std::min(s_min, 1 / r);
  }
  ctx.require(std::isfinite(s_min), "forward gave no finite rstd");
  const uint64_t seed = static_cast<uint64_t>(*uniform_int(0, 1 << 20));
  std::mt19937_64 rng(seed);
  auto dir = [&] { return draw(Domain::normal, DType::f64, rng()); };
  const int64_t params = p.per_sample() ? p.N * p.C : p.C;  // gamma, beta: (C) or (N, C)
  std::vector<double> vx(static_cast<size_t>(p.numel())), vg(static_cast<size_t>(params)), vb(static_cast<size_t>(params));
  for (double& v : vx) v = dir();
  for (int64_t q = 0; q < params; ++q) {
    vg[static_cast<size_t>(q)] = p.affine ? dir() : 0;
    vb[static_cast<size_t>(q)] = p.affine ? dir() : 0;
  }
  auto shifted = [&](double h) {
    Case s = c;
    for (int64_t i = 0; i < p.numel(); ++i) s.x.set(i, c.x.get(i) + h * vx[static_cast<size_t>(i)]);
    if (p.affine)
      for (int64_t q = 0; q < params; ++q) {
        s.gamma.set(q, c.gamma.get(q) + h * vg[static_cast<size_t>(q)]);
        s.beta.set(q, c.beta.get(q) + h * vb[static_cast<size_t>(q)]);
      }
    return s;
  };
  auto loss = [&](const Case& s) {
    const Tensor y = ctx.forward(s).y;
    long double l = 0;
    for (int64_t i = 0; i < p.numel(); ++i) l += static_cast<long double>(c.dy->get(i)) * y.get(i);
    return l;
  };
  // Difference of the loss and its linear prediction from the kernel's gradients, for the
  // perturbations actually applied (x + h v rounds).
  auto defect = [&](double h) {
    const Case sp = shifted(h), sm = shifted(-h);
    long double pred = 0;
    for (int64_t i = 0; i < p.numel(); ++i)
      pred += static_cast<long double>(b0.dx.get(i)) * (static_cast<long double>(sp.x.get(i)) - sm.x.get(i));
    if (p.affine)
      for (int64_t q = 0; q < params; ++q)
        pred += static_cast<long double>(b0.dgamma.get(q)) * (static_cast<long double>(sp.gamma.get(q)) - sm.gamma.get(q)) +
                static_cast<long double>(b0.dbeta.get(q)) * (static_cast<long double>(sp.beta.get(q)) - sm.beta.get(q));
    return std::pair{loss(sp) - loss(sm), pred};
  };
  const double h = std::ldexp(s_min, -20);
  const auto [d1, p1] = defect(h);
  const auto [d2, p2] = defect(2 * h);
  // Allowed: each forward's error (the metric's allowance, twice: two evaluations), the backward's
  // allowance along the perturbation, and the truncation error estimated from the two steps
  // (an h^3 term: (D(2h) - 2 D(h)) / 6, which a gradient error, being linear in h, cancels from).
  const ExactOutput &ey = ef.get("y"), &edx = eb.get("dx");
  long double t_fwd = 0, t_bwd = 0, l_abs = 0;
  for (int64_t i = 0; i < p.numel(); ++i) {
    if (not_judged(ey, i) || not_judged(edx, i)) return;  // outside the judged domain
    t_fwd += 2 * std::fabs(c.dy->get(i)) * allowed_error(ey, i) * 1.01L;
    t_bwd += allowed_error(edx, i) * 2 * h * std::fabs(vx[static_cast<size_t>(i)]) * 1.01L;
    l_abs += std::fabs(c.dy->get(i) * f0.y.get(i));
  }
  if (p.affine)
    for (int64_t q = 0; q < params; ++q) {
      t_bwd += (allowed_error(eb.get("dgamma"), q) * std::fabs(vg[static_cast<size_t>(q)]) +
                allowed_error(eb.get("dbeta"), q) * std::fabs(vb[static_cast<size_t>(q)])) * 2 * h * 1.01L;
    }
  const long double t_trunc = std::fabs((d2 - p2) - 2 * (d1 - p1)) / 6;
  const long double tol = t_fwd + t_bwd + 2 * t_trunc + std::ldexp(static_cast<double>(l_abs), -58);
  if (!(std::fabs(d1 - p1) <= tol))
    ctx.fail(fmt::format("gradcheck along a random direction (seed {}, h = {:.4g}): L(x+hv) - L(x-hv) = {:.17g}, "
                         "backward predicts {:.17g}, |diff| {:.4g} > tolerance {:.4g} (forward {:.3g}, backward "
                         "{:.3g}, truncation {:.3g})",
                         seed, h, static_cast<double>(d1), static_cast<double>(p1),
                         static_cast<double>(std::fabs(d1 - p1)), static_cast<double>(tol),
                         static_cast<double>(t_fwd), static_cast<double>(t_bwd), static_cast<double>(t_trunc)));
}

// ---- 14. Determinism ---------------------------------------------------------------------------

void determinism(Ctx& ctx) {
  CaseOptions o = ctx.options();
  o.values.specials = true;
  o.dy = ctx.caps.backward;
  const Case c = draw_case(ctx, o);
  ctx.note("case", c);
  ctx.precondition(c);
  const Problem& p = c.problem;
  const bool bit = ctx.claims.deterministic;
  std::optional<OracleResult> ef, eb;
  if (!bit) {
    ef = oracle_forward(c);
    if (c.has_backward()) eb = oracle_backward(c);
  }
  auto opts = [&](const std::string& out) {
    CompareOptions co;
    co.mode = Ctx::bitwise_if(bit);
    if (!bit) co.e_want = out == "dx" || out == "dgamma" || out == "dbeta" ? &eb->get(out) : &ef->get(out);
    return co;
  };
  // Another input in between (state left behind by one call must not leak into the next), and a
  // call from another thread (no thread-local state). No implementation exposes a thread count
  // today; one that does is compared across thread counts here.
  Case other = c;
  for (int64_t i = 0; i < p.numel(); ++i) other.x.set(i, -2 * c.x.get(i) + 1);
  const ForwardResult r1 = ctx.forward(c);
  (void)ctx.forward(other);
  const ForwardResult r2 = ctx.forward(c);
  std::optional<ForwardResult> r3;
  std::string thread_error;
  std::thread([&] {
    try {
      r3 = ctx.forward(c);
    } catch (const std::exception& e) {
      thread_error = e.what();
    }
  }).join();
  ctx.require(thread_error.empty(), "forward on another thread threw: " + thread_error);
  const std::array<std::pair<const char*, const ForwardResult*>, 2> repeats{{{"second call", &r2}, {"other thread", &*r3}}};
  for (const auto& [what, r] : repeats) {
    ctx.compare(what, p, "y", r1.y, r->y, opts("y"));
    ctx.compare(what, p, "mean", r1.mean, r->mean, opts("mean"));
    ctx.compare(what, p, "rstd", r1.rstd, r->rstd, opts("rstd"));
  }
  if (!c.has_backward()) return;
  const Tensor& mean_in = bit ? r1.mean : ef->get("mean").rounded;
  const Tensor& rstd_in = bit ? r1.rstd : ef->get("rstd").rounded;
  const BackwardResult b1 = ctx.backward(c, mean_in, rstd_in);
  (void)ctx.backward(other, mean_in, rstd_in);
  const BackwardResult b2 = ctx.backward(c, mean_in, rstd_in);
  ctx.compare("second backward call", p, "dx", b1.dx, b2.dx, opts("dx"));
  if (p.affine) {
    ctx.compare("second backward call", p, "dgamma", b1.dgamma, b2.dgamma, opts("dgamma"));
    ctx.compare("second backward call", p, "dbeta", b1.dbeta, b2.dbeta, opts("dbeta"));
  }
}

// ---- 15. Special values ------------------------------------------------------------------------

void special_values(Ctx& ctx) {
  CaseOptions o = ctx.options();
  o.values.specials = true;
  o.dy = ctx.caps.backward;
  Case c = draw_case(ctx, o);
  const Problem& p = c.problem;
  const int64_t cpg = p.channels_per_group(), S = p.S();
  auto group_elems = [&](int64_t n, int64_t g) {
    std::vector<int64_t> v;
    for (int64_t ch = g * cpg; ch < (g + 1) * cpg; ++ch)
      for (int64_t s = 0; s < S; ++s) v.push_back(p.index(n, ch, s));
    return v;
  };
  // Make sure a constant group and a NaN/Inf are there (the generators produce them too, but
  // rarely in the same case).
  std::optional<std::pair<int64_t, int64_t>> constant;
  if (*weighted_index({1, 3}) == 1) {
    const int64_t n = *uniform_int(0, p.N - 1), g = *uniform_int(0, p.G - 1);
    const double v = draw(Domain::simple, p.dtype, static_cast<uint64_t>(*uniform_int(0, 1 << 16))) * 0.75;
    for (int64_t i : group_elems(n, g)) c.x.set(i, v);
    constant = std::pair{n, g};
  }
  if (*weighted_index({1, 3}) == 1) {
    const int64_t i = *uniform_int(0, p.numel() - 1);
    c.x.set(i, std::vector<double>{kNaN, kInf, -kInf}[static_cast<size_t>(*uniform_int(0, 2))]);
  }
  ctx.note("case", c);
  ctx.precondition(c);

  // The policy (and, outside the non-finite groups, the budget) through the one check path.
  ctx.require_pass(check_case(ctx.impl, c, c.has_backward()), p);

  // eps > 0: a constant group gives beta (the exact result; within what the metric allows).
  const OracleResult ef = oracle_forward(c);
  if (constant && p.eps > 0) {
    const ExactOutput& ey = ef.get("y");
    const ForwardResult f = ctx.forward(c);
    for (int64_t i : group_elems(constant->first, constant->second)) {
      if (not_judged(ey, i)) continue;
      const int64_t ch = (p.layout == Layout::nchw ? (i / S) % p.C : i % p.C);
      const double beta = p.affine ? c.beta.get(ch) : 0.0;
      ctx.require(std::fabs(f.y.get(i) - beta) <= allowed_error(ey, i),
                  fmt::format("constant group: y at {} = {:.17g}, expected beta = {:.17g}", describe_index(p, "y", i),
                              f.y.get(i), beta));
    }
  }

  // Every group without a NaN/Inf is exactly as if the non-finite groups were not there.
  std::vector<char> bad_elem(static_cast<size_t>(p.numel()), 0), bad_group(static_cast<size_t>(p.N * p.G), 0);
  Case clean = c;
  bool any = false;
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t g = 0; g < p.G; ++g) {
      const std::vector<int64_t> idx = group_elems(n, g);
      bool finite = true;
      for (int64_t i : idx) finite = finite && std::isfinite(c.x.get(i));
      if (finite) continue;
      any = true;
      bad_group[static_cast<size_t>(n * p.G + g)] = 1;
      for (int64_t i : idx) {
        bad_elem[static_cast<size_t>(i)] = 1;
        clean.x.set(i, 0.0);
      }
    }
  if (!any) return;
  ctx.note("non-finite groups zeroed", clean);
  const bool bit = ctx.claims.group_independent;
  const OracleResult ec = oracle_forward(clean);
  const ForwardResult fc = ctx.forward(c), fz = ctx.forward(clean);
  CompareOptions cy = as(Ctx::bitwise_if(bit), ec.get("y"));
  cy.skip = bad_elem;
  ctx.compare("non-finite groups isolated", p, "y", fz.y, fc.y, cy);
  CompareOptions cm = as(Ctx::bitwise_if(bit), ec.get("mean"));
  cm.skip = bad_group;
  ctx.compare("non-finite groups isolated", p, "mean", fz.mean, fc.mean, cm);
  cm.e_want = &ec.get("rstd");
  ctx.compare("non-finite groups isolated", p, "rstd", fz.rstd, fc.rstd, cm);
  if (c.has_backward()) {
    const BackwardResult bc = ctx.backward(c, bit ? fc.mean : ef.get("mean").rounded, bit ? fc.rstd : ef.get("rstd").rounded);
    const BackwardResult bz = ctx.backward(clean, bit ? fz.mean : ec.get("mean").rounded, bit ? fz.rstd : ec.get("rstd").rounded);
    const OracleResult ebz = oracle_backward(clean);
    // dx of a group depends on its own x, dy and gamma; groups whose dy or gamma is non-finite
    // differ from the clean case's only through those, which both cases share.
    CompareOptions cd = as(Ctx::bitwise_if(bit), ebz.get("dx"));
    cd.skip = bad_elem;
    ctx.compare("non-finite groups isolated", p, "dx", bz.dx, bc.dx, cd);
  }
}

// ---- 16. The fused SiLU is the SiLU of the plain output ----------------------------------------

void fused_is_composition(Ctx& ctx) {
  CaseOptions o = ctx.options();
  ctx.allow_fused(o);
  o.affine = true;
  o.epilogue = Epilogue::none;
  const Case c = draw_case(ctx, o);
  Case z = c;
  z.problem.epilogue = Epilogue::silu;
  ctx.note("plain", c);
  ctx.note("fused", z);
  ctx.precondition(c);
  const Problem& p = c.problem;
  const OracleResult ep = oracle_forward(c), ez = oracle_forward(z);
  const ForwardResult fp = ctx.forward(c), fz = ctx.forward(z);
  // The statistics never depend on the epilogue: within tolerance, since a fused path may be other
  // code than the plain one (simd runs welford's scalar driver for the fused forms).
  const Match mode = Match::tolerance;
  ctx.compare("fused vs plain", p, "mean", fp.mean, fz.mean, as(mode, ep.get("mean")));
  ctx.compare("fused vs plain", p, "rstd", fp.rstd, fz.rstd, as(mode, ep.get("rstd")));
  // z = silu(y) with y the kernel's own plain output: |silu'| <= 1.1 carries y's allowance.
  const ExactOutput &ey = ep.get("y"), &eyz = ez.get("y");
  for (int64_t i = 0; i < p.numel(); ++i) {
    if (not_judged(ey, i) || not_judged(eyz, i)) continue;
    const long double y = fp.y.get(i);
    const long double want = y / (1 + std::exp(-y));
    const double got = fz.y.get(i);
    const double tol = allowed_error(eyz, i) + 1.1 * allowed_error(ey, i) +
                       ld_ulp(static_cast<double>(std::fabs(want) + std::fabs(y)));
    if (!(std::fabs(got - want) <= tol))
      ctx.fail(fmt::format("y at {}: silu of the plain output {:.17g} is {:.17g}, the fused output {:.17g}, |diff| "
                           "{:.4g} > tolerance {:.4g}",
                           describe_index(p, "y", i), static_cast<double>(y), static_cast<double>(want), got,
                           static_cast<double>(std::fabs(got - want)), tol));
  }
}

// ---- 17. Per-sample parameters whose rows are equal are per-channel parameters -----------------

void per_sample_equal_rows(Ctx& ctx) {
  CaseOptions o = ctx.options();
  ctx.allow_fused(o);  // the epilogue is drawn
  o.affine = true;
  o.affine_mode = AffineMode::per_channel;
  o.dy = ctx.caps.backward;
  const Case c = draw_case(ctx, o);
  const Problem& p = c.problem;
  Case r = c;
  r.problem.affine_mode = AffineMode::per_sample;
  std::vector<int64_t> rows;  // row n of r's parameters is c's
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t ch = 0; ch < p.C; ++ch) rows.push_back(ch);
  r.gamma = gather(c.gamma, rows, r.problem.param_shape());
  r.beta = gather(c.beta, rows, r.problem.param_shape());
  ctx.note("per channel", c);
  ctx.note("per sample, equal rows", r);
  ctx.precondition(c);
  const OracleResult ef = oracle_forward(c);
  const ForwardResult fc = ctx.forward(c), fr = ctx.forward(r);
  const Match mode = Match::tolerance;  // the per-sample path may be other code (as for property 16)
  ctx.compare("per sample vs per channel", p, "y", fc.y, fr.y, as(mode, ef.get("y")));
  ctx.compare("per sample vs per channel", p, "mean", fc.mean, fr.mean, as(mode, ef.get("mean")));
  ctx.compare("per sample vs per channel", p, "rstd", fc.rstd, fr.rstd, as(mode, ef.get("rstd")));
  if (!c.has_backward()) return;
  const OracleResult eb = oracle_backward(c), ebr = oracle_backward(r);
  const Tensor &mean = ef.get("mean").rounded, &rstd = ef.get("rstd").rounded;
  const BackwardResult bc = ctx.backward(c, mean, rstd), br = ctx.backward(r, mean, rstd);
  ctx.compare("per sample vs per channel", p, "dx", bc.dx, br.dx, as(mode, eb.get("dx")));
  // dgamma, dbeta per channel are the per-sample rows summed over the samples.
  for (const auto& [out, tc, tr] : {std::tuple{"dgamma", &bc.dgamma, &br.dgamma}, std::tuple{"dbeta", &bc.dbeta, &br.dbeta}}) {
    const ExactOutput &e = eb.get(out), &er = ebr.get(out);
    for (int64_t ch = 0; ch < p.C; ++ch) {
      if (not_judged(e, ch)) continue;
      long double sum = 0, sum_abs = 0;
      double tol = allowed_error(e, ch);
      bool judged = true;
      for (int64_t n = 0; n < p.N && judged; ++n) {
        judged = !not_judged(er, n * p.C + ch);
        sum += tr->get(n * p.C + ch);
        sum_abs += std::fabs(tr->get(n * p.C + ch));
        tol += allowed_error(er, n * p.C + ch);
      }
      if (!judged) continue;
      tol += ld_ulp(static_cast<double>(sum_abs)) * 4;
      if (!(std::fabs(tc->get(ch) - sum) <= tol))
        ctx.fail(fmt::format("{}[{}] = {:.17g} per channel, but the per-sample rows sum to {:.17g} (tolerance {:.4g})",
                             out, ch, tc->get(ch), static_cast<double>(sum), tol));
    }
  }
}

const std::vector<PropertyDef> kProperties = {
    {"ForwardMatchesOracle", "forward within the documented budget of the oracle", 40, false, false, nullptr,
     forward_matches_oracle},
    {"BackwardMatchesOracle", "backward (dx, dgamma, dbeta) within budget of the oracle", 30, true, false, nullptr,
     backward_matches_oracle},
    {"BatchIndependence", "a sample alone, a permuted batch, a NaN in another sample", 25, false, false,
     bitwise_batch, batch_independence},
    {"G1IsLayerNorm", "G = 1 equals the independent LayerNorm reference", 30, false, false, nullptr,
     g1_is_layer_norm},
    {"GCIsInstanceNorm", "G = C equals the independent InstanceNorm reference", 30, false, false, nullptr,
     gc_is_instance_norm},
    {"ShiftInvariance", "adding a constant to a group leaves the outputs unchanged", 25, false, false, nullptr,
     shift_invariance},
    {"ScaleInvariance", "x * +-2^k, eps * 4^k: outputs unchanged or exactly rescaled", 25, false, false,
     bitwise_pow2, scale_invariance},
    {"LayoutEquivalence", "channels-first and channels-last agree", 25, false, true, nullptr, layout_equivalence},
    {"PermutationEquivariance", "permuting channels within a group, or whole groups, permutes the outputs", 25,
     false, false, nullptr, permutation_equivariance},
    {"OutputMoments", "without affine each group's y has mean 0, variance var/(var+eps)", 30, false, false, nullptr,
     output_moments},
    {"AffineComposition", "y = gamma * xhat + beta; gamma = 1, beta = 0 is the plain output", 25, false, false,
     nullptr, affine_composition},
    {"GradientIdentities", "sum dx = 0 per group, dbeta = sum dy, dgamma = sum dy * xhat", 30, true, false, nullptr,
     gradient_identities},
    {"FiniteDifferences", "the oracle's backward vs high-precision FD; the impl's backward vs FD of its forward",
     25, true, false, nullptr, finite_differences},
    {"Determinism", "the same input gives the same bits on repeated calls", 25, false, false, bitwise_determinism,
     determinism},
    {"SpecialValues", "the NaN/Inf policy; constant groups give beta; non-finite groups are isolated", 30, false,
     false, nullptr, special_values},
    {"FusedIsComposition", "the SiLU epilogue is silu of the kernel's own plain output; statistics unchanged", 25,
     false, false, nullptr, fused_is_composition, true, false},
    {"PerSampleEqualRows", "per-sample parameters with equal rows give the per-channel outputs; dgamma rows sum", 25,
     false, false, nullptr, per_sample_equal_rows, false, true},
};

}  // namespace

const std::vector<PropertyDef>& all_properties() { return kProperties; }

const PropertyDef& property(std::string_view name) {
  for (const PropertyDef& d : kProperties)
    if (name == d.name) return d;
  throw std::invalid_argument(fmt::format("no property named {}", name));
}

}  // namespace gnv::prop
