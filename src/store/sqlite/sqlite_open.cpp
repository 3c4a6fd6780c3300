// The SQLite store's opening: creating the file, validating, upgrading and configuring it.

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "codec/hash.hpp"
#include "codec/wire.hpp"
#include "store/file_system.hpp"
#include "store/sqlite/sqlite_store_impl.hpp"
#include "store/sqlite/version_tables.hpp"

namespace mandala::store::sqlite_impl {
namespace {

constexpr std::int64_t application_id = 0x4D4E444C;  // "MNDL"
// 3: code-version tables (store/sqlite/version_tables.cpp); 4: counters; 5: calls.semantic; 6: content
// ids of calls of raw inputs derived, not stored (calls_by_cid partial); 7: rename records
constexpr int schema_version = 8;
constexpr const char* format_name = "mandala-store";

// Calls keep their inputs and outputs in one compact `io` column (section 3.2 of
// docs/storage-format.md); `call_refs` is the only index over refs. Digest indexes key on the
// first 8 bytes of the 16-byte id, and readers compare the whole id. A call whose inputs are all
// raw values has an empty `cid` (its content id is derived from its row) and is found by content
// under its hid, so `calls_by_cid` (calls_by_cid_sql) holds only the other calls.
constexpr const char* schema_sql = R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE ops(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  version INTEGER NOT NULL,
  inputs TEXT NOT NULL,
  outputs TEXT NOT NULL,
  UNIQUE(name, version));
CREATE TABLE "values"(
  cid BLOB PRIMARY KEY,
  size INTEGER NOT NULL,
  data BLOB) WITHOUT ROWID;
CREATE TABLE calls(
  id INTEGER PRIMARY KEY,
  hid BLOB NOT NULL,
  cid BLOB NOT NULL,
  op_id INTEGER NOT NULL REFERENCES ops(id),
  created INTEGER NOT NULL,
  io BLOB NOT NULL,
  semantic INTEGER);
CREATE INDEX calls_by_hid ON calls(substr(hid, 1, 8));
CREATE INDEX calls_by_op ON calls(op_id);
CREATE TABLE call_refs(
  key INTEGER NOT NULL,
  dir INTEGER NOT NULL,
  call_id INTEGER NOT NULL,
  PRIMARY KEY(key, dir, call_id)) WITHOUT ROWID;
)sql";

// Rename records (docs/storage-format.md 2.2): kind 0 op, 1 input, 2 output.
constexpr const char* renames_sql = R"sql(
CREATE TABLE IF NOT EXISTS renames(
  kind INTEGER NOT NULL,
  op TEXT NOT NULL,
  identity TEXT NOT NULL,
  name TEXT NOT NULL,
  PRIMARY KEY(kind, op, identity),
  UNIQUE(kind, op, name)) WITHOUT ROWID;
)sql";

constexpr const char* calls_by_cid_sql = "CREATE INDEX calls_by_cid ON calls(substr(cid, 1, 8)) WHERE length(cid) = 16";

fs::path beside(const fs::path& db, std::string_view suffix) { return fs::path(db.string() + std::string(suffix)); }

fs::path directory_of(const fs::path& file) {
  auto dir = file.parent_path();
  return dir.empty() ? fs::path(".") : dir;
}

bool has_write_ahead_log(const fs::path& path) {
  std::error_code ec;
  const auto size = fs::file_size(beside(path, "-wal"), ec);
  return !ec && size > 0;
}

/// Whether this process may write `path` (a file or a directory; judged with its effective ids).
bool writable(const fs::path& path) { return ::faccessat(AT_FDCWD, path.c_str(), W_OK, AT_EACCESS) == 0; }

