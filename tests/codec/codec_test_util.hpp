#pragma once
// Helpers shared by the codec tests: hex conversion, round trips, expecting decode errors, and
// a few user structs with MANDALA_STRUCT codecs.

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "mandala/codec.hpp"
#include "mandala/error.hpp"

namespace mandala::testing {

inline std::string to_hex(std::span<const std::byte> bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (auto b : bytes) {
    out += digits[std::to_integer<unsigned>(b) >> 4];
    out += digits[std::to_integer<unsigned>(b) & 15];
  }
  return out;
}

/// Parses hex digits; spaces are ignored so that expected bytes can be grouped for reading.
inline std::vector<std::byte> from_hex(std::string_view hex) {
  std::vector<std::byte> out;
  int high = -1;
  for (char c : hex) {
    if (c == ' ') continue;
    int nibble;
    if (c >= '0' && c <= '9') nibble = c - '0';
    else if (c >= 'a' && c <= 'f') nibble = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') nibble = c - 'A' + 10;
    else throw std::invalid_argument("from_hex: not a hex digit");
    if (high < 0) {
      high = nibble;
    } else {
      out.push_back(static_cast<std::byte>(high * 16 + nibble));
      high = -1;
    }
  }
  if (high >= 0) throw std::invalid_argument("from_hex: odd number of digits");
  return out;
}

/// Removes the spaces used to group expected hex strings.
inline std::string compact(std::string_view hex) {
  std::string out;
  for (char c : hex)
    if (c != ' ') out += c;
  return out;
}

template <class T>
std::string hex_of(const T& value) {
  return to_hex(encode_value(value));
}

template <class T>
T round_trip(const T& value) {
  const std::vector<std::byte> bytes = encode_value(value);
  return decode_value<T>(std::span<const std::byte>(bytes));
}

/// Runs `f`, which must throw mandala::Error with Errc::decode; returns the message ("" and a
/// test failure otherwise).
template <class F>
std::string decode_error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::decode) << e.what();
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected mandala::Error(decode), got std::exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected mandala::Error(decode), nothing was thrown";
  return "";
}

/// `part` occurs in `text`; the failure shows both.
inline ::testing::AssertionResult contains(const std::string& text, std::string_view part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << part << "' not in: " << text;
}

inline std::string decode_error_of_bytes(std::string_view hex) {
  const auto bytes = from_hex(hex);
  return decode_error_of([&] { DecodedValue d(bytes); });
}

}  // namespace mandala::testing

// EXPECT_CONTAINS(text, part), variadic so that template arguments with commas need no parentheses.
#define EXPECT_CONTAINS(...) EXPECT_TRUE(::mandala::testing::contains(__VA_ARGS__))

// ---- user structs used across the codec tests ---------------------------------------------

namespace codec_test {
struct Point {
  int x = 0;
  int y = 0;
  friend bool operator==(const Point&, const Point&) = default;
};

struct Segment {
  Point from;
  Point to;
  std::string label;
  friend bool operator==(const Segment&, const Segment&) = default;
};

struct Polyline {
  std::vector<Point> points;
  std::optional<Segment> bounding;
  std::map<std::string, double> tags;
  friend bool operator==(const Polyline&, const Polyline&) = default;
};

struct Named {
  std::vector<std::string> names;
  std::int8_t small = 0;
  friend bool operator==(const Named&, const Named&) = default;
};
}  // namespace codec_test

MANDALA_STRUCT(codec_test::Point, x, y);
MANDALA_STRUCT(codec_test::Segment, from, to, label);
MANDALA_STRUCT(codec_test::Polyline, points, bounding, tags);
MANDALA_STRUCT(codec_test::Named, names, small);
