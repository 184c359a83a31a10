#pragma once
// The CUDA GroupNorm kernels. Included by fwd.cuh and bwd.cuh (instantiated per dtype in
// fwd_<dtype>.cu, bwd_<dtype>.cu), and by the CPU emulation build (tests/emu).
//
// Statistics use the Welford state and combine rule of include/gnv/welford.h, carried with a
// power-of-two exponent (ScaledWelford below) so that no finite input overflows them: that
// replaces the CPU driver's "rescue" retry, which a single-pass kernel cannot afford. Every
// reduction has a fixed shape (per-thread trees, shfl_down trees, fold-in-half trees in shared
// memory, rank-ordered cluster and workspace combines): no float atomics, so results are bitwise
// the same on every run for the same problem and plan.
#ifdef GNV_CUDA_EMULATE
#include "cuda_emu.h"  // impls/cuda/tests/emu: the kernels on the CPU, for tests without a GPU
#else
#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
// All shared memory is the dynamic buffer, carved by each kernel (the emulator gives each block one).
#define GNV_DYNAMIC_SMEM(name) extern __shared__ __align__(16) unsigned char name[]
#endif

#include <cstdint>

#include "gnv/silu.h"
#include "gnv/welford.h"
#include "plan.h"

namespace gnv::cuda::detail {

namespace cg = cooperative_groups;

enum DT : int { kF64 = 0, kF32 = 1, kF16 = 2, kBF16 = 3 };

// Storage <-> accumulation type. 16-bit types travel as their bits (uint16_t), so NaN payloads
// survive loads and no half/bfloat16 constructor runs in a register array.
template <int D> struct Ty;
template <> struct Ty<kF64> {
  using S = double;
  using A = double;
  static __device__ __forceinline__ A ld(S v) { return v; }
  static __device__ __forceinline__ S st(A v) { return v; }
};
template <> struct Ty<kF32> {
  using S = float;
  using A = float;
  static __device__ __forceinline__ A ld(S v) { return v; }
  static __device__ __forceinline__ S st(A v) { return v; }
};
template <> struct Ty<kF16> {
  using S = uint16_t;
  using A = float;
  static __device__ __forceinline__ A ld(S v) { return __half2float(__ushort_as_half(v)); }
  static __device__ __forceinline__ S st(A v) { return __half_as_ushort(__float2half_rn(v)); }
};
template <> struct Ty<kBF16> {
  using S = uint16_t;
  using A = float;
  // bf16 is the top half of an f32: widening is exact and needs no conversion instruction.
  static __device__ __forceinline__ A ld(S v) { return __uint_as_float(static_cast<uint32_t>(v) << 16); }
  static __device__ __forceinline__ S st(A v) { return __bfloat16_as_ushort(__float2bfloat16_rn(v)); }
};

// W elements accessed as one aligned load/store (16 bytes when vectorized).
template <class S, int W> struct alignas(sizeof(S) * W) Pack {
  S v[W];
};
template <int B> struct RawOf;
template <> struct RawOf<16> { using type = uint4; };
template <> struct RawOf<8> { using type = uint2; };
template <> struct RawOf<4> { using type = uint32_t; };
template <> struct RawOf<2> { using type = uint16_t; };

// 16-byte accesses go through the uint4 intrinsics so that they stay one instruction (plain
// aggregate copies were seen split into four 4-byte stores by the compiler).
template <class S, int W> __device__ __forceinline__ Pack<S, W> ld_pack(const S* p) {
  using R = typename RawOf<sizeof(S) * W>::type;
  R raw;
  if constexpr (sizeof(R) == 16) raw = __ldg(reinterpret_cast<const uint4*>(p));
  else raw = *reinterpret_cast<const R*>(p);
  Pack<S, W> out;
  __builtin_memcpy(&out, &raw, sizeof(out));
  return out;
}
template <class S, int W> __device__ __forceinline__ void st_pack(S* p, const Pack<S, W>& v) {
  using R = typename RawOf<sizeof(S) * W>::type;
  R raw;
  __builtin_memcpy(&raw, &v, sizeof(raw));
  if constexpr (sizeof(R) == 16) __stwb(reinterpret_cast<uint4*>(p), raw);
  else *reinterpret_cast<R*>(p) = raw;
}
template <class A> __device__ __forceinline__ A scal(A v, int e) {
  if constexpr (sizeof(A) == 4) return ldexpf(v, e);
  else return ldexp(v, e);
}
// Explicit float/double math, so no overload resolution can pick a double routine for a float.
template <class A> __device__ __forceinline__ A sqrt_(A v) {
  if constexpr (sizeof(A) == 4) return sqrtf(v);
  else return sqrt(v);
}
template <class A> __device__ __forceinline__ A fma_(A x, A y, A z) {
  if constexpr (sizeof(A) == 4) return fmaf(x, y, z);
  else return fma(x, y, z);
}
template <class A> __device__ __forceinline__ A abs_(A v) {
  if constexpr (sizeof(A) == 4) return fabsf(v);
  else return fabs(v);
}
template <class A> __device__ __forceinline__ A max_(A a, A b) {  // ignores a NaN operand
  if constexpr (sizeof(A) == 4) return fmaxf(a, b);
  else return fmax(a, b);
}
template <class A> __device__ __forceinline__ bool finite_(A v) { return isfinite(v); }
template <class A> __device__ __forceinline__ A qnan() {
  if constexpr (sizeof(A) == 4) return __int_as_float(0x7fc00000);
  else return __longlong_as_double(0x7ff8000000000000LL);
}

// Pairwise sum of f(LO), ..., f(LO + N - 1), unrolled at compile time.
template <class A, int LO, int N, class F> __device__ __forceinline__ A tree_sum(const F& f) {
  if constexpr (N == 1) {
    return f(LO);
  } else {
    constexpr int H = N / 2;
    return tree_sum<A, LO, H>(f) + tree_sum<A, LO + H, N - H>(f);
  }
}

// ---- ScaledWelford: Welford's state for the values x * 2^-e ------------------------------------
// A thread picks e from its own largest |x| (ilogb, 0 below 2), so its scaled values lie in
// (-2, 2) and neither their sums nor their squared deviations can overflow; scaling by a power of
// two is exact (except for values that fall into the subnormals, which are below max|x| * 2^-126
// and cannot move the statistics at working precision). Two states are combined by bringing the
// smaller exponent up to the larger (again exact but for such negligible values) and then
// applying welford.h's combine. For data below 2 in magnitude e = 0 everywhere and this is the
// plain Welford combine.
template <class A> struct SW {
  A mean, m2;
  int64_t n;
  int e;
};
template <class A> __device__ __forceinline__ SW<A> sw_empty() { return SW<A>{A(0), A(0), 0, 0}; }

template <class A> __device__ __forceinline__ SW<A> sw_combine(SW<A> a, SW<A> b) {
  if (a.n == 0) return b;
  if (b.n == 0) return a;
  const int e = a.e > b.e ? a.e : b.e;
  if (a.e != e) {
    a.mean = scal(a.mean, a.e - e);
    a.m2 = scal(a.m2, 2 * (a.e - e));
  }
  if (b.e != e) {
    b.mean = scal(b.mean, b.e - e);
    b.m2 = scal(b.m2, 2 * (b.e - e));
  }
  Welford<A> wa, wb;
  wa.mean = a.mean;
  wa.m2 = a.m2;
  wa.n = a.n;
  wb.mean = b.mean;
  wb.m2 = b.m2;
  wb.n = b.n;
  const Welford<A> r = Welford<A>::combine(wa, wb);
  return SW<A>{r.mean, r.m2, r.n, e};
}

// The exponent for a set of values with largest magnitude amax (NaN-ignoring max; a NaN or Inf
// makes the sums non-finite anyway, and then e = 0 keeps them so).
template <class A> __device__ __forceinline__ int scale_exp(A amax) {
  if (!(amax >= A(2)) || !finite_(amax)) return 0;
  if constexpr (sizeof(A) == 4) return ilogbf(amax);
  else return ilogb(amax);
}

// mean and rstd from a group's state. Non-finite policy as the CPU driver: a group whose state is
// not finite (a NaN or Inf in x: the scaled state of finite data is always finite) gets rstd = NaN
// and a mean that is NaN unless it came out +-Inf.
template <class A> __device__ __forceinline__ void finish_stats(const SW<A>& s, A eps, A& mean, A& rstd) {
  const A mu = scal(s.mean, s.e);
  if (!(finite_(s.mean) && finite_(s.m2))) {
    mean = finite_(mu) ? qnan<A>() : mu;
    rstd = qnan<A>();
    return;
  }
  mean = mu;
  const A var_s = s.m2 / static_cast<A>(s.n);
  if (s.e == 0) {
    rstd = A(1) / sqrt_(var_s + eps);
    return;
  }
  // var = var_s * 2^2e exactly unless it overflows; then rstd = 2^-e / sqrt(var_s + eps 2^-2e),
  // where eps 2^-2e may underflow, dropping an eps negligible next to a variance that large.
  const A var = scal(var_s, 2 * s.e);
  if (finite_(var)) rstd = A(1) / sqrt_(var + eps);
  else rstd = scal(A(1) / sqrt_(var_s + scal(eps, -2 * s.e)), -s.e);
}

// Two sums reduced together (backward: sum of g and of g*xhat; or of dy and dy*xhat).
template <class A> struct Sum2 {
  A a, b;
};

// ---- warp and block reductions (fixed shfl_down trees; lane 0 holds the result) -------------------
constexpr unsigned kFull = 0xffffffffu;

template <class A> __device__ __forceinline__ SW<A> shfl_down(const SW<A>& s, int off) {
  SW<A> o;
  o.mean = __shfl_down_sync(kFull, s.mean, off);
  o.m2 = __shfl_down_sync(kFull, s.m2, off);
  o.n = __shfl_down_sync(kFull, static_cast<long long>(s.n), off);
  o.e = __shfl_down_sync(kFull, s.e, off);
  return o;
}
template <class A> __device__ __forceinline__ Sum2<A> shfl_down(const Sum2<A>& s, int off) {
  return Sum2<A>{__shfl_down_sync(kFull, s.a, off), __shfl_down_sync(kFull, s.b, off)};
}
template <class A> __device__ __forceinline__ SW<A> combine(const SW<A>& x, const SW<A>& y) { return sw_combine(x, y); }
template <class A> __device__ __forceinline__ Sum2<A> combine(const Sum2<A>& x, const Sum2<A>& y) {
  return Sum2<A>{x.a + y.a, x.b + y.b};
}
template <class A> __device__ __forceinline__ void make_empty(SW<A>& s) { s = sw_empty<A>(); }
template <class A> __device__ __forceinline__ void make_empty(Sum2<A>& s) { s = Sum2<A>{A(0), A(0)}; }

template <class X> __device__ __forceinline__ X warp_reduce(X v) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    const X o = shfl_down(v, off);
    if (lane + off < 32) v = combine(v, o);
  }
  return v;
}

