// Grids as data: grid files (TOML, docs/guide.md "Grid files"), the shipped presets (grids/*.toml, compiled
// into gnv at build time so an installed binary needs no source tree), the ad-hoc section of
// --shape/--groups/--eps/--affine, and the expansion of a grid into cases. The exact oracle is the
// cost of a sweep, once per case (all impls share it), so grids are sized in element-cases.
#include <algorithm>
#include <charconv>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <set>
#include <sstream>

#include "gnv/npy.h"
#include "gnv/report.h"
#include "gnv/stress.h"
#include "gnv_presets.h"
#include "toml_read.h"

namespace gnv::report {

std::vector<std::string> all_stress_names() {
  std::vector<std::string> v{"normal"};
  for (double k = 1; k <= 1e8; k *= 10) v.push_back(Stress{StressKind::offset, k}.name());
  for (const char* s : {"tiny-var", "huge", "subnormal", "constant", "outlier", "bimodal", "special"})
    v.push_back(s);
  return v;
}

namespace {

// A grid file is small; a larger one is a mistake (or /dev/zero), refused before it is read.
constexpr std::uintmax_t kMaxGridFileBytes = 4 << 20;

class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const toml::source_region& at, const std::string& key, const std::string& what) const {
    throw GridError(fmt::format("{}:{}: {}: {}", source_, at.begin.line, key, what));
  }
  [[noreturn]] void fail(const toml::node& n, const std::string& key, const std::string& what) const {
    fail(n.source(), key, what);
  }

  // Every key of t must be one of `known`: a misspelt key would otherwise be ignored silently.
  void only_keys(const toml::table& t, const std::string& where, std::initializer_list<std::string_view> known) const {
    for (const auto& [k, v] : t) {
      if (std::find(known.begin(), known.end(), k.str()) == known.end())
        fail(k.source(), qualified(where, std::string(k.str())),
             fmt::format("unknown key (expected one of {})", fmt::join(known, ", ")));
    }
  }

  static std::string qualified(const std::string& where, const std::string& key) {
    return where.empty() ? key : where + "." + key;
  }

  std::string string(const toml::node& n, const std::string& key) const {
    if (!n.is_string()) fail(n, key, fmt::format("expected a string, got {}", type_name(n)));
    return std::string(*n.value<std::string_view>());
  }
  bool boolean(const toml::node& n, const std::string& key) const {
    if (!n.is_boolean()) fail(n, key, fmt::format("expected true or false, got {}", type_name(n)));
    return *n.value<bool>();
  }
  double number(const toml::node& n, const std::string& key) const {
    if (!n.is_number()) fail(n, key, fmt::format("expected a number, got {}", type_name(n)));
    return n.is_integer() ? static_cast<double>(*n.value<int64_t>()) : *n.value<double>();
  }
  int64_t integer(const toml::node& n, const std::string& key, int64_t lo) const {
    if (!n.is_integer()) fail(n, key, fmt::format("expected an integer, got {}", type_name(n)));
    const int64_t v = *n.value<int64_t>();
    if (v < lo) fail(n, key, fmt::format("{} is less than {}", v, lo));
    return v;
  }
  // A scalar or an array of scalars, read by `one`; an empty array is an error.
  template <class F> auto list(const toml::node& n, const std::string& key, F one) const {
    using T = decltype(one(n, key));
    std::vector<T> out;
    if (const toml::array* a = n.as_array()) {
      if (a->empty()) fail(n, key, "empty list");
      for (size_t i = 0; i < a->size(); ++i) out.push_back(one(*a->get(i), fmt::format("{}[{}]", key, i)));
    } else {
      out.push_back(one(n, key));
    }
    return out;
  }
  template <class T> void unique(const toml::node& n, const std::string& key, const std::vector<T>& v) const {
    for (size_t i = 0; i < v.size(); ++i)
      for (size_t j = 0; j < i; ++j)
        if (v[i] == v[j]) fail(n, key, fmt::format("{} is given twice", text(v[i])));
  }
  template <class T> static std::string text(const T& v) { return fmt::to_string(v); }
  static std::string text(Epilogue e) { return std::string(name(e)); }
  static std::string text(AffineChoice a) {
    return !a.on ? "false" : a.mode == AffineMode::per_sample ? "\"per-sample\"" : "true";
  }

