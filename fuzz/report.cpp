// The report.json reader on arbitrary bytes: ReportError is the only acceptable failure, and a
// report that parses must serialize, re-parse and render consistently (fuzz/decode.h).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz/decode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  return gnv::fuzz::conclude(gnv::fuzz::check_report(bytes), "report");
}
