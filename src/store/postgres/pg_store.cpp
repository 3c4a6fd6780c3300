// The PostgreSQL backend of Store. Schema and rules: docs/storage-format.md, "PostgreSQL".
//
// Many writers at once: inserts are idempotent (ON CONFLICT DO NOTHING) and go in key order, so
// two flushes of overlapping calls neither fail nor deadlock; counts are kept as per-writer
// deltas (no row every writer updates). Removals (drop_calls, cleanup) exclude writers with a
// transaction-level advisory lock that writers take shared, and count themselves in
// mandala_generation, which writers read to know whether what they looked up still holds.

#include "store/postgres/pg_store.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "codec/hash.hpp"
#include "codec/wire.hpp"
#include "store/call_io.hpp"
#include "store/postgres/pq.hpp"
#include "store/postgres/release_listener.hpp"

namespace mandala::store {
namespace {

// 2: rename records (mandala_renames)
constexpr int schema_version = 3;
constexpr const char* format_name = "mandala-store";
/// Writers take it shared, removals exclusive (pg_advisory_xact_lock: released at the end of
/// the transaction, also when the connection dies). Advisory locks are per database.
constexpr std::int64_t removal_lock = 0x4D4E444C0001;  // "MNDL" 1
/// Taken while a process creates the tables of an empty database.
constexpr std::int64_t creation_lock = 0x4D4E444C0002;
/// Values longer than this are kept in mandala_value_chunks, in pieces of this size (a bytea
/// holds at most 1 GB; smaller pieces bound what one row costs the server).
constexpr std::size_t chunk_bytes = std::size_t{64} << 20;
/// Rows per bulk statement, and bytes of values per bulk insert.
constexpr std::size_t rows_per_statement = 5000;
constexpr std::size_t bytes_per_statement = std::size_t{32} << 20;

constexpr std::int16_t dir_in = 0;
constexpr std::int16_t dir_out = 1;

constexpr const char* schema_sql = R"sql(
CREATE TABLE mandala_meta(key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE mandala_ops(
  id serial PRIMARY KEY,
  name text NOT NULL,
  version integer NOT NULL,
  inputs text NOT NULL,
  outputs text NOT NULL,
  UNIQUE(name, version));
CREATE TABLE mandala_values(
  cid bytea PRIMARY KEY,
  size bigint NOT NULL,
  data bytea,
  chunks integer NOT NULL DEFAULT 0);
ALTER TABLE mandala_values ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE TABLE mandala_value_chunks(
  cid bytea NOT NULL,
  n integer NOT NULL,
  data bytea NOT NULL,
  PRIMARY KEY(cid, n));
ALTER TABLE mandala_value_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE TABLE mandala_calls(
  id bigserial PRIMARY KEY,
  hid bytea NOT NULL UNIQUE,
  cid bytea NOT NULL,
  op_id integer NOT NULL REFERENCES mandala_ops(id),
  created bigint NOT NULL,
  io bytea NOT NULL,
  semantic bytea);
CREATE INDEX mandala_calls_by_cid ON mandala_calls(cid);
CREATE INDEX mandala_calls_by_op ON mandala_calls(op_id, id);
CREATE TABLE mandala_call_refs(
  hid bytea NOT NULL,
  dir smallint NOT NULL,
  call_id bigint NOT NULL,
  PRIMARY KEY(hid, dir, call_id));
CREATE TABLE mandala_op_counts(
  op_id integer NOT NULL,
  writer bigint NOT NULL,
  calls bigint NOT NULL,
  output_bytes bigint NOT NULL,
  PRIMARY KEY(op_id, writer));
CREATE TABLE mandala_value_counts(
  writer bigint PRIMARY KEY,
  n bigint NOT NULL,
  bytes bigint NOT NULL);
CREATE TABLE mandala_generation(id integer PRIMARY KEY CHECK (id = 1), n bigint NOT NULL);
INSERT INTO mandala_generation VALUES (1, 0);
CREATE TABLE mandala_claims(
  key bytea PRIMARY KEY,
  owner bytea NOT NULL,
  lease_until timestamptz NOT NULL,
  backend integer NOT NULL);
CREATE TABLE mandala_commits(
  component text NOT NULL,
  content bytea NOT NULL,
  parent bytea,
  semantic bytea,
  kind text NOT NULL,
  code text NOT NULL,
  created bigint NOT NULL,
  PRIMARY KEY(component, content));
CREATE TABLE mandala_heads(component text PRIMARY KEY, content bytea NOT NULL);
CREATE TABLE mandala_versions(
  op text NOT NULL,
  op_version integer NOT NULL,
  content_version bytea NOT NULL,
  semantic_version bytea NOT NULL,
  components text NOT NULL,
  created bigint NOT NULL,
  PRIMARY KEY(op, content_version));
)sql";

/// Rename records (docs/storage-format.md 2.2); added by the upgrade from schema 1.
constexpr const char* renames_sql = R"sql(
CREATE TABLE IF NOT EXISTS mandala_renames(
  kind integer NOT NULL,
  op text NOT NULL,
  identity text NOT NULL,
  name text NOT NULL,
  PRIMARY KEY(kind, op, identity),
  UNIQUE(kind, op, name));
)sql";

const std::string call_columns = "SELECT id, hid, cid, op_id, created, io FROM mandala_calls ";

std::string json_list(const std::vector<std::string>& names) { return nlohmann::json(names).dump(); }

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct OpRow {
  std::string name;
  std::uint32_t version = 0;
  std::vector<std::string> outputs;
};

bool has_ref(const std::vector<IoRef>& list, const Id& hid) {
  return std::any_of(list.begin(), list.end(), [&](const IoRef& r) { return r.hid == hid; });
}

class PgStore final : public Store {
 public:
  PgStore(const std::string& location, const std::string& shown, const StoreOptions& options)
      : m_options(options), m_location(location), m_conn(location, shown), m_releases(location, shown) {
    std::random_device rd;
    m_writer = static_cast<std::int64_t>((std::uint64_t{rd()} << 32 | rd()) >> 1);
    run([&] { open(); });
  }

  // ---- lookups ---------------------------------------------------------------------------

  std::optional<CallRecord> call_by_hid(const Id& hid) override {
    static const std::string sql = call_columns + "WHERE hid = $1";  // (built once: every call looks)
    return run([&] { return one_call(sql, pq::Params().id(hid)); });
  }

  std::optional<CallRecord> call_by_content(const Id& cid, const Id* /*raw_hid*/) override {
    // Every call keeps its content id here: one index finds calls of raw inputs too.
    static const std::string sql = call_columns + "WHERE cid = $1 ORDER BY id LIMIT 1";
    return run([&] { return one_call(sql, pq::Params().id(cid)); });
  }

  std::optional<std::vector<std::byte>> value(const Id& cid) override {
    return run([&] { return value_once(cid); });
  }

  bool has_value(const Id& cid) override {
    return run(
        [&] { return m_conn.query("SELECT 1 FROM mandala_values WHERE cid = $1", pq::Params().id(cid)).rows() > 0; });
  }

  std::vector<Id> absent_values(std::span<const Id> cids) override {
    return run([&] {
      std::unordered_set<Id> stored;
      const auto r =
          m_conn.query("SELECT cid FROM mandala_values WHERE cid = ANY($1::bytea[])", pq::Params().id_array(cids));
      for (int i = 0; i < r.rows(); ++i) stored.insert(r.id(i, 0));
      std::vector<Id> out;
      for (const auto& cid : cids)
        if (stored.insert(cid).second) out.push_back(cid);
      return out;
    });
  }

  std::optional<OpRecord> op(std::string_view name, std::uint32_t version) override {
    return run([&] { return op_once(name, version); });
  }

  std::uint64_t generation() override {
    if (!m_looked) {
      run([&] { look(read_generation()); });
      m_looked = true;
    }
    return m_generation;
  }

  void end_read() override { m_looked = false; }

  // ---- writes ----------------------------------------------------------------------------

  void write(const WriteBatch& batch) override {
    if (batch.empty()) return;
    require_writable();
    try {
      run([&] { transaction([&] { write_once(batch); }); });
    } catch (...) {
      m_ops_by_id.clear();
      m_op_ids.clear();
      ++m_generation;  // what the writer learnt is no longer vouched for
      throw;
    }
  }

  // ---- provenance queries ----------------------------------------------------------------

  std::optional<Id> ref_cid(const Id& hid) override {
    return run([&]() -> std::optional<Id> {
      for (const auto& rec :
           calls_where("id IN (SELECT call_id FROM mandala_call_refs WHERE hid = $1)", pq::Params().id(hid)))
        for (const auto* list : {&rec.outputs, &rec.inputs})
          for (const auto& r : *list)
            if (r.hid == hid) return r.cid;
      return std::nullopt;
    });
  }

  std::optional<CallRecord> creator_of(const Id& ref_hid) override {
    return run([&]() -> std::optional<CallRecord> {
      auto calls = calls_where("id IN (SELECT call_id FROM mandala_call_refs WHERE hid = $1 AND dir = 1)",
                               pq::Params().id(ref_hid));
      for (auto& rec : calls)
        if (has_ref(rec.outputs, ref_hid)) return std::move(rec);
      return std::nullopt;
    });
  }

