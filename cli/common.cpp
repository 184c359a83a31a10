#include "common.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include "gnv/metrics.h"
#include "gnv/npy.h"
#include "gnv/report.h"

namespace gnv::cli {

namespace {
std::string& last_error_text() {
  static std::string s;
  return s;
}
}  // namespace

void print_error(const std::string& msg) {
  last_error_text() = msg;
  fmt::print(stderr, "gnv: error: {}\n", msg);
}
const std::string& last_error() { return last_error_text(); }
void clear_last_error() { last_error_text().clear(); }

int run_guarded(const std::function<int()>& run) {
  // Order matters: InvalidProblem is an invalid_argument; CaseError and NpyError are
  // runtime_errors that must not fall through to the generic "internal failure" branch; file
  // system errors and memory exhaustion are about the environment gnv was given: exit 2 too.
  try {
    return run();
  } catch (const UsageError& e) {
    print_error(e.what());
  } catch (const CaseError& e) {
    print_error(e.what());
  } catch (const NpyError& e) {
    print_error(e.what());
  } catch (const std::invalid_argument& e) {
    print_error(e.what());
  } catch (const std::filesystem::filesystem_error& e) {
    // A path gnv cannot create, read or write: the user's to fix, named without C++'s wording.
    print_error(fmt::format("{}{}{}: {}", e.path1().string(), e.path2().empty() ? "" : " -> ", e.path2().string(),
                            e.code().message()));
  } catch (const std::bad_alloc&) {
    print_error("out of memory (docs/guide.md \"Memory\": --max-memory bounds what gnv tries; --jobs 1 needs the least)");
  } catch (const std::exception& e) {
    print_error(e.what());
    return kExitFail;
  }
  return kExitUsage;
}

Case load_case_reporting_file(const std::string& dir) {
  try {
    return load_case(dir);
  } catch (const InvalidProblem& e) {
    const std::string& f = e.field();
    const bool tensor = f == "x" || f == "gamma" || f == "beta" || f == "dy";
    const std::filesystem::path file = std::filesystem::path(dir) / (tensor ? f + ".npy" : "case.json");
    throw UsageError(fmt::format("{}: {}", file.string(), e.what()));
  }
}

Problem build_problem(const ProblemSpec& spec) {
  if (spec.shape.empty()) throw UsageError("--shape is required (N,C[,D][,H][,W])");
  if (!spec.groups_given) throw UsageError("--groups is required");
  Problem p;
  parse_shape(spec.shape, p);
  p.G = spec.groups;
  p.eps = spec.eps;
  p.affine = !spec.affine.empty();
  if (p.affine) p.affine_mode = parse_affine_mode(spec.affine);
  p.epilogue = parse_epilogue(spec.epilogue);
  p.dtype = parse_dtype(spec.dtype);
  p.layout = parse_layout(spec.layout);
  p.validate();
  return p;
}

std::vector<CLI::Option*> add_operator_options(CLI::App* sub, std::string& affine, std::string& epilogue) {
  return {sub->add_option("--affine", affine,
                          "Use gamma and beta: per-channel (shape (C), the default) or per-sample (shape (N, C), "
                          "adaptive GroupNorm)")
              ->expected(0, 1)
              ->default_str("per-channel")
              ->check(CLI::IsMember({"per-channel", "per-sample"})),
          sub->add_option("--epilogue", epilogue,
                          "Fused after the affine step: none, or silu (y = silu(gamma xhat + beta), as diffusion "
                          "U-Nets run it)")
              ->capture_default_str()
              ->check(CLI::IsMember({"none", "silu"}))};
}

std::vector<const Impl*> select_impls(const std::vector<std::string>& names) {
  const Registry& reg = Registry::instance();
  std::vector<const Impl*> out;
  if (names.empty() || (names.size() == 1 && names[0] == "all")) {
    // An impl that cannot run here (a GPU impl without a GPU) is left out of "all"; named, it is
    // kept, and the caller says why it cannot run.
    for (const Impl* impl : reg.all())
      if (impl_available(*impl)) out.push_back(impl);
    return out;
  }
  for (const std::string& n : names) {
    const Impl* impl = &reg.get(n);
    if (std::find(out.begin(), out.end(), impl) == out.end()) out.push_back(impl);
  }
  return out;
}

void add_memory_option(CLI::App* sub, double& limit) {
  limit = default_memory_limit();
  sub->add_option("--max-memory", limit,
                  fmt::format("Refuse cases whose estimated peak memory (docs/guide.md \"Memory\") exceeds this many bytes "
                              "(units allowed: 8G, 512MiB); default 3/4 of physical memory, here {}",
                              bytes_text(limit)))
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::PositiveNumber);
}

