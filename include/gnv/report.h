#pragma once
// The report model of a sweep: the grid it ran (a named preset, narrowed by options), every cell's
// parameters and measurements, and the environment. report.json is its one serialized form and
// the source of truth; Markdown, JUnit, HTML, merged shards and baseline comparisons are all made
// from a parsed Report, never from the sweep's memory.
//
// A *case* is one generated input: (dtype, layout, section, shape, G, stress, seed). A *cell* is
// one implementation checked on one case. Cells are numbered in the order of the full grid, so a
// shard's cells keep the numbers they have in the unsharded run and shards merge back exactly.
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "gnv/check.h"
#include "gnv/impl.h"
#include "gnv/metrics.h"
#include "gnv/problem.h"

namespace gnv::report {

// report.json: {"format": "gnv-report", "version": kSchemaVersion, ...}. Bump the version on any
// change a reader of the previous version would misread.
inline constexpr std::string_view kFormat = "gnv-report";
inline constexpr int kSchemaVersion = 1;
// The schema of a report whose grid has a fused form (epilogue, per-sample parameters): the same
// fields plus "epilogue" and "affine_mode" on shapes and problems.
inline constexpr int kSchemaVersionFused = 2;

// A malformed report file, one of another schema version, or reports that cannot be merged or
// compared (different grids, missing shards). The CLI maps it to exit code 2.
class ReportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// ---- the grid ---------------------------------------------------------------------------------

struct ShapeSpec {
  std::string name;             // unique within its section: "resnet50-res5", "2x32x8x8"
  std::string shape;            // logical N,C[,D][,H][,W], as --shape takes it
  std::vector<int64_t> groups;  // each G gives its own case
  bool affine = false;
  AffineMode affine_mode = AffineMode::per_channel;  // per_sample: gamma, beta of shape (N, C)
  Epilogue epilogue = Epilogue::none;
  double eps = 1e-5;
  std::string note;             // where the shape comes from (informative)
  bool fused() const { return epilogue != Epilogue::none || affine_mode != AffineMode::per_channel; }
};
// One choice of the grid's `affine` key: off, per channel (true) or per sample ("per-sample").
struct AffineChoice {
  bool on = false;
  AffineMode mode = AffineMode::per_channel;
  bool operator==(const AffineChoice&) const = default;
};

// A Cartesian block of the grid: every shape x G x stress x seed (x dtype x layout x impl).
struct Section {
  std::string name;
  std::vector<ShapeSpec> shapes;
  std::vector<std::string> stresses;  // canonical names (Stress::name())
  std::vector<uint64_t> seeds;
};

struct Grid {
  std::string preset;               // the grid's name: a preset (smoke, ci, full) or a grid file's
  std::vector<std::string> impls;   // in run order
  std::vector<std::string> dtypes;  // each impl runs those it supports
  std::vector<std::string> layouts;
  bool backward = true;             // impls without a backward pass run forward only
  BudgetProfile budget = BudgetProfile::pairwise;  // the verdict's budget rule (docs/numerics.md "Budgets")
  std::vector<Section> sections;
  // Impls loaded at run time by `gnv validate` (a plugin, an external runner): impl -> the
  // options that load it again ("--plugin PATH", "--runner 'CMD'"), so that reproducers and
  // replays of their cells work. Written as grid.external, only when not empty.
  std::map<std::string, std::string> external;
};

// A malformed grid file: "FILE:LINE: KEY: what is wrong". The CLI maps it to exit 2.
class GridError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// Grid files (TOML, docs/guide.md "Grid files"). `source` names the text in messages; the grid's name
// defaults to the file's stem. Throws GridError, and only GridError, on any malformed input.
Grid parse_grid(std::string_view toml_text, const std::string& source);
// A grid file, or a report.json (the grid it ran, as loaded; its external impls dropped).
// Refuses anything but a regular file of a few MiB. Throws GridError.
Grid load_grid_file(const std::filesystem::path& path);

// The presets are the grid files grids/NAME.toml, compiled into gnv at build time.
struct PresetInfo {
  std::string name, file, description;
};
std::vector<PresetInfo> presets();
std::vector<std::string> preset_names();                 // smoke, ci, full
Grid preset_grid(std::string_view name);                 // throws std::invalid_argument
// Every stress class once, offsets by decades from 1e0 to 1e8 (what "all" means in a grid file).
std::vector<std::string> all_stress_names();
// The section "adhoc" of `--shape S [--shape S2] --groups G[,G2] [--eps E[,E2]] [--affine]`: every
// stress class, seed 0. Throws std::invalid_argument naming the option.
Section adhoc_section(const std::vector<std::string>& shapes, const std::vector<int64_t>& groups,
                      const std::vector<double>& eps, AffineChoice affine, Epilogue epilogue = Epilogue::none);
// Whether any shape of the grid uses a fused form: its report is then written as schema version
// kSchemaVersionFused, which a gnv that predates the forms refuses instead of misreading.
bool uses_fused(const Grid& g);
std::string describe_grid(const Grid& g);                // one paragraph per section, Markdown

// One generated input of the grid.
struct CaseSpec {
  size_t index = 0;  // position in expand_cases(grid): the unit of sharding
  std::string section, shape_name;
  Problem problem;
  std::string stress;
  uint64_t seed = 0;
};
// Every case in grid order: dtype, layout, section, shape, G, stress, seed. Throws
// std::invalid_argument for an invalid shape or stress in the grid.
std::vector<CaseSpec> expand_cases(const Grid& g);

struct Shard {
  int index = 1, count = 1;  // 1-based: shard k of n
  bool operator==(const Shard&) const = default;
};
Shard parse_shard(std::string_view s);  // "k/n", 1 <= k <= n; throws std::invalid_argument
// Round robin over cases: every impl of a case lands in the same shard, so the shared oracle
// runs once per case and shards of one grid are disjoint and complete.
inline bool in_shard(size_t case_index, const Shard& s) {
  return static_cast<int>(case_index % static_cast<size_t>(s.count)) == s.index - 1;
}

// ---- cells and the report ---------------------------------------------------------------------

// A waiver that matched a cell (docs/guide.md "Waivers"): the cell is expected to fail.
struct WaiverNote {
  std::string reason;
  std::string link;  // optional: the upstream issue
  bool operator==(const WaiverNote&) const = default;
};

struct Cell {
  size_t index = 0;       // position in the full grid's cell list
  size_t case_index = 0;  // position of its case in expand_cases(grid): decides the shard
  std::string impl;
  bool control = false;
  std::string device = "cpu";
  std::string section, shape_name;
  Problem problem;
  std::string stress;
  uint64_t seed = 0;
  bool backward = false;
  // The measurements (verdict, error text, per-output metrics, kappa range, undecided count).
  CheckResult result;
  std::optional<WaiverNote> waiver;  // non-control cells only
  std::string reproduce;  // command that regenerates the case and checks it
  std::string case_dir;   // saved case of a cell that did not pass, relative to the report's folder
  double seconds = 0;     // timing: the cell's own kernel runs and measurements

