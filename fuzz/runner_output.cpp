// The runner-output reader (gnv/external.h) on arbitrary bytes: what an external runner writes
// is untrusted. Input: 1 byte dtype, 1 byte rank (0..4), rank bytes of extents (0..7), then the
// bytes of the .npy file. RunnerOutputError is the only acceptable failure; an accepted output
// has exactly the dtype and shape asked for.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "gnv/external.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const gnv::DType want = gnv::kAllDTypes[data[0] % 4];
  const size_t rank = data[1] % 5;
  if (size < 2 + rank) return 0;
  std::vector<int64_t> shape;
  for (size_t i = 0; i < rank; ++i) shape.push_back(data[2 + i] % 8);
  const std::string_view bytes(reinterpret_cast<const char*>(data + 2 + rank), size - 2 - rank);
  try {
    const gnv::Tensor t = gnv::parse_runner_output(bytes, "fuzz/y.npy", want, shape);
    if (t.dtype() != want || t.shape() != shape) {
      std::fprintf(stderr, "runner_output: accepted an output of another dtype or shape\n");
      std::abort();
    }
  } catch (const gnv::RunnerOutputError&) {
  }
  return 0;
}
