#pragma once
// The one exception family of the library. A miss is std::optional, never an Error.

#include <stdexcept>
#include <string>
#include <string_view>

#include "mandala/export.hpp"

namespace mandala {

/// What kind of failure an Error reports; stable across versions (scripts may switch on it).
enum class Errc {
  invalid_argument,       ///< an impossible op declaration, a bad argument, a bad id
  decode,                 ///< bytes that are not a valid encoded value, or not of the expected type
  not_found,              ///< an id or op that the storage does not hold
  new_calls_not_allowed,  ///< allow_new_calls(false) and the call is not memoized
  io,                     ///< the file system or SQLite failed (disk full, permissions, ...)
  corrupt_store,          ///< a file that is not a readable SQLite database, or damaged contents
  foreign_database,       ///< an SQLite database that is not a mandala store
  schema_mismatch,        ///< a mandala store of another schema version or encoding
  closed,                 ///< the storage behind a lazy ref was closed
  output_mismatch,        ///< a stored call's outputs do not match the op's declared outputs
  code_changed,           ///< an op's tracked code changed and StorageOptions::on_code_change is error
};

/// Name of an Errc ("decode", "io", ...).
MANDALA_API std::string_view to_string(Errc code) noexcept;

class MANDALA_API Error : public std::runtime_error {
 public:
  Error(Errc code, const std::string& message);
  [[nodiscard]] Errc code() const noexcept { return m_code; }

 private:
  Errc m_code;
};

}  // namespace mandala
