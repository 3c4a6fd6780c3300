// Storage::check_integrity over the SQLite schema (docs/storage-format.md). Each check is its own
// function; a check that SQLite cannot complete (a damaged page) is reported as a "sqlite"
// problem and the remaining checks still run.

#include "store/integrity.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "codec/hash.hpp"
#include "store/sqlite.hpp"

namespace mandala::store {
namespace {

/// Detailed entries kept per kind; the rest are counted in one summary entry.
constexpr std::size_t max_listed_per_kind = 200;
/// Progress is reported after this many items of a phase.
constexpr std::uint64_t progress_step = 4096;

class Collector {
 public:
  Collector(IntegrityReport& report, const ProgressCallback& progress) : m_report(report), m_progress(progress) {}

  void problem(std::string kind, std::string message) { add(m_report.problems, std::move(kind), std::move(message)); }
  void warning(std::string kind, std::string message) { add(m_report.warnings, std::move(kind), std::move(message)); }

  void set_total(std::uint64_t total) {
    m_total = total;
    report_progress();
  }
  void advance(std::uint64_t n = 1) {
    m_done += n;
    if (m_done - m_reported >= progress_step || m_done == m_total) report_progress();
  }
  void report_progress() {
    m_reported = m_done;
    if (m_progress) m_progress(std::min(m_done, m_total), m_total);
  }

  /// Appends "... and N more" entries for the kinds that hit the listing limit.
  void finish() {
    for (const auto& [key, count] : m_counts) {
      if (count <= max_listed_per_kind) continue;
      auto& list = key.first ? m_report.warnings : m_report.problems;
      list.push_back({key.second, std::to_string(count - max_listed_per_kind) + " more of this kind not listed"});
    }
    m_done = m_total;
    report_progress();
  }

  IntegrityReport& report() { return m_report; }

 private:
  void add(std::vector<IntegrityProblem>& list, std::string kind, std::string message) {
    const bool is_warning = &list == &m_report.warnings;
    if (++m_counts[{is_warning, kind}] > max_listed_per_kind) return;
    list.push_back({std::move(kind), std::move(message)});
  }

