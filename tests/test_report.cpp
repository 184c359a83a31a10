// The report model: JSON round trips, the strict reader, shard merging, the regression gate's
// comparison, JUnit well-formedness, the summary's control rule, the shared-oracle check, and
// atomic writes.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include <fmt/format.h>

#include "gnv/npy.h"
#include "gnv/report.h"
#include "gnv/stress.h"

namespace gnv::report {
namespace {

namespace fs = std::filesystem;

// A small real grid, run in-process the way `gnv sweep` runs it: welford passes, onepass (the
// control) fails at large offsets, so the report holds passes, failures and real metrics.
Grid small_grid() {
  Grid g = preset_grid("smoke");
  g.impls = {"welford", "onepass"};
  g.dtypes = {"f32", "f16"};
  g.layouts = {"nchw"};
  g.sections.resize(1);  // "small"
  g.sections[0].stresses = {"normal", "offset:1000000", "special"};
  g.sections[0].seeds = {0, 5};
  return g;
}

Report run_grid(const Grid& g) {
  Report r;
  r.env.gnv_version = "test";
  r.env.compiler = "cc";
  r.env.libraries = {{"fmt", "9"}};
  r.env.date = "2024-01-01T00:00:00Z";
  r.grid = g;
  std::vector<const Impl*> impls;
  for (const std::string& n : g.impls) impls.push_back(&Registry::instance().get(n));
  size_t index = 0;
  for (const CaseSpec& cs : expand_cases(g)) {
    const Case c = make_case(cs.problem, parse_stress(cs.stress), cs.seed, g.backward);
    const std::vector<CheckResult> res = check_case_shared(impls, c, std::vector<bool>(impls.size(), g.backward));
    for (size_t i = 0; i < impls.size(); ++i) {
      Cell cell;
      cell.index = index++;
      cell.case_index = cs.index;
      cell.impl = impls[i]->name();
      cell.control = impls[i]->capabilities().control;
      cell.section = cs.section;
      cell.shape_name = cs.shape_name;
      cell.problem = cs.problem;
      cell.stress = cs.stress;
      cell.seed = cs.seed;
      cell.backward = g.backward;
      cell.result = res[i];
      cell.reproduce = "gnv check --impl " + cell.impl;
      if (cell.result.verdict != Verdict::pass) cell.case_dir = "cases/x" + std::to_string(cell.index);
      cell.seconds = 0.001 * static_cast<double>(cell.index);
      r.cells.push_back(std::move(cell));
    }
  }
  return r;
}

const Report& sample() {
  static const Report r = run_grid(small_grid());
  return r;
}

// Timing fields are the only ones allowed to differ between equivalent runs.
std::string without_timing(Report r) {
  r.env.date.clear();
  r.timing = {};
  for (Cell& c : r.cells) c.seconds = 0;
  return to_json_text(r);
}

TEST(Report, SampleHasPassesAndControlFailures) {
  const Summary s = summarize(sample());
  EXPECT_GT(s.passed, 0u);
  EXPECT_LT(s.passed, s.cells);
  EXPECT_TRUE(s.failures.empty()) << s.failures.front()->id();
  ASSERT_TRUE(s.controls.count("onepass"));
  EXPECT_GT(s.controls.at("onepass").failed, 0u);
  EXPECT_TRUE(s.passed_all);
}

TEST(Report, JsonRoundTripIsIdentical) {
  const std::string text = to_json_text(sample());
  const Report parsed = parse_report(text);
  EXPECT_EQ(to_json_text(parsed), text);
  ASSERT_EQ(parsed.cells.size(), sample().cells.size());
  // Values survive exactly, not just their text.
  for (size_t i = 0; i < parsed.cells.size(); ++i) {
    const Cell &a = sample().cells[i], &b = parsed.cells[i];
    EXPECT_EQ(a.id(), b.id());
    EXPECT_EQ(a.result.verdict, b.result.verdict);
    ASSERT_EQ(a.result.outputs.size(), b.result.outputs.size());
    for (size_t k = 0; k < a.result.outputs.size(); ++k) {
      const double x = a.result.outputs[k].max_cond_err, y = b.result.outputs[k].max_cond_err;
      EXPECT_TRUE(x == y || (std::isnan(x) && std::isnan(y))) << a.id();
    }
  }
}

// A grid with fused forms is written as schema version 2 with "affine_mode"/"epilogue" on its
// shapes and problems, and reads back identically; a plain grid stays version 1 without them.
TEST(Report, FusedGridsRoundTripAsSchemaVersion2) {
  Grid g = small_grid();
  g.impls = {"welford"};
  g.dtypes = {"f32"};
  g.sections[0].stresses = {"normal"};
  g.sections[0].seeds = {0};
  g.sections[0].shapes.resize(1);
  ShapeSpec fused = g.sections[0].shapes[0];
  fused.name += "-per-sample-silu";
  fused.affine = true;
  fused.affine_mode = AffineMode::per_sample;
  fused.epilogue = Epilogue::silu;
  g.sections[0].shapes.push_back(fused);
  const Report r = run_grid(g);
  const std::string text = to_json_text(r);
  EXPECT_NE(text.find("\"version\": 2"), std::string::npos);
  EXPECT_NE(text.find("\"affine_mode\":\"per-sample\""), std::string::npos);
  EXPECT_NE(text.find("\"epilogue\":\"silu\""), std::string::npos);
  const Report parsed = parse_report(text);
  EXPECT_EQ(to_json_text(parsed), text);
  bool saw = false;
  for (const Cell& c : parsed.cells)
    if (c.shape_name == fused.name) {
      saw = true;
      EXPECT_TRUE(c.problem.per_sample());
      EXPECT_EQ(c.problem.epilogue, Epilogue::silu);
      EXPECT_EQ(c.result.verdict, Verdict::pass) << c.id();
    }
  EXPECT_TRUE(saw);
  // A cell whose problem lost its epilogue no longer matches its shape.
  std::string edited = text;
  const size_t at = edited.rfind(",\"epilogue\":\"silu\"");
  ASSERT_NE(at, std::string::npos);
  edited.erase(at, std::string(",\"epilogue\":\"silu\"").size());
  EXPECT_THROW(parse_report(edited), ReportError);
  EXPECT_NE(to_json_text(sample()).find("\"version\": 1"), std::string::npos);
  EXPECT_EQ(to_json_text(sample()).find("epilogue"), std::string::npos);
}

TEST(Report, RoundTripKeepsNonFiniteValuesAndOddStrings) {
  Report r = sample();
  Cell& c = r.cells.front();
  c.result.verdict = Verdict::error;
  c.result.error = "kernel threw: <\"&'> \x01 ü \xff";  // invalid UTF-8 is replaced, not fatal
  c.result.kappa_max = std::numeric_limits<double>::infinity();
  c.result.outputs.at(0).max_cond_err = std::numeric_limits<double>::quiet_NaN();
  c.result.outputs.at(0).unwritten = 3;
  const std::string text = to_json_text(r);
  const Report p = parse_report(text);
  EXPECT_EQ(to_json_text(p), text);
  EXPECT_TRUE(std::isnan(p.cells.front().result.outputs.at(0).max_cond_err));
  EXPECT_TRUE(std::isinf(p.cells.front().result.kappa_max));
  EXPECT_EQ(p.cells.front().result.outputs.at(0).unwritten, 3);
  EXPECT_EQ(p.cells.front().result.verdict, Verdict::error);
}

TEST(Report, BaselineFormRoundTripsAndCompares) {
  const Report b = baseline_of(sample());
  const std::string text = to_json_text(b);
  EXPECT_LT(text.size(), to_json_text(sample()).size() / 3);
  const Report p = parse_report(text);
  EXPECT_TRUE(p.baseline_detail);
  EXPECT_EQ(to_json_text(p), text);
  const Comparison c = compare_reports(p, sample(), 2);
  EXPECT_FALSE(c.regressed());
  EXPECT_EQ(c.matched, sample().cells.size());
}

// ---- the strict reader ------------------------------------------------------------------------

void expect_report_error(const std::string& text, const std::string& what) {
  try {
    (void)parse_report(text);
    ADD_FAILURE() << "accepted: " << what;
  } catch (const ReportError&) {
  } catch (const std::exception& e) {
    ADD_FAILURE() << what << ": threw a non-ReportError: " << e.what();
  }
}

// Replaces the first occurrence of `from` in the cells when it occurs there (the summary is
// derived and not read back), else the first one at all.
std::string replace_once(std::string s, const std::string& from, const std::string& to) {
  size_t at = s.find(from, s.find("\"cells\": ["));
  if (at == std::string::npos) at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

TEST(Report, MalformedInputsThrowReportError) {
  const std::string good = to_json_text(sample());
  expect_report_error("", "empty");
  expect_report_error("not json", "not JSON");
  expect_report_error("[]", "an array");
  expect_report_error(std::string(100000, '['), "deep nesting");
  expect_report_error(replace_once(good, "\"version\": 1", "\"version\": 3"), "schema version 3");
  expect_report_error(replace_once(good, "\"version\": 1", "\"version\": \"1\""), "version as a string");
  expect_report_error(replace_once(good, "\"gnv-report\"", "\"gnv-suite\""), "other format");
  expect_report_error(replace_once(good, "\"detail\": \"full\"", "\"detail\": \"some\""), "bad detail");
  expect_report_error(replace_once(good, "\"G\":8,", "\"G\":7,"), "C % G != 0");
  expect_report_error(replace_once(good, "\"G\":8,", "\"G\":\"8\","), "G as a string");
  expect_report_error(replace_once(good, "\"dtype\":\"f32\"", "\"dtype\":\"f8\""), "bad dtype");
  expect_report_error(replace_once(good, "\"verdict\":\"PASS\"", "\"verdict\":\"MAYBE\""), "bad verdict");
  expect_report_error(replace_once(good, "\"stress\":\"normal\"", "\"stress\":\"offset:3\""), "stress not in grid");
  expect_report_error(replace_once(good, "\"impl\":\"welford\"", "\"impl\":\"nosuch\""), "impl not in grid");
  expect_report_error(replace_once(good, "\"max_ulp\":", "\"max_ulp\":[],\"x\":"), "array for a number");
  expect_report_error(replace_once(good, "{\"index\":1,\"id\"", "{\"index\":0,\"id\""), "repeated index");
  expect_report_error(replace_once(good, "\"count\":1}", "\"count\":0}"), "shard count 0");
  expect_report_error(replace_once(good, "\"seed\":5", "\"seed\":-5"), "negative seed");
  expect_report_error(replace_once(good, "\"seed\":5", "\"seed\":6"), "seed not in the grid");
  // A worst element outside its output.
  const size_t w = good.find("\"worst\":{\"index\":");
  ASSERT_NE(w, std::string::npos);
  std::string bad = good;
  bad.replace(w, std::string("\"worst\":{\"index\":").size(), "\"worst\":{\"index\":99999999,\"i\":");
  expect_report_error(bad, "worst index out of range");
  // Every truncation of a valid report is malformed (sampled: the file is long).
  for (size_t n = 0; n < good.size(); n += 97) expect_report_error(good.substr(0, n), "truncated");
}

// An f64 element whose condition scale passes double's range is judged (8c75c34); its report
// shows the scale it was judged with, not "inf", and reads back as that long double.
TEST(Report, ScalesPastDoublesRangeRoundTripAsDecimalStrings) {
  Report r = sample();
  OutputMetrics* worst = nullptr;
  for (Cell& c : r.cells)
    for (OutputMetrics& m : c.result.outputs)
      if (!worst && m.worst_index >= 0 && m.max_ulp != 0) worst = &m;
  ASSERT_NE(worst, nullptr);
  const long double big = 2.5e308L;
  worst->worst_scale = big;
  const std::string text = to_json_text(r);
  const std::string shown = scale_past_double_text(big);
  EXPECT_EQ(std::strtold(shown.c_str(), nullptr), big) << shown;  // every digit: exact
  EXPECT_NE(text.find("\"scale\":\"" + shown + "\""), std::string::npos);
  EXPECT_EQ(scale_past_double_text(1e300L), "");  // a number holds it
  EXPECT_EQ(scale_past_double_text(std::numeric_limits<long double>::infinity()), "");
  const Report p = parse_report(text);
  EXPECT_EQ(to_json_text(p), text);
  bool found = false;
  for (const Cell& c : p.cells)
    for (const OutputMetrics& m : c.result.outputs) found = found || m.worst_scale == big;
  EXPECT_TRUE(found);
  // The string form holds only what a number cannot: anything else stays malformed.
  for (const std::string s : {"\"abc\"", "\"1e300\"", "\"2.5e308x\"", "\"1e99999\"", "\"-2.5e308\"", "\"\""})
    expect_report_error(replace_once(text, "\"" + shown + "\"", s), "scale " + s);
}

TEST(Report, ReadReportNamesTheFile) {
  const fs::path p = fs::temp_directory_path() / "gnv_report_test_bad.json";
  write_file_atomic(p, "{\"format\": \"gnv-report\", \"version\": 7}");
  try {
    (void)read_report(p);
    FAIL() << "accepted version 7";
  } catch (const ReportError& e) {
    EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("version 7"), std::string::npos) << e.what();
  }
  fs::remove(p);
}

// ---- merging ----------------------------------------------------------------------------------

std::vector<Report> split(const Report& r, int n) {
  std::vector<Report> shards;
  for (int k = 1; k <= n; ++k) {
    Report s = r;
    s.shard = {k, n};
    s.cells.clear();
    for (const Cell& c : r.cells)
      if (in_shard(c.case_index, s.shard)) s.cells.push_back(c);
    s.env.date = "2024-01-0" + std::to_string(k) + "T00:00:00Z";
    s.timing.wall_s = k;
    shards.push_back(parse_report(to_json_text(s)));  // shards are files in real life
  }
  return shards;
}

// A waiver with one failing cell: unsharded its passing cells are plain PASS; sharded, a shard
// holding only passing cells of it judged them XPASS, and the merged run failed where the
// unsharded one passes. The merge judges the waiver as a whole again.
TEST(Report, MergeJudgesWaiversAsAWhole) {
  const std::vector<Waiver> ws = parse_waivers("[[waiver]]\nimpl = \"welford\"\nreason = \"r\"\n", "w.toml");
  // One cell under the waiver fails (XFAIL) or crashes (CRASH, not waived, but the waiver is not stale).
  for (Verdict v : {Verdict::fail, Verdict::crash}) {
    Report whole = sample();
    for (Cell& c : whole.cells)
      if (ws[0].matches(c)) {
        c.result.verdict = v;
        break;
      }
    for (int n : {2, 3, 7}) {
      std::vector<Report> shards = split(whole, n);
      for (Report& s : shards) (void)apply_waivers(s, ws);
      size_t xpass_in_shards = 0;
      for (const Report& s : shards) xpass_in_shards += summarize(s).xpasses.size();
      ASSERT_GT(xpass_in_shards, 0u) << n << " shards: the test needs a shard with only passing cells";
      const Report merged = merge_reports(shards);
      Report unsharded = whole;
      (void)apply_waivers(unsharded, ws);
      EXPECT_EQ(without_timing(merged), without_timing(unsharded)) << n << " shards";
      EXPECT_TRUE(summarize(merged).xpasses.empty()) << n << " shards";
      EXPECT_EQ(summarize(merged).xfails.size(), v == Verdict::fail ? 1u : 0u) << n << " shards";
      EXPECT_EQ(summarize(merged).failures.size(), v == Verdict::fail ? 0u : 1u) << n << " shards";
    }
  }
}

TEST(Report, MergeOfShardsEqualsTheWhole) {
  for (int n : {1, 2, 3, 7}) {
    std::vector<Report> shards = split(sample(), n);
    std::reverse(shards.begin(), shards.end());  // order of the arguments does not matter
    const Report merged = merge_reports(shards);
    EXPECT_EQ(without_timing(merged), without_timing(sample())) << n << " shards";
    EXPECT_EQ(merged.shard, (Shard{1, 1}));
  }
}

TEST(Report, ShardsAreDisjointAndComplete) {
  const std::vector<CaseSpec> cases = expand_cases(small_grid());
  for (int n : {2, 5}) {
    for (const CaseSpec& c : cases) {
      int owners = 0;
      for (int k = 1; k <= n; ++k) owners += in_shard(c.index, {k, n});
      EXPECT_EQ(owners, 1);
    }
  }
}

TEST(Report, MergeRejectsMissingRepeatedAndForeignShards) {
  std::vector<Report> shards = split(sample(), 3);
  EXPECT_THROW(merge_reports({shards[0], shards[2]}), ReportError);
  EXPECT_THROW(merge_reports({shards[0], shards[1], shards[1], shards[2]}), ReportError);
  EXPECT_THROW(merge_reports({}), ReportError);
  Report other = shards[1];
  other.grid.sections[0].seeds = {0};
  EXPECT_THROW(merge_reports({shards[0], other, shards[2]}), ReportError);
  Report fewer = shards[1];
  fewer.grid.impls = {"welford"};
  EXPECT_THROW(merge_reports({shards[0], fewer, shards[2]}), ReportError);
  EXPECT_THROW(merge_reports({shards[0], split(sample(), 2)[1], shards[2]}), ReportError);
  EXPECT_THROW(parse_shard("0/3"), std::invalid_argument);
  EXPECT_THROW(parse_shard("4/3"), std::invalid_argument);
  EXPECT_THROW(parse_shard("1/"), std::invalid_argument);
  EXPECT_EQ(parse_shard("2/3"), (Shard{2, 3}));
}

// ---- comparing --------------------------------------------------------------------------------

Cell* find_cell(Report& r, bool control, Verdict v) {
  for (Cell& c : r.cells)
    if (c.control == control && c.result.verdict == v) return &c;
  return nullptr;
}

TEST(Report, CompareIdenticalIsClean) {
  const Comparison c = compare_reports(sample(), sample(), 2);
  EXPECT_FALSE(c.regressed());
  EXPECT_EQ(c.matched, sample().cells.size());
  EXPECT_TRUE(c.only_base.empty() && c.only_now.empty() && c.improvements.empty());
}

TEST(Report, CompareFlagsPassToFail) {
  Report now = sample();
  Cell* cell = find_cell(now, false, Verdict::pass);
  ASSERT_NE(cell, nullptr);
  cell->result.verdict = Verdict::fail;
  const Comparison c = compare_reports(sample(), now, 2);
  EXPECT_TRUE(c.regressed());
  ASSERT_EQ(c.regressions.size(), 1u);
  EXPECT_EQ(c.regressions[0].now->id(), cell->id());
  // The other way round it is an improvement, not a regression.
  const Comparison back = compare_reports(now, sample(), 2);
  EXPECT_FALSE(back.regressed());
  EXPECT_EQ(back.improvements.size(), 1u);
  EXPECT_NE(render_comparison(c, "a", "b").find("REGRESSION"), std::string::npos);
}

// A run that stops measuring an output (mean and rstd under --no-stats, dx/dgamma/dbeta of a kernel
// that no longer declares backward) compared only what was left and passed; now each lost output
// is a regression, and the other way round (a new output) is not.
TEST(Report, CompareFlagsLostOutputs) {
  Report now = sample();
  Cell* cell = find_cell(now, false, Verdict::pass);
  ASSERT_NE(cell, nullptr);
  ASSERT_GE(cell->result.outputs.size(), 2u);
  const std::string lost = cell->result.outputs.back().name;
  cell->result.outputs.pop_back();
  const Comparison c = compare_reports(sample(), now, 2);
  EXPECT_TRUE(c.regressed());
  ASSERT_EQ(c.lost_outputs.size(), 1u);
  EXPECT_EQ(c.lost_outputs[0].output, lost);
  EXPECT_TRUE(c.regressions.empty());
  EXPECT_NE(render_comparison(c, "a", "b").find("| " + lost + " |"), std::string::npos);
  EXPECT_FALSE(compare_reports(now, sample(), 2).regressed());
}

// SKIPPED in the baseline (the kernel declined the case), judged and failing now: the kernel took
// the case on and fails it, which the gate reported as OK.
TEST(Report, CompareFlagsSkippedToFail) {
  Report base = sample(), now = sample();
  Cell* b = find_cell(base, false, Verdict::pass);
  ASSERT_NE(b, nullptr);
  Cell* n = &now.cells[static_cast<size_t>(b - base.cells.data())];
  b->result.verdict = Verdict::skipped;
  b->result.outputs.clear();
  n->result.verdict = Verdict::fail;
  const Comparison c = compare_reports(base, now, 2);
  EXPECT_TRUE(c.regressed());
  ASSERT_EQ(c.regressions.size(), 1u);
  EXPECT_EQ(c.regressions[0].now->id(), n->id());
  n->result.verdict = Verdict::pass;  // SKIPPED -> PASS: new coverage, fine
  EXPECT_TRUE(compare_reports(base, now, 2).regressions.empty());
}

TEST(Report, CompareGrowthUsesToleranceWithAFloorOfOne) {
  Report base = sample(), now = sample();
  Cell* b = find_cell(base, false, Verdict::pass);
  ASSERT_NE(b, nullptr);
  Cell* n = &now.cells[static_cast<size_t>(b - base.cells.data())];
  auto set = [&](double before, double after) {
    b->result.outputs[0].max_cond_err = before;
    n->result.outputs[0].max_cond_err = after;
    return compare_reports(base, now, 2);
  };
  EXPECT_FALSE(set(3, 5.9).regressed());  // within 2x
  EXPECT_TRUE(set(3, 6.1).regressed());   // beyond 2x, still passing: a growth
  EXPECT_EQ(set(3, 6.1).growths.size(), 1u);
  EXPECT_FALSE(set(0, 0.9).regressed());  // 0 -> 0.9: rounding noise, not infinite growth
  EXPECT_FALSE(set(0, 2.0).regressed());  // exactly F * max(0, 1)
  EXPECT_TRUE(set(0, 2.1).regressed());
  EXPECT_TRUE(set(1, std::numeric_limits<double>::quiet_NaN()).regressed());  // NaN counts as infinite
  EXPECT_FALSE(set(std::numeric_limits<double>::quiet_NaN(), 1).regressed());
  EXPECT_FALSE(compare_reports(base, now, 1e9).regressed());
  EXPECT_THROW(compare_reports(base, now, 0.5), std::invalid_argument);
}

TEST(Report, CompareIgnoresControlsButListsThem) {
  Report now = sample();
  Cell* cell = find_cell(now, true, Verdict::pass);
  ASSERT_NE(cell, nullptr);
  cell->result.verdict = Verdict::fail;
  const Comparison c = compare_reports(sample(), now, 2);
  EXPECT_FALSE(c.regressed());
  EXPECT_EQ(c.control_changes.size(), 1u);
}

TEST(Report, CompareListsCellsOnlyOnOneSide) {
  Report now = sample();
  now.grid.impls = {"welford", "onepass", "naive"};
  Cell extra = now.cells.back();
  extra.impl = "naive";
  extra.control = false;
  extra.index = now.cells.back().index + 1;
  now.cells.push_back(extra);
  const std::string gone = now.cells.front().id();
  now.cells.erase(now.cells.begin());
  const Comparison c = compare_reports(sample(), now, 2);
  EXPECT_TRUE(c.regressed());  // a baseline cell is gone: lost coverage
  EXPECT_TRUE(c.coverage_lost());
  EXPECT_FALSE(compare_reports(sample(), now, 2, /*allow_missing=*/true).regressed());
  ASSERT_EQ(c.only_base.size(), 1u);
  EXPECT_EQ(c.only_base[0]->id(), gone);
  ASSERT_EQ(c.only_now.size(), 1u);
  const std::string md = render_comparison(c, "base.json", "new.json");
  EXPECT_NE(md.find(gone), std::string::npos);
  EXPECT_NE(md.find(extra.id()), std::string::npos);
}

TEST(Report, CompareRejectsOtherGridsAndShards) {
  Report other = sample();
  other.grid.sections[0].stresses.push_back("huge");
  EXPECT_THROW(compare_reports(sample(), other, 2), ReportError);
  Report preset = sample();
  preset.grid.preset = "ci";
  EXPECT_THROW(compare_reports(sample(), preset, 2), ReportError);
  EXPECT_THROW(compare_reports(sample(), split(sample(), 2)[0], 2), ReportError);
}

// ---- the summary ------------------------------------------------------------------------------

TEST(Report, ControlRule) {
  Report r = sample();
  for (Cell& c : r.cells)
    if (c.control) c.result.verdict = Verdict::pass;
  // Never failing where offsets >= 1e4 ran: the harness is blind.
  EXPECT_TRUE(summarize(r).controls.at("onepass").blind);
  EXPECT_FALSE(summarize(r).passed_all);
  // A shard is judged when merged.
  r.shard = {1, 1};
  Report shard = r;
  shard.shard = {1, 2};
  EXPECT_TRUE(summarize(shard).passed_all);
  // Without a large offset the rule does not apply.
  Report small = r;
  std::erase_if(small.cells, [](const Cell& c) { return c.stress == "offset:1000000"; });
  EXPECT_FALSE(summarize(small).controls.at("onepass").applicable);
  EXPECT_TRUE(summarize(small).passed_all);
  // A control that errors is broken, not caught.
  Report err = sample();
  find_cell(err, true, Verdict::fail)->result.verdict = Verdict::error;
  EXPECT_FALSE(summarize(err).passed_all);
  // A non-control failure fails the sweep.
  Report fail = sample();
  find_cell(fail, false, Verdict::pass)->result.verdict = Verdict::fail;
  EXPECT_FALSE(summarize(fail).passed_all);
}

TEST(Report, CompareOfNothingMatchedAlwaysFails) {
  Report now = sample();
  for (Cell& c : now.cells) c.impl += "-v2";
  for (std::string& i : now.grid.impls) i += "-v2";
  for (bool allow : {false, true}) {
    const Comparison c = compare_reports(sample(), now, 2, allow);
    EXPECT_EQ(c.matched, 0u);
    EXPECT_TRUE(c.regressed()) << allow;
    const std::string md = render_comparison(c, "a", "b");
    EXPECT_NE(md.find("compared nothing"), std::string::npos) << md;
    EXPECT_NE(md.find("was a kernel renamed"), std::string::npos) << md;
  }
  // Only the kernel renamed: the control cells still match, which compares nothing of the kernel.
  Report kernel_only = sample();
  for (Cell& c : kernel_only.cells)
    if (!c.control) c.impl = "welford-v2";
  for (std::string& i : kernel_only.grid.impls)
    if (i == "welford") i = "welford-v2";
  const Comparison k = compare_reports(sample(), kernel_only, 2, /*allow_missing=*/true);
  EXPECT_GT(k.matched, 0u);
  EXPECT_TRUE(k.nothing_matched());
  EXPECT_TRUE(k.regressed());
}

TEST(Report, SkippedCellsAreCountedNotJudged) {
  Report r = sample();
  // Every welford nchw... cell declined: counted, left out of failures and breakdown points.
  size_t n = 0;
  for (Cell& c : r.cells)
    if (c.impl == "welford" && c.problem.dtype == DType::f16) {
      c.result = CheckResult{};
      c.result.verdict = Verdict::skipped;
      c.result.error = "declined";
      ++n;
    }
  ASSERT_GT(n, 0u);
  const Summary s = summarize(r);
  EXPECT_EQ(s.skipped, n);
  EXPECT_TRUE(s.passed_all);
  for (const Breakdown& b : s.breakdown) EXPECT_FALSE(b.impl == "welford" && b.dtype == "f16") << "breakdown of skipped cells";
  EXPECT_NE(render_markdown(r).find("skipped"), std::string::npos);
  const std::string junit = render_junit(r);
  EXPECT_NE(junit.find(fmt::format("skipped=\"{}\"", n)), std::string::npos) << junit.substr(0, 300);
  // A report with SKIPPED cells round-trips.
  EXPECT_EQ(to_json_text(parse_report(to_json_text(r))), to_json_text(r));
  // A skipped cell that failed before is a change the gate does not call a regression; a passing
  // cell that is now skipped is one.
  EXPECT_TRUE(compare_reports(sample(), r, 2).regressed());
  // A kernel that declined every cell judged nothing: the run fails.
  for (Cell& c : r.cells)
    if (c.impl == "welford") {
      c.result = CheckResult{};
      c.result.verdict = Verdict::skipped;
      c.result.error = "declined";
    }
  const Summary none = summarize(r);
  EXPECT_EQ(none.unjudged, std::vector<std::string>{"welford"});
  EXPECT_FALSE(none.passed_all);
  EXPECT_NE(render_junit(r).find("UNJUDGED"), std::string::npos);
}

TEST(Report, WaiversMakeXfailAndStrictXpass) {
  const std::vector<Waiver> ws = parse_waivers(
      "[[waiver]]\nimpl = \"welford\"\ndtype = \"fp32\"\nstress = \"offset:1e6\"\nreason = \"r1\"\n"
      "link = \"https://x/1\"\n[[waiver]]\nimpl = \"onepass\"\nreason = \"controls take none\"\n",
      "w.toml");
  ASSERT_EQ(ws.size(), 2u);
  EXPECT_EQ(ws[0].dtype, "f32");  // canonicalized
  EXPECT_EQ(ws[0].source, "w.toml:1");
  Report r = sample();
  // welford f32 offset:1e6 passes: under the waiver that is XPASS and the run fails.
  std::vector<size_t> used = apply_waivers(r, ws);
  EXPECT_GT(used[0], 0u);
  EXPECT_EQ(used[1], 0u) << "control cells are never waived";
  Summary s = summarize(r);
  EXPECT_EQ(s.xpasses.size(), used[0]);
  EXPECT_FALSE(s.passed_all);
  for (const Cell* c : s.xpasses) EXPECT_EQ(cell_label(*c), "XPASS");
  // Make those cells fail: XFAIL, not failures, and the run passes.
  for (Cell& c : r.cells)
    if (c.waiver) c.result.verdict = Verdict::fail;
  s = summarize(r);
  EXPECT_EQ(s.xfails.size(), used[0]);
  EXPECT_TRUE(s.failures.empty());
  EXPECT_TRUE(s.passed_all);
  EXPECT_NE(render_markdown(r).find("XFAIL"), std::string::npos);
  const Report back = parse_report(to_json_text(r));
  for (size_t i = 0; i < r.cells.size(); ++i) EXPECT_EQ(back.cells[i].waiver, r.cells[i].waiver);
  // A waiver judged as a whole: with one of its cells failing, the others that pass are plain PASS.
  Report mixed = sample();
  size_t n = 0;
  for (Cell& c : mixed.cells)
    if (ws[0].matches(c) && n++ == 0) c.result.verdict = Verdict::fail;
  ASSERT_GT(n, 1u);
  (void)apply_waivers(mixed, ws);
  const Summary sm = summarize(mixed);
  EXPECT_EQ(sm.xfails.size(), 1u);
  EXPECT_TRUE(sm.xpasses.empty());
  EXPECT_TRUE(sm.passed_all);
  // A waiver expects wrong numbers, not none: a waived cell that crashed stays CRASH and fails the
  // run, and it keeps the waiver's passing cells from being called stale.
  Report crashed = sample();
  n = 0;
  for (Cell& c : crashed.cells)
    if (ws[0].matches(c) && n++ == 0) c.result.verdict = Verdict::crash;
  (void)apply_waivers(crashed, ws);
  const Summary sc = summarize(crashed);
  EXPECT_TRUE(sc.xfails.empty());
  EXPECT_TRUE(sc.xpasses.empty());
  ASSERT_EQ(sc.failures.size(), 1u);
  EXPECT_EQ(cell_label(*sc.failures[0]), "CRASH");
  EXPECT_FALSE(sc.passed_all);
  // Malformed waiver files name file, line and key.
  auto err = [](const std::string& text) {
    try {
      (void)parse_waivers(text, "w.toml");
    } catch (const GridError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(err("[[waiver]]\nimpl = \"x\"\n").find("w.toml:1: waiver[0]: missing key 'reason'"), std::string::npos);
  EXPECT_NE(err("[[waiver]]\nreason = \"r\"\ndtype = \"f8\"\n").find("w.toml:3: waiver[0].dtype: unknown dtype"),
            std::string::npos);
  EXPECT_NE(err("[[waiver]]\nreason = \"r\"\nwho = \"me\"\n").find("waiver[0].who: unknown key"), std::string::npos);
  EXPECT_NE(err("[[waiver]]\nreason = 3\n").find("waiver[0].reason: expected a string"), std::string::npos);
  EXPECT_NE(err("[[waiver]\n").find("w.toml:1:"), std::string::npos);
  EXPECT_NE(err("waivers = 1\n").find("unknown key"), std::string::npos);
}

TEST(Report, KernelTextsCannotInjectMarkupOrTerminalEscapes) {
  Report r = sample();
  Cell& c = r.cells.front();
  c.result = CheckResult{};
  c.result.verdict = Verdict::error;
  c.result.error = "boom \x1b[2J<script>alert(1)</script> | & done";
  const std::string md = render_markdown(r), text = render_text(r);
  EXPECT_EQ(md.find('\x1b'), std::string::npos);
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
  EXPECT_EQ(md.find("<script>"), std::string::npos);
  EXPECT_NE(md.find("&lt;script&gt;alert(1)&lt;/script&gt; \\| &amp; done"), std::string::npos) << md;
  EXPECT_NE(text.find("?[2J<script>"), std::string::npos) << "the terminal view keeps the text, escapes defused";
}

TEST(Report, BreakdownIsPerLayout) {
  Report r = sample();
  r.grid.layouts = {"nchw", "nhwc"};
  // A copy of every welford cell in nhwc where offset:1e6 fails: only the nhwc row breaks down.
  std::vector<Cell> extra;
  size_t next = r.cells.back().index + 1;
  for (const Cell& c : r.cells) {
    if (c.impl != "welford") continue;
    Cell x = c;
    x.problem.layout = Layout::nhwc;
    x.index = next++;
    if (c.stress == "offset:1000000") x.result.verdict = Verdict::fail;
    extra.push_back(x);
  }
  r.cells.insert(r.cells.end(), extra.begin(), extra.end());
  const Summary s = summarize(r);
  bool nchw = false, nhwc = false;
  for (const Breakdown& b : s.breakdown) {
    if (b.impl != "welford" || b.dtype != "f32") continue;
    if (b.layout == "nchw") {
      nchw = true;
      EXPECT_FALSE(b.offset.has_value());
    }
    if (b.layout == "nhwc") {
      nhwc = true;
      EXPECT_EQ(b.offset, std::optional<double>(1e6));
    }
  }
  EXPECT_TRUE(nchw && nhwc);
}

TEST(Report, BreakdownIsTheSmallestFailingOffset) {
  const Summary s = summarize(sample());
  bool saw_onepass = false;
  for (const Breakdown& b : s.breakdown) {
    EXPECT_EQ(b.max_tested, 1e6);
    if (b.impl == "welford") {
      EXPECT_FALSE(b.offset.has_value()) << b.dtype;
    }
    if (b.impl == "onepass" && b.dtype == "f32") {
      saw_onepass = true;
      EXPECT_EQ(b.offset, std::optional<double>(1e6));
    }
  }
  EXPECT_TRUE(saw_onepass);
}

// ---- views ------------------------------------------------------------------------------------

// A minimal XML well-formedness check for what render_junit emits: balanced tags, quoted
// attributes, no raw '<' or '&' in text or attributes.
bool well_formed_xml(const std::string& s, std::string* why) {
  std::vector<std::string> stack;
  size_t i = 0;
  if (s.rfind("<?xml", 0) == 0) i = s.find("?>") + 2;
  while (i < s.size()) {
    if (s[i] == '&') {
      const size_t semi = s.find(';', i);
      const std::string ent = s.substr(i, semi == std::string::npos ? 0 : semi - i + 1);
      if (ent != "&amp;" && ent != "&lt;" && ent != "&gt;" && ent != "&quot;" && ent != "&apos;") {
        *why = "bad entity at " + std::to_string(i);
        return false;
      }
      i = semi + 1;
    } else if (s[i] == '<') {
      const size_t end = s.find('>', i);
      if (end == std::string::npos) return *why = "unclosed tag", false;
      std::string tag = s.substr(i + 1, end - i - 1);
      if (tag.find('<') != std::string::npos) return *why = "'<' inside a tag", false;
      if (std::count(tag.begin(), tag.end(), '"') % 2) return *why = "unbalanced quotes: " + tag, false;
      if (tag[0] == '/') {
        if (stack.empty() || stack.back() != tag.substr(1)) return *why = "mismatched </" + tag.substr(1) + ">", false;
        stack.pop_back();
      } else if (tag.back() != '/') {
        stack.push_back(tag.substr(0, tag.find_first_of(" \n")));
      }
      i = end + 1;
    } else {
      ++i;
    }
  }
  if (!stack.empty()) return *why = "unclosed <" + stack.back() + ">", false;
  return true;
}

TEST(Report, JunitIsWellFormedWithOneTestcasePerCell) {
  Report r = sample();
  find_cell(r, false, Verdict::pass)->result.verdict = Verdict::fail;
  Cell* e = find_cell(r, false, Verdict::pass);
  e->result.verdict = Verdict::error;
  e->result.error = "bad <thing> & \"quote\" \x02";
  const std::string x = render_junit(parse_report(to_json_text(r)));
  std::string why;
  EXPECT_TRUE(well_formed_xml(x, &why)) << why;
  size_t testcases = 0;
  for (size_t at = 0; (at = x.find("<testcase ", at)) != std::string::npos; ++at) ++testcases;
  EXPECT_EQ(testcases, r.cells.size() + 1);  // + "control is caught"
  EXPECT_NE(x.find("failures=\"1\""), std::string::npos);
  EXPECT_NE(x.find("errors=\"1\""), std::string::npos);
  EXPECT_NE(x.find("&lt;thing&gt; &amp; &quot;quote&quot;"), std::string::npos);
  // The well-formedness check itself can fail.
  EXPECT_FALSE(well_formed_xml("<a><b></a>", &why));
  EXPECT_FALSE(well_formed_xml("<a>x & y</a>", &why));
}

TEST(Report, MarkdownHasTheTableBreakdownAndEnvironment) {
  Report r = sample();
  Cell* f = find_cell(r, false, Verdict::pass);
  f->result.verdict = Verdict::fail;
  f->case_dir = "cases/failing";
  const std::string md = render_markdown(r);
  EXPECT_NE(md.find("**Result: FAIL**"), std::string::npos);
  EXPECT_NE(md.find("| welford | f32 | nchw |"), std::string::npos);
  EXPECT_NE(md.find("onepass (control)"), std::string::npos);
  EXPECT_NE(md.find("## Breakdown points"), std::string::npos);
  EXPECT_NE(md.find(f->id()), std::string::npos);
  EXPECT_NE(md.find("gnv check --case cases/failing --impl welford"), std::string::npos);
  EXPECT_NE(md.find("## Environment"), std::string::npos);
  EXPECT_NE(render_markdown(sample()).find("**Result: PASS**"), std::string::npos);
}

// ---- presets ----------------------------------------------------------------------------------

TEST(Report, PresetsExpandToValidCasesWithModelShapesAndAllOffsets) {
  for (const std::string& name : preset_names()) {
    Grid g = preset_grid(name);
    const std::vector<CaseSpec> cases = expand_cases(g);
    EXPECT_FALSE(cases.empty()) << name;
    std::set<double> offsets;
    std::set<size_t> ranks;
    for (const CaseSpec& c : cases) {
      const Stress s = parse_stress(c.stress);
      if (s.kind == StressKind::offset) offsets.insert(s.param);
      ranks.insert(c.problem.spatial.size());
    }
    EXPECT_EQ(offsets.size(), 9u) << name << ": offsets 1e0..1e8";
    EXPECT_EQ(ranks.size(), 4u) << name << ": spatial ranks 0..3";
  }
  EXPECT_THROW(preset_grid("huge"), std::invalid_argument);
}

// ---- the shared-oracle check ------------------------------------------------------------------

TEST(Report, SharedOracleCheckEqualsCheckCase) {
  std::vector<const Impl*> impls = Registry::instance().all();
  for (const char* stress : {"normal", "offset:100000", "special"}) {
    for (bool affine : {false, true}) {
      Problem p;
      parse_shape("2,12,5", p);
      p.G = 3;
      p.affine = affine;
      const Case c = make_case(p, parse_stress(stress), 1, true);
      std::vector<bool> bwd;
      for (size_t i = 0; i < impls.size(); ++i) bwd.push_back(i % 2 == 0);
      const std::vector<CheckResult> shared = check_case_shared(impls, c, bwd);
      for (size_t i = 0; i < impls.size(); ++i) {
        const CheckResult one = check_case(*impls[i], c, bwd[i]);
        const std::string where = std::string(impls[i]->name()) + " " + stress;
        EXPECT_EQ(shared[i].verdict, one.verdict) << where;
        EXPECT_EQ(shared[i].error, one.error) << where;
        EXPECT_EQ(shared[i].kappa_min, one.kappa_min) << where;
        EXPECT_EQ(shared[i].kappa_max, one.kappa_max) << where;
        ASSERT_EQ(shared[i].outputs.size(), one.outputs.size()) << where;
        for (size_t k = 0; k < one.outputs.size(); ++k) {
          const OutputMetrics &a = shared[i].outputs[k], &b = one.outputs[k];
          EXPECT_EQ(a.name, b.name);
          EXPECT_EQ(a.verdict, b.verdict) << where << " " << a.name;
          EXPECT_TRUE(a.max_cond_err == b.max_cond_err || (std::isnan(a.max_cond_err) && std::isnan(b.max_cond_err)));
          EXPECT_EQ(a.worst_index, b.worst_index);
        }
      }
    }
  }
}

// ---- atomic writes ----------------------------------------------------------------------------

TEST(Report, KilledWriterNeverLeavesAPartialReport) {
  const fs::path dir = fs::temp_directory_path() / ("gnv_atomic_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path target = dir / "report.json";
  // Two large, distinguishable whole files; a partial write would be a prefix of one of them.
  const std::string a = std::string(8 << 20, 'a') + "END", b = std::string(8 << 20, 'b') + "END";
  for (int round = 0; round < 5; ++round) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      for (int i = 0;; ++i) write_file_atomic(target, i % 2 ? a : b);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(30 + 17 * round));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!fs::exists(target)) continue;  // killed before the first rename
    std::ifstream in(target, std::ios::binary);
    const std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_TRUE(got == a || got == b) << "round " << round << ": a partial file of " << got.size() << " bytes";
  }
  fs::remove_all(dir);
}

TEST(Report, FailedWriteLeavesWholeFilesAndNoTemporaries) {
  const fs::path dir = fs::temp_directory_path() / ("gnv_atomic_fail_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  write_report_files(sample(), dir);
  // A directory where junit.xml should go makes the last write fail.
  fs::remove(dir / "junit.xml");
  fs::create_directories(dir / "junit.xml" / "x");
  Report changed = sample();
  changed.grid.preset = "changed";
  EXPECT_ANY_THROW(write_report_files(changed, dir));
  // The files written before the failure are whole (the new report parses), and no temporary
  // file is left behind.
  EXPECT_EQ(read_report(dir / "report.json").grid.preset, "changed");
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace gnv::report
