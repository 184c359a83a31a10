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

struct Problem {
  int64_t N = 1;
  int64_t C = 1;
  std::vector<int64_t> spatial;  // rank 0..3: (), (W), (H,W), (D,H,W)
  int64_t G = 1;
  double eps = 1e-5;
  bool affine = false;
  DType dtype = DType::f32;
  Layout layout = Layout::nchw;

  // Throws InvalidProblem naming the field: N < 0, C < 1, rank > 3, extent < 1, G < 1,
  // C % G != 0, eps negative or not finite, element or byte counts that overflow int64.
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
  std::vector<int64_t> channel_shape() const { return {C}; }
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
