// report.json: writer and a strict reader. The reader is a fuzz target: whatever the bytes, it
// returns a Report that every other function can use safely (indices in range, problems valid,
// cells consistent with the grid) or throws ReportError, never anything else.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <bit>
#include <cmath>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "gnv/npy.h"
#include "gnv/report.h"
#include "gnv/stress.h"

namespace gnv::report {

namespace {

using ojson = nlohmann::ordered_json;
// Read in file order too, so that nothing a writer ordered is reordered by a round trip.
using json = nlohmann::ordered_json;

// Error texts come from exceptions and may hold any bytes: invalid UTF-8 becomes U+FFFD instead
// of making the writer throw.
std::string dump(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

ojson number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return v;
}

ojson scale_number(long double v) {
  if (std::string s = scale_past_double_text(v); !s.empty()) return s;
  return number(static_cast<double>(v));
}

// The fused forms, written only where used (so that reports of plain grids stay as they were).
template <class J> void put_fused(J& j, AffineMode mode, Epilogue epilogue) {
  if (mode != AffineMode::per_channel) j["affine_mode"] = name(mode);
  if (epilogue != Epilogue::none) j["epilogue"] = name(epilogue);
}

ojson problem_json(const Problem& p) {
  ojson j = {{"shape", p.shape_string()}, {"G", p.G},          {"eps", number(p.eps)},
             {"affine", p.affine},        {"dtype", name(p.dtype)}, {"layout", name(p.layout)}};
  put_fused(j, p.affine_mode, p.epilogue);
  return j;
}

ojson output_json(const OutputMetrics& m) {
  ojson o = {{"name", m.name},
             {"verdict", verdict_label(m.verdict)},
             {"budget", number(m.budget)},
             {"max_cond_err", number(m.max_cond_err)},
             {"max_ulp", number(m.max_ulp)},
             {"max_u_err", number(m.max_u_err)},
             {"normwise", number(m.normwise)}};
  // Zero counters are the rule; leaving them out keeps a cell on one readable line.
  if (m.ill_posed) o["ill_posed"] = m.ill_posed;
  if (m.unwritten) o["unwritten"] = m.unwritten;
  if (m.policy_violations) o["policy_violations"] = m.policy_violations;
  // The worst element of an output equal to the exact one everywhere says nothing.
  if (m.worst_index >= 0 && m.max_ulp != 0)
    o["worst"] = {{"index", m.worst_index},
                  {"expected", number(m.worst_expected)},
                  {"actual", number(m.worst_actual)},
                  {"scale", scale_number(m.worst_scale)}};
  return o;
}

ojson cell_json(const Report& r, const Cell& c, bool baseline) {
  ojson j = {{"index", c.index}};
  if (!baseline) j["id"] = c.id();  // derived: the baseline form saves the bytes
  j.update(ojson{{"case_index", c.case_index},
             {"impl", c.impl},
             {"control", c.control},
             {"device", c.device},
             {"section", c.section},
             {"shape_name", c.shape_name}});
  if (baseline) {
    j["G"] = c.problem.G;
    j["dtype"] = name(c.problem.dtype);
    j["layout"] = name(c.problem.layout);
  } else {
    j["problem"] = problem_json(c.problem);
  }
  j["stress"] = c.stress;
  j["seed"] = c.seed;
  j["backward"] = c.backward;
  j["verdict"] = verdict_label(c.result.verdict);
  if (has_reason(c.result.verdict)) j["error"] = c.result.error;
  if (c.waiver) {
    j["waiver"] = {{"reason", c.waiver->reason}};
    if (!c.waiver->link.empty()) j["waiver"]["link"] = c.waiver->link;
  }
  if (baseline) {
    ojson errs = ojson::array();
    for (const OutputMetrics& m : c.result.outputs) errs.push_back({m.name, number(m.max_cond_err)});
    j["max_cond_err"] = std::move(errs);
    return j;
  }
  j["kappa_min"] = number(c.result.kappa_min);
  j["kappa_max"] = number(c.result.kappa_max);
  if (c.result.oracle_undecided) j["oracle_undecided"] = c.result.oracle_undecided;
  if (c.result.oracle_fallbacks) j["oracle_fallbacks"] = c.result.oracle_fallbacks;
  ojson outs = ojson::array();
  for (const OutputMetrics& m : c.result.outputs) outs.push_back(output_json(m));
  j["outputs"] = std::move(outs);
  j["reproduce"] = c.reproduce;
  if (!c.case_dir.empty()) {
    j["case_dir"] = c.case_dir;
    j["replay"] = replay_command(r, c);  // derived: what every rendering prints (report.html reads it)
  }
  j["seconds"] = number(c.seconds);
  return j;
}

ojson grid_json(const Grid& g) {
  ojson secs = ojson::array();
  for (const Section& s : g.sections) {
    ojson shapes = ojson::array();
    for (const ShapeSpec& sh : s.shapes) {
      ojson j = {{"name", sh.name}, {"shape", sh.shape}, {"groups", sh.groups},
                 {"affine", sh.affine}, {"eps", number(sh.eps)}, {"note", sh.note}};
      put_fused(j, sh.affine_mode, sh.epilogue);
      shapes.push_back(std::move(j));
    }
    secs.push_back({{"name", s.name}, {"shapes", std::move(shapes)}, {"stresses", s.stresses},
                    {"seeds", s.seeds}});
  }
  ojson j = {{"preset", g.preset}, {"impls", g.impls},       {"dtypes", g.dtypes},
             {"layouts", g.layouts}, {"backward", g.backward}, {"sections", std::move(secs)}};
  if (!g.external.empty()) j["external"] = g.external;
  // Written only when not the default, so that reports and baselines of the default stay as they were.
  if (g.budget != BudgetProfile::pairwise) j["budget"] = name(g.budget);
  return j;
}

ojson summary_json(const Report& r) {
  const Summary s = summarize(r);
  ojson controls = ojson::object();
  for (const auto& [impl, c] : s.controls)
    controls[impl] = {{"cells", c.cells}, {"failed", c.failed}, {"errors", c.errors},
                      {"applicable", c.applicable}, {"blind", c.blind}};
  ojson bd = ojson::array();
  for (const Breakdown& b : s.breakdown)
    bd.push_back({{"impl", b.impl}, {"dtype", b.dtype}, {"layout", b.layout}, {"control", b.control},
                  {"offset", b.offset ? number(*b.offset) : ojson(nullptr)},
                  {"max_tested", number(b.max_tested)}});
  auto indices = [](const std::vector<const Cell*>& v) {
    ojson a = ojson::array();
    for (const Cell* c : v) a.push_back(c->index);
    return a;
  };
  return {{"cells", s.cells},
          {"passed", s.passed},
          {"skipped", s.skipped},
          {"failures", indices(s.failures)},
          {"xfail", indices(s.xfails)},
          {"xpass", indices(s.xpasses)},
          {"control_errors", s.control_errors.size()},
          {"controls", std::move(controls)},
          {"breakdown", std::move(bd)},
          {"blind_rule_applied", s.blind_rule_applied},
          {"result", s.passed_all ? "PASS" : "FAIL"}};
}

// ---- reading ----------------------------------------------------------------------------------

[[noreturn]] void fail(const std::string& where, const std::string& what) {
  throw ReportError(fmt::format("{}: {}", where, what));
}

const json& field(const json& o, const char* key, const std::string& where) {
  if (!o.is_object()) fail(where, "expected an object");
  const auto it = o.find(key);
  if (it == o.end()) fail(where, fmt::format("missing field '{}'", key));
  return *it;
}
std::string at(const std::string& where, const char* key) { return where + "." + key; }

std::string get_string(const json& o, const char* key, const std::string& where) {
  const json& v = field(o, key, where);
  if (!v.is_string()) fail(at(where, key), "expected a string");
  return v.get<std::string>();
}
bool get_bool(const json& o, const char* key, const std::string& where) {
  const json& v = field(o, key, where);
  if (!v.is_boolean()) fail(at(where, key), "expected true or false");
  return v.get<bool>();
}
int64_t as_int(const json& v, const std::string& where, int64_t lo, int64_t hi) {
  int64_t x = 0;
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) fail(where, "integer out of range");
    x = static_cast<int64_t>(u);
  } else if (v.is_number_integer()) {
    x = v.get<int64_t>();
  } else {
    fail(where, "expected an integer");
  }
  if (x < lo || x > hi) fail(where, fmt::format("{} is out of range [{}, {}]", x, lo, hi));
  return x;
}
int64_t get_int(const json& o, const char* key, const std::string& where, int64_t lo = 0,
                int64_t hi = std::numeric_limits<int64_t>::max()) {
  return as_int(field(o, key, where), at(where, key), lo, hi);
}
uint64_t as_uint(const json& v, const std::string& where) {
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
    fail(where, "expected a non-negative integer");
  return v.get<uint64_t>();
}
double as_double(const json& v, const std::string& where) {
  if (v.is_number()) return v.get<double>();
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
    if (s == "inf") return std::numeric_limits<double>::infinity();
    if (s == "-inf") return -std::numeric_limits<double>::infinity();
  }
  fail(where, "expected a number (or \"nan\", \"inf\", \"-inf\")");
}
double get_double(const json& o, const char* key, const std::string& where) {
  return as_double(field(o, key, where), at(where, key));
}
// A number, "nan"/"inf"/"-inf", or the decimal string of a finite scale past double's range.
long double get_scale(const json& o, const char* key, const std::string& where) {
  const json& v = field(o, key, where);
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    long double x = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
    if (ec == std::errc() && end == s.data() + s.size() && x > 0 && std::isfinite(x) &&
        !std::isfinite(static_cast<double>(x)))
      return x;
  }
  return as_double(v, at(where, key));
}
const json& get_array(const json& o, const char* key, const std::string& where) {
  const json& v = field(o, key, where);
  if (!v.is_array()) fail(at(where, key), "expected an array");
  return v;
}
std::vector<std::string> get_strings(const json& o, const char* key, const std::string& where) {
  std::vector<std::string> out;
  const json& a = get_array(o, key, where);
  for (size_t i = 0; i < a.size(); ++i) {
    if (!a[i].is_string()) fail(fmt::format("{}.{}[{}]", where, key, i), "expected a string");
    out.push_back(a[i].get<std::string>());
  }
  return out;
}
// A grid list names each item once: a repeated dtype or stress would run cells twice.
template <class T> void require_unique(const std::vector<T>& v, const std::string& where) {
  std::set<T> seen(v.begin(), v.end());
  if (seen.size() != v.size()) fail(where, "repeated entry");
}

