// `gnv sweep`: the main job. Runs a preset grid (impls x dtypes x layouts x shapes x groups x
// stress classes x seeds) through the one check path, saves the case of every cell that did not
// pass, and writes the report (report.json, the source of truth; report.md, junit.xml,
// report.html rendered from it). Its exit code also guards the harness: a control impl that never
// fails where the grid gave it offsets >= 1e4 means the harness is blind.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common.h"
#include "run_dir.h"
#include "sweep.h"
#include "gnv/external.h"
#include "gnv/npy.h"
#include "gnv/oracle.h"
#include "gnv/report.h"

namespace gnv::cli {

namespace {

namespace fs = std::filesystem;
using namespace gnv::report;


// The grid a sweep starts from: --grid FILE, --preset NAME, the ad-hoc section of --shape (added
// to the grid when one is named, else the whole grid), or the smoke preset.
Grid base_grid(const SweepOptions& o) {
  if (!o.grid_file.empty() && !o.preset.empty()) throw UsageError("--grid and --preset: give one grid");
  if (o.shapes.empty() && (!o.groups.empty() || !o.eps.empty() || !o.affine.empty() || o.epilogue != "none"))
    throw UsageError("--groups, --eps, --affine and --epilogue describe the shapes of --shape: give --shape too");
  const bool named = !o.grid_file.empty() || !o.preset.empty();
  Grid g;
  if (!o.grid_file.empty()) g = load_grid_file(o.grid_file);
  else if (!o.preset.empty() || o.shapes.empty()) g = preset_grid(o.preset.empty() ? "smoke" : o.preset);
  if (!o.sections.empty()) {  // before the ad-hoc section: --section narrows the named grid
    std::vector<Section> keep;
    for (const std::string& s : o.sections) {
      auto it = std::find_if(g.sections.begin(), g.sections.end(), [&](const Section& x) { return x.name == s; });
      if (it == g.sections.end()) {
        std::vector<std::string> names;
        for (const Section& x : g.sections) names.push_back(x.name);
        throw UsageError(fmt::format("--section {}: grid {} has sections {}", s, g.preset, fmt::join(names, ", ")));
      }
      keep.push_back(*it);
    }
    g.sections = std::move(keep);
  }
  if (!o.shapes.empty()) {
    const AffineChoice affine{!o.affine.empty(), o.affine.empty() ? AffineMode::per_channel : parse_affine_mode(o.affine)};
    Section adhoc = adhoc_section(o.shapes, o.groups, o.eps, affine, parse_epilogue(o.epilogue));
    if (!named) {
      g.preset = "adhoc";
      for (DType d : kAllDTypes) g.dtypes.emplace_back(name(d));
      for (Layout l : kAllLayouts) g.layouts.emplace_back(name(l));
    } else {
      for (const Section& s : g.sections)
        if (s.name == adhoc.name) throw UsageError(fmt::format("--shape: grid {} already has a section 'adhoc'", g.preset));
      g.preset += "+adhoc";
    }
    g.sections.push_back(std::move(adhoc));
  }
  return g;
}

}  // namespace

Grid build_grid(const SweepOptions& o) {
  Grid g = base_grid(o);
  // A grid file's impls are a default, as if given with --impl.
  const std::vector<std::string> names = o.impls.empty() ? g.impls : o.impls;
  g.impls.clear();
  // "all" keeps the impls available here; one named with --impl that cannot run (a GPU impl
  // without a GPU) is swept anyway, and its cells say why.
  if (!o.validate || !names.empty())
    for (const Impl* impl : select_impls(names))
      if (!o.external.count(std::string(impl->name()))) g.impls.emplace_back(impl->name());
  for (const std::string& n : o.external_impls) g.impls.push_back(n);
  g.external = o.external;
  // An impl registered by the caller (a Python kernel) says itself how a fresh gnv loads it.
  for (const std::string& n : g.impls)
    if (const Impl* impl = Registry::instance().find(n); impl && !impl->load_options().empty())
      g.external.emplace(n, impl->load_options());
  if (!o.dtypes.empty()) {
    g.dtypes.clear();
    for (const std::string& d : o.dtypes) g.dtypes.emplace_back(name(parse_dtype(d)));
  }
  if (!o.layouts.empty()) {
    g.layouts.clear();
    for (const std::string& l : o.layouts) g.layouts.emplace_back(name(parse_layout(l)));
  }
  if (o.backward) g.backward = *o.backward;
  if (!o.budget.empty()) g.budget = parse_budget_profile(o.budget);
  if (!o.stresses.empty()) {
    std::vector<std::string> st;
    for (const std::string& s : o.stresses) {
      const std::string c = parse_stress(s).name();
      if (std::find(st.begin(), st.end(), c) == st.end()) st.push_back(c);
    }
    for (Section& s : g.sections) s.stresses = st;
  }
  if (!o.seeds.empty()) {
    std::vector<uint64_t> seeds;
    for (uint64_t s : o.seeds)
      if (std::find(seeds.begin(), seeds.end(), s) == seeds.end()) seeds.push_back(s);
    for (Section& s : g.sections) s.seeds = seeds;
  }
  for (const std::vector<std::string>* v : {&g.dtypes, &g.layouts})
    for (size_t i = 0; i < v->size(); ++i)
      if (std::find(v->begin(), v->begin() + static_cast<long>(i), (*v)[i]) != v->begin() + static_cast<long>(i))
        throw UsageError(fmt::format("{} is given twice", (*v)[i]));
  return g;
}

namespace {

// Case directory names: cell ids hold '/' and ':', which paths and some shells dislike. The
// readable part is cut to fit a file name (255 bytes) and a hash of the whole id keeps two ids
// apart that map to the same characters (section "a-b" shape "c" vs section "a" shape "b-c").
std::string path_safe(const std::string& id) {
  std::string s = id.substr(0, 160);
  for (char& ch : s)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-'))
      ch = ch == '/' ? '-' : '_';
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char ch : id) h = (h ^ ch) * 1099511628211ull;
  return fmt::format("{}-{:08x}", s, static_cast<uint32_t>(h ^ (h >> 32)));
}

// One case of the grid with the impls that run it and the cell numbers they get.
struct Job {
  CaseSpec spec;
  std::vector<const Impl*> impls;
  std::vector<size_t> cell_index;
};

class Progress {
 public:
  Progress(size_t total, bool enabled) : total_(total), enabled_(enabled), start_(clock::now()) {}
  void step(const CaseSpec& c) {
    if (!enabled_) return;
    std::lock_guard lock(mu_);
    ++done_;
    // A terminal redrawn thousands of times a second slows the sweep it reports on.
    const auto now = clock::now();
    if (done_ < total_ && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double eta = done_ ? elapsed / static_cast<double>(done_) * static_cast<double>(total_ - done_) : 0;
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(kWidth * done_ / std::max<size_t>(total_, 1));
    fmt::print(stderr, "\r\033[K[{:=<{}}{: <{}}] {}/{} cases, {:.0f}s left  {} {} {}", "", filled, "",
               kWidth - filled, done_, total_, eta, name(c.problem.dtype), c.shape_name, c.stress);
    std::fflush(stderr);
  }
  void finish() {
    if (enabled_) fmt::print(stderr, "\r\033[K");
  }

 private:
  using clock = std::chrono::steady_clock;
  std::mutex mu_;
  size_t total_, done_ = 0;
  bool enabled_;
  clock::time_point start_, last_{};
};

std::vector<Cell> run_job(const Job& job, const Grid& g) {
  const CaseSpec& cs = job.spec;
  std::vector<bool> bwd;
  for (const Impl* impl : job.impls) bwd.push_back(g.backward && impl->capabilities().backward);
  const auto t0 = std::chrono::steady_clock::now();
  std::optional<Case> c;
  std::vector<CheckResult> results;
  try {
    c = make_case(cs.problem, parse_stress(cs.stress), cs.seed, g.backward);
    results = check_case_shared(job.impls, *c, bwd, g.budget);
  } catch (const std::exception& e) {
    results.assign(job.impls.size(), CheckResult{});
    for (CheckResult& r : results) {
      r.verdict = Verdict::error;
      r.error = fmt::format("generating the case: {}", e.what());
    }
  }
  // Each cell: its own kernel runs and measurements, plus an equal part of what the impls share
  // (case generation and the oracle).
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double own = 0;
  for (const CheckResult& r : results) own += r.seconds;
  const double shared = std::max(0.0, total - own) / static_cast<double>(job.impls.size());
  std::vector<Cell> cells;
  for (size_t i = 0; i < job.impls.size(); ++i) {
    const Impl& impl = *job.impls[i];
    const Capabilities caps = impl.capabilities();
    Cell cell;
    cell.index = job.cell_index[i];
    cell.case_index = cs.index;
    cell.impl = impl.name();
    cell.control = caps.control;
    cell.device = caps.device;
    cell.section = cs.section;
    cell.shape_name = cs.shape_name;
    cell.problem = cs.problem;
    cell.stress = cs.stress;
    cell.seed = cs.seed;
    cell.backward = bwd[i];
    cell.result = std::move(results[i]);
    const auto ext = g.external.find(cell.impl);
    cell.reproduce = reproduce_with(reproduce_command(cell.impl, cell.problem, cell.stress, cell.seed, cell.backward),
                                    ext != g.external.end() ? " " + ext->second : "", g.budget);
    cell.seconds = cell.result.seconds + shared;
    cells.push_back(std::move(cell));
  }
  return cells;
}

// Saves the case of every cell the policy selects, in grid order, up to the cap (docs/guide.md
// "gnv sweep"): the cases are generated again (the same seed gives bitwise the same tensors), so the
// choice does not depend on which thread finished first.
SavedCases save_cases(Report& r, SavePolicy policy, size_t max, bool grid_backward, const fs::path& out) {
  SavedCases sc{policy, max, 0, 0};
  std::optional<Case> c;
  size_t case_index = 0;
  for (Cell& cell : r.cells) {
    if (!selects(policy, cell)) continue;
    if (max && sc.saved >= max) {
      ++sc.omitted;
      continue;
    }
    if (!c || case_index != cell.case_index) {
      try {
        c = make_case(cell.problem, parse_stress(cell.stress), cell.seed, grid_backward);
      } catch (const std::exception&) {  // the cell's error already says why the case is missing
        c.reset();
        continue;
      }
      case_index = cell.case_index;
    }
    // Relative to the report's folder, so shard reports merge into one that still points at them.
    cell.case_dir = "cases/" + path_safe(cell.id());
    Case saved = *c;
    if (!cell.backward) saved.dy.reset();  // dy.npy asks for the backward pass on replay
    save_case(saved, out / cell.case_dir);
    ++sc.saved;
  }
  return sc;
}

// Prints and writes the comparison with a baseline; returns the exit code it asks for.
int gate(const Report& base, const Report& now, double tolerance, bool allow_missing, const std::string& base_name,
         const fs::path& out) {
  const Comparison cmp = compare_reports(base, now, tolerance, allow_missing);
  const std::string md = render_comparison(cmp, base_name, (out / "report.json").string());
  write_file_atomic(out / "compare.md", md);
  fmt::print("\n{}", md);
  return cmp.regressed() ? kExitFail : kExitPass;
}

int report_error(const ReportError& e) {
  print_error(e.what());
  return kExitUsage;
}

int run_sweep(const SweepOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const Grid grid = build_grid(o);
  if (grid.impls.empty()) throw UsageError("no implementation is available to sweep");
  const Shard shard = o.shard.empty() ? Shard{} : parse_shard(o.shard);
  const SavePolicy policy = parse_save_policy(o.save_cases);
  const std::vector<Waiver> waivers = o.waivers.empty() ? std::vector<Waiver>{} : load_waivers(o.waivers);
  if (!(o.tolerance >= 1) || !std::isfinite(o.tolerance))
    throw UsageError(fmt::format("--tolerance {}: must be a finite factor >= 1", o.tolerance));
  // A baseline of another grid is a usage error found before the sweep spends minutes.
  std::optional<Report> base;
  if (!o.baseline.empty()) {
    try {
      base = read_report(o.baseline);
      if (std::string why = grid_mismatch(base->grid, base->shard, grid, shard); !why.empty())
        throw ReportError(fmt::format("{}: {}", o.baseline, why));
    } catch (const ReportError& e) {
      return report_error(e);
    }
  }

  // Plan every cell of the full grid, so a shard's cells keep their unsharded numbers.
  std::vector<const Impl*> impls;
  for (const std::string& n : grid.impls) impls.push_back(&Registry::instance().get(n));
  // An impl runs every case of the grid: one whose dtype or layout it does not declare is a
  // SKIPPED cell (check_case_shared), so the report shows what the kernel did not cover.
  std::vector<Job> jobs;
  size_t next_cell = 0;
  bool any_supported = false;
  auto supports = [](const Impl& impl, const Problem& p) { return impl.capabilities().lacks(p).empty(); };
  for (CaseSpec& cs : expand_cases(grid)) {
    Job job{std::move(cs), {}, {}};
    for (const Impl* impl : impls) {
      if (!impl->capabilities().forward) continue;
      any_supported = any_supported || supports(*impl, job.spec.problem);
      job.impls.push_back(impl);
      job.cell_index.push_back(next_cell++);
    }
    if (!job.impls.empty() && in_shard(job.spec.index, shard)) jobs.push_back(std::move(job));
  }
  if (!any_supported)
    throw UsageError("no selected implementation supports any case of the grid: its dtypes, layouts and fused forms "
                     "(epilogue, per-sample parameters) are listed by `gnv list`");

  int njobs = o.jobs > 0 ? o.jobs : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // The largest case must fit --max-memory; with several at once, fewer jobs may (docs/guide.md "Memory").
  if (!jobs.empty()) {
    const Job* big = &jobs.front();
    double most = 0;
    for (const Job& j : jobs)
      if (const double e = estimate_check_bytes(j.spec.problem, grid.backward); e > most) {
        most = e;
        big = &j;
      }
    require_memory(big->spec.problem, grid.backward, 1, o.max_memory);
    const int fit = static_cast<int>(std::max(1.0, std::floor(o.max_memory / most)));
    if (fit < std::min<int>(njobs, static_cast<int>(jobs.size()))) {
      fmt::print(stderr, "gnv: note: {} case(s) at once fit --max-memory {} (largest case {} G={}: {}): --jobs {}\n",
                 fit, bytes_text(o.max_memory), big->spec.problem.shape_string(), big->spec.problem.G, bytes_text(most),
                 fit);
      njobs = fit;
    }
  }

  // Everything is written into a staging folder and swapped in at the end (docs/guide.md
  // "Report directory"); nothing above this line has touched the file system.
  RunDir dir(o.out);
  const fs::path out = dir.staging();

  // External runners run their cases in one batch each, before the checks read the outputs.
  for (const Impl* impl : impls) {
    const auto* batch = dynamic_cast<const BatchImpl*>(impl);
    if (!batch) continue;
    const bool bwd = grid.backward && impl->capabilities().backward;
    for (const Job& job : jobs)
      if (supports(*impl, job.spec.problem) &&
          std::find(job.impls.begin(), job.impls.end(), impl) != job.impls.end())
        batch->enqueue(make_case(job.spec.problem, parse_stress(job.spec.stress), job.spec.seed, bwd));
    fmt::print(stderr, "gnv: running runner {} on {} case(s)...\n", impl->name(), batch->queued());
    fmt::print(stderr, "gnv: {}\n", batch->run_queued());
  }


  std::vector<std::vector<Cell>> results(jobs.size());
  Progress progress(jobs.size(), stderr_is_tty());
  std::atomic<size_t> next{0};
  std::mutex err_mu;
  std::exception_ptr failure;
  const int parallel_jobs = std::min<int>(njobs, static_cast<int>(jobs.size()));
  auto worker = [&] {
    // Cases run side by side: each oracle call keeps to its own thread (one job: all cores).
    const ScopedOracleThreads oracle_threads(parallel_jobs > 1 ? 1 : 0);
    for (size_t i; (i = next++) < jobs.size();) {
      try {
        results[i] = run_job(jobs[i], grid);
      } catch (...) {  // save_case failing (disk full): stop the sweep, report after joining
        std::lock_guard lock(err_mu);
        if (!failure) failure = std::current_exception();
        next = jobs.size();
      }
      progress.step(jobs[i].spec);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 1; t < parallel_jobs; ++t) threads.emplace_back(worker);
  worker();
  for (std::thread& t : threads) t.join();
  progress.finish();
  if (failure) std::rethrow_exception(failure);

  Report r;
  r.env = current_environment();
  r.grid = grid;
  r.shard = shard;
  for (std::vector<Cell>& v : results)
    for (Cell& c : v) r.cells.push_back(std::move(c));
  std::sort(r.cells.begin(), r.cells.end(), [](const Cell& a, const Cell& b) { return a.index < b.index; });
  const std::vector<size_t> used = apply_waivers(r, waivers);
  for (size_t i = 0; i < waivers.size(); ++i)
    if (!used[i] && shard.count == 1)
      fmt::print(stderr, "gnv: warning: waiver at {} matched no cell of this grid\n", waivers[i].source);
  r.saved = save_cases(r, policy, o.max_saved_cases, grid.backward, out);
  r.timing.jobs = njobs;
  r.timing.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // report.json is the source of truth: every other view is rendered from the file as written.
  std::string files;
  const Report written =
      publish_report(r, out, o.html, o.write_baseline.empty() ? "" : dir.place(o.write_baseline).string(), files);
  int rc = summarize(written).passed_all ? kExitPass : kExitFail;
  if (base) {
    try {
      rc = std::max(rc, gate(*base, written, o.tolerance, o.allow_missing, o.baseline, out));
    } catch (const ReportError& e) {
      return report_error(e);
    }
  }
  dir.commit();
  fmt::print("wrote {}/{}\n", o.out, files);
  return rc;
}

}  // namespace

namespace {

CLI::Option* add_sweep_options(CLI::App* sub, const std::shared_ptr<SweepOptions>& o) {
  sub->add_option("--preset", o->preset,
                  fmt::format("Grid: a shipped grid file, {} (default smoke; `gnv list` names their files)",
                              fmt::join(preset_names(), ", ")))
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  sub->add_option("--grid", o->grid_file,
                  "Grid file (TOML, docs/guide.md \"Grid files\"), or a report.json to run its grid again");
  sub->add_option("--shape", o->shapes,
                  "Ad-hoc shape N,C[,D][,H][,W] (repeatable): a section 'adhoc' with every stress class, added "
                  "to --grid/--preset or, without them, the whole grid");
  sub->add_option("--groups", o->groups, "With --shape: G values (comma list), each must divide C")
      ->delimiter(',')
      ->check(CLI::PositiveNumber);
  sub->add_option("--eps", o->eps, "With --shape: eps values (comma list; default 1e-5)")
      ->delimiter(',')
      ->check(CLI::NonNegativeNumber);
  add_operator_options(sub, o->affine, o->epilogue);  // with --shape
  sub->add_option("--impl", o->impls, "Implementations (comma list; default: every available one)")->delimiter(',');
  sub->add_option("--dtype", o->dtypes, "Dtypes (comma list; default: all, each impl runs those it supports)")
      ->delimiter(',');
  sub->add_option("--layout", o->layouts, "Layouts (comma list; default: nchw,nhwc)")->delimiter(',');
  sub->add_option("--section", o->sections, "Keep only these sections of the preset (comma list)")->delimiter(',');
  sub->add_option("--stress", o->stresses, "Stress classes instead of the preset's (comma list)")->delimiter(',');
  sub->add_option("--seeds,--seed", o->seeds, "Seeds instead of the preset's (comma list)")
      ->delimiter(',')
      ->check(non_negative_integer());
  CLI::Option* bwd = sub->add_flag("--backward,!--no-backward", o->backward_flag,
                                   "Check the backward pass too (the presets do)");
  // Last one wins, so scripts/run.sh's default --out can be overridden by its caller.
  sub->add_option("--out", o->out, "Output directory (report.json, report.md, junit.xml, report.html, cases/)")
      ->capture_default_str()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  sub->add_option("--shard", o->shard, "Run shard k of n (k/n): cases split round robin; join with `gnv merge`");
  sub->add_option("--jobs,-j", o->jobs, "Cases checked in parallel (default 0: one per hardware thread)")
      ->check(CLI::Range(0, 4096));
  sub->add_option("--baseline", o->baseline, "Compare with this report.json at the end (as `gnv compare`)");
  sub->add_option("--tolerance", o->tolerance, "With --baseline: allowed growth factor of an error")
      ->capture_default_str();
  sub->add_flag("--allow-missing", o->allow_missing,
                "With --baseline: baseline cells this run lacks do not fail the gate (as `gnv compare --allow-missing`)");
  sub->add_flag("--html,!--no-html", o->html, "Write report.html (needs python3-matplotlib; default on)");
  sub->add_option("--write-baseline", o->write_baseline,
                  "Also write the report's baseline form (what `gnv compare` reads) to this file");
  add_memory_option(sub, o->max_memory);
  add_budget_option(sub, o->budget, "the kernels promise (default: the grid's, else pairwise)");
  sub->add_option("--waivers", o->waivers,
                  "Expected failures (TOML, docs/guide.md \"Waivers\"): a waived failure is XFAIL, a waived pass is XPASS "
                  "and fails the run");
  sub->add_option("--save-cases", o->save_cases,
                  "Save cases/ of: failing (non-control cells that did not pass, not XFAIL), all (every cell that "
                  "did not pass) or none")
      ->capture_default_str()
      ->check(CLI::IsMember({"failing", "all", "none"}));
  sub->add_option("--max-saved-cases", o->max_saved_cases,
                  "At most this many saved cases, the first in grid order (0: no cap); the report counts the rest")
      ->capture_default_str();
  return bwd;
}

}  // namespace

// `gnv suite` (cmd_suite.cpp) is the same command under its old name.
Command register_sweep_named(CLI::App& app, const std::string& cmd, const std::string& description) {
  auto o = std::make_shared<SweepOptions>();
  CLI::App* sub = app.add_subcommand(cmd, description);
  CLI::Option* bwd = add_sweep_options(sub, o);
  return {sub, [o, bwd] {
            if (bwd->count()) o->backward = o->backward_flag;
            return run_sweep(*o);
          }};
}

Command register_validate(CLI::App& app) {
  auto o = std::make_shared<SweepOptions>();
  o->validate = true;
  o->out = "out/validate";
  CLI::App* sub = app.add_subcommand(
      "validate",
      "Validate third-party kernels: a plugin (--plugin lib.so, C ABI of include/gnv/plugin.h, every call in "
      "a child process) or an external runner (--runner CMD, any language) through the same grid, oracle, "
      "verdicts and reports as `gnv sweep`");
  CLI::Option* bwd = add_sweep_options(sub, o);
  add_external_options(sub, o->ext);
  return {sub, [o, bwd] {
            if (bwd->count()) o->backward = o->backward_flag;
            if (o->ext.plugins.empty() && o->ext.runners.empty())
              throw UsageError("validate: give a kernel to validate with --plugin PATH or --runner CMD");
            o->ext.runner_dir = RunDir::staging_for(o->out) / "runner";
            o->ext.plugin_log_dir = RunDir::staging_for(o->out) / "plugins";
            for (const ExternalImpl& e : register_external(o->ext)) {
              o->external_impls.push_back(e.name);
              o->external[e.name] = e.load;
            }
            return run_sweep(*o);
          }};
}

Command register_sweep(CLI::App& app) {
  return register_sweep_named(
      app, "sweep",
      "Run a preset grid of checks (impls x dtypes x layouts x shapes x groups x stress classes x seeds); "
      "write OUT/report.json, report.md, junit.xml, report.html and OUT/cases/ for failures");
}

}  // namespace gnv::cli
