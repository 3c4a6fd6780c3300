// Canonical-form properties of the encoder (src/codec/encoder.cpp): equal values give equal
// bytes, types that must stay distinct do, and container entries are sorted by encoded bytes.

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "codec/hash.hpp"
#include "codec/wire.hpp"
#include "codec_test_util.hpp"
#include "mandala/codec.hpp"

namespace codec_test {
struct YAb {  // the struct example of docs/storage-format.md 1.2
  int y = 0;
  int ab = 0;
};
}  // namespace codec_test
MANDALA_STRUCT(codec_test::YAb, y, ab);

namespace {

using namespace mandala;
using namespace mandala::testing;

TEST(CanonicalForm, OneOneFloatOneDoubleAndTrueDiffer) {
  const std::vector<std::string> hexes = {hex_of(1), hex_of(1.0f), hex_of(1.0), hex_of(true)};
  EXPECT_EQ(hexes[0], "01");
  EXPECT_EQ(hexes[1], "ca3f800000");
  EXPECT_EQ(hexes[2], "cb3ff0000000000000");
  EXPECT_EQ(hexes[3], "c3");
  const std::vector<Id> ids = {codec::content_id(encode_value(1)), codec::content_id(encode_value(1.0f)),
                               codec::content_id(encode_value(1.0)), codec::content_id(encode_value(true))};
  for (std::size_t i = 0; i < ids.size(); ++i)
    for (std::size_t j = i + 1; j < ids.size(); ++j) {
      EXPECT_NE(hexes[i], hexes[j]);
      EXPECT_NE(ids[i], ids[j]) << i << " vs " << j;
    }
  // 0 and false and nil are different too.
  EXPECT_NE(hex_of(0), hex_of(false));
  EXPECT_NE(hex_of(0), hex_of(std::optional<int>{}));
  EXPECT_NE(hex_of(false), hex_of(std::optional<int>{}));
}

TEST(CanonicalForm, IntegerWidthDoesNotChangeTheBytes) {
  EXPECT_EQ(hex_of(std::int32_t{5}), hex_of(std::int64_t{5}));
  EXPECT_EQ(hex_of(std::int8_t{5}), hex_of(std::uint64_t{5}));
  EXPECT_EQ(hex_of(std::uint16_t{5}), "05");
  EXPECT_EQ(hex_of(std::int64_t{300}), hex_of(std::uint16_t{300}));
  EXPECT_EQ(hex_of(std::int64_t{300}), "cd012c");
  EXPECT_EQ(hex_of(std::int16_t{-100}), hex_of(std::int64_t{-100}));
  EXPECT_EQ(hex_of(std::int64_t{4294967295LL}), hex_of(std::uint32_t{4294967295u}));
  EXPECT_EQ(hex_of(std::int64_t{INT64_MAX}), hex_of(std::uint64_t{INT64_MAX}));
  EXPECT_EQ(codec::content_id(encode_value(std::int32_t{5})), codec::content_id(encode_value(std::int64_t{5})));
  // Inside containers too (map keys and values, tuples).
  EXPECT_EQ(hex_of(std::map<std::int8_t, std::uint32_t>{{1, 2}}), hex_of(std::map<std::int64_t, std::int16_t>{{1, 2}}));
  EXPECT_EQ(hex_of(std::pair<short, long>{7, 8}), hex_of(std::pair<std::uint8_t, std::uint64_t>{7, 8}));
}

TEST(CanonicalForm, TypedBlocksKeepTheirDtype) {
  // A block is a numpy-like array: its dtype is part of the value.
  EXPECT_NE(hex_of(std::vector<std::int32_t>{5}), hex_of(std::vector<std::int64_t>{5}));
  EXPECT_NE(hex_of(std::vector<float>{1.0f}), hex_of(std::vector<double>{1.0}));
  EXPECT_NE(hex_of(std::vector<double>{}), hex_of(std::vector<float>{}));
}

TEST(CanonicalForm, MapAndUnorderedMapGiveTheSameBytes) {
  std::vector<std::pair<std::string, int>> entries;
  for (int i = 0; i < 200; ++i) entries.emplace_back("key" + std::to_string(i * 7919 % 1000), i);
  std::map<std::string, int> ordered(entries.begin(), entries.end());
  const std::string expected = hex_of(ordered);

  std::mt19937 rng(12345);
  for (int round = 0; round < 10; ++round) {
    std::shuffle(entries.begin(), entries.end(), rng);
    std::unordered_map<std::string, int> unordered(static_cast<std::size_t>(round * 37 + 1));
    for (const auto& [k, v] : entries) unordered.emplace(k, v);
    EXPECT_EQ(hex_of(unordered), expected) << "round " << round;
    std::map<std::string, int> reordered;
    for (const auto& [k, v] : entries) reordered.emplace(k, v);
    EXPECT_EQ(hex_of(reordered), expected);
  }
  const std::unordered_map<int, double> u = {{3, 0.5}, {-1, 1.5}, {1000, 2.5}};
  const std::map<int, double> m = {{1000, 2.5}, {3, 0.5}, {-1, 1.5}};
  EXPECT_EQ(hex_of(u), hex_of(m));
}

TEST(CanonicalForm, SetOrderDoesNotMatter) {
  const std::set<int> ascending = {1, 128, -1, 70000, -70000};
  const std::set<int, std::greater<int>> descending(ascending.begin(), ascending.end());
  EXPECT_EQ(hex_of(ascending), hex_of(descending));
  // Elements sorted by encoded bytes: 01 < cc80 < ce00011170 < d2fffeee90 < ff.
  EXPECT_EQ(hex_of(ascending), compact("95 01 cc80 ce00011170 d2fffeee90 ff"));
  const std::set<std::string> strings = {"b", "aa", "c"};
  const std::set<std::string, std::greater<>> reversed(strings.begin(), strings.end());
  EXPECT_EQ(hex_of(strings), hex_of(reversed));
  EXPECT_EQ(hex_of(strings), compact("93 a162 a163 a26161"));
}

TEST(CanonicalForm, MapKeysAreSortedByEncodedBytes) {
  // "b" is a1 62 and "aa" is a2 61 61: the fixstr length prefix puts "b" first.
  EXPECT_EQ(hex_of(std::map<std::string, int>{{"b", 1}, {"aa", 2}}), compact("82 a162 01 a26161 02"));
  // Integer keys: 01 < cc80 < ff, so 1, 128, -1.
  EXPECT_EQ(hex_of(std::map<int, bool>{{-1, true}, {1, false}, {128, true}}), compact("83 01 c2 cc80 c3 ff c3"));
  // A user struct is the map of its fields: same bytes as the equivalent std::map.
  EXPECT_EQ(hex_of(codec_test::Point{1, 2}), hex_of(std::map<std::string, int>{{"y", 2}, {"x", 1}}));
  // The decoded view presents keys in that order.
  DecodedValue d(encode_value(std::map<std::string, int>{{"zz", 0}, {"b", 1}, {"aa", 2}, {"a", 3}}));
  std::vector<std::string> keys;
  for (std::size_t i = 0; i < d.root().size(); ++i) keys.emplace_back(d.root().key_at(i).as_string());
  EXPECT_EQ(keys, (std::vector<std::string>{"a", "b", "aa", "zz"}));
}

TEST(CanonicalForm, VectorOfDoubleIsOneTypedBlock) {
  const std::vector<double> v = {1.5, -2.0, 0.25};
  const auto bytes = encode_value(v);
  // ext8 (c7), body length, ext type 1, dtype f64 (10), rank 1, shape 3 as le64, data.
  ASSERT_EQ(bytes.size(), 3u + 2u + 8u + 24u);
  EXPECT_EQ(to_hex(std::span(bytes).first(13)), compact("c7 22 01 0a 01 0300000000000000"));
  DecodedValue d(bytes);
  ASSERT_EQ(d.root().kind(), Kind::typed_array);
  const TypedArrayView t = d.root().as_typed_array();
  EXPECT_EQ(t.dtype, Dtype::f64);
  EXPECT_EQ(t.shape, (std::vector<std::uint64_t>{3}));
  ASSERT_EQ(t.data.size(), 24u);
  double first;
  std::memcpy(&first, t.data.data(), sizeof first);
  EXPECT_EQ(first, 1.5);
  // Each dtype has its code.
  EXPECT_EQ(encode_value(std::vector<std::int8_t>{})[3], std::byte{1});
  EXPECT_EQ(encode_value(std::vector<std::int16_t>{})[3], std::byte{2});
  EXPECT_EQ(encode_value(std::vector<std::int32_t>{})[3], std::byte{3});
  EXPECT_EQ(encode_value(std::vector<std::int64_t>{})[3], std::byte{4});
  EXPECT_EQ(encode_value(std::vector<std::uint8_t>{})[3], std::byte{5});
  EXPECT_EQ(encode_value(std::vector<std::uint16_t>{})[3], std::byte{6});
  EXPECT_EQ(encode_value(std::vector<std::uint32_t>{})[3], std::byte{7});
  EXPECT_EQ(encode_value(std::vector<std::uint64_t>{})[3], std::byte{8});
  EXPECT_EQ(encode_value(std::vector<float>{})[3], std::byte{9});
  EXPECT_EQ(encode_value(std::vector<double>{})[3], std::byte{10});
  EXPECT_EQ(to_string(Dtype::f64), "f64");
  EXPECT_EQ(to_string(Dtype::u16), "u16");
  EXPECT_EQ(dtype_size(Dtype::i16), 2u);
  EXPECT_EQ(dtype_size(Dtype::u64), 8u);
}

TEST(CanonicalForm, LargeTypedBlocksUseExt16AndExt32) {
  // body = 2 + 8 + 8n: ext8 (c7) below 256 bytes, ext16 (c8) from 256, ext32 (c9) from 65536.
  EXPECT_EQ(to_hex(encode_value(std::vector<double>(30))).substr(0, 6), "c7fa01");
  EXPECT_EQ(to_hex(encode_value(std::vector<double>(31))).substr(0, 8), "c8010201");
  EXPECT_EQ(to_hex(encode_value(std::vector<double>(10000))).substr(0, 12), "c90001388a01");
}

TEST(CanonicalForm, ExamplesOfTheStorageFormatDoc) {
  // docs/storage-format.md section 1.
  EXPECT_EQ(hex_of(200), "ccc8");
  EXPECT_EQ(hex_of(-200), "d1ff38");
  EXPECT_EQ(hex_of(std::set<int>{300, 1}), compact("92 01 cd 01 2c"));
  EXPECT_EQ(hex_of(codec_test::YAb{1, 2}), compact("82 a1 79 01 a2 61 62 02"));
  EXPECT_EQ(hex_of(std::vector<std::int32_t>{1, 2}),
            compact("c7 12 01  03 01  02 00 00 00 00 00 00 00  01 00 00 00 02 00 00 00"));
  // 16 data bytes: fixext 16.
  EXPECT_EQ(hex_of(std::vector<std::uint8_t>{1, 2, 3, 4, 5, 6}),
            compact("d8 01 05 01 06 00 00 00 00 00 00 00 01 02 03 04 05 06"));
  // Canonical NaN inside blocks, little-endian.
  EXPECT_EQ(hex_of(std::vector<float>{std::nanf("1")}), compact("c7 0e 01  09 01 0100000000000000  0000c07f"));
  EXPECT_EQ(hex_of(std::vector<double>{-std::nan("7")}), compact("c7 12 01  0a 01 0100000000000000  000000000000f87f"));
}

TEST(Encoder, MultiDimensionalTypedArray) {
  const std::int16_t data[6] = {1, 2, 3, 4, 5, -6};
  const std::uint64_t shape[2] = {2, 3};
  Encoder e;
  e.typed_array(Dtype::i16, shape, data, sizeof data);
  DecodedValue d(e.bytes());
  const auto t = d.root().as_typed_array();
  EXPECT_EQ(t.dtype, Dtype::i16);
  EXPECT_EQ(t.shape, (std::vector<std::uint64_t>{2, 3}));
  EXPECT_EQ(t.data.size(), sizeof data);
  EXPECT_EQ(d.root().to_json(), R"({"data":[1,2,3,4,5,-6],"dtype":"i16","shape":[2,3]})");
  // A rank-2 block is not a std::vector.
  const std::string msg = decode_error_of([&] { (void)decode_value<std::vector<std::int16_t>>(d.root()); });
  EXPECT_NE(msg.find("rank 2"), std::string::npos) << msg;
  // Rank 0: a scalar block holds one element.
  const double one = 1.0;
  Encoder scalar;
  scalar.typed_array(Dtype::f64, {}, &one, sizeof one);
  EXPECT_EQ(DecodedValue(scalar.bytes()).root().as_typed_array().shape.size(), 0u);
}

TEST(Encoder, RejectsInconsistentTypedArrays) {
  const double data[4] = {};
  const std::uint64_t shape3[1] = {3};
  Encoder e;
  try {
    e.typed_array(Dtype::f64, shape3, data, sizeof data);
    ADD_FAILURE() << "shape 3 with 4 elements was accepted";
  } catch (const Error& err) {
    EXPECT_EQ(err.code(), Errc::invalid_argument);
  }
  const std::vector<std::uint64_t> too_many_dims(256, 1);
  EXPECT_THROW(e.typed_array(Dtype::f64, too_many_dims, data, 8), Error);
  const std::vector<std::uint64_t> max_dims(255, 1);
  EXPECT_NO_THROW(e.typed_array(Dtype::f64, max_dims, data, 8));
  // Shapes whose element count overflows 64 bits must not wrap around to match the data size.
  const std::uint64_t wraps_to_zero[2] = {std::uint64_t{1} << 63, 2};
  EXPECT_THROW(e.typed_array(Dtype::u8, wraps_to_zero, data, 0), Error);
  const std::uint64_t bytes_wrap[1] = {std::uint64_t{1} << 61};  // 2^61 * 8 bytes wraps to 0
  EXPECT_THROW(e.typed_array(Dtype::f64, bytes_wrap, data, 0), Error);
  for (auto bogus : {Dtype{0}, Dtype{11}, Dtype{255}}) {
    try {
      e.typed_array(bogus, shape3, data, 0);
      ADD_FAILURE() << "dtype " << static_cast<int>(bogus) << " accepted";
    } catch (const Error& err) {
      EXPECT_EQ(err.code(), Errc::invalid_argument);
    }
  }
  const std::uint64_t zero_dim[2] = {0, std::uint64_t{1} << 63};
  EXPECT_NO_THROW(e.typed_array(Dtype::u8, zero_dim, data, 0));
  // Whatever the encoder accepted decodes.
  EXPECT_NO_THROW((void)DecodedValue(std::span(e.bytes()).last(3 + 2 + 16)).root().as_typed_array());
}

TEST(Encoder, RejectsLengthsAbove32Bits) {
  // MessagePack counts and lengths are 32-bit; a larger one must not wrap around silently.
  constexpr std::size_t too_many = std::size_t{1} << 32;
  Encoder e;
  auto expect_invalid = [&](auto&& write, const char* what) {
    try {
      write();
      ADD_FAILURE() << what << " of 2^32 accepted, wrote " << to_hex(e.bytes());
    } catch (const Error& err) {
      EXPECT_EQ(err.code(), Errc::invalid_argument) << what;
    }
    EXPECT_EQ(e.size(), 0u) << what << ": nothing is written";
    e.clear();
  };
  expect_invalid([&] { e.array_header(too_many); }, "array");
  expect_invalid([&] { e.map_header(too_many + 5); }, "map");
  // 4 GiB + 1 of address space that is never touched: a valid range for the views.
  const std::size_t size = too_many + 1;
  void* region = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (region == MAP_FAILED) GTEST_SKIP() << "cannot reserve 4 GiB of address space";
  const std::string_view huge(static_cast<const char*>(region), size);
  expect_invalid([&] { e.string(huge); }, "string");
  expect_invalid([&] { e.binary(std::as_bytes(std::span(huge.data(), huge.size()))); }, "binary");
  expect_invalid([&] { e.pointer(huge); }, "pointer");
  ::munmap(region, size);
  // The largest counts are fine.
  e.array_header(0xFFFFFFFFu);
  EXPECT_EQ(to_hex(e.bytes()), "ddffffffff");
}

/// The element bytes of a one-block encoding (they end it).
template <class Bits>
std::vector<Bits> element_bits(const std::vector<std::byte>& encoded, std::size_t n) {
  std::vector<Bits> out(n);
  std::memcpy(out.data(), encoded.data() + encoded.size() - n * sizeof(Bits), n * sizeof(Bits));
  return out;
}

template <class Float, class Bits>
void expect_every_nan_canonical(std::size_t n, Bits canonical) {
  // NaNs (quiet, signalling, negative, any payload) at block edges (64 elements), piece edges
  // (64 KiB) and the ends; infinities and other values beside them stay as they are.
  std::vector<Float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<Float>(i) * Float(0.25) - Float(1000);
  const std::size_t piece = (std::size_t{64} << 10) / sizeof(Float);
  std::vector<std::size_t> nans = {0, 1, 63, 64, 65, 127, piece - 1, piece, piece + 1, 3 * piece + 17, n - 2, n - 1};
  const Bits exponent = std::bit_cast<Bits>(std::numeric_limits<Float>::infinity());
  const Bits sign = Bits{1} << (sizeof(Bits) * 8 - 1);
  const Bits payloads[] = {Bits{1}, canonical & ~exponent, static_cast<Bits>(~Bits{0}) & ~sign & ~exponent};
  for (std::size_t k = 0; k < nans.size(); ++k) {
    Bits bits = exponent | payloads[k % 3];
    if (k % 2 == 1) bits |= sign;
    v[nans[k]] = std::bit_cast<Float>(bits);
  }
  v[2] = std::numeric_limits<Float>::infinity();
  v[piece + 2] = -std::numeric_limits<Float>::infinity();
  v[5] = std::numeric_limits<Float>::max();
  v[6] = -std::numeric_limits<Float>::denorm_min();
  const auto encoded = encode_value(v);
  const auto got = element_bits<Bits>(encoded, n);
  std::size_t replaced = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const Bits original = std::bit_cast<Bits>(v[i]);
    if (std::isnan(v[i])) {
      ++replaced;
      EXPECT_EQ(got[i], canonical) << "element " << i;
    } else {
      ASSERT_EQ(got[i], original) << "element " << i;
    }
  }
  EXPECT_EQ(replaced, nans.size());
}