  static std::string_view type_name(const toml::node& n) {
    switch (n.type()) {
      case toml::node_type::table: return "a table";
      case toml::node_type::array: return "an array";
      case toml::node_type::string: return "a string";
      case toml::node_type::integer: return "an integer";
      case toml::node_type::floating_point: return "a float";
      case toml::node_type::boolean: return "a boolean";
      default: return "a date or time";
    }
  }

 private:
  std::string source_;
};

// Names become parts of cell ids ("impl/dtype/layout/section/shape/...") and of case directory
// names: no '/', no spaces or control characters, not empty.
void check_name(const Reader& rd, const toml::node& n, const std::string& key, const std::string& s) {
  if (s.empty()) rd.fail(n, key, "empty name");
  if (s.size() > 100) rd.fail(n, key, "longer than 100 characters");
  for (unsigned char ch : s)
    if (ch <= ' ' || ch == '/' || ch == '\\' || ch >= 0x7f)
      rd.fail(n, key, fmt::format("'{}': names may not hold '/', '\\\\', spaces or control characters", s));
}

std::vector<std::string> read_stresses(const Reader& rd, const toml::node& n, const std::string& key) {
  std::vector<std::string> out;
  for (const std::string& s : rd.list(n, key, [&](const toml::node& e, const std::string& k) { return rd.string(e, k); })) {
    if (s == "all") {
      for (const std::string& a : all_stress_names()) out.push_back(a);
      continue;
    }
    try {
      out.push_back(parse_stress(s).name());
    } catch (const std::invalid_argument& e) {
      rd.fail(n, key, fmt::format("{} (or \"all\")", e.what()));
    }
  }
  rd.unique(n, key, out);
  return out;
}

// The problem of a grid shape with one of its G (dtype and layout left at their defaults).
Problem shape_problem(const ShapeSpec& sh, int64_t G) {
  Problem p;
  parse_shape(sh.shape, p);
  p.G = G;
  p.eps = sh.eps;
  p.affine = sh.affine;
  p.affine_mode = sh.affine_mode;
  p.epilogue = sh.epilogue;
  return p;
}

// The variants of one shape entry: every eps x affine x epilogue given, named apart when there are
// several; a fused form (per-sample parameters, an epilogue) is always in the name, so that its
// cells never share an id with plain ones. Each must make a valid problem for each G, so that
// expand_cases never throws on a loaded grid. Throws std::invalid_argument.
void add_shape_variants(const ShapeSpec& base, const std::vector<double>& eps, const std::vector<AffineChoice>& affine,
                        const std::vector<Epilogue>& epilogues, std::vector<ShapeSpec>& out) {
  for (double e : eps)
    for (AffineChoice a : affine)
    for (Epilogue ep : epilogues) {
      ShapeSpec sh = base;
      sh.eps = e;
      sh.affine = a.on;
      sh.affine_mode = a.on ? a.mode : AffineMode::per_channel;
      sh.epilogue = ep;
      if (eps.size() > 1) sh.name += fmt::format("-eps{:g}", e);
      if (sh.affine_mode == AffineMode::per_sample) sh.name += "-per-sample";
      else if (affine.size() > 1) sh.name += a.on ? "-affine" : "-plain";
      if (ep != Epilogue::none || epilogues.size() > 1) sh.name += fmt::format("-{}", name(ep));
      for (int64_t G : sh.groups) {
        const Problem p = shape_problem(sh, G);
        try {
          p.validate();
        } catch (const std::exception& ex) {
          throw std::invalid_argument(fmt::format("shape {} with G = {}, eps = {:g}: {}", sh.shape, G, sh.eps, ex.what()));
        }
      }
      for (const ShapeSpec& o : out)
        if (o.name == sh.name) throw std::invalid_argument(fmt::format("repeated shape name '{}'", sh.name));
      out.push_back(std::move(sh));
    }
}

