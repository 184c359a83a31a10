// `gnv compare BASE NEW`: the regression gate. Exit 1 when a non-control cell goes from pass to
// anything else, an error grows beyond the tolerance, a baseline cell is missing from NEW (unless
// --allow-missing) or nothing matched; 0 otherwise; 2 when a report is malformed or the two come
// from different grids. The Markdown diff goes to stdout (fits a CI job summary).
#include <filesystem>
#include <fmt/format.h>
#include <memory>
#include <string>

#include "common.h"
#include "gnv/npy.h"
#include "gnv/report.h"

namespace gnv::cli {

namespace {

struct CompareOptions {
  std::string base, now, out;
  double tolerance = 2;
  bool allow_missing = false;
};

int run_compare(const CompareOptions& o) {
  using namespace gnv::report;
  if (!(o.tolerance >= 1) || !std::isfinite(o.tolerance))
    throw UsageError(fmt::format("--tolerance {}: must be a finite factor >= 1", o.tolerance));
  try {
    for (const std::string& in : {o.base, o.now}) {
      std::error_code ec;
      if (!o.out.empty() && std::filesystem::equivalent(o.out, in, ec))
        throw UsageError(fmt::format("--out {}: would overwrite the input {}", o.out, in));
    }
    const Report base = read_report(o.base);
    const Report now = read_report(o.now);
    const Comparison cmp = compare_reports(base, now, o.tolerance, o.allow_missing);
    const std::string md = render_comparison(cmp, o.base, o.now);
    if (!o.out.empty()) write_file_atomic(o.out, md);
    fmt::print("{}", md);
    return cmp.regressed() ? kExitFail : kExitPass;
  } catch (const ReportError& e) {
    print_error(e.what());
    return kExitUsage;
  }
}

}  // namespace

Command register_compare(CLI::App& app) {
  auto o = std::make_shared<CompareOptions>();
  CLI::App* sub = app.add_subcommand(
      "compare", "Compare two sweep reports (a baseline and a new one): exit 1 on a pass->fail, an error grown "
                 "beyond --tolerance, baseline cells missing from NEW or no matched cell; 2 on malformed or "
                 "mismatched reports; Markdown on stdout");
  sub->add_option("BASE", o->base, "Baseline report.json")->required();
  sub->add_option("NEW", o->now, "New report.json")->required();
  sub->add_option("--tolerance", o->tolerance,
                  "Allowed growth factor F: an error grows when new > F * max(old, 1)")
      ->capture_default_str();
  sub->add_option("--out", o->out, "Also write the Markdown diff to this file");
  sub->add_flag("--allow-missing", o->allow_missing,
                "Baseline cells missing from NEW are listed but do not fail (default: they fail, as lost coverage; "
                "no matched cell at all always fails)");
  return {sub, [o] { return run_compare(*o); }};
}

}  // namespace gnv::cli
