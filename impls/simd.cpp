// `simd`: GroupNorm with Google Highway vectors and std::thread, forward and backward, both
// layouts, f64/f32/f16/bf16 storage (f32 accumulation for the 16-bit types, f64 for f64).
//
// Reduction: the combine rule of gnv/welford.h (Chan et al.), the one `welford` uses. Each lane
// of a vector owns a stream of elements; 32 of them form a chunk whose state is computed in two
// passes over L1-resident data (mean = sum / count, then m2 = sum of squared deviations from it),
// chunk states are combined in a binary-counter (pairwise) tree, lanes in a pairwise tree, and
// block states in a balanced tree over block indices. Every combine is Welford::combine's
// arithmetic, so errors grow with log2(m) as in `welford`.
//
// Dispatch: foreach_target.h compiles the per-target section below once per x86 target;
// HWY_EXPORT / HWY_DYNAMIC_DISPATCH pick one table of kernels per storage type at run time.
// Tails: a contiguous run's remainder that does not fill a vector (< Lanes elements) and the
// columns of a channels-last row that do not fill a vector are done by scalar code with exactly
// the same operation sequence as a lane (no FMA anywhere: Mul then Add, -ffp-contract=off), so
// a channels-last result does not depend on where a channel falls in a vector. Masked tails
// would be the alternative; scalar ones are simpler and only the tails pay for them.
//
// Threads: the work is cut into items that depend only on the problem (groups, fixed 1024-
// element blocks of a channels-first group, fixed 256-row blocks of a channels-last sample),
// whose partial states are combined in a fixed tree. Threads only choose which item runs where,
// so results are bitwise the same for any thread count (gnv::cpu_threads(): set_cpu_threads,
// GNV_THREADS, hardware_concurrency). They do depend on the dispatched target's vector width
// for channels-first statistics (lane interleaving), i.e. on the CPU, like any SIMD reduction.
//
// Fallback: a group whose statistics come out non-finite (a NaN or Inf in x, or an overflow of
// the chunk sums), underflow (var + eps below the smallest normal), are those of a group that may
// be constant (sqrt(var) < 128·u·|mean|), or whose gamma * xhat could
// overflow, is recomputed by the shared scalar path cpu::forward_group with `welford`'s policy,
// so the non-finite policy and the overflow/underflow rescue are exactly `welford`'s. In
// backward the same holds per group (cpu::backward_group) when anything is non-finite or the
// magnitudes leave a conservative range in which plain f32 arithmetic can neither overflow nor
// lose bits to underflow, and per channel for dgamma/dbeta (cpu::backward_channel).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "impls/simd.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <cmath>
#include <cstdint>
#include <limits>
#include <thread>
#include <vector>

#include "gnv/threads.h"
#include "gnv/welford.h"
#include "kernel_common.h"

#ifndef GNV_SIMD_KERNELS_DEFINED_ONCE
#define GNV_SIMD_KERNELS_DEFINED_ONCE
namespace gnv::simd {
// The per-target kernels for one storage type T, accumulating in A = acc_of<T>.
template <class T> struct Kernels {
  using A = cpu::acc_of<T>;
  // Welford state and max|x| of p[0, len).
  void (*stats_contig)(const T* p, int64_t len, Welford<A>* w, A* amax);
  // y = gamma * ((x - mean) * rstd) + beta over a contiguous run.
  void (*norm_contig)(const T* x, T* y, int64_t len, A mean, A rstd, A gamma, A beta);
  // Per column j < width over `rows` rows of stride `stride`: mean[j], m2[j] (count rows), amax[j].
  void (*stats_cols)(const T* x, int64_t rows, int64_t stride, int64_t width, A* mean, A* m2, A* amax);
  void (*norm_cols)(const T* x, T* y, int64_t rows, int64_t stride, int64_t width, const A* mean,
                    const A* rstd, const A* gamma, const A* beta);
  // sum dy, sum dy * xhat, max|x|, max|dy| over a contiguous run.
  void (*sums_contig)(const T* x, const T* dy, int64_t len, A mu, A r, A* sdy, A* sdyx, A* ax, A* ad);
  // dx = r * ((gamma * dy - mg) - xhat * mgx) over a contiguous run.
  void (*dx_contig)(const T* x, const T* dy, T* dx, int64_t len, A mu, A r, A gamma, A mg, A mgx);
  void (*sums_cols)(const T* x, const T* dy, int64_t rows, int64_t stride, int64_t width, const A* mu,
                    const A* r, A* sdy, A* sdyx, A* ax, A* ad);
  void (*dx_cols)(const T* x, const T* dy, T* dx, int64_t rows, int64_t stride, int64_t width,
                  const A* mu, const A* r, const A* gamma, const A* mg, const A* mgx);
};
}  // namespace gnv::simd
#endif

HWY_BEFORE_NAMESPACE();
namespace gnv::simd {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr int64_t kChunk = 32;  // elements per lane in one chunk, as welford_chunked's chunk

template <class D> HWY_INLINE hn::Vec<D> LoadA(D d, const float* p) { return hn::LoadU(d, p); }
template <class D> HWY_INLINE hn::Vec<D> LoadA(D d, const double* p) { return hn::LoadU(d, p); }
template <class D> HWY_INLINE hn::Vec<D> LoadA(D d, const Eigen::bfloat16* p) {
  // bf16 is the top half of an f32: widening is a shift, exact for every value.
  const hn::RebindToUnsigned<D> du;
  const hn::Rebind<uint16_t, D> d16;
  return hn::BitCast(d, hn::ShiftLeft<16>(hn::PromoteTo(du, hn::LoadU(d16, reinterpret_cast<const uint16_t*>(p)))));
}
template <class D> HWY_INLINE hn::Vec<D> LoadA(D d, const Eigen::half* p) {
  const hn::Rebind<hwy::float16_t, D> dh;
  return hn::PromoteTo(d, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(p)));
}

template <class D> HWY_INLINE void StoreA(D d, hn::Vec<D> v, float* p) { hn::StoreU(v, d, p); }
template <class D> HWY_INLINE void StoreA(D d, hn::Vec<D> v, double* p) { hn::StoreU(v, d, p); }
template <class D> HWY_INLINE void StoreA(D /*d*/, hn::Vec<D> v, Eigen::bfloat16* p) {
  // Round to nearest even in integer arithmetic (Highway 1.0's DemoteTo to bf16 truncates), NaN
  // to Eigen's canonical quiet NaN with the sign kept: the same bits as cpu::store.
  const hn::RebindToUnsigned<D> du;
  const hn::RebindToSigned<D> di;
  const hn::Rebind<uint16_t, D> d16;
  const auto u = hn::BitCast(du, v);
  const auto hi = hn::ShiftRight<16>(u);
  auto r = hn::ShiftRight<16>(hn::Add(u, hn::Add(hn::Set(du, 0x7FFFu), hn::And(hi, hn::Set(du, 1u)))));
  const auto qnan = hn::Or(hn::And(hi, hn::Set(du, 0x8000u)), hn::Set(du, 0x7FC0u));
  r = hn::IfThenElse(hn::RebindMask(du, hn::IsNaN(v)), qnan, r);
  hn::StoreU(hn::DemoteTo(d16, hn::BitCast(di, r)), d16, reinterpret_cast<uint16_t*>(p));
}
template <class D> HWY_INLINE void StoreA(D d, hn::Vec<D> v, Eigen::half* p) {
  // Through Eigen, one element at a time: its float -> half is round-to-nearest-even on every
  // target, which Highway 1.0's emulated DemoteTo does not promise. f16 is not a speed target.
  alignas(64) float tmp[64];
  hn::Store(v, d, tmp);
  for (size_t i = 0; i < hn::Lanes(d); ++i) p[i] = Eigen::half(tmp[i]);
}

