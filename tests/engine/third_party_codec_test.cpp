// Codecs for types of a library one does not own (docs/storage-format.md, 1.8): specialized
// from outside their namespace, without touching them, and used as op inputs and outputs.

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "mandala/mandala.hpp"
#include "support/backends.hpp"

// Stands for a third-party library: its headers cannot be changed.
namespace vendor {
/// Private state, reachable only through its public interface.
class Temperature {
 public:
  explicit Temperature(double kelvin) : m_kelvin(kelvin) {}
  [[nodiscard]] double kelvin() const { return m_kelvin; }
  friend bool operator==(const Temperature&, const Temperature&) = default;

 private:
  double m_kelvin;
};
/// An aggregate with public fields.
struct Vec2 {
  double x = 0;
  double y = 0;
  friend bool operator==(const Vec2&, const Vec2&) = default;
};
/// A class template.
template <class T>
struct Interval {
  T low{};
  T high{};
  friend bool operator==(const Interval&, const Interval&) = default;
};
}  // namespace vendor

// The codecs, written in this project at global scope (a specialization of mandala::Codec must
// be declared in a namespace enclosing mandala, so outside the project's own namespaces).
template <>
struct mandala::Codec<vendor::Temperature> {
  static void encode(mandala::Encoder& e, const vendor::Temperature& t) { mandala::encode_value(e, t.kelvin()); }
  static vendor::Temperature decode(mandala::ValueView v) {
    return vendor::Temperature(mandala::decode_value<double>(v));
  }
};
MANDALA_STRUCT(vendor::Vec2, x, y);
template <class T>
struct mandala::Codec<vendor::Interval<T>> {
  static void encode(mandala::Encoder& e, const vendor::Interval<T>& i) {
    mandala::encode_value(e, std::pair<T, T>(i.low, i.high));
  }
  static vendor::Interval<T> decode(mandala::ValueView v) {
    const auto [low, high] = mandala::decode_value<std::pair<T, T>>(v);
    return {low, high};
  }
};

namespace md = mandala;
using md::testing::BackendTest;

namespace {

static_assert(md::Encodable<vendor::Temperature> && md::Encodable<vendor::Vec2> &&
              md::Encodable<vendor::Interval<int>> && md::Encodable<std::vector<vendor::Interval<vendor::Vec2>>>);

std::atomic<int> runs{0};

const auto warm = md::op("warm", {"t", "by"}, [](const vendor::Temperature& t, const vendor::Interval<double>& by) {
  ++runs;
  return std::vector<vendor::Temperature>{vendor::Temperature(t.kelvin() + by.low),
                                          vendor::Temperature(t.kelvin() + by.high)};
});
const auto shift = md::op("shift", {"points", "d"}, [](const std::vector<vendor::Vec2>& points, const vendor::Vec2& d) {
  ++runs;
  std::vector<vendor::Vec2> out;
  for (const auto& p : points) out.push_back({p.x + d.x, p.y + d.y});
  return out;
});

TEST(ThirdPartyCodec, EncodesLikeTheValuesItIsMadeOf) {
  // The codecs write ordinary values: a Temperature is its double, an Interval a pair, a Vec2 a
  // map of its fields; so ids do not depend on the C++ type, and decoding gives the value back.
  EXPECT_EQ(md::encode_value(vendor::Temperature(300.5)), md::encode_value(300.5));
  EXPECT_EQ(md::encode_value(vendor::Interval<int>{1, 2}), md::encode_value(std::pair<int, int>(1, 2)));
  const vendor::Vec2 v{1.5, -2};
  EXPECT_EQ(md::decode_value<vendor::Vec2>(std::span<const std::byte>(md::encode_value(v))), v);
  const std::vector<vendor::Interval<vendor::Vec2>> nested{{{0, 0}, {1, 1}}};
  EXPECT_EQ(md::decode_value<std::vector<vendor::Interval<vendor::Vec2>>>(
                std::span<const std::byte>(md::encode_value(nested))),
            nested);
  EXPECT_EQ(md::encode_value(v), md::encode_value(std::map<std::string, double>{{"x", 1.5}, {"y", -2}}));
}

class ThirdPartyOps : public BackendTest {
 protected:
  void SetUp() override {
    runs = 0;
    BackendTest::SetUp();
  }
};

TEST_P(ThirdPartyOps, AreInputsAndOutputsOfMemoizedCalls) {
  md::Id warmed, shifted;
  {
    md::Session s(storage());
    const auto w = warm(vendor::Temperature(300), vendor::Interval<double>{1, 2});
    EXPECT_EQ(w.get(), (std::vector<vendor::Temperature>{vendor::Temperature(301), vendor::Temperature(302)}));
    warmed = w.hid();
    shifted = shift(std::vector<vendor::Vec2>{{1, 1}}, vendor::Vec2{0.5, 0}).hid();
  }
  EXPECT_EQ(runs, 2);
  reopen();
  md::Session s(storage());
  const auto w = warm(vendor::Temperature(300), vendor::Interval<double>{1, 2});
  const auto p = shift(std::vector<vendor::Vec2>{{1, 1}}, vendor::Vec2{0.5, 0});
  EXPECT_EQ(runs, 2);  // both reused
  EXPECT_EQ(w.hid(), warmed);
  EXPECT_EQ(p.hid(), shifted);
  EXPECT_EQ(p.get(), (std::vector<vendor::Vec2>{{1.5, 1}}));
  EXPECT_EQ(w.get().at(1).kelvin(), 302);
}

MANDALA_INSTANTIATE_BACKENDS(ThirdPartyOps);

}  // namespace
