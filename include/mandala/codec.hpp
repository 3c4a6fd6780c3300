#pragma once
// Canonical value encoding: the byte form every stored value takes, and the Codec<T> trait that
// maps C++ types onto it. The form is MessagePack with canonical rules (docs/storage-format.md):
// smallest integer form, floats keep their width, map and set entries sorted by encoded bytes,
// contiguous arithmetic arrays as one typed block (ext type 1), value pointers as ext type 2,
// collection shapes as ext type 3, integers beyond 64 bits as ext type 4, pickled Python
// objects as ext type 5 and tagged values ([ext type 6 tag, value]) for the types of other
// languages (a Python DataFrame, dataclass, complex number).

#include <array>
#include <bit>
#include <complex>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "mandala/error.hpp"
#include "mandala/export.hpp"
#include "mandala/id.hpp"

namespace mandala {

static_assert(std::endian::native == std::endian::little,
              "mandala's typed arrays are little-endian; big-endian hosts are not supported yet");

/// Element type of a typed array block. `boolean` elements are one byte, 0 or 1; `f16` is
/// IEEE-754 binary16; `c64` / `c128` are complex numbers as (real, imaginary) pairs of f32 / f64.
enum class Dtype : std::uint8_t { i8 = 1, i16, i32, i64, u8, u16, u32, u64, f32, f64, boolean, f16, c64, c128 };

/// "i8", "f64", "bool", "c128" ... (numpy-like names).
MANDALA_API std::string_view to_string(Dtype dtype) noexcept;
/// Size in bytes of one element.
MANDALA_API std::size_t dtype_size(Dtype dtype) noexcept;

template <class T>
inline constexpr bool is_std_complex_v = false;
template <class T>
inline constexpr bool is_std_complex_v<std::complex<T>> = true;

template <class T>
constexpr std::optional<Dtype> dtype_of() {
  using U = std::remove_cv_t<T>;
  if constexpr (std::is_same_v<U, bool>) return std::nullopt;
  else if constexpr (std::is_same_v<U, std::complex<float>>) return Dtype::c64;
  else if constexpr (std::is_same_v<U, std::complex<double>>) return Dtype::c128;
  else if constexpr (std::is_floating_point_v<U> && sizeof(U) == 4) return Dtype::f32;
  else if constexpr (std::is_floating_point_v<U> && sizeof(U) == 8) return Dtype::f64;
  else if constexpr (std::is_integral_v<U> && std::is_signed_v<U>)
    return sizeof(U) == 1 ? Dtype::i8 : sizeof(U) == 2 ? Dtype::i16 : sizeof(U) == 4 ? Dtype::i32 : Dtype::i64;
  else if constexpr (std::is_integral_v<U> && std::is_unsigned_v<U>)
    return sizeof(U) == 1 ? Dtype::u8 : sizeof(U) == 2 ? Dtype::u16 : sizeof(U) == 4 ? Dtype::u32 : Dtype::u64;
  else return std::nullopt;
}

/// The kind of a transparent collection (an MList or MDict stored element by element).
enum class CollectionKind : std::uint8_t { list = 1, dict = 2 };

template <class T>
concept BlockElement = dtype_of<T>()
.has_value();

/// Appends canonical bytes. Containers write a header then exactly that many elements (maps:
/// key, value, key, value...). Use write_map_sorted/write_set_sorted for unordered inputs.
class MANDALA_API Encoder {
 public:
  void nil();
  void boolean(bool v);
  void integer(std::int64_t v);
  void unsigned_integer(std::uint64_t v);
  void float32(float v);
  void float64(double v);
  void string(std::string_view v);
  void binary(std::span<const std::byte> v);
  void array_header(std::size_t n);
  void map_header(std::size_t n);
  /// One typed block: dtype, shape (row-major), little-endian element bytes.
  void typed_array(Dtype dtype, std::span<const std::uint64_t> shape, const void* data, std::size_t size_bytes);
  /// A reference to an object stored outside mandala under a human-readable name.
  void pointer(std::string_view name);
  /// An integer of any size given as its sign and magnitude (big-endian bytes, leading zero
  /// bytes allowed): written as a plain integer when it fits the 64-bit forms, else as ext type 4.
  void big_integer(bool negative, std::span<const std::byte> magnitude);
  /// A pickled Python object (ext type 5): the name of its type (`module.QualifiedName`, for
  /// display) and the pickle's bytes. Its content is opaque to mandala.
  void pickle(std::string_view type_name, std::span<const std::byte> data);
  /// Begins a tagged value: a type tag (non-empty, e.g. "pandas.DataFrame") for the one value
  /// written next, its payload. Written as an array of 2: [ext type 6 tag, payload].
  void tag(std::string_view tag);
  /// The shape of a transparent collection (ext type 3): its kind and element content ids; a
  /// dict's `keys` (one per cid, any order, unique) are written sorted by their bytes.
  void collection(CollectionKind kind, std::span<const std::string> keys, std::span<const Id> cids);
  /// Appends bytes that are already one canonical encoded value.
  void raw(std::span<const std::byte> encoded);
  /// Makes room for at least `more` further bytes (a hint: writing a large value into room made
  /// up front spares the copies of a growing buffer and the memory they take).
  void reserve(std::size_t more);