// Block-wide reduction; every thread gets the result. blockDim.x must be a multiple of 32.
// `sm` holds at least 32 entries.
template <class X> __device__ __forceinline__ X block_reduce(X v, X* sm) {
  v = warp_reduce(v);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
  if (lane == 0) sm[warp] = v;
  __syncthreads();
  if (warp == 0) {
    X w;
    if (lane < nw) w = sm[lane];
    else make_empty(w);
    w = warp_reduce(w);
    if (lane == 0) sm[32] = w;
  }
  __syncthreads();
  const X r = sm[32];
  __syncthreads();
  return r;
}

// The states of a cluster's ranks (k <= 16) in the fixed tree ((0 1)(2 3))((4 5)(6 7)) ...;
// entries >= k are empty. Evaluated left to right so that only a few states are live.
template <class X, class Get> __device__ __forceinline__ X tree_ranks(int k, const Get& get) {
  auto at = [&](int r) {
    X v;
    if (r < k) v = get(r);
    else make_empty(v);
    return v;
  };
  auto quad = [&](int b) { return combine(combine(at(b), at(b + 1)), combine(at(b + 2), at(b + 3))); };
  X lo = quad(0);
  if (k > 4) lo = combine(lo, quad(4));
  if (k > 8) {
    X hi = quad(8);
    if (k > 12) hi = combine(hi, quad(12));
    lo = combine(lo, hi);
  }
  return lo;
}

