// `gnv suite`: the former main job, now the same command as `gnv sweep` (default preset smoke),
// kept so that existing scripts keep working. It writes report.json/report.md, no longer
// suite.json/suite.md.
#include "common.h"

namespace gnv::cli {

Command register_sweep_named(CLI::App& app, const std::string& cmd, const std::string& description);

Command register_suite(CLI::App& app) {
  return register_sweep_named(app, "suite", "Alias of `gnv sweep` (default preset smoke)");
}

}  // namespace gnv::cli