  [[nodiscard]] const std::vector<std::byte>& bytes() const& noexcept { return m_out; }
  [[nodiscard]] std::vector<std::byte> take() && noexcept { return std::move(m_out); }
  void clear() noexcept { m_out.clear(); }
  [[nodiscard]] std::size_t size() const noexcept { return m_out.size(); }

  /// Writes a map whose entries are given as (encoded key, encoded value), sorting by key bytes;
  /// a duplicate encoded key is an Errc::invalid_argument error.
  void map_sorted(std::vector<std::pair<std::vector<std::byte>, std::vector<std::byte>>> entries);
  /// Writes an array of encoded elements sorted by their bytes (the canonical form of a set).
  void array_sorted(std::vector<std::vector<std::byte>> elements);

 private:
  std::vector<std::byte> m_out;
};

/// The content id (docs/storage-format.md 2) of the typed array Encoder::typed_array(dtype,
/// shape, data, size_bytes) writes, computed from the elements where they lie, without encoding
/// them (elements made canonical, NaNs and booleans, are copied piece by piece into a small
/// buffer): the id of those encoded bytes. The same checks and errors as Encoder::typed_array.
/// Reads `data` only; safe to call from any thread while nothing writes the elements.
[[nodiscard]] MANDALA_API Id typed_array_content_id(Dtype dtype, std::span<const std::uint64_t> shape, const void* data,
                                                    std::size_t size_bytes);

/// What a ValueView holds.
enum class Kind {
  nil,
  boolean,
  integer,
  float32,
  float64,
  string,
  binary,
  array,
  map,
  typed_array,
  pointer,
  collection,   ///< the shape of a transparent list or dict (element content ids)
  big_integer,  ///< an integer outside [-2^63, 2^64 - 1]
  pickle,       ///< a pickled Python object (opaque)
  tagged        ///< a value with a type tag: [tag, payload]
};
MANDALA_API std::string_view to_string(Kind kind) noexcept;

/// The shape of a stored transparent collection: element content ids in list order, or a
/// dict's entries sorted by key bytes.
struct CollectionView {
  CollectionKind kind = CollectionKind::list;
  std::vector<std::string_view> keys;  ///< dict only
  std::vector<Id> cids;
};

/// An integer beyond 64 bits: its sign and magnitude (big-endian, no leading zero byte).
struct BigIntegerView {
  bool negative = false;
  std::span<const std::byte> magnitude;
};
/// Decimal digits of a big integer, with a leading '-' when negative.
MANDALA_API std::string to_string(const BigIntegerView& v);

/// A pickled Python object: the name of its type and the pickle's bytes (never unpickled by
/// mandala's C++ code).
struct PickleView {
  std::string_view type_name;
  std::span<const std::byte> data;
};

struct TypedArrayView {
  Dtype dtype;
  std::vector<std::uint64_t> shape;
  std::span<const std::byte> data;  ///< little-endian element bytes, row-major
};

/// A read-only view of one decoded value inside a DecodedValue; valid while that lives.
class MANDALA_API ValueView {
 public:
  [[nodiscard]] Kind kind() const;
  [[nodiscard]] bool is_nil() const { return kind() == Kind::nil; }
  [[nodiscard]] bool as_bool() const;
  /// The integer if it fits int64 (Errc::decode otherwise or if not an integer).
  [[nodiscard]] std::int64_t as_int64() const;
  /// The integer if it is non-negative (Errc::decode otherwise).
  [[nodiscard]] std::uint64_t as_uint64() const;
  [[nodiscard]] bool is_negative_integer() const;
  [[nodiscard]] float as_float32() const;
  [[nodiscard]] double as_float64() const;
  [[nodiscard]] std::string_view as_string() const;
  [[nodiscard]] std::span<const std::byte> as_binary() const;
  /// Elements of an array, entries of a map.
  [[nodiscard]] std::size_t size() const;
  [[nodiscard]] ValueView at(std::size_t i) const;        ///< array element
  [[nodiscard]] ValueView key_at(std::size_t i) const;    ///< map key
  [[nodiscard]] ValueView value_at(std::size_t i) const;  ///< map value
  /// The value under a string key of a map; nullopt when absent.
  [[nodiscard]] std::optional<ValueView> find(std::string_view key) const;
  [[nodiscard]] TypedArrayView as_typed_array() const;
  [[nodiscard]] std::string_view as_pointer() const;
  /// A collection shape (validated: Errc::decode on a malformed one).
  [[nodiscard]] CollectionView as_collection() const;
  /// An integer beyond 64 bits (validated: Errc::decode on a malformed one).
  [[nodiscard]] BigIntegerView as_big_integer() const;
  /// A pickled Python object (validated: Errc::decode on a malformed one).
  [[nodiscard]] PickleView as_pickle() const;
  /// The type tag of a tagged value.
  [[nodiscard]] std::string_view tag() const;
  /// The payload of a tagged value.
  [[nodiscard]] ValueView tagged_value() const;
  /// Throws Errc::decode: "expected <what>, found <kind>".
  [[noreturn]] void fail_expected(std::string_view what) const;
  /// JSON rendering of the value (typed arrays as {"dtype","shape","data"}; pointers as {"pointer"};
  /// big integers as {"bigint": decimal}; pickles as {"pickle": {"type", "bytes"}} (never their
  /// content); tagged values as {"tag", "value"}).
  [[nodiscard]] std::string to_json(std::size_t max_array_items = SIZE_MAX) const;
  /// A one-line display form for people: JSON for scalars, strings, arrays and maps; a typed
  /// array as dtype, shape and a preview of its first elements (`f64[2x3] [0.5, 1, 1.5, ...]`);
  /// binary as its size and first bytes; a pointer as `pointer(name)`; a pickle as
  /// `<pickle type, N bytes>`; a tagged value as `tag(payload)`. Cut to at most
  /// `max_chars` characters (code points) ending in "..." when longer; only what is shown is
  /// rendered, so huge values cost what their preview costs.
  [[nodiscard]] std::string to_text(std::size_t max_chars = SIZE_MAX) const;

