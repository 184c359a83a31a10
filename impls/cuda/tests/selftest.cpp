// Self-contained GPU test of the CUDA kernels: needs only gn_cuda.h and the CUDA runtime, so it
// builds on a machine without gnv's dependencies (bench/gpu/CMakeLists.txt). It compares forward
// and backward, every dtype and layout, against a float64 (long double for f64) host reference,
// checks that every output element was written (outputs start as NaN poison), that repeated runs
// are bitwise identical, the non-finite policy, N = 0, and that a bad problem is refused before any
// launch. The exact-oracle verdicts are gnv_cuda_tests' job (test_gpu.cpp).
//
//   gnv_cuda_selftest [--quick | --tiny]   exit 0 pass, 1 fail, 77 no usable GPU (CTest: skipped)
//
// --quick runs a few small cases that still cover clusters, the split path and unaligned
// accesses; --tiny fewer still (every kernel variant of f32 and f16 once or twice): for
// compute-sanitizer, which slows kernels down a hundredfold.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "gn_cuda.h"

namespace {

using gnv::cuda::Desc;
using gnv::cuda::DType;
using gnv::cuda::Layout;
using gnv::cuda::Options;
using gnv::cuda::Path;
using real = long double;

// ---- storage encodings -------------------------------------------------------------------------
uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
double bf16_to_double(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
double f16_to_double(uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v;
  if (e == 0) v = std::ldexp(m, -24);
  else if (e == 31) v = m ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else v = std::ldexp(1024 + m, e - 25);
  return s ? -v : v;
}
uint16_t double_to_f16(double x) {
  const uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  if (std::isnan(x)) return 0x7e00;
  double a = std::fabs(x);
  if (a >= 65520.0) return sign | 0x7c00;
  int e;
  std::frexp(a, &e);  // a = f * 2^e, f in [0.5, 1)
  const int q = std::max(e - 11, -24);  // quantum exponent: 11 significant bits, subnormals 2^-24
  const double r = std::nearbyint(std::ldexp(a, -q));  // round half to even (default mode)
  a = std::ldexp(r, q);
  if (a >= 65520.0) return sign | 0x7c00;
  if (a < std::ldexp(1.0, -14)) return sign | static_cast<uint16_t>(std::ldexp(a, 24));
  std::frexp(a, &e);
  const int biased = e - 1 + 15;
  const int mant = static_cast<int>(std::ldexp(a, 11 - e)) - 1024;
  return sign | static_cast<uint16_t>(biased << 10) | static_cast<uint16_t>(mant);
}

struct Buf {
  DType t;
  std::vector<unsigned char> bytes;
  Buf(DType type, int64_t n) : t(type), bytes(static_cast<size_t>(n) * gnv::cuda::elem_bytes(type)) {}
  int64_t size() const { return static_cast<int64_t>(bytes.size() / gnv::cuda::elem_bytes(t)); }
  void* data() { return bytes.data(); }
  const void* data() const { return bytes.data(); }
  double get(int64_t i) const {
    const unsigned char* p = bytes.data() + i * gnv::cuda::elem_bytes(t);
    switch (t) {
      case DType::f64: { double v; std::memcpy(&v, p, 8); return v; }
      case DType::f32: { float v; std::memcpy(&v, p, 4); return v; }
      case DType::f16: { uint16_t v; std::memcpy(&v, p, 2); return f16_to_double(v); }
      case DType::bf16: { uint16_t v; std::memcpy(&v, p, 2); return bf16_to_double(v); }
    }
    return 0;
  }
  void set(int64_t i, double v) {
    unsigned char* p = bytes.data() + i * gnv::cuda::elem_bytes(t);
    switch (t) {
      case DType::f64: std::memcpy(p, &v, 8); return;
      case DType::f32: { const float f = static_cast<float>(v); std::memcpy(p, &f, 4); return; }
      case DType::f16: { const uint16_t h = double_to_f16(v); std::memcpy(p, &h, 2); return; }
      case DType::bf16: { const uint16_t h = f32_to_bf16(static_cast<float>(v)); std::memcpy(p, &h, 2); return; }
    }
  }
  void poison() { std::fill(bytes.begin(), bytes.end(), 0xff); }  // a NaN in every dtype
  int64_t count_poison() const {
    const size_t w = gnv::cuda::elem_bytes(t);
    int64_t n = 0;
    for (size_t i = 0; i < bytes.size(); i += w)
      n += std::all_of(bytes.begin() + static_cast<long>(i), bytes.begin() + static_cast<long>(i + w),
                       [](unsigned char b) { return b == 0xff; });
    return n;
  }
  bool operator==(const Buf& o) const { return bytes == o.bytes; }
};

struct Rng {  // splitmix64
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1p-53; }
  double normal() {
    for (;;) {
      const double a = 2 * uniform() - 1, b = 2 * uniform() - 1, r = a * a + b * b;
      if (r > 0 && r < 1) return a * std::sqrt(-2 * std::log(r) / r);
    }
  }
};

DType acc_of(DType t) { return t == DType::f64 ? DType::f64 : DType::f32; }
const char* name(DType t) {
  switch (t) {
    case DType::f64: return "f64";
    case DType::f32: return "f32";
    case DType::f16: return "f16";
    case DType::bf16: return "bf16";
  }
  return "?";
}
// Unit roundoff of the storage type and the accumulator.
double u_of(DType t) {
  switch (t) {
    case DType::f64: return 0x1p-53;
    case DType::f32: return 0x1p-24;
    case DType::f16: return 0x1p-11;
    case DType::bf16: return 0x1p-8;
  }
  return 1;
}

int64_t index_of(const Desc& d, int64_t n, int64_t c, int64_t s) {
  return d.layout == Layout::nchw ? (n * d.C + c) * d.S + s : (n * d.S + s) * d.C + c;
}

struct Case {
  Desc d;
  bool affine = true;
  Options opt;
  const char* what = "";
};

int g_fail = 0, g_checks = 0;
std::set<std::string> g_plans;

void fail(const Case& c, const std::string& msg) {
  ++g_fail;
  if (g_fail <= 40)
    std::printf("FAIL %s %s N=%lld C=%lld S=%lld G=%lld affine=%d [%s] (%s): %s\n", name(c.d.dtype),
                c.d.layout == Layout::nchw ? "nchw" : "nhwc", static_cast<long long>(c.d.N),
                static_cast<long long>(c.d.C), static_cast<long long>(c.d.S), static_cast<long long>(c.d.G),
                c.affine ? 1 : 0, c.what, gnv::cuda::describe_plan(c.d, false, c.opt).c_str(), msg.c_str());
}

// max |got - ref| over elements, relative to `scale` (default max |ref|); and the elements never
// written.
void compare(const Case& c, const char* what, const Buf& got, const std::vector<real>& ref, double tol,
             real scale = -1) {
  ++g_checks;
  const int64_t unwritten = got.count_poison();
  if (unwritten) fail(c, std::string(what) + ": " + std::to_string(unwritten) + " elements never written");
  real worst = 0;
  int64_t wi = -1;
  if (scale < 0) {
    scale = 0;
    for (size_t i = 0; i < ref.size(); ++i) scale = std::max(scale, std::fabs(ref[i]));
  }
  for (size_t i = 0; i < ref.size(); ++i) {
    const real g = got.get(static_cast<int64_t>(i));
    const real e = std::isfinite(static_cast<double>(g)) ? std::fabs(g - ref[i]) : std::numeric_limits<real>::infinity();
    if (e > worst) {
      worst = e;
      wi = static_cast<int64_t>(i);
    }
  }
  const double rel = scale > 0 ? static_cast<double>(worst / scale) : static_cast<double>(worst);
  if (!(rel <= tol)) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s: max error %.3g of scale (tolerance %.3g) at %lld: got %.17g want %.17Lg", what,
                  rel, tol, static_cast<long long>(wi), got.get(wi), ref[static_cast<size_t>(wi)]);
    fail(c, buf);
  }
}

