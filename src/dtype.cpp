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

void from_bits(DType d, uint64_t bits, void* p) {
  switch (info(d).bytes) {
    case 8: std::memcpy(p, &bits, 8); break;
    case 4: { auto v = static_cast<uint32_t>(bits); std::memcpy(p, &v, 4); break; }
    default: { auto v = static_cast<uint16_t>(bits); std::memcpy(p, &v, 2); break; }
  }
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

bool is_nan_bits(DType d, uint64_t bits) { return std::isnan(bits_to_double(d, bits)); }

bool is_finite_bits(DType d, uint64_t bits) { return std::isfinite(bits_to_double(d, bits)); }

}  // namespace gnv
