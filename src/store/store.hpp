#pragma once
// The persistent-store interface the engine writes to and queries. One logical schema
// (docs/storage-format.md); backends implement it (SQLite: the embedded default). open_store
// picks the backend from a location.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "mandala/error.hpp"
#include "mandala/id.hpp"
#include "mandala/reports.hpp"

namespace mandala::store {

/// One input or output of a call.
struct IoRef {
  std::string name;
  Id hid;
  Id cid;
  /// The value is not stored: a transient output (OpOptions::transient), or an input that is
  /// one. A store does not require a `values` row for it (docs/storage-format.md 3.2).
  bool transient = false;
};

struct CallRecord {
  Id hid;
  Id cid;
  std::string op;
  std::uint32_t version = 0;
  std::vector<IoRef> inputs;    ///< sorted by name
  std::vector<IoRef> outputs;   ///< sorted by name
  std::int64_t created_ms = 0;  ///< unix time in milliseconds
  /// The semantic code version the call was computed under (code-versioned ops only). Written,
  /// but not read back by call lookups (it is part of the call's ids already).
  std::optional<Id> semantic;
};

struct OpRecord {
  std::string name;
  std::uint32_t version = 0;
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
};

/// One commit of a component's history (docs/storage-format.md, "Code versions").
struct CommitRecord {
  std::string component;
  Id content;
  std::optional<Id> parent;    ///< the head when it was committed; none for a root
  std::optional<Id> semantic;  ///< its equivalence class; none while undecided
  std::string kind;
  std::string code;
  std::int64_t created_ms = 0;
};

/// One component of an op version, with the commit it had.
struct VersionComponent {
  std::string component;
  Id content;
  Id semantic;
};

/// An op version: the contents of every component it reaches.
struct VersionRecord {
  std::string op;
  std::uint32_t op_version = 0;
  Id content_version;
  Id semantic_version;
  std::vector<VersionComponent> components;  ///< sorted by component
  std::int64_t created_ms = 0;
};

/// Changes to the code-version tables, applied in one transaction.
struct VersioningWrite {
  std::vector<CommitRecord> commits;  ///< inserted, or their `semantic` updated when present
  std::vector<std::pair<std::string, Id>> heads;
  std::vector<VersionRecord> versions;                       ///< inserted, or their semantic version updated
  std::vector<std::pair<std::string, Id>> dropped_versions;  ///< (op, content version)
  [[nodiscard]] bool empty() const {
    return commits.empty() && heads.empty() && versions.empty() && dropped_versions.empty();
  }
};

struct ValueRecord {
  Id cid;
  std::vector<std::byte> bytes;
};

/// Everything one flush writes; applied atomically (all or nothing). Calls whose hid is already
/// stored are skipped, as are values whose cid is. The calls may refer to values that are not in
/// the batch but stored; the store makes sure they still are (see Store::write).
struct WriteBatch {
  std::vector<OpRecord> ops;
  std::vector<ValueRecord> values;
  std::vector<CallRecord> calls;
  /// Store::generation() when the writer began collecting the batch: its lookups and the values
  /// it left out as stored are facts of then. While the store's generation is unchanged at the
  /// write, no other connection has committed since, and the store trusts them.
  std::uint64_t generation = 0;
  /// Set by a writer that looked up every call of the batch by hid in this store (call_by_hid)
  /// since the store's previous write and found none of them. The store then skips its own
  /// check for stored calls unless its generation changed since `generation`.
  bool calls_looked_up = false;
  [[nodiscard]] bool empty() const { return ops.empty() && values.empty() && calls.empty(); }
};

/// What a rename record renames (docs/storage-format.md 2.2).
enum class NameKind : std::uint8_t { op = 0, input = 1, output = 2 };

/// A rename record: the op, input or output known in ids as `identity` is called `name` now.
/// `op` is the op's identity name for an input or output, empty for an op.
struct NameRecord {
  NameKind kind = NameKind::op;
  std::string op;
  std::string identity;
  std::string name;
};

/// The names of an op as a program declares it, with the names each had before (`formerly`:
/// OpOptions::formerly, Param::formerly, OpOptions::output_formerly); the lists of former names
/// are parallel to `inputs` / `outputs` (or empty).
struct DeclaredNames {
  std::string name;
  std::vector<std::string> formerly;
  std::vector<std::string> inputs;
  std::vector<std::vector<std::string>> inputs_formerly;
  std::vector<std::string> outputs;
  std::vector<std::vector<std::string>> outputs_formerly;
};

/// The identity names of a declared op (hashed into ids), parallel to its declared names.
struct IdentityNames {
  std::string op;
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
  /// The call recorded a rename or a fresh identity: what the caller knows by name may be stale.
  bool recorded = false;
};

/// Receives the calls of a streamed bulk read one by one, in storage order. The record is reused
/// between calls (copy what is kept). When another connection's lock makes the store retry the
/// read from the start, calls already seen are seen again.
using CallSink = std::function<void(const CallRecord&)>;

/// Thrown by Store::write, which then wrote nothing: calls of the batch refer to values that are
/// neither in the batch nor stored (another connection removed them since the writer saw them).
/// The writer adds them to the batch (or leaves out the calls that need them) and writes again.
class MissingValues : public Error {
 public:
  explicit MissingValues(std::vector<Id> cids);
  [[nodiscard]] const std::vector<Id>& cids() const { return m_cids; }

