// Differential fuzzing: bytes -> a small GroupNorm case with raw-bit inputs (NaN, Inf, subnormals,
// the extremes, large offsets with tiny spreads) -> every CPU implementation except the controls,
// forward and backward, through check_case against the exact oracle. A crash, a sanitizer
// report, an error, an unwritten output, a non-finite policy violation or an error over budget
// is a finding. The decoding is fuzz/decode.h's, shared with `gnv replay --target differential`.
#include <cstddef>
#include <cstdint>

#include "fuzz/decode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const gnv::Case c = gnv::fuzz::decode_differential(data, size);
  return gnv::fuzz::conclude(gnv::fuzz::judge_differential(c, gnv::fuzz::run_differential(c)),
                             "differential");
}