// ---- kernel arguments ----------------------------------------------------------------------------
struct Args {
  // tensors (device)
  const void* x = nullptr;
  const void* dy = nullptr;
  const void* gamma = nullptr;
  const void* beta = nullptr;
  void* y = nullptr;    // forward output / backward dx
  void* mean = nullptr; // forward: outputs; backward: inputs (acc type)
  void* rstd = nullptr;
  void* dgamma = nullptr;
  void* dbeta = nullptr;
  // workspace pieces (acc-typed, see the host planner)
  void* ws_part = nullptr;   // per (tile or channel, part) partial states or sums
  void* ws_chan = nullptr;   // nhwc: per (n, c) totals; nchw backward: per (part, channel) sums
  void* ws_group = nullptr;  // backward split: per-group sums
  double eps = 0;
  int64_t N = 0, C = 0, S = 0, G = 0, cpg = 0, m = 0;
  // plan
  int64_t k = 1, L = 0, CW = 0, TPS = 0, CWv = 0, RT = 0;
  int64_t block0 = 0;  // index of this launch's first block (grids are launched in chunks)
  int mode = kFused;
  bool affine_grads = false;  // backward: compute dgamma/dbeta partials
  bool fast_ok = false;       // m < 2^32: channel of an element offset by FastDiv
  FastDiv divS;
  // fused forms (docs/numerics.md "Fused epilogues")
  bool nhwc = false;        // the layout (the pipelines know it from the plan; silu_dy from here)
  bool silu = false;        // forward: y = silu(gamma xhat + beta)
  bool per_sample = false;  // gamma, beta (and dgamma, dbeta) are (N, C), not (C)
  const void* e = nullptr;  // backward with silu: dy * silu'(v) in the acc type, x's layout (silu_dy)
};

// Offset of sample n's row in the parameter tensors: (N, C) per sample, else the one (C) row.
__device__ __forceinline__ int64_t param_row(const Args& a, int64_t n) { return a.per_sample ? n * a.C : 0; }

// One output of the forward pass from its pre-activation value v = x a_c + b_c: v itself, or
// silu(v). `finite_in`: the element, its group's statistics and its channel's parameters finite
// (a_c and b_c are finite exactly then, but where they overflow).
template <class A> __device__ __forceinline__ A epilogue(const Args& a, A x, A ac, A bc) {
  const A v = fma_(x, ac, bc);
  return a.silu ? silu::value(v, finite_(x) && finite_(ac) && finite_(bc)) : v;
}

// Compact state in shared memory (the count fits 32 bits inside a block).
template <class A> struct SWs {
  A mean, m2;
  int n, e;
};
template <class A> __device__ __forceinline__ SWs<A> to_s(const SW<A>& s) {
  return SWs<A>{s.mean, s.m2, static_cast<int>(s.n), s.e};
}
template <class A> __device__ __forceinline__ SW<A> from_s(const SWs<A>& s) {
  return SW<A>{s.mean, s.m2, static_cast<int64_t>(s.n), s.e};
}

// Channel (within its group) of element offset q of a group in nchw.
__device__ __forceinline__ int64_t nchw_channel(const Args& a, int64_t q) {
  return a.fast_ok ? static_cast<int64_t>(fastdiv(static_cast<uint32_t>(q), a.divS)) : q / a.S;
}

// The cluster's combine needs sm_90; other targets never take the fused path with k > 1 (the
// host planner only plans clusters on compute capability 9.0+).
#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ < 900)
#define GNV_NO_CLUSTERS 1
#endif

template <class A> constexpr size_t nchw_fwd_smem() { return sizeof(SW<A>) * 34 + sizeof(A) * 2; }

// ==== forward, nchw ==============================================================================
// One block per part of a group; thread t holds accesses p = j*T + t (coalesced per j).
template <int D, int W, int V>
__global__ void __launch_bounds__(kMaxThreads, kMinBlocks) fwd_nchw(const Args a) {
  using TY = Ty<D>;
  using S = typename TY::S;
  using A = typename TY::A;
  GNV_DYNAMIC_SMEM(smem_raw);
  SW<A>* red = reinterpret_cast<SW<A>*>(smem_raw);  // [33]: block_reduce
  SW<A>* xchg = red + 33;                            // [1]: read by the other blocks of the cluster
  A* stat = reinterpret_cast<A*>(xchg + 1);          // [2]: mean, rstd

  const NchwSlot sl = nchw_slot(a.L, a.k, a.block0 + blockIdx.x);
  const int t = threadIdx.x, T = blockDim.x;
  const int nv = valid_count(sl.len, t, T, V);
  const int64_t gbase = sl.tile * a.m;  // first element of the group
  const S* x = static_cast<const S*>(a.x) + gbase;
  S* y = static_cast<S*>(a.y) + gbase;
  const int64_t g = sl.tile % a.G;
  const A eps = static_cast<A>(a.eps);

  Pack<S, W> r[V];
#pragma unroll
  for (int j = 0; j < V; ++j)
    if (j < nv) r[j] = ld_pack<S, W>(x + (sl.lo + static_cast<int64_t>(j) * T + t) * W);

  A mean, rstd;
  if (a.mode == kApply) {
    mean = static_cast<const A*>(a.mean)[sl.tile];
    rstd = static_cast<const A*>(a.rstd)[sl.tile];
  } else {
    A amax = 0;
#pragma unroll
    for (int j = 0; j < V; ++j)
      if (j < nv) {
#pragma unroll
        for (int l = 0; l < W; ++l) amax = max_(amax, abs_(TY::ld(r[j].v[l])));
      }
    const int e = scale_exp(amax);
    const A sc = scal(A(1), -e);
    SW<A> st = sw_empty<A>();
    if (nv > 0) {
      const A sum = tree_sum<A, 0, V>([&](int j) {
        return j < nv ? tree_sum<A, 0, W>([&](int l) { return TY::ld(r[j].v[l]) * sc; }) : A(0);
      });
      const int64_t cnt = static_cast<int64_t>(nv) * W;
      const A mu = sum / static_cast<A>(cnt);
      const A m2 = tree_sum<A, 0, V>([&](int j) {
        return j < nv ? tree_sum<A, 0, W>([&](int l) {
          const A d = TY::ld(r[j].v[l]) * sc - mu;
          return d * d;
        })
                      : A(0);
      });
      st = SW<A>{mu, m2, cnt, e};
    }
    const SW<A> bs = block_reduce(st, red);
    if (a.mode == kPartial) {
      if (t == 0) static_cast<SW<A>*>(a.ws_part)[sl.tile * a.k + sl.rank] = bs;
      return;
    }
    SW<A> gs = bs;
    if (a.k > 1) {
#ifndef GNV_NO_CLUSTERS
      cg::cluster_group cluster = cg::this_cluster();
      if (t == 0) *xchg = bs;
      cluster.sync();
      if (t == 0)
        red[32] = tree_ranks<SW<A>>(static_cast<int>(a.k), [&](int q) { return *cluster.map_shared_rank(xchg, q); });
      cluster.sync();  // every remote read is done before any block moves on (or exits)
      gs = red[32];
#else
      __trap();
#endif
    }
    if (t == 0) {
      A mu, rs;
      finish_stats(gs, eps, mu, rs);
      stat[0] = mu;
      stat[1] = rs;
      if (sl.rank == 0) {
        static_cast<A*>(a.mean)[sl.tile] = mu;
        static_cast<A*>(a.rstd)[sl.tile] = rs;
      }
    }
    __syncthreads();
    mean = stat[0];
    rstd = stat[1];
  }

  const S* gam = static_cast<const S*>(a.gamma);
  const S* bet = static_cast<const S*>(a.beta);
  const int64_t prow = param_row(a, sl.tile / a.G);
#pragma unroll
  for (int j = 0; j < V; ++j) {
    if (j < nv) {
      const int64_t q = (sl.lo + static_cast<int64_t>(j) * T + t) * W;  // element offset in the group
      const int64_t c = prow + g * a.cpg + nchw_channel(a, q);
      const A gm = gam ? TY::ld(gam[c]) : A(1);
      const A bt = bet ? TY::ld(bet[c]) : A(0);
      // Fused per-channel form, as the CPU driver: x - mean can overflow near the top of the
      // range where x * a_c and mean * a_c cannot; fma rounds once.
      const A ac = gm * rstd;
      const A bc = bt - mean * ac;
      Pack<S, W> o;
#pragma unroll
      for (int l = 0; l < W; ++l) o.v[l] = TY::st(epilogue(a, TY::ld(r[j].v[l]), ac, bc));
      st_pack<S, W>(y + q, o);
    }
  }
}


