#pragma once
// Plain report types of a storage: counts, cleanup and integrity reports, inspection summaries
// and call queries. Standard library and ids only, so every layer (the store included) can use
// them without knowing ops or refs.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "mandala/id.hpp"

namespace mandala {

struct StorageStats {
  std::uint64_t ops = 0;
  std::uint64_t calls = 0;
  std::uint64_t values = 0;
  std::uint64_t refs = 0;         ///< distinct history ids among call inputs and outputs
  std::uint64_t blob_files = 0;   ///< values whose bytes are kept in a blob file
  std::uint64_t value_bytes = 0;  ///< encoded bytes of all stored values
  friend bool operator==(const StorageStats&, const StorageStats&) = default;
};

struct CleanupReport {
  std::uint64_t values_removed = 0;
  std::uint64_t bytes_freed = 0;
  std::uint64_t blob_files_removed = 0;
  /// The content ids of the values removed (of those cleanup_preview() finds), in id order.
  std::vector<Id> values;
};

/// One thing wrong in a store, found by Storage::check_integrity().
struct IntegrityProblem {
  /// Stable name of the kind of problem (scripts may switch on it):
  ///   "sqlite"            SQLite's own integrity check reports damaged pages, rows or indexes
  ///   "missing_op"        a call refers to an op the ops table does not hold
  ///   "bad_op"            an op's input or output name list is unreadable
  ///   "missing_version"   a call refers to a semantic code version the store does not hold
  ///   "bad_io"            a call's input/output list (its io column) cannot be decoded
  ///   "bad_cid"           a call's stored content id is neither 16 bytes nor empty
  ///   "underivable_cid"   a call stores no content id, but it cannot be derived from its row
  ///   "orphan_io"         a ref index row belongs to no stored call, or to a call without that ref
  ///   "unindexed_io"      an input/output of a call has no ref index row
  ///   "missing_output"    a call lacks an output its op declares
  ///   "unexpected_output" a call has an output its op does not declare
  ///   "duplicate_call"    one ref is the output of more than one stored call (a call recorded twice)
  ///   "ref_conflict"      one ref (history id) appears with more than one content id
  ///   "missing_value"     a ref's value is stored neither inline nor as a blob file row
  ///   "value_mismatch"    an inline value's bytes (or recorded size) do not match its id
  ///   "missing_blob"      a value recorded as a blob file has no file
  ///   "blob_mismatch"     a blob file's content does not match its id, or cannot be read
  ///   "index_count"       an index and its table disagree on the number of rows
  ///   "count_mismatch"    a maintained count (calls, output bytes or last call of an op; values,
  ///                       value bytes, blob values or refs of the store) differs from a recount
  std::string kind;
  /// What is wrong, naming the call, ref or value id involved.
  std::string message;
};

/// The result of Storage::check_integrity(): what was checked and every problem found.
struct IntegrityReport {
  std::vector<IntegrityProblem> problems;
  /// Harmless findings that do not make the store inconsistent, with the same shape as problems:
  ///   "stray_blob"      a blob file no value row refers to (left by an interrupted or failed
  ///                     flush, or written by another process that has not committed yet);
  ///                     cleanup() removes it
  ///   "stale_temporary" a temporary blob file older than an hour (an interrupted write);
  ///                     cleanup() removes it
  ///   "unused_value_without_blob"  a value no call uses lacks its blob file (a cleanup was
  ///                     interrupted); cleanup() removes the row
  ///   "detached_ref"    a call input whose creating call is no longer stored (dropped without
  ///                     its dependents); its value is still there
  std::vector<IntegrityProblem> warnings;
  std::uint64_t ops = 0;
  std::uint64_t calls = 0;
  std::uint64_t io_rows = 0;              ///< inputs and outputs of calls
  std::uint64_t refs = 0;                 ///< distinct history ids among them
  std::uint64_t values = 0;               ///< value rows, each hashed and compared with its id
  std::uint64_t blob_files = 0;           ///< blob files found on disk
  std::uint64_t unreferenced_values = 0;  ///< values no call uses (kept until cleanup())
  [[nodiscard]] bool ok() const { return problems.empty(); }
};

/// Progress of a long operation: `done` of `total` units of work.
using ProgressCallback = std::function<void(std::uint64_t done, std::uint64_t total)>;

// ---- inspection (what the `mandala` command shows; read-only queries) -------------------------

/// One op (name and version) known to a store, with what its stored calls add up to.
struct OpSummary {
  std::string name;
  std::uint32_t version = 0;
  std::vector<std::string> inputs;   ///< input names as declared
  std::vector<std::string> outputs;  ///< output names as declared
  std::uint64_t calls = 0;           ///< stored calls
  /// Encoded bytes of the outputs of its stored calls (a value output by k calls counts k times).
  std::uint64_t output_bytes = 0;
  /// When its most recently recorded call was recorded; nullopt without calls.
  std::optional<std::chrono::system_clock::time_point> last_call;
  friend bool operator==(const OpSummary&, const OpSummary&) = default;
};

/// A summary of a whole store.
struct StorageInfo {
  std::filesystem::path path;  ///< empty for an in-memory storage
  int schema_version = 0;
  std::optional<std::chrono::system_clock::time_point> created;
  StorageStats stats;
  std::uint64_t database_bytes = 0;   ///< the database file and its write-ahead log
  std::uint64_t blob_file_bytes = 0;  ///< the files of large values
  std::vector<OpSummary> ops;         ///< by name, then version
};

/// What Storage::push / pull copied (mandala push, mandala pull).
struct TransferReport {
  std::uint64_t ops = 0;              ///< ops (name and version) whose calls were copied or found present
  std::uint64_t calls_copied = 0;     ///< calls the destination lacked
  std::uint64_t calls_present = 0;    ///< calls it had already
  std::uint64_t values_copied = 0;    ///< values it lacked (those the copied calls use)
  std::uint64_t value_bytes = 0;      ///< their encoded bytes
  std::uint64_t versions_copied = 0;  ///< code versions and commits of code it lacked
  /// Records both sides hold with different content, left as the destination has them: an op
  /// declared with other outputs (its calls are not copied), a code version or commit decided
  /// differently. One line each, naming what differs.
  std::vector<std::string> conflicts;
  /// Calls that could not be copied, and why (a value the source lacks).
  std::vector<std::string> skipped;
};

/// Which calls of an op Storage::find_calls returns.
struct CallQuery {
  std::optional<std::uint32_t> version;  ///< all versions when empty
  std::size_t limit = SIZE_MAX;
  std::size_t offset = 0;
  bool newest_first = false;  ///< storage order (oldest first) otherwise
};

}  // namespace mandala
