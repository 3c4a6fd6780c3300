#pragma once
// Small RAII layer over the SQLite C API: a connection, prepared statements, transactions.

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mandala/error.hpp"
#include "mandala/id.hpp"

namespace mandala::store::sql {

struct DbCloser {
  void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
using DbHandle = std::unique_ptr<sqlite3, DbCloser>;

/// Throws the Error matching an SQLite result code, naming what was being done.
[[noreturn]] void throw_sqlite(sqlite3* db, int rc, std::string_view doing);

/// A prepared statement. Bound text and blobs are not copied: they must stay alive until the
/// statement has been stepped (bind and step in one expression, or keep the data around).
class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int index, std::int64_t v);
  Statement& bind(int index, std::string_view v);
  Statement& bind(int index, const Id& v);
  Statement& bind_blob(int index, std::span<const std::byte> v);
  Statement& bind_null(int index);

  /// Steps once: true when a row is available, false when done.
  bool step();
  /// Steps to completion (for statements returning no rows).
  void run();
  /// Clears bindings and rewinds; done automatically before each first step after completion.
  void reset();

  [[nodiscard]] std::int64_t int64(int col) const;
  [[nodiscard]] std::string text(int col) const;
  [[nodiscard]] Id id(int col) const;
  [[nodiscard]] std::vector<std::byte> blob(int col) const;
  [[nodiscard]] bool is_null(int col) const;

 private:
  sqlite3* m_db;
  sqlite3_stmt* m_stmt = nullptr;
  bool m_done = false;
};

/// BEGIN IMMEDIATE on construction; rolls back in the destructor unless commit() succeeded.
class Transaction {
 public:
  explicit Transaction(sqlite3* db);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();

 private:
  sqlite3* m_db;
  bool m_open = true;
};

void exec(sqlite3* db, const char* sql);

}  // namespace mandala::store::sql
