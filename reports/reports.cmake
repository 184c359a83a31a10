# The report model, its writers and readers, presets and the shared-oracle check: compiled into
# gnv_core so the CLI and the unit tests see the same code. Included from the root CMakeLists.
file(GLOB GNV_REPORT_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*.cpp)
target_sources(gnv_core PRIVATE ${GNV_REPORT_SOURCES})

# What report.json states about the build. The flags are the ones every gnv source is built with:
# the build type's, the global ones and the directory's compile options (-ffp-contract=off ...).
string(TOUPPER "${CMAKE_BUILD_TYPE}" _gnv_bt)
get_directory_property(_gnv_opts DIRECTORY ${CMAKE_SOURCE_DIR} COMPILE_OPTIONS)
list(JOIN _gnv_opts " " _gnv_opts)
string(STRIP "${CMAKE_CXX_FLAGS} ${CMAKE_CXX_FLAGS_${_gnv_bt}} ${_gnv_opts}" GNV_BUILD_CXX_FLAGS)
set(GNV_BUILD_COMPILER "${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION}")
set(GNV_BUILD_TYPE "${CMAKE_BUILD_TYPE}")
set(GNV_BUILD_VERSION "${PROJECT_VERSION}")
set(GNV_SOURCE_DIR "${CMAKE_SOURCE_DIR}")
configure_file(${CMAKE_CURRENT_LIST_DIR}/build_info.h.in
               ${CMAKE_BINARY_DIR}/generated/gnv_build_info.h @ONLY ESCAPE_QUOTES)
target_include_directories(gnv_core PRIVATE ${CMAKE_BINARY_DIR}/generated)

# The CI regression gate: the ci preset against the committed baseline (README "Regression
# gate"). `gnv compare` exits 1 on a regression and 2 on a baseline of another grid or schema.
if(GNV_BUILD_TESTS)
  enable_testing()
  add_test(NAME baseline_gate
           COMMAND gnv sweep --preset ci --jobs 2 --no-html
                   --baseline ${CMAKE_SOURCE_DIR}/baselines/ci.json
                   --out ${CMAKE_BINARY_DIR}/baseline-gate)
  set_tests_properties(baseline_gate PROPERTIES LABELS "gate" TIMEOUT 1800)
endif()
