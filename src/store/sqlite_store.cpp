// The SQLite backend of Store. Schema and on-disk rules: docs/storage-format.md.

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <type_traits>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "codec/hash.hpp"
#include "codec/wire.hpp"
#include "store/blob_files.hpp"
#include "store/file_system.hpp"
#include "store/integrity.hpp"
#include "store/sqlite.hpp"
#include "store/store.hpp"

namespace mandala::store {
namespace fs = std::filesystem;
namespace {

constexpr std::int64_t application_id = 0x4D4E444C;  // "MNDL"
constexpr int schema_version = 1;
constexpr const char* format_name = "mandala-store";

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
  hid BLOB NOT NULL UNIQUE,
  cid BLOB NOT NULL,
  op_id INTEGER NOT NULL REFERENCES ops(id),
  created INTEGER NOT NULL);
CREATE INDEX calls_by_cid ON calls(cid);
CREATE INDEX calls_by_op ON calls(op_id);
CREATE TABLE call_io(
  call_id INTEGER NOT NULL REFERENCES calls(id),
  dir INTEGER NOT NULL,
  name TEXT NOT NULL,
  hid BLOB NOT NULL,
  cid BLOB NOT NULL,
  PRIMARY KEY(call_id, dir, name)) WITHOUT ROWID;
CREATE INDEX call_io_by_ref ON call_io(hid, dir);
)sql";

constexpr int dir_in = 0;
constexpr int dir_out = 1;

std::string json_list(const std::vector<std::string>& names) { return nlohmann::json(names).dump(); }

std::vector<std::string> parse_list(const std::string& text) {
  try {
    return nlohmann::json::parse(text).get<std::vector<std::string>>();
  } catch (const std::exception&) {
    throw Error(Errc::corrupt_store, "the ops table holds an unreadable name list: " + text.substr(0, 80));
  }
}

class SqliteStore final : public Store {
 public:
  SqliteStore(const fs::path& path, const SqliteOptions& options) : m_options(options) {
    const bool memory = path.empty();
    if (!memory) m_blobs.emplace(fs::path(path.string() + ".blobs"));
    open(path, memory);
  }

  std::optional<CallRecord> call_by_hid(const Id& hid) override {
    return reading([&]() -> std::optional<CallRecord> {
      return whole_call(stmt(m_call_by_hid, std::string(whole_call_sql) + "c.hid = ?1 ORDER BY io.dir, io.name"), hid);
    });
  }

  std::optional<CallRecord> call_by_cid(const Id& cid) override {
    return reading([&]() -> std::optional<CallRecord> {
      return whole_call(
          stmt(m_call_by_cid, std::string(whole_call_sql) + "c.id = (SELECT id FROM calls WHERE cid = ?1 LIMIT 1) "
                                                            "ORDER BY io.dir, io.name"),
          cid);
    });
  }

  std::optional<std::vector<std::byte>> value(const Id& cid) override {
    return reading([&]() -> std::optional<std::vector<std::byte>> {
      auto& st = stmt(m_value, "SELECT data IS NULL, data FROM \"values\" WHERE cid = ?1");
      st.bind(1, cid);
      if (!st.step()) return std::nullopt;
      const bool in_file = st.int64(0) != 0;
      std::vector<std::byte> bytes;
      if (!in_file) bytes = st.blob(1);
      st.reset();
      if (!in_file) return verified(cid, std::move(bytes));
      if (!m_blobs)
        throw Error(Errc::corrupt_store, "value " + cid.hex() + " is marked as a blob file but the store has none");
      auto from_file = m_blobs->read(cid);
      if (!from_file)
        throw Error(Errc::corrupt_store, "the blob file of value " + cid.hex() + " is missing (" +
                                             m_blobs->path_of(cid).string() +
                                             "); restore it from a backup or drop the calls that use it");
      return from_file;
    });
  }

  bool has_value(const Id& cid) override {
    return reading([&]() -> bool {
      auto& st = stmt(m_has_value, "SELECT data IS NULL FROM \"values\" WHERE cid = ?1");
      st.bind(1, cid);
      const bool found = st.step();
      const bool in_file = found && st.int64(0) != 0;
      st.reset();
      // A blob value whose file is gone (an interrupted cleanup) counts as absent, so the next
      // write of it brings the file back.
      if (in_file && m_blobs) {
        std::error_code ec;
        return fs::exists(m_blobs->path_of(cid), ec);
      }
      return found;
    });
  }