  std::vector<CallRecord> consumers_of(const Id& ref_hid) override {
    return run([&] {
      return calls_where("id IN (SELECT call_id FROM mandala_call_refs WHERE hid = $1 AND dir = 0)",
                         pq::Params().id(ref_hid));
    });
  }

  using Store::calls_of;
  using Store::consumers_of_many;
  using Store::creators_of_many;
  void calls_of(std::string_view op, std::optional<std::uint32_t> version, const CallSink& sink) override {
    run([&] {
      load_ops();
      std::vector<std::int32_t> ids;
      for (const auto& [id, row] : m_ops_by_id)
        if (row.name == op && (!version || row.version == *version)) ids.push_back(static_cast<std::int32_t>(id));
      if (ids.empty()) return;
      stream_calls("op_id = ANY($1::int4[])", pq::Params().int32_array(ids), sink);
    });
  }

  void creators_of_many(std::span<const Id> ref_hids, const CallSink& sink) override {
    refs_many(ref_hids, dir_out, sink);
  }
  void consumers_of_many(std::span<const Id> ref_hids, const CallSink& sink) override {
    refs_many(ref_hids, dir_in, sink);
  }

  std::vector<CallRecord> calls_by_hids(std::span<const Id> call_hids) override {
    return run([&] { return calls_where("hid = ANY($1::bytea[])", pq::Params().id_array(call_hids)); });
  }

  std::vector<std::optional<std::vector<std::byte>>> values_many(std::span<const Id> cids) override {
    return run([&] {
      return values_in_order(cids, [&](std::span<const Id> distinct, const auto& put) {
        std::vector<Id> chunked;
        m_conn.stream("SELECT cid, chunks, data FROM mandala_values WHERE cid = ANY($1::bytea[])",
                      pq::Params().id_array(distinct), [&](const pq::Result& r) {
                        const Id cid = r.id(0, 0);
                        if (r.integer(0, 1) > 0) {
                          chunked.push_back(cid);
                          return;
                        }
                        const auto b = r.bytes(0, 2);
                        put(cid, verified(cid, std::vector<std::byte>(b.begin(), b.end())));
                      });
        for (const auto& cid : chunked) put(cid, value_once(cid));
      });
    });
  }

  // ---- removal ---------------------------------------------------------------------------

  std::size_t drop_calls(std::span<const Id> call_hids, bool dependents) override {
    require_writable();
    return run([&] {
      return transaction(
          [&] {
            const auto doomed = doomed_calls(call_hids, dependents);
            remove_calls(doomed);
            bump_generation();
            return doomed.size();
          },
          /*removal=*/true);
    });
  }

  std::vector<CallRecord> calls_to_drop(std::span<const Id> call_hids, bool dependents) override {
    return run([&] { return by_storage_id(doomed_calls(call_hids, dependents)); });
  }

  CleanupReport cleanup() override {
    require_writable();
    return run([&] {
      return transaction(
          [&] {
            const Scan scan = scan_all();
            CleanupReport report = scan.report;
            if (!report.values.empty()) {
              pq::Params p;
              p.id_array(report.values);
              m_conn.query("DELETE FROM mandala_value_chunks WHERE cid = ANY($1::bytea[])", p);
              m_conn.query("DELETE FROM mandala_values WHERE cid = ANY($1::bytea[])", p);
            }
            m_conn.exec("DELETE FROM mandala_claims WHERE lease_until < clock_timestamp()");
            // The counts are counted afresh (a whole pass anyway): one row per op and one total,
            // in place of every writer's deltas.
            m_conn.exec("DELETE FROM mandala_op_counts; DELETE FROM mandala_value_counts");
            std::vector<std::int32_t> ops;
            std::vector<std::int64_t> writers, calls, bytes;
            for (const auto& [op, c] : scan.ops) {
              ops.push_back(static_cast<std::int32_t>(op));
              writers.push_back(0);
              calls.push_back(c.first);
              bytes.push_back(c.second);
            }
            add_op_counts(ops, writers, calls, bytes);
            m_conn.query("INSERT INTO mandala_value_counts(writer, n, bytes) VALUES(0, $1, $2)",
                         pq::Params()
                             .int64(scan.values - static_cast<std::int64_t>(report.values_removed))
                             .int64(scan.value_bytes - static_cast<std::int64_t>(report.bytes_freed)));
            bump_generation();
            return report;
          },
          /*removal=*/true);
    });
  }

  CleanupReport cleanup_preview() override {
    return run([&] { return scan_all().report; });
  }

  // ---- inspection ------------------------------------------------------------------------

  StorageStats stats() override {
    return run([&] {
      StorageStats s;
      auto r = m_conn.query(
          "SELECT (SELECT count(*) FROM mandala_ops), (SELECT coalesce(sum(calls), 0)::int8 FROM mandala_op_counts), "
          "(SELECT coalesce(sum(n), 0)::int8 FROM mandala_value_counts), "
          "(SELECT coalesce(sum(bytes), 0)::int8 FROM mandala_value_counts), "
          "(SELECT count(*) FROM (SELECT DISTINCT hid FROM mandala_call_refs) d)");
      s.ops = static_cast<std::uint64_t>(r.integer(0, 0));
      s.calls = static_cast<std::uint64_t>(r.integer(0, 1));
      s.values = static_cast<std::uint64_t>(r.integer(0, 2));
      s.value_bytes = static_cast<std::uint64_t>(r.integer(0, 3));
      s.refs = static_cast<std::uint64_t>(r.integer(0, 4));
      return s;
    });
  }

  StorageInfo info() override {
    return run([&] {
      StorageInfo info;
      auto meta = m_conn.query("SELECT key, value FROM mandala_meta WHERE key IN ('schema_version', 'created_ms')");
      for (int i = 0; i < meta.rows(); ++i) {
        const auto key = meta.text(i, 0);
        const auto value = meta.text(i, 1);
        try {
          if (key == "schema_version") info.schema_version = std::stoi(value);
          else info.created = std::chrono::system_clock::time_point(std::chrono::milliseconds(std::stoll(value)));
        } catch (const std::exception&) {
          throw Error(Errc::corrupt_store,
                      m_conn.shown() + ": mandala_meta holds an unreadable " + key + ": '" + value + "'");
        }
      }
      info.stats = stats();
      info.ops = op_summaries();
      info.database_bytes =
          static_cast<std::uint64_t>(m_conn.query("SELECT pg_database_size(current_database())::int8").integer(0, 0));
      return info;
    });
  }

  std::vector<OpSummary> op_summaries() override {
    return run([&] {
      std::vector<OpSummary> out;
      auto r = m_conn.query(
          "SELECT o.name, o.version, o.inputs, o.outputs, coalesce(sum(c.calls), 0)::int8, "
          "coalesce(sum(c.output_bytes), 0)::int8, "
          "(SELECT created FROM mandala_calls k WHERE k.op_id = o.id ORDER BY k.id DESC LIMIT 1) "
          "FROM mandala_ops o LEFT JOIN mandala_op_counts c ON c.op_id = o.id "
          "GROUP BY o.id ORDER BY o.name, o.version");
      for (int i = 0; i < r.rows(); ++i) {
        OpSummary op{r.text(i, 0),
                     static_cast<std::uint32_t>(r.integer(i, 1)),
                     parse_list(r.text(i, 2)),
                     parse_list(r.text(i, 3)),
                     static_cast<std::uint64_t>(r.integer(i, 4)),
                     static_cast<std::uint64_t>(r.integer(i, 5)),
                     std::nullopt};
        if (op.calls > 0 && !r.is_null(i, 6))
          op.last_call = std::chrono::system_clock::time_point(std::chrono::milliseconds(r.integer(i, 6)));
        out.push_back(std::move(op));
      }
      return out;
    });
  }

  std::vector<CallRecord> calls_page(std::string_view op, const CallQuery& query) override {
    return run([&] {
      const auto clamp = [](std::size_t n) {
        return n > static_cast<std::size_t>(INT64_MAX) ? INT64_MAX : static_cast<std::int64_t>(n);
      };
      pq::Params p;
      p.text(op).int64(clamp(query.limit)).int64(clamp(query.offset));
      std::string where = "op_id IN (SELECT id FROM mandala_ops WHERE name = $1";
      if (query.version) {
        where += " AND version = $4";
        p.int32(static_cast<std::int32_t>(*query.version));
      }
      where += ")";
      std::vector<CallRecord> out;
      const auto r = m_conn.query(call_columns + "WHERE " + where + " ORDER BY id" +
                                      (query.newest_first ? " DESC" : "") + " LIMIT $2 OFFSET $3",
                                  p);
      out.resize(static_cast<std::size_t>(r.rows()));
      for (int i = 0; i < r.rows(); ++i) read_record(r, i, out[static_cast<std::size_t>(i)]);
      return out;
    });
  }

  std::vector<Id> call_hids_between(const Id& lo, const Id& hi, std::size_t limit) override {
    return ids_between("SELECT hid FROM mandala_calls WHERE hid BETWEEN $1 AND $2 ORDER BY hid LIMIT $3", lo, hi,
                       limit);
  }