 private:
  friend class DecodedValue;
  explicit ValueView(const void* object) : m_object(object) {}
  const void* m_object;
};

/// Owns the parse of one encoded value. Construction validates the bytes and throws
/// Errc::decode (never crashes) on truncated, malformed or trailing bytes.
class MANDALA_API DecodedValue {
 public:
  /// Parses in place without copying: `bytes` must outlive this DecodedValue and its views.
  explicit DecodedValue(std::span<const std::byte> bytes);
  /// Takes ownership of `bytes` (e.g. a temporary such as `encode_value(x)`), so views stay
  /// valid for as long as this DecodedValue lives.
  explicit DecodedValue(std::vector<std::byte>&& bytes);
  ~DecodedValue();
  DecodedValue(DecodedValue&&) noexcept;
  DecodedValue& operator=(DecodedValue&&) noexcept;
  [[nodiscard]] ValueView root() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

/// The codec trait: specialize with
///   static void encode(Encoder&, const T&);
///   static T decode(ValueView);
/// or use MANDALA_STRUCT(Type, field...) for an aggregate.
template <class T, class Enable = void>
struct Codec {
  static_assert(sizeof(T) == 0,
                "mandala: this type has no Codec. For a struct write MANDALA_STRUCT(Type, field1, field2, ...) "
                "at namespace scope, or specialize mandala::Codec<Type> with static void encode(Encoder&, const "
                "Type&) and static Type decode(ValueView).");
};

template <class T>
concept Encodable = requires(Encoder& e, const T& v, ValueView view) {
  Codec<T>::encode(e, v);
  { Codec<T>::decode(view) } -> std::convertible_to<T>;
};

template <class T>
void encode_value(Encoder& e, const T& v) {
  Codec<T>::encode(e, v);
}
template <class T>
std::vector<std::byte> encode_value(const T& v) {
  Encoder e;
  Codec<T>::encode(e, v);
  return std::move(e).take();
}
template <class T>
T decode_value(ValueView v) {
  return Codec<T>::decode(v);
}
template <class T>
T decode_value(std::span<const std::byte> bytes) {
  DecodedValue d(bytes);
  return Codec<T>::decode(d.root());
}

namespace detail {
[[noreturn]] MANDALA_API void throw_decode(std::string message);
[[noreturn]] MANDALA_API void rethrow_with_path(const Error& e, std::string_view segment);

template <class F>
decltype(auto) at_path(std::string_view segment, F&& f) {
  try {
    return f();
  } catch (const Error& e) {
    rethrow_with_path(e, segment);
  }
}
MANDALA_API std::string index_segment(std::size_t i);

template <class T>
T int_from_view(ValueView v) {
  if (v.kind() != Kind::integer) v.fail_expected("integer");
  if constexpr (std::is_signed_v<T>) {
    const std::int64_t x = v.as_int64();
    if (x < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
        x > static_cast<std::int64_t>(std::numeric_limits<T>::max()))
      throw_decode("integer " + std::to_string(x) + " does not fit the target type");
    return static_cast<T>(x);
  } else {
    if (v.is_negative_integer()) throw_decode("negative integer for an unsigned target type");
    const std::uint64_t x = v.as_uint64();
    if (x > static_cast<std::uint64_t>(std::numeric_limits<T>::max()))
      throw_decode("integer " + std::to_string(x) + " does not fit the target type");
    return static_cast<T>(x);
  }
}

/// A Python tuple is the tagged value "tuple" of an array, a set "set" or "frozenset" of an array
/// sorted by encoded bytes (docs/storage-format.md 1.9): C++ sequences (`tuple`) and sets (`set`)
/// decode them as they decode that array. The array of such a tagged value, else `v` itself.
enum class PythonForm { tuple, set };
inline ValueView python_payload(ValueView v, PythonForm form) {
  if (v.kind() != Kind::tagged) return v;
  const std::string_view tag = v.tag();
  const bool match = form == PythonForm::tuple ? tag == "tuple" : (tag == "set" || tag == "frozenset");
  return match ? v.tagged_value() : v;
}

template <class Elem, class Out>
void block_from_view(ValueView v, Out* out, std::size_t expected_count, bool exact) {
  const TypedArrayView t = v.as_typed_array();
  if (t.dtype != *dtype_of<Elem>())
    throw_decode(std::string("typed array of ") + std::string(to_string(t.dtype)) + ", expected " +
                 std::string(to_string(*dtype_of<Elem>())));
  if (t.shape.size() != 1) throw_decode("typed array of rank " + std::to_string(t.shape.size()) + ", expected rank 1");
  const std::size_t n = t.data.size() / sizeof(Elem);
  if (exact && n != expected_count)
    throw_decode("typed array of " + std::to_string(n) + " elements, expected " + std::to_string(expected_count));
  if (n != 0) std::memcpy(out, t.data.data(), n * sizeof(Elem));
}

template <class T>
inline constexpr bool is_block_vector = false;
template <BlockElement T, class A>
inline constexpr bool is_block_vector<std::vector<T, A>> = true;

template <class Container>
void encode_sequence(Encoder& e, const Container& c) {
  e.array_header(c.size());
  using Element = std::remove_cvref_t<decltype(*std::begin(c))>;
  if constexpr (is_block_vector<Element>) {
    // A sequence of typed blocks (a vector of vectors of numbers, a large value's usual shape):
    // its size is known before writing it.
    std::size_t bytes = 0;
    for (const auto& x : c) bytes += x.size() * sizeof(typename Element::value_type) + 16;  // + ext header, shape
    e.reserve(bytes);
  }
  for (const auto& x : c) Codec<std::remove_cvref_t<decltype(x)>>::encode(e, x);
}
}  // namespace detail

// ---- scalars -------------------------------------------------------------------------------

template <>
struct Codec<bool> {
  static void encode(Encoder& e, bool v) { e.boolean(v); }
  static bool decode(ValueView v) { return v.as_bool(); }
};

template <class T>
requires(std::is_integral_v<T> && !std::is_same_v<T, bool>) struct Codec<T> {
  static void encode(Encoder& e, T v) {
    if constexpr (std::is_signed_v<T>) e.integer(v);
    else e.unsigned_integer(v);
  }
  static T decode(ValueView v) { return detail::int_from_view<T>(v); }
};

template <>
struct Codec<float> {
  static void encode(Encoder& e, float v) { e.float32(v); }
  static float decode(ValueView v) { return v.as_float32(); }
};
template <>
struct Codec<double> {
  static void encode(Encoder& e, double v) { e.float64(v); }
  static double decode(ValueView v) { return v.as_float64(); }
};

/// A complex number is the tagged value "complex": [real, imaginary] (float32 or float64 each).
template <class T>
requires(std::is_same_v<T, float> || std::is_same_v<T, double>) struct Codec<std::complex<T>> {
  static void encode(Encoder& e, const std::complex<T>& v) {
    e.tag("complex");
    e.array_header(2);
    Codec<T>::encode(e, v.real());
    Codec<T>::encode(e, v.imag());
  }
  static std::complex<T> decode(ValueView v) {
    if (v.kind() != Kind::tagged || v.tag() != "complex") v.fail_expected("complex number");
    const ValueView parts = v.tagged_value();
    if (parts.kind() != Kind::array || parts.size() != 2) parts.fail_expected("[real, imaginary] (complex number)");
    return {Codec<T>::decode(parts.at(0)), Codec<T>::decode(parts.at(1))};
  }
};

template <>
struct Codec<std::string> {
  static void encode(Encoder& e, const std::string& v) { e.string(v); }
  static std::string decode(ValueView v) { return std::string(v.as_string()); }
};

template <>
struct Codec<std::nullptr_t> {
  static void encode(Encoder& e, std::nullptr_t) { e.nil(); }
  static std::nullptr_t decode(ValueView v) {
    if (!v.is_nil()) v.fail_expected("nil");
    return nullptr;
  }
};

template <>
struct Codec<std::monostate> {
  static void encode(Encoder& e, std::monostate) { e.nil(); }
  static std::monostate decode(ValueView v) {
    if (!v.is_nil()) v.fail_expected("nil");
    return {};
  }
};

// ---- sequences -----------------------------------------------------------------------------

template <class T, class A>
struct Codec<std::vector<T, A>> {
  static void encode(Encoder& e, const std::vector<T, A>& v) {
    if constexpr (BlockElement<T>) {
      const std::uint64_t shape[1] = {v.size()};
      e.typed_array(*dtype_of<T>(), shape, v.data(), v.size() * sizeof(T));
    } else {
      detail::encode_sequence(e, v);
    }
  }
  static std::vector<T, A> decode(ValueView v) {
    std::vector<T, A> out;
    if constexpr (BlockElement<T>) {
      const TypedArrayView t = v.as_typed_array();
      out.resize(t.data.size() / sizeof(T));
      detail::block_from_view<T>(v, out.data(), out.size(), false);
    } else {
      v = detail::python_payload(v, detail::PythonForm::tuple);
      if (v.kind() != Kind::array) v.fail_expected("array");
      out.reserve(v.size());
      for (std::size_t i = 0; i < v.size(); ++i)
        out.push_back(detail::at_path(detail::index_segment(i), [&] { return Codec<T>::decode(v.at(i)); }));
    }
    return out;
  }
};

template <class T, std::size_t N>
struct Codec<std::array<T, N>> {
  static void encode(Encoder& e, const std::array<T, N>& v) {
    if constexpr (BlockElement<T>) {
      const std::uint64_t shape[1] = {N};
      e.typed_array(*dtype_of<T>(), shape, v.data(), N * sizeof(T));
    } else {
      detail::encode_sequence(e, v);
    }
  }
  static std::array<T, N> decode(ValueView v) {
    std::array<T, N> out{};
    if constexpr (BlockElement<T>) {
      detail::block_from_view<T>(v, out.data(), N, true);
    } else {
      v = detail::python_payload(v, detail::PythonForm::tuple);
      if (v.kind() != Kind::array) v.fail_expected("array");
      if (v.size() != N)
        detail::throw_decode("array of " + std::to_string(v.size()) + " elements, expected " + std::to_string(N));
      for (std::size_t i = 0; i < N; ++i)
        out[i] = detail::at_path(detail::index_segment(i), [&] { return Codec<T>::decode(v.at(i)); });
    }
    return out;
  }
};

template <class T, class C, class A>
struct Codec<std::set<T, C, A>> {
  static void encode(Encoder& e, const std::set<T, C, A>& s) {
    std::vector<std::vector<std::byte>> elements;
    elements.reserve(s.size());
    for (const auto& x : s) elements.push_back(encode_value(x));
    e.array_sorted(std::move(elements));
  }
  static std::set<T, C, A> decode(ValueView v) {
    v = detail::python_payload(v, detail::PythonForm::set);
    if (v.kind() != Kind::array) v.fail_expected("array (set)");
    std::set<T, C, A> out;
    for (std::size_t i = 0; i < v.size(); ++i)
      out.insert(detail::at_path(detail::index_segment(i), [&] { return Codec<T>::decode(v.at(i)); }));
    return out;
  }
};

namespace detail {
template <class Map>
void encode_map(Encoder& e, const Map& m) {
  std::vector<std::pair<std::vector<std::byte>, std::vector<std::byte>>> entries;
  entries.reserve(m.size());
  for (const auto& [k, val] : m) entries.emplace_back(encode_value(k), encode_value(val));
  e.map_sorted(std::move(entries));
}
template <class Map>
Map decode_map(ValueView v) {
  using K = typename Map::key_type;
  using V = typename Map::mapped_type;
  if (v.kind() != Kind::map) v.fail_expected("map");
  Map out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    K key = at_path("{key " + std::to_string(i) + "}", [&] { return Codec<K>::decode(v.key_at(i)); });
    V val = at_path(index_segment(i), [&] { return Codec<V>::decode(v.value_at(i)); });
    out.emplace(std::move(key), std::move(val));
  }
  return out;
}
}  // namespace detail

template <class K, class V, class C, class A>
struct Codec<std::map<K, V, C, A>> {
  static void encode(Encoder& e, const std::map<K, V, C, A>& m) { detail::encode_map(e, m); }
  static std::map<K, V, C, A> decode(ValueView v) { return detail::decode_map<std::map<K, V, C, A>>(v); }
};
template <class K, class V, class H, class Eq, class A>
struct Codec<std::unordered_map<K, V, H, Eq, A>> {
  static void encode(Encoder& e, const std::unordered_map<K, V, H, Eq, A>& m) { detail::encode_map(e, m); }
  static std::unordered_map<K, V, H, Eq, A> decode(ValueView v) {
    return detail::decode_map<std::unordered_map<K, V, H, Eq, A>>(v);
  }
};

// ---- transparent collections ----------------------------------------------------------------

/// A list that ops store element by element (the original's `MList[T]`). Declare an op
/// parameter or result as MList<T> and each element becomes its own stored value with its own
/// history: lists sharing elements share storage, and provenance runs through the elements.
/// It is a std::vector<T> in every other respect. As part of a plain value (a struct field)
/// it encodes like an array of its elements.
template <class T>
class MList : public std::vector<T> {
 public:
  using std::vector<T>::vector;
  MList() = default;
  MList(const std::vector<T>& v) : std::vector<T>(v) {}        // NOLINT(google-explicit-constructor)
  MList(std::vector<T>&& v) : std::vector<T>(std::move(v)) {}  // NOLINT(google-explicit-constructor)
};

/// A dict that ops store entry by entry (the original's `MDict[str, V]`); keys must be
/// std::string. A std::map<std::string, V> in every other respect.
template <class K, class V>
class MDict : public std::map<K, V> {
  static_assert(std::is_same_v<K, std::string>,
                "mandala: MDict keys must be std::string (each key names an input of the __make_dict__ call that "
                "builds the dict). Convert the keys to strings, or use a plain std::map<K, V> to store the map as "
                "one opaque value.");