std::string bytes_text(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (bytes >= 1024 && u < 6) {
    bytes /= 1024;
    ++u;
  }
  return fmt::format("{:.3g} {}", bytes, units[u]);
}

void require_memory(const Problem& p, bool backward, int at_once, double limit) {
  const double need = estimate_check_bytes(p, backward) * std::max(at_once, 1);
  if (need > limit)
    throw UsageError(fmt::format(
        "shape {} G={} {}{}{} needs an estimated {} to check (docs/guide.md \"Memory\"), more than --max-memory {}",
        p.shape_string(), p.G, name(p.dtype), backward ? " with the backward pass" : "",
        at_once > 1 ? fmt::format(" times {} cases at once (--jobs)", at_once) : "", bytes_text(need),
        bytes_text(limit)));
}

std::string unsupported_reason(const Impl& impl, const Problem& p, bool backward) {
  const Capabilities caps = impl.capabilities();
  if (!impl_available(impl))
    return fmt::format("implementation '{}' is not available on this machine (device {})", impl.name(),
                       caps.device);
  if (const Lack lack = caps.lacks(p); !lack.empty())
    return fmt::format("implementation '{}' does not support {}", impl.name(), lack.what);
  if (!caps.forward) return fmt::format("implementation '{}' has no forward pass", impl.name());
  if (backward && !caps.backward)
    return fmt::format("implementation '{}' has no backward pass", impl.name());
  return {};
}

std::string reproduce_command(const std::string& impl, const Problem& p, const std::string& stress,
                              uint64_t seed, bool backward) {
  // eps printed shortest-round-trip, so the replay sees the same double.
  return fmt::format("gnv check --impl {} --dtype {} --layout {} --shape {} --groups {} --eps {}{}{} "
                     "--stress {} --seed {}{}",
                     impl, name(p.dtype), name(p.layout), p.shape_string(), p.G, p.eps,
                     !p.affine ? "" : p.per_sample() ? " --affine per-sample" : " --affine",
                     p.epilogue == Epilogue::none ? "" : fmt::format(" --epilogue {}", name(p.epilogue)), stress,
                     seed, backward ? " --backward" : "");
}

std::string reproduce_case_command(const std::string& impl, const std::string& case_dir) {
  return fmt::format("gnv check --case {} --impl {}", case_dir, impl);
}

std::string reproduce_with(std::string command, const std::string& load, BudgetProfile budget) {
  if (!load.empty()) command.insert(std::string_view("gnv check").size(), load);
  if (budget != BudgetProfile::pairwise) command += fmt::format(" --budget {}", name(budget));
  return command;
}

CLI::Option* add_budget_option(CLI::App* sub, std::string& budget, const std::string& what) {
  return sub
      ->add_option("--budget", budget,
                   "Budget profile " + what + ": pairwise (4 + 2 log2 L) or sequential (4 + 16 sqrt L), "
                   "docs/numerics.md \"Budgets\"")
      ->check(CLI::IsMember({"pairwise", "sequential"}));
}

namespace {

// 9 significant digits round-trip f32 (and so f16/bf16); f64 needs 17.
int digits_for(const Problem& p) { return p.dtype == DType::f64 ? 17 : 9; }

std::string fmt_metric(double v) { return fmt::format("{:.3g}", v); }

}  // namespace

