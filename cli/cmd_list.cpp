// `gnv list`: what can be checked (implementations and their capabilities) and with which inputs.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common.h"

namespace gnv::cli {

namespace {

// Descriptions mirror include/gnv/stress.h; the names are what --stress accepts.
constexpr std::pair<const char*, const char*> kStressClasses[] = {
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

template <class E> std::vector<std::string> names_of(const std::vector<E>& v) {
  std::vector<std::string> s;
  for (E e : v) s.emplace_back(name(e));
  return s;
}

int run_list_json() {
  nlohmann::ordered_json impls = nlohmann::ordered_json::array();
  for (const Impl* impl : Registry::instance().all()) {
    const Capabilities c = impl->capabilities();
    impls.push_back({{"name", impl->name()},
                     {"dtypes", names_of(c.dtypes)},
                     {"layouts", names_of(c.layouts)},
                     {"epilogues", names_of(c.epilogues)},
                     {"per_sample", c.per_sample},
                     {"forward", c.forward},
                     {"backward", c.backward},
                     {"device", c.device},
                     {"deterministic", c.deterministic},
                     {"control", c.control},
                     {"available", impl_available(*impl)},
                     {"summary", c.summary}});
  }
  nlohmann::ordered_json stresses = nlohmann::ordered_json::array();
  for (const auto& [n, d] : kStressClasses) stresses.push_back({{"name", n}, {"description", d}});
  nlohmann::ordered_json grids = nlohmann::ordered_json::array();
  for (const report::PresetInfo& p : report::presets())
    grids.push_back({{"name", p.name}, {"file", p.file}, {"description", p.description}});
  const nlohmann::ordered_json j = {{"implementations", impls},
                                    {"stress_classes", stresses},
                                    {"all_stresses", report::all_stress_names()},
                                    {"presets", grids}};
  fmt::print("{}\n", j.dump(2));
  return kExitPass;
}

int run_list(bool json) {
  if (json) return run_list_json();
  fmt::print("implementations:\n");
  for (const Impl* impl : Registry::instance().all()) {
    const Capabilities c = impl->capabilities();
    std::string dirs = c.forward && c.backward ? "fwd+bwd" : c.forward ? "fwd" : c.backward ? "bwd" : "-";
    fmt::print("  {:<16} dtypes={:<16} layouts={:<10} {:<8} device={:<5} {}{}{}\n", impl->name(),
               // Joined first: a width on fmt::join pads every element, not the list.
               fmt::format("{}", fmt::join(names_of(c.dtypes), ",")),
               fmt::format("{}", fmt::join(names_of(c.layouts), ",")), dirs, c.device,
               c.deterministic ? "deterministic" : "nondeterministic",
               c.control ? "  CONTROL (expected to fail)" : "",
               impl_available(*impl) ? "" : "  NOT AVAILABLE on this machine");
    if (!c.summary.empty()) fmt::print("  {:<16} {}\n", "", c.summary);
    if (c.epilogues.size() > 1 || c.per_sample)
      fmt::print("  {:<16} fused: epilogues={}{}\n", "", fmt::join(names_of(c.epilogues), ","),
                 c.per_sample ? ", per-sample affine" : "");
  }
  fmt::print("\nstress classes (--stress):\n");
  for (const auto& [n, d] : kStressClasses) fmt::print("  {:<12} {}\n", n, d);
  fmt::print("\n\"all\" in a grid file: {}\n", fmt::join(report::all_stress_names(), " "));
  fmt::print("\npresets (--preset NAME; the grid files shipped in the source tree, compiled in):\n");
  for (const report::PresetInfo& p : report::presets())
    fmt::print("  {:<8} {:<18} {}\n", p.name, p.file, p.description);
  return kExitPass;
}

}  // namespace

Command register_list(CLI::App& app) {
  CLI::App* sub =
      app.add_subcommand("list", "List implementations (with capabilities), stress classes and preset grids");
  auto json = std::make_shared<bool>(false);
  sub->add_flag("--json", *json, "Print the same facts as JSON");
  return {sub, [json] { return run_list(*json); }};
}

}  // namespace gnv::cli
