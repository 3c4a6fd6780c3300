# Every dependency is a Debian package (see .ci/run for the list); nothing is downloaded.
find_package(Threads REQUIRED)
find_package(SQLite3 REQUIRED)
# libmsgpack-cxx-dev installs its config as msgpack-config.cmake (target msgpackc-cxx).
find_package(msgpack REQUIRED CONFIG)
find_package(PkgConfig REQUIRED)
# Debian's libxxhash-dev ships no CMake config, only a pkg-config file.
pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)
find_package(nlohmann_json REQUIRED CONFIG)
