// The report model's derived facts (cell keys, the summary, breakdown points), the environment
// of a run, and the shared-oracle check the sweep runs.
#include <boost/version.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fmt/format.h>
#include <fstream>
#include <gmp.h>
#include <gnu/libc-version.h>
#include <map>
#include <mpfr.h>
#include <nlohmann/json.hpp>
#include <set>
#include <sys/utsname.h>
#include <thread>
#include <tuple>

#include "gnv/npy.h"
#include "gnv/oracle.h"
#include "gnv/report.h"
#include "gnv/stress.h"
#include "gnv_build_info.h"

namespace gnv::report {

std::string Cell::case_id() const {
  return fmt::format("{}/{}/{}/{}/G{}/{}/s{}", name(problem.dtype), name(problem.layout), section,
                     shape_name, problem.G, stress, seed);
}

std::string Cell::id() const { return impl + "/" + case_id(); }

Verdict parse_verdict(std::string_view s) {
  for (Verdict v : {Verdict::pass, Verdict::fail, Verdict::error, Verdict::unwritten, Verdict::crash, Verdict::timeout,
                    Verdict::skipped})
    if (s == verdict_label(v)) return v;
  throw ReportError(
      fmt::format("unknown verdict '{}' (expected PASS, FAIL, ERROR, UNWRITTEN, CRASH, TIMEOUT or SKIPPED)", s));
}

double worst_cond_err(const CheckResult& r) {
  double w = 0;
  for (const OutputMetrics& m : r.outputs) {
    if (std::isnan(m.max_cond_err)) return m.max_cond_err;
    w = std::max(w, m.max_cond_err);
  }
  return w;
}

namespace {

// K of an offset:K stress, or nothing.
std::optional<double> offset_of(const std::string& stress) {
  try {
    const Stress s = parse_stress(stress);
    if (s.kind == StressKind::offset) return s.param;
  } catch (const std::invalid_argument&) {
  }
  return std::nullopt;
}

}  // namespace

std::string cell_label(const Cell& c) {
  if (c.xpass()) return "XPASS";
  if (c.xfail()) return "XFAIL";
  return verdict_label(c.result.verdict);
}

std::string_view name(SavePolicy p) {
  switch (p) {
    case SavePolicy::failing: return "failing";
    case SavePolicy::all: return "all";
    case SavePolicy::none: return "none";
  }
  return "?";
}

SavePolicy parse_save_policy(std::string_view s) {
  for (SavePolicy p : {SavePolicy::failing, SavePolicy::all, SavePolicy::none})
    if (s == name(p)) return p;
  throw std::invalid_argument(fmt::format("--save-cases '{}': expected failing, all or none", s));
}

bool selects(SavePolicy p, const Cell& c) {
  if (c.result.verdict == Verdict::pass || !c.judged()) return false;
  switch (p) {
    case SavePolicy::failing: return !c.control && !c.xfail();
    case SavePolicy::all: return true;
    case SavePolicy::none: return false;
  }
  return false;
}

Summary summarize(const Report& r) {
  Summary s;
  s.cells = r.cells.size();
  s.blind_rule_applied = r.shard.count == 1;
  // (impl, dtype, layout) -> (smallest failing K, largest tested K), judged cells only.
  std::map<std::tuple<std::string, std::string, std::string>, Breakdown> bd;
  std::map<std::string, size_t> judged_of;  // non-control impl -> its judged cells
  for (const Cell& c : r.cells) {
    const bool ok = c.result.verdict == Verdict::pass;
    if (!c.control) judged_of[c.impl] += c.judged();
    if (!c.judged()) {
      ++s.skipped;
      continue;
    }
    const std::optional<double> k = offset_of(c.stress);
    if (c.control) {
      s.passed += ok;
      ControlSummary& cs = s.controls[c.impl];
      ++cs.cells;
      if (no_result(c.result.verdict)) {
        ++cs.errors;
        s.control_errors.push_back(&c);
      } else if (!ok) {
        ++cs.failed;
      }
      if (k && *k >= kBlindOffset) cs.applicable = true;
    } else if (c.xpass()) {
      s.xpasses.push_back(&c);
    } else if (c.xfail()) {
      s.xfails.push_back(&c);
    } else if (!ok) {
      s.failures.push_back(&c);
    } else {
      ++s.passed;
    }
    if (k) {
      Breakdown& b = bd[{c.impl, std::string(name(c.problem.dtype)), std::string(name(c.problem.layout))}];
      b.impl = c.impl;
      b.dtype = name(c.problem.dtype);
      b.layout = name(c.problem.layout);
      b.control = c.control;
      b.max_tested = std::max(b.max_tested, *k);
      if (!ok && (!b.offset || *k < *b.offset)) b.offset = *k;
    }
  }
  for (const std::string& impl : r.grid.impls)
    for (const std::string& d : r.grid.dtypes)
      for (const std::string& l : r.grid.layouts)
        if (auto it = bd.find({impl, d, l}); it != bd.end()) s.breakdown.push_back(it->second);
  bool blind = false;
  for (auto& [impl, cs] : s.controls) {
    cs.blind = cs.applicable && cs.failed == 0;
    blind = blind || cs.blind;
  }
  // A shard may hold none of an impl's judged cells; the merged report is held to it.
  if (s.blind_rule_applied)
    for (const std::string& impl : r.grid.impls)
      if (auto it = judged_of.find(impl); it != judged_of.end() && it->second == 0) s.unjudged.push_back(impl);
  s.passed_all = s.failures.empty() && s.xpasses.empty() && s.control_errors.empty() && s.unjudged.empty() &&
                 !(s.blind_rule_applied && blind);
  return s;
}

// ---- environment ------------------------------------------------------------------------------

namespace {

// First line of a command's output, trimmed; empty when it fails.
std::string command_output(const std::string& cmd) {
  std::FILE* f = ::popen(cmd.c_str(), "r");
  if (!f) return {};
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, f)) out += buf;
  const int status = ::pclose(f);
  if (status != 0) return {};
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0 || line.rfind("Processor", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string v = line.substr(colon + 1);
        v.erase(0, v.find_first_not_of(' '));
        return v;
      }
    }
  }
  return "unknown";
}

