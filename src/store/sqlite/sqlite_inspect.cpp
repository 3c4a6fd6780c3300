// The SQLite store's inspection: info, per-op summaries, pages of calls, id ranges, stats, integrity, code versions.

#include "store/call_io.hpp"
#include "store/sqlite/integrity.hpp"
#include "store/sqlite/sqlite_store_impl.hpp"
#include "store/sqlite/version_tables.hpp"

namespace mandala::store::sqlite_impl {

StorageInfo SqliteStore::info() {
  return reading([&]() -> StorageInfo {
    StorageInfo info;
    {
      sql::Statement st(m_db.get(), "SELECT key, value FROM meta WHERE key IN ('schema_version', 'created_ms')");
      while (st.step()) {
        const auto key = st.text(0);
        const auto value = st.text(1);
        try {
          if (key == "schema_version") info.schema_version = std::stoi(value);
          else info.created = std::chrono::system_clock::time_point(std::chrono::milliseconds(std::stoll(value)));
        } catch (const std::exception&) {
          throw Error(Errc::corrupt_store, "the meta table holds an unreadable " + key + ": '" + value + "'");
        }
      }
    }
    info.stats = stats();
    info.ops = op_summaries();
    if (!m_path.empty()) {
      std::error_code ec;
      for (const char* suffix : {"", "-wal"}) {
        const auto size = fs::file_size(fs::path(m_path.string() + suffix), ec);
        if (!ec) info.database_bytes += size;
      }
    }
    if (m_blobs) {
      std::error_code ec;
      for (const auto& cid : m_blobs->list()) {
        const auto size = fs::file_size(m_blobs->path_of(cid), ec);
        if (!ec) info.blob_file_bytes += size;
      }
    }
    return info;
  });
}

std::vector<OpSummary> SqliteStore::op_summaries() {
  return reading([&]() -> std::vector<OpSummary> {
    const auto counts = current_counts();
    std::vector<OpSummary> out;
    sql::Statement st(m_db.get(), "SELECT id, name, version, inputs, outputs FROM ops ORDER BY name, version");
    while (st.step()) {
      OpSummary op{st.text(1),
                   static_cast<std::uint32_t>(st.int64(2)),
                   parse_list(st.text(3), where()),
                   parse_list(st.text(4), where()),
                   0,
                   0,
                   std::nullopt};
      if (auto c = counts.ops.find(st.int64(0)); c != counts.ops.end()) {
        op.calls = c->second.calls;
        op.output_bytes = c->second.output_bytes;
        if (c->second.calls > 0 && c->second.last_created)
          op.last_call = std::chrono::system_clock::time_point(std::chrono::milliseconds(*c->second.last_created));
      }
      out.push_back(std::move(op));
    }
    return out;
  });
}

counters::Counts SqliteStore::current_counts() {
  return m_counted_by_scan ? counters::recount(m_db.get()) : counters::load(m_db.get());
}

std::vector<CallRecord> SqliteStore::calls_page(std::string_view op, const CallQuery& query) {
  return reading([&]() -> std::vector<CallRecord> {
    std::string text = call_columns() + "WHERE op_id IN (SELECT id FROM ops WHERE name = ?1";
    text += query.version ? " AND version = ?2)" : ")";
    text += query.newest_first ? " ORDER BY id DESC" : " ORDER BY id";
    text += " LIMIT ?3 OFFSET ?4";
    sql::Statement st(m_db.get(), text);
    st.bind(1, op);
    if (query.version) st.bind(2, std::int64_t{*query.version});
    const auto clamp = [](std::size_t n) {
      return n > static_cast<std::size_t>(INT64_MAX) ? INT64_MAX : static_cast<std::int64_t>(n);
    };
    st.bind(3, clamp(query.limit)).bind(4, clamp(query.offset));
    std::vector<CallRecord> out;
    while (st.step()) out.push_back(record_from(st));
    return out;
  });
}

std::vector<Id> SqliteStore::call_hids_between(const Id& lo, const Id& hi, std::size_t limit) {
  return reading([&]() -> std::vector<Id> {
    sql::Statement st(m_db.get(),
                      "SELECT DISTINCT hid FROM calls WHERE substr(hid, 1, 8) BETWEEN substr(?1, 1, 8) AND "
                      "substr(?2, 1, 8) AND hid BETWEEN ?1 AND ?2 ORDER BY hid LIMIT ?3");
    st.bind(1, lo).bind(2, hi).bind(3, static_cast<std::int64_t>(limit));
    std::vector<Id> out;
    while (st.step()) out.push_back(st.id(0));
    return out;
  });
}

std::vector<Id> SqliteStore::ref_hids_between(const Id& lo, const Id& hi, std::size_t limit) {
  return reading([&]() -> std::vector<Id> {
    // Keys are the hids' first 8 bytes as signed integers: for a prefix of at least one hex
    // digit, lo and hi share the sign bit, so the key range is the hid range.
    sql::Statement st(m_db.get(), "SELECT DISTINCT call_id FROM call_refs WHERE key BETWEEN ?1 AND ?2");
    st.bind(1, call_io::ref_key(lo)).bind(2, call_io::ref_key(hi));
    std::vector<std::int64_t> ids;
    while (st.step()) ids.push_back(st.int64(0));
    std::set<Id> found;
    for (const auto& rec : load_calls(ids))
      for (const auto* list : {&rec.inputs, &rec.outputs})
        for (const auto& r : *list)
          if (r.hid >= lo && r.hid <= hi) found.insert(r.hid);
    std::vector<Id> out(found.begin(), found.end());
    if (out.size() > limit) out.resize(limit);
    return out;
  });
}

StorageStats SqliteStore::stats() {
  return reading([&]() -> StorageStats {
    const auto counts = current_counts();
    StorageStats s;
    sql::Statement ops(m_db.get(), "SELECT COUNT(*) FROM ops");
    if (ops.step()) s.ops = static_cast<std::uint64_t>(ops.int64(0));
    for (const auto& [id, o] : counts.ops) s.calls += o.calls;
    s.values = counts.totals.values;
    s.refs = counts.totals.refs;
    s.blob_files = counts.totals.blob_values;
    s.value_bytes = counts.totals.value_bytes;
    return s;
  });
}

IntegrityReport SqliteStore::check_integrity(const ProgressCallback& progress) {
  end_read();
  try {
    auto report = sql::retry_while_busy(
        m_backoff, [&] { return store::check_integrity(m_db.get(), m_blobs ? &*m_blobs : nullptr, progress); },
        [&] { abort_transaction(); });
    if (!report.ok()) throw_if_written_meanwhile();
    return report;
  } catch (const Error& e) {
    if (e.code() == Errc::corrupt_store) throw_if_written_meanwhile();
    throw;
  }
}

std::vector<CommitRecord> SqliteStore::commits_of(std::string_view component) {
  return reading([&] { return versions::commits_of(m_db.get(), component); });
}

std::optional<Id> SqliteStore::head_of(std::string_view component) {
  return reading([&] { return versions::head_of(m_db.get(), component); });
}

std::vector<VersionRecord> SqliteStore::versions_of(std::string_view op) {
  return reading([&] { return versions::versions_of(m_db.get(), op); });
}

void SqliteStore::write_versioning(const VersioningWrite& changes) {
  if (changes.empty()) return;
  writing([&] {
    sql::Transaction tx(m_db.get());
    versions::write(m_db.get(), changes);
    tx.commit();
  });
}

std::vector<std::pair<Id, Id>> SqliteStore::call_versions_of(std::string_view op) {
  return reading([&] { return versions::call_versions_of(m_db.get(), op, m_legacy_call_versions); });
}

std::vector<NameRecord> SqliteStore::name_records() {
  if (m_without_renames) return {};
  return reading([&] {
    std::vector<NameRecord> out;
    sql::Statement st(m_db.get(), "SELECT kind, op, identity, name FROM renames");
    while (st.step()) out.push_back({static_cast<NameKind>(st.int64(0)), st.text(1), st.text(2), st.text(3)});
    return out;
  });
}

void SqliteStore::write_names(std::span<const NameRecord> records) {
  if (records.empty()) return;
  writing([&] {
    sql::Transaction tx(m_db.get());
    sql::Statement st(m_db.get(),
                      "INSERT INTO renames(kind, op, identity, name) VALUES(?1, ?2, ?3, ?4) "
                      "ON CONFLICT(kind, op, identity) DO UPDATE SET name = excluded.name");
    for (const auto& r : records)
      st.bind(1, static_cast<std::int64_t>(r.kind)).bind(2, r.op).bind(3, r.identity).bind(4, r.name).run();
    tx.commit();
  });
}

}  // namespace mandala::store::sqlite_impl
