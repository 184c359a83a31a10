// Stress generators.
//
// Reproducibility: std::mt19937_64's output sequence is fixed by the standard, but the standard
// distributions and libm's log/exp/cos are not, so every transform here uses only +, -, *, /,
// sqrt, ldexp and floor (correctly rounded or exact in IEEE 754; the build forbids FMA
// contraction). The same (class, seed, problem) gives the same bits with any compiler or libc.
//
// Batch independence: each (n, g) group draws from its own stream keyed by (seed, purpose, n, g),
// never by a running counter, so sample n holds the same values whatever N is.
//
// offset:K is K + sd*N(0,1) with sd = max(1, 4 ulp(K), 256 u_acc K): where the dtype cannot
// resolve a unit spread next to K (f16 above 256, bf16 above 32), or where the ratio would pass
// the ill-posed limit of the metrics (f32 above 2^16), the spread widens: the effective ratio
// mean/sd is min(K, 2^16 for f32, ~2^8 for f16, ~2^5 for bf16) and a group never collapses to
// a constant.
// f16 also clamps the mean to 3e4, because values above ~6.5e4 overflow to Inf and would turn
// an offset test into a special-values test.
#include "gnv/stress.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <fmt/format.h>
#include <random>

namespace gnv {

namespace {

enum class Salt : uint64_t { x = 0x78, gamma = 0x67616d6d61, beta = 0x62657461, dy = 0x6479 };

uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Deterministic sources of uniform and normal doubles over mt19937_64.
class Rng {
 public:
  Rng(uint64_t seed, Salt salt, uint64_t a, uint64_t b)
      : gen_(splitmix64(splitmix64(splitmix64(seed ^ splitmix64(static_cast<uint64_t>(salt))) ^ a) ^ b)) {}

