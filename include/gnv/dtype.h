#pragma once
// Storage types, layouts and their numeric facts. One place maps a DType to its C++ storage
// type (Eigen::half / Eigen::bfloat16 for the 16-bit ones) and to its accumulation type acc_t.
#include <Eigen/Core>
#include <cstdint>
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
const DTypeInfo& info(DType d);

// The type kernels accumulate in: f32 for f16/bf16/f32, f64 for f64. Statistics (mean, rstd)
// are stored in it too, because a mean rounded to f16 at an offset of 1e4 has an error larger
// than the spread it is supposed to remove.
DType acc_dtype(DType d);

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

// Raw bits of one element (zero-extended) and back.
uint64_t to_bits(DType d, const void* p);
void from_bits(DType d, uint64_t bits, void* p);
double bits_to_double(DType d, uint64_t bits);

// Rounds a double to the dtype, round to nearest even. The 16-bit types go through f32, which is
// a double rounding: good for generating data, never used by the oracle.
uint64_t round_for_data(DType d, double v);

// Monotonic integer image of a float's bits: ordered like the values, +0 and -0 both map to 0,
// so |ordinal(a) - ordinal(b)| is the ULP distance. Only meaningful for non-NaN values.
int64_t ordinal(DType d, uint64_t bits);
bool is_nan_bits(DType d, uint64_t bits);
bool is_finite_bits(DType d, uint64_t bits);
// The size of one ULP at |v| in dtype d (the spacing of the binade of v; min_subnormal below).
double ulp_at(DType d, double v);

}  // namespace gnv
