// Storage::push / pull: copying what one store lacks from another, in batches that are each
// one transaction at the destination (so a copy can be interrupted and run again).

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "engine/engine.hpp"

namespace mandala {
namespace detail {
namespace {

std::string short_hex(const Id& id) { return id.hex().substr(0, 12); }

std::string describe_semantic(const std::optional<Id>& s) { return s ? short_hex(*s) : std::string("undecided"); }

class Copier {
 public:
  Copier(store::Store& from, store::Store& to, const TransferOptions& options)
      : m_from(from), m_to(to), m_options(options) {}

  TransferReport run() {
    auto ops = m_from.op_summaries();
    if (!m_options.ops.empty()) {
      const std::set<std::string> wanted(m_options.ops.begin(), m_options.ops.end());
      for (const auto& name : wanted)
        if (std::none_of(ops.begin(), ops.end(), [&](const OpSummary& o) { return o.name == name; }))
          throw Error(Errc::not_found, "the source store has no op named '" + name + "' to copy");
      std::erase_if(ops, [&](const OpSummary& o) { return !wanted.contains(o.name); });
    }
    for (const auto& op : ops) m_total += op.calls;
    progress();
    // Rename records first: the copied calls' ids hold identity names, which the destination
    // then knows under the same current names (docs/storage-format.md 2.2).
    copy_names();
    std::set<std::string> names;
    for (const auto& op : ops) names.insert(op.name);
    // Code versions first: a copied call's semantic version then names a version the
    // destination knows.
    for (const auto& name : names) copy_versions(name);
    for (const auto& op : ops) copy_calls(op);
    m_done = m_total;
    progress();
    return std::move(m_report);
  }

 private:
  void progress() const {
    if (m_options.progress) m_options.progress(m_done, m_total);
  }

  void conflict(std::string what) { m_report.conflicts.push_back(std::move(what)); }

  void copy_names() {
    const auto ours = m_from.name_records();
    if (ours.empty()) return;
    const auto theirs = m_to.name_records();
    const auto ops_there = m_to.op_summaries();
    static constexpr const char* kinds[] = {"op", "input", "output"};
    std::vector<store::NameRecord> missing;
    for (const auto& r : ours) {
      const auto same = [&](const store::NameRecord& t) { return t.kind == r.kind && t.op == r.op; };
      const std::string what = std::string(kinds[static_cast<int>(r.kind)]) + " '" + r.identity + "'" +
                               (r.kind == store::NameKind::op ? "" : " of op '" + r.op + "'");
      const auto known = std::find_if(theirs.begin(), theirs.end(),
                                      [&](const store::NameRecord& t) { return same(t) && t.identity == r.identity; });
      if (known != theirs.end()) {
        if (known->name != r.name)
          conflict(what + " is called '" + r.name + "' here and '" + known->name + "' at the destination");
        continue;
      }
      const bool name_taken =
          std::any_of(theirs.begin(), theirs.end(),
                      [&](const store::NameRecord& t) { return same(t) && t.name == r.name; }) ||
          (r.kind == store::NameKind::op &&
           std::any_of(ops_there.begin(), ops_there.end(), [&](const OpSummary& o) { return o.name == r.name; }));
      if (name_taken) {
        conflict(what + " is called '" + r.name + "' here, a name the destination uses for something else");
        continue;
      }
      missing.push_back(r);
    }
    if (missing.empty()) return;
    m_to.write_names(missing);
    m_names_copied = true;
  }

 public:
  [[nodiscard]] bool names_copied() const { return m_names_copied; }

 private:
  void copy_versions(const std::string& op) {
    store::VersioningWrite changes;
    std::map<Id, const store::VersionRecord*> there;
    const auto theirs = m_to.versions_of(op);
    for (const auto& v : theirs) there.emplace(v.content_version, &v);
    std::set<std::string> components;
    const auto ours = m_from.versions_of(op);
    for (const auto& v : ours) {
      for (const auto& c : v.components) components.insert(c.component);
      const auto it = there.find(v.content_version);
      if (it == there.end()) {
        changes.versions.push_back(v);
        continue;
      }
      if (it->second->semantic_version != v.semantic_version)
        conflict("op " + op + ": code version " + short_hex(v.content_version) + " has semantic version " +
                 short_hex(v.semantic_version) + " in the source but " + short_hex(it->second->semantic_version) +
                 " in the destination (kept)");
    }
    for (const auto& component : components) {
      std::map<Id, store::CommitRecord> commits_there;
      for (auto& c : m_to.commits_of(component)) commits_there.emplace(c.content, std::move(c));
      for (const auto& c : m_from.commits_of(component)) {
        const auto it = commits_there.find(c.content);
        if (it == commits_there.end()) {
          changes.commits.push_back(c);
          continue;
        }
        if (it->second.semantic != c.semantic)
          conflict("component " + component + ": commit " + short_hex(c.content) + " is decided " +
                   describe_semantic(c.semantic) + " in the source but " + describe_semantic(it->second.semantic) +
                   " in the destination (kept)");
      }
      if (!m_to.head_of(component))
        if (const auto head = m_from.head_of(component)) changes.heads.emplace_back(component, *head);
    }
    m_report.versions_copied += changes.versions.size() + changes.commits.size();
    m_to.write_versioning(changes);
  }