  std::optional<OpRecord> op(std::string_view name, std::uint32_t version) override {
    return reading([&]() -> std::optional<OpRecord> {
      auto& st = stmt(m_op, "SELECT inputs, outputs FROM ops WHERE name = ?1 AND version = ?2");
      st.bind(1, name).bind(2, std::int64_t{version});
      if (!st.step()) return std::nullopt;
      OpRecord r{std::string(name), version, parse_list(st.text(0)), parse_list(st.text(1))};
      st.reset();
      return r;
    });
  }

  void write(const WriteBatch& batch) override {
    if (batch.empty()) return;
    writing([&] { write_once(batch); });
  }

  void write_once(const WriteBatch& batch) {
    sql::Transaction tx(m_db.get());
    // Blob files first, and inside the write lock: a crash before the commit leaves at most an
    // unreferenced file (removed by cleanup), never a row without its file; and cleanup(), which
    // removes files no row refers to under the same lock, never sees a file whose row is about to
    // be committed. A value whose file is missing (a cleanup interrupted between removing files
    // and its commit) gets it back here.
    for (const auto& v : batch.values)
      if (is_blob(v.bytes)) m_blobs->write(v.cid, v.bytes);

    std::map<std::pair<std::string, std::uint32_t>, std::int64_t> op_ids;
    auto& upsert_op = stmt(m_upsert_op,
                           "INSERT INTO ops(name, version, inputs, outputs) VALUES(?1, ?2, ?3, ?4) "
                           "ON CONFLICT(name, version) DO UPDATE SET inputs = excluded.inputs");
    for (const auto& o : batch.ops)
      upsert_op.bind(1, o.name)
          .bind(2, std::int64_t{o.version})
          .bind(3, json_list(o.inputs))
          .bind(4, json_list(o.outputs))
          .run();

    auto& put_value = stmt(m_put_value, "INSERT OR IGNORE INTO \"values\"(cid, size, data) VALUES(?1, ?2, ?3)");
    for (const auto& v : batch.values) {
      put_value.bind(1, v.cid).bind(2, static_cast<std::int64_t>(v.bytes.size()));
      if (is_blob(v.bytes)) put_value.bind_null(3);
      else put_value.bind_blob(3, v.bytes);
      put_value.run();
    }

    auto& put_call = stmt(m_put_call, "INSERT OR IGNORE INTO calls(hid, cid, op_id, created) VALUES(?1, ?2, ?3, ?4)");
    auto& put_io = stmt(m_put_io, "INSERT INTO call_io(call_id, dir, name, hid, cid) VALUES(?1, ?2, ?3, ?4, ?5)");
    for (const auto& call : batch.calls) {
      const CallRecord& c = *call;
      const auto key = std::make_pair(c.op, c.version);
      auto it = op_ids.find(key);
      if (it == op_ids.end()) it = op_ids.emplace(key, op_id(c.op, c.version)).first;
      put_call.bind(1, c.hid).bind(2, c.cid).bind(3, it->second).bind(4, c.created_ms).run();
      if (sqlite3_changes(m_db.get()) == 0) continue;  // stored already (another process, or earlier)
      const std::int64_t call_id = sqlite3_last_insert_rowid(m_db.get());
      for (const auto& in : c.inputs)
        put_io.bind(1, call_id).bind(2, std::int64_t{dir_in}).bind(3, in.name).bind(4, in.hid).bind(5, in.cid).run();
      for (const auto& out : c.outputs)
        put_io.bind(1, call_id)
            .bind(2, std::int64_t{dir_out})
            .bind(3, out.name)
            .bind(4, out.hid)
            .bind(5, out.cid)
            .run();
    }
    tx.commit();
  }

  std::optional<Id> ref_cid(const Id& hid) override {
    return reading([&]() -> std::optional<Id> {
      auto& st = stmt(m_ref_cid, "SELECT cid FROM call_io WHERE hid = ?1 LIMIT 1");
      st.bind(1, hid);
      if (!st.step()) return std::nullopt;
      Id cid = st.id(0);
      st.reset();
      return cid;
    });
  }

  std::optional<CallRecord> creator_of(const Id& ref_hid) override {
    return reading([&]() -> std::optional<CallRecord> {
      auto ids = call_ids("SELECT call_id FROM call_io WHERE hid = ?1 AND dir = 1", ref_hid);
      if (ids.empty()) return std::nullopt;
      return load_call(ids.front());
    });
  }

