#pragma once
// Distances from a kernel's output to the exact one, and the verdict. One path for every
// consumer: check, sweeps, properties, fuzzers, third-party validation.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "gnv/oracle.h"
#include "gnv/problem.h"
#include "gnv/tensor.h"

namespace gnv {

// crash and timeout: an isolated kernel (a plugin, an external runner) died or hung; like error,
// the cell has no measurement, and its error text says how it ended (signal, time limit).
// skipped: the kernel declines the case (a capability it does not declare, a plugin's
// GNV_ERR_UNSUPPORTED, a runner's unsupported.txt): not a failure, and not judged either.
enum class Verdict { pass, fail, error, unwritten, crash, timeout, skipped };
std::string_view name(Verdict v);
std::string verdict_label(Verdict v);  // name(v) in capitals, as reports and the CLI print it: PASS, FAIL, ...
// error, crash, timeout: the kernel produced nothing to measure.
inline bool no_result(Verdict v) { return v == Verdict::error || v == Verdict::crash || v == Verdict::timeout; }
// The verdicts whose cell carries a reason text instead of (or beside) measurements.
inline bool has_reason(Verdict v) { return no_result(v) || v == Verdict::skipped; }

struct OutputMetrics {
  std::string name;
  int64_t count = 0;
  double max_ulp = 0;        // ULP distance in the output's dtype; inf on a NaN/Inf mismatch
  double max_u_err = 0;      // max |err| / (u_out * max|exact|)
  double max_cond_err = 0;   // max |err| / (u_acc * S_i + ulp(exact_i)/2): the verdict metric
  double normwise = 0;       // ||actual - exact||_2 / ||exact||_2 over finite elements
  double budget = 0;         // allowed max_cond_err
  int64_t ill_posed = 0;     // u_acc * kappa > kIllPosed, or u_acc * S_i past the dtype's max:
                             // measured, not judged
  int64_t unwritten = 0;     // elements still holding the poison pattern
  int64_t policy_violations = 0;  // finite where the NaN/Inf policy demands non-finite, or NaN
                                  // where the exact value is finite
  int64_t worst_index = -1;  // flat index of the element with the largest condition-scaled error
  double worst_expected = 0, worst_actual = 0;
  long double worst_scale = 0;  // its condition scale S_i (long double: an f64 scale may pass double's range)
  Verdict verdict = Verdict::pass;
};

// Beyond u_acc * kappa = 1/64, an input perturbation within the budget can change a group's
// variance by a large fraction, so the first-order condition scale no longer bounds what a
// backward-stable kernel may return: such elements are counted (ill_posed), not judged.
inline constexpr double kIllPosed = 1.0 / 64;

// The contract a kernel promises for its reductions (docs/numerics.md "Budgets"): pairwise, the default and
// strictest, for pairwise, chunked-Welford and lane-parallel sums (error growth log2(L)); sequential
// for a textbook one-element-at-a-time sum or Welford (error growth sqrt(L) with overwhelming
// probability). No per-cell tolerance: a profile is one rule for every output of every cell.
enum class BudgetProfile { pairwise, sequential };
std::string_view name(BudgetProfile p);
BudgetProfile parse_budget_profile(std::string_view s);  // throws std::invalid_argument

// The documented budget for the condition-scaled error of one output of a reduction of length L:
// pairwise 4 + 2*log2(L); sequential 4 + 16*sqrt(L).
double budget_for(int64_t reduction_length, BudgetProfile profile = BudgetProfile::pairwise);

// Compares `actual` (same dtype and shape as exact.rounded) against the exact output. `rerun`, when
// given, is the same kernel's output from a second run on buffers poisoned with poison_bits(d, 1):
// an element whose exact value is NaN is unwritten when it holds the first poison in `actual` and
// the second in `rerun` (without a rerun such an element counts as a written NaN).
OutputMetrics measure(const Tensor& actual, const ExactOutput& exact, const Tensor* rerun = nullptr,
                      BudgetProfile profile = BudgetProfile::pairwise);

// The denominator of the condition-scaled error at element i of an exact output: u_acc * S_i +
// ulp(y_i)/2 + L * eta_acc (docs/numerics.md "Metrics and budgets"). max_cond_err is the largest
// |actual - exact| / cond_denominator; the budget allows budget_for(L) of it.
long double cond_denominator(const ExactOutput& e, int64_t i);

// Whether element i is ill-posed (counted, not judged): u_acc * kappa_i > kIllPosed, or the error a
// backward-stable kernel may make there, u_acc * S_i, exceeds the output dtype's range.
bool ill_posed(const ExactOutput& e, int64_t i);

// Human-readable location of a flat index in an output tensor ("n=1 c=3 s=17").
std::string describe_index(const Problem& p, const std::string& output, int64_t flat);

}  // namespace gnv
