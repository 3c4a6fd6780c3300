#pragma once
// The SQLite store's class, shared by its parts (sqlite_*.cpp); private to the SQLite backend.

#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "store/blob_files.hpp"
#include "store/sqlite/claims.hpp"
#include "store/sqlite/counters.hpp"
#include "store/sqlite/sqlite.hpp"
#include "store/store.hpp"

// Hidden: the class is internal to the library, so calls between its parts are direct and the
// compiler may inline them (as it did when it was local to one file).
#pragma GCC visibility push(hidden)

namespace mandala::store::sqlite_impl {
namespace fs = std::filesystem;

/// call_refs.dir of an input and of an output.
constexpr int dir_in = 0;
constexpr int dir_out = 1;

/// A name list of the ops table; `store` (its file) names the store in the error.
std::vector<std::string> parse_list(const std::string& text, const std::string& store);

/// What the store keeps in memory about each op (ops are few; calls refer to them by id).
struct OpRow {
  std::string name;
  std::uint32_t version = 0;
  std::vector<std::string> outputs;
};

/// What tells that a file has been written: its identity, size and change times.
struct FileStamp {
  dev_t device = 0;
  ino_t inode = 0;
  off_t size = 0;
  std::int64_t modified_ns = 0;
  std::int64_t changed_ns = 0;
  bool operator==(const FileStamp&) const = default;
};

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
  void watch(const fs::path& db);

 private:
  void remove_unused() const noexcept;

  fs::path m_db;
  std::optional<FileStamp> m_log_at_open;
};

/// The SQLite store (docs/storage-format.md, section 3). Its parts: opening and schema
/// (sqlite_open.cpp), writes (sqlite_write.cpp), reads (sqlite_read.cpp), removals and cleanup
/// (sqlite_maintenance.cpp), inspection (sqlite_inspect.cpp), lifetime and claims
/// (sqlite_store.cpp).
class SqliteStore final : public Store {
 public:
  SqliteStore(const fs::path& path, const StoreOptions& options);
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  std::optional<CallRecord> call_by_hid(const Id& hid) override;
  std::optional<CallRecord> call_by_content(const Id& cid, const Id* raw_hid) override;
  std::optional<std::vector<std::byte>> value(const Id& cid) override;
  bool has_value(const Id& cid) override;
  std::vector<Id> absent_values(std::span<const Id> cids) override;
  std::optional<OpRecord> op(std::string_view name, std::uint32_t version) override;
  std::optional<OpRecord> op_locked(std::string_view name, std::uint32_t version);

  void write(const WriteBatch& batch) override;
  void write_once(const WriteBatch& batch);
  std::uint64_t generation() override;

  /// SQLite's data version: it changes when another connection commits to the file (never for
  /// this connection's own commits). Starts a read snapshot when the connection has none.
  std::int64_t data_version();

  /// Counts a commit of another connection since the last look into m_generation. Called inside
  /// a transaction (its snapshot is what the data version describes).
  void look();

  std::optional<Id> ref_cid(const Id& hid) override;
  std::optional<CallRecord> creator_of(const Id& ref_hid) override;
  std::vector<CallRecord> consumers_of(const Id& ref_hid) override;
  using Store::calls_of;
  using Store::consumers_of_many;
  using Store::creators_of_many;
  void calls_of(std::string_view op, std::optional<std::uint32_t> version, const CallSink& sink) override;
  void creators_of_many(std::span<const Id> ref_hids, const CallSink& sink) override;
  void consumers_of_many(std::span<const Id> ref_hids, const CallSink& sink) override;

  std::vector<CallRecord> calls_by_hids(std::span<const Id> call_hids) override;
  std::vector<std::optional<std::vector<std::byte>>> values_many(std::span<const Id> cids) override;

  std::size_t drop_calls(std::span<const Id> call_hids, bool dependents) override;
  std::size_t drop_calls_once(std::span<const Id> call_hids, bool dependents);

  /// Takes dropped calls (already deleted, with their call_refs rows) off the counters.
  void uncount_dropped(const std::vector<std::pair<std::int64_t, CallRecord>>& dropped);

  /// Whether a stored call has this ref as an input or output: the calls with an index row of
  /// its key are read one by one until one has the whole hid, so a ref used by many calls costs
  /// one call's io.
  bool ref_used(const Id& hid);

