// The registered `cuda` implementation over the emulated kernels (tests without a GPU).
#include "../../cuda_impl.cpp"
