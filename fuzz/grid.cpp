// The grid and waiver file readers (TOML) on arbitrary bytes: GridError is the only acceptable
// failure, and a grid that parses must expand and survive report.json (fuzz/decode.h).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz/decode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  return gnv::fuzz::conclude(gnv::fuzz::check_grid(bytes), "grid");
}