// ==== forward, nhwc ==============================================================================
// Block = a row range of one tile; thread (ty, tx) holds rows s_lo + ty + j*RT of access column tx
// (channels c0 + tx*W + l). Per-lane states go into a fold-in-half tree over the thread rows in
// shared memory; then (fused) a rank-ordered cluster combine per channel and a tree over each
// group's channels. blockDim.x == RT * CWv, not necessarily a multiple of 32 (no shuffles here).
template <class A> constexpr size_t nhwc_fwd_smem(int T, int W, int64_t CW) {
  return sizeof(SWs<A>) * (static_cast<size_t>(T) * W + static_cast<size_t>(CW)) +
         sizeof(A) * 4 * static_cast<size_t>(CW);
}

template <int D, int W, int V>
__global__ void __launch_bounds__(kMaxThreads, kMinBlocks) fwd_nhwc(const Args a) {
  using TY = Ty<D>;
  using S = typename TY::S;
  using A = typename TY::A;
  GNV_DYNAMIC_SMEM(smem_raw);
  const int T = blockDim.x, t = threadIdx.x;
  const int64_t CW = a.CW;
  SWs<A>* red = reinterpret_cast<SWs<A>*>(smem_raw);  // [RT][CW]: tree rows
  SWs<A>* chs = red + static_cast<size_t>(T) * W;      // [CW]: channel states of the tile
  A* gst = reinterpret_cast<A*>(chs + CW);             // [CW][2]: (mean, rstd) per group (ngt <= CW)
  A* ab = gst + 2 * CW;                                // [CW][2]: a_c, b_c

  const NhwcSlot sl = nhwc_slot(a.C, a.S, CW, a.TPS, a.k, a.block0 + blockIdx.x);
  const int CWv = static_cast<int>(a.CWv), RT = static_cast<int>(a.RT);
  const int tx = t % CWv, ty = t / CWv;
  const bool col_ok = static_cast<int64_t>(tx) * W < sl.cw;
  const int nv = col_ok ? valid_count(sl.s_len, ty, RT, V) : 0;
  const int64_t C = a.C;
  const int64_t first = (sl.n * a.S + sl.s_lo) * C + sl.c0 + static_cast<int64_t>(tx) * W;
  const S* x = static_cast<const S*>(a.x) + first;
  S* y = static_cast<S*>(a.y) + first;
  const A eps = static_cast<A>(a.eps);
  const int64_t cpg = a.cpg;

  Pack<S, W> r[V];
#pragma unroll
  for (int j = 0; j < V; ++j)
    if (j < nv) r[j] = ld_pack<S, W>(x + (static_cast<int64_t>(ty) + static_cast<int64_t>(j) * RT) * C);

  if (a.mode != kApply) {
#pragma unroll
    for (int l = 0; l < W; ++l) {
      SW<A> st = sw_empty<A>();
      if (nv > 0) {
        A amax = 0;
#pragma unroll
        for (int j = 0; j < V; ++j)
          if (j < nv) amax = max_(amax, abs_(TY::ld(r[j].v[l])));
        const int e = scale_exp(amax);
        const A sc = scal(A(1), -e);
        const A sum = tree_sum<A, 0, V>([&](int j) { return j < nv ? TY::ld(r[j].v[l]) * sc : A(0); });
        const A mu = sum / static_cast<A>(nv);
        const A m2 = tree_sum<A, 0, V>([&](int j) {
          const A d = TY::ld(r[j].v[l]) * sc - mu;
          return j < nv ? d * d : A(0);
        });
        st = SW<A>{mu, m2, static_cast<int64_t>(nv), e};
      }
      red[static_cast<size_t>(ty) * CW + static_cast<size_t>(tx) * W + l] = to_s(st);
    }
    __syncthreads();
    for (int cur = RT; cur > 1;) {  // row i absorbs row i + h
      const int h = (cur + 1) / 2;
      if (ty < cur - h) {
#pragma unroll
        for (int l = 0; l < W; ++l) {
          SWs<A>& dst = red[static_cast<size_t>(ty) * CW + static_cast<size_t>(tx) * W + l];
          dst = to_s(sw_combine(from_s(dst), from_s(red[static_cast<size_t>(ty + h) * CW + static_cast<size_t>(tx) * W + l])));
        }
      }
      __syncthreads();
      cur = h;
    }
    // red[c] (row 0) is this block's state of channel c0 + c.
    if (a.mode == kPartial) {
      SW<A>* out = static_cast<SW<A>*>(a.ws_part);
      for (int64_t c = t; c < sl.cw; c += T) out[(sl.n * C + sl.c0 + c) * a.k + sl.rank] = from_s(red[c]);
      return;
    }
    if (a.k > 1) {
#ifndef GNV_NO_CLUSTERS
      cg::cluster_group cluster = cg::this_cluster();
      cluster.sync();
      for (int64_t c = t; c < CW; c += T)
        chs[c] = to_s(tree_ranks<SW<A>>(static_cast<int>(a.k), [&](int q) { return from_s(*cluster.map_shared_rank(red + c, q)); }));
      cluster.sync();  // remote reads done before any block of the cluster moves on
#else
      __trap();
#endif
    } else {
      for (int64_t c = t; c < CW; c += T) chs[c] = red[c];
      __syncthreads();
    }
    for (int64_t cur = cpg; cur > 1;) {  // per group: channel i absorbs channel i + h
      const int64_t h = (cur + 1) / 2;
      for (int64_t c = t; c < CW; c += T)
        if (c % cpg < cur - h) chs[c] = to_s(sw_combine(from_s(chs[c]), from_s(chs[c + h])));
      __syncthreads();
      cur = h;
    }
    for (int64_t gi = t; gi < CW / cpg; gi += T) {
      A mu, rs;
      finish_stats(from_s(chs[gi * cpg]), eps, mu, rs);
      gst[2 * gi] = mu;
      gst[2 * gi + 1] = rs;
      if (sl.rank == 0) {
        const int64_t gidx = sl.n * a.G + sl.c0 / cpg + gi;
        static_cast<A*>(a.mean)[gidx] = mu;
        static_cast<A*>(a.rstd)[gidx] = rs;
      }
    }
  } else {
    // Apply (split): the tile need not hold whole groups; each channel reads its group's stats.
    for (int64_t c = t; c < sl.cw; c += T) {
      const int64_t gidx = sl.n * a.G + (sl.c0 + c) / cpg;
      gst[2 * c] = static_cast<const A*>(a.mean)[gidx];
      gst[2 * c + 1] = static_cast<const A*>(a.rstd)[gidx];
    }
  }
  __syncthreads();
  {
    const S* gam = static_cast<const S*>(a.gamma);
    const S* bet = static_cast<const S*>(a.beta);
    const bool per_group = a.mode != kApply;  // gst indexed by group in the tile, else by channel
    const int64_t p0 = param_row(a, sl.n) + sl.c0;
    for (int64_t c = t; c < sl.cw; c += T) {
      const int64_t si = per_group ? c / cpg : c;
      const A mu = gst[2 * si], rs = gst[2 * si + 1];
      const A gm = gam ? TY::ld(gam[p0 + c]) : A(1);
      const A bt = bet ? TY::ld(bet[p0 + c]) : A(0);
      const A ac = gm * rs;
      ab[2 * c] = ac;
      ab[2 * c + 1] = bt - mu * ac;
    }
  }
  __syncthreads();
  if (nv > 0) {
    A ac[W], bc[W];
#pragma unroll
    for (int l = 0; l < W; ++l) {
      ac[l] = ab[2 * (tx * W + l)];
      bc[l] = ab[2 * (tx * W + l) + 1];
    }
#pragma unroll
    for (int j = 0; j < V; ++j) {
      if (j < nv) {
        Pack<S, W> o;
#pragma unroll
        for (int l = 0; l < W; ++l) o.v[l] = TY::st(epilogue(a, TY::ld(r[j].v[l]), ac[l], bc[l]));
        st_pack<S, W>(y + (static_cast<int64_t>(ty) + static_cast<int64_t>(j) * RT) * C, o);
      }
    }
  }
}

