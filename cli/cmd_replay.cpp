// `gnv replay`: re-runs one fuzzer input (a crash-<sha1> file from libFuzzer, or a corpus file)
// outside libFuzzer, through the same decoding and judgement as the fuzz target (fuzz/decode.h),
// prints what it found, and can write it as a case directory that `gnv check --case` replays.
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "gnv/npy.h"
#include "fuzz/decode.h"

namespace gnv::cli {

namespace {

struct ReplayOptions {
  std::string file;
  std::string target;
  std::string save_case;
};

std::string read_file(const std::string& path) {
  // Fuzz inputs are small (libFuzzer's -max_len is KBs); 64 MiB bounds a mistaken path.
  return read_small_file_or<UsageError>(path, 64 << 20);
}

int replay_differential(const ReplayOptions& o, const std::string& bytes) {
  const Case c = fuzz::decode_differential(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  fmt::print("{}", fuzz::describe_case(c));
  if (!o.save_case.empty()) {
    save_case(c, o.save_case);
    fmt::print("saved case to {}\n", o.save_case);
  }
  const std::vector<fuzz::ImplCheck> checks = fuzz::run_differential(c);
  std::vector<std::string> found;
  for (const fuzz::ImplCheck& ic : checks) {
    const std::string impl(ic.impl->name());
    fmt::print("\ncheck {}{}\n", impl, c.has_backward() ? " backward" : "");
    print_result(stdout, c.problem, ic.result);
    fmt::print("  verdict: {}\n", verdict_label(ic.result.verdict));
    if (!o.save_case.empty()) fmt::print("reproduce: {}\n", reproduce_case_command(impl, o.save_case));
    if (fuzz::is_finding(ic.result)) found.push_back(impl);
  }
  if (checks.empty()) fmt::print("no implementation supports this case\n");
  if (found.empty()) {
    fmt::print("\nresult: no finding ({} implementation(s) checked)\n", checks.size());
    return kExitPass;
  }
  fmt::print("\nresult: FINDING in {}\n", fmt::join(found, ", "));
  return kExitFail;
}

int replay_oracle_paths(const ReplayOptions& o, const std::string& bytes) {
  const Case c = fuzz::decode_differential(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  if (!o.save_case.empty()) {
    save_case(c, o.save_case);
    fmt::print("saved case to {} (gnv oracle --case {} [--reference])\n", o.save_case, o.save_case);
  }
  const fuzz::Outcome out = fuzz::check_oracle_paths(c);
  fmt::print("{}result: {}\n", out.report, out.finding ? "FINDING" : "no finding");
  return out.finding ? kExitFail : kExitPass;
}

// The targets that check bytes as a file's text (npy, report, grid): no case directory to save.
int replay_text(const ReplayOptions& o, const std::string& bytes, fuzz::Outcome (*check)(std::string_view)) {
  if (!o.save_case.empty()) throw UsageError("--save-case applies to --target differential, oracle_paths and case");
  const fuzz::Outcome out = check(bytes);
  fmt::print("{}result: {}\n", out.report, out.finding ? "FINDING" : "no finding");
  return out.finding ? kExitFail : kExitPass;
}

int replay_case(const ReplayOptions& o, const std::string& bytes) {
  const std::filesystem::path dir =
      o.save_case.empty() ? fuzz::scratch_dir() / "case" : std::filesystem::path(o.save_case);
  fuzz::write_case_files(
      fuzz::split_case_files(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), dir);
  if (!o.save_case.empty())
    fmt::print("wrote the case directory to {} (replay: gnv check --case {} --impl NAME)\n",
               o.save_case, o.save_case);
  const fuzz::Outcome out = fuzz::check_case_dir(dir);
  fmt::print("{}result: {}\n", out.report, out.finding ? "FINDING" : "no finding");
  return out.finding ? kExitFail : kExitPass;
}

int run_replay(const ReplayOptions& o) {
  const std::string bytes = read_file(o.file);
  fmt::print("replay {} ({} bytes) --target {}\n", o.file, bytes.size(), o.target);
  if (o.target == "differential") return replay_differential(o, bytes);
  if (o.target == "oracle_paths") return replay_oracle_paths(o, bytes);
  if (o.target == "npy") return replay_text(o, bytes, fuzz::check_npy);
  if (o.target == "report") return replay_text(o, bytes, fuzz::check_report);
  if (o.target == "grid") return replay_text(o, bytes, fuzz::check_grid);
  return replay_case(o, bytes);
}

}  // namespace

Command register_replay(CLI::App& app) {
  auto o = std::make_shared<ReplayOptions>();
  CLI::App* sub = app.add_subcommand(
      "replay", "Re-run one fuzzer input (e.g. a libFuzzer crash file) outside libFuzzer and print "
                "what it finds; exit 1 on a finding");
  sub->add_option("file", o->file, "The input file")->required()->check(CLI::ExistingFile);
  sub->add_option("--target", o->target, "The fuzz target it belongs to: differential, oracle_paths, npy, case, report, grid")
      ->required()
      ->check(CLI::IsMember({"differential", "oracle_paths", "npy", "case", "report", "grid"}));
  sub->add_option("--save-case", o->save_case,
                  "Write the input as a case directory (differential: the decoded case; case: the "
                  "split files), replayable with `gnv check --case DIR`");
  return {sub, [o] { return run_replay(*o); }};
}

}  // namespace gnv::cli
