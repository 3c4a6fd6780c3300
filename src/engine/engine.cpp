#include "engine/engine.hpp"

#include <algorithm>
#include <iostream>
#include <random>

#include "codec/hash.hpp"
#include "engine/collections.hpp"

namespace mandala::detail {
namespace {

/// Values up to this size are not looked up in the store before they are written: the write
/// skips a value that is there already, and the lookup would cost more than carrying it.
constexpr std::size_t small_value_bytes = 4096;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string op_key(std::string_view name, std::uint32_t version) {
  return std::string(name) + "#" + std::to_string(version);
}

std::string join(const std::vector<std::string>& names) {
  std::string out = "[";
  for (std::size_t i = 0; i < names.size(); ++i) out += (i ? ", " : "") + names[i];
  return out + "]";
}

std::shared_ptr<RefState> make_lazy(const std::shared_ptr<StorageCore>& self, const Id& hid, const Id& cid,
                                    bool transient = false) {
  auto s = std::make_shared<RefState>();
  s->hid = hid;
  s->cid = cid;
  s->has_ids = true;
  s->storage = self;
  s->transient = transient;
  return s;
}

}  // namespace

StorageCore::StorageCore(const std::filesystem::path& path, const StorageOptions& options)
    : m_path(store::sqlite_path(path.string()).value_or(path)),
      m_options(options),
      m_last_flush(std::chrono::steady_clock::now()),
      m_calls_by_hid(options.call_cache_capacity),
      m_hid_by_cid(options.call_cache_capacity),
      m_known_values(options.call_cache_capacity) {
  store::StoreOptions so;
  so.blob_threshold_bytes = options.blob_threshold_bytes;
  so.read_only = options.read_only;
  so.lock_timeout = options.lock_timeout;
  so.durable_flush = options.durable_flush;
  so.create = options.create;
  m_store = store::open_store(path.string(), so);
  if (options.claim_new_calls && m_store->shares_claims()) {
    std::random_device random;
    for (std::size_t i = 0; i < m_claim_owner.bytes.size(); i += 4) {
      const auto word = random();
      for (std::size_t j = 0; j < 4; ++j) m_claim_owner.bytes[i + j] = static_cast<std::uint8_t>(word >> (8 * j));
    }
    m_claims_on = true;
  }
}

StorageCore::~StorageCore() {
  {
    std::lock_guard lock(m_claims_mutex);
    m_heartbeat_stop = true;
  }
  m_heartbeat_cv.notify_all();
  if (m_heartbeat.joinable()) m_heartbeat.join();
  try {
    flush();
  } catch (const std::exception& e) {
    std::cerr << "mandala: could not flush " << m_pending.calls.size() << " pending calls to "
              << (m_path.empty() ? std::string("the in-memory store") : m_path.string()) << ": " << e.what() << '\n';
  }
  // Claims of calls that could not be stored: other processes compute them.
  std::vector<Id> held;
  {
    std::lock_guard lock(m_claims_mutex);
    held.assign(m_claims_held.begin(), m_claims_held.end());
  }
  release_claims_now(held);
}

/// The in-flight entry and the claim of the new call a thread computes: on every way out of
/// StorageCore::call (a return, the op throwing) the claim of a call not recorded is released
/// and the waiting threads are woken, in that order (a waiter of this storage would otherwise
/// take over a claim that is still ours and see it released under it).
class StorageCore::FlightGuard {
 public:
  explicit FlightGuard(StorageCore& core) : m_core(core) {}
  ~FlightGuard() {
    if (m_claimed) m_core.release_claims_now(std::span<const Id>(&m_cid, 1));
    if (!m_flight) return;
    std::lock_guard lock(m_core.m_mutex);
    wake_locked();
  }
  FlightGuard(const FlightGuard&) = delete;
  FlightGuard& operator=(const FlightGuard&) = delete;

  FlightGuard& arm(const Id& cid, std::shared_ptr<InFlight> flight) {
    m_cid = cid;
    m_flight = std::move(flight);
    return *this;
  }
  void claimed() { m_claimed = true; }
  /// Under the lock, once the call is recorded (pending): waiting threads find it, and its
  /// claim is released by the flush that stores it.
  void recorded_locked() {
    if (m_claimed) m_core.m_claims_pending.push_back(m_cid);
    m_claimed = false;
    wake_locked();
  }

 private:
  void wake_locked() {
    if (!m_flight) return;
    m_flight->done = true;
    if (auto it = m_core.m_in_flight.find(m_cid); it != m_core.m_in_flight.end() && it->second == m_flight)
      m_core.m_in_flight.erase(it);
    m_flight->cv.notify_all();
    m_flight.reset();
  }