 private:
  std::vector<Id> m_cids;
};

/// Thrown by Store::write, which then wrote nothing: an op of the batch disagrees with the op of
/// that name and version another connection has stored meanwhile (Errc::output_mismatch or
/// Errc::invalid_argument, naming both declarations).
class OpConflict : public Error {
 public:
  OpConflict(Errc code, const std::string& message, std::string op, std::uint32_t version)
      : Error(code, message), m_op(std::move(op)), m_version(version) {}
  [[nodiscard]] const std::string& op() const { return m_op; }
  [[nodiscard]] std::uint32_t version() const { return m_version; }

 private:
  std::string m_op;
  std::uint32_t m_version;
};

/// Whether `declared` inputs may stand for an op stored with `stored` inputs: one list is the
/// other with parameters added (a new_arg), in the same order.
bool inputs_compatible(const std::vector<std::string>& stored, const std::vector<std::string>& declared);
/// Throws OpConflict when the op `stored` (as another process stored it) disagrees with
/// `declared`: other outputs, or inputs that are not the stored ones with parameters added.
void require_agreement(const OpRecord& declared, const OpRecord& stored);
/// The component list of a code version as stored (a JSON array of [component, content hex,
/// semantic hex]), and back; `table` names where it was read for the damage error.
std::string components_to_json(const std::vector<VersionComponent>& components);
std::vector<VersionComponent> components_from_json(const std::string& text, const std::string& table);
/// Store::values_many for a backend: `read(distinct, put)` reads each distinct id of `cids` once
/// and calls `put(cid, bytes)` for those it finds; the result holds them at every position of
/// their id in `cids` (nullopt elsewhere).
template <class Read>
std::vector<std::optional<std::vector<std::byte>>> values_in_order(std::span<const Id> cids, Read&& read) {
  std::unordered_map<Id, std::vector<std::size_t>> where;
  for (std::size_t i = 0; i < cids.size(); ++i) where[cids[i]].push_back(i);
  std::vector<Id> distinct;
  distinct.reserve(where.size());
  for (const auto& [cid, _] : where) distinct.push_back(cid);
  std::vector<std::optional<std::vector<std::byte>>> out(cids.size());
  read(std::span<const Id>(distinct), [&](const Id& cid, const std::optional<std::vector<std::byte>>& bytes) {
    if (const auto it = where.find(cid); it != where.end())
      for (const auto i : it->second) out[i] = bytes;
  });
  return out;
}

/// Calls with their storage ids, as records in storage order (ascending ids).
std::vector<CallRecord> by_storage_id(std::vector<std::pair<std::int64_t, CallRecord>> calls);

/// "op NAME version V with inputs [..] and outputs [..]" for error messages.
std::string describe_op(const std::string& name, std::uint32_t version, const std::vector<std::string>& inputs,
                        const std::vector<std::string>& outputs);

class Store {
 public:
  virtual ~Store() = default;

