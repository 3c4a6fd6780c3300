// The SQLite backend of Store. Schema and on-disk rules: docs/storage-format.md.

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>

#include <stdlib.h>  // mkdtemp

#include <nlohmann/json.hpp>

#include "codec/hash.hpp"
#include "codec/wire.hpp"
#include "store/blob_files.hpp"
#include "store/call_io.hpp"
#include "store/file_system.hpp"
#include "store/sqlite/claims.hpp"
#include "store/sqlite/counters.hpp"
#include "store/sqlite/integrity.hpp"
#include "store/sqlite/sqlite.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "store/sqlite/version_tables.hpp"
#include "store/store.hpp"

namespace mandala::store {
namespace fs = std::filesystem;
namespace {

constexpr std::int64_t application_id = 0x4D4E444C;  // "MNDL"
// 3: code-version tables (store/sqlite/version_tables.cpp); 4: counters; 5: calls.semantic; 6: content
// ids of calls of raw inputs derived, not stored (calls_by_cid partial)
constexpr int schema_version = 6;
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

constexpr const char* calls_by_cid_sql = "CREATE INDEX calls_by_cid ON calls(substr(cid, 1, 8)) WHERE length(cid) = 16";

constexpr int dir_in = 0;
constexpr int dir_out = 1;

std::string json_list(const std::vector<std::string>& names) { return nlohmann::json(names).dump(); }

/// A name list of the ops table; `store` (its file) names the store in the error.
std::vector<std::string> parse_list(const std::string& text, const std::string& store) {
  try {
    return nlohmann::json::parse(text).get<std::vector<std::string>>();
  } catch (const std::exception&) {
    throw Error(Errc::corrupt_store, store + ": the ops table holds an unreadable name list: " + text.substr(0, 80) +
                                         "; the store is damaged: restore it from a backup");
  }
}

/// What the store keeps in memory about each op (ops are few; calls refer to them by id).
struct OpRow {
  std::string name;
  std::uint32_t version = 0;
  std::vector<std::string> outputs;
};

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

/// What tells that a file has been written: its identity, size and change times.
struct FileStamp {
  dev_t device = 0;
  ino_t inode = 0;
  off_t size = 0;
  std::int64_t modified_ns = 0;
  std::int64_t changed_ns = 0;
  bool operator==(const FileStamp&) const = default;
};

std::optional<FileStamp> stamp_of(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  const auto ns = [](const timespec& t) { return std::int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec; };
  return FileStamp{st.st_dev, st.st_ino, st.st_size, ns(st.st_mtim), ns(st.st_ctim)};
}

/// The -wal and -shm files a read-only connection made SQLite create beside a store, or that a
/// writer could not remove because the reader was open, removed once the reader is closed.
/// SQLite removes them when the last connection closes only if that connection may write (it
/// checkpoints, then deletes them); a reader that could create them may write the directory, so
/// it opens the store writable for a moment and closes it again, which removes them when no
/// other connection is open (and leaves them to the last one otherwise).
/// Declared before the connection it cleans up after, so it runs once that one is closed, also
/// when opening failed.
class ReaderLogs {
 public:
  ReaderLogs() = default;
  ReaderLogs(const ReaderLogs&) = delete;
  ReaderLogs& operator=(const ReaderLogs&) = delete;
  ~ReaderLogs() {
    if (!m_db.empty()) remove_unused();
  }

  /// Called before the read-only connection opens `db`.
  void watch(const fs::path& db) {
    m_db = db;
    m_log_at_open = stamp_of(beside(db, "-wal"));
  }

 private:
  void remove_unused() const noexcept {
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

  fs::path m_db;
  std::optional<FileStamp> m_log_at_open;
};

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

class SqliteStore final : public Store {
 public:
  SqliteStore(const fs::path& path, const StoreOptions& options) : m_options(options), m_memory(path.empty()) {
    if (!m_memory) m_blobs.emplace(fs::path(path.string() + ".blobs"));
    open(path, m_memory);
    if (!m_memory && !options.read_only) m_claims.emplace(path, options.lock_timeout);
  }

  ~SqliteStore() override {
    std::error_code ec;
    if (!m_temporary_blob_dir.empty()) fs::remove_all(m_temporary_blob_dir, ec);
  }

  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  std::optional<CallRecord> call_by_hid(const Id& hid) override {
    return reading([&]() -> std::optional<CallRecord> { return one_call(call_by_hid_statement().bind(1, hid)); });
  }