  StorageCore& m_core;
  Id m_cid;
  std::shared_ptr<InFlight> m_flight;
  bool m_claimed = false;
};

void StorageCore::give_up_claims(const std::exception& e) noexcept {
  if (!m_claims_on.exchange(false)) return;
  try {
    std::cerr << "mandala: cannot claim calls in "
              << (m_path.empty() ? std::string("the store") : m_path.string() + ".claims") << " (" << e.what()
              << "); new calls are computed without claims, so another process may compute the same call at "
                 "the same time (it is still stored once)\n";
  } catch (...) {  // nothing to do when stderr fails
  }
}

void StorageCore::note_claim_held(const Id& cid) {
  std::lock_guard lock(m_claims_mutex);
  m_claims_held.insert(cid);
  if (!m_heartbeat.joinable() && !m_heartbeat_stop) m_heartbeat = std::thread([this] { heartbeat_loop(); });
}

void StorageCore::release_claims_now(std::span<const Id> cids) noexcept {
  if (cids.empty()) return;
  {
    std::lock_guard lock(m_claims_mutex);
    for (const auto& cid : cids) m_claims_held.erase(cid);
  }
  if (!claiming()) return;
  try {
    m_store->release_claims(m_claim_owner, cids);
  } catch (const std::exception& e) {  // the lease expires instead
    give_up_claims(e);
  }
}

template <class Stored>
bool StorageCore::claim(const Id& cid, std::unique_lock<std::mutex>& lock, Stored&& stored) {
  thread_local std::minstd_rand jitter{std::random_device{}()};
  auto delay = std::chrono::microseconds(5000);
  // A store that announces releases wakes the waiter at once; polling then only finds claims
  // that expired or whose holder died, which nobody announces.
  const auto longest = std::chrono::microseconds(m_store->announces_releases() ? 500'000 : 50'000);
  for (;;) {
    lock.unlock();
    bool won = false;
    std::uint64_t since = 0;
    try {
      since = m_store->releases_seen();
      won = m_store->try_claim(cid, m_claim_owner, m_options.claim_lease);
      if (won) note_claim_held(cid);
    } catch (const std::exception& e) {
      give_up_claims(e);
    }
    lock.lock();
    if (!claiming()) {
      if (won) {
        lock.unlock();
        release_claims_now(std::span<const Id>(&cid, 1));
        lock.lock();
      }
      return false;
    }
    try {
      // Calls this storage computed under claims and has not stored yet may be what the holder
      // waits for (two processes waiting for each other): store them first.
      if (!won && !m_claims_pending.empty()) flush_locked();
      // A fresh snapshot: the call may have been stored since this storage last looked (by
      // the holder waited for, or just before the claim was won).
      m_store->end_read();
      sync_caches_locked();
      if (stored()) {
        if (won) {
          lock.unlock();
          release_claims_now(std::span<const Id>(&cid, 1));
          lock.lock();
        }
        return false;
      }
    } catch (...) {
      if (won) {
        lock.unlock();
        release_claims_now(std::span<const Id>(&cid, 1));
        lock.lock();
      }
      throw;
    }
    if (won) return true;
    // Another owner computes it: wait for its release, polling with backoff (5 ms doubling to
    // `longest`, each wait a random 50-100 % of that) until it is stored or the claim can be
    // taken.
    lock.unlock();
    const auto wait = delay / 2 + std::chrono::microseconds(jitter() % static_cast<unsigned>(delay.count() / 2 + 1));
    (void)m_store->await_release(cid, since, wait);
    delay = std::min<std::chrono::microseconds>(delay * 2, longest);
    lock.lock();
  }
}

void StorageCore::heartbeat_loop() {
  using namespace std::chrono_literals;
  const auto renew_every = std::max<std::chrono::milliseconds>(m_options.claim_lease / 3, 1ms);
  const auto tick = std::min<std::chrono::milliseconds>(
      renew_every, std::max<std::chrono::milliseconds>(m_options.flush_interval, 10ms));
  auto next_renewal = std::chrono::steady_clock::now() + renew_every;
  std::unique_lock lock(m_claims_mutex);
  while (!m_heartbeat_stop) {
    m_heartbeat_cv.wait_for(lock, tick, [&] { return m_heartbeat_stop; });
    if (m_heartbeat_stop) break;
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_renewal) {
      next_renewal = now + renew_every;
      std::vector<Id> keys(m_claims_held.begin(), m_claims_held.end());
      lock.unlock();
      if (!keys.empty() && claiming()) {
        try {
          (void)m_store->renew_claims(m_claim_owner, keys, m_options.claim_lease);
        } catch (const std::exception& e) {
          give_up_claims(e);
        }
      }
      lock.lock();
    }
    // Calls computed under claims wait in memory for a flush while other processes may be
    // waiting for them: flush them at the flush interval even while this storage's threads
    // make no call (when the storage is busy, the next tick does).
    lock.unlock();
    {
      std::unique_lock core(m_mutex, std::try_to_lock);
      if (core.owns_lock() && !m_claims_pending.empty() &&
          std::chrono::steady_clock::now() - m_last_flush >= m_options.flush_interval) {
        try {
          flush_locked();
          m_store->end_read();
        } catch (const Error& e) {
          // A failed write keeps every call pending (the next flush retries it: nothing to
          // report); calls left out are not, and the next Storage::flush() says so.
          if (m_pending.calls.empty() && !m_background_flush_error) m_background_flush_error = e;
        } catch (const std::exception&) {  // the calls stay pending
        }
      }
    }
    lock.lock();
  }
}

CallCounters StorageCore::counters() const {
  return {m_executed.load(), m_reused_by_history.load(), m_reused_by_content.load(), m_recomputed.load()};
}

void StorageCore::set_version_resolver(std::unique_ptr<VersionResolver> resolver) {
  std::lock_guard lock(m_mutex);
  m_versions = std::move(resolver);
  for (auto& [key, registered] : m_registered_ops) registered.resolved_at.reset();
}

void StorageCore::forget_op_versions() {
  std::lock_guard lock(m_mutex);
  for (auto& [key, registered] : m_registered_ops) registered.resolved_at.reset();
}

void StorageCore::sync_caches_locked() {
  const std::uint64_t generation = m_store->generation();
  if (generation == m_cache_generation) return;
  m_cache_generation = generation;
  m_calls_by_hid.clear();
  m_hid_by_cid.clear();
  m_known_values.clear();
  // Code versions are resolved again (another process may have dropped or decided one); the
  // declarations stay (a stored op's outputs never change).
  for (auto& [key, registered] : m_registered_ops) registered.resolved_at.reset();
}

StorageCore::RegisteredOp& StorageCore::register_op_locked(const OpInfo& op) {
  auto it = m_registered_ops.find(std::pair<std::string_view, std::uint32_t>(op.name, op.version));
  // A declaration must agree with the one this op has: same outputs, and inputs that are the
  // same or have parameters added (a new_arg) or left out (an older declaration).
  const auto require_agreement = [&](const std::vector<std::string>& inputs, const std::vector<std::string>& outputs,
                                     const char* where) {
    const bool same_outputs = outputs == op.outputs;
    if (same_outputs && store::inputs_compatible(inputs, op.inputs)) return;
    throw Error(
        same_outputs ? Errc::invalid_argument : Errc::output_mismatch,
        store::describe_op(op.name, op.version, op.inputs, op.outputs) + " disagrees with " +
            store::describe_op(op.name, op.version, inputs, outputs) + ", " + where +
            ": give the op a new version (OpOptions::version) or a new name when its " +
            (same_outputs ? "parameters change (only added ones, new_arg, keep the version)" : "outputs change"));
  };
  const auto declare = [&] {
    begin_batch_locked();
    m_pending.ops.push_back({op.name, op.version, op.inputs, op.outputs});
  };
  if (it == m_registered_ops.end()) {
    RegisteredOp fresh{op.inputs, op.outputs, {}, {}, {}, {}, {}, {}};
    // Names first: a rename the declaration says changes what the store holds under its name.
    if (resolve_names_locked(op, fresh)) {
      // Declarations of this program may stand for other identities now: resolved again.
      m_registered_ops.clear();
      m_op_outputs.clear();
    }
    const auto stored = m_store->op(op.name, op.version);
    if (stored) require_agreement(stored->inputs, stored->outputs, "as the store holds it");
    if (!stored || op.inputs.size() > stored->inputs.size()) declare();
    m_op_outputs[op_key(op.name, op.version)] = op.outputs;
    it = m_registered_ops.emplace(std::make_pair(op.name, op.version), std::move(fresh)).first;
    it->second.resolved_at.reset();
  } else if (it->second.inputs != op.inputs || it->second.outputs != op.outputs) {
    require_agreement(it->second.inputs, it->second.outputs, "as declared before in this program");
    if (op.inputs.size() > it->second.inputs.size()) {
      it->second.inputs = op.inputs;
      resolve_names_locked(op, it->second);
      declare();
    }
  }
  auto& registered = it->second;
  if (registered.resolved_at != m_cache_generation || registered.resolved_code != op.code_id) {
    // Another connection may have renamed something since (the first time: just resolved).
    if (registered.resolved_at) resolve_names_locked(op, registered);
    // Structural calls (collections) are never versioned: their ids are derived elsewhere.
    registered.semantic.reset();
    registered.resolved_at.reset();
    if (m_versions && !is_structural(op.name)) registered.semantic = m_versions->resolve(op, *m_store);
    registered.resolved_at = m_cache_generation;
    registered.resolved_code = op.code_id;
  }
  return registered;
}