// The nesting depth of the JSON text, outside strings. nlohmann's parser is iterative, but
// values are destroyed recursively: a hostile file of 10^6 '[' must be refused before parsing.
void check_depth(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char ch : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (ch == '\\') escaped = true;
      else if (ch == '"') in_string = false;
      continue;
    }
    if (ch == '"') in_string = true;
    else if (ch == '[' || ch == '{') {
      if (++depth > max_depth) fail("report", fmt::format("nested deeper than {} levels", max_depth));
    } else if (ch == ']' || ch == '}') {
      --depth;
    }
  }
}

// "affine_mode" and "epilogue": optional, per-channel and none when absent.
void read_fused(const json& o, const std::string& where, AffineMode& mode, Epilogue& epilogue) {
  try {
    if (o.contains("affine_mode")) mode = parse_affine_mode(get_string(o, "affine_mode", where));
    if (o.contains("epilogue")) epilogue = parse_epilogue(get_string(o, "epilogue", where));
  } catch (const std::invalid_argument& e) {
    fail(where, e.what());
  }
}

Problem read_problem(const json& o, const std::string& where) {
  Problem p;
  try {
    parse_shape(get_string(o, "shape", where), p);
    p.G = get_int(o, "G", where, 1);
    p.eps = get_double(o, "eps", where);
    p.affine = get_bool(o, "affine", where);
    p.dtype = parse_dtype(get_string(o, "dtype", where));
    p.layout = parse_layout(get_string(o, "layout", where));
    read_fused(o, where, p.affine_mode, p.epilogue);
    p.validate();
  } catch (const ReportError&) {
    throw;
  } catch (const std::exception& e) {
    fail(where, e.what());
  }
  return p;
}

