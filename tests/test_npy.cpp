#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <unistd.h>

#include "gnv/npy.h"
#include "gnv/tensor.h"

namespace fs = std::filesystem;
using namespace gnv;

namespace {

fs::path data_dir() { return fs::path(GNV_TEST_DATA_DIR); }

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    const auto* info = testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            fmt_name(std::string(info->test_suite_name()) + "_" + info->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  static std::string fmt_name(std::string s) {
    for (char& c : s)
      if (c == '/') c = '_';
    return "gnv_test_" + s + "_" + std::to_string(::getpid());
  }
  fs::path path_;
};

// A .npy file from a header dict text and raw data, version 1.0 unless asked.
std::string npy_bytes(const std::string& dict, const std::string& data = "", int major = 1) {
  std::string header = dict + "\n";
  std::string out = "\x93NUMPY";
  out += static_cast<char>(major);
  out += '\0';
  const size_t n = header.size();
  out += static_cast<char>(n & 0xFF);
  out += static_cast<char>((n >> 8) & 0xFF);
  if (major > 1) out += std::string(2, '\0');
  return out + header + data;
}

std::string f4_dict(const std::string& shape) {
  return "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
}

// Asserts that parsing throws NpyError whose message names the source and contains `needle`.
void expect_npy_error(const std::string& bytes, const std::string& needle) {
  try {
    parse_npy(bytes, "bad.npy");
    ADD_FAILURE() << "no error; expected one containing '" << needle << "'";
  } catch (const NpyError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("bad.npy"), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << "message: " << msg << "\nwanted: " << needle;
  }
}

// Every dtype's awkward bit patterns plus random ones: the round trip must keep all bits.
Tensor awkward_tensor(DType d, std::vector<int64_t> shape, uint64_t seed) {
  Tensor t(d, std::move(shape));
  const int nbits = info(d).bytes * 8;
  const uint64_t mask = nbits == 64 ? ~uint64_t{0} : (uint64_t{1} << nbits) - 1;
  const uint64_t sign = uint64_t{1} << (nbits - 1);
  std::mt19937_64 rng(seed);
  const std::vector<uint64_t> fixed{sign,                      // -0
                                    poison_bits(d),            // signalling NaN with payload
                                    round_for_data(d, INFINITY), round_for_data(d, -INFINITY),
                                    1,                         // smallest subnormal
                                    (poison_bits(d) | sign) ^ 1};  // negative NaN, other payload
  for (int64_t i = 0; i < t.numel(); ++i)
    t.set_bits(i, i < static_cast<int64_t>(fixed.size()) ? fixed[i] : rng() & mask);
  return t;
}

void expect_same_bits(const Tensor& a, const Tensor& b) {
  ASSERT_EQ(a.dtype(), b.dtype());
  ASSERT_EQ(a.shape(), b.shape());
  for (int64_t i = 0; i < a.numel(); ++i) ASSERT_EQ(a.bits(i), b.bits(i)) << "element " << i;
}

bool has_temp_files(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp.") != std::string::npos) return true;
  return false;
}

}  // namespace

TEST(Npy, RoundTripKeepsEveryBitForEveryDtype) {
  for (DType d : kAllDTypes) {
    SCOPED_TRACE(std::string(name(d)));
    const Tensor t = awkward_tensor(d, {3, 7}, 11);
    const NpyArray a = parse_npy(serialize_npy(t), "mem");
    EXPECT_EQ(a.shape, (std::vector<int64_t>{3, 7}));
    EXPECT_FALSE(a.fortran_order);
    expect_same_bits(to_tensor(a, d, "mem"), t);
  }
}

TEST(Npy, DescrPerDtype) {
  EXPECT_EQ(parse_npy(serialize_npy(Tensor(DType::f64, {1}))).descr, "<f8");
  EXPECT_EQ(parse_npy(serialize_npy(Tensor(DType::f32, {1}))).descr, "<f4");
  EXPECT_EQ(parse_npy(serialize_npy(Tensor(DType::f16, {1}))).descr, "<f2");
  EXPECT_EQ(parse_npy(serialize_npy(Tensor(DType::bf16, {1}))).descr, "<u2");
}

