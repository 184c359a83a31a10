#pragma once
// What the fuzz targets do with their bytes, shared with `gnv replay` so that a fuzzer input
// means the same thing in both places: the byte -> case decoding of `differential`, the byte ->
// case-directory split of `case`, and the judgement of each target ("is this a finding?").
//
// The byte formats are part of the checked-in corpora (fuzz/corpus/<target>/): changing one
// invalidates those seeds, so change them only together with a re-seeded, re-merged corpus.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gnv/case.h"
#include "gnv/check.h"
#include "gnv/impl.h"

namespace gnv::fuzz {

// The outcome of one input: a finding is a bug (in a kernel, the oracle, the metrics or a
// parser); `report` explains it, or says what was checked when there was none.
struct Outcome {
  bool finding = false;
  std::string report;
};

// ---- differential -----------------------------------------------------------------------------
// Decodes any byte string into a valid, small case (numel <= kMaxNumel, so thousands of
// executions per second; the oracle is the cost). Every byte string decodes; missing bytes read
// as zeros (FuzzedDataProvider). Layout of the decoding, in FuzzedDataProvider's order:
//   dtype, layout, affine, backward (dy present), N in 0..2, G in 1..4, C/G in 1..4, rank 0..3
//   and extents (bounded so that N*C*S <= kMaxNumel), eps (selector + raw bits), then the
//   tensors x, gamma, beta (when affine), dy (when backward), each as
//   a base value (raw bits), a step exponent, and one tag byte per element:
//     0..63    base + (tag - 32) * 2^step   (rounded to the dtype): large offsets, tiny spreads
//     64..127  a special value: +-0, +-1, +-Inf, NaNs, +-max, +-min normal, +-min subnormal...
//     128..255 the element's raw bits (the next 2/4/8 bytes)
inline constexpr int64_t kMaxNumel = 64;
Case decode_differential(const uint8_t* data, size_t size);

// The implementations the differential target checks: every registered CPU implementation
// except the negative controls (capabilities().control), which are expected to fail.
std::vector<const Impl*> differential_impls();

struct ImplCheck {
  const Impl* impl = nullptr;
  CheckResult result;
};
// Runs check_case (forward, and backward when the case has dy) on every differential impl.
std::vector<ImplCheck> run_differential(const Case& c);
// A crash or sanitizer report ends the process before this; an error, an unwritten output, a
// policy violation or an error over budget is a finding.
bool is_finding(const CheckResult& r);
// Human-readable: the problem, the input tensors (values and bits), and per impl the metrics of
// every output. `finding_only` limits the impls to those whose result is a finding.
std::string describe_case(const Case& c);
std::string describe_checks(const Case& c, const std::vector<ImplCheck>& checks, bool finding_only);
Outcome judge_differential(const Case& c, const std::vector<ImplCheck>& checks);

// ---- oracle_paths ------------------------------------------------------------------------------
// The differential target's case (decode_differential) through both oracle evaluations, forward
// and (with dy) backward: any difference beyond oracle_paths_mismatch's tolerance, or an exception
// from one path and not the other, is a finding.
Outcome check_oracle_paths(const Case& c);

// ---- npy --------------------------------------------------------------------------------------
// parse_npy on arbitrary bytes: NpyError is the only acceptable failure. A parsed array whose
// descr is one of ours must convert with to_tensor, serialize and re-parse to the same array.
Outcome check_npy(std::string_view bytes);

// ---- report -----------------------------------------------------------------------------------
// parse_report (report.json) on arbitrary bytes: ReportError is the only acceptable failure. A
// report that parses must serialize and re-parse to the same text, and render (Markdown, JUnit,
// text, the baseline form) without throwing.
Outcome check_report(std::string_view bytes);

// ---- grid -------------------------------------------------------------------------------------
// parse_grid and parse_waivers (the TOML grid and waiver files) on arbitrary bytes: GridError is
// the only acceptable failure. A grid that parses must expand into cases without throwing (when
// its expansion is small enough to enumerate) and survive report.json: a report of that grid
// serializes and re-parses to the same grid.
Outcome check_grid(std::string_view bytes);

// ---- case -------------------------------------------------------------------------------------
// A case directory split out of arbitrary bytes: a flags byte (the last byte: which of gamma,
// beta, dy exist), then case.json, x.npy, gamma.npy, beta.npy as FuzzedDataProvider random-length
// strings, dy.npy the remaining bytes.
struct CaseFiles {
  std::string json, x;
  std::optional<std::string> gamma, beta, dy;
};
CaseFiles split_case_files(const uint8_t* data, size_t size);
// Writes the files into dir (created if needed), removing those the input does not have.
void write_case_files(const CaseFiles& f, const std::filesystem::path& dir);
// load_case on dir: CaseError, InvalidProblem and NpyError are acceptable; anything else is a
// finding. A case that loads must save and reload bitwise identical.
Outcome check_case_dir(const std::filesystem::path& dir);

// What a fuzz target does with an outcome: nothing (returns 0), or print the report and abort,
// which libFuzzer turns into a saved crash-<sha1> input (and a replay executable into a failure).
int conclude(const Outcome& o, std::string_view target);

// A per-process scratch directory (created once, reused by every execution).
const std::filesystem::path& scratch_dir();

}  // namespace gnv::fuzz
