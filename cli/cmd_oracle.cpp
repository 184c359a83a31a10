// `gnv oracle`: the exact outputs of a case directory, correctly rounded, as .npy files, so a
// kernel outside this harness can be compared with them.
#include <filesystem>
#include <fmt/format.h>
#include <memory>
#include <string>

#include "common.h"
#include "gnv/npy.h"
#include "gnv/oracle.h"

namespace gnv::cli {

namespace {

struct OracleCmdOptions {
  std::string case_dir;
  std::string out_dir;
  bool reference = false;
};

int run_oracle(const OracleCmdOptions& o) {
  const Case c = load_case_reporting_file(o.case_dir);
  const std::filesystem::path out = o.out_dir.empty() ? o.case_dir : o.out_dir;
  std::filesystem::create_directories(out);
  fmt::print("oracle: {}\n", c.problem.describe());
  int64_t undecided = 0, fallbacks = 0;
  auto write_all = [&](const OracleResult& r) {
    undecided += r.undecided;
    fallbacks += r.fallbacks;
    for (const ExactOutput& e : r.outputs) {
      const std::filesystem::path file = out / (e.name + ".npy");
      write_npy(file, e.rounded);
      fmt::print("  wrote {} {} {}\n", file.string(), name(e.rounded.dtype()), e.rounded.shape_string());
    }
  };
  const gnv::OracleOptions path{o.reference ? OraclePath::reference : OraclePath::fast};
  write_all(oracle_forward(c, path));
  // dy.npy is the case's request for gradients.
  if (c.has_backward()) write_all(oracle_backward(c, path));
  if (fallbacks)
    fmt::print("  fall-backs: {} value(s) the fast path left to the MPFR path\n", fallbacks);
  if (undecided)
    fmt::print("  undecided: {} value(s) whose correct rounding could not be certified\n", undecided);
  return kExitPass;
}

}  // namespace

Command register_oracle(CLI::App& app) {
  auto o = std::make_shared<OracleCmdOptions>();
  CLI::App* sub = app.add_subcommand(
      "oracle", "Write the exact (correctly rounded) outputs of a case directory as .npy files");
  sub->add_option("--case", o->case_dir, "Case directory (case.json + .npy files)")->required();
  sub->add_option("--out", o->out_dir, "Output directory (default: the case directory)");
  sub->add_flag("--reference", o->reference,
                "Evaluate every value on the MPFR reference path instead of the fast path (the same "
                "bits, slower; docs/numerics.md \"The fast path\")");
  return {sub, [o] { return run_oracle(*o); }};
}

}  // namespace gnv::cli
