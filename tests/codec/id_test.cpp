// Id printing and parsing (include/mandala/id.hpp, src/util/hex.cpp).

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>
#include <unordered_set>

#include "codec/hash.hpp"
#include "mandala/id.hpp"

namespace {

using mandala::Id;

Id id_from_seed(std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  Id id;
  for (auto& b : id.bytes) b = static_cast<std::uint8_t>(rng());
  return id;
}

TEST(IdHex, PrintsLowercaseBigEndianBytes) {
  Id id;
  for (std::size_t i = 0; i < 16; ++i) id.bytes[i] = static_cast<std::uint8_t>(i * 17);
  EXPECT_EQ(id.hex(), "00112233445566778899aabbccddeeff");
  EXPECT_EQ(Id{}.hex(), std::string(32, '0'));
  EXPECT_TRUE(Id{}.is_zero());
  EXPECT_FALSE(id.is_zero());
  Id last;
  last.bytes[15] = 1;
  EXPECT_FALSE(last.is_zero());
  EXPECT_EQ(last.hex(), "00000000000000000000000000000001");
}

TEST(IdHex, RoundTrips) {
  for (std::uint64_t seed = 0; seed < 1000; ++seed) {
    const Id id = id_from_seed(seed);
    const std::string hex = id.hex();
    ASSERT_EQ(hex.size(), 32u);
    EXPECT_EQ(hex.find_first_not_of("0123456789abcdef"), std::string::npos) << hex;
    const auto back = Id::from_hex(hex);
    ASSERT_TRUE(back.has_value()) << hex;
    EXPECT_EQ(*back, id);
  }
  const Id cid = mandala::codec::content_id({});
  EXPECT_EQ(Id::from_hex(cid.hex()), cid);
}

TEST(IdHex, AcceptsUppercaseAndMixedCase) {
  const auto upper = Id::from_hex("00112233445566778899AABBCCDDEEFF");
  ASSERT_TRUE(upper.has_value());
  EXPECT_EQ(upper->hex(), "00112233445566778899aabbccddeeff");
  const auto mixed = Id::from_hex("00112233445566778899aAbBcCdDeEfF");
  ASSERT_TRUE(mixed.has_value());
  EXPECT_EQ(*mixed, *upper);
}

TEST(IdHex, RejectsBadInput) {
  const std::string good = "00112233445566778899aabbccddeeff";
  ASSERT_TRUE(Id::from_hex(good).has_value());
  EXPECT_FALSE(Id::from_hex("").has_value());
  EXPECT_FALSE(Id::from_hex(good.substr(0, 31)).has_value());
  EXPECT_FALSE(Id::from_hex(good + "0").has_value());
  EXPECT_FALSE(Id::from_hex(good + good).has_value());
  EXPECT_FALSE(Id::from_hex(good.substr(0, 16)).has_value());
  // One bad character anywhere.
  for (char bad : {'g', 'G', 'z', ' ', '-', 'x', '\0', '/', ':', '@', '`', '\xff'}) {
    for (std::size_t pos : {std::size_t{0}, std::size_t{1}, std::size_t{17}, std::size_t{31}}) {
      std::string text = good;
      text[pos] = bad;
      EXPECT_FALSE(Id::from_hex(text).has_value()) << "char " << int(bad) << " at " << pos;
    }
  }
  EXPECT_FALSE(Id::from_hex("0x112233445566778899aabbccddeeff").has_value());
  EXPECT_FALSE(Id::from_hex(" 0112233445566778899aabbccddeeff").has_value());
  EXPECT_FALSE(Id::from_hex("{0112233-4556-7788-99aa-bbccddeeff}").has_value());
}

TEST(IdHex, OrderingAndHashing) {
  const Id a = *Id::from_hex("00000000000000000000000000000001");
  const Id b = *Id::from_hex("00000000000000000000000000000100");
  const Id c = *Id::from_hex("ff000000000000000000000000000000");
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_EQ(a, *Id::from_hex(a.hex()));
  std::set<Id> ordered = {c, a, b};
  EXPECT_EQ(*ordered.begin(), a);
  std::unordered_set<Id> hashed;
  for (std::uint64_t seed = 0; seed < 100; ++seed) hashed.insert(id_from_seed(seed));
  EXPECT_EQ(hashed.size(), 100u);
  EXPECT_EQ(std::hash<Id>{}(a), std::hash<Id>{}(*Id::from_hex(a.hex())));
}

}  // namespace
