#include "codec/hash.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <new>

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "mandala/detail/core.hpp"
#include "mandala/error.hpp"

namespace mandala::codec {

struct Hasher::State {
  XXH3_state_t xxh;
};

Hasher::Hasher(std::string_view tag) { field(tag); }

Hasher::~Hasher() = default;

void Hasher::update(const void* data, std::size_t size) {
  if (!m_state && m_size + size <= inline_capacity) {
    if (size != 0) std::memcpy(m_buffer + m_size, data, size);
    m_size += size;
    return;
  }
  if (!m_state) {
    m_state = std::make_unique<State>();
    if (XXH3_128bits_reset(&m_state->xxh) != XXH_OK) throw std::bad_alloc();
    XXH3_128bits_update(&m_state->xxh, m_buffer, m_size);
  }
  XXH3_128bits_update(&m_state->xxh, data, size);
}

Hasher& Hasher::field(std::span<const std::byte> bytes) {
  static_assert(std::endian::native == std::endian::little, "the length prefix is copied as it is in memory");
  const auto n = static_cast<std::uint64_t>(bytes.size());
  if (!m_state && n <= inline_capacity - sizeof n && m_size <= inline_capacity - sizeof n - n) {
    // The hot path (ids, small values): append prefix and bytes to the inline buffer.
    std::memcpy(m_buffer + m_size, &n, sizeof n);
    if (n != 0) std::memcpy(m_buffer + m_size + sizeof n, bytes.data(), n);
    m_size += sizeof n + n;
    return *this;
  }
  update(&n, sizeof n);
  update(bytes.data(), bytes.size());
  return *this;
}

Hasher& Hasher::field(std::string_view text) { return field(std::as_bytes(std::span(text.data(), text.size()))); }

Hasher& Hasher::field(const Id& id) { return field(std::as_bytes(std::span(id.bytes))); }

Hasher& Hasher::field(std::uint64_t number) {
  std::byte le[8];
  std::memcpy(le, &number, sizeof le);  // little-endian host (see field(span))
  return field(std::span<const std::byte>(le));
}

Hasher& Hasher::field_length(std::uint64_t size) {
  update(&size, sizeof size);  // little-endian host (see field(span))
  return *this;
}

Hasher& Hasher::piece(std::span<const std::byte> bytes) {
  update(bytes.data(), bytes.size());
  return *this;
}

Id Hasher::digest() const {
  const XXH128_hash_t h = m_state ? XXH3_128bits_digest(&m_state->xxh) : XXH3_128bits(m_buffer, m_size);
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, h);
  Id id;
  std::copy(std::begin(canonical.digest), std::end(canonical.digest), id.bytes.begin());
  return id;
}

Id content_id(std::span<const std::byte> encoded) { return Hasher("value").field(encoded).digest(); }

Id atom_hid(const Id& cid) { return Hasher("atom").field(cid).digest(); }

Id call_id(std::string_view op, std::uint32_t version, std::vector<std::pair<std::string_view, Id>> inputs,
           const Id* semantic) {
  std::sort(inputs.begin(), inputs.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return call_id_sorted(op, version, inputs, semantic);
}

Id call_id_sorted(std::string_view op, std::uint32_t version, std::span<const std::pair<std::string_view, Id>> inputs,
                  const Id* semantic) {
  Hasher h("call");
  h.field(op).field(std::uint64_t{version});
  // A 16-byte field where other calls have the 8-byte count: the two forms cannot collide.
  if (semantic != nullptr) h.field(*semantic);
  h.field(std::uint64_t{inputs.size()});
  for (const auto& [name, id] : inputs) h.field(name).field(id);
  return h.digest();
}

Id output_hid(const Id& call_hid, std::string_view output_name) {
  return Hasher("output").field(call_hid).field(output_name).digest();
}

}  // namespace mandala::codec

namespace mandala::detail {
Id content_id(std::span<const std::byte> encoded) { return codec::content_id(encoded); }
}  // namespace mandala::detail
