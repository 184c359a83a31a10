#pragma once
// The exact reference. Every value is computed from the exact input the kernel saw and rounded
// once to the target dtype (correctly rounded; see docs/numerics.md "The oracle"). The unrounded value is
// handed to the metrics as a double-double (hi + lo), together with the condition scale of each
// element: the error a backward-stable algorithm may make there, in units of the accumulation
// type's unit roundoff (see docs/numerics.md "Metrics and budgets").
#include <cstdint>
#include <string>
#include <vector>

#include "gnv/case.h"
#include "gnv/tensor.h"

namespace gnv {

struct ExactOutput {
  std::string name;             // "y", "mean", "rstd", "dx", "dgamma", "dbeta"
  Tensor rounded;               // correctly rounded to its dtype (acc dtype for mean/rstd)
  std::vector<double> hi, lo;   // exact value ~ hi + lo; hi is NaN where the value is undefined
                                // (the non-finite policy: the kernel must give NaN or +-Inf there)
  std::vector<double> scale;    // condition scale S_i >= 0 (see README), per element
  std::vector<double> kappa;    // condition number of the group(s) behind element i (0: none)
  int64_t reduction_length = 1; // elements summed to make one value (budget grows with log2)
};

struct OracleResult {
  std::vector<ExactOutput> outputs;
  std::vector<double> kappa;  // per (n, g): max|x| / sqrt(var + eps); NaN for non-finite groups
  int64_t undecided = 0;      // values whose rounding could not be certified (README: the claim)

  const ExactOutput& get(const std::string& name) const;
};

// Forward: y (x_shape, dtype), mean and rstd ((N,G), acc dtype).
OracleResult oracle_forward(const Case& c);
// Backward: dx (x_shape, dtype), and dgamma, dbeta ((C), dtype) when affine. Needs c.dy.
OracleResult oracle_backward(const Case& c);

// Independent references for the equivalence properties: their own formulas over rows, not
// calls into the GroupNorm oracle. Inputs and outputs are f64 tensors; results correctly
// rounded to f64.
// LayerNorm: x is (N, L) with L = C*S in channels-first order, normalized per row; gamma/beta
// (L) or empty (identity).
Tensor layer_norm_reference(const Tensor& x, const Tensor* gamma, const Tensor* beta, double eps);
// InstanceNorm: x (N, C, S), normalized per (n, c); gamma/beta (C) or empty.
Tensor instance_norm_reference(const Tensor& x, const Tensor* gamma, const Tensor* beta, double eps);

// Central finite differences of an independent high-precision (256-bit) forward, with the
// case's dy as the output weights: d(sum_i dy_i y_i)/d(x_j, gamma_c, beta_c). Used by tests to
// confirm the oracle's analytic backward; costs O(numel^2). Values are f64.
struct FiniteDiff {
  std::vector<double> dx, dgamma, dbeta;  // dgamma/dbeta empty unless affine
};
FiniteDiff finite_diff_backward(const Case& c);

}  // namespace gnv
