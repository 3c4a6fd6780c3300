#include "store/sqlite/sqlite.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>

namespace mandala::store::sql {

namespace {

/// The file a connection reads (empty for an in-memory database).
std::string database_file(sqlite3* db) {
  const char* name = db != nullptr ? sqlite3_db_filename(db, "main") : nullptr;
  return name != nullptr ? std::string(name) : std::string();
}

/// Why this process cannot write `path` ("Permission denied", "Read-only file system"); empty
/// when it can, or when that cannot be told.
std::string write_denied(const std::string& path) {
  if (path.empty() || ::faccessat(AT_FDCWD, path.c_str(), W_OK, AT_EACCESS) == 0) return {};
  return std::strerror(errno);
}

std::string directory_of(const std::string& file) {
  auto dir = std::filesystem::path(file).parent_path().string();
  return dir.empty() ? std::string(".") : dir;
}

}  // namespace

void throw_sqlite(sqlite3* db, int rc, std::string_view doing, std::string_view fallback_file) {
  const int primary = rc & 0xFF;
  std::string file = database_file(db);
  if (file.empty()) file = std::string(fallback_file);
  std::string msg = (file.empty() ? std::string() : file + ": ") + std::string(doing) + ": " + sqlite3_errstr(rc);
  if (db != nullptr && sqlite3_errmsg(db) != nullptr && std::strcmp(sqlite3_errmsg(db), sqlite3_errstr(rc)) != 0)
    msg += " (" + std::string(sqlite3_errmsg(db)) + ")";
  // SQLite keeps the operating system's error of failed opens and I/O only.
  const int os_error =
      db != nullptr && (primary == SQLITE_CANTOPEN || primary == SQLITE_IOERR) ? sqlite3_system_errno(db) : 0;
  if (os_error != 0) msg += std::string(": ") + std::strerror(os_error);
  const std::string the_file = file.empty() ? std::string("the database") : file;
  switch (primary) {
    case SQLITE_NOTADB:
      throw Error(Errc::corrupt_store, msg + "; the file is not an SQLite database: pass the path of a mandala store");
    case SQLITE_CORRUPT: throw Error(Errc::corrupt_store, msg + "; the database is damaged: restore it from a backup");
    case SQLITE_FULL: throw Error(Errc::io, msg + "; the disk is full: free space and retry (stored calls are intact)");
    case SQLITE_CANTOPEN:
      throw Error(Errc::io, msg + "; check that " + the_file +
                                " exists and that this user may read it (and, unless it is opened read-only, write it "
                                "and its directory)");
    case SQLITE_READONLY: {
      const std::string dir = directory_of(file);
      switch (rc) {
        case SQLITE_READONLY_DIRECTORY: {
          const std::string why = write_denied(dir);
          throw Error(Errc::io, msg + "; this process may not write the directory " + dir +
                                    (why.empty() ? "" : " (" + why + ")") +
                                    ", where SQLite keeps the store's log: make it writable, or open the store "
                                    "read-only (StorageOptions::read_only) to read it");
        }
        case SQLITE_READONLY_RECOVERY:
        case SQLITE_READONLY_CANTINIT:
        case SQLITE_READONLY_CANTLOCK:
          throw Error(Errc::io, msg +
                                    "; the store's write-ahead log must be recovered first, which needs write "
                                    "access to " +
                                    dir + ": open the store once writable, as a user who may write there");
        case SQLITE_READONLY_DBMOVED:
          throw Error(Errc::io, msg + "; the file was moved or deleted while open: open it again");
        default: {
          const std::string why = write_denied(file);
          throw Error(Errc::io, msg + "; this process may not write " + the_file +
                                    (why.empty() ? "" : " (" + why + ")") +
                                    ": fix its permissions (and its directory's) to record calls, or open it "
                                    "read-only (StorageOptions::read_only) to read it");
        }
      }
    }
    case SQLITE_TOOBIG:
      throw Error(Errc::io, msg + "; it is larger than SQLite's length limit (" +
                                (db != nullptr ? std::to_string(length_limit(db)) : std::string("about 10^9")) +
                                " bytes)");
    case SQLITE_BUSY:
    case SQLITE_LOCKED: throw Busy(Errc::io, msg + "; another connection holds the store's lock");
    default: throw Error(Errc::io, msg);
  }
}

bool Backoff::wait(int attempt, std::chrono::steady_clock::time_point start) const {
  using namespace std::chrono;
  const auto now = steady_clock::now();
  if (now - start >= m_timeout) return false;
  thread_local std::minstd_rand rng(static_cast<unsigned>(std::hash<std::thread::id>{}(std::this_thread::get_id()) ^
                                                          static_cast<std::size_t>(now.time_since_epoch().count())));
  const double ceiling_us = 100.0 * static_cast<double>(1u << std::min(attempt, 9));  // 0.1 ms .. 51.2 ms
  const double us = ceiling_us * std::uniform_real_distribution<double>(0.5, 1.0)(rng);
  const auto left = m_timeout - duration_cast<microseconds>(now - start);
  std::this_thread::sleep_for(std::min(microseconds(static_cast<std::int64_t>(us)), duration_cast<microseconds>(left)));
  return true;
}

namespace {
int busy_handler(void* context, int count) {
  // SQLite calls this with count = 0, 1, 2, ... while one lock request waits.
  thread_local std::chrono::steady_clock::time_point start;
  if (count == 0) start = std::chrono::steady_clock::now();
  return static_cast<const Backoff*>(context)->wait(count, start) ? 1 : 0;
}
}  // namespace

std::int64_t length_limit(sqlite3* db) { return sqlite3_limit(db, SQLITE_LIMIT_LENGTH, -1); }

namespace {
std::atomic<std::int64_t> test_length_limit{0};
}

void set_length_limit_for_tests(std::int64_t bytes) noexcept { test_length_limit.store(bytes); }

void configure_limits(sqlite3* db) {
  const std::int64_t limit = test_length_limit.load();
  if (limit > 0) sqlite3_limit(db, SQLITE_LIMIT_LENGTH, static_cast<int>(std::min<std::int64_t>(limit, INT32_MAX)));
}

void install_busy_handler(sqlite3* db, const Backoff& backoff) {
  sqlite3_busy_handler(db, busy_handler, const_cast<Backoff*>(&backoff));
}

void exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  if (err != nullptr) sqlite3_free(err);
  if (rc != SQLITE_OK) throw_sqlite(db, rc, std::string("executing ") + std::string(sql).substr(0, 60));
}

