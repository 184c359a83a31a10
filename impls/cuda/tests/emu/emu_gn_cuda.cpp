// The CUDA source gn_cuda.cu compiled by the host compiler against the emulation (cuda_emu.h).
#include "../../gn_cuda.cu"
