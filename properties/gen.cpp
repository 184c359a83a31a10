#include "gen.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <fmt/format.h>
#include <limits>
#include <numeric>
#include <random>

namespace gnv::prop {

namespace {

// Tensors up to this many elements are generated element by element (shrinkable one by one);
// larger ones from a seed, so a failing big case shrinks its shape instead of thousands of values.
constexpr int64_t kMaxExplicit = 384;

uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double in_dtype(DType d, double v) { return bits_to_double(d, round_for_data(d, v)); }
bool representable(DType d, double v) {
  const double r = in_dtype(d, v);
  return std::isnan(v) ? std::isnan(r) : std::bit_cast<uint64_t>(r) == std::bit_cast<uint64_t>(v);
}

// 64 random bits, not shrunk (the shrinkable structure lives in the choices around them).
rc::Gen<uint64_t> raw_bits() {
  return [](const rc::Random& random, int) { return rc::shrinkable::just(rc::Random(random).next()); };
}

// Simpler neighbours of a value, for shrinking: 0, then an integer, then half of it, then |v|.
rc::Seq<double> simpler(DType d, double v) {
  std::vector<double> out;
  auto push = [&](double w) {
    if (representable(d, w) && std::bit_cast<uint64_t>(w) != std::bit_cast<uint64_t>(v)) out.push_back(w);
  };
  if (!std::isfinite(v)) {
    push(0.0);
    push(1.0);
  } else {
    if (v != 0 || std::signbit(v)) push(0.0);
    if (std::fabs(v) > 1 && v != std::trunc(v)) push(std::trunc(v));
    if (std::fabs(v) >= 2) push(std::trunc(v / 2));
    if (v < 0) push(-v);
  }
  return rc::seq::fromContainer(std::move(out));
}

// One element: a domain chosen by weight (shrinking towards `simple`), then a value of it.
rc::Gen<double> gen_element(DType d, std::vector<int> weights) {
  auto g = rc::gen::map(rc::gen::pair(weighted_index(std::move(weights)), raw_bits()),
                        [d](const std::pair<int, uint64_t>& p) { return draw(static_cast<Domain>(p.first), d, p.second); });
  return rc::gen::shrink(g, [d](double v) { return simpler(d, v); });
}

// gamma / beta elements: the first option is the neutral value (1 for gamma, 0 for beta).
rc::Gen<double> gen_param(DType d, double neutral, bool specials) {
  std::vector<int> w{5, 1, 1, 3, 2, 2, specials ? 1 : 0};
  auto g = rc::gen::map(rc::gen::pair(weighted_index(std::move(w)), raw_bits()),
                        [d, neutral](const std::pair<int, uint64_t>& p) {
                          switch (p.first) {
                            case 0: return neutral;
                            case 1: return 0.0;
                            case 2: return -1.0;
                            case 3: return draw(Domain::moderate, d, p.second);
                            case 4: return draw(Domain::simple, d, p.second);
                            case 5: return draw(Domain::normal, d, p.second);
                            default: return draw(Domain::special, d, p.second);
                          }
                        });
  return rc::gen::shrink(g, [d](double v) { return simpler(d, v); });
}

std::vector<int> domain_weights(const ValueProfile& v, Domain primary, bool rare_specials) {
  std::vector<int> w(7, 0);
  w[static_cast<int>(Domain::simple)] = 1;
  w[static_cast<int>(Domain::moderate)] = 1;
  w[static_cast<int>(Domain::normal)] = 1;
  if (v.wide && !v.conditioned) {
    w[static_cast<int>(Domain::wide)] = 1;
    w[static_cast<int>(Domain::tiny)] = 1;
    w[static_cast<int>(Domain::subnormal)] = 1;
  }
  w[static_cast<int>(primary)] = 40;
  if (v.specials && rare_specials) w[static_cast<int>(Domain::special)] = 1;
  return w;
}

std::vector<Domain> primary_domains(const ValueProfile& v) {
  std::vector<Domain> d{Domain::simple, Domain::moderate, Domain::normal};
  if (v.wide && !v.conditioned) d.insert(d.end(), {Domain::wide, Domain::tiny, Domain::subnormal});
  return d;
}

double pick_offset(DType d) {
  // An offset common to every element: cancellation in one-pass variances, and rounding of the
  // data itself where the dtype is coarse. Limited to what the dtype holds comfortably.
  static const double kOffsets[] = {0, 16, 1000, 4096.5, 1e4, 1e5, 1048576.25, 1e6, 1e7};
  std::vector<int> w{8};
  for (size_t i = 1; i < std::size(kOffsets); ++i) w.push_back(kOffsets[i] < info(d).max_finite / 4 ? 1 : 0);
  return kOffsets[*weighted_index(w)];
}

template <class T> T pick(const std::vector<T>& pool) {
  return pool[static_cast<size_t>(*uniform_int(0, static_cast<int64_t>(pool.size()) - 1))];
}

int64_t prod(const std::vector<int64_t>& v) {
  return std::accumulate(v.begin(), v.end(), int64_t{1}, std::multiplies<>());
}

// Shrinks the largest factor until N * C * S <= cap (and m <= max_m); extents first, since
// they make groups big without adding groups.
void cap_shape(Problem& p, int64_t& cpg, const ShapeOptions& o, int64_t cap, int64_t max_m) {
  auto numel = [&] { return p.N * p.G * cpg * prod(p.spatial); };
  auto m = [&] { return cpg * prod(p.spatial); };
  while (numel() > cap || m() > max_m) {
    auto it = std::max_element(p.spatial.begin(), p.spatial.end());
    if (it != p.spatial.end() && *it > 1) {
      *it = (*it + 1) / 2;
    } else if (p.N > o.min_N) {
      p.N = std::max(o.min_N, p.N / 2);
    } else if (cpg > std::max<int64_t>(o.min_cpg, 1) && !o.force_GC) {
      cpg = std::max(o.min_cpg, cpg / 2);
    } else if (p.G > std::max<int64_t>(o.min_G, 1) && !o.force_G1) {
      p.G = std::max(o.min_G, p.G / 2);
    } else {
      break;
    }
  }
}

void gen_shape(Problem& p, const ShapeOptions& o) {
  const bool big = o.allow_big && *weighted_index({15, 1}) == 1;
  int64_t cpg = 1;
  p.spatial.clear();
  if (!big) {
    p.N = *uniform_int(o.min_N, o.max_N);
    std::vector<int64_t> gs, cs;
    for (int64_t g : {1, 2, 3, 4, 5, 6, 7, 8, 12, 16})
      if (g >= o.min_G) gs.push_back(g);
    for (int64_t c : {1, 2, 3, 4, 5, 8})
      if (c >= o.min_cpg) cs.push_back(c);
    p.G = o.force_G1 ? 1 : pick(gs);
    cpg = o.force_GC ? 1 : pick(cs);
    // Odd and prime extents catch vector tails and chunk remainders; 32 +- 1 straddles the
    // Welford chunk.
    static const std::vector<int64_t> kExtents{1, 2, 3, 4, 5, 7, 8, 9, 11, 13, 16, 17, 31, 33};
    const int64_t rank = *uniform_int(0, 3);
    for (int64_t r = 0; r < rank; ++r) p.spatial.push_back(pick(kExtents));
    cap_shape(p, cpg, o, o.max_numel, std::min(o.max_numel, o.max_m));
  } else {
    // Groups of one to several thousand elements, rarely: the oracle costs ~1 us per element.
    p.N = *uniform_int(std::max<int64_t>(o.min_N, 1), std::max<int64_t>(o.min_N, 2));
    p.G = o.force_G1 ? 1 : *uniform_int(std::max<int64_t>(o.min_G, 1), std::max<int64_t>(o.min_G, 3));
    cpg = o.force_GC ? 1 : *uniform_int(std::max<int64_t>(o.min_cpg, 1), std::max<int64_t>(o.min_cpg, 3));
    const int64_t rank = *uniform_int(1, 3);
    if (rank == 1) p.spatial = {*uniform_int(600, 5000)};
    if (rank == 2) p.spatial = {*uniform_int(24, 75), *uniform_int(24, 75)};
    if (rank == 3) p.spatial = {*uniform_int(8, 17), *uniform_int(8, 17), *uniform_int(8, 17)};
    cap_shape(p, cpg, o, 20000, std::min<int64_t>(8192, o.max_m));
  }
  p.C = p.G * cpg;
}

std::string describe_values(const std::vector<double>& v, size_t limit) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < limit; ++i) s += fmt::format("{}{:g}", i ? " " : "", v[i]);
  if (v.size() > limit) s += fmt::format(" ... ({} values)", v.size());
  return s;
}