 public:
  using std::map<K, V>::map;
  MDict() = default;
  MDict(const std::map<K, V>& m) : std::map<K, V>(m) {}        // NOLINT(google-explicit-constructor)
  MDict(std::map<K, V>&& m) : std::map<K, V>(std::move(m)) {}  // NOLINT(google-explicit-constructor)
};

template <class T>
struct is_mlist : std::false_type {};
template <class T>
struct is_mlist<MList<T>> : std::true_type {};
template <class T>
struct is_mdict : std::false_type {};
template <class K, class V>
struct is_mdict<MDict<K, V>> : std::true_type {};
/// The element type of a transparent collection.
template <class C>
struct collection_element {};
template <class T>
struct collection_element<MList<T>> {
  using type = T;
};
template <class K, class V>
struct collection_element<MDict<K, V>> {
  using type = V;
};
template <class C>
using collection_element_t = typename collection_element<C>::type;

/// Whether T is stored element by element (MList or MDict).
template <class T>
inline constexpr bool is_transparent_v = is_mlist<T>::value || is_mdict<T>::value;

template <class T>
struct Codec<MList<T>> {
  static void encode(Encoder& e, const MList<T>& v) { detail::encode_sequence(e, v); }
  static MList<T> decode(ValueView v) {
    if (v.kind() != Kind::array) v.fail_expected("array (MList)");
    MList<T> out;
    out.reserve(v.size());
    for (std::size_t i = 0; i < v.size(); ++i)
      out.push_back(detail::at_path(detail::index_segment(i), [&] { return Codec<T>::decode(v.at(i)); }));
    return out;
  }
};
template <class K, class V>
struct Codec<MDict<K, V>> {
  static void encode(Encoder& e, const MDict<K, V>& m) { detail::encode_map(e, m); }
  static MDict<K, V> decode(ValueView v) { return detail::decode_map<MDict<K, V>>(v); }
};

template <class T>
struct Codec<std::optional<T>> {
  static void encode(Encoder& e, const std::optional<T>& v) {
    if (v) Codec<T>::encode(e, *v);
    else e.nil();
  }
  static std::optional<T> decode(ValueView v) {
    if (v.is_nil()) return std::nullopt;
    return Codec<T>::decode(v);
  }
};

template <class... Ts>
struct Codec<std::tuple<Ts...>> {
  static void encode(Encoder& e, const std::tuple<Ts...>& t) {
    e.array_header(sizeof...(Ts));
    std::apply([&](const auto&... x) { (Codec<std::remove_cvref_t<decltype(x)>>::encode(e, x), ...); }, t);
  }
  static std::tuple<Ts...> decode(ValueView v) {
    v = detail::python_payload(v, detail::PythonForm::tuple);
    if (v.kind() != Kind::array) v.fail_expected("array (tuple)");
    if (v.size() != sizeof...(Ts))
      detail::throw_decode("tuple of " + std::to_string(v.size()) + " elements, expected " +
                           std::to_string(sizeof...(Ts)));
    return decode_elements(v, std::index_sequence_for<Ts...>{});
  }