std::string describe_worst(const Problem& p, const OutputMetrics& m) {
  if (m.worst_index < 0) return {};
  const int d = digits_for(p);
  return fmt::format("{}: expected={:.{}g} actual={:.{}g}", describe_index(p, m.name, m.worst_index),
                     m.worst_expected, d, m.worst_actual, d);
}

double worst_cond_err(const CheckResult& r) {
  double w = 0;
  for (const OutputMetrics& m : r.outputs)
    if (std::isnan(m.max_cond_err) || m.max_cond_err > w) w = m.max_cond_err;
  return w;
}

void print_result(std::FILE* out, const Problem& p, const CheckResult& r) {
  if (has_reason(r.verdict)) fmt::print(out, "  {}: {}\n", verdict_label(r.verdict), r.error);
  for (const OutputMetrics& m : r.outputs) {
    std::string line = fmt::format("  {:<6} {:<9} max_cond_err={} budget={} max_ulp={} max_u_err={} "
                                   "normwise={:.2e}",
                                   m.name, verdict_label(m.verdict), fmt_metric(m.max_cond_err),
                                   fmt_metric(m.budget), fmt_metric(m.max_ulp),
                                   fmt_metric(m.max_u_err), m.normwise);
    if (m.unwritten) line += fmt::format(" unwritten={}", m.unwritten);
    if (m.policy_violations) line += fmt::format(" policy_violations={}", m.policy_violations);
    if (m.ill_posed) line += fmt::format(" ill_posed={}", m.ill_posed);
    if (m.worst_index >= 0) line += "  worst " + describe_worst(p, m);
    fmt::print(out, "{}\n", line);
  }
  if (!r.outputs.empty())
    fmt::print(out, "  kappa {:.3g} .. {:.3g} (max|x|/sqrt(var+eps) over finite groups)\n",
               r.kappa_min, r.kappa_max);
  if (r.oracle_undecided)
    fmt::print(out, "  oracle: {} value(s) whose rounding could not be certified\n",
               r.oracle_undecided);
  if (r.oracle_fallbacks)
    fmt::print(out, "  oracle: {} value(s) left by the fast path to the MPFR path\n", r.oracle_fallbacks);
}

void print_check(std::FILE* out, const std::string& impl, bool control, const Case& c, bool backward,
                 const CheckResult& r, const std::string& reproduce) {
  const Problem& p = c.problem;
  fmt::print(out, "check {}{}: {} stress={} seed={}{}\n", impl, control ? " (control)" : "", p.describe(),
             c.stress.empty() ? "?" : c.stress, c.seed, backward ? " backward" : "");
  print_result(out, p, r);
  const bool passed = r.verdict == Verdict::pass;
  std::string label = verdict_label(r.verdict);
  if (control && !passed) label += " (control, expected)";
  if (control && passed) label += " (control: expected to fail; this input does not expose it)";
  fmt::print(out, "  verdict: {}\n", label);
  fmt::print(out, "reproduce: {}\n", reproduce);
}

nlohmann::json json_number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return v;
}

namespace {
// As report.json writes it (report::scale_past_double_text).
nlohmann::json json_scale(long double v) {
  if (std::string s = report::scale_past_double_text(v); !s.empty()) return s;
  return json_number(static_cast<double>(v));
}
}  // namespace

nlohmann::json to_json(const Problem& p) {
  nlohmann::json j{{"N", p.N},           {"C", p.C},
                   {"spatial", p.spatial}, {"G", p.G},
                   {"eps", json_number(p.eps)}, {"affine", p.affine},
                   {"dtype", std::string(name(p.dtype))}, {"layout", std::string(name(p.layout))},
                   {"shape", p.shape_string()}};
  if (p.per_sample()) j["affine_mode"] = std::string(name(p.affine_mode));
  if (p.epilogue != Epilogue::none) j["epilogue"] = std::string(name(p.epilogue));
  return j;
}

