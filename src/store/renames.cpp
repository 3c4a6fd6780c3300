// The renames layer over every backend: identity names inside, current names outside
// (docs/storage-format.md 2.2).

#include "store/renames.hpp"

#include <algorithm>
#include <map>
#include <unordered_map>

namespace mandala::store {
namespace {

const char* kind_word(NameKind kind) {
  switch (kind) {
    case NameKind::op: return "op";
    case NameKind::input: return "input";
    case NameKind::output: return "output";
  }
  return "name";
}

bool is_builtin(std::string_view name) {
  return name == "__make_list__" || name == "__make_dict__" || name == "__list_getitem__" || name == "__dict_getitem__";
}

std::string join(const std::vector<std::string>& names) {
  std::string out = "[";
  for (std::size_t i = 0; i < names.size(); ++i) out += (i ? ", " : "") + names[i];
  return out + "]";
}

/// The rename records of one namespace (the ops, or the inputs or outputs of one op).
struct Namespace {
  std::unordered_map<std::string, std::string> name_of;      ///< identity -> current name
  std::unordered_map<std::string, std::string> identity_of;  ///< current name -> identity

  void add(const std::string& identity, const std::string& name) {
    if (auto it = name_of.find(identity); it != name_of.end()) identity_of.erase(it->second);
    name_of[identity] = name;
    identity_of[name] = identity;
  }
  [[nodiscard]] std::string current(const std::string& identity) const {
    const auto it = name_of.find(identity);
    return it == name_of.end() ? identity : it->second;
  }
  /// The identity a current name stands for; empty when the name was renamed away (it names
  /// nothing now).
  [[nodiscard]] std::string identity(const std::string& name) const {
    if (const auto it = identity_of.find(name); it != identity_of.end()) return it->second;
    return renamed_away(name) ? std::string() : name;
  }
  [[nodiscard]] bool renamed_away(const std::string& identity) const {
    const auto it = name_of.find(identity);
    return it != name_of.end() && it->second != identity;
  }
  [[nodiscard]] bool has_record(const std::string& identity_or_name) const {
    return name_of.contains(identity_or_name) || identity_of.contains(identity_or_name);
  }
};

class NameTable {
 public:
  void add(const NameRecord& r) {
    if (r.kind == NameKind::op) m_ops.add(r.identity, r.name);
    else m_io[{r.kind, r.op}].add(r.identity, r.name);
  }
  [[nodiscard]] bool empty() const { return m_ops.name_of.empty() && m_io.empty(); }
  [[nodiscard]] const Namespace& ops() const { return m_ops; }
  [[nodiscard]] const Namespace& io(NameKind kind, const std::string& op) const {
    static const Namespace none;
    const auto it = m_io.find({kind, op});
    return it == m_io.end() ? none : it->second;
  }
  /// The identity of an op's current name (the name itself when it was renamed away: used for
  /// writes of records whose op this storage never declared).
  [[nodiscard]] std::string op_identity_or_name(const std::string& name) const {
    auto id = m_ops.identity(name);
    return id.empty() ? name : id;
  }

 private:
  Namespace m_ops;
  std::map<std::pair<NameKind, std::string>, Namespace> m_io;
};

void sort_by_name(std::vector<IoRef>& refs) {
  std::sort(refs.begin(), refs.end(), [](const IoRef& a, const IoRef& b) { return a.name < b.name; });
}

class RenamingStore final : public Store {
 public:
  RenamingStore(std::unique_ptr<Store> backend, bool read_only) : m_inner(std::move(backend)), m_read_only(read_only) {}

  // ---- calls ------------------------------------------------------------------------------

  std::optional<CallRecord> call_by_hid(const Id& hid) override { return shown(m_inner->call_by_hid(hid)); }
  std::optional<CallRecord> call_by_content(const Id& cid, const Id* raw_hid) override {
    return shown(m_inner->call_by_content(cid, raw_hid));
  }
  std::optional<std::vector<std::byte>> value(const Id& cid) override { return m_inner->value(cid); }
  bool has_value(const Id& cid) override { return m_inner->has_value(cid); }
  std::vector<Id> absent_values(std::span<const Id> cids) override { return m_inner->absent_values(cids); }

  std::optional<OpRecord> op(std::string_view name, std::uint32_t version) override {
    const auto& t = table();
    if (t.empty()) return m_inner->op(name, version);
    const std::string identity = t.ops().identity(std::string(name));
    if (identity.empty()) return std::nullopt;
    auto record = m_inner->op(identity, version);
    if (record) show(*record);
    return record;
  }