// One forward + backward case against the reference; returns the outputs for the determinism check.
struct Outputs {
  Buf y, mean, rstd, dx, dgamma, dbeta;
};

Outputs run_case(const Case& c, uint64_t seed, double offset) {
  const Desc& d = c.d;
  const DType t = d.dtype, at = acc_of(t);
  const int64_t numel = d.numel(), NG = d.N * d.G, cpg = d.C / d.G, m = cpg * d.S;
  Rng rng{seed};
  Buf x(t, numel), dy(t, numel), gamma(t, d.C), beta(t, d.C);
  for (int64_t i = 0; i < numel; ++i) x.set(i, offset + rng.normal() * (1 + 0.5 * std::sin(static_cast<double>(i % 97))));
  for (int64_t i = 0; i < numel; ++i) dy.set(i, rng.normal());
  for (int64_t ch = 0; ch < d.C; ++ch) {
    gamma.set(ch, 1 + 0.5 * rng.normal());
    beta.set(ch, 0.5 * rng.normal());
  }
  if (d.C >= 3) gamma.set(0, 0.0);

  Outputs o{Buf(t, numel), Buf(at, NG), Buf(at, NG), Buf(t, numel), Buf(t, d.C), Buf(t, d.C)};
  o.y.poison();
  o.mean.poison();
  o.rstd.poison();
  gnv::cuda::forward_host(d, x.data(), c.affine ? gamma.data() : nullptr, c.affine ? beta.data() : nullptr, o.y.data(),
                          o.mean.data(), o.rstd.data(), c.opt);

  // Reference statistics in long double, and mean/rstd rounded to acc for the backward input
  // (what the harness does: backward gets statistics, not the forward's own outputs).
  std::vector<real> ym(static_cast<size_t>(numel)), mr(static_cast<size_t>(NG)), rr(static_cast<size_t>(NG));
  Buf mean_in(at, NG), rstd_in(at, NG);
  for (int64_t n = 0; n < d.N; ++n)
    for (int64_t g = 0; g < d.G; ++g) {
      real s = 0, q = 0;
      for (int64_t ch = g * cpg; ch < (g + 1) * cpg; ++ch)
        for (int64_t sp = 0; sp < d.S; ++sp) s += x.get(index_of(d, n, ch, sp));
      const real mu = s / m;
      for (int64_t ch = g * cpg; ch < (g + 1) * cpg; ++ch)
        for (int64_t sp = 0; sp < d.S; ++sp) {
          const real dd = x.get(index_of(d, n, ch, sp)) - mu;
          q += dd * dd;
        }
      const real rs = 1 / std::sqrt(q / m + static_cast<real>(d.eps));
      mr[static_cast<size_t>(n * d.G + g)] = mu;
      rr[static_cast<size_t>(n * d.G + g)] = rs;
      mean_in.set(n * d.G + g, static_cast<double>(mu));
      rstd_in.set(n * d.G + g, static_cast<double>(rs));
      for (int64_t ch = g * cpg; ch < (g + 1) * cpg; ++ch)
        for (int64_t sp = 0; sp < d.S; ++sp) {
          const int64_t i = index_of(d, n, ch, sp);
          const real gm = c.affine ? gamma.get(ch) : 1, bt = c.affine ? beta.get(ch) : 0;
          ym[static_cast<size_t>(i)] = (x.get(i) - mu) * rs * gm + bt;
        }
    }
  // Tolerances: one rounding to storage plus acc-type reduction errors grown by the condition
  // number (offset / spread), with room for log2(m) combine levels.
  // The mean is judged against max |x| (README: its condition scale), rstd relative to itself.
  const double kappa = 1 + std::fabs(offset);
  const double ua = u_of(at), lg = std::log2(static_cast<double>(m) + 1);
  real xmax = 0;
  for (int64_t i = 0; i < numel; ++i) xmax = std::max(xmax, static_cast<real>(std::fabs(x.get(i))));
  compare(c, "y", o.y, ym, 2 * u_of(t) + 8 * ua * kappa * (4 + lg));
  compare(c, "mean", o.mean, mr, 8 * ua * (4 + lg), xmax);
  compare(c, "rstd", o.rstd, rr, 8 * ua * kappa * (4 + lg));

  // Backward.
  o.dx.poison();
  o.dgamma.poison();
  o.dbeta.poison();
  gnv::cuda::backward_host(d, dy.data(), x.data(), mean_in.data(), rstd_in.data(), c.affine ? gamma.data() : nullptr, nullptr,
                           o.dx.data(), c.affine ? o.dgamma.data() : nullptr, c.affine ? o.dbeta.data() : nullptr,
                           c.opt);
  std::vector<real> dxr(static_cast<size_t>(numel)), dgr(static_cast<size_t>(d.C), 0), dbr(static_cast<size_t>(d.C), 0);
  for (int64_t n = 0; n < d.N; ++n)
    for (int64_t g = 0; g < d.G; ++g) {
      const real mu = mean_in.get(n * d.G + g), rs = rstd_in.get(n * d.G + g);
      real sg = 0, sgx = 0;
      for (int64_t ch = g * cpg; ch < (g + 1) * cpg; ++ch)
        for (int64_t sp = 0; sp < d.S; ++sp) {
          const int64_t i = index_of(d, n, ch, sp);
          const real gm = c.affine ? gamma.get(ch) : 1, xh = (x.get(i) - mu) * rs, gv = gm * dy.get(i);
          sg += gv;
          sgx += gv * xh;
          dgr[static_cast<size_t>(ch)] += dy.get(i) * xh;
          dbr[static_cast<size_t>(ch)] += dy.get(i);
        }
      for (int64_t ch = g * cpg; ch < (g + 1) * cpg; ++ch)
        for (int64_t sp = 0; sp < d.S; ++sp) {
          const int64_t i = index_of(d, n, ch, sp);
          const real gm = c.affine ? gamma.get(ch) : 1, xh = (x.get(i) - mu) * rs;
          dxr[static_cast<size_t>(i)] = rs * (gm * dy.get(i) - sg / m - xh * sgx / m);
        }
    }
  compare(c, "dx", o.dx, dxr, 2 * u_of(t) + 16 * ua * kappa * (4 + lg));
  if (c.affine) {
    const double lgc = std::log2(static_cast<double>(d.N * d.S) + 1);
    compare(c, "dgamma", o.dgamma, dgr, 2 * u_of(t) + 16 * ua * kappa * (4 + lgc) * std::sqrt(static_cast<double>(d.N * d.S)));
    compare(c, "dbeta", o.dbeta, dbr, 2 * u_of(t) + 16 * ua * (4 + lgc) * std::sqrt(static_cast<double>(d.N * d.S)));
  }
  auto kind = [](const std::string& plan) {  // "nchw fused k=4", "nhwc split W=1 k=35"
    const size_t k = plan.find(" k="), w = plan.find(" W=");
    std::string s = plan.substr(0, w);
    if (plan.compare(w, 5, " W=1 ") == 0) s += " W=1";
    return s + plan.substr(k, plan.find(' ', k + 1) - k);
  };
  g_plans.insert(kind(gnv::cuda::describe_plan(d, false, c.opt)) + " | " + kind(gnv::cuda::describe_plan(d, true, c.opt)));
  return o;
}

