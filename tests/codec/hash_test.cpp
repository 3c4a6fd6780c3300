// Golden vectors for the canonical bytes and the id formulas (src/codec/hash.cpp), and the
// hasher's domain separation.

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "codec/hash.hpp"
#include "codec_test_util.hpp"
#include "golden_values.hpp"
#include "mandala/codec.hpp"
#include "mandala/detail/core.hpp"

namespace {

using namespace mandala;
using namespace mandala::testing;

Id cid_of_hex(std::string_view hex) { return codec::content_id(from_hex(hex)); }

TEST(GoldenVectors, EncodedBytesArePinned) {
  for (const auto& c : golden_cases()) EXPECT_EQ(to_hex(c.encoded), compact(c.hex)) << c.name;
}

TEST(GoldenVectors, ContentIdsArePinned) {
  for (const auto& c : golden_cases()) {
    EXPECT_EQ(codec::content_id(c.encoded).hex(), c.cid) << c.name;
    // The public detail entry point gives the same id.
    EXPECT_EQ(detail::content_id(c.encoded), codec::content_id(c.encoded)) << c.name;
  }
}

TEST(GoldenVectors, EveryGoldenValueDecodes) {
  for (const auto& c : golden_cases()) {
    DecodedValue d(c.encoded);
    EXPECT_NO_THROW((void)d.root().to_json()) << c.name;
  }
}

TEST(GoldenVectors, ContentIdsAreDistinct) {
  const auto cases = golden_cases();
  for (std::size_t i = 0; i < cases.size(); ++i)
    for (std::size_t j = i + 1; j < cases.size(); ++j)
      EXPECT_NE(cases[i].cid, cases[j].cid) << cases[i].name << " vs " << cases[j].name;
}

TEST(GoldenVectors, IdFormulasArePinned) {
  const Id one = cid_of_hex("01");
  EXPECT_EQ(codec::atom_hid(one).hex(), "d0b74dd901ef0c1b718bbddb5b3b6bb5");
  const Id call = codec::call_id("inc", 0, {{"x", one}});
  EXPECT_EQ(call.hex(), "04131370e0627d2b4d140eaf00afac8f");
  EXPECT_EQ(codec::output_hid(call, "output_0").hex(), "256eb2fc3a64b51ab0cd56c2c6fed47c");
  const Id two = cid_of_hex("02");
  EXPECT_EQ(codec::call_id("add", 3, {{"a", one}, {"b", two}}).hex(), "eb5aac4efb16695ff94834d19cdc3fd5");
  EXPECT_EQ(codec::call_id("nullary", 0, {}).hex(), "77be2fbdc1c35b440bbcf0f7690c6a66");
  EXPECT_EQ(std::string(codec::hash_name), "xxh3-128");
}

TEST(GoldenVectors, WorkedExampleOfTheStorageFormatDoc) {
  // docs/storage-format.md section 2: op "inc", version 0, x = 5, output "output_0" = 6.
  const auto five = encode_value(5);
  EXPECT_EQ(to_hex(five), "05");
  const Id cid = codec::content_id(five);
  EXPECT_EQ(cid.hex(), "14bfa3372b6570ae95fc7da47f4114b6");
  const Id hid = codec::atom_hid(cid);
  EXPECT_EQ(hid.hex(), "c87f96cf86976224966b53a40c0a1b39");
  EXPECT_EQ(codec::call_id("inc", 0, {{"x", cid}}).hex(), "bc7f119b7a79b425f9412c0c72e5a9d6");
  const Id call_hid = codec::call_id("inc", 0, {{"x", hid}});
  EXPECT_EQ(call_hid.hex(), "94a115bc196651d5774ca821fd046b94");
  EXPECT_EQ(codec::output_hid(call_hid, "output_0").hex(), "3befab39dc7d2fda7e99abcdcfbd72f5");
  EXPECT_EQ(codec::content_id(encode_value(6)).hex(), "e89474a59634907fc6f6147c1608d6ac");
}

TEST(Hasher, CallIdIgnoresTheOrderInputsArePassedIn) {
  const Id a = cid_of_hex("01"), b = cid_of_hex("02"), c = cid_of_hex("a161");
  const Id abc = codec::call_id("f", 1, {{"a", a}, {"b", b}, {"c", c}});
  EXPECT_EQ(codec::call_id("f", 1, {{"c", c}, {"a", a}, {"b", b}}), abc);
  EXPECT_EQ(codec::call_id("f", 1, {{"b", b}, {"c", c}, {"a", a}}), abc);
  // ... but names bind to their ids, and op, version and input set all matter.
  EXPECT_NE(codec::call_id("f", 1, {{"a", b}, {"b", a}, {"c", c}}), abc);
  EXPECT_NE(codec::call_id("g", 1, {{"a", a}, {"b", b}, {"c", c}}), abc);
  EXPECT_NE(codec::call_id("f", 2, {{"a", a}, {"b", b}, {"c", c}}), abc);
  EXPECT_NE(codec::call_id("f", 1, {{"a", a}, {"b", b}}), codec::call_id("f", 1, {{"a", a}, {"b", b}, {"c", c}}));
  EXPECT_NE(codec::call_id("f", 1, {}), codec::call_id("f", 0, {}));
}

TEST(Hasher, FieldSplitsDoNotCollide) {
  const Id ab_c = codec::Hasher("t").field(std::string_view("ab")).field(std::string_view("c")).digest();
  const Id a_bc = codec::Hasher("t").field(std::string_view("a")).field(std::string_view("bc")).digest();
  const Id abc = codec::Hasher("t").field(std::string_view("abc")).digest();
  const Id abc_empty = codec::Hasher("t").field(std::string_view("abc")).field(std::string_view("")).digest();
  EXPECT_NE(ab_c, a_bc);
  EXPECT_NE(ab_c, abc);
  EXPECT_NE(abc, abc_empty);
  // The tag is a field too: moving bytes between tag and field changes the digest.
  EXPECT_NE(codec::Hasher("ta").field(std::string_view("b")).digest(),
            codec::Hasher("t").field(std::string_view("ab")).digest());
  // Same fields, same digest; digest() does not consume the state.
  codec::Hasher h("t");
  h.field(std::string_view("ab")).field(std::string_view("c"));
  EXPECT_EQ(h.digest(), ab_c);
  EXPECT_EQ(h.digest(), ab_c);
}

TEST(Hasher, DomainsSeparateTheIdKinds) {
  const Id v = cid_of_hex("01");
  // A value's cid, an atom hid over it and an output hid are different kinds of ids.
  EXPECT_NE(codec::atom_hid(v), v);
  EXPECT_NE(codec::atom_hid(v), codec::Hasher("value").field(v).digest());
  EXPECT_EQ(codec::atom_hid(v), codec::Hasher("atom").field(v).digest());
  EXPECT_EQ(codec::content_id(from_hex("01")), codec::Hasher("value").field(from_hex("01")).digest());
  // A number field is its 8 little-endian bytes, as a length-prefixed field.
  const std::vector<std::byte> le5 = from_hex("0500000000000000");
  EXPECT_EQ(codec::Hasher("n").field(std::uint64_t{5}).digest(), codec::Hasher("n").field(le5).digest());
  EXPECT_EQ(codec::Hasher("n").field(v).digest(), codec::Hasher("n").field(std::as_bytes(std::span(v.bytes))).digest());
}

TEST(Hasher, ContentIdDependsOnEveryByte) {
  std::vector<std::byte> bytes = encode_value(std::vector<double>(1000, 1.0));
  const Id base = codec::content_id(bytes);
  for (std::size_t i : {std::size_t{0}, std::size_t{5}, bytes.size() / 2, bytes.size() - 1}) {
    auto changed = bytes;
    changed[i] ^= std::byte{1};
    EXPECT_NE(codec::content_id(changed), base) << "byte " << i;
  }
  EXPECT_NE(codec::content_id(std::span(bytes).first(bytes.size() - 1)), base);
}

// typed_array_content_id hashes a block where it lies: the id of Encoder::typed_array's bytes,
// also for blocks of many pieces with elements made canonical in some of them.
TEST(TypedArrayContentId, IsTheIdOfTheEncodedBlock) {
  const auto check = [](Dtype dtype, std::vector<std::uint64_t> shape, const std::vector<std::byte>& data) {
    Encoder e;
    e.typed_array(dtype, shape, data.data(), data.size());
    EXPECT_EQ(typed_array_content_id(dtype, shape, data.data(), data.size()), codec::content_id(e.bytes()))
        << to_string(dtype) << " of " << data.size() << " bytes";
  };
  const auto bytes_of = [](const auto& v) {
    std::vector<std::byte> out(v.size() * sizeof(v[0]));
    if (!out.empty()) std::memcpy(out.data(), v.data(), out.size());
    return out;
  };
  const std::size_t n = 50000;  // several pieces of 64 KiB for 8-byte elements
  std::vector<double> f64(n);
  for (std::size_t i = 0; i < n; ++i) f64[i] = std::sin(static_cast<double>(i));
  check(Dtype::f64, {n}, bytes_of(f64));
  check(Dtype::f64, {100, n / 100}, bytes_of(f64));
  std::uint64_t odd_nan = 0xfff0000000000abcull;  // a NaN of another sign and payload
  std::memcpy(&f64[3], &odd_nan, sizeof odd_nan);
  f64[n - 1] = std::numeric_limits<double>::quiet_NaN();
  check(Dtype::f64, {n}, bytes_of(f64));
  check(Dtype::c128, {n / 2}, bytes_of(f64));
  std::vector<float> f32(n, 1.5f);
  f32[40000] = -std::numeric_limits<float>::quiet_NaN();
  check(Dtype::f32, {n}, bytes_of(f32));
  check(Dtype::c64, {n / 2}, bytes_of(f32));
  std::vector<std::uint16_t> f16(n, 0x3c00);
  f16[70000 % n] = 0xfe01;
  check(Dtype::f16, {n}, bytes_of(f16));
  std::vector<std::uint8_t> booleans(3 * n);
  for (std::size_t i = 0; i < booleans.size(); ++i) booleans[i] = static_cast<std::uint8_t>(i % 3);
  check(Dtype::boolean, {booleans.size()}, bytes_of(booleans));
  check(Dtype::u8, {booleans.size()}, bytes_of(booleans));
  check(Dtype::i64, {0}, {});
  check(Dtype::i32, {}, bytes_of(std::vector<std::int32_t>{-3}));  // rank 0
  // The checks of Encoder::typed_array.
  EXPECT_THROW((void)typed_array_content_id(Dtype::i32, std::vector<std::uint64_t>{3}, f32.data(), 8), Error);
}

}  // namespace
