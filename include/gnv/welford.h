#pragma once
// The reduction combine rule shared by the CPU, SIMD and CUDA kernels (ATen's WelfordOps plays
// the same part). One state type and one combine, so every backend reduces with the same
// arithmetic and differs only in how it splits the work.
#include <cstdint>

#ifdef __CUDACC__
#define GNV_HD __host__ __device__
#else
#define GNV_HD
#endif

namespace gnv {

template <class A>
struct Welford {
  A mean{0}, m2{0};
  int64_t n{0};

  GNV_HD void add(A x) {
    ++n;
    const A delta = x - mean;
    mean += delta / static_cast<A>(n);
    // The second factor uses the updated mean: that is what makes m2 a sum of products of
    // deviations that are each small, instead of a difference of large squares.
    m2 += delta * (x - mean);
  }

  // Chan, Golub & LeVeque's parallel update. The empty-state shortcuts are not just speed: with
  // n == 0 the weights below would be 0/0.
  GNV_HD static Welford combine(const Welford& a, const Welford& b) {
    if (a.n == 0) return b;
    if (b.n == 0) return a;
    Welford r;
    r.n = a.n + b.n;
    const A n = static_cast<A>(r.n);
    const A delta = b.mean - a.mean;
    r.mean = a.mean + delta * (static_cast<A>(b.n) / n);
    // na*nb/n evaluated as na*(nb/n): the integer product na*nb can overflow for huge groups,
    // and nb/n <= 1 keeps the floating-point product no larger than na.
    r.m2 = a.m2 + b.m2 + delta * delta * (static_cast<A>(a.n) * (static_cast<A>(b.n) / n));
    return r;
  }

  // Population variance (divide by n, as the paper and PyTorch do). NaN for an empty state.
  GNV_HD A variance() const { return m2 / static_cast<A>(n); }
};

namespace detail {
// Welford over chunks [c0, c1) of x; a balanced binary tree over chunk indices, so the order of
// combination depends only on (m, chunk) and the result is deterministic. Recursion depth is
// log2(number of chunks).
template <class A>
GNV_HD Welford<A> welford_chunks(const A* x, int64_t m, int64_t chunk, int64_t c0, int64_t c1) {
  if (c1 - c0 == 1) {
    Welford<A> w;
    const int64_t end = (c1 * chunk < m) ? c1 * chunk : m;
    for (int64_t i = c0 * chunk; i < end; ++i) w.add(x[i]);
    return w;
  }
  const int64_t mid = c0 + (c1 - c0) / 2;
  return Welford<A>::combine(welford_chunks(x, m, chunk, c0, mid), welford_chunks(x, m, chunk, mid, c1));
}
}  // namespace detail

// Sequential Welford inside chunks (bounded error growth per chunk, and the shape a GPU block
// reduction has), then a pairwise tree of the chunk states: error grows with log2(m / chunk)
// rather than m / chunk.
template <class A>
GNV_HD Welford<A> welford_chunked(const A* x, int64_t m, int64_t chunk = 32) {
  if (m <= 0) return Welford<A>{};
  if (chunk < 1) chunk = 1;
  const int64_t chunks = (m + chunk - 1) / chunk;
  return detail::welford_chunks(x, m, chunk, 0, chunks);
}

// Pairwise (cascade) summation: error bound (7 + ceil(log2 m))·u·Σ|x| instead of (m - 1)·u·Σ|x|,
// inside the README budget 4 + 2·log2(m) for every m. The plain loop stops at 8 elements: a
// 128-element base case allowed 127 roundings in a row, which fuzzing turned into a dbeta 19 ulp
// off (one huge dy, then -1s that each rounded away: repro-welford-dbeta-sequential-base-case).
template <class A>
GNV_HD A pairwise_sum(const A* x, int64_t m) {
  if (m <= 8) {
    A s{0};
    for (int64_t i = 0; i < m; ++i) s += x[i];
    return s;
  }
  const int64_t h = m / 2;
  return pairwise_sum(x, h) + pairwise_sum(x + h, m - h);
}

}  // namespace gnv