  IntegrityReport& m_report;
  const ProgressCallback& m_progress;
  std::map<std::pair<bool, std::string>, std::size_t> m_counts;
  std::uint64_t m_total = 1;
  std::uint64_t m_done = 0;
  std::uint64_t m_reported = 0;
};

std::uint64_t count(sqlite3* db, const std::string& query) {
  sql::Statement st(db, query);
  return st.step() ? static_cast<std::uint64_t>(st.int64(0)) : 0;
}

std::string quoted(const std::string& name) {
  std::string out = "\"";
  for (char c : name) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string dir_name(std::int64_t dir) { return dir == 0 ? "input" : "output"; }

/// SQLite's own check: page structure, row and index consistency, constraints.
void check_sqlite(sqlite3* db, Collector& out) {
  sql::Statement st(db, "PRAGMA integrity_check(1000)");
  while (st.step()) {
    const std::string row = st.text(0);
    if (row != "ok") out.problem("sqlite", "SQLite integrity check: " + row);
  }
}

/// Every index holds exactly one entry per row of its table (partial indexes excepted).
void check_index_counts(sqlite3* db, Collector& out) {
  std::vector<std::pair<std::string, std::string>> indexes;
  {
    sql::Statement st(db,
                      "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND "
                      "(sql IS NULL OR sql NOT LIKE '% WHERE %') ORDER BY name");
    while (st.step()) indexes.emplace_back(st.text(0), st.text(1));
  }
  for (const auto& [index, table] : indexes) {
    std::uint64_t by_index = 0;
    try {
      by_index = count(db, "SELECT COUNT(*) FROM " + quoted(table) + " INDEXED BY " + quoted(index));
    } catch (const Error& e) {
      if (e.code() == Errc::corrupt_store) throw;
      continue;  // an index SQLite cannot be told to use (e.g. on a WITHOUT ROWID key)
    }
    const std::uint64_t rows = count(db, "SELECT COUNT(*) FROM " + quoted(table) + " NOT INDEXED");
    if (by_index != rows)
      out.problem("index_count", "index " + index + " has " + std::to_string(by_index) + " entries but table " + table +
                                     " has " + std::to_string(rows) + " rows");
  }
}

struct OpDecl {
  std::string label;                                ///< "name v<version>"
  std::optional<std::vector<std::string>> outputs;  ///< sorted; nullopt when unreadable
};

std::unordered_map<std::int64_t, OpDecl> load_ops(sqlite3* db, Collector& out) {
  std::unordered_map<std::int64_t, OpDecl> ops;
  sql::Statement st(db, "SELECT id, name, version, inputs, outputs FROM ops");
  while (st.step()) {
    OpDecl op;
    op.label = st.text(1) + " v" + std::to_string(st.int64(2));
    try {
      (void)nlohmann::json::parse(st.text(3)).get<std::vector<std::string>>();
      auto outputs = nlohmann::json::parse(st.text(4)).get<std::vector<std::string>>();
      std::sort(outputs.begin(), outputs.end());
      op.outputs = std::move(outputs);
    } catch (const std::exception&) {
      out.problem("bad_op", "op " + op.label + " has an unreadable input or output name list");
    }
    ops.emplace(st.int64(0), std::move(op));
  }
  out.report().ops = ops.size();
  return ops;
}

std::string join(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return "(" + s + ")";
}

/// Every call's op exists and its outputs are exactly the op's declared outputs.
void check_calls(sqlite3* db, Collector& out) {
  const auto ops = load_ops(db, out);
  sql::Statement calls(db, "SELECT id, hid, op_id FROM calls ORDER BY id");
  sql::Statement outs(db, "SELECT call_id, name FROM call_io WHERE dir = 1 ORDER BY call_id, name");
  bool outs_left = outs.step();
  while (calls.step()) {
    const std::int64_t id = calls.int64(0);
    const Id hid = calls.id(1);
    const std::int64_t op_id = calls.int64(2);
    std::vector<std::string> names;
    while (outs_left && outs.int64(0) <= id) {
      if (outs.int64(0) == id) names.push_back(outs.text(1));
      outs_left = outs.step();
    }
    ++out.report().calls;
    out.advance();
    auto op = ops.find(op_id);
    if (op == ops.end()) {
      out.problem("missing_op", "call " + hid.hex() + " refers to op #" + std::to_string(op_id) +
                                    ", which the ops table does not hold");
      continue;
    }
    if (!op->second.outputs) continue;
    const auto& declared = *op->second.outputs;
    for (const auto& name : declared)
      if (!std::binary_search(names.begin(), names.end(), name))
        out.problem("missing_output", "call " + hid.hex() + " of op " + op->second.label + " lacks its output '" +
                                          name + "' (has " + join(names) + ")");
    for (const auto& name : names)
      if (!std::binary_search(declared.begin(), declared.end(), name))
        out.problem("unexpected_output", "call " + hid.hex() + " of op " + op->second.label + " has output '" + name +
                                             "', which the op does not declare " + join(declared));
  }
}

/// Input and output rows belong to stored calls.
void check_orphan_io(sqlite3* db, Collector& out) {
  sql::Statement st(db,
                    "SELECT call_id, dir, name, hid FROM call_io io "
                    "WHERE NOT EXISTS (SELECT 1 FROM calls c WHERE c.id = io.call_id)");
  while (st.step())
    out.problem("orphan_io", dir_name(st.int64(1)) + " '" + st.text(2) + "' (ref " + st.id(3).hex() +
                                 ") belongs to call #" + std::to_string(st.int64(0)) + ", which does not exist");
}

/// One content id per ref, at most one creating call per ref; counts refs and io rows.
void check_refs(sqlite3* db, Collector& out) {
  out.report().io_rows = count(db, "SELECT COUNT(*) FROM call_io");
  sql::Statement st(db,
                    "SELECT hid, COUNT(DISTINCT cid), SUM(dir = 1) FROM call_io GROUP BY hid "
                    "HAVING COUNT(DISTINCT cid) > 1 OR SUM(dir = 1) > 1");
  while (st.step()) {
    const std::string hid = st.id(0).hex();
    if (st.int64(1) > 1)
      out.problem("ref_conflict", "ref " + hid + " appears with " + std::to_string(st.int64(1)) + " different values");
    if (st.int64(2) > 1)
      out.problem("duplicate_call", "ref " + hid + " is the output of " + std::to_string(st.int64(2)) +
                                        " stored calls (a call was recorded twice)");
  }
  out.report().refs = count(db, "SELECT COUNT(DISTINCT hid) FROM call_io");
}

/// Inputs that are neither raw values (atoms) nor the output of a stored call: their creating
/// call was dropped without its dependents (a warning: the value is still stored).
void check_detached_refs(sqlite3* db, Collector& out) {
  sql::Statement st(db,
                    "SELECT c.hid, io.name, io.hid, io.cid FROM call_io io JOIN calls c ON c.id = io.call_id "
                    "WHERE io.dir = 0 AND NOT EXISTS (SELECT 1 FROM call_io o WHERE o.hid = io.hid AND o.dir = 1)");
  while (st.step()) {
    const Id hid = st.id(2);
    if (codec::atom_hid(st.id(3)) == hid) continue;
    out.warning("detached_ref", "input '" + st.text(1) + "' of call " + st.id(0).hex() + " is ref " + hid.hex() +
                                    ", whose creating call is not stored (dropped without its dependents?)");
  }
}

/// Every ref's value has a row.
void check_missing_values(sqlite3* db, Collector& out) {
  sql::Statement st(db,
                    "SELECT c.hid, io.dir, io.name, io.hid, io.cid FROM call_io io JOIN calls c ON c.id = io.call_id "
                    "WHERE NOT EXISTS (SELECT 1 FROM \"values\" v WHERE v.cid = io.cid)");
  while (st.step())
    out.problem("missing_value", "value " + st.id(4).hex() + " of ref " + st.id(3).hex() + " (" +
                                     dir_name(st.int64(1)) + " '" + st.text(2) + "' of call " + st.id(0).hex() +
                                     ") is not stored");
  out.report().unreferenced_values =
      count(db, "SELECT COUNT(*) FROM \"values\" WHERE cid NOT IN (SELECT cid FROM call_io)");
}

/// Every value's bytes (inline, or its blob file) hash to its id and have the recorded size.
void check_values(sqlite3* db, const BlobFiles* blobs, Collector& out) {
  sql::Statement st(db, "SELECT cid, size, data IS NULL, data, cid IN (SELECT cid FROM call_io) FROM \"values\"");
  while (st.step()) {
    ++out.report().values;
    out.advance();
    const Id cid = st.id(0);
    const auto size = static_cast<std::uint64_t>(st.int64(1));
    std::optional<std::vector<std::byte>> bytes;
    if (st.int64(2) == 0) {
      bytes = st.blob(3);
      if (codec::content_id(*bytes) != cid) {
        out.problem("value_mismatch", "value " + cid.hex() + ": its stored bytes do not match its id");
        continue;
      }
    } else if (blobs == nullptr) {
      out.problem("missing_blob", "value " + cid.hex() + " is recorded as a blob file, but the store has none");
      continue;
    } else {
      try {
        bytes = blobs->read(cid);
      } catch (const Error& e) {
        out.problem("blob_mismatch", "value " + cid.hex() + ": " + e.what());
        continue;
      }
      if (!bytes && st.int64(4) == 0) {
        // A cleanup interrupted after removing files but before its commit: no call uses the value.
        out.warning("unused_value_without_blob", "value " + cid.hex() + ", which no call uses, has no blob file " +
                                                     blobs->path_of(cid).string() + "; cleanup() removes its row");
        continue;
      }
      if (!bytes) {
        out.problem("missing_blob", "value " + cid.hex() + " is recorded as a blob file, but " +
                                        blobs->path_of(cid).string() + " does not exist");
        continue;
      }
    }
    if (bytes->size() != size)
      out.problem("value_mismatch", "value " + cid.hex() + " is recorded with " + std::to_string(size) +
                                        " bytes but holds " + std::to_string(bytes->size()));
  }
}

/// Blob files that no value row refers to, and stale temporaries (warnings: cleanup removes them).
void check_blob_files(sqlite3* db, const BlobFiles& blobs, const std::vector<Id>& files, Collector& out) {
  sql::Statement st(db, "SELECT data IS NULL FROM \"values\" WHERE cid = ?1");
  for (const auto& cid : files) {
    st.bind(1, cid);
    const bool row = st.step();
    const bool is_file = row && st.int64(0) != 0;
    st.reset();
    if (!is_file)
      out.warning("stray_blob", "blob file " + blobs.path_of(cid).string() +
                                    (row ? " duplicates a value stored inline" : " belongs to no value") +
                                    "; cleanup() removes it");
  }
  for (const auto& p : blobs.stale_temporaries())
    out.warning("stale_temporary", "temporary file " + p.string() +
                                       " was left by an interrupted write; "
                                       "cleanup() removes it");
}

/// Runs one check; a failure SQLite reports (a damaged page, an unreadable row) becomes a problem.
template <class F>
void guarded(const char* what, Collector& out, F&& check) {
  try {
    check();
  } catch (const sql::Busy&) {
    throw;  // contention, not damage: the caller retries the whole check
  } catch (const Error& e) {
    out.problem("sqlite", std::string("cannot check ") + what + ": " + e.what());
  }
}

/// A deferred read transaction that always ends.
class ReadSnapshot {
 public:
  explicit ReadSnapshot(sqlite3* db) : m_db(db) {
    m_owned = sqlite3_get_autocommit(db) != 0;
    if (m_owned) sql::exec(db, "BEGIN");
  }
  ~ReadSnapshot() {
    if (m_owned) sqlite3_exec(m_db, "COMMIT", nullptr, nullptr, nullptr);
  }
  ReadSnapshot(const ReadSnapshot&) = delete;
  ReadSnapshot& operator=(const ReadSnapshot&) = delete;

 private:
  sqlite3* m_db;
  bool m_owned = false;
};

}  // namespace

IntegrityReport check_integrity(sqlite3* db, const BlobFiles* blobs, const ProgressCallback& progress) {
  IntegrityReport report;
  Collector out(report, progress);
  ReadSnapshot snapshot(db);

  std::uint64_t calls = 0;
  std::uint64_t values = 0;
  guarded("row counts", out, [&] {
    calls = count(db, "SELECT COUNT(*) FROM calls");
    values = count(db, "SELECT COUNT(*) FROM \"values\"");
  });
  std::vector<Id> files;
  if (blobs != nullptr) files = blobs->list();
  report.blob_files = files.size();
  out.set_total(calls + values + files.size() + 1);

  guarded("the database file", out, [&] { check_sqlite(db, out); });
  out.advance();
  guarded("index counts", out, [&] { check_index_counts(db, out); });
  guarded("calls", out, [&] { check_calls(db, out); });
  guarded("input and output rows", out, [&] { check_orphan_io(db, out); });
  guarded("refs", out, [&] { check_refs(db, out); });
  guarded("detached refs", out, [&] { check_detached_refs(db, out); });
  guarded("referenced values", out, [&] { check_missing_values(db, out); });
  guarded("values", out, [&] { check_values(db, blobs, out); });
  if (blobs != nullptr) {
    guarded("blob files", out, [&] { check_blob_files(db, *blobs, files, out); });
    out.advance(files.size());
  }
  out.finish();
  return report;
}

}  // namespace mandala::store