Statement::Statement(sqlite3* db, std::string_view sql) : m_db(db) {
  const int rc =
      sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &m_stmt, nullptr);
  if (rc != SQLITE_OK) throw_sqlite(db, rc, "preparing a query");
}

Statement::~Statement() { sqlite3_finalize(m_stmt); }

void Statement::rewind_for_binding() {
  // A statement left mid-query (its reader stopped early or threw) must be rewound, or SQLite
  // refuses the bind (SQLITE_MISUSE) and the next step would go on with the old query.
  if (m_done || sqlite3_stmt_busy(m_stmt) != 0) reset();
}

void Statement::check_bind(int rc, int index) const {
  if (rc != SQLITE_OK) throw_sqlite(m_db, rc, "binding parameter " + std::to_string(index) + " of a query");
}

Statement& Statement::bind(int index, std::int64_t v) {
  rewind_for_binding();
  check_bind(sqlite3_bind_int64(m_stmt, index, v), index);
  return *this;
}

Statement& Statement::bind(int index, std::string_view v) {
  rewind_for_binding();
  // (A null pointer would bind NULL: an empty text is bound as one.)
  check_bind(
      sqlite3_bind_text64(m_stmt, index, v.data() != nullptr ? v.data() : "", v.size(), SQLITE_STATIC, SQLITE_UTF8),
      index);
  return *this;
}

