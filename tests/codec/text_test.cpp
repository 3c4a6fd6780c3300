// ValueView::to_text: the one-line display form of any encoded value.

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "mandala/codec.hpp"

namespace md = mandala;

namespace {

template <class T>
std::string text_of(const T& value, std::size_t max_chars = SIZE_MAX) {
  md::DecodedValue d(md::encode_value(value));
  return d.root().to_text(max_chars);
}

TEST(ValueText, Scalars) {
  EXPECT_EQ(text_of(42), "42");
  EXPECT_EQ(text_of(-7), "-7");
  EXPECT_EQ(text_of(1.5), "1.5");
  EXPECT_EQ(text_of(2.0), "2.0");
  EXPECT_EQ(text_of(true), "true");
  EXPECT_EQ(text_of(std::string("a \"q\"")), R"("a \"q\"")");
  EXPECT_EQ(text_of(std::optional<int>{}), "null");
}

TEST(ValueText, ContainersAndTypedArrays) {
  EXPECT_EQ(text_of(std::vector<std::string>{"x", "y"}), R"(["x", "y"])");
  EXPECT_EQ(text_of(std::map<std::string, int>{{"b", 2}, {"a", 1}}), R"({"a": 1, "b": 2})");
  EXPECT_EQ(text_of(std::vector<double>{0.5, 1, 2}), "f64[3] [0.5, 1.0, 2.0]");
  EXPECT_EQ(text_of(std::vector<std::uint8_t>{1, 2}), "u8[2] [1, 2]");
  std::vector<std::int32_t> many(100);
  for (int i = 0; i < 100; ++i) many[static_cast<std::size_t>(i)] = i;
  EXPECT_EQ(text_of(many), "i32[100] [0, 1, 2, 3, 4, 5, 6, 7, ...]");
  md::Encoder e;
  const std::uint64_t shape[] = {2, 2};
  const float data[] = {1, 2, 3, 4};
  e.typed_array(md::Dtype::f32, shape, data, sizeof data);
  md::DecodedValue d(std::move(e).take());
  EXPECT_EQ(d.root().to_text(), "f32[2x2] [1.0, 2.0, 3.0, 4.0]");
}

TEST(ValueText, BinaryAndPointers) {
  md::Encoder e;
  const std::byte bytes[] = {std::byte{0xab}, std::byte{0x01}};
  e.binary(bytes);
  EXPECT_EQ(md::DecodedValue(std::move(e).take()).root().to_text(), "bytes[2] ab01");
  md::Encoder p;
  p.pointer("model-v3");
  EXPECT_EQ(md::DecodedValue(std::move(p).take()).root().to_text(), "pointer(model-v3)");
}

TEST(ValueText, CutToMaxCharactersOnCodePoints) {
  EXPECT_EQ(text_of(std::string("abcdefghij"), 8), R"("abcd...)");
  EXPECT_EQ(text_of(std::string("abcdef"), 8), R"("abcdef")");
  // "é" is two bytes but one character: never split.
  const auto cut = text_of(std::string("ééééééééé"), 6);
  EXPECT_EQ(cut, "\"éé...");
  std::vector<int> big(1'000'000, 7);
  EXPECT_EQ(text_of(big, 12), "i32[10000...");
}

}  // namespace
