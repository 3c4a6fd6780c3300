#pragma once
// The SQLite tables of code versions (docs/storage-format.md, "Code versions"): per-component
// commit histories, op versions, and the semantic versions calls were computed under. A call
// refers to its semantic version by a small number (calls.semantic = vc_semantics.id), so a
// code-versioned call costs one integer column more than any other call, not a row of its own.

#include <sqlite3.h>

#include <cstdint>
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
/// (call hid, semantic version) of the calls of `op` that have one. `legacy`: a store of schema
/// 3 or 4 opened read-only, where they are in the vc_calls table of those schemas.
std::vector<std::pair<Id, Id>> call_versions_of(sqlite3* db, std::string_view op, bool legacy);

/// The number calls.semantic holds for `semantic`: vc_semantics.id, the row inserted when it is
/// new. Inside the caller's write transaction.
std::int64_t semantic_number(sqlite3* db, const Id& semantic);

/// Moves a store of schema 3 or 4 to schema 5, inside the caller's transaction: adds
/// calls.semantic, fills it and vc_semantics from vc_calls, drops vc_calls and its trigger.
void upgrade_call_versions(sqlite3* db);

}  // namespace mandala::store::versions
