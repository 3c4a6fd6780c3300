// Storage::check_integrity: a healthy store is clean (also read-only and in memory); each way of
// damaging a store is reported under its kind, naming the id involved.

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "mandala/mandala.hpp"
#include "store/call_io.hpp"
#include "support/integrity.hpp"
#include "support/sql.hpp"
#include "support/temp_dir.hpp"

namespace md = mandala;
namespace fs = std::filesystem;
using mandala::testing::query;
using mandala::testing::sql;

namespace {

const auto inc = md::op("inc", {"x"}, [](int x) { return x + 1; });
const auto split = md::op("split", {"x"}, [](int x) { return std::tuple{x / 10, x % 10}; }, {.outputs = {"hi", "lo"}});
const auto big = md::op("big", {"n"}, [](int n) { return std::vector<double>(static_cast<std::size_t>(n), 0.5); });
const auto total = md::op("total", {"v"}, [](const std::vector<double>& v) {
  double s = 0;
  for (double d : v) s += d;
  return s;
});

md::StorageOptions small_blobs() {
  md::StorageOptions o;
  o.blob_threshold_bytes = 1024;
  return o;
}

/// 5 inc calls, 3 split calls, one big value (a blob file) passed on to total.
void fill(md::Storage& storage) {
  md::Session s(storage);
  for (int i = 0; i < 5; ++i) inc(i);
  for (int i = 10; i < 13; ++i) split(i);
  total(big(1000));
}

/// Rewrites the io column of the call with this hid (hex) through `change`, and its call_refs
/// rows to match (docs/storage-format.md 3.2). With `as_new_call`, the changed call is inserted
/// as another calls row (same op, another hid) instead.
template <class F>
void rewrite_io(const fs::path& db, const std::string& hid_hex, F&& change, bool as_new_call = false) {
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &raw), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(raw,
                               "SELECT c.id, c.hid, c.op_id, c.io, o.outputs FROM calls c JOIN ops o ON o.id = c.op_id "
                               "WHERE hex(c.hid) = upper(?1)",
                               -1, &st, nullptr),
            SQLITE_OK);
  sqlite3_bind_text(st, 1, hid_hex.c_str(), -1, SQLITE_TRANSIENT);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  std::int64_t id = sqlite3_column_int64(st, 0);
  md::store::CallRecord call;
  std::memcpy(call.hid.bytes.data(), sqlite3_column_blob(st, 1), 16);
  const std::int64_t op_id = sqlite3_column_int64(st, 2);
  const auto* io = static_cast<const std::byte*>(sqlite3_column_blob(st, 3));
  const auto outputs =
      nlohmann::json::parse(reinterpret_cast<const char*>(sqlite3_column_text(st, 4))).get<std::vector<std::string>>();
  md::store::call_io::decode(std::span(io, static_cast<std::size_t>(sqlite3_column_bytes(st, 3))), outputs, call);
  sqlite3_finalize(st);
  change(call);
  if (as_new_call) call.hid.bytes[15] ^= 0xff;  // another call: its outputs' hids are no longer derived
  std::vector<std::byte> bytes;
  md::store::call_io::encode(call, outputs, bytes);
  auto run = [&](const char* q, auto&& bind) {
    sqlite3_stmt* w = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(raw, q, -1, &w, nullptr), SQLITE_OK) << sqlite3_errmsg(raw);
    bind(w);
    ASSERT_EQ(sqlite3_step(w), SQLITE_DONE) << sqlite3_errmsg(raw);
    sqlite3_finalize(w);
  };
  if (as_new_call) {
    // (Its ids are not derived from its inputs: it stores a content id, here its hid.)
    run("INSERT INTO calls(hid, cid, op_id, created, io) SELECT ?3, ?3, op_id, created, ?2 FROM calls WHERE id = ?1",
        [&](sqlite3_stmt* w) {
          sqlite3_bind_int64(w, 1, id);
          sqlite3_bind_blob(w, 2, bytes.data(), static_cast<int>(bytes.size()), SQLITE_STATIC);
          sqlite3_bind_blob(w, 3, call.hid.bytes.data(), 16, SQLITE_STATIC);
        });
    id = sqlite3_last_insert_rowid(raw);
  } else {
    run("UPDATE calls SET io = ?2 WHERE id = ?1", [&](sqlite3_stmt* w) {
      sqlite3_bind_int64(w, 1, id);
      sqlite3_bind_blob(w, 2, bytes.data(), static_cast<int>(bytes.size()), SQLITE_STATIC);
    });
    run("DELETE FROM call_refs WHERE call_id = ?1", [&](sqlite3_stmt* w) { sqlite3_bind_int64(w, 1, id); });
  }
  for (const std::int64_t dir : {0, 1})
    for (const auto& r : dir == 0 ? call.inputs : call.outputs)
      run("INSERT OR IGNORE INTO call_refs(key, dir, call_id) VALUES(?1, ?2, ?3)", [&](sqlite3_stmt* w) {
        sqlite3_bind_int64(w, 1, md::store::call_io::ref_key(r.hid));
        sqlite3_bind_int64(w, 2, dir);
        sqlite3_bind_int64(w, 3, id);
      });
  (void)op_id;
  sqlite3_close(raw);
}