bool StorageCore::resolve_names_locked(const OpInfo& op, RegisteredOp& registered) {
  registered.input_identity.clear();
  registered.output_identity.clear();
  if (is_structural(op.name)) {
    registered.identity = op.name;
    return false;
  }
  const auto ids =
      m_store->identity_names({op.name, op.formerly, op.inputs, op.inputs_formerly, op.outputs, op.outputs_formerly});
  registered.identity = ids.op;
  for (std::size_t i = 0; i < op.inputs.size(); ++i)
    if (ids.inputs[i] != op.inputs[i]) registered.input_identity.emplace(op.inputs[i], ids.inputs[i]);
  for (std::size_t i = 0; i < op.outputs.size(); ++i)
    if (ids.outputs[i] != op.outputs[i]) registered.output_identity.emplace(op.outputs[i], ids.outputs[i]);
  if (ids.recorded) {
    m_calls_by_hid.clear();
    m_hid_by_cid.clear();
  }
  return ids.recorded;
}

void StorageCore::rename(store::NameKind kind, std::string_view op, std::string_view from, std::string_view to) {
  std::lock_guard lock(m_mutex);
  flush_locked();
  try {
    m_store->rename(kind, op, from, to);
  } catch (...) {
    m_store->end_read();
    throw;
  }
  m_store->end_read();
  // What this storage knew under the old names: declarations, identities and cached calls
  // (their outputs carry names).
  m_registered_ops.clear();
  m_op_outputs.clear();
  m_calls_by_hid.clear();
  m_hid_by_cid.clear();
}

StorageCore::CachedCall::CachedCall(const store::CallRecord& record, StorageCore& core)
    : m_cid(record.cid), m_count(static_cast<std::uint32_t>(record.outputs.size())) {
  auto convert = [&](const store::IoRef& r) { return CachedOutput{core.intern(r.name), r.hid, r.cid, r.transient}; };
  if (m_count == 1) {
    m_one = convert(record.outputs.front());
  } else if (m_count > 1) {
    m_many = std::make_unique<CachedOutput[]>(m_count);
    for (std::uint32_t i = 0; i < m_count; ++i) m_many[i] = convert(record.outputs[i]);
  }
}

const std::string* StorageCore::intern(const std::string& name) { return &*m_names.insert(name).first; }

const StorageCore::CachedCall* StorageCore::find_local_locked(const Id& hid) {
  if (auto it = m_pending_by_hid.find(hid); it != m_pending_by_hid.end()) return &it->second;
  return m_calls_by_hid.find(hid);
}

const StorageCore::CachedCall* StorageCore::find_by_hid_locked(const Id& hid) {
  if (const auto* local = find_local_locked(hid)) return local;
  auto rec = m_store->call_by_hid(hid);
  if (!rec) return nullptr;
  m_hid_by_cid.put(rec->cid, hid);
  return &m_calls_by_hid.put(hid, CachedCall(*rec, *this));
}

const StorageCore::CachedCall* StorageCore::find_by_content_locked(const Id& cid, const Id* raw_hid) {
  if (auto it = m_pending_by_cid.find(cid); it != m_pending_by_cid.end()) return &m_pending_by_hid.at(it->second);
  if (auto* hid = m_hid_by_cid.find(cid)) {
    const Id h = *hid;  // the pointer is invalidated by the next cache call
    if (const auto* found = find_by_hid_locked(h)) return found;
  }
  auto rec = m_store->call_by_content(cid, raw_hid);
  if (!rec) return nullptr;
  m_hid_by_cid.put(cid, rec->hid);
  return &m_calls_by_hid.put(rec->hid, CachedCall(*rec, *this));
}

bool StorageCore::value_known_locked(const Id& cid, std::size_t size) {
  if (m_pending_values.contains(cid)) return true;
  if (m_known_values.find(cid) != nullptr) return true;
  if (size != 0 && size <= small_value_bytes) return false;
  if (!m_store->has_value(cid)) return false;
  m_known_values.put(cid, true);
  return true;
}

void StorageCore::push_value_locked(const Id& cid, std::vector<std::byte> bytes) {
  begin_batch_locked();
  m_pending_values.emplace(cid, m_pending.values.size());
  m_pending.values.push_back({cid, std::move(bytes)});
}

void StorageCore::note_source_locked(const Id& cid, ValueSource source) {
  if (m_pending_values.contains(cid)) return;
  auto [it, fresh] = m_pending_sources.try_emplace(cid, std::move(source));
  if (!fresh && it->second.bytes.empty() && !source.bytes.empty()) it->second = std::move(source);
}

void StorageCore::begin_batch_locked() {
  if (m_pending.empty()) m_pending.generation = m_cache_generation;
}

void StorageCore::record_locked(store::CallRecord record) {
  begin_batch_locked();
  m_pending_by_hid.emplace(record.hid, CachedCall(record, *this));
  m_pending_by_cid.emplace(record.cid, record.hid);
  m_pending.calls.push_back(std::move(record));
}

