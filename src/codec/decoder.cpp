// Validating reader of the canonical encoding, over msgpack-cxx's parser. Limits derived from
// the input size bound what malformed headers can make it allocate.

#include <algorithm>
#include <cstring>

#include <msgpack.hpp>

#include "codec/wire.hpp"
#include "mandala/codec.hpp"

namespace mandala {
namespace {

const msgpack::object& obj(const void* p) { return *static_cast<const msgpack::object*>(p); }

std::uint64_t read_le64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

bool reference_everything(msgpack::type::object_type, std::size_t, void*) { return true; }

[[noreturn]] void throw_truncated(std::size_t n) {
  detail::throw_decode("truncated bytes (" + std::to_string(n) + " bytes)");
}

// Walks the structure of one value without allocating and returns where it ends. msgpack-cxx
// allocates every container when it reads its header, and its limits apply per container, so
// nested headers could each claim as many elements as the input has bytes (500 levels: 12 GB
// for 1 MB). Here the elements claimed by all open containers together must fit the bytes left
// (each takes at least one), which bounds what the real parse allocates by the input size.
std::size_t check_structure(const unsigned char* p, std::size_t n) {
  std::size_t pos = 0;
  std::uint64_t pending = 1;  // values still to read
  auto big_endian = [&](std::size_t width) {
    if (n - pos < width) throw_truncated(n);
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < width; ++i) v = (v << 8) | p[pos + i];
    pos += width;
    return v;
  };
  while (pending > 0) {
    if (pending > n - pos)
      detail::throw_decode("truncated or malformed bytes: containers claim " + std::to_string(pending) +
                           " more values than the " + std::to_string(n - pos) + " bytes left can hold");
    const unsigned c = p[pos++];
    --pending;
    std::uint64_t skip = 0;    // payload bytes
    std::uint64_t values = 0;  // contained values (map: keys and values)
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
      // fixint, nil, boolean
    } else if (c <= 0x8f) {
      values = 2 * (c & 0x0fu);
    } else if (c <= 0x9f) {
      values = c & 0x0fu;
    } else if (c <= 0xbf) {
      skip = c & 0x1fu;
    } else {
      switch (c) {
        case 0xc4:
        case 0xd9: skip = big_endian(1); break;  // bin8, str8
        case 0xc5:
        case 0xda: skip = big_endian(2); break;  // bin16, str16
        case 0xc6:
        case 0xdb: skip = big_endian(4); break;      // bin32, str32
        case 0xc7: skip = big_endian(1) + 1; break;  // ext8: size, type, data
        case 0xc8: skip = big_endian(2) + 1; break;  // ext16
        case 0xc9: skip = big_endian(4) + 1; break;  // ext32
        case 0xcc:
        case 0xd0: skip = 1; break;
        case 0xcd:
        case 0xd1: skip = 2; break;
        case 0xca:
        case 0xce:
        case 0xd2: skip = 4; break;
        case 0xcb:
        case 0xcf:
        case 0xd3: skip = 8; break;
        case 0xd4: skip = 2; break;   // fixext1: type, data
        case 0xd5: skip = 3; break;   // fixext2
        case 0xd6: skip = 5; break;   // fixext4
        case 0xd7: skip = 9; break;   // fixext8
        case 0xd8: skip = 17; break;  // fixext16
        case 0xdc: values = big_endian(2); break;
        case 0xdd: values = big_endian(4); break;
        case 0xde: values = 2 * big_endian(2); break;
        case 0xdf: values = 2 * big_endian(4); break;
        default: detail::throw_decode("malformed bytes (reserved byte 0xc1)");
      }
    }
    if (skip > n - pos) throw_truncated(n);
    pos += static_cast<std::size_t>(skip);
    pending += values;
  }
  return pos;
}

}  // namespace