/// The hex hid of the first stored call of an op.
std::string first_call_of(const fs::path& db, const std::string& op);

bool has(const std::vector<md::IntegrityProblem>& list, const std::string& kind, const std::string& fragment = "") {
  return std::any_of(list.begin(), list.end(),
                     [&](const auto& p) { return p.kind == kind && p.message.find(fragment) != std::string::npos; });
}

std::string first_call_of(const fs::path& db, const std::string& op) {
  return query(
      db, "SELECT c.hid FROM calls c JOIN ops o ON o.id = c.op_id WHERE o.name = '" + op + "' ORDER BY c.id LIMIT 1");
}

class Integrity : public ::testing::Test {
 protected:
  void SetUp() override {
    md::Storage storage(db(), small_blobs());
    fill(storage);
  }
  [[nodiscard]] fs::path db() const { return m_dir / "store.db"; }
  [[nodiscard]] fs::path blob_dir() const { return fs::path(db().string() + ".blobs"); }
  [[nodiscard]] md::IntegrityReport check() const {
    md::Storage storage(db(), small_blobs());
    return storage.check_integrity();
  }
  /// Checks and expects exactly one kind of problem, mentioning `fragment`.
  void expect_only(const std::string& kind, const std::string& fragment = "") const {
    const auto report = check();
    EXPECT_FALSE(report.ok());
    EXPECT_TRUE(has(report.problems, kind, fragment)) << md::testing::describe(report.problems);
    for (const auto& p : report.problems) EXPECT_EQ(p.kind, kind) << p.message;
  }
  [[nodiscard]] std::vector<fs::path> blob_files() const {
    std::vector<fs::path> out;
    for (const auto& e : fs::recursive_directory_iterator(blob_dir()))
      if (e.is_regular_file()) out.push_back(e.path());
    return out;
  }

  md::testing::TempDir m_dir;
};

TEST_F(Integrity, HealthyStoreIsCleanAndCounted) {
  const auto report = check();
  EXPECT_TRUE(report.ok()) << md::testing::describe(report.problems);
  EXPECT_TRUE(report.warnings.empty()) << md::testing::describe(report.warnings);
  EXPECT_EQ(report.ops, 4u);
  EXPECT_EQ(report.calls, 10u);
  EXPECT_EQ(report.io_rows, 5u * 2 + 3u * 3 + 2u + 2u);
  EXPECT_EQ(report.refs, 5u * 2 + 3u * 3 + 3u);  // total's input is big's output
  EXPECT_EQ(report.blob_files, 1u);
  EXPECT_EQ(report.unreferenced_values, 0u);
  EXPECT_GE(report.values, 10u);
}

TEST_F(Integrity, ProgressEndsAtTotalAndNeverGoesBack) {
  md::Storage storage(db(), small_blobs());
  std::vector<std::pair<std::uint64_t, std::uint64_t>> seen;
  const auto report =
      storage.check_integrity([&](std::uint64_t done, std::uint64_t all) { seen.emplace_back(done, all); });
  EXPECT_TRUE(report.ok());
  ASSERT_GE(seen.size(), 2u);
  EXPECT_EQ(seen.back().first, seen.back().second);
  EXPECT_EQ(seen.back().second, report.calls + report.values + report.blob_files + 1);
  for (std::size_t i = 1; i < seen.size(); ++i) EXPECT_GE(seen[i].first, seen[i - 1].first);
}