std::string utc_now() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

std::string version_string() { return fmt::format("gnv {}", GNV_BUILD_DESCRIBE); }

Environment current_environment() {
  Environment e;
  e.gnv_version = GNV_BUILD_VERSION;
  e.compiler = GNV_BUILD_COMPILER;
  e.compiler_flags = GNV_BUILD_CXX_FLAGS;
  e.build_type = GNV_BUILD_TYPE;
  e.cpu = cpu_model();
  e.cpu_cores = std::thread::hardware_concurrency();
  utsname u{};
  e.os = ::uname(&u) == 0 ? fmt::format("{} {} {}", u.sysname, u.release, u.machine) : "unknown";
  const std::string gpu =
      command_output("command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi "
                     "--query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | paste -sd ';'");
  e.gpu = gpu.empty() ? "none" : gpu;
  e.libraries = {
      {"boost", fmt::format("{}.{}.{}", BOOST_VERSION / 100000, BOOST_VERSION / 100 % 1000, BOOST_VERSION % 100)},
      {"mpfr", mpfr_get_version()},
      {"gmp", gmp_version},
      {"eigen", fmt::format("{}.{}.{}", EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION)},
      {"fmt", fmt::format("{}.{}.{}", FMT_VERSION / 10000, FMT_VERSION / 100 % 100, FMT_VERSION % 100)},
      {"nlohmann_json", fmt::format("{}.{}.{}", NLOHMANN_JSON_VERSION_MAJOR, NLOHMANN_JSON_VERSION_MINOR,
                                    NLOHMANN_JSON_VERSION_PATCH)},
      {"glibc", gnu_get_libc_version()},
  };
  // The revision of the tree the binary was built from; "+dirty" when tracked files differ.
  const std::string git = fmt::format("git -C '{}'", GNV_SOURCE_DIR);
  std::string rev = command_output(git + " rev-parse HEAD 2>/dev/null");
  if (rev.empty()) {
    rev = "unknown";
  } else if (!command_output(git + " status --porcelain --untracked-files=no 2>/dev/null").empty()) {
    rev += "+dirty";
  }
  e.git_revision = rev;
  e.date = utc_now();
  return e;
}

// ---- files ------------------------------------------------------------------------------------

void write_report_files(const Report& r, const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  write_file_atomic(dir / "report.json", to_json_text(r));
  write_file_atomic(dir / "report.md", render_markdown(r));
  write_file_atomic(dir / "junit.xml", render_junit(r));
}

namespace {

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char ch : s) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

}  // namespace

std::string write_html_report(const std::filesystem::path& json, const std::filesystem::path& html) {
  // The first python3 on PATH may be a pyenv/venv one without matplotlib; Debian's has it
  // (scripts/bootstrap.sh installs python3-matplotlib).
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("GNV_PYTHON"); env && *env) candidates.emplace_back(env);
  candidates.insert(candidates.end(), {"/usr/bin/python3", "python3"});
  std::string python;
  for (const std::string& c : candidates) {
    const std::string probe = shell_quote(c) + " -c 'import matplotlib, numpy' >/dev/null 2>&1";
    if (std::system(probe.c_str()) == 0) {
      python = c;
      break;
    }
  }
  if (python.empty())
    return "no python3 with matplotlib (scripts/bootstrap.sh installs python3-matplotlib; or set GNV_PYTHON)";
  const std::string script = std::string(GNV_SOURCE_DIR) + "/reports/html_report.py";
  const std::string cmd = fmt::format("{} {} {} -o {}", shell_quote(python), shell_quote(script),
                                      shell_quote(json.string()), shell_quote(html.string()));
  const int rc = std::system(cmd.c_str());
  if (rc != 0) return fmt::format("{} failed (status {})", script, rc);
  return {};
}

}  // namespace gnv::report