  std::vector<CallRecord> consumers_of(const Id& ref_hid) override {
    return reading([&]() -> std::vector<CallRecord> {
      std::vector<CallRecord> out;
      for (auto id : call_ids("SELECT call_id FROM call_io WHERE hid = ?1 AND dir = 0 ORDER BY call_id", ref_hid))
        out.push_back(*load_call(id));
      return out;
    });
  }

  std::vector<CallRecord> calls_of(std::string_view op, std::optional<std::uint32_t> version) override {
    return reading([&]() -> std::vector<CallRecord> {
      // Two ordered scans merged by call id: one query for the headers, one for all their io rows.
      const std::string filter = version ? "o.name = ?1 AND o.version = ?2" : "o.name = ?1";
      sql::Statement heads(m_db.get(),
                           "SELECT c.id, c.hid, c.cid, o.name, o.version, c.created FROM calls c "
                           "JOIN ops o ON o.id = c.op_id WHERE " +
                               filter + " ORDER BY c.id");
      sql::Statement io(m_db.get(),
                        "SELECT io.call_id, io.dir, io.name, io.hid, io.cid FROM call_io io "
                        "JOIN calls c ON c.id = io.call_id JOIN ops o ON o.id = c.op_id WHERE " +
                            filter + " ORDER BY io.call_id");
      for (auto* st : {&heads, &io}) {
        st->bind(1, op);
        if (version) st->bind(2, std::int64_t{*version});
      }
      std::vector<CallRecord> out;
      std::vector<std::int64_t> ids;
      while (heads.step()) {
        ids.push_back(heads.int64(0));
        out.push_back(header_from(heads, 1));
      }
      std::size_t i = 0;
      while (io.step()) {
        const auto call_id = io.int64(0);
        while (i < ids.size() && ids[i] < call_id) ++i;
        if (i == ids.size() || ids[i] != call_id) continue;
        add_io(out[i], io, 1);
      }
      return out;
    });
  }

  std::vector<CallRecord> creators_of_many(std::span<const Id> ref_hids) override {
    return reading([&]() -> std::vector<CallRecord> {
      return load_calls(ids_where(ref_hids, "SELECT DISTINCT call_id FROM call_io WHERE dir = 1 AND hid IN ("));
    });
  }

  std::vector<CallRecord> consumers_of_many(std::span<const Id> ref_hids) override {
    return reading([&]() -> std::vector<CallRecord> {
      return load_calls(ids_where(ref_hids, "SELECT DISTINCT call_id FROM call_io WHERE dir = 0 AND hid IN ("));
    });
  }

  std::vector<CallRecord> calls_by_hids(std::span<const Id> call_hids) override {
    return reading([&]() -> std::vector<CallRecord> {
      return load_calls(ids_where(call_hids, "SELECT id FROM calls WHERE hid IN ("));
    });
  }

  std::vector<std::optional<std::vector<std::byte>>> values_many(std::span<const Id> cids) override {
    return reading([&]() -> std::vector<std::optional<std::vector<std::byte>>> {
      std::vector<std::optional<std::vector<std::byte>>> out(cids.size());
      std::unordered_map<Id, std::vector<std::size_t>> where;
      for (std::size_t i = 0; i < cids.size(); ++i) where[cids[i]].push_back(i);
      std::vector<Id> distinct;
      distinct.reserve(where.size());
      for (const auto& [cid, _] : where) distinct.push_back(cid);
      std::vector<Id> in_files;
      for_chunks(distinct, "SELECT cid, data IS NULL, data FROM \"values\" WHERE cid IN (", [&](sql::Statement& st) {
        const Id cid = st.id(0);
        if (st.int64(1) != 0) {
          in_files.push_back(cid);
          return;
        }
        auto bytes = verified(cid, st.blob(2));
        for (auto i : where[cid]) out[i] = bytes;
      });
      for (const auto& cid : in_files) {
        auto bytes = value(cid);
        for (auto i : where[cid]) out[i] = bytes;
      }
      return out;
    });
  }

  std::size_t drop_calls(std::span<const Id> call_hids, bool dependents) override {
    return writing([&] { return drop_calls_once(call_hids, dependents); });
  }