/// `file:` URI of the path with immutable=1 (RFC 3986 percent-encoding of everything but
/// unreserved characters and '/').
std::string immutable_uri(const fs::path& path) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string uri = "file:";
  for (const char c : fs::absolute(path).string()) {
    const auto ch = static_cast<unsigned char>(c);
    if (std::isalnum(ch) != 0 || ch == '/' || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
      uri += c;
    } else {
      uri += '%';
      uri += hex[ch >> 4];
      uri += hex[ch & 15];
    }
  }
  return uri + "?immutable=1";
}

std::optional<FileStamp> stamp_of(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  const auto ns = [](const timespec& t) { return std::int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec; };
  return FileStamp{st.st_dev, st.st_ino, st.st_size, ns(st.st_mtim), ns(st.st_ctim)};
}

/// Temporary files of a store being created: `.<name>.new-<pid>-<clock>`, and SQLite's
/// `-journal` / `-wal` / `-shm` beside it.
std::string creation_prefix(const fs::path& path) { return "." + path.filename().string() + ".new-"; }

void remove_with_logs(const fs::path& db) {
  std::error_code ec;
  for (const char* suffix : {"", "-journal", "-wal", "-shm"}) fs::remove(beside(db, suffix), ec);
}

/// Removes the temporary files of creations of this store by processes that no longer run
/// (killed while creating it).
void remove_abandoned_creations(const fs::path& path) {
  const std::string prefix = creation_prefix(path);
  std::error_code ec;
  std::vector<fs::path> abandoned;
  for (fs::directory_iterator it(directory_of(path), ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    long long pid = 0;
    const char* first = name.data() + prefix.size();
    const auto [last, err] = std::from_chars(first, name.data() + name.size(), pid);
    if (err != std::errc() || last == first || *last != '-' || pid <= 0) continue;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) abandoned.push_back(it->path());
  }
  for (const auto& file : abandoned) fs::remove(file, ec);
}

void sync_directory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void ReaderLogs::watch(const fs::path& db) {
  m_db = db;
  m_log_at_open = stamp_of(beside(db, "-wal"));
}

void ReaderLogs::remove_unused() const noexcept {
  const auto log = stamp_of(beside(m_db, "-wal"));
  if (!log) return;  // no log: nothing was left
  // A log with writes in it that nobody touched while this reader was open (left by a writer
  // that did not close cleanly) stays as it was: moving it into the store would change the
  // store's file. A log that changed meanwhile is what a writer would have removed, had this
  // reader not been open when it closed.
  if (m_log_at_open && m_log_at_open->size > 0 && log == m_log_at_open) return;
  if (!writable(m_db) || !writable(directory_of(m_db))) return;
  sqlite3* raw = nullptr;
  if (sqlite3_open_v2(m_db.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) == SQLITE_OK &&
      sqlite3_db_readonly(raw, "main") == 0) {
    // A read opens the log; the close checkpoints it (nothing, unless another process wrote
    // while this one read) and removes both files when this is the last connection.
    sqlite3_exec(raw, "SELECT 1 FROM sqlite_master LIMIT 1", nullptr, nullptr, nullptr);
  }
  sqlite3_close_v2(raw);
}