int64_t expected_count(const Problem& p, const std::string& output) {
  if (output == "y" || output == "dx") return p.numel();
  if (output == "mean" || output == "rstd") return p.N * p.G;
  if (output == "dgamma" || output == "dbeta") return p.per_sample() ? p.N * p.C : p.C;
  return -1;
}

int64_t get_count(const json& o, const char* key, const std::string& where, int64_t max) {
  return o.contains(key) ? get_int(o, key, where, 0, max) : 0;
}

OutputMetrics read_output(const json& o, const Problem& p, const std::string& where) {
  OutputMetrics m;
  m.name = get_string(o, "name", where);
  m.count = expected_count(p, m.name);
  if (m.count < 0) fail(at(where, "name"), fmt::format("unknown output '{}'", m.name));
  m.verdict = parse_verdict(get_string(o, "verdict", where));
  m.budget = get_double(o, "budget", where);
  m.max_cond_err = get_double(o, "max_cond_err", where);
  m.max_ulp = get_double(o, "max_ulp", where);
  m.max_u_err = get_double(o, "max_u_err", where);
  m.normwise = get_double(o, "normwise", where);
  m.ill_posed = get_count(o, "ill_posed", where, m.count);
  m.unwritten = get_count(o, "unwritten", where, m.count);
  m.policy_violations = get_count(o, "policy_violations", where, m.count);
  if (o.contains("worst")) {
    const json& w = o["worst"];
    const std::string ww = at(where, "worst");
    if (m.count == 0) fail(ww, "an empty output has no worst element");
    if (m.max_ulp == 0) fail(ww, "an exact output (max_ulp 0) has no worst element");
    m.worst_index = get_int(w, "index", ww, 0, m.count - 1);
    m.worst_expected = get_double(w, "expected", ww);
    m.worst_actual = get_double(w, "actual", ww);
    m.worst_scale = get_scale(w, "scale", ww);
  }
  return m;
}