// Vector Welford states with the same count in every lane.
template <class D> struct VW {
  hn::Vec<D> mean, m2;
  int64_t n;
};
template <class D> HWY_INLINE VW<D> CombineV(D d, const VW<D>& a, const VW<D>& b) {
  using A = hn::TFromD<D>;
  if (a.n == 0) return b;
  if (b.n == 0) return a;
  const int64_t nn = a.n + b.n;
  const A n = static_cast<A>(nn);
  const A wb = static_cast<A>(b.n) / n;
  const A wab = static_cast<A>(a.n) * wb;
  const auto delta = hn::Sub(b.mean, a.mean);
  return {hn::Add(a.mean, hn::Mul(delta, hn::Set(d, wb))),
          hn::Add(hn::Add(a.m2, b.m2), hn::Mul(hn::Mul(delta, delta), hn::Set(d, wab))), nn};
}

// Two-pass state of k vectors at p, p + step, ..., with four independent accumulators (k <= 32).
// The loops advance a pointer rather than computing i * step, so no index product can overflow.
template <class D, class T>
HWY_INLINE VW<D> ChunkV(D d, const T* p, int64_t step, int64_t k, hn::Vec<D>& vmax) {
  using A = hn::TFromD<D>;
  auto s0 = hn::Zero(d), s1 = hn::Zero(d), s2 = hn::Zero(d), s3 = hn::Zero(d);
  const T* q = p;
  int64_t i = 0;
  for (; i + 4 <= k; i += 4, q += 4 * step) {
    const auto v0 = LoadA(d, q), v1 = LoadA(d, q + step);
    const auto v2 = LoadA(d, q + 2 * step), v3 = LoadA(d, q + 3 * step);
    s0 = hn::Add(s0, v0);
    s1 = hn::Add(s1, v1);
    s2 = hn::Add(s2, v2);
    s3 = hn::Add(s3, v3);
    vmax = hn::Max(vmax, hn::Max(hn::Max(hn::Abs(v0), hn::Abs(v1)), hn::Max(hn::Abs(v2), hn::Abs(v3))));
  }
  for (; i < k; ++i, q += step) {
    const auto v = LoadA(d, q);
    s0 = hn::Add(s0, v);
    vmax = hn::Max(vmax, hn::Abs(v));
  }
  const auto mean = hn::Div(hn::Add(hn::Add(s0, s1), hn::Add(s2, s3)), hn::Set(d, static_cast<A>(k)));
  auto q0 = hn::Zero(d), q1 = hn::Zero(d), q2 = hn::Zero(d), q3 = hn::Zero(d);
  q = p;
  i = 0;
  for (; i + 4 <= k; i += 4, q += 4 * step) {
    const auto e0 = hn::Sub(LoadA(d, q), mean), e1 = hn::Sub(LoadA(d, q + step), mean);
    const auto e2 = hn::Sub(LoadA(d, q + 2 * step), mean), e3 = hn::Sub(LoadA(d, q + 3 * step), mean);
    q0 = hn::Add(q0, hn::Mul(e0, e0));
    q1 = hn::Add(q1, hn::Mul(e1, e1));
    q2 = hn::Add(q2, hn::Mul(e2, e2));
    q3 = hn::Add(q3, hn::Mul(e3, e3));
  }
  for (; i < k; ++i, q += step) {
    const auto e = hn::Sub(LoadA(d, q), mean);
    q0 = hn::Add(q0, hn::Mul(e, e));
  }
  return {mean, hn::Add(hn::Add(q0, q1), hn::Add(q2, q3)), k};
}

// The same arithmetic for one scalar column (channels-last column tails).
template <class A, class T>
Welford<A> ChunkS(const T* p, int64_t step, int64_t k, A& amax) {
  A s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  const T* q = p;
  int64_t i = 0;
  for (; i + 4 <= k; i += 4, q += 4 * step) {
    const A v0 = cpu::load<A>(q[0]), v1 = cpu::load<A>(q[step]);
    const A v2 = cpu::load<A>(q[2 * step]), v3 = cpu::load<A>(q[3 * step]);
    s0 += v0;
    s1 += v1;
    s2 += v2;
    s3 += v3;
    amax = std::max({amax, std::abs(v0), std::abs(v1), std::abs(v2), std::abs(v3)});
  }
  for (; i < k; ++i, q += step) {
    const A v = cpu::load<A>(*q);
    s0 += v;
    amax = std::max(amax, std::abs(v));
  }
  const A mean = ((s0 + s1) + (s2 + s3)) / static_cast<A>(k);
  A q0 = 0, q1 = 0, q2 = 0, q3 = 0;
  q = p;
  i = 0;
  for (; i + 4 <= k; i += 4, q += 4 * step) {
    const A e0 = cpu::load<A>(q[0]) - mean, e1 = cpu::load<A>(q[step]) - mean;
    const A e2 = cpu::load<A>(q[2 * step]) - mean, e3 = cpu::load<A>(q[3 * step]) - mean;
    q0 += e0 * e0;
    q1 += e1 * e1;
    q2 += e2 * e2;
    q3 += e3 * e3;
  }
  for (; i < k; ++i, q += step) {
    const A e = cpu::load<A>(*q) - mean;
    q0 += e * e;
  }
  Welford<A> w;
  w.mean = mean;
  w.m2 = (q0 + q1) + (q2 + q3);
  w.n = k;
  return w;
}

// Lanes of v combined in a pairwise tree (all lanes have count n): lane i of one level is the
// combine of lanes 2i and 2i+1 of the level below, done on whole vectors (even lanes against odd
// lanes) with CombineV, whose arithmetic is Welford::combine's, so the result is the scalar
// tree's to the bit; it costs log2(Lanes) vector combines instead of Lanes - 1 scalar ones, each
// with a division (11% of a cache-resident forward when it was scalar).
template <class D> Welford<hn::TFromD<D>> ReduceLanes([[maybe_unused]] D d, VW<D> v) {
#if HWY_TARGET != HWY_SCALAR
  for (size_t L = hn::Lanes(d); L > 1; L /= 2) {
    const VW<D> even{hn::ConcatEven(d, v.mean, v.mean), hn::ConcatEven(d, v.m2, v.m2), v.n};
    const VW<D> odd{hn::ConcatOdd(d, v.mean, v.mean), hn::ConcatOdd(d, v.m2, v.m2), v.n};
    v = CombineV(d, even, odd);
  }
#endif
  Welford<hn::TFromD<D>> w;
  w.mean = hn::GetLane(v.mean);
  w.m2 = hn::GetLane(v.m2);
  w.n = v.n;
  return w;
}

