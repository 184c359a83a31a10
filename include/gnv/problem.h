#pragma once
// A GroupNorm problem: what is normalized, how, and in which storage. No data.
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "gnv/dtype.h"

namespace gnv {

// An invalid problem or tensor; field() names the offending field ("G", "eps", "x", ...).
class InvalidProblem : public std::invalid_argument {
 public:
  InvalidProblem(std::string field, const std::string& msg)
      : std::invalid_argument(field + ": " + msg), field_(std::move(field)) {}
  const std::string& field() const { return field_; }

 private:
  std::string field_;
};

// What follows the normalization and the affine step (docs/numerics.md "Fused epilogues"):
// none, or silu(v) = v / (1 + e^-v) of each output, as diffusion U-Nets run GroupNorm.
enum class Epilogue { none, silu };
// The shape of gamma and beta: (C), shared by every sample, or (N, C), one row per sample
// (adaptive GroupNorm: the caller's 1 + scale[n, c] and shift[n, c]).
enum class AffineMode { per_channel, per_sample };
std::string_view name(Epilogue e);   // "none", "silu"
std::string_view name(AffineMode m); // "per-channel", "per-sample"
Epilogue parse_epilogue(std::string_view s);      // throws std::invalid_argument naming the choices
AffineMode parse_affine_mode(std::string_view s); // "per-channel"/"per_channel", "per-sample"/...

struct Problem {
  int64_t N = 1;
  int64_t C = 1;
  std::vector<int64_t> spatial;  // rank 0..3: (), (W), (H,W), (D,H,W)
  int64_t G = 1;
  double eps = 1e-5;
  bool affine = false;
  AffineMode affine_mode = AffineMode::per_channel;  // per_sample only with affine
  Epilogue epilogue = Epilogue::none;
  DType dtype = DType::f32;
  Layout layout = Layout::nchw;

  // Throws InvalidProblem naming the field: N < 0, C < 1, rank > 3, extent < 1, G < 1,
  // C % G != 0, eps negative or not finite, element or byte counts that overflow int64,
  // a per-sample affine mode without affine.
  void validate() const;

  int64_t S() const;  // spatial size, 1 for rank 0
  int64_t channels_per_group() const { return C / G; }
  int64_t group_size() const { return C / G * S(); }  // m: elements per (n, g)
  int64_t numel() const { return N * C * S(); }
  // Offset of element (n, c, s) in memory, s the flat spatial index.
  int64_t index(int64_t n, int64_t c, int64_t s) const {
    return layout == Layout::nchw ? (n * C + c) * S() + s : (n * S() + s) * C + c;
  }
  std::vector<int64_t> x_shape() const;      // physical: (N,C,*S) or (N,*S,C)
  std::vector<int64_t> stats_shape() const { return {N, G}; }
  bool per_sample() const { return affine && affine_mode == AffineMode::per_sample; }
  // gamma, beta, dgamma, dbeta: (C), or (N, C) per sample; param_index is (n, c)'s offset there.
  std::vector<int64_t> param_shape() const { return per_sample() ? std::vector<int64_t>{N, C} : std::vector<int64_t>{C}; }
  int64_t param_index(int64_t n, int64_t c) const { return per_sample() ? n * C + c : c; }
  std::string shape_string() const;           // logical "N,C[,D][,H][,W]" as --shape takes it
  std::string describe() const;               // one line for humans
};

// Parses "N,C[,D][,H][,W]" into N, C and spatial; throws std::invalid_argument.
void parse_shape(const std::string& s, Problem& p);

// Throws InvalidProblem(field) unless t has this dtype and shape.
class Tensor;
void validate_tensor(const Tensor& t, const std::string& field, DType dtype,
                     const std::vector<int64_t>& shape);

}  // namespace gnv
