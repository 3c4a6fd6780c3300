#pragma once
// The PostgreSQL server of the tests and throwaway databases on it (tests/support/postgres.cpp).
//
// The server is the one MANDALA_TEST_POSTGRES names (a developer's own, e.g.
// `postgresql://me@localhost:5432`), else the one the ctest fixture `postgres` started
// (scripts/postgres-server, its URL in the build tree's postgres/url). Server URLs are
// `postgresql://USER@HOST:PORT[/DATABASE][?PARAMS]`: a database in it is where databases are
// created from (default `postgres`), PARAMS are kept in every URL derived from it.

#include <memory>
#include <optional>
#include <string>

struct pg_conn;  // libpq's PGconn

namespace mandala::testing {

/// The URL of the test server, or nullopt when none is known (MANDALA_TEST_POSTGRES unset or
/// empty, and no URL written by the fixture).
[[nodiscard]] std::optional<std::string> postgres_server_url();
/// Where postgres_server_url() comes from, for messages ("MANDALA_TEST_POSTGRES" or the file).
[[nodiscard]] std::string postgres_server_origin();
/// How to give the tests a server (for skip and failure messages).
[[nodiscard]] std::string postgres_server_hint();
/// True when MANDALA_REQUIRE_POSTGRES=1: tests that need a server fail instead of skipping.
[[nodiscard]] bool postgres_required();
/// The URL of database `name` on the server of `server_url` (its user, host, port, parameters).
[[nodiscard]] std::string postgres_database_url(const std::string& server_url, const std::string& name);

/// One connection (libpq), closed by the destructor. Throws std::runtime_error naming the URL
/// and the server's message when it cannot connect.
class PostgresConnection {
 public:
  explicit PostgresConnection(const std::string& url);
  ~PostgresConnection();
  PostgresConnection(const PostgresConnection&) = delete;
  PostgresConnection& operator=(const PostgresConnection&) = delete;
  /// Runs SQL (one or more statements); the first column of the first row of the last result,
  /// as text ("" for no row or NULL). Throws std::runtime_error with the server's message.
  std::string query(const std::string& sql);
  /// The server's version as a number (150018 for 15.18).
  [[nodiscard]] int server_version() const;
  /// Whether a database of that name exists on this server.
  [[nodiscard]] bool database_exists(const std::string& name);

 private:
  struct Close {
    void operator()(pg_conn* c) const;
  };
  std::string m_url;
  std::unique_ptr<pg_conn, Close> m_conn;
};

/// A fresh, empty database with a name of its own (`mandala_test_PID_COUNTER_RANDOM`), dropped
/// by the destructor (`DROP DATABASE ... WITH (FORCE)`, closing connections still open to it).
/// The constructor throws std::runtime_error saying which server failed and what to do.
class TempDatabase {
 public:
  /// On the test server (postgres_server_url()); throws when there is none.
  TempDatabase();
  explicit TempDatabase(const std::string& server_url);
  /// Never throws: a failed drop is reported on stderr. Only the process that created the
  /// database drops it (not a forked child).
  ~TempDatabase();
  TempDatabase(const TempDatabase&) = delete;
  TempDatabase& operator=(const TempDatabase&) = delete;

  [[nodiscard]] const std::string& name() const { return m_name; }
  /// The full `postgresql://.../NAME` URL, a store location.
  [[nodiscard]] const std::string& location() const { return m_location; }
  [[nodiscard]] const std::string& server_url() const { return m_server; }

 private:
  std::string m_server;
  std::string m_name;
  std::string m_location;
  std::unique_ptr<PostgresConnection> m_admin;  // to the server's maintenance database
  int m_pid = 0;
};

}  // namespace mandala::testing
