// Transient outputs (OpOptions::transient, docs/storage-format.md 2.3): kept out of the store,
// recorded with their content id, recomputed from the call's stored inputs when loaded, the id
// checked; on every backend, across reopened stores.

#include <gtest/gtest.h>

#include <atomic>
#include <numeric>
#include <string>
#include <vector>

#include "mandala/dynamic.hpp"
#include "mandala/mandala.hpp"
#include "support/backends.hpp"

namespace md = mandala;
using md::testing::BackendTest;

namespace {

std::atomic<int> big_runs{0};
std::atomic<int> drift{0};  // added to big's result: a change of code without a new version

std::vector<double> big_fn(int n) {
  ++big_runs;
  std::vector<double> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), static_cast<double>(drift.load()));
  return v;
}

const auto big = md::op("big", {"n"}, big_fn, {.outputs = {"data"}, .transient = true});
const auto total =
    md::op("total", {"data"}, [](const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0); });
const auto largest =
    md::op("largest", {"data"}, [](const std::vector<double>& v) { return v.empty() ? 0.0 : v.back(); });
/// Two outputs, one transient.
const auto split =
    md::op("split", {"n"},
           [](int n) {
             ++big_runs;
             return std::tuple<std::vector<double>, int>(std::vector<double>(static_cast<std::size_t>(n), 1.5), n);
           },
           {.outputs = {"data", "count"}, .transient_outputs = {"data"}});
/// An ignored argument: its calls cannot run again, so they keep their values.
const auto noisy = md::op("noisy", {"n", md::ignored("verbose", false)},
                          [](int n, bool) {
                            ++big_runs;
                            return std::vector<double>(static_cast<std::size_t>(n), 2.0);
                          },
                          {.transient = true});

class Transient : public BackendTest {};

md::IntegrityReport integrity(md::Storage& s) { return s.check_integrity(); }

TEST_P(Transient, AnOutputIsNotStoredAndIsRecomputedWithItsIdChecked) {
  const auto values_before = storage().stats().values;
  md::Id hid, cid;
  {
    md::Session s(storage());
    auto r = big(1000);
    EXPECT_EQ(r.get().size(), 1000u);  // held in memory by the call that computed it
    hid = r.hid();
    cid = r.cid();
  }
  // Only the input (1000) is a new value; the 8 KB output is not stored.
  EXPECT_EQ(storage().stats().values, values_before + 1);
  EXPECT_TRUE(integrity(storage()).ok()) << integrity(storage()).problems.front().message;
  reopen();
  const int runs = big_runs;
  const auto before = storage().counters();
  md::Session s(storage());
  auto r = big(1000);  // memoized: nothing runs, nothing loads
  EXPECT_EQ(big_runs, runs);
  EXPECT_EQ(storage().counters().executed, before.executed);
  EXPECT_EQ(r.hid(), hid);
  EXPECT_EQ(r.cid(), cid);
  EXPECT_EQ(r.get().back(), 999.0);  // loading it runs the op again
  EXPECT_EQ(big_runs, runs + 1);
  EXPECT_EQ(storage().counters().recomputed, before.recomputed + 1);
  EXPECT_EQ(r.get().size(), 1000u);  // kept by the ref from then on
  EXPECT_EQ(big_runs, runs + 1);
  storage().flush();
  EXPECT_EQ(storage().stats().values, values_before + 1);  // still not stored
}

