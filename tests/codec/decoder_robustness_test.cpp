// The decoder (src/codec/decoder.cpp) on hostile input: truncated, trailing, random and
// malformed bytes must throw mandala::Error(Errc::decode) -- never crash, hang or allocate
// memory out of proportion to the input.

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "codec_test_util.hpp"
#include "golden_values.hpp"
#include "mandala/codec.hpp"

namespace {

using namespace mandala;
using namespace mandala::testing;

TEST(DecoderRobustness, EveryProperPrefixOfAGoldenValueIsTruncated) {
  for (const auto& c : golden_cases()) {
    ASSERT_NO_THROW(DecodedValue{c.encoded}) << c.name;
    for (std::size_t len = 0; len < c.encoded.size(); ++len) {
      const std::span<const std::byte> prefix(c.encoded.data(), len);
      const std::string msg = decode_error_of([&] { DecodedValue d(prefix); });
      EXPECT_FALSE(msg.empty()) << c.name << " prefix " << len;
      // The typed decoders go through the same validation.
      decode_error_of([&] { (void)decode_value<std::int64_t>(prefix); });
    }
  }
  EXPECT_NE(decode_error_of_bytes("").find("no bytes"), std::string::npos);
  EXPECT_NE(decode_error_of_bytes("cd01").find("truncated"), std::string::npos);
}

TEST(DecoderRobustness, TrailingBytesAreRejected) {
  for (const auto& c : golden_cases()) {
    for (std::string_view tail : {"c0", "00", "ff"}) {
      auto bytes = c.encoded;
      const auto extra = from_hex(tail);
      bytes.insert(bytes.end(), extra.begin(), extra.end());
      const std::string msg = decode_error_of([&] { DecodedValue d(bytes); });
      EXPECT_NE(msg.find("trailing"), std::string::npos) << c.name << ": " << msg;
    }
  }
  // Two complete values back to back are not one value.
  EXPECT_NE(decode_error_of_bytes("01 02").find("1 trailing byte"), std::string::npos);
}

// Decodes `bytes` every way a client might; anything but success or Error(decode) fails.
struct FuzzStats {
  std::size_t parsed = 0;
  std::size_t rendered = 0;
  std::size_t typed = 0;
};

template <class T>
void try_decode_as(ValueView root, FuzzStats& stats, std::span<const std::byte> bytes) {
  try {
    (void)decode_value<T>(root);
    ++stats.typed;
  } catch (const Error& e) {
    ASSERT_EQ(e.code(), Errc::decode) << e.what() << " on " << to_hex(bytes);
  }
}

void fuzz_one(std::span<const std::byte> bytes, FuzzStats& stats) {
  std::optional<DecodedValue> decoded;
  try {
    decoded.emplace(bytes);
  } catch (const Error& e) {
    ASSERT_EQ(e.code(), Errc::decode) << e.what() << " on " << to_hex(bytes);
    return;
  }
  ++stats.parsed;
  const ValueView root = decoded->root();
  try {
    const std::string json = root.to_json();
    ASSERT_FALSE(json.empty());
    (void)root.to_json(2);
    ++stats.rendered;
  } catch (const Error& e) {
    ASSERT_EQ(e.code(), Errc::decode) << e.what() << " on " << to_hex(bytes);
  }
  try_decode_as<bool>(root, stats, bytes);
  try_decode_as<std::int8_t>(root, stats, bytes);
  try_decode_as<std::uint64_t>(root, stats, bytes);
  try_decode_as<std::int64_t>(root, stats, bytes);
  try_decode_as<float>(root, stats, bytes);
  try_decode_as<double>(root, stats, bytes);
  try_decode_as<std::string>(root, stats, bytes);
  try_decode_as<std::vector<double>>(root, stats, bytes);
  try_decode_as<std::vector<std::uint8_t>>(root, stats, bytes);
  try_decode_as<std::array<std::int16_t, 2>>(root, stats, bytes);
  try_decode_as<std::vector<std::string>>(root, stats, bytes);
  try_decode_as<std::vector<bool>>(root, stats, bytes);
  try_decode_as<std::map<std::string, int>>(root, stats, bytes);
  try_decode_as<std::map<int, std::optional<std::string>>>(root, stats, bytes);
  try_decode_as<std::set<int>>(root, stats, bytes);
  try_decode_as<std::tuple<int, double, std::string>>(root, stats, bytes);
  try_decode_as<std::pair<std::nullptr_t, bool>>(root, stats, bytes);
  try_decode_as<std::variant<int, std::string, std::monostate>>(root, stats, bytes);
  try_decode_as<std::optional<std::vector<int>>>(root, stats, bytes);
  try_decode_as<std::vector<std::vector<std::optional<std::int32_t>>>>(root, stats, bytes);
  try_decode_as<codec_test::Point>(root, stats, bytes);
  try_decode_as<codec_test::Polyline>(root, stats, bytes);
  // Generic traversal through the view API.
  try {
    if (root.kind() == Kind::array || root.kind() == Kind::map) {
      for (std::size_t i = 0; i < root.size(); ++i) {
        if (root.kind() == Kind::map) {
          (void)root.key_at(i).kind();
          (void)root.value_at(i).kind();
        } else {
          (void)root.at(i).kind();
        }
      }
      if (root.kind() == Kind::map) (void)root.find("x");
    }
    if (root.kind() == Kind::typed_array) (void)root.as_typed_array();
    if (root.kind() == Kind::pointer) (void)root.as_pointer();
  } catch (const Error& e) {
    ASSERT_EQ(e.code(), Errc::decode) << e.what() << " on " << to_hex(bytes);
  }
}

// Bytes that are MessagePack headers or small payloads, to reach deeper than uniform noise.
std::byte interesting_byte(std::mt19937_64& rng) {
  static constexpr std::uint8_t table[] = {0x00, 0x01, 0x02, 0x03, 0x7f, 0x80, 0x81, 0x82, 0x8f, 0x90, 0x91, 0x92, 0x93,
                                           0x9f, 0xa0, 0xa1, 0xa2, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7,
                                           0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3, 0xd4,
                                           0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff,
                                           0x78, 0x79, 0x61, 0x0a, 0x09, 0x04, 0x05, 0x08, 0x10, 0xfe, 0x40, 0x7e};
  return std::byte{table[rng() % sizeof table]};
}

TEST(DecoderRobustness, RandomBytesNeverCrash) {
  FuzzStats stats;
  std::size_t cases = 0;
  for (std::uint64_t seed : {1ull, 2ull, 3ull, 4ull}) {
    std::mt19937_64 rng(seed);
    for (int i = 0; i < 50000; ++i) {
      const std::size_t len = rng() % 65;  // 0..64
      std::vector<std::byte> bytes(len);
      for (auto& b : bytes) b = std::byte{static_cast<std::uint8_t>(rng())};
      fuzz_one(bytes, stats);
      if (::testing::Test::HasFatalFailure()) return;
      ++cases;
    }
  }
  std::mt19937_64 rng(99);
  for (int i = 0; i < 100; ++i) {  // some long ones
    const std::size_t len = 1000 + rng() % 20000;
    std::vector<std::byte> bytes(len);
    for (auto& b : bytes) b = std::byte{static_cast<std::uint8_t>(rng())};
    fuzz_one(bytes, stats);
    if (::testing::Test::HasFatalFailure()) return;
    ++cases;
  }
  EXPECT_GE(cases, 200000u);
  // Uniform noise parses often enough (every one-byte fixint, nil, ...) to reach the typed decoders.
  EXPECT_GT(stats.parsed, 1000u);
  EXPECT_GT(stats.typed, 1000u);
}

TEST(DecoderRobustness, StructuredRandomBytesNeverCrash) {
  FuzzStats stats;
  for (std::uint64_t seed : {11ull, 12ull}) {
    std::mt19937_64 rng(seed);
    for (int i = 0; i < 50000; ++i) {
      const std::size_t len = 1 + rng() % 64;
      std::vector<std::byte> bytes(len);
      for (auto& b : bytes) b = interesting_byte(rng);
      fuzz_one(bytes, stats);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
  EXPECT_GT(stats.parsed, 500u);
  EXPECT_GT(stats.rendered, 500u);
}

TEST(DecoderRobustness, MutatedValidValuesNeverCrash) {
  using Deep = std::map<std::string, std::vector<std::optional<std::tuple<int, double, std::string>>>>;
  std::vector<std::vector<std::byte>> seeds;
  for (const auto& c : golden_cases()) seeds.push_back(c.encoded);
  seeds.push_back(encode_value(Deep{{"a", {std::tuple<int, double, std::string>{1, 2.0, "x"}, std::nullopt}}}));
  seeds.push_back(
      encode_value(codec_test::Polyline{{{1, 2}, {3, 4}}, codec_test::Segment{{0, 0}, {1, 1}, "s"}, {{"w", 1.0}}}));
  seeds.push_back(encode_value(std::vector<std::int16_t>{1, 2, 3, 4}));
  seeds.push_back(encode_value(std::map<int, std::optional<std::string>>{{1, "a"}, {2, std::nullopt}}));
  seeds.push_back(encode_value(std::vector<std::vector<std::optional<std::int32_t>>>{{1, std::nullopt}, {}}));
  FuzzStats stats;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 60000; ++i) {
    auto bytes = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < edits && !bytes.empty(); ++k) {
      const std::size_t at = rng() % bytes.size();
      switch (rng() % 4) {
        case 0: bytes[at] = std::byte{static_cast<std::uint8_t>(rng())}; break;
        case 1: bytes[at] ^= std::byte{static_cast<std::uint8_t>(1u << (rng() % 8))}; break;
        case 2: bytes.insert(bytes.begin() + static_cast<std::ptrdiff_t>(at), interesting_byte(rng)); break;
        default: bytes.erase(bytes.begin() + static_cast<std::ptrdiff_t>(at)); break;
      }
    }
    fuzz_one(bytes, stats);
    if (::testing::Test::HasFatalFailure()) return;
  }
  EXPECT_GT(stats.parsed, 5000u);
  EXPECT_GT(stats.typed, 5000u);
}

// Peak virtual memory of this process in KiB (VmPeak in /proc/self/status).
std::uint64_t peak_virtual_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmPeak:", 0) == 0) return std::stoull(line.substr(7));
  return 0;
}

