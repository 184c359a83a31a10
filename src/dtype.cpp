#include "gnv/dtype.h"

#include <bit>
#include <cctype>
#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <limits>

namespace gnv {

std::string_view name(DType d) {
  switch (d) {
    case DType::f64: return "f64";
    case DType::f32: return "f32";
    case DType::f16: return "f16";
    case DType::bf16: return "bf16";
  }
  return "?";
}

std::string_view name(Layout l) { return l == Layout::nchw ? "nchw" : "nhwc"; }

namespace {

// Names are matched without regard to case: "FP16", "Float32" and "NHWC" are what people type.
std::string lower(std::string_view s) {
  std::string out(s);
  for (char& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

}  // namespace

DType parse_dtype(std::string_view text) {
  const std::string s = lower(text);
  if (s == "f64" || s == "fp64" || s == "float64" || s == "double") return DType::f64;
  if (s == "f32" || s == "fp32" || s == "float32" || s == "float") return DType::f32;
  if (s == "f16" || s == "fp16" || s == "float16" || s == "half") return DType::f16;
  if (s == "bf16" || s == "bfloat16") return DType::bf16;
  throw std::invalid_argument(fmt::format(
      "unknown dtype '{}' (expected f64, f32, f16 or bf16; aliases fp64/float64/double, fp32/float32/float, "
      "fp16/float16/half, bfloat16)",
      text));
}

Layout parse_layout(std::string_view text) {
  const std::string s = lower(text);
  if (s == "nchw" || s == "channels-first" || s == "channels_first") return Layout::nchw;
  if (s == "nhwc" || s == "channels-last" || s == "channels_last") return Layout::nhwc;
  throw std::invalid_argument(
      fmt::format("unknown layout '{}' (expected nchw/channels-first or nhwc/channels-last)", text));
}

const DTypeInfo& info(DType d) {
  static const DTypeInfo f64{8, 53, -1022, 1023, 0x1p-53, std::numeric_limits<double>::max(),
                             std::numeric_limits<double>::min(),
                             std::numeric_limits<double>::denorm_min()};
  static const DTypeInfo f32{4, 24, -126, 127, 0x1p-24, std::numeric_limits<float>::max(),
                             std::numeric_limits<float>::min(),
                             std::numeric_limits<float>::denorm_min()};
  static const DTypeInfo f16{2, 11, -14, 15, 0x1p-11, 65504.0, 0x1p-14, 0x1p-24};
  static const DTypeInfo bf16{2, 8, -126, 127, 0x1p-8, 0x1.FEp127, 0x1p-126, 0x1p-133};
  switch (d) {
    case DType::f64: return f64;
    case DType::f32: return f32;
    case DType::f16: return f16;
    case DType::bf16: return bf16;
  }
  throw std::logic_error("bad dtype");
}

DType acc_dtype(DType d) { return d == DType::f64 ? DType::f64 : DType::f32; }

uint64_t to_bits(DType d, const void* p) {
  switch (info(d).bytes) {
    case 8: { uint64_t v; std::memcpy(&v, p, 8); return v; }
    case 4: { uint32_t v; std::memcpy(&v, p, 4); return v; }
    default: { uint16_t v; std::memcpy(&v, p, 2); return v; }
  }
}

void from_bits(DType d, uint64_t bits, void* p) {
  switch (info(d).bytes) {
    case 8: std::memcpy(p, &bits, 8); break;
    case 4: { auto v = static_cast<uint32_t>(bits); std::memcpy(p, &v, 4); break; }
    default: { auto v = static_cast<uint16_t>(bits); std::memcpy(p, &v, 2); break; }
  }
}

double bits_to_double(DType d, uint64_t bits) {
  switch (d) {
    case DType::f64: return std::bit_cast<double>(bits);
    case DType::f32: return std::bit_cast<float>(static_cast<uint32_t>(bits));
    case DType::f16:
      return static_cast<float>(Eigen::numext::bit_cast<Eigen::half>(static_cast<uint16_t>(bits)));
    case DType::bf16: return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
  }
  return 0;
}

uint64_t round_for_data(DType d, double v) {
  switch (d) {
    case DType::f64: return std::bit_cast<uint64_t>(v);
    case DType::f32: return std::bit_cast<uint32_t>(static_cast<float>(v));
    case DType::f16:
      return Eigen::numext::bit_cast<uint16_t>(Eigen::half(static_cast<float>(v)));
    case DType::bf16:
      return Eigen::numext::bit_cast<uint16_t>(Eigen::bfloat16(static_cast<float>(v)));
  }
  return 0;
}

int64_t ordinal(DType d, uint64_t bits) {
  const int nbits = info(d).bytes * 8;
  const uint64_t sign = uint64_t{1} << (nbits - 1);
  const uint64_t mag = bits & (sign - 1);
  return (bits & sign) ? -static_cast<int64_t>(mag) : static_cast<int64_t>(mag);
}

bool is_nan_bits(DType d, uint64_t bits) { return std::isnan(bits_to_double(d, bits)); }

bool is_finite_bits(DType d, uint64_t bits) { return std::isfinite(bits_to_double(d, bits)); }

double ulp_at(DType d, double v) {
  const DTypeInfo& in = info(d);
  v = std::fabs(v);
  if (std::isnan(v)) return std::numeric_limits<double>::quiet_NaN();
  if (v < in.min_normal) return in.min_subnormal;
  int e = std::isinf(v) ? in.max_exp : std::ilogb(v);
  if (e > in.max_exp) e = in.max_exp;
  return std::ldexp(1.0, e - in.precision + 1);
}

}  // namespace gnv