std::vector<std::shared_ptr<RefState>> StorageCore::lazy_outputs(const std::shared_ptr<StorageCore>& self,
                                                                 const OpInfo& op, const Id& call_hid,
                                                                 std::span<const CachedOutput> outputs) const {
  std::vector<std::shared_ptr<RefState>> out;
  out.reserve(op.outputs.size());
  bool match = outputs.size() == op.outputs.size();
  for (std::size_t i = 0; match && i < op.outputs.size(); ++i) {
    // Usually in declared order already; else search by name.
    const CachedOutput* o = outputs[i].name && *outputs[i].name == op.outputs[i] ? &outputs[i] : nullptr;
    for (std::size_t j = 0; o == nullptr && j < outputs.size(); ++j)
      if (*outputs[j].name == op.outputs[i]) o = &outputs[j];
    if (o == nullptr) {
      match = false;
      break;
    }
    out.push_back(make_lazy(self, o->hid, o->cid, o->transient));
  }
  if (!match) {
    std::vector<std::string> names;
    for (const auto& r : outputs) names.push_back(*r.name);
    throw Error(Errc::output_mismatch, "stored call " + call_hid.hex() + " of op " + op.name + " has outputs " +
                                           join(names) + " but the op declares " + join(op.outputs) +
                                           ": give the op a new version when its outputs change");
  }
  return out;
}