  std::size_t drop_calls_once(std::span<const Id> call_hids, bool dependents) {
    sql::Transaction tx(m_db.get());
    sql::exec(m_db.get(),
              "CREATE TEMP TABLE IF NOT EXISTS drop_roots(hid BLOB PRIMARY KEY) WITHOUT ROWID;"
              "CREATE TEMP TABLE IF NOT EXISTS drop_ids(id INTEGER PRIMARY KEY);"
              "DELETE FROM temp.drop_roots; DELETE FROM temp.drop_ids;");
    {
      sql::Statement put(m_db.get(), "INSERT OR IGNORE INTO temp.drop_roots(hid) VALUES(?1)");
      for (const auto& h : call_hids) put.bind(1, h).run();
    }
    if (dependents) {
      sql::exec(m_db.get(),
                "INSERT INTO temp.drop_ids(id) "
                "WITH RECURSIVE doomed(id) AS ("
                "  SELECT c.id FROM calls c JOIN temp.drop_roots r ON r.hid = c.hid"
                "  UNION"
                "  SELECT cons.call_id FROM doomed d"
                "  JOIN call_io o ON o.call_id = d.id AND o.dir = 1"
                "  JOIN call_io cons ON cons.hid = o.hid AND cons.dir = 0"
                ") SELECT id FROM doomed");
    } else {
      sql::exec(m_db.get(),
                "INSERT INTO temp.drop_ids(id) SELECT c.id FROM calls c JOIN temp.drop_roots r ON r.hid = c.hid");
    }
    sql::exec(m_db.get(), "DELETE FROM call_io WHERE call_id IN (SELECT id FROM temp.drop_ids)");
    sql::exec(m_db.get(), "DELETE FROM calls WHERE id IN (SELECT id FROM temp.drop_ids)");
    const auto removed = static_cast<std::size_t>(sqlite3_changes(m_db.get()));
    sql::exec(m_db.get(), "DELETE FROM temp.drop_roots; DELETE FROM temp.drop_ids;");
    tx.commit();
    return removed;
  }

  CleanupReport cleanup() override {
    return writing([&] { return cleanup_once(); });
  }

  CleanupReport cleanup_once() {
    CleanupReport report;
    sql::Transaction tx(m_db.get());
    std::vector<Id> doomed_files;
    {
      sql::Statement unref(m_db.get(),
                           "SELECT cid, size, data IS NULL FROM \"values\" WHERE cid NOT IN (SELECT cid FROM call_io)");
      while (unref.step()) {
        ++report.values_removed;
        report.bytes_freed += static_cast<std::uint64_t>(unref.int64(1));
        if (unref.int64(2) != 0) doomed_files.push_back(unref.id(0));
      }
    }
    sql::exec(m_db.get(), "DELETE FROM \"values\" WHERE cid NOT IN (SELECT cid FROM call_io)");
    if (m_blobs) {
      // Under the write lock every writer has committed or given up, so a file without a row
      // (or a temporary) is a leftover of a failed or killed flush. Files go before the commit: if
      // it fails, the kept rows are of values no call uses, and the next write of such a value
      // writes its file again.
      std::set<Id> doomed(doomed_files.begin(), doomed_files.end());
      sql::Statement row(m_db.get(), "SELECT 1 FROM \"values\" WHERE cid = ?1");
      for (const auto& cid : m_blobs->list()) {
        row.bind(1, cid);
        if (!row.step()) doomed.insert(cid);
        row.reset();
      }
      for (const auto& cid : doomed)
        if (m_blobs->remove(cid)) ++report.blob_files_removed;
      m_blobs->remove_temporaries(std::chrono::seconds(0));
    }
    tx.commit();
    return report;
  }

  StorageStats stats() override {
    return reading([&]() -> StorageStats {
      StorageStats s;
      auto count = [&](const char* q) {
        sql::Statement st(m_db.get(), q);
        return st.step() ? static_cast<std::uint64_t>(st.int64(0)) : 0;
      };
      s.ops = count("SELECT COUNT(*) FROM ops");
      s.calls = count("SELECT COUNT(*) FROM calls");
      s.values = count("SELECT COUNT(*) FROM \"values\"");
      s.refs = count("SELECT COUNT(*) FROM (SELECT DISTINCT hid FROM call_io)");
      s.blob_files = count("SELECT COUNT(*) FROM \"values\" WHERE data IS NULL");
      s.value_bytes = count("SELECT COALESCE(SUM(size), 0) FROM \"values\"");
      return s;
    });
  }

