// The `cuda` implementation: the kernels of impls/cuda/ behind gnv's Impl interface. The harness
// hands host tensors; gn_cuda.h's *_host entry points copy them to the device (outputs too, so
// the harness's poison survives in anything the kernels leave unwritten), run, and copy back.
#include <stdexcept>
#include <string>

#include "gn_cuda.h"
#include "gnv/dtype.h"
#include "gnv/impl.h"

namespace gnv {
namespace {

cuda::Desc to_desc(const Problem& p) {
  cuda::Desc d;
  d.N = p.N;
  d.C = p.C;
  d.S = p.S();
  d.G = p.G;
  d.eps = p.eps;
  switch (p.dtype) {
    case DType::f64: d.dtype = cuda::DType::f64; break;
    case DType::f32: d.dtype = cuda::DType::f32; break;
    case DType::f16: d.dtype = cuda::DType::f16; break;
    case DType::bf16: d.dtype = cuda::DType::bf16; break;
  }
  d.layout = p.layout == Layout::nchw ? cuda::Layout::nchw : cuda::Layout::nhwc;
  d.epilogue = p.epilogue == Epilogue::silu ? cuda::Epilogue::silu : cuda::Epilogue::none;
  d.per_sample = p.per_sample();
  return d;
}

void require_device() {
  if (!cuda_available()) throw std::runtime_error("implementation 'cuda' is not available here: " + cuda_unavailable_reason());
}

class CudaImpl final : public Impl {
 public:
  std::string_view name() const override { return "cuda"; }
  Capabilities capabilities() const override {
    Capabilities c = Capabilities::full("cuda",
                                        "CUDA (sm_90): one pass over x per group on a thread-block cluster (scaled "
                                        "Welford, fixed-order combines), split path for larger groups; 16-byte accesses");
    c.epilogues = {Epilogue::none, Epilogue::silu};
    c.per_sample = true;
    return c;
  }
  bool available() const override { return cuda_available(); }

  void forward(const ForwardArgs& a) const override {
    require_device();
    const bool affine = a.p.affine;
    cuda::forward_host(to_desc(a.p), a.x.raw(), affine && a.gamma ? a.gamma->raw() : nullptr,
                       affine && a.beta ? a.beta->raw() : nullptr, a.y.raw(), a.mean.raw(), a.rstd.raw(),
                       cuda::default_options());
  }
  void backward(const BackwardArgs& a) const override {
    require_device();
    const bool affine = a.p.affine;
    cuda::backward_host(to_desc(a.p), a.dy.raw(), a.x.raw(), a.mean.raw(), a.rstd.raw(),
                        affine && a.gamma ? a.gamma->raw() : nullptr, affine && a.beta ? a.beta->raw() : nullptr, a.dx.raw(),
                        affine && a.dgamma ? a.dgamma->raw() : nullptr, affine && a.dbeta ? a.dbeta->raw() : nullptr,
                        cuda::default_options());
  }
};

}  // namespace
GNV_REGISTER_IMPL(CudaImpl);
}  // namespace gnv
