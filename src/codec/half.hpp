#pragma once
// IEEE-754 binary16 (the f16 elements of typed arrays) to float, for display.

#include <bit>
#include <cstdint>

namespace mandala::codec {

/// One f16 element as stored (its bit pattern), a type of its own for element-wise templates.
struct Half {
  std::uint16_t bits;
};

/// The float of a binary16 bit pattern (exact: every half is a float).
inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu;
  std::uint32_t mantissa = h & 0x3ffu;
  std::uint32_t bits = 0;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);  // infinity, NaN
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
  } else if (mantissa != 0) {
    // Subnormal: normalize it.
    std::uint32_t e = 113;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --e;
    }
    bits = sign | (e << 23) | ((mantissa & 0x3ffu) << 13);
  } else {
    bits = sign;  // zero
  }
  return std::bit_cast<float>(bits);
}

inline float half_to_float(Half h) { return half_to_float(h.bits); }

}  // namespace mandala::codec
