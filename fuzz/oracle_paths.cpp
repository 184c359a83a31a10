// The oracle's two evaluations (OraclePath::fast and ::reference) on the differential target's
// cases: raw-bit inputs with NaN, Inf, subnormals, the extremes, large offsets over tiny spreads
// and exact ties. Any difference beyond oracle_paths_mismatch's tolerance is a finding.
#include <cstddef>
#include <cstdint>

#include "fuzz/decode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return gnv::fuzz::conclude(gnv::fuzz::check_oracle_paths(gnv::fuzz::decode_differential(data, size)),
                             "oracle_paths");
}