std::string describe(const ValueSource& v) {
  switch (v.kind) {
    case ValueSource::Kind::elements:
      return fmt::format("elements{}{}: [{}]", v.base != 0 ? fmt::format(" + base {:g}", v.base) : "",
                         v.scale != 1 ? fmt::format(" * {:g}", v.scale) : "", describe_values(v.values, 96));
    case ValueSource::Kind::stress:
      return fmt::format("stress class {} seed {}", v.stress.name(), v.seed);
    case ValueSource::Kind::procedural:
      return fmt::format("procedural {} seed={}{}{}",
                         v.int_range > 0 ? fmt::format("integers in [-{0}, {0}]", v.int_range)
                         : v.mix > 0     ? fmt::format("domain={}, 1 in {} from others", name(v.domain), v.mix)
                                         : fmt::format("domain={}", name(v.domain)),
                         v.seed,
                         v.base != 0 ? fmt::format(" base {:g}", v.base) : "",
                         v.scale != 1 ? fmt::format(" scale {:g}", v.scale) : "");
  }
  return "?";
}

// Fills t (the problem's physical layout) from a source, element (n, c, s) by element.
void fill(Tensor& t, const Problem& p, const ValueSource& v, const std::vector<Domain>& mix_with,
          int64_t int_range) {
  const int64_t S = p.S();
  auto put = [&](int64_t n, int64_t c, int64_t s, double e) {
    t.set(p.index(n, c, s), v.base == 0 ? e * v.scale : v.base + e * v.scale);
  };
  if (v.kind == ValueSource::Kind::elements) {
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t c = 0; c < p.C; ++c)
        for (int64_t s = 0; s < S; ++s) put(n, c, s, v.values[static_cast<size_t>((n * p.C + c) * S + s)]);
    return;
  }
  std::mt19937_64 rng(splitmix64(v.seed));
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t c = 0; c < p.C; ++c)
      for (int64_t s = 0; s < S; ++s) {
        double e;
        if (int_range > 0) {
          e = static_cast<double>(static_cast<int64_t>(rng() % static_cast<uint64_t>(2 * int_range + 1)) - int_range);
        } else {
          Domain dom = v.domain;
          if (v.mix > 0 && !mix_with.empty() && rng() % static_cast<uint64_t>(v.mix) == 0)
            dom = mix_with[rng() % mix_with.size()];
          e = draw(dom, p.dtype, rng());
        }
        put(n, c, s, e);
      }
}

