// Runs the whole property suite against every planted mutant (dtype and layout drawn per case from
// what the mutant supports) and prints which properties kill which mutant. Every mutant must be
// killed by at least one property; a survivor means the suite is blind to that bug.
//
//   GNV_MUTANTS=mut-a,mut-b       only these mutants
//   GNV_MUTANTS_VERBOSE=1         print each kill's full report (shrunk counterexample, RC_PARAMS
//                                 reproduction, saved case directories)
//   GNV_PROPERTY_DEPTH, GNV_PROPERTY_SEED, RC_PARAMS as for the property suite
#include <gtest/gtest.h>

#include <cstdlib>
#include <fmt/format.h>
#include <sstream>
#include <string>
#include <vector>

#include "mutants.h"
#include "properties.h"

namespace gnv::prop {
namespace {

bool selected(std::string_view name) {
  const char* env = std::getenv("GNV_MUTANTS");
  if (!env || !*env) return true;
  std::stringstream ss(env);
  std::string item;
  while (std::getline(ss, item, ','))
    if (item == name) return true;
  return false;
}

TEST(Mutants, EveryMutantIsKilled) {
  const char* verbose_env = std::getenv("GNV_MUTANTS_VERBOSE");
  const bool verbose = verbose_env && *verbose_env && std::string(verbose_env) != "0";
  const std::vector<PropertyDef>& props = all_properties();
  struct Row {
    std::string name, bug;
    std::vector<int> killed_by;  // property indices
    std::string first_kill;
  };
  std::vector<Row> rows;
  for (const mutants::Mutant& m : mutants::all()) {
    if (!selected(m.impl->name())) continue;
    Row row{std::string(m.impl->name()), m.bug, {}, {}};
    for (size_t k = 0; k < props.size(); ++k) {
      const PropertyDef& def = props[k];
      const std::string id = fmt::format("Mutants.{}.{}", m.impl->name(), def.name);
      RunConfig cfg = default_config(def.cases, id);
      cfg.save_cases = verbose;
      cfg.shrink = cfg.shrink && verbose;
      const Outcome o = run_property(def, *m.impl, std::nullopt, std::nullopt, id, cfg);
      EXPECT_TRUE(o.kind == Outcome::Kind::passed || o.kind == Outcome::Kind::failed)
          << m.impl->name() << " x " << def.name << ": " << o.report;
      if (o.kind != Outcome::Kind::failed) continue;
      row.killed_by.push_back(static_cast<int>(k));
      if (row.first_kill.empty()) {
        std::string d = o.description.substr(0, o.description.find('\n'));
        if (d.size() > 150) d = d.substr(0, 147) + "...";
        row.first_kill = fmt::format("{}: {}", def.name, d);
      }
      if (verbose) std::cout << "---- " << m.impl->name() << " killed by " << def.name << "\n" << o.report << "\n";
    }
    rows.push_back(std::move(row));
  }

  // The table: one column per property (numbered as in issue 3 / README), X where it kills.
  std::string out = fmt::format("\nMutant kill table (columns: properties 1..{}, X = the property fails on the mutant)\n",
                                props.size());
  size_t w = 0;
  for (const Row& r : rows) w = std::max(w, r.name.size());
  out += fmt::format("{:<{}} |", "mutant", w);
  for (size_t k = 0; k < props.size(); ++k) out += fmt::format(" {:>2}", k + 1);
  out += " | kills\n";
  for (const Row& r : rows) {
    out += fmt::format("{:<{}} |", r.name, w);
    for (size_t k = 0; k < props.size(); ++k)
      out += std::find(r.killed_by.begin(), r.killed_by.end(), static_cast<int>(k)) != r.killed_by.end() ? "  X"
                                                                                                           : "  .";
    out += fmt::format(" | {}\n", r.killed_by.size());
  }
  out += "\nproperties: ";
  for (size_t k = 0; k < props.size(); ++k) out += fmt::format("{}{}={}", k ? ", " : "", k + 1, props[k].name);
  out += "\n\nper mutant, the bug and the first property that killed it:\n";
  for (const Row& r : rows)
    out += fmt::format("  {}: {}\n      {}\n", r.name, r.bug, r.killed_by.empty() ? "SURVIVED" : r.first_kill);
  std::vector<int> kills_per_property(props.size(), 0);
  for (const Row& r : rows)
    for (int k : r.killed_by) ++kills_per_property[static_cast<size_t>(k)];
  out += "\nproperties that killed no mutant:";
  bool none = true;
  for (size_t k = 0; k < props.size(); ++k)
    if (kills_per_property[k] == 0) {
      out += fmt::format(" {}", props[k].name);
      none = false;
    }
  out += none ? " none\n" : "\n";
  std::cout << out << std::flush;

  for (const Row& r : rows) EXPECT_FALSE(r.killed_by.empty()) << "mutant " << r.name << " (" << r.bug << ") survived";
}

}  // namespace
}  // namespace gnv::prop
