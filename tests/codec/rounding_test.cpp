// Rounding of floating-point values and of the numbers inside an encoded value
// (src/codec/rounding.cpp, docs/storage-format.md 1.7).

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "mandala/codec.hpp"
#include "mandala/error.hpp"
#include "mandala/rounding.hpp"

namespace md = mandala;

namespace {

TEST(Rounding, SignificantDigits) {
  const auto r = md::significant_digits(3);
  EXPECT_EQ(md::round_value(1234.5678, r), 1230.0);
  EXPECT_EQ(md::round_value(0.00012345, r), 0.000123);
  EXPECT_EQ(md::round_value(-9.996, r), -10.0);
  EXPECT_EQ(md::round_value(2.675f, r), 2.67f);  // the float nearest 2.675 is below it
  EXPECT_EQ(md::round_value(0.1 + 0.2, md::significant_digits(15)), 0.3);
  EXPECT_EQ(md::round_value(0.1 + 0.2, md::significant_digits(17)), 0.1 + 0.2);
}

TEST(Rounding, Quantum) {
  const auto r = md::quantum(0.25);
  EXPECT_EQ(md::round_value(1.1, r), 1.0);
  EXPECT_EQ(md::round_value(1.2, r), 1.25);
  EXPECT_EQ(md::round_value(0.125, r), 0.0);                      // a tie: to even (0 x 0.25)
  EXPECT_EQ(md::round_value(0.375, r), 0.5);                      // a tie: to even (2 x 0.25)
  EXPECT_EQ(md::round_value(1e300, md::quantum(1e-300)), 1e300);  // beyond the quantum's range: as given
}

TEST(Rounding, SpecialValuesAndZeros) {
  for (const auto& r : {md::significant_digits(2), md::quantum(1.0)}) {
    EXPECT_TRUE(std::isnan(md::round_value(std::numeric_limits<double>::quiet_NaN(), r)));
    EXPECT_EQ(md::round_value(std::numeric_limits<double>::infinity(), r), std::numeric_limits<double>::infinity());
    EXPECT_EQ(md::round_value(-std::numeric_limits<float>::infinity(), r), -std::numeric_limits<float>::infinity());
    EXPECT_FALSE(std::signbit(md::round_value(-0.0, r)));
    EXPECT_FALSE(std::signbit(md::round_value(-0.0f, r)));
  }
  EXPECT_FALSE(std::signbit(md::round_value(-0.2, md::quantum(1.0))));  // rounds to zero: +0.0
  EXPECT_EQ(md::round_value(1.23, md::Rounding{}), 1.23);               // none: as given
}

TEST(Rounding, BadDeclarations) {
  EXPECT_THROW((void)md::significant_digits(0), md::Error);
  EXPECT_THROW((void)md::significant_digits(18), md::Error);
  EXPECT_THROW((void)md::quantum(0), md::Error);
  EXPECT_THROW((void)md::quantum(-1), md::Error);
  EXPECT_THROW((void)md::quantum(std::numeric_limits<double>::infinity()), md::Error);
}

TEST(Rounding, EncodedValuesKeepTheirTypesAndKeys) {
  const auto r = md::significant_digits(2);
  // Scalars of both widths, in arrays and map values; keys untouched; other values untouched.
  using Value = std::map<double, std::vector<std::pair<float, std::string>>>;
  const Value v{{1.234, {{5.678f, "x"}, {1.0f, "y"}}}};
  const auto rounded = md::round_encoded(md::encode_value(v), r);
  ASSERT_TRUE(rounded.has_value());
  EXPECT_EQ(*rounded, md::encode_value(Value{{1.234, {{5.7f, "x"}, {1.0f, "y"}}}}));
  // Typed arrays of f32 and f64 (rank 1 and more); integer arrays are left alone.
  const std::vector<double> d{1.234, 5.0};
  EXPECT_EQ(md::round_encoded(md::encode_value(d), r), md::encode_value(std::vector<double>{1.2, 5.0}));
  EXPECT_EQ(md::round_encoded(md::encode_value(std::vector<float>{9.87f}), r),
            md::encode_value(std::vector<float>{9.9f}));
  EXPECT_FALSE(md::round_encoded(md::encode_value(std::vector<int>{1234, 5678}), r).has_value());
  EXPECT_FALSE(md::round_encoded(md::encode_value(std::string("1.234")), r).has_value());
  EXPECT_FALSE(md::round_encoded(md::encode_value(1.2), r).has_value());  // nothing changed
  EXPECT_FALSE(md::round_encoded(md::encode_value(1.234), md::Rounding{}).has_value());
  // Bytes that are not one value.
  const std::vector<std::byte> truncated{std::byte{0xcb}, std::byte{0x3f}};
  EXPECT_THROW((void)md::round_encoded(truncated, r), md::Error);
}

}  // namespace
