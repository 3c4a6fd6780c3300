// Sessions and modes (spec section 8: test_nesting, test_noop_*, test_no_new_calls), and the
// per-thread session stack that replaces the original's global context.

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "mandala/mandala.hpp"
#include "support/backends.hpp"

namespace md = mandala;
using md::testing::BackendTest;

namespace {

std::atomic<int> runs{0};
const auto inc = md::op("inc", {"x"}, [](int x) {
  ++runs;
  return x + 1;
});
const auto add = md::op("add", {"x", md::new_arg("y", 0)}, [](int x, int y) { return x + y; });

class Modes : public BackendTest {
 protected:
  void SetUp() override {
    runs = 0;
    BackendTest::SetUp();
  }
};

TEST_P(Modes, NestingOfModes) {
  std::vector<md::Mode> seen;
  {
    md::Session a(storage(), md::Mode::noop);
    seen.push_back(storage().mode());
    {
      md::Session b(storage());
      seen.push_back(storage().mode());
      {
        md::Session c(storage(), md::Mode::noop);
        seen.push_back(storage().mode());
        md::Session d(storage(), md::Mode::noop);
        seen.push_back(storage().mode());
      }
      seen.push_back(storage().mode());
    }
    seen.push_back(storage().mode());
  }
  seen.push_back(storage().mode());
  using M = md::Mode;
  EXPECT_EQ(seen, (std::vector<M>{M::noop, M::run, M::noop, M::noop, M::run, M::noop, M::run}));
}

TEST_P(Modes, NoopCallsThePlainFunction) {
  using Vec = std::vector<int>;
  const auto f =
      md::op("f", {"p", "xs", "v", md::new_arg("scale", 1)}, [](const Vec& p, const Vec& xs, int v, int scale) {
        int s = v;
        for (int x : p) s += x;
        for (int x : xs) s += x;
        return s * scale;
      });
  md::Session s(storage(), md::Mode::noop);
  auto r = f(md::ValuePointer<Vec>("P", Vec{1, 2}), Vec{1}, md::ignore(2));
  EXPECT_EQ(*r, 6);
  EXPECT_FALSE(r.has_ids());
  s.close();
  EXPECT_TRUE(storage().calls_of(f).empty());
}

TEST_P(Modes, NoopUnwrapsRefsFromRunMode) {
  md::Session run(storage());
  md::Ref<int> x = inc(20);
  md::Ref<int> stored_lazy;
  {
    md::Session noop(storage(), md::Mode::noop);
    auto r = add(x, 21);
    EXPECT_EQ(*r, 42);
    EXPECT_FALSE(r.has_ids());
  }
  EXPECT_EQ(storage().mode(), md::Mode::run);
  run.close();
  EXPECT_TRUE(storage().calls_of(add).empty());
  // A lazy ref (retraced, not loaded) is loaded from its storage by a noop call.
  reopen();
  md::Session again(storage());
  auto lazy = inc(20);
  ASSERT_FALSE(lazy.in_memory());
  md::NoopScope noop;
  EXPECT_EQ(*add(lazy, 1), 22);
}

TEST_P(Modes, StandaloneNoopScope) {
  {
    md::Session s(storage());
    {
      md::NoopScope noop;
      EXPECT_EQ(storage().mode(), md::Mode::noop);
      auto r = inc(1);
      EXPECT_FALSE(r.has_ids());
      EXPECT_EQ(*r, 2);
    }
    EXPECT_EQ(storage().mode(), md::Mode::run);
    EXPECT_TRUE(inc(1).has_ids());
  }
  md::NoopScope without_session;
  EXPECT_EQ(*inc(5), 6);
  EXPECT_EQ(runs, 3);
}

TEST_P(Modes, NoNewCalls) {
  {
    md::Session s(storage());
    inc(20);
  }
  reopen();
  storage().allow_new_calls(false);
  md::Session s(storage());
  EXPECT_EQ(*inc(20), 21);
  try {
    inc(21);
    FAIL() << "a new call must be refused";
  } catch (const md::Error& e) {
    EXPECT_EQ(e.code(), md::Errc::new_calls_not_allowed);
    EXPECT_EQ(std::string(e.what()), "Call to inc does not exist and new calls are not allowed.");
  }
  storage().allow_new_calls(true);
  EXPECT_EQ(*inc(21), 22);
}

TEST_P(Modes, SessionsArePerThread) {
  md::Session s(storage());
  std::thread other([&] {
    // No session on this thread: plain calls, nothing stored.
    auto r = inc(100);
    EXPECT_FALSE(r.has_ids());
  });
  other.join();
  EXPECT_TRUE(inc(100).has_ids());
  EXPECT_EQ(storage().counters().executed, 1u);
}

TEST_P(Modes, InnerSessionOfAnotherStorageDoesNotDisableTheOuter) {
  // The original's global context makes outer calls silently unmemoized after an inner
  // storage's block exits; here each session is a per-thread stack entry.
  md::Storage other;
  md::Session outer(storage());
  {
    md::Session inner(other);
    EXPECT_TRUE(inc(1).has_ids());
  }
  auto r = inc(2);
  EXPECT_TRUE(r.has_ids());
  outer.close();
  EXPECT_EQ(storage().calls_of(inc).size(), 1u);
  EXPECT_EQ(other.calls_of(inc).size(), 1u);
}

TEST_P(Modes, ThreadsShareOneStorage) {
  constexpr int threads = 4;
  constexpr int per_thread = 200;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      md::Session s(storage());
      for (int i = 0; i < per_thread; ++i) inc(i);  // every thread makes the same calls
    });
  }
  for (auto& t : pool) t.join();
  EXPECT_EQ(storage().calls_of(inc).size(), static_cast<std::size_t>(per_thread));
  reopen();
  EXPECT_EQ(storage().calls_of(inc).size(), static_cast<std::size_t>(per_thread));
}

MANDALA_INSTANTIATE_BACKENDS(Modes);

}  // namespace
