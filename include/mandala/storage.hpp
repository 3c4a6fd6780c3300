#pragma once
// Storage: where memoized calls live (an SQLite file, or memory), and the queries over them.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mandala/detail/core.hpp"
#include "mandala/id.hpp"
#include "mandala/op.hpp"
#include "mandala/ref.hpp"

namespace mandala {

struct StorageOptions {
  /// Values whose encoding is larger than this go to content-addressed files beside the database
  /// (`<db>.blobs/`); file stores only.
  std::size_t blob_threshold_bytes = std::size_t{1} << 20;
  /// A session flushes pending calls at least this often (checked at each call) ...
  std::chrono::milliseconds flush_interval{1000};
  /// ... and whenever this many calls are pending.
  std::size_t flush_every_calls = 50'000;
  /// Memoized calls kept in memory for lookups: at least the last this many used, at most twice
  /// as many (about 200 bytes each).
  std::size_t call_cache_capacity = 1'000'000;
  /// Open an existing store read-only: lookups and queries work, writes fail with Errc::io.
  /// Reads see consistent snapshots beside writers in other processes, and a store nobody writes
  /// is left byte-identical, with no file added (docs/guarantees.md, "Read commands beside
  /// writers"). Works also where this process may not write (a read-only directory, another
  /// user's store).
  bool read_only = false;
  /// How long to wait for other processes' locks on the store (with backoff) before an
  /// operation fails with Errc::io. Contention shorter than this never reaches the caller.
  std::chrono::milliseconds lock_timeout{60'000};
  /// Also sync the database log at every flush: flushed calls then survive power loss and OS
  /// crashes, not only crashes of the process (docs/guarantees.md). Costs one fsync per flush.
  bool durable_flush = false;
  /// What happens when an op's tracked code differs from the code its calls were stored with
  /// (mandala/versioning.hpp).
  OnCodeChange on_code_change = OnCodeChange::new_version;
  /// No effect (kept for compatibility): every read_only open now leaves the store's files as it
  /// found them.
  bool leave_untouched = false;
};

/// A stored call, as returned by queries. Refs are lazy.
struct CallInfo {
  std::string op;
  std::uint32_t version = 0;
  Id hid;
  Id cid;
  std::vector<std::pair<std::string, AnyRef>> inputs;   ///< sorted by name
  std::vector<std::pair<std::string, AnyRef>> outputs;  ///< in the op's declared order
  std::chrono::system_clock::time_point created;

