# The CUDA kernels (C++17: CMake 3.25 knows no C++20 flag for nvcc) as a static library that needs nothing but the CUDA runtime (CUDA::cudart_static),
# shared by the main build (impls/cuda/cuda.cmake) and the standalone GPU project (bench/gpu/), so
# the device check builds where only nvcc and CMake exist. The caller has enabled CUDA and found
# CUDAToolkit.
set(GNV_CUDA_DIR ${CMAKE_CURRENT_LIST_DIR})

# One translation unit per direction and dtype: the kernel variants compile in parallel.
set(GNV_CUDA_SOURCES ${GNV_CUDA_DIR}/gn_cuda.cu)
foreach(dir IN ITEMS fwd bwd)
  foreach(dt IN ITEMS f64 f32 f16 bf16)
    list(APPEND GNV_CUDA_SOURCES ${GNV_CUDA_DIR}/${dir}_${dt}.cu)
  endforeach()
endforeach()

# sm_90 machine code plus compute_90 PTX, unless the user chose architectures.
if(NOT GNV_CUDA_ARCHS)
  set(GNV_CUDA_ARCHS "90-real;90-virtual")
endif()

# The fused kernels keep a whole group in registers (docs/implementations.md "CUDA"): a spill, or an array the
# compiler puts in local memory, would add DRAM traffic that no test sees and the device check would
# only show as lost bandwidth. ptxas turns both into build errors here, so a change that causes one
# fails CI without a GPU. Measured with sm_90 and nvcc 13.0: every kernel 0 bytes of stack, at most
# 126 registers (the cap of __launch_bounds__(256, 2) is 128). Other architectures may allocate
# differently: turn this OFF to build for them anyway.
option(GNV_CUDA_NO_SPILLS "Fail the CUDA build when a kernel spills registers or uses local memory" ON)

# name: the target; include_root: the directory holding gnv/welford.h.
function(gnv_add_cuda_library name include_root)
  add_library(${name} STATIC ${GNV_CUDA_SOURCES})
  # The root directory's add_compile_options are GCC flags that nvcc does not accept; the host
  # half of the .cu files gets the same warnings and numerics through -Xcompiler instead.
  set_property(TARGET ${name} PROPERTY COMPILE_OPTIONS "")
  # --fmad=false: no contraction behind our back (the project's -ffp-contract=off); the kernels
  # write fma() where they want one. -lineinfo: compute-sanitizer reports source lines.
  target_compile_options(${name} PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:--fmad=false -lineinfo -Xcompiler=-Wall,-Wextra,-ffp-contract=off,-fno-fast-math>)
  if(GNV_CUDA_NO_SPILLS)
    target_compile_options(${name} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xptxas=-warn-spills,-warn-lmem-usage,-Werror>)
  endif()
  target_include_directories(${name} PUBLIC ${GNV_CUDA_DIR} PRIVATE ${include_root})
  # Static runtime: a carried binary runs wherever the driver is, with no libcudart to find.
  target_link_libraries(${name} PUBLIC CUDA::cudart_static)
  set_target_properties(${name} PROPERTIES
    CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON CUDA_EXTENSIONS OFF
    CUDA_ARCHITECTURES "${GNV_CUDA_ARCHS}")
endfunction()
