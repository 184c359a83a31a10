#include "gnv/tensor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace gnv {

Tensor::Tensor(DType dtype, std::vector<int64_t> shape) : dtype_(dtype), shape_(std::move(shape)) {
  int64_t n = 1;
  for (int64_t e : shape_) {
    if (e < 0) throw std::invalid_argument(fmt::format("negative tensor extent {}", e));
    if (e != 0 && n > INT64_MAX / e) throw std::invalid_argument("tensor element count overflows int64");
    n *= e;
  }
  if (n > INT64_MAX / 8) throw std::invalid_argument("tensor byte size overflows int64");
  numel_ = n;
  bytes_.resize(static_cast<size_t>(n * info(dtype).bytes));
}

void Tensor::fill_bits(uint64_t b) {
  for (int64_t i = 0; i < numel_; ++i) set_bits(i, b);
}

std::string Tensor::shape_string() const { return fmt::format("({})", fmt::join(shape_, ", ")); }

void Tensor::check_type(DType want) const {
  if (want != dtype_)
    throw std::logic_error(fmt::format("tensor holds {} but was read as {}", name(dtype_), name(want)));
}

uint64_t poison_bits(DType d, int variant) {
  if (variant == 1) {
    switch (d) {
      case DType::f64: return 0x7FF5C0FFEE0B5E55ull;
      case DType::f32: return 0x7FB5C0FEu;
      case DType::f16: return 0x7D6Bu;
      case DType::bf16: return 0x7FB6u;
    }
  }
  switch (d) {
    case DType::f64: return 0x7FF4DEADBEEF0A5Eull;
    case DType::f32: return 0x7FA5DEADu;
    case DType::f16: return 0x7D5Au;
    case DType::bf16: return 0x7FA5u;
  }
  return 0;
}

}  // namespace gnv
