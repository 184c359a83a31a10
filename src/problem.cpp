#include "gnv/problem.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string_view>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sstream>

#include "gnv/tensor.h"

namespace gnv {

namespace {
bool mul_ok(int64_t a, int64_t b, int64_t& out) { return !__builtin_mul_overflow(a, b, &out); }
}  // namespace

void Problem::validate() const {
  if (N < 0) throw InvalidProblem("N", fmt::format("must be >= 0, got {}", N));
  if (C < 1) throw InvalidProblem("C", fmt::format("must be >= 1, got {}", C));
  if (spatial.size() > 3)
    throw InvalidProblem("spatial", fmt::format("rank must be 0..3, got {}", spatial.size()));
  for (size_t i = 0; i < spatial.size(); ++i)
    if (spatial[i] < 1)
      throw InvalidProblem("spatial", fmt::format("extent {} must be >= 1, got {}", i, spatial[i]));
  if (G < 1) throw InvalidProblem("G", fmt::format("must be >= 1, got {}", G));
  if (C % G != 0)
    throw InvalidProblem("G", fmt::format("C = {} is not divisible by G = {}", C, G));
  if (!std::isfinite(eps)) throw InvalidProblem("eps", fmt::format("must be finite, got {}", eps));
  if (eps < 0) throw InvalidProblem("eps", fmt::format("must be >= 0, got {}", eps));
  if (affine_mode == AffineMode::per_sample && !affine)
    throw InvalidProblem("affine_mode", "per-sample parameters need affine on");
  int64_t n = N;
  if (!mul_ok(n, C, n)) throw InvalidProblem("shape", "element count overflows int64");
  for (int64_t e : spatial)
    if (!mul_ok(n, e, n)) throw InvalidProblem("shape", "element count overflows int64");
  int64_t bytes;
  if (!mul_ok(n, 8, bytes)) throw InvalidProblem("shape", "byte count overflows int64");
}

int64_t Problem::S() const {
  int64_t s = 1;
  for (int64_t e : spatial) s *= e;
  return s;
}

std::vector<int64_t> Problem::x_shape() const {
  std::vector<int64_t> s{N};
  if (layout == Layout::nchw) s.push_back(C);
  s.insert(s.end(), spatial.begin(), spatial.end());
  if (layout == Layout::nhwc) s.push_back(C);
  return s;
}

std::string Problem::shape_string() const {
  std::vector<int64_t> s{N, C};
  s.insert(s.end(), spatial.begin(), spatial.end());
  return fmt::format("{}", fmt::join(s, ","));
}

std::string Problem::describe() const {
  return fmt::format("shape={} G={} eps={:g} affine={} dtype={} layout={}{}", shape_string(), G, eps,
                     !affine ? "off" : per_sample() ? "per-sample" : "on", name(dtype), name(layout),
                     epilogue == Epilogue::none ? "" : fmt::format(" epilogue={}", name(epilogue)));
}

std::string_view name(Epilogue e) { return e == Epilogue::silu ? "silu" : "none"; }
std::string_view name(AffineMode m) { return m == AffineMode::per_sample ? "per-sample" : "per-channel"; }

Epilogue parse_epilogue(std::string_view s) {
  if (s == "none") return Epilogue::none;
  if (s == "silu") return Epilogue::silu;
  throw std::invalid_argument(fmt::format("unknown epilogue '{}' (expected none or silu)", s));
}

AffineMode parse_affine_mode(std::string_view s) {
  if (s == "per-channel" || s == "per_channel") return AffineMode::per_channel;
  if (s == "per-sample" || s == "per_sample") return AffineMode::per_sample;
  throw std::invalid_argument(fmt::format("unknown affine mode '{}' (expected per-channel or per-sample)", s));
}

void parse_shape(const std::string& s, Problem& p) {
  // Plain decimal digits only: "+2", " 2", "2," and "2,,4" are typing mistakes, not shapes.
  std::vector<int64_t> v;
  size_t start = 0;
  while (true) {
    const size_t comma = std::min(s.find(',', start), s.size());
    const std::string_view item(s.data() + start, comma - start);
    int64_t x = 0;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), x);
    const bool digits = !item.empty() && std::all_of(item.begin(), item.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
    if (!digits || ec != std::errc() || end != item.data() + item.size())
      throw std::invalid_argument(fmt::format("shape '{}': '{}' is not a non-negative integer", s, item));
    v.push_back(x);
    if (comma == s.size()) break;
    start = comma + 1;
  }
  if (v.size() < 2 || v.size() > 5)
    throw std::invalid_argument(
        fmt::format("shape '{}' must be N,C[,D][,H][,W] (2 to 5 integers)", s));
  p.N = v[0];
  p.C = v[1];
  p.spatial.assign(v.begin() + 2, v.end());
}

void validate_tensor(const Tensor& t, const std::string& field, DType dtype,
                     const std::vector<int64_t>& shape) {
  if (t.dtype() != dtype)
    throw InvalidProblem(field, fmt::format("dtype is {}, expected {}", name(t.dtype()), name(dtype)));
  if (t.shape() != shape)
    throw InvalidProblem(field, fmt::format("shape is {}, expected ({})", t.shape_string(),
                                            fmt::join(shape, ", ")));
}

}  // namespace gnv
