// The .npy reader on arbitrary bytes: NpyError is the only acceptable failure, and an array of
// one of our dtypes must convert, serialize and parse back unchanged.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz/decode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  return gnv::fuzz::conclude(gnv::fuzz::check_npy(bytes), "npy");
}
