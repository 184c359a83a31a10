#include <algorithm>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "gnv/impl.h"

namespace gnv {

bool Capabilities::supports(DType d) const {
  return std::find(dtypes.begin(), dtypes.end(), d) != dtypes.end();
}
bool Capabilities::supports(Layout l) const {
  return std::find(layouts.begin(), layouts.end(), l) != layouts.end();
}
bool Capabilities::supports(Epilogue e) const {
  return std::find(epilogues.begin(), epilogues.end(), e) != epilogues.end();
}
Lack Capabilities::lacks(const Problem& p) const {
  if (!supports(p.dtype)) return {"dtype", fmt::format("dtype {}", name(p.dtype))};
  if (!supports(p.layout)) return {"layout", fmt::format("layout {}", name(p.layout))};
  if (!supports(p.epilogue)) return {"epilogue", fmt::format("epilogue {}", name(p.epilogue))};
  if (p.per_sample() && !per_sample) return {"affine_mode", "per-sample affine"};
  return {};
}
Capabilities Capabilities::full(std::string device, std::string summary) {
  Capabilities c;
  c.dtypes.assign(std::begin(kAllDTypes), std::end(kAllDTypes));
  c.layouts.assign(std::begin(kAllLayouts), std::end(kAllLayouts));
  c.device = std::move(device);
  c.summary = std::move(summary);
  return c;
}

Registry& Registry::instance() {
  static Registry r;
  return r;
}

void Registry::add(std::unique_ptr<Impl> impl) {
  if (find(impl->name())) throw std::logic_error(fmt::format("impl '{}' registered twice", impl->name()));
  impls_.push_back(std::move(impl));
}

const Impl* Registry::find(std::string_view name) const {
  for (const auto& i : impls_)
    if (i->name() == name) return i.get();
  return nullptr;
}

const Impl& Registry::get(std::string_view name) const {
  if (const Impl* i = find(name)) return *i;
  std::vector<std::string_view> names;
  for (const Impl* i : all()) names.push_back(i->name());
  throw std::invalid_argument(
      fmt::format("unknown implementation '{}' (available: {})", name, fmt::join(names, ", ")));
}

std::unique_ptr<Impl> Registry::remove(std::string_view name) {
  auto it = std::find_if(impls_.begin(), impls_.end(), [&](const auto& i) { return i->name() == name; });
  if (it == impls_.end()) return nullptr;
  std::unique_ptr<Impl> out = std::move(*it);
  impls_.erase(it);
  return out;
}

std::vector<const Impl*> Registry::all() const {
  std::vector<const Impl*> v;
  for (const auto& i : impls_) v.push_back(i.get());
  std::sort(v.begin(), v.end(), [](auto* a, auto* b) { return a->name() < b->name(); });
  return v;
}

}  // namespace gnv
