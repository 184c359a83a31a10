// `gnv list`: what can be checked (implementations and their capabilities) and with which inputs.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <string>
#include <vector>

#include "common.h"

namespace gnv::cli {

namespace {

template <class E> std::string join_names(const std::vector<E>& v) {
  std::vector<std::string> s;
  for (E e : v) s.emplace_back(name(e));
  return fmt::format("{}", fmt::join(s, ","));
}

int run_list() {
  fmt::print("implementations:\n");
  for (const Impl* impl : Registry::instance().all()) {
    const Capabilities c = impl->capabilities();
    std::string dirs = c.forward && c.backward ? "fwd+bwd" : c.forward ? "fwd" : c.backward ? "bwd" : "-";
    fmt::print("  {:<16} dtypes={:<16} layouts={:<10} {:<8} device={:<5} {}{}{}\n", impl->name(),
               join_names(c.dtypes), join_names(c.layouts), dirs, c.device,
               c.deterministic ? "deterministic" : "nondeterministic",
               c.control ? "  CONTROL (expected to fail)" : "",
               impl_available(*impl) ? "" : "  NOT AVAILABLE on this machine");
    if (!c.summary.empty()) fmt::print("  {:<16} {}\n", "", c.summary);
  }
  // Descriptions mirror include/gnv/stress.h; the names are what --stress accepts.
  fmt::print("\nstress classes (--stress):\n");
  const std::pair<const char*, const char*> classes[] = {
      {"normal", "x ~ N(0, 1)"},
      {"offset:K", "N(0, 1) around a common offset K (1 <= K <= 1e8): tests cancellation"},
      {"tiny-var", "a group whose spread is tiny next to its mean"},
      {"huge", "magnitudes near the dtype's largest finite value"},
      {"subnormal", "magnitudes in the dtype's subnormal range"},
      {"constant", "every element of a group equal: variance 0, only eps remains"},
      {"outlier", "normal data with one large outlier per group"},
      {"bimodal", "two well separated clusters per group"},
      {"special", "NaN/Inf in some groups: the non-finite policy applies"},
  };
  for (const auto& [n, d] : classes) fmt::print("  {:<12} {}\n", n, d);
  std::vector<std::string> defaults;
  for (const Stress& s : default_stresses()) defaults.push_back(s.name());
  fmt::print("\ndefault suite stresses: {}\n", fmt::join(defaults, " "));
  return kExitPass;
}

}  // namespace

Command register_list(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("list", "List implementations (with capabilities) and stress classes");
  return {sub, run_list};
}

}  // namespace gnv::cli