std::vector<std::shared_ptr<RefState>> StorageCore::call(const std::shared_ptr<StorageCore>& self, const OpInfo& op,
                                                         std::vector<InputSlot>& inputs, Executor& exec) {
  // 1. Input ids: a stored ref brings its own; a plain value is hashed from its encoding.
  std::vector<store::IoRef> ins;
  ins.reserve(inputs.size());
  for (auto& slot : inputs) {
    store::IoRef r;
    r.name = *slot.name;
    if (slot.ref && slot.ref->has_ids) {
      r.hid = slot.ref->hid;
      r.cid = slot.ref->cid;
      r.transient = slot.ref->transient;  // its value is not stored: nor is it required
    } else {
      if (slot.bytes.empty()) {
        if (!slot.ref)
          throw Error(Errc::invalid_argument, "op " + op.name + ": input '" + r.name +
                                                  "' is an empty Ref (default-constructed); pass a value or a ref "
                                                  "returned by an op");
        std::lock_guard lock(slot.ref->mutex);
        slot.bytes = slot.ref->encode(slot.ref->value.get());
      }
      r.cid = codec::content_id(slot.bytes);
      r.hid = codec::atom_hid(r.cid);
    }
    ins.push_back(std::move(r));
  }
  const auto input_cid = [&ins](const std::string& name) -> const Id& {
    return std::find_if(ins.begin(), ins.end(), [&](const auto& r) { return r.name == name; })->cid;
  };
  // (identity name, id) pairs in identity name order (docs/storage-format.md 2): first the
  // inputs' hids, then (only when the history is not stored) their cids. Set under the lock,
  // once the op's identity names are known.
  std::vector<std::pair<std::string_view, Id>> ids;
  std::vector<std::string> input_ids;   // the identity name of each of `ins`
  std::string op_id;                    // the op's identity name
  std::vector<std::string> output_ids;  // the identity name of each declared output
  Id call_hid;
  Id call_cid;
  Id raw_hid;
  bool raw_inputs = true;
  std::optional<Id> semantic;
  bool claim_it = false;

  // While this thread computes the call, other threads making a call of the same content wait
  // for it (m_in_flight); they are woken when it is recorded or has failed.
  std::optional<FlightGuard> flight;  // (none on the memoized call's path)
  // m_flushes when the call was last looked up by history in the store (it was not there).
  std::uint64_t looked_up_at = 0;
  std::vector<char> encode_first;  // per input, when the call runs: encode its value first
  {
    std::unique_lock lock(m_mutex);
    sync_caches_locked();
    const auto& registered = register_op_locked(op);
    semantic = registered.semantic;
    op_id = registered.identity;
    const auto identity_of = [](const std::unordered_map<std::string, std::string>& map, const std::string& name) {
      const auto found = map.find(name);
      return found == map.end() ? name : found->second;
    };
    std::sort(ins.begin(), ins.end(), [&](const auto& a, const auto& b) {
      return registered.input_identity.empty()
                 ? a.name < b.name
                 : identity_of(registered.input_identity, a.name) < identity_of(registered.input_identity, b.name);
    });
    input_ids.reserve(ins.size());
    for (const auto& r : ins) input_ids.push_back(identity_of(registered.input_identity, r.name));
    ids.reserve(ins.size());
    for (std::size_t i = 0; i < ins.size(); ++i) ids.emplace_back(input_ids[i], ins[i].hid);
    output_ids.reserve(op.outputs.size());
    for (const auto& o : op.outputs) output_ids.push_back(identity_of(registered.output_identity, o));
    call_hid = codec::call_id_sorted(op_id, op.version, ids, semantic ? &*semantic : nullptr);
    // 2. The memoized call's path: the same call (same input histories) is stored or pending:
    // nothing runs, nothing loads.
    if (const auto* hit = find_by_hid_locked(call_hid)) {
      auto outs = lazy_outputs(self, op, call_hid, hit->outputs());
      ++m_reused_by_history;
      return outs;
    }
    looked_up_at = m_flushes;
    // 3. A content-equal call is stored or pending: its outputs' content is reused under new
    // history ids (after a wait, the same call may be there too). Under the lock; returns the
    // outputs when the call needs no run.
    bool content_known = false;
    // The hid a call of this content has when its inputs are all raw values (the store keeps such
    // calls under it, not under their content id; when this call's inputs are raw, that is
    // call_hid), and the content id. Only when the call is not found by its history.
    const auto content_ids = [&] {
      if (content_known) return;
      content_known = true;
      const Id* code = semantic ? &*semantic : nullptr;
      for (std::size_t i = 0; i < ins.size(); ++i) {
        const Id atom = codec::atom_hid(ins[i].cid);
        raw_inputs = raw_inputs && atom == ins[i].hid;
        ids[i].second = atom;
      }
      raw_hid = raw_inputs ? call_hid : codec::call_id_sorted(op_id, op.version, ids, code);
      for (std::size_t i = 0; i < ins.size(); ++i) ids[i].second = ins[i].cid;
      call_cid = codec::call_id_sorted(op_id, op.version, ids, code);
    };
    bool by_history_looked_up = true;  // (just before the first look)
    const auto reuse_locked = [&]() -> std::optional<std::vector<std::shared_ptr<RefState>>> {
      if (!by_history_looked_up) {
        if (const auto* hit = find_by_hid_locked(call_hid)) {
          auto outs = lazy_outputs(self, op, call_hid, hit->outputs());
          ++m_reused_by_history;
          return outs;
        }
        looked_up_at = m_flushes;
      }
      by_history_looked_up = false;  // later looks (after a wait) look by history again
      content_ids();
      const auto* proto = find_by_content_locked(call_cid, raw_inputs ? nullptr : &raw_hid);
      if (!proto) return std::nullopt;
      store::CallRecord rec;
      rec.hid = call_hid;
      rec.cid = call_cid;
      rec.op = op.name;
      rec.version = op.version;
      // The inputs' values are the prototype's: stored, but kept at hand in case another
      // process removes them before the flush.
      for (auto& slot : inputs) note_source_locked(input_cid(*slot.name), {std::move(slot.bytes), slot.ref});
      rec.inputs = std::move(ins);
      rec.created_ms = now_ms();
      rec.semantic = semantic;
      for (const auto& o : proto->outputs()) {
        // The output's identity name (its declared name's, for a renamed output).
        const auto at = std::find(op.outputs.begin(), op.outputs.end(), *o.name);
        const std::string& identity =
            at == op.outputs.end() ? *o.name : output_ids[static_cast<std::size_t>(at - op.outputs.begin())];
        rec.outputs.push_back({*o.name, codec::output_hid(call_hid, identity), o.cid, o.transient});
      }
      record_locked(std::move(rec));
      const auto* mine = find_by_hid_locked(call_hid);
      auto outs = lazy_outputs(self, op, call_hid, mine->outputs());
      exec.reused_by_content = true;
      ++m_reused_by_content;
      maybe_flush_locked();
      return outs;
    };
    claim_it =
        op.compute_once && claiming() && (!registered.last_run || *registered.last_run >= m_options.claim_min_run);
    for (;;) {
      if (auto outs = reuse_locked()) return std::move(*outs);
      if (!m_allow_new_calls)
        throw Error(Errc::new_calls_not_allowed,
                    "Call to " + op.name + " does not exist and new calls are not allowed.");
      if (!op.compute_once) break;
      auto [it, fresh] = m_in_flight.try_emplace(call_cid);
      if (fresh) {
        it->second = std::make_shared<InFlight>();
        it->second->runner = std::this_thread::get_id();
        flight.emplace(*this).arm(call_cid, it->second);
        break;
      }
      // The op calls itself with the same arguments: run it (as without the table).
      if (it->second->runner == std::this_thread::get_id()) {
        claim_it = false;
        break;
      }
      // Another thread computes it: wait (not holding the lock), then look again; when that
      // thread failed, one of the waiters computes it.
      const auto other = it->second;
      other->cv.wait(lock, [&] { return other->done; });
      sync_caches_locked();
    }
    // Other processes sharing the store: claim the call, or wait for the holder's result.
    if (claim_it) {
      std::optional<std::vector<std::shared_ptr<RefState>>> found;
      if (claim(call_cid, lock, [&] { return (found = reuse_locked()).has_value(); })) {
        flight->claimed();
      } else if (found) {
        return std::move(*found);
      }
    }
    // The call runs: which inputs are encoded values in memory that the store lacks.
    encode_first.assign(inputs.size(), 0);
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      const auto& slot = inputs[i];
      if (!slot.bytes.empty() || !slot.ref || !slot.ref->has_ids) continue;
      {
        std::lock_guard ref_lock(slot.ref->mutex);
        if (!slot.ref->value || !holds_encoded_value(*slot.ref)) continue;
      }
      encode_first[i] = !value_known_locked(input_cid(*slot.name), 0) ? 1 : 0;
    }
  }

  // 4. Execute, outside the lock (other threads keep working). An exception propagates as is
  // and nothing is recorded for this call (waiting threads are woken, a claim is released).
  // An input given as a ref holding a value that is not stored yet is encoded first: the value
  // of a deferred ref (deferred_atom_ref, a binding's array) may be changed by the function.
  for (std::size_t i = 0; i < encode_first.size(); ++i)
    if (encode_first[i] != 0) {
      auto& slot = inputs[i];
      std::lock_guard ref_lock(slot.ref->mutex);
      if (slot.ref->value && slot.ref->encode) slot.bytes = slot.ref->encode(slot.ref->value.get());
    }
  const auto started = std::chrono::steady_clock::now();
  std::vector<OutputValue> computed = exec.run();
  const auto took = std::chrono::steady_clock::now() - started;
  if (computed.size() != op.outputs.size())
    throw Error(Errc::output_mismatch, "op " + op.name + " returned " + std::to_string(computed.size()) +
                                           " outputs but declares " + std::to_string(op.outputs.size()));

  std::vector<std::shared_ptr<RefState>> outs;
  store::CallRecord rec;
  rec.hid = call_hid;
  rec.cid = call_cid;
  rec.op = op.name;
  rec.version = op.version;
  rec.created_ms = now_ms();
  rec.semantic = semantic;
  std::vector<std::pair<Id, std::vector<std::byte>>> values;
  // Transient outputs are kept out of the storage, unless the call could not be run again from
  // its stored inputs (Executor::replayable).
  const bool keep_out = !op.transient.empty() && exec.replayable;
  for (std::size_t i = 0; i < computed.size(); ++i) {
    auto& c = computed[i];
    const Id cid = c.cid ? *c.cid : codec::content_id(c.bytes);
    const Id hid = codec::output_hid(call_hid, output_ids[i]);
    const bool transient = keep_out && op.transient[i];
    auto state = make_lazy(self, hid, cid, transient);
    state->value = std::move(c.value);
    state->type = c.type;
    state->encode = c.encode;
    outs.push_back(std::move(state));
    rec.outputs.push_back({op.outputs[i], hid, cid, transient});
    values.emplace_back(cid, transient ? std::vector<std::byte>() : std::move(c.bytes));
  }
  std::sort(rec.outputs.begin(), rec.outputs.end(), [](const auto& a, const auto& b) { return a.name < b.name; });

  std::lock_guard lock(m_mutex);
  if (auto registered = m_registered_ops.find(std::pair<std::string_view, std::uint32_t>(op.name, op.version));
      registered != m_registered_ops.end())
    registered->second.last_run = std::chrono::duration_cast<std::chrono::nanoseconds>(took);
  // Recorded meanwhile here? When no flush happened since this call was last looked up in the
  // store, only what is pending or cached here can have it (another process's copy is skipped
  // by the write, as every write checks again after another connection's commit); otherwise
  // the store is asked again, so the flush may rely on every pending call having been looked up
  // since its last write (WriteBatch::calls_looked_up).
  if (m_flushes == looked_up_at ? find_local_locked(call_hid) != nullptr : find_by_hid_locked(call_hid) != nullptr) {
    // Recorded meanwhile (an op that is not computed once, or that called itself with the
    // same arguments): keep one record; our outputs have the same ids (deterministic ops) and
    // hold their values in memory.
    ++m_executed;
    return outs;
  }
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    auto& slot = inputs[i];
    const Id& cid = input_cid(*slot.name);
    if (slot.ref && slot.ref->has_ids && slot.ref->transient) {
      // A transient value (known so now, when loading it recomputed it): not stored.
      std::find_if(ins.begin(), ins.end(), [&](const auto& r) { return r.name == *slot.name; })->transient = true;
      continue;
    }
    if (value_known_locked(cid, slot.bytes.size())) {
      note_source_locked(cid, {std::move(slot.bytes), slot.ref});
      continue;
    }
    if (!slot.bytes.empty()) {
      push_value_locked(cid, std::move(slot.bytes));
    } else if (slot.ref) {
      // A ref from elsewhere (another storage): bring its value along.
      std::vector<std::byte> bytes;
      {
        std::lock_guard ref_lock(slot.ref->mutex);
        if (slot.ref->value) bytes = slot.ref->encode(slot.ref->value.get());
      }
      if (bytes.empty() && slot.ref->storage.lock().get() == this) {
        // A ref of this storage whose value is not stored (and not loaded by the function): a
        // transient output its ref did not know of (loading it here, under the lock, could not
        // run its op), or a value removed meanwhile.
        if (!transient_creator_locked(slot.ref->hid))
          throw Error(Errc::not_found, "value " + cid.hex() + " of input '" + *slot.name + "' of op " + op.name +
                                           " is not in the store; it may have been removed by cleanup()");
        slot.ref->transient = true;
        std::find_if(ins.begin(), ins.end(), [&](const auto& r) { return r.name == *slot.name; })->transient = true;
        continue;
      }
      if (bytes.empty()) bytes = load_value_bytes(*slot.ref);
      push_value_locked(cid, std::move(bytes));
    }
  }
  rec.inputs = std::move(ins);
  for (std::size_t i = 0; i < values.size(); ++i) {
    auto& [cid, bytes] = values[i];
    if (outs[i]->transient) continue;
    // A value stored already is kept at hand by its ref (not its bytes) until the flush.
    if (value_known_locked(cid, bytes.size())) note_source_locked(cid, {{}, outs[i]});
    else push_value_locked(cid, std::move(bytes));
  }
  record_locked(std::move(rec));
  ++m_executed;
  // Waiting threads find the call pending from here on; the claim is released by the flush
  // that stores it.
  if (flight) flight->recorded_locked();
  maybe_flush_locked();
  return outs;
}

