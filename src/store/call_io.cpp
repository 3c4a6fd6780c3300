#include "store/call_io.hpp"

#include <algorithm>
#include <cstring>

#include "codec/hash.hpp"
#include "mandala/error.hpp"

namespace mandala::store::call_io {
namespace {

// Flags of one entry.
constexpr std::uint8_t io_output = 0x01;        ///< an output (else an input)
constexpr std::uint8_t io_explicit_hid = 0x02;  ///< the hid follows (else it is derived)
constexpr std::uint8_t io_name_index = 0x04;    ///< the name is an index into the op's outputs
constexpr std::uint8_t io_transient = 0x08;     ///< the value is not stored (IoRef::transient)

[[noreturn]] void malformed() {
  throw Error(Errc::corrupt_store, "a call's io column is malformed; the store is damaged: restore it from a backup");
}

void put_varint(std::vector<std::byte>& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<std::byte>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<std::byte>(v));
}

void put_text(std::vector<std::byte>& out, std::string_view text) {
  put_varint(out, text.size());
  const auto bytes = std::as_bytes(std::span(text.data(), text.size()));
  out.insert(out.end(), bytes.begin(), bytes.end());
}

void put_id(std::vector<std::byte>& out, const Id& id) {
  const auto bytes = std::as_bytes(std::span(id.bytes));
  out.insert(out.end(), bytes.begin(), bytes.end());
}

class Reader {
 public:
  explicit Reader(std::span<const std::byte> bytes) : m_bytes(bytes) {}
  [[nodiscard]] bool done() const { return m_pos == m_bytes.size(); }
  std::uint8_t byte() {
    if (m_pos >= m_bytes.size()) malformed();
    return std::to_integer<std::uint8_t>(m_bytes[m_pos++]);
  }
  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const std::uint8_t b = byte();
      v |= std::uint64_t{b & 0x7Fu} << shift;
      if ((b & 0x80) == 0) return v;
    }
    malformed();
  }
  Id id() {
    if (m_bytes.size() - m_pos < 16) malformed();
    Id out;
    std::memcpy(out.bytes.data(), m_bytes.data() + m_pos, 16);
    m_pos += 16;
    return out;
  }
  std::string text() {
    const auto n = varint();
    if (n > m_bytes.size() - m_pos) malformed();
    std::string out(reinterpret_cast<const char*>(m_bytes.data() + m_pos), n);
    m_pos += n;
    return out;
  }

 private:
  std::span<const std::byte> m_bytes;
  std::size_t m_pos = 0;
};

}  // namespace

std::int64_t ref_key(const Id& hid) {
  std::uint64_t k = 0;
  for (std::size_t i = 0; i < 8; ++i) k = (k << 8) | hid.bytes[i];
  return static_cast<std::int64_t>(k);
}

namespace {

/// (name, cid) of each input, in the record's order (sorted by name).
std::vector<std::pair<std::string_view, Id>> input_cids(const CallRecord& call) {
  std::vector<std::pair<std::string_view, Id>> ids;
  ids.reserve(call.inputs.size());
  for (const auto& r : call.inputs) ids.emplace_back(r.name, r.cid);
  return ids;
}

}  // namespace

Id content_id(const CallRecord& call, const Id* semantic) {
  return codec::call_id_sorted(call.op, call.version, input_cids(call), semantic);
}

bool ids_derive_from_raw_inputs(const CallRecord& call) {
  auto ids = input_cids(call);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (call.inputs[i].hid != codec::atom_hid(call.inputs[i].cid)) return false;
    ids[i].second = call.inputs[i].hid;
  }
  const Id* semantic = call.semantic ? &*call.semantic : nullptr;
  if (codec::call_id_sorted(call.op, call.version, ids, semantic) != call.hid) return false;
  return content_id(call, semantic) == call.cid;
}

void encode(const CallRecord& call, std::span<const std::string> op_outputs, std::vector<std::byte>& out) {
  out.clear();
  put_varint(out, call.inputs.size());
  for (const auto& r : call.inputs) {
    const bool derived = r.hid == codec::atom_hid(r.cid);
    std::uint8_t flags = derived ? 0 : io_explicit_hid;
    if (r.transient) flags |= io_transient;
    out.push_back(static_cast<std::byte>(flags));
    put_text(out, r.name);
    put_id(out, r.cid);
    if (!derived) put_id(out, r.hid);
  }
  put_varint(out, call.outputs.size());
  for (const auto& r : call.outputs) {
    const bool derived = r.hid == codec::output_hid(call.hid, r.name);
    const auto at = std::find(op_outputs.begin(), op_outputs.end(), r.name);
    std::uint8_t flags = io_output;
    if (!derived) flags |= io_explicit_hid;
    if (at != op_outputs.end()) flags |= io_name_index;
    if (r.transient) flags |= io_transient;
    out.push_back(static_cast<std::byte>(flags));
    if (at != op_outputs.end()) put_varint(out, static_cast<std::uint64_t>(at - op_outputs.begin()));
    else put_text(out, r.name);
    put_id(out, r.cid);
    if (!derived) put_id(out, r.hid);
  }
}

void decode(std::span<const std::byte> io, std::span<const std::string> op_outputs, CallRecord& call) {
  Reader in(io);
  call.inputs.clear();
  call.outputs.clear();
  auto n = in.varint();
  if (n > io.size()) malformed();
  call.inputs.reserve(n);
  for (; n > 0; --n) {
    const auto flags = in.byte();
    if ((flags & ~(io_explicit_hid | io_transient)) != 0) malformed();
    IoRef ref;
    ref.transient = (flags & io_transient) != 0;
    ref.name = in.text();
    ref.cid = in.id();
    ref.hid = (flags & io_explicit_hid) != 0 ? in.id() : codec::atom_hid(ref.cid);
    call.inputs.push_back(std::move(ref));
  }
  n = in.varint();
  if (n > io.size()) malformed();
  call.outputs.reserve(n);
  for (; n > 0; --n) {
    const auto flags = in.byte();
    if ((flags & io_output) == 0 || (flags & ~(io_output | io_explicit_hid | io_name_index | io_transient)) != 0)
      malformed();
    IoRef ref;
    ref.transient = (flags & io_transient) != 0;
    if ((flags & io_name_index) != 0) {
      const auto i = in.varint();
      if (i >= op_outputs.size()) malformed();
      ref.name = op_outputs[i];
    } else {
      ref.name = in.text();
    }
    ref.cid = in.id();
    ref.hid = (flags & io_explicit_hid) != 0 ? in.id() : codec::output_hid(call.hid, ref.name);
    call.outputs.push_back(std::move(ref));
  }
  if (!in.done()) malformed();
}

}  // namespace mandala::store::call_io