  uint64_t bits() { return gen_(); }
  // [0, 1) from the top 53 bits: every value exact, equally spaced.
  double uniform() { return static_cast<double>(gen_() >> 11) * 0x1p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  uint64_t below(uint64_t n) { return gen_() % n; }  // modulo bias is irrelevant for test data
  bool coin() { return (gen_() >> 63) != 0; }

  // Marsaglia's polar form of Box–Muller: needs a log but no sin/cos.
  double normal() {
    for (;;) {
      const double v1 = 2 * uniform() - 1, v2 = 2 * uniform() - 1;
      const double s = v1 * v1 + v2 * v2;
      if (s >= 1 || s == 0) continue;
      return v1 * std::sqrt(-2 * log(s) / s);
    }
  }

 private:
  // ln(v) for v > 0 from v = m·2^e, m in [sqrt(1/2), sqrt(2)), and the atanh series of m: accurate
  // to a few ulps, and the same everywhere because it only adds, multiplies and divides.
  static double log(double v) {
    int e;
    double m = std::frexp(v, &e);  // m in [0.5, 1), exact
    if (m < 0.70710678118654752) {
      m *= 2;
      --e;
    }
    const double t = (m - 1) / (m + 1), t2 = t * t;  // |t| < 0.172
    double sum = 0, pow = t;
    for (int k = 1; k <= 25; k += 2) {
      sum += pow / k;
      pow *= t2;
    }
    constexpr double ln2_hi = 0x1.62e42feep-1, ln2_lo = 0x1.a39ef35793c76p-33;  // fdlibm's split
    return e * ln2_hi + (2 * sum + e * ln2_lo);
  }

  std::mt19937_64 gen_;
};

// 2^u for real u, deterministic: exact power of two times a Taylor series for 2^frac.
double exp2_det(double u) {
  const double f = std::floor(u);
  const double y = (u - f) * 0.69314718055994531;  // in [0, ln 2)
  double sum = 1, term = 1;
  for (int k = 1; k <= 20; ++k) {
    term *= y / k;
    sum += term;
  }
  return std::ldexp(sum, static_cast<int>(f));
}

struct Bits {  // field masks of a dtype's encoding
  uint64_t sign, exponent, mantissa;
};
Bits bit_fields(DType d) {
  const DTypeInfo& in = info(d);
  const int nbits = in.bytes * 8, mbits = in.precision - 1;
  const uint64_t sign = uint64_t{1} << (nbits - 1);
  const uint64_t mantissa = (uint64_t{1} << mbits) - 1;
  return {sign, (sign - 1) & ~mantissa, mantissa};
}
uint64_t quiet_nan_bits(DType d) {
  const Bits b = bit_fields(d);
  return b.exponent | ((b.mantissa + 1) >> 1);  // canonical: top mantissa bit only
}

// Visits the elements of group (n, g) in a fixed order: j-th element is channel g*cpg + j / S,
// spatial position j % S, at its physical offset for the problem's layout.
template <class F> void for_group(const Problem& p, int64_t n, int64_t g, F&& f) {
  const int64_t S = p.S(), cpg = p.channels_per_group();
  for (int64_t c = g * cpg; c < (g + 1) * cpg; ++c)
    for (int64_t s = 0; s < S; ++s) f(p.index(n, c, s));
}

// Collects a group's physical offsets, for classes that touch chosen elements afterwards.
std::vector<int64_t> group_offsets(const Problem& p, int64_t n, int64_t g) {
  std::vector<int64_t> v;
  v.reserve(static_cast<size_t>(p.group_size()));
  for_group(p, n, g, [&](int64_t i) { v.push_back(i); });
  return v;
}

void fill_normal(Tensor& t, const std::vector<int64_t>& idx, Rng& r) {
  const double scale = exp2_det(r.uniform(-2, 2));
  for (int64_t i : idx) t.set(i, scale * r.normal());
}

void fill_group(Tensor& t, const Problem& p, const Stress& s, int64_t n, int64_t g, Rng& r) {
  const DType d = p.dtype;
  const std::vector<int64_t> idx = group_offsets(p, n, g);
  if (idx.empty()) return;
  switch (s.kind) {
    case StressKind::normal:
      fill_normal(t, idx, r);
      return;
    case StressKind::offset: {
      const double K = d == DType::f16 ? std::min(s.param, 3e4) : s.param;
      // The spread must stay resolvable next to K, or the group collapses to a constant and
      // tests nothing (sd >= 4 ulps of K), and the ratio K/sd must stay inside the range where
      // forward error measures stability (u_acc * kappa <= 1/64, see metrics.h): sd >= K *
      // 256 * u_acc caps it at 2^16 for f32 accumulation, 2^45 for f64.
      const double sd = std::max({1.0, 4 * ulp_at(d, K), K * 256 * info(acc_dtype(d)).unit_roundoff});
      for (int64_t i : idx) t.set(i, K + sd * r.normal());
      return;
    }
    case StressKind::tiny_var: {
      const double sd =
          p.eps > 0 ? std::sqrt(p.eps) * exp2_det(r.uniform(-8, 2)) : exp2_det(r.uniform(-20, -10));
      for (int64_t i : idx) t.set(i, 1 + sd * r.normal());
      return;
    }
    case StressKind::huge: {
      const DTypeInfo& in = info(d);
      for (int64_t i : idx) {
        const int e = in.min_exp + static_cast<int>(r.below(static_cast<uint64_t>(in.max_exp - in.min_exp + 1)));
        // Mantissas near 2 at max_exp would round up to Inf in the dtype.
        const double mag = std::min(std::ldexp(1 + r.uniform(), e), in.max_finite);
        t.set(i, r.coin() ? -mag : mag);
      }
      const double big = in.max_finite / 2 * (1 - r.uniform() / 8);
      t.set(idx[r.below(idx.size())], r.coin() ? -big : big);
      return;
    }
    case StressKind::subnormal: {
      const Bits b = bit_fields(d);
      for (int64_t i : idx) {
        uint64_t m = 0;
        while (m == 0) m = r.bits() & b.mantissa;
        t.set_bits(i, m | (r.coin() ? b.sign : 0));
      }
      return;
    }
    case StressKind::constant: {
      const double v = 2 * r.normal();
      for (int64_t i : idx) t.set(i, v);
      return;
    }
    case StressKind::outlier: {
      fill_normal(t, idx, r);
      // f16 tops out at 65504: 1e4 times a value of a few units would be Inf, not an outlier.
      const double factor = d == DType::f16 ? 1e2 : 1e4;
      const int64_t i = idx[r.below(idx.size())];
      t.set(i, t.get(i) * factor);
      return;
    }
    case StressKind::bimodal:
      for (int64_t i : idx) t.set(i, (r.coin() ? -3.0 : 3.0) + 0.01 * r.normal());
      return;
    case StressKind::special: {
      fill_normal(t, idx, r);
      const int64_t k = n * p.G + g;
      if (k % 3 != 0) {
        t.set_bits(idx[r.below(idx.size())], bit_fields(d).sign);  // -0.0
        return;
      }
      // The kind of the first special cycles over successive special groups, so NaN, +Inf and
      // -Inf all appear as soon as there are three such groups.
      const Bits b = bit_fields(d);
      const std::array<uint64_t, 3> specials{quiet_nan_bits(d), b.exponent, b.sign | b.exponent};
      const int64_t count = 1 + static_cast<int64_t>(r.below(3));
      for (int64_t j = 0; j < count; ++j)
        t.set_bits(idx[r.below(idx.size())], specials[static_cast<size_t>((k / 3 + j) % 3)]);
      return;
    }
  }
}

template <class Fill> Tensor generate_per_group(const Problem& p, uint64_t seed, Salt salt, Fill&& fill) {
  p.validate();
  Tensor t(p.dtype, p.x_shape());
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t g = 0; g < p.G; ++g) {
      Rng r(seed, salt, static_cast<uint64_t>(n), static_cast<uint64_t>(g));
      fill(t, n, g, r);
    }
  return t;
}

Tensor channel_vector(const Problem& p, uint64_t seed, Salt salt, double mean, double sd) {
  p.validate();
  Tensor t(p.dtype, p.param_shape());
  Rng r(seed, salt, 0, 0);
  // Row by row: a per-sample (N, C) tensor's first row is the per-channel one.
  for (int64_t i = 0; i < t.numel(); ++i) t.set(i, mean + sd * r.normal());
  return t;
}

constexpr double kMinOffset = 1, kMaxOffset = 1e8;

struct Named {
  std::string_view name;
  StressKind kind;
};
constexpr Named kNames[] = {{"normal", StressKind::normal},     {"tiny-var", StressKind::tiny_var},
                            {"huge", StressKind::huge},         {"subnormal", StressKind::subnormal},
                            {"constant", StressKind::constant}, {"outlier", StressKind::outlier},
                            {"bimodal", StressKind::bimodal},   {"special", StressKind::special}};

[[noreturn]] void bad_stress(const std::string& s, std::string_view why) {
  throw std::invalid_argument(fmt::format(
      "stress class '{}': {} (expected normal, offset:K with 1 <= K <= 1e8, tiny-var, huge, "
      "subnormal, constant, outlier, bimodal or special)",
      s, why));
}

}  // namespace

std::string Stress::name() const {
  // "{}" is fmt's shortest round-trip form: offset:10000, offset:100000000, offset:2.5.
  if (kind == StressKind::offset) return fmt::format("offset:{}", param);
  for (const auto& nm : kNames)
    if (nm.kind == kind) return std::string(nm.name);
  throw std::logic_error("bad stress kind");
}

Stress parse_stress(const std::string& s) {
  for (const auto& nm : kNames)
    if (s == nm.name) return Stress{nm.kind, 0};
  constexpr std::string_view prefix = "offset:";
  if (s.rfind(prefix, 0) != 0) bad_stress(s, "unknown class");
  const char* first = s.data() + prefix.size();
  const char* last = s.data() + s.size();
  double k = 0;
  const auto [end, ec] = std::from_chars(first, last, k);
  if (first == last || ec != std::errc() || end != last) bad_stress(s, "K is not a number");
  if (!(k >= kMinOffset && k <= kMaxOffset)) bad_stress(s, "K is out of range");
  return Stress{StressKind::offset, k};
}

std::vector<Stress> default_stresses() {
  std::vector<Stress> v{{StressKind::normal, 0}};
  for (double k = 10; k <= kMaxOffset; k *= 10) v.push_back({StressKind::offset, k});
  for (StressKind kind : {StressKind::tiny_var, StressKind::huge, StressKind::subnormal,
                          StressKind::constant, StressKind::outlier, StressKind::bimodal,
                          StressKind::special})
    v.push_back({kind, 0});
  return v;
}

Tensor generate_x(const Problem& p, const Stress& s, uint64_t seed) {
  return generate_per_group(p, seed, Salt::x, [&](Tensor& t, int64_t n, int64_t g, Rng& r) {
    fill_group(t, p, s, n, g, r);
  });
}

Tensor generate_gamma(const Problem& p, uint64_t seed) {
  Tensor t = channel_vector(p, seed, Salt::gamma, 1, 0.5);
  // A zero gamma and a negative one catch kernels that divide by gamma or take its magnitude.
  if (p.C >= 3) {
    t.set(0, 0.0);
    t.set(1, -std::fabs(t.get(1)) - 0.25);
  }
  return t;
}

Tensor generate_beta(const Problem& p, uint64_t seed) { return channel_vector(p, seed, Salt::beta, 0, 0.5); }

Tensor generate_dy(const Problem& p, uint64_t seed) {
  return generate_per_group(p, seed, Salt::dy, [&](Tensor& t, int64_t n, int64_t g, Rng& r) {
    for_group(p, n, g, [&](int64_t i) { t.set(i, r.normal()); });
  });
}

}  // namespace gnv