  IntegrityReport check_integrity(const ProgressCallback& progress) override {
    end_read();
    return sql::retry_while_busy(
        m_backoff, [&] { return store::check_integrity(m_db.get(), m_blobs ? &*m_blobs : nullptr, progress); },
        [&] { abort_transaction(); });
  }

  void end_read() override {
    if (!m_reading) return;
    m_reading = false;
    if (sqlite3_get_autocommit(m_db.get()) == 0) sql::exec(m_db.get(), "COMMIT");
  }

 private:
  /// Opens a deferred read transaction unless one is open: consecutive lookups then share one
  /// snapshot and skip SQLite's per-statement lock round trips.
  void begin_read() {
    if (m_reading) return;
    if (sqlite3_get_autocommit(m_db.get()) != 0) sql::exec(m_db.get(), "BEGIN");
    m_reading = true;
  }

  /// A read (inside the shared snapshot), retried from scratch while another connection's lock
  /// is in the way.
  template <class F>
  std::invoke_result_t<F&> reading(F&& read) {
    return sql::retry_while_busy(
        m_backoff,
        [&] {
          begin_read();
          return read();
        },
        [&] { abort_transaction(); });
  }

  /// A whole write transaction, retried from scratch while another connection's lock is in the
  /// way (each attempt rolls back completely before the next).
  template <class F>
  std::invoke_result_t<F&> writing(F&& write) {
    require_writable();
    end_read();
    return sql::retry_while_busy(m_backoff, write, [&] { abort_transaction(); });
  }