  /// The input or output of that name; nullopt when the call has none.
  [[nodiscard]] std::optional<AnyRef> input(std::string_view name) const;
  [[nodiscard]] std::optional<AnyRef> output(std::string_view name) const;
};

/// How many calls the storage executed and reused since it was opened (this process only).
struct CallCounters {
  std::uint64_t executed = 0;
  std::uint64_t reused_by_history = 0;  ///< the same call (same input histories) was stored
  std::uint64_t reused_by_content = 0;  ///< a content-equal call was stored; recorded under new ids
  [[nodiscard]] std::uint64_t reused() const { return reused_by_history + reused_by_content; }
};

struct StorageStats {
  std::uint64_t ops = 0;
  std::uint64_t calls = 0;
  std::uint64_t values = 0;
  std::uint64_t refs = 0;         ///< distinct history ids among call inputs and outputs
  std::uint64_t blob_files = 0;   ///< values whose bytes are kept in a blob file
  std::uint64_t value_bytes = 0;  ///< encoded bytes of all stored values
  friend bool operator==(const StorageStats&, const StorageStats&) = default;
};

struct CleanupReport {
  std::uint64_t values_removed = 0;
  std::uint64_t bytes_freed = 0;
  std::uint64_t blob_files_removed = 0;
};

/// One thing wrong in a store, found by Storage::check_integrity().
struct IntegrityProblem {
  /// Stable name of the kind of problem (scripts may switch on it):
  ///   "sqlite"            SQLite's own integrity check reports damaged pages, rows or indexes
  ///   "missing_op"        a call refers to an op the ops table does not hold
  ///   "bad_op"            an op's input or output name list is unreadable
  ///   "missing_version"   a call refers to a semantic code version the store does not hold
  ///   "bad_io"            a call's input/output list (its io column) cannot be decoded
  ///   "bad_cid"           a call's stored content id is neither 16 bytes nor empty
  ///   "underivable_cid"   a call stores no content id, but it cannot be derived from its row
  ///   "orphan_io"         a ref index row belongs to no stored call, or to a call without that ref
  ///   "unindexed_io"      an input/output of a call has no ref index row
  ///   "missing_output"    a call lacks an output its op declares
  ///   "unexpected_output" a call has an output its op does not declare
  ///   "duplicate_call"    one ref is the output of more than one stored call (a call recorded twice)
  ///   "ref_conflict"      one ref (history id) appears with more than one content id
  ///   "missing_value"     a ref's value is stored neither inline nor as a blob file row
  ///   "value_mismatch"    an inline value's bytes (or recorded size) do not match its id
  ///   "missing_blob"      a value recorded as a blob file has no file
  ///   "blob_mismatch"     a blob file's content does not match its id, or cannot be read
  ///   "index_count"       an index and its table disagree on the number of rows
  ///   "count_mismatch"    a maintained count (calls, output bytes or last call of an op; values,
  ///                       value bytes, blob values or refs of the store) differs from a recount
  std::string kind;
  /// What is wrong, naming the call, ref or value id involved.
  std::string message;
};

/// The result of Storage::check_integrity(): what was checked and every problem found.
struct IntegrityReport {
  std::vector<IntegrityProblem> problems;
  /// Harmless findings that do not make the store inconsistent, with the same shape as problems:
  ///   "stray_blob"      a blob file no value row refers to (left by an interrupted or failed
  ///                     flush, or written by another process that has not committed yet);
  ///                     cleanup() removes it
  ///   "stale_temporary" a temporary blob file older than an hour (an interrupted write);
  ///                     cleanup() removes it
  ///   "unused_value_without_blob"  a value no call uses lacks its blob file (a cleanup was
  ///                     interrupted); cleanup() removes the row
  ///   "detached_ref"    a call input whose creating call is no longer stored (dropped without
  ///                     its dependents); its value is still there
  std::vector<IntegrityProblem> warnings;
  std::uint64_t ops = 0;
  std::uint64_t calls = 0;
  std::uint64_t io_rows = 0;              ///< inputs and outputs of calls
  std::uint64_t refs = 0;                 ///< distinct history ids among them
  std::uint64_t values = 0;               ///< value rows, each hashed and compared with its id
  std::uint64_t blob_files = 0;           ///< blob files found on disk
  std::uint64_t unreferenced_values = 0;  ///< values no call uses (kept until cleanup())
  [[nodiscard]] bool ok() const { return problems.empty(); }
};

/// Progress of a long operation: `done` of `total` units of work.
using ProgressCallback = std::function<void(std::uint64_t done, std::uint64_t total)>;

// ---- inspection (what the `mandala` command shows; read-only queries) -------------------------

/// One op (name and version) known to a store, with what its stored calls add up to.
struct OpSummary {
  std::string name;
  std::uint32_t version = 0;
  std::vector<std::string> inputs;   ///< input names as declared
  std::vector<std::string> outputs;  ///< output names as declared
  std::uint64_t calls = 0;           ///< stored calls
  /// Encoded bytes of the outputs of its stored calls (a value output by k calls counts k times).
  std::uint64_t output_bytes = 0;
  /// When its most recently recorded call was recorded; nullopt without calls.
  std::optional<std::chrono::system_clock::time_point> last_call;
  friend bool operator==(const OpSummary&, const OpSummary&) = default;
};

/// A summary of a whole store.
struct StorageInfo {
  std::filesystem::path path;  ///< empty for an in-memory storage
  int schema_version = 0;
  std::optional<std::chrono::system_clock::time_point> created;
  StorageStats stats;
  std::uint64_t database_bytes = 0;   ///< the database file and its write-ahead log
  std::uint64_t blob_file_bytes = 0;  ///< the files of large values
  std::vector<OpSummary> ops;         ///< by name, then version
};

/// Which calls of an op Storage::find_calls returns.
struct CallQuery {
  std::optional<std::uint32_t> version;  ///< all versions when empty
  std::size_t limit = SIZE_MAX;
  std::size_t offset = 0;
  bool newest_first = false;  ///< storage order (oldest first) otherwise
};

/// A call or ref whose history id starts with a given prefix (Storage::find_by_prefix).
struct IdMatch {
  enum class Kind { call, ref };
  Kind kind = Kind::call;
  Id hid;
};

enum class Dependents { no, yes };

class ComputationFrame;  // mandala/frame.hpp

class Storage {
 public:
  /// A private in-memory storage.
  Storage();
  /// Opens or creates a store file. Errc::corrupt_store for a file that is not SQLite,
  /// Errc::foreign_database for an SQLite database that is not a mandala store,
  /// Errc::schema_mismatch for a store of another schema; nothing on disk changes then.
  explicit Storage(const std::filesystem::path& path, StorageOptions options = {});
  /// Flushes pending calls (errors are reported on stderr: call flush() to see them).
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  Storage(Storage&&) noexcept;
  Storage& operator=(Storage&&) noexcept;