void StorageCore::maybe_flush_locked() {
  if (m_pending.calls.size() >= m_options.flush_every_calls ||
      std::chrono::steady_clock::now() - m_last_flush >= m_options.flush_interval)
    flush_locked();
}

void StorageCore::flush() {
  std::lock_guard lock(m_mutex);
  flush_locked();
  ReadScope read(*m_store);
  if (m_background_flush_error) {
    // A flush made in the background (to store calls other processes wait for) failed.
    auto error = std::move(*m_background_flush_error);
    m_background_flush_error.reset();
    throw error;
  }
}

void StorageCore::flush_locked() {
  ++m_flushes;
  m_last_flush = std::chrono::steady_clock::now();
  m_store->end_read();
  if (m_pending.empty()) {
    release_claims_now(m_claims_pending);
    m_claims_pending.clear();
    return;
  }
  // Every pending call was looked up by hid in the store (find_by_hid_locked) after the last
  // flush, under this lock, and not found.
  m_pending.calls_looked_up = true;
  const auto left_out = write_pending_locked();  // on failure everything stays pending
  for (const auto& v : m_pending.values) m_known_values.put(v.cid, true);
  for (auto& [hid, cached] : m_pending_by_hid) {
    m_hid_by_cid.put(cached.cid(), hid);
    m_calls_by_hid.put(hid, std::move(cached));
  }
  m_pending = {};
  m_pending_by_hid.clear();
  m_pending_by_cid.clear();
  m_pending_values.clear();
  m_pending_sources.clear();
  // The calls are stored (or were left out, and are computed anew by whoever makes them next):
  // their claims end.
  release_claims_now(m_claims_pending);
  m_claims_pending.clear();
  if (left_out) throw *left_out;
}

std::optional<Error> StorageCore::write_pending_locked() {
  std::optional<Error> left_out;
  const auto leave_out = [&](Errc code, const std::string& what) {
    left_out.emplace(left_out ? left_out->code() : code, (left_out ? std::string(left_out->what()) + "; " : "") + what);
  };
  for (;;) {
    try {
      m_store->write(m_pending);
      return left_out;
    } catch (const store::MissingValues& e) {
      // Another process removed values since this one saw them stored (a drop and a cleanup):
      // they are written again from what this process holds; calls that need one it does not
      // hold are left out.
      std::unordered_set<Id> lost;
      for (const auto& cid : e.cids()) {
        auto source = m_pending_sources.find(cid);
        auto bytes = source == m_pending_sources.end() ? std::vector<std::byte>() : bytes_from(source->second);
        if (bytes.empty()) {
          lost.insert(cid);
          continue;
        }
        push_value_locked(cid, std::move(bytes));
        m_pending_sources.erase(source);
      }
      if (lost.empty()) continue;
      const auto uses_lost = [&](const store::CallRecord& c) {
        for (const auto* list : {&c.inputs, &c.outputs})
          for (const auto& r : *list)
            if (lost.contains(r.cid)) return true;
        return false;
      };
      const auto n = discard_pending_calls_locked(uses_lost);
      leave_out(Errc::not_found, std::to_string(n) + " calls were not stored: " + std::to_string(lost.size()) +
                                     " values they use (" + lost.begin()->hex() + (lost.size() > 1 ? ", ..." : "") +
                                     ") were removed by another process (a drop and a cleanup) after this process "
                                     "found them stored, and this process does not hold them; make the calls again "
                                     "to compute them anew");
    } catch (const store::OpConflict& e) {
      // Another process stored a disagreeing declaration of the op first: this one's calls are
      // refused, and the op's next call here is checked against the stored declaration.
      const auto n = discard_pending_calls_locked(
          [&](const store::CallRecord& c) { return c.op == e.op() && c.version == e.version(); });
      std::erase_if(m_pending.ops, [&](const auto& o) { return o.name == e.op() && o.version == e.version(); });
      m_registered_ops.erase(std::make_pair(e.op(), e.version()));
      leave_out(e.code(), std::string(e.what()) + " (" + std::to_string(n) + " calls)");
    }
  }
}

template <class Pred>
std::size_t StorageCore::discard_pending_calls_locked(Pred&& drop) {
  const auto before = m_pending.calls.size();
  std::erase_if(m_pending.calls, [&](const store::CallRecord& c) {
    if (!drop(c)) return false;
    m_pending_by_hid.erase(c.hid);
    if (auto it = m_pending_by_cid.find(c.cid); it != m_pending_by_cid.end() && it->second == c.hid)
      m_pending_by_cid.erase(it);
    return true;
  });
  return before - m_pending.calls.size();
}

