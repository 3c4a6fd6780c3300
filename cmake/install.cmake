# `cmake --install` layout: the library (with SONAME), the public headers, a relocatable CMake
# package (find_package(mandala CONFIG) -> mandala::mandala) and a relocatable mandala.pc.
# Included by the top-level CMakeLists.txt when MANDALA_INSTALL is on.
include(CMakePackageConfigHelpers)

set(MANDALA_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/mandala"
    CACHE STRING "Where mandalaConfig.cmake is installed, relative to the prefix")

install(TARGETS mandala
  EXPORT mandalaTargets
  RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT Runtime
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT Runtime NAMELINK_COMPONENT Development
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT Development)
# (The include directory comes from the target's $<INSTALL_INTERFACE:...> in src/CMakeLists.txt.)

# mandala-fingerprint, for mandala_track_versions in consumer projects.
if(TARGET mandala_fingerprint)
  set_target_properties(mandala_fingerprint PROPERTIES EXPORT_NAME fingerprint)
  install(TARGETS mandala_fingerprint EXPORT mandalaTargets RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}"
          COMPONENT Development)
endif()

install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/mandala"
  DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
  COMPONENT Development
  FILES_MATCHING PATTERN "*.hpp")

install(EXPORT mandalaTargets
  NAMESPACE mandala::
  FILE mandalaTargets.cmake
  DESTINATION "${MANDALA_INSTALL_CMAKEDIR}"
  COMPONENT Development)

# The private dependencies (SQLite, xxhash; msgpack and nlohmann_json are header-only and used
# in the sources only) are linked into the shared library, so consumers need only Threads. A
# static libmandala carries them as link-only dependencies: its config then finds them too.
get_target_property(_mandala_type mandala TYPE)
if(_mandala_type STREQUAL "STATIC_LIBRARY")
  set(MANDALA_STATIC ON)
else()
  set(MANDALA_STATIC OFF)
endif()

configure_package_config_file(
  "${CMAKE_CURRENT_LIST_DIR}/mandalaConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/mandalaConfig.cmake"
  INSTALL_DESTINATION "${MANDALA_INSTALL_CMAKEDIR}")
# 0.x releases may break the API between minor versions.
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/mandalaConfigVersion.cmake"
  VERSION "${PROJECT_VERSION}"
  COMPATIBILITY SameMinorVersion)
install(FILES "${PROJECT_BINARY_DIR}/mandalaConfig.cmake" "${PROJECT_BINARY_DIR}/mandalaConfigVersion.cmake"
              "${PROJECT_SOURCE_DIR}/cmake/MandalaVersioning.cmake"
  DESTINATION "${MANDALA_INSTALL_CMAKEDIR}"
  COMPONENT Development)

# mandala.pc locates the prefix from its own directory (${pcfiledir}), so it stays right when
# the tree is installed with `cmake --install --prefix DIR` or moved afterwards.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(MANDALA_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH _mandala_pc_up "/prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/prefix")
  string(REGEX REPLACE "/$" "" _mandala_pc_up "${_mandala_pc_up}")
  set(MANDALA_PC_PREFIX "\${pcfiledir}/${_mandala_pc_up}")
endif()
foreach(_dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${_dir}}")
    set(MANDALA_PC_${_dir} "${CMAKE_INSTALL_${_dir}}")
  else()
    set(MANDALA_PC_${_dir} "\${prefix}/${CMAKE_INSTALL_${_dir}}")
  endif()
endforeach()
configure_file("${CMAKE_CURRENT_LIST_DIR}/mandala.pc.in" "${PROJECT_BINARY_DIR}/mandala.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/mandala.pc"
  DESTINATION "${CMAKE_INSTALL_LIBDIR}/pkgconfig"
  COMPONENT Development)
