// libFuzzer target: arbitrary bytes as a store file. Opening (read-only and writable), the
// queries and the integrity check may fail only with mandala::Error; a crash, a hang, a
// sanitizer report or any other exception is a finding. The seed corpus holds small valid
// stores, so mutations explore damaged stores as well as foreign files.

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "mandala/mandala.hpp"

namespace md = mandala;
namespace fs = std::filesystem;

namespace {

const fs::path& scratch() {
  static const fs::path p = fs::temp_directory_path() / ("mandala-fuzz-store-" + std::to_string(::getpid()));
  return p;
}

void reset_files() {
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) fs::remove(scratch().string() + suffix, ec);
  fs::remove_all(scratch().string() + ".blobs", ec);
}

void use(bool read_only) {
  md::StorageOptions options;
  options.read_only = read_only;
  try {
    md::Storage storage(scratch(), options);
    (void)storage.stats();
    for (const char* op : {"inc", "add", "big"}) {
      for (const auto& call : storage.calls_of(op)) {
        for (const auto& [name, ref] : call.outputs) {
          try {
            (void)ref.to_json();
          } catch (const md::Error&) {}
          (void)storage.creator_of(ref);
          (void)storage.consumers_of(ref);
        }
      }
    }
    (void)storage.check_integrity();
  } catch (const md::Error&) {
    // a clear error is the expected outcome for most inputs
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  reset_files();
  {
    std::ofstream out(scratch(), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  use(true);
  use(false);
  reset_files();
  return 0;
}
