#pragma once
// RAII over libpq for the PostgreSQL backend: a connection with prepared statements cached by
// their text, binary parameters (ids as bytea, arrays of them for bulk reads and writes) and
// binary results, and errors that say what failed and whether trying again can help.

#include <libpq-fe.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "mandala/error.hpp"
#include "mandala/id.hpp"

namespace mandala::store::pq {

/// A statement the server refused. `sqlstate` is PostgreSQL's five-character error code.
class ServerError : public Error {
 public:
  ServerError(Errc code, const std::string& message, std::string sqlstate)
      : Error(code, message), m_sqlstate(std::move(sqlstate)) {}
  [[nodiscard]] const std::string& sqlstate() const { return m_sqlstate; }
  /// A serialization failure or deadlock: the transaction may succeed when run again.
  [[nodiscard]] bool transient() const;

 private:
  std::string m_sqlstate;
};

/// The connection broke (server restart, network): nothing of the open transaction was
/// committed unless its COMMIT had been sent; the caller reconnects and runs it again.
class ConnectionLost : public Error {
 public:
  explicit ConnectionLost(const std::string& message) : Error(Errc::io, message) {}
};

/// The result of a statement; cells of binary results are read by type.
class Result {
 public:
  Result() = default;
  explicit Result(PGresult* r) : m_result(r) {}
  [[nodiscard]] int rows() const { return PQntuples(m_result.get()); }
  [[nodiscard]] bool is_null(int row, int col) const { return PQgetisnull(m_result.get(), row, col) != 0; }
  [[nodiscard]] std::span<const std::byte> bytes(int row, int col) const;
  /// A 16-byte bytea cell; Errc::corrupt_store for any other length.
  [[nodiscard]] Id id(int row, int col) const;
  /// An int2, int4 or int8 cell.
  [[nodiscard]] std::int64_t integer(int row, int col) const;
  [[nodiscard]] std::string text(int row, int col) const;
  [[nodiscard]] PGresult* get() const { return m_result.get(); }

 private:
  struct Clear {
    void operator()(PGresult* r) const { PQclear(r); }
  };
  std::unique_ptr<PGresult, Clear> m_result;
};

/// Binary parameters of one statement. Views (`bytes_view`) point into the caller's memory,
/// which must outlive the statement's execution; everything else is copied.
class Params {
 public:
  Params& id(const Id& v);
  Params& int64(std::int64_t v);
  Params& int32(std::int32_t v);
  Params& text(std::string_view v);
  Params& bytes_view(std::span<const std::byte> v);
  Params& null();
  /// One-dimensional arrays (bytea[], int8[], int4[], int2[]); `nulls` marks null elements.
  Params& id_array(std::span<const Id> v);
  Params& bytes_array(const std::vector<std::span<const std::byte>>& v, const std::vector<bool>& nulls);
  Params& int64_array(std::span<const std::int64_t> v);
  Params& int32_array(std::span<const std::int32_t> v);
  Params& int16_array(std::span<const std::int16_t> v);
  Params& text_array(std::span<const std::string> v);

  [[nodiscard]] int size() const { return static_cast<int>(m_values.size()); }
  [[nodiscard]] const char* const* values() const { return m_values.data(); }
  [[nodiscard]] const int* lengths() const { return m_lengths.data(); }
  [[nodiscard]] const int* formats() const { return m_formats.data(); }

 private:
  /// A parameter held in `buffer` (moved into m_owned; its data pointer stays valid).
  Params& owned(std::string buffer);
  std::vector<const char*> m_values;
  std::vector<int> m_lengths;
  std::vector<int> m_formats;
  std::vector<std::unique_ptr<std::string>> m_owned;
};

/// One connection to the server. Not thread-safe (the store serializes its use).
class Connection {
 public:
  /// Connects to `conninfo` (a postgresql:// URL or key=value pairs); `shown` names the server
  /// in messages (the location without its password). Errc::io / Errc::not_found with the
  /// server's reason and what to do.
  Connection(std::string conninfo, std::string shown);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// Runs statements given as text (no parameters, text results): DDL, BEGIN, COMMIT.
  void exec(const char* sql);
  /// Runs a parameterized statement (prepared once per connection, keyed by its text) with
  /// binary parameters and binary results.
  Result query(const std::string& sql, const Params& params = {});
  /// Runs a prepared statement like query() and hands each result row to `row` as it arrives
  /// (libpq's single-row mode: a result of millions of rows is never held whole). When `row`
  /// throws, the rest of the result is read and dropped before the exception propagates.
  void stream(const std::string& sql, const Params& params, const std::function<void(const Result&)>& row);
  /// Runs text without preparing it (one-off statements: schema checks, maintenance).
  Result query_once(const std::string& sql, const Params& params = {});

  /// Whether the connection is inside a transaction block (an open BEGIN).
  [[nodiscard]] bool in_transaction() const;
  /// Rolls back an open transaction, ignoring errors (the connection may be gone).
  void rollback_quietly() noexcept;
  /// Connects again after ConnectionLost (prepared statements are prepared again as used).
  void reconnect();
  [[nodiscard]] bool broken() const;
  /// Inside stream(): rows are still arriving.
  [[nodiscard]] bool streaming() const { return m_streaming; }
  [[nodiscard]] const std::string& shown() const { return m_shown; }
  [[nodiscard]] PGconn* get() const { return m_conn.get(); }

  /// The connection's socket, to wait on for notifications (-1 when not connected).
  [[nodiscard]] int socket() const { return m_conn ? PQsocket(m_conn.get()) : -1; }
  /// Reads what the server sent without blocking and returns the payloads of the notifications
  /// (LISTEN) received so far, in order. ConnectionLost when the connection broke.
  std::vector<std::string> take_notifications();

 private:
  void connect();
  /// The name of the prepared statement of `sql`, preparing it on first use.
  const std::string& prepared(const std::string& sql);
  /// Throws the error a failed result describes (ConnectionLost when the connection broke).
  Result checked(PGresult* raw, std::string_view what);
  struct Finish {
    void operator()(PGconn* c) const { PQfinish(c); }
  };
  std::string m_conninfo;
  std::string m_shown;
  std::unique_ptr<PGconn, Finish> m_conn;
  void require_idle() const;
  bool m_streaming = false;                                 ///< inside stream(): no other statement may run
  std::unordered_map<std::string, std::string> m_prepared;  ///< statement text -> its name
};

}  // namespace mandala::store::pq