// grid.external values are pasted into replay lines: from another machine, they must be what
// register_external writes -- "--plugin" or "--runner" and words that are plain or single-quoted
// (with the '\\'' idiom for a quote) -- and nothing a shell would expand or run.
bool safe_load_options(std::string_view s) {
  if (s.rfind("--plugin ", 0) != 0 && s.rfind("--runner ", 0) != 0) return false;
  bool quoted = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char ch = s[i];
    if (quoted) {
      quoted = ch != '\'';
    } else if (ch == '\'') {
      quoted = true;
    } else if (ch == '\\') {
      if (i + 1 >= s.size() || s[i + 1] != '\'') return false;
      ++i;
    } else if (!(std::isalnum(static_cast<unsigned char>(ch)) || std::strchr(" _./:=,+@%-", ch))) {
      return false;
    }
  }
  return !quoted;
}

Grid read_grid(const json& o) {
  const std::string where = "grid";
  Grid g;
  g.preset = get_string(o, "preset", where);
  g.impls = get_strings(o, "impls", where);
  g.dtypes = get_strings(o, "dtypes", where);
  g.layouts = get_strings(o, "layouts", where);
  require_unique(g.impls, at(where, "impls"));
  require_unique(g.dtypes, at(where, "dtypes"));
  require_unique(g.layouts, at(where, "layouts"));
  try {
    for (const std::string& d : g.dtypes) (void)parse_dtype(d);
    for (const std::string& l : g.layouts) (void)parse_layout(l);
  } catch (const std::invalid_argument& e) {
    fail(where, e.what());
  }
  g.backward = get_bool(o, "backward", where);
  if (o.contains("budget")) {
    try {
      g.budget = parse_budget_profile(get_string(o, "budget", where));
    } catch (const std::invalid_argument& e) {
      fail(at(where, "budget"), e.what());
    }
  }
  if (o.contains("external")) {
    const json& ext = o["external"];
    if (!ext.is_object()) fail(at(where, "external"), "expected an object");
    for (const auto& [k, v] : ext.items()) {
      if (!v.is_string()) fail(fmt::format("{}.external.{}", where, k), "expected a string");
      if (!safe_load_options(v.get<std::string>()))
        fail(fmt::format("{}.external.{}", where, k),
             "not --plugin/--runner options of plain or single-quoted words (it would be pasted into replay lines)");
      if (std::find(g.impls.begin(), g.impls.end(), k) == g.impls.end())
        fail(fmt::format("{}.external.{}", where, k), "is not in the grid's impls");
      g.external[k] = v.get<std::string>();
    }
  }
  const json& secs = get_array(o, "sections", where);
  std::set<std::string> names;
  for (size_t i = 0; i < secs.size(); ++i) {
    const std::string sw = fmt::format("grid.sections[{}]", i);
    Section s;
    s.name = get_string(secs[i], "name", sw);
    if (!names.insert(s.name).second) fail(sw, fmt::format("repeated section '{}'", s.name));
    s.stresses = get_strings(secs[i], "stresses", sw);
    require_unique(s.stresses, at(sw, "stresses"));
    for (const std::string& st : s.stresses) {
      try {
        if (parse_stress(st).name() != st) fail(at(sw, "stresses"), fmt::format("'{}' is not canonical", st));
      } catch (const std::invalid_argument& e) {
        fail(at(sw, "stresses"), e.what());
      }
    }
    const json& seeds = get_array(secs[i], "seeds", sw);
    for (size_t k = 0; k < seeds.size(); ++k) s.seeds.push_back(as_uint(seeds[k], fmt::format("{}.seeds[{}]", sw, k)));
    require_unique(s.seeds, at(sw, "seeds"));
    const json& shapes = get_array(secs[i], "shapes", sw);
    std::set<std::string> shape_names;
    for (size_t k = 0; k < shapes.size(); ++k) {
      const std::string hw = fmt::format("{}.shapes[{}]", sw, k);
      ShapeSpec sh;
      sh.name = get_string(shapes[k], "name", hw);
      if (!shape_names.insert(sh.name).second) fail(hw, fmt::format("repeated shape '{}'", sh.name));
      sh.shape = get_string(shapes[k], "shape", hw);
      const json& gs = get_array(shapes[k], "groups", hw);
      for (size_t q = 0; q < gs.size(); ++q)
        sh.groups.push_back(as_int(gs[q], fmt::format("{}.groups[{}]", hw, q), 1,
                                   std::numeric_limits<int64_t>::max()));
      require_unique(sh.groups, at(hw, "groups"));
      sh.affine = get_bool(shapes[k], "affine", hw);
      read_fused(shapes[k], hw, sh.affine_mode, sh.epilogue);
      sh.eps = get_double(shapes[k], "eps", hw);
      sh.note = get_string(shapes[k], "note", hw);
      // Each G must make a valid problem, so that expand_cases never throws on a parsed grid.
      for (int64_t G : sh.groups) {
        try {
          Problem p;
          parse_shape(sh.shape, p);
          p.G = G;
          p.eps = sh.eps;
          p.validate();
        } catch (const std::exception& e) {
          fail(hw, e.what());
        }
      }
      s.shapes.push_back(std::move(sh));
    }
    g.sections.push_back(std::move(s));
  }
  return g;
}

