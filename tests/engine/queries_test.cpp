// Storage queries: creators, consumers, calls of an op, drop (with dependents), cleanup, blob
// files for large values (spec section 8 scenario 12).

#include <gtest/gtest.h>

#include <fstream>
#include <numeric>

#include "mandala/mandala.hpp"
#include "support/backends.hpp"
#include "support/integrity.hpp"
#include "support/large_values.hpp"

namespace md = mandala;
using md::testing::BackendTest;

namespace {

const auto inc = md::op("inc", {"x"}, [](int x) { return x + 1; });
const auto add = md::op("add", {"x", "y"}, [](int x, int y) { return x + y; }, {.outputs = {"z"}});

class Queries : public BackendTest {
 protected:
  // x -> inc -> y ; (x, y) -> add -> z, for x in 0..4
  void build() {
    md::Session s(storage());
    for (int x = 0; x < 5; ++x) {
      auto y = inc(x);
      add(x, y);
    }
  }
};

TEST_P(Queries, CreatorAndConsumers) {
  build();
  reopen();
  auto incs = storage().calls_of(inc);
  ASSERT_EQ(incs.size(), 5u);
  const auto y = incs[2].output("output_0");
  ASSERT_TRUE(y);
  EXPECT_EQ(y->as<int>().get(), 3);

  auto creator = storage().creator_of(*y);
  ASSERT_TRUE(creator);
  EXPECT_EQ(creator->op, "inc");
  EXPECT_EQ(creator->hid, incs[2].hid);

  auto consumers = storage().consumers_of(*y);
  ASSERT_EQ(consumers.size(), 1u);
  EXPECT_EQ(consumers[0].op, "add");
  EXPECT_EQ(consumers[0].input("y")->hid(), y->hid());
  EXPECT_EQ(consumers[0].output("z")->as<int>().get(), 2 + 3);

  // A raw input has no creator; it is consumed by both ops.
  const auto x = incs[2].input("x");
  EXPECT_FALSE(storage().creator_of(*x).has_value());
  EXPECT_EQ(storage().consumers_of(*x).size(), 2u);

  auto by_hid = storage().call_by_hid(incs[2].hid);
  ASSERT_TRUE(by_hid);
  EXPECT_EQ(by_hid->cid, incs[2].cid);
  EXPECT_FALSE(storage().call_by_hid(md::Id{}).has_value());
  EXPECT_FALSE(storage().ref(md::Id{}).has_value());
  EXPECT_EQ(storage().ref(y->hid())->as<int>().get(), 3);
}

TEST_P(Queries, DropWithDependentsAndCleanup) {
  build();
  const auto before = storage().stats();
  EXPECT_EQ(before.calls, 10u);
  EXPECT_EQ(before.ops, 2u);
  auto incs = storage().calls_of(inc);
  std::vector<md::Id> doomed{incs[0].hid, incs[1].hid};
  EXPECT_EQ(storage().drop_calls(doomed, md::Dependents::yes), 4u);
  reopen();
  EXPECT_EQ(storage().calls_of(inc).size(), 3u);
  EXPECT_EQ(storage().calls_of(add).size(), 3u);

  // Without dependents only the named call goes.
  incs = storage().calls_of(inc);
  EXPECT_EQ(storage().drop_calls(std::vector<md::Id>{incs[0].hid}), 1u);
  EXPECT_EQ(storage().calls_of(add).size(), 3u);

  const auto report = storage().cleanup();
  EXPECT_GT(report.values_removed, 0u);
  reopen();
  const auto after = storage().stats();
  EXPECT_EQ(after.calls, 5u);
  // Every remaining value is referenced by a remaining call; a second cleanup finds nothing.
  EXPECT_EQ(storage().cleanup().values_removed, 0u);
  // Dropped calls run again when called again.
  md::Session s(storage());
  const auto executed = storage().counters().executed;
  inc(0);
  EXPECT_EQ(storage().counters().executed, executed + 1);
}

TEST_P(Queries, LargeValuesLiveInBlobFiles) {
  md::StorageOptions opts;
  opts.blob_threshold_bytes = 1024;
  open(opts);
  const auto make = md::op("make", {"n"}, [](int n) { return std::vector<double>(static_cast<std::size_t>(n), 0.5); });
  const auto total = md::op("total", {"v"}, [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return s;
  });
  md::Id big_hid;
  {
    md::Session s(storage());
    auto v = make(10'000);
    big_hid = v.hid();
    EXPECT_DOUBLE_EQ(*total(v), 5000.0);
  }
  reopen();
  auto v = storage().ref<std::vector<double>>(big_hid);
  ASSERT_TRUE(v);
  EXPECT_EQ((*v)->size(), 10'000u);
  const auto stats = storage().stats();
  if (!persistent()) {
    EXPECT_EQ(stats.blob_files, 0u) << "an in-memory store keeps everything inline";
    return;
  }
  if (GetParam() == md::testing::Backend::postgres) return;  // the rest: blob files beside a store file
  EXPECT_EQ(stats.blob_files, 1u);
  const auto blob_dir = std::filesystem::path(db_path().string() + ".blobs");
  const std::string hex = v->cid().hex();
  const auto file = blob_dir / hex.substr(0, 2) / hex;
  ASSERT_TRUE(std::filesystem::exists(file));

  // Damage the file: loading reports it instead of returning wrong data.
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x7f');
  }
  reopen();
  auto damaged = storage().ref<std::vector<double>>(big_hid);
  try {
    (void)damaged->get();
    FAIL() << "a damaged blob must be reported";
  } catch (const md::Error& e) {
    EXPECT_EQ(e.code(), md::Errc::corrupt_store);
    EXPECT_NE(std::string(e.what()).find("damaged"), std::string::npos);
  }
  // Dropping the calls and cleaning up removes the file.
  auto makes = storage().calls_of(make);
  storage().drop_calls(std::vector<md::Id>{makes[0].hid}, md::Dependents::yes);
  const auto report = storage().cleanup();
  EXPECT_EQ(report.blob_files_removed, 1u);
  EXPECT_FALSE(std::filesystem::exists(file));
}

const auto ramp = md::op("ramp", {"n"}, [](int n) {
  std::vector<double> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 0.5);
  return v;
});

// Values whose row would be above SQLite's length limit (about 1 GB; lowered here to 64 KiB)
// are kept in blob files whatever the blob threshold, by in-memory stores too. Before, SQLite
// refused the bind, the refusal went unnoticed, and the value was recorded without its bytes.
TEST_P(Queries, ValuesAboveSqlitesLengthLimitAreKept) {
  if (GetParam() == md::testing::Backend::postgres) GTEST_SKIP() << "SQLite's length limit";
  md::testing::TempDir tmp;
  const md::testing::ScopedTmpdir tmpdir(tmp.path().string());
  const md::testing::LengthLimit limit(64 * 1024);
  md::StorageOptions opts;
  opts.blob_threshold_bytes = std::size_t{1} << 40;  // a file store's threshold far above the limit
  open(opts);
  md::Id big_hid, small_hid;
  {
    md::Session s(storage());
    big_hid = ramp(20'000).hid();  // 160,000 bytes of doubles
    small_hid = ramp(1'000).hid();
  }
  reopen();
  const auto big = storage().ref<std::vector<double>>(big_hid);
  const auto small = storage().ref<std::vector<double>>(small_hid);
  ASSERT_TRUE(big && small);
  ASSERT_EQ((*big)->size(), 20'000u);
  EXPECT_EQ((**big)[19'999], 19'999.5);
  EXPECT_EQ((*small)->size(), 1'000u);
  EXPECT_EQ(storage().stats().blob_files, 1u) << "only the value above the limit is in a file";
  const auto report = storage().check_integrity();
  EXPECT_TRUE(report.ok()) << md::testing::describe(report.problems);
  if (!persistent()) {
    // The in-memory store's files live in a directory of TMPDIR, removed with the store.
    std::vector<std::filesystem::path> dirs;
    for (const auto& e : std::filesystem::directory_iterator(tmp.path())) dirs.push_back(e.path());
    ASSERT_EQ(dirs.size(), 1u);
    EXPECT_EQ(dirs[0].filename().string().rfind("mandala-memory-", 0), 0u) << dirs[0];
    m_storage.reset();
    EXPECT_FALSE(std::filesystem::exists(dirs[0]));
  }
}

// An in-memory store that cannot make the directory for a value above the limit refuses the
// flush before recording anything, says what to do, and stores everything once it can.
TEST(InMemoryStore, ValueAboveTheLimitWithoutATemporaryDirectoryIsRefusedNotLost) {
  md::testing::TempDir tmp;
  const md::testing::LengthLimit limit(64 * 1024);
  md::Storage storage;
  md::Id big_hid;
  {
    md::Session s(storage);
    {
      const md::testing::ScopedTmpdir missing((tmp.path() / "missing").string());
      big_hid = ramp(20'000).hid();
      inc(1);
      for (int attempt = 0; attempt < 2; ++attempt) {
        try {
          storage.flush();
          ADD_FAILURE() << "the flush must be refused";
        } catch (const md::Error& e) {
          EXPECT_EQ(e.code(), md::Errc::io) << e.what();
          const std::string what = e.what();
          EXPECT_NE(what.find((tmp.path() / "missing").string() + " (TMPDIR)"), std::string::npos) << what;
          EXPECT_NE(what.find("set TMPDIR to a writable directory"), std::string::npos) << what;
        }
      }
    }
    const md::testing::ScopedTmpdir present(tmp.path().string());
    storage.flush();
  }
  EXPECT_EQ(storage.stats().calls, 2u);
  EXPECT_EQ(storage.stats().blob_files, 1u);
  const auto big = storage.ref<std::vector<double>>(big_hid);
  ASSERT_TRUE(big);
  EXPECT_EQ((*big)->size(), 20'000u);
  const auto report = storage.check_integrity();
  EXPECT_TRUE(report.ok()) << md::testing::describe(report.problems);
}

TEST_P(Queries, QueriesSeePendingCalls) {
  md::StorageOptions slow;
  slow.flush_interval = std::chrono::hours(1);
  open(slow);
  md::Session s(storage());
  inc(7);
  EXPECT_EQ(storage().calls_of(inc).size(), 1u);
}

MANDALA_INSTANTIATE_BACKENDS(Queries);

}  // namespace
