// The case-directory loader on arbitrary content: the bytes are split into case.json, x.npy and
// optionally gamma.npy, beta.npy, dy.npy (fuzz/decode.h), written into a per-process scratch
// directory and loaded. CaseError, InvalidProblem and NpyError are acceptable; a case that loads
// must save and reload unchanged.
#include <cstddef>
#include <cstdint>

#include "fuzz/decode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto dir = gnv::fuzz::scratch_dir() / "case";
  gnv::fuzz::write_case_files(gnv::fuzz::split_case_files(data, size), dir);
  return gnv::fuzz::conclude(gnv::fuzz::check_case_dir(dir), "case");
}
