// The SQLite store's removals: dropping calls (and what depends on them) and cleaning up unused values.

#include <algorithm>
#include "store/call_io.hpp"
#include "store/sqlite/sqlite_store_impl.hpp"

namespace mandala::store::sqlite_impl {

std::size_t SqliteStore::drop_calls(std::span<const Id> call_hids, bool dependents) {
  return writing([&] { return drop_calls_once(call_hids, dependents); });
}

std::size_t SqliteStore::drop_calls_once(std::span<const Id> call_hids, bool dependents) {
  sql::Transaction tx(m_db.get());
  const auto todo = doomed_calls(call_hids, dependents);
  auto& del_ref = stmt(m_del_ref, "DELETE FROM call_refs WHERE key = ?1 AND dir = ?2 AND call_id = ?3");
  auto& del_call = stmt(m_del_call, "DELETE FROM calls WHERE id = ?1");
  std::size_t removed = 0;
  for (const auto& [id, rec] : todo) {
    for (const auto& r : rec.inputs)
      del_ref.bind(1, call_io::ref_key(r.hid)).bind(2, std::int64_t{dir_in}).bind(3, id).run();
    for (const auto& r : rec.outputs)
      del_ref.bind(1, call_io::ref_key(r.hid)).bind(2, std::int64_t{dir_out}).bind(3, id).run();
    del_call.bind(1, id).run();
    removed += static_cast<std::size_t>(sqlite3_changes(m_db.get()));
  }
  uncount_dropped(todo);
  tx.commit();
  return removed;
}

void SqliteStore::uncount_dropped(const std::vector<std::pair<std::int64_t, CallRecord>>& dropped) {
  struct Op {
    std::int64_t calls = 0;
    std::int64_t output_bytes = 0;
  };
  std::map<std::int64_t, Op> ops;
  std::unordered_map<Id, std::int64_t> sizes;
  std::unordered_map<Id, bool> refs;  // each ref of the dropped calls: whether one of them output it
  for (const auto& [id, rec] : dropped) {
    auto& o = ops[op_id(rec.op, rec.version)];
    ++o.calls;
    for (const auto& r : rec.outputs) {
      auto size = sizes.find(r.cid);
      if (size == sizes.end()) size = sizes.emplace(r.cid, stored_size(r.cid)).first;
      o.output_bytes += size->second;
      refs[r.hid] = true;
    }
    for (const auto& r : rec.inputs) refs.try_emplace(r.hid, false);
  }
  std::int64_t refs_removed = 0;
  bool detached = false;
  for (const auto& [hid, output] : refs) {
    if (!ref_used(hid)) ++refs_removed;
    else if (output) detached = true;  // its consumers stay without it
  }
  auto& op_st = stmt(m_add_to_op, counters::add_to_op_sql);
  sql::Statement last(m_db.get(), counters::reset_last_created_sql);
  for (const auto& [id, o] : ops) {
    op_st.bind(1, id).bind(2, -o.calls).bind(3, -o.output_bytes).bind_null(4).run();
    last.bind(1, id).run();
  }
  stmt(m_add_to_totals, counters::add_to_totals_sql)
      .bind(1, std::int64_t{0})
      .bind(2, std::int64_t{0})
      .bind(3, std::int64_t{0})
      .bind(4, -refs_removed)
      .bind(5, std::int64_t{detached ? 1 : 0})
      .run();
}

std::vector<CallRecord> SqliteStore::calls_to_drop(std::span<const Id> call_hids, bool dependents) {
  return reading([&] { return by_storage_id(doomed_calls(call_hids, dependents)); });
}

std::vector<std::pair<std::int64_t, CallRecord>> SqliteStore::doomed_calls(std::span<const Id> call_hids,
                                                                           bool dependents) {
  std::unordered_set<std::int64_t> doomed;
  std::vector<std::pair<std::int64_t, CallRecord>> todo;
  auto take = [&](std::vector<std::int64_t> ids) {
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    std::erase_if(ids, [&](auto id) { return doomed.contains(id); });
    for (auto& [id, rec] : load_calls_with_ids(ids))
      if (doomed.insert(id).second) todo.emplace_back(id, std::move(rec));
  };
  {
    std::vector<std::int64_t> roots;
    const std::unordered_set<Id> wanted(call_hids.begin(), call_hids.end());
    for_chunks(
        call_hids, "SELECT id, hid FROM calls WHERE substr(hid, 1, 8) IN (",
        [&](sql::Statement& st) {
          if (wanted.contains(st.id(1))) roots.push_back(st.int64(0));
        },
        /*prefix_keys=*/true);
    std::sort(roots.begin(), roots.end());
    roots.erase(std::unique(roots.begin(), roots.end()), roots.end());
    take(std::move(roots));
  }
  for (std::size_t next = 0; dependents && next < todo.size(); ++next) {
    const auto [id, rec] = todo[next];  // a copy: take() below may grow `todo`
    {
      std::vector<std::int64_t> consumers;
      for (const auto& out : rec.outputs)
        for (auto c : ref_call_ids(out.hid, dir_in))
          if (!doomed.contains(c)) consumers.push_back(c);
      std::sort(consumers.begin(), consumers.end());
      consumers.erase(std::unique(consumers.begin(), consumers.end()), consumers.end());
      // Keep only real consumers (a key is a prefix of the hid).
      std::vector<std::int64_t> real;
      for (auto& [cid, c] : load_calls_with_ids(consumers))
        for (const auto& out : rec.outputs)
          if (has_ref(c.inputs, out.hid)) {
            real.push_back(cid);
            break;
          }
      take(std::move(real));
    }
  }
  return todo;
}

CleanupReport SqliteStore::cleanup() {
  return writing([&] { return cleanup_once(); });
}

CleanupReport SqliteStore::cleanup_once() {
  CleanupReport report;
  sql::Transaction tx(m_db.get());
  std::vector<Id> doomed_files;
  {
    sql::Statement del(m_db.get(), "DELETE FROM \"values\" WHERE cid = ?1");
    unreferenced_values(report, doomed_files);
    for (const auto& cid : report.values) del.bind(1, cid).run();
  }
  // A whole pass over the data anyway: the counters are counted afresh (this also repairs
  // counts that a change made behind the library's back left wrong, and clears `detached`
  // when no input lacks its creator any more).
  counters::replace(m_db.get(), counters::recount(m_db.get()));
  if (m_blobs) {
    // Under the write lock every writer has committed or given up, so a file without a row
    // (or a temporary) is a leftover of a failed or killed flush. Files go before the commit: if
    // it fails, the kept rows are of values no call uses, and the next write of such a value
    // writes its file again.
    for (const auto& cid : doomed_blob_files(doomed_files))
      if (m_blobs->remove(cid)) ++report.blob_files_removed;
    m_blobs->remove_temporaries(std::chrono::seconds(0));
  }
  tx.commit();
  return report;
}

CleanupReport SqliteStore::cleanup_preview() {
  return reading([&]() -> CleanupReport {
    CleanupReport report;
    std::vector<Id> in_files;
    unreferenced_values(report, in_files);
    if (m_blobs) {
      std::error_code ec;
      for (const auto& cid : doomed_blob_files(in_files))
        if (fs::exists(m_blobs->path_of(cid), ec)) ++report.blob_files_removed;
    }
    return report;
  });
}

void SqliteStore::unreferenced_values(CleanupReport& report, std::vector<Id>& in_files) {
  std::unordered_set<Id> used;  // every cid some call's io column names
  {
    sql::Statement all(m_db.get(), call_columns());
    while (all.step()) {
      const auto rec = record_from(all);
      for (const auto* list : {&rec.inputs, &rec.outputs})
        for (const auto& r : *list) used.insert(r.cid);
    }
  }
  sql::Statement scan(m_db.get(), "SELECT cid, size, data IS NULL FROM \"values\"");
  while (scan.step()) {
    const Id cid = scan.id(0);
    if (used.contains(cid)) continue;
    report.values.push_back(cid);
    ++report.values_removed;
    report.bytes_freed += static_cast<std::uint64_t>(scan.int64(1));
    if (scan.int64(2) != 0) in_files.push_back(cid);
  }
  std::sort(report.values.begin(), report.values.end());
}

std::set<Id> SqliteStore::doomed_blob_files(const std::vector<Id>& unreferenced) {
  std::set<Id> doomed(unreferenced.begin(), unreferenced.end());
  sql::Statement row(m_db.get(), "SELECT 1 FROM \"values\" WHERE cid = ?1");
  for (const auto& cid : m_blobs->list()) {
    row.bind(1, cid);
    if (!row.step()) doomed.insert(cid);
    row.reset();
  }
  return doomed;
}

}  // namespace mandala::store::sqlite_impl
