# Every dependency is a Debian package (see .ci/run for the list); nothing is downloaded.
find_package(Threads REQUIRED)
find_package(SQLite3 REQUIRED)
# libmsgpack-cxx-dev installs its config as msgpack-config.cmake (target msgpackc-cxx).
find_package(msgpack REQUIRED CONFIG)
find_package(PkgConfig REQUIRED)
# Debian's libxxhash-dev ships no CMake config, only a pkg-config file.
pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)
# The PostgreSQL backend (src/store/postgres): libpq from libpq-dev, found through pkg-config.
pkg_check_modules(LIBPQ REQUIRED IMPORTED_TARGET libpq)
find_package(nlohmann_json REQUIRED CONFIG)
# Code versioning: libclang (Debian libclang-14-dev) for mandala-fingerprint, CLI11 for its
# command line, dtl (libdtl-dev, header-only) for diffs in the library.
if(MANDALA_BUILD_FINGERPRINT)
  # Only libclang's stable C API is used: no need for Clang's CMake package (and its many targets).
  find_path(LIBCLANG_INCLUDE_DIR clang-c/Index.h HINTS /usr/lib/llvm-14/include REQUIRED)
  find_library(LIBCLANG_LIBRARY NAMES clang-14 clang HINTS /usr/lib/llvm-14/lib REQUIRED)
  find_package(CLI11 REQUIRED CONFIG)
endif()
find_path(DTL_INCLUDE_DIR dtl/dtl.hpp REQUIRED)