// A binary-counter stack of vector states: a new state merges with the top while their counts
// are equal, so the chunks of a run are combined in a pairwise tree that only depends on how
// many there are.
template <class D> struct VStack {
  using A = hn::TFromD<D>;
  static constexpr int kLevels = 48;
  D d;
  alignas(64) A mean[kLevels][64];
  alignas(64) A m2[kLevels][64];
  int64_t n[kLevels];
  int top = 0;
  // Levels are written before they are read (push), so they are left uninitialized: zeroing
  // them would cost more than a 1024-element block's statistics.
  explicit VStack(D dd) : d(dd) {}
  VW<D> get(int i) const { return {hn::Load(d, mean[i]), hn::Load(d, m2[i]), n[i]}; }
  void put(int i, const VW<D>& v) {
    hn::Store(v.mean, d, mean[i]);
    hn::Store(v.m2, d, m2[i]);
    n[i] = v.n;
  }
  void push(VW<D> v) {
    while (top > 0 && n[top - 1] == v.n) v = CombineV(d, get(--top), v);
    put(top++, v);
  }
  VW<D> finish() const {
    if (top == 0) return {hn::Zero(d), hn::Zero(d), 0};
    VW<D> acc = get(top - 1);
    for (int i = top - 2; i >= 0; --i) acc = CombineV(d, get(i), acc);
    return acc;
  }
};

template <class T> using AccT = cpu::acc_of<T>;

template <class T> void StatsContig(const T* p, int64_t len, Welford<AccT<T>>* out, AccT<T>* amax) {
  using A = AccT<T>;
  using D = hn::ScalableTag<A>;
  const D d;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  const int64_t per = kChunk * L;
  // Lane l of chunk c holds p[c * 32 L + i * L + l], i < 32: consecutive loads, no shuffles.
  auto vmax = hn::Zero(d);
  VStack<D> st{d};
  const int64_t nch = len / per;
  for (int64_t c = 0; c < nch; ++c) st.push(ChunkV(d, p + c * per, L, kChunk, vmax));
  int64_t off = nch * per;
  VW<D> acc = st.finish();
  if (const int64_t kv = (len - off) / L; kv > 0) {
    acc = CombineV(d, acc, ChunkV(d, p + off, L, kv, vmax));
    off += kv * L;
  }
  const Welford<A> w = acc.n > 0 ? ReduceLanes(d, acc) : Welford<A>{};
  A m = hn::GetLane(hn::MaxOfLanes(d, vmax));
  Welford<A> t;  // scalar tail, < Lanes elements
  for (int64_t i = off; i < len; ++i) {
    const A v = cpu::load<A>(p[i]);
    t.add(v);
    m = std::max(m, std::abs(v));
  }
  *out = Welford<A>::combine(w, t);
  *amax = m;
}

template <class T>
void NormContig(const T* x, T* y, int64_t len, AccT<T> mean, AccT<T> rstd, AccT<T> gamma, AccT<T> beta) {
  using A = AccT<T>;
  const hn::ScalableTag<A> d;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  const auto vm = hn::Set(d, mean), vr = hn::Set(d, rstd), vg = hn::Set(d, gamma), vb = hn::Set(d, beta);
  int64_t i = 0;
  for (; i + L <= len; i += L) {
    const auto xhat = hn::Mul(hn::Sub(LoadA(d, x + i), vm), vr);
    StoreA(d, hn::Add(hn::Mul(vg, xhat), vb), y + i);
  }
  for (; i < len; ++i) {
    const A xhat = (cpu::load<A>(x[i]) - mean) * rstd;
    y[i] = cpu::store<T>(gamma * xhat + beta);
  }
}

// Column-wise (channels-last) state arrays for a binary counter over row chunks.
template <class A> struct ColLevels {
  int64_t width;
  std::vector<A> a, b;
  std::vector<int64_t> n;
  int top = 0;
  ColLevels(int64_t w, int64_t rows) : width(w) {
    int lv = 2;
    for (int64_t c = (rows + kChunk - 1) / kChunk; c > 1; c /= 2) ++lv;
    a.resize(static_cast<size_t>(lv * w));
    b.resize(static_cast<size_t>(lv * w));
    n.resize(static_cast<size_t>(lv));
  }
  A* pa(int i) { return a.data() + i * width; }
  A* pb(int i) { return b.data() + i * width; }
};

template <class T>
void StatsCols(const T* x, int64_t rows, int64_t stride, int64_t width, AccT<T>* mean, AccT<T>* m2, AccT<T>* amax) {
  using A = AccT<T>;
  using D = hn::ScalableTag<A>;
  const D d;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  ColLevels<A> lv(width, rows);
  std::fill(amax, amax + width, A(0));
  // Merges level i+1 into level i, column by column, with Welford::combine's arithmetic.
  auto merge = [&](int i) {
    const int64_t na = lv.n[i], nb = lv.n[i + 1];
    A *am = lv.pa(i), *a2 = lv.pb(i), *bm = lv.pa(i + 1), *b2 = lv.pb(i + 1);
    int64_t j = 0;
    for (; j + L <= width; j += L) {
      const VW<D> r = CombineV(d, VW<D>{hn::LoadU(d, am + j), hn::LoadU(d, a2 + j), na},
                               VW<D>{hn::LoadU(d, bm + j), hn::LoadU(d, b2 + j), nb});
      hn::StoreU(r.mean, d, am + j);
      hn::StoreU(r.m2, d, a2 + j);
    }
    for (; j < width; ++j) {
      Welford<A> wa, wb;
      wa.mean = am[j], wa.m2 = a2[j], wa.n = na;
      wb.mean = bm[j], wb.m2 = b2[j], wb.n = nb;
      const Welford<A> r = Welford<A>::combine(wa, wb);
      am[j] = r.mean;
      a2[j] = r.m2;
    }
    lv.n[i] = na + nb;
  };
  for (int64_t r0 = 0; r0 < rows; r0 += kChunk) {
    const int64_t k = std::min(kChunk, rows - r0);
    const T* base = x + r0 * stride;
    const int slot = lv.top++;
    A *sm = lv.pa(slot), *s2 = lv.pb(slot);
    int64_t j = 0;
    for (; j + L <= width; j += L) {
      auto vmax = hn::LoadU(d, amax + j);
      const VW<D> v = ChunkV(d, base + j, stride, k, vmax);
      hn::StoreU(vmax, d, amax + j);
      hn::StoreU(v.mean, d, sm + j);
      hn::StoreU(v.m2, d, s2 + j);
    }
    for (; j < width; ++j) {
      const Welford<A> w = ChunkS<A>(base + j, stride, k, amax[j]);
      sm[j] = w.mean;
      s2[j] = w.m2;
    }
    lv.n[slot] = k;
    while (lv.top >= 2 && lv.n[lv.top - 2] == lv.n[lv.top - 1]) merge(--lv.top - 1);
  }
  for (int i = lv.top - 2; i >= 0; --i) merge(i);
  if (lv.top > 0) {
    std::copy(lv.pa(0), lv.pa(0) + width, mean);
    std::copy(lv.pb(0), lv.pb(0) + width, m2);
  }
}

template <class T>
void NormCols(const T* x, T* y, int64_t rows, int64_t stride, int64_t width, const AccT<T>* mean,
              const AccT<T>* rstd, const AccT<T>* gamma, const AccT<T>* beta) {
  using A = AccT<T>;
  const hn::ScalableTag<A> d;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * stride;
    T* yr = y + r * stride;
    int64_t j = 0;
    for (; j + L <= width; j += L) {
      const auto xhat = hn::Mul(hn::Sub(LoadA(d, xr + j), hn::LoadU(d, mean + j)), hn::LoadU(d, rstd + j));
      StoreA(d, hn::Add(hn::Mul(hn::LoadU(d, gamma + j), xhat), hn::LoadU(d, beta + j)), yr + j);
    }
    for (; j < width; ++j) {
      const A xhat = (cpu::load<A>(xr[j]) - mean[j]) * rstd[j];
      yr[j] = cpu::store<T>(gamma[j] * xhat + beta[j]);
    }
  }
}