namespace detail {
void throw_decode(std::string message) { throw Error(Errc::decode, "cannot decode value: " + message); }

void rethrow_with_path(const Error& e, std::string_view segment) {
  // Messages read "cannot decode value: <what> (at $<path>)"; prepend this segment to the path.
  std::string msg = e.what();
  const std::string marker = " (at $";
  auto pos = msg.rfind(marker);
  if (pos == std::string::npos) {
    msg += marker + std::string(segment) + ")";
  } else {
    msg.insert(pos + marker.size(), segment);
  }
  throw Error(e.code(), msg);
}

std::string index_segment(std::size_t i) { return "[" + std::to_string(i) + "]"; }
}  // namespace detail

struct DecodedValue::Impl {
  std::vector<std::byte> owned;  ///< the bytes, when given by value; strings and blocks point into them
  msgpack::object_handle handle;

  void parse(std::span<const std::byte> bytes) {
    const auto n = bytes.size();
    if (n == 0) detail::throw_decode("no bytes");
    const std::size_t end = check_structure(reinterpret_cast<const unsigned char*>(bytes.data()), n);
    if (end != n) detail::throw_decode(std::to_string(n - end) + " trailing bytes after the value");
    const auto lim = n > 0xFFFFFFFFu ? 0xFFFFFFFFu : n;
    // Every element or entry takes at least one byte: larger counts are malformed.
    msgpack::unpack_limit limit(lim, lim / 2, lim, lim, lim, wire::max_depth);
    std::size_t offset = 0;
    try {
      handle =
          msgpack::unpack(reinterpret_cast<const char*>(bytes.data()), n, offset, reference_everything, nullptr, limit);
    } catch (const msgpack::insufficient_bytes&) {
      throw_truncated(n);
    } catch (const std::bad_alloc&) {
      detail::throw_decode("malformed header (allocation failed)");
    } catch (const std::exception& e) {
      detail::throw_decode(std::string("malformed bytes (") + e.what() + ")");
    }
    if (offset != n) detail::throw_decode(std::to_string(n - offset) + " trailing bytes after the value");
  }
};

DecodedValue::DecodedValue(std::span<const std::byte> bytes) : m_impl(std::make_unique<Impl>()) {
  m_impl->parse(bytes);
}

DecodedValue::DecodedValue(std::vector<std::byte>&& bytes) : m_impl(std::make_unique<Impl>()) {
  m_impl->owned = std::move(bytes);
  m_impl->parse(m_impl->owned);
}

DecodedValue::~DecodedValue() = default;
DecodedValue::DecodedValue(DecodedValue&&) noexcept = default;
DecodedValue& DecodedValue::operator=(DecodedValue&&) noexcept = default;

ValueView DecodedValue::root() const { return ValueView(&m_impl->handle.get()); }

Kind ValueView::kind() const {
  const auto& o = obj(m_object);
  switch (o.type) {
    case msgpack::type::NIL: return Kind::nil;
    case msgpack::type::BOOLEAN: return Kind::boolean;
    case msgpack::type::POSITIVE_INTEGER:
    case msgpack::type::NEGATIVE_INTEGER: return Kind::integer;
    case msgpack::type::FLOAT32: return Kind::float32;
    case msgpack::type::FLOAT64: return Kind::float64;
    case msgpack::type::STR: return Kind::string;
    case msgpack::type::BIN: return Kind::binary;
    case msgpack::type::ARRAY:
      if (o.via.array.size == 2 && o.via.array.ptr[0].type == msgpack::type::EXT &&
          o.via.array.ptr[0].via.ext.type() == wire::ext_tag)
        return Kind::tagged;
      return Kind::array;
    case msgpack::type::MAP: return Kind::map;
    case msgpack::type::EXT:
      switch (o.via.ext.type()) {
        case wire::ext_typed_array: return Kind::typed_array;
        case wire::ext_pointer: return Kind::pointer;
        case wire::ext_collection: return Kind::collection;
        case wire::ext_big_integer: return Kind::big_integer;
        case wire::ext_pickle: return Kind::pickle;
        case wire::ext_tag: detail::throw_decode("a type tag (extension type 6) outside a tagged value");
        default: break;
      }
      detail::throw_decode("unknown extension type " + std::to_string(o.via.ext.type()));
  }
  detail::throw_decode("unknown value type");
}

