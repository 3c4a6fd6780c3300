// The shape of a transparent collection (ext type 3, docs/storage-format.md 1.5): golden bytes,
// validation of malformed shapes, JSON, and how MList / MDict encode as plain values.

#include <gtest/gtest.h>

#include "codec/codec_test_util.hpp"
#include "mandala/codec.hpp"

namespace mandala {
namespace {
using testing::compact;
using testing::decode_error_of;
using testing::from_hex;
using testing::hex_of;
using testing::to_hex;

Id id_of(std::uint8_t fill) {
  Id id;
  id.bytes.fill(fill);
  return id;
}

std::string shape_hex(CollectionKind kind, std::vector<std::string> keys, std::vector<Id> cids) {
  Encoder e;
  e.collection(kind, keys, cids);
  return to_hex(e.bytes());
}

TEST(CollectionShape, ListGoldenBytes) {
  // ext 8 (c7), 33 data bytes (0x21), type 3, kind 1 (list), then the ids in list order.
  EXPECT_EQ(shape_hex(CollectionKind::list, {}, {id_of(0xaa), id_of(0x01)}),
            compact("c7 21 03 01 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 01010101010101010101010101010101"));
  // The empty list: fixext 1 (d4), type 3, kind 1.
  EXPECT_EQ(shape_hex(CollectionKind::list, {}, {}), "d40301");
}

TEST(CollectionShape, DictGoldenBytesSortByKeyBytes) {
  // Entries sorted by key bytes whatever the given order: "a" before "b".
  const std::string expected = compact(
      "c7 2b 03 02  01000000 61 bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb  01000000 62 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
  EXPECT_EQ(shape_hex(CollectionKind::dict, {"b", "a"}, {id_of(0xaa), id_of(0xbb)}), expected);
  EXPECT_EQ(shape_hex(CollectionKind::dict, {"a", "b"}, {id_of(0xbb), id_of(0xaa)}), expected);
}

TEST(CollectionShape, EncoderRejectsImpossibleShapes) {
  Encoder e;
  const std::vector<std::string> two{"k", "k"};
  const std::vector<Id> ids{id_of(1), id_of(2)};
  EXPECT_THROW(e.collection(CollectionKind::dict, two, ids), Error);                          // duplicate key
  EXPECT_THROW(e.collection(CollectionKind::dict, {two.data(), 1}, ids), Error);              // keys != ids
  EXPECT_THROW(e.collection(CollectionKind::list, {two.data(), 1}, {ids.data(), 1}), Error);  // list keys
}

TEST(CollectionShape, DecodesBackAndRendersAsJson) {
  const auto bytes = from_hex(shape_hex(CollectionKind::dict, {"y", "x"}, {id_of(2), id_of(1)}));
  DecodedValue d(bytes);
  ASSERT_EQ(d.root().kind(), Kind::collection);
  const CollectionView v = d.root().as_collection();
  EXPECT_EQ(v.kind, CollectionKind::dict);
  ASSERT_EQ(v.keys.size(), 2u);
  EXPECT_EQ(v.keys[0], "x");
  EXPECT_EQ(v.cids[0], id_of(1));
  EXPECT_EQ(d.root().to_json(),
            R"({"dict":{"x":"01010101010101010101010101010101","y":"02020202020202020202020202020202"}})");
  const auto list = from_hex(shape_hex(CollectionKind::list, {}, {id_of(3)}));
  EXPECT_EQ(DecodedValue(list).root().to_json(), R"({"list":["03030303030303030303030303030303"]})");
  EXPECT_EQ(to_string(Kind::collection), "collection shape");
}

TEST(CollectionShape, MalformedShapesAreDecodeErrors) {
  auto error = [](std::string_view hex) {
    return decode_error_of([&] {
      DecodedValue d(from_hex(hex));
      (void)d.root().as_collection();
    });
  };
  EXPECT_CONTAINS(error("c7 00 03"), "no kind byte");
  EXPECT_CONTAINS(error("d4 03 07"), "unknown kind 7");
  EXPECT_CONTAINS(error("c7 03 03 01 aabb"), "not a whole number of ids");
  EXPECT_CONTAINS(error("c7 03 03 02 0100"), "key length truncated");
  EXPECT_CONTAINS(error("c7 07 03 02 01000000 61 aa"), "entry truncated");
  EXPECT_CONTAINS(error("c7 05 03 02 ffffffff"), "entry truncated");
  // Keys out of order or repeated.
  EXPECT_CONTAINS(error("c7 2b 03 02 01000000 62 " + std::string(32, 'a') + " 01000000 61 " + std::string(32, 'b')),
                  "not sorted and unique");
  EXPECT_CONTAINS(error("c7 2b 03 02 01000000 61 " + std::string(32, 'a') + " 01000000 61 " + std::string(32, 'b')),
                  "not sorted and unique");
  // A plain value is not a shape, and a shape is not a plain value.
  EXPECT_CONTAINS(decode_error_of([] { (void)DecodedValue(encode_value(1)).root().as_collection(); }),
                  "expected collection shape");
  EXPECT_CONTAINS(decode_error_of([] { (void)decode_value<std::vector<int>>(from_hex("d40301")); }), "collection");
}

TEST(CollectionShape, PlainMListAndMDictEncodeLikeArraysAndMaps) {
  // As part of a plain value an MList is an array of its elements (never a typed block), an
  // MDict a map.
  EXPECT_EQ(hex_of(MList<int>{1, 2}), "920102");
  EXPECT_EQ(hex_of(MDict<std::string, int>{{"b", 2}, {"a", 1}}), "82a16101a16202");
  EXPECT_EQ(testing::round_trip(MList<MList<int>>{{1}, {2, 3}}), (MList<MList<int>>{{1}, {2, 3}}));
  EXPECT_EQ(testing::round_trip(MDict<std::string, double>{{"x", 1.5}}), (MDict<std::string, double>{{"x", 1.5}}));
}

}  // namespace
}  // namespace mandala
