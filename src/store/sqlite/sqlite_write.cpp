// The SQLite store's writes: batches of ops, values and calls in one transaction, with the counts they add.

#include <stdlib.h>  // mkdtemp

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <nlohmann/json.hpp>

#include "codec/hash.hpp"
#include "store/call_io.hpp"
#include "store/sqlite/sqlite_store_impl.hpp"
#include "store/sqlite/version_tables.hpp"

namespace mandala::store::sqlite_impl {
namespace {

std::string json_list(const std::vector<std::string>& names) { return nlohmann::json(names).dump(); }

}  // namespace

void SqliteStore::write(const WriteBatch& batch) {
  if (batch.empty()) return;
  writing([&] { write_once(batch); });
}

void SqliteStore::write_once(const WriteBatch& batch) {
  sql::Transaction tx(m_db.get());
  // Blob files first, and inside the write lock: a crash before the commit leaves at most an
  // unreferenced file (removed by cleanup), never a row without its file; and cleanup(), which
  // removes files no row refers to under the same lock, never sees a file whose row is about to
  // be committed. A value whose file is missing (a cleanup interrupted between removing files
  // and its commit) gets it back here.
  for (const auto& v : batch.values)
    if (is_blob(v.bytes)) blobs_for_writing(v.bytes.size()).write(v.cid, v.bytes);

  try {
    // Under the write lock: no other connection commits between this look and the commit.
    look();
    write_locked(batch, m_generation == batch.generation);
    tx.commit();
  } catch (...) {
    m_ops_by_id.clear();  // ids of ops and semantic versions inserted by the rolled-back
    m_op_ids.clear();     // transaction are void
    m_semantic_numbers.clear();
    m_semantics_by_number.clear();
    ++m_generation;  // what the writer learnt is no longer vouched for
    throw;
  }
}

std::uint64_t SqliteStore::generation() {
  if (m_reading) return m_generation;
  return reading([&] { return m_generation; });
}

std::int64_t SqliteStore::data_version() {
  auto& st = stmt(m_data_version, "PRAGMA data_version");
  const std::int64_t v = st.step() ? st.int64(0) : -1;
  st.reset();
  return v;
}

void SqliteStore::look() {
  const std::int64_t v = data_version();
  if (v == m_seen_version) return;
  m_seen_version = v;
  ++m_generation;
}

void SqliteStore::write_locked(const WriteBatch& batch, bool quiet) {
  write_ops(batch.ops);

  // The counters change with the data (store/sqlite/counters.hpp): added up here, written once.
  BatchCounts counts;
  counts.sizes.reserve(batch.values.size());
  counts.new_values.reserve(batch.values.size());
  counts.refs.reserve(batch.calls.size() * 2);

  // Values and ref keys go in key order: ids are uniformly distributed, and in key order
  // consecutive inserts walk the same B-tree pages instead of a random page each.
  std::vector<const ValueRecord*> values;
  values.reserve(batch.values.size());
  for (const auto& v : batch.values) values.push_back(&v);
  std::sort(values.begin(), values.end(), [](const auto* a, const auto* b) { return a->cid < b->cid; });
  insert_rows<const ValueRecord*>(
      "INSERT OR IGNORE INTO \"values\"(cid, size, data) VALUES", 3, values,
      [&](sql::Statement& st, int at, const ValueRecord* v) {
        st.bind(at, v->cid).bind(at + 1, static_cast<std::int64_t>(v->bytes.size()));
        if (is_blob(v->bytes)) st.bind_null(at + 2);
        else st.bind_blob(at + 2, v->bytes);
      },
      " RETURNING cid", [&](const sql::Statement& inserted) { counts.new_values.insert(inserted.id(0)); });
  for (const auto* v : values) {
    const auto size = static_cast<std::int64_t>(v->bytes.size());
    counts.sizes.emplace(v->cid, size);
    if (!counts.new_values.contains(v->cid)) continue;
    ++counts.values;
    counts.value_bytes += size;
    if (is_blob(v->bytes)) ++counts.blob_values;
  }

  const bool check_stored = !(batch.calls_looked_up && quiet);
  auto& exists = stmt(m_call_exists, "SELECT 1 FROM calls WHERE substr(hid, 1, 8) = substr(?1, 1, 8) AND hid = ?1");
  // The calls to insert (those not stored already: by another process, or earlier).
  std::vector<const CallRecord*> fresh;
  fresh.reserve(batch.calls.size());
  for (const CallRecord& c : batch.calls) {
    if (check_stored) {
      exists.bind(1, c.hid);
      const bool stored = exists.step();
      exists.reset();
      if (stored) continue;
    }
    fresh.push_back(&c);
  }
  if (!quiet) require_values(fresh, counts.sizes);
  auto& put_call =
      stmt(m_put_call, "INSERT INTO calls(hid, cid, op_id, created, io, semantic) VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
  std::vector<std::byte> io;
  struct RefRow {
    std::int64_t key;
    std::int64_t dir;
    std::int64_t call_id;
    auto operator<=>(const RefRow&) const = default;
  };
  std::vector<RefRow> refs;
  refs.reserve(batch.calls.size() * 2);
  for (const CallRecord* call : fresh) {
    const CallRecord& c = *call;
    const auto op = op_id(c.op, c.version);
    count_new_call(c, op, counts);  // before its call_refs rows exist
    call_io::encode(c, m_ops_by_id.at(op).outputs, io);
    put_call.bind(1, c.hid);
    // A call of raw inputs is found by content under its hid: its content id is not stored.
    if (call_io::ids_derive_from_raw_inputs(c)) put_call.bind_blob(2, std::span<const std::byte>(io.data(), 0));
    else put_call.bind(2, c.cid);
    put_call.bind(3, op).bind(4, c.created_ms).bind_blob(5, io);
    if (c.semantic) put_call.bind(6, semantic_number(*c.semantic));
    else put_call.bind_null(6);
    put_call.run();
    const std::int64_t id = sqlite3_last_insert_rowid(m_db.get());
    for (const auto& r : c.inputs) refs.push_back({call_io::ref_key(r.hid), dir_in, id});
    for (const auto& r : c.outputs) refs.push_back({call_io::ref_key(r.hid), dir_out, id});
  }
  std::sort(refs.begin(), refs.end());
  insert_rows<RefRow>("INSERT OR IGNORE INTO call_refs(key, dir, call_id) VALUES", 3, refs,
                      [](sql::Statement& st, int at, const RefRow& r) {
                        st.bind(at, r.key).bind(at + 1, r.dir).bind(at + 2, r.call_id);
                      });
  apply(counts);
}

void SqliteStore::write_ops(const std::vector<OpRecord>& ops) {
  auto& insert = stmt(m_insert_op, "INSERT INTO ops(name, version, inputs, outputs) VALUES(?1, ?2, ?3, ?4)");
  auto& widen = stmt(m_widen_op, "UPDATE ops SET inputs = ?3 WHERE name = ?1 AND version = ?2");
  for (const auto& o : ops) {
    const auto stored = op_locked(o.name, o.version);
    if (!stored) {
      // (One expression: the statement binds the texts without copying them.)
      insert.bind(1, o.name)
          .bind(2, std::int64_t{o.version})
          .bind(3, json_list(o.inputs))
          .bind(4, json_list(o.outputs))
          .run();
      continue;
    }
    require_agreement(o, *stored);
    if (o.inputs.size() > stored->inputs.size())
      widen.bind(1, o.name).bind(2, std::int64_t{o.version}).bind(3, json_list(o.inputs)).run();
  }
}

void SqliteStore::require_values(const std::vector<const CallRecord*>& calls,
                                 const std::unordered_map<Id, std::int64_t>& in_batch) {
  std::unordered_map<Id, bool> present;
  std::vector<Id> missing;
  for (const CallRecord* c : calls)
    for (const auto* list : {&c->inputs, &c->outputs})
      for (const auto& r : *list) {
        if (r.transient || in_batch.contains(r.cid)) continue;
        auto [it, fresh] = present.try_emplace(r.cid, false);
        if (!fresh) continue;
        it->second = value_readable(r.cid);
        if (!it->second) missing.push_back(r.cid);
      }
  if (!missing.empty()) throw MissingValues(std::move(missing));
}

std::int64_t SqliteStore::semantic_number(const Id& semantic) {
  if (const auto it = m_semantic_numbers.find(semantic); it != m_semantic_numbers.end()) return it->second;
  const std::int64_t number = versions::semantic_number(m_db.get(), semantic);
  m_semantic_numbers.emplace(semantic, number);
  return number;
}

sql::Statement& SqliteStore::multi_row_statement(std::string_view head, int width, std::size_t rows,
                                                 std::string_view tail) {
  auto& slot = m_chunk_statements[std::make_pair(std::string(head) + std::string(tail), rows)];
  if (!slot) {
    std::string row = "(";
    for (int i = 0; i < width; ++i) row += i ? ",?" : "?";
    row += ")";
    std::string text(head);
    for (std::size_t i = 0; i < rows; ++i) text += (i ? "," : " ") + row;
    text += tail;
    slot = std::make_unique<sql::Statement>(m_db.get(), text);
  }
  return *slot;
}

void SqliteStore::count_new_call(const CallRecord& c, std::int64_t op, BatchCounts& counts) {
  auto& o = counts.ops[op];
  ++o.calls;
  o.last_created = c.created_ms;
  for (const auto& r : c.outputs) {
    // A transient output counts no bytes, stored or not (counters::recount agrees).
    if (!r.transient) {
      auto size = counts.sizes.find(r.cid);
      o.output_bytes += size != counts.sizes.end() ? size->second : stored_size(r.cid);
    }
    if (!counts.refs.insert(r.hid).second) continue;
    if (!counts.detached) counts.detached = stored_detached();
    if (!*counts.detached || !ref_used(r.hid)) ++counts.refs_added;
  }
  for (const auto& r : c.inputs) {
    if (!counts.refs.insert(r.hid).second) continue;
    const bool raw = codec::atom_hid(r.cid) == r.hid;
    if (raw && counts.new_values.contains(r.cid)) {
      ++counts.refs_added;
    } else if (!ref_used(r.hid)) {
      ++counts.refs_added;
      if (!raw) counts.set_detached = true;  // an input whose creator is not stored
    }
  }
}

void SqliteStore::apply(const BatchCounts& counts) {
  auto& op_st = stmt(m_add_to_op, counters::add_to_op_sql);
  for (const auto& [id, o] : counts.ops)
    op_st.bind(1, id).bind(2, o.calls).bind(3, o.output_bytes).bind(4, o.last_created).run();
  if (counts.values != 0 || counts.refs_added != 0 || counts.set_detached)
    stmt(m_add_to_totals, counters::add_to_totals_sql)
        .bind(1, counts.values)
        .bind(2, counts.value_bytes)
        .bind(3, counts.blob_values)
        .bind(4, counts.refs_added)
        .bind(5, std::int64_t{counts.set_detached ? 1 : 0})
        .run();
}

bool SqliteStore::stored_detached() {
  sql::Statement st(m_db.get(), "SELECT detached FROM totals WHERE id = 1");
  return st.step() && st.int64(0) != 0;
}

std::int64_t SqliteStore::stored_size(const Id& cid) {
  auto& st = stmt(m_value_size, "SELECT size FROM \"values\" WHERE cid = ?1");
  st.bind(1, cid);
  const std::int64_t size = st.step() ? st.int64(0) : 0;
  st.reset();
  return size;
}

BlobFiles& SqliteStore::blobs_for_writing(std::size_t value_bytes) {
  if (m_blobs) return *m_blobs;
  const char* env = std::getenv("TMPDIR");
  const bool tmpdir_set = env != nullptr && *env != '\0';
  const fs::path base = tmpdir_set ? fs::path(env) : fs::path("/tmp");
  std::string dir = (base / "mandala-memory-XXXXXX").string();
  if (::mkdtemp(dir.data()) == nullptr) {
    const int err = errno;
    throw Error(Errc::io,
                "cannot create a directory for the large values of an in-memory store in " + base.string() +
                    (tmpdir_set ? " (TMPDIR)" : " (TMPDIR is not set)") + ": " + std::strerror(err) + "; a value of " +
                    std::to_string(value_bytes) + " bytes is above SQLite's length limit (" +
                    std::to_string(m_max_inline_bytes) +
                    " bytes per value), so even an in-memory store keeps it in a file: set TMPDIR to a writable "
                    "directory with room for it, or use a file store; nothing was recorded");
  }
  m_temporary_blob_dir = dir;
  m_blobs.emplace(fs::path(dir), BlobFiles::Sync::no);
  return *m_blobs;
}

std::int64_t SqliteStore::op_id(const std::string& name, std::uint32_t version) {
  auto it = m_op_ids.find({name, version});
  if (it == m_op_ids.end()) {
    load_ops();
    it = m_op_ids.find({name, version});
    if (it == m_op_ids.end())
      throw Error(Errc::corrupt_store, where() + ": op " + name + " version " + std::to_string(version) +
                                           " is not in the ops table, though its calls were written; the store is "
                                           "damaged: restore it from a backup");
  }
  return it->second;
}

}  // namespace mandala::store::sqlite_impl
