#include "mandala/error.hpp"

namespace mandala {

std::string_view to_string(Errc code) noexcept {
  switch (code) {
    case Errc::invalid_argument: return "invalid_argument";
    case Errc::decode: return "decode";
    case Errc::not_found: return "not_found";
    case Errc::new_calls_not_allowed: return "new_calls_not_allowed";
    case Errc::io: return "io";
    case Errc::corrupt_store: return "corrupt_store";
    case Errc::foreign_database: return "foreign_database";
    case Errc::schema_mismatch: return "schema_mismatch";
    case Errc::closed: return "closed";
    case Errc::output_mismatch: return "output_mismatch";
    case Errc::code_changed: return "code_changed";
  }
  return "unknown";
}

Error::Error(Errc code, const std::string& message) : std::runtime_error(message), m_code(code) {}

}  // namespace mandala
