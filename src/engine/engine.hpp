#pragma once
// StorageCore: the call pipeline over a Store. Lookup by history id, then by content id (in
// pending writes, the in-memory caches and the persistent store), else execute; records go to a
// pending batch flushed in one transaction.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "mandala/detail/core.hpp"
#include "mandala/storage.hpp"
#include "store/store.hpp"
#include "util/generational_cache.hpp"

namespace mandala::detail {

/// Resolves the code version of ops in one storage (implemented by src/versioning, which
/// installs it when a Storage is opened). Called with the storage's lock held, once per op and
/// explicit version until StorageCore::forget_op_versions().
/// The op that recomputes transient outputs of calls of `name` and `version` in this process
/// (note_replayable), or null.
std::shared_ptr<const OpInfo> replayable_op(const std::string& name, std::uint32_t version);

class VersionResolver {
 public:
  virtual ~VersionResolver() = default;
  /// The semantic version of the op's current code; nullopt when the op is not code-versioned.
  /// May throw (Errc::code_changed): the call fails and the next call asks again.
  virtual std::optional<Id> resolve(const OpInfo& op, store::Store& store) = 0;
};

/// Ends the store's read snapshot when a query is done, so an idle storage holds no lock.
class ReadScope {
 public:
  explicit ReadScope(store::Store& store) : m_store(store) {}
  ~ReadScope() {
    try {
      m_store.end_read();
    } catch (const std::exception&) {  // ending a read-only transaction cannot lose data
    }
  }
  ReadScope(const ReadScope&) = delete;
  ReadScope& operator=(const ReadScope&) = delete;

 private:
  store::Store& m_store;
};

class StorageCore {
 public:
  StorageCore(const std::filesystem::path& path, const StorageOptions& options);
  /// Flushes; a failure is reported on stderr.
  ~StorageCore();
  StorageCore(const StorageCore&) = delete;
  StorageCore& operator=(const StorageCore&) = delete;

  std::vector<std::shared_ptr<RefState>> call(const std::shared_ptr<StorageCore>& self, const OpInfo& op,
                                              std::vector<InputSlot>& inputs, Executor& exec);
  void flush();
  /// Encoded bytes of a value held here (pending or stored); Errc::not_found when absent.
  std::vector<std::byte> load_value(const Id& cid);

  void allow_new_calls(bool allow) { m_allow_new_calls = allow; }
  void set_version_resolver(std::unique_ptr<VersionResolver> resolver);
  /// Ops resolve their code version again at their next call (after a compatibility decision).
  void forget_op_versions();
  /// Runs `f(store)` with pending calls flushed, under the storage's lock.
  template <class F>
  auto with_store(F&& f) {
    std::lock_guard lock(m_mutex);
    flush_locked();
    struct EndRead {
      store::Store& s;
      ~EndRead() {
        try {
          s.end_read();
        } catch (const std::exception&) {  // ending a read-only transaction cannot lose data
        }
      }
    } end{*m_store};
    return f(*m_store);
  }
  [[nodiscard]] const StorageOptions& options() const { return m_options; }
  [[nodiscard]] CallCounters counters() const;
  [[nodiscard]] const std::filesystem::path& path() const { return m_path; }