  void write(const WriteBatch& batch) override {
    const auto& t = table();
    const auto touched = [&](const std::string& op) { return t.ops().has_record(op) || has_io_records(op); };
    const bool translate =
        !t.empty() &&
        (std::any_of(batch.ops.begin(), batch.ops.end(), [&](const auto& o) { return touched(o.name); }) ||
         std::any_of(batch.calls.begin(), batch.calls.end(), [&](const auto& c) { return touched(c.op); }));
    if (!translate) {
      m_inner->write(batch);
      return;
    }
    WriteBatch copy = batch;
    for (auto& o : copy.ops) to_identity(o);
    for (auto& c : copy.calls) to_identity(c);
    m_inner->write(copy);
  }

  std::uint64_t generation() override {
    const auto g = m_inner->generation();
    if (g != m_generation) {
      // Another connection has committed: it may have renamed something.
      m_generation = g;
      m_loaded = false;
    }
    return g;
  }

  std::optional<Id> ref_cid(const Id& hid) override { return m_inner->ref_cid(hid); }
  std::optional<CallRecord> creator_of(const Id& ref_hid) override { return shown(m_inner->creator_of(ref_hid)); }
  std::vector<CallRecord> consumers_of(const Id& ref_hid) override { return shown(m_inner->consumers_of(ref_hid)); }

  using Store::calls_of;
  using Store::consumers_of_many;
  using Store::creators_of_many;
  void calls_of(std::string_view op, std::optional<std::uint32_t> version, const CallSink& sink) override {
    const auto& t = table();
    if (t.empty()) return m_inner->calls_of(op, version, sink);
    const std::string identity = t.ops().identity(std::string(op));
    if (identity.empty()) return;
    m_inner->calls_of(identity, version, showing(sink));
  }
  void creators_of_many(std::span<const Id> ref_hids, const CallSink& sink) override {
    m_inner->creators_of_many(ref_hids, showing(sink));
  }
  void consumers_of_many(std::span<const Id> ref_hids, const CallSink& sink) override {
    m_inner->consumers_of_many(ref_hids, showing(sink));
  }
  std::vector<CallRecord> calls_by_hids(std::span<const Id> call_hids) override {
    return shown(m_inner->calls_by_hids(call_hids));
  }
  std::vector<std::optional<std::vector<std::byte>>> values_many(std::span<const Id> cids) override {
    return m_inner->values_many(cids);
  }
  std::size_t drop_calls(std::span<const Id> call_hids, bool dependents) override {
    return m_inner->drop_calls(call_hids, dependents);
  }
  CleanupReport cleanup() override { return m_inner->cleanup(); }
  StorageStats stats() override { return m_inner->stats(); }
  IntegrityReport check_integrity(const ProgressCallback& progress) override {
    return m_inner->check_integrity(progress);
  }

  // ---- code versions (kept under the op's identity name) -----------------------------------

  std::vector<CommitRecord> commits_of(std::string_view component) override { return m_inner->commits_of(component); }
  std::optional<Id> head_of(std::string_view component) override { return m_inner->head_of(component); }
  std::vector<VersionRecord> versions_of(std::string_view op) override {
    const auto& t = table();
    if (t.empty()) return m_inner->versions_of(op);
    const std::string identity = t.ops().identity(std::string(op));
    if (identity.empty()) return {};
    auto versions = m_inner->versions_of(identity);
    for (auto& v : versions) v.op = std::string(op);
    return versions;
  }
  void write_versioning(const VersioningWrite& changes) override {
    const auto& t = table();
    if (t.empty()) return m_inner->write_versioning(changes);
    VersioningWrite copy = changes;
    for (auto& v : copy.versions) v.op = t.op_identity_or_name(v.op);
    for (auto& [op, content] : copy.dropped_versions) op = t.op_identity_or_name(op);
    m_inner->write_versioning(copy);
  }
  std::vector<std::pair<Id, Id>> call_versions_of(std::string_view op) override {
    const auto& t = table();
    if (t.empty()) return m_inner->call_versions_of(op);
    const std::string identity = t.ops().identity(std::string(op));
    if (identity.empty()) return {};
    return m_inner->call_versions_of(identity);
  }

  // ---- inspection ---------------------------------------------------------------------------

