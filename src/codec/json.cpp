// JSON rendering of any encoded value, without its C++ type (for display and export).

#include <cstring>

#include <nlohmann/json.hpp>

#include "codec/half.hpp"
#include "mandala/codec.hpp"

namespace mandala {
namespace {

template <class T>
nlohmann::json block_items(const TypedArrayView& t, std::size_t max_items) {
  nlohmann::json data = nlohmann::json::array();
  const std::size_t n = t.data.size() / sizeof(T);
  for (std::size_t i = 0; i < n && i < max_items; ++i) {
    T v;
    std::memcpy(&v, t.data.data() + i * sizeof(T), sizeof(T));
    if constexpr (is_std_complex_v<T>) data.push_back(nlohmann::json::array({v.real(), v.imag()}));
    else if constexpr (std::is_same_v<T, codec::Half>) data.push_back(codec::half_to_float(v));  // f16
    else data.push_back(v);
  }
  return data;
}

nlohmann::json to_json_value(ValueView v, std::size_t max_items) {
  switch (v.kind()) {
    case Kind::nil: return nullptr;
    case Kind::boolean: return v.as_bool();
    case Kind::integer:
      if (v.is_negative_integer()) return v.as_int64();
      return v.as_uint64();
    case Kind::float32: return v.as_float32();
    case Kind::float64: return v.as_float64();
    case Kind::string: return std::string(v.as_string());
    case Kind::binary: {
      static constexpr char digits[] = "0123456789abcdef";
      std::string hex;
      for (auto b : v.as_binary()) {
        hex += digits[std::to_integer<unsigned>(b) >> 4];
        hex += digits[std::to_integer<unsigned>(b) & 15];
      }
      return nlohmann::json{{"binary", hex}};
    }
    case Kind::array: {
      nlohmann::json a = nlohmann::json::array();
      for (std::size_t i = 0; i < v.size() && i < max_items; ++i) a.push_back(to_json_value(v.at(i), max_items));
      return a;
    }
    case Kind::map: {
      bool string_keys = true;
      for (std::size_t i = 0; i < v.size(); ++i) string_keys = string_keys && v.key_at(i).kind() == Kind::string;
      if (string_keys) {
        nlohmann::json m = nlohmann::json::object();
        for (std::size_t i = 0; i < v.size(); ++i)
          m[std::string(v.key_at(i).as_string())] = to_json_value(v.value_at(i), max_items);
        return m;
      }
      nlohmann::json entries = nlohmann::json::array();  // non-string keys: [[key, value], ...]
      // json::array(): a braced {key, value} would become an object when both look like ["s", x].
      for (std::size_t i = 0; i < v.size() && i < max_items; ++i)
        entries.push_back(
            nlohmann::json::array({to_json_value(v.key_at(i), max_items), to_json_value(v.value_at(i), max_items)}));
      return entries;
    }
    case Kind::typed_array: {
      const auto t = v.as_typed_array();
      nlohmann::json data;
      switch (t.dtype) {
        case Dtype::i8: data = block_items<std::int8_t>(t, max_items); break;
        case Dtype::i16: data = block_items<std::int16_t>(t, max_items); break;
        case Dtype::i32: data = block_items<std::int32_t>(t, max_items); break;
        case Dtype::i64: data = block_items<std::int64_t>(t, max_items); break;
        case Dtype::u8: data = block_items<std::uint8_t>(t, max_items); break;
        case Dtype::u16: data = block_items<std::uint16_t>(t, max_items); break;
        case Dtype::u32: data = block_items<std::uint32_t>(t, max_items); break;
        case Dtype::u64: data = block_items<std::uint64_t>(t, max_items); break;
        case Dtype::f32: data = block_items<float>(t, max_items); break;
        case Dtype::f64: data = block_items<double>(t, max_items); break;
        case Dtype::boolean: data = block_items<bool>(t, max_items); break;
        case Dtype::f16: data = block_items<codec::Half>(t, max_items); break;
        case Dtype::c64: data = block_items<std::complex<float>>(t, max_items); break;
        case Dtype::c128: data = block_items<std::complex<double>>(t, max_items); break;
      }
      return nlohmann::json{{"dtype", std::string(to_string(t.dtype))}, {"shape", t.shape}, {"data", data}};
    }
    case Kind::pointer: return nlohmann::json{{"pointer", std::string(v.as_pointer())}};
    case Kind::big_integer: return nlohmann::json{{"bigint", to_string(v.as_big_integer())}};
    case Kind::pickle: {  // never its content: only what it is
      const auto p = v.as_pickle();
      return nlohmann::json{{"pickle", {{"type", std::string(p.type_name)}, {"bytes", p.data.size()}}}};
    }
    case Kind::tagged:
      return nlohmann::json{{"tag", std::string(v.tag())}, {"value", to_json_value(v.tagged_value(), max_items)}};
    case Kind::collection: {
      const auto c = v.as_collection();
      if (c.kind == CollectionKind::list) {
        nlohmann::json ids = nlohmann::json::array();
        for (std::size_t i = 0; i < c.cids.size() && i < max_items; ++i) ids.push_back(c.cids[i].hex());
        return nlohmann::json{{"list", ids}};
      }
      nlohmann::json entries = nlohmann::json::object();
      for (std::size_t i = 0; i < c.cids.size(); ++i) entries[std::string(c.keys[i])] = c.cids[i].hex();
      return nlohmann::json{{"dict", entries}};
    }
  }
  return nullptr;
}

}  // namespace

std::string ValueView::to_json(std::size_t max_array_items) const {
  return to_json_value(*this, max_array_items).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace mandala