nlohmann::json to_json(const Problem& p, const CheckResult& r) {
  nlohmann::json outs = nlohmann::json::array();
  for (const OutputMetrics& m : r.outputs) {
    nlohmann::json o = {{"name", m.name},
                        {"verdict", verdict_label(m.verdict)},
                        {"count", m.count},
                        {"max_cond_err", json_number(m.max_cond_err)},
                        {"budget", json_number(m.budget)},
                        {"max_ulp", json_number(m.max_ulp)},
                        {"max_u_err", json_number(m.max_u_err)},
                        {"normwise", json_number(m.normwise)},
                        {"unwritten", m.unwritten},
                        {"policy_violations", m.policy_violations},
                        {"ill_posed", m.ill_posed}};
    if (m.worst_index >= 0)
      o["worst"] = {{"index", m.worst_index},
                    {"where", describe_index(p, m.name, m.worst_index)},
                    {"expected", json_number(m.worst_expected)},
                    {"actual", json_number(m.worst_actual)},
                    {"scale", json_scale(m.worst_scale)}};
    outs.push_back(std::move(o));
  }
  nlohmann::json j = {{"verdict", verdict_label(r.verdict)},
                      {"outputs", std::move(outs)},
                      {"kappa_min", json_number(r.kappa_min)},
                      {"kappa_max", json_number(r.kappa_max)},
                      {"oracle_undecided", r.oracle_undecided},
                      {"oracle_fallbacks", r.oracle_fallbacks}};
  if (has_reason(r.verdict)) j["error"] = r.error;
  return j;
}

CLI::Validator non_negative_integer() {
  // Digits only and within uint64: CLI11 would saturate 99999999999999999999999 to 2^64-1 silently.
  return CLI::Validator(
      [](std::string& s) {
        uint64_t v = 0;
        const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        const bool digits = !s.empty() && std::all_of(s.begin(), s.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
        if (!digits || ec != std::errc() || end != s.data() + s.size())
          return fmt::format("'{}' is not an integer from 0 to 18446744073709551615", s);
        return std::string();
      },
      "");
}

bool stderr_is_tty() { return ::isatty(STDERR_FILENO) == 1; }

void add_external_options(CLI::App* sub, ExternalOptions& o) {
  // Opt-in: a plugin call's child is a fork of gnv (its address space included), and GPU runtimes
  // reserve huge address ranges, so no default limit fits every plugin.
  sub->add_option("--plugin-memory", o.plugin_memory,
                  "Limit each plugin call's address space to this many bytes (RLIMIT_AS; units allowed: 4G); "
                  "default none")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::PositiveNumber);
  sub->add_option("--plugin", o.plugins, "A plugin library (C ABI of include/gnv/plugin.h); repeatable");
  sub->add_option("--runner", o.runners,
                  "An external runner command, run as `CMD BATCH_DIR` (docs/third-party.md \"Validating third-party kernels\"); "
                  "repeatable");
  sub->add_option("--runner-name", o.runner_names, "Impl names of the runners, in order (default: runner, runner-2, ...)")
      ->delimiter(',');
  sub->add_option("--timeout", o.timeout,
                  "Seconds allowed per plugin call (default 60) and per runner batch (default 1800)")
      ->check(CLI::PositiveNumber);
  sub->add_flag("--no-stats", o.no_stats, "The runners do not write mean.npy and rstd.npy: judge y (and the backward) only");
  sub->add_option("--runner-device", o.runner_device, "Device named in the report for the runners' cells")
      ->capture_default_str();
  sub->add_option("--runner-fused", o.runner_fused,
                  "The fused forms the runners apply, comma-separated: silu (the epilogue), per-sample (gamma and beta "
                  "of shape (N, C)); they read them from case.json (version 2). Default: none, so such cases are "
                  "SKIPPED for them")
      ->delimiter(',')
      ->check(CLI::IsMember({"silu", "per-sample"}));
}

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-./=:,+") ==
                        std::string::npos)
    return s;
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string use_external(const ExternalOptions& o, std::string& impl) {
  if (o.plugins.empty() && o.runners.empty()) return "";
  const std::vector<ExternalImpl> ext = register_external(o);
  if (impl.empty() && ext.size() == 1) impl = ext.front().name;
  for (const ExternalImpl& e : ext)
    if (e.name == impl) return " " + e.load;
  return "";
}