// ---- backward ---------------------------------------------------------------------------------

// Sums of k vectors (k <= 32) of dy and dy * xhat, four accumulators each.
template <class D, class T>
HWY_INLINE void SumChunkV(D d, const T* x, const T* dy, int64_t step, int64_t k, hn::Vec<D> mu, hn::Vec<D> r,
                          hn::Vec<D>& sd, hn::Vec<D>& sx, hn::Vec<D>& mx, hn::Vec<D>& md) {
  hn::Vec<D> a[4] = {hn::Zero(d), hn::Zero(d), hn::Zero(d), hn::Zero(d)};
  hn::Vec<D> b[4] = {hn::Zero(d), hn::Zero(d), hn::Zero(d), hn::Zero(d)};
  for (int64_t i = 0; i < k; ++i, x += step, dy += step) {
    const auto xv = LoadA(d, x), g = LoadA(d, dy);
    const auto xhat = hn::Mul(hn::Sub(xv, mu), r);
    a[i & 3] = hn::Add(a[i & 3], g);
    b[i & 3] = hn::Add(b[i & 3], hn::Mul(g, xhat));
    mx = hn::Max(mx, hn::Abs(xv));
    md = hn::Max(md, hn::Abs(g));
  }
  sd = hn::Add(hn::Add(a[0], a[1]), hn::Add(a[2], a[3]));
  sx = hn::Add(hn::Add(b[0], b[1]), hn::Add(b[2], b[3]));
}

template <class A, class T>
HWY_INLINE void SumChunkS(const T* x, const T* dy, int64_t step, int64_t k, A mu, A r, A& sd, A& sx, A& mx, A& md) {
  A a[4] = {0, 0, 0, 0}, b[4] = {0, 0, 0, 0};
  for (int64_t i = 0; i < k; ++i, x += step, dy += step) {
    const A xv = cpu::load<A>(*x), g = cpu::load<A>(*dy);
    const A xhat = (xv - mu) * r;
    a[i & 3] += g;
    b[i & 3] += g * xhat;
    mx = std::max(mx, std::abs(xv));
    md = std::max(md, std::abs(g));
  }
  sd = (a[0] + a[1]) + (a[2] + a[3]);
  sx = (b[0] + b[1]) + (b[2] + b[3]);
}

// A binary-counter stack of vector sum pairs (pairwise summation over chunks).
template <class D> struct SumStack {
  using A = hn::TFromD<D>;
  static constexpr int kLevels = 48;
  D d;
  alignas(64) A s[kLevels][64];
  alignas(64) A t[kLevels][64];
  int64_t n[kLevels];
  int top = 0;
  explicit SumStack(D dd) : d(dd) {}  // levels are written before they are read
  void push(hn::Vec<D> a, hn::Vec<D> b, int64_t k) {
    while (top > 0 && n[top - 1] == k) {
      --top;
      a = hn::Add(hn::Load(d, s[top]), a);
      b = hn::Add(hn::Load(d, t[top]), b);
      k += n[top];
    }
    hn::Store(a, d, s[top]);
    hn::Store(b, d, t[top]);
    n[top++] = k;
  }
  void finish(hn::Vec<D>& a, hn::Vec<D>& b) const {
    a = hn::Zero(d);
    b = hn::Zero(d);
    if (top == 0) return;
    a = hn::Load(d, s[top - 1]);
    b = hn::Load(d, t[top - 1]);
    for (int i = top - 2; i >= 0; --i) {
      a = hn::Add(hn::Load(d, s[i]), a);
      b = hn::Add(hn::Load(d, t[i]), b);
    }
  }
};

template <class D> hn::TFromD<D> PairwiseLanes(D d, hn::Vec<D> v) {
  using A = hn::TFromD<D>;
  alignas(64) A a[64];
  hn::Store(v, d, a);
  for (size_t L = hn::Lanes(d); L > 1; L /= 2)
    for (size_t i = 0; i < L / 2; ++i) a[i] = a[2 * i] + a[2 * i + 1];
  return a[0];
}

template <class T>
void SumsContig(const T* x, const T* dy, int64_t len, AccT<T> mu, AccT<T> r, AccT<T>* sdy, AccT<T>* sdyx,
                AccT<T>* ax, AccT<T>* ad) {
  using A = AccT<T>;
  using D = hn::ScalableTag<A>;
  const D d;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  const int64_t per = kChunk * L;
  const auto vmu = hn::Set(d, mu), vr = hn::Set(d, r);
  auto mx = hn::Zero(d), md = hn::Zero(d);
  SumStack<D> st{d};
  const int64_t nch = len / per;
  for (int64_t c = 0; c < nch; ++c) {
    hn::Vec<D> a = hn::Zero(d), b = hn::Zero(d);
    SumChunkV(d, x + c * per, dy + c * per, L, kChunk, vmu, vr, a, b, mx, md);
    st.push(a, b, kChunk);
  }
  int64_t off = nch * per;
  hn::Vec<D> a = hn::Zero(d), b = hn::Zero(d);
  st.finish(a, b);
  if (const int64_t kv = (len - off) / L; kv > 0) {
    hn::Vec<D> pa = hn::Zero(d), pb = hn::Zero(d);
    SumChunkV(d, x + off, dy + off, L, kv, vmu, vr, pa, pb, mx, md);
    a = hn::Add(a, pa);
    b = hn::Add(b, pb);
    off += kv * L;
  }
  A s1 = PairwiseLanes(d, a), s2 = PairwiseLanes(d, b);
  A m1 = hn::GetLane(hn::MaxOfLanes(d, mx)), m2 = hn::GetLane(hn::MaxOfLanes(d, md));
  if (off < len) {
    A t1 = 0, t2 = 0;
    SumChunkS<A>(x + off, dy + off, 1, len - off, mu, r, t1, t2, m1, m2);
    s1 += t1;
    s2 += t2;
  }
  *sdy = s1;
  *sdyx = s2;
  *ax = m1;
  *ad = m2;
}

template <class T>
void DxContig(const T* x, const T* dy, T* dx, int64_t len, AccT<T> mu, AccT<T> r, AccT<T> gamma, AccT<T> mg,
              AccT<T> mgx) {
  using A = AccT<T>;
  const hn::ScalableTag<A> d;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  const auto vmu = hn::Set(d, mu), vr = hn::Set(d, r), vg = hn::Set(d, gamma), vmg = hn::Set(d, mg),
             vmgx = hn::Set(d, mgx);
  int64_t i = 0;
  for (; i + L <= len; i += L) {
    const auto xhat = hn::Mul(hn::Sub(LoadA(d, x + i), vmu), vr);
    const auto g = hn::Mul(vg, LoadA(d, dy + i));
    StoreA(d, hn::Mul(vr, hn::Sub(hn::Sub(g, vmg), hn::Mul(xhat, vmgx))), dx + i);
  }
  for (; i < len; ++i) {
    const A xhat = (cpu::load<A>(x[i]) - mu) * r;
    const A g = gamma * cpu::load<A>(dy[i]);
    dx[i] = cpu::store<T>(r * ((g - mg) - xhat * mgx));
  }
}