void expect_rejected_quickly(std::string_view hex) {
  const auto start = std::chrono::steady_clock::now();
  const auto peak_before = peak_virtual_kib();
  const std::string msg = decode_error_of_bytes(hex);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(msg.empty()) << hex;
  EXPECT_LT(elapsed, std::chrono::milliseconds(200)) << hex;
  EXPECT_LT(peak_virtual_kib() - peak_before, 64u * 1024u) << hex << ": " << msg;
  // The header is rejected for its size, not by a failed allocation.
  EXPECT_EQ(msg.find("allocation failed"), std::string::npos) << hex << ": " << msg;
}

TEST(DecoderRobustness, HugeHeadersAreRejectedWithoutAllocating) {
  expect_rejected_quickly("dd ffffffff");     // array32 of 4G elements
  expect_rejected_quickly("df ffffffff");     // map32
  expect_rejected_quickly("db ffffffff");     // str32
  expect_rejected_quickly("c6 ffffffff");     // bin32
  expect_rejected_quickly("c9 ffffffff 01");  // ext32, typed array
  expect_rejected_quickly("c9 ffffffff 02");  // ext32, pointer
  expect_rejected_quickly("dc ffff");
  expect_rejected_quickly("de ffff");
  expect_rejected_quickly("da ffff");
  expect_rejected_quickly("c8 ffff 01");
  expect_rejected_quickly("dd ffffffff dd ffffffff dd ffffffff c0");
  expect_rejected_quickly("91 91 91 dd 7fffffff c0 c0");
}