const ShapeSpec* find_shape(const Grid& g, const std::string& section, const std::string& shape,
                            const Section** sec_out) {
  for (const Section& s : g.sections) {
    if (s.name != section) continue;
    *sec_out = &s;
    for (const ShapeSpec& sh : s.shapes)
      if (sh.name == shape) return &sh;
  }
  return nullptr;
}

template <class T> bool contains(const std::vector<T>& v, const T& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// The one output of the baseline form: its error, and the cell's verdict.
OutputMetrics baseline_output(const std::string& output, double err, const Problem& p, Verdict v,
                              const std::string& where) {
  OutputMetrics m;
  m.name = output;
  m.count = expected_count(p, output);
  if (m.count < 0) fail(where, fmt::format("unknown output '{}'", output));
  m.max_cond_err = err;
  m.verdict = v;
  return m;
}

// "id" is derived; when present it must name the cell's parameters.
Cell check_id(const json& o, Cell& c, const std::string& where) {
  if (o.contains("id") && get_string(o, "id", where) != c.id())
    fail(at(where, "id"), fmt::format("'{}' does not match the cell's parameters ({})",
                                      get_string(o, "id", where), c.id()));
  return std::move(c);
}

Cell read_cell(const json& o, const Grid& g, bool baseline, const std::string& where) {
  Cell c;
  c.index = static_cast<size_t>(get_int(o, "index", where));
  c.case_index = static_cast<size_t>(get_int(o, "case_index", where));
  c.impl = get_string(o, "impl", where);
  if (!contains(g.impls, c.impl)) fail(at(where, "impl"), fmt::format("'{}' is not in the grid's impls", c.impl));
  c.control = get_bool(o, "control", where);
  c.device = get_string(o, "device", where);
  c.section = get_string(o, "section", where);
  c.shape_name = get_string(o, "shape_name", where);
  const Section* sec = nullptr;
  const ShapeSpec* sh = find_shape(g, c.section, c.shape_name, &sec);
  if (!sh)
    fail(where, fmt::format("section '{}' shape '{}' is not in the grid", c.section, c.shape_name));
  Problem want;
  parse_shape(sh->shape, want);  // read_grid validated it
  if (baseline) {
    // The baseline form names the problem by its grid entry.
    want.G = get_int(o, "G", where, 1);
    if (!contains(sh->groups, want.G)) fail(at(where, "G"), "not in the grid's shape");
    want.eps = sh->eps;
    want.affine = sh->affine;
    want.affine_mode = sh->affine_mode;
    want.epilogue = sh->epilogue;
    try {
      want.dtype = parse_dtype(get_string(o, "dtype", where));
      want.layout = parse_layout(get_string(o, "layout", where));
    } catch (const std::invalid_argument& e) {
      fail(where, e.what());
    }
    c.problem = want;
  } else {
    c.problem = read_problem(field(o, "problem", where), at(where, "problem"));
  }
  if (c.problem.shape_string() != want.shape_string() || !contains(sh->groups, c.problem.G) ||
      c.problem.affine != sh->affine || c.problem.affine_mode != sh->affine_mode ||
      c.problem.epilogue != sh->epilogue ||
      std::bit_cast<uint64_t>(c.problem.eps) != std::bit_cast<uint64_t>(sh->eps))
    fail(at(where, "problem"), fmt::format("does not match the grid's shape '{}'", sh->name));
  if (!contains(g.dtypes, std::string(name(c.problem.dtype))) ||
      !contains(g.layouts, std::string(name(c.problem.layout))))
    fail(at(where, "problem"), "dtype or layout is not in the grid");
  c.stress = get_string(o, "stress", where);
  if (!contains(sec->stresses, c.stress)) fail(at(where, "stress"), fmt::format("'{}' is not in section '{}'", c.stress, c.section));
  c.seed = as_uint(field(o, "seed", where), at(where, "seed"));
  if (!contains(sec->seeds, c.seed)) fail(at(where, "seed"), fmt::format("{} is not in section '{}'", c.seed, c.section));
  c.backward = get_bool(o, "backward", where);
  c.result.verdict = parse_verdict(get_string(o, "verdict", where));
  if (has_reason(c.result.verdict)) c.result.error = get_string(o, "error", where);
  if (o.contains("waiver")) {
    const json& w = o["waiver"];
    const std::string ww = at(where, "waiver");
    if (c.control) fail(ww, "a control cell is expected to fail already: it takes no waiver");
    c.waiver = WaiverNote{get_string(w, "reason", ww), w.contains("link") ? get_string(w, "link", ww) : ""};
  }
  std::set<std::string> names;
  if (baseline) {
    const json& errs = get_array(o, "max_cond_err", where);
    for (size_t i = 0; i < errs.size(); ++i) {
      const std::string ow = fmt::format("{}.max_cond_err[{}]", where, i);
      if (!errs[i].is_array() || errs[i].size() != 2 || !errs[i][0].is_string())
        fail(ow, "expected [output name, error]");
      c.result.outputs.push_back(baseline_output(errs[i][0].get<std::string>(), as_double(errs[i][1], ow),
                                                 c.problem, c.result.verdict, ow));
      if (!names.insert(c.result.outputs.back().name).second) fail(ow, "repeated output");
    }
    return check_id(o, c, where);
  }
  c.result.kappa_min = get_double(o, "kappa_min", where);
  c.result.kappa_max = get_double(o, "kappa_max", where);
  c.result.oracle_undecided = o.contains("oracle_undecided") ? get_int(o, "oracle_undecided", where) : 0;
  c.result.oracle_fallbacks = o.contains("oracle_fallbacks") ? get_int(o, "oracle_fallbacks", where) : 0;
  const json& outs = get_array(o, "outputs", where);
  for (size_t i = 0; i < outs.size(); ++i) {
    const std::string ow = fmt::format("{}.outputs[{}]", where, i);
    c.result.outputs.push_back(read_output(outs[i], c.problem, ow));
    if (!names.insert(c.result.outputs.back().name).second) fail(ow, "repeated output");
  }
  c.reproduce = get_string(o, "reproduce", where);
  if (o.contains("case_dir")) {
    c.case_dir = get_string(o, "case_dir", where);
    // A report may come from another machine (a CI shard): its case_dir is copied by gnv merge and
    // pasted into replay lines, so it must name a folder under cases/ and nothing else.
    const std::string_view name = std::string_view(c.case_dir).substr(std::min<size_t>(6, c.case_dir.size()));
    const bool safe = c.case_dir.rfind("cases/", 0) == 0 && !name.empty() && name != "." && name != ".." &&
                      name.size() <= 255 && std::all_of(name.begin(), name.end(), [](unsigned char ch) {
                        return std::isalnum(ch) || ch == '.' || ch == '_' || ch == '-';
                      });
    if (!safe) fail(at(where, "case_dir"), fmt::format("'{}' is not cases/NAME (NAME of [A-Za-z0-9._-])", c.case_dir));
  }
  c.seconds = get_double(o, "seconds", where);
  return check_id(o, c, where);
}

Environment read_env(const json& o) {
  const std::string w = "environment";
  Environment e;
  e.gnv_version = get_string(o, "gnv_version", w);
  e.compiler = get_string(o, "compiler", w);
  e.compiler_flags = get_string(o, "compiler_flags", w);
  e.build_type = get_string(o, "build_type", w);
  e.cpu = get_string(o, "cpu", w);
  e.cpu_cores = get_int(o, "cpu_cores", w);
  e.os = get_string(o, "os", w);
  e.gpu = get_string(o, "gpu", w);
  const json& libs = field(o, "libraries", w);
  if (!libs.is_object()) fail(at(w, "libraries"), "expected an object");
  for (const auto& [k, v] : libs.items()) {
    if (!v.is_string()) fail(fmt::format("{}.libraries.{}", w, k), "expected a string");
    e.libraries[k] = v.get<std::string>();
  }
  e.git_revision = get_string(o, "git_revision", w);
  e.date = get_string(o, "date", w);
  return e;
}

}  // namespace