  virtual std::optional<CallRecord> call_by_hid(const Id& hid) = 0;
  /// Some stored call with this content id (any history). `raw_hid`: the hid a call of this
  /// content has when its inputs are all raw values (docs/storage-format.md 2); the store keeps
  /// such calls under that hid only. Null when the caller knows no call has that hid (it has just
  /// looked it up).
  virtual std::optional<CallRecord> call_by_content(const Id& cid, const Id* raw_hid) = 0;
  /// The encoded bytes of a value; nullopt when absent. Errc::corrupt_store when a blob file is
  /// damaged or missing.
  virtual std::optional<std::vector<std::byte>> value(const Id& cid) = 0;
  /// Whether the value is stored and readable (a blob value whose file is missing is not).
  virtual bool has_value(const Id& cid) = 0;
  /// The ids among `cids` whose values are not stored and readable (has_value false), each
  /// once, in the order of `cids`: one query for many (copying between stores).
  virtual std::vector<Id> absent_values(std::span<const Id> cids) = 0;
  virtual std::optional<OpRecord> op(std::string_view name, std::uint32_t version) = 0;
  /// Writes the batch in one transaction. When the store's generation differs from the batch's,
  /// it checks what the writer assumed: calls already stored are skipped, and every value a new
  /// call refers to must be in the batch or stored (else MissingValues). An op whose stored
  /// declaration disagrees with the batch's is refused (OpConflict). Inputs of a stored op grow
  /// when the batch declares it with parameters added; they never shrink.
  virtual void write(const WriteBatch& batch) = 0;
  /// Changes whenever the store finds that another connection has committed to the file since
  /// it last looked (it looks when a read snapshot starts, here when none is open, and in each
  /// write), and after a failed write. What a reader learnt from the store stays true while it
  /// is unchanged (this connection's own drop_calls and cleanup aside). Costs no query while a
  /// read snapshot is open.
  virtual std::uint64_t generation() = 0;

  virtual std::optional<Id> ref_cid(const Id& hid) = 0;
  virtual std::optional<CallRecord> creator_of(const Id& ref_hid) = 0;
  virtual std::vector<CallRecord> consumers_of(const Id& ref_hid) = 0;
  // Bulk queries (the ComputationFrame loads by index, never one query per element), streamed:
  // no record is kept, so frames over millions of calls intern them as they are read. Each call
  // appears once, in storage order; unknown ids are skipped.
  /// The calls of an op (every version, or one).
  virtual void calls_of(std::string_view op, std::optional<std::uint32_t> version, const CallSink& sink) = 0;
  /// Calls that have an output among `ref_hids`.
  virtual void creators_of_many(std::span<const Id> ref_hids, const CallSink& sink) = 0;
  /// Calls that have an input among `ref_hids`.
  virtual void consumers_of_many(std::span<const Id> ref_hids, const CallSink& sink) = 0;
  // The same, collected (every backend gets them from the streamed forms).
  std::vector<CallRecord> calls_of(std::string_view op, std::optional<std::uint32_t> version);
  std::vector<CallRecord> creators_of_many(std::span<const Id> ref_hids);
  std::vector<CallRecord> consumers_of_many(std::span<const Id> ref_hids);
  /// Calls whose hid is among `call_hids`.
  virtual std::vector<CallRecord> calls_by_hids(std::span<const Id> call_hids) = 0;
  /// The encoded bytes of each value (nullopt where absent), in the order of `cids`.
  virtual std::vector<std::optional<std::vector<std::byte>>> values_many(std::span<const Id> cids) = 0;
  /// Removes the calls (and with `dependents`, every call downstream); returns how many.
  virtual std::size_t drop_calls(std::span<const Id> call_hids, bool dependents) = 0;
  virtual CleanupReport cleanup() = 0;
  virtual StorageStats stats() = 0;
  /// Checks the whole store (store/sqlite/integrity.hpp); reads only, also on a read-only store.
  virtual IntegrityReport check_integrity(const ProgressCallback& progress) = 0;