int quantized_range(DType d) {
  // |integer| <= 2^(p-3): exactly representable, with room for a shift of up to 2^p - 2^(p-3).
  return 1 << (std::min(info(d).precision, 13) - 3);
}

}  // namespace

std::string_view name(Domain d) {
  switch (d) {
    case Domain::simple: return "simple";
    case Domain::moderate: return "moderate";
    case Domain::normal: return "normal";
    case Domain::wide: return "wide";
    case Domain::tiny: return "tiny";
    case Domain::subnormal: return "subnormal";
    case Domain::special: return "special";
  }
  return "?";
}

double draw(Domain dom, DType d, uint64_t r) {
  const DTypeInfo& in = info(d);
  const uint64_t r2 = splitmix64(r);
  const int mbits = in.precision - 1;
  const uint64_t mant = r2 & ((uint64_t{1} << mbits) - 1);
  const bool neg = (r >> 63) != 0;
  switch (dom) {
    case Domain::simple:
      return static_cast<double>(static_cast<int64_t>(r % 17) - 8);
    case Domain::moderate:
      return in_dtype(d, static_cast<double>(static_cast<int64_t>(r % 8193) - 4096) / 256.0);
    case Domain::normal: {
      // Irwin-Hall: four uniforms, centered and scaled to unit variance.
      double s = 0;
      for (int i = 0; i < 4; ++i) s += static_cast<double>((r >> (16 * i)) & 0xffff) / 65536.0;
      return in_dtype(d, (s - 2.0) * std::sqrt(3.0));
    }
    case Domain::wide: {
      const int binades = in.max_exp - in.min_exp + 2;  // one more for the subnormals
      const int k = static_cast<int>((r >> 8) % static_cast<uint64_t>(binades));
      double v = k == 0 ? static_cast<double>(mant) * in.min_subnormal
                        : std::ldexp(1.0 + std::ldexp(static_cast<double>(mant), -mbits), in.min_exp + k - 1);
      v = std::min(v, in.max_finite);
      return neg ? -v : v;
    }
    case Domain::tiny: {
      const double v = std::ldexp(1.0 + std::ldexp(static_cast<double>(mant), -mbits),
                                  in.min_exp + static_cast<int>((r >> 8) % 6));
      return neg ? -v : v;
    }
    case Domain::subnormal: {
      const double v = static_cast<double>(std::max<uint64_t>(mant, 1)) * in.min_subnormal;
      return neg ? -v : v;
    }
    case Domain::special: {
      switch (r % 4) {
        case 0: return std::numeric_limits<double>::quiet_NaN();
        case 1: return std::numeric_limits<double>::infinity();
        case 2: return -std::numeric_limits<double>::infinity();
        default: return -0.0;
      }
    }
  }
  return 0;
}