TEST(DecoderRobustness, NestedHeadersCannotMultiplyTheAllocation) {
  // Each header claims as many elements as the input has bytes, nested 500 deep: the claims add
  // up to far more elements than the input could hold, which must be rejected up front rather
  // than allocated level by level (24 bytes per claimed element: 12 GB here).
  const std::size_t claimed = 1'000'000;
  std::vector<std::byte> bytes;
  for (int level = 0; level < 500; ++level) {
    bytes.push_back(std::byte{0xdd});
    for (int shift = 24; shift >= 0; shift -= 8)
      bytes.push_back(std::byte{static_cast<std::uint8_t>(claimed >> shift)});
  }
  bytes.resize(claimed + 5000, std::byte{0xc0});
  const auto peak_before = peak_virtual_kib();
  const auto start = std::chrono::steady_clock::now();
  const std::string msg = decode_error_of([&] { DecodedValue d(bytes); });
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_LT(peak_virtual_kib() - peak_before, 256u * 1024u) << msg;
  EXPECT_FALSE(msg.empty());
  // The same with maps.
  std::vector<std::byte> maps;
  for (int level = 0; level < 500; ++level) {
    maps.push_back(std::byte{0xdf});
    for (int shift = 24; shift >= 0; shift -= 8)
      maps.push_back(std::byte{static_cast<std::uint8_t>(claimed / 2 >> shift)});
    maps.push_back(std::byte{0x01});
  }
  maps.resize(claimed + 5000, std::byte{0xc0});
  const auto maps_before = peak_virtual_kib();
  EXPECT_FALSE(decode_error_of([&] { DecodedValue d(maps); }).empty());
  EXPECT_LT(peak_virtual_kib() - maps_before, 256u * 1024u);
}