  // Code versions (src/versioning).
  /// Every commit of the component, oldest first.
  virtual std::vector<CommitRecord> commits_of(std::string_view component) = 0;
  virtual std::optional<Id> head_of(std::string_view component) = 0;
  /// Every recorded version of the op (all explicit versions), oldest first.
  virtual std::vector<VersionRecord> versions_of(std::string_view op) = 0;
  virtual void write_versioning(const VersioningWrite& changes) = 0;
  /// (call hid, semantic version) of every stored call of the op that has one.
  virtual std::vector<std::pair<Id, Id>> call_versions_of(std::string_view op) = 0;
  // Inspection: read-only, cheap on large stores.
  /// Schema version, creation time, counts, file sizes and ops (path left to the caller).
  virtual StorageInfo info() = 0;
  virtual std::vector<OpSummary> op_summaries() = 0;
  /// One page of an op's calls (all versions when `query.version` is empty).
  virtual std::vector<CallRecord> calls_page(std::string_view op, const CallQuery& query) = 0;
  /// History ids in [lo, hi] (byte order) of calls / of refs, at most `limit` each.
  virtual std::vector<Id> call_hids_between(const Id& lo, const Id& hi, std::size_t limit) = 0;
  virtual std::vector<Id> ref_hids_between(const Id& lo, const Id& hi, std::size_t limit) = 0;
  /// The calls drop_calls(call_hids, dependents) would remove.
  virtual std::vector<CallRecord> calls_to_drop(std::span<const Id> call_hids, bool dependents) = 0;
  /// What cleanup() would remove.
  virtual CleanupReport cleanup_preview() = 0;
  /// Reads share one snapshot until this is called (or a write happens); the engine calls it at
  /// least once per flush interval so other processes' writes become visible and the
  /// database's log can be checkpointed.
  virtual void end_read() = 0;

  // ---- Names (docs/storage-format.md 2.2) ---------------------------------------------------
  // Backends store rename records (name_records, write_names); the renames layer every store is
  // opened with (store/renames.hpp) translates between identity and current names and
  // implements identity_names and rename on top of them.

  /// Every rename record; empty for a store without any (and by default).
  virtual std::vector<NameRecord> name_records();
  /// Inserts the records in one transaction, replacing the name of a record of the same (kind,
  /// op, identity). Errc::io on a read-only store; by default Errc::invalid_argument.
  virtual void write_names(std::span<const NameRecord> records);
  /// The identity names of a declared op, recording what a declaration decides (a rename said
  /// by `formerly`, a fresh identity for a reused old name). By default the names themselves.
  virtual IdentityNames identity_names(const DeclaredNames& op);
  /// Renames an op (`op` empty for kind op: `from` is the op's current name), or an input or an
  /// output of the op named `op` (current name), in every version. Errc::invalid_argument for a
  /// rename that would clash, Errc::not_found when `from` is not in the store.
  virtual void rename(NameKind kind, std::string_view op, std::string_view from, std::string_view to);