TEST(Npy, RoundTripThroughFilesForOddShapes) {
  TempDir dir;
  const std::vector<std::vector<int64_t>> shapes{{}, {0}, {3, 0, 2}, {1}, {1, 2, 3, 1, 2}};
  for (DType d : kAllDTypes)
    for (const auto& shape : shapes) {
      const Tensor t = awkward_tensor(d, shape, 5);
      const fs::path p = dir.path() / "t.npy";
      write_npy(p, t);
      const NpyArray a = read_npy(p);
      EXPECT_EQ(a.shape, shape);
      expect_same_bits(to_tensor(a, d, p.string()), t);
    }
  EXPECT_FALSE(has_temp_files(dir.path()));
}

TEST(Npy, WrittenHeaderIsAlignedAndPythonShaped) {
  const std::string scalar = serialize_npy(Tensor(DType::f32, {}));
  const std::string one = serialize_npy(Tensor(DType::f32, {3}));
  for (const std::string& s : {scalar, one}) {
    const size_t header_len = static_cast<unsigned char>(s[8]) | (static_cast<unsigned char>(s[9]) << 8);
    EXPECT_EQ((10 + header_len) % 64, 0u);
    EXPECT_EQ(s[10 + header_len - 1], '\n');
  }
  EXPECT_NE(scalar.find("'shape': ()"), std::string::npos);
  EXPECT_NE(one.find("'shape': (3,)"), std::string::npos);
}

TEST(Npy, WriterMatchesNumpyByteForByte) {
  const std::pair<const char*, DType> files[] = {{"npy_f8_2x3.npy", DType::f64},
                                                 {"npy_f4_specials.npy", DType::f32},
                                                 {"npy_f2_scalar.npy", DType::f16},
                                                 {"npy_u2_2x2.npy", DType::bf16},
                                                 {"npy_f4_empty.npy", DType::f32},
                                                 {"npy_f2_5d.npy", DType::f16}};
  for (auto [file, d] : files) {
    SCOPED_TRACE(file);
    const std::string bytes = slurp(data_dir() / file);
    ASSERT_FALSE(bytes.empty());
    EXPECT_EQ(serialize_npy(to_tensor(parse_npy(bytes, file), d, file)), bytes);
  }
}