Grid read_grid_toml(std::string_view text, const std::string& source, const std::string& default_name) {
  const Reader rd(source);
  const toml::table top = read_toml(text, source);
  rd.only_keys(top, "", {"name", "description", "impls", "dtypes", "layouts", "backward", "budget", "section"});
  Grid g;
  g.preset = default_name;
  if (const toml::node* n = top.get("name")) {
    g.preset = rd.string(*n, "name");
    check_name(rd, *n, "name", g.preset);
  }
  auto strings = [&](const toml::node& n, const std::string& key) {
    return rd.list(n, key, [&](const toml::node& e, const std::string& k) { return rd.string(e, k); });
  };
  if (const toml::node* n = top.get("description")) (void)rd.string(*n, "description");
  if (const toml::node* n = top.get("impls")) {
    g.impls = strings(*n, "impls");
    rd.unique(*n, "impls", g.impls);
  }
  for (DType d : kAllDTypes) g.dtypes.emplace_back(name(d));
  for (Layout l : kAllLayouts) g.layouts.emplace_back(name(l));
  // dtypes and layouts: canonical names ("FP16" -> "f16"), each once.
  auto canonical = [&](const char* key, std::vector<std::string>& out, auto parse) {
    const toml::node* n = top.get(key);
    if (!n) return;
    out.clear();
    for (const std::string& s : strings(*n, key)) {
      try {
        out.emplace_back(name(parse(s)));
      } catch (const std::invalid_argument& e) {
        rd.fail(*n, key, e.what());
      }
    }
    rd.unique(*n, key, out);
  };
  canonical("dtypes", g.dtypes, [](const std::string& s) { return parse_dtype(s); });
  canonical("layouts", g.layouts, [](const std::string& s) { return parse_layout(s); });
  if (const toml::node* n = top.get("backward")) g.backward = rd.boolean(*n, "backward");
  if (const toml::node* n = top.get("budget")) {
    try {
      g.budget = parse_budget_profile(rd.string(*n, "budget"));
    } catch (const std::invalid_argument& e) {
      rd.fail(*n, "budget", e.what());
    }
  }

  const toml::node* secs_node = top.get("section");
  if (!secs_node) rd.fail(toml::source_region{{1, 1}, {1, 1}, nullptr}, "section", "no [[section]] in the grid");
  const toml::array* secs = secs_node->as_array();
  if (!secs || secs->empty() || !secs->is_array_of_tables())
    rd.fail(*secs_node, "section", "expected one or more [[section]] tables");
  for (size_t i = 0; i < secs->size(); ++i) {
    const toml::table& st = *secs->get(i)->as_table();
    const std::string where = fmt::format("section[{}]", i);
    rd.only_keys(st, where, {"name", "stresses", "seeds", "groups", "eps", "affine", "epilogue", "shape"});
    Section sec;
    const toml::node* nn = st.get("name");
    if (!nn) rd.fail(st, where, "missing key 'name'");
    sec.name = rd.string(*nn, where + ".name");
    check_name(rd, *nn, where + ".name", sec.name);
    for (const Section& o : g.sections)
      if (o.name == sec.name) rd.fail(*nn, where + ".name", fmt::format("repeated section '{}'", sec.name));
    sec.stresses = st.get("stresses") ? read_stresses(rd, *st.get("stresses"), where + ".stresses") : all_stress_names();
    sec.seeds = {0};
    if (const toml::node* n = st.get("seeds")) {
      sec.seeds.clear();
      for (int64_t s : rd.list(*n, where + ".seeds", [&](const toml::node& e, const std::string& k) { return rd.integer(e, k, 0); }))
        sec.seeds.push_back(static_cast<uint64_t>(s));
      rd.unique(*n, where + ".seeds", sec.seeds);
    }
    // Section-wide defaults of the per-shape keys.
    auto groups_of = [&](const toml::node& n, const std::string& key) {
      auto v = rd.list(n, key, [&](const toml::node& e, const std::string& k) { return rd.integer(e, k, 1); });
      rd.unique(n, key, v);
      return v;
    };
    auto eps_of = [&](const toml::node& n, const std::string& key) {
      auto v = rd.list(n, key, [&](const toml::node& e, const std::string& k) { return rd.number(e, k); });
      rd.unique(n, key, v);
      return v;
    };
    // affine: true, false or "per-sample" (or "per-channel", as true), or a list of them.
    auto affine_of = [&](const toml::node& n, const std::string& key) {
      auto v = rd.list(n, key, [&](const toml::node& e, const std::string& k) {
        if (e.is_boolean()) return AffineChoice{rd.boolean(e, k), AffineMode::per_channel};
        if (!e.is_string()) rd.fail(e, k, "expected true, false or \"per-sample\"");
        try {
          return AffineChoice{true, parse_affine_mode(rd.string(e, k))};
        } catch (const std::invalid_argument& ex) {
          rd.fail(e, k, ex.what());
        }
      });
      rd.unique(n, key, v);
      return v;
    };
    // epilogue: "none" or "silu", or a list of them.
    auto epilogue_of = [&](const toml::node& n, const std::string& key) {
      auto v = rd.list(n, key, [&](const toml::node& e, const std::string& k) {
        try {
          return parse_epilogue(rd.string(e, k));
        } catch (const std::invalid_argument& ex) {
          rd.fail(e, k, ex.what());
        }
      });
      rd.unique(n, key, v);
      return v;
    };
    std::optional<std::vector<int64_t>> sec_groups;
    std::vector<double> sec_eps{1e-5};
    std::vector<AffineChoice> sec_affine{AffineChoice{}};
    std::vector<Epilogue> sec_epilogue{Epilogue::none};
    if (const toml::node* n = st.get("groups")) sec_groups = groups_of(*n, where + ".groups");
    if (const toml::node* n = st.get("eps")) sec_eps = eps_of(*n, where + ".eps");
    if (const toml::node* n = st.get("affine")) sec_affine = affine_of(*n, where + ".affine");
    if (const toml::node* n = st.get("epilogue")) sec_epilogue = epilogue_of(*n, where + ".epilogue");

    const toml::node* shapes_node = st.get("shape");
    if (!shapes_node) rd.fail(st, where, "no [[section.shape]] in the section");
    const toml::array* shapes = shapes_node->as_array();
    if (!shapes || shapes->empty() || !shapes->is_array_of_tables())
      rd.fail(*shapes_node, where + ".shape", "expected one or more [[section.shape]] tables");
    for (size_t k = 0; k < shapes->size(); ++k) {
      const toml::table& sht = *shapes->get(k)->as_table();
      const std::string sw = fmt::format("{}.shape[{}]", where, k);
      rd.only_keys(sht, sw, {"name", "shape", "groups", "eps", "affine", "epilogue", "note"});
      ShapeSpec sh;
      const toml::node* dims = sht.get("shape");
      if (!dims) rd.fail(sht, sw, "missing key 'shape' (N, C and up to three spatial extents)");
      if (dims->is_string()) {
        sh.shape = rd.string(*dims, sw + ".shape");
      } else {
        const toml::array* a = dims->as_array();
        if (!a) rd.fail(*dims, sw + ".shape", "expected an array of integers such as [2, 32, 8, 8]");
        std::vector<int64_t> v;
        for (size_t q = 0; q < a->size(); ++q) v.push_back(rd.integer(*a->get(q), fmt::format("{}.shape[{}]", sw, q), 0));
        sh.shape = fmt::format("{}", fmt::join(v, ","));
      }
      try {
        Problem p;
        parse_shape(sh.shape, p);
        sh.shape = p.shape_string();
      } catch (const std::invalid_argument& e) {
        rd.fail(*dims, sw + ".shape", e.what());
      }
      sh.name = sh.shape;
      std::replace(sh.name.begin(), sh.name.end(), ',', 'x');
      if (const toml::node* n = sht.get("name")) {
        sh.name = rd.string(*n, sw + ".name");
        check_name(rd, *n, sw + ".name", sh.name);
      }
      if (const toml::node* n = sht.get("groups")) sh.groups = groups_of(*n, sw + ".groups");
      else if (sec_groups) sh.groups = *sec_groups;
      else rd.fail(sht, sw, "missing key 'groups' (here or in the section)");
      const std::vector<double> eps = sht.get("eps") ? eps_of(*sht.get("eps"), sw + ".eps") : sec_eps;
      const std::vector<AffineChoice> affine =
          sht.get("affine") ? affine_of(*sht.get("affine"), sw + ".affine") : sec_affine;
      const std::vector<Epilogue> epilogue =
          sht.get("epilogue") ? epilogue_of(*sht.get("epilogue"), sw + ".epilogue") : sec_epilogue;
      if (const toml::node* n = sht.get("note")) sh.note = rd.string(*n, sw + ".note");
      try {
        add_shape_variants(sh, eps, affine, epilogue, sec.shapes);
      } catch (const std::invalid_argument& e) {
        rd.fail(sht, sw, e.what());
      }
    }
    g.sections.push_back(std::move(sec));
  }
  return g;
}

}  // namespace

