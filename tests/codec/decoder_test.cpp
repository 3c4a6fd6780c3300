// Decoding into the wrong C++ type (src/codec/decoder.cpp and the Codec trait): a clear
// Errc::decode message saying what was expected, what was found, and where.

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "codec_test_util.hpp"
#include "mandala/codec.hpp"

namespace {

using namespace mandala;
using namespace mandala::testing;

template <class To, class From>
std::string error_decoding_as(const From& value) {
  const auto bytes = encode_value(value);
  return decode_error_of([&] { (void)decode_value<To>(std::span<const std::byte>(bytes)); });
}

TEST(DecodeErrors, ScalarOfTheWrongKind) {
  EXPECT_CONTAINS(error_decoding_as<std::string>(5), "expected string, found integer");
  EXPECT_CONTAINS(error_decoding_as<int>(std::string("5")), "expected integer, found string");
  EXPECT_CONTAINS(error_decoding_as<bool>(1), "expected boolean, found integer");
  EXPECT_CONTAINS(error_decoding_as<double>(1.0f), "expected float64, found float32");
  EXPECT_CONTAINS(error_decoding_as<float>(1.0), "expected float32, found float64");
  EXPECT_CONTAINS(error_decoding_as<double>(1), "expected float64, found integer");
  EXPECT_CONTAINS(error_decoding_as<int>(true), "expected integer, found boolean");
  EXPECT_CONTAINS(error_decoding_as<std::nullptr_t>(0), "expected nil, found integer");
  EXPECT_CONTAINS(error_decoding_as<std::monostate>(false), "expected nil, found boolean");
  EXPECT_CONTAINS(error_decoding_as<std::string>(std::optional<int>{}), "expected string, found nil");
  EXPECT_CONTAINS(error_decoding_as<std::vector<std::string>>(std::map<int, int>{{1, 2}}), "expected array, found map");
  EXPECT_CONTAINS(error_decoding_as<std::map<std::string, int>>(std::vector<std::string>{"a"}),
                  "expected map, found array");
  EXPECT_CONTAINS(error_decoding_as<std::vector<double>>(std::vector<std::string>{"a"}),
                  "expected typed array, found array");
  EXPECT_CONTAINS(error_decoding_as<std::vector<double>>(std::vector<float>{1.0f}), "typed array of f32, expected f64");
  EXPECT_CONTAINS(error_decoding_as<std::vector<std::int32_t>>(std::vector<std::int64_t>{1}),
                  "typed array of i64, expected i32");
  // Every message starts the same way and carries the decode code.
  EXPECT_EQ(error_decoding_as<std::string>(5).rfind("cannot decode value: ", 0), 0u);
}

TEST(DecodeErrors, PointerSaysTheObjectIsNotStored) {
  Encoder e;
  e.pointer("big_model");
  const std::string msg = decode_error_of([&] { (void)decode_value<int>(std::span<const std::byte>(e.bytes())); });
  EXPECT_CONTAINS(msg, "expected integer, found value pointer 'big_model'");
  EXPECT_EQ(DecodedValue(e.bytes()).root().as_pointer(), "big_model");
}

TEST(DecodeErrors, PathToTheOffendingElement) {
  // vector<string> whose element 2 is an int.
  Encoder e;
  e.array_header(3);
  e.string("a");
  e.string("b");
  e.integer(7);
  const std::string msg =
      decode_error_of([&] { (void)decode_value<std::vector<std::string>>(std::span<const std::byte>(e.bytes())); });
  EXPECT_CONTAINS(msg, "expected string, found integer");
  EXPECT_CONTAINS(msg, "(at $[2])");

  // Nested: a struct field, then an index.
  Encoder n;
  n.map_header(2);
  n.string("names");
  n.array_header(2);
  n.string("x");
  n.boolean(true);
  n.string("small");
  n.integer(1);
  const std::string nested =
      decode_error_of([&] { (void)decode_value<codec_test::Named>(std::span<const std::byte>(n.bytes())); });
  EXPECT_CONTAINS(nested, "expected string, found boolean (at $.names[1])");

  // Deeper: vector of structs.
  const std::vector<codec_test::Named> good = {{{"a"}, 1}};
  Encoder v;
  v.array_header(2);
  v.raw(encode_value(good[0]));
  v.raw(n.bytes());
  const std::string deeper = decode_error_of(
      [&] { (void)decode_value<std::vector<codec_test::Named>>(std::span<const std::byte>(v.bytes())); });
  EXPECT_CONTAINS(deeper, "(at $[1].names[1])");

  // Map values and keys.
  const std::string in_map =
      error_decoding_as<std::map<std::string, std::string>>(std::map<std::string, int>{{"k", 1}});
  EXPECT_CONTAINS(in_map, "expected string, found integer (at $[0])");
  const std::string in_key = error_decoding_as<std::map<std::string, int>>(std::map<int, int>{{1, 1}});
  EXPECT_CONTAINS(in_key, "expected string, found integer (at ${key 0})");
  // Tuples.
  const std::string in_tuple = error_decoding_as<std::tuple<int, std::string>>(std::tuple<int, int>{1, 2});
  EXPECT_CONTAINS(in_tuple, "(at $[1])");
}

TEST(DecodeErrors, StructMissingField) {
  const std::string msg = error_decoding_as<codec_test::Point>(std::map<std::string, int>{{"x", 1}});
  EXPECT_CONTAINS(msg, "missing field 'y'");
  const std::string nested =
      error_decoding_as<codec_test::Segment>(std::map<std::string, std::variant<codec_test::Point, std::string>>{});
  EXPECT_CONTAINS(nested, "missing field 'from'");
  // A struct inside a struct names the path.
  Encoder e;
  e.map_header(3);
  e.string("to");
  e.raw(encode_value(std::map<std::string, int>{{"x", 1}}));
  e.string("from");
  e.raw(encode_value(codec_test::Point{}));
  e.string("label");
  e.string("l");
  const std::string inner =
      decode_error_of([&] { (void)decode_value<codec_test::Segment>(std::span<const std::byte>(e.bytes())); });
  EXPECT_CONTAINS(inner, "missing field 'y' (at $.to)");
  EXPECT_CONTAINS(error_decoding_as<codec_test::Point>(5), "expected map (struct codec_test::Point), found integer");
  // Extra fields are ignored (a newer writer may have added some).
  EXPECT_EQ(decode_value<codec_test::Point>(encode_value(std::map<std::string, int>{{"x", 1}, {"y", 2}, {"z", 3}})),
            (codec_test::Point{1, 2}));
}

TEST(DecodeErrors, IntegerRanges) {
  EXPECT_CONTAINS(error_decoding_as<std::int8_t>(128), "integer 128 does not fit the target type");
  EXPECT_CONTAINS(error_decoding_as<std::int8_t>(-129), "integer -129 does not fit the target type");
  EXPECT_EQ(decode_value<std::int8_t>(encode_value(-128)), -128);
  EXPECT_EQ(decode_value<std::int8_t>(encode_value(127)), 127);
  EXPECT_CONTAINS(error_decoding_as<std::uint8_t>(256), "integer 256 does not fit the target type");
  EXPECT_CONTAINS(error_decoding_as<std::uint32_t>(-1), "negative integer");
  EXPECT_CONTAINS(error_decoding_as<std::uint64_t>(std::int64_t{INT64_MIN}), "negative integer");
  EXPECT_CONTAINS(error_decoding_as<std::int64_t>(std::uint64_t{UINT64_MAX}), "does not fit");
  EXPECT_CONTAINS(error_decoding_as<std::int64_t>(std::uint64_t{1} << 63), "does not fit");
  EXPECT_EQ(decode_value<std::uint64_t>(encode_value(std::uint64_t{UINT64_MAX})), UINT64_MAX);
  EXPECT_EQ(decode_value<std::int64_t>(encode_value(std::uint64_t{INT64_MAX})), INT64_MAX);
  EXPECT_EQ(decode_value<std::uint16_t>(encode_value(std::int64_t{65535})), 65535);
  // Non-canonical but valid MessagePack integer forms still decode (d0 01 is int8 1).
  EXPECT_EQ(decode_value<int>(from_hex("d001")), 1);
  EXPECT_EQ(decode_value<int>(from_hex("cf0000000000000005")), 5);
}

TEST(DecodeErrors, VariantIndex) {
  using V = std::variant<int, std::string>;
  EXPECT_CONTAINS(error_decoding_as<V>(std::pair<int, int>{2, 0}), "variant index 2 out of range");
  EXPECT_CONTAINS(error_decoding_as<V>(std::pair<int, int>{-1, 0}), "negative integer");
  EXPECT_CONTAINS(error_decoding_as<V>(std::pair<std::string, int>{"0", 0}), "found string");
  EXPECT_CONTAINS(error_decoding_as<V>(std::vector<int>{}), "expected [index, value] (variant)");
  EXPECT_CONTAINS(error_decoding_as<V>(std::tuple<int, int, int>{0, 1, 2}), "expected [index, value] (variant)");
  EXPECT_CONTAINS(error_decoding_as<V>(std::pair<int, int>{1, 5}), "expected string, found integer");
}

TEST(DecodeErrors, ArrayAndTupleSizes) {
  EXPECT_CONTAINS(error_decoding_as<std::array<int, 3>>(std::array<int, 2>{1, 2}),
                  "typed array of 2 elements, expected 3");
  EXPECT_CONTAINS(error_decoding_as<std::array<int, 1>>(std::array<int, 2>{1, 2}),
                  "typed array of 2 elements, expected 1");
  EXPECT_CONTAINS((error_decoding_as<std::array<std::string, 3>>(std::vector<std::string>{"a", "b"})),
                  "array of 2 elements, expected 3");
  EXPECT_CONTAINS((error_decoding_as<std::tuple<int, int, int>>(std::pair<int, int>{1, 2})),
                  "tuple of 2 elements, expected 3");
  EXPECT_CONTAINS((error_decoding_as<std::pair<int, int>>(std::tuple<int>{1})), "tuple of 1 elements, expected 2");
}

TEST(DecodeErrors, ViewAccessorsCheckBounds) {
  DecodedValue d(encode_value(std::vector<std::string>{"a"}));
  EXPECT_CONTAINS(decode_error_of([&] { (void)d.root().at(1); }), "array index 1 out of range");
  EXPECT_CONTAINS(decode_error_of([&] { (void)d.root().key_at(0); }), "expected map, found array");
  DecodedValue m(encode_value(std::map<std::string, int>{{"k", 1}}));
  EXPECT_CONTAINS(decode_error_of([&] { (void)m.root().value_at(1); }), "map index out of range");
  EXPECT_EQ(m.root().find("k")->as_int64(), 1);
  EXPECT_FALSE(m.root().find("missing").has_value());
  DecodedValue i(encode_value(1));
  EXPECT_CONTAINS(decode_error_of([&] { (void)i.root().size(); }), "expected array or map, found integer");
  EXPECT_CONTAINS(decode_error_of([&] { (void)i.root().as_pointer(); }), "expected value pointer");
  EXPECT_CONTAINS(decode_error_of([&] { (void)i.root().as_binary(); }), "expected binary");
  EXPECT_CONTAINS(decode_error_of([&] { (void)i.root().find("x"); }), "expected map");
}

}  // namespace
