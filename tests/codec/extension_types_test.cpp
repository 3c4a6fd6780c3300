// The encodings of msgpack-canonical-2 beyond version 1 (docs/storage-format.md 1.3, 1.7-1.9):
// integers beyond 64 bits (ext type 4), pickles (ext type 5), tagged values (ext type 6), the
// typed-array dtypes bool, f16, c64 and c128; golden bytes, validation and display.

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <complex>
#include <limits>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "codec/codec_test_util.hpp"
#include "mandala/codec.hpp"

namespace mandala {
namespace {
using testing::compact;
using testing::decode_error_of;
using testing::from_hex;
using testing::hex_of;
using testing::to_hex;

std::string big_hex(bool negative, std::string_view magnitude_hex) {
  Encoder e;
  e.big_integer(negative, from_hex(magnitude_hex));
  return to_hex(e.bytes());
}

TEST(BigInteger, GoldenBytes) {
  // 2^64: ext 8 (c7), 10 data bytes, type 4, sign 0, magnitude 01 00 x 8.
  EXPECT_EQ(big_hex(false, "01 0000000000000000"), compact("c7 0a 04 00 01 0000000000000000"));
  // -(2^63) - 1: sign 1, magnitude 80 00 ... 01.
  EXPECT_EQ(big_hex(true, "8000000000000001"), compact("c7 09 04 01 8000000000000001"));
  // Leading zero bytes are dropped.
  EXPECT_EQ(big_hex(false, "0000 01 0000000000000000"), compact("c7 0a 04 00 01 0000000000000000"));
}

TEST(BigInteger, ValuesThatFitSixtyFourBitsArePlainIntegers) {
  EXPECT_EQ(big_hex(false, ""), "00");
  EXPECT_EQ(big_hex(true, "00"), "00");  // -0 is 0
  EXPECT_EQ(big_hex(false, "05"), hex_of(5));
  EXPECT_EQ(big_hex(false, "ffffffffffffffff"), hex_of(std::numeric_limits<std::uint64_t>::max()));
  EXPECT_EQ(big_hex(true, "8000000000000000"), hex_of(std::numeric_limits<std::int64_t>::min()));
  EXPECT_EQ(big_hex(true, "00 21"), hex_of(-33));
}

TEST(BigInteger, ReadBackAndShownInDecimal) {
  const auto bytes = from_hex("c7 0a 04 00 01 0000000000000000");
  const DecodedValue d(bytes);
  ASSERT_EQ(d.root().kind(), Kind::big_integer);
  const auto b = d.root().as_big_integer();
  EXPECT_FALSE(b.negative);
  EXPECT_EQ(to_hex(b.magnitude), "010000000000000000");
  EXPECT_EQ(to_string(b), "18446744073709551616");
  EXPECT_EQ(d.root().to_json(), R"({"bigint":"18446744073709551616"})");
  EXPECT_EQ(d.root().to_text(), "18446744073709551616");
  EXPECT_EQ(DecodedValue(from_hex("c7 09 04 01 8000000000000001")).root().to_text(), "-9223372036854775809");
  // 10^30 = 0x0c9f2c9cd04674edea40000000: zeros inside the base-10^9 chunks are kept.
  EXPECT_EQ(to_string(BigIntegerView{false, from_hex("0c9f2c9cd04674edea40000000")}),
            "1000000000000000000000000000000");
  EXPECT_CONTAINS(decode_error_of([&] { (void)decode_value<std::int64_t>(bytes); }), "found big integer");
}

TEST(BigInteger, MalformedFormsAreRejected) {
  for (std::string_view hex : {"d4 04 00", "c7 02 04 00 00", "c7 02 04 02 01", "c7 09 04 00 ffffffffffffffff",
                               "c7 09 04 01 8000000000000000", "c7 03 04 01 0001"}) {
    EXPECT_CONTAINS(decode_error_of([&] { (void)DecodedValue(from_hex(hex)).root().as_big_integer(); }),
                    "malformed big integer")
        << hex;
    EXPECT_FALSE(decode_error_of([&] { (void)DecodedValue(from_hex(hex)).root().to_json(); }).empty());
  }
}

TEST(Pickle, GoldenBytesAndOpaqueDisplay) {
  Encoder e;
  const auto data = from_hex("80 04 2e");
  e.pickle("a.B", data);
  // ext 8, 10 data bytes, type 5, name length 3 (u32 little-endian), "a.B", the pickle bytes.
  EXPECT_EQ(to_hex(e.bytes()), compact("c7 0a 05 03000000 612e42 80042e"));
  const DecodedValue d(std::vector<std::byte>(e.bytes()));
  ASSERT_EQ(d.root().kind(), Kind::pickle);
  EXPECT_EQ(d.root().as_pickle().type_name, "a.B");
  EXPECT_EQ(to_hex(d.root().as_pickle().data), "80042e");
  EXPECT_EQ(d.root().to_text(), "<pickle a.B, 3 bytes>");
  EXPECT_EQ(d.root().to_json(), R"({"pickle":{"bytes":3,"type":"a.B"}})");
  EXPECT_CONTAINS(decode_error_of([&] { (void)decode_value<std::string>(d.root()); }),
                  "found pickle of a Python 'a.B'");
}

TEST(Pickle, MalformedFormsAreRejected) {
  for (std::string_view hex : {"d4 05 00", "c7 04 05 05000000", "d6 05 01000000"}) {
    EXPECT_CONTAINS(decode_error_of([&] { (void)DecodedValue(from_hex(hex)).root().as_pickle(); }), "malformed pickle")
        << hex;
  }
}

TEST(Tagged, ComplexNumbersAreTaggedPairs) {
  // [ext 6 "complex", [1.0, 2.0]]
  EXPECT_EQ(hex_of(std::complex<double>(1.0, 2.0)),
            compact("92 c7 07 06 636f6d706c6578 92 cb 3ff0000000000000 cb 4000000000000000"));
  EXPECT_EQ(testing::round_trip(std::complex<float>(1.5f, -2.0f)), std::complex<float>(1.5f, -2.0f));
  const DecodedValue d(encode_value(std::complex<double>(1.0, 2.0)));
  ASSERT_EQ(d.root().kind(), Kind::tagged);
  EXPECT_EQ(d.root().tag(), "complex");
  EXPECT_EQ(d.root().tagged_value().kind(), Kind::array);
  EXPECT_EQ(d.root().to_json(), R"({"tag":"complex","value":[1.0,2.0]})");
  EXPECT_EQ(d.root().to_text(), "complex([1.0, 2.0])");
  // A tagged value is not an array to typed decoders, and not another tag's value.
  EXPECT_CONTAINS(decode_error_of([&] { (void)decode_value<std::vector<double>>(d.root()); }),
                  "found tagged value 'complex'");
  Encoder other;
  other.tag("point");
  other.array_header(2);
  other.float64(1);
  other.float64(2);
  EXPECT_FALSE(decode_error_of([&] { (void)decode_value<std::complex<double>>(other.bytes()); }).empty());
}

// The Python package writes a tuple as the tagged value "tuple" of an array and a set or
// frozenset as "set" / "frozenset" of an array sorted by encoded bytes (docs/storage-format.md
// 1.9); C++ sequences and sets decode them like the plain array.
TEST(Tagged, PythonTuplesAndSetsDecodeAsCppSequencesAndSets) {
  Encoder tuple;  // Python (1, "a", 0.5)
  tuple.tag("tuple");
  tuple.array_header(3);
  tuple.integer(1);
  tuple.string("a");
  tuple.float64(0.5);
  EXPECT_EQ(to_hex(tuple.bytes()), compact("92 c7 05 06 7475706c65 93 01 a1 61 cb 3fe0000000000000"));
  EXPECT_EQ((decode_value<std::tuple<std::int64_t, std::string, double>>(tuple.bytes())),
            (std::tuple<std::int64_t, std::string, double>{1, "a", 0.5}));
  Encoder pair;  // Python ("k", False)
  pair.tag("tuple");
  pair.array_header(2);
  pair.string("k");
  pair.boolean(false);
  EXPECT_EQ((decode_value<std::pair<std::string, bool>>(pair.bytes())), (std::pair<std::string, bool>{"k", false}));
  Encoder strings;  // Python ("a", "b")
  strings.tag("tuple");
  strings.array_header(2);
  strings.string("a");
  strings.string("b");
  EXPECT_EQ(decode_value<std::vector<std::string>>(strings.bytes()), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ((decode_value<std::array<std::string, 2>>(strings.bytes())), (std::array<std::string, 2>{"a", "b"}));
  for (const char* tag : {"set", "frozenset"}) {  // Python {300, 1}
    Encoder set;
    set.tag(tag);
    set.array_sorted({encode_value(300), encode_value(1)});
    EXPECT_EQ(decode_value<std::set<int>>(set.bytes()), (std::set<int>{1, 300})) << tag;
    // A set is not a sequence, and a tuple not a set.
    EXPECT_CONTAINS(decode_error_of([&] { (void)decode_value<std::vector<int>>(set.bytes()); }), "tagged value");
  }
  EXPECT_CONTAINS(decode_error_of([&] { (void)decode_value<std::set<std::string>>(strings.bytes()); }),
                  "found tagged value 'tuple'");
  // Another tag is not taken for a tuple.
  Encoder other;
  other.tag("point");
  other.array_header(2);
  other.string("a");
  other.string("b");
  EXPECT_CONTAINS(decode_error_of([&] { (void)decode_value<std::vector<std::string>>(other.bytes()); }),
                  "found tagged value 'point'");
  // C++ values themselves still write plain arrays.
  EXPECT_EQ(hex_of(std::tuple<int, std::string>{1, "a"}), compact("92 01 a1 61"));
}

TEST(Tagged, TagsOnlyLeadArraysOfTwo) {
  const DecodedValue ok(from_hex("92 d4 06 61 01"));
  ASSERT_EQ(ok.root().kind(), Kind::tagged);
  EXPECT_EQ(ok.root().tag(), "a");
  EXPECT_EQ(ok.root().tagged_value().as_int64(), 1);
  // A bare tag, a tag in second place, and an empty tag.
  EXPECT_CONTAINS(decode_error_of([&] { (void)DecodedValue(from_hex("d4 06 61")).root().kind(); }),
                  "outside a tagged value");
  const DecodedValue second(from_hex("92 01 d4 06 61"));
  EXPECT_EQ(second.root().kind(), Kind::array);
  EXPECT_FALSE(decode_error_of([&] { (void)second.root().to_json(); }).empty());
  EXPECT_CONTAINS(decode_error_of([&] { (void)DecodedValue(from_hex("92 c7 00 06 01")).root().tag(); }), "empty tag");
  // Arrays of other sizes are arrays even when they begin with a tag.
  EXPECT_FALSE(decode_error_of([&] { (void)DecodedValue(from_hex("93 d4 06 61 01 02")).root().to_text(); }).empty());
  Encoder e;
  EXPECT_THROW(e.tag(""), Error);
}

std::string block_hex(Dtype dtype, std::vector<std::uint64_t> shape, std::string_view data_hex) {
  Encoder e;
  const auto data = from_hex(data_hex);
  e.typed_array(dtype, shape, data.data(), data.size());
  return to_hex(e.bytes());
}

TEST(NewDtypes, GoldenBytesAndCanonicalElements) {
  EXPECT_EQ(to_string(Dtype::boolean), "bool");
  EXPECT_EQ(dtype_size(Dtype::boolean), 1u);
  EXPECT_EQ(dtype_size(Dtype::f16), 2u);
  EXPECT_EQ(dtype_size(Dtype::c64), 8u);
  EXPECT_EQ(dtype_size(Dtype::c128), 16u);
  // bool (11): every true element is written as 1.
  EXPECT_EQ(block_hex(Dtype::boolean, {3}, "00 02 01"), compact("c7 0d 01 0b 01 0300000000000000 000101"));
  // f16 (12): NaNs become the canonical quiet NaN 7e00 (little-endian 00 7e).
  EXPECT_EQ(block_hex(Dtype::f16, {2}, "017c 003c"), compact("c7 0e 01 0c 01 0200000000000000 007e 003c"));
  // c128 (14): both parts follow the f64 NaN rule; rank 0 is one element.
  EXPECT_EQ(hex_of(std::vector<std::complex<double>>{{1.0, std::nan("7")}}),
            compact("c7 1a 01 0e 01 0100000000000000 000000000000f03f 000000000000f87f"));
  EXPECT_EQ(block_hex(Dtype::c64, {}, "0000803f 0000c0ff"), compact("c7 0a 01 0d 00 0000803f 0000c07f"));
  EXPECT_EQ((testing::round_trip(std::vector<std::complex<float>>{{1, 2}, {3, 4}})),
            (std::vector<std::complex<float>>{{1, 2}, {3, 4}}));
}

TEST(NewDtypes, Display) {
  const DecodedValue b(from_hex("c7 0d 01 0b 01 0300000000000000 000101"));
  EXPECT_EQ(b.root().to_json(), R"({"data":[false,true,true],"dtype":"bool","shape":[3]})");
  EXPECT_EQ(b.root().to_text(), "bool[3] [false, true, true]");
  const DecodedValue h(from_hex("c7 0e 01 0c 01 0200000000000000 003c 00c0"));  // 1.0, -2.0
  EXPECT_EQ(h.root().to_json(), R"({"data":[1.0,-2.0],"dtype":"f16","shape":[2]})");
  const DecodedValue c(encode_value(std::vector<std::complex<double>>{{1.5, -2}}));
  EXPECT_EQ(c.root().to_json(), R"({"data":[[1.5,-2.0]],"dtype":"c128","shape":[1]})");
  EXPECT_EQ(c.root().to_text(), "c128[1] [1.5-2.0j]");
}

}  // namespace
}  // namespace mandala
