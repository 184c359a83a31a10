// gnv plugin (include/gnv/plugin.h) for PyTorch's CPU GroupNorm through libtorch (Debian
// libtorch-dev): at::native_group_norm forward and at::native_group_norm_backward, the two
// kernels behind torch.nn.functional.group_norm and its autograd. gnv's buffers are wrapped
// without copies (at::from_blob with gnv's strides), so a channels-last problem (layout nhwc)
// reaches libtorch as a channels_last tensor (ChannelsLast for 4-d, ChannelsLast3d for 5-d), a
// channels-first one as a contiguous tensor: the two memory formats, chosen with `--layout`.
// Like at::group_norm (what F.group_norm calls), forward makes x contiguous in its suggested
// memory format, a copy only where channels-last strides have no memory format of their own (2-d
// and 3-d tensors); backward, like autograd, takes dy and x in the standard contiguous format.
//
//   gnv validate --plugin build/default/adapters/libtorch_plugin.so --dtype f32,f64 --preset smoke
//
// What libtorch cannot do is reported, not hidden: its c10::Error message becomes the cell's
// error (GNV_ERR_UNSUPPORTED when libtorch says "not implemented", e.g. f16 on the CPU in 1.13).
// The statistics come back in libtorch's type (bf16 for bf16 input in 1.13) and are widened to
// the accumulation type gnv asks for; backward receives gnv's exact mean/rstd converted to x's
// type, which is what libtorch's own autograd passes it.
#include <ATen/ATen.h>
#include <torch/version.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "gnv/plugin.h"

namespace {

at::ScalarType scalar_type(int32_t d) {
  switch (d) {
    case GNV_DTYPE_F64: return at::kDouble;
    case GNV_DTYPE_F32: return at::kFloat;
    case GNV_DTYPE_F16: return at::kHalf;
    default: return at::kBFloat16;
  }
}

// A view of gnv's buffer: no copy, gnv's shape and strides.
at::Tensor wrap(const gnv_buffer* b) {
  std::vector<int64_t> shape(b->shape, b->shape + b->rank), strides(b->strides, b->strides + b->rank);
  return at::from_blob(b->data, shape, strides, at::TensorOptions().dtype(scalar_type(b->dtype)));
}

at::Tensor in_format(const at::Tensor& t) { return t.contiguous(t.suggest_memory_format()); }

int64_t hxw(const gnv_problem* p) {
  int64_t s = 1;
  for (int i = 0; i < p->spatial_rank; ++i) s *= p->spatial[i];
  return s;
}

// libtorch's exceptions end here: a message for gnv and a status.
template <class F> int32_t guarded(const char* what, char* msg, size_t msg_size, F&& f) {
  try {
    f();
    return GNV_OK;
  } catch (const std::exception& e) {
    std::string m = e.what();
    m = m.substr(0, m.find('\n'));  // c10::Error appends a C++ backtrace
    std::snprintf(msg, msg_size, "libtorch %s %s: %s", TORCH_VERSION, what, m.c_str());
    return m.find("not implemented") != std::string::npos ? GNV_ERR_UNSUPPORTED : GNV_ERR_INTERNAL;
  }
}

int32_t forward(const gnv_forward_args* a, char* msg, size_t msg_size) {
  return guarded("forward", msg, msg_size, [&] {
    const gnv_problem* p = a->problem;
    const at::Tensor x = in_format(wrap(a->x));
    const c10::optional<at::Tensor> gamma = p->affine ? c10::optional<at::Tensor>(wrap(a->gamma)) : c10::nullopt;
    const c10::optional<at::Tensor> beta = p->affine ? c10::optional<at::Tensor>(wrap(a->beta)) : c10::nullopt;
    auto [y, mean, rstd] = at::native_group_norm(x, gamma, beta, p->N, p->C, hxw(p), p->G, p->eps);
    wrap(a->y).copy_(y);
    wrap(a->mean).copy_(mean.reshape({p->N, p->G}));
    wrap(a->rstd).copy_(rstd.reshape({p->N, p->G}));
  });
}

int32_t backward(const gnv_backward_args* a, char* msg, size_t msg_size) {
  return guarded("backward", msg, msg_size, [&] {
    const gnv_problem* p = a->problem;
    // As autograd calls it (derivatives.yaml in 1.13: grad and input made .contiguous()): given
    // channels-last tensors, 1.13's CPU backward reads them as if they were contiguous (dx off
    // by a normwise 2.0 on 2x32x8x8 f32 when this plugin passed them as they were).
    const at::Tensor x = wrap(a->x).contiguous(), dy = wrap(a->dy).contiguous();
    const at::Tensor mean = wrap(a->mean).to(x.scalar_type()), rstd = wrap(a->rstd).to(x.scalar_type());
    const c10::optional<at::Tensor> gamma = p->affine ? c10::optional<at::Tensor>(wrap(a->gamma)) : c10::nullopt;
    const bool affine = p->affine != 0;
    auto [dx, dgamma, dbeta] = at::native_group_norm_backward(dy, x, mean, rstd, gamma, p->N, p->C, hxw(p), p->G,
                                                              {true, affine, affine});
    wrap(a->dx).copy_(dx);
    if (affine) {
      wrap(a->dgamma).copy_(dgamma);
      wrap(a->dbeta).copy_(dbeta);
    }
  });
}

const gnv_kernel kKernel = {
    sizeof(gnv_kernel),
    "torch-cpu-plugin",
    "PyTorch CPU GroupNorm through libtorch (at::native_group_norm and its backward)",
    "cpu",
    GNV_DTYPE_BIT(GNV_DTYPE_F64) | GNV_DTYPE_BIT(GNV_DTYPE_F32) | GNV_DTYPE_BIT(GNV_DTYPE_F16) |
        GNV_DTYPE_BIT(GNV_DTYPE_BF16),
    GNV_LAYOUT_BIT(GNV_LAYOUT_NCHW) | GNV_LAYOUT_BIT(GNV_LAYOUT_NHWC),
    0,  // not promised deterministic: libtorch's CPU reductions split work by thread count
    forward,
    backward,
    0,  // no fused epilogue: the SiLU composites are judged through torch_runner.py (issue 21)
    0,  // per-channel gamma and beta only
};

}  // namespace

extern "C" __attribute__((visibility("default"))) uint32_t gnv_plugin_abi_version(void) {
  return GNV_PLUGIN_ABI_VERSION;
}
extern "C" __attribute__((visibility("default"))) const gnv_kernel* gnv_plugin_kernel(void) { return &kKernel; }