template <class T>
void SumsCols(const T* x, const T* dy, int64_t rows, int64_t stride, int64_t width, const AccT<T>* mu,
              const AccT<T>* r, AccT<T>* sdy, AccT<T>* sdyx, AccT<T>* ax, AccT<T>* ad) {
  using A = AccT<T>;
  using D = hn::ScalableTag<A>;
  const D d;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  ColLevels<A> lv(width, rows);
  std::fill(ax, ax + width, A(0));
  std::fill(ad, ad + width, A(0));
  auto merge = [&](int i) {
    A *a1 = lv.pa(i), *b1 = lv.pb(i), *a2 = lv.pa(i + 1), *b2 = lv.pb(i + 1);
    int64_t j = 0;
    for (; j + L <= width; j += L) {
      hn::StoreU(hn::Add(hn::LoadU(d, a1 + j), hn::LoadU(d, a2 + j)), d, a1 + j);
      hn::StoreU(hn::Add(hn::LoadU(d, b1 + j), hn::LoadU(d, b2 + j)), d, b1 + j);
    }
    for (; j < width; ++j) {
      a1[j] = a1[j] + a2[j];
      b1[j] = b1[j] + b2[j];
    }
    lv.n[i] += lv.n[i + 1];
  };
  for (int64_t r0 = 0; r0 < rows; r0 += kChunk) {
    const int64_t k = std::min(kChunk, rows - r0);
    const int slot = lv.top++;
    A *sa = lv.pa(slot), *sb = lv.pb(slot);
    int64_t j = 0;
    for (; j + L <= width; j += L) {
      hn::Vec<D> va = hn::Zero(d), vb = hn::Zero(d);
      auto mx = hn::LoadU(d, ax + j), md = hn::LoadU(d, ad + j);
      SumChunkV(d, x + r0 * stride + j, dy + r0 * stride + j, stride, k, hn::LoadU(d, mu + j), hn::LoadU(d, r + j),
                va, vb, mx, md);
      hn::StoreU(va, d, sa + j);
      hn::StoreU(vb, d, sb + j);
      hn::StoreU(mx, d, ax + j);
      hn::StoreU(md, d, ad + j);
    }
    for (; j < width; ++j)
      SumChunkS<A>(x + r0 * stride + j, dy + r0 * stride + j, stride, k, mu[j], r[j], sa[j], sb[j], ax[j], ad[j]);
    lv.n[slot] = k;
    while (lv.top >= 2 && lv.n[lv.top - 2] == lv.n[lv.top - 1]) merge(--lv.top - 1);
  }
  for (int i = lv.top - 2; i >= 0; --i) merge(i);
  if (lv.top > 0) {
    std::copy(lv.pa(0), lv.pa(0) + width, sdy);
    std::copy(lv.pb(0), lv.pb(0) + width, sdyx);
  }
}

template <class T>
void DxCols(const T* x, const T* dy, T* dx, int64_t rows, int64_t stride, int64_t width, const AccT<T>* mu,
            const AccT<T>* r, const AccT<T>* gamma, const AccT<T>* mg, const AccT<T>* mgx) {
  using A = AccT<T>;
  const hn::ScalableTag<A> d;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  for (int64_t row = 0; row < rows; ++row) {
    const T* xr = x + row * stride;
    const T* dr = dy + row * stride;
    T* o = dx + row * stride;
    int64_t j = 0;
    for (; j + L <= width; j += L) {
      const auto vr = hn::LoadU(d, r + j);
      const auto xhat = hn::Mul(hn::Sub(LoadA(d, xr + j), hn::LoadU(d, mu + j)), vr);
      const auto g = hn::Mul(hn::LoadU(d, gamma + j), LoadA(d, dr + j));
      StoreA(d, hn::Mul(vr, hn::Sub(hn::Sub(g, hn::LoadU(d, mg + j)), hn::Mul(xhat, hn::LoadU(d, mgx + j)))), o + j);
    }
    for (; j < width; ++j) {
      const A xhat = (cpu::load<A>(xr[j]) - mu[j]) * r[j];
      const A g = gamma[j] * cpu::load<A>(dr[j]);
      o[j] = cpu::store<T>(r[j] * ((g - mg[j]) - xhat * mgx[j]));
    }
  }
}

template <class T> const Kernels<T>* Table() {
  static const Kernels<T> k{&StatsContig<T>, &NormContig<T>, &StatsCols<T>, &NormCols<T>,
                            &SumsContig<T>,  &DxContig<T>,   &SumsCols<T>,  &DxCols<T>};
  return &k;
}
const Kernels<double>* TableF64() { return Table<double>(); }
const Kernels<float>* TableF32() { return Table<float>(); }
const Kernels<Eigen::half>* TableF16() { return Table<Eigen::half>(); }
const Kernels<Eigen::bfloat16>* TableBF16() { return Table<Eigen::bfloat16>(); }

}  // namespace HWY_NAMESPACE
}  // namespace gnv::simd
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "welford_policy.h"

