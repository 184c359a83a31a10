#include "gnv/check.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <stdexcept>
#include <utility>
#include <fmt/format.h>

#include "gnv/oracle.h"

namespace gnv {

namespace {

// Why impl cannot run the problem, as InvalidProblem's field and message; an empty field when it can.
std::pair<std::string, std::string> unsupported(const Impl& impl, const Problem& p, bool backward) {
  const Capabilities caps = impl.capabilities();
  if (const Lack lack = caps.lacks(p); !lack.empty())
    return {lack.field, fmt::format("{} does not support {}", impl.name(), lack.what)};
  if (backward && !caps.backward) return {"backward", fmt::format("{} has no backward pass", impl.name())};
  return {};
}

void require_supported(const Impl& impl, const Problem& p, bool backward) {
  if (auto [field, msg] = unsupported(impl, p, backward); !field.empty()) throw InvalidProblem(field, msg);
}

Tensor poisoned(DType d, std::vector<int64_t> shape, int variant) {
  Tensor t(d, std::move(shape));
  t.fill_bits(poison_bits(d, variant));
  return t;
}

// Whether some element holds the first poison where the exact value is NaN: only a second run on
// the other poison pattern tells whether the kernel wrote that NaN.
bool ambiguous(const Tensor& t, const ExactOutput& e) {
  if (t.dtype() != e.rounded.dtype() || t.shape() != e.rounded.shape()) return false;  // measure() reports it
  const uint64_t poison = poison_bits(t.dtype());
  for (int64_t i = 0; i < t.numel(); ++i)
    if (std::isnan(e.hi[i]) && t.bits(i) == poison) return true;
  return false;
}

const Tensor* affine_ptr(const Case& c, const Tensor& t) { return c.problem.affine ? &t : nullptr; }

void judge(CheckResult& r) {
  for (const OutputMetrics& m : r.outputs) {
    if (m.verdict == Verdict::unwritten) r.verdict = Verdict::unwritten;
    else if (m.verdict == Verdict::fail && r.verdict == Verdict::pass) r.verdict = Verdict::fail;
  }
}

void kappa_range(CheckResult& r, const std::vector<double>& kappa) {
  bool any = false;
  for (double k : kappa) {
    if (!std::isfinite(k)) continue;
    r.kappa_min = any ? std::min(r.kappa_min, k) : k;
    r.kappa_max = any ? std::max(r.kappa_max, k) : k;
    any = true;
  }
}

}  // namespace

ForwardResult run_forward(const Impl& impl, const Case& c, int poison_variant) {
  c.validate();
  const Problem& p = c.problem;
  require_supported(impl, p, false);
  const DType acc = acc_dtype(p.dtype);
  ForwardResult r{poisoned(p.dtype, p.x_shape(), poison_variant), poisoned(acc, p.stats_shape(), poison_variant),
                  poisoned(acc, p.stats_shape(), poison_variant)};
  impl.forward({p, c.x, affine_ptr(c, c.gamma), affine_ptr(c, c.beta), r.y, r.mean, r.rstd});
  return r;
}

BackwardResult run_backward(const Impl& impl, const Case& c, const Tensor& mean, const Tensor& rstd,
                            int poison_variant) {
  c.validate();
  const Problem& p = c.problem;
  require_supported(impl, p, true);
  if (!c.dy) throw InvalidProblem("dy", "the backward pass needs dy");
  const DType acc = acc_dtype(p.dtype);
  validate_tensor(mean, "mean", acc, p.stats_shape());
  validate_tensor(rstd, "rstd", acc, p.stats_shape());
  BackwardResult r{poisoned(p.dtype, p.x_shape(), poison_variant), Tensor(), Tensor()};
  if (p.affine) {
    r.dgamma = poisoned(p.dtype, p.param_shape(), poison_variant);
    r.dbeta = poisoned(p.dtype, p.param_shape(), poison_variant);
  }
  impl.backward({p, *c.dy, c.x, mean, rstd, affine_ptr(c, c.gamma), affine_ptr(c, c.beta), r.dx,
                 p.affine ? &r.dgamma : nullptr, p.affine ? &r.dbeta : nullptr});
  return r;
}

std::vector<CheckResult> check_case_shared(const std::vector<const Impl*>& impls, const Case& c,
                                           const std::vector<bool>& backward, BudgetProfile profile) {
  if (backward.size() != impls.size()) throw std::logic_error("check_case_shared: one flag per impl");
  std::vector<CheckResult> res(impls.size());
  auto error_all = [&](const std::string& msg) {
    for (CheckResult& r : res) {
      r = CheckResult{};
      r.verdict = Verdict::error;
      r.error = msg;
    }
    return res;
  };
  std::vector<bool> bwd(impls.size());
  std::vector<bool> runs(impls.size(), false);
  bool any = false, any_bwd = false;
  try {
    c.validate();
    for (size_t i = 0; i < impls.size(); ++i) {
      bwd[i] = backward[i] && c.has_backward();
      if (auto [field, msg] = unsupported(*impls[i], c.problem, bwd[i]); !field.empty()) {
        // A capability the impl does not declare: it declines the case (a sweep records SKIPPED;
        // gnv check refuses the request up front).
        res[i].verdict = Verdict::skipped;
        res[i].error = InvalidProblem(field, msg).what();
        continue;
      }
      runs[i] = any = true;
      any_bwd = any_bwd || bwd[i];
    }
  } catch (const std::exception& e) {
    return error_all(e.what());
  }
  if (!any) return res;
  // Each oracle once, for every impl; a failure is every impl's error (the backward's only for
  // the impls that check a backward, after their forward is measured).
  std::optional<OracleResult> fwd_exact, bwd_exact;
  std::string fwd_error, bwd_error;
  try {
    fwd_exact = oracle_forward(c);
  } catch (const std::exception& e) {
    fwd_error = e.what();
  }
  if (fwd_exact && any_bwd) {
    try {
      bwd_exact = oracle_backward(c);
    } catch (const std::exception& e) {
      bwd_error = e.what();
    }
  }
  for (size_t i = 0; i < impls.size(); ++i) {
    if (!runs[i]) continue;
    CheckResult& r = res[i];
    const auto t0 = std::chrono::steady_clock::now();
    struct Clock {  // charges the impl's time on every way out of the block
      CheckResult& r;
      std::chrono::steady_clock::time_point t0;
      ~Clock() { r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); }
    } clock{r, t0};
    try {
      if (!fwd_exact) throw std::runtime_error(fwd_error);
      r.oracle_undecided += fwd_exact->undecided;
      r.oracle_fallbacks += fwd_exact->fallbacks;
      kappa_range(r, fwd_exact->kappa);
      const bool stats = impls[i]->capabilities().statistics;
      const ForwardResult fwd = run_forward(*impls[i], c);
      std::optional<ForwardResult> fwd2;
      if (ambiguous(fwd.y, fwd_exact->get("y")) ||
          (stats && (ambiguous(fwd.mean, fwd_exact->get("mean")) || ambiguous(fwd.rstd, fwd_exact->get("rstd")))))
        fwd2 = run_forward(*impls[i], c, 1);
      r.outputs.push_back(measure(fwd.y, fwd_exact->get("y"), fwd2 ? &fwd2->y : nullptr, profile));
      if (stats) {
        r.outputs.push_back(measure(fwd.mean, fwd_exact->get("mean"), fwd2 ? &fwd2->mean : nullptr, profile));
        r.outputs.push_back(measure(fwd.rstd, fwd_exact->get("rstd"), fwd2 ? &fwd2->rstd : nullptr, profile));
      }
      if (bwd[i]) {
        if (!bwd_exact) throw std::runtime_error(bwd_error);
        r.oracle_undecided += bwd_exact->undecided;
        r.oracle_fallbacks += bwd_exact->fallbacks;
        const Tensor& mean = fwd_exact->get("mean").rounded;
        const Tensor& rstd = fwd_exact->get("rstd").rounded;
        const BackwardResult b = run_backward(*impls[i], c, mean, rstd);
        const bool affine = c.problem.affine;
        std::optional<BackwardResult> b2;
        if (ambiguous(b.dx, bwd_exact->get("dx")) ||
            (affine && (ambiguous(b.dgamma, bwd_exact->get("dgamma")) || ambiguous(b.dbeta, bwd_exact->get("dbeta")))))
          b2 = run_backward(*impls[i], c, mean, rstd, 1);
        r.outputs.push_back(measure(b.dx, bwd_exact->get("dx"), b2 ? &b2->dx : nullptr, profile));
        if (affine) {
          r.outputs.push_back(measure(b.dgamma, bwd_exact->get("dgamma"), b2 ? &b2->dgamma : nullptr, profile));
          r.outputs.push_back(measure(b.dbeta, bwd_exact->get("dbeta"), b2 ? &b2->dbeta : nullptr, profile));
        }
      }
      judge(r);
    } catch (const KernelAborted& e) {  // outputs measured before the crash are kept
      r.verdict = e.verdict();
      r.error = e.what();
      // A kernel that declines its backward pass after a forward that did not pass keeps that
      // verdict: a decline never hides a measured failure.
      if (e.verdict() == Verdict::skipped) {
        CheckResult measured;
        measured.outputs = r.outputs;
        judge(measured);
        if (measured.verdict != Verdict::pass) r.verdict = measured.verdict;
      }
    } catch (const std::exception& e) {
      r.verdict = Verdict::error;
      r.error = e.what();
    }
  }
  return res;
}

