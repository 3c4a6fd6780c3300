#include "support/postgres.hpp"

#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <stdexcept>

#ifndef MANDALA_TEST_POSTGRES_URL_FILE
#error "MANDALA_TEST_POSTGRES_URL_FILE: the file the ctest fixture `postgres` writes the server's URL to"
#endif

namespace mandala::testing {
namespace {

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

struct UrlParts {
  std::string base;      // postgresql://USER@HOST:PORT
  std::string database;  // empty when the URL names none
  std::string params;    // "?..." or empty
};

UrlParts split_url(const std::string& url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos ||
      (url.compare(0, scheme_end, "postgresql") != 0 && url.compare(0, scheme_end, "postgres") != 0))
    throw std::runtime_error("not a postgresql:// URL: '" + url + "' (expected postgresql://USER@HOST:PORT)");
  UrlParts parts;
  const auto authority_end = url.find_first_of("/?", scheme_end + 3);
  parts.base = url.substr(0, authority_end);
  if (authority_end == std::string::npos) return parts;
  const auto params = url.find('?', authority_end);
  if (url[authority_end] == '/')
    parts.database = url.substr(authority_end + 1, params == std::string::npos ? params : params - authority_end - 1);
  if (params != std::string::npos) parts.params = url.substr(params);
  return parts;
}

std::string random_hex(std::size_t digits) {
  static const char* hex = "0123456789abcdef";
  std::random_device device;
  std::mt19937_64 gen((std::uint64_t{device()} << 32) ^ device());
  std::string out;
  for (std::size_t i = 0; i < digits; ++i) out += hex[gen() & 15u];
  return out;
}

}  // namespace

std::optional<std::string> postgres_server_url() {
  if (auto url = trimmed(env("MANDALA_TEST_POSTGRES")); !url.empty()) return url;
  std::ifstream file(MANDALA_TEST_POSTGRES_URL_FILE);
  std::string line;
  if (file && std::getline(file, line) && !trimmed(line).empty()) return trimmed(line);
  return std::nullopt;
}

std::string postgres_server_origin() {
  if (!trimmed(env("MANDALA_TEST_POSTGRES")).empty()) return "MANDALA_TEST_POSTGRES";
  return std::string("the URL the ctest fixture `postgres` wrote to ") + MANDALA_TEST_POSTGRES_URL_FILE;
}

std::string postgres_server_hint() {
  std::string dir = MANDALA_TEST_POSTGRES_URL_FILE;
  dir = dir.substr(0, dir.rfind('/'));
  return "the PostgreSQL tests need a server: run them through ctest (its fixture `postgres` starts a throwaway "
         "one with scripts/postgres-server), or start one with `scripts/postgres-server start " +
         dir +
         "` (and `stop` it afterwards), or set MANDALA_TEST_POSTGRES=postgresql://USER@HOST:PORT to a running "
         "server where USER may create databases";
}

bool postgres_required() { return env("MANDALA_REQUIRE_POSTGRES") == "1"; }

std::string postgres_database_url(const std::string& server_url, const std::string& name) {
  const auto parts = split_url(server_url);
  return parts.base + "/" + name + parts.params;
}

// ---- PostgresConnection -------------------------------------------------------------------

void PostgresConnection::Close::operator()(pg_conn* c) const { PQfinish(c); }

PostgresConnection::PostgresConnection(const std::string& url) : m_url(url) {
  // Defaults first: the URL's own parameters override them. The application name says which
  // test process holds a connection (pg_stat_activity).
  const std::string application = "mandala-tests/" + std::to_string(::getpid());
  const char* keys[] = {"connect_timeout", "fallback_application_name", "dbname", nullptr};
  const char* values[] = {"10", application.c_str(), url.c_str(), nullptr};
  m_conn.reset(PQconnectdbParams(keys, values, 1));
  if (!m_conn) throw std::runtime_error("cannot connect to " + url + ": out of memory");
  if (PQstatus(m_conn.get()) != CONNECTION_OK)
    throw std::runtime_error("cannot connect to " + url + ": " + trimmed(PQerrorMessage(m_conn.get())));
  PQsetNoticeProcessor(
      m_conn.get(), [](void*, const char*) {}, nullptr);
}

