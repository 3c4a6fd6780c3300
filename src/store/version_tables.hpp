#pragma once
// The SQLite tables of code versions (docs/storage-format.md, "Code versions"): per-component
// commit histories, op versions, and the version each call was computed under. Kept apart from
// the call tables: the only link is vc_calls.call_id, cleaned by a trigger when calls go.

#include <sqlite3.h>

#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "store/store.hpp"

namespace mandala::store::versions {

/// Creates the tables (idempotent).
extern const char* const schema_sql;

std::vector<CommitRecord> commits_of(sqlite3* db, std::string_view component);
std::optional<Id> head_of(sqlite3* db, std::string_view component);
std::vector<VersionRecord> versions_of(sqlite3* db, std::string_view op);
/// Inside the caller's transaction.
void write(sqlite3* db, const VersioningWrite& changes);
std::vector<std::pair<Id, Id>> call_versions_of(sqlite3* db, std::string_view op);
/// Records the semantic version of a call just inserted: binds (call id, semantic version).
extern const char* const record_call_sql;

}  // namespace mandala::store::versions
