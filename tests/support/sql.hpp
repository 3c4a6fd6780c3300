#pragma once
// Raw SQL on a store file through a separate SQLite connection (tests that damage or inspect a
// store behind the library's back).

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <string>

namespace mandala::testing {

/// Runs the statements; fails the test when SQLite refuses them.
inline void sql(const std::filesystem::path& db, const std::string& statements) {
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &raw), SQLITE_OK);
  char* err = nullptr;
  const int rc = sqlite3_exec(raw, statements.c_str(), nullptr, nullptr, &err);
  const std::string msg = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(raw);
  ASSERT_EQ(rc, SQLITE_OK) << msg;
}

}  // namespace mandala::testing
