#pragma once
// A small .npy (format 1.0/2.0/3.0) reader and writer: no maintained Debian package provides one.
// bf16 has no numpy dtype: it is stored as '<u2' bit patterns and the dtype is named elsewhere
// (case.json). Every malformed input throws NpyError with the file and what is wrong.
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "gnv/tensor.h"

namespace gnv {

class NpyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct NpyArray {
  std::string descr;           // as in the header, e.g. "<f4", "<u2"
  bool fortran_order = false;  // always rejected by to_tensor
  std::vector<int64_t> shape;
  std::vector<std::byte> data;  // little-endian element bytes, C order
};

// Parses the bytes of a whole .npy file. `what` names the source in error messages.
NpyArray parse_npy(std::string_view bytes, const std::string& what = "npy");
// What a .npy of `elements` elements of `dtype` may take: the data and a header of at most
// kMaxNpyHeader bytes.
inline constexpr std::uintmax_t kMaxNpyHeader = 1 << 20;
std::uintmax_t npy_max_bytes(int64_t elements, DType dtype);
// Reads a regular file of at most max_bytes (a FIFO, a device such as /dev/zero, a directory or a
// larger file is an NpyError at once, before any data is read).
NpyArray read_npy(const std::filesystem::path& path, std::uintmax_t max_bytes = kMaxNpyHeader + (1ull << 32));
// Converts to a tensor of dtype `want` (bf16 accepts '<u2'); throws NpyError on a descr mismatch.
Tensor to_tensor(const NpyArray& a, DType want, const std::string& what = "npy");

std::string serialize_npy(const Tensor& t);  // '<f8' '<f4' '<f2', and '<u2' for bf16
// Writes atomically: a temporary file in the same folder, then rename.
void write_npy(const std::filesystem::path& path, const Tensor& t);
void write_file_atomic(const std::filesystem::path& path, std::string_view content);
// The whole of a small input file gnv did not write (a grid, a waiver list, a report): refused with
// std::invalid_argument naming the path unless it is a regular file (after symlinks) of at most
// max_bytes, so /dev/zero, a FIFO or a directory fails at once instead of being read forever.
std::string read_small_file(const std::filesystem::path& path, std::uintmax_t max_bytes);
// The same, with the refusal thrown as the caller's own error type (NpyError, CaseError, ...), so
// that its command maps it to exit 2 with the same message.
template <class Error>
std::string read_small_file_or(const std::filesystem::path& path, std::uintmax_t max_bytes) {
  try {
    return read_small_file(path, max_bytes);
  } catch (const std::invalid_argument& e) {
    throw Error(e.what());
  }
}

}  // namespace gnv