std::vector<std::byte> StorageCore::bytes_from(ValueSource& source) {
  if (!source.bytes.empty()) return std::move(source.bytes);
  if (!source.ref) return {};
  {
    std::lock_guard lock(source.ref->mutex);
    if (source.ref->value && source.ref->encode) return source.ref->encode(source.ref->value.get());
  }
  // A ref of another storage still open loads from there (this storage has lost the value).
  const auto owner = source.ref->storage.lock();
  if (!source.ref->has_ids || !owner || owner.get() == this) return {};
  try {
    return owner->load_value(source.ref->cid);
  } catch (const Error&) {
    return {};
  }
}

std::vector<std::byte> StorageCore::load_value(const Id& cid) {
  std::unique_lock lock(m_mutex);
  if (auto it = m_pending_values.find(cid); it != m_pending_values.end()) return m_pending.values[it->second].bytes;
  auto bytes = m_store->value(cid);
  if (!bytes)
    throw Error(Errc::not_found, "value " + cid.hex() + " is not in the store " +
                                     (m_path.empty() ? std::string("(in memory)") : m_path.string()) +
                                     "; it may have been removed by cleanup()");
  return std::move(*bytes);
}

std::optional<store::CallRecord> StorageCore::transient_creator_locked(const Id& ref_hid) {
  ReadScope read(*m_store);
  for (auto& c : m_store->creators_of_many(std::span<const Id>(&ref_hid, 1)))
    for (const auto& o : c.outputs)
      if (o.hid == ref_hid && o.transient) return std::move(c);
  return std::nullopt;
}

std::vector<std::byte> StorageCore::load_ref_value(const std::shared_ptr<StorageCore>& self, const RefState& ref) {
  store::CallRecord call;
  const store::IoRef* output = nullptr;
  {
    std::unique_lock lock(m_mutex);
    if (auto it = m_pending_values.find(ref.cid); it != m_pending_values.end())
      return m_pending.values[it->second].bytes;
    {
      ReadScope read(*m_store);
      if (auto bytes = m_store->value(ref.cid)) return std::move(*bytes);
    }
    // Not stored: a transient output is recomputed from its call (stored first, if pending).
    flush_locked();
    if (auto creator = transient_creator_locked(ref.hid)) {
      call = std::move(*creator);
      output =
          &*std::find_if(call.outputs.begin(), call.outputs.end(), [&](const auto& x) { return x.hid == ref.hid; });
    }
    if (output == nullptr)
      throw Error(Errc::not_found, "value " + ref.cid.hex() + " is not in the store " +
                                       (m_path.empty() ? std::string("(in memory)") : m_path.string()) +
                                       "; it may have been removed by cleanup()");
  }
  ref.transient = true;
  const std::string where = "output '" + output->name + "' of call " + call.hid.hex() + " of op " + call.op;
  const auto op = replayable_op(call.op, call.version);
  if (!op || !op->replay || !*op->replay)
    throw Error(Errc::not_found, "the value of " + where +
                                     " is transient (not stored; recomputed when needed), and this program declares "
                                     "no op " +
                                     call.op + " of version " + std::to_string(call.version) +
                                     " with transient outputs to recompute it: declare the op as the program that "
                                     "made the call does, then load the value again");
  const auto at = std::find(op->outputs.begin(), op->outputs.end(), output->name);
  if (at == op->outputs.end())
    throw Error(Errc::output_mismatch, "the value of " + where + " is transient, but op " + call.op + " of version " +
                                           std::to_string(call.version) + " declares no output of that name now");
  std::vector<ReplayInput> inputs;
  inputs.reserve(call.inputs.size());
  for (const auto& r : call.inputs) inputs.push_back({&r.name, make_lazy(self, r.hid, r.cid, r.transient)});
  // The op's function runs without the storage's lock (it may load its inputs, recomputing
  // transient ones in turn).
  auto computed = (*op->replay)(std::span<const ReplayInput>(inputs));
  const auto index = static_cast<std::size_t>(at - op->outputs.begin());
  if (computed.size() != op->outputs.size())
    throw Error(Errc::output_mismatch, "recomputing the transient " + where + ": the op returned " +
                                           std::to_string(computed.size()) + " outputs but declares " +
                                           std::to_string(op->outputs.size()));
  auto& value = computed[index];
  const Id cid = value.cid ? *value.cid : codec::content_id(value.bytes);
  if (cid != ref.cid)
    throw Error(Errc::output_mismatch,
                "recomputing the transient " + where + " gave another value (content id " + cid.hex() +
                    ") than the call recorded (" + ref.cid.hex() +
                    "): the op's result changed, so its code changed without a new version or it is not "
                    "deterministic; give the op a new version (or drop the call: mandala drop) and run again");
  ++m_recomputed;
  {
    std::lock_guard lock(ref.mutex);
    if (!ref.value && value.value) {
      ref.value = value.value;
      ref.type = value.type;
      ref.encode = value.encode;
    }
  }
  return std::move(value.bytes);
}

CallInfo StorageCore::to_info(const std::shared_ptr<StorageCore>& self, const store::CallRecord& record) {
  CallInfo info;
  info.op = record.op;
  info.version = record.version;
  info.hid = record.hid;
  info.cid = record.cid;
  // A damaged timestamp must not overflow the clock's nanosecond count: clamp it to the range
  // the clock can hold.
  using Clock = std::chrono::system_clock;
  constexpr auto limit = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::duration::max()).count() - 1;
  const std::int64_t ms = std::clamp<std::int64_t>(record.created_ms, -limit, limit);
  info.created = Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::milliseconds(ms)));
  for (const auto& r : record.inputs)
    info.inputs.emplace_back(r.name, AnyRef(make_lazy(self, r.hid, r.cid, r.transient)));
  // Outputs in the op's declared order when known.
  std::vector<std::string> order;
  if (auto it = m_op_outputs.find(op_key(record.op, record.version)); it != m_op_outputs.end()) {
    order = it->second;
  } else if (auto op = m_store->op(record.op, record.version)) {
    order = op->outputs;
    m_op_outputs[op_key(record.op, record.version)] = order;
  }
  auto outputs = record.outputs;
  std::stable_sort(outputs.begin(), outputs.end(), [&](const auto& a, const auto& b) {
    auto pos = [&](const std::string& n) { return std::find(order.begin(), order.end(), n) - order.begin(); };
    return pos(a.name) < pos(b.name);
  });
  for (const auto& r : outputs) info.outputs.emplace_back(r.name, AnyRef(make_lazy(self, r.hid, r.cid, r.transient)));
  return info;
}