Statement& Statement::bind(int index, const Id& v) {
  rewind_for_binding();
  check_bind(sqlite3_bind_blob64(m_stmt, index, v.bytes.data(), v.bytes.size(), SQLITE_STATIC), index);
  return *this;
}

Statement& Statement::bind_blob(int index, std::span<const std::byte> v) {
  rewind_for_binding();
  // A null pointer would bind NULL: an empty blob is bound as a zero-length blob.
  static constexpr std::byte empty{};
  check_bind(sqlite3_bind_blob64(m_stmt, index, v.empty() ? &empty : v.data(), v.size(), SQLITE_STATIC), index);
  return *this;
}

Statement& Statement::bind_null(int index) {
  rewind_for_binding();
  check_bind(sqlite3_bind_null(m_stmt, index), index);
  return *this;
}

bool Statement::step() {
  if (m_done) reset();
  const int rc = sqlite3_step(m_stmt);
  if (rc == SQLITE_ROW) return true;
  m_done = true;
  if (rc == SQLITE_DONE) return false;
  // (reset reports the same error again: it is the one thrown here)
  sqlite3_reset(m_stmt);
  throw_sqlite(m_db, rc, "running a query");
}

void Statement::run() {
  while (step()) {}
  reset();
}

void Statement::reset() {
  // After a step that failed, step() has reset the statement already and thrown its error; a
  // reset now reports only what happened since.
  const int rc = sqlite3_reset(m_stmt);
  const int cleared = sqlite3_clear_bindings(m_stmt);
  m_done = false;
  if (rc != SQLITE_OK) throw_sqlite(m_db, rc, "resetting a query");
  if (cleared != SQLITE_OK) throw_sqlite(m_db, cleared, "clearing the parameters of a query");
}

void Statement::reset_quietly() noexcept {
  sqlite3_reset(m_stmt);
  sqlite3_clear_bindings(m_stmt);
  m_done = false;
}

std::int64_t Statement::int64(int col) const { return sqlite3_column_int64(m_stmt, col); }

std::string Statement::text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(m_stmt, col));
  return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(m_stmt, col))) : std::string();
}

Id Statement::id(int col) const {
  Id out;
  const void* p = sqlite3_column_blob(m_stmt, col);
  const int n = sqlite3_column_bytes(m_stmt, col);
  if (p == nullptr || n != static_cast<int>(out.bytes.size()))
    throw Error(Errc::corrupt_store, database_file(m_db) + ": an id column holds " + std::to_string(n) +
                                         " bytes instead of 16; the store is damaged: restore it from a backup");
  std::memcpy(out.bytes.data(), p, out.bytes.size());
  return out;
}

std::vector<std::byte> Statement::blob(int col) const {
  const auto* p = static_cast<const std::byte*>(sqlite3_column_blob(m_stmt, col));
  const int n = sqlite3_column_bytes(m_stmt, col);
  return p ? std::vector<std::byte>(p, p + n) : std::vector<std::byte>();
}

std::span<const std::byte> Statement::blob_view(int col) const {
  const auto* p = static_cast<const std::byte*>(sqlite3_column_blob(m_stmt, col));
  const int n = sqlite3_column_bytes(m_stmt, col);
  return p ? std::span<const std::byte>(p, static_cast<std::size_t>(n)) : std::span<const std::byte>();
}

bool Statement::is_null(int col) const { return sqlite3_column_type(m_stmt, col) == SQLITE_NULL; }

Transaction::Transaction(sqlite3* db) : m_db(db) { exec(db, "BEGIN IMMEDIATE"); }

Transaction::~Transaction() {
  if (m_open) sqlite3_exec(m_db, "ROLLBACK", nullptr, nullptr, nullptr);
}

void Transaction::commit() {
  exec(m_db, "COMMIT");
  m_open = false;
}

}  // namespace mandala::store::sql
