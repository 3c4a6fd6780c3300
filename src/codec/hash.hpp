#pragma once
// Domain-separated XXH3-128 hashing and the id formulas (docs/storage-format.md).

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "mandala/id.hpp"

namespace mandala::codec {

/// Every field is length-prefixed (8-byte little-endian) after a tag, so that different splits
/// of the same bytes never give the same digest. Short inputs (ids of calls and small values, the
/// hot path) are gathered in an inline buffer and hashed in one pass; a longer input switches to
/// XXH3's streaming state, which gives the same digest.
class Hasher {
 public:
  explicit Hasher(std::string_view tag);
  ~Hasher();
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;
  Hasher& field(std::span<const std::byte> bytes);
  Hasher& field(std::string_view text);
  Hasher& field(const Id& id);
  Hasher& field(std::uint64_t number);
  /// A field given in pieces (a large value hashed where it lies): its length, then pieces of
  /// that many bytes in all, in order. The same digest as field() of the whole.
  Hasher& field_length(std::uint64_t size);
  Hasher& piece(std::span<const std::byte> bytes);
  [[nodiscard]] Id digest() const;

 private:
  void update(const void* data, std::size_t size);
  struct State;
  static constexpr std::size_t inline_capacity = 240;
  std::unique_ptr<State> m_state;  ///< null until the input outgrows the inline buffer
  std::size_t m_size = 0;
  unsigned char m_buffer[inline_capacity];
};

inline constexpr const char* hash_name = "xxh3-128";

Id content_id(std::span<const std::byte> encoded);
Id atom_hid(const Id& cid);
/// `inputs` are (input name, input id) pairs in any order; they are hashed sorted by name.
/// `semantic`: the op's semantic code version, for code-versioned ops only (ids of other ops
/// do not change).
Id call_id(std::string_view op, std::uint32_t version, std::vector<std::pair<std::string_view, Id>> inputs,
           const Id* semantic = nullptr);
/// The same id from inputs already sorted by name (no copy).
Id call_id_sorted(std::string_view op, std::uint32_t version, std::span<const std::pair<std::string_view, Id>> inputs,
                  const Id* semantic = nullptr);
Id output_hid(const Id& call_hid, std::string_view output_name);

}  // namespace mandala::codec