void SqliteStore::open(const fs::path& path, bool memory) {
  bool existed = false;
  if (!memory) {
    std::error_code ec;
    const auto status = fs::status(path, ec);
    if (ec && status.type() != fs::file_type::not_found)
      throw Error(Errc::io, "cannot open the store " + path.string() + ": " + ec.message() +
                                "; check that this user may search every directory on its path");
    existed = fs::exists(status);
    if (fs::is_directory(status))
      throw Error(Errc::invalid_argument, path.string() + " is a directory; pass the path of a store file");
  }
  if (m_options.read_only && !existed)
    throw Error(Errc::not_found, "no store at " + path.string() + " (opened read-only, so none is created)");
  if (!memory && !m_options.create && !existed)
    throw Error(Errc::not_found, "no store at " + path.string() + " (and none is created here: check the path)");
  const std::string name = memory ? std::string(":memory:") : path.string();
  if (!memory) warn_if_network_file_system(path);
  m_path = memory ? fs::path() : path;
  if (!memory && !existed && !m_options.read_only) create_store_file(path);
  int flags = SQLITE_OPEN_NOMUTEX;
  flags |= m_options.read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  std::string open_name = name;
  if (m_options.read_only && !memory) {
    if (needs_unlocked_snapshot(path)) {
      // Immutable: SQLite takes no locks and creates no -wal/-shm files. Only a process that
      // may not write the store reads it so: it cannot create the files that locking needs.
      m_unlocked = true;
      m_unlocked_since = stamp_of(path);
      open_name = immutable_uri(path);
      flags |= SQLITE_OPEN_URI;
    } else {
      m_reader_logs.watch(path);
    }
  }
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(open_name.c_str(), &raw, flags, nullptr);
  m_db.reset(raw);
  if (rc != SQLITE_OK) sql::throw_sqlite(m_db.get(), rc, "opening the store", name);
  sqlite3_extended_result_codes(m_db.get(), 1);
  if (!m_options.read_only && !memory && sqlite3_db_readonly(m_db.get(), "main") == 1) {
    const bool may_write = writable(path);
    const std::string why = may_write ? std::string() : std::string(" (") + std::strerror(errno) + ")";
    throw Error(Errc::io, name + " is not writable by this process" + why +
                              ": fix its permissions to record calls, or open it read-only "
                              "(StorageOptions::read_only, the mandala read commands) to read it");
  }
  sql::configure_limits(m_db.get());
  m_max_inline_bytes = static_cast<std::size_t>(std::max<std::int64_t>(sql::length_limit(m_db.get()) - 256, 0));
  sql::install_busy_handler(m_db.get(), m_backoff);
  // Another process may be creating or recovering the same file: retry the whole check.
  try {
    sql::retry_while_busy(
        m_backoff, [&] { validate_and_prepare(name, memory); }, [&] { abort_transaction(); });
  } catch (const Error& e) {
    if (e.code() == Errc::corrupt_store) throw_if_written_meanwhile();
    throw;
  }
  m_seen_version = data_version();
}

bool SqliteStore::needs_unlocked_snapshot(const fs::path& path) {
  if (writable(path) && writable(directory_of(path))) return false;
  std::error_code ec;
  const bool wal = fs::exists(beside(path, "-wal"), ec);
  const bool shm = fs::exists(beside(path, "-shm"), ec);
  if (wal && shm) return false;  // SQLite reads the log through the existing index
  if (has_write_ahead_log(path))
    throw Error(Errc::io, path.string() + " has writes in its write-ahead log (" + beside(path, "-wal").string() +
                              ") but no -shm index, and this process may not write " + directory_of(path).string() +
                              " to make one: open the store once writable, as a user who may write there "
                              "(that moves the log into the store), then read it");
  return true;
}

void SqliteStore::throw_if_written_meanwhile() const {
  if (!m_unlocked || stamp_of(m_path) == m_unlocked_since) return;
  throw Error(Errc::io, m_path.string() +
                            " was written by another process while it was read (this process may not write it or "
                            "its directory, so it reads the store without locks); run the command again");
}

