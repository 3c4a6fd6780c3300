// Canonical MessagePack writer (docs/storage-format.md). Integers, strings, binaries and
// container headers go through msgpack-cxx's packer (which picks the smallest form); floats are
// written here because the packer turns integral doubles into integers, and the canonical form
// keeps `1`, `1.0f` and `1.0` distinct.

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>

#include <msgpack.hpp>

#include "codec/hash.hpp"
#include "codec/wire.hpp"
#include "mandala/codec.hpp"

namespace mandala {
namespace {

struct ByteSink {
  std::vector<std::byte>* out;
  void write(const char* data, std::size_t size) {
    const auto* p = reinterpret_cast<const std::byte*>(data);
    out->insert(out->end(), p, p + size);
  }
};

msgpack::packer<ByteSink> packer_for(std::vector<std::byte>& out, ByteSink& sink) {
  sink.out = &out;
  return msgpack::packer<ByteSink>(sink);
}

template <class U>
void put_big_endian(std::vector<std::byte>& out, U bits) {
  for (int shift = static_cast<int>(sizeof(U) * 8) - 8; shift >= 0; shift -= 8)
    out.push_back(static_cast<std::byte>((bits >> shift) & 0xFF));
}

void put_le64(std::vector<std::byte>& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::byte>((v >> (8 * i)) & 0xFF));
}

// Typed blocks follow the scalar rule: every NaN is written as the one canonical NaN. A NaN is
// an all-ones exponent with a non-zero mantissa: its bits without the sign are above those of
// infinity, i.e. `infinity - bits` wraps around and sets the top bit. The test runs over blocks
// of a fixed number of elements (so compilers vectorize it, with plain SSE2 operations); NaNs
// are replaced only where a block has one.
template <class Bits>
void canonicalize_nans(std::byte* data, std::size_t size_bytes, Bits infinity, Bits canonical) {
  constexpr Bits no_sign = static_cast<Bits>(static_cast<Bits>(~Bits{0}) >> 1);
  constexpr int top = static_cast<int>(sizeof(Bits) * 8 - 1);
  constexpr std::size_t block = 64;
  const auto bits_at = [&](std::size_t i) {
    Bits b;
    std::memcpy(&b, data + i * sizeof b, sizeof b);
    return b;
  };
  const auto is_nan = [&](Bits b) {
    return static_cast<Bits>(static_cast<Bits>(infinity - static_cast<Bits>(b & no_sign)) >> top);
  };
  const auto fix = [&](std::size_t from, std::size_t to) {
    for (std::size_t i = from; i < to; ++i)
      if (is_nan(bits_at(i)) != 0) std::memcpy(data + i * sizeof(Bits), &canonical, sizeof canonical);
  };
  const std::size_t n = size_bytes / sizeof(Bits);
  std::size_t i = 0;
  for (; i + block <= n; i += block) {
    Bits any = 0;
    for (std::size_t j = 0; j < block; ++j) any = static_cast<Bits>(any | is_nan(bits_at(i + j)));
    if (any != 0) fix(i, i + block);
  }
  fix(i, n);
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14
#endif

/// Room of at least this size is faulted in at once (MADV_POPULATE_WRITE): faulting it in 4 KiB
/// at a time as the bytes are copied was the larger share of encoding a large array. (Huge pages,
/// MADV_HUGEPAGE, were measured and made it several times slower here: the kernel compacts
/// memory to find them.)
constexpr std::size_t prefault_min_bytes = std::size_t{8} << 20;

/// Faults in the pages of [begin, end) at once (advice only: where the kernel refuses it, pages
/// are faulted in as they are written).
void populate(const std::byte* begin, const std::byte* end) {
  constexpr std::uintptr_t page = 4096;
  const auto first = (reinterpret_cast<std::uintptr_t>(begin) + page - 1) & ~(page - 1);
  const auto last = reinterpret_cast<std::uintptr_t>(end) & ~(page - 1);
  if (last > first) (void)::madvise(reinterpret_cast<void*>(first), last - first, MADV_POPULATE_WRITE);
}

/// Makes room for `extra` more bytes, growing the buffer at least geometrically (one exact
/// reservation per typed block made encoding many blocks quadratic), and faults in a large
/// room in one go. A large buffer that must grow is copied into memory faulted in beforehand.
void reserve_more(std::vector<std::byte>& out, std::size_t extra) {
  const std::size_t needed = out.size() + extra;
  if (needed > out.capacity()) {
    const std::size_t capacity = std::max(needed, out.capacity() * 2);
    if (out.size() < prefault_min_bytes) {
      out.reserve(capacity);
    } else {
      std::vector<std::byte> bigger;
      bigger.reserve(capacity);
      populate(bigger.data(), bigger.data() + out.size());
      bigger.insert(bigger.end(), out.begin(), out.end());
      out.swap(bigger);
    }
  }
  if (extra >= prefault_min_bytes) populate(out.data() + out.size(), out.data() + needed);
}

/// Appends a typed block's element bytes in pieces that stay in the processor's cache, each
/// copied and then checked for NaNs (f32 / f64) in the same pass over memory.
void append_elements(std::vector<std::byte>& out, Dtype dtype, const std::byte* data, std::size_t size_bytes) {
  constexpr std::size_t piece = std::size_t{64} << 10;  // a multiple of every element size
  for (std::size_t offset = 0; offset < size_bytes; offset += piece) {
    const std::size_t n = std::min(piece, size_bytes - offset);
    const std::size_t at = out.size();
    out.insert(out.end(), data + offset, data + offset + n);
    if (dtype == Dtype::f32 || dtype == Dtype::c64)
      canonicalize_nans<std::uint32_t>(out.data() + at, n, 0x7f800000u, wire::canonical_nan32);
    else if (dtype == Dtype::f64 || dtype == Dtype::c128)
      canonicalize_nans<std::uint64_t>(out.data() + at, n, 0x7ff0000000000000ull, wire::canonical_nan64);
    else if (dtype == Dtype::f16)
      canonicalize_nans<std::uint16_t>(out.data() + at, n, std::uint16_t{0x7c00u}, wire::canonical_nan16);
    else if (dtype == Dtype::boolean)  // every true element is the byte 1
      for (std::size_t j = at; j < out.size(); ++j)
        if (out[j] != std::byte{0}) out[j] = std::byte{1};
  }
}

// MessagePack lengths and counts are 32-bit: larger ones must fail rather than wrap around.
std::uint32_t checked_length(std::size_t n, const char* what) {
  if (n > 0xFFFFFFFFull)
    throw Error(Errc::invalid_argument, std::string(what) + " of " + std::to_string(n) +
                                            " elements or bytes: larger than 2^32 - 1 is not supported");
  return static_cast<std::uint32_t>(n);
}

}  // namespace

void Encoder::nil() { m_out.push_back(std::byte{0xc0}); }
void Encoder::boolean(bool v) { m_out.push_back(std::byte{static_cast<unsigned char>(v ? 0xc3 : 0xc2)}); }

void Encoder::integer(std::int64_t v) {
  ByteSink sink{};
  packer_for(m_out, sink).pack_int64(v);
}

void Encoder::unsigned_integer(std::uint64_t v) {
  ByteSink sink{};
  packer_for(m_out, sink).pack_uint64(v);
}

void Encoder::float32(float v) {
  std::uint32_t bits = std::isnan(v) ? wire::canonical_nan32 : std::bit_cast<std::uint32_t>(v);
  m_out.push_back(std::byte{0xca});
  put_big_endian(m_out, bits);
}

void Encoder::float64(double v) {
  std::uint64_t bits = std::isnan(v) ? wire::canonical_nan64 : std::bit_cast<std::uint64_t>(v);
  m_out.push_back(std::byte{0xcb});
  put_big_endian(m_out, bits);
}

void Encoder::string(std::string_view v) {
  ByteSink sink{};
  auto p = packer_for(m_out, sink);
  const std::uint32_t n = checked_length(v.size(), "string");
  p.pack_str(n);
  p.pack_str_body(v.data(), n);
}

void Encoder::binary(std::span<const std::byte> v) {
  ByteSink sink{};
  auto p = packer_for(m_out, sink);
  const std::uint32_t n = checked_length(v.size(), "binary");
  p.pack_bin(n);
  p.pack_bin_body(reinterpret_cast<const char*>(v.data()), n);
}

void Encoder::array_header(std::size_t n) {
  ByteSink sink{};
  packer_for(m_out, sink).pack_array(checked_length(n, "array"));
}

void Encoder::map_header(std::size_t n) {
  ByteSink sink{};
  packer_for(m_out, sink).pack_map(checked_length(n, "map"));
}

namespace {
// The bytes of a typed block before its elements (ext header, dtype, rank, dims), after the
// checks the decoder makes, so that everything written can be read back.
// Reserve::whole makes room for the elements too.
enum class Reserve { header, whole };
void typed_array_header(std::vector<std::byte>& out, Dtype dtype, std::span<const std::uint64_t> shape,
                        std::size_t size_bytes, Reserve reserve) {
  if (shape.size() > wire::max_rank) throw Error(Errc::invalid_argument, "typed array: rank above 255");
  const std::size_t elem = dtype_size(dtype);
  if (elem == 0) throw Error(Errc::invalid_argument, "typed array: unknown dtype");
  // The same checks as the decoder's, so that everything written can be read back.
  std::uint64_t count = 1;
  for (auto d : shape) {
    if (d != 0 && count > UINT64_MAX / d) throw Error(Errc::invalid_argument, "typed array: shape overflows");
    count *= d;
  }
  if (count > size_bytes / elem || count * elem != size_bytes)
    throw Error(Errc::invalid_argument, "typed array: shape does not match the data size");
  const std::size_t body = 2 + 8 * shape.size() + size_bytes;
  if (body > 0xFFFFFFFFull) throw Error(Errc::invalid_argument, "typed array: larger than 4 GiB is not supported");
  if (reserve == Reserve::whole) reserve_more(out, body + 6);
  ByteSink sink{};
  packer_for(out, sink).pack_ext(body, wire::ext_typed_array);
  out.push_back(static_cast<std::byte>(dtype));
  out.push_back(static_cast<std::byte>(shape.size()));
  for (auto d : shape) put_le64(out, d);
}

// Whether a piece of a block has an element that canonicalization changes (a NaN, a bool
// byte other than 0 and 1), with the block test of canonicalize_nans.
template <class Bits>
bool has_nan(const std::byte* data, std::size_t size_bytes, Bits infinity) {
  constexpr Bits no_sign = static_cast<Bits>(static_cast<Bits>(~Bits{0}) >> 1);
  constexpr int top = static_cast<int>(sizeof(Bits) * 8 - 1);
  const std::size_t n = size_bytes / sizeof(Bits);
  Bits any = 0;
  for (std::size_t i = 0; i < n; ++i) {
    Bits b;
    std::memcpy(&b, data + i * sizeof b, sizeof b);
    any =
        static_cast<Bits>(any | static_cast<Bits>(static_cast<Bits>(infinity - static_cast<Bits>(b & no_sign)) >> top));
  }
  return any != 0;
}

bool needs_canonical(Dtype dtype, const std::byte* data, std::size_t size_bytes) {
  switch (dtype) {
    case Dtype::f32:
    case Dtype::c64: return has_nan<std::uint32_t>(data, size_bytes, 0x7f800000u);
    case Dtype::f64:
    case Dtype::c128: return has_nan<std::uint64_t>(data, size_bytes, 0x7ff0000000000000ull);
    case Dtype::f16: return has_nan<std::uint16_t>(data, size_bytes, std::uint16_t{0x7c00u});
    case Dtype::boolean: {
      unsigned char any = 0;
      for (std::size_t i = 0; i < size_bytes; ++i) any |= static_cast<unsigned char>(data[i]);
      return (any & 0xfe) != 0;
    }
    default: return false;
  }
}
}  // namespace

void Encoder::typed_array(Dtype dtype, std::span<const std::uint64_t> shape, const void* data, std::size_t size_bytes) {
  typed_array_header(m_out, dtype, shape, size_bytes, Reserve::whole);
  append_elements(m_out, dtype, static_cast<const std::byte*>(data), size_bytes);
}

Id typed_array_content_id(Dtype dtype, std::span<const std::uint64_t> shape, const void* data, std::size_t size_bytes) {
  // content_id = H("value", encoded bytes): the header, then the elements piece by piece; a
  // piece with an element to make canonical is hashed from a canonical copy of that piece only.
  std::vector<std::byte> header;
  typed_array_header(header, dtype, shape, size_bytes, Reserve::header);
  codec::Hasher h("value");
  h.field_length(header.size() + size_bytes).piece(header);
  const auto* bytes = static_cast<const std::byte*>(data);
  constexpr std::size_t piece = std::size_t{64} << 10;  // a multiple of every element size
  std::vector<std::byte> canonical;
  for (std::size_t offset = 0; offset < size_bytes; offset += piece) {
    const std::size_t n = std::min(piece, size_bytes - offset);
    if (!needs_canonical(dtype, bytes + offset, n)) {
      h.piece(std::span(bytes + offset, n));
      continue;
    }
    canonical.clear();
    append_elements(canonical, dtype, bytes + offset, n);
    h.piece(canonical);
  }
  return h.digest();
}

void Encoder::pointer(std::string_view name) {
  ByteSink sink{};
  auto p = packer_for(m_out, sink);
  const std::uint32_t n = checked_length(name.size(), "value pointer name");
  p.pack_ext(n, wire::ext_pointer);
  p.pack_ext_body(name.data(), n);
}

void Encoder::big_integer(bool negative, std::span<const std::byte> magnitude) {
  std::size_t first = 0;
  while (first < magnitude.size() && magnitude[first] == std::byte{0}) ++first;
  magnitude = magnitude.subspan(first);
  if (magnitude.size() <= 8) {
    std::uint64_t m = 0;
    for (const auto b : magnitude) m = (m << 8) | std::to_integer<std::uint64_t>(b);
    if (!negative || m == 0) return unsigned_integer(m);
    if (m <= std::uint64_t{1} << 63) return integer(static_cast<std::int64_t>(~m + 1));  // two's complement of -m
  }
  const std::uint32_t n = checked_length(magnitude.size() + 1, "big integer");
  ByteSink sink{};
  auto p = packer_for(m_out, sink);
  p.pack_ext(n, wire::ext_big_integer);
  m_out.push_back(std::byte{negative ? std::uint8_t{1} : std::uint8_t{0}});
  m_out.insert(m_out.end(), magnitude.begin(), magnitude.end());
}

void Encoder::pickle(std::string_view type_name, std::span<const std::byte> data) {
  const std::uint32_t name_size = checked_length(type_name.size(), "pickle type name");
  const std::uint32_t n = checked_length(4 + std::size_t{name_size} + data.size(), "pickle");
  reserve_more(m_out, std::size_t{n} + 6);
  ByteSink sink{};
  auto p = packer_for(m_out, sink);
  p.pack_ext(n, wire::ext_pickle);
  for (int b = 0; b < 4; ++b) m_out.push_back(static_cast<std::byte>((name_size >> (8 * b)) & 0xffu));
  const auto* name = reinterpret_cast<const std::byte*>(type_name.data());
  m_out.insert(m_out.end(), name, name + type_name.size());
  m_out.insert(m_out.end(), data.begin(), data.end());
}

void Encoder::tag(std::string_view tag) {
  if (tag.empty()) throw Error(Errc::invalid_argument, "a tagged value needs a non-empty tag");
  array_header(2);
  ByteSink sink{};
  auto p = packer_for(m_out, sink);
  const std::uint32_t n = checked_length(tag.size(), "tag");
  p.pack_ext(n, wire::ext_tag);
  p.pack_ext_body(tag.data(), n);
}

void Encoder::collection(CollectionKind kind, std::span<const std::string> keys, std::span<const Id> cids) {
  std::vector<std::byte> body;
  body.push_back(static_cast<std::byte>(kind));
  if (kind == CollectionKind::list) {
    if (!keys.empty()) throw Error(Errc::invalid_argument, "collection shape: a list has no keys");
    body.reserve(1 + 16 * cids.size());
    for (const auto& id : cids) {
      const auto* b = reinterpret_cast<const std::byte*>(id.bytes.data());
      body.insert(body.end(), b, b + id.bytes.size());
    }
  } else if (kind == CollectionKind::dict) {
    if (keys.size() != cids.size())
      throw Error(Errc::invalid_argument, "collection shape: a dict needs one key per element");
    std::vector<std::size_t> order(keys.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return keys[a] < keys[b]; });
    for (std::size_t j = 0; j < order.size(); ++j) {
      const std::string& key = keys[order[j]];
      if (j > 0 && key == keys[order[j - 1]])
        throw Error(Errc::invalid_argument, "collection shape: dict key '" + key + "' appears twice");
      const std::uint32_t n = checked_length(key.size(), "dict key");
      for (int b = 0; b < 4; ++b) body.push_back(static_cast<std::byte>((n >> (8 * b)) & 0xffu));
      const auto* k = reinterpret_cast<const std::byte*>(key.data());
      body.insert(body.end(), k, k + key.size());
      const auto* c = reinterpret_cast<const std::byte*>(cids[order[j]].bytes.data());
      body.insert(body.end(), c, c + 16);
    }
  } else {
    throw Error(Errc::invalid_argument, "collection shape: unknown kind");
  }
  ByteSink sink{};
  auto p = packer_for(m_out, sink);
  const std::uint32_t n = checked_length(body.size(), "collection shape");
  p.pack_ext(n, wire::ext_collection);
  p.pack_ext_body(reinterpret_cast<const char*>(body.data()), n);
}