namespace gnv::simd {

HWY_EXPORT(TableF64);
HWY_EXPORT(TableF32);
HWY_EXPORT(TableF16);
HWY_EXPORT(TableBF16);

namespace {

template <class T> const Kernels<T>* kernels() {
  if constexpr (std::is_same_v<T, double>) return HWY_DYNAMIC_DISPATCH(TableF64)();
  else if constexpr (std::is_same_v<T, float>) return HWY_DYNAMIC_DISPATCH(TableF32)();
  else if constexpr (std::is_same_v<T, Eigen::half>) return HWY_DYNAMIC_DISPATCH(TableF16)();
  else return HWY_DYNAMIC_DISPATCH(TableBF16)();
}

using Policy = cpu::WelfordPolicy;
constexpr int64_t kBlock = 1024;     // elements per channels-first statistics block
constexpr int64_t kRowBlock = 256;   // rows (spatial positions) per channels-last block
constexpr int64_t kSerialBelow = 1 << 14;  // elements: below this one thread does it all
constexpr int64_t kBatchBytes = 1 << 20;   // channels-last: samples per stats+normalize batch

// Runs f(i) for i < n on up to cpu_threads() threads. Which thread runs an item never matters:
// items write disjoint outputs and every combine happens afterwards in a fixed order.
template <class F> void parallel_for(int64_t n, int64_t numel, F&& f) {
  int64_t t = std::min<int64_t>(cpu_threads(), n);
  if (numel < kSerialBelow) t = 1;
  if (t <= 1) {
    for (int64_t i = 0; i < n; ++i) f(i);
    return;
  }
  ThreadPool::instance().run(static_cast<int>(t), n, std::function<void(int64_t)>(std::ref(f)));
}

// Channels-last: samples [n0, n1) of a per-(n, g) array spread to per-(n, c), so the row kernels
// can index statistics and group terms by channel.
template <class A>
void per_channel(const A* by_group, A* by_channel, int64_t n0, int64_t n1, int64_t C, int64_t G, int64_t cpg) {
  for (int64_t n = n0; n < n1; ++n)
    for (int64_t c = 0; c < C; ++c) by_channel[n * C + c] = by_group[n * G + c / cpg];
}

// Channels-last: how many samples go in one batch of about kBatchBytes (at least one).
inline int64_t samples_per_batch(int64_t S, int64_t C, size_t elem_bytes) {
  return std::max<int64_t>(1, kBatchBytes / std::max<int64_t>(1, S * C * static_cast<int64_t>(elem_bytes)));
}

// Balanced tree over [lo, hi), as detail::welford_chunks does over chunk indices.
template <class A> Welford<A> tree(const Welford<A>* w, int64_t lo, int64_t hi) {
  if (hi - lo == 1) return w[lo];
  const int64_t mid = lo + (hi - lo) / 2;
  return Welford<A>::combine(tree(w, lo, mid), tree(w, mid, hi));
}


// Statistics of one group from its combined state, or false when the group belongs to the
// scalar path (see the file comment).
template <class A> struct GroupStats {
  A mean, rstd;
  bool fast;
};
template <class A> GroupStats<A> finish(const Welford<A>& w, A amax, A eps, A gmax) {
  const A mean = w.mean, var = w.variance();
  const A rstd = A(1) / std::sqrt(var + eps);
  bool fast = std::isfinite(mean) && std::isfinite(var + eps) && std::isfinite(amax);
  fast = fast && !(amax > 0 && !(var + eps >= std::numeric_limits<A>::min()));
  // A chunk's mean is sum/len, rounded, so a constant group can come back with a spurious variance
  // of up to about (64·u·|mean|)² (then rstd is finite where eps = 0 wants +Inf; fuzzing found
  // it: repro-simd-constant-group-spurious-variance). Welford's update keeps a constant group's
  // variance exactly 0, so groups this close to constant (u·κ near the ill-posed limit anyway)
  // go to its scalar path.
  // (sqrt and the power-of-two factor keep the test exact under x -> 2^k·x, as ScaleInvariance
  // asks, wherever nothing is subnormal.)
  fast = fast && !(std::sqrt(var) < A(128) * (std::numeric_limits<A>::epsilon() / 2) * std::abs(mean));
  // |gamma * xhat| <= gmax * (amax + |mean|) * rstd; beyond half the range `welford` switches to
  // an FMA for the affine step, so the group goes there.
  fast = fast && gmax * ((amax + std::abs(mean)) * rstd) <= std::numeric_limits<A>::max() / 4;
  return {mean, rstd, fast};
}

template <class T> void forward_impl(const ForwardArgs& a) {
  using A = cpu::acc_of<T>;
  const Problem& p = a.p;
  const Kernels<T>& K = *kernels<T>();
  const int64_t N = p.N, C = p.C, G = p.G, S = p.S(), cpg = p.channels_per_group(), m = p.group_size();
  const int64_t NG = N * G, numel = p.numel();
  const T* x = a.x.data<T>();
  T* y = a.y.data<T>();
  A* mean_out = a.mean.data<A>();
  A* rstd_out = a.rstd.data<A>();
  const T* gamma = p.affine && a.gamma ? a.gamma->data<T>() : nullptr;
  const T* beta = p.affine && a.beta ? a.beta->data<T>() : nullptr;
  const A eps = static_cast<A>(p.eps);
  std::vector<A> gam(static_cast<size_t>(C)), bet(static_cast<size_t>(C)), gmax(static_cast<size_t>(G), A(0));
  for (int64_t c = 0; c < C; ++c) {
    gam[c] = gamma ? cpu::load<A>(gamma[c]) : A(1);
    bet[c] = beta ? cpu::load<A>(beta[c]) : A(0);
    // NaN in gamma must not be mistaken for a small one: it makes the bound NaN, hence slow.
    gmax[c / cpg] = std::isnan(gam[c]) || std::isnan(gmax[c / cpg]) ? std::numeric_limits<A>::quiet_NaN()
                                                                   : std::max(gmax[c / cpg], std::abs(gam[c]));
  }
  std::vector<char> fast(static_cast<size_t>(NG), 0);
  auto set_stats = [&](int64_t ng, const Welford<A>& w, A amax) {
    const GroupStats<A> st = finish(w, amax, eps, gmax[ng % G]);
    fast[ng] = st.fast;
    mean_out[ng] = st.mean;
    rstd_out[ng] = st.rstd;
  };

  if (p.layout == Layout::nchw) {
    const int64_t nb = (m + kBlock - 1) / kBlock;
    auto block_stats = [&](int64_t ng, int64_t b, Welford<A>* w, A* amax) {
      const int64_t lo = b * kBlock, len = std::min(kBlock, m - lo);
      K.stats_contig(x + ng * m + lo, len, w, amax);
    };
    auto normalize = [&](int64_t ng, int64_t lo, int64_t hi) {
      const int64_t g = ng % G;
      for (int64_t cl = lo / S; cl < cpg && cl * S < hi; ++cl) {
        const int64_t s0 = std::max(lo, cl * S), s1 = std::min(hi, (cl + 1) * S);
        const int64_t c = g * cpg + cl;
        K.norm_contig(x + ng * m + s0, y + ng * m + s0, s1 - s0, mean_out[ng], rstd_out[ng], gam[c], bet[c]);
      }
    };
    const int64_t threads = cpu_threads();
    if (NG >= 2 * threads || nb == 1 || numel < kSerialBelow) {
      // One group per item, statistics and normalization back to back while the group is in cache.
      parallel_for(NG, numel, [&](int64_t ng) {
        std::vector<Welford<A>> w(static_cast<size_t>(nb));
        A amax = 0;
        for (int64_t b = 0; b < nb; ++b) {
          A am;
          block_stats(ng, b, &w[b], &am);
          amax = std::isnan(am) ? am : std::max(amax, am);
        }
        set_stats(ng, tree(w.data(), 0, nb), amax);
        if (fast[ng]) normalize(ng, 0, m);
      });
    } else {
      // Few groups: blocks of a group run on different threads; the same tree combines them.
      std::vector<Welford<A>> w(static_cast<size_t>(NG * nb));
      std::vector<A> am(static_cast<size_t>(NG * nb));
      parallel_for(NG * nb, numel, [&](int64_t i) { block_stats(i / nb, i % nb, &w[i], &am[i]); });
      for (int64_t ng = 0; ng < NG; ++ng) {
        A amax = 0;
        for (int64_t b = 0; b < nb; ++b) amax = std::isnan(am[ng * nb + b]) ? am[ng * nb + b] : std::max(amax, am[ng * nb + b]);
        set_stats(ng, tree(w.data() + ng * nb, 0, nb), amax);
      }
      parallel_for(NG * nb, numel, [&](int64_t i) {
        const int64_t ng = i / nb, b = i % nb;
        if (fast[ng]) normalize(ng, b * kBlock, std::min(m, (b + 1) * kBlock));
      });
    }
  } else {
    // Channels-last: per-channel states over fixed row blocks of each sample (channels in vector
    // lanes), combined over blocks in a tree, then over the group's channels in a tree. Samples
    // go in batches of about kBatchBytes, statistics then normalization, so a large tensor's x is
    // still in cache for the second read (the batching does not change any result).
    const int64_t nrb = (S + kRowBlock - 1) / kRowBlock;
    const int64_t batch = samples_per_batch(S, C, sizeof(T));
    std::vector<A> bm(static_cast<size_t>(std::min(N, batch) * nrb * C)), b2(bm.size()), ba(bm.size());
    std::vector<Welford<A>> wb(static_cast<size_t>(std::max(nrb, cpg)));
    std::vector<Welford<A>> wc(static_cast<size_t>(cpg));
    std::vector<A> mc(static_cast<size_t>(N * C)), rc(mc.size());
    for (int64_t n0 = 0; n0 < N; n0 += batch) {
      const int64_t n1 = std::min(N, n0 + batch);
      parallel_for((n1 - n0) * nrb, numel, [&](int64_t i) {
        const int64_t n = n0 + i / nrb, rb = i % nrb, r0 = rb * kRowBlock, rows = std::min(kRowBlock, S - r0);
        K.stats_cols(x + (n * S + r0) * C, rows, C, C, &bm[i * C], &b2[i * C], &ba[i * C]);
      });
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t g = 0; g < G; ++g) {
          A amax = 0;
          for (int64_t cl = 0; cl < cpg; ++cl) {
            const int64_t c = g * cpg + cl;
            for (int64_t rb = 0; rb < nrb; ++rb) {
              const int64_t i = ((n - n0) * nrb + rb) * C + c;
              wb[rb].mean = bm[i];
              wb[rb].m2 = b2[i];
              wb[rb].n = std::min(kRowBlock, S - rb * kRowBlock);
              amax = std::isnan(ba[i]) ? ba[i] : std::max(amax, ba[i]);
            }
            wc[cl] = tree(wb.data(), 0, nrb);
          }
          set_stats(n * G + g, tree(wc.data(), 0, cpg), amax);
        }
      per_channel(mean_out, mc.data(), n0, n1, C, G, cpg);
      per_channel(rstd_out, rc.data(), n0, n1, C, G, cpg);
      parallel_for((n1 - n0) * nrb, numel, [&](int64_t i) {
        const int64_t n = n0 + i / nrb, r0 = (i % nrb) * kRowBlock, rows = std::min(kRowBlock, S - r0);
        K.norm_cols(x + (n * S + r0) * C, y + (n * S + r0) * C, rows, C, C, &mc[n * C], &rc[n * C], gam.data(),
                    bet.data());
      });
    }
  }
  // The groups the fast path does not take: `welford`'s scalar path, which writes their y, mean
  // and rstd over whatever the vector pass left there.
  std::vector<int64_t> slow;
  for (int64_t ng = 0; ng < NG; ++ng)
    if (!fast[ng]) slow.push_back(ng);
  if (slow.empty()) return;
  parallel_for(static_cast<int64_t>(slow.size()), numel, [&](int64_t i) {
    cpu::ForwardScratch<A> sc(p);
    cpu::forward_group<Policy, T>(a, slow[i] / G, slow[i] % G, sc);
  });
}

template <class T> void backward_impl(const BackwardArgs& a) {
  using A = cpu::acc_of<T>;
  const Problem& p = a.p;
  const Kernels<T>& K = *kernels<T>();
  const int64_t N = p.N, C = p.C, G = p.G, S = p.S(), cpg = p.channels_per_group(), m = p.group_size();
  const int64_t NG = N * G, numel = p.numel();
  const T* x = a.x.data<T>();
  const T* dy = a.dy.data<T>();
  T* dx = a.dx.data<T>();
  const A* mean_in = a.mean.data<A>();
  const A* rstd_in = a.rstd.data<A>();
  const T* gamma = p.affine && a.gamma ? a.gamma->data<T>() : nullptr;
  std::vector<A> gam(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) gam[c] = gamma ? cpu::load<A>(gamma[c]) : A(1);

  // Per (n, c): sum dy, sum dy * xhat, max|x|, max|dy|; they give the group sums (with gamma)
  // and, summed over n, dbeta and dgamma.
  std::vector<A> sdy(static_cast<size_t>(N * C)), sdyx(sdy.size()), ax(sdy.size()), ad(sdy.size());
  // Group sums, and whether plain arithmetic is safe for the group (file comment).
  std::vector<A> mg(static_cast<size_t>(NG)), mgx(mg.size());
  std::vector<char> fast(static_cast<size_t>(NG), 0);
  const A inv_m = A(1) / static_cast<A>(m);
  // Thresholds in terms of the type's exponent range E (128 for f32, 1024 for f64) and only on
  // quantities that do not change when x is scaled by 2^k (xhat, gamma * dy), except at the
  // very ends of the range: so scaling x never moves a group between the two paths inside the
  // window the ScaleInvariance property uses, and each path is exactly scale-equivariant.
  constexpr int E = std::numeric_limits<A>::max_exponent;
  const A q = std::ldexp(A(1), E / 4), iq = std::ldexp(A(1), -E / 4);
  const A out_lo = std::ldexp(A(1), -(E - 24)), out_hi = std::ldexp(A(1), E - 8);
  auto finalize = [&](int64_t n, int64_t g, A* u, A* v) {
    const int64_t ng = n * G + g;
    const A mu = mean_in[ng], r = rstd_in[ng];
    A xm = 0, dm = 0, gm = 0;
    bool ok = std::isfinite(mu) && std::isfinite(r) && r > 0;
    for (int64_t cl = 0; cl < cpg; ++cl) {
      const int64_t c = g * cpg + cl, i = n * C + c;
      u[cl] = gam[c] * sdy[i];
      v[cl] = gam[c] * sdyx[i];
      ok = ok && std::isfinite(gam[c]) && std::isfinite(sdy[i]) && std::isfinite(sdyx[i]) &&
           std::isfinite(ax[i]) && std::isfinite(ad[i]);
      xm = std::max(xm, ax[i]);
      dm = std::max(dm, ad[i]);
      gm = std::max(gm, std::abs(gam[c]));
    }
    if (ok) {
      const A span = xm + std::abs(mu);  // bounds |x - mean|
      const A gd = gm * dm, xh = span * r;
      ok = span <= std::numeric_limits<A>::max() / 4 && xh <= q && gm <= q && dm <= q &&
           (gd == 0 || (gd >= iq && gd <= q && r * gd >= out_lo && r * gd * (2 + xh * xh) <= out_hi));
    }
    fast[ng] = ok;
    mg[ng] = pairwise_sum(u, cpg) * inv_m;
    mgx[ng] = pairwise_sum(v, cpg) * inv_m;
  };
  auto sums_nchw = [&](int64_t i) {  // channel i = n * C + c
    const int64_t ng = (i / C) * G + (i % C) / cpg;
    K.sums_contig(x + i * S, dy + i * S, S, mean_in[ng], rstd_in[ng], &sdy[i], &sdyx[i], &ax[i], &ad[i]);
  };
  auto dx_nchw = [&](int64_t i) {
    const int64_t c = i % C, ng = (i / C) * G + c / cpg;
    if (fast[ng])
      K.dx_contig(x + i * S, dy + i * S, dx + i * S, S, mean_in[ng], rstd_in[ng], gam[c], mg[ng], mgx[ng]);
  };
  const bool fused = p.layout == Layout::nchw && (NG >= 2 * cpu_threads() || numel < kSerialBelow);
  if (fused) {
    // One group per item: sums, group terms and dx back to back while the group's x and dy are
    // in cache (the same per-channel and per-group arithmetic as the unfused order below).
    parallel_for(NG, numel, [&](int64_t ng) {
      thread_local std::vector<A> u, v;
      u.resize(static_cast<size_t>(cpg));
      v.resize(static_cast<size_t>(cpg));
      const int64_t n = ng / G, g = ng % G, c0 = n * C + g * cpg;
      for (int64_t i = c0; i < c0 + cpg; ++i) sums_nchw(i);
      finalize(n, g, u.data(), v.data());
      for (int64_t i = c0; i < c0 + cpg; ++i) dx_nchw(i);
    });
  } else if (p.layout == Layout::nchw) {
    parallel_for(N * C, numel, sums_nchw);
    std::vector<A> u(static_cast<size_t>(cpg)), v(u.size());
    for (int64_t n = 0; n < N; ++n)
      for (int64_t g = 0; g < G; ++g) finalize(n, g, u.data(), v.data());
    parallel_for(N * C, numel, dx_nchw);
  } else {
    // Channels-last: per-channel sums over fixed row blocks, pairwise over blocks; samples in
    // batches of about kBatchBytes of x (sums, group terms, dx), so x and dy are still in cache
    // for the dx pass. The batching changes no result.
    const int64_t nrb = (S + kRowBlock - 1) / kRowBlock;
    const int64_t batch = samples_per_batch(S, C, sizeof(T));
    std::vector<A> mc(static_cast<size_t>(N * C)), rc(mc.size()), mgc(mc.size()), mgxc(mc.size());
    per_channel(mean_in, mc.data(), 0, N, C, G, cpg);
    per_channel(rstd_in, rc.data(), 0, N, C, G, cpg);
    const size_t pb = static_cast<size_t>(std::min(N, batch) * nrb * C);
    std::vector<A> p1(pb), p2(pb), p3(pb), p4(pb);
    std::vector<A> t1(static_cast<size_t>(nrb)), t2(t1.size());
    std::vector<A> u(static_cast<size_t>(cpg)), v(u.size());
    for (int64_t n0 = 0; n0 < N; n0 += batch) {
      const int64_t n1 = std::min(N, n0 + batch);
      parallel_for((n1 - n0) * nrb, numel, [&](int64_t i) {
        const int64_t n = n0 + i / nrb, r0 = (i % nrb) * kRowBlock, rows = std::min(kRowBlock, S - r0);
        const int64_t off = (n * S + r0) * C;
        K.sums_cols(x + off, dy + off, rows, C, C, &mc[n * C], &rc[n * C], &p1[i * C], &p2[i * C], &p3[i * C],
                    &p4[i * C]);
      });
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t c = 0; c < C; ++c) {
          A m3 = 0, m4 = 0;
          for (int64_t rb = 0; rb < nrb; ++rb) {
            const int64_t i = ((n - n0) * nrb + rb) * C + c;
            t1[rb] = p1[i];
            t2[rb] = p2[i];
            m3 = std::isnan(p3[i]) ? p3[i] : std::max(m3, p3[i]);
            m4 = std::isnan(p4[i]) ? p4[i] : std::max(m4, p4[i]);
          }
          sdy[n * C + c] = pairwise_sum(t1.data(), nrb);
          sdyx[n * C + c] = pairwise_sum(t2.data(), nrb);
          ax[n * C + c] = m3;
          ad[n * C + c] = m4;
        }
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t g = 0; g < G; ++g) finalize(n, g, u.data(), v.data());
      per_channel(mg.data(), mgc.data(), n0, n1, C, G, cpg);
      per_channel(mgx.data(), mgxc.data(), n0, n1, C, G, cpg);
      parallel_for((n1 - n0) * nrb, numel, [&](int64_t i) {
        const int64_t n = n0 + i / nrb, r0 = (i % nrb) * kRowBlock, rows = std::min(kRowBlock, S - r0);
        const int64_t off = (n * S + r0) * C;
        K.dx_cols(x + off, dy + off, dx + off, rows, C, C, &mc[n * C], &rc[n * C], gam.data(), &mgc[n * C],
                  &mgxc[n * C]);
      });
    }
  }

  std::vector<int> kx_of(static_cast<size_t>(NG), 0);
  std::vector<int64_t> slow;
  for (int64_t ng = 0; ng < NG; ++ng)
    if (!fast[ng]) slow.push_back(ng);
  parallel_for(static_cast<int64_t>(slow.size()), numel, [&](int64_t i) {
    cpu::BackwardScratch<A> sc(p);
    kx_of[slow[i]] = cpu::backward_group<Policy, T>(a, a.dy.data<T>(), slow[i] / G, slow[i] % G, sc);
  });

  if (!p.affine || (!a.dgamma && !a.dbeta)) return;
  T* dgamma = a.dgamma ? a.dgamma->data<T>() : nullptr;
  T* dbeta = a.dbeta ? a.dbeta->data<T>() : nullptr;
  // A channel whose groups all took the fast path sums its per-sample sums in a pairwise tree
  // over n; any other channel is `welford`'s (which scales dy by the channel's largest exponent).
  std::vector<int64_t> slow_c;
  {
    std::vector<A> t1(static_cast<size_t>(N)), t2(t1.size());
    for (int64_t c = 0; c < C; ++c) {
      bool ok = N > 0;
      for (int64_t n = 0; n < N; ++n) {
        ok = ok && fast[n * G + c / cpg];
        t1[n] = sdy[n * C + c];
        t2[n] = sdyx[n * C + c];
      }
      if (!ok) {
        slow_c.push_back(c);
        continue;
      }
      if (dgamma) dgamma[c] = cpu::store<T>(pairwise_sum(t2.data(), N));
      if (dbeta) dbeta[c] = cpu::store<T>(pairwise_sum(t1.data(), N));
    }
  }
  parallel_for(static_cast<int64_t>(slow_c.size()), numel, [&](int64_t i) {
    std::vector<A> buf;
    cpu::backward_channel<Policy, T>(a, a.dy.data<T>(), slow_c[i], 0, N, slow_c[i], kx_of.data(), buf);
  });
}

