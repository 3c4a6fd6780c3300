#pragma once
// Maintained counts of a store (docs/storage-format.md 3.8): per op (calls, output bytes, time
// of the last call) and totals (values, value bytes, blob values, refs). Writers change them in
// the transactions that change the data, so inspection reads a few rows instead of scanning.

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mandala::store::counters {

/// Creates the counter tables and their one totals row (all zero).
extern const char* const schema_sql;

struct OpCounts {
  std::uint64_t calls = 0;
  std::uint64_t output_bytes = 0;            ///< sizes of the values its calls output, one per output
  std::optional<std::int64_t> last_created;  ///< `created` of its call with the largest storage id
  friend bool operator==(const OpCounts&, const OpCounts&) = default;
};

struct Totals {
  std::uint64_t values = 0;       ///< `values` rows
  std::uint64_t value_bytes = 0;  ///< sum of their sizes
  std::uint64_t blob_values = 0;  ///< rows whose bytes live in a blob file
  std::uint64_t refs = 0;         ///< distinct hids among the inputs and outputs of stored calls
  /// True when some stored call may have an input that is neither a raw value nor the output of
  /// a stored call (its creator was dropped); writers then look up new outputs before counting.
  /// False guarantees there is none.
  bool detached = false;
  friend bool operator==(const Totals&, const Totals&) = default;
};

struct Counts {
  std::map<std::int64_t, OpCounts> ops;  ///< by ops.id; ops without calls may be absent
  Totals totals;
};

/// What the counter tables hold.
Counts load(sqlite3* db);

/// Counts from the data itself: one pass over values and calls (decoding every io column).
/// Errc::corrupt_store when an op or a call cannot be read.
Counts recount(sqlite3* db);

/// Replaces the counter tables' content (inside the caller's transaction).
void replace(sqlite3* db, const Counts& counts);

/// Adds signed changes to the counters of one op (inside the caller's transaction). Binds:
/// ?1 op id, ?2 calls, ?3 output bytes, ?4 the new last call time (NULL keeps the stored one).
extern const char* const add_to_op_sql;
/// Adds signed changes to the totals (inside the caller's transaction). Binds: ?1 values,
/// ?2 value bytes, ?3 blob values, ?4 refs, ?5 1 to set the detached flag (0 keeps it).
extern const char* const add_to_totals_sql;
/// The time of the op's newest call after calls were removed: binds ?1 op id; `created` of the
/// remaining call with the largest id, or NULL.
extern const char* const reset_last_created_sql;

/// One message per counter whose stored value differs from the recount; `op_label` names op ids.
std::vector<std::string> differences(const Counts& stored, const Counts& actual,
                                     const std::map<std::int64_t, std::string>& op_labels);

}  // namespace mandala::store::counters
