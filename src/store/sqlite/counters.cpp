#include "store/sqlite/counters.hpp"

#include <unordered_map>

#include <nlohmann/json.hpp>

#include "codec/hash.hpp"
#include "mandala/error.hpp"
#include "store/call_io.hpp"
#include "store/sqlite/sqlite.hpp"

namespace mandala::store::counters {

const char* const schema_sql = R"sql(
CREATE TABLE IF NOT EXISTS op_counts(
  op_id INTEGER PRIMARY KEY,
  calls INTEGER NOT NULL,
  output_bytes INTEGER NOT NULL,
  last_created INTEGER);
CREATE TABLE IF NOT EXISTS totals(
  id INTEGER PRIMARY KEY CHECK(id = 1),
  value_rows INTEGER NOT NULL,
  value_bytes INTEGER NOT NULL,
  blob_values INTEGER NOT NULL,
  refs INTEGER NOT NULL,
  detached INTEGER NOT NULL);
INSERT OR IGNORE INTO totals VALUES(1, 0, 0, 0, 0, 0);
)sql";

const char* const add_to_op_sql =
    "INSERT INTO op_counts(op_id, calls, output_bytes, last_created) VALUES(?1, ?2, ?3, ?4) "
    "ON CONFLICT(op_id) DO UPDATE SET calls = calls + excluded.calls, "
    "output_bytes = output_bytes + excluded.output_bytes, "
    "last_created = COALESCE(excluded.last_created, last_created)";

const char* const add_to_totals_sql =
    "UPDATE totals SET value_rows = value_rows + ?1, value_bytes = value_bytes + ?2, "
    "blob_values = blob_values + ?3, refs = refs + ?4, detached = MAX(detached, ?5) WHERE id = 1";

const char* const reset_last_created_sql =
    "UPDATE op_counts SET last_created = (SELECT created FROM calls WHERE id = "
    "(SELECT MAX(id) FROM calls WHERE op_id = ?1)) WHERE op_id = ?1";

namespace {
std::uint64_t u64(std::int64_t v) { return static_cast<std::uint64_t>(v); }
std::int64_t i64(std::uint64_t v) { return static_cast<std::int64_t>(v); }
}  // namespace

Counts load(sqlite3* db) {
  Counts c;
  sql::Statement ops(db, "SELECT op_id, calls, output_bytes, last_created FROM op_counts");
  while (ops.step()) {
    OpCounts o{u64(ops.int64(1)), u64(ops.int64(2)), std::nullopt};
    if (!ops.is_null(3)) o.last_created = ops.int64(3);
    c.ops[ops.int64(0)] = o;
  }
  sql::Statement t(db, "SELECT value_rows, value_bytes, blob_values, refs, detached FROM totals WHERE id = 1");
  if (t.step()) c.totals = {u64(t.int64(0)), u64(t.int64(1)), u64(t.int64(2)), u64(t.int64(3)), t.int64(4) != 0};
  return c;
}