  /// Calls `op` memoized in this storage, whatever the ambient session. Outside a session on
  /// this storage the call is flushed before returning.
  template <class O, class... As>
  auto call(const O& op, As&&... args) {
    if constexpr (std::is_void_v<typename O::Result>) {
      op.call_in(m_core, std::forward<As>(args)...);
      if (!detail::has_session_on(m_core.get())) flush();
    } else {
      auto result = op.call_in(m_core, std::forward<As>(args)...);
      if (!detail::has_session_on(m_core.get())) flush();
      return result;
    }
  }

  /// Writes every pending call in one transaction.
  void flush();
  /// When false, memoized calls still resolve but new calls throw Errc::new_calls_not_allowed.
  void allow_new_calls(bool allow);
  /// The mode of this thread's innermost session on this storage (run when there is none).
  [[nodiscard]] Mode mode() const;
  [[nodiscard]] CallCounters counters() const;
  [[nodiscard]] StorageStats stats();
  /// Empty for an in-memory storage.
  [[nodiscard]] const std::filesystem::path& path() const;

  // ---- queries (pending calls are flushed first) ------------------------------------------
  /// The ref of that history id (lazy); nullopt if no stored call has it as input or output.
  [[nodiscard]] std::optional<AnyRef> ref(const Id& hid);
  template <class T>
  [[nodiscard]] std::optional<Ref<T>> ref(const Id& hid) {
    auto r = ref(hid);
    if (!r) return std::nullopt;
    return r->as<T>();
  }
  /// The call that created this ref; nullopt for a raw input.
  [[nodiscard]] std::optional<CallInfo> creator_of(const AnyRef& ref);
  /// The calls that took this ref as an input.
  [[nodiscard]] std::vector<CallInfo> consumers_of(const AnyRef& ref);
  [[nodiscard]] std::optional<CallInfo> call_by_hid(const Id& call_hid);
  /// Every stored call of the op (of one version when given), oldest first.
  [[nodiscard]] std::vector<CallInfo> calls_of(std::string_view op_name, std::optional<std::uint32_t> version = {});
  template <class R, class... Ps>
  [[nodiscard]] std::vector<CallInfo> calls_of(const Op<R, Ps...>& op) {
    return calls_of(op.name(), op.version());
  }
  /// Removes calls (by call hid); with Dependents::yes also every call downstream of their
  /// outputs. Values stay until cleanup(). Returns the number of calls removed.
  std::size_t drop_calls(std::span<const Id> call_hids, Dependents dependents = Dependents::no);
  /// Removes values (and blob files) that no stored call references, and counts the store's
  /// kept counts (stats(), ops()) afresh from the data.
  CleanupReport cleanup();
  /// Checks the whole store (pending calls are flushed first): SQLite's own integrity check,
  /// every call's op, inputs and outputs, every referenced value (inline, or a blob file whose
  /// content matches its id), ref consistency, index counts, stray blob files. Reads only; works
  /// on a read-only storage. `progress`, when given, is called now and then from this thread.
  [[nodiscard]] IntegrityReport check_integrity(ProgressCallback progress = {});