namespace {

void require_safe_toml(std::string_view text, const std::string& source) {
  // toml++ 3.3.0 (Debian 12) reaches __builtin_unreachable() -- undefined behaviour, found by
  // gnv's grid fuzz target -- when it classifies some non-ASCII code points as whitespace: outside
  // strings and comments, in the tokens of an invalid document, and after a line-ending backslash
  // in a multi-line basic string (marzer/tomlplusplus#190, #295; fixed upstream after 3.3.0).
  // First the document's structure is read with every non-ASCII byte replaced by '?', which TOML
  // allows only inside strings and comments: toml++ sees ASCII only, and a document that parses
  // so has strings and comments where the scan below finds them.
  std::string ascii(text);
  for (char& ch : ascii)
    if (static_cast<unsigned char>(ch) >= 0x80) ch = '?';
  try {
    (void)toml::parse(ascii, source);
  } catch (const toml::parse_error& e) {
    throw GridError(fmt::format("{}:{}: {}", source, e.source().begin.line, e.description()));
  }
  // Then non-ASCII text is allowed in comments and in single-line and literal strings only, which
  // is where notes and reasons go.
  enum { plain, comment, basic, literal, ml_basic, ml_literal } state = plain;
  int line = 1;
  // A multi-line string may end with up to two quotes of its own before the closing three
  // (a ''' string may end in five quotes): the whole run of 3 to 5 closes it; returns its last index.
  const auto close_run = [&](size_t i, char q) {
    size_t n = 0;
    while (i + n < text.size() && text[i + n] == q && n < 5) ++n;
    return i + n - 1;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    const auto starts = [&](std::string_view s) { return text.substr(i, s.size()) == s; };
    if (ch == '\n') {
      ++line;
      if (state == comment) state = plain;
      continue;
    }
    if (static_cast<unsigned char>(ch) >= 0x80 && (state == plain || state == ml_basic))
      throw GridError(fmt::format("{}:{}: a non-ASCII character {} (allowed in comments and in single-line or "
                                  "literal strings only: toml++ 3.3.0 misreads it elsewhere)",
                                  source, line, state == plain ? "outside a string" : "in a \"\"\" string"));
    switch (state) {
      case plain:
        if (ch == '#') state = comment;
        else if (starts("\"\"\"")) state = ml_basic, i += 2;
        else if (starts("'''")) state = ml_literal, i += 2;
        else if (ch == '"') state = basic;
        else if (ch == '\'') state = literal;
        break;
      case basic:
      case ml_basic:
        if (ch == '\\' && i + 1 < text.size() && text[i + 1] != '\n') ++i;  // escaped: never the end
        else if (state == basic && ch == '"') state = plain;
        else if (state == ml_basic && starts("\"\"\"")) state = plain, i = close_run(i, '"');
        break;
      case literal:
        if (ch == '\'') state = plain;
        break;
      case ml_literal:
        if (starts("'''")) state = plain, i = close_run(i, '\'');
        break;
      case comment:
        break;
    }
  }
}

}  // namespace

