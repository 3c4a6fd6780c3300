// The one-line display form of any encoded value (ValueView::to_text), without its C++ type.

#include <cmath>
#include <cstring>

#include <nlohmann/json.hpp>

#include "codec/half.hpp"
#include "mandala/codec.hpp"

namespace mandala {
namespace {

constexpr std::size_t preview_items = 8;
constexpr std::string_view ellipsis = "...";

/// Appends text until the output holds `limit` code points; then it is full and stops.
class Out {
 public:
  explicit Out(std::size_t limit) : m_limit(limit) {}
  [[nodiscard]] bool full() const { return m_full; }
  void put(std::string_view text) {
    for (const char c : text) {
      if (m_full) return;
      const bool starts_code_point = (static_cast<unsigned char>(c) & 0xC0) != 0x80;
      if (starts_code_point && m_points == m_limit) {
        m_full = true;
        return;
      }
      if (starts_code_point) ++m_points;
      m_text += c;
    }
  }
  /// The text, cut so that with "..." it fits the limit when it overflowed.
  std::string take() && {
    if (!m_full) return std::move(m_text);
    const std::size_t keep = m_limit > ellipsis.size() ? m_limit - ellipsis.size() : 0;
    std::size_t points = 0, i = 0;
    for (; i < m_text.size(); ++i) {
      if ((static_cast<unsigned char>(m_text[i]) & 0xC0) != 0x80) {
        if (points == keep) break;
        ++points;
      }
    }
    m_text.resize(i);
    return m_text + std::string(ellipsis.substr(0, std::min(ellipsis.size(), m_limit)));
  }

 private:
  std::size_t m_limit;
  std::size_t m_points = 0;
  bool m_full = false;
  std::string m_text;
};

std::string json_scalar(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

template <class T>
void block_preview(Out& out, const TypedArrayView& t) {
  const std::size_t n = t.data.size() / sizeof(T);
  out.put("[");
  for (std::size_t i = 0; i < n && !out.full(); ++i) {
    if (i > 0) out.put(", ");
    if (i == preview_items) {
      out.put(ellipsis);
      break;
    }
    T v;
    std::memcpy(&v, t.data.data() + i * sizeof(T), sizeof(T));
    if constexpr (std::is_same_v<T, bool>) out.put(v ? "true" : "false");
    else if constexpr (is_std_complex_v<T>)
      out.put(json_scalar(v.real()) + (std::signbit(v.imag()) ? "-" : "+") + json_scalar(std::abs(v.imag())) + "j");
    else if constexpr (std::is_same_v<T, codec::Half>) out.put(json_scalar(codec::half_to_float(v)));  // f16
    else if constexpr (sizeof(T) == 1) out.put(json_scalar(static_cast<int>(v)));
    else out.put(json_scalar(v));
  }
  out.put("]");
}

void render(Out& out, ValueView v) {
  if (out.full()) return;
  switch (v.kind()) {
    case Kind::nil: out.put("null"); return;
    case Kind::boolean: out.put(v.as_bool() ? "true" : "false"); return;
    case Kind::integer:
      out.put(v.is_negative_integer() ? std::to_string(v.as_int64()) : std::to_string(v.as_uint64()));
      return;
    case Kind::float32: out.put(json_scalar(v.as_float32())); return;
    case Kind::float64: out.put(json_scalar(v.as_float64())); return;
    case Kind::string: out.put(json_scalar(std::string(v.as_string()))); return;
    case Kind::binary: {
      static constexpr char digits[] = "0123456789abcdef";
      const auto bytes = v.as_binary();
      out.put("bytes[" + std::to_string(bytes.size()) + "] ");
      for (std::size_t i = 0; i < bytes.size() && !out.full(); ++i) {
        const auto b = std::to_integer<unsigned>(bytes[i]);
        out.put(std::string{digits[b >> 4], digits[b & 15]});
      }
      return;
    }
    case Kind::array:
      out.put("[");
      for (std::size_t i = 0; i < v.size() && !out.full(); ++i) {
        if (i > 0) out.put(", ");
        render(out, v.at(i));
      }
      out.put("]");
      return;
    case Kind::map:
      out.put("{");
      for (std::size_t i = 0; i < v.size() && !out.full(); ++i) {
        if (i > 0) out.put(", ");
        render(out, v.key_at(i));
        out.put(": ");
        render(out, v.value_at(i));
      }
      out.put("}");
      return;
    case Kind::typed_array: {
      const auto t = v.as_typed_array();
      std::string head(to_string(t.dtype));
      head += "[";
      for (std::size_t i = 0; i < t.shape.size(); ++i) head += (i ? "x" : "") + std::to_string(t.shape[i]);
      out.put(head + "] ");
      switch (t.dtype) {
        case Dtype::i8: block_preview<std::int8_t>(out, t); break;
        case Dtype::i16: block_preview<std::int16_t>(out, t); break;
        case Dtype::i32: block_preview<std::int32_t>(out, t); break;
        case Dtype::i64: block_preview<std::int64_t>(out, t); break;
        case Dtype::u8: block_preview<std::uint8_t>(out, t); break;
        case Dtype::u16: block_preview<std::uint16_t>(out, t); break;
        case Dtype::u32: block_preview<std::uint32_t>(out, t); break;
        case Dtype::u64: block_preview<std::uint64_t>(out, t); break;
        case Dtype::f32: block_preview<float>(out, t); break;
        case Dtype::f64: block_preview<double>(out, t); break;
        case Dtype::boolean: block_preview<bool>(out, t); break;
        case Dtype::f16: block_preview<codec::Half>(out, t); break;
        case Dtype::c64: block_preview<std::complex<float>>(out, t); break;
        case Dtype::c128: block_preview<std::complex<double>>(out, t); break;
      }
      return;
    }
    case Kind::pointer: out.put("pointer(" + std::string(v.as_pointer()) + ")"); return;
    case Kind::big_integer: out.put(to_string(v.as_big_integer())); return;
    case Kind::pickle: {  // opaque: never unpickled
      const auto p = v.as_pickle();
      out.put("<pickle " + std::string(p.type_name) + ", " + std::to_string(p.data.size()) + " bytes>");
      return;
    }
    case Kind::tagged:
      out.put(std::string(v.tag()) + "(");
      render(out, v.tagged_value());
      out.put(")");
      return;
    case Kind::collection: {  // a shape not materialized: element content ids
      const auto c = v.as_collection();
      const bool list = c.kind == CollectionKind::list;
      out.put(std::string(list ? "list" : "dict") + "[" + std::to_string(c.cids.size()) + "] " + (list ? "[" : "{"));
      for (std::size_t i = 0; i < c.cids.size() && !out.full(); ++i) {
        if (i > 0) out.put(", ");
        if (!list) out.put(json_scalar(std::string(c.keys[i])) + ": ");
        out.put("#" + c.cids[i].hex().substr(0, 12));
      }
      out.put(list ? "]" : "}");
      return;
    }
  }
}

}  // namespace

std::string ValueView::to_text(std::size_t max_chars) const {
  Out out(max_chars);
  render(out, *this);
  return std::move(out).take();
}

}  // namespace mandala