  std::vector<Id> ref_hids_between(const Id& lo, const Id& hi, std::size_t limit) override {
    return ids_between("SELECT DISTINCT hid FROM mandala_call_refs WHERE hid BETWEEN $1 AND $2 ORDER BY hid LIMIT $3",
                       lo, hi, limit);
  }

  IntegrityReport check_integrity(const ProgressCallback& progress) override {
    return run([&] { return check_once(progress); });
  }

  // ---- code versions ---------------------------------------------------------------------

  std::vector<CommitRecord> commits_of(std::string_view component) override {
    return run([&] {
      const auto r = m_conn.query(
          "SELECT content, parent, semantic, kind, code, created FROM mandala_commits WHERE component = $1 "
          "ORDER BY created, content",
          pq::Params().text(component));
      std::vector<CommitRecord> out;
      for (int i = 0; i < r.rows(); ++i) {
        CommitRecord c;
        c.component = std::string(component);
        c.content = r.id(i, 0);
        if (!r.is_null(i, 1)) c.parent = r.id(i, 1);
        if (!r.is_null(i, 2)) c.semantic = r.id(i, 2);
        c.kind = r.text(i, 3);
        c.code = r.text(i, 4);
        c.created_ms = r.integer(i, 5);
        out.push_back(std::move(c));
      }
      return out;
    });
  }

  std::optional<Id> head_of(std::string_view component) override {
    return run([&]() -> std::optional<Id> {
      const auto r =
          m_conn.query("SELECT content FROM mandala_heads WHERE component = $1", pq::Params().text(component));
      if (r.rows() == 0) return std::nullopt;
      return r.id(0, 0);
    });
  }

  std::vector<VersionRecord> versions_of(std::string_view op) override {
    return run([&] {
      const auto r = m_conn.query(
          "SELECT op_version, content_version, semantic_version, components, created FROM mandala_versions "
          "WHERE op = $1 ORDER BY created, content_version",
          pq::Params().text(op));
      std::vector<VersionRecord> out;
      for (int i = 0; i < r.rows(); ++i) {
        VersionRecord v;
        v.op = std::string(op);
        v.op_version = static_cast<std::uint32_t>(r.integer(i, 0));
        v.content_version = r.id(i, 1);
        v.semantic_version = r.id(i, 2);
        v.components = components_from_json(r.text(i, 3), m_conn.shown() + ": mandala_versions");
        v.created_ms = r.integer(i, 4);
        out.push_back(std::move(v));
      }
      return out;
    });
  }

  void write_versioning(const VersioningWrite& changes) override {
    if (changes.empty()) return;
    require_writable();
    run([&] {
      transaction([&] {
        for (const auto& c : changes.commits) {
          pq::Params p;
          p.text(c.component).id(c.content);
          if (c.parent) p.id(*c.parent);
          else p.null();
          if (c.semantic) p.id(*c.semantic);
          else p.null();
          p.text(c.kind).text(c.code).int64(c.created_ms);
          m_conn.query(
              "INSERT INTO mandala_commits(component, content, parent, semantic, kind, code, created) "
              "VALUES($1, $2, $3, $4, $5, $6, $7) "
              "ON CONFLICT(component, content) DO UPDATE SET semantic = excluded.semantic",
              p);
        }
        for (const auto& [component, content] : changes.heads)
          m_conn.query(
              "INSERT INTO mandala_heads(component, content) VALUES($1, $2) "
              "ON CONFLICT(component) DO UPDATE SET content = excluded.content",
              pq::Params().text(component).id(content));
        for (const auto& v : changes.versions)
          m_conn.query(
              "INSERT INTO mandala_versions(op, op_version, content_version, semantic_version, components, "
              "created) VALUES($1, $2, $3, $4, $5, $6) ON CONFLICT(op, content_version) DO UPDATE SET "
              "semantic_version = excluded.semantic_version, components = excluded.components",
              pq::Params()
                  .text(v.op)
                  .int32(static_cast<std::int32_t>(v.op_version))
                  .id(v.content_version)
                  .id(v.semantic_version)
                  .text(components_to_json(v.components))
                  .int64(v.created_ms));
        for (const auto& [op, content] : changes.dropped_versions)
          m_conn.query("DELETE FROM mandala_versions WHERE op = $1 AND content_version = $2",
                       pq::Params().text(op).id(content));
        // Other processes re-resolve their code versions when they see the generation change.
        bump_generation();
      });
    });
  }

  // ---- rename records (docs/storage-format.md 2.2) ----------------------------------------

  std::vector<NameRecord> name_records() override {
    if (m_without_renames) return {};
    return run([&] {
      const auto r = m_conn.query("SELECT kind, op, identity, name FROM mandala_renames");
      std::vector<NameRecord> out;
      for (int i = 0; i < r.rows(); ++i)
        out.push_back({static_cast<NameKind>(r.integer(i, 0)), r.text(i, 1), r.text(i, 2), r.text(i, 3)});
      return out;
    });
  }

  void write_names(std::span<const NameRecord> records) override {
    if (records.empty()) return;
    require_writable();
    run([&] {
      transaction([&] {
        for (const auto& n : records)
          m_conn.query(
              "INSERT INTO mandala_renames(kind, op, identity, name) VALUES($1, $2, $3, $4) "
              "ON CONFLICT(kind, op, identity) DO UPDATE SET name = excluded.name",
              pq::Params().int32(static_cast<std::int32_t>(n.kind)).text(n.op).text(n.identity).text(n.name));
        // Other processes read the names again when they see the generation change.
        bump_generation();
      });
    });
  }

  // ---- claims (Store's semantics; on a connection of their own, the server's clock) -------

  [[nodiscard]] bool shares_claims() const override { return !m_options.read_only; }

  bool try_claim(const Id& key, const Id& owner, std::chrono::milliseconds lease) override {
    // Free, expired, already this owner's, or held by a connection the server no longer has
    // (its process died: the server ends its session when the socket closes).
    return claiming([&](pq::Connection& c) {
      return c.query(
                  "INSERT INTO mandala_claims(key, owner, lease_until, backend) VALUES($1, $2, "
                  "clock_timestamp() + $3::int8 * interval '1 millisecond', pg_backend_pid()) "
                  "ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until, "
                  "backend = excluded.backend WHERE mandala_claims.lease_until < clock_timestamp() OR "
                  "mandala_claims.owner = excluded.owner OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a "
                  "WHERE a.pid = mandala_claims.backend) RETURNING 1",
                  pq::Params().id(key).id(owner).int64(lease.count()))
                 .rows() > 0;
    });
  }

  std::vector<Id> renew_claims(const Id& owner, std::span<const Id> keys, std::chrono::milliseconds lease) override {
    if (keys.empty()) return {};
    return claiming([&](pq::Connection& c) {
      const auto r = c.query(
          "UPDATE mandala_claims SET lease_until = clock_timestamp() + $3::int8 * interval '1 millisecond', "
          "backend = pg_backend_pid() WHERE owner = $1 AND key = ANY($2::bytea[]) RETURNING key",
          pq::Params().id(owner).id_array(keys).int64(lease.count()));
      std::unordered_set<Id> held;
      for (int i = 0; i < r.rows(); ++i) held.insert(r.id(i, 0));
      std::vector<Id> lost;
      for (const auto& k : keys)
        if (!held.contains(k)) lost.push_back(k);
      return lost;
    });
  }

  void release_claims(const Id& owner, std::span<const Id> keys) override {
    if (keys.empty()) return;
    claiming([&](pq::Connection& c) {
      // The keys freed are announced (at commit) to the processes waiting on them.
      static const std::string release =
          std::string(
              "WITH d AS (DELETE FROM mandala_claims WHERE owner = $1 AND key = ANY($2::bytea[]) RETURNING "
              "key), n AS (SELECT key, (row_number() OVER () - 1) / ") +
          std::to_string(pg::keys_per_notification) + " AS g FROM d) SELECT pg_notify('" + pg::release_channel +
          "', string_agg(encode(key, 'hex'), ',')) FROM n GROUP BY g";
      c.query(release, pq::Params().id(owner).id_array(keys));
    });
  }

  [[nodiscard]] bool announces_releases() const override { return shares_claims(); }
  std::uint64_t releases_seen() override { return m_releases.seen(); }
  bool await_release(const Id& key, std::uint64_t since, std::chrono::microseconds max) override {
    return m_releases.await(key, since, max);
  }

  std::vector<std::pair<Id, Id>> call_versions_of(std::string_view op) override {
    return run([&] {
      const auto r = m_conn.query(
          "SELECT hid, semantic FROM mandala_calls WHERE semantic IS NOT NULL AND op_id IN "
          "(SELECT id FROM mandala_ops WHERE name = $1) ORDER BY id",
          pq::Params().text(op));
      std::vector<std::pair<Id, Id>> out;
      out.reserve(static_cast<std::size_t>(r.rows()));
      for (int i = 0; i < r.rows(); ++i) out.emplace_back(r.id(i, 0), r.id(i, 1));
      return out;
    });
  }