  StorageInfo info() override {
    auto info = m_inner->info();
    show(info.ops);
    return info;
  }
  std::vector<OpSummary> op_summaries() override {
    auto ops = m_inner->op_summaries();
    show(ops);
    return ops;
  }
  std::vector<CallRecord> calls_page(std::string_view op, const CallQuery& query) override {
    const auto& t = table();
    if (t.empty()) return m_inner->calls_page(op, query);
    const std::string identity = t.ops().identity(std::string(op));
    if (identity.empty()) return {};
    return shown(m_inner->calls_page(identity, query));
  }
  std::vector<Id> call_hids_between(const Id& lo, const Id& hi, std::size_t limit) override {
    return m_inner->call_hids_between(lo, hi, limit);
  }
  std::vector<Id> ref_hids_between(const Id& lo, const Id& hi, std::size_t limit) override {
    return m_inner->ref_hids_between(lo, hi, limit);
  }
  std::vector<CallRecord> calls_to_drop(std::span<const Id> call_hids, bool dependents) override {
    return shown(m_inner->calls_to_drop(call_hids, dependents));
  }
  CleanupReport cleanup_preview() override { return m_inner->cleanup_preview(); }
  void end_read() override { m_inner->end_read(); }

  // ---- claims -----------------------------------------------------------------------------

  [[nodiscard]] bool shares_claims() const override { return m_inner->shares_claims(); }
  bool try_claim(const Id& key, const Id& owner, std::chrono::milliseconds lease) override {
    return m_inner->try_claim(key, owner, lease);
  }
  std::vector<Id> renew_claims(const Id& owner, std::span<const Id> keys, std::chrono::milliseconds lease) override {
    return m_inner->renew_claims(owner, keys, lease);
  }
  void release_claims(const Id& owner, std::span<const Id> keys) override { m_inner->release_claims(owner, keys); }

  // ---- names --------------------------------------------------------------------------------

  std::vector<NameRecord> name_records() override { return m_inner->name_records(); }

  void write_names(std::span<const NameRecord> records) override {
    m_inner->write_names(records);
    for (const auto& r : records) m_table.add(r);
  }

  IdentityNames identity_names(const DeclaredNames& d) override {
    table();
    std::vector<NameRecord> decided;
    std::optional<std::vector<OpSummary>> stored;  // the backend's ops (identity names), read when needed
    const auto stored_ops = [&]() -> const std::vector<OpSummary>& {
      if (!stored) stored = m_inner->op_summaries();
      return *stored;
    };
    IdentityNames out;
    out.op = resolve(NameKind::op, {}, d.name, d.formerly, decided, [&](const std::string& identity) {
      const auto& ops = stored_ops();
      return std::any_of(ops.begin(), ops.end(), [&](const OpSummary& o) { return o.name == identity; });
    });
    const auto io_exists = [&](NameKind kind) {
      return [&, kind](const std::string& identity) {
        for (const auto& o : stored_ops()) {
          if (o.name != out.op) continue;
          const auto& names = kind == NameKind::input ? o.inputs : o.outputs;
          if (std::find(names.begin(), names.end(), identity) != names.end()) return true;
        }
        return false;
      };
    };
    const auto resolve_all = [&](NameKind kind, const std::vector<std::string>& names,
                                 const std::vector<std::vector<std::string>>& formerly) {
      std::vector<std::string> ids;
      ids.reserve(names.size());
      static const std::vector<std::string> none;
      for (std::size_t i = 0; i < names.size(); ++i)
        ids.push_back(
            resolve(kind, out.op, names[i], i < formerly.size() ? formerly[i] : none, decided, io_exists(kind)));
      return ids;
    };
    out.inputs = resolve_all(NameKind::input, d.inputs, d.inputs_formerly);
    out.outputs = resolve_all(NameKind::output, d.outputs, d.outputs_formerly);
    if (!decided.empty()) {
      out.recorded = true;
      if (m_read_only) {
        m_overlay.insert(m_overlay.end(), decided.begin(), decided.end());
      } else {
        try {
          m_inner->write_names(decided);
        } catch (...) {
          m_loaded = false;  // the table holds what was not written
          throw;
        }
      }
    }
    return out;
  }