  std::vector<CallRecord> calls_to_drop(std::span<const Id> call_hids, bool dependents) override;

  /// The calls drop_calls removes (with their storage ids): the roots, and with `dependents`
  /// every call found breadth-first through their outputs' consumers.
  std::vector<std::pair<std::int64_t, CallRecord>> doomed_calls(std::span<const Id> call_hids, bool dependents);

  CleanupReport cleanup() override;
  CleanupReport cleanup_once();
  CleanupReport cleanup_preview() override;

  /// Values no call's io names, counted and listed (in id order) into `report`; those kept in
  /// files are added to `in_files`.
  void unreferenced_values(CleanupReport& report, std::vector<Id>& in_files);

  /// Blob files cleanup removes: those of `unreferenced` values, and files without a row.
  std::set<Id> doomed_blob_files(const std::vector<Id>& unreferenced);

  // ---- inspection (Store::info and the queries of the `mandala` command) ---------------------

  StorageInfo info() override;
  std::vector<OpSummary> op_summaries() override;

  /// The counters (a few rows); a store of schema 3 opened read-only has none, and is counted.
  counters::Counts current_counts();

  std::vector<CallRecord> calls_page(std::string_view op, const CallQuery& query) override;
  std::vector<Id> call_hids_between(const Id& lo, const Id& hi, std::size_t limit) override;
  std::vector<Id> ref_hids_between(const Id& lo, const Id& hi, std::size_t limit) override;
  StorageStats stats() override;
  IntegrityReport check_integrity(const ProgressCallback& progress) override;

  // Code versions: reads and writes retried like the others while another connection's lock is
  // in the way (and damage met by an unlocked read of a file written meanwhile reported as such).
  std::vector<CommitRecord> commits_of(std::string_view component) override;
  std::optional<Id> head_of(std::string_view component) override;
  std::vector<VersionRecord> versions_of(std::string_view op) override;
  void write_versioning(const VersioningWrite& changes) override;
  std::vector<std::pair<Id, Id>> call_versions_of(std::string_view op) override;

  // Rename records (docs/storage-format.md 2.2).
  std::vector<NameRecord> name_records() override;
  void write_names(std::span<const NameRecord> records) override;

  void end_read() override;

  // Claims: in a database of their own beside the store (store/sqlite/claims.hpp), through a
  // connection of their own; none for an in-memory or read-only store.
  [[nodiscard]] bool shares_claims() const override;
  bool try_claim(const Id& key, const Id& owner, std::chrono::milliseconds lease) override;
  std::vector<Id> renew_claims(const Id& owner, std::span<const Id> keys, std::chrono::milliseconds lease) override;
  void release_claims(const Id& owner, std::span<const Id> keys) override;

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
  void write_locked(const WriteBatch& batch, bool quiet);

  /// Registers the batch's ops, inside the write transaction: a new op is inserted; a stored one
  /// must have the same outputs and compatible inputs (another process may have stored its own
  /// declaration since this one was checked), and its inputs grow when parameters were added.
  void write_ops(const std::vector<OpRecord>& ops);

  /// Checks, inside the write transaction, that every value the calls refer to is in the batch
  /// (`in_batch`) or stored and readable; throws MissingValues naming those that are not.
  void require_values(const std::vector<const CallRecord*>& calls,
                      const std::unordered_map<Id, std::int64_t>& in_batch);

  /// Whether the value is stored with its bytes (a blob value whose file is gone is not).
  bool value_readable(const Id& cid);

  /// calls.semantic for a semantic version, inside the write transaction.
  std::int64_t semantic_number(const Id& semantic);

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

  sql::Statement& multi_row_statement(std::string_view head, int width, std::size_t rows, std::string_view tail);

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
  void count_new_call(const CallRecord& c, std::int64_t op, BatchCounts& counts);

  void apply(const BatchCounts& counts);
  bool stored_detached();
  std::int64_t stored_size(const Id& cid);

  /// A call from a row of call_columns.
  CallRecord record_from(const sql::Statement& st) {
    CallRecord r;
    read_record(st, r);
    return r;
  }

  /// A call from a row of call_columns into `r` (whose buffers are reused).
  void read_record(const sql::Statement& st, CallRecord& r);

