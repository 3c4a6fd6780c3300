// mandala::Value (mandala/value.hpp): the dynamic value type keeps the encoding and content id
// of the typed value it stands for, in both directions.

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "codec/codec_test_util.hpp"
#include "mandala/value.hpp"

namespace mandala {
namespace {
using testing::decode_error_of;
using testing::from_hex;
using testing::to_hex;

template <class T>
void expect_same_encoding(const Value& v, const T& typed) {
  EXPECT_EQ(to_hex(v.encode()), to_hex(encode_value(typed)));
  EXPECT_EQ(v.content_id(), Value::of(typed).content_id());
  EXPECT_EQ(v, Value::of(typed));
}

TEST(Value, BuiltByHandEncodesLikeTypedValues) {
  expect_same_encoding(Value(), nullptr);
  expect_same_encoding(Value(true), true);
  expect_same_encoding(Value(1), std::int64_t{1});
  expect_same_encoding(Value(-200), -200);
  expect_same_encoding(Value(std::numeric_limits<std::uint64_t>::max()), std::numeric_limits<std::uint64_t>::max());
  expect_same_encoding(Value(1.5), 1.5);
  expect_same_encoding(Value(1.5f), 1.5f);
  expect_same_encoding(Value("h\xc3\xa9llo"), std::string("h\xc3\xa9llo"));
  expect_same_encoding(Value(Value::Array{"a", "b"}), std::vector<std::string>{"a", "b"});
  expect_same_encoding(Value(Value::Array{1, "a", 0.5}), std::tuple<int, std::string, double>{1, "a", 0.5});
  // Map entries in any order: the encoding sorts them by key.
  expect_same_encoding(Value(Value::Map{{"b", 2}, {"a", 1}, {"ccc", 3}}),
                       std::map<std::string, std::int64_t>{{"b", 2}, {"a", 1}, {"ccc", 3}});
  const std::vector<double> doubles{1.0, 2.5};
  expect_same_encoding(Value(Value::TypedArray::of<double>(doubles)), doubles);
  Encoder binary;
  binary.binary(from_hex("0102"));
  EXPECT_EQ(Value(Value::Binary{std::byte{1}, std::byte{2}}).encode(), binary.bytes());
}

TEST(Value, TypedValuesComeBackThroughValue) {
  const std::map<std::string, std::vector<double>> m{{"x", {1, 2}}, {"y", {}}};
  const Value v = Value::of(m);
  ASSERT_EQ(v.kind(), Kind::map);
  ASSERT_NE(v.find("x"), nullptr);
  EXPECT_EQ(v.find("x")->kind(), Kind::typed_array);
  EXPECT_EQ(v.find("x")->as_typed_array().values<double>(), (std::vector<double>{1, 2}));
  EXPECT_EQ(v.find("z"), nullptr);
  EXPECT_EQ((v.as<std::map<std::string, std::vector<double>>>()), m);
  EXPECT_EQ(Value::of(std::set<int>{3, 1}).as<std::set<int>>(), (std::set<int>{1, 3}));
  // A map of Values: heterogeneous values inside typed containers.
  const auto mixed = std::map<std::string, Value>{{"n", 1}, {"s", "t"}, {"l", Value::Array{nullptr, false}}};
  EXPECT_EQ((Value::of(mixed).as<std::map<std::string, Value>>()), mixed);
  EXPECT_CONTAINS(decode_error_of([&] { (void)Value("x").as<int>(); }), "expected integer, found string");
}

TEST(Value, AccessorsSayWhatWasExpected) {
  const Value a = Value::Array{1, -2, 3.0};
  EXPECT_EQ(a.size(), 3u);
  EXPECT_EQ(a[0].as_int64(), 1);
  EXPECT_EQ(a[0].as_uint64(), 1u);
  EXPECT_TRUE(a[1].is_negative_integer());
  EXPECT_EQ(a[2].as_float64(), 3.0);
  EXPECT_THROW((void)a[3], Error);
  EXPECT_CONTAINS(decode_error_of([&] { (void)a[2].as_float32(); }), "expected float32, found float64");
  EXPECT_CONTAINS(decode_error_of([&] { (void)a[1].as_uint64(); }), "negative integer");
  EXPECT_CONTAINS(decode_error_of([&] { (void)a.as_string(); }), "expected string, found array");
  EXPECT_CONTAINS(decode_error_of([&] { (void)Value(std::numeric_limits<std::uint64_t>::max()).as_int64(); }),
                  "does not fit int64");
  EXPECT_TRUE(Value().is_nil());
  EXPECT_TRUE(Value(nullptr).is_nil());
}

TEST(Value, EqualityIsEqualityOfEncodings) {
  EXPECT_EQ(Value(1), Value(1u));
  EXPECT_NE(Value(1), Value(1.0));
  EXPECT_NE(Value(1), Value(true));
  EXPECT_NE(Value(1.0), Value(1.0f));
  EXPECT_EQ(Value(std::nan("1")), Value(-std::nan("2")));
  EXPECT_NE(Value(0.0), Value(-0.0));
  EXPECT_EQ(Value(Value::Map{{"a", 1}, {"b", 2}}), Value(Value::Map{{"b", 2}, {"a", 1}}));
  EXPECT_NE(Value(Value::Array{1, 2}), Value(Value::Array{2, 1}));
  EXPECT_NE(Value(Value::Array{}), Value(Value::Map{}));
}

TEST(Value, EveryKindRoundTripsToTheSameBytes) {
  Encoder e;
  e.array_header(9);
  e.big_integer(true, from_hex("01 0000000000000000"));
  e.pickle("m.T", from_hex("80042e"));
  e.tag("pandas.Series");
  e.map_header(1);
  e.string("data");
  const std::uint64_t shape[2] = {2, 1};
  const bool flags[2] = {true, false};
  e.typed_array(Dtype::boolean, shape, flags, 2);
  e.pointer("model");
  const Id cids[1] = {Id::from_hex("000102030405060708090a0b0c0d0e0f").value()};
  const std::string keys[1] = {"k"};
  e.collection(CollectionKind::dict, keys, cids);
  e.binary(from_hex("00ff"));
  e.float32(2.5f);
  e.nil();
  e.map_header(2);
  e.integer(1);
  e.string("one");
  e.string("two");
  e.integer(2);
  const Value v = Value::decode(e.bytes());
  EXPECT_EQ(to_hex(v.encode()), to_hex(e.bytes()));
  EXPECT_EQ(v[0].kind(), Kind::big_integer);
  EXPECT_TRUE(v[0].as_big_integer().negative);
  EXPECT_EQ(v[1].as_pickle().type_name, "m.T");
  EXPECT_EQ(v[2].tag(), "pandas.Series");
  EXPECT_EQ(v[2].tagged_value().find("data")->as_typed_array().shape, (std::vector<std::uint64_t>{2, 1}));
  EXPECT_EQ(v[3].as_pointer(), "model");
  EXPECT_EQ(v[4].as_collection().keys, std::vector<std::string>{"k"});
  EXPECT_EQ(v[8].size(), 2u);
  EXPECT_EQ(v.to_text(), DecodedValue(e.bytes()).root().to_text());
  EXPECT_EQ(v.to_json(), DecodedValue(e.bytes()).root().to_json());
  // Through the Codec: a Value inside a typed value, and EncodedValue-style bytes.
  EXPECT_EQ(decode_value<Value>(encode_value(v)), v);
}

TEST(Value, BigIntegersThatFitAreIntegers) {
  EXPECT_EQ(Value(Value::BigInteger{false, from_hex("0005")}).kind(), Kind::integer);
  EXPECT_EQ(Value(Value::BigInteger{true, from_hex("05")}).as_int64(), -5);
  const Value big(Value::BigInteger{false, from_hex("01 0000000000000000")});
  EXPECT_EQ(big.kind(), Kind::big_integer);
  EXPECT_EQ(big.to_text(), "18446744073709551616");
}

TEST(Value, EncodingErrorsAreInvalidArguments) {
  const Value duplicate = Value::Map{{1, "a"}, {1u, "b"}};
  try {
    (void)duplicate.encode();
    FAIL() << "a map with two equal keys encoded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::invalid_argument);
  }
  EXPECT_THROW((void)Value::tagged("", 1), Error);
  const Value bad_block = Value::TypedArray{Dtype::f64, {3}, std::vector<std::byte>(8)};
  EXPECT_THROW((void)bad_block.encode(), Error);
}

}  // namespace
}  // namespace mandala
