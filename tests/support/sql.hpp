#pragma once
// Raw SQL on a store file through a separate SQLite connection (tests that damage or inspect a
// store behind the library's back).

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <string>

#include "mandala/mandala.hpp"

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

/// The first column of the first row of a query, as hex for blobs and text otherwise (empty for
/// no row or NULL).
inline std::string query(const std::filesystem::path& db, const std::string& q) {
  sqlite3* raw = nullptr;
  EXPECT_EQ(sqlite3_open(db.c_str(), &raw), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(raw, q.c_str(), -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(raw);
  std::string out;
  if (sqlite3_step(st) == SQLITE_ROW) {
    if (sqlite3_column_type(st, 0) == SQLITE_BLOB) {
      const auto* p = static_cast<const unsigned char*>(sqlite3_column_blob(st, 0));
      static const char* digits = "0123456789abcdef";
      for (int i = 0; i < sqlite3_column_bytes(st, 0); ++i) {
        out += digits[p[i] >> 4];
        out += digits[p[i] & 15];
      }
    } else if (const auto* text = sqlite3_column_text(st, 0)) {
      out = reinterpret_cast<const char*>(text);
    }
  }
  sqlite3_finalize(st);
  sqlite3_close(raw);
  return out;
}

/// SQL that gives every call of `s` its content id in its row (a store of schema 6 leaves it
/// empty for calls of raw inputs) and makes calls_by_cid a full index again: schema 5's layout of
/// calls, and every older schema's. The caller sets the schema version.
inline std::string content_ids_as_schema_5(mandala::Storage& s) {
  std::string out;
  for (const auto& op : s.ops())
    for (const auto& c : s.calls_of(op.name, op.version))
      out += "UPDATE calls SET cid = x'" + c.cid.hex() + "' WHERE hid = x'" + c.hid.hex() + "';";
  return out + "DROP INDEX calls_by_cid; CREATE INDEX calls_by_cid ON calls(substr(cid, 1, 8));";
}

/// Turns the call versions of a schema 5 store back into schema 4's layout (a vc_calls table
/// with its trigger instead of calls.semantic and vc_semantics), data included; the caller sets
/// the schema version.
inline const char* const call_versions_as_schema_4 =
    "CREATE TABLE vc_calls(call_id INTEGER PRIMARY KEY, semantic_version BLOB NOT NULL);"
    "INSERT INTO vc_calls SELECT c.id, s.semantic FROM calls c JOIN vc_semantics s ON s.id = c.semantic;"
    "CREATE TRIGGER vc_calls_follow_calls AFTER DELETE ON calls "
    "BEGIN DELETE FROM vc_calls WHERE call_id = old.id; END;"
    "ALTER TABLE calls DROP COLUMN semantic; DROP TABLE vc_semantics;";

}  // namespace mandala::testing