  void copy_calls(const OpSummary& op) {
    const store::OpRecord record{op.name, op.version, op.inputs, op.outputs};
    if (const auto there = m_to.op(op.name, op.version)) {
      if (there->outputs != op.outputs || !store::inputs_compatible(there->inputs, op.inputs)) {
        conflict(store::describe_op(op.name, op.version, op.inputs, op.outputs) + " is declared as " +
                 store::describe_op(op.name, op.version, there->inputs, there->outputs) + " in the destination: its " +
                 std::to_string(op.calls) + " calls were not copied");
        m_done += op.calls;
        progress();
        return;
      }
    }
    ++m_report.ops;
    // Semantic versions of the op's calls (a call record does not carry its own).
    std::unordered_map<Id, Id> semantic;
    for (const auto& [hid, s] : m_from.call_versions_of(op.name)) semantic.emplace(hid, s);
    // The op's call ids first (a streamed read may not be interleaved with other reads of the
    // source), then the calls batch by batch, each read whole before it is written.
    std::vector<Id> hids;
    m_from.calls_of(op.name, op.version, [&](const store::CallRecord& c) { hids.push_back(c.hid); });
    const std::size_t per_batch = std::max<std::size_t>(m_options.batch_calls, 1);
    for (std::size_t begin = 0; begin < hids.size(); begin += per_batch) {
      const auto ids = std::span<const Id>(hids).subspan(begin, std::min(per_batch, hids.size() - begin));
      auto batch = m_from.calls_by_hids(ids);
      write_batch(record, batch, semantic);
      m_done += ids.size();
      progress();
    }
  }

  void write_batch(const store::OpRecord& op, std::vector<store::CallRecord>& calls,
                   const std::unordered_map<Id, Id>& semantic) {
    std::vector<Id> hids;
    hids.reserve(calls.size());
    for (const auto& c : calls) hids.push_back(c.hid);
    std::unordered_set<Id> present;
    for (const auto& c : m_to.calls_by_hids(hids)) present.insert(c.hid);
    m_report.calls_present += present.size();
    std::erase_if(calls, [&](const store::CallRecord& c) { return present.contains(c.hid); });
    if (calls.empty()) return;

    std::vector<Id> cids;
    for (const auto& c : calls)
      for (const auto* list : {&c.inputs, &c.outputs})
        for (const auto& r : *list) cids.push_back(r.cid);
    const auto absent = m_to.absent_values(cids);
    auto bytes = m_from.values_many(absent);
    store::WriteBatch batch;
    std::unordered_set<Id> unavailable;
    for (std::size_t i = 0; i < absent.size(); ++i) {
      if (!bytes[i]) {
        unavailable.insert(absent[i]);
        continue;
      }
      m_report.value_bytes += bytes[i]->size();
      batch.values.push_back({absent[i], std::move(*bytes[i])});
    }
    for (auto& c : calls) {
      // A transient entry's value is not stored anywhere: the call is copied without it.
      const auto lacks = [&](const store::IoRef& r) { return !r.transient && unavailable.contains(r.cid); };
      if (std::any_of(c.inputs.begin(), c.inputs.end(), lacks) ||
          std::any_of(c.outputs.begin(), c.outputs.end(), lacks)) {
        m_report.skipped.push_back("call " + c.hid.hex() + " of " + c.op +
                                   ": a value it uses is not stored in the source either");
        continue;
      }
      if (const auto s = semantic.find(c.hid); s != semantic.end()) c.semantic = s->second;
      batch.calls.push_back(std::move(c));
    }
    if (batch.calls.empty()) return;
    batch.ops.push_back(op);
    batch.generation = m_to.generation();
    m_to.write(batch);
    m_to.end_read();
    m_report.calls_copied += batch.calls.size();
    m_report.values_copied += batch.values.size();
  }

  store::Store& m_from;
  store::Store& m_to;
  const TransferOptions& m_options;
  TransferReport m_report;
  bool m_names_copied = false;
  std::uint64_t m_total = 0;
  std::uint64_t m_done = 0;
};

}  // namespace

TransferReport StorageCore::transfer_to(StorageCore& destination, const TransferOptions& options) {
  if (&destination == this)
    throw Error(Errc::invalid_argument, "push/pull: the source and the destination are the same storage");
  std::scoped_lock lock(m_mutex, destination.m_mutex);
  flush_locked();
  destination.flush_locked();
  ReadScope source_read(*m_store);
  ReadScope destination_read(*destination.m_store);
  Copier copier(*m_store, *destination.m_store, options);
  auto report = copier.run();
  if (copier.names_copied()) {
    // What the destination knew by name may stand for other identities now.
    destination.m_registered_ops.clear();
    destination.m_op_outputs.clear();
    destination.m_calls_by_hid.clear();
    destination.m_hid_by_cid.clear();
  }
  // The destination's own lookups see the new calls at once (its caches never held them).
  return report;
}

}  // namespace detail

TransferReport Storage::push(Storage& destination, const TransferOptions& options) {
  return m_core->transfer_to(*destination.m_core, options);
}

TransferReport Storage::pull(Storage& source, const TransferOptions& options) { return source.push(*this, options); }

}  // namespace mandala