TEST(DecoderRobustness, DeepNestingIsRejectedWithoutRecursion) {
  std::vector<std::byte> deep(100000, std::byte{0x91});
  deep.push_back(std::byte{0xc0});
  const std::string msg = decode_error_of([&] { DecodedValue d(deep); });
  EXPECT_FALSE(msg.empty());
  std::vector<std::byte> deep_maps;
  for (int i = 0; i < 100000; ++i) {
    deep_maps.push_back(std::byte{0x81});
    deep_maps.push_back(std::byte{0xc0});
  }
  deep_maps.push_back(std::byte{0xc0});
  EXPECT_FALSE(decode_error_of([&] { DecodedValue d(deep_maps); }).empty());
  // The limit is 512 levels (docs/storage-format.md 1.5).
  std::vector<std::byte> at_limit(512, std::byte{0x91});
  at_limit.push_back(std::byte{0x01});
  DecodedValue limit_value(at_limit);
  EXPECT_EQ(limit_value.root().to_json(), std::string(512, '[') + "1" + std::string(512, ']'));
  std::vector<std::byte> beyond(513, std::byte{0x91});
  beyond.push_back(std::byte{0x01});
  EXPECT_FALSE(decode_error_of([&] { DecodedValue d(beyond); }).empty());
  // Moderate nesting is fine, and renders.
  std::vector<std::byte> ok(100, std::byte{0x91});
  ok.push_back(std::byte{0x01});
  DecodedValue d(ok);
  EXPECT_EQ(d.root().to_json(), std::string(100, '[') + "1" + std::string(100, ']'));
}

TEST(DecoderRobustness, MalformedTypedArrays) {
  // A well-formed block: i16, rank 1, shape 2, 4 data bytes.
  EXPECT_EQ(decode_value<std::vector<std::int16_t>>(from_hex("c7 0e 01  02 01 0200000000000000  0100 0200")),
            (std::vector<std::int16_t>{1, 2}));
  auto typed_error = [](std::string_view hex) {
    return decode_error_of([&] {
      DecodedValue d(from_hex(hex));
      (void)d.root().as_typed_array();
    });
  };
  // Shape says 3 elements, data holds 2.
  EXPECT_NE(typed_error("c7 0e 01  02 01 0300000000000000  0100 0200").find("shape does not match"), std::string::npos);
  // Shape says 1 element, data holds 2.
  EXPECT_NE(typed_error("c7 0e 01  02 01 0100000000000000  0100 0200").find("shape does not match"), std::string::npos);
  // Data not a whole number of elements.
  EXPECT_NE(typed_error("c7 0d 01  02 01 0100000000000000  0100 02").find("shape does not match"), std::string::npos);
  // Unknown dtypes 0 and 15.
  EXPECT_NE(typed_error("c7 0b 01  00 01 0100000000000000  01").find("unknown dtype"), std::string::npos);
  EXPECT_NE(typed_error("c7 0b 01  0f 01 0100000000000000  01").find("unknown dtype"), std::string::npos);
  // Rank 255 claimed, but no room for the shape.
  EXPECT_NE(typed_error("c7 0a 01  01 ff 0100000000000000").find("shape truncated"), std::string::npos);
  // Header cut short.
  EXPECT_NE(typed_error("d4 01 01").find("header truncated"), std::string::npos);
  EXPECT_NE(typed_error("c7 00 01").find("header truncated"), std::string::npos);
  // Shape whose element count overflows 64 bits.
  EXPECT_NE(typed_error("c7 12 01  05 02 0000000000000080 0200000000000000").find("overflow"), std::string::npos);
  // Element count wraps to 0 modulo 2^64 only through the byte size: 2^61 f64 elements, 0 bytes.
  EXPECT_FALSE(typed_error("c7 0a 01  0a 01 0000000000000020").empty());
  // The errors reach the JSON renderer and typed decoders too.
  const auto bad = from_hex("c7 0e 01  02 01 0300000000000000  0100 0200");
  EXPECT_FALSE(decode_error_of([&] { (void)DecodedValue(bad).root().to_json(); }).empty());
  EXPECT_FALSE(decode_error_of([&] { (void)decode_value<std::vector<std::int16_t>>(bad); }).empty());
  EXPECT_FALSE(decode_error_of([&] { (void)decode_value<std::array<std::int16_t, 3>>(bad); }).empty());
}

TEST(DecoderRobustness, UnknownExtensionTypes) {
  for (std::string_view hex : {"d4 07 00", "d4 ff 00", "c7 00 7f", "d8 08 00112233445566778899aabbccddeeff"}) {
    // Whether the bytes are rejected at parse or at use, it is a decode error and never a crash.
    const std::string msg = decode_error_of([&] {
      DecodedValue d(from_hex(hex));
      (void)d.root().kind();
    });
    EXPECT_NE(msg.find("unknown extension type"), std::string::npos) << hex << ": " << msg;
    EXPECT_FALSE(decode_error_of([&] { (void)DecodedValue(from_hex(hex)).root().to_json(); }).empty());
    EXPECT_FALSE(decode_error_of([&] { (void)decode_value<std::string>(from_hex(hex)); }).empty());
  }
  // The reserved byte c1 is never valid.
  EXPECT_FALSE(decode_error_of_bytes("c1").empty());
  EXPECT_FALSE(decode_error_of_bytes("91 c1").empty());
}

}  // namespace