TEST_F(Integrity, WorksReadOnlyAndLeavesTheFilesAlone) {
  md::StorageOptions o = small_blobs();
  o.read_only = true;
  const auto size = fs::file_size(db());
  md::Storage storage(db(), o);
  EXPECT_TRUE(storage.check_integrity().ok());
  EXPECT_EQ(fs::file_size(db()), size);
}

TEST(IntegrityMemory, InMemoryStoreIsClean) {
  md::Storage storage;
  fill(storage);
  const auto report = storage.check_integrity();
  EXPECT_TRUE(report.ok()) << md::testing::describe(report.problems);
  EXPECT_EQ(report.calls, 10u);
  EXPECT_EQ(report.blob_files, 0u);
}

TEST(IntegrityMemory, PendingCallsAreFlushedFirst) {
  md::Storage storage;
  md::Session s(storage);
  inc(41);
  EXPECT_EQ(storage.check_integrity().calls, 1u);
}

TEST_F(Integrity, MissingValueNamesTheValue) {
  std::string cid;
  {
    md::Storage storage(db(), small_blobs());
    cid = storage.calls_of(inc).front().outputs.front().second.cid().hex();
  }
  sql(db(), "DELETE FROM \"values\" WHERE cid = x'" + cid + "'");
  expect_only("missing_value", cid);
}

TEST_F(Integrity, AlteredInlineValueIsAMismatch) {
  const std::string cid = query(db(), "SELECT cid FROM \"values\" WHERE data IS NOT NULL LIMIT 1");
  sql(db(), "UPDATE \"values\" SET data = x'2a' WHERE cid = x'" + cid + "'");
  expect_only("value_mismatch", cid);
}

TEST_F(Integrity, WrongRecordedSizeIsAMismatch) {
  const std::string cid = query(db(), "SELECT cid FROM \"values\" WHERE data IS NOT NULL LIMIT 1");
  sql(db(), "UPDATE \"values\" SET size = size + 1 WHERE cid = x'" + cid + "'");
  expect_only("value_mismatch", "recorded with");
}

TEST_F(Integrity, DeletedBlobFileIsMissing) {
  const auto files = blob_files();
  ASSERT_EQ(files.size(), 1u);
  fs::remove(files[0]);
  expect_only("missing_blob", files[0].filename().string());
}

