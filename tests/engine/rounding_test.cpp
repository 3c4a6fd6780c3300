// Tolerant inputs (mandala::rounded, OpOptions::rounding / rounding_of): floating-point
// arguments equal after rounding are the same call, the rounded value is the call's input.

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "mandala/mandala.hpp"
#include "support/backends.hpp"

namespace md = mandala;
using md::testing::BackendTest;

namespace {

std::atomic<int> runs{0};
std::vector<double> received;  // what the functions were given

const auto noisy =
    md::op("noisy", {md::rounded("x", md::significant_digits(6)), "label"}, [](double x, const std::string& label) {
      ++runs;
      received.push_back(x);
      return label + std::to_string(x);
    });
const auto series_sum = md::op("series_sum", {md::rounded("xs", md::quantum(1e-9))}, [](const std::vector<double>& xs) {
  ++runs;
  double s = 0;
  for (double x : xs) s += x;
  return s;
});
const auto plain_sum = md::op("plain_sum", {"xs"}, [](const std::vector<double>& xs) {
  ++runs;
  return xs.empty() ? 0.0 : xs[0];
});
// The op's rounding covers every parameter: a nested map of arrays, a float, a std::array.
using Nested = std::map<std::string, std::vector<std::array<double, 2>>>;
const auto nested = md::op("nested", {"m", "f", "a"},
                           [](const Nested& m, float f, const std::array<double, 3>& a) {
                             ++runs;
                             return static_cast<double>(m.size()) + f + a[0];
                           },
                           {.rounding = md::significant_digits(4)});

class Rounding : public BackendTest {
 protected:
  void SetUp() override {
    runs = 0;
    received.clear();
    BackendTest::SetUp();
  }
};

TEST_P(Rounding, ScalarsWithinTheToleranceAreOneCall) {
  md::Id first;
  {
    md::Session s(storage());
    first = noisy(0.1 + 0.2, "a").hid();  // 0.30000000000000004
  }
  reopen();
  md::Session s(storage());
  const auto same = noisy(0.3, "a");          // differs by 5.6e-17: below the tolerance
  const auto close = noisy(0.30000004, "a");  // 4e-8 away: still 0.300000 at 6 digits
  const auto above = noisy(0.3000051, "a");   // 0.300005: above it
  EXPECT_EQ(same.hid(), first);
  EXPECT_EQ(close.hid(), first);
  EXPECT_NE(above.hid(), first);
  EXPECT_EQ(runs, 2);
  // The function got the rounded value, and the stored call's input is it.
  EXPECT_EQ(received, (std::vector<double>{0.3, 0.300005}));
  storage().flush();
  const auto call = storage().creator_of(same);
  ASSERT_TRUE(call.has_value());
  const auto& inputs = call->inputs;
  ASSERT_EQ(inputs.size(), 2u);
  EXPECT_EQ(inputs[1].first, "x");
  EXPECT_EQ(inputs[1].second.as<double>().get(), 0.3);
  EXPECT_EQ(inputs[1].second.cid(), md::detail::content_id(md::encode_value(0.3)));
  EXPECT_EQ(same.get(), "a" + std::to_string(0.3));
}

TEST_P(Rounding, ArraysWithinTheToleranceAreOneCall) {
  const std::vector<double> xs{1.0, 2.5, -3.25};
  std::vector<double> noise = xs;
  for (auto& x : noise) x += 1e-12;
  std::vector<double> moved = xs;
  moved[2] += 1e-6;
  md::Id first;
  {
    md::Session s(storage());
    first = series_sum(xs).hid();
  }
  reopen();
  md::Session s(storage());
  EXPECT_EQ(series_sum(noise).hid(), first);  // 1e-12 < the quantum 1e-9
  EXPECT_NE(series_sum(moved).hid(), first);  // 1e-6 > it
  EXPECT_EQ(runs, 2);
  // Without rounding the same noise is another call.
  EXPECT_NE(plain_sum(xs).hid(), plain_sum(noise).hid());
  EXPECT_EQ(runs, 4);
}

TEST_P(Rounding, NestedContainersFloatsAndSignedZeros) {
  const Nested m{{"a", {{1.00001, -0.0}, {2.0, 3.0}}}};
  const Nested m_noise{{"a", {{1.00002, 0.0}, {2.00001, 3.0}}}};
  const Nested m_far{{"a", {{1.1, 0.0}, {2.0, 3.0}}}};
  md::Session s(storage());
  const auto first = nested(m, 0.5f, std::array<double, 3>{7.0, 8.0, 9.0}).hid();
  EXPECT_EQ(nested(m_noise, 0.50001f, std::array<double, 3>{7.00001, 8.0, 9.0}).hid(), first);
  EXPECT_NE(nested(m_far, 0.5f, std::array<double, 3>{7.0, 8.0, 9.0}).hid(), first);
  EXPECT_NE(nested(m, 0.6f, std::array<double, 3>{7.0, 8.0, 9.0}).hid(), first);
  EXPECT_EQ(runs, 3);
  // NaN and infinities are passed as they are.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const auto special = nested(m, 0.5f, std::array<double, 3>{nan, inf, -inf});
  EXPECT_EQ(nested(m, 0.5f, std::array<double, 3>{nan, inf, -inf}).hid(), special.hid());
  EXPECT_EQ(runs, 4);
  EXPECT_TRUE(std::isnan(special.get()));
}

TEST_P(Rounding, DynamicOpsRoundByDeclaration) {
  // The same declaration as data: the same calls as the typed op.
  const md::DynamicOp dynamic("series_sum", {"xs"}, 1, {.rounding_of = {{"xs", md::quantum(1e-9)}}});
  std::vector<double> seen;
  auto fn = [&](std::span<const md::DynamicArg> args) {
    seen = md::encoded_value(args[0]).decode<std::vector<double>>();
    double sum = 0;
    for (double x : seen) sum += x;
    return std::vector{md::EncodedValue::of(sum)};
  };
  md::Session s(storage());
  const auto typed = series_sum(std::vector<double>{1.0, 2.0});
  const auto outs = dynamic({{"xs", md::EncodedValue::of(std::vector<double>{1.0 + 1e-12, 2.0})}}, fn);
  EXPECT_EQ(outs.at(0).hid(), typed.hid());
  EXPECT_TRUE(seen.empty());  // reused
  const auto other = dynamic({{"xs", md::EncodedValue::of(std::vector<double>{1.0 + 3e-9, 2.0})}}, fn);
  EXPECT_NE(other.at(0).hid(), typed.hid());
  EXPECT_EQ(seen, (std::vector<double>{1.0 + 3e-9, 2.0}));  // 3e-9 is a multiple of the quantum
  EXPECT_THROW(md::DynamicOp("bad", {"x"}, 1, {.rounding_of = {{"y", md::quantum(1)}}}), md::Error);
}

TEST_P(Rounding, DefaultsAndPlainCallsAreRoundedToo) {
  const auto with_default = md::op("with_default", {md::rounded(md::arg("t", 0.1234567), md::significant_digits(3))},
                                   [](double t) { return t; });
  EXPECT_EQ(with_default().get(), 0.123);  // no session: a plain call, rounded the same way
  md::Session s(storage());
  EXPECT_EQ(with_default().hid(), with_default(0.12301).hid());
  EXPECT_EQ(with_default(0.1234).get(), 0.123);
}

MANDALA_INSTANTIATE_BACKENDS(Rounding);

}  // namespace
