#pragma once
// mandala::Value: any encoded value as a C++ object whose type is decided at run time (nil,
// booleans, integers of any size, floats, strings, bytes, arrays, maps, typed arrays of any
// dtype and shape, value pointers, collection shapes, pickles and tagged values). For values of
// heterogeneous types, such as those of the Python package: a Value encodes to exactly the
// bytes it was decoded from, so it keeps every content id, and it can be an op's input or
// output (Codec<Value>).
//
//   mandala::Value v = mandala::Value::Map{{"x", 1}, {"y", mandala::Value::Array{1.5, "a"}}};
//   v.find("x")->as_int64();                          // 1
//   mandala::Value::of(std::vector<double>{1, 2});    // a typed array (the vector's encoding)
//   v.as<std::map<std::string, mandala::Value>>();    // through the canonical encoding

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "mandala/codec.hpp"
#include "mandala/error.hpp"
#include "mandala/export.hpp"
#include "mandala/id.hpp"

namespace mandala {

class MANDALA_API Value {
 public:
  using Array = std::vector<Value>;
  /// Map entries in any order. Encoding sorts them by encoded key (two keys of one encoding are
  /// Errc::invalid_argument); a decoded map holds them in that order.
  using Map = std::vector<std::pair<Value, Value>>;
  using Binary = std::vector<std::byte>;

  /// A typed block (docs/storage-format.md 1.3): `data` holds product(shape) elements of
  /// `dtype`, little-endian, row-major.
  struct TypedArray {
    Dtype dtype = Dtype::f64;
    std::vector<std::uint64_t> shape;
    std::vector<std::byte> data;

    /// A block of the elements of `values` with the given shape (one dimension when empty).
    template <BlockElement T>
    static TypedArray of(std::span<const T> values, std::vector<std::uint64_t> shape = {}) {
      if (shape.empty()) shape.push_back(values.size());
      TypedArray out{*dtype_of<T>(), std::move(shape), std::vector<std::byte>(values.size_bytes())};
      if (!values.empty()) std::memcpy(out.data.data(), values.data(), values.size_bytes());
      return out;
    }
    /// The elements as T; Errc::decode when T is not the block's element type.
    template <BlockElement T>
    [[nodiscard]] std::vector<T> values() const {
      if (dtype != *dtype_of<T>())
        detail::throw_decode("typed array of " + std::string(to_string(dtype)) + ", expected " +
                             std::string(to_string(*dtype_of<T>())));
      std::vector<T> out(data.size() / sizeof(T));
      if (!out.empty()) std::memcpy(out.data(), data.data(), out.size() * sizeof(T));
      return out;
    }
    friend bool operator==(const TypedArray&, const TypedArray&) = default;
  };
  /// An integer of any size: sign and magnitude (big-endian bytes).
  struct BigInteger {
    bool negative = false;
    std::vector<std::byte> magnitude;
  };
  /// A pickled Python object (opaque to C++).
  struct Pickle {
    std::string type_name;
    std::vector<std::byte> data;
  };
  /// A ValuePointer's name (the object itself is not stored).
  struct Pointer {
    std::string name;
  };
  /// The shape of a stored transparent collection: element content ids (and a dict's keys).
  struct Collection {
    CollectionKind kind = CollectionKind::list;
    std::vector<std::string> keys;
    std::vector<Id> cids;
  };
  /// A value with a type tag (e.g. "pandas.DataFrame" and its payload).
  struct Tagged {
    std::string tag;
    std::shared_ptr<const Value> value;  ///< never null
  };

  Value() noexcept = default;        ///< nil
  Value(std::nullptr_t) noexcept {}  // NOLINT(google-explicit-constructor)
  Value(bool v) : m_data(v) {}       // NOLINT(google-explicit-constructor)
  template <std::integral T>
  requires(!std::is_same_v<T, bool>) Value(T v) {  // NOLINT(google-explicit-constructor)
    if constexpr (std::is_signed_v<T>) {
      if (v < 0) m_data = static_cast<std::int64_t>(v);
      else m_data = static_cast<std::uint64_t>(v);
    } else {
      m_data = static_cast<std::uint64_t>(v);
    }
  }
  Value(float v) : m_data(v) {}                          // NOLINT(google-explicit-constructor)
  Value(double v) : m_data(v) {}                         // NOLINT(google-explicit-constructor)
  Value(std::string v) : m_data(std::move(v)) {}         // NOLINT(google-explicit-constructor)
  Value(std::string_view v) : m_data(std::string(v)) {}  // NOLINT(google-explicit-constructor)
  Value(const char* v) : m_data(std::string(v)) {}       // NOLINT(google-explicit-constructor)
  Value(Binary v) : m_data(std::move(v)) {}              // NOLINT(google-explicit-constructor)
  Value(Array v) : m_data(std::move(v)) {}               // NOLINT(google-explicit-constructor)
  Value(Map v) : m_data(std::move(v)) {}                 // NOLINT(google-explicit-constructor)
  Value(TypedArray v) : m_data(std::move(v)) {}          // NOLINT(google-explicit-constructor)
  Value(Pointer v) : m_data(std::move(v)) {}             // NOLINT(google-explicit-constructor)
  Value(Collection v) : m_data(std::move(v)) {}          // NOLINT(google-explicit-constructor)
  Value(Pickle v) : m_data(std::move(v)) {}              // NOLINT(google-explicit-constructor)
  /// A big integer; one that fits 64 bits is kept (and encoded) as a plain integer.
  Value(BigInteger v);  // NOLINT(google-explicit-constructor)
  /// A tagged value: `tag` (non-empty) and its payload.
  static Value tagged(std::string tag, Value value);