  // Queries: pending calls are flushed first.
  std::optional<AnyRef> ref(const std::shared_ptr<StorageCore>& self, const Id& hid);
  std::optional<CallInfo> creator_of(const std::shared_ptr<StorageCore>& self, const Id& ref_hid);
  std::vector<CallInfo> consumers_of(const std::shared_ptr<StorageCore>& self, const Id& ref_hid);
  std::optional<CallInfo> call_by_hid(const std::shared_ptr<StorageCore>& self, const Id& hid);
  std::vector<CallInfo> calls_of(const std::shared_ptr<StorageCore>& self, std::string_view op,
                                 std::optional<std::uint32_t> version);
  // Bulk queries for the ComputationFrame (src/frame): pending calls are flushed first; records
  // come back in storage order, each call once. The streamed forms hand each record to `sink`
  // as it is read (store::CallSink; the sink must not call back into this storage).
  void call_records_of(std::string_view op, std::optional<std::uint32_t> version, const store::CallSink& sink);
  std::vector<store::CallRecord> creators_of_many(std::span<const Id> ref_hids);
  void creators_of_many(std::span<const Id> ref_hids, const store::CallSink& sink);
  void consumers_of_many(std::span<const Id> ref_hids, const store::CallSink& sink);
  std::vector<store::CallRecord> calls_by_hids(std::span<const Id> call_hids);
  /// Encoded bytes of each value (pending or stored; nullopt where absent), in the order of `cids`.
  std::vector<std::optional<std::vector<std::byte>>> load_values(std::span<const Id> cids);
  /// The op's declared output names (empty when the store does not know the op).
  std::vector<std::string> op_outputs(std::string_view op, std::uint32_t version);
  /// The public view of a stored call (lazy refs loading from this storage).
  CallInfo info_of(const std::shared_ptr<StorageCore>& self, const store::CallRecord& record);
  /// A lazy ref of this storage.
  static std::shared_ptr<RefState> lazy_ref(const std::shared_ptr<StorageCore>& self, const Id& hid, const Id& cid,
                                            bool transient = false);
  /// The encoded value of a ref of this storage: pending or stored, else, for a transient
  /// output (OpOptions::transient), recomputed by running its call's op again on the call's
  /// stored inputs (its content id checked: Errc::output_mismatch when the result changed).
  /// Errc::not_found when the value is neither stored nor transient.
  std::vector<std::byte> load_ref_value(const std::shared_ptr<StorageCore>& self, const RefState& ref);
  /// The stored call that made the ref when it records it as a transient output (the lock held).
  std::optional<store::CallRecord> transient_creator_locked(const Id& ref_hid);
  std::size_t drop_calls(std::span<const Id> call_hids, Dependents dependents);
  CleanupReport cleanup();
  /// Storage::push (src/engine/transfer.cpp).
  TransferReport transfer_to(StorageCore& destination, const TransferOptions& options);
  StorageStats stats();
  IntegrityReport check_integrity(const ProgressCallback& progress);
  // Inspection (src/engine/inspect.cpp): pending calls are flushed first.
  StorageInfo info();
  std::vector<OpSummary> op_summaries();
  std::vector<CallInfo> find_calls(const std::shared_ptr<StorageCore>& self, std::string_view op,
                                   const CallQuery& query);
  std::vector<IdMatch> find_by_prefix(std::string_view hex_prefix, std::size_t limit);
  std::vector<CallInfo> calls_to_drop(const std::shared_ptr<StorageCore>& self, std::span<const Id> call_hids,
                                      Dependents dependents);
  CleanupReport cleanup_preview();
  /// Storage::rename_op / rename_input / rename_output (pending calls are flushed first).
  void rename(store::NameKind kind, std::string_view op, std::string_view from, std::string_view to);

 private:
  /// What a lookup needs of a call: its content id and outputs. Compact, since the caches hold
  /// many: one output inline, output names interned.
  struct CachedOutput {
    const std::string* name = nullptr;
    Id hid;
    Id cid;
    bool transient = false;
  };
  class CachedCall {
   public:
    CachedCall() = default;
    CachedCall(const store::CallRecord& record, StorageCore& core);
    [[nodiscard]] const Id& cid() const { return m_cid; }
    [[nodiscard]] std::span<const CachedOutput> outputs() const {
      return m_count <= 1 ? std::span<const CachedOutput>(&m_one, m_count)
                          : std::span<const CachedOutput>(m_many.get(), m_count);
    }

   private:
    Id m_cid;
    std::uint32_t m_count = 0;
    CachedOutput m_one;
    std::unique_ptr<CachedOutput[]> m_many;
  };
  struct OpKeyLess {
    using is_transparent = void;
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
      const std::string_view an(a.first), bn(b.first);
      return an < bn || (an == bn && a.second < b.second);
    }
  };

