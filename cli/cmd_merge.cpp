// `gnv merge SHARD.json...`: joins the reports of `gnv sweep --shard k/n` runs into the report of
// the whole grid (identical to an unsharded run's apart from timing fields), copies the shards'
// saved cases next to it, and judges it like a sweep (exit 0 pass, 1 fail, 2 bad input).
#include <filesystem>
#include <fmt/format.h>
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "run_dir.h"
#include "gnv/npy.h"
#include "gnv/report.h"

namespace gnv::cli {

namespace {

namespace fs = std::filesystem;

struct MergeOptions {
  std::vector<std::string> shards;
  std::string out = "out";
  bool html = true;
  std::string write_baseline;
};

// Copies a shard's saved case into the merged folder. The shard came from another machine: only
// plain directories and regular files are copied (a symlink to /etc, a FIFO or a device in a case
// folder is refused), and nothing is followed out of src.
void copy_case_dir(const fs::path& src, const fs::path& dst) {
  auto kind = [](const fs::path& p) { return fs::symlink_status(p).type(); };
  if (kind(src) != fs::file_type::directory)
    throw UsageError(fmt::format("{}: a saved case must be a plain directory", src.string()));
  fs::create_directories(dst);
  for (const fs::directory_entry& e : fs::recursive_directory_iterator(src)) {
    const fs::path rel = fs::relative(e.path(), src);
    const fs::file_type t = kind(e.path());
    if (t == fs::file_type::directory) {
      fs::create_directories(dst / rel);
    } else if (t == fs::file_type::regular) {
      fs::copy_file(e.path(), dst / rel, fs::copy_options::overwrite_existing);
    } else {
      throw UsageError(fmt::format("{}: not a regular file or directory (a symlink, FIFO or device in a shard's "
                                   "case folder is refused)", e.path().string()));
    }
  }
}

// Whether writing `out` would replace one of the inputs.
bool same_file(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  return fs::equivalent(a, b, ec);
}

int run_merge(const MergeOptions& o) {
  using namespace gnv::report;
  std::vector<Report> shards;
  Report merged;
  try {
    for (const std::string& s : o.shards) shards.push_back(read_report(s));
    merged = merge_reports(shards);
  } catch (const ReportError& e) {
    print_error(e.what());
    return kExitUsage;
  }
  for (const std::string& s : o.shards) {
    for (const char* f : {"report.json", "report.md", "junit.xml", "report.html"})
      if (same_file(fs::path(o.out) / f, s))
        throw UsageError(fmt::format("--out {}: would overwrite the input {}", o.out, s));
    if (!o.write_baseline.empty() && same_file(o.write_baseline, s))
      throw UsageError(fmt::format("--write-baseline {}: would overwrite the input {}", o.write_baseline, s));
  }
  // Written as a set and swapped in at the end, like a sweep's (docs/guide.md "Report directory").
  RunDir dir(o.out);
  const fs::path out = dir.staging();
  // Case directories are relative to their report's folder: bring them along.
  for (size_t i = 0; i < shards.size(); ++i) {
    const fs::path from = fs::path(o.shards[i]).parent_path();
    for (const Cell& c : shards[i].cells) {
      if (c.case_dir.empty()) continue;
      const fs::path src = from / c.case_dir, dst = out / c.case_dir;
      std::error_code ec;
      // case_dir is cases/NAME (the reader checks it); cases itself must not lead elsewhere either.
      if (fs::exists(fs::symlink_status(from / "cases", ec)) && !fs::is_directory(fs::symlink_status(from / "cases", ec)))
        throw UsageError(fmt::format("{}: not a plain directory (a symlink in a shard is refused)", (from / "cases").string()));
      if (!fs::exists(fs::symlink_status(src, ec))) {
        fmt::print(stderr, "gnv: warning: {}: missing (cell {})\n", src.string(), c.id());
        continue;
      }
      copy_case_dir(src, dst);
    }
  }
  std::string files;
  const Report written =
      publish_report(merged, out, o.html, o.write_baseline.empty() ? "" : dir.place(o.write_baseline).string(), files);
  dir.commit();
  fmt::print("merged {} shards into {}/{}\n", shards.size(), o.out, files);
  return summarize(written).passed_all ? kExitPass : kExitFail;
}

}  // namespace

Command register_merge(CLI::App& app) {
  auto o = std::make_shared<MergeOptions>();
  CLI::App* sub = app.add_subcommand(
      "merge", "Join the report.json files of `gnv sweep --shard k/n` runs (all n shards) into one report "
               "in --out, with their saved cases");
  sub->add_option("SHARDS", o->shards, "report.json of every shard")->required();
  sub->add_option("--out", o->out, "Output directory")
      ->capture_default_str()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  sub->add_flag("--html,!--no-html", o->html, "Write report.html (needs python3-matplotlib; default on)");
  sub->add_option("--write-baseline", o->write_baseline,
                  "Also write the merged report's baseline form (what `gnv compare` reads) to this file");
  return {sub, [o] { return run_merge(*o); }};
}

}  // namespace gnv::cli
