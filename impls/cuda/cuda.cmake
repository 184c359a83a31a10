# The CUDA implementation `cuda` (optional). Built whenever nvcc is found and GNV_CUDA is ON, so a
# compile error fails CI even on machines without a GPU; its GPU tests (label gpu) exit 77, shown
# as skipped, when no device is visible. Included by the root CMakeLists.txt right after gnv_impls.
include(CheckLanguage)
check_language(CUDA)
if(NOT GNV_CUDA)
  message(STATUS "gnv: CUDA implementation off (GNV_CUDA=OFF)")
  return()
endif()
if(NOT CMAKE_CUDA_COMPILER)
  message(STATUS "gnv: CUDA implementation not built (no CUDA compiler found)")
  return()
endif()

# CMake fixes the architectures when the language is enabled: choose before, keep a user's choice.
if(DEFINED CMAKE_CUDA_ARCHITECTURES AND NOT CMAKE_CUDA_ARCHITECTURES STREQUAL "")
  set(GNV_CUDA_ARCHS "${CMAKE_CUDA_ARCHITECTURES}")
else()
  set(GNV_CUDA_ARCHS "90-real;90-virtual")
  set(CMAKE_CUDA_ARCHITECTURES "${GNV_CUDA_ARCHS}")
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
include(${CMAKE_CURRENT_LIST_DIR}/library.cmake)
message(STATUS "gnv: CUDA implementation on (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, architectures ${GNV_CUDA_ARCHS})")

gnv_add_cuda_library(gnv_cuda ${CMAKE_CURRENT_SOURCE_DIR}/include)
target_sources(gnv_impls PRIVATE ${GNV_CUDA_DIR}/cuda_impl.cpp)
target_link_libraries(gnv_impls PUBLIC gnv_cuda)

# The GPU tests are added at the end of the top-level CMakeLists.txt, after enable_testing().
function(gnv_cuda_gpu_tests)
  if(NOT GNV_BUILD_TESTS)
    return()
  endif()
  find_package(GTest REQUIRED)
  # The harness on the GPU: check_case against the oracle, determinism, agreement with welford.
  add_executable(gnv_cuda_tests ${GNV_CUDA_DIR}/tests/test_gpu.cpp)
  target_link_libraries(gnv_cuda_tests PRIVATE gnv_impls gnv_core GTest::gtest)
  # Self-contained check against a float64 host reference (also built by bench/gpu/ alone).
  add_executable(gnv_cuda_selftest ${GNV_CUDA_DIR}/tests/selftest.cpp)
  target_link_libraries(gnv_cuda_selftest PRIVATE gnv_cuda)
  foreach(part IN ITEMS Oracle Fused Paths Determinism)
    add_test(NAME cuda-gpu-${part} COMMAND gnv_cuda_tests --gtest_filter=*Cuda${part}*)
  endforeach()
  add_test(NAME cuda-gpu-selftest COMMAND gnv_cuda_selftest)
  set_tests_properties(cuda-gpu-Oracle cuda-gpu-Fused cuda-gpu-Paths cuda-gpu-Determinism cuda-gpu-selftest
                       PROPERTIES LABELS gpu SKIP_RETURN_CODE 77)

  # The same kernels compiled by the host compiler against a CPU emulation of the CUDA features
  # they use (tests/emu/cuda_emu.h): their indexing, reductions, cluster exchange and host pipeline
  # are checked here, without a GPU, on small problems (label cuda-emu).
  set(emu ${GNV_CUDA_DIR}/tests/emu)
  add_library(gnv_cuda_emu STATIC ${emu}/cuda_emu.cpp ${emu}/emu_gn_cuda.cpp ${emu}/emu_fwd.cpp ${emu}/emu_bwd.cpp)
  target_compile_definitions(gnv_cuda_emu PUBLIC GNV_CUDA_EMULATE)
  target_include_directories(gnv_cuda_emu PUBLIC ${GNV_CUDA_DIR} ${emu} PRIVATE ${PROJECT_SOURCE_DIR}/include)
  # The kernels' `#pragma unroll` hints are for nvcc; Clang cannot honour some of them on the
  # emulation's loops (which call into the thread emulation) and says so: noise, not a finding.
  target_compile_options(gnv_cuda_emu PRIVATE -Wno-unknown-pragmas $<$<CXX_COMPILER_ID:Clang>:-Wno-pass-failed>)
  add_executable(gnv_cuda_emu_selftest ${GNV_CUDA_DIR}/tests/selftest.cpp)
  target_link_libraries(gnv_cuda_emu_selftest PRIVATE gnv_cuda_emu)
  add_executable(gnv_cuda_emu_tests ${GNV_CUDA_DIR}/tests/test_gpu.cpp ${emu}/emu_cuda_impl.cpp
                 ${PROJECT_SOURCE_DIR}/impls/welford.cpp)
  target_link_libraries(gnv_cuda_emu_tests PRIVATE gnv_cuda_emu gnv_core GTest::gtest)
  add_test(NAME cuda-emu-selftest COMMAND gnv_cuda_emu_selftest --quick)
  add_test(NAME cuda-emu-oracle COMMAND gnv_cuda_emu_tests --gtest_filter=*CudaOracle*)
  add_test(NAME cuda-emu-fused COMMAND gnv_cuda_emu_tests --gtest_filter=*CudaFused*)
  set_tests_properties(cuda-emu-selftest cuda-emu-oracle cuda-emu-fused PROPERTIES LABELS cuda-emu ENVIRONMENT GNV_CUDA_TEST_SMALL=1)
endfunction()
cmake_language(DEFER CALL gnv_cuda_gpu_tests)
