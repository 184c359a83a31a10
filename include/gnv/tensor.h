#pragma once
// A dense tensor: a dtype, a physical shape (the order in memory, e.g. N,H,W,C for channels-last)
// and its bytes. Kernels see typed pointers; the harness sees raw bits, so NaN payloads and -0
// survive every copy.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "gnv/dtype.h"

namespace gnv {

class Tensor {
 public:
  Tensor() = default;
  Tensor(DType dtype, std::vector<int64_t> shape);

  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return bytes_.size(); }
  bool empty() const { return shape_.empty() && bytes_.empty(); }

  void* raw() { return bytes_.data(); }
  const void* raw() const { return bytes_.data(); }
  template <class T> T* data() { check_type(dtype_of<T>()); return reinterpret_cast<T*>(bytes_.data()); }
  template <class T> const T* data() const {
    check_type(dtype_of<T>());
    return reinterpret_cast<const T*>(bytes_.data());
  }

  uint64_t bits(int64_t i) const { return to_bits(dtype_, bytes_.data() + i * elem()); }
  void set_bits(int64_t i, uint64_t b) { from_bits(dtype_, b, bytes_.data() + i * elem()); }
  double get(int64_t i) const { return bits_to_double(dtype_, bits(i)); }
  void set(int64_t i, double v) { set_bits(i, round_for_data(dtype_, v)); }
  void fill_bits(uint64_t b);

  std::string shape_string() const;  // "(2, 4, 8)"

 private:
  int64_t elem() const { return info(dtype_).bytes; }
  void check_type(DType want) const;
  DType dtype_ = DType::f32;
  std::vector<int64_t> shape_;
  int64_t numel_ = 0;
  std::vector<std::byte> bytes_;
};

// The NaN pattern written into every output buffer before a kernel runs. It is a signalling NaN
// with a payload no arithmetic produces, so an element that still holds it was never written.
// variant 1 is a second such pattern: where the exact output is NaN, an element holding the first
// pattern may be a NaN the kernel wrote (a propagated payload) or one it never wrote, so the check
// runs the kernel again on buffers poisoned with the second (docs/numerics.md "Unwritten outputs").
uint64_t poison_bits(DType d, int variant = 0);

}  // namespace gnv