double estimate_check_bytes(const Problem& p, bool backward) {
  // In double: N*C*S of an absurd shape overflows int64 but not double.
  double n = static_cast<double>(std::max<int64_t>(p.N, 0)) * static_cast<double>(p.C);
  for (int64_t e : p.spatial) n *= static_cast<double>(e);
  const double m = static_cast<double>(p.C) / static_cast<double>(std::max<int64_t>(p.G, 1)) *
                   (n > 0 ? n / (static_cast<double>(std::max<int64_t>(p.N, 1)) * static_cast<double>(p.C)) : 0);
  const double es = info(p.dtype).bytes;
  // Fitted to peak RSS on the 2-core machine (docs/guide.md "Memory"), with about 10 % to spare.
  // The SiLU backward (intervals at 128 bits per element, and a group's exact values at once)
  // needs about twice the plain one.
  const bool silu_backward = backward && p.epilogue == Epilogue::silu;
  const double per_element = (backward ? 90 + 6 * es : 44 + 3 * es) + (silu_backward ? 120 : 0);
  const double per_group_element = silu_backward ? 200 : backward ? 100 : 40;
  return 8.0 * (1 << 20) + n * per_element + m * per_group_element;
}

double default_memory_limit() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return 16.0 * (1ull << 30);  // unknown: a 16 GiB guess
  return 0.75 * static_cast<double>(pages) * static_cast<double>(page);
}

CheckResult check_case(const Impl& impl, const Case& c, bool backward, BudgetProfile profile) {
  return check_case_shared({&impl}, c, {backward}, profile).front();
}

}  // namespace gnv
