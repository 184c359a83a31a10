#pragma once
// Shared pieces of the `gnv` subcommands: exit codes, error mapping, problem building, and the
// one way a check result is printed, serialized and reproduced.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "gnv/case.h"
#include "gnv/check.h"
#include "gnv/external.h"
#include "gnv/impl.h"
#include "gnv/problem.h"
#include "gnv/report.h"
#include "gnv/stress.h"

namespace gnv::cli {

// The exit-code contract of every subcommand (docs/guide.md "Commands").
inline constexpr int kExitPass = 0;
inline constexpr int kExitFail = 1;
inline constexpr int kExitUsage = 2;

// Bad usage or invalid input detected by the CLI itself: exit 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A subcommand: its CLI11 node and the runner main calls once parsing succeeded. Runners are not
// CLI11 callbacks, so their exceptions reach run_guarded instead of CLI11's own handling.
struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

Command register_list(CLI::App& app);
Command register_check(CLI::App& app);
Command register_oracle(CLI::App& app);
Command register_suite(CLI::App& app);

// Runs a subcommand, mapping exceptions to exit codes: invalid input (InvalidProblem, CaseError,
// NpyError, std::invalid_argument, UsageError) -> 2, anything else -> 1; prints "gnv: error: ...".
int run_guarded(const std::function<int()>& run);
void print_error(const std::string& msg);
// The message of the last print_error (the Python package raises it as its exception's text).
const std::string& last_error();
void clear_last_error();

// The whole command line: parses argv, runs the subcommand, returns its exit code. Implementations
// registered during the run (plugins, runners) are unregistered when it returns.
int run_main(int argc, char** argv);

// The end of gnv sweep and gnv merge: report.json (the source of truth) written atomically into
// `out` and read back; report.md and junit.xml, and report.html when `html`, rendered from the file
// as written; the baseline written to `baseline` unless empty; the text view printed. Returns the
// report as written; `files` gets the list of files written into out, for the closing line.
report::Report publish_report(const report::Report& r, const std::filesystem::path& out, bool html,
                              const std::string& baseline, std::string& files);

// load_case, with an invalid problem or tensor reported against the file that holds it
// (InvalidProblem names only the field: "x: shape is ...").
Case load_case_reporting_file(const std::string& dir);

// The options that define a generated case, as `gnv check` takes them.
struct ProblemSpec {
  std::string shape;
  std::string dtype = "f32";
  std::string layout = "nchw";
  int64_t groups = 0;
  bool groups_given = false;  // so that --groups 0 is reported as an invalid G, not as missing
  double eps = 1e-5;
  std::string affine;             // "" (off), per-channel or per-sample
  std::string epilogue = "none";  // none or silu
  std::string stress = "normal";
  uint64_t seed = 0;
};
// Parses and validates; throws UsageError / InvalidProblem / std::invalid_argument.
Problem build_problem(const ProblemSpec& spec);
// --affine [per-channel|per-sample] and --epilogue none|silu, as every command that generates
// cases takes them; returned so that --case can exclude them.
std::vector<CLI::Option*> add_operator_options(CLI::App* sub, std::string& affine, std::string& epilogue);

// The impls named in a comma list, or for "all"/empty every impl available on this machine (a GPU
// impl without a GPU is left out). Throws on an unknown name (std::invalid_argument listing the
// registered ones).
std::vector<const Impl*> select_impls(const std::vector<std::string>& names);
// Empty when the impl can run the problem here, else the reason (unavailable, dtype, layout, pass).
std::string unsupported_reason(const Impl& impl, const Problem& p, bool backward);

// --max-memory: the option (bytes, or with a unit: 8G, 512MiB) and the check every subcommand makes
// before it allocates a case: the estimated peak (estimate_check_bytes) times the cases checked at
// once must fit, else UsageError naming the shape, the estimate and the limit.
void add_memory_option(CLI::App* sub, double& limit);
std::string bytes_text(double bytes);
void require_memory(const Problem& p, bool backward, int at_once, double limit);

// The command that regenerates a case from scratch and checks it.
std::string reproduce_command(const std::string& impl, const Problem& p, const std::string& stress,
                              uint64_t seed, bool backward);
std::string reproduce_case_command(const std::string& impl, const std::string& case_dir);
// A reproducer with what it needs beyond the case: `load` (" --plugin ...", from use_external)
// after "gnv check", and " --budget NAME" unless the profile is the default.
std::string reproduce_with(std::string command, const std::string& load, BudgetProfile budget);
// --budget (pairwise or sequential), described the same way by every command; `what` says what
// the profile is used for here and what the default is.
CLI::Option* add_budget_option(CLI::App* sub, std::string& budget, const std::string& what);

// Prints the per-output block of a check (output lines, kappa range, undecided count).
void print_result(std::FILE* out, const Problem& p, const CheckResult& r);
// The block `gnv check` prints for one impl's check of a case: the header line, print_result,
// the verdict and the reproducer (gnv.check and gnv.judge in Python return the same text).
void print_check(std::FILE* out, const std::string& impl, bool control, const Case& c, bool backward,
                 const CheckResult& r, const std::string& reproduce);
// The worst element as "n=.. c=.. s=..: expected=.. actual=.." with enough digits to round-trip.
std::string describe_worst(const Problem& p, const OutputMetrics& m);
// Worst condition-scaled error over all outputs (0 when there are none).
double worst_cond_err(const CheckResult& r);

// JSON model of a check: numbers that are NaN/Inf become strings, which JSON cannot hold.
nlohmann::json json_number(double v);
nlohmann::json to_json(const Problem& p);
nlohmann::json to_json(const Problem& p, const CheckResult& r);

bool stderr_is_tty();

// Third-party kernels given on the command line (`gnv validate`, `gnv check`): plugins and
// external runners (gnv/external.h), registered as impls for this run.
struct ExternalOptions {
  std::vector<std::string> plugins;
  std::vector<std::string> runners;
  std::vector<std::string> runner_names;
  double timeout = 0;  // 0: 60 s per plugin call, 1800 s per runner batch
  bool no_stats = false;
  std::string runner_device = "external";
  std::vector<std::string> runner_fused;  // --runner-fused silu,per-sample
  std::string runner_dir;  // batches go to runner_dir/NAME; empty: a fresh temp directory
  std::string plugin_log_dir;  // plugin stdout/stderr to plugin_log_dir/STEM.log; empty: gnv's stderr
  double plugin_memory = 0;    // --plugin-memory: RLIMIT_AS of each plugin call (0: none)
};
void add_external_options(CLI::App* sub, ExternalOptions& o);
struct ExternalImpl {
  std::string name;
  std::string load;  // the options that load it again: "--plugin /abs/lib.so", "--runner 'CMD' ..."
};
// Loads, validates and registers every plugin and runner; throws ExternalError / UsageError.
std::vector<ExternalImpl> register_external(const ExternalOptions& o);
// For the commands that judge one impl (check, minimize): registers the --plugin/--runner impls
// (none: nothing), makes a single one `impl` when impl is empty, and returns " LOAD" -- how a
// reproducer loads impl again -- or "" when impl is not one of them.
std::string use_external(const ExternalOptions& o, std::string& impl);
// 'text' quoted for a POSIX shell.
std::string shell_quote(const std::string& s);

// CLI11 converts "-1" into an unsigned option by wrapping it to 2^64-1; seeds must not wrap.
CLI::Validator non_negative_integer();

}  // namespace gnv::cli
