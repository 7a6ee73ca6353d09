# `cmake --install build --prefix P`: the binary, the library, the public headers and a CMake package
# config (find_package(gaft) then target_link_libraries(x gaft::gaft_core)).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
install(TARGETS gaft gaft_core EXPORT gaftTargets
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY include/gaft DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")
install(EXPORT gaftTargets NAMESPACE gaft:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/gaft)
configure_package_config_file(cmake/gaftConfig.cmake.in ${CMAKE_BINARY_DIR}/gaftConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/gaft)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/gaftConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/gaftConfig.cmake ${CMAKE_BINARY_DIR}/gaftConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/gaft)
