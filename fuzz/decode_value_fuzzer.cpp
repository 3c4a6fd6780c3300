// libFuzzer target: arbitrary bytes as an encoded value. Parsing, JSON rendering and decoding
// into a range of C++ types may fail only with mandala::Error (Errc::decode); anything else (a
// crash, a sanitizer report, another exception) is a finding.

#include <array>
#include <complex>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "mandala/codec.hpp"
#include "mandala/error.hpp"
#include "mandala/value.hpp"

namespace md = mandala;

namespace {

[[noreturn]] void finding(const md::Error& e) {
  std::fprintf(stderr, "unexpected error code %d: %s\n", static_cast<int>(e.code()), e.what());
  std::abort();
}

template <class T>
void decode_as(md::ValueView root) {
  try {
    (void)md::decode_value<T>(root);
  } catch (const md::Error& e) {
    if (e.code() != md::Errc::decode) finding(e);
  }
}

void walk(md::ValueView v, int depth) {
  if (depth > 64) return;
  if (v.kind() != md::Kind::array && v.kind() != md::Kind::map) return;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v.kind() == md::Kind::map) walk(v.key_at(i), depth + 1);
    walk(v.kind() == md::Kind::map ? v.value_at(i) : v.at(i), depth + 1);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    const md::DecodedValue decoded(bytes);
    const md::ValueView root = decoded.root();
    (void)root.to_json();
    (void)root.to_json(3);
    walk(root, 0);
    decode_as<bool>(root);
    decode_as<std::int8_t>(root);
    decode_as<std::uint64_t>(root);
    decode_as<std::int64_t>(root);
    decode_as<float>(root);
    decode_as<double>(root);
    decode_as<std::string>(root);
    decode_as<std::vector<double>>(root);
    decode_as<std::vector<std::uint8_t>>(root);
    decode_as<std::array<std::int16_t, 2>>(root);
    decode_as<std::vector<std::string>>(root);
    decode_as<std::vector<bool>>(root);
    decode_as<std::map<std::string, int>>(root);
    decode_as<std::map<int, std::optional<std::string>>>(root);
    decode_as<std::set<int>>(root);
    decode_as<std::tuple<int, double, std::string>>(root);
    decode_as<std::variant<int, std::string, std::monostate>>(root);
    decode_as<std::optional<std::vector<int>>>(root);
    decode_as<std::vector<std::vector<std::optional<std::int32_t>>>>(root);
    decode_as<std::complex<double>>(root);
    decode_as<std::vector<std::complex<float>>>(root);
    (void)root.to_text(40);
    // Any value as a Value; writing it back may refuse what a canonical writer never writes
    // (two keys of one encoding) with Errc::invalid_argument.
    const md::Value value = md::Value::from(root);
    try {
      (void)value.encode();
    } catch (const md::Error& e) {
      if (e.code() != md::Errc::invalid_argument) finding(e);
    }
  } catch (const md::Error& e) {
    if (e.code() != md::Errc::decode) finding(e);
  }
  return 0;
}
