#pragma once
// Whole-file reads for tests.

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>

namespace mandala::testing {

/// The bytes of a file; empty when it cannot be read.
inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return {};
  std::string bytes(static_cast<std::size_t>(in.tellg()), '\0');
  in.seekg(0);
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return bytes;
}

/// Every regular file under `dir` (relative path) with its size and a digest of its bytes: two
/// snapshots are equal when no file changed.
inline std::map<std::string, std::string> snapshot(const std::filesystem::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const std::string bytes = read_file(e.path());
    out[e.path().lexically_relative(dir).string()] =
        std::to_string(bytes.size()) + " bytes, hash " + std::to_string(std::hash<std::string>{}(bytes));
  }
  return out;
}

}  // namespace mandala::testing
