#pragma once
// Backend-independent storage tests run against every backend: an in-memory SQLite store and an
// SQLite file. `reopen()` closes the storage and opens it again (a no-op for memory, which
// cannot be reopened), so persistence is checked wherever it exists.

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "mandala/mandala.hpp"
#include "support/temp_dir.hpp"

namespace mandala::testing {

enum class Backend { memory, file };

inline std::string backend_name(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::memory ? "Memory" : "File";
}

class BackendTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override { open(); }

  void open(StorageOptions options = {}) {
    m_options = options;
    m_storage.reset();
    m_storage =
        GetParam() == Backend::memory ? std::make_unique<Storage>() : std::make_unique<Storage>(db_path(), options);
  }
  /// Closes and reopens a file store; keeps an in-memory one.
  void reopen() {
    if (GetParam() == Backend::file) open(m_options);
  }
  [[nodiscard]] bool persistent() const { return GetParam() == Backend::file; }
  [[nodiscard]] std::filesystem::path db_path() const { return m_dir / "store.db"; }
  Storage& storage() { return *m_storage; }

  TempDir m_dir;
  StorageOptions m_options;
  std::unique_ptr<Storage> m_storage;
};

#define MANDALA_INSTANTIATE_BACKENDS(Suite)                                                                           \
  INSTANTIATE_TEST_SUITE_P(Backends, Suite,                                                                           \
                           ::testing::Values(::mandala::testing::Backend::memory, ::mandala::testing::Backend::file), \
                           ::mandala::testing::backend_name)

}  // namespace mandala::testing