TEST_P(Transient, ConsumersUseItAndALaterNewConsumerRecomputesIt) {
  double sum = 0;
  {
    md::Session s(storage());
    sum = total(big(100)).get();  // the consumer is recorded with the transient input
  }
  EXPECT_EQ(sum, 4950.0);
  EXPECT_TRUE(integrity(storage()).ok()) << integrity(storage()).problems.front().message;
  reopen();
  const int runs = big_runs;
  auto executed = storage().counters().executed;
  {
    md::Session s(storage());
    EXPECT_EQ(total(big(100)).get(), 4950.0);  // the whole pipeline is memoized
    EXPECT_EQ(big_runs, runs);
    EXPECT_EQ(largest(big(100)).get(), 99.0);  // a new consumer needs the value: recomputed once
    EXPECT_EQ(big_runs, runs + 1);
    EXPECT_EQ(storage().counters().executed, executed + 1);
  }
  reopen();
  executed = storage().counters().executed;
  {
    md::Session s(storage());
    EXPECT_EQ(largest(big(100)).get(), 99.0);
    EXPECT_EQ(storage().counters().executed, executed);
  }
  const auto report = integrity(storage());
  EXPECT_TRUE(report.ok()) << report.problems.front().message;
}

TEST_P(Transient, AChangedResultIsReported) {
  {
    md::Session s(storage());
    (void)big(10);
  }
  reopen();
  drift = 1;  // the op's code changed without a new version
  md::Session s(storage());
  auto r = big(10);
  try {
    (void)r.get();
    drift = 0;
    FAIL() << "a changed result was given back";
  } catch (const md::Error& e) {
    drift = 0;
    EXPECT_EQ(e.code(), md::Errc::output_mismatch);
    EXPECT_NE(std::string(e.what()).find("gave another value"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("output 'data'"), std::string::npos) << e.what();
  }
}

TEST_P(Transient, OnlyTheNamedOutputIsKeptOut) {
  const auto values_before = storage().stats().values;
  {
    md::Session s(storage());
    auto [data, count] = split(50);
    EXPECT_EQ(count.get(), 50);
  }
  EXPECT_EQ(storage().stats().values, values_before + 1);  // 50: the input and the count are one value
  reopen();
  const int runs = big_runs;
  md::Session s(storage());
  auto [data, count] = split(50);
  EXPECT_EQ(count.get(), 50);  // stored: loads without a run
  EXPECT_EQ(big_runs, runs);
  EXPECT_EQ(data.get().size(), 50u);
  EXPECT_EQ(big_runs, runs + 1);
}

TEST_P(Transient, ACallThatCannotRunAgainKeepsItsValue) {
  const auto values_before = storage().stats().values;
  {
    md::Session s(storage());
    (void)noisy(7, md::Ignore(true));
  }
  // 7 and the output: the ignored argument is not stored, so the output could not be recomputed.
  EXPECT_EQ(storage().stats().values, values_before + 2);
  reopen();
  const int runs = big_runs;
  md::Session s(storage());
  EXPECT_EQ(noisy(7, md::Ignore(false)).get().size(), 7u);
  EXPECT_EQ(big_runs, runs);
}

TEST_P(Transient, FramesShowItAsNotStoredAndLoadItOnDemand) {
  {
    md::Session s(storage());
    (void)total(big(20));
  }
  reopen();
  const int runs = big_runs;
  const auto table = storage().cf("big").eval();
  EXPECT_NE(table.to_text().find("<not stored>"), std::string::npos) << table.to_text();
  EXPECT_NE(table.to_json().find("not_stored"), std::string::npos) << table.to_json();
  EXPECT_EQ(big_runs, runs);  // showing it computes nothing
  const auto column = table.column_cells("data");
  const auto loaded = md::ColumnCells::values_of(std::vector<const md::ColumnCells*>{&column});
  ASSERT_EQ(loaded.not_stored.size(), 1u);
  EXPECT_EQ(loaded.not_stored.front(), 1);
  EXPECT_TRUE(loaded.contents.front().empty());
  EXPECT_EQ(big_runs, runs);
  const auto cell = table.cell(0, "data");
  EXPECT_NE(cell.to_json().find("not_stored"), std::string::npos);
  EXPECT_EQ(cell.as<std::vector<double>>().size(), 20u);  // an explicit load recomputes
  EXPECT_EQ(big_runs, runs + 1);
  EXPECT_EQ(column.values().size(), 1u);  // the value is held now
}

TEST_P(Transient, CopiesKeepItOutAndTheCopyRecomputesIt) {
  {
    md::Session s(storage());
    (void)total(big(30));
  }
  md::Storage other;
  const auto report = storage().push(other);
  EXPECT_EQ(report.calls_copied, 2u);
  EXPECT_TRUE(report.skipped.empty());
  EXPECT_TRUE(other.check_integrity().ok());
  const int runs = big_runs;
  md::Session s(other);
  EXPECT_EQ(big(30).get().size(), 30u);
  EXPECT_EQ(big_runs, runs + 1);
}

TEST_P(Transient, WithoutTheOpDeclaredTheErrorSaysSo) {
  md::Id hid;
  {
    const md::DynamicOp gen("gen", {"n"}, 1, {.transient = true},
                            {.recompute = [](std::span<const md::DynamicArg> args) {
                              return std::vector{md::EncodedValue::of(md::encoded_value(args[0]).decode<int>() * 2)};
                            }});
    md::Session s(storage());
    auto outs =
        gen.call_in(storage().core(), {{"n", md::EncodedValue::of(21)}}, [](std::span<const md::DynamicArg> args) {
          return std::vector{md::EncodedValue::of(md::encoded_value(args[0]).decode<int>() * 2)};
        });
    hid = outs.front().hid();
  }
  reopen();
  const auto ref = storage().ref(hid);
  ASSERT_TRUE(ref.has_value());
  try {
    (void)md::encoded_value(*ref);
    FAIL() << "a transient value loaded without its op";
  } catch (const md::Error& e) {
    EXPECT_EQ(e.code(), md::Errc::not_found);
    EXPECT_NE(std::string(e.what()).find("declares no op gen"), std::string::npos) << e.what();
  }
  // Declared again, the op recomputes it.
  const md::DynamicOp gen("gen", {"n"}, 1, {.transient = true}, {.recompute = [](std::span<const md::DynamicArg> args) {
                            return std::vector{md::EncodedValue::of(md::encoded_value(args[0]).decode<int>() * 2)};
                          }});
  EXPECT_EQ(md::encoded_value(*storage().ref(hid)).decode<int>(), 42);
}

TEST_P(Transient, ARefFromAQueryUsedWithoutBeingReadStaysUnstored) {
  md::Id hid;
  {
    md::Session s(storage());
    hid = big(5).hid();
  }
  reopen();
  const auto values = storage().stats().values;
  const int runs = big_runs;
  const auto ref = storage().ref(hid);  // knows nothing of its call
  ASSERT_TRUE(ref.has_value());
  const md::DynamicOp count("count", {"data"}, 1);
  (void)count.call_in(storage().core(), {{"data", *ref}},
                      [](std::span<const md::DynamicArg>) { return std::vector{md::EncodedValue::of(1)}; });
  storage().flush();
  EXPECT_EQ(big_runs, runs);                        // the function did not read it
  EXPECT_EQ(storage().stats().values, values + 1);  // only the new output (1)
  EXPECT_TRUE(storage().check_integrity().ok());
}

TEST(TransientDeclarations, ImpossibleOnesAreRefused) {
  try {
    (void)md::op("f", {"x"}, [](int x) { return x; }, {.transient_outputs = {"nope"}});
    FAIL();
  } catch (const md::Error& e) {
    EXPECT_EQ(e.code(), md::Errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("'nope'"), std::string::npos) << e.what();
  }
  try {
    (void)md::op("g", {"x"}, [](int x) { return md::MList<int>{x}; }, {.transient = true});
    FAIL();
  } catch (const md::Error& e) {
    EXPECT_NE(std::string(e.what()).find("transparent collection"), std::string::npos) << e.what();
  }
  try {
    (void)md::DynamicOp("h", {"x"}, 1, {.transient = true});
    FAIL();
  } catch (const md::Error& e) {
    EXPECT_NE(std::string(e.what()).find("DynamicOptions::recompute"), std::string::npos) << e.what();
  }
}

MANDALA_INSTANTIATE_BACKENDS(Transient);

}  // namespace
