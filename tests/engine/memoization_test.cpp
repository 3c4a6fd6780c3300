// The original's portable memoization behaviours (spec section 8: test_storage, test_retracing,
// scenarios 1-5), run against every backend, with reopened stores.

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <stdexcept>

#include "mandala/mandala.hpp"
#include "support/backends.hpp"

namespace md = mandala;
using md::testing::BackendTest;

namespace {

std::atomic<int> inc_runs{0};
std::atomic<int> add_runs{0};

const auto inc = md::op("inc", {"x"}, [](int x) {
  ++inc_runs;
  return x + 1;
});
const auto add = md::op("add", {"x", "y"}, [](int x, int y) {
  ++add_runs;
  return x + y;
});

class Memoization : public BackendTest {
 protected:
  void SetUp() override {
    inc_runs = 0;
    add_runs = 0;
    BackendTest::SetUp();
  }
};

TEST_P(Memoization, StorageIdsAndValues) {
  md::Session s(storage());
  md::Ref<int> y = inc(1);
  md::Ref<int> z = inc(2);
  md::Ref<int> w = inc(y);
  EXPECT_EQ(w.cid(), z.cid());
  EXPECT_NE(w.hid(), y.hid());
  EXPECT_NE(w.hid(), z.hid());
  EXPECT_NE(w.cid(), y.cid());
  EXPECT_EQ(*y, 2);
  EXPECT_EQ(*z, 3);
  EXPECT_EQ(*w, 3);
  EXPECT_TRUE(y.in_memory());
  // inc(y) and inc(2) are content-equal: the second one ran nothing.
  EXPECT_EQ(inc_runs, 2);
}

TEST_P(Memoization, RetracingExecutesNothingAndLoadsNothing) {
  auto program = [] {
    std::vector<md::Ref<int>> out;
    for (int x = 0; x < 10; ++x) {
      auto y = inc(x);
      out.push_back(add(x, y));
    }
    return out;
  };
  std::vector<md::Id> first_hids;
  {
    md::Session s(storage());
    for (const auto& r : program()) first_hids.push_back(r.hid());
  }
  EXPECT_EQ(inc_runs, 10);
  EXPECT_EQ(add_runs, 10);

  reopen();
  const auto before = storage().counters();
  md::Session s(storage());
  const auto again = program();
  EXPECT_EQ(inc_runs, 10);
  EXPECT_EQ(add_runs, 10);
  ASSERT_EQ(again.size(), first_hids.size());
  for (std::size_t i = 0; i < again.size(); ++i) {
    EXPECT_EQ(again[i].hid(), first_hids[i]);
    EXPECT_FALSE(again[i].in_memory()) << "retraced outputs must be lazy";
  }
  EXPECT_EQ(storage().counters().executed, before.executed);
  EXPECT_EQ(storage().counters().reused_by_history, before.reused_by_history + 20u);
  // Values load on first use, and then stay in memory.
  EXPECT_EQ(*again[3], 3 + 4);
  EXPECT_TRUE(again[3].in_memory());
  EXPECT_FALSE(again[4].in_memory());
}

TEST_P(Memoization, ContentReuseAcrossHistories) {
  {
    md::Session s(storage());
    auto y = inc(1);
    auto y2 = inc(y);
    EXPECT_EQ(*y2, 3);
  }
  EXPECT_EQ(inc_runs, 2);
  reopen();  // the original re-executes here (content lookups only hit its in-memory cache)
  md::Session s(storage());
  auto z = inc(2);
  EXPECT_EQ(inc_runs, 2) << "a content-equal stored call must be reused after reopening";
  EXPECT_EQ(storage().counters().reused_by_content, 1u);
  EXPECT_EQ(*z, 3);
  auto y = inc(1);
  auto y2 = inc(y);
  EXPECT_EQ(z.cid(), y2.cid());
  EXPECT_NE(z.hid(), y2.hid());
  s.close();
  EXPECT_EQ(storage().calls_of(inc).size(), 3u);
  reopen();
  EXPECT_EQ(storage().calls_of(inc).size(), 3u);
}

// The other way round: the stored call has raw inputs (the store keeps no content id for it, and
// finds it by content under the hid of raw inputs), the new one an input from another call.
TEST_P(Memoization, ContentReuseOfACallOfRawInputs) {
  {
    md::Session s(storage());
    EXPECT_EQ(*inc(2), 3);
  }
  reopen();
  {
    md::Session s(storage());
    auto y = inc(1);  // runs: 2
    auto y2 = inc(y);
    EXPECT_EQ(*y2, 3);
  }
  EXPECT_EQ(inc_runs, 2) << "inc(inc(1)) must reuse the stored inc(2)";
  EXPECT_EQ(storage().counters().reused_by_content, 1u);
  reopen();
  const auto calls = storage().calls_of(inc);
  ASSERT_EQ(calls.size(), 3u);
  std::set<md::Id> cids;
  for (const auto& c : calls) cids.insert(c.cid);
  EXPECT_EQ(cids.size(), 2u);  // inc(2) and inc(inc(1)) share theirs
}

TEST_P(Memoization, ExceptionInSessionKeepsEarlierCalls) {
  try {
    md::Session s(storage());
    inc(1);
    inc(2);
    throw std::runtime_error("user code failed");
  } catch (const std::runtime_error&) {}
  reopen();
  md::Session s(storage());
  inc(1);
  inc(2);
  EXPECT_EQ(inc_runs, 2);
}

TEST_P(Memoization, NestedSessionsFlushAtOutermostExit) {
  if (!persistent()) GTEST_SKIP() << "visibility from a second connection needs a file or database";
  md::StorageOptions slow;
  slow.flush_interval = std::chrono::hours(1);
  open(slow);
  {
    md::Session outer(storage());
    {
      md::Session inner(storage());
      inc(1);
    }
    md::Storage other(location());
    EXPECT_TRUE(other.calls_of("inc").empty()) << "an inner exit must not flush";
  }
  md::Storage other(location());
  EXPECT_EQ(other.calls_of("inc").size(), 1u);
}

TEST_P(Memoization, LongSessionsFlushPeriodically) {
  if (!persistent()) GTEST_SKIP() << "visibility from a second connection needs a file or database";
  md::StorageOptions opts;
  opts.flush_every_calls = 3;
  opts.flush_interval = std::chrono::hours(1);
  open(opts);
  md::Session s(storage());
  for (int i = 0; i < 7; ++i) inc(i);
  md::Storage other(location());
  EXPECT_EQ(other.calls_of("inc").size(), 6u);  // two batches of three; one call still pending
}

TEST_P(Memoization, DefaultsAreAppliedBeforeHashing) {
  std::atomic<int> runs{0};
  const auto f = md::op("f", {"a", md::arg("b", 1)}, [&](int a, int b) {
    ++runs;
    return a * 10 + b;
  });
  md::Session s(storage());
  auto r1 = f(1);
  auto r2 = f(1, 1);
  EXPECT_EQ(r1.hid(), r2.hid());
  EXPECT_EQ(*r2, 11);
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(*f(1, 2), 12);
  EXPECT_EQ(runs, 2);
  s.close();
  const auto calls = storage().calls_of(f);
  ASSERT_EQ(calls.size(), 2u);
  ASSERT_EQ(calls[0].inputs.size(), 2u);
  EXPECT_EQ(calls[0].inputs[0].first, "a");
  EXPECT_EQ(calls[0].inputs[1].first, "b");
  ASSERT_EQ(calls[0].outputs.size(), 1u);
  EXPECT_EQ(calls[0].outputs[0].first, "output_0");
}

TEST_P(Memoization, TupleOutputsAreSeparateRefs) {
  const auto divmod = md::op("divmod", {"a", "b"},
                             [](int a, int b) {
                               return std::tuple{a / b, a % b};
                             },
                             {.outputs = {"q", "r"}});
  md::Id q_hid;
  {
    md::Session s(storage());
    auto [q, r] = divmod(17, 5);
    EXPECT_EQ(*q, 3);
    EXPECT_EQ(*r, 2);
    q_hid = q.hid();
    EXPECT_NE(q.hid(), r.hid());
  }
  reopen();
  md::Session s(storage());
  auto [q, r] = divmod(17, 5);
  EXPECT_EQ(q.hid(), q_hid);
  EXPECT_FALSE(q.in_memory());
  EXPECT_EQ(*r, 2);
  s.close();
  const auto calls = storage().calls_of(divmod);
  ASSERT_EQ(calls.size(), 1u);
  ASSERT_EQ(calls[0].outputs.size(), 2u);
  EXPECT_EQ(calls[0].outputs[0].first, "q");
  EXPECT_EQ(calls[0].outputs[1].first, "r");
}

TEST_P(Memoization, VoidAndNullaryOpsAreRecorded) {
  std::atomic<int> runs{0};
  const auto touch = md::op("touch", {}, [&]() { ++runs; });
  const auto answer = md::op("answer", {}, [&]() {
    ++runs;
    return 42;
  });
  {
    md::Session s(storage());
    touch();
    touch();
    EXPECT_EQ(*answer(), 42);
  }
  EXPECT_EQ(runs, 2);
  reopen();
  md::Session s(storage());
  touch();
  EXPECT_EQ(*answer(), 42);
  EXPECT_EQ(runs, 2);
  s.close();
  EXPECT_EQ(storage().calls_of("touch").size(), 1u);
}

TEST_P(Memoization, VersionBumpInvalidatesOldCalls) {
  std::atomic<int> runs{0};
  auto make = [&](std::uint32_t version) {
    return md::op("scale", {"x"},
                  [&](double x) {
                    ++runs;
                    return 2 * x;
                  },
                  {.outputs = {}, .version = version});
  };
  {
    md::Session s(storage());
    make(0)(1.5);
    make(0)(1.5);
  }
  EXPECT_EQ(runs, 1);
  reopen();
  md::Session s(storage());
  make(1)(1.5);
  EXPECT_EQ(runs, 2);
  make(0)(1.5);
  EXPECT_EQ(runs, 2) << "the old version's calls are still there";
  s.close();
  EXPECT_EQ(storage().calls_of("scale", 0).size(), 1u);
  EXPECT_EQ(storage().calls_of("scale", 1).size(), 1u);
  EXPECT_EQ(storage().calls_of("scale").size(), 2u);
}

TEST_P(Memoization, ArgumentsMayBeConvertibleValuesOrRefs) {
  const auto half = md::op("half", {"x"}, [](double x) { return x / 2; });
  md::Session s(storage());
  auto a = half(3);  // int literal converts to double
  auto b = half(3.0);
  EXPECT_EQ(a.hid(), b.hid());
  auto c = half(a);
  EXPECT_DOUBLE_EQ(*c, 0.75);
}

TEST_P(Memoization, OpExceptionPropagatesAndRecordsNothing) {
  std::atomic<bool> fail{true};
  const auto flaky = md::op("flaky", {"x"}, [&](int x) {
    if (fail) throw std::invalid_argument("bad input " + std::to_string(x));
    return x;
  });
  md::Session s(storage());
  EXPECT_THROW(flaky(1), std::invalid_argument);
  fail = false;
  EXPECT_EQ(*flaky(1), 1);
  EXPECT_EQ(storage().counters().executed, 1u);
  s.close();
  EXPECT_EQ(storage().calls_of(flaky).size(), 1u);
}

TEST_P(Memoization, RefsOfTheWrongTypeFailClearly) {
  md::Id hid;
  {
    md::Session s(storage());
    hid = inc(1).hid();
  }
  reopen();
  auto as_string = storage().ref<std::string>(hid);
  ASSERT_TRUE(as_string.has_value());
  try {
    (void)as_string->get();
    FAIL() << "decoding an int as a string must throw";
  } catch (const md::Error& e) {
    EXPECT_EQ(e.code(), md::Errc::decode);
    EXPECT_NE(std::string(e.what()).find("expected string, found integer"), std::string::npos) << e.what();
  }
  auto as_int = storage().ref<int>(hid);
  EXPECT_EQ(as_int->get(), 2);
  EXPECT_THROW((void)as_int->as<double>().get(), md::Error);
}

TEST_P(Memoization, LazyRefOfAClosedStorageFailsClearly) {
  md::Ref<int> lazy;
  {
    md::Session s(storage());
    inc(5);
  }
  reopen();
  {
    md::Session s(storage());
    lazy = inc(5);
  }
  ASSERT_FALSE(lazy.in_memory());
  m_storage.reset();
  try {
    (void)lazy.get();
    FAIL() << "loading from a closed storage must throw";
  } catch (const md::Error& e) {
    EXPECT_EQ(e.code(), md::Errc::closed);
  }
}

TEST_P(Memoization, ExplicitCallsNeedNoSession) {
  auto r = storage().call(inc, 41);
  EXPECT_EQ(*r, 42);
  EXPECT_TRUE(r.has_ids());
  reopen();
  auto again = storage().call(inc, 41);
  EXPECT_EQ(again.hid(), r.hid());
  EXPECT_EQ(inc_runs, 1);
  // Outside any session an op is a plain call: no ids, nothing stored.
  auto plain = inc(41);
  EXPECT_FALSE(plain.has_ids());
  EXPECT_EQ(*plain, 42);
  EXPECT_EQ(inc_runs, 2);
}

TEST_P(Memoization, StructsAndContainersAsValues) {
  const auto stats = md::op("stats", {"xs"}, [](const std::vector<double>& xs) {
    double sum = 0;
    for (double x : xs) sum += x;
    return std::map<std::string, double>{{"sum", sum}, {"n", static_cast<double>(xs.size())}};
  });
  md::Id hid;
  {
    md::Session s(storage());
    auto r = stats(std::vector<double>{1, 2, 3.5});
    hid = r.hid();
    EXPECT_DOUBLE_EQ(r->at("sum"), 6.5);
  }
  reopen();
  auto r = storage().ref<std::map<std::string, double>>(hid);
  ASSERT_TRUE(r);
  EXPECT_DOUBLE_EQ((*r)->at("n"), 3.0);
  EXPECT_EQ(r->to_json(), R"({"n":3.0,"sum":6.5})");
}

MANDALA_INSTANTIATE_BACKENDS(Memoization);

}  // namespace