  // Stable key across runs: impl/dtype/layout/section/shape/G<g>/stress/s<seed>.
  std::string id() const;
  // The part of the key without the impl (a case).
  std::string case_id() const;
  // Judged: the kernel ran the case (not SKIPPED). Only judged cells make breakdown points and
  // the table's worst entries.
  bool judged() const { return result.verdict != Verdict::skipped; }
  // Under a waiver: XFAIL (measured and did not pass, as expected) or XPASS (passed: the waiver
  // is stale). A waiver expects wrong numbers, not a kernel that produced none: a waived cell that
  // is ERROR, CRASH or TIMEOUT keeps that verdict and fails the run (it still keeps its waiver from
  // being judged stale, waived_nonpass).
  bool waived_nonpass() const { return waiver && judged() && result.verdict != Verdict::pass; }
  bool xfail() const { return waived_nonpass() && !no_result(result.verdict); }
  bool xpass() const { return waiver && result.verdict == Verdict::pass; }
};
// The cell's verdict as every rendering prints it: PASS, FAIL, ..., SKIPPED, or XFAIL / XPASS.
std::string cell_label(const Cell& c);

struct Environment {
  std::string gnv_version;
  std::string compiler, compiler_flags, build_type;
  std::string cpu;
  int64_t cpu_cores = 0;
  std::string os;
  std::string gpu;  // "none" when no GPU is visible
  std::map<std::string, std::string> libraries;
  std::string git_revision;
  std::string date;  // timing field: when the run started (UTC, ISO 8601)
  bool operator==(const Environment&) const = default;
};
// The environment of this process (compiler and flags from the build, CPU from /proc/cpuinfo,
// GPU from nvidia-smi when present, git revision of the source tree, the date now).
Environment current_environment();
// "gnv 0.4.0 (git v0.4.0-12-gabcdef0-dirty)": the version and the git describe baked in at build time.
std::string version_string();

struct Timing {
  double wall_s = 0;
  int jobs = 1;
};

// Which cells' cases were saved under cases/ (--save-cases), and how many the cap left out.
enum class SavePolicy { failing, all, none };
std::string_view name(SavePolicy p);
SavePolicy parse_save_policy(std::string_view s);  // throws std::invalid_argument
struct SavedCases {
  SavePolicy policy = SavePolicy::failing;
  size_t max = 0;      // the cap (0: none)
  size_t saved = 0;
  size_t omitted = 0;  // cells the policy selects beyond the cap
  bool operator==(const SavedCases&) const = default;
};
// Whether the policy saves a cell's case: failing = a non-control cell that did not pass and is
// neither SKIPPED nor XFAIL (what someone must look at); all = every cell that did not pass,
// controls and XFAIL included; none.
bool selects(SavePolicy p, const Cell& c);

struct Report {
  // "full": everything measured. "baseline": what `gnv compare` reads (per output: verdict,
  // budget, max_cond_err, max_ulp; no worst elements, reproducers or timing), small enough to
  // commit (baselines/ci.json). Both are schema version kSchemaVersion.
  bool baseline_detail = false;
  Environment env;
  Grid grid;
  Shard shard;
  std::vector<Cell> cells;  // sorted by index
  Timing timing;
  SavedCases saved;
};

// ---- serialization ----------------------------------------------------------------------------

// report.json text: top level indented, one line per cell (diffs stay readable). NaN and Inf are
// written as the strings "nan", "inf", "-inf". Doubles round-trip exactly. Zero counters, derived
// fields and the worst element of an exact output (max_ulp 0) are left out.
std::string to_json_text(const Report& r);
// A condition scale (the worst element's) past double's range, finite in long double (an f64
// scale: docs/numerics.md "Scales past double's range"), is written as a decimal string with every
// digit of its long double (2.5e308L is "2.49999999999999999994e+308"), not "inf"; this returns
// that text, or "" for a scale that a JSON number (or "nan"/"inf") holds.
std::string scale_past_double_text(long double scale);
// Parses report.json text. Throws ReportError, and only ReportError, on any malformed input:
// invalid JSON, missing or mistyped fields, another format or schema version, invalid problems,
// cells inconsistent with their problem or grid. This is the fuzz target's entry point.
Report parse_report(std::string_view text);
// The baseline form of a report (baseline_detail set, details dropped).
Report baseline_of(const Report& r);
// Reads a regular file of at most kMaxReportBytes (the full grid's report is tens of MB); ReportError
// messages start with the path.
inline constexpr std::uintmax_t kMaxReportBytes = 1ull << 30;
Report read_report(const std::filesystem::path& path);

// ---- waivers ----------------------------------------------------------------------------------

// One [[waiver]] of a waivers file: fnmatch patterns over a cell's impl, dtype, layout, section,
// shape name and stress ("*" when left out; a pattern without wildcards for dtype, layout or
// stress must be a valid name, and is canonicalized: "fp16", "offset:1e4"). Control cells are
// never waived: they are expected to fail already.
struct Waiver {
  std::string impl = "*", dtype = "*", layout = "*", section = "*", shape = "*", stress = "*";
  WaiverNote note;
  std::string source;  // "FILE:LINE", for messages
  bool matches(const Cell& c) const;
};
// Throws GridError ("FILE:LINE: KEY: ...") on any malformed input.
std::vector<Waiver> parse_waivers(std::string_view toml_text, const std::string& source);
std::vector<Waiver> load_waivers(const std::filesystem::path& path);  // bounded read; GridError
// Marks the cells of each waiver (a cell belongs to its first matching one): while some of its cells
// fails, its failing cells (XFAIL); once none fails, all of them (XPASS). Returns how many cells
// each waiver matched.
std::vector<size_t> apply_waivers(Report& r, const std::vector<Waiver>& waivers);

// ---- derived views ----------------------------------------------------------------------------

struct ControlSummary {
  size_t cells = 0, failed = 0, errors = 0;
  bool applicable = false;  // the control ran an offset:K >= kBlindOffset case
  bool blind = false;       // applicable and never failed: the harness cannot see its defect
};
// Breakdown point of one (impl, dtype, layout): the smallest offset:K at which some judged cell
// did not pass (SKIPPED cells are left out; XFAIL cells count: the kernel does break there).
struct Breakdown {
  std::string impl, dtype, layout;
  bool control = false;
  std::optional<double> offset;  // empty: no tested offset failed
  double max_tested = 0;         // the largest offset tested
};
struct Summary {
  size_t cells = 0, passed = 0, skipped = 0;
  std::vector<const Cell*> failures;  // non-control, unwaived, judged cells that did not pass
  std::vector<const Cell*> xfails;    // waived cells that did not pass: expected, not failures
  std::vector<const Cell*> xpasses;   // waived cells that passed: the waiver is stale, the run fails
  // Non-control impls every one of whose cells was SKIPPED: nothing of them was judged, the run fails.
  std::vector<std::string> unjudged;
  std::vector<const Cell*> control_errors;  // a control that errors is broken, not detected
  std::map<std::string, ControlSummary> controls;
  std::vector<Breakdown> breakdown;
  bool blind_rule_applied = true;  // false for a shard: judged when the shards are merged
  bool passed_all = true;          // the sweep's verdict (exit 0)
};
// A control only has to fail when the grid gave it a chance: an offset of at least this much.
inline constexpr double kBlindOffset = 1e4;
Summary summarize(const Report& r);

double worst_cond_err(const CheckResult& r);  // NaN when any output's is NaN
Verdict parse_verdict(std::string_view s);     // throws ReportError

std::string render_markdown(const Report& r);  // report.md
std::string render_junit(const Report& r);     // junit.xml
std::string render_text(const Report& r);      // what `gnv sweep` prints: table and summary
// The command that checks a failing cell's saved case again (its case_dir, from the report's
// folder), with the options that load an external kernel and the absolute path of this gnv.
std::string replay_command(const Report& r, const Cell& c);
// s as one word for a POSIX shell: unchanged when it holds only safe characters, else quoted.
std::string shell_word(const std::string& s);

// ---- merging and comparing --------------------------------------------------------------------

// Joins the reports of shards 1..n of one grid into the report of the whole grid. Throws
// ReportError when grids differ, shard counts disagree, a shard is missing or repeated.
Report merge_reports(std::vector<Report> shards);

// Why two reports cannot be compared (different grid, shard, schema) or empty when they can.
std::string grid_mismatch(const Grid& a, const Shard& sa, const Grid& b, const Shard& sb);

struct CellChange {
  const Cell* base = nullptr;
  const Cell* now = nullptr;
  std::string output;  // for growth: the output whose error grew
  double before = 0, after = 0;
};
struct Comparison {
  double tolerance = 2;
  bool allow_missing = false;
  std::vector<CellChange> regressions;   // non-control pass -> not pass, skipped -> judged, not pass
  std::vector<CellChange> lost_outputs;  // an output the baseline measured that the new cell lacks
  std::vector<CellChange> growths;       // non-control error grew beyond tolerance
  std::vector<CellChange> improvements;  // not pass -> pass
  std::vector<CellChange> control_changes;
  std::vector<const Cell*> only_base, only_now;
  size_t matched = 0;
  size_t matched_judged = 0;  // matched non-control cells judged on both sides (not SKIPPED)
  // The gate cannot pass by comparing nothing: no matched, judged kernel cell fails (matched
  // controls or SKIPPED cells compare nothing of the kernel's), and so does a
  // baseline cell missing from the new report (lost coverage; a renamed kernel is the common
  // cause) unless allow_missing.
  bool nothing_matched() const { return matched_judged == 0; }
  bool coverage_lost() const { return !only_base.empty() && !allow_missing; }
  bool regressed() const {
    return !regressions.empty() || !lost_outputs.empty() || !growths.empty() || nothing_matched() ||
           coverage_lost();
  }
};
// An error "grows beyond F" when after > F * max(before, 1): condition-scaled errors below 1 are
// within the final rounding to the output dtype, so growth there is noise, and a zero baseline
// does not make every later rounding a regression. NaN counts as infinite. Throws ReportError on
// mismatched grids (grid_mismatch). The reports must outlive the Comparison.
// A non-control cell that went from PASS to SKIPPED is a regression too: the kernel stopped
// covering a case it handled; so is one that went from SKIPPED to a judged verdict other than
// PASS (the kernel took the case on and fails it), and a measured cell that lacks an output its
// baseline measured (the statistics or the backward pass no longer checked: the gate would
// otherwise compare only what is left).
Comparison compare_reports(const Report& base, const Report& now, double tolerance, bool allow_missing = false);
std::string render_comparison(const Comparison& c, const std::string& base_name,
                              const std::string& now_name);

// ---- running ----------------------------------------------------------------------------------

// Writes report.json, report.md and junit.xml into dir, each atomically.
void write_report_files(const Report& r, const std::filesystem::path& dir);

// Renders report.html from report.json with reports/html_report.py (matplotlib, from the
// Debian python3 or $GNV_PYTHON). Returns an empty string on success, else why it could not.
std::string write_html_report(const std::filesystem::path& json, const std::filesystem::path& html);

}  // namespace gnv::report