// ==== backward ===================================================================================
// dx_i = rstd * (g_i - mean(g) - xhat_i * mean(g * xhat)),  g_i = gamma_c * dy_i,
// xhat_i = (x_i - mean) * rstd; dgamma_c = sum dy * xhat, dbeta_c = sum dy over (n, s).
template <class A> __device__ __forceinline__ A xhat(A x, A mu, A rs) {
  const A v = (x - mu) * rs;
  // x - mu overflows only near the top of the range; the fused form stays finite there.
  return finite_(v) ? v : x * rs - mu * rs;
}

// nchw: thread sums of g and g*xhat; with affine gradients also per-access sums of dy and
// dy*xhat in shared memory, reduced per channel (segments of S/W accesses) to the workspace.
template <class A> constexpr size_t nchw_bwd_smem(int T, int V, bool affine_grads) {
  return sizeof(Sum2<A>) * (34 + (affine_grads ? static_cast<size_t>(T) * V : 0));
}

template <int D, int W, int V, bool EP>
__global__ void __launch_bounds__(kMaxThreads, kMinBlocks) bwd_nchw(const Args a) {
  using TY = Ty<D>;
  using S = typename TY::S;
  using A = typename TY::A;
  GNV_DYNAMIC_SMEM(smem_raw);
  Sum2<A>* red = reinterpret_cast<Sum2<A>*>(smem_raw);  // [33]: block_reduce
  Sum2<A>* xchg = red + 33;                              // [1]: read by the other blocks of the cluster
  Sum2<A>* P = xchg + 1;                                 // [V][T] when affine_grads

  const NchwSlot sl = nchw_slot(a.L, a.k, a.block0 + blockIdx.x);
  const int t = threadIdx.x, T = blockDim.x;
  const int nv = valid_count(sl.len, t, T, V);
  const int64_t gbase = sl.tile * a.m;
  const S* x = static_cast<const S*>(a.x) + gbase;
  const S* dy = static_cast<const S*>(a.dy) + gbase;
  S* dx = static_cast<S*>(a.y) + gbase;
  const S* gam = a.gamma ? static_cast<const S*>(a.gamma) + param_row(a, sl.tile / a.G) : nullptr;
  const int64_t g = sl.tile % a.G;
  const A mu = static_cast<const A*>(a.mean)[sl.tile];
  const A rs = static_cast<const A*>(a.rstd)[sl.tile];

  Pack<S, W> xr[V], dr[V];
  A gm[V];
#pragma unroll
  for (int j = 0; j < V; ++j) {
    gm[j] = A(1);
    if (j < nv) {
      const int64_t q = (sl.lo + static_cast<int64_t>(j) * T + t) * W;
      xr[j] = ld_pack<S, W>(x + q);
      if constexpr (!EP) dr[j] = ld_pack<S, W>(dy + q);
      if (gam) gm[j] = TY::ld(gam[g * a.cpg + nchw_channel(a, q)]);
    }
  }
  // The gradient reaching the normalization: dy, or (EP) e = dy silu'(v) in the acc type.
  const A* ev = EP ? static_cast<const A*>(a.e) + gbase : nullptr;
  auto dyv = [&](int j, int l) -> A {
    if constexpr (EP) return ev[(sl.lo + static_cast<int64_t>(j) * T + t) * W + l];
    else return TY::ld(dr[j].v[l]);
  };

  Sum2<A> tot;
  if (a.mode == kApply) {
    tot = static_cast<const Sum2<A>*>(a.ws_group)[sl.tile];
  } else {
    Sum2<A> ts{A(0), A(0)};
    if (nv > 0) {
      ts.a = tree_sum<A, 0, V>([&](int j) {
        return j < nv ? tree_sum<A, 0, W>([&](int l) { return gm[j] * dyv(j, l); }) : A(0);
      });
      ts.b = tree_sum<A, 0, V>([&](int j) {
        return j < nv ? tree_sum<A, 0, W>([&](int l) {
          return gm[j] * dyv(j, l) * xhat(TY::ld(xr[j].v[l]), mu, rs);
        })
                      : A(0);
      });
    }
    if (a.affine_grads) {
#pragma unroll
      for (int j = 0; j < V; ++j)
        if (j < nv) {
          Sum2<A> p;
          p.a = tree_sum<A, 0, W>([&](int l) { return dyv(j, l); });
          p.b = tree_sum<A, 0, W>([&](int l) { return dyv(j, l) * xhat(TY::ld(xr[j].v[l]), mu, rs); });
          P[j * T + t] = p;
        }
    }
    const Sum2<A> bs = block_reduce(ts, red);  // its barriers also publish P
    if (a.affine_grads) {
      // Channels of this part: accesses [lo, lo + len) in segments of Sv accesses per channel.
      const int64_t Sv = a.S / W;
      const int64_t q0 = sl.lo, q1 = sl.lo + sl.len;
      const int64_t cl_lo = q0 / Sv, nch = (q1 - 1) / Sv - cl_lo + 1;
      Sum2<A>* out = static_cast<Sum2<A>*>(a.ws_chan);
      if (Sv >= 32) {  // a warp per channel
        const int warp = t >> 5, lane = t & 31, nw = T >> 5;
        for (int64_t ci = warp; ci < nch; ci += nw) {
          const int64_t cl = cl_lo + ci;
          const int64_t pa = (cl * Sv > q0 ? cl * Sv : q0) - q0;
          const int64_t pb = ((cl + 1) * Sv < q1 ? (cl + 1) * Sv : q1) - q0;
          Sum2<A> s{A(0), A(0)};
          for (int64_t p = pa + lane; p < pb; p += 32) s = combine(s, P[p]);
          s = warp_reduce(s);
          if (lane == 0) out[nchw_channel_slot(sl.tile, a.cpg, a.k, cl, sl.rank)] = s;
        }
      } else {  // a thread per channel
        for (int64_t ci = t; ci < nch; ci += T) {
          const int64_t cl = cl_lo + ci;
          const int64_t pa = (cl * Sv > q0 ? cl * Sv : q0) - q0;
          const int64_t pb = ((cl + 1) * Sv < q1 ? (cl + 1) * Sv : q1) - q0;
          Sum2<A> s{A(0), A(0)};
          for (int64_t p = pa; p < pb; ++p) s = combine(s, P[p]);
          out[nchw_channel_slot(sl.tile, a.cpg, a.k, cl, sl.rank)] = s;
        }
      }
    }
    if (a.mode == kPartial) {
      if (t == 0) static_cast<Sum2<A>*>(a.ws_part)[sl.tile * a.k + sl.rank] = bs;
      return;
    }
    tot = bs;
    if (a.k > 1) {
#ifndef GNV_NO_CLUSTERS
      cg::cluster_group cluster = cg::this_cluster();
      if (t == 0) *xchg = bs;
      cluster.sync();
      if (t == 0)
        red[32] = tree_ranks<Sum2<A>>(static_cast<int>(a.k), [&](int q) { return *cluster.map_shared_rank(xchg, q); });
      cluster.sync();
      tot = red[32];
#else
      __trap();
#endif
    }
  }

  const A inv_m = A(1) / static_cast<A>(a.m);
  const A mg = tot.a * inv_m, mgx = tot.b * inv_m;
#pragma unroll
  for (int j = 0; j < V; ++j) {
    if (j < nv) {
      const int64_t q = (sl.lo + static_cast<int64_t>(j) * T + t) * W;
      Pack<S, W> o;
#pragma unroll
      for (int l = 0; l < W; ++l) {
        const A xh = xhat(TY::ld(xr[j].v[l]), mu, rs);
        o.v[l] = TY::st(rs * (gm[j] * dyv(j, l) - mg - xh * mgx));
      }
      st_pack<S, W>(dx + q, o);
    }
  }
}