toml::table read_toml(std::string_view text, const std::string& source) {
  require_safe_toml(text, source);
  try {
    return toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    throw GridError(fmt::format("{}:{}: {}", source, e.source().begin.line, e.description()));
  }
}

Grid parse_grid(std::string_view text, const std::string& source) {
  std::string stem = std::filesystem::path(source).stem().string();
  if (stem.empty()) stem = "grid";
  return read_grid_toml(text, source, stem);
}

Grid load_grid_file(const std::filesystem::path& path) {
  const std::string text = read_small_file_or<GridError>(path, kMaxGridFileBytes);
  // A report.json holds the grid it ran, as loaded: a report can be run again from itself.
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '{') {
    try {
      Grid g = parse_report(text).grid;
      // The kernels a validation loaded at run time are given again with --plugin/--runner.
      std::erase_if(g.impls, [&](const std::string& i) { return g.external.count(i) > 0; });
      g.external.clear();
      return g;
    } catch (const ReportError& e) {
      throw GridError(fmt::format("{}: not a grid file, and not a gnv report: {}", path.string(), e.what()));
    }
  }
  return parse_grid(text, path.string());
}

std::vector<PresetInfo> presets() {
  std::vector<PresetInfo> out;
  for (const EmbeddedGrid& e : kEmbeddedGrids) {
    const toml::table t = toml::parse(std::string_view(e.text), std::string_view(e.file));
    out.push_back({e.name, e.file, std::string(t["description"].value_or(std::string_view{}))});
  }
  return out;
}