rc::Gen<int64_t> uniform_int(int64_t lo, int64_t hi) {
  return [lo, hi](const rc::Random& random, int) {
    const uint64_t span = static_cast<uint64_t>(hi - lo) + 1;
    const int64_t v = lo + static_cast<int64_t>(rc::Random(random).next() % span);
    return rc::shrinkable::shrinkRecur(v, [lo](int64_t x) { return rc::shrink::towards<int64_t>(x, lo); });
  };
}

rc::Gen<int> weighted_index(std::vector<int> weights) {
  return [weights](const rc::Random& random, int) {
    const int total = std::accumulate(weights.begin(), weights.end(), 0);
    if (total <= 0) throw rc::GenerationFailure("weighted_index: no positive weight");
    int r = static_cast<int>(rc::Random(random).next() % static_cast<uint64_t>(total));
    int i = 0;
    while (r >= weights[static_cast<size_t>(i)]) r -= weights[static_cast<size_t>(i++)];
    return rc::shrinkable::shrinkRecur(i, [weights](int x) {
      return rc::seq::filter(rc::shrink::towards<int>(x, 0),
                             [weights](int j) { return weights[static_cast<size_t>(j)] > 0; });
    });
  };
}

rc::Gen<std::vector<int64_t>> gen_permutation(int64_t n) {
  return rc::gen::map(rc::gen::container<std::vector<int64_t>>(static_cast<size_t>(n), uniform_int(0, 4 * n)),
                      [n](const std::vector<int64_t>& keys) {
                        std::vector<int64_t> order(static_cast<size_t>(n));
                        std::iota(order.begin(), order.end(), 0);
                        std::stable_sort(order.begin(), order.end(),
                                         [&](int64_t a, int64_t b) { return keys[a] < keys[b]; });
                        std::vector<int64_t> perm(static_cast<size_t>(n));
                        for (int64_t k = 0; k < n; ++k) perm[static_cast<size_t>(order[k])] = k;
                        return perm;
                      });
}