std::string_view to_string(Kind kind) noexcept {
  switch (kind) {
    case Kind::nil: return "nil";
    case Kind::boolean: return "boolean";
    case Kind::integer: return "integer";
    case Kind::float32: return "float32";
    case Kind::float64: return "float64";
    case Kind::string: return "string";
    case Kind::binary: return "binary";
    case Kind::array: return "array";
    case Kind::map: return "map";
    case Kind::typed_array: return "typed array";
    case Kind::pointer: return "value pointer";
    case Kind::collection: return "collection shape";
    case Kind::big_integer: return "big integer";
    case Kind::pickle: return "pickle";
    case Kind::tagged: return "tagged value";
  }
  return "?";
}

void ValueView::fail_expected(std::string_view what) const {
  std::string found(to_string(kind()));
  if (kind() == Kind::pointer) found += " '" + std::string(as_pointer()) + "' (the object itself is not stored)";
  if (kind() == Kind::tagged) found += " '" + std::string(tag()) + "'";
  if (kind() == Kind::pickle) found += " of a Python '" + std::string(as_pickle().type_name) + "'";
  detail::throw_decode("expected " + std::string(what) + ", found " + found);
}

bool ValueView::as_bool() const {
  if (kind() != Kind::boolean) fail_expected("boolean");
  return obj(m_object).via.boolean;
}

bool ValueView::is_negative_integer() const { return obj(m_object).type == msgpack::type::NEGATIVE_INTEGER; }

std::int64_t ValueView::as_int64() const {
  const auto& o = obj(m_object);
  if (o.type == msgpack::type::NEGATIVE_INTEGER) return o.via.i64;
  if (o.type != msgpack::type::POSITIVE_INTEGER) fail_expected("integer");
  if (o.via.u64 > static_cast<std::uint64_t>(INT64_MAX))
    detail::throw_decode("integer " + std::to_string(o.via.u64) + " does not fit int64");
  return static_cast<std::int64_t>(o.via.u64);
}

std::uint64_t ValueView::as_uint64() const {
  const auto& o = obj(m_object);
  if (o.type == msgpack::type::NEGATIVE_INTEGER) detail::throw_decode("negative integer for an unsigned target");
  if (o.type != msgpack::type::POSITIVE_INTEGER) fail_expected("non-negative integer");
  return o.via.u64;
}

float ValueView::as_float32() const {
  if (kind() != Kind::float32) fail_expected("float32");
  return static_cast<float>(obj(m_object).via.f64);
}

double ValueView::as_float64() const {
  if (kind() != Kind::float64) fail_expected("float64");
  return obj(m_object).via.f64;
}

std::string_view ValueView::as_string() const {
  if (kind() != Kind::string) fail_expected("string");
  const auto& o = obj(m_object);
  return {o.via.str.ptr, o.via.str.size};
}

std::span<const std::byte> ValueView::as_binary() const {
  if (kind() != Kind::binary) fail_expected("binary");
  const auto& o = obj(m_object);
  return {reinterpret_cast<const std::byte*>(o.via.bin.ptr), o.via.bin.size};
}

std::size_t ValueView::size() const {
  const auto& o = obj(m_object);
  if (o.type == msgpack::type::ARRAY) return o.via.array.size;
  if (o.type == msgpack::type::MAP) return o.via.map.size;
  fail_expected("array or map");
}

ValueView ValueView::at(std::size_t i) const {
  const auto& o = obj(m_object);
  if (o.type != msgpack::type::ARRAY) fail_expected("array");
  if (i >= o.via.array.size) detail::throw_decode("array index " + std::to_string(i) + " out of range");
  return ValueView(&o.via.array.ptr[i]);
}

ValueView ValueView::key_at(std::size_t i) const {
  const auto& o = obj(m_object);
  if (o.type != msgpack::type::MAP) fail_expected("map");
  if (i >= o.via.map.size) detail::throw_decode("map index out of range");
  return ValueView(&o.via.map.ptr[i].key);
}

