#include "store/sqlite/version_tables.hpp"

#include <nlohmann/json.hpp>

#include "store/sqlite/sqlite.hpp"

namespace mandala::store::versions {

const char* const schema_sql = R"sql(
CREATE TABLE IF NOT EXISTS vc_commits(
  component TEXT NOT NULL,
  content BLOB NOT NULL,
  parent BLOB,
  semantic BLOB,
  kind TEXT NOT NULL,
  code TEXT NOT NULL,
  created INTEGER NOT NULL,
  PRIMARY KEY(component, content)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS vc_heads(
  component TEXT PRIMARY KEY,
  content BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS vc_versions(
  op TEXT NOT NULL,
  op_version INTEGER NOT NULL,
  content_version BLOB NOT NULL,
  semantic_version BLOB NOT NULL,
  components TEXT NOT NULL,
  created INTEGER NOT NULL,
  PRIMARY KEY(op, content_version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS vc_semantics(
  id INTEGER PRIMARY KEY,
  semantic BLOB NOT NULL UNIQUE);
)sql";

std::vector<CommitRecord> commits_of(sqlite3* db, std::string_view component) {
  sql::Statement st(db,
                    "SELECT content, parent, semantic, kind, code, created FROM vc_commits WHERE component = ?1 "
                    "ORDER BY created");
  st.bind(1, component);
  std::vector<CommitRecord> out;
  while (st.step()) {
    CommitRecord c;
    c.component = std::string(component);
    c.content = st.id(0);
    if (!st.is_null(1)) c.parent = st.id(1);
    if (!st.is_null(2)) c.semantic = st.id(2);
    c.kind = st.text(3);
    c.code = st.text(4);
    c.created_ms = st.int64(5);
    out.push_back(std::move(c));
  }
  return out;
}

std::optional<Id> head_of(sqlite3* db, std::string_view component) {
  sql::Statement st(db, "SELECT content FROM vc_heads WHERE component = ?1");
  st.bind(1, component);
  if (!st.step()) return std::nullopt;
  return st.id(0);
}

std::vector<VersionRecord> versions_of(sqlite3* db, std::string_view op) {
  sql::Statement st(db,
                    "SELECT op_version, content_version, semantic_version, components, created FROM vc_versions "
                    "WHERE op = ?1 ORDER BY created");
  st.bind(1, op);
  std::vector<VersionRecord> out;
  while (st.step()) {
    VersionRecord v;
    v.op = std::string(op);
    v.op_version = static_cast<std::uint32_t>(st.int64(0));
    v.content_version = st.id(1);
    v.semantic_version = st.id(2);
    v.components = components_from_json(st.text(3), "the vc_versions table");
    v.created_ms = st.int64(4);
    out.push_back(std::move(v));
  }
  return out;
}

void write(sqlite3* db, const VersioningWrite& changes) {
  sql::Statement put_commit(db,
                            "INSERT INTO vc_commits(component, content, parent, semantic, kind, code, created) "
                            "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7) "
                            "ON CONFLICT(component, content) DO UPDATE SET semantic = excluded.semantic");
  for (const auto& c : changes.commits) {
    put_commit.bind(1, c.component).bind(2, c.content);
    if (c.parent) put_commit.bind(3, *c.parent);
    else put_commit.bind_null(3);
    if (c.semantic) put_commit.bind(4, *c.semantic);
    else put_commit.bind_null(4);
    put_commit.bind(5, c.kind).bind(6, c.code).bind(7, c.created_ms).run();
  }
  sql::Statement put_head(db,
                          "INSERT INTO vc_heads(component, content) VALUES(?1, ?2) "
                          "ON CONFLICT(component) DO UPDATE SET content = excluded.content");
  for (const auto& [component, content] : changes.heads) put_head.bind(1, component).bind(2, content).run();
  sql::Statement put_version(db,
                             "INSERT INTO vc_versions(op, op_version, content_version, semantic_version, components, "
                             "created) VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(op, content_version) DO UPDATE SET "
                             "semantic_version = excluded.semantic_version, components = excluded.components");
  for (const auto& v : changes.versions) {
    const std::string comps = components_to_json(v.components);
    put_version.bind(1, v.op)
        .bind(2, std::int64_t{v.op_version})
        .bind(3, v.content_version)
        .bind(4, v.semantic_version)
        .bind(5, comps)
        .bind(6, v.created_ms)
        .run();
  }
  sql::Statement drop_version(db, "DELETE FROM vc_versions WHERE op = ?1 AND content_version = ?2");
  for (const auto& [op, content] : changes.dropped_versions) drop_version.bind(1, op).bind(2, content).run();
}

std::vector<std::pair<Id, Id>> call_versions_of(sqlite3* db, std::string_view op, bool legacy) {
  sql::Statement st(db, legacy ? "SELECT c.hid, v.semantic_version FROM vc_calls v JOIN calls c ON c.id = v.call_id "
                                 "JOIN ops o ON o.id = c.op_id WHERE o.name = ?1 ORDER BY c.id"
                               : "SELECT c.hid, s.semantic FROM calls c JOIN vc_semantics s ON s.id = c.semantic "
                                 "WHERE c.op_id IN (SELECT id FROM ops WHERE name = ?1) ORDER BY c.id");
  st.bind(1, op);
  std::vector<std::pair<Id, Id>> out;
  while (st.step()) out.emplace_back(st.id(0), st.id(1));
  return out;
}

std::int64_t semantic_number(sqlite3* db, const Id& semantic) {
  sql::Statement find(db, "SELECT id FROM vc_semantics WHERE semantic = ?1");
  find.bind(1, semantic);
  if (find.step()) return find.int64(0);
  sql::Statement put(db, "INSERT INTO vc_semantics(semantic) VALUES(?1)");
  put.bind(1, semantic).run();
  return sqlite3_last_insert_rowid(db);
}

void upgrade_call_versions(sqlite3* db) {
  sql::exec(db, schema_sql);
  sql::exec(db, "ALTER TABLE calls ADD COLUMN semantic INTEGER");
  {
    sql::Statement legacy(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'vc_calls'");
    if (!legacy.step()) return;  // schema 2: no code versions yet
  }
  sql::exec(db,
            "INSERT OR IGNORE INTO vc_semantics(semantic) SELECT DISTINCT semantic_version FROM vc_calls ORDER BY 1;"
            "UPDATE calls SET semantic = (SELECT s.id FROM vc_calls v JOIN vc_semantics s "
            "ON s.semantic = v.semantic_version WHERE v.call_id = calls.id) "
            "WHERE id IN (SELECT call_id FROM vc_calls);"
            "DROP TRIGGER IF EXISTS vc_calls_follow_calls;"
            "DROP TABLE vc_calls;");
}

}  // namespace mandala::store::versions