rc::Gen<CaseSpec> gen_case(DType dtype, Layout layout, const CaseOptions& o) {
  return rc::gen::exec([dtype, layout, o] {
    CaseSpec s;
    Problem& p = s.problem;
    p.dtype = dtype;
    p.layout = layout;
    gen_shape(p, o.shape);

    std::vector<double> eps_pool{1e-5, 0.0, 1e-3, 1.0, 1e-12, 0.25, 1e-8, 3.0};
    std::vector<int> eps_w{6, o.eps_positive ? 0 : 1, 1, 1, 1, 1, 1, 1};
    p.eps = eps_pool[static_cast<size_t>(*weighted_index(eps_w))];
    p.affine = o.affine ? *o.affine : *weighted_index({1, 1}) == 1;
    p.epilogue = o.epilogue ? *o.epilogue : o.silu_ok && *weighted_index({1, 1}) == 1 ? Epilogue::silu : Epilogue::none;
    if (p.affine)
      p.affine_mode = o.affine_mode                                      ? *o.affine_mode
                      : o.per_sample_ok && *weighted_index({1, 1}) == 1 ? AffineMode::per_sample
                                                                        : AffineMode::per_channel;

    const ValueProfile& vp = o.values;
    const int64_t numel = p.numel();
    const bool explicit_ok = numel <= kMaxExplicit;
    std::vector<Domain> mix_with = primary_domains(vp);
    int64_t int_range = 0;

    if (vp.quantized) {
      // Integers times 2^q: every shift by a multiple of 2^q that stays below 2^p, and every
      // power-of-two scaling that stays inside the normal range, is exact.
      const int64_t J = quantized_range(dtype);
      s.q = static_cast<int>(*uniform_int(-8, dtype == DType::f16 ? 5 : 8));
      s.x.scale = std::ldexp(1.0, s.q);
      if (explicit_ok && *weighted_index({3, 1}) == 0) {
        s.x.kind = ValueSource::Kind::elements;
        auto elem = rc::gen::map(uniform_int(0, 2 * J), [J](int64_t k) {
          // 0, -1, 1, -2, 2, ...: shrinking towards 0 through small magnitudes.
          return static_cast<double>(k % 2 ? -(k + 1) / 2 : k / 2);
        });
        s.x.values = *rc::gen::container<std::vector<double>>(static_cast<size_t>(numel), elem);
      } else {
        s.x.kind = ValueSource::Kind::procedural;
        s.x.seed = static_cast<uint64_t>(*uniform_int(0, 1 << 20));
        int_range = J;
      }
    } else {
      const int kind = *weighted_index({explicit_ok ? 4 : 0, vp.stress ? 3 : 0, 2});
      const std::vector<Domain> prim = primary_domains(vp);
      if (kind == 0) {
        s.x.kind = ValueSource::Kind::elements;
        const Domain primary = prim[static_cast<size_t>(*uniform_int(0, static_cast<int64_t>(prim.size()) - 1))];
        const bool rare_specials = vp.specials && *weighted_index({1, 1}) == 1;
        s.x.base = vp.offsets && !vp.conditioned ? pick_offset(dtype) : 0.0;
        s.x.values = *rc::gen::container<std::vector<double>>(
            static_cast<size_t>(numel), gen_element(dtype, domain_weights(vp, primary, rare_specials)));
      } else if (kind == 1) {
        s.x.kind = ValueSource::Kind::stress;
        std::vector<Stress> pool{{StressKind::normal, 0}, {StressKind::bimodal, 0}};
        if (!vp.conditioned) {
          for (double k = 10; k <= 1e8; k *= 10) pool.push_back({StressKind::offset, k});
          for (StressKind kd : {StressKind::tiny_var, StressKind::constant, StressKind::outlier})
            pool.push_back({kd, 0});
          if (vp.wide)
            for (StressKind kd : {StressKind::huge, StressKind::subnormal}) pool.push_back({kd, 0});
          if (vp.specials) pool.push_back({StressKind::special, 0});
        }
        s.x.stress = pick(pool);
        s.x.seed = static_cast<uint64_t>(*uniform_int(0, 1 << 20));
      } else {
        s.x.kind = ValueSource::Kind::procedural;
        s.x.domain = prim[static_cast<size_t>(*uniform_int(0, static_cast<int64_t>(prim.size()) - 1))];
        s.x.mix = std::vector<int>{0, 8, 64}[static_cast<size_t>(*uniform_int(0, 2))];
        s.x.base = vp.offsets && !vp.conditioned ? pick_offset(dtype) : 0.0;
        s.x.seed = static_cast<uint64_t>(*uniform_int(0, 1 << 20));
        if (vp.specials && *weighted_index({1, 1}) == 1) mix_with.push_back(Domain::special);
      }
    }

    if (p.affine) {
      const bool param_specials = vp.specials && *weighted_index({3, 1}) == 1;
      const auto params = static_cast<size_t>(p.per_sample() ? p.N * p.C : p.C);
      s.gamma = *rc::gen::container<std::vector<double>>(params, gen_param(dtype, 1.0, param_specials));
      s.beta = *rc::gen::container<std::vector<double>>(params, gen_param(dtype, 0.0, param_specials));
    }
    if (o.dy) {
      s.has_dy = true;
      const bool dy_specials = vp.specials && *weighted_index({3, 1}) == 1;
      if (explicit_ok) {
        s.dy.kind = ValueSource::Kind::elements;
        const Domain primary = std::vector<Domain>{Domain::simple, Domain::moderate, Domain::normal}[static_cast<size_t>(*uniform_int(0, 2))];
        ValueProfile dyp;
        dyp.wide = false;
        dyp.specials = dy_specials;
        s.dy.values = *rc::gen::container<std::vector<double>>(static_cast<size_t>(numel),
                                                               gen_element(dtype, domain_weights(dyp, primary, dy_specials)));
      } else {
        s.dy.kind = ValueSource::Kind::procedural;
        s.dy.domain = Domain::normal;
        s.dy.seed = static_cast<uint64_t>(*uniform_int(0, 1 << 20));
      }
    }
    // Remember how procedural values mix, so materialize() needs nothing else.
    s.x.mix = s.x.kind == ValueSource::Kind::procedural ? s.x.mix : 0;
    s.x.others = mix_with;
    s.x.int_range = int_range;
    return s;
  });
}

