# cmake -P script run by the install.consumer test (see CMakeLists.txt here for the arguments).
cmake_minimum_required(VERSION 3.25)

foreach(var MANDALA_BUILD_DIR CONSUMER_SOURCE_DIR WORK_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "install_test.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT BUILD_CONFIG)
  set(BUILD_CONFIG Release)
endif()

function(run)
  cmake_parse_arguments(RUN "" "WHAT;OUTPUT" "" ${ARGN})
  execute_process(COMMAND ${RUN_UNPARSED_ARGUMENTS}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    list(JOIN RUN_UNPARSED_ARGUMENTS " " cmd)
    message(FATAL_ERROR "${RUN_WHAT} failed (${rc}):\n  ${cmd}\n${out}")
  endif()
  message(STATUS "${RUN_WHAT}: ok")
  if(RUN_OUTPUT)
    set(${RUN_OUTPUT} "${out}" PARENT_SCOPE)
  endif()
endfunction()

set(prefix "${WORK_DIR}/prefix")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

# 1. Install the build tree.
run(WHAT "cmake --install" "${CMAKE_COMMAND}" --install "${MANDALA_BUILD_DIR}" --config "${BUILD_CONFIG}"
    --prefix "${prefix}")

# 2. The installed public headers include only the standard library and other mandala headers.
file(GLOB_RECURSE headers "${prefix}/include/mandala/*")
if(NOT headers)
  message(FATAL_ERROR "no headers installed under ${prefix}/include/mandala")
endif()
foreach(header IN LISTS headers)
  file(STRINGS "${header}" includes REGEX "^[ \t]*#[ \t]*include")
  foreach(line IN LISTS includes)
    if(NOT line MATCHES "^[ \t]*#[ \t]*include[ \t]*(<[a-z_]+>|\"mandala/[^\"]+\")")
      message(FATAL_ERROR "installed header ${header} includes a non-standard header: ${line}")
    endif()
  endforeach()
endforeach()

# 3. find_package(mandala CONFIG) against the prefix only (no package registries).
set(build "${WORK_DIR}/consumer-cmake")
run(WHAT "configure the consumer" "${CMAKE_COMMAND}" -S "${CONSUMER_SOURCE_DIR}" -B "${build}" -G "${GENERATOR}"
    "-DCMAKE_BUILD_TYPE=${BUILD_CONFIG}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}" "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}"
    "-DCMAKE_PREFIX_PATH=${prefix}" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
    -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)
file(STRINGS "${build}/CMakeCache.txt" found_dir REGEX "^mandala_DIR:")
string(FIND "${found_dir}" "${prefix}/" at)
if(NOT at GREATER 0)
  message(FATAL_ERROR "the consumer found mandala outside the install prefix: ${found_dir}")
endif()
run(WHAT "build the consumer" "${CMAKE_COMMAND}" --build "${build}" --config "${BUILD_CONFIG}")
set(exe "${build}/consumer")
if(NOT EXISTS "${exe}" AND EXISTS "${build}/${BUILD_CONFIG}/consumer")
  set(exe "${build}/${BUILD_CONFIG}/consumer")
endif()
run(WHAT "run the CMake-built consumer" "${exe}" OUTPUT out)
message(STATUS "${out}")

# 4. The same program built with `pkg-config --cflags --libs mandala`.
find_program(PKG_CONFIG_EXECUTABLE NAMES pkg-config pkgconf REQUIRED)
set(ENV{PKG_CONFIG_PATH} "")
set(ENV{PKG_CONFIG_LIBDIR} "")
file(GLOB_RECURSE pc_files "${prefix}/*/mandala.pc")
if(NOT pc_files)
  message(FATAL_ERROR "no mandala.pc installed under ${prefix}")
endif()
list(GET pc_files 0 pc_file)
get_filename_component(pc_dir "${pc_file}" DIRECTORY)
set(ENV{PKG_CONFIG_PATH} "${pc_dir}")
run(WHAT "pkg-config --cflags --libs mandala" "${PKG_CONFIG_EXECUTABLE}" --cflags --libs mandala OUTPUT pc_flags)
run(WHAT "pkg-config --variable=libdir mandala" "${PKG_CONFIG_EXECUTABLE}" --variable=libdir mandala OUTPUT pc_libdir)
string(STRIP "${pc_flags}" pc_flags)
string(STRIP "${pc_libdir}" pc_libdir)
separate_arguments(pc_flags UNIX_COMMAND "${pc_flags}")
separate_arguments(extra_flags UNIX_COMMAND "${CXX_FLAGS}")
set(pc_exe "${WORK_DIR}/consumer-pkg-config")
run(WHAT "compile the consumer with pkg-config flags" "${CXX_COMPILER}" -std=c++20 ${extra_flags}
    "${CONSUMER_SOURCE_DIR}/main.cpp" ${pc_flags} "-Wl,-rpath,${pc_libdir}" -o "${pc_exe}")
run(WHAT "run the pkg-config-built consumer" "${pc_exe}" OUTPUT out)
message(STATUS "${out}")