std::string scale_past_double_text(long double scale) {
  if (!std::isfinite(scale) || std::isfinite(static_cast<double>(scale))) return {};
  return fmt::format("{:.{}g}", scale, std::numeric_limits<long double>::max_digits10);
}

std::string to_json_text(const Report& r) {
  ojson env = {{"gnv_version", r.env.gnv_version},
               {"compiler", r.env.compiler},
               {"compiler_flags", r.env.compiler_flags},
               {"build_type", r.env.build_type},
               {"cpu", r.env.cpu},
               {"cpu_cores", r.env.cpu_cores},
               {"os", r.env.os},
               {"gpu", r.env.gpu},
               {"libraries", r.env.libraries},
               {"git_revision", r.env.git_revision},
               {"date", r.env.date}};
  // Top level indented; one line per cell, so that a diff of two reports shows cells.
  std::string s = "{\n";
  s += fmt::format("  \"format\": {},\n", dump(ojson(kFormat)));
  s += fmt::format("  \"version\": {},\n", uses_fused(r.grid) ? kSchemaVersionFused : kSchemaVersion);
  s += fmt::format("  \"detail\": \"{}\",\n", r.baseline_detail ? "baseline" : "full");
  s += fmt::format("  \"environment\": {},\n", dump(env));
  s += fmt::format("  \"grid\": {},\n", dump(grid_json(r.grid)));
  s += fmt::format("  \"shard\": {},\n", dump(ojson{{"index", r.shard.index}, {"count", r.shard.count}}));
  s += fmt::format("  \"timing\": {},\n",
                   dump(ojson{{"wall_s", number(r.timing.wall_s)}, {"jobs", r.timing.jobs}}));
  if (!r.baseline_detail)
    s += fmt::format("  \"saved_cases\": {},\n",
                     dump(ojson{{"policy", name(r.saved.policy)}, {"max", r.saved.max}, {"saved", r.saved.saved},
                                {"omitted", r.saved.omitted}}));
  s += fmt::format("  \"summary\": {},\n", dump(summary_json(r)));
  s += "  \"cells\": [";
  for (size_t i = 0; i < r.cells.size(); ++i)
    s += fmt::format("{}\n    {}", i ? "," : "", dump(cell_json(r, r.cells[i], r.baseline_detail)));
  s += r.cells.empty() ? "]\n}\n" : "\n  ]\n}\n";
  return s;
}