// nhwc backward: per-lane sums of dy and dy*xhat, a row tree, (fused) a cluster combine per
// channel into the per-(n, c) totals, gamma-weighted trees per group, then dx.
template <class A> constexpr size_t nhwc_bwd_smem(int T, int W, int64_t CW) {
  return sizeof(Sum2<A>) * (static_cast<size_t>(T) * W + 2 * static_cast<size_t>(CW)) +
         sizeof(A) * 5 * static_cast<size_t>(CW);
}

template <int D, int W, int V, bool EP>
__global__ void __launch_bounds__(kMaxThreads, kMinBlocks) bwd_nhwc(const Args a) {
  using TY = Ty<D>;
  using S = typename TY::S;
  using A = typename TY::A;
  GNV_DYNAMIC_SMEM(smem_raw);
  const int T = blockDim.x, t = threadIdx.x;
  const int64_t CW = a.CW;
  Sum2<A>* red = reinterpret_cast<Sum2<A>*>(smem_raw);  // [RT][CW]
  Sum2<A>* chs = red + static_cast<size_t>(T) * W;       // [CW] channel totals (db, ds)
  Sum2<A>* gs = chs + CW;                                // [CW] gamma-weighted, then group trees
  A* cf = reinterpret_cast<A*>(gs + CW);                 // [CW][5]: mean, rstd, gamma, mean(g), mean(g xhat)

  const NhwcSlot sl = nhwc_slot(a.C, a.S, CW, a.TPS, a.k, a.block0 + blockIdx.x);
  const int CWv = static_cast<int>(a.CWv), RT = static_cast<int>(a.RT);
  const int tx = t % CWv, ty = t / CWv;
  const bool col_ok = static_cast<int64_t>(tx) * W < sl.cw;
  const int nv = col_ok ? valid_count(sl.s_len, ty, RT, V) : 0;
  const int64_t C = a.C, cpg = a.cpg;
  const int64_t first = (sl.n * a.S + sl.s_lo) * C + sl.c0 + static_cast<int64_t>(tx) * W;
  const S* x = static_cast<const S*>(a.x) + first;
  const S* dy = static_cast<const S*>(a.dy) + first;
  S* dx = static_cast<S*>(a.y) + first;
  const S* gam = static_cast<const S*>(a.gamma);
  const A* mean_in = static_cast<const A*>(a.mean);
  const A* rstd_in = static_cast<const A*>(a.rstd);

  Pack<S, W> xr[V], dr[V];
#pragma unroll
  for (int j = 0; j < V; ++j)
    if (j < nv) {
      const int64_t off = (static_cast<int64_t>(ty) + static_cast<int64_t>(j) * RT) * C;
      xr[j] = ld_pack<S, W>(x + off);
      if constexpr (!EP) dr[j] = ld_pack<S, W>(dy + off);
    }
  // The gradient reaching the normalization: dy, or (EP) e = dy silu'(v) in the acc type.
  const A* ev = EP ? static_cast<const A*>(a.e) + first : nullptr;
  auto dyv = [&](int j, int l) -> A {
    if constexpr (EP) return ev[(static_cast<int64_t>(ty) + static_cast<int64_t>(j) * RT) * C + l];
    else return TY::ld(dr[j].v[l]);
  };

  // Per-channel coefficients, first the group statistics (inputs).
  const int64_t p0 = param_row(a, sl.n) + sl.c0;
  for (int64_t c = t; c < sl.cw; c += T) {
    const int64_t gidx = sl.n * a.G + (sl.c0 + c) / cpg;
    cf[5 * c] = mean_in[gidx];
    cf[5 * c + 1] = rstd_in[gidx];
    cf[5 * c + 2] = gam ? TY::ld(gam[p0 + c]) : A(1);
  }
  __syncthreads();

  if (a.mode != kApply) {
#pragma unroll
    for (int l = 0; l < W; ++l) {
      Sum2<A> s{A(0), A(0)};
      if (nv > 0) {
        const int64_t c = static_cast<int64_t>(tx) * W + l;
        const A mu = cf[5 * c], rs = cf[5 * c + 1];
        s.a = tree_sum<A, 0, V>([&](int j) { return j < nv ? dyv(j, l) : A(0); });
        s.b = tree_sum<A, 0, V>([&](int j) {
          return j < nv ? dyv(j, l) * xhat(TY::ld(xr[j].v[l]), mu, rs) : A(0);
        });
      }
      red[static_cast<size_t>(ty) * CW + static_cast<size_t>(tx) * W + l] = s;
    }
    __syncthreads();
    for (int cur = RT; cur > 1;) {
      const int h = (cur + 1) / 2;
      if (ty < cur - h) {
#pragma unroll
        for (int l = 0; l < W; ++l) {
          Sum2<A>& dst = red[static_cast<size_t>(ty) * CW + static_cast<size_t>(tx) * W + l];
          dst = combine(dst, red[static_cast<size_t>(ty + h) * CW + static_cast<size_t>(tx) * W + l]);
        }
      }
      __syncthreads();
      cur = h;
    }
    if (a.mode == kPartial) {
      Sum2<A>* out = static_cast<Sum2<A>*>(a.ws_part);
      for (int64_t c = t; c < sl.cw; c += T) out[(sl.n * C + sl.c0 + c) * a.k + sl.rank] = red[c];
      return;
    }
    if (a.k > 1) {
#ifndef GNV_NO_CLUSTERS
      cg::cluster_group cluster = cg::this_cluster();
      cluster.sync();
      for (int64_t c = t; c < CW; c += T)
        chs[c] = tree_ranks<Sum2<A>>(static_cast<int>(a.k), [&](int q) { return *cluster.map_shared_rank(red + c, q); });
      cluster.sync();
#else
      __trap();
#endif
    } else {
      for (int64_t c = t; c < CW; c += T) chs[c] = red[c];
      __syncthreads();
    }
    Sum2<A>* chan_out = static_cast<Sum2<A>*>(a.ws_chan);
    for (int64_t c = t; c < CW; c += T) {
      if (sl.rank == 0 && chan_out) chan_out[sl.n * C + sl.c0 + c] = chs[c];
      const A gmc = cf[5 * c + 2];
      gs[c] = Sum2<A>{gmc * chs[c].a, gmc * chs[c].b};
    }
    __syncthreads();
    for (int64_t cur = cpg; cur > 1;) {
      const int64_t h = (cur + 1) / 2;
      for (int64_t c = t; c < CW; c += T)
        if (c % cpg < cur - h) gs[c] = combine(gs[c], gs[c + h]);
      __syncthreads();
      cur = h;
    }
    for (int64_t c = t; c < CW; c += T) {
      const Sum2<A> tg = gs[(c / cpg) * cpg];
      const A inv_m = A(1) / static_cast<A>(a.m);
      cf[5 * c + 3] = tg.a * inv_m;
      cf[5 * c + 4] = tg.b * inv_m;
    }
  } else {
    const Sum2<A>* grp = static_cast<const Sum2<A>*>(a.ws_group);
    const A inv_m = A(1) / static_cast<A>(a.m);
    for (int64_t c = t; c < sl.cw; c += T) {
      const Sum2<A> tg = grp[sl.n * a.G + (sl.c0 + c) / cpg];
      cf[5 * c + 3] = tg.a * inv_m;
      cf[5 * c + 4] = tg.b * inv_m;
    }
  }
  __syncthreads();
  if (nv > 0) {
#pragma unroll
    for (int l = 0; l < W; ++l) {
      const int64_t c = static_cast<int64_t>(tx) * W + l;
      const A mu = cf[5 * c], rs = cf[5 * c + 1], gmc = cf[5 * c + 2], mg = cf[5 * c + 3], mgx = cf[5 * c + 4];
#pragma unroll
      for (int j = 0; j < V; ++j)
        if (j < nv) {
          const A xh = xhat(TY::ld(xr[j].v[l]), mu, rs);
          xr[j].v[l] = TY::st(rs * (gmc * dyv(j, l) - mg - xh * mgx));  // dx replaces x
        }
    }
#pragma unroll
    for (int j = 0; j < V; ++j)
      if (j < nv) st_pack<S, W>(dx + (static_cast<int64_t>(ty) + static_cast<int64_t>(j) * RT) * C, xr[j]);
  }
}

