#pragma once
// A Case is a Problem plus concrete tensors. It can be saved as a directory (case.json + .npy
// files) and replayed anywhere:
//   case.json  {"format": "gnv-case", "version": 1, "N":..,"C":..,"spatial":[..],"G":..,
//               "eps":..,"affine":..,"dtype":"f32","layout":"nchw",
//               "stress":"offset:1e4","seed":7}   (stress and seed optional, informative)
//              version 2 adds "epilogue": "silu" and "affine_mode": "per-sample" (optional;
//              written only when used, and then as version 2)
//   x.npy      physical shape x_shape(), dtype's npy descr (bf16 as '<u2' bit patterns)
//   gamma.npy, beta.npy  param_shape(): (C), or (N, C) per sample; present iff affine
//   dy.npy     optional; its presence asks for the backward pass
#include <filesystem>
#include <optional>
#include <string>

#include "gnv/problem.h"
#include "gnv/stress.h"
#include "gnv/tensor.h"

namespace gnv {

struct Case {
  Problem problem;
  Tensor x;
  Tensor gamma, beta;  // empty unless problem.affine
  std::optional<Tensor> dy;
  std::string stress;  // informative: how x was made
  uint64_t seed = 0;

  bool has_backward() const { return dy.has_value(); }
  // Validates the problem and every tensor's dtype and shape (InvalidProblem naming the field).
  void validate() const;
};

// Generates a case: x from the stress class, gamma/beta when affine, dy when backward.
Case make_case(const Problem& p, const Stress& s, uint64_t seed, bool backward);

class CaseError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Writes case.json and the .npy files (each atomically) into dir, creating it.
void save_case(const Case& c, const std::filesystem::path& dir);
// Reads and validates a case directory; throws CaseError (bad JSON, missing/bad files) or
// InvalidProblem (a valid file describing an invalid problem or mismatched tensors).
Case load_case(const std::filesystem::path& dir);

}  // namespace gnv