 private:
  template <std::size_t... I>
  static std::tuple<Ts...> decode_elements([[maybe_unused]] ValueView v, std::index_sequence<I...>) {
    return std::tuple<Ts...>{detail::at_path(detail::index_segment(I), [&] { return Codec<Ts>::decode(v.at(I)); })...};
  }
};

template <class A, class B>
struct Codec<std::pair<A, B>> {
  static void encode(Encoder& e, const std::pair<A, B>& p) {
    e.array_header(2);
    Codec<A>::encode(e, p.first);
    Codec<B>::encode(e, p.second);
  }
  static std::pair<A, B> decode(ValueView v) {
    auto t = Codec<std::tuple<A, B>>::decode(v);
    return {std::move(std::get<0>(t)), std::move(std::get<1>(t))};
  }
};

/// A variant encodes as [index, value].
template <class... Ts>
struct Codec<std::variant<Ts...>> {
  static void encode(Encoder& e, const std::variant<Ts...>& v) {
    if (v.valueless_by_exception()) throw Error(Errc::invalid_argument, "cannot encode a valueless std::variant");
    e.array_header(2);
    e.unsigned_integer(v.index());
    std::visit([&](const auto& x) { Codec<std::remove_cvref_t<decltype(x)>>::encode(e, x); }, v);
  }
  static std::variant<Ts...> decode(ValueView v) {
    if (v.kind() != Kind::array || v.size() != 2) v.fail_expected("[index, value] (variant)");
    const std::uint64_t index = v.at(0).as_uint64();
    if (index >= sizeof...(Ts)) detail::throw_decode("variant index " + std::to_string(index) + " out of range");
    return decode_alternative(index, v.at(1), std::index_sequence_for<Ts...>{});
  }