PostgresConnection::~PostgresConnection() = default;

std::string PostgresConnection::query(const std::string& sql) {
  std::unique_ptr<PGresult, void (*)(PGresult*)> last(nullptr, PQclear);
  if (!PQsendQuery(m_conn.get(), sql.c_str()))
    throw std::runtime_error(m_url + ": " + trimmed(PQerrorMessage(m_conn.get())) + " (running: " + sql + ")");
  std::string error;
  while (PGresult* r = PQgetResult(m_conn.get())) {
    const auto status = PQresultStatus(r);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK && error.empty())
      error = trimmed(PQresultErrorMessage(r));
    last.reset(r);
  }
  if (!error.empty()) throw std::runtime_error(m_url + ": " + error + " (running: " + sql + ")");
  if (!last || PQntuples(last.get()) == 0 || PQnfields(last.get()) == 0 || PQgetisnull(last.get(), 0, 0)) return "";
  return PQgetvalue(last.get(), 0, 0);
}

int PostgresConnection::server_version() const { return PQserverVersion(m_conn.get()); }

bool PostgresConnection::database_exists(const std::string& name) {
  // Names are made by TempDatabase or by tests: letters, digits and '_' only.
  for (const char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_'))
      throw std::invalid_argument("database_exists: unexpected database name '" + name + "'");
  return query("SELECT count(*) FROM pg_database WHERE datname = '" + name + "'") == "1";
}

// ---- TempDatabase -------------------------------------------------------------------------

namespace {
std::string known_server_url() {
  const auto server = postgres_server_url();
  if (!server) throw std::runtime_error("TempDatabase: no PostgreSQL server is known; " + postgres_server_hint());
  return *server;
}

// Databases are created from the server URL's database, `postgres` when it names none.
std::string admin_url(const std::string& server_url) {
  const auto parts = split_url(server_url);
  return parts.database.empty() ? postgres_database_url(server_url, "postgres") : server_url;
}
}  // namespace

TempDatabase::TempDatabase() : TempDatabase(known_server_url()) {}

TempDatabase::TempDatabase(const std::string& server_url) : m_server(server_url), m_pid(::getpid()) {
  static std::atomic<unsigned> counter{0};
  m_name = "mandala_test_" + std::to_string(m_pid) + "_" + std::to_string(counter++) + "_" + random_hex(8);
  const bool the_test_server = postgres_server_url() == server_url;
  const std::string where =
      "the PostgreSQL server " + server_url + (the_test_server ? " (from " + postgres_server_origin() + ")" : "");
  try {
    const auto parts = split_url(server_url);
    m_location = parts.base + "/" + m_name + parts.params;
    m_admin = std::make_unique<PostgresConnection>(admin_url(server_url));
    // From the pristine template0; by file copy where there is a choice (PostgreSQL 15: faster than
    // WAL-logging a copy on a server without fsync).
    m_admin->query("CREATE DATABASE \"" + m_name + "\" TEMPLATE template0" +
                   (m_admin->server_version() >= 150000 ? " STRATEGY FILE_COPY" : ""));
  } catch (const std::exception& e) {
    throw std::runtime_error("TempDatabase: cannot create a database on " + where + ": " + e.what() +
                             (the_test_server ? "\n" + postgres_server_hint() : std::string()));
  }
}

TempDatabase::~TempDatabase() {
  if (!m_admin || ::getpid() != m_pid) return;
  const std::string drop = "DROP DATABASE IF EXISTS \"" + m_name + "\" WITH (FORCE)";
  try {
    m_admin->query(drop);
  } catch (const std::exception&) {
    // The connection may have been closed meanwhile (a server's idle timeout): once more on a new one.
    try {
      PostgresConnection(admin_url(m_server)).query(drop);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "warning: TempDatabase could not drop database %s: %s\n", m_name.c_str(), e.what());
    }
  }
}

}  // namespace mandala::testing
