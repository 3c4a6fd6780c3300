// Storage::check_integrity over the SQLite schema (docs/storage-format.md). Each check is its own
// function; a check that SQLite cannot complete (a damaged page) is reported as a "sqlite"
// problem and the remaining checks still run.

#include "store/sqlite/integrity.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "codec/hash.hpp"
#include "store/call_io.hpp"
#include "store/sqlite/counters.hpp"
#include "store/sqlite/sqlite.hpp"

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
  std::optional<std::vector<std::string>> outputs;  ///< declared order; nullopt when unreadable
};

std::unordered_map<std::int64_t, OpDecl> load_ops(sqlite3* db, Collector& out) {
  std::unordered_map<std::int64_t, OpDecl> ops;
  sql::Statement st(db, "SELECT id, name, version, inputs, outputs FROM ops");
  while (st.step()) {
    OpDecl op;
    op.label = st.text(1) + " v" + std::to_string(st.int64(2));
    try {
      (void)nlohmann::json::parse(st.text(3)).get<std::vector<std::string>>();
      op.outputs = nlohmann::json::parse(st.text(4)).get<std::vector<std::string>>();
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

/// What one pass over every call's io column finds out about refs and the ref index.
struct IoScan {
  struct Ref {
    Id cid;
    std::uint32_t creators = 0;
    bool conflict = false;
  };
  std::unordered_map<Id, Ref> refs;
  std::unordered_set<Id> cids;
  /// (key, dir, call id) rows call_refs must hold, from the calls whose io was read.
  std::vector<std::tuple<std::int64_t, std::int64_t, std::int64_t>> index_rows;
  /// Calls whose io could not be read (their op is missing or unreadable, or the io is damaged).
  std::unordered_set<std::int64_t> unread;
  /// Inputs that are not raw values (their hid is not the atom hid of their value).
  struct Input {
    Id call;
    std::string name;
    Id hid;
  };
  std::vector<Input> detached_inputs;
};

/// Every call's op exists, its io column decodes, and its outputs are exactly the op's declared
/// outputs; every value its io names is stored. Collects refs for the checks below.
void check_calls(sqlite3* db, Collector& out, IoScan& scan) {
  const auto ops = load_ops(db, out);
  sql::Statement calls(db, "SELECT id, hid, op_id, io FROM calls ORDER BY id");
  sql::Statement has_value(db, "SELECT 1 FROM \"values\" WHERE cid = ?1");
  std::unordered_map<Id, bool> stored;
  while (calls.step()) {
    const std::int64_t id = calls.int64(0);
    CallRecord call;
    call.hid = calls.id(1);
    const std::int64_t op_id = calls.int64(2);
    ++out.report().calls;
    out.advance();
    auto op = ops.find(op_id);
    if (op == ops.end()) {
      out.problem("missing_op", "call " + call.hid.hex() + " refers to op #" + std::to_string(op_id) +
                                    ", which the ops table does not hold");
      scan.unread.insert(id);
      continue;
    }
    if (!op->second.outputs) {
      scan.unread.insert(id);
      continue;
    }
    const auto& declared = *op->second.outputs;
    try {
      call_io::decode(calls.blob_view(3), declared, call);
    } catch (const Error& e) {
      out.problem("bad_io", "call " + call.hid.hex() + " of op " + op->second.label + ": " + e.what());
      scan.unread.insert(id);
      continue;
    }
    std::vector<std::string> names;
    for (const auto& o : call.outputs) names.push_back(o.name);
    std::sort(names.begin(), names.end());
    std::vector<std::string> sorted_declared = declared;
    std::sort(sorted_declared.begin(), sorted_declared.end());
    for (const auto& name : sorted_declared)
      if (!std::binary_search(names.begin(), names.end(), name))
        out.problem("missing_output", "call " + call.hid.hex() + " of op " + op->second.label + " lacks its output '" +
                                          name + "' (has " + join(names) + ")");
    for (const auto& name : names)
      if (!std::binary_search(sorted_declared.begin(), sorted_declared.end(), name))
        out.problem("unexpected_output", "call " + call.hid.hex() + " of op " + op->second.label + " has output '" +
                                             name + "', which the op does not declare " + join(sorted_declared));
    for (const std::int64_t dir : {0, 1}) {
      for (const auto& r : dir == 0 ? call.inputs : call.outputs) {
        ++out.report().io_rows;
        auto [it, fresh] = scan.refs.try_emplace(r.hid, IoScan::Ref{r.cid});
        if (!fresh && it->second.cid != r.cid) it->second.conflict = true;
        if (dir == 1) ++it->second.creators;
        scan.cids.insert(r.cid);
        if (dir == 0 && codec::atom_hid(r.cid) != r.hid) scan.detached_inputs.push_back({call.hid, r.name, r.hid});
        scan.index_rows.emplace_back(call_io::ref_key(r.hid), dir, id);
        auto known = stored.find(r.cid);
        if (known == stored.end()) {
          has_value.bind(1, r.cid);
          known = stored.emplace(r.cid, has_value.step()).first;
          has_value.reset();
        }
        if (!known->second && !r.transient)
          out.problem("missing_value", "value " + r.cid.hex() + " of ref " + r.hid.hex() + " (" + dir_name(dir) + " '" +
                                           r.name + "' of call " + call.hid.hex() + ") is not stored");
      }
    }
  }
}

/// The ref index holds exactly one row per input and output of every call.
void check_ref_index(sqlite3* db, Collector& out, IoScan& scan) {
  auto& want = scan.index_rows;
  std::sort(want.begin(), want.end());
  want.erase(std::unique(want.begin(), want.end()), want.end());
  sql::Statement st(db,
                    "SELECT key, dir, call_id, EXISTS(SELECT 1 FROM calls c WHERE c.id = r.call_id) "
                    "FROM call_refs r ORDER BY key, dir, call_id");
  std::size_t i = 0;
  auto key_text = [](std::int64_t key) {
    Id prefix;
    for (int b = 0; b < 8; ++b)
      prefix.bytes[static_cast<std::size_t>(b)] =
          static_cast<std::uint8_t>(static_cast<std::uint64_t>(key) >> (56 - 8 * b));
    return prefix.hex().substr(0, 16);
  };
  auto missing_row = [&](const std::tuple<std::int64_t, std::int64_t, std::int64_t>& row) {
    out.problem("unindexed_io", "the " + dir_name(std::get<1>(row)) + " with hid prefix " + key_text(std::get<0>(row)) +
                                    " of call #" + std::to_string(std::get<2>(row)) + " has no call_refs row");
  };
  while (st.step()) {
    const std::tuple<std::int64_t, std::int64_t, std::int64_t> row{st.int64(0), st.int64(1), st.int64(2)};
    while (i < want.size() && want[i] < row) missing_row(want[i++]);
    if (i < want.size() && want[i] == row) {
      ++i;
      continue;
    }
    if (scan.unread.contains(std::get<2>(row))) continue;
    out.problem("orphan_io", "the call_refs row of the " + dir_name(std::get<1>(row)) + " with hid prefix " +
                                 key_text(std::get<0>(row)) + " belongs to call #" + std::to_string(std::get<2>(row)) +
                                 (st.int64(3) != 0 ? ", whose io has no such ref" : ", which does not exist"));
  }
  while (i < want.size()) missing_row(want[i++]);
}

/// One content id per ref, at most one creating call per ref; counts refs.
void check_refs(Collector& out, const IoScan& scan) {
  for (const auto& [hid, ref] : scan.refs) {
    if (ref.conflict) out.problem("ref_conflict", "ref " + hid.hex() + " appears with different values");
    if (ref.creators > 1)
      out.problem("duplicate_call", "ref " + hid.hex() + " is the output of " + std::to_string(ref.creators) +
                                        " stored calls (a call was recorded twice)");
  }
  out.report().refs = scan.refs.size();
}

/// Inputs that are neither raw values (atoms) nor the output of a stored call: their creating
/// call was dropped without its dependents (a warning: the value is still stored).
void check_detached_refs(Collector& out, const IoScan& scan) {
  for (const auto& d : scan.detached_inputs) {
    auto it = scan.refs.find(d.hid);
    if (it != scan.refs.end() && it->second.creators > 0) continue;
    out.warning("detached_ref", "input '" + d.name + "' of call " + d.call.hex() + " is ref " + d.hid.hex() +
                                    ", whose creating call is not stored (dropped without its dependents?)");
  }
}

/// Values no call uses (kept until cleanup()).
void count_unreferenced_values(sqlite3* db, Collector& out, const IoScan& scan) {
  sql::Statement st(db, "SELECT cid FROM \"values\"");
  while (st.step())
    if (!scan.cids.contains(st.id(0))) ++out.report().unreferenced_values;
}

/// Every value's bytes (inline, or its blob file) hash to its id and have the recorded size.
void check_values(sqlite3* db, const BlobFiles* blobs, const IoScan& scan, Collector& out) {
  sql::Statement st(db, "SELECT cid, size, data IS NULL, data FROM \"values\"");
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
      if (!bytes && !scan.cids.contains(cid)) {
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

/// The maintained counters (store/sqlite/counters.hpp) agree with a recount of the data. Skipped when
/// some call could not be read (that damage is reported already and would skew the recount),
/// and for a store of a schema before the counters (opened read-only, not upgraded).
void check_counters(sqlite3* db, const IoScan& scan, Collector& out) {
  if (!scan.unread.empty()) return;
  {
    sql::Statement v(db, "SELECT value FROM meta WHERE key = 'schema_version'");
    if (v.step() && (v.text(0) == "2" || v.text(0) == "3")) return;
  }
  if (count(db, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('op_counts', 'totals')") != 2 ||
      count(db, "SELECT COUNT(*) FROM totals") != 1) {
    out.problem("count_mismatch", "the counter tables (op_counts, totals) are missing or incomplete");
    return;
  }
  std::map<std::int64_t, std::string> labels;
  {
    sql::Statement st(db, "SELECT id, name, version FROM ops");
    while (st.step()) labels[st.int64(0)] = st.text(1) + " v" + std::to_string(st.int64(2));
  }
  for (auto& message : counters::differences(counters::load(db), counters::recount(db), labels))
    out.problem("count_mismatch", std::move(message));
}

/// Every calls.semantic names a vc_semantics row (schema 5; older stores read-only have no such
/// column: their semantic versions are vc_calls rows, which cannot dangle by construction).
void check_call_versions(sqlite3* db, Collector& out) {
  if (count(db, "SELECT COUNT(*) FROM pragma_table_info('calls') WHERE name = 'semantic'") == 0) return;
  sql::Statement st(db,
                    "SELECT hid, semantic FROM calls WHERE semantic IS NOT NULL AND "
                    "semantic NOT IN (SELECT id FROM vc_semantics) ORDER BY id");
  while (st.step())
    out.problem("missing_version", "call " + st.id(0).hex() + " refers to semantic version #" +
                                       std::to_string(st.int64(1)) +
                                       ", which the vc_semantics table lacks; drop the call (it cannot be "
                                       "matched to a code version)");
}

/// Every call's content id is stored (16 bytes) or derivable: an empty one is allowed only when
/// the call's inputs are all raw values and its hid is what its op, inputs and semantic version
/// give (docs/storage-format.md 3.2); the store derives it then, and finds the call by content
/// under its hid.
void check_content_ids(sqlite3* db, Collector& out) {
  const bool numbered = count(db, "SELECT COUNT(*) FROM pragma_table_info('calls') WHERE name = 'semantic'") != 0;
  const bool legacy = !numbered && count(db, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'vc_calls'") != 0;
  // (semantic version, whether the call names one)
  const std::string semantic =
      numbered ? "(SELECT s.semantic FROM vc_semantics s WHERE s.id = c.semantic), c.semantic IS NOT NULL"
      : legacy ? "(SELECT v.semantic_version FROM vc_calls v WHERE v.call_id = c.id), 0"
               : "NULL, 0";
  sql::Statement st(db, "SELECT c.hid, length(c.cid), o.name, o.version, o.outputs, c.io, " + semantic +
                            " FROM calls c JOIN ops o ON o.id = c.op_id WHERE length(c.cid) <> 16 ORDER BY c.id");
  while (st.step()) {
    const Id hid = st.id(0);
    if (st.int64(1) != 0) {
      out.problem("bad_cid", "call " + hid.hex() + " has a content id of " + std::to_string(st.int64(1)) +
                                 " bytes (16, or none for a call of raw inputs); the store is damaged: restore it "
                                 "from a backup or drop the call");
      continue;
    }
    if (st.is_null(6) && st.int64(7) != 0) continue;  // its semantic version is missing: missing_version
    CallRecord call;
    call.hid = hid;
    call.op = st.text(2);
    call.version = static_cast<std::uint32_t>(st.int64(3));
    if (!st.is_null(6)) call.semantic = st.id(6);
    try {
      call_io::decode(st.blob_view(5), nlohmann::json::parse(st.text(4)).get<std::vector<std::string>>(), call);
    } catch (const std::exception&) {
      continue;  // an unreadable op or io: bad_op or bad_io
    }
    call.cid = call_io::content_id(call, call.semantic ? &*call.semantic : nullptr);
    if (!call_io::ids_derive_from_raw_inputs(call))
      out.problem("underivable_cid", "call " + hid.hex() + " of op " + call.op +
                                         " stores no content id, but its inputs are not all raw values or its id "
                                         "is not what its op and inputs give: its content id cannot be derived; "
                                         "the store is damaged: drop the call or restore the store from a backup");
  }
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
  IoScan scan;
  guarded("calls", out, [&] { check_calls(db, out, scan); });
  guarded("the ref index", out, [&] { check_ref_index(db, out, scan); });
  guarded("call versions", out, [&] { check_call_versions(db, out); });
  guarded("content ids", out, [&] { check_content_ids(db, out); });
  guarded("refs", out, [&] { check_refs(out, scan); });
  guarded("detached refs", out, [&] { check_detached_refs(out, scan); });
  guarded("unreferenced values", out, [&] { count_unreferenced_values(db, out, scan); });
  guarded("values", out, [&] { check_values(db, blobs, scan, out); });
  // A recount of damaged data differs from the counts by the damage: counts are checked when
  // everything else is sound.
  if (report.problems.empty()) guarded("counts", out, [&] { check_counters(db, scan, out); });
  if (blobs != nullptr) {
    guarded("blob files", out, [&] { check_blob_files(db, *blobs, files, out); });
    out.advance(files.size());
  }
  out.finish();
  return report;
}

}  // namespace mandala::store
