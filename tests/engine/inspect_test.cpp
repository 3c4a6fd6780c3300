// Inspection queries (what the `mandala` command uses): info and op summaries with kept
// paged calls, id prefixes, drop and cleanup previews, and read-only opens that leave
// the store's files untouched.

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "mandala/mandala.hpp"
#include "support/backends.hpp"

namespace md = mandala;
using md::testing::BackendTest;

namespace {

const auto inc = md::op("inc", {"x"}, [](int x) { return x + 1; });
const auto pair_sum = md::op("pair_sum", {"a", "b"}, [](int a, int b) { return a + b; });
const auto text = md::op("text", {"x"}, [](int x) { return std::string(static_cast<std::size_t>(x), 'a'); });

class Inspect : public BackendTest {
 protected:
  // inc(x) for x in 0..9; pair_sum(x, inc(x)) for x in 0..4; text(inc(0)) = "a".
  void build() {
    md::Session s(storage());
    for (int x = 0; x < 10; ++x) {
      auto y = inc(x);
      if (x < 5) (void)pair_sum(x, y);
      if (x == 0) (void)text(y);
    }
  }
};

TEST_P(Inspect, InfoCountsAndOpSummaries) {
  const auto before = std::chrono::system_clock::now() - std::chrono::seconds(1);
  build();
  reopen();
  const auto info = storage().info();
  // Each backend numbers its own layout (docs/storage-format.md 3.2 and 4.2).
  EXPECT_EQ(info.schema_version, GetParam() == md::testing::Backend::postgres ? 3 : 8);
  EXPECT_EQ(info.path, std::filesystem::path(location()));  // the file, the database URL; empty for memory
  ASSERT_TRUE(info.created.has_value());
  EXPECT_GE(*info.created, before);
  EXPECT_EQ(info.stats.ops, 3u);
  EXPECT_EQ(info.stats.calls, 16u);
  // Values: 0..10 (11 ints), the sums 1, 3, 5, 7, 9 (1..9 are there already: 0 new) and "a".
  EXPECT_EQ(info.stats.values, 12u);
  // Refs: raw inputs 0..9 (10), one output per call (16).
  EXPECT_EQ(info.stats.refs, 26u);
  EXPECT_EQ(info.stats.value_bytes, 11u + 2u);  // one byte per small int, "a" takes two
  EXPECT_EQ(info.stats, storage().stats());
  if (persistent()) {
    EXPECT_GT(info.database_bytes, 0u);
  }
  EXPECT_EQ(info.blob_file_bytes, 0u);

  ASSERT_EQ(info.ops.size(), 3u);
  EXPECT_EQ(info.ops, storage().ops());
  const auto& s = info.ops[1];
  EXPECT_EQ(s.name, "pair_sum");
  EXPECT_EQ(s.version, 0u);
  EXPECT_EQ(s.inputs, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(s.outputs, (std::vector<std::string>{"output_0"}));
  EXPECT_EQ(s.calls, 5u);
  EXPECT_EQ(s.output_bytes, 5u);
  ASSERT_TRUE(s.last_call.has_value());
  EXPECT_GE(*s.last_call, before);
  EXPECT_EQ(info.ops[0].name, "inc");
  EXPECT_EQ(info.ops[0].calls, 10u);
  EXPECT_EQ(info.ops[2].output_bytes, 2u);
}

TEST_P(Inspect, FindCallsPagesInStorageOrder) {
  build();
  reopen();
  md::CallQuery q;
  q.limit = 3;
  q.offset = 2;
  auto page = storage().find_calls("inc", q);
  ASSERT_EQ(page.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(page[static_cast<std::size_t>(i)].input("x")->as<int>().get(), 2 + i);
  q.newest_first = true;
  q.offset = 0;
  page = storage().find_calls("inc", q);
  ASSERT_EQ(page.size(), 3u);
  EXPECT_EQ(page[0].input("x")->as<int>().get(), 9);
  EXPECT_EQ(page[2].input("x")->as<int>().get(), 7);
  EXPECT_EQ(storage().find_calls("inc").size(), 10u);
  q = {};
  q.version = 0;
  q.offset = 8;
  EXPECT_EQ(storage().find_calls("inc", q).size(), 2u);

  try {
    (void)storage().find_calls("nope");
    FAIL() << "no error for an unknown op";
  } catch (const md::Error& e) {
    EXPECT_EQ(e.code(), md::Errc::not_found);
    EXPECT_NE(std::string(e.what()).find("(it has: inc, pair_sum, text)"), std::string::npos) << e.what();
  }
  q.version = 3;
  EXPECT_THROW((void)storage().find_calls("inc", q), md::Error);
}

TEST_P(Inspect, FindByPrefix) {
  build();
  reopen();
  const auto call = storage().find_calls("text").at(0);
  const auto hex = call.hid.hex();
  auto m = storage().find_by_prefix(hex);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].kind, md::IdMatch::Kind::call);
  EXPECT_EQ(m[0].hid, call.hid);
  const auto out = call.output("output_0")->hid().hex();
  m = storage().find_by_prefix(out.substr(0, 20));
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].kind, md::IdMatch::Kind::ref);
  // Upper case works; one digit matches several of the 42 ids (16 calls and 26 refs).
  std::string upper = hex;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(storage().find_by_prefix(upper).size(), 1u);
  std::size_t total = 0;
  for (const char d : std::string("0123456789abcdef")) total += storage().find_by_prefix(std::string(1, d), 100).size();
  EXPECT_EQ(total, 42u);
  const auto limited = storage().find_by_prefix(hex.substr(0, 1), 1);  // at most `limit` of each kind
  ASSERT_GE(limited.size(), 1u);
  ASSERT_LE(limited.size(), 2u);
  EXPECT_EQ(limited[0].kind, md::IdMatch::Kind::call);
  EXPECT_THROW((void)storage().find_by_prefix("xyz"), md::Error);
  EXPECT_THROW((void)storage().find_by_prefix(""), md::Error);
  EXPECT_THROW((void)storage().find_by_prefix(hex + "0"), md::Error);
}

