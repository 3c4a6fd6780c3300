#include "frame/universe.hpp"

#include <sys/mman.h>

#include <algorithm>

#include "codec/hash.hpp"
#include "engine/collections.hpp"

namespace mandala::detail {

std::uint32_t Universe::name_id(std::string_view name) {
  std::string key(name);
  if (auto it = m_name_index.find(key); it != m_name_index.end()) return it->second;
  const auto id = static_cast<std::uint32_t>(m_names.size());
  m_names.push_back(key);
  m_name_index.emplace(std::move(key), id);
  return id;
}

std::uint32_t Universe::find_name(std::string_view name) const {
  auto it = m_name_index.find(std::string(name));
  return it == m_name_index.end() ? no_name : it->second;
}

Elem Universe::intern_ref(const Id& hid, const Id& cid) {
  const auto hid_of = [this](Elem e) -> const Id& { return m_ref_hid[e]; };
  if (const Elem found = m_ref_index.find(hid, hid_of); found != no_elem) return found;
  const auto id = static_cast<Elem>(m_ref_hid.size());
  m_ref_hid.push_back(hid);
  m_ref_cid.push_back(cid);
  m_ref_creator.push_back(no_elem);
  m_ref_first_consumer.push_back(no_elem);
  m_ref_last_consumer.push_back(no_elem);
  m_ref_state.emplace_back();
  m_ref_raw.push_back(0);
  m_ref_index.insert(hid, id, hid_of);
  return id;
}

void Universe::add_consumer(Elem r, Elem call) {
  const auto link = static_cast<std::uint32_t>(m_consumer_links.size());
  m_consumer_links.push_back({call, no_elem});
  if (m_ref_last_consumer[r] == no_elem) m_ref_first_consumer[r] = link;
  else m_consumer_links[m_ref_last_consumer[r]].next = link;
  m_ref_last_consumer[r] = link;
}

void advise_huge_pages(void* p, std::size_t bytes) noexcept {
#ifdef MADV_HUGEPAGE
  (void)madvise(p, bytes, MADV_HUGEPAGE);
#else
  (void)p;
  (void)bytes;
#endif
}

bool Universe::is_raw(Elem r) {
  if ((m_ref_raw[r] & 3) == 0)
    m_ref_raw[r] = static_cast<char>(m_ref_raw[r] | (m_ref_hid[r] == codec::atom_hid(m_ref_cid[r]) ? 1 : 2));
  return (m_ref_raw[r] & 3) == 1;
}

Io* Universe::io_room(std::size_t n) {
  if (m_io_used + n > m_io_capacity) {
    m_io_capacity = std::max<std::size_t>(n, 4096);
    m_io_blocks.push_back(std::make_unique<Io[]>(m_io_capacity));
    m_io_used = 0;
  }
  Io* at = m_io_blocks.back().get() + m_io_used;
  m_io_used += n;
  return at;
}

Elem Universe::intern_ref(const AnyRef& ref) {
  if (!ref.has_ids())
    throw Error(Errc::invalid_argument,
                "a frame can only hold refs with ids (returned by memoized calls); this ref was made outside a "
                "storage session");
  const Elem id = intern_ref(ref.hid(), ref.cid());
  if (!m_ref_state[id]) m_ref_state[id] = ref.state_ptr();
  return id;
}

std::uint32_t Universe::label_of(std::uint32_t op, const std::string& io_name, std::uint32_t name) {
  // The original's label projection: list construction binds its elements under one label.
  if (m_names[op] == "__make_list__" && io_name.rfind("elts_", 0) == 0) return name_id("elts");
  return name;
}

Elem Universe::intern_call(const store::CallRecord& record) {
  const auto hid_of = [this](Elem e) -> const Id& { return m_calls[e].hid; };
  if (const Elem found = m_call_index.find(record.hid, hid_of); found != no_elem) return found;
  const auto id = static_cast<Elem>(m_calls.size());
  CallRow row;
  row.hid = record.hid;
  row.cid = record.cid;
  row.op = name_id(record.op);
  row.version = record.version;
  row.created_ms = record.created_ms;
  Io* ios = io_room(record.inputs.size() + record.outputs.size());
  std::size_t n = 0;
  for (const auto& in : record.inputs) {
    const Elem r = intern_ref(in.hid, in.cid);
    if (in.transient) m_ref_raw[r] = static_cast<char>(m_ref_raw[r] | transient_bit);
    const auto name = name_id(in.name);
    ios[n++] = {name, label_of(row.op, in.name, name), r};
    add_consumer(r, id);
  }
  for (const auto& out : record.outputs) {
    const Elem r = intern_ref(out.hid, out.cid);
    if (out.transient) m_ref_raw[r] = static_cast<char>(m_ref_raw[r] | transient_bit);
    const auto name = name_id(out.name);
    ios[n++] = {name, label_of(row.op, out.name, name), r};
    m_ref_creator[r] = id;
  }
  row.inputs = std::span<const Io>(ios, record.inputs.size());
  row.outputs = std::span<const Io>(ios + record.inputs.size(), record.outputs.size());
  m_calls.push_back(row);
  m_call_index.insert(record.hid, id, hid_of);
  return id;
}

std::vector<Elem> Universe::load_calls_of(std::string_view op, std::optional<std::uint32_t> version) {
  std::vector<Elem> out;
  m_core->call_records_of(op, version, [&](const store::CallRecord& r) { out.push_back(intern_call(r)); });
  return out;
}

Elem Universe::find_ref(const Id& hid) const {
  return m_ref_index.find(hid, [this](Elem e) -> const Id& { return m_ref_hid[e]; });
}

Elem Universe::find_call(const Id& hid) const {
  return m_call_index.find(hid, [this](Elem e) -> const Id& { return m_calls[e].hid; });
}

AnyRef Universe::ref(Elem r) {
  if (!m_ref_state[r]) m_ref_state[r] = StorageCore::lazy_ref(m_core, m_ref_hid[r], m_ref_cid[r], transient(r));
  return AnyRef(m_ref_state[r]);
}

CallInfo Universe::call_info(Elem c) {
  const CallRow& row = m_calls[c];
  store::CallRecord rec;
  rec.hid = row.hid;
  rec.cid = row.cid;
  rec.op = m_names[row.op];
  rec.version = row.version;
  rec.created_ms = row.created_ms;
  for (const auto& in : row.inputs)
    rec.inputs.push_back({m_names[in.name], m_ref_hid[in.ref], m_ref_cid[in.ref], transient(in.ref)});
  for (const auto& out : row.outputs)
    rec.outputs.push_back({m_names[out.name], m_ref_hid[out.ref], m_ref_cid[out.ref], transient(out.ref)});
  CallInfo info = m_core->info_of(m_core, rec);
  // Share ref states with the frame (values load once).
  for (auto& [name, ref] : info.inputs) ref = this->ref(find_ref(ref.hid()));
  for (auto& [name, ref] : info.outputs) ref = this->ref(find_ref(ref.hid()));
  return info;
}

const std::vector<std::string>& Universe::op_outputs(std::uint32_t op, std::uint32_t version) {
  const std::uint64_t key = (std::uint64_t{op} << 32) | version;
  auto it = m_op_outputs.find(key);
  if (it == m_op_outputs.end()) it = m_op_outputs.emplace(key, m_core->op_outputs(m_names[op], version)).first;
  return it->second;
}

std::vector<Elem> Universe::load_creators(std::span<const Elem> refs) {
  std::vector<Id> hids;
  hids.reserve(refs.size());
  for (auto r : refs) {
    if (m_ref_creator[r] != no_elem) continue;  // a ref has at most one creator: loaded already
    if (is_raw(r)) continue;                    // a raw input never has one
    hids.push_back(m_ref_hid[r]);
  }
  std::vector<Elem> out;
  for (auto r : refs)
    if (m_ref_creator[r] != no_elem) out.push_back(m_ref_creator[r]);
  if (hids.empty()) return out;
  m_core->creators_of_many(hids, [&](const store::CallRecord& r) { out.push_back(intern_call(r)); });
  return out;
}

std::vector<Elem> Universe::load_consumers(std::span<const Elem> refs, std::vector<char>* resolved) {
  std::vector<Id> hids;
  hids.reserve(refs.size());
  std::vector<Elem> out;
  for (auto r : refs) {
    if (resolved != nullptr) {
      if (resolved->size() <= r) resolved->resize(m_ref_hid.size(), 0);
      if ((*resolved)[r]) {  // asked already: the consumers are loaded
        for (auto c : consumers(r)) out.push_back(c);
        continue;
      }
      (*resolved)[r] = 1;
    }
    hids.push_back(m_ref_hid[r]);
  }
  if (hids.empty()) return out;
  m_core->consumers_of_many(hids, [&](const store::CallRecord& r) { out.push_back(intern_call(r)); });
  return out;
}

std::vector<std::optional<std::vector<std::byte>>> Universe::value_bytes(std::span<const Elem> refs) {
  std::vector<std::optional<std::vector<std::byte>>> out(refs.size());
  std::vector<Id> cids;
  std::vector<std::size_t> pos;
  for (std::size_t i = 0; i < refs.size(); ++i) {
    const auto& state = m_ref_state[refs[i]];
    if (state) {
      std::lock_guard lock(state->mutex);
      if (state->value && state->encode) {
        out[i] = state->encode(state->value.get());
        continue;
      }
    }
    cids.push_back(m_ref_cid[refs[i]]);
    pos.push_back(i);
  }
  if (cids.empty()) return out;
  auto loaded = m_core->load_values(cids);
  for (std::size_t j = 0; j < loaded.size(); ++j) {
    // A transparent collection shows its elements' values, not its shape.
    if (loaded[j] && detail::is_shape(*loaded[j])) loaded[j] = detail::materialize(*m_core, std::move(*loaded[j]));
    out[pos[j]] = std::move(loaded[j]);
  }
  return out;
}

void normalize(ElemSet& s) {
  std::sort(s.begin(), s.end());
  s.erase(std::unique(s.begin(), s.end()), s.end());
}

ElemSet set_union(const ElemSet& a, const ElemSet& b) {
  ElemSet out;
  out.reserve(a.size() + b.size());
  std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

ElemSet set_intersection(const ElemSet& a, const ElemSet& b) {
  ElemSet out;
  std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

ElemSet set_difference(const ElemSet& a, const ElemSet& b) {
  ElemSet out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

bool is_subset(const ElemSet& a, const ElemSet& b) { return std::includes(b.begin(), b.end(), a.begin(), a.end()); }

}  // namespace mandala::detail