TEST(Npy, ReadsNumpyFilesWithTheirValues) {
  const Tensor f8 = to_tensor(read_npy(data_dir() / "npy_f8_2x3.npy"), DType::f64);
  EXPECT_EQ(f8.shape(), (std::vector<int64_t>{2, 3}));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(f8.get(i), i * 0.5 - 1);

  const Tensor sp = to_tensor(read_npy(data_dir() / "npy_f4_specials.npy"), DType::f32);
  const uint64_t want[] = {0x3FC00000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(sp.bits(i), want[i]) << i;

  const Tensor h = to_tensor(read_npy(data_dir() / "npy_f2_scalar.npy"), DType::f16);
  EXPECT_TRUE(h.shape().empty());
  EXPECT_EQ(h.numel(), 1);
  EXPECT_EQ(h.get(0), -2.5);

  const Tensor b = to_tensor(read_npy(data_dir() / "npy_u2_2x2.npy"), DType::bf16);
  EXPECT_EQ(b.get(0), 1.0);
  EXPECT_EQ(b.get(1), -1.0);
  EXPECT_TRUE(std::isnan(b.get(2)));
  EXPECT_EQ(b.bits(3), 1u);

  const Tensor v2 = to_tensor(read_npy(data_dir() / "npy_f4_v2.npy"), DType::f32);
  EXPECT_EQ(v2.shape(), std::vector<int64_t>{3});
  EXPECT_EQ(v2.get(2), 3.0);
  const Tensor v3 = to_tensor(read_npy(data_dir() / "npy_f8_v3.npy"), DType::f64);
  EXPECT_EQ(v3.shape(), (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(v3.get(0), 7.0);

  const Tensor e = to_tensor(read_npy(data_dir() / "npy_f4_empty.npy"), DType::f32);
  EXPECT_EQ(e.shape(), std::vector<int64_t>{0});
  EXPECT_EQ(e.numel(), 0);
  const Tensor five = to_tensor(read_npy(data_dir() / "npy_f2_5d.npy"), DType::f16);
  EXPECT_EQ(five.shape(), (std::vector<int64_t>{1, 2, 1, 2, 1}));
  EXPECT_EQ(five.get(3), 3.0);
}

TEST(Npy, RejectsUnsupportedNumpyFiles) {
  const NpyArray fortran = read_npy(data_dir() / "npy_f4_fortran.npy");
  EXPECT_TRUE(fortran.fortran_order);
  try {
    to_tensor(fortran, DType::f32, "w.npy");
    ADD_FAILURE() << "fortran order accepted";
  } catch (const NpyError& e) {
    EXPECT_NE(std::string(e.what()).find("w.npy: fortran_order"), std::string::npos) << e.what();
  }
  expect_npy_error(slurp(data_dir() / "npy_f4_bigendian.npy"), "big-endian dtype '>f4'");
  expect_npy_error(slurp(data_dir() / "npy_i8.npy"), "unsupported dtype '<i8'");
}

TEST(Npy, DtypeMismatchNamesBoth) {
  const NpyArray a = parse_npy(serialize_npy(Tensor(DType::f32, {2})));
  try {
    to_tensor(a, DType::f16, "x.npy");
    ADD_FAILURE();
  } catch (const NpyError& e) {
    EXPECT_NE(std::string(e.what()).find("x.npy: dtype '<f4' does not match case dtype f16"),
              std::string::npos)
        << e.what();
  }
  // bf16 is stored as '<u2': an f16 file must not be taken as bf16 bits.
  const NpyArray h = parse_npy(serialize_npy(Tensor(DType::f16, {2})));
  EXPECT_THROW(to_tensor(h, DType::bf16), NpyError);
  EXPECT_NO_THROW(to_tensor(parse_npy(serialize_npy(Tensor(DType::bf16, {2}))), DType::bf16));
}

TEST(Npy, AcceptsPythonLiteralVariants) {
  // Key order, double quotes, no trailing comma, extra whitespace, Python 2 'L' suffixes.
  const std::string dict = "{ \"shape\" : ( 2L , 1 ) ,'fortran_order':False,  'descr':\"<f4\"}  ";
  const NpyArray a = parse_npy(npy_bytes(dict, std::string(8, '\0')));
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(a.descr, "<f4");
  EXPECT_EQ(parse_npy(npy_bytes(f4_dict("(2,)"), std::string(8, '\0')), "v2").shape,
            std::vector<int64_t>{2});
  EXPECT_EQ(parse_npy(npy_bytes(f4_dict("(2,)"), std::string(8, '\0'), 2)).shape,
            std::vector<int64_t>{2});
}

TEST(Npy, MalformedInputsThrowMeaningfulErrors) {
  const std::string four(4, '\0');
  std::string good = npy_bytes(f4_dict("(1,)"), four);
  ASSERT_NO_THROW(parse_npy(good));

  expect_npy_error("", "bad magic");
  expect_npy_error("\x93NUMPZ\x01\x00", "bad magic");
  expect_npy_error("\x93NUMPY\x01", "truncated before the format version");
  expect_npy_error(std::string("\x93NUMPY\x01\x00", 8), "truncated inside the header length");
  expect_npy_error(std::string("\x93NUMPY\x04\x00\x10\x00", 10), "version 4.0");
  expect_npy_error(std::string("\x93NUMPY\x01\x01\x10\x00", 10), "version 1.1");

  std::string long_header = good;
  long_header[8] = '\xFF';
  long_header[9] = '\x7F';
  expect_npy_error(long_header, "runs past the end of the file");

  expect_npy_error(npy_bytes("{'fortran_order': False, 'shape': (1,)}", four), "missing the key 'descr'");
  expect_npy_error(npy_bytes("{'descr': '<f4', 'shape': (1,)}", four), "missing the key 'fortran_order'");
  expect_npy_error(npy_bytes("{'descr': '<f4', 'fortran_order': False}", four), "missing the key 'shape'");
  expect_npy_error(npy_bytes("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}",
                             four), "appears twice");
  expect_npy_error(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", four),
                   "unexpected header key 'x'");
  expect_npy_error(npy_bytes("{'descr': '<q9', 'fortran_order': False, 'shape': (1,)}", four),
                   "unsupported dtype '<q9'");
  expect_npy_error(npy_bytes("{'descr': '>f4', 'fortran_order': False, 'shape': (1,)}", four),
                   "big-endian");
  expect_npy_error(npy_bytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}", four),
                   "structured");
  expect_npy_error(npy_bytes("{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}", four),
                   "True or False");
  expect_npy_error(npy_bytes(f4_dict("[1]"), four), "must be a tuple");
  expect_npy_error(npy_bytes(f4_dict("(1)"), four), "is not a tuple");
  expect_npy_error(npy_bytes(f4_dict("(-2,)"), four), "negative dimension -2");
  expect_npy_error(npy_bytes(f4_dict("(1, x)"), four), "expected an integer");
  expect_npy_error(npy_bytes(f4_dict("(1 2)"), four), "expected ',' or ')'");
  expect_npy_error(npy_bytes(f4_dict("(99999999999999999999,)"), four), "does not fit in int64");
  expect_npy_error(npy_bytes(f4_dict("(4294967296, 4294967296)"), four), "more elements than int64");
  expect_npy_error(npy_bytes(f4_dict("(4611686018427387904, 4, 0)"), four), "more elements than int64");
  expect_npy_error(npy_bytes(f4_dict("(2305843009213693952,)"), four), "byte size that overflows");
  expect_npy_error(npy_bytes("{'descr': '<f4, 'fortran_order': False, 'shape': (1,)}", four), "");
  expect_npy_error(npy_bytes("{'descr': '<f4", four), "unterminated string");
  expect_npy_error(npy_bytes("'descr'", four), "must be a dict");
  expect_npy_error(npy_bytes(f4_dict("(1,)") + " junk", four), "unexpected bytes after the header");
  expect_npy_error(npy_bytes(f4_dict("(1,)"), "abc"), "truncated");
  expect_npy_error(npy_bytes(f4_dict("(1,)"), "abcde"), "trailing bytes");
  expect_npy_error(npy_bytes(f4_dict("(0,)"), "a"), "trailing bytes");
  expect_npy_error(npy_bytes(f4_dict("()"), ""), "data is 0 bytes but shape () with dtype '<f4' needs 4");
}

TEST(Npy, EveryTruncationOfAValidFileIsRejected) {
  const std::string good = serialize_npy(awkward_tensor(DType::f32, {2, 3}, 1));
  for (size_t n = 0; n < good.size(); ++n) EXPECT_THROW(parse_npy(good.substr(0, n)), NpyError) << n;
}

TEST(Npy, RandomByteMutationsNeverEscapeAsAnythingButNpyError) {
  const std::string good = npy_bytes(f4_dict("(2, 1)"), std::string(8, '\0'));
  std::mt19937_64 rng(3);
  int accepted = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string b = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) b[rng() % b.size()] = static_cast<char>(rng());
    try {
      const NpyArray a = parse_npy(b, "fuzz");
      ++accepted;
      int64_t n = a.descr.back() - '0';  // itemsize: every accepted descr ends in it
      for (int64_t e : a.shape) n *= e;
      EXPECT_EQ(static_cast<size_t>(n), a.data.size());
    } catch (const NpyError&) {
    }
  }
  EXPECT_GT(accepted, 0);  // mutations inside the data or padding stay valid
}

