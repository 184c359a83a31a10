#pragma once
// Storage types, layouts and their numeric facts. One place maps a DType to its C++ storage
// type (Eigen::half / Eigen::bfloat16 for the 16-bit ones) and to its accumulation type acc_t.
#include <Eigen/Core>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace gnv {

enum class DType { f64, f32, f16, bf16 };
enum class Layout { nchw, nhwc };  // channels-first (N,C,*S) and channels-last (N,*S,C)

inline constexpr DType kAllDTypes[] = {DType::f64, DType::f32, DType::f16, DType::bf16};
inline constexpr Layout kAllLayouts[] = {Layout::nchw, Layout::nhwc};

std::string_view name(DType d);
std::string_view name(Layout l);
// Throws std::invalid_argument naming the accepted spellings.
DType parse_dtype(std::string_view s);
Layout parse_layout(std::string_view s);

struct DTypeInfo {
  int bytes;          // storage size
  int precision;      // significand bits p, including the implicit bit
  int min_exp;        // exponent of the smallest normal number: 2^min_exp
  int max_exp;        // largest finite < 2^(max_exp+1)
  double unit_roundoff;  // u = 2^-p
  double max_finite;
  double min_normal;
  double min_subnormal;
};
// Inline, with ordinal and ulp_at below: the metrics call them for every element.
inline constexpr DTypeInfo kDTypeInfo[] = {
    {8, 53, -1022, 1023, 0x1p-53, std::numeric_limits<double>::max(), std::numeric_limits<double>::min(),
     std::numeric_limits<double>::denorm_min()},
    {4, 24, -126, 127, 0x1p-24, std::numeric_limits<float>::max(), std::numeric_limits<float>::min(),
     std::numeric_limits<float>::denorm_min()},
    {2, 11, -14, 15, 0x1p-11, 65504.0, 0x1p-14, 0x1p-24},
    {2, 8, -126, 127, 0x1p-8, 0x1.FEp127, 0x1p-126, 0x1p-133},
};
static_assert(static_cast<int>(DType::bf16) == 3, "kDTypeInfo follows DType's order");
inline const DTypeInfo& info(DType d) { return kDTypeInfo[static_cast<int>(d)]; }

// The type kernels accumulate in: f32 for f16/bf16/f32, f64 for f64. Statistics (mean, rstd)
// are stored in it too, because a mean rounded to f16 at an offset of 1e4 has an error larger
// than the spread it is supposed to remove.
inline DType acc_dtype(DType d) { return d == DType::f64 ? DType::f64 : DType::f32; }

template <DType D> struct storage;
template <> struct storage<DType::f64> { using type = double; using acc_t = double; };
template <> struct storage<DType::f32> { using type = float; using acc_t = float; };
template <> struct storage<DType::f16> { using type = Eigen::half; using acc_t = float; };
template <> struct storage<DType::bf16> { using type = Eigen::bfloat16; using acc_t = float; };
template <DType D> using storage_t = typename storage<D>::type;
template <DType D> using acc_t = typename storage<D>::acc_t;

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<double>() { return DType::f64; }
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<Eigen::half>() { return DType::f16; }
template <> constexpr DType dtype_of<Eigen::bfloat16>() { return DType::bf16; }

// Calls f(std::type_identity<T>{}) with the storage type of d.
template <class F> decltype(auto) visit_dtype(DType d, F&& f) {
  switch (d) {
    case DType::f64: return f(std::type_identity<double>{});
    case DType::f32: return f(std::type_identity<float>{});
    case DType::f16: return f(std::type_identity<Eigen::half>{});
    case DType::bf16: return f(std::type_identity<Eigen::bfloat16>{});
  }
  throw std::logic_error("bad dtype");
}

// Raw bits of one element (zero-extended) and back; inline, for the per-element loops.
inline uint64_t to_bits(DType d, const void* p) {
  switch (info(d).bytes) {
    case 8: { uint64_t v; std::memcpy(&v, p, 8); return v; }
    case 4: { uint32_t v; std::memcpy(&v, p, 4); return v; }
    default: { uint16_t v; std::memcpy(&v, p, 2); return v; }
  }
}
void from_bits(DType d, uint64_t bits, void* p);
inline double bits_to_double(DType d, uint64_t bits) {
  switch (d) {
    case DType::f64: return std::bit_cast<double>(bits);
    case DType::f32: return std::bit_cast<float>(static_cast<uint32_t>(bits));
    case DType::f16: return static_cast<float>(Eigen::numext::bit_cast<Eigen::half>(static_cast<uint16_t>(bits)));
    case DType::bf16: return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
  }
  return 0;
}

// Rounds a double to the dtype, round to nearest even. The 16-bit types go through f32, which is
// a double rounding: good for generating data, never used by the oracle.
uint64_t round_for_data(DType d, double v);

// Monotonic integer image of a float's bits: ordered like the values, +0 and -0 both map to 0,
// so |ordinal(a) - ordinal(b)| is the ULP distance. Only meaningful for non-NaN values.
inline int64_t ordinal(DType d, uint64_t bits) {
  const uint64_t sign = uint64_t{1} << (info(d).bytes * 8 - 1);
  const uint64_t mag = bits & (sign - 1);
  return (bits & sign) ? -static_cast<int64_t>(mag) : static_cast<int64_t>(mag);
}
bool is_nan_bits(DType d, uint64_t bits);
bool is_finite_bits(DType d, uint64_t bits);
// The size of one ULP at |v| in dtype d (the spacing of the binade of v; min_subnormal below).
inline double ulp_at(DType d, double v) {
  const DTypeInfo& in = info(d);
  v = std::fabs(v);
  if (std::isnan(v)) return std::numeric_limits<double>::quiet_NaN();
  if (v < in.min_normal) return in.min_subnormal;
  // v >= min_normal is a normal double: its exponent field is ilogb(v) + 1023.
  int e = std::isinf(v) ? in.max_exp : static_cast<int>((std::bit_cast<uint64_t>(v) >> 52) & 0x7FF) - 1023;
  if (e > in.max_exp) e = in.max_exp;
  const int k = e - in.precision + 1;  // >= -1074: 2^k as bits, subnormal below -1022
  return std::bit_cast<double>(k >= -1022 ? static_cast<uint64_t>(k + 1023) << 52 : uint64_t{1} << (k + 1074));
}

}  // namespace gnv