 private:
  // ---- connection, retries, transactions -------------------------------------------------

  /// Runs `f` (a whole read, or a whole transaction), again after a lost connection (once
  /// connected anew) or a serialization failure or deadlock, until StoreOptions::lock_timeout.
  template <class F>
  std::invoke_result_t<F&> run(F&& f) {
    const auto start = std::chrono::steady_clock::now();
    for (int attempt = 0;; ++attempt) {
      try {
        return f();
      } catch (const pq::ConnectionLost& e) {
        m_looked = false;
        reconnect_until_deadline(e, start, attempt);
      } catch (const pq::ServerError& e) {
        m_conn.rollback_quietly();
        if (!e.transient() || !wait(attempt, start)) throw;
      } catch (...) {
        m_conn.rollback_quietly();
        throw;
      }
    }
  }

  void reconnect_until_deadline(const pq::ConnectionLost& lost, std::chrono::steady_clock::time_point start,
                                int& attempt) {
    for (;; ++attempt) {
      if (!wait(attempt, start))
        throw Error(Errc::io, std::string(lost.what()) + "; could not reconnect within " +
                                  std::to_string(m_options.lock_timeout.count()) +
                                  " ms (StorageOptions::lock_timeout): what was not flushed stays pending; check "
                                  "the server and try again");
      try {
        m_conn.reconnect();
        if (m_options.read_only) m_conn.exec("SET default_transaction_read_only = on");
        return;
      } catch (const Error&) {  // still down: wait and try again
      }
    }
  }

  /// Sleeps before retry `attempt` (10 ms doubling to 1 s); false once the timeout has passed.
  bool wait(int attempt, std::chrono::steady_clock::time_point start) const {
    const auto elapsed = std::chrono::steady_clock::now() - start;
    if (elapsed >= m_options.lock_timeout) return false;
    auto pause = std::chrono::milliseconds(10) * (1 << std::min(attempt, 7));
    pause = std::min<std::chrono::milliseconds>(pause, std::chrono::milliseconds(1000));
    std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(pause, m_options.lock_timeout - elapsed));
    return true;
  }

  /// One transaction around `f`: writers hold the removal lock shared, removals exclusive.
  template <class F>
  std::invoke_result_t<F&> transaction(F&& f, bool removal = false) {
    m_conn.exec("BEGIN");
    m_conn.query(removal ? "SELECT pg_advisory_xact_lock($1)" : "SELECT pg_advisory_xact_lock_shared($1)",
                 pq::Params().int64(removal_lock));
    if constexpr (std::is_void_v<std::invoke_result_t<F&>>) {
      f();
      m_conn.exec("COMMIT");
    } else {
      auto out = f();
      m_conn.exec("COMMIT");
      return out;
    }
  }

  /// Runs `f` on the claims connection (made at the first claim), under its own lock, again
  /// once after a lost connection; any other error propagates (the engine then stops claiming).
  template <class F>
  std::invoke_result_t<F&, pq::Connection&> claiming(F&& f) {
    std::lock_guard lock(m_claims_mutex);
    for (int attempt = 0;; ++attempt) {
      try {
        if (!m_claims) m_claims = std::make_unique<pq::Connection>(m_location, m_conn.shown());
        else if (m_claims->broken()) m_claims->reconnect();
        return f(*m_claims);
      } catch (const pq::ConnectionLost&) {
        if (attempt > 0) throw;
      }
    }
  }

  void require_writable() const {
    if (m_options.read_only)
      throw Error(Errc::io,
                  m_conn.shown() + ": the store was opened read-only; open it writable to record or remove calls");
  }

  std::int64_t read_generation() { return m_conn.query("SELECT n FROM mandala_generation WHERE id = 1").integer(0, 0); }

  /// Counts a removal by another connection since the last look.
  void look(std::int64_t server_generation) {
    if (server_generation == m_seen) return;
    m_seen = server_generation;
    ++m_generation;
  }

  /// Inside a removal (under the exclusive lock): counts this connection's own removal without
  /// taking it for another's.
  void bump_generation() {
    look(read_generation());
    m_seen = m_conn.query("UPDATE mandala_generation SET n = n + 1 WHERE id = 1 RETURNING n").integer(0, 0);
  }

  // ---- open ------------------------------------------------------------------------------

  void open() {
    if (m_options.read_only) m_conn.exec("SET default_transaction_read_only = on");
    auto present = [&] {
      const auto r = m_conn.query_once(
          "SELECT to_regclass('mandala_meta') IS NOT NULL, (SELECT count(*) FROM pg_catalog.pg_class c JOIN "
          "pg_catalog.pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = current_schema() AND c.relkind IN "
          "('r', 'p', 'v', 'm', 'f'))");
      return std::make_pair(r.bytes(0, 0)[0] != std::byte{0}, r.integer(0, 1));
    };
    auto [has_meta, tables] = present();
    if (!has_meta) {
      if (tables > 0)
        throw Error(Errc::foreign_database,
                    m_conn.shown() + " holds " + std::to_string(tables) +
                        " tables but no mandala_meta: it is the database of another application, not a mandala "
                        "store; it was not modified: give a new, empty database");
      if (m_options.read_only || !m_options.create)
        throw Error(Errc::not_found, "no mandala store in " + m_conn.shown() + " (opened " +
                                         (m_options.read_only ? "read-only" : "without StorageOptions::create") +
                                         ", so none is created)");
      m_conn.exec("BEGIN");
      m_conn.query_once("SELECT pg_advisory_xact_lock($1)", pq::Params().int64(creation_lock));
      // Another process may have created the tables while this one waited for the lock.
      if (!present().first) create_schema();
      m_conn.exec("COMMIT");
    }
    // Schema 2 adds the rename records; 3 only the transient flag of io entries (section 4).
    const auto older = [](const std::string& v) { return v == "1" || v == "2"; };
    if (!m_options.read_only && older(stored_schema_version())) {
      m_conn.exec("BEGIN");
      m_conn.query_once("SELECT pg_advisory_xact_lock($1)", pq::Params().int64(creation_lock));
      // Another process may have upgraded the store while this one waited for the lock.
      if (const auto from = stored_schema_version(); older(from)) {
        if (from == "1") m_conn.exec(renames_sql);
        m_conn.query_once("UPDATE mandala_meta SET value = $1 WHERE key = 'schema_version'",
                          pq::Params().text(std::to_string(schema_version)));
      }
      m_conn.exec("COMMIT");
    }
    check_meta();
    m_seen = read_generation();
  }

  std::string stored_schema_version() {
    const auto r = m_conn.query_once("SELECT value FROM mandala_meta WHERE key = 'schema_version'");
    return r.rows() == 0 ? std::string() : r.text(0, 0);
  }

  void create_schema() {
    m_conn.exec(schema_sql);
    m_conn.exec(renames_sql);
    const std::pair<const char*, std::string> rows[] = {
        {"format", format_name},
        {"schema_version", std::to_string(schema_version)},
        {"hash", codec::hash_name},
        {"encoding", wire::encoding_name},
        {"created_ms", std::to_string(now_ms())},
    };
    for (const auto& [k, v] : rows)
      m_conn.query_once("INSERT INTO mandala_meta(key, value) VALUES($1, $2)", pq::Params().text(k).text(v));
  }

  void check_meta() {
    std::unordered_map<std::string, std::string> meta;
    const auto r = m_conn.query_once("SELECT key, value FROM mandala_meta");
    for (int i = 0; i < r.rows(); ++i) meta[r.text(i, 0)] = r.text(i, 1);
    const std::string& name = m_conn.shown();
    if (meta["format"] != format_name)
      throw Error(Errc::foreign_database,
                  name + " is not a mandala store (mandala_meta format '" + meta["format"] + "'); it was not modified");
    const std::string& v = meta["schema_version"];
    // Read-only, schema 1 is read as it is (it has no rename records).
    m_without_renames = m_options.read_only && v == "1";
    // Read-only, schema 2 is read as it is (it differs only by having no transient io entries).
    if (v != std::to_string(schema_version) && !m_without_renames && !(m_options.read_only && v == "2")) {
      long long number = 0;
      try {
        number = std::stoll(v);
      } catch (const std::exception&) {
        throw Error(Errc::corrupt_store, name + " has an unreadable schema version '" + v.substr(0, 40) +
                                             "' in mandala_meta; it is damaged: restore it from a backup");
      }
      throw Error(Errc::schema_mismatch,
                  name + " has PostgreSQL schema version " + v + " but this mandala reads version " +
                      std::to_string(schema_version) +
                      (number > schema_version ? ": it was written by a newer mandala; upgrade mandala to open it"
                                               : ": migrate it with the mandala version that wrote it"));
    }
    // The previous encoding's values read the same in this one: a writer records this one (the
    // whole upgrade, which keeps older readers away); a reader reads the store as it is.
    if (meta["hash"] == codec::hash_name && meta["encoding"] == wire::previous_encoding_name) {
      if (!m_options.read_only)
        m_conn.query_once("UPDATE mandala_meta SET value = $1 WHERE key = 'encoding' AND value = $2",
                          pq::Params().text(wire::encoding_name).text(wire::previous_encoding_name));
      return;
    }
    if (meta["hash"] != codec::hash_name || meta["encoding"] != wire::encoding_name)
      throw Error(Errc::schema_mismatch, name + " uses hash '" + meta["hash"] + "' and encoding '" + meta["encoding"] +
                                             "'; this mandala uses '" + codec::hash_name + "' and '" +
                                             wire::encoding_name + "'");
  }

