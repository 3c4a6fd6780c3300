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
#include "mandala/export.hpp"
#include "mandala/id.hpp"
#include "mandala/op.hpp"
#include "mandala/ref.hpp"
#include "mandala/reports.hpp"

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
  /// Create the store when the location holds none (a new file, the tables of an empty
  /// PostgreSQL database). When false, opening a location without a store fails with
  /// Errc::not_found and creates nothing (what the `mandala` commands that change a store do).
  bool create = true;
  /// What happens when an op's tracked code differs from the code its calls were stored with
  /// (mandala/versioning.hpp).
  OnCodeChange on_code_change = OnCodeChange::new_version;
  /// Processes sharing a file store claim a new call before computing it, so that one of them
  /// computes it while the others wait for its result (docs/guarantees.md, "Each call computed
  /// once"). false: only the threads of one storage wait for each other.
  bool claim_new_calls = true;
  /// How long a claim lasts without being renewed (its holder renews it every claim_lease / 3
  /// while the call runs and until it is flushed). A process that dies holding claims delays
  /// the others by at most this; on this machine its claims are taken over at once.
  std::chrono::milliseconds claim_lease{30'000};
  /// Calls of an op whose last run in this storage took less than this are not claimed:
  /// computing such a call twice costs less than the claim (one short write transaction). An
  /// op's first new call is always claimed; zero claims every new call.
  std::chrono::microseconds claim_min_run{1000};
  /// No effect (kept for compatibility): every read_only open now leaves the store's files as it
  /// found them.
  bool leave_untouched = false;
};

/// A stored call, as returned by queries. Refs are lazy.
struct MANDALA_API CallInfo {
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
  /// Transient outputs (OpOptions::transient) recomputed because their value was loaded.
  std::uint64_t recomputed = 0;
  [[nodiscard]] std::uint64_t reused() const { return reused_by_history + reused_by_content; }
};

/// A call or ref whose history id starts with a given prefix (Storage::find_by_prefix).
struct IdMatch {
  enum class Kind { call, ref };
  Kind kind = Kind::call;
  Id hid;
};

enum class Dependents { no, yes };

/// The file a store location names (a plain path, or the path of an `sqlite:` location; empty
/// for ""), or nullopt for a location of another backend (docs/storage-format.md, "Store
/// locations"). Errc::invalid_argument for a malformed `sqlite:` location.
[[nodiscard]] MANDALA_API std::optional<std::filesystem::path> store_file(const std::string& location);

/// What Storage::push / pull copy.
struct TransferOptions {
  /// Only the calls (and code versions) of these ops, every version; all ops when empty.
  std::vector<std::string> ops;
  /// Calls copied per transaction: an interrupted copy keeps what it committed, and a rerun
  /// continues from there.
  std::size_t batch_calls = 2000;
  /// Called now and then with the calls examined of all the source's calls to copy.
  ProgressCallback progress;
};

class ComputationFrame;  // mandala/frame.hpp

class MANDALA_API Storage {
 public:
  /// A private in-memory storage.
  Storage();
  /// Opens or creates the store at a location: a file path, `sqlite:///ABSOLUTE/PATH` or
  /// `sqlite:RELATIVE/PATH` (an SQLite file), or `postgresql://...` (docs/storage-format.md,
  /// "Store locations"); Errc::invalid_argument for an unknown scheme or a backend this build
  /// lacks. Errc::corrupt_store for a file that is not SQLite,
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
  /// The store's file (the path an `sqlite:` location names), the location itself for other
  /// backends; empty for an in-memory storage.
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
  /// Copies to `destination` every call of this storage it lacks, with the values those calls
  /// use, their ops and the code versions and commits of those ops; both sides' pending calls
  /// are flushed first. Idempotent and resumable: each batch of calls is one transaction at the
  /// destination, so a copy that was interrupted and run again copies what is missing and
  /// nothing twice. Records both sides hold differently are reported (TransferReport::conflicts),
  /// never overwritten. Errc::not_found for an op in `options.ops` this storage does not have;
  /// Errc::invalid_argument when `destination` is this storage.
  TransferReport push(Storage& destination, const TransferOptions& options = {});
  /// The same from `source` into this storage: `source.push(*this, options)`.
  TransferReport pull(Storage& source, const TransferOptions& options = {});
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
  /// a first version (nothing to be compatible with), and, when no version is named, for a
  /// newest version that may not be the change meant (compatible_preview's caution, e.g. the
  /// program's current code is not recorded yet): the message says why, how to name it, and
  /// shows its diff.
  std::vector<std::string> mark_compatible(std::string_view op_name, std::string_view version = {});
  /// What mark_compatible(op_name, version) would mark, and the diff against the code it joins;
  /// changes nothing.
  [[nodiscard]] CompatibleMark compatible_preview(std::string_view op_name, std::string_view version = {});
  /// Declares the code changes of a version (by default the newest) semantic: its calls are
  /// computed anew. Decides changes held back by OnCodeChange::error, or undoes mark_compatible.
  std::vector<std::string> mark_new_version(std::string_view op_name, std::string_view version = {});

  // ---- renames (docs/storage-format.md 2.2) -------------------------------------------------
  // The op, input or output keeps its stored calls under the new name: calls, frames, tables and
  // version listings show it, and the old name is free for something new (which never shares
  // calls with the renamed one). Every version of the op is renamed. Errc::not_found when the
  // store has no op (input, output) `from`; Errc::invalid_argument when `to` is in use already
  // (an op of that name; an input or output of that name in some version of the op) or for a
  // built-in collection op. Pending calls are flushed first. Declaring the old name in code
  // (OpOptions::formerly, Param::formerly, OpOptions::output_formerly) does the same when the
  // op is first used.
  void rename_op(std::string_view from, std::string_view to);
  void rename_input(std::string_view op_name, std::string_view from, std::string_view to);
  void rename_output(std::string_view op_name, std::string_view from, std::string_view to);

  [[nodiscard]] const std::shared_ptr<detail::StorageCore>& core() const noexcept { return m_core; }

 private:
  std::shared_ptr<detail::StorageCore> m_core;
};

/// RAII scope like mandala's `with storage:`. Sessions form a per-thread stack; ops called on
/// this thread use the innermost one. Leaving the outermost session of a storage flushes it,
/// also when an exception is propagating (calls completed before it are kept).
class MANDALA_API Session {
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
class MANDALA_API NoopScope {
 public:
  NoopScope();
  ~NoopScope();
  NoopScope(const NoopScope&) = delete;
  NoopScope& operator=(const NoopScope&) = delete;
};

}  // namespace mandala
