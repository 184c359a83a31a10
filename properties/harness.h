#pragma once
// Runs one property (a RapidCheck property body) against one implementation, with the machinery
// every property shares: the claims an implementation makes (which relations are bitwise), the
// tolerances derived from the documented metrics, failure capture (the minimal counterexample's
// cases are saved as case directories that `gnv check --case` replays) and the RC_PARAMS line
// that reproduces a failure.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gen.h"
#include "gnv/case.h"
#include "gnv/check.h"
#include "gnv/impl.h"
#include "gnv/oracle.h"

namespace gnv::prop {

// Whether an implementation can run here: gnv::impl_available (include/gnv/impl.h). An impl that
// is not (CUDA without a GPU) is skipped with a reason, never failed.

// Which relations an implementation promises bit for bit. Derived from its capabilities:
//  - deterministic: the same input gives the same bits on every call (capabilities.deterministic);
//  - group_independent: each (n, g) group is computed from its own values only, in an order fixed
//    by the group size and layout, so batch slicing/permutation, group permutation and the
//    non-finite isolation are bitwise (deterministic CPU implementations);
//  - exact_pow2: every operation is an IEEE basic operation (+ - * / sqrt) applied in a
//    value-independent order, so scaling x by 2^k (eps by 4^k) and negating x commute with the
//    kernel exactly away from overflow and underflow; and the affine step with gamma = 1,
//    beta = 0 is the non-affine path (deterministic CPU implementations; an implementation with
//    approximate reciprocal square roots or a separate non-affine path must be listed in
//    kInexactPow2 in harness.cpp with its reason).
// Relations an implementation does not promise bitwise are checked with the tolerance that
// follows from the documented budgets instead.
struct Claims {
  bool deterministic = false;
  bool group_independent = false;
  bool exact_pow2 = false;
};
Claims claims_for(const Impl& impl);

// The error the documented metric allows element i of an exact output: budget x (u_acc * S_i +
// ulp(y_i)/2 + L * eta_acc), the denominator of max_cond_err times the budget (metrics.h).
double allowed_error(const ExactOutput& e, int64_t i);
// Elements whose error cannot be bounded: undefined (the non-finite policy applies), ill-posed
// (the rule of measure()), or an exact value that overflows the dtype (the kernel must return
// that infinity; check_case judges it).
bool not_judged(const ExactOutput& e, int64_t i);

enum class Match {
  strict_bits,  // the same bits (the same computation ran)
  same_value,   // the same IEEE value (+0 == -0, any NaN == any NaN): exact relations
  tolerance,    // within the sum of both sides' allowed errors
};

struct CompareOptions {
  Match mode = Match::tolerance;
  double factor = 1;                    // got ~ factor * want (+ add[i])
  const std::vector<double>* add = nullptr;
  const ExactOutput* e_want = nullptr;  // tolerance mode: the exact output behind `want`
  const ExactOutput* e_got = nullptr;   // ... and behind `got` (defaults to e_want)
  bool skip_outside_normal = false;     // skip elements outside the normal range of the dtype
  std::vector<char> skip;               // per element: skip (empty: none)
};

// The context of one RapidCheck test case of a property.
class Ctx {
 public:
  Ctx(const Impl& impl, DType dtype, Layout layout, bool conditioned);

  const Impl& impl;
  const DType dtype;
  const Layout layout;
  const Capabilities caps;
  const Claims claims;
  // The negative control's judged domain: moderate centered inputs where a one-pass variance is
  // within budget (see docs/properties.md "Property suite"); false for every other implementation.
  const bool conditioned;

  // Case options every property starts from (the conditioned profile for the control).
  CaseOptions options() const;
  // Lets the generator draw the fused forms this impl declares (properties that handle them).
  void allow_fused(CaseOptions& o) const {
    o.silu_ok = caps.supports(Epilogue::silu);
    o.per_sample_ok = caps.per_sample;
  }
  // Discards (RC_PRE) a case outside the conditioned domain; a no-op unless `conditioned`.
  void precondition(const Case& c) const;

