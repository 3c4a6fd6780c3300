#pragma once
// Readable C++ type names for error messages.

#include <cxxabi.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <typeinfo>

namespace mandala::util {
/// The demangled name of `type` ("std::vector<double>"), or the raw name if demangling fails.
inline std::string type_name(const std::type_info& type) {
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> name(abi::__cxa_demangle(type.name(), nullptr, nullptr, &status),
                                                   &std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(type.name());
}
}  // namespace mandala::util
