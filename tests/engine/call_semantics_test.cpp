// Argument handling: signatures (adapted to C++ arity), Ignore, NewArgDefault, ValuePointer,
// op declaration errors and output mismatches (spec section 8: test_signatures, test_ignore,
// test_newargdefault*, test_value_pointer, scenarios 4-7).

#include <gtest/gtest.h>

#include <atomic>
#include <numeric>

#include "mandala/mandala.hpp"
#include "support/backends.hpp"

namespace md = mandala;
using md::testing::BackendTest;

namespace {

class CallSemantics : public BackendTest {};

template <class F>
void expect_error(md::Errc code, const std::string& fragment, F&& f) {
  try {
    f();
    ADD_FAILURE() << "expected an error containing: " << fragment;
  } catch (const md::Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

std::vector<std::string> input_names(const md::CallInfo& c) {
  std::vector<std::string> out;
  for (const auto& [name, ref] : c.inputs) out.push_back(name);
  return out;
}

TEST_P(CallSemantics, SignaturesWithDefaultsAndSeveralOutputs) {
  // The original's add(x, *args, y=1, **kwargs), adapted: C++ has fixed arity, so variadic
  // parts are explicit vector/map parameters with defaults.
  using Extra = std::map<std::string, int>;
  const auto f =
      md::op("sig_add", {"x", md::arg("args", std::vector<int>{}), md::arg("y", 1), md::arg("kwargs", Extra{})},
             [](int x, const std::vector<int>& args, int y, const Extra& kwargs) {
               const int total = x + y + std::accumulate(args.begin(), args.end(), 0);
               return std::tuple{total, kwargs};
             },
             {.outputs = {"sum", "extra"}});
  md::Session s(storage());
  EXPECT_EQ(*std::get<0>(f(1)), 2);
  EXPECT_EQ(*std::get<0>(f(1, std::vector<int>{2, 3})), 7);
  auto [sum, extra] = f(10, std::vector<int>{}, 11, Extra{{"z", 6}});
  EXPECT_EQ(*sum, 21);
  EXPECT_EQ(*extra, (Extra{{"z", 6}}));
  auto [sum2, extra2] = f(10, std::vector<int>{2}, 11, Extra{{"w", 7}, {"z", 5}});
  EXPECT_EQ(*sum2, 23);
  EXPECT_EQ(extra2->size(), 2u);
  // f(1) and f(1, {}, 1, {}) are one call: defaults are applied before hashing.
  EXPECT_EQ(std::get<0>(f(1)).hid(), std::get<0>(f(1, std::vector<int>{}, 1, Extra{})).hid());
  s.close();
  reopen();
  const auto calls = storage().calls_of(f);
  ASSERT_EQ(calls.size(), 4u);
  EXPECT_EQ(input_names(calls[0]), (std::vector<std::string>{"args", "kwargs", "x", "y"}));
}

TEST_P(CallSemantics, IgnoredParameterIsNotPartOfIdentity) {
  std::atomic<int> runs{0};
  const auto inc = md::op("inc_ignore", {"x", md::ignored("irrelevant")}, [&](int x, int) {
    ++runs;
    return x + 1;
  });
  {
    md::Session s(storage());
    inc(23, 0);
    inc(23, 1);
  }
  reopen();
  md::Session s(storage());
  inc(23, 2);
  EXPECT_EQ(runs, 1);
  s.close();
  const auto calls = storage().calls_of(inc);
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(input_names(calls[0]), std::vector<std::string>{"x"});
}

TEST_P(CallSemantics, IgnoreAtTheCallSite) {
  std::vector<bool> seen;
  const auto h = md::op("h", {"x", "verbose"}, [&](int x, bool verbose) {
    seen.push_back(verbose);
    return x;
  });
  md::Session s(storage());
  auto a = h(1, md::ignore(true));
  auto b = h(1, md::ignore(false));
  auto c = h(1, true);
  EXPECT_EQ(a.hid(), b.hid());
  EXPECT_NE(a.hid(), c.hid());
  EXPECT_EQ(seen, (std::vector<bool>{true, true}));  // the function sees the ignored value
  s.close();
  reopen();
  auto calls = storage().calls_of(h);
  ASSERT_EQ(calls.size(), 2u);
  std::set<std::vector<std::string>> names;
  for (const auto& call : calls) names.insert(input_names(call));
  EXPECT_EQ(names, (std::set<std::vector<std::string>>{{"x"}, {"verbose", "x"}}));
}

TEST_P(CallSemantics, NewArgDefaultReusesCallsMadeBeforeTheParameterExisted) {
  std::atomic<int> runs{0};
  {
    const auto add = md::op("nad_add", {"x"}, [&](int x) {
      ++runs;
      return x + 1;
    });
    md::Session s(storage());
    add(1);
  }
  reopen();
  const auto add = md::op("nad_add", {"x", md::new_arg("y", 1)}, [&](int x, int y) {
    ++runs;
    return x + y;
  });
  md::Session s(storage());
  auto a = add(1);
  auto b = add(1, 1);
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(a.hid(), b.hid());
  EXPECT_EQ(*b, 2);
  EXPECT_EQ(*add(1, 2), 3);
  EXPECT_EQ(runs, 2);
  s.close();
  EXPECT_EQ(storage().calls_of(add).size(), 2u);
}

TEST_P(CallSemantics, NewArgDefaultWithCompoundValuesAndRefs) {
  std::atomic<int> runs{0};
  using Vec = std::vector<double>;
  const auto f =
      md::op("nad_vec", {"x", md::new_arg("w", std::optional<Vec>{})}, [&](const Vec& x, const std::optional<Vec>& w) {
        ++runs;
        double s = 0;
        for (std::size_t i = 0; i < x.size(); ++i) s += x[i] * (w ? (*w)[i] : 1.0);
        return s;
      });
  md::Session s(storage());
  auto a = f(Vec{1, 2});
  auto b = f(Vec{1, 2}, std::optional<Vec>{});
  EXPECT_EQ(a.hid(), b.hid());
  auto c = f(Vec{1, 2}, std::optional<Vec>{Vec{2, 2}});
  EXPECT_DOUBLE_EQ(*c, 6.0);
  EXPECT_EQ(runs, 2);
  // A ref whose content equals the default also falls back to the old call.
  const auto none = md::op("none_vec", {}, [] { return std::optional<Vec>{}; });
  auto d = f(Vec{1, 2}, none());
  EXPECT_EQ(d.cid(), a.cid());
  EXPECT_EQ(runs, 2);
}

TEST_P(CallSemantics, ValuePointerIdentifiesByName) {
  std::atomic<int> runs{0};
  using Vec = std::vector<double>;
  const auto mean = md::op("get_mean", {"x"}, [&](const Vec& x) {
    ++runs;
    return std::accumulate(x.begin(), x.end(), 0.0) / static_cast<double>(x.size());
  });
  {
    md::Session s(storage());
    EXPECT_DOUBLE_EQ(*mean(md::ValuePointer<Vec>("X", Vec{1, 2, 3, 4, 5})), 3.0);
    // Same name, other object: treated as the same value (memoized).
    EXPECT_DOUBLE_EQ(*mean(md::ValuePointer<Vec>("X", Vec{100})), 3.0);
  }
  EXPECT_EQ(runs, 1);
  reopen();
  const auto calls = storage().calls_of(mean);
  ASSERT_EQ(calls.size(), 1u);
  const auto x = calls[0].input("x");
  ASSERT_TRUE(x);
  EXPECT_EQ(x->to_json(), R"({"pointer":"X"})");
  expect_error(md::Errc::decode, "value pointer 'X'", [&] { (void)x->as<Vec>().get(); });
  expect_error(md::Errc::invalid_argument, "name must not be empty", [] { md::ValuePointer<int>("", 1); });
}

TEST(OpDeclaration, ImpossibleDeclarationsFailAtConstruction) {
  auto two = [](int a, int b) { return a + b; };
  expect_error(md::Errc::invalid_argument, "takes 2 parameters but 1 names", [&] { md::op("f", {"a"}, two); });
  expect_error(md::Errc::invalid_argument, "used twice", [&] { md::op("f", {"a", "a"}, two); });
  expect_error(md::Errc::invalid_argument, "clashes with an input", [&] {
    md::op("f", {"a", "x"}, two, {.outputs = {"x"}});
  });
  expect_error(md::Errc::invalid_argument, "inputs named output_N need explicit output names", [&] {
    md::op("f", {"a", "output_0"}, two);
  });
  expect_error(md::Errc::invalid_argument, "returns 1 outputs but 2 output names", [&] {
    md::op("f", {"a", "b"}, two, {.outputs = {"p", "q"}});
  });
  expect_error(md::Errc::invalid_argument, "non-empty name", [&] { md::op("", {"a", "b"}, two); });
  expect_error(md::Errc::invalid_argument, "default of parameter 'b' is a double", [&] {
    md::op("f", {"a", md::arg("b", 1.0)}, two);
  });
  expect_error(md::Errc::invalid_argument, "has no default but follows", [&] {
    md::op("f", {md::arg("a", 1), "b"}, two);
  });
  EXPECT_NO_THROW(md::op("f", {"a", "output_0"}, two, {.outputs = {"sum"}}));
}

TEST_P(CallSemantics, MissingArgumentIsAClearError) {
  const auto f = md::op("needs_two", {"a", "b"}, [](int a, int b) { return a - b; });
  md::Session s(storage());
  expect_error(md::Errc::invalid_argument, "missing argument 'b'", [&] { f(1); });
}

TEST_P(CallSemantics, EmptyRefArgumentIsAClearError) {
  const auto twice = md::op("twice", {"x"}, [](int x) { return 2 * x; });
  md::Ref<int> empty;
  {
    md::Session s(storage());
    expect_error(md::Errc::invalid_argument, "empty Ref", [&] { twice(empty); });
  }
  expect_error(md::Errc::invalid_argument, "empty ref", [&] { twice(empty); });
}

TEST_P(CallSemantics, PlainRefsBecomeStoredInputs) {
  const auto twice = md::op("twice", {"x"}, [](int x) { return 2 * x; });
  auto plain = twice(21);  // no session: a plain value ref without ids
  ASSERT_FALSE(plain.has_ids());
  md::Id hid;
  {
    md::Session s(storage());
    auto stored = twice(plain);
    EXPECT_EQ(*stored, 84);
    EXPECT_EQ(stored.hid(), twice(42).hid()) << "a plain ref counts as its value";
    hid = stored.hid();
  }
  reopen();
  const auto calls = storage().calls_of(twice);
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].input("x")->as<int>().get(), 42);
}

TEST_P(CallSemantics, ChangedOutputsWithoutNewVersionFailAtCallTime) {
  {
    const auto f = md::op("renamed", {"x"}, [](int x) { return x; }, {.outputs = {"old"}});
    md::Session s(storage());
    f(1);
  }
  reopen();
  const auto g = md::op("renamed", {"x"}, [](int x) { return x; }, {.outputs = {"new"}});
  md::Session s(storage());
  expect_error(md::Errc::output_mismatch, "give the op a new version", [&] { g(1); });
  const auto h = md::op("renamed", {"x"}, [](int x) { return x; }, {.outputs = {"new"}, .version = 1});
  EXPECT_EQ(*h(1), 1);
}

MANDALA_INSTANTIATE_BACKENDS(CallSemantics);

}  // namespace