TEST_F(Integrity, AlteredBlobFileIsAMismatch) {
  const auto files = blob_files();
  ASSERT_EQ(files.size(), 1u);
  std::fstream f(files[0], std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(100);
  f.put('\x7f');
  f.close();
  expect_only("blob_mismatch", files[0].filename().string());
}

TEST_F(Integrity, TruncatedBlobFileIsAMismatch) {
  const auto files = blob_files();
  ASSERT_EQ(files.size(), 1u);
  fs::resize_file(files[0], fs::file_size(files[0]) / 2);
  expect_only("blob_mismatch", files[0].filename().string());
}

TEST_F(Integrity, StrayAndTemporaryBlobFilesAreWarningsOnly) {
  const fs::path stray = blob_dir() / "ab" / "abababababababababababababababab";
  fs::create_directories(stray.parent_path());
  std::ofstream(stray) << "left over";
  const fs::path tmp = blob_dir() / "ab" / "abababababababababababababababab.tmp.1.1";
  std::ofstream(tmp) << "half";
  fs::last_write_time(tmp, fs::file_time_type::clock::now() - std::chrono::hours(2));
  auto report = check();
  EXPECT_TRUE(report.ok()) << md::testing::describe(report.problems);
  EXPECT_TRUE(has(report.warnings, "stray_blob", "abababab")) << md::testing::describe(report.warnings);
  EXPECT_TRUE(has(report.warnings, "stale_temporary", ".tmp.1.1")) << md::testing::describe(report.warnings);
  // cleanup() removes both, and then there is nothing to warn about.
  {
    md::Storage storage(db(), small_blobs());
    storage.cleanup();
  }
  report = check();
  EXPECT_TRUE(report.warnings.empty()) << md::testing::describe(report.warnings);
  EXPECT_FALSE(fs::exists(stray));
  EXPECT_FALSE(fs::exists(tmp));
}

TEST_F(Integrity, DroppingWithoutDependentsDetachesRefs) {
  {
    md::Storage storage(db(), small_blobs());
    const auto creators = storage.calls_of("big");
    ASSERT_EQ(creators.size(), 1u);
    const md::Id hid = creators[0].hid;
    storage.drop_calls(std::span<const md::Id>(&hid, 1));
  }
  auto report = check();
  EXPECT_TRUE(report.ok()) << md::testing::describe(report.problems);
  EXPECT_TRUE(has(report.warnings, "detached_ref", "input 'v'")) << md::testing::describe(report.warnings);
  // Dropping with dependents leaves nothing detached.
  {
    md::Storage storage(db(), small_blobs());
    md::Session s(storage);
    const auto again = big(1000);
    storage.drop_calls(std::vector<md::Id>{storage.creator_of(again)->hid}, md::Dependents::yes);
  }
  report = check();
  EXPECT_TRUE(report.ok()) << md::testing::describe(report.problems);
  EXPECT_TRUE(report.warnings.empty()) << md::testing::describe(report.warnings);
}

TEST_F(Integrity, InterruptedCleanupLeavesOnlyAWarning) {
  // A value no call uses, whose file a cleanup removed before failing to commit.
  {
    md::Storage storage(db(), small_blobs());
    storage.drop_calls(std::vector<md::Id>{storage.calls_of("total")[0].hid, storage.calls_of("big")[0].hid});
  }
  const auto files = blob_files();
  ASSERT_EQ(files.size(), 1u);
  fs::remove(files[0]);
  auto report = check();
  EXPECT_TRUE(report.ok()) << md::testing::describe(report.problems);
  EXPECT_TRUE(has(report.warnings, "unused_value_without_blob")) << md::testing::describe(report.warnings);
  // Recomputing the value writes its file again, even though its row is still there.
  {
    md::Storage storage(db(), small_blobs());
    md::Session s(storage);
    EXPECT_EQ(total(big(1000)).get(), 500.0);
  }
  report = check();
  EXPECT_TRUE(report.ok()) << md::testing::describe(report.problems);
  EXPECT_TRUE(report.warnings.empty()) << md::testing::describe(report.warnings);
  EXPECT_EQ(blob_files().size(), 1u);
}

TEST_F(Integrity, CallOfAMissingOp) {
  sql(db(), "DELETE FROM ops WHERE name = 'split'");
  expect_only("missing_op", "refers to op #");
}

TEST_F(Integrity, CallOfAMissingSemanticVersion) {
  sql(db(), "UPDATE calls SET semantic = 42 WHERE id = (SELECT MIN(id) FROM calls)");
  expect_only("missing_version", "refers to semantic version #42");
}

TEST_F(Integrity, CallWithoutAContentIdThatCannotBeDerived) {
  // total(big(1000)) has an input from another call: its content id is stored, and cannot be
  // derived when it is taken away.
  md::Storage storage(db(), small_blobs());
  const auto calls = storage.calls_of("total");
  ASSERT_FALSE(calls.empty());
  const std::string hid = calls.front().hid.hex();
  sql(db(), "UPDATE calls SET cid = x'' WHERE hid = x'" + hid + "'");
  expect_only("underivable_cid", hid);
}

TEST_F(Integrity, ContentIdOfAWrongLength) {
  sql(db(), "UPDATE calls SET cid = x'0102' WHERE id = (SELECT MIN(id) FROM calls)");
  expect_only("bad_cid", "2 bytes");
}

TEST_F(Integrity, UnreadableOpDeclaration) {
  sql(db(), "UPDATE ops SET outputs = 'not json' WHERE name = 'inc'");
  expect_only("bad_op", "inc v");
}

TEST_F(Integrity, RowsOfAMissingCallAreOrphans) {
  md::Storage storage(db(), small_blobs());
  const auto call = storage.calls_of("inc").front();
  sql(db(), "DELETE FROM calls WHERE hid = x'" + call.hid.hex() + "'");
  expect_only("orphan_io", "does not exist");
  // Queries skip the orphan rows (found by fuzzing: they used to read a call that is not there).
  EXPECT_TRUE(storage.consumers_of(*call.input("x")).empty());
}

TEST_F(Integrity, CallLackingAnOutput) {
  const std::string hid = first_call_of(db(), "split");
  rewrite_io(db(), hid,
             [](md::store::CallRecord& c) { std::erase_if(c.outputs, [](const auto& o) { return o.name == "lo"; }); });
  expect_only("missing_output", hid);
}

TEST_F(Integrity, CallWithAnUndeclaredOutput) {
  const std::string hid = first_call_of(db(), "inc");
  rewrite_io(db(), hid, [](md::store::CallRecord& c) {
    auto extra = c.outputs.front();
    extra.name = "extra";
    extra.hid.bytes[0] ^= 0x5a;
    c.outputs.push_back(extra);
  });
  expect_only("unexpected_output", hid);
}

TEST_F(Integrity, CallRecordedTwice) {
  // A second calls row carrying the same outputs as an existing call.
  rewrite_io(
      db(), first_call_of(db(), "inc"), [](md::store::CallRecord&) {}, /*as_new_call=*/true);
  expect_only("duplicate_call", "recorded twice");
}

TEST_F(Integrity, RefWithTwoValues) {
  // big's output is total's input: give the input another (stored) value.
  md::Id other;
  {
    md::Storage storage(db(), small_blobs());
    other = storage.calls_of(inc).front().outputs.front().second.cid();
  }
  rewrite_io(db(), first_call_of(db(), "total"), [&](md::store::CallRecord& c) { c.inputs.front().cid = other; });
  expect_only("ref_conflict", "different values");
}

TEST_F(Integrity, UndecodableIoColumn) {
  const std::string hid = first_call_of(db(), "inc");
  sql(db(), "UPDATE calls SET io = x'0107' WHERE hid = x'" + hid + "'");
  const auto report = check();
  EXPECT_TRUE(has(report.problems, "bad_io", hid)) << md::testing::describe(report.problems);
  for (const auto& p : report.problems) EXPECT_EQ(p.kind, "bad_io") << p.message;
}

TEST_F(Integrity, IoWithoutItsIndexRow) {
  sql(db(), "DELETE FROM call_refs WHERE call_id = 1 AND dir = 1");
  expect_only("unindexed_io", "call #1");
}

TEST_F(Integrity, IndexOutOfStepWithItsTable) {
  // Hide the index from SQLite, delete a row, and put the index back: it keeps the stale entry.
  const std::string index_sql = query(db(), "SELECT sql FROM sqlite_master WHERE name = 'calls_by_op'");
  const std::string rootpage = query(db(), "SELECT rootpage FROM sqlite_master WHERE name = 'calls_by_op'");
  ASSERT_FALSE(index_sql.empty());
  sql(db(), "PRAGMA writable_schema = ON; DELETE FROM sqlite_master WHERE name = 'calls_by_op';");
  sql(db(), "DELETE FROM call_refs WHERE call_id = 2; DELETE FROM calls WHERE id = 2;");
  std::string escaped;
  for (char c : index_sql) escaped += c == '\'' ? std::string("''") : std::string(1, c);
  sql(db(),
      "PRAGMA writable_schema = ON; INSERT INTO sqlite_master(type, name, tbl_name, rootpage, sql) "
      "VALUES('index', 'calls_by_op', 'calls', " +
          rootpage + ", '" + escaped + "');");
  const auto report = check();
  EXPECT_TRUE(has(report.problems, "index_count", "calls_by_op")) << md::testing::describe(report.problems);
  EXPECT_TRUE(has(report.problems, "sqlite")) << md::testing::describe(report.problems);
}

TEST_F(Integrity, DamagedPagesAreReportedNotThrown) {
  // Fill a few more pages, then overwrite the middle of the file: SQLite's check names the damage
  // and the other checks still run (or report that they could not).
  {
    md::Storage storage(db(), small_blobs());
    md::Session s(storage);
    for (int i = 100; i < 2000; ++i) inc(i);
  }
  const auto size = fs::file_size(db());
  ASSERT_GT(size, 8u * 4096);
  {
    std::fstream f(db(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(size / 2 / 4096 * 4096));
    const std::string garbage(4096, '\x5a');
    f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  md::IntegrityReport report;
  ASSERT_NO_THROW(report = check());
  EXPECT_FALSE(report.ok());
  EXPECT_TRUE(has(report.problems, "sqlite")) << md::testing::describe(report.problems);
}

}  // namespace
