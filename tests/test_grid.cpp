// Grid files: the TOML reader (what a file means, and a precise error with file, line and key for
// every malformed one), the shipped presets as grid files, the ad-hoc section of --shape, and the
// bounded reading of untrusted input files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

#include "gnv/npy.h"
#include "gnv/report.h"
#include "gnv/stress.h"

namespace gnv::report {
namespace {

namespace fs = std::filesystem;

// The message of the GridError that parsing `text` throws, or "" when it parses.
std::string grid_error(const std::string& text) {
  try {
    (void)parse_grid(text, "g.toml");
  } catch (const GridError& e) {
    return e.what();
  }
  return "";
}

constexpr const char* kTwoShapes = R"(
name = "mine"
dtypes = ["fp32", "BF16"]
layouts = ["channels_last"]
backward = false

[[section]]
name = "mine"
stresses = ["normal", "offset:1e4"]
seeds = [3, 7]

  [[section.shape]]
  shape = [2, 64, 9, 9]
  groups = [32, 8]

  [[section.shape]]
  name = "unet"
  shape = "1,12,5"
  groups = 3
  eps = [1e-5, 1e-6]
  affine = [false, true]
  note = "a note"
)";

TEST(Grid, FileWithTwoUserShapesExpandsToExactlyThoseCases) {
  const Grid g = parse_grid(kTwoShapes, "dir/mine.toml");
  EXPECT_EQ(g.preset, "mine");
  EXPECT_EQ(g.dtypes, (std::vector<std::string>{"f32", "bf16"}));
  EXPECT_EQ(g.layouts, (std::vector<std::string>{"nhwc"}));
  EXPECT_FALSE(g.backward);
  ASSERT_EQ(g.sections.size(), 1u);
  const Section& s = g.sections[0];
  EXPECT_EQ(s.stresses, (std::vector<std::string>{"normal", Stress{StressKind::offset, 1e4}.name()}));
  EXPECT_EQ(s.seeds, (std::vector<uint64_t>{3, 7}));
  // The first shape is named after its extents; the second has 2 eps x 2 affine variants.
  ASSERT_EQ(s.shapes.size(), 5u);
  EXPECT_EQ(s.shapes[0].name, "2x64x9x9");
  EXPECT_EQ(s.shapes[0].shape, "2,64,9,9");
  EXPECT_EQ(s.shapes[0].groups, (std::vector<int64_t>{32, 8}));
  EXPECT_EQ(s.shapes[0].eps, 1e-5);
  EXPECT_FALSE(s.shapes[0].affine);
  EXPECT_EQ(s.shapes[1].name, "unet-eps1e-05-plain");
  EXPECT_EQ(s.shapes[4].name, "unet-eps1e-06-affine");
  EXPECT_EQ(s.shapes[4].eps, 1e-6);
  EXPECT_TRUE(s.shapes[4].affine);
  EXPECT_EQ(s.shapes[4].note, "a note");

  const std::vector<CaseSpec> cases = expand_cases(g);
  // dtypes 2 x layouts 1 x (2 G + 4 variants) x 2 stresses x 2 seeds.
  EXPECT_EQ(cases.size(), 2u * 1 * 6 * 2 * 2);
  for (const CaseSpec& c : cases) {
    EXPECT_EQ(c.problem.layout, Layout::nhwc);
    EXPECT_TRUE(c.problem.shape_string() == "2,64,9,9" || c.problem.shape_string() == "1,12,5")
        << c.problem.shape_string();
  }
}

TEST(Grid, DefaultsAreEveryDtypeLayoutAndStressSeedZeroNoAffine) {
  const Grid g = parse_grid("[[section]]\nname = \"s\"\n[[section.shape]]\nshape = [1, 4]\ngroups = [2]\n", "x/d.toml");
  EXPECT_EQ(g.preset, "d");  // the file's stem
  EXPECT_EQ(g.dtypes.size(), 4u);
  EXPECT_EQ(g.layouts.size(), 2u);
  EXPECT_TRUE(g.backward);
  EXPECT_EQ(g.sections[0].stresses, all_stress_names());
  EXPECT_EQ(g.sections[0].seeds, (std::vector<uint64_t>{0}));
  EXPECT_FALSE(g.sections[0].shapes[0].affine);
  EXPECT_EQ(g.sections[0].shapes[0].eps, 1e-5);
}

TEST(Grid, SectionDefaultsApplyToItsShapes) {
  const Grid g = parse_grid(
      "[[section]]\nname = \"m\"\ngroups = [4]\naffine = true\neps = 1e-6\n"
      "[[section.shape]]\nshape = [1, 8, 3]\n[[section.shape]]\nshape = [1, 16]\ngroups = [16]\n",
      "g.toml");
  EXPECT_EQ(g.sections[0].shapes[0].groups, (std::vector<int64_t>{4}));
  EXPECT_TRUE(g.sections[0].shapes[0].affine);
  EXPECT_EQ(g.sections[0].shapes[0].eps, 1e-6);
  EXPECT_EQ(g.sections[0].shapes[1].groups, (std::vector<int64_t>{16}));
}

// The fused forms: `affine` takes "per-sample" besides true/false, `epilogue` "none"/"silu"; each
// combination is a shape variant, and a fused one always carries its form in its name.
TEST(Grid, FusedFormsAreShapeVariantsNamedByTheirForm) {
  const Grid g = parse_grid(
      "[[section]]\nname = \"u\"\ngroups = [2]\nepilogue = [\"none\", \"silu\"]\n"
      "[[section.shape]]\nshape = [2, 8, 3]\naffine = [true, \"per-sample\"]\n"
      "[[section.shape]]\nshape = [1, 4]\nepilogue = \"silu\"\n",
      "g.toml");
  std::vector<std::string> names;
  for (const ShapeSpec& sh : g.sections[0].shapes) names.push_back(sh.name);
  EXPECT_EQ(names, (std::vector<std::string>{"2x8x3-affine-none", "2x8x3-affine-silu", "2x8x3-per-sample-none",
                                             "2x8x3-per-sample-silu", "1x4-silu"}));
  const ShapeSpec& ps = g.sections[0].shapes[3];
  EXPECT_TRUE(ps.affine);
  EXPECT_EQ(ps.affine_mode, AffineMode::per_sample);
  EXPECT_EQ(ps.epilogue, Epilogue::silu);
  EXPECT_TRUE(uses_fused(g));
  const std::vector<CaseSpec> cases = expand_cases(g);
  ASSERT_FALSE(cases.empty());
  bool saw = false;
  for (const CaseSpec& c : cases)
    if (c.shape_name == "2x8x3-per-sample-silu") {
      saw = true;
      EXPECT_TRUE(c.problem.per_sample());
      EXPECT_EQ(c.problem.epilogue, Epilogue::silu);
    }
  EXPECT_TRUE(saw);
  EXPECT_FALSE(uses_fused(preset_grid("smoke")));
  EXPECT_TRUE(uses_fused(preset_grid("ci")));  // its section "fused"
  const std::string sec = "[[section]]\nname = \"s\"\n[[section.shape]]\nshape = [2, 8]\ngroups = [2]\n";
  EXPECT_NE(grid_error(sec + "epilogue = \"gelu\"\n").find("section[0].shape[0].epilogue: unknown epilogue 'gelu'"),
            std::string::npos);
  EXPECT_NE(grid_error(sec + "affine = \"per-group\"\n").find("affine: unknown affine mode 'per-group'"),
            std::string::npos);
  EXPECT_NE(grid_error(sec + "epilogue = [\"silu\", \"silu\"]\n").find("silu is given twice"), std::string::npos);
}

TEST(Grid, MalformedFilesNameFileLineAndKey) {
  const std::string shape = "[[section.shape]]\nshape = [2, 8]\ngroups = [4]\n";
  const std::string sec = "[[section]]\nname = \"s\"\n";
  struct Bad {
    std::string text, want;
  };
  const Bad bad[] = {
      {"[[section]\nname = 1", "g.toml:1:"},                                          // truncated header
      {sec + "[[section.shape]]\nshape = [2, 8", "g.toml:"},                          // truncated array
      {"name = \"x\"\n", "section: no [[section]]"},                                  // no section
      {"colour = 3\n" + sec + shape, "g.toml:1: colour: unknown key"},                // unknown key, top
      {sec + "seedz = [1]\n" + shape, "g.toml:3: section[0].seedz: unknown key"},     // unknown key, section
      {sec + shape + "grups = [2]\n", "g.toml:6: section[0].shape[0].grups: unknown key"},
      {sec + "stresses = [\"wobbly\"]\n" + shape, "g.toml:3: section[0].stresses: stress class 'wobbly': unknown class"},
      {sec + "stresses = \"normal\"\nseeds = [-1]\n" + shape, "g.toml:4: section[0].seeds[0]: -1 is less than 0"},
      {sec + "seeds = [\"1\"]\n" + shape, "section[0].seeds[0]: expected an integer, got a string"},
      {sec + "[[section.shape]]\nshape = [2, 6]\ngroups = [4]\n", "g.toml:3: section[0].shape[0]: shape 2,6 with G = 4"},
      {sec + "[[section.shape]]\nshape = [2, 6, 0]\ngroups = [3]\n", "section[0].shape[0]: shape 2,6,0"},
      {sec + "[[section.shape]]\nshape = [2]\ngroups = [1]\n", "section[0].shape[0].shape: shape '2' must be"},
      {sec + "[[section.shape]]\nshape = [2, 8]\n", "missing key 'groups'"},
      {sec + "[[section.shape]]\ngroups = [2]\n", "missing key 'shape'"},
      {sec + "[[section.shape]]\nshape = [2, 8]\ngroups = []\n", "section[0].shape[0].groups: empty list"},
      {sec + "[[section.shape]]\nshape = [2, 8]\ngroups = [4, 4]\n", "groups: 4 is given twice"},
      {sec + "[[section.shape]]\nshape = [2, 8]\ngroups = [0]\n", "groups[0]: 0 is less than 1"},
      {sec + "[[section.shape]]\nshape = [2, 8]\ngroups = [2]\neps = -1.0\n", "eps = -1: "},
      {sec + "[[section.shape]]\nshape = [2, 8]\ngroups = [2]\naffine = \"yes\"\n", "affine: unknown affine mode 'yes'"},
      {sec + "[[section.shape]]\nshape = [2, 8]\ngroups = [2]\naffine = 1\n", "affine: expected true, false or \"per-sample\""},
      {sec + shape + "[[section.shape]]\nshape = [2, 8]\ngroups = [2]\n", "repeated shape name '2x8'"},
      {sec + shape + sec + shape, "repeated section 's'"},
      {"[[section]]\nname = \"a/b\"\n" + shape, "names may not hold '/'"},
      {"dtypes = [\"f8\"]\n" + sec + shape, "g.toml:1: dtypes: unknown dtype 'f8'"},
      {"layouts = [\"nchw\", \"NCHW\"]\n" + sec + shape, "layouts: nchw is given twice"},
      {"section = 3\n", "section: expected one or more [[section]] tables"},
      {sec, "no [[section.shape]]"},
  };
  for (const Bad& b : bad) {
    const std::string msg = grid_error(b.text);
    EXPECT_NE(msg.find(b.want), std::string::npos) << "text:\n" << b.text << "\nmessage: " << msg;
  }
}

TEST(Grid, NonAsciiOnlyWhereToml3_3ReadsItSafely) {
  // Found by the grid fuzz target: toml++ 3.3.0 reaches __builtin_unreachable() on some non-ASCII
  // code points where it looks for whitespace (marzer/tomlplusplus#190, #295).
  const std::string shape = "[[section.shape]]\nshape = [2, 8]\ngroups = [2]\n";
  EXPECT_NE(grid_error("[[section]]\nname = \"s\"\nseeds = [0, 1, \xcd\xa9]\n" + shape).find("g.toml:3: "),
            std::string::npos);
  // An invalid document whose strings toml++ and a simple scan would see differently (fuzzer input).
  EXPECT_NE(grid_error("dtypes = -RRs\"\\1e-5RR\"pairwise\"RR\xc9\xadR\"\\RRn]\n").find("g.toml:1: "),
            std::string::npos);
  EXPECT_NE(grid_error("description = \"\"\"\\\n\xc2\xa7\"\"\"\n[[section]]\nname = \"s\"\n" + shape)
                .find("g.toml:2: a non-ASCII character in a \"\"\" string"),
            std::string::npos);
  EXPECT_NE(grid_error("\xcc\xaa").find("g.toml:1:"), std::string::npos);
  // A ''' string closed by four quotes must not leave the scan inside a string (review finding).
  EXPECT_NE(grid_error("a = '''x''''\nb = \"\"\"\\\n\xe3\x80\x80\"\"\"\n").find("g.toml:3: a non-ASCII character in a"),
            std::string::npos);
  // Comments and single-line or literal strings may hold any text: notes and reasons do.
  const Grid g = parse_grid("# \xce\xba \xc3\x97\n[[section]]\nname = \"s\"\n[[section.shape]]\nshape = [2, 8]\n"
                            "groups = [2]\nnote = \"512\xc3\x97" "512 \\\" \xce\xba\"\n",
                            "g.toml");
  EXPECT_EQ(g.sections[0].shapes[0].note, "512\xc3\x97" "512 \" \xce\xba");
  EXPECT_NO_THROW(parse_waivers("[[waiver]]\nreason = 'r\xc3\xa9" "ason'\n", "w.toml"));
  EXPECT_THROW(parse_waivers("[[waiver]]\nreason = \"r\"\nimpl = \xc3\xa9\n", "w.toml"), GridError);
}

TEST(Grid, PresetsAreTheShippedFilesAndCiMatchesItsBaseline) {
  for (const PresetInfo& p : presets()) {
    EXPECT_EQ(p.file, "grids/" + p.name + ".toml");
    EXPECT_FALSE(p.description.empty()) << p.name;
    // The compiled-in text is the file in the tree.
    const Grid from_file = load_grid_file(fs::path(GNV_SOURCE_DIR) / p.file);
    Grid preset = preset_grid(p.name);
    EXPECT_EQ(grid_mismatch(from_file, {}, preset, {}), "") << p.name;
  }
  // The regression gate compares the ci preset with baselines/ci.json: the grid must be the same.
  const Report base = read_report(fs::path(GNV_SOURCE_DIR) / "baselines/ci.json");
  EXPECT_EQ(grid_mismatch(base.grid, base.shard, preset_grid("ci"), {}), "");
}

TEST(Grid, AReportRunsItsOwnGridAgain) {
  const fs::path dir = fs::temp_directory_path() / fs::path("gnv-grid-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const Grid g = load_grid_file(fs::path(GNV_SOURCE_DIR) / "baselines/ci.json");
  EXPECT_EQ(grid_mismatch(g, {}, preset_grid("ci"), {}), "");
  EXPECT_TRUE(g.external.empty());
  std::ofstream(dir / "bad.json") << "{\"format\": \"gnv-report\"";
  EXPECT_THROW(load_grid_file(dir / "bad.json"), GridError);
  fs::remove_all(dir);
}

TEST(Grid, AdhocSectionFromTheCommandLine) {
  const Section s = adhoc_section({"2,320,16,16", "1,64,8"}, {32, 8}, {1e-6}, AffineChoice{true});
  EXPECT_EQ(s.name, "adhoc");
  ASSERT_EQ(s.shapes.size(), 2u);
  EXPECT_EQ(s.shapes[0].name, "2x320x16x16");
  EXPECT_EQ(s.shapes[0].groups, (std::vector<int64_t>{32, 8}));
  EXPECT_TRUE(s.shapes[0].affine);
  EXPECT_EQ(s.shapes[0].eps, 1e-6);
  EXPECT_EQ(s.stresses, all_stress_names());
  EXPECT_THROW(adhoc_section({"2,30,4"}, {32}, {}, AffineChoice{}), std::invalid_argument);  // 30 % 32
  EXPECT_THROW(adhoc_section({"2,32,4"}, {}, {}, AffineChoice{}), std::invalid_argument);    // no G
  EXPECT_THROW(adhoc_section({"2,32,"}, {8}, {}, AffineChoice{}), std::invalid_argument);    // trailing comma
}

TEST(Grid, UntrustedFilesAreReadOnlyWhenSmallAndRegular) {
  const fs::path dir = fs::temp_directory_path() / fs::path("gnv-small-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "ok.txt") << "hello";
  EXPECT_EQ(read_small_file(dir / "ok.txt", 5), "hello");
  EXPECT_THROW(read_small_file(dir / "ok.txt", 4), std::invalid_argument);
  EXPECT_THROW(read_small_file(dir, 100), std::invalid_argument);             // a directory
  EXPECT_THROW(read_small_file("/dev/zero", 100), std::invalid_argument);     // a device
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  EXPECT_THROW(read_small_file(dir / "fifo", 100), std::invalid_argument);    // would block forever
  EXPECT_THROW(read_small_file(dir / "missing", 100), std::invalid_argument);
  try {
    (void)load_grid_file("/dev/zero");
    ADD_FAILURE() << "read /dev/zero as a grid";
  } catch (const GridError& e) {
    EXPECT_NE(std::string(e.what()).find("/dev/zero: not a regular file"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace gnv::report