void Encoder::reserve(std::size_t more) { reserve_more(m_out, more); }

void Encoder::raw(std::span<const std::byte> encoded) { m_out.insert(m_out.end(), encoded.begin(), encoded.end()); }

void Encoder::map_sorted(std::vector<std::pair<std::vector<std::byte>, std::vector<std::byte>>> entries) {
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (std::size_t i = 1; i < entries.size(); ++i)
    if (entries[i].first == entries[i - 1].first)
      throw Error(Errc::invalid_argument, "map with two keys of the same encoding");
  map_header(entries.size());
  for (const auto& [k, v] : entries) {
    raw(k);
    raw(v);
  }
}

void Encoder::array_sorted(std::vector<std::vector<std::byte>> elements) {
  std::sort(elements.begin(), elements.end());
  array_header(elements.size());
  for (const auto& e : elements) raw(e);
}

std::string_view to_string(Dtype dtype) noexcept {
  switch (dtype) {
    case Dtype::i8: return "i8";
    case Dtype::i16: return "i16";
    case Dtype::i32: return "i32";
    case Dtype::i64: return "i64";
    case Dtype::u8: return "u8";
    case Dtype::u16: return "u16";
    case Dtype::u32: return "u32";
    case Dtype::u64: return "u64";
    case Dtype::f32: return "f32";
    case Dtype::f64: return "f64";
    case Dtype::boolean: return "bool";
    case Dtype::f16: return "f16";
    case Dtype::c64: return "c64";
    case Dtype::c128: return "c128";
  }
  return "?";
}

std::size_t dtype_size(Dtype dtype) noexcept {
  switch (dtype) {
    case Dtype::i8:
    case Dtype::u8:
    case Dtype::boolean: return 1;
    case Dtype::i16:
    case Dtype::u16:
    case Dtype::f16: return 2;
    case Dtype::i32:
    case Dtype::u32:
    case Dtype::f32: return 4;
    case Dtype::i64:
    case Dtype::u64:
    case Dtype::f64:
    case Dtype::c64: return 8;
    case Dtype::c128: return 16;
  }
  return 0;
}

}  // namespace mandala
