#include "gnv/check.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

#include "gnv/oracle.h"

namespace gnv {

namespace {

void require_supported(const Impl& impl, const Problem& p, bool backward) {
  const Capabilities caps = impl.capabilities();
  if (!caps.supports(p.dtype))
    throw InvalidProblem("dtype", fmt::format("{} does not support {}", impl.name(), name(p.dtype)));
  if (!caps.supports(p.layout))
    throw InvalidProblem("layout", fmt::format("{} does not support {}", impl.name(), name(p.layout)));
  if (backward && !caps.backward)
    throw InvalidProblem("backward", fmt::format("{} has no backward pass", impl.name()));
}

Tensor poisoned(DType d, std::vector<int64_t> shape) {
  Tensor t(d, std::move(shape));
  t.fill_bits(poison_bits(d));
  return t;
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

ForwardResult run_forward(const Impl& impl, const Case& c) {
  c.validate();
  const Problem& p = c.problem;
  require_supported(impl, p, false);
  const DType acc = acc_dtype(p.dtype);
  ForwardResult r{poisoned(p.dtype, p.x_shape()), poisoned(acc, p.stats_shape()),
                  poisoned(acc, p.stats_shape())};
  impl.forward({p, c.x, affine_ptr(c, c.gamma), affine_ptr(c, c.beta), r.y, r.mean, r.rstd});
  return r;
}

BackwardResult run_backward(const Impl& impl, const Case& c, const Tensor& mean, const Tensor& rstd) {
  c.validate();
  const Problem& p = c.problem;
  require_supported(impl, p, true);
  if (!c.dy) throw InvalidProblem("dy", "the backward pass needs dy");
  const DType acc = acc_dtype(p.dtype);
  validate_tensor(mean, "mean", acc, p.stats_shape());
  validate_tensor(rstd, "rstd", acc, p.stats_shape());
  BackwardResult r{poisoned(p.dtype, p.x_shape()), Tensor(), Tensor()};
  if (p.affine) {
    r.dgamma = poisoned(p.dtype, p.channel_shape());
    r.dbeta = poisoned(p.dtype, p.channel_shape());
  }
  impl.backward({p, *c.dy, c.x, mean, rstd, affine_ptr(c, c.gamma), r.dx,
                 p.affine ? &r.dgamma : nullptr, p.affine ? &r.dbeta : nullptr});
  return r;
}

CheckResult check_case(const Impl& impl, const Case& c, bool backward) {
  CheckResult res;
  try {
    c.validate();
    backward = backward && c.has_backward();
    require_supported(impl, c.problem, backward);
    const OracleResult fwd_exact = oracle_forward(c);
    res.oracle_undecided += fwd_exact.undecided;
    kappa_range(res, fwd_exact.kappa);
    const ForwardResult fwd = run_forward(impl, c);
    res.outputs.push_back(measure(fwd.y, fwd_exact.get("y")));
    if (impl.capabilities().statistics) {
      res.outputs.push_back(measure(fwd.mean, fwd_exact.get("mean")));
      res.outputs.push_back(measure(fwd.rstd, fwd_exact.get("rstd")));
    }
    if (backward) {
      const OracleResult bwd_exact = oracle_backward(c);
      res.oracle_undecided += bwd_exact.undecided;
      const BackwardResult bwd = run_backward(impl, c, fwd_exact.get("mean").rounded,
                                              fwd_exact.get("rstd").rounded);
      res.outputs.push_back(measure(bwd.dx, bwd_exact.get("dx")));
      if (c.problem.affine) {
        res.outputs.push_back(measure(bwd.dgamma, bwd_exact.get("dgamma")));
        res.outputs.push_back(measure(bwd.dbeta, bwd_exact.get("dbeta")));
      }
    }
    judge(res);
  } catch (const KernelAborted& e) {  // outputs measured before the crash are kept
    res.verdict = e.verdict();
    res.error = e.what();
  } catch (const std::exception& e) {
    res.verdict = Verdict::error;
    res.error = e.what();
  }
  return res;
}

}  // namespace gnv