 private:
  template <std::size_t... I>
  static std::variant<Ts...> decode_alternative(std::uint64_t index, ValueView v, std::index_sequence<I...>) {
    std::variant<Ts...> out;
    static_cast<void>(((index == I ? (out.template emplace<I>(Codec<Ts>::decode(v)), true) : false) || ...));
    return out;
  }
};

}  // namespace mandala

// ---- user structs --------------------------------------------------------------------------
// MANDALA_STRUCT(Point, x, y) at global namespace scope (or any scope where mandala::Codec can be
// specialized, i.e. outside other namespaces) gives Point a codec that encodes a map from field
// name to field value. Decoding requires every field. Up to 24 fields.

#define MANDALA_PP_CAT_(a, b) a##b
#define MANDALA_PP_CAT(a, b) MANDALA_PP_CAT_(a, b)
#define MANDALA_PP_NARGS_(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, _14, _15, _16, _17, _18, _19, _20, \
                          _21, _22, _23, _24, N, ...)                                                                \
  N
#define MANDALA_PP_NARGS(...) \
  MANDALA_PP_NARGS_(__VA_ARGS__, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1)
#define MANDALA_PP_EACH_1(m, x) m(x)
#define MANDALA_PP_EACH_2(m, x, ...) m(x) MANDALA_PP_EACH_1(m, __VA_ARGS__)
#define MANDALA_PP_EACH_3(m, x, ...) m(x) MANDALA_PP_EACH_2(m, __VA_ARGS__)
#define MANDALA_PP_EACH_4(m, x, ...) m(x) MANDALA_PP_EACH_3(m, __VA_ARGS__)
#define MANDALA_PP_EACH_5(m, x, ...) m(x) MANDALA_PP_EACH_4(m, __VA_ARGS__)
#define MANDALA_PP_EACH_6(m, x, ...) m(x) MANDALA_PP_EACH_5(m, __VA_ARGS__)
#define MANDALA_PP_EACH_7(m, x, ...) m(x) MANDALA_PP_EACH_6(m, __VA_ARGS__)
#define MANDALA_PP_EACH_8(m, x, ...) m(x) MANDALA_PP_EACH_7(m, __VA_ARGS__)
#define MANDALA_PP_EACH_9(m, x, ...) m(x) MANDALA_PP_EACH_8(m, __VA_ARGS__)
#define MANDALA_PP_EACH_10(m, x, ...) m(x) MANDALA_PP_EACH_9(m, __VA_ARGS__)
#define MANDALA_PP_EACH_11(m, x, ...) m(x) MANDALA_PP_EACH_10(m, __VA_ARGS__)
#define MANDALA_PP_EACH_12(m, x, ...) m(x) MANDALA_PP_EACH_11(m, __VA_ARGS__)
#define MANDALA_PP_EACH_13(m, x, ...) m(x) MANDALA_PP_EACH_12(m, __VA_ARGS__)
#define MANDALA_PP_EACH_14(m, x, ...) m(x) MANDALA_PP_EACH_13(m, __VA_ARGS__)
#define MANDALA_PP_EACH_15(m, x, ...) m(x) MANDALA_PP_EACH_14(m, __VA_ARGS__)
#define MANDALA_PP_EACH_16(m, x, ...) m(x) MANDALA_PP_EACH_15(m, __VA_ARGS__)
#define MANDALA_PP_EACH_17(m, x, ...) m(x) MANDALA_PP_EACH_16(m, __VA_ARGS__)
#define MANDALA_PP_EACH_18(m, x, ...) m(x) MANDALA_PP_EACH_17(m, __VA_ARGS__)
#define MANDALA_PP_EACH_19(m, x, ...) m(x) MANDALA_PP_EACH_18(m, __VA_ARGS__)
#define MANDALA_PP_EACH_20(m, x, ...) m(x) MANDALA_PP_EACH_19(m, __VA_ARGS__)
#define MANDALA_PP_EACH_21(m, x, ...) m(x) MANDALA_PP_EACH_20(m, __VA_ARGS__)
#define MANDALA_PP_EACH_22(m, x, ...) m(x) MANDALA_PP_EACH_21(m, __VA_ARGS__)
#define MANDALA_PP_EACH_23(m, x, ...) m(x) MANDALA_PP_EACH_22(m, __VA_ARGS__)
#define MANDALA_PP_EACH_24(m, x, ...) m(x) MANDALA_PP_EACH_23(m, __VA_ARGS__)
#define MANDALA_PP_EACH(m, ...) MANDALA_PP_CAT(MANDALA_PP_EACH_, MANDALA_PP_NARGS(__VA_ARGS__))(m, __VA_ARGS__)