class SimdImpl final : public Impl {
 public:
  std::string_view name() const override { return "simd"; }
  Capabilities capabilities() const override {
    Capabilities c = Capabilities::full(
        "cpu",
        "Highway SIMD, multi-threaded: lane-wise chunked two-pass states + Welford pairwise combine, thread-count "
        "independent; welford's scalar path for non-finite or out-of-range groups and (for now) the SiLU epilogue and "
        "per-sample parameters");
    c.epilogues = {Epilogue::none, Epilogue::silu};
    c.per_sample = true;
    return c;
  }
  // The fused modes are not vectorized yet: they run welford's scalar driver whole.
  static bool fused(const Problem& p) { return p.epilogue != Epilogue::none || p.per_sample(); }
  void forward(const ForwardArgs& a) const override {
    visit_dtype(a.p.dtype, [&](auto t) {
      using T = typename decltype(t)::type;
      if (fused(a.p)) cpu::forward_typed<Policy, T>(a);
      else forward_impl<T>(a);
    });
  }
  void backward(const BackwardArgs& a) const override {
    visit_dtype(a.p.dtype, [&](auto t) {
      using T = typename decltype(t)::type;
      if (fused(a.p)) cpu::backward_typed<Policy, T>(a);
      else backward_impl<T>(a);
    });
  }
};

}  // namespace
GNV_REGISTER_IMPL(SimdImpl);
}  // namespace gnv::simd
#endif  // HWY_ONCE
