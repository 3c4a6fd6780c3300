# mandala_track_versions(<target> [ROOT <dir>] [EXCLUDE <dir>...])
#
# Versions the target's ops by their code: at build time, mandala-fingerprint parses the
# target's translation units with libclang (through compile_commands.json) and finds, for every
# mandala::op("name", ...) declaration, the project code the op can reach; a generated source,
# compiled into the target, registers these fingerprints. Code below ROOT (default: the top
# source directory) counts as the project's, except below EXCLUDE directories and the build
# directory. Installed with the mandala package (find_package(mandala) provides it).
# See docs/versioning.md.

function(mandala_track_versions target)
  cmake_parse_arguments(ARG "" "ROOT" "EXCLUDE" ${ARGN})
  if(NOT TARGET ${target})
    message(FATAL_ERROR "mandala_track_versions: ${target} is not a target")
  endif()
  if(NOT TARGET mandala::fingerprint)
    message(WARNING "mandala_track_versions(${target}): this mandala was built without mandala-fingerprint "
                    "(MANDALA_BUILD_FINGERPRINT=OFF); the ops of ${target} are versioned only by OpOptions::version")
    return()
  endif()
  if(NOT CMAKE_GENERATOR MATCHES "Ninja|Makefiles")
    message(FATAL_ERROR "mandala_track_versions needs compile_commands.json, which only the Ninja and Makefile "
                        "generators write (generator: ${CMAKE_GENERATOR})")
  endif()
  if(NOT ARG_ROOT)
    set(ARG_ROOT "${CMAKE_SOURCE_DIR}")
  endif()
  set_property(TARGET ${target} PROPERTY EXPORT_COMPILE_COMMANDS ON)

  get_target_property(src_dir ${target} SOURCE_DIR)
  get_target_property(sources ${target} SOURCES)
  set(units "")
  foreach(src IN LISTS sources)
    if(src MATCHES "\\$<" OR NOT src MATCHES "\\.(cpp|cc|cxx|c\\+\\+|C)$")
      continue()
    endif()
    get_filename_component(abs "${src}" ABSOLUTE BASE_DIR "${src_dir}")
    list(APPEND units "${abs}")
  endforeach()

  set(out "${CMAKE_CURRENT_BINARY_DIR}/mandala_versions/${target}_fingerprints.cpp")
  set(excludes "${CMAKE_BINARY_DIR}" ${ARG_EXCLUDE})
  if(_MANDALA_INCLUDE_DIR)
    list(APPEND excludes "${_MANDALA_INCLUDE_DIR}")
  endif()
  set(exclude_args "")
  foreach(dir IN LISTS excludes)
    list(APPEND exclude_args --exclude "${dir}")
  endforeach()
  add_custom_command(
    OUTPUT "${out}"
    COMMAND mandala::fingerprint --compile-commands "${CMAKE_BINARY_DIR}" --root "${ARG_ROOT}" ${exclude_args}
            --output "${out}" --json "${out}.json" --depfile "${out}.d" ${units}
    DEPENDS ${units} mandala::fingerprint "${CMAKE_BINARY_DIR}/compile_commands.json"
    DEPFILE "${out}.d"
    COMMENT "Fingerprinting the ops of ${target}"
    VERBATIM)
  target_sources(${target} PRIVATE "${out}")
endfunction()
