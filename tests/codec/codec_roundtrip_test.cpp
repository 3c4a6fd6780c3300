// Round trips through every built-in Codec (include/mandala/codec.hpp): decode(encode(x)) == x,
// and the bytes are the canonical form where it is easy to state.

#include <gtest/gtest.h>

#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "codec_test_util.hpp"
#include "mandala/codec.hpp"

namespace {

using namespace mandala;
using namespace mandala::testing;
using codec_test::Point;
using codec_test::Polyline;
using codec_test::Segment;

TEST(CodecRoundTrip, Bool) {
  EXPECT_EQ(hex_of(true), "c3");
  EXPECT_EQ(hex_of(false), "c2");
  EXPECT_TRUE(round_trip(true));
  EXPECT_FALSE(round_trip(false));
}

template <class T>
void expect_int_round_trips() {
  using L = std::numeric_limits<T>;
  const std::vector<T> values = {T{0},
                                 T{1},
                                 L::min(),
                                 L::max(),
                                 static_cast<T>(L::max() - 1),
                                 static_cast<T>(L::min() + 1),
                                 static_cast<T>(L::max() / 2)};
  for (T v : values) EXPECT_EQ(round_trip(v), v) << "value " << +v;
  if constexpr (std::is_signed_v<T>) {
    EXPECT_EQ(round_trip(T{-1}), T{-1});
  }
}

TEST(CodecRoundTrip, IntegersOfEveryWidth) {
  expect_int_round_trips<std::int8_t>();
  expect_int_round_trips<std::int16_t>();
  expect_int_round_trips<std::int32_t>();
  expect_int_round_trips<std::int64_t>();
  expect_int_round_trips<std::uint8_t>();
  expect_int_round_trips<std::uint16_t>();
  expect_int_round_trips<std::uint32_t>();
  expect_int_round_trips<std::uint64_t>();
  expect_int_round_trips<char>();
  expect_int_round_trips<signed char>();
  expect_int_round_trips<unsigned char>();
  expect_int_round_trips<short>();
  expect_int_round_trips<long>();
  expect_int_round_trips<long long>();
  expect_int_round_trips<unsigned long long>();
}

TEST(CodecRoundTrip, IntegerLimitsUseTheSmallestMessagePackForm) {
  // MessagePack spec: positive fixint 0x00-0x7f, negative fixint 0xe0-0xff, uint8 cc, uint16 cd,
  // uint32 ce, uint64 cf, int8 d0, int16 d1, int32 d2, int64 d3 (big-endian payloads).
  EXPECT_EQ(hex_of(std::int8_t{-128}), "d080");
  EXPECT_EQ(hex_of(std::int8_t{127}), "7f");
  EXPECT_EQ(hex_of(std::uint8_t{255}), "ccff");
  EXPECT_EQ(hex_of(std::int16_t{-32768}), "d18000");
  EXPECT_EQ(hex_of(std::int16_t{32767}), "cd7fff");
  EXPECT_EQ(hex_of(std::uint16_t{65535}), "cdffff");
  EXPECT_EQ(hex_of(std::int32_t{std::numeric_limits<std::int32_t>::min()}), "d280000000");
  EXPECT_EQ(hex_of(std::int32_t{std::numeric_limits<std::int32_t>::max()}), "ce7fffffff");
  EXPECT_EQ(hex_of(std::uint32_t{std::numeric_limits<std::uint32_t>::max()}), "ceffffffff");
  EXPECT_EQ(hex_of(std::numeric_limits<std::int64_t>::min()), "d38000000000000000");
  EXPECT_EQ(hex_of(std::numeric_limits<std::int64_t>::max()), "cf7fffffffffffffff");
  EXPECT_EQ(hex_of(std::numeric_limits<std::uint64_t>::max()), "cfffffffffffffffff");
  EXPECT_EQ(hex_of(-32), "e0");
  EXPECT_EQ(hex_of(-33), "d0df");
  EXPECT_EQ(hex_of(-129), "d1ff7f");
  EXPECT_EQ(hex_of(-32769), "d2ffff7fff");
  EXPECT_EQ(hex_of(std::int64_t{-2147483649LL}), "d3ffffffff7fffffff");
  EXPECT_EQ(hex_of(256), "cd0100");
  EXPECT_EQ(hex_of(65536), "ce00010000");
  EXPECT_EQ(hex_of(std::uint64_t{1} << 32), "cf0000000100000000");
}

TEST(CodecRoundTrip, Float) {
  for (float v : {0.0f, 1.0f, -1.5f, 3.14159f, std::numeric_limits<float>::min(), std::numeric_limits<float>::max(),
                  std::numeric_limits<float>::lowest(), std::numeric_limits<float>::denorm_min(),
                  std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()})
    EXPECT_EQ(std::bit_cast<std::uint32_t>(round_trip(v)), std::bit_cast<std::uint32_t>(v)) << v;
  EXPECT_EQ(hex_of(1.0f), "ca3f800000");
  EXPECT_EQ(hex_of(-0.0f), "ca80000000");
  EXPECT_EQ(hex_of(std::numeric_limits<float>::infinity()), "ca7f800000");
  const float neg_zero = round_trip(-0.0f);
  EXPECT_TRUE(std::signbit(neg_zero));
  EXPECT_EQ(neg_zero, 0.0f);
  EXPECT_TRUE(std::isnan(round_trip(std::numeric_limits<float>::quiet_NaN())));
}

TEST(CodecRoundTrip, Double) {
  for (double v :
       {0.0, 1.0, -1.5, 0.1, 1e300, -1e-300, std::numeric_limits<double>::min(), std::numeric_limits<double>::max(),
        std::numeric_limits<double>::lowest(), std::numeric_limits<double>::denorm_min(),
        std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()})
    EXPECT_EQ(std::bit_cast<std::uint64_t>(round_trip(v)), std::bit_cast<std::uint64_t>(v)) << v;
  EXPECT_EQ(hex_of(1.0), "cb3ff0000000000000");
  EXPECT_EQ(hex_of(-0.0), "cb8000000000000000");
  EXPECT_NE(hex_of(-0.0), hex_of(0.0));
  EXPECT_EQ(hex_of(-std::numeric_limits<double>::infinity()), "cbfff0000000000000");
  EXPECT_TRUE(std::signbit(round_trip(-0.0)));
  EXPECT_TRUE(std::isnan(round_trip(std::numeric_limits<double>::quiet_NaN())));
}

TEST(CodecRoundTrip, NanBitPatternsAreCanonicalized) {
  const std::uint64_t nan64[] = {0x7ff8000000000000ull, 0x7ff8000000000001ull, 0xfff8000000000000ull,
                                 0x7ff0000000000001ull, 0xffffffffffffffffull, 0x7ff4000000000000ull};
  for (auto bits : nan64) {
    const double v = std::bit_cast<double>(bits);
    ASSERT_TRUE(std::isnan(v));
    EXPECT_EQ(hex_of(v), "cb7ff8000000000000") << std::hex << bits;
  }
  const std::uint32_t nan32[] = {0x7fc00000u, 0x7fc00001u, 0xffc00000u, 0x7f800001u, 0xffffffffu, 0x7fa00000u};
  for (auto bits : nan32) {
    const float v = std::bit_cast<float>(bits);
    ASSERT_TRUE(std::isnan(v));
    EXPECT_EQ(hex_of(v), "ca7fc00000") << std::hex << bits;
  }
  const double computed_nan = std::numeric_limits<double>::infinity() - std::numeric_limits<double>::infinity();
  EXPECT_EQ(hex_of(computed_nan), hex_of(std::nan("")));
}

TEST(CodecRoundTrip, NanBitPatternsInTypedArraysAreCanonicalized) {
  // Typed blocks follow the same rule as scalars: every NaN has one encoding.
  const std::vector<double> a = {1.0, std::bit_cast<double>(0x7ff8000000000000ull), 2.0};
  const std::vector<double> b = {1.0, std::bit_cast<double>(0xfff8000000000001ull), 2.0};
  EXPECT_EQ(hex_of(a), hex_of(b));
  const std::vector<float> fa = {std::bit_cast<float>(0x7fc00000u)};
  const std::vector<float> fb = {std::bit_cast<float>(0xffc00123u)};
  EXPECT_EQ(hex_of(fa), hex_of(fb));
  const std::array<double, 2> aa = {std::bit_cast<double>(0x7ff0000000000001ull), -0.0};
  const std::array<double, 2> ab = {std::bit_cast<double>(0x7ff8000000000000ull), -0.0};
  EXPECT_EQ(hex_of(aa), hex_of(ab));
  // The stored NaN is the canonical quiet NaN; -0.0 keeps its sign.
  const auto back = round_trip(b);
  EXPECT_EQ(std::bit_cast<std::uint64_t>(back[1]), 0x7ff8000000000000ull);
  EXPECT_TRUE(std::signbit(round_trip(ab)[1]));
  EXPECT_EQ(back[0], 1.0);
  EXPECT_EQ(back[2], 2.0);
  // The input itself is not modified.
  EXPECT_EQ(std::bit_cast<std::uint64_t>(b[1]), 0xfff8000000000001ull);
}

TEST(CodecRoundTrip, String) {
  EXPECT_EQ(round_trip(std::string()), "");
  EXPECT_EQ(hex_of(std::string()), "a0");
  EXPECT_EQ(round_trip(std::string("hello")), "hello");
  const std::string unicode = "h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80 \xE4\xB8\xAD\xE6\x96\x87";
  EXPECT_EQ(round_trip(unicode), unicode);
  std::string with_nul("a\0b", 3);
  EXPECT_EQ(round_trip(with_nul), with_nul);
  // str8 (d9) from 32 bytes, str16 (da) from 256, str32 (db) from 65536.
  EXPECT_EQ(hex_of(std::string(31, 'x')).substr(0, 2), "bf");
  EXPECT_EQ(hex_of(std::string(32, 'x')).substr(0, 4), "d920");
  EXPECT_EQ(hex_of(std::string(255, 'x')).substr(0, 4), "d9ff");
  EXPECT_EQ(hex_of(std::string(256, 'x')).substr(0, 6), "da0100");
  EXPECT_EQ(hex_of(std::string(65535, 'x')).substr(0, 6), "daffff");
  std::string long_text(70000, '\0');
  for (std::size_t i = 0; i < long_text.size(); ++i) long_text[i] = static_cast<char>('a' + i % 26);
  const auto bytes = encode_value(long_text);
  EXPECT_EQ(bytes.size(), 5 + long_text.size());
  EXPECT_EQ(to_hex(std::span(bytes).first(5)), "db00011170");
  EXPECT_EQ(round_trip(long_text), long_text);
}

TEST(CodecRoundTrip, NumericVectorsAreTypedBlocks) {
  EXPECT_EQ(round_trip(std::vector<int>{}), std::vector<int>{});
  EXPECT_EQ(round_trip(std::vector<int>{1, -2, 3}), (std::vector<int>{1, -2, 3}));
  EXPECT_EQ(round_trip(std::vector<std::int8_t>{-128, 0, 127}), (std::vector<std::int8_t>{-128, 0, 127}));
  EXPECT_EQ(round_trip(std::vector<std::uint8_t>{0, 255}), (std::vector<std::uint8_t>{0, 255}));
  EXPECT_EQ(round_trip(std::vector<std::int16_t>{-32768, 32767}), (std::vector<std::int16_t>{-32768, 32767}));
  EXPECT_EQ(round_trip(std::vector<std::uint16_t>{65535}), (std::vector<std::uint16_t>{65535}));
  EXPECT_EQ(round_trip(std::vector<std::uint32_t>{4294967295u}), (std::vector<std::uint32_t>{4294967295u}));
  const std::vector<std::int64_t> i64 = {std::numeric_limits<std::int64_t>::min(), 0,
                                         std::numeric_limits<std::int64_t>::max()};
  EXPECT_EQ(round_trip(i64), i64);
  const std::vector<std::uint64_t> u64 = {0, std::numeric_limits<std::uint64_t>::max()};
  EXPECT_EQ(round_trip(u64), u64);
  EXPECT_EQ(round_trip(std::vector<float>{1.5f, -0.25f}), (std::vector<float>{1.5f, -0.25f}));
  std::vector<double> big(100000);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<double>(i) * 0.5 - 7.0;
  EXPECT_EQ(round_trip(big), big);
  // One typed block: ext header, then exactly 2 + 8 + 8n body bytes, not n separately encoded floats.
  EXPECT_EQ(encode_value(big).size(), 6 + 2 + 8 + 8 * big.size());
  DecodedValue d(encode_value(big));
  EXPECT_EQ(d.root().kind(), Kind::typed_array);
}

TEST(CodecRoundTrip, VectorsOfStringsAndVectorsAreArrays) {
  const std::vector<std::string> strings = {"", "a", "bc", std::string(300, 'z')};
  EXPECT_EQ(round_trip(strings), strings);
  EXPECT_EQ(hex_of(std::vector<std::string>{"a", "b"}), "92a161a162");
  EXPECT_EQ(hex_of(std::vector<std::string>{}), "90");
  const std::vector<std::vector<int>> nested = {{}, {1}, {2, 3}};
  EXPECT_EQ(round_trip(nested), nested);
  const std::vector<std::vector<std::string>> nested_strings = {{"x"}, {}, {"y", "z"}};
  EXPECT_EQ(round_trip(nested_strings), nested_strings);
  std::vector<std::string> many(70000);
  for (std::size_t i = 0; i < many.size(); ++i) many[i] = std::to_string(i);
  const auto bytes = encode_value(many);
  EXPECT_EQ(to_hex(std::span(bytes).first(5)), "dd00011170");  // array32
  EXPECT_EQ(round_trip(many), many);
  EXPECT_EQ(hex_of(std::vector<std::string>(16, "")).substr(0, 6), "dc0010");  // array16
}

TEST(CodecRoundTrip, VectorOfBool) {
  const std::vector<bool> v = {true, false, true, true};
  EXPECT_EQ(hex_of(v), "94c3c2c3c3");
  EXPECT_EQ(round_trip(v), v);
  EXPECT_EQ(round_trip(std::vector<bool>{}), std::vector<bool>{});
}

TEST(CodecRoundTrip, StdArray) {
  const std::array<double, 3> numeric = {1.0, 2.5, -3.0};
  EXPECT_EQ(round_trip(numeric), numeric);
  // The same typed block as a vector of the same elements.
  EXPECT_EQ(hex_of(numeric), hex_of(std::vector<double>(numeric.begin(), numeric.end())));
  const std::array<std::int16_t, 0> empty{};
  EXPECT_EQ(round_trip(empty), empty);
  const std::array<std::string, 2> strings = {"left", "right"};
  EXPECT_EQ(round_trip(strings), strings);
  EXPECT_EQ(hex_of(std::array<std::string, 2>{"a", "b"}), "92a161a162");
  const std::array<bool, 3> bools = {true, false, true};
  EXPECT_EQ(round_trip(bools), bools);
  const std::array<std::array<float, 2>, 2> matrix = {{{1.0f, 2.0f}, {3.0f, 4.0f}}};
  EXPECT_EQ(round_trip(matrix), matrix);
}

TEST(CodecRoundTrip, Maps) {
  const std::map<std::string, int> m = {{"one", 1}, {"two", 2}, {"three", 3}};
  EXPECT_EQ(round_trip(m), m);
  EXPECT_EQ(round_trip(std::map<int, std::string>{}), (std::map<int, std::string>{}));
  EXPECT_EQ(hex_of(std::map<int, int>{}), "80");
  const std::map<int, std::vector<double>> numeric_keys = {{-5, {1.0}}, {0, {}}, {300, {2.0, 3.0}}};
  EXPECT_EQ(round_trip(numeric_keys), numeric_keys);
  std::unordered_map<std::string, std::string> u;
  for (int i = 0; i < 100; ++i) u["k" + std::to_string(i)] = std::string(static_cast<std::size_t>(i), 'v');
  EXPECT_EQ(round_trip(u), u);
  const std::map<std::pair<int, int>, std::string> pair_keys = {{{1, 2}, "a"}, {{-1, 0}, "b"}};
  EXPECT_EQ(round_trip(pair_keys), pair_keys);
}

TEST(CodecRoundTrip, Sets) {
  const std::set<int> s = {5, -3, 1000, 0};
  EXPECT_EQ(round_trip(s), s);
  const std::set<std::string> strings = {"pear", "apple", ""};
  EXPECT_EQ(round_trip(strings), strings);
  EXPECT_EQ(round_trip(std::set<double>{}), std::set<double>{});
}

TEST(CodecRoundTrip, Optional) {
  EXPECT_EQ(hex_of(std::optional<int>{}), "c0");
  EXPECT_EQ(hex_of(std::optional<int>{7}), "07");
  EXPECT_FALSE(round_trip(std::optional<int>{}).has_value());
  EXPECT_EQ(round_trip(std::optional<int>{0}), 0);
  EXPECT_EQ(round_trip(std::optional<std::string>{"x"}), "x");
  const std::vector<std::optional<double>> v = {1.0, std::nullopt, -2.0};
  EXPECT_EQ(round_trip(v), v);
}

TEST(CodecRoundTrip, PairAndTuple) {
  const std::pair<int, std::string> p = {3, "three"};
  EXPECT_EQ(round_trip(p), p);
  EXPECT_EQ(hex_of(std::pair<int, bool>{1, true}), "9201c3");
  const std::tuple<int, double, std::string, bool> t = {-1, 2.5, "s", false};
  EXPECT_EQ(round_trip(t), t);
  EXPECT_EQ(hex_of(std::tuple<>{}), "90");
  EXPECT_TRUE(round_trip(std::tuple<>{}) == std::tuple<>{});
  EXPECT_EQ(hex_of(std::tuple<int, std::string>{1, "a"}), hex_of(std::pair<int, std::string>{1, "a"}));
}

TEST(CodecRoundTrip, Variant) {
  using V = std::variant<int, std::string, std::vector<double>, std::monostate>;
  EXPECT_EQ(round_trip(V{42}), V{42});
  EXPECT_EQ(round_trip(V{std::string("hi")}), V{std::string("hi")});
  EXPECT_EQ(round_trip(V{std::vector<double>{1.0, 2.0}}), V{std::vector<double>({1.0, 2.0})});
  EXPECT_EQ(round_trip(V{std::monostate{}}), V{std::monostate{}});
  EXPECT_EQ(round_trip(V{std::string("hi")}).index(), 1u);
  // [index, value]
  EXPECT_EQ(hex_of(V{std::string("hi")}), "9201a26869");
  EXPECT_EQ(hex_of(V{std::monostate{}}), "9203c0");
  // Alternatives of the same C++ type are told apart by index.
  using Twin = std::variant<int, int>;
  const Twin second(std::in_place_index<1>, 9);
  EXPECT_EQ(round_trip(second).index(), 1u);
  EXPECT_EQ(std::get<1>(round_trip(second)), 9);
}

TEST(CodecRoundTrip, NullptrAndMonostate) {
  EXPECT_EQ(hex_of(nullptr), "c0");
  EXPECT_EQ(hex_of(std::monostate{}), "c0");
  EXPECT_TRUE(round_trip(nullptr) == nullptr);
  EXPECT_TRUE(round_trip(std::monostate{}) == std::monostate{});
}

TEST(CodecRoundTrip, DeepNesting) {
  using Inner = std::tuple<int, double, std::string>;
  using Deep = std::map<std::string, std::vector<std::optional<Inner>>>;
  const Deep deep = {
      {"alpha", {Inner{1, 1.5, "one"}, std::nullopt, Inner{-2, -0.0, ""}}},
      {"", {}},
      {"beta", {std::nullopt}},
  };
  EXPECT_EQ(round_trip(deep), deep);
  using Deeper = std::vector<std::map<int, std::set<std::pair<std::string, std::vector<std::uint8_t>>>>>;
  const Deeper deeper = {{{1, {{"x", {1, 2}}, {"y", {}}}}}, {}, {{-1, {}}}};
  EXPECT_EQ(round_trip(deeper), deeper);
}

TEST(CodecRoundTrip, UserStructs) {
  const Point p{3, -4};
  EXPECT_EQ(round_trip(p), p);
  // A map from field name to value, sorted by encoded key.
  EXPECT_EQ(hex_of(p), "82a17803a179fc");
  const Segment s{{1, 2}, {3, 4}, "diagonal"};
  EXPECT_EQ(round_trip(s), s);
  const std::vector<Point> points = {{0, 0}, {1, 1}, {-5, 7}};
  EXPECT_EQ(round_trip(points), points);
  const Polyline line{points, s, {{"weight", 0.5}, {"z", -1.0}}};
  EXPECT_EQ(round_trip(line), line);
  const Polyline empty{};
  EXPECT_EQ(round_trip(empty), empty);
  // Field order in the encoding does not depend on declaration order.
  DecodedValue d(encode_value(s));
  ASSERT_EQ(d.root().size(), 3u);
  EXPECT_EQ(d.root().key_at(0).as_string(), "to");     // a2 74 6f
  EXPECT_EQ(d.root().key_at(1).as_string(), "from");   // a4 ...
  EXPECT_EQ(d.root().key_at(2).as_string(), "label");  // a5 ...
}

TEST(CodecRoundTrip, DecodedValueOwnsBytesMovedIntoIt) {
  // Views into a DecodedValue stay valid while it lives, even when it was built from a temporary.
  DecodedValue d(encode_value(std::string(200, 'q')));
  EXPECT_EQ(d.root().as_string(), std::string(200, 'q'));
  DecodedValue moved = std::move(d);
  EXPECT_EQ(moved.root().as_string(), std::string(200, 'q'));
  DecodedValue block(encode_value(std::vector<double>{1.0, 2.0}));
  EXPECT_EQ(block.root().as_typed_array().data.size(), 16u);
}

}  // namespace
