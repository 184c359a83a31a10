#pragma once
// Launch plans of the CUDA kernels and the index arithmetic that the kernels and the host tests
// share. Pure C++ (GNV_HD is __host__ __device__ only under nvcc), so tests/test_cuda_plan.cpp
// checks on any machine that every element is visited exactly once by the mapping the kernels use.
//
// Vocabulary (docs/implementations.md "CUDA"):
//   tile   the unit whose statistics one launch completes: a group (n, g) in nchw; in nhwc a
//          sample n times a range of CW channels (whole groups when fused).
//   part   a tile is split into k parts, one block each, by a balanced partition (part_lo).
//   fused  one launch: the k blocks of a tile form a thread-block cluster, keep their part in
//          registers, exchange partial statistics through distributed shared memory and write y
//          from registers. Bytes moved: the floor (x read once, y written once).
//   split  for tiles too large for one cluster: partial (statistics per part to a workspace),
//          combine (fixed-order trees), apply (x read again, y written).
#include <algorithm>
#include <cstdint>

#include "gnv/welford.h"  // GNV_HD

namespace gnv::cuda::detail {

enum Mode : int { kFused = 0, kPartial = 1, kApply = 2 };

inline constexpr int kMaxThreads = 256;  // block size cap (__launch_bounds__ of the main kernels)
inline constexpr int kMinBlocks = 2;    // resident blocks per SM the register budget must allow
// Accesses held in registers per thread: 8 of 16 bytes forward (x), 4 backward (x and dy), twice
// as many when an access is one element. About 100 registers per thread then, no spills (ptxas -v).
constexpr int fwd_v(int W) { return W == 1 ? 16 : 8; }
constexpr int bwd_v(int W) { return W == 1 ? 8 : 4; }
inline constexpr int kMaxCluster = 16;   // H100/H200 allow 16 (non-portable; 8 is portable)

// Balanced partition of [0, L) into k parts: part r is [part_lo(r), part_lo(r + 1)); the first
// L % k parts are one longer. No product of two sizes, so nothing overflows for any int64 L.
GNV_HD inline int64_t part_lo(int64_t L, int64_t k, int64_t r) {
  const int64_t q = L / k, rem = L % k;
  return r * q + (r < rem ? r : rem);
}
// The part holding index i (0 <= i < L), for 1 <= k <= L.
GNV_HD inline int64_t part_of(int64_t L, int64_t k, int64_t i) {
  const int64_t q = L / k, rem = L % k, big = rem * (q + 1);
  return i < big ? i / (q + 1) : rem + (i - big) / q;
}

// q / d for 32-bit q by a multiply-high (Granlund & Montgomery 1994, the round-up variant):
// with 2^(l-1) < d <= 2^l, mul = floor(2^32 (2^l - d) / d) + 1 and q / d = (mulhi(q, mul) + q) >> l.
// A 64-bit division is a long subroutine on the GPU; the kernels divide an element offset by the
// spatial size once per 16-byte access.
struct FastDiv {
  uint32_t d = 1, mul = 1;
  int shift = 0;
};
inline FastDiv make_fastdiv(uint32_t d) {
  FastDiv f;
  f.d = d;
  int l = 0;
  while ((uint64_t{1} << l) < d) ++l;
  f.shift = l;
  f.mul = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << l) - d)) / d + 1);
  return f;
}
GNV_HD inline uint32_t fastdiv(uint32_t q, const FastDiv& f) {
  const uint64_t t = (static_cast<uint64_t>(q) * f.mul) >> 32;
  return static_cast<uint32_t>((t + q) >> f.shift);
}

struct DeviceInfo {
  int sms = 132;         // multiprocessors
  bool clusters = true;  // compute capability 9.0+: thread-block clusters and distributed smem
  int max_cluster = kMaxCluster;
};

enum class PathChoice { automatic, split };

struct PlanRequest {
  int64_t N = 1, C = 1, S = 1, G = 1;
  int elem = 4;              // storage bytes per element
  bool nhwc = false;
  bool backward = false;
  bool aligned = true;       // every tensor pointer is 16-byte aligned
  PathChoice path = PathChoice::automatic;
  int force_k = 0;           // tests: parts per tile (0: choose)
  int force_threads = 0;     // tests: threads per block, a multiple of 32 (0: choose)
};