std::optional<AnyRef> StorageCore::ref(const std::shared_ptr<StorageCore>& self, const Id& hid) {
  std::lock_guard lock(m_mutex);
  flush_locked();
  ReadScope read(*m_store);
  auto cid = m_store->ref_cid(hid);
  if (!cid) return std::nullopt;
  return AnyRef(make_lazy(self, hid, *cid));
}

std::optional<CallInfo> StorageCore::creator_of(const std::shared_ptr<StorageCore>& self, const Id& ref_hid) {
  std::lock_guard lock(m_mutex);
  flush_locked();
  ReadScope read(*m_store);
  auto rec = m_store->creator_of(ref_hid);
  if (!rec) return std::nullopt;
  return to_info(self, *rec);
}

std::vector<CallInfo> StorageCore::consumers_of(const std::shared_ptr<StorageCore>& self, const Id& ref_hid) {
  std::lock_guard lock(m_mutex);
  flush_locked();
  ReadScope read(*m_store);
  std::vector<CallInfo> out;
  for (const auto& rec : m_store->consumers_of(ref_hid)) out.push_back(to_info(self, rec));
  return out;
}

std::optional<CallInfo> StorageCore::call_by_hid(const std::shared_ptr<StorageCore>& self, const Id& hid) {
  std::lock_guard lock(m_mutex);
  flush_locked();
  ReadScope read(*m_store);
  auto rec = m_store->call_by_hid(hid);
  if (!rec) return std::nullopt;
  return to_info(self, *rec);
}

std::vector<CallInfo> StorageCore::calls_of(const std::shared_ptr<StorageCore>& self, std::string_view op,
                                            std::optional<std::uint32_t> version) {
  std::lock_guard lock(m_mutex);
  flush_locked();
  ReadScope read(*m_store);
  std::vector<CallInfo> out;
  for (const auto& rec : m_store->calls_of(op, version)) out.push_back(to_info(self, rec));
  return out;
}

void StorageCore::call_records_of(std::string_view op, std::optional<std::uint32_t> version,
                                  const store::CallSink& sink) {
  std::lock_guard lock(m_mutex);
  flush_locked();
  ReadScope read(*m_store);
  m_store->calls_of(op, version, sink);
}

std::vector<store::CallRecord> StorageCore::creators_of_many(std::span<const Id> ref_hids) {
  std::lock_guard lock(m_mutex);
  flush_locked();
  ReadScope read(*m_store);
  return m_store->creators_of_many(ref_hids);
}

void StorageCore::creators_of_many(std::span<const Id> ref_hids, const store::CallSink& sink) {
  std::lock_guard lock(m_mutex);
  flush_locked();
  ReadScope read(*m_store);
  m_store->creators_of_many(ref_hids, sink);
}

void StorageCore::consumers_of_many(std::span<const Id> ref_hids, const store::CallSink& sink) {
  std::lock_guard lock(m_mutex);
  flush_locked();
  ReadScope read(*m_store);
  m_store->consumers_of_many(ref_hids, sink);
}

std::vector<store::CallRecord> StorageCore::calls_by_hids(std::span<const Id> call_hids) {
  std::lock_guard lock(m_mutex);
  flush_locked();
  ReadScope read(*m_store);
  return m_store->calls_by_hids(call_hids);
}

std::vector<std::optional<std::vector<std::byte>>> StorageCore::load_values(std::span<const Id> cids) {
  std::lock_guard lock(m_mutex);
  std::vector<std::optional<std::vector<std::byte>>> out(cids.size());
  std::vector<Id> stored;
  std::vector<std::size_t> stored_pos;
  for (std::size_t i = 0; i < cids.size(); ++i) {
    if (auto it = m_pending_values.find(cids[i]); it != m_pending_values.end()) {
      out[i] = m_pending.values[it->second].bytes;
    } else {
      stored.push_back(cids[i]);
      stored_pos.push_back(i);
    }
  }
  if (stored.empty()) return out;
  ReadScope read(*m_store);
  auto loaded = m_store->values_many(stored);
  for (std::size_t j = 0; j < loaded.size(); ++j) out[stored_pos[j]] = std::move(loaded[j]);
  return out;
}

std::vector<std::string> StorageCore::op_outputs(std::string_view op, std::uint32_t version) {
  std::lock_guard lock(m_mutex);
  const auto key = op_key(op, version);
  if (auto it = m_op_outputs.find(key); it != m_op_outputs.end()) return it->second;
  ReadScope read(*m_store);
  auto rec = m_store->op(op, version);
  if (!rec) return {};
  m_op_outputs[key] = rec->outputs;
  return rec->outputs;
}

CallInfo StorageCore::info_of(const std::shared_ptr<StorageCore>& self, const store::CallRecord& record) {
  std::lock_guard lock(m_mutex);
  ReadScope read(*m_store);
  return to_info(self, record);
}

std::shared_ptr<RefState> StorageCore::lazy_ref(const std::shared_ptr<StorageCore>& self, const Id& hid, const Id& cid,
                                                bool transient) {
  return make_lazy(self, hid, cid, transient);
}

std::size_t StorageCore::drop_calls(std::span<const Id> call_hids, Dependents dependents) {
  std::lock_guard lock(m_mutex);
  flush_locked();
  ReadScope read(*m_store);
  const auto n = m_store->drop_calls(call_hids, dependents == Dependents::yes);
  m_calls_by_hid.clear();
  m_hid_by_cid.clear();
  return n;
}

CleanupReport StorageCore::cleanup() {
  std::lock_guard lock(m_mutex);
  flush_locked();
  ReadScope read(*m_store);
  auto report = m_store->cleanup();
  m_known_values.clear();
  return report;
}

StorageStats StorageCore::stats() {
  std::lock_guard lock(m_mutex);
  flush_locked();
  ReadScope read(*m_store);
  return m_store->stats();
}

IntegrityReport StorageCore::check_integrity(const ProgressCallback& progress) {
  std::lock_guard lock(m_mutex);
  flush_locked();
  m_store->end_read();
  return m_store->check_integrity(progress);
}

std::vector<std::shared_ptr<RefState>> memoized_call(StorageCore& core, const std::shared_ptr<StorageCore>& self,
                                                     const OpInfo& op, std::vector<InputSlot>& inputs, Executor& exec) {
  return core.call(self, op, inputs, exec);
}

void flush_core(StorageCore& core) { core.flush(); }

}  // namespace mandala::detail