std::vector<ExternalImpl> register_external(const ExternalOptions& o) {
  std::vector<ExternalImpl> out;
  const std::string timeout = o.timeout > 0 ? fmt::format(" --timeout {}", o.timeout) : "";
  auto add = [&](std::unique_ptr<Impl> impl, std::string load) {
    const std::string n(impl->name());
    if (Registry::instance().find(n))
      throw UsageError(fmt::format("an implementation named '{}' is already registered; rename the {}", n,
                                   load.rfind("--plugin", 0) == 0 ? "plugin's kernel" : "runner (--runner-name)"));
    Registry::instance().add(std::move(impl));
    out.push_back({n, std::move(load)});
  };
  for (const std::string& p : o.plugins) {
    PluginOptions po;
    po.timeout_s = o.timeout > 0 ? o.timeout : 60;
    po.memory_bytes = o.plugin_memory;
    if (!o.plugin_log_dir.empty()) {
      std::filesystem::create_directories(o.plugin_log_dir);
      po.log = std::filesystem::path(o.plugin_log_dir) / (std::filesystem::path(p).stem().string() + ".log");
    }
    std::unique_ptr<Impl> impl = load_plugin(p, po);
    std::error_code ec;
    add(std::move(impl), "--plugin " + shell_quote(std::filesystem::absolute(p, ec).string()) + timeout);
  }
  if (!o.runner_names.empty() && o.runner_names.size() != o.runners.size())
    throw UsageError(fmt::format("--runner-name: {} name(s) for {} runner(s)", o.runner_names.size(), o.runners.size()));
  for (size_t i = 0; i < o.runners.size(); ++i) {
    RunnerOptions r;
    r.command = o.runners[i];
    r.name = !o.runner_names.empty() ? o.runner_names[i] : i == 0 ? "runner" : fmt::format("runner-{}", i + 1);
    for (char c : r.name)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '+' || c == '-'))
        throw UsageError(fmt::format("--runner-name '{}': use [A-Za-z0-9_.+-]", r.name));
    if (!o.runner_dir.empty()) r.work_dir = std::filesystem::path(o.runner_dir) / r.name;
    if (o.timeout > 0) r.timeout_s = o.timeout;
    r.statistics = !o.no_stats;
    r.device = o.runner_device;
    for (const std::string& f : o.runner_fused) {
      if (f == "silu") r.epilogues.push_back(Epilogue::silu);
      if (f == "per-sample") r.per_sample = true;
    }
    std::string load = fmt::format("--runner {} --runner-name {}{}{}", shell_quote(r.command), r.name,
                                   o.no_stats ? " --no-stats" : "", timeout);
    if (o.runner_device != "external") load += " --runner-device " + shell_quote(o.runner_device);
    if (!o.runner_fused.empty()) load += fmt::format(" --runner-fused {}", fmt::join(o.runner_fused, ","));
    add(make_runner(r), std::move(load));
  }
  return out;
}

report::Report publish_report(const report::Report& r, const std::filesystem::path& out, bool html,
                              const std::string& baseline, std::string& files) {
  using namespace gnv::report;
  write_file_atomic(out / "report.json", to_json_text(r));
  Report written = read_report(out / "report.json");
  write_report_files(written, out);
  files = "report.json, report.md, junit.xml";
  if (html) {
    const std::string why = write_html_report(out / "report.json", out / "report.html");
    if (why.empty()) files += ", report.html";
    else fmt::print(stderr, "gnv: warning: report.html not written: {}\n", why);
  }
  if (!baseline.empty()) write_file_atomic(baseline, to_json_text(baseline_of(written)));
  fmt::print("{}", render_text(written));
  return written;
}

}  // namespace gnv::cli