  // ---- Claims: each new call computed once across processes -------------------------------
  // A claim says "owner O is computing the call with key K" (K: the call's content id), so that
  // other processes sharing the store wait for O's result instead of computing it too
  // (docs/guarantees.md, "Each call computed once"). Claims are advisory: correctness never
  // depends on them (a call is stored once whoever computes it, the first stored result wins);
  // they only save the work.
  //
  // Semantics every backend implements the same way:
  // - A claim is a row (key, owner, lease_until): at most one per key. `owner` is an opaque
  //   random id, one per open storage (made by the engine). `lease_until` is a time on the
  //   store's clock: for SQLite this machine's system clock (every process sharing an SQLite
  //   file runs on this machine; network file systems are not supported), for PostgreSQL the
  //   server's clock (now()), never a client's. "now" below is that clock.
  // - A claim is held while lease_until >= now. An expired claim is as good as absent: any owner
  //   may take it. A backend may also treat a claim as expired early when it knows for certain
  //   that its holder is gone (SQLite: a holder process on this machine that no longer runs).
  // - Each method is one short write transaction of its own, committed before it returns:
  //   never part of write() or of a read snapshot, and never held while an op runs. Claims
  //   neither start nor end this store's read snapshot, and do not change generation().
  // - The claim methods are thread-safe: they may be called from any thread, also while another
  //   thread is inside any other method of this store (a backend uses a connection of its own
  //   for them), so a heartbeat renews leases while the engine flushes or queries.
  // - Errors (the store unreachable, a lock held longer than lock_timeout) throw mandala::Error;
  //   the engine then goes on without claims.

  /// Whether claims reach anyone else: false for a store no other process can see (in-memory)
  /// or one opened read-only, and by default (a backend without claims). The engine claims only
  /// when this is true; the other claim methods are not called otherwise. A backend that shares
  /// claims overrides all four methods.
  [[nodiscard]] virtual bool shares_claims() const { return false; }
  /// Takes the claim on `key` for `owner` until now + `lease` when nobody holds it, its lease has
  /// expired, or `owner` holds it already (then its lease is extended). Returns whether `owner`
  /// holds the claim now; false means another owner holds an unexpired claim on `key`.
  virtual bool try_claim(const Id& key, const Id& owner, std::chrono::milliseconds lease);
  /// Extends to now + `lease` every claim among `keys` that `owner` still holds (expired or not,
  /// as long as nobody took it over). Returns the keys `owner` no longer holds (another owner
  /// took them after their lease expired, or they were never held).
  virtual std::vector<Id> renew_claims(const Id& owner, std::span<const Id> keys, std::chrono::milliseconds lease);
  /// Gives up the claims `owner` holds among `keys` (removes their rows); claims of other owners
  /// on those keys are left as they are.
  virtual void release_claims(const Id& owner, std::span<const Id> keys);
  /// Whether releases are announced to waiters (await_release wakes at a release, not only at
  /// its timeout), so a waiter may poll the claim less often. Default false.
  [[nodiscard]] virtual bool announces_releases() const { return false; }
  /// The number of release announcements this store has received; a waiter takes it before
  /// try_claim and passes it to await_release, so a release between the two is not missed.
  virtual std::uint64_t releases_seen() { return 0; }
  /// Waits until a release of `key` is announced after `since` (releases_seen), or `max` passed
  /// (a claim that expires or whose holder died is announced by nobody: the caller tries the
  /// claim again either way). True when woken early. The default sleeps `max`.
  virtual bool await_release(const Id& key, std::uint64_t since, std::chrono::microseconds max);
};

/// How a store is opened; every backend honours each field (docs/guarantees.md).
struct StoreOptions {
  std::size_t blob_threshold_bytes = std::size_t{1} << 20;  ///< StorageOptions::blob_threshold_bytes
  bool read_only = false;
  std::chrono::milliseconds lock_timeout{60'000};
  bool durable_flush = false;
  bool create = true;  ///< StorageOptions::create
};

/// Opens (creating when absent) the store at `location`, choosing its backend by the location's
/// form (docs/storage-format.md, "Store locations"):
///   ""                              a private in-memory store
///   a path, `sqlite:PATH`,
///   `sqlite:///ABSOLUTE/PATH`        an SQLite file
///   `postgresql://...`              a PostgreSQL database
/// Errc::invalid_argument for a location of an unknown scheme or a backend this build lacks.
std::unique_ptr<Store> open_store(const std::string& location, const StoreOptions& options);

/// The file an SQLite location names (empty for in-memory), or nullopt when the location is
/// not an SQLite one. Errc::invalid_argument for a malformed `sqlite:` location.
std::optional<std::filesystem::path> sqlite_path(const std::string& location);

}  // namespace mandala::store