  /// A declared op: its declaration (the widest inputs seen) and its code version.
  struct RegisteredOp {
    std::vector<std::string> inputs;
    std::vector<std::string> outputs;
    std::optional<Id> semantic;
    /// The cache generation `semantic` was resolved in; none: resolve at the next call.
    std::optional<std::uint64_t> resolved_at;
    /// The OpInfo::code_id `semantic` was resolved for (dynamic ops give their code as data).
    Id resolved_code;
    /// How long the op's last run here took; none before its first (claim_min_run).
    std::optional<std::chrono::nanoseconds> last_run;
    /// The names hashed into ids (docs/storage-format.md 2.2): the op's identity name, and the
    /// identity names of inputs and outputs whose declared name differs.
    std::string identity{};
    std::unordered_map<std::string, std::string> input_identity{};
    std::unordered_map<std::string, std::string> output_identity{};
  };
  /// A new call one thread of this storage is computing (keyed by its content id in
  /// m_in_flight); other threads making a call of the same content wait on `done`.
  struct InFlight {
    std::thread::id runner;
    bool done = false;
    std::condition_variable cv;
  };
  class FlightGuard;
  /// Where a value a pending call refers to, but the batch does not carry, can be had again:
  /// its encoded bytes, or a ref holding it (in memory, or in another storage).
  struct ValueSource {
    std::vector<std::byte> bytes;
    std::shared_ptr<RefState> ref;
  };

  void flush_locked();
  void maybe_flush_locked();
  /// Drops the caches when the store reports that another connection committed since they were
  /// filled (a drop, cleanup or version change there may have made them wrong).
  void sync_caches_locked();
  /// Writes the pending batch, bringing back values another connection removed meanwhile
  /// (from m_pending_sources) and leaving out calls that cannot be stored; returns the error
  /// to report for what was left out (none when everything was written).
  std::optional<Error> write_pending_locked();
  /// Removes pending calls for which `drop` is true; returns how many.
  template <class Pred>
  std::size_t discard_pending_calls_locked(Pred&& drop);
  /// The bytes of a value from its source; empty when it cannot be had.
  std::vector<std::byte> bytes_from(ValueSource& source);
  void note_source_locked(const Id& cid, ValueSource source);
  /// Registers the op (once) and returns its semantic code version (nullopt: not versioned).
  /// Throws when the declaration disagrees with the op as stored or declared before.
  RegisteredOp& register_op_locked(const OpInfo& op);
  /// Sets the identity names of `registered` for the declaration `op` (the store may record a
  /// rename the declaration says, or a fresh identity for a reused old name). Returns whether
  /// the store recorded such a change (the cached calls, which carry names, are dropped then).
  bool resolve_names_locked(const OpInfo& op, RegisteredOp& registered);
  const CachedCall* find_by_hid_locked(const Id& hid);
  /// A call pending or cached here (no store lookup).
  const CachedCall* find_local_locked(const Id& hid);
  /// A call with this content id, pending or stored; `raw_hid` as in store::Store::call_by_content.
  const CachedCall* find_by_content_locked(const Id& cid, const Id* raw_hid);
  void record_locked(store::CallRecord record);
  /// Marks the start of a batch (its generation) when nothing is pending yet.
  void begin_batch_locked();
  /// Whether the value is pending or stored (so the batch need not carry it). Small values are
  /// not looked up in the store (writing one that is there already is a no-op); `size` is 0 when
  /// unknown.
  bool value_known_locked(const Id& cid, std::size_t size);
  /// Adds the value to the pending batch (the caller found it not known).
  void push_value_locked(const Id& cid, std::vector<std::byte> bytes);
  const std::string* intern(const std::string& name);
  std::vector<std::shared_ptr<RefState>> lazy_outputs(const std::shared_ptr<StorageCore>& self, const OpInfo& op,
                                                      const Id& call_hid, std::span<const CachedOutput> outputs) const;
  CallInfo to_info(const std::shared_ptr<StorageCore>& self, const store::CallRecord& record);

