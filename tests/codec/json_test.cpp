// JSON rendering of encoded values without their C++ type (ValueView::to_json, src/codec/json.cpp).
// Every rendering is parsed back with nlohmann::json and compared structurally.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <variant>
#include <vector>
#include <nlohmann/json.hpp>

#include "codec_test_util.hpp"
#include "golden_values.hpp"
#include "mandala/codec.hpp"

namespace {

using namespace mandala;
using namespace mandala::testing;
using nlohmann::json;

std::string json_text(std::span<const std::byte> bytes, std::size_t max_items = SIZE_MAX) {
  return DecodedValue(bytes).root().to_json(max_items);
}

template <class T>
std::string json_of(const T& value, std::size_t max_items = SIZE_MAX) {
  return json_text(encode_value(value), max_items);
}

template <class T>
json parsed(const T& value, std::size_t max_items = SIZE_MAX) {
  return json::parse(json_of(value, max_items));
}

TEST(JsonRendering, Scalars) {
  EXPECT_EQ(json_of(0), "0");
  EXPECT_EQ(json_of(-1), "-1");
  EXPECT_EQ(json_of(std::numeric_limits<std::uint64_t>::max()), "18446744073709551615");
  EXPECT_EQ(json_of(std::numeric_limits<std::int64_t>::min()), "-9223372036854775808");
  EXPECT_EQ(parsed(std::numeric_limits<std::uint64_t>::max()), json(std::numeric_limits<std::uint64_t>::max()));
  EXPECT_EQ(parsed(std::numeric_limits<std::int64_t>::min()), json(std::numeric_limits<std::int64_t>::min()));
  EXPECT_EQ(json_of(true), "true");
  EXPECT_EQ(json_of(false), "false");
  EXPECT_EQ(json_of(nullptr), "null");
  EXPECT_EQ(json_of(std::optional<int>{}), "null");
  EXPECT_EQ(json_of(1.5), "1.5");
  EXPECT_EQ(json_of(1.0), "1.0");  // a float stays recognizably a float
  EXPECT_EQ(json_of(1.5f), "1.5");
  EXPECT_EQ(json_of(-0.0), "-0.0");
  EXPECT_EQ(parsed(0.1).get<double>(), 0.1);
  EXPECT_EQ(parsed(1e300).get<double>(), 1e300);
  EXPECT_EQ(parsed(0.1f).get<float>(), 0.1f);
  // JSON has no NaN or infinity.
  EXPECT_EQ(json_of(std::nan("")), "null");
  EXPECT_EQ(json_of(std::numeric_limits<double>::infinity()), "null");
  EXPECT_EQ(json_of(-std::numeric_limits<float>::infinity()), "null");
}

TEST(JsonRendering, StringsAreEscaped) {
  const std::string tricky = "quote\" backslash\\ newline\n tab\t ctrl\x01 slash/ \xC3\xA9 \xF0\x9F\x98\x80";
  const std::string text = json_of(tricky);
  EXPECT_EQ(text, "\"quote\\\" backslash\\\\ newline\\n tab\\t ctrl\\u0001 slash/ \xC3\xA9 \xF0\x9F\x98\x80\"");
  EXPECT_EQ(json::parse(text).get<std::string>(), tricky);
  EXPECT_EQ(json_of(std::string()), "\"\"");
  // Bytes that are not UTF-8 still give valid JSON (replacement characters).
  const std::string invalid =
      "a\xff\xfe"
      "b";
  const std::string replaced = json_of(invalid);
  EXPECT_TRUE(json::accept(replaced)) << replaced;
  EXPECT_EQ(json::parse(replaced).get<std::string>(),
            "a\xEF\xBF\xBD\xEF\xBF\xBD"
            "b");
}

TEST(JsonRendering, NestedMapsAndArrays) {
  const std::map<std::string, std::vector<std::string>> m = {{"b", {"x", "y"}}, {"a", {}}};
  EXPECT_EQ(json_of(m), R"({"a":[],"b":["x","y"]})");
  EXPECT_EQ(parsed(m), json({{"a", json::array()}, {"b", {"x", "y"}}}));
  using Deep = std::map<std::string, std::vector<std::optional<std::tuple<int, double, std::string>>>>;
  const Deep deep = {{"k", {std::tuple<int, double, std::string>{1, 2.5, "s"}, std::nullopt}}};
  EXPECT_EQ(parsed(deep), json::parse(R"({"k":[[1,2.5,"s"],null]})"));
  const codec_test::Segment s{{1, 2}, {3, 4}, "seg \"1\""};
  EXPECT_EQ(parsed(s), json::parse(R"({"from":{"x":1,"y":2},"to":{"x":3,"y":4},"label":"seg \"1\""})"));
  EXPECT_EQ(json_of(std::vector<std::string>{}), "[]");
  EXPECT_EQ(json_of(std::map<std::string, int>{}), "{}");
  EXPECT_EQ(json_of(std::variant<int, std::string>{std::string("hi")}), R"([1,"hi"])");
  EXPECT_EQ(json_of(std::vector<bool>{true, false}), "[true,false]");
}

TEST(JsonRendering, NonStringMapKeysBecomeEntryPairs) {
  // Entries in canonical order: 01 < fe, so 1 before -2.
  EXPECT_EQ(json_of(std::map<int, std::string>{{-2, "b"}, {1, "a"}}), R"([[1,"a"],[-2,"b"]])");
  EXPECT_EQ(parsed(std::map<double, bool>{{0.5, true}}), json::parse("[[0.5,true]]"));
  // Keys and values that look like [string, x] pairs stay entry pairs, not a JSON object.
  const std::map<std::pair<std::string, int>, std::pair<std::string, int>> pairs = {{{"x", 1}, {"y", 2}}};
  EXPECT_EQ(json_of(pairs), R"([[["x",1],["y",2]]])");
  const std::map<std::vector<std::string>, std::vector<std::string>> vectors = {{{"k", "v"}, {"a", "b"}}};
  EXPECT_EQ(json_of(vectors), R"([[["k","v"],["a","b"]]])");
  // A map mixing string and non-string keys uses entry pairs for all.
  Encoder e;
  e.map_header(2);
  e.string("s");
  e.integer(1);
  e.integer(2);
  e.string("t");
  EXPECT_EQ(json_text(e.bytes()), R"([["s",1],[2,"t"]])");
}

TEST(JsonRendering, TypedArrays) {
  const std::vector<double> v = {1.5, -2.0, 3.25};
  EXPECT_EQ(json_of(v), R"({"data":[1.5,-2.0,3.25],"dtype":"f64","shape":[3]})");
  EXPECT_EQ(parsed(v), json({{"dtype", "f64"}, {"shape", {3}}, {"data", {1.5, -2.0, 3.25}}}));
  EXPECT_EQ(parsed(std::vector<std::int8_t>{-128, 127}),
            json({{"dtype", "i8"}, {"shape", {2}}, {"data", {-128, 127}}}));
  EXPECT_EQ(parsed(std::vector<std::uint64_t>{UINT64_MAX}),
            json({{"dtype", "u64"}, {"shape", {1}}, {"data", {UINT64_MAX}}}));
  EXPECT_EQ(parsed(std::vector<std::int64_t>{INT64_MIN}),
            json({{"dtype", "i64"}, {"shape", {1}}, {"data", {INT64_MIN}}}));
  EXPECT_EQ(parsed(std::vector<std::uint16_t>{65535}), json({{"dtype", "u16"}, {"shape", {1}}, {"data", {65535}}}));
  EXPECT_EQ(parsed(std::vector<float>{0.5f}), json({{"dtype", "f32"}, {"shape", {1}}, {"data", {0.5}}}));
  EXPECT_EQ(json_of(std::vector<int>{}), R"({"data":[],"dtype":"i32","shape":[0]})");
  const std::array<std::uint8_t, 3> bytes = {1, 2, 255};
  EXPECT_EQ(parsed(bytes), json({{"dtype", "u8"}, {"shape", {3}}, {"data", {1, 2, 255}}}));
}

TEST(JsonRendering, MaxArrayItemsTruncates) {
  std::vector<int> ten(10);
  for (int i = 0; i < 10; ++i) ten[static_cast<std::size_t>(i)] = i;
  // The shape still says 10: only the listed data is cut.
  EXPECT_EQ(json_of(ten, 3), R"({"data":[0,1,2],"dtype":"i32","shape":[10]})");
  EXPECT_EQ(json_of(ten, 0), R"({"data":[],"dtype":"i32","shape":[10]})");
  EXPECT_EQ(parsed(ten, 100)["data"].size(), 10u);
  EXPECT_EQ(json_of(std::vector<std::string>{"a", "b", "c"}, 2), R"(["a","b"])");
  // Applies at every level.
  const std::vector<std::vector<std::string>> nested = {{"a", "b", "c"}, {"d"}, {"e"}};
  EXPECT_EQ(json_of(nested, 2), R"([["a","b"],["d"]])");
  EXPECT_EQ(json_of(std::map<int, int>{{1, 1}, {2, 2}, {3, 3}}, 2), "[[1,1],[2,2]]");
}

TEST(JsonRendering, PointersAndBinary) {
  Encoder e;
  e.pointer("model \"v2\"");
  EXPECT_EQ(json_text(e.bytes()), R"({"pointer":"model \"v2\""})");
  EXPECT_EQ(json::parse(json_text(e.bytes())), json({{"pointer", "model \"v2\""}}));
  Encoder b;
  b.binary(std::as_bytes(std::span("\x00\xab\xff", 3)));
  EXPECT_EQ(json_text(b.bytes()), R"({"binary":"00abff"})");
  // Inside containers.
  Encoder a;
  a.array_header(2);
  a.pointer("p");
  a.integer(1);
  EXPECT_EQ(json::parse(json_text(a.bytes())), json::parse(R"([{"pointer":"p"},1])"));
}

TEST(JsonRendering, EveryGoldenValueParsesBack) {
  for (const auto& c : golden_cases()) {
    const std::string text = json_text(c.encoded);
    EXPECT_TRUE(json::accept(text)) << c.name << ": " << text;
  }
}

}  // namespace
