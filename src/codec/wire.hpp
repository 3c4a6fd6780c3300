#pragma once
// Constants of the canonical encoding (docs/storage-format.md).

#include <cstdint>

namespace mandala::wire {
inline constexpr std::int8_t ext_typed_array = 1;
inline constexpr std::int8_t ext_pointer = 2;
inline constexpr std::int8_t ext_collection = 3;
inline constexpr std::int8_t ext_big_integer = 4;
inline constexpr std::int8_t ext_pickle = 5;
inline constexpr std::int8_t ext_tag = 6;
inline constexpr std::size_t max_rank = 255;
inline constexpr std::size_t max_depth = 512;
inline constexpr std::uint32_t canonical_nan32 = 0x7fc00000u;
inline constexpr std::uint64_t canonical_nan64 = 0x7ff8000000000000ull;
inline constexpr std::uint16_t canonical_nan16 = 0x7e00u;
/// Identifies the encoding in a store's meta table.
inline constexpr const char* encoding_name = "msgpack-canonical-2";
/// The encoding this one extends (its values read the same): stores recording it are upgraded
/// in place by recording encoding_name, and read as they are when opened read-only.
inline constexpr const char* previous_encoding_name = "msgpack-canonical-1";
}  // namespace mandala::wire
