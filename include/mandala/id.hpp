#pragma once
// 128-bit content and history ids.

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "mandala/export.hpp"

namespace mandala {

/// A 128-bit id (XXH3-128 digest, see docs/storage-format.md). Prints as 32 lowercase hex chars.
struct MANDALA_API Id {
  std::array<std::uint8_t, 16> bytes{};

  [[nodiscard]] std::string hex() const;
  /// Parses 32 hex chars (either case); nullopt on anything else.
  [[nodiscard]] static std::optional<Id> from_hex(std::string_view text);
  [[nodiscard]] bool is_zero() const noexcept;

  friend auto operator<=>(const Id&, const Id&) = default;
  friend bool operator==(const Id&, const Id&) = default;
};

}  // namespace mandala

template <>
struct std::hash<mandala::Id> {
  std::size_t operator()(const mandala::Id& id) const noexcept {
    std::size_t h;  // ids are uniformly distributed: any 8 bytes are a good hash
    std::memcpy(&h, id.bytes.data(), sizeof h);
    return h;
  }
};
