// mandala::Value as an op's parameter and result type: its calls have the ids of the calls of an
// op of the same declaration over typed values, and the two reuse each other's calls.

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <string>
#include <vector>

#include "mandala/mandala.hpp"
#include "support/backends.hpp"

namespace md = mandala;
using md::testing::BackendTest;

namespace {

std::atomic<int> runs{0};

// The same op twice: over typed values, and over Values (a heterogeneous map in, a map out).
const auto typed_scale =
    md::op("value_scale", {"weights", "factor"}, [](std::map<std::string, std::vector<double>> weights, double factor) {
      ++runs;
      for (auto& [name, w] : weights)
        for (auto& x : w) x *= factor;
      return weights;
    });

const auto value_scale = md::op("value_scale", {"weights", "factor"}, [](md::Value weights, md::Value factor) {
  ++runs;
  md::Value::Map out;
  for (const auto& [name, w] : weights.as_map()) {
    auto xs = w.as_typed_array().values<double>();
    for (auto& x : xs) x *= factor.as_float64();
    out.emplace_back(name, md::Value::TypedArray::of<double>(xs));
  }
  return md::Value(std::move(out));
});

class ValueOp : public BackendTest {
 protected:
  void SetUp() override {
    runs = 0;
    BackendTest::SetUp();
  }
};

TEST_P(ValueOp, ValueCallsAreTypedCallsAndReuseThem) {
  const std::map<std::string, std::vector<double>> weights{{"a", {1.0, 2.0}}, {"b", {}}};
  md::Id typed_hid, typed_cid;
  {
    md::Session s(storage());
    const auto r = typed_scale(weights, 2.0);
    typed_hid = r.hid();
    typed_cid = r.cid();
  }
  EXPECT_EQ(runs, 1);
  reopen();
  {
    md::Session s(storage());
    const auto r = value_scale(md::Value::of(weights), md::Value(2.0));
    EXPECT_EQ(r.hid(), typed_hid);
    EXPECT_EQ(r.cid(), typed_cid);
    const md::Value out = *r;  // loaded from the store: the typed op's result
    EXPECT_EQ(out.find("a")->as_typed_array().values<double>(), (std::vector<double>{2.0, 4.0}));
    EXPECT_EQ(out.content_id(), typed_cid);
    // A new call of the Value op is reused by the typed op.
    const auto fresh = value_scale(md::Value::Map{{"c", md::Value::TypedArray::of<double>(std::vector{3.0})}}, 0.5);
    EXPECT_EQ(runs, 2);
    const auto again = typed_scale(std::map<std::string, std::vector<double>>{{"c", {3.0}}}, 0.5);
    EXPECT_EQ(again.hid(), fresh.hid());
    EXPECT_EQ((*again).at("c"), (std::vector<double>{1.5}));
  }
  EXPECT_EQ(runs, 2);
}

MANDALA_INSTANTIATE_BACKENDS(ValueOp);

}  // namespace