  void abort_transaction() {
    m_reading = false;
    if (sqlite3_get_autocommit(m_db.get()) == 0) sqlite3_exec(m_db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
  }

  void open(const fs::path& path, bool memory) {
    const bool existed = !memory && fs::exists(path);
    if (m_options.read_only && !existed)
      throw Error(Errc::not_found, "no store at " + path.string() + " (opened read-only, so none is created)");
    if (existed && fs::is_directory(path))
      throw Error(Errc::invalid_argument, path.string() + " is a directory; pass the path of a store file");
    int flags = SQLITE_OPEN_NOMUTEX;
    flags |= m_options.read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    const std::string name = memory ? std::string(":memory:") : path.string();
    if (!memory) warn_if_network_file_system(path);
    sqlite3* raw = nullptr;
    const int rc = sqlite3_open_v2(name.c_str(), &raw, flags, nullptr);
    m_db.reset(raw);
    if (rc != SQLITE_OK) sql::throw_sqlite(m_db.get(), rc, "opening " + name);
    sqlite3_extended_result_codes(m_db.get(), 1);
    sql::install_busy_handler(m_db.get(), m_backoff);
    // Another process may be creating or recovering the same file: retry the whole check.
    sql::retry_while_busy(
        m_backoff, [&] { validate_and_prepare(name, memory); }, [&] { abort_transaction(); });
  }

  /// Validates before anything that could write, so a foreign file is left as it was; creates
  /// the schema in a new file.
  void validate_and_prepare(const std::string& name, bool memory) {
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
      check_meta(name);
      if (!memory && !m_options.read_only) sql::exec(m_db.get(), "PRAGMA journal_mode=WAL");
    }
    // NORMAL: a commit survives a crash of the process (the log is written before COMMIT
    // returns); FULL also syncs the log at each commit, so it survives power loss and OS crashes.
    if (!memory)
      sql::exec(m_db.get(), m_options.durable_flush ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    // Lookups hit random index pages (ids are uniformly distributed): a large page cache and
    // memory-mapped reads keep them off the read() path. Both grow only as pages are used.
    sql::exec(m_db.get(), "PRAGMA cache_size=-262144");
    if (!memory) sql::exec(m_db.get(), "PRAGMA mmap_size=1073741824");
  }

  void initialize(bool memory) {
    if (!memory) sql::exec(m_db.get(), "PRAGMA journal_mode=WAL");
    sql::Transaction tx(m_db.get());
    {
      // Another process may have initialized the file while we waited for the lock.
      sql::Statement t(m_db.get(), "SELECT COUNT(*) FROM sqlite_master");
      if (t.step() && t.int64(0) > 0) {
        t.reset();
        tx.commit();
        check_meta("the store");
        return;
      }
    }
    sql::exec(m_db.get(), schema_sql);
    sql::exec(m_db.get(), ("PRAGMA application_id=" + std::to_string(application_id)).c_str());
    sql::exec(m_db.get(), ("PRAGMA user_version=" + std::to_string(schema_version)).c_str());
    sql::Statement meta(m_db.get(), "INSERT INTO meta(key, value) VALUES(?1, ?2)");
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
    tx.commit();
  }

  void check_meta(const std::string& name) {
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
    if (v != std::to_string(schema_version)) {
      const bool newer = !v.empty() && std::stoll(v) > schema_version;
      throw Error(Errc::schema_mismatch, name + " has schema version " + v + " but this mandala reads version " +
                                             std::to_string(schema_version) +
                                             (newer ? ": it was written by a newer mandala; upgrade mandala to open it"
                                                    : ": migrate it with the mandala version that wrote it"));
    }
    if (meta["hash"] != codec::hash_name || meta["encoding"] != wire::encoding_name)
      throw Error(Errc::schema_mismatch, name + " uses hash '" + meta["hash"] + "' and encoding '" + meta["encoding"] +
                                             "'; this mandala uses '" + codec::hash_name + "' and '" +
                                             wire::encoding_name + "'");
  }

  /// Stored bytes checked against their id: damage in the database is reported, never decoded.
  static std::vector<std::byte> verified(const Id& cid, std::vector<std::byte> bytes) {
    if (codec::content_id(bytes) != cid)
      throw Error(Errc::corrupt_store, "value " + cid.hex() +
                                           " is damaged in the database (its bytes do not match its id); restore "
                                           "the store from a backup or drop the calls that use it");
    return bytes;
  }

  void require_writable() const {
    if (m_options.read_only)
      throw Error(Errc::io, "the store was opened read-only; open it writable to record or remove calls");
  }

  [[nodiscard]] bool is_blob(const std::vector<std::byte>& bytes) const {
    return m_blobs && bytes.size() > m_options.blob_threshold_bytes;
  }

  sql::Statement& stmt(std::unique_ptr<sql::Statement>& slot, std::string_view text) {
    if (!slot) slot = std::make_unique<sql::Statement>(m_db.get(), text);
    return *slot;
  }

  std::int64_t op_id(const std::string& name, std::uint32_t version) {
    auto& st = stmt(m_op_id, "SELECT id FROM ops WHERE name = ?1 AND version = ?2");
    st.bind(1, name).bind(2, std::int64_t{version});
    if (!st.step())
      throw Error(Errc::corrupt_store, "op " + name + " version " + std::to_string(version) + " is not registered");
    const auto id = st.int64(0);
    st.reset();
    return id;
  }

  std::vector<std::int64_t> call_ids(const char* query, const Id& hid) {
    sql::Statement st(m_db.get(), query);
    st.bind(1, hid);
    std::vector<std::int64_t> out;
    while (st.step()) out.push_back(st.int64(0));
    return out;
  }

  static constexpr std::size_t chunk_size = 256;

  /// Runs `prefix ?,?,...)` over `ids` in chunks of at most chunk_size, calling `row` per result.
  template <class F>
  void for_chunks(std::span<const Id> ids, std::string_view prefix, F&& row) {
    for (std::size_t begin = 0; begin < ids.size(); begin += chunk_size) {
      const std::size_t n = std::min(chunk_size, ids.size() - begin);
      auto& st = chunk_statement(prefix, n);
      for (std::size_t i = 0; i < n; ++i) st.bind(static_cast<int>(i + 1), ids[begin + i]);
      while (st.step()) row(st);
      st.reset();
    }
  }

  sql::Statement& chunk_statement(std::string_view prefix, std::size_t n) {
    auto& slot = m_chunk_statements[std::make_pair(std::string(prefix), n)];
    if (!slot) {
      std::string text(prefix);
      for (std::size_t i = 0; i < n; ++i) text += i ? ",?" : "?";
      text += ")";
      slot = std::make_unique<sql::Statement>(m_db.get(), text);
    }
    return *slot;
  }

  std::vector<std::int64_t> ids_where(std::span<const Id> ids, std::string_view prefix) {
    std::vector<std::int64_t> out;
    for_chunks(ids, prefix, [&](sql::Statement& st) { out.push_back(st.int64(0)); });
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }

  /// Loads calls by storage id (sorted, unique) with two chunked queries per chunk.
  std::vector<CallRecord> load_calls(const std::vector<std::int64_t>& ids) {
    std::vector<CallRecord> out;
    out.reserve(ids.size());
    for (std::size_t begin = 0; begin < ids.size(); begin += chunk_size) {
      const std::size_t n = std::min(chunk_size, ids.size() - begin);
      auto& heads = chunk_statement(
          "SELECT c.id, c.hid, c.cid, o.name, o.version, c.created FROM calls c "
          "JOIN ops o ON o.id = c.op_id WHERE c.id IN (",
          n);
      for (std::size_t i = 0; i < n; ++i) heads.bind(static_cast<int>(i + 1), ids[begin + i]);
      std::unordered_map<std::int64_t, std::size_t> pos;
      while (heads.step()) {
        pos.emplace(heads.int64(0), out.size());
        out.push_back(header_from(heads, 1));
      }
      heads.reset();
      auto& io = chunk_statement("SELECT call_id, dir, name, hid, cid FROM call_io WHERE call_id IN (", n);
      for (std::size_t i = 0; i < n; ++i) io.bind(static_cast<int>(i + 1), ids[begin + i]);
      while (io.step()) {
        auto it = pos.find(io.int64(0));
        if (it != pos.end()) add_io(out[it->second], io, 1);
      }
      io.reset();
    }
    for (auto& r : out) {  // io rows come in primary-key order per call, but sort to be sure
      auto by_name = [](const IoRef& a, const IoRef& b) { return a.name < b.name; };
      std::sort(r.inputs.begin(), r.inputs.end(), by_name);
      std::sort(r.outputs.begin(), r.outputs.end(), by_name);
    }
    return out;
  }

  static CallRecord header_from(const sql::Statement& st, int first) {
    CallRecord r;
    r.hid = st.id(first);
    r.cid = st.id(first + 1);
    r.op = st.text(first + 2);
    r.version = static_cast<std::uint32_t>(st.int64(first + 3));
    r.created_ms = st.int64(first + 4);
    return r;
  }

  static void add_io(CallRecord& r, const sql::Statement& st, int first) {
    IoRef ref{st.text(first + 1), st.id(first + 2), st.id(first + 3)};
    (st.int64(first) == dir_in ? r.inputs : r.outputs).push_back(std::move(ref));
  }

  /// One call with its inputs and outputs in one statement (the lookup hot path): one row per
  /// input/output, or a single row with NULL io columns for a call without any.
  static constexpr const char* whole_call_sql =
      "SELECT c.hid, c.cid, o.name, o.version, c.created, io.dir, io.name, io.hid, io.cid FROM calls c "
      "JOIN ops o ON o.id = c.op_id LEFT JOIN call_io io ON io.call_id = c.id WHERE ";

  static std::optional<CallRecord> whole_call(sql::Statement& st, const Id& key) {
    st.bind(1, key);
    if (!st.step()) return std::nullopt;
    CallRecord r = header_from(st, 0);
    do {
      if (!st.is_null(5)) add_io(r, st, 5);
    } while (st.step());
    return r;
  }

  std::optional<CallRecord> load_call(std::int64_t id) {
    auto& head = stmt(m_head,
                      "SELECT c.hid, c.cid, o.name, o.version, c.created FROM calls c "
                      "JOIN ops o ON o.id = c.op_id WHERE c.id = ?1");
    head.bind(1, id);
    if (!head.step()) return std::nullopt;
    CallRecord r = header_from(head, 0);
    head.reset();
    auto& io = stmt(m_io, "SELECT dir, name, hid, cid FROM call_io WHERE call_id = ?1 ORDER BY dir, name");
    io.bind(1, id);
    while (io.step()) add_io(r, io, 0);
    io.reset();
    return r;
  }

  SqliteOptions m_options;
  sql::Backoff m_backoff{m_options.lock_timeout};
  sql::DbHandle m_db;
  std::optional<BlobFiles> m_blobs;
  bool m_reading = false;
  std::map<std::pair<std::string, std::size_t>, std::unique_ptr<sql::Statement>> m_chunk_statements;
  std::unique_ptr<sql::Statement> m_call_by_hid, m_call_by_cid, m_value, m_has_value, m_op, m_upsert_op, m_put_value,
      m_put_call, m_put_io, m_ref_cid, m_op_id, m_head, m_io;
};

}  // namespace

std::unique_ptr<Store> open_sqlite_store(const fs::path& path, const SqliteOptions& options) {
  return std::make_unique<SqliteStore>(path, options);
}

}  // namespace mandala::store