Report parse_report(std::string_view text) {
  check_depth(text, 16);
  json j;
  try {
    j = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    fail("report", fmt::format("not valid JSON: {}", e.what()));
  }
  try {
    if (!j.is_object()) fail("report", "expected a JSON object");
    if (!j.contains("format") || !j["format"].is_string() || j["format"].get<std::string>() != kFormat)
      fail("report", fmt::format("not a gnv report (\"format\" is not \"{}\")", kFormat));
    const int64_t version = get_int(j, "version", "report");
    if (version != kSchemaVersion && version != kSchemaVersionFused)
      fail("report", fmt::format("schema version {}, this gnv reads versions {} and {}", version, kSchemaVersion,
                                 kSchemaVersionFused));
    Report r;
    const std::string detail = get_string(j, "detail", "report");
    if (detail != "full" && detail != "baseline")
      fail("report.detail", fmt::format("'{}', expected \"full\" or \"baseline\"", detail));
    r.baseline_detail = detail == "baseline";
    r.env = read_env(field(j, "environment", "report"));
    r.grid = read_grid(field(j, "grid", "report"));
    const json& sh = field(j, "shard", "report");
    r.shard.count = static_cast<int>(get_int(sh, "count", "shard", 1, 1 << 20));
    r.shard.index = static_cast<int>(get_int(sh, "index", "shard", 1, r.shard.count));
    const json& t = field(j, "timing", "report");
    r.timing.wall_s = get_double(t, "wall_s", "timing");
    r.timing.jobs = static_cast<int>(get_int(t, "jobs", "timing", 1, 1 << 16));
    if (j.contains("saved_cases")) {  // absent in baselines and in reports of earlier gnv versions
      const json& sc = j["saved_cases"];
      try {
        r.saved.policy = parse_save_policy(get_string(sc, "policy", "saved_cases"));
      } catch (const std::invalid_argument& e) {
        fail("saved_cases.policy", e.what());
      }
      r.saved.max = static_cast<size_t>(get_int(sc, "max", "saved_cases"));
      r.saved.saved = static_cast<size_t>(get_int(sc, "saved", "saved_cases"));
      r.saved.omitted = static_cast<size_t>(get_int(sc, "omitted", "saved_cases"));
    }
    const json& cells = get_array(j, "cells", "report");
    std::set<std::string> ids;
    for (size_t i = 0; i < cells.size(); ++i) {
      const std::string where = fmt::format("cells[{}]", i);
      Cell c = read_cell(cells[i], r.grid, r.baseline_detail, where);
      if (!r.cells.empty() && c.index <= r.cells.back().index)
        fail(at(where, "index"), "cells must be in increasing index order");
      if (!in_shard(c.case_index, r.shard))
        fail(at(where, "case_index"), fmt::format("case {} does not belong to shard {}/{}",
                                                  c.case_index, r.shard.index, r.shard.count));
      if (!ids.insert(c.id()).second) fail(where, fmt::format("repeated cell {}", c.id()));
      r.cells.push_back(std::move(c));
    }
    return r;
  } catch (const ReportError&) {
    throw;
  } catch (const std::exception& e) {
    // A type error inside nlohmann or an invalid_argument of the model: still a malformed file.
    fail("report", e.what());
  }
}

Report baseline_of(const Report& r) {
  Report b = r;
  b.baseline_detail = true;
  for (Cell& c : b.cells) {
    for (OutputMetrics& m : c.result.outputs) {
      OutputMetrics slim;
      slim.name = m.name;
      slim.count = m.count;
      slim.verdict = c.result.verdict;
      // Three digits are plenty for a tolerance factor, and keep the file small.
      slim.max_cond_err = std::isfinite(m.max_cond_err) ? std::stod(fmt::format("{:.3g}", m.max_cond_err))
                                                        : m.max_cond_err;
      m = slim;
    }
    c.result.kappa_min = c.result.kappa_max = 0;
    c.result.oracle_undecided = 0;
    c.result.oracle_fallbacks = 0;
    c.reproduce.clear();
    c.case_dir.clear();
    c.seconds = 0;
  }
  return b;
}

Report read_report(const std::filesystem::path& path) {
  const std::string text = read_small_file_or<ReportError>(path, kMaxReportBytes);
  try {
    return parse_report(text);
  } catch (const ReportError& e) {
    throw ReportError(fmt::format("{}: {}", path.string(), e.what()));
  }
}

}  // namespace gnv::report