  void rename(NameKind kind, std::string_view op_name, std::string_view from_view, std::string_view to_view) override {
    const std::string from(from_view), to(to_view), op(op_name);
    const std::string what = kind == NameKind::op ? "op '" + from + "'"
                                                  : std::string(kind_word(kind)) + " '" + from + "' of op '" + op + "'";
    const auto refuse = [&](Errc code, const std::string& why) {
      throw Error(code, "cannot rename " + what + " to '" + to + "': " + why);
    };
    if (to.empty()) refuse(Errc::invalid_argument, "the new name is empty");
    if (from == to) refuse(Errc::invalid_argument, "the names are the same");
    const auto& t = table();
    const auto ops = m_inner->op_summaries();
    const auto op_exists = [&](const std::string& identity) {
      return std::find_if(ops.begin(), ops.end(), [&](const OpSummary& o) { return o.name == identity; });
    };
    NameRecord record;
    record.kind = kind;
    record.name = to;
    if (kind == NameKind::op) {
      if (is_builtin(from) || is_builtin(to))
        refuse(Errc::invalid_argument, "the built-in collection ops keep their names");
      const std::string identity = t.ops().identity(from);
      if (identity.empty() || op_exists(identity) == ops.end())
        refuse(Errc::not_found, "the store has no op of that name; `mandala ops` lists its ops");
      const std::string taken = t.ops().identity(to);
      if (!taken.empty() && (op_exists(taken) != ops.end() || t.ops().identity_of.contains(to))) {
        std::uint64_t calls = 0;
        for (const auto& o : ops)
          if (o.name == taken) calls += o.calls;
        refuse(Errc::invalid_argument, "the store holds an op '" + to + "' already (" + std::to_string(calls) +
                                           " calls); the two would be mixed: choose another name, or drop the "
                                           "calls of '" +
                                           to + "' and rename it away first");
      }
      record.identity = identity;
    } else {
      const std::string identity = t.ops().identity(op);
      if (identity.empty() || op_exists(identity) == ops.end())
        throw Error(Errc::not_found, "cannot rename " + std::string(kind_word(kind)) + " '" + from + "' of op '" + op +
                                         "': the store has no op of that name; `mandala ops` lists its ops");
      record.op = identity;
      const auto& space = t.io(kind, identity);
      const auto& other_space = t.io(kind == NameKind::input ? NameKind::output : NameKind::input, identity);
      // Every version's names (identity names in the backend), shown as current names.
      std::vector<std::string> mine, others;
      for (const auto& o : ops) {
        if (o.name != identity) continue;
        for (const auto& n : kind == NameKind::input ? o.inputs : o.outputs)
          if (std::find(mine.begin(), mine.end(), space.current(n)) == mine.end()) mine.push_back(space.current(n));
        for (const auto& n : kind == NameKind::input ? o.outputs : o.inputs) others.push_back(other_space.current(n));
      }
      const std::string from_identity = space.identity(from);
      if (from_identity.empty() || std::find(mine.begin(), mine.end(), from) == mine.end())
        refuse(Errc::not_found, "the op has no " + std::string(kind_word(kind)) + " of that name (its " +
                                    kind_word(kind) + "s: " + join(mine) + ")");
      if (std::find(mine.begin(), mine.end(), to) != mine.end() || space.identity_of.contains(to))
        refuse(Errc::invalid_argument, "the op has an " + std::string(kind_word(kind)) + " '" + to +
                                           "' already (in some version); the two would be mixed: choose another name");
      if (std::find(others.begin(), others.end(), to) != others.end())
        refuse(Errc::invalid_argument, "the op has an " + std::string(kind == NameKind::input ? "output" : "input") +
                                           " '" + to +
                                           "'; inputs and outputs of an op need distinct names: choose another name");
      record.identity = from_identity;
    }
    if (m_read_only) refuse(Errc::io, "the store was opened read-only; open it writable to rename");
    write_names(std::span<const NameRecord>(&record, 1));
  }

 private:
  /// The table, read again when another connection has committed since it was read.
  const NameTable& table() {
    if (!m_loaded) {
      m_table = NameTable();
      for (const auto& r : m_inner->name_records()) m_table.add(r);
      for (const auto& r : m_overlay) m_table.add(r);
      m_loaded = true;
    }
    return m_table;
  }

  [[nodiscard]] bool has_io_records(const std::string& op) {
    const auto identity = m_table.op_identity_or_name(op);
    return m_table.io(NameKind::input, identity).name_of.size() +
               m_table.io(NameKind::output, identity).name_of.size() >
           0;
  }

