#pragma once
// The one interface every GroupNorm implementation sits behind, and the registry that lists them.
// An implementation registers itself at the bottom of its own file with GNV_REGISTER_IMPL.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gnv/problem.h"
#include "gnv/tensor.h"

namespace gnv {

// What capabilities lack for a problem: the Problem field (InvalidProblem's) and the words.
struct Lack {
  std::string field;  // "dtype", "layout", "epilogue", "affine_mode"; empty when nothing is lacking
  std::string what;   // "dtype f16", "layout nhwc", "epilogue silu", "per-sample affine"
  bool empty() const { return field.empty(); }
};

struct Capabilities {
  std::vector<DType> dtypes;
  std::vector<Layout> layouts;
  std::vector<Epilogue> epilogues{Epilogue::none};  // the fused epilogues it applies
  bool per_sample = false;                          // takes (N, C) gamma and beta
  bool forward = true;
  bool backward = true;
  std::string device = "cpu";
  bool deterministic = true;  // bitwise the same output for the same input, every call
  bool control = false;       // expected to fail (a negative control such as `onepass`)
  bool statistics = true;     // writes mean and rstd (an external runner may not: only y is judged)
  std::string summary;        // one line: the algorithm, in words

  bool supports(DType d) const;
  bool supports(Layout l) const;
  bool supports(Epilogue e) const;
  // Nothing (empty()) when these capabilities cover p's dtype, layout, epilogue and affine mode;
  // else the first of them that is missing.
  Lack lacks(const Problem& p) const;
  // Every dtype and layout, forward and backward, deterministic, not a control; no epilogue and
  // per-channel parameters only (a kernel that fuses more says so).
  static Capabilities full(std::string device, std::string summary);
};

// Tensors follow Problem: x, y, dy, dx have x_shape() in p.dtype; gamma, beta, dgamma, dbeta
// have shape (C) in p.dtype; mean and rstd have shape (N, G) in acc_dtype(p.dtype).
// gamma/beta (and dgamma/dbeta) are null when p.affine is false: gamma = 1, beta = 0; their
// shape is p.param_shape(): (C), or (N, C) for per-sample parameters.
// With p.epilogue = silu, forward writes y = silu(gamma xhat + beta), and backward takes dy as the
// gradient of that y (so it needs beta: silu'(gamma xhat + beta)).
struct ForwardArgs {
  const Problem& p;
  const Tensor& x;
  const Tensor* gamma;
  const Tensor* beta;
  Tensor& y;
  Tensor& mean;
  Tensor& rstd;
};

struct BackwardArgs {
  const Problem& p;
  const Tensor& dy;
  const Tensor& x;
  const Tensor& mean;  // the statistics of x (the harness passes the oracle's, rounded to acc)
  const Tensor& rstd;
  const Tensor* gamma;
  const Tensor* beta;  // read only with an epilogue
  Tensor& dx;
  Tensor* dgamma;
  Tensor* dbeta;
};

class Impl {
 public:
  virtual ~Impl() = default;
  virtual std::string_view name() const = 0;
  virtual Capabilities capabilities() const = 0;
  // Whether this implementation can run here (a GPU implementation without a visible device stays
  // registered, so `gnv list` shows it, but is not available; calling it throws a clear error).
  virtual bool available() const { return true; }
  // The gnv options that load this impl again in a fresh gnv process, for reproducers and replay
  // lines ("--runner '...' --runner-name NAME"); empty for impls every gnv has built in.
  virtual std::string load_options() const { return {}; }
  // Called only with a validated problem, a supported dtype/layout and correctly shaped tensors.
  virtual void forward(const ForwardArgs& a) const = 0;
  virtual void backward(const BackwardArgs& a) const = 0;
};

// What tests, properties and fuzzers ask before running an implementation.
inline bool impl_available(const Impl& impl) { return impl.available(); }

class Registry {
 public:
  static Registry& instance();
  void add(std::unique_ptr<Impl> impl);     // throws on a duplicate name
  const Impl* find(std::string_view name) const;  // null when absent
  const Impl& get(std::string_view name) const;   // throws std::invalid_argument listing names
  std::vector<const Impl*> all() const;           // sorted by name
  // Takes an impl out (null when absent): impls registered for one run of the CLI inside a
  // longer-lived process (the Python package) leave with the run.
  std::unique_ptr<Impl> remove(std::string_view name);

 private:
  std::vector<std::unique_ptr<Impl>> impls_;
};

struct Registrar {
  explicit Registrar(std::unique_ptr<Impl> impl) { Registry::instance().add(std::move(impl)); }
};

}  // namespace gnv

#define GNV_REGISTER_IMPL(Type) \
  static const ::gnv::Registrar gnv_registrar_##Type{std::make_unique<Type>()}