  /// The value of a typed C++ value: its canonical encoding (Codec<T>) decoded, so
  /// `Value::of(x)` and `x` have the same content id.
  template <class T>
  [[nodiscard]] static Value of(const T& value) {
    return decode(encode_value(value));
  }
  /// The value as a typed C++ value, through its encoding (Codec<T>::decode); Errc::decode when
  /// it is not one.
  template <class T>
  [[nodiscard]] T as() const {
    return decode_value<T>(std::span<const std::byte>(encode()));
  }

  /// The value of canonical encoded bytes (Errc::decode when malformed).
  [[nodiscard]] static Value decode(std::span<const std::byte> bytes);
  /// The value of a decoded view.
  [[nodiscard]] static Value from(ValueView view);
  /// The canonical encoding (Errc::invalid_argument for a map with two keys of one encoding,
  /// an empty tag, a typed array whose data does not match its shape).
  [[nodiscard]] std::vector<std::byte> encode() const;
  void encode(Encoder& e) const;
  /// The content id a stored value equal to this one has.
  [[nodiscard]] Id content_id() const;

  [[nodiscard]] Kind kind() const noexcept;
  [[nodiscard]] bool is_nil() const noexcept { return kind() == Kind::nil; }

  // Accessors: Errc::decode ("expected <what>, found <kind>") when the value is of another kind.
  [[nodiscard]] bool as_bool() const;
  /// The integer if it fits int64.
  [[nodiscard]] std::int64_t as_int64() const;
  /// The integer if it is non-negative.
  [[nodiscard]] std::uint64_t as_uint64() const;
  [[nodiscard]] bool is_negative_integer() const noexcept;
  [[nodiscard]] float as_float32() const;
  [[nodiscard]] double as_float64() const;
  [[nodiscard]] const std::string& as_string() const;
  [[nodiscard]] const Binary& as_binary() const;
  [[nodiscard]] const Array& as_array() const;
  [[nodiscard]] Array& as_array();
  [[nodiscard]] const Map& as_map() const;
  [[nodiscard]] Map& as_map();
  [[nodiscard]] const TypedArray& as_typed_array() const;
  [[nodiscard]] const BigInteger& as_big_integer() const;
  [[nodiscard]] const Pickle& as_pickle() const;
  [[nodiscard]] const std::string& as_pointer() const;
  [[nodiscard]] const Collection& as_collection() const;
  [[nodiscard]] const std::string& tag() const;
  [[nodiscard]] const Value& tagged_value() const;
  /// The value under a string key of a map; nullptr when absent (Errc::decode if not a map).
  [[nodiscard]] const Value* find(std::string_view key) const;
  /// Elements of an array, entries of a map.
  [[nodiscard]] std::size_t size() const;
  /// An array element (Errc::invalid_argument when out of range).
  [[nodiscard]] const Value& operator[](std::size_t i) const;

  /// JSON and one-line display forms (ValueView::to_json, ValueView::to_text).
  [[nodiscard]] std::string to_json(std::size_t max_array_items = SIZE_MAX) const;
  [[nodiscard]] std::string to_text(std::size_t max_chars = SIZE_MAX) const;

  /// Values are equal when they encode to the same bytes (so have the same content id): `1`
  /// and `1u` are equal, `1` and `1.0` are not, every NaN equals every NaN of its width, and
  /// maps are equal whatever the order of their entries.
  friend MANDALA_API bool operator==(const Value& a, const Value& b);

 private:
  [[noreturn]] void fail_expected(std::string_view what) const;

  std::variant<std::monostate, bool, std::int64_t, std::uint64_t, float, double, std::string, Binary, Array, Map,
               TypedArray, Pointer, Collection, BigInteger, Pickle, Tagged>
      m_data;
};

template <>
struct Codec<Value> {
  static void encode(Encoder& e, const Value& v) { v.encode(e); }
  static Value decode(ValueView v) { return Value::from(v); }
};

}  // namespace mandala