Case CaseSpec::materialize() const {
  Case c;
  c.problem = problem;
  c.problem.validate();
  if (x.kind == ValueSource::Kind::stress) {
    c.x = generate_x(problem, x.stress, x.seed);
  } else {
    c.x = Tensor(problem.dtype, problem.x_shape());
    fill(c.x, problem, x, x.others, x.int_range);
  }
  if (problem.affine) {
    c.gamma = Tensor(problem.dtype, problem.param_shape());
    c.beta = Tensor(problem.dtype, problem.param_shape());
    for (int64_t i = 0; i < c.gamma.numel(); ++i) {
      c.gamma.set(i, gamma[static_cast<size_t>(i)]);
      c.beta.set(i, beta[static_cast<size_t>(i)]);
    }
  }
  if (has_dy) {
    Tensor t(problem.dtype, problem.x_shape());
    fill(t, problem, dy, {}, 0);
    c.dy = std::move(t);
  }
  c.stress = x.kind == ValueSource::Kind::stress ? x.stress.name() : "property";
  c.seed = x.seed;
  return c;
}

void showValue(const CaseSpec& s, std::ostream& os) {
  os << s.problem.describe() << "\n    x: " << describe(s.x);
  if (s.problem.affine)
    os << "\n    gamma: [" << describe_values(s.gamma, 64) << "]\n    beta: [" << describe_values(s.beta, 64) << "]";
  if (s.has_dy) os << "\n    dy: " << describe(s.dy);
}

Tensor relayout(const Tensor& x, const Problem& from, const Problem& to) {
  Tensor out(x.dtype(), to.x_shape());
  for (int64_t n = 0; n < from.N; ++n)
    for (int64_t c = 0; c < from.C; ++c)
      for (int64_t s = 0; s < from.S(); ++s) out.set_bits(to.index(n, c, s), x.bits(from.index(n, c, s)));
  return out;
}

}  // namespace gnv::prop