  // Claims (docs/guarantees.md, "Each call computed once").
  /// Whether this storage claims new calls in its store (a shared store, claims not turned off
  /// and not given up after an error).
  [[nodiscard]] bool claiming() const { return m_claims_on.load(std::memory_order_relaxed); }
  /// Turns claims off for good after the store failed to take, renew or release one (they are
  /// advisory); says so on stderr once.
  void give_up_claims(const std::exception& e) noexcept;
  /// Takes the claim on `cid` for this storage, waiting (polling with backoff, not holding the
  /// lock) while another owner holds it. Returns true once held; false when claims were given
  /// up meanwhile. `stored` is called under the lock with a fresh read snapshot after each
  /// failed attempt and after the claim is won: when it returns true (the call is stored or
  /// pending now) the wait ends and a claim won is released.
  template <class Stored>
  bool claim(const Id& cid, std::unique_lock<std::mutex>& lock, Stored&& stored);
  void note_claim_held(const Id& cid);
  /// Releases claims (held by this storage) now, best effort.
  void release_claims_now(std::span<const Id> cids) noexcept;
  void heartbeat_loop();

  std::filesystem::path m_path;
  StorageOptions m_options;
  std::unique_ptr<store::Store> m_store;
  std::atomic<bool> m_allow_new_calls{true};

  mutable std::mutex m_mutex;
  // Pending writes (not yet in the store).
  store::WriteBatch m_pending;
  std::unordered_map<Id, CachedCall> m_pending_by_hid;
  std::unordered_map<Id, Id> m_pending_by_cid;            ///< cid -> hid
  std::unordered_map<Id, std::size_t> m_pending_values;   ///< cid -> index in m_pending.values
  std::unordered_map<Id, ValueSource> m_pending_sources;  ///< values pending calls use, not in the batch
  std::chrono::steady_clock::time_point m_last_flush;
  /// flush_locked() calls so far: a call looked up in the store when this had its current value
  /// was looked up since the store's last write from here (WriteBatch::calls_looked_up).
  std::uint64_t m_flushes = 0;
  // Caches of what the store holds, as of the store's generation m_cache_generation.
  std::uint64_t m_cache_generation = 0;
  util::GenerationalCache<Id, CachedCall> m_calls_by_hid;
  util::GenerationalCache<Id, Id> m_hid_by_cid;
  util::GenerationalCache<Id, bool> m_known_values;
  std::unordered_set<std::string> m_names;  ///< interned output names
  std::map<std::pair<std::string, std::uint32_t>, RegisteredOp, OpKeyLess> m_registered_ops;
  std::unique_ptr<VersionResolver> m_versions;
  std::unordered_map<std::string, std::vector<std::string>> m_op_outputs;  ///< "name#version" -> outputs

  /// New calls being computed by a thread of this storage, by content id.
  std::unordered_map<Id, std::shared_ptr<InFlight>> m_in_flight;
  /// Claims of calls recorded and pending: released by the flush that stores them.
  std::vector<Id> m_claims_pending;
  std::optional<Error> m_background_flush_error;  ///< a flush by the heartbeat left calls out

  std::atomic<bool> m_claims_on{false};
  Id m_claim_owner;  ///< this storage's owner id in the store's claims
  std::mutex m_claims_mutex;
  std::condition_variable m_heartbeat_cv;
  std::unordered_set<Id> m_claims_held;  ///< renewed by the heartbeat (under m_claims_mutex)
  bool m_heartbeat_stop = false;         ///< under m_claims_mutex
  std::thread m_heartbeat;               ///< started at the first claim

  std::atomic<std::uint64_t> m_executed{0};
  std::atomic<std::uint64_t> m_reused_by_history{0};
  std::atomic<std::uint64_t> m_reused_by_content{0};
  std::atomic<std::uint64_t> m_recomputed{0};
};

}  // namespace mandala::detail
