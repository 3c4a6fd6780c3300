// mandala::Value (mandala/value.hpp): building it from a decoded view and encoding it back.

#include "mandala/value.hpp"

#include "codec/hash.hpp"

namespace mandala {
namespace {
constexpr std::size_t max_depth = 512;  // as the decoder's

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

Value from_view(ValueView v, std::size_t depth) {
  if (depth > max_depth) detail::throw_decode("value nested more than 512 levels deep");
  switch (v.kind()) {
    case Kind::nil: return {};
    case Kind::boolean: return v.as_bool();
    case Kind::integer:
      if (v.is_negative_integer()) return v.as_int64();
      return v.as_uint64();
    case Kind::float32: return v.as_float32();
    case Kind::float64: return v.as_float64();
    case Kind::string: return std::string(v.as_string());
    case Kind::binary: {
      const auto b = v.as_binary();
      return Value::Binary(b.begin(), b.end());
    }
    case Kind::array: {
      Value::Array out;
      out.reserve(v.size());
      for (std::size_t i = 0; i < v.size(); ++i) out.push_back(from_view(v.at(i), depth + 1));
      return out;
    }
    case Kind::map: {
      Value::Map out;
      out.reserve(v.size());
      for (std::size_t i = 0; i < v.size(); ++i)
        out.emplace_back(from_view(v.key_at(i), depth + 1), from_view(v.value_at(i), depth + 1));
      return out;
    }
    case Kind::typed_array: {
      const auto t = v.as_typed_array();
      return Value::TypedArray{t.dtype, t.shape, std::vector<std::byte>(t.data.begin(), t.data.end())};
    }
    case Kind::pointer: return Value::Pointer{std::string(v.as_pointer())};
    case Kind::collection: {
      const auto c = v.as_collection();
      return Value::Collection{c.kind, std::vector<std::string>(c.keys.begin(), c.keys.end()), c.cids};
    }
    case Kind::big_integer: {
      const auto b = v.as_big_integer();
      return Value::BigInteger{b.negative, std::vector<std::byte>(b.magnitude.begin(), b.magnitude.end())};
    }
    case Kind::pickle: {
      const auto p = v.as_pickle();
      return Value::Pickle{std::string(p.type_name), std::vector<std::byte>(p.data.begin(), p.data.end())};
    }
    case Kind::tagged: return Value::tagged(std::string(v.tag()), from_view(v.tagged_value(), depth + 1));
  }
  detail::throw_decode("unknown value kind");
}

void encode_to(Encoder& e, const Value& v, std::size_t depth);

std::vector<std::byte> encoded(const Value& v, std::size_t depth) {
  Encoder sub;
  encode_to(sub, v, depth);
  return std::move(sub).take();
}

void encode_to(Encoder& e, const Value& v, std::size_t depth) {
  if (depth > max_depth) throw Error(Errc::invalid_argument, "a Value nested more than 512 levels deep");
  switch (v.kind()) {
    case Kind::nil: e.nil(); return;
    case Kind::boolean: e.boolean(v.as_bool()); return;
    case Kind::integer:
      if (v.is_negative_integer()) e.integer(v.as_int64());
      else e.unsigned_integer(v.as_uint64());
      return;
    case Kind::float32: e.float32(v.as_float32()); return;
    case Kind::float64: e.float64(v.as_float64()); return;
    case Kind::string: e.string(v.as_string()); return;
    case Kind::binary: e.binary(v.as_binary()); return;
    case Kind::array:
      e.array_header(v.as_array().size());
      for (const auto& x : v.as_array()) encode_to(e, x, depth + 1);
      return;
    case Kind::map: {
      std::vector<std::pair<std::vector<std::byte>, std::vector<std::byte>>> entries;
      entries.reserve(v.as_map().size());
      for (const auto& [k, x] : v.as_map()) entries.emplace_back(encoded(k, depth + 1), encoded(x, depth + 1));
      e.map_sorted(std::move(entries));
      return;
    }
    case Kind::typed_array: {
      const auto& t = v.as_typed_array();
      e.typed_array(t.dtype, t.shape, t.data.data(), t.data.size());
      return;
    }
    case Kind::pointer: e.pointer(v.as_pointer()); return;
    case Kind::collection: {
      const auto& c = v.as_collection();
      e.collection(c.kind, c.keys, c.cids);
      return;
    }
    case Kind::big_integer: {
      const auto& b = v.as_big_integer();
      e.big_integer(b.negative, b.magnitude);
      return;
    }
    case Kind::pickle: {
      const auto& p = v.as_pickle();
      e.pickle(p.type_name, p.data);
      return;
    }
    case Kind::tagged:
      e.tag(v.tag());
      encode_to(e, v.tagged_value(), depth + 1);
      return;
  }
}

}  // namespace

Value::Value(BigInteger v) {
  // One form per value: a magnitude that fits the 64-bit integer forms is a plain integer.
  Encoder e;
  e.big_integer(v.negative, v.magnitude);
  const DecodedValue d(std::move(e).take());
  if (d.root().kind() == Kind::integer) {
    if (d.root().is_negative_integer()) m_data = d.root().as_int64();
    else m_data = d.root().as_uint64();
  } else {
    const auto b = d.root().as_big_integer();
    m_data = BigInteger{b.negative, std::vector<std::byte>(b.magnitude.begin(), b.magnitude.end())};
  }
}

Value Value::tagged(std::string tag, Value value) {
  if (tag.empty()) throw Error(Errc::invalid_argument, "a tagged Value needs a non-empty tag");
  Value out;
  out.m_data = Tagged{std::move(tag), std::make_shared<const Value>(std::move(value))};
  return out;
}

Value Value::decode(std::span<const std::byte> bytes) {
  const DecodedValue d(bytes);
  return from_view(d.root(), 0);
}

Value Value::from(ValueView view) { return from_view(view, 0); }

std::vector<std::byte> Value::encode() const { return encoded(*this, 0); }

void Value::encode(Encoder& e) const { encode_to(e, *this, 0); }

Id Value::content_id() const { return codec::content_id(encode()); }

Kind Value::kind() const noexcept {
  return std::visit(Overloaded{
                        [](std::monostate) { return Kind::nil; },
                        [](bool) { return Kind::boolean; },
                        [](std::int64_t) { return Kind::integer; },
                        [](std::uint64_t) { return Kind::integer; },
                        [](float) { return Kind::float32; },
                        [](double) { return Kind::float64; },
                        [](const std::string&) { return Kind::string; },
                        [](const Binary&) { return Kind::binary; },
                        [](const Array&) { return Kind::array; },
                        [](const Map&) { return Kind::map; },
                        [](const TypedArray&) { return Kind::typed_array; },
                        [](const Pointer&) { return Kind::pointer; },
                        [](const Collection&) { return Kind::collection; },
                        [](const BigInteger&) { return Kind::big_integer; },
                        [](const Pickle&) { return Kind::pickle; },
                        [](const Tagged&) { return Kind::tagged; },
                    },
                    m_data);
}

void Value::fail_expected(std::string_view what) const {
  detail::throw_decode("expected " + std::string(what) + ", found " + std::string(to_string(kind())));
}

bool Value::as_bool() const {
  if (const auto* b = std::get_if<bool>(&m_data)) return *b;
  fail_expected("boolean");
}

std::int64_t Value::as_int64() const {
  if (const auto* i = std::get_if<std::int64_t>(&m_data)) return *i;
  if (const auto* u = std::get_if<std::uint64_t>(&m_data)) {
    if (*u > static_cast<std::uint64_t>(INT64_MAX))
      detail::throw_decode("integer " + std::to_string(*u) + " does not fit int64");
    return static_cast<std::int64_t>(*u);
  }
  fail_expected("integer");
}

std::uint64_t Value::as_uint64() const {
  if (const auto* u = std::get_if<std::uint64_t>(&m_data)) return *u;
  if (std::holds_alternative<std::int64_t>(m_data)) detail::throw_decode("negative integer for an unsigned target");
  fail_expected("non-negative integer");
}

bool Value::is_negative_integer() const noexcept { return std::holds_alternative<std::int64_t>(m_data); }

float Value::as_float32() const {
  if (const auto* f = std::get_if<float>(&m_data)) return *f;
  fail_expected("float32");
}

double Value::as_float64() const {
  if (const auto* f = std::get_if<double>(&m_data)) return *f;
  fail_expected("float64");
}

#define MANDALA_VALUE_ACCESSOR(Type, name, what)               \
  const Type& Value::name() const {                            \
    if (const auto* x = std::get_if<Type>(&m_data)) return *x; \
    fail_expected(what);                                       \
  }
MANDALA_VALUE_ACCESSOR(std::string, as_string, "string")
MANDALA_VALUE_ACCESSOR(Value::Binary, as_binary, "binary")
MANDALA_VALUE_ACCESSOR(Value::Array, as_array, "array")
MANDALA_VALUE_ACCESSOR(Value::Map, as_map, "map")
MANDALA_VALUE_ACCESSOR(Value::TypedArray, as_typed_array, "typed array")
MANDALA_VALUE_ACCESSOR(Value::BigInteger, as_big_integer, "big integer")
MANDALA_VALUE_ACCESSOR(Value::Pickle, as_pickle, "pickle")
MANDALA_VALUE_ACCESSOR(Value::Collection, as_collection, "collection shape")
#undef MANDALA_VALUE_ACCESSOR

Value::Array& Value::as_array() {
  if (auto* x = std::get_if<Array>(&m_data)) return *x;
  fail_expected("array");
}

Value::Map& Value::as_map() {
  if (auto* x = std::get_if<Map>(&m_data)) return *x;
  fail_expected("map");
}

const std::string& Value::as_pointer() const {
  if (const auto* p = std::get_if<Pointer>(&m_data)) return p->name;
  fail_expected("value pointer");
}

const std::string& Value::tag() const {
  if (const auto* t = std::get_if<Tagged>(&m_data)) return t->tag;
  fail_expected("tagged value");
}

const Value& Value::tagged_value() const {
  if (const auto* t = std::get_if<Tagged>(&m_data)) return *t->value;
  fail_expected("tagged value");
}

const Value* Value::find(std::string_view key) const {
  for (const auto& [k, v] : as_map())
    if (const auto* s = std::get_if<std::string>(&k.m_data); s && *s == key) return &v;
  return nullptr;
}

std::size_t Value::size() const {
  if (const auto* a = std::get_if<Array>(&m_data)) return a->size();
  if (const auto* m = std::get_if<Map>(&m_data)) return m->size();
  fail_expected("array or map");
}

const Value& Value::operator[](std::size_t i) const {
  const auto& a = as_array();
  if (i >= a.size())
    throw Error(Errc::invalid_argument,
                "array index " + std::to_string(i) + " out of range (" + std::to_string(a.size()) + " elements)");
  return a[i];
}

std::string Value::to_json(std::size_t max_array_items) const {
  return DecodedValue(encode()).root().to_json(max_array_items);
}

std::string Value::to_text(std::size_t max_chars) const { return DecodedValue(encode()).root().to_text(max_chars); }

bool operator==(const Value& a, const Value& b) { return a.kind() == b.kind() && a.encode() == b.encode(); }

}  // namespace mandala