  // ---- ops -------------------------------------------------------------------------------

  std::vector<std::string> parse_list(const std::string& text) const {
    try {
      return nlohmann::json::parse(text).get<std::vector<std::string>>();
    } catch (const std::exception&) {
      throw Error(Errc::corrupt_store, m_conn.shown() + ": mandala_ops holds an unreadable name list: " +
                                           text.substr(0, 80) + "; the store is damaged: restore it from a backup");
    }
  }

  std::optional<OpRecord> op_once(std::string_view name, std::uint32_t version) {
    const auto r = m_conn.query("SELECT inputs, outputs FROM mandala_ops WHERE name = $1 AND version = $2",
                                pq::Params().text(name).int32(static_cast<std::int32_t>(version)));
    if (r.rows() == 0) return std::nullopt;
    return OpRecord{std::string(name), version, parse_list(r.text(0, 0)), parse_list(r.text(0, 1))};
  }

  void load_ops() {
    const auto r = m_conn.query("SELECT id, name, version, outputs FROM mandala_ops");
    m_ops_by_id.clear();
    m_op_ids.clear();
    for (int i = 0; i < r.rows(); ++i) {
      const auto id = r.integer(i, 0);
      OpRow row{r.text(i, 1), static_cast<std::uint32_t>(r.integer(i, 2)), parse_list(r.text(i, 3))};
      m_op_ids[{row.name, row.version}] = id;
      m_ops_by_id[id] = std::move(row);
    }
  }

  const OpRow& op_row(std::int64_t id) {
    auto it = m_ops_by_id.find(id);
    if (it == m_ops_by_id.end()) {
      // (While rows are streamed the ops were loaded just before: an unknown id is damage.)
      if (!m_conn.streaming()) {
        load_ops();
        it = m_ops_by_id.find(id);
      }
      if (it == m_ops_by_id.end())
        throw Error(Errc::corrupt_store, m_conn.shown() + ": a call refers to op id " + std::to_string(id) +
                                             ", which mandala_ops does not hold; the store is damaged");
    }
    return it->second;
  }

  std::int64_t op_id(const std::string& name, std::uint32_t version) {
    auto it = m_op_ids.find({name, version});
    if (it == m_op_ids.end()) {
      load_ops();
      it = m_op_ids.find({name, version});
      if (it == m_op_ids.end())
        throw Error(Errc::corrupt_store, m_conn.shown() + ": op " + name + " version " + std::to_string(version) +
                                             " is not in mandala_ops, though its calls were written");
    }
    return it->second;
  }

  /// Registers the batch's ops inside the write transaction (see SqliteStore::write_ops).
  void write_ops(const std::vector<OpRecord>& ops) {
    for (const auto& o : ops) {
      m_conn.query(
          "INSERT INTO mandala_ops(name, version, inputs, outputs) VALUES($1, $2, $3, $4) "
          "ON CONFLICT (name, version) DO NOTHING",
          pq::Params()
              .text(o.name)
              .int32(static_cast<std::int32_t>(o.version))
              .text(json_list(o.inputs))
              .text(json_list(o.outputs)));
      const auto stored = op_once(o.name, o.version);
      if (!stored) throw Error(Errc::io, m_conn.shown() + ": op " + o.name + " vanished while it was registered");
      require_agreement(o, *stored);
      if (o.inputs.size() > stored->inputs.size())
        m_conn.query("UPDATE mandala_ops SET inputs = $3 WHERE name = $1 AND version = $2",
                     pq::Params().text(o.name).int32(static_cast<std::int32_t>(o.version)).text(json_list(o.inputs)));
    }
  }

  // ---- values ----------------------------------------------------------------------------

  std::vector<std::byte> verified(const Id& cid, std::vector<std::byte> bytes) const {
    if (codec::content_id(bytes) != cid)
      throw Error(Errc::corrupt_store, m_conn.shown() + ": value " + cid.hex() +
                                           " is damaged in the database (its bytes do not match its id); drop the "
                                           "calls that use it or restore the database from a backup");
    return bytes;
  }

  std::optional<std::vector<std::byte>> value_once(const Id& cid) {
    const auto r = m_conn.query("SELECT chunks, size, data FROM mandala_values WHERE cid = $1", pq::Params().id(cid));
    if (r.rows() == 0) return std::nullopt;
    const auto chunks = r.integer(0, 0);
    if (chunks == 0) {
      const auto b = r.bytes(0, 2);
      return verified(cid, std::vector<std::byte>(b.begin(), b.end()));
    }
    // Piece by piece: the value is held once, plus one piece.
    std::vector<std::byte> bytes;
    bytes.reserve(static_cast<std::size_t>(std::max<std::int64_t>(r.integer(0, 1), 0)));
    for (std::int64_t n = 0; n < chunks; ++n) {
      const auto piece = m_conn.query("SELECT data FROM mandala_value_chunks WHERE cid = $1 AND n = $2",
                                      pq::Params().id(cid).int32(static_cast<std::int32_t>(n)));
      if (piece.rows() == 0)
        throw Error(Errc::corrupt_store, m_conn.shown() + ": piece " + std::to_string(n) + " of value " + cid.hex() +
                                             " is missing; drop the calls that use it or restore the database");
      const auto b = piece.bytes(0, 0);
      bytes.insert(bytes.end(), b.begin(), b.end());
    }
    return verified(cid, std::move(bytes));
  }

