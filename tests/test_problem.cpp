#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <set>

#include "gnv/problem.h"
#include "gnv/tensor.h"

using namespace gnv;

namespace {

Problem small() {
  Problem p;
  p.N = 2;
  p.C = 6;
  p.spatial = {4, 5};
  p.G = 3;
  return p;
}

// The field named by the InvalidProblem that validate() throws, or "" if it does not throw.
std::string invalid_field(const Problem& p) {
  try {
    p.validate();
  } catch (const InvalidProblem& e) {
    return e.field();
  }
  return "";
}

}  // namespace

TEST(Problem, ValidProblemsPass) {
  EXPECT_EQ(invalid_field(small()), "");
  Problem p = small();
  p.N = 0;  // an empty batch is legal: kernels must cope with it
  EXPECT_EQ(invalid_field(p), "");
  p.spatial = {};
  p.eps = 0;
  EXPECT_EQ(invalid_field(p), "");
}

TEST(Problem, ValidateNamesTheOffendingField) {
  auto with = [](auto change) {
    Problem p = small();
    change(p);
    return invalid_field(p);
  };
  EXPECT_EQ(with([](Problem& p) { p.N = -1; }), "N");
  EXPECT_EQ(with([](Problem& p) { p.C = 0; }), "C");
  EXPECT_EQ(with([](Problem& p) { p.spatial = {1, 1, 1, 1}; }), "spatial");
  EXPECT_EQ(with([](Problem& p) { p.spatial = {3, 0}; }), "spatial");
  EXPECT_EQ(with([](Problem& p) { p.G = 0; }), "G");
  EXPECT_EQ(with([](Problem& p) { p.G = 4; }), "G");  // 6 % 4 != 0
  EXPECT_EQ(with([](Problem& p) { p.eps = -1e-5; }), "eps");
  EXPECT_EQ(with([](Problem& p) { p.eps = std::nan(""); }), "eps");
  EXPECT_EQ(with([](Problem& p) { p.eps = INFINITY; }), "eps");
  EXPECT_EQ(with([](Problem& p) {
              p.N = int64_t{1} << 40;
              p.C = int64_t{1} << 30;
              p.G = 1;
            }),
            "shape");
}

TEST(Problem, ValidateMessageCarriesTheValue) {
  Problem p = small();
  p.G = 4;
  try {
    p.validate();
    FAIL();
  } catch (const InvalidProblem& e) {
    EXPECT_STREQ(e.what(), "G: C = 6 is not divisible by G = 4");
  }
}

TEST(Problem, SizesAndShapes) {
  Problem p = small();
  EXPECT_EQ(p.S(), 20);
  EXPECT_EQ(p.channels_per_group(), 2);
  EXPECT_EQ(p.group_size(), 40);
  EXPECT_EQ(p.numel(), 240);
  EXPECT_EQ(p.x_shape(), (std::vector<int64_t>{2, 6, 4, 5}));
  p.layout = Layout::nhwc;
  EXPECT_EQ(p.x_shape(), (std::vector<int64_t>{2, 4, 5, 6}));
  p.spatial = {};
  EXPECT_EQ(p.S(), 1);
  EXPECT_EQ(p.x_shape(), (std::vector<int64_t>{2, 6}));
  EXPECT_EQ(p.stats_shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(p.param_shape(), std::vector<int64_t>{6});
  EXPECT_EQ(small().shape_string(), "2,6,4,5");
}

TEST(Problem, IndexForBothLayouts) {
  Problem p;
  p.N = 2;
  p.C = 3;
  p.spatial = {2, 2};
  EXPECT_EQ(p.index(1, 1, 2), (1 * 3 + 1) * 4 + 2);  // 18
  EXPECT_EQ(p.index(0, 2, 3), 11);
  p.layout = Layout::nhwc;
  EXPECT_EQ(p.index(1, 1, 2), (1 * 4 + 2) * 3 + 1);  // 19
  EXPECT_EQ(p.index(0, 2, 3), 11);
  EXPECT_EQ(p.index(0, 1, 0), 1);  // channels are adjacent in channels-last
}

TEST(Problem, IndexIsABijectionOntoTheBuffer) {
  for (Layout l : kAllLayouts) {
    Problem p;
    p.N = 3;
    p.C = 4;
    p.spatial = {2, 3, 1};
    p.layout = l;
    std::set<int64_t> seen;
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t c = 0; c < p.C; ++c)
        for (int64_t s = 0; s < p.S(); ++s) seen.insert(p.index(n, c, s));
    EXPECT_EQ(static_cast<int64_t>(seen.size()), p.numel());
    EXPECT_EQ(*seen.begin(), 0);
    EXPECT_EQ(*seen.rbegin(), p.numel() - 1);
  }
}

