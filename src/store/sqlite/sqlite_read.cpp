// The SQLite store's reads: calls by id, content, ref and op, values, and the read snapshot.

#include <bit>
#include <functional>

#include <nlohmann/json.hpp>

#include "codec/hash.hpp"
#include "store/call_io.hpp"
#include "store/sqlite/sqlite_store_impl.hpp"

namespace mandala::store::sqlite_impl {

std::vector<std::string> parse_list(const std::string& text, const std::string& store) {
  try {
    return nlohmann::json::parse(text).get<std::vector<std::string>>();
  } catch (const std::exception&) {
    throw Error(Errc::corrupt_store, store + ": the ops table holds an unreadable name list: " + text.substr(0, 80) +
                                         "; the store is damaged: restore it from a backup");
  }
}

std::optional<CallRecord> SqliteStore::call_by_hid(const Id& hid) {
  return reading([&]() -> std::optional<CallRecord> { return one_call(call_by_hid_statement().bind(1, hid)); });
}

std::optional<CallRecord> SqliteStore::call_by_content(const Id& cid, const Id* raw_hid) {
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

std::optional<std::vector<std::byte>> SqliteStore::value(const Id& cid) {
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

bool SqliteStore::has_value(const Id& cid) {
  // A blob value whose file is gone (an interrupted cleanup) counts as absent, so the next
  // write of it brings the file back.
  return reading([&] { return value_readable(cid); });
}

std::vector<Id> SqliteStore::absent_values(std::span<const Id> cids) {
  return reading([&] {
    std::vector<Id> out;
    std::unordered_set<Id> seen;
    for (const auto& cid : cids)
      if (seen.insert(cid).second && !value_readable(cid)) out.push_back(cid);
    return out;
  });
}

std::optional<OpRecord> SqliteStore::op(std::string_view name, std::uint32_t version) {
  return reading([&] { return op_locked(name, version); });
}

std::optional<OpRecord> SqliteStore::op_locked(std::string_view name, std::uint32_t version) {
  auto& st = stmt(m_op, "SELECT inputs, outputs FROM ops WHERE name = ?1 AND version = ?2");
  st.bind(1, name).bind(2, std::int64_t{version});
  if (!st.step()) return std::nullopt;
  OpRecord r{std::string(name), version, parse_list(st.text(0), where()), parse_list(st.text(1), where())};
  st.reset();
  return r;
}

std::optional<Id> SqliteStore::ref_cid(const Id& hid) {
  return reading([&]() -> std::optional<Id> {
    for (auto& rec : load_calls(ref_call_ids(hid, std::nullopt)))
      for (const auto* list : {&rec.outputs, &rec.inputs})
        for (const auto& r : *list)
          if (r.hid == hid) return r.cid;
    return std::nullopt;
  });
}

std::optional<CallRecord> SqliteStore::creator_of(const Id& ref_hid) {
  return reading([&]() -> std::optional<CallRecord> {
    for (auto& rec : load_calls(ref_call_ids(ref_hid, dir_out)))
      if (has_ref(rec.outputs, ref_hid)) return std::move(rec);
    return std::nullopt;
  });
}

std::vector<CallRecord> SqliteStore::consumers_of(const Id& ref_hid) {
  return reading([&]() -> std::vector<CallRecord> {
    auto calls = load_calls(ref_call_ids(ref_hid, dir_in));
    std::erase_if(calls, [&](const CallRecord& r) { return !has_ref(r.inputs, ref_hid); });
    return calls;
  });
}

void SqliteStore::calls_of(std::string_view op, std::optional<std::uint32_t> version, const CallSink& sink) {
  reading([&] { calls_of_locked(op, version, sink); });
}

void SqliteStore::creators_of_many(std::span<const Id> ref_hids, const CallSink& sink) {
  reading([&] { refs_many(ref_hids, dir_out, sink); });
}

void SqliteStore::consumers_of_many(std::span<const Id> ref_hids, const CallSink& sink) {
  reading([&] { refs_many(ref_hids, dir_in, sink); });
}

std::vector<CallRecord> SqliteStore::calls_by_hids(std::span<const Id> call_hids) {
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

std::vector<std::optional<std::vector<std::byte>>> SqliteStore::values_many(std::span<const Id> cids) {
  return reading([&] {
    return values_in_order(cids, [&](std::span<const Id> distinct, const auto& put) {
      std::vector<Id> in_files;
      for_chunks(distinct, "SELECT cid, data IS NULL, data FROM \"values\" WHERE cid IN (", [&](sql::Statement& st) {
        const Id cid = st.id(0);
        if (st.int64(1) != 0) {
          in_files.push_back(cid);
          return;
        }
        put(cid, verified(cid, st.blob(2)));
      });
      for (const auto& cid : in_files) put(cid, value(cid));
    });
  });
}

bool SqliteStore::ref_used(const Id& hid) {
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

void SqliteStore::end_read() {
  if (!m_reading) return;
  m_reading = false;
  if (sqlite3_get_autocommit(m_db.get()) == 0) sql::exec(m_db.get(), "COMMIT");
}

bool SqliteStore::value_readable(const Id& cid) {
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

void SqliteStore::read_record(const sql::Statement& st, CallRecord& r) {
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

std::optional<Id> SqliteStore::semantic_of(const sql::Statement& st, int col) {
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

void SqliteStore::calls_of_locked(std::string_view op, std::optional<std::uint32_t> version, const CallSink& sink) {
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

std::vector<std::int64_t> SqliteStore::ref_call_ids(const Id& hid, std::optional<int> dir) {
  auto& st = dir ? stmt(m_ref_calls_dir, "SELECT call_id FROM call_refs WHERE key = ?1 AND dir = ?2")
                 : stmt(m_ref_calls, "SELECT DISTINCT call_id FROM call_refs WHERE key = ?1 ORDER BY call_id");
  st.bind(1, call_io::ref_key(hid));
  if (dir) st.bind(2, std::int64_t{*dir});
  std::vector<std::int64_t> out;
  while (st.step()) out.push_back(st.int64(0));
  st.reset();
  return out;
}

void SqliteStore::refs_many(std::span<const Id> hids, int dir, const CallSink& sink) {
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

std::vector<CallRecord> SqliteStore::in_storage_order(std::vector<std::int64_t> ids, std::vector<CallRecord> found) {
  std::vector<std::size_t> order(ids.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](auto a, auto b) { return ids[a] < ids[b]; });
  std::vector<CallRecord> out;
  out.reserve(found.size());
  for (std::size_t k = 0; k < order.size(); ++k)
    if (k == 0 || ids[order[k]] != ids[order[k - 1]]) out.push_back(std::move(found[order[k]]));
  return out;
}

std::vector<std::byte> SqliteStore::verified(const Id& cid, std::vector<std::byte> bytes) const {
  if (codec::content_id(bytes) != cid)
    throw Error(Errc::corrupt_store, where() + ": value " + cid.hex() +
                                         " is damaged in the database (its bytes do not match its id); restore "
                                         "the store from a backup or drop the calls that use it");
  return bytes;
}

void SqliteStore::load_ops() {
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

const OpRow& SqliteStore::op_row(std::int64_t id) {
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

sql::Statement& SqliteStore::chunk_statement(std::string_view prefix, std::size_t n, std::string_view suffix) {
  auto& slot = m_chunk_statements[std::make_pair(std::string(prefix) + std::string(suffix), n)];
  if (!slot) {
    std::string text(prefix);
    for (std::size_t i = 0; i < n; ++i) text += i ? ",?" : "?";
    text += suffix;
    slot = std::make_unique<sql::Statement>(m_db.get(), text);
  }
  return *slot;
}

void SqliteStore::visit_calls(std::span<const std::int64_t> ids, const CallSink& sink) {
  CallRecord rec;
  for_int_chunks(
      ids, call_columns() + "WHERE id IN (",
      [&](sql::Statement& st) {
        read_record(st, rec);
        sink(rec);
      },
      ") ORDER BY id");
}

std::vector<std::pair<std::int64_t, CallRecord>> SqliteStore::load_calls_with_ids(
    const std::vector<std::int64_t>& ids) {
  std::vector<std::pair<std::int64_t, CallRecord>> out;
  out.reserve(ids.size());
  for_int_chunks(ids, call_columns() + "WHERE id IN (",
                 [&](sql::Statement& st) { out.emplace_back(st.int64(0), record_from(st)); });
  // SQLite steps through an IN list in order: sorted ids come back sorted
  const auto by_id = [](const auto& a, const auto& b) { return a.first < b.first; };
  if (!std::is_sorted(out.begin(), out.end(), by_id)) std::sort(out.begin(), out.end(), by_id);
  return out;
}

std::vector<CallRecord> SqliteStore::load_calls(const std::vector<std::int64_t>& ids) {
  std::vector<CallRecord> out;
  out.reserve(ids.size());
  for (auto& [id, rec] : load_calls_with_ids(ids)) out.push_back(std::move(rec));
  return out;
}

}  // namespace mandala::store::sqlite_impl