struct Plan {
  bool nhwc = false;    // the nhwc kernels (S == 1 always runs as nchw: the layouts coincide)
  bool fused = true;
  int W = 1;            // elements per access: 16 / elem when vectorized, else 1
  int V = 8;            // accesses per thread
  int T = 32;           // threads per block
  int64_t k = 1;        // parts (blocks) per tile; the cluster size when fused and k > 1
  int64_t tiles = 0;    // nchw: N*G groups; nhwc: N*TPS
  int64_t L = 0;        // nchw: accesses per group (m / W)
  int64_t CW = 0, TPS = 0, CWv = 0, RT = 0;  // nhwc: channels per tile, tiles per sample,
                                             // accesses per tile row, thread rows
  int64_t blocks() const { return tiles * k; }
};

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }
inline int64_t pow2_ceil(int64_t a) {
  int64_t p = 1;
  while (p < a) p *= 2;
  return p;
}

// Fewer blocks than this leave multiprocessors idle: two resident blocks per SM is what
// __launch_bounds__(512, 2) allows, and a second block hides the first one's reduction phase.
inline int64_t fill_target(const DeviceInfo& d) { return 2 * static_cast<int64_t>(d.sms); }

inline Plan plan_nchw(const PlanRequest& r, const DeviceInfo& dev) {
  Plan p;
  p.nhwc = false;
  const int vw = 16 / r.elem;
  // A 16-byte access must stay inside one channel (S % W == 0), which also aligns every group.
  p.W = (r.aligned && r.S % vw == 0) ? vw : 1;
  p.V = r.backward ? bwd_v(p.W) : fwd_v(p.W);
  const int64_t m = r.C / r.G * r.S;
  p.L = m / p.W;
  p.tiles = r.N * r.G;
  const int64_t cap = static_cast<int64_t>(kMaxThreads) * p.V;
  const int64_t k_min = ceil_div(p.L, cap);
  const int64_t max_k = dev.clusters ? dev.max_cluster : 1;
  p.fused = r.path == PathChoice::automatic && k_min <= max_k &&
            (r.force_k == 0 || r.force_k <= max_k);
  if (p.fused) {
    int64_t k = r.force_k > 0 ? std::max<int64_t>(r.force_k, k_min) : pow2_ceil(k_min);
    if (r.force_k == 0)
      while (k * 2 <= max_k && p.tiles * k < fill_target(dev) && ceil_div(p.L, k * 2) >= 64 * p.V) k *= 2;
    p.k = std::min(k, p.L);
    const int64_t per = ceil_div(p.L, p.k);
    p.T = static_cast<int>(std::clamp<int64_t>(round_up(ceil_div(per, p.V), 32), 32, kMaxThreads));
    if (r.force_threads > 0 && static_cast<int64_t>(r.force_threads) * p.V >= per) p.T = r.force_threads;
  } else {
    p.T = static_cast<int>(std::clamp<int64_t>(round_up(ceil_div(p.L, p.V), 32), 32, kMaxThreads));
    if (r.force_threads > 0) p.T = r.force_threads;
    p.k = std::max<int64_t>(ceil_div(p.L, static_cast<int64_t>(p.T) * p.V), r.force_k);
    p.k = std::min(p.k, p.L);
  }
  return p;
}