std::vector<std::string> preset_names() {
  std::vector<std::string> v;
  for (const EmbeddedGrid& e : kEmbeddedGrids) v.emplace_back(e.name);
  return v;
}

Grid preset_grid(std::string_view name) {
  for (const EmbeddedGrid& e : kEmbeddedGrids)
    if (name == e.name) {
      Grid g = read_grid_toml(e.text, e.file, e.name);
      g.preset = e.name;
      return g;
    }
  throw std::invalid_argument(fmt::format("unknown preset '{}' (expected {}; or a grid file with --grid)", name,
                                          fmt::join(preset_names(), ", ")));
}

Section adhoc_section(const std::vector<std::string>& shapes, const std::vector<int64_t>& groups,
                      const std::vector<double>& eps, AffineChoice affine, Epilogue epilogue) {
  if (groups.empty()) throw std::invalid_argument("--shape needs --groups (one or more G, each dividing C)");
  Section sec{"adhoc", {}, all_stress_names(), {0}};
  for (const std::string& s : shapes) {
    ShapeSpec sh;
    Problem p;
    parse_shape(s, p);
    sh.shape = p.shape_string();
    sh.name = sh.shape;
    std::replace(sh.name.begin(), sh.name.end(), ',', 'x');
    sh.groups = groups;
    sh.note = "--shape";
    add_shape_variants(sh, eps.empty() ? std::vector<double>{1e-5} : eps, {affine}, {epilogue}, sec.shapes);
  }
  return sec;
}

std::string describe_grid(const Grid& g) {
  std::string s = fmt::format("Grid `{}`: impls {}; dtypes {}; layouts {}; backward {}; budget profile {}.\n\n",
                              g.preset, fmt::join(g.impls, ", "), fmt::join(g.dtypes, ", "),
                              fmt::join(g.layouts, ", "), g.backward ? "on" : "off", name(g.budget));
  for (const Section& sec : g.sections) {
    std::vector<std::string> shapes;
    for (const ShapeSpec& sh : sec.shapes)
      shapes.push_back(fmt::format("{} ({}, G={}{}{})", sh.name, sh.shape, fmt::join(sh.groups, "/"),
                                   !sh.affine ? "" : sh.affine_mode == AffineMode::per_sample ? ", per-sample affine" : ", affine",
                                   sh.epilogue == Epilogue::none ? "" : fmt::format(", {} epilogue", name(sh.epilogue))));
    s += fmt::format("- **{}**: shapes {}; stresses {}; seeds {}\n", sec.name, fmt::join(shapes, "; "),
                     fmt::join(sec.stresses, ", "), fmt::join(sec.seeds, ", "));
  }
  return s;
}

bool uses_fused(const Grid& g) {
  for (const Section& sec : g.sections)
    for (const ShapeSpec& sh : sec.shapes)
      if (sh.fused()) return true;
  return false;
}

std::vector<CaseSpec> expand_cases(const Grid& g) {
  std::vector<CaseSpec> out;
  for (const std::string& ds : g.dtypes) {
    const DType d = parse_dtype(ds);
    for (const std::string& ls : g.layouts) {
      const Layout l = parse_layout(ls);
      for (const Section& sec : g.sections) {
        for (const ShapeSpec& sh : sec.shapes) {
          for (int64_t G : sh.groups) {
            Problem p = shape_problem(sh, G);
            p.dtype = d;
            p.layout = l;
            p.validate();
            for (const std::string& st : sec.stresses) {
              const std::string canonical = parse_stress(st).name();
              for (uint64_t seed : sec.seeds)
                out.push_back({out.size(), sec.name, sh.name, p, canonical, seed});
            }
          }
        }
      }
    }
  }
  return out;
}

Shard parse_shard(std::string_view s) {
  const auto bad = [&] {
    return std::invalid_argument(fmt::format("--shard '{}': expected k/n with 1 <= k <= n", s));
  };
  const size_t slash = s.find('/');
  if (slash == std::string_view::npos) throw bad();
  Shard sh;
  const auto num = [&](std::string_view t, int& v) {
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || ec != std::errc() || end != t.data() + t.size()) throw bad();
  };
  num(s.substr(0, slash), sh.index);
  num(s.substr(slash + 1), sh.count);
  if (sh.count < 1 || sh.index < 1 || sh.index > sh.count) throw bad();
  return sh;
}

}  // namespace gnv::report