TEST(Npy, ReadMissingFileNamesIt) {
  TempDir dir;
  const fs::path p = dir.path() / "nope.npy";
  try {
    read_npy(p);
    ADD_FAILURE();
  } catch (const NpyError& e) {
    EXPECT_NE(std::string(e.what()).find(p.string() + ": cannot open"), std::string::npos) << e.what();
  }
}

TEST(Npy, AtomicWriteReplacesExistingFileCompletely) {
  TempDir dir;
  const fs::path p = dir.path() / "f.bin";
  write_file_atomic(p, std::string(1000, 'a'));
  write_file_atomic(p, "short");
  EXPECT_EQ(slurp(p), "short");
  EXPECT_FALSE(has_temp_files(dir.path()));
}

TEST(Npy, AtomicWriteIntoMissingDirectoryThrowsAndLeavesNothing) {
  TempDir dir;
  const fs::path p = dir.path() / "missing" / "f.npy";
  try {
    write_npy(p, Tensor(DType::f32, {2}));
    ADD_FAILURE();
  } catch (const NpyError& e) {
    EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir.path() / "missing"));
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(Npy, AtomicWriteFailingRenameRemovesTempAndKeepsTarget) {
  TempDir dir;
  // A non-empty directory at the target path makes rename fail after the temp file is written.
  const fs::path p = dir.path() / "target";
  fs::create_directories(p / "inside");
  try {
    write_file_atomic(p, "data");
    ADD_FAILURE();
  } catch (const NpyError& e) {
    EXPECT_NE(std::string(e.what()).find(p.string() + ": cannot replace"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::is_directory(p / "inside"));
  EXPECT_FALSE(has_temp_files(dir.path()));
}

TEST(Npy, SerializingADefaultTensorIsAnError) { EXPECT_THROW(serialize_npy(Tensor()), NpyError); }