// nhwc. A fused tile holds whole groups; the narrowest tile whose rows are a multiple of the
// access width is preferred once its rows are at least 32 bytes (one DRAM sector), since a row
// segment narrower than a sector costs a whole sector unless the neighbouring tile's block reads
// the other half while it is still in L2.
inline Plan plan_nhwc(const PlanRequest& r, const DeviceInfo& dev) {
  Plan p;
  p.nhwc = true;
  const int64_t cpg = r.C / r.G;
  const int64_t max_k = dev.clusters ? dev.max_cluster : 1;
  struct Tile {
    int W;
    int64_t CW;
  };
  auto v_of = [&](int W) { return r.backward ? bwd_v(W) : fwd_v(W); };
  auto rows_cap = [&](int64_t CWv, int W) { return static_cast<int64_t>(kMaxThreads) / CWv * v_of(W); };
  auto fits_fused = [&](const Tile& t) {
    const int64_t CWv = t.CW / t.W;
    if (CWv > kMaxThreads) return false;
    const int64_t cap = rows_cap(CWv, t.W);
    const int64_t k_min = ceil_div(r.S, cap);
    return k_min <= max_k && (r.force_k == 0 || (r.force_k <= max_k && r.force_k * cap >= r.S));
  };
  const int vw = 16 / r.elem;
  Tile chosen{0, 0};
  bool fused = false;
  if (r.path == PathChoice::automatic) {
    for (int W : {vw, 1}) {
      if (W > 1 && !(r.aligned && (r.C * r.elem) % 16 == 0)) continue;
      Tile first_fit{0, 0};
      for (int64_t ngt = 1; ngt <= r.G; ++ngt) {
        if (r.G % ngt) continue;
        const Tile t{W, ngt * cpg};
        if (t.CW % W) continue;
        if (t.CW / W > kMaxThreads) break;
        if (!fits_fused(t)) continue;
        if (first_fit.W == 0) first_fit = t;
        if (t.CW * r.elem >= 32) {
          chosen = t;
          break;
        }
      }
      if (chosen.W == 0) chosen = first_fit;
      if (chosen.W != 0) {
        fused = true;
        break;
      }
    }
  }
  if (fused) {
    p.fused = true;
    p.W = chosen.W;
    p.V = v_of(p.W);
    p.CW = chosen.CW;
    p.CWv = p.CW / p.W;
    const int64_t cap = rows_cap(p.CWv, p.W);
    int64_t k = r.force_k > 0 ? r.force_k : pow2_ceil(ceil_div(r.S, cap));
    p.TPS = r.C / p.CW;
    p.tiles = r.N * p.TPS;
    if (r.force_k == 0)
      while (k * 2 <= max_k && p.tiles * k < fill_target(dev) && ceil_div(r.S, k * 2) >= 8 * p.V) k *= 2;
    p.k = std::min(k, r.S);
    p.RT = ceil_div(ceil_div(r.S, p.k), p.V);
  } else {
    // Split: any channel range works, since the combine goes per channel first.
    p.fused = false;
    p.W = (r.aligned && (r.C * r.elem) % 16 == 0) ? vw : 1;
    p.V = v_of(p.W);
    const int64_t Cv = r.C / p.W;
    p.CWv = std::min<int64_t>(Cv, 64);
    p.CW = p.CWv * p.W;
    p.TPS = ceil_div(r.C, p.CW);
    p.tiles = r.N * p.TPS;
    p.RT = std::max<int64_t>(1, std::min(kMaxThreads / p.CWv, ceil_div(r.S, p.V)));
    if (r.force_threads > 0) p.RT = std::max<int64_t>(1, r.force_threads / p.CWv);
    p.k = std::max(ceil_div(r.S, p.RT * p.V), static_cast<int64_t>(r.force_k));
    p.k = std::min(p.k, r.S);
  }
  p.T = static_cast<int>(p.RT * p.CWv);
  return p;
}

inline Plan make_plan(PlanRequest r, const DeviceInfo& dev) {
  if (r.nhwc && r.S == 1) r.nhwc = false;  // (N, 1, C) and (N, C, 1) are the same bytes
  return r.nhwc ? plan_nhwc(r, dev) : plan_nchw(r, dev);
}

// ---- the element mapping, shared by the kernels and the host tests -------------------------------

// nchw: block b, thread t, access j -> access index within the group (or -1 when idle).
struct NchwSlot {
  int64_t tile, rank, lo, len;
};
GNV_HD inline NchwSlot nchw_slot(int64_t L, int64_t k, int64_t b) {
  NchwSlot s;
  s.tile = b / k;
  s.rank = b % k;
  s.lo = part_lo(L, k, s.rank);
  s.len = part_lo(L, k, s.rank + 1) - s.lo;
  return s;
}
// Number of valid accesses of thread t: positions p = j*T + t < len form a prefix in j.
GNV_HD inline int valid_count(int64_t len, int t, int T, int V) {
  if (len <= t) return 0;
  const int64_t n = (len - t + T - 1) / T;
  return n < V ? static_cast<int>(n) : V;
}

// nhwc: block b -> sample, channel range and row range.
struct NhwcSlot {
  int64_t n, c0, cw, rank, s_lo, s_len;
};
GNV_HD inline NhwcSlot nhwc_slot(int64_t C, int64_t S, int64_t CW, int64_t TPS, int64_t k, int64_t b) {
  NhwcSlot s;
  const int64_t tile = b / k;
  s.rank = b % k;
  s.n = tile / TPS;
  s.c0 = (tile % TPS) * CW;
  s.cw = (C - s.c0) < CW ? (C - s.c0) : CW;
  s.s_lo = part_lo(S, k, s.rank);
  s.s_len = part_lo(S, k, s.rank + 1) - s.s_lo;
  return s;
}

// nchw backward: the per-(part, channel) partial sums of dy and dy*xhat of group `tile` live at
// ((tile * (cpg + k - 1)) + cl + rank) * 2: part r covers channels [cl_lo(r), cl_hi(r)] and
// cl_lo(r + 1) >= cl_hi(r), so the slots cl + r never collide, and cpg + k - 1 slots suffice.
GNV_HD inline int64_t nchw_channel_slot(int64_t tile, int64_t cpg, int64_t k, int64_t cl, int64_t rank) {
  return tile * (cpg + k - 1) + cl + rank;
}

}  // namespace gnv::cuda::detail
