// Forward kernels and pipelines for bf16 (see fwd.cuh).
#include "fwd.cuh"

namespace gnv::cuda::detail {
template void run_forward_t<kBF16>(const Plan&, Args, cudaStream_t);
template bool fused_fits_forward_t<kBF16>(const Plan&);
}  // namespace gnv::cuda::detail