void determinism(const Case& c) {
  const Outputs a = run_case(c, 7, 3.0), b = run_case(c, 7, 3.0);
  ++g_checks;
  if (!(a.y == b.y && a.mean == b.mean && a.rstd == b.rstd && a.dx == b.dx && a.dgamma == b.dgamma && a.dbeta == b.dbeta))
    fail(c, "two runs on the same input differ (not bitwise reproducible)");
}

// A NaN in one group, Inf in another: those groups non-finite, every other group finite.
void nonfinite(const Case& c) {
  const Desc& d = c.d;
  const DType t = d.dtype, at = acc_of(t);
  const int64_t numel = d.numel(), cpg = d.C / d.G;
  Rng rng{99};
  Buf x(t, numel), y(t, numel), mean(at, d.N * d.G), rstd(at, d.N * d.G);
  for (int64_t i = 0; i < numel; ++i) x.set(i, rng.normal());
  x.set(index_of(d, 0, 0, d.S - 1), std::numeric_limits<double>::quiet_NaN());  // group (0, 0)
  if (d.G > 1) x.set(index_of(d, d.N - 1, d.C - 1, 0), std::numeric_limits<double>::infinity());  // (N-1, G-1)
  y.poison();
  gnv::cuda::forward_host(d, x.data(), nullptr, nullptr, y.data(), mean.data(), rstd.data(), c.opt);
  ++g_checks;
  for (int64_t n = 0; n < d.N; ++n)
    for (int64_t g = 0; g < d.G; ++g) {
      const bool bad = (n == 0 && g == 0) || (d.G > 1 && n == d.N - 1 && g == d.G - 1);
      const bool mf = std::isfinite(mean.get(n * d.G + g)), rf = std::isfinite(rstd.get(n * d.G + g));
      if (bad ? (mf || rf) : !(mf && rf)) fail(c, "non-finite policy: statistics of group " + std::to_string(n * d.G + g));
      for (int64_t ch = g * cpg; ch < (g + 1) * cpg; ++ch)
        for (int64_t sp = 0; sp < d.S; ++sp) {
          const bool yf = std::isfinite(y.get(index_of(d, n, ch, sp)));
          if (bad == yf) {
            fail(c, "non-finite policy: y of group " + std::to_string(n * d.G + g));
            return;
          }
        }
    }
}