Counts recount(sqlite3* db) {
  Counts c;
  std::unordered_map<Id, std::uint64_t> sizes;
  {
    sql::Statement st(db, "SELECT cid, size, data IS NULL FROM \"values\"");
    while (st.step()) {
      const auto size = u64(st.int64(1));
      sizes[st.id(0)] = size;
      ++c.totals.values;
      c.totals.value_bytes += size;
      if (st.int64(2) != 0) ++c.totals.blob_values;
    }
  }
  std::unordered_map<std::int64_t, std::vector<std::string>> outputs;
  {
    sql::Statement st(db, "SELECT id, name, outputs FROM ops");
    while (st.step()) {
      try {
        outputs[st.int64(0)] = nlohmann::json::parse(st.text(2)).get<std::vector<std::string>>();
      } catch (const std::exception&) {
        throw Error(Errc::corrupt_store, "op " + st.text(1) + " has an unreadable output name list");
      }
    }
  }
  // Every ref, and whether some stored call outputs it; inputs that are not raw values are
  // checked against the outputs at the end.
  std::unordered_map<Id, bool> refs;
  std::vector<Id> derived_inputs;
  sql::Statement st(db, "SELECT id, hid, op_id, created, io FROM calls ORDER BY id");
  while (st.step()) {
    CallRecord call;
    call.hid = st.id(1);
    const auto op = outputs.find(st.int64(2));
    if (op == outputs.end())
      throw Error(Errc::corrupt_store, "call " + call.hid.hex() + " refers to an op the ops table does not hold");
    call_io::decode(st.blob_view(4), op->second, call);
    auto& counts = c.ops[op->first];
    ++counts.calls;
    counts.last_created = st.int64(3);
    for (const auto& r : call.outputs) {
      auto size = sizes.find(r.cid);
      if (size != sizes.end() && !r.transient) counts.output_bytes += size->second;
      refs[r.hid] = true;
    }
    for (const auto& r : call.inputs) {
      refs.try_emplace(r.hid, false);
      if (codec::atom_hid(r.cid) != r.hid) derived_inputs.push_back(r.hid);
    }
  }
  c.totals.refs = refs.size();
  for (const auto& hid : derived_inputs)
    if (!refs.at(hid)) {
      c.totals.detached = true;
      break;
    }
  return c;
}

void replace(sqlite3* db, const Counts& counts) {
  sql::exec(db, "DELETE FROM op_counts");
  sql::Statement op(db, "INSERT INTO op_counts(op_id, calls, output_bytes, last_created) VALUES(?1, ?2, ?3, ?4)");
  for (const auto& [id, o] : counts.ops) {
    op.bind(1, id).bind(2, i64(o.calls)).bind(3, i64(o.output_bytes));
    if (o.last_created) op.bind(4, *o.last_created);
    else op.bind_null(4);
    op.run();
  }
  const auto& t = counts.totals;
  sql::Statement totals(db,
                        "UPDATE totals SET value_rows = ?1, value_bytes = ?2, blob_values = ?3, refs = ?4, "
                        "detached = ?5 WHERE id = 1");
  totals.bind(1, i64(t.values))
      .bind(2, i64(t.value_bytes))
      .bind(3, i64(t.blob_values))
      .bind(4, i64(t.refs))
      .bind(5, std::int64_t{t.detached ? 1 : 0})
      .run();
}

std::vector<std::string> differences(const Counts& stored, const Counts& actual,
                                     const std::map<std::int64_t, std::string>& op_labels) {
  std::vector<std::string> out;
  auto compare = [&](const std::string& what, std::uint64_t kept, std::uint64_t real) {
    if (kept != real)
      out.push_back("the stored count of " + what + " is " + std::to_string(kept) + " but the store holds " +
                    std::to_string(real));
  };
  const auto& s = stored.totals;
  const auto& a = actual.totals;
  compare("values", s.values, a.values);
  compare("value bytes", s.value_bytes, a.value_bytes);
  compare("values in blob files", s.blob_values, a.blob_values);
  compare("refs", s.refs, a.refs);
  if (a.detached && !s.detached)
    out.push_back(
        "a call has an input whose creating call is not stored, but the totals say no call has one (new outputs "
        "would be miscounted)");
  std::map<std::int64_t, std::pair<OpCounts, OpCounts>> ops;
  for (const auto& [id, o] : stored.ops) ops[id].first = o;
  for (const auto& [id, o] : actual.ops) ops[id].second = o;
  for (const auto& [id, pair] : ops) {
    const auto& [kept, real] = pair;
    auto label = op_labels.find(id);
    const std::string name =
        label != op_labels.end() ? "op " + label->second : "op #" + std::to_string(id) + " (not in the ops table)";
    compare("calls of " + name, kept.calls, real.calls);
    compare("output bytes of " + name, kept.output_bytes, real.output_bytes);
    if (kept.last_created != real.last_created) {
      auto text = [](const std::optional<std::int64_t>& t) { return t ? std::to_string(*t) : std::string("none"); };
      out.push_back("the stored time of the last call of " + name + " is " + text(kept.last_created) +
                    " but its newest call was recorded at " + text(real.last_created));
    }
  }
  return out;
}

}  // namespace mandala::store::counters