TEST(Encoder, EveryNanOfALargeBlockIsWrittenCanonicalAndNothingElseChanges) {
  expect_every_nan_canonical<double, std::uint64_t>(50'000, wire::canonical_nan64);
  expect_every_nan_canonical<float, std::uint32_t>(90'001, wire::canonical_nan32);
}

TEST(Encoder, ManyTypedBlocksGrowTheBufferGeometrically) {
  // One exact reservation per block made encoding a vector of many arrays quadratic.
  Encoder e;
  const std::vector<double> block(100, 1.5);
  const std::uint64_t shape[1] = {block.size()};
  std::size_t moves = 0;
  const std::byte* last = nullptr;
  for (int i = 0; i < 10'000; ++i) {
    e.typed_array(Dtype::f64, shape, block.data(), block.size() * sizeof(double));
    if (e.bytes().data() != last) ++moves;
    last = e.bytes().data();
  }
  EXPECT_LE(moves, 40u) << "the buffer moved at " << moves << " of 10,000 blocks";
  const auto one = encode_value(block);
  ASSERT_EQ(e.size(), one.size() * 10'000);
  EXPECT_TRUE(std::equal(one.begin(), one.end(), e.bytes().end() - static_cast<std::ptrdiff_t>(one.size())));
}

TEST(Encoder, MapSortedRejectsDuplicateKeys) {
  Encoder e;
  std::vector<std::pair<std::vector<std::byte>, std::vector<std::byte>>> entries;
  entries.emplace_back(encode_value(1), encode_value(2));
  entries.emplace_back(encode_value(std::int64_t{1}), encode_value(3));
  try {
    e.map_sorted(std::move(entries));
    ADD_FAILURE() << "duplicate key accepted";
  } catch (const Error& err) {
    EXPECT_EQ(err.code(), Errc::invalid_argument);
  }
}

TEST(Encoder, LowLevelWriters) {
  Encoder e;
  e.array_header(3);
  e.nil();
  e.binary(std::as_bytes(std::span("\x01\x02", 2)));
  e.raw(encode_value(std::string("r")));
  EXPECT_EQ(to_hex(e.bytes()), compact("93 c0 c4 02 0102 a1 72"));
  EXPECT_EQ(e.size(), 8u);
  e.clear();
  EXPECT_EQ(e.size(), 0u);
  e.map_header(0);
  EXPECT_EQ(to_hex(e.bytes()), "80");
  e.clear();
  e.array_sorted({encode_value(std::string("b")), encode_value(2), encode_value(1)});
  EXPECT_EQ(to_hex(e.bytes()), compact("93 01 02 a162"));
  e.clear();
  e.pointer("");
  EXPECT_EQ(to_hex(e.bytes()), "c70002");
  EXPECT_EQ(DecodedValue(e.bytes()).root().as_pointer(), "");
  e.clear();
  e.pointer(std::string(300, 'p'));
  EXPECT_EQ(to_hex(std::span(e.bytes()).first(4)), "c8012c02");
  EXPECT_EQ(DecodedValue(e.bytes()).root().as_pointer(), std::string(300, 'p'));
  EXPECT_EQ(DecodedValue(e.bytes()).root().kind(), Kind::pointer);
}

}  // namespace
