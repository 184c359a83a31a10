#pragma once
// The CUDA GroupNorm kernels as a small C++ API, independent of the rest of gnv (no Eigen, fmt or
// JSON), so that the GPU self-test and the benchmark build on a machine that has only nvcc and
// CMake. The registered implementation `cuda` (cuda_impl.cpp) is a thin wrapper over the *_host
// entry points; benchmarks call the device-pointer entry points.
//
// Tensors follow gnv's Problem: x, y, dy, dx are (N, C, S) in nchw or (N, S, C) in nhwc, S the
// flattened spatial size; gamma, beta, dgamma, dbeta are (C), or (N, C) with Desc::per_sample;
// mean and rstd are (N, G) in the accumulation type (f64 for f64, f32 otherwise). gamma/beta may be
// null (1 and 0); dgamma/dbeta may be null (not computed). With the SiLU epilogue the forward
// writes y = silu(gamma xhat + beta) and the backward takes dy of that y (it needs beta).
#include <cstddef>
#include <cstdint>
#include <string>

struct CUstream_st;  // cudaStream_t is CUstream_st*; this header needs no CUDA include

namespace gnv {

// True when a CUDA device that can run these kernels (compute capability 9.0 or newer: the build
// targets sm_90) is visible. Cheap after the first call.
bool cuda_available();
// Why cuda_available() is false ("" when it is true).
std::string cuda_unavailable_reason();

namespace cuda {

enum class DType { f64, f32, f16, bf16 };  // the order of gnv::DType
enum class Layout { nchw, nhwc };
enum class Epilogue { none, silu };  // the order of gnv::Epilogue

struct Desc {
  int64_t N = 1, C = 1, S = 1, G = 1;
  double eps = 1e-5;
  DType dtype = DType::f32;
  Layout layout = Layout::nchw;
  Epilogue epilogue = Epilogue::none;
  bool per_sample = false;  // gamma, beta, dgamma, dbeta of shape (N, C)

  int64_t numel() const { return N * C * S; }
  bool uses_silu() const { return epilogue == Epilogue::silu; }
};

// Bytes of one element, and of one mean/rstd entry.
size_t elem_bytes(DType d);
size_t acc_bytes(DType d);
// Bytes of gamma (beta, dgamma, dbeta): C or N * C elements.
size_t param_bytes(const Desc& d);

// How the work is split (docs/implementations.md "CUDA"). `automatic` runs a group in one launch on a cluster of up
// to 8 blocks when it fits their registers, else the split path; tests force the split path and
// the number of parts to exercise every combine on small problems.
enum class Path { automatic, split };
struct Options {
  Path path = Path::automatic;
  int force_parts = 0;    // blocks per tile (0: the planner's choice)
  int force_threads = 0;  // threads per block, a multiple of 32 (0: the planner's choice)
};
// The options the registered `cuda` implementation uses (tests change them; not thread-safe).
Options& default_options();

// Throws std::invalid_argument naming the field (N < 0, C < 1, G < 1, C % G != 0, S < 1, eps
// negative or not finite, sizes that overflow).
void validate(const Desc& d);

// Scratch bytes forward()/backward() may need for this problem (the worst case over the plans
// they can choose). Throws std::runtime_error when no device is available.
size_t workspace_bytes(const Desc& d, bool backward, const Options& o = {});

// One line describing the plan, e.g. "nchw fused W=4 V=8 T=512 k=4 blocks=2048" (tests, bench).
std::string describe_plan(const Desc& d, bool backward, const Options& o = {});

// Device pointers; asynchronous on `stream`. Throws std::invalid_argument for a bad problem or
// pointers, std::runtime_error (naming the CUDA call, file and line) for any CUDA error.
void forward(const Desc& d, const void* x, const void* gamma, const void* beta, void* y, void* mean,
             void* rstd, void* workspace, size_t workspace_size, CUstream_st* stream = nullptr,
             const Options& o = {});
void backward(const Desc& d, const void* dy, const void* x, const void* mean, const void* rstd,
              const void* gamma, const void* beta, void* dx, void* dgamma, void* dbeta, void* workspace,
              size_t workspace_size, CUstream_st* stream = nullptr, const Options& o = {});

// Host pointers: allocate, copy in, run, copy out, synchronize. The output buffers are copied to
// the device first, so an element the kernels never write comes back as the caller's poison.
void forward_host(const Desc& d, const void* x, const void* gamma, const void* beta, void* y,
                  void* mean, void* rstd, const Options& o = {});
void backward_host(const Desc& d, const void* dy, const void* x, const void* mean, const void* rstd,
                   const void* gamma, const void* beta, void* dx, void* dgamma, void* dbeta,
                   const Options& o = {});

}  // namespace cuda
}  // namespace gnv
