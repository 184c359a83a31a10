#pragma once
// The one path from a Case and an Impl to a verdict: validate, poison, run, compare with the
// oracle, judge. Used by `gnv check`, the suite, tests and (later) sweeps and fuzzers.
#include <stdexcept>
#include <string>
#include <vector>

#include "gnv/case.h"
#include "gnv/impl.h"
#include "gnv/metrics.h"

namespace gnv {

// Thrown by an isolated implementation (a plugin run in a child process, an external runner) whose
// call crashed or hung, or that declined the case: the check records verdict() (crash, timeout or
// skipped) with what() as the error text.
class KernelAborted : public std::runtime_error {
 public:
  KernelAborted(Verdict v, const std::string& msg) : std::runtime_error(msg), verdict_(v) {}
  Verdict verdict() const { return verdict_; }

 private:
  Verdict verdict_;
};

struct CheckResult {
  Verdict verdict = Verdict::pass;
  std::string error;                  // set when verdict == error
  std::vector<OutputMetrics> outputs; // forward: y, mean, rstd; backward adds dx[, dgamma, dbeta]
  double kappa_min = 0, kappa_max = 0;  // over finite groups
  int64_t oracle_undecided = 0;
  int64_t oracle_fallbacks = 0;  // values the oracle's fast path left to its MPFR path
  double seconds = 0;  // timing: this impl's own kernel runs and measurements (not the oracle)
};

// Runs the forward pass (and the backward pass when c.has_backward() and `backward`), each output
// buffer poisoned first. A pass whose output keeps the poison where the exact value is NaN runs a
// second time on the other poison pattern, to tell a written NaN from an unwritten element. The backward pass receives the oracle's mean and rstd, so its verdict
// does not depend on the forward's. Never throws for a bad case: returns verdict error.
CheckResult check_case(const Impl& impl, const Case& c, bool backward,
                       BudgetProfile profile = BudgetProfile::pairwise);
// check_case for several impls on one case with one oracle evaluation (check_case is its one-impl
// case): the same results as checking each impl alone (a test holds them to it), at a third of the
// cost for three impls, since the oracle dominates.
std::vector<CheckResult> check_case_shared(const std::vector<const Impl*>& impls, const Case& c,
                                           const std::vector<bool>& backward,
                                           BudgetProfile profile = BudgetProfile::pairwise);

// The peak memory of checking one case (case generation, the exact oracle, one impl's outputs and
// metrics), in bytes, from a model fitted to peak RSS measured on this project's CI machine
// (docs/guide.md "Memory"): 8 MiB + numel * (44 + 3*es forward, 90 + 6*es with the backward, and
// 120 more for the SiLU epilogue's backward) + group_size * (40 forward, 100 with the backward, 200
// with SiLU's), es the dtype's size. Saturates instead of overflowing, so an absurd shape gives a
// huge estimate, not a small one.
double estimate_check_bytes(const Problem& p, bool backward);
// A default limit for that estimate: 3/4 of this machine's physical memory.
double default_memory_limit();

// Just runs the kernel on poisoned outputs (no oracle): for properties and benchmarks.
// poison_variant selects poison_bits(d, variant).
struct ForwardResult { Tensor y, mean, rstd; };
struct BackwardResult { Tensor dx, dgamma, dbeta; };
ForwardResult run_forward(const Impl& impl, const Case& c, int poison_variant = 0);
BackwardResult run_backward(const Impl& impl, const Case& c, const Tensor& mean, const Tensor& rstd,
                            int poison_variant = 0);

}  // namespace gnv
