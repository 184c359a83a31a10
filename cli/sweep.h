#pragma once
// The options of `gnv sweep` and `gnv validate`, and the grid they describe: shared with the Python
// package, whose gnv.cases() takes the same grid options.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common.h"
#include "gnv/report.h"

namespace gnv::cli {

struct SweepOptions {
  std::string preset;  // empty: smoke, unless --grid or --shape names the grid
  std::string grid_file;
  std::vector<std::string> shapes;  // the ad-hoc section
  std::vector<int64_t> groups;
  std::vector<double> eps;
  std::string affine;             // with --shape: "" (off), per-channel or per-sample
  std::string epilogue = "none";  // with --shape
  std::vector<std::string> impls, dtypes, layouts, stresses, sections;
  std::vector<uint64_t> seeds;
  std::optional<bool> backward;  // unset: the preset's
  bool backward_flag = true;
  std::string out = "out";
  std::string shard;
  int jobs = 0;
  std::string baseline;
  double tolerance = 2;
  bool allow_missing = false;
  bool html = true;
  std::string write_baseline;
  std::string waivers;
  std::string budget;  // empty: the grid's
  double max_memory = 0;
  std::string save_cases = "failing";
  size_t max_saved_cases = 200;
  // `gnv validate`: the impls are the external ones (plus --impl, if given), loaded at run time.
  bool validate = false;
  ExternalOptions ext;
  std::vector<std::string> external_impls;
  std::map<std::string, std::string> external;  // impl -> the options that load it
};

// The grid of the options: --grid/--preset (or smoke), narrowed by --section, plus the ad-hoc
// --shape section, with --impl/--dtype/--layout/--stress/--seeds/--backward/--budget applied.
// Throws UsageError / GridError / std::invalid_argument.
report::Grid build_grid(const SweepOptions& o);

}  // namespace gnv::cli
