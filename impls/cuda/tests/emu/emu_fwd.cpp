// The CUDA sources fwd_<dtype>.cu compiled by the host compiler against the emulation (cuda_emu.h).
#include "../../fwd_f64.cu"
#include "../../fwd_f32.cu"
#include "../../fwd_f16.cu"
#include "../../fwd_bf16.cu"
