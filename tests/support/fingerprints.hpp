#pragma once
// Code fingerprints for tests of code versioning: registers one op whose code is one function,
// as a program built with mandala_track_versions would.

#include <string>

#include "mandala/codec.hpp"
#include "versioning/components.hpp"

namespace mandala::testing {

/// Replaces every registered fingerprint with one: op `op` reaches the function `function`
/// whose code is `code`. (The registry keeps pointers: the texts live until the next call.)
inline void install_code(const std::string& op, const std::string& function, const std::string& code) {
  versioning::clear_fingerprints();
  static std::string op_name, function_name, text, content;
  op_name = op;
  function_name = function;
  text = code;
  content = detail::content_id(encode_value(text)).hex();
  const detail::GeneratedComponent comps[] = {
      {function_name.c_str(), "function", content.c_str(), "x.cpp", text.c_str()}};
  const unsigned index[] = {0};
  const detail::GeneratedOp ops[] = {{op_name.c_str(), index, 1}};
  detail::register_fingerprints(comps, 1, ops, 1);
}

}  // namespace mandala::testing
