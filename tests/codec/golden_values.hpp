#pragma once
// A fixed list of values with their canonical bytes and content ids, pinned. The bytes of the
// simple cases were checked by hand against the MessagePack spec; every content id was checked
// against `xxh128sum` over the domain-separated input (see hash_test.cpp). Changing any of these
// changes every stored id: that needs a new encoding name (codec/wire.hpp) and a store migration.

#include <cmath>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "codec_test_util.hpp"
#include "mandala/codec.hpp"

namespace mandala::testing {

struct GoldenCase {
  std::string name;
  std::vector<std::byte> encoded;  ///< what the encoder produces today
  std::string hex;                 ///< the pinned bytes (spaces group fields)
  std::string cid;                 ///< the pinned content id
};

inline std::vector<GoldenCase> golden_cases() {
  auto enc = [](const auto& v) { return encode_value(v); };
  auto pointer = [](std::string_view name) {
    Encoder e;
    e.pointer(name);
    return std::move(e).take();
  };
  using Variant = std::variant<int, std::string>;
  return {
      {"int 0", enc(0), "00", "799afbfe5d9db3d1b4f00b08f46f416a"},
      {"int 1", enc(1), "01", "d8288a8b22a9f2cb84a066cac02b3706"},
      {"int -1", enc(-1), "ff", "6761c6704a8af8f5788b5dd91d7e0027"},
      {"int 127", enc(127), "7f", "a0264461992c89806694aa7079312e54"},
      {"int 128", enc(128), "cc 80", "f76e89c708a468313408ad18761cd614"},
      {"int -33", enc(-33), "d0 df", "3925ce481930b610d15a1370f69c8ad4"},
      {"uint64 max", enc(UINT64_MAX), "cf ffffffffffffffff", "d0ac4d9f106fb965e0b30082394596f8"},
      {"double 1.0", enc(1.0), "cb 3ff0000000000000", "b375c8ce8a7479ddb6c247599149c7bc"},
      {"float 1.0f", enc(1.0f), "ca 3f800000", "d83d54a75eaca0a6cacdd2f82361ea6c"},
      {"double NaN", enc(std::nan("")), "cb 7ff8000000000000", "4231a25388dd74c92007aba3ead73f84"},
      {"true", enc(true), "c3", "1422af4240dbf209c2286c455692b142"},
      {"nullopt", enc(std::optional<int>{}), "c0", "9e993252c76c3a376033b255912441b6"},
      {"string a", enc(std::string("a")), "a1 61", "79f65f7695072f27a908d9dc2978988f"},
      {"empty string", enc(std::string()), "a0", "38f4862e1059d07152d19de39d04ec13"},
      {"vector<int>{1,2,3}", enc(std::vector<int>{1, 2, 3}),
       "c7 16 01  03 01 0300000000000000  01000000 02000000 03000000", "4b7b41e789f614d21767d7ce8e9d52fa"},
      {"vector<double>{1.5}", enc(std::vector<double>{1.5}), "c7 12 01  0a 01 0100000000000000  000000000000f83f",
       "247110a95f5186dd7d6846415e7de86f"},
      {"vector<string>{a,b}", enc(std::vector<std::string>{"a", "b"}), "92 a161 a162",
       "824bf0257358171c5b7662a1924dbd0c"},
      {"map{b:1,aa:2}", enc(std::map<std::string, int>{{"b", 1}, {"aa", 2}}), "82 a162 01 a26161 02",
       "4e85b3817aecb2bb2953f1121211e0af"},
      {"struct Point{1,2}", enc(codec_test::Point{1, 2}), "82 a178 01 a179 02", "19c3ff5ff59a4248504722cbef3d080e"},
      {"variant<int,string>{hi}", enc(Variant{std::string("hi")}), "92 01 a26869", "c76f0c18f85c8710b54b6e9a784d100e"},
      {"pointer model", pointer("model"), "c7 05 02 6d6f64656c", "31668fdb7000d40b00599c35e717d7c8"},
      {"pointer abcd", pointer("abcd"), "d6 02 61626364", "bf98e3f1261e8fa47ff5bd403e4114dc"},
  };
}

}  // namespace mandala::testing
