# Third-party kernels (include/gnv/external.h): the plugin host, the external-runner driver and
# its output reader. Part of gnv_core, so the CLI, the tests and the fuzz targets share them.
target_sources(gnv_core PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/process.cpp
  ${CMAKE_CURRENT_LIST_DIR}/plugin_host.cpp
  ${CMAKE_CURRENT_LIST_DIR}/runner.cpp)
target_link_libraries(gnv_core PRIVATE ${CMAKE_DL_LIBS})
