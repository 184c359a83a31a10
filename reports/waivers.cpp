// Waivers (docs/guide.md "Waivers"): cells expected to fail, each with a reason. A TOML file of
// [[waiver]] tables whose patterns (fnmatch globs) select cells; a waived cell that fails is XFAIL,
// one that passes is XPASS and fails the run, so a fixed kernel gets its waiver removed.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fnmatch.h>

#include "gnv/npy.h"
#include "gnv/report.h"
#include "gnv/stress.h"

#include "toml_read.h"

namespace gnv::report {

namespace {

constexpr std::uintmax_t kMaxWaiverFileBytes = 1 << 20;

bool has_glob(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

}  // namespace

std::vector<Waiver> parse_waivers(std::string_view text, const std::string& source) {
  auto fail = [&](const toml::source_region& at, const std::string& key, const std::string& what) {
    throw GridError(fmt::format("{}:{}: {}: {}", source, at.begin.line, key, what));
  };
  const toml::table top = read_toml(text, source);
  for (const auto& [k, v] : top)
    if (k.str() != "waiver") fail(k.source(), std::string(k.str()), "unknown key (expected [[waiver]] tables)");
  std::vector<Waiver> out;
  const toml::node* list = top.get("waiver");
  if (!list) return out;  // an empty file waives nothing
  const toml::array* arr = list->as_array();
  if (!arr || !arr->is_array_of_tables()) fail(list->source(), "waiver", "expected [[waiver]] tables");
  constexpr std::string_view kKeys[] = {"impl", "dtype", "layout", "section", "shape", "stress", "reason", "link"};
  for (size_t i = 0; i < arr->size(); ++i) {
    const toml::table& t = *arr->get(i)->as_table();
    const std::string where = fmt::format("waiver[{}]", i);
    Waiver w;
    w.source = fmt::format("{}:{}", source, t.source().begin.line);
    for (const auto& [k, v] : t) {
      const std::string key = where + "." + std::string(k.str());
      if (std::find(std::begin(kKeys), std::end(kKeys), k.str()) == std::end(kKeys))
        fail(k.source(), key, fmt::format("unknown key (expected one of {})", fmt::join(kKeys, ", ")));
      if (!v.is_string()) fail(v.source(), key, "expected a string");
      std::string s(*v.value<std::string_view>());
      // A pattern without wildcards must name something real: a typo would waive nothing.
      try {
        if (k.str() == "dtype" && !has_glob(s)) s = name(parse_dtype(s));
        if (k.str() == "layout" && !has_glob(s)) s = name(parse_layout(s));
        if (k.str() == "stress" && !has_glob(s)) s = parse_stress(s).name();
      } catch (const std::invalid_argument& e) {
        fail(v.source(), key, e.what());
      }
      if (k.str() == "impl") w.impl = s;
      else if (k.str() == "dtype") w.dtype = s;
      else if (k.str() == "layout") w.layout = s;
      else if (k.str() == "section") w.section = s;
      else if (k.str() == "shape") w.shape = s;
      else if (k.str() == "stress") w.stress = s;
      else if (k.str() == "reason") w.note.reason = s;
      else w.note.link = s;
    }
    if (w.note.reason.empty()) fail(t.source(), where, "missing key 'reason' (why the cells are expected to fail)");
    out.push_back(std::move(w));
  }
  return out;
}

std::vector<Waiver> load_waivers(const std::filesystem::path& path) {
  const std::string text = read_small_file_or<GridError>(path, kMaxWaiverFileBytes);
  return parse_waivers(text, path.string());
}

bool Waiver::matches(const Cell& c) const {
  auto m = [](const std::string& pattern, std::string_view value) {
    return ::fnmatch(pattern.c_str(), std::string(value).c_str(), 0) == 0;
  };
  return !c.control && m(impl, c.impl) && m(dtype, name(c.problem.dtype)) && m(layout, name(c.problem.layout)) &&
         m(section, c.section) && m(shape, c.shape_name) && m(stress, c.stress);
}

std::vector<size_t> apply_waivers(Report& r, const std::vector<Waiver>& waivers) {
  // Each cell belongs to its first matching waiver. A waiver is judged as a whole, like a pytest
  // xfail on a parametrized test: while some cell it matches fails, its failing cells are XFAIL and
  // its passing ones plain PASS (a pattern such as offset:* matches offsets that pass); once none
  // fails, every cell it matches is XPASS and the run fails, so the stale waiver is removed.
  std::vector<size_t> used(waivers.size(), 0);
  std::vector<bool> any_failed(waivers.size(), false);
  std::vector<int> owner(r.cells.size(), -1);
  for (size_t k = 0; k < r.cells.size(); ++k) {
    const Cell& c = r.cells[k];
    for (size_t i = 0; i < waivers.size(); ++i) {
      if (!waivers[i].matches(c)) continue;
      owner[k] = static_cast<int>(i);
      ++used[i];
      if (c.judged() && c.result.verdict != Verdict::pass) any_failed[i] = true;
      break;
    }
  }
  for (size_t k = 0; k < r.cells.size(); ++k) {
    if (owner[k] < 0) continue;
    const auto i = static_cast<size_t>(owner[k]);
    Cell& c = r.cells[k];
    if (!any_failed[i] || c.result.verdict != Verdict::pass) c.waiver = waivers[i].note;
  }
  return used;
}

}  // namespace gnv::report
