#pragma once
// Tolerant inputs: floating-point values rounded before they become a call's input, so that
// values differing only by numerical noise (another machine, another library version) are the
// same call. Opt-in per parameter (mandala::rounded, OpOptions::rounding_of) or per op
// (OpOptions::rounding); never the default. The rounded value is the call's input: the op's
// function receives it, the stored call shows it, and the call's ids follow from it
// (docs/storage-format.md, section 1.7).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "mandala/export.hpp"

namespace mandala {

/// How floating-point values are rounded (docs/storage-format.md, 1.7).
struct Rounding {
  enum class Kind : std::uint8_t {
    none,                ///< values as given (the default)
    significant_digits,  ///< to `digits` significant decimal digits
    quantum,             ///< to the nearest multiple of `step`, ties to even
  };
  Kind kind = Kind::none;
  int digits = 0;   ///< significant_digits: 1 to 17
  double step = 0;  ///< quantum: finite and > 0
  [[nodiscard]] bool active() const noexcept { return kind != Kind::none; }
  friend bool operator==(const Rounding&, const Rounding&) = default;
};

/// Rounding to `digits` significant decimal digits (1 to 17; Errc::invalid_argument otherwise).
[[nodiscard]] MANDALA_API Rounding significant_digits(int digits);
/// Rounding to the nearest multiple of `step` (finite and > 0; Errc::invalid_argument otherwise).
[[nodiscard]] MANDALA_API Rounding quantum(double step);

/// One value rounded: NaN and infinities unchanged, a zero result is +0.0.
[[nodiscard]] MANDALA_API double round_value(double x, const Rounding& rounding) noexcept;
[[nodiscard]] MANDALA_API float round_value(float x, const Rounding& rounding) noexcept;

/// An encoded value (docs/storage-format.md, section 1) with every floating-point number in it
/// rounded: float 32 and float 64 scalars at any depth (array elements, map values; map keys are
/// left as they are) and the elements of f32 / f64 typed arrays. nullopt when no number changed.
/// Errc::decode when the bytes are not one well-formed value.
[[nodiscard]] MANDALA_API std::optional<std::vector<std::byte>> round_encoded(std::span<const std::byte> bytes,
                                                                              const Rounding& rounding);

}  // namespace mandala
