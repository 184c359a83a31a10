#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unistd.h>

#include "gnv/case.h"
#include "gnv/npy.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace gnv;

namespace {

class TempDir {
 public:
  TempDir() {
    const auto* info = testing::UnitTest::GetInstance()->current_test_info();
    std::string n = std::string("gnv_test_") + info->test_suite_name() + "_" + info->name() + "_" +
                    std::to_string(::getpid());
    for (char& c : n)
      if (c == '/') c = '_';
    path_ = fs::temp_directory_path() / n;
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

Problem problem(DType d, Layout l, bool affine, std::vector<int64_t> spatial) {
  Problem p;
  p.N = 2;
  p.C = 4;
  p.G = 2;
  p.spatial = std::move(spatial);
  p.eps = 0.1 + 0.2;  // not a short decimal: eps must survive JSON bitwise
  p.affine = affine;
  p.dtype = d;
  p.layout = l;
  return p;
}

void expect_same_bits(const Tensor& a, const Tensor& b, const char* what) {
  ASSERT_EQ(a.dtype(), b.dtype()) << what;
  ASSERT_EQ(a.shape(), b.shape()) << what;
  for (int64_t i = 0; i < a.numel(); ++i) ASSERT_EQ(a.bits(i), b.bits(i)) << what << " element " << i;
}

void expect_same_case(const Case& a, const Case& b) {
  EXPECT_EQ(a.problem.N, b.problem.N);
  EXPECT_EQ(a.problem.C, b.problem.C);
  EXPECT_EQ(a.problem.G, b.problem.G);
  EXPECT_EQ(a.problem.spatial, b.problem.spatial);
  EXPECT_EQ(std::bit_cast<uint64_t>(a.problem.eps), std::bit_cast<uint64_t>(b.problem.eps));
  EXPECT_EQ(a.problem.affine, b.problem.affine);
  EXPECT_EQ(a.problem.affine_mode, b.problem.affine_mode);
  EXPECT_EQ(a.problem.epilogue, b.problem.epilogue);
  EXPECT_EQ(a.problem.dtype, b.problem.dtype);
  EXPECT_EQ(a.problem.layout, b.problem.layout);
  EXPECT_EQ(a.stress, b.stress);
  EXPECT_EQ(a.seed, b.seed);
  expect_same_bits(a.x, b.x, "x");
  EXPECT_EQ(a.gamma.empty(), b.gamma.empty());
  EXPECT_EQ(a.beta.empty(), b.beta.empty());
  if (!a.gamma.empty()) expect_same_bits(a.gamma, b.gamma, "gamma");
  if (!a.beta.empty()) expect_same_bits(a.beta, b.beta, "beta");
  ASSERT_EQ(a.has_backward(), b.has_backward());
  if (a.dy) expect_same_bits(*a.dy, *b.dy, "dy");
}

json read_json(const fs::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}
void write_text(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << s;
}

// A saved, valid affine forward case whose case.json the tests then break.
fs::path saved_case(const fs::path& dir) {
  save_case(make_case(problem(DType::f32, Layout::nchw, true, {3}), parse_stress("normal"), 1, false),
            dir);
  return dir / "case.json";
}

// Loads dir expecting CaseError whose message contains every needle.
void expect_case_error(const fs::path& dir, std::initializer_list<std::string> needles) {
  try {
    load_case(dir);
    ADD_FAILURE() << "loaded; expected CaseError";
  } catch (const CaseError& e) {
    for (const auto& n : needles)
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << "message: " << e.what() << "\nwanted: " << n;
  }
}

std::string invalid_field(const fs::path& dir) {
  try {
    load_case(dir);
  } catch (const InvalidProblem& e) {
    return e.field();
  }
  return "(no InvalidProblem)";
}

}  // namespace

TEST(Case, SaveLoadRoundTripIsBitwise) {
  TempDir tmp;
  const std::vector<std::vector<int64_t>> spatials{{}, {5}, {2, 3}, {2, 1, 3}};
  int n = 0;
  for (DType d : kAllDTypes)
    for (Layout l : kAllLayouts)
      for (bool affine : {false, true})
        for (bool backward : {false, true})
          for (const auto& sp : spatials) {
            SCOPED_TRACE(fmt::format("{} {} affine={} backward={} rank={}", name(d), name(l), affine,
                                     backward, sp.size()));
            const Case c = make_case(problem(d, l, affine, sp), parse_stress("special"), 100 + n, backward);
            const fs::path dir = tmp.path() / std::to_string(n++);
            save_case(c, dir);
            expect_same_case(c, load_case(dir));
          }
  EXPECT_EQ(n, 128);
}

TEST(Case, ResavingOverADirectoryRemovesStaleTensors) {
  TempDir tmp;
  const fs::path dir = tmp.path() / "c";
  save_case(make_case(problem(DType::f16, Layout::nhwc, true, {4}), parse_stress("huge"), 3, true), dir);
  ASSERT_TRUE(fs::exists(dir / "gamma.npy"));
  ASSERT_TRUE(fs::exists(dir / "dy.npy"));
  const Case plain = make_case(problem(DType::f16, Layout::nhwc, false, {4}), parse_stress("huge"), 3, false);
  save_case(plain, dir);
  EXPECT_FALSE(fs::exists(dir / "gamma.npy"));
  EXPECT_FALSE(fs::exists(dir / "beta.npy"));
  EXPECT_FALSE(fs::exists(dir / "dy.npy"));
  const Case back = load_case(dir);
  EXPECT_FALSE(back.has_backward());
  expect_same_case(plain, back);
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

// Version 2: the SiLU epilogue and per-sample (N, C) parameters round-trip and are written as
// version 2 (a gnv that predates them refuses the file); a case that uses neither stays version 1
// without the new keys, and version 1 files without them load as plain GroupNorm.
TEST(Case, FusedModesRoundTripAsVersion2) {
  TempDir tmp;
  Problem p = problem(DType::f16, Layout::nhwc, true, {3});
  p.affine_mode = AffineMode::per_sample;
  p.epilogue = Epilogue::silu;
  const Case c = make_case(p, parse_stress("normal"), 5, true);
  EXPECT_EQ(c.gamma.shape(), (std::vector<int64_t>{2, 4}));
  save_case(c, tmp.path() / "fused");
  const json j = read_json(tmp.path() / "fused" / "case.json");
  EXPECT_EQ(j.at("version"), 2);
  EXPECT_EQ(j.at("epilogue"), "silu");
  EXPECT_EQ(j.at("affine_mode"), "per-sample");
  expect_same_case(c, load_case(tmp.path() / "fused"));

  const json plain = read_json(saved_case(tmp.path() / "plain"));
  EXPECT_EQ(plain.at("version"), 1);
  EXPECT_FALSE(plain.contains("epilogue"));
  EXPECT_FALSE(plain.contains("affine_mode"));
  const Case back = load_case(tmp.path() / "plain");
  EXPECT_EQ(back.problem.epilogue, Epilogue::none);
  EXPECT_EQ(back.problem.affine_mode, AffineMode::per_channel);

  // Per-sample parameters of the per-channel shape name the tensor; per-sample without affine is refused.
  Case wrong = c;
  wrong.gamma = Tensor(DType::f16, {4});
  EXPECT_THROW(
      {
        try {
          wrong.validate();
        } catch (const InvalidProblem& e) {
          EXPECT_EQ(e.field(), "gamma");
          throw;
        }
      },
      InvalidProblem);
  Problem bad = p;
  bad.affine = false;
  EXPECT_THROW(bad.validate(), InvalidProblem);
}

TEST(Case, SavedJsonHasTheDocumentedFields) {
  TempDir tmp;
  const json j = read_json(saved_case(tmp.path()));
  EXPECT_EQ(j.at("format"), "gnv-case");
  EXPECT_EQ(j.at("version"), 1);
  EXPECT_EQ(j.at("N"), 2);
  EXPECT_EQ(j.at("C"), 4);
  EXPECT_EQ(j.at("spatial"), json::array({3}));
  EXPECT_EQ(j.at("G"), 2);
  EXPECT_EQ(j.at("eps").get<double>(), 0.1 + 0.2);
  EXPECT_EQ(j.at("affine"), true);
  EXPECT_EQ(j.at("dtype"), "f32");
  EXPECT_EQ(j.at("layout"), "nchw");
  EXPECT_EQ(j.at("stress"), "normal");
  EXPECT_EQ(j.at("seed"), 1);
}

TEST(Case, MakeCaseFollowsTheProblem) {
  const Problem p = problem(DType::bf16, Layout::nhwc, false, {2, 3});
  const Case c = make_case(p, parse_stress("offset:1e4"), 9, false);
  EXPECT_TRUE(c.gamma.empty());
  EXPECT_TRUE(c.beta.empty());
  EXPECT_FALSE(c.has_backward());
  EXPECT_EQ(c.stress, "offset:10000");
  EXPECT_EQ(c.seed, 9u);
  expect_same_bits(c.x, generate_x(p, parse_stress("offset:1e4"), 9), "x");

  Problem q = p;
  q.affine = true;
  const Case d = make_case(q, parse_stress("normal"), 9, true);
  EXPECT_EQ(d.gamma.shape(), std::vector<int64_t>{4});
  EXPECT_EQ(d.beta.dtype(), DType::bf16);
  ASSERT_TRUE(d.has_backward());
  EXPECT_EQ(d.dy->shape(), q.x_shape());
}

TEST(Case, MissingDirectoryAndFiles) {
  TempDir tmp;
  expect_case_error(tmp.path() / "nope", {"nope", "not a case directory"});
  expect_case_error(tmp.path(), {"case.json", "missing"});

  saved_case(tmp.path());
  fs::remove(tmp.path() / "x.npy");
  expect_case_error(tmp.path(), {"x.npy", "missing"});

  saved_case(tmp.path());
  fs::remove(tmp.path() / "gamma.npy");
  expect_case_error(tmp.path(), {"gamma.npy", "missing"});

  saved_case(tmp.path());
  fs::remove(tmp.path() / "beta.npy");
  expect_case_error(tmp.path(), {"beta.npy", "missing"});
}

TEST(Case, BrokenTensorFilesAreCaseErrors) {
  TempDir tmp;
  saved_case(tmp.path());
  write_npy(tmp.path() / "x.npy", Tensor(DType::f64, {2, 4, 3}));
  expect_case_error(tmp.path(), {"x.npy", "dtype '<f8' does not match case dtype f32"});

  saved_case(tmp.path());
  write_text(tmp.path() / "gamma.npy", "\x93NUMPY\x01");
  expect_case_error(tmp.path(), {"gamma.npy", "truncated"});

  // A gamma.npy next to a non-affine case.json: refused, not silently ignored.
  const json j = [&] {
    json k = read_json(saved_case(tmp.path()));
    k["affine"] = false;
    return k;
  }();
  write_text(tmp.path() / "case.json", j.dump());
  expect_case_error(tmp.path(), {"gamma.npy", "affine is false"});
}

TEST(Case, MalformedCaseJson) {
  TempDir tmp;
  const fs::path file = saved_case(tmp.path());
  const json good = read_json(file);
  ASSERT_NO_THROW(load_case(tmp.path()));

  auto with_text = [&](const std::string& text, std::initializer_list<std::string> needles) {
    write_text(file, text);
    expect_case_error(tmp.path(), needles);
  };
  with_text("", {"case.json", "invalid JSON"});
  with_text("{\"N\": ", {"case.json", "invalid JSON"});
  with_text("[1, 2]", {"case.json", "JSON object"});

  auto with_field = [&](const std::string& key, const json& value, std::initializer_list<std::string> needles) {
    json j = good;
    if (value.is_discarded())
      j.erase(key);
    else
      j[key] = value;
    write_text(file, j.dump());
    SCOPED_TRACE(key + " = " + value.dump());
    expect_case_error(tmp.path(), needles);
  };
  const json missing = json(json::value_t::discarded);
  with_field("format", "npz", {"case.json", "'format'"});
  with_field("format", missing, {"'format' is missing"});
  with_field("version", 3, {"'version' is 3"});
  with_field("version", 0, {"'version' is 0"});
  with_field("epilogue", "gelu", {"'epilogue'", "unknown epilogue 'gelu'"});
  with_field("epilogue", 1, {"'epilogue' must be a string"});
  with_field("affine_mode", "per-group", {"'affine_mode'", "unknown affine mode 'per-group'"});
  with_field("version", "1", {"'version' must be an integer"});
  for (const char* key : {"N", "C", "G"}) {
    with_field(key, missing, {fmt::format("'{}' is missing", key)});
    with_field(key, 2.5, {fmt::format("'{}' must be an integer", key)});
    with_field(key, "2", {fmt::format("'{}' must be an integer", key)});
  }
  with_field("N", json(uint64_t{1} << 63), {"'N' is out of range"});
  with_field("spatial", 3, {"'spatial' must be an array of integers"});
  with_field("spatial", json::array({3, "x"}), {"'spatial' must be an integer"});
  with_field("spatial", missing, {"'spatial' is missing"});
  with_field("eps", "1e-5", {"'eps' must be a number"});
  with_field("eps", nullptr, {"'eps' must be a number"});
  with_field("affine", 1, {"'affine' must be true or false"});
  with_field("dtype", "f128", {"'dtype'", "unknown dtype 'f128'"});
  with_field("dtype", 32, {"'dtype' must be a string"});
  with_field("layout", "nwhc", {"'layout'", "unknown layout 'nwhc'"});
  with_field("seed", -1, {"'seed' must be a non-negative integer"});
  with_field("stress", 5, {"'stress' must be a string"});

  // Unknown keys are ignored; stress and seed are optional.
  json extra = good;
  extra["comment"] = "made by hand";
  extra.erase("stress");
  extra.erase("seed");
  write_text(file, extra.dump());
  const Case c = load_case(tmp.path());
  EXPECT_EQ(c.stress, "");
  EXPECT_EQ(c.seed, 0u);
  EXPECT_EQ(c.problem.C, 4);
}

TEST(Case, InvalidProblemsKeepTheirOwnType) {
  TempDir tmp;
  const fs::path file = saved_case(tmp.path());
  const json good = read_json(file);
  auto field_for = [&](const std::string& key, const json& value) {
    json j = good;
    j[key] = value;
    write_text(file, j.dump());
    return invalid_field(tmp.path());
  };
  EXPECT_EQ(field_for("G", 3), "G");  // C = 4
  EXPECT_EQ(field_for("G", 0), "G");
  EXPECT_EQ(field_for("eps", -1e-5), "eps");
  EXPECT_EQ(field_for("C", 0), "C");
  EXPECT_EQ(field_for("spatial", json::array({3, 0})), "spatial");
}

TEST(Case, TensorShapeMismatchNamesTheTensor) {
  TempDir tmp;
  saved_case(tmp.path());
  write_npy(tmp.path() / "x.npy", Tensor(DType::f32, {2, 3, 4}));  // nhwc shape for an nchw case
  EXPECT_EQ(invalid_field(tmp.path()), "x");

  saved_case(tmp.path());
  write_npy(tmp.path() / "beta.npy", Tensor(DType::f32, {4, 1}));
  EXPECT_EQ(invalid_field(tmp.path()), "beta");

  saved_case(tmp.path());
  write_npy(tmp.path() / "dy.npy", Tensor(DType::f32, {2, 4}));
  EXPECT_EQ(invalid_field(tmp.path()), "dy");
}

TEST(Case, ValidateChecksEveryTensor) {
  auto field_of = [](const Case& c) -> std::string {
    try {
      c.validate();
    } catch (const InvalidProblem& e) {
      return e.field();
    }
    return "";
  };
  const Case good = make_case(problem(DType::f16, Layout::nhwc, true, {3}), parse_stress("normal"), 2, true);
  EXPECT_EQ(field_of(good), "");

  Case c = good;
  c.problem.eps = std::nan("");
  EXPECT_EQ(field_of(c), "eps");
  c = good;
  c.x = Tensor(DType::f32, good.problem.x_shape());
  EXPECT_EQ(field_of(c), "x");
  c = good;
  c.gamma = Tensor(DType::f16, {3});
  EXPECT_EQ(field_of(c), "gamma");
  c = good;
  c.beta = Tensor();
  EXPECT_EQ(field_of(c), "beta");
  c = good;
  c.problem.affine = false;
  EXPECT_EQ(field_of(c), "gamma");  // tensors present for a non-affine problem
  c = good;
  c.dy = Tensor(DType::bf16, good.problem.x_shape());
  EXPECT_EQ(field_of(c), "dy");

  // save_case refuses what it could not reload.
  TempDir tmp;
  c = good;
  c.problem.G = 2;  // C = 4, fine; but x of the nhwc shape under nchw is not
  c.problem.layout = Layout::nchw;
  EXPECT_THROW(save_case(c, tmp.path() / "bad"), InvalidProblem);
  EXPECT_FALSE(fs::exists(tmp.path() / "bad"));
}