#define MANDALA_STRUCT_ENCODE_FIELD_(f) \
  entries.emplace_back(::mandala::encode_value(std::string(#f)), ::mandala::encode_value(v.f));
#define MANDALA_STRUCT_DECODE_FIELD_(f)                                                                           \
  {                                                                                                               \
    auto field = view.find(#f);                                                                                   \
    if (!field) ::mandala::detail::throw_decode("missing field '" #f "'");                                        \
    out.f = ::mandala::detail::at_path("." #f, [&] { return ::mandala::decode_value<decltype(out.f)>(*field); }); \
  }

#define MANDALA_STRUCT(Type, ...)                                                            \
  template <>                                                                                \
  struct mandala::Codec<Type> {                                                              \
    static void encode(::mandala::Encoder& e, const Type& v) {                               \
      std::vector<std::pair<std::vector<std::byte>, std::vector<std::byte>>> entries;        \
      MANDALA_PP_EACH(MANDALA_STRUCT_ENCODE_FIELD_, __VA_ARGS__)                             \
      e.map_sorted(std::move(entries));                                                      \
    }                                                                                        \
    static Type decode(::mandala::ValueView view) {                                          \
      if (view.kind() != ::mandala::Kind::map) view.fail_expected("map (struct " #Type ")"); \
      Type out{};                                                                            \
      MANDALA_PP_EACH(MANDALA_STRUCT_DECODE_FIELD_, __VA_ARGS__)                             \
      return out;                                                                            \
    }                                                                                        \
  }
