// Tolerant inputs: rounding of floating-point values and of the numbers inside an encoded value
// (docs/storage-format.md, 1.7).

#include "mandala/rounding.hpp"

#include <charconv>
#include <cmath>
#include <cstring>
#include <string>

#include "codec/wire.hpp"
#include "mandala/error.hpp"

namespace mandala {
namespace {

template <class F>
F round_number(F x, const Rounding& r) noexcept {
  if (!r.active() || !std::isfinite(x)) return x;
  F y = x;
  if (r.kind == Rounding::Kind::significant_digits) {
    // The exact binary value rounded to `digits` significant decimal digits (as printf's
    // %.{digits-1}e), read back as the nearest F.
    char text[64];
    const auto written = std::to_chars(text, text + sizeof text, x, std::chars_format::scientific, r.digits - 1);
    if (written.ec == std::errc()) std::from_chars(text, written.ptr, y);
  } else {
    const double q = static_cast<double>(x) / r.step;
    if (std::isfinite(q)) {
      const double rounded = std::nearbyint(q) * r.step;
      if (std::isfinite(static_cast<F>(rounded))) y = static_cast<F>(rounded);
    }
  }
  return y == F(0) ? F(0) : y;  // -0.0 and +0.0 are one input
}

class Rounder {
 public:
  Rounder(std::vector<std::byte>& bytes, const Rounding& r) : m_bytes(bytes), m_rounding(r) {}

  void value(std::size_t depth) {
    if (depth > wire::max_depth) fail("nesting deeper than 512");
    const auto h = u8();
    if (h <= 0x7f || h >= 0xe0 || h == 0xc0 || h == 0xc2 || h == 0xc3) return;
    if (h >= 0x80 && h <= 0x8f) return map(h & 0x0f, depth);
    if (h >= 0x90 && h <= 0x9f) return array(h & 0x0f, depth);
    if (h >= 0xa0 && h <= 0xbf) return skip(h & 0x1f);
    switch (h) {
      case 0xc4: return skip(be(1));
      case 0xc5: return skip(be(2));
      case 0xc6: return skip(be(4));
      case 0xc7: return ext(be(1));
      case 0xc8: return ext(be(2));
      case 0xc9: return ext(be(4));
      case 0xca: return scalar<float, std::uint32_t>();
      case 0xcb: return scalar<double, std::uint64_t>();
      case 0xcc: return skip(1);
      case 0xcd: return skip(2);
      case 0xce: return skip(4);
      case 0xcf: return skip(8);
      case 0xd0: return skip(1);
      case 0xd1: return skip(2);
      case 0xd2: return skip(4);
      case 0xd3: return skip(8);
      case 0xd4: return ext(1);
      case 0xd5: return ext(2);
      case 0xd6: return ext(4);
      case 0xd7: return ext(8);
      case 0xd8: return ext(16);
      case 0xd9: return skip(be(1));
      case 0xda: return skip(be(2));
      case 0xdb: return skip(be(4));
      case 0xdc: return array(be(2), depth);
      case 0xdd: return array(be(4), depth);
      case 0xde: return map(be(2), depth);
      case 0xdf: return map(be(4), depth);
      default: fail("the reserved byte 0xc1");
    }
  }
  [[nodiscard]] bool changed() const noexcept { return m_changed; }
  [[nodiscard]] bool at_end() const noexcept { return m_at == m_bytes.size(); }