// ==== the small second-stage kernels (split path, parameter gradients) ============================
// One warp per segment; lane l takes entries l, l + 32, ... in order, then a shfl_down tree.
constexpr int kSegWarps = 8;

template <class A>
__global__ void __launch_bounds__(32 * kSegWarps) combine_sw(const SW<A>* in, SW<A>* out, A* mean, A* rstd,
                                                               int64_t nseg, int64_t cnt, double eps) {
  const int lane = threadIdx.x & 31;
  for (int64_t seg = static_cast<int64_t>(blockIdx.x) * kSegWarps + (threadIdx.x >> 5); seg < nseg;
       seg += static_cast<int64_t>(gridDim.x) * kSegWarps) {
    SW<A> s = sw_empty<A>();
    for (int64_t i = lane; i < cnt; i += 32) s = sw_combine(s, in[seg * cnt + i]);
    s = warp_reduce(s);
    if (lane == 0) {
      if (mean) finish_stats(s, static_cast<A>(eps), mean[seg], rstd[seg]);
      else out[seg] = s;
    }
  }
}

template <class A>
__global__ void __launch_bounds__(32 * kSegWarps) combine_sum2(const Sum2<A>* in, Sum2<A>* out, int64_t nseg, int64_t cnt) {
  const int lane = threadIdx.x & 31;
  for (int64_t seg = static_cast<int64_t>(blockIdx.x) * kSegWarps + (threadIdx.x >> 5); seg < nseg;
       seg += static_cast<int64_t>(gridDim.x) * kSegWarps) {
    Sum2<A> s{A(0), A(0)};
    for (int64_t i = lane; i < cnt; i += 32) s = combine(s, in[seg * cnt + i]);
    s = warp_reduce(s);
    if (lane == 0) out[seg] = s;
  }
}

