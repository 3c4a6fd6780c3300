#pragma once
// Small RAII layer over the SQLite C API: a connection, prepared statements, transactions.

#include <sqlite3.h>

#include <chrono>
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

/// Throws the Error matching an SQLite result code, naming what was being done, the database file
/// (the connection's, else `file`), the operating system's cause where SQLite keeps it, and what
/// to do. Lock contention (SQLITE_BUSY, SQLITE_LOCKED) throws Busy, which retry_while_busy()
/// retries.
[[noreturn]] void throw_sqlite(sqlite3* db, int rc, std::string_view doing, std::string_view file = {});

/// Another connection held a lock SQLite needed (Errc::io once the wait gives up).
class Busy : public Error {
 public:
  using Error::Error;
};

/// How long a connection waits for other connections' locks, and how: exponential backoff with
/// jitter (0.1 ms doubling up to 50 ms, each sleep a random 50-100% of that), so contending
/// processes do not retry in lockstep.
class Backoff {
 public:
  explicit Backoff(std::chrono::milliseconds timeout) : m_timeout(timeout) {}
  /// Sleeps before attempt `attempt` (0 = first retry) of a wait that began at `start`; false
  /// when the timeout has passed (then the caller gives up).
  [[nodiscard]] bool wait(int attempt, std::chrono::steady_clock::time_point start) const;
  [[nodiscard]] std::chrono::milliseconds timeout() const { return m_timeout; }

 private:
  std::chrono::milliseconds m_timeout;
};

/// The longest string, blob or table row the connection accepts (SQLite's SQLITE_LIMIT_LENGTH,
/// about 1 GB by default). A value whose row would be longer is kept in a blob file.
[[nodiscard]] std::int64_t length_limit(sqlite3* db);

/// Test hook: connections configured by configure_limits() after this call accept at most
/// `bytes` per string, blob or row (0: SQLite's own limit), so tests reach the limit with small
/// values.
void set_length_limit_for_tests(std::int64_t bytes) noexcept;

/// Applies the limit set by set_length_limit_for_tests() (if any) to a new connection.
void configure_limits(sqlite3* db);

/// Installs the backoff as the connection's busy handler: SQLite then waits for locks itself.
/// `backoff` must outlive the connection.
void install_busy_handler(sqlite3* db, const Backoff& backoff);

/// Runs `attempt` (a whole transaction, or a whole read) again while it throws Busy: some
/// contention SQLite reports without calling the busy handler (a database being recovered or
/// initialized by another process). `reset` runs before each retry (end a read snapshot, ...).
/// After the timeout the last Busy propagates, as Errc::io naming the wait.
template <class F, class R>
auto retry_while_busy(const Backoff& backoff, F&& attempt, R&& reset) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0;; ++i) {
    try {
      return attempt();
    } catch (const Busy& e) {
      reset();
      if (!backoff.wait(i, start))
        throw Error(Errc::io, std::string(e.what()) + " (gave up after waiting " +
                                  std::to_string(backoff.timeout().count()) +
                                  " ms; StorageOptions::lock_timeout sets the wait)");
    }
  }
}

/// A prepared statement. Bound text and blobs are not copied: they must stay alive until the
/// statement has been stepped (bind and step in one expression, or keep the data around).
/// A bind SQLite refuses (a blob or text above the length limit, a parameter out of range)
/// throws, as does any failing step or reset: no parameter is ever silently left NULL.
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
  /// reset() for destructors and error paths: errors are ignored (the statement is rewound
  /// anyway).
  void reset_quietly() noexcept;

  [[nodiscard]] std::int64_t int64(int col) const;
  [[nodiscard]] std::string text(int col) const;
  [[nodiscard]] Id id(int col) const;
  [[nodiscard]] std::vector<std::byte> blob(int col) const;
  /// The column's bytes without a copy; valid until the next step or reset.
  [[nodiscard]] std::span<const std::byte> blob_view(int col) const;
  [[nodiscard]] bool is_null(int col) const;

 private:
  /// Rewinds before the first bind of a new execution.
  void rewind_for_binding();
  /// Throws when a bind failed (rc is sqlite3_bind_*'s result).
  void check_bind(int rc, int index) const;

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
