// Forward kernels and pipelines for f32 (see fwd.cuh).
#include "fwd.cuh"

namespace gnv::cuda::detail {
template void run_forward_t<kF32>(const Plan&, Args, cudaStream_t);
template bool fused_fits_forward_t<kF32>(const Plan&);
}  // namespace gnv::cuda::detail