void SqliteStore::create_store_file(const fs::path& path) {
  if (!writable(directory_of(path))) {
    const int why = errno;
    throw Error(Errc::io, "cannot create the store " + path.string() + ": this process may not write the directory " +
                              directory_of(path).string() + " (" + std::strerror(why) +
                              "): choose another path, or make the directory writable");
  }
  remove_abandoned_creations(path);
  const auto clock = std::chrono::steady_clock::now().time_since_epoch().count();
  const fs::path temporary =
      directory_of(path) / (creation_prefix(path) + std::to_string(::getpid()) + "-" + std::to_string(clock));
  try {
    sqlite3* raw = nullptr;
    const int rc = sqlite3_open_v2(temporary.c_str(), &raw,
                                   SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    sql::DbHandle db(raw);
    const auto fail = [&](int code) { sql::throw_sqlite(db.get(), code, "creating it", temporary.string()); };
    if (rc != SQLITE_OK) fail(rc);
    sqlite3_extended_result_codes(db.get(), 1);
    // A rollback journal while the schema is written, synced at the commit; then WAL, the
    // store's mode (recorded in the file's header).
    sql::exec(db.get(), "PRAGMA synchronous=FULL");
    {
      sql::Transaction tx(db.get());
      write_schema(db.get());
      tx.commit();
    }
    {
      sql::Statement mode(db.get(), "PRAGMA journal_mode=WAL");
      if (!mode.step() || mode.text(0) != "wal")
        throw Error(Errc::io, "SQLite could not switch " + temporary.string() + " to WAL mode");
    }
    // The last connection's close removes the (empty) log and its index.
    const int closed = sqlite3_close(db.get());
    if (closed != SQLITE_OK) fail(closed);
    (void)db.release();
    if (::link(temporary.c_str(), path.c_str()) != 0 && errno != EEXIST) {
      // File systems without hard links: a rename that does not replace a store another
      // process created meanwhile.
      const int link_error = errno;
      if (::renameat2(AT_FDCWD, temporary.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) != 0 && errno != EEXIST)
        throw Error(Errc::io, "cannot link " + temporary.string() + " into place: " + std::strerror(link_error) +
                                  "; check that this user may write " + directory_of(path).string());
    }
  } catch (const Error& e) {
    remove_with_logs(temporary);
    throw Error(e.code(), "cannot create the store " + path.string() +
                              " (nothing was left on disk; it is written as a temporary file first): " + e.what());
  } catch (...) {
    remove_with_logs(temporary);
    throw;
  }
  remove_with_logs(temporary);
  sync_directory(directory_of(path));
}

void SqliteStore::validate_and_prepare(const std::string& name, bool memory) {
  std::int64_t app_id = 0;
  std::int64_t tables = 0;
  try {
    sql::Statement a(m_db.get(), "PRAGMA application_id");
    if (a.step()) app_id = a.int64(0);
    sql::Statement t(m_db.get(), "SELECT COUNT(*) FROM sqlite_master");
    if (t.step()) tables = t.int64(0);
  } catch (const sql::Busy&) {
    throw;
  } catch (const Error& e) {
    if (std::string_view(e.what()).starts_with(name)) throw;  // SQLite's errors name the file
    throw Error(e.code(), "cannot open store " + name + ": " + e.what());
  }
  if (app_id != application_id && !(app_id == 0 && tables == 0)) {
    throw Error(Errc::foreign_database, name + " is an SQLite database but not a mandala store (application_id " +
                                            std::to_string(app_id) + ", " + std::to_string(tables) +
                                            " schema objects); it was not modified: pass a mandala store file "
                                            "or a new path");
  }
  if (tables == 0) {
    if (m_options.read_only) throw Error(Errc::foreign_database, name + " is an empty database, not a mandala store");
    initialize(memory);
  } else {
    if (!m_options.read_only) upgrade();
    check_meta(name);
    if (!memory && !m_options.read_only) sql::exec(m_db.get(), "PRAGMA journal_mode=WAL");
  }
  m_call_columns = m_legacy_call_versions
                       ? "SELECT id, hid, cid, op_id, created, io, "
                         "(SELECT semantic_version FROM vc_calls v WHERE v.call_id = calls.id) FROM calls "
                       : "SELECT id, hid, cid, op_id, created, io, semantic FROM calls ";
  // NORMAL: a commit survives a crash of the process (the log is written before COMMIT
  // returns); FULL also syncs the log at each commit, so it survives power loss and OS crashes.
  if (!memory) sql::exec(m_db.get(), m_options.durable_flush ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  // Lookups hit random index pages (ids are uniformly distributed): a large page cache and
  // memory-mapped reads keep them off the read() path. Both grow only as pages are used.
  sql::exec(m_db.get(), "PRAGMA cache_size=-262144");
  // (Not for an unlocked read: another process may shorten the file under the mapping.)
  if (!memory && !m_unlocked) sql::exec(m_db.get(), "PRAGMA mmap_size=1073741824");
}

void SqliteStore::initialize(bool memory) {
  if (!memory) sql::exec(m_db.get(), "PRAGMA journal_mode=WAL");
  sql::Transaction tx(m_db.get());
  {
    // Another process may have initialized the file while we waited for the lock.
    sql::Statement t(m_db.get(), "SELECT COUNT(*) FROM sqlite_master");
    if (t.step() && t.int64(0) > 0) {
      t.reset();
      tx.commit();
      check_meta(m_path.empty() ? std::string(":memory:") : m_path.string());
      return;
    }
  }
  write_schema(m_db.get());
  tx.commit();
}

void SqliteStore::write_schema(sqlite3* db) {
  sql::exec(db, schema_sql);
  sql::exec(db, calls_by_cid_sql);
  sql::exec(db, renames_sql);
  sql::exec(db, versions::schema_sql);
  sql::exec(db, counters::schema_sql);
  sql::exec(db, ("PRAGMA application_id=" + std::to_string(application_id)).c_str());
  sql::exec(db, ("PRAGMA user_version=" + std::to_string(schema_version)).c_str());
  sql::Statement meta(db, "INSERT INTO meta(key, value) VALUES(?1, ?2)");
  const std::pair<const char*, std::string> rows[] = {
      {"format", format_name},
      {"schema_version", std::to_string(schema_version)},
      {"hash", codec::hash_name},
      {"encoding", wire::encoding_name},
      {"created_ms", std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count())},
  };
  for (const auto& [k, v] : rows) meta.bind(1, std::string_view(k)).bind(2, v).run();
}

void SqliteStore::set_schema_version(sqlite3* db) {
  sql::exec(db,
            ("UPDATE meta SET value = '" + std::to_string(schema_version) + "' WHERE key = 'schema_version'").c_str());
  sql::exec(db, ("PRAGMA user_version=" + std::to_string(schema_version)).c_str());
}

std::string SqliteStore::stored_schema_version() {
  try {
    sql::Statement st(m_db.get(), "SELECT value FROM meta WHERE key = 'schema_version'");
    if (st.step()) return st.text(0);
  } catch (const sql::Busy&) {
    throw;
  } catch (const Error&) {}
  return {};
}

namespace {
/// A meta row's value; empty when absent or unreadable (check_meta reports what is wrong).
std::string meta_value(sqlite3* db, const char* key) {
  try {
    sql::Statement st(db, "SELECT value FROM meta WHERE key = ?1");
    st.bind(1, std::string_view(key));
    if (st.step()) return st.text(0);
  } catch (const sql::Busy&) {
    throw;
  } catch (const Error&) {}
  return {};
}

/// Values of the previous encoding read the same in this one: recording this one is the whole
/// upgrade (it tells older readers, which would reject the new extension types, to keep away).
void upgrade_encoding(sqlite3* db) {
  const auto older = [&] {
    return meta_value(db, "encoding") == wire::previous_encoding_name && meta_value(db, "hash") == codec::hash_name;
  };
  if (!older()) return;
  sql::Transaction tx(db);
  if (!older()) return;  // another process upgraded it meanwhile
  sql::Statement st(db, "UPDATE meta SET value = ?1 WHERE key = 'encoding'");
  st.bind(1, std::string_view(wire::encoding_name)).run();
  tx.commit();
}
}  // namespace

void SqliteStore::upgrade() {
  upgrade_encoding(m_db.get());
  const auto older = [](const std::string& v) {
    return v == "2" || v == "3" || v == "4" || v == "5" || v == "6" || v == "7";
  };
  if (!older(stored_schema_version())) return;
  sql::Transaction tx(m_db.get());
  // Read again under the write lock: another process may have upgraded the store meanwhile.
  const std::string from = stored_schema_version();
  if (!older(from)) return;
  // Schema 8 adds only the transient flag of io entries (3.2): a store of 7 is one of 8.
  if (from == "7") {
    set_schema_version(m_db.get());
    tx.commit();
    return;
  }
  sql::exec(m_db.get(), renames_sql);
  if (from == "6") {
    set_schema_version(m_db.get());
    tx.commit();
    return;
  }
  if (from != "5") versions::upgrade_call_versions(m_db.get());
  if (from == "2" || from == "3") {
    sql::exec(m_db.get(), counters::schema_sql);
    counters::replace(m_db.get(), counters::recount(m_db.get()));
  }
  // Every stored call keeps its content id: all stay in the (now partial) index.
  sql::exec(m_db.get(), "DROP INDEX IF EXISTS calls_by_cid");
  sql::exec(m_db.get(), calls_by_cid_sql);
  set_schema_version(m_db.get());
  tx.commit();
}

void SqliteStore::check_meta(const std::string& name) {
  std::unordered_map<std::string, std::string> meta;
  try {
    sql::Statement st(m_db.get(), "SELECT key, value FROM meta");
    while (st.step()) meta[st.text(0)] = st.text(1);
  } catch (const sql::Busy&) {
    throw;
  } catch (const Error&) {
    throw Error(Errc::corrupt_store, name +
                                         " is marked as a mandala store but has no readable meta table; it is "
                                         "damaged: restore it from a backup");
  }
  if (meta["format"] != format_name)
    throw Error(Errc::foreign_database, name + " is not a mandala store (meta format '" + meta["format"] + "')");
  const std::string& v = meta["schema_version"];
  // Read-only, a store of schema 3 is read as it is: counts are then computed by scanning.
  m_counted_by_scan = m_options.read_only && v == "3";
  m_legacy_call_versions = m_options.read_only && (v == "3" || v == "4");
  // Read-only, schemas 3 to 6 are read as they are (3 to 5 store every call's content id; before
  // 7 there are no rename records).
  m_without_renames = m_options.read_only && (v == "3" || v == "4" || v == "5" || v == "6");
  // Read-only, schema 7 is read as it is (it differs only by having no transient io entries).
  const bool previous = m_options.read_only && v == "7";
  if (v != std::to_string(schema_version) && !m_legacy_call_versions && !m_without_renames && !previous) {
    long long number = 0;
    const auto parsed = std::from_chars(v.data(), v.data() + v.size(), number);
    if (!v.empty() && (parsed.ec != std::errc() || parsed.ptr != v.data() + v.size()))
      throw Error(Errc::corrupt_store, name + " has an unreadable schema version '" + v.substr(0, 40) +
                                           "' in its meta table; it is damaged: restore it from a backup");
    const bool newer = !v.empty() && number > schema_version;
    throw Error(Errc::schema_mismatch,
                name + " has schema version " + v + " but this mandala reads version " +
                    std::to_string(schema_version) +
                    (newer      ? ": it was written by a newer mandala; upgrade mandala to open it"
                     : v == "2" ? ": open it once writable (not read-only) to upgrade it in place"
                                : ": migrate it with the mandala version that wrote it"));
  }
  // Read-only, a store of the previous encoding is read as it is (its values read the same).
  const bool previous_encoding = m_options.read_only && meta["encoding"] == wire::previous_encoding_name;
  if (meta["hash"] != codec::hash_name || (meta["encoding"] != wire::encoding_name && !previous_encoding))
    throw Error(Errc::schema_mismatch, name + " uses hash '" + meta["hash"] + "' and encoding '" + meta["encoding"] +
                                           "'; this mandala uses '" + codec::hash_name + "' and '" +
                                           wire::encoding_name + "'");
}

}  // namespace mandala::store::sqlite_impl