ValueView ValueView::value_at(std::size_t i) const {
  const auto& o = obj(m_object);
  if (o.type != msgpack::type::MAP) fail_expected("map");
  if (i >= o.via.map.size) detail::throw_decode("map index out of range");
  return ValueView(&o.via.map.ptr[i].val);
}

std::optional<ValueView> ValueView::find(std::string_view key) const {
  const auto& o = obj(m_object);
  if (o.type != msgpack::type::MAP) fail_expected("map");
  for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
    const auto& k = o.via.map.ptr[i].key;
    if (k.type == msgpack::type::STR && std::string_view(k.via.str.ptr, k.via.str.size) == key)
      return ValueView(&o.via.map.ptr[i].val);
  }
  return std::nullopt;
}

TypedArrayView ValueView::as_typed_array() const {
  if (kind() != Kind::typed_array) fail_expected("typed array");
  const auto& ext = obj(m_object).via.ext;
  const char* p = ext.data();
  const std::size_t n = ext.size;  // data bytes, without the type byte
  if (n < 2) detail::throw_decode("typed array header truncated");
  const auto code = static_cast<unsigned char>(p[0]);
  if (code < 1 || code > static_cast<unsigned char>(Dtype::c128)) detail::throw_decode("typed array: unknown dtype");
  TypedArrayView out{static_cast<Dtype>(code), {}, {}};
  const std::size_t rank = static_cast<unsigned char>(p[1]);
  if (n < 2 + 8 * rank) detail::throw_decode("typed array shape truncated");
  std::uint64_t count = 1;
  for (std::size_t d = 0; d < rank; ++d) {
    const std::uint64_t dim = read_le64(p + 2 + 8 * d);
    if (dim != 0 && count > UINT64_MAX / dim) detail::throw_decode("typed array shape overflows");
    count *= dim;
    out.shape.push_back(dim);
  }
  const std::size_t data_bytes = n - 2 - 8 * rank;
  const std::size_t elem = dtype_size(out.dtype);
  if (count > data_bytes / elem || count * elem != data_bytes)
    detail::throw_decode("typed array: shape does not match its " + std::to_string(data_bytes) + " data bytes");
  out.data = {reinterpret_cast<const std::byte*>(p + 2 + 8 * rank), data_bytes};
  return out;
}

std::string_view ValueView::as_pointer() const {
  const auto& o = obj(m_object);
  if (o.type != msgpack::type::EXT || o.via.ext.type() != wire::ext_pointer) fail_expected("value pointer");
  return {o.via.ext.data(), o.via.ext.size};
}

BigIntegerView ValueView::as_big_integer() const {
  if (kind() != Kind::big_integer) fail_expected("big integer");
  const auto& ext = obj(m_object).via.ext;
  const auto* p = reinterpret_cast<const std::byte*>(ext.data());
  const std::size_t n = ext.size;
  // One form per value: a sign byte, then a magnitude too large for the 64-bit integer forms
  // and without leading zero bytes.
  if (n < 2 || (p[0] != std::byte{0} && p[0] != std::byte{1}) || p[1] == std::byte{0})
    detail::throw_decode("malformed big integer (extension type 4)");
  const bool negative = p[0] == std::byte{1};
  const std::span<const std::byte> magnitude(p + 1, n - 1);
  bool fits = magnitude.size() < 8;
  if (magnitude.size() == 8) {
    // Negative: a magnitude up to 2^63 fits int64; non-negative: every 8-byte one fits uint64.
    const bool is_power = magnitude[0] == std::byte{0x80} && std::all_of(magnitude.begin() + 1, magnitude.end(),
                                                                         [](std::byte b) { return b == std::byte{0}; });
    fits = !negative || magnitude[0] < std::byte{0x80} || is_power;
  }
  if (fits) detail::throw_decode("malformed big integer (extension type 4): the value fits a 64-bit integer form");
  return {negative, magnitude};
}