// nhwc split backward: per group, sum over its channels of gamma_c * (db_c, ds_c). `prow`: the
// stride of gamma's rows (C when per sample, else 0).
template <int D>
__global__ void __launch_bounds__(32 * kSegWarps) nhwc_group_sums(const Sum2<typename Ty<D>::A>* ch, const typename Ty<D>::S* gamma,
                                                                   Sum2<typename Ty<D>::A>* out, int64_t NG, int64_t G, int64_t cpg,
                                                                   int64_t prow) {
  using A = typename Ty<D>::A;
  const int lane = threadIdx.x & 31;
  for (int64_t seg = static_cast<int64_t>(blockIdx.x) * kSegWarps + (threadIdx.x >> 5); seg < NG;
       seg += static_cast<int64_t>(gridDim.x) * kSegWarps) {
    const int64_t g = seg % G;
    const typename Ty<D>::S* gr = gamma ? gamma + (seg / G) * prow : nullptr;
    Sum2<A> s{A(0), A(0)};
    for (int64_t cl = lane; cl < cpg; cl += 32) {
      const A gm = gr ? Ty<D>::ld(gr[g * cpg + cl]) : A(1);
      const Sum2<A> v = ch[seg * cpg + cl];  // (n*G + g)*cpg + cl == n*C + g*cpg + cl
      s = combine(s, Sum2<A>{gm * v.a, gm * v.b});
    }
    s = warp_reduce(s);
    if (lane == 0) out[seg] = s;
  }
}

// dgamma_c = sum_n ds_nc, dbeta_c = sum_n db_nc from per-(n, c) totals (nhwc).
template <int D>
__global__ void __launch_bounds__(32 * kSegWarps) dgamma_nhwc(const Sum2<typename Ty<D>::A>* ch, typename Ty<D>::S* dgamma,
                                                               typename Ty<D>::S* dbeta, int64_t N, int64_t C) {
  using A = typename Ty<D>::A;
  const int lane = threadIdx.x & 31;
  for (int64_t c = static_cast<int64_t>(blockIdx.x) * kSegWarps + (threadIdx.x >> 5); c < C;
       c += static_cast<int64_t>(gridDim.x) * kSegWarps) {
    Sum2<A> s{A(0), A(0)};
    for (int64_t n = lane; n < N; n += 32) s = combine(s, ch[n * C + c]);
    s = warp_reduce(s);
    if (lane == 0) {
      if (dgamma) dgamma[c] = Ty<D>::st(s.b);
      if (dbeta) dbeta[c] = Ty<D>::st(s.a);
    }
  }
}

// The same from the nchw per-(part, channel) slots: channel cl of group g spans parts
// part_of(cl*Sv) .. part_of((cl+1)*Sv - 1) of every sample. Per-sample parameters (`per_sample`)
// have a gradient per (n, c): segment n*C + c sums sample n's parts only.
template <int D>
__global__ void __launch_bounds__(32 * kSegWarps) dgamma_nchw(const Sum2<typename Ty<D>::A>* ws, typename Ty<D>::S* dgamma,
                                                               typename Ty<D>::S* dbeta, int64_t N, int64_t C, int64_t G,
                                                               int64_t cpg, int64_t Sv, int64_t L, int64_t k, bool per_sample) {
  using A = typename Ty<D>::A;
  const int lane = threadIdx.x & 31;
  const int64_t nseg = per_sample ? N * C : C, nsum = per_sample ? 1 : N;
  for (int64_t seg = static_cast<int64_t>(blockIdx.x) * kSegWarps + (threadIdx.x >> 5); seg < nseg;
       seg += static_cast<int64_t>(gridDim.x) * kSegWarps) {
    const int64_t c = seg % C, n0 = per_sample ? seg / C : 0;
    const int64_t g = c / cpg, cl = c % cpg;
    const int64_t r0 = part_of(L, k, cl * Sv), r1 = part_of(L, k, (cl + 1) * Sv - 1);
    const int64_t nr = r1 - r0 + 1;
    Sum2<A> s{A(0), A(0)};
    for (int64_t i = lane; i < nsum * nr; i += 32) {
      const int64_t n = n0 + i / nr, r = r0 + i % nr;
      s = combine(s, ws[nchw_channel_slot(n * G + g, cpg, k, cl, r)]);
    }
    s = warp_reduce(s);
    if (lane == 0) {
      if (dgamma) dgamma[seg] = Ty<D>::st(s.b);
      if (dbeta) dbeta[seg] = Ty<D>::st(s.a);
    }
  }
}

// The SiLU epilogue's backward, before the normalization's: e = dy silu'(v) with v = gamma xhat
// + beta recomputed from the saved statistics, kept in the acc type (rounding e to a 16-bit
// storage type would cost bf16 its budget: measured on the CPU driver, where it fails bimodal and
// special cases), in x's layout. One thread per element, grid-stride (launched as the small kernels).
template <int D>
__global__ void __launch_bounds__(32 * kSegWarps) silu_dy(const Args a) {
  using TY = Ty<D>;
  using S = typename TY::S;
  using A = typename TY::A;
  const S* x = static_cast<const S*>(a.x);
  const S* dy = static_cast<const S*>(a.dy);
  const S* gam = static_cast<const S*>(a.gamma);
  const S* bet = static_cast<const S*>(a.beta);
  const A* mean = static_cast<const A*>(a.mean);
  const A* rstd = static_cast<const A*>(a.rstd);
  A* e = static_cast<A*>(const_cast<void*>(a.e));
  const int64_t total = a.N * a.C * a.S;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t n = i / (a.C * a.S), c = a.nhwc ? i % a.C : (i / a.S) % a.C;
    const int64_t gi = n * a.G + c / a.cpg, pi = param_row(a, n) + c;
    const A xv = TY::ld(x[i]), mu = mean[gi], rs = rstd[gi];
    const A gm = gam ? TY::ld(gam[pi]) : A(1), bt = bet ? TY::ld(bet[pi]) : A(0);
    const bool finite_in = finite_(xv) && finite_(mu) && finite_(rs) && finite_(gm) && finite_(bt);
    e[i] = TY::ld(dy[i]) * silu::grad(silu::affine(gm, xhat(xv, mu, rs), bt), finite_in);
  }
}

}  // namespace gnv::cuda::detail