TEST_P(Inspect, DropPlanAndCleanupPreviewChangeNothingAndMatch) {
  build();
  reopen();
  const auto root = storage().find_calls("inc").at(0);  // inc(0): pair_sum(0, 1) and text(1) depend on it
  const std::vector<md::Id> roots{root.hid};
  const auto stats = storage().stats();
  const auto plan = storage().calls_to_drop(roots, md::Dependents::yes);
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_EQ(plan[0].op, "inc");
  EXPECT_EQ(storage().calls_to_drop(roots).size(), 1u);
  EXPECT_EQ(storage().stats(), stats);
  EXPECT_EQ(storage().cleanup_preview().values_removed, 0u);
  EXPECT_TRUE(storage().cleanup_preview().values.empty());

  EXPECT_EQ(storage().drop_calls(roots, md::Dependents::yes), plan.size());
  reopen();
  const auto preview = storage().cleanup_preview();
  EXPECT_EQ(preview.values_removed, 2u);  // 0 and "a" (1 is still the input of inc(1))
  EXPECT_EQ(preview.bytes_freed, 3u);
  std::vector<md::Id> unreferenced{md::detail::content_id(md::encode_value(0)),
                                   md::detail::content_id(md::encode_value(std::string("a")))};
  std::sort(unreferenced.begin(), unreferenced.end());
  EXPECT_EQ(preview.values, unreferenced);
  EXPECT_EQ(storage().cleanup_preview().values_removed, 2u);
  const auto done = storage().cleanup();
  EXPECT_EQ(done.values_removed, preview.values_removed);
  EXPECT_EQ(done.bytes_freed, preview.bytes_freed);
  EXPECT_EQ(done.values, unreferenced);
  reopen();
  EXPECT_TRUE(storage().cleanup_preview().values.empty());
  // After the drop and the cleanup: 13 calls, refs 0..9 minus 0 (only inc(0) used it) = 9 raw +
  // 13 outputs.
  const auto after = storage().stats();
  EXPECT_EQ(after.calls, 13u);
  EXPECT_EQ(after.values, 10u);
  EXPECT_EQ(after.value_bytes, 10u);
  EXPECT_EQ(after.refs, 9u + 13u);
  EXPECT_EQ(storage().ops()[0].output_bytes, 9u);
  EXPECT_EQ(storage().ops()[2].output_bytes, 0u);
  EXPECT_EQ(storage().ops()[2].calls, 0u);
  EXPECT_FALSE(storage().ops()[2].last_call.has_value());
}

TEST_P(Inspect, RefsCountedOncePerHistory) {
  {
    md::Session s(storage());
    (void)pair_sum(4, 4);  // one raw ref used twice in one call
    (void)pair_sum(4, 5);
    (void)inc(4);
  }
  reopen();
  EXPECT_EQ(storage().stats().refs, 2u + 3u);  // 4, 5 and three outputs
}

MANDALA_INSTANTIATE_BACKENDS(Inspect);

std::map<std::string, std::string> files_in(const std::filesystem::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file()) {
      std::ifstream in(e.path(), std::ios::binary);
      std::ostringstream s;
      s << in.rdbuf();
      out[std::filesystem::relative(e.path(), dir).string()] = s.str();
    }
  return out;
}

TEST(InspectFile, ReadOnlyOpenKeepsEveryFileByteIdentical) {
  md::testing::TempDir dir;
  const auto path = dir / "store.db";
  {
    md::StorageOptions o;
    o.blob_threshold_bytes = 8;
    md::Storage storage(path, o);
    md::Session s(storage);
    (void)text(inc(20));
  }
  const auto before = files_in(dir.path());
  // The database, one blob file and the claims of new calls (store.db.claims); no -wal or -shm.
  ASSERT_EQ(before.size(), 3u);
  for (int round = 0; round < 2; ++round) {
    md::StorageOptions o;
    o.read_only = true;
    o.leave_untouched = round == 1;  // no effect any more: kept for compatibility
    md::Storage storage(path, o);
    EXPECT_EQ(storage.info().stats.calls, 2u);
    EXPECT_EQ(storage.find_calls("text").at(0).output("output_0")->to_text(), "\"" + std::string(21, 'a') + "\"");
    (void)storage.calls_to_drop(std::vector<md::Id>{storage.find_calls("inc").at(0).hid}, md::Dependents::yes);
    (void)storage.cleanup_preview();
    (void)storage.cf("text").expand_all().eval();
    EXPECT_THROW(storage.cleanup(), md::Error);
    // While it is open, SQLite's log and its index lie beside the store; the store's own files
    // do not change.
    auto open_files = files_in(dir.path());
    open_files.erase("store.db-wal");
    open_files.erase("store.db-shm");
    EXPECT_EQ(open_files, before);
  }
  EXPECT_EQ(files_in(dir.path()), before) << "closed, the reader leaves exactly the files it found";
  {
    // Two readers at once: whichever closes last removes the log files.
    md::StorageOptions o;
    o.read_only = true;
    auto first = std::make_unique<md::Storage>(path, o);
    md::Storage second(path, o);
    EXPECT_EQ(first->info().stats.calls, 2u);
    EXPECT_EQ(second.info().stats.calls, 2u);
    first.reset();
  }
  EXPECT_EQ(files_in(dir.path()), before);
}

}  // namespace
