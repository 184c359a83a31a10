#include "gnv/case.h"

#include <fmt/format.h>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "gnv/npy.h"

namespace gnv {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::string_view kFormat = "gnv-case";
// Version 2 adds "epilogue" and "affine_mode" (each optional, default none and per-channel). A case
// that uses neither is written as version 1, which every gnv reads; one that does is version 2, so
// that a gnv that predates them refuses it rather than judging a different operator.
constexpr int kVersion = 2;

// Reads the fields of case.json with messages that name the file and the field.
class Fields {
 public:
  Fields(const json& j, std::string file) : j_(j), file_(std::move(file)) {}

  [[noreturn]] void fail(std::string_view field, std::string_view msg) const {
    throw CaseError(fmt::format("{}: field '{}' {}", file_, field, msg));
  }

  const json* find(std::string_view key) const {
    const auto it = j_.find(std::string(key));
    return it == j_.end() ? nullptr : &*it;
  }
  const json& need(std::string_view key) const {
    if (const json* v = find(key)) return *v;
    fail(key, "is missing");
  }

  int64_t integer(std::string_view key, const json& v) const {
    if (v.is_number_unsigned()) {
      if (v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail(key, "is out of range");
      return static_cast<int64_t>(v.get<uint64_t>());
    }
    if (!v.is_number_integer()) fail(key, fmt::format("must be an integer, got {}", v.dump()));
    return v.get<int64_t>();
  }
  int64_t integer(std::string_view key) const { return integer(key, need(key)); }

  double number(std::string_view key) const {
    const json& v = need(key);
    if (!v.is_number()) fail(key, fmt::format("must be a number, got {}", v.dump()));
    return v.get<double>();
  }

  bool boolean(std::string_view key) const {
    const json& v = need(key);
    if (!v.is_boolean()) fail(key, fmt::format("must be true or false, got {}", v.dump()));
    return v.get<bool>();
  }

  std::string string(std::string_view key, const json& v) const {
    if (!v.is_string()) fail(key, fmt::format("must be a string, got {}", v.dump()));
    return v.get<std::string>();
  }
  std::string string(std::string_view key) const { return string(key, need(key)); }

  std::vector<int64_t> int_array(std::string_view key) const {
    const json& v = need(key);
    if (!v.is_array()) fail(key, fmt::format("must be an array of integers, got {}", v.dump()));
    std::vector<int64_t> out;
    for (const json& e : v) out.push_back(integer(key, e));
    return out;
  }

  // Parses a string field with one of the dtype/layout parsers, keeping the parser's message.
  template <class Parse> auto parsed(std::string_view key, Parse&& parse) const {
    const std::string s = string(key);
    try {
      return parse(s);
    } catch (const std::invalid_argument& e) {
      fail(key, e.what());
    }
  }

 private:
  const json& j_;
  std::string file_;
};

json read_json(const fs::path& file) {
  const std::string text = read_small_file_or<CaseError>(file, 1 << 20);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw CaseError(fmt::format("{}: invalid JSON: {}", file.string(), e.what()));
  }
}

Problem problem_from_json(const json& j, const std::string& file) {
  const Fields f(j, file);
  if (f.string("format") != kFormat) f.fail("format", fmt::format("must be \"{}\"", kFormat));
  const int64_t version = f.integer("version");
  if (version < 1 || version > kVersion)
    f.fail("version", fmt::format("is {}, this gnv reads versions 1 to {}", version, kVersion));
  Problem p;
  p.N = f.integer("N");
  p.C = f.integer("C");
  p.spatial = f.int_array("spatial");
  p.G = f.integer("G");
  p.eps = f.number("eps");
  p.affine = f.boolean("affine");
  p.dtype = f.parsed("dtype", [](const std::string& s) { return parse_dtype(s); });
  p.layout = f.parsed("layout", [](const std::string& s) { return parse_layout(s); });
  if (f.find("epilogue")) p.epilogue = f.parsed("epilogue", [](const std::string& s) { return parse_epilogue(s); });
  if (f.find("affine_mode"))
    p.affine_mode = f.parsed("affine_mode", [](const std::string& s) { return parse_affine_mode(s); });
  return p;
}

// A missing or unreadable tensor file is a broken case directory (CaseError); a tensor of the
// wrong shape is a readable file describing an invalid case (InvalidProblem, from validate()).
// At most the bytes its expected shape needs (plus a header) are read: a 2 GB file is refused
// without reading it.
Tensor read_tensor(const fs::path& file, DType dtype, int64_t elements) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(file, ec))) throw CaseError(fmt::format("{}: missing", file.string()));
  try {
    return to_tensor(read_npy(file, npy_max_bytes(elements, dtype)), dtype, file.string());
  } catch (const NpyError& e) {
    throw CaseError(e.what());
  }
}