  /// The semantic version in column `col` of a call_columns row (nullopt: not code-versioned).
  std::optional<Id> semantic_of(const sql::Statement& st, int col);

  /// The calls of an op (every version, or one), in storage order.
  void calls_of_locked(std::string_view op, std::optional<std::uint32_t> version, const CallSink& sink);

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
  std::vector<std::int64_t> ref_call_ids(const Id& hid, std::optional<int> dir);

  /// Calls with an input (dir_in) or output (dir_out) among `hids`, each once, in storage order.
  void refs_many(std::span<const Id> hids, int dir, const CallSink& sink);

  static std::vector<CallRecord> in_storage_order(std::vector<std::int64_t> ids, std::vector<CallRecord> found);

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

  void open(const fs::path& path, bool memory);

  /// Whether a read-only open of `path` must read it without locks (SQLite's immutable mode):
  /// when this process may not write the store or its directory, so it can neither create the
  /// -wal and -shm files a locking reader needs nor remove them afterwards. A store with a
  /// write-ahead log but no -shm index is refused then: its last writes are in the log, which
  /// only a process that may write the directory can read.
  [[nodiscard]] static bool needs_unlocked_snapshot(const fs::path& path);

  /// In the unlocked read of a store this process may not write: damage met after another
  /// process wrote the file is that write, not damage (immutable mode reads pages as they are).
  void throw_if_written_meanwhile() const;

  /// Creates a new store at `path` with its schema: written under a temporary name in the same
  /// directory and linked into place once complete, so a failure (a full disk) leaves no file,
  /// and of two processes creating the same store at once, one creates it and both open it.
  static void create_store_file(const fs::path& path);

  /// Validates before anything that could write, so a foreign file is left as it was; creates
  /// the schema in a new file.
  void validate_and_prepare(const std::string& name, bool memory);

  void initialize(bool memory);

  /// The tables, identity and meta rows of a new store (inside the caller's transaction).
  static void write_schema(sqlite3* db);

  /// meta's schema_version; empty when unreadable (check_meta reports what is wrong).
  std::string stored_schema_version();
  /// Writes this version into meta and user_version (inside an upgrade).
  static void set_schema_version(sqlite3* db);

  /// Upgrades an older schema in place, in one transaction: 2 lacks the code-version tables,
  /// 3 the counters (computed here once, from the data), 4 calls.semantic (then in vc_calls).
  void upgrade();

  void check_meta(const std::string& name);

  /// Stored bytes checked against their id: damage in the database is reported, never decoded.
  std::vector<std::byte> verified(const Id& cid, std::vector<std::byte> bytes) const;

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
  BlobFiles& blobs_for_writing(std::size_t value_bytes);

  sql::Statement& stmt(std::unique_ptr<sql::Statement>& slot, std::string_view text) {
    if (!slot) slot = std::make_unique<sql::Statement>(m_db.get(), text);
    return *slot;
  }

  /// Reads the ops table into memory (ops are few; another process may have added some).
  void load_ops();

  const OpRow& op_row(std::int64_t id);
  std::int64_t op_id(const std::string& name, std::uint32_t version);

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

  sql::Statement& chunk_statement(std::string_view prefix, std::size_t n, std::string_view suffix = ")");

  /// Resets a statement however its use ends (a row callback may throw mid-query).
  struct ResetOnExit {
    sql::Statement& st;
    ~ResetOnExit() { st.reset_quietly(); }
  };

  /// Streams calls by storage id (sorted, unique) in storage order; missing ids are skipped.
  /// (SQLite steps through an IN list in order, so the ORDER BY costs no sort.)
  void visit_calls(std::span<const std::int64_t> ids, const CallSink& sink);

  /// Loads calls by storage id (unique), in storage order; missing ids are skipped.
  std::vector<std::pair<std::int64_t, CallRecord>> load_calls_with_ids(const std::vector<std::int64_t>& ids);

  std::vector<CallRecord> load_calls(const std::vector<std::int64_t>& ids);

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
  bool m_without_renames = false;       ///< a store of schema 3 to 6 opened read-only: no renames table
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

}  // namespace mandala::store::sqlite_impl

#pragma GCC visibility pop
