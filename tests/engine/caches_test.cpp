// What a storage may trust of its caches when another connection changes the store (drops,
// cleanups, dropped versions), and op declarations that disagree with the op as stored or as
// declared before (docs/guarantees.md, "Caches and other processes").

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <tuple>

#include "mandala/mandala.hpp"
#include "support/backends.hpp"
#include "support/fingerprints.hpp"
#include "support/integrity.hpp"

namespace md = mandala;
using md::testing::BackendTest;

namespace {

template <class F>
void expect_error(md::Errc code, const std::vector<std::string>& parts, F&& f) {
  try {
    f();
    ADD_FAILURE() << "expected an error";
  } catch (const md::Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    for (const auto& part : parts) EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

void expect_ok(md::Storage& storage) {
  const auto report = storage.check_integrity();
  EXPECT_TRUE(report.ok()) << md::testing::describe(report.problems);
}

class Caches : public BackendTest {
 protected:
  /// Another connection to the same store (a file or database); an in-memory store has only
  /// itself.
  md::Storage& other() {
    if (!persistent()) return storage();
    if (!m_other) m_other = std::make_unique<md::Storage>(location());
    return *m_other;
  }
  /// Drops every call of the ops through other(), then cleans up there.
  void remove_calls(const std::vector<std::string>& ops) {
    std::vector<md::Id> hids;
    for (const auto& op : ops)
      for (const auto& call : other().calls_of(op)) hids.push_back(call.hid);
    ASSERT_FALSE(hids.empty());
    other().drop_calls(hids);
    other().cleanup();
  }

  std::unique_ptr<md::Storage> m_other;
};

// ---- caches and another connection's changes --------------------------------------------------

TEST_P(Caches, AnotherConnectionsDropAndCleanupBetweenFlushesLoseNothing) {
  int incs = 0;
  const auto inc = md::op("c_inc", {"x"}, [&](int x) {
    ++incs;
    return x + 1;
  });
  const auto add = md::op("c_add", {"x", "y"}, [](int x, int y) { return x + y; });
  md::Ref<int> y;
  {
    md::Session s(storage());
    y = inc(41);
  }
  remove_calls({"c_inc"});
  {
    md::Session s(storage());
    EXPECT_EQ(*add(y, 1), 43);
  }
  expect_ok(storage());
  {
    md::Session s(storage());
    EXPECT_EQ(*inc(41), 42);
  }
  EXPECT_EQ(incs, 2) << "a dropped call is computed again, not reused from the caches";
  EXPECT_EQ(storage().calls_of(inc).size(), 1u);
  m_other.reset();
  reopen();
  expect_ok(storage());
  const auto adds = storage().calls_of(add);
  ASSERT_EQ(adds.size(), 1u);
  EXPECT_EQ(adds[0].input("x")->as<int>().get(), 42);
}

TEST_P(Caches, AnotherConnectionsDropAndCleanupWhileCallsArePendingLoseNothing) {
  const auto inc = md::op("p_inc", {"x"}, [](int x) { return x + 1; });
  const auto add = md::op("p_add", {"x", "y"}, [](int x, int y) { return x + y; });
  const auto big = md::op("p_big", {"n"}, [](int n) { return std::vector<int>(static_cast<std::size_t>(n), n); });
  const auto sum = md::op("p_sum", {"v"}, [](const std::vector<int>& v) {
    long s = 0;
    for (int x : v) s += x;
    return s;
  });
  md::Ref<int> y;
  md::Ref<std::vector<int>> v;
  {
    md::Session s(storage());
    y = inc(41);
    v = big(5000);  // above the size below which values are written without a lookup
  }
  {
    md::Session s(storage());
    auto z = add(y, 1);
    auto t = sum(v);
    remove_calls({"p_inc", "p_big"});
    EXPECT_EQ(*z, 43);
    EXPECT_EQ(*t, 5000L * 5000L);
  }
  expect_ok(storage());
  m_other.reset();
  reopen();
  expect_ok(storage());
  ASSERT_EQ(storage().calls_of(add).size(), 1u);
  EXPECT_EQ(storage().calls_of(add)[0].input("x")->as<int>().get(), 42);
  ASSERT_EQ(storage().calls_of(sum).size(), 1u);
  EXPECT_EQ(storage().calls_of(sum)[0].input("v")->as<std::vector<int>>().get().size(), 5000u);
}

TEST_P(Caches, AnotherConnectionsDroppedVersionIsRecordedAndComputedAgain) {
  auto previous = md::set_warning_sink([](const std::string&) {});
  md::testing::install_code("v_inc", "v_inc_impl(int)", "int v_inc_impl(int x) { return x + 1; }");
  open();
  int runs = 0;
  const auto inc = md::op("v_inc", {"x"}, [&](int x) {
    ++runs;
    return x + 1;
  });
  {
    md::Session s(storage());
    inc(1);
  }
  EXPECT_EQ(other().drop_version("v_inc", "1"), 1u);
  {
    md::Session s(storage());
    EXPECT_EQ(*inc(1), 2);
  }
  EXPECT_EQ(runs, 2);
  const auto versions = storage().versions("v_inc");
  ASSERT_EQ(versions.size(), 1u) << "the version is recorded again for the new call";
  EXPECT_EQ(versions[0].calls, 1u);
  expect_ok(storage());
  m_other.reset();
  md::versioning::clear_fingerprints();
  md::set_warning_sink(previous);
}

// ---- op declarations that disagree -------------------------------------------------------------

TEST_P(Caches, AnOpRedeclaredWithOtherOutputsIsRefused) {
  const auto one = md::op("dup", {"x"}, [](int x) { return x; });
  const auto two = md::op("dup", {"x"}, [](int x) { return std::tuple<int, int>{x, x}; });
  const std::vector<std::string> both{R"(outputs ["output_0"])", R"(outputs ["output_0","output_1"])", "a new version"};
  {
    md::Session s(storage());
    EXPECT_EQ(*one(7), 7);
    // The first declaration is still pending.
    expect_error(md::Errc::output_mismatch, both, [&] { two(7); });
  }
  expect_error(md::Errc::output_mismatch, both, [&] {
    md::Session s(storage());
    two(8);
  });
  reopen();
  // Committed, and declared in this process only by the other declaration.
  expect_error(md::Errc::output_mismatch, both, [&] {
    md::Session s(storage());
    two(9);
  });
  {
    md::Session s(storage());
    EXPECT_EQ(*one(9), 9);
  }
  expect_ok(storage());
  EXPECT_EQ(storage().calls_of(one).size(), 2u);
}

TEST_P(Caches, AnOpRedeclaredWithOtherInputsIsRefusedButNewArgsAreNot) {
  const auto by_x = md::op("din", {"x"}, [](int x) { return x; });
  const auto by_y = md::op("din", {"y"}, [](int y) { return y; });
  const auto more = md::op("din", {"x", md::new_arg("z", 0)}, [](int x, int z) { return x + z; });
  {
    md::Session s(storage());
    EXPECT_EQ(*by_x(1), 1);
    expect_error(md::Errc::invalid_argument, {R"(inputs ["y"])", R"(inputs ["x"])", "a new version"}, [&] { by_y(1); });
    EXPECT_EQ(*more(1, 2), 3);
    EXPECT_EQ(*by_x(2), 2);  // an older declaration (without the new parameter) still works
  }
  reopen();
  expect_error(md::Errc::invalid_argument, {R"(inputs ["y"])", R"(inputs ["x","z"])"}, [&] {
    md::Session s(storage());
    by_y(3);
  });
  expect_ok(storage());
  EXPECT_EQ(storage().calls_of("din").size(), 3u);
}

MANDALA_INSTANTIATE_BACKENDS(Caches);

// ---- two connections, declarations racing ------------------------------------------------------

TEST(CachesFile, ADeclarationStoredByAnotherConnectionWhileMineIsPendingRefusesMine) {
  md::testing::TempDir dir;
  const auto path = dir / "store.db";
  const auto one = md::op("race", {"x"}, [](int x) { return x; });
  const auto two = md::op("race", {"x"}, [](int x) { return std::tuple<int, int>{x, x}; });
  const auto inc = md::op("race_inc", {"x"}, [](int x) { return x + 1; });
  // Without claims: with them, `theirs` would wait for the call `mine` computed (of the same
  // content) to be stored instead of storing its own first.
  md::StorageOptions o;
  o.claim_new_calls = false;
  md::Storage mine(path, o);
  md::Storage theirs(path, o);
  {
    md::Session s(mine);
    one(7);
    inc(7);
    {
      md::Session t(theirs);
      two(7);
    }
    expect_error(md::Errc::output_mismatch, {R"(outputs ["output_0"])", R"(outputs ["output_0","output_1"])"},
                 [&] { mine.flush(); });
    // The op's next call here is checked against the stored declaration.
    expect_error(md::Errc::output_mismatch, {"new version"}, [&] { one(8); });
  }
  expect_ok(mine);
  EXPECT_EQ(mine.calls_of(inc).size(), 1u) << "the other calls of the flush are stored";
  EXPECT_EQ(mine.calls_of("race").size(), 1u);
}

TEST(CachesFile, AContentReuseWhoseValuesAnotherConnectionRemovedIsNotStored) {
  md::testing::TempDir dir;
  const auto path = dir / "store.db";
  int incs = 0;
  const auto inc = md::op("r_inc", {"x"}, [&](int x) {
    ++incs;
    return x + 1;
  });
  const auto ident = md::op("r_ident", {"x"}, [](int x) { return x; });
  md::Storage mine(path);
  md::Storage theirs(path);
  {
    md::Session s(mine);
    inc(41);
    ident(41);
  }
  {
    md::Session s(mine);
    auto y = inc(ident(41));  // found by content: inc(41)'s output, which this process never loaded
    EXPECT_EQ(incs, 1);
    std::vector<md::Id> hids;
    for (const auto& call : theirs.calls_of(inc)) hids.push_back(call.hid);
    ASSERT_EQ(theirs.drop_calls(hids), 1u);
    theirs.cleanup();
    expect_error(md::Errc::not_found, {"1 calls were not stored", "make the calls again"}, [&] { mine.flush(); });
    EXPECT_EQ(*inc(ident(41)), 42);  // computed anew
    EXPECT_EQ(incs, 2);
  }
  expect_ok(mine);
  EXPECT_EQ(mine.calls_of(inc).size(), 1u);
}

}  // namespace
