// Backward kernels and pipelines for f16 (see bwd.cuh).
#include "bwd.cuh"

namespace gnv::cuda::detail {
template void run_backward_t<kF16>(const Plan&, Args, cudaStream_t);
template bool fused_fits_backward_t<kF16>(const Plan&, bool, bool);
}  // namespace gnv::cuda::detail