bool refused_before_launch() {
  Desc d;
  d.N = 2;
  d.C = 6;
  d.S = 4;
  d.G = 4;  // C % G != 0
  std::vector<float> buf(48);
  try {
    gnv::cuda::forward_host(d, buf.data(), nullptr, nullptr, buf.data(), buf.data(), buf.data());
  } catch (const std::invalid_argument&) {
    return true;
  }
  return false;
}

void empty_batch(DType t, Layout l) {
  Case c;
  c.d.N = 0;
  c.d.C = 4;
  c.d.S = 3;
  c.d.G = 2;
  c.d.dtype = t;
  c.d.layout = l;
  c.what = "N=0";
  Buf dg(t, 4), db(t, 4), g(t, 4);
  for (int i = 0; i < 4; ++i) g.set(i, 1 + i);
  dg.poison();
  db.poison();
  gnv::cuda::forward_host(c.d, nullptr, g.data(), nullptr, nullptr, nullptr, nullptr);
  gnv::cuda::backward_host(c.d, nullptr, nullptr, nullptr, nullptr, g.data(), nullptr, nullptr, dg.data(), db.data());
  ++g_checks;
  for (int i = 0; i < 4; ++i)
    if (dg.get(i) != 0 || db.get(i) != 0) fail(c, "N=0: dgamma/dbeta must be 0");
}

}  // namespace