  /// The identity a declared name gets (docs/storage-format.md 2.2, rules 1 to 4); records what
  /// it decides into `decided` and the table.
  template <class Exists>
  std::string resolve(NameKind kind, const std::string& op, const std::string& name,
                      const std::vector<std::string>& formerly, std::vector<NameRecord>& decided, Exists&& exists) {
    const auto space = [&]() -> const Namespace& {
      return kind == NameKind::op ? m_table.ops() : m_table.io(kind, op);
    };
    if (const auto it = space().identity_of.find(name); it != space().identity_of.end()) return it->second;
    const std::string own = space().renamed_away(name) ? std::string() : name;
    const auto record = [&](const std::string& identity) {
      NameRecord r{kind, op, identity, name};
      m_table.add(r);
      decided.push_back(std::move(r));
      return identity;
    };
    for (const auto& former : formerly) {
      const std::string identity = space().identity(former);
      if (identity.empty() || identity == own || !exists(identity)) continue;
      if (!own.empty() && exists(own))
        throw Error(Errc::invalid_argument,
                    std::string("cannot rename ") + kind_word(kind) + " '" + former + "'" +
                        (kind == NameKind::op ? "" : " of op '" + op + "'") + " to '" + name +
                        "' as the declaration says (formerly): the store holds both; the two would be mixed: drop "
                        "the calls of '" +
                        name + "' first, or remove 'formerly' from the declaration");
      return record(identity);
    }
    if (!own.empty()) return own;
    // The old name of something renamed: a fresh identity, never shared with the renamed one.
    for (int k = 2;; ++k) {
      const std::string candidate = name + "@" + std::to_string(k);
      if (!space().has_record(candidate) && !exists(candidate)) return record(candidate);
    }
  }

  void show(OpRecord& o) {
    const auto& t = m_table;
    const std::string identity = o.name;
    o.name = t.ops().current(identity);
    for (auto& n : o.inputs) n = t.io(NameKind::input, identity).current(n);
    for (auto& n : o.outputs) n = t.io(NameKind::output, identity).current(n);
  }
  void show(std::vector<OpSummary>& ops) {
    const auto& t = table();
    if (t.empty()) return;
    for (auto& o : ops) {
      const std::string identity = o.name;
      o.name = t.ops().current(identity);
      for (auto& n : o.inputs) n = t.io(NameKind::input, identity).current(n);
      for (auto& n : o.outputs) n = t.io(NameKind::output, identity).current(n);
    }
    std::stable_sort(ops.begin(), ops.end(), [](const OpSummary& a, const OpSummary& b) {
      return a.name < b.name || (a.name == b.name && a.version < b.version);
    });
  }
  void show(CallRecord& c) {
    const auto& t = m_table;
    const std::string identity = c.op;
    c.op = t.ops().current(identity);
    const auto rename = [&](std::vector<IoRef>& refs, NameKind kind) {
      const auto& space = t.io(kind, identity);
      if (space.name_of.empty()) return;
      for (auto& r : refs) r.name = space.current(r.name);
      sort_by_name(refs);
    };
    rename(c.inputs, NameKind::input);
    rename(c.outputs, NameKind::output);
  }
  void to_identity(OpRecord& o) {
    const auto& t = m_table;
    o.name = t.op_identity_or_name(o.name);
    for (auto& n : o.inputs) n = identity_in(t.io(NameKind::input, o.name), n);
    for (auto& n : o.outputs) n = identity_in(t.io(NameKind::output, o.name), n);
  }
  void to_identity(CallRecord& c) {
    const auto& t = m_table;
    c.op = t.op_identity_or_name(c.op);
    const auto rename = [&](std::vector<IoRef>& refs, NameKind kind) {
      const auto& space = t.io(kind, c.op);
      if (space.name_of.empty()) return;
      for (auto& r : refs) r.name = identity_in(space, r.name);
      sort_by_name(refs);
    };
    rename(c.inputs, NameKind::input);
    rename(c.outputs, NameKind::output);
  }
  static std::string identity_in(const Namespace& space, const std::string& name) {
    auto id = space.identity(name);
    return id.empty() ? name : id;
  }

  std::optional<CallRecord> shown(std::optional<CallRecord> record) {
    if (record && !table().empty()) show(*record);
    return record;
  }
  std::vector<CallRecord> shown(std::vector<CallRecord> records) {
    if (!table().empty())
      for (auto& r : records) show(r);
    return records;
  }
  CallSink showing(const CallSink& sink) {
    if (table().empty()) return sink;
    return [this, &sink](const CallRecord& record) {
      CallRecord copy = record;
      show(copy);
      sink(copy);
    };
  }

  std::unique_ptr<Store> m_inner;
  bool m_read_only;
  NameTable m_table;
  bool m_loaded = false;
  std::uint64_t m_generation = 0;
  std::vector<NameRecord> m_overlay;  ///< decided by declarations of a read-only storage
};

}  // namespace

std::unique_ptr<Store> with_renames(std::unique_ptr<Store> backend, bool read_only) {
  return std::make_unique<RenamingStore>(std::move(backend), read_only);
}

}  // namespace mandala::store