  /// Inserts the values not stored yet (in cid order); returns those this transaction added.
  std::unordered_set<Id> insert_values(const std::vector<ValueRecord>& values) {
    std::vector<const ValueRecord*> sorted;
    sorted.reserve(values.size());
    for (const auto& v : values) sorted.push_back(&v);
    std::sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) { return a->cid < b->cid; });
    sorted.erase(
        std::unique(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) { return a->cid == b->cid; }),
        sorted.end());
    std::unordered_set<Id> added;
    std::size_t next = 0;
    while (next < sorted.size()) {
      std::vector<Id> cids;
      std::vector<std::int64_t> sizes;
      std::vector<std::int32_t> chunks;
      std::vector<std::span<const std::byte>> data;
      std::vector<bool> nulls;
      std::size_t bytes = 0;
      for (; next < sorted.size() && cids.size() < rows_per_statement && bytes < bytes_per_statement; ++next) {
        const auto& v = *sorted[next];
        const bool pieces = v.bytes.size() > chunk_bytes;
        cids.push_back(v.cid);
        sizes.push_back(static_cast<std::int64_t>(v.bytes.size()));
        chunks.push_back(pieces ? static_cast<std::int32_t>((v.bytes.size() + chunk_bytes - 1) / chunk_bytes) : 0);
        data.emplace_back(pieces ? std::span<const std::byte>() : std::span<const std::byte>(v.bytes));
        nulls.push_back(pieces);
        if (!pieces) bytes += v.bytes.size();
      }
      pq::Params p;
      p.id_array(cids).int64_array(sizes).bytes_array(data, nulls).int32_array(chunks);
      const auto r = m_conn.query(
          "INSERT INTO mandala_values(cid, size, data, chunks) "
          "SELECT * FROM unnest($1::bytea[], $2::int8[], $3::bytea[], $4::int4[]) ON CONFLICT DO NOTHING "
          "RETURNING cid",
          p);
      for (int i = 0; i < r.rows(); ++i) added.insert(r.id(i, 0));
    }
    // The pieces of large values this transaction added (one statement per piece).
    for (const auto* v : sorted) {
      if (v->bytes.size() <= chunk_bytes || !added.contains(v->cid)) continue;
      for (std::size_t at = 0, n = 0; at < v->bytes.size(); at += chunk_bytes, ++n) {
        const auto piece =
            std::span<const std::byte>(v->bytes).subspan(at, std::min(chunk_bytes, v->bytes.size() - at));
        m_conn.query("INSERT INTO mandala_value_chunks(cid, n, data) VALUES($1, $2, $3)",
                     pq::Params().id(v->cid).int32(static_cast<std::int32_t>(n)).bytes_view(piece));
      }
    }
    return added;
  }

  /// Sizes of stored values (those absent are left out).
  std::unordered_map<Id, std::int64_t> stored_sizes(const std::vector<Id>& cids) {
    std::unordered_map<Id, std::int64_t> out;
    if (cids.empty()) return out;
    const auto r =
        m_conn.query("SELECT cid, size FROM mandala_values WHERE cid = ANY($1::bytea[])", pq::Params().id_array(cids));
    for (int i = 0; i < r.rows(); ++i) out.emplace(r.id(i, 0), r.integer(i, 1));
    return out;
  }

  // ---- the write -------------------------------------------------------------------------

  void write_once(const WriteBatch& batch) {
    // Under the shared removal lock: no drop or cleanup commits until this transaction ends,
    // so the generation read here stays true for it.
    look(read_generation());
    const bool quiet = m_generation == batch.generation;
    write_ops(batch.ops);
    const auto added = insert_values(batch.values);

    std::unordered_map<Id, std::int64_t> sizes;
    for (const auto& v : batch.values) sizes.emplace(v.cid, static_cast<std::int64_t>(v.bytes.size()));
    // Values the calls use that are not in the batch: their sizes, and (after a removal by
    // another process since the batch was collected) whether they are still stored.
    std::vector<Id> elsewhere;
    {
      std::unordered_set<Id> seen;
      for (const auto& c : batch.calls)
        for (const auto* list : {&c.inputs, &c.outputs})
          for (const auto& r : *list)
            if (!sizes.contains(r.cid) && seen.insert(r.cid).second) elsewhere.push_back(r.cid);
    }
    // Values the store need not hold: used only by transient entries (IoRef::transient).
    std::unordered_set<Id> optional;
    {
      std::unordered_set<Id> required;
      for (const auto& c : batch.calls)
        for (const auto* list : {&c.inputs, &c.outputs})
          for (const auto& r : *list) (r.transient ? optional : required).insert(r.cid);
      for (const auto& cid : required) optional.erase(cid);
    }
    const auto stored = stored_sizes(elsewhere);
    if (!quiet) {
      std::vector<Id> missing;
      for (const auto& cid : elsewhere)
        if (!stored.contains(cid) && !optional.contains(cid)) missing.push_back(cid);
      if (!missing.empty()) throw MissingValues(std::move(missing));
    }
    for (const auto& [cid, size] : stored) sizes.emplace(cid, size);

    // Storage ids in the batch's order (the order the calls were made), taken from the
    // sequence up front; the rows then go in hid order, so two writers of overlapping calls wait
    // for each other instead of deadlocking. Calls stored already are skipped by the insert.
    std::vector<const CallRecord*> calls;
    calls.reserve(batch.calls.size());
    {
      std::unordered_set<Id> seen;
      for (const auto& c : batch.calls)
        if (seen.insert(c.hid).second) calls.push_back(&c);
    }
    std::unordered_map<const CallRecord*, std::int64_t> storage_id;
    if (!calls.empty()) {
      const auto r =
          m_conn.query("SELECT nextval(pg_get_serial_sequence('mandala_calls', 'id')) FROM generate_series(1, $1)",
                       pq::Params().int32(static_cast<std::int32_t>(calls.size())));
      std::vector<std::int64_t> ids(static_cast<std::size_t>(r.rows()));
      for (int i = 0; i < r.rows(); ++i) ids[static_cast<std::size_t>(i)] = r.integer(i, 0);
      std::sort(ids.begin(), ids.end());
      for (std::size_t i = 0; i < calls.size(); ++i) storage_id.emplace(calls[i], ids.at(i));
    }
    std::sort(calls.begin(), calls.end(), [](const auto* a, const auto* b) { return a->hid < b->hid; });
    std::unordered_map<Id, std::int64_t> inserted;  // hid -> storage id
    std::map<std::int64_t, std::pair<std::int64_t, std::int64_t>> op_deltas;
    for (std::size_t begin = 0; begin < calls.size(); begin += rows_per_statement) {
      const std::size_t end = std::min(calls.size(), begin + rows_per_statement);
      std::vector<Id> hids, cids;
      std::vector<std::int32_t> ops;
      std::vector<std::int64_t> ids, created;
      std::vector<std::vector<std::byte>> ios(end - begin);
      std::vector<std::span<const std::byte>> io_views, semantic_views;
      std::vector<bool> no_io, no_semantic;
      for (std::size_t i = begin; i < end; ++i) {
        const CallRecord& c = *calls[i];
        const auto op = op_id(c.op, c.version);
        call_io::encode(c, m_ops_by_id.at(op).outputs, ios[i - begin]);
        ids.push_back(storage_id.at(&c));
        hids.push_back(c.hid);
        cids.push_back(c.cid);
        ops.push_back(static_cast<std::int32_t>(op));
        created.push_back(c.created_ms);
        io_views.emplace_back(ios[i - begin]);
        no_io.push_back(false);
        semantic_views.emplace_back(c.semantic ? std::as_bytes(std::span(c.semantic->bytes))
                                               : std::span<const std::byte>());
        no_semantic.push_back(!c.semantic);
      }
      pq::Params p;
      p.int64_array(ids)
          .id_array(hids)
          .id_array(cids)
          .int32_array(ops)
          .int64_array(created)
          .bytes_array(io_views, no_io)
          .bytes_array(semantic_views, no_semantic);
      const auto r = m_conn.query(
          "INSERT INTO mandala_calls(id, hid, cid, op_id, created, io, semantic) SELECT * FROM unnest($1::int8[], "
          "$2::bytea[], $3::bytea[], $4::int4[], $5::int8[], $6::bytea[], $7::bytea[]) ON CONFLICT (hid) DO NOTHING "
          "RETURNING id, hid",
          p);
      for (int i = 0; i < r.rows(); ++i) inserted.emplace(r.id(i, 1), r.integer(i, 0));
    }

    // Index rows of the new calls, in key order.
    struct RefRow {
      Id hid;
      std::int16_t dir;
      std::int64_t call;
      auto operator<=>(const RefRow&) const = default;
    };
    std::vector<RefRow> refs;
    for (const auto* c : calls) {
      const auto at = inserted.find(c->hid);
      if (at == inserted.end()) continue;
      for (const auto& r : c->inputs) refs.push_back({r.hid, dir_in, at->second});
      for (const auto& r : c->outputs) refs.push_back({r.hid, dir_out, at->second});
      auto& delta = op_deltas[op_id(c->op, c->version)];
      ++delta.first;
      for (const auto& r : c->outputs)
        if (const auto s = sizes.find(r.cid); s != sizes.end() && !r.transient) delta.second += s->second;
    }
    std::sort(refs.begin(), refs.end());
    refs.erase(std::unique(refs.begin(), refs.end()), refs.end());
    for (std::size_t begin = 0; begin < refs.size(); begin += rows_per_statement) {
      const std::size_t end = std::min(refs.size(), begin + rows_per_statement);
      std::vector<Id> hids;
      std::vector<std::int16_t> dirs;
      std::vector<std::int64_t> ids;
      for (std::size_t i = begin; i < end; ++i) {
        hids.push_back(refs[i].hid);
        dirs.push_back(refs[i].dir);
        ids.push_back(refs[i].call);
      }
      m_conn.query(
          "INSERT INTO mandala_call_refs(hid, dir, call_id) SELECT * FROM unnest($1::bytea[], $2::int2[], "
          "$3::int8[]) ON CONFLICT DO NOTHING",
          pq::Params().id_array(hids).int16_array(dirs).int64_array(ids));
    }

    // This writer's count deltas.
    if (!op_deltas.empty()) {
      std::vector<std::int32_t> ops;
      std::vector<std::int64_t> writers, ncalls, bytes;
      for (const auto& [op, d] : op_deltas) {
        ops.push_back(static_cast<std::int32_t>(op));
        writers.push_back(m_writer);
        ncalls.push_back(d.first);
        bytes.push_back(d.second);
      }
      add_op_counts(ops, writers, ncalls, bytes);
    }
    if (!added.empty()) {
      std::int64_t bytes = 0;
      for (const auto& cid : added) bytes += sizes.at(cid);
      add_value_counts(static_cast<std::int64_t>(added.size()), bytes);
    }
  }

  void add_op_counts(const std::vector<std::int32_t>& ops, const std::vector<std::int64_t>& writers,
                     const std::vector<std::int64_t>& calls, const std::vector<std::int64_t>& bytes) {
    if (ops.empty()) return;
    m_conn.query(
        "INSERT INTO mandala_op_counts(op_id, writer, calls, output_bytes) SELECT * FROM unnest($1::int4[], "
        "$2::int8[], $3::int8[], $4::int8[]) ON CONFLICT (op_id, writer) DO UPDATE SET calls = "
        "mandala_op_counts.calls + excluded.calls, output_bytes = mandala_op_counts.output_bytes + "
        "excluded.output_bytes",
        pq::Params().int32_array(ops).int64_array(writers).int64_array(calls).int64_array(bytes));
  }

  void add_value_counts(std::int64_t n, std::int64_t bytes) {
    m_conn.query(
        "INSERT INTO mandala_value_counts(writer, n, bytes) VALUES($1, $2, $3) ON CONFLICT (writer) DO UPDATE SET "
        "n = mandala_value_counts.n + excluded.n, bytes = mandala_value_counts.bytes + excluded.bytes",
        pq::Params().int64(m_writer).int64(n).int64(bytes));
  }

  // ---- reading calls ---------------------------------------------------------------------

  void read_record(const pq::Result& r, int row, CallRecord& rec) {
    rec.hid = r.id(row, 1);
    rec.cid = r.id(row, 2);
    const OpRow& op = op_row(r.integer(row, 3));
    rec.op = op.name;
    rec.version = op.version;
    rec.created_ms = r.integer(row, 4);
    rec.semantic.reset();
    call_io::decode(r.bytes(row, 5), op.outputs, rec);
  }

  std::optional<CallRecord> one_call(const std::string& sql, const pq::Params& params) {
    const auto r = m_conn.query(sql, params);
    if (r.rows() == 0) return std::nullopt;
    CallRecord rec;
    read_record(r, 0, rec);
    return rec;
  }

  /// Calls matching `where`, in storage order.
  std::vector<CallRecord> calls_where(const std::string& where, const pq::Params& params) {
    const auto r = m_conn.query(call_columns + "WHERE " + where + " ORDER BY id", params);
    std::vector<CallRecord> out(static_cast<std::size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) read_record(r, i, out[static_cast<std::size_t>(i)]);
    return out;
  }

  /// Streams the calls matching `where`, in storage order, one row at a time.
  void stream_calls(const std::string& where, const pq::Params& params, const CallSink& sink) {
    load_ops();  // rows are read while they arrive: no query for an op in between
    CallRecord rec;
    m_conn.stream(call_columns + "WHERE " + where + " ORDER BY id", params, [&](const pq::Result& r) {
      read_record(r, 0, rec);
      sink(rec);
    });
  }

  void refs_many(std::span<const Id> hids, std::int16_t dir, const CallSink& sink) {
    if (hids.empty()) return;
    run([&] {
      stream_calls("id IN (SELECT call_id FROM mandala_call_refs WHERE hid = ANY($1::bytea[]) AND dir = " +
                       std::to_string(dir) + ")",
                   pq::Params().id_array(hids), sink);
    });
  }

  std::vector<Id> ids_between(const char* sql, const Id& lo, const Id& hi, std::size_t limit) {
    return run([&] {
      const auto r = m_conn.query(sql, pq::Params().id(lo).id(hi).int64(limit > static_cast<std::size_t>(INT64_MAX)
                                                                            ? INT64_MAX
                                                                            : static_cast<std::int64_t>(limit)));
      std::vector<Id> out;
      out.reserve(static_cast<std::size_t>(r.rows()));
      for (int i = 0; i < r.rows(); ++i) out.push_back(r.id(i, 0));
      return out;
    });
  }

  // ---- removal ---------------------------------------------------------------------------

  /// The calls drop_calls removes, with their storage ids: the roots, and with `dependents`
  /// every call reached through their outputs' consumers.
  std::vector<std::pair<std::int64_t, CallRecord>> doomed_calls(std::span<const Id> call_hids, bool dependents) {
    std::vector<std::pair<std::int64_t, CallRecord>> todo;
    std::unordered_set<std::int64_t> doomed;
    auto take = [&](const std::string& where, const pq::Params& params) {
      const auto r = m_conn.query(call_columns + "WHERE " + where + " ORDER BY id", params);
      for (int i = 0; i < r.rows(); ++i) {
        const auto id = r.integer(i, 0);
        if (!doomed.insert(id).second) continue;
        CallRecord rec;
        read_record(r, i, rec);
        todo.emplace_back(id, std::move(rec));
      }
    };
    if (!call_hids.empty()) take("hid = ANY($1::bytea[])", pq::Params().id_array(call_hids));
    for (std::size_t next = 0; dependents && next < todo.size();) {
      std::vector<Id> outputs;
      for (const std::size_t end = todo.size(); next < end; ++next)
        for (const auto& o : todo[next].second.outputs) outputs.push_back(o.hid);
      if (!outputs.empty())
        take("id IN (SELECT call_id FROM mandala_call_refs WHERE hid = ANY($1::bytea[]) AND dir = 0)",
             pq::Params().id_array(outputs));
    }
    return todo;
  }

  /// Deletes the calls and their index rows, and takes them off this writer's counts.
  void remove_calls(const std::vector<std::pair<std::int64_t, CallRecord>>& doomed) {
    if (doomed.empty()) return;
    std::vector<std::int64_t> ids;
    std::vector<Id> outputs;
    for (const auto& [id, rec] : doomed) {
      ids.push_back(id);
      for (const auto& o : rec.outputs) outputs.push_back(o.cid);
    }
    std::sort(ids.begin(), ids.end());
    // The index rows by their key (hid, dir, call id), then the calls.
    std::vector<Id> hids;
    std::vector<std::int16_t> dirs;
    std::vector<std::int64_t> call_ids;
    for (const auto& [id, rec] : doomed) {
      for (const auto& r : rec.inputs) {
        hids.push_back(r.hid);
        dirs.push_back(dir_in);
        call_ids.push_back(id);
      }
      for (const auto& r : rec.outputs) {
        hids.push_back(r.hid);
        dirs.push_back(dir_out);
        call_ids.push_back(id);
      }
    }
    m_conn.query(
        "DELETE FROM mandala_call_refs r USING unnest($1::bytea[], $2::int2[], $3::int8[]) AS d(hid, dir, call_id) "
        "WHERE r.hid = d.hid AND r.dir = d.dir AND r.call_id = d.call_id",
        pq::Params().id_array(hids).int16_array(dirs).int64_array(call_ids));
    m_conn.query("DELETE FROM mandala_calls WHERE id = ANY($1::int8[])", pq::Params().int64_array(ids));
    const auto sizes = stored_sizes(outputs);
    std::map<std::int64_t, std::pair<std::int64_t, std::int64_t>> deltas;
    for (const auto& [id, rec] : doomed) {
      auto& d = deltas[op_id(rec.op, rec.version)];
      --d.first;
      for (const auto& o : rec.outputs)
        if (const auto s = sizes.find(o.cid); s != sizes.end()) d.second -= s->second;
    }
    std::vector<std::int32_t> ops;
    std::vector<std::int64_t> writers, calls, bytes;
    for (const auto& [op, d] : deltas) {
      ops.push_back(static_cast<std::int32_t>(op));
      writers.push_back(m_writer);
      calls.push_back(d.first);
      bytes.push_back(d.second);
    }
    add_op_counts(ops, writers, calls, bytes);
  }

  /// One pass over calls and values: what cleanup removes, and the counts afresh.
  struct Scan {
    CleanupReport report;  ///< its `values`: the ids of the unreferenced values
    std::map<std::int64_t, std::pair<std::int64_t, std::int64_t>> ops;  ///< calls, output bytes
    std::int64_t values = 0;
    std::int64_t value_bytes = 0;
  };

  Scan scan_all() {
    Scan scan;
    std::unordered_map<Id, std::int64_t> sizes;
    m_conn.stream("SELECT cid, size FROM mandala_values", {}, [&](const pq::Result& r) {
      sizes.emplace(r.id(0, 0), r.integer(0, 1));
      ++scan.values;
      scan.value_bytes += r.integer(0, 1);
    });
    std::unordered_set<Id> used;
    CallRecord rec;
    load_ops();
    m_conn.stream(call_columns + "ORDER BY id", {}, [&](const pq::Result& r) {
      read_record(r, 0, rec);
      auto& op = scan.ops[r.integer(0, 3)];
      ++op.first;
      for (const auto& o : rec.outputs)
        if (const auto s = sizes.find(o.cid); s != sizes.end()) op.second += s->second;
      for (const auto* list : {&rec.inputs, &rec.outputs})
        for (const auto& x : *list) used.insert(x.cid);
    });
    for (const auto& [cid, size] : sizes) {
      if (used.contains(cid)) continue;
      scan.report.values.push_back(cid);
      ++scan.report.values_removed;
      scan.report.bytes_freed += static_cast<std::uint64_t>(size);
    }
    std::sort(scan.report.values.begin(), scan.report.values.end());
    return scan;
  }

  // ---- integrity -------------------------------------------------------------------------

  IntegrityReport check_once(const ProgressCallback& progress) {
    IntegrityReport report;
    std::map<std::string, std::size_t> listed;
    const auto add = [&](std::vector<IntegrityProblem>& list, const std::string& kind, std::string message) {
      if (++listed[kind] <= 200) list.push_back({kind, std::move(message)});
    };
    const auto problem = [&](const std::string& kind, std::string message) {
      add(report.problems, kind, std::move(message));
    };
    const auto warning = [&](const std::string& kind, std::string message) {
      add(report.warnings, kind, std::move(message));
    };
    const auto totals =
        m_conn.query("SELECT (SELECT count(*) FROM mandala_calls), (SELECT count(*) FROM mandala_values)");
    const std::uint64_t total = static_cast<std::uint64_t>(totals.integer(0, 0) + totals.integer(0, 1)) + 1;
    std::uint64_t done = 0;
    const auto advance = [&] {
      if (++done % 4096 == 0 && progress) progress(done, total);
    };
    if (progress) progress(0, total);

    // Ops.
    std::unordered_map<std::int64_t, std::pair<std::string, std::optional<std::vector<std::string>>>> ops;
    {
      const auto r = m_conn.query("SELECT id, name, version, inputs, outputs FROM mandala_ops");
      for (int i = 0; i < r.rows(); ++i) {
        auto& op = ops[r.integer(i, 0)];
        op.first = r.text(i, 1) + " v" + std::to_string(r.integer(i, 2));
        try {
          (void)nlohmann::json::parse(r.text(i, 3)).get<std::vector<std::string>>();
          op.second = nlohmann::json::parse(r.text(i, 4)).get<std::vector<std::string>>();
        } catch (const std::exception&) {
          problem("bad_op", "op " + op.first + " has an unreadable input or output name list");
        }
      }
      report.ops = ops.size();
    }

    // Calls: their io against their op, and the index rows they need.
    std::set<std::tuple<Id, std::int16_t, std::int64_t>> expected_refs;
    std::unordered_map<Id, Id> cid_of_ref;
    std::unordered_map<Id, std::int64_t> creator;
    std::unordered_set<Id> inputs_seen;
    std::unordered_set<Id> used_values;
    std::unordered_set<Id> required_values;  // used by an entry that is not transient
    std::map<std::int64_t, std::pair<std::int64_t, std::vector<Id>>> op_recount;
    m_conn.stream(call_columns + "ORDER BY id", {}, [&](const pq::Result& r) {
      advance();
      ++report.calls;
      const auto id = r.integer(0, 0);
      const Id hid = r.id(0, 1);
      const auto op_id = r.integer(0, 3);
      const auto op = ops.find(op_id);
      if (op == ops.end()) {
        problem("missing_op",
                "call " + hid.hex() + " refers to op id " + std::to_string(op_id) + ", which is not stored");
        return;
      }
      if (!op->second.second) return;  // reported as bad_op
      CallRecord rec;
      rec.hid = hid;
      try {
        call_io::decode(r.bytes(0, 5), *op->second.second, rec);
      } catch (const Error& e) {
        problem("bad_io", "call " + hid.hex() + ": " + e.what());
        return;
      }
      auto& recount = op_recount[op_id];
      ++recount.first;
      std::set<std::string> declared(op->second.second->begin(), op->second.second->end());
      std::set<std::string> present;
      for (const auto& o : rec.outputs) {
        present.insert(o.name);
        if (!o.transient) recount.second.push_back(o.cid);  // a transient output counts no bytes
        if (!declared.contains(o.name))
          problem("unexpected_output", "call " + hid.hex() + " of " + op->second.first + " has output '" + o.name +
                                           "', which the op does not declare");
        if (auto [it, fresh] = creator.emplace(o.hid, id); !fresh)
          problem("duplicate_call", "ref " + o.hid.hex() + " is an output of more than one stored call");
      }
      for (const auto& name : declared)
        if (!present.contains(name))
          problem("missing_output", "call " + hid.hex() + " of " + op->second.first + " lacks output '" + name + "'");
      for (const auto* list : {&rec.inputs, &rec.outputs}) {
        const std::int16_t dir = list == &rec.inputs ? dir_in : dir_out;
        for (const auto& x : *list) {
          ++report.io_rows;
          expected_refs.emplace(x.hid, dir, id);
          used_values.insert(x.cid);
          if (!x.transient) required_values.insert(x.cid);
          if (dir == dir_in) inputs_seen.insert(x.hid);
          if (auto [it, fresh] = cid_of_ref.emplace(x.hid, x.cid); !fresh && it->second != x.cid)
            problem("ref_conflict",
                    "ref " + x.hid.hex() + " appears with content ids " + it->second.hex() + " and " + x.cid.hex());
        }
      }
    });
    report.refs = cid_of_ref.size();
    for (const auto& hid : inputs_seen)
      if (!creator.contains(hid) && codec::atom_hid(cid_of_ref.at(hid)) != hid)
        warning("detached_ref", "input " + hid.hex() + " was created by a call that is no longer stored");

    // The index against the calls.
    m_conn.stream("SELECT hid, dir, call_id FROM mandala_call_refs", {}, [&](const pq::Result& r) {
      const auto key = std::make_tuple(r.id(0, 0), static_cast<std::int16_t>(r.integer(0, 1)), r.integer(0, 2));
      if (expected_refs.erase(key) == 0)
        problem("orphan_io", "index row of ref " + std::get<0>(key).hex() + " belongs to no stored call with it");
    });
    for (const auto& [hid, dir, call] : expected_refs)
      problem("unindexed_io", "ref " + hid.hex() + " of call " + std::to_string(call) + " has no index row");

    // Values: each hashed against its id.
    std::unordered_map<Id, std::int64_t> sizes;
    std::vector<std::pair<Id, std::int64_t>> chunked;
    m_conn.stream("SELECT cid, size, chunks, data FROM mandala_values", {}, [&](const pq::Result& r) {
      advance();
      ++report.values;
      const Id cid = r.id(0, 0);
      sizes.emplace(cid, r.integer(0, 1));
      if (r.integer(0, 2) > 0) {
        chunked.emplace_back(cid, r.integer(0, 1));
        return;
      }
      const auto b = r.bytes(0, 3);
      if (static_cast<std::int64_t>(b.size()) != r.integer(0, 1) || codec::content_id(b) != cid)
        problem("value_mismatch", "value " + cid.hex() + ": its bytes do not match its id or recorded size");
    });
    for (const auto& [cid, size] : chunked) {
      try {
        const auto bytes = value_once(cid);
        if (!bytes || static_cast<std::int64_t>(bytes->size()) != size)
          problem("value_mismatch", "value " + cid.hex() + ": its pieces do not add up to its recorded size");
      } catch (const Error& e) {
        problem("value_mismatch", e.what());
      }
    }
    for (const auto& cid : required_values)
      if (!sizes.contains(cid)) problem("missing_value", "value " + cid.hex() + " is used by a call but not stored");
    for (const auto& [cid, size] : sizes)
      if (!used_values.contains(cid)) ++report.unreferenced_values;

    // The maintained counts against the recount.
    {
      const auto r =
          m_conn.query("SELECT op_id, sum(calls)::int8, sum(output_bytes)::int8 FROM mandala_op_counts GROUP BY op_id");
      std::map<std::int64_t, std::pair<std::int64_t, std::int64_t>> stored;
      for (int i = 0; i < r.rows(); ++i) stored[r.integer(i, 0)] = {r.integer(i, 1), r.integer(i, 2)};
      for (const auto& [op, recount] : op_recount) {
        std::int64_t bytes = 0;
        for (const auto& cid : recount.second)
          if (const auto s = sizes.find(cid); s != sizes.end()) bytes += s->second;
        const auto have = stored.contains(op) ? stored[op] : std::pair<std::int64_t, std::int64_t>{0, 0};
        const auto label = ops.contains(op) ? ops[op].first : std::to_string(op);
        if (have.first != recount.first)
          problem("count_mismatch", "op " + label + ": " + std::to_string(have.first) + " calls counted, " +
                                        std::to_string(recount.first) + " stored");
        if (have.second != bytes)
          problem("count_mismatch", "op " + label + ": " + std::to_string(have.second) + " output bytes counted, " +
                                        std::to_string(bytes) + " stored");
        stored.erase(op);
      }
      for (const auto& [op, have] : stored)
        if (have.first != 0 || have.second != 0)
          problem("count_mismatch", "op id " + std::to_string(op) + ": calls counted but none stored");
      const auto v =
          m_conn.query("SELECT coalesce(sum(n), 0)::int8, coalesce(sum(bytes), 0)::int8 FROM mandala_value_counts");
      std::int64_t bytes = 0;
      for (const auto& [cid, size] : sizes) bytes += size;
      if (v.integer(0, 0) != static_cast<std::int64_t>(sizes.size()) || v.integer(0, 1) != bytes)
        problem("count_mismatch", std::to_string(v.integer(0, 0)) + " values of " + std::to_string(v.integer(0, 1)) +
                                      " bytes counted, " + std::to_string(sizes.size()) + " of " +
                                      std::to_string(bytes) + " stored");
    }
    for (auto* list : {&report.problems, &report.warnings}) {
      std::map<std::string, std::size_t> counts;
      for (const auto& p : *list) ++counts[p.kind];
      for (const auto& [kind, n] : listed)
        if (counts.contains(kind) && n > 200)
          list->push_back({kind, std::to_string(n - 200) + " more of this kind not listed"});
    }
    if (progress) progress(total, total);
    return report;
  }

  StoreOptions m_options;
  std::string m_location;
  pq::Connection m_conn;
  std::mutex m_claims_mutex;
  std::unique_ptr<pq::Connection> m_claims;  ///< claims' own connection (thread-safe use)
  pg::ReleaseListener m_releases;            ///< announcements of released claims (started by a waiter)
  std::int64_t m_writer = 0;                 ///< this connection's rows of the count tables
  bool m_looked = false;                     ///< the generation was read since the last end_read()
  std::int64_t m_seen = 0;                   ///< mandala_generation at the last look
  bool m_without_renames = false;            ///< a store of schema 1 opened read-only: no mandala_renames
  std::uint64_t m_generation = 0;
  std::unordered_map<std::int64_t, OpRow> m_ops_by_id;
  std::map<std::pair<std::string, std::uint32_t>, std::int64_t> m_op_ids;
};

}  // namespace

std::unique_ptr<Store> open_postgres_store(const std::string& location, const std::string& shown,
                                           const StoreOptions& options) {
  return std::make_unique<PgStore>(location, shown, options);
}

}  // namespace mandala::store
