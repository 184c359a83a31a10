#pragma once
// The SiLU epilogue as every gnv kernel computes it, in its accumulation type A (float or
// double): the CPU driver (impls/kernel_common.h) and the CUDA kernels (impls/cuda/kernels.cuh,
// where these are device functions) include this one definition.
#include <cmath>

#ifdef __CUDACC__
#define GNV_SILU_HD __host__ __device__ __forceinline__
#else
#define GNV_SILU_HD inline
#endif

namespace gnv::silu {

// Explicit float/double routines, so that no overload resolution picks a double one for a float
// on either compiler.
template <class A> GNV_SILU_HD A exp_(A v) {
  if constexpr (sizeof(A) == 4) return expf(v);
  else return exp(v);
}
template <class A> GNV_SILU_HD A fma_(A x, A y, A z) {
  if constexpr (sizeof(A) == 4) return fmaf(x, y, z);
  else return fma(x, y, z);
}
template <class A> GNV_SILU_HD bool isinf_(A v) { return v - v != v - v && v == v; }  // +-Inf, not NaN
template <class A> GNV_SILU_HD bool isfinite_(A v) { return v - v == v - v; }
template <class A> GNV_SILU_HD A qnan_() { return A(NAN); }

// silu(v) = v / (1 + e^-v). For v < -16 it is v w^2 / (1 + w^2) with w = e^(v/2): the plain
// quotient's e^-v overflows from v = -88.7 (f32; -709.8 for f64) while silu(v) ~ v e^v is still a
// normal number down to about -94 (f32; -715 for f64), and e^v itself would be subnormal (losing
// bits) before the product is; w stays normal to v = -174 (f32) and (v w) w rounds once into the
// subnormals (the property suite found the plain quotient returning -0 for silu(-90) = -7.4e-38
// in f32). v = -Inf is the limit -0 where it overflowed from finite inputs (`finite_in`: gamma,
// beta and the group's x finite); from a non-finite input it is NaN, as the non-finite policy
// asks of every output of such a group or channel (docs/numerics.md "Non-finite policy").
template <class A> GNV_SILU_HD A value(A v, bool finite_in) {
  if (isinf_(v) && v < A(0)) return finite_in ? A(-0.0) : qnan_<A>();
  if (v < A(-16)) {
    const A w = exp_(v / 2);
    return v * w * w / (A(1) + w * w);
  }
  return v / (A(1) + exp_(-v));
}

// Its derivative s (1 + v (1 - s)) with s = 1 / (1 + e^-v), the factor the backward pass applies
// to dy (for v < -16, s = w^2 / (1 + w^2) as above); its limits 0 and 1 at -Inf and +Inf from
// finite inputs, NaN from non-finite ones.
template <class A> GNV_SILU_HD A grad(A v, bool finite_in) {
  if (isinf_(v)) return !finite_in ? qnan_<A>() : v > A(0) ? A(1) : A(0);
  if (v < A(-16)) {
    const A w = exp_(v / 2), d = A(1) + w * w;
    return w * (A(1) + v / d) * w / d;
  }
  const A s = A(1) / (A(1) + exp_(-v));
  return s * (A(1) + v * (A(1) - s));
}

// y = gamma xhat + beta before the epilogue: gamma xhat overflows only when |gamma| is near the
// largest finite value, and beta may bring the sum back into range, which one fused multiply-add
// (exact product, one rounding) gets right.
template <class A> GNV_SILU_HD A affine(A gam, A xhat, A bet) {
  const A t = gam * xhat;
  return isfinite_(t) ? t + bet : fma_(gam, xhat, bet);
}

}  // namespace gnv::silu