  std::optional<CallRecord> call_by_content(const Id& cid, const Id* raw_hid) override {
    return reading([&]() -> std::optional<CallRecord> {
      // Calls with a stored content id (length 16: the partial index's condition, so it is used).
      auto& st = m_call_by_cid ? *m_call_by_cid
                               : stmt(m_call_by_cid, call_columns() +
                                                         "WHERE substr(cid, 1, 8) = substr(?1, 1, 8) AND cid = ?1 "
                                                         "AND length(cid) = 16 LIMIT 1");
      if (auto found = one_call(st.bind(1, cid))) return found;
      if (raw_hid == nullptr) return std::nullopt;
      // A call of raw inputs with this content has the hid `raw_hid`.
      auto& by_hid = call_by_hid_statement();
      auto found = one_call(by_hid.bind(1, *raw_hid));
      if (found && found->cid != cid) found.reset();
      return found;
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
    // A blob value whose file is gone (an interrupted cleanup) counts as absent, so the next
    // write of it brings the file back.
    return reading([&] { return value_readable(cid); });
  }

  std::vector<Id> absent_values(std::span<const Id> cids) override {
    return reading([&] {
      std::vector<Id> out;
      std::unordered_set<Id> seen;
      for (const auto& cid : cids)
        if (seen.insert(cid).second && !value_readable(cid)) out.push_back(cid);
      return out;
    });
  }

  std::optional<OpRecord> op(std::string_view name, std::uint32_t version) override {
    return reading([&] { return op_locked(name, version); });
  }

  std::optional<OpRecord> op_locked(std::string_view name, std::uint32_t version) {
    auto& st = stmt(m_op, "SELECT inputs, outputs FROM ops WHERE name = ?1 AND version = ?2");
    st.bind(1, name).bind(2, std::int64_t{version});
    if (!st.step()) return std::nullopt;
    OpRecord r{std::string(name), version, parse_list(st.text(0), where()), parse_list(st.text(1), where())};
    st.reset();
    return r;
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
      if (is_blob(v.bytes)) blobs_for_writing(v.bytes.size()).write(v.cid, v.bytes);

    try {
      // Under the write lock: no other connection commits between this look and the commit.
      look();
      write_locked(batch, m_generation == batch.generation);
      tx.commit();
    } catch (...) {
      m_ops_by_id.clear();  // ids of ops and semantic versions inserted by the rolled-back
      m_op_ids.clear();     // transaction are void
      m_semantic_numbers.clear();
      m_semantics_by_number.clear();
      ++m_generation;  // what the writer learnt is no longer vouched for
      throw;
    }
  }

  std::uint64_t generation() override {
    if (m_reading) return m_generation;
    return reading([&] { return m_generation; });
  }

  /// SQLite's data version: it changes when another connection commits to the file (never for
  /// this connection's own commits). Starts a read snapshot when the connection has none.
  std::int64_t data_version() {
    auto& st = stmt(m_data_version, "PRAGMA data_version");
    const std::int64_t v = st.step() ? st.int64(0) : -1;
    st.reset();
    return v;
  }

  /// Counts a commit of another connection since the last look into m_generation. Called inside
  /// a transaction (its snapshot is what the data version describes).
  void look() {
    const std::int64_t v = data_version();
    if (v == m_seen_version) return;
    m_seen_version = v;
    ++m_generation;
  }

  std::optional<Id> ref_cid(const Id& hid) override {
    return reading([&]() -> std::optional<Id> {
      for (auto& rec : load_calls(ref_call_ids(hid, std::nullopt)))
        for (const auto* list : {&rec.outputs, &rec.inputs})
          for (const auto& r : *list)
            if (r.hid == hid) return r.cid;
      return std::nullopt;
    });
  }

  std::optional<CallRecord> creator_of(const Id& ref_hid) override {
    return reading([&]() -> std::optional<CallRecord> {
      for (auto& rec : load_calls(ref_call_ids(ref_hid, dir_out)))
        if (has_ref(rec.outputs, ref_hid)) return std::move(rec);
      return std::nullopt;
    });
  }

  std::vector<CallRecord> consumers_of(const Id& ref_hid) override {
    return reading([&]() -> std::vector<CallRecord> {
      auto calls = load_calls(ref_call_ids(ref_hid, dir_in));
      std::erase_if(calls, [&](const CallRecord& r) { return !has_ref(r.inputs, ref_hid); });
      return calls;
    });
  }

  std::vector<CallRecord> calls_of(std::string_view op, std::optional<std::uint32_t> version) override {
    return reading([&] { return collect([&](const CallSink& sink) { calls_of_locked(op, version, sink); }); });
  }

  void calls_of(std::string_view op, std::optional<std::uint32_t> version, const CallSink& sink) override {
    reading([&] { calls_of_locked(op, version, sink); });
  }

  std::vector<CallRecord> creators_of_many(std::span<const Id> ref_hids) override {
    return reading([&] { return collect([&](const CallSink& sink) { refs_many(ref_hids, dir_out, sink); }); });
  }

  std::vector<CallRecord> consumers_of_many(std::span<const Id> ref_hids) override {
    return reading([&] { return collect([&](const CallSink& sink) { refs_many(ref_hids, dir_in, sink); }); });
  }

  void creators_of_many(std::span<const Id> ref_hids, const CallSink& sink) override {
    reading([&] { refs_many(ref_hids, dir_out, sink); });
  }

  void consumers_of_many(std::span<const Id> ref_hids, const CallSink& sink) override {
    reading([&] { refs_many(ref_hids, dir_in, sink); });
  }

  std::vector<CallRecord> calls_by_hids(std::span<const Id> call_hids) override {
    return reading([&]() -> std::vector<CallRecord> {
      const std::unordered_set<Id> wanted(call_hids.begin(), call_hids.end());
      std::vector<std::int64_t> ids;
      std::vector<CallRecord> found;
      for_chunks(
          call_hids, call_columns() + "WHERE substr(hid, 1, 8) IN (",
          [&](sql::Statement& st) {
            if (!wanted.contains(st.id(1))) return;
            ids.push_back(st.int64(0));
            found.push_back(record_from(st));
          },
          /*prefix_keys=*/true);
      return in_storage_order(std::move(ids), std::move(found));
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
    const auto todo = doomed_calls(call_hids, dependents);
    auto& del_ref = stmt(m_del_ref, "DELETE FROM call_refs WHERE key = ?1 AND dir = ?2 AND call_id = ?3");
    auto& del_call = stmt(m_del_call, "DELETE FROM calls WHERE id = ?1");
    std::size_t removed = 0;
    for (const auto& [id, rec] : todo) {
      for (const auto& r : rec.inputs)
        del_ref.bind(1, call_io::ref_key(r.hid)).bind(2, std::int64_t{dir_in}).bind(3, id).run();
      for (const auto& r : rec.outputs)
        del_ref.bind(1, call_io::ref_key(r.hid)).bind(2, std::int64_t{dir_out}).bind(3, id).run();
      del_call.bind(1, id).run();
      removed += static_cast<std::size_t>(sqlite3_changes(m_db.get()));
    }
    uncount_dropped(todo);
    tx.commit();
    return removed;
  }

  /// Takes dropped calls (already deleted, with their call_refs rows) off the counters.
  void uncount_dropped(const std::vector<std::pair<std::int64_t, CallRecord>>& dropped) {
    struct Op {
      std::int64_t calls = 0;
      std::int64_t output_bytes = 0;
    };
    std::map<std::int64_t, Op> ops;
    std::unordered_map<Id, std::int64_t> sizes;
    std::unordered_map<Id, bool> refs;  // each ref of the dropped calls: whether one of them output it
    for (const auto& [id, rec] : dropped) {
      auto& o = ops[op_id(rec.op, rec.version)];
      ++o.calls;
      for (const auto& r : rec.outputs) {
        auto size = sizes.find(r.cid);
        if (size == sizes.end()) size = sizes.emplace(r.cid, stored_size(r.cid)).first;
        o.output_bytes += size->second;
        refs[r.hid] = true;
      }
      for (const auto& r : rec.inputs) refs.try_emplace(r.hid, false);
    }
    std::int64_t refs_removed = 0;
    bool detached = false;
    for (const auto& [hid, output] : refs) {
      if (!ref_used(hid)) ++refs_removed;
      else if (output) detached = true;  // its consumers stay without it
    }
    auto& op_st = stmt(m_add_to_op, counters::add_to_op_sql);
    sql::Statement last(m_db.get(), counters::reset_last_created_sql);
    for (const auto& [id, o] : ops) {
      op_st.bind(1, id).bind(2, -o.calls).bind(3, -o.output_bytes).bind_null(4).run();
      last.bind(1, id).run();
    }
    stmt(m_add_to_totals, counters::add_to_totals_sql)
        .bind(1, std::int64_t{0})
        .bind(2, std::int64_t{0})
        .bind(3, std::int64_t{0})
        .bind(4, -refs_removed)
        .bind(5, std::int64_t{detached ? 1 : 0})
        .run();
  }

  /// Whether a stored call has this ref as an input or output: the calls with an index row of
  /// its key are read one by one until one has the whole hid, so a ref used by many calls costs
  /// one call's io.
  bool ref_used(const Id& hid) {
    auto& ids = stmt(m_ref_rows, "SELECT call_id FROM call_refs WHERE key = ?1");
    auto& load = stmt(m_call_by_id, call_columns() + "WHERE id = ?1");
    ids.bind(1, call_io::ref_key(hid));
    bool used = false;
    while (!used && ids.step()) {
      load.bind(1, ids.int64(0));
      if (load.step()) {
        const auto rec = record_from(load);
        used = has_ref(rec.inputs, hid) || has_ref(rec.outputs, hid);
      }
      load.reset();
    }
    ids.reset();
    return used;
  }

  std::vector<CallRecord> calls_to_drop(std::span<const Id> call_hids, bool dependents) override {
    return reading([&]() -> std::vector<CallRecord> {
      auto todo = doomed_calls(call_hids, dependents);
      std::sort(todo.begin(), todo.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      std::vector<CallRecord> out;
      out.reserve(todo.size());
      for (auto& [id, rec] : todo) out.push_back(std::move(rec));
      return out;
    });
  }

  /// The calls drop_calls removes (with their storage ids): the roots, and with `dependents`
  /// every call found breadth-first through their outputs' consumers.
  std::vector<std::pair<std::int64_t, CallRecord>> doomed_calls(std::span<const Id> call_hids, bool dependents) {
    std::unordered_set<std::int64_t> doomed;
    std::vector<std::pair<std::int64_t, CallRecord>> todo;
    auto take = [&](std::vector<std::int64_t> ids) {
      std::sort(ids.begin(), ids.end());
      ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
      std::erase_if(ids, [&](auto id) { return doomed.contains(id); });
      for (auto& [id, rec] : load_calls_with_ids(ids))
        if (doomed.insert(id).second) todo.emplace_back(id, std::move(rec));
    };
    {
      std::vector<std::int64_t> roots;
      const std::unordered_set<Id> wanted(call_hids.begin(), call_hids.end());
      for_chunks(
          call_hids, "SELECT id, hid FROM calls WHERE substr(hid, 1, 8) IN (",
          [&](sql::Statement& st) {
            if (wanted.contains(st.id(1))) roots.push_back(st.int64(0));
          },
          /*prefix_keys=*/true);
      std::sort(roots.begin(), roots.end());
      roots.erase(std::unique(roots.begin(), roots.end()), roots.end());
      take(std::move(roots));
    }
    for (std::size_t next = 0; dependents && next < todo.size(); ++next) {
      const auto [id, rec] = todo[next];  // a copy: take() below may grow `todo`
      {
        std::vector<std::int64_t> consumers;
        for (const auto& out : rec.outputs)
          for (auto c : ref_call_ids(out.hid, dir_in))
            if (!doomed.contains(c)) consumers.push_back(c);
        std::sort(consumers.begin(), consumers.end());
        consumers.erase(std::unique(consumers.begin(), consumers.end()), consumers.end());
        // Keep only real consumers (a key is a prefix of the hid).
        std::vector<std::int64_t> real;
        for (auto& [cid, c] : load_calls_with_ids(consumers))
          for (const auto& out : rec.outputs)
            if (has_ref(c.inputs, out.hid)) {
              real.push_back(cid);
              break;
            }
        take(std::move(real));
      }
    }
    return todo;
  }

  CleanupReport cleanup() override {
    return writing([&] { return cleanup_once(); });
  }

  CleanupReport cleanup_once() {
    CleanupReport report;
    sql::Transaction tx(m_db.get());
    std::vector<Id> doomed_files;
    {
      sql::Statement del(m_db.get(), "DELETE FROM \"values\" WHERE cid = ?1");
      for (const auto& cid : unreferenced_values(report, doomed_files)) del.bind(1, cid).run();
    }
    // A whole pass over the data anyway: the counters are counted afresh (this also repairs
    // counts that a change made behind the library's back left wrong, and clears `detached`
    // when no input lacks its creator any more).
    counters::replace(m_db.get(), counters::recount(m_db.get()));
    if (m_blobs) {
      // Under the write lock every writer has committed or given up, so a file without a row
      // (or a temporary) is a leftover of a failed or killed flush. Files go before the commit: if
      // it fails, the kept rows are of values no call uses, and the next write of such a value
      // writes its file again.
      for (const auto& cid : doomed_blob_files(doomed_files))
        if (m_blobs->remove(cid)) ++report.blob_files_removed;
      m_blobs->remove_temporaries(std::chrono::seconds(0));
    }
    tx.commit();
    return report;
  }

  CleanupReport cleanup_preview() override {
    return reading([&]() -> CleanupReport {
      CleanupReport report;
      std::vector<Id> in_files;
      (void)unreferenced_values(report, in_files);
      if (m_blobs) {
        std::error_code ec;
        for (const auto& cid : doomed_blob_files(in_files))
          if (fs::exists(m_blobs->path_of(cid), ec)) ++report.blob_files_removed;
      }
      return report;
    });
  }

  /// Values no call's io names, counted into `report`; those kept in files are added to
  /// `in_files`.
  std::vector<Id> unreferenced_values(CleanupReport& report, std::vector<Id>& in_files) {
    std::unordered_set<Id> used;  // every cid some call's io column names
    {
      sql::Statement all(m_db.get(), call_columns());
      while (all.step()) {
        const auto rec = record_from(all);
        for (const auto* list : {&rec.inputs, &rec.outputs})
          for (const auto& r : *list) used.insert(r.cid);
      }
    }
    sql::Statement scan(m_db.get(), "SELECT cid, size, data IS NULL FROM \"values\"");
    std::vector<Id> doomed;
    while (scan.step()) {
      const Id cid = scan.id(0);
      if (used.contains(cid)) continue;
      doomed.push_back(cid);
      ++report.values_removed;
      report.bytes_freed += static_cast<std::uint64_t>(scan.int64(1));
      if (scan.int64(2) != 0) in_files.push_back(cid);
    }
    return doomed;
  }

  /// Blob files cleanup removes: those of `unreferenced` values, and files without a row.
  std::set<Id> doomed_blob_files(const std::vector<Id>& unreferenced) {
    std::set<Id> doomed(unreferenced.begin(), unreferenced.end());
    sql::Statement row(m_db.get(), "SELECT 1 FROM \"values\" WHERE cid = ?1");
    for (const auto& cid : m_blobs->list()) {
      row.bind(1, cid);
      if (!row.step()) doomed.insert(cid);
      row.reset();
    }
    return doomed;
  }

  // ---- inspection (Store::info and the queries of the `mandala` command) ---------------------

  StorageInfo info() override {
    return reading([&]() -> StorageInfo {
      StorageInfo info;
      {
        sql::Statement st(m_db.get(), "SELECT key, value FROM meta WHERE key IN ('schema_version', 'created_ms')");
        while (st.step()) {
          const auto key = st.text(0);
          const auto value = st.text(1);
          try {
            if (key == "schema_version") info.schema_version = std::stoi(value);
            else info.created = std::chrono::system_clock::time_point(std::chrono::milliseconds(std::stoll(value)));
          } catch (const std::exception&) {
            throw Error(Errc::corrupt_store, "the meta table holds an unreadable " + key + ": '" + value + "'");
          }
        }
      }
      info.stats = stats();
      info.ops = op_summaries();
      if (!m_path.empty()) {
        std::error_code ec;
        for (const char* suffix : {"", "-wal"}) {
          const auto size = fs::file_size(fs::path(m_path.string() + suffix), ec);
          if (!ec) info.database_bytes += size;
        }
      }
      if (m_blobs) {
        std::error_code ec;
        for (const auto& cid : m_blobs->list()) {
          const auto size = fs::file_size(m_blobs->path_of(cid), ec);
          if (!ec) info.blob_file_bytes += size;
        }
      }
      return info;
    });
  }

  std::vector<OpSummary> op_summaries() override {
    return reading([&]() -> std::vector<OpSummary> {
      const auto counts = current_counts();
      std::vector<OpSummary> out;
      sql::Statement st(m_db.get(), "SELECT id, name, version, inputs, outputs FROM ops ORDER BY name, version");
      while (st.step()) {
        OpSummary op{st.text(1),
                     static_cast<std::uint32_t>(st.int64(2)),
                     parse_list(st.text(3), where()),
                     parse_list(st.text(4), where()),
                     0,
                     0,
                     std::nullopt};
        if (auto c = counts.ops.find(st.int64(0)); c != counts.ops.end()) {
          op.calls = c->second.calls;
          op.output_bytes = c->second.output_bytes;
          if (c->second.calls > 0 && c->second.last_created)
            op.last_call = std::chrono::system_clock::time_point(std::chrono::milliseconds(*c->second.last_created));
        }
        out.push_back(std::move(op));
      }
      return out;
    });
  }

  /// The counters (a few rows); a store of schema 3 opened read-only has none, and is counted.
  counters::Counts current_counts() {
    return m_counted_by_scan ? counters::recount(m_db.get()) : counters::load(m_db.get());
  }

  std::vector<CallRecord> calls_page(std::string_view op, const CallQuery& query) override {
    return reading([&]() -> std::vector<CallRecord> {
      std::string text = call_columns() + "WHERE op_id IN (SELECT id FROM ops WHERE name = ?1";
      text += query.version ? " AND version = ?2)" : ")";
      text += query.newest_first ? " ORDER BY id DESC" : " ORDER BY id";
      text += " LIMIT ?3 OFFSET ?4";
      sql::Statement st(m_db.get(), text);
      st.bind(1, op);
      if (query.version) st.bind(2, std::int64_t{*query.version});
      const auto clamp = [](std::size_t n) {
        return n > static_cast<std::size_t>(INT64_MAX) ? INT64_MAX : static_cast<std::int64_t>(n);
      };
      st.bind(3, clamp(query.limit)).bind(4, clamp(query.offset));
      std::vector<CallRecord> out;
      while (st.step()) out.push_back(record_from(st));
      return out;
    });
  }

  std::vector<Id> call_hids_between(const Id& lo, const Id& hi, std::size_t limit) override {
    return reading([&]() -> std::vector<Id> {
      sql::Statement st(m_db.get(),
                        "SELECT DISTINCT hid FROM calls WHERE substr(hid, 1, 8) BETWEEN substr(?1, 1, 8) AND "
                        "substr(?2, 1, 8) AND hid BETWEEN ?1 AND ?2 ORDER BY hid LIMIT ?3");
      st.bind(1, lo).bind(2, hi).bind(3, static_cast<std::int64_t>(limit));
      std::vector<Id> out;
      while (st.step()) out.push_back(st.id(0));
      return out;
    });
  }

  std::vector<Id> ref_hids_between(const Id& lo, const Id& hi, std::size_t limit) override {
    return reading([&]() -> std::vector<Id> {
      // Keys are the hids' first 8 bytes as signed integers: for a prefix of at least one hex
      // digit, lo and hi share the sign bit, so the key range is the hid range.
      sql::Statement st(m_db.get(), "SELECT DISTINCT call_id FROM call_refs WHERE key BETWEEN ?1 AND ?2");
      st.bind(1, call_io::ref_key(lo)).bind(2, call_io::ref_key(hi));
      std::vector<std::int64_t> ids;
      while (st.step()) ids.push_back(st.int64(0));
      std::set<Id> found;
      for (const auto& rec : load_calls(ids))
        for (const auto* list : {&rec.inputs, &rec.outputs})
          for (const auto& r : *list)
            if (r.hid >= lo && r.hid <= hi) found.insert(r.hid);
      std::vector<Id> out(found.begin(), found.end());
      if (out.size() > limit) out.resize(limit);
      return out;
    });
  }

  StorageStats stats() override {
    return reading([&]() -> StorageStats {
      const auto counts = current_counts();
      StorageStats s;
      sql::Statement ops(m_db.get(), "SELECT COUNT(*) FROM ops");
      if (ops.step()) s.ops = static_cast<std::uint64_t>(ops.int64(0));
      for (const auto& [id, o] : counts.ops) s.calls += o.calls;
      s.values = counts.totals.values;
      s.refs = counts.totals.refs;
      s.blob_files = counts.totals.blob_values;
      s.value_bytes = counts.totals.value_bytes;
      return s;
    });
  }

  IntegrityReport check_integrity(const ProgressCallback& progress) override {
    end_read();
    try {
      auto report = sql::retry_while_busy(
          m_backoff, [&] { return store::check_integrity(m_db.get(), m_blobs ? &*m_blobs : nullptr, progress); },
          [&] { abort_transaction(); });
      if (!report.ok()) throw_if_written_meanwhile();
      return report;
    } catch (const Error& e) {
      if (e.code() == Errc::corrupt_store) throw_if_written_meanwhile();
      throw;
    }
  }

  // Code versions: reads and writes retried like the others while another connection's lock is
  // in the way (and damage met by an unlocked read of a file written meanwhile reported as such).
  std::vector<CommitRecord> commits_of(std::string_view component) override {
    return reading([&] { return versions::commits_of(m_db.get(), component); });
  }
  std::optional<Id> head_of(std::string_view component) override {
    return reading([&] { return versions::head_of(m_db.get(), component); });
  }
  std::vector<VersionRecord> versions_of(std::string_view op) override {
    return reading([&] { return versions::versions_of(m_db.get(), op); });
  }
  void write_versioning(const VersioningWrite& changes) override {
    if (changes.empty()) return;
    writing([&] {
      sql::Transaction tx(m_db.get());
      versions::write(m_db.get(), changes);
      tx.commit();
    });
  }
  std::vector<std::pair<Id, Id>> call_versions_of(std::string_view op) override {
    return reading([&] { return versions::call_versions_of(m_db.get(), op, m_legacy_call_versions); });
  }

  void end_read() override {
    if (!m_reading) return;
    m_reading = false;
    if (sqlite3_get_autocommit(m_db.get()) == 0) sql::exec(m_db.get(), "COMMIT");
  }

  // Claims: in a database of their own beside the store (store/sqlite/claims.hpp), through a
  // connection of their own; none for an in-memory or read-only store.
  [[nodiscard]] bool shares_claims() const override { return m_claims.has_value(); }
  bool try_claim(const Id& key, const Id& owner, std::chrono::milliseconds lease) override {
    return m_claims->try_claim(key, owner, lease);
  }
  std::vector<Id> renew_claims(const Id& owner, std::span<const Id> keys, std::chrono::milliseconds lease) override {
    return m_claims->renew(owner, keys, lease);
  }
  void release_claims(const Id& owner, std::span<const Id> keys) override { m_claims->release(owner, keys); }

 private:
  std::optional<claims::ClaimsFile> m_claims;

 private:
  /// The columns read_record reads, for a query to append its clauses to. The last one is the
  /// call's semantic version: its number in vc_semantics, or (m_legacy_call_versions) the
  /// version itself, from vc_calls.
  [[nodiscard]] const std::string& call_columns() const { return m_call_columns; }

  sql::Statement& call_by_hid_statement() {
    // (The text is built only the first time: this is the hot path of every call.)
    return m_call_by_hid
               ? *m_call_by_hid
               : stmt(m_call_by_hid, call_columns() + "WHERE substr(hid, 1, 8) = substr(?1, 1, 8) AND hid = ?1");
  }

  /// `quiet`: no other connection has committed since the batch's generation.
  void write_locked(const WriteBatch& batch, bool quiet) {
    write_ops(batch.ops);

    // The counters change with the data (store/sqlite/counters.hpp): added up here, written once.
    BatchCounts counts;
    counts.sizes.reserve(batch.values.size());
    counts.new_values.reserve(batch.values.size());
    counts.refs.reserve(batch.calls.size() * 2);

    // Values and ref keys go in key order: ids are uniformly distributed, and in key order
    // consecutive inserts walk the same B-tree pages instead of a random page each.
    std::vector<const ValueRecord*> values;
    values.reserve(batch.values.size());
    for (const auto& v : batch.values) values.push_back(&v);
    std::sort(values.begin(), values.end(), [](const auto* a, const auto* b) { return a->cid < b->cid; });
    insert_rows<const ValueRecord*>(
        "INSERT OR IGNORE INTO \"values\"(cid, size, data) VALUES", 3, values,
        [&](sql::Statement& st, int at, const ValueRecord* v) {
          st.bind(at, v->cid).bind(at + 1, static_cast<std::int64_t>(v->bytes.size()));
          if (is_blob(v->bytes)) st.bind_null(at + 2);
          else st.bind_blob(at + 2, v->bytes);
        },
        " RETURNING cid", [&](const sql::Statement& inserted) { counts.new_values.insert(inserted.id(0)); });
    for (const auto* v : values) {
      const auto size = static_cast<std::int64_t>(v->bytes.size());
      counts.sizes.emplace(v->cid, size);
      if (!counts.new_values.contains(v->cid)) continue;
      ++counts.values;
      counts.value_bytes += size;
      if (is_blob(v->bytes)) ++counts.blob_values;
    }

    const bool check_stored = !(batch.calls_looked_up && quiet);
    auto& exists = stmt(m_call_exists, "SELECT 1 FROM calls WHERE substr(hid, 1, 8) = substr(?1, 1, 8) AND hid = ?1");
    // The calls to insert (those not stored already: by another process, or earlier).
    std::vector<const CallRecord*> fresh;
    fresh.reserve(batch.calls.size());
    for (const CallRecord& c : batch.calls) {
      if (check_stored) {
        exists.bind(1, c.hid);
        const bool stored = exists.step();
        exists.reset();
        if (stored) continue;
      }
      fresh.push_back(&c);
    }
    if (!quiet) require_values(fresh, counts.sizes);
    auto& put_call =
        stmt(m_put_call, "INSERT INTO calls(hid, cid, op_id, created, io, semantic) VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
    std::vector<std::byte> io;
    struct RefRow {
      std::int64_t key;
      std::int64_t dir;
      std::int64_t call_id;
      auto operator<=>(const RefRow&) const = default;
    };
    std::vector<RefRow> refs;
    refs.reserve(batch.calls.size() * 2);
    for (const CallRecord* call : fresh) {
      const CallRecord& c = *call;
      const auto op = op_id(c.op, c.version);
      count_new_call(c, op, counts);  // before its call_refs rows exist
      call_io::encode(c, m_ops_by_id.at(op).outputs, io);
      put_call.bind(1, c.hid);
      // A call of raw inputs is found by content under its hid: its content id is not stored.
      if (call_io::ids_derive_from_raw_inputs(c)) put_call.bind_blob(2, std::span<const std::byte>(io.data(), 0));
      else put_call.bind(2, c.cid);
      put_call.bind(3, op).bind(4, c.created_ms).bind_blob(5, io);
      if (c.semantic) put_call.bind(6, semantic_number(*c.semantic));
      else put_call.bind_null(6);
      put_call.run();
      const std::int64_t id = sqlite3_last_insert_rowid(m_db.get());
      for (const auto& r : c.inputs) refs.push_back({call_io::ref_key(r.hid), dir_in, id});
      for (const auto& r : c.outputs) refs.push_back({call_io::ref_key(r.hid), dir_out, id});
    }
    std::sort(refs.begin(), refs.end());
    insert_rows<RefRow>("INSERT OR IGNORE INTO call_refs(key, dir, call_id) VALUES", 3, refs,
                        [](sql::Statement& st, int at, const RefRow& r) {
                          st.bind(at, r.key).bind(at + 1, r.dir).bind(at + 2, r.call_id);
                        });
    apply(counts);
  }

  /// Registers the batch's ops, inside the write transaction: a new op is inserted; a stored one
  /// must have the same outputs and compatible inputs (another process may have stored its own
  /// declaration since this one was checked), and its inputs grow when parameters were added.
  void write_ops(const std::vector<OpRecord>& ops) {
    auto& insert = stmt(m_insert_op, "INSERT INTO ops(name, version, inputs, outputs) VALUES(?1, ?2, ?3, ?4)");
    auto& widen = stmt(m_widen_op, "UPDATE ops SET inputs = ?3 WHERE name = ?1 AND version = ?2");
    for (const auto& o : ops) {
      const auto stored = op_locked(o.name, o.version);
      if (!stored) {
        // (One expression: the statement binds the texts without copying them.)
        insert.bind(1, o.name)
            .bind(2, std::int64_t{o.version})
            .bind(3, json_list(o.inputs))
            .bind(4, json_list(o.outputs))
            .run();
        continue;
      }
      const bool same_outputs = stored->outputs == o.outputs;
      if (!same_outputs || !inputs_compatible(stored->inputs, o.inputs))
        throw OpConflict(same_outputs ? Errc::invalid_argument : Errc::output_mismatch,
                         describe_op(o.name, o.version, o.inputs, o.outputs) + " disagrees with " +
                             describe_op(o.name, o.version, stored->inputs, stored->outputs) +
                             ", which another process has stored meanwhile; the calls of this declaration are not "
                             "stored: give the changed op a new version (OpOptions::version) or a new name",
                         o.name, o.version);
      if (o.inputs.size() > stored->inputs.size())
        widen.bind(1, o.name).bind(2, std::int64_t{o.version}).bind(3, json_list(o.inputs)).run();
    }
  }

  /// Checks, inside the write transaction, that every value the calls refer to is in the batch
  /// (`in_batch`) or stored and readable; throws MissingValues naming those that are not.
  void require_values(const std::vector<const CallRecord*>& calls,
                      const std::unordered_map<Id, std::int64_t>& in_batch) {
    std::unordered_map<Id, bool> present;
    std::vector<Id> missing;
    for (const CallRecord* c : calls)
      for (const auto* list : {&c->inputs, &c->outputs})
        for (const auto& r : *list) {
          if (in_batch.contains(r.cid)) continue;
          auto [it, fresh] = present.try_emplace(r.cid, false);
          if (!fresh) continue;
          it->second = value_readable(r.cid);
          if (!it->second) missing.push_back(r.cid);
        }
    if (!missing.empty()) throw MissingValues(std::move(missing));
  }

  /// Whether the value is stored with its bytes (a blob value whose file is gone is not).
  bool value_readable(const Id& cid) {
    auto& st = stmt(m_has_value, "SELECT data IS NULL FROM \"values\" WHERE cid = ?1");
    st.bind(1, cid);
    const bool found = st.step();
    const bool in_file = found && st.int64(0) != 0;
    st.reset();
    if (in_file && m_blobs) {
      std::error_code ec;
      return fs::exists(m_blobs->path_of(cid), ec);
    }
    return found;
  }

  /// calls.semantic for a semantic version, inside the write transaction.
  std::int64_t semantic_number(const Id& semantic) {
    if (const auto it = m_semantic_numbers.find(semantic); it != m_semantic_numbers.end()) return it->second;
    const std::int64_t number = versions::semantic_number(m_db.get(), semantic);
    m_semantic_numbers.emplace(semantic, number);
    return number;
  }

  static constexpr std::size_t rows_per_insert = 64;

  /// Runs `head` (an INSERT ... VALUES) over `rows` of `width` columns: one statement per
  /// rows_per_insert rows (SQLite's per-statement work is then shared), one per row for the
  /// rest. `bind(statement, first_parameter, row)` binds one row. With a `tail` (a RETURNING
  /// clause), `returned(statement)` is called for each row it returns.
  template <class Row, class Bind, class Returned = std::nullptr_t>
  void insert_rows(std::string_view head, int width, std::span<const Row> rows, Bind&& bind, std::string_view tail = {},
                   Returned&& returned = nullptr) {
    std::size_t next = 0;
    auto run = [&](std::size_t n) {
      auto& st = multi_row_statement(head, width, n, tail);
      for (std::size_t i = 0; i < n; ++i) bind(st, static_cast<int>(i) * width + 1, rows[next + i]);
      if constexpr (std::is_null_pointer_v<std::decay_t<Returned>>) st.run();
      else
        while (st.step()) returned(st);
      next += n;
    };
    while (rows.size() - next >= rows_per_insert) run(rows_per_insert);
    while (next < rows.size()) run(1);
  }

  sql::Statement& multi_row_statement(std::string_view head, int width, std::size_t rows, std::string_view tail) {
    auto& slot = m_chunk_statements[std::make_pair(std::string(head) + std::string(tail), rows)];
    if (!slot) {
      std::string row = "(";
      for (int i = 0; i < width; ++i) row += i ? ",?" : "?";
      row += ")";
      std::string text(head);
      for (std::size_t i = 0; i < rows; ++i) text += (i ? "," : " ") + row;
      text += tail;
      slot = std::make_unique<sql::Statement>(m_db.get(), text);
    }
    return *slot;
  }

  /// What one flush adds to the counters.
  struct BatchCounts {
    std::unordered_map<Id, std::int64_t> sizes;  ///< of the batch's values
    std::unordered_set<Id> new_values;           ///< values this flush inserted
    std::unordered_set<Id> refs;                 ///< refs of this flush's new calls seen so far
    std::optional<bool> detached;                ///< the stored flag, read when first needed
    bool set_detached = false;
    struct Op {
      std::int64_t calls = 0;
      std::int64_t output_bytes = 0;
      std::int64_t last_created = 0;
    };
    std::map<std::int64_t, Op> ops;
    std::int64_t values = 0, value_bytes = 0, blob_values = 0, refs_added = 0;
  };

  /// Counts a call about to be inserted. A ref is new when no stored call uses its hid. An
  /// output's hid derives from its (new) call's hid, so it is new unless a stored call has it as
  /// an input whose creator was dropped (looked up only while the totals say such inputs may
  /// exist). A raw input whose value this flush inserted is new (no stored call could use that
  /// value); other inputs are looked up.
  void count_new_call(const CallRecord& c, std::int64_t op, BatchCounts& counts) {
    auto& o = counts.ops[op];
    ++o.calls;
    o.last_created = c.created_ms;
    for (const auto& r : c.outputs) {
      auto size = counts.sizes.find(r.cid);
      o.output_bytes += size != counts.sizes.end() ? size->second : stored_size(r.cid);
      if (!counts.refs.insert(r.hid).second) continue;
      if (!counts.detached) counts.detached = stored_detached();
      if (!*counts.detached || !ref_used(r.hid)) ++counts.refs_added;
    }
    for (const auto& r : c.inputs) {
      if (!counts.refs.insert(r.hid).second) continue;
      const bool raw = codec::atom_hid(r.cid) == r.hid;
      if (raw && counts.new_values.contains(r.cid)) {
        ++counts.refs_added;
      } else if (!ref_used(r.hid)) {
        ++counts.refs_added;
        if (!raw) counts.set_detached = true;  // an input whose creator is not stored
      }
    }
  }

  void apply(const BatchCounts& counts) {
    auto& op_st = stmt(m_add_to_op, counters::add_to_op_sql);
    for (const auto& [id, o] : counts.ops)
      op_st.bind(1, id).bind(2, o.calls).bind(3, o.output_bytes).bind(4, o.last_created).run();
    if (counts.values != 0 || counts.refs_added != 0 || counts.set_detached)
      stmt(m_add_to_totals, counters::add_to_totals_sql)
          .bind(1, counts.values)
          .bind(2, counts.value_bytes)
          .bind(3, counts.blob_values)
          .bind(4, counts.refs_added)
          .bind(5, std::int64_t{counts.set_detached ? 1 : 0})
          .run();
  }

  bool stored_detached() {
    sql::Statement st(m_db.get(), "SELECT detached FROM totals WHERE id = 1");
    return st.step() && st.int64(0) != 0;
  }

  std::int64_t stored_size(const Id& cid) {
    auto& st = stmt(m_value_size, "SELECT size FROM \"values\" WHERE cid = ?1");
    st.bind(1, cid);
    const std::int64_t size = st.step() ? st.int64(0) : 0;
    st.reset();
    return size;
  }

  /// A call from a row of call_columns.
  CallRecord record_from(const sql::Statement& st) {
    CallRecord r;
    read_record(st, r);
    return r;
  }

  /// A call from a row of call_columns into `r` (whose buffers are reused).
  void read_record(const sql::Statement& st, CallRecord& r) {
    r.hid = st.id(1);
    const bool derived_cid = !st.is_null(2) && st.blob_view(2).empty();
    if (!derived_cid) r.cid = st.id(2);
    const OpRow& op = op_row(st.int64(3));
    r.op = op.name;
    r.version = op.version;
    r.created_ms = st.int64(4);
    r.semantic.reset();
    call_io::decode(st.blob_view(5), op.outputs, r);
    if (derived_cid) {
      const std::optional<Id> semantic = semantic_of(st, 6);
      r.cid = call_io::content_id(r, semantic ? &*semantic : nullptr);
    }
  }

  /// The semantic version in column `col` of a call_columns row (nullopt: not code-versioned).
  std::optional<Id> semantic_of(const sql::Statement& st, int col) {
    if (st.is_null(col)) return std::nullopt;
    if (m_legacy_call_versions) return st.id(col);
    const std::int64_t number = st.int64(col);
    if (const auto it = m_semantics_by_number.find(number); it != m_semantics_by_number.end()) return it->second;
    auto& q = stmt(m_semantic_by_number, "SELECT semantic FROM vc_semantics WHERE id = ?1");
    q.bind(1, number);
    if (!q.step())
      throw Error(Errc::corrupt_store, "a call refers to semantic version number " + std::to_string(number) +
                                           ", which the store does not have (table vc_semantics); the store is "
                                           "damaged: restore it from a backup");
    const Id semantic = q.id(0);
    q.reset();
    m_semantics_by_number.emplace(number, semantic);
    return semantic;
  }

  /// The records a streamed read hands to its sink, kept.
  template <class Read>
  static std::vector<CallRecord> collect(Read&& read) {
    std::vector<CallRecord> out;
    read([&](const CallRecord& r) { out.push_back(r); });
    return out;
  }

  /// The calls of an op (every version, or one), in storage order.
  void calls_of_locked(std::string_view op, std::optional<std::uint32_t> version, const CallSink& sink) {
    load_ops();
    std::vector<std::int64_t> op_ids;
    for (const auto& [id, row] : m_ops_by_id)
      if (row.name == op && (!version || row.version == *version)) op_ids.push_back(id);
    if (op_ids.size() == 1) {
      auto& st = stmt(m_calls_of_op, call_columns() + "WHERE op_id = ?1 ORDER BY id");
      const ResetOnExit done{st};
      st.bind(1, op_ids.front());
      CallRecord rec;
      while (st.step()) {
        read_record(st, rec);
        sink(rec);
      }
      return;
    }
    // Several versions: their calls' ids from the index, merged, then the calls in that order.
    std::vector<std::int64_t> ids;
    auto& st = stmt(m_call_ids_of_op, "SELECT id FROM calls WHERE op_id = ?1");
    for (auto id : op_ids) {
      const ResetOnExit done{st};
      st.bind(1, id);
      while (st.step()) ids.push_back(st.int64(0));
    }
    std::sort(ids.begin(), ids.end());
    visit_calls(ids, sink);
  }

  std::optional<CallRecord> one_call(sql::Statement& st) {
    if (!st.step()) return std::nullopt;
    auto r = record_from(st);
    st.reset();
    return r;
  }

  static bool has_ref(const std::vector<IoRef>& list, const Id& hid) {
    return std::any_of(list.begin(), list.end(), [&](const IoRef& r) { return r.hid == hid; });
  }

  /// Storage ids of the calls that may use `hid` (same key), in storage order.
  std::vector<std::int64_t> ref_call_ids(const Id& hid, std::optional<int> dir) {
    auto& st = dir ? stmt(m_ref_calls_dir, "SELECT call_id FROM call_refs WHERE key = ?1 AND dir = ?2")
                   : stmt(m_ref_calls, "SELECT DISTINCT call_id FROM call_refs WHERE key = ?1 ORDER BY call_id");
    st.bind(1, call_io::ref_key(hid));
    if (dir) st.bind(2, std::int64_t{*dir});
    std::vector<std::int64_t> out;
    while (st.step()) out.push_back(st.int64(0));
    st.reset();
    return out;
  }

  /// Calls with an input (dir_in) or output (dir_out) among `hids`, each once, in storage order.
  void refs_many(std::span<const Id> hids, int dir, const CallSink& sink) {
    std::vector<std::int64_t> keys;
    keys.reserve(hids.size());
    for (const auto& h : hids) keys.push_back(call_io::ref_key(h));
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    // The hids to match, in an open-addressing set (ids are uniformly distributed: their first
    // bytes place them).
    std::vector<const Id*> wanted(std::bit_ceil(std::max<std::size_t>(hids.size() * 2, 16)), nullptr);
    const std::size_t mask = wanted.size() - 1;
    for (const auto& h : hids) {
      std::size_t i = std::hash<Id>{}(h)&mask;
      while (wanted[i] != nullptr && *wanted[i] != h) i = (i + 1) & mask;
      wanted[i] = &h;
    }
    const auto is_wanted = [&](const Id& hid) {
      for (std::size_t i = std::hash<Id>{}(hid)&mask; wanted[i] != nullptr; i = (i + 1) & mask)
        if (*wanted[i] == hid) return true;
      return false;
    };
    std::vector<std::int64_t> ids;
    const std::string prefix = "SELECT call_id FROM call_refs WHERE dir = " + std::to_string(dir) + " AND key IN (";
    for_int_chunks(keys, prefix, [&](sql::Statement& st) { ids.push_back(st.int64(0)); });
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    // Pass on the calls that have one of the hids (a key is only a prefix of a hid).
    visit_calls(ids, [&](const CallRecord& r) {
      const auto& list = dir == dir_in ? r.inputs : r.outputs;
      if (std::any_of(list.begin(), list.end(), [&](const IoRef& x) { return is_wanted(x.hid); })) sink(r);
    });
  }

  static std::vector<CallRecord> in_storage_order(std::vector<std::int64_t> ids, std::vector<CallRecord> found) {
    std::vector<std::size_t> order(ids.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](auto a, auto b) { return ids[a] < ids[b]; });
    std::vector<CallRecord> out;
    out.reserve(found.size());
    for (std::size_t k = 0; k < order.size(); ++k)
      if (k == 0 || ids[order[k]] != ids[order[k - 1]]) out.push_back(std::move(found[order[k]]));
    return out;
  }

  /// Opens a deferred read transaction unless one is open: consecutive lookups then share one
  /// snapshot and skip SQLite's per-statement lock round trips.
  void begin_read() {
    if (m_reading) return;
    if (sqlite3_get_autocommit(m_db.get()) != 0) {
      sql::exec(m_db.get(), "BEGIN");
      look();  // the snapshot starts here
    }
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
          try {
            return read();
          } catch (const Error& e) {
            if (e.code() == Errc::corrupt_store) throw_if_written_meanwhile();
            throw;
          }
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

  /// Whether a read-only open of `path` must read it without locks (SQLite's immutable mode):
  /// when this process may not write the store or its directory, so it can neither create the
  /// -wal and -shm files a locking reader needs nor remove them afterwards. A store with a
  /// write-ahead log but no -shm index is refused then: its last writes are in the log, which
  /// only a process that may write the directory can read.
  [[nodiscard]] static bool needs_unlocked_snapshot(const fs::path& path) {
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

  /// In the unlocked read of a store this process may not write: damage met after another
  /// process wrote the file is that write, not damage (immutable mode reads pages as they are).
  void throw_if_written_meanwhile() const {
    if (!m_unlocked || stamp_of(m_path) == m_unlocked_since) return;
    throw Error(Errc::io, m_path.string() +
                              " was written by another process while it was read (this process may not write it or "
                              "its directory, so it reads the store without locks); run the command again");
  }

  /// Creates a new store at `path` with its schema: written under a temporary name in the same
  /// directory and linked into place once complete, so a failure (a full disk) leaves no file,
  /// and of two processes creating the same store at once, one creates it and both open it.
  static void create_store_file(const fs::path& path) {
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
    if (!memory)
      sql::exec(m_db.get(), m_options.durable_flush ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    // Lookups hit random index pages (ids are uniformly distributed): a large page cache and
    // memory-mapped reads keep them off the read() path. Both grow only as pages are used.
    sql::exec(m_db.get(), "PRAGMA cache_size=-262144");
    // (Not for an unlocked read: another process may shorten the file under the mapping.)
    if (!memory && !m_unlocked) sql::exec(m_db.get(), "PRAGMA mmap_size=1073741824");
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
        check_meta(m_path.empty() ? std::string(":memory:") : m_path.string());
        return;
      }
    }
    write_schema(m_db.get());
    tx.commit();
  }

  /// The tables, identity and meta rows of a new store (inside the caller's transaction).
  static void write_schema(sqlite3* db) {
    sql::exec(db, schema_sql);
    sql::exec(db, calls_by_cid_sql);
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

  /// Upgrades an older schema in place, in one transaction: 2 lacks the code-version tables,
  /// 3 the counters (computed here once, from the data), 4 calls.semantic (then in vc_calls).
  /// meta's schema_version; empty when unreadable (check_meta reports what is wrong).
  std::string stored_schema_version() {
    try {
      sql::Statement st(m_db.get(), "SELECT value FROM meta WHERE key = 'schema_version'");
      if (st.step()) return st.text(0);
    } catch (const sql::Busy&) {
      throw;
    } catch (const Error&) {}
    return {};
  }

  void upgrade() {
    const auto older = [](const std::string& v) { return v == "2" || v == "3" || v == "4" || v == "5"; };
    if (!older(stored_schema_version())) return;
    sql::Transaction tx(m_db.get());
    // Read again under the write lock: another process may have upgraded the store meanwhile.
    const std::string from = stored_schema_version();
    if (!older(from)) return;
    if (from != "5") versions::upgrade_call_versions(m_db.get());
    if (from == "2" || from == "3") {
      sql::exec(m_db.get(), counters::schema_sql);
      counters::replace(m_db.get(), counters::recount(m_db.get()));
    }
    // Every stored call keeps its content id: all stay in the (now partial) index.
    sql::exec(m_db.get(), "DROP INDEX IF EXISTS calls_by_cid");
    sql::exec(m_db.get(), calls_by_cid_sql);
    sql::exec(
        m_db.get(),
        ("UPDATE meta SET value = '" + std::to_string(schema_version) + "' WHERE key = 'schema_version'").c_str());
    sql::exec(m_db.get(), ("PRAGMA user_version=" + std::to_string(schema_version)).c_str());
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
    // Read-only, a store of schema 3 is read as it is: counts are then computed by scanning.
    m_counted_by_scan = m_options.read_only && v == "3";
    m_legacy_call_versions = m_options.read_only && (v == "3" || v == "4");
    // Read-only, schemas 3 to 5 are read as they are (they store every call's content id).
    if (v != std::to_string(schema_version) && !m_legacy_call_versions && !(m_options.read_only && v == "5")) {
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
    if (meta["hash"] != codec::hash_name || meta["encoding"] != wire::encoding_name)
      throw Error(Errc::schema_mismatch, name + " uses hash '" + meta["hash"] + "' and encoding '" + meta["encoding"] +
                                             "'; this mandala uses '" + codec::hash_name + "' and '" +
                                             wire::encoding_name + "'");
  }

  /// Stored bytes checked against their id: damage in the database is reported, never decoded.
  std::vector<std::byte> verified(const Id& cid, std::vector<std::byte> bytes) const {
    if (codec::content_id(bytes) != cid)
      throw Error(Errc::corrupt_store, where() + ": value " + cid.hex() +
                                           " is damaged in the database (its bytes do not match its id); restore "
                                           "the store from a backup or drop the calls that use it");
    return bytes;
  }

  void require_writable() const {
    if (m_options.read_only)
      throw Error(Errc::io, where() + ": the store was opened read-only; open it writable to record or remove calls");
  }

  /// The store's file for messages ("the in-memory store" for none).
  [[nodiscard]] std::string where() const {
    return m_path.empty() ? std::string("the in-memory store") : m_path.string();
  }

  /// Whether a value goes to a blob file: above the blob threshold in a file store, and in any
  /// store when its row would be above SQLite's length limit (SQLite would refuse it).
  [[nodiscard]] bool is_blob(const std::vector<std::byte>& bytes) const {
    return bytes.size() > m_max_inline_bytes || (!m_memory && bytes.size() > m_options.blob_threshold_bytes);
  }

  /// The blob files, for a write with values to keep in files. An in-memory store makes their
  /// directory when it first needs it ($TMPDIR/mandala-memory-XXXXXX, removed with the store);
  /// when it cannot, the write is refused (Errc::io) before anything is recorded.
  BlobFiles& blobs_for_writing(std::size_t value_bytes) {
    if (m_blobs) return *m_blobs;
    const char* env = std::getenv("TMPDIR");
    const bool tmpdir_set = env != nullptr && *env != '\0';
    const fs::path base = tmpdir_set ? fs::path(env) : fs::path("/tmp");
    std::string dir = (base / "mandala-memory-XXXXXX").string();
    if (::mkdtemp(dir.data()) == nullptr) {
      const int err = errno;
      throw Error(Errc::io,
                  "cannot create a directory for the large values of an in-memory store in " + base.string() +
                      (tmpdir_set ? " (TMPDIR)" : " (TMPDIR is not set)") + ": " + std::strerror(err) +
                      "; a value of " + std::to_string(value_bytes) + " bytes is above SQLite's length limit (" +
                      std::to_string(m_max_inline_bytes) +
                      " bytes per value), so even an in-memory store keeps it in a file: set TMPDIR to a writable "
                      "directory with room for it, or use a file store; nothing was recorded");
    }
    m_temporary_blob_dir = dir;
    m_blobs.emplace(fs::path(dir), BlobFiles::Sync::no);
    return *m_blobs;
  }

  sql::Statement& stmt(std::unique_ptr<sql::Statement>& slot, std::string_view text) {
    if (!slot) slot = std::make_unique<sql::Statement>(m_db.get(), text);
    return *slot;
  }

  /// Reads the ops table into memory (ops are few; another process may have added some).
  void load_ops() {
    auto& st = stmt(m_all_ops, "SELECT id, name, version, outputs FROM ops");
    m_ops_by_id.clear();
    m_op_ids.clear();
    while (st.step()) {
      const auto id = st.int64(0);
      OpRow row{st.text(1), static_cast<std::uint32_t>(st.int64(2)), parse_list(st.text(3), where())};
      m_op_ids[{row.name, row.version}] = id;
      m_ops_by_id[id] = std::move(row);
    }
    st.reset();
  }

  const OpRow& op_row(std::int64_t id) {
    auto it = m_ops_by_id.find(id);
    if (it == m_ops_by_id.end()) {
      load_ops();
      it = m_ops_by_id.find(id);
      if (it == m_ops_by_id.end())
        throw Error(Errc::corrupt_store, where() + ": a call refers to op id " + std::to_string(id) +
                                             ", which the ops table does not hold; the store is damaged: restore it "
                                             "from a backup");
    }
    return it->second;
  }

  std::int64_t op_id(const std::string& name, std::uint32_t version) {
    auto it = m_op_ids.find({name, version});
    if (it == m_op_ids.end()) {
      load_ops();
      it = m_op_ids.find({name, version});
      if (it == m_op_ids.end())
        throw Error(Errc::corrupt_store, where() + ": op " + name + " version " + std::to_string(version) +
                                             " is not in the ops table, though its calls were written; the store is "
                                             "damaged: restore it from a backup");
    }
    return it->second;
  }

  static constexpr std::size_t chunk_size = 256;

  /// Runs `prefix ?,?,...)` over `ids` in chunks of at most chunk_size, calling `row` per result.
  /// With `prefix_keys`, each id is bound as its first 8 bytes (for the substr(.., 1, 8) indexes).
  template <class F>
  void for_chunks(std::span<const Id> ids, std::string_view prefix, F&& row, bool prefix_keys = false) {
    for (std::size_t begin = 0; begin < ids.size(); begin += chunk_size) {
      const std::size_t n = std::min(chunk_size, ids.size() - begin);
      auto& st = chunk_statement(prefix, n);
      const ResetOnExit done{st};
      for (std::size_t i = 0; i < n; ++i) {
        const auto& id = ids[begin + i];
        if (prefix_keys) st.bind_blob(static_cast<int>(i + 1), std::as_bytes(std::span(id.bytes).first(8)));
        else st.bind(static_cast<int>(i + 1), id);
      }
      while (st.step()) row(st);
    }
  }

  /// Runs `prefix` ?,?,... `suffix` over `ids` in chunks, calling `row` for each result row.
  template <class F>
  void for_int_chunks(std::span<const std::int64_t> ids, std::string_view prefix, F&& row,
                      std::string_view suffix = ")") {
    for (std::size_t begin = 0; begin < ids.size(); begin += chunk_size) {
      const std::size_t n = std::min(chunk_size, ids.size() - begin);
      auto& st = chunk_statement(prefix, n, suffix);
      const ResetOnExit done{st};
      for (std::size_t i = 0; i < n; ++i) st.bind(static_cast<int>(i + 1), ids[begin + i]);
      while (st.step()) row(st);
    }
  }

  sql::Statement& chunk_statement(std::string_view prefix, std::size_t n, std::string_view suffix = ")") {
    auto& slot = m_chunk_statements[std::make_pair(std::string(prefix) + std::string(suffix), n)];
    if (!slot) {
      std::string text(prefix);
      for (std::size_t i = 0; i < n; ++i) text += i ? ",?" : "?";
      text += suffix;
      slot = std::make_unique<sql::Statement>(m_db.get(), text);
    }
    return *slot;
  }

  /// Resets a statement however its use ends (a row callback may throw mid-query).
  struct ResetOnExit {
    sql::Statement& st;
    ~ResetOnExit() { st.reset_quietly(); }
  };

  /// Streams calls by storage id (sorted, unique) in storage order; missing ids are skipped.
  /// (SQLite steps through an IN list in order, so the ORDER BY costs no sort.)
  void visit_calls(std::span<const std::int64_t> ids, const CallSink& sink) {
    CallRecord rec;
    for_int_chunks(
        ids, call_columns() + "WHERE id IN (",
        [&](sql::Statement& st) {
          read_record(st, rec);
          sink(rec);
        },
        ") ORDER BY id");
  }

  /// Loads calls by storage id (unique), in storage order; missing ids are skipped.
  std::vector<std::pair<std::int64_t, CallRecord>> load_calls_with_ids(const std::vector<std::int64_t>& ids) {
    std::vector<std::pair<std::int64_t, CallRecord>> out;
    out.reserve(ids.size());
    for_int_chunks(ids, call_columns() + "WHERE id IN (",
                   [&](sql::Statement& st) { out.emplace_back(st.int64(0), record_from(st)); });
    // SQLite steps through an IN list in order: sorted ids come back sorted
    const auto by_id = [](const auto& a, const auto& b) { return a.first < b.first; };
    if (!std::is_sorted(out.begin(), out.end(), by_id)) std::sort(out.begin(), out.end(), by_id);
    return out;
  }

  std::vector<CallRecord> load_calls(const std::vector<std::int64_t>& ids) {
    std::vector<CallRecord> out;
    out.reserve(ids.size());
    for (auto& [id, rec] : load_calls_with_ids(ids)) out.push_back(std::move(rec));
    return out;
  }

  StoreOptions m_options;
  bool m_memory;
  fs::path m_path;
  /// The longest value kept in its row: SQLite's length limit less room for the row's other
  /// columns (set at open).
  std::size_t m_max_inline_bytes = 0;
  fs::path m_temporary_blob_dir;  ///< an in-memory store's blob directory, once made
  sql::Backoff m_backoff{m_options.lock_timeout};
  /// Whether the store is read without locks (needs_unlocked_snapshot), and its file as opened.
  bool m_unlocked = false;
  std::optional<FileStamp> m_unlocked_since;
  ReaderLogs m_reader_logs;  ///< before m_db: cleans up after it is closed
  sql::DbHandle m_db;
  std::optional<BlobFiles> m_blobs;
  bool m_reading = false;
  bool m_counted_by_scan = false;       ///< a schema 3 store opened read-only: no counter tables
  bool m_legacy_call_versions = false;  ///< a schema 3 or 4 store opened read-only: vc_calls
  /// calls.semantic of each semantic version written or read by this connection (never changes
  /// once committed; cleared when a write rolls back).
  std::unordered_map<Id, std::int64_t> m_semantic_numbers;
  std::unordered_map<std::int64_t, Id> m_semantics_by_number;  ///< the converse, as read
  std::string m_call_columns;                                  ///< call_columns(), set when the store's schema is known
  /// data_version() at the last look (or open), and the count of changes it saw (generation()).
  std::int64_t m_seen_version = 0;
  std::uint64_t m_generation = 0;
  std::unordered_map<std::int64_t, OpRow> m_ops_by_id;
  std::map<std::pair<std::string, std::uint32_t>, std::int64_t> m_op_ids;
  std::map<std::pair<std::string, std::size_t>, std::unique_ptr<sql::Statement>> m_chunk_statements;
  std::unique_ptr<sql::Statement> m_semantic_by_number, m_call_by_hid, m_call_by_cid, m_value, m_has_value, m_op,
      m_insert_op, m_widen_op, m_call_exists, m_put_call, m_ref_calls, m_ref_calls_dir, m_calls_of_op, m_all_ops,
      m_del_ref, m_del_call, m_data_version, m_add_to_op, m_add_to_totals, m_value_size, m_ref_rows, m_call_by_id,
      m_call_ids_of_op;
};

}  // namespace

MissingValues::MissingValues(std::vector<Id> cids)
    : Error(Errc::not_found, std::to_string(cids.size()) + " values the calls of a write refer to are not stored (" +
                                 (cids.empty() ? std::string() : cids.front().hex()) +
                                 (cids.size() > 1 ? ", ..." : "") + "): another process removed them"),
      m_cids(std::move(cids)) {}

bool inputs_compatible(const std::vector<std::string>& stored, const std::vector<std::string>& declared) {
  const auto& shorter = stored.size() <= declared.size() ? stored : declared;
  const auto& longer = stored.size() <= declared.size() ? declared : stored;
  std::size_t matched = 0;
  for (const auto& name : longer)
    if (matched < shorter.size() && shorter[matched] == name) ++matched;
  return matched == shorter.size();
}

std::string describe_op(const std::string& name, std::uint32_t version, const std::vector<std::string>& inputs,
                        const std::vector<std::string>& outputs) {
  return "op " + name + " version " + std::to_string(version) + " with inputs " + nlohmann::json(inputs).dump() +
         " and outputs " + nlohmann::json(outputs).dump();
}

std::unique_ptr<Store> open_sqlite_store(const fs::path& path, const StoreOptions& options) {
  return std::make_unique<SqliteStore>(path, options);
}

}  // namespace mandala::store