void require_absent(const fs::path& file, std::string_view why) {
  if (fs::exists(file)) throw CaseError(fmt::format("{}: present but {}", file.string(), why));
}

}  // namespace

void Case::validate() const {
  problem.validate();
  validate_tensor(x, "x", problem.dtype, problem.x_shape());
  if (problem.affine) {
    validate_tensor(gamma, "gamma", problem.dtype, problem.param_shape());
    validate_tensor(beta, "beta", problem.dtype, problem.param_shape());
  } else {
    if (!gamma.empty()) throw InvalidProblem("gamma", "present but affine is off");
    if (!beta.empty()) throw InvalidProblem("beta", "present but affine is off");
  }
  if (dy) validate_tensor(*dy, "dy", problem.dtype, problem.x_shape());
}

Case make_case(const Problem& p, const Stress& s, uint64_t seed, bool backward) {
  Case c;
  c.problem = p;
  c.x = generate_x(p, s, seed);
  if (p.affine) {
    c.gamma = generate_gamma(p, seed);
    c.beta = generate_beta(p, seed);
  }
  if (backward) c.dy = generate_dy(p, seed);
  c.stress = s.name();
  c.seed = seed;
  return c;
}

void save_case(const Case& c, const fs::path& dir) {
  c.validate();
  const Problem& p = c.problem;
  nlohmann::ordered_json j;
  j["format"] = kFormat;
  const bool v2 = p.epilogue != Epilogue::none || p.affine_mode != AffineMode::per_channel;
  j["version"] = v2 ? 2 : 1;
  j["N"] = p.N;
  j["C"] = p.C;
  j["spatial"] = p.spatial;
  j["G"] = p.G;
  j["eps"] = p.eps;  // nlohmann writes the shortest round-trip form, so eps reloads bitwise
  j["affine"] = p.affine;
  j["dtype"] = name(p.dtype);
  j["layout"] = name(p.layout);
  if (p.epilogue != Epilogue::none) j["epilogue"] = name(p.epilogue);
  if (p.affine_mode != AffineMode::per_channel) j["affine_mode"] = name(p.affine_mode);
  if (!c.stress.empty()) j["stress"] = c.stress;
  j["seed"] = c.seed;
  try {
    fs::create_directories(dir);
    write_npy(dir / "x.npy", c.x);
    for (auto [file, tensor] : {std::pair{"gamma.npy", &c.gamma}, {"beta.npy", &c.beta}}) {
      if (p.affine)
        write_npy(dir / file, *tensor);
      else
        fs::remove(dir / file);
    }
    // A stale dy.npy would silently turn a forward case into a backward one on reload.
    if (c.dy)
      write_npy(dir / "dy.npy", *c.dy);
    else
      fs::remove(dir / "dy.npy");
    // Written last: a directory with a case.json has all its tensors.
    write_file_atomic(dir / "case.json", j.dump(2) + "\n");
  } catch (const NpyError& e) {
    throw CaseError(e.what());
  } catch (const fs::filesystem_error& e) {
    throw CaseError(fmt::format("{}: cannot save case: {} ({})", dir.string(), e.code().message(), e.path1().string()));
  }
}

Case load_case(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw CaseError(fmt::format("{}: not a case directory", dir.string()));
  const fs::path json_file = dir / "case.json";
  if (!fs::exists(json_file)) throw CaseError(fmt::format("{}: missing", json_file.string()));
  const json j = read_json(json_file);
  if (!j.is_object()) throw CaseError(fmt::format("{}: must hold a JSON object", json_file.string()));

  Case c;
  c.problem = problem_from_json(j, json_file.string());
  const Fields f(j, json_file.string());
  if (const json* s = f.find("stress")) c.stress = f.string("stress", *s);
  if (const json* s = f.find("seed")) {
    if (!s->is_number_unsigned()) f.fail("seed", "must be a non-negative integer");
    c.seed = s->get<uint64_t>();
  }
  // Fail on the problem before reading tensors whose expected shape it defines.
  c.problem.validate();

  const Problem& p = c.problem;
  c.x = read_tensor(dir / "x.npy", p.dtype, p.numel());
  if (p.affine) {
    const int64_t params = p.per_sample() ? p.N * p.C : p.C;
    c.gamma = read_tensor(dir / "gamma.npy", p.dtype, params);
    c.beta = read_tensor(dir / "beta.npy", p.dtype, params);
  } else {
    // Refused rather than ignored: the likelier story is a case.json that lost "affine": true.
    require_absent(dir / "gamma.npy", "affine is false");
    require_absent(dir / "beta.npy", "affine is false");
  }
  if (fs::exists(dir / "dy.npy")) c.dy = read_tensor(dir / "dy.npy", p.dtype, p.numel());
  c.validate();
  return c;
}

}  // namespace gnv