  // Registers a case under test: if this test case fails, it is saved under `label`.
  void note(const std::string& label, const Case& c) const;
  [[noreturn]] void fail(const std::string& msg) const;
  void require(bool ok, const std::string& msg) const {
    if (!ok) fail(msg);
  }
  // Fails with the metrics of every output of a check that did not pass.
  void require_pass(const CheckResult& r, const Problem& p, bool policy_only = false) const;

  ForwardResult forward(const Case& c) const;
  BackwardResult backward(const Case& c, const Tensor& mean, const Tensor& rstd) const;

  // Compares `got` with `want` element by element (same shape), as opts says; `what` and the
  // problem/output name make the message.
  void compare(const std::string& what, const Problem& p, const std::string& output, const Tensor& want,
               const Tensor& got, const CompareOptions& opts) const;
  // A Match for a relation that is bitwise when `claimed`, else within tolerance.
  static Match bitwise_if(bool claimed, Match bitwise = Match::strict_bits) {
    return claimed ? bitwise : Match::tolerance;
  }
};

// Elements of a tensor (or an exact output) picked by flat index: out[i] = in[idx[i]].
Tensor gather(const Tensor& t, const std::vector<int64_t>& idx, std::vector<int64_t> shape);
ExactOutput gather(const ExactOutput& e, const std::vector<int64_t>& idx, std::vector<int64_t> shape);

// One property: a name (the test's name), and a body run once per RapidCheck test case.
struct PropertyDef {
  const char* name;
  const char* summary;
  int cases;                     // default RapidCheck test cases per impl x dtype x layout
  bool needs_backward = false;
  bool needs_both_layouts = false;
  // For a control implementation: the full input domain when this returns true for its claims
  // (the property is then bitwise, and cancellation cannot matter); the conditioned domain
  // otherwise.
  bool (*full_domain_for_control)(const Claims&) = nullptr;
  void (*body)(Ctx&) = nullptr;
  // A property of a fused form runs only on impls that declare it (else it is skipped: passed with
  // no test case by run_property, GTEST_SKIP in the fan-out).
  bool needs_silu = false;
  bool needs_per_sample = false;
};
// Why `impl` cannot run `def` at all ("" when it can): a missing backward, layout or fused form.
std::string property_unsupported(const PropertyDef& def, const Capabilities& caps);

struct RunConfig {
  int max_success = 100;
  int max_size = 100;
  int max_discard_ratio = 10;
  uint64_t seed = 0;
  bool shrink = true;
  bool save_cases = true;
};
// The default configuration of a property test: `cases` x GNV_PROPERTY_DEPTH test cases, a seed
// fixed per test id (mixed with GNV_PROPERTY_SEED); RC_PARAMS's max_success, seed and noshrink
// win when given.
RunConfig default_config(int cases, const std::string& id);

struct Outcome {
  enum class Kind { passed, failed, gave_up, error } kind = Kind::passed;
  int num_success = 0;
  std::string report;          // the full failure report (empty when passed)
  std::string counterexample;  // RapidCheck's shown counterexample
  std::string description;     // why the minimal case failed
  std::string reproduce;       // RC_PARAMS="reproduce=..."
  std::vector<std::filesystem::path> case_dirs;
  bool passed() const { return kind == Kind::passed; }
};

// Runs the property against impl. dtype/layout: fixed, or (nullopt) drawn per test case from
// those the impl supports. `conditioned_override` forces the input domain (ControlIsCaught).
Outcome run_property(const PropertyDef& def, const Impl& impl, std::optional<DType> dtype,
                     std::optional<Layout> layout, const std::string& id, const RunConfig& cfg,
                     std::optional<bool> conditioned_override = std::nullopt);

// Where failing cases are saved: $GNV_PROPERTY_OUT, else <temp>/gnv-properties.
std::filesystem::path failure_dir();

}  // namespace gnv::prop