 private:
  [[noreturn]] static void fail(const std::string& what) {
    throw Error(Errc::decode, "round_encoded: not an encoded value: " + what);
  }
  void need(std::size_t n) const {
    if (m_bytes.size() - m_at < n) fail("truncated");
  }
  std::uint8_t u8() {
    need(1);
    return static_cast<std::uint8_t>(m_bytes[m_at++]);
  }
  std::uint64_t be(std::size_t n) {
    need(n);
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<std::uint8_t>(m_bytes[m_at++]);
    return v;
  }
  void skip(std::uint64_t n) {
    need(n);
    m_at += n;
  }
  void array(std::uint64_t n, std::size_t depth) {
    for (std::uint64_t i = 0; i < n; ++i) value(depth + 1);
  }
  void map(std::uint64_t n, std::size_t depth) {
    for (std::uint64_t i = 0; i < n; ++i) {
      // Keys are left as they are: rounding could make two keys equal.
      const bool before = m_changed;
      const Rounding kept = m_rounding;
      m_rounding = Rounding{};
      value(depth + 1);
      m_rounding = kept;
      m_changed = before;
      value(depth + 1);
    }
  }
  // A big-endian float scalar, rounded in place (the same size: the encoding keeps its type).
  template <class F, class U>
  void scalar() {
    need(sizeof(U));
    U bits = 0;
    for (std::size_t i = 0; i < sizeof(U); ++i) bits = (bits << 8) | static_cast<std::uint8_t>(m_bytes[m_at + i]);
    F x;
    std::memcpy(&x, &bits, sizeof x);
    const F y = round_number(x, m_rounding);
    U out;
    std::memcpy(&out, &y, sizeof out);
    if (out != bits) {
      for (std::size_t i = 0; i < sizeof(U); ++i)
        m_bytes[m_at + i] = static_cast<std::byte>((out >> (8 * (sizeof(U) - 1 - i))) & 0xff);
      m_changed = true;
    }
    m_at += sizeof(U);
  }
  void ext(std::uint64_t length) {
    const auto type = static_cast<std::int8_t>(u8());
    need(length);
    const std::size_t start = m_at;
    m_at += length;
    if (type != wire::ext_typed_array || length < 2 || !m_rounding.active()) return;
    const auto dtype = static_cast<std::uint8_t>(m_bytes[start]);
    const auto rank = static_cast<std::uint8_t>(m_bytes[start + 1]);
    const std::size_t header = 2 + 8 * std::size_t{rank};
    if (length < header) fail("a truncated typed array");
    if (dtype == 9) block<float>(start + header, start + length);
    else if (dtype == 10) block<double>(start + header, start + length);
  }
  // Little-endian elements of a typed array, rounded in place.
  template <class F>
  void block(std::size_t from, std::size_t to) {
    for (std::size_t at = from; at + sizeof(F) <= to; at += sizeof(F)) {
      F x;
      std::memcpy(&x, m_bytes.data() + at, sizeof x);
      const F y = round_number(x, m_rounding);
      if (std::memcmp(&x, &y, sizeof x) != 0) {
        std::memcpy(m_bytes.data() + at, &y, sizeof y);
        m_changed = true;
      }
    }
  }

  std::vector<std::byte>& m_bytes;
  Rounding m_rounding;
  std::size_t m_at = 0;
  bool m_changed = false;
};

}  // namespace

Rounding significant_digits(int digits) {
  if (digits < 1 || digits > 17)
    throw Error(Errc::invalid_argument, "significant_digits(" + std::to_string(digits) +
                                            "): give 1 to 17 digits (a double has at most 17 significant ones)");
  Rounding r;
  r.kind = Rounding::Kind::significant_digits;
  r.digits = digits;
  return r;
}

Rounding quantum(double step) {
  if (!std::isfinite(step) || !(step > 0))
    throw Error(Errc::invalid_argument, "quantum(" + std::to_string(step) + "): the step must be finite and > 0");
  Rounding r;
  r.kind = Rounding::Kind::quantum;
  r.step = step;
  return r;
}

double round_value(double x, const Rounding& rounding) noexcept { return round_number(x, rounding); }
float round_value(float x, const Rounding& rounding) noexcept { return round_number(x, rounding); }

std::optional<std::vector<std::byte>> round_encoded(std::span<const std::byte> bytes, const Rounding& rounding) {
  if (!rounding.active()) return std::nullopt;
  std::vector<std::byte> out(bytes.begin(), bytes.end());
  Rounder r(out, rounding);
  r.value(0);
  if (!r.at_end()) throw Error(Errc::decode, "round_encoded: not an encoded value: bytes after the value");
  if (!r.changed()) return std::nullopt;
  return out;
}

}  // namespace mandala