TEST(Problem, ParseShape) {
  Problem p;
  parse_shape("2,4", p);
  EXPECT_EQ(p.N, 2);
  EXPECT_EQ(p.C, 4);
  EXPECT_TRUE(p.spatial.empty());
  parse_shape("1,8,3,5,7", p);
  EXPECT_EQ(p.N, 1);
  EXPECT_EQ(p.C, 8);
  EXPECT_EQ(p.spatial, (std::vector<int64_t>{3, 5, 7}));
  EXPECT_EQ(p.shape_string(), "1,8,3,5,7");
}

TEST(Problem, ParseShapeErrors) {
  for (const char* bad : {"", "2", "1,2,3,4,5,6", "2,x", "2,4.5", "2,,4", "a,b", "2,8,", "+2,8", " 2,8", "2,-8",
                          "99999999999999999999,2"}) {
    Problem p;
    EXPECT_THROW(parse_shape(bad, p), std::invalid_argument) << "'" << bad << "'";
  }
  Problem p;
  try {
    parse_shape("2,x", p);
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'x' is not a non-negative integer"), std::string::npos) << e.what();
  }
}

TEST(DType, NamesAndAliasesInAnyCase) {
  for (const char* s : {"f64", "fp64", "float64", "double", "F64", "Double"}) EXPECT_EQ(parse_dtype(s), DType::f64) << s;
  for (const char* s : {"f32", "fp32", "float32", "float", "FP32"}) EXPECT_EQ(parse_dtype(s), DType::f32) << s;
  for (const char* s : {"f16", "fp16", "float16", "half", "FP16", "Half"}) EXPECT_EQ(parse_dtype(s), DType::f16) << s;
  for (const char* s : {"bf16", "bfloat16", "BF16", "BFloat16"}) EXPECT_EQ(parse_dtype(s), DType::bf16) << s;
  for (const char* s : {"nchw", "NCHW", "channels_first", "Channels-First"}) EXPECT_EQ(parse_layout(s), Layout::nchw) << s;
  for (const char* s : {"nhwc", "NHWC", "channels_last", "Channels-Last"}) EXPECT_EQ(parse_layout(s), Layout::nhwc) << s;
  for (const char* s : {"", "f8", "fp", "float128", "bf"}) EXPECT_THROW(parse_dtype(s), std::invalid_argument) << s;
  for (const char* s : {"", "nwhc", "channels"}) EXPECT_THROW(parse_layout(s), std::invalid_argument) << s;
}

TEST(Problem, ValidateTensorNamesField) {
  const Tensor t(DType::f32, {2, 3});
  EXPECT_NO_THROW(validate_tensor(t, "x", DType::f32, {2, 3}));
  try {
    validate_tensor(t, "x", DType::f32, {3, 2});
    FAIL();
  } catch (const InvalidProblem& e) {
    EXPECT_EQ(e.field(), "x");
    EXPECT_NE(std::string(e.what()).find("(2, 3)"), std::string::npos) << e.what();
  }
  try {
    validate_tensor(t, "dy", DType::f16, {2, 3});
    FAIL();
  } catch (const InvalidProblem& e) {
    EXPECT_EQ(e.field(), "dy");
  }
}