std::string to_string(const BigIntegerView& v) {
  // Repeated division of the magnitude by 10^9, nine decimal digits at a time.
  const std::size_t n = v.magnitude.size();
  std::vector<std::uint32_t> digits((n + 3) / 4, 0);  // base 2^32, most significant first
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t from_end = n - 1 - i;  // byte position counted from the least significant
    digits[digits.size() - 1 - from_end / 4] |= std::to_integer<std::uint32_t>(v.magnitude[i]) << (8 * (from_end % 4));
  }
  std::string out;
  auto nonzero = [&] { return std::any_of(digits.begin(), digits.end(), [](std::uint32_t d) { return d != 0; }); };
  while (nonzero()) {
    std::uint64_t rem = 0;
    for (auto& d : digits) {
      const std::uint64_t cur = (rem << 32) | d;
      d = static_cast<std::uint32_t>(cur / 1000000000u);
      rem = cur % 1000000000u;
    }
    const bool last = !nonzero();
    for (int k = 0; k < 9 && (!last || rem != 0); ++k) {
      out.push_back(static_cast<char>('0' + rem % 10));
      rem /= 10;
    }
  }
  if (out.empty()) out = "0";
  if (v.negative) out.push_back('-');
  return {out.rbegin(), out.rend()};
}

PickleView ValueView::as_pickle() const {
  if (kind() != Kind::pickle) fail_expected("pickle");
  const auto& ext = obj(m_object).via.ext;
  const char* p = ext.data();
  const std::size_t n = ext.size;
  if (n < 4) detail::throw_decode("malformed pickle (extension type 5): no type name length");
  std::uint32_t len = 0;
  for (std::size_t b = 4; b-- > 0;) len = (len << 8) | static_cast<unsigned char>(p[b]);
  if (n - 4 < len) detail::throw_decode("malformed pickle (extension type 5): type name truncated");
  return {std::string_view(p + 4, len), {reinterpret_cast<const std::byte*>(p + 4 + len), n - 4 - len}};
}

std::string_view ValueView::tag() const {
  if (kind() != Kind::tagged) fail_expected("tagged value");
  const auto& ext = obj(m_object).via.array.ptr[0].via.ext;
  if (ext.size == 0) detail::throw_decode("malformed tagged value: empty tag");
  return {ext.data(), ext.size};
}

ValueView ValueView::tagged_value() const {
  (void)tag();
  return ValueView(&obj(m_object).via.array.ptr[1]);
}

CollectionView ValueView::as_collection() const {
  if (kind() != Kind::collection) fail_expected("collection shape");
  const auto& ext = obj(m_object).via.ext;
  const char* p = ext.data();
  const std::size_t n = ext.size;
  if (n < 1) detail::throw_decode("collection shape: no kind byte");
  CollectionView out;
  const auto code = static_cast<unsigned char>(p[0]);
  if (code == static_cast<unsigned char>(CollectionKind::list)) {
    if ((n - 1) % 16 != 0) detail::throw_decode("collection shape: list body is not a whole number of ids");
    out.kind = CollectionKind::list;
    out.cids.resize((n - 1) / 16);
    for (std::size_t i = 0; i < out.cids.size(); ++i) std::memcpy(out.cids[i].bytes.data(), p + 1 + 16 * i, 16);
    return out;
  }
  if (code != static_cast<unsigned char>(CollectionKind::dict))
    detail::throw_decode("collection shape: unknown kind " + std::to_string(code));
  out.kind = CollectionKind::dict;
  std::size_t pos = 1;
  while (pos < n) {
    if (n - pos < 4) detail::throw_decode("collection shape: dict key length truncated");
    std::uint32_t len = 0;
    for (std::size_t b = 4; b-- > 0;) len = (len << 8) | static_cast<unsigned char>(p[pos + b]);
    pos += 4;
    if (n - pos < len || n - pos - len < 16) detail::throw_decode("collection shape: dict entry truncated");
    std::string_view key(p + pos, len);
    if (!out.keys.empty() && !(out.keys.back() < key))
      detail::throw_decode("collection shape: dict keys are not sorted and unique");
    out.keys.push_back(key);
    pos += len;
    Id id;
    std::memcpy(id.bytes.data(), p + pos, 16);
    out.cids.push_back(id);
    pos += 16;
  }
  return out;
}

}  // namespace mandala
