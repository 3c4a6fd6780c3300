#pragma once
// Large values without large allocations: SQLite's length limit lowered for the duration of a
// test (values above it go to blob files, also in memory), and TMPDIR set for a scope (where an
// in-memory store keeps those files).

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>

#include "store/sqlite/sqlite.hpp"

namespace mandala::testing {

/// Stores opened while this lives accept at most `bytes` per SQLite string, blob or row.
class LengthLimit {
 public:
  explicit LengthLimit(std::int64_t bytes) { store::sql::set_length_limit_for_tests(bytes); }
  ~LengthLimit() { store::sql::set_length_limit_for_tests(0); }
  LengthLimit(const LengthLimit&) = delete;
  LengthLimit& operator=(const LengthLimit&) = delete;
};

/// TMPDIR is `value` while this lives, then what it was.
class ScopedTmpdir {
 public:
  explicit ScopedTmpdir(const std::string& value) {
    if (const char* old = std::getenv("TMPDIR")) m_old = old;
    ::setenv("TMPDIR", value.c_str(), 1);
  }
  ~ScopedTmpdir() {
    if (m_old) ::setenv("TMPDIR", m_old->c_str(), 1);
    else ::unsetenv("TMPDIR");
  }
  ScopedTmpdir(const ScopedTmpdir&) = delete;
  ScopedTmpdir& operator=(const ScopedTmpdir&) = delete;

 private:
  std::optional<std::string> m_old;
};

}  // namespace mandala::testing
