// The counts a store keeps up to date (docs/storage-format.md 3.8): after new calls, memoized
// reruns, several storages and processes writing the same calls, drops, dropped versions, gc
// and reopening, Storage::stats() and ops() give exactly what a recount of the data gives, and
// the integrity check (which recounts) agrees.

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <thread>

#include "engine/engine.hpp"
#include "mandala/mandala.hpp"
#include "support/backends.hpp"
#include "support/fingerprints.hpp"
#include "support/integrity.hpp"
#include "support/sql.hpp"
#include "versioning/components.hpp"

namespace md = mandala;
using md::testing::BackendTest;

namespace {

const auto inc = md::op("inc", {"x"}, [](int x) { return x + 1; });
const auto add = md::op("add", {"a", "b"}, [](int a, int b) { return a + b; });
const auto text = md::op("text", {"n"}, [](int n) { return std::string(static_cast<std::size_t>(n), 'a'); });

/// inc(x) for x in 0..n-1, add(inc(x), 100) for each, text(inc(x)) for x < 3.
void workload(md::Storage& storage, int n) {
  md::Session s(storage);
  for (int x = 0; x < n; ++x) {
    auto y = inc(x);
    (void)add(y, 100);
    if (x < 3) (void)text(y);
  }
}

/// No count_mismatch (nor any other problem): the kept counts equal a recount.
void expect_counts_exact(md::Storage& storage) {
  const auto report = storage.check_integrity();
  EXPECT_TRUE(report.ok()) << md::testing::describe(report.problems);
  const auto stats = storage.stats();
  EXPECT_EQ(stats.calls, report.calls);
  EXPECT_EQ(stats.values, report.values);
  EXPECT_EQ(stats.refs, report.refs);
  EXPECT_EQ(stats.ops, report.ops);
  std::uint64_t calls = 0;
  for (const auto& op : storage.ops()) calls += op.calls;
  EXPECT_EQ(calls, stats.calls);
}

std::map<std::string, md::OpSummary> by_name(md::Storage& storage) {
  std::map<std::string, md::OpSummary> out;
  for (auto& op : storage.ops()) out[op.name] = op;
  return out;
}

class Counters : public BackendTest {};

TEST_P(Counters, ExactAfterWritesRerunsAndReopen) {
  workload(storage(), 10);
  // Values: 0..11 except 11 (inc outputs 1..10, inputs 0..9, so 0..10: 11), 100, the sums
  // 101..110 (10) and "a", "aa", "aaa" (3): 25.
  auto stats = storage().stats();
  EXPECT_EQ(stats.calls, 23u);
  EXPECT_EQ(stats.values, 25u);
  // Refs: raw inputs 0..9 and 100 (11), one output per call (23).
  EXPECT_EQ(stats.refs, 34u);
  auto ops = by_name(storage());
  EXPECT_EQ(ops["inc"].calls, 10u);
  EXPECT_EQ(ops["inc"].output_bytes, 10u);  // 1..10, one byte each
  EXPECT_EQ(ops["add"].output_bytes, 10u);  // 101..110, positive fixints
  EXPECT_EQ(ops["text"].output_bytes, 2u + 3u + 4u);
  expect_counts_exact(storage());

  workload(storage(), 10);  // memoized: nothing new
  EXPECT_EQ(storage().stats(), stats);
  workload(storage(), 12);  // two more of each
  stats = storage().stats();
  EXPECT_EQ(stats.calls, 27u);
  EXPECT_EQ(stats.refs, 34u + 2u + 4u);
  expect_counts_exact(storage());

  const auto summaries = storage().ops();
  reopen();
  EXPECT_EQ(storage().stats(), stats);
  EXPECT_EQ(storage().ops(), summaries);
  workload(storage(), 12);
  EXPECT_EQ(storage().stats(), stats);
  expect_counts_exact(storage());
}

TEST_P(Counters, LastCallFollowsTheNewestCall) {
  workload(storage(), 2);
  auto first = by_name(storage())["inc"].last_call;
  ASSERT_TRUE(first.has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  (void)storage().call(inc, 50);
  auto later = by_name(storage())["inc"].last_call;
  ASSERT_TRUE(later.has_value());
  EXPECT_GT(*later, *first);
  // Dropping the newest call brings the time of the one before back.
  md::CallQuery query;
  query.limit = 1;
  query.newest_first = true;
  const auto newest = storage().find_calls("inc", query);
  ASSERT_EQ(newest.size(), 1u);
  storage().drop_calls(std::vector<md::Id>{newest[0].hid});
  EXPECT_EQ(by_name(storage())["inc"].last_call, first);
  expect_counts_exact(storage());
}

TEST_P(Counters, DropWithAndWithoutDependentsAndGc) {
  workload(storage(), 6);
  const auto before = storage().stats();
  const auto calls = storage().calls_of("inc");
  ASSERT_EQ(calls.size(), 6u);

  // Without dependents: inc(0) goes, its output stays as the input of add and text.
  EXPECT_EQ(storage().drop_calls(std::vector<md::Id>{calls[0].hid}), 1u);
  auto stats = storage().stats();
  EXPECT_EQ(stats.calls, before.calls - 1);
  EXPECT_EQ(stats.refs, before.refs - 1);  // raw input 0 is used by no other call
  EXPECT_EQ(stats.values, before.values);  // values stay until gc
  expect_counts_exact(storage());

  // The dropped call computed again: its output is the ref the consumers still use.
  workload(storage(), 6);
  EXPECT_EQ(storage().stats(), before);
  expect_counts_exact(storage());

  // With dependents: inc(1), add(inc(1), 100), text(inc(1)).
  EXPECT_EQ(storage().drop_calls(std::vector<md::Id>{calls[1].hid}, md::Dependents::yes), 3u);
  stats = storage().stats();
  EXPECT_EQ(stats.calls, before.calls - 3);
  EXPECT_EQ(stats.refs, before.refs - 4);  // raw 1 and the three outputs
  auto ops = by_name(storage());
  EXPECT_EQ(ops["inc"].calls, 5u);
  EXPECT_EQ(ops["text"].calls, 2u);
  expect_counts_exact(storage());

  // gc: the sum 102 and "aa" are used by no call now (2 went as the output of inc(1) but stays
  // as the raw input of inc(2); 1 stays as the output of inc(0)).
  const auto preview = storage().cleanup_preview();
  const auto report = storage().cleanup();
  EXPECT_EQ(report.values_removed, preview.values_removed);
  EXPECT_EQ(report.values_removed, 2u);
  stats = storage().stats();
  EXPECT_EQ(stats.values, before.values - 2);
  EXPECT_EQ(stats.value_bytes, before.value_bytes - 1 - 3);
  expect_counts_exact(storage());
  reopen();
  expect_counts_exact(storage());
}

TEST_P(Counters, BlobValuesAreCounted) {
  md::StorageOptions options;
  options.blob_threshold_bytes = 64;
  open(options);
  {
    md::Session s(storage());
    (void)text(10);
    (void)text(200);
    (void)text(300);
  }
  const auto stats = storage().stats();
  // Blob files only beside an SQLite file: memory keeps everything inline, PostgreSQL in the database.
  EXPECT_EQ(stats.blob_files, GetParam() == md::testing::Backend::file ? 2u : 0u);
  EXPECT_EQ(stats.value_bytes, 1u + 2u + 3u + 11u + 202u + 303u);
  expect_counts_exact(storage());
  const auto calls = storage().calls_of("text");
  storage().drop_calls(std::vector<md::Id>{calls[2].hid});
  (void)storage().cleanup();
  EXPECT_EQ(storage().stats().blob_files, GetParam() == md::testing::Backend::file ? 1u : 0u);
  expect_counts_exact(storage());
}

TEST_P(Counters, DropVersionAdjustsTheCounts) {
  auto install = [](const std::string& body) { md::testing::install_code("inc", "inc_impl(int)", body); };
  auto previous = md::set_warning_sink([](const std::string&) {});
  install("int inc_impl(int x) { return x + 1; }");
  open();
  workload(storage(), 4);
  const auto first = storage().stats();
  install("int inc_impl(int x) { return x + 2; }");  // a new version: everything downstream anew
  if (persistent()) open();
  else storage().core()->forget_op_versions();
  workload(storage(), 4);
  EXPECT_EQ(by_name(storage())["inc"].calls, 8u);
  expect_counts_exact(storage());
  EXPECT_EQ(storage().drop_version("inc", "2"), 4u + 4u + 3u);
  const auto after = storage().stats();
  EXPECT_EQ(after.calls, first.calls);
  EXPECT_EQ(after.refs, first.refs);
  expect_counts_exact(storage());
  md::versioning::clear_fingerprints();
  md::set_warning_sink(previous);
}

MANDALA_INSTANTIATE_BACKENDS(Counters);

// ---- several writers, damage, older stores (files only) -------------------------------------

TEST(CountersFile, TwoStoragesAndTwoProcessesWriteTheSameCalls) {
  md::testing::TempDir dir;
  const auto path = dir / "store.db";
  {
    md::Storage a(path);
    md::Storage b(path);
    workload(a, 20);
    workload(b, 25);  // 20 stored by a, 5 new
    workload(a, 25);
  }
  const pid_t pid = fork();
  if (pid == 0) {
    int code = 0;
    try {
      md::Storage s(path);
      workload(s, 40);
    } catch (...) {
      code = 1;
    }
    _exit(code);
  }
  {
    md::Storage s(path);
    workload(s, 40);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  md::Storage s(path);
  const auto stats = s.stats();
  EXPECT_EQ(stats.calls, 40u + 40u + 3u);
  EXPECT_EQ(stats.refs, 40u + 1u + 83u);  // raw 0..39 and 100, one output per call
  expect_counts_exact(s);
}

TEST(CountersFile, CheckNamesADamagedCounter) {
  md::testing::TempDir dir;
  const auto path = dir / "store.db";
  {
    md::Storage s(path);
    workload(s, 5);
  }
  md::testing::sql(path,
                   "UPDATE totals SET refs = refs + 1; UPDATE op_counts SET calls = 7 WHERE op_id = "
                   "(SELECT id FROM ops WHERE name = 'add');");
  md::Storage s(path);
  const auto report = s.check_integrity();
  EXPECT_FALSE(report.ok());
  const auto found = md::testing::describe(report.problems);
  EXPECT_NE(found.find("count_mismatch: the stored count of refs is"), std::string::npos) << found;
  EXPECT_NE(found.find("count_mismatch: the stored count of calls of op add v0 is 7 but the store holds 5"),
            std::string::npos)
      << found;
  md::testing::sql(path, "DELETE FROM totals;");
  const auto again = md::testing::describe(s.check_integrity().problems);
  EXPECT_NE(again.find("count_mismatch: the counter tables"), std::string::npos) << again;
}

TEST(CountersFile, AStoreOfSchema3IsReadAsItIsAndUpgradedWhenOpenedWritable) {
  md::testing::TempDir dir;
  const auto path = dir / "store.db";
  md::StorageStats stats;
  std::vector<md::OpSummary> ops;
  std::string full_cids;
  {
    md::Storage s(path);
    workload(s, 8);
    stats = s.stats();
    ops = s.ops();
    full_cids = md::testing::content_ids_as_schema_5(s);
  }
  md::testing::sql(path, full_cids + md::testing::call_versions_as_schema_4 +
                             "DROP TABLE op_counts; DROP TABLE totals; UPDATE meta SET value = '3' WHERE key = "
                             "'schema_version'; PRAGMA user_version = 3; PRAGMA wal_checkpoint(TRUNCATE);");
  {
    md::StorageOptions options;
    options.read_only = true;
    md::Storage s(path, options);
    EXPECT_EQ(s.info().schema_version, 3);
    EXPECT_EQ(s.stats(), stats);
    EXPECT_EQ(s.ops(), ops);
    EXPECT_TRUE(s.check_integrity().ok());
  }
  md::Storage s(path);
  EXPECT_EQ(s.info().schema_version, 8);
  EXPECT_EQ(s.stats(), stats);
  EXPECT_EQ(s.ops(), ops);
  expect_counts_exact(s);
  workload(s, 10);
  expect_counts_exact(s);
}

/// (hid, cid) of every call, sorted.
std::vector<std::pair<md::Id, md::Id>> call_ids(md::Storage& s) {
  std::vector<std::pair<md::Id, md::Id>> out;
  for (const auto& op : s.ops())
    for (const auto& c : s.calls_of(op.name, op.version)) out.emplace_back(c.hid, c.cid);
  std::sort(out.begin(), out.end());
  return out;
}

// Schema 5 stored every call's content id; schema 6 derives those of calls of raw inputs and
// indexes only the others. A schema 5 store is read as it is when opened read-only, and upgraded
// in place when opened writable (its rows unchanged, calls_by_cid made partial); its calls are
// found by history and by content either way, and new calls of raw inputs store no content id.
TEST(StoreSchema5, IsReadAsItIsAndUpgradedInPlace) {
  md::testing::TempDir dir;
  const auto path = dir / "store.db";
  std::vector<std::pair<md::Id, md::Id>> ids;
  std::string full_cids;
  {
    md::Storage s(path);
    workload(s, 4);
    ids = call_ids(s);
    full_cids = md::testing::content_ids_as_schema_5(s);
  }
  md::testing::sql(path, full_cids +
                             "UPDATE meta SET value = '5' WHERE key = 'schema_version'; PRAGMA user_version = 5; "
                             "PRAGMA wal_checkpoint(TRUNCATE);");
  const std::string stored_cids = "SELECT COUNT(*) FROM calls WHERE length(cid) = 16";
  ASSERT_EQ(md::testing::query(path, stored_cids), std::to_string(ids.size()));
  {
    md::StorageOptions options;
    options.read_only = true;
    md::Storage s(path, options);
    EXPECT_EQ(s.info().schema_version, 5);
    EXPECT_EQ(call_ids(s), ids);
    EXPECT_TRUE(s.check_integrity().ok());
    workload(s, 4);
    EXPECT_EQ(s.counters().executed, 0u);
  }
  {
    md::Storage s(path);
    EXPECT_EQ(s.info().schema_version, 8);
    EXPECT_EQ(call_ids(s), ids);
    expect_counts_exact(s);
    md::Session session(s);
    workload(s, 4);
    EXPECT_EQ(*inc(inc(0)), 2);  // content-equal to the stored inc(1)
    EXPECT_EQ(s.counters().executed, 0u);
    EXPECT_EQ(s.counters().reused_by_content, 1u);
    EXPECT_EQ(*inc(100), 101);  // new
  }
  EXPECT_NE(md::testing::query(path, "SELECT sql FROM sqlite_master WHERE name = 'calls_by_cid'").find(" WHERE "),
            std::string::npos);
  EXPECT_EQ(md::testing::query(path, stored_cids), std::to_string(ids.size() + 1));              // + inc(inc(0))
  EXPECT_EQ(md::testing::query(path, "SELECT COUNT(*) FROM calls WHERE length(cid) = 0"), "1");  // inc(100)
  md::Storage s(path);
  expect_counts_exact(s);
  EXPECT_EQ(call_ids(s).size(), ids.size() + 2);
}

TEST(CountersFile, AStoreOfSchema2IsUpgradedWhenOpenedWritable) {
  md::testing::TempDir dir;
  const auto path = dir / "store.db";
  md::StorageStats stats;
  std::string full_cids;
  {
    md::Storage s(path);
    workload(s, 8);
    stats = s.stats();
    full_cids = md::testing::content_ids_as_schema_5(s);
  }
  md::testing::sql(path, full_cids + md::testing::call_versions_as_schema_4 +
                             "DROP TRIGGER vc_calls_follow_calls; DROP TABLE vc_calls; DROP TABLE vc_commits; "
                             "DROP TABLE vc_heads; DROP TABLE vc_versions; DROP TABLE op_counts; DROP TABLE totals; "
                             "UPDATE meta SET value = '2' WHERE key = 'schema_version'; PRAGMA user_version = 2; "
                             "PRAGMA wal_checkpoint(TRUNCATE);");
  {
    md::StorageOptions options;
    options.read_only = true;
    try {
      md::Storage s(path, options);
      ADD_FAILURE() << "a read-only open of schema 2 was not refused";
    } catch (const md::Error& e) {
      EXPECT_EQ(e.code(), md::Errc::schema_mismatch);
      EXPECT_NE(std::string(e.what()).find("open it once writable"), std::string::npos) << e.what();
    }
  }
  md::Storage s(path);
  EXPECT_EQ(s.info().schema_version, 8);
  EXPECT_EQ(s.stats(), stats);
  EXPECT_TRUE(s.check_integrity().ok());
  expect_counts_exact(s);
  workload(s, 10);
  expect_counts_exact(s);
}

}  // namespace
