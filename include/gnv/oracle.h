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
  std::vector<long double> scale;  // condition scale S_i >= 0 (docs/numerics.md), per element; long
                                   // double: in f64 it may pass double's range while u_acc * S_i does not
  std::vector<double> kappa;    // condition number of the group(s) behind element i (0: none)
  int64_t reduction_length = 1; // elements summed to make one value (budget grows with log2)
};

struct OracleResult {
  std::vector<ExactOutput> outputs;
  std::vector<double> kappa;  // per (n, g): max|x| / sqrt(var + eps); NaN for non-finite groups
  int64_t undecided = 0;      // values whose rounding could not be certified (README: the claim)
  int64_t fallbacks = 0;      // values the fast path left to the MPFR path (docs/numerics.md
                              // "The fast path"): out of its range, or a rounding it could not decide

  const ExactOutput& get(const std::string& name) const;
};

// Two evaluations of the same exact values. `reference` forms every sum and product in MPFR.
// `fast` forms the exact sums in integer digits (oracles/superacc.h) and each output in
// double-word arithmetic with a proven error bound, and hands the values that bound cannot round
// with certainty to the reference evaluation (counted in `fallbacks`). Their rounded outputs, hi
// and kappa are identical bit for bit (tests/test_oracle_paths.cpp, fuzz target oracle_paths);
// lo and scale agree as oracle_paths_mismatch states (lo is v - hi within the bound, not RN(v - hi)).
enum class OraclePath { fast, reference };
struct OracleOptions {
  OraclePath path = OraclePath::fast;
  int threads = 0;  // groups evaluated in parallel: 0 means oracle_threads()
  // The fast path sums runs of at least this many f32/f16/bf16 values in per-exponent bins
  // (oracles/superacc.h, NarrowAcc); shorter runs go straight to the superaccumulator. The result
  // is the same exact sum either way; tests and the fuzz target set 1 to reach the bins with
  // small cases.
  int64_t binned_from = 256;
};
// The default thread count of one oracle call: cpu_threads(), except on a thread inside a
// ScopedOracleThreads (a sweep's job threads, which already run cases side by side). Results
// never depend on it.
int oracle_threads();
class ScopedOracleThreads {
 public:
  explicit ScopedOracleThreads(int threads);
  ~ScopedOracleThreads();
  ScopedOracleThreads(const ScopedOracleThreads&) = delete;
  ScopedOracleThreads& operator=(const ScopedOracleThreads&) = delete;

 private:
  int saved_;
};

// "" where two results of one case agree as the paths must (rounded bits, hi and kappa
// identical; |lo_a - lo_b| <= 2^-90 (|hi| + scale) + 2^-1000; scales within a relative 2^-40), else the first
// difference, for a test or fuzz target to print.
std::string oracle_paths_mismatch(const OracleResult& a, const OracleResult& b);

// Forward: y (x_shape, dtype), mean and rstd ((N,G), acc dtype).
OracleResult oracle_forward(const Case& c, const OracleOptions& o = {});
// Backward: dx (x_shape, dtype), and dgamma, dbeta ((C), dtype) when affine. Needs c.dy.
OracleResult oracle_backward(const Case& c, const OracleOptions& o = {});

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