  // ---- inspection (read-only; work on stores opened with read_only) -------------------------
  /// Schema, counts, sizes and every op.
  [[nodiscard]] StorageInfo info();
  /// Every op with its call count, output bytes and last call, by name then version.
  [[nodiscard]] std::vector<OpSummary> ops();
  /// One page of an op's calls; Errc::not_found when the store has no op of that name (and
  /// version). Costs what the page costs, not what the op's calls cost.
  [[nodiscard]] std::vector<CallInfo> find_calls(std::string_view op_name, const CallQuery& query = {});
  /// Calls and refs whose history id starts with `hex_prefix` (1 to 32 hex digits, any case),
  /// calls first, at most `limit` of each kind. Errc::invalid_argument for a non-hex prefix.
  [[nodiscard]] std::vector<IdMatch> find_by_prefix(std::string_view hex_prefix, std::size_t limit = 10);
  /// The calls drop_calls(call_hids, dependents) would remove, in storage order; changes nothing.
  [[nodiscard]] std::vector<CallInfo> calls_to_drop(std::span<const Id> call_hids,
                                                    Dependents dependents = Dependents::no);
  /// What cleanup() would remove and free now; changes nothing.
  [[nodiscard]] CleanupReport cleanup_preview();

  /// ComputationFrames over this storage (mandala/frame.hpp; pending calls included): all calls
  /// of an op (of one version when given), refs in one variable `v`, or named sets of refs.
  [[nodiscard]] ComputationFrame cf(std::string_view op_name, std::optional<std::uint32_t> version = std::nullopt);
  /// All calls of the op's current version (defined in mandala/frame.hpp).
  template <class R, class... Ps>
  [[nodiscard]] ComputationFrame cf(const Op<R, Ps...>& op);
  [[nodiscard]] ComputationFrame cf(const AnyRef& ref);
  [[nodiscard]] ComputationFrame cf(const std::vector<AnyRef>& refs);
  [[nodiscard]] ComputationFrame cf(const std::map<std::string, std::vector<AnyRef>>& vars);

  // ---- code versions (mandala/versioning.hpp, docs/versioning.md) --------------------------
  // A version is named by its number (1, 2, ... as listed), or by a prefix (4+ hex digits) of
  // its content or semantic version id; Errc::not_found when the op has no such version.
  /// Every recorded version of the op's code, oldest first, with the code of its components.
  [[nodiscard]] std::vector<OpVersion> versions(std::string_view op_name);
  /// versions() as text: each version with the code of every component it depends on.
  [[nodiscard]] std::string versions_listing(std::string_view op_name);
  /// A unified diff of the code of two versions of the op (empty when the code is equal).
  [[nodiscard]] std::string diff_versions(std::string_view op_name, std::string_view from, std::string_view to);
  /// Removes every call computed under the version's semantic version, and every call
  /// downstream of them, and forgets the version (and versions compatible with it). Returns the
  /// number of calls removed.
  std::size_t drop_version(std::string_view op_name, std::string_view version);
  /// Declares the code changes of a version (by default the newest) compatible with the code
  /// before them: calls stored under the earlier code are valid again for it, without
  /// recomputation. Returns the components whose change was marked; Errc::invalid_argument for
  /// a first version (nothing to be compatible with).
  std::vector<std::string> mark_compatible(std::string_view op_name, std::string_view version = {});
  /// Declares the code changes of a version (by default the newest) semantic: its calls are
  /// computed anew. Decides changes held back by OnCodeChange::error, or undoes mark_compatible.
  std::vector<std::string> mark_new_version(std::string_view op_name, std::string_view version = {});

  [[nodiscard]] const std::shared_ptr<detail::StorageCore>& core() const noexcept { return m_core; }

 private:
  std::shared_ptr<detail::StorageCore> m_core;
};

/// RAII scope like mandala's `with storage:`. Sessions form a per-thread stack; ops called on
/// this thread use the innermost one. Leaving the outermost session of a storage flushes it,
/// also when an exception is propagating (calls completed before it are kept).
class Session {
 public:
  explicit Session(Storage& storage, Mode mode = Mode::run);
  /// Flushes when outermost; a flush error is reported on stderr (call close() to see it).
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  /// Leaves the session now; throws what the flush throws.
  void close();

 private:
  std::shared_ptr<detail::StorageCore> m_core;
  Mode m_mode;
  bool m_open = true;
};

/// Like mandala's `noop()`: inside it, ops are plain calls. Inside a session it keeps that
/// session's storage (refs passed in are loaded from it); without one it does nothing else.
class NoopScope {
 public:
  NoopScope();
  ~NoopScope();
  NoopScope(const NoopScope&) = delete;
  NoopScope& operator=(const NoopScope&) = delete;
};

}  // namespace mandala
