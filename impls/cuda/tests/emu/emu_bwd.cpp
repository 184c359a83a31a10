// The CUDA sources bwd_<dtype>.cu compiled by the host compiler against the emulation (cuda_emu.h).
#include "../../bwd_f64.cu"
#include "../../bwd_f32.cu"
#include "../../bwd_f16.cu"
#include "../../bwd_bf16.cu"
