# The CMake package for station software: find_package(ferry) gives ferry::client (ctl/client.h)
# and ferry::protocol, which it links. Everything here installs as the component ferry_dev:
#   cmake --install BUILD --component ferry_dev --prefix PREFIX
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(ferry_install_includedir ${CMAKE_INSTALL_INCLUDEDIR}/ferry)
set(ferry_install_cmakedir ${CMAKE_INSTALL_LIBDIR}/cmake/ferry)

# protocol/ names the repository root as its include directory, which only exists in the build
# tree; installed, its headers sit under include/ferry/protocol.
get_target_property(ferry_protocol_includes ferry_protocol INTERFACE_INCLUDE_DIRECTORIES)
set(ferry_protocol_interface_includes "")
foreach(dir IN LISTS ferry_protocol_includes)
  list(APPEND ferry_protocol_interface_includes "$<BUILD_INTERFACE:${dir}>")
endforeach()
list(APPEND ferry_protocol_interface_includes "$<INSTALL_INTERFACE:${ferry_install_includedir}>")
set_property(TARGET ferry_protocol
  PROPERTY INTERFACE_INCLUDE_DIRECTORIES ${ferry_protocol_interface_includes})

set_target_properties(ferry_client PROPERTIES EXPORT_NAME client)
set_target_properties(ferry_protocol PROPERTIES EXPORT_NAME protocol)
# ferry_warnings only carries our compile flags; it is exported because every target links it
# (as link-only for static libraries, so it never reaches a consumer's compile line).
set_target_properties(ferry_warnings PROPERTIES EXPORT_NAME warnings)

install(TARGETS ferry_client ferry_protocol ferry_warnings
  EXPORT ferryTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT ferry_dev
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT ferry_dev
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT ferry_dev)

file(GLOB ferry_protocol_headers CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/protocol/*.h)
install(FILES ${ferry_protocol_headers}
  DESTINATION ${ferry_install_includedir}/protocol COMPONENT ferry_dev)
install(FILES client.h DESTINATION ${ferry_install_includedir}/ctl COMPONENT ferry_dev)

install(EXPORT ferryTargets
  NAMESPACE ferry::
  DESTINATION ${ferry_install_cmakedir}
  COMPONENT ferry_dev)

configure_package_config_file(ferryConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/ferryConfig.cmake
  INSTALL_DESTINATION ${ferry_install_cmakedir})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/ferryConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${CMAKE_CURRENT_BINARY_DIR}/ferryConfig.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/ferryConfigVersion.cmake
  DESTINATION ${ferry_install_cmakedir}
  COMPONENT ferry_dev)