int main(int argc, char** argv) {
  const std::string arg = argc > 1 ? argv[1] : "";
  const bool tiny = arg == "--tiny", quick = tiny || arg == "--quick";
  if (!(arg.empty() || arg == "--quick" || arg == "--tiny")) {
    std::printf("usage: gnv_cuda_selftest [--quick | --tiny]\n");
    return 2;
  }
  if (!gnv::cuda_available()) {
    std::printf("gnv_cuda_selftest: skipped: %s\n", gnv::cuda_unavailable_reason().c_str());
    return 77;
  }
  try {
    struct Shape {
      int64_t N, C, S, G;
      double offset;
    };
    static const Shape kQuick[] = {{2, 32, 64, 8, 3}, {3, 6, 35, 3, 0}, {2, 12, 1, 4, 1}, {1, 64, 1024, 4, 10}};
    static const Shape kFull[] = {{2, 32, 64, 8, 3},      {3, 6, 35, 3, 0},      {2, 12, 1, 4, 1},
                                  {1, 8, 105, 2, 100},    {2, 64, 4096, 4, 10},  {2, 320, 4096, 32, 1},
                                  {1, 32, 65536, 1, 1000}, {4, 40, 49, 10, 0},    {2, 24, 1000, 2, 1e4}};
    const std::vector<Shape> shapes = quick ? std::vector<Shape>(std::begin(kQuick), std::end(kQuick) - (tiny ? 2 : 0))
                                            : std::vector<Shape>(std::begin(kFull), std::end(kFull));
    static const DType kAll[] = {DType::f32, DType::f16, DType::bf16, DType::f64};
    const std::vector<DType> dtypes(std::begin(kAll), std::begin(kAll) + (quick ? 2 : 4));
    for (DType t : dtypes)
      for (Layout l : {Layout::nchw, Layout::nhwc}) {
        empty_batch(t, l);
        for (const Shape& sh : shapes)
          for (int mode = 0; mode < 3; ++mode) {
            Case c;
            c.d = Desc{sh.N, sh.C, sh.S, sh.G, 1e-5, t, l};
            c.affine = mode != 1;
            if (mode == 1) {
              c.opt.force_parts = 3;  // a cluster of 3 (or 3 split parts) even on small groups
              c.what = "3 parts";
            } else if (mode == 2) {
              c.opt.path = Path::split;
              c.opt.force_threads = 32;
              c.what = "split";
            } else {
              c.what = "auto";
            }
            const int64_t m = sh.C / sh.G * sh.S;
            if (t == DType::f16 && sh.offset > 100) continue;  // f16 cannot resolve the spread
            if (t == DType::bf16 && sh.offset > 10) continue;
            if (quick && mode == 0 && m > 100000) continue;
            run_case(c, 1 + static_cast<uint64_t>(sh.N * 131 + sh.C), sh.offset);
            if (tiny) continue;
            if (sh.S >= 35 && sh.N * sh.C * sh.S <= (1 << 20)) determinism(c);
            if (sh.N >= 2 && sh.G >= 2 && mode != 1) nonfinite(c);
          }
      }
    ++g_checks;
    if (!refused_before_launch()) {
      ++g_fail;
      std::printf("FAIL C %% G != 0 was not refused with std::invalid_argument\n");
    }
  } catch (const std::exception& e) {
    std::printf("FAIL exception: %s\n", e.what());
    return 1;
  }
  std::printf("plans exercised (forward | backward):\n");
  for (const std::string& p : g_plans) std::printf("  %s\n", p.c_str());
  std::printf("gnv_cuda_selftest: %d checks, %d failed%s\n", g_checks, g_fail, tiny ? " (tiny)" : quick ? " (quick)" : "");
  return g_fail ? 1 : 0;
}
